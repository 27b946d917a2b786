/** `npm run bench` options: by default everything runs; flags pick a quick subset. */
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';

export interface BenchOptions {
  sizes: number[];
  ansible: boolean;
  build: boolean;
  failover: boolean;
  /** systemd host boot and reboot times, and a pair from scratch on systemd hosts (rha lab up --systemd). */
  systemd: boolean;
  /** Health check candidates: failover time against false failovers (src/bench/health.ts). */
  health: boolean;
  /** The dataset for the health section's BGSAVE fork trials, MB. */
  healthDatasetMb: number;
  /** The real job: no-op re-runs of `rha provision` of a pair against bench/ansible/provision.yml. */
  provision: boolean;
  /** The real job's hosts: systemd (default; Ansible's side needs it) or namespace (sshd as PID 1; rha only). */
  provisionHosts: 'systemd' | 'namespace';
  /** The bench job's no-op on 1000 sshd-only hosts (rha only), with this many forks. */
  n1000: boolean;
  n1000Forks: number;
  repeat: number;
  forks: number;
  json: string;
}

export function sizesList(v: string): number[] {
  if (v.trim() === 'none') return [];
  const sizes = v.split(',').map((s) => Number(s.trim()));
  if (!sizes.length || sizes.some((n) => !Number.isInteger(n) || n < 2 || n > 100 || n % 2)) {
    throw new InvalidArgumentError('expected even host counts from 2 to 100, comma-separated (the lab pairs hosts two by two)');
  }
  return sizes;
}

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

/** The bench's options from argv (defaults: everything). */
export function parseBenchArgs(argv: string[], defaultJson: string): BenchOptions {
  const program = new Command('npm run bench --')
    .description('rha against Ansible on the same lab hosts, a pair from scratch, failover and switchover (needs root)')
    .option('--sizes <list>', 'host counts for the side-by-side job (`none`: skip it)', sizesList, [2, 20, 100])
    .option('--skip-ansible', 'rha only (no Ansible runs)')
    .option('--skip-build', 'no from-scratch pair (Redis build) and no bare-build baseline')
    .option('--skip-failover', 'no failover or switchover measurements')
    .option('--skip-systemd', 'no systemd-host figures (boot and reboot times, a pair from scratch on systemd hosts)')
    .option('--skip-health', 'no health check candidates (failover time against stalls and forks)')
    .option('--health-dataset-mb <n>', 'dataset for the health section\'s BGSAVE fork trials, MB', positive, 2048)
    .option('--skip-provision', 'no real-job row (rha provision no-op of a pair against bench/ansible/provision.yml)')
    .addOption(
      new Option('--provision-hosts <kind>', "the real job's lab hosts: systemd (like servers) or namespace (sshd as PID 1; rha only, provision.yml needs systemd)")
        .choices(['systemd', 'namespace'])
        .default('systemd'),
    )
    .option('--skip-n1000', 'no N=1000 row (bench job no-op on 1000 sshd-only hosts)')
    .option('--n1000-forks <n>', 'hosts worked on at once in the N=1000 row', positive, 50)
    .option('--repeat <n>', 'failover and switchover repetitions', positive, 5)
    .option('--forks <n>', 'hosts worked on at once, the same for both tools', positive, 10)
    .option('--json <file>', 'where to write the results', defaultJson)
    .exitOverride();
  program.parse(argv, { from: 'user' });
  const o = program.opts<{ sizes: number[]; skipAnsible?: boolean; skipBuild?: boolean; skipFailover?: boolean; skipSystemd?: boolean; skipHealth?: boolean; healthDatasetMb: number; skipProvision?: boolean; provisionHosts: 'systemd' | 'namespace'; skipN1000?: boolean; n1000Forks: number; repeat: number; forks: number; json: string }>();
  return {
    sizes: o.sizes,
    ansible: !o.skipAnsible,
    build: !o.skipBuild,
    failover: !o.skipFailover,
    systemd: !o.skipSystemd,
    health: !o.skipHealth,
    healthDatasetMb: o.healthDatasetMb,
    provision: !o.skipProvision,
    provisionHosts: o.provisionHosts,
    n1000: !o.skipN1000,
    n1000Forks: o.n1000Forks,
    repeat: o.repeat,
    forks: o.forks,
    json: path.resolve(o.json),
  };
}

