/**
 * Read-ahead (src/runner/read-ahead.ts): the batch script run by a real local `sh`, and the
 * runner's use of it with a connection that runs commands locally (one counted command each).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import type { Command, CommandResult } from '../../src/core/command.js';
import type { Connection, HostFacts, Module, PlaySpec, ReadSpec, TaskContext, TaskSpec } from '../../src/core/types.js';
import { modules } from '../../src/modules/index.js';
import { UNKNOWN_FACTS } from '../../src/runner/context.js';
import { changed as changedOutcome, runScript } from '../../src/modules/lib/run.js';
import { batchScript, HostReadAhead, parseBatch, planJobs } from '../../src/runner/read-ahead.js';
import { remoteFileRead } from '../../src/modules/lib/files.js';
import { pathStateRead } from '../../src/modules/file.js';
import { runPlaybook } from '../../src/runner/index.js';
import { harness, inventory, play, playbook, task } from './runner-helpers.js';

function sh(script: string): string {
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
  return r.stdout;
}

/** Host h1 as this machine: runs each command here, noting in `commands` whether it was a batch or a single read. */
function localHost(commands: string[], texts: string[] = []): Connection {
  return {
    hostName: 'h1',
    async exec(cmd: Command): Promise<CommandResult> {
      commands.push(cmd.argv.join(' ').includes('@@rha-ra:') ? 'batch' : 'read');
      texts.push(cmd.argv.join(' '));
      const r = spawnSync(cmd.argv[0], cmd.argv.slice(1), { encoding: 'utf8', input: typeof cmd.stdin === 'string' ? cmd.stdin : '' });
      return { display: cmd.argv.join(' '), code: r.status, stdout: r.stdout, stderr: r.stderr, ok: r.status === 0, durationMs: 0 };
    },
    async close() {},
  };
}

describe('batch script', () => {
  test('each read runs with its own arguments; output kept exactly; failed reads are not kept', () => {
    const nonce = 'abc123';
    const reads = [
      { script: 'printf "%s|" "$@"', args: ['a b', "it's", '$HOME', ''] },
      { script: 'printf "no newline"', args: [] },
      { script: 'echo partial; exit 3', args: [] },
      { script: 'p=$1\nif [ "$p" = x ]; then echo was-x; exit 0; fi\necho not-x', args: ['x'] },
      { script: 'cat; echo "stdin done"', args: [] },
    ];
    const outs = parseBatch(sh(batchScript(reads, nonce)), nonce, reads.length);
    expect(outs).toEqual(["a b|it's|$HOME||", 'no newline', undefined, 'was-x\n', 'stdin done\n']);
  });

  test('output that is not the batch (markers out of order or missing) keeps nothing', () => {
    expect(parseBatch('x@@rha-ra:n:1:0@@y@@rha-ra:n:0:0@@', 'n', 2)).toEqual([undefined, undefined]);
    expect(parseBatch('x@@rha-ra:n:0:0@@', 'n', 2)).toEqual(['x', undefined]);
    // Another nonce's markers are plain output.
    expect(parseBatch('a@@rha-ra:m:0:0@@b@@rha-ra:n:0:0@@', 'n', 1)).toEqual(['a@@rha-ra:m:0:0@@b']);
  });
});

