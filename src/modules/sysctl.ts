/**
 * sysctl: a kernel parameter's runtime value and its persisted line (in /etc/sysctl.d, written
 * through lib/files so it is atomic). Where the kernel refuses (read-only /proc/sys in containers
 * and the lab), on_refused: warn keeps going with a warning and still persists the file.
 */
import { z } from 'zod';
import { describeFailure } from '../core/command.js';
import type { Module, PlannedChange } from '../core/types.js';
import { absPathArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';
import { compareFile, parseRemoteFile, type FilePlan, writeFileAtomic } from './lib/files.js';
import { changed, failed, runScript } from './lib/run.js';

const sysctlArgs = z.strictObject({
  name: z.string().regex(/^[a-z0-9_]+([./][A-Za-z0-9_@:-]+)+$/, 'not a sysctl name like net.ipv4.ip_forward'),
  value: z.union([z.string(), z.number(), z.boolean()]).transform((v) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v).trim())),
  /** Where the setting is persisted; false = runtime only. */
  persist_file: z.union([absPathArg, z.literal(false)]).default('/etc/sysctl.d/99-rha.conf'),
  on_refused: z.enum(['warn', 'fail']).default('fail'),
});

export type SysctlArgs = z.infer<typeof sysctlArgs>;

/** Returns the /proc/sys path of a sysctl name (dots separate levels; with slashes, dots belong to names, as in sysctl(8)). */
export function procPath(name: string): string {
  return '/proc/sys/' + (name.includes('/') ? name : name.replace(/\./g, '/'));
}

/** Returns a value with runs of whitespace collapsed (the kernel prints tabs; users write spaces). */
export function normalizeValue(v: string): string {
  return v.trim().split(/\s+/).join(' ');
}

/** Returns the persist file's content with `name = value` set (replacing any earlier line for name) (pure). */
export function upsertSysctlLine(content: string, name: string, value: string): string {
  const key = name.replace(/\//g, '.');
  const line = `${key} = ${value}`;
  const lines = content === '' ? [] : content.replace(/\n$/, '').split('\n');
  let found = false;
  const out: string[] = [];
  for (const l of lines) {
    const m = /^\s*-?\s*([^=#;\s]+)\s*=/.exec(l);
    if (m && m[1].replace(/\//g, '.') === key) {
      if (!found) out.push(line);
      found = true;
    } else out.push(l);
  }
  if (!found) {
    if (out.length === 0) out.push('# Managed by rha: kernel parameters set by playbooks.');
    out.push(line);
  }
  return out.join('\n') + '\n';
}

// $1 proc path, $2 persist file ('' = none). Prints the runtime value (or why not), whether the
// kernel lets us write it, then the persist file's state in lib/files' format (with content: it is small).
// The value through a program, not the shell's `read`: dash reads a byte at a time, and the kernel
// answers a read of /proc/sys at an offset with end of file (ip_local_port_range read as "3"). The
// checksum's "  -" is left for parseRemoteFile to drop (a program fewer than cut: each one started
// here is a few ms of every no-op's read-ahead round, once per sysctl task).
const READ = `p=$1
if [ -r "$p" ]; then echo "value $(tr '\\t\\n' '  ' < "$p")"; else echo missing; fi
if [ -w "$p" ]; then echo writable; else echo readonly; fi
echo ---
f=$2
[ -n "$f" ] || exit 0
if [ -d "$f" ]; then echo directory; exit 0; fi
if [ ! -e "$f" ]; then echo absent; exit 0; fi
echo file
stat -L -c '%a %u %g %s %U %G' -- "$f" && sha256sum < "$f" && base64 < "$f"`;

interface SysctlState {
  setRuntime: boolean;
  file?: { path: string; content: string; plan: FilePlan };
}

export const sysctlModule: Module<SysctlArgs, SysctlState> = {
  name: 'sysctl',
  args: sysctlArgs,
  reads: (args) => [{ script: READ, args: [procPath(args.name), args.persist_file || ''] }],
  async plan(ctx, args) {
    const path = procPath(args.name);
    const r = await runScript(ctx, READ, [path, args.persist_file || '']);
    if (!r.ok) throw new ModuleFailure(`cannot read ${args.name}: ${describeFailure(r)}`);
    const [head, fileOut = ''] = r.stdout.split(/^---\n/m);
    const valueLine = /^value (.*)$/m.exec(head)?.[1];
    if (valueLine === undefined) throw new ModuleFailure(`sysctl ${args.name} does not exist on ${ctx.host.name} (${path})`);
    const current = normalizeValue(valueLine);
    const want = normalizeValue(args.value);
    const writable = /^writable$/m.test(head);
    const changes: PlannedChange[] = [];
    const notes: string[] = [];
    let setRuntime = false;
    if (current !== want) {
      if (writable || args.on_refused === 'fail') {
        setRuntime = true;
        changes.push({ description: `set ${args.name} = ${want} (was ${current})` });
      } else {
        // Re-planning every run would never converge: the kernel will not take it, so say so and move on.
        ctx.warn(`sysctl ${args.name}: ${ctx.host.name} refuses writes to ${path} (read-only); runtime value stays ${current}, wanted ${want}`);
        notes.push(`runtime ${current} kept (kernel refuses writes)`);
      }
    }
    let file: SysctlState['file'];
    if (args.persist_file) {
      const remote = parseRemoteFile(fileOut);
      const old = remote.kind === 'file' ? (remote.content ?? Buffer.alloc(0)).toString('utf8') : '';
      const content = upsertSysctlLine(old, args.name, want);
      const plan = compareFile({ dest: args.persist_file, content }, remote, { diff: ctx.diff, secrets: ctx.secrets });
      if (plan.changes.length) {
        changes.push(...plan.changes.map((c) => ({ ...c, description: `${c.description}: ${args.name} = ${want}` })));
        file = { path: args.persist_file, content, plan };
      }
    }
    const persisted = args.persist_file ? ` in ${args.persist_file}` : '';
    const reason = changes.length
      ? undefined
      : notes.length
        ? `${args.name} = ${want} persisted${persisted}; ${notes.join('; ')}`
        : `${args.name} is ${want}${persisted ? ` and persisted${persisted}` : ''}`;
    return { changes, reason, state: { setRuntime, file }, data: { value: current, wanted: want, writable } };
  },
  async apply(ctx, args, plan) {
    const { setRuntime, file } = plan.state!;
    const warnings: string[] = [];
    const value = normalizeValue(args.value);
    const diffs = file?.plan.diff ? [file.plan.diff] : undefined;
    // The file first: a refused runtime write with on_refused warn still persists the setting.
    if (file) {
      const w = await writeFileAtomic(ctx, { dest: file.path, content: file.content });
      if (!w.ok) return failed(w.msg);
    }
    if (setRuntime) {
      // tee, not a shell redirect: dash reports a refused write as "I/O error", tee gives the errno.
      const r = await runScript(ctx, 'printf "%s\\n" "$2" | tee -- "$1" >/dev/null', [procPath(args.name), value], {
        label: `sysctl -w ${args.name}=${value}`,
      });
      if (!r.ok) {
        const why = r.stderr.trim().split('\n').pop() ?? '';
        const msg = `the kernel refused ${args.name} = ${value} on ${ctx.host.name}: ${why}`;
        if (args.on_refused === 'fail') return failed(msg, { changed: Boolean(file) });
        warnings.push(msg);
      }
    }
    return changed(plan.changes.map((c) => c.description).join('; '), { data: { value }, ...(diffs ? { diffs } : {}), ...(warnings.length ? { warnings } : {}) });
  },
};
