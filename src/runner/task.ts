/**
 * One task on one host: vars → `when` → render args → validate → plan → (check ? report : apply),
 * with `retries`/`until`, `changed_when`/`failed_when`, `register` and `ignore_errors`. Every way a
 * task can go wrong ends as a task-end event, never as an exception out of the runner.
 */
import type { FileDiff, Module, PlannedChange, PlaySpec, ReadSpec, TaskContext, TaskSpec, TaskStatus } from '../core/types.js';
import { errorMessage, isUnreachable, searchPathsFor, unreachableLabel, UNKNOWN_FACTS, type HostState, type RunContext, type Where } from './context.js';
import { magicVars, mergeVars, type VarLayers } from './vars.js';
import { ModuleFailure, PeerUnreachableFailure } from '../modules/lib/failure.js';

export interface TaskOutcome {
  status: TaskStatus;
  ignored?: boolean;
}

/** What one attempt (plan, then apply unless check mode) produced. */
interface Attempt {
  changed: boolean;
  failed: boolean;
  msg: string;
  changes: PlannedChange[];
  diffs: FileDiff[];
  warnings: string[];
  data: Record<string, unknown>;
  /** The unreachable host that caused this failure (PeerUnreachableFailure). */
  blockedBy?: string;
}

/** Runs one task (or handler) on one host, emits its events, updates recap/register; resolves with its status. */
export async function executeTask(rc: RunContext, play: PlaySpec, task: TaskSpec, hs: HostState, handler: boolean): Promise<TaskOutcome> {
  const base = { play: play.name, task: task.name, host: hs.spec.name, handler };
  rc.emit({ kind: 'task-start', ...base });
  const t0 = rc.now();
  const where = (p: string): Where => ({ file: task.file, line: task.line, path: p });
  const warnings: string[] = [];

  const finish = (status: TaskStatus, msg: string, extra: Partial<Attempt> & { label?: string } = {}): TaskOutcome => {
    const ignored = status === 'failed' && task.ignoreErrors;
    if (rc.opts.signal.aborted && status === 'failed') msg = `interrupted: ${msg}`;
    const r = hs.recap;
    if (status === 'ok') r.ok++;
    else if (status === 'changed') (r.ok++, r.changed++); // Ansible's recap counts changed tasks as ok too
    else if (status === 'skipped') r.skipped++;
    else if (status === 'unreachable') r.unreachable++;
    else if (ignored) r.ignored++;
    else {
      r.failed++;
      if (extra.blockedBy) hs.failedByPeer = (hs.failedByPeer ?? 0) + 1;
    }
    if (status === 'unreachable') hs.out = 'unreachable';
    else if (status === 'failed' && !ignored) hs.out = 'failed';
    // A host that failed or went away: the batch's shared live-state reads may no longer hold.
    if (status === 'unreachable' || status === 'failed') hs.observations?.clear();

    const allWarnings = [...(extra.warnings ?? []), ...warnings];
    hs.warnings.push(...allWarnings);
    if (task.register && status !== 'unreachable') {
      hs.registered[task.register] = registerValue(
        { changed: status === 'changed', failed: status === 'failed', msg, data: extra.data ?? {} },
        status === 'skipped',
      );
    }
    rc.emit({
      kind: 'task-end',
      ...base,
      status,
      ...(extra.label ? { label: extra.label } : {}),
      msg,
      ...(extra.changes?.length ? { changes: extra.changes } : {}),
      ...(rc.opts.diff && extra.diffs?.length ? { diffs: extra.diffs } : {}),
      ...(allWarnings.length ? { warnings: allWarnings } : {}),
      ...(ignored ? { ignored: true } : {}),
      durationMs: rc.now() - t0,
    });
    return { status, ...(ignored ? { ignored } : {}) };
  };

  try {
    const layers = taskLayers(rc, play, task, hs);
    const vars = mergeVars(layers);

    if (task.when !== undefined && task.when !== '' && !rc.evalCondition(task.when, vars, where('when'))) {
      return finish('skipped', `when: ${task.when} was false`);
    }

    const module = rc.modules.get(task.module);
    if (!module) return finish('failed', `unknown module "${task.module}"`);
    const rendered = rc.render(task.args ?? {}, vars, where(task.module));
    const parsed = module.args.safeParse(rendered);
    if (!parsed.success) return finish('failed', `invalid arguments for ${task.module}: ${formatIssues(task.module, parsed.error.issues)}`);
    const args = parsed.data;

    hs.conn ??= await rc.connect(hs.spec);
    const ctx: TaskContext = {
      host: hs.spec,
      conn: hs.conn,
      facts: hs.facts ?? UNKNOWN_FACTS,
      check: rc.opts.check,
      diff: rc.opts.diff,
      become: task.become ?? play.become ?? hs.spec.connection.become,
      vars,
      searchPaths: searchPathsFor(rc.pb, task),
      taskFile: task.file,
      secrets: rc.inv.secrets,
      warn: (m) => warnings.push(m),
      signal: rc.opts.signal,
      inventory: rc.inv,
      connectTo: (name) => {
        const peer = rc.inv.hosts.get(name);
        if (!peer) throw new Error(`host ${name} is not in the inventory`);
        return rc.connect(peer);
      },
      hostFailed: (name) => rc.hostFailed(name),
      // Only readers take reads made ahead: another module's script could match one by chance.
      ...(hs.readAhead && !handler && module.reads ? { readAhead: hs.readAhead } : {}),
      ...(hs.observations && !handler ? { observe: hs.observations.observe.bind(hs.observations) } : {}),
    };
    // Before any change on a host, the batch's shared live-state reads are forgotten.
    const onApply = () => hs.observations?.applying();

    const maxAttempts = Math.max(1, task.retries + 1);
    let a: Attempt;
    let attempts = 0;
    for (let attempt = 1; ; attempt++) {
      attempts = attempt;
      // A retry waits for the state to change: it must not see a read made before.
      if (attempt > 1) hs.observations?.clear();
      a = await attemptOnce(module, ctx, args, onApply);
      // In check mode a task with planned changes did not run: there is no output for
      // changed_when/failed_when to judge (Ansible skips them too), the plan stands.
      if (rc.opts.check && a.changed && !a.failed) break;
      // changed_when / failed_when / until see the result under the register name (or `result`).
      const resultVars = (): Record<string, unknown> => {
        const reg = registerValue(a, false, maxAttempts > 1 ? attempt : undefined);
        return mergeVars({ ...layers, registered: { ...hs.registered, [task.register ?? 'result']: reg } });
      };
      if (task.changedWhen !== undefined) a.changed = rc.evalCondition(task.changedWhen, resultVars(), where('changed_when'));
      if (task.failedWhen !== undefined) {
        const failed = rc.evalCondition(task.failedWhen, resultVars(), where('failed_when'));
        if (failed && !a.failed) a.msg = `failed_when: ${task.failedWhen} was true${a.msg ? ` (${a.msg})` : ''}`;
        a.failed = failed;
      }
      // Check mode creates none of the state an `until` waits for, so it does not retry.
      if (rc.opts.check) break;
      const done = task.until !== undefined ? rc.evalCondition(task.until, resultVars(), where('until')) : task.retries === 0 || !a.failed;
      if (done) break;
      if (attempt >= maxAttempts) {
        if (task.until !== undefined) {
          a.failed = true;
          a.msg = `until: ${task.until} still false after ${attempt} attempt${attempt === 1 ? '' : 's'}${a.msg ? ` (${a.msg})` : ''}`;
        }
        break;
      }
      if (rc.opts.signal.aborted) break;
      await rc.sleep(task.delaySeconds * 1000, rc.opts.signal);
      if (rc.opts.signal.aborted) {
        a.failed = true;
        a.msg = `stopped while waiting to retry (attempt ${attempt} of ${maxAttempts}): ${a.msg}`;
        break;
      }
    }
    const status: TaskStatus = a.failed ? 'failed' : a.changed ? 'changed' : 'ok';
    if (attempts > 1 && !a.msg.startsWith('until:')) a.msg = `${a.msg} (attempt ${attempts} of ${maxAttempts})`;
    return finish(status, a.msg, a);
  } catch (e) {
    if (isUnreachable(e)) return finish('unreachable', errorMessage(e), unreachableLabel(e));
    return finish('failed', errorMessage(e));
  }
}

