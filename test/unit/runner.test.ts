import { describe, expect, test, vi } from 'vitest';
import { z } from 'zod';
import type { Inventory, Module } from '../../src/core/types.js';
import { ModuleFailure, PeerUnreachableFailure } from '../../src/modules/lib/failure.js';
import { UnreachableError } from '../../src/core/types.js';
import { planBatches, runPlaybook, selectedByTags, exitCodeFor, emptyRecap } from '../../src/runner/index.js';
import { harness, inventory, play, playbook, task } from './runner-helpers.js';

// Host patterns are src/inventory's business (and its own tests'); here a tiny stand-in:
// `all`, a group, a host, `a:b` unions, `a:!b` exclusions.
vi.mock('../../src/inventory/index.js', () => {
  const one = (inv: Inventory, p: string): string[] => inv.groups.get(p) ?? (inv.hosts.has(p) ? [p] : []);
  const select = (inv: Inventory, pattern: string): string[] => {
    let out: string[] = [];
    for (const part of pattern.split(':')) {
      if (part.startsWith('!')) out = out.filter((h) => !one(inv, part.slice(1)).includes(h));
      else out = [...new Set([...out, ...one(inv, part)])];
    }
    return [...inv.hosts.keys()].filter((h) => out.includes(h));
  };
  return {
    selectHosts: select,
    limitHosts: (inv: Inventory, hosts: string[], limit?: string) => (limit ? hosts.filter((h) => select(inv, limit).includes(h)) : hosts),
  };
});

describe('serial batches', () => {
  test.each([
    [5, [], [5]],
    [5, [2], [2, 2, 1]],
    [5, [1, '50%'], [1, 2, 2]],
    [10, ['30%'], [3, 3, 3, 1]],
    [3, ['10%'], [1, 1, 1]],
    [4, [1, 2, 10], [1, 2, 1]],
    [4, ['100%'], [4]],
    [0, [1], []],
  ] as const)('%i hosts, serial %j → %j', (n, serial, sizes) => {
    const hosts = Array.from({ length: n }, (_, i) => `h${i}`);
    const batches = planBatches(hosts, serial);
    expect(batches.map((b) => b.length)).toEqual(sizes);
    expect(batches.flat()).toEqual(hosts);
  });

  test('a play with serial emits one play-start per batch', async () => {
    const h = harness();
    const pb = playbook(play('roll', [task('t', { change: true })], { serial: [1, '50%'] }));
    await runPlaybook(pb, inventory(['a', 'b', 'c', 'd', 'e']), h.opts, h.deps);
    expect(h.reporter.of('play-start').map((e) => [e.hosts, e.batch])).toEqual([
      [['a'], { index: 1, count: 3 }],
      [['b', 'c'], { index: 2, count: 3 }],
      [['d', 'e'], { index: 3, count: 3 }],
    ]);
  });
});

describe('tags', () => {
  test.each([
    [[], {}, true],
    [['redis'], {}, true],
    [['never'], {}, false],
    [['never', 'debug'], { only: ['debug'] }, true],
    [['never', 'debug'], { only: ['all'] }, false],
    [['redis'], { only: ['keepalived'] }, false],
    [['redis'], { only: ['redis'] }, true],
    [['always'], { only: ['keepalived'] }, true],
    [['always'], { skip: ['always'] }, false],
    [['always', 'x'], { skip: ['x'] }, false],
    [['redis'], { skip: ['redis'] }, false],
    [['redis'], { only: ['redis'], skip: ['redis'] }, false],
    [[], { only: ['untagged'] }, true],
    [['a'], { only: ['untagged'] }, false],
    [['a'], { only: ['tagged'] }, true],
    [[], { only: ['redis'] }, false],
    [['a'], { skip: ['tagged'] }, false],
  ] as const)('tags %j with %j → %s', (tags, filter, expected) => {
    expect(selectedByTags(tags, filter)).toBe(expected);
  });

  test("a play's tags apply to its tasks; unselected tasks leave no event", async () => {
    const h = harness({ tags: ['redis'] });
    const pb = playbook(
      play('redis', [task('r1'), task('r2', {}, { tags: ['never', 'debug'] })], { tags: ['redis'] }),
      play('ka', [task('k1'), task('k2', {}, { tags: ['always'] }), task('k3', {}, { tags: ['never'] })], { tags: ['keepalived'] }),
    );
    await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    // r2 inherits `redis` from its play, so `--tags redis` asks for it by name (Ansible does the same).
    expect(h.reporter.results()).toEqual(['a r1 ok', 'a r2 ok', 'a k2 ok']);
  });
});

