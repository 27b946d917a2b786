/** user: a (system) user present or absent, planned from `getent passwd`; useradd/usermod/userdel. */
import { z } from 'zod';
import { describeFailure, quoteArgv } from '../core/command.js';
import type { Module } from '../core/types.js';
import { absPathArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';
import { changed, failed, runScript } from './lib/run.js';
import { accountName } from './group.js';

const userArgs = z.strictObject({
  name: accountName,
  state: z.enum(['present', 'absent']).default('present'),
  system: z.boolean().default(false),
  uid: z.number().int().nonnegative().optional(),
  /** Primary group (must exist). Default: useradd's choice (a group named after the user). */
  group: accountName.optional(),
  home: absPathArg.optional(),
  /** Default /usr/sbin/nologin when creating a system user; otherwise changed only when given. */
  shell: absPathArg.optional(),
  create_home: z.boolean().default(false),
  comment: z.string().regex(/^[^:\n]*$/, 'no ":" or newline').optional(),
});

export type UserArgs = z.infer<typeof userArgs>;

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  comment: string;
  home: string;
  shell: string;
}

/** Returns the parsed `getent passwd` line, or undefined (pure). */
export function parsePasswdEntry(line: string): PasswdEntry | undefined {
  const f = line.trim().split(':');
  if (f.length < 7) return undefined;
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), comment: f[4], home: f[5], shell: f[6] };
}

/** Returns the argv that brings the user to the wanted state, or undefined when nothing is needed (pure). */
export function userCommand(args: UserArgs, current: PasswdEntry | undefined, groupGid: number | undefined): string[] | undefined {
  const shell = args.shell ?? (args.system ? '/usr/sbin/nologin' : undefined);
  if (args.state === 'absent') return current ? ['userdel', args.name] : undefined;
  if (!current) {
    return [
      'useradd',
      ...(args.system ? ['--system'] : []),
      ...(args.uid !== undefined ? ['--uid', String(args.uid)] : []),
      ...(args.group ? ['--gid', args.group] : []),
      ...(args.home ? ['--home-dir', args.home] : []),
      ...(shell ? ['--shell', shell] : []),
      ...(args.comment !== undefined ? ['--comment', args.comment] : []),
      args.create_home ? '--create-home' : '--no-create-home',
      args.name,
    ];
  }
  const mod: string[] = [];
  if (args.uid !== undefined && current.uid !== args.uid) mod.push('--uid', String(args.uid));
  if (args.group && groupGid !== current.gid) mod.push('--gid', args.group);
  if (args.home && current.home !== args.home) mod.push('--home', args.home);
  // nologin is a default for creating system users only: an existing user's shell changes only when asked.
  if (args.shell && current.shell !== args.shell) mod.push('--shell', args.shell);
  if (args.comment !== undefined && current.comment !== args.comment) mod.push('--comment', args.comment);
  return mod.length ? ['usermod', ...mod, args.name] : undefined;
}

// passwd entry, then the wanted primary group's entry, one per line prefixed.
const READ = `printf 'passwd '; getent passwd -- "$1"; echo
if [ -n "$2" ]; then printf 'group '; getent group -- "$2"; echo; fi
exit 0`;

export const userModule: Module<UserArgs, string[]> = {
  name: 'user',
  args: userArgs,
  reads: (args) => [{ script: READ, args: [args.name, args.group ?? ''] }],
  async plan(ctx, args) {
    const r = await runScript(ctx, READ, [args.name, args.group ?? '']);
    if (!r.ok) throw new ModuleFailure(`cannot read user ${args.name}: ${describeFailure(r)}`);
    const current = parsePasswdEntry(/^passwd (.*)$/m.exec(r.stdout)?.[1] ?? '');
    const groupLine = /^group (.*)$/m.exec(r.stdout)?.[1] ?? '';
    const groupGid = groupLine.includes(':') ? Number(groupLine.split(':')[2]) : undefined;
    // In check mode an earlier task of the same run (the group module) would have created it.
    if (args.group && args.state === 'present' && groupGid === undefined && !ctx.check) {
      throw new ModuleFailure(`user ${args.name}: group ${args.group} does not exist on ${ctx.host.name} (create it first with the group module)`);
    }
    const argv = userCommand(args, current, groupGid);
    if (!argv) {
      return {
        changes: [],
        reason: args.state === 'absent' ? `user ${args.name} does not exist` : `user ${args.name} exists as wanted (uid ${current!.uid})`,
        data: current ? { uid: current.uid, gid: current.gid, home: current.home, shell: current.shell } : {},
      };
    }
    return { changes: [{ description: argv.join(' ') }], state: argv };
  },
  async apply(ctx, args, plan) {
    const r = await runScript(ctx, '"$@"', plan.state!, { label: quoteArgv(plan.state!) });
    if (!r.ok) return failed(describeFailure(r));
    return changed(plan.changes[0].description, { data: { name: args.name } });
  },
};
