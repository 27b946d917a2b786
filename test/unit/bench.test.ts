/** The benchmark's pure parts: statistics, recap parsing, options, targets, the table and the JSON shape. */
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../src/bench/options.js';
import { formatTable, judgeTargets, renderHealth, renderResult, samples, type BenchResult, type ScaleResult } from '../../src/bench/result.js';
import { maximum, median, parseRecap, recapTotals, speedup } from '../../src/bench/stats.js';
import { ansibleInventory } from '../../src/bench/ansible.js';
import { parse } from 'yaml';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handlebarsToJinja, JOB_TEMPLATES, writeJobJinja } from '../../src/bench/jinja.js';
import type { Inventory } from '../../src/core/types.js';

describe('stats', () => {
  it.each([
    [[], undefined],
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
  ])('median(%j) = %s', (xs, m) => expect(median(xs)).toBe(m));

  it('maximum and speedup', () => {
    expect(maximum([])).toBeUndefined();
    expect(maximum([1, 9, 3])).toBe(9);
    expect(speedup(20_000, 500)).toBe(40);
    expect(speedup(undefined, 500)).toBeUndefined();
    expect(speedup(1000, 0)).toBeUndefined();
  });

  it('samples fills median and max only when there are samples', () => {
    expect(samples([])).toEqual({ samplesMs: [] });
    expect(samples([3, 1, 2])).toEqual({ samplesMs: [3, 1, 2], medianMs: 2, maxMs: 3 });
  });

  it("parses rha's and Ansible's recap lines alike, colours ignored", () => {
    const out = [
      'PLAY RECAP *********',
      '\x1b[0;33mnode1\x1b[0m                      : \x1b[0;32mok=13  \x1b[0m \x1b[0;33mchanged=12 \x1b[0m unreachable=0    failed=0    skipped=0    rescued=0    ignored=0',
      'node2  : ok=13 changed=0 unreachable=0 failed=1 skipped=0 ignored=0',
      'some other line: ok',
    ].join('\n');
    const r = parseRecap(out);
    expect(Object.keys(r)).toEqual(['node1', 'node2']);
    expect(r.node1).toMatchObject({ ok: 13, changed: 12, failed: 0 });
    expect(recapTotals(r)).toEqual({ hosts: 2, ok: 26, changed: 12, failed: 1, unreachable: 0 });
  });
});

describe('options', () => {
  it('defaults run everything', () => {
    expect(parseBenchArgs([], '/x/latest.json')).toEqual({
      sizes: [2, 20, 100],
      ansible: true,
      build: true,
      failover: true,
      systemd: true,
      health: true,
      healthDatasetMb: 2048,
      provision: true,
      provisionHosts: 'systemd',
      n1000: true,
      n1000Forks: 50,
      repeat: 5,
      forks: 10,
      json: '/x/latest.json',
    });
  });

  it('subset flags', () => {
    const o = parseBenchArgs(['--sizes', '2,20', '--skip-ansible', '--skip-build', '--skip-failover', '--skip-systemd', '--skip-health', '--health-dataset-mb', '512', '--repeat', '3', '--forks', '20', '--json', '/tmp/b.json'], '/x');
    expect(o).toEqual({ sizes: [2, 20], ansible: false, build: false, failover: false, systemd: false, health: false, healthDatasetMb: 512, provision: true, provisionHosts: 'systemd', n1000: true, n1000Forks: 50, repeat: 3, forks: 20, json: '/tmp/b.json' });
  });

  it('--sizes none skips the side-by-side job', () => {
    expect(parseBenchArgs(['--sizes', 'none'], '/x').sizes).toEqual([]);
  });

  it.each([['3'], ['0'], ['102'], ['2,x']])('refuses --sizes %s', (v) => {
    expect(() => parseBenchArgs(['--sizes', v], '/x')).toThrow(/even host counts from 2 to 100/);
  });
});

const scale = (hosts: number, rhaNoop: number, ansNoop?: number, rss?: number): ScaleResult => ({
  hosts,
  clusters: hosts / 2,
  forks: 10,
  rha: { firstMs: 1000, noopMs: rhaNoop, firstChanged: hosts, noopChanged: 0, ...(rss !== undefined ? { peakRssMb: rss } : {}) },
  ...(ansNoop !== undefined ? { ansible: { firstMs: 9000, noopMs: ansNoop, firstChanged: hosts, noopChanged: 0, version: 'ansible-playbook [core 2.14.18]' }, identicalFiles: true } : {}),
});

