/**
 * Running local commands for the lab: argv in, CommandResult out (a failed command is a result).
 * `must` is the one place that turns a failure into a LabError, for steps the lab cannot go on without.
 */
import { spawn } from 'node:child_process';
import { describeFailure, quoteArgv, type CommandResult } from '../core/command.js';

/** An error of the lab itself (setup, cache, missing prerequisites): its message is shown as is. */
export class LabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabError';
  }
}

export interface RunOptions {
  stdin?: string | Buffer;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Receives output lines as they come (long steps such as debootstrap). */
  onLine?: (line: string) => void;
}

/** A clean environment for commands that run inside lab hosts or chroots. */
export const HOST_ENV: NodeJS.ProcessEnv = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
  DEBIAN_FRONTEND: 'noninteractive',
};

/** Runs argv locally; resolves with its result, never rejects for a non-zero exit. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const started = Date.now();
  const display = quoteArgv(argv);
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const child = spawn(argv[0], argv.slice(1), {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    let pending = '';
    const feed = (chunk: string) => {
      if (!opts.onLine) return;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      feed(d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      feed(d);
    });
    child.stdin.on('error', () => undefined); // the command may exit without reading its input
    child.stdin.end(opts.stdin ?? '');
    const finish = (code: number | null, signal: string | null, extraErr = '') => {
      if (timer) clearTimeout(timer);
      if (pending && opts.onLine) opts.onLine(pending);
      resolve({
        display,
        code,
        signal,
        stdout,
        stderr: stderr + extraErr,
        ok: code === 0 && !timedOut,
        durationMs: Date.now() - started,
        timedOut,
      });
    };
    child.on('error', (e) => finish(127, null, `${e.message}\n`));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

/** Runs argv and returns its stdout; throws a LabError saying what ran and why it failed. */
export async function must(argv: readonly string[], opts: RunOptions & { what?: string } = {}): Promise<string> {
  const r = await run(argv, opts);
  if (!r.ok) throw new LabError(`${opts.what ? `${opts.what}: ` : ''}${describeFailure(r)}`);
  return r.stdout;
}

/** Whether a program is on PATH. */
export async function have(program: string): Promise<boolean> {
  return (await run(['sh', '-c', 'command -v "$1"', 'sh', program])).ok;
}
