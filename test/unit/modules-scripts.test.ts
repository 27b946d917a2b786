/**
 * The modules' remote scripts run for real by a local sh in a temp folder (no SSH): atomic write,
 * validate, backup, file states, command creates/removes, wait_for polling. Fast; real files.
 */
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostFacts, Module, TaskContext } from '../../src/core/types.js';
import { modules } from '../../src/modules/index.js';
import { writeFileAtomic } from '../../src/modules/lib/files.js';
import { redisCliCommand } from '../../src/modules/ha/redis-state.js';
import { LocalConnection, runModule } from '../support/context.js';

const facts = { hostname: 'local', osFamily: 'debian', packageManager: 'apt', serviceManager: 'plain' } as HostFacts;
let dir: string;
const warnings: string[] = [];
const ctx = (over: Partial<TaskContext> = {}): TaskContext => ({
  host: { name: 'local', connection: {} as any, groups: ['all'], vars: {} },
  conn: new LocalConnection(),
  facts,
  check: false,
  diff: true,
  become: false,
  vars: {},
  searchPaths: [dir],
  secrets: new Set(['s3cret-pw']),
  warn: (m) => warnings.push(m),
  signal: new AbortController().signal,
  ...over,
});
const mod = (name: string) => modules.get(name) as Module;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rha-modules-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** check → apply → apply: changed (host untouched), changed, ok. */
async function contract(module: string, args: unknown, untouched: () => Promise<unknown>) {
  const before = await untouched();
  const check = await runModule(mod(module), ctx({ check: true }), args);
  expect(check.outcome, 'check').toMatchObject({ changed: true, failed: false });
  expect(await untouched(), 'check mode changed nothing').toEqual(before);
  const first = await runModule(mod(module), ctx(), args);
  expect(first.outcome, 'first apply').toMatchObject({ changed: true, failed: false });
  const second = await runModule(mod(module), ctx(), args);
  expect(second.outcome, 'second apply').toMatchObject({ changed: false, failed: false });
  return { check, first, second };
}

const exists = (p: string) => stat(p).then(
  (s) => ({ mode: (s.mode & 0o7777).toString(8), kind: s.isDirectory() ? 'dir' : 'file' }),
  () => 'absent',
);

