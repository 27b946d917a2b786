/**
 * Once per `vitest run`: the CLI runs of the suite (outside a terminal, so through rha's keeper)
 * get a cache folder of their own instead of the user's ~/.cache/rha, and the keeper they started
 * is stopped at the end, so that no process outlives the suite. Tests that need a keeper of their
 * own (keeper.test.ts) still set their own XDG_CACHE_HOME.
 *
 * Tests that run the CLI run dist/, so dist/ is built first when it is missing or older than any
 * source file: `npx vitest run test/unit` then works on a fresh clone, and never tests stale code.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RHA = path.join(ROOT, 'dist/cli/main.js');
const BUNDLE = path.join(ROOT, 'dist/cli/rha.cjs');

/** The newest modification time (ms) of the files under `dir`, recursively. */
function newestUnder(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestUnder(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ (tsc + bundle, as `npm run build`) unless it is newer than every source file. */
function buildIfStale(): void {
  const sources = Math.max(newestUnder(path.join(ROOT, 'src')), statSync(path.join(ROOT, 'scripts/bundle.mjs')).mtimeMs);
  if (existsSync(BUNDLE) && statSync(BUNDLE).mtimeMs >= sources) return;
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit', timeout: 5 * 60_000 });
  if (r.status !== 0) throw new Error(`npm run build failed (exit ${r.status ?? r.signal}): the tests need dist/`);
}

export default function setup(): () => void {
  buildIfStale();
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
