/**
 * The live state of one node of a pair, read in one round-trip: Redis INFO, whether this host
 * holds the VIP, whether keepalived runs. A fact in the style.md sense: a command and a parser.
 */
import { Secret, shellCommand, quote, type Command } from '../../core/command.js';
import type { Connection } from '../../core/types.js';

export interface NodeState {
  /** The host answered over SSH. */
  reachable: boolean;
  /** Redis answered INFO with our password. */
  redisUp: boolean;
  role?: 'master' | 'slave';
  /** For a replica: the address it replicates from. */
  masterHost?: string;
  linkUp: boolean;
  syncInProgress: boolean;
  /** For a replica: seconds since the last interaction with its master. */
  lastIoSecondsAgo?: number;
  replid?: string;
  replid2?: string;
  offset: number;
  /** `second_repl_offset`: where this node left `replid2`'s history (+1); -1 when it never did. */
  secondOffset?: number;
  connectedReplicas: number;
  keys: number;
  version?: string;
  holdsVip: boolean;
  keepalivedRunning: boolean;
  /** `HOST PORT` of the `replicaof` line in replication.conf (what a restart comes back as); '' = master. */
  roleFile?: string;
  /** Fenced by a notify hook: min-replicas-to-write at or above FENCE, so Redis answers writes with NOREPLICAS. */
  isFenced?: boolean;
  /** The fence's `# rha-fenced:` line in replication.conf (rule and why), when configDir was given and it has one. */
  fencedBy?: string;
  /** What went wrong reading Redis, when it did not answer. */
  error?: string;
}

export interface StateQuery {
  cliPath: string;
  port: number;
  password: string;
  /** VIP as address/prefix. */
  vip: string;
  become: boolean;
  /** Where replication.conf lives; when given, its replicaof line is read too. */
  configDir?: string;
}

const MARK = '@@rha:';

/** min-replicas-to-write at or above this is a notify hook's fence (templates/keepalived/notify.sh.hbs). */
export const FENCE = 1000000;

/** Where and how to reach the local Redis with redis-cli on a host. */
export interface RedisCliTarget {
  cliPath: string;
  port: number;
  password: string;
  become: boolean;
}


/**
 * The one way rha runs redis-cli on a host: `body` (sh) may call `rcli ARGS...`, which runs
 * `redis-cli -h 127.0.0.1 -p PORT ARGS...` authenticated with the cluster's password, ended after
 * `cliTimeoutS` (10) seconds.
 *
 * The password is in no process's argv or environment on the host (REDISCLI_AUTH would be
 * inherited by every `timeout`, `head` or `grep` of the script): it arrives as the first line of
 * the script's stdin, is read by the shell's `read` builtin into a variable that is never exported,
 * and reaches redis-cli through a pipe from the `printf` builtin, read by `--askpass` (which, on a
 * pipe, reads one raw line: no prompt, no quoting). The shell's memory, like redis-cli's, is
 * readable only by its own user (root, or the login user) through /proc/PID/mem.
 */
export function redisCliCommand(body: string, t: RedisCliTarget, opts: { timeoutMs: number; cliTimeoutS?: number }): Command {
  // One line of stdin carries the password, so a newline or NUL cannot (validation refuses them).
  if (/[\n\0]/.test(t.password)) throw new Error('the Redis password contains a newline or NUL');
  const script = [
    "IFS= read -r rha_redis_auth || { echo 'rha: the Redis password did not arrive on stdin' >&2; exit 125; }",
    'exec </dev/null',
    `rcli() { printf '%s\\n' "$rha_redis_auth" | timeout ${opts.cliTimeoutS ?? 10} ${quote(t.cliPath)} --askpass -h 127.0.0.1 -p ${t.port} "$@"; }`,
    body,
  ].join('\n');
  return shellCommand(script, { stdin: `${t.password}\n`, become: t.become, timeoutMs: opts.timeoutMs });
}

