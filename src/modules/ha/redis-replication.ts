/**
 * `redis_replication`: makes this node a replica of the live master and waits until the sync is
 * complete (master_link_status:up, master_sync_in_progress:0). REPLICAOF discards the local
 * dataset, so it refuses when this node holds data the master lacks, unless `--force CLUSTER`.
 */
import { z } from 'zod';
import { Secret, shellCommand, quote, describeFailure } from '../../core/command.js';
import type { Module, TaskContext } from '../../core/types.js';
import { readNodeState, type NodeState } from './redis-state.js';
import { pairOf, type PairView } from './pair.js';
import { forcedClusters, TopologyRefusal } from './ha-topology.js';
import { ModuleFailure } from '../lib/failure.js';
import { writeRoleFileScript } from './role-file.js';

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
}

export const redisReplication: Module<Args, State> = {
  name: 'redis_replication',
  args,
  async plan(ctx, a) {
    const pair = pairOf(ctx);
    if (a.master === ctx.host.name) throw new ModuleFailure(`redis_replication runs on the replica; ${a.master} is the master`);
    const masterAddress = pair.addressOf(a.master);
    const q = { cliPath: `${pair.binDir}/redis-cli`, port: pair.port, password: pair.password, vip: pair.vip, become: ctx.become, configDir: pair.configDir };
    const [self, master] = await Promise.all([
      readNodeState(ctx.conn, q),
      ctx.connectTo!(a.master).then((c) => readNodeState(c, q), () => readNodeState(undefined, q)),
    ]);
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
    return {
      changes: [
        { description: `REPLICAOF ${masterAddress} ${pair.port} (${a.master})${loses ? `, discarding ${loses} local keys (--force)` : ''}` },
        { description: `wait for the sync from ${a.master} to complete` },
      ],
      state: { ...base, needReplicaof: true },
    };
  },
  async apply(ctx, a, plan) {
    const { pair, masterAddress, needReplicaof, recordRole } = plan.state!;
    const r = await ctx.conn.exec(replicateCommand(ctx, pair, masterAddress, needReplicaof, !!recordRole, a.timeout));
    if (!r.ok) return { changed: needReplicaof, failed: true, msg: describeFailure(r) };
    // A repair says what it repaired: the role file disagreed with the running role (e.g. after a
    // reboot of both nodes the notify hook of the new master re-pointed this Redis at run time only).
    const repaired = recordRole && !needReplicaof ? `; recorded "replicaof ${masterAddress} ${pair.port}" in replication.conf, which said otherwise (a restart would have brought ${ctx.host.name} back in another role)` : '';
    return { changed: true, failed: false, msg: `replica of ${a.master} (${masterAddress}), sync complete: ${r.stdout.trim()}${repaired}` };
  },
};

/** One remote script: record the role, issue REPLICAOF (when needed), wait for the sync. */
function replicateCommand(ctx: TaskContext, pair: PairView, masterAddress: string, replicaof: boolean, recordRole: boolean, timeoutS: number) {
  const cli = `${quote(`${pair.binDir}/redis-cli`)} --no-auth-warning -h 127.0.0.1 -p ${pair.port}`;
  const lines = [
    'set -e',
    // Record the role first (temp file + rename), so a restart comes back as a replica.
    replicaof || recordRole ? writeRoleFileScript(pair.configDir, { host: masterAddress, port: pair.port }, 'redis_replication') : ':',
    replicaof ? `${cli} REPLICAOF ${quote(masterAddress)} ${pair.port} >/dev/null` : ':',
    `end=$(( $(date +%s) + ${timeoutS} ))`,
    'while :; do',
    `  info=$(${cli} INFO replication | tr -d '\\r')`,
    `  if echo "$info" | grep -qx 'master_link_status:up' && echo "$info" | grep -qx 'master_sync_in_progress:0'; then`,
    `    echo "$info" | grep '^slave_repl_offset:'; exit 0`,
    '  fi',
    `  [ "$(date +%s)" -lt "$end" ] || { echo "sync from ${masterAddress} not complete after ${timeoutS}s:" >&2; echo "$info" >&2; exit 1; }`,
    '  sleep 0.2',
    'done',
  ];
  return shellCommand(lines.join('\n'), { env: { REDISCLI_AUTH: new Secret(pair.password) }, become: ctx.become, timeoutMs: (timeoutS + 30) * 1000 });
}
