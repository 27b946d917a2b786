/** Lab pairs in availability measurements: inventories without the split-brain bound, and who holds the VIP. */
import { promises as fs } from 'node:fs';
import { parseDocument } from 'yaml';
import type { ClusterSpec } from '../core/types.js';
import { labExec, type LabInfo } from '../lab/index.js';

/** Sets redis.min_replicas_max_lag: 0 (no split-brain bound) on every cluster of a lab inventory. */
export async function availabilityFirst(inventoryPath: string): Promise<void> {
  const doc = parseDocument(await fs.readFile(inventoryPath, 'utf8'));
  const clusters = doc.get('clusters') as { items: Array<{ key: { value: string } }> } | undefined;
  for (const item of clusters?.items ?? []) doc.setIn(['clusters', item.key.value, 'redis', 'min_replicas_max_lag'], 0);
  await fs.writeFile(inventoryPath, doc.toString());
}

/** The lab host holding the cluster's VIP, if any. */
export async function vipHolder(lab: LabInfo, c: ClusterSpec): Promise<string | undefined> {
  const vip = c.vip.split('/')[0];
  for (const h of [c.master, c.replica]) {
    const r = await labExec(lab.name, h, ['ip', '-o', '-4', 'addr', 'show', 'dev', c.interface]);
    if (r.stdout.includes(` inet ${vip}/`)) return h;
  }
  return undefined;
}
