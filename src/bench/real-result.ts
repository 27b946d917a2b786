/**
 * The bench's rows for the real job (issue 17): the no-op re-run of the full `rha provision` of a
 * pair against its Ansible equivalent (bench/ansible/provision.yml), and a no-op of the bench job
 * on 1000 hosts. Own-process and keeper figures side by side; the targets judged on own-process
 * (RHA_KEEPER=off, or a first run before the keeper starts), as the issue asks.
 */
import { speedup } from './stats.js';
import { formatTable, type Target } from './table.js';

/** A no-op re-run measured both ways: through rha's keeper and with RHA_KEEPER=off. */
export interface NoopPair {
  /** Through the keeper (the default outside a terminal): median, ms. */
  keeperMs: number;
  keeperSamplesMs: number[];
  /** RHA_KEEPER=off, every command in its own process: median, ms. */
  ownProcessMs: number;
  ownProcessSamplesMs: number[];
}

export interface ProvisionResult {
  hosts: number;
  /** What the lab hosts boot: systemd (like real servers) or sshd as PID 1. */
  hostKind: 'systemd' | 'namespace';
  /** `rha provision` of the fresh pair (shared Redis build cache), ms. */
  firstMs: number;
  rha: NoopPair & {
    /** Peak RSS (MB): of the own-process runs, and of the keeper plus its clients. */
    ownProcessPeakRssMb?: number;
    keeperPeakRssMb?: number;
  };
  /** The machine's 1-minute load average when the row started and ended (the lab shares its cores). */
  loadAverage?: { start: number; end: number };
  /** `node -e 0` on this machine, median ms: the floor under an own-process run and a keeper client. */
  nodeStartMs?: number;
  /** ansible-playbook bench/ansible/provision.yml on the pair rha provisioned (every run must change nothing). */
  ansible?: { noopMs: number; noopSamplesMs: number[]; version: string; tasks?: number };
}

export interface Scale1000Result {
  hosts: number;
  /** Lab hosts come as this many labs of `hosts / labs` (a lab is one /24). */
  labs: number;
  forks: number;
  /** Seconds to start the labs (every host's sshd answering). */
  labUpMs: number;
  /** The first run on fresh hosts (through the keeper), ms. */
  firstMs: number;
  noop: NoopPair;
  /** Peak RSS (MB) of the own-process no-op runs, and of the keepers (VmHWM) and clients of the no-op runs through them. */
  ownProcessPeakRssMb?: number;
  keeperPeakRssMb?: number;
  /** No-op runs that did not succeed on every host (their times are still in the samples). */
  failedRuns?: string[];
  /** Peak RSS (MB) of the keeper during the first run (it creates every file: the most any run holds). */
  firstRunKeeperPeakRssMb?: number;
  /** The machine's 1-minute load average when the row started and ended. */
  loadAverage?: { start: number; end: number };
}

export interface RealResults {
  provision?: ProvisionResult;
  scale1000?: Scale1000Result;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const mb = (v?: number): string => (v === undefined ? '—' : `${v.toFixed(0)} MB`);
const load = (l?: { start: number; end: number }): string => (l ? `; load average ${l.start.toFixed(1)} → ${l.end.toFixed(1)} on this machine` : '');

/** `goal` met when `value <= limit`; the margin in the unit's words. */
function atMost(name: string, goal: string, value: number | undefined, limit: number, fmt: (v: number) => string): Target {
  if (value === undefined) return { name, goal, measured: 'not measured', margin: '' };
  const met = value <= limit;
  return { name, goal, measured: fmt(value), met, margin: met ? `${fmt(limit - value)} under` : `${fmt(value - limit)} over` };
}

/**
 * The issue's targets for the real job: provision no-op of a pair ≤ 0.25 s in its own process
 * (≤ 0.15 s through the keeper, shown beside it), N=1000 no-op ≤ 10 s and RSS ≤ 400 MB, judged on
 * the own-process run (the keeper's figures are listed as their own rows, for comparison).
 */
export function judgeRealTargets(r: RealResults): Target[] {
  const p = r.provision;
  const k = r.scale1000;
  const mbf = (v: number) => `${v.toFixed(0)} MB`;
  return [
    atMost('provision no-op of a pair, own process', '≤ 0.25 s', p?.rha.ownProcessMs, 250, s),
    atMost('provision no-op of a pair, through the keeper', '≤ 0.15 s', p?.rha.keeperMs, 150, s),
    atMost('no-op, N=1000, own process', '≤ 10 s', k?.noop.ownProcessMs, 10_000, s),
    atMost('controller memory, N=1000, own process', '≤ 400 MB', k?.ownProcessPeakRssMb, 400, mbf),
    atMost('no-op, N=1000, through the keeper', '≤ 10 s', k?.noop.keeperMs, 10_000, s),
    atMost('controller memory, N=1000, keeper', '≤ 400 MB', k?.keeperPeakRssMb, 400, mbf),
  ];
}

/** The lines the real-job rows add to the printed result (nothing when neither ran). */
export function renderReal(r: RealResults): string[] {
  const lines: string[] = [];
  const p = r.provision;
  if (p) {
    const ratio = (fast: number) => {
      const v = speedup(p.ansible?.noopMs, fast);
      return v === undefined ? '—' : `${v.toFixed(1)}x`;
    };
    lines.push(
      `Real job: rha provision no-op re-run on a provisioned pair (${p.hosts} ${p.hostKind} hosts) vs bench/ansible/provision.yml`,
      ...formatTable([
        ['', 'no-op (median)', 'peak RSS', 'ansible / this'],
        ['rha, own process (RHA_KEEPER=off)', s(p.rha.ownProcessMs), mb(p.rha.ownProcessPeakRssMb), ratio(p.rha.ownProcessMs)],
        ['rha, through the keeper', s(p.rha.keeperMs), mb(p.rha.keeperPeakRssMb), ratio(p.rha.keeperMs)],
        ['ansible-playbook provision.yml', p.ansible ? s(p.ansible.noopMs) : 'not run', '—', ''],
      ]),
      `(medians of ${p.rha.ownProcessSamplesMs.length} per rha mode${p.ansible ? ` and ${p.ansible.noopSamplesMs.length} for Ansible after a warm-up run; ${p.ansible.version}` : ''}; ` +
        `first rha provision of the pair ${s(p.firstMs)}${load(p.loadAverage)})`,
      ...(p.nodeStartMs !== undefined ? [`(node -e 0 on this machine: ${s(p.nodeStartMs)}, the floor under both rha figures: the keeper's client is a Node process too)`] : []),
      '',
    );
  }
  const k = r.scale1000;
  if (k) {
    lines.push(
      `Scale: bench job no-op on ${k.hosts} sshd-only lab hosts (${k.labs} labs, forks ${k.forks}; rha only)`,
      ...formatTable([
        ['', 'no-op (median)', 'peak RSS'],
        ['rha, own process (RHA_KEEPER=off)', s(k.noop.ownProcessMs), mb(k.ownProcessPeakRssMb)],
        ['rha, through the keeper', s(k.noop.keeperMs), mb(k.keeperPeakRssMb)],
      ]),
      `(medians of ${k.noop.ownProcessSamplesMs.length} per mode; labs up in ${s(k.labUpMs)}, first run ${s(k.firstMs)}` +
        `${k.firstRunKeeperPeakRssMb === undefined ? '' : `, its keeper's peak RSS ${mb(k.firstRunKeeperPeakRssMb)}`}${load(k.loadAverage)})`,
      ...(k.failedRuns ?? []).map((f) => `NOT CLEAN: ${f}`),
      '',
    );
  }
  return lines;
}
