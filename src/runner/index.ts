/**
 * The runner: plays in order, hosts of a play in `serial` batches, at most `forks` hosts at once.
 * Within a batch each task runs on every host before the next task starts (a failed host stops,
 * the others go on); notified handlers run at the end of the play. Everything it learns goes to the
 * Reporter as RunEvents; it never prints.
 */
import type {
  Connection,
  HostFacts,
  HostRecap,
  HostSpec,
  Inventory,
  Module,
  Playbook,
  PlaySpec,
  Reporter,
  TaskSpec,
} from '../core/types.js';
import { ExitCode } from '../core/types.js';
import { limitHosts, selectHosts } from '../inventory/index.js';
import { evalCondition as defaultEvalCondition, renderValue as defaultRenderValue } from '../template/index.js';
import { maskingReporter } from '../core/mask.js';
import { planBatches } from './batches.js';
import { runPool } from './pool.js';
import { emptyRecap, exitCodeFor } from './recap.js';
import { selectedByTags } from './tags.js';
import { executeTask, keepsReads, startReadAhead, type ChainTask, type TaskOutcome } from './task.js';
import { HostReadAhead } from './read-ahead.js';
import { Observations } from './observations.js';
import {
  abortableSleep,
  errorMessage,
  isUnreachable,
  unreachableLabel,
  type HostState,
  type RunContext,
  type RunOptions,
  type Where,
} from './context.js';

export { planBatches, batchSize } from './batches.js';
export { selectedByTags } from './tags.js';
export { exitCodeFor, emptyRecap } from './recap.js';
export { runPool } from './pool.js';
export type { RunOptions } from './context.js';

/** Ansible's default is 5; rha hosts mostly wait on the network and on remote builds, so 10. */
export const DEFAULT_FORKS = 10;

