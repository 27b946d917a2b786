/** assert: conditions (Handlebars expressions) that must hold; never changes anything. */
import { z } from 'zod';
import type { Module } from '../core/types.js';
import { evalCondition } from '../template/index.js';
import { stringListArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';

const assertArgs = z.strictObject({
  that: stringListArg.pipe(z.array(z.string().min(1)).min(1)),
  fail_msg: z.string().optional(),
  success_msg: z.string().optional(),
  /** A failed condition is a warning (fail_msg shown, the run goes on) instead of a failure. */
  warn: z.boolean().default(false),
});

export type AssertArgs = z.infer<typeof assertArgs>;

export const assertModule: Module<AssertArgs, never> = {
  name: 'assert',
  args: assertArgs,
  // It never touches the host: a reader with nothing to read, so it does not end a read-ahead.
  reads: () => [],
  async plan(ctx, args) {
    for (const expr of args.that) {
      if (!(await evalCondition(expr, ctx.vars, { file: ctx.taskFile }))) {
        if (args.warn) {
          const msg = args.fail_msg ?? `assertion failed: ${expr}`;
          ctx.warn(msg);
          return { changes: [], reason: `warning: ${msg}` };
        }
        throw new ModuleFailure(args.fail_msg ?? `assertion failed: ${expr}`, { assertion: expr });
      }
    }
    return { changes: [], reason: args.success_msg ?? `all assertions passed (${args.that.length})` };
  },
  async apply() {
    // plan() never returns changes, so the runner never calls this.
    return { changed: false, failed: false, msg: 'nothing to apply' };
  },
};
