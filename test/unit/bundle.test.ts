/**
 * The bundled CLI (scripts/bundle.mjs writes dist/cli/main.js plus chunks): it works from its
 * bundled location, and each command loads only what it needs (issue 7, start-up time). What a
 * process loads is read from Node itself: a module-resolution hook logs every file URL, and the
 * bundle's metafile says which sources each chunk holds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_FORKS as cliForks } from '../../src/cli/options.js';
import { DEFAULT_FORKS as runnerForks } from '../../src/runner/index.js';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'dist/cli/main.js');
const metaFile = path.join(root, 'dist/cli-bundle.meta.json');
const built = existsSync(bin) && existsSync(metaFile);

test('the CLI default for --forks is the runner default', () => {
  expect(cliForks).toBe(runnerForks);
});

// Runs in Node's hooks thread: appends every resolved URL to the file named by RHA_LOAD_LOG.
const hooks = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.RHA_LOAD_LOG, r.url + '\\n');
  return r;
}`;
const dataUrl = (js: string) => 'data:text/javascript,' + encodeURIComponent(js);
const registerHooks = dataUrl(`import { register } from 'node:module'; register(${JSON.stringify(dataUrl(hooks))});`);

interface Meta {
  outputs: Record<string, { inputs: Record<string, unknown> }>;
}

describe.skipIf(!built)('bundled CLI', () => {
  let dir: string;
  let meta: Meta;
  let closedPort: number;

  /** Runs the built CLI; `loaded` lists the source files (repo-relative) and packages it loaded. */
  const rha = (args: string[], cliPath = bin) => {
    const log = path.join(dir, `load-${Math.random().toString(36).slice(2)}.log`);
    writeFileSync(log, '');
    const r = spawnSync(process.execPath, ['--import', registerHooks, cliPath, ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CI: 'true', RHA_LOAD_LOG: log },
      timeout: 60_000,
    });
    const urls = readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith('file:'));
    const loaded = new Set<string>();
    for (const u of urls) {
      const rel = path.relative(root, fileURLToPath(u));
      // A chunk of the bundle stands for the sources in it; anything else (an external package) for itself.
      const inputs = meta.outputs[rel]?.inputs;
      for (const i of inputs ? Object.keys(inputs) : [rel]) loaded.add(i);
    }
    return { code: r.status, out: r.stdout, err: r.stderr, loaded: [...loaded] };
  };
  const has = (loaded: string[], prefix: string) => loaded.some((f) => f.startsWith(prefix));

  beforeAll(async () => {
    meta = JSON.parse(readFileSync(metaFile, 'utf8')) as Meta;
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

  test('dist/cli/main.js is the bundle: the engine is not loaded through tsc’s modules', () => {
    const r = rha(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: rha [options] [command]');
    expect(r.out).toMatch(/^ {2}lab\b/m);
    expect(r.loaded).toContain('src/cli/main.ts');
    expect(r.loaded.filter((f) => f.startsWith('dist/'))).toEqual([]);
  });

  test('--help parses commander and the option parsers, not the engine', () => {
    const { loaded } = rha(['--help']);
    for (const heavy of ['node_modules/zod/', 'node_modules/handlebars/', 'src/inventory/', 'src/runner/index.ts', 'src/lab/index.ts', 'node_modules/listr2/', 'node_modules/ioredis/']) {
      expect(has(loaded, heavy), heavy).toBe(false);
    }
  });

  test('run with plain output loads the engine but not ioredis, listr2 or the lab', () => {
    const r = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '-o', 'plain']);
    expect(r.code).toBe(3); // the only host is unreachable: the run got as far as connecting
    expect(r.out).toMatch(/h1 : ok=0 changed=0 unreachable=1/);
    expect(r.loaded).toContain('src/runner/index.ts');
    expect(has(r.loaded, 'node_modules/zod/')).toBe(true);
    for (const lazy of ['node_modules/ioredis/', 'node_modules/listr2/', 'src/lab/index.ts', 'src/pair/client.ts']) {
      expect(has(r.loaded, lazy), lazy).toBe(false);
    }
    // zod's locales other than English are left out of the bundle.
    expect(r.loaded).toContain('node_modules/zod/v4/locales/en.js');
    expect(has(r.loaded, 'node_modules/zod/v4/locales/de.js')).toBe(false);
  });

  test('pretty output loads listr2 when asked for (the check above can see it)', () => {
    const r = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '-o', 'pretty']);
    expect(r.code).toBe(3);
    expect(has(r.loaded, 'node_modules/listr2/')).toBe(true);
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
    const r = rha(['--help'], link);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: rha');
  });
});
