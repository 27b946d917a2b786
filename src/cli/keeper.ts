/**
 * The keeper: a warm rha process of one user that runs `rha run` and `rha provision` for the
 * client (keeper-client.ts), keeping what a run would otherwise rebuild from nothing: the code
 * compiled and optimised, and the SSH connections with their shells (connection/keep.ts). Like
 * Ansible's ControlPersist, it ends after RHA_KEEPER seconds (default 60) without a run.
 *
 * - One run at a time: a client arriving during a run is told "busy" and runs on its own.
 * - A run sees the client's command line, folder and environment, as if run there, and writes to
 *   the client's stdout and stderr. Ctrl-C in the client interrupts it; a client that goes away
 *   interrupts it too, and the run still releases its locks and hands back its connections.
 * - The socket is in the user's cache folder (mode 0700, checked to be ours), itself mode 0600: only
 *   this user reaches it, as with ssh's ControlPath. Nothing is logged; the process's own
 *   environment holds no secret (keeper-client.ts's KEEPER_ENV), its command line neither.
 * - It ends early after MAX_RUNS runs or above its memory cap (memoryCapMb: MAX_RSS_MB, plus an
 *   allowance per connection it keeps), and on `rha keeper stop`.
 */
import { promises as fs, readFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionKeeper } from '../connection/keep.js';
import { pidAlive } from '../core/process.js';
import { ExitCode } from '../core/types.js';
import { codeCacheDir } from './code-cache.js';
import { dial } from './keeper-client.js';
import type { CliIo } from './io.js';

const MAX_RUNS = 500;
const MAX_RSS_MB = 400;
/**
 * What one kept connection may add to the cap, in MB. Measured at 1000 hosts (issue 17): a kept
 * connection (ssh2 client, socket, shells) holds ~35 KB of JavaScript heap and ~6 KB outside it;
 * the keeper's RSS after a run on 1000 hosts is ~200-250 MB against ~60 MB idle with none, i.e.
 * up to ~0.2 MB per host once the heap a run grew into is counted. Without it, a keeper serving
 * many hosts would end after every run and the next run would connect to all of them again.
 */
export const KEPT_CONNECTION_MB = 0.2;

/** The keeper's memory cap after a run, in MB, with `keptConnections` connections kept. */
export function memoryCapMb(keptConnections: number): number {
  return MAX_RSS_MB + keptConnections * KEPT_CONNECTION_MB;
}
/** Commands a keeper runs; anything else is refused (and runs in the client). */
const SERVED = new Set(['run', 'provision']);

export interface KeeperStatus {
  pid: number;
  socket: string;
  startedAt: string;
  runs: number;
  busy: boolean;
  keptConnections: number;
  idleSeconds: number;
  rssMb: number;
  /** The JavaScript heap in use (after a full collection when Node runs with --expose-gc). */
  heapUsedMb: number;
  peakRssMb: number;
}

type RunArgv = (argv: string[], io: CliIo) => Promise<ExitCode>;

