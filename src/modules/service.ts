/**
 * service: start, stop, restart, reload and enable services. With systemd (facts.serviceManager)
 * through systemctl; without it (containers, the lab) as a plain supervised daemon: `exec` starts it
 * detached, `pidfile` tells whether it runs; or through /etc/init.d/NAME when that is all there is.
 */
import { basename } from 'node:path';
import { z } from 'zod';
import { describeFailure } from '../core/command.js';
import type { BulkReader, HostFacts, Module, PlannedChange, ReadSpec, TaskContext } from '../core/types.js';
import { absPathArg, argvArg } from './lib/args.js';
import { ModuleFailure } from './lib/failure.js';
import { forgetPrevious, REJECTED_SUFFIX, restorePrevious } from './lib/files.js';
import { changed, failed, runScript } from './lib/run.js';

const serviceArgs = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9@_.:-]+$/, 'not a service name'),
    state: z.enum(['started', 'stopped', 'restarted', 'reloaded']).optional(),
    enabled: z.boolean().optional(),
    /** systemd: run `systemctl daemon-reload` first (after unit files changed). */
    daemon_reload: z.boolean().default(false),
    /** Without systemd: the argv that starts the daemon (it may daemonize itself). */
    exec: argvArg.optional(),
    /** Without systemd: where the daemon's pid is (written by the daemon, or by rha with create_pidfile). */
    pidfile: absPathArg.optional(),
    /** The daemon does not write a pidfile and does not fork: rha writes the pid it started. */
    create_pidfile: z.boolean().default(false),
    /** The pid is this service's only if /proc/PID/comm equals this or its cmdline contains it (default: exec's program name). */
    match: z.string().min(1).optional(),
    /** Where the daemon's stdout/stderr go (default /var/log/rha-NAME.service.log). */
    log_file: absPathArg.optional(),
    reload_signal: z.string().regex(/^(SIG)?[A-Z0-9]+$/, 'a signal name like HUP').default('HUP'),
    /** Seconds between TERM and KILL. */
    stop_timeout: z.number().positive().default(10),
    /** Seconds to wait for the pidfile to name a live process after starting. */
    start_timeout: z.number().positive().default(30),
    /**
     * Config files to put back when a start, restart or reload fails: each FILE that a template or
     * copy with keep_previous replaced (FILE.rha-prev exists) gets its previous content back, and
     * the service is started once more with it; the task still fails, saying so. Once the service
     * runs, the previous copies are removed.
     */
    rollback: z.array(absPathArg).default([]),
  })
  .refine((a) => a.state !== undefined || a.enabled !== undefined, { message: 'give state, enabled, or both' })
  .refine((a) => (a.exec === undefined) === (a.pidfile === undefined), { message: 'exec and pidfile go together' });

export type ServiceArgs = z.infer<typeof serviceArgs>;

export type ServiceStep = 'start' | 'stop' | 'restart' | 'reload' | 'enable' | 'disable' | 'daemon-reload';

/** Returns the steps that reach the wanted state from the observed one (pure). restarted/reloaded always act. */
export function planServiceSteps(
  want: { state?: ServiceArgs['state']; enabled?: boolean },
  seen: { running: boolean; enabled?: boolean },
): ServiceStep[] {
  const steps: ServiceStep[] = [];
  switch (want.state) {
    case 'started':
      if (!seen.running) steps.push('start');
      break;
    case 'stopped':
      if (seen.running) steps.push('stop');
      break;
    case 'restarted':
      steps.push(seen.running ? 'restart' : 'start');
      break;
    case 'reloaded':
      // Reloading a stopped service fails (systemctl) or does nothing (signal): start it instead.
      steps.push(seen.running ? 'reload' : 'start');
      break;
    case undefined:
      break;
  }
  if (want.enabled === true && seen.enabled === false) steps.push('enable');
  if (want.enabled === false && seen.enabled === true) steps.push('disable');
  return steps;
}

// ---- systemd ------------------------------------------------------------------------------

