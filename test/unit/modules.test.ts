/** Pure logic of the core modules: plans from given state, parsers, argument rules, command text. */
import { describe, expect, it } from 'vitest';
import { modules } from '../../src/modules/index.js';
import { parseMode, shellSplit } from '../../src/modules/lib/args.js';
import { compareFile, parseRemoteFile, sha256, validateShell, writeScript } from '../../src/modules/lib/files.js';
import { skipReason } from '../../src/modules/command.js';
import { parsePathState, planPath } from '../../src/modules/file.js';
import {
  applyScript,
  packageFailureMessage,
  parseAptPolicy,
  parseDpkgQuery,
  parseRpmQuery,
  parseStatus,
  planPackages,
  statusScript,
} from '../../src/modules/package.js';
import { parseInitdStatus, parsePlainStatus, parseSystemdStatus, planServiceSteps, serviceModule, splitSystemdStatus, SYSTEMD_START } from '../../src/modules/service.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, HostFacts } from '../../src/core/types.js';
import { ModuleFailure } from '../../src/modules/lib/failure.js';
import { makeContext } from '../support/context.js';
import { groupCommand, parseGroupEntry } from '../../src/modules/group.js';
import { parsePasswdEntry, userCommand } from '../../src/modules/user.js';
import { normalizeValue, procPath, upsertSysctlLine } from '../../src/modules/sysctl.js';
import { parsePoll, probeFor } from '../../src/modules/wait_for.js';

const args = (name: string, raw: unknown) => modules.get(name)!.args.parse(raw) as any;
const argsError = (name: string, raw: unknown) => {
  const r = modules.get(name)!.args.safeParse(raw);
  return r.success ? undefined : r.error.issues.map((i) => i.message).join('; ');
};

describe('registry', () => {
  it('has every core module and the pair modules under their task keys', () => {
    expect([...modules.keys()].sort()).toEqual(
      ['assert', 'command', 'copy', 'file', 'group', 'package', 'service', 'shell', 'sysctl', 'sysfs', 'template', 'user', 'wait_for',
        'redis_install', 'ha_topology', 'redis_replication', 'redis_unfence', 'ha_service', 'ha_switchover', 'redis_auth', 'keepalived_reload'].sort(),
    );
  });
  it.each([...modules.keys()])('%s rejects unknown keys', (name) => {
    const base: Record<string, unknown> = {
      assert: { that: 'true' },
      command: { cmd: 'true' },
      shell: { cmd: 'true' },
      copy: { content: 'x', dest: '/x' },
      template: { src: 'x', dest: '/x' },
      file: { path: '/x' },
      group: { name: 'g' },
      user: { name: 'u' },
      package: { name: 'p' },
      service: { name: 's', state: 'started' },
      sysctl: { name: 'net.ipv4.ip_forward', value: 1 },
      sysfs: { path: '/sys/kernel/mm/transparent_hugepage/enabled', value: 'never' },
      wait_for: { port: 1 },
      redis_install: { version: '7.0.15', source: { path: '/x.tar.gz', sha256: 'a'.repeat(64) } },
      ha_topology: {},
      redis_replication: { master: 'node1' },
      redis_unfence: {},
      ha_service: { name: 'redis', role: 'master', service: { name: 'redis-server' } },
      ha_switchover: {},
      redis_auth: { phase: 'add' },
      keepalived_reload: { service: { name: 'keepalived' } },
    };
    expect(modules.get(name)!.args.safeParse(base[name]).success).toBe(true);
    expect(modules.get(name)!.args.safeParse({ ...(base[name] as object), bogus: 1 }).success).toBe(false);
  });
});

describe('modes', () => {
  it.each([
    ['0640', '0640'],
    ['640', '0640'],
    ['0o755', '0755'],
    [640, '0640'], // YAML 1.2 reads `mode: 0640` as 640
    [4755, '4755'],
    [0, '0000'],
  ] as const)('%s → %s', (input, want) => expect(parseMode(input)).toBe(want));
  it.each([493, '0999', 'u+x', '12345'])('rejects %s', (m) => {
    expect(() => parseMode(m as string)).toThrow(/is not an octal mode: write it as a quoted string like "0640"/);
  });
  it('file args normalise modes', () => {
    expect(args('file', { path: '/x', mode: 600 }).mode).toBe('0600');
    expect(argsError('file', { path: '/x', mode: 493 })).toMatch(/not an octal mode/);
  });
});

describe('shellSplit', () => {
  it.each([
    ['echo hi', ['echo', 'hi']],
    [`echo "a b" 'c d' e\\ f`, ['echo', 'a b', 'c d', 'e f']],
    [`printf '%s\\n' "x\\"y" ''`, ['printf', '%s\\n', 'x"y', '']],
    ['  a   b  ', ['a', 'b']],
    ['a"b"c', ['abc']],
    ['echo $HOME; rm -rf /', ['echo', '$HOME;', 'rm', '-rf', '/']],
  ])('%s', (line, want) => expect(shellSplit(line)).toEqual(want));
  it('rejects an unterminated quote', () => expect(() => shellSplit(`echo 'oops`)).toThrow("unterminated ' quote in: echo 'oops"));
});