describe('tasks', () => {
  test('ok, changed, recap counts changed as ok too (like Ansible), exit 0', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('one', { change: true, msg: 'wrote x' }), task('two', { msg: 'x is fine' })]));
    const s = await runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    expect(s.exitCode).toBe(0);
    expect(s.recap.a).toEqual({ ok: 2, changed: 1, failed: 0, skipped: 0, unreachable: 0, ignored: 0 });
    const ends = h.reporter.of('task-end').filter((e) => e.host === 'a');
    expect(ends.map((e) => [e.status, e.msg])).toEqual([
      ['changed', 'wrote x'],
      ['ok', 'x is fine'],
    ]);
    expect(ends[0].changes).toEqual([{ description: 'wrote x' }]);
    expect(h.reporter.events[0]).toMatchObject({ kind: 'run-start', hosts: ['a', 'b'], check: false });
    expect(h.reporter.events.at(-1)).toMatchObject({ kind: 'recap', interrupted: false });
  });

  test('when false → skipped with the reason; vars by precedence', async () => {
    const h = harness({ extraVars: { level: 'extra' } });
    const inv = inventory(['a', 'b']);
    inv.hosts.get('a')!.vars = { role: 'master', level: 'host' };
    inv.hosts.get('b')!.vars = { role: 'replica' };
    const pb = playbook(
      play(
        'p',
        [
          task('only master', { msg: '{{ role }} {{ level }} {{ pv }} {{ tv }}' }, { when: 'eq role "master"', vars: { tv: 'task' } }),
        ],
        { vars: { pv: 'play-{{ role }}', level: 'play' } },
      ),
    );
    const s = await runPlaybook(pb, inv, h.opts, h.deps);
    expect(h.reporter.of('task-end').map((e) => `${e.host} ${e.status} ${e.msg}`).sort()).toEqual([
      'a ok master extra play-master task',
      'b skipped when: eq role "master" was false',
    ]);
    expect(s.recap.b.skipped).toBe(1);
  });

  test('check mode plans only: apply is never called, planned changes reported as changed', async () => {
    const h = harness({ check: true, diff: true });
    const pb = playbook(play('p', [task('w', { change: true, msg: 'write /etc/x.conf', diff: true }, { notify: ['restart'] })], {
      handlers: [task('restart', { change: true, msg: 'restart x' })],
    }));
    const s = await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.calls.filter((c) => c.phase === 'apply')).toEqual([]);
    expect(h.calls.every((c) => c.check)).toBe(true);
    expect(h.reporter.results()).toEqual(['a w changed', 'a restart changed']);
    expect(h.reporter.of('task-end')[0].diffs).toEqual([{ path: '/etc/x.conf', before: 'a\nb\n', after: 'a\nc\n' }]);
    expect(s.recap.a).toMatchObject({ ok: 2, changed: 2 });
  });

  test('diffs are only sent with --diff', async () => {
    const h = harness();
    await runPlaybook(playbook(play('p', [task('w', { change: true, diff: true })])), inventory(['a']), h.opts, h.deps);
    expect(h.reporter.of('task-end')[0].diffs).toBeUndefined();
  });

  test('a failed host stops there while the others go on; exit 2', async () => {
    const h = harness();
    const pb = playbook(
      play('p1', [task('t1', { change: true, fail: ['b'], name: 't1' }), task('t2', { name: 't2' })]),
      play('p2', [task('t3', { name: 't3' })]),
    );
    const s = await runPlaybook(pb, inventory(['a', 'b', 'c']), h.opts, h.deps);
    expect(h.reporter.results().filter((r) => r.startsWith('b'))).toEqual(['b t1 failed']);
    expect(h.reporter.results().filter((r) => r.startsWith('a'))).toEqual(['a t1 changed', 'a t2 ok', 'a t3 ok']);
    expect(h.reporter.of('play-start')[1].hosts).toEqual(['a', 'c']);
    expect(h.reporter.of('warning')).toEqual([]);
    expect(h.reporter.of('task-end').find((e) => e.host === 'b')!.msg).toBe('failed on b');
    expect(s.recap.b).toMatchObject({ failed: 1, ok: 0 });
    expect(s.exitCode).toBe(2);
  });

  test('linear: every host finishes a task before any host starts the next (order across hosts)', async () => {
    const h = harness();
    // a is slow on t1; b must still not start t2 before a finished t1.
    const pb = playbook(play('p', [task('t1', { name: 't1', delayMs: '{{d}}' }), task('t2', { name: 't2' })]));
    const inv = inventory(['a', 'b']);
    inv.hosts.get('a')!.vars = { d: 50 };
    inv.hosts.get('b')!.vars = { d: 0 };
    await runPlaybook(pb, inv, h.opts, h.deps);
    const order = h.calls.map((c) => `${c.host}:${c.name}`);
    expect(order.indexOf('b:t2')).toBeGreaterThan(Math.max(order.indexOf('a:t1'), order.indexOf('b:t1')));
    expect(h.reporter.results().slice(0, 2).sort()).toEqual(['a t1 ok', 'b t1 ok']);
  });

  test('a ModuleFailure from plan is an ordinary failure with its message, not a crash', async () => {
    const h = harness();
    const failing: Module = {
      name: 'refuse',
      args: z.strictObject({}),
      async plan() {
        throw new ModuleFailure('would discard 3 keys on b');
      },
      async apply() {
        throw new Error('not reached');
      },
    };
    const modules = new Map([...h.deps.modules, ['refuse', failing]]);
    const pb = playbook(play('p', [task('t', {}, { module: 'refuse' })]));
    const s = await runPlaybook(pb, inventory(['a']), h.opts, { ...h.deps, modules });
    expect(h.reporter.of('task-end').map((e) => [e.status, e.msg])).toEqual([['failed', 'would discard 3 keys on b']]);
    expect(s.exitCode).toBe(2);
  });

  test('ignore_errors: counted as ignored, the host goes on, exit 0', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { change: true, fail: true }, { ignoreErrors: true }), task('t2')]));
    const s = await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.reporter.results()).toEqual(['a t1 failed (ignored)', 'a t2 ok']);
    expect(s.recap.a).toEqual({ ok: 1, changed: 0, failed: 0, skipped: 0, unreachable: 0, ignored: 1 });
    expect(s.exitCode).toBe(0);
  });

  test('a module that throws fails its task only, with the message', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { crash: 'cannot read property x of undefined' })]));
    const s = await runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    expect(h.reporter.of('task-end').map((e) => e.msg)).toEqual([
      'module fake crashed: cannot read property x of undefined',
      'module fake crashed: cannot read property x of undefined',
    ]);
    expect(s.exitCode).toBe(2);
  });

  test('invalid arguments name the field; unknown module is a failed task', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { change: 'yes' })]), play('q', [task('t2', {}, { module: 'nope' })]));
    const inv = inventory(['a', 'b']);
    await runPlaybook(pb, inv, h.opts, h.deps);
    const msg = h.reporter.of('task-end')[0].msg;
    expect(msg).toMatch(/^invalid arguments for fake: fake\.change: /);
    expect(h.calls).toEqual([]);
    const h2 = harness();
    await runPlaybook(playbook(play('q', [task('t2', {}, { module: 'nope' })])), inv, h2.opts, h2.deps);
    expect(h2.reporter.of('task-end')[0].msg).toBe('unknown module "nope"');
  });

  test('a template error fails the task with the template message', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { msg: '{{ missing.var }}' })]));
    const s = await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.reporter.of('task-end')[0].status).toBe('failed');
    expect(h.reporter.of('task-end')[0].msg).toMatch(/missing/);
    expect(s.exitCode).toBe(2);
  });

  test('changed_when / failed_when override the module', async () => {
    const h = harness();
    const pb = playbook(
      play('p', [
        task('c', { change: true }, { changedWhen: 'false' }),
        task('f', { data: { out: 'ERROR' } }, { register: 'r', failedWhen: 'eq r.out "ERROR"' }),
      ]),
    );
    const s = await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.reporter.results()).toEqual(['a c ok', 'a f failed']);
    expect(h.reporter.of('task-end')[1].msg).toBe('failed_when: eq r.out "ERROR" was true (already fine)');
    expect(s.exitCode).toBe(2);
  });
});

