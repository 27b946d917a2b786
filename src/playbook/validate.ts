/**
 * validatePlaybook: everything that can be checked without touching a host — host patterns,
 * module names and arguments, expressions, variable names, template files, notify targets.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InputError, type HostFacts, type InputProblem, type Inventory, type Module, type Playbook, type PlaySpec, type TaskSpec } from '../core/types.js';
import { selectHosts } from '../inventory/patterns.js';
import { dotted, lineOf, suggestion, zodProblems, type KeyPath } from '../inventory/source.js';
import { referencedVariablesAt, TemplateError } from '../template/index.js';
import { originOf } from './load.js';

/** Names the runner provides to every task besides inventory, play, task and registered vars. */
export const RUNTIME_VARIABLES = ['inventory_hostname', 'group_names', 'groups', 'check_mode', 'facts', 'item'] as const;

export interface ValidateOptions {
  /** `-e key=value` names: known everywhere. */
  extraVars?: Record<string, unknown>;
}

/**
 * Returns the candidate files for a template `src`, in search order. Mirrors the runner
 * (src/runner searchPathsFor + src/modules/lib/paths resolveSource) so that validate and run
 * agree: the task's folder and the playbook's folder (each itself, templates/, files/), then
 * templates/ beside the playbook's folder (the repo's templates/ for shipped playbooks).
 */
export function templateCandidates(pb: Playbook, task: TaskSpec, src: string): string[] {
  if (isAbsolute(src)) return [src];
  const searchPaths: string[] = [];
  for (const d of [dirname(resolve(task.file)), pb.dir]) searchPaths.push(d, join(d, 'templates'), join(d, 'files'));
  searchPaths.push(join(pb.dir, '..', 'templates'));
  return [...new Set([...new Set(searchPaths)].flatMap((d) => [join(d, 'templates', src), join(d, src)]))];
}

/** Returns every problem found (errors and warnings); an empty list means the playbook can run. */
export function validatePlaybook(pb: Playbook, inv: Inventory, modules: ReadonlyMap<string, Module>, opts: ValidateOptions = {}): InputProblem[] {
  const problems: InputProblem[] = [];
  const registered = new Set<string>();
  for (const play of pb.plays) validatePlay(pb, play, inv, modules, opts, registered, problems);
  return problems;
}

function validatePlay(
  pb: Playbook,
  play: PlaySpec,
  inv: Inventory,
  modules: ReadonlyMap<string, Module>,
  opts: ValidateOptions,
  registered: Set<string>,
  problems: InputProblem[],
): void {
  const origin = originOf(play);
  const at = (path: KeyPath, key = false) => ({
    file: play.file,
    line: origin ? lineOf(origin.source, [...origin.path, ...path], { key }) : play.line,
    path: dotted([...(origin?.path ?? []), ...path]),
  });
  let hosts: string[] = [...inv.hosts.keys()];
  try {
    hosts = selectHosts(inv, play.hosts, at(['hosts']));
    if (hosts.length === 0) problems.push({ ...at(['hosts']), message: `pattern "${play.hosts}" matches no hosts: this play will do nothing`, severity: 'warning' });
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    problems.push(...e.problems);
  }
  const known = new Scope([...RUNTIME_VARIABLES, ...Object.keys(opts.extraVars ?? {}), ...Object.keys(play.vars)]);
  for (const h of hosts) for (const k of Object.keys(inv.hosts.get(h)?.vars ?? {})) known.add(k);
  // The shape of inventory variables (and facts) is known before any connection: nested keys can
  // be checked too (`cluster.redis.prot` is a typo now, not at render time on a host). Names that
  // play vars or -e override have another shape: they are checked by their first name only.
  const shadowed = new Set([...Object.keys(opts.extraVars ?? {}), ...Object.keys(play.vars)]);
  for (const h of hosts) {
    for (const [k, v] of Object.entries(inv.hosts.get(h)?.vars ?? {})) if (!shadowed.has(k)) known.shape(k, v);
  }
  if (!shadowed.has('facts')) known.shape('facts', FACTS_SHAPE);
  checkVarsIn(play.vars, known, at, ['vars'], play.file, problems);

  const handlerNames = new Set(play.handlers.flatMap((h) => [h.name, ...(h.listen ?? [])]));
  const playRegisters = new Set([...play.tasks, ...play.handlers].map((t) => t.register).filter((r): r is string => !!r));
  const check = (task: TaskSpec, handler: boolean) => {
    const scope = known.with([...Object.keys(task.vars), ...registered, ...(handler ? playRegisters : [])]);
    validateTask(pb, task, modules, scope, handlerNames, problems);
    if (task.register) registered.add(task.register);
  };
  play.tasks.forEach((t) => check(t, false));
  play.handlers.forEach((t) => check(t, true));
}

