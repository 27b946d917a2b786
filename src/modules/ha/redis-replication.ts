/**
 * `redis_replication`: makes this node a replica of the live master and waits until the sync is
 * complete (master_link_status:up, master_sync_in_progress:0). REPLICAOF discards the local
 * dataset, so it refuses when this node holds data the master lacks, unless `--force CLUSTER`.
 */
import { z } from 'zod';
import { quote, describeFailure } from '../../core/command.js';
import type { Module, ModuleOutcome, Plan, TaskContext } from '../../core/types.js';
import { redisCliCommand, type NodeState } from './redis-state.js';
import { pairOf, type PairView } from './pair.js';
import { forcedClusters, readPairNode, TopologyRefusal } from './ha-topology.js';
import { ModuleFailure } from '../lib/failure.js';
import { writeRoleFileScript } from './role-file.js';
import { within } from './history.js';

const args = z.strictObject({
  /** Inventory name of the live master (from `ha_topology`). */
  master: z.string().min(1),
  /** Seconds to wait for the initial sync. */
  timeout: z.number().int().positive().default(600),
});
type Args = z.infer<typeof args>;

interface State {
  pair: PairView;
  masterAddress: string;
  self: NodeState;
  needReplicaof: boolean;
  /** Only rewrite replication.conf (already replicating from the master). */
  recordRole?: boolean;
  /** The REPLICAOF discards keys not in the master's history: BGSAVE and keep a copy first. */
  snapshot?: boolean;
}

export const redisReplication: Module<Args, State> = {
  name: 'redis_replication',
  keepsReads: true,
  actsOnPeers: true,
  args,
  async plan(ctx, a) {
    const pair = pairOf(ctx);
    if (a.master === ctx.host.name) throw new ModuleFailure(`redis_replication runs on the replica; ${a.master} is the master`);
    // Both nodes' state as an earlier step read it (nothing applied since) may show there is
    // nothing to do; anything else is decided again on a read of this step (see readPair).
    const read = (fresh: boolean) =>
      Promise.all([readPairNode(ctx, pair, ctx.host.name, { fresh }), readPairNode(ctx, pair, a.master, { fresh })]);
    if (ctx.observe) {
      const reused = await planFrom(ctx, a, pair, ...(await read(false))).catch(() => undefined);
      if (reused && reused.changes.length === 0) return reused;
    }
    return planFrom(ctx, a, pair, ...(await read(true)));
  },
  async apply(ctx, a, plan) {
    return applyReplication(ctx, a, plan);
  },
};

/** redis_replication's plan from this node's and the master's state. */
async function planFrom(ctx: TaskContext, a: Args, pair: PairView, self: NodeState, master: NodeState): Promise<Plan<State>> {
  const masterAddress = pair.addressOf(a.master);
  if ((!self.redisUp || !master.redisUp) && ctx.check) {
    // Check mode on hosts where earlier tasks (install, start) have not really run.
    return {
      changes: [{ description: `REPLICAOF ${masterAddress} ${pair.port} (${a.master}) once both Redis servers run, then wait for the sync` }],
      state: { pair, masterAddress, self, needReplicaof: true },
    };
  }
  if (!self.redisUp) throw new ModuleFailure(`Redis on ${ctx.host.name} is not answering: ${self.error}`);
  if (!master.redisUp) throw new ModuleFailure(`Redis on the master ${a.master} is not answering: ${master.error}`);
  if (master.role !== 'master') throw new ModuleFailure(`${a.master} is not a master (role ${master.role}): nothing safe to replicate from`);
  const base = { pair, masterAddress, self };
  const following = self.role === 'slave' && self.masterHost === masterAddress;
  // replication.conf must say the same, or a restart would bring this node back in another role.
  const recorded = self.roleFile === `${masterAddress} ${pair.port}`;
  if (following && self.linkUp && !self.syncInProgress && recorded) {
    return { changes: [], reason: `replicating from ${a.master} (${masterAddress}), in sync at offset ${self.offset}`, state: { ...base, needReplicaof: false } };
  }
  if (following) {
    return {
      changes: [
        ...(recorded ? [] : [{ description: `record "replicaof ${masterAddress} ${pair.port}" in replication.conf` }]),
        { description: `wait for the sync from ${a.master} to complete` },
      ],
      state: { ...base, needReplicaof: false, recordRole: !recorded },
    };
  }
  // The one wipe rha refuses: this node's data replaced by an empty master's nothing. A master
  // holding data (the VIP holder, or the only node with data) is the live data: a node coming
  // back from a failure with a stale copy rejoins it, as the notify hook would do.
  const loses = self.keys;
  if (loses > 0 && master.keys === 0 && !forcedClusters(ctx).includes(pair.cluster)) {
    throw new TopologyRefusal(
      `cluster ${pair.cluster}: REPLICAOF ${masterAddress} would discard the ${loses} keys ${ctx.host.name} holds and copy ${a.master}, which is empty; ` +
        `rerun with --force ${pair.cluster} only if ${ctx.host.name}'s data may be lost`,
    );
  }
  // Keys that are not all in the master's history are lost by REPLICAOF: a snapshot first.
  const snapshot = loses > 0 && !within(self, master);
  const forced = loses > 0 && master.keys === 0;
  return {
    changes: [
      ...(snapshot ? [{ description: `BGSAVE on ${ctx.host.name} and keep a copy of its ${loses} keys under its data folder (rha-snapshots/), since they are not all in ${a.master}'s replication history` }] : []),
      { description: `REPLICAOF ${masterAddress} ${pair.port} (${a.master})${snapshot ? `, discarding ${loses} local keys${forced ? ' (--force)' : ''}` : ''}` },
      { description: `wait for the sync from ${a.master} to complete` },
    ],
    state: { ...base, needReplicaof: true, snapshot },
  };
}

