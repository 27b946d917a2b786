/** The bench's real-job rows (issue 17), pure parts: targets, rendering, options, the N=1000 inventory, the Ansible playbook's shape. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { JOB_TEMPLATES } from '../../src/bench/jinja.js';
import { parseBenchArgs } from '../../src/bench/options.js';
import { judgeRealTargets, renderReal, type ProvisionResult, type Scale1000Result } from '../../src/bench/real-result.js';
import { judgeTargets, renderResult, type BenchResult } from '../../src/bench/result.js';
import { labSizes, mergeLabInventories } from '../../src/bench/scale1000.js';

const ROOT = path.resolve(__dirname, '../..');

const provision = (ownMs: number, keeperMs: number, ansibleMs?: number): ProvisionResult => ({
  hosts: 2,
  hostKind: 'systemd',
  firstMs: 30_000,
  rha: { ownProcessMs: ownMs, ownProcessSamplesMs: [ownMs], keeperMs, keeperSamplesMs: [keeperMs], ownProcessPeakRssMb: 100, keeperPeakRssMb: 120 },
  ...(ansibleMs ? { ansible: { noopMs: ansibleMs, noopSamplesMs: [ansibleMs], version: 'ansible-playbook [core 2.14.18]' } } : {}),
});

const n1000 = (ownMs: number, keeperMs: number, ownRss: number, keeperRss: number): Scale1000Result => ({
  hosts: 1000,
  labs: 10,
  forks: 50,
  labUpMs: 60_000,
  firstMs: 90_000,
  noop: { ownProcessMs: ownMs, ownProcessSamplesMs: [ownMs], keeperMs, keeperSamplesMs: [keeperMs] },
  ownProcessPeakRssMb: ownRss,
  keeperPeakRssMb: keeperRss,
});

describe('real-job targets', () => {
  it('judges the provision no-op on the own-process figure, the keeper beside it', () => {
    const t = judgeRealTargets({ provision: provision(400, 140) });
    const own = t.find((x) => x.name === 'provision no-op of a pair, own process')!;
    const keeper = t.find((x) => x.name === 'provision no-op of a pair, through the keeper')!;
    expect(own).toMatchObject({ goal: '≤ 0.25 s', measured: '0.40 s', met: false, margin: '0.15 s over' });
    expect(keeper).toMatchObject({ goal: '≤ 0.15 s', measured: '0.14 s', met: true, margin: '0.01 s under' });
  });

  it('N=1000: time and memory, own process and keeper; unmeasured rows say so', () => {
    const t = judgeRealTargets({ scale1000: n1000(9_000, 12_000, 380, 450) });
    const by = (n: string) => t.find((x) => x.name === n)!;
    expect(by('no-op, N=1000, own process')).toMatchObject({ met: true, margin: '1.00 s under' });
    expect(by('no-op, N=1000, through the keeper')).toMatchObject({ met: false, margin: '2.00 s over' });
    expect(by('controller memory, N=1000, own process')).toMatchObject({ measured: '380 MB', met: true });
    expect(by('controller memory, N=1000, keeper')).toMatchObject({ measured: '450 MB', met: false, margin: '50 MB over' });
    expect(by('provision no-op of a pair, own process').measured).toBe('not measured');
    expect(by('provision no-op of a pair, own process').met).toBeUndefined();
  });

  it('judgeTargets adds the real-job rows only when one of them ran', () => {
    const base = { scale: [], build: undefined, failover: undefined };
    expect(judgeTargets(base).some((t) => t.name.startsWith('provision'))).toBe(false);
    const all = judgeTargets({ ...base, provision: provision(200, 100) });
    expect(all.filter((t) => t.name.startsWith('provision')).map((t) => t.met)).toEqual([true, true]);
  });
});

describe('real-job rendering', () => {
  it('prints both modes, Ansible and the ratios, and the N=1000 row', () => {
    const lines = renderReal({ provision: provision(500, 250, 10_000), scale1000: n1000(20_000, 8_000, 300, 350) }).join('\n');
    expect(lines).toContain('0.50 s');
    expect(lines).toContain('0.25 s');
    expect(lines).toContain('10.00 s');
    expect(lines).toContain('20.0x'); // 10 s / 0.5 s, own process
    expect(lines).toContain('40.0x'); // through the keeper
    expect(lines).toContain('20.00 s');
    expect(lines).toContain('300 MB');
    expect(renderReal({})).toEqual([]);
  });

  it('renderResult includes the rows and the JSON keeps them', () => {
    const r: BenchResult = {
      version: 1,
      startedAt: '2026-12-01T00:00:00.000Z',
      durationMs: 1,
      machine: { cpus: 2, memoryMb: 1, node: 'v22', kernel: 'k' },
      options: { sizes: [], forks: 10, repeat: 5, ansible: true, build: false, failover: false, provision: true, n1000: false },
      scale: [],
      switchover: { available: false, why: 'not run' },
      provision: provision(300, 150, 9_000),
      targets: [],
    };
    r.targets = judgeTargets(r);
    const text = renderResult(r);
    expect(text).toContain('Real job: rha provision no-op re-run on a provisioned pair');
    expect(text).toMatch(/provision no-op of a pair, own process\s+≤ 0.25 s\s+0.30 s\s+MISSED/);
    expect(JSON.parse(JSON.stringify(r)).provision.rha.ownProcessMs).toBe(300);
  });
});

describe('options', () => {
  it('runs the real-job rows by default, skips them on request', () => {
    const d = parseBenchArgs([], '/x.json');
    expect(d).toMatchObject({ provision: true, n1000: true, n1000Forks: 50 });
    const s = parseBenchArgs(['--skip-provision', '--skip-n1000', '--n1000-forks', '100', '--provision-hosts', 'namespace'], '/x.json');
    expect(s).toMatchObject({ provision: false, provisionHosts: 'namespace', n1000: false, n1000Forks: 100 });
    expect(() => parseBenchArgs(['--provision-hosts', 'vm'], '/x.json')).toThrow();
  });
});

describe('N=1000 inventory', () => {
  it('labs of at most 100 hosts', () => {
    expect(labSizes(1000, 100)).toEqual(Array(10).fill(100));
    expect(labSizes(250, 100)).toEqual([100, 100, 50]);
  });

  it('merges lab inventories: names prefixed, each host with its lab key, secrets absolute', () => {
    const doc = (prefix: string) => ({
      hosts: { node1: `${prefix}.11`, node2: `${prefix}.12` },
      clusters: {
        pair1: {
          master: 'node1',
          replica: 'node2',
          vip: `${prefix}.200/24`,
          interface: 'eth0',
          redis: { version: '7.0.15', password: { file: './secrets/pair1.redis.pass' } },
          keepalived: { virtual_router_id: 51, auth_pass: { file: './secrets/pair1.vrrp.pass' } },
        },
      },
    });
    const m = mergeLabInventories(
      [
        { tag: 'k1', dir: '/run/rha/lab/a', doc: doc('10.0.1') },
        { tag: 'k2', dir: '/run/rha/lab/b', doc: doc('10.0.2') },
      ],
      '/tmp/kh',
    ) as { ssh: unknown; hosts: Record<string, unknown>; clusters: Record<string, Record<string, any>> };
    expect(m.ssh).toEqual({ user: 'root', known_hosts: '/tmp/kh' });
    expect(m.hosts['k2-node1']).toEqual({ address: '10.0.2.11', private_key: '/run/rha/lab/b/id_ed25519' });
    expect(Object.keys(m.hosts)).toHaveLength(4);
    expect(m.clusters['k2-pair1']).toMatchObject({
      master: 'k2-node1',
      replica: 'k2-node2',
      vip: '10.0.2.200/24',
      redis: { version: '7.0.15', password: { file: '/run/rha/lab/b/secrets/pair1.redis.pass' } },
      keepalived: { virtual_router_id: 51, auth_pass: { file: '/run/rha/lab/b/secrets/pair1.vrrp.pass' } },
    });
  });
});

describe('bench/ansible/provision.yml', () => {
  const plays = parse(readFileSync(path.join(ROOT, 'bench/ansible/provision.yml'), 'utf8')) as Array<{ name: string; tasks: Array<Record<string, any>> }>;
  const tasks = plays.flatMap((p) => p.tasks);

  it('mirrors site.yaml play for play', () => {
    expect(plays.map((p) => /\((playbooks\/[a-z]+\.yaml)\)/.exec(p.name)?.[1])).toEqual(['playbooks/redis.yaml', 'playbooks/keepalived.yaml', 'playbooks/bringup.yaml']);
  });

  it("renders every one of rha's shipped templates", () => {
    const srcs = tasks.filter((t) => t.template).map((t) => t.template.src);
    expect(srcs.sort()).toEqual(JOB_TEMPLATES.map(([, j]) => j).sort());
  });

  it('never puts the Redis password on a command line: redis-cli reads it from stdin', () => {
    for (const t of tasks.filter((x) => JSON.stringify(x).includes('rcli'))) {
      expect(t.args?.stdin, t.name).toBe('{{ cluster.redis.password }}');
      expect(t.no_log, t.name).toBe(true);
    }
  });

  it('checks and starts both services through systemd, and the replication and VRRP state', () => {
    const names = tasks.map((t) => t.name as string);
    for (const n of ['1. start Redis on the master', '2. start Redis on the replica', '5. start keepalived on the master', '6. start keepalived on the replica']) {
      expect(tasks.find((t) => t.name === n)?.systemd?.state, n).toBe('started');
    }
    expect(names.some((n) => n.startsWith('3. replicate'))).toBe(true);
    expect(names.some((n) => n.includes('(BACKUP)'))).toBe(true);
    expect(tasks.filter((t) => t.systemd?.enabled === true)).toHaveLength(2);
  });
});
