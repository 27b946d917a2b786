/**
 * YAML with positions: parse a file keeping node ranges, find the line of a key path, and turn
 * zod issues into InputProblems that point at the user's file, line and key. Shared by the
 * inventory and playbook loaders.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { byCodeUnit } from '../core/order.js';
import type { InputProblem } from '../core/types.js';

export type KeyPath = ReadonlyArray<string | number>;

export interface YamlSource {
  /** The file as the user named it (used in messages). */
  file: string;
  doc: Document;
  lc: LineCounter;
  data: unknown;
  /** For data converted from another format (an Ansible inventory): where a key path came from. */
  locate?: (path: KeyPath) => number | undefined;
}

/**
 * The largest input file rha reads (inventory, playbook, imported task file, group_vars/host_vars).
 * A 100-pair inventory is ~25 KB and a 5,000-host Ansible inventory ~300 KB; 1 MiB leaves room
 * for both while bounding what a wrong path (a log, a dump) or a hostile file costs. Measured on
 * the 2-core lab machine: a 1 MiB string value adds ~0.1 s to `rha validate` (a 10 MB one took
 * 1.5 s before this limit); 1 MiB of hosts (9,000) takes ~3 s of CPU. It also bounds every value
 * (no value is larger than its file), so there is no separate per-string limit.
 */
export const MAX_INPUT_BYTES = 1024 * 1024;

/**
 * How many alias expansions one file may make (yaml's `maxAliasCount`: uses of an anchor times
 * the aliases inside it). Shared defaults (`<<: *defaults` on a few hundred hosts) stay far below;
 * a "billion laughs" file goes past it at its third level of nesting.
 */
export const MAX_ALIAS_COUNT = 1000;

/**
 * Reads an input file as text; refuses (problem, no text) a file over MAX_INPUT_BYTES before
 * reading it. Throws the fs error for a missing or unreadable file (callers word those).
 */
export function readInputFile(file: string, shown = file): { text?: string; problem?: InputProblem } {
  const size = statSync(file).size;
  if (size > MAX_INPUT_BYTES) {
    return { problem: { file: shown, message: `is ${formatBytes(size)}, more than the ${formatBytes(MAX_INPUT_BYTES)} rha reads from one input file: is this the right file? (split it, e.g. into group_vars/ files)`, severity: 'error' } };
  }
  return { text: readFileSync(file, 'utf8') };
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${Math.round((n / (1024 * 1024)) * 10) / 10} MiB`;
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KiB`;
  return `${n} bytes`;
}

/** Returns the parsed document and any syntax problems (with the parser's position). */
export function parseYaml(file: string, text: string): { source: YamlSource; problems: InputProblem[] } {
  const lc = new LineCounter();
  const problems: InputProblem[] = [];
  if (text.length > MAX_INPUT_BYTES) {
    // Text that did not come from readInputFile (an Ansible vars string, a test): same limit.
    problems.push({ file, message: `is ${formatBytes(Buffer.byteLength(text))}, more than the ${formatBytes(MAX_INPUT_BYTES)} rha reads from one input file`, severity: 'error' });
    return { source: { file, doc: parseDocument(''), lc, data: undefined }, problems };
  }
  const doc = parseDocument(text, { lineCounter: lc, keepSourceTokens: true, uniqueKeys: true, prettyErrors: false });
  const source: YamlSource = { file, doc, lc, data: undefined };
  for (const e of doc.errors) {
    const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
    const dup = e.code === 'DUPLICATE_KEY' ? duplicateKeyProblem(source, e.pos[0]) : undefined;
    problems.push(
      dup ?? {
        file,
        line: pos.line,
        column: pos.col,
        message: /maximum call stack/i.test(e.message)
          ? 'invalid YAML: nested too deeply to read (the parser ran out of stack): flatten it'
          : `invalid YAML: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`,
        severity: 'error',
      },
    );
  }
  if (!problems.length) {
    try {
      source.data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      // yaml throws a ReferenceError for an alias bomb (and an alias it cannot resolve): bad input, not a bug.
      if (!(e instanceof ReferenceError)) throw e;
      problems.push(aliasProblem(source, e));
    }
  }
  return { source, problems };
}

