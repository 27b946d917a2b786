/**
 * rha's SSH connection layer: connect (host keys, auth, retries), exec (argv quoted at one edge,
 * secrets over stdin, become through sudo), one connection per host for the whole run.
 */
import type { Connection, HostSpec } from '../core/types.js';
import { connect, type ConnectOptions, type SshConnection } from './ssh.js';

export { connect, preferredHostKeyAlgorithms, SshConnection } from './ssh.js';
export type { ConnectOptions, HostKeyEvent } from './ssh.js';
export { HostKeyChangedError, hostLabel } from './errors.js';
export {
  forgetHostKey,
  hostKeyFingerprint,
  knownHostsName,
  parseKnownHosts,
  checkHostKey,
  removeHostEntries,
} from './known-hosts.js';
export type { KnownHostsEntry, HostKeyCheck, StoredKey } from './known-hosts.js';
export { buildRemoteInvocation } from './remote-command.js';

/**
 * One connection per host, reused for the whole run. Concurrent get() calls for a host share one
 * connect; a connection whose link died is replaced on the next get().
 */
export class ConnectionPool {
  private readonly conns = new Map<string, Promise<SshConnection>>();

  constructor(private readonly opts: ConnectOptions = {}) {}

  /** The host's live connection (connecting on first use); rejects with UnreachableError. */
  async get(host: HostSpec): Promise<Connection> {
    const current = this.conns.get(host.name);
    if (current) {
      const conn = await current.catch(() => undefined);
      if (conn?.alive) return conn;
      // Another caller may already have replaced a failed or dead entry.
      const now = this.conns.get(host.name);
      if (now && now !== current) return this.get(host);
    }
    const connecting = connect(host, this.opts);
    this.conns.set(host.name, connecting);
    connecting.catch(() => {
      if (this.conns.get(host.name) === connecting) this.conns.delete(host.name);
    });
    return connecting;
  }

  /** Closes every connection the pool opened; resolves when all are closed. */
  async closeAll(): Promise<void> {
    const all = [...this.conns.values()];
    this.conns.clear();
    await Promise.all(
      all.map(async (p) => {
        const conn = await p.catch(() => undefined);
        await conn?.close();
      }),
    );
  }
}