type At = (path: KeyPath, key?: boolean) => { file: string; line?: number; path?: string };

function validateTask(pb: Playbook, task: TaskSpec, modules: ReadonlyMap<string, Module>, known: Scope, handlers: Set<string>, problems: InputProblem[]): void {
  const origin = originOf(task);
  const at: At = (path, key = false) => ({
    file: task.file,
    line: origin ? lineOf(origin.source, [...origin.path, ...path], { key }) : task.line,
    path: dotted([...(origin?.path ?? []), ...path]),
  });
  const err = (path: KeyPath, message: string, key = false) => problems.push({ ...at(path, key), message, severity: 'error' });

  const mod = modules.get(task.module);
  if (!mod) {
    err([task.module], `unknown module "${task.module}"${suggestion(task.module, [...modules.keys()], false)}`, true);
  } else {
    const r = mod.args.safeParse(task.args);
    if (!r.success) {
      // Values with {{ }} get their type only when rendered per host: judge them at run time.
      const issues = r.error.issues.filter((i) => !templatedAlong(task.args, i.path as Array<string | number>));
      if (origin) problems.push(...zodProblems(origin.source, mod.args, issues, [...origin.path, task.module]));
      else for (const i of issues) err([task.module, ...(i.path as Array<string | number>)], i.message);
    }
  }

  // Variables used in arguments, task vars and expressions.
  checkVarsIn(task.args, known, at, [task.module], task.file, problems);
  checkVarsIn(task.vars, known, at, ['vars'], task.file, problems);
  const withSelf = known.with(task.register ? [task.register] : []);
  const exprs: Array<[string, string | undefined, Scope]> = [
    ['when', task.when, known],
    ['until', task.until, withSelf],
    ['changed_when', task.changedWhen, withSelf],
    ['failed_when', task.failedWhen, withSelf],
  ];
  for (const [key, expr, scope] of exprs) {
    if (expr === undefined) continue;
    try {
      for (const ref of referencedVariablesAt(expr, { expression: true, where: { file: task.file } })) {
        const bad = scope.problem(ref.parts);
        if (bad) err([key], bad);
      }
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      err([key], e.reason);
    }
  }

  for (const [i, n] of task.notify.entries()) {
    if (!handlers.has(n)) err(['notify', ...(task.notify.length > 1 ? [i] : [])], `no handler named "${n}" in this play${suggestion(n, [...handlers], false)}: add a handler with that name or listen: "${n}"`);
  }

  // A template's file must exist now, and its variables must be known.
  if (task.module === 'template' && task.args && typeof task.args === 'object') {
    const src = (task.args as Record<string, unknown>).src;
    if (typeof src === 'string' && !src.includes('{{')) {
      const candidates = templateCandidates(pb, task, src);
      let text: string | undefined;
      let found: string | undefined;
      for (const c of candidates) {
        try {
          text = readFileSync(c, 'utf8');
          found = c;
          break;
        } catch {
          // next candidate
        }
      }
      if (text === undefined || !found) {
        err([task.module, 'src'], `template "${src}" not found (looked in: ${candidates.join(', ')})`);
      } else {
        try {
          for (const ref of referencedVariablesAt(text, { where: { file: found } })) {
            const bad = known.problem(ref.parts);
            if (bad) problems.push({ file: found, line: ref.line, message: `${bad} (template used by ${task.file}:${task.line ?? '?'})`, severity: 'error' });
          }
        } catch (e) {
          if (!(e instanceof TemplateError)) throw e;
          problems.push({ file: found, line: e.where.line, message: e.reason, severity: 'error' });
        }
      }
    }
  }
}