/** Calls `visit` for every node in document order with its key path (map keys are visited under their map's path). */
function walk(node: unknown, path: KeyPath, visit: (node: unknown, path: KeyPath) => boolean | void): boolean {
  if (visit(node, path) === true) return true;
  if (isMap(node)) {
    for (const p of node.items) {
      if (walk(p.key, path, visit)) return true;
      if (walk(p.value, [...path, keyText(p.key)], visit)) return true;
    }
  } else if (isSeq(node)) {
    for (let i = 0; i < node.items.length; i++) if (walk(node.items[i], [...path, i], visit)) return true;
  }
  return false;
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/** `clusters.cache.master: key "master" appears twice…` for yaml's DUPLICATE_KEY error at `offset`. */
function duplicateKeyProblem(src: YamlSource, offset: number): InputProblem | undefined {
  let out: InputProblem | undefined;
  walk(src.doc.contents, [], (node, path) => {
    if (!isMap(node)) return;
    const i = node.items.findIndex((p) => isScalar(p.key) && p.key.range?.[0] === offset);
    if (i < 0) return;
    const key = node.items[i].key as Node & { value: unknown };
    const first = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key.value));
    const firstLine = rangeLine(src, first?.key);
    out = {
      file: src.file,
      line: rangeLine(src, key),
      path: dotted([...path, String(key.value)]),
      message: `invalid YAML: key "${String(key.value)}" appears twice in this mapping${firstLine ? ` (first on line ${firstLine})` : ''}: keep one`,
      severity: 'error',
    };
    return true;
  });
  return out;
}

/**
 * The problem for an alias yaml refused to expand: the alias at which the expansions pass
 * MAX_ALIAS_COUNT (counted as yaml counts them), with its key path.
 */
function aliasProblem(src: YamlSource, e: Error): InputProblem {
  const doc = src.doc;
  const anchors = new Map<unknown, { count: number; aliasCount: number }>();
  const aliasCountOf = (node: unknown): number => {
    if (isAlias(node)) {
      const a = anchors.get(node.resolve(doc));
      return a ? a.count * a.aliasCount : 0;
    }
    if (isCollection(node)) return (node.items as unknown[]).reduce<number>((m, it) => Math.max(m, aliasCountOf(it)), 0);
    if (isPair(node)) return Math.max(aliasCountOf(node.key), aliasCountOf(node.value));
    return 1;
  };
  let at: { node: Node; path: KeyPath; source: string } | undefined;
  let firstAlias: { node: Node; path: KeyPath; source: string } | undefined;
  walk(doc.contents, [], (node, path) => {
    if ((isScalar(node) || isCollection(node)) && node.anchor && !anchors.has(node)) anchors.set(node, { count: 1, aliasCount: 0 });
    if (!isAlias(node)) return;
    firstAlias ??= { node, path, source: node.source };
    const target = node.resolve(doc);
    if (!target) return;
    let a = anchors.get(target);
    if (!a) anchors.set(target, (a = { count: 1, aliasCount: 0 }));
    a.count++;
    if (a.aliasCount === 0) a.aliasCount = aliasCountOf(target);
    if (a.count * a.aliasCount > MAX_ALIAS_COUNT) {
      at = { node, path, source: node.source };
      return true;
    }
  });
  if (/excessive alias count/i.test(e.message)) {
    const where = at ?? firstAlias;
    return {
      file: src.file,
      line: where ? rangeLine(src, where.node) : 1,
      path: where?.path.length ? dotted(where.path) : undefined,
      message: `invalid YAML: alias *${where?.source ?? '?'} expands too many times (more than ${MAX_ALIAS_COUNT} expansions of nested aliases: an "alias bomb"): write the values out or nest fewer aliases`,
      severity: 'error',
    };
  }
  return { file: src.file, line: firstAlias ? rangeLine(src, firstAlias.node) : 1, path: firstAlias?.path.length ? dotted(firstAlias.path) : undefined, message: `invalid YAML: ${e.message}`, severity: 'error' };
}

/** Dotted form of a key path: `clusters.cache.keepalived.priority.master`, list items as numbers. */
export function dotted(path: KeyPath): string {
  // A key can be as long as its file: messages show its start, enough to find it.
  return path.map((k) => (String(k).length > 64 ? `${String(k).slice(0, 60)}…` : String(k))).join('.');
}

/**
 * Returns the 1-based line of the node at `path` (of its key when `key`), or of the deepest
 * existing ancestor when the path does not exist (e.g. a missing required key: its parent).
 */
