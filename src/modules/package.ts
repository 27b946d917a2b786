/**
 * package: install, remove or upgrade OS packages with the host's package manager (apt on the
 * Debian family, dnf/yum on the RHEL family). The plan reads every package's state in one query.
 */
import { z } from 'zod';
import { describeFailure, quote, quoteArgv } from '../core/command.js';
import type { Module, PlannedChange, TaskContext } from '../core/types.js';
import { ModuleFailure } from './lib/failure.js';
import { changed, failed, runScript } from './lib/run.js';

const packageName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9+._:-]*$/, 'not a package name');

const packageArgs = z.strictObject({
  name: z.union([packageName, z.array(packageName).min(1)]).transform((v) => (typeof v === 'string' ? [v] : v)),
  state: z.enum(['present', 'absent', 'latest']).default('present'),
  /** apt: run apt-get update first when the cache is older than cache_valid_time or missing. dnf/yum: refresh metadata. */
  update_cache: z.boolean().default(false),
  cache_valid_time: z.number().int().nonnegative().default(3600),
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

export interface PackagePlanState {
  action?: PackageAction;
  packages: string[];
  updateCache: boolean;
}

/** Returns what to do for the wanted state given the status (pure): action, packages, and whether to refresh the cache. */
export function planPackages(
  args: Pick<PackageArgs, 'name' | 'state' | 'update_cache' | 'cache_valid_time'>,
  status: PackageStatus,
  manager: 'apt' | 'dnf' | 'yum',
): { changes: PlannedChange[]; reason?: string; state: PackagePlanState } {
  const names = args.name;
  const missing = names.filter((n) => status.installed.get(n) === undefined);
  const present = names.filter((n) => status.installed.get(n) !== undefined);
  const changes: PlannedChange[] = [];
  const state: PackagePlanState = { packages: [], updateCache: false };
  // apt's cache is refreshed only when stale; dnf/yum refresh as part of the install itself.
  const stale = manager === 'apt' && args.update_cache && (status.cacheAgeSeconds === undefined || status.cacheAgeSeconds > args.cache_valid_time);
  if (stale) {
    state.updateCache = true;
    changes.push({
      description: status.cacheAgeSeconds === undefined ? 'apt-get update (no package cache)' : `apt-get update (cache is ${status.cacheAgeSeconds} s old)`,
    });
  }
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

const APT_LISTS_SCRIPT = `s=/var/lib/apt/periodic/update-success-stamp
now=$(date +%s)
if ls /var/lib/apt/lists 2>/dev/null | grep -qv -e '^lock$' -e '^partial$' -e '^auxfiles$'; then
  t=$(stat -c %Y /var/lib/apt/lists)
  if [ -e "$s" ]; then u=$(stat -c %Y "$s"); [ "$u" -gt "$t" ] && t=$u; fi
  echo "cache-age $((now - t))"
else echo cache-age missing; fi`;

/** Returns the remote script that reads the packages' status (one round-trip). */
export function statusScript(manager: 'apt' | 'dnf' | 'yum', names: readonly string[], latest: boolean): string {
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
export function parseStatus(manager: 'apt' | 'dnf' | 'yum', stdout: string, names: readonly string[]): PackageStatus {
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

/** Returns the remote script that applies the plan (exported for tests). */
export function applyScript(manager: 'apt' | 'dnf' | 'yum', state: PackagePlanState, policyRcD: 'deny' | 'allow'): string {
  const pkgs = quoteArgv(state.packages);
  const lines: string[] = ['set -e'];
  if (manager === 'apt') {
    lines.push('export DEBIAN_FRONTEND=noninteractive');
    if (policyRcD === 'deny') lines.push(POLICY_RC_D_DENY);
    if (state.updateCache) {
      lines.push('apt-get update -q', `mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp`);
    }
    const confOpts = `-o ${quote('Dpkg::Options::=--force-confdef')} -o ${quote('Dpkg::Options::=--force-confold')}`;
    if (state.action === 'install' || state.action === 'upgrade') {
      lines.push(`apt-get install -y -q --no-install-recommends ${confOpts} ${pkgs}`);
    } else if (state.action === 'remove') {
      lines.push(`apt-get remove -y -q ${pkgs}`);
    }
  } else {
    const refresh = state.packages.length && manager === 'dnf' ? ' --refresh' : '';
    if (state.action === 'install') lines.push(`${manager} -y${refresh} install ${pkgs}`);
    else if (state.action === 'upgrade') lines.push(`${manager} -y${refresh} upgrade ${pkgs}`);
    else if (state.action === 'remove') lines.push(`${manager} -y remove ${pkgs}`);
  }
  return lines.join('\n');
}

/** Returns the host's package manager or throws the "no package manager" failure. */
function managerOf(ctx: TaskContext): 'apt' | 'dnf' | 'yum' {
  const pm = ctx.facts.packageManager;
  if (pm === 'none') throw new ModuleFailure(`no package manager found on ${ctx.host.name} (looked for apt-get, dnf, yum)`);
  return pm;
}

export const packageModule: Module<PackageArgs, PackagePlanState> = {
  name: 'package',
  args: packageArgs,
  async plan(ctx, args) {
    const manager = managerOf(ctx);
    const r = await runScript(ctx, statusScript(manager, args.name, args.state === 'latest'));
    if (!r.ok) throw new ModuleFailure(`cannot read package state: ${describeFailure(r)}`);
    const status = parseStatus(manager, r.stdout, args.name);
    const { changes, reason, state } = planPackages(args, status, manager);
    const installed = args.name.filter((n) => status.installed.get(n) !== undefined);
    return { changes, reason, state, data: { installed, missing: args.name.filter((n) => !installed.includes(n)) } };
  },
  async apply(ctx, args, plan) {
    const manager = managerOf(ctx);
    const state = plan.state!;
    // Installs can take minutes (and the lab's are offline, so no need for more).
    const r = await runScript(ctx, applyScript(manager, state, args.policy_rc_d), [], {
      timeoutMs: 30 * 60_000,
      label: `${manager === 'apt' ? 'apt-get' : manager} ${state.action ?? 'update'} ${state.packages.join(' ')}`.trim(),
    });
    const data = { packages: state.packages, action: state.action ?? 'none', stdout: r.stdout, stderr: r.stderr };
    if (!r.ok) return failed(describeFailure(r), { data });
    return changed(plan.changes.map((c) => c.description).join('; '), { data });
  },
};
