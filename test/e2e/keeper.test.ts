/**
 * The keeper (src/cli/keeper.ts): `rha run` and `rha provision` outside a terminal run in a warm
 * rha process that keeps their SSH connections, like Ansible's ControlPersist. On real lab hosts:
 * the second run reuses the first one's connection (same sshd process on the host); output and
 * exit codes are those of a run in its own process; Ctrl-C and a killed client still stop the run
 * and release the lock; a busy keeper sends the next command back to run on its own; a connection
 * that died while kept (host replaced, link down) is never handed to a task; the keeper ends when
 * idle and holds no secret where others could read it.
 *
 * Each test gets its own cache folder (XDG_CACHE_HOME), so its own keeper, stopped at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { labExec, type LabInfo } from '../../src/lab/index.js';
import { useLab } from '../support/lab.js';
import { recapOf, rha, RHA, waitFor } from '../support/rha.js';

const lab = useLab('keeper', 2);
const work = mkdtempSync(path.join(tmpdir(), 'rha-keeper-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let info: LabInfo;
beforeAll(() => {
  info = lab();
});

const sh = (host: string, script: string) => labExec(info.name, host, ['sh', '-c', script]);

async function until(probe: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  if (!(await waitFor(async () => (await probe()) || undefined, ms))) throw new Error(`timed out waiting for ${what}`);
}

function playbook(name: string, text: string): string {
  const f = path.join(work, name);
  writeFileSync(f, text);
  return f;
}

// A task that writes the pid of the sshd process its command runs under to /tmp/sshd-pid: the
// same pid in two runs means the same SSH connection.
const SSHD_PID = `p=$PPID; while [ "$p" -gt 1 ] && [ "$(cat /proc/$p/comm)" != sshd ]; do p=$(cut -d" " -f4 /proc/$p/stat); done; echo $p > /tmp/sshd-pid`;
const whoami = () =>
  playbook('sshd-pid.yaml', `- hosts: all\n  gather_facts: false\n  tasks:\n    - name: which connection\n      command: { argv: [sh, -c, '${SSHD_PID}'] }\n`);

/** The sshd pid the last whoami run on each host ran under. */
async function sshdPids(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const h of ['node1', 'node2']) out[h] = (await sh(h, 'cat /tmp/sshd-pid')).stdout.trim();
  return out;
}

let cache: string;
let env: NodeJS.ProcessEnv | undefined;
const fresh = () => {
  cache = mkdtempSync(path.join(work, 'cache-'));
  env = { XDG_CACHE_HOME: cache };
};
afterEach(async () => {
  if (env) await rha(['keeper', 'stop'], { env });
});

interface KeeperStatus {
  pid: number;
  runs: number;
  keptConnections: number;
  busy: boolean;
}
async function keepers(): Promise<KeeperStatus[]> {
  const r = await rha(['keeper', 'status', '--json'], { env });
  expect(r.code, r.all).toBe(0);
  return JSON.parse(r.stdout) as KeeperStatus[];
}

/** Starts `rha ARGS` as a child we can signal. */
function start(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [RHA, ...args], { env: { ...process.env, CI: 'true', ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; all: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, all: stdout + stderr })),
  );
  return { child, done };
}

