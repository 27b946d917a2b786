/**
 * Secrets on a real pair (issue 18): no probe of rha puts the Redis password in any process's
 * argv or environment on the hosts, and a password / auth_pass change previewed with
 * `rha provision --check --diff -vv` prints neither the old nor the new value in any output format,
 * while the diffs still say which secrets changed. Check mode only: the pair is not disturbed
 * (rotating for real is another test's job).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import type { ClusterSpec } from '../../src/core/types.js';
import { labExec, type LabInfo } from '../../src/lab/index.js';
import { useLab } from '../support/lab.js';
import { labPair, rha } from '../support/rha.js';

const lab = useLab('secrets', 2);
let info: LabInfo;
let c: ClusterSpec;
let inv: string;

beforeAll(async () => {
  ({ info, c, inv } = await labPair(lab()));
});

const CLI = '/usr/local/bin/redis-cli';
// Stands in for redis-cli: records its arguments and whether the password (read from the root-only
// redis.auth) is in the environment or command line of itself or any ancestor (timeout, the
// script's sh, sshd's session), then runs the real redis-cli. Every invocation is seen, however
// short, which a /proc scan from outside could miss.
const AUDIT_WRAPPER = `#!/bin/sh
p=$$; hits=; via=
while [ "$p" -gt 1 ]; do
  for f in environ cmdline; do
    if grep -aqF -f /etc/keepalived/rha/redis.auth /proc/$p/$f; then hits="$hits $(cat /proc/$p/comm):$f"; fi
  done
  if grep -aqF /etc/keepalived/rha/notify.sh /proc/$p/cmdline; then via=notify.sh; fi
  p=$(sed 's/.*) [A-Z] \\([0-9]*\\).*/\\1/' /proc/$p/stat)
done
echo "args=$* hits=[$hits ] via=$via" >>/tmp/rha-cli-audit.log
exec ${CLI}.real "$@"
`;

async function onHost(host: string, script: string): Promise<string> {
  const r = await labExec(info.name, host, ['sh', '-c', script]);
  if (r.code !== 0) throw new Error(`${host}: ${script}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

describe('the Redis password on the hosts', () => {
  test('no rha probe (status, provision --check, switchover) nor health check has it in any argv or environment', async () => {
    const b64 = Buffer.from(AUDIT_WRAPPER).toString('base64');
    for (const h of ['node1', 'node2']) {
      await onHost(h, `cp -p ${CLI} ${CLI}.real && echo ${b64} | base64 -d > ${CLI}.tmp && chmod 755 ${CLI}.tmp && mv -f ${CLI}.tmp ${CLI} && : > /tmp/rha-cli-audit.log`);
    }
    try {
      // The wrapper finds what it looks for: a command run the old way (REDISCLI_AUTH) is caught.
      await onHost('node1', `REDISCLI_AUTH=$(cat /etc/keepalived/rha/redis.auth) ${CLI} PING >/dev/null`);
      expect(await onHost('node1', 'cat /tmp/rha-cli-audit.log')).toContain('args=PING hits=[ redis-cli:environ ] via=');
      await onHost('node1', ': > /tmp/rha-cli-audit.log');

      const status = await rha(['status', inv]);
      expect(status.code, status.all).toBe(0);
      const check = await rha(['provision', inv, '--check']);
      expect(check.code, check.all).toBe(0);
      const moved = await rha(['switchover', inv, c.name]);
      expect(moved.code, moved.all).toBe(0);
      const back = await rha(['switchover', inv, c.name]);
      expect(back.code, back.all).toBe(0);

      const audit = async () =>
        [
          ...(await onHost('node1', 'cat /tmp/rha-cli-audit.log')).split('\n'),
          ...(await onHost('node2', 'cat /tmp/rha-cli-audit.log')).split('\n'),
        ].filter(Boolean);
      // keepalived runs the notify hooks of the moves in the background: give them a moment.
      let lines = await audit();
      for (let i = 0; i < 50 && !lines.some((l) => l.endsWith('via=notify.sh')); i++) {
        await new Promise((r) => setTimeout(r, 200));
        lines = await audit();
      }
      // No call has the password in its or its ancestors' argv or environment, the notify hook's
      // (keepalived runs it at each switchover) included.
      expect(lines.filter((l) => !/hits=\[ \] via=(notify\.sh)?$/.test(l))).toEqual([]);
      expect(lines.some((l) => l.endsWith('via=notify.sh')), 'the notify hook ran redis-cli').toBe(true);
      // rha's probes and switchover commands, and keepalived's health check, all went through it.
      for (const seen of ['INFO', 'CLIENT PAUSE 10000 WRITE', 'REPLICAOF NO ONE', 'INFO replication', 'PING', 'ROLE']) {
        expect(lines.some((l) => l.includes(`--askpass -h 127.0.0.1 -p 6379 ${seen} hits=`)), seen).toBe(true);
      }
    } finally {
      // Best effort: an error here must not hide the test's own.
      for (const h of ['node1', 'node2']) await onHost(h, `mv -f ${CLI}.real ${CLI}; rm -f /tmp/rha-cli-audit.log`).catch(() => undefined);
    }
  });
});

