/**
 * Day 2 on a real pair: the start-up order enforced against an out-of-order playbook, `rha status`
 * in every state, a planned switchover and a rolling restart while a client keeps writing through
 * the VIP: every acknowledged write is there afterwards.
 *
 * On both host kinds (test/support/kinds.ts): on systemd hosts every start, stop and restart below
 * goes through systemctl and the units. Cases about keepalived's own arithmetic or rha's logic
 * above the service layer run on namespace hosts only, and say so in their names.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import YAML from 'yaml';
import type { ClusterSpec } from '../../src/core/types.js';
import { labExec, labKill, type LabInfo } from '../../src/lab/index.js';
import { BOOST, setBoostScript } from '../../src/modules/ha/switchover.js';
import { describeOnlyOn, forEachHostKind, testOnlyOn, useKindLab } from '../support/kinds.js';
import { labPair, missingThroughVip, recapOf, redisOn, redisRole, rha, vipHolders as vipHoldersOf, vipWriter, vrrpState, waitFor } from '../support/rha.js';

forEachHostKind((kind) => {
  const lab = useKindLab('day2', kind);
  let info: LabInfo;
  let c: ClusterSpec;
  let inv: string;

  beforeAll(async () => {
    ({ info, c, inv } = await labPair(lab()));
  });

  const vipHolders = () => vipHoldersOf(info, c);
  const role = (h: string) => redisRole(info, h, c);

  const writer = (prefix: string) => vipWriter(c, prefix);
  const allPresent = (prefix: string, acked: number[]) => missingThroughVip(c, prefix, acked);

  describe('the start-up order is enforced', () => {
    test('an out-of-order playbook (keepalived on the replica while the master has no VIP) is refused, naming the rule', async () => {
      // keepalived down on both nodes, replica first, so nobody holds the VIP.
      expect(await labKill(info.name, 'node2', 'keepalived', 'TERM')).toBeGreaterThan(0);
      expect(await labKill(info.name, 'node1', 'keepalived', 'TERM')).toBeGreaterThan(0);
      expect(await waitFor(async () => (await vipHolders()).length === 0, 10_000)).toBe(true);
      // keepalived exits after its notify_stop hook: wait until it is really gone on both.
      const gone = async (h: string) => (await labExec(info.name, h, ['pgrep', '-x', 'keepalived'])).code !== 0;
      expect(await waitFor(async () => (await gone('node1')) && (await gone('node2')), 15_000)).toBe(true);

      const pb = path.join(info.dir, 'out-of-order.yaml');
      writeFileSync(
        pb,
        YAML.stringify([
          {
            name: 'keepalived on the replica first',
            hosts: 'clusters',
            tasks: [
              {
                name: 'start keepalived on the replica',
                ha_service: {
                  name: 'keepalived',
                  role: 'replica',
                  service: { name: 'keepalived', exec: ['keepalived', '--use-file', '/etc/keepalived/keepalived.conf', '--pid', '/run/keepalived.pid'], pidfile: '/run/keepalived.pid', match: 'keepalived' },
                },
              },
            ],
          },
        ]),
      );
      const r = await rha(['run', pb, '-i', inv]);
      expect(r.code, r.all).toBe(2);
      expect(r.stdout).toContain('step 6 (keepalived on the replica node2) must wait for step 5: the master node1 does not hold the VIP yet');
      expect((await labExec(info.name, 'node2', ['sh', '-c', 'pgrep -x keepalived'])).code).not.toBe(0);
      expect(await vipHolders()).toEqual([]);

      // rha provision brings it back in order: the VIP on the master, then keepalived on the replica.
      const p = await rha(['provision', inv]);
      expect(p.code, p.all).toBe(0);
      expect(p.stdout).toMatch(/\[node1\] changed: 5\. start keepalived on the master and wait until it holds the VIP .*holds the VIP/);
      expect(await vipHolders()).toEqual(['node1']);
      expect(await role('node1')).toBe('master');
    });
  });

  describeOnlyOn(kind, 'namespace', 'copy\'s validate step runs no service')('keepalived.conf is tested before it is installed', () => {
    test('a config that keepalived -t rejects is never installed; the running keepalived keeps its old config and the VIP', async () => {
      const sum = async (h: string) => (await labExec(info.name, h, ['sha256sum', '/etc/keepalived/keepalived.conf'])).stdout.split(' ')[0];
      const pid = async (h: string) => (await labExec(info.name, h, ['cat', '/run/keepalived.pid'])).stdout.trim();
      const before = { sum: await sum('node1'), pid: await pid('node1'), vip: await vipHolders() };
      const pb = path.join(info.dir, 'broken-keepalived.yaml');
      writeFileSync(
        pb,
        YAML.stringify([
          {
            name: 'a broken keepalived.conf',
            hosts: 'node1',
            tasks: [
              {
                name: 'keepalived.conf',
                copy: {
                  content: 'vrrp_instance broken {\n  virtual_router_id 999\n  interface eth0\n}\n',
                  dest: '/etc/keepalived/keepalived.conf',
                  mode: '0640',
                  validate: ['keepalived', '-t', '-f', '%s'],
                },
              },
            ],
          },
        ]),
      );
      const r = await rha(['run', pb, '-i', inv]);
      expect(r.code, r.all).toBe(2);
      expect(r.stdout).toContain('validation of /etc/keepalived/keepalived.conf failed');
      expect(r.stdout).toContain("VRID '999' not valid");
      expect(await sum('node1')).toBe(before.sum);
      expect(await pid('node1')).toBe(before.pid);
      expect(await vipHolders()).toEqual(before.vip);
      expect((await labExec(info.name, 'node1', ['sh', '-c', 'ls /etc/keepalived/ | grep -c rha- || true'])).stdout.trim()).toBe('0');
    });
  });

  describe('rha status', () => {
    test('healthy pair: exit 0, the VIP holder, roles, link and lag; JSON for machines', async () => {
      const r = await rha(['status', inv]);
      expect(r.code, r.all).toBe(0);
      expect(r.stdout).toMatch(/cluster pair1\s+VIP \S+ on node1\s+→ HEALTHY/);
      expect(r.stdout).toMatch(/node2 .* replica of \S+ +up +\d+ B/);
      // keepalived's own state, not only "running".
      expect(r.stdout).toMatch(/^ +node1 .* running \(MASTER\)$/m);
      expect(r.stdout).toMatch(/^ +node2 .* running \(BACKUP\)$/m);
      const j = await rha(['status', inv, '-o', 'json']);
      const parsed = JSON.parse(j.stdout) as { healthy: boolean; clusters: Array<{ vipHolder: string; master: string; verdict: string }> };
      expect(parsed.healthy).toBe(true);
      expect(parsed.clusters[0]).toMatchObject({ vipHolder: 'node1', master: 'node1', verdict: 'healthy' });
      expect(j.stdout).not.toContain((c.redis as { password: string }).password);
    });

    test('one node down: exit 2, degraded, with the reason', async () => {
      await labKill(info.name, 'node2', 'redis-server', 'KILL');
      const r = await rha(['status', inv]);
      expect(r.code).toBe(2);
      expect(r.stdout).toContain('DEGRADED');
      expect(r.stdout).toContain('node2: Redis is down');
      // Once its health check has failed `fall` times, node2 could not take the VIP: status says so.
      expect(await waitFor(async () => ((await vrrpState(info, 'node2', c)) === 'FAULT') || undefined, 20_000)).toBe(true);
      const f = await rha(['status', inv]);
      expect(f.code).toBe(2);
      expect(f.stdout).toContain('node2: keepalived is in FAULT (its Redis health check fails): it cannot take the VIP');
      expect(f.stdout).toMatch(/^ +node2 .* running \(FAULT\)$/m);
      const p = await rha(['provision', inv]);
      expect(p.code, p.all).toBe(0);
      expect((await rha(['status', inv])).code).toBe(0);
    });
  });

  describe('planned moves while a client writes through the VIP', () => {
    test('rha switchover: the VIP and the master role move, no acknowledged write is lost, the pause is reported', async () => {
      const w = writer('sw');
      await new Promise((r) => setTimeout(r, 500));
      const r = await rha(['switchover', inv, 'pair1']);
      await new Promise((r) => setTimeout(r, 500));
      await w.stop();
      expect(r.code, r.all).toBe(0);
      const paused = Number(/Writes were paused (\d+) ms/.exec(r.stdout)?.[1]);
      console.log(`switchover: writes paused ${paused} ms; ${w.acked.length} writes acknowledged, ${w.errors} refused during the move`);
      expect(paused).toBeGreaterThan(0);
      expect(await vipHolders()).toEqual(['node2']);
      expect(await role('node2')).toBe('master');
      expect(await role('node1')).toBe('slave');
      expect(w.acked.length).toBeGreaterThan(10);
      expect(await allPresent('sw', w.acked)).toEqual([]);
      // A re-run afterwards changes nothing and keeps the VIP where it is.
      const again = await rha(['provision', inv]);
      expect(recapOf(again.stdout).node1.changed, again.stdout).toBe(0);
      expect(recapOf(again.stdout).node2.changed, again.stdout).toBe(0);
      expect(await vipHolders()).toEqual(['node2']);
    });

    testOnlyOn(kind, 'namespace', 'VRRP priority arithmetic inside keepalived')("the switchover's priority raise is real keepalived state, and it is back to normal afterwards", async () => {
      const info = lab();
      const file = '/etc/keepalived/rha/switchover.pair1';
      // After the switchover above, both track files hold 0 (node1's keepalived restarted from init_file).
      for (const h of ['node1', 'node2']) expect((await labExec(info.name, h, ['cat', file])).stdout).toBe('0\n');
      // keepalived's own view (SIGUSR1 dumps its state): the backup node1 at its configured 150, then
      // at 254 while the file says 253, then back.
      const effective = async (h: string) => {
        await labExec(info.name, h, ['sh', '-c', 'rm -f /tmp/keepalived.data; kill -USR1 "$(cat /run/keepalived.pid)"']);
        let text = '';
        await waitFor(async () => {
          text = (await labExec(info.name, h, ['cat', '/tmp/keepalived.data'])).stdout;
          return /Effective priority = \d+/.test(text);
        }, 5000);
        return Number(/Effective priority = (\d+)/.exec(text)?.[1]);
      };
      expect(await effective('node1')).toBe(150);
      await labExec(info.name, 'node1', ['sh', '-c', setBoostScript(file, BOOST)]);
      expect(await waitFor(async () => (await effective('node1')) === 254, 5000)).toBe(true);
      await labExec(info.name, 'node1', ['sh', '-c', setBoostScript(file, 0)]);
      expect(await waitFor(async () => (await effective('node1')) === 150, 5000)).toBe(true);
      // nopreempt: the raised backup never took the VIP from the running master.
      expect(await vipHolders()).toEqual(['node2']);
    });

    test('a change that needs a restart rolls: replica first, switchover, then the old master; no acknowledged write lost', async () => {
      // The same inventory with one more redis.conf directive (beside the lab's, so its relative paths hold).
      const doc = YAML.parseDocument(readFileSync(inv, 'utf8'));
      doc.setIn(['clusters', 'pair1', 'redis', 'config'], { hz: 15 });
      const changed = path.join(info.dir, 'inventory-hz.yaml');
      writeFileSync(changed, doc.toString(), { mode: 0o600 });
      const pidOf = async (h: string) => (await labExec(info.name, h, ['cat', '/run/redis/redis-server.pid'])).stdout.trim();
      const before = { node1: await pidOf('node1'), node2: await pidOf('node2') };

      const w = writer('roll');
      await new Promise((r) => setTimeout(r, 300));
      const r = await rha(['provision', changed]);
      await new Promise((r) => setTimeout(r, 300));
      await w.stop();
      expect(r.code, r.all).toBe(0);
      const order = ['[node1] changed: 2. restart Redis on the replica', '[node2] changed: 3. rolling restart of the master', '[node2] changed: 3. restart Redis on the old master'];
      const at = order.map((s) => r.stdout.indexOf(s));
      expect(at.every((i) => i >= 0), r.stdout).toBe(true);
      expect([...at].sort((a, b) => a - b)).toEqual(at);
      expect(await pidOf('node1')).not.toBe(before.node1);
      expect(await pidOf('node2')).not.toBe(before.node2);
      if (kind === 'systemd') {
        // Restarted through systemd: the new Redis is the unit's main process, the unit active.
        for (const h of ['node1', 'node2']) {
          const show = async (p: string) => (await labExec(info.name, h, ['systemctl', 'show', '-p', p, '--value', 'redis-server'])).stdout.trim();
          expect(await show('MainPID'), h).toBe(await pidOf(h));
          expect(await show('ActiveState'), h).toBe('active');
        }
      }
      for (const h of ['node1', 'node2']) expect((await redisOn(info, h, c, ['CONFIG', 'GET', 'hz'])).out).toBe('hz\n15');
      expect(await vipHolders()).toEqual(['node1']);
      console.log(`rolling restart: ${w.acked.length} writes acknowledged, ${w.errors} refused while it rolled`);
      expect(await allPresent('roll', w.acked)).toEqual([]);
      const again = await rha(['provision', changed]);
      expect(recapOf(again.stdout).node1.changed, again.stdout).toBe(0);
      expect(recapOf(again.stdout).node2.changed, again.stdout).toBe(0);
    });

    // The restarts it triggers are the rolling restart above, which runs on both kinds; the rest is a compilation.
    testOnlyOn(kind, 'namespace', 'a rebuild; its restarts are the case above')('an allocator change triggers exactly the rebuild and the rolling restart, and nothing else', async () => {
      const doc = YAML.parseDocument(readFileSync(inv, 'utf8'));
      doc.setIn(['clusters', 'pair1', 'redis', 'config'], { hz: 15 });
      doc.setIn(['clusters', 'pair1', 'redis', 'malloc'], 'libc');
      const changed = path.join(info.dir, 'inventory-libc.yaml');
      writeFileSync(changed, doc.toString(), { mode: 0o600 });
      const w = writer('libc');
      const r = await rha(['provision', changed]);
      await w.stop();
      expect(r.code, r.all).toBe(0);
      const changedTasks = new Set([...r.stdout.matchAll(/^\[node\d\] changed: (.+?) — /gm)].map((m) => m[1].replace(/ \(.*$/, '')));
      // The two waits for a sync report a change only when the sync was still running when they
      // looked (a pair's full sync starts at once: repl-diskless-sync-delay 0), so either is fine.
      const waits = ['3. replicate from the live master and wait until the sync is complete', '3. the old master catches up with the new one'];
      expect([...changedTasks].filter((t) => !waits.includes(t)).sort()).toEqual(
        [
          'Redis binaries',
          '2. restart Redis on the replica',
          '3. rolling restart of the master - hand the master role and the VIP to the in-sync replica first',
          '3. restart Redis on the old master, now a replica',
        ].sort(),
      );
      for (const h of ['node1', 'node2']) {
        expect((await labExec(info.name, h, ['/usr/local/bin/redis-server', '--version'])).stdout).toContain('malloc=libc');
      }
      expect(await allPresent('libc', w.acked)).toEqual([]);
      const again = await rha(['provision', changed]);
      expect(recapOf(again.stdout).node1.changed, again.stdout).toBe(0);
      expect(recapOf(again.stdout).node2.changed, again.stdout).toBe(0);
    });
  });

  describeOnlyOn(kind, 'namespace', 'keepalived\'s FAULT state and the switchover\'s wait, no service change')('a replica that cannot take over yet', () => {
    test('switchover waits for a replica whose keepalived is in FAULT, and refuses (nothing moved) while it stays there', async () => {
      const [master] = await vipHolders();
      const replica = master === 'node1' ? 'node2' : 'node1';
      const auth = '/etc/keepalived/rha/redis.auth';
      const saved = (await labExec(info.name, replica, ['cat', auth])).stdout;
      // Its health check now fails (a wrong password), while its Redis runs and stays in sync.
      await labExec(info.name, replica, ['sh', '-c', `printf 'wrong\\n' > ${auth}`]);
      try {
        expect(await waitFor(async () => ((await vrrpState(info, replica, c)) === 'FAULT') || undefined, 20_000)).toBe(true);
        const r = await rha(['switchover', inv, 'pair1']);
        expect(r.code, r.all).toBe(2);
        expect(r.all).toContain(`keepalived on ${replica} is FAULT`);
        expect(r.all).toContain('nothing moved');
        expect(await vipHolders()).toEqual([master]);
        expect(await role(master)).toBe('master');
      } finally {
        await labExec(info.name, replica, ['sh', '-c', 'cat > "$1"', 'sh', auth], { stdin: saved });
      }
      // Repaired, it is still in FAULT until the check has passed `rise` times: the switchover waits
      // for it instead of pausing writes for a VIP that could not move, then moves.
      const r = await rha(['switchover', inv, 'pair1']);
      expect(r.code, r.all).toBe(0);
      expect(await vipHolders()).toEqual([replica]);
      expect(await role(replica)).toBe('master');
    });
  });
});
