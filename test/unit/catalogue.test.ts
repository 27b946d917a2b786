/**
 * The catalogue of hostile and broken input (issue 8): one row per way an inventory or playbook
 * can be wrong, each pinning the full `file:line path: message`, each also proven through the CLI:
 * `rha validate` prints exactly those lines and exits 4, and `rha provision` (or `rha run`) exits 4
 * without contacting any host. The fixtures' hosts sit on 10.213.254.0/24, where nothing listens
 * (connect_timeout 10 s, no retries): a run that tried to connect would print a "Gathering Facts"
 * line, an unreachable host and a recap; these print only the errors, and exit 4 before connecting.
 * Add a row (and a fixture under test/fixtures/catalogue/) for every new way input can be wrong.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, InputError } from '../../src/core/types.js';
import { loadInventory } from '../../src/inventory/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = 'test/fixtures/catalogue';
const RHA = path.join(root, 'dist/cli/main.js');

/** [fixture, expected problems; `F` stands for the fixture's path relative to the repository, `ROOT` for its absolute root]. */
type Row = [string, string[]];

const authPassRule =
  'may contain only ASCII letters, digits and %&()*+,-./:;<=>?@[]^_`|~ (no spaces, quotes, #, !, $, \\, braces or non-ASCII): keepalived.conf has no quoting for auth_pass';
const pathRule = 'path may contain only letters, digits and "/", ".", "_", "+", "@", "-" (it is written into shell scripts and config files)';

const memoryRule = 'give bytes (e.g. 1073741824) or a whole number with k/kb/m/mb/g/gb (kb/mb/gb are 1024-based, k/m/g 1000-based, any case), e.g. 2gb; 0 means no limit';

