/**
 * A long-lived `sh` on the host that runs rha's commands one after another, framed by markers.
 *
 * Why: every SSH exec channel costs sshd a new session (fork, PAM, login shell), about 10-30 ms of
 * the host's CPU and one round trip more; a no-op run sends hundreds of small commands. Through one
 * shell per connection slot, a command costs a fork of the shell plus one round trip.
 *
 * Each command is sent as one line to the shell's stdin:
 *   printf BEGIN; printf BEGIN >&3; BODY; printf END"$?"; printf END >&3
 * - fd 3 is the channel's stderr; the shell's own stderr is /dev/null, so that its job reports
 *   ("Terminated" when a timeout killed the command) never mix with the command's stderr.
 * - BODY (remote-command.ts buildShellBody) runs the command under `setsid` in a background
 *   subshell, prints its PID and waits: the command leads its own session and process group,
 *   exactly what sshd makes an exec channel, so a timeout kills its group from another channel,
 *   and daemons it starts are not tied to the shell.
 * - Its stdin is /dev/null: the shell's own stdin carries rha's next commands. Commands with stdin,
 *   secrets or become do not come here (see SshConnection): they keep their own exec channel.
 * - The markers carry a random nonce per command, so output can never be mistaken for them. Output
 *   before BEGIN (a daemon a previous command left writing, a login banner) is dropped.
 */
import type { Ssh2Channel, Ssh2Client } from './ssh2-types.js';

/** What one framed command produced; `value` is what followed the stdout end marker (the exit status). */
export interface FramedOutput {
  stdout: string;
  stderr: string;
  value: string;
}

/** Collects one stream's bytes between a begin and an end marker (pure; fed chunk by chunk). */
export class FramedStream {
  private phase: 'before' | 'in' | 'tail' | 'done' = 'before';
  private pending: Buffer = Buffer.alloc(0);
  private readonly parts: Buffer[] = [];
  /** Text between the end marker and the next `]` (stdout: the exit status). */
  value = '';

  constructor(
    private readonly begin: Buffer,
    private readonly end: Buffer,
  ) {}

  get done(): boolean {
    return this.phase === 'done';
  }

  /** The bytes seen between the markers so far (including a tail held back to find the end marker). */
  get content(): Buffer {
    return Buffer.concat(this.phase === 'in' ? [...this.parts, this.pending] : this.parts);
  }

  /** Replaces what was collected (the caller took a marker of its own out of it). */
  setContent(b: Buffer): void {
    this.parts.length = 0;
    if (this.phase === 'in') {
      // Searched again for the end marker with the next chunk.
      this.pending = Buffer.from(b);
    } else if (b.length) {
      this.parts.push(b);
    }
  }

  /** Feeds a chunk; returns true once the end marker and its value are complete. */
  feed(chunk: Buffer): boolean {
    if (this.phase === 'done') return true;
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    if (this.phase === 'before') {
      const at = buf.indexOf(this.begin);
      if (at < 0) {
        // Keep just enough to find a marker split across two chunks.
        this.pending = Buffer.from(buf.subarray(Math.max(0, buf.length - this.begin.length + 1)));
        return false;
      }
      buf = buf.subarray(at + this.begin.length);
      this.phase = 'in';
    }
    if (this.phase === 'in') {
      const at = buf.indexOf(this.end);
      if (at < 0) {
        const keep = Math.min(buf.length, this.end.length - 1);
        if (buf.length > keep) this.parts.push(Buffer.from(buf.subarray(0, buf.length - keep)));
        this.pending = Buffer.from(buf.subarray(buf.length - keep));
        return false;
      }
      if (at > 0) this.parts.push(Buffer.from(buf.subarray(0, at)));
      buf = buf.subarray(at + this.end.length);
      this.phase = 'tail';
    }
    const close = buf.indexOf(0x5d); // ']'
    if (close < 0) {
      this.pending = Buffer.from(buf);
      return false;
    }
    this.value = buf.subarray(0, close).toString('latin1');
    this.phase = 'done';
    return true;
  }
}

/** The shell line for one framed command (`body` runs between the markers). */
export function framedLine(body: string, nonce: string): string {
  const begin = `[rha-begin:${nonce}]`;
  const end = `[rha-end:${nonce}:`;
  return (
    `printf '%s\\n' '${begin}'; printf '%s\\n' '${begin}' >&3; ` +
    `${body}; ` +
    `printf '%s%s]\\n' '${end}' "$?"; printf '%s]\\n' '${end}' >&3\n`
  );
}

/** The markers framedLine prints, as FramedStreams for stdout and stderr. */
export function framedStreams(nonce: string): { out: FramedStream; err: FramedStream } {
  const begin = Buffer.from(`[rha-begin:${nonce}]\n`);
  const end = Buffer.from(`[rha-end:${nonce}:`);
  return { out: new FramedStream(begin, end), err: new FramedStream(begin, end) };
}

interface Running {
  out: FramedStream;
  err: FramedStream;
  onStderr?: (err: FramedStream) => void;
  resolve: (r: FramedOutput) => void;
  reject: (e: Error) => void;
}

