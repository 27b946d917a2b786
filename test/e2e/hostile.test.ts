/**
 * Hostile environments at the `rha run` / `rha provision` level, on real lab hosts: two runs at
 * once (the per-host run lock), a dead run's stale lock, Ctrl-C in the middle of a run, an
 * unreachable host, and secrets with every awkward character provisioned end to end without ever
 * showing in output, process lists or world-readable files, then a changed host key on that pair.
 * Each failure test ends by checking the host is as it was.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadInventory } from '../../src/inventory/index.js';
import { labExec, type LabInfo } from '../../src/lab/index.js';
import { call, vipTarget } from '../../src/pair/client.js';
import { useLab } from '../support/lab.js';
import { recapOf, rha, RHA, waitFor } from '../support/rha.js';

/** Waits until probe is true; throws naming what never happened. */
async function until(probe: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  if (!(await waitFor(async () => (await probe()) || undefined, ms))) throw new Error(`timed out waiting for ${what}`);
}

const lab = useLab('hostile', 2);
const work = mkdtempSync(path.join(tmpdir(), 'rha-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let info: LabInfo;
beforeAll(() => {
  info = lab();
});

const sh = async (host: string, script: string) => labExec(info.name, host, ['sh', '-c', script]);

/** A playbook file in the work dir. */
function playbook(name: string, text: string): string {
  const f = path.join(work, name);
  writeFileSync(f, text);
  return f;
}

/** Starts `rha ARGS` as a child we can signal; resolves with the same shape as rha(). */
function start(args: string[]) {
  const child = spawn(process.execPath, [RHA, ...args], { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string; all: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, all: stdout + stderr })),
  );
  return { child, done, out: () => stdout + stderr };
}

/** Files under /etc, /tmp and /opt named like rha's atomic-write temp files. */
const tempFiles = (host: string) => sh(host, "find /etc /tmp /opt /usr/local -name '*.rha-*' 2>/dev/null").then((r) => r.stdout.trim());

