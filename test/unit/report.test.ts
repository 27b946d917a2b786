import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import type { RunEvent } from '../../src/core/types.js';
import { createReporter, defaultOutput, maskSecretLine, PrettyReporter, unifiedDiff } from '../../src/report/index.js';
import { maskFileDiff } from '../../src/report/diff.js';

function sink(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  return { out, text: () => Buffer.concat(chunks).toString('utf8') };
}

const recap = (hosts: string[], over: Partial<Record<string, Partial<Record<string, number>>>> = {}): RunEvent => ({
  kind: 'recap',
  hosts: Object.fromEntries(hosts.map((h) => [h, { ok: 2, changed: 1, failed: 0, skipped: 1, unreachable: 0, ignored: 0, ...over[h] }])),
  warnings: { node1: ['auth_pass is longer than 8 characters; keepalived uses the first 8'] },
  durationMs: 12_300,
  interrupted: false,
});

const SECRET = 's3cret-Redis-pw';

const events: RunEvent[] = [
  { kind: 'run-start', playbook: 'playbooks/site.yaml', inventory: 'inv.yaml', check: false, hosts: ['node1', 'node10'] },
  { kind: 'play-start', play: 'Redis', hosts: ['node1', 'node10'] },
  { kind: 'task-start', play: 'Redis', task: 'install redis', host: 'node1', handler: false },
  { kind: 'task-end', play: 'Redis', task: 'install redis', host: 'node1', handler: false, status: 'ok', msg: 'redis 7.0.15 is installed', durationMs: 5 },
  {
    kind: 'task-end',
    play: 'Redis',
    task: 'redis.conf',
    host: 'node1',
    handler: false,
    status: 'changed',
    msg: `write /etc/redis/redis.conf (requirepass ${SECRET})`,
    changes: [{ description: 'write /etc/redis/redis.conf (mode 0640)' }],
    diffs: [{ path: '/etc/redis/redis.conf', before: 'port 6379\nrequirepass old-password\nsave ""\n', after: `port 6379\nrequirepass ${SECRET}\nsave ""\n` }],
    durationMs: 9,
  },
  {
    kind: 'task-end',
    play: 'Redis',
    task: 'build redis',
    host: 'node10',
    handler: false,
    status: 'failed',
    msg: 'make -C /usr/local/src/redis-7.0.15: exit 2\ncc: not found\nmake: *** [Makefile:6: all] Error 2',
    durationMs: 900,
  },
  { kind: 'task-end', play: 'Redis', task: 'restart redis', host: 'node1', handler: true, status: 'changed', msg: 'restarted redis', durationMs: 3 },
  { kind: 'warning', msg: 'play "x": no hosts matched "y"' },
  { kind: 'play-end', play: 'Redis' },
  recap(['node1', 'node10'], { node10: { ok: 1, changed: 0, failed: 1, skipped: 0 } }),
];

