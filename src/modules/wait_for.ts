/**
 * wait_for: a port open/closed, a path present/absent, or a command exiting 0. Polls on the host in
 * one command (a sh loop), not one round-trip per poll. Met = ok (never changed).
 */
import { z } from 'zod';
import { describeFailure, maskSecrets, quoteArgv } from '../core/command.js';
import type { Module, TaskContext } from '../core/types.js';
import { absPathArg, argvArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';
import { failed, ok, runScript } from './lib/run.js';

const waitForArgs = z
  .strictObject({
    port: z.number().int().min(1).max(65535).optional(),
    host: z.string().regex(/^[A-Za-z0-9.:_-]+$/, 'not a host name or address').default('127.0.0.1'),
    path: absPathArg.optional(),
    /** A command (argv list, or a string run by sh -c) that must exit 0. */
    command: z.union([z.string().min(1).transform((c) => ['sh', '-c', c]), argvArg]).optional(),
    /** port: started (open) | stopped (closed); path: present | absent (started/stopped also accepted). */
    state: z.enum(['started', 'stopped', 'present', 'absent']).default('started'),
    timeout: z.number().nonnegative().default(60),
    interval: z.number().positive().default(1),
  })
  .refine((a) => [a.port, a.path, a.command].filter((x) => x !== undefined).length === 1, { message: 'give exactly one of port, path or command' });

export type WaitForArgs = z.infer<typeof waitForArgs>;

export interface Probe {
  kind: 'port' | 'path' | 'command';
  /** 1: met when the probe succeeds; 0: met when it fails. */
  want: 0 | 1;
  argv: string[];
  /** "port 6379 on 127.0.0.1 to be open" */
  what: string;
  /** "port 6379 on 127.0.0.1 is open" */
  metText: string;
}

/** Returns the probe for the arguments (pure). */
export function probeFor(args: WaitForArgs): Probe {
  const positive = args.state === 'started' || args.state === 'present';
  if (args.port !== undefined) {
    return { kind: 'port', want: positive ? 1 : 0, argv: [args.host, String(args.port)], what: `port ${args.port} on ${args.host} to be ${positive ? 'open' : 'closed'}`, metText: `port ${args.port} on ${args.host} is ${positive ? 'open' : 'closed'}` };
  }
  if (args.path !== undefined) {
    return { kind: 'path', want: positive ? 1 : 0, argv: [args.path], what: `${args.path} to ${positive ? 'exist' : 'be absent'}`, metText: `${args.path} ${positive ? 'exists' : 'is absent'}` };
  }
  const argv = args.command!;
  return { kind: 'command', want: positive ? 1 : 0, argv, what: `${quoteArgv(argv)} to ${positive ? 'exit 0' : 'fail'}`, metText: `${quoteArgv(argv)} ${positive ? 'exits 0' : 'fails'}` };
}

// $1 kind, $2 timeout s, $3 interval s, $4 want, then the probe's words. Prints "met SECONDS" or
// "timeout" followed by what the last probe said. bash only for /dev/tcp (dash has none).
export const POLL_SCRIPT = `kind=$1; t=$2; iv=$3; want=$4; shift 4
probe() {
  case $kind in
    port) last=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' bash "$1" "$2" 2>&1) ;;
    path) if [ -e "$1" ]; then last="$1 exists"; true; else last="$1 does not exist"; false; fi ;;
    command) last=$("$@" 2>&1 </dev/null) ;;
  esac
}
start=$(date +%s)
while :; do
  probe "$@"; rc=$?
  if { [ "$want" = 1 ] && [ "$rc" -eq 0 ]; } || { [ "$want" = 0 ] && [ "$rc" -ne 0 ]; }; then
    echo "met $(($(date +%s) - start))"; exit 0
  fi
  if [ $(($(date +%s) - start)) -ge "$t" ]; then
    echo "timeout rc=$rc"; printf '%s\\n' "$last" | tail -n 5; exit 0
  fi
  sleep "$iv"
done`;

/** Returns "met" with seconds, or "timeout" with the last observation (pure). */
export function parsePoll(stdout: string): { met: true; seconds: number } | { met: false; last: string } {
  const m = /^met (\d+)/.exec(stdout);
  if (m) return { met: true, seconds: Number(m[1]) };
  const [head = '', ...rest] = stdout.trim().split('\n');
  const rc = /rc=(\d+)/.exec(head)?.[1];
  const last = rest.join('\n').trim() || (rc !== undefined ? `exit ${rc}` : 'nothing');
  return { met: false, last };
}

async function poll(ctx: TaskContext, probe: Probe, timeout: number, interval: number) {
  const r = await runScript(ctx, POLL_SCRIPT, [probe.kind, String(Math.ceil(timeout)), String(interval), String(probe.want), ...probe.argv], {
    timeoutMs: (timeout + 30) * 1000,
  });
  if (!r.ok) throw new ModuleFailure(`wait_for: ${describeFailure(r)}`);
  return parsePoll(r.stdout);
}

export const waitForModule: Module<WaitForArgs, Probe> = {
  name: 'wait_for',
  keepsReads: true,
  args: waitForArgs,
  async plan(ctx, args) {
    // One look now: met means nothing to wait for (also honest in check mode, where nothing else ran).
    const probe = probeFor(args);
    const now = await poll(ctx, probe, 0, args.interval);
    if (now.met) return { changes: [], reason: probe.metText, state: probe };
    return { changes: [{ description: `wait up to ${args.timeout} s for ${probe.what}` }], state: probe };
  },
  async apply(ctx, args, plan) {
    const probe = plan.state!;
    const res = await poll(ctx, probe, args.timeout, args.interval);
    if (res.met) return ok(`waited ${res.seconds} s for ${probe.what}`, { data: { elapsed: res.seconds } });
    return failed(maskSecrets(`timed out after ${args.timeout} s waiting for ${probe.what}; last: ${res.last}`, ctx.secrets), { data: { last: res.last } });
  },
};