describe('copy (lib/files) on real files', () => {
  it('idempotency contract, diff masks the secret, mode from umask-safe temp', async () => {
    const dest = join(dir, 'redis.conf');
    const r = await contract('copy', { dest, content: 'requirepass s3cret-pw\n', mode: '0600' }, () => exists(dest));
    expect(r.check.plan.changes[0].diff).toEqual({ path: dest, before: '', after: 'requirepass ***\n' });
    expect(r.second.outcome.msg).toBe(`${dest} is up to date`);
    expect(await exists(dest)).toEqual({ mode: '600', kind: 'file' });
    expect((await readdir(dir)).filter((f) => f.includes('.rha-'))).toEqual([]);
  });
  it('mode change alone is a chmod, content kept', async () => {
    const dest = join(dir, 'redis.conf');
    const r = await runModule(mod('copy'), ctx(), { dest, content: 'requirepass s3cret-pw\n', mode: '0640' });
    expect(r.outcome.msg).toBe(`chmod 0640 ${dest} (was 0600)`);
    expect(await exists(dest)).toEqual({ mode: '640', kind: 'file' });
  });
  it('backup keeps the old file', async () => {
    const dest = join(dir, 'b.conf');
    await writeFile(dest, 'old\n');
    const r = await runModule(mod('copy'), ctx(), { dest, content: 'new\n', backup: true });
    const backup = r.outcome.data?.backup_file as string;
    expect(backup).toMatch(/b\.conf\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$/);
    expect(await readFile(backup, 'utf8')).toBe('old\n');
    expect(await readFile(dest, 'utf8')).toBe('new\n');
    expect(r.outcome.diffs).toEqual([{ path: dest, before: 'old\n', after: 'new\n' }]);
  });
  it('a failing validator leaves the real file untouched and no temp behind', async () => {
    const dest = join(dir, 'v.conf');
    await writeFile(dest, 'good\n');
    const r = await runModule(mod('copy'), ctx(), { dest, content: 'bad\n', validate: ['sh', '-c', 'grep -q good "$1" || { echo "syntax error in $1"; exit 1; }', 'sh', '%s'] });
    expect(r.outcome.failed).toBe(true);
    expect(r.outcome.msg).toMatch(new RegExp(`^validation of ${dest} failed \\(sh -c .*\\); the file was not changed:\\nsyntax error in ${dest}\\.rha-\\w+$`));
    expect(await readFile(dest, 'utf8')).toBe('good\n');
    expect((await readdir(dir)).filter((f) => f.startsWith('v.conf.rha-'))).toEqual([]);
    const ok = await runModule(mod('copy'), ctx(), { dest, content: 'good too\n', validate: 'grep -q good %s' });
    expect(ok.outcome).toMatchObject({ changed: true, failed: false });
  });
  it('src resolves through searchPaths (files/ first)', async () => {
    await writeFile(join(dir, 'src.txt'), 'from file\n');
    const dest = join(dir, 'copied.txt');
    await contract('copy', { src: 'src.txt', dest }, () => exists(dest));
    expect(await readFile(dest, 'utf8')).toBe('from file\n');
    const missing = mod('copy').plan(ctx(), mod('copy').args.parse({ src: 'nope.txt', dest }));
    await expect(missing).rejects.toThrow(`src nope.txt not found (looked in: ${dir}/files/nope.txt, ${dir}/nope.txt)`);
  });
  it('writeFileAtomic reports a missing folder', async () => {
    const w = await writeFileAtomic(ctx(), { dest: join(dir, 'no/such/x'), content: 'x' });
    expect(w).toMatchObject({ ok: false });
    expect((w as { msg: string }).msg).toMatch(/^cannot create a temp file beside .*no\/such\/x:\nmktemp: /);
  });
});

