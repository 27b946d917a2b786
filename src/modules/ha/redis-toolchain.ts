/** The compiler toolchain on a host that builds Redis, installed through the package layer when missing. */
import type { Connection, TaskContext } from '../../core/types.js';
import { gatherFacts } from '../../facts/index.js';
import {
  applyPackagesOn,
  connectionRunner,
  findPackageManager,
  LOOKED_FOR,
  planPackagesOn,
  type PackageManager,
  type PackageRequest,
} from '../package.js';
import { BuildError } from './redis-host.js';
import type { RedisInstallArgs } from './redis-install-args.js';

/** The compiler toolchain's package names per package manager. */
export function toolchainPackages(manager: PackageManager): string[] {
  return manager === 'apt' ? ['gcc', 'make', 'libc6-dev'] : ['gcc', 'make', 'glibc-devel'];
}

/** A missing compiler and make, installed through the package layer on the host that builds (index refreshed when stale, lock waited for). */
export async function installToolchain(ctx: TaskContext, conn: Connection, host: string, a: RedisInstallArgs): Promise<void> {
  const elsewhere =
    `build elsewhere instead: set redis.build_host to a host of the same OS and architecture that can compile ` +
    `(rha builds there once and ships the binaries), or give ${host} a package source`;
  if (a.toolchain === 'never') throw new BuildError(`${host} has no C compiler or make, and redis.toolchain is "never": ${elsewhere}`);
  const facts = host === ctx.host.name ? ctx.facts : await gatherFacts(conn);
  const manager = findPackageManager(facts);
  if (!manager) throw new BuildError(`${host} has no C compiler or make, and it has no package manager (${LOOKED_FOR})\nTo go on: ${elsewhere}`);
  const run = connectionRunner(conn, ctx.become);
  const req: PackageRequest = {
    name: toolchainPackages(manager),
    state: 'present',
    update_cache: true,
    cache_valid_time: 3600,
    lock_timeout: a.lock_timeout,
    policy_rc_d: 'allow',
  };
  const p = await planPackagesOn(run, manager, req);
  if (!p.state.action && !p.state.updateCache) return;
  const out = await applyPackagesOn(run, host, manager, req, p.state, p.changes.map((c) => c.description).join('; '));
  if (out.failed) throw new BuildError(`${host} has no C compiler or make, and installing gcc, make and libc headers with ${manager} failed: ${out.msg}\nTo go on: ${elsewhere}`);
}
