/**
 * Small fakes for runner/report unit tests: an in-memory inventory, a scripted module, a fake
 * connection. Pure logic only; real hosts are exercised by test/e2e.
 */
import { z } from 'zod';
import type {
  Connection,
  HostFacts,
  HostSpec,
  Inventory,
  Module,
  Playbook,
  PlaySpec,
  Reporter,
  RunEvent,
  TaskSpec,
} from '../../src/core/types.js';
import { UnreachableError } from '../../src/core/types.js';
import type { RunDeps, RunOptions } from '../../src/runner/index.js';

export function host(name: string, vars: Record<string, unknown> = {}, groups: string[] = []): HostSpec {
  return {
    name,
    connection: {
      address: `10.0.0.${name.length}`,
      port: 22,
      user: 'root',
      become: false,
      knownHosts: '/dev/null',
      connectTimeoutMs: 1000,
      connectRetries: 0,
    },
    groups: ['all', ...groups],
    vars,
  };
}

/** An inventory of `names`; `groups` maps group → members. */
export function inventory(names: string[], groups: Record<string, string[]> = {}, secrets: string[] = []): Inventory {
  const hosts = new Map(names.map((n) => [n, host(n, {}, Object.keys(groups).filter((g) => groups[g].includes(n)))]));
  return {
    file: '/inv/inventory.yaml',
    dir: '/inv',
    hosts,
    groups: new Map([['all', names], ...Object.entries(groups)]),
    clusters: new Map(),
    secrets: new Set(secrets),
    warnings: [],
  };
}

let line = 1;
export function task(name: string, args: Record<string, unknown> = {}, extra: Partial<TaskSpec> = {}): TaskSpec {
  return {
    name,
    file: '/pb/site.yaml',
    line: line++,
    module: 'fake',
    args,
    tags: [],
    notify: [],
    ignoreErrors: false,
    retries: 0,
    delaySeconds: 0,
    vars: {},
    ...extra,
  };
}

export function play(name: string, tasks: TaskSpec[], extra: Partial<PlaySpec> = {}): PlaySpec {
  return {
    name,
    file: '/pb/site.yaml',
    line: 1,
    hosts: 'all',
    serial: [],
    vars: {},
    tasks,
    handlers: [],
    anyErrorsFatal: false,
    gatherFacts: false,
    tags: [],
    ...extra,
  };
}

export function playbook(...plays: PlaySpec[]): Playbook {
  return { file: '/pb/site.yaml', dir: '/pb', plays };
}

export interface Call {
  host: string;
  phase: 'plan' | 'apply';
  name?: string;
  check: boolean;
}

