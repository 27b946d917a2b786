/**
 * rha's SSH connection layer: connect (host keys, auth, retries), exec (argv quoted at one edge,
 * secrets over stdin, become through sudo), one connection per host for the whole run.
 */
import type { Connection, HostSpec } from '../core/types.js';
import type { KeptConnections } from './keep.js';
import { connect, type ConnectOptions } from './connect.js';
import type { SshConnection } from './ssh.js';

export { connect, preferredHostKeyAlgorithms } from './connect.js';
export type { ConnectOptions, HostKeyEvent } from './connect.js';
export { SshConnection } from './ssh.js';
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
export { ConnectionKeeper, type KeptConnections } from './keep.js';

export interface PoolOptions extends ConnectOptions {
  /** Connections kept from an earlier run (the keeper): taken instead of connecting, given back by closeAll(). */
  keep?: KeptConnections;
}

/**
 * One connection per host, reused for the whole run. Concurrent get() calls for a host share one
 * connect; a connection whose link died is replaced on the next get().
 */
export class ConnectionPool {
  private readonly conns = new Map<string, Promise<SshConnection>>();
  private readonly specs = new Map<string, HostSpec>();

  constructor(private readonly opts: PoolOptions = {}) {}

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
    const connecting = this.open(host);
    this.conns.set(host.name, connecting);
    this.specs.set(host.name, host);
    connecting.catch(() => {
      if (this.conns.get(host.name) === connecting) this.conns.delete(host.name);
    });
    return connecting;
  }

  private async open(host: HostSpec): Promise<SshConnection> {
    const kept = await this.opts.keep?.take(host);
    if (!kept) return connect(host, this.opts);
    kept.adopt(host, this.opts.signal);
    return kept;
  }

  /** Closes every connection the pool opened (or gives it back to `keep`); resolves when all are done. */
  async closeAll(): Promise<void> {
    const all = [...this.conns.entries()];
    this.conns.clear();
    await Promise.all(
      all.map(async ([name, p]) => {
        const conn = await p.catch(() => undefined);
        const host = this.specs.get(name);
        if (conn && host && this.opts.keep) await this.opts.keep.give(host, conn);
        else await conn?.close();
      }),
    );
    this.specs.clear();
  }
}
