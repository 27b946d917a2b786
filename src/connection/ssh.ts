/**
 * One open SSH connection per host (node-ssh over ssh2), many commands at once over channels and
 * long-lived shells; a lost link turns every running and later exec into an UnreachableError.
 * Opening it (host keys, retries, bastions) is connect.ts's.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { NodeSSH } from 'node-ssh';
import { displayCommand, type Command, type CommandResult } from '../core/command.js';
import { trace, tracing } from '../core/trace.js';
import { UnreachableError, type Connection, type HostSpec } from '../core/types.js';
import { hostLabel } from './errors.js';
import { buildRemoteInvocation, buildShellBody, explainBecomeFailure, killGroupArgv, type RemoteInvocation } from './remote-command.js';
import { RemoteShell, type FramedStream, type SudoStart } from './shell.js';
import { ShellPool, Slots } from './slots.js';
import type { Ssh2Channel, Ssh2Client } from './ssh2-types.js';

/**
 * OpenSSH's default MaxSessions is 10 channels per connection; beyond that, opening a channel
 * fails. Queue above this many so that "20 commands at once" just works.
 */
const MAX_CHANNELS = 8;
/**
 * Long-lived shells per connection (see shell.ts): each holds one of the MAX_CHANNELS slots while
 * open. Two cover the runner's one-command-at-a-time per host plus a concurrent helper command.
 */
const MAX_SHELLS = 2;
const CHUNK = 64 * 1024;

/**
 * Dead-link detection: a keepalive (an SSH global request) every `intervalMs` while a command runs
 * on the connection; more than `countMax` unanswered in a row end the link ("Keepalive timeout"),
 * so that the running commands fail as unreachable instead of hanging.
 */
export interface KeepaliveOptions {
  intervalMs: number;
  countMax: number;
}

/** Channel opens refused by the server are retried this many times (25 ms, 50 ms, ... apart). */
const OPEN_RETRIES = 6;

export class SshConnection implements Connection {
  readonly hostName: string;
  private readonly label: string;
  private lostReason: string | undefined;
  private readonly inflight = new Set<(err: Error) => void>();
  private readonly slots = new Slots(MAX_CHANNELS);
  /** Long-lived shells as the login user, and as root through sudo (non-root login, become). */
  private readonly pools = { plain: new ShellPool(), become: new ShellPool() };
  /**
   * Set once sudo started a command on an exec channel: only then is a root shell opened through
   * it, so a wrong or missing password is never tried twice (lockout policies count attempts).
   */
  private becomeVerified = false;
  /** The keepalive timer: running only while a command is in flight (see KeepaliveOptions). */
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private keepaliveUnanswered = 0;

