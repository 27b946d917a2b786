/** Host vars and group lists: what templates and `when:` see for each host. */
import { byCodeUnit } from '../core/order.js';
import type { ClusterSpec, HostSpec, NodeRole } from '../core/types.js';
import type { ResolvedClusters } from './clusters.js';
import type { LoadContext } from './context.js';
import type { GroupTree } from './groups.js';

/**
 * Sets each host's `groups` (all, its declared groups, then its cluster and clusters) and `vars`
 * by precedence: all < groups (parents before children, then by name) < host < cluster-derived
 * (`cluster` and `node`).
 */
export function assignHostVars(ctx: LoadContext, tree: GroupTree, hosts: Map<string, HostSpec>, resolved: ResolvedClusters): void {
  const raw = ctx.raw;
  const groupNames = Object.keys(raw.groups);
  const groupOrder = [...groupNames].sort((a, b) => tree.depth.get(a)! - tree.depth.get(b)! || byCodeUnit(a, b));
  for (const [name, host] of hosts) {
    const hv = raw.hosts[name];
    const memberOf = groupOrder.filter((g) => tree.members.get(g)!.has(name));
    const vars: Record<string, unknown> = { ...raw.vars };
    for (const g of memberOf) Object.assign(vars, raw.groups[g].vars);
    if (typeof hv !== 'string' && hv.vars) Object.assign(vars, hv.vars);
    const cname = resolved.clusterOf.get(name);
    const c = cname ? resolved.clusters.get(cname) : undefined;
    host.groups = ['all', ...groupNames.filter((g) => tree.members.get(g)!.has(name))];
    if (c && cname) {
      Object.assign(vars, clusterVars(host, c, hosts, resolved));
      host.groups.push(cname, 'clusters');
    }
    host.vars = vars;
  }
}

/** The `cluster` and `node` vars of `host`, a member of cluster `c`. */
function clusterVars(host: HostSpec, c: ClusterSpec, hosts: Map<string, HostSpec>, resolved: ResolvedClusters): { cluster: unknown; node: unknown } {
  const role: NodeRole = c.master === host.name ? 'master' : 'replica';
  const peer = role === 'master' ? c.replica : c.master;
  const cidr = resolved.cidrs.get(c.name);
  const prio = (c.keepalived.priority as { master: number; replica: number })[role];
  return {
    cluster: {
      name: c.name,
      master: c.master,
      replica: c.replica,
      master_address: hosts.get(c.master)?.connection.address ?? null,
      replica_address: hosts.get(c.replica)?.connection.address ?? null,
      vip: c.vip,
      vip_address: cidr?.address ?? c.vip.split('/')[0],
      vip_prefix: cidr?.prefix ?? Number(c.vip.split('/')[1]),
      interface: c.interface,
      redis: c.redis,
      keepalived: c.keepalived,
    },
    node: { name: host.name, role, peer, peer_address: hosts.get(peer)?.connection.address ?? null, address: host.connection.address, priority: prio },
  };
}