describe('command/shell args', () => {
  it('string shorthand and cmd string split without a shell', () => {
    expect(args('command', 'echo "a b"').argv).toEqual(['echo', 'a b']);
    expect(args('command', { cmd: ['ls', '-l'] }).argv).toEqual(['ls', '-l']);
    expect(args('command', { argv: ['x'] }).argv).toEqual(['x']);
    expect(args('shell', 'echo $HOME | wc').argv).toEqual(['sh', '-c', 'echo $HOME | wc']);
  });
  it('needs exactly one of cmd or argv', () => {
    expect(argsError('command', { cmd: 'a', argv: ['b'] })).toBe('give exactly one of cmd or argv');
  });
  it.each([
    [{ creates: '/x' }, { creates: true }, 'creates /x exists'],
    [{ creates: '/x' }, { creates: false }, undefined],
    [{ removes: '/y' }, { removes: false }, 'removes /y does not exist'],
    [{ removes: '/y' }, { removes: true }, undefined],
    [{}, {}, undefined],
  ])('skip %j given %j → %s', (a, e, want) => expect(skipReason(a, e)).toBe(want));
});

describe('lib/files', () => {
  const content = 'port 6379\nrequirepass s3cret-pw\n';
  const sum = sha256(content);
  const file = (over: Partial<Record<string, unknown>> = {}) =>
    ({ kind: 'file', mode: '0640', uid: '0', gid: '0', owner: 'root', group: 'root', size: content.length, sha256: sum, ...over }) as any;
  const opts = { diff: true, secrets: ['s3cret-pw'] };

  it('parses the read script output', () => {
    const b64 = Buffer.from('hello\n').toString('base64');
    expect(parseRemoteFile(`file\n644 0 0 6 root root\n${'a'.repeat(64)}\n${b64}\n`)).toEqual({
      kind: 'file',
      mode: '0644',
      uid: '0',
      gid: '0',
      owner: 'root',
      group: 'root',
      size: 6,
      sha256: 'a'.repeat(64),
      content: Buffer.from('hello\n'),
    });
    expect(parseRemoteFile('absent\n')).toEqual({ kind: 'absent' });
    expect(parseRemoteFile(`file\n644 0 0 600000 root root\n${'b'.repeat(64)}\n`).content).toBeUndefined();
  });

  it('equal checksum and attributes: nothing, with the reason', () => {
    const p = compareFile({ dest: '/etc/redis.conf', content, mode: '0640', owner: 'root' }, file(), opts);
    expect(p.changes).toEqual([]);
    expect(p.reason).toBe('/etc/redis.conf is up to date');
  });
  it('absent: create, diff masks secrets', () => {
    const p = compareFile({ dest: '/etc/redis.conf', content, mode: '0640' }, { kind: 'absent' }, opts);
    expect(p.changes.map((c) => c.description)).toEqual(['create /etc/redis.conf (32 bytes, mode 0640)']);
    expect(p.diff).toEqual({ path: '/etc/redis.conf', before: '', after: 'port 6379\nrequirepass ***\n' });
    expect(JSON.stringify(p.changes)).not.toContain('s3cret-pw');
  });
  it('content differs: update, old content diffed when fetched', () => {
    const p = compareFile({ dest: '/f', content }, file({ sha256: 'c'.repeat(64), content: Buffer.from('port 1\n') }), opts);
    expect(p.contentChanged).toBe(true);
    expect(p.changes[0].description).toBe('update /f (32 bytes)');
    expect(p.diff?.before).toBe('port 1\n');
  });
  it('attributes only: chmod/chown without rewriting', () => {
    const p = compareFile({ dest: '/f', content, mode: '0600', owner: 'redis', group: '0' }, file(), opts);
    expect(p.contentChanged).toBe(false);
    expect(p.attrs).toEqual({ mode: '0600', owner: 'redis' });
    expect(p.changes.map((c) => c.description)).toEqual(['chmod 0600 /f (was 0640)', 'chown redis:root /f (was root:root)']);
  });
  it('no diff without --diff, none for binary', () => {
    expect(compareFile({ dest: '/f', content }, { kind: 'absent' }, { diff: false, secrets: [] }).diff).toBeUndefined();
    expect(compareFile({ dest: '/f', content: Buffer.from([0, 1, 2]) }, { kind: 'absent' }, opts).diff).toBeUndefined();
  });
  it('secret: true (a password file): old and new value masked, no size, "(secret changed)"', () => {
    const p = compareFile(
      { dest: '/etc/keepalived/rha/redis.auth', content: 'n3w-pw', mode: '0600', secret: true },
      file({ sha256: 'c'.repeat(64), mode: '0600', content: Buffer.from('0ld-pw-on-host') }),
      { diff: true, secrets: ['n3w-pw'] },
    );
    expect(p.changes.map((c) => c.description)).toEqual(['update /etc/keepalived/rha/redis.auth (secret, mode 0600)']);
    expect(p.diff).toEqual({ path: '/etc/keepalived/rha/redis.auth', before: '***', after: '*** (secret changed)' });
    expect(JSON.stringify(p)).not.toMatch(/0ld-pw|n3w-pw/);
  });
  it('secret directives: the old value on the host, unknown to the run, is masked too', () => {
    const before = 'port 6379\nrequirepass "0ld pw"\nmasterauth "0ld pw"\nuser default on >0ld\n';
    const p = compareFile(
      { dest: '/etc/redis/redis.conf', content: 'port 6379\nrequirepass "n3w"\nmasterauth "n3w"\nuser default on >n3w\n', secret: ['requirepass', 'masterauth', 'user'] },
      file({ sha256: 'c'.repeat(64), content: Buffer.from(before) }),
      { diff: true, secrets: [] },
    );
    expect(p.diff).toEqual({
      path: '/etc/redis/redis.conf',
      before: 'port 6379\nrequirepass ***\nmasterauth ***\nuser ***\n',
      after: 'port 6379\nrequirepass *** (secret changed)\nmasterauth *** (secret changed)\nuser *** (secret changed)\n',
    });
    expect(p.changes[0].diff).toBe(p.diff);
  });
  it('refuses a directory at dest', () => {
    expect(() => compareFile({ dest: '/etc', content }, { kind: 'directory' }, opts)).toThrow('/etc is a directory');
  });
  it('validate: %s becomes the quoted temp path, the rest is quoted data', () => {
    expect(validateShell(['keepalived', '-t', '-f', '%s'])).toBe('keepalived -t -f "$tmp"');
    expect(validateShell(['visudo', '-cf%s', "it's"])).toBe(`visudo -cf"$tmp" 'it'\\''s'`);
    expect(writeScript(['x', '%s'])).toContain(`out=$(x "$tmp" 2>&1)`);
    expect(writeScript()).toContain('umask 077');
    expect(writeScript()).toContain('mktemp -- "$dest.rha-XXXXXX"');
  });
});

