import { describe, expect, test } from 'vitest';
import { decideTopology, HOST_KEY_REFUSED } from '../../src/modules/ha/topology.js';
import { nodeStateCommands, parseNodeState, type NodeState } from '../../src/modules/ha/redis-state.js';
import { isJemallocHeaderError } from '../../src/modules/ha/redis-build.js';
import { parseProbe, parseRedisVersion } from '../../src/modules/ha/redis-host.js';
import { satisfies } from '../../src/modules/ha/redis-install.js';
import { stepBlocked } from '../../src/modules/ha/ha-service.js';
import { refuse } from '../../src/modules/ha/switchover.js';

const node = (over: Partial<NodeState>): NodeState => ({
  reachable: true, redisUp: true, role: 'master', linkUp: false, syncInProgress: false, offset: 0,
  connectedReplicas: 0, keys: 0, holdsVip: false, keepalivedRunning: false, ...over,
});
/** Replication histories: a on R1 at an offset; b promoted from R1 at `left` (second_repl_offset left+1), now at `now`. */
const R1 = 'a'.repeat(40);
const R2 = 'b'.repeat(40);
const Z = '0'.repeat(40);
const H = {
  a: (offset: number): Partial<NodeState> => ({ keys: 5, replid: R1, replid2: Z, offset, secondOffset: -1 }),
  promoted: (left: number, now: number): Partial<NodeState> => ({ keys: 5, replid: R2, replid2: R1, offset: now, secondOffset: left + 1 }),
};
const decide = (a: Partial<NodeState>, b: Partial<NodeState>, force = false) =>
  decideTopology({ cluster: 'cache', preferred: { name: 'a', state: node(a) }, other: { name: 'b', state: node(b) }, force });

describe('decideTopology: which node is the live master', () => {
  test.each([
    ['empty pair: the inventory preference', {}, {}, 'a', true],
    ['VIP on the preferred master', { holdsVip: true, keys: 5 }, { role: 'slave', masterHost: 'x', keys: 5 }, 'a', false],
    ['after a failover the VIP holder wins, not the inventory', { role: 'slave', keys: 5 }, { holdsVip: true, keys: 7 }, 'b', false],
    ['replaced preferred master (blank) next to the live master', { keys: 0 }, { holdsVip: true, keys: 9 }, 'b', false],
    ['replaced preferred master, live master without VIP', { keys: 0 }, { keys: 9 }, 'b', false],
    ['only the preferred holds data', { keys: 3 }, { keys: 0 }, 'a', false],
    ['existing replication without VIP', { role: 'slave', keys: 4 }, { keys: 4 }, 'b', false],
    ['replica of an empty master, both empty', { role: 'slave' }, {}, 'b', false],
    ['--force keeps the inventory preference', { keys: 1 }, { keys: 9 }, 'a', false, true],
    // The hooks' `within` rule: no VIP, both masters with data, one's writes all in the other's history.
    ['b promoted from a and took no write since: a is the live master', H.a(120), H.promoted(100, 100), 'a', false],
    ['b promoted from a and wrote on, a stopped before: b is the live master', H.a(100), H.promoted(100, 150), 'b', false],
  ] as const)('%s', (_name, a, b, master, fresh, force = false) => {
    const d = decide(a, b, force);
    expect(d.kind).toBe('decided');
    if (d.kind !== 'decided') return;
    expect(d.master).toBe(master);
    expect(d.replica).toBe(master === 'a' ? 'b' : 'a');
    expect(d.fresh).toBe(fresh);
  });

  test.each([
    ['both masters with data', { keys: 3 }, { keys: 4 }, 'both nodes are masters holding data on diverged replication histories (a: 3 keys, b: 4 keys); making one a replica wipes the other\'s 4 keys. Rerun with --force cache to keep a\'s data and discard b\'s (saved to a snapshot on b first)'],
    ['both masters, diverged after a split brain (b promoted, a wrote on)', H.a(120), H.promoted(100, 130), 'diverged replication histories'],
    ['both masters, b promoted and wrote on, a restarted with a fresh history', { keys: 3, replid: 'c'.repeat(40), offset: 0, replid2: Z, secondOffset: -1 }, H.promoted(100, 150), 'diverged replication histories'],
    ['split brain', { holdsVip: true }, { holdsVip: true }, 'both a and b hold the VIP (split brain)'],
    ['peer unreachable', {}, { reachable: false, redisUp: false }, 'b is unreachable, so rha cannot tell which node holds the data'],
    ['VIP on a replica', { holdsVip: true, role: 'slave', masterHost: '10.0.0.12', keys: 2 }, { keys: 2 }, 'a holds the VIP but its Redis is a replica of 10.0.0.12'],
    ['two replicas holding data', { role: 'slave', keys: 2, offset: 10 }, { role: 'slave', keys: 2, offset: 30 }, 'b is further ahead (offset 30)'],
  ] as const)('refuses: %s', (_name, a, b, message) => {
    const d = decide(a, b);
    expect(d.kind).toBe('refused');
    if (d.kind === 'refused') expect(d.reason).toContain(message);
  });

  test('a peer whose host key rha refused: the refusal named as the cause, the peer blamed', () => {
    const d = decide({ keys: 3 }, { reachable: false, redisUp: false, error: HOST_KEY_REFUSED });
    expect(d).toEqual({
      kind: 'refused',
      unreachable: 'b',
      reason:
        "rha refused to connect to b because its SSH host key changed (see b's error), so it cannot tell which node holds the data; " +
        'if b was replaced deliberately, accept its new key (--accept-host-key b) and run again (a master with 3 keys; b host key refused)',
    });
    expect(decide({}, { reachable: false, redisUp: false })).toMatchObject({ kind: 'refused', unreachable: 'b' });
  });
});