describe('plain reporter', () => {
  test('one line per result, play header, failure output, recap like Ansible', async () => {
    const s = sink();
    const r = createReporter('plain', { out: s.out, verbosity: 0, diff: false }, new Set([SECRET]));
    for (const e of events) r.emit(e);
    await r.close();
    expect(s.text()).toBe(
      [
        'rha: playbooks/site.yaml on 2 hosts of inv.yaml',
        '',
        'PLAY [Redis] ' + '*'.repeat(66),
        '[node1] ok: install redis — redis 7.0.15 is installed',
        '[node1] changed: redis.conf — write /etc/redis/redis.conf (requirepass ***)',
        '[node10] failed: build redis — make -C /usr/local/src/redis-7.0.15: exit 2',
        '    cc: not found',
        '    make: *** [Makefile:6: all] Error 2',
        '[node1] changed: restart redis (handler) — restarted redis',
        '[WARNING] play "x": no hosts matched "y"',
        '',
        'PLAY RECAP ' + '*'.repeat(68),
        'node1  : ok=2 changed=1 unreachable=0 failed=0 skipped=1 ignored=0',
        'node10 : ok=1 changed=0 unreachable=0 failed=1 skipped=0 ignored=0',
        '',
        'WARNINGS',
        '  play "x": no hosts matched "y"',
        '  [node1] auth_pass is longer than 8 characters; keepalived uses the first 8',
        '',
        'finished in 12.3s',
        '',
      ].join('\n'),
    );
  });

  test('-v lists changes, --diff shows a unified diff with secret lines masked', async () => {
    const s = sink();
    const r = createReporter('plain', { out: s.out, verbosity: 1, diff: true }, new Set([SECRET]));
    for (const e of events) r.emit(e);
    await r.close();
    const text = s.text();
    expect(text).toContain(
      [
        '[node1] changed: redis.conf — write /etc/redis/redis.conf (requirepass ***)',
        '    - write /etc/redis/redis.conf (mode 0640)',
        '    --- /etc/redis/redis.conf (before)',
        '    +++ /etc/redis/redis.conf (after)',
        '    @@ -1,3 +1,3 @@',
        '     port 6379',
        '    -requirepass ***',
        '    +requirepass *** (secret changed)',
        '     save ""',
      ].join('\n'),
    );
    expect(text).toContain('[node1] start: install redis');
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('old-password');
  });

  test('interrupted recap says so', async () => {
    const s = sink();
    const r = createReporter('plain', { out: s.out, verbosity: 0, diff: false }, new Set());
    r.emit({ kind: 'recap', hosts: {}, warnings: {}, durationMs: 10, interrupted: true });
    expect(s.text()).toContain('interrupted: stopped before the run finished (Ctrl-C)');
  });

  test('a broken stream never throws', () => {
    const out = new PassThrough();
    out.destroy();
    const r = createReporter('plain', { out, verbosity: 0, diff: false }, new Set());
    expect(() => events.forEach((e) => r.emit(e))).not.toThrow();
  });
});

describe('json reporter', () => {
  test('one event per line, masked, then a summary with the exit code', async () => {
    const s = sink();
    const r = createReporter('json', { out: s.out, verbosity: 0, diff: true }, new Set([SECRET]));
    for (const e of events) r.emit(e);
    await r.close();
    const lines = s.text().trimEnd().split('\n');
    expect(lines).toHaveLength(events.length + 1);
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed.map((p) => p.kind)).toEqual([...events.map((e) => e.kind), 'summary']);
    expect(parsed.at(-1)).toEqual({ kind: 'summary', exitCode: 2, interrupted: false, durationMs: 12_300, failed: ['node10'], unreachable: [] });
    expect(s.text()).not.toContain(SECRET);
    expect(parsed[4].diffs[0].after).toBe('port 6379\nrequirepass *** (secret changed)\nsave ""\n');
    expect(parsed[4].diffs[0].before).toBe('port 6379\nrequirepass ***\nsave ""\n');
    expect(s.text()).not.toContain('old-password');
  });
});

describe('diffs', () => {
  test('unified diff hunks with context', () => {
    const before = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join('\n') + '\n';
    const after = before.replace('line 3\n', 'line three\n').replace('line 18\n', '');
    expect(unifiedDiff({ path: 'f', before, after })).toBe(
      [
        '--- f (before)',
        '+++ f (after)',
        '@@ -1,6 +1,6 @@',
        ' line 1',
        ' line 2',
        '-line 3',
        '+line three',
        ' line 4',
        ' line 5',
        ' line 6',
        '@@ -15,6 +15,5 @@',
        ' line 15',
        ' line 16',
        ' line 17',
        '-line 18',
        ' line 19',
        ' line 20',
      ].join('\n'),
    );
    expect(unifiedDiff({ path: 'f', before: '', after: 'a\n' })).toBe('--- f (before)\n+++ f (after)\n@@ -0,0 +1,1 @@\n+a');
    expect(unifiedDiff({ path: 'f', before: 'a\n', after: 'a\n' })).toBe('');
  });

  test.each([
    ['-requirepass oldpass', '-requirepass ***'],
    ['+requirepass *** (secret changed)', '+requirepass *** (secret changed)'],
    ['+masterauth "x y"', '+masterauth ***'],
    ['+tls-key-file-pass hunter2', '+tls-key-file-pass ***'],
    ['+requirepass old\r', '+requirepass ***'],
    ['     auth_pass abcdefgh', '     auth_pass ***'],
    ['+REDIS_PASSWORD=foo', '+REDIS_PASSWORD=***'],
    [' port 6379', ' port 6379'],
    ['-# requirepass foobared', '-# requirepass ***'],
    ['+# The password comes from a root-only file', '+# The password comes from a root-only file'],
    ['+password_file /etc/app/pw', '+password_file /etc/app/pw'],
  ])('maskSecretLine(%j) → %j', (line, masked) => {
    expect(maskSecretLine(line)).toBe(masked);
  });
});

