/**
 * sysfs: a kernel setting under /sys, at run time. Many offer their choices with the current one
 * in brackets (`always madvise [never]`: transparent huge pages); others hold a plain value. /sys
 * is not kept across a reboot: a tmpfiles.d line does that (playbooks/redis.yaml writes one).
 * Where the kernel refuses (containers, the lab's hosts) or has no such setting, on_refused: warn
 * keeps going with a warning, as sysctl does.
 *
 * A module rather than a shell task so that its read goes ahead with the tasks around it
 * (runner/read-ahead.ts): a shell task's `changed_when` makes its status the playbook's word.
 */
import { z } from 'zod';
import { describeFailure } from '../core/command.js';
import type { Module } from '../core/types.js';
import { absPathArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';
import { changed, failed, runScript } from './lib/run.js';

const sysfsArgs = z.strictObject({
  path: absPathArg.refine((p) => p.startsWith('/sys/'), 'a path under /sys/'),
  value: z.union([z.string(), z.number()]).transform((v) => String(v).trim()),
  on_refused: z.enum(['warn', 'fail']).default('fail'),
});

export type SysfsArgs = z.infer<typeof sysfsArgs>;

// $1 the path. Builtins only: whether it exists and can be written, then its first line.
const READ = `p=$1
[ -e "$p" ] || { echo missing; exit 0; }
if [ -w "$p" ]; then echo writable; else echo readonly; fi
v=; IFS= read -r v < "$p"
echo "value $v"`;

/** The setting's current value: the bracketed choice when it offers choices, else the whole value (pure). */
export function currentSysfsValue(text: string): string {
  const chosen = /\[([^\]]*)\]/.exec(text);
  return (chosen ? chosen[1] : text).trim().split(/\s+/).join(' ');
}

export const sysfsModule: Module<SysfsArgs, undefined> = {
  name: 'sysfs',
  args: sysfsArgs,
  reads: (args) => [{ script: READ, args: [args.path] }],
  async plan(ctx, args) {
    const r = await runScript(ctx, READ, [args.path]);
    if (!r.ok) throw new ModuleFailure(`cannot read ${args.path}: ${describeFailure(r)}`);
    const refused = (why: string) => {
      if (args.on_refused === 'fail') throw new ModuleFailure(`${args.path} on ${ctx.host.name}: ${why}`);
      ctx.warn(`sysfs ${args.path}: ${why} on ${ctx.host.name}; wanted ${args.value}`);
      return { changes: [], reason: `${args.path}: ${why} (wanted ${args.value})` };
    };
    if (/^missing$/m.test(r.stdout)) return refused('this kernel has no such setting');
    const line = /^value (.*)$/m.exec(r.stdout)?.[1] ?? '';
    const current = currentSysfsValue(line);
    if (current === args.value) return { changes: [], reason: `${args.path} is ${current}`, data: { value: current } };
    if (!/^writable$/m.test(r.stdout)) return refused(`the kernel refuses writes (read-only); it stays ${current}`);
    return { changes: [{ description: `set ${args.path} to ${args.value} (was ${current})` }], data: { value: current } };
  },
  async apply(ctx, args) {
    // tee, not a shell redirect: dash reports a refused write as "I/O error", tee gives the errno.
    const r = await runScript(ctx, 'printf "%s\\n" "$2" | tee -- "$1" >/dev/null', [args.path, args.value], { label: `write ${args.value} to ${args.path}` });
    if (!r.ok) {
      const msg = `the kernel refused ${args.value} for ${args.path} on ${ctx.host.name}: ${r.stderr.trim().split('\n').pop() ?? ''}`;
      if (args.on_refused === 'fail') return failed(msg);
      return { changed: false, failed: false, msg, warnings: [msg] };
    }
    return changed(`${args.path} set to ${args.value}`, { data: { value: args.value } });
  },
};
