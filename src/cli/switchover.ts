/** `rha switchover INVENTORY CLUSTER`: a planned move of the VIP and the master role to the replica. */
import { ConnectionPool } from '../connection/index.js';
import { maskSecrets } from '../core/command.js';
import { ExitCode } from '../core/types.js';
import { switchover, SwitchoverError } from '../modules/ha/switchover.js';
import { loadInventoryOrReport, printProblems, processIo, type Io } from './run.js';

/** Runs the switchover and prints how long writes were paused; 0 on success, 2 when refused or failed. */
export async function switchoverCommand(inventoryFile: string, cluster: string, io: Io = processIo()): Promise<ExitCode> {
  const inv = await loadInventoryOrReport(inventoryFile, io);
  if (typeof inv === 'number') return inv;
  const c = inv.clusters.get(cluster);
  if (!c) {
    printProblems([{ file: '(command line)', path: 'CLUSTER', message: `no cluster "${cluster}" in the inventory (clusters: ${[...inv.clusters.keys()].join(', ')})`, severity: 'error' }], io);
    return ExitCode.invalidInput;
  }
  const r = c.redis as { port: number; password: string; prefix: string; config_dir: string; min_replicas_max_lag?: number };
  const pool = new ConnectionPool({ inventoryPath: inventoryFile });
  try {
    const node = async (name: string) => {
      const h = inv.hosts.get(name)!;
      return { name, address: h.connection.address, conn: await pool.get(h) };
    };
    const [a, b] = await Promise.all([node(c.master), node(c.replica)]);
    const res = await switchover(a, b, {
      cluster,
      port: r.port,
      password: r.password,
      vip: c.vip,
      cliPath: `${r.prefix.replace(/\/$/, '')}/bin/redis-cli`,
      configDir: r.config_dir,
      become: inv.hosts.get(c.master)!.connection.become,
      preempt: (c.keepalived as { preempt?: boolean } | undefined)?.preempt === true,
      minReplicasMaxLag: r.min_replicas_max_lag,
      log: (l) => io.stdout.write(`  ${maskSecrets(l, inv.secrets)}\n`),
    });
    io.stdout.write(`cluster ${cluster}: ${res.to} is master and holds the VIP ${c.vip}; ${res.from} replicates from it. Writes were paused ${res.pausedMs} ms (offset ${res.offset}).\n`);
    return ExitCode.ok;
  } catch (e) {
    if (e instanceof SwitchoverError || (e instanceof Error && e.name === 'UnreachableError')) {
      io.stderr.write(`error: ${maskSecrets(e.message, inv.secrets)}\n`);
      return e instanceof SwitchoverError ? ExitCode.hostFailed : ExitCode.hostUnreachable;
    }
    throw e;
  } finally {
    await pool.closeAll().catch(() => undefined);
  }
}
