/**
 * The per-host run lock: two rha runs against one host at the same time would interleave their
 * writes (two redis.conf renders, two bring-ups issuing REPLICAOF). The first contact with a host
 * takes /run/rha.lock; a second run finds it held, says who holds it and since when, and fails
 * that host without touching it.
 *
 * The lock file records the holder's owner, controller pid, start time and, on the host, the pid
 * (and kernel start time) of the holder's sshd connection process. That process lives exactly as
 * long as the holder's SSH connection, so a run killed with -9 or cut off by the network leaves a
 * lock whose host pid is gone: the next run takes it over with a warning. A normal end and Ctrl-C
 * release it (truncate the file, only if it is still ours). Every read and write of the file
 * happens under `flock` on the file itself, so two runs cannot both take it.
 */
import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { describeFailure, type Command, type CommandResult } from '../core/command.js';
import type { Connection, HostSpec } from '../core/types.js';

export const LOCK_PATH = '/run/rha.lock';

/** Thrown when another run holds a host's lock (the runner fails the host, it is not unreachable). */
export class HostLockedError extends Error {
  constructor(
    readonly hostName: string,
    message: string,
  ) {
    super(message);
    this.name = 'HostLockedError';
  }
}

/** Who holds a lock, as read from the lock file. */
export interface LockHolder {
  owner?: string;
  pid?: string;
  since?: string;
  command?: string;
  hostPid?: string;
}

/** Exit codes of the acquire script. */
const HELD = 3;
const NOT_WRITABLE = 10;

// The acquire script. $PPID is, for root, the connection's sshd process; with sudo it is sudo, so
// walk up to the nearest sshd ancestor. Field 20 after "comm) " of /proc/PID/stat is the start
// time (field 22 of the whole line), which tells a live holder from a reused pid.
// Builtins only where a program is not needed (read, case, parameter expansion): every program is a
// fork and exec on the host, which adds up over 100 hosts. `D` keeps the shell's ${...} out of
// this template literal.
const D = '$';
const ACQUIRE = String.raw`f=$1 run=$2 owner=$3 cpid=$4 since=$5 cmd=$6
pstat() { n=$2; l=; read -r l 2>/dev/null < "/proc/$1/stat"; [ -n "$l" ] || return 0; set -- ${D}{l##*) }; [ $# -ge "$n" ] || return 0; shift $((n - 1)); printf '%s' "$1"; }
pcomm() { c=; read -r c 2>/dev/null < "/proc/$1/comm"; printf '%s' "$c"; }
p=$PPID
while [ "$p" -gt 1 ] 2>/dev/null && [ "$(pcomm "$p")" != sshd ]; do p=$(pstat "$p" 2); [ -n "$p" ] || p=0; done
if [ "$p" -gt 1 ] 2>/dev/null; then st=$(pstat "$p" 20); else p= st=; fi
exec 9>>"$f" 2>/dev/null || exit ${NOT_WRITABLE}
if command -v flock >/dev/null 2>&1; then flock -w 10 9 || { echo "timed out waiting for flock on $f" >&2; exit 11; }; fi
held= hp= hs=
while IFS= read -r line || [ -n "$line" ]; do
  held="$held$line
"
  case $line in host_pid=*) hp=${D}{line#host_pid=} ;; host_pid_start=*) hs=${D}{line#host_pid_start=} ;; esac
done < "$f"
while [ "${D}{held%
}" != "$held" ]; do held=${D}{held%
}; done
stale=
if [ -n "$held" ]; then
  if [ -z "$hp" ] || { [ -d "/proc/$hp" ] && [ "$(pstat "$hp" 20)" = "$hs" ]; }; then printf '%s\n' "$held"; exit ${HELD}; fi
  stale=1
fi
printf 'run=%s\nowner=%s\npid=%s\nsince=%s\ncommand=%s\nhost_pid=%s\nhost_pid_start=%s\n' "$run" "$owner" "$cpid" "$since" "$cmd" "$p" "$st" > "$f"
if [ -n "$stale" ]; then printf 'stale\n%s\n' "$held"; fi
exit 0`;

// Release only our own lock; truncate rather than remove, so a run waiting in flock on this inode
// never ends up holding a deleted file.
const RELEASE = String.raw`f=$1 run=$2
[ -s "$f" ] || exit 0
exec 9>>"$f" || exit 1
if command -v flock >/dev/null 2>&1; then flock -w 10 9 || exit 1; fi
if grep -qx "run=$run" "$f"; then : > "$f"; fi`;