/** A module whose arguments script its behaviour; every plan/apply call is logged. */
export function fakeModules(calls: Call[]): Map<string, Module> {
  const counters = new Map<string, number>();
  const FakeArgs = z.strictObject({
    name: z.string().optional(),
    change: z.boolean().optional(),
    fail: z.union([z.boolean(), z.array(z.string())]).optional(),
    msg: z.string().optional(),
    data: z.record(z.string(), z.unknown()).optional(),
    crash: z.string().optional(),
    unreachable: z.boolean().optional(),
    delayMs: z.number().optional(),
    diff: z.boolean().optional(),
  });
  type A = z.infer<typeof FakeArgs>;
  const fake: Module<A> = {
    name: 'fake',
    args: FakeArgs,
    async plan(ctx, args) {
      calls.push({ host: ctx.host.name, phase: 'plan', name: args.name, check: ctx.check });
      if (args.delayMs) await new Promise((r) => setTimeout(r, args.delayMs));
      if (args.crash) throw new Error(args.crash);
      if (args.unreachable) throw new UnreachableError(ctx.host.name, `${ctx.host.name}: connection lost`);
      if (!args.change && !args.fail) return { changes: [], reason: args.msg ?? 'already fine', data: args.data };
      return {
        changes: [
          {
            description: args.msg ?? `change ${args.name ?? ''}`.trim(),
            ...(args.diff ? { diff: { path: '/etc/x.conf', before: 'a\nb\n', after: 'a\nc\n' } } : {}),
          },
        ],
        data: args.data,
      };
    },
    async apply(ctx, args) {
      calls.push({ host: ctx.host.name, phase: 'apply', name: args.name, check: ctx.check });
      const fail = args.fail === true || (Array.isArray(args.fail) && args.fail.includes(ctx.host.name));
      return { changed: !fail, failed: fail, msg: fail ? `failed on ${ctx.host.name}` : (args.msg ?? 'done'), data: args.data };
    },
  };
  // Counts attempts per host: data.n = 1, 2, 3...
  const counter: Module<{ by?: number }> = {
    name: 'counter',
    args: z.strictObject({ by: z.number().optional() }),
    async plan(ctx) {
      const n = (counters.get(ctx.host.name) ?? 0) + 1;
      counters.set(ctx.host.name, n);
      calls.push({ host: ctx.host.name, phase: 'plan', name: `counter${n}`, check: ctx.check });
      return { changes: [], reason: `n=${n}`, data: { n, stdout: `line1\nn=${n}\n`, rc: 0 } };
    },
    async apply() {
      throw new Error('not reached');
    },
  };
  return new Map<string, Module>([
    ['fake', fake as Module],
    ['counter', counter as Module],
  ]);
}

export function fakeConnection(name: string): Connection {
  return {
    hostName: name,
    async exec(cmd) {
      return { display: cmd.argv.join(' '), code: 0, stdout: '', stderr: '', ok: true, durationMs: 0 };
    },
    async close() {},
  };
}

export const facts = (name: string): HostFacts => ({
  hostname: name,
  osId: 'debian',
  osVersion: '12',
  osFamily: 'debian',
  arch: 'x86_64',
  kernel: '6.1',
  packageManager: 'apt',
  serviceManager: 'systemd',
  isRoot: true,
  hasSudo: false,
  interfaces: { eth0: ['10.0.0.1/24'] },
  cpus: 2,
  memoryMb: 2048,
});

export class CaptureReporter implements Reporter {
  events: RunEvent[] = [];
  emit(e: RunEvent): void {
    this.events.push(e);
  }
  async close(): Promise<void> {}
  of<K extends RunEvent['kind']>(kind: K): Extract<RunEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<RunEvent, { kind: K }> => e.kind === kind);
  }
  /** `host task status` lines of every task-end, in order. */
  results(): string[] {
    return this.of('task-end').map((e) => `${e.host} ${e.task} ${e.status}${e.ignored ? ' (ignored)' : ''}`);
  }
}

export interface Harness {
  calls: Call[];
  reporter: CaptureReporter;
  deps: RunDeps;
  opts: RunOptions;
  connects: string[];
  factCalls: string[];
  sleeps: number[];
  controller: AbortController;
}

/** Deps and options with fakes; `unreachable` hosts fail to connect. */
export function harness(over: Partial<RunOptions> = {}, unreachable: string[] = []): Harness {
  const calls: Call[] = [];
  const reporter = new CaptureReporter();
  const connects: string[] = [];
  const factCalls: string[] = [];
  const sleeps: number[] = [];
  const controller = new AbortController();
  const deps: RunDeps = {
    modules: fakeModules(calls),
    async connect(h) {
      connects.push(h.name);
      if (unreachable.includes(h.name)) throw new UnreachableError(h.name, `${h.name}: connect ECONNREFUSED 10.0.0.9:22`);
      return fakeConnection(h.name);
    },
    async gatherFacts(conn) {
      factCalls.push(conn.hostName);
      return facts(conn.hostName);
    },
    reporter,
    async sleep(ms) {
      sleeps.push(ms);
    },
  };
  const opts: RunOptions = { check: false, diff: false, forks: 10, extraVars: {}, signal: controller.signal, ...over };
  return { calls, reporter, deps, opts, connects, factCalls, sleeps, controller };
}