describe('reading a node', () => {
  const info = [
    '# Server', 'redis_version:7.0.15', '# Replication', 'role:slave', 'master_host:10.213.0.11', 'master_port:6379',
    'master_link_status:up', 'master_sync_in_progress:0', 'master_replid:abc', 'master_replid2:0000', 'master_repl_offset:1234',
    '# Keyspace', 'db0:keys=3,expires=0,avg_ttl=0', 'db2:keys=4,expires=1,avg_ttl=0',
  ].join('\r\n');
  test('parses INFO, VIP and keepalived sections', () => {
    const s = parseNodeState(`@@rha:redis\n${info}\r\n\n@@rha:vip\nno\n@@rha:keepalived\nyes\n`);
    expect(s).toMatchObject({ redisUp: true, role: 'slave', masterHost: '10.213.0.11', linkUp: true, syncInProgress: false, replid: 'abc', offset: 1234, keys: 7, holdsVip: false, keepalivedRunning: true, version: '7.0.15' });
  });
  test("a notify hook's fence: min-replicas-to-write at the fence value, and its reason from replication.conf", () => {
    const base = `@@rha:redis\n${info}\r\n\n@@rha:vip\nyes\n@@rha:keepalived\nyes\n`;
    const fenced = parseNodeState(`${base}@@rha:minreplicas\n1000000\n@@rha:rolefile\n\n@@rha:fencedby\nrule M3: check the peer\n`);
    expect(fenced).toMatchObject({ isFenced: true, fencedBy: 'rule M3: check the peer', roleFile: '' });
    const bound = parseNodeState(`${base}@@rha:minreplicas\n1\n@@rha:rolefile\n\n@@rha:fencedby\n\n`);
    expect(bound.isFenced).toBe(false);
    expect(bound.fencedBy).toBeUndefined();
    // Redis down: nothing is known about a fence.
    expect(parseNodeState('@@rha:redis\nConnection refused\n@@rha:minreplicas\n\n').isFenced).toBeUndefined();
  });
  test('with become, the Redis part (password on stdin) runs as the login user and only the role file as root', () => {
    const q = { cliPath: '/usr/local/bin/redis-cli', port: 6379, password: 'pw', vip: '10.0.0.200/24', configDir: '/etc/redis' };
    const [redis, role] = nodeStateCommands({ ...q, become: true });
    expect(redis).toMatchObject({ become: false, stdin: 'pw\n' });
    expect(redis.argv.join(' ')).not.toContain('replication.conf');
    expect(role).toMatchObject({ become: true });
    expect(role.stdin).toBeUndefined();
    expect(role.argv.join(' ')).toContain('/etc/redis/replication.conf');
    // Without become: one command, role file included.
    const one = nodeStateCommands({ ...q, become: false });
    expect(one).toHaveLength(1);
    expect(one[0].argv.join(' ')).toContain('replication.conf');
  });
  test('a Redis that does not answer is down, with the reason', () => {
    const s = parseNodeState('@@rha:redis\nCould not connect to Redis at 127.0.0.1:6379: Connection refused\n\n@@rha:vip\nyes\n@@rha:keepalived\nno\n');
    expect(s.redisUp).toBe(false);
    expect(s.holdsVip).toBe(true);
    expect(s.error).toContain('Connection refused');
  });
});

