/**
 * Turns a Command into the one line sshd runs, plus what goes first on its stdin.
 *
 * Secrets never appear on the line (it is visible in `ps` on the host): the remote script reads
 * each one from stdin with `IFS= read -r NAME && export NAME`, before the command's own stdin.
 * With become, sudo's password is written only when sudo prompts for it (a unique prompt string),
 * and secrets only after the script prints a unique "started" marker: writing blindly would hand
 * the password to the command's stdin whenever sudo does not ask (NOPASSWD, cached credentials).
 */
import { quote, quoteArgv, Secret, type Command } from '../core/command.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface BecomeProtocol {
  /** Printed on stderr by the remote script once sudo has started it. */
  startedMarker: string;
  /** sudo's password prompt (`-p`), present only when a become password is configured. */
  promptMarker?: string;
}

export interface RemoteInvocation {
  /** The exact line sent to sshd. Contains no secret values. */
  line: string;
  /**
   * The line first prints `[rha-pid:NONCE:PID]` on stderr: the PID of the session's process group
   * (sshd makes each session a session leader). A timeout or abort kills that group from a second
   * channel, because OpenSSH refuses "signal" requests in many setups (root logins among them).
   */
  pidMarker: string;
  /** Written to the channel first (after sudo started the script): one line per secret. */
  secretPreamble: string;
  become?: BecomeProtocol;
}

export interface InvocationContext {
  /** The SSH login user: become is a no-op for root. */
  loginUser: string;
  /** Whether a sudo password is configured (the value itself travels separately). */
  hasBecomePassword: boolean;
  /** Random, per exec: makes the markers impossible to collide with real output. */
  nonce: string;
}

/** The invocation for a command: line, stdin preamble and, with become, the sudo protocol. */
export function buildRemoteInvocation(cmd: Command, ctx: InvocationContext): RemoteInvocation {
  if (cmd.argv.length === 0) throw new Error('command has an empty argv');
  const steps: string[] = [];
  const secretLines: string[] = [];
  const plainExports: string[] = [];
  for (const [name, value] of Object.entries(cmd.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new Error(`invalid environment variable name ${JSON.stringify(name)}`);
    if (value instanceof Secret) {
      // One secret = one stdin line, so a newline (or NUL) inside one cannot be carried.
      if (/[\n\0]/.test(value.value)) throw new Error(`secret environment variable ${name} contains a newline`);
      steps.push(`IFS= read -r ${name} && export ${name}`);
      secretLines.push(value.value + '\n');
    } else {
      plainExports.push(`export ${name}=${quote(value)}`);
    }
  }
  if (cmd.cwd) steps.push(`cd ${quote(cmd.cwd)}`);
  steps.push(...plainExports);
  // exec: the command replaces the shell, so a signal sent on timeout reaches the command itself.
  steps.push(`exec ${quoteArgv(cmd.argv)}`);

  const secretPreamble = secretLines.join('');
  const pidMarker = `[rha-pid:${ctx.nonce}:`;
  const printPid = `printf '${pidMarker}%s]\\n' "$$" >&2`;
  if (!cmd.become || ctx.loginUser === 'root') {
    return { line: [printPid, ...steps].join(' && '), pidMarker, secretPreamble };
  }
  const startedMarker = `[rha-become-started:${ctx.nonce}]`;
  const script = [`printf '%s\\n' ${quote(startedMarker)} >&2`, ...steps].join(' && ');
  if (!ctx.hasBecomePassword) {
    return { line: `${printPid} && exec sudo -n -- sh -c ${quote(script)}`, pidMarker, secretPreamble, become: { startedMarker } };
  }
  // No '%' in the prompt: sudo expands %-escapes in it.
  const promptMarker = `[rha-sudo-password:${ctx.nonce}]`;
  return {
    line: `${printPid} && exec sudo -S -p ${quote(promptMarker)} -- sh -c ${quote(script)}`,
    pidMarker,
    secretPreamble,
    become: { startedMarker, promptMarker },
  };
}

/**
 * The same command as one line of the long-lived shell (shell.ts), for commands without secrets,
 * stdin or become: a background subshell (a fork, no exec) sets cwd and env, then execs
 * `setsid ARGV`. Not a process-group leader, setsid does not fork: the command keeps the PID the
 * shell prints and leads its own session and group, as under an exec channel. stderr goes to fd 3
 * (the channel's; the shell's own is /dev/null), inside the subshell so that the shell's job
 * report on a killed command never lands there.
 */
export function buildShellBody(cmd: Command, pidMarker: string): string {
  if (cmd.argv.length === 0) throw new Error('command has an empty argv');
  const steps: string[] = [];
  if (cmd.cwd) steps.push(`cd ${quote(cmd.cwd)}`);
  for (const [name, value] of Object.entries(cmd.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new Error(`invalid environment variable name ${JSON.stringify(name)}`);
    if (value instanceof Secret) throw new Error(`secret environment variable ${name} cannot travel on a shell line`);
    steps.push(`export ${name}=${quote(value)}`);
  }
  steps.push(`exec setsid ${quoteArgv(cmd.argv)}`);
  return `(exec 2>&3 3>&-; ${steps.join(' && ')}) </dev/null & rha_pid=$!; printf '${pidMarker}%s]\n' "$rha_pid" >&3; wait "$rha_pid"`;
}

/** The command that kills a session's process group: TERM, then KILL a second later. */
export function killGroupArgv(pid: number): string[] {
  return ['sh', '-c', 'kill -s TERM -- "-$1" 2>/dev/null; sleep 1; kill -s KILL -- "-$1" 2>/dev/null; true', 'sh', String(pid)];
}

/** Why sudo failed, in one line a person can act on (stderr is sudo's own text). */
export function explainBecomeFailure(
  stderr: string,
  code: number | null,
  ctx: { hostName: string; user: string; passwordRejected: boolean; hasBecomePassword: boolean },
): string {
  const head = `become failed on ${ctx.hostName}:`;
  if (ctx.passwordRejected || /incorrect password|Sorry, try again/i.test(stderr)) {
    return `${head} sudo rejected the become password for user ${ctx.user}`;
  }
  if (code === 127 || /sudo: (command )?not found|sudo: No such file/i.test(stderr)) {
    return `${head} sudo is not installed (install it, or connect as root)`;
  }
  if (/password is required/i.test(stderr)) {
    return `${head} sudo needs a password for user ${ctx.user} (set become_password in the inventory)`;
  }
  if (/not in the sudoers|not allowed to (execute|run)/i.test(stderr)) {
    return `${head} user ${ctx.user} may not run commands as root with sudo`;
  }
  return `${head} sudo exited with ${code === null ? 'a signal' : `code ${code}`} before running the command`;
}
