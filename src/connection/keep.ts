/**
 * SSH connections kept open between runs by the keeper (src/cli/keeper.ts), as Ansible's
 * ControlPersist keeps its own: the next run within the keeper's idle time skips the handshake,
 * the authentication and the shells' start.
 *
 * A kept connection is reused only by a run whose connection settings are the same in every
 * respect that the connect would have looked at: the host's name and its whole connection spec
 * (address, port, user, secrets, become, jump hosts), the private key file's content, the
 * known_hosts file's content (a key recorded, changed or forgotten since means a fresh connect,
 * which checks the key again) and the ssh-agent socket. The key is a salted hash, kept in this
 * process's memory only. Before reuse the server must answer a ping within PING_TIMEOUT_MS: a link
 * that died quietly is closed and replaced by a fresh connect, never handed to a task.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { HostConnectionSpec, HostSpec } from '../core/types.js';
import type { SshConnection } from './ssh.js';

/** What the pool asks of a store of kept connections. */
export interface KeptConnections {
  /** A live kept connection with exactly this host's settings (removed from the store), or undefined. */
  take(host: HostSpec): Promise<SshConnection | undefined>;
  /** Keeps the connection for a later run (closes it when it cannot be kept). */
  give(host: HostSpec, conn: SshConnection): Promise<void>;
}

const PING_TIMEOUT_MS = 1500;

export class ConnectionKeeper implements KeptConnections {
  private readonly idle = new Map<string, SshConnection>();
  private readonly salt = randomBytes(16);

  constructor(private readonly env: () => NodeJS.ProcessEnv = () => process.env) {}

  /** How many connections are kept now. */
  get size(): number {
    return this.idle.size;
  }

  async take(host: HostSpec): Promise<SshConnection | undefined> {
    const key = await this.keyOf(host).catch(() => undefined);
    const conn = key === undefined ? undefined : this.idle.get(key);
    if (!conn || key === undefined) return undefined;
    this.idle.delete(key);
    if (conn.alive && (await conn.ping(PING_TIMEOUT_MS))) return conn;
    await conn.close().catch(() => undefined);
    return undefined;
  }

  async give(host: HostSpec, conn: SshConnection): Promise<void> {
    const key = conn.alive ? await this.keyOf(host).catch(() => undefined) : undefined;
    if (key === undefined) {
      await conn.close().catch(() => undefined);
      return;
    }
    conn.adopt(host, undefined);
    conn.forgetBecome();
    const before = this.idle.get(key);
    this.idle.set(key, conn);
    if (before && before !== conn) await before.close().catch(() => undefined);
  }

  /** Closes every kept connection. */
  async closeAll(): Promise<void> {
    const all = [...this.idle.values()];
    this.idle.clear();
    await Promise.all(all.map((c) => c.close().catch(() => undefined)));
  }

  /** The salted hash of everything connect() would read for this host. */
  private async keyOf(host: HostSpec): Promise<string> {
    const h = createHash('sha256').update(this.salt).update(host.name).update('\0');
    for (let c: HostConnectionSpec | undefined = host.connection; c; c = c.jump?.connection) {
      h.update(JSON.stringify(c, (k, v) => (k === 'jump' ? v?.name : v))).update('\0');
      h.update(await this.files.digest(c.knownHosts)).update('\0');
      h.update(c.privateKey ? await this.files.digest(c.privateKey) : `agent ${this.env().SSH_AUTH_SOCK ?? ''}`).update('\0');
    }
    return h.digest('hex');
  }

  private readonly files = new FileDigests();
}

/**
 * Digests of files' contents, read again only when a file changed (inode, size, mtime or ctime).
 * Every host of a run names the same known_hosts file: at 1000 hosts (a 0.8 MB file) reading and
 * hashing it per host when the run gave its connections back held 0.8 GB at once (issue 17).
 */
export class FileDigests {
  private readonly known = new Map<string, { stamp: string; digest: Promise<string> }>();

  /** The content's SHA-256 (hex), or `missing CODE` when it cannot be read. */
  async digest(file: string): Promise<string> {
    let stamp: string;
    try {
      const st = await fs.stat(file, { bigint: true });
      stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch (e) {
      return missing(e);
    }
    const hit = this.known.get(file);
    if (hit?.stamp === stamp) return hit.digest;
    const digest = fs.readFile(file).then(
      (b) => createHash('sha256').update(b).digest('hex'),
      (e: unknown) => missing(e),
    );
    this.known.set(file, { stamp, digest });
    return digest;
  }
}

function missing(e: unknown): string {
  return `missing ${(e as NodeJS.ErrnoException).code ?? ''}`;
}
