/**
 * Opening a connection: the private key, retries of network failures, host key verification
 * against known_hosts before authentication, a bastion chain (ProxyJump) through SSH channels.
 * What the open connection then does is ssh.ts's.
 */
import { trace, tracing } from '../core/trace.js';
import type { Duplex } from 'node:stream';
import { promises as fs } from 'node:fs';
import { NodeSSH } from 'node-ssh';
import { UnreachableError, type HostSpec } from '../core/types.js';
import { classifyConnectError, hostLabel, HostKeyChangedError, type ConnectFailure } from './errors.js';
import { hostKeyFingerprint, knownHostsIndex, knownKeyTypes, verifyHostKeyInFile, type HostKeyVerdict } from './known-hosts.js';
import { SshConnection } from './ssh.js';
import type { Ssh2Client, Ssh2Error } from './ssh2-types.js';

export interface HostKeyEvent {
  host: string;
  kind: 'learned' | 'replaced';
  fingerprint: string;
  knownHosts: string;
}

export interface ConnectOptions {
  /** Host names whose changed host key is accepted deliberately for this run (the replaced-node flow). */
  acceptChangedHostKeys?: ReadonlySet<string> | 'all';
  signal?: AbortSignal;
  /** Named in the changed-key message's `rha hosts accept HOST -i INVENTORY` hint. */
  inventoryPath?: string;
  /** Told when a host key is recorded (first contact) or replaced (accepted change). */
  onHostKey?: (event: HostKeyEvent) => void;
}

const ALL_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Host key algorithms with the types already recorded for this host first, to avoid false "new key" events. */
export function preferredHostKeyAlgorithms(knownTypes: string[]): string[] {
  const algoOf = (type: string) => (type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type]);
  // The list's own strings: ssh2 keeps this list for the connection's life, and a name taken from a
  // parsed file could hold that whole file in memory (issue 17).
  const first = knownTypes.flatMap(algoOf).flatMap((a) => ALL_HOST_KEY_ALGORITHMS.filter((x) => x === a));
  return [...new Set([...first, ...ALL_HOST_KEY_ALGORITHMS])];
}

class ConnectAttemptError extends Error {
  constructor(readonly failure: ConnectFailure) {
    super(failure.message);
  }
}

/** A connected Connection to the host; throws UnreachableError (or HostKeyChangedError). */
export async function connect(host: HostSpec, opts: ConnectOptions = {}): Promise<SshConnection> {
  if (!tracing) return connectUntraced(host, opts);
  const started = Date.now();
  const conn = await connectUntraced(host, opts);
  trace(host.name, 'connected', started, 'ssh');
  return conn;
}

