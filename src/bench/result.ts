/**
 * The benchmark's result: one JSON document (bench/results/latest.json, for tracking over time),
 * the targets of issue 7 judged against it, and the table printed for a person.
 */
import type { SystemdPairResult } from './systemd.js';
import { maximum, median, speedup } from './stats.js';
import { formatTable, type Target } from './table.js';
import { judgeRealTargets, renderReal, type RealResults } from './real-result.js';

export { formatTable, type Target } from './table.js';

/** One tool's two runs of the bench job on N hosts. */
export interface ToolRuns {
  /** Wall time of the first run on fresh hosts (process start to exit), ms. */
  firstMs: number;
  /** Wall time of the immediate re-run, which must change nothing, ms (the median when sampled). */
  noopMs: number;
  /** Each re-run's wall time, when there were several (N=2). */
  noopSamplesMs?: number[];
  /** rha only: the same re-run with RHA_KEEPER=off (every command in its own process), ms. */
  noopOwnProcessMs?: number;
  /** rha only: runs the keeper served (first run and re-runs). */
  keeperRuns?: number;
  /** Hosts changed by the first run / by the re-run (from the recap). */
  firstChanged: number;
  noopChanged: number;
  /** Peak resident memory of the controller over all runs (MB), where measured: the client's and the keeper's. */
  peakRssMb?: number;
}

export interface ScaleResult {
  hosts: number;
  clusters: number;
  forks: number;
  rha: ToolRuns;
  ansible?: ToolRuns & { version: string };
  /** Whether both tools left byte-identical files (sha256 and mode) on every host; absent without Ansible. */
  identicalFiles?: boolean;
}

export interface BuildResult {
  /** `rha provision` of a fresh pair with an empty build cache: packages, one Redis build, shipping, bring-up. */
  pairMs: number;
  /** `make -j2` of the same source in a temp dir on the controller. */
  bareBuildMs: number;
  /** `apt-get install` of the toolchain and keepalived on a fresh lab host (what the pair also installs). */
  packageInstallMs: number;
}

export interface Samples {
  samplesMs: number[];
  medianMs?: number;
  maxMs?: number;
}


/** One health check setting (keepalived vrrp_script), as tried by the bench's health section. */
export interface HealthCheck {
  interval: number;
  timeout: number;
  fall: number;
  rise: number;
}

export interface StallTrial {
  seconds: number;
  /** The VIP left the stalled master (or its peer was promoted): a false failover. */
  moved: boolean;
  /** Longest interval between two acknowledged writes through the VIP during the trial, ms. */
  longestGapMs: number;
}

export interface ForkTrial {
  /** The master's used_memory when BGSAVE started, MB. */
  datasetMb: number;
  /** INFO stats latest_fork_usec, ms. */
  forkMs: number;
  moved: boolean;
  longestGapMs: number;
}

export interface HealthCandidateResult {
  check: HealthCheck;
  /** kill -9 of the master's Redis → first write through the VIP. */
  failover: Samples;
  /** A hang (DEBUG SLEEP longer than the check tolerates) → first write through the VIP, ms. */
  hangFailoverMs?: number;
  stalls: StallTrial[];
  fork?: ForkTrial;
}

export interface HealthResult {
  candidates: HealthCandidateResult[];
  /** The dataset asked for the fork trials, MB. */
  datasetMb: number;
}

