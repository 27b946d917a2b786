/**
 * The bench's systemd-host pair: `rha provision` of a fresh pair of systemd-booted lab hosts
 * (`rha lab up --systemd`, systemd as PID 1, Redis and keepalived as units) with an empty build
 * cache, beside the same figure on namespace hosts (the "From scratch" row), and its no-op re-run.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { labDown, labUp } from '../lab/index.js';
import { mustSucceed, timed, type Timed } from './proc.js';
import { parseRecap, recapTotals } from './stats.js';

/** What the systemd pair measured (all wall times, from the command's start to its exit). */
export interface SystemdPairResult {
  /** Lab start: two systemd hosts booted, sshd answering. */
  labUpMs: number;
  /** First `rha provision`, empty RHA_CACHE_DIR: packages, one Redis build, shipping, bring-up through the units. */
  pairMs: number;
  /** The re-run right after it (nothing to change). */
  noopMs: number;
}

/** The lab this section starts (taken down at its end, and by the bench's clean-up on failure). */
export const systemdPairLab = (): string => `${process.env.RHA_BENCH_LAB_PREFIX ?? ''}benchsd`;

/** Provisions a pair of fresh systemd hosts from scratch, then re-runs; throws when a run fails or the re-run changes anything. */
export async function systemdPairRun(deps: { rhaPath: string; log: (line: string) => void; signal: AbortSignal }): Promise<SystemdPairResult> {
  const { log } = deps;
  const name = systemdPairLab();
  log('systemd pair: starting 2 systemd-booted lab hosts');
  const t0 = performance.now();
  const lab = await labUp({ name, hosts: 2, systemd: true, recreate: true, signal: deps.signal, log });
  const labUpMs = performance.now() - t0;
  const cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-bench-cache-'));
  const provision = (): Promise<Timed> =>
    timed([process.execPath, deps.rhaPath, 'provision', lab.inventoryPath, '--output', 'plain'], {
      env: { ...process.env, CI: 'true', NO_COLOR: '1', RHA_CACHE_DIR: cacheDir },
      timeoutMs: 30 * 60_000,
    });
  try {
    log('systemd pair: rha provision from scratch (empty RHA_CACHE_DIR: packages, one Redis build, shipping, bring-up through systemd)');
    const first = mustSucceed(`rha provision on lab ${name}`, await provision());
    log(`systemd pair: provisioned in ${(first.wallMs / 1000).toFixed(2)} s; re-run`);
    if (deps.signal.aborted) throw new Error('interrupted');
    const again = mustSucceed(`rha provision re-run on lab ${name}`, await provision());
    const changed = recapTotals(parseRecap(again.stdout)).changed;
    if (changed) throw new Error(`systemd pair: the re-run changed ${changed} tasks; it should change nothing:\n${again.stdout.trim().split('\n').slice(-30).join('\n')}`);
    log(`systemd pair: re-run ${(again.wallMs / 1000).toFixed(2)} s, nothing changed`);
    return { labUpMs, pairMs: first.wallMs, noopMs: again.wallMs };
  } finally {
    await fs.rm(cacheDir, { recursive: true, force: true });
    await labDown(name);
  }
}
