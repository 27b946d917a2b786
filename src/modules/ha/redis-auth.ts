/**
 * `redis_auth`: changes the Redis password of a running pair without a restart and without a
 * moment in which a client, a health check or the replication link holds a password Redis refuses.
 *
 *   phase add  (before redis.conf is rendered): on each node, the new password is accepted next to
 *              the old one (Redis 7 ACL: `ACL SETUSER default >NEW` keeps the old), and the
 *              requirepass/masterauth lines of redis.conf are rewritten in place, so that a
 *              password-only change leaves nothing for the redis.conf template (whose change would
 *              trigger the rolling restart).
 *   …          the scripts' credentials (redis.auth) are switched by the keepalived playbook;
 *   phase drop (last step of the bring-up): once both nodes' redis.auth hold the new password (the
 *              notify hook talks to the peer's Redis too), which also means both nodes accept it,
 *              masterauth becomes the new one (a replica reconnecting with it is accepted by its
 *              master) and `ACL SETUSER default resetpass >NEW` leaves only the new one.
 *              Connections already authenticated, the replication link among them, stay so.
 *
 * The old password is learnt from the host (/etc/keepalived/rha/redis.auth, root only): read over
 * SSH into memory, never printed. Each phase re-reads the live state, so a run that stopped half
 * way converges on the next one (e.g. both passwords accepted → only the drop is left).
 */
import { z } from 'zod';
import { createHash } from 'node:crypto';
import { Secret, describeFailure, maskSecrets, shellCommand, type Command } from '../../core/command.js';
import type { Connection, Module, ReadSpec, TaskContext } from '../../core/types.js';
import { redisQuote } from '../../template/index.js';
import { ModuleFailure } from '../lib/failure.js';
import { writeFileAtomic } from '../lib/files.js';
import { changed, failed, runScript } from '../lib/run.js';
import { pairFrom, pairOf, type PairView } from './pair.js';
import { redisCliCommands, splitCliReplies, type CliArg } from './redis-state.js';

/** Where the keepalived scripts read the Redis password (playbooks/keepalived.yaml writes it). */
export const REDIS_AUTH_FILE = '/etc/keepalived/rha/redis.auth';

const args = z.strictObject({
  phase: z.enum(['add', 'drop']),
});
type Args = z.infer<typeof args>;

/** What one reply of redis-cli says about the connection. */
export type Reply = { kind: 'down'; text: string } | { kind: 'refused' } | { kind: 'ok'; text: string };

/** Classifies one redis-cli reply (pure). */
export function classifyReply(text: string): Reply {
  if (/Could not connect to Redis|Connection refused|No such file or directory|not found/.test(text)) return { kind: 'down', text };
  if (/AUTH failed|NOAUTH|WRONGPASS/.test(text)) return { kind: 'refused' };
  return { kind: 'ok', text };
}

/** The sha256 hashes in a raw `ACL GETUSER default` reply (the lines after `passwords`). */
export function parseAclPasswords(reply: string): string[] {
  const lines = reply.split('\n').map((l) => l.trim());
  const i = lines.indexOf('passwords');
  if (i < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(i + 1)) {
    if (!/^[0-9a-f]{64}$/.test(l)) break;
    out.push(l);
  }
  return out;
}

/** The value in a raw `CONFIG GET NAME` reply (`NAME` then the value; '' when empty). */
export function parseConfigGet(reply: string, name: string): string {
  const lines = reply.split('\n');
  return lines[0]?.trim() === name ? (lines[1] ?? '') : '';
}

/** redis.conf with its requirepass/masterauth lines set to `password`, as the template writes them (pure). */
export function rewriteAuthLines(conf: string, password: string): string {
  const q = redisQuote(password);
  return conf
    .split('\n')
    .map((l) => (/^requirepass\s/.test(l) ? `requirepass ${q}` : /^masterauth\s/.test(l) ? `masterauth ${q}` : l))
    .join('\n');
}