async function applyReplication(ctx: TaskContext, a: Args, plan: Plan<State>): Promise<ModuleOutcome> {
  const { pair, masterAddress, needReplicaof, recordRole, snapshot } = plan.state!;
  const r = await ctx.conn.exec(replicateCommand(ctx, pair, masterAddress, needReplicaof, !!recordRole, a.timeout, !!snapshot));
  const snap = /^snapshot:(.*)$/m.exec(r.stdout)?.[1];
  const kept = snap ? `; the keys it held are kept in ${snap}` : '';
  if (!r.ok) return { changed: needReplicaof, failed: true, msg: describeFailure(r) + kept, data: snap ? { snapshot: snap } : undefined };
  const offset = /^slave_repl_offset:.*$/m.exec(r.stdout)?.[0] ?? '';
  // A repair says what it repaired: the role file disagreed with the running role (e.g. after a
  // reboot of both nodes the notify hook of the new master re-pointed this Redis at run time only).
  const repaired = recordRole && !needReplicaof ? `; recorded "replicaof ${masterAddress} ${pair.port}" in replication.conf, which said otherwise (a restart would have brought ${ctx.host.name} back in another role)` : '';
  return { changed: true, failed: false, msg: `replica of ${a.master} (${masterAddress}), sync complete: ${offset}${repaired}${kept}`, data: snap ? { snapshot: snap } : undefined };
}

/** One remote script: record the role, issue REPLICAOF (when needed), wait for the sync. */
function replicateCommand(ctx: TaskContext, pair: PairView, masterAddress: string, replicaof: boolean, recordRole: boolean, timeoutS: number, snapshot: boolean) {
  // `rcli`: redis-cli authenticated over stdin (redisCliCommand), usable in $(...) too.
  const cli = 'rcli';
  const lines = [
    'set -e',
    ...(snapshot ? snapshotScript(cli, `before-replicaof-${masterAddress.replace(/[^A-Za-z0-9._-]/g, '_')}`, timeoutS) : []),
    // Record the role first (temp file + rename), so a restart comes back as a replica.
    replicaof || recordRole ? writeRoleFileScript(pair.configDir, { host: masterAddress, port: pair.port }, 'redis_replication') : ':',
    replicaof ? `rcli REPLICAOF ${quote(masterAddress)} ${pair.port} >/dev/null` : ':',
    `end=$(( $(date +%s) + ${timeoutS} ))`,
    'while :; do',
    `  info=$(rcli INFO replication | tr -d '\\r')`,
    `  if echo "$info" | grep -qx 'master_link_status:up' && echo "$info" | grep -qx 'master_sync_in_progress:0'; then`,
    `    echo "$info" | grep '^slave_repl_offset:'; exit 0`,
    '  fi',
    `  [ "$(date +%s)" -lt "$end" ] || { echo "sync from ${masterAddress} not complete after ${timeoutS}s:" >&2; echo "$info" >&2; exit 1; }`,
    '  sleep 0.2',
    'done',
  ];
  const target = { cliPath: `${pair.binDir}/redis-cli`, port: pair.port, password: pair.password, become: ctx.become };
  return redisCliCommand(lines.join('\n'), target, { timeoutMs: (timeoutS + 30) * 1000 });
}

/**
 * Shell lines that BGSAVE the local Redis, wait for that save to finish, and copy the RDB file to
 * DIR/rha-snapshots/DBFILE.TIMESTAMP.WHY (DIR = Redis's own `dir`, the data folder), printing
 * `snapshot:PATH`. They fail (and so stop the script before anything destructive) when the save fails.
 */
export function snapshotScript(cli: string, why: string, timeoutS: number): string[] {
  const field = (name: string) => `$(${cli} INFO persistence | tr -d '\\r' | sed -n 's/^${name}://p')`;
  return [
    `rdbdir=$(${cli} CONFIG GET dir | sed -n 2p); rdbfile=$(${cli} CONFIG GET dbfilename | sed -n 2p)`,
    '[ -n "$rdbdir" ] && [ -n "$rdbfile" ] || { echo "cannot read Redis\'s dir/dbfilename: no snapshot, nothing replaced" >&2; exit 1; }',
    `saves=${field('rdb_saves')}`,
    `${cli} BGSAVE SCHEDULE >/dev/null`,
    `end=$(( $(date +%s) + ${timeoutS} ))`,
    `until [ "${field('rdb_saves')}" -gt "$saves" ] && [ "${field('rdb_bgsave_in_progress')}" = 0 ]; do`,
    `  [ "$(date +%s)" -lt "$end" ] || { echo "BGSAVE did not finish within ${timeoutS}s: no snapshot, nothing replaced" >&2; exit 1; }`,
    '  sleep 0.2',
    'done',
    `[ "${field('rdb_last_bgsave_status')}" = ok ] || { echo "BGSAVE failed (see the Redis log): no snapshot, nothing replaced" >&2; exit 1; }`,
    'snapdir="$rdbdir/rha-snapshots"; mkdir -p "$snapdir"; chmod 0750 "$snapdir"; chown --reference="$rdbdir" "$snapdir" 2>/dev/null || true',
    `snap="$snapdir/$rdbfile.$(date -u +%Y%m%dT%H%M%SZ).${why}"`,
    'cp -p "$rdbdir/$rdbfile" "$snap.tmp" && mv -f "$snap.tmp" "$snap"',
    'echo "snapshot:$snap"',
  ];
}
