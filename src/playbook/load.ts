/**
 * loadPlaybook: YAML → zod → resolved Playbook, following `import_playbook` and `import_tasks`
 * (paths relative to the importing file; cycles are errors). Every problem of every file is
 * collected before throwing.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError, type InputProblem, type Playbook, type PlaySpec, type TaskSpec } from '../core/types.js';
import { dotted, lineOf, parseYaml, readInputFile, sortProblems, suggestion, zodProblems, type KeyPath, type YamlSource } from '../inventory/source.js';
import { checkExpression, joinConditions, singleExpression, TemplateError } from '../template/index.js';
import { importPlaybookSchema, importTasksSchema, playSchema, TASK_KEYS, taskSchema, type RawCondition, type RawTask } from './schema.js';

/** Where a resolved task or play was written: its file and key path, for later messages (validate). */
export interface Origin {
  source: YamlSource;
  path: KeyPath;
}
const origins = new WeakMap<object, Origin>();

/** Returns where a task or play of a loaded playbook was written (undefined for hand-built ones). */
export function originOf(item: TaskSpec | PlaySpec): Origin | undefined {
  return origins.get(item);
}

/**
 * Where loaded playbooks are kept between processes (cli/playbook-store.ts: rha's own playbooks,
 * in the user's cache folder). An entry holds the sha256 of every file the playbook was read
 * from, by absolute path, and the playbook as JSON data.
 */
export interface PlaybookStore {
  get(file: string): StoredPlaybook | undefined;
  set(file: string, entry: StoredPlaybook): void;
}
export interface StoredPlaybook {
  files: Record<string, string>;
  playbook: Playbook;
}

export interface LoadOptions {
  store?: PlaybookStore;
  /** Parse the files again, whatever this process or the store kept (for exact lines in messages). */
  fresh?: boolean;
}

/** Returns the resolved playbook; throws InputError listing every problem in every imported file. */
export async function loadPlaybook(file: string, opts: LoadOptions = {}): Promise<Playbook> {
  const kept = opts.fresh ? undefined : loaded.get(file);
  if (kept && unchanged(kept.texts)) return kept.playbook;
  const stored = opts.fresh ? undefined : fromStore(file, opts.store);
  if (stored) return stored;
  const loader = new Loader();
  const plays = loader.playbookFile(file, [], undefined);
  const errors = loader.problems.filter((p) => p.severity === 'error');
  if (errors.length) throw new InputError(sortProblems(loader.problems));
  const playbook: Playbook = { file, dir: dirname(resolve(file)), plays };
  if (loaded.size >= LOADED_MAX) loaded.clear();
  loaded.set(file, { texts: loader.texts, playbook });
  if (opts.store) {
    const files: Record<string, string> = {};
    for (const [f, text] of loader.texts) files[f] = sha256(text);
    try {
      opts.store.set(file, { files, playbook });
    } catch {
      /* a store only ever saves time */
    }
  }
  return playbook;
}

/**
 * Whether the playbook came from a store: it has no origins (originOf), so validate's messages
 * give the task's line, not the field's; load it again with `fresh` to report problems.
 */
export function isStored(pb: Playbook): boolean {
  return storedPlaybooks.has(pb);
}
const storedPlaybooks = new WeakSet<Playbook>();

/** The stored playbook when every file it was read from still has the same text; else undefined. */
function fromStore(file: string, store: PlaybookStore | undefined): Playbook | undefined {
  let entry: StoredPlaybook | undefined;
  try {
    entry = store?.get(file);
  } catch {
    return undefined;
  }
  if (!entry || entry.playbook?.file !== file || !Array.isArray(entry.playbook.plays)) return undefined;
  const texts = new Map<string, string>();
  for (const [f, hash] of Object.entries(entry.files ?? {})) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      return undefined;
    }
    if (sha256(text) !== hash) return undefined;
    texts.set(f, text);
  }
  if (!texts.size) return undefined;
  storedPlaybooks.add(entry.playbook);
  if (loaded.size >= LOADED_MAX) loaded.clear();
  loaded.set(file, { texts, playbook: entry.playbook });
  return entry.playbook;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * Playbooks loaded by this process, with the text of every file each was read from (itself and
 * its imports): a process that runs many commands (the keeper, src/cli/keeper.ts) parses and
 * checks site.yaml once, not on every run, yet sees every edit, since each file is read again and
 * compared. Loaded playbooks are never changed after loading (the runner only reads them).
 */
const loaded = new Map<string, { texts: Map<string, string>; playbook: Playbook }>();
const LOADED_MAX = 32;

/** Forgets the playbooks this process loaded (the next load reads a store or parses). */
export function forgetLoadedPlaybooks(): void {
  loaded.clear();
}

function unchanged(texts: Map<string, string>): boolean {
  for (const [file, text] of texts) {
    try {
      if (readFileSync(file, 'utf8') !== text) return false;
    } catch {
      return false;
    }
  }
  return true;
}

interface Inherited {
  when: string[];
  tags: string[];
  vars: Record<string, unknown>;
}

