/**
 * `ha_service`: starts Redis or keepalived on the node that plays `role` right now, and only when
 * the documented start-up order (seed 004) allows it:
 *   1 Redis on the master · 2 Redis on the replica (needs 1) · 3 REPLICAOF + sync (redis_replication)
 *   5 keepalived on the master (needs 3: the replica in sync), then it waits until it holds the VIP
 *   6 keepalived on the replica (needs 5: the master holds the VIP; and 3), then it waits until
 *     keepalived is BACKUP there: running is not ready, a replica in FAULT cannot take the VIP
 * The role is decided from the live state of both nodes (as ha_topology does), so the task runs on
 * both hosts and acts on the one that is the live master (or replica). A step whose precondition is
 * not met fails with the rule and what was observed; a service already running is left alone.
 */
import { z } from 'zod';
import { shellCommand, quote } from '../../core/command.js';
import type { Module, Plan, TaskContext } from '../../core/types.js';
import { ModuleFailure, PeerUnreachableFailure } from '../lib/failure.js';
import { runScript } from '../lib/run.js';
import { serviceModule, type ServiceArgs, type ServicePlanState } from '../service.js';
import { readPair } from './ha-topology.js';
import { pairFrom } from './pair.js';
import type { NodeState } from './redis-state.js';
import { decideTopology } from './topology.js';
import { forcedClusters } from './ha-topology.js';
import { describeVrrpState, vrrpStateScript, waitVrrpStateScript } from './vrrp-state.js';

const args = z.strictObject({
  name: z.enum(['redis', 'keepalived']),
  role: z.enum(['master', 'replica']),
  /** How the service module starts it: name, and on hosts without systemd exec/pidfile/match. */
  service: z.record(z.string(), z.unknown()),
  /** keepalived on the master: seconds to wait until this node holds the VIP. */
  vip_timeout: z.number().positive().default(30),
  /** keepalived on the replica: seconds to wait until it is BACKUP (its health check passing). */
  ready_timeout: z.number().positive().default(30),
});
type Args = z.infer<typeof args>;

interface State {
  svcArgs: ServiceArgs;
  svcPlan: Plan<ServicePlanState>;
  vip: string;
  iface: string;
  cluster: string;
  /** keepalived on the replica: wait until it is BACKUP. */
  waitReady: boolean;
}

const STEP = { redis: { master: 1, replica: 2 }, keepalived: { master: 5, replica: 6 } } as const;

/** Why this step may not run yet, or undefined when it may (pure: from both nodes' state). */
export function stepBlocked(
  name: Args['name'],
  role: Args['role'],
  self: { name: string; address: string; state: NodeState },
  peer: { name: string; address: string; state: NodeState },
): string | undefined {
  const step = `step ${STEP[name][role]} (${name === 'redis' ? 'Redis' : 'keepalived'} on the ${role} ${self.name})`;
  const inSync = (r: NodeState, masterAddress: string) =>
    r.redisUp && r.role === 'slave' && r.masterHost === masterAddress && r.linkUp && !r.syncInProgress;
  const seen = (n: { name: string; state: NodeState }) =>
    !n.state.reachable
      ? `${n.name} unreachable`
      : !n.state.redisUp
        ? `${n.name}: Redis down`
        : `${n.name}: ${n.state.role === 'slave' ? `replica of ${n.state.masterHost}, link ${n.state.linkUp ? 'up' : 'down'}${n.state.syncInProgress ? ', sync in progress' : ''}` : 'master'}${n.state.holdsVip ? ', holds the VIP' : ''}${n.state.keepalivedRunning ? ', keepalived running' : ''}`;
  const observed = `observed ${seen(self)}; ${seen(peer)}`;
  if (name === 'redis' && role === 'replica' && !(peer.state.redisUp && peer.state.role === 'master')) {
    return `${step} must wait for step 1: Redis on the master ${peer.name} is not running as master (${observed})`;
  }
  if (name === 'keepalived' && role === 'master') {
    if (!(self.state.redisUp && self.state.role === 'master')) return `${step} must wait for step 1: Redis on ${self.name} is not a running master (${observed})`;
    if (!inSync(peer.state, self.address)) {
      return `${step} must wait for step 3: the replica ${peer.name} is not in sync with ${self.name}; keepalived first would hand the VIP to a master whose replica cannot take over (${observed})`;
    }
  }
  if (name === 'keepalived' && role === 'replica') {
    if (!(peer.state.holdsVip && peer.state.keepalivedRunning)) {
      return `${step} must wait for step 5: the master ${peer.name} does not hold the VIP yet; keepalived on the replica first would hand it the VIP (${observed})`;
    }
    if (!inSync(self.state, peer.address)) return `${step} must wait for step 3: ${self.name} is not in sync with the master ${peer.name} (${observed})`;
  }
  return undefined;
}

