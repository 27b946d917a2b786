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
import { run } from '../../src/lab/sh.js';
import { hostAddress, useLab } from '../support/lab.js';

// The lab API takes the full name: useLab prefixes it with RHA_TEST_LAB_PREFIX.
const LAB = `${process.env.RHA_TEST_LAB_PREFIX ?? ''}conn`;
const lab = useLab('conn', 2);
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

  test('bursts of short commands: no channel refused by sshd while it frees the last session', async () => {
    // sshd frees a session slot a moment after our side saw the channel close; without retrying
    // the open, about one command in thirty of such bursts failed with "Channel open failure".
    const c = await conn('node1');
    for (let round = 0; round < 10; round++) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => c.exec({ argv: ['sh', '-c', 'sleep 0.1; echo "$1"', 'sh', String(i)] })));
      expect(rs.map((r) => (r.ok ? r.stdout : r.stderr))).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
    }
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

describe('the long-lived shell (plain commands without stdin, secrets or sudo)', () => {
  /** A plain command's parent as "NAME PID": the shell that ran it (setsid keeps the parent), or sshd. */
  const parentOf = async (c: SshConnection) =>
    (await c.exec({ argv: ['sh', '-c', 'p=$(ps -o ppid= -p $$); echo "$(ps -o comm= -p $p) $p" | tr -s " "'] })).stdout.trim();

  test('consecutive plain commands share one shell; stdin and secrets keep their own channel', async () => {
    const c = await conn('node2');
    const first = await parentOf(c);
    expect(first).toMatch(/^sh \d+$/);
    expect(await parentOf(c)).toBe(first);
    expect(await parentOf(c)).toBe(first);
    // With stdin, the command runs in a fresh sshd session: its parent is not the shell.
    const withStdin = await c.exec({ argv: ['sh', '-c', 'cat >/dev/null; ps -o comm= -p $(ps -o ppid= -p $$)'], stdin: 'x' });
    expect(withStdin.stdout.trim()).toBe('sshd');
    // Each command is its own session and process group, as with an exec channel.
    const ids = await c.exec({ argv: ['sh', '-c', 'ps -o sid=,pgid= -p $$; echo $$'] });
    const [sidPgid, pid] = ids.stdout.trim().split('\n');
    expect(sidPgid.trim().split(/\s+/)).toEqual([pid, pid]);
  });

  test('output is exact: no trailing newline, marker look-alikes, stderr apart, binary bytes, large output', async () => {
    const c = await conn('node2');
    const r = await c.exec({ argv: ['sh', '-c', 'printf "no newline"; printf "[rha-end:x:0]\\n[rha-begin:y]" >&2; exit 4'] });
    expect(r).toMatchObject({ ok: false, code: 4, stdout: 'no newline', stderr: '[rha-end:x:0]\n[rha-begin:y]' });
    const big = await c.exec({ argv: ['sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" a'] });
    expect(big.stdout.length).toBe(3_000_000);
    expect(big.stdout.replace(/a/g, '')).toBe('');
    const empty = await c.exec({ argv: ['true'] });
    expect(empty).toMatchObject({ ok: true, code: 0, stdout: '', stderr: '' });
    // Commands read /dev/null, not the shell's own input (which carries the next commands).
    const stdinless = await c.exec({ argv: ['sh', '-c', 'cat; echo "rc=$?"'] });
    expect(stdinless.stdout).toBe('rc=0\n');
  });

  test('a daemon started by a command survives it, and its later output does not leak into the next result', async () => {
    const c = await conn('node2');
    const r = await c.exec({ argv: ['sh', '-c', '(sleep 1; echo late-out; echo late-err >&2) & echo started'] });
    expect(r.stdout).toBe('started\n');
    await new Promise((res) => setTimeout(res, 1500));
    const next = await c.exec({ argv: ['echo', 'next'] });
    expect(next).toMatchObject({ stdout: 'next\n', stderr: '' });
  });

  test('the shell killed under a running command: that command fails clearly, the next one runs in a new shell', async () => {
    const c = await conn('node2');
    const shell = await parentOf(c);
    const shellPid = shell.split(' ')[1];
    const running = c.exec({ argv: ['sleep', '30'] });
    await new Promise((res) => setTimeout(res, 300));
    await labExec(LAB, 'node2', ['kill', '-KILL', shellPid]);
    const started = Date.now();
    const r = await running;
    expect(r.ok).toBe(false);
    expect(r.stderr).toBe('rha: the remote shell on node2 ended while running the command\n');
    // Told by the shell's exit, not by the channel's close (the orphaned sleep holds its output open).
    expect(Date.now() - started).toBeLessThan(10_000);
    await labExec(LAB, 'node2', ['pkill', '-x', 'sleep']);
    const after = await parentOf(c);
    expect(after).toMatch(/^sh \d+$/);
    expect(after).not.toBe(shell);
  });

  test('without setsid on the host, every command keeps its own exec channel', async () => {
    await labExec(LAB, 'node2', ['mv', '/usr/bin/setsid', '/usr/bin/setsid.rha-off']);
    try {
      const c = await conn('node2');
      expect(await parentOf(c)).toMatch(/^sshd \d+$/);
      expect(await parentOf(c)).toMatch(/^sshd \d+$/);
      expect((await c.exec({ argv: ['echo', 'ok'] })).stdout).toBe('ok\n');
    } finally {
      await labExec(LAB, 'node2', ['mv', '/usr/bin/setsid.rha-off', '/usr/bin/setsid']);
    }
  });
});

