/**
 * rha's own playbooks (playbooks/, run by `rha provision`), parsed once and kept in the user's
 * cache folder for the next process (issue 17: ~75 ms of a no-op's start-up, a cold YAML parser and
 * the Handlebars parses of every `when`). playbook/load.ts uses an entry only when every file it
 * came from still has the same sha256, and the entry is named by this build of rha, so an upgrade
 * never reads another build's shape. Only rha's own playbooks: a user's playbook may hold secrets
 * in its vars, and is not copied anywhere. The folder is code-cache.ts's (ours, 0700; files 0600);
 * any failure means a normal parse.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PlaybookStore, StoredPlaybook } from '../playbook/index.js';
import { codeCacheDir, trustedDir } from './code-cache.js';
import { packageRoot } from './paths.js';

/** A store for `file` when it is one of rha's own playbooks and the cache folder is ours; else undefined. */
export function ownPlaybookStore(file: string, env: NodeJS.ProcessEnv = process.env): PlaybookStore | undefined {
  if (env.RHA_NO_CODE_CACHE === '1') return undefined;
  const own = path.join(packageRoot(), 'playbooks') + path.sep;
  if (!path.resolve(file).startsWith(own)) return undefined;
  const dir = codeCacheDir(env);
  const build = buildId();
  if (!build) return undefined;
  // Named by build, then file: writing one removes the other builds' (dead weight after an upgrade).
  const tag = `playbook-${sha(build).slice(0, 12)}-`;
  const entryPath = (f: string) => path.join(dir, `${tag}${sha(f).slice(0, 12)}.json`);
  return {
    get(f) {
      if (!trustedDir(dir)) return undefined;
      return JSON.parse(readFileSync(entryPath(f), 'utf8')) as StoredPlaybook;
    },
    set(f, entry) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!trustedDir(dir)) return;
      const target = entryPath(f);
      const tmp = `${target}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
      renameSync(tmp, target);
      removeOtherBuilds(dir, 'playbook-', tag);
    },
  };
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Removes the cache folder's `prefix*.json` files that do not start with `keep` (another build's). */
export function removeOtherBuilds(dir: string, prefix: string, keep: string): void {
  try {
    for (const f of readdirSync(dir)) if (f.startsWith(prefix) && f.endsWith('.json') && !f.startsWith(keep)) unlinkSync(path.join(dir, f));
  } catch {
    /* the next write tries again */
  }
}

/** This build of rha: the size and time of the files the CLI runs from (any rebuild changes it). */
export function buildId(): string | undefined {
  try {
    const here = fileURLToPath(import.meta.url);
    const parts = [here, path.join(path.dirname(here), 'rha.cjs')].map((f) => {
      try {
        const st = statSync(f);
        return `${f}:${st.size}:${st.mtimeMs}`;
      } catch {
        return `${f}:-`;
      }
    });
    return parts.join('|');
  } catch {
    return undefined;
  }
}