export const sha256hex = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

/** What a node's Redis accepts, read with the new password (and, when refused, the host's old one). */
export type AuthState =
  | { kind: 'down'; why: string }
  /** The new password works; `hashes` are all accepted ones, `masterauth` is whether it is the new one. */
  | { kind: 'new'; hashes: string[]; masterauthNew: boolean }
  /** Only the host's old password (from redis.auth) works. */
  | { kind: 'old'; old: string }
  | { kind: 'neither' };

export interface AddPlan {
  addNew: boolean;
  rewriteConf: boolean;
}

/**
 * The add phase's steps from a node's state (pure). masterauth waits for the drop phase: set now,
 * a replica reconnecting before its master accepts the new password would be refused.
 */
export function planAdd(s: AuthState, confHasOldLines: boolean): AddPlan {
  if (s.kind === 'old') return { addNew: true, rewriteConf: confHasOldLines };
  if (s.kind === 'neither') return { addNew: false, rewriteConf: false };
  return { addNew: false, rewriteConf: confHasOldLines };
}

/** Whether the drop phase has work on a node (pure): more than the new password accepted, or masterauth not yet new. */
export function needsDrop(s: Extract<AuthState, { kind: 'new' }>, password: string): boolean {
  return !(s.hashes.length === 1 && s.hashes[0] === sha256hex(password)) || !s.masterauthNew;
}

interface State {
  pair: PairView;
  auth: AuthState;
  add?: AddPlan;
  conf?: { path: string; content: string };
}

// As the login user: redis-cli needs no root, and a password on the stdin of a sudo'd command
// costs a sudo per command and may be recorded by a sudo I/O log (log_input).
const cli = (pair: PairView, password: string, commands: CliArg[][]): Command =>
  redisCliCommands({ cliPath: `${pair.binDir}/redis-cli`, port: pair.port, password, become: false }, commands);

const PROBE: CliArg[][] = [['ACL', 'GETUSER', 'default'], ['CONFIG', 'GET', 'masterauth']];

/** The probe with the inventory's password, as a read the runner may make ahead (beside its batch: it has stdin). */
export function probeRead(pair: PairView): ReadSpec {
  const c = cli(pair, pair.password, PROBE);
  return { script: c.argv[2], args: [], stdin: c.stdin as string, become: false };
}

/** Reads the node's AuthState (the new password first, the host's redis.auth when refused). */
export async function readAuthState(ctx: TaskContext, pair: PairView): Promise<AuthState> {
  const { conn, become } = ctx;
  const probe = async (password: string) => {
    const c = cli(pair, password, PROBE);
    // The probe with the inventory's password may have been read ahead by the runner (probeRead).
    const r = await runScript(ctx, c.argv[2], [], { stdin: c.stdin, timeoutMs: c.timeoutMs, become: false });
    const replies = splitCliReplies(r.stdout);
    const first = classifyReply(replies[0] ?? (r.stderr || 'no reply'));
    return { first, replies };
  };
  const withNew = await probe(pair.password);
  if (withNew.first.kind === 'down') {
    const text = withNew.first.text;
    return { kind: 'down', why: /No such file|not found/.test(text) ? 'redis-cli is not installed yet' : text.split('\n')[0] };
  }
  if (withNew.first.kind === 'ok') {
    return {
      kind: 'new',
      hashes: parseAclPasswords(withNew.replies[0]),
      masterauthNew: parseConfigGet(withNew.replies[1] ?? '', 'masterauth') === pair.password,
    };
  }
  // Refused: the password the host's scripts use is the one Redis was last given by rha.
  const f = await conn.exec(shellCommand(`cat ${REDIS_AUTH_FILE}`, { become, timeoutMs: 15_000 }));
  const old = f.ok ? f.stdout.replace(/\n$/, '') : '';
  if (!old || old === pair.password || /[\n\0]/.test(old)) return { kind: 'neither' };
  const withOld = await probe(old);
  return withOld.first.kind === 'ok' ? { kind: 'old', old } : { kind: 'neither' };
}

