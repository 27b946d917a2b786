/**
 * `rha lab` on real namespaces: hosts reachable over SSH with strict host key checking, isolated
 * from each other and from the machine, offline apt, fault injection, replace, and a clean down.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import {
  labAcceptHostKey,
  labDown,
  labExec,
  labKill,
  labLink,
  labReplace,
  labStartHost,
  labStatus,
  labStopHost,
  labUp,
  REDIS_SOURCE,
} from '../../src/lab/index.js';
import { controllerIf, labDir, labDiskDir } from '../../src/lab/names.js';
import { sha256File } from '../../src/lab/cache.js';
import { run } from '../../src/lab/sh.js';
import { hostAddress, sshRun, useLab } from '../support/lab.js';

const NAME = 'e2e-lab';
const lab = useLab(NAME, 3);

/** Everything of a lab that could be left on the machine. */
async function leftovers(name: string): Promise<string[]> {
  const found: string[] = [];
  const netns = (await run(['ip', 'netns', 'list'])).stdout;
  for (const l of netns.split('\n')) if (l.startsWith(`rha-${name}-`)) found.push(`netns ${l.split(' ')[0]}`);
  if ((await run(['ip', 'link', 'show', controllerIf(name)])).ok) found.push(`link ${controllerIf(name)}`);
  const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
  for (const l of mounts.split('\n')) {
    const m = l.split(' ')[4];
    if (m && (m.includes(`/rha-${name}-`) || m.startsWith(labDir(name)) || m.startsWith(labDiskDir(name)))) found.push(`mount ${m}`);
  }
  for (const pid of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const state = /^State:\s+(\S)/m.exec(await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''))?.[1];
    if (state !== 'Z' && (cmd.includes(labDiskDir(name) + '/') || cmd.includes(`rha-${name}-node`))) {
      found.push(`process ${pid} ${cmd.replace(/\0/g, ' ').slice(0, 80)}`);
    }
  }
  if (existsSync(labDir(name))) found.push(`dir ${labDir(name)}`);
  if (existsSync(labDiskDir(name))) found.push(`dir ${labDiskDir(name)}`);
  return found;
}