export interface RunDeps {
  modules: ReadonlyMap<string, Module>;
  /**
   * A connection for the host, reused for the whole run; throws UnreachableError. `forFacts`: the
   * runner gathers facts on it next (a caller may start that read while it finishes connecting).
   */
  connect(host: HostSpec, opts?: { forFacts?: boolean }): Promise<Connection>;
  gatherFacts(conn: Connection): Promise<HostFacts>;
  reporter: Reporter;
  render?: (value: unknown, vars: Record<string, unknown>, where?: Where) => unknown;
  evalCondition?: (expr: string, vars: Record<string, unknown>, where?: Where) => boolean;
  /** Abortable sleep, injectable so tests of `retries`/`delay` do not wait. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface RunSummary {
  recap: Record<string, HostRecap>;
  exitCode: ExitCode;
  interrupted: boolean;
  durationMs: number;
}

/** What every host of one batch shares: stop flags and failure counts. */
interface BatchState {
  size: number;
  failed: number;
  stopped: boolean;
}

/** Runs the playbook against the inventory; resolves with the recap and exit code, never rejects for host failures. */
export async function runPlaybook(pb: Playbook, inv: Inventory, opts: RunOptions, deps: RunDeps): Promise<RunSummary> {
  const reporter = maskingReporter(deps.reporter, inv.secrets);
  const now = deps.now ?? Date.now;
  const rc: RunContext = {
    pb,
    inv,
    opts,
    modules: deps.modules,
    connect: deps.connect,
    emit: (e) => reporter.emit(e),
    render: deps.render ?? (defaultRenderValue as RunContext['render']),
    evalCondition: deps.evalCondition ?? (defaultEvalCondition as RunContext['evalCondition']),
    sleep: deps.sleep ?? abortableSleep,
    now,
    hostFailed: (name) => hosts.get(name)?.out === 'failed',
  };
  const started = now();
  const hosts = new Map<string, HostState>();
  const state = (name: string): HostState => {
    let s = hosts.get(name);
    if (!s) {
      const spec = inv.hosts.get(name);
      if (!spec) throw new Error(`host ${name} is not in the inventory`);
      s = { spec, registered: {}, recap: emptyRecap(), warnings: [] };
      hosts.set(name, s);
    }
    return s;
  };
  const playHosts = (play: PlaySpec): string[] =>
    limitHosts(inv, selectHosts(inv, play.hosts, { file: play.file, line: play.line, path: 'hosts' }), opts.limit);

  const allHosts = [...new Set(pb.plays.flatMap(playHosts))];
  rc.emit({ kind: 'run-start', playbook: pb.file, inventory: inv.file, check: opts.check, hosts: allHosts });

  let stopRun = false;
  const stopped = (batch?: BatchState): boolean => stopRun || opts.signal.aborted || (batch?.stopped ?? false);

  // One batch of a play, linear like Ansible's default strategy: each task finishes on every host
  // of the batch before the next task starts. That is what lets a playbook express an order across
  // hosts ("start keepalived on the master, wait for the VIP, then on the replica"). A failed host
  // stops there while the others go on; notified handlers run at the end, in definition order.
  const filter = { only: opts.tags, skip: opts.skipTags };
  const selectedTasks = (play: PlaySpec): TaskSpec[] => play.tasks.filter((task) => selectedByTags([...task.tags, ...play.tags], filter));

  // `next`: the plays that run right after this batch on exactly its hosts, each in one batch:
  // reads of their tasks may go ahead with this play's, and stay held into them.
  // `held`: the batch before this one declared this play as next, on these same hosts.
  const runBatch = async (play: PlaySpec, batchHosts: HostState[], batch: BatchState, next: PlaySpec[], held: boolean): Promise<void> => {
    const hostFailed = (hs: HostState, taskName: string): void => {
      batch.failed++;
      if (play.anyErrorsFatal && !batch.stopped) {
        batch.stopped = stopRun = true;
        warn(undefined, `any_errors_fatal: ${hs.spec.name} failed "${taskName}" in play "${play.name}", stopping all hosts`);
      } else if (
        play.maxFailPercentage !== undefined &&
        !batch.stopped &&
        (batch.failed / batch.size) * 100 > play.maxFailPercentage
      ) {
        batch.stopped = stopRun = true;
        warn(
          undefined,
          `max_fail_percentage ${play.maxFailPercentage}% exceeded in play "${play.name}" (${batch.failed} of ${batch.size} hosts failed), stopping`,
        );
      }
    };
    const active = (): HostState[] => batchHosts.filter((hs) => !hs.out);
    const onEach = (hosts: HostState[], fn: (hs: HostState) => Promise<void>): Promise<void> =>
      runPool(hosts, opts.forks, (hs) => (stopped(batch) ? Promise.resolve() : fn(hs)));

    if (play.gatherFacts) {
      await onEach(active().filter((hs) => !hs.facts), async (hs) => {
        await gatherFactsFor(rc, deps, play, hs);
        if (hs.out) hostFailed(hs, 'Gathering Facts');
      });
    }

    const notified = new Map<HostState, Set<string>>(batchHosts.map((hs) => [hs, new Set<string>()]));
    const tasks = selectedTasks(play);
    const nextTasks = next.map((p) => [p, selectedTasks(p)] as const);
    const observations = new Observations();
    for (const hs of batchHosts) {
      hs.readAhead ??= new HostReadAhead();
      if (!held) hs.readAhead.clear();
      hs.lastChanged = false;
      hs.observations = observations;
    }
    let keepReads = false;
    try {
      for (const [i, task] of tasks.entries()) {
        if (stopped(batch)) return;
        const keeps = keepsReads(rc, task);
        // The tasks from here that keep reads made before them, into the next plays when it gets
        // to the end of this one: the reads of the readers among them go ahead together
        // (read-ahead.ts), once, and again after a task changed something (then from the next
        // unchanged one).
        const chain: ChainTask[] = [];
        for (const [p, list] of [[play, tasks.slice(i)] as const, ...nextTasks]) {
          const n = list.findIndex((t) => !keepsReads(rc, t));
          chain.push(...(n < 0 ? list : list.slice(0, n)).map((t) => ({ play: p, task: t })));
          if (n >= 0 || !keeps) break;
        }
        observations.nextStep();
        let peersTouched = false;
        await onEach(active(), async (hs) => {
          if (keeps && hs.readAhead!.size === 0 && !hs.lastChanged) startReadAhead(rc, chain, hs);
          const out = await executeTask(rc, play, task, hs, false);
          hs.lastChanged = out.status === 'changed';
          // A skipped task (its `when` was false) touched nothing: the reads ahead still hold.
          if (out.status !== 'skipped' && (!keeps || out.status !== 'ok')) hs.readAhead!.clear();
          if (out.status !== 'skipped' && out.status !== 'ok' && rc.modules.get(task.module)?.actsOnPeers) peersTouched = true;
          noteNotify(task, out, notified.get(hs)!);
          if (hs.out) hostFailed(hs, task.name);
        });
        // A step that changed (or half changed) a peer: no host's reads ahead hold any more.
        if (peersTouched) for (const hs of batchHosts) hs.readAhead?.clear();
      }
      keepReads = next.length > 0;
    } finally {
      if (!keepReads) for (const hs of batchHosts) hs.readAhead?.clear();
      observations.clear();
      for (const hs of batchHosts) delete hs.observations;
    }

    // Handlers: in definition order, once each per host, only where a changed task notified them.
    // A handler may notify a later handler (the sets grow while we walk the list).
    for (const hs of active()) {
      const unknown = [...notified.get(hs)!].filter((n) => !play.handlers.some((h) => handles(h, n)));
      for (const n of unknown) warn(hs.spec.name, `"${n}" was notified but no handler of play "${play.name}" has that name or listens to it`);
    }
    for (const handler of play.handlers) {
      if (stopped(batch)) return;
      const due = active().filter((hs) => [...notified.get(hs)!].some((n) => handles(handler, n)));
      // A handler may change anything, on any host: no reads ahead hold after it.
      if (due.length) for (const hs of batchHosts) hs.readAhead?.clear();
      await onEach(due, async (hs) => {
        const out = await executeTask(rc, play, handler, hs, true);
        noteNotify(handler, out, notified.get(hs)!);
        if (hs.out) hostFailed(hs, handler.name);
      });
    }
  };

  /** The plays after play `pi` that run next on exactly `names`, each in one batch (until one does not). */
  const nextPlaysOn = (pi: number, names: string[]): PlaySpec[] => {
    const out: PlaySpec[] = [];
    for (const p of pb.plays.slice(pi + 1)) {
      const batches = planBatches(playHosts(p).filter((h) => !hosts.get(h)?.out), p.serial);
      if (batches.length !== 1 || !sameHosts(batches[0], names)) break;
      out.push(p);
    }
    return out;
  };

  const warn = (host: string | undefined, msg: string): void => {
    if (host) hosts.get(host)?.warnings.push(msg);
    rc.emit({ kind: 'warning', ...(host ? { host } : {}), msg });
  };

  let summary!: RunSummary;
  try {
    // The hosts of the batch that declared the next play as one its reads may run into.
    let heldFor: string[] | undefined;
    for (const [pi, play] of pb.plays.entries()) {
      if (stopped()) break;
      const matched = playHosts(play);
      const names = matched.filter((h) => !hosts.get(h)?.out);
      const batches = planBatches(names, play.serial);
      if (batches.length === 0) {
        rc.emit({ kind: 'play-start', play: play.name, hosts: [] });
        warn(
          undefined,
          matched.length > 0
            ? `play "${play.name}": skipped, every host it matches failed or was unreachable earlier`
            : `play "${play.name}": no hosts matched "${play.hosts}"${opts.limit ? ` with --limit ${opts.limit}` : ''}`,
        );
        rc.emit({ kind: 'play-end', play: play.name });
        continue;
      }
      for (const [i, batchHosts] of batches.entries()) {
        if (stopped()) break;
        rc.emit({
          kind: 'play-start',
          play: play.name,
          hosts: batchHosts,
          ...(batches.length > 1 ? { batch: { index: i + 1, count: batches.length } } : {}),
        });
        const batch: BatchState = { size: batchHosts.length, failed: 0, stopped: false };
        const held = heldFor !== undefined && sameHosts(heldFor, batchHosts);
        if (heldFor && !held) for (const h of heldFor) hosts.get(h)?.readAhead?.clear();
        const next = i === batches.length - 1 ? nextPlaysOn(pi, batchHosts) : [];
        heldFor = next.length ? batchHosts : undefined;
        await runBatch(play, batchHosts.map(state), batch, next, held);
        rc.emit({ kind: 'play-end', play: play.name });
        // A rolling update whose whole batch failed must not roll on to the next batch.
        if (batch.failed === batch.size && i < batches.length - 1 && !stopped()) {
          stopRun = true;
          warn(undefined, `play "${play.name}": every host of batch ${i + 1} failed, not starting the next batch`);
        }
      }
    }
  } finally {
    const recap = Object.fromEntries([...hosts].map(([n, s]) => [n, s.recap]));
    const warnings = Object.fromEntries([...hosts].filter(([, s]) => s.warnings.length > 0).map(([n, s]) => [n, s.warnings]));
    const interrupted = opts.signal.aborted;
    const durationMs = now() - started;
    rc.emit({ kind: 'recap', hosts: recap, warnings, durationMs, interrupted });
    const byPeer = Object.fromEntries([...hosts].filter(([, s]) => s.failedByPeer).map(([n, s]) => [n, s.failedByPeer!]));
    summary = { recap, exitCode: exitCodeFor(recap, interrupted, byPeer), interrupted, durationMs };
  }
  return summary;
}

function sameHosts(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((h) => b.includes(h));
}

function handles(handler: TaskSpec, name: string): boolean {
  return handler.name === name || (handler.listen ?? []).includes(name);
}

function noteNotify(task: TaskSpec, out: TaskOutcome, notified: Set<string>): void {
  if (out.status === 'changed') for (const n of task.notify) notified.add(n);
}

/** Gathers facts once per host per run, reported as a task named "Gathering Facts". */
async function gatherFactsFor(rc: RunContext, deps: RunDeps, play: PlaySpec, hs: HostState): Promise<void> {
  const base = { play: play.name, task: 'Gathering Facts', host: hs.spec.name, handler: false };
  rc.emit({ kind: 'task-start', ...base });
  const t0 = rc.now();
  try {
    hs.conn ??= await rc.connect(hs.spec, { forFacts: true });
    hs.facts = await deps.gatherFacts(hs.conn);
    hs.recap.ok++;
    const f = hs.facts;
    const msg = `${f.osId} ${f.osVersion} ${f.arch}, ${f.serviceManager}, ${f.packageManager}`;
    rc.emit({ kind: 'task-end', ...base, status: 'ok', msg, durationMs: rc.now() - t0 });
  } catch (e) {
    // Another run's lock on the host (src/lock) is a failure of this host, not unreachability.
    const locked = e instanceof Error && e.name === 'HostLockedError';
    const unreachable = !locked && (isUnreachable(e) || !hs.conn);
    hs.out = unreachable ? 'unreachable' : 'failed';
    if (unreachable) hs.recap.unreachable++;
    else hs.recap.failed++;
    rc.emit({
      kind: 'task-end',
      ...base,
      status: unreachable ? 'unreachable' : 'failed',
      ...unreachableLabel(e),
      msg: unreachable || locked ? errorMessage(e) : `gathering facts failed: ${errorMessage(e)}`,
      durationMs: rc.now() - t0,
    });
  }
}


