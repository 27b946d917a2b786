/**
 * ~/.ssh/config honoured: Host aliases and patterns, HostName, User, Port, IdentityFile and
 * ProxyJump resolved into each host's connection, inventory settings winning; `jump:` chains.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError, formatProblem, type HostConnectionSpec } from '../../src/core/types.js';
import { parseJumpSpec, parseSshConfig } from '../../src/connection/ssh-config.js';
import { parseInventory } from '../../src/inventory/index.js';

let home: string;
const sshConfig = `
# the operator's own file
Host bastion
  HostName 192.0.2.10
  User jumper
  Port 2200
  IdentityFile ~/.ssh/bastion_key

Host db-* !db-legacy
  User ops
  ProxyJump bastion
  IdentityFile ~/.ssh/missing_key
  IdentityFile ~/.ssh/db_key

Host db-a
  HostName 10.1.0.11

Host db-b
  HostName 10.1.0.12
  Port 2222

Host old
  ProxyCommand nc %h %p

Host *
  User fallback
`;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'rha-sshcfg-'));
  mkdirSync(join(home, '.ssh'));
  writeFileSync(join(home, '.ssh', 'config'), sshConfig);
  for (const k of ['bastion_key', 'db_key']) writeFileSync(join(home, '.ssh', k), 'KEY', { mode: 0o600 });
  writeFileSync(join(home, 'k'), 'KEY', { mode: 0o600 }); // an inventory private_key must exist
});

function load(text: string) {
  return parseInventory(join(home, 'inventory.yaml'), text, { env: { HOME: home } });
}
function conn(text: string, host: string): HostConnectionSpec {
  return load(text).hosts.get(host)!.connection;
}
function problemsOf(text: string): string[] {
  try {
    load(text);
  } catch (e) {
    if (e instanceof InputError) return e.problems.map(formatProblem).map((p) => p.replaceAll(home, '~'));
    throw e;
  }
  throw new Error('expected an InputError');
}

describe('parseSshConfig', () => {
  const cfg = () => parseSshConfig('cfg', sshConfig, '/home/op');
  it('first obtained value wins; patterns and negations match like OpenSSH', () => {
    expect(cfg().lookup('db-a')).toEqual({ hostName: '10.1.0.11', user: 'ops', port: undefined, identityFiles: ['/home/op/.ssh/missing_key', '/home/op/.ssh/db_key'], proxyJump: 'bastion' });
    expect(cfg().lookup('db-legacy')).toEqual({ hostName: undefined, user: 'fallback', port: undefined, identityFiles: [], proxyJump: undefined });
    expect(cfg().lookup('bastion')).toMatchObject({ hostName: '192.0.2.10', user: 'jumper', port: 2200 });
  });
  it('%h in HostName and relative IdentityFile under ~/.ssh', () => {
    const c = parseSshConfig('cfg', 'Host *.corp\n  HostName %h.example.net\n  IdentityFile id_corp\n', '/home/op');
    expect(c.lookup('r1.corp')).toMatchObject({ hostName: 'r1.corp.example.net', identityFiles: ['/home/op/.ssh/id_corp'] });
  });
  it('Match exec is never run', () => {
    const c = parseSshConfig('cfg', 'Match exec "touch /tmp/rha-pwned"\n  User evil\n', '/home/op');
    expect(c.lookup('x').user).toBeUndefined();
  });
  it('reports directives rha does not follow', () => {
    expect(cfg().unsupported('old')).toEqual(['proxycommand']);
  });
});

describe('parseJumpSpec', () => {
  it.each([
    ['bastion', [{ user: undefined, host: 'bastion', port: undefined, text: 'bastion' }]],
    ['ops@10.0.0.1:2222', [{ user: 'ops', host: '10.0.0.1', port: 2222, text: 'ops@10.0.0.1:2222' }]],
    ['a, b@c', [{ user: undefined, host: 'a', port: undefined, text: 'a' }, { user: 'b', host: 'c', port: undefined, text: 'b@c' }]],
  ])('%s', (spec, hops) => expect(parseJumpSpec(spec)).toEqual(hops));
  it('rejects garbage', () => {
    expect(parseJumpSpec('a b')).toBe('"a b" is not [user@]host[:port]');
    expect(parseJumpSpec('a:70000')).toBe('"a:70000": port 70000 is not between 1 and 65535');
  });
});

describe('inventory hosts through the ssh config', () => {
  it('alias → HostName, User, Port, the first IdentityFile that exists, ProxyJump chain', () => {
    const c = conn('hosts:\n  a: db-b\n', 'a');
    expect(c).toMatchObject({ address: '10.1.0.12', port: 2222, user: 'ops', privateKey: join(home, '.ssh', 'db_key') });
    expect(c.jump?.name).toBe('bastion');
    expect(c.jump?.connection).toMatchObject({ address: '192.0.2.10', port: 2200, user: 'jumper', privateKey: join(home, '.ssh', 'bastion_key'), knownHosts: join(home, '.ssh', 'known_hosts') });
    expect(c.jump?.connection.jump).toBeUndefined();
  });
  it('inventory settings win over the ssh config', () => {
    const c = conn('ssh: { user: root }\nhosts:\n  a: { address: db-b, port: 22, private_key: ./k }\n', 'a');
    expect(c).toMatchObject({ address: '10.1.0.12', port: 22, user: 'root', privateKey: join(home, 'k') });
  });
  it('config: false ignores the ssh config; a missing config file is an error', () => {
    expect(conn('ssh: { config: false }\nhosts:\n  a: db-b\n', 'a')).toMatchObject({ address: 'db-b', user: 'root', port: 22 });
    expect(conn('ssh: { config: false }\nhosts:\n  a: db-b\n', 'a').jump).toBeUndefined();
    expect(problemsOf('ssh: { config: ./nope }\nhosts:\n  a: db-b\n')).toEqual([`~/inventory.yaml:1 ssh.config: ssh config ./nope does not exist (looked at ~/nope)`]);
  });
  it('ssh: { config: FILE } reads that file (relative to the inventory)', () => {
    writeFileSync(join(home, 'ssh_config'), 'Host r\n  HostName 10.9.9.9\n  User deploy\n');
    expect(conn('ssh: { config: ./ssh_config }\nhosts:\n  a: r\n', 'a')).toMatchObject({ address: '10.9.9.9', user: 'deploy' });
  });
  it('warns about ProxyCommand instead of dropping it silently', () => {
    const inv = load('hosts:\n  a: old\n');
    expect(inv.warnings.map(formatProblem).map((p) => p.replaceAll(home, '~'))).toEqual([
      '~/inventory.yaml:2 hosts.a: warning: ssh config ~/.ssh/config sets proxycommand for "old", which rha does not follow: use jump: / ProxyJump, or set it in the inventory',
    ]);
  });
});

describe('jump: in the inventory', () => {
  const inv = `ssh: { config: false, user: root, known_hosts: ./kh }
hosts:
  bastion: 10.0.0.1
  hidden-a: { address: 10.2.0.11, jump: bastion }
  hidden-b: { address: 10.2.0.12, jump: "ops@bastion:2222" }
  far: { address: 10.3.0.1, jump: "hidden-a" }
  outside: { address: 10.4.0.1, jump: "gw@198.51.100.7, hidden-a" }
`;
  it('names another inventory host (its settings), with user/port overrides', () => {
    const a = conn(inv, 'hidden-a');
    expect(a.jump).toEqual({ name: 'bastion', connection: expect.objectContaining({ address: '10.0.0.1', user: 'root', port: 22, knownHosts: join(home, 'kh') }) });
    expect(conn(inv, 'hidden-b').jump?.connection).toMatchObject({ address: '10.0.0.1', user: 'ops', port: 2222 });
    expect(conn(inv, 'bastion').jump).toBeUndefined();
  });
  it("a jump host's own jump is followed (far → hidden-a → bastion)", () => {
    const far = conn(inv, 'far');
    expect(far.jump?.name).toBe('hidden-a');
    expect(far.jump?.connection.jump?.name).toBe('bastion');
  });
  it('an explicit chain says how to reach every hop', () => {
    const o = conn(inv, 'outside');
    expect(o.jump?.name).toBe('hidden-a');
    expect(o.jump?.connection.jump).toEqual({ name: 'gw@198.51.100.7', connection: expect.objectContaining({ address: '198.51.100.7', user: 'gw', port: 22 }) });
    expect(o.jump?.connection.jump?.connection.jump).toBeUndefined();
  });
  it('ssh.jump applies to every host but the bastion itself', () => {
    const text = 'ssh: { config: false, jump: bastion }\nhosts:\n  bastion: 10.0.0.1\n  a: 10.2.0.11\n';
    expect(conn(text, 'a').jump?.name).toBe('bastion');
    expect(conn(text, 'bastion').jump).toBeUndefined();
  });
  it('cycles and bad specs are errors naming the key', () => {
    expect(problemsOf('ssh: { config: false }\nhosts:\n  a: { address: 10.0.0.1, jump: b }\n  b: { address: 10.0.0.2, jump: a }\n')).toEqual([
      '~/inventory.yaml:4 hosts.b.jump: jump cycle a → b → a: a host cannot be reached through itself',
    ]);
    expect(problemsOf('ssh: { config: false }\nhosts:\n  a: { address: 10.0.0.1, jump: "x y" }\n')).toEqual([
      '~/inventory.yaml:3 hosts.a.jump: jump: "x y" is not [user@]host[:port] (a jump host is an inventory host or [user@]host[:port], several separated by ",")',
    ]);
  });
});