/** Serves on `socket` until idle for `idleSeconds`; resolves when the keeper has shut down. */
export async function serveKeeper(socket: string, idleSeconds: number, runArgv: RunArgv): Promise<void> {
  const other = await dial(socket);
  if (other) {
    // Another keeper already serves this socket: leave it be.
    other.destroy();
    return;
  }
  await fs.unlink(socket).catch(() => undefined);

  const keep = new ConnectionKeeper();
  const ownEnv = { ...process.env };
  const startedAt = new Date().toISOString();
  let runs = 0;
  let busy = false;
  let idleTimer: NodeJS.Timeout | undefined;
  let closing = false;
  /** Asked to end (stop, TERM) while a run was in progress: ends when it is over; takes no new run. */
  let stopping = false;
  /** Interrupts the run in progress (once). */
  let currentInterrupt: (() => void) | undefined;
  /** listr2 was loaded to draw in colour (a client's terminal, see runFor). */
  let coloured = false;

  const server = net.createServer();
  const shutdown = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    if (idleTimer) clearTimeout(idleTimer);
    server.close();
    await keep.closeAll();
    try {
      // Only our own socket file: a newer keeper may have taken the name since.
      if ((await fs.stat(socket)).ino === socketIno) unlinkSync(socket);
    } catch {
      /* gone already */
    }
  };
  const armIdle = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => void shutdown(), idleSeconds * 1000);
  };
  const status = (): KeeperStatus => (((globalThis as { gc?: () => void }).gc?.(), {
    pid: process.pid,
    socket,
    startedAt,
    runs,
    busy,
    keptConnections: keep.size,
    idleSeconds,
    rssMb: Math.round(process.memoryUsage.rss() / 2 ** 20),
    heapUsedMb: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
    peakRssMb: peakRssMb(),
  }));

  server.on('connection', (conn) => {
    conn.setNoDelay(true);
    const send = (m: object) => {
      if (!conn.destroyed) conn.write(JSON.stringify(m) + '\n');
    };
    let buf = '';
    let interrupt: (() => void) | undefined;
    let interrupted = false;
    /** Passes the client terminal's new size to the run's display (a terminal run only). */
    let resize: ((size: TerminalSize) => void) | undefined;
    const fireInterrupt = () => {
      if (interrupted) return;
      interrupted = true;
      interrupt?.();
    };
    conn.setEncoding('utf8');
    conn.on('error', () => undefined);
    conn.on('close', fireInterrupt);
    conn.on('close', () => {
      if (currentInterrupt === fireInterrupt) currentInterrupt = undefined;
    });
    conn.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: { run?: { argv?: unknown; cwd?: unknown; env?: unknown; tty?: unknown }; resize?: unknown; interrupt?: boolean; status?: boolean; stop?: boolean };
        try {
          m = JSON.parse(line);
        } catch {
          conn.destroy();
          return;
        }
        if (m.interrupt) fireInterrupt();
        else if (m.resize !== undefined) {
          const size = terminalSize(m.resize);
          if (size) resize?.(size);
        } else if (m.status) {
          send({ status: status() });
          conn.end();
        } else if (m.stop) {
          send({ stopping: !busy, pid: process.pid });
          conn.end();
          if (!busy) void shutdown();
          else stopping = true;
        } else if (m.run) {
          const r = m.run;
          const argv = Array.isArray(r.argv) && r.argv.every((a) => typeof a === 'string') ? (r.argv as string[]) : undefined;
          if (busy || closing || stopping) {
            send({ busy: true });
            conn.end();
          } else if (!argv || !SERVED.has(argv[0]) || typeof r.cwd !== 'string' || typeof r.env !== 'object' || !r.env) {
            send({ refused: 'not a command the keeper runs' });
            conn.end();
          } else {
            busy = true;
            currentInterrupt = fireInterrupt;
            if (idleTimer) clearTimeout(idleTimer);
            const tty = terminalSize(r.tty);
            void runFor(conn, send, argv, r.cwd, r.env as NodeJS.ProcessEnv, tty, (f) => (resize = f), (h) => {
              interrupt = h;
              if (interrupted) h();
              return () => (interrupt = undefined);
            }).finally(() => {
              busy = false;
              currentInterrupt = undefined;
              runs++;
              const tooBig = process.memoryUsage.rss() / 2 ** 20 > memoryCapMb(keep.size);
              if (stopping || runs >= MAX_RUNS || tooBig) void shutdown();
              else armIdle();
            });
          }
        }
      }
    });
  });

  const runFor = async (
    conn: net.Socket,
    send: (m: object) => void,
    argv: string[],
    cwd: string,
    env: NodeJS.ProcessEnv,
    tty: TerminalSize | undefined,
    onResize: (f: (size: TerminalSize) => void) => void,
    onInterrupt: CliIo['onInterrupt'],
  ): Promise<void> => {
    try {
      process.chdir(cwd);
    } catch {
      send({ refused: `cannot enter ${cwd}` });
      conn.end();
      return;
    }
    // The run reads its environment here and there (SSH_AUTH_SOCK, RHA_CACHE_DIR, the inventory's
    // env lookups, HOME): the client's, for the run only. Set in place, so that what reads the
    // process's real environment (os.homedir(), TZ) sees it too.
    replaceEnv(env);
    send({ started: true });
    // One message per batch of writes, not per write: a write is done one event-loop turn after it
    // was sent, and what the run wrote meanwhile goes as one message (writev). A 1000-host run
    // writes 14,000 lines; one message each was a write to this socket, and one to the client's
    // stdout, per line (issue 17).
    const stream = (field: 'out' | 'err') => {
      const send = (data: Buffer, cb: () => void) => {
        if (conn.destroyed) return cb();
        if (conn.write(JSON.stringify({ [field]: data.toString('base64') }) + '\n')) setImmediate(cb);
        else conn.once('drain', () => cb());
      };
      const bytes = (chunk: Buffer | string) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      return new Writable({
        write(chunk: Buffer | string, _enc, cb) {
          send(bytes(chunk), cb);
        },
        writev(chunks, cb) {
          send(Buffer.concat(chunks.map((c) => bytes(c.chunk as Buffer | string))), cb);
        },
      });
    };
    const io: CliIo = { stdout: stream('out'), stderr: stream('err'), env: process.env, cwd, onInterrupt, keep };
    // The client's stdout is a terminal: the run sees a terminal of its size (the reporter then
    // draws the listr2 display, report/open.ts), and listr2 wraps lines at process.stdout.columns.
    const ownColumns = process.stdout.columns;
    if (tty) {
      // listr2's colours (colorette) are decided once, when it is first loaded, from that moment's
      // environment and fd 1, which here is /dev/null: load it now, told to colour. Only clients
      // whose terminal shows colours and who did not set NO_COLOR come here (keeperEligible).
      if (!coloured) {
        const own = process.env.FORCE_COLOR;
        process.env.FORCE_COLOR = '1';
        await import('../report/pretty.js');
        if (own === undefined) delete process.env.FORCE_COLOR;
        else process.env.FORCE_COLOR = own;
        coloured = true;
      }
      const setSize = (size: TerminalSize) => {
        Object.assign(io.stdout, { isTTY: true, columns: size.columns, rows: size.rows });
        Object.assign(io.stderr, { isTTY: true, columns: size.columns, rows: size.rows });
        process.stdout.columns = size.columns;
      };
      setSize(tty);
      io.terminal = true;
      onResize((size) => {
        setSize(size);
        io.stdout.emit('resize');
      });
    }
    let code: ExitCode;
    try {
      code = await runArgv([process.execPath, 'rha', ...argv], io);
    } catch {
      code = ExitCode.internalError;
    } finally {
      replaceEnv(ownEnv);
      process.chdir('/');
      process.stdout.columns = ownColumns;
    }
    await new Promise<void>((resolve) => io.stdout.end(() => io.stderr.end(() => resolve())));
    send({ exit: code });
    conn.end();
  };

  // TERM (shutdown, `kill`): the run in progress is interrupted like a Ctrl-C (its locks released,
  // its commands stopped), then the keeper ends; a second TERM ends it at once.
  let terms = 0;
  process.on('SIGTERM', () => {
    if (++terms > 1) process.exit(143);
    stopping = true;
    currentInterrupt?.();
    if (!busy) void shutdown();
  });

  let socketIno = 0;
  // The socket is created mode 0600 (and its folder is 0700, checked by the client).
  const umask = process.umask(0o077);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  socketIno = (await fs.stat(socket)).ino;
  armIdle();
  await new Promise<void>((resolve) => server.once('close', () => resolve()));
  await shutdown();
}