/**
 * How a root shell is started through sudo (non-root login, become): `line` runs sudo, which prints
 * `startedMarker` on stderr once it runs the shell; with a password, sudo's prompt is
 * `promptMarker` and `password` answers it once (a second prompt means it was refused).
 */
export interface SudoStart {
  line: string;
  startedMarker: string;
  promptMarker?: string;
  password?: string;
}

/** Waits until sudo started the shell (true), or refused, exited or took 15 s (false). */
function sudoStarted(channel: Ssh2Channel, sudo: SudoStart): Promise<boolean> {
  return new Promise((resolve) => {
    let seen = '';
    let prompts = 0;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      channel.stderr.removeListener('data', onErr);
      channel.removeListener('close', onClose);
      resolve(ok);
    };
    const onErr = (b: Buffer) => {
      seen += b.toString('latin1');
      if (sudo.promptMarker) {
        const n = seen.split(sudo.promptMarker).length - 1;
        while (prompts < n) {
          prompts++;
          if (prompts === 1 && sudo.password !== undefined) channel.write(sudo.password + '\n');
          else return done(false); // asked again: the password was refused
        }
      }
      if (seen.includes(sudo.startedMarker + '\n')) done(true);
    };
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), 15_000);
    channel.stderr.on('data', onErr);
    channel.on('close', onClose);
  });
}

/** Thrown (to the one command running) when the shell's channel closed under it. */
export class ShellEndedError extends Error {}

export class RemoteShell {
  private running: Running | undefined;
  private closed = false;
  private reserved = false;
  private readonly closeListeners: Array<() => void> = [];

  private constructor(private readonly channel: Ssh2Channel) {
    channel.on('data', (b: Buffer) => this.onData('out', b));
    channel.stderr.on('data', (b: Buffer) => this.onData('err', b));
    channel.on('error', () => {
      /* 'close' follows */
    });
    channel.on('close', () => this.ended());
    // The shell's exit: the channel itself may stay open while an orphan holds its output.
    channel.on('exit', () => this.ended());
  }

  /** Once: the running command fails, the owner is told. */
  private ended(): void {
    if (this.closed) return;
    this.closed = true;
    const r = this.running;
    this.running = undefined;
    r?.reject(new ShellEndedError('the remote shell ended'));
    for (const l of this.closeListeners) l();
  }

  /**
   * Starts `sh` on an exec channel and checks it can frame commands (`setsid` present); resolves
   * undefined when the host cannot host one (then every command keeps its own exec channel).
   */
  static async open(client: Ssh2Client, nonce: string, sudo?: SudoStart): Promise<RemoteShell | undefined> {
    const channel = await new Promise<Ssh2Channel | undefined>((resolve) => {
      try {
        client.exec(sudo ? sudo.line : 'exec sh', {}, (err, ch) => resolve(err ? undefined : ch));
      } catch {
        resolve(undefined);
      }
    });
    if (!channel) return undefined;
    const shell = new RemoteShell(channel);
    shell.reserved = true;
    if (sudo && !(await sudoStarted(channel, sudo))) {
      shell.close();
      return undefined;
    }
    channel.write('exec 3>&2 2>/dev/null\n');
    try {
      const probe = await shell.run('command -v setsid >/dev/null 2>&1', nonce);
      if (probe.value === '0') return shell;
    } catch {
      /* closed: not usable */
    }
    shell.close();
    return undefined;
  }

  /** Free for a command: open and not reserved. */
  get idle(): boolean {
    return !this.closed && !this.reserved;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Marks the shell taken by one caller until release(). */
  reserve(): void {
    this.reserved = true;
  }

  release(): void {
    this.reserved = false;
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /**
   * Runs `body` framed by markers; `onStderr` sees stderr as it arrives (to read a PID marker early).
   * Rejects with ShellEndedError when the channel closes first.
   */
  run(body: string, nonce: string, onStderr?: (err: FramedStream) => void): Promise<FramedOutput> {
    if (this.closed) return Promise.reject(new ShellEndedError('the remote shell ended'));
    if (this.running) return Promise.reject(new Error('remote shell busy'));
    return new Promise<FramedOutput>((resolve, reject) => {
      const { out, err } = framedStreams(nonce);
      this.running = { out, err, onStderr, resolve, reject };
      this.channel.write(framedLine(body, nonce));
    });
  }

  private onData(which: 'out' | 'err', b: Buffer): void {
    const r = this.running;
    if (!r) return; // between commands: nobody's output
    if (which === 'out') r.out.feed(b);
    else {
      r.err.feed(b);
      r.onStderr?.(r.err);
    }
    if (r.out.done && r.err.done) {
      this.running = undefined;
      r.resolve({ stdout: r.out.content.toString('utf8'), stderr: r.err.content.toString('utf8'), value: r.out.value });
    }
  }

  /**
   * Ends the shell (EOF on its stdin, then the channel). A running command fails at once: sshd
   * confirms the channel's close only when the command's output ends, which may be never.
   */
  close(): void {
    if (this.closed) return;
    this.ended();
    try {
      this.channel.end();
      this.channel.close();
    } catch {
      /* already gone */
    }
  }
}