describe('file module', () => {
  it('parses lstat output', () => {
    expect(parsePathState('absent\n')).toEqual({ kind: 'absent' });
    expect(parsePathState('link 777 0 0 root root\n/etc/x\n')).toMatchObject({ kind: 'link', target: '/etc/x' });
    expect(parsePathState('directory 755 0 0 root root\n')).toMatchObject({ kind: 'directory', mode: '0755' });
  });
  const dir = { kind: 'directory', mode: '0755', uid: '0', gid: '0', owner: 'root', group: 'root' } as const;
  it.each([
    [{ path: '/d', state: 'directory' }, { kind: 'absent' }, ['create directory /d'], undefined],
    [{ path: '/d', state: 'directory', mode: '0750' }, dir, ['chmod 0750 /d (was 0755)'], undefined],
    [{ path: '/d', state: 'directory', mode: '0755' }, dir, [], '/d is a directory as wanted'],
    [{ path: '/d', mode: '0755' }, dir, [], '/d is a directory as wanted'],
    [{ path: '/d', state: 'absent' }, dir, ['remove directory (recursively) /d'], undefined],
    [{ path: '/d', state: 'absent' }, { kind: 'absent' }, [], '/d does not exist'],
    [{ path: '/f' }, { kind: 'absent' }, ['create empty file /f'], undefined],
    [{ path: '/l', state: 'link', src: '/t' }, { kind: 'absent' }, ['link /l -> /t'], undefined],
    [{ path: '/l', state: 'link', src: '/t' }, { ...dir, kind: 'link', target: '/t' }, [], '/l is a link to /t as wanted'],
    [{ path: '/l', state: 'link', src: '/t' }, { ...dir, kind: 'link', target: '/u' }, ['link /l -> /t (was -> /u)'], undefined],
  ])('%j on %j', (a, cur, descs, reason) => {
    const p = planPath(args('file', a), cur as any);
    expect(p.changes.map((c) => c.description)).toEqual(descs);
    expect(p.reason).toBe(reason);
  });
  it('refuses to turn a directory into a file or link', () => {
    expect(() => planPath(args('file', { path: '/d', state: 'file' }), dir)).toThrow('/d exists and is a directory, not a file');
    expect(() => planPath(args('file', { path: '/d', state: 'link', src: '/x' }), dir)).toThrow(
      '/d exists and is a directory; refusing to replace it with a link',
    );
  });
  it('refuses /', () => expect(argsError('file', { path: '/', state: 'absent' })).toBe('refusing to manage /'));
});