describe('the runner reads ahead for runs of reader tasks', () => {
  /** A reader module over a local folder: `want` is the content it wants in file `name`. */
  function setup() {
    const dir = mkdtempSync(path.join(tmpdir(), 'rha-read-ahead-'));
    const commands: string[] = [];
    const READ = 'cat -- "$1" 2>/dev/null || echo absent';
    const args = z.strictObject({ name: z.string(), want: z.string() });
    const reader: Module<z.infer<typeof args>> = {
      name: 'reader',
      args,
      reads: (a) => [{ script: READ, args: [path.join(dir, a.name)] }],
      async plan(ctx, a) {
        const r = await runScript(ctx, READ, [path.join(dir, a.name)]);
        return r.stdout === a.want ? { changes: [], reason: `${a.name} is ${a.want}` } : { changes: [{ description: `write ${a.name}` }] };
      },
      async apply(_ctx, a) {
        writeFileSync(path.join(dir, a.name), a.want);
        return changedOutcome(`wrote ${a.name}`);
      },
    };
    const other: Module<Record<string, never>> = {
      name: 'other',
      args: z.strictObject({}),
      async plan() {
        return { changes: [], reason: 'nothing' };
      },
      async apply() {
        throw new Error('not reached');
      },
    };
    const local = localHost(commands);
    const h = harness();
    h.deps.modules = new Map<string, Module>([
      ['reader', reader as Module],
      ['other', other as Module],
    ]);
    h.deps.connect = async () => local;
    const t = (name: string, want: string) => task(`file ${name}`, { name, want }, { module: 'reader' });
    const run = (tasks: ReturnType<typeof task>[]) =>
      runPlaybook(playbook(play('p', tasks, { gatherFacts: true })), inventory(['h1']), h.opts, h.deps);
    return { dir, commands, h, t, run };
  }

  test('a no-op re-run: one command for three reader tasks, every result as without read-ahead', async () => {
    const { dir, commands, h, t, run } = setup();
    for (const n of ['a', 'b', 'c']) writeFileSync(path.join(dir, n), n.toUpperCase());
    const s = await run([t('a', 'A'), t('b', 'B'), t('c', 'C')]);
    expect(s.recap.h1).toMatchObject({ ok: 4, changed: 0 });
    expect(commands).toEqual(['batch']);
    expect(h.reporter.results()).toEqual(['h1 Gathering Facts ok', 'h1 file a ok', 'h1 file b ok', 'h1 file c ok']);
  });

  test('after a task changed something, the later tasks read for themselves (fresh state)', async () => {
    const { dir, commands, run, t } = setup();
    writeFileSync(path.join(dir, 'a'), 'A');
    writeFileSync(path.join(dir, 'b'), 'old');
    // c's want depends on nothing; b changes; the read of c made ahead is dropped with the change.
    writeFileSync(path.join(dir, 'c'), 'C');
    const s = await run([t('a', 'A'), t('b', 'B'), t('c', 'C'), t('b', 'B')]);
    expect(s.recap.h1).toMatchObject({ changed: 1 });
    expect(readFileSync(path.join(dir, 'b'), 'utf8')).toBe('B');
    // batch (a..b), b's change drops the rest: c reads alone (right after a change), then the
    // second b reads ahead again... alone, so it reads for itself too.
    expect(commands).toEqual(['batch', 'read', 'read']);
  });

  test('a task that is not a reader ends the run: the reads after it are made after it', async () => {
    const { dir, commands, run, t } = setup();
    for (const n of ['a', 'b', 'c', 'd']) writeFileSync(path.join(dir, n), n);
    const s = await run([t('a', 'a'), t('b', 'b'), task('other', {}, { module: 'other' }), t('c', 'c'), t('d', 'd')]);
    expect(s.recap.h1).toMatchObject({ changed: 0, failed: 0 });
    expect(commands).toEqual(['batch', 'batch']);
  });
});