describe('runs through the keeper', () => {
  test('the second run reuses the first run\'s SSH connection; RHA_KEEPER=off connects afresh and starts no keeper', async () => {
    fresh();
    const pb = whoami();
    const a = await rha(['run', pb, '-i', info.inventoryPath], { env });
    expect(a.code, a.all).toBe(0);
    const pa = await sshdPids();
    const k1 = await keepers();
    expect(k1).toHaveLength(1);
    expect(k1[0]).toMatchObject({ runs: 1, keptConnections: 2, busy: false });
    const b = await rha(['run', pb, '-i', info.inventoryPath], { env });
    expect(b.code, b.all).toBe(0);
    expect(pa.node1).toMatch(/^\d+$/);
    expect(pa.node2).toMatch(/^\d+$/);
    expect(await sshdPids()).toEqual(pa);
    // The kept connection's sshd is still there between runs.
    expect((await sh('node1', `test -d /proc/${pa.node1} && cat /proc/${pa.node1}/comm`)).stdout.trim()).toBe('sshd');
    expect((await keepers())[0]).toMatchObject({ pid: k1[0].pid, runs: 2 });

    // Off: this process connects itself, and closes its connection at the end.
    const c = await rha(['run', pb, '-i', info.inventoryPath], { env: { ...env, RHA_KEEPER: 'off' } });
    expect(c.code, c.all).toBe(0);
    const pc = await sshdPids();
    expect(pc.node1).toBeDefined();
    expect(pc.node1).not.toBe(pa.node1);
    expect((await keepers())[0].runs).toBe(2);
    await until(async () => (await sh('node1', `test -d /proc/${pc.node1}`)).code !== 0, 10_000, 'the own-process connection to close');

    const stopped = await rha(['keeper', 'stop'], { env });
    expect(stopped.stdout).toContain('stopped 1 keeper');
    expect(await keepers()).toEqual([]);
    // `keeper stop` returns once the process has exited (it writes its code cache on the way out).
    expect(() => process.kill(k1[0].pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    // Stopping closes the kept connections on the hosts too.
    await until(async () => (await sh('node1', `test -d /proc/${pa.node1}`)).code !== 0, 10_000, 'the kept connection to close');
    const d = await rha(['run', pb, '-i', info.inventoryPath], { env: { ...env, RHA_KEEPER: 'off' } });
    expect(d.code, d.all).toBe(0);
    expect(await keepers()).toEqual([]);
  }, 120_000);

  test('at a terminal: the keeper draws the listr2 display in colour for it; NO_COLOR or a terminal without colours runs on its own', async () => {
    fresh();
    const pb = whoami();
    // A real pseudo-terminal (util-linux `script`), sized as a terminal window is; no CI variable.
    const atTerminal = (extra: NodeJS.ProcessEnv) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const cmd = `stty cols 100 rows 30; exec ${process.execPath} ${RHA} run ${pb} -i ${info.inventoryPath}`;
        const base = { ...process.env };
        delete base.CI;
        const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...base, TERM: 'xterm-256color', ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('close', (code) => resolve({ code, out }));
      });
    const a = await atTerminal({});
    expect(a.code, a.out).toBe(0);
    const k = await keepers();
    expect(k).toHaveLength(1);
    expect(k[0].runs).toBe(1);
    const pa = await sshdPids();
    // listr2's display: the cursor hidden while it draws, lines redrawn in place, colour, and the
    // play's title; the cursor shown again at the end.
    expect(a.out).toContain('\x1b[?25l');
    expect(a.out).toContain('\x1b[1A');
    expect(a.out).toMatch(/\x1b\[3\dm/);
    expect(a.out).toContain('which connection');
    expect(a.out.trimEnd().endsWith('\x1b[?25h') || a.out.lastIndexOf('\x1b[?25h') > a.out.lastIndexOf('\x1b[?25l')).toBe(true);
    // The second terminal run reuses the kept connection.
    const b = await atTerminal({});
    expect(b.code, b.out).toBe(0);
    expect((await keepers())[0].runs).toBe(2);
    expect(await sshdPids()).toEqual(pa);
    // NO_COLOR: the keeper would draw in colour, so the run is this process's own (and uncoloured).
    const c = await atTerminal({ NO_COLOR: '1' });
    expect(c.code, c.out).toBe(0);
    expect((await keepers())[0].runs).toBe(2);
    expect(c.out).not.toMatch(/\x1b\[3\dm/);
    expect((await sshdPids()).node1).not.toBe(pa.node1);
  }, 120_000);

  test('same output and exit codes as a run in its own process: success, a failed task, invalid input', async () => {
    fresh();
    const ok = playbook('ok.yaml', '- hosts: all\n  gather_facts: false\n  tasks:\n    - name: say hi\n      command: { argv: [echo, hi] }\n');
    const bad = playbook('bad.yaml', '- hosts: node2\n  gather_facts: false\n  tasks:\n    - name: fail here\n      command: { argv: [sh, -c, "echo broken >&2; exit 7"] }\n');
    const invalid = playbook('invalid.yaml', '- hosts: all\n  tasks:\n    - name: nonsense\n      no_such_module: {}\n');
    // Timings aside; the hosts of one task report in the order they finish, which may differ.
    const strip = (s: string) => {
      const lines = s.replace(/\d+(\.\d+)?\s*m?s\b/g, 'T').split('\n');
      const out: string[] = [];
      for (let i = 0; i < lines.length; ) {
        let j = i;
        while (j < lines.length && lines[j].startsWith('[')) j++;
        if (j > i) out.push(...lines.slice(i, j).sort());
        else out.push(lines[j++]);
        i = j;
      }
      return out.join('\n');
    };
    for (const [pb, code] of [[ok, 0], [bad, 2], [invalid, 4]] as const) {
      const own = await rha(['run', pb, '-i', info.inventoryPath], { env: { ...env, RHA_KEEPER: 'off' } });
      await rha(['run', pb, '-i', info.inventoryPath], { env }); // starts the keeper, or warms it
      const kept = await rha(['run', pb, '-i', info.inventoryPath], { env });
      expect(own.code, own.all).toBe(code);
      expect(kept.code, kept.all).toBe(code);
      expect(strip(kept.stdout)).toBe(strip(own.stdout));
      expect(strip(kept.stderr)).toBe(strip(own.stderr));
    }
    expect((await keepers())[0].runs).toBe(6);
  }, 120_000);
});

describe('interrupting a run in the keeper', () => {
  const slow = () =>
    playbook(
      'slow.yaml',
      '- hosts: node1\n  gather_facts: false\n  tasks:\n    - name: long command\n      command: sleep 300\n    - name: never reached\n      copy: { dest: /etc/rha-keeper-never.conf, content: "x\\n" }\n',
    );

  test('Ctrl-C in the client: exit 130, the remote command stopped, the lock released, the keeper serves the next run', async () => {
    fresh();
    const pb = slow();
    const run = start(['run', pb, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code === 0, 30_000, 'sleep 300 on node1');
    expect((await keepers())[0].busy).toBe(true);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.all).toBe(130);
    expect(r.all).toContain('interrupting: no new task starts, running commands are stopped');
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code !== 0, 10_000, 'the remote sleep to be stopped');
    expect((await sh('node1', 'cat /run/rha.lock')).stdout).toBe('');
    expect((await sh('node1', 'test -e /etc/rha-keeper-never.conf')).code).not.toBe(0);
    const again = await rha(['run', whoami(), '-i', info.inventoryPath], { env });
    expect(again.code, again.all).toBe(0);
    expect((await keepers())[0].runs).toBe(2);
  }, 90_000);

  test('a client killed with -9: the keeper stops the run and releases the lock', async () => {
    fresh();
    const pb = slow();
    const run = start(['run', pb, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code === 0, 30_000, 'sleep 300 on node1');
    run.child.kill('SIGKILL');
    await run.done;
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code !== 0, 10_000, 'the remote sleep to be stopped');
    await until(async () => (await sh('node1', 'cat /run/rha.lock')).stdout === '', 10_000, 'the lock to be released');
    await until(async () => (await keepers())[0]?.busy === false, 10_000, 'the keeper to be free');
  }, 90_000);

  test('keeper stop during a run: the run finishes, then the keeper ends; TERM to the keeper interrupts the run and releases the lock', async () => {
    fresh();
    const hold = playbook('hold3.yaml', '- hosts: node1\n  gather_facts: false\n  tasks:\n    - name: hold\n      command: sleep 3\n');
    const first = start(['run', hold, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 3"')).code === 0, 30_000, 'sleep 3 on node1');
    const stop = await rha(['keeper', 'stop'], { env });
    expect(stop.stdout).toContain('1 will stop when its run ends');
    const f = await first.done;
    expect(f.code, f.all).toBe(0);
    await until(async () => (await keepers()).length === 0, 10_000, 'the keeper to end after its run');

    const pb = slow();
    const second = start(['run', pb, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code === 0, 30_000, 'sleep 300 on node1');
    const [k] = await keepers();
    process.kill(k.pid, 'SIGTERM');
    const r = await second.done;
    expect(r.code, r.all).toBe(130);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code !== 0, 10_000, 'the remote sleep to be stopped');
    expect((await sh('node1', 'cat /run/rha.lock')).stdout).toBe('');
    await until(async () => (await keepers()).length === 0, 10_000, 'the keeper to end');
  }, 120_000);

  test('the keeper killed with -9 mid-run: the client says so (exit 1, no second run), the next run takes the stale lock over', async () => {
    fresh();
    const pb = slow();
    const run = start(['run', pb, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 300"')).code === 0, 30_000, 'sleep 300 on node1');
    const [k] = await keepers();
    process.kill(k.pid, 'SIGKILL');
    const r = await run.done;
    expect(r.code, r.all).toBe(1);
    expect(r.stderr).toContain('the rha keeper process ended in the middle of this run');
    // Its connection died with it: the lock's holder is gone, so the next run takes it over.
    const next = await rha(['run', whoami(), '-i', info.inventoryPath, '--limit', 'node1'], { env });
    expect(next.code, next.all).toBe(0);
    expect(next.all).toContain("took over the run lock /run/rha.lock");
    expect((await sh('node1', 'test -e /etc/rha-keeper-never.conf')).code).not.toBe(0);
    await sh('node1', 'pkill -f "^sleep 300"; true');
  }, 90_000);

  test('a busy keeper: the next command runs in its own process, both succeed', async () => {
    fresh();
    const hold = playbook('hold.yaml', '- hosts: node1\n  gather_facts: false\n  tasks:\n    - name: hold\n      command: sleep 4\n');
    const first = start(['run', hold, '-i', info.inventoryPath]);
    await until(async () => (await sh('node1', 'pgrep -f "^sleep 4"')).code === 0, 30_000, 'sleep 4 on node1');
    const second = await rha(['run', whoami(), '-i', info.inventoryPath, '--limit', 'node2'], { env });
    expect(second.code, second.all).toBe(0);
    const f = await first.done;
    expect(f.code, f.all).toBe(0);
    // The keeper ran only the first.
    expect((await keepers())[0].runs).toBe(1);
  }, 90_000);
});

describe('kept connections that went bad', () => {
  test('a link that went down while kept: the host is unreachable at once, not a hung task; back up, the next run works', async () => {
    fresh();
    const pb = whoami();
    expect((await rha(['run', pb, '-i', info.inventoryPath], { env })).code).toBe(0);
    await labExec(info.name, 'node2', ['true']); // lab still up
    const down = await rha(['lab', 'link', 'node2', 'down', '--name', info.name]);
    expect(down.code, down.all).toBe(0);
    try {
      const t0 = Date.now();
      const r = await rha(['run', pb, '-i', info.inventoryPath], { env });
      expect(r.code, r.all).toBe(3);
      expect(recapOf(r.stdout).node2).toMatchObject({ unreachable: 1 });
      expect(recapOf(r.stdout).node1).toMatchObject({ failed: 0, unreachable: 0 });
      // The ping (1.5 s) and the lab's connect timeout with its retries, not a command's timeout.
      expect(Date.now() - t0).toBeLessThan(60_000);
    } finally {
      await rha(['lab', 'link', 'node2', 'up', '--name', info.name]);
    }
    const r = await rha(['run', pb, '-i', info.inventoryPath], { env });
    expect(r.code, r.all).toBe(0);
  }, 120_000);

  test('a host replaced while its connection was kept: the new host key is refused as without the keeper', async () => {
    fresh();
    const pb = whoami();
    expect((await rha(['run', pb, '-i', info.inventoryPath], { env })).code).toBe(0);
    const rep = await rha(['lab', 'replace', 'node2', '--name', info.name]);
    expect(rep.code, rep.all).toBe(0);
    const r = await rha(['run', pb, '-i', info.inventoryPath], { env });
    expect(r.code, r.all).not.toBe(0);
    expect(r.all).toMatch(/node2.*host key/i);
    const own = await rha(['run', pb, '-i', info.inventoryPath], { env: { ...env, RHA_KEEPER: 'off' } });
    expect(own.code).toBe(r.code);
    // Accepting the new key (as after any replacement) works through the keeper.
    const ok = await rha(['run', pb, '-i', info.inventoryPath, '--accept-host-key', 'node2'], { env });
    expect(ok.code, ok.all).toBe(0);
  }, 180_000);
});

describe('become through a kept connection', () => {
  test('each run asks sudo itself: a password changed on the host fails the next run as without the keeper', async () => {
    fresh();
    const user = 'keepop';
    const must = async (script: string) => {
      const r = await labExec(info.name, 'node2', ['sh', '-c', script, 'sh', user], { timeoutMs: 5 * 60_000 });
      if (r.code !== 0) throw new Error(`setup failed: ${script}\n${r.stdout}${r.stderr}`);
    };
    await must(`set -e
export DEBIAN_FRONTEND=noninteractive
command -v sudo >/dev/null || { apt-get update -qq && apt-get install -y -qq sudo >/dev/null; }
id "$1" >/dev/null 2>&1 || useradd -m -s /bin/sh -G sudo "$1"
echo "$1:first-Pass-1" | chpasswd
install -d -m 0700 -o "$1" -g "$1" "/home/$1/.ssh"
install -m 0600 -o "$1" -g "$1" /dev/null "/home/$1/.ssh/authorized_keys"`);
    await labExec(info.name, 'node2', ['sh', '-c', 'cat > "/home/$1/.ssh/authorized_keys"', 'sh', user], { stdin: readFileSync(`${info.privateKeyPath}.pub`, 'utf8') });
    const inv = path.join(info.dir, 'keeper-sudo.yaml');
    writeFileSync(
      inv,
      readFileSync(info.inventoryPath, 'utf8').replace(/^(\s+)node2: (\S+)$/m, `$1node2: { address: $2, user: ${user}, become: true, become_password: { env: RHA_KEEPER_SUDO } }`),
      { mode: 0o600 },
    );
    const root = playbook('root.yaml', '- hosts: node2\n  tasks:\n    - shell: test "$(id -u)" = 0\n');
    const sudoEnv = { ...env, RHA_KEEPER_SUDO: 'first-Pass-1' };
    for (let i = 0; i < 2; i++) {
      const r = await rha(['run', root, '-i', inv], { env: sudoEnv });
      expect(r.code, r.all).toBe(0);
    }
    expect((await keepers())[0].runs).toBe(2);
    await must('echo "$1:second-Pass-2" | chpasswd');
    const r = await rha(['run', root, '-i', inv], { env: sudoEnv, timeoutMs: 90_000 });
    expect(r.code, r.all).toBe(2);
    expect(r.all).toContain(`become failed on node2: sudo rejected the become password for user ${user}`);
    expect(r.all).not.toContain('first-Pass-1');
    expect((await keepers())[0].runs).toBe(3);
    const fixed = await rha(['run', root, '-i', inv], { env: { ...env, RHA_KEEPER_SUDO: 'second-Pass-2' } });
    expect(fixed.code, fixed.all).toBe(0);
  }, 300_000);
});

describe('the keeper process itself', () => {
  test('socket and folder closed to others; no secret in its command line or environment; it ends when idle', async () => {
    fresh();
    const secret = `keeper-secret-${Math.random().toString(36).slice(2)}`;
    const r = await rha(['run', whoami(), '-i', info.inventoryPath], { env: { ...env, RHA_KEEPER: '3', RHA_TEST_SECRET: secret } });
    expect(r.code, r.all).toBe(0);
    const [k] = await keepers();
    expect(k).toBeDefined();
    const dir = path.join(cache, 'rha');
    expect(statSync(dir).mode & 0o077).toBe(0);
    const sock = path.join(dir, readFileSync(`/proc/${k.pid}/cmdline`, 'utf8').split('\0').find((a) => a.endsWith('.sock'))!.split('/').pop()!);
    expect(statSync(sock).isSocket()).toBe(true);
    expect(statSync(sock).mode & 0o077).toBe(0);
    expect(readFileSync(`/proc/${k.pid}/cmdline`, 'utf8')).not.toContain(secret);
    expect(readFileSync(`/proc/${k.pid}/environ`, 'utf8')).not.toContain(secret);
    // The inventory's own secrets (the lab's Redis password) are not in either.
    const inv = readFileSync(info.inventoryPath, 'utf8');
    const pw = /password:\s*"?([^"\s]{8,})"?/.exec(inv)?.[1];
    if (pw) expect(readFileSync(`/proc/${k.pid}/environ`, 'utf8') + readFileSync(`/proc/${k.pid}/cmdline`, 'utf8')).not.toContain(pw);
    // RHA_KEEPER=3: gone 3 s after its last run, socket removed, connections closed.
    await until(async () => (await keepers()).length === 0, 15_000, 'the idle keeper to end');
    expect(() => statSync(sock)).toThrow();
  }, 60_000);
});