// One systemctl call (is-active and is-enabled beside it took three, ~22 ms against 9 on a lab
// host): the unit's LoadState, ActiveState and UnitFileState (what is-enabled prints for a native
// unit), as load=/active=/enabled= lines. No --value: systemd before 230 does not have it.
const SYSTEMD_STATUS = `s=$(systemctl show -p LoadState -p ActiveState -p UnitFileState -- "$1" 2>/dev/null)
l=; a=; e=
set -f; IFS='
'
for kv in $s; do
  case "$kv" in LoadState=*) l=\${kv#*=} ;; ActiveState=*) a=\${kv#*=} ;; UnitFileState=*) e=\${kv#*=} ;; esac
done
# A unit generated from an init.d script: is-enabled asks the distribution's tool (update-rc.d).
case "$e" in generated|'') e=$(systemctl is-enabled -- "$1" 2>/dev/null) ;; esac
printf 'load=%s\\nactive=%s\\nenabled=%s\\n' "$l" "$a" "$e"`;

// The same for every unit in "$@", one call: systemctl prints a block per unit, in order, with an
// empty line between blocks.
const SYSTEMD_STATUS_MANY = 'systemctl show -p LoadState -p ActiveState -p UnitFileState -- "$@" 2>/dev/null';

/** Per unit, what SYSTEMD_STATUS prints for it, from SYSTEMD_STATUS_MANY's output; none when the blocks do not add up (pure). */
export function splitSystemdStatus(stdout: string, units: readonly string[]): Array<string | undefined> {
  const blocks = stdout.replace(/\n+$/, '').split(/\n\n/);
  if (blocks.length !== units.length) return units.map(() => undefined);
  return blocks.map((b) => {
    const f = new Map(b.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const));
    // A generated unit (or none) is asked again with is-enabled: that one reads alone.
    if (!f.has('LoadState') || !f.get('UnitFileState') || f.get('UnitFileState') === 'generated') return undefined;
    return `load=${f.get('LoadState') ?? ''}\nactive=${f.get('ActiveState') ?? ''}\nenabled=${f.get('UnitFileState') ?? ''}\n`;
  });
}

const systemdStatusReader: BulkReader = { script: SYSTEMD_STATUS_MANY, split: splitSystemdStatus };

/** Returns running/enabled from the systemd status script's output (pure). */
export function parseSystemdStatus(stdout: string): { found: boolean; running: boolean; enabled?: boolean; active: string; enabledText: string } {
  const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(stdout)?.[1]?.trim() ?? '';
  const active = get('active');
  const enabledText = get('enabled');
  const enabled = ['enabled', 'enabled-runtime', 'alias'].includes(enabledText)
    ? true
    : ['disabled', 'masked', 'masked-runtime', 'linked', 'linked-runtime'].includes(enabledText)
      ? false
      : undefined; // static, indirect, generated: not ours to change
  return {
    found: get('load') !== 'not-found',
    running: active === 'active' || active === 'activating' || active === 'reloading',
    enabled,
    active,
    enabledText,
  };
}

// ---- plain (pidfile) ------------------------------------------------------------------------

// A pid counts only while /proc/PID exists and is not a zombie.
const ALIVE = `alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; }`;

const PLAIN_STATUS = `${ALIVE}
pf=$1
if [ ! -f "$pf" ]; then echo nopidfile; exit 0; fi
pid=$(head -n1 -- "$pf" | tr -dc 0-9)
if alive "$pid"; then
  echo "pid $pid"; echo "comm $(cat "/proc/$pid/comm")"; echo "cmdline $(tr '\\0' ' ' < "/proc/$pid/cmdline")"
else echo "stale $pid"; fi`;

export type PlainStatus = { running: true; pid: number } | { running: false; why: string };

/** Returns whether the pidfile names a live process of this service (pure): comm equal to `match` or cmdline containing it. */
export function parsePlainStatus(stdout: string, match: string, pidfile: string): PlainStatus {
  const first = stdout.split('\n')[0]?.trim() ?? '';
  if (first === 'nopidfile') return { running: false, why: `${pidfile} does not exist` };
  if (first.startsWith('stale')) return { running: false, why: `${pidfile} names pid ${first.slice(6) || '(none)'}, which is not running` };
  const pid = Number(/^pid (\d+)/.exec(first)?.[1]);
  const comm = /^comm (.*)$/m.exec(stdout)?.[1] ?? '';
  const cmdline = /^cmdline (.*)$/m.exec(stdout)?.[1] ?? '';
  // comm is cut to 15 characters by the kernel.
  if (comm === match.slice(0, 15) || cmdline.includes(match)) return { running: true, pid };
  return { running: false, why: `${pidfile} names pid ${pid}, which is ${comm} (not ${match}): stale pidfile` };
}