/**
 * The variable names a task may use, and for those whose value is known before connecting
 * (inventory vars, facts) their values on every host of the play, to check nested keys.
 */
class Scope extends Set<string> {
  private readonly shapes = new Map<string, unknown[]>();

  /** Records `value` as one host's value of `name`. */
  shape(name: string, value: unknown): void {
    const list = this.shapes.get(name) ?? [];
    list.push(value);
    this.shapes.set(name, list);
  }

  /** A copy with more names; those shadow any known shape (registered results, task vars). */
  with(names: Iterable<string>): Scope {
    const s = new Scope(this);
    const extra = new Set(names);
    for (const n of extra) s.add(n);
    for (const [k, v] of this.shapes) if (!extra.has(k)) s.shapes.set(k, v);
    return s;
  }

  /** The message for a reference that cannot resolve (`cluster.redis.prot`), or undefined. */
  problem(parts: string[]): string | undefined {
    const [name, ...rest] = parts;
    if (!this.has(name)) return unknownVariable(name, this);
    for (const root of this.shapes.get(name) ?? []) {
      let v: unknown = root;
      for (const [i, key] of rest.entries()) {
        // Only plain objects have a known set of keys; lists, null and scalars are left to run time.
        if (v === null || typeof v !== 'object' || Array.isArray(v)) break;
        if (!Object.prototype.hasOwnProperty.call(v, key)) {
          const at = [name, ...rest.slice(0, i)].join('.');
          return `unknown variable "${[at, key].join('.')}": ${at} has no key "${key}"${suggestion(key, Object.keys(v), false)}`;
        }
        v = (v as Record<string, unknown>)[key];
      }
    }
    return undefined;
  }
}

/** Every key facts have (values are placeholders): `facts.*` references are checked against it. */
const FACTS_SHAPE: Record<keyof HostFacts, unknown> = {
  hostname: '', osId: '', osVersion: '', osFamily: '', arch: '', kernel: '', packageManager: '', serviceManager: '',
  isRoot: false, hasSudo: false, interfaces: null, cpus: 0, memoryMb: 0,
};

function unknownVariable(name: string, known: Set<string>): string {
  return `unknown variable "${name}"${suggestion(name, [...known], false)}: define it in the inventory, play or task vars, or register it in an earlier task`;
}

/** Checks every string inside `value` for template syntax and unknown top-level variables. */
function checkVarsIn(value: unknown, known: Scope, at: At, path: KeyPath, file: string, problems: InputProblem[]): void {
  if (typeof value === 'string') {
    if (!value.includes('{{')) return;
    try {
      for (const ref of referencedVariablesAt(value, { where: { file } })) {
        const bad = known.problem(ref.parts);
        if (bad) problems.push({ ...at(path), message: bad, severity: 'error' });
      }
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      problems.push({ ...at(path), file, message: e.reason, severity: 'error' });
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkVarsIn(v, known, at, [...path, i], file, problems));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) checkVarsIn(v, known, at, [...path, k], file, problems);
  }
}

/** Whether any value from the root to `path` (inclusive) is a string holding a {{ }} expression. */
function templatedAlong(root: unknown, path: ReadonlyArray<PropertyKey>): boolean {
  let v = root;
  for (let i = 0; ; i++) {
    if (typeof v === 'string' && v.includes('{{')) return true;
    if (i >= path.length || v === null || typeof v !== 'object') return false;
    v = (v as Record<PropertyKey, unknown>)[path[i]];
  }
}