describe('authentication', () => {
  test('a key the host does not accept: clear message, no retries', async () => {
    const other = path.join(work, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const err = await connect(hostSpec('node1', { privateKey: other, connectRetries: 2 })).catch((e) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect(err.message).toBe(`node1 (${hostAddress(lab(), 'node1')}:22): authentication failed for user root (tried: publickey ${other})`);
  });

  test('a private key file that cannot be read', async () => {
    const err = await connect(hostSpec('node1', { privateKey: path.join(work, 'missing') })).catch((e) => e);
    expect(err.message).toBe(`node1 (${hostAddress(lab(), 'node1')}:22): cannot read private key ${path.join(work, 'missing')}: ENOENT`);
  });
});

describe('become through sudo, and password auth', () => {
  const PW = 'Adm1n pw-' + randomBytes(4).toString('hex');
  const secretOf = (v: string) => ({ source: 'test', value: v });

  test('setup: sudo installed, users nopw (NOPASSWD), admin (password), plain (not in sudoers)', async () => {
    const root = await conn('node1');
    let r = await root.exec({ argv: ['sh', '-c', 'apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq sudo'], timeoutMs: 120_000 });
    if (!r.ok) {
      // The lab's offline apt repository has no sudo: ship Debian's package over this connection.
      const dir = mkdtempSync(path.join(tmpdir(), 'rha-sudo-deb-'));
      const dl = await run(['apt-get', 'download', 'sudo'], { cwd: dir, timeoutMs: 120_000 });
      expect(dl.ok, dl.stderr).toBe(true);
      const deb = readFileSync(path.join(dir, readdirSync(dir).find((f) => f.endsWith('.deb'))!));
      r = await root.exec({ argv: ['sh', '-c', 'cat > /tmp/sudo.deb && dpkg -i /tmp/sudo.deb'], stdin: deb, timeoutMs: 120_000 });
    }
    expect(r.ok, r.stderr).toBe(true);
    const setup = [
      'for u in nopw admin plain; do useradd -m -s /bin/sh "$u"; mkdir -p /home/$u/.ssh;',
      'cp /root/.ssh/authorized_keys /home/$u/.ssh/; chown -R $u: /home/$u/.ssh; done',
      "echo 'nopw ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/nopw",
      "echo 'admin ALL=(ALL) ALL' > /etc/sudoers.d/admin",
      'chmod 0440 /etc/sudoers.d/nopw /etc/sudoers.d/admin',
      // Passwords over stdin: `chpasswd` reads NAME:PASSWORD lines.
      'chpasswd',
    ].join('\n');
    const u = await root.exec({ argv: ['sh', '-c', setup], stdin: `admin:${PW}\nplain:${PW}\n` });
    expect(u.ok, u.stderr).toBe(true);
  });

  test('password authentication, and its failure message', async () => {
    const c = await conn('node1', { user: 'admin', privateKey: undefined, password: secretOf(PW) });
    expect((await c.exec({ argv: ['id', '-un'] })).stdout).toBe('admin\n');
    const err = await connect(hostSpec('node1', { user: 'admin', privateKey: undefined, password: secretOf('wrong') })).catch((e) => e);
    expect(err.message).toBe(`node1 (${hostAddress(lab(), 'node1')}:22): authentication failed for user admin (tried: password)`);
  });

  test('passwordless sudo: root, secrets and stdin pass through', async () => {
    const c = await conn('node1', { user: 'nopw' });
    expect((await c.exec({ argv: ['id', '-u'] })).stdout).toBe(`${await uid('nopw')}\n`);
    expect((await c.exec({ argv: ['id', '-u'], become: true })).stdout).toBe('0\n');
    const s = await c.exec({ argv: ['sh', '-c', 'echo ${#S}; cat'], env: { S: new Secret('twelve chars') }, stdin: 'in\n', become: true });
    expect(s).toMatchObject({ ok: true, stdout: '12\nin\n', stderr: '' });
    const failing = await c.exec({ argv: ['sh', '-c', 'echo bad >&2; exit 4'], become: true });
    expect(failing).toMatchObject({ ok: false, code: 4, stderr: 'bad\n' });
    // A timed-out become command (a root process under sudo) is killed too.
    const slow = await c.exec({ argv: ['sleep', '49'], become: true, timeoutMs: 1000 });
    expect(slow).toMatchObject({ ok: false, timedOut: true });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await labExec(LAB, 'node1', ['ps', '-eo', 'args'])).stdout.split('\n')).not.toContain('sleep 49');
  });

  test('NOPASSWD with a become password configured: the password never reaches the command stdin', async () => {
    const c = await conn('node1', { user: 'nopw', becomePassword: secretOf(PW) });
    expect((await c.exec({ argv: ['cat'], stdin: 'data\n', become: true })).stdout).toBe('data\n');
  });

  test('sudo with a password: prompted, answered, output clean', async () => {
    const c = await conn('node1', { user: 'admin', becomePassword: secretOf(PW) });
    const r = await c.exec({ argv: ['sh', '-c', 'id -u; echo ${#S}; cat'], env: { S: new Secret('abc') }, stdin: 'data\n', become: true });
    expect(r).toMatchObject({ ok: true, code: 0, stdout: '0\n3\ndata\n', stderr: '' });
    // Again, with sudo's cached credentials (it may not prompt): still no password on stdin.
    expect((await c.exec({ argv: ['cat'], stdin: 'x\n', become: true })).stdout).toBe('x\n');
    const ps = await labExec(LAB, 'node1', ['ps', '-ef']);
    expect(ps.stdout).not.toContain(PW);
  });

  test('wrong sudo password / none configured / not in sudoers: a failed result with a clear stderr, no hang', async () => {
    const wrong = await conn('node1', { user: 'admin', becomePassword: secretOf('not-it') });
    const started = Date.now();
    const r = await wrong.exec({ argv: ['id', '-u'], become: true, timeoutMs: 30_000 });
    expect(r.ok).toBe(false);
    expect(r.timedOut).toBeUndefined();
    expect(r.stderr.split('\n')[0]).toBe('become failed on node1: sudo rejected the become password for user admin');
    expect(r.stderr).not.toContain('rha-sudo-password');
    expect(Date.now() - started).toBeLessThan(20_000);

    const none = await conn('node1', { user: 'admin' });
    const n = await none.exec({ argv: ['id', '-u'], become: true });
    expect(n).toMatchObject({ ok: false, code: 1 });
    expect(n.stderr).toBe(
      'become failed on node1: sudo needs a password for user admin (set become_password in the inventory)\nsudo: a password is required\n',
    );

    const plain = await conn('node1', { user: 'plain', becomePassword: secretOf(PW) });
    const p = await plain.exec({ argv: ['id', '-u'], become: true });
    expect(p.ok).toBe(false);
    expect(p.stderr.split('\n')[0]).toBe('become failed on node1: user plain may not run commands as root with sudo');
  });

  test('become after sudo proved to work: one root shell started by sudo once runs the commands', async () => {
    // "NAME PID PARENT-NAME": the command's parent process, and that one's parent.
    const parents = 'p=$(ps -o ppid= -p $$); q=$(ps -o ppid= -p $p); echo "$(ps -o user=,comm= -p $p) $p $(ps -o comm= -p $q)" | tr -s " "';
    for (const [user, over] of [
      ['nopw', {}],
      ['admin', { becomePassword: secretOf(PW) }],
    ] as const) {
      const c = await conn('node1', { user, ...over });
      // The first become command takes an exec channel (sudo not yet proven on this connection).
      // Its parent is sudo itself, under sshd.
      expect((await c.exec({ argv: ['sh', '-c', parents], become: true })).stdout).toMatch(/^root sudo \d+ sshd\n$/);
      const a = await c.exec({ argv: ['sh', '-c', parents], become: true });
      const b = await c.exec({ argv: ['sh', '-c', parents], become: true });
      expect(a.stdout, user).toMatch(/^root sh \d+ sudo\n$/);
      expect(b.stdout).toBe(a.stdout); // the same root shell, under the one sudo
      expect((await c.exec({ argv: ['id', '-u'], become: true })).stdout).toBe('0\n');
      // Without become, the login user's own shell.
      expect((await c.exec({ argv: ['id', '-un'] })).stdout).toBe(`${user}\n`);
      // A timeout still kills the root command (through sudo, from another channel).
      const slow = await c.exec({ argv: ['sleep', '51'], become: true, timeoutMs: 1000 });
      expect(slow).toMatchObject({ ok: false, timedOut: true });
      await new Promise((r) => setTimeout(r, 1500));
      expect((await labExec(LAB, 'node1', ['ps', '-eo', 'args'])).stdout.split('\n')).not.toContain('sleep 51');
    }
    expect((await labExec(LAB, 'node1', ['ps', '-ef'])).stdout).not.toContain(PW);
  });

  test('sudo refusing: every become command fails with the reason, no root shell is tried', async () => {
    const c = await conn('node1', { user: 'plain', becomePassword: secretOf(PW) });
    for (let i = 0; i < 3; i++) {
      const r = await c.exec({ argv: ['id', '-u'], become: true });
      expect(r.ok).toBe(false);
      expect(r.stderr.split('\n')[0]).toBe('become failed on node1: user plain may not run commands as root with sudo');
    }
  });

  test('no sudo on the host', async () => {
    // The lab's root filesystem has sudo (lab logins use it): this host's copy goes.
    const setup = await labExec(LAB, 'node2', ['sh', '-c',
      'rm -f /usr/bin/sudo && useradd -m -s /bin/sh nosudo && mkdir -p /home/nosudo/.ssh && cp /root/.ssh/authorized_keys /home/nosudo/.ssh/ && chown -R nosudo: /home/nosudo/.ssh']);
    expect(setup.code, setup.stderr).toBe(0);
    const c = await conn('node2', { user: 'nosudo' });
    const r = await c.exec({ argv: ['id', '-u'], become: true });
    expect(r).toMatchObject({ ok: false, code: 127 });
    expect(r.stderr.split('\n')[0]).toBe('become failed on node2: sudo is not installed (install it, or connect as root)');
  });

  async function uid(user: string): Promise<string> {
    return (await labExec(LAB, 'node1', ['id', '-u', user])).stdout.trim();
  }
});