/** Returns the start script: $1 pidfile, $2 log file, $3 timeout s, $4 create_pidfile 1/0, then the daemon's argv. */
export function plainStartScript(): string {
  return `${ALIVE}
pf=$1; log=$2; t=$3; mk=$4; shift 4
rm -f -- "$pf"
mkdir -p -- "$(dirname -- "$log")" "$(dirname -- "$pf")"
cd /
# setsid + no inherited stdio: the daemon outlives this command and the SSH channel can close.
setsid "$@" </dev/null >>"$log" 2>&1 &
bg=$!
if [ "$mk" = 1 ]; then echo "$bg" > "$pf"; fi
i=0
while [ "$i" -lt $((t * 10)) ]; do
  if [ -f "$pf" ]; then pid=$(head -n1 -- "$pf" | tr -dc 0-9); if alive "$pid"; then echo "started $pid"; exit 0; fi; fi
  if [ -n "$bg" ] && ! alive "$bg"; then
    wait "$bg"; rc=$?; bg=
    if [ "$rc" -ne 0 ]; then echo "$1 exited with status $rc; last lines of $log:" >&2; tail -n 20 -- "$log" >&2; exit 3; fi
  fi
  sleep 0.1; i=$((i + 1))
done
echo "$pf did not name a live process within $t s; last lines of $log:" >&2
tail -n 20 -- "$log" >&2
exit 4`;
}

/** Returns the stop script: $1 pid, $2 seconds before KILL, $3 pidfile. */
export function plainStopScript(): string {
  return `${ALIVE}
pid=$1; t=$2; pf=$3
kill -TERM "$pid" 2>/dev/null
i=0
while alive "$pid" && [ "$i" -lt $((t * 10)) ]; do sleep 0.1; i=$((i + 1)); done
if alive "$pid"; then kill -KILL "$pid" 2>/dev/null; sleep 0.2; echo "killed $pid after $t s"; fi
if alive "$pid"; then echo "pid $pid survived KILL" >&2; exit 1; fi
# Daemons usually remove their pidfile; one still naming the dead pid is stale.
if [ -f "$pf" ] && [ "$(head -n1 -- "$pf" | tr -dc 0-9)" = "$pid" ]; then rm -f -- "$pf"; fi`;
}

// ---- plan / apply -----------------------------------------------------------------------------

type Backend =
  | { kind: 'systemd' }
  | { kind: 'plain'; pid?: number }
  | { kind: 'initd' };

export interface ServicePlanState {
  backend: Backend;
  steps: ServiceStep[];
}

// Init scripts are not reliable witnesses: Debian's keepalived script has no status action (it
// prints its usage) and exits 0 for everything when its config is missing. So a service runs when
// /run/NAME.pid names a live NAME process, or else when `status` answers (some output, not the
// usage text) with 0. $1 name, $2 1 = after a start: wait up to 10 s for it to be running.
const INITD_STATUS = `${ALIVE}
[ -x "/etc/init.d/$1" ] || { echo noinitd; exit 0; }
want=$(printf '%.15s' "$1")
i=0
while :; do
  pid=$(head -n1 "/run/$1.pid" 2>/dev/null | tr -dc 0-9); comm=
  if alive "$pid"; then comm=$(cat "/proc/$pid/comm"); else pid=; fi
  out=$("/etc/init.d/$1" status 2>&1 </dev/null); rc=$?
  if [ -z "$out" ] || printf '%s' "$out" | grep -qi usage; then lsb=silent; else lsb=answered; fi
  i=$((i + 1))
  { [ -n "$pid" ] && [ "$comm" = "$want" ]; } || { [ "$lsb" = answered ] && [ "$rc" = 0 ]; } && break
  [ "$2" = 1 ] && [ "$i" -lt 50 ] || break
  sleep 0.2
done
echo "lsb $rc $lsb"
echo "pid \${pid:-none} $comm"`;