export interface BenchResult extends RealResults {
  version: 1;
  startedAt: string;
  durationMs: number;
  machine: { cpus: number; memoryMb: number; node: string; kernel: string; commit?: string };
  options: { sizes: number[]; forks: number; repeat: number; ansible: boolean; build: boolean; failover: boolean; systemd?: boolean; health?: boolean; provision?: boolean; n1000?: boolean };
  scale: ScaleResult[];
  build?: BuildResult;
  failover?: Samples;
  /**
   * Samples: from the command's start to the first write after the last failed one (0 when none
   * failed). `pause`: per repetition, the longest interval between two acknowledged writes of a
   * writer running through the switchover (the time writes were held, as a client sees it).
   */
  /**
   * systemd lab hosts (one host): `boot` from `rha lab start` to sshd answering, `reboot` from
   * `systemctl reboot` inside to sshd answering again; `pssKb` the host's memory (PSS of all its processes).
   */
  systemdHost?: { boot: Samples; reboot: Samples; pssKb?: number };
  /** A pair from scratch on systemd hosts (src/bench/systemd.ts), beside `build.pairMs` on namespace hosts. */
  systemdPair?: SystemdPairResult;
  switchover: (Samples & { available: true; commandMedianMs?: number; pause?: Samples }) | { available: false; why: string };
  /**
   * Secret rotation on the running pair (`rha provision` after changing the secret), per
   * repetition: the longest interval between two acknowledged writes of a writer through the VIP
   * that re-authenticates with the new password once the old one is refused. A figure, no target.
   */
  rotation?: { redisPassword: Samples; authPass: Samples; refusedWrites: number; failedWrites: number };
  /** Health check candidates: failover time against false failovers (src/bench/health.ts). */
  health?: HealthResult;
  targets: Target[];
  /** Set when the run stopped early (failure or Ctrl-C): the numbers above are what was measured before. */
  error?: string;
}