describe('register, retries, until', () => {
  test('register stores changed/failed/skipped/msg, data, stdout_lines; later tasks see it', async () => {
    const h = harness();
    const pb = playbook(
      play('p', [
        task('count', {}, { module: 'counter', register: 'c' }),
        task('use', { msg: '{{ c.n }} {{ c.rc }} {{ c.changed }} {{ c.msg }} {{ join c.stdout_lines "," }}' }),
        task('skipped', {}, { when: 'false', register: 's' }),
        task('use2', { msg: '{{ s.skipped }} {{ s.msg }}' }),
      ]),
    );
    await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.reporter.of('task-end').map((e) => e.msg)).toEqual(['n=1', '1 0 false n=1 line1,n=1', 'when: false was false', 'true when: false was false']);
  });

  test('until retries plan/apply until true, at most retries+1 attempts, sleeping delay', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('wait', {}, { module: 'counter', register: 'w', until: 'ge w.n 3', retries: 5, delaySeconds: 2 })]));
    await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.calls.map((c) => c.name)).toEqual(['counter1', 'counter2', 'counter3']);
    expect(h.sleeps).toEqual([2000, 2000]);
    expect(h.reporter.results()).toEqual(['a wait ok']);
    expect(h.reporter.of('task-end')[0].msg).toBe('n=3 (attempt 3 of 6)');
  });

  test('until still false after all attempts → failed with the expression', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('wait', {}, { module: 'counter', register: 'w', until: 'ge w.n 9', retries: 2, delaySeconds: 1 })]));
    const s = await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.calls).toHaveLength(3);
    expect(h.reporter.of('task-end')[0].msg).toBe('until: ge w.n 9 still false after 3 attempts (n=3)');
    expect(s.exitCode).toBe(2);
  });

  test('retries without until retry a failing task', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('flaky', { change: true, fail: true }, { retries: 2 })]));
    await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.calls.filter((c) => c.phase === 'apply')).toHaveLength(3);
  });
});