/** Returns whether an init.d service runs, from the init.d status script's output (pure); undefined = no init script. */
export function parseInitdStatus(stdout: string, name: string): { running: boolean; status: string } | undefined {
  const lsb = /^lsb (\d+) (answered|silent)$/m.exec(stdout);
  const pid = /^pid (\d+|none) ?(.*)$/m.exec(stdout);
  if (!lsb || !pid) return undefined;
  if (pid[1] !== 'none' && pid[2] === name.slice(0, 15)) return { running: true, status: `running (pid ${pid[1]} in /run/${name}.pid)` };
  if (lsb[2] === 'answered') {
    return lsb[1] === '0' ? { running: true, status: 'running (init.d status 0)' } : { running: false, status: `stopped (init.d status ${lsb[1]})` };
  }
  return { running: false, status: `stopped (no live ${name} in /run/${name}.pid)` };
}

// $1 unit: its status and the tail of its journal for this boot, for a unit that failed to start.
const UNIT_DIAGNOSIS = `echo "systemctl status $1:"
systemctl status --no-pager --lines=0 -- "$1" 2>&1 | sed 's/^/  /'
echo "journalctl -u $1 (last 20 lines):"
journalctl -u "$1" -b --no-pager -n 20 -o short-iso 2>&1 | sed 's/^/  /'`;

/** The unit's `systemctl status` and journal tail, indented, for an error message. */
async function unitDiagnosis(ctx: TaskContext, name: string): Promise<string> {
  const r = await runScript(ctx, UNIT_DIAGNOSIS, [name], { label: `systemctl status ${name}; journalctl -u ${name}` });
  return (r.stdout + r.stderr).trimEnd();
}

/** The steps after which the service must run with its installed config files. */
const STARTS: readonly ServiceStep[] = ['start', 'restart', 'reload'];

const CGROUP_RETRIED = 'rha: 219/CGROUP, tried again';
/**
 * `systemctl STEP UNIT` ($2, $1) for a step that starts something, tried once more when systemd
 * failed it with 219/CGROUP: it could not put the new process in the unit's cgroup, so nothing of
 * the service ran. Seen once, in the lab's systemd containers under a full test run's load, right
 * after the unit had stopped; a real host can meet it too (systemd/systemd#32460).
 */
export const SYSTEMD_START = `systemctl "$2" -- "$1" && exit 0
rc=$?
[ "$(systemctl show -p ExecMainStatus --value -- "$1" 2>/dev/null)" = 219 ] || exit $rc
echo '${CGROUP_RETRIED}'
systemctl reset-failed -- "$1" 2>/dev/null
systemctl "$2" -- "$1"`;

/**
 * After `step` failed (`why`): puts back the previous copies of the rollback files that a
 * template/copy with keep_previous left, and starts (or reloads) the service once more with them.
 * Returns the failure message, saying what was restored and whether the service runs again.
 */
async function rollBack(
  ctx: TaskContext,
  args: ServiceArgs,
  step: ServiceStep,
  why: string,
  runStep: (s: ServiceStep) => Promise<string | undefined>,
): Promise<string> {
  const restore = await restorePrevious(ctx, args.rollback);
  if (!restore.ok) return `${why}\nrestoring the previous ${args.rollback.join(', ')} failed: ${restore.msg}`;
  if (restore.restored.length === 0) return why;
  const names = restore.restored.map((f) => basename(f)).join(' and ');
  const kept = restore.restored.map((f) => `${f}${REJECTED_SUFFIX}`).join(', ');
  const head = `${step} ${args.name} failed on ${ctx.host.name} with the new ${names}`;
  if (ctx.facts.serviceManager === 'systemd') await runScript(ctx, 'systemctl reset-failed -- "$1"', [args.name], { label: `systemctl reset-failed ${args.name}` });
  const again = await runStep(step === 'reload' ? 'reload' : 'start');
  if (again === undefined) {
    return `${head}; restored the previous one${restore.restored.length > 1 ? 's' : ''}, ${args.name} running again (the rejected file is kept as ${kept}):\n${why}`;
  }
  return `${head}; restored the previous one${restore.restored.length > 1 ? 's' : ''}, but ${args.name} does not start with it either (the rejected file is kept as ${kept}):\n${why}\nwith the previous ${names}: ${again}`;
}

function describe(step: ServiceStep, name: string, backend: Backend): string {
  const how = backend.kind === 'systemd' ? '' : backend.kind === 'initd' ? ' (init.d)' : '';
  return `${step} ${name}${how}`;
}

