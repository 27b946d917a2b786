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

describe('status says what to do for a node a notify hook fenced', () => {
  test('a fenced old master beside the VIP holder: both ways out, with the snapshot', () => {
    const old = node({ host: 'node2', address: '10.0.0.2', role: 'master', keys: 7, fenced: 'rule B8: the peer is a master on another history' });
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, old]);
    expect(s.verdict).toBe('degraded');
    expect(s.master).toBe('node1');
    expect(s.reasons).toContain(
      'node2 is fenced (rule B8: the peer is a master on another history): it refuses writes and keeps its 7 keys, which node1 (the master) may lack. ' +
        'To keep node1\'s data: rha provision INVENTORY (node2 rejoins as its replica; its keys are first saved to a snapshot under its data folder). ' +
        'To keep node2\'s data instead: make it the inventory\'s master and run rha provision INVENTORY --force pair1',
    );
    expect(formatStatus([s])).toMatch(/node2 .* master \(fenced\)/);
  });

  test('a fenced VIP holder: check the peer, then rerun its hook', () => {
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [{ ...master, fenced: 'rule M3: ...' }, replica('BACKUP')]);
    expect(s.reasons.join('\n')).toContain('node1 holds the VIP but is fenced (rule M3: ...): it refuses writes. Check the other node\'s Redis');
    expect(s.reasons.join('\n')).toContain('/etc/keepalived/rha/notify.sh master on node1');
  });

  test('a VIP holder still replicating (catch-up incomplete, rule M9): wait for lag 0, then rerun its hook', () => {
    const vipOnReplica = node({ host: 'node2', address: '10.0.0.2', role: 'slave', masterHost: '10.0.0.1', linkUp: true, holdsVip: true });
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [{ ...master, holdsVip: false, fenced: '' }, vipOnReplica]);
    expect(s.reasons.join('\n')).toContain("node2 holds the VIP but its Redis is still a replica of node1: the notify hook's catch-up did not finish (rule M9");
    expect(s.reasons.join('\n')).toContain("node1 is fenced (by the peer's notify hook");
  });

  test('a replication cycle (both hooks took the master role at once): no master; the health check reruns the hook (C3)', () => {
    const n1 = node({ host: 'node1', address: '10.0.0.1', role: 'slave', masterHost: '10.0.0.2', linkUp: false, holdsVip: true, vrrpState: 'MASTER' });
    const n2 = node({ host: 'node2', address: '10.0.0.2', role: 'slave', masterHost: '10.0.0.1', linkUp: false, vrrpState: 'BACKUP' });
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [n1, n2]);
    expect(s.verdict).toBe('degraded');
    expect(s.reasons.join('\n')).toContain('node1 and node2 replicate from each other (both hooks took the master role at once): no master, writes refused, nothing lost');
    expect(s.reasons.join('\n')).not.toContain('catch-up');
  });
});

describe('the split-brain bound, where it bites', () => {
  test('a master without a replica in sync: writes refused, and the two ways out', () => {
    const down = node({ host: 'node2', address: '10.0.0.2', reachable: false, redisUp: false });
    const s = judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, down], { minReplicasMaxLag: 10 });
    expect(s.reasons).toContain(
      'node1 has no replica in sync, so it refuses writes (NOREPLICAS) after 10 s: the split-brain bound (redis.min_replicas_max_lag). Bring the other node back as its replica (rha provision INVENTORY), or set min_replicas_max_lag: 0 to take writes with one node',
    );
    expect(judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, down], { minReplicasMaxLag: 0 }).reasons.join()).not.toContain('NOREPLICAS');
    expect(judge({ name: 'pair1', vip: '10.0.0.200/24' }, [master, replica('BACKUP')], { minReplicasMaxLag: 10 }).verdict).toBe('healthy');
  });
});
