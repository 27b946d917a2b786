/**
 * package: install, remove or upgrade OS packages with the host's package manager (apt on the
 * Debian family, dnf/yum on the RHEL family). The plan reads every package's state in one query.
 */
import { z } from 'zod';
import { describeFailure, quote, quoteArgv, shellCommand } from '../core/command.js';
import type { CommandResult } from '../core/command.js';
import type { Connection, HostFacts, Module, ModuleOutcome, PlannedChange, TaskContext } from '../core/types.js';
import { ModuleFailure } from './lib/failure.js';
import { runScript } from './lib/run.js';

const packageName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9+._:-]*$/, 'not a package name');

const packageArgs = z.strictObject({
  name: z.union([packageName, z.array(packageName).min(1)]).transform((v) => (typeof v === 'string' ? [v] : v)),
  state: z.enum(['present', 'absent', 'latest']).default('present'),
  /** apt: run apt-get update first when the cache is older than cache_valid_time or missing. dnf/yum: refresh metadata. */
  update_cache: z.boolean().default(false),
  cache_valid_time: z.number().int().nonnegative().default(3600),
  /**
   * Seconds to wait while another process (unattended-upgrades, a second apt) holds an apt or
   * dpkg lock, before failing with a message naming the holder.
   */
  lock_timeout: z.number().int().nonnegative().default(120),
  /**
   * deny: Debian maintainer scripts may not start services during this install (a temporary
   * /usr/sbin/policy-rc.d exiting 101), so e.g. keepalived never starts on its sample config.
   */
  policy_rc_d: z.enum(['deny', 'allow']).default('allow'),
});

export type PackageArgs = z.infer<typeof packageArgs>;

/** Installed version per package (undefined = not installed); candidate versions when known. */
export interface PackageStatus {
  installed: Map<string, string | undefined>;
  candidate: Map<string, string | undefined>;
  /** apt cache age in seconds; undefined when there is no cache at all. */
  cacheAgeSeconds?: number;
}

/** Returns installed state per package from `dpkg-query -W -f '${Package} ${db:Status-Abbrev} ${Version}\n'` output (pure). */
export function parseDpkgQuery(stdout: string, names: readonly string[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>(names.map((n) => [n, undefined]));
  for (const line of stdout.split('\n')) {
    const [pkg, status, version] = line.trim().split(/\s+/);
    if (!pkg || !status) continue;
    // Second letter of the abbreviated status: i = installed (n, c, U, F, H... are not usable).
    if (status[1] !== 'i') continue;
    for (const n of names) if (n === pkg || n.split(':')[0] === pkg) out.set(n, version ?? '');
  }
  return out;
}

/** Returns the candidate version per package from `apt-cache policy` output (pure). */
export function parseAptPolicy(stdout: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    const head = /^(\S+):$/.exec(line);
    if (head) {
      current = head[1];
      continue;
    }
    const cand = /^\s+Candidate:\s*(\S+)/.exec(line);
    if (cand && current) out.set(current, cand[1] === '(none)' ? undefined : cand[1]);
  }
  return out;
}

