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
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RHA, ...args], { cwd: root, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
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
    const file = `${dir}/${name}.yaml`;
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
