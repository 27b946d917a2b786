/** rha switchover's guards that need no host (src/modules/ha/switchover.ts); the move itself is in test/e2e/day2. */
import { describe, expect, test } from 'vitest';
import type { Command } from '../../src/core/command.js';
import type { Connection } from '../../src/core/types.js';
import { BOOST, PREEMPT_REFUSAL, setBoostScript, switchover, SwitchoverError } from '../../src/modules/ha/switchover.js';

function recording(name: string, seen: string[]): Connection {
  return {
    hostName: name,
    async exec(cmd: Command) {
      seen.push(`${name}: ${cmd.argv.join(' ')}`);
      return { display: '', code: 1, stdout: '', stderr: '', ok: false, durationMs: 0 };
    },
    async close() {},
  };
}

describe('switchover', () => {
  test('refused with keepalived.preempt, before any command reaches a host', async () => {
    const seen: string[] = [];
    const spec = { cluster: 'pair1', port: 6379, password: 'p', vip: '10.0.0.200/24', cliPath: '/usr/local/bin/redis-cli', configDir: '/etc/redis', become: false, preempt: true };
    const run = switchover({ name: 'a', address: '10.0.0.1', conn: recording('a', seen) }, { name: 'b', address: '10.0.0.2', conn: recording('b', seen) }, spec);
    await expect(run).rejects.toThrow(SwitchoverError);
    await expect(run).rejects.toThrow(`cluster pair1: ${PREEMPT_REFUSAL}`);
    expect(seen).toEqual([]);
  });

  test('the priority raise is written to a temp file and renamed over the track file (keepalived never reads half a number)', () => {
    expect(setBoostScript('/etc/keepalived/rha/switchover.pair1', BOOST)).toBe(
      "printf '%s\\n' 253 > /etc/keepalived/rha/switchover.pair1.rha-tmp && mv -f -- /etc/keepalived/rha/switchover.pair1.rha-tmp /etc/keepalived/rha/switchover.pair1",
    );
  });
});

describe('the new master gets the user\'s split-brain bound back, never 0 unless the inventory says 0', () => {
  test('minReplicasArgs', async () => {
    const { minReplicasArgs } = await import('../../src/modules/ha/switchover.js');
    expect(minReplicasArgs(10)).toEqual(['min-replicas-to-write', '1', 'min-replicas-max-lag', '10']);
    expect(minReplicasArgs(3)).toEqual(['min-replicas-to-write', '1', 'min-replicas-max-lag', '3']);
    expect(minReplicasArgs(0)).toEqual(['min-replicas-to-write', '0', 'min-replicas-max-lag', '10']);
  });
});