/** Builds Samples from raw samples (median and max filled in when there are any). */
export function samples(values: number[]): Samples {
  const medianMs = median(values);
  const maxMs = maximum(values);
  return { samplesMs: values, ...(medianMs !== undefined ? { medianMs } : {}), ...(maxMs !== undefined ? { maxMs } : {}) };
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const x = (r: number): string => `${r.toFixed(1)}x`;

/** The issue's targets judged against a result; a target whose inputs were not measured has met undefined. */
export function judgeTargets(r: Pick<BenchResult, 'scale' | 'build' | 'failover'> & Partial<Pick<BenchResult, 'switchover'>> & RealResults): Target[] {
  const at = (n: number) => r.scale.find((e) => e.hosts === n);
  const out: Target[] = [];

  const two = at(2);
  const noopRatio = speedup(two?.ansible?.noopMs, two?.rha.noopMs);
  out.push(
    noopRatio === undefined
      ? { name: 'no-op re-run vs Ansible, N=2', goal: '≥ 20x faster', measured: 'not measured', margin: '' }
      : {
          name: 'no-op re-run vs Ansible, N=2',
          goal: '≥ 20x faster',
          measured: x(noopRatio),
          met: noopRatio >= 20,
          margin: noopRatio >= 20 ? `${(noopRatio / 20).toFixed(2)}x the goal` : `${(20 / noopRatio).toFixed(2)}x short`,
        },
  );

  const hundred = at(100);
  out.push(
    hundred === undefined
      ? { name: 'no-op re-run, N=100', goal: '< 5 s', measured: 'not measured', margin: '' }
      : {
          name: 'no-op re-run, N=100',
          goal: '< 5 s',
          measured: s(hundred.rha.noopMs),
          met: hundred.rha.noopMs < 5000,
          margin: hundred.rha.noopMs < 5000 ? `${s(5000 - hundred.rha.noopMs)} under` : `${s(hundred.rha.noopMs - 5000)} over`,
        },
  );

  const mem = hundred?.rha.peakRssMb;
  out.push(
    mem === undefined
      ? { name: 'controller memory, N=100', goal: '< 200 MB', measured: 'not measured', margin: '' }
      : {
          name: 'controller memory, N=100',
          goal: '< 200 MB',
          measured: `${mem.toFixed(0)} MB`,
          met: mem < 200,
          margin: mem < 200 ? `${(200 - mem).toFixed(0)} MB under` : `${(mem - 200).toFixed(0)} MB over`,
        },
  );

  if (r.build) {
    const base = r.build.bareBuildMs + r.build.packageInstallMs;
    const ratio = r.build.pairMs / base;
    out.push({
      name: 'pair from scratch vs bare build + packages',
      goal: '≤ 1.3x',
      measured: `${x(ratio)} (${s(r.build.pairMs)} vs ${s(base)})`,
      met: ratio <= 1.3,
      margin: ratio <= 1.3 ? `${s(1.3 * base - r.build.pairMs)} to spare` : `${s(r.build.pairMs - 1.3 * base)} over`,
    });
  } else {
    out.push({ name: 'pair from scratch vs bare build + packages', goal: '≤ 1.3x', measured: 'not measured', margin: '' });
  }

  const worst = r.failover?.maxMs;
  out.push(
    worst === undefined
      ? { name: 'failover: writes resume after kill -9', goal: '≤ 3 s (every repetition)', measured: 'not measured', margin: '' }
      : {
          name: 'failover: writes resume after kill -9',
          goal: '≤ 3 s (every repetition)',
          measured: `median ${s(r.failover!.medianMs!)}, max ${s(worst)}`,
          met: worst <= 3000,
          margin: worst <= 3000 ? `${s(3000 - worst)} under` : `${s(worst - 3000)} over`,
        },
  );

  const pause = r.switchover?.available ? r.switchover.pause : undefined;
  out.push(
    pause?.maxMs === undefined
      ? { name: 'switchover: writes paused', goal: '< 1 s (every repetition)', measured: 'not measured', margin: '' }
      : {
          name: 'switchover: writes paused',
          goal: '< 1 s (every repetition)',
          measured: `median ${s(pause.medianMs!)}, max ${s(pause.maxMs)}`,
          met: pause.maxMs < 1000,
          margin: pause.maxMs < 1000 ? `${s(1000 - pause.maxMs)} under` : `${s(pause.maxMs - 1000)} over`,
        },
  );
  // The real job's rows (real-result.ts), when the run measured them.
  if (r.provision || r.scale1000) out.push(...judgeRealTargets(r));
  return out;
}


/** The one table a person reads: scale runs, build, failover, switchover, targets. */
export function renderResult(r: BenchResult): string {
  const lines: string[] = [];
  const dash = '—';
  const rows: string[][] = [
    ['hosts', 'rha first', 'rha no-op', 'no keeper', 'rha peak RSS', 'ansible first', 'ansible no-op', 'first ratio', 'no-op ratio', 'same files'],
  ];
  for (const e of r.scale) {
    const a = e.ansible;
    const ratio = (slow?: number, fast?: number) => {
      const v = speedup(slow, fast);
      return v === undefined ? dash : x(v);
    };
    rows.push([
      String(e.hosts),
      s(e.rha.firstMs),
      s(e.rha.noopMs),
      e.rha.noopOwnProcessMs === undefined ? dash : s(e.rha.noopOwnProcessMs),
      e.rha.peakRssMb === undefined ? dash : `${e.rha.peakRssMb.toFixed(0)} MB`,
      a ? s(a.firstMs) : dash,
      a ? s(a.noopMs) : dash,
      ratio(a?.firstMs, e.rha.firstMs),
      ratio(a?.noopMs, e.rha.noopMs),
      e.identicalFiles === undefined ? dash : e.identicalFiles ? 'yes' : 'NO',
    ]);
  }
  if (r.error) lines.push(`STOPPED EARLY: ${r.error}`, '');
  if (r.systemdHost) {
    const h = r.systemdHost;
    const med = (v: Samples) => (v.medianMs === undefined ? dash : `${s(v.medianMs)} (max ${s(v.maxMs ?? v.medianMs)}, N=${v.samplesMs.length})`);
    lines.push(
      'systemd lab host (systemd-nspawn, rha lab up --systemd)',
      `  start to sshd answering    ${med(h.boot)}`,
      `  systemctl reboot to sshd   ${med(h.reboot)}`,
      `  memory per host            ${h.pssKb === undefined ? dash : `${(h.pssKb / 1024).toFixed(0)} MB PSS`}`,
      '',
    );
  }
  const forks = r.scale[0]?.forks ?? r.options.forks;
  if (r.scale.length) {
    lines.push(`Bench job (render + push 7 files, 5 folders; forks ${forks} for both tools)`, ...formatTable(rows));
    if (r.scale.some((e) => e.rha.noopOwnProcessMs !== undefined)) {
      lines.push(
        "rha no-op: through rha's keeper (the default outside a terminal; Ansible keeps its connections with ControlPersist);",
        'no keeper: the same re-run with RHA_KEEPER=off, every command in its own process.',
      );
    }
    if (r.scale.some((e) => e.rha.noopSamplesMs || e.ansible?.noopSamplesMs)) lines.push('No-op times with several runs are medians (N=2: 5 runs per tool).');
    lines.push('');
  }

  if (r.build) {
    const base = r.build.bareBuildMs + r.build.packageInstallMs;
    lines.push(
      'From scratch (one pair, empty build cache)',
      ...formatTable([
        ['rha provision', 'bare make -j2', 'package installs', 'ratio'],
        [s(r.build.pairMs), s(r.build.bareBuildMs), s(r.build.packageInstallMs), x(r.build.pairMs / base)],
      ]),
      '',
    );
  }
  if (r.systemdPair) {
    const p = r.systemdPair;
    lines.push(
      'From scratch on systemd hosts (one pair, empty build cache; Redis and keepalived as systemd units)',
      ...formatTable([
        ['lab up (2 hosts)', 'rha provision', 'namespace hosts', 'no-op re-run'],
        [s(p.labUpMs), s(p.pairMs), r.build ? s(r.build.pairMs) : dash, s(p.noopMs)],
      ]),
      '',
    );
  }
  lines.push(...renderReal(r));
  const fmt = (v: Samples) =>
    v.samplesMs.length ? `median ${s(v.medianMs!)}, max ${s(v.maxMs!)} (${v.samplesMs.map((ms) => (ms / 1000).toFixed(2)).join(', ')})` : 'no samples';
  if (r.failover) lines.push(`Failover (kill -9 of the master's Redis → first write through the VIP): ${fmt(r.failover)}`);
  lines.push(
    r.switchover.available
      ? [
          `Switchover (rha switchover's start → writes through the VIP resume): ${fmt(r.switchover)}`,
          ...(r.switchover.pause ? [`Switchover (longest gap between acknowledged writes): ${fmt(r.switchover.pause)}`] : []),
        ].join('\n')
      : `Switchover: not available (${r.switchover.why})`,
    ...(r.rotation
      ? [
          `Rotation of redis.password (longest gap between acknowledged writes): ${fmt(r.rotation.redisPassword)}`,
          `Rotation of auth_pass (longest gap between acknowledged writes): ${fmt(r.rotation.authPass)}`,
          `Rotation: ${r.rotation.refusedWrites} writes refused for the old password (the client then re-authenticates), ${r.rotation.failedWrites} failed otherwise`,
        ]
      : []),
    '',
  );
  if (r.health) lines.push(...renderHealth(r.health), '');
  lines.push(
    'Targets',
    ...formatTable([
      ['target', 'goal', 'measured', 'verdict', ''],
      ...r.targets.map((t) => [t.name, t.goal, t.measured, t.met === undefined ? 'not run' : t.met ? 'met' : 'MISSED', t.margin]),
    ]),
  );
  return lines.join('\n') + '\n';
}

/** The health check section: one row per candidate (interval/timeout/fall/rise). */
export function renderHealth(h: HealthResult): string[] {
  const stalls = [...new Set(h.candidates.flatMap((e) => e.stalls.map((t) => t.seconds)))].sort((a, b) => a - b);
  const rows = h.candidates.map((e) => [
    `${e.check.interval}/${e.check.timeout}/${e.check.fall}/${e.check.rise}`,
    e.failover.medianMs === undefined ? '—' : `${s(e.failover.medianMs)} (max ${s(e.failover.maxMs!)})`,
    e.hangFailoverMs === undefined ? '—' : s(e.hangFailoverMs),
    ...stalls.map((sec) => {
      const t = e.stalls.find((x) => x.seconds === sec);
      return t === undefined ? '—' : t.moved ? 'MOVED' : 'stayed';
    }),
    e.fork ? `${e.fork.forkMs.toFixed(0)} ms: ${e.fork.moved ? 'MOVED' : 'stayed'}` : '—',
  ]);
  const mb = h.candidates.find((e) => e.fork)?.fork?.datasetMb ?? h.datasetMb;
  return [
    `Health check candidates (kill -9, or a hang, → writes resume; did the VIP move on a DEBUG SLEEP stall, on a BGSAVE fork of ${mb.toFixed(0)} MB?)`,
    ...formatTable([['interval/timeout/fall/rise', 'failover (kill -9)', 'hang', ...stalls.map((x) => `stall ${x} s`), 'BGSAVE fork'], ...rows]),
  ];
}
