/**
 * Handlebars' compiled form of rha's own templates and playbook expressions (templates/,
 * playbooks/), kept in the user's cache folder for the next process (issue 17: a cold process
 * spent ~60-90 ms parsing and compiling the same texts on every `rha provision`). One file per
 * build of rha (Handlebars' output belongs to its version), read once when first asked, written
 * back when the process ends if anything was added. Texts from elsewhere (a user's playbooks and
 * templates may hold secrets) are compiled as always and never written down. The folder is
 * code-cache.ts's (ours, 0700; files 0600); cached code runs as it stands, as with the V8 code
 * cache beside it, and any failure means a normal compile.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TemplateStore } from '../template/index.js';
import { codeCacheDir, trustedDir } from './code-cache.js';
import { packageRoot } from './paths.js';
import { buildId, removeOtherBuilds } from './playbook-store.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A store of rha's own compiled templates, or undefined when the cache folder is off or not ours. */
export function ownTemplateStore(env: NodeJS.ProcessEnv = process.env): TemplateStore | undefined {
  if (env.RHA_NO_CODE_CACHE === '1') return undefined;
  const build = buildId();
  if (!build) return undefined;
  const dir = codeCacheDir(env);
  const name = `templates-${sha(build).slice(0, 20)}.json`;
  const file = path.join(dir, name);
  const root = packageRoot();
  const own = [path.join(root, 'templates') + path.sep, path.join(root, 'playbooks') + path.sep];
  let entries: Record<string, string> | undefined;
  let added = false;
  const load = (): Record<string, string> => {
    if (entries) return entries;
    entries = {};
    try {
      if (trustedDir(dir)) {
        const read = JSON.parse(readFileSync(file, 'utf8')) as unknown;
        if (read && typeof read === 'object') entries = read as Record<string, string>;
      }
    } catch {
      /* none yet */
    }
    return entries;
  };
  const save = (): void => {
    if (!added) return;
    added = false;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!trustedDir(dir)) return;
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(entries), { mode: 0o600 });
      renameSync(tmp, file);
      removeOtherBuilds(dir, 'templates-', name);
    } catch {
      /* next time */
    }
  };
  process.once('beforeExit', save);
  return {
    get(src) {
      const code = load()[sha(src)];
      return typeof code === 'string' ? code : undefined;
    },
    set(src, code, where) {
      const from = where.file ? path.resolve(where.file) : '';
      if (!own.some((d) => from.startsWith(d))) return;
      const e = load();
      if (Object.keys(e).length >= 2000) return;
      e[sha(src)] = code;
      added = true;
    },
  };
}
