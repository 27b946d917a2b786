/**
 * Once per `vitest run`: the CLI runs of the suite (outside a terminal, so through rha's keeper)
 * get a cache folder of their own instead of the user's ~/.cache/rha, and the keeper they started
 * is stopped at the end, so that no process outlives the suite. Tests that need a keeper of their
 * own (keeper.test.ts) still set their own XDG_CACHE_HOME.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const RHA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js');

export default function setup(): () => void {
  const cache = mkdtempSync(path.join(os.tmpdir(), 'rha-test-cache-'));
  // Set before the test workers start, which inherit it.
  process.env.XDG_CACHE_HOME = cache;
  return () => {
    spawnSync(process.execPath, [RHA, 'keeper', 'stop'], { env: { ...process.env, XDG_CACHE_HOME: cache }, stdio: 'ignore', timeout: 60_000 });
    // `keeper stop` returns once its keeper has exited (the keeper writes its code cache on the way
    // out); the retries are for anything else still closing in there.
    rmSync(cache, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  };
}
