/**
 * Commands are data, not strings: an argv array quoted by one function at the edge,
 * with secrets marked so that every printer shows `***`.
 */

/** A value that must never be printed, logged or put on a remote command line. */
export class Secret {
  constructor(readonly value: string) {}
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
  /** util.inspect hook, so console.log/vitest diffs never show the value either. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret(***)';
  }
}

export type Arg = string | Secret;

/**
 * A command to run on a host. Secrets may appear only in `env` (they are passed over stdin,
 * never on the command line, so they do not show in `ps` on the host, but the command and its
 * children then have them in their environment) or in `stdin`, which no printer shows: a script
 * that reads a secret from stdin keeps it out of every environment (redisCliCommand does).
 */
export interface Command {
  argv: string[];
  /** Environment for the command. Secret values travel over stdin, never in the process list. */
  env?: Record<string, Arg>;
  /** Data written to the command's standard input (after any secrets). */
  stdin?: string | Buffer;
  cwd?: string;
  /** Run through sudo (unless the login user is already root). */
  become?: boolean;
  /** Milliseconds after which the command is killed and reported as failed. */
  timeoutMs?: number;
}

/** A shell script run as `sh -c SCRIPT` is still a Command; this builds one. */
export function shellCommand(script: string, opts: Omit<Command, 'argv'> = {}): Command {
  return { argv: ['sh', '-c', script], ...opts };
}

/** A failed command is a result, not an exception. */
export interface CommandResult {
  /** What ran, printable: quoted argv with secrets masked. */
  display: string;
  /** Exit code; null when killed by a signal or timed out. */
  code: number | null;
  signal?: string | null;
  stdout: string;
  stderr: string;
  ok: boolean;
  durationMs: number;
  timedOut?: boolean;
}

const SAFE = /^[A-Za-z0-9_\-+=.,:/@%^]+$/;

/** POSIX-shell quote one word: the only place in rha that turns data into shell text. */
export function quote(word: string): string {
  if (word === '') return "''";
  if (SAFE.test(word)) return word;
  return "'" + word.replace(/'/g, `'\\''`) + "'";
}

/** Quote an argv for `sh`. */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map(quote).join(' ');
}

/** The printable form of a command: argv quoted, env names shown, secret values masked. */
export function displayCommand(cmd: Command): string {
  const env = Object.entries(cmd.env ?? {}).map(([k, v]) => `${k}=${v instanceof Secret ? '***' : quote(v)}`);
  const body = quoteArgv(cmd.argv);
  return [...env, body].join(' ') + (cmd.become ? ' (become)' : '');
}

/** The one-line message of a failed command: what ran and why it failed. */
export function describeFailure(r: CommandResult): string {
  const why = r.timedOut
    ? 'timed out'
    : r.code === null
      ? `killed by ${r.signal ?? 'a signal'}`
      : `exit ${r.code}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-12).join('\n');
  return `${r.display}: ${why}${tail ? `\n${tail}` : ''}`;
}

/** Replace every occurrence of any secret value in text by ***. Used by every printer. */
export function maskSecrets(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= 1) out = out.split(s).join('***');
  }
  return out;
}