const inventoryRows: Row[] = [
  ['malformed-yaml', ['F:3: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]']],
  ['wrong-type', ['F:12 clusters.cache.keepalived.virtual_router_id: expected a number, got a string ("51")']],
  ['unknown-key', ['F:12 clusters.cache.keepalived.advert_intrval: unknown key "advert_intrval" — did you mean "advert_int"?']],
  ['missing-required', ['F:11 clusters.cache.redis.password: is required']],
  ['invalid-ip', ['F:3 hosts.a: "10.213.254.311" is not a valid IPv4 address: use the host\'s IPv4 address or DNS name']],
  ['invalid-cidr', ['F:10 clusters.cache.vip: prefix /33 must be between 1 and 32']],
  ['invalid-port', ['F:11 clusters.cache.redis.port: 70000 is too big (maximum 65535)']],
  ['invalid-interface', ['F:11 clusters.cache.interface: interface name "eth0;reboot" may contain only letters, digits, "_", ".", "@" and "-"']],
  ['invalid-router-id', ['F:12 clusters.cache.keepalived.virtual_router_id: 0 is too small (minimum 1)']],
  ['same-master-replica', ['F:9 clusters.cache.replica: master and replica are both "a": a pair needs two different hosts']],
  [
    'host-in-two-clusters',
    [
      'F:14 clusters.sessions.master: host "b" is already in cluster "cache": a host can serve only one cluster (one redis port, one keepalived)',
      'F:15 clusters.sessions.replica: host "a" is already in cluster "cache": a host can serve only one cluster (one redis port, one keepalived)',
    ],
  ],
  [
    'duplicate-vip-vrid',
    [
      'F:18 clusters.sessions.vip: VIP 10.213.254.100 is also the VIP of cluster "cache": each cluster needs its own',
      'F:20 clusters.sessions.keepalived.virtual_router_id: 51 is also used by cluster "cache" on eth0 10.213.254.0/24: clusters on one segment need different virtual_router_id values',
    ],
  ],
  [
    'priority-rule',
    [
      'F:12 clusters.cache.keepalived.priority.master: 170 breaks the priority rule (140 < master < 140+20): after a failed check the master drops to 150, not below the replica (140), so the VIP would stay on a dead Redis; lower priority.master or raise |check.weight|',
    ],
  ],
  ['redis-password-newline', ['F:11 clusters.cache.redis.password: contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf']],
  ['redis-config-newline', ['F:11 clusters.cache.redis.config.tcp-keepalive: value contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf']],
  ['redis-config-unbalanced-quote', ['F:11 clusters.cache.redis.config.notify-keyspace-events: value has an unbalanced double quote: redis-server would refuse to start']],
  ['redis-config-managed-key', ['F:11 clusters.cache.redis.config.include: "include" is managed by rha: set nothing (rha renders the whole file; includes are not allowed) instead']],
  ['redis-bind-quote', ['F:11 clusters.cache.redis.bind: must not contain quotes or backslashes: it is written unquoted into redis.conf']],
  // keepalived.conf has no quoting for auth_pass: "#"/"!" start a comment, a space splits it, "$" expands.
  ['auth-pass-comment', [`F:12 clusters.cache.keepalived.auth_pass: ${authPassRule}`]],
  ['auth-pass-space-quote', [`F:12 clusters.cache.keepalived.auth_pass: ${authPassRule}`]],
  ['auth-pass-dollar', [`F:12 clusters.cache.keepalived.auth_pass: ${authPassRule}`]],
  // Shell metacharacters in values that reach scripts and config files unquoted are refused.
  ['shell-subst-prefix', [`F:11 clusters.cache.redis.prefix: ${pathRule}`]],
  ['shell-backtick-log-file', [`F:12 clusters.cache.keepalived.log_file: ${pathRule}`]],
  ['shell-semicolon-data-dir', [`F:11 clusters.cache.redis.data_dir: ${pathRule}`]],
  [
    'shell-host-name',
    [
      'F:3 hosts.a$(id): host name "a$(id)" may contain only letters, digits, "_", "." and "-"',
      'F:7 clusters.cache.master: unknown host "a" — did you mean "b"?: master must name a host under hosts:',
    ],
  ],
  // Issue 18: the remaining hostile inputs.
  [
    'alias-bomb',
    ['F:11 vars.l3.7: invalid YAML: alias *l2 expands too many times (more than 1000 expansions of nested aliases: an "alias bomb"): write the values out or nest fewer aliases'],
  ],
  ['duplicate-key', ['F:10 clusters.cache.master: invalid YAML: key "master" appears twice in this mapping (first on line 8): keep one']],
  [
    'ansible-group-vars/hosts.ini',
    ['test/fixtures/catalogue/ansible-group-vars/group_vars/all.yml:9 ansible_user: invalid YAML: key "ansible_user" appears twice in this mapping (first on line 8): keep one'],
  ],
  [
    'private-key-missing',
    ['F:2 ssh.private_key: private key ./no-such-key (ROOT/test/fixtures/catalogue/no-such-key) does not exist: give the path of the SSH private key (or leave private_key out to use ssh-agent)'],
  ],
  [
    'private-key-directory',
    ['F:4 hosts.a.private_key: private key ./files (ROOT/test/fixtures/catalogue/files) is a directory: give the path of the key file itself (e.g. ~/.ssh/id_ed25519)'],
  ],
  ['maxmemory-words', [`F:11 clusters.cache.redis.maxmemory: "lots" is not a memory size redis.conf accepts: ${memoryRule}`]],
  ['maxmemory-percent', [`F:11 clusters.cache.redis.maxmemory: "50%": redis.conf's maxmemory takes no percentage (in Redis 7.0 only maxmemory-clients does): ${memoryRule}`]],
  [
    'unicast-same-address',
    [
      'F:12 clusters.cache.keepalived.unicast: master "a" and replica "b" both have address 10.213.254.11: with unicast each node sends its VRRP adverts to the other\'s address, so they would only hear themselves and both take the VIP; give each host its own address',
    ],
  ],
  // The newline in the key is shown as \n: echoed raw, it would print as two lines (a forged second message).
  ['redis-config-key-newline', ['F:11 clusters.cache.redis.config.tcp-keepalive\\nrename-command: key contains a newline or control character: it would inject a directive into redis.conf']],
  ['source-missing', ['F:11 clusters.cache.redis.source.path: source ROOT/test/fixtures/catalogue/no-such-redis.tar.gz does not exist: give the path of the Redis source tarball (or tree)']],
  [
    'source-sha-mismatch',
    [
      'F:11 clusters.cache.redis.source.sha256: ROOT/test/fixtures/catalogue/files/fake-redis.tar.gz has sha256 029beaa519a0d478f100f5e687d0cbea2de009ed619664cccd02b10b832943dd, not the pinned 0000000000000000000000000000000000000000000000000000000000000000: the tarball is not the one you meant (re-download it, or update source.sha256)',
    ],
  ],
];