describe('package module', () => {
  const dpkg = 'keepalived ii  1:2.2.7-1\ngcc un  \nmake rc  4.3-4.1\nlibc6 ii  2.36-9\n';
  it('reads dpkg-query: only status i counts', () => {
    const m = parseDpkgQuery(dpkg, ['keepalived', 'gcc', 'make', 'libc6:amd64', 'nosuch']);
    expect([...m.entries()]).toEqual([
      ['keepalived', '1:2.2.7-1'],
      ['gcc', undefined],
      ['make', undefined],
      ['libc6:amd64', '2.36-9'],
      ['nosuch', undefined],
    ]);
  });
  it('reads apt-cache policy and rpm -q', () => {
    expect(parseAptPolicy('bash:\n  Installed: 5.2-1\n  Candidate: 5.2-2\nfoo:\n  Installed: (none)\n  Candidate: (none)\n')).toEqual(
      new Map([
        ['bash', '5.2-2'],
        ['foo', undefined],
      ]),
    );
    expect(parseRpmQuery('gcc 11.4-1.el9\npackage make is not installed\n', ['gcc', 'make'])).toEqual(
      new Map([
        ['gcc', '11.4-1.el9'],
        ['make', undefined],
      ]),
    );
  });
  const plan = (a: object, stdout: string, pm: 'apt' | 'dnf' = 'apt') => {
    const pa = args('package', a);
    const p = planPackages(pa, parseStatus(pm, stdout, pa.name), pm);
    return { descs: p.changes.map((c) => c.description), reason: p.reason, state: p.state };
  };
  it.each([
    [{ name: ['keepalived', 'gcc'] }, `${dpkg}---\n---\ncache-age 10\n`, ['install gcc'], undefined],
    [{ name: 'keepalived' }, `${dpkg}---\n---\ncache-age 10\n`, [], 'keepalived already installed'],
    [{ name: 'gcc', state: 'absent' }, `${dpkg}---\n---\n`, [], 'gcc not installed'],
    [{ name: ['keepalived', 'gcc'], state: 'absent' }, `${dpkg}---\n---\n`, ['remove keepalived'], undefined],
    [{ name: 'gcc', update_cache: true }, `${dpkg}---\n---\ncache-age missing\n`, ['apt-get update (no package index)', 'install gcc'], undefined],
    [{ name: 'gcc', update_cache: true }, `${dpkg}---\n---\ncache-age 7200\n`, ['apt-get update (the index is 7200 s old)', 'install gcc'], undefined],
    [{ name: 'gcc', update_cache: true, cache_valid_time: 86400 }, `${dpkg}---\n---\ncache-age 7200\n`, ['install gcc'], undefined],
    [{ name: 'gcc', update_cache: false }, `${dpkg}---\n---\ncache-age missing\n`, ['install gcc'], undefined],
    [{ name: 'keepalived', update_cache: true }, `${dpkg}---\n---\ncache-age 60\n`, [], 'keepalived already installed'],
    // Nothing to install: a stale or missing index is left alone, so a re-run changes nothing.
    [{ name: 'keepalived', update_cache: true }, `${dpkg}---\n---\ncache-age 999999\n`, [], 'keepalived already installed'],
    [{ name: 'keepalived', update_cache: true }, `${dpkg}---\n---\ncache-age missing\n`, [], 'keepalived already installed'],
    [{ name: 'keepalived', state: 'absent', update_cache: true }, `${dpkg}---\n---\ncache-age missing\n`, ['remove keepalived'], undefined],
    [
      { name: 'keepalived', state: 'latest', update_cache: true },
      `${dpkg}---\nkeepalived:\n  Installed: 1:2.2.7-1\n  Candidate: 1:2.2.7-1\n---\ncache-age 7200\n`,
      ['apt-get update (the index is 7200 s old)'],
      undefined,
    ],
    [
      { name: 'keepalived', state: 'latest' },
      `${dpkg}---\nkeepalived:\n  Installed: 1:2.2.7-1\n  Candidate: 1:2.2.8-1\n---\ncache-age 1\n`,
      ['upgrade keepalived (1:2.2.7-1 → 1:2.2.8-1)'],
      undefined,
    ],
    [{ name: 'keepalived', state: 'latest' }, `${dpkg}---\nkeepalived:\n  Installed: 1:2.2.7-1\n  Candidate: 1:2.2.7-1\n---\n`, [], 'keepalived installed and up to date'],
  ])('%j', (a, out, descs, reason) => {
    const p = plan(a, out);
    expect(p.descs).toEqual(descs);
    expect(p.reason).toBe(reason);
  });
  it('rhel: rpm -q decides, update_cache refreshes inside the install', () => {
    const p = plan({ name: ['gcc', 'make'], update_cache: true }, 'gcc 11-1\npackage make is not installed\n---\n', 'dnf');
    expect(p.descs).toEqual(['install make']);
    expect(p.state.updateCache).toBe(true);
    expect(applyScript('dnf', p.state, 'allow')).toBe('set -e\ndnf -y --refresh install make');
    const y = plan({ name: ['gcc', 'make'], update_cache: true }, 'gcc 11-1\npackage make is not installed\n---\n', 'yum' as 'dnf');
    expect(applyScript('yum', y.state, 'allow')).toBe('set -e\nyum -y -q clean expire-cache\nyum -y install make');
    // Installed already: no refresh, nothing to do.
    expect(plan({ name: 'gcc', update_cache: true }, 'gcc 11-1\n---\n', 'dnf').state).toEqual({ packages: [], updateCache: false });
  });
  // Without update_cache: the install runs as is, and once more after a metadata refresh when the
  // manager cannot find a package.
  it.each([
    ['dnf', 'install', ['dnf -y --refresh install keepalived']],
    ['dnf', 'upgrade', ['dnf -y --refresh upgrade keepalived']],
    ['yum', 'install', ['yum -y -q clean expire-cache', 'yum -y install keepalived']],
  ] as const)('rhel family: %s %s, refreshed once when the package is not found', (pm, action, retry) => {
    expect(applyScript(pm, { action, packages: ['keepalived'], updateCache: false }, 'deny')).toBe(
      [
        'set -e',
        `rha_rc=0; rha_out=$(${pm} -y ${action} keepalived 2>&1) || rha_rc=$?`,
        `printf '%s\\n' "$rha_out"`,
        'if [ $rha_rc -ne 0 ]; then',
        `  printf '%s\\n' "$rha_out" | grep -qE 'No match for argument|Unable to find a match|No package .* available' || exit $rha_rc`,
        '  echo "@@rha:refreshed"',
        ...retry.map((l) => `  ${l}`),
        'fi',
      ].join('\n'),
    );
  });
  it.each([
    ['yum', 'set -e\nyum -y remove keepalived'],
    ['dnf', 'set -e\ndnf -y remove keepalived'],
  ] as const)('rhel family: %s remove', (pm, script) => {
    expect(applyScript(pm, { action: 'remove', packages: ['keepalived'], updateCache: false }, 'deny')).toBe(script);
  });
  it('rhel family: one rpm query reads versions, check-update only for latest', () => {
    expect(statusScript('yum', ['keepalived', 'gcc'], true)).toBe(
      "rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' keepalived gcc\necho ---\nyum -q check-update keepalived gcc\nexit 0",
    );
    const p = plan({ name: 'keepalived', state: 'absent' }, 'keepalived 2.2.8-1.el9\n---\n', 'dnf');
    expect(p.descs).toEqual(['remove keepalived']);
  });
  it('one status query, names quoted', () => {
    expect(statusScript('apt', ['gcc', 'g++'], false)).toMatch(/^dpkg-query -W -f '\$\{Package\} \$\{db:Status-Abbrev\} \$\{Version\}\\n' gcc g\+\+ 2>\/dev\/null\n/);
  });
  it('apt install: noninteractive, no recommends, policy-rc.d only when denied', () => {
    const s = applyScript('apt', { action: 'install', packages: ['keepalived'], updateCache: true }, 'deny');
    expect(s).toContain('export DEBIAN_FRONTEND=noninteractive');
    expect(s).toContain('rha_apt install -y -q --no-install-recommends');
    expect(s).toContain('exit 101');
    expect(s.indexOf('policy-rc.d')).toBeLessThan(s.indexOf('\nrha_update\n'));
    expect(applyScript('apt', { action: 'install', packages: ['gcc'], updateCache: false }, 'allow')).not.toContain('policy-rc.d');
  });
  it('apt: update only when planned, the install retried once after an update when apt cannot find a package', () => {
    const s = applyScript('apt', { action: 'install', packages: ['keepalived'], updateCache: false }, 'allow');
    const body = s.slice(s.indexOf('\n}\nrha_update() {'));
    expect(body).not.toMatch(/^rha_update$/m);
    expect(body).toContain(
      [
        "if ! rha_apt install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold keepalived; then",
        `  if [ -z "$rha_updated" ] && printf '%s\\n' "$rha_out" | grep -qE 'Unable to locate package|has no installation candidate|Couldn'\\''t find any package'; then`,
        '    echo "@@rha:refreshed"',
        '    rha_update',
        '    rha_apt install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold keepalived',
        '  else exit 100; fi',
        'fi',
      ].join('\n'),
    );
    const u = applyScript('apt', { action: 'install', packages: ['keepalived'], updateCache: true }, 'allow');
    expect(u.indexOf('\nrha_update\n')).toBeGreaterThan(0);
    expect(u.indexOf('\nrha_update\n')).toBeLessThan(u.indexOf('if ! rha_apt install'));
  });
  it('apt: every apt-get waits for a held lock until lock_timeout, then exits 75 naming the holder', () => {
    const s = applyScript('apt', { action: 'remove', packages: ['keepalived'], updateCache: true }, 'allow', 7);
    expect(s).toContain('rha_deadline=$(( $(date +%s) + 7 ))');
    expect(s).toContain('rha_out=$(apt-get "$@" 2>&1) || rha_rc=$?');
    expect(s).toContain('echo "@@rha:lock-timeout $rha_holder" >&2\n      exit 75');
    expect(s).toMatch(/^  rha_apt update -q$/m);
    expect(s).toMatch(/^rha_apt remove -y -q keepalived$/m);
    expect(s).not.toMatch(/^\s*apt-get /m);
  });
  it('a lock held past lock_timeout: the message names the host, the holder and the way on', () => {
    const r = {
      display: 'apt-get install keepalived',
      code: 75,
      ok: false,
      durationMs: 1,
      stdout: '@@rha:lock-wait Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (unattended-upgr)\n',
      stderr: 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (unattended-upgr)\n@@rha:lock-timeout Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (unattended-upgr)\n',
    };
    expect(packageFailureMessage('node7', r, 30)).toBe(
      'node7: the package manager is busy: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (unattended-upgr), still after waiting 30 s. ' +
        'Another apt or dpkg run holds it (on a fresh machine often unattended-upgrades): let it finish, or stop it (systemctl stop unattended-upgrades), ' +
        "then run rha again; the package task's lock_timeout sets how long rha waits.",
    );
    // Any other failure: apt's own words, without rha's markers.
    expect(packageFailureMessage('node7', { ...r, code: 100, stdout: '', stderr: 'E: Unable to locate package nosuch\n' }, 30)).toBe(
      'apt-get install keepalived: exit 100\nE: Unable to locate package nosuch',
    );
    expect(packageFailureMessage('node7', { ...r, code: 100, stdout: '@@rha:refreshed\n', stderr: 'E: Unable to locate package nosuch\n' }, 30)).toBe(
      "apt-get install keepalived: exit 100\nE: Unable to locate package nosuch\n(node7: not found even after refreshing the package index: the package is not in this host's package sources)",
    );
  });
  it('rejects names that are not package names', () => {
    expect(argsError('package', { name: 'gcc; rm -rf /' })).toBe('not a package name');
  });
});