describe('reads ahead hold across tasks that change nothing, and only while nothing changed', () => {
  /**
   * Reader tasks over a local folder (as above), a module that keeps reads (`quiet`: its task
   * changes nothing unless told to), and one that acts on peers (`peer`: told to, it writes a file
   * the other hosts read), on hosts h1 and h2 that both run commands on this machine.
   */
  function setup(hosts = ['h1']) {
    const dir = mkdtempSync(path.join(tmpdir(), 'rha-read-ahead-keep-'));
    const commands = new Map(hosts.map((h) => [h, [] as string[]]));
    const texts = new Map(hosts.map((h) => [h, [] as string[]]));
    const READ = 'cat -- "$1" 2>/dev/null || echo absent';
    const readerArgs = z.strictObject({ name: z.string(), want: z.string() });
    const reader: Module<z.infer<typeof readerArgs>> = {
      name: 'reader',
      args: readerArgs,
      reads: (a) => [{ script: READ, args: [path.join(dir, a.name)] }],
      async plan(ctx, a) {
        const r = await runScript(ctx, READ, [path.join(dir, a.name)]);
        return r.stdout === a.want ? { changes: [], reason: 'same' } : { changes: [{ description: `write ${a.name}` }] };
      },
      async apply(_ctx, a) {
        writeFileSync(path.join(dir, a.name), a.want);
        return changedOutcome(`wrote ${a.name}`);
      },
    };
    const actArgs = z.strictObject({ on: z.array(z.string()).default([]), name: z.string().default(''), content: z.string().default('') });
    const acting = (name: string, flags: Partial<Module>): Module<z.infer<typeof actArgs>> => ({
      name,
      args: actArgs,
      ...flags,
      async plan(ctx, a) {
        return a.on.includes(ctx.host.name) ? { changes: [{ description: `write ${a.name}` }] } : { changes: [], reason: 'nothing' };
      },
      async apply(_ctx, a) {
        writeFileSync(path.join(dir, a.name), a.content);
        return changedOutcome(`wrote ${a.name}`);
      },
    });
    const h = harness();
    h.deps.modules = new Map<string, Module>([
      ['reader', reader as Module],
      ['quiet', acting('quiet', { keepsReads: true }) as Module],
      ['peer', acting('peer', { keepsReads: true, actsOnPeers: true }) as Module],
    ]);
    const conns = new Map(hosts.map((n) => [n, localHost(commands.get(n)!, texts.get(n)!)]));
    h.deps.connect = async (host) => conns.get(host.name)!;
    const t = (name: string, want: string, extra: Partial<TaskSpec> = {}) => task(`file ${name}`, { name, want }, { module: 'reader', ...extra });
    const write = (name: string, content: string) => writeFileSync(path.join(dir, name), content);
    const run = (tasks: TaskSpec[]) => runPlaybook(playbook(play('p', tasks, { gatherFacts: true })), inventory(hosts), h.opts, h.deps);
    const runPlays = (plays: PlaySpec[]) => runPlaybook(playbook(...plays), inventory(hosts), h.opts, h.deps);
    return { dir, commands, texts, t, write, run, runPlays };
  }

  test('a task whose module keeps reads (it ended ok) does not end the run: one batch across it', async () => {
    const { commands, t, write, run } = setup();
    for (const n of ['a', 'b', 'c', 'd']) write(n, n);
    const s = await run([t('a', 'a'), t('b', 'b'), task('quiet', {}, { module: 'quiet' }), t('c', 'c'), t('d', 'd')]);
    expect(s.recap.h1).toMatchObject({ changed: 0, failed: 0 });
    expect(commands.get('h1')).toEqual(['batch']);
  });

  test('one that changed something ends it: the reads after it are made after it', async () => {
    const { commands, t, write, run } = setup();
    for (const n of ['a', 'b', 'c', 'd']) write(n, n);
    const s = await run([t('a', 'a'), t('b', 'b'), task('quiet', { on: ['h1'], name: 'c', content: 'c2' }, { module: 'quiet' }), t('c', 'c2'), t('d', 'd')]);
    // c was read ahead as "c"; had that read been used after the change, c would be written again.
    expect(s.recap.h1).toMatchObject({ changed: 1, failed: 0 });
    expect(commands.get('h1')).toEqual(['batch', 'read', 'read']);
  });

  test('changed_when or failed_when make the status the playbook\'s word: such a task ends the run, even a reader', async () => {
    for (const extra of [{ changedWhen: 'false' }, { failedWhen: 'false' }]) {
      const { commands, t, write, run } = setup();
      for (const n of ['a', 'b', 'x', 'c', 'd']) write(n, n);
      const s = await run([t('a', 'a'), t('b', 'b'), t('x', 'x', extra), t('c', 'c'), t('d', 'd')]);
      expect(s.recap.h1).toMatchObject({ changed: 0, failed: 0 });
      expect(commands.get('h1')).toEqual(['batch', 'read', 'batch']);
    }
  });

  test('a module that acts on peers and changed something on one host: every host reads again', async () => {
    const { commands, t, write, run } = setup(['h1', 'h2']);
    for (const n of ['a', 'b', 'c', 'd']) write(n, n);
    // On h1 the peer step writes c, which both hosts read next (as a switchover changes the peer).
    const s = await run([t('a', 'a'), t('b', 'b'), task('peer', { on: ['h1'], name: 'c', content: 'c2' }, { module: 'peer' }), t('c', 'c2'), t('d', 'd')]);
    expect(s.recap.h1).toMatchObject({ changed: 1, failed: 0 });
    // h2 read c ahead as "c": used, its task would have written c again.
    expect(s.recap.h2).toMatchObject({ changed: 0, failed: 0 });
    expect(commands.get('h2')).toEqual(['batch', 'batch']);
  });

  test('reads run on into the next plays on the same hosts; not into a play on other hosts, nor past a handler', async () => {
    const { commands, t, write, runPlays } = setup(['h1', 'h2']);
    for (const n of ['a', 'b', 'c', 'd', 'e']) write(n, n);
    const s = await runPlays([
      play('one', [t('a', 'a'), t('b', 'b')], { gatherFacts: true }),
      play('two', [t('c', 'c'), t('d', 'd')]),
      play('three', [t('e', 'e'), t('a', 'a')], { hosts: 'h1' }),
    ]);
    expect(s.recap.h1).toMatchObject({ changed: 0, failed: 0 });
    // One batch for plays one and two; play three runs on h1 alone: its reads are its own.
    expect(commands.get('h1')).toEqual(['batch', 'batch']);
    expect(commands.get('h2')).toEqual(['batch']);

    // A handler ran at the end of play one (after a change): play two reads again, after it.
    const x = setup(['h1']);
    for (const n of ['a', 'b', 'c', 'd', 'e']) x.write(n, n);
    // a's change drops the first batch; b reads alone; e then reads ahead for itself and play two
    // (c as "c"); after the handler, play two reads again.
    const r = await x.runPlays([
      play('one', [x.t('a', 'a2', { notify: ['rewrite c'] }), x.t('b', 'b'), x.t('e', 'e')], {
        gatherFacts: true,
        handlers: [task('rewrite c', { on: ['h1'], name: 'c', content: 'c2' }, { module: 'quiet' })],
      }),
      play('two', [x.t('c', 'c2'), x.t('d', 'd')]),
    ]);
    // Used after the handler, that read of c would have c written again.
    expect(r.recap.h1).toMatchObject({ changed: 2, failed: 0 });
    expect(x.commands.get('h1')).toEqual(['batch', 'read', 'batch', 'batch']);
  });

  test('a task whose `when` is false when the run starts reads nothing ahead', async () => {
    const { commands, texts, t, write, run } = setup();
    for (const n of ['a', 'b', 'c']) write(n, n);
    // c's `when` names a result registered after the reads start: judged then, it cannot be.
    const s = await run([t('a', 'a', { register: 'ra' }), t('b', 'b', { when: 'false' }), t('c', 'c', { when: 'not ra.changed' })]);
    expect(s.recap.h1).toMatchObject({ ok: 3, skipped: 1, failed: 0 });
    // Only a was worth reading ahead, and one read alone is not a batch: a and c read for themselves.
    expect(commands.get('h1')).toEqual(['read', 'read']);
    expect(texts.get('h1')!.join('\n')).not.toMatch(/\/b'?( |$)/);
  });

  test('a read with stdin runs as its own command beside the batch, and is handed only to the same stdin', async () => {
    const commands: string[] = [];
    const args = z.strictObject({ declared: z.string(), used: z.string() });
    const READ = 'IFS= read -r v; printf "got %s" "$v"';
    const outputs: string[] = [];
    const secretReader: Module<z.infer<typeof args>> = {
      name: 'secret',
      args,
      reads: (a) => [{ script: READ, args: [], stdin: `${a.declared}\n` }],
      async plan(ctx, a) {
        outputs.push((await runScript(ctx, READ, [], { stdin: `${a.used}\n` })).stdout);
        return { changes: [], reason: 'same' };
      },
      async apply() {
        throw new Error('not reached');
      },
    };
    const h = harness();
    h.deps.modules = new Map<string, Module>([['secret', secretReader as Module]]);
    const local = localHost(commands);
    h.deps.connect = async () => local;
    const s = await runPlaybook(
      playbook(play('p', [task('same', { declared: 's1', used: 's1' }, { module: 'secret' }), task('other', { declared: 's2', used: 's3' }, { module: 'secret' })], { gatherFacts: true })),
      inventory(['h1']),
      h.opts,
      h.deps,
    );
    expect(s.recap.h1).toMatchObject({ ok: 3, failed: 0 });
    expect(outputs).toEqual(['got s1', 'got s3']);
    // s1 and s2 read ahead (each its own command); s3 read by its task.
    expect(commands).toEqual(['read', 'read', 'read']);
  });

  test('reads in flight when the host\'s reads are forgotten are not handed out', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const conn: Connection = {
      hostName: 'h1',
      async exec(cmd: Command): Promise<CommandResult> {
        await gate;
        const r = spawnSync(cmd.argv[0], cmd.argv.slice(1), { encoding: 'utf8', input: '' });
        return { display: 'x', code: r.status, stdout: r.stdout, stderr: '', ok: r.status === 0, durationMs: 0 };
      },
      async close() {},
    };
    const ra = new HostReadAhead();
    const reads = [{ script: 'echo one', args: [] }, { script: 'echo two', args: [] }];
    ra.start(conn, false, reads);
    const early = ra.take('echo one', [], false);
    ra.clear();
    release();
    expect(await early).toBeUndefined();
    expect(await ra.take('echo two', [], false)).toBeUndefined();
    await ra.fill(conn, false, reads);
    expect(await ra.take('echo two', [], false)).toBe('two\n');
    expect(await ra.take('echo two', [], true)).toBeUndefined();
  });
});

