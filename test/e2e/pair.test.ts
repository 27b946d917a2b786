/**
 * The whole job on real lab hosts: `rha provision` from bare Debian to a working pair behind the
 * VIP, re-runs that change nothing, the failure cases of seed 002 with real VRRP, recovery, and
 * the replaced-node story. One lab, one story: each test starts from where the last one left off.
 *
 * The story runs on both host kinds (test/support/kinds.ts): namespace hosts, where rha supervises
 * Redis and keepalived itself, and systemd hosts, where they are units: a killed Redis stays dead
 * (Restart=no), provision starts failed or stopped units with systemctl, and a host that was
 * powered off boots its enabled units and rejoins before rha runs again.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ClusterSpec } from '../../src/core/types.js';
import { labExec, labKill, labReplace, labStartHost, labStopHost, type LabInfo, type LabLogin } from '../../src/lab/index.js';
import { call, vipTarget } from '../../src/pair/client.js';
import { availabilityFirst } from '../../src/bench/availability.js';
import { forEachHostKind, testOnlyOn, useKindLab } from '../support/kinds.js';
import { labCluster, recapOf, redisOn, redisRole, rha, vipHolders, vrrpState as vrrpStateOf, waitFor } from '../support/rha.js';

// The host login, as on users' servers: a sudo user whose sudo asks for a password (root login
// is what the other e2e files use). RHA_E2E_LOGIN=root|sudo|sudo-nopasswd runs the namespace
// story with another; systemd hosts always log in through sudo.
const nsLogin = (process.env.RHA_E2E_LOGIN ?? 'sudo') as LabLogin;
// A build cache of this file's own, so "compiled once, then shipped" is observable. Both kinds
// share it: the first kind compiles, the second ships the same build from the cache (as a user's
// second pair would), which saves a compilation, and the tests say which happened.
const cacheDir = mkdtempSync(path.join(tmpdir(), 'rha-pair-cache-'));
const env = { RHA_CACHE_DIR: cacheDir };
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));
/** Whether the build cache already holds a Redis build (an earlier kind compiled it). */
const cacheHoldsBuild = () => {
  const dir = path.join(cacheDir, 'redis-builds');
  return existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.tar.gz'));
};

