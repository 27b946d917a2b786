/**
 * Handlebars templating for strings, files and `when`-style expressions.
 *
 * Strictness: an undefined variable is an error naming it, never an empty string, everywhere —
 * in `{{x}}`, in helper arguments (`{{eq x 1}}`) and in block conditions (`{{#if x}}`). The
 * only ways to touch a variable that may be missing are `default x fallback` and `defined x`.
 *
 * Why not Handlebars' own `strict: true`: it checks only the last segment of simple mustaches
 * (helper arguments and `#if` parameters are looked up leniently), it throws a TypeError when an
 * intermediate segment is missing (`node.x.y`), and its message names only one segment. Instead
 * we parse the template, wrap every value position in a `__rha_required` helper call that knows
 * the full path and its line, and compile that AST (lenient lookups, so a missing segment
 * yields `undefined` and our helper names the whole path). `noEscape: true` as for any config
 * file: HTML escaping would corrupt redis.conf and shell scripts.
 */
import { readFile } from 'node:fs/promises';
import Handlebars from 'handlebars';
import { quote, quoteArgv } from '../core/command.js';

/** A value as a double-quoted redis.conf word (the `redis_quote` helper; redis_auth writes the same lines). */
export function redisQuote(value: string): string {
  return '"' + value.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

type Node = hbs.AST.Node;
type Expr = hbs.AST.Expression;
type Path = hbs.AST.PathExpression;

export interface Where {
  file?: string;
  line?: number;
  path?: string;
}

/** A template that cannot be parsed or rendered; names the undefined variable, file and line. */
export class TemplateError extends Error {
  constructor(
    readonly reason: string,
    readonly where: Where = {},
    /** The undefined variable's full path (`node.rol`), when that is the problem. */
    readonly variable?: string,
  ) {
    const at = where.file ? (where.line ? `${where.file}:${where.line}` : where.file) : where.line ? `line ${where.line}` : '';
    const prefix = [at, where.path].filter(Boolean).join(' ');
    super(prefix ? `${prefix}: ${reason}` : reason);
    this.name = 'TemplateError';
  }
}

const REQUIRED = '__rha_required';
const CAPTURE = '__rha_capture';
/** Helpers whose first argument may be undefined: that is their purpose. */
const LENIENT_FIRST_ARG = new Set(['default', 'defined']);

const hb = Handlebars.create();

function isMissing(v: unknown): boolean {
  return v === undefined;
}

/** Strip Handlebars' trailing `options` argument from a helper's arguments. */
function argsOf(a: unknown[]): unknown[] {
  return a.slice(0, -1);
}

function truthy(v: unknown): boolean {
  if (v === false || v === null || v === undefined || v === 0 || Number.isNaN(v)) return false;
  if (Array.isArray(v)) return v.length > 0;
  return !['', 'false', '0', 'null', 'undefined'].includes(String(v).trim());
}

function looseEq(a: unknown, b: unknown): boolean {
  // YAML gives numbers, facts give strings: `eq redis.port "6379"` should still hold.
  if (typeof a === 'number' && typeof b === 'string') return String(a) === b;
  if (typeof a === 'string' && typeof b === 'number') return a === String(b);
  return a === b;
}

function num(v: unknown, helper: string): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (typeof v === 'boolean' || v === null || v === '' || Number.isNaN(n)) {
    throw new Error(`helper "${helper}" needs numbers, got ${JSON.stringify(v)}`);
  }
  return n;
}