/** The command that reads a node's live state; its output is parsed by parseNodeState. */
export function nodeStateCommand(q: StateQuery): Command {
  const script = [
    // `ip` is in /usr/sbin or /sbin on some systems, outside a login user's PATH.
    'PATH="$PATH:/usr/sbin:/sbin"',
    `echo ${MARK}redis`,
    `rcli INFO 2>&1 | head -c 100000`,
    `echo; echo ${MARK}vip`,
    `ip -o -4 addr show 2>/dev/null | grep -qF ${quote(` inet ${q.vip} `)} && echo yes || echo no`,
    `echo ${MARK}keepalived`,
    // keepalived writes its main pid file under /run; a live pid with the right name counts.
    // Shell builtins only (read, case), here and below: every node state read runs this.
    'p=; [ -r /run/keepalived.pid ] && read -r p < /run/keepalived.pid',
    'c=; [ -n "$p" ] && [ -r "/proc/$p/comm" ] && read -r c < "/proc/$p/comm"',
    'case "$c" in *keepalived*) echo yes ;; *) echo no ;; esac',
    // A notify hook's fence (min-replicas-to-write raised past any replica count), in the same round trip.
    `echo ${MARK}minreplicas`,
    `rcli CONFIG GET min-replicas-to-write 2>/dev/null | sed -n 2p`,
    ...(q.configDir ? [roleFileScript(q.configDir)] : []),
  ].join('\n');
  return redisCliCommand(script, q, { timeoutMs: 15_000, cliTimeoutS: 3 });
}

/** The last `replicaof` line (its value) and the last fence line of replication.conf, as the rolefile and fencedby sections. */
function roleFileScript(configDir: string): string {
  return [
    `f=${quote(`${configDir}/replication.conf`)}; rf=; fb=`,
    'if [ -r "$f" ]; then',
    '  while IFS= read -r l || [ -n "$l" ]; do',
    '    case "$l" in',
    '      replicaof) rf= ;;',
    '      replicaof[[:space:]]*) rf=${l#replicaof}; while :; do case "$rf" in [[:space:]]*) rf=${rf#?} ;; *) break ;; esac; done ;;',
    "      '# rha-fenced: '*) fb=${l#'# rha-fenced: '} ;;",
    '    esac',
    '  done < "$f"',
    'fi',
    `echo ${MARK}rolefile`,
    'printf \'%s\\n\' "$rf"',
    `echo ${MARK}fencedby`,
    'printf \'%s\\n\' "$fb"',
  ].join('\n');
}

/**
 * The node state read as commands: with become, the Redis part runs as the login user (redis-cli
 * needs no root, and the password on its stdin then goes through no sudo: no sudo per read, and
 * nothing for a sudo I/O log to record) and the role file, root's, in a command of its own that
 * carries no secret (the long-lived root shell runs it). Without become, one command.
 */
export function nodeStateCommands(q: StateQuery): Command[] {
  if (!q.become || !q.configDir) return [nodeStateCommand(q)];
  return [
    nodeStateCommand({ ...q, become: false, configDir: undefined }),
    shellCommand(roleFileScript(q.configDir), { become: true, timeoutMs: 15_000 }),
  ];
}

/** Parses `INFO` text into a flat map (CRLF lines, `# Section` headers skipped). */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

/** Total keys over all databases from INFO keyspace entries (`db0:keys=3,expires=0,...`). */
export function countKeys(info: Map<string, string>): number {
  let n = 0;
  for (const [k, v] of info) {
    if (/^db\d+$/.test(k)) n += Number(/keys=(\d+)/.exec(v)?.[1] ?? 0);
  }
  return n;
}

/** Parses the output of nodeStateCommand. */
export function parseNodeState(output: string): NodeState {
  const sections = new Map<string, string>();
  const parts = output.split(MARK).slice(1);
  for (const p of parts) {
    const nl = p.indexOf('\n');
    sections.set(p.slice(0, nl === -1 ? undefined : nl).trim(), nl === -1 ? '' : p.slice(nl + 1));
  }
  const redisText = sections.get('redis') ?? '';
  const info = parseInfo(redisText);
  const redisUp = info.has('redis_version') && info.has('role');
  const role = info.get('role');
  return {
    reachable: true,
    redisUp,
    role: role === 'master' || role === 'slave' ? role : undefined,
    masterHost: info.get('master_host'),
    linkUp: info.get('master_link_status') === 'up',
    syncInProgress: info.get('master_sync_in_progress') === '1',
    lastIoSecondsAgo: info.has('master_last_io_seconds_ago') ? Number(info.get('master_last_io_seconds_ago')) : undefined,
    replid: info.get('master_replid'),
    replid2: info.get('master_replid2'),
    offset: Number(info.get('master_repl_offset') ?? 0),
    secondOffset: info.has('second_repl_offset') ? Number(info.get('second_repl_offset')) : undefined,
    connectedReplicas: Number(info.get('connected_slaves') ?? 0),
    keys: countKeys(info),
    version: info.get('redis_version'),
    holdsVip: (sections.get('vip') ?? '').trim() === 'yes',
    keepalivedRunning: (sections.get('keepalived') ?? '').trim() === 'yes',
    roleFile: sections.has('rolefile') ? (sections.get('rolefile') ?? '').trim().replace(/\s+/g, ' ') : undefined,
    ...(redisUp && sections.has('minreplicas') ? { isFenced: Number((sections.get('minreplicas') ?? '').trim()) >= FENCE } : {}),
    ...(sections.get('fencedby')?.trim() ? { fencedBy: sections.get('fencedby')!.trim() } : {}),
    error: redisUp ? undefined : redisText.trim().split('\n').slice(-3).join(' ') || 'no answer',
  };
}