describe('the per-host run lock', () => {
  test('a second run against a host in use fails that host, says who holds it and since when, and touches nothing', async () => {
    const slow = playbook(
      'slow.yaml',
      '- hosts: node1\n  gather_facts: false\n  tasks:\n    - name: hold the host\n      command: sleep 12\n',
    );
    const second = playbook(
      'second.yaml',
      '- hosts: node1\n  gather_facts: false\n  tasks:\n    - name: must not run\n      copy: { dest: /root/second-run, content: "x\\n" }\n',
    );
    const first = start(['run', slow, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -x sleep')).code === 0, 30_000, 'the first run to start its sleep');
    const lock = (await sh('node1', 'cat /run/rha.lock')).stdout;
    expect(lock).toMatch(/^run=[0-9a-f-]{36}\nowner=\S+@\S+\npid=\d+\nsince=\d{4}-\d\d-\d\dT\S+Z\ncommand=rha slow\.yaml -i \S+\nhost_pid=\d+\nhost_pid_start=\d+\n$/);
    const r = await rha(['run', second, '-i', info.inventoryPath]);
    expect(r.code, r.all).toBe(2);
    const pid = /pid=(\d+)/.exec(lock)![1];
    const since = /since=(\S+)/.exec(lock)![1];
    expect(r.all).toContain(`node1 is locked by another rha run: `);
    expect(r.all).toContain(`(rha pid ${pid}, rha slow.yaml -i `);
    expect(r.all).toContain(` since ${since} (/run/rha.lock); nothing was changed on this host`);
    expect(recapOf(r.stdout).node1).toMatchObject({ failed: 1, changed: 0, unreachable: 0 });
    expect((await sh('node1', 'test -e /root/second-run')).code).not.toBe(0);
    // The second run did not disturb the first one's lock.
    expect((await sh('node1', 'cat /run/rha.lock')).stdout).toBe(lock);

    const f = await first.done;
    expect(f.code, f.all).toBe(0);
    // Released at the end: the file is empty, the next run takes it at once.
    expect((await sh('node1', 'cat /run/rha.lock')).stdout).toBe('');
    const again = await rha(['run', second, '-i', info.inventoryPath]);
    expect(again.code, again.all).toBe(0);
    expect(again.all).not.toContain('locked');
    await sh('node1', 'rm -f /root/second-run');
  }, 120_000);

  test('a lock left by a run that died (its connection gone) is taken over with a warning', async () => {
    await sh('node1', "printf 'run=dead\\nowner=op@old-ctl\\npid=4242\\nsince=2026-01-01T00:00:00.000Z\\ncommand=rha provision x\\nhost_pid=999999\\nhost_pid_start=1\\n' > /run/rha.lock");
    const pb = playbook('noop.yaml', '- hosts: node1\n  gather_facts: false\n  tasks:\n    - command: "true"\n');
    const r = await rha(['run', pb, '-i', info.inventoryPath]);
    expect(r.code, r.all).toBe(0);
    expect(r.all).toContain(
      "took over the run lock /run/rha.lock of op@old-ctl (rha pid 4242, rha provision x) since 2026-01-01T00:00:00.000Z: that run's connection to this host is gone",
    );
    expect((await sh('node1', 'cat /run/rha.lock')).stdout).toBe('');
  }, 60_000);
});

describe('Ctrl-C in the middle of a run', () => {
  test('SIGINT: exit 130, the recap says what was done, no half-written file, the lock released, the remote command stopped', async () => {
    const pb = playbook(
      'interrupt.yaml',
      [
        '- hosts: node1',
        '  gather_facts: false',
        '  tasks:',
        '    - name: first file',
        '      copy: { dest: /etc/rha-int-a.conf, content: "a\\n" }',
        '    - name: long command',
        '      command: sleep 300',
        '    - name: never reached',
        '      copy: { dest: /etc/rha-int-b.conf, content: "b\\n" }',
        '',
      ].join('\n'),
    );
    const run = start(['run', pb, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code === 0, 30_000, 'sleep 300 on node1');
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.all).toBe(130);
    expect(r.all).toContain('interrupting: no new task starts, running commands are stopped');
    expect(recapOf(r.stdout).node1).toMatchObject({ changed: 1 });
    expect((await sh('node1', 'cat /etc/rha-int-a.conf')).stdout).toBe('a\n');
    expect((await sh('node1', 'test -e /etc/rha-int-b.conf')).code).not.toBe(0);
    expect(await tempFiles('node1')).toBe('');
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code !== 0, 10_000, 'the remote sleep to be stopped');
    expect((await sh('node1', 'cat /run/rha.lock')).stdout).toBe('');
    await sh('node1', 'rm -f /etc/rha-int-a.conf');
  }, 90_000);
});

describe('an unreachable host', () => {
  test('a host that does not answer: exit 3, named with its address, the other host still runs', async () => {
    // An address inside the lab's own /24 that no host has: nothing leaves the lab segment.
    const prefix = info.subnet.split('/')[0].split('.').slice(0, 3).join('.');
    const dead = `${prefix}.99`;
    const base = await readLabInventory();
    const inv = path.join(info.dir, 'hostile-unreachable.yaml');
    writeFileSync(inv, base.replace(/^hosts:\n/m, `hosts:\n  ghost: { address: ${dead}, connect_timeout: 2, connect_retries: 0 }\n`));
    const pb = playbook('touch.yaml', '- hosts: ghost:node2\n  gather_facts: false\n  tasks:\n    - copy: { dest: /root/reached, content: "y\\n" }\n');
    const r = await rha(['run', pb, '-i', inv]);
    expect(r.code, r.all).toBe(3);
    expect(r.all).toMatch(new RegExp(`ghost \\(${dead.replace(/\./g, '\\.')}:22\\)[^\\n]*(timed out|unreachable|no route)`, 'i'));
    expect(recapOf(r.stdout).ghost).toMatchObject({ unreachable: 1 });
    expect(recapOf(r.stdout).node2).toMatchObject({ changed: 1, failed: 0 });
    await sh('node2', 'rm -f /root/reached');
  }, 60_000);
});

async function readLabInventory(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(info.inventoryPath, 'utf8');
}

describe('secrets with awkward characters, end to end', () => {
  const redisPw = `p#"'$ ü x\\y`;
  const vrrpPw = 'Vr:p=1;x';
  test('a pair provisioned with them: AUTH through the VIP, replication up, HEALTHY; the secrets in no output, process list or world-readable file', async () => {
    writeFileSync(path.join(info.dir, 'secrets', 'hostile.redis.pass'), redisPw + '\n', { mode: 0o600 });
    writeFileSync(path.join(info.dir, 'secrets', 'hostile.vrrp.pass'), vrrpPw + '\n', { mode: 0o600 });
    const base = await readLabInventory();
    const inv = path.join(info.dir, 'hostile-secrets.yaml');
    writeFileSync(
      inv,
      base.replace(/file: \.\/secrets\/pair1\.redis\.pass/, 'file: ./secrets/hostile.redis.pass').replace(/file: \.\/secrets\/pair1\.vrrp\.pass/, 'file: ./secrets/hostile.vrrp.pass'),
    );
    const loaded = await loadInventory(inv);
    const c = [...loaded.clusters.values()][0];
    expect((c.redis as { password: string }).password).toBe(redisPw);
    const secrets = [redisPw, vrrpPw, 'ü x'];

    // Watch both hosts' process lists for the whole provision.
    let watching = true;
    const seen: string[] = [];
    const watcher = (async () => {
      while (watching) {
        for (const h of ['node1', 'node2']) {
          const ps = await sh(h, 'ps -eo args').catch(() => undefined);
          if (ps) seen.push(ps.stdout);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const outputs: string[] = [];
    try {
      const p = await rha(['provision', inv, '-vv']);
      outputs.push(p.all);
      expect(p.code, p.all).toBe(0);
    } finally {
      watching = false;
      await watcher;
    }
    expect(seen.length).toBeGreaterThan(10);
    for (const s of secrets) expect(seen.filter((x) => x.includes(s)).length, `ps showed ${s}`).toBe(0);

    // Through the VIP with the password, replication up, status healthy.
    await until(async () => (await call(vipTarget(c), ['PING']).catch(() => '')) === 'PONG', 30_000, 'PONG through the VIP');
    expect(await call(vipTarget(c), ['SET', 'hostile', 'ok'])).toBe('OK');
    await expect(call({ ...vipTarget(c), password: 'wrong' }, ['PING'])).rejects.toThrow();
    const st = await rha(['status', inv]);
    outputs.push(st.all);
    expect(st.code, st.all).toBe(0);
    // HEALTHY includes the replica's link up and keepalived's check passing (src/pair/status.ts).
    expect(st.all).toContain('→ HEALTHY');

    // Every output format, diff included, on a re-run.
    for (const args of [['--diff', '-vv'], ['--output', 'json', '-vv'], ['--check', '--diff'], ['--output', 'pretty', '--diff']]) {
      const r = await rha(['provision', inv, ...args]);
      expect(r.code, r.all).toBe(0);
      outputs.push(r.all);
    }
    for (const s of secrets) for (const o of outputs) expect(o.includes(s), `output showed ${s}`).toBe(false);

    // Files on the hosts: the secrets are where they must be, and only in files others cannot read.
    for (const h of ['node1', 'node2']) {
      const list = await sh(h, "grep -rlF -e 'ü x' /etc /usr/local /var/lib/redis /var/log /run /root /tmp 2>/dev/null; true");
      const files = list.stdout.trim().split('\n').filter(Boolean);
      expect(files, h).toContain('/etc/redis/redis.conf');
      for (const f of files) {
        const mode = (await sh(h, `stat -c %a ${f}`)).stdout.trim();
        expect(Number.parseInt(mode, 8) & 0o004, `${h}:${f} mode ${mode}`).toBe(0);
      }
      const vrrp = await sh(h, `grep -rlF -e '${vrrpPw}' /etc /run /var/log /root /tmp 2>/dev/null; true`);
      for (const f of vrrp.stdout.trim().split('\n').filter(Boolean)) {
        const mode = (await sh(h, `stat -c %a ${f}`)).stdout.trim();
        expect(Number.parseInt(mode, 8) & 0o004, `${h}:${f} mode ${mode}`).toBe(0);
      }
    }
  }, 15 * 60_000);
});

describe('a changed host key on a running pair (issue 18)', () => {
  // Runs after the secrets test above, on the pair it provisioned. The VIP holder's recorded key is
  // swapped for another one: to rha, that host now presents a key it never saw (a replaced node,
  // or someone in the middle). Its peer cannot tell which node holds the data without it.
  test('the host is labelled "host key refused", its peer stops naming that refusal as the cause, exit 3; nothing changes', async () => {
    const inv = path.join(info.dir, 'hostile-secrets.yaml');
    const holders: string[] = [];
    const c = [...(await loadInventory(inv)).clusters.values()][0];
    for (const h of ['node1', 'node2']) {
      if ((await sh(h, `ip -o -4 addr show | grep -qF ' inet ${c.vip} ' && echo yes`)).stdout.trim() === 'yes') holders.push(h);
    }
    expect(holders, 'the secrets test left a pair with one VIP holder').toHaveLength(1);
    const [changed] = holders;
    const peer = changed === 'node1' ? 'node2' : 'node1';
    const addr = info.hosts.find((h) => h.name === changed)!.address;

    const other = path.join(work, 'hostile-other-key');
    rmSync(other, { force: true });
    rmSync(`${other}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'not this host', '-f', other]);
    const kh = readFileSync(info.knownHostsPath, 'utf8').split('\n').filter((l) => l && !l.startsWith(`${addr} `));
    const khFile = path.join(info.dir, 'hostile-known_hosts');
    const khText = [...kh, `${addr} ssh-ed25519 ${readFileSync(`${other}.pub`, 'utf8').split(' ')[1]}`, ''].join('\n');
    writeFileSync(khFile, khText, { mode: 0o600 });
    const changedInv = path.join(info.dir, 'hostile-hostkey.yaml');
    const text = readFileSync(inv, 'utf8');
    expect(text).toContain('known_hosts: ./known_hosts');
    writeFileSync(changedInv, text.replace('known_hosts: ./known_hosts', 'known_hosts: ./hostile-known_hosts'), { mode: 0o600 });

    const r = await rha(['provision', changedInv]);
    expect(r.code, r.all).toBe(3);
    // The host: a refusal, not an outage.
    expect(r.stdout).toMatch(new RegExp(`^\\[${changed}\\] host key refused: Gathering Facts — ${changed} \\(${addr.replace(/\./g, '\\.')}:22\\): host key changed: `, 'm'));
    expect(r.stdout).not.toMatch(new RegExp(`^\\[${changed}\\] unreachable`, 'm'));
    // The peer: stopped, naming the refusal (not "unreachable") as why it cannot decide.
    const peerLines = r.stdout.split('\n').filter((l) => l.startsWith(`[${peer}] failed:`));
    expect(peerLines, r.stdout).toHaveLength(1);
    expect(peerLines[0]).toContain(
      `: rha refused to connect to ${changed} because its SSH host key changed (see ${changed}'s error), so it cannot tell which node holds the data; ` +
        `if ${changed} was replaced deliberately, accept its new key (--accept-host-key ${changed}) and run again (`,
    );
    expect(peerLines[0]).not.toContain(`${changed} is unreachable`);
    expect(recapOf(r.stdout)[changed]).toMatchObject({ unreachable: 1, changed: 0 });
    expect(recapOf(r.stdout)[peer]).toMatchObject({ failed: 1, changed: 0 });
    // Nothing moved, nothing learned behind the user's back.
    expect((await sh(changed, `ip -o -4 addr show | grep -cF ' inet ${c.vip} '`)).stdout.trim()).toBe('1');
    expect(readFileSync(khFile, 'utf8')).toBe(khText);
    // rha status says the same: a refusal with the way to accept, not "unreachable".
    const st = await rha(['status', changedInv]);
    expect(st.code, st.all).not.toBe(0);
    expect(st.stdout).toMatch(new RegExp(`^  ${changed} +${addr.replace(/\./g, '\\.')} +- +host key refused `, 'm'));
    expect(st.stdout).toContain(`! ${changed}: rha refused to connect because its SSH host key changed; if it was replaced deliberately, accept the new key (--accept-host-key ${changed})`);
    expect(st.stdout).not.toContain(`${changed} is unreachable`);
  }, 5 * 60_000);
});
