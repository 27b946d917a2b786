/**
 * The client side of the keeper (keeper.ts): `rha run` and `rha provision` hand their command line
 * to a warm rha process of this user, which runs it with its code already compiled and the SSH
 * connections of the last run still open, and streams the output back. Imported by main.ts before
 * the bundle is loaded, so Node's built-ins only: a run through the keeper never parses the bundle.
 *
 * Used only when all of these hold, else the command runs in this process as always:
 * - the command is `run` or `provision` (no --help or --version);
 * - stdout is not a terminal (CI, pipes, files), or it is one with colours and NO_COLOR unset: the
 *   keeper then draws the listr2 display for this terminal (its width, kept up on resize) and the
 *   client writes it out as it comes (issue 17: a user at a terminal gets the warm process too).
 *   `--output pretty` into a pipe, and a terminal without colours, stay in-process, since the
 *   keeper's listr2 always draws in colour;
 * - RHA_KEEPER is not `off` (`0`, `no`, `false`); a number sets the keeper's idle time in seconds
 *   (default 60, as Ansible's ControlPersist);
 * - the cache folder (code-cache.ts) is ours and closed to others: the socket lives there.
 *
 * The first such run starts the keeper and runs in it. A keeper that is busy (another run) or
 * cannot take the command says so before doing anything, and the command runs here instead. A
 * keeper that ends in the middle of a run is an error (exit 1), never a silent second run.
 *
 * Wire format, one JSON object per line. Client: {run: {argv, cwd, env, tty?: {columns, rows}}},
 * {resize: {columns, rows}}, {interrupt: true}, {status: true}, {stop: true}. Keeper: {busy} or {refused} (nothing done), {started}, {out} and
 * {err} (base64), {exit}, {status}.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { codeCacheDir, trustedDir } from './code-cache.js';

export const DEFAULT_IDLE_SECONDS = 60;
const SHOW_CURSOR = '\x1b[?25h';
/** sockaddr_un's path is 108 bytes on Linux. */
const MAX_SOCKET_PATH = 100;
const START_TIMEOUT_MS = 5000;
/** The keeper's own environment: what Node and rha need to start, nothing a run might carry (secrets). */
const KEEPER_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'XDG_CACHE_HOME', 'RHA_NO_CODE_CACHE', 'TMPDIR'];

/** The keeper's idle time in seconds from RHA_KEEPER, or undefined when it is turned off. */
export function keeperIdleSeconds(env: NodeJS.ProcessEnv): number | undefined {
  const v = (env.RHA_KEEPER ?? '').trim().toLowerCase();
  if (v === '') return DEFAULT_IDLE_SECONDS;
  if (['off', '0', 'no', 'false'].includes(v)) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 24 * 3600) : DEFAULT_IDLE_SECONDS;
}

/**
 * Whether this command line may run in the keeper (see the list above). `terminalColours`: stdout
 * is a terminal that shows colours (`hasColors()`); false for a terminal without.
 */
export function keeperEligible(argv: string[], env: NodeJS.ProcessEnv, stdoutIsTTY: boolean | undefined, terminalColours = true): boolean {
  const args = argv.slice(2);
  if (args[0] !== 'run' && args[0] !== 'provision') return false;
  if (args.some((a) => a === '-h' || a === '--help' || a === '-V' || a === '--version')) return false;
  if (keeperIdleSeconds(env) === undefined) return false;
  if (stdoutIsTTY === true) return terminalColours && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  // The listr2 display asked for by name into a pipe stays in-process (it would draw in colour).
  const pretty = args.some((a, i) => a === '--output=pretty' || a === '-opretty' || (a === 'pretty' && (args[i - 1] === '-o' || args[i - 1] === '--output')));
  return !pretty;
}

/** The terminal's size, when stdout is one (a pseudo-terminal without a size reports 0 columns). */
function terminalSize(): { columns: number; rows: number } | undefined {
  const out = process.stdout;
  return out.isTTY ? { columns: out.columns ?? 0, rows: out.rows ?? 0 } : undefined;
}

/**
 * The keeper's socket for this build of rha and this Node (a keeper runs exactly this code), in
 * the user's cache folder; undefined when that folder is not safe to use or the path is too long.
 */
