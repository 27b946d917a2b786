/**
 * What the runner (index.ts) and task execution (task.ts) share: the run's options and runtime,
 * per-host state, and small helpers. Its own file so that task.ts does not import index.ts.
 */
import path from 'node:path';
import type { Connection, HostFacts, HostRecap, HostSpec, Inventory, Module, Playbook, RunEvent, TaskSpec } from '../core/types.js';
import type { HostReadAhead } from './read-ahead.js';
import type { Observations } from './observations.js';

export interface RunOptions {
  check: boolean;
  diff: boolean;
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  forks: number;
  extraVars: Record<string, unknown>;
  signal: AbortSignal;
}

/** Where a template/condition is written, for error messages. */
export interface Where {
  file?: string;
  line?: number;
  path?: string;
}

/** Facts of a host whose plays all say `gather_facts: false`: nothing is known. */
export const UNKNOWN_FACTS: HostFacts = Object.freeze({
  hostname: '',
  osId: 'unknown',
  osVersion: '',
  osFamily: 'unknown',
  arch: '',
  kernel: '',
  packageManager: 'none',
  serviceManager: 'plain',
  isRoot: false,
  hasSudo: false,
  interfaces: {},
  cpus: 0,
  memoryMb: 0,
}) as HostFacts;

/** Per-host state that lives for the whole run. */
export interface HostState {
  spec: HostSpec;
  conn?: Connection;
  facts?: HostFacts;
  registered: Record<string, unknown>;
  /** Set once the host failed or was unreachable: it is out for the rest of the run. */
  out?: 'failed' | 'unreachable';
  /** Failed tasks whose cause is another host rha could not reach (PeerUnreachableFailure): the exit code blames that host. */
  failedByPeer?: number;
  recap: HostRecap;
  warnings: string[];
  /** Reads made ahead for the coming file-like tasks (src/runner/read-ahead.ts). */
  readAhead?: HostReadAhead;
  /** Whether the last task on this host changed something (no read-ahead right after a change). */
  lastChanged?: boolean;
  /** Live-state reads shared by the hosts of the current play batch (src/runner/observations.ts). */
  observations?: Observations;
}

/** The runtime shared by the run and by task execution (src/runner/task.ts). */
export interface RunContext {
  pb: Playbook;
  inv: Inventory;
  opts: RunOptions;
  modules: ReadonlyMap<string, Module>;
  connect(host: HostSpec, opts?: { forFacts?: boolean }): Promise<Connection>;
  emit(event: RunEvent): void;
  render(value: unknown, vars: Record<string, unknown>, where?: Where): unknown;
  evalCondition(expr: string, vars: Record<string, unknown>, where?: Where): boolean;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  now(): number;
  /** Whether a host failed (not: was unreachable) earlier in this run. */
  hostFailed(name: string): boolean;
}

/** Whether an error means the host cannot be reached (UnreachableError or its HostKeyChangedError, by name so fakes work too). */
export function isUnreachable(e: unknown): boolean {
  return e instanceof Error && (e.name === 'UnreachableError' || e.name === 'HostKeyChangedError');
}

/** The task-end label of an unreachable host: a changed host key is a refusal, not an outage. */
export function unreachableLabel(e: unknown): { label?: string } {
  return e instanceof Error && e.name === 'HostKeyChangedError' ? { label: 'host key refused' } : {};
}

/** The message of anything thrown. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Folders searched for a task's relative `src:` paths (modules also try each one's `templates/` or
 * `files/`): the task file's folder, the playbook's, then the playbook's parent, which is where the
 * shipped playbooks/ find the package's templates/.
 */
export function searchPathsFor(pb: Playbook, task: TaskSpec): string[] {
  return [...new Set([path.dirname(task.file), pb.dir, path.dirname(pb.dir)])];
}
