import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InputError, formatProblem, type Inventory } from '../../src/core/types.js';
import { inventorySchema, limitHosts, loadInventory, parseInventory, selectHosts } from '../../src/inventory/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'inputs', 'inventory');
// A home whose ~/.ssh/id_ed25519 exists: a private_key the inventory names must be a readable file.
const home = mkdtempSync(join(tmpdir(), 'rha-inventory-home-'));
mkdirSync(join(home, '.ssh'));
writeFileSync(join(home, '.ssh', 'id_ed25519'), 'not a real key\n', { mode: 0o600 });
const env = { HOME: home, RHA_REDIS_PASSWORD: 'redis-secret', RHA_VRRP_PASSWORD: 'vrrp1234', VRRP_PASS: 'vrrp-long-pass' };

beforeAll(() => chmodSync(join(fixtures, 'secrets', 'redis.pass'), 0o600));

/** The printed problems of a load that must fail. */
function problemsOf(text: string, e: Record<string, string> = env): string[] {
  try {
    parseInventory('inventory.yaml', text, { env: e });
  } catch (err) {
    if (err instanceof InputError) return err.problems.map(formatProblem);
    throw err;
  }
  throw new Error('expected an InputError');
}

/** A valid two-host inventory; `cluster` replaces the body of clusters.cache (indented 4). */
function withCluster(cluster: string, extra = ''): string {
  return `hosts:
  a: 10.0.0.11
  b: 10.0.0.12
${extra}clusters:
  cache:
    master: a
    replica: b
${cluster}`;
}
const redisKa = `    vip: 10.0.0.100/24
    redis: { password: pw }
    keepalived: { virtual_router_id: 51 }
`;

describe('loadInventory: the shipped example', () => {
  it('loads inventory/example.yaml: 2 hosts, 1 VIP, defaults filled in', async () => {
    const inv = await loadInventory(join(root, 'inventory', 'example.yaml'), { env });
    expect([...inv.hosts.keys()]).toEqual(['redis-a', 'redis-b']);
    expect([...inv.clusters.keys()]).toEqual(['cache']);
    const c = inv.clusters.get('cache')!;
    expect(c.vip).toBe('10.0.0.100/24');
    expect(c.interface).toBe('eth0');
    expect(c.redis).toMatchObject({ port: 6379, password: 'redis-secret', version: '7.0.15', install: 'source', malloc: 'auto', appendonly: true, maxmemory: '0', config: {} });
    expect(c.keepalived).toMatchObject({
      virtual_router_id: 51,
      auth_pass: 'vrrp1234',
      priority: { master: 150, replica: 140 },
      check: { interval: 1, timeout: 4, fall: 2, rise: 2, weight: -20 },
      advert_int: 1,
      preempt: false,
      unicast: false,
      log_file: '/var/log/rha-keepalived.log',
    });
    const a = inv.hosts.get('redis-a')!;
    expect(a.connection).toEqual({
      address: '10.0.0.11',
      port: 22,
      user: 'root',
      privateKey: join(home, '.ssh', 'id_ed25519'),
      password: undefined,
      become: false,
      becomePassword: undefined,
      knownHosts: join(home, '.ssh', 'known_hosts'),
      connectTimeoutMs: 10000,
      connectRetries: 2,
    });
    expect(a.groups).toEqual(['all', 'cache', 'clusters']);
    expect(a.vars.node).toEqual({ name: 'redis-a', role: 'master', peer: 'redis-b', peer_address: '10.0.0.12', address: '10.0.0.11', priority: 150 });
    expect(inv.hosts.get('redis-b')!.vars.node).toMatchObject({ role: 'replica', peer: 'redis-a', priority: 140 });
    expect((a.vars.cluster as { redis: { port: number } }).redis.port).toBe(6379);
    expect([...inv.secrets].sort()).toEqual(['redis-secret', 'vrrp1234']);
    expect(inv.warnings).toEqual([]);
    expect([...inv.groups]).toEqual([
      ['all', ['redis-a', 'redis-b']],
      ['cache', ['redis-a', 'redis-b']],
      ['clusters', ['redis-a', 'redis-b']],
    ]);
  });

  it('names an unset environment variable', async () => {
    await expect(loadInventory(join(root, 'inventory', 'example.yaml'), { env: { RHA_VRRP_PASSWORD: 'x' } })).rejects.toThrow(
      /example\.yaml:21 clusters\.cache\.redis\.password: environment variable RHA_REDIS_PASSWORD is not set: export it, or use \{ file: PATH \} or a literal$/,
    );
  });

  it('reports a missing file', async () => {
    await expect(loadInventory('/nonexistent/inv.yaml')).rejects.toThrow('/nonexistent/inv.yaml: cannot read inventory: ENOENT');
  });

  it('exports the raw schema (zod), which converts to JSON Schema', () => {
    expect(inventorySchema.safeParse({ hosts: { a: '10.0.0.1' } }).success).toBe(true);
    expect(z.toJSONSchema(inventorySchema, { io: 'input' })).toMatchObject({ type: 'object', required: ['hosts'] });
    expect(() => z.toJSONSchema(inventorySchema)).not.toThrow();
  });

  it('keeps maxmemory as a string for redis.conf whether written as a number or a size', () => {
    const text = (m: string) => `hosts: { a: 10.0.0.11, b: 10.0.0.12 }\nclusters:\n  c:\n    master: a\n    replica: b\n    vip: 10.0.0.100/24\n    redis: { password: pw, maxmemory: ${m} }\n    keepalived: { virtual_router_id: 1 }\n`;
    expect(parseInventory('i.yaml', text('1073741824')).clusters.get('c')!.redis.maxmemory).toBe('1073741824');
    expect(parseInventory('i.yaml', text('2gb')).clusters.get('c')!.redis.maxmemory).toBe('2gb');
  });
});