describe('redis_install decisions', () => {
  test('parses redis-server --version', () => {
    expect(parseRedisVersion('Redis server v=7.0.15 sha=00000000:0 malloc=libc bits=64 build=c9a4e1d5d4ad8a0e')).toEqual({ version: '7.0.15', malloc: 'libc' });
    expect(parseRedisVersion('none')).toBeUndefined();
  });
  test.each([
    [{ version: '7.0.15', malloc: 'jemalloc-5.2.1' }, 'auto', '7.0.15', true],
    [{ version: '7.0.15', malloc: 'libc' }, 'auto', '7.0.15', true],
    [{ version: '7.0.15', malloc: 'libc' }, 'jemalloc', '7.0.15', false],
    [{ version: '7.0.14', malloc: 'libc' }, 'auto', '7.0.15', false],
    [undefined, 'auto', '7.0.15', false],
  ] as const)('installed %j, wanted malloc=%s v%s → satisfied %s', (installed, malloc, version, ok) => {
    expect(satisfies(installed as never, { version, malloc, install: 'source' })).toBe(ok);
  });
  test('recognises the jemalloc header failure of a half-built tree', () => {
    expect(isJemallocHeaderError('zmalloc.h:50:10: fatal error: jemalloc/jemalloc.h: No such file or directory')).toBe(true);
    expect(isJemallocHeaderError('cc: not found')).toBe(false);
  });
  test('parses the probe', () => {
    expect(parseProbe('@@rha:version\nnone\n@@rha:cc\nno\n@@rha:make\nyes\n@@rha:tree\nyes\n@@rha:tarball\n\n')).toEqual({
      installed: undefined, hasCc: false, hasMake: true, tree: true, tarballSha: undefined,
    });
  });
});

describe('ha_service: the start-up order as preconditions', () => {
  const n = (name: string, address: string, over: Partial<NodeState>) => ({ name, address, state: node(over) });
  const m = (over: Partial<NodeState> = {}) => n('a', '10.0.0.11', over);
  const r = (over: Partial<NodeState> = {}) => n('b', '10.0.0.12', over);
  const synced = { role: 'slave' as const, masterHost: '10.0.0.11', linkUp: true };
  test.each([
    ['redis on the master: always', 'redis', 'master', m({ redisUp: false }), r({ redisUp: false }), undefined],
    ['redis on the replica before the master runs', 'redis', 'replica', r({ redisUp: false }), m({ redisUp: false }), 'step 2 (Redis on the replica b) must wait for step 1: Redis on the master a is not running as master'],
    ['redis on the replica after step 1', 'redis', 'replica', r({ redisUp: false }), m(), undefined],
    ['keepalived on the master before the sync', 'keepalived', 'master', m(), r({ role: 'slave', masterHost: '10.0.0.11', linkUp: false }), 'step 5 (keepalived on the master a) must wait for step 3: the replica b is not in sync with a'],
    ['keepalived on the master after the sync', 'keepalived', 'master', m(), r(synced), undefined],
    ['keepalived on the replica before the master holds the VIP', 'keepalived', 'replica', r(synced), m({ keepalivedRunning: true }), 'step 6 (keepalived on the replica b) must wait for step 5: the master a does not hold the VIP yet'],
    ['keepalived on the replica, not in sync', 'keepalived', 'replica', r({ role: 'slave', masterHost: '10.0.0.99', linkUp: true }), m({ keepalivedRunning: true, holdsVip: true }), 'step 6 (keepalived on the replica b) must wait for step 3: b is not in sync with the master a'],
    ['keepalived on the replica in order', 'keepalived', 'replica', r(synced), m({ keepalivedRunning: true, holdsVip: true }), undefined],
  ] as const)('%s', (_n, name, role, self, peer, message) => {
    const got = stepBlocked(name, role, self, peer);
    if (message === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(message);
  });
});

describe('switchover preconditions', () => {
  const m = { name: 'a', address: '10.0.0.11' };
  const r = { name: 'b' };
  const ok = { role: 'slave' as const, masterHost: '10.0.0.11', linkUp: true, keepalivedRunning: true };
  test.each([
    ['in sync, keepalived on both', node({ keepalivedRunning: true, holdsVip: true }), node(ok), undefined],
    ['replica down', node({ keepalivedRunning: true }), node({ redisUp: false }), 'the replica b is down'],
    ['replica of someone else', node({ keepalivedRunning: true }), node({ ...ok, masterHost: '10.0.0.99' }), 'b is not a replica of a'],
    ['replica syncing', node({ keepalivedRunning: true }), node({ ...ok, syncInProgress: true }), 'b is not in sync with a (link up, sync in progress)'],
    ['no keepalived on the replica', node({ keepalivedRunning: true }), node({ ...ok, keepalivedRunning: false }), 'keepalived is not running on b'],
  ] as const)('%s', (_n, ms, rs, message) => {
    const got = refuse(m, ms, r, rs);
    if (message === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(message);
  });
});
