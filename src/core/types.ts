/**
 * The contracts between rha's parts. Each folder under src/ implements one side of these;
 * change them here, deliberately, and every implementation fails to compile until it follows.
 */
import type { z } from 'zod';
import type { Command, CommandResult } from './command.js';

// ---------------------------------------------------------------------------------------------
// Exit codes (documented in README): the CLI maps run outcomes to these.
export const ExitCode = {
  ok: 0,
  internalError: 1,
  hostFailed: 2,
  hostUnreachable: 3,
  invalidInput: 4,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

// ---------------------------------------------------------------------------------------------
// Input errors: everything wrong with user input is reported as one of these, before any host is
// touched. `file:line key.path: message` is the printed form.
export interface InputProblem {
  file: string;
  line?: number;
  column?: number;
  /** Dotted key path inside the file, e.g. `clusters.cache.keepalived.priority.master`. */
  path?: string;
  message: string;
  severity: 'error' | 'warning';
}

/** Thrown (only) for invalid configuration; carries every problem found, errors first. */
export class InputError extends Error {
  constructor(readonly problems: InputProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'InputError';
  }
}

/** `inventory.yaml:14 clusters.cache.priority.master: message`, always one line (see `printable`). */
export function formatProblem(p: InputProblem): string {
  const where = p.line ? `${p.file}:${p.line}` : p.file;
  return printable(`${where}${p.path ? ` ${p.path}` : ''}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`);
}

/**
 * Control characters made visible: a key or value echoed from the user's file could otherwise
 * split a message into two lines (a forged second error), move the cursor or recolour the
 * terminal. C0/C1 controls, DEL, line/paragraph separators and bidi overrides become `\n`,
 * `\t`, `\r` or `\uXXXX`, as in JSON.
 */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Resolved inventory (what src/inventory produces after YAML → zod → normalise → rules).

export interface SecretValue {
  /** Where it came from, for messages: `env REDIS_PASSWORD`, `inventory.yaml:12`. */
  source: string;
  value: string;
}

export interface HostConnectionSpec {
  address: string;
  port: number; // default 22
  user: string; // default root
  /** Absolute path of a private key file; when absent, ssh-agent (SSH_AUTH_SOCK) or password. */
  privateKey?: string;
  password?: SecretValue;
  /** sudo for tasks with become (default true when user is not root). */
  become: boolean;
  becomePassword?: SecretValue;
  /** Absolute path of the known_hosts file (default ~/.ssh/known_hosts). */
  knownHosts: string;
  connectTimeoutMs: number; // default 10000
  /** Extra connection attempts after the first fails to connect (not auth failures). */
  connectRetries: number; // default 2
  /** Reach the host through this jump host (its own jump, if any, first): ssh's ProxyJump. */
  jump?: JumpHostSpec;
}

/** A jump (bastion) host: an inventory host or one named only by ProxyJump / `jump:`. */
export interface JumpHostSpec {
  /** The inventory host's name, or the `[user@]host[:port]` as written. */
  name: string;
  connection: HostConnectionSpec;
}

export interface HostSpec {
  name: string;
  connection: HostConnectionSpec;
  /** Group names this host belongs to (directly or through children), always includes `all`. */
  groups: string[];
  /** Variables after inventory precedence (all < groups < host < cluster-derived), see README. */
  vars: Record<string, unknown>;
}

export type NodeRole = 'master' | 'replica';

/** One HA pair. Redis/keepalived settings are filled in by later issues; kept as typed records. */
export interface ClusterSpec {
  name: string;
  /** Initial preference only: the live master is decided from live state. */
  master: string;
  replica: string;
  vip: string; // address/prefix, e.g. 10.0.0.100/24
  interface: string;
  redis: Record<string, unknown>;
  keepalived: Record<string, unknown>;
}

export interface Inventory {
  file: string;
  dir: string;
  hosts: Map<string, HostSpec>;
  /** Group name → host names (flattened through children), including `all` and one per cluster. */
  groups: Map<string, string[]>;
  clusters: Map<string, ClusterSpec>;
  /** Every secret value in the inventory, so every printer can mask it. */
  secrets: Set<string>;
  warnings: InputProblem[];
}

// ---------------------------------------------------------------------------------------------
// Resolved playbook (what src/playbook produces).

export interface TaskSpec {
  name: string;
  /** Where it is written, for messages: file and line of the task. */
  file: string;
  line?: number;
  module: string;
  /** Raw module arguments; strings may hold Handlebars expressions, rendered per host at run time. */
  args: unknown;
  /** Handlebars expression without braces, e.g. `eq node.role "master"`. */
  when?: string;
  tags: string[];
  notify: string[];
  register?: string;
  ignoreErrors: boolean;
  retries: number; // 0 = no retry
  delaySeconds: number;
  until?: string;
  changedWhen?: string;
  failedWhen?: string;
  become?: boolean;
  vars: Record<string, unknown>;
  /** Handler name, for handlers; also matched by `listen`. */
  listen?: string[];
}

export interface PlaySpec {
  name: string;
  file: string;
  line?: number;
  /** Host pattern: `all`, a group, a host, `a:b` (union), `a:&b` (intersection), `a:!b` (minus). */
  hosts: string;
  /** Batch sizes for rolling runs: numbers or percentages like "50%". Empty = all at once. */
  serial: Array<number | string>;
  vars: Record<string, unknown>;
  tasks: TaskSpec[];
  handlers: TaskSpec[];
  anyErrorsFatal: boolean;
  maxFailPercentage?: number;
  gatherFacts: boolean;
  become?: boolean;
  tags: string[];
}

export interface Playbook {
  file: string;
  dir: string;
  plays: PlaySpec[];
}

// ---------------------------------------------------------------------------------------------
// Connections (src/connection): one per host, reused for the whole run.

export interface Connection {
  readonly hostName: string;
  /** Runs a command; never throws for a non-zero exit (that is a result), only if the link is gone. */
  exec(cmd: Command): Promise<CommandResult>;
  close(): Promise<void>;
}

/** Thrown by connection code when a host cannot be reached or authenticated: the host is `unreachable`. */
export class UnreachableError extends Error {
  constructor(
    readonly hostName: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnreachableError';
  }
}

// ---------------------------------------------------------------------------------------------
// Facts (src/facts): gathered once per host, in one round-trip.

export interface HostFacts {
  hostname: string;
  /** `debian`, `ubuntu`, `rhel`, `centos`, `rocky`, `almalinux`, `fedora`, ... (ID from os-release). */
  osId: string;
  osVersion: string;
  /** `debian` or `rhel` (from ID_LIKE / ID), or `unknown`. */
  osFamily: 'debian' | 'rhel' | 'unknown';
  arch: string; // uname -m
  kernel: string;
  packageManager: 'apt' | 'dnf' | 'yum' | 'none';
  /** `systemd` when systemd is PID 1, otherwise `plain` (pidfile supervision). */
  serviceManager: 'systemd' | 'plain';
  isRoot: boolean;
  hasSudo: boolean;
  /** Interface name → IPv4 CIDRs on it, e.g. { eth0: ['10.0.0.11/24'] }. */
  interfaces: Record<string, string[]>;
  cpus: number;
  memoryMb: number;
}

// ---------------------------------------------------------------------------------------------
// Modules (src/modules): a module plans, then the runner applies.

export interface FileDiff {
  path: string;
  before: string;
  after: string;
}

export interface PlannedChange {
  /** One line a person reads in check mode: `write /etc/redis/redis.conf (mode 0640)`. */
  description: string;
  diff?: FileDiff;
}

export interface Plan<S = unknown> {
  /** Empty = nothing to do; then `reason` says why ("redis.conf is up to date"). */
  changes: PlannedChange[];
  reason?: string;
  /** Module-private state carried from plan to apply (e.g. the rendered content). */
  state?: S;
  /** Values exposed to `register` even when nothing changes. */
  data?: Record<string, unknown>;
}

export interface ModuleOutcome {
  changed: boolean;
  failed: boolean;
  msg: string;
  diffs?: FileDiff[];
  warnings?: string[];
  /** Exposed to `register` (and `until`/`changed_when`/`failed_when` expressions). */
  data?: Record<string, unknown>;
}

export interface TaskContext {
  host: HostSpec;
  conn: Connection;
  facts: HostFacts;
  check: boolean;
  diff: boolean;
  /** Whether this task runs with become. */
  become: boolean;
  /** All variables visible to the task (already merged by precedence), for modules that render. */
  vars: Record<string, unknown>;
  /** Folders to resolve relative `src:`/template paths against, searched in order. */
  searchPaths: string[];
  /** The file the task was written in (the template store keeps only texts of rha's own files). */
  taskFile?: string;
  /** Every secret string of the run, for masking diffs and messages. */
  secrets: ReadonlySet<string>;
  /** A warning shown in the recap for this host. */
  warn(message: string): void;
  /** Aborted on Ctrl-C: long-running steps should stop. */
  signal: AbortSignal;
  /** The whole inventory, for modules that coordinate a pair (set by the runner). */
  inventory?: Inventory;
  /** A connection to another inventory host from the run's pool, for modules that read a peer's live state. */
  connectTo?(hostName: string): Promise<Connection>;
  /** Whether another host failed earlier in this run (set by the runner), for modules that must not lean on it. */
  hostFailed?(hostName: string): boolean;
  /** Reads the runner already made for this task (see Module.reads); runScript consults it first. */
  readAhead?: ReadAhead;
  /**
   * Live-state reads shared by the hosts of the play batch (runner/observations.ts): `read` runs
   * once per key while nothing was applied since; `fresh` accepts only a read made in this step.
   * A plan that reuses an older read may conclude only "nothing to do" from it.
   */
  observe?<T>(key: string, read: () => Promise<T>, opts?: { fresh?: boolean }): Promise<T>;
}

/** A read-only script a module's plan runs through runScript: the script and its positional args. */
export interface ReadSpec {
  script: string;
  args: string[];
  /**
   * What the read sends on stdin (a Redis probe's password): such a read runs as its own command
   * beside the batch, never in it, and is handed only to a read with the same stdin.
   */
  stdin?: string;
  /** A slow read (it waits for the host): its own command beside the batch, so the batch's other reads need not wait for it. */
  alone?: boolean;
  /** Runs with this become whatever the task's (false: as the login user); then its own command. */
  become?: boolean;
  /** The same read done for many paths at once (a few programs in all instead of a few each). */
  bulk?: { reader: BulkReader; path: string };
}

/** Reads many paths in one script, and tells what the single read would have printed for each. */
export interface BulkReader {
  /** Reads every path in "$@". */
  script: string;
  /** Per path, exactly the single read's stdout; undefined where it cannot say (that one reads alone). */
  split(stdout: string, paths: readonly string[]): Array<string | undefined>;
}

/** Outputs of reads made ahead of time, while nothing changed on the host since (src/runner/read-ahead.ts). */
export interface ReadAhead {
  /**
   * The stdout the read produced (it exited 0), or undefined when it was not read ahead. Waits
   * for a batch still in flight (the runner starts it beside the task's own first command).
   */
  take(script: string, args: readonly string[], become: boolean, stdin?: string): Promise<string | undefined>;
}

export interface Module<A = unknown, S = unknown> {
  name: string;
  /** Validates rendered arguments. Unknown keys must be rejected (use z.strictObject). */
  args: z.ZodType<A>;
  /** Reads the host's state and returns what it would change. Must not change anything. */
  plan(ctx: TaskContext, args: A): Promise<Plan<S>>;
  /**
   * The read-only scripts plan() runs first, when they follow from the arguments alone. The runner
   * may then run the reads of several such tasks in one command before them (one round trip and
   * one process per host instead of one per task) and hand each plan its output. A module with
   * reads (even none, like assert) also promises that a task of it ending ok changed nothing.
   * `facts` are the host's (UNKNOWN_FACTS before they were gathered); `vars` the task's.
   */
  reads?(args: A, opts: { diff: boolean; facts: HostFacts; vars: Record<string, unknown> }): ReadSpec[];
  /**
   * For a module without `reads`: a task of it that ends ok (or skipped) changed nothing on any
   * host, so reads made ahead for later tasks still hold after it (runner/read-ahead.ts).
   */
  keepsReads?: boolean;
  /** Its apply may change hosts other than its own (a peer): a change clears every host's reads ahead. */
  actsOnPeers?: boolean;
  /** Applies a non-empty plan. Called only when not in check mode. */
  apply(ctx: TaskContext, args: A, plan: Plan<S>): Promise<ModuleOutcome>;
}

// ---------------------------------------------------------------------------------------------
// Runner events (src/runner emits, src/report renders).

export type TaskStatus = 'ok' | 'changed' | 'failed' | 'skipped' | 'unreachable';

export interface HostRecap {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  ignored: number;
}

export type RunEvent =
  | { kind: 'run-start'; playbook: string; inventory: string; check: boolean; hosts: string[] }
  | { kind: 'play-start'; play: string; hosts: string[]; batch?: { index: number; count: number } }
  | { kind: 'task-start'; play: string; task: string; host: string; handler: boolean }
  | {
      kind: 'task-end';
      play: string;
      task: string;
      host: string;
      handler: boolean;
      status: TaskStatus;
      /** A more precise word than `status` for people: `host key refused` for a host rha would not trust (status unreachable). */
      label?: string;
      /** One line: what changed, the reason nothing did, or why it failed (secrets masked). */
      msg: string;
      changes?: PlannedChange[];
      diffs?: FileDiff[];
      warnings?: string[];
      ignored?: boolean;
      durationMs: number;
    }
  | { kind: 'warning'; host?: string; msg: string }
  | { kind: 'play-end'; play: string }
  | { kind: 'recap'; hosts: Record<string, HostRecap>; warnings: Record<string, string[]>; durationMs: number; interrupted: boolean };

export interface Reporter {
  /** Receives every event in order. Must not throw. */
  emit(event: RunEvent): void;
  /** Flushes and releases the terminal. */
  close(): Promise<void>;
}
