/**
 * The real job's row (issue 17): the no-op re-run of the full `rha provision` (playbooks/site.yaml)
 * on a provisioned pair, through the keeper and in its own process, against the closest honest
 * Ansible playbook (bench/ansible/provision.yml) on the same pair. The pair's hosts boot systemd,
 * like real servers, so both tools manage the services through systemd.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadInventory } from '../inventory/index.js';
import { labDown, labUp } from '../lab/index.js';
import { ansibleEnv, writeAnsibleInventory } from './ansible.js';
import { timed, type Timed } from './proc.js';
import type { NoopPair, ProvisionResult } from './real-result.js';
import { median } from './stats.js';

/** What the driver (main.ts) lends a section: its CLI runner, log, abort and run checks. */
export interface SectionContext {
  /** Runs the rha CLI as a user would in a pipe, timed, with its peak RSS. */
  rha(args: string[], env?: NodeJS.ProcessEnv): Promise<Timed>;
  log(line: string): void;
  checkAborted(): void;
  signal: AbortSignal;
  /** Fails unless the run succeeded on `hosts` hosts (and, for a re-run, changed nothing); returns hosts changed. */
  checkRun(tool: string, what: string, r: Timed, hosts: number, expectNoChange: boolean): number;
  /** The keeper's runs and peak RSS, for the cache folder in env. */
  keeperStatus(env: NodeJS.ProcessEnv): Promise<{ runs: number; peakRssMb: number } | undefined>;
  benchDir: string;
  labPrefix: string;
}

/** rha's no-op re-runs of a pair: a fraction of a second each, so the median of five per mode. */
export const RHA_REPS = 5;
/** Ansible's no-op re-runs of the pair: tens of seconds each, after one warm-up run: the median of three. */
export const ANSIBLE_REPS = 3;

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const peak = (rs: Timed[], extra?: number): number | undefined => {
  const v = rs.map((r) => r.peakRssMb).concat(extra).filter((x): x is number => x !== undefined);
  return v.length ? Math.max(...v) : undefined;
};

/**
 * The highest VmHWM of any keeper serving the cache folder `cacheHome` while it runs: the keeper
 * ends itself after a run above its memory cap (src/cli/keeper.ts), so asking it afterwards
 * (`rha keeper status`) can miss the keepers that did the work. Samples /proc every 200 ms.
 */
export function watchKeeperPeak(cacheHome: string): { stop(): number | undefined } {
  let peakKb = 0;
  const sample = async (): Promise<void> => {
    for (const pid of await fs.readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(pid)) continue;
      const comm = await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
      if (comm.trim() !== 'node') continue;
      const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (!cmd.includes('\0keeper\0serve\0') || !cmd.includes(cacheHome)) continue;
      const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      peakKb = Math.max(peakKb, Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0));
    }
  };
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void sample().finally(() => (busy = false));
  }, 200);
  return {
    stop() {
      clearInterval(timer);
      return peakKb ? peakKb / 1024 : undefined;
    },
  };
}

/**
 * Times `runs` no-op re-runs of `args` through a keeper of its own (a fresh cache folder, the
 * first of `warm` runs starting it), then as many with RHA_KEEPER=off. Every run must change
 * nothing on any of `hosts` hosts.
 */
export async function noopBothWays(
  ctx: SectionContext,
  what: string,
  args: string[],
  hosts: number,
  runs: number,
  cacheEnv: NodeJS.ProcessEnv,
): Promise<NoopPair & { ownProcessPeakRssMb?: number; keeperPeakRssMb?: number; keeperRuns?: number }> {
  const viaKeeper: Timed[] = [];
  const watch = cacheEnv.XDG_CACHE_HOME ? watchKeeperPeak(cacheEnv.XDG_CACHE_HOME) : undefined;
  let watched: number | undefined;
  try {
    for (let i = 0; i < runs; i++) {
      ctx.checkAborted();
      const r = await ctx.rha(args, cacheEnv);
      ctx.checkRun('rha', `${what} no-op re-run`, r, hosts, true);
      ctx.log(`${what}: no-op re-run through the keeper ${secs(r.wallMs)}`);
      viaKeeper.push(r);
    }
  } finally {
    watched = watch?.stop();
  }
  const keeper = await ctx.keeperStatus(cacheEnv);
  await ctx.rha(['keeper', 'stop'], cacheEnv);
  const own: Timed[] = [];
  for (let i = 0; i < runs; i++) {
    ctx.checkAborted();
    const r = await ctx.rha(args, { ...cacheEnv, RHA_KEEPER: 'off' });
    ctx.checkRun('rha', `${what} no-op re-run without the keeper`, r, hosts, true);
    ctx.log(`${what}: no-op re-run in its own process ${secs(r.wallMs)}${r.peakRssMb === undefined ? '' : `, peak RSS ${r.peakRssMb.toFixed(0)} MB`}`);
    own.push(r);
  }
  const keeperPeak = peak(viaKeeper, Math.max(keeper?.peakRssMb ?? 0, watched ?? 0) || undefined);
  const ownPeak = peak(own);
  return {
    keeperMs: median(viaKeeper.map((r) => r.wallMs))!,
    keeperSamplesMs: viaKeeper.map((r) => r.wallMs),
    ownProcessMs: median(own.map((r) => r.wallMs))!,
    ownProcessSamplesMs: own.map((r) => r.wallMs),
    ...(ownPeak !== undefined ? { ownProcessPeakRssMb: ownPeak } : {}),
    ...(keeperPeak !== undefined ? { keeperPeakRssMb: keeperPeak } : {}),
    ...(keeper ? { keeperRuns: keeper.runs } : {}),
  };
}

