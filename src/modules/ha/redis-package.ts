/**
 * `install: package`: the distribution's Redis through the package layer, installed without
 * starting (rha's redis.conf and bring-up start it), Debian's conffile override kept at rha's modes.
 */
import { describeFailure, quote, shellCommand } from '../../core/command.js';
import type { ModuleOutcome, PlannedChange, TaskContext } from '../../core/types.js';
import { ModuleFailure } from '../lib/failure.js';
import {
  applyPackagesOn,
  connectionRunner,
  packageManagerOf,
  planPackagesOn,
  type PackageManager,
  type PackagePlanState,
  type PackageRequest,
} from '../package.js';
import { parseRedisVersion } from './redis-host.js';
import type { RedisInstallArgs } from './redis-install-args.js';

/** The distribution's Redis package: Debian's redis-server, the RHEL family's redis. */
function redisPackageRequest(manager: PackageManager, a: RedisInstallArgs): PackageRequest {
  return {
    name: [manager === 'apt' ? 'redis-server' : 'redis'],
    state: 'present',
    update_cache: true,
    cache_valid_time: 3600,
    lock_timeout: a.lock_timeout,
    // Debian's maintainer scripts would start Redis on the package's own config before rha's
    // redis.conf is there (and the bring-up order decides which node starts first).
    policy_rc_d: 'deny',
  };
}

/**
 * Returns the package layer's plan for the distribution's Redis; `now` describes what is installed.
 * Throws when the package is installed but its redis-server is not under redis.prefix.
 */
export async function planRedisPackage(ctx: TaskContext, a: RedisInstallArgs, now: string): Promise<{ changes: PlannedChange[]; state: PackagePlanState }> {
  const manager = packageManagerOf(ctx.host.name, ctx.facts);
  const p = await planPackagesOn(connectionRunner(ctx.conn, ctx.become), manager, redisPackageRequest(manager, a));
  // Installed, but not where redis.prefix says: the bring-up would start a binary that is not there.
  if (!p.changes.length) throw new ModuleFailure(`${p.reason}, but ${a.prefix}/bin/redis-server is not there: set redis.prefix to /usr for install: package`);
  const changes = p.changes.map((c) => ({ description: `${c.description}${c.description.startsWith('install') ? ` (the distribution's Redis${now}; it does not start: rha's config and bring-up do)` : ''}` }));
  return { changes, state: p.state };
}

// Debian's redis-server postinst registers a dpkg-statoverride "redis redis 640" for its conffile,
// which an upgrade re-applies: the redis user could then rewrite the config that holds the
// password. rha's layout is root:redis 640; with an override present the postinst leaves it alone.
const DEBIAN_CONF_OVERRIDE = `f=/etc/redis/redis.conf
if dpkg-statoverride --list "$f" 2>/dev/null | grep -q '^redis redis '; then
  dpkg-statoverride --remove "$f" && dpkg-statoverride --add root redis 640 "$f"
fi`;

/** Applies the package plan, then checks the installed redis-server runs; returns the outcome. */
export async function installRedisPackage(ctx: TaskContext, a: RedisInstallArgs, state: PackagePlanState, planned: string): Promise<ModuleOutcome> {
  const manager = packageManagerOf(ctx.host.name, ctx.facts);
  const req = redisPackageRequest(manager, a);
  const run = connectionRunner(ctx.conn, ctx.become);
  const out = await applyPackagesOn(run, ctx.host.name, manager, req, state, planned);
  if (out.failed) return out;
  const bin = quote(`${a.prefix}/bin/redis-server`);
  const after = [manager === 'apt' ? DEBIAN_CONF_OVERRIDE : ':', `${bin} --version`].join('\n');
  const r = await ctx.conn.exec(shellCommand(after, { become: ctx.become }));
  if (!r.ok) {
    return { changed: true, failed: true, msg: `${req.name[0]} is installed but ${a.prefix}/bin/redis-server does not run (set redis.prefix to /usr for install: package): ${describeFailure(r)}` };
  }
  const got = parseRedisVersion(r.stdout);
  if (got && got.version !== a.version) ctx.warn(`the distribution's Redis is ${got.version}, not the wanted ${a.version}`);
  return { changed: true, failed: false, msg: `redis ${got?.version ?? '?'} installed from the ${req.name[0]} package (not started): ${out.msg}`, data: { ...got } };
}