export function keeperSocket(bundle: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = codeCacheDir(env);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const real = realpathSync(bundle);
    const st = statSync(real);
    if (!trustedDir(dir)) return undefined;
    const key = createHash('sha256')
      .update(`${process.version}\0${process.arch}\0${real}\0${st.size}\0${st.mtimeMs}\0${st.ino}`)
      .digest('hex')
      .slice(0, 16);
    const socket = path.join(dir, `keeper-${key}.sock`);
    return socket.length <= MAX_SOCKET_PATH ? socket : undefined;
  } catch {
    return undefined;
  }
}

/** A connection to a live keeper, or undefined (none listening). */
export function dial(socket: string): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const s = net.createConnection(socket);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', () => resolve(undefined));
  });
}

/** Starts a keeper on `socket` (detached, its own session) and waits for it to listen; undefined when it does not. */
async function startKeeper(socket: string, mainJs: string, idleSeconds: number): Promise<net.Socket | undefined> {
  const env: NodeJS.ProcessEnv = {};
  for (const k of KEEPER_ENV) if (process.env[k] !== undefined) env[k] = process.env[k];
  try {
    const child = spawn(process.execPath, [mainJs, 'keeper', 'serve', '--socket', socket, '--idle', String(idleSeconds)], {
      detached: true,
      stdio: 'ignore',
      cwd: '/',
      env,
    });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    return undefined;
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  // A failed connect to a Unix socket costs microseconds: ask often, the run waits for it.
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 3));
    const s = await dial(socket);
    if (s) return s;
  }
  return undefined;
}

/** One keeper message. */
interface Reply {
  busy?: boolean;
  refused?: string;
  started?: boolean;
  out?: string;
  err?: string;
  exit?: number;
}

/**
 * Runs the command line in the keeper (starting one when none listens) and returns its exit code;
 * undefined when it did not run there and must run in this process.
 */
export async function runInKeeper(argv: string[], mainJs: string, bundle: string): Promise<number | undefined> {
  const idle = keeperIdleSeconds(process.env);
  const socket = idle === undefined ? undefined : keeperSocket(bundle);
  if (idle === undefined || !socket) return undefined;
  const s = (await dial(socket)) ?? (await startKeeper(socket, mainJs, idle));
  if (!s) return undefined;
  s.setNoDelay(true);
  return new Promise((resolve) => {
    let started = false;
    let done = false;
    let interrupts = 0;
    const finish = (code: number | undefined) => {
      if (done) return;
      done = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.stdout.off('resize', onResize);
      // The display hides the cursor while it draws: shown again whatever ended the run, as a
      // run in its own process does when it exits.
      if (tty) process.stdout.write(SHOW_CURSOR);
      s.destroy();
      resolve(code);
    };
    // Ctrl-C once: the keeper stops the run as rha always does (no new task, commands killed, locks
    // released). Twice: this client exits at once; the keeper still cleans up on its side.
    const onSignal = () => {
      interrupts++;
      if (interrupts === 1) s.write('{"interrupt":true}\n');
      else {
        if (tty) process.stdout.write(SHOW_CURSOR);
        process.exit(130);
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const tty = terminalSize();
    // The display is drawn for this terminal's width: a resize is passed on as it happens.
    const onResize = () => {
      const size = terminalSize();
      if (size && !done) s.write(JSON.stringify({ resize: size }) + '\n');
    };
    if (tty) process.stdout.on('resize', onResize);

    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while (!done && (nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: Reply;
        try {
          m = JSON.parse(line) as Reply;
        } catch {
          continue;
        }
        if ((m.busy || m.refused !== undefined) && !started) return finish(undefined);
        if (m.started) started = true;
        if (m.out !== undefined && !process.stdout.write(Buffer.from(m.out, 'base64'))) {
          s.pause();
          process.stdout.once('drain', () => s.resume());
        }
        if (m.err !== undefined) process.stderr.write(Buffer.from(m.err, 'base64'));
        if (typeof m.exit === 'number') return finish(m.exit);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      if (done) return;
      if (!started) return finish(undefined);
      process.stderr.write('error: the rha keeper process ended in the middle of this run; run the command again (RHA_KEEPER=off runs it without the keeper)\n');
      finish(1);
    });
    const env = { ...process.env };
    s.write(JSON.stringify({ run: { argv: argv.slice(2), cwd: process.cwd(), env, ...(tty ? { tty } : {}) } }) + '\n');
  });
}