/** [playbook fixture (with valid.yaml as the inventory), expected problems]. */
const playbookRows: Row[] = [
  ['pb-duplicate-key', ['F:6 0.tasks.0.name: invalid YAML: key "name" appears twice in this mapping (first on line 4): keep one']],
  [
    'pb-missing-template',
    [
      'F:5 0.tasks.0.template.src: template "templates/no-such.conf.hbs" not found (looked in: ' +
        [
          'catalogue/templates/templates/no-such.conf.hbs',
          'catalogue/templates/no-such.conf.hbs',
          'catalogue/templates/templates/templates/no-such.conf.hbs',
          'catalogue/files/templates/templates/no-such.conf.hbs',
          'catalogue/files/templates/no-such.conf.hbs',
          'templates/templates/templates/no-such.conf.hbs',
          'templates/templates/no-such.conf.hbs',
        ]
          .map((p) => `ROOT/test/fixtures/${p}`)
          .join(', ') +
        ')',
    ],
  ],
];

const expand = (lines: string[], file: string) => lines.map((l) => l.replace(/^F:/, `${file}:`).replaceAll('ROOT', root));

/** Runs the CLI from the repository root; never throws. */
function cli(
  args: string[],
  as: { uid?: number; gid?: number; home?: string; withoutDacOverride?: boolean } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    // Another user (as.home): its own HOME and cache, and no keeper (it would be that user's).
    const env = { ...process.env, CI: 'true', ...(as.home ? { HOME: as.home, XDG_CACHE_HOME: as.home, RHA_KEEPER: 'off' } : {}) };
    // Root without the capabilities that let it read any file: it reads by owner and mode like
    // anyone, and still reaches this checkout wherever it lies (a mktemp -d folder is 0700).
    const noDac = ['--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-dac_override,-dac_read_search'];
    const [cmd, argv] = as.withoutDacOverride ? ['setpriv', [...noDac, process.execPath, RHA, ...args]] : [process.execPath, [RHA, ...args]];
    const child = spawn(cmd, argv, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], uid: as.uid, gid: as.gid });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
  });
}

/** Asserts a run refused the input before connecting: exit 4, exactly these error lines, no task started. */
function expectRefused(r: Awaited<ReturnType<typeof cli>>, expected: string[]): void {
  expect(r.code, r.stderr).toBe(4);
  expect(r.stderr.trimEnd().split('\n')).toEqual(expected.map((l) => `error: ${l}`));
  expect(r.stdout).not.toContain('Gathering Facts');
  expect(r.stdout).not.toMatch(/unreachable|PLAY RECAP/i);
  // No wall-clock bound here: on a loaded 2-core machine node's start-up alone varies by seconds.
  // A connection attempt would print a Gathering Facts/unreachable line and the recap; none is.
}

describe('catalogue: inventories refused before any host is touched', () => {
  it('the valid baseline loads (so each row fails for its own reason only)', async () => {
    await expect(loadInventory(path.join(root, dir, 'valid.yaml'), { env: {} })).resolves.toBeDefined();
    const r = await cli(['validate', `${dir}/valid.yaml`]);
    expect(r.code, r.stderr).toBe(0);
  });

  it.each(inventoryRows)('%s', async (name, lines) => {
    const file = name.includes('.') ? `${dir}/${name}` : `${dir}/${name}.yaml`;
    const expected = expand(lines, file);
    // The loader itself (absolute path in, the same messages out).
    let problems: string[] = [];
    try {
      await loadInventory(path.join(root, file), { env: {} });
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      problems = e.problems.filter((p) => p.severity === 'error').map((p) => formatProblem({ ...p, file: path.relative(root, p.file) }));
    }
    expect(problems).toEqual(expected);
    // The CLI: validate and provision both refuse with the same lines, nothing contacted.
    const [v, p] = await Promise.all([cli(['validate', file]), cli(['provision', file])]);
    expectRefused(v, expected);
    expectRefused(p, expected);
  });
});

describe('catalogue: playbooks refused before any host is touched', () => {
  it.each(playbookRows)('%s', async (name, lines) => {
    const pb = `${dir}/${name}.yaml`;
    const expected = expand(lines, pb);
    const [v, r] = await Promise.all([cli(['validate', `${dir}/valid.yaml`, pb]), cli(['run', pb, '-i', `${dir}/valid.yaml`])]);
    expectRefused(v, expected);
    expectRefused(r, expected);
  });

  // Inventory-derived variables have a known shape before any connection: a typo under
  // `cluster.` is caught by validate, not at render time on a host.
  it.each([
    ['pb-undefined-var', 'templates/undefined-var.conf.hbs:2: unknown variable "cluster.redis.max_clients": cluster.redis has no key "max_clients"'],
    ['pb-undefined-in-task', 'pb-undefined-in-task.yaml:5 0.tasks.0.command: unknown variable "cluster.redis.passwd": cluster.redis has no key "passwd" — did you mean "password"?'],
  ])('%s: validate checks nested variable paths', async (name, message) => {
    const v = await cli(['validate', `${dir}/valid.yaml`, `${dir}/${name}.yaml`]);
    expect(v.code).toBe(4);
    expect(v.stderr + v.stdout).toContain(message);
  });
});