describe('the runner reads ahead for runs of reader tasks (skips)', () => {
  test('a skipped task (when false) does not end the run: its reads were only wasted', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rha-read-ahead-skip-'));
    const commands: string[] = [];
    const READ = 'cat -- "$1" 2>/dev/null || echo absent';
    const args = z.strictObject({ name: z.string() });
    const reader: Module<z.infer<typeof args>> = {
      name: 'reader',
      args,
      reads: (a) => [{ script: READ, args: [path.join(dir, a.name)] }],
      async plan(ctx, a) {
        await runScript(ctx, READ, [path.join(dir, a.name)]);
        return { changes: [], reason: 'same' };
      },
      async apply() {
        throw new Error('not reached');
      },
    };
    const local = localHost(commands);
    const h = harness();
    h.deps.modules = new Map<string, Module>([['reader', reader as Module]]);
    h.deps.connect = async () => local;
    const t = (name: string, when?: string) => task(`read ${name}`, { name }, { module: 'reader', ...(when ? { when } : {}) });
    const s = await runPlaybook(playbook(play('p', [t('a'), t('b', 'false'), t('c')], { gatherFacts: true })), inventory(['h1']), h.opts, h.deps);
    expect(s.recap.h1).toMatchObject({ ok: 3, skipped: 1 });
    expect(commands).toEqual(['batch']);
  });
});