describe('secret lines in diffs (masked on both sides, compared by hash)', () => {
  const OLD = 'Old-pw "q" #1';
  const NEW = 'n3w\\pw';
  const conf = (pw: string, vrrp: string) =>
    `port 6379\nrequirepass "${pw}"\nmasterauth "${pw}"\n    authentication {\n        auth_pass ${vrrp}\n    }\n`;

  test('redis.conf / keepalived.conf: a changed password reads "(secret changed)", values never shown', () => {
    const d = maskFileDiff({ path: '/etc/redis/redis.conf', before: conf(OLD, 'oldvrrp1'), after: conf(NEW, 'newvrrp1') }, { values: [NEW, 'newvrrp1'] });
    expect(d.before).toBe('port 6379\nrequirepass ***\nmasterauth ***\n    authentication {\n        auth_pass ***\n    }\n');
    expect(d.after).toBe(
      'port 6379\nrequirepass *** (secret changed)\nmasterauth *** (secret changed)\n    authentication {\n        auth_pass *** (secret changed)\n    }\n',
    );
    expect(unifiedDiff(d)).toBe(
      [
        '--- /etc/redis/redis.conf (before)',
        '+++ /etc/redis/redis.conf (after)',
        '@@ -1,6 +1,6 @@',
        ' port 6379',
        '-requirepass ***',
        '-masterauth ***',
        '+requirepass *** (secret changed)',
        '+masterauth *** (secret changed)',
        '     authentication {',
        '-        auth_pass ***',
        '+        auth_pass *** (secret changed)',
        '     }',
      ].join('\n'),
    );
  });

  test('an unchanged secret shows no change; only the other lines differ', () => {
    const d = maskFileDiff({ path: 'f', before: conf(OLD, 'v') + 'save ""\n', after: conf(OLD, 'v') + 'save 60 1\n' });
    expect(unifiedDiff(d)).toBe(['--- f (before)', '+++ f (after)', '@@ -4,4 +4,4 @@', '     authentication {', '         auth_pass ***', '     }', '-save ""', '+save 60 1'].join('\n'));
  });

  test('a password file (secret: true): every line masked, even values nobody knows', () => {
    const d = maskFileDiff({ path: '/etc/keepalived/rha/redis.auth', before: `${OLD}\n`, after: `${NEW}\n` }, { whole: true });
    expect(d).toEqual({ path: '/etc/keepalived/rha/redis.auth', before: '***\n', after: '*** (secret changed)\n' });
    expect(unifiedDiff(d)).toBe(['--- /etc/keepalived/rha/redis.auth (before)', '+++ /etc/keepalived/rha/redis.auth (after)', '@@ -1,1 +1,1 @@', '-***', '+*** (secret changed)'].join('\n'));
    // Unchanged: nothing to show.
    expect(unifiedDiff(maskFileDiff({ path: 'a', before: 'x\n', after: 'x\n' }, { whole: true }))).toBe('');
  });

  test('unmarked files: a line holding a run secret marks its key on both sides; one starting with it, the whole file', () => {
    expect(maskFileDiff({ path: 'a', before: 'x 1\nlogin_key OLD\n', after: 'x 2\nlogin_key NEW\n' }, { values: ['NEW'] })).toEqual({
      path: 'a',
      before: 'x 1\nlogin_key ***\n',
      after: 'x 2\nlogin_key *** (secret changed)\n',
    });
    expect(maskFileDiff({ path: 'a', before: 'OLD\n', after: 'NEW\n' }, { values: ['NEW'] }).before).toBe('***\n');
  });

  test('module directives, CRLF and already-masked lines', () => {
    expect(maskFileDiff({ path: 'a', before: 'user default on >old\n', after: 'user default on >new\n' }, { directives: ['user'] }).before).toBe('user ***\n');
    // A CR after the value must not stop the match and leave the value shown.
    expect(maskFileDiff({ path: 'a', before: 'requirepass old\r\n', after: '' }).before).toBe('requirepass ***\n');
    const once = maskFileDiff({ path: 'a', before: conf(OLD, 'a'), after: conf(NEW, 'b') });
    expect(maskFileDiff(once)).toEqual(once);
  });

  test('every output format: neither the old nor the new value of an unmarked password file', async () => {
    for (const format of ['plain', 'json', 'pretty'] as const) {
      const s = sink();
      const r = createReporter(format, { out: s.out, verbosity: 2, diff: true }, new Set([NEW]));
      const diff = { path: '/etc/app.auth', before: `${OLD}\n`, after: `${NEW}\n` };
      r.emit({ kind: 'play-start', play: 'p', hosts: ['a'] });
      r.emit({ kind: 'task-end', play: 'p', task: 't', host: 'a', handler: false, status: 'changed', msg: 'update', changes: [{ description: 'update', diff }], diffs: [diff], durationMs: 1 });
      r.emit({ kind: 'play-end', play: 'p' });
      await r.close();
      expect(s.text(), format).not.toContain('Old-pw');
      expect(s.text(), format).not.toContain('n3w');
      expect(s.text(), format).toContain('*** (secret changed)');
    }
  });
});