describe('rha lab', () => {
  it('writes a ready inventory: hosts, a pair with a VIP on the segment, secrets in 0600 files', () => {
    const info = lab();
    expect(info.hosts.map((h) => h.name)).toEqual(['node1', 'node2', 'node3']);
    expect(info.hosts.every((h) => h.running)).toBe(true);
    const prefix = info.subnet.replace(/\.0\/24$/, '');
    expect(info.subnet).toMatch(/^10\.213\.\d+\.0\/24$/);
    expect(info.hosts.map((h) => h.address)).toEqual([`${prefix}.11`, `${prefix}.12`, `${prefix}.13`]);
    expect(statSync(info.inventoryPath).mode & 0o777).toBe(0o600);
    const inv = parse(readFileSync(info.inventoryPath, 'utf8'));
    expect(inv.ssh).toEqual({ user: 'root', private_key: './id_ed25519', known_hosts: './known_hosts' });
    expect(inv.hosts).toEqual({ node1: `${prefix}.11`, node2: `${prefix}.12`, node3: `${prefix}.13` });
    // node3 is the odd one out: one pair only.
    expect(Object.keys(inv.clusters)).toEqual(['pair1']);
    const pair = inv.clusters.pair1;
    expect(pair).toMatchObject({
      master: 'node1',
      replica: 'node2',
      vip: `${prefix}.200/24`,
      interface: 'eth0',
      redis: { password: { file: './secrets/pair1.redis.pass' }, source: { path: info.redisSource.path, sha256: REDIS_SOURCE.sha256 } },
      keepalived: { virtual_router_id: 51, auth_pass: { file: './secrets/pair1.vrrp.pass' } },
    });
    for (const f of ['pair1.redis.pass', 'pair1.vrrp.pass']) {
      const p = `${info.dir}/secrets/${f}`;
      expect(statSync(p).mode & 0o777).toBe(0o600);
      expect(readFileSync(p, 'utf8').trim().length).toBeGreaterThanOrEqual(8);
    }
    expect(statSync(info.privateKeyPath).mode & 0o777).toBe(0o600);
  });

  it("provides Debian's real Redis source tarball, verified", async () => {
    const { redisSource } = lab();
    expect(redisSource.version).toBe('7.0.15');
    expect(statSync(redisSource.path).size).toBe(3_025_940);
    expect(await sha256File(redisSource.path)).toBe(redisSource.sha256);
  });

  it('hosts answer over SSH with strict host key checking, each with its own hostname and a distinct host key', async () => {
    const info = lab();
    for (const h of info.hosts) {
      const r = await sshRun(info, h.name, 'hostname; ip -4 -o addr show dev eth0');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(h.name);
      expect(r.stdout).toContain(`${h.address}/24`);
    }
    const keys = readFileSync(info.knownHostsPath, 'utf8')
      .split('\n')
      .filter((l) => l.includes('ssh-ed25519'))
      .map((l) => l.split(' ')[2]);
    expect(new Set(keys).size).toBe(3);
  });

  it('isolates hosts: a process or file in one is absent in the other', async () => {
    const info = lab();
    expect((await sshRun(info, 'node1', 'setsid sleep 4242 </dev/null >/dev/null 2>&1 & echo ok > /root/only-on-node1')).code).toBe(0);
    expect((await sshRun(info, 'node1', 'pgrep -f "[s]leep 4242" && test -f /root/only-on-node1')).code).toBe(0);
    expect((await sshRun(info, 'node2', 'pgrep -f "[s]leep 4242"')).code).toBe(1);
    expect((await sshRun(info, 'node2', 'test -e /root/only-on-node1')).code).toBe(1);
    // Neither shows in the other's process list at all: PID namespaces.
    const ps = await labExec(NAME, 'node2', ['ps', '-eo', 'comm=']);
    expect(ps.stdout.split('\n').filter(Boolean).sort()).toEqual(['ps', 'sshd']);
  });

  it('cannot change the machine: /proc/sys is read-only, no route beyond the segment', async () => {
    const info = lab();
    const before = readFileSync('/proc/sys/vm/overcommit_memory', 'utf8');
    const r = await sshRun(info, 'node1', 'sysctl -w vm.overcommit_memory=1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/permission denied|Read-only file system/i);
    expect(readFileSync('/proc/sys/vm/overcommit_memory', 'utf8')).toBe(before);
    const routes = await labExec(NAME, 'node1', ['ip', '-4', 'route']);
    expect(routes.stdout.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^${info.subnet.replace(/\./g, '\\.')} dev eth0`))]);
  });

  it('reaps orphaned processes (no zombies) and keeps daemonized ones running', async () => {
    const r = await labExec(NAME, 'node3', [
      'sh',
      '-c',
      'setsid sh -c "sleep 0.2 & sleep 300 &" </dev/null >/dev/null 2>&1; sleep 1.5; ps -eo stat=,comm=',
    ]);
    expect(r.stdout).not.toMatch(/^Z/m);
    expect(r.stdout).toMatch(/sleep/);
  });

  it('installs keepalived offline from the local repository, exactly as from a mirror', async () => {
    const info = lab();
    const r = await sshRun(
      info,
      'node3',
      'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived 2>&1 && keepalived --version 2>&1',
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Keepalived v2.2.7');
  }, 5 * 60_000);

  it('kills a named process inside one host only', async () => {
    const info = lab();
    await sshRun(info, 'node2', 'setsid sleep 4343 </dev/null >/dev/null 2>&1 &');
    expect(await labKill(NAME, 'node2', 'sleep', 'TERM')).toBe(1);
    expect((await sshRun(info, 'node2', 'pgrep -f "[s]leep 4343"')).code).toBe(1);
    // node1's sleep survives: the kill is per host.
    expect((await sshRun(info, 'node1', 'pgrep -f "[s]leep 4242"')).code).toBe(0);
    expect(await labKill(NAME, 'node2', 'no-such-process')).toBe(0);
  });

  it('link down makes a host unreachable, link up brings it back', async () => {
    const info = lab();
    await labLink(NAME, 'node2', 'down');
    expect((await labStatus(NAME))?.hosts.find((h) => h.name === 'node2')?.linkUp).toBe(false);
    const down = await sshRun(info, 'node2', 'true', { connectTimeoutS: 2 });
    expect(down.code).toBe(255);
    await labLink(NAME, 'node2', 'up');
    const up = await sshRun(info, 'node2', 'true');
    expect(up.code).toBe(0);
  });

  it('stop kills every process of a host; start brings it back with its disk and host key', async () => {
    const info = lab();
    await sshRun(info, 'node1', 'echo kept > /root/disk-mark');
    await labStopHost(NAME, 'node1');
    const st = await labStatus(NAME);
    expect(st?.hosts.find((h) => h.name === 'node1')).toMatchObject({ running: false });
    expect((await sshRun(info, 'node1', 'true', { connectTimeoutS: 2 })).code).toBe(255);
    await labStartHost(NAME, 'node1');
    const r = await sshRun(info, 'node1', 'cat /root/disk-mark; pgrep -f "[s]leep 4242" || echo no-sleep');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('kept\nno-sleep\n');
  });

  it('replace gives a blank disk and a new host key that strict checking refuses until accepted', async () => {
    const info = lab();
    const oldKeys = readFileSync(info.knownHostsPath, 'utf8');
    await sshRun(info, 'node1', 'echo before > /root/replace-mark');
    const h = await labReplace(NAME, 'node1');
    expect(h).toMatchObject({ name: 'node1', address: hostAddress(info, 'node1'), running: true });
    // known_hosts is untouched: the changed key must be noticed.
    expect(readFileSync(info.knownHostsPath, 'utf8')).toBe(oldKeys);
    const refused = await sshRun(info, 'node1', 'true');
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
    const blank = await labExec(NAME, 'node1', ['sh', '-c', 'ls /root; command -v keepalived || echo no-keepalived']);
    expect(blank.stdout).toBe('no-keepalived\n');
    await labAcceptHostKey(NAME, 'node1');
    expect(readFileSync(info.knownHostsPath, 'utf8')).not.toBe(oldKeys);
    expect((await sshRun(info, 'node1', 'hostname')).stdout).toBe('node1\n');
  });

  it('refuses a second up of the same lab and invalid names, with clear messages', async () => {
    await expect(labUp({ name: NAME })).rejects.toThrow(
      `lab ${NAME} is already up (3 hosts in ${lab().subnet}); remove it first (rha lab down --name ${NAME}) or use --recreate`,
    );
    await expect(labUp({ name: 'Bad_Name' })).rejects.toThrow(
      'invalid lab name "Bad_Name": use 1-32 of a-z 0-9 - (starting with a letter or digit)',
    );
    await expect(labUp({ name: 'x', hosts: 0 })).rejects.toThrow('--hosts must be a whole number from 1 to 100, not 0');
  });

  it("refuses a subnet the machine already routes (here: the running lab's own)", async () => {
    const { subnet } = lab();
    await expect(labUp({ name: 'e2e-sub', hosts: 1, subnet })).rejects.toThrow(
      `${subnet} overlaps ${subnet} (dev ${controllerIf(NAME)}), which this machine already routes; choose another --subnet`,
    );
    await expect(labUp({ name: 'e2e-sub', hosts: 1, subnet: '8.8.8.0/24' })).rejects.toThrow(
      '--subnet 8.8.8.0/24: expected a private /24 such as 10.213.7.0/24',
    );
    expect(await leftovers('e2e-sub')).toEqual([]);
  });

  it('refuses to run without root', async () => {
    const spy = vi.spyOn(process, 'getuid').mockReturnValue(1000);
    try {
      await expect(labUp({ name: 'notroot' })).rejects.toThrow(
        'rha lab must run as root: it creates network namespaces, interfaces and mounts (try: sudo rha lab ...)',
      );
    } finally {
      spy.mockRestore();
    }
  });

  it('down after a crash (state file lost) still removes everything by prefix', async () => {
    const other = 'e2e-crash';
    await labUp({ name: other, hosts: 1, recreate: true });
    await fs.rm(`${labDir(other)}/state.json`);
    expect((await leftovers(other)).length).toBeGreaterThan(0);
    await labDown(other);
    expect(await leftovers(other)).toEqual([]);
  });

  it('down leaves no namespace, mount, process, interface or folder', async () => {
    expect((await leftovers(NAME)).length).toBeGreaterThan(0);
    await labDown(NAME);
    expect(await leftovers(NAME)).toEqual([]);
    expect(await labStatus(NAME)).toBeUndefined();
    await labDown(NAME); // idempotent
  });
});
