/**
 * `rha status`: the live state of every cluster, read over SSH in one round-trip per node, and a
 * verdict a person or a CI job can act on.
 */
import { shellCommand } from '../core/command.js';
import type { ClusterSpec, Connection, HostSpec, Inventory } from '../core/types.js';
import { readNodeState, type NodeState } from '../modules/ha/redis-state.js';
import { vrrpStateScript } from '../modules/ha/vrrp-state.js';
import { HOST_KEY_REFUSED } from '../modules/ha/topology.js';


export interface NodeStatus extends NodeState {
  host: string;
  address: string;
  /** Replication lag behind the master in bytes (replicas only). */
  lagBytes?: number;
  /** keepalived's own VRRP state of the cluster's instance (MASTER, BACKUP, FAULT...), when it runs. */
  vrrpState?: string;
  /** Fenced by a notify hook (refuses writes): the hook's rule and why, from replication.conf, or '' when unknown. */
  fenced?: string;
}

export interface ClusterStatus {
  cluster: string;
  vip: string;
  vipHolder: string | null;
  master: string | null;
  verdict: 'healthy' | 'degraded' | 'down';
  reasons: string[];
  nodes: NodeStatus[];
}

export type Connect = (host: HostSpec) => Promise<Connection>;

/** Reads both nodes of every cluster (all in parallel) and judges each pair. */
export async function readStatus(inv: Inventory, connect: Connect, clusters?: string[]): Promise<ClusterStatus[]> {
  const wanted = [...inv.clusters.values()].filter((c) => !clusters?.length || clusters.includes(c.name));
  return Promise.all(wanted.map((c) => clusterStatus(inv, c, connect)));
}

async function clusterStatus(inv: Inventory, c: ClusterSpec, connect: Connect): Promise<ClusterStatus> {
  const redis = c.redis as { port: number; password: string; prefix: string };
  const names = [c.master, c.replica];
  const nodes = await Promise.all(
    names.map(async (name): Promise<NodeStatus> => {
      const host = inv.hosts.get(name)!;
      let refusedKey = false;
      const conn = await connect(host).catch((e: unknown) => {
        refusedKey = e instanceof Error && e.name === 'HostKeyChangedError';
        return undefined;
      });
      const state = await readNodeState(conn, {
        cliPath: `${redis.prefix.replace(/\/$/, '')}/bin/redis-cli`,
        port: redis.port,
        password: redis.password,
        vip: c.vip,
        become: host.connection.become,
        configDir: String((c.redis as { config_dir?: string }).config_dir ?? '/etc/redis'),
      });
      // Running is not ready: a node in FAULT (its health check failing) cannot take the VIP.
      let vrrpState: string | undefined;
      if (conn && state.keepalivedRunning) {
        const r = await conn.exec(shellCommand(vrrpStateScript(c.name), { become: host.connection.become, timeoutMs: 15_000 })).catch(() => undefined);
        const v = r?.ok ? r.stdout.trim() : '';
        if (v && v !== 'DOWN' && v !== 'UNKNOWN') vrrpState = v;
      }
      // A changed host key is a refusal, not an outage: say so (the fix is different).
      if (refusedKey) state.error = HOST_KEY_REFUSED;
      // A notify hook's fence (min-replicas-to-write raised past any replica count), read with the
      // state; its reason from replication.conf.
      const fenced = state.redisUp && state.role === 'master' && state.isFenced ? (state.fencedBy ?? '') : undefined;
      const { isFenced: _f, fencedBy: _b, roleFile: _r, ...shown } = state;
      return { ...shown, host: name, address: host.connection.address, ...(vrrpState ? { vrrpState } : {}), ...(fenced !== undefined ? { fenced } : {}) };
    }),
  );
  return judge(c, nodes, { minReplicasMaxLag: Number((c.redis as { min_replicas_max_lag?: number }).min_replicas_max_lag ?? 0) });
}