describe("each reader module's reads are exactly the read its plan makes first", () => {
  const facts = { ...UNKNOWN_FACTS, packageManager: 'apt' as const };
  const cases: Array<[string, Record<string, unknown>]> = [
    ['group', { name: 'redis', system: true }],
    ['user', { name: 'redis', group: 'redis', system: true, home: '/var/lib/redis', shell: '/usr/sbin/nologin' }],
    ['user', { name: 'redis' }],
    ['sysctl', { name: 'vm.overcommit_memory', value: 1, on_refused: 'warn' }],
    ['package', { name: 'keepalived', state: 'present', update_cache: true, cache_valid_time: 3600 }],
    ['package', { name: ['gcc', 'make'], state: 'latest' }],
  ];
  test.each(cases)('%s %j', async (name, raw) => {
    const m = modules.get(name)!;
    const a = m.args.parse(raw);
    const reads = m.reads!(a, { diff: false, facts, vars: {} });
    expect(reads.length).toBe(1);
    const taken: Array<[string, readonly string[], boolean]> = [];
    const ctx = {
      host: { name: 'h1' },
      conn: {
        hostName: 'h1',
        async exec(): Promise<CommandResult> {
          throw new Error('read for itself');
        },
        async close() {},
      },
      facts,
      check: false,
      diff: false,
      become: false,
      vars: {},
      searchPaths: [],
      secrets: new Set<string>(),
      warn: () => undefined,
      signal: new AbortController().signal,
      readAhead: {
        async take(script: string, args: readonly string[], become: boolean) {
          taken.push([script, args, become]);
          return undefined;
        },
      },
    } as unknown as TaskContext;
    await m.plan(ctx, a).catch(() => undefined);
    expect(taken[0]).toEqual([reads[0].script, reads[0].args, false]);
  });

  /** A pair node's vars, as the inventory derives them: h1 in cluster pair1 with h2, `master` the preferred master. */
  const pairVars = (master: string) => ({
    inventory_hostname: 'h1',
    cluster: { name: 'pair1', master, vip: '10.0.0.200/24', interface: 'eth0', redis: { port: 6379, password: 'pw-1', prefix: '/usr/local', config_dir: '/etc/redis' } },
    node: { peer: 'h2', address: '10.0.0.1', peer_address: '10.0.0.2' },
  });
  const ran = (reads: ReadSpec[]) => reads.map((r) => [r.script, r.args, r.stdin]);

  test.each<[string, Record<string, unknown>, HostFacts]>([
    ['service', { name: 'redis-server', enabled: true }, { ...facts, serviceManager: 'systemd' }],
    ['service', { name: 'redis-server', state: 'started', exec: ['/usr/local/bin/redis-server'], pidfile: '/run/redis/redis-server.pid' }, { ...facts, serviceManager: 'none' }],
    ['service', { name: 'keepalived', state: 'started' }, { ...facts, serviceManager: 'none' }],
    ['command', { argv: ['true'], creates: '/etc/x' }, facts],
    ['shell', { cmd: 'true', removes: '/etc/x' }, facts],
    ['sysfs', { path: '/sys/kernel/mm/transparent_hugepage/enabled', value: 'never', on_refused: 'warn' }, facts],
    ['keepalived_reload', { service: { name: 'keepalived' } }, facts],
    ['redis_auth', { phase: 'add' }, facts],
    ['redis_auth', { phase: 'drop' }, facts],
  ])('%s %j: every read it declares is one its plan makes (stdin included), the first first', async (name, raw, f) => {
    const m = modules.get(name)!;
    const a = m.args.parse(raw);
    const vars = pairVars('h1');
    const reads = m.reads!(a, { diff: false, facts: f, vars });
    expect(reads.length).toBeGreaterThan(0);
    const taken: unknown[][] = [];
    const ctx = {
      host: { name: 'h1' },
      conn: {
        hostName: 'h1',
        // Redis answers the probe (two replies); other reads see empty output.
        async exec(): Promise<CommandResult> {
          return { display: 'x', code: 0, stdout: '@@rha:reply\nflags\n@@rha:reply\nmasterauth\npw-1\n', stderr: '', ok: true, durationMs: 0 };
        },
        async close() {},
      },
      facts: f,
      check: true,
      diff: false,
      become: false,
      vars,
      searchPaths: [],
      secrets: new Set<string>(),
      warn: () => undefined,
      signal: new AbortController().signal,
      connectTo: async () => { throw new Error('no peer here'); },
      readAhead: {
        async take(script: string, args: readonly string[], _become: boolean, stdin?: string) {
          taken.push([script, args, stdin]);
          return undefined;
        },
      },
    } as unknown as TaskContext;
    await m.plan(ctx, a).catch(() => undefined);
    expect(taken[0]).toEqual(ran(reads)[0]);
    for (const r of ran(reads)) expect(taken).toContainEqual(r);
  });

  test('command/shell without creates/removes read nothing; ha_service reads VRRP state only for keepalived on the inventory replica', () => {
    const cmd = modules.get('command')!;
    expect(cmd.reads!(cmd.args.parse({ argv: ['true'] }), { diff: false, facts, vars: {} })).toEqual([]);
    const ha = modules.get('ha_service')!;
    const a = (name: string, role: string) => ha.args.parse({ name, role, service: { name } });
    const on = (master: string, name: string, role: string) => ha.reads!(a(name, role), { diff: false, facts, vars: pairVars(master) });
    expect(on('h2', 'keepalived', 'replica')).toMatchObject([{ args: [], alone: true }]);
    expect(on('h2', 'keepalived', 'replica')[0].script).toContain("want=pair1");
    expect(on('h1', 'keepalived', 'replica')).toEqual([]);
    expect(on('h2', 'redis', 'replica')).toEqual([]);
    expect(on('h2', 'keepalived', 'master')).toEqual([]);
  });

  test('assert reads nothing (and is a reader, so it does not end a run); package reads nothing without a package manager', () => {
    expect(modules.get('assert')!.reads!(modules.get('assert')!.args.parse({ that: ['true'] }), { diff: false, facts, vars: {} })).toEqual([]);
    const p = modules.get('package')!;
    expect(p.reads!(p.args.parse({ name: 'x' }), { diff: false, facts: UNKNOWN_FACTS, vars: {} })).toEqual([]);
  });
});