forEachHostKind((kind) => {
  const login: LabLogin = kind === 'systemd' ? 'sudo' : nsLogin;
  const lab = useKindLab('pair', kind, 2, { login });
  let info: LabInfo;
  let c: ClusterSpec;
  let inv: string;
  beforeAll(async () => {
    info = lab();
    // Cases 1 and 3 check that writes through the VIP resume after the master dies. With the
    // split-brain bound on (the default) they resume only once a replica is back, by design; this
    // pair chooses availability (min_replicas_max_lag: 0). test/e2e/hooks.test.ts runs with the bound.
    await availabilityFirst(info.inventoryPath);
    c = await labCluster(info);
    inv = info.inventoryPath;
  });

  const vipHolder = () => vipHolders(info, c);
  const viaVip = (args: string[]) => call(vipTarget(c), args, 1000);
  const role = (host: string) => redisRole(info, host, c);
  async function masterHostOf(host: string): Promise<string> {
    const r = await redisOn(info, host, c, ['INFO', 'replication']);
    return /master_host:(\S+)/.exec(r.out)?.[1] ?? '';
  }
  const address = (h: string) => info.hosts.find((x) => x.name === h)!.address;
  const vrrpState = (host: string) => vrrpStateOf(info, host, c);
  /** systemd's view of the pair's units on a host: "ACTIVE-STATE ACTIVE-STATE" of redis-server and keepalived. */
  const units = async (h: string) =>
    (await labExec(info.name, h, ['systemctl', 'show', '-p', 'ActiveState', '--value', 'redis-server', 'keepalived'])).stdout.trim().split(/\n+/).join(' ');

  describe(`a pair from bare hosts (login: ${login})`, () => {
    testOnlyOn(kind, 'namespace', 'validate contacts no host')('validate: the lab inventory is valid, nothing is contacted', async () => {
      const r = await rha(['validate', inv], { env });
      expect(r.code, r.all).toBe(0);
    });

    test('--check on bare hosts plans the whole job and changes nothing', async () => {
      const r = await rha(['provision', inv, '--check'], { env });
      expect(r.code, r.all).toBe(0);
      expect(recapOf(r.stdout).node1.changed).toBeGreaterThan(5);
      expect(r.stdout).toContain(cacheHoldsBuild() ? "install redis 7.0.15 from the controller's build cache" : 'build redis 7.0.15');
      for (const h of ['node1', 'node2']) {
        expect((await labExec(info.name, h, ['test', '-e', '/usr/local/bin/redis-server'])).code).not.toBe(0);
        expect((await labExec(info.name, h, ['sh', '-c', 'command -v gcc || command -v keepalived'])).code).not.toBe(0);
      }
    });

    test('provision: Redis compiled once and shipped, replication in sync, the VIP on the master', async () => {
      const cached = cacheHoldsBuild();
      const r = await rha(['provision', inv], { env });
      expect(r.code, r.all).toBe(0);
      if (cached) {
        // The other kind's build: both nodes receive it, nothing compiles.
        expect(r.stdout).not.toContain('compiled here');
        expect(r.stdout.match(/installed in \/usr\/local\/bin, from the build cache/g)?.length, r.stdout).toBe(2);
      } else {
        // One node compiles; the other receives the same binaries.
        expect(r.stdout.match(/compiled here/g)?.length, r.stdout).toBe(1);
        expect(r.stdout).toMatch(/installed in \/usr\/local\/bin, (built once on node[12]|from the build cache)/);
      }
      for (const h of ['node1', 'node2']) {
        const v = await labExec(info.name, h, ['/usr/local/bin/redis-server', '--version']);
        expect(v.stdout).toContain('v=7.0.15');
        // Redis never runs as root; its config holds the password: root and the redis group only.
        expect((await labExec(info.name, h, ['ps', '-o', 'user=', '-C', 'redis-server'])).stdout.trim()).toBe('redis');
        expect((await labExec(info.name, h, ['stat', '-c', '%U:%G %a', '/etc/redis/redis.conf'])).stdout.trim()).toBe('root:redis 640');
        expect((await labExec(info.name, h, ['stat', '-c', '%U:%G %a', '/etc/keepalived/rha/notify.sh'])).stdout.trim()).toBe('root:root 755');
      }
      if (kind === 'systemd') {
        // The units run them, not rha's own supervisor: Redis is the unit's main process.
        for (const h of ['node1', 'node2']) {
          expect(await units(h), h).toBe('active active');
          const main = (await labExec(info.name, h, ['systemctl', 'show', '-p', 'MainPID', '--value', 'redis-server'])).stdout.trim();
          expect((await labExec(info.name, h, ['cat', '/run/redis/redis-server.pid'])).stdout.trim(), h).toBe(main);
        }
      }
      expect(await vipHolder()).toEqual(['node1']);
      expect(await role('node1')).toBe('master');
      expect(await role('node2')).toBe('slave');
      expect(await masterHostOf('node2')).toBe(address('node1'));

      await viaVip(['SET', 'greeting', 'hello through the VIP']);
      const seen = await waitFor(async () => (await redisOn(info, 'node2', c, ['GET', 'greeting'])).out === 'hello through the VIP', 5000);
      expect(seen).toBe(true);

      const st = await rha(['status', inv], { env });
      expect(st.code, st.all).toBe(0);
      expect(st.stdout).toContain('HEALTHY');
    });

    test('the Redis password is in no world-readable file and in no process list', async () => {
      const pw = (c.redis as { password: string }).password;
      if (login === 'sudo') {
        // The sudo password, which rha types into sudo's prompt: in no process list, no file readable by others.
        const sudoPw = readFileSync(path.join(info.dir, 'secrets', 'login.pass'), 'utf8').trim();
        for (const h of ['node1', 'node2']) {
          const r = await labExec(info.name, h, ['sh', '-c', 'IFS= read -r pw; grep -rlF -- "$pw" /etc /var/lib /var/log /usr/local/bin /root /home /tmp 2>/dev/null | while read -r f; do stat -c "%a %n" "$f"; done'], { stdin: `${sudoPw}\n` });
          for (const line of r.stdout.trim().split('\n').filter(Boolean)) expect(Number.parseInt(line.split(' ')[0], 8) & 0o004, line).toBe(0);
          expect((await labExec(info.name, h, ['ps', '-eo', 'args'])).stdout).not.toContain(sudoPw);
        }
      }
      for (const h of ['node1', 'node2']) {
        // Files holding the password, and their modes: none may be readable by others.
        const r = await labExec(info.name, h, ['sh', '-c', 'IFS= read -r pw; grep -rlF -- "$pw" /etc /var/lib /var/log /usr/local/bin /root /tmp 2>/dev/null | while read -r f; do stat -c "%a %n" "$f"; done'], { stdin: `${pw}\n` });
        const files = r.stdout.trim().split('\n').filter(Boolean);
        expect(files.length).toBeGreaterThan(0); // it is somewhere: redis.conf, the scripts' auth file
        for (const line of files) expect(Number.parseInt(line.split(' ')[0], 8) & 0o004, line).toBe(0);
        const ps = await labExec(info.name, h, ['ps', '-eo', 'args']);
        expect(ps.stdout).not.toContain(pw);
        if (kind === 'systemd') {
          // The journal: sudo logs each command it runs (COMMAND=...), units log their output.
          // Neither password may be in it, whoever may read it.
          const sudoPw = readFileSync(path.join(info.dir, 'secrets', 'login.pass'), 'utf8').trim();
          const j = await labExec(info.name, h, ['sh', '-c', 'IFS= read -r a; IFS= read -r b; n=$(journalctl --no-pager -o export | grep -acF -e "$a" -e "$b"); echo "$n"; journalctl --no-pager -q | grep -c "COMMAND=" || true'], {
            stdin: `${pw}\n${sudoPw}\n`,
          });
          const [hits, commands] = j.stdout.trim().split('\n');
          expect(Number(commands), `${h}: sudo's commands are in the journal (so the search looked at them)`).toBeGreaterThan(0);
          expect(hits, h).toBe('0');
        }
      }
    });

    test('re-run: 0 changed, no restart, no compilation', async () => {
      const pid = async (h: string) => (await labExec(info.name, h, ['cat', '/run/redis/redis-server.pid'])).stdout.trim();
      const before = [await pid('node1'), await pid('node2')];
      const r = await rha(['provision', inv], { env });
      expect(r.code, r.all).toBe(0);
      const recap = recapOf(r.stdout);
      expect(recap.node1.changed, r.stdout).toBe(0);
      expect(recap.node2.changed, r.stdout).toBe(0);
      expect([await pid('node1'), await pid('node2')]).toEqual(before);
    });
  });

  describe('failures with real VRRP (seed 002)', () => {
    test('case 3, Redis dies on the master: the VIP moves, writes through the VIP resume, no key lost', async () => {
      for (let i = 0; i < 20; i++) await viaVip(['SET', `k${i}`, String(i)]);
      await waitFor(async () => (await redisOn(info, 'node2', c, ['GET', 'k19'])).out === '19', 5000);
      const t0 = Date.now();
      expect(await labKill(info.name, 'node1', 'redis-server', 'KILL')).toBe(1);
      const ok = await waitFor(async () => (await viaVip(['SET', 'after-kill', '1'])) === 'OK', 30_000);
      const ms = Date.now() - t0;
      console.log(`case 3: first successful write through the VIP ${ms} ms after kill -9 of the master's redis-server`);
      expect(ok).toBe(true);
      expect(await vipHolder()).toEqual(['node2']);
      expect(await role('node2')).toBe('master');
      expect(await viaVip(['MGET', 'greeting', 'k0', 'k19'])).toEqual(['hello through the VIP', '0', '19']);
      if (kind === 'systemd') {
        // Restart=no: systemd did not bring the dead master back behind keepalived's back.
        expect(await units('node1')).toBe('failed active');
        expect((await labExec(info.name, 'node1', ['pgrep', '-x', 'redis-server'])).code).toBe(1);
      }
    });

    test('recovery: a re-run brings the failed node back as a replica of the live master; the VIP stays', async () => {
      await viaVip(['SET', 'while-node1-was-down', 'yes']);
      const r = await rha(['provision', inv], { env });
      expect(r.code, r.all).toBe(0);
      // Running is not ready: node1's health check failed while its Redis was down, and keepalived
      // keeps it in FAULT (unable to take the VIP) until the check passes `rise` times. The run
      // returns only once node1 could take over again.
      expect(await vrrpState('node1')).toBe('BACKUP');
      // keepalived on node1 kept running: whether its check has risen again by step 6 depends on how
      // long the Redis start and the sync took (slower through sudo), so step 6 waits or finds it ready.
      expect(r.stdout).toMatch(/\[node1\] (changed|ok): 6\. start keepalived on the replica and wait until it can take over the VIP — .*ready to take over \(BACKUP\)/);
      expect(r.stdout).toContain('live master node2');
      expect(await vipHolder()).toEqual(['node2']);
      expect(await role('node1')).toBe('slave');
      expect(await masterHostOf('node1')).toBe(address('node2'));
      expect((await redisOn(info, 'node1', c, ['GET', 'while-node1-was-down'])).out).toBe('yes');
      const again = await rha(['provision', inv], { env });
      expect(recapOf(again.stdout).node1.changed, again.stdout).toBe(0);
      expect(recapOf(again.stdout).node2.changed, again.stdout).toBe(0);
    });

    test('case 2, keepalived stops on the master, Redis lives: the VIP moves and the old master stops taking writes', async () => {
      await viaVip(['SET', 'before-case-2', 'kept']);
      expect(await labKill(info.name, 'node2', 'keepalived', 'TERM')).toBeGreaterThan(0);
      const moved = await waitFor(async () => (await vipHolder()).join() === 'node1', 30_000);
      expect(moved).toBe(true);
      expect(await waitFor(async () => (await viaVip(['SET', 'after-case-2', '1'])) === 'OK', 30_000)).toBe(true);
      // Settled: node1 is the master; node2 must refuse writes (a replica again, or fenced).
      expect(await waitFor(async () => (await role('node1')) === 'master', 10_000)).toBe(true);
      const refuses = async () => {
        const w = await redisOn(info, 'node2', c, ['SET', 'split-brain-probe', 'x']);
        return /READONLY|NOREPLICAS/.test(w.out);
      };
      expect(await waitFor(refuses, 10_000)).toBe(true);
      for (let i = 0; i < 10; i++) {
        expect(await refuses()).toBe(true);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(await viaVip(['GET', 'before-case-2'])).toBe('kept');
      // rha brings keepalived back on node2, which stays a replica: no preemption.
      const r = await rha(['provision', inv], { env });
      expect(r.code, r.all).toBe(0);
      expect(await vipHolder()).toEqual(['node1']);
      expect(await role('node2')).toBe('slave');
    });

    test('case 1, the whole master host stops: the VIP moves; after it returns, a re-run rejoins it', async () => {
      await viaVip(['SET', 'before-case-1', 'kept']);
      await waitFor(async () => (await redisOn(info, 'node2', c, ['GET', 'before-case-1'])).out === 'kept', 5000);
      await labStopHost(info.name, 'node1');
      expect(await waitFor(async () => (await viaVip(['SET', 'after-case-1', '1'])) === 'OK', 30_000)).toBe(true);
      expect(await vipHolder()).toEqual(['node2']);
      expect(await viaVip(['GET', 'before-case-1'])).toBe('kept');
      await labStartHost(info.name, 'node1');
      if (kind === 'systemd') {
        // It boots its enabled units: Redis from its disk, then keepalived, which finds node2
        // serving (nopreempt) and stays BACKUP. Its Redis restarted as a master with a new
        // replication ID and no fence recorded (power loss: no stop hook ran), so its notify hook
        // cannot prove node2 holds every write it holds: it fences it (rule B8) rather than
        // replicate, and node1 refuses writes until rha runs. No second master takes writes.
        const refuses = async () => /READONLY|NOREPLICAS/.test((await redisOn(info, 'node1', c, ['SET', 'split-brain-probe', 'x'])).out);
        expect(await waitFor(async () => (await units('node1')) === 'active active' && (await refuses()), 60_000), `node1 after boot: units ${await units('node1')}`).toBe(true);
        expect(await vipHolder()).toEqual(['node2']);
      }
      const r = await rha(['provision', inv], { env });
      expect(r.code, r.all).toBe(0);
      expect(await vipHolder()).toEqual(['node2']);
      expect(await role('node1')).toBe('slave');
      expect((await redisOn(info, 'node1', c, ['GET', 'after-case-1'])).out).toBe('1');
    });
  });

  describe('a failed node replaced by a blank machine', () => {
    test('the changed host key stops that host with the way to accept it; nothing else is touched', async () => {
      await labReplace(info.name, 'node1');
      const r = await rha(['provision', inv], { env });
      expect(r.code, r.all).toBe(3);
      expect(r.stdout).toContain('host key changed');
      expect(r.stdout).toContain('--accept-host-key node1');
      expect(await vipHolder()).toEqual(['node2']);
    });

    test('accepted, the new node is provisioned from the build cache and joins the live master; the VIP never moves', async () => {
      await viaVip(['SET', 'before-replace', 'kept']);
      const r = await rha(['provision', inv, '--accept-host-key', 'node1'], { env });
      expect(r.code, r.all).toBe(0);
      expect(r.stdout).toMatch(/\[node1\] changed: Redis binaries .* from the build cache/);
      expect(r.stdout).not.toContain('compiled here');
      expect(await vipHolder()).toEqual(['node2']);
      expect(await role('node1')).toBe('slave');
      expect((await redisOn(info, 'node1', c, ['MGET', 'before-replace', 'greeting', 'k19'])).out.split('\n')).toEqual([
        'kept',
        'hello through the VIP',
        '19',
      ]);
      const again = await rha(['provision', inv], { env });
      expect(recapOf(again.stdout).node1.changed, again.stdout).toBe(0);
      expect(recapOf(again.stdout).node2.changed, again.stdout).toBe(0);
      const st = await rha(['status', inv], { env });
      expect(st.code, st.all).toBe(0);
    });
  });
});
