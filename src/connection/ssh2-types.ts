/**
 * The few parts of ssh2 (wrapped by node-ssh) that rha uses directly. ssh2 ships no types and
 * @types/ssh2 is not a dependency, so node-ssh's `connection` is untyped: these keep our use checked.
 */
import type { EventEmitter } from 'node:events';
import type { Duplex, Readable, Writable } from 'node:stream';

export interface Ssh2Channel extends Writable {
  stderr: Readable;
  // Events: 'data' (Buffer), 'exit' (code | null, signal?), 'close', 'drain', 'error'.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  close(): void;
  signal(name: string): void;
  outgoing?: { id: number; state: string };
  _client?: { _protocol?: { signal(id: number, name: string): void } };
}

export interface Ssh2Client extends EventEmitter {
  exec(command: string, options: Record<string, unknown>, cb: (err: Error | undefined, channel: Ssh2Channel) => void): boolean;
  end(): void;
  destroy(): void;
  /** TCP_NODELAY on the underlying socket. */
  setNoDelay(noDelay: boolean): void;
  /** A TCP connection opened by the remote host (direct-tcpip): how a jump host reaches the next hop. */
  forwardOut(srcIP: string, srcPort: number, dstIP: string, dstPort: number, cb: (err: Error | undefined, stream: Duplex) => void): boolean;
  /**
   * ssh2's own keepalive (a `keepalive@openssh.com` global request, answered by every OpenSSH
   * server) and the queue its replies are matched against, in order. Private to ssh2 (pinned in
   * package-lock.json): SshConnection.ping checks they exist before using them.
   */
  _protocol?: {
    ping?(): void;
    /** Message handlers by name (GLOBAL_REQUEST: the server's global requests); see connect.ts skipHostKeysProof. */
    _handlers?: Record<string, unknown>;
    requestSuccess?(): void;
  };
  _callbacks?: Array<(hadErr: boolean) => void>;
}

/** Errors ssh2 emits carry a `level` saying which phase failed. */
export interface Ssh2Error extends Error {
  level?: string;
  code?: string;
}
