/**
 * A V8 code cache for the bundled CLI (issue 7, start-up time). Node 20 has no compile cache for
 * modules (module.enableCompileCache came in 22), so the build writes the CLI as one CommonJS file
 * (dist/cli/rha.cjs) and the entry (loader.ts) compiles it with vm.Script, handing V8 the code it
 * compiled on an earlier run. Measured on the bench's no-op run: ~50 ms less per start.
 *
 * One cache file per source (its file by inode, size and change times, or its text; Node version,
 * architecture) and sub-command, since each sub-command compiles different functions. The cache
 * lives in `$XDG_CACHE_HOME/rha` or `~/.cache/rha` (mode 0700, files 0600) and is used only when
 * that folder is ours and not writable by others: cached code runs as it stands. Any failure means
 * a normal compile, silently: the cache only ever makes rha faster, never breaks it.
 * RHA_NO_CODE_CACHE=1 turns it off.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';

/** `$XDG_CACHE_HOME/rha` (when absolute, as the XDG spec asks), else `~/.cache/rha`. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  const xdg = env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.cache'), 'rha');
}

/** Whether `dir` is a folder owned by this user that nobody else can write (so its files are ours). */
export function trustedDir(dir: string): boolean {
  try {
    const st = statSync(dir);
    const uid = process.getuid?.();
    return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

export type CacheOutcome = 'hit' | 'miss' | 'rejected' | 'off';

export interface CompiledScript {
  /** The compiled wrapper function (the source's value when run). */
  fn: unknown;
  outcome: CacheOutcome;
  /** Writes the cache for this source and command if it was missing or rejected; call once the code has run. */
  save(): void;
}

/**
 * Compiles `source` (named `filename` in stack traces) with V8 code cached under `dir` for
 * `command`; `dir` undefined turns the cache off. `identity` names the source instead of its
 * text in the cache's key (the bundle's file, by its stat: hashing 2.7 MB took 12 ms per start).
 */
export function compileCached(source: string, filename: string, command: string, dir: string | undefined, identity?: string): CompiledScript {
  const key = createHash('sha256')
    .update(process.version)
    .update(process.arch)
    .update('\0')
    .update(identity === undefined ? source : `file\0${identity}`)
    .digest('hex')
    .slice(0, 24);
  const name = `cli-${key}-${command.replace(/[^a-z0-9-]/gi, '_').slice(0, 40)}.v8`;
  const file = dir && trustedDir(dir) ? path.join(dir, name) : undefined;
  let cachedData: Buffer | undefined;
  if (file) {
    try {
      cachedData = readFileSync(file);
    } catch {
      // No cache yet.
    }
  }
  const script = new vm.Script(source, { filename, cachedData });
  const fn = script.runInThisContext();
  const outcome: CacheOutcome = dir === undefined ? 'off' : cachedData === undefined ? 'miss' : script.cachedDataRejected ? 'rejected' : 'hit';
  const save = (): void => {
    if (!dir || outcome === 'hit' || outcome === 'off') return;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!trustedDir(dir)) return;
      const target = path.join(dir, name);
      const tmp = `${target}.${process.pid}.tmp`;
      writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
      renameSync(tmp, target); // atomic: a concurrent rha reads the old file or the new one
      // Caches of other builds or Node versions are dead weight now.
      for (const f of readdirSync(dir)) {
        if (f.startsWith('cli-') && f.endsWith('.v8') && !f.startsWith(`cli-${key}-`)) unlinkSync(path.join(dir, f));
      }
    } catch {
      // Unwritable or full: the next run compiles again.
    }
  };
  return { fn, outcome, save };
}

/** The sub-command named by argv (`run`, `lab`, ...), which picks the cache file; `main` for none. */
export function commandOf(argv: string[]): string {
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  return first && /^[a-z][a-z-]{0,30}$/.test(first) ? first : 'main';
}