describe('loadInventory: full fixture (groups, vars precedence, two clusters, secrets)', () => {
  let inv: Inventory;
  beforeAll(async () => {
    inv = await loadInventory(join(fixtures, 'full.yaml'), { env });
  });

  it('resolves connection defaults and overrides', () => {
    expect(inv.hosts.get('node1')!.connection).toMatchObject({ user: 'admin', port: 2222, become: true, connectTimeoutMs: 5000 });
    expect(inv.hosts.get('node2')!.connection).toMatchObject({ user: 'root', port: 2222, become: false });
    expect(inv.hosts.get('web1')!.connection).toMatchObject({ address: 'web1.example.net', user: 'admin', become: false });
  });

  it('applies variable precedence: all < groups (parents before children, then by name) < host < cluster', () => {
    const v = (h: string) => inv.hosts.get(h)!.vars;
    expect(v('node1')).toMatchObject({ level: 'all', from_all: 'x' });
    expect(v('node1').from_parent).toBeUndefined();
    // node3: in child (depth 1) and, through it, parent (depth 0): the child wins.
    expect(v('node3')).toMatchObject({ level: 'child', from_parent: 'p', from_all: 'x' });
    // node2: host vars beat every group.
    expect(v('node2')).toMatchObject({ level: 'host', from_aaa: 'a', from_parent: 'p', only_host: 1 });
    expect(v('web1')).toEqual({ level: 'all', from_all: 'x' });
  });

  it('flattens groups through children and adds cluster groups', () => {
    expect(inv.groups.get('parent')).toEqual(['node2', 'node3']);
    expect(inv.groups.get('child')).toEqual(['node2', 'node3']);
    expect(inv.groups.get('cache')).toEqual(['node1', 'node2']);
    expect(inv.groups.get('sessions')).toEqual(['node3', 'node4']);
    expect(inv.groups.get('clusters')).toEqual(['node1', 'node2', 'node3', 'node4']);
    expect(inv.hosts.get('node3')!.groups).toEqual(['all', 'parent', 'child', 'sessions', 'clusters']);
    expect(inv.hosts.get('web1')!.groups).toEqual(['all', 'web']);
  });

  it('resolves secrets from a file, literal and env; keeps numbers; warns about a long auth_pass', () => {
    expect(inv.clusters.get('cache')!.redis).toMatchObject({ password: 'filepass', port: 6380, config: { 'tcp-keepalive': 60 } });
    expect(inv.clusters.get('cache')!.keepalived.auth_pass).toBeNull();
    expect(inv.clusters.get('sessions')!.redis.password).toBe('literal-pass');
    expect(inv.clusters.get('sessions')!.keepalived).toMatchObject({ auth_pass: 'vrrp-long-pass', check: { weight: -30, fall: 2 }, unicast: true });
    expect(inv.secrets).toEqual(new Set(['filepass', 'literal-pass', 'vrrp-long-pass', 'vrrp-lon']));
    expect(inv.warnings.map(formatProblem)).toEqual([
      expect.stringMatching(/full\.yaml:52 clusters\.sessions\.keepalived\.auth_pass: warning: is 14 characters but keepalived uses only the first 8: shorten it$/),
    ]);
    expect(inv.hosts.get('node4')!.vars.node).toEqual({ name: 'node4', role: 'master', peer: 'node3', peer_address: '10.0.1.11', address: '10.0.1.12', priority: 110 });
  });
});