/**
 * Inputs made at test time (a 1 MiB fixture has no place in the repository; a file this user
 * cannot read cannot be committed as such).
 */
describe('catalogue: generated inputs refused before any host is touched', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'rha-catalogue-'));
    chmodSync(tmp, 0o755);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const sizeRule = 'more than the 1 MiB rha reads from one input file: is this the right file? (split it, e.g. into group_vars/ files)';

  it('an inventory over 1 MiB (a 1.5 MiB string value): refused by its size, before parsing', async () => {
    const inv = path.join(tmp, 'huge.yaml');
    writeFileSync(inv, readFileSync(path.join(root, dir, 'valid.yaml'), 'utf8') + `vars:\n  blob: "${'x'.repeat(1.5 * 1024 * 1024)}"\n`);
    const expected = [`${inv}: is 1.5 MiB, ${sizeRule}`];
    await expect(loadInventory(inv, { env: {} })).rejects.toThrow(expected[0]);
    const [v, p] = await Promise.all([cli(['validate', inv]), cli(['provision', inv])]);
    expectRefused(v, expected);
    expectRefused(p, expected);
  });

  it('YAML nested 100,000 deep: refused at its line, not an internal error (stack overflow)', async () => {
    const inv = path.join(tmp, 'deep.yaml');
    writeFileSync(inv, `hosts: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
    const expected = [`${inv}:1: invalid YAML: nested too deeply to read (the parser ran out of stack): flatten it`];
    const [v, p] = await Promise.all([cli(['validate', inv]), cli(['provision', inv])]);
    expectRefused(v, expected);
    expectRefused(p, expected);
  });

  it('an imported task file over 1 MiB: named at the import_tasks line', async () => {
    const pb = path.join(tmp, 'imports-huge.yaml');
    writeFileSync(pb, '- hosts: all\n  gather_facts: false\n  tasks:\n    - import_tasks: huge-tasks.yaml\n');
    writeFileSync(path.join(tmp, 'huge-tasks.yaml'), `- command: ["true"]\n#${'x'.repeat(1024 * 1024)}\n`);
    const expected = [`${pb}:4 0.tasks.0.import_tasks: ${path.join(tmp, 'huge-tasks.yaml')} is 1 MiB, ${sizeRule}`];
    const [v, r] = await Promise.all([cli(['validate', `${dir}/valid.yaml`, pb]), cli(['run', pb, '-i', `${dir}/valid.yaml`])]);
    expectRefused(v, expected);
    expectRefused(r, expected);
  });

  it('a private_key this user cannot read: refused at validate, with its mode and owner', async () => {
    const key = path.join(tmp, 'root-only-key');
    writeFileSync(key, 'not a key\n', { mode: 0o600 });
    const inv = path.join(tmp, 'unreadable-key.yaml');
    writeFileSync(inv, readFileSync(path.join(root, dir, 'valid.yaml'), 'utf8').replace('connect_retries: 0 }', 'connect_retries: 0, private_key: ./root-only-key }'));
    chmodSync(inv, 0o644);
    // As root, the key belongs to nobody and the CLI runs without the capabilities that let root
    // read any file; otherwise the key is made mode 0000.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) chownSync(key, 65534, 65534);
    else chmodSync(key, 0o000);
    const uid = process.getuid!();
    const owner = asRoot ? 65534 : process.getuid!();
    const mode = asRoot ? '0600' : '0000';
    const expected = [
      `${inv}:2 ssh.private_key: private key ./root-only-key (${key}) is not readable by this user (uid ${uid}; the file is mode ${mode}, owner uid ${owner}): run rha as its owner, or chown/chmod it`,
    ];
    const as = asRoot ? { withoutDacOverride: true } : {};
    const [v, p] = await Promise.all([cli(['validate', inv], { ...as, home: tmp }), cli(['provision', inv], { ...as, home: tmp })]);
    expectRefused(v, expected);
    expectRefused(p, expected);
  });

  it('-v is accepted where an error says "run again with -v": validate prints the same refusal', async () => {
    const file = `${dir}/alias-bomb.yaml`;
    const v = await cli(['validate', '-v', file]);
    expectRefused(v, expand(inventoryRows.find(([n]) => n === 'alias-bomb')![1], file));
  });
});
