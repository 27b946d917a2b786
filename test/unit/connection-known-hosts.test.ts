import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  appendLine,
  checkHostKey,
  entryMatchesHost,
  forgetHostKey,
  formatEntry,
  hostKeyFingerprint,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  parseKnownHosts,
  removeHostEntries,
  verifyHostKeyInFile,
} from '../../src/connection/known-hosts.js';

// Real keys from ssh-keygen; the hashed lines are `ssh-keygen -H` output for
// `10.0.0.5 <K1>` and `[10.0.0.6]:2222 <K2>`.
const K1 = 'AAAAC3NzaC1lZDI1NTE5AAAAIMjMZIVX7+yrGEc7vyQbBz6HISMF4WWxtxUtdHWn5lFC';
const K1_FP = 'SHA256:bLw/2ci7JlR3aP9os5lBANa8US31gD99TgNtUYScDes'; // ssh-keygen -lf
const K2 = 'AAAAC3NzaC1lZDI1NTE5AAAAIMpYP5BdytP8WmjuFS81MnV+eoByld0Gmvg8NB4Ow24t';
const K3_ECDSA =
  'AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHhydaCIxSPtz3v0WIGTH169+WUDQ6rmWQupaxpLmLRSSpx5qAb2NiYdQHZ1i4TWjTKLgbZRpflXVamKWET5G9o=';
const K3_FP = 'SHA256:1DF5nBGpd9r03yKRknu0OSb+QwfxLe0SUp2PK6DETwI';
const HASHED = [
  `|1|FANXooprtUNKk2JJcDpjfvDZOVI=|6GWw/Xohpq/s8Gx2DY6q7UX9BEg= ssh-ed25519 ${K1}`,
  `|1|nEeYrINhNy5fcCYVqMMQyc0WIR8=|X1W5OB/ZX+CiywGOJ3GofH+w44Q= ssh-ed25519 ${K2}`,
].join('\n');
const blob = (b64: string) => Buffer.from(b64, 'base64');

function tmpFile(name = 'known_hosts'): string {
  return path.join(mkdtempSync(path.join(tmpdir(), 'rha-kh-')), 'sub', name);
}

describe('parse and match', () => {
  test('parses entries, skipping comments, blanks and malformed lines; keeps markers', () => {
    const text = `# comment\n\n10.0.0.5 ssh-ed25519 ${K1} root@x\nbroken-line\n@cert-authority *.example ssh-ed25519 ${K2}\n`;
    expect(parseKnownHosts(text)).toEqual([
      { line: 3, hosts: '10.0.0.5', keyType: 'ssh-ed25519', key: K1 },
      { line: 5, hosts: '*.example', keyType: 'ssh-ed25519', key: K2, marker: '@cert-authority' },
    ]);
  });

  test('host names as OpenSSH writes them', () => {
    expect(knownHostsName('10.0.0.5', 22)).toBe('10.0.0.5');
    expect(knownHostsName('10.0.0.5', 2222)).toBe('[10.0.0.5]:2222');
  });

  test.each([
    ['10.0.0.5', '10.0.0.5', 22, true],
    ['10.0.0.5', '10.0.0.5', 2222, false],
    ['[10.0.0.5]:2222', '10.0.0.5', 2222, true],
    ['[10.0.0.5]:2222', '10.0.0.5', 22, false],
    ['node1,10.0.0.5', '10.0.0.5', 22, true],
    ['10.0.0.*', '10.0.0.77', 22, true],
    ['10.0.0.*,!10.0.0.77', '10.0.0.77', 22, false],
    ['10.0.0.?', '10.0.0.12', 22, false],
    ['10.0.0.50', '10.0.0.5', 22, false],
  ])('plain pattern %s matches %s:%i → %s', (hosts, addr, port, want) => {
    expect(entryMatchesHost({ hosts }, addr, port)).toBe(want);
  });

  test('hashed |1| entries from ssh-keygen -H match their host and port only', () => {
    const [a, b] = parseKnownHosts(HASHED);
    expect(entryMatchesHost(a, '10.0.0.5', 22)).toBe(true);
    expect(entryMatchesHost(a, '10.0.0.6', 22)).toBe(false);
    expect(entryMatchesHost(b, '10.0.0.6', 2222)).toBe(true);
    expect(entryMatchesHost(b, '10.0.0.6', 22)).toBe(false);
  });

  test('key type and fingerprint as ssh-keygen shows them', () => {
    expect(keyTypeOf(blob(K1))).toBe('ssh-ed25519');
    expect(keyTypeOf(blob(K3_ECDSA))).toBe('ecdsa-sha2-nistp256');
    expect(hostKeyFingerprint(blob(K1))).toBe(K1_FP);
    expect(hostKeyFingerprint(K3_ECDSA)).toBe(K3_FP);
  });

  test('check: match, unknown, changed; other key types only mean unknown', () => {
    const entries = parseKnownHosts(`${HASHED}\n10.0.0.7 ecdsa-sha2-nistp256 ${K3_ECDSA}\n`);
    expect(checkHostKey(entries, '10.0.0.5', 22, blob(K1))).toEqual({ kind: 'match', line: 1 });
    expect(checkHostKey(entries, '10.0.0.9', 22, blob(K1))).toEqual({ kind: 'unknown' });
    expect(checkHostKey(entries, '10.0.0.5', 22, blob(K2))).toEqual({
      kind: 'changed',
      stored: [{ line: 1, keyType: 'ssh-ed25519', fingerprint: K1_FP }],
    });
    // 10.0.0.7 is known only by its ECDSA key: an ed25519 key is new, not changed.
    expect(checkHostKey(entries, '10.0.0.7', 22, blob(K1))).toEqual({ kind: 'unknown' });
    expect(knownKeyTypes(entries, '10.0.0.7', 22)).toEqual(['ecdsa-sha2-nistp256']);
  });

  test('accepted if any stored key of the same type matches', () => {
    const entries = parseKnownHosts(`10.0.0.5 ssh-ed25519 ${K2}\n10.0.0.5 ssh-ed25519 ${K1}\n`);
    expect(checkHostKey(entries, '10.0.0.5', 22, blob(K1))).toEqual({ kind: 'match', line: 2 });
  });

  test('marker lines are never used to accept a key', () => {
    const entries = parseKnownHosts(`@revoked 10.0.0.5 ssh-ed25519 ${K1}\n`);
    expect(checkHostKey(entries, '10.0.0.5', 22, blob(K1))).toEqual({ kind: 'unknown' });
  });

  test('remove drops every entry of the host (plain, hashed, all types) and keeps the rest', () => {
    const text = `# keep me\n${HASHED}\n10.0.0.5 ecdsa-sha2-nistp256 ${K3_ECDSA}\n10.0.0.50 ssh-ed25519 ${K2}\n`;
    const { text: out, removed } = removeHostEntries(text, '10.0.0.5', 22);
    expect(removed).toBe(2);
    expect(out).toBe(`# keep me\n${HASHED.split('\n')[1]}\n10.0.0.50 ssh-ed25519 ${K2}\n`);
  });

  test('formatted entries: plain host or [host]:port, appended after a newline', () => {
    expect(formatEntry('10.0.0.5', 2222, blob(K1))).toBe(`[10.0.0.5]:2222 ssh-ed25519 ${K1}`);
    expect(appendLine('a b c', 'x y z')).toBe('a b c\nx y z\n');
    expect(appendLine('', 'x y z')).toBe('x y z\n');
  });
});

