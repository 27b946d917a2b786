/** Lab inventories that choose availability over the split-brain bound (for failover measurements). */
import { promises as fs } from 'node:fs';
import { parseDocument } from 'yaml';

/** Sets redis.min_replicas_max_lag: 0 (no split-brain bound) on every cluster of a lab inventory. */
export async function availabilityFirst(inventoryPath: string): Promise<void> {
  const doc = parseDocument(await fs.readFile(inventoryPath, 'utf8'));
  const clusters = doc.get('clusters') as { items: Array<{ key: { value: string } }> } | undefined;
  for (const item of clusters?.items ?? []) doc.setIn(['clusters', item.key.value, 'redis', 'min_replicas_max_lag'], 0);
  await fs.writeFile(inventoryPath, doc.toString());
}
