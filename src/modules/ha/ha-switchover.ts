/**
 * `ha_switchover`: on the live master, hands the master role and the VIP to the in-sync replica
 * (rha switchover's procedure), so that the master can then be restarted without an outage: the
 * rolling part of an upgrade. On any other node it does nothing.
 */
import { z } from 'zod';
import type { Module } from '../../core/types.js';
import { ModuleFailure } from '../lib/failure.js';
import { PREEMPT_REFUSAL, switchover, SwitchoverError } from './switchover.js';
import { readPair } from './ha-topology.js';
import { pairOf } from './pair.js';

const args = z.strictObject({});

export const haSwitchover: Module<Record<string, never>> = {
  name: 'ha_switchover',
  args,
  async plan(ctx) {
    const cluster = ctx.vars.cluster as { name?: string; keepalived?: { preempt?: boolean } } | undefined;
    if (cluster?.keepalived?.preempt === true) throw new ModuleFailure(`cluster ${cluster.name}: ${PREEMPT_REFUSAL}`);
    const { pair, states } = await readPair(ctx);
    if (!states[ctx.host.name].holdsVip) return { changes: [], reason: `${ctx.host.name} does not hold the VIP: nothing to hand over` };
    return { changes: [{ description: `switch over: ${pair.peer} becomes master and takes the VIP ${pair.vip}, ${ctx.host.name} its replica` }] };
  },
  async apply(ctx) {
    const pair = pairOf(ctx);
    try {
      const res = await switchover(
        { name: ctx.host.name, address: pair.addressOf(ctx.host.name), conn: ctx.conn },
        { name: pair.peer, address: pair.addressOf(pair.peer), conn: await ctx.connectTo!(pair.peer) },
        {
          cluster: pair.cluster,
          port: pair.port,
          password: pair.password,
          vip: pair.vip,
          cliPath: `${pair.binDir}/redis-cli`,
          configDir: pair.configDir,
          become: ctx.become,
          preempt: ((ctx.vars.cluster as { keepalived?: { preempt?: boolean } } | undefined)?.keepalived?.preempt ?? false) === true,
          minReplicasMaxLag: (ctx.vars.cluster as { redis?: { min_replicas_max_lag?: number } } | undefined)?.redis?.min_replicas_max_lag,
        },
      );
      return { changed: true, failed: false, msg: `${res.to} is master with the VIP; writes paused ${res.pausedMs} ms`, data: { ...res } };
    } catch (e) {
      if (e instanceof SwitchoverError) throw new ModuleFailure(e.message);
      throw e;
    }
  },
};
