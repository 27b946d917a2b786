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
import type { Connection, Module, TaskContext } from '../../src/core/types.js';
import { modules } from '../../src/modules/index.js';
import { UNKNOWN_FACTS } from '../../src/runner/context.js';
import { changed as changedOutcome, runScript } from '../../src/modules/lib/run.js';
import { batchScript, parseBatch, planJobs } from '../../src/runner/read-ahead.js';
import { remoteFileRead } from '../../src/modules/lib/files.js';
import { pathStateRead } from '../../src/modules/file.js';
import { runPlaybook } from '../../src/runner/index.js';
import { harness, inventory, play, playbook, task } from './runner-helpers.js';

function sh(script: string): string {
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
  return r.stdout;
}

/** Host h1 as this machine: runs each command here, noting in `commands` whether it was a batch or a single read. */
function localHost(commands: string[]): Connection {
  return {
    hostName: 'h1',
    async exec(cmd: Command): Promise<CommandResult> {
      commands.push(cmd.argv.join(' ').includes('@@rha-ra:') ? 'batch' : 'read');
      const r = spawnSync(cmd.argv[0], cmd.argv.slice(1), { encoding: 'utf8', input: '' });
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
    const reads = m.reads!(a, { diff: false, facts });
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
        take(script: string, args: readonly string[], become: boolean) {
          taken.push([script, args, become]);
          return undefined;
        },
      },
    } as unknown as TaskContext;
    await m.plan(ctx, a).catch(() => undefined);
    expect(taken[0]).toEqual([reads[0].script, reads[0].args, false]);
  });

  test('assert reads nothing (and is a reader, so it does not end a run); package reads nothing without a package manager', () => {
    expect(modules.get('assert')!.reads!(modules.get('assert')!.args.parse({ that: ['true'] }), { diff: false, facts })).toEqual([]);
    const p = modules.get('package')!;
    expect(p.reads!(p.args.parse({ name: 'x' }), { diff: false, facts: UNKNOWN_FACTS })).toEqual([]);
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
