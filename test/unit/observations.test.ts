/**
 * Observations (src/runner/observations.ts): live-state reads shared by the hosts of a batch, and
 * the runner's rules for forgetting them (apply, retry, failure, end of batch).
 */
import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import type { Module } from '../../src/core/types.js';
import { changed } from '../../src/modules/lib/run.js';
import { Observations } from '../../src/runner/observations.js';
import { runPlaybook } from '../../src/runner/index.js';
import { harness, inventory, play, playbook, task } from './runner-helpers.js';

describe('Observations', () => {
  test('one read per key within a step and in later steps; fresh takes only a read of this step', async () => {
    const o = new Observations();
    let reads = 0;
    const read = async () => ++reads;
    o.nextStep();
    expect(await Promise.all([o.observe('k', read), o.observe('k', read, { fresh: true })])).toEqual([1, 1]);
    o.nextStep();
    expect(await o.observe('k', read)).toBe(1);
    expect(await o.observe('k', read, { fresh: true })).toBe(2);
    expect(await o.observe('k', read)).toBe(2);
  });

  test('an apply forgets every read and keeps none until the next step', async () => {
    const o = new Observations();
    let reads = 0;
    const read = async () => ++reads;
    o.nextStep();
    await o.observe('k', read);
    o.applying();
    expect(await o.observe('k', read)).toBe(2);
    expect(await o.observe('k', read)).toBe(3);
    o.nextStep();
    expect(await o.observe('k', read)).toBe(4);
    expect(await o.observe('k', read)).toBe(4);
  });

  test('a failed read is not kept', async () => {
    const o = new Observations();
    o.nextStep();
    await expect(o.observe('k', async () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await o.observe('k', async () => 'up')).toBe('up');
  });
});

describe('the runner shares observations between the hosts of a batch', () => {
  /** `probe` reads a shared key (counted); `act` changes something when told to; `poll` retries. */
  function setup() {
    let reads = 0;
    const seen: Array<[string, number]> = [];
    const probe: Module<{ fresh: boolean }> = {
      name: 'probe',
      args: z.strictObject({ fresh: z.boolean().default(false) }),
      async plan(ctx, a) {
        const v = await ctx.observe!('pair', async () => ++reads, { fresh: a.fresh });
        seen.push([ctx.host.name, v]);
        return { changes: [], reason: `read ${v}` };
      },
      async apply() {
        throw new Error('not reached');
      },
    };
    const act: Module<{ on: string }> = {
      name: 'act',
      args: z.strictObject({ on: z.string() }),
      async plan(ctx, a) {
        return ctx.host.name === a.on ? { changes: [{ description: 'act' }] } : { changes: [], reason: 'not here' };
      },
      async apply() {
        return changed('acted');
      },
    };
    const h = harness();
    h.deps.modules = new Map<string, Module>([
      ['probe', probe as Module],
      ['act', act as Module],
    ]);
    const run = (tasks: ReturnType<typeof task>[]) => runPlaybook(playbook(play('p', tasks)), inventory(['a', 'b']), h.opts, h.deps);
    return { run, seen, reads: () => reads };
  }

  test('both hosts share one read per step, and later steps reuse it until something is applied', async () => {
    const { run, seen, reads } = setup();
    const s = await run([
      task('topology', { fresh: true }, { module: 'probe' }),
      task('step 1', {}, { module: 'probe' }),
      task('fresh again', { fresh: true }, { module: 'probe' }),
      task('change on b', { on: 'b' }, { module: 'act' }),
      task('step 2', {}, { module: 'probe' }),
      task('step 3', {}, { module: 'probe' }),
    ]);
    expect(s.exitCode).toBe(0);
    expect(reads()).toBe(3);
    expect(seen.map(([, v]) => v)).toEqual([1, 1, 1, 1, 2, 2, 3, 3, 3, 3]);
  });
});
