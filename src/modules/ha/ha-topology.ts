/**
 * `ha_topology`: reads the live state of both nodes of this host's pair and decides which is
 * the live master. Changes nothing; register it and gate role-dependent steps on `role`.
 */
import { z } from 'zod';
import type { Connection, Module, TaskContext } from '../../core/types.js';
import { readNodeState, type NodeState, type StateQuery } from './redis-state.js';
import { decideTopology, HOST_KEY_REFUSED } from './topology.js';
import { pairOf, type PairView } from './pair.js';
import { ModuleFailure, PeerUnreachableFailure } from '../lib/failure.js';

const args = z.strictObject({
  /** Refuse (fail) instead of reporting when the pair is in a state rha will not act on. */
  fail_on_refusal: z.boolean().default(true),
});
type Args = z.infer<typeof args>;

interface Data extends Record<string, unknown> {
  role: 'master' | 'replica';
  master: string;
  replica: string;
  master_address: string;
  replica_address: string;
  fresh: boolean;
  vip_holder: string | null;
  /** A notify hook fenced the live master (it refuses writes): `redis_unfence` lifts that once its replica is in sync. */
  master_fenced: boolean;
  reason: string;
  nodes: Record<string, NodeState>;
}

/**
 * Reads both nodes' state (this one over ctx.conn, the peer over ctx.connectTo). Each node's read
 * is shared through ctx.observe (runner/observations.ts) with the other node's task of the same
 * step, and with later steps while nothing was applied: `fresh` takes only a read of this step.
 * A caller that reuses an older read may conclude only "nothing to do" from it.
 */
export async function readPair(
  ctx: TaskContext,
  opts: { fresh?: boolean } = {},
): Promise<{ pair: ReturnType<typeof pairOf>; states: Record<string, NodeState> }> {
  const pair = pairOf(ctx);
  // The role file is read too, for redis_replication, which shares these reads; not reported here.
  const withoutRoleFile = ({ roleFile: _, ...s }: NodeState): NodeState => s;
  const [self, peer] = await Promise.all([readPairNode(ctx, pair, ctx.host.name, opts), readPairNode(ctx, pair, pair.peer, opts)]);
  return { pair, states: { [ctx.host.name]: withoutRoleFile(self), [pair.peer]: withoutRoleFile(peer) } };
}

/**
 * One node's live state (Redis, VIP, keepalived, role file) for the ha_* modules: this host over
 * ctx.conn, another over ctx.connectTo; shared through ctx.observe (see readPair). A copy each call.
 */
export async function readPairNode(ctx: TaskContext, pair: PairView, host: string, opts: { fresh?: boolean } = {}): Promise<NodeState> {
  const q: StateQuery = {
    cliPath: `${pair.binDir}/redis-cli`, port: pair.port, password: pair.password, vip: pair.vip, become: ctx.become, configDir: pair.configDir,
  };
  const read = async (): Promise<NodeState> => {
    if (host === ctx.host.name) return readNodeState(ctx.conn, q);
    let conn: Connection | undefined;
    let refusedKey = false;
    try {
      conn = await ctx.connectTo!(host);
    } catch (e) {
      // A changed host key is a refusal (the peer's own task says so), not an outage: name it as the cause.
      refusedKey = e instanceof Error && e.name === 'HostKeyChangedError';
    }
    const s = await readNodeState(conn, q);
    if (refusedKey) s.error = HOST_KEY_REFUSED;
    return s;
  };
  const s = ctx.observe ? await ctx.observe(`redis-node-state\0${host}\0${JSON.stringify(q)}`, read, opts) : await read();
  return { ...s };
}

export const haTopology: Module<Args, Data> = {
  name: 'ha_topology',
  keepsReads: true,
  args,
  async plan(ctx, a) {
    // The roles the later steps act on: decided on a read of this step (shared by both nodes).
    const { pair, states } = await readPair(ctx, { fresh: true });
    const preferred = pair.preferredMaster;
    const other = preferred === ctx.host.name ? pair.peer : ctx.host.name;
    const force = forcedClusters(ctx).includes(pair.cluster);
    const d = decideTopology({
      cluster: pair.cluster,
      preferred: { name: preferred, state: states[preferred] },
      other: { name: other, state: states[other] },
      force,
    });
    if (d.kind === 'refused') {
      if (a.fail_on_refusal && d.unreachable && d.unreachable !== ctx.host.name) throw new PeerUnreachableFailure(`cluster ${pair.cluster}: ${d.reason}`, d.unreachable);
      if (a.fail_on_refusal) throw new TopologyRefusal(`cluster ${pair.cluster}: ${d.reason}`);
      return { changes: [], reason: d.reason, data: { refused: true, reason: d.reason } };
    }
    const data: Data = {
      role: d.master === ctx.host.name ? 'master' : 'replica',
      master: d.master,
      replica: d.replica,
      master_address: pair.addressOf(d.master),
      replica_address: pair.addressOf(d.replica),
      fresh: d.fresh,
      vip_holder: d.vipHolder ?? null,
      master_fenced: !!(states[d.master].isFenced || states[d.master].fencedBy),
      reason: d.reason,
      nodes: states,
    };
    return { changes: [], reason: `live master ${d.master}: ${d.reason}`, data };
  },
  async apply() {
    // plan() never returns changes.
    return { changed: false, failed: false, msg: 'nothing to apply' };
  },
};

/** Thrown from plan() when acting would risk data; the runner reports it as the task's failure. */
export class TopologyRefusal extends ModuleFailure {
  override name = 'TopologyRefusal';
}

/** Cluster names given with `--force` (extra var `rha_force`, a list or comma-separated string). */
export function forcedClusters(ctx: TaskContext): string[] {
  const v = ctx.vars.rha_force;
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  return [];
}
