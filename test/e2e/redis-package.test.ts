/**
 * `redis.install: package` end to end on lab hosts (issue 15): Debian's redis-server package from
 * the lab's repository, on hosts with empty apt lists and a NOPASSWD sudo login. The package
 * brings the binaries only: rha's redis.conf, rha's layout (owners, modes) and rha's bring-up
 * order; the package's maintainer scripts never start Redis on the package's own config.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import type { ClusterSpec } from '../../src/core/types.js';
import { loadInventory } from '../../src/inventory/index.js';
import { labExec, type LabInfo } from '../../src/lab/index.js';
import { call, vipTarget } from '../../src/pair/client.js';
import { useLab } from '../support/lab.js';
import { recapOf, redisOn, redisRole, rha, vipHolders, waitFor } from '../support/rha.js';

const lab = useLab('redispkg', 2, { login: 'sudo-nopasswd' });

let info: LabInfo;
let c: ClusterSpec;
let inv: string;
beforeAll(async () => {
  info = lab();
  // The lab's inventory with install: package instead of the source tarball (prefix then /usr).
  const doc = parse(readFileSync(info.inventoryPath, 'utf8')) as { clusters: Record<string, { redis: Record<string, unknown> }> };
  for (const cl of Object.values(doc.clusters)) {
    delete cl.redis.source;
    cl.redis.install = 'package';
  }
  inv = path.join(info.dir, 'inventory-package.yaml');
  writeFileSync(inv, stringify(doc), { mode: 0o600 });
  c = [...(await loadInventory(inv)).clusters.values()][0];
});

const sh = async (host: string, script: string) => (await labExec(info.name, host, ['sh', '-c', script])).stdout.trim();

describe('install: package (Debian redis-server), sudo NOPASSWD login, empty apt lists', () => {
  test('provision: the package binaries, rha config and layout, started once by the bring-up; the pair works', async () => {
    for (const h of ['node1', 'node2']) expect(await sh(h, 'rm -rf /var/lib/apt/lists/* && ls -A /var/lib/apt/lists | wc -l')).toBe('0');
    expect((c.redis as { prefix: string }).prefix).toBe('/usr');
    const r = await rha(['provision', inv]);
    expect(r.code, r.all).toBe(0);
    expect(r.stdout.match(/changed: Redis binaries — redis 7\.0\.15 installed from the redis-server package \(not started\)/g)?.length, r.stdout).toBe(2);
    expect(r.stdout).not.toContain('compiled here');
    for (const h of ['node1', 'node2']) {
      expect(await sh(h, "dpkg-query -W -f '${db:Status-Abbrev}' redis-server"), h).toBe('ii');
      expect(await sh(h, 'test -e /usr/local/bin/redis-server && echo there || echo absent')).toBe('absent');
      // The one redis-server runs the package's binary as redis, on rha's config.
      expect(await sh(h, 'ps -o user=,args= -C redis-server')).toMatch(/^redis\s+\/usr\/bin\/redis-server \S+:6379$/);
      expect(await sh(h, 'head -n1 /etc/redis/redis.conf')).toMatch(/^# Managed by rha: cluster pair1/);
      // rha's layout over the maintainer scripts' (redis:redis 2770 /etc/redis, redis:adm 2750 logs).
      expect(await sh(h, 'stat -c "%U:%G %a %n" /etc/redis /etc/redis/redis.conf /var/lib/redis /var/log/redis')).toBe(
        'root:redis 750 /etc/redis\nroot:redis 640 /etc/redis/redis.conf\nredis:redis 750 /var/lib/redis\nredis:redis 750 /var/log/redis',
      );
      // An upgrade of the package keeps rha's owner on the config (its postinst honours an override).
      expect(await sh(h, 'dpkg-statoverride --list /etc/redis/redis.conf')).toBe('root redis 640 /etc/redis/redis.conf');
      // Started once, by rha's bring-up: the package's scripts never started it on their config
      // (it logs to the same file), and the policy-rc.d that stopped them is gone again.
      expect(await sh(h, 'grep -c "Ready to accept connections" /var/log/redis/redis-server.log')).toBe('1');
      expect(await sh(h, 'test -e /usr/sbin/policy-rc.d && echo there || echo absent')).toBe('absent');
    }
    expect(await vipHolders(info, c)).toEqual(['node1']);
    expect(await redisRole(info, 'node1', c)).toBe('master');
    expect(await redisRole(info, 'node2', c)).toBe('slave');
    expect(await call(vipTarget(c), ['SET', 'via', 'the package'], 1000)).toBe('OK');
    expect(await waitFor(async () => (await redisOn(info, 'node2', c, ['GET', 'via'])).out === 'the package', 5000)).toBe(true);
  });

  test('re-run: 0 changed, Redis not restarted', async () => {
    const pids = async () => [await sh('node1', 'cat /run/redis/redis-server.pid'), await sh('node2', 'cat /run/redis/redis-server.pid')];
    const before = await pids();
    const r = await rha(['provision', inv]);
    expect(r.code, r.all).toBe(0);
    const recap = recapOf(r.stdout);
    expect(recap.node1.changed, r.stdout).toBe(0);
    expect(recap.node2.changed, r.stdout).toBe(0);
    expect(await pids()).toEqual(before);
  });
});
