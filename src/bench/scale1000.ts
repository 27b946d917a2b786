/**
 * The N=1000 row (issue 17): the bench job's no-op re-run on 1000 sshd-only lab hosts, rha only,
 * through the keeper and in its own process, with wall time and peak RSS.
 *
 * The hosts are the lab's namespace hosts (sshd as PID 1 over an overlay root: no systemd, no
 * Redis), in labs of 100 (a lab is one /24, at most 100 hosts), with one set of SSH host keys per
 * lab (`sharedHostKeys`: an RSA host key costs ~1.6 s of CPU per host) and the controller's
 * neighbour entries pinned (`pinNeighbours`: 1000 overflow the kernel's table). One merged inventory names
 * them all. Why not many connections to fewer hosts: rha takes a per-host run lock
 * (/run/rha.lock) and the job writes fixed paths (/etc/keepalived/...), so aliases of one host
 * would fail on the lock or overwrite each other's files: not the no-op of 1000 hosts.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { labDown, labUp, type LabInfo } from '../lab/index.js';
import { noopBothWays, watchKeeperPeak, type SectionContext } from './provision.js';
import type { Scale1000Result } from './real-result.js';

export const N1000_HOSTS = 1000;
export const HOSTS_PER_LAB = 100;
/** No-op re-runs per mode at N=1000: each takes minutes on a busy 2-core machine, so two. */
export const N1000_REPS = 2;

/** One lab's inventory as `rha lab up` writes it (the parts merged). */
interface LabInventoryDoc {
  hosts: Record<string, string>;
  clusters?: Record<string, { master: string; replica: string; redis: Record<string, unknown>; keepalived: Record<string, unknown> } & Record<string, unknown>>;
}

/** A `{ file: ./x }` secret made absolute against the lab's folder; anything else as it is. */
function absSecret(v: unknown, dir: string): unknown {
  if (v && typeof v === 'object' && 'file' in v && typeof (v as { file: unknown }).file === 'string') {
    return { file: path.resolve(dir, (v as { file: string }).file) };
  }
  return v;
}

/**
 * One inventory for the hosts of several labs (pure): every host and cluster renamed
 * `TAG-NAME` (the labs all have node1.., pair1..), each host with its own lab's key, secret files
 * made absolute, one known_hosts for all.
 */
export function mergeLabInventories(labs: Array<{ tag: string; dir: string; doc: LabInventoryDoc }>, knownHosts: string): Record<string, unknown> {
  const hosts: Record<string, unknown> = {};
  const clusters: Record<string, unknown> = {};
  for (const { tag, dir, doc } of labs) {
    for (const [h, address] of Object.entries(doc.hosts)) {
      hosts[`${tag}-${h}`] = { address, private_key: path.join(dir, 'id_ed25519') };
    }
    for (const [c, spec] of Object.entries(doc.clusters ?? {})) {
      clusters[`${tag}-${c}`] = {
        ...spec,
        master: `${tag}-${spec.master}`,
        replica: `${tag}-${spec.replica}`,
        redis: { ...spec.redis, password: absSecret(spec.redis.password, dir) },
        keepalived: { ...spec.keepalived, auth_pass: absSecret(spec.keepalived.auth_pass, dir) },
      };
    }
  }
  return { ssh: { user: 'root', known_hosts: knownHosts }, hosts, clusters };
}

/** Labs needed for `hosts` hosts at `perLab` each, and how many hosts each gets (pure). */
export function labSizes(hosts: number, perLab: number): number[] {
  const out: number[] = [];
  for (let left = hosts; left > 0; left -= perLab) out.push(Math.min(perLab, left));
  return out;
}