/** One plan (+ apply): an empty plan is ok with its reason; check mode reports the plan as changed. */
async function attemptOnce(module: Module, ctx: TaskContext, args: unknown, onApply: () => void): Promise<Attempt> {
  try {
    const plan = await module.plan(ctx, args);
    const planData = plan.data ?? {};
    const planDiffs = plan.changes.flatMap((c) => (c.diff ? [c.diff] : []));
    if (plan.changes.length === 0) {
      return { changed: false, failed: false, msg: plan.reason ?? 'nothing to do', changes: [], diffs: [], warnings: [], data: planData };
    }
    if (ctx.check) {
      const msg = plan.changes.map((c) => c.description).join('; ');
      return { changed: true, failed: false, msg, changes: plan.changes, diffs: planDiffs, warnings: [], data: planData };
    }
    onApply();
    const o = await module.apply(ctx, args, plan);
    return {
      changed: o.changed,
      failed: o.failed,
      msg: o.msg,
      changes: plan.changes,
      diffs: o.diffs ?? planDiffs,
      warnings: o.warnings ?? [],
      data: { ...planData, ...(o.data ?? {}) },
    };
  } catch (e) {
    if (isUnreachable(e)) throw e;
    // A failure found while planning is an ordinary task failure with the module's message.
    if (e instanceof ModuleFailure) {
      const blockedBy = e instanceof PeerUnreachableFailure ? { blockedBy: e.peer } : {};
      return { changed: false, failed: true, msg: e.message, changes: [], diffs: [], warnings: [], data: e.data ?? {}, ...blockedBy };
    }
    // A module that throws is a bug in rha (or the module), not in the host: fail this task only.
    return { changed: false, failed: true, msg: `module ${module.name} crashed: ${errorMessage(e)}`, changes: [], diffs: [], warnings: [], data: {} };
  }
}