describe('targets', () => {
  it('judges each target, with the margin in words', () => {
    const t = judgeTargets({
      scale: [scale(2, 300, 9000), scale(100, 6000, undefined, 150)],
      build: { pairMs: 70_000, bareBuildMs: 50_000, packageInstallMs: 10_000 },
      failover: samples([2000, 2500, 3500]),
      switchover: { available: true, ...samples([1500, 1600]), pause: samples([400, 900, 1200]) },
    });
    expect(t.map((x) => [x.name, x.met, x.measured, x.margin])).toEqual([
      ['no-op re-run vs Ansible, N=2', true, '30.0x', '1.50x the goal'],
      ['no-op re-run, N=100', false, '6.00 s', '1.00 s over'],
      ['controller memory, N=100', true, '150 MB', '50 MB under'],
      ['pair from scratch vs bare build + packages', true, '1.2x (70.00 s vs 60.00 s)', '8.00 s to spare'],
      ['failover: writes resume after kill -9', false, 'median 2.50 s, max 3.50 s', '0.50 s over'],
      ['switchover: writes paused', false, 'median 0.90 s, max 1.20 s', '0.20 s over'],
    ]);
  });

  it('a target whose inputs were not measured is not judged', () => {
    const t = judgeTargets({ scale: [scale(20, 500)] });
    expect(t.every((x) => x.met === undefined && x.measured === 'not measured')).toBe(true);
  });
});

describe('table and JSON', () => {
  const result: BenchResult = {
    version: 1,
    startedAt: '2026-11-21T10:00:00.000Z',
    durationMs: 1,
    machine: { cpus: 2, memoryMb: 24000, node: 'v20', kernel: '6.1' },
    options: { sizes: [2], forks: 10, repeat: 1, ansible: true, build: true, failover: true },
    scale: [scale(2, 250, 10_000, 90)],
    build: { pairMs: 70_000, bareBuildMs: 50_000, packageInstallMs: 10_000 },
    failover: samples([1800]),
    switchover: { available: false, why: 'rha switchover --help exited 1' },
    targets: [],
  };
  result.scale[0].rha.noopOwnProcessMs = 260;
  result.targets = judgeTargets(result);

  it('aligns columns', () => {
    expect(formatTable([['a', 'bb'], ['ccc', 'd']])).toEqual(['a    bb', 'ccc   d']);
  });

  it('prints one table with every measurement and the verdicts', () => {
    const text = renderResult(result);
    expect(text).toMatch(/^2 +1\.00 s +0\.25 s +0\.26 s +90 MB +9\.00 s +10\.00 s +9\.0x +40\.0x +yes$/m);
    // What the two rha columns are.
    expect(text).toContain("rha no-op: through rha's keeper");
    expect(text).toContain('no keeper: the same re-run with RHA_KEEPER=off');
    expect(text).toMatch(/^70\.00 s +50\.00 s +10\.00 s +1\.2x$/m);
    expect(text).toContain("Failover (kill -9 of the master's Redis → first write through the VIP): median 1.80 s, max 1.80 s (1.80)");
    expect(text).toContain('Switchover: not available (rha switchover --help exited 1)');
    expect(text).toMatch(/^no-op re-run vs Ansible, N=2 +≥ 20x faster +40\.0x +met +2\.00x the goal$/m);
    expect(text).toMatch(/^no-op re-run, N=100 .* not run$/m);
  });

  it('the pair on systemd hosts sits beside the namespace figure', () => {
    const text = renderResult({ ...result, systemdPair: { labUpMs: 9_000, pairMs: 95_000, noopMs: 1_500 } });
    expect(text).toContain('From scratch on systemd hosts (one pair, empty build cache; Redis and keepalived as systemd units)');
    expect(text).toMatch(/^lab up \(2 hosts\) +rha provision +namespace hosts +no-op re-run$/m);
    expect(text).toMatch(/^9\.00 s +95\.00 s +70\.00 s +1\.50 s$/m);
    expect(renderResult(result)).not.toContain('systemd hosts');
  });

  it('prints the health candidates: failover time, and which stall or fork moved the VIP', () => {
    const lines = renderHealth({
      datasetMb: 2048,
      candidates: [
        {
          check: { interval: 1, timeout: 1, fall: 2, rise: 2 },
          failover: samples([2000, 2200]),
          hangFailoverMs: 2950,
          stalls: [
            { seconds: 2, moved: false, longestGapMs: 2030 },
            { seconds: 3, moved: true, longestGapMs: 3500 },
          ],
          fork: { datasetMb: 2100, forkMs: 95.4, moved: false, longestGapMs: 120 },
        },
        { check: { interval: 1, timeout: 3, fall: 2, rise: 2 }, failover: samples([]), stalls: [{ seconds: 3, moved: false, longestGapMs: 3050 }] },
      ],
    });
    expect(lines[0]).toContain('BGSAVE fork of 2100 MB');
    expect(lines[1]).toMatch(/^interval\/timeout\/fall\/rise +failover \(kill -9\) +hang +stall 2 s +stall 3 s +BGSAVE fork$/);
    expect(lines[2]).toMatch(/^1\/1\/2\/2 +2\.10 s \(max 2\.20 s\) +2\.95 s +stayed +MOVED +95 ms: stayed$/);
    expect(lines[3]).toMatch(/^1\/3\/2\/2 +— +— +— +stayed +—$/);
  });

  it('the JSON document round-trips with the fields tracking tools read', () => {
    const back = JSON.parse(JSON.stringify(result)) as BenchResult;
    expect(back).toEqual(result);
    expect(Object.keys(back).sort()).toEqual(
      ['build', 'durationMs', 'failover', 'machine', 'options', 'scale', 'startedAt', 'switchover', 'targets', 'version'].sort(),
    );
    expect(Object.keys(back.scale[0].rha).sort()).toEqual(['firstChanged', 'firstMs', 'noopChanged', 'noopMs', 'noopOwnProcessMs', 'peakRssMb']);
    expect(back.targets).toHaveLength(6);
  });
});