const NEITHER = (host: string) =>
  `Redis on ${host} accepts neither the inventory's redis.password nor the one in ${REDIS_AUTH_FILE} (what rha last gave it): ` +
  'put the password it runs with back into the inventory and provision, then change it';

const READ_CONF = '[ -f "$1" ] && cat -- "$1" || true';

export const redisAuth: Module<Args, State> = {
  name: 'redis_auth',
  // The peer's replication link and health checks authenticate against this Redis.
  actsOnPeers: true,
  args,
  // The add phase's read of redis.conf goes ahead with the tasks before it; the Redis probe
  // carries the password on stdin, so it is the task's own command (run beside that batch).
  reads: (a, { vars }) => {
    const pair = pairFrom(vars, String(vars.inventory_hostname));
    return [probeRead(pair), ...(a.phase === 'add' ? [{ script: READ_CONF, args: [`${pair.configDir}/redis.conf`] }] : [])];
  },
  async plan(ctx, a) {
    const pair = pairOf(ctx);
    const auth = await readAuthState(ctx, pair);
    if (a.phase === 'add') return planAddPhase(ctx, pair, auth);
    return planDropPhase(ctx, pair, auth);
  },
  async apply(ctx, a, plan) {
    const { pair, auth } = plan.state!;
    const mask = (t: string) => maskSecrets(t, [pair.password, ...(auth.kind === 'old' ? [auth.old] : []), ...ctx.secrets]);
    const done: string[] = [];
    const run = async (password: string, commands: CliArg[][], what: string) => {
      const r = await ctx.conn.exec(cli(pair, password, commands));
      const replies = splitCliReplies(r.stdout);
      const bad = commands.findIndex((_, i) => !/^(OK|PONG)$/.test(replies[i] ?? ''));
      if (!r.ok || bad >= 0) {
        // A reply may quote the modifier it refused (with the password in it): masked.
        throw new ModuleFailure(mask(`${what} on ${ctx.host.name} failed${done.length ? ` (after: ${done.join('; ')})` : ''}: ${replies[bad] ?? describeFailure(r)}`));
      }
      done.push(what);
    };
    try {
      if (a.phase === 'add') {
        const add = plan.state!.add!;
        if (add.addNew && auth.kind === 'old') {
          await run(auth.old, [['ACL', 'SETUSER', 'default', new Secret(`>${pair.password}`)]], 'new password accepted next to the old one');
        }
        if (add.addNew) await run(pair.password, [['PING']], 'the new password works');
        const conf = plan.state!.conf;
        if (add.rewriteConf && conf) {
          const w = await writeFileAtomic(ctx, { dest: conf.path, content: rewriteAuthLines(conf.content, pair.password) });
          if (!w.ok) return failed(mask(`${w.msg}${done.length ? ` (after: ${done.join('; ')})` : ''}`));
          done.push('redis.conf holds the new password (no restart)');
        }
      } else {
        await run(
          pair.password,
          [['ACL', 'SETUSER', 'default', 'resetpass', new Secret(`>${pair.password}`)], ...(auth.kind === 'new' && !auth.masterauthNew ? [['CONFIG', 'SET', 'masterauth', new Secret(pair.password)]] : [])],
          auth.kind === 'new' && !auth.masterauthNew ? 'masterauth set to the new password, old password dropped' : 'old password dropped',
        );
      }
    } catch (e) {
      if (e instanceof ModuleFailure) return failed(e.message);
      throw e;
    }
    return changed(`${done.join('; ')} on ${ctx.host.name}`);
  },
};

