/** group: a (system) group present or absent, planned from `getent group`. */
import { z } from 'zod';
import { describeFailure, quoteArgv } from '../core/command.js';
import type { Module } from '../core/types.js';
import { ModuleFailure } from './lib/failure.js';
import { changed, failed, runScript } from './lib/run.js';

export const accountName = z.string().regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'not a valid user or group name').max(32);

const groupArgs = z.strictObject({
  name: accountName,
  state: z.enum(['present', 'absent']).default('present'),
  system: z.boolean().default(false),
  gid: z.number().int().nonnegative().optional(),
});

export type GroupArgs = z.infer<typeof groupArgs>;

/** Returns the parsed `getent group NAME` line, or undefined when absent (pure). */
export function parseGroupEntry(line: string): { name: string; gid: number } | undefined {
  const [name, , gid] = line.trim().split(':');
  return name && gid !== undefined ? { name, gid: Number(gid) } : undefined;
}

/** Returns the argv that brings the group to the wanted state, or undefined when nothing is needed (pure). */
export function groupCommand(args: GroupArgs, current: { gid: number } | undefined): string[] | undefined {
  if (args.state === 'absent') return current ? ['groupdel', args.name] : undefined;
  if (!current) return ['groupadd', ...(args.system ? ['--system'] : []), ...(args.gid !== undefined ? ['--gid', String(args.gid)] : []), args.name];
  if (args.gid !== undefined && current.gid !== args.gid) return ['groupmod', '--gid', String(args.gid), args.name];
  return undefined;
}

// getent exits 2 for "no such key": that is an answer, not a failure.
const READ = 'getent group -- "$1"; rc=$?; [ $rc -eq 2 ] && exit 0; exit $rc';

export const groupModule: Module<GroupArgs, string[]> = {
  name: 'group',
  args: groupArgs,
  reads: (args) => [{ script: READ, args: [args.name] }],
  async plan(ctx, args) {
    const r = await runScript(ctx, READ, [args.name]);
    if (!r.ok) throw new ModuleFailure(`cannot read group ${args.name}: ${describeFailure(r)}`);
    const current = parseGroupEntry(r.stdout);
    const argv = groupCommand(args, current);
    if (!argv) {
      return { changes: [], reason: args.state === 'absent' ? `group ${args.name} does not exist` : `group ${args.name} exists (gid ${current!.gid})`, data: current ? { gid: current.gid } : {} };
    }
    return { changes: [{ description: argv.join(' ') }], state: argv };
  },
  async apply(ctx, args, plan) {
    const r = await runScript(ctx, '"$@"', plan.state!, { label: quoteArgv(plan.state!) });
    if (!r.ok) return failed(describeFailure(r));
    return changed(plan.changes[0].description, { data: { name: args.name } });
  },
};
