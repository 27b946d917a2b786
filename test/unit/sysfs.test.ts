/**
 * sysfs (src/modules/sysfs.ts): the value parser, and plans made by its real read script on this
 * machine's /sys (plans only, in check mode: a test never writes the machine's kernel settings).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { Command, CommandResult } from '../../src/core/command.js';
import type { TaskContext } from '../../src/core/types.js';
import { currentSysfsValue, sysfsModule } from '../../src/modules/sysfs.js';
import { UNKNOWN_FACTS } from '../../src/runner/context.js';

function ctx(warnings: string[]): TaskContext {
  return {
    host: { name: 'here' },
    conn: {
      hostName: 'here',
      async exec(cmd: Command): Promise<CommandResult> {
        const r = spawnSync(cmd.argv[0], cmd.argv.slice(1), { encoding: 'utf8', input: '' });
        return { display: cmd.argv.join(' '), code: r.status, stdout: r.stdout, stderr: r.stderr, ok: r.status === 0, durationMs: 0 };
      },
      async close() {},
    },
    facts: UNKNOWN_FACTS,
    check: true,
    diff: false,
    become: false,
    vars: {},
    searchPaths: [],
    secrets: new Set<string>(),
    warn: (m: string) => warnings.push(m),
    signal: new AbortController().signal,
  } as unknown as TaskContext;
}

describe('sysfs', () => {
  test('the current value is the bracketed choice, or the whole value', () => {
    expect(currentSysfsValue('always madvise [never]')).toBe('never');
    expect(currentSysfsValue('[always] madvise never')).toBe('always');
    expect(currentSysfsValue('  4096 \n')).toBe('4096');
    expect(currentSysfsValue('a\tb')).toBe('a b');
  });

  test('only paths under /sys are accepted', () => {
    expect(sysfsModule.args.safeParse({ path: '/proc/sys/vm/swappiness', value: 1 }).success).toBe(false);
    expect(sysfsModule.args.safeParse({ path: '/sys/kernel/mm/transparent_hugepage/enabled', value: 'never' }).success).toBe(true);
  });

  const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
  test.runIf(existsSync(THP))('plans against this machine: nothing when it already holds the value, a write when it does not', async () => {
    const now = currentSysfsValue(readFileSync(THP, 'utf8'));
    const other = ['always', 'madvise', 'never'].find((v) => v !== now)!;
    const warnings: string[] = [];
    const same = await sysfsModule.plan(ctx(warnings), sysfsModule.args.parse({ path: THP, value: now }));
    expect(same.changes).toEqual([]);
    expect(same.reason).toBe(`${THP} is ${now}`);
    const differs = await sysfsModule.plan(ctx(warnings), sysfsModule.args.parse({ path: THP, value: other, on_refused: 'warn' }));
    if (process.getuid?.() === 0) expect(differs.changes).toEqual([{ description: `set ${THP} to ${other} (was ${now})` }]);
    else expect(warnings.join('\n')).toMatch(/refuses writes/);
  });

  test('a setting this kernel does not have: a warning with on_refused warn, else the task fails', async () => {
    const warnings: string[] = [];
    const p = await sysfsModule.plan(ctx(warnings), sysfsModule.args.parse({ path: '/sys/kernel/rha-no-such-setting', value: 'x', on_refused: 'warn' }));
    expect(p.changes).toEqual([]);
    expect(warnings).toEqual(['sysfs /sys/kernel/rha-no-such-setting: this kernel has no such setting on here; wanted x']);
    await expect(sysfsModule.plan(ctx([]), sysfsModule.args.parse({ path: '/sys/kernel/rha-no-such-setting', value: 'x' }))).rejects.toThrow(/no such setting/);
  });
});
