/**
 * The connection layer against real OpenSSH servers (lab hosts): host keys (TOFU, verify,
 * replaced node), auth, exec (quoting, failures, secrets over stdin, concurrency, large stdin,
 * timeouts, abort), become through sudo, unreachable hosts and links dying mid-run.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { describeFailure, Secret } from '../../src/core/command.js';
import { UnreachableError, type HostConnectionSpec, type HostSpec } from '../../src/core/types.js';
import { connect, ConnectionPool, HostKeyChangedError, hostKeyFingerprint, parseKnownHosts } from '../../src/connection/index.js';
import type { SshConnection } from '../../src/connection/ssh.js';
import { labExec, labLink, labReplace } from '../../src/lab/index.js';
import { hostAddress, useLab } from '../support/lab.js';

const LAB = 'conn';
const lab = useLab(LAB, 2);
const work = mkdtempSync(path.join(tmpdir(), 'rha-conn-e2e-'));
// Our own known_hosts (in a folder that does not exist yet), not the lab's pre-filled one: TOFU is under test.
const knownHosts = path.join(work, 'ssh', 'known_hosts');
const open: SshConnection[] = [];

afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
});

function hostSpec(host: string, over: Partial<HostConnectionSpec> = {}): HostSpec {
  const info = lab();
  return {
    name: host,
    groups: ['all'],
    vars: {},
    connection: {
      address: hostAddress(info, host),
      port: 22,
      user: 'root',
      privateKey: info.privateKeyPath,
      become: false,
      knownHosts,
      connectTimeoutMs: 10_000,
      connectRetries: 0,
      ...over,
    },
  };
}

async function conn(host: string, over: Partial<HostConnectionSpec> = {}, opts: Parameters<typeof connect>[1] = {}) {
  const c = await connect(hostSpec(host, over), opts);
  open.push(c);
  return c;
}

/** The host's ed25519 public key blob (base64), read inside the host without SSH. */
async function hostEd25519(host: string): Promise<string> {
  const r = await labExec(LAB, host, ['cat', '/etc/ssh/ssh_host_ed25519_key.pub']);
  return r.stdout.split(' ')[1];
}

describe('host keys', () => {
  test('first contact records the key (file and folder created, 0600); the next connection verifies it', async () => {
    expect(existsSync(knownHosts)).toBe(false);
    const events: string[] = [];
    const c = await conn('node1', {}, { onHostKey: (e) => events.push(`${e.host} ${e.kind} ${e.fingerprint}`) });
    const key = await hostEd25519('node1');
    expect(events).toEqual([`node1 learned ${hostKeyFingerprint(key)}`]);
    expect(readFileSync(knownHosts, 'utf8')).toBe(`${hostAddress(lab(), 'node1')} ssh-ed25519 ${key}\n`);
    expect(statSync(knownHosts).mode & 0o777).toBe(0o600);
    expect((await c.exec({ argv: ['hostname'] })).stdout).toBe('node1\n');

    const again = await conn('node1', {}, { onHostKey: (e) => events.push(e.kind) });
    expect(events).toHaveLength(1);
    expect((await again.exec({ argv: ['true'] })).ok).toBe(true);
    expect(readFileSync(knownHosts, 'utf8')).toBe(`${hostAddress(lab(), 'node1')} ssh-ed25519 ${key}\n`);
  });
});

