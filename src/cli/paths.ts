/**
 * Where rha is installed and how it was called. A module of its own, without the engine's imports,
 * so that commands that need only these (`lab`, `init`) load nothing else; run.ts re-exports it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder holding rha's package.json (where playbooks/ and templates/ ship). Found by walking up
 * from this module, so it holds for src/cli (vitest), dist/cli (tsc) and the bundle's chunks alike.
 */
export function packageRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'playbooks'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find rha's package root above ${from}`);
    dir = up;
  }
}

/** How to call rha again in printed hints: `rha` when run as `rha`, else `node PATH/main.js` (a clone). */
export function selfCommand(argv1: string | undefined = process.argv[1], cwd: string = process.cwd()): string {
  if (!argv1 || path.basename(argv1) === 'rha') return 'rha';
  const rel = path.relative(cwd, argv1);
  return `node ${rel.startsWith('..') ? argv1 : rel}`;
}
