/**
 * The bench's rows for the real job (issue 17): the no-op re-run of the full `rha provision` of a
 * pair against its Ansible equivalent (bench/ansible/provision.yml), and a no-op of the bench job
 * on 1000 hosts. Own-process and keeper figures side by side; the targets judged on own-process
 * (a user at a terminal never gets the keeper).
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
  /** Peak RSS (MB) of the own-process run, and of the keeper (VmHWM) and its clients. */
  ownProcessPeakRssMb?: number;
  keeperPeakRssMb?: number;
}

export interface RealResults {
  provision?: ProvisionResult;
  scale1000?: Scale1000Result;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const mb = (v?: number): string => (v === undefined ? '—' : `${v.toFixed(0)} MB`);

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
    const ratio = (a?: number, b?: number) => {
      const v = speedup(a, b);
      return v === undefined ? '—' : `${v.toFixed(1)}x`;
    };
    lines.push(
      `Real job: no-op re-run of rha provision on a provisioned pair (${p.hosts} ${p.hostKind} hosts) vs bench/ansible/provision.yml (medians of ${p.rha.ownProcessSamplesMs.length})`,
      ...formatTable([
        ['rha own process', 'rha keeper', 'rha peak RSS (own / keeper)', 'ansible no-op', 'ratio (own)', 'ratio (keeper)'],
        [
          s(p.rha.ownProcessMs),
          s(p.rha.keeperMs),
          `${mb(p.rha.ownProcessPeakRssMb)} / ${mb(p.rha.keeperPeakRssMb)}`,
          p.ansible ? s(p.ansible.noopMs) : '—',
          ratio(p.ansible?.noopMs, p.rha.ownProcessMs),
          ratio(p.ansible?.noopMs, p.rha.keeperMs),
        ],
      ]),
      `(first rha provision of the pair: ${s(p.firstMs)}${p.ansible ? `; ${p.ansible.version}` : ''})`,
      '',
    );
  }
  const k = r.scale1000;
  if (k) {
    lines.push(
      `Scale: bench job no-op on ${k.hosts} sshd-only lab hosts (${k.labs} labs, forks ${k.forks}; rha only)`,
      ...formatTable([
        ['hosts', 'lab up', 'first run', 'no-op own process', 'no-op keeper', 'peak RSS own', 'peak RSS keeper'],
        [String(k.hosts), s(k.labUpMs), s(k.firstMs), s(k.noop.ownProcessMs), s(k.noop.keeperMs), mb(k.ownProcessPeakRssMb), mb(k.keeperPeakRssMb)],
      ]),
      '',
    );
  }
  return lines;
}
