/**
 * Compiling Redis on a host, through every failure of the documented chain (domain.md, "Redis's
 * side"): a missing toolchain is installed, the source is placed, and a tree half-built before gcc
 * was there is rebuilt as `malloc` says. Returns the packed binaries for the build cache.
 */
import { quote, shellCommand } from '../../core/command.js';
import type { Connection, TaskContext } from '../../core/types.js';
import type { Artifact } from './redis-build-cache.js';
import { BuildError, parseProbe, parseRedisVersion, probeCommand, runStep, tarballSha, type Probe } from './redis-host.js';
import { srcDir, tarball, type RedisInstallArgs } from './redis-install-args.js';
import { placeSource } from './redis-source.js';
import { installToolchain } from './redis-toolchain.js';

/** True when the build failed the way a tree half-built before gcc was installed fails (seed 004). */
export function isJemallocHeaderError(buildLog: string): boolean {
  return /jemalloc\/jemalloc\.h: No such file or directory/.test(buildLog);
}

/** Compiles on `host`, returning the packed binaries. */
export async function buildOn(ctx: TaskContext, conn: Connection, host: string, a: RedisInstallArgs, probeHere: Probe, isHere: boolean): Promise<Artifact> {
  const become = ctx.become;
  const probe = isHere ? { ...probeHere } : parseProbe(await runStep(conn, probeCommand(a, become), 'probe'));
  // The plan asks for the checksum only when it plans this build; another path may end here.
  if (isHere && probe.tarballSha === undefined) probe.tarballSha = await tarballSha(conn, a, become);
  if (!probe.hasCc || !probe.hasMake) await installToolchain(ctx, conn, host, a);

  await placeSource(conn, a, become, probe.tarballSha);
  const jobs = a.jobs ?? Math.max(1, ctx.facts.cpus);
  const make = (malloc?: string) => `make -j${jobs}${malloc ? ` MALLOC=${malloc}` : ''} >>build.log 2>&1`;
  // One script follows the documented chain: a tree half-built before gcc was there fails with
  // the jemalloc header error; `auto` then rebuilds with MALLOC=libc, `jemalloc` cleans and retries.
  const script = [
    'set -u',
    `[ -f ${quote(`${srcDir(a)}/src/Makefile`)} ] || tar -xzf ${quote(tarball(a))} -C ${quote(a.build_dir)} || exit 90`,
    `cd ${quote(srcDir(a))} || exit 90`,
    ': > build.log',
    a.malloc === 'auto' ? make() : make(a.malloc),
    'rc=$?',
    'used=first',
    'if [ $rc -ne 0 ] && grep -q "jemalloc/jemalloc.h: No such file or directory" build.log; then',
    a.malloc === 'libc'
      ? '  :'
      : a.malloc === 'jemalloc'
        ? `  make distclean >>build.log 2>&1; ${make('jemalloc')}; rc=$?; used=distclean`
        : `  ${make('libc')}; rc=$?; used=libc-fallback`,
    'fi',
    'echo "@@rha:used $used"',
    // The compiler's own error lines first (not configure's "checking ... -Werror" noise), then
    // the log's tail; Redis's Makefile colours its output, which a log does not want.
    'if [ $rc -ne 0 ]; then echo "@@rha:log"; sed "s/\x1b\\[[0-9;]*m//g" build.log > build.plain.log; grep -E ": (fatal )?error:|Error [0-9]+|: not found" build.plain.log | tail -n 20; echo ...; tail -n 25 build.plain.log; exit 91; fi',
    'cd src && sha256sum redis-server redis-cli redis-benchmark > SHA256SUMS && ./redis-server --version | sed "s/^/@@rha:version /"',
  ].join('\n');
  const r = await conn.exec(shellCommand(script, { become, cwd: undefined, timeoutMs: 60 * 60_000 }));
  const used = /@@rha:used (\S+)/.exec(r.stdout)?.[1];
  if (!r.ok) {
    const log = r.stdout.split('@@rha:log')[1] ?? r.stderr;
    throw new BuildError(`building redis ${a.version} on ${host} failed (exit ${r.code})${used === 'libc-fallback' ? ' even with MALLOC=libc' : ''}; compiler output:\n${log.trim()}`);
  }
  const built = parseRedisVersion(/@@rha:version (.*)/.exec(r.stdout)?.[1] ?? '');
  if (!built) throw new BuildError(`redis built on ${host} but redis-server --version did not answer:\n${r.stdout}`);
  const note =
    used === 'libc-fallback'
      ? `redis built with malloc=libc on ${host}: the jemalloc build failed with "jemalloc/jemalloc.h: No such file or directory" (a source tree left half-built before the compiler was installed); set redis.malloc: jemalloc to clean the tree and build jemalloc instead`
      : undefined;
  const packed = await runStep(
    conn,
    shellCommand(`cd ${quote(`${srcDir(a)}/src`)} && tar -czf - redis-server redis-cli redis-benchmark SHA256SUMS | base64 -w0`, { become }),
    'packing the built binaries',
  );
  return { tgz: Buffer.from(packed.trim(), 'base64'), malloc: built.malloc, builtOn: host, note };
}