export interface TerminalSize {
  columns: number;
  rows: number;
}

/** A client's `{columns, rows}`, or undefined when it is not one (pure). */
export function terminalSize(v: unknown): TerminalSize | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const { columns, rows } = v as { columns?: unknown; rows?: unknown };
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 100_000;
  return ok(columns) && ok(rows) ? { columns, rows } : undefined;
}

/** Makes process.env exactly `env` (in place: the process's own environment changes too). */
function replaceEnv(env: NodeJS.ProcessEnv): void {
  for (const k of Object.keys(process.env)) if (!Object.hasOwn(env, k)) delete process.env[k];
  for (const [k, v] of Object.entries(env)) if (typeof v === 'string') process.env[k] = v;
}

/** VmHWM: the most memory this process has held. */
function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

/** What a keeper answers to {status} or {stop}. */
interface KeeperReply {
  status?: KeeperStatus;
  /** To {stop}: true when it ends now, false when it ends after the run in progress. */
  stopping?: boolean;
  pid?: number;
}

/** Asks the keeper on `socket` for its status (or to stop); undefined when none answers. */
export async function askKeeper(socket: string, what: 'status' | 'stop'): Promise<KeeperReply | undefined> {
  const s = await dial(socket);
  if (!s) return undefined;
  return new Promise((resolve) => {
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (buf += d));
    s.on('error', () => undefined);
    s.on('close', () => {
      try {
        resolve(JSON.parse(buf.split('\n')[0]) as KeeperReply);
      } catch {
        resolve(undefined);
      }
    });
    s.write(JSON.stringify({ [what]: true }) + '\n');
  });
}