class Loader {
  readonly problems: InputProblem[] = [];
  /** Every file read, by absolute path, with its text. */
  readonly texts = new Map<string, string>();

  private error(src: YamlSource | string, path: KeyPath, message: string, key = false): void {
    if (typeof src === 'string') this.problems.push({ file: src, message, severity: 'error' });
    else this.problems.push({ file: src.file, line: lineOf(src, path, { key }), path: path.length ? dotted(path) : undefined, message, severity: 'error' });
  }

  /** Reads and parses a YAML file that must hold a list; undefined after reporting a problem. */
  private read(file: string, stack: string[], from: { src: YamlSource; path: KeyPath } | undefined, what: string): YamlSource | undefined {
    const abs = resolve(file);
    if (stack.includes(abs)) {
      const chain = [...stack.slice(stack.indexOf(abs)), abs].map((f) => f.split('/').pop()).join(' → ');
      this.error(from?.src ?? file, from?.path ?? [], `import cycle ${chain}: a file cannot import itself`);
      return undefined;
    }
    let text: string;
    try {
      const read = readInputFile(abs, file);
      if (read.problem) {
        this.problems.push(from ? { ...read.problem, file: from.src.file, line: lineOf(from.src, from.path), path: dotted(from.path), message: `${file} ${read.problem.message}` } : read.problem);
        return undefined;
      }
      text = read.text!;
      this.texts.set(abs, text);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      if (from) this.error(from.src, from.path, `cannot read ${what} ${file}: ${code}`);
      else this.error(file, [], `cannot read ${what}: ${code}`);
      return undefined;
    }
    const { source, problems } = parseYaml(file, text);
    this.problems.push(...problems);
    if (problems.length) return undefined;
    if (source.data === null || source.data === undefined) {
      this.error(source, [], `${what} is empty: expected a list`);
      return undefined;
    }
    if (!Array.isArray(source.data)) {
      this.error(source, [], `a ${what} is a list (each item starting with "- "), got a mapping`);
      return undefined;
    }
    return source;
  }

  playbookFile(file: string, stack: string[], from: { src: YamlSource; path: KeyPath } | undefined): PlaySpec[] {
    const src = this.read(file, stack, from, 'playbook');
    if (!src) return [];
    const inner = [...stack, resolve(file)];
    const plays: PlaySpec[] = [];
    (src.data as unknown[]).forEach((item, i) => {
      const path: KeyPath = [i];
      if (item && typeof item === 'object' && !Array.isArray(item) && 'import_playbook' in item) {
        const r = importPlaybookSchema.safeParse(item);
        if (!r.success) return void this.problems.push(...zodProblems(src, importPlaybookSchema, r.error.issues, path));
        plays.push(...this.playbookFile(join(dirname(file), r.data.import_playbook), inner, { src, path: [...path, 'import_playbook'] }));
        return;
      }
      const play = this.play(src, item, path, inner);
      if (play) plays.push(play);
    });
    return plays;
  }

  private play(src: YamlSource, item: unknown, path: KeyPath, stack: string[]): PlaySpec | undefined {
    const r = playSchema.safeParse(item);
    if (!r.success) {
      this.problems.push(...zodProblems(src, playSchema, r.error.issues, path));
      return undefined;
    }
    const p = r.data;
    const none: Inherited = { when: [], tags: [], vars: {} };
    const tasks = this.taskList(src, p.tasks, [...path, 'tasks'], stack, none, false);
    const handlers = this.taskList(src, p.handlers, [...path, 'handlers'], stack, none, true);
    const seen = new Map<string, number>();
    handlers.forEach((h, i) => {
      if (seen.has(h.name)) this.error(src, [...path, 'handlers', i, 'name'], `handler "${h.name}" is defined twice in this play: give each handler its own name (use listen: for a shared topic)`);
      seen.set(h.name, i);
    });
    const spec: PlaySpec = {
      name: p.name ?? p.hosts,
      file: src.file,
      line: lineOf(src, path),
      hosts: p.hosts,
      serial: p.serial === undefined ? [] : Array.isArray(p.serial) ? p.serial : [p.serial],
      vars: p.vars,
      tasks,
      handlers,
      anyErrorsFatal: p.any_errors_fatal,
      maxFailPercentage: p.max_fail_percentage,
      gatherFacts: p.gather_facts,
      become: p.become,
      tags: list(p.tags),
    };
    origins.set(spec, { source: src, path });
    return spec;
  }