describe('keep_previous + service rollback: a restart that fails with a new config puts the old one back', () => {
  it('the replaced file is kept as .rha-prev (same bytes and mode); a failed restart restores it and starts again; a good one forgets it', async () => {
    const conf = join(dir, 'svc.conf');
    const pidfile = join(dir, 'svc.pid');
    // A daemon that refuses a config holding "bad", as Redis refuses a bad path.
    const svc = {
      name: 'svc',
      exec: ['sh', '-c', 'grep -q bad "$1" && { echo "bad directive in $1" >&2; exit 3; }; echo $$ > "$2"; exec sleep 300', 'sh', conf, pidfile],
      pidfile,
      match: 'sleep',
      log_file: join(dir, 'svc.log'),
      start_timeout: 5,
      rollback: [conf],
    };
    const write = (content: string) => runModule(mod('copy'), ctx(), { dest: conf, content, mode: '0640', keep_previous: true });
    const first = await write('requirepass s3cret-pw\ngood\n');
    expect(first.outcome.data?.previous_file).toBeUndefined();
    expect((await runModule(mod('service'), ctx(), { ...svc, state: 'started' })).outcome).toMatchObject({ changed: true, failed: false });

    const second = await write('requirepass s3cret-pw\nbad\n');
    expect(second.outcome.data?.previous_file).toBe(`${conf}.rha-prev`);
    expect(await readFile(`${conf}.rha-prev`, 'utf8')).toBe('requirepass s3cret-pw\ngood\n');
    expect(await exists(`${conf}.rha-prev`)).toEqual({ mode: '640', kind: 'file' });

    const failedRestart = await runModule(mod('service'), ctx(), { ...svc, state: 'restarted' });
    expect(failedRestart.outcome.failed).toBe(true);
    expect(failedRestart.outcome.msg).toMatch(
      new RegExp(`^restart svc failed on local with the new svc\\.conf; restored the previous one, svc running again \\(the rejected file is kept as ${conf}\\.rha-rejected\\):\\nrestart svc failed: .*exited with status 3[^]*bad directive in ${conf}`),
    );
    expect(await readFile(conf, 'utf8')).toBe('requirepass s3cret-pw\ngood\n');
    expect(await exists(conf)).toEqual({ mode: '640', kind: 'file' });
    expect(await readFile(`${conf}.rha-rejected`, 'utf8')).toBe('requirepass s3cret-pw\nbad\n');
    expect(await exists(`${conf}.rha-prev`)).toBe('absent');
    const status = await runModule(mod('service'), ctx(), { ...svc, state: 'started' });
    expect(status.outcome.msg).toMatch(/^svc is running \(pid \d+\)$/);

    // Without a previous copy (nothing was written since), a failure is only reported.
    await writeFile(conf, 'bad\n');
    const bare = await runModule(mod('service'), ctx(), { ...svc, state: 'restarted' });
    expect(bare.outcome.msg).toMatch(/^restart svc failed: /);
    expect(await readFile(conf, 'utf8')).toBe('bad\n');

    // A config that works: the service runs with it, and the way back is forgotten.
    await write('good again\n');
    expect((await runModule(mod('service'), ctx(), { ...svc, state: 'restarted' })).outcome).toMatchObject({ changed: true, failed: false });
    expect(await exists(`${conf}.rha-prev`)).toBe('absent');
    expect(await exists(`${conf}.rha-rejected`)).toBe('absent');
    expect((await runModule(mod('service'), ctx(), { ...svc, state: 'stopped' })).outcome).toMatchObject({ changed: true, failed: false });
  });
});

describe('file', () => {
  it('directory, then file inside, link, absent: each idempotent', async () => {
    const d = join(dir, 'd');
    await contract('file', { path: d, state: 'directory', mode: '0750' }, () => exists(d));
    expect(await exists(d)).toEqual({ mode: '750', kind: 'dir' });
    const f = join(d, 'f');
    await contract('file', { path: f, mode: '0600' }, () => exists(f));
    expect(await exists(f)).toEqual({ mode: '600', kind: 'file' });
    const l = join(dir, 'l');
    await contract('file', { path: l, state: 'link', src: f }, () => exists(l));
    await symlink('/nowhere', join(dir, 'l2'));
    const relink = await runModule(mod('file'), ctx(), { path: join(dir, 'l2'), state: 'link', src: f });
    expect(relink.outcome.msg).toBe(`link ${dir}/l2 -> ${f} (was -> /nowhere)`);
    await contract('file', { path: d, state: 'absent' }, () => exists(d));
    expect(await exists(d)).toBe('absent');
  });
  it('a directory with the setgid bit (as Debian redis-tools leaves /etc/redis) gets exactly the mode: a re-run changes nothing', async () => {
    const d = join(dir, 'sgid');
    await mkdir(d);
    await chmod(d, 0o2770);
    await contract('file', { path: d, state: 'directory', mode: '0750' }, () => exists(d));
    expect(await exists(d)).toEqual({ mode: '750', kind: 'dir' });
  });
});