/** The verdict for one pair from its nodes' state (pure). */
export function judge(c: Pick<ClusterSpec, 'name' | 'vip'>, nodes: NodeStatus[], o: { minReplicasMaxLag?: number } = {}): ClusterStatus {
  const reasons: string[] = [];
  const holders = nodes.filter((n) => n.holdsVip);
  const masters = nodes.filter((n) => n.redisUp && n.role === 'master');
  const vipHolder = holders.length === 1 ? holders[0].host : null;
  for (const n of nodes) {
    if (!n.reachable && n.error === HOST_KEY_REFUSED) {
      reasons.push(`${n.host}: rha refused to connect because its SSH host key changed; if it was replaced deliberately, accept the new key (--accept-host-key ${n.host})`);
    } else if (!n.reachable) reasons.push(`${n.host} is unreachable`);
    else if (!n.redisUp) reasons.push(`${n.host}: Redis is down (${n.error ?? 'no answer'})`);
    if (n.reachable && !n.keepalivedRunning) reasons.push(`${n.host}: keepalived is not running`);
    else if (n.vrrpState === 'FAULT') reasons.push(`${n.host}: keepalived is in FAULT (its Redis health check fails): it cannot take the VIP`);
  }
  if (holders.length === 0) reasons.push('nobody holds the VIP');
  if (holders.length > 1) reasons.push(`split brain: ${holders.map((h) => h.host).join(' and ')} both hold the VIP`);
  if (masters.length > 1) reasons.push(`two masters: ${masters.map((m) => m.host).join(' and ')}`);
  const master = vipHolder && masters.some((m) => m.host === vipHolder) ? vipHolder : masters.length === 1 ? masters[0].host : null;
  const m = nodes.find((n) => n.host === master);
  if (vipHolder && !masters.some((m) => m.host === vipHolder)) {
    const h = nodes.find((n) => n.host === vipHolder)!;
    const peer = nodes.find((n) => n.host !== vipHolder);
    const following = h.role === 'slave' && peer && h.masterHost === peer.address;
    reasons.push(
      following && peer.role === 'master'
        ? `${vipHolder} holds the VIP but its Redis is still a replica of ${peer.host}: the notify hook's catch-up did not finish (rule M9 in the keepalived log), nothing was lost. Its health check runs the hook again every 5 s (rule C3); it takes over once its lag is 0 and ${peer.host} follows it`
        : following && peer.role === 'slave' && peer.masterHost === h.address
          ? `${vipHolder} and ${peer.host} replicate from each other (both hooks took the master role at once): no master, writes refused, nothing lost. ${vipHolder}'s health check runs its master hook again within 5 s (rule C3 in the keepalived log); if this stays, run /etc/keepalived/rha/notify.sh master on ${vipHolder}`
          : `${vipHolder} holds the VIP but its Redis is not a master`,
    );
  }
  // The split-brain bound's cost, said where it bites: a master without a replica in sync refuses writes.
  if (m && !m.fenced && (o.minReplicasMaxLag ?? 0) > 0 && !nodes.some((n) => n.host !== m.host && n.role === 'slave' && n.masterHost === m.address && n.linkUp)) {
    reasons.push(
      `${m.host} has no replica in sync, so it refuses writes (NOREPLICAS) after ${o.minReplicasMaxLag} s: the split-brain bound (redis.min_replicas_max_lag). ` +
        `Bring the other node back as its replica (rha provision INVENTORY), or set min_replicas_max_lag: 0 to take writes with one node`,
    );
  }
  // What to do for a node a notify hook fenced (docs/design.md, "The notify hooks' state machine").
  for (const n of nodes) {
    if (n.fenced === undefined) continue;
    const why = n.fenced ? ` (${n.fenced})` : ' (by the peer\'s notify hook: see the keepalived log there)';
    const other = nodes.find((o) => o.host !== n.host);
    if (n.holdsVip) {
      reasons.push(`${n.host} holds the VIP but is fenced${why}: it refuses writes. Check the other node's Redis (is it up, is it Redis, the same password?), then run /etc/keepalived/rha/notify.sh master on ${n.host}`);
    } else if (other && m && other.host === m.host) {
      reasons.push(
        `${n.host} is fenced${why}: it refuses writes and keeps its ${n.keys} keys, which ${m.host} (the master) may lack. ` +
          `To keep ${m.host}'s data: rha provision INVENTORY (${n.host} rejoins as its replica; its keys are first saved to a snapshot under its data folder). ` +
          `To keep ${n.host}'s data instead: make it the inventory's master and run rha provision INVENTORY --force ${c.name}`,
      );
    } else {
      reasons.push(`${n.host} is fenced${why}: it refuses writes and keeps its ${n.keys} keys; decide whose data wins, make that node the inventory's master and run rha provision INVENTORY (--force ${c.name} if it refuses)`);
    }
  }
  for (const n of nodes) {
    if (n.host === master || !n.redisUp) continue;
    if (n.role !== 'slave') continue;
    if (m && n.masterHost !== m.address) reasons.push(`${n.host} replicates from ${n.masterHost}, not from the master ${m.host} (${m.address})`);
    else if (!n.linkUp) reasons.push(`${n.host}: replication link is down`);
    else if (n.syncInProgress) reasons.push(`${n.host}: initial sync in progress`);
    if (m) n.lagBytes = Math.max(0, m.offset - n.offset);
  }
  const up = nodes.filter((n) => n.redisUp).length;
  const verdict = reasons.length === 0 ? 'healthy' : up === 0 || (master === null && vipHolder === null) ? 'down' : 'degraded';
  return { cluster: c.name, vip: c.vip, vipHolder, master, verdict, reasons, nodes };
}

/** A table for people: one block per cluster. */
export function formatStatus(all: ClusterStatus[]): string {
  const out: string[] = [];
  for (const s of all) {
    out.push(`cluster ${s.cluster}  VIP ${s.vip} on ${s.vipHolder ?? 'nobody'}  → ${s.verdict.toUpperCase()}`);
    const rows = [['node', 'address', 'VIP', 'redis', 'role', 'link', 'lag', 'keys', 'keepalived']];
    for (const n of s.nodes) {
      const isReplica = n.role === 'slave';
      rows.push([
        n.host,
        n.address,
        n.holdsVip ? 'yes' : '-',
        !n.reachable ? (n.error === HOST_KEY_REFUSED ? HOST_KEY_REFUSED : 'unreachable') : n.redisUp ? `up ${n.version ?? ''}`.trim() : 'down',
        n.redisUp ? (isReplica ? `replica of ${n.masterHost}` : n.fenced !== undefined ? 'master (fenced)' : 'master') : '-',
        isReplica ? (n.linkUp ? (n.syncInProgress ? 'syncing' : 'up') : 'down') : '-',
        isReplica && n.lagBytes !== undefined ? `${n.lagBytes} B, ${n.lastIoSecondsAgo ?? '?'} s` : '-',
        n.redisUp ? String(n.keys) : '-',
        n.reachable ? (n.keepalivedRunning ? `running${n.vrrpState ? ` (${n.vrrpState})` : ''}` : 'stopped') : '-',
      ]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) out.push('  ' + r.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd());
    for (const r of s.reasons) out.push(`  ! ${r}`);
  }
  return out.join('\n');
}