export const haService: Module<Args, State> = {
  name: 'ha_service',
  actsOnPeers: true,
  args,
  // keepalived on the replica: its VRRP state, which the runner may read ahead with the tasks
  // before (a no-op then asks nothing of the host here), on the inventory's replica (after a
  // failover the other node reads it itself). A plan may conclude only "nothing to do" from it,
  // as from a reused pair read.
  reads: (a, { vars }) => {
    if (a.name !== 'keepalived' || a.role !== 'replica') return [];
    const pair = pairFrom(vars, String(vars.inventory_hostname));
    return pair.preferredMaster === pair.self ? [] : [{ script: vrrpStateScript(pair.cluster), args: [], alone: true }];
  },
  async plan(ctx, a) {
    // The state read by an earlier step (nothing applied since) may show there is nothing to do;
    // anything else (a change, a refusal) is decided again on a read of this step.
    if (ctx.observe) {
      const reused = await planFrom(ctx, a, await readPair(ctx), false).catch(() => undefined);
      if (reused && reused.changes.length === 0) return reused;
    }
    return planFrom(ctx, a, await readPair(ctx, { fresh: true }), true);
  },
  async apply(ctx, a, plan) {
    return applyService(ctx, a, plan);
  },
};

/** ha_service's plan from both nodes' state; `fresh`: every read made now (none reused or read ahead). */
async function planFrom(ctx: TaskContext, a: Args, { pair, states }: Awaited<ReturnType<typeof readPair>>, fresh: boolean): Promise<Plan<State>> {
  const other = pair.preferredMaster === ctx.host.name ? pair.peer : ctx.host.name;
  const d = decideTopology({
    cluster: pair.cluster,
    preferred: { name: pair.preferredMaster, state: states[pair.preferredMaster] },
    other: { name: other, state: states[other] },
    force: forcedClusters(ctx).includes(pair.cluster),
  });
  if (d.kind === 'refused' && d.unreachable && d.unreachable !== ctx.host.name) throw new PeerUnreachableFailure(`cluster ${pair.cluster}: ${d.reason}`, d.unreachable);
  if (d.kind === 'refused') throw new ModuleFailure(`cluster ${pair.cluster}: ${d.reason}`);
  const liveRole = d.master === ctx.host.name ? 'master' : 'replica';
  if (liveRole !== a.role) {
    return { changes: [], reason: `${ctx.host.name} is not the ${a.role} (the live ${a.role} is ${a.role === 'master' ? d.master : d.replica})` };
  }
  const self = { name: ctx.host.name, address: pair.addressOf(ctx.host.name), state: states[ctx.host.name] };
  const peer = { name: pair.peer, address: pair.addressOf(pair.peer), state: states[pair.peer] };
  const running = a.name === 'redis' ? self.state.redisUp : self.state.keepalivedRunning;
  const svcArgs = serviceModule.args.parse({ ...a.service, state: 'started' });
  const isReplicaKeepalived = a.name === 'keepalived' && a.role === 'replica';
  const state = { svcArgs, vip: pair.vip, iface: pair.interface, cluster: pair.cluster, waitReady: isReplicaKeepalived };
  if (running) {
    if (isReplicaKeepalived) {
      const script = vrrpStateScript(pair.cluster);
      const vrrp = fresh
        ? await ctx.conn.exec(shellCommand(script, { become: ctx.become, timeoutMs: 30_000 }))
        : await runScript(ctx, script, [], { timeoutMs: 30_000 });
      const now = vrrp.stdout.trim() || 'UNKNOWN';
      if (vrrp.ok && now !== 'BACKUP') {
        return {
          changes: [{ description: `wait until keepalived on ${ctx.host.name} can take over the VIP (BACKUP); it is ${describeVrrpState(now)}` }],
          state: { ...state, svcPlan: { changes: [] } },
        };
      }
      return { changes: [], reason: `keepalived runs on the replica ${ctx.host.name}, ready to take over (${now})`, state: { ...state, svcPlan: { changes: [] } } };
    }
    return { changes: [], reason: `${a.name} already runs on the ${a.role} ${ctx.host.name}`, state: { ...state, svcPlan: { changes: [] } } };
  }
  // Check mode on hosts where the earlier steps did not really run: report the step, not a refusal.
  const blocked = ctx.check ? undefined : stepBlocked(a.name, a.role, self, peer);
  if (blocked) throw new ModuleFailure(blocked);
  const svcPlan = await serviceModule.plan(ctx, svcArgs);
  const changes = svcPlan.changes.map((c) => ({ description: `${c.description} (step ${STEP[a.name][a.role]}, ${a.role})` }));
  if (a.name === 'keepalived' && a.role === 'master') changes.push({ description: `wait until ${ctx.host.name} holds the VIP ${pair.vip}` });
  if (isReplicaKeepalived) changes.push({ description: `wait until keepalived on ${ctx.host.name} can take over the VIP (BACKUP)` });
  return { changes, state: { ...state, svcPlan } };
}

