/**
 * Unified diffs of small text files (configs), for `--diff`. A plain LCS over lines: config files
 * are a few hundred lines, and the quadratic table is bounded; beyond the bound the whole file is
 * shown as replaced, which is still a correct (if long) diff.
 */
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

export { maskFileDiff, maskSecretLine, SECRET_CHANGED, type SecretLinePolicy } from '../core/secret-lines.js';