/** Parses the key=value lines of a lock file. */
export function parseHolder(text: string): LockHolder {
  const kv = Object.fromEntries(
    text
      .split('\n')
      .map((l) => l.match(/^([a-z_]+)=(.*)$/))
      .filter((m): m is RegExpMatchArray => m !== null)
      .map((m) => [m[1], m[2]]),
  );
  return { owner: kv.owner, pid: kv.pid, since: kv.since, command: kv.command, hostPid: kv.host_pid };
}

/** "root@ctl (rha pid 123, rha provision) since 2026-…": who holds a lock, for messages. */
export function describeHolder(h: LockHolder): string {
  const what = [h.pid ? `rha pid ${h.pid}` : undefined, h.command || undefined].filter(Boolean).join(', ');
  return `${h.owner ?? 'an unknown owner'}${what ? ` (${what})` : ''} since ${h.since ?? 'an unknown time'}`;
}

/** A connection that may run cleanup commands after the run was interrupted (SshConnection does). */
interface CleanupCapable {
  execCleanup(cmd: Command): Promise<CommandResult>;
}
function canCleanup(c: Connection): c is Connection & CleanupCapable {
  return typeof (c as Partial<CleanupCapable>).execCleanup === 'function';
}

export interface RunLocksOptions {
  /** What the run is, shown to a second run (e.g. "rha provision inventory.yaml"). */
  command: string;
  /** Reports a lock taken over from a dead run, or a host where no lock could be taken. */
  warn(host: string, msg: string): void;
  path?: string;
  owner?: string;
}

/** The locks of one run: acquire on first contact with each host, release them all at the end. */
export class RunLocks {
  readonly run = randomUUID();
  private readonly held = new Map<string, { conn: Connection; become: boolean }>();
  private readonly pending = new Map<string, Promise<void>>();
  private readonly path: string;
  private readonly owner: string;

  constructor(private readonly o: RunLocksOptions) {
    this.path = o.path ?? LOCK_PATH;
    this.owner = o.owner ?? `${safeUser()}@${hostname()}`;
  }

  /** Takes the host's lock once per run; throws HostLockedError when another run holds it. */
  acquire(host: HostSpec, conn: Connection): Promise<void> {
    let p = this.pending.get(host.name);
    if (!p) {
      p = this.take(host, conn);
      this.pending.set(host.name, p);
      // A failed attempt is not cached: the runner marks the host out, nothing asks again.
    }
    return p;
  }

  private async take(host: HostSpec, conn: Connection): Promise<void> {
    const become = host.connection.become;
    const argv = ['sh', '-c', ACQUIRE, 'rha-lock', this.path, this.run, this.owner, String(process.pid), new Date().toISOString(), this.o.command];
    const r = await conn.exec({ argv, become, timeoutMs: 30_000 });
    if (r.ok) {
      this.held.set(host.name, { conn, become });
      if (r.stdout.startsWith('stale\n')) {
        const old = parseHolder(r.stdout.slice('stale\n'.length));
        this.o.warn(host.name, `took over the run lock ${this.path} of ${describeHolder(old)}: that run's connection to this host is gone`);
      }
      return;
    }
    if (r.code === HELD) {
      const h = parseHolder(r.stdout);
      const alive = h.hostPid ? '' : `; its holder cannot be checked: if no rha run is active on it, remove ${this.path}`;
      throw new HostLockedError(host.name, `${host.name} is locked by another rha run: ${describeHolder(h)} (${this.path})${alive}; nothing was changed on this host`);
    }
    if (r.code === NOT_WRITABLE && !become) {
      this.o.warn(host.name, `no run lock: ${this.path} is not writable by ${host.connection.user} (set become: true to take it with sudo)`);
      return;
    }
    // sudo refusing (wrong password, not installed, not allowed) surfaces here, at the run's first
    // command on the host: say that, not "cannot take the lock" followed by the lock script.
    const [first, ...rest] = r.stderr.trim().split('\n');
    if (become && first?.startsWith('become failed on ')) {
      throw new HostLockedError(host.name, [`${first}; nothing was changed on this host`, ...rest].join('\n'));
    }
    throw new HostLockedError(host.name, `cannot take the run lock ${this.path} on ${host.name}: ${describeFailure({ ...r, display: `rha's lock script${become ? ' (become)' : ''}` })}`);
  }

  /** Releases every lock this run holds; never throws (a lock left behind turns stale with its connection). */
  async releaseAll(): Promise<void> {
    await Promise.all(
      [...this.held].map(async ([name, { conn, become }]) => {
        const cmd: Command = { argv: ['sh', '-c', RELEASE, 'rha-unlock', this.path, this.run], become, timeoutMs: 15_000 };
        try {
          await (canCleanup(conn) ? conn.execCleanup(cmd) : conn.exec(cmd));
        } catch {
          // The link is gone: the lock's host pid went with it, the next run takes it over.
        }
        this.held.delete(name);
      }),
    );
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
