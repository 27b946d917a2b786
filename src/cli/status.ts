/** `rha status INVENTORY`: per cluster and node, the live state and a verdict; exit 0 only when healthy. */
import path from 'node:path';
import { ConnectionPool } from '../connection/index.js';
import { maskSecrets } from '../core/command.js';
import { ExitCode, InputError, type Inventory } from '../core/types.js';
import { loadInventory } from '../inventory/index.js';
import { formatStatus, readStatus, type ClusterStatus } from '../pair/status.js';
import { printProblems, processIo, type Io } from './run.js';

export interface StatusOptions {
  cluster: string[];
  output?: 'table' | 'json';
  acceptHostKey: string[];
}

/** Loads the inventory and reads every cluster's live state; throws InputError for bad input. */
export async function statusOf(inventoryFile: string, o: Pick<StatusOptions, 'cluster' | 'acceptHostKey'>, io: Io = processIo()): Promise<{ inv: Inventory; clusters: ClusterStatus[] }> {
  const inv = await loadInventory(path.resolve(io.cwd, inventoryFile), { env: io.env });
  const unknown = o.cluster.filter((c) => !inv.clusters.has(c));
  if (unknown.length) {
    throw new InputError(unknown.map((c) => ({ file: '(command line)', path: '--cluster', message: `no cluster "${c}" in the inventory`, severity: 'error' as const })));
  }
  const pool = new ConnectionPool({ acceptChangedHostKeys: new Set(o.acceptHostKey), inventoryPath: inventoryFile });
  try {
    return { inv, clusters: await readStatus(inv, (h) => pool.get(h), o.cluster) };
  } finally {
    await pool.closeAll().catch(() => undefined);
  }
}

/** `rha status`: prints a table (or JSON) and returns 0 when every cluster is healthy, 2 otherwise. */
export async function statusCommand(inventoryFile: string, o: StatusOptions, io: Io = processIo()): Promise<ExitCode> {
  let result: Awaited<ReturnType<typeof statusOf>>;
  try {
    result = await statusOf(inventoryFile, o, io);
  } catch (e) {
    if (e instanceof InputError) {
      printProblems(e.problems, io);
      return ExitCode.invalidInput;
    }
    throw e;
  }
  const { inv, clusters } = result;
  const text = o.output === 'json' ? JSON.stringify({ clusters, healthy: clusters.every((c) => c.verdict === 'healthy') }, null, 2) : formatStatus(clusters);
  io.stdout.write(maskSecrets(text, inv.secrets) + '\n');
  return clusters.every((c) => c.verdict === 'healthy') ? ExitCode.ok : ExitCode.hostFailed;
}
