/**
 * `rha demo`: the README's first command. A two-host lab on this machine, `rha provision` into it,
 * then the proof a person can check: who holds the VIP, replication up, a value written through
 * the VIP read back from the replica.
 */
import { randomBytes } from 'node:crypto';
import { ConnectionPool } from '../connection/index.js';
import { ExitCode } from '../core/types.js';
import { labStatus, labUp, type LabInfo } from '../lab/index.js';
import { call, cliOnNode, vipTarget } from '../pair/client.js';
import { formatStatus } from '../pair/status.js';
import { formatLab } from './lab.js';
import { normalizeRunOptions } from './options.js';
import { processIo, runCommand, selfCommand, sitePlaybook, type Io } from './run.js';
import { statusOf } from './status.js';

/** Runs the demo; returns the exit code of the first step that did not succeed. */
export async function demoCommand(o: { name: string; output?: 'pretty' | 'plain' | 'json' }, io: Io = processIo()): Promise<ExitCode> {
  const say = (s: string) => io.stdout.write(s + '\n');
  const rha = selfCommand();
  let lab: LabInfo | undefined = await labStatus(o.name);
  if (lab && lab.hosts.every((h) => h.running)) {
    say(`== reusing lab ${o.name} (${rha} lab down${o.name === 'default' ? '' : ` --name ${o.name}`} removes it)`);
  } else {
    say(`== 1/3 bringing up a lab of 2 fresh Debian hosts (the first run builds the cache, about a minute)`);
    // debootstrap's per-package lines ("I: Unpacking ...") drown the demo; the lab's own steps stay.
    lab = await labUp({ name: o.name, hosts: 2, recreate: true, log: (l) => void (/^I: /.test(l) || io.stderr.write(`   ${l}\n`)) });
  }
  say(formatLab(lab));

  say(`== 2/3 rha provision ${lab.inventoryPath}`);
  const code = await runCommand(sitePlaybook(), lab.inventoryPath, normalizeRunOptions({ output: o.output }), io);
  if (code !== ExitCode.ok) {
    say(`provisioning did not succeed (exit ${code}); the lab stays up for a look: ${rha} lab ssh node1`);
    return code;
  }

  say('\n== 3/3 the pair at work');
  const { inv, clusters } = await statusOf(lab.inventoryPath, { cluster: [], acceptHostKey: [] }, io);
  say(formatStatus(clusters));
  const pool = new ConnectionPool({ inventoryPath: lab.inventoryPath });
  try {
    for (const c of inv.clusters.values()) {
      const st = clusters.find((s) => s.cluster === c.name)!;
      const replica = st.nodes.find((n) => n.host !== st.master)!;
      const key = `rha:demo:${randomBytes(4).toString('hex')}`;
      const value = `written through the VIP at ${new Date().toISOString()}`;
      const t = vipTarget(c);
      await call(t, ['SET', key, value], 3000);
      say(`SET ${key} through the VIP ${t.host}:${t.port} (answered by ${st.master})`);
      const conn = await pool.get(inv.hosts.get(replica.host)!);
      let got = '';
      for (let i = 0; i < 50 && got !== value; i++) {
        got = await cliOnNode(conn, c, ['GET', key]);
        if (got !== value) await new Promise((r) => setTimeout(r, 100));
      }
      if (got !== value) {
        say(`the replica ${replica.host} does not have ${key} (it says "${got}")`);
        return ExitCode.hostFailed;
      }
      say(`GET ${key} on the replica ${replica.host}: "${got}"`);
    }
  } finally {
    await pool.closeAll();
  }
  const healthy = clusters.every((c) => c.verdict === 'healthy');
  say(
    `\n${healthy ? 'The pair works.' : 'The pair answers, but is not healthy (see above).'} Try next:\n` +
      `  ${rha} provision ${lab.inventoryPath}     # again: 0 changed\n` +
      `  ${rha} status ${lab.inventoryPath}\n` +
      `  ${rha} lab kill ${st0(clusters)} redis-server     # failover: the VIP moves\n` +
      `  ${rha} lab down                                   # remove the lab`,
  );
  return healthy ? ExitCode.ok : ExitCode.hostFailed;
}

function st0(clusters: Array<{ master: string | null }>): string {
  return clusters[0]?.master ?? 'node1';
}
