import { describe, expect, test } from 'vitest';
import { UnreachableError } from '../../src/core/types.js';
import { classifyConnectError, formatSeconds, HostKeyChangedError } from '../../src/connection/errors.js';
import { preferredHostKeyAlgorithms } from '../../src/connection/connect.js';

const ctx = { user: 'admin', connectTimeoutMs: 10_000, triedMethods: ['publickey /path/key'] };
const err = (message: string, extra: Record<string, string> = {}) => Object.assign(new Error(message), extra);

describe('connect errors', () => {
  test.each([
    [err('Timed out while waiting for handshake', { level: 'client-timeout' }), 'network', 'connection timed out after 10 s'],
    [err('All configured authentication methods failed', { level: 'client-authentication' }), 'auth', 'authentication failed for user admin (tried: publickey /path/key)'],
    [err('connect ECONNREFUSED 10.213.0.11:22', { level: 'client-socket', code: 'ECONNREFUSED' }), 'network', 'connection refused'],
    [err('connect EHOSTUNREACH 10.213.0.11:22', { level: 'client-socket', code: 'EHOSTUNREACH' }), 'network', 'no route to host'],
    [err('No response from server', { code: 'ETIMEDOUT' }), 'network', 'connection closed before the SSH handshake finished (No response from server)'],
    [err('Handshake failed: no matching key exchange algorithm', { level: 'handshake' }), 'other', 'SSH handshake failed: Handshake failed: no matching key exchange algorithm'],
  ])('%s → %s', (e, kind, message) => {
    expect(classifyConnectError(e, ctx)).toEqual({ kind, message });
  });

  test('seconds', () => {
    expect(formatSeconds(10_000)).toBe('10 s');
    expect(formatSeconds(1500)).toBe('1.5 s');
  });

  test('changed host key: names host, address, both fingerprints, the file line, and how to accept', () => {
    const e = new HostKeyChangedError(
      'node1',
      '10.213.0.11',
      22,
      [{ file: '/root/.ssh/known_hosts', line: 3, keyType: 'ssh-ed25519', fingerprint: 'SHA256:old' }],
      { keyType: 'ssh-ed25519', fingerprint: 'SHA256:new' },
      'inv.yaml',
    );
    expect(e).toBeInstanceOf(UnreachableError);
    expect(e.hostName).toBe('node1');
    expect(e.message).toBe(
      'node1 (10.213.0.11:22): host key changed: known_hosts /root/.ssh/known_hosts:3 has ssh-ed25519 SHA256:old, ' +
        'the host now presents ssh-ed25519 SHA256:new. If node1 was replaced deliberately, accept its new key with ' +
        '`rha hosts accept node1 -i inv.yaml` or run with `--accept-host-key node1`; otherwise someone may be intercepting the connection.',
    );
  });

  test('known key types are negotiated first', () => {
    expect(preferredHostKeyAlgorithms([]).slice(0, 2)).toEqual(['ssh-ed25519', 'ecdsa-sha2-nistp256']);
    expect(preferredHostKeyAlgorithms(['ssh-rsa']).slice(0, 4)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
  });
});