export function lineOf(src: YamlSource, path: KeyPath, opts: { key?: boolean } = {}): number | undefined {
  if (src.locate) return src.locate(path);
  let node: unknown = src.doc.contents;
  let best: number | undefined = rangeLine(src, node);
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isAlias(node)) node = node.resolve(src.doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return best;
      const keyLine = rangeLine(src, pair.key);
      if (i === path.length - 1 && opts.key) return keyLine ?? best;
      node = pair.value;
      best = (node ? rangeLine(src, node) : undefined) ?? keyLine ?? best;
      // A value on the next lines (a nested map) is still "at" its key for messages about the key.
      if (i === path.length - 1 && keyLine !== undefined && !isScalar(node)) best = keyLine;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (node === undefined) return best;
      best = rangeLine(src, node) ?? best;
    } else {
      return best;
    }
  }
  return best;
}

function rangeLine(src: YamlSource, node: unknown): number | undefined {
  const range = (node as Node | null)?.range;
  return range ? src.lc.linePos(range[0]).line : undefined;
}

/** The value at `path` in plain data. */
export function valueAt(data: unknown, path: KeyPath): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Near-match suggestions

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Returns the candidate closest to `word` when it is close enough to be a typo. */
export function nearest(word: string, candidatesIn: Iterable<string>): string | undefined {
  const candidates = [...candidatesIn];
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    // The length difference is a lower bound of the distance: such a candidate cannot be nearer.
    const lc = c.toLowerCase();
    if (Math.abs(w.length - lc.length) >= bestD) continue;
    const d = distance(w, lc);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  // `advert_interval` for `advert_int`: a shared stem is as telling as a small edit distance.
  const stem = [...candidates].find((c) => Math.min(c.length, w.length) >= 4 && (w.startsWith(c.toLowerCase()) || c.toLowerCase().startsWith(w)));
  if (best === undefined) return undefined;
  if (stem && distance(w, best.toLowerCase()) > 2) return stem;
  const limit = Math.max(1, Math.min(3, Math.floor(Math.max(word.length, best.length) / 3)));
  return bestD <= limit ? best : undefined;
}

/** ` — did you mean "x"?` or ` (expected one of: a, b)` or ``. */
export function suggestion(word: string, candidates: string[], listIfNone = true): string {
  const n = nearest(word, candidates);
  if (n) return ` — did you mean "${n}"?`;
  if (listIfNone && candidates.length && candidates.length <= 20) return ` (expected one of: ${candidates.join(', ')})`;
  return '';
}

// ---------------------------------------------------------------------------------------------
// zod issues → problems

type AnySchema = z.ZodType;
interface ZDef {
  type: string;
  innerType?: AnySchema;
  shape?: Record<string, AnySchema>;
  options?: AnySchema[];
  valueType?: AnySchema;
  element?: AnySchema;
  in?: AnySchema;
  out?: AnySchema;
  getter?: () => AnySchema;
  catchall?: AnySchema;
}

function def(s: AnySchema): ZDef {
  return (s as unknown as { _zod: { def: ZDef } })._zod.def;
}

/** The object schemas reachable at `path` (through defaults, optionals, unions, records, arrays). */
function objectsAt(schema: AnySchema, path: KeyPath): AnySchema[] {
  let current = [schema];
  for (const seg of path) {
    const next: AnySchema[] = [];
    for (const s of current.flatMap(unwrap)) {
      const d = def(s);
      if (d.type === 'object' && d.shape && typeof seg === 'string' && d.shape[seg]) next.push(d.shape[seg]);
      else if (d.type === 'object' && d.catchall && typeof seg === 'string') next.push(d.catchall);
      else if (d.type === 'record' && d.valueType) next.push(d.valueType);
      else if (d.type === 'array' && d.element) next.push(d.element);
    }
    current = next;
  }
  return current.flatMap(unwrap).filter((s) => def(s).type === 'object');
}

function unwrap(s: AnySchema): AnySchema[] {
  const d = def(s);
  if (['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional'].includes(d.type) && d.innerType) return unwrap(d.innerType);
  if (d.type === 'pipe' && d.in) return unwrap(d.in);
  if (d.type === 'lazy' && d.getter) return unwrap(d.getter());
  if (d.type === 'union' && d.options) return d.options.flatMap(unwrap);
  return [s];
}