describe('host patterns', () => {
  let inv: Inventory;
  beforeAll(async () => {
    inv = await loadInventory(join(fixtures, 'full.yaml'), { env });
  });
  it.each([
    ['all', ['node1', 'node2', 'node3', 'node4', 'web1']],
    ['*', ['node1', 'node2', 'node3', 'node4', 'web1']],
    ['cache', ['node1', 'node2']],
    ['node3', ['node3']],
    ['web1:cache', ['node1', 'node2', 'web1']],
    ['cache:sessions', ['node1', 'node2', 'node3', 'node4']],
    ['clusters:&child', ['node2', 'node3']],
    ['clusters:!cache', ['node3', 'node4']],
    ['!cache', ['node3', 'node4', 'web1']],
    ['node*', ['node1', 'node2', 'node3', 'node4']],
    ['node*:!node2', ['node1', 'node3', 'node4']],
    ['sess*', ['node3', 'node4']],
    ['x*', []],
    ['cache,web', ['node1', 'node2', 'web1']],
  ])('%s', (pattern, expected) => {
    expect(selectHosts(inv, pattern)).toEqual(expected);
  });

  it.each([
    ['cach', 'site.yml:3 plays.0.hosts: unknown host or group "cach" in pattern "cach" — did you mean "cache"?'],
    ['cache:&', 'site.yml:3 plays.0.hosts: host pattern "cache:&" has an empty term: write e.g. "cache", "cache:&web" or "all:!redis-b"'],
    ['nobody', 'site.yml:3 plays.0.hosts: unknown host or group "nobody" in pattern "nobody"'],
  ])('rejects %s', (pattern, message) => {
    expect(() => selectHosts(inv, pattern, { file: 'site.yml', line: 3, path: 'plays.0.hosts' })).toThrow(message);
  });

  it('limits', () => {
    expect(limitHosts(inv, ['node4', 'node1', 'node2'], 'cache')).toEqual(['node1', 'node2']);
    expect(limitHosts(inv, ['node4', 'node1'], undefined)).toEqual(['node4', 'node1']);
    expect(() => limitHosts(inv, ['node1'], 'nod1')).toThrow('--limit: unknown host or group "nod1" in pattern "nod1" — did you mean "node1"?');
  });
});