/** The sockets of this user's keepers (one per build of rha that ran lately). */
export async function keeperSockets(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const dir = codeCacheDir(env);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => /^keeper-[0-9a-f]+\.sock$/.test(n)).map((n) => path.join(dir, n));
}

/** `rha keeper status`: this user's keepers; exit 0 (none running is not an error). */
export async function keeperStatusCommand(o: { json?: boolean }, io: Pick<CliIo, 'stdout'>): Promise<ExitCode> {
  const found: KeeperStatus[] = [];
  for (const s of await keeperSockets()) {
    const st = (await askKeeper(s, 'status'))?.status;
    if (st) found.push(st);
  }
  if (o.json) io.stdout.write(JSON.stringify(found, null, 2) + '\n');
  else if (!found.length) io.stdout.write('no rha keeper is running\n');
  else {
    for (const k of found) {
      io.stdout.write(
        `pid ${k.pid}: ${k.busy ? 'running a command' : 'idle'}, ${k.runs} run${k.runs === 1 ? '' : 's'} since ${k.startedAt}, ` +
          `${k.keptConnections} SSH connection${k.keptConnections === 1 ? '' : 's'} kept, ${k.rssMb} MB (peak ${k.peakRssMb} MB), ` +
          `ends after ${k.idleSeconds} s without a run\n`,
      );
    }
  }
  return ExitCode.ok;
}

/**
 * `rha keeper stop`: ends this user's keepers (a busy one once its run is over), closing their
 * connections. An idle keeper is waited for until its process has exited (up to 10 s), so that
 * whatever comes next (removing the cache folder, a new build) finds nothing still writing there.
 */
export async function keeperStopCommand(io: Pick<CliIo, 'stdout'>): Promise<ExitCode> {
  let stopped = 0;
  let later = 0;
  const ending: number[] = [];
  for (const s of await keeperSockets()) {
    const r = await askKeeper(s, 'stop');
    if (r?.stopping === true) {
      stopped++;
      if (r.pid) ending.push(r.pid);
    } else if (r?.stopping === false) later++;
  }
  await waitForExit(ending, 10_000);
  io.stdout.write(
    stopped + later === 0
      ? 'no rha keeper is running\n'
      : `stopped ${stopped} keeper${stopped === 1 ? '' : 's'}${later ? `; ${later} will stop when its run ends` : ''}\n`,
  );
  return ExitCode.ok;
}

/** Waits until none of `pids` is alive any more, or `ms` have passed. */
async function waitForExit(pids: number[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (pids.some(pidAlive) && Date.now() < until) await sleep(20);
}
