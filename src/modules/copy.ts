/** copy: put content (inline or a controller file) at dest, atomically, only when it differs. */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Module, Plan, TaskContext } from '../core/types.js';
import { absPathArg, argvArg, modeArg, principalArg } from './lib/args.js';
import { applyFilePlan, planFile, remoteFileRead, type FilePlan, type FileSpec, type WriteOptions } from './lib/files.js';
import { resolveSource } from './lib/paths.js';

/** Arguments shared by copy and template: where and how the file is written. */
export const fileTargetArgs = {
  dest: absPathArg,
  mode: modeArg.optional(),
  owner: principalArg.optional(),
  group: principalArg.optional(),
  backup: z.boolean().default(false),
  /**
   * Keep the file being replaced as DEST.rha-prev (same bytes, owner and mode), so that a service
   * whose start fails with the new file can put it back (the service module's `rollback`).
   */
  keep_previous: z.boolean().default(false),
  /** Validator run on the temp file before it replaces dest: `%s` is its path. */
  validate: argvArg.optional(),
  /**
   * Secret lines, masked in diffs on both sides whatever their value: `true` = the whole file (a
   * password file), or the directives whose value is secret (`[requirepass, masterauth]`).
   */
  secret: z.union([z.boolean(), z.array(z.string().regex(/^[\w.-]+$/, 'a directive name (letters, digits, _ . -)'))]).optional(),
};

const copyArgs = z
  .strictObject({
    content: z.string().optional(),
    src: z.string().min(1).optional(),
    ...fileTargetArgs,
  })
  .refine((a) => (a.content === undefined) !== (a.src === undefined), { message: 'give exactly one of content or src' });

export type CopyArgs = z.infer<typeof copyArgs>;

export interface WriteState {
  spec: FileSpec & WriteOptions;
  file: FilePlan;
}

/** Returns the plan for writing a file whose content is known (shared by copy and template). */
export async function planWrite(
  ctx: TaskContext,
  args: { dest: string; mode?: string; owner?: string; group?: string; backup: boolean; keep_previous?: boolean; validate?: string[]; secret?: boolean | string[] },
  content: Buffer | string,
): Promise<Plan<WriteState>> {
  const spec: FileSpec & WriteOptions = {
    dest: args.dest,
    content,
    mode: args.mode,
    owner: args.owner,
    group: args.group,
    backup: args.backup,
    keepPrevious: args.keep_previous,
    validate: args.validate,
    secret: args.secret,
  };
  const file = await planFile(ctx, spec);
  return {
    changes: file.changes,
    reason: file.reason,
    state: { spec, file },
    // A password file's checksum is the password's hash: not exposed.
    data: { dest: args.dest, ...(args.secret === true ? {} : { checksum: file.sha256 }) },
  };
}

export const copyModule: Module<CopyArgs, WriteState> = {
  name: 'copy',
  args: copyArgs,
  async plan(ctx, args) {
    const content = args.src !== undefined ? await readFile(await resolveSource(ctx.searchPaths, args.src, 'files')) : (args.content ?? '');
    return planWrite(ctx, args, content);
  },
  reads: (args, opts) => [remoteFileRead(args.dest, opts.diff)],
  async apply(ctx, _args, plan) {
    const { spec, file } = plan.state!;
    return applyFilePlan(ctx, spec, file);
  },
};