export async function scale1000Row(ctx: SectionContext, o: { forks: number }): Promise<Scale1000Result> {
  const sizes = labSizes(N1000_HOSTS, HOSTS_PER_LAB);
  const names = n1000LabNames(ctx.labPrefix);
  const labs: LabInfo[] = [];
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-n1000-'));
  const env = { XDG_CACHE_HOME: path.join(tmp, 'cache') };
  try {
    const t0 = performance.now();
    for (const [i, n] of sizes.entries()) {
      ctx.checkAborted();
      ctx.log(`N=${N1000_HOSTS}: lab ${i + 1}/${sizes.length} (${n} sshd-only hosts, shared host keys)`);
      labs.push(await labUp({ name: names[i], hosts: n, sharedHostKeys: true, pinNeighbours: true, recreate: true, signal: ctx.signal, log: () => undefined }));
    }
    const labUpMs = performance.now() - t0;
    ctx.log(`N=${N1000_HOSTS}: ${sizes.length} labs up in ${(labUpMs / 1000).toFixed(1)} s`);

    const knownHosts = path.join(tmp, 'known_hosts');
    await fs.writeFile(knownHosts, (await Promise.all(labs.map((l) => fs.readFile(l.knownHostsPath, 'utf8')))).join(''), { mode: 0o600 });
    const docs = await Promise.all(
      labs.map(async (l, i) => ({ tag: `k${i + 1}`, dir: l.dir, doc: parse(await fs.readFile(l.inventoryPath, 'utf8')) as LabInventoryDoc })),
    );
    const inventory = path.join(tmp, 'inventory.yaml');
    await fs.writeFile(inventory, stringify(mergeLabInventories(docs, knownHosts)), { mode: 0o600 });

    const args = ['run', path.join(ctx.benchDir, 'rha-job.yaml'), '-i', inventory, '--forks', String(o.forks), '--output', 'plain'];
    ctx.checkAborted();
    const firstWatch = watchKeeperPeak(env.XDG_CACHE_HOME);
    const first = await ctx.rha(args, env);
    const firstKeeperMb = firstWatch.stop();
    const changed = ctx.checkRun('rha', 'first run', first, N1000_HOSTS, false);
    ctx.log(`N=${N1000_HOSTS}: rha first run ${(first.wallMs / 1000).toFixed(2)} s (${changed} hosts changed)`);
    const loadStart = os.loadavg()[0];
    // A run where some hosts were unreachable (a connect timing out on the loaded machine) is
    // recorded with its figures and the failure, rather than ending the row without any.
    const failedRuns: string[] = [];
    const lenient: SectionContext = {
      ...ctx,
      checkRun: (tool, what, run, hosts, noChange) => {
        try {
          return ctx.checkRun(tool, what, run, hosts, noChange);
        } catch (e) {
          const line = (e as Error).message.split('\n')[0];
          ctx.log(`N=${N1000_HOSTS}: recorded, not fatal: ${line}`);
          failedRuns.push(line);
          return 0;
        }
      },
    };
    const r = await noopBothWays(lenient, `N=${N1000_HOSTS}`, args, N1000_HOSTS, N1000_REPS, env);
    ctx.log(`N=${N1000_HOSTS}: no-op ${(r.ownProcessMs / 1000).toFixed(2)} s in its own process, ${(r.keeperMs / 1000).toFixed(2)} s through the keeper`);
    return {
      hosts: N1000_HOSTS,
      labs: sizes.length,
      forks: o.forks,
      labUpMs,
      firstMs: first.wallMs,
      noop: { keeperMs: r.keeperMs, keeperSamplesMs: r.keeperSamplesMs, ownProcessMs: r.ownProcessMs, ownProcessSamplesMs: r.ownProcessSamplesMs },
      loadAverage: { start: loadStart, end: os.loadavg()[0] },
      ...(failedRuns.length ? { failedRuns } : {}),
      ...(r.ownProcessPeakRssMb !== undefined ? { ownProcessPeakRssMb: r.ownProcessPeakRssMb } : {}),
      ...(r.keeperPeakRssMb !== undefined ? { keeperPeakRssMb: r.keeperPeakRssMb } : {}),
      ...(firstKeeperMb !== undefined ? { firstRunKeeperPeakRssMb: firstKeeperMb } : {}),
    };
  } finally {
    await ctx.rha(['keeper', 'stop'], env).catch(() => undefined);
    for (const n of names) await labDown(n).catch((e: Error) => ctx.log(`taking lab ${n} down failed: ${e.message}`));
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** The lab names the row uses (for the driver's clean-up after a failure). */
export function n1000LabNames(labPrefix: string): string[] {
  return labSizes(N1000_HOSTS, HOSTS_PER_LAB).map((_, i) => `${labPrefix}bk${i + 1}`);
}
