/**
 * `keepalived_reload`: makes the running keepalived of both nodes load the installed
 * keepalived.conf, such that the two never disagree on `auth_pass` long enough to both become
 * MASTER. A VRRP advert with another auth_pass is dropped, so a node that reloaded alone stops
 * hearing its peer and takes the VIP after the master-down interval (~3 × advert_int + skew,
 * 3.5 s at advert_int 1): seen on lab hosts with keepalived 2.2.7, both nodes then held the VIP,
 * and the notify hooks demoted the live master's Redis.
 *
 * So the task runs on both nodes in one step (the runner starts it on every host at once: the two
 * SIGHUPs land within milliseconds), and a node whose new config changes auth_pass reloads only
 * when its peer's installed config holds the same auth_pass (and the peer reloads too, in the
 * same step). keepalived 2.2.7 keeps the instance's state across a reload (the VIP holder stays
 * MASTER, no notify runs), with `state BACKUP` + `nopreempt` as rha writes them.
 *
 * Whether the running keepalived has loaded the file is recorded after each reload in
 * /run/keepalived.rha-loaded (`CONF_SHA AUTH_SHA PID`); a keepalived started after the file was
 * last written has loaded it. So a run that stopped between installing the file and reloading
 * still reloads on the next one, although the file no longer changes then.
 */
import { z } from 'zod';
import { describeFailure, maskSecrets, shellCommand } from '../../core/command.js';
import type { Connection, Module, Plan, TaskContext } from '../../core/types.js';
import { runScript } from '../lib/run.js';
import { ModuleFailure } from '../lib/failure.js';
import { serviceModule, type ServiceArgs, type ServicePlanState } from '../service.js';
import { pairOf } from './pair.js';

const CONF = '/etc/keepalived/keepalived.conf';
const LOADED = '/run/keepalived.rha-loaded';

const args = z.strictObject({
  /** How the service module reloads it: name, and on hosts without systemd exec/pidfile/match. */
  service: z.record(z.string(), z.unknown()),
});
type Args = z.infer<typeof args>;

/** What a node runs and has installed (hashes only: the file holds auth_pass). */
export interface KeepalivedConfState {
  running: boolean;
  pid: string;
  confSha: string;
  authSha: string;
  /** The config the running keepalived loaded: `CONF_SHA AUTH_SHA`, or '' when unknown. */
  loadedConf: string;
  loadedAuth: string;
}

// Hashes of the installed file and of its auth_pass line; the loaded state from rha's record, or
// the file itself when keepalived started after the file was last written. Builtins where they do
// (read, case): a no-op reads this on every node, and each program is a fork and an exec; the
// start time is worked out only when rha's record does not name the running keepalived.
const READ = `conf=${CONF}
p=; [ -r /run/keepalived.pid ] && read -r p < /run/keepalived.pid
c=; [ -n "$p" ] && [ -r /proc/$p/comm ] && read -r c < /proc/$p/comm
case "$c" in *keepalived*) echo "running $p" ;; *) p=; echo "running -" ;; esac
[ -f $conf ] || { echo "conf -"; exit 0; }
echo "conf $(sha256sum < $conf)"
echo "auth $(sed -n 's/^[[:space:]]*auth_pass[[:space:]]*//p' $conf | sha256sum)"
l=; [ -r ${LOADED} ] && read -r l < ${LOADED}
echo "loaded $l"
case "$l" in
  ?*" "?*" $p") ;;
  *)
    st=; [ -n "$p" ] && [ -r /proc/$p/stat ] && read -r st < /proc/$p/stat
    up=; read -r up _ < /proc/uptime
    if [ -n "$st" ] && [ -n "$up" ]; then
      # Start time to 10 ms, in centiseconds: now, minus the time since boot (/proc/uptime: btime
      # is whole seconds, and the same second is common on a fast run), plus the process's start
      # in clock ticks since boot (field 22 of its stat; USER_HZ is 100 on Linux). Two programs.
      set -- \${st##*) }
      now=$(date +%s%N)
      s=$(( now / 10000000 - \${up%.*} * 100 - 1\${up#*.} + 100 + \${20} ))
      echo "started $((s / 100)).$(printf %02d $((s % 100)))"
      echo "mtime $(date -r $conf +%s.%N)"
    fi ;;
esac`;

/** Parses READ's output (pure). */
export function parseConfState(out: string): KeepalivedConfState {
  const f = new Map<string, string>();
  for (const l of out.split('\n')) {
    const i = l.indexOf(' ');
    if (i > 0) f.set(l.slice(0, i), l.slice(i + 1).trim());
  }
  const pid = f.get('running') ?? '-';
  const running = pid !== '-' && pid !== '';
  const [lConf = '', lAuth = '', lPid = ''] = (f.get('loaded') ?? '').split(' ');
  // sha256sum prints `HASH  -`: the hash is the first word.
  const confSha = (f.get('conf') ?? '').split(' ')[0];
  const authSha = (f.get('auth') ?? '').split(' ')[0];
  let loadedConf = '';
  let loadedAuth = '';
  if (running && lPid === pid && lConf) {
    loadedConf = lConf;
    loadedAuth = lAuth;
  } else if (running && Number(f.get('started') ?? 0) > Number(f.get('mtime') ?? Infinity)) {
    loadedConf = confSha;
    loadedAuth = authSha;
  }
  return { running, pid, confSha, authSha, loadedConf, loadedAuth };
}