describe('service module', () => {
  it.each([
    ['started', false, ['start']],
    ['started', true, []],
    ['stopped', true, ['stop']],
    ['stopped', false, []],
    ['restarted', true, ['restart']],
    ['restarted', false, ['start']],
    ['reloaded', true, ['reload']],
    ['reloaded', false, ['start']],
  ] as const)('%s when running=%s → %j', (state, running, steps) => {
    expect(planServiceSteps({ state }, { running })).toEqual(steps);
  });
  it('enabled only acts on a known enablement', () => {
    expect(planServiceSteps({ state: 'started', enabled: true }, { running: true, enabled: false })).toEqual(['enable']);
    expect(planServiceSteps({ enabled: false }, { running: true, enabled: true })).toEqual(['disable']);
    expect(planServiceSteps({ enabled: true }, { running: true, enabled: undefined })).toEqual([]);
  });
  it('parses systemctl output', () => {
    expect(parseSystemdStatus('load=loaded\nactive=active\nenabled=enabled\n')).toMatchObject({ found: true, running: true, enabled: true });
    expect(parseSystemdStatus('load=loaded\nactive=inactive\nenabled=disabled\n')).toMatchObject({ running: false, enabled: false });
    expect(parseSystemdStatus('load=not-found\nactive=inactive\nenabled=\n')).toMatchObject({ found: false, enabled: undefined });
    expect(parseSystemdStatus('load=loaded\nactive=failed\nenabled=static\n')).toMatchObject({ running: false, enabled: undefined });
  });
  it('a start that systemd fails with 219/CGROUP (nothing of the service ran) is tried once more; any other failure is not', () => {
    // The script's own logic against a stand-in systemctl that logs its calls (a unit test: the
    // status cannot be provoked on demand on a real host).
    const dir = mkdtempSync(join(tmpdir(), 'rha-systemctl-'));
    try {
      const fake = (status: string, failures: number) => {
        writeFileSync(join(dir, 'n'), '0');
        writeFileSync(
          join(dir, 'systemctl'),
          `#!/bin/sh\necho "$*" >>${dir}/calls\ncase "$1" in show) echo ${status}; exit 0 ;; reset-failed) exit 0 ;; esac\nn=$(cat ${dir}/n); echo $((n + 1)) >${dir}/n\n[ "$n" -ge ${failures} ]\n`,
          { mode: 0o755 },
        );
        writeFileSync(join(dir, 'calls'), '');
      };
      const run = () => {
        const r = spawnSync('sh', ['-c', SYSTEMD_START, 'sh', 'keepalived', 'start'], { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: 'utf8' });
        return { code: r.status, out: r.stdout, calls: readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') };
      };
      fake('219', 1);
      let r = run();
      expect(r.code).toBe(0);
      expect(r.out).toContain('219/CGROUP, tried again');
      expect(r.calls).toEqual(['start -- keepalived', 'show -p ExecMainStatus --value -- keepalived', 'reset-failed -- keepalived', 'start -- keepalived']);
      fake('219', 2); // fails twice: the second failure is the result
      expect(run().code).toBe(1);
      fake('1', 1); // another failure: not retried
      r = run();
      expect(r.code).toBe(1);
      expect(r.calls).toEqual(['start -- keepalived', 'show -p ExecMainStatus --value -- keepalived']);
      fake('0', 0);
      r = run();
      expect(r.code).toBe(0);
      expect(r.calls).toEqual(['start -- keepalived']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("splits one `systemctl show` over several units into each unit's status lines; generated or missing units read alone", () => {
    const out = 'LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\nActiveState=inactive\nLoadState=loaded\nUnitFileState=disabled\n\nLoadState=loaded\nActiveState=inactive\nUnitFileState=generated\n\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n';
    expect(splitSystemdStatus(out, ['a', 'b', 'c', 'd'])).toEqual([
      'load=loaded\nactive=active\nenabled=enabled\n',
      'load=loaded\nactive=inactive\nenabled=disabled\n',
      undefined,
      undefined,
    ]);
    // Blocks that do not match the units keep nothing.
    expect(splitSystemdStatus(out, ['a', 'b'])).toEqual([undefined, undefined]);
  });
  it('systemd, no unit yet: check mode plans the enable (the unit comes from an earlier task of the run); a real run fails, naming the host', async () => {
    const conn: Connection = {
      hostName: 'node1',
      exec: async () => ({ display: 'status', code: 0, signal: null, stdout: 'load=not-found\nactive=inactive\nenabled=\n', stderr: '', ok: true, durationMs: 1 }),
      close: async () => undefined,
    };
    const host = { name: 'node1', connection: {} as never, groups: ['all'], vars: {} };
    const facts = { serviceManager: 'systemd' } as HostFacts;
    const a = serviceModule.args.parse({ name: 'redis-server', enabled: true });
    const dry = await serviceModule.plan(makeContext(host, conn, facts, { check: true }), a);
    expect(dry.changes.map((c) => c.description)).toEqual(['enable redis-server (its unit is not there yet: an earlier task of this run installs it)']);
    const started = await serviceModule.plan(makeContext(host, conn, facts, { check: true }), serviceModule.args.parse({ name: 'keepalived', state: 'started', enabled: true }));
    expect(started.changes.map((c) => c.description)).toEqual([
      'start keepalived (its unit is not there yet: an earlier task of this run installs it)',
      'enable keepalived (its unit is not there yet: an earlier task of this run installs it)',
    ]);
    await expect(serviceModule.plan(makeContext(host, conn, facts), a)).rejects.toThrow(new ModuleFailure('service redis-server not found on node1 (no systemd unit)'));
  });
  it('plain: a live pid counts only when it is this service', () => {
    expect(parsePlainStatus('pid 42\ncomm keepalived\ncmdline /usr/sbin/keepalived -f x \n', 'keepalived', '/run/k.pid')).toEqual({ running: true, pid: 42 });
    expect(parsePlainStatus('pid 42\ncomm sleep\ncmdline sleep 1000 \n', 'keepalived', '/run/k.pid')).toEqual({
      running: false,
      why: '/run/k.pid names pid 42, which is sleep (not keepalived): stale pidfile',
    });
    expect(parsePlainStatus('stale 42\n', 'x', '/p')).toEqual({ running: false, why: '/p names pid 42, which is not running' });
    expect(parsePlainStatus('nopidfile\n', 'x', '/p')).toEqual({ running: false, why: '/p does not exist' });
    // comm is cut to 15 characters by the kernel
    expect(parsePlainStatus('pid 7\ncomm redis-server-ex\ncmdline x\n', 'redis-server-extra', '/p')).toMatchObject({ running: true });
  });
  it.each([
    ['lsb 1 silent\npid 42 keepalived\n', { running: true, status: 'running (pid 42 in /run/keepalived.pid)' }],
    ['lsb 0 silent\npid none \n', { running: false, status: 'stopped (no live keepalived in /run/keepalived.pid)' }],
    ['lsb 0 answered\npid none \n', { running: true, status: 'running (init.d status 0)' }],
    ['lsb 3 answered\npid 42 sleep\n', { running: false, status: 'stopped (init.d status 3)' }],
    ['noinitd\n', undefined],
  ])('init.d: %j', (out, want) => expect(parseInitdStatus(out, 'keepalived')).toEqual(want));
  it('exec and pidfile go together; state or enabled needed', () => {
    expect(argsError('service', { name: 'x', state: 'started', exec: 'x' })).toBe('exec and pidfile go together');
    expect(argsError('service', { name: 'x' })).toBe('give state, enabled, or both');
  });
});

describe('user and group', () => {
  it('group commands', () => {
    expect(groupCommand(args('group', { name: 'redis', system: true }), undefined)).toEqual(['groupadd', '--system', 'redis']);
    expect(groupCommand(args('group', { name: 'redis' }), { gid: 998 })).toBeUndefined();
    expect(groupCommand(args('group', { name: 'redis', gid: 500 }), { gid: 998 })).toEqual(['groupmod', '--gid', '500', 'redis']);
    expect(groupCommand(args('group', { name: 'redis', state: 'absent' }), { gid: 998 })).toEqual(['groupdel', 'redis']);
    expect(parseGroupEntry('redis:x:998:\n')).toEqual({ name: 'redis', gid: 998 });
    expect(parseGroupEntry('')).toBeUndefined();
  });
  const entry = parsePasswdEntry('redis:x:999:998::/var/lib/redis:/usr/sbin/nologin\n')!;
  it.each([
    [{ name: 'redis', system: true, home: '/var/lib/redis', group: 'redis' }, undefined, undefined, ['useradd', '--system', '--gid', 'redis', '--home-dir', '/var/lib/redis', '--shell', '/usr/sbin/nologin', '--no-create-home', 'redis']],
    [{ name: 'redis', system: true, home: '/var/lib/redis', group: 'redis' }, entry, 998, undefined],
    [{ name: 'redis', system: true, shell: '/bin/sh' }, entry, undefined, ['usermod', '--shell', '/bin/sh', 'redis']],
    [{ name: 'redis', group: 'other' }, entry, 1000, ['usermod', '--gid', 'other', 'redis']],
    [{ name: 'redis', system: true }, { ...entry, shell: '/bin/false' }, undefined, undefined],
    [{ name: 'redis', state: 'absent' }, entry, undefined, ['userdel', 'redis']],
    [{ name: 'redis', state: 'absent' }, undefined, undefined, undefined],
  ])('%j', (a, cur, gid, want) => expect(userCommand(args('user', a), cur, gid)).toEqual(want));
});

describe('sysctl', () => {
  it('paths and values', () => {
    expect(procPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(procPath('net/ipv4/conf/eth0.10/forwarding')).toBe('/proc/sys/net/ipv4/conf/eth0.10/forwarding');
    expect(normalizeValue('4096\t87380  6291456 ')).toBe('4096 87380 6291456');
    expect(args('sysctl', { name: 'vm.overcommit_memory', value: true }).value).toBe('1');
  });
  it('upserts one line, keeping the others', () => {
    expect(upsertSysctlLine('', 'vm.overcommit_memory', '1')).toBe('# Managed by rha: kernel parameters set by playbooks.\nvm.overcommit_memory = 1\n');
    expect(upsertSysctlLine('a.b = 1\nvm.overcommit_memory=0\n# c\n', 'vm.overcommit_memory', '1')).toBe('a.b = 1\nvm.overcommit_memory = 1\n# c\n');
    expect(upsertSysctlLine('a.b = 1\n', 'vm.x', '2')).toBe('a.b = 1\nvm.x = 2\n');
  });
});

describe('wait_for', () => {
  it('probes', () => {
    expect(probeFor(args('wait_for', { port: 6379 }))).toMatchObject({ kind: 'port', want: 1, argv: ['127.0.0.1', '6379'], what: 'port 6379 on 127.0.0.1 to be open' });
    expect(probeFor(args('wait_for', { path: '/x', state: 'absent' }))).toMatchObject({ want: 0, metText: '/x is absent' });
    expect(probeFor(args('wait_for', { command: 'redis-cli ping' }))).toMatchObject({ argv: ['sh', '-c', 'redis-cli ping'] });
    expect(argsError('wait_for', { port: 1, path: '/x' })).toBe('give exactly one of port, path or command');
  });
  it('parses the poll output', () => {
    expect(parsePoll('met 3\n')).toEqual({ met: true, seconds: 3 });
    expect(parsePoll('timeout rc=1\nbash: connect: Connection refused\n')).toEqual({ met: false, last: 'bash: connect: Connection refused' });
    expect(parsePoll('timeout rc=1\n\n')).toEqual({ met: false, last: 'exit 1' });
  });
});