describe('inventory problems: one row per bad input, message pinned', () => {
  const rows: Array<[string, string, string[]] | [string, string, string[], Record<string, string>]> = [
    ['malformed YAML', 'hosts:\n  a: [1, 2\n', ['inventory.yaml:3: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]']],
    ['duplicate key', 'hosts:\n  a: 10.0.0.1\n  a: 10.0.0.2\n', ['inventory.yaml:3 hosts.a: invalid YAML: key "a" appears twice in this mapping (first on line 2): keep one']],
    ['not a mapping', '- a\n', ['inventory.yaml:1: expected a mapping with hosts: (and usually clusters:) at the top level']],
    // Echoed keys never carry a raw escape sequence or bidi override to the terminal.
    [
      'control characters in an echoed key',
      'hosts:\n  a: 10.0.0.1\n"bad\\e[31mkey\\u202e": 1\n',
      ['inventory.yaml:3 bad\\u001b[31mkey\\u202e: unknown key "bad\\u001b[31mkey\\u202e" (expected one of: ssh, groups, vars, clusters)'],
    ],
    ['a bad maxmemory number', withCluster(redisKa.replace('{ password: pw }', '{ password: pw, maxmemory: 1.5 }')), ['inventory.yaml:9 clusters.cache.redis.maxmemory: 1.5 is not a whole number of bytes: give bytes (e.g. 1073741824) or a whole number with k/kb/m/mb/g/gb (kb/mb/gb are 1024-based, k/m/g 1000-based, any case), e.g. 2gb; 0 means no limit']],
    ['misspelt top-level key', 'hosts: { a: 10.0.0.1 }\nclsuters: {}\n', ['inventory.yaml:2 clsuters: unknown key "clsuters" — did you mean "clusters"?']],
    [
      'misspelt host key',
      'hosts:\n  a:\n    address: 10.0.0.1\n    pasword: x\n',
      ['inventory.yaml:4 hosts.a.pasword: unknown key "pasword" — did you mean "password"?'],
    ],
    ['unknown key far from any', 'ssh:\n  colour: red\nhosts: { a: 10.0.0.1 }\n', [
      'inventory.yaml:2 ssh.colour: unknown key "colour" (expected one of: port, user, private_key, password, become, become_password, known_hosts, connect_timeout, connect_retries, jump, config)',
    ]],
    ['wrong type', 'ssh:\n  port: "22"\nhosts: { a: 10.0.0.1 }\n', ['inventory.yaml:2 ssh.port: expected a number, got a string ("22")']],
    ['port out of range', 'ssh:\n  port: 70000\nhosts: { a: 10.0.0.1 }\n', ['inventory.yaml:2 ssh.port: 70000 is too big (maximum 65535)']],
    ['host neither string nor mapping', 'hosts:\n  a: 5\n', ['inventory.yaml:2 hosts.a: expected a string or a mapping, got a number (5)']],
    ['missing hosts', 'vars: {}\n', ['inventory.yaml:1 hosts: is required (a mapping)']],
    ['no hosts', 'hosts: {}\n', ['inventory.yaml:1 hosts: no hosts: add at least one under hosts:']],
    ['secret of the wrong shape', 'hosts:\n  a:\n    address: 10.0.0.1\n    password: { evn: X }\n', ['inventory.yaml:4 hosts.a.password.evn: unknown key "evn" — did you mean "env"?']],
    ['bad host name', 'hosts:\n  "a;rm": 10.0.0.1\n', ['inventory.yaml:2 hosts.a;rm: host name "a;rm" may contain only letters, digits, "_", "." and "-"']],
    ['bad IPv4', 'hosts:\n  a: 10.0.0.256\n', ['inventory.yaml:2 hosts.a: "10.0.0.256" is not a valid IPv4 address: use the host\'s IPv4 address or DNS name']],
    ['bad address', 'hosts:\n  a:\n    address: "x y"\n', ['inventory.yaml:3 hosts.a.address: "x y" is neither an IPv4 address nor a host name: use the host\'s IPv4 address or DNS name']],
    [
      'group/host collision and reserved group',
      'hosts:\n  a: 10.0.0.1\ngroups:\n  a: { hosts: [a] }\n  all: {}\n',
      ['inventory.yaml:4 groups.a: group "a" has the same name as a host: rename one of them', 'inventory.yaml:5 groups.all: group name "all" is reserved by rha: rename the group'],
    ],
    [
      'unknown group member and child',
      'hosts:\n  web1: 10.0.0.1\ngroups:\n  web:\n    hosts: [web2]\n    children: [dbs]\n  db: {}\n',
      ['inventory.yaml:5 groups.web.hosts.0: unknown host "web2" — did you mean "web1"?', 'inventory.yaml:6 groups.web.children.0: unknown group "dbs" — did you mean "db"?'],
    ],
    [
      'group cycle',
      'hosts:\n  a: 10.0.0.1\ngroups:\n  x: { children: [y] }\n  y: { children: [z] }\n  z: { children: [x] }\n',
      ['inventory.yaml:6 groups.z.children.0: group cycle x → y → z → x: a group cannot contain itself; remove one of these children'],
    ],
    [
      'cluster/host and cluster/group collision',
      'hosts:\n  a: 10.0.0.11\n  b: 10.0.0.12\ngroups:\n  g: { hosts: [a] }\nclusters:\n  a:\n    master: a\n    replica: b\n' + redisKa + '  g:\n    master: a\n    replica: b\n    vip: 10.0.0.101/24\n    redis: { password: pw }\n    keepalived: { virtual_router_id: 52 }\n',
      [
        'inventory.yaml:7 clusters.a: cluster "a" has the same name as a host (each cluster gets a group of that name): rename one of them',
        'inventory.yaml:13 clusters.g: cluster "g" has the same name as a group (each cluster gets a group of that name): rename one of them',
        'inventory.yaml:14 clusters.g.master: host "a" is already in cluster "a": a host can serve only one cluster (one redis port, one keepalived)',
        'inventory.yaml:15 clusters.g.replica: host "b" is already in cluster "a": a host can serve only one cluster (one redis port, one keepalived)',
      ],
    ],
    [
      'unknown master, same master and replica',
      'hosts:\n  a: 10.0.0.11\nclusters:\n  c1:\n    master: aa\n    replica: aa\n' + redisKa,
      [
        'inventory.yaml:5 clusters.c1.master: unknown host "aa" — did you mean "a"?: master must name a host under hosts:',
        'inventory.yaml:6 clusters.c1.replica: unknown host "aa" — did you mean "a"?: replica must name a host under hosts:',
        'inventory.yaml:6 clusters.c1.replica: master and replica are both "aa": a pair needs two different hosts',
      ],
    ],
    ['missing password and vrid', withCluster('    vip: 10.0.0.100/24\n    redis: {}\n    keepalived: {}\n'), [
      'inventory.yaml:9 clusters.cache.redis.password: is required',
      'inventory.yaml:10 clusters.cache.keepalived.virtual_router_id: is required (a number)',
    ]],
    ['bad VIP', withCluster(redisKa.replace('10.0.0.100/24', '10.0.0.100')), ['inventory.yaml:8 clusters.cache.vip: "10.0.0.100" is not ADDRESS/PREFIX (e.g. 10.0.0.100/24)']],
    ['VIP prefix', withCluster(redisKa.replace('10.0.0.100/24', '10.0.0.100/33')), ['inventory.yaml:8 clusters.cache.vip: prefix /33 must be between 1 and 32']],
    ['VIP network address', withCluster(redisKa.replace('10.0.0.100/24', '10.0.0.0/24')), [
      'inventory.yaml:8 clusters.cache.vip: 10.0.0.0 is the network address of 10.0.0.0/24, not a host address: pick an address inside the subnet',
    ]],
    ['VIP broadcast address', withCluster(redisKa.replace('10.0.0.100/24', '10.0.0.255/24')), [
      'inventory.yaml:8 clusters.cache.vip: 10.0.0.255 is the broadcast address of 10.0.0.0/24, not a host address: pick an address inside the subnet',
    ]],
    ['VIP is a host address', withCluster(redisKa.replace('10.0.0.100/24', '10.0.0.12/24')), [
      'inventory.yaml:8 clusters.cache.vip: VIP 10.0.0.12 is the address of host "b": the VIP must be a free address',
    ]],
    ['interface name', withCluster('    interface: "eth0:1"\n' + redisKa), ['inventory.yaml:8 clusters.cache.interface: interface name "eth0:1" must not contain "/", ":" or whitespace']],
    ['interface too long', withCluster('    interface: abcdefghijklmnop\n' + redisKa), ['inventory.yaml:8 clusters.cache.interface: interface name "abcdefghijklmnop" must be 1-15 characters (Linux IFNAMSIZ)']],
    ['vrid range', withCluster(redisKa.replace('virtual_router_id: 51', 'virtual_router_id: 256')), ['inventory.yaml:10 clusters.cache.keepalived.virtual_router_id: 256 is too big (maximum 255)']],
    [
      'priority rule: master not above replica',
      withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, priority: { master: 140 } }')),
      ['inventory.yaml:10 clusters.cache.keepalived.priority.master: 140 breaks the priority rule (140 < master < 140+20): the master must have a higher priority than the replica (140) to win the first election'],
    ],
    [
      'priority rule: weight too small to move the VIP',
      withCluster('    vip: 10.0.0.100/24\n    redis: { password: pw }\n    keepalived:\n      virtual_router_id: 51\n      priority:\n        master: 200\n'),
      [
        'inventory.yaml:13 clusters.cache.keepalived.priority.master: 200 breaks the priority rule (140 < master < 140+20): after a failed check the master drops to 180, not below the replica (140), so the VIP would stay on a dead Redis; lower priority.master or raise |check.weight|',
      ],
    ],
    [
      'weight must be negative',
      withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, check: { weight: 20 } }')),
      ['inventory.yaml:10 clusters.cache.keepalived.check.weight: weight 20 must be negative (e.g. -20): a failing check must lower the priority so the VIP moves'],
    ],
    ['check interval in fractions of a second (keepalived ignores it)', withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, check: { interval: 0.5 } }')), [
      'inventory.yaml:10 clusters.cache.keepalived.check.interval: expected an integer, got a number (0.5)',
    ]],
    ['check timeout 0', withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, check: { timeout: 0 } }')), ['inventory.yaml:10 clusters.cache.keepalived.check.timeout: 0 is too small (minimum 1)']],
    ['check timeout beyond keepalived', withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, check: { timeout: 4295 } }')), ['inventory.yaml:10 clusters.cache.keepalived.check.timeout: 4295 is too big (maximum 4294)']],
    ['check fall 0', withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, check: { fall: 0 } }')), ['inventory.yaml:10 clusters.cache.keepalived.check.fall: 0 is too small (minimum 1)']],
    ['misspelt keepalived key', withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, advert_interval: 2 }')), [
      'inventory.yaml:10 clusters.cache.keepalived.advert_interval: unknown key "advert_interval" — did you mean "advert_int"?',
    ]],
    ['enum typo', withCluster(redisKa.replace('{ password: pw }', '{ password: pw, appendfsync: everysecond }')), [
      'inventory.yaml:9 clusters.cache.redis.appendfsync: "everysecond" is not one of "always", "everysec", "no" — did you mean "everysec"?',
    ]],
    ['secret env unset', withCluster(redisKa.replace('{ password: pw }', '{ password: { env: NOPE } }')), [
      'inventory.yaml:9 clusters.cache.redis.password: environment variable NOPE is not set: export it, or use { file: PATH } or a literal',
    ]],
    ['secret file missing', withCluster(redisKa.replace('{ password: pw }', '{ password: { file: /nonexistent/pw } }')), [
      'inventory.yaml:9 clusters.cache.redis.password: secret file /nonexistent/pw does not exist (looked at /nonexistent/pw)',
    ]],
    ['password with newline', withCluster(redisKa.replace('{ password: pw }', '{ password: "pw\\nslaveof 1.2.3.4 6379" }')), [
      'inventory.yaml:9 clusters.cache.redis.password: contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf',
    ]],
    [
      'config: value with newline, bad key, managed keys',
      withCluster('    vip: 10.0.0.100/24\n    redis:\n      password: pw\n      config:\n        tcp-keepalive: "60\\rreplicaof evil 1"\n        Bad_Key: 1\n        requirepass: x\n        replicaof: x\n    keepalived: { virtual_router_id: 51 }\n'),
      [
        'inventory.yaml:12 clusters.cache.redis.config.tcp-keepalive: value contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf',
        'inventory.yaml:13 clusters.cache.redis.config.Bad_Key: "Bad_Key" does not look like a redis.conf directive (lowercase letters, digits and "-", e.g. tcp-keepalive)',
        'inventory.yaml:14 clusters.cache.redis.config.requirepass: "requirepass" is managed by rha: set redis.password instead',
        'inventory.yaml:15 clusters.cache.redis.config.replicaof: "replicaof" is managed by rha: set the cluster\'s master/replica instead',
      ],
    ],
    ['config value of a wrong type', withCluster(redisKa.replace('{ password: pw }', '{ password: pw, config: { save: [1] } }')), [
      'inventory.yaml:9 clusters.cache.redis.config.save: expected a string or a number or a boolean (true/false), got a list',
    ]],
    ['redis.build_host that is no host', withCluster(redisKa.replace('{ password: pw }', '{ password: pw, build_host: nodex }')), [
      'inventory.yaml:9 clusters.cache.redis.build_host: "nodex" is not a host of this inventory (expected one of: a, b)',
    ]],
    ['source with both path and url', withCluster(redisKa.replace('{ password: pw }', '{ password: pw, source: { path: a.tgz, url: "https://x/r.tgz" } }')), [
      'inventory.yaml:9 clusters.cache.redis.source: give exactly one of source.path (a local tarball or tree) or source.url',
      'inventory.yaml:9 clusters.cache.redis.source.url: a download needs source.sha256 to verify it: add the tarball\'s SHA-256',
      'inventory.yaml:9 clusters.cache.redis.source.path: needs source.sha256 next to it, so that the tarball built is the one you meant: add its SHA-256 (sha256sum FILE)',
    ]],
    [
      'duplicate VIP and virtual_router_id on one segment',
      'hosts:\n  a: 10.0.0.11\n  b: 10.0.0.12\n  c: 10.0.0.13\n  d: 10.0.0.14\nclusters:\n  one:\n    master: a\n    replica: b\n' + redisKa + '  two:\n    master: c\n    replica: d\n' + redisKa,
      [
        'inventory.yaml:16 clusters.two.vip: VIP 10.0.0.100 is also the VIP of cluster "one": each cluster needs its own',
        'inventory.yaml:18 clusters.two.keepalived.virtual_router_id: 51 is also used by cluster "one" on eth0 10.0.0.0/24: clusters on one segment need different virtual_router_id values',
      ],
    ],
    [
      'unicast needs IPv4 addresses',
      'hosts:\n  a: a.example.net\n  b: 10.0.0.12\nclusters:\n  c:\n    master: a\n    replica: b\n    vip: 10.0.0.100/24\n    redis: { password: pw }\n    keepalived: { virtual_router_id: 51, unicast: true }\n',
      ['inventory.yaml:10 clusters.c.keepalived.unicast: unicast peers need IPv4 addresses but master "a" has address "a.example.net": give the host an IPv4 address'],
    ],
    ['errors before warnings', withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 0, auth_pass: "123456789" }')), [
      'inventory.yaml:10 clusters.cache.keepalived.virtual_router_id: 0 is too small (minimum 1)',
    ]],
  ];

  it.each(rows)('%s', (_name, text, expected, e) => {
    expect(problemsOf(text, e ?? env)).toEqual(expected);
  });

  it('reports semantic errors first and warnings after them', () => {
    const text = withCluster(redisKa.replace('{ virtual_router_id: 51 }', '{ virtual_router_id: 51, auth_pass: "123456789", check: { weight: 5 } }'));
    expect(problemsOf(text)).toEqual([
      'inventory.yaml:10 clusters.cache.keepalived.check.weight: weight 5 must be negative (e.g. -20): a failing check must lower the priority so the VIP moves',
      'inventory.yaml:10 clusters.cache.keepalived.priority.master: 150 breaks the priority rule (140 < master < 140+5): after a failed check the master drops to 145, not below the replica (140), so the VIP would stay on a dead Redis; lower priority.master or raise |check.weight|',
      'inventory.yaml:10 clusters.cache.keepalived.auth_pass: warning: is 9 characters but keepalived uses only the first 8: shorten it',
    ]);
  });
});