async function connectUntraced(host: HostSpec, opts: ConnectOptions): Promise<SshConnection> {
  const spec = host.connection;
  const label = hostLabel(host.name, spec.address, spec.port);
  let privateKey: string | undefined;
  if (spec.privateKey) {
    try {
      privateKey = await fs.readFile(spec.privateKey, 'utf8');
    } catch (err) {
      throw new UnreachableError(
        host.name,
        `${label}: cannot read private key ${spec.privateKey}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  }
  const attempts = 1 + Math.max(0, spec.connectRetries);
  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw new UnreachableError(host.name, `${label}: interrupted`);
    try {
      return await connectOnce(host, privateKey, opts);
    } catch (err) {
      if (err instanceof UnreachableError) throw err;
      const failure =
        err instanceof ConnectAttemptError ? err.failure : ({ kind: 'other', message: String(err) } as ConnectFailure);
      if (failure.kind !== 'network' || attempt >= attempts) {
        const tries = attempt > 1 ? ` (${attempt} attempts)` : '';
        throw new UnreachableError(host.name, `${label}: ${failure.message}${tries}`);
      }
      await sleep(Math.min(500 * attempt, 2000), opts.signal);
    }
  }
}

async function connectOnce(host: HostSpec, privateKey: string | undefined, opts: ConnectOptions): Promise<SshConnection> {
  const spec = host.connection;
  const label = hostLabel(host.name, spec.address, spec.port);
  const accept =
    opts.acceptChangedHostKeys === 'all' || (opts.acceptChangedHostKeys?.has(host.name) ?? false);
  let verdict: HostKeyVerdict | undefined;
  let verifyError: unknown;
  let presented: Buffer | undefined;

  const knownTypes = knownKeyTypes((await knownHostsIndex(spec.knownHosts)).forHost(spec.address, spec.port), spec.address, spec.port);
  const agent = !privateKey ? process.env.SSH_AUTH_SOCK : undefined;
  const triedMethods = [
    ...(privateKey ? [`publickey ${spec.privateKey}`] : []),
    ...(agent ? [`ssh-agent ${agent}`] : []),
    ...(spec.password ? ['password'] : []),
  ];
  // Dead-link detection: 3 unanswered keepalives mark the host unreachable instead of hanging.
  // Not below 2 s: a busy 2-core host (compiling Redis) must not look dead.
  const keepaliveInterval = Math.min(5000, Math.max(2000, Math.round(spec.connectTimeoutMs / 3)));

  // Through a bastion: connect to it first (its host key verified like any host's), then reach
  // this host over a direct-tcpip channel of that connection; this host's key is verified as usual.
  let jump: SshConnection | undefined;
  let sock: Duplex | undefined;
  if (spec.jump) {
    const j = spec.jump;
    try {
      jump = await connect({ name: j.name, connection: j.connection, groups: [], vars: {} }, opts);
    } catch (err) {
      if (err instanceof HostKeyChangedError) throw err;
      throw new UnreachableError(host.name, `${label}: through jump host ${(err as Error).message}`);
    }
    try {
      sock = await jump.forwardOut(spec.address, spec.port);
    } catch (err) {
      await jump.close();
      throw new ConnectAttemptError({
        kind: 'network',
        message: `jump host ${hostLabel(j.name, j.connection.address, j.connection.port)} cannot open a connection to ${spec.address}:${spec.port}: ${(err as Error).message}`,
      });
    }
  }

  const ssh = new NodeSSH();
  const connecting = ssh.connect({
    ...(sock ? { sock } : {}),
    host: spec.address,
    port: spec.port,
    username: spec.user,
    readyTimeout: spec.connectTimeoutMs,
    // ssh2's keepalive off: SshConnection sends its own, only while commands run.
    keepaliveInterval: 0,
    ...(privateKey ? { privateKey } : {}),
    ...(agent ? { agent } : {}),
    ...(spec.password ? { password: spec.password.value, tryKeyboard: true } : {}),
    algorithms: { serverHostKey: preferredHostKeyAlgorithms(knownTypes) },
    // Key first, as OpenSSH does; and no "none" probe first (ssh2's default): it costs a round trip
    // and a PAM account check on the server for a list of methods we do not need.
    authHandler: [
      ...(privateKey ? ['publickey'] : []),
      ...(agent ? ['agent'] : []),
      ...(spec.password ? ['password', 'keyboard-interactive'] : []),
    ],
    // Called with the raw key blob (no hostHash). Returning undefined makes ssh2 wait for verify().
    hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) => {
      presented = key;
      verifyHostKeyInFile(spec.knownHosts, spec.address, spec.port, key, accept).then(
        (v) => {
          verdict = v;
          verify(v.kind !== 'changed');
        },
        (err) => {
          verifyError = err;
          verify(false);
        },
      );
    }) as never,
  });
  const client = ssh.connection as unknown as Ssh2Client;
  skipHostKeysProof(client);
  // SSH is small request/reply packets both ways: Nagle's algorithm plus the peer's delayed ACK
  // would hold some back 40 ms (the handshake's service request, then every command: ~45 ms
  // instead of ~6 ms). From the moment the socket connects.
  client.once('connect', () => client.setNoDelay(true));
  // node-ssh drops its own error listener once ready; without one, a later error would crash the process.
  let lastError: Ssh2Error | undefined;
  client.on('error', (err: Ssh2Error) => {
    lastError = err;
  });
  const onAbort = () => client.destroy();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await connecting;
  } catch (err) {
    client.destroy();
    await jump?.close();
    if (opts.signal?.aborted) throw new UnreachableError(host.name, `${label}: interrupted`);
    if (verdict?.kind === 'changed') {
      throw new HostKeyChangedError(host.name, spec.address, spec.port, verdict.stored, verdict.presented, opts.inventoryPath);
    }
    if (verifyError) {
      throw new UnreachableError(
        host.name,
        `${label}: cannot verify the host key with known_hosts ${spec.knownHosts}: ${(verifyError as Error).message}`,
      );
    }
    const e = (lastError ?? err) as Ssh2Error;
    throw new ConnectAttemptError(
      classifyConnectError(e, { user: spec.user, connectTimeoutMs: spec.connectTimeoutMs, triedMethods }),
    );
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  const v = verdict as HostKeyVerdict | undefined;
  if (presented && v && (v.kind === 'learned' || v.kind === 'replaced')) {
    opts.onHostKey?.({ host: host.name, kind: v.kind, fingerprint: hostKeyFingerprint(presented), knownHosts: spec.knownHosts });
  }
  return new SshConnection(host, ssh, client, opts.signal, jump, { intervalMs: keepaliveInterval, countMax: 3 });
}

/**
 * OpenSSH's server announces all its host keys after authentication (`hostkeys-00@openssh.com`, for
 * UpdateHostKeys); ssh2 then always asks it to prove them, so the server signs with every host key
 * (RSA included) and the client verifies each, on every connect, for an event rha never listens
 * to. rha checks the one negotiated key against known_hosts and records no others, so it answers the
 * announcement as OpenSSH's client does without UpdateHostKeys: it ignores it. About 6 ms of CPU
 * per connect on each side here (issue 17). Private to ssh2 (pinned): left alone if not found.
 */
export function skipHostKeysProof(client: Ssh2Client): void {
  const handlers = client._protocol?._handlers;
  const original = handlers?.GLOBAL_REQUEST;
  if (!handlers || typeof original !== 'function') return;
  handlers.GLOBAL_REQUEST = (proto: { requestSuccess?(): void }, name: string, wantReply: boolean, data: unknown) => {
    if (name !== 'hostkeys-00@openssh.com') return (original as (...a: unknown[]) => unknown)(proto, name, wantReply, data);
    if (wantReply) proto.requestSuccess?.();
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
