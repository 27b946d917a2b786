/**
 * Which node of a pair is the live master. The inventory's `master` is only the initial
 * preference for an empty pair; after a failover the live master is the node that holds the VIP
 * and the data (domain.md, "The one destructive command").
 */
import type { NodeState } from './redis-state.js';
import { within } from './history.js';

export interface PairInput {
  cluster: string;
  preferred: { name: string; state: NodeState };
  other: { name: string; state: NodeState };
  /** `--force CLUSTER`: the inventory's preference wins even when data would be lost. */
  force: boolean;
}

export type TopologyDecision =
  | { kind: 'decided'; master: string; replica: string; fresh: boolean; reason: string; vipHolder?: string }
  /** `unreachable`: the node whose unreachability is the cause (the run blames it, not this host). */
  | { kind: 'refused'; reason: string; unreachable?: string };

/** NodeState.error of a node rha did not connect to because its SSH host key changed (readPair sets it). */
export const HOST_KEY_REFUSED = 'host key refused';

const holdsData = (s: NodeState) => s.redisUp && s.keys > 0;

/** Decides the live master of a pair from both nodes' live state; refuses when that would risk data. */
export function decideTopology(p: PairInput): TopologyDecision {
  const a = p.preferred;
  const b = p.other;
  const pick = (m: typeof a, reason: string, fresh = false): TopologyDecision => ({
    kind: 'decided', master: m.name, replica: m === a ? b.name : a.name, fresh, reason,
    vipHolder: a.state.holdsVip ? a.name : b.state.holdsVip ? b.name : undefined,
  });
  const describe = (n: typeof a) =>
    !n.state.reachable
      ? `${n.name} ${n.state.error === HOST_KEY_REFUSED ? HOST_KEY_REFUSED : 'unreachable'}`
      : !n.state.redisUp
        ? `${n.name} Redis down`
        : `${n.name} ${n.state.role === 'slave' ? `replica of ${n.state.masterHost}` : 'master'} with ${n.state.keys} keys`;
  const seen = `${describe(a)}; ${describe(b)}`;

  if (p.force) return pick(a, `--force ${p.cluster}: ${a.name} is made master as the inventory says (${seen})`);

  if (a.state.holdsVip && b.state.holdsVip) {
    return { kind: 'refused', reason: `both ${a.name} and ${b.name} hold the VIP (split brain): fix the network or keepalived first (${seen})` };
  }
  const vip = a.state.holdsVip ? a : b.state.holdsVip ? b : undefined;
  if (vip) {
    const peer = vip === a ? b : a;
    if (vip.state.redisUp && vip.state.role === 'master') {
      // The VIP holder's data is the live data. A peer whose keys are not all in its history
      // (diverged, or fenced by a notify hook) is rejoined only after a snapshot of its keys
      // (redis_replication), which the reason announces here.
      const lossy = peer.state.redisUp && peer.state.keys > 0 && !(peer.state.role === 'slave' && peer.state.masterHost !== undefined && peer.state.linkUp) && !within(peer.state, vip.state);
      const note = lossy ? `; ${peer.name}'s ${peer.state.keys} keys are not all in ${vip.name}'s history: they are saved to a snapshot before it rejoins` : '';
      return pick(vip, `${vip.name} holds the VIP and is master${note} (${seen})`);
    }
    if (!vip.state.redisUp && !holdsData(peer.state)) {
      // Redis stopped behind the VIP (e.g. a restart in progress); nobody else has data.
      return pick(vip, `${vip.name} holds the VIP; its Redis is down and ${peer.name} holds no data (${seen})`);
    }
    return {
      kind: 'refused',
      reason: `${vip.name} holds the VIP but its Redis is ${vip.state.redisUp ? `a replica of ${vip.state.masterHost}` : 'down'}: keepalived's notify hooks did not finish; look at the keepalived log on ${vip.name} (${seen})`,
    };
  }

  // Nobody holds the VIP: decide from Redis alone.
  if (!a.state.reachable || !b.state.reachable) {
    const up = a.state.reachable ? a : b;
    const down = up === a ? b : a;
    if (!up.state.reachable) return { kind: 'refused', reason: `neither node is reachable (${seen})` };
    if (down.state.error === HOST_KEY_REFUSED) {
      return {
        kind: 'refused',
        unreachable: down.name,
        reason:
          `rha refused to connect to ${down.name} because its SSH host key changed (see ${down.name}'s error), so it cannot tell which node holds the data; ` +
          `if ${down.name} was replaced deliberately, accept its new key (--accept-host-key ${down.name}) and run again (${seen})`,
      };
    }
    return {
      kind: 'refused',
      unreachable: down.name,
      reason: `${down.name} is unreachable, so rha cannot tell which node holds the data; bring it back or remove it (${seen})`,
    };
  }
  const dataA = holdsData(a.state);
  const dataB = holdsData(b.state);
  if (!dataA && !dataB) {
    // Replication already set up between two empty nodes follows its direction; else the preference.
    if (a.state.role === 'slave' && b.state.role === 'master' && b.state.redisUp) return pick(b, `${a.name} already replicates from ${b.name}; no data yet (${seen})`);
    return pick(a, `no node holds data yet: ${a.name} is master as the inventory prefers (${seen})`, true);
  }
  if (dataA !== dataB) {
    const holder = dataA ? a : b;
    return pick(holder, `only ${holder.name} holds data (${seen})`);
  }
  // Both hold data: fine if one replicates from the other.
  if (a.state.role === 'master' && b.state.role === 'slave') return pick(a, `${b.name} replicates from ${a.name} (${seen})`);
  if (b.state.role === 'master' && a.state.role === 'slave') return pick(b, `${a.name} replicates from ${b.name} (${seen})`);
  // Both hold data and neither follows the other: the same rule as the hooks. If one node's
  // writes are all in the other's history, the other is the live master and the rejoin loses nothing.
  if (within(b.state, a.state)) return pick(a, `${b.name}'s data is all in ${a.name}'s replication history (${seen})`);
  if (within(a.state, b.state)) return pick(b, `${a.name}'s data is all in ${b.name}'s replication history (${seen})`);
  if (a.state.role === 'slave' && b.state.role === 'slave') {
    const ahead = a.state.offset >= b.state.offset ? a : b;
    return {
      kind: 'refused',
      reason: `both nodes are replicas holding data and nobody holds the VIP; ${ahead.name} is further ahead (offset ${ahead.state.offset}): promote it by hand or rerun with --force ${p.cluster} to make ${a.name} master (${seen})`,
    };
  }
  const loser = b;
  return {
    kind: 'refused',
    reason: `both nodes are masters holding data on diverged replication histories (${a.name}: ${a.state.keys} keys, ${b.name}: ${b.state.keys} keys); making one a replica wipes the other's ${loser.state.keys} keys. Rerun with --force ${p.cluster} to keep ${a.name}'s data and discard ${b.name}'s (saved to a snapshot on ${b.name} first)`,
  };
}