describe('handlers', () => {
  test('run once per host at the end of the play, in definition order, only when notified by a change', async () => {
    const h = harness();
    const pb = playbook(
      play(
        'p',
        [
          task('conf1', { change: true }, { notify: ['restart redis'] }),
          task('conf2', { change: true }, { notify: ['restart redis', 'reload keepalived'] }),
          task('unchanged', {}, { notify: ['never notified'] }),
          task('last'),
        ],
        {
          handlers: [
            task('reload keepalived', { change: true }, {}),
            task('restart redis', { change: true }),
            task('listener', { change: true }, { listen: ['restart redis'] }),
            task('never notified', { change: true }),
          ],
        },
      ),
    );
    await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.reporter.results()).toEqual([
      'a conf1 changed',
      'a conf2 changed',
      'a unchanged ok',
      'a last ok',
      'a reload keepalived changed',
      'a restart redis changed',
      'a listener changed',
    ]);
    expect(h.reporter.of('task-end').slice(4).every((e) => e.handler)).toBe(true);
  });

  test('a failed host runs no handlers', async () => {
    const h = harness();
    const pb = playbook(
      play('p', [task('conf', { change: true }, { notify: ['restart'] }), task('boom', { change: true, fail: ['a'] })], {
        handlers: [task('restart', { change: true })],
      }),
    );
    await runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    expect(h.reporter.results().filter((r) => r.includes('restart'))).toEqual(['b restart changed']);
  });
});

