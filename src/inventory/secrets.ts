/** Secrets in the inventory: a literal, `{ env: NAME }` or `{ file: PATH }`, resolved to their value. */
import { readFileSync, statSync } from 'node:fs';
import type { SecretValue } from '../core/types.js';
import type { LoadContext } from './context.js';
import type { RawSecret } from './schema.js';
import { lineOf, type KeyPath } from './source.js';

/**
 * Returns the secret's value and where it came from (undefined when absent, or after pushing the
 * problem that it is unset, unreadable or empty). Every value read joins `ctx.secrets`.
 */
export function resolveSecret(ctx: LoadContext, raw: RawSecret | undefined, path: KeyPath): SecretValue | undefined {
  if (raw === undefined) return undefined;
  let value: string | undefined;
  let source: string;
  if (typeof raw === 'string') {
    value = raw;
    source = `${ctx.src.file}:${lineOf(ctx.src, path) ?? ''}`;
  } else if ('env' in raw) {
    source = `env ${raw.env}`;
    value = ctx.env[raw.env];
    if (value === undefined) {
      ctx.error(path, `environment variable ${raw.env} is not set: export it, or use { file: PATH } or a literal`);
      return undefined;
    }
  } else {
    const abs = ctx.path(raw.file);
    source = `file ${raw.file}`;
    try {
      value = readFileSync(abs, 'utf8').replace(/(\r?\n)+$/, '');
      const mode = statSync(abs).mode;
      if (mode & 0o077) ctx.warn(path, `secret file ${raw.file} is readable by group/others: chmod 600 ${abs}`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      ctx.error(path, code === 'ENOENT' ? `secret file ${raw.file} does not exist (looked at ${abs})` : `cannot read secret file ${raw.file}: ${code ?? (e as Error).message}`);
      return undefined;
    }
  }
  if (value === '') {
    ctx.error(path, `secret from ${source} is empty`);
    return undefined;
  }
  ctx.secrets.add(value);
  return { source, value };
}
