import type { Command, CommandResult } from '../../core/command.js';
import { quoteArgv, shellCommand } from '../../core/command.js';
import type { ModuleOutcome, TaskContext } from '../../core/types.js';

/** Runs a command on the task's host with the task's become setting; returns the result (never throws on exit != 0). */
export function run(ctx: TaskContext, cmd: Command): Promise<CommandResult> {
  return ctx.conn.exec({ ...cmd, become: ctx.become });
}

/**
 * Runs a fixed shell script with data passed as positional parameters ($1, $2, ...), so user data
 * never becomes shell text: `sh -c SCRIPT sh ARG1 ARG2`. Returns the result, whose `display`
 * (what failure messages show) is `label`, or `sh -c <rha script> ARGS`: never the whole script.
 * It runs with the task's become unless `opts.become` says otherwise (false: as the login user).
 */
export async function runScript(
  ctx: TaskContext,
  script: string,
  args: readonly string[] = [],
  opts: Omit<Command, 'argv'> & { label?: string } = {},
): Promise<CommandResult> {
  const { label, ...rest } = opts;
  const become = rest.become ?? ctx.become;
  // Read ahead by the runner (same script, args, become and stdin; nothing changed on the host since).
  const ahead = typeof rest.stdin !== 'object' && rest.env === undefined ? await ctx.readAhead?.take(script, args, become, rest.stdin) : undefined;
  if (ahead !== undefined) {
    const display = label ?? `sh -c <rha script>${args.length ? ` ${quoteArgv(args)}` : ''}`;
    return { display, code: 0, signal: null, stdout: ahead, stderr: '', ok: true, durationMs: 0 };
  }
  const cmd = shellCommand(script, rest);
  const r = await ctx.conn.exec({ ...cmd, argv: [...cmd.argv, 'sh', ...args], become });
  return { ...r, display: label ?? `sh -c <rha script>${args.length ? ` ${quoteArgv(args)}` : ''}` };
}

/** Returns a changed outcome. */
export function changed(msg: string, extra: Partial<ModuleOutcome> = {}): ModuleOutcome {
  return { changed: true, failed: false, msg, ...extra };
}

/** Returns a failed outcome. */
export function failed(msg: string, extra: Partial<ModuleOutcome> = {}): ModuleOutcome {
  return { changed: false, failed: true, msg, ...extra };
}

/** Returns an ok (unchanged) outcome. */
export function ok(msg: string, extra: Partial<ModuleOutcome> = {}): ModuleOutcome {
  return { changed: false, failed: false, msg, ...extra };
}