/** Keys the schema accepts at `path` (for "did you mean"). */
export function keysAt(schema: AnySchema, path: KeyPath): string[] {
  return [...new Set(objectsAt(schema, path).flatMap((s) => Object.keys(def(s).shape ?? {})))];
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)})`;
  if (typeof v === 'number') return `a number (${v})`;
  if (typeof v === 'boolean') return `a boolean (${v})`;
  return typeof v;
}

const EXPECTED: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean (true/false)',
  record: 'a mapping',
};

interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  expected?: string;
  keys?: string[];
  errors?: Issue[][];
  values?: unknown[];
  minimum?: number | bigint;
  maximum?: number | bigint;
  origin?: string;
  inclusive?: boolean;
}

/** Turns zod issues into problems at the right line, with a message that says what to do. */
export function zodProblems(src: YamlSource, schema: AnySchema, issues: readonly unknown[], base: KeyPath = [], rel: KeyPath = []): InputProblem[] {
  const out: InputProblem[] = [];
  for (const raw of issues) {
    const issue = raw as Issue;
    const path = [...base, ...(issue.path as Array<string | number>)];
    // Where the issue sits inside `schema` (base may place the schema's value deep in the file).
    const schemaPath = [...rel, ...(issue.path as Array<string | number>)];
    const at = (p: KeyPath, message: string, key = false): void => {
      out.push({ file: src.file, line: lineOf(src, p, { key }), path: dotted(p), message, severity: 'error' });
    };
    const value = valueAt(src.data, path);
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const k of issue.keys ?? []) {
          at([...path, k], `unknown key "${k}"${suggestion(k, keysAt(schema, schemaPath).filter((c) => !(c in ((value as object) ?? {}))))}`, true);
        }
        break;
      case 'invalid_type':
        if (value === undefined) at(path, `is required (${EXPECTED[issue.expected ?? ''] ?? issue.expected})`);
        else at(path, `expected ${EXPECTED[issue.expected ?? ''] ?? issue.expected}, got ${typeName(value)}`);
        break;
      case 'invalid_union': {
        const branches = issue.errors ?? [];
        const typeOnly = (b: Issue[]) => b.length === 1 && b[0].code === 'invalid_type' && b[0].path.length === 0;
        const deeper = branches.filter((b) => !typeOnly(b));
        const unknownKeys = (b: Issue[]) => b.filter((i) => i.code === 'unrecognized_keys' && i.path.length === 0);
        if (value === undefined) {
          at(path, `is required`);
        } else if (deeper.length >= 1 && deeper.every((b) => unknownKeys(b).length > 0)) {
          // A mapping with a misspelt key fails every mapping branch; the misspelling is the news.
          out.push(...zodProblems(src, schema, unknownKeys(deeper[0]), path, schemaPath));
        } else if (deeper.length >= 1) {
          // The value has the right shape for some branch: report that branch's own problems.
          const best = deeper.reduce((a, b) => (b.length < a.length ? b : a));
          out.push(...zodProblems(src, schema, best, path, schemaPath));
        } else {
          const expected = [...new Set(branches.map((b) => EXPECTED[b[0]?.expected ?? ''] ?? b[0]?.expected))];
          at(path, `expected ${expected.join(' or ')}, got ${typeName(value)}`);
        }
        break;
      }
      case 'invalid_value': {
        const vals = (issue.values ?? []).map((v) => JSON.stringify(v));
        const hint = typeof value === 'string' ? suggestion(value, (issue.values ?? []).map(String), false) : '';
        at(path, `${JSON.stringify(value)} is not one of ${vals.join(', ')}${hint}`);
        break;
      }
      case 'too_small':
        if (issue.origin === 'string') at(path, `must not be empty`);
        else if (issue.origin === 'array') at(path, `needs at least ${issue.minimum} item(s)`);
        else at(path, `${JSON.stringify(value)} is too small (minimum ${issue.minimum}${issue.inclusive === false ? ', exclusive' : ''})`);
        break;
      case 'too_big':
        at(path, `${JSON.stringify(value)} is too big (maximum ${issue.maximum}${issue.inclusive === false ? ', exclusive' : ''})`);
        break;
      case 'invalid_format':
      case 'custom':
      default:
        at(path, issue.message.replace(/^Invalid input: /, ''));
    }
  }
  return out;
}

/** Errors first, then warnings; each group in file/line order. */
export function sortProblems(ps: InputProblem[]): InputProblem[] {
  const rank = (p: InputProblem) => (p.severity === 'error' ? 0 : 1);
  return [...ps].sort((a, b) => rank(a) - rank(b) || byCodeUnit(a.file, b.file) || (a.line ?? 0) - (b.line ?? 0));
}