const helpers: Record<string, (...a: unknown[]) => unknown> = {
  eq: (...a) => looseEq(a[0], a[1]),
  ne: (...a) => !looseEq(a[0], a[1]),
  gt: (...a) => num(a[0], 'gt') > num(a[1], 'gt'),
  ge: (...a) => num(a[0], 'ge') >= num(a[1], 'ge'),
  lt: (...a) => num(a[0], 'lt') < num(a[1], 'lt'),
  le: (...a) => num(a[0], 'le') <= num(a[1], 'le'),
  and: (...a) => argsOf(a).every(truthy),
  or: (...a) => argsOf(a).some(truthy),
  not: (...a) => !truthy(a[0]),
  /** `in x list`: list membership, substring of a string, or key of an object. */
  in: (...a) => {
    const [x, c] = a;
    if (Array.isArray(c)) return c.some((e) => looseEq(e, x));
    if (typeof c === 'string') return c.includes(String(x));
    if (c && typeof c === 'object') return Object.prototype.hasOwnProperty.call(c, String(x));
    return false;
  },
  /** `default x fallback`: x unless it is undefined or null. */
  default: (...a) => (a[0] === undefined || a[0] === null ? a[1] : a[0]),
  defined: (...a) => a[0] !== undefined,
  /** `join list [sep]`: separator defaults to one space (argv-like). */
  join: (...a) => {
    const args = argsOf(a);
    const sep = args.length > 1 ? String(args[1]) : ' ';
    return Array.isArray(args[0]) ? args[0].map(String).join(sep) : String(args[0] ?? '');
  },
  json: (...a) => JSON.stringify(a[0]),
  /** POSIX shell quote; a list becomes a quoted argv. */
  quote: (...a) => (Array.isArray(a[0]) ? quoteArgv(a[0].map(String)) : quote(String(a[0] ?? ''))),
  /** A redis.conf string argument: double-quoted, with backslash and quote escaped (sdssplitargs rules). */
  redis_quote: (...a) => redisQuote(String(a[0] ?? '')),
  /** Arithmetic for conditions such as the priority rule: `lt master (add replica weight)`. */
  add: (...a) => num(a[0], 'add') + num(a[1], 'add'),
  abs: (...a) => Math.abs(num(a[0], 'abs')),
  /** `percent x p`: p percent of x, rounded down (e.g. a maxmemory recommendation from facts.memoryMb). */
  percent: (...a) => Math.floor((num(a[0], 'percent') * num(a[1], 'percent')) / 100),
  lower: (...a) => String(a[0] ?? '').toLowerCase(),
  upper: (...a) => String(a[0] ?? '').toUpperCase(),
  [REQUIRED]: (...a) => {
    const [value, name, line] = a as [unknown, string, number];
    if (isMissing(value)) throw new MissingVariable(name, line);
    return value;
  },
  [CAPTURE]: (...a) => {
    const options = a[a.length - 1] as { data: { capture: { value: unknown } } };
    options.data.capture.value = a[0];
    return '';
  },
};
for (const [name, fn] of Object.entries(helpers)) hb.registerHelper(name, fn);

/** Names of the helpers templates may call (for validation and docs). */
export const helperNames: readonly string[] = Object.keys(helpers).filter((h) => !h.startsWith('__'));

