/**
 * Unified diffs of small text files (configs), for `--diff`. A plain LCS over lines: config files
 * are a few hundred lines, and the quadratic table is bounded; beyond the bound the whole file is
 * shown as replaced, which is still a correct (if long) diff.
 */
import { createHash } from 'node:crypto';
import type { FileDiff } from '../core/types.js';

const MAX_CELLS = 4_000_000;

type Op = { kind: ' ' | '-' | '+'; line: string };

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function diffOps(a: string[], b: string[]): Op[] {
  // Trim the common head and tail first: most config edits touch a few lines.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const am = a.slice(head, a.length - tail);
  const bm = b.slice(head, b.length - tail);
  const mid: Op[] = [];
  if ((am.length + 1) * (bm.length + 1) > MAX_CELLS) {
    for (const l of am) mid.push({ kind: '-', line: l });
    for (const l of bm) mid.push({ kind: '+', line: l });
  } else {
    const n = am.length;
    const m = bm.length;
    const w = m + 1;
    const lcs = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        lcs[i * w + j] = am[i] === bm[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && am[i] === bm[j]) (mid.push({ kind: ' ', line: am[i] }), i++, j++);
      // Deletions before insertions, as diff(1) prints them.
      else if (i < n && (j === m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) mid.push({ kind: '-', line: am[i++] });
      else mid.push({ kind: '+', line: bm[j++] });
    }
  }
  return [...a.slice(0, head).map((line) => ({ kind: ' ' as const, line })), ...mid, ...a.slice(a.length - tail).map((line) => ({ kind: ' ' as const, line }))];
}

/** A unified diff (`--- path (before)`, `+++ path (after)`, `@@` hunks); '' when the texts are equal. */
export function unifiedDiff(d: FileDiff, context = 3): string {
  if (d.before === d.after) return '';
  const ops = diffOps(splitLines(d.before), splitLines(d.after));
  const out = [`--- ${d.path} (before)`, `+++ ${d.path} (after)`];
  let k = 0;
  while (k < ops.length) {
    while (k < ops.length && ops[k].kind === ' ') k++;
    if (k >= ops.length) break;
    const start = Math.max(0, k - context);
    let end = k;
    // Extend the hunk while the next change is within 2*context unchanged lines.
    for (;;) {
      while (end < ops.length && ops[end].kind !== ' ') end++;
      let gap = end;
      while (gap < ops.length && ops[gap].kind === ' ') gap++;
      if (gap < ops.length && gap - end <= 2 * context) end = gap;
      else break;
    }
    const stop = Math.min(ops.length, end + context);
    let aStart = 1;
    let bStart = 1;
    for (let x = 0; x < start; x++) {
      if (ops[x].kind !== '+') aStart++;
      if (ops[x].kind !== '-') bStart++;
    }
    const hunk = ops.slice(start, stop);
    const aLen = hunk.filter((o) => o.kind !== '+').length;
    const bLen = hunk.filter((o) => o.kind !== '-').length;
    out.push(`@@ -${aLen ? aStart : aStart - 1},${aLen} +${bLen ? bStart : bStart - 1},${bLen} @@`);
    for (const o of hunk) out.push(o.kind + o.line);
    k = stop;
  }
  return out.join('\n');
}

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