  private taskList(src: YamlSource, items: unknown[], path: KeyPath, stack: string[], inherited: Inherited, handlers: boolean): TaskSpec[] {
    const out: TaskSpec[] = [];
    items.forEach((item, i) => {
      const tpath: KeyPath = [...path, i];
      if (!item || typeof item !== 'object' || Array.isArray(item)) {
        this.error(src, tpath, `a task is a mapping with one module key (e.g. "- command: [true]"), got ${item === null ? 'nothing' : typeof item === 'string' ? `"${item}"` : JSON.stringify(item)}`);
        return;
      }
      if ('import_tasks' in item) {
        const r = importTasksSchema.safeParse(item);
        if (!r.success) return void this.problems.push(...zodProblems(src, importTasksSchema, r.error.issues, tpath));
        const file = join(dirname(src.file), r.data.import_tasks);
        const tsrc = this.read(file, stack, { src, path: [...tpath, 'import_tasks'] }, 'task file');
        if (!tsrc) return;
        const when = this.conditions(src, r.data.when, [...tpath, 'when']);
        const inner: Inherited = {
          when: [...inherited.when, ...(when ? [when] : [])],
          tags: [...inherited.tags, ...list(r.data.tags)],
          vars: { ...inherited.vars, ...(r.data.vars ?? {}) },
        };
        out.push(...this.taskList(tsrc, tsrc.data as unknown[], [], [...stack, resolve(file)], inner, handlers));
        return;
      }
      const t = this.task(src, item as Record<string, unknown>, tpath, inherited, handlers);
      if (t) out.push(t);
    });
    return out;
  }

  private task(src: YamlSource, item: Record<string, unknown>, path: KeyPath, inherited: Inherited, handler: boolean): TaskSpec | undefined {
    const r = taskSchema.safeParse(item);
    let ok = true;
    if (!r.success) {
      this.problems.push(...zodProblems(src, taskSchema, r.error.issues, path));
      ok = false;
    }
    const others = Object.keys(item).filter((k) => !(TASK_KEYS as readonly string[]).includes(k));
    // Without the module registry (that is validate's job) a key close to a task key is a typo of it.
    const typos = others.filter((k) => suggestion(k, [...TASK_KEYS], false) !== '');
    const modules = others.filter((k) => !typos.includes(k));
    for (const k of typos) {
      if (modules.length === 0 && typos.length === 1) continue; // the only candidate: it may be a module (validate decides)
      this.error(src, [...path, k], `unknown task key "${k}"${suggestion(k, [...TASK_KEYS])}`, true);
      ok = false;
    }
    const moduleKeys = modules.length ? modules : typos.length === 1 ? typos : [];
    if (moduleKeys.length === 0) {
      this.error(src, path, `task has no module key: add exactly one (e.g. "command:", "template:")`);
      return undefined;
    }
    if (moduleKeys.length > 1) {
      this.error(src, path, `a task has exactly one module key, found ${moduleKeys.length}: ${moduleKeys.join(', ')}: split it into ${moduleKeys.length} tasks`);
      return undefined;
    }
    if (!handler && item.listen !== undefined) {
      this.error(src, [...path, 'listen'], `listen: is only for handlers: move this task under handlers: or use notify:`, true);
      ok = false;
    }
    if (!ok || !r.success) return undefined;
    const raw: RawTask = r.data;
    const module = moduleKeys[0];
    const own = this.conditions(src, raw.when, [...path, 'when']);
    const whens = [...inherited.when, ...(own ? [own] : [])];
    const until = this.conditions(src, raw.until, [...path, 'until']);
    const retries = raw.retries ?? (until ? 3 : 0);
    const spec: TaskSpec = {
      name: raw.name ?? module,
      file: src.file,
      line: lineOf(src, path),
      module,
      args: item[module] ?? {},
      when: whens.length ? joinConditions(whens) : undefined,
      tags: [...new Set([...inherited.tags, ...list(raw.tags)])],
      notify: list(raw.notify),
      register: raw.register,
      ignoreErrors: raw.ignore_errors ?? false,
      retries,
      delaySeconds: raw.delay ?? (retries > 0 ? 5 : 0),
      until,
      changedWhen: this.conditions(src, raw.changed_when, [...path, 'changed_when']),
      failedWhen: this.conditions(src, raw.failed_when, [...path, 'failed_when']),
      become: raw.become,
      vars: { ...inherited.vars, ...(raw.vars ?? {}) },
      listen: handler ? list(raw.listen) : undefined,
    };
    origins.set(spec, { source: src, path });
    return spec;
  }

  /** One brace-less expression from a condition (string, boolean or list), syntax-checked. */
  private conditions(src: YamlSource, c: RawCondition | undefined, path: KeyPath): string | undefined {
    if (c === undefined) return undefined;
    const items = Array.isArray(c) ? c : [c];
    const exprs: string[] = [];
    items.forEach((x, i) => {
      const where = Array.isArray(c) ? [...path, i] : path;
      if (typeof x === 'boolean') return void exprs.push(String(x));
      // `when: "{{ x }}"` is a common habit from Ansible: accept it as the expression inside.
      const e = (singleExpression(x) ?? x).trim();
      if (e.includes('{{')) {
        this.error(src, where, `write the expression without {{ }} (e.g. eq node.role "master")`);
        return;
      }
      try {
        checkExpression(e);
        exprs.push(e);
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err;
        this.error(src, where, `cannot parse expression ${JSON.stringify(e)}: ${err.reason.replace(/^cannot parse template: /, '')}`);
      }
    });
    return exprs.length === items.length ? joinConditions(exprs) : undefined;
  }
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}