/** Why this node may not reload now, or undefined (pure): an auth_pass change needs the peer on the same auth_pass. */
export function reloadBlocked(self: KeepalivedConfState, peer: KeepalivedConfState | undefined, names: { self: string; peer: string }): string | undefined {
  const authChanges = self.loadedAuth !== self.authSha; // unknown ('') counts as a change
  if (!authChanges) return undefined;
  const why = `reloading keepalived on ${names.self} alone would change its auth_pass while ${names.peer} keeps the old one: both would become MASTER`;
  if (!peer) return `${why} (${names.peer} is unreachable, so rha cannot tell); bring ${names.peer} back and provision both`;
  if (peer.authSha !== self.authSha) return `${why} (${names.peer}'s installed keepalived.conf has another auth_pass); provision both nodes`;
  return undefined;
}

interface State {
  svcArgs: ServiceArgs;
  svcPlan: Plan<ServicePlanState>;
  self: KeepalivedConfState;
}

async function readConfState(conn: Connection, become: boolean): Promise<KeepalivedConfState | undefined> {
  const r = await conn.exec(shellCommand(READ, { become, timeoutMs: 15_000 }));
  return r.ok ? parseConfState(r.stdout) : undefined;
}

/** This node's state: read ahead by the runner with the tasks before it, when it could. */
async function readOwnConfState(ctx: TaskContext): Promise<KeepalivedConfState | undefined> {
  const r = await runScript(ctx, READ, [], { timeoutMs: 15_000 });
  return r.ok ? parseConfState(r.stdout) : undefined;
}

export const keepalivedReload: Module<Args, State> = {
  name: 'keepalived_reload',
  // A reload can move the VRRP state of the pair, and the peer's notify hook with it.
  actsOnPeers: true,
  args,
  reads: () => [{ script: READ, args: [] }],
  async plan(ctx, a) {
    const pair = pairOf(ctx);
    // The peer's state matters only when this node has to reload: it is read then (a no-op re-run
    // reads this node only; it read both at once before).
    const readPeer = async () => {
      const peerConn = await ctx.connectTo!(pair.peer).catch(() => undefined);
      return peerConn ? readConfState(peerConn, ctx.become).catch(() => undefined) : undefined;
    };
    const self = await readOwnConfState(ctx);
    if (!self) throw new ModuleFailure(`cannot read ${CONF} on ${ctx.host.name}`);
    const svcArgs = serviceModule.args.parse({ ...a.service, state: 'reloaded' });
    const state = { svcArgs, svcPlan: { changes: [] }, self };
    if (!self.running) return { changes: [], reason: `keepalived is not running on ${ctx.host.name}: it loads ${CONF} when it starts`, state };
    if (self.confSha === '-') return { changes: [], reason: `no ${CONF} on ${ctx.host.name} yet`, state };
    if (self.loadedConf === self.confSha) return { changes: [], reason: `keepalived on ${ctx.host.name} runs the installed ${CONF}`, state };
    // In check mode the peer's file was only planned, not written: report the step.
    const blocked = ctx.check ? undefined : reloadBlocked(self, await readPeer(), { self: ctx.host.name, peer: pair.peer });
    if (blocked) throw new ModuleFailure(blocked);
    const authChanges = self.loadedAuth !== self.authSha;
    const svcPlan = await serviceModule.plan(ctx, svcArgs);
    return {
      changes: [
        {
          description: `reload keepalived on ${ctx.host.name} (${CONF} changed${authChanges ? `; auth_pass too: ${pair.peer} reloads in the same step` : ''})`,
        },
      ],
      state: { ...state, svcPlan },
    };
  },
  async apply(ctx, a, plan) {
    const { svcArgs, svcPlan, self } = plan.state!;
    const out = await serviceModule.apply(ctx, svcArgs, svcPlan);
    if (out.failed) return out;
    const rec = await ctx.conn.exec(
      shellCommand(`umask 077; printf '%s %s %s\\n' ${self.confSha} ${self.authSha} ${self.pid} > ${LOADED}.tmp && mv -f ${LOADED}.tmp ${LOADED}`, { become: ctx.become, timeoutMs: 15_000 }),
    );
    if (!rec.ok) return { ...out, warnings: [...(out.warnings ?? []), `cannot record the loaded keepalived.conf in ${LOADED}: ${maskSecrets(describeFailure(rec), ctx.secrets)}`] };
    return { ...out, changed: true };
  },
};