async function applyService(ctx: TaskContext, a: Args, plan: Plan<State>) {
  const { svcArgs, svcPlan, vip, iface, cluster, waitReady } = plan.state!;
  const out = svcPlan.changes.length
    ? await serviceModule.apply(ctx, svcArgs, svcPlan)
    : { changed: false, failed: false, msg: `keepalived already runs on ${ctx.host.name}` };
  if (out.failed) return out;
  if (waitReady) {
    const t0 = Date.now();
    const r = await ctx.conn.exec(shellCommand(waitVrrpStateScript(cluster, 'BACKUP', a.ready_timeout), { become: ctx.become, timeoutMs: (a.ready_timeout + 15) * 1000 }));
    const seen = r.stdout.trim().split('\n').pop() || 'UNKNOWN';
    // Waiting changes nothing on the host: a keepalived that leaves FAULT by itself (its health
    // check passing again after a Redis restart) is `ok`, so a re-run after one reports no change.
    if (!r.ok) {
      return { ...out, failed: true, msg: `${out.msg}; keepalived on ${ctx.host.name} is still ${describeVrrpState(seen)} after ${a.ready_timeout} s (see keepalived's log and check_redis.sh)` };
    }
    return { ...out, msg: `${out.msg}; ready to take over (BACKUP) after ${((Date.now() - t0) / 1000).toFixed(1)} s` };
  }
  if (a.name !== 'keepalived' || a.role !== 'master') return out;
  const t0 = Date.now();
  const held = await waitForVip(ctx, vip, iface, a.vip_timeout);
  if (!held) return { ...out, failed: true, msg: `${out.msg}; ${ctx.host.name} did not take the VIP ${vip} within ${a.vip_timeout} s (see keepalived's log)` };
  return { ...out, msg: `${out.msg}; holds the VIP ${vip} after ${((Date.now() - t0) / 1000).toFixed(1)} s` };
}

/** Polls on the host (one command) until it holds the VIP; true when it does within the timeout. */
async function waitForVip(ctx: TaskContext, vip: string, iface: string, timeoutS: number): Promise<boolean> {
  const script = [
    `end=$(( $(date +%s) + ${Math.ceil(timeoutS)} ))`,
    `until ip -o -4 addr show dev ${quote(iface)} | grep -qF ${quote(` inet ${vip} `)}; do`,
    '  [ "$(date +%s)" -lt "$end" ] || exit 1',
    '  sleep 0.1',
    'done',
  ].join('\n');
  const r = await ctx.conn.exec(shellCommand(script, { become: ctx.become, timeoutMs: (timeoutS + 15) * 1000 }));
  return r.ok;
}