describe('ansible inventory', () => {
  it("carries the cluster hosts' addresses and rha's resolved cluster/node vars, with the lab's key and known_hosts", () => {
    const cluster = { name: 'pair1', redis: { password: 'pw', config_dir: '/etc/redis' } };
    const host = (name: string, address: string) => ({
      name,
      connection: { address, port: 22 },
      groups: ['all', 'pair1', 'clusters'],
      vars: { cluster, node: { name, address } },
    });
    const inv = {
      hosts: new Map([
        ['node1', host('node1', '10.0.0.11')],
        ['node2', host('node2', '10.0.0.12')],
        ['node3', host('node3', '10.0.0.13')],
      ]),
      groups: new Map([['clusters', ['node1', 'node2']]]),
    } as unknown as Inventory;
    const doc = parse(ansibleInventory(inv, { privateKey: '/lab/id', knownHosts: '/lab/known_hosts' }));
    expect(Object.keys(doc.all.children.clusters.hosts)).toEqual(['node1', 'node2']);
    expect(doc.all.children.clusters.hosts.node2).toEqual({ ansible_host: '10.0.0.12', ansible_port: 22, cluster, node: { name: 'node2', address: '10.0.0.12' } });
    expect(doc.all.vars.ansible_ssh_private_key_file).toBe('/lab/id');
    expect(doc.all.vars.ansible_ssh_common_args).toContain('-o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes');
  });
});

describe('Handlebars → Jinja for the Ansible side', () => {
  it('converts the constructs the shipped templates use', () => {
    const hbs = [
      '{{#if (eq facts.serviceManager "systemd")}}',
      'daemonize no',
      '{{else}}',
      'daemonize yes',
      '{{/if}}',
      'port {{cluster.redis.port}}',
      'requirepass {{redis_quote cluster.redis.password}}',
      'appendonly {{#if cluster.redis.appendonly}}yes{{else}}no{{/if}}',
      '{{#unless cluster.keepalived.preempt}}',
      '    nopreempt',
      '{{/unless}}',
      '{{#each cluster.redis.config}}',
      '{{@key}} {{this}}',
      '{{/each}}',
      'keys() { awk \'{s += $1} END {print s + 0}\'; }',
    ].join('\n');
    expect(handlebarsToJinja(hbs).split('\n')).toEqual([
      '{% if ansible_service_mgr == "systemd" %}',
      'daemonize no',
      '{% else %}',
      'daemonize yes',
      '{% endif %}',
      'port {{ cluster.redis.port }}',
      `requirepass "{{ cluster.redis.password | replace('\\\\', '\\\\\\\\') | replace('"', '\\\\"') }}"`,
      "appendonly {{ 'yes' if cluster.redis.appendonly else 'no' }}",
      '{% if not (cluster.keepalived.preempt) %}',
      '    nopreempt',
      '{% endif %}',
      '{% for key, value in (cluster.redis.config).items() %}',
      '{{ key }} {{ value }}',
      '{% endfor %}',
      'keys() { awk \'{s += $1} END {print s + 0}\'; }',
    ]);
  });

  it('refuses what it cannot translate instead of mistranslating it', () => {
    expect(() => handlebarsToJinja('{{#if (gt a b)}}\nx\n{{/if}}\n')).toThrow('cannot convert the Handlebars expression "(gt a b)" to Jinja');
    expect(() => handlebarsToJinja('{{> partial}}\n')).toThrow('cannot convert {{> partial}} to Jinja');
  });

  it('converts every shipped template the job renders', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rha-bench-jinja-'));
    try {
      const files = await writeJobJinja(join(__dirname, '../../templates'), dir);
      expect(files).toHaveLength(JOB_TEMPLATES.length);
      for (const f of files) expect(await readFile(f, 'utf8')).not.toMatch(/\{\{[#/@]/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