describe('pretty reporter', () => {
  test('100 hosts: finished hosts collapse into counts, only running and failed hosts are listed', async () => {
    const s = sink();
    const r = new PrettyReporter({ out: s.out, verbosity: 0, diff: false, forceRender: true, maxListed: 5 });
    const hosts = Array.from({ length: 100 }, (_, i) => `node${i + 1}`);
    r.emit({ kind: 'run-start', playbook: 'site.yaml', inventory: 'inv.yaml', check: false, hosts });
    r.emit({ kind: 'play-start', play: 'Redis', hosts });
    for (const host of hosts) r.emit({ kind: 'task-start', play: 'Redis', task: 'install', host, handler: false });
    // Wait for the live view to draw the running hosts (listr2 renders on a timer, late on a busy machine).
    for (let waited = 0; waited < 10_000 && !s.text().includes('more running'); waited += 25) {
      await new Promise((res) => setTimeout(res, 25));
    }
    for (const host of hosts) {
      const failed = host === 'node7' || host === 'node42';
      r.emit({
        kind: 'task-end',
        play: 'Redis',
        task: 'install',
        host,
        handler: false,
        status: failed ? 'failed' : 'changed',
        msg: failed ? `apt-get install keepalived: exit 100\nE: Unable to locate package keepalived (${SECRET})` : 'installed',
        durationMs: 1,
      });
    }
    r.emit({ kind: 'play-end', play: 'Redis' });
    r.emit(recap(hosts));
    await r.close();
    const text = s.text();
    // The live view listed at most 5 running hosts and summarised the rest.
    expect(text).toContain('… and 95 more running');
    expect(text).toContain('Redis — 100 hosts: 98 changed, 2 failed, 98 ok');
    expect(text).toContain('✖ node7 — install: apt-get install keepalived: exit 100');
    // Failure output once the play is done, and the recap.
    expect(text).toContain('[node42] failed: install — apt-get install keepalived: exit 100\n    E: Unable to locate package keepalived');
    expect(text).toContain('PLAY RECAP');
    expect(text.split('\n').filter((l) => /^node\d+ +: ok=/.test(l))).toHaveLength(100);
    // Bounded: no line per finished host in the live view.
    expect(text).not.toMatch(/node99 ▸/);
  });

  test('pretty masks secrets through createReporter', async () => {
    const s = sink();
    const r = createReporter('pretty', { out: s.out, verbosity: 0, diff: false }, new Set([SECRET]));
    r.emit({ kind: 'play-start', play: 'p', hosts: ['a'] });
    r.emit({ kind: 'task-end', play: 'p', task: 't', host: 'a', handler: false, status: 'failed', msg: `x ${SECRET}`, durationMs: 1 });
    r.emit({ kind: 'play-end', play: 'p' });
    await r.close();
    expect(s.text()).not.toContain(SECRET);
    expect(s.text()).toContain('x ***');
  });
});

test('default output: pretty only on a TTY outside CI', () => {
  expect(defaultOutput({ isTTY: true }, {})).toBe('pretty');
  expect(defaultOutput({ isTTY: true }, { CI: 'true' })).toBe('plain');
  expect(defaultOutput({ isTTY: false }, {})).toBe('plain');
  expect(defaultOutput({}, {})).toBe('plain');
  expect(defaultOutput({ isTTY: true, columns: 0 }, {})).toBe('plain');
  expect(defaultOutput({ isTTY: true, columns: 120 }, { TERM: 'dumb' })).toBe('plain');
});
