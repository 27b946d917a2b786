import type { HostFacts, HostSpec, Inventory } from '../core/types.js';

/**
 * The layers of variables a task sees, low → high precedence (docs/design.md): inventory vars of
 * the host (all < groups < host < cluster-derived, already merged by src/inventory) < play vars <
 * task vars < registered results < facts < extra vars. A few run-provided names sit below all of
 * them so that a user can still override them.
 */
export interface VarLayers {
  magic: Record<string, unknown>;
  host: Record<string, unknown>;
  play: Record<string, unknown>;
  task: Record<string, unknown>;
  registered: Record<string, unknown>;
  facts?: HostFacts;
  extra: Record<string, unknown>;
}

/** All layers merged, higher precedence winning key by key at the top level (as Ansible does). */
export function mergeVars(l: VarLayers): Record<string, unknown> {
  return {
    ...l.magic,
    ...l.host,
    ...l.play,
    ...l.task,
    ...l.registered,
    ...(l.facts ? { facts: l.facts } : {}),
    ...l.extra,
  };
}

/** The run-provided variables of a host: its name, the inventory's groups, check mode. */
export function magicVars(inv: Inventory, host: HostSpec, check: boolean): Record<string, unknown> {
  return {
    inventory_hostname: host.name,
    group_names: host.groups.filter((g) => g !== 'all'),
    groups: groupsVar(inv.groups),
    check_mode: check,
  };
}

/**
 * `groups` as a task sees it: built once per inventory, not per task per host. With 1000 hosts in
 * 500 clusters (a group each), copying it for every task of every host was the biggest CPU cost of
 * a no-op run (issue 17). Frozen, since every task of every host shares it; its lists were already
 * shared before. Built again if the map's size changed.
 */
const groupsCache = new WeakMap<ReadonlyMap<string, string[]>, { size: number; value: Readonly<Record<string, string[]>> }>();

export function groupsVar(groups: ReadonlyMap<string, string[]>): Readonly<Record<string, string[]>> {
  const hit = groupsCache.get(groups);
  if (hit && hit.size === groups.size) return hit.value;
  const value = Object.freeze(Object.fromEntries(groups));
  groupsCache.set(groups, { size: groups.size, value });
  return value;
}