describe('persistence and the split-brain bound (issue 16)', () => {
  const cluster = (redis: string) => `    vip: 10.0.0.100/24
    redis:
      password: pw
${redis}    keepalived: { virtual_router_id: 51 }
`;
  it('refuses a pair with neither AOF nor RDB, naming file, line and key, with the risk', () => {
    expect(problemsOf(withCluster(cluster('      appendonly: false\n      save: ""\n')))).toEqual([
      'inventory.yaml:11 clusters.cache.redis.appendonly: neither AOF (appendonly: false) nor RDB snapshots (save: "") are on: a Redis that restarts empty comes back as an empty master, and its replica then copies the empty dataset (every key lost on both nodes). Turn on appendonly or set save, or say persistence: none if this pair is a cache whose data may vanish',
    ]);
  });
  it('accepts it when persistence: none is said, and either one alone', () => {
    for (const r of ['      appendonly: false\n      save: ""\n      persistence: none\n', '      appendonly: false\n', '      save: ""\n']) {
      const inv = parseInventory('inventory.yaml', withCluster(cluster(r)), { env });
      expect(inv.clusters.get('cache')).toBeDefined();
    }
  });
  it('min_replicas_max_lag: default 10, 0 allowed, min-replicas-* in config refused', () => {
    const inv = parseInventory('inventory.yaml', withCluster(cluster('')), { env });
    expect((inv.clusters.get('cache')!.redis as { min_replicas_max_lag: number }).min_replicas_max_lag).toBe(10);
    const off = parseInventory('inventory.yaml', withCluster(cluster('      min_replicas_max_lag: 0\n')), { env });
    expect((off.clusters.get('cache')!.redis as { min_replicas_max_lag: number }).min_replicas_max_lag).toBe(0);
    expect(problemsOf(withCluster(cluster('      config: { min-replicas-to-write: 0 }\n')))).toEqual([
      'inventory.yaml:11 clusters.cache.redis.config.min-replicas-to-write: "min-replicas-to-write" is managed by rha: set redis.min_replicas_max_lag (0 disables the split-brain bound) instead',
    ]);
  });
});