describe('a secret change previewed with --check --diff -vv', () => {
  test('no output format prints the old or the new Redis password or auth_pass; the diffs say they changed', async () => {
    const secrets = path.join(path.dirname(inv), 'secrets');
    const redisFile = path.join(secrets, `${c.name}.redis.pass`);
    const vrrpFile = path.join(secrets, `${c.name}.vrrp.pass`);
    const oldRedis = readFileSync(redisFile, 'utf8').trim();
    const oldVrrp = readFileSync(vrrpFile, 'utf8').trim();
    // The old values are really on the hosts (so a diff has them on its `before` side).
    expect((await onHost('node1', 'cat /etc/keepalived/rha/redis.auth'))).toBe(oldRedis);
    expect(await onHost('node1', 'grep -c auth_pass /etc/keepalived/keepalived.conf')).toBe('1\n');
    expect(await onHost('node1', `grep -cF -- ${JSON.stringify(oldVrrp)} /etc/keepalived/keepalived.conf`)).toBe('1\n');

    const newRedis = `n3w-Redis "pw" #${Date.now()}`;
    const newVrrp = `nv${String(Date.now()).slice(-6)}`;
    writeFileSync(redisFile, `${newRedis}\n`, { mode: 0o600 });
    writeFileSync(vrrpFile, `${newVrrp}\n`, { mode: 0o600 });
    try {
      for (const output of ['plain', 'json', 'pretty']) {
        const r = await rha(['provision', inv, '--check', '--diff', '-vv', '--output', output]);
        expect(r.code, `${output}:\n${r.all}`).toBe(0);
        for (const secret of [oldRedis, newRedis, oldVrrp, newVrrp]) {
          expect(r.all.includes(secret), `${output} printed a secret:\n${r.all}`).toBe(false);
        }
        // Not vacuous: the diffs of all three files are there, and say which secret changed.
        for (const want of ['requirepass *** (secret changed)', 'masterauth *** (secret changed)', 'auth_pass *** (secret changed)']) {
          expect(r.all, `${output}: ${want}`).toContain(want);
        }
        if (output === 'json') {
          const events = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
          const diffs = events.flatMap((e) => e.diffs ?? []);
          const auth = diffs.filter((d: { path: string }) => d.path === '/etc/keepalived/rha/redis.auth');
          expect(auth).toEqual([
            { path: '/etc/keepalived/rha/redis.auth', before: '***', after: '*** (secret changed)' },
            { path: '/etc/keepalived/rha/redis.auth', before: '***', after: '*** (secret changed)' },
          ]);
          const conf = diffs.find((d: { path: string }) => d.path.endsWith('/redis.conf'));
          expect(conf.before).toMatch(/^requirepass \*\*\*$/m);
          expect(conf.after).toMatch(/^requirepass \*\*\* \(secret changed\)$/m);
        } else {
          expect(r.all, output).toMatch(/^ *-\*\*\*\n *\+\*\*\* \(secret changed\)$/m);
        }
      }
      // Check mode: the hosts still have the old password.
      expect(await onHost('node1', 'cat /etc/keepalived/rha/redis.auth')).toBe(oldRedis);
    } finally {
      writeFileSync(redisFile, `${oldRedis}\n`, { mode: 0o600 });
      writeFileSync(vrrpFile, `${oldVrrp}\n`, { mode: 0o600 });
    }
    const again = await rha(['status', inv]);
    expect(again.code, again.all).toBe(0);
  });
});
