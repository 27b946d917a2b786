/**
 * The whole job on systemd-booted hosts (`rha lab up --systemd`, systemd as PID 1): Redis and
 * keepalived run as systemd units, enabled for boot in the right order, restarted through systemd
 * on a config change; whole-host reboots (`systemctl reboot`) of both nodes in each order keep the
 * data and the roles; a unit that fails to start is reported with its status and journal, and a
 * redis.conf it refuses is replaced by the previous one on both nodes.
 * One lab, one story: each test starts from where the last one left off.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import YAML from 'yaml';
import type { ClusterSpec } from '../../src/core/types.js';
import { labExec, labReboot, type LabInfo } from '../../src/lab/index.js';
import { call, vipTarget } from '../../src/pair/client.js';
import { useLab } from '../support/lab.js';
import { labPair, recapOf, redisOn, redisRole, rha, vipHolders, waitFor } from '../support/rha.js';

const lab = useLab('systemd-pair', 2, { systemd: true });
const cacheDir = mkdtempSync(path.join(tmpdir(), 'rha-systemd-cache-'));
const env = { RHA_CACHE_DIR: cacheDir };
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

let info: LabInfo;
let c: ClusterSpec;
let inv: string;
beforeAll(async () => {
  ({ info, c, inv } = await labPair(lab(), { provision: false }));
});

const sh = async (host: string, script: string) => (await labExec(info.name, host, ['sh', '-c', script])).stdout.trim();
const role = (host: string) => redisRole(info, host, c);
const address = (h: string) => info.hosts.find((x) => x.name === h)!.address;
/** A command through the VIP: Redis's answer, or its error as text (so the evidence below gets printed). */
const viaVip = (args: string[]) => call(vipTarget(c), args, 1000).catch((e: Error) => `${e.name}: ${e.message}`);
/** What each node's hooks decided and where replication stands: a failed assertion's evidence. */
const pairStory = async () => {
  let out = `VIP on ${await vipHolders(info, c)}`;
  for (const h of ['node1', 'node2']) {
    const cfg = (await redisOn(info, h, c, ['CONFIG', 'GET', 'min-replicas-*'])).out.replace(/\n/g, ' ');
    const repl = (await redisOn(info, h, c, ['INFO', 'replication'])).out.split('\n').filter((l) => /^(role|master_host|master_link_status|connected_slaves|slave0|master_repl_offset|master_replid):/.test(l));
    out += `\n--- ${h}: ${cfg}\n${repl.join('\n')}\n${await sh(h, `tail -n 40 ${c.keepalived.log_file} 2>&1; cat ${c.redis.config_dir}/replication.conf 2>&1`)}`;
  }
  return out;
};
/** systemd's main PID of a unit (0 when it does not run). */
const mainPid = (host: string, unit: string) => sh(host, `systemctl show -p MainPID --value ${unit}`);

/**
 * The pair's shape after a reboot settles: one master holding the VIP, the other its replica in
 * sync, all keys on both (a REPLICAOF towards an empty node would have left 0 keys on both).
 */
async function expectHealthyPair(keys: number): Promise<string> {
  const settled = await waitFor(async () => {
    const holders = await vipHolders(info, c);
    if (holders.length !== 1) return undefined;
    const master = holders[0];
    const replica = master === 'node1' ? 'node2' : 'node1';
    if ((await role(master)) !== 'master' || (await role(replica)) !== 'slave') return undefined;
    const repl = (await redisOn(info, replica, c, ['INFO', 'replication'])).out;
    if (!repl.includes(`master_host:${address(master)}`) || !repl.includes('master_link_status:up')) return undefined;
    // The master's side too: after a diskless sync the replica reports its link up before the
    // master has put it online (that waits for the replica's first ACK or the master's next cron
    // tick), and until then min-replicas-to-write counts no good replica: a write gets NOREPLICAS.
    const mine = (await redisOn(info, master, c, ['INFO', 'replication'])).out;
    if (!new RegExp(`^slave\\d+:ip=${address(replica).replace(/\./g, '\\.')},.*state=online`, 'm').test(mine)) return undefined;
    // And its notify hook has decided: keepalived adds the VIP and starts the hook at once, and a
    // master that came back fenced (F1 at its stop, B9 while it was a backup) refuses writes until
    // the hook promotes it (M4), a moment later. Seen: settled, then NOREPLICAS, then promoted.
    const fence = (await redisOn(info, master, c, ['CONFIG', 'GET', 'min-replicas-to-write'])).out.split('\n')[1];
    if (fence === '1000000') return undefined;
    return master;
  }, 60_000);
  if (!settled) {
    const why = async (h: string) =>
      `--- ${h}: ${await role(h)}\n` +
      (await sh(h, 'systemctl status redis-server keepalived --no-pager -n 15 2>&1; tail -n 5 /var/log/redis/redis-server.log 2>&1; journalctl -b --no-pager -n 20 -o short-iso 2>&1'));
    expect.fail(`pair did not settle:\n${await pairStory()}\n${await why('node1')}\n${await why('node2')}`);
  }
  for (const h of ['node1', 'node2']) expect((await redisOn(info, h, c, ['DBSIZE'])).out, h).toBe(String(keys));
  return settled!;
}

