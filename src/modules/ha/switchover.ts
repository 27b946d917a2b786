/**
 * A planned switchover: the VIP and the master role move to the in-sync replica with no
 * acknowledged write lost. Writes are paused on the master (CLIENT PAUSE WRITE), the replica
 * catches up to the master's exact offset and is promoted, keepalived on the master is stopped
 * through the service manager (the VIP goes to the replica), the old master becomes a replica of
 * the new one (same history, same offset: a partial resync), its keepalived is started again (it
 * stays BACKUP: nopreempt), and the pause is lifted. If the VIP does not move, it is rolled back.
 *
 * The pause is as long as the VIP's move, and VRRP makes a backup wait (256 - priority) / 256
 * advert intervals after the master's stop advert (0.45 s at the default 140). So, for the move
 * only, the replica's priority is raised to 254 through keepalived's switchover track file (see
 * templates/keepalived/keepalived.conf.hbs): it then takes over within about 10 ms.
 */
import { shellCommand, quote } from '../../core/command.js';
import type { Connection } from '../../core/types.js';
import { readNodeState, redisCliCommand, type NodeState, type RedisCliTarget, type StateQuery } from './redis-state.js';
import { writeRoleFileScript } from './role-file.js';
import { describeVrrpState, waitVrrpStateScript } from './vrrp-state.js';

export interface SwitchoverNode {
  name: string;
  address: string;
  conn: Connection;
}

export interface SwitchoverSpec {
  cluster: string;
  port: number;
  password: string;
  vip: string;
  cliPath: string;
  configDir: string;
  become: boolean;
  /** Upper bound of the write pause; Redis lifts it by itself after this (a safety net). */
  maxPauseMs?: number;
  /** keepalived.preempt of the cluster: with it, the VIP returns to the higher priority (refused). */
  preempt?: boolean;
  /** redis.min_replicas_max_lag: the split-brain bound the new master gets (0 = none). Default 10, as the inventory's. */
  minReplicasMaxLag?: number;
  log?: (line: string) => void;
}

export interface SwitchoverResult {
  from: string;
  to: string;
  /** From CLIENT PAUSE until the new master holds the VIP and accepts writes. */
  pausedMs: number;
  /** Offset both nodes agreed on before the VIP moved. */
  offset: number;
}