async function planAddPhase(ctx: TaskContext, pair: PairView, auth: AuthState) {
  if (auth.kind === 'neither') throw new ModuleFailure(NEITHER(ctx.host.name));
  const confPath = `${pair.configDir}/redis.conf`;
  const r = await runScript(ctx, READ_CONF, [confPath], { label: `read ${confPath}` });
  if (!r.ok) throw new ModuleFailure(`cannot read ${confPath} on ${ctx.host.name}: ${maskSecrets(describeFailure(r), ctx.secrets)}`);
  const content = r.stdout;
  const confHasOldLines = content !== '' && rewriteAuthLines(content, pair.password) !== content;
  const add = planAdd(auth, confHasOldLines);
  const changes = [
    ...(add.addNew ? [{ description: `accept the new Redis password on ${ctx.host.name} next to the old one (ACL SETUSER default >***), until both nodes' scripts use it` }] : []),
    ...(add.rewriteConf ? [{ description: `write the new password into the requirepass/masterauth lines of ${confPath} (no restart)` }] : []),
  ];
  const state: State = { pair, auth, add, conf: { path: confPath, content } };
  if (!changes.length) {
    const reason =
      auth.kind === 'down'
        ? `Redis is not running on ${ctx.host.name} (${auth.why}): it starts with the password in redis.conf`
        : `Redis on ${ctx.host.name} accepts the inventory's password`;
    return { changes, reason, state };
  }
  return { changes, state };
}

async function planDropPhase(ctx: TaskContext, pair: PairView, auth: AuthState) {
  const state: State = { pair, auth };
  if (auth.kind === 'down') return { changes: [], reason: `Redis is not running on ${ctx.host.name} (${auth.why})`, state };
  if (auth.kind !== 'new') {
    // Check mode: the add phase was only planned.
    if (ctx.check) return { changes: [{ description: `drop the old Redis password on ${ctx.host.name} once both nodes' scripts use the new one` }], state };
    if (auth.kind === 'neither') throw new ModuleFailure(NEITHER(ctx.host.name));
    throw new ModuleFailure(`Redis on ${ctx.host.name} still refuses the inventory's password: the \`redis_auth: { phase: add }\` step did not run (run the whole provision)`);
  }
  if (!needsDrop(auth, pair.password)) {
    return { changes: [], reason: `Redis on ${ctx.host.name} accepts only the inventory's password`, state };
  }
  // Both nodes' scripts must use the new password first: the notify hook of either talks to both Redis servers.
  const want = sha256hex(pair.password);
  const sumCmd = shellCommand(`sha256sum < ${REDIS_AUTH_FILE}`, { become: ctx.become, timeoutMs: 15_000 });
  const sumOf = async (conn: Connection | undefined) => (conn ? (await conn.exec(sumCmd)).stdout.split(' ')[0].trim() : '');
  const peerConn = await ctx.connectTo!(pair.peer).catch(() => undefined);
  const [self, peer] = await Promise.all([sumOf(ctx.conn), sumOf(peerConn)]);
  const behind = [...(self !== want ? [ctx.host.name] : []), ...(peer !== want ? [pair.peer] : [])];
  if (behind.length) {
    const what = `the old Redis password stays accepted on ${ctx.host.name}: ${REDIS_AUTH_FILE} on ${behind.join(' and ')} does not hold the new one yet (${peerConn ? 'its provisioning did not finish' : `${pair.peer} is unreachable`})`;
    if (ctx.check) return { changes: [{ description: `drop the old Redis password on ${ctx.host.name} once both nodes' scripts use the new one` }], state };
    throw new ModuleFailure(`${what}; provision both nodes again`);
  }
  const extra = auth.hashes.filter((h) => h !== want).length;
  return {
    changes: [
      {
        description: `${auth.masterauthNew ? '' : `set masterauth to the new password on ${ctx.host.name} (CONFIG SET), `}drop the old Redis password on ${ctx.host.name} (ACL SETUSER default resetpass >***${extra ? `; ${extra} other password${extra > 1 ? 's' : ''} accepted until now` : ''})`,
      },
    ],
    state,
  };
}