/** The read observe() makes first (for Module.reads). */
export function serviceRead(args: ServiceArgs, facts: HostFacts): ReadSpec {
  if (facts.serviceManager === 'systemd') return { script: SYSTEMD_STATUS, args: [args.name], bulk: { reader: systemdStatusReader, path: args.name } };
  if (args.exec && args.pidfile) return { script: PLAIN_STATUS, args: [args.pidfile] };
  return { script: INITD_STATUS, args: [args.name, '0'] };
}

async function observe(
  ctx: TaskContext,
  args: ServiceArgs,
): Promise<{ backend: Backend; running: boolean; enabled?: boolean; status: string; unitPending?: boolean }> {
  if (ctx.facts.serviceManager === 'systemd') {
    const r = await runScript(ctx, SYSTEMD_STATUS, [args.name]);
    const s = parseSystemdStatus(r.stdout);
    // exec/pidfile are for hosts without systemd: where systemd runs and has the unit, the unit is
    // the one way to run it (a daemon started beside systemd would not come back after a reboot,
    // and systemd would start a second one at boot).
    if (s.found || !args.exec) {
      if (!s.found && !args.daemon_reload) {
        // In check mode the task that installs the unit (a template, a package) did not run: plan
        // for the unit it would have installed, stopped and disabled as a new one is, instead of
        // failing a dry run of a fresh host (as the user module does for a group made earlier).
        if (ctx.check) return { backend: { kind: 'systemd' }, running: false, enabled: false, status: 'not installed yet', unitPending: true };
        throw new ModuleFailure(`service ${args.name} not found on ${ctx.host.name} (no systemd unit)`);
      }
      return { backend: { kind: 'systemd' }, running: s.running, enabled: s.enabled, status: `${s.active}, ${s.enabledText || 'unknown'}` };
    }
  }
  if (args.exec && args.pidfile) {
    const r = await runScript(ctx, PLAIN_STATUS, [args.pidfile]);
    if (!r.ok) throw new ModuleFailure(`cannot read ${args.pidfile}: ${describeFailure(r)}`);
    const s = parsePlainStatus(r.stdout, args.match ?? basename(args.exec[0]), args.pidfile);
    return s.running
      ? { backend: { kind: 'plain', pid: s.pid }, running: true, status: `running (pid ${s.pid})` }
      : { backend: { kind: 'plain' }, running: false, status: `stopped (${s.why})` };
  }
  const r = await runScript(ctx, INITD_STATUS, [args.name, '0']);
  const st = parseInitdStatus(r.stdout, args.name);
  if (!st) {
    throw new ModuleFailure(
      `service ${args.name}: ${ctx.host.name} has no systemd, no exec/pidfile was given, and there is no /etc/init.d/${args.name}`,
    );
  }
  return { backend: { kind: 'initd' }, running: st.running, status: st.status };
}

