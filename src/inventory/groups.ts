/** Groups: membership through hosts and children (cycles reported), nesting depth, and the final group map. */
import type { ClusterSpec, HostSpec } from '../core/types.js';
import type { LoadContext } from './context.js';
import { suggestion } from './source.js';

/** Declared groups resolved: every host a group holds (through its children too), and how deep it nests. */
export interface GroupTree {
  /** Group → the hosts in it or in any of its children. */
  members: Map<string, Set<string>>;
  /** Group → how many parents above it (0 at the top, and for every group when there is a cycle); vars apply parents first. */
  depth: Map<string, number>;
}

/** Returns the declared groups resolved, after reporting unknown hosts and children and any cycle. */
export function resolveGroups(ctx: LoadContext): GroupTree {
  const raw = ctx.raw;
  const hostNames = Object.keys(raw.hosts);
  const groupNames = Object.keys(raw.groups);
  const directHosts = new Map<string, string[]>();
  for (const [g, grp] of Object.entries(raw.groups)) {
    grp.hosts.forEach((h, i) => {
      if (raw.hosts[h] === undefined) ctx.error(['groups', g, 'hosts', i], `unknown host "${h}"${suggestion(h, hostNames, false)}`);
    });
    grp.children.forEach((c, i) => {
      if (raw.groups[c] === undefined) ctx.error(['groups', g, 'children', i], `unknown group "${c}"${suggestion(c, groupNames, false)}`);
    });
    directHosts.set(g, grp.hosts.filter((h) => raw.hosts[h] !== undefined));
  }
  const cyclic = findCycles(ctx);
  const members = new Map<string, Set<string>>();
  const depth = new Map<string, number>();
  const collect = (g: string, seen: Set<string>): Set<string> => {
    const out = new Set(directHosts.get(g) ?? []);
    for (const c of raw.groups[g]?.children ?? []) {
      if (!raw.groups[c] || seen.has(c)) continue;
      for (const h of collect(c, new Set([...seen, c]))) out.add(h);
    }
    return out;
  };
  const depthOf = (g: string, seen: Set<string>): number => {
    const parents = groupNames.filter((p) => raw.groups[p].children.includes(g) && !seen.has(p));
    return parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, new Set([...seen, p])))) : 0;
  };
  for (const g of groupNames) {
    members.set(g, collect(g, new Set([g])));
    depth.set(g, cyclic ? 0 : depthOf(g, new Set([g])));
  }
  return { members, depth };
}

/** Reports every group cycle once (`a → b → a`); returns whether any exists. */
function findCycles(ctx: LoadContext): boolean {
  const groups = ctx.raw.groups;
  const state = new Map<string, 'visiting' | 'done'>();
  let found = false;
  const reported = new Set<string>();
  const visit = (g: string, stack: string[]): void => {
    state.set(g, 'visiting');
    for (const c of groups[g].children) {
      if (!groups[c]) continue;
      if (state.get(c) === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(c)), c];
        const id = [...cycle].slice(0, -1).sort().join(',');
        if (!reported.has(id)) {
          reported.add(id);
          found = true;
          const idx = groups[g].children.indexOf(c);
          ctx.error(['groups', g, 'children', idx], `group cycle ${cycle.join(' → ')}: a group cannot contain itself; remove one of these children`);
        }
      } else if (!state.has(c)) visit(c, [...stack, c]);
    }
    state.set(g, 'done');
  };
  for (const g of Object.keys(groups)) if (!state.has(g)) visit(g, [g]);
  return found;
}

/**
 * Returns the group map patterns select from: all, the declared groups, one group per cluster
 * (its members), and clusters (every member of one); hosts in inventory order.
 */
export function groupMap(ctx: LoadContext, tree: GroupTree, hosts: Map<string, HostSpec>, clusters: Map<string, ClusterSpec>, clusterOf: Map<string, string>): Map<string, string[]> {
  const hostNames = Object.keys(ctx.raw.hosts);
  const order = (set: Iterable<string>) => {
    const s = new Set(set);
    return hostNames.filter((h) => s.has(h));
  };
  const groups = new Map<string, string[]>();
  groups.set('all', [...hostNames]);
  for (const g of Object.keys(ctx.raw.groups)) groups.set(g, order(tree.members.get(g)!));
  for (const [cname, c] of clusters) groups.set(cname, order([c.master, c.replica].filter((h) => hosts.has(h))));
  groups.set('clusters', order(clusterOf.keys()));
  return groups;
}