/** The value `register` stores: the module's data, then changed/failed/skipped/msg, plus stdout_lines. */
export function registerValue(
  a: Pick<Attempt, 'changed' | 'failed' | 'msg' | 'data'>,
  skipped: boolean,
  attempts?: number,
): Record<string, unknown> {
  // Data first so that a module cannot shadow the four fields every playbook relies on.
  const out: Record<string, unknown> = { ...a.data, changed: a.changed, failed: a.failed, skipped, msg: a.msg };
  if (typeof a.data.stdout === 'string' && !('stdout_lines' in a.data)) out.stdout_lines = lines(a.data.stdout);
  if (typeof a.data.stderr === 'string' && !('stderr_lines' in a.data)) out.stderr_lines = lines(a.data.stderr);
  if (attempts !== undefined) out.attempts = attempts;
  return out;
}

function lines(text: string): string[] {
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

/** The variable layers a task sees on a host (play and task vars rendered); mergeVars merges them. */
function taskLayers(rc: RunContext, play: PlaySpec, task: TaskSpec, hs: HostState): VarLayers {
  const layers: VarLayers = {
    magic: { ...magicVars(rc.inv, hs.spec, rc.opts.check), play_name: play.name },
    host: hs.spec.vars,
    play: {},
    task: {},
    registered: hs.registered,
    facts: hs.facts,
    extra: rc.opts.extraVars,
  };
  // Play and task vars may themselves hold templates (`port: "{{ cluster.redis.port }}"`).
  layers.play = asRecord(rc.render(play.vars, mergeVars(layers), { file: play.file, line: play.line, path: 'vars' }));
  layers.task = asRecord(rc.render(task.vars, mergeVars(layers), { file: task.file, line: task.line, path: 'vars' }));
  return layers;
}

/** Whether the task's module can say its reads up front (file, copy, template, group, user, sysctl, package, ...; assert reads nothing). */
export function isReader(rc: RunContext, task: TaskSpec): boolean {
  return rc.modules.get(task.module)?.reads !== undefined;
}

/**
 * Whether reads made ahead still hold after this task ends ok or skipped: its module says so
 * (a reader, or `keepsReads`), and the task does not let the playbook decide its status
 * (`changed_when`, `failed_when`).
 */
export function keepsReads(rc: RunContext, task: TaskSpec): boolean {
  const m = rc.modules.get(task.module);
  if (!m || (m.reads === undefined && !m.keepsReads)) return false;
  return task.changedWhen === undefined && task.failedWhen === undefined;
}

/** A task of the chain a read-ahead covers, with its play (it may run into the next plays). */
export interface ChainTask {
  play: PlaySpec;
  task: TaskSpec;
}

/**
 * Starts reading ahead, in one command beside the first task's own, what the reader tasks among
 * `tasks` will read first on this host (see read-ahead.ts). A task whose `when` is false now,
 * whose arguments do not render or validate yet (they may depend on a result registered in
 * between), or that runs with another become than the first reader, is left to read for itself.
 */
export function startReadAhead(rc: RunContext, tasks: readonly ChainTask[], hs: HostState): void {
  if (!hs.conn || !hs.readAhead) return;
  const become = ({ play, task }: ChainTask) => task.become ?? play.become ?? hs.spec.connection.become;
  const readers = tasks.filter(({ task }) => isReader(rc, task));
  if (!readers.length) return;
  const first = become(readers[0]);
  const reads: ReadSpec[] = [];
  for (const item of readers) {
    const { play, task } = item;
    if (become(item) !== first) continue;
    try {
      const module = rc.modules.get(task.module)!;
      const vars = mergeVars(taskLayers(rc, play, task, hs));
      // A task whose `when` is false now (or cannot be judged yet: it may name a result registered
      // in between) reads nothing ahead: most are skipped, and one that runs after all reads for itself.
      if (task.when !== undefined && task.when !== '' && !rc.evalCondition(task.when, vars, { file: task.file, line: task.line, path: 'when' })) continue;
      const parsed = module.args.safeParse(rc.render(task.args ?? {}, vars, { file: task.file, line: task.line, path: task.module }));
      if (parsed.success) reads.push(...module.reads!(parsed.data, { diff: rc.opts.diff, facts: hs.facts ?? UNKNOWN_FACTS, vars }));
    } catch {
      /* the task reports it when it runs */
    }
  }
  hs.readAhead.start(hs.conn, first, reads);
}

function asRecord(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** zod issues as `module.field: message; ...`, naming the field the user wrote. */
export function formatIssues(module: string, issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): string {
  return issues
    .map((i) => {
      const p = i.path.map(String).join('.');
      return `${p ? `${module}.${p}` : module}: ${i.message}`;
    })
    .join('; ');
}