  constructor(
    private host: HostSpec,
    private readonly ssh: NodeSSH,
    private readonly client: Ssh2Client,
    private signal?: AbortSignal,
    /** The bastion connection this one travels through; closed with it. */
    private readonly jump?: SshConnection,
    /**
     * Keepalives while commands run. Not ssh2's own, which pings every connection all the time: a
     * run of 1000 hosts (or a keeper holding 1000 idle connections) sent hundreds a second, each
     * waking the host's sshd, while the runner mostly waits on other hosts (issue 17).
     */
    private readonly keepalive?: KeepaliveOptions,
  ) {
    this.hostName = host.name;
    this.label = hostLabel(host.name, host.connection.address, host.connection.port);
    let lastError: Error | undefined;
    client.on('error', (err: Error) => {
      lastError = err;
    });
    const lost = () => {
      if (this.lostReason) return;
      this.lostReason = lastError ? `connection lost (${lastError.message})` : 'connection lost';
      const err = new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`);
      for (const fail of this.inflight) fail(err);
      this.inflight.clear();
      this.stopKeepalive();
      void this.jump?.close();
    };
    client.on('end', lost);
    client.on('close', lost);
  }

  /** Whether the link is still up (false once lost or closed). */
  get alive(): boolean {
    return this.lostReason === undefined;
  }

  /**
   * Takes the connection over for another run (the keeper, src/cli/keeper.ts): that run's host
   * (the same connection settings: the keeper's key says so) and its Ctrl-C.
   */
  adopt(host: HostSpec, signal: AbortSignal | undefined): void {
    this.host = host;
    this.signal = signal;
    const j = host.connection.jump;
    if (this.jump && j) this.jump.adopt({ name: j.name, connection: j.connection, groups: [], vars: {} }, signal);
  }

  /**
   * Closes the root shells and forgets that sudo worked, before the connection is kept for a later
   * run: each run asks sudo again with its own become password, and finds out as a run in its own
   * process would that the password changed or sudo went away. The login user's shells stay.
   */
  forgetBecome(): void {
    for (const shell of [...this.pools.become.shells]) shell.close();
    this.pools.become.failures = 0;
    this.pools.become.unsupported = false;
    this.becomeVerified = false;
  }

  /**
   * Whether the server answers within `timeoutMs`: one SSH global request and its reply, no
   * channel, nothing run on the host. A link that died quietly (host gone, cable pulled) gives
   * false instead of a command that hangs. False too when this ssh2 has no such request.
   */
  ping(timeoutMs: number): Promise<boolean> {
    if (!this.alive) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
      const sent = this.sendPing(() => {
        clearTimeout(timer);
        resolve(this.alive);
      });
      if (!sent) {
        clearTimeout(timer);
        resolve(false);
      }
    });
  }

  /** Sends one keepalive request; `onReply` runs when the server answers. False when it cannot be sent. */
  private sendPing(onReply: () => void): boolean {
    const { _protocol: proto, _callbacks: replies } = this.client;
    if (typeof proto?.ping !== 'function' || !Array.isArray(replies)) return false;
    // Replies to global requests come back in order: ours are matched against ssh2's queue.
    replies.push(onReply);
    try {
      proto.ping();
      return true;
    } catch {
      replies.pop();
      return false;
    }
  }

  /** A command started: keepalives run from now while any command is in flight. */
  private trackCommand(fail: (err: Error) => void): void {
    this.inflight.add(fail);
    if (this.keepaliveTimer || !this.keepalive || this.lostReason) return;
    this.keepaliveUnanswered = 0;
    const { intervalMs, countMax } = this.keepalive;
    this.keepaliveTimer = setInterval(() => {
      if (this.inflight.size === 0 || this.lostReason) return this.stopKeepalive();
      if (++this.keepaliveUnanswered > countMax) {
        this.stopKeepalive();
        // As ssh2's own keepalive ends a link: an error saying why, then the socket destroyed.
        const err = Object.assign(new Error('Keepalive timeout'), { level: 'client-timeout' });
        this.client.emit('error', err);
        this.client.destroy();
        return;
      }
      this.sendPing(() => {
        this.keepaliveUnanswered = 0;
      });
    }, intervalMs);
    this.keepaliveTimer.unref();
  }

  private untrackCommand(fail: (err: Error) => void): void {
    this.inflight.delete(fail);
    if (this.inflight.size === 0) this.stopKeepalive();
  }

  private stopKeepalive(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  /** The command's result; rejects only with UnreachableError when the link is gone. */
  exec(cmd: Command): Promise<CommandResult> {
    if (!tracing) return this.execInternal(cmd, {});
    return this.execInternal(cmd, {}).then((r) => {
      trace(this.hostName, r.display, Date.now() - r.durationMs, cmd.stdin === undefined ? 'cmd' : 'stdin');
      return r;
    });
  }

  /** Like exec, but runs even after the run was interrupted: cleanup such as releasing the run lock (src/lock). */
  execCleanup(cmd: Command): Promise<CommandResult> {
    return this.execInternal(cmd, { ignoreAbort: true });
  }

  private async execInternal(cmd: Command, internal: ExecInternals): Promise<CommandResult> {
    const display = displayCommand(cmd);
    const started = Date.now();
    if (this.lostReason) throw new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`);
    const spec = this.host.connection;
    const becomePassword = spec.becomePassword?.value;
    if (becomePassword !== undefined && /[\n\0]/.test(becomePassword)) {
      throw new Error(`${this.hostName}: become_password contains a newline`);
    }
    const nonce = randomBytes(8).toString('hex');
    const inv = buildRemoteInvocation(cmd, {
      loginUser: spec.user,
      hasBecomePassword: becomePassword !== undefined,
      nonce,
    });
    // Commands without stdin or secrets run in a long-lived shell when one is free: as the login
    // user, or (become) as root in a shell sudo started once, after sudo proved to work here.
    if (cmd.stdin === undefined && inv.secretPreamble === '' && !internal.bypassSlots && (!inv.become || this.becomeVerified)) {
      const shell = await this.takeShell(inv.become !== undefined, becomePassword);
      if (shell) {
        try {
          if (!internal.ignoreAbort && this.signal?.aborted) return interruptedResult(display, started);
          if (this.lostReason) throw new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`);
          return await this.runInShell(shell, cmd, inv, nonce, display, started, internal);
        } finally {
          shell.release();
        }
      }
    }
    // Kill commands skip the queue: a full queue of timed-out commands must still be killable.
    const release = internal.bypassSlots ? () => undefined : await this.slots.acquire();
    try {
      if (!internal.ignoreAbort && this.signal?.aborted) return interruptedResult(display, started);
      if (this.lostReason) throw new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`);
      return await this.run(cmd, inv, display, started, becomePassword, internal);
    } finally {
      release();
    }
  }

  private run(
    cmd: Command,
    inv: RemoteInvocation,
    display: string,
    started: number,
    becomePassword: string | undefined,
    internal: ExecInternals,
  ): Promise<CommandResult> {
    return new Promise<CommandResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      // stderr is held back until the PID line (and, with become, sudo's "started" marker) is seen:
      // those lines and sudo's prompts are ours, not the command's output.
      let held = Buffer.alloc(0);
      let becomeWaiting = inv.become !== undefined;
      let promptsSeen = 0;
      let passwordRejected = false;
      let code: number | null | undefined;
      let signal: string | null = null;
      let channelClosed = false;
      let channel: Ssh2Channel | undefined;
      // A command that outlives its kill: close the channel, and do not wait forever to report.
      const w = this.watch(cmd, internal, reject, () =>
        w.timers.push(
          setTimeout(() => {
            try {
              channel?.close();
            } catch {
              /* already closed */
            }
          }, 2500),
          setTimeout(finish, 4000),
        ),
      );
      const finish = () => {
        if (!w.end()) return;
        let stderr: string;
        const heldText = held.toString('utf8');
        if (becomeWaiting && w.remotePid !== undefined && !w.timedOut && !w.interrupted) {
          const sudoText = stripMarkers(heldText, inv);
          const why = explainBecomeFailure(sudoText, code ?? null, {
            hostName: this.hostName,
            user: this.host.connection.user,
            passwordRejected,
            hasBecomePassword: becomePassword !== undefined,
          });
          stderr = [why, sudoText.trim()].filter(Boolean).join('\n') + '\n';
        } else {
          // Held text that never got released: the login shell's own complaint, or a killed command.
          stderr = stripMarkers(heldText, inv) + Buffer.concat(err).toString('utf8');
        }
        if (w.interrupted) stderr += 'rha: interrupted\n';
        const ok = !w.timedOut && !w.interrupted && code === 0 && !becomeWaiting && w.remotePid !== undefined;
        resolve({
          display,
          code: w.timedOut || w.interrupted ? null : (code ?? null),
          signal,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr,
          ok,
          durationMs: Date.now() - started,
          ...(w.timedOut ? { timedOut: true } : {}),
        });
      };

      const writeInput = async (ch: Ssh2Channel) => {
        const parts: Buffer[] = [Buffer.from(inv.secretPreamble, 'utf8')];
        if (cmd.stdin !== undefined) parts.push(typeof cmd.stdin === 'string' ? Buffer.from(cmd.stdin, 'utf8') : cmd.stdin);
        for (const part of parts) {
          for (let off = 0; off < part.length; off += CHUNK) {
            if (channelClosed || w.settled) return;
            // Respect the SSH window: wait for 'drain' rather than buffering megabytes in memory.
            if (!ch.write(part.subarray(off, off + CHUNK))) await drained(ch);
          }
        }
        if (!channelClosed && !w.settled) ch.end();
      };
      const startInput = (ch: Ssh2Channel) => {
        writeInput(ch).catch(() => {
          /* the channel closed under us: 'close' reports the result */
        });
      };

      const onStderr = (ch: Ssh2Channel, b: Buffer) => {
        if (w.remotePid !== undefined && !becomeWaiting) {
          err.push(b);
          return;
        }
        held = Buffer.concat([held, b]);
        // latin1 maps bytes 1:1 to characters, so string indexes are byte offsets below.
        let text = held.toString('latin1');
        if (w.remotePid === undefined) {
          const at = text.indexOf(inv.pidMarker);
          const end = at >= 0 ? text.indexOf(']\n', at) : -1;
          if (end < 0) return;
          w.pidKnown(Number(text.slice(at + inv.pidMarker.length, end)));
          held = Buffer.concat([held.subarray(0, at), held.subarray(end + 2)]);
          text = held.toString('latin1');
        }
        if (becomeWaiting) {
          const become = inv.become!;
          if (become.promptMarker) {
            const prompts = text.split(become.promptMarker).length - 1;
            while (promptsSeen < prompts) {
              promptsSeen++;
              if (promptsSeen === 1 && becomePassword !== undefined) ch.write(becomePassword + '\n');
              else {
                // sudo asks again: the password was wrong. EOF makes it give up instead of hanging.
                passwordRejected = true;
                ch.end();
              }
            }
          }
          const markerAt = text.indexOf(become.startedMarker + '\n');
          if (markerAt < 0) return;
          becomeWaiting = false;
          this.becomeVerified = true;
          // Before the marker, only sudo talks (prompt, lecture, warnings): not the command's output.
          held = held.subarray(markerAt + become.startedMarker.length + 1);
          startInput(ch);
        }
        if (held.length) err.push(held);
        held = Buffer.alloc(0);
      };

      const open = (attempt: number) => this.client.exec(inv.line, {}, (openErr, ch) => {
        if (w.settled) {
          ch?.close();
          return;
        }
        if (openErr) {
          if (this.lostReason) return w.failLink(new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`));
          // sshd frees a session slot a moment after the channel closed on our side: under load a
          // new channel can be refused (MaxSessions) although ours are below it. Try again shortly.
          if (attempt < OPEN_RETRIES) {
            w.timers.push(setTimeout(() => open(attempt + 1), 25 * 2 ** attempt));
            return;
          }
          w.end();
          return resolve({
            display,
            code: null,
            signal: null,
            stdout: '',
            stderr: `rha: could not open an SSH channel on ${this.hostName}: ${openErr.message}\n`,
            ok: false,
            durationMs: Date.now() - started,
          });
        }
        channel = ch;
        ch.on('data', (b: Buffer) => out.push(b));
        ch.stderr.on('data', (b: Buffer) => onStderr(ch, b));
        ch.on('exit', (c: number | null, s?: string) => {
          code = c;
          signal = s ?? null;
        });
        ch.on('error', () => {
          /* e.g. a write after the remote side closed: the exit status tells what happened */
        });
        ch.on('close', () => {
          channelClosed = true;
          // The client's 'close' (link lost) fires before its channels close: no result then.
          setImmediate(() =>
            this.lostReason && code === undefined
              ? w.failLink(new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`))
              : finish(),
          );
        });
        if (!inv.become) startInput(ch);
      });
      open(0);
    });
  }

  /** An idle shell reserved for the caller, a new one when a slot is free, or undefined (use exec). */
  private async takeShell(become: boolean, becomePassword: string | undefined): Promise<RemoteShell | undefined> {
    const pool = become ? this.pools.become : this.pools.plain;
    const idle = pool.shells.find((s) => s.idle);
    if (idle) {
      idle.reserve();
      return idle;
    }
    if (pool.unsupported || pool.shells.length + pool.opening >= MAX_SHELLS) return undefined;
    const release = this.slots.tryAcquire();
    if (!release) return undefined;
    pool.opening++;
    let shell: RemoteShell | undefined;
    try {
      const nonce = randomBytes(8).toString('hex');
      let sudo: SudoStart | undefined;
      if (become) {
        // The same sudo line an exec channel uses, running `sh` itself as root.
        const inv = buildRemoteInvocation({ argv: ['sh'], become: true }, { loginUser: this.host.connection.user, hasBecomePassword: becomePassword !== undefined, nonce });
        sudo = { line: inv.line, startedMarker: inv.become!.startedMarker, promptMarker: inv.become!.promptMarker, password: becomePassword };
      }
      shell = await RemoteShell.open(this.client, nonce, sudo);
    } finally {
      pool.opening--;
    }
    if (!shell || this.lostReason) {
      release();
      shell?.close();
      // A refused channel (sshd busy) is not a verdict on the host; failures in a row are.
      if (shell === undefined && !this.lostReason) pool.unsupported = pool.failures++ >= 2;
      return undefined;
    }
    pool.shells.push(shell);
    shell.onClose(() => {
      release();
      const at = pool.shells.indexOf(shell!);
      if (at >= 0) pool.shells.splice(at, 1);
    });
    return shell; // open() leaves it reserved for its first caller
  }

  /**
   * What a running command needs by either transport (exec channel or shell): its timers; the
   * timeout and Ctrl-C that kill it; the link's loss that fails it; the kill of its process group
   * from a second channel once its PID is known (see RemoteInvocation.pidMarker). `onKill` adds what
   * the transport does about a command that outlives its kill.
   */
  private watch(cmd: Command, internal: ExecInternals, reject: (e: Error) => void, onKill: () => void): CommandWatch {
    const abortSignal = internal.ignoreAbort ? undefined : this.signal;
    let killing = false;
    let killSent = false;
    const sendKill = () => {
      if (killSent || w.remotePid === undefined) return;
      killSent = true;
      this.execInternal({ argv: killGroupArgv(w.remotePid), become: cmd.become, timeoutMs: 15_000 }, {
        bypassSlots: true,
        ignoreAbort: true,
      }).catch(() => undefined);
    };
    const onAbort = () => {
      w.interrupted = true;
      w.kill();
    };
    const w: CommandWatch = {
      timedOut: false,
      interrupted: false,
      settled: false,
      remotePid: undefined,
      timers: [],
      end: () => {
        if (w.settled) return false;
        w.settled = true;
        w.timers.forEach(clearTimeout);
        this.untrackCommand(w.failLink);
        abortSignal?.removeEventListener('abort', onAbort);
        return true;
      },
      failLink: (e) => {
        if (w.end()) reject(e);
      },
      pidKnown: (pid) => {
        w.remotePid = pid;
        if (killing) sendKill();
      },
      kill: () => {
        if (killing) return;
        killing = true;
        sendKill();
        onKill();
      },
    };
    this.trackCommand(w.failLink);
    abortSignal?.addEventListener('abort', onAbort, { once: true });
    if (cmd.timeoutMs && cmd.timeoutMs > 0) {
      w.timers.push(
        setTimeout(() => {
          w.timedOut = true;
          w.kill();
        }, cmd.timeoutMs),
      );
    }
    return w;
  }

  /** One command through a framed shell; the same result an exec channel would give. */
  private runInShell(
    shell: RemoteShell,
    cmd: Command,
    inv: RemoteInvocation,
    nonce: string,
    display: string,
    started: number,
    internal: ExecInternals,
  ): Promise<CommandResult> {
    return new Promise<CommandResult>((resolve, reject) => {
      // A command that outlives its kill would hold the shell: drop the shell and report now.
      const w = this.watch(cmd, internal, reject, () => w.timers.push(setTimeout(() => shell.close(), 4000)));
      const settle = (code: number | null, stdout: string, stderr: string) => {
        if (!w.end()) return;
        if (w.interrupted) stderr += 'rha: interrupted\n';
        resolve({
          display,
          code: w.timedOut || w.interrupted ? null : code,
          signal: null,
          stdout,
          stderr,
          ok: !w.timedOut && !w.interrupted && code === 0 && w.remotePid !== undefined,
          durationMs: Date.now() - started,
          ...(w.timedOut ? { timedOut: true } : {}),
        });
      };
      const onStderr = (err: FramedStream) => {
        if (w.remotePid !== undefined) return;
        const content = err.content;
        const text = content.toString('latin1');
        const at = text.indexOf(inv.pidMarker);
        const end = at >= 0 ? text.indexOf(']\n', at) : -1;
        if (end < 0) return;
        err.setContent(Buffer.concat([content.subarray(0, at), content.subarray(end + 2)]));
        w.pidKnown(Number(text.slice(at + inv.pidMarker.length, end)));
      };
      shell.run(buildShellBody(cmd, inv.pidMarker), nonce, onStderr).then(
        (o) => {
          const code = /^\d+$/.test(o.value) ? Number(o.value) : null;
          settle(code, o.stdout, o.stderr);
        },
        () =>
          // The client's 'close' (link lost) may come just after the channel's: let it speak first.
          setImmediate(() => {
            if (this.lostReason) return w.failLink(new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`));
            settle(null, '', w.timedOut || w.interrupted ? '' : `rha: the remote shell on ${this.hostName} ended while running the command\n`);
          }),
      );
    });
  }

  /** A TCP stream from the remote host to `address:port` (this host as a jump host); rejects when the host cannot open it. */
  forwardOut(address: string, port: number): Promise<Duplex> {
    if (this.lostReason) return Promise.reject(new Error(this.lostReason));
    return new Promise((resolve, reject) => {
      try {
        this.client.forwardOut('127.0.0.1', 0, address, port, (err, stream) => (err ? reject(err) : resolve(stream)));
      } catch (e) {
        reject(e as Error);
      }
    });
  }

  /** Closes the connection (and the jump host's under it); running commands fail as unreachable. */
  async close(): Promise<void> {
    try {
      await this.closeOwn();
    } finally {
      await this.jump?.close();
    }
  }

  private async closeOwn(): Promise<void> {
    const alreadyGone = this.lostReason !== undefined;
    if (!this.lostReason) this.lostReason = 'connection closed';
    const err = new UnreachableError(this.hostName, `${this.label}: ${this.lostReason}`);
    for (const fail of this.inflight) fail(err);
    this.inflight.clear();
    this.stopKeepalive();
    if (alreadyGone) {
      this.ssh.dispose();
      return;
    }
    const closed = new Promise<void>((resolve) => {
      this.client.once('close', () => resolve());
      setTimeout(resolve, 2000).unref();
    });
    try {
      this.ssh.dispose();
    } catch {
      /* already gone */
    }
    await closed;
  }
}

/** One running command's shared state (SshConnection.watch). */
interface CommandWatch {
  timedOut: boolean;
  interrupted: boolean;
  /** Set once the command has a result (or failed with the link): later events are ignored. */
  settled: boolean;
  remotePid: number | undefined;
  timers: NodeJS.Timeout[];
  /** Settles: clears timers and listeners; false when it was already settled. */
  end(): boolean;
  /** Rejects with the link's loss, unless already settled. */
  failLink(e: Error): void;
  /** The command's PID arrived; a kill asked for before it is sent now. */
  pidKnown(pid: number): void;
  kill(): void;
}

interface ExecInternals {
  bypassSlots?: boolean;
  ignoreAbort?: boolean;
}

function stripMarkers(text: string, inv: RemoteInvocation): string {
  let t = text;
  if (inv.become?.promptMarker) t = t.split(inv.become.promptMarker).join('');
  if (inv.become) t = t.split(inv.become.startedMarker).join('');
  return t;
}

function interruptedResult(display: string, started: number): CommandResult {
  return { display, code: null, signal: null, stdout: '', stderr: 'rha: interrupted\n', ok: false, durationMs: Date.now() - started };
}

function drained(ch: Ssh2Channel): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      ch.removeListener('drain', done);
      ch.removeListener('close', done);
      resolve();
    };
    ch.on('drain', done);
    ch.on('close', done);
  });
}
