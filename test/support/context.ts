/**
 * Test support: a TaskContext over a real connection to a lab host, and runModule(), which does
 * what the runner does for one task: validate args → plan → (check ? stop : apply).
 */
import { spawn } from 'node:child_process';
import { displayCommand, Secret, type Command, type CommandResult } from '../../src/core/command.js';
import type { Connection, HostFacts, HostSpec, Module, ModuleOutcome, Plan, TaskContext } from '../../src/core/types.js';
import { ModuleFailure } from '../../src/modules/lib/failure.js';

export interface LabHostRef {
  name: string;
  address: string;
}

/** Returns the HostSpec that reaches a lab host as root with the lab's key and known_hosts. */
export function labHostSpec(host: LabHostRef, lab: { privateKeyPath: string; knownHostsPath: string }, vars: Record<string, unknown> = {}): HostSpec {
  return {
    name: host.name,
    connection: {
      address: host.address,
      port: 22,
      user: 'root',
      privateKey: lab.privateKeyPath,
      become: false,
      knownHosts: lab.knownHostsPath,
      connectTimeoutMs: 10_000,
      connectRetries: 2,
    },
    groups: ['all'],
    vars,
  };
}

export interface ContextOptions {
  check?: boolean;
  diff?: boolean;
  become?: boolean;
  vars?: Record<string, unknown>;
  secrets?: Iterable<string>;
  searchPaths?: string[];
}

/** Returns a TaskContext for a host and connection; warnings are collected in `warnings`. */
export function makeContext(host: HostSpec, conn: Connection, facts: HostFacts, opts: ContextOptions = {}): TaskContext & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    host,
    conn,
    facts,
    check: opts.check ?? false,
    diff: opts.diff ?? true,
    become: opts.become ?? false,
    vars: opts.vars ?? {},
    searchPaths: opts.searchPaths ?? [],
    secrets: new Set(opts.secrets ?? []),
    warn: (m) => warnings.push(m),
    signal: new AbortController().signal,
    warnings,
  };
}

export interface ModuleRun {
  plan: Plan;
  outcome: ModuleOutcome;
}

/**
 * Returns the plan and the outcome of one task, as the runner would produce them: an empty plan is
 * ok with its reason, check mode reports the plan as changed without applying, a ModuleFailure
 * thrown while planning is a failed outcome.
 */
export async function runModule(module: Module, ctx: TaskContext, rawArgs: unknown): Promise<ModuleRun> {
  const args = module.args.parse(rawArgs);
  let plan: Plan;
  try {
    plan = await module.plan(ctx, args);
  } catch (e) {
    if (e instanceof ModuleFailure) return { plan: { changes: [] }, outcome: { changed: false, failed: true, msg: e.message, data: e.data } };
    throw e;
  }
  if (plan.changes.length === 0) return { plan, outcome: { changed: false, failed: false, msg: plan.reason ?? 'nothing to do', data: plan.data } };
  if (ctx.check) return { plan, outcome: { changed: true, failed: false, msg: plan.changes.map((c) => c.description).join('; '), data: plan.data } };
  const outcome = await module.apply(ctx, args, plan);
  return { plan, outcome: { ...outcome, data: { ...(plan.data ?? {}), ...(outcome.data ?? {}) } } };
}

/**
 * Runs commands on this machine (optionally behind a prefix such as `ip netns exec NS`): the same
 * scripts the modules send over SSH, for fast tests on real files and processes.
 */
export class LocalConnection implements Connection {
  constructor(
    readonly hostName = 'local',
    private readonly prefix: string[] = [],
  ) {}

  exec(cmd: Command): Promise<CommandResult> {
    return new Promise((resolve) => {
      const env: Record<string, string> = { ...process.env } as Record<string, string>;
      for (const [k, v] of Object.entries(cmd.env ?? {})) env[k] = v instanceof Secret ? v.value : v;
      const argv = [...this.prefix, ...cmd.argv];
      const p = spawn(argv[0], argv.slice(1), { cwd: cmd.cwd, env });
      let stdout = '';
      let stderr = '';
      const t0 = Date.now();
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.stdin.on('error', () => undefined);
      p.stdin.end(cmd.stdin ?? '');
      p.on('close', (code, signal) =>
        resolve({ display: displayCommand(cmd), code, signal, stdout, stderr, ok: code === 0, durationMs: Date.now() - t0 }),
      );
    });
  }

  async close(): Promise<void> {}
}