describe('stopping', () => {
  test('any_errors_fatal stops all hosts after the failing task, and later plays', async () => {
    const h = harness();
    const pb = playbook(
      play('p', [task('t1', { change: true, fail: ['a'], name: 't1' }), task('t2', { name: 't2' })], { anyErrorsFatal: true }),
      play('q', [task('t3', { name: 't3' })]),
    );
    const s = await runPlaybook(pb, inventory(['a', 'b', 'c']), h.opts, h.deps);
    expect(h.calls.map((c) => c.name)).not.toContain('t2');
    expect(h.calls.map((c) => c.name)).not.toContain('t3');
    expect(h.reporter.of('warning').map((w) => w.msg)).toEqual([
      'any_errors_fatal: a failed "t1" in play "p", stopping all hosts',
    ]);
    expect(s.exitCode).toBe(2);
  });

  test.each([
    [20, true],
    [25, false],
    [30, false],
  ])('max_fail_percentage %i with 1 of 4 failed → stopped: %s', async (pct, stops) => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { change: true, fail: ['a'], name: 't1' }), task('t2', { name: 't2' })], { maxFailPercentage: pct }));
    await runPlaybook(pb, inventory(['a', 'b', 'c', 'd']), h.opts, h.deps);
    const t2 = h.calls.filter((c) => c.name === 't2').length;
    expect(t2).toBe(stops ? 0 : 3);
    if (stops) expect(h.reporter.of('warning')[0].msg).toBe('max_fail_percentage 20% exceeded in play "p" (1 of 4 hosts failed), stopping');
  });

  test("modules see which hosts failed earlier in the run (hostFailed): not the unreachable ones, nor those that did fine", async () => {
    const h = harness({}, ['c']);
    const seen: string[] = [];
    const peek: Module<Record<string, never>> = {
      name: 'peek',
      args: z.strictObject({}),
      async plan(ctx) {
        seen.push(`${ctx.host.name}: ${['a', 'b', 'c'].map((n) => `${n}=${ctx.hostFailed?.(n)}`).join(' ')}`);
        return { changes: [], reason: 'looked' };
      },
      async apply() {
        throw new Error('not reached');
      },
    };
    const modules = new Map(h.deps.modules).set('peek', peek as Module);
    const pb = playbook(play('p', [task('t1', { change: true, fail: ['a'] }), task('t2', {}, { module: 'peek' })]));
    await runPlaybook(pb, inventory(['a', 'b', 'c']), h.opts, { ...h.deps, modules });
    expect(seen).toEqual(['b: a=true b=false c=false']);
  });

  test('a whole failed batch stops a rolling play', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { change: true, fail: ['a'] })], { serial: [1] }));
    await runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    expect(h.calls.filter((c) => c.host === 'b')).toEqual([]);
  });

  test('interrupt: no new task starts, recap says interrupted, exit 130', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('slow', { delayMs: 30, name: 'slow' }), task('next', { name: 'next' })]));
    const run = runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    setTimeout(() => h.controller.abort(), 5);
    const s = await run;
    expect(h.calls.map((c) => c.name)).not.toContain('next');
    expect(s.interrupted).toBe(true);
    expect(s.exitCode).toBe(130);
    expect(h.reporter.of('recap')[0].interrupted).toBe(true);
  });

  test('forks bounds hosts in flight', async () => {
    const h = harness({ forks: 2 });
    let inFlight = 0;
    let max = 0;
    const conn = h.deps.connect;
    h.deps.connect = async (spec) => {
      inFlight++;
      max = Math.max(max, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return conn(spec);
    };
    await runPlaybook(playbook(play('p', [task('t')])), inventory(['a', 'b', 'c', 'd', 'e']), h.opts, h.deps);
    expect(max).toBe(2);
    expect(h.connects).toHaveLength(5);
  });
});

describe('connections and facts', () => {
  test('unreachable host: counted, out for later plays, exit 3', async () => {
    const h = harness({}, ['b']);
    const pb = playbook(play('p', [task('t1')]), play('q', [task('t2')]));
    const s = await runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    expect(h.reporter.results().sort()).toEqual(['a t1 ok', 'a t2 ok', 'b t1 unreachable']);
    expect(h.reporter.of('task-end').find((e) => e.host === 'b')!.msg).toBe('b: connect ECONNREFUSED 10.0.0.9:22');
    expect(s.recap.b).toMatchObject({ unreachable: 1, failed: 0 });
    expect(s.exitCode).toBe(3);
  });

  test('a changed host key: labelled "host key refused" (status unreachable); its pair peer stopping because of it keeps exit 3', async () => {
    const h = harness({ gatherFacts: true } as never);
    const connect = h.deps.connect;
    h.deps.connect = async (spec) => {
      if (spec.name !== 'b') return connect(spec);
      const e = new UnreachableError('b', 'b (10.0.0.1:22): host key changed: known_hosts …');
      e.name = 'HostKeyChangedError';
      throw e;
    };
    // The peer a's task depends on b (as ha_topology does): it stops with a failure that blames b.
    const peerModule: Module = {
      name: 'needs_b',
      args: z.object({}),
      async plan(ctx) {
        if (ctx.host.name === 'a') throw new PeerUnreachableFailure('cluster c: rha refused to connect to b because its SSH host key changed', 'b');
        return { changes: [] };
      },
      async apply() {
        return { changed: false, failed: false, msg: '' };
      },
    };
    h.deps.modules = new Map([...h.deps.modules, ['needs_b', peerModule]]);
    const s = await runPlaybook(playbook(play('p', [task('t1', {}, { module: 'needs_b' })], { gatherFacts: true })), inventory(['a', 'b']), h.opts, h.deps);
    const ends = h.reporter.of('task-end');
    expect(ends.filter((e) => e.host === 'b').map((e) => [e.task, e.status, e.label])).toEqual([['Gathering Facts', 'unreachable', 'host key refused']]);
    expect(ends.find((e) => e.host === 'a' && e.task === 't1')).toMatchObject({ status: 'failed', msg: 'cluster c: rha refused to connect to b because its SSH host key changed' });
    expect(s.recap.a).toMatchObject({ failed: 1 });
    expect(s.recap.b).toMatchObject({ unreachable: 1 });
    expect(s.exitCode).toBe(3);
    // A failure of a's own next to it still makes the run a 2.
    expect(exitCodeFor(s.recap, false, {})).toBe(2);
  });

  test('a host lost mid-task is unreachable, not ignored', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { unreachable: true }, { ignoreErrors: true }), task('t2')]));
    const s = await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.reporter.results()).toEqual(['a t1 unreachable']);
    expect(s.exitCode).toBe(3);
  });

  test('facts gathered once per host per run, reused, one connection per host', async () => {
    const h = harness();
    const pb = playbook(
      play('nofacts', [task('t0')]),
      play('p', [task('t1', { msg: '{{ facts.osId }} {{ facts.hostname }}' })], { gatherFacts: true }),
      play('q', [task('t2')], { gatherFacts: true }),
    );
    await runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    expect(h.factCalls.sort()).toEqual(['a', 'b']);
    expect(h.connects.sort()).toEqual(['a', 'b']);
    expect(h.reporter.of('task-end').filter((e) => e.task === 'Gathering Facts')).toHaveLength(2);
    expect(h.reporter.of('task-end').find((e) => e.task === 't1')!.msg).toMatch(/^debian (a|b)$/);
  });

  test('a play whose hosts all failed earlier is skipped with a warning that says so', async () => {
    const h = harness();
    const pb = playbook(play('p', [task('t1', { change: true, fail: true })]), play('q', [task('t2')]));
    await runPlaybook(pb, inventory(['a']), h.opts, h.deps);
    expect(h.reporter.of('warning').map((w) => w.msg)).toEqual(['play "q": skipped, every host it matches failed or was unreachable earlier']);
  });

  test('no host matched → warning, play skipped', async () => {
    const h = harness({ limit: 'b' });
    const pb = playbook(play('p', [task('t1')], { hosts: 'a' }));
    const s = await runPlaybook(pb, inventory(['a', 'b']), h.opts, h.deps);
    expect(h.reporter.of('warning')[0].msg).toBe('play "p": no hosts matched "a" with --limit b');
    expect(s.exitCode).toBe(0);
  });
});

