/**
 * The pure parts of what made a 1000-host no-op fast and small (issue 17): the known_hosts index
 * and its cache, the masker for many secrets, the shared `groups` variable, the keeper's memory
 * cap and its file digests.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { KEPT_CONNECTION_MB, memoryCapMb } from '../../src/cli/keeper.js';
import { FileDigests } from '../../src/connection/keep.js';
import { entryMatchesHost, KnownHostsIndex, knownHostsIndex, parseKnownHosts } from '../../src/connection/known-hosts.js';
import { indexedMasker, REGEX_MAX_SECRETS, secretMasker } from '../../src/core/mask.js';
import { groupsVar, magicVars } from '../../src/runner/vars.js';
import type { HostSpec, Inventory } from '../../src/core/types.js';

const K1 = 'AAAAC3NzaC1lZDI1NTE5AAAAIMjMZIVX7+yrGEc7vyQbBz6HISMF4WWxtxUtdHWn5lFC';
const dir = mkdtempSync(path.join(tmpdir(), 'rha-n1000-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every host a scan with entryMatchesHost finds, as the index must find them. */
function scan(text: string, address: string, port: number): number[] {
  return parseKnownHosts(text)
    .filter((e) => entryMatchesHost(e, address, port))
    .map((e) => e.line);
}

describe('KnownHostsIndex', () => {
  const text = [
    `10.0.0.1 ssh-ed25519 ${K1}`,
    `10.0.0.1,Redis-A.example ecdsa-sha2-nistp256 ${K1}`,
    `[10.0.0.1]:2222 ssh-ed25519 ${K1}`,
    `10.0.0.* ssh-rsa ${K1}`,
    `10.0.*,!10.0.0.9 ssh-ed25519 ${K1}`,
    `|1|FANXooprtUNKk2JJcDpjfvDZOVI=|6GWw/Xohpq/s8Gx2DY6q7UX9BEg= ssh-ed25519 ${K1}`,
    `10.0.0.10 ssh-ed25519 ${K1}`,
    `@revoked 10.0.0.1 ssh-ed25519 ${K1}`,
  ].join('\n');
  const index = new KnownHostsIndex(parseKnownHosts(text));

  test('finds what a scan finds, in file order: plain, wildcard, negated, hashed, ports, case', () => {
    for (const [address, port] of [
      ['10.0.0.1', 22],
      ['10.0.0.1', 2222],
      ['10.0.0.5', 22], // the hashed line's host
      ['10.0.0.9', 22],
      ['10.0.0.10', 22],
      ['redis-a.EXAMPLE', 22],
      ['10.9.9.9', 22],
    ] as const) {
      expect(index.forHost(address, port).map((e) => e.line), `${address}:${port}`).toEqual(scan(text, address, port));
    }
  });

  test('parsed fields are strings of their own, equal to the text', () => {
    const [e] = parseKnownHosts(`10.0.0.1 ecdsa-sha2-nistp256 ${K1}`);
    expect(e).toEqual({ line: 1, hosts: '10.0.0.1', keyType: 'ecdsa-sha2-nistp256', key: K1 });
  });

  test('the file cache: parsed once, again when the file is replaced, empty when missing', async () => {
    const file = path.join(dir, 'known_hosts');
    expect((await knownHostsIndex(file)).entries).toEqual([]);
    writeFileSync(file, `10.0.0.1 ssh-ed25519 ${K1}\n`);
    const first = await knownHostsIndex(file);
    expect(first.forHost('10.0.0.1', 22)).toHaveLength(1);
    expect(await knownHostsIndex(file)).toBe(first);
    // As rha writes it: a new file renamed into place.
    writeFileSync(file + '.new', `10.0.0.2 ssh-ed25519 ${K1}\n`);
    renameSync(file + '.new', file);
    const second = await knownHostsIndex(file);
    expect(second).not.toBe(first);
    expect(second.forHost('10.0.0.1', 22)).toEqual([]);
    expect(second.forHost('10.0.0.2', 22)).toHaveLength(1);
  });
});

describe('masking many secrets', () => {
  test('the indexed masker replaces exactly as the alternation does', () => {
    // Overlapping, nested, sharing prefixes, one-character, regex characters.
    const secrets = ['ab', 'abc', 'abcd', 'b', 'xyz', 'x.z', 'zz', 'a(b', 'zzzz'];
    const byLength = [...secrets].sort((a, b) => b.length - a.length);
    const re = new RegExp(byLength.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
    const indexed = indexedMasker(byLength);
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const alphabet = 'abcdxyz.(z ';
    for (let i = 0; i < 2000; i++) {
      const text = Array.from({ length: Math.floor(rnd() * 30) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
      expect(indexed(text), text).toBe(text.replace(re, '***'));
    }
  });

  test(`above ${REGEX_MAX_SECRETS} secrets secretMasker uses it, with the same result`, () => {
    const secrets = Array.from({ length: 1000 }, (_, i) => `pw-${i.toString(36)}-${'x'.repeat(i % 7)}`);
    const mask = secretMasker(secrets);
    expect(mask('user pw-0- and pw-rr-xxxxx, not pw-zzzz9')).toBe('user *** and ***, not pw-zzzz9');
    expect(mask('')).toBe('');
    expect(mask('nothing here')).toBe('nothing here');
  });
});

describe('the groups variable', () => {
  const groups = new Map([
    ['all', ['a', 'b']],
    ['g', ['a']],
  ]);
  const inv = { groups } as unknown as Inventory;
  const host = { name: 'a', groups: ['all', 'g'] } as unknown as HostSpec;

  test('the same object for every host and task, with the same content as before', () => {
    const one = magicVars(inv, host, false);
    expect(one).toEqual({ inventory_hostname: 'a', group_names: ['g'], groups: { all: ['a', 'b'], g: ['a'] }, check_mode: false });
    expect(magicVars(inv, host, true).groups).toBe(one.groups);
    expect(Object.isFrozen(one.groups)).toBe(true);
  });

  test('built again when the map grew', () => {
    const m = new Map([['all', ['a']]]);
    const before = groupsVar(m);
    m.set('h', ['a']);
    expect(groupsVar(m)).toEqual({ all: ['a'], h: ['a'] });
    expect(groupsVar(m)).not.toBe(before);
  });
});

describe('the keeper', () => {
  test('its memory cap grows with the connections it keeps', () => {
    expect(memoryCapMb(0)).toBe(400);
    expect(memoryCapMb(1000)).toBe(400 + 1000 * KEPT_CONNECTION_MB);
  });

  test('file digests: read once per version of the file; a missing file says so', async () => {
    const d = new FileDigests();
    const file = path.join(dir, 'key');
    expect(await d.digest(file)).toBe('missing ENOENT');
    writeFileSync(file, 'one');
    const one = await d.digest(file);
    expect(one).toMatch(/^[0-9a-f]{64}$/);
    expect(await d.digest(file)).toBe(one);
    writeFileSync(file + '.new', 'two');
    renameSync(file + '.new', file);
    const two = await d.digest(file);
    expect(two).toMatch(/^[0-9a-f]{64}$/);
    expect(two).not.toBe(one);
  });
});