describe('exec', () => {
  test('argv is quoted once, cwd and env apply, output is UTF-8', async () => {
    const c = await conn('node1');
    const r = await c.exec({ argv: ['printf', '%s|', 'a b', "it's", '$HOME', '*', 'žluťoučký 🐎'] });
    expect(r).toMatchObject({ ok: true, code: 0, stdout: "a b|it's|$HOME|*|žluťoučký 🐎|", stderr: '' });
    expect((await c.exec({ argv: ['pwd'], cwd: '/usr/share' })).stdout).toBe('/usr/share\n');
    const env = await c.exec({ argv: ['sh', '-c', 'echo "$A/$B"'], env: { A: 'x y', B: "'q'" } });
    expect(env.stdout).toBe("x y/'q'\n");
  });

  test('a failing command is a result: exit code, stderr, printable display', async () => {
    const c = await conn('node1');
    const r = await c.exec({ argv: ['sh', '-c', 'echo out; echo oops >&2; exit 3'] });
    expect(r).toMatchObject({ ok: false, code: 3, stdout: 'out\n', stderr: 'oops\n', display: `sh -c 'echo out; echo oops >&2; exit 3'` });
    expect(describeFailure(r)).toBe(`sh -c 'echo out; echo oops >&2; exit 3': exit 3\noops`);
    const missing = await c.exec({ argv: ['no-such-command-rha'] });
    expect(missing.code).toBe(127);
    expect(missing.ok).toBe(false);
    const badCwd = await c.exec({ argv: ['true'], cwd: '/no/such/dir' });
    expect(badCwd.ok).toBe(false);
    expect(badCwd.stderr).toContain('/no/such/dir');
  });

  test('a secret env var reaches the command over stdin and is not in ps -ef while it runs', async () => {
    const c = await conn('node1');
    const secret = `S3cr3t-${randomBytes(6).toString('hex')}`;
    const running = c.exec({
      argv: ['sh', '-c', 'echo ${#TOKEN}; sleep 3; echo done'],
      env: { TOKEN: new Secret(secret), PLAIN: 'visible' },
    });
    await new Promise((r) => setTimeout(r, 1000));
    const ps = await labExec(LAB, 'node1', ['ps', '-ef']);
    expect(ps.stdout).toContain('sleep 3'); // we looked while it ran
    expect(ps.stdout).not.toContain(secret);
    const r = await running;
    expect(r.stdout).toBe(`${secret.length}\ndone\n`);
    expect(r.display).toBe(`TOKEN=*** PLAIN=visible sh -c 'echo \${#TOKEN}; sleep 3; echo done'`);
    // The secret comes first on stdin; the command's own stdin follows intact.
    const cat = await c.exec({ argv: ['cat'], env: { TOKEN: new Secret(secret) }, stdin: 'payload\n' });
    expect(cat.stdout).toBe('payload\n');
  });

  test('20 commands at once on one connection all complete', async () => {
    const c = await conn('node1');
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => c.exec({ argv: ['sh', '-c', 'sleep 1; echo "$1"', 'sh', String(i)] })),
    );
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  test('a 20 MB random stdin arrives intact (sha256 on the host)', async () => {
    const c = await conn('node1');
    const payload = randomBytes(20 * 1024 * 1024);
    const want = createHash('sha256').update(payload).digest('hex');
    const r = await c.exec({ argv: ['sha256sum'], stdin: payload, timeoutMs: 120_000 });
    expect(r.stdout).toBe(`${want}  -\n`);
  });

  test('a timeout kills the remote command and reports timedOut', async () => {
    const c = await conn('node1');
    const started = Date.now();
    const r = await c.exec({ argv: ['sleep', '47'], timeoutMs: 1000 });
    expect(r).toMatchObject({ ok: false, code: null, timedOut: true });
    expect(Date.now() - started).toBeLessThan(2500);
    expect(describeFailure(r)).toBe('sleep 47: timed out');
    await new Promise((res) => setTimeout(res, 500));
    const ps = await labExec(LAB, 'node1', ['ps', '-eo', 'args']);
    expect(ps.stdout.split('\n')).not.toContain('sleep 47');
    // The connection is still usable.
    expect((await c.exec({ argv: ['true'] })).ok).toBe(true);
  });

  test('an AbortSignal aborts running commands', async () => {
    const ac = new AbortController();
    const c = await conn('node1', {}, { signal: ac.signal });
    const started = Date.now();
    const running = c.exec({ argv: ['sleep', '48'] });
    setTimeout(() => ac.abort(), 500);
    const r = await running;
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('rha: interrupted');
    expect(Date.now() - started).toBeLessThan(2000);
    const ps = await labExec(LAB, 'node1', ['ps', '-eo', 'args']);
    expect(ps.stdout.split('\n')).not.toContain('sleep 48');
  });
});
