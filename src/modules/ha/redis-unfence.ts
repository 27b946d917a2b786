/**
 * `redis_unfence`: the live master takes writes again once its replica is in sync, when a notify
 * hook fenced it (min-replicas-to-write raised past any replica count, `# rha-fenced:` in
 * replication.conf; docs/design.md, "The notify hooks' state machine"). A fence waits for a person
 * or a run: once `rha provision` has chosen this node as the master and made the peer its replica
 * (`redis_replication`, which keeps a snapshot of anything it discards), the reason for the fence
 * is gone. Left in place, the pair would look provisioned while every write is refused.
 *
 * It lifts the fence only while the peer replicates from this node with its link up: otherwise
 * the fence is what keeps a second copy of the data from diverging, and the task fails saying so.
 * The split-brain bound the inventory asks for (`redis.min_replicas_max_lag`) is what it restores.
 */
import { z } from 'zod';
import { describeFailure } from '../../core/command.js';
import type { Module } from '../../core/types.js';
import { readNodeState, redisCliCommand, type StateQuery } from './redis-state.js';
import { pairOf } from './pair.js';
import { ModuleFailure } from '../lib/failure.js';
import { writeRoleFileScript } from './role-file.js';
import { minReplicasArgs } from './switchover.js';

const args = z.strictObject({});
type Args = z.infer<typeof args>;

interface State {
  /** The fence's rule and why, from replication.conf ('' when a peer's hook set it at run time only). */
  why: string;
  bound: string[];
}

export const redisUnfence: Module<Args, State> = {
  name: 'redis_unfence',
  keepsReads: true,
  actsOnPeers: true,
  args,
  async plan(ctx) {
    const pair = pairOf(ctx);
    const q: StateQuery = {
      cliPath: `${pair.binDir}/redis-cli`, port: pair.port, password: pair.password, vip: pair.vip, become: ctx.become, configDir: pair.configDir,
    };
    const self = await readNodeState(ctx.conn, q);
    if (!self.redisUp) {
      if (ctx.check) return { changes: [], reason: 'Redis is not running yet (check mode): nothing fenced' };
      throw new ModuleFailure(`Redis on ${ctx.host.name} is not answering: ${self.error}`);
    }
    // The role file's fence line alone (a restart would bring the fence back) counts too.
    if (!self.isFenced && !self.fencedBy) return { changes: [], reason: 'not fenced: takes writes' };
    if (self.role !== 'master') throw new ModuleFailure(`${ctx.host.name} is fenced but is not a master (role ${self.role}): not lifting the fence`);
    const why = self.fencedBy ?? '';
    const peer = await ctx.connectTo!(pair.peer).then((c) => readNodeState(c, q), () => readNodeState(undefined, q));
    const selfAddress = pair.addressOf(ctx.host.name);
    const maxLag = Number((ctx.vars.cluster as { redis?: { min_replicas_max_lag?: number } } | undefined)?.redis?.min_replicas_max_lag ?? 10);
    const bound = minReplicasArgs(maxLag);
    const inSync = peer.redisUp && peer.role === 'slave' && peer.masterHost === selfAddress && peer.linkUp;
    if (!inSync && ctx.check) {
      // Check mode: the replication step before this one has not really run.
      return { changes: [{ description: `lift the notify hook's fence${why ? ` (${why})` : ''} once ${pair.peer} replicates from it in sync` }], state: { why, bound } };
    }
    if (!inSync) {
      const seen = !peer.reachable ? 'unreachable' : !peer.redisUp ? `Redis not answering (${peer.error})` : peer.role === 'slave' ? `a replica of ${peer.masterHost}, link ${peer.linkUp ? 'up' : 'down'}` : 'a master';
      throw new ModuleFailure(
        `${ctx.host.name} stays fenced (${why || 'by the peer\'s notify hook'}): its peer ${pair.peer} is not an in-sync replica of it (${seen}), ` +
          'so lifting the fence could let the two copies diverge; bring the peer back as its replica first',
      );
    }
    return {
      changes: [{ description: `lift the notify hook's fence${why ? ` (${why})` : ''}: ${pair.peer} replicates from it in sync, so it takes writes again (CONFIG SET ${bound.join(' ')}; replication.conf without the fence)` }],
      state: { why, bound },
    };
  },
  async apply(ctx, _a, plan) {
    const pair = pairOf(ctx);
    const { bound } = plan.state!;
    const r = await ctx.conn.exec(
      redisCliCommand(
        ['set -e', `rcli CONFIG SET ${bound.join(' ')} | grep -qx OK`, writeRoleFileScript(pair.configDir, undefined, 'redis_unfence')].join('\n'),
        { cliPath: `${pair.binDir}/redis-cli`, port: pair.port, password: pair.password, become: ctx.become },
        { timeoutMs: 15_000 },
      ),
    );
    if (!r.ok) return { changed: false, failed: true, msg: `lifting the fence on ${ctx.host.name} failed: ${describeFailure(r)}` };
    return { changed: true, failed: false, msg: `fence lifted: ${ctx.host.name} takes writes again (${bound.join(' ')})` };
  },
};
