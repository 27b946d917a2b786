#!/usr/bin/env node
/**
 * The `rha` binary (package.json bin: dist/cli/main.js). The program itself is program.ts; this
 * entry only picks how to load it (issue 7, start-up time): after `npm run build` the one-file
 * bundle of program.ts beside it (rha.cjs) through a V8 code cache (code-cache.ts), else tsc's
 * modules. It imports nothing but Node's built-ins, code-cache.ts and keeper-client.ts, so nothing
 * is parsed twice. `run` and `provision` from scripts and CI go to the keeper first
 * (keeper-client.ts), which needs none of the bundle here.
 *
 * Exit codes: 0 ok · 1 internal error · 2 a host failed · 3 a host unreachable (none failed) ·
 * 4 invalid input (nothing touched) · 130 interrupted.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { codeCacheDir, commandOf, compileCached } from './code-cache.js';
import { keeperEligible, runInKeeper } from './keeper-client.js';

type Main = (argv?: string[], program?: Command) => Promise<void>;

/** Parses argv and runs (program.ts's main, loaded on first call); usage errors exit 4, help exits 0. */
export async function main(argv: string[] = process.argv, program?: Command): Promise<void> {
  return (await import('./program.js')).main(argv, program);
}

/** program.ts's main from the bundle beside this file, compiled with the code cache; undefined without a bundle. */
function bundledMain(): Main | undefined {
  const bundle = fileURLToPath(new URL('./rha.cjs', import.meta.url));
  if (!existsSync(bundle)) return undefined;
  // CommonJS's own wrapper, plus the URL the bundle's `import.meta.url` stands for: this file's, so
  // that packageRoot() walks up from dist/cli as it does in tsc's modules.
  // The cache is keyed by the file's identity (inode, size, change times) as read, not its 2.7 MB.
  const fd = openSync(bundle, 'r');
  let text: string;
  let identity: string;
  try {
    const st = fstatSync(fd, { bigint: true });
    identity = [bundle, st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join('\0');
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const source = `(function (exports, require, module, __filename, __dirname, __rhaImportMetaUrl) {${text}\n})`;
  const off = process.env.RHA_NO_CODE_CACHE === '1';
  const compiled = compileCached(source, bundle, commandOf(process.argv), off ? undefined : codeCacheDir(), identity);
  const module = { exports: {} as { main?: Main } };
  (compiled.fn as (...a: unknown[]) => void)(module.exports, createRequire(bundle), module, bundle, path.dirname(bundle), import.meta.url);
  // By the time the event loop is empty the command has run: its compiled functions are in the cache.
  process.once('beforeExit', () => compiled.save());
  return module.exports.main;
}

// Run only as the entry point (the bin), not when imported (tests, or a caller adding `lab`).
const self = fileURLToPath(import.meta.url);
const entry = process.argv[1] ? safeRealpath(process.argv[1]) : '';
if (entry === self || entry === self.replace(/\.js$/, '')) {
  // `rha ... | head` closes the pipe early: stop quietly instead of crashing on EPIPE.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    });
  }
  const bundle = fileURLToPath(new URL('./rha.cjs', import.meta.url));
  const out = process.stdout;
  const code = keeperEligible(process.argv, process.env, out.isTTY, out.isTTY ? out.hasColors() : true) && existsSync(bundle)
    ? await runInKeeper(process.argv, self, bundle)
    : undefined;
  if (code !== undefined) process.exitCode = code;
  else await (bundledMain() ?? main)();
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
