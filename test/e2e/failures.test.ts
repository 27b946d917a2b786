/**
 * Environment failures during a run (issue 8): the host or its tools break under rha, and rha
 * must stop with a clear message and exit code, leaving nothing half-done. Each row runs the real
 * CLI against real lab hosts, pins the exit code and the message, and ends by comparing the host
 * with a snapshot taken before the failed run: sha256 of the files the run would touch, the
 * running processes, and no `*.rha-*` temp file anywhere.
 *
 * node1 takes the connection, package-manager, package and disk rows; node2 the sudo and build rows.
 *
 * On both host kinds (test/support/kinds.ts): on systemd hosts rha logs in as a sudo user, and the
 * snapshot's process list includes systemd's own (journald, logind, the units), which a failed run
 * must leave as they were too. The build row runs on namespace hosts only (see its name).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LAB_LOGIN_USER, labExec, type LabInfo } from '../../src/lab/index.js';
import { describeOnlyOn, forEachHostKind, useKindLab } from '../support/kinds.js';
import { hostAddress } from '../support/lab.js';
import { recapOf, rha } from '../support/rha.js';

// Every row compares the host's processes before and after a failed run: a run in its own process
// (no keeper) leaves no SSH session behind, which is what is compared. The keeper, which keeps
// sessions open on purpose, and its sudo behaviour are tested in keeper.test.ts.
process.env.RHA_KEEPER = 'off';

forEachHostKind((kind) => {
  const lab = useKindLab('failures', kind);
  const work = mkdtempSync(path.join(tmpdir(), `rha-failures-${kind}-`));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  let info: LabInfo;
  const sh = (host: string, script: string, ...args: string[]) => labExec(info.name, host, ['sh', '-c', script, 'sh', ...args], { timeoutMs: 5 * 60_000 });

  /** Runs a setup step on a host; throws with its output when it fails (a broken setup is not a finding). */
  async function must(host: string, script: string, ...args: string[]): Promise<string> {
    const r = await sh(host, script, ...args);
    if (r.code !== 0) throw new Error(`setup on ${host} failed (exit ${r.code}): ${script}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** A playbook file in the work dir. */
  function playbook(name: string, text: string): string {
    const f = path.join(work, name);
    writeFileSync(f, text);
    return f;
  }

  /** An inventory beside the lab's (so its relative key, known_hosts and secret paths still hold), edited by `edit`. */
  function inventoryCopy(name: string, edit: (text: string) => string): string {
    const f = path.join(info.dir, `failures-${name}.yaml`);
    const text = readFileSync(info.inventoryPath, 'utf8');
    const out = edit(text);
    expect(out, `the ${name} edit changed nothing`).not.toBe(text);
    writeFileSync(f, out, { mode: 0o600 });
    return f;
  }

  /**
   * What a failed run must leave as it was: each file's sha256 (or "absent"), the running processes
   * (by name; this shell and ps left out), and `*.rha-*` temp files under / and the given extra
   * mounts (a temp file left there would be half a write).
   */
  async function snapshot(host: string, files: string[], mounts: string[] = []): Promise<{ files: string; procs: string; temps: string }> {
    const script = `n=$1; shift
  i=0; for f in "$@"; do i=$((i+1)); [ $i -le $n ] || break
    if [ -e "$f" ]; then sha256sum -- "$f"; else echo "absent $f"; fi; done
  echo @@procs
  p=$(ps -e -o comm=); printf '%s\\n' "$p" | grep -vx -e ps -e sh | sort
  echo @@temps
  shift $n
  find / /run /tmp /var/tmp "$@" -xdev -name '*.rha-*' 2>/dev/null | sort`;
    const out = await must(host, script, String(files.length), ...files, ...mounts);
    const [f, rest] = out.split('@@procs\n');
    const [procs, temps] = rest.split('@@temps\n');
    return { files: f, procs, temps: temps.trim() };
  }

  /** Asserts the host is as `before` and holds no temp file. */
  async function expectUnchanged(host: string, before: Awaited<ReturnType<typeof snapshot>>, files: string[], mounts: string[] = []): Promise<void> {
    const after = await snapshot(host, files, mounts);
    expect(after.files, `${host}: files the run would touch`).toBe(before.files);
    expect(after.procs, `${host}: running processes`).toBe(before.procs);
    expect(after.temps, `${host}: temp files left`).toBe('');
    // The run lock is released (an empty file) whether or not the run got as far as taking it.
    expect((await sh(host, 'cat /run/rha.lock 2>/dev/null; true')).stdout).toBe('');
  }

  /** The copy playbook most rows try to run: it would create /etc/rha-failures.conf on the host. */
  const touchFile = '/etc/rha-failures.conf';
  const touchPlaybook = (hosts: string) =>
    playbook(`touch-${hosts}.yaml`, `- hosts: ${hosts}\n  tasks:\n    - name: a config file\n      copy: { dest: ${touchFile}, content: "x\\n" }\n`);
  /** The files the rows below would touch, besides their own. */
  const common = [touchFile, '/run/rha.lock', '/var/lib/dpkg/status', '/etc/passwd', '/etc/ssh/sshd_config'];

  beforeAll(async () => {
    info = lab();
    // A first no-op run on both hosts, so the lock file exists and every snapshot starts from a host rha has seen.
    const r = await rha(['run', playbook('noop.yaml', '- hosts: all\n  gather_facts: false\n  tasks:\n    - command: "true"\n'), '-i', info.inventoryPath]);
    if (r.code !== 0) throw new Error(`the warm-up run failed:\n${r.all}`);
  }, 120_000);

  describe('connection failures', () => {
    test('authentication failure: exit 3, the host named, "authentication failed", nothing touched', async () => {
      const key = path.join(info.dir, 'failures-unknown-key');
      rmSync(key, { force: true });
      rmSync(`${key}.pub`, { force: true });
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'not-on-the-host', '-f', key]);
      const inv = inventoryCopy('auth', (t) => t.replace('private_key: ./id_ed25519', 'private_key: ./failures-unknown-key'));
      const before = await snapshot('node1', common);
      const r = await rha(['run', touchPlaybook('node1'), '-i', inv]);
      expect(r.code, r.all).toBe(3);
      const user = info.login === 'root' ? 'root' : LAB_LOGIN_USER;
      expect(r.all).toContain(`node1 (${hostAddress(info, 'node1')}:22): authentication failed for user ${user} (tried: publickey ${path.join(info.dir, 'failures-unknown-key')})`);
      expect(recapOf(r.stdout).node1).toMatchObject({ unreachable: 1, changed: 0 });
      await expectUnchanged('node1', before, common);
    }, 60_000);

    test('host key mismatch: exit 3, both fingerprints and how to accept, the host and known_hosts unchanged', async () => {
      const addr = hostAddress(info, 'node1');
      const other = path.join(work, 'other-host-key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'another host', '-f', other]);
      const otherBlob = readFileSync(`${other}.pub`, 'utf8').split(' ')[1];
      const fp = (pub: string) => execFileSync('ssh-keygen', ['-l', '-f', '-'], { input: pub }).toString().split(' ')[1];
      const storedFp = fp(readFileSync(`${other}.pub`, 'utf8'));
      const realFp = fp(await must('node1', 'cat /etc/ssh/ssh_host_ed25519_key.pub'));
      expect(storedFp).not.toBe(realFp);
      // node1's lines replaced by one ed25519 line holding another key; node2's lines kept.
      const kh = readFileSync(info.knownHostsPath, 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith(`${addr} `));
      const khFile = path.join(info.dir, 'failures-known_hosts');
      const khText = [...kh, `${addr} ssh-ed25519 ${otherBlob}`, ''].join('\n');
      writeFileSync(khFile, khText);
      const inv = inventoryCopy('hostkey', (t) => t.replace('known_hosts: ./known_hosts', 'known_hosts: ./failures-known_hosts'));
      const before = await snapshot('node1', common);
      const r = await rha(['run', touchPlaybook('node1'), '-i', inv]);
      expect(r.code, r.all).toBe(3);
      expect(r.all).toContain(`node1 (${addr}:22): host key changed: known_hosts ${khFile}:${kh.length + 1} has ssh-ed25519 ${storedFp}, the host now presents ssh-ed25519 ${realFp}.`);
      expect(r.all).toContain(`accept its new key with \`rha hosts accept node1 -i ${inv}\` or run with \`--accept-host-key node1\`; otherwise someone may be intercepting the connection.`);
      expect(recapOf(r.stdout).node1).toMatchObject({ unreachable: 1, changed: 0 });
      // Nothing learned or rewritten behind the user's back.
      expect(readFileSync(khFile, 'utf8')).toBe(khText);
      await expectUnchanged('node1', before, common);
    }, 60_000);
  });

  describe('sudo', () => {
    const user = 'rhaops';
    let inv: string;
    const files = [...common, '/etc/sudoers'];
    beforeAll(async () => {
      // A non-root login that may use sudo with a password; sudo comes from the lab's local repository.
      await must(
        'node2',
        `set -e
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq sudo >/dev/null
  useradd -m -s /bin/sh -G sudo "$1"
  echo "$1:right-Pass-1" | chpasswd
  install -d -m 0700 -o "$1" -g "$1" "/home/$1/.ssh"
  install -m 0600 -o "$1" -g "$1" /dev/null "/home/$1/.ssh/authorized_keys"`,
        user,
      );
      await labExec(info.name, 'node2', ['sh', '-c', 'cat > "/home/$1/.ssh/authorized_keys"', 'sh', user], { stdin: readFileSync(`${info.privateKeyPath}.pub`, 'utf8') });
      inv = inventoryCopy('sudo', (t) =>
        t.replace(/^(\s+)node2: (\S+)$/m, `$1node2: { address: $2, user: ${user}, become: true, become_password: { env: RHA_FAILURES_SUDO } }`),
      );
    }, 180_000);

    test('the right password works (so the rows below fail for their own reason)', async () => {
      const r = await rha(['run', playbook('root.yaml', '- hosts: node2\n  tasks:\n    - shell: test "$(id -u)" = 0\n'), '-i', inv], {
        env: { RHA_FAILURES_SUDO: 'right-Pass-1' },
      });
      expect(r.code, r.all).toBe(0);
    }, 60_000);

    test('a wrong sudo password: exit 2, "sudo rejected the become password", no hang, nothing touched', async () => {
      const before = await snapshot('node2', files);
      const t0 = Date.now();
      const r = await rha(['run', touchPlaybook('node2'), '-i', inv], { env: { RHA_FAILURES_SUDO: 'wrong-Pass-2' }, timeoutMs: 90_000 });
      expect(r.code, r.all).toBe(2);
      expect(Date.now() - t0).toBeLessThan(60_000);
      expect(r.all).toContain(`failed: Gathering Facts — become failed on node2: sudo rejected the become password for user ${user}; nothing was changed on this host\n`);
      // sudo's own words follow; rha's lock script (the first command that needed sudo) does not.
      expect(r.all).toContain('incorrect password attempt');
      expect(r.all).not.toContain('pstat');
      expect(r.all).not.toContain('wrong-Pass-2');
      expect(recapOf(r.stdout).node2).toMatchObject({ failed: 1, changed: 0 });
      await expectUnchanged('node2', before, files);
    }, 120_000);

    test('sudo not installed: exit 2, "sudo is not installed", nothing touched', async () => {
      // sudo's prerm refuses when root has no password unless told this is deliberate.
      await must('node2', 'SUDO_FORCE_REMOVE=yes DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq sudo >/dev/null && ! command -v sudo');
      const before = await snapshot('node2', common);
      const r = await rha(['run', touchPlaybook('node2'), '-i', inv], { env: { RHA_FAILURES_SUDO: 'right-Pass-1' }, timeoutMs: 90_000 });
      expect(r.code, r.all).toBe(2);
      expect(r.all).toContain('failed: Gathering Facts — become failed on node2: sudo is not installed (install it, or connect as root); nothing was changed on this host\n');
      expect(r.all).not.toContain('pstat');
      expect(recapOf(r.stdout).node2).toMatchObject({ failed: 1, changed: 0 });
      await expectUnchanged('node2', before, common);
    }, 120_000);
  });

  describe('packages', () => {
    test('no package manager: exit 2, "no package manager found on node1 (looked for apt-get, dnf, yum)", nothing touched', async () => {
      const pb = playbook('pkg-present.yaml', '- hosts: node1\n  tasks:\n    - package: { name: make }\n');
      await must('node1', 'mkdir -p /root/aside && mv /usr/bin/apt-get /usr/bin/dpkg /root/aside/');
      try {
        const before = await snapshot('node1', common);
        const r = await rha(['run', pb, '-i', info.inventoryPath]);
        expect(r.code, r.all).toBe(2);
        expect(r.all).toContain('no package manager found on node1 (looked for apt-get, dnf, yum)');
        expect(recapOf(r.stdout).node1).toMatchObject({ failed: 1, changed: 0 });
        await expectUnchanged('node1', before, common);
      } finally {
        await must('node1', 'mv /root/aside/apt-get /root/aside/dpkg /usr/bin/');
      }
    }, 60_000);

    test('a package apt cannot find: exit 2, apt\'s reason shown, policy-rc.d put back, nothing else changed', async () => {
      const pb = playbook(
        'pkg-missing.yaml',
        '- hosts: node1\n  tasks:\n    - package: { name: [make, rha-no-such-package], update_cache: true, policy_rc_d: deny }\n',
      );
      const files = [...common, '/usr/sbin/policy-rc.d', '/usr/bin/make'];
      const before = await snapshot('node1', files);
      expect(before.files).toContain('absent /usr/bin/make');
      const r = await rha(['run', pb, '-i', info.inventoryPath]);
      expect(r.code, r.all).toBe(2);
      expect(r.all).toContain('E: Unable to locate package rha-no-such-package');
      expect(recapOf(r.stdout).node1).toMatchObject({ failed: 1, changed: 0 });
      // apt-get update may refresh its lists (that is the task's own first step); nothing is installed.
      await expectUnchanged('node1', before, files);
    }, 120_000);
  });

  describe('a disk that fills during the upload', () => {
    test('exit 2, "No space left on device", the old file intact, no temp file left', async () => {
      await must('node1', 'mkdir -p /srv/full && mount -t tmpfs -o size=64k tmpfs /srv/full && printf "old\\n" > /srv/full/app.conf');
      try {
        // Half a MiB: far more than the 64 KiB disk, and the playbook stays under rha's 1 MiB input limit.
        const big = 'x'.repeat(512 * 1024);
        const pb = playbook('full.yaml', `- hosts: node1\n  gather_facts: false\n  tasks:\n    - copy: { dest: /srv/full/app.conf, content: "${big}" }\n`);
        const files = [...common, '/srv/full/app.conf'];
        const before = await snapshot('node1', files, ['/srv/full']);
        const r = await rha(['run', pb, '-i', info.inventoryPath]);
        expect(r.code, r.all).toBe(2);
        expect(r.all).toContain(
          'failed: copy — cannot write the new content of /srv/full/app.conf (524288 bytes) to a temp file beside it; /srv/full/app.conf was not changed:\n    cat: write error: No space left on device\n',
        );
        expect(recapOf(r.stdout).node1).toMatchObject({ failed: 1, changed: 0 });
        expect(await must('node1', 'cat /srv/full/app.conf; ls -A /srv/full')).toBe('old\napp.conf\n');
        await expectUnchanged('node1', before, files, ['/srv/full']);
      } finally {
        await sh('node1', 'umount /srv/full');
      }
    }, 60_000);
  });

  describeOnlyOn(kind, 'namespace', 'a compilation; no service runs')('a build that fails for another reason than the jemalloc header', () => {
    test('exit 2, the compiler\'s error lines shown, no libc retry, no redis-server installed, nothing cached', async () => {
      const dir = '/usr/local/src/rha';
      const tree = `${dir}/redis-7.0.15`;
      // The tree rha would build (tarball pinned by sha256, so rha neither uploads nor re-extracts),
      // a toolchain, then a syntax error in a source file.
      await must('node2', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc make libc6-dev >/dev/null');
      const tarball = readFileSync(info.redisSource.path);
      const r0 = await labExec(info.name, 'node2', ['sh', '-c', 'mkdir -p "$1" && base64 -d > "$1/redis-7.0.15.tar.gz" && tar -xzf "$1/redis-7.0.15.tar.gz" -C "$1"', 'sh', dir], {
        stdin: tarball.toString('base64'),
      });
      expect(r0.code, r0.stderr).toBe(0);
      await must('node2', 'printf "\\nint rha_sabotage = ;\\n" >> "$1/src/server.c"', tree);
      const lines = Number((await must('node2', 'wc -l < "$1/src/server.c"', tree)).trim());

      const pb = playbook(
        'build.yaml',
        `- hosts: node2\n  tasks:\n    - name: Redis binaries\n      redis_install: ${JSON.stringify({ version: '7.0.15', source: '{{cluster.redis.source}}' })}\n`,
      );
      const cache = mkdtempSync(path.join(work, 'cache-'));
      const files = [...common, '/usr/local/bin/redis-server', '/usr/local/bin/redis-cli', `${dir}/redis-7.0.15.tar.gz`, `${tree}/src/server.c`];
      const before = await snapshot('node2', files);
      const r = await rha(['run', pb, '-i', info.inventoryPath, '-v'], { env: { RHA_CACHE_DIR: cache } });
      expect(r.code, r.all).toBe(2);
      expect(r.all).toContain('building redis 7.0.15 on node2 failed (exit 91); compiler output:');
      expect(r.all).toMatch(new RegExp(`server\\.c:${lines}:\\d+: error: expected expression before ';' token`));
      // The libc fallback is only for the jemalloc header error: it neither ran nor was claimed.
      expect(r.all).not.toContain('even with MALLOC=libc');
      expect(r.all).not.toContain('malloc=libc');
      expect((await sh('node2', `grep -c 'MALLOC=libc' ${tree}/src/.make-settings; true`)).stdout.trim()).toBe('0');
      expect(recapOf(r.stdout).node2).toMatchObject({ failed: 1 });
      await expectUnchanged('node2', before, files);
      expect(before.files).toContain('absent /usr/local/bin/redis-server');
      // No artifact stored for the next run to ship.
      const builds = path.join(cache, 'redis-builds');
      expect(existsSync(builds) ? readdirSync(builds) : []).toEqual([]);
    }, 5 * 60_000);
  });
});