export const serviceModule: Module<ServiceArgs, ServicePlanState> = {
  name: 'service',
  args: serviceArgs,
  reads: (args, { facts }) => [serviceRead(args, facts)],
  async plan(ctx, args) {
    const seen = await observe(ctx, args);
    if (seen.backend.kind !== 'systemd' && args.enabled !== undefined) {
      ctx.warn(`service ${args.name}: enabled ignored on ${ctx.host.name} (no systemd: nothing starts it at boot)`);
    }
    const steps = planServiceSteps({ state: args.state, enabled: seen.backend.kind === 'systemd' ? args.enabled : undefined }, seen);
    if (steps.length && args.daemon_reload && seen.backend.kind === 'systemd') steps.unshift('daemon-reload');
    const pending = seen.unitPending ? ` (its unit is not there yet: an earlier task of this run installs it)` : '';
    const changes: PlannedChange[] = steps.map((s) => ({ description: describe(s, args.name, seen.backend) + pending }));
    const reason = steps.length
      ? undefined
      : `${args.name} is ${seen.status}`;
    return { changes, reason, state: { backend: seen.backend, steps }, data: { status: seen.status, running: seen.running } };
  },
  async apply(ctx, args, plan) {
    const { backend, steps } = plan.state!;
    const notes: string[] = [];
    let pid = backend.kind === 'plain' ? backend.pid : undefined;
    // The old process would not stop: a config rollback and a second start cannot help.
    let stopFailed = false;
    // One step; a failed one comes back as its message (with the unit's status and journal on systemd).
    const runStep = async (step: ServiceStep): Promise<string | undefined> => {
      let r;
      if (backend.kind === 'systemd') {
        r =
          step === 'daemon-reload'
            ? await runScript(ctx, 'systemctl daemon-reload', [], { label: 'systemctl daemon-reload' })
            : await runScript(ctx, STARTS.includes(step) ? SYSTEMD_START : `systemctl ${step} -- "$1"`, [args.name, step], { label: `systemctl ${step} ${args.name}` });
        if (r.ok && r.stdout.includes(CGROUP_RETRIED)) notes.push(`systemd could not place ${args.name} in its cgroup at the first ${step} (status 219/CGROUP, nothing of it ran): started at the second`);
        if (!r.ok && STARTS.includes(step)) {
          return `${step} ${args.name} failed on ${ctx.host.name}: ${describeFailure(r)}\n${await unitDiagnosis(ctx, args.name)}`;
        }
      } else if (backend.kind === 'initd') {
        r = await runScript(ctx, '"/etc/init.d/$1" "$2" </dev/null', [args.name, step], { label: `/etc/init.d/${args.name} ${step}`, timeoutMs: (args.start_timeout + args.stop_timeout) * 1000 + 30_000 });
        if (r.ok && (step === 'start' || step === 'restart')) {
          // Init scripts exit 0 without starting anything (Debian's keepalived without a config):
          // believe the status, not the exit code.
          const after = parseInitdStatus((await runScript(ctx, INITD_STATUS, [args.name, '1'])).stdout, args.name);
          if (!after?.running) return `${step} ${args.name} failed: /etc/init.d/${args.name} ${step} exited 0 but ${args.name} is ${after?.status ?? 'not running'}`;
        }
      } else {
        const stop = () => runScript(ctx, plainStopScript(), [String(pid), String(args.stop_timeout), args.pidfile!], { timeoutMs: args.stop_timeout * 1000 + 30_000 });
        const start = () =>
          runScript(ctx, plainStartScript(), [args.pidfile!, args.log_file ?? `/var/log/rha-${args.name}.service.log`, String(args.start_timeout), args.create_pidfile ? '1' : '0', ...args.exec!], {
            timeoutMs: args.start_timeout * 1000 + 30_000,
          });
        if (step === 'stop') r = await stop();
        else if (step === 'start') r = await start();
        else if (step === 'restart') {
          r = await stop();
          if (r.ok) r = await start();
          else stopFailed = true;
        } else if (step === 'reload') {
          const sig = args.reload_signal.replace(/^SIG/, '');
          r = await runScript(ctx, 'kill -s "$2" "$1"', [String(pid), sig], { label: `kill -s ${sig} ${pid}` });
        } else {
          return undefined; // enable/disable are not planned without systemd
        }
        const started = /^started (\d+)/m.exec(r.stdout);
        if (started) pid = Number(started[1]);
        const killed = /^killed .*$/m.exec(r.stdout);
        if (killed) notes.push(killed[0]);
      }
      if (!r.ok) {
        // The start/stop scripts explain themselves on stderr (exit status, log tail).
        const own = backend.kind === 'plain' && r.code !== null && r.code >= 1 && r.code <= 4 && r.stderr.trim();
        return `${step} ${args.name} failed: ${own ? r.stderr.trim() : describeFailure(r)}`;
      }
      return undefined;
    };
    for (const step of steps) {
      const why = await runStep(step);
      if (why === undefined) continue;
      if (!STARTS.includes(step) || args.rollback.length === 0 || stopFailed) return failed(why);
      return failed(await rollBack(ctx, args, step, why, runStep));
    }
    // Running with the installed files: their previous copies are no longer a way back.
    if (args.rollback.length && steps.some((s) => STARTS.includes(s))) {
      const r = await forgetPrevious(ctx, args.rollback);
      if (!r.ok) notes.push(`could not remove the previous copies of ${args.rollback.join(', ')}: ${describeFailure(r)}`);
    }
    const msg = plan.changes.map((c) => c.description).join('; ') + (notes.length ? ` (${notes.join('; ')})` : '');
    return changed(msg, { data: { ...(pid ? { pid } : {}) } });
  },
};