describe('command and shell', () => {
  it('runs every time without creates; data rc/stdout/stdout_lines', async () => {
    const r = await runModule(mod('command'), ctx(), { cmd: 'printf "a\\nb\\n"', chdir: dir });
    expect(r.outcome).toMatchObject({ changed: true, failed: false, data: { rc: 0, stdout: 'a\nb', stdout_lines: ['a', 'b'] } });
    const again = await runModule(mod('command'), ctx({ check: true }), 'true');
    expect(again.plan.changes).toEqual([{ description: 'run true' }]);
  });
  it('creates: skipped with the reason once the file exists', async () => {
    const marker = join(dir, 'made');
    const r = await contract('shell', { cmd: `echo $X > ${marker}`, creates: marker, env: { X: 'hi' } }, () => exists(marker));
    expect(r.second.outcome.msg).toBe(`creates ${marker} exists`);
    expect(await readFile(marker, 'utf8')).toBe('hi\n');
    const rm1 = await runModule(mod('command'), ctx(), { argv: ['rm', marker], removes: marker });
    expect(rm1.outcome.changed).toBe(true);
    const rm2 = await runModule(mod('command'), ctx(), { argv: ['rm', marker], removes: marker });
    expect(rm2.outcome).toMatchObject({ changed: false, msg: `removes ${marker} does not exist` });
  });
  it('a failing command is a failed result with what ran', async () => {
    const r = await runModule(mod('shell'), ctx(), { cmd: 'echo boom >&2; exit 3', stdin: 'x' });
    expect(r.outcome).toMatchObject({ failed: true, changed: true, data: { rc: 3, stderr: 'boom' } });
    expect(r.outcome.msg).toBe("sh -c 'echo boom >&2; exit 3': exit 3\nboom");
  });
});

describe('wait_for polls in one command', () => {
  it('met now: ok with the reason; later: waits; never: fails with what it saw', async () => {
    const p = join(dir, 'later');
    const now = await runModule(mod('wait_for'), ctx(), { path: dir });
    expect(now.outcome).toMatchObject({ changed: false, failed: false, msg: `${dir} exists` });
    setTimeout(() => void writeFile(p, ''), 1200);
    const later = await runModule(mod('wait_for'), ctx(), { path: p, timeout: 10, interval: 0.2 });
    expect(later.outcome).toMatchObject({ changed: false, failed: false });
    expect(later.outcome.msg).toMatch(new RegExp(`^waited \\d s for ${p} to exist$`));
    const never = await runModule(mod('wait_for'), ctx(), { command: 'echo not yet; exit 1', timeout: 1, interval: 0.3 });
    expect(never.outcome).toMatchObject({ failed: true, msg: "timed out after 1 s waiting for sh -c 'echo not yet; exit 1' to exit 0; last: not yet" });
    const port = await runModule(mod('wait_for'), ctx(), { port: 1, timeout: 1, interval: 0.5 });
    expect(port.outcome.failed).toBe(true);
    expect(port.outcome.msg).toMatch(/^timed out after 1 s waiting for port 1 on 127\.0\.0\.1 to be open; last: .*Connection refused/);
  });
});

describe('assert', () => {
  it('passes with the reason, fails with fail_msg, never changes', async () => {
    const ok = await runModule(mod('assert'), ctx({ vars: { a: 1 } }), { that: ['eq a 1'], success_msg: 'a is one' });
    expect(ok.outcome).toEqual({ changed: false, failed: false, msg: 'a is one' });
    const bad = await runModule(mod('assert'), ctx({ vars: { a: 2 } }), { that: ['eq a 1'], fail_msg: 'a must be 1' });
    expect(bad.outcome).toMatchObject({ changed: false, failed: true, msg: 'a must be 1' });
  });
  it('warn: true turns a failed condition into a warning; the run goes on', async () => {
    warnings.length = 0;
    const w = await runModule(mod('assert'), ctx({ vars: { a: 2 } }), { that: ['eq a 1'], fail_msg: 'a should be 1', warn: true });
    expect(w.outcome).toEqual({ changed: false, failed: false, msg: 'warning: a should be 1' });
    expect(warnings).toEqual(['a should be 1']);
  });
});