describe('the file', () => {
  test('first contact creates folder and file (0600) and records the key; then it is known', async () => {
    const file = tmpFile();
    expect(await verifyHostKeyInFile(file, '10.0.0.5', 22, blob(K1), false)).toEqual({ kind: 'learned' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readFileSync(file, 'utf8')).toBe(`10.0.0.5 ssh-ed25519 ${K1}\n`);
    expect(await verifyHostKeyInFile(file, '10.0.0.5', 22, blob(K1), false)).toEqual({ kind: 'known', line: 1 });
  });

  test('a changed key is refused and the file left alone, unless accepted: then old entries are replaced', async () => {
    const file = tmpFile();
    await verifyHostKeyInFile(file, '10.0.0.6', 22, blob(K2), false);
    await verifyHostKeyInFile(file, '10.0.0.5', 22, blob(K1), false);
    const before = readFileSync(file, 'utf8');
    expect(await verifyHostKeyInFile(file, '10.0.0.5', 22, blob(K2), false)).toEqual({
      kind: 'changed',
      stored: [{ file, line: 2, keyType: 'ssh-ed25519', fingerprint: K1_FP }],
      presented: { keyType: 'ssh-ed25519', fingerprint: hostKeyFingerprint(blob(K2)) },
    });
    expect(readFileSync(file, 'utf8')).toBe(before);
    const v = await verifyHostKeyInFile(file, '10.0.0.5', 22, blob(K2), true);
    expect(v).toMatchObject({ kind: 'replaced', removed: 1 });
    expect(readFileSync(file, 'utf8')).toBe(`10.0.0.6 ssh-ed25519 ${K2}\n10.0.0.5 ssh-ed25519 ${K2}\n`);
  });

  test('concurrent first contacts in one process all land (writers are serialised)', async () => {
    const file = tmpFile();
    await Promise.all(
      Array.from({ length: 25 }, (_, i) => verifyHostKeyInFile(file, `10.0.1.${i}`, 22, blob(i % 2 ? K1 : K2), false)),
    );
    const entries = parseKnownHosts(readFileSync(file, 'utf8'));
    expect(entries).toHaveLength(25);
    expect(new Set(entries.map((e) => e.hosts)).size).toBe(25);
  });

  test('forgetHostKey removes the host entries (hashed too) and returns the count', async () => {
    const file = tmpFile();
    await verifyHostKeyInFile(file, '10.0.0.9', 22, blob(K2), false);
    writeFileSync(file, `${HASHED}\n` + readFileSync(file, 'utf8'), { mode: 0o600 });
    expect(await forgetHostKey(file, '10.0.0.5', 22)).toBe(1);
    expect(await forgetHostKey(file, '10.0.0.5', 22)).toBe(0);
    expect(await forgetHostKey(file, '10.0.0.6', 2222)).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe(`10.0.0.9 ssh-ed25519 ${K2}\n`);
    expect(await forgetHostKey(tmpFile(), '10.0.0.5', 22)).toBe(0);
  });
});
