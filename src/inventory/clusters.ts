/**
 * Clusters: each master/replica pair resolved into a ClusterSpec (secrets read, defaults filled,
 * paths made absolute), with the rules of rules.ts run on it in a fixed order.
 */
import type { ClusterSpec, HostSpec } from '../core/types.js';
import type { LoadContext } from './context.js';
import type { Cidr } from './net.js';
import { checkAuthPass, checkInterfaceAndVip, checkMembers, checkPriority, checkRedis, checkUnicast, checkVirtualRouterIds, redisPrefix } from './rules.js';
import type { RawCluster } from './schema.js';
import { resolveSecret } from './secrets.js';
import type { KeyPath } from './source.js';

/** The clusters resolved, and what the later steps (group map, vars) need from them. */
export interface ResolvedClusters {
  /** Cluster name → its resolved spec, in inventory order. */
  clusters: Map<string, ClusterSpec>;
  /** Host → the cluster it serves (only hosts that are a known member of one). */
  clusterOf: Map<string, string>;
  /** Cluster → its parsed VIP (only well-formed ones). */
  cidrs: Map<string, Cidr>;
}

/** Returns every cluster resolved against the resolved `hosts`, after reporting what breaks a rule. */
export function resolveClusters(ctx: LoadContext, hosts: Map<string, HostSpec>): ResolvedClusters {
  const out: ResolvedClusters = { clusters: new Map(), clusterOf: new Map(), cidrs: new Map() };
  for (const [cname, c] of Object.entries(ctx.raw.clusters)) out.clusters.set(cname, resolveCluster(ctx, cname, c, hosts, out));
  checkVirtualRouterIds(ctx, out.cidrs);
  return out;
}

/** One cluster: the rules in their fixed order (it is the print order of problems on one line), then its spec. */
function resolveCluster(ctx: LoadContext, cname: string, c: RawCluster, hosts: Map<string, HostSpec>, seen: ResolvedClusters): ClusterSpec {
  checkMembers(ctx, cname, c, seen.clusterOf);
  checkInterfaceAndVip(ctx, cname, c, seen.cidrs, hosts);
  const k = c.keepalived;
  const kp: KeyPath = ['clusters', cname, 'keepalived'];
  checkPriority(ctx, k, kp);
  const auth = resolveSecret(ctx, k.auth_pass, [...kp, 'auth_pass']);
  if (auth) checkAuthPass(ctx, auth.value, [...kp, 'auth_pass']);
  if (k.unicast) checkUnicast(ctx, c, kp, hosts);
  const r = c.redis;
  const pw = resolveSecret(ctx, r.password, ['clusters', cname, 'redis', 'password']);
  checkRedis(ctx, cname, c, pw?.value, hosts);
  const redis: Record<string, unknown> = {
    ...r,
    prefix: redisPrefix(r),
    build_host: r.build_host ?? null,
    maxmemory: String(r.maxmemory),
    password: pw?.value ?? '',
    source: r.source
      ? { path: r.source.path ? ctx.path(r.source.path) : null, url: r.source.url ?? null, sha256: r.source.sha256 ?? null }
      : null,
    config: { ...r.config },
  };
  const keepalived: Record<string, unknown> = {
    ...k,
    auth_pass: auth?.value ?? null,
    priority: { ...k.priority },
    check: { ...k.check },
  };
  return { name: cname, master: c.master, replica: c.replica, vip: c.vip, interface: c.interface, redis, keepalived };
}
