/**
 * command (argv, no shell) and shell (sh -c). Without creates/removes they run every time;
 * with them, the plan checks the path first and skips with the reason.
 */
import { z } from 'zod';
import { describeFailure, displayCommand, maskSecrets, type Command } from '../core/command.js';
import type { Module, ModuleOutcome, Plan, ReadSpec, TaskContext } from '../core/types.js';
import { absPathArg, argvArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';
import { run, runScript } from './lib/run.js';

const common = {
  chdir: absPathArg.optional(),
  /** Skip when this path exists. */
  creates: absPathArg.optional(),
  /** Skip when this path does not exist. */
  removes: absPathArg.optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
  stdin: z.string().optional(),
  /** Seconds before the command is killed (default: none). */
  timeout: z.number().positive().optional(),
};

// `command: "echo hi"` is shorthand for `command: { cmd: "echo hi" }`.
const shorthand = (v: unknown) => (typeof v === 'string' || Array.isArray(v) ? { cmd: v } : v);

const commandArgs = z.preprocess(
  shorthand,
  z
    .strictObject({ cmd: argvArg.optional(), argv: z.array(z.string()).min(1).optional(), ...common })
    .refine((a) => (a.cmd === undefined) !== (a.argv === undefined), { message: 'give exactly one of cmd or argv' })
    .transform(({ cmd, argv, ...rest }) => ({ ...rest, argv: (argv ?? cmd)! })),
);

const shellArgs = z.preprocess(
  shorthand,
  z.strictObject({ cmd: z.string().min(1), ...common }).transform(({ cmd, ...rest }) => ({ ...rest, argv: ['sh', '-c', cmd] })),
);

export type CommandArgs = z.output<typeof commandArgs>;

/** Returns the Command a command/shell task runs. */
export function buildCommand(args: CommandArgs): Command {
  return {
    argv: args.argv,
    ...(args.env ? { env: args.env } : {}),
    ...(args.stdin !== undefined ? { stdin: args.stdin } : {}),
    ...(args.chdir ? { cwd: args.chdir } : {}),
    ...(args.timeout ? { timeoutMs: args.timeout * 1000 } : {}),
  };
}

/** Returns why the command can be skipped, given whether creates/removes exist, or undefined to run it (pure). */
export function skipReason(args: Pick<CommandArgs, 'creates' | 'removes'>, exists: { creates?: boolean; removes?: boolean }): string | undefined {
  if (args.creates && exists.creates) return `creates ${args.creates} exists`;
  if (args.removes && exists.removes === false) return `removes ${args.removes} does not exist`;
  return undefined;
}

// Both paths in one round-trip: prints "1"/"0" per path.
const EXISTS = 'for p in "$@"; do if [ -e "$p" ]; then echo 1; else echo 0; fi; done';

/**
 * The read a command makes first: whether creates/removes exist (none without them). A command
 * that runs always reports changed, so one that ends ok changed nothing (Module.reads' promise);
 * a task with changed_when does not keep reads (runner).
 */
function commandReads(args: CommandArgs): ReadSpec[] {
  return args.creates || args.removes ? [{ script: EXISTS, args: [args.creates ?? '/', args.removes ?? '/'] }] : [];
}

async function planCommand(ctx: TaskContext, args: CommandArgs): Promise<Plan<Command>> {
  const cmd = buildCommand(args);
  const description = `run ${maskSecrets(displayCommand(cmd), ctx.secrets)}`;
  if (args.creates || args.removes) {
    const r = await runScript(ctx, EXISTS, [args.creates ?? '/', args.removes ?? '/']);
    if (!r.ok) throw new ModuleFailure(describeFailure(r));
    const [c, rm] = r.stdout.trim().split('\n');
    const reason = skipReason(args, { creates: c === '1', removes: rm === '1' });
    if (reason) return { changes: [], reason, state: cmd };
  }
  return { changes: [{ description }], state: cmd };
}

async function applyCommand(ctx: TaskContext, plan: Plan<Command>): Promise<ModuleOutcome> {
  const r = await run(ctx, plan.state!);
  // Trailing newlines stripped, as Ansible does: `eq out.stdout "root"` must hold for `id -un`.
  const stdout = r.stdout.replace(/(\r?\n)+$/, '');
  const stderr = r.stderr.replace(/(\r?\n)+$/, '');
  const data = {
    rc: r.code,
    stdout,
    stderr,
    stdout_lines: stdout === '' ? [] : stdout.split(/\r?\n/),
  };
  if (!r.ok) return { changed: true, failed: true, msg: maskSecrets(describeFailure(r), ctx.secrets), data };
  return { changed: true, failed: false, msg: maskSecrets(r.display, ctx.secrets), data };
}

export const commandModule: Module<CommandArgs, Command> = {
  name: 'command',
  args: commandArgs,
  reads: commandReads,
  plan: planCommand,
  apply: (ctx, _args, plan) => applyCommand(ctx, plan),
};

export const shellModule: Module<CommandArgs, Command> = {
  name: 'shell',
  args: shellArgs,
  reads: commandReads,
  plan: planCommand,
  apply: (ctx, _args, plan) => applyCommand(ctx, plan),
};