export class SwitchoverError extends Error {
  override name = 'SwitchoverError';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Moves the master role and the VIP from the current master to its in-sync replica. */
export async function switchover(a: SwitchoverNode, b: SwitchoverNode, s: SwitchoverSpec): Promise<SwitchoverResult> {
  const log = s.log ?? (() => undefined);
  if (s.preempt) throw new SwitchoverError(`cluster ${s.cluster}: ${PREEMPT_REFUSAL}`);
  const q: StateQuery = { cliPath: s.cliPath, port: s.port, password: s.password, vip: s.vip, become: s.become, configDir: s.configDir };
  const [sa, sb] = await Promise.all([readNodeState(a.conn, q), readNodeState(b.conn, q)]);
  const master = sa.holdsVip ? a : sb.holdsVip ? b : undefined;
  if (!master) throw new SwitchoverError(`cluster ${s.cluster}: nobody holds the VIP; nothing to switch over`);
  const replica = master === a ? b : a;
  const ms = master === a ? sa : sb;
  const rs = master === a ? sb : sa;
  const why = refuse(master, ms, replica, rs);
  if (why) throw new SwitchoverError(`cluster ${s.cluster}: ${why}`);
  // Running is not ready: a replica whose health check has not passed `rise` times since its Redis
  // came back is in FAULT and would not take the VIP, so writes would stay paused until it did.
  // Such a replica gets READY_WAIT_S to become BACKUP before writes are paused at all.
  const ready = await replica.conn.exec(shellCommand(waitVrrpStateScript(s.cluster, 'BACKUP', READY_WAIT_S), { become: s.become, timeoutMs: (READY_WAIT_S + 15) * 1000 }));
  if (!ready.ok) {
    const seen = ready.stdout.trim().split('\n').pop() || 'UNKNOWN';
    throw new SwitchoverError(`cluster ${s.cluster}: keepalived on ${replica.name} is ${describeVrrpState(seen)} after ${READY_WAIT_S} s; nothing moved`);
  }

  const cli = (n: SwitchoverNode, args: string[], timeoutMs = 10_000) =>
    n.conn.exec(redisCliCommand(`rcli ${args.map(quote).join(' ')}`, cliTarget(s), { timeoutMs }));
  const maxPause = s.maxPauseMs ?? 10_000;
  const t0 = Date.now();
  let paused = false;
  let boosted: SwitchoverNode | undefined;
  try {
    const p = await cli(master, ['CLIENT', 'PAUSE', String(maxPause), 'WRITE']);
    if (!p.ok || !p.stdout.includes('OK')) throw new SwitchoverError(`CLIENT PAUSE on ${master.name} failed: ${p.stderr || p.stdout}`);
    paused = true;
    log(`writes paused on ${master.name}`);
    // Writes are paused: the master's offset no longer moves; wait until the replica has it all.
    const target = (await readNodeState(master.conn, q)).offset;
    const caught = await pollOn(replica, s, `[ "$(rcli INFO replication | tr -d '\\r' | sed -n 's/^slave_repl_offset://p')" -ge ${target} ]`, 5);
    if (!caught) throw new SwitchoverError(`${replica.name} did not reach offset ${target} of ${master.name} within 5 s: switchover abandoned, nothing moved`);
    log(`${replica.name} caught up to offset ${target}`);

    // Promote the replica now, at the master's exact offset, so that it takes writes the moment the
    // VIP arrives. The master is paused meanwhile: no client can write to both.
    const role = (n: SwitchoverNode, of: SwitchoverNode | undefined, what: string) =>
      n.conn.exec(
        redisCliCommand(
          [
            'set -e',
            of ? `rcli REPLICAOF ${quote(of.address)} ${s.port} >/dev/null` : 'rcli REPLICAOF NO ONE >/dev/null',
            // A master fenced by a notify hook takes writes again, with the user's split-brain bound
            // (never 0 unless the inventory says 0).
            of ? ':' : `rcli CONFIG SET ${minReplicasArgs(s.minReplicasMaxLag ?? 10).join(' ')} >/dev/null`,
            writeRoleFileScript(s.configDir, of ? { host: of.address, port: s.port } : undefined, what),
          ].join('\n'),
          cliTarget(s),
          { timeoutMs: 15_000 },
        ),
      );
    const promoted = await role(replica, undefined, 'rha switchover');
    if (!promoted.ok) throw new SwitchoverError(`promoting ${replica.name} failed: ${promoted.stderr || promoted.stdout}`);
    log(`${replica.name} promoted at offset ${target}`);

    // The replica at priority 254 for the move (nopreempt: it still waits for the master to leave).
    const boostFile = `${KEEPALIVED_DIR}/switchover.${s.cluster}`;
    boosted = replica;
    const boost = await replica.conn.exec(shellCommand(setBoostScript(boostFile, BOOST), { become: s.become, timeoutMs: 10_000 }));
    if (!boost.ok) log(`could not raise ${replica.name}'s VRRP priority for the move (${(boost.stderr || boost.stdout).trim()}): the VIP moves at the normal pace`);

    // Stop keepalived on the master through the service manager: the VIP goes to the replica.
    // Watched from the replica itself (one remote loop), so the pause is measured to 20 ms.
    let vipAt = 0;
    const vipArrives = pollOn(replica, s, `ip -o -4 addr show | grep -qF ${quote(` inet ${s.vip} `)}`, 15, 0.02).then((ok) => {
      vipAt = Date.now();
      return ok;
    });
    const stop = await master.conn.exec(shellCommand(KEEPALIVED_STOP, { become: s.become, timeoutMs: 30_000 }));
    const moved = stop.ok && (await vipArrives);
    const pausedMs = (vipAt || Date.now()) - t0;
    if (!moved) {
      // Back to where we were: the replica follows the master again (same history, same offset),
      // at its normal priority before the master's keepalived returns (else it would win).
      await role(replica, master, 'rha switchover, rolled back').catch(() => undefined);
      await unboost(replica).catch(() => undefined);
      boosted = undefined;
      await master.conn.exec(shellCommand(KEEPALIVED_START, { become: s.become, timeoutMs: 30_000 })).catch(() => undefined);
      throw new SwitchoverError(
        stop.ok
          ? `the VIP did not move to ${replica.name} within 15 s after keepalived stopped on ${master.name}; switchover rolled back; check keepalived's log on both`
          : `stopping keepalived on ${master.name} failed: ${stop.stderr || stop.stdout}; switchover rolled back`,
      );
    }
    log(`${replica.name} holds the VIP and takes writes after ${pausedMs} ms`);

    // The old master follows the new one: same history, same offset, so a partial resync.
    const demoted = await role(master, replica, 'rha switchover');
    if (!demoted.ok) throw new SwitchoverError(`making ${master.name} a replica of ${replica.name} failed: ${demoted.stderr || demoted.stdout}; run rha provision to repair`);
    // Its keepalived comes back as BACKUP (nopreempt): the VIP stays on the new master.
    const start = await master.conn.exec(shellCommand(KEEPALIVED_START, { become: s.become, timeoutMs: 30_000 }));
    if (!start.ok) throw new SwitchoverError(`starting keepalived again on ${master.name} failed: ${start.stderr || start.stdout}`);
    await cli(master, ['CLIENT', 'UNPAUSE']);
    paused = false;
    // Back to its configured priority: the old master runs again, as BACKUP, so nothing moves.
    await unboost(replica);
    boosted = undefined;
    const following = await pollUntil(async () => {
      const m = await readNodeState(master.conn, q);
      return m.role === 'slave' && m.masterHost === replica.address && m.linkUp;
    }, 15_000);
    if (!following) throw new SwitchoverError(`${master.name} is not replicating from ${replica.name} after the switchover; run rha provision to repair`);
    return { from: master.name, to: replica.name, pausedMs, offset: target };
  } finally {
    if (paused) await cli(master, ['CLIENT', 'UNPAUSE']).catch(() => undefined);
    if (boosted) await unboost(boosted).catch(() => undefined);
  }

  async function unboost(n: SwitchoverNode): Promise<void> {
    const r = await n.conn.exec(shellCommand(setBoostScript(`${KEEPALIVED_DIR}/switchover.${s.cluster}`, 0), { become: s.become, timeoutMs: 10_000 }));
    if (!r.ok) {
      throw new SwitchoverError(
        `could not set ${n.name}'s switchover priority back to normal (${(r.stderr || r.stdout).trim()}); restart keepalived on ${n.name} when convenient (it starts from 0)`,
      );
    }
  }
}

const KEEPALIVED_DIR = '/etc/keepalived/rha';

/** CONFIG SET arguments for the inventory's redis.min_replicas_max_lag (as redis.conf and notify.sh render it). */
export function minReplicasArgs(maxLag: number): string[] {
  return ['min-replicas-to-write', maxLag > 0 ? '1' : '0', 'min-replicas-max-lag', String(maxLag > 0 ? maxLag : 10)];
}
/** How long a switchover waits for the replica's keepalived to be BACKUP before it refuses. */
const READY_WAIT_S = 10;
/** Added to the replica's priority for the move; keepalived caps the result at 254. */
export const BOOST = 253;

/** Writes the track file's value atomically (keepalived watches the file and re-reads it at once). */
export function setBoostScript(file: string, value: number): string {
  const tmp = `${file}.rha-tmp`;
  return `printf '%s\\n' ${value} > ${quote(tmp)} && mv -f -- ${quote(tmp)} ${quote(file)}`;
}

/** Why a cluster with keepalived.preempt cannot be switched over (shown as the refusal). */
export const PREEMPT_REFUSAL =
  'keepalived.preempt is true, so the VIP would go back to the node with the higher priority as soon as its keepalived runs again, taking writes to a replica: a switchover cannot hold; set preempt: false (the default) to move the master role';

/** Why a switchover from `m` to `r` is refused, or undefined (pure). */
export function refuse(m: { name: string; address: string }, ms: NodeState, r: { name: string }, rs: NodeState): string | undefined {
  if (!ms.redisUp || ms.role !== 'master') return `${m.name} holds the VIP but its Redis is not a running master`;
  if (!rs.reachable || !rs.redisUp) return `the replica ${r.name} is down: nowhere to switch over to`;
  if (rs.role !== 'slave' || rs.masterHost !== m.address) return `${r.name} is not a replica of ${m.name}`;
  if (!rs.linkUp || rs.syncInProgress) return `${r.name} is not in sync with ${m.name} (link ${rs.linkUp ? 'up, sync in progress' : 'down'})`;
  if (!rs.keepalivedRunning) return `keepalived is not running on ${r.name}: it could not take the VIP`;
  if (!ms.keepalivedRunning) return `keepalived is not running on ${m.name}`;
  return undefined;
}

// keepalived through the service manager, never killall: systemd when it is PID 1, else the pidfile.
const SYSTEMD = '[ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]';
const KEEPALIVED_STOP = [
  `if ${SYSTEMD}; then systemctl stop keepalived; exit $?; fi`,
  'p=$(cat /run/keepalived.pid 2>/dev/null) || exit 0',
  'kill -TERM "$p" 2>/dev/null || exit 0',
  'for i in $(seq 100); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.1; done',
  'echo "keepalived (pid $p) did not stop within 10 s" >&2; exit 1',
].join('\n');
const KEEPALIVED_START = [
  `if ${SYSTEMD}; then systemctl start keepalived; exit $?; fi`,
  'setsid keepalived --use-file /etc/keepalived/keepalived.conf --pid /run/keepalived.pid </dev/null >>/var/log/rha-keepalived.service.log 2>&1',
  'for i in $(seq 100); do p=$(cat /run/keepalived.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && exit 0; sleep 0.1; done',
  'echo "keepalived did not start within 10 s" >&2; exit 1',
].join('\n');

/** Runs `condition` (sh) on the node every `everyS` seconds until true or `timeoutS`; true when it held. */
async function pollOn(n: SwitchoverNode, s: SwitchoverSpec, condition: string, timeoutS: number, everyS = 0.05): Promise<boolean> {
  const script = [`end=$(( $(date +%s) + ${timeoutS} ))`, `until ${condition}; do`, '  [ "$(date +%s)" -lt "$end" ] || exit 1', `  sleep ${everyS}`, 'done'].join('\n');
  const r = await n.conn.exec(redisCliCommand(script, cliTarget(s), { timeoutMs: (timeoutS + 10) * 1000 }));
  return r.ok;
}

function cliTarget(s: SwitchoverSpec): RedisCliTarget {
  return { cliPath: s.cliPath, port: s.port, password: s.password, become: s.become };
}

async function pollUntil(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await probe().catch(() => false)) return true;
    await sleep(50);
  }
  return false;
}