describe('unreachable hosts', () => {
  test('link down: connect times out after the configured time, with the retries counted', async () => {
    await labLink(LAB, 'node2', 'down');
    try {
      const started = Date.now();
      const err = await connect(hostSpec('node2', { connectTimeoutMs: 1500, connectRetries: 1 })).catch((e) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect(err.hostName).toBe('node2');
      expect(err.message).toBe(`node2 (${hostAddress(lab(), 'node2')}:22): connection timed out after 1.5 s (2 attempts)`);
      expect(Date.now() - started).toBeLessThan(6000);
    } finally {
      await labLink(LAB, 'node2', 'up');
    }
  });

  test('the link dying mid-run: running and later execs reject with UnreachableError; the pool reconnects', async () => {
    const pool = new ConnectionPool();
    const spec = hostSpec('node2', { connectTimeoutMs: 3000 });
    const c = await pool.get(spec);
    const running = c.exec({ argv: ['sleep', '60'] });
    await new Promise((r) => setTimeout(r, 300));
    await labLink(LAB, 'node2', 'down');
    try {
      const started = Date.now();
      const err = await running.catch((e) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect(err.message).toMatch(new RegExp(`^node2 \\(${hostAddress(lab(), 'node2').replace(/\./g, '\\.')}:22\\): connection lost`));
      expect(Date.now() - started).toBeLessThan(15_000);
      await expect(c.exec({ argv: ['true'] })).rejects.toBeInstanceOf(UnreachableError);
    } finally {
      await labLink(LAB, 'node2', 'up');
    }
    const again = await pool.get(spec);
    expect(again).not.toBe(c);
    expect((await again.exec({ argv: ['true'] })).ok).toBe(true);
    await pool.closeAll();
  });

  test('an idle connection whose link died: the next command finds out (keepalives run while commands do)', async () => {
    const pool = new ConnectionPool();
    const spec = hostSpec('node2', { connectTimeoutMs: 3000 });
    const c = await pool.get(spec);
    expect((await c.exec({ argv: ['true'] })).ok).toBe(true);
    await labLink(LAB, 'node2', 'down');
    try {
      const err = await c.exec({ argv: ['true'] }).catch((e) => e);
      expect(err).toBeInstanceOf(UnreachableError);
      expect(err.message).toMatch(/: connection lost \(Keepalive timeout\)$/);
    } finally {
      await labLink(LAB, 'node2', 'up');
    }
    await pool.closeAll();
  });

  test('the pool shares one connect between concurrent get() calls', async () => {
    const pool = new ConnectionPool();
    const spec = hostSpec('node2');
    const all = await Promise.all(Array.from({ length: 5 }, () => pool.get(spec)));
    expect(new Set(all).size).toBe(1);
    expect(await pool.get(spec)).toBe(all[0]);
    await pool.closeAll();
    await expect(all[0].exec({ argv: ['true'] })).rejects.toThrow(/connection closed/);
  });
});

describe('a replaced node (new host key)', () => {
  test('the changed key stops the host with the accept instruction; accepting rewrites known_hosts', async () => {
    const address = hostAddress(lab(), 'node1');
    const oldKey = await hostEd25519('node1');
    await labReplace(LAB, 'node1');
    const newKey = await hostEd25519('node1');
    expect(newKey).not.toBe(oldKey);
    const before = readFileSync(knownHosts, 'utf8');
    const line = parseKnownHosts(before).find((e) => e.hosts === address)!.line;

    const err = await connect(hostSpec('node1'), { inventoryPath: 'lab.yaml' }).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyChangedError);
    expect(err).toBeInstanceOf(UnreachableError);
    expect(err.message).toBe(
      `node1 (${address}:22): host key changed: known_hosts ${knownHosts}:${line} has ssh-ed25519 ${hostKeyFingerprint(oldKey)}, ` +
        `the host now presents ssh-ed25519 ${hostKeyFingerprint(newKey)}. If node1 was replaced deliberately, accept its new key with ` +
        '`rha hosts accept node1 -i lab.yaml` or run with `--accept-host-key node1`; otherwise someone may be intercepting the connection.',
    );
    expect(readFileSync(knownHosts, 'utf8')).toBe(before);

    // Accepting another host changes nothing for this one.
    await expect(connect(hostSpec('node1'), { acceptChangedHostKeys: new Set(['node2']) })).rejects.toBeInstanceOf(HostKeyChangedError);

    const events: string[] = [];
    const c = await conn('node1', {}, { acceptChangedHostKeys: new Set(['node1']), onHostKey: (e) => events.push(e.kind) });
    expect(events).toEqual(['replaced']);
    expect((await c.exec({ argv: ['hostname'] })).stdout).toBe('node1\n');
    const after = parseKnownHosts(readFileSync(knownHosts, 'utf8'));
    expect(after.filter((e) => e.hosts === address).map((e) => e.key)).toEqual([newKey]);
    expect(after.some((e) => e.hosts === hostAddress(lab(), 'node2'))).toBe(true);

    // From now on the new key is simply known.
    expect((await (await conn('node1')).exec({ argv: ['true'] })).ok).toBe(true);
  });
});