/** Returns installed state per package from `rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\n'` output (pure). */
export function parseRpmQuery(stdout: string, names: readonly string[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>(names.map((n) => [n, undefined]));
  for (const line of stdout.split('\n')) {
    if (/is not installed/.test(line)) continue;
    const [pkg, version] = line.trim().split(/\s+/);
    if (pkg && out.has(pkg)) out.set(pkg, version);
  }
  return out;
}

/** Returns the packages with an update from `dnf/yum check-update` output (pure). */
export function parseCheckUpdate(stdout: string, names: readonly string[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const line of stdout.split('\n')) {
    const [nameArch, version] = line.trim().split(/\s+/);
    if (!nameArch || !version) continue;
    const name = nameArch.replace(/\.[^.]+$/, '');
    if (names.includes(name)) out.set(name, version);
  }
  return out;
}

export type PackageAction = 'install' | 'upgrade' | 'remove';
export type PackageManager = 'apt' | 'dnf' | 'yum';

export interface PackagePlanState {
  action?: PackageAction;
  packages: string[];
  /** apt: `apt-get update` first. dnf/yum: refresh the repositories' metadata with the install. */
  updateCache: boolean;
}

/** Returns what to do for the wanted state given the status (pure): action, packages, and whether to refresh the cache. */
export function planPackages(
  args: Pick<PackageArgs, 'name' | 'state' | 'update_cache' | 'cache_valid_time'>,
  status: PackageStatus,
  manager: PackageManager,
): { changes: PlannedChange[]; reason?: string; state: PackagePlanState } {
  const names = args.name;
  const missing = names.filter((n) => status.installed.get(n) === undefined);
  const present = names.filter((n) => status.installed.get(n) !== undefined);
  const changes: PlannedChange[] = [];
  const state: PackagePlanState = { packages: [], updateCache: false };
  if (args.state === 'absent') {
    if (present.length) {
      state.action = 'remove';
      state.packages = present;
      changes.push({ description: `remove ${present.join(' ')}` });
    }
  } else {
    if (missing.length) {
      state.action = 'install';
      state.packages = [...missing];
      changes.push({ description: `install ${missing.join(' ')}` });
    }
    if (args.state === 'latest') {
      const outdated = present.filter((n) => {
        const cand = status.candidate.get(n.split(':')[0]) ?? status.candidate.get(n);
        return cand !== undefined && cand !== status.installed.get(n);
      });
      if (outdated.length) {
        state.action = state.action ?? 'upgrade';
        state.packages.push(...outdated);
        changes.push({ description: `upgrade ${outdated.map((n) => `${n} (${status.installed.get(n)} → ${status.candidate.get(n.split(':')[0]) ?? status.candidate.get(n)})`).join(' ')}` });
      }
    }
  }
  // The index is refreshed only for something to install (or, for `latest`, to compare against):
  // a pair whose packages are all there re-runs with 0 changed however old its apt lists are.
  // apt's freshness is known (cache_valid_time); dnf and yum refresh as part of the install itself.
  if (args.update_cache && (state.action === 'install' || state.action === 'upgrade' || args.state === 'latest')) {
    if (manager !== 'apt') state.updateCache = state.action !== undefined;
    else if (status.cacheAgeSeconds === undefined || status.cacheAgeSeconds > args.cache_valid_time) {
      state.updateCache = true;
      changes.unshift({
        description: status.cacheAgeSeconds === undefined ? 'apt-get update (no package index)' : `apt-get update (the index is ${status.cacheAgeSeconds} s old)`,
      });
    }
  }
  const reason =
    changes.length > 0
      ? undefined
      : args.state === 'absent'
        ? `${names.join(', ')} not installed`
        : args.state === 'latest'
          ? `${names.join(', ')} installed and up to date`
          : `${names.join(', ')} already installed`;
  return { changes, reason, state };
}

// Age of the index: the newest of the lists folder and apt's update stamp. An empty folder (a
// container-built or freshly imaged host: `rm -rf /var/lib/apt/lists/*`) is "missing".
const APT_LISTS_SCRIPT = `s=/var/lib/apt/periodic/update-success-stamp
now=$(date +%s)
if ls /var/lib/apt/lists 2>/dev/null | grep -qv -e '^lock$' -e '^partial$' -e '^auxfiles$'; then
  t=$(stat -c %Y /var/lib/apt/lists)
  if [ -e "$s" ]; then u=$(stat -c %Y "$s"); [ "$u" -gt "$t" ] && t=$u; fi
  echo "cache-age $((now - t))"
else echo cache-age missing; fi`;

/** Returns the remote script that reads the packages' status (one round-trip). */
export function statusScript(manager: PackageManager, names: readonly string[], latest: boolean): string {
  const pkgs = quoteArgv(names);
  if (manager === 'apt') {
    return [
      `dpkg-query -W -f '\${Package} \${db:Status-Abbrev} \${Version}\\n' ${pkgs} 2>/dev/null`,
      'echo ---',
      latest ? `apt-cache policy ${pkgs} 2>/dev/null` : ':',
      'echo ---',
      APT_LISTS_SCRIPT,
    ].join('\n');
  }
  return [`rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' ${pkgs}`, 'echo ---', latest ? `${manager} -q check-update ${pkgs}` : ':', 'exit 0'].join('\n');
}

/** Returns the status parsed from statusScript output (pure). */
export function parseStatus(manager: PackageManager, stdout: string, names: readonly string[]): PackageStatus {
  const [query = '', policy = '', cache = ''] = stdout.split(/^---$/m);
  if (manager === 'apt') {
    const age = /cache-age (\d+|missing)/.exec(cache)?.[1];
    return {
      installed: parseDpkgQuery(query, names),
      candidate: parseAptPolicy(policy),
      cacheAgeSeconds: age === undefined || age === 'missing' ? undefined : Math.max(0, Number(age)),
    };
  }
  const status: PackageStatus = { installed: parseRpmQuery(query, names), candidate: new Map() };
  const updates = parseCheckUpdate(policy, names);
  for (const n of names) {
    if (status.installed.get(n) !== undefined) status.candidate.set(n, updates.get(n) ?? status.installed.get(n));
  }
  return status;
}

// Debian maintainer scripts ask /usr/sbin/policy-rc.d before starting a service; 101 = "no".
// An existing one is moved aside and put back whatever happens (trap on EXIT).
const POLICY_RC_D_DENY = `prc=/usr/sbin/policy-rc.d; saved=
if [ -e "$prc" ] || [ -L "$prc" ]; then saved="$prc.rha-saved"; mv -f -- "$prc" "$saved" || exit 1; fi
restore() { rm -f -- "$prc"; if [ -n "$saved" ]; then mv -f -- "$saved" "$prc"; fi; }
trap restore EXIT
trap 'exit 130' INT TERM HUP
printf '#!/bin/sh\\n# rha: no service starts during this package install\\nexit 101\\n' > "$prc" && chmod 0755 "$prc" || exit 1`;

/** What apt and dpkg say when another process holds one of their locks (apt ≥ 1.9 names it). */
const APT_LOCKED = 'Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock the administration directory|Unable to lock directory';
/** What apt says for a package its (stale or empty) index does not list. */
const APT_NOT_FOUND = "Unable to locate package|has no installation candidate|Couldn't find any package";
/** What dnf and yum say for a package their metadata does not list. */
const RPM_NOT_FOUND = 'No match for argument|Unable to find a match|No package .* available';
/** Exit code of the apply script when a lock stayed held past lock_timeout (EX_TEMPFAIL). */
export const LOCK_TIMEOUT_EXIT = 75;

// rha_apt ARGS: apt-get ARGS, run again every 2 s while another process holds an apt or dpkg lock,
// until the deadline. One mechanism for every apt command: `apt-get update` has no lock timeout
// of its own (the lists lock), and DPkg::Lock::Timeout needs apt ≥ 1.9.11. apt takes its locks
// before it changes anything, so running it again is safe. Its output is kept in $rha_out.
const APT_FUNCTIONS = (lockTimeout: number) => `rha_deadline=$(( $(date +%s) + ${lockTimeout} ))
rha_waited=; rha_since=; rha_updated=
rha_apt() {
  while :; do
    rha_rc=0
    rha_out=$(apt-get "$@" 2>&1) || rha_rc=$?
    if [ $rha_rc -ne 0 ] && printf '%s\\n' "$rha_out" | grep -qE '${APT_LOCKED}'; then
      rha_holder=$(printf '%s\\n' "$rha_out" | grep -m1 -E '${APT_LOCKED}' | sed 's/^E: //')
      if [ "$(date +%s)" -lt "$rha_deadline" ]; then
        [ -n "$rha_since" ] || { rha_since=$(date +%s); echo "@@rha:lock-wait $rha_holder"; }
        sleep 2
        continue
      fi
      printf '%s\\n' "$rha_out" >&2
      echo "@@rha:lock-timeout $rha_holder" >&2
      exit ${LOCK_TIMEOUT_EXIT}
    fi
    if [ -n "$rha_since" ]; then rha_waited=$(( \${rha_waited:-0} + $(date +%s) - rha_since )); rha_since=; fi
    if [ $rha_rc -eq 0 ]; then printf '%s\\n' "$rha_out"; return 0; fi
    printf '%s\\n' "$rha_out" >&2
    return $rha_rc
  done
}
rha_update() {
  rha_apt update -q
  mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp
  rha_updated=1
}`;

/** Returns the remote script that applies the plan (exported for tests). */
export function applyScript(manager: PackageManager, state: PackagePlanState, policyRcD: 'deny' | 'allow', lockTimeout = 120): string {
  const pkgs = quoteArgv(state.packages);
  const lines: string[] = ['set -e'];
  if (manager === 'apt') {
    lines.push('export DEBIAN_FRONTEND=noninteractive');
    if (policyRcD === 'deny') lines.push(POLICY_RC_D_DENY);
    lines.push(APT_FUNCTIONS(lockTimeout));
    if (state.updateCache) lines.push('rha_update');
    const confOpts = `-o ${quote('Dpkg::Options::=--force-confdef')} -o ${quote('Dpkg::Options::=--force-confold')}`;
    if (state.action === 'install' || state.action === 'upgrade') {
      const install = `rha_apt install -y -q --no-install-recommends ${confOpts} ${pkgs}`;
      // Once: a package apt cannot find may be missing only from a stale or empty index.
      lines.push(
        `if ! ${install}; then`,
        `  if [ -z "$rha_updated" ] && printf '%s\\n' "$rha_out" | grep -qE ${quote(APT_NOT_FOUND)}; then`,
        '    echo "@@rha:refreshed"',
        '    rha_update',
        `    ${install}`,
        '  else exit 100; fi',
        'fi',
      );
    } else if (state.action === 'remove') {
      lines.push(`rha_apt remove -y -q ${pkgs}`);
    }
    lines.push('if [ -n "$rha_waited" ]; then echo "@@rha:lock-waited $rha_waited"; fi');
  } else {
    // dnf --refresh marks the metadata expired first; yum has no such flag: expire-cache does it.
    const refreshed = (cmd: string) => (manager === 'dnf' ? [`dnf -y --refresh ${cmd} ${pkgs}`] : ['yum -y -q clean expire-cache', `yum -y ${cmd} ${pkgs}`]);
    if (state.action === 'install' || state.action === 'upgrade') {
      if (state.updateCache) lines.push(...refreshed(state.action));
      else {
        lines.push(
          `rha_rc=0; rha_out=$(${manager} -y ${state.action} ${pkgs} 2>&1) || rha_rc=$?`,
          `printf '%s\\n' "$rha_out"`,
          'if [ $rha_rc -ne 0 ]; then',
          `  printf '%s\\n' "$rha_out" | grep -qE ${quote(RPM_NOT_FOUND)} || exit $rha_rc`,
          '  echo "@@rha:refreshed"',
          ...refreshed(state.action).map((l) => `  ${l}`),
          'fi',
        );
      }
    } else if (state.action === 'remove') lines.push(`${manager} -y remove ${pkgs}`);
  }
  return lines.join('\n');
}

/** Runs a fixed script on a host (with the caller's become setting); how the package layer reaches a host. */
export type ScriptRunner = (script: string, opts?: { timeoutMs?: number; label?: string }) => Promise<CommandResult>;

/** What the package layer is asked for: the module's arguments, or another module's toolchain. */
export type PackageRequest = Pick<PackageArgs, 'name' | 'state' | 'update_cache' | 'cache_valid_time' | 'lock_timeout' | 'policy_rc_d'>;

/** The package managers rha knows, as a failure message names them. */
export const LOOKED_FOR = 'looked for apt-get, dnf, yum';

/** Returns the host's package manager, or undefined when its facts found none. */
export function findPackageManager(facts: Pick<HostFacts, 'packageManager'>): PackageManager | undefined {
  const pm = facts.packageManager;
  return pm === 'none' ? undefined : pm;
}

/** Returns the host's package manager, or throws the "no package manager" failure naming the host. */
export function packageManagerOf(host: string, facts: Pick<HostFacts, 'packageManager'>): PackageManager {
  const pm = findPackageManager(facts);
  if (!pm) throw new ModuleFailure(`no package manager found on ${host} (${LOOKED_FOR})`);
  return pm;
}

/** Reads the packages' state on a host and returns the plan; throws a ModuleFailure when the state cannot be read. */
export async function planPackagesOn(
  run: ScriptRunner,
  manager: PackageManager,
  req: PackageRequest,
): Promise<{ changes: PlannedChange[]; reason?: string; state: PackagePlanState; status: PackageStatus }> {
  const r = await run(statusScript(manager, req.name, req.state === 'latest'));
  if (!r.ok) throw new ModuleFailure(`cannot read package state: ${describeFailure(r)}`);
  const status = parseStatus(manager, r.stdout, req.name);
  return { ...planPackages(req, status, manager), status };
}

/** Applies a package plan on a host; returns the outcome (failed with a message naming the host and what to do, never throws). */
export async function applyPackagesOn(
  run: ScriptRunner,
  host: string,
  manager: PackageManager,
  req: PackageRequest,
  state: PackagePlanState,
  done: string,
): Promise<ModuleOutcome> {
  const tool = manager === 'apt' ? 'apt-get' : manager;
  // Installs can take minutes; a lock wait adds at most lock_timeout.
  const r = await run(applyScript(manager, state, req.policy_rc_d, req.lock_timeout), {
    timeoutMs: 30 * 60_000 + req.lock_timeout * 1000,
    label: `${tool} ${state.action ?? 'update'} ${state.packages.join(' ')}`.trim(),
  });
  const data = { packages: state.packages, action: state.action ?? 'none', stdout: r.stdout, stderr: r.stderr };
  if (!r.ok) return { changed: false, failed: true, msg: packageFailureMessage(host, r, req.lock_timeout), data };
  const notes: string[] = [];
  const waited = /@@rha:lock-waited (\d+)/.exec(r.stdout)?.[1];
  const holder = /@@rha:lock-wait (.*)/.exec(r.stdout)?.[1];
  if (waited !== undefined) notes.push(`waited ${waited} s for the package manager lock (${holder ?? 'held by another process'})`);
  if (r.stdout.includes('@@rha:refreshed')) notes.push(`${tool} could not find ${state.packages.join(' ')}: the package index was refreshed once and the install retried`);
  return { changed: true, failed: false, msg: [done, ...notes].join('; '), data };
}

/** Returns the message of a failed package run (pure): a lock held past the timeout names the host, the holder and the way on. */
export function packageFailureMessage(host: string, r: CommandResult, lockTimeout: number): string {
  const holder = /@@rha:lock-timeout (.*)/.exec(r.stderr)?.[1];
  if (r.code === LOCK_TIMEOUT_EXIT && holder !== undefined) {
    return (
      `${host}: the package manager is busy: ${holder.trim() || 'another process holds its lock'}, still after waiting ${lockTimeout} s. ` +
      `Another apt or dpkg run holds it (on a fresh machine often unattended-upgrades): let it finish, or stop it ` +
      `(systemctl stop unattended-upgrades), then run rha again; the package task's lock_timeout sets how long rha waits.`
    );
  }
  const clean = { ...r, stderr: r.stderr.replace(/^@@rha:.*\n?/gm, ''), stdout: r.stdout.replace(/^@@rha:.*\n?/gm, '') };
  const refreshed = /^@@rha:refreshed$/m.test(r.stdout)
    ? `\n(${host}: not found even after refreshing the package index: the package is not in this host's package sources)`
    : '';
  return describeFailure(clean) + refreshed;
}

/** Returns a runner that runs scripts on the task's host through runScript (read-ahead aware). */
function taskRunner(ctx: TaskContext): ScriptRunner {
  return (script, opts) => runScript(ctx, script, [], opts ?? {});
}

/** Returns a runner that runs scripts on any connection with the given become setting (another module's host, a build_host). */
export function connectionRunner(conn: Connection, become: boolean): ScriptRunner {
  return async (script, opts) => {
    const r = await conn.exec(shellCommand(script, { become, timeoutMs: opts?.timeoutMs }));
    return opts?.label ? { ...r, display: opts.label } : r;
  };
}

export const packageModule: Module<PackageArgs, PackagePlanState> = {
  name: 'package',
  args: packageArgs,
  // planPackagesOn's first script; none where the host has no package manager (plan says so).
  reads: (args, opts) =>
    opts.facts.packageManager === 'none'
      ? []
      : [{ script: statusScript(opts.facts.packageManager, args.name, args.state === 'latest'), args: [] }],
  async plan(ctx, args) {
    const manager = packageManagerOf(ctx.host.name, ctx.facts);
    const { changes, reason, state, status } = await planPackagesOn(taskRunner(ctx), manager, args);
    const installed = args.name.filter((n) => status.installed.get(n) !== undefined);
    return { changes, reason, state, data: { installed, missing: args.name.filter((n) => !installed.includes(n)) } };
  },
  async apply(ctx, args, plan) {
    const manager = packageManagerOf(ctx.host.name, ctx.facts);
    return applyPackagesOn(taskRunner(ctx), ctx.host.name, manager, args, plan.state!, plan.changes.map((c) => c.description).join('; '));
  },
};
