/**
 * `rha status`'s verdict (src/pair/status.ts judge, pure): running is not ready, so a node whose
 * keepalived is in FAULT makes the pair degraded even when everything else is up. On real hosts:
 * test/e2e/day2.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { formatStatus, judge, type NodeStatus } from '../../src/pair/status.js';

const node = (over: Partial<NodeStatus>): NodeStatus => ({
  host: 'n',
  address: '10.0.0.1',
  reachable: true,
  redisUp: true,
  linkUp: false,
  syncInProgress: false,
  offset: 100,
  connectedReplicas: 0,
  keys: 3,
  holdsVip: false,
  keepalivedRunning: true,
  ...over,
});
const master = node({ host: 'node1', address: '10.0.0.1', role: 'master', holdsVip: true, connectedReplicas: 1, vrrpState: 'MASTER' });
const replica = (vrrpState?: string) =>
  node({ host: 'node2', address: '10.0.0.2', role: 'slave', masterHost: '10.0.0.1', linkUp: true, ...(vrrpState ? { vrrpState } : {}) });

describe('status verdict and keepalived state', () => {
  test('a replica in BACKUP: healthy; the table shows the state', () => {
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, replica('BACKUP')]);
    expect(s.verdict).toBe('healthy');
    expect(s.reasons).toEqual([]);
    const t = formatStatus([s]);
    expect(t).toMatch(/node1 .* running \(MASTER\)$/m);
    expect(t).toMatch(/node2 .* running \(BACKUP\)$/m);
  });

  test('a node whose changed host key rha refused: said so, with how to accept it, not "unreachable"', () => {
    const refused = node({ host: 'node2', address: '10.0.0.2', reachable: false, redisUp: false, keepalivedRunning: false, keys: 0, error: 'host key refused' });
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, refused]);
    expect(s.verdict).toBe('degraded');
    expect(s.reasons).toEqual(['node2: rha refused to connect because its SSH host key changed; if it was replaced deliberately, accept the new key (--accept-host-key node2)']);
    expect(formatStatus([s])).toMatch(/^  node2 +10\.0\.0\.2 +- +host key refused +-/m);
  });

  test('a replica in FAULT: degraded, with the reason', () => {
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, replica('FAULT')]);
    expect(s.verdict).toBe('degraded');
    expect(s.reasons).toEqual(['node2: keepalived is in FAULT (its Redis health check fails): it cannot take the VIP']);
  });

  test('state unknown (not readable): judged on the rest, shown as plain running', () => {
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, replica()]);
    expect(s.verdict).toBe('healthy');
    expect(formatStatus([s])).toMatch(/node2 .* running$/m);
  });
});
