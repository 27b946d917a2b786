/**
 * `redis_install`: Redis binaries on a host, built from source or installed from the
 * distribution, through every failure of the documented chain (domain.md, "Redis's side").
 *
 * Build once, ship everywhere: the first host that needs a given build (source checksum, OS,
 * architecture, allocator) compiles it (redis-build.ts); every other host, in this run or a later
 * one (a replaced node), receives the binaries from the controller's build cache, checksums
 * verified (redis-build-cache.ts). `install: package` goes through the package layer instead
 * (redis-package.ts). This file decides which, and in what order.
 */
import { describeFailure } from '../../core/command.js';
import type { Module, PlannedChange } from '../../core/types.js';
import { ModuleFailure } from '../lib/failure.js';
import type { PackagePlanState } from '../package.js';
import { buildOn } from './redis-build.js';
import { building, buildKey, loadArtifact, ship, storeArtifact } from './redis-build-cache.js';
import { parseProbe, PROBE_SCRIPT, probeArgs, tarballSha, type Installed, type Probe } from './redis-host.js';
import { runScript } from '../lib/run.js';
import { redisInstallArgs, tarball, type RedisInstallArgs } from './redis-install-args.js';
import { installRedisPackage, planRedisPackage } from './redis-package.js';

interface State {
  probe: Probe;
  key: string;
  /** install: package — the package layer's plan. */
  packages?: PackagePlanState;
}

/** Does the installed build satisfy the wanted version and allocator? */
export function satisfies(installed: Installed | undefined, a: Pick<RedisInstallArgs, 'version' | 'malloc' | 'install'>): boolean {
  if (!installed) return false;
  if (a.install === 'package') return true; // the distribution decides; version differences are a warning
  return installed.version === a.version && (a.malloc === 'auto' || installed.malloc === a.malloc);
}

export const redisInstall: Module<RedisInstallArgs, State> = {
  name: 'redis_install',
  args: redisInstallArgs,
  // Its probe is a plain read, made with the tasks after it (read-ahead.ts); it ends ok only when
  // the binaries were already right, having changed nothing.
  reads: (a) => [{ script: PROBE_SCRIPT, args: probeArgs(a, false) }],
  async plan(ctx, a) {
    if (a.install === 'source' && !a.source) throw new ModuleFailure('redis_install: install "source" needs `source` (path or url, and sha256)');
    const r = await runScript(ctx, PROBE_SCRIPT, probeArgs(a, false), { label: `probe of ${a.prefix}/bin/redis-server` });
    if (!r.ok) throw new ModuleFailure(describeFailure(r));
    const probe = parseProbe(r.stdout);
    const key = buildKey(a, ctx.facts);
    const data = probe.installed ? { version: probe.installed.version, malloc: probe.installed.malloc } : {};
    if (satisfies(probe.installed, a)) {
      return { changes: [], reason: `redis ${probe.installed!.version} (malloc=${probe.installed!.malloc}) is installed in ${a.prefix}/bin`, data, state: { probe, key } };
    }
    const changes: PlannedChange[] = [];
    const now = probe.installed ? ` (now ${probe.installed.version}, malloc=${probe.installed.malloc})` : '';
    if (a.install === 'package') {
      const p = await planRedisPackage(ctx, a, now);
      changes.push(...p.changes);
      return { changes, data, state: { probe, key, packages: p.state } };
    } else if ((await loadArtifact(key)) || building.has(key)) {
      changes.push({ description: `install redis ${a.version} from the controller's build cache into ${a.prefix}/bin${now}: no compilation` });
    } else if (a.build_host && a.build_host !== ctx.host.name) {
      changes.push({ description: `build redis ${a.version} on ${a.build_host}, then install it into ${a.prefix}/bin${now}` });
    } else {
      // Only a build here needs the source's checksum (it reads the whole tarball): asked now.
      probe.tarballSha = await tarballSha(ctx.conn, a, ctx.become);
      if (!probe.hasCc || !probe.hasMake) changes.push({ description: `install a compiler toolchain (gcc, make, libc headers) with ${ctx.facts.packageManager}` });
      if (probe.tarballSha !== a.source!.sha256) changes.push({ description: `upload the redis ${a.version} source to ${tarball(a)}` });
      changes.push({ description: `build redis ${a.version} (malloc=${a.malloc}${a.malloc === 'auto' ? ': jemalloc, or libc after the jemalloc header error' : ''})${probe.tree ? ' in the existing source tree' : ''}` });
      changes.push({ description: `install redis-server, redis-cli, redis-benchmark into ${a.prefix}/bin${now}` });
    }
    return { changes, data, state: { probe, key } };
  },
  async apply(ctx, a, plan) {
    const { key } = plan.state!;
    if (a.install === 'package') return installRedisPackage(ctx, a, plan.state!.packages!, plan.changes.map((c) => c.description).join('; '));
    let art = await loadArtifact(key);
    let how = 'from the build cache';
    if (!art) {
      const inflight = building.get(key);
      if (inflight) {
        art = await inflight.catch(() => undefined);
        how = art ? `built once on ${art.builtOn}` : how;
      }
    }
    if (!art) {
      const builder = a.build_host && a.build_host !== ctx.host.name ? a.build_host : ctx.host.name;
      // Registered before any await, so a peer applying at the same moment waits for this build.
      const job = (async () => {
        const conn = builder === ctx.host.name ? ctx.conn : await ctx.connectTo!(builder);
        return buildOn(ctx, conn, builder, a, plan.state!.probe, builder === ctx.host.name);
      })();
      building.set(key, job);
      try {
        art = await job;
      } finally {
        building.delete(key);
      }
      await storeArtifact(key, art);
      how = builder === ctx.host.name ? 'compiled here' : `compiled on ${builder}`;
    }
    if (art.note) ctx.warn(art.note);
    const shipped = await ship(ctx, a, art);
    return { changed: true, failed: false, msg: `redis ${shipped.version} (malloc=${shipped.malloc}) installed in ${a.prefix}/bin, ${how}`, data: { ...shipped } };
  },
};
