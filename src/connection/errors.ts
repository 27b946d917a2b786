/** Connection failures as messages a person can act on. */
import { UnreachableError } from '../core/types.js';
import type { StoredKey } from './known-hosts.js';
import type { Ssh2Error } from './ssh2-types.js';

/** `node1 (10.213.0.11:22)`: how every connection message names the host. */
export function hostLabel(hostName: string, address: string, port: number): string {
  return `${hostName} (${address}:${port})`;
}

/** `10 s`, `1.5 s`. */
export function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** The host presented a key that differs from the one recorded: possibly an attack, possibly a replaced node. */
export class HostKeyChangedError extends UnreachableError {
  constructor(
    hostName: string,
    readonly address: string,
    readonly port: number,
    readonly stored: StoredKey[],
    readonly presented: { keyType: string; fingerprint: string },
    inventoryPath?: string,
  ) {
    super(hostName, hostKeyChangedMessage(hostName, address, port, stored, presented, inventoryPath));
    this.name = 'HostKeyChangedError';
  }
}

/** The HostKeyChangedError message: which host, old vs new fingerprint, where, and how to accept. */
export function hostKeyChangedMessage(
  hostName: string,
  address: string,
  port: number,
  stored: StoredKey[],
  presented: { keyType: string; fingerprint: string },
  inventoryPath = 'INVENTORY',
): string {
  const was = stored.map((s) => `${s.file}:${s.line} has ${s.keyType} ${s.fingerprint}`).join('; ');
  return (
    `${hostLabel(hostName, address, port)}: host key changed: known_hosts ${was}, ` +
    `the host now presents ${presented.keyType} ${presented.fingerprint}. ` +
    `If ${hostName} was replaced deliberately, accept its new key with ` +
    `\`rha hosts accept ${hostName} -i ${inventoryPath}\` or run with \`--accept-host-key ${hostName}\`; ` +
    `otherwise someone may be intercepting the connection.`
  );
}

export type ConnectFailure =
  | { kind: 'network'; message: string }
  | { kind: 'auth'; message: string }
  | { kind: 'other'; message: string };

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset by peer',
  EPIPE: 'connection closed by peer',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'cannot resolve the address',
  EAI_AGAIN: 'cannot resolve the address (temporary failure)',
};

/**
 * Classifies an ssh2 connect error: `network` failures are retried, `auth` and `other` are not
 * (retrying a wrong key only fills the server's log with failures).
 */
export function classifyConnectError(
  err: Ssh2Error,
  ctx: { user: string; connectTimeoutMs: number; triedMethods: string[] },
): ConnectFailure {
  if (err.level === 'client-timeout' || /timed out/i.test(err.message)) {
    return { kind: 'network', message: `connection timed out after ${formatSeconds(ctx.connectTimeoutMs)}` };
  }
  if (err.level === 'client-authentication' || /authentication methods failed/i.test(err.message)) {
    const tried = ctx.triedMethods.length ? ctx.triedMethods.join(', ') : 'none';
    return { kind: 'auth', message: `authentication failed for user ${ctx.user} (tried: ${tried})` };
  }
  if (/No response from server|Connection lost before handshake|socket hang up/i.test(err.message)) {
    return { kind: 'network', message: `connection closed before the SSH handshake finished (${err.message})` };
  }
  if (err.code && NETWORK_CODES[err.code]) return { kind: 'network', message: NETWORK_CODES[err.code] };
  if (err.level === 'client-socket') return { kind: 'network', message: err.message };
  return { kind: 'other', message: `SSH handshake failed: ${err.message}` };
}
