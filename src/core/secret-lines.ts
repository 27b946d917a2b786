/**
 * Secret-bearing lines of files (redis.conf's requirepass, keepalived.conf's auth_pass, a password
 * file): masked on both sides of a diff whatever their value, compared by hash. In core/ because
 * the modules that write such files (modules/lib/files.ts) and the reporters both apply it.
 */
import { createHash } from 'node:crypto';
import type { FileDiff } from './types.js';

/**
 * Directives whose value is a secret in any file rha diffs, whatever module wrote it: Redis's
 * `requirepass`/`masterauth`, keepalived's `auth_pass`, and `*password*`/`*_pass`/`*secret*`/`*token*`
 * keys (`REDIS_PASSWORD=`, `tls-key-file-pass`).
 */
const DEFAULT_SECRET_KEYS = String.raw`requirepass|masterauth|auth_pass|[\w.-]*(?:[_-]pass|password|passwd|secret|token)`;

/** A secret value already masked (by a module, or by an earlier pass): left as it is. */
const MASKED_VALUE = /^\*\*\*(?: \(secret changed\))?$/;

/** Appended to the new side of a secret line whose value changed (compared by hash, never shown). */
export const SECRET_CHANGED = ' (secret changed)';

/** Which lines of a file hold secrets (the module that writes it knows; see copy/template `secret`). */
export interface SecretLinePolicy {
  /** Every non-empty line is secret (a password file: copy `secret: true`). */
  whole?: boolean;
  /** Directives whose value is secret, besides the defaults (`requirepass`, `auth_pass`, `*password*`...). */
  directives?: readonly string[];
  /**
   * Secret values of the run: a line of the new content holding one makes its key (the text before
   * the value) secret-bearing on both sides, so the old value on the same key is masked too.
   */
  values?: Iterable<string>;
}

const escapeRe = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A regex of secret-bearing lines: 1 = key with its leading space, 2 = separator, 3 = value. */
function secretLineRe(keys: string): RegExp {
  // dotAll: a CR (a CRLF file) or U+2028 inside the value must not stop the match and leave it shown.
  // A commented-out directive (`# requirepass OLD`) may still hold a real password.
  return new RegExp(String.raw`^(\s*(?:[#;]\s*)?(?:${keys}))(?![\w.-])(["']?\s*[=:]?\s*)(\S.*)$`, 'is');
}

/** The keys (text before the secret, without trailing quotes/separators) of lines of `text` that hold a secret value. */
function keysHoldingValues(text: string, values: Iterable<string>): string[] {
  const list = [...values].filter((v) => v.length > 0);
  if (list.length === 0) return [];
  const keys = new Set<string>();
  for (const line of text.split('\n')) {
    for (const v of list) {
      const at = line.indexOf(v);
      if (at >= 0) keys.add(line.slice(0, at).replace(/[\s"'=:]+$/, '').trimStart());
    }
  }
  return [...keys];
}

/** Splits a secret-bearing line into its shown prefix and its value, or undefined for any other line. */
type LineSplitter = (line: string) => { key: string; prefix: string; value: string } | undefined;

function lineSplitter(policy: SecretLinePolicy, after: string): LineSplitter {
  const fromValues = keysHoldingValues(after, policy.values ?? []);
  // A secret at the start of a line (a password file) makes every line secret.
  if (policy.whole || fromValues.includes('')) {
    return (line) => (line.trim() === '' ? undefined : { key: '', prefix: '', value: line });
  }
  const alternatives = [DEFAULT_SECRET_KEYS, ...(policy.directives ?? []).map(escapeRe), ...fromValues.map(escapeRe)];
  const re = secretLineRe(alternatives.join('|'));
  return (line) => {
    const m = re.exec(line);
    return m ? { key: m[1].trim().toLowerCase(), prefix: m[1] + m[2].replace(/["']$/, ''), value: m[3] } : undefined;
  };
}

const digest = (v: string) => createHash('sha256').update(v).digest('hex');

/**
 * The diff with every secret-bearing line masked on both sides, whatever its value (the old value
 * on the host is not in the inventory any more): `requirepass ***`. Secret lines are matched by key
 * and occurrence and compared by hash; a changed one reads `requirepass *** (secret changed)` on the
 * new side, so the diff shows that it changed and nothing else. No hash is shown: a password's
 * hash could be guessed offline.
 */
export function maskFileDiff(d: FileDiff, policy: SecretLinePolicy = {}): FileDiff {
  const split = lineSplitter(policy, d.after);
  const idsOf = (text: string) => {
    const seen = new Map<string, number>();
    return text.split('\n').map((line) => {
      const s = split(line);
      if (!s) return undefined;
      const n = seen.get(s.key) ?? 0;
      seen.set(s.key, n + 1);
      return { ...s, id: `${s.key}#${n}` };
    });
  };
  const before = idsOf(d.before);
  const old = new Map(before.filter((x) => x !== undefined).map((x) => [x.id, digest(x.value)]));
  const mask = (lines: string[], parsed: ReturnType<typeof idsOf>, newSide: boolean) =>
    lines
      .map((line, i) => {
        const s = parsed[i];
        if (!s || MASKED_VALUE.test(s.value)) return line;
        const was = old.get(s.id);
        const changed = newSide && was !== undefined && was !== digest(s.value);
        return `${s.prefix}***${changed ? SECRET_CHANGED : ''}`;
      })
      .join('\n');
  return {
    ...d,
    before: mask(d.before.split('\n'), before, false),
    after: mask(d.after.split('\n'), idsOf(d.after), true),
  };
}

/**
 * A printed diff line (`-`, `+` or ` ` first) with the value after a password-like key replaced by
 * `***`: the last pass before a diff is printed, for lines no module marked.
 */
export function maskSecretLine(line: string): string {
  const mark = /^[-+ ]/.test(line) ? line[0] : '';
  const body = line.slice(mark.length);
  const m = DEFAULT_LINE.exec(body);
  if (!m || MASKED_VALUE.test(m[3])) return line;
  return `${mark}${m[1]}${m[2].replace(/["']$/, '')}***`;
}

const DEFAULT_LINE = secretLineRe(DEFAULT_SECRET_KEYS);