/** Reads a node's live state; an unreachable host is a state, not an exception. */
export async function readNodeState(conn: Connection | undefined, q: StateQuery): Promise<NodeState> {
  const down: NodeState = {
    reachable: false, redisUp: false, linkUp: false, syncInProgress: false, offset: 0,
    connectedReplicas: 0, keys: 0, holdsVip: false, keepalivedRunning: false, error: 'host unreachable',
  };
  if (!conn) return down;
  try {
    const [state, role] = await Promise.all(nodeStateCommands(q).map((c) => conn.exec(c)));
    // A role file that could not be read is not read (undefined), not a master's ('').
    return parseNodeState(state.stdout + (role === undefined ? '' : role.ok ? role.stdout : ''));
  } catch (e) {
    return { ...down, error: (e as Error).message };
  }
}

/** One redis-cli argument: plain text, or a Secret (a password being set) that must not reach argv or output. */
export type CliArg = string | Secret;

/**
 * A redis-cli command line as redis-cli's own parser reads it (sdssplitargs): every byte of every
 * argument as `\xHH` inside double quotes, so any value (quotes, spaces, `>` …) arrives intact.
 */
export function encodeCliLine(args: readonly CliArg[]): string {
  return args
    .map((a) => `"${[...Buffer.from(a instanceof Secret ? a.value : a, 'utf8')].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('')}"`)
    .join(' ');
}

/** Marks each reply in the output of redisCliCommands. */
export const REPLY_MARK = '@@rha:reply';

/**
 * The command that runs several redis-cli commands on the node's local Redis, authenticated with
 * `q.password` the same way the state probe is (redisCliCommand: the first line of stdin, read by
 * the shell's `read` builtin, piped to `redis-cli --askpass`). The commands travel on stdin too
 * (one encoded line each, read by the shell builtins and fed to redis-cli's stdin after the
 * password), so a password being set never appears in any process's argv or environment. Output:
 * per command, a REPLY_MARK line then its raw reply (stderr included, so an `AUTH failed` lands in
 * the first one); parse it with splitCliReplies.
 */
export function redisCliCommands(q: Pick<StateQuery, 'cliPath' | 'port' | 'password' | 'become'>, commands: readonly CliArg[][], timeoutS = 5): Command {
  if (/[\n\0]/.test(q.password)) throw new Error('the Redis password contains a newline or NUL');
  const script = [
    "IFS= read -r rha_redis_auth || { echo 'rha: the Redis password did not arrive on stdin' >&2; exit 125; }",
    'while IFS= read -r line; do',
    `  echo ${MARK}reply`,
    `  printf '%s\\n' "$rha_redis_auth" "$line" | timeout ${timeoutS} ${quote(q.cliPath)} --askpass -h 127.0.0.1 -p ${q.port} 2>&1`,
    'done',
  ].join('\n');
  return shellCommand(script, {
    stdin: `${q.password}\n` + commands.map((c) => encodeCliLine(c) + '\n').join(''),
    become: q.become,
    timeoutMs: (timeoutS * commands.length + 15) * 1000,
  });
}

/** The replies in redisCliCommands' output, one string per command (trimmed, CR removed). */
export function splitCliReplies(stdout: string): string[] {
  return stdout
    .split(`${REPLY_MARK}\n`)
    .slice(1)
    .map((s) => s.replace(/\r/g, '').trim());
}