describe('secrets', () => {
  test('every event is masked with the inventory secrets', async () => {
    const h = harness({ diff: true });
    const inv = inventory(['a'], {}, ['hunter2-secret']);
    const pb = playbook(play('p', [task('t1', { change: true, msg: 'set requirepass hunter2-secret' })]));
    await runPlaybook(pb, inv, h.opts, h.deps);
    const all = JSON.stringify(h.reporter.events);
    expect(all).not.toContain('hunter2-secret');
    expect(h.reporter.of('task-end')[0].msg).toBe('set requirepass ***');
  });
});

test('a reporter that throws does not stop the run', async () => {
  const h = harness();
  h.deps.reporter = {
    emit() {
      throw new Error('reporter bug');
    },
    async close() {},
  };
  const s = await runPlaybook(playbook(play('p', [task('t1', { change: true })])), inventory(['a']), h.opts, h.deps);
  expect(s.recap.a).toMatchObject({ ok: 1, changed: 1 });
  expect(s.exitCode).toBe(0);
});

test('exit codes from recap', () => {
  const r = (o: Partial<ReturnType<typeof emptyRecap>>) => ({ ...emptyRecap(), ...o });
  expect(exitCodeFor({ a: r({ ok: 3 }) }, false)).toBe(0);
  expect(exitCodeFor({ a: r({ failed: 1 }), b: r({ unreachable: 1 }) }, false)).toBe(2);
  expect(exitCodeFor({ a: r({ unreachable: 1 }) }, false)).toBe(3);
  expect(exitCodeFor({ a: r({ ignored: 1 }) }, false)).toBe(0);
  expect(exitCodeFor({ a: r({ failed: 1 }) }, true)).toBe(130);
  // Failures caused by an unreachable peer blame the peer: 3, unless the host also failed on its own.
  expect(exitCodeFor({ a: r({ failed: 1 }), b: r({ unreachable: 1 }) }, false, { a: 1 })).toBe(3);
  expect(exitCodeFor({ a: r({ failed: 1 }) }, false, { a: 1 })).toBe(3);
  expect(exitCodeFor({ a: r({ failed: 2 }), b: r({ unreachable: 1 }) }, false, { a: 1 })).toBe(2);
});
