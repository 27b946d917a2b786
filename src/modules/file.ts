/** file: a directory, an (empty if new) file's attributes, a symlink, or nothing at a path. */
import { z } from 'zod';
import { describeFailure, quote } from '../core/command.js';
import type { BulkReader, Module, PlannedChange, Plan, ReadSpec } from '../core/types.js';
import { absPathArg, modeArg, principalArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';
import { changed, failed, runScript } from './lib/run.js';

const fileArgs = z
  .strictObject({
    path: absPathArg,
    /** Default: the kind already there (file or directory), else file. */
    state: z.enum(['file', 'directory', 'absent', 'link']).optional(),
    /** Link target, for state link. */
    src: z.string().min(1).optional(),
    mode: modeArg.optional(),
    owner: principalArg.optional(),
    group: principalArg.optional(),
    /** For state link: replace a file or empty directory standing where the link goes. */
    force: z.boolean().default(false),
  })
  .refine((a) => (a.state === 'link') === (a.src !== undefined), { message: 'src is required for state link, and only for it' })
  .refine((a) => a.path.replace(/\/+$/, '') !== '', { message: 'refusing to manage /' });

export type FileArgs = z.infer<typeof fileArgs>;

/** What is at the path, not following a final symlink. */
export type PathState =
  | { kind: 'absent' }
  | { kind: 'file' | 'directory' | 'link' | 'other'; mode: string; owner: string; group: string; uid: string; gid: string; target?: string };

// lstat the path: "kind mode uid gid owner group" and, for links, the target on the next line.
const READ_SCRIPT = `p=$1
if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo absent; exit 0; fi
if [ -L "$p" ]; then k=link; elif [ -d "$p" ]; then k=directory; elif [ -f "$p" ]; then k=file; else k=other; fi
printf '%s ' "$k"; stat -c '%a %u %g %U %G' -- "$p" || exit 1
if [ "$k" = link ]; then readlink -- "$p"; fi`;

// READ_SCRIPT for every path in "$@": a kind per path, then one stat over all that exist. A link
// also needs readlink: it is left to its own read.
const READ_MANY_SCRIPT = `n=$#
for p; do
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo absent
  elif [ -L "$p" ]; then echo link
  elif [ -d "$p" ]; then echo directory; set -- "$@" "$p"
  elif [ -f "$p" ]; then echo file; set -- "$@" "$p"
  else echo other; set -- "$@" "$p"; fi
done
shift $n
echo @@
if [ $# -gt 0 ]; then stat -c '%a %u %g %U %G' -- "$@" || exit 1; fi`;

/** READ_SCRIPT's output for each path, from READ_MANY_SCRIPT's (pure; exported for tests). */
export function splitPathStates(stdout: string, paths: readonly string[]): Array<string | undefined> {
  const none = paths.map(() => undefined);
  const [kindPart, statPart = ''] = stdout.split('@@\n');
  const kinds = kindPart.split('\n').filter((l) => l !== '');
  const stats = statPart.split('\n').filter((l) => l !== '');
  if (kinds.length !== paths.length || stats.length !== kinds.filter((k) => k !== 'absent' && k !== 'link').length) return none;
  let i = 0;
  return kinds.map((k) => (k === 'absent' ? 'absent\n' : k === 'link' ? undefined : `${k} ${stats[i++]}\n`));
}

const pathStatesReader: BulkReader = { script: READ_MANY_SCRIPT, split: splitPathStates };

/** The read plan() makes for a path (for Module.reads). */
export function pathStateRead(path: string): ReadSpec {
  return { script: READ_SCRIPT, args: [path], bulk: { reader: pathStatesReader, path } };
}

/** Returns the parsed output of the read script (exported for tests). */
export function parsePathState(stdout: string): PathState {
  const [first, target] = stdout.replace(/\n$/, '').split('\n');
  if (first.trim() === 'absent') return { kind: 'absent' };
  const [kind, mode, uid, gid, owner, group] = first.trim().split(' ');
  if (!['file', 'directory', 'link', 'other'].includes(kind)) throw new Error(`unexpected path state output: ${stdout}`);
  return { kind: kind as 'file', mode: mode.padStart(4, '0'), uid, gid, owner, group, ...(kind === 'link' ? { target } : {}) };
}

export type FileStep =
  | { kind: 'mkdir' }
  | { kind: 'touch' }
  | { kind: 'remove' }
  | { kind: 'link'; replace: boolean }
  | { kind: 'attrs'; mode?: string; owner?: string; group?: string };

/** Returns the steps that bring `current` to what args ask, with descriptions; or the reason none are needed (pure). */
export function planPath(args: FileArgs, current: PathState): { steps: FileStep[]; changes: PlannedChange[]; reason?: string } {
  const p = args.path;
  const want = args.state ?? (current.kind === 'directory' ? 'directory' : 'file');
  const steps: FileStep[] = [];
  const changes: PlannedChange[] = [];
  const attrsWanted = { mode: args.mode, owner: args.owner, group: args.group };
  const attrsText = [args.mode ? `mode ${args.mode}` : '', args.owner || args.group ? `owner ${args.owner ?? '-'}:${args.group ?? '-'}` : '']
    .filter(Boolean)
    .join(', ');
  const fresh = (kind: 'mkdir' | 'touch', what: string) => {
    steps.push({ kind });
    if (args.mode || args.owner || args.group) steps.push({ kind: 'attrs', ...attrsWanted });
    changes.push({ description: `${what} ${p}${attrsText ? ` (${attrsText})` : ''}` });
  };
  const fixAttrs = (cur: Exclude<PathState, { kind: 'absent' }>, isLink: boolean) => {
    const a: { mode?: string; owner?: string; group?: string } = {};
    if (args.mode && !isLink && args.mode !== cur.mode) a.mode = args.mode;
    if (args.owner && args.owner !== cur.owner && args.owner !== cur.uid) a.owner = args.owner;
    if (args.group && args.group !== cur.group && args.group !== cur.gid) a.group = args.group;
    if (a.mode) changes.push({ description: `chmod ${a.mode} ${p} (was ${cur.mode})` });
    if (a.owner || a.group) changes.push({ description: `chown ${a.owner ?? cur.owner}:${a.group ?? cur.group} ${p} (was ${cur.owner}:${cur.group})` });
    if (a.mode || a.owner || a.group) steps.push({ kind: 'attrs', ...a });
  };
  switch (want) {
    case 'absent':
      if (current.kind === 'absent') return { steps, changes, reason: `${p} does not exist` };
      steps.push({ kind: 'remove' });
      changes.push({ description: `remove ${current.kind === 'directory' ? 'directory (recursively) ' : ''}${p}` });
      break;
    case 'directory':
      if (current.kind === 'absent') fresh('mkdir', 'create directory');
      else if (current.kind !== 'directory') throw new ModuleFailure(`${p} exists and is a ${current.kind}, not a directory`);
      else fixAttrs(current, false);
      break;
    case 'file':
      if (current.kind === 'absent') fresh('touch', 'create empty file');
      else if (current.kind !== 'file') throw new ModuleFailure(`${p} exists and is a ${current.kind}, not a file`);
      else fixAttrs(current, false);
      break;
    case 'link': {
      const src = args.src!;
      if (current.kind === 'link' && current.target === src) {
        fixAttrs(current, true);
      } else if (current.kind === 'absent' || current.kind === 'link') {
        steps.push({ kind: 'link', replace: current.kind === 'link' });
        if (args.owner || args.group) steps.push({ kind: 'attrs', owner: args.owner, group: args.group });
        changes.push({ description: `link ${p} -> ${src}${current.kind === 'link' ? ` (was -> ${current.target})` : ''}` });
      } else if (args.force && current.kind !== 'directory') {
        steps.push({ kind: 'link', replace: true });
        changes.push({ description: `replace ${current.kind} ${p} with link -> ${src}` });
      } else {
        throw new ModuleFailure(`${p} exists and is a ${current.kind}; refusing to replace it with a link${current.kind === 'directory' ? '' : ' (set force: true)'}`);
      }
      break;
    }
  }
  return { steps, changes, reason: changes.length === 0 ? `${p} is ${want === 'link' ? `a link to ${args.src}` : `a ${want}`} as wanted` : undefined };
}

interface FileState {
  steps: FileStep[];
}

export const fileModule: Module<FileArgs, FileState> = {
  name: 'file',
  args: fileArgs,
  reads: (args) => [pathStateRead(args.path)],
  async plan(ctx, args): Promise<Plan<FileState>> {
    const r = await runScript(ctx, READ_SCRIPT, [args.path]);
    if (!r.ok) throw new ModuleFailure(`cannot read ${args.path}: ${describeFailure(r)}`);
    const { steps, changes, reason } = planPath(args, parsePathState(r.stdout));
    return { changes, reason, state: { steps } };
  },
  async apply(ctx, args, plan) {
    const msg = plan.changes.map((c) => c.description).join('; ');
    const isLink = plan.state!.steps.some((s) => s.kind === 'link') || args.state === 'link';
    for (const step of plan.state!.steps) {
      let r;
      switch (step.kind) {
        case 'mkdir':
          r = await runScript(ctx, 'mkdir -p -- "$1"', [args.path], { label: `mkdir -p ${quote(args.path)}` });
          break;
        case 'touch':
          // umask so a file meant to be 0600 is never briefly world-readable.
          r = await runScript(ctx, 'umask 077; : >> "$1" && chmod -- "${2:-0644}" "$1"', [args.path, args.mode ?? '']);
          break;
        case 'remove':
          r = await runScript(ctx, 'rm -rf -- "$1"', [args.path], { label: `rm -rf ${quote(args.path)}` });
          break;
        case 'link':
          // -n: a link to a directory is replaced, not followed into.
          r = await runScript(ctx, 'ln -sfn -- "$1" "$2"', [args.src!, args.path], { label: `ln -sfn ${quote(args.src!)} ${quote(args.path)}` });
          break;
        case 'attrs': {
          const h = isLink ? '-h ' : '';
          // "0" + the 4-digit mode: GNU chmod keeps a directory's setgid bit for `chmod 0750`
          // (Debian's redis-tools sets /etc/redis 2770); 5 digits with a leading 0 set exactly.
          r = await runScript(
            ctx,
            `if [ -n "$3" ]; then chown ${h}-- "$3" "$1" || exit 1; fi
if [ -n "$4" ]; then chgrp ${h}-- "$4" "$1" || exit 1; fi
if [ -n "$2" ]; then chmod -- "0$2" "$1" || exit 1; fi`,
            [args.path, isLink ? '' : (step.mode ?? ''), step.owner ?? '', step.group ?? ''],
          );
          break;
        }
      }
      if (!r.ok) return failed(describeFailure(r));
    }
    return changed(msg, { data: { path: args.path } });
  },
};
