/**
 * The `rha` binary as a user runs it: `node dist/cli/main.js` (built by `npm run build`). Hosts here
 * are loopback ports: a closed one (unreachable) and a silent TCP listener (a hanging host).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { collectList, normalizeRunOptions, parseExtraVar, positiveInt } from '../../src/cli/options.js';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'dist/cli/main.js');
const built = existsSync(bin);

describe('option parsers', () => {
  test('-e key=value reads the value as YAML', () => {
    let v = parseExtraVar('port=6380');
    v = parseExtraVar('flag=true', v);
    v = parseExtraVar('name=cache', v);
    v = parseExtraVar('empty=', v);
    v = parseExtraVar('list=[1, 2]', v);
    v = parseExtraVar('text=a: b: c', v);
    expect(v).toEqual({ port: 6380, flag: true, name: 'cache', empty: '', list: [1, 2], text: 'a: b: c' });
    expect(() => parseExtraVar('novalue')).toThrow('expected key=value, got "novalue"');
    expect(() => parseExtraVar('a.b=1')).toThrow('"a.b" is not a variable name (letters, digits, _)');
  });

  test('lists, counts and defaults', () => {
    expect(collectList('b', collectList('a, c'))).toEqual(['a', 'c', 'b']);
    expect(positiveInt('5')).toBe(5);
    expect(() => positiveInt('0')).toThrow('expected a whole number of at least 1');
    expect(() => positiveInt('2x')).toThrow('expected a whole number of at least 1');
    expect(normalizeRunOptions({})).toEqual({
      inventory: undefined,
      check: false,
      diff: false,
      limit: undefined,
      tags: [],
      skipTags: [],
      forks: 10,
      output: undefined,
      verbose: 0,
      extraVars: {},
      acceptHostKey: [],
      force: [],
    });
  });
});

describe('-v on every command (an internal error says "run again with -v")', () => {
  test('each command that runs something takes -v, except those whose trailing words are a remote command', async () => {
    const { buildProgram, runArgv } = await import('../../src/cli/program.js');
    const leaves: Array<{ path: string; hasV: boolean; variadic: boolean }> = [];
    const visit = (c: import('commander').Command, prefix: string): void => {
      const p = `${prefix} ${c.name()}`.trim();
      if (c.commands.length === 0) leaves.push({ path: p, hasV: c.options.some((o) => o.short === '-v'), variadic: c.registeredArguments.some((a) => a.variadic) });
      for (const s of c.commands) visit(s, p);
    };
    for (const c of buildProgram().commands) visit(c, '');
    expect(leaves.filter((l) => !l.hasV).map((l) => l.path)).toEqual(['lab ssh', 'lab exec']);
    expect(leaves.filter((l) => l.variadic).map((l) => l.path)).toEqual(['lab ssh', 'lab exec']);
    expect(leaves.length).toBeGreaterThan(15);
    // Parsed, not refused as an unknown option (exit 4 with "unknown option" before this change).
    let err = '';
    const io = { stdout: { write: () => true } as never, stderr: { write: (t: string) => ((err += t), true) } as never, env: {}, cwd: root };
    await runArgv(['node', 'rha', 'validate', '-v', 'test/fixtures/catalogue/valid.yaml'], io);
    expect(err).not.toContain('unknown option');
  });
});

describe.skipIf(!built)('rha binary', () => {
  let dir: string;
  let closedPort: number;
  let silent: net.Server;
  let silentPort: number;

  const rha = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, CI: 'true', ...env }, timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  const inventory = (port: number, extra = '') => `
ssh:
  user: root
  password: inventory-ssh-secret
  known_hosts: ./known_hosts
  connect_timeout: 3
  connect_retries: 0
hosts:
  h1: { address: 127.0.0.1, port: ${port} }
${extra}`;

  const playbook = `
- name: ping
  hosts: all
  gather_facts: false
  tasks:
    - name: say hi
      command: { argv: ["true"] }
      tags: [hi]
`;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rha-cli-'));
    // A port nobody listens on: bind, read the number, close.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    // A host that accepts TCP and never speaks SSH: a run hangs in the handshake until Ctrl-C.
    silent = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as net.AddressInfo).port;
    writeFileSync(path.join(dir, 'inv.yaml'), inventory(closedPort));
    writeFileSync(path.join(dir, 'hang.yaml'), inventory(silentPort).replace('connect_timeout: 3', 'connect_timeout: 60'));
    writeFileSync(path.join(dir, 'ping.yaml'), playbook);
  });

  afterAll(() => {
    silent?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('--help shows examples and exit codes', () => {
    const r = rha(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('$ rha provision inventory.yaml --check --diff');
    expect(r.out).toContain('4    invalid input: nothing was touched');
    for (const sub of [['provision'], ['run'], ['validate'], ['hosts', 'accept']]) {
      const h = rha([...sub, '--help']);
      expect(h.code).toBe(0);
      expect(h.out).toMatch(/Examples?:\n {2}\$ rha /);
    }
  });

  test('usage errors exit 4', () => {
    const r = rha(['run', 'ping.yaml']);
    expect(r.code).toBe(4);
    expect(r.err).toContain("error: required option '-i, --inventory <file>' not specified");
    expect(rha(['run', 'ping.yaml', '-i', 'inv.yaml', '--forks', '0']).code).toBe(4);
  });

  test('validate: valid input exits 0 and says what it checked', () => {
    const r = rha(['validate', 'inv.yaml', 'ping.yaml']);
    expect(r.err).toBe('');
    expect(r.out).toBe('valid: inv.yaml (1 host, 0 clusters) with ping.yaml (1 play, 1 task)\n');
    expect(r.code).toBe(0);
  });

  test('validate: problems as `error: file:line path: message`, exit 4, no stack', () => {
    writeFileSync(path.join(dir, 'bad.yaml'), inventory(closedPort).replace('connect_retries: 0', 'connect_retries: -1'));
    const r = rha(['validate', 'bad.yaml', 'ping.yaml']);
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/^error: bad\.yaml:7 ssh\.connect_retries: .+/m);
    expect(r.err).not.toMatch(/\n\s+at /);
    const missing = rha(['validate', 'nope.yaml', 'ping.yaml']);
    expect(missing.code).toBe(4);
    expect(missing.err).toMatch(/^error: nope\.yaml/m);
  });

  test('run: an unreachable host exits 3 with a recap; nothing printed holds the secret', () => {
    const r = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '--output', 'plain']);
    expect(r.out).toContain('[h1] unreachable: say hi — ');
    expect(r.out).toMatch(/^h1 : ok=0 changed=0 unreachable=1 failed=0 skipped=0 ignored=0$/m);
    expect(r.out + r.err).not.toContain('inventory-ssh-secret');
    expect(r.code).toBe(3);
  });

  test('run --output json: JSON Lines ending with a summary', () => {
    const r = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '-o', 'json']);
    const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines[0].kind).toBe('run-start');
    expect(lines.at(-1)).toMatchObject({ kind: 'summary', exitCode: 3, unreachable: ['h1'], failed: [] });
    expect(r.code).toBe(3);
  });

  test('run: tags that select nothing touch no host; --limit matching nothing is invalid input', () => {
    const skip = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '-o', 'plain', '--skip-tags', 'hi']);
    expect(skip.code).toBe(0);
    expect(skip.out).toMatch(/^h1 : ok=0 changed=0 unreachable=0 failed=0 skipped=0 ignored=0$/m);
    const limit = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '--limit', 'nosuchhost']);
    expect(limit.code).toBe(4);
    expect(limit.err).toContain('error:');
    expect(limit.out).toBe('');
    const tags = rha(['run', 'ping.yaml', '-i', 'inv.yaml', '-o', 'plain', '--tags', 'nosuchtag', '--accept-host-key', 'h9']);
    expect(tags.code).toBe(4);
    expect(tags.err).toContain('error: (command line) --accept-host-key: no host "h9" in the inventory');
    expect(tags.err).toContain('(command line) --tags: warning: no task or play has the tag "nosuchtag"');
  });

  test('Ctrl-C: the run stops, the recap says interrupted, exit 130', async () => {
    const child = spawn(process.execPath, [bin, 'run', 'ping.yaml', '-i', 'hang.yaml', '-o', 'plain'], {
      cwd: dir,
      env: { ...process.env, CI: 'true' },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(out).toContain('interrupted: stopped before the run finished (Ctrl-C)');
    expect(code).toBe(130);
  }, 30_000);

  test('hosts accept forgets the known_hosts entry of the host', () => {
    const known = path.join(dir, 'known_hosts');
    writeFileSync(known, `[127.0.0.1]:${closedPort} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\nother ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`);
    const r = rha(['hosts', 'accept', 'h1', '-i', 'inv.yaml']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`forgot 1 known_hosts entry of h1 (127.0.0.1:${closedPort}) in ${known}; the next run records its new key\n`);
    expect(readFileSync(known, 'utf8')).not.toContain('127.0.0.1');
    const none = rha(['hosts', 'accept', 'h1', '-i', 'inv.yaml']);
    expect(none.out).toContain('has no entry for h1');
    const unknown = rha(['hosts', 'accept', 'h7', '-i', 'inv.yaml']);
    expect(unknown.code).toBe(4);
    expect(unknown.err).toBe('error: (command line) HOST: no host "h7" in the inventory (hosts: h1)\n');
  });
});