describe('a pair on systemd hosts', () => {
  test('provision: Redis and keepalived as enabled, active units; the VIP on the master', async () => {
    for (const h of ['node1', 'node2']) expect(await sh(h, 'ps -o comm= -p 1')).toBe('systemd');
    const r = await rha(['provision', inv], { env });
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain('start redis-server');
    for (const h of ['node1', 'node2']) {
      expect(await sh(h, 'systemctl is-enabled redis-server keepalived; systemctl is-active redis-server keepalived')).toBe('enabled\nenabled\nactive\nactive');
      // systemd's main process is the Redis that answers, running as redis (no daemon beside systemd).
      const pid = await mainPid(h, 'redis-server');
      expect(await sh(h, `ps -o user=,comm= -p ${pid}`)).toMatch(/^redis\s+redis-server$/);
      expect(await sh(h, 'cat /run/redis/redis-server.pid')).toBe(pid);
      expect(await sh(h, 'pgrep -c -x redis-server')).toBe('1');
      expect(await sh(h, 'systemctl is-system-running')).toBe('running');
    }
    expect(await vipHolders(info, c)).toEqual(['node1']);
    expect(await role('node1')).toBe('master');
    expect(await role('node2')).toBe('slave');
    for (let i = 0; i < 50; i++) expect(await viaVip(['SET', `k${i}`, String(i)])).toBe('OK');
    await expectHealthyPair(50);
  });

  test('sysctls persisted in /etc/sysctl.d and applied where the host allows; transparent huge pages handled at boot', async () => {
    for (const h of ['node1', 'node2']) {
      const persisted = await sh(h, 'cat /etc/sysctl.d/99-rha.conf');
      expect(persisted).toContain('vm.overcommit_memory = 1');
      expect(persisted).toContain('net.core.somaxconn = 4096');
      // The network namespace is the host's own: its sysctls apply. vm.* belong to the machine's
      // kernel, read-only in a container: rha warns (checked below) instead of failing.
      expect(await sh(h, 'cat /proc/sys/net/core/somaxconn')).toBe('4096');
      expect(await sh(h, 'cat /etc/tmpfiles.d/rha-redis-thp.conf')).toContain('w- /sys/kernel/mm/transparent_hugepage/enabled - - - - never');
    }
    const again = await rha(['provision', inv], { env });
    expect(again.code, again.all).toBe(0);
    expect(again.stdout).toMatch(/sysctl vm\.overcommit_memory: node1 refuses writes/);
    expect(recapOf(again.stdout).node1.changed, again.stdout).toBe(0);
    expect(recapOf(again.stdout).node2.changed, again.stdout).toBe(0);
  });

  test('a config change restarts Redis through systemd, on that node only', async () => {
    const before = { node1: await mainPid('node1', 'redis-server'), node2: await mainPid('node2', 'redis-server') };
    await sh('node2', 'echo "# changed by hand" >> /etc/redis/redis.conf');
    const r = await rha(['provision', inv], { env });
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toMatch(/\[node2\] changed: 2\. restart Redis on the replica .* restart redis-server/);
    expect(await mainPid('node1', 'redis-server')).toBe(before.node1);
    expect(await mainPid('node2', 'redis-server')).not.toBe(before.node2);
    expect(await sh('node2', 'journalctl -u redis-server -b --no-pager -o cat | grep -c "^Started redis-server.service"')).toBe('2');
    await expectHealthyPair(50);
  });

  test('a unit that fails to start: the host named, with systemctl status and the journal tail', async () => {
    // A drop-in the operator left behind that breaks the start; rha restarts Redis for a config change.
    await sh('node2', 'mkdir -p /etc/systemd/system/redis-server.service.d && printf "[Service]\\nExecStartPre=/bin/sh -c \\"echo broken on purpose >&2; exit 7\\"\\n" > /etc/systemd/system/redis-server.service.d/broken.conf && systemctl daemon-reload && echo "# changed again" >> /etc/redis/redis.conf');
    const r = await rha(['provision', inv], { env });
    expect(r.code, r.all).not.toBe(0);
    expect(r.stdout).toMatch(/\[node2\] failed: .*restart redis-server failed on node2/);
    expect(r.stdout).toContain('systemctl status redis-server:');
    expect(r.stdout).toContain('broken.conf');
    expect(r.stdout).toContain('journalctl -u redis-server (last 20 lines):');
    expect(r.stdout).toContain('broken on purpose');
    // The master and the VIP were not touched.
    expect(await vipHolders(info, c)).toEqual(['node1']);
    expect(await role('node1')).toBe('master');
    // The operator removes the drop-in; the next run says what it repaired.
    await sh('node2', 'rm -r /etc/systemd/system/redis-server.service.d && systemctl daemon-reload');
    const fixed = await rha(['provision', inv], { env });
    expect(fixed.code, fixed.all).toBe(0);
    expect(fixed.stdout).toMatch(/\[node2\] changed: 2\. start Redis on the replica .* start redis-server/);
    await expectHealthyPair(50);
  });

  test('a redis.conf change Redis refuses to start with: the previous one restored byte for byte on both nodes, Redis running, data and VIP untouched; the fixed inventory then goes through', async () => {
    const confSum = (h: string) => sh(h, 'sha256sum /etc/redis/redis.conf; stat -c "%a %U:%G" /etc/redis/redis.conf');
    const before = { node1: await confSum('node1'), node2: await confSum('node2') };
    const masterPid = await mainPid('node1', 'redis-server');
    // A bad path in redis.conf, on both nodes (a cluster-wide directive): Redis exits at start-up.
    const doc = YAML.parseDocument(readFileSync(inv, 'utf8'));
    doc.setIn(['clusters', c.name, 'redis', 'config'], { unixsocket: '/nonexistent/redis.sock' });
    const bad = path.join(info.dir, 'inventory-bad-path.yaml');
    writeFileSync(bad, doc.toString(), { mode: 0o600 });
    const r = await rha(['provision', bad], { env });
    expect(r.code, r.all).not.toBe(0);
    // The replica tried it: the host named, what was restored, its unit's status and journal.
    expect(r.stdout).toMatch(/\[node2\] failed: 2\. restart Redis on the replica .* restart redis-server failed on node2 with the new redis\.conf; restored the previous one, redis-server running again \(the rejected file is kept as \/etc\/redis\/redis\.conf\.rha-rejected\)/);
    expect(r.stdout).toContain('systemctl status redis-server:');
    expect(r.stdout).toContain('journalctl -u redis-server (last 20 lines):');
    // The master never ran it: no switchover, no restart, its previous redis.conf back too.
    expect(r.stdout).toMatch(/\[node1\] failed: 3\. rolling restart of the master .* not switched over: node2 failed earlier in this run, so node1 stays master with the VIP, its Redis not restarted; restored the previous redis\.conf/);
    expect(r.stdout).not.toMatch(/\[node1\] changed: 3\. restart Redis/);
    expect(await sh('node2', 'cat /etc/redis/redis.conf.rha-rejected')).toContain('unixsocket /nonexistent/redis.sock');
    // Redis's own reason, in its log (the journal has systemd's side of it).
    expect(Number(await sh('node2', 'grep -c "Failed opening Unix socket" /var/log/redis/redis-server.log'))).toBeGreaterThan(0);
    for (const h of ['node1', 'node2'] as const) {
      expect(await confSum(h), h).toBe(before[h]);
      expect(await sh(h, 'systemctl is-active redis-server'), h).toBe('active');
      expect(await sh(h, 'ls /etc/redis/redis.conf.rha-prev 2>&1 || true'), h).toMatch(/No such file/);
    }
    expect(await mainPid('node1', 'redis-server')).toBe(masterPid);
    expect(await vipHolders(info, c)).toEqual(['node1']);
    await expectHealthyPair(50);

    // The operator drops the bad directive: the inventory as before goes through, changing nothing.
    const fixed = await rha(['provision', inv], { env });
    expect(fixed.code, fixed.all).toBe(0);
    expect(recapOf(fixed.stdout).node1.changed, fixed.stdout).toBe(0);
    expect(recapOf(fixed.stdout).node2.changed, fixed.stdout).toBe(0);
  });

  test('reboot the master, then the replica: data from disk, one master with the VIP, then a re-run changes nothing', async () => {
    await redisOn(info, 'node1', c, ['SET', 'before-reboot', 'x']);
    await waitFor(async () => (await redisOn(info, 'node2', c, ['GET', 'before-reboot'])).out === 'x', 5000);
    const master0 = (await vipHolders(info, c))[0];
    const replica0 = master0 === 'node1' ? 'node2' : 'node1';
    await labReboot(info.name, master0);
    const m1 = await expectHealthyPair(51);
    // The rebooted master did not take the VIP back (nopreempt): it rejoined as a replica.
    expect(m1).toBe(replica0);
    await labReboot(info.name, replica0);
    const m2 = await expectHealthyPair(51);
    expect(m2).toBe(master0);
    // Booted from disk (not degraded: the THP tmpfiles line does not fail the boot in a container).
    for (const h of ['node1', 'node2']) expect(await sh(h, 'systemctl is-system-running')).toBe('running');
    const r = await rha(['provision', inv], { env });
    expect(r.code, r.all).toBe(0);
    expect(recapOf(r.stdout).node1.changed, r.stdout).toBe(0);
    expect(recapOf(r.stdout).node2.changed, r.stdout).toBe(0);
  });

  test('reboot the replica, then the master, and then both at once, twice: data and roles kept, writes taken with no rha run between, a re-run repairs at most the role file, saying so', async () => {
    const master0 = (await vipHolders(info, c))[0];
    const replica0 = master0 === 'node1' ? 'node2' : 'node1';
    await labReboot(info.name, replica0);
    expect(await expectHealthyPair(51)).toBe(master0);
    await labReboot(info.name, master0);
    expect(await expectHealthyPair(51)).toBe(replica0);
    await Promise.all([labReboot(info.name, 'node1'), labReboot(info.name, 'node2')]);
    await expectHealthyPair(51);
    expect((await redisOn(info, 'node1', c, ['GET', 'before-reboot'])).out).toBe('x');
    const set = await viaVip(['SET', 'after-reboots', 'y']);
    if (set !== 'OK') expect.fail(`SET through the VIP: ${set}\n${await pairStory()}`);
    // Both at once again, with no rha run in between. If the VIP moved the first time, the new
    // master's hook made the old one its replica at run time (M6-M8), and the old one's health
    // check recorded that in its replication.conf. Without that record it came back a master on a
    // new history, both nodes fenced each other (B8, M10) and every write got NOREPLICAS.
    await Promise.all([labReboot(info.name, 'node1'), labReboot(info.name, 'node2')]);
    await expectHealthyPair(52);
    const set2 = await viaVip(['SET', 'after-reboots-2', 'y']);
    if (set2 !== 'OK') expect.fail(`SET through the VIP after the second double reboot: ${set2}\n${await pairStory()}`);
    // A demotion the health check has not looked at yet (it looks every 5 s) may not be recorded:
    // rha repairs that, and says so; nothing else changes.
    const r = await rha(['provision', inv], { env });
    expect(r.code, r.all).toBe(0);
    const changed = r.stdout.split('\n').filter((l) => /^\[node\d\] changed:/.test(l));
    for (const l of changed) expect(l).toMatch(/recorded "replicaof \S+ \d+" in replication\.conf, which said otherwise/);
    const again = await rha(['provision', inv], { env });
    expect(again.code, again.all).toBe(0);
    expect(recapOf(again.stdout).node1.changed, again.stdout).toBe(0);
    expect(recapOf(again.stdout).node2.changed, again.stdout).toBe(0);
    const st = await rha(['status', inv], { env });
    expect(st.code, st.all).toBe(0);
    expect(st.stdout).toContain('HEALTHY');
  });
});