describe('bulk reads say exactly what the single reads say', () => {
  /** A folder with every kind of entry the modules meet; returns the paths to read. */
  function tree(): string[] {
    const dir = mkdtempSync(path.join(tmpdir(), 'rha-bulk-'));
    const p = (n: string) => path.join(dir, n);
    writeFileSync(p('plain.conf'), 'port 6379\n');
    writeFileSync(p('empty'), '');
    writeFileSync(p('with space'), 'x');
    writeFileSync(p('new\nline'), 'y');
    writeFileSync(p('back\\slash'), 'z');
    spawnSync('sh', ['-c', 'mkdir d && ln -s plain.conf link-file && ln -s d link-dir && ln -s missing link-broken && mkfifo fifo && chmod 0640 plain.conf', 'sh'], { cwd: dir });
    return ['plain.conf', 'empty', 'with space', 'new\nline', 'back\\slash', 'd', 'link-file', 'link-dir', 'link-broken', 'fifo', 'absent'].map(p);
  }
  const single = (script: string, args: string[]) => spawnSync('sh', ['-c', script, 'sh', ...args], { encoding: 'utf8' });

  test.each([
    ['file/copy/template (follows links, checksums)', (p: string) => remoteFileRead(p, false)],
    ['file (lstat, link targets)', (p: string) => pathStateRead(p)],
  ])('%s', (_name, read) => {
    const paths = tree();
    const specs = paths.map(read);
    const bulk = specs[0].bulk!.reader;
    const out = single(bulk.script, paths);
    expect(out.status).toBe(0);
    const split = bulk.split(out.stdout, paths);
    let compared = 0;
    specs.forEach((spec, i) => {
      const want = single(spec.script, spec.args);
      expect(want.status).toBe(0);
      if (split[i] === undefined) return; // left to its own read (links, for the lstat read)
      expect(split[i], paths[i]).toBe(want.stdout);
      compared++;
    });
    expect(compared).toBeGreaterThanOrEqual(8);
  });

  test('an output that does not add up gives nothing (those tasks read alone)', () => {
    expect(pathStateRead('/x').bulk!.reader.split('directory\n@@\n', ['/x', '/y'])).toEqual([undefined, undefined]);
    expect(remoteFileRead('/x', false).bulk!.reader.split('f\n@@\n644 0 0 1 root root\n@@\n', ['/x'])).toEqual([undefined]);
    expect(remoteFileRead('/x', true).bulk).toBeUndefined();
  });

  test('the runner groups bulk reads into one job, and keeps the rest single', () => {
    const jobs = planJobs([remoteFileRead('/a', false), pathStateRead('/d'), remoteFileRead('/b', false), remoteFileRead('/c', true), pathStateRead('/e')]);
    expect(jobs.map((j) => [j.args, j.reads.length])).toEqual([
      [['/a', '/b'], 2],
      [['/d', '/e'], 2],
      [['/c', '1'], 1],
    ]);
  });
});