class MissingVariable extends Error {
  constructor(
    readonly variable: string,
    readonly line: number,
  ) {
    super(`undefined variable "${variable}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// AST handling

function pathNode(original: string, loc: hbs.AST.SourceLocation): Path {
  return { type: 'PathExpression', data: false, depth: 0, parts: [original], original, loc } as unknown as Path;
}

function requiredCall(p: Path): hbs.AST.SubExpression {
  const name = p.original;
  const line = p.loc?.start.line ?? 1;
  return {
    type: 'SubExpression',
    path: pathNode(REQUIRED, p.loc),
    params: [
      p,
      { type: 'StringLiteral', value: name, original: name, loc: p.loc } as hbs.AST.StringLiteral,
      { type: 'NumberLiteral', value: line, original: line, loc: p.loc } as hbs.AST.NumberLiteral,
    ],
    hash: undefined as unknown as hbs.AST.Hash,
    loc: p.loc,
  };
}

function isPath(e: Expr | Node | undefined): e is Path {
  return !!e && e.type === 'PathExpression';
}

/** Wrap a value expression (a param or hash value) so that an undefined path throws. */
function guard(e: Expr): Expr {
  if (isPath(e)) return e.original === 'this' || e.original === '.' ? e : requiredCall(e);
  if (e.type === 'SubExpression') guardCall(e as hbs.AST.SubExpression);
  return e;
}

function guardCall(call: { path: Expr; params: Expr[]; hash?: hbs.AST.Hash }): void {
  const helper = isPath(call.path) ? call.path.original : '';
  call.params = call.params.map((p, i) => (i === 0 && LENIENT_FIRST_ARG.has(helper) ? guardInsideLenient(p) : guard(p)));
  if (call.hash) for (const pair of call.hash.pairs) pair.value = guard(pair.value);
}

/** `default (x.y) z`: the first argument may be missing, but helpers inside it still check theirs. */
function guardInsideLenient(e: Expr): Expr {
  if (e.type === 'SubExpression') guardCall(e as hbs.AST.SubExpression);
  return e;
}

function guardProgram(prog: hbs.AST.Program | undefined): void {
  if (!prog) return;
  for (const st of prog.body) guardStatement(st);
}

function guardStatement(st: hbs.AST.Statement): void {
  if (st.type === 'MustacheStatement') {
    const m = st as hbs.AST.MustacheStatement;
    const simple = m.params.length === 0 && !m.hash;
    if (simple && isPath(m.path) && !(m.path.original in helpers)) {
      // `{{x}}` becomes `{{__rha_required x "x" line}}`
      const sub = requiredCall(m.path);
      m.path = sub.path;
      m.params = sub.params;
    } else {
      guardCall(m);
    }
  } else if (st.type === 'BlockStatement') {
    const b = st as hbs.AST.BlockStatement;
    guardCall(b);
    guardProgram(b.program);
    guardProgram(b.inverse);
  }
}

function parse(src: string, where: Where): hbs.AST.Program {
  try {
    return hb.parse(src);
  } catch (e) {
    throw new TemplateError(`cannot parse template: ${describeParseError((e as Error).message)}`, { ...where, line: parseErrorLine((e as Error).message, where) });
  }
}

const TOKENS: Record<string, string> = {
  CLOSE: '"}}"',
  CLOSE_UNESCAPED: '"}}}"',
  CLOSE_SEXPR: '")"',
  OPEN_SEXPR: '"("',
  EOF: 'end of text',
  INVALID: 'character',
  OPEN: '"{{"',
};

function parseErrorLine(msg: string, where: Where): number | undefined {
  const m = /Parse error on line (\d+)/.exec(msg) ?? /on line (\d+)/.exec(msg);
  return m ? (where.line ?? 1) + Number(m[1]) - 1 : where.line;
}

/** Handlebars' parser message (snippet, caret, token list) as one line: what was unexpected, after what. */
function describeParseError(msg: string): string {
  const lines = msg.split('\n');
  const got = /got '([A-Z_]+)'/.exec(msg);
  if (lines.length >= 3 && got) {
    const col = lines[2].indexOf('^');
    const before = lines[1].slice(0, Math.max(0, col)).trimEnd();
    return `unexpected ${TOKENS[got[1]] ?? got[1]} after ${JSON.stringify(before.length > 30 ? '…' + before.slice(-30) : before)}`;
  }
  return lines.map((l) => l.trim()).filter(Boolean).join(' ');
}

const cache = new Map<string, HandlebarsTemplateDelegate>();
const COMPILE_OPTIONS = { noEscape: true, knownHelpersOnly: false } as const;

/**
 * Where compiled templates are kept between processes (cli/template-store.ts): Handlebars'
 * precompiled JavaScript per template text, so that a process starting cold does not parse and
 * compile again the templates and `when` expressions an earlier one did (issue 17: ~60-90 ms of
 * an own-process no-op). Only texts that parsed and passed the guard are given to it.
 */
export interface TemplateStore {
  get(src: string): string | undefined;
  /** `where`: the file the text came from, so that a store can keep only texts of its choosing. */
  set(src: string, code: string, where: Where): void;
}
let store: TemplateStore | undefined;

/** Forgets the templates this process compiled (the next use asks the store, or compiles). */
export function forgetCompiledTemplates(): void {
  cache.clear();
}

/** Uses `s` for compiled templates from now on (undefined: none). */
export function useTemplateStore(s: TemplateStore | undefined): void {
  store = s;
}

function compiled(src: string, where: Where): HandlebarsTemplateDelegate {
  let t = cache.get(src);
  if (!t) {
    t = fromStore(src);
    if (!t) {
      const ast = parse(src, where);
      guardProgram(ast);
      t = hb.compile(ast as unknown as string, COMPILE_OPTIONS);
      if (store) {
        try {
          store.set(src, hb.precompile(ast as unknown as string, COMPILE_OPTIONS) as unknown as string, where);
        } catch {
          /* a store only ever saves time */
        }
      }
    }
    cache.set(src, t);
  }
  return t;
}

function fromStore(src: string): HandlebarsTemplateDelegate | undefined {
  try {
    const code = store?.get(src);
    if (code === undefined) return undefined;
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const spec = new Function(`return (${code});`)() as TemplateSpecification;
    return hb.template(spec) as HandlebarsTemplateDelegate;
  } catch {
    return undefined;
  }
}

function run(src: string, vars: Record<string, unknown>, where: Where, data?: Record<string, unknown>): string {
  const t = compiled(src, where);
  try {
    return t(vars, { data, allowProtoPropertiesByDefault: false });
  } catch (e) {
    if (e instanceof MissingVariable) {
      const line = where.line !== undefined ? where.line + e.line - 1 : where.file ? e.line : undefined;
      throw new TemplateError(`undefined variable "${e.variable}"`, { ...where, line }, e.variable);
    }
    if (e instanceof TemplateError) throw e;
    const err = e as Error & { lineNumber?: number };
    const line = err.lineNumber !== undefined && where.line !== undefined ? where.line + err.lineNumber - 1 : (err.lineNumber ?? where.line);
    throw new TemplateError(err.message.replace(/\n[\s\S]*$/, ''), { ...where, line });
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/** Returns the rendered string; an undefined variable throws a TemplateError naming it. */
export function renderString(src: string, vars: Record<string, unknown>, where: Where = {}): string {
  if (!src.includes('{{')) return src;
  return run(src, vars, where);
}

const SINGLE = /^\s*\{\{\{?\s*([^{}]*?)\s*\}?\}\}\s*$/;

/** The expression inside a string that is exactly one `{{ expr }}`, else undefined. */
export function singleExpression(src: string): string | undefined {
  const m = SINGLE.exec(src);
  if (!m || m[1].startsWith('#') || m[1].startsWith('/') || m[1].startsWith('!') || m[1].startsWith('>')) return undefined;
  return m[1];
}

/** The raw value of a brace-less expression (`eq node.role "master"`, `cluster.redis.port`). */
export function evalExpression(expr: string, vars: Record<string, unknown>, where: Where = {}): unknown {
  const capture = { value: undefined as unknown };
  run(captureSource(expr, where), vars, where, { capture });
  return capture.value;
}

const captureSources = new Map<string, string>();

/**
 * `{{__rha_capture (helper args)}}` or `{{__rha_capture path}}`: a bare path must not become a helper call.
 * Remembered per expression (a `when` is evaluated on every host, every run of the task): parsing
 * it each time was most of evalExpression's cost. Only successes are kept, so a bad expression
 * throws with its own `where` every time.
 */
function captureSource(expr: string, where: Where): string {
  let src = captureSources.get(expr);
  if (src === undefined) {
    src = storedCaptureSource(expr, where) ?? parseCaptureSource(expr, where);
    captureSources.set(expr, src);
  }
  return src;
}

/**
 * The capture of an expression from rha's own files as an earlier process wrapped it: a cold start
 * parsed each `when` that calls a helper once more here, ~5 ms of a no-op.
 */
function storedCaptureSource(expr: string, where: Where): string | undefined {
  if (BARE_PATH.test(expr)) return undefined;
  return storedText(`\0capture\0${expr}`, where, () => parseCaptureSource(expr, where));
}

/**
 * What an earlier process kept in the store under `key`; else `make()`'s text, handed to the store
 * when the text comes from a file (the store keeps only rha's own files: a user's may hold
 * secrets); undefined without a store, or with nothing kept and no file.
 */
function storedText(key: string, where: Where | undefined, make: () => string): string | undefined {
  if (!store) return undefined;
  try {
    const kept = store.get(key);
    if (kept !== undefined) return kept;
  } catch {
    /* made again */
  }
  if (!where?.file) return undefined;
  const text = make();
  try {
    store.set(key, text, where);
  } catch {
    /* a store only ever saves time */
  }
  return text;
}

/** A bare dotted path (`cluster.redis.port`, `check_mode`): what Handlebars parses as a mustache with no arguments. */
const BARE_PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function parseCaptureSource(expr: string, where: Where): string {
  // Most expressions are bare paths: no parse needed to know they are not a helper call (a cold
  // Handlebars parser was ~12 ms of a no-op provision's start-up).
  if (BARE_PATH.test(expr)) return `{{${CAPTURE} ${expr}}}`;
  const ast = parse(`{{${expr}}}`, where);
  const st = ast.body[0] as hbs.AST.MustacheStatement | undefined;
  if (ast.body.length !== 1 || !st || st.type !== 'MustacheStatement') {
    throw new TemplateError(`not a single expression: ${JSON.stringify(expr)}`, where);
  }
  const call = st.params.length > 0 || !!st.hash;
  return call ? `{{${CAPTURE} (${expr})}}` : `{{${CAPTURE} ${expr}}}`;
}

/**
 * Returns the value with every string rendered (deeply). A string that is exactly one
 * `{{ expr }}` returns the expression's raw value, so numbers, lists and objects keep their type.
 */
export function renderValue(value: unknown, vars: Record<string, unknown>, where: Where = {}): unknown {
  if (typeof value === 'string') {
    const expr = singleExpression(value);
    if (expr !== undefined) return evalExpression(expr, vars, where);
    return renderString(value, vars, where);
  }
  if (Array.isArray(value)) return value.map((v, i) => renderValue(v, vars, sub(where, String(i))));
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderValue(v, vars, sub(where, k))]));
  }
  return value;
}

function sub(where: Where, key: string): Where {
  return { ...where, path: where.path ? `${where.path}.${key}` : key };
}

/** Whether a brace-less expression is truthy: false for false, 0, null, undefined, "", "false", "0", "null", "undefined", []. */
export function evalCondition(expr: string, vars: Record<string, unknown>, where: Where = {}): boolean {
  return truthy(evalExpression(expr, vars, where));
}

/** Throws a TemplateError when a brace-less expression does not parse. */
export function checkExpression(expr: string, where: Where = {}): void {
  captureSource(expr, where);
}

/** Throws a TemplateError when a template does not parse. */
export function checkTemplate(src: string, where: Where = {}): void {
  parse(src, where);
}

/** Returns the rendered content of a template file (cached compile, keyed by content). */
export async function renderTemplateFile(path: string, vars: Record<string, unknown>): Promise<string> {
  const src = await readFile(path, 'utf8');
  return run(src, vars, { file: path }, undefined);
}

/**
 * Combines several conditions (Ansible's `when:` list) into one expression that holds when all do.
 */
export function joinConditions(exprs: string[]): string {
  if (exprs.length === 1) return exprs[0];
  return 'and ' + exprs.map((e) => (captureSource(e, {}).includes(`${CAPTURE} (`) ? `(${e})` : e)).join(' ');
}

/**
 * Returns the top-level variable names a template (or, with `expression`, a brace-less
 * expression) reads, in first-use order. Names used only inside `#each`/`#with` bodies refer to
 * the loop item and are left out; `@root.x` and `../x` count as `x`.
 */
export function referencedVariables(src: string, opts: { expression?: boolean } = {}): string[] {
  return [...new Set(referencedVariablesAt(src, opts).map((r) => r.name))];
}

/** Like referencedVariables, with the (1-based) line of each name's first use. Throws TemplateError when it does not parse. */
export function referencedVariablesAt(
  src: string,
  opts: { expression?: boolean; where?: Where } = {},
): ReadonlyArray<Readonly<{ name: string; line: number; parts: string[] }>> {
  // A pure function of the text (its lines count from the text's first line; `where` only places
  // a parse error, and errors are not kept): validate asks for the same templates on every run,
  // and the keeper (src/cli/keeper.ts) runs many. Bounded, since a keeper lives for 500 runs.
  const key = (opts.expression ? 'e\0' : 't\0') + src;
  const known = referenced.get(key);
  if (known) return known;
  const out = bareReference(src, opts.expression === true) ?? storedReferences(key, src, opts) ?? scanReferences(src, opts);
  if (referenced.size >= REFERENCED_MAX) referenced.clear();
  referenced.set(key, out);
  return out;
}

const referenced = new Map<string, ReadonlyArray<Readonly<{ name: string; line: number; parts: string[] }>>>();

/**
 * A text's variables as the store kept them from an earlier process (storedText): validate
 * parsed every `when` of site.yaml on each cold start (~10 ms).
 */
function storedReferences(key: string, src: string, opts: { expression?: boolean; where?: Where }): Array<{ name: string; line: number; parts: string[] }> | undefined {
  const text = storedText(`\0refs\0${key}`, opts.where, () => JSON.stringify(scanReferences(src, opts)));
  try {
    return text === undefined ? undefined : (JSON.parse(text) as Array<{ name: string; line: number; parts: string[] }>);
  } catch {
    return undefined; // an unreadable entry: scanned again
  }
}
const REFERENCED_MAX = 4096;

const ONE_MUSTACHE = /^[ \t]*(?:\{\{[ \t]*([^{}\n]*?)[ \t]*\}\}|\{\{\{[ \t]*([^{}\n]*?)[ \t]*\}\}\})[ \t]*$/;

/**
 * The one variable of a one-line `{{ a.b.c }}` (or expression `a.b.c`), without the parser: most
 * of what validate scans is that, and parsing it was ~10 ms of every run's start. Anything else
 * (helper names, literals, `this`, several mustaches, whitespace control) goes to scanReferences.
 */
function bareReference(src: string, expression: boolean): Array<{ name: string; line: number; parts: string[] }> | undefined {
  let expr: string | undefined = src;
  if (!expression) {
    const m = ONE_MUSTACHE.exec(src);
    expr = m?.[1] ?? m?.[2];
  }
  if (expr === undefined || !BARE_PATH.test(expr)) return undefined;
  const parts = expr.split('.');
  if (parts[0] === 'this' || parts[0] in helpers || ['true', 'false', 'null', 'undefined'].includes(expr)) return undefined;
  return [{ name: parts[0], line: 1, parts }];
}

/** What the parser finds (referencedVariablesAt's answer without its shortcut; tests hold the two equal). */
export function scanReferences(src: string, opts: { expression?: boolean; where?: Where }): Array<{ name: string; line: number; parts: string[] }> {
  const ast = opts.expression ? parse(`{{${src}}}`, opts.where ?? {}) : parse(src, opts.where ?? {});
  // One entry per distinct path (`cluster.redis.port`), so validate can check nested keys too.
  const out: Array<{ name: string; line: number; parts: string[] }> = [];
  let line = 1;
  const add = (n: string, parts: string[] = [n]) => {
    const key = parts.join('.');
    if (!out.some((r) => r.parts.join('.') === key)) out.push({ name: n, line, parts });
  };
  const visitExpr = (e: Expr | undefined, scope: ScopeInfo): void => {
    if (!e) return;
    if (isPath(e)) {
      line = e.loc?.start.line ?? line;
      const parts = e.parts as string[];
      if (e.data) {
        if (parts[0] === 'root' && parts[1]) add(parts[1], parts.slice(1));
        return;
      }
      if (!parts.length) return; // `this`
      if (e.depth > 0) {
        if (e.depth >= scope.depth && parts[0]) add(parts[0]);
        return;
      }
      if (/^this\b/.test(e.original) || scope.blockParams.has(parts[0])) return;
      if (scope.depth > 0) return; // inside #each/#with: the context is the item
      add(parts[0], parts);
    } else if (e.type === 'SubExpression') {
      visitCall(e as hbs.AST.SubExpression, scope);
    }
  };
  const visitCall = (c: { path: Expr; params: Expr[]; hash?: hbs.AST.Hash }, scope: ScopeInfo, simpleMustache = false) => {
    if (simpleMustache) visitExpr(c.path, scope);
    for (const p of c.params) visitExpr(p, scope);
    for (const pair of c.hash?.pairs ?? []) visitExpr(pair.value, scope);
  };
  const visitProgram = (p: hbs.AST.Program | undefined, scope: ScopeInfo) => {
    for (const st of p?.body ?? []) {
      if (st.type === 'MustacheStatement') {
        const m = st as hbs.AST.MustacheStatement;
        const simple = m.params.length === 0 && !m.hash && isPath(m.path) && !(m.path.original in helpers);
        visitCall(m, scope, simple);
      } else if (st.type === 'BlockStatement') {
        const b = st as hbs.AST.BlockStatement;
        visitCall(b, scope);
        const helper = isPath(b.path) ? b.path.original : '';
        const changesContext = helper === 'each' || helper === 'with';
        const inner: ScopeInfo = {
          depth: scope.depth + (changesContext ? 1 : 0),
          blockParams: new Set([...scope.blockParams, ...((b.program?.blockParams as string[] | undefined) ?? [])]),
        };
        visitProgram(b.program, inner);
        visitProgram(b.inverse, scope);
      }
    }
  };
  visitProgram(ast, { depth: 0, blockParams: new Set() });
  return out;
}

interface ScopeInfo {
  depth: number;
  blockParams: Set<string>;
}