/** How long Node itself takes to start and exit on this machine (`node -e 0`): median of five, ms. */
async function nodeStart(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => execFile(process.execPath, ['-e', '0'], () => resolve()));
    times.push(performance.now() - t0);
  }
  return median(times)!;
}

/** The real-job row: a fresh systemd pair (python3 for Ansible), provisioned, then the no-op re-runs of both tools. */
export async function provisionRow(
  ctx: SectionContext,
  o: { forks: number; provisionHosts: 'systemd' | 'namespace' },
  ansibleVersion: string | undefined,
): Promise<ProvisionResult> {
  const name = `${ctx.labPrefix}benchprov`;
  const loadStart = os.loadavg()[0];
  const systemd = o.provisionHosts === 'systemd';
  ctx.log(`real job: starting a 2-host ${o.provisionHosts} lab${systemd ? ' (python3 in their root, for Ansible)' : ''}`);
  const lab = await labUp({ name, hosts: 2, python: systemd, systemd, recreate: true, signal: ctx.signal, log: ctx.log });
  const cache = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-cache-'));
  const env = { XDG_CACHE_HOME: cache };
  try {
    const args = ['provision', lab.inventoryPath, '--output', 'plain'];
    ctx.checkAborted();
    // The shared Redis build cache (RHA_CACHE_DIR, untouched here): no build, the binary is shipped.
    const first = await ctx.rha(args, env);
    ctx.checkRun('rha', 'provision of the pair', first, 2, false);
    ctx.log(`real job: rha provision of the pair ${secs(first.wallMs)}`);
    const rha = await noopBothWays(ctx, 'provision', args, 2, RHA_REPS, env);
    ctx.log(`real job: rha provision no-op ${secs(rha.ownProcessMs)} in its own process, ${secs(rha.keeperMs)} through the keeper (medians of ${RHA_REPS})`);
    const { keeperRuns: _runs, ...rhaFigures } = rha;
    const nodeStartMs = await nodeStart();
    ctx.log(`real job: node -e 0 takes ${secs(nodeStartMs)} here (median of 5): the floor under every own-process run and every keeper client`);
    const result: ProvisionResult = { hosts: 2, hostKind: lab.kind, firstMs: first.wallMs, rha: rhaFigures, nodeStartMs };
    // provision.yml manages the services through systemd: no Ansible side on namespace hosts.
    if (!ansibleVersion || !systemd) return { ...result, loadAverage: { start: loadStart, end: os.loadavg()[0] } };

    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-ansible-'));
    try {
      for (const d of ['cp', 'tmp', 'home']) await fs.mkdir(path.join(tmp, d), { mode: 0o700 });
      const inv = await loadInventory(lab.inventoryPath);
      const ansInv = await writeAnsibleInventory(tmp, inv, { privateKey: lab.privateKeyPath, knownHosts: lab.knownHostsPath });
      const aenv = ansibleEnv(ctx.benchDir, tmp);
      const play = ['ansible-playbook', '-i', ansInv, '-f', String(o.forks), path.join(ctx.benchDir, 'ansible', 'provision.yml')];
      // The warm-up run opens the ControlPersist connections (as rha's first run starts its keeper)
      // and must already change nothing: Ansible confirms the pair is in the state its playbook describes.
      ctx.checkAborted();
      const warm = await timed(play, { env: aenv, timeoutMs: 30 * 60_000 });
      ctx.checkRun('ansible', 'provision.yml on the pair rha provisioned', warm, 2, true);
      const runs: Timed[] = [];
      for (let i = 0; i < ANSIBLE_REPS; i++) {
        ctx.checkAborted();
        const r = await timed(play, { env: aenv, timeoutMs: 30 * 60_000 });
        ctx.checkRun('ansible', 'provision.yml no-op re-run', r, 2, true);
        runs.push(r);
      }
      const noopMs = median(runs.map((r) => r.wallMs))!;
      ctx.log(`real job: ansible provision.yml no-op ${secs(noopMs)} (median of ${ANSIBLE_REPS}, after a warm-up run)`);
      return { ...result, loadAverage: { start: loadStart, end: os.loadavg()[0] }, ansible: { noopMs, noopSamplesMs: runs.map((r) => r.wallMs), version: ansibleVersion } };
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  } finally {
    await ctx.rha(['keeper', 'stop'], env).catch(() => undefined);
    await fs.rm(cache, { recursive: true, force: true });
    await labDown(name);
  }
}
