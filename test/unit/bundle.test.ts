/**
 * The bundled CLI (dist/cli/main.js runs scripts/bundle.mjs's dist/cli/rha.cjs through a V8 code
 * cache) works from its bundled location, loads only what a command needs, and keeps its code
 * cache safe (issue 7, start-up time).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { codeCacheDir, commandOf } from '../../src/cli/code-cache.js';
import { DEFAULT_FORKS as cliForks } from '../../src/cli/options.js';
import { DEFAULT_FORKS as runnerForks } from '../../src/runner/index.js';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'dist/cli/main.js');
const built = existsSync(bin) && existsSync(path.join(root, 'dist/cli/rha.cjs'));

test('the CLI default for --forks is the runner default', () => {
  expect(cliForks).toBe(runnerForks);
});

// Preloaded into the CLI: at exit, lists the files Node loaded through require (the bundle's
// external packages, ioredis and cpu-features, are loaded so) and the native add-ons it opened
// (ssh2 is in the bundle; its crypto binding, sshcrypto.node, still loads from ssh2's folder)
// into the file named by RHA_LOAD_LOG.
const preload = `const dl = []; const o = process.dlopen; process.dlopen = function (m, f, ...r) { dl.push(f); return o.call(this, m, f, ...r); };
process.on('exit', () => require('node:fs').writeFileSync(process.env.RHA_LOAD_LOG, [...Object.keys(require.cache), ...dl].join('\\n')));`;
// ssh2's optional native crypto: built by npm install where a compiler is present (CI's is).
const sshcrypto = path.join(root, 'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');

describe.skipIf(!built)('bundled CLI', () => {
  let dir: string;
  let closedPort: number;

  /** Runs the built CLI; `loaded` lists the files Node loaded through require. */
  const rha = (args: string[], o: { cliPath?: string; env?: NodeJS.ProcessEnv } = {}) => {
    const log = path.join(dir, `load-${Math.random().toString(36).slice(2)}.log`);
    writeFileSync(path.join(dir, 'preload.cjs'), preload);
    const r = spawnSync(process.execPath, ['--require', path.join(dir, 'preload.cjs'), o.cliPath ?? bin, ...args], {
      cwd: dir,
      encoding: 'utf8',
      // In this process, not the keeper's (keeper.test.ts): what this process loads is the point.
      env: { ...process.env, CI: 'true', XDG_CACHE_HOME: path.join(dir, 'cache'), RHA_LOAD_LOG: log, RHA_KEEPER: 'off', ...o.env },
      timeout: 60_000,
    });
    const loaded = existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
    return { code: r.status, out: r.stdout, err: r.stderr, loaded };
  };
  const has = (loaded: string[], pkg: string) => loaded.some((f) => f.includes(`/node_modules/${pkg}/`));

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rha-bundle-'));
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    writeFileSync(
      path.join(dir, 'inv.yaml'),
      `ssh: { user: root, password: bundle-test-secret, known_hosts: ./known_hosts, connect_timeout: 3, connect_retries: 0 }\n` +
        `hosts:\n  h1: { address: 127.0.0.1, port: ${closedPort} }\n`,
    );
    writeFileSync(
      path.join(dir, 'ping.yaml'),
      `- name: ping\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: say hi\n      command: { argv: ["true"] }\n`,
    );
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('--help from the bundle', () => {
    const r = rha(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: rha [options] [command]');
    expect(r.out).toMatch(/^ {2}lab\b/m);
        expect(r.loaded.filter((f) => f.startsWith(path.join(root, 'dist/')))).toEqual([]);
    // Nothing of the engine for help: not even ssh2.
    expect(has(r.loaded, 'ssh2')).toBe(false);
    expect(r.loaded).not.toContain(sshcrypto);
  });

  test("run loads ssh2 (from the bundle, with its native crypto from ssh2's folder) but not ioredis", () => {
    const r = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '-o', 'plain']);
    expect(r.code).toBe(3); // the only host is unreachable: the run got as far as connecting
    expect(r.out).toMatch(/h1 : ok=0 changed=0 unreachable=1/);
    // Where npm could build the binding (these machines have g++), the bundle must use it.
    if (existsSync(sshcrypto)) expect(r.loaded).toContain(sshcrypto);
    expect(has(r.loaded, 'ioredis')).toBe(false);
  });

  test('pretty output works from the bundle (listr2 is loaded on demand)', () => {
    const r = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '-o', 'pretty']);
    expect(r.code).toBe(3);
    expect(r.out).toContain('unreachable=1');
  });

  test('validate and init work from the bundle; init points at the shipped schema', () => {
    const v = rha(['validate', 'inv.yaml', 'ping.yaml']);
    expect(v.err).toBe('');
    expect(v.out).toBe('valid: inv.yaml (1 host, 0 clusters) with ping.yaml (1 play, 1 task)\n');
    expect(v.code).toBe(0);

    const i = rha(['init', 'starter']);
    expect(i.code).toBe(0);
    const ref = /\$schema=(\S+)/.exec(readFileSync(path.join(dir, 'starter/inventory.yaml'), 'utf8'))![1];
    const schema = ref.startsWith('file:') ? fileURLToPath(ref) : path.resolve(dir, 'starter', ref);
    expect(schema).toBe(path.join(root, 'schema/inventory.schema.json'));
    expect(existsSync(schema)).toBe(true);
    // The shipped site playbook is found from the bundle's location too.
    const site = rha(['validate', 'starter/inventory.yaml']);
    expect(site.err).toBe('');
    expect(site.out).toMatch(/^valid: starter\/inventory\.yaml .* with .*playbooks\/site\.yaml /);
  });

  test('runs through a symlink, as npm links the bin', () => {
    const link = path.join(dir, 'rha');
    symlinkSync(bin, link);
    const r = rha(['--help'], { cliPath: link });
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: rha');
  });

  test('the code cache: written per command (0700 folder, 0600 file), off on request, never in the way', () => {
    const env = { XDG_CACHE_HOME: path.join(dir, 'cc') };
    expect(rha(['validate', 'inv.yaml', 'ping.yaml'], { env }).code).toBe(0);
    const cacheDir = path.join(dir, 'cc/rha');
    expect(statSync(cacheDir).mode & 0o777).toBe(0o700);
    const files = readdirSync(cacheDir);
    expect(files).toEqual([expect.stringMatching(/^cli-[0-9a-f]{24}-validate\.v8$/)]);
    expect(statSync(path.join(cacheDir, files[0])).mode & 0o777).toBe(0o600);
    expect(rha(['validate', 'inv.yaml', 'ping.yaml'], { env }).code).toBe(0); // with the cache

    const off = { XDG_CACHE_HOME: path.join(dir, 'off'), RHA_NO_CODE_CACHE: '1' };
    expect(rha(['--help'], { env: off }).code).toBe(0);
    expect(existsSync(path.join(dir, 'off'))).toBe(false);

    // A cache folder that cannot be made (its parent is a file): rha runs as usual.
    writeFileSync(path.join(dir, 'a-file'), '');
    const broken = rha(['validate', 'inv.yaml', 'ping.yaml'], { env: { XDG_CACHE_HOME: path.join(dir, 'a-file') } });
    expect(broken.err).toBe('');
    expect(broken.code).toBe(0);
  });
});

