#!/usr/bin/env node
/**
 * `npm run bench`: rha against Ansible on the same lab hosts, plus from-scratch provisioning of a
 * pair, failover and switchover times. Prints one table and writes the same numbers as JSON
 * (bench/results/latest.json or --json PATH). Needs root (the lab). Timings are the machine's:
 * run it on an otherwise idle machine for numbers worth comparing over time.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterSpec } from '../core/types.js';
import { loadInventory } from '../inventory/index.js';
import { availabilityFirst, vipHolder } from './availability.js';
import { healthRuns } from './health.js';
import { labDown, labExec, labKill, labReboot, labStartHost, labStopHost, labUp, type LabInfo } from '../lab/index.js';
import { netnsPids } from '../lab/net.js';
import { call, fastClient, vipTarget } from '../pair/client.js';
import { packageRoot } from '../cli/run.js';
import { runPool } from '../runner/pool.js';
import { parseBenchArgs, type BenchOptions } from './options.js';
import { ansibleEnv, ensureAnsible, writeAnsibleInventory } from './ansible.js';
import { writeJobJinja } from './jinja.js';
import { mustSucceed, running, timed, type Timed } from './proc.js';
import { judgeTargets, renderResult, samples, type BenchResult, type BuildResult, type ScaleResult, type ToolRuns } from './result.js';
import { median, parseRecap, recapTotals } from './stats.js';
import { systemdPairLab, systemdPairRun } from './systemd.js';
import { provisionRow, type SectionContext } from './provision.js';
import { n1000LabNames, scale1000Row } from './scale1000.js';

const ROOT = packageRoot();
const BENCH = path.join(ROOT, 'bench');
const RHA = path.join(ROOT, 'dist', 'cli', 'main.js');
// RHA_BENCH_LAB_PREFIX: other lab names, so that two bench runs on one machine do not share labs.
const SCALE_LAB = `${process.env.RHA_BENCH_LAB_PREFIX ?? ''}bench`;
const PAIR_LAB = `${process.env.RHA_BENCH_LAB_PREFIX ?? ''}benchpair`;
const HEALTH_LAB = `${process.env.RHA_BENCH_LAB_PREFIX ?? ''}benchhealth`;

const log = (line: string): void => {
  process.stderr.write(`[bench] ${line}\n`);
};
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

const controller = new AbortController();
function checkAborted(): void {
  if (controller.signal.aborted) throw new Error('interrupted');
}

/** Runs the CLI as a user would in a pipe (plain output), timed, with its peak RSS. */
function rha(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Timed> {
  return timed([process.execPath, RHA, ...args], {
    env: { ...process.env, CI: 'true', NO_COLOR: '1', ...env },
    measureRss: true,
    timeoutMs: 30 * 60_000,
  });
}

/**
 * No-op re-runs per tool and size: at N=2 a run is a fraction of a second (rha) against a few
 * (Ansible), where one sample is at the mercy of the machine: the median of five. Larger sizes
 * take long enough for one run to stand.
 */
const reps = (n: number): number => (n <= 2 ? 5 : 1);

/** The bench's keeper (rha keeper status --json with the bench's cache folder), if one is running. */
async function keeperStatus(env: NodeJS.ProcessEnv): Promise<{ runs: number; peakRssMb: number } | undefined> {
  const r = await rha(['keeper', 'status', '--json'], env);
  try {
    const all = JSON.parse(r.stdout) as Array<{ runs: number; peakRssMb: number }>;
    return all[0];
  } catch {
    return undefined;
  }
}

/** Checks a job run: success, every host in the recap, and (for a re-run) nothing changed; returns hosts changed. */
function checkRun(tool: string, what: string, r: Timed, hosts: number, expectNoChange: boolean): number {
  const totals = recapTotals(parseRecap(r.stdout));
  if (r.code !== 0 || totals.hosts !== hosts || totals.failed || totals.unreachable) {
    throw new Error(
      `${tool} ${what} on ${hosts} hosts did not succeed (exit ${r.code}, recap: ${JSON.stringify(totals)}):\n` +
        (r.stdout + r.stderr).trim().split('\n').slice(-30).join('\n'),
    );
  }
  const changedHosts = Object.values(parseRecap(r.stdout)).filter((h) => (h.changed ?? 0) > 0).length;
  if (expectNoChange && changedHosts) throw new Error(`${tool} ${what}: ${changedHosts} hosts changed on a re-run that should change nothing`);
  return changedHosts;
}

// ---------------------------------------------------------------------------------------------
// The bench job on N hosts, both tools.

/** The files and folders the job writes, from the lab's resolved values. */
function jobPaths(c: ClusterSpec): { files: string[]; dirs: string[] } {
  const r = c.redis as { config_dir: string; data_dir: string; log_dir: string };
  return {
    files: [
      `${r.config_dir}/redis.conf`,
      `${r.config_dir}/replication.conf`,
      '/etc/systemd/system/redis-server.service',
      '/etc/keepalived/rha/redis.auth',
      '/etc/keepalived/rha/check_redis.sh',
      '/etc/keepalived/rha/notify.sh',
      '/etc/keepalived/keepalived.conf',
    ],
    dirs: [r.config_dir, r.data_dir, r.log_dir, '/etc/keepalived'],
  };
}

/** Per host: sha256, mode and owner of every file the job writes (inside the host, not over SSH). */
async function fileSums(lab: LabInfo, hosts: string[], files: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await runPool(hosts, 8, async (h) => {
    const r = await labExec(lab.name, h, ['sh', '-c', 'stat -c "%a %U:%G %n" "$@" && sha256sum "$@"', 'sums', ...files]);
    out.set(h, r.code === 0 ? r.stdout : `error ${r.code}: ${r.stderr}`);
  });
  return out;
}

async function wipeJob(lab: LabInfo, hosts: string[], p: { files: string[]; dirs: string[] }): Promise<void> {
  await runPool(hosts, 8, async (h) => {
    const r = await labExec(lab.name, h, ['rm', '-rf', '--', ...p.files, ...p.dirs]);
    if (r.code !== 0) throw new Error(`wiping the job's files on ${h} failed: ${r.stderr}`);
  });
}

async function scaleRun(n: number, o: BenchOptions, ansibleVersion: string | undefined): Promise<ScaleResult> {
  log(`N=${n}: starting ${n} lab hosts (python3 in their root, for Ansible)`);
  const lab = await labUp({ name: SCALE_LAB, hosts: n, python: true, recreate: true, signal: controller.signal, log });
  try {
    const inv = await loadInventory(lab.inventoryPath);
    const hosts = inv.groups.get('clusters') ?? [];
    const paths = jobPaths([...inv.clusters.values()][0]);
    const job = path.join(BENCH, 'rha-job.yaml');
    const args = ['run', job, '-i', lab.inventoryPath, '--forks', String(o.forks), '--output', 'plain'];

    // rha's own cache folder for this size: its keeper (src/cli/keeper.ts) is then the bench's
    // alone, its status and memory readable, and stopped before the next size.
    const cache = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-cache-'));
    const env = { XDG_CACHE_HOME: cache };
    let rhaRuns: ToolRuns;
    try {
      checkAborted();
      const first = await rha(args, env);
      const firstChanged = checkRun('rha', 'first run', first, hosts.length, false);
      log(`N=${n}: rha first run ${secs(first.wallMs)} (${firstChanged} hosts changed)`);
      const noops: Timed[] = [];
      for (let i = 0; i < reps(n); i++) {
        checkAborted();
        const r = await rha(args, env);
        checkRun('rha', 'no-op re-run', r, hosts.length, true);
        noops.push(r);
      }
      const keeper = await keeperStatus(env);
      await rha(['keeper', 'stop'], env);
      // The same re-run with every command in its own process (RHA_KEEPER=off), for comparison.
      const own: Timed[] = [];
      for (let i = 0; i < reps(n); i++) {
        checkAborted();
        const r = await rha(args, { ...env, RHA_KEEPER: 'off' });
        checkRun('rha', 'no-op re-run without the keeper', r, hosts.length, true);
        own.push(r);
      }
      const noopMs = median(noops.map((r) => r.wallMs))!;
      const ownMs = median(own.map((r) => r.wallMs))!;
      log(`N=${n}: rha no-op re-run ${secs(noopMs)} (${noops.length === 1 ? 'one run' : `median of ${noops.length}`}), without the keeper ${secs(ownMs)}`);
      // The controller is the keeper when it ran the runs: its peak memory counts, not only the client's.
      const peaks = [first, ...noops, ...own].map((r) => r.peakRssMb).concat(keeper?.peakRssMb).filter((v): v is number => v !== undefined);
      rhaRuns = {
        firstMs: first.wallMs,
        noopMs,
        ...(noops.length > 1 ? { noopSamplesMs: noops.map((r) => r.wallMs) } : {}),
        noopOwnProcessMs: ownMs,
        firstChanged,
        noopChanged: 0,
        ...(peaks.length ? { peakRssMb: Math.max(...peaks) } : {}),
        ...(keeper ? { keeperRuns: keeper.runs } : {}),
      };
    } finally {
      await rha(['keeper', 'stop'], env).catch(() => undefined);
      await fs.rm(cache, { recursive: true, force: true });
    }
    if (!ansibleVersion) return { hosts: n, clusters: inv.clusters.size, forks: o.forks, rha: rhaRuns };

    // Ansible gets the same fresh start: the job's files removed again, everything else as it was.
    const rhaSums = await fileSums(lab, hosts, paths.files);
    await wipeJob(lab, hosts, paths);
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-ansible-'));
    try {
      for (const d of ['cp', 'tmp', 'home']) await fs.mkdir(path.join(tmp, d), { mode: 0o700 });
      const ansInv = await writeAnsibleInventory(tmp, inv, { privateKey: lab.privateKeyPath, knownHosts: lab.knownHostsPath });
      const env = ansibleEnv(BENCH, tmp);
      const play = ['ansible-playbook', '-i', ansInv, '-f', String(o.forks), path.join(BENCH, 'ansible', 'site.yml')];
      checkAborted();
      const aFirst = await timed(play, { env, measureRss: true, timeoutMs: 60 * 60_000 });
      const aFirstChanged = checkRun('ansible', 'first run', aFirst, hosts.length, false);
      log(`N=${n}: ansible first run ${secs(aFirst.wallMs)} (${aFirstChanged} hosts changed)`);
      checkAborted();
      const aNoops: Timed[] = [];
      for (let i = 0; i < reps(n); i++) {
        checkAborted();
        const r = await timed(play, { env, measureRss: true, timeoutMs: 60 * 60_000 });
        checkRun('ansible', 'no-op re-run', r, hosts.length, true);
        aNoops.push(r);
      }
      const aNoopMs = median(aNoops.map((r) => r.wallMs))!;
      log(`N=${n}: ansible no-op re-run ${secs(aNoopMs)}${aNoops.length > 1 ? ` (median of ${aNoops.length})` : ''}`);
      const ansSums = await fileSums(lab, hosts, paths.files);
      const differing = hosts.filter((h) => rhaSums.get(h) !== ansSums.get(h));
      if (differing.length) {
        const h = differing[0];
        log(`N=${n}: the tools left different files on ${differing.length} hosts; ${h}:\n  rha:\n${rhaSums.get(h)}\n  ansible:\n${ansSums.get(h)}`);
      }
      // Ansible's peak RSS is its main process only (forks are separate processes): not comparable, not reported.
      return {
        hosts: n,
        clusters: inv.clusters.size,
        forks: o.forks,
        rha: rhaRuns,
        ansible: {
          firstMs: aFirst.wallMs,
          noopMs: aNoopMs,
          ...(aNoops.length > 1 ? { noopSamplesMs: aNoops.map((r) => r.wallMs) } : {}),
          firstChanged: aFirstChanged,
          noopChanged: 0,
          version: ansibleVersion,
        },
        identicalFiles: differing.length === 0,
      };
    } finally {
      // ControlPersist masters die with the lab's hosts; the folder goes now.
      await fs.rm(tmp, { recursive: true, force: true });
    }
  } finally {
    await labDown(SCALE_LAB);
  }
}

// ---------------------------------------------------------------------------------------------
// One pair from scratch, failover, switchover.

/** Writes through the VIP until one succeeds; resolves with the time of that success, or undefined after `limitMs`. */
async function firstWrite(c: ClusterSpec, key: string, startedAt: number, limitMs: number): Promise<number | undefined> {
  for (let i = 0; performance.now() - startedAt < limitMs; i++) {
    checkAborted();
    try {
      await call(vipTarget(c), ['SET', key, String(i)], 300);
      return performance.now();
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return undefined;
}

async function provision(lab: LabInfo, env: NodeJS.ProcessEnv = {}): Promise<Timed> {
  return mustSucceed(`rha provision on lab ${lab.name}`, await rha(['provision', lab.inventoryPath, '--output', 'plain'], env));
}

async function bareBaseline(lab: LabInfo, spare: string): Promise<Omit<BuildResult, 'pairMs'>> {
  // Package installs on a fresh host of the same kind, from the lab's local repository.
  const t0 = performance.now();
  const pk = await labExec(lab.name, spare, [
    'sh',
    '-c',
    'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc make libc6-dev keepalived',
  ], { timeoutMs: 15 * 60_000 });
  const packageInstallMs = performance.now() - t0;
  if (pk.code !== 0) throw new Error(`apt-get install on ${spare} failed: ${pk.stderr.trim().split('\n').slice(-5).join('\n')}`);
  // The bare build: the same source tree, make -j2, in a temp dir on the controller.
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-make-'));
  try {
    mustSucceed('unpacking the Redis source', await timed(['tar', '-xzf', lab.redisSource.path, '-C', tmp, '--strip-components=1']));
    checkAborted();
    const mk = mustSucceed('make -j2 of the Redis source', await timed(['make', '-j2'], { cwd: tmp, timeoutMs: 30 * 60_000 }));
    return { bareBuildMs: mk.wallMs, packageInstallMs };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** SET through the VIP on a fresh connection; 'refused' when the password was (ioredis reports it on the connection). */
async function authedSet(c: ClusterSpec, password: string, key: string, value: string): Promise<'ok' | 'refused' | 'failed'> {
  const cl = fastClient({ ...vipTarget(c), password }, 300);
  let refused = false;
  cl.on('error', (e: Error) => (refused ||= /WRONGPASS|NOAUTH/.test(e.message)));
  try {
    await cl.connect();
    return (await cl.call('SET', key, value)) === 'OK' ? 'ok' : 'failed';
  } catch (e) {
    return refused || /WRONGPASS|NOAUTH/.test((e as Error).message) ? 'refused' : 'failed';
  } finally {
    cl.disconnect();
  }
}

/**
 * Rotates redis.password, then auth_pass, with `rha provision` on the running pair while a client
 * writes through the VIP (re-authenticating with the new password once the old one is refused);
 * per rotation, the longest interval without an acknowledged write.
 */
async function rotationRuns(lab: LabInfo, c0: ClusterSpec, o: BenchOptions): Promise<NonNullable<BenchResult['rotation']>> {
  let c = c0;
  const gaps = { redis: [] as number[], vrrp: [] as number[] };
  let refusedWrites = 0;
  let failedWrites = 0;
  for (let i = 1; i <= o.repeat; i++) {
    for (const kind of ['redis', 'vrrp'] as const) {
      checkAborted();
      const file = path.join(lab.dir, 'secrets', `${c.name}.${kind}.pass`);
      // keepalived uses at most 8 characters of auth_pass.
      const next = kind === 'redis' ? `bench-rotated-${Date.now()}-${i}` : `b${Date.now() % 10_000_000}`;
      const passwords = [(c.redis as { password: string }).password, kind === 'redis' ? next : (c.redis as { password: string }).password];
      let stop = false;
      let pw = 0;
      const t0 = performance.now();
      let lastAck = t0;
      let longest = 0;
      const writer = (async () => {
        for (let k = 0; !stop; k++) {
          const r = await authedSet(c, passwords[pw], 'rha:bench:rotation', String(k));
          if (r === 'ok') {
            const now = performance.now();
            longest = Math.max(longest, now - lastAck);
            lastAck = now;
          } else if (r === 'refused') {
            refusedWrites++;
            pw = (pw + 1) % passwords.length;
          } else {
            failedWrites++;
            await new Promise((res) => setTimeout(res, 25));
          }
        }
      })();
      await fs.writeFile(file, `${next}\n`, { mode: 0o600 });
      const p = await provision(lab);
      stop = true;
      await writer;
      longest = Math.max(longest, performance.now() - lastAck);
      gaps[kind].push(longest);
      log(`rotation ${i}/${o.repeat}: ${kind === 'redis' ? 'redis.password' : 'auth_pass'} rotated by rha provision in ${secs(p.wallMs)}, longest gap between acknowledged writes ${secs(longest)}`);
      c = [...(await loadInventory(lab.inventoryPath)).clusters.values()][0];
    }
  }
  return { redisPassword: samples(gaps.redis), authPass: samples(gaps.vrrp), refusedWrites, failedWrites };
}

async function switchoverAvailable(): Promise<string | undefined> {
  const r = await timed([process.execPath, RHA, 'switchover', '--help']);
  return r.code === 0 ? undefined : `rha switchover --help exited ${r.code}`;
}

async function pairRuns(o: BenchOptions, result: BenchResult): Promise<void> {
  // node3 sits outside the pair (the lab pairs hosts two by two): the fresh host for the baseline.
  log(`pair: starting a ${o.build ? 3 : 2}-host lab`);
  const lab = await labUp({ name: PAIR_LAB, hosts: o.build ? 3 : 2, recreate: true, signal: controller.signal, log });
  // The failover figure is how soon writes resume after the master's Redis dies. With the
  // split-brain bound on (redis.min_replicas_max_lag, default 10 s) they resume only once a
  // replica is back, by design (README): this pair runs without it, as a user choosing availability.
  await availabilityFirst(lab.inventoryPath);
  const cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-cache-'));
  try {
    if (o.build) {
      log('pair: rha provision from scratch (empty RHA_CACHE_DIR: packages, one Redis build, shipping, bring-up)');
      const p = await provision(lab, { RHA_CACHE_DIR: cacheDir });
      log(`pair: provisioned in ${secs(p.wallMs)}; now the baseline (package installs on node3, bare make -j2)`);
      checkAborted();
      const base = await bareBaseline(lab, 'node3');
      result.build = { pairMs: p.wallMs, ...base };
      log(`pair: bare make -j2 ${secs(base.bareBuildMs)}, package installs ${secs(base.packageInstallMs)}`);
    } else {
      log('pair: rha provision (shared build cache)');
      await provision(lab);
    }
    if (!o.failover) return;
    let c = [...(await loadInventory(lab.inventoryPath)).clusters.values()][0];

    const failover: number[] = [];
    for (let i = 1; i <= o.repeat; i++) {
      checkAborted();
      if ((await firstWrite(c, 'rha:bench:warmup', performance.now(), 30_000)) === undefined) throw new Error('writes through the VIP never succeeded before the failover');
      const master = await vipHolder(lab, c);
      if (!master) throw new Error('no node holds the VIP before the failover');
      if ((await labKill(lab.name, master, 'redis-server')) === 0) throw new Error(`no redis-server to kill on ${master}`);
      const t0 = performance.now();
      const t1 = await firstWrite(c, 'rha:bench:failover', t0, 30_000);
      if (t1 === undefined) throw new Error(`failover ${i}: no write through the VIP succeeded within 30 s of killing Redis on ${master}`);
      failover.push(t1 - t0);
      log(`failover ${i}/${o.repeat}: Redis killed on ${master}, writes resumed after ${secs(t1 - t0)}; restoring the pair with rha provision`);
      await provision(lab);
    }
    result.failover = samples(failover);

    result.rotation = await rotationRuns(lab, c, o);
    c = [...(await loadInventory(lab.inventoryPath)).clusters.values()][0]; // the rotated secrets

    const why = await switchoverAvailable();
    if (why) {
      result.switchover = { available: false, why };
      return;
    }
    const resume: number[] = [];
    const pauses: number[] = [];
    const commandMs: number[] = [];
    for (let i = 1; i <= o.repeat; i++) {
      checkAborted();
      if ((await firstWrite(c, 'rha:bench:warmup', performance.now(), 30_000)) === undefined) throw new Error('writes through the VIP never succeeded before the switchover');
      // A writer runs through the switchover: the outage ends at the first success after the last
      // failure; the pause is the longest interval between two acknowledged writes.
      let stop = false;
      let lastFailure: number | undefined;
      let resumedAt: number | undefined;
      const t0 = performance.now();
      let lastAck = t0;
      let longestGap = 0;
      const writer = (async () => {
        for (let k = 0; !stop || (lastFailure !== undefined && resumedAt === undefined); k++) {
          if (performance.now() - t0 > 60_000) break;
          try {
            await call(vipTarget(c), ['SET', 'rha:bench:switchover', String(k)], 300);
            const now = performance.now();
            longestGap = Math.max(longestGap, now - lastAck);
            lastAck = now;
            if (lastFailure !== undefined && resumedAt === undefined) resumedAt = performance.now();
          } catch {
            lastFailure = performance.now();
            resumedAt = undefined;
            await new Promise((r) => setTimeout(r, 25));
          }
        }
      })();
      const sw = await rha(['switchover', lab.inventoryPath, c.name]);
      stop = true;
      await writer;
      if (sw.code !== 0) {
        // Recorded, not fatal: everything measured before it still counts.
        const why = (sw.stdout + sw.stderr).trim().split('\n').slice(-3).join(' / ');
        log(`switchover ${i}/${o.repeat} failed (exit ${sw.code}):\n${(sw.stdout + sw.stderr).trim().split('\n').slice(-20).join('\n')}`);
        result.switchover = { available: false, why: `rha switchover failed (exit ${sw.code}): ${why}` };
        return;
      }
      if (lastFailure !== undefined && resumedAt === undefined) throw new Error(`switchover ${i}: writes through the VIP did not resume within 60 s`);
      const gap = resumedAt === undefined ? 0 : resumedAt - t0;
      resume.push(gap);
      pauses.push(longestGap);
      commandMs.push(sw.wallMs);
      log(
        `switchover ${i}/${o.repeat}: command ${secs(sw.wallMs)}, writes ${lastFailure === undefined ? 'never failed' : `resumed ${secs(gap)} after the start`}, ` +
          `longest gap between acknowledged writes ${secs(longestGap)}`,
      );
    }
    const cmd = samples(commandMs);
    result.switchover = {
      available: true,
      ...samples(resume),
      pause: samples(pauses),
      ...(cmd.medianMs !== undefined ? { commandMedianMs: cmd.medianMs } : {}),
    };
  } finally {
    await fs.rm(cacheDir, { recursive: true, force: true });
    await labDown(PAIR_LAB);
  }
}

// ---------------------------------------------------------------------------------------------

const SYSTEMD_LAB = `${process.env.RHA_BENCH_LAB_PREFIX ?? ''}bench-systemd`;

/** Boot and reboot times of a systemd lab host, and its memory (PSS summed over its processes). */
async function systemdHostRun(o: BenchOptions): Promise<NonNullable<BenchResult['systemdHost']>> {
  log('systemd host: boot and reboot times');
  const lab = await labUp({ name: SYSTEMD_LAB, hosts: 1, systemd: true, recreate: true, signal: controller.signal, log });
  try {
    const host = lab.hosts[0];
    const boot: number[] = [];
    const reboot: number[] = [];
    for (let i = 0; i < o.repeat; i++) {
      checkAborted();
      await labStopHost(SYSTEMD_LAB, host.name);
      let t0 = Date.now();
      await labStartHost(SYSTEMD_LAB, host.name);
      boot.push(Date.now() - t0);
      t0 = Date.now();
      await labReboot(SYSTEMD_LAB, host.name);
      reboot.push(Date.now() - t0);
    }
    let pssKb = 0;
    for (const pid of await netnsPids(host.netns)) {
      const rollup = await fs.readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
      pssKb += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    }
    return { boot: samples(boot), reboot: samples(reboot), ...(pssKb ? { pssKb } : {}) };
  } finally {
    await labDown(SYSTEMD_LAB);
  }
}

/** What the real-job sections (provision.ts, scale1000.ts) borrow from this driver. */
const sectionContext: SectionContext = {
  rha,
  log,
  checkAborted,
  signal: controller.signal,
  checkRun,
  keeperStatus,
  benchDir: BENCH,
  labPrefix: process.env.RHA_BENCH_LAB_PREFIX ?? '',
};

async function commit(): Promise<string | undefined> {
  const r = await timed(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

async function main(): Promise<number> {
  let o: BenchOptions;
  try {
    o = parseBenchArgs(process.argv.slice(2), path.join(BENCH, 'results', 'latest.json'));
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return code ?? 4;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('npm run bench needs root: it starts lab hosts (network namespaces, mounts)\n');
    return 4;
  }
  let interrupts = 0;
  const onSignal = (): void => {
    if (++interrupts > 1) process.exit(130);
    log('interrupted: stopping, taking the labs down (Ctrl-C again to exit at once)');
    controller.abort();
    for (const pid of running) {
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        /* gone */
      }
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const started = Date.now();
  const result: BenchResult = {
    version: 1,
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    machine: { cpus: os.cpus().length, memoryMb: Math.round(os.totalmem() / 2 ** 20), node: process.version, kernel: os.release(), commit: await commit() },
    options: { sizes: o.sizes, forks: o.forks, repeat: o.repeat, ansible: o.ansible, build: o.build, failover: o.failover, systemd: o.systemd, health: o.health, provision: o.provision, n1000: o.n1000 },
    scale: [],
    switchover: { available: false, why: o.failover ? 'not run' : 'not run (--skip-failover)' },
    targets: [],
  };
  try {
    const ansibleVersion = o.ansible ? await ensureAnsible(log) : undefined;
    if (ansibleVersion) {
      log(`using ${ansibleVersion}`);
      // Regenerated from the shipped templates every run, so the two sides never drift apart.
      await writeJobJinja(path.join(ROOT, 'templates'), path.join(BENCH, 'ansible', 'templates'));
    }
    for (const n of o.sizes) {
      checkAborted();
      result.scale.push(await scaleRun(n, o, ansibleVersion));
    }
    if (o.build || o.failover) await pairRuns(o, result);
    if (o.systemd) result.systemdHost = await systemdHostRun(o);
    if (o.systemd) result.systemdPair = await systemdPairRun({ rhaPath: RHA, log, signal: controller.signal });
    if (o.health) {
      const d = { labName: HEALTH_LAB, repeat: Math.min(o.repeat, 3), datasetMb: o.healthDatasetMb, signal: controller.signal, log, provision: (lab: LabInfo) => provision(lab) };
      result.health = { candidates: [], datasetMb: o.healthDatasetMb };
      await healthRuns(d, result.health);
    }
    if (o.provision) result.provision = await provisionRow(sectionContext, o, ansibleVersion);
    if (o.n1000) result.scale1000 = await scale1000Row(sectionContext, { forks: o.n1000Forks });
  } catch (e) {
    // Clean-up happened in the finally blocks; what was measured so far is still printed.
    log(controller.signal.aborted ? 'interrupted' : `failed: ${(e as Error).message}`);
    await Promise.all([labDown(SCALE_LAB), labDown(PAIR_LAB), labDown(SYSTEMD_LAB), labDown(systemdPairLab()), labDown(`${sectionContext.labPrefix}benchprov`)]).catch(() => undefined);
    for (const n of n1000LabNames(sectionContext.labPrefix)) await labDown(n).catch(() => undefined);
    result.durationMs = Date.now() - started;
    result.targets = judgeTargets(result);
    result.error = controller.signal.aborted ? 'interrupted' : (e as Error).message;
    process.stdout.write('\n' + renderResult(result));
    // What was measured before the failure is kept, marked by `error`, never as latest.json.
    const partial = o.json.replace(/\.json$/, '') + '.failed.json';
    await fs.writeFile(partial, JSON.stringify(result, null, 2) + '\n').catch(() => undefined);
    log(`partial results written to ${partial}`);
    return controller.signal.aborted ? 130 : 1;
  }
  result.durationMs = Date.now() - started;
  result.targets = judgeTargets(result);
  process.stdout.write('\n' + renderResult(result));
  await fs.mkdir(path.dirname(o.json), { recursive: true });
  await fs.writeFile(o.json, JSON.stringify(result, null, 2) + '\n');
  log(`results written to ${path.relative(process.cwd(), o.json) || o.json}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: internal error: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);