describe('redisCliCommand: the Redis password reaches redis-cli over a pipe only', () => {
  // A stand-in redis-cli that reports what it received, and whether the password is in the argv or
  // environment of itself or any ancestor (timeout, the script's sh).
  const STUB = `#!/bin/sh
IFS= read -r pw
printf 'argv=%s\\n' "$*"
printf 'stdin=[%s]\\n' "$pw"
hits=0; p=$$
while [ "$p" -gt 1 ]; do
  for f in environ cmdline; do tr '\\0' '\\n' </proc/$p/$f | grep -qF -- "$pw" && hits=$((hits + 1)); done
  p=$(sed 's/.*) [A-Z] \\([0-9]*\\).*/\\1/' /proc/$p/stat)
done
echo "hits=$hits"
`;

  it('argv has --askpass and the command, stdin the exact password, no environ/cmdline holds it', async () => {
    const cli = join(dir, 'redis-cli-stub');
    await writeFile(cli, STUB, { mode: 0o755 });
    const password = ` p w"\\$x'#é `;
    const cmd = redisCliCommand('rcli PING\nrcli INFO replication', { cliPath: cli, port: 6380, password, become: false }, { timeoutMs: 5000 });
    expect(cmd.env).toBeUndefined();
    expect(cmd.argv.join(' ')).not.toContain(password);
    const r = await new LocalConnection().exec(cmd);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      [
        '--askpass -h 127.0.0.1 -p 6380 PING',
        `[${password}]`,
        'hits=0',
        '--askpass -h 127.0.0.1 -p 6380 INFO replication',
        `[${password}]`,
        'hits=0',
        '',
      ]
        .join('\n')
        .replace(/^--/gm, 'argv=--')
        .replace(/^\[/gm, 'stdin=['),
    );
  });

  it('refuses a password that one line cannot carry', () => {
    expect(() => redisCliCommand('rcli PING', { cliPath: 'x', port: 1, password: 'a\nb', become: false }, { timeoutMs: 1 })).toThrow(
      'the Redis password contains a newline or NUL',
    );
  });
});

describe('copy/template secret: the old value on disk never reaches the plan, the outcome or the registered data', () => {
  it('copy secret: true over a real file holding a password the run does not know', async () => {
    const dest = join(dir, 'redis.auth');
    await writeFile(dest, 'old-pw-on-disk', { mode: 0o600 });
    const args = { content: 'new-pw', dest, mode: '0600', secret: true };
    const check = await runModule(mod('copy'), ctx({ check: true, secrets: new Set(['new-pw']) }), args);
    expect(check.plan.changes).toEqual([
      { description: `update ${dest} (secret, mode 0600)`, diff: { path: dest, before: '***', after: '*** (secret changed)' } },
    ]);
    const applied = await runModule(mod('copy'), ctx({ secrets: new Set(['new-pw']) }), args);
    expect(applied.outcome.changed).toBe(true);
    expect(await readFile(dest, 'utf8')).toBe('new-pw');
    // What leaves the module (printed, or registered) holds neither value, nor the checksum: it
    // is the password's hash. (plan.state is module-private and never leaves it.)
    const out = [check, applied].map((r) => ({ changes: r.plan.changes, data: r.plan.data, outcome: r.outcome }));
    expect(JSON.stringify(out)).not.toMatch(/old-pw|new-pw|[0-9a-f]{64}/);
  });

  it('template secret: [directives] masks those lines; a bad directive name is refused', async () => {
    const dest = join(dir, 'app.conf');
    await writeFile(join(dir, 'app.conf.hbs'), 'port 1\nsecret_key_base {{key}}\n');
    await writeFile(dest, 'port 1\nsecret_key_base old-key\n');
    const r = await runModule(mod('template'), ctx({ check: true, vars: { key: 'new-key' } }), { src: 'app.conf.hbs', dest, secret: ['secret_key_base'] });
    expect(r.plan.changes[0].diff).toEqual({ path: dest, before: 'port 1\nsecret_key_base ***\n', after: 'port 1\nsecret_key_base *** (secret changed)\n' });
    expect(() => mod('template').args.parse({ src: 'x', dest, secret: ['a b'] })).toThrow('a directive name');
  });
});