// V8 reuses a script compiled earlier in the same process without looking at the cache, so each
// compile runs in a fresh Node, with tsc's build of code-cache.ts.
describe.skipIf(!built)('compileCached', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'rha-code-cache-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const source = '(function (a, b) { return a * b + [1, 2, 3].map((x) => x * 2).length; })';
  /** Compiles `src` in a new process, calls it with (6, 7), saves; returns "outcome value". */
  const compile = (cache: string | undefined, src = source, command = 'run', identity?: string): string => {
    const mod = pathToFileURL(path.join(root, 'dist/cli/code-cache.js')).href;
    const js =
      `import { compileCached } from ${JSON.stringify(mod)};\n` +
      `const r = compileCached(${JSON.stringify(src)}, 'x.cjs', ${JSON.stringify(command)}, ${JSON.stringify(cache)}, ${JSON.stringify(identity)});\n` +
      `process.stdout.write(r.outcome + ' ' + r.fn(6, 7)); r.save();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', js], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return r.stdout;
  };

  test('miss, then hit; a corrupt cache is rejected, rewritten and used again', () => {
    const cache = path.join(dir, 'rha');
    expect(compile(cache)).toBe('miss 45');
    expect(compile(cache)).toBe('hit 45');
    expect(compile(cache, source, 'validate')).toBe('miss 45'); // each command has its own file
    expect(readdirSync(cache)).toHaveLength(2);
    for (const f of readdirSync(cache)) writeFileSync(path.join(cache, f), 'not a V8 code cache');
    expect(compile(cache)).toBe('rejected 45');
    expect(compile(cache)).toBe('hit 45');
  });

  test('a changed source gets a new file and the old ones go', () => {
    const cache = path.join(dir, 'changed');
    compile(cache);
    const before = readdirSync(cache);
    expect(compile(cache, source.replace('a * b', 'a + b'))).toBe('miss 16');
    const after = readdirSync(cache);
    expect(after).toHaveLength(1);
    expect(after).not.toEqual(before);
  });

  test('a folder others can write is neither read nor written', () => {
    const cache = path.join(dir, 'shared');
    compile(cache);
    chmodSync(cache, 0o777);
    expect(compile(cache)).toBe('miss 45');
    rmSync(path.join(cache, readdirSync(cache)[0]));
    compile(cache);
    expect(readdirSync(cache)).toEqual([]);
  });

  test("with the file's identity given, the cache follows it, not the text", () => {
    const cache = path.join(dir, 'identity');
    expect(compile(cache, source, 'run', 'ino 1, ctime 1')).toBe('miss 45');
    expect(compile(cache, source, 'run', 'ino 1, ctime 1')).toBe('hit 45');
    // A rebuilt bundle is a new file (new inode or change time): a new cache, the old one goes.
    expect(compile(cache, source.replace('a * b', 'a + b'), 'run', 'ino 1, ctime 2')).toBe('miss 16');
    expect(readdirSync(cache)).toHaveLength(1);
  });

  test('off: no folder given', () => {
    expect(compile(undefined)).toBe('off 45');
  });
});

test('where the code cache lives and which command picks its file', () => {
  expect(codeCacheDir({ XDG_CACHE_HOME: '/x/cache' }, '/home/u')).toBe('/x/cache/rha');
  expect(codeCacheDir({ XDG_CACHE_HOME: 'relative' }, '/home/u')).toBe('/home/u/.cache/rha');
  expect(codeCacheDir({}, '/home/u')).toBe('/home/u/.cache/rha');
  expect(commandOf(['node', 'rha', 'run', 'x.yaml'])).toBe('run');
  expect(commandOf(['node', 'rha', '-h'])).toBe('main');
  expect(commandOf(['node', 'rha', '--help', 'lab'])).toBe('lab');
  expect(commandOf(['node', 'rha', '../etc/passwd'])).toBe('main');
});
