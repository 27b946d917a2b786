/**
 * `ha_switchover`: on the live master, hands the master role and the VIP to the in-sync replica
 * (rha switchover's procedure), so that the master can then be restarted without an outage: the
 * rolling part of an upgrade. On any other node it does nothing. When the replica failed earlier
 * in the run, it does not switch over, and fails (the rest of the roll must not go on).
 */
import { basename } from 'node:path';
import { z } from 'zod';
import type { Module } from '../../core/types.js';
import { absPathArg } from '../lib/args.js';
import { ModuleFailure } from '../lib/failure.js';
import { REJECTED_SUFFIX, restorePrevious } from '../lib/files.js';
import { failed } from '../lib/run.js';
import { PREEMPT_REFUSAL, switchover, SwitchoverError } from './switchover.js';
import { readPair } from './ha-topology.js';
import { pairOf } from './pair.js';

const args = z.strictObject({
  /**
   * Config files the master keeps its previous copy of (template/copy keep_previous): when the
   * replica failed earlier in this run (its restart with the new config, say), the master is not
   * switched over, and these get their previous content back: it keeps running what it ran.
   */
  rollback: z.array(absPathArg).default([]),
});
type Args = z.infer<typeof args>;

interface State {
  /** The replica failed earlier in this run: keep the master as it is. */
  peerFailed?: string;
}

export const haSwitchover: Module<Args, State> = {
  name: 'ha_switchover',
  keepsReads: true,
  actsOnPeers: true,
  args,
  async plan(ctx, a) {
    const cluster = ctx.vars.cluster as { name?: string; keepalived?: { preempt?: boolean } } | undefined;
    if (cluster?.keepalived?.preempt === true) throw new ModuleFailure(`cluster ${cluster.name}: ${PREEMPT_REFUSAL}`);
    const { pair, states } = await readPair(ctx);
    if (!states[ctx.host.name].holdsVip) return { changes: [], reason: `${ctx.host.name} does not hold the VIP: nothing to hand over` };
    // A rolling restart goes on only while the replica's part went well: handing the master role
    // to a node rha just failed on (a restart with the new config that had to be rolled back),
    // and then restarting the master with that config, would trade a working master for an outage.
    if (ctx.hostFailed?.(pair.peer)) {
      const files = a.rollback.map((f) => basename(f)).join(', ');
      return {
        changes: [{ description: `no switchover: ${pair.peer} failed earlier in this run; ${ctx.host.name} stays master with the VIP${files ? `, its previous ${files} put back` : ''}` }],
        state: { peerFailed: pair.peer },
      };
    }
    return { changes: [{ description: `switch over: ${pair.peer} becomes master and takes the VIP ${pair.vip}, ${ctx.host.name} its replica` }], state: {} };
  },
  async apply(ctx, a, plan) {
    const pair = pairOf(ctx);
    const peerFailed = plan.state?.peerFailed;
    if (peerFailed) {
      const head = `not switched over: ${peerFailed} failed earlier in this run, so ${ctx.host.name} stays master with the VIP, its Redis not restarted`;
      const restore = await restorePrevious(ctx, a.rollback);
      if (!restore.ok) return failed(`${head}; restoring the previous ${a.rollback.join(', ')} failed: ${restore.msg}`);
      if (restore.restored.length === 0) return failed(head);
      const names = restore.restored.map((f) => basename(f)).join(' and ');
      return failed(`${head}; restored the previous ${names} (the one it runs; the new one is kept as ${restore.restored.map((f) => `${f}${REJECTED_SUFFIX}`).join(', ')})`);
    }
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
