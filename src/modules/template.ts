/** template: render a Handlebars file from the controller with the task's vars, then the copy path. */
import { z } from 'zod';
import type { Module } from '../core/types.js';
import { renderTemplateFile } from '../template/index.js';
import { fileTargetArgs, planWrite, type WriteState } from './copy.js';
import { applyFilePlan, remoteFileRead } from './lib/files.js';
import { ModuleFailure } from './lib/failure.js';
import { resolveSource } from './lib/paths.js';

const templateArgs = z.strictObject({
  src: z.string().min(1),
  ...fileTargetArgs,
});

export type TemplateArgs = z.infer<typeof templateArgs>;

export const templateModule: Module<TemplateArgs, WriteState> = {
  name: 'template',
  args: templateArgs,
  async plan(ctx, args) {
    const path = await resolveSource(ctx.searchPaths, args.src, 'templates');
    let content: string;
    try {
      content = await renderTemplateFile(path, ctx.vars);
    } catch (e) {
      // A template that does not render (unknown variable, bad syntax) is this task's failure, not a crash.
      throw new ModuleFailure((e as Error).message);
    }
    return planWrite(ctx, args, content);
  },
  reads: (args, opts) => [remoteFileRead(args.dest, opts.diff)],
  async apply(ctx, _args, plan) {
    const { spec, file } = plan.state!;
    return applyFilePlan(ctx, spec, file);
  },
};
