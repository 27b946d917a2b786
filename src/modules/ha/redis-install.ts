/**
 * `redis_install`: Redis binaries on a host, built from source or installed from the
 * distribution, through every failure of the documented chain (domain.md, "Redis's side").
 *
 * Build once, ship everywhere: the first host that needs a given build (source checksum, OS,
 * architecture, allocator) compiles it; every other host, in this run or a later one (a replaced
 * node), receives the binaries from the controller's build cache, checksums verified.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { describeFailure, quote, shellCommand, type Command } from '../../core/command.js';
import type { Connection, HostFacts, Module, PlannedChange, TaskContext } from '../../core/types.js';
import { gatherFacts } from '../../facts/index.js';
import { ModuleFailure } from '../lib/failure.js';
import {
  applyPackagesOn,
  packageManagerOf,
  planPackagesOn,
  type PackageManager,
  type PackagePlanState,
  type PackageRequest,
  type ScriptRunner,
} from '../package.js';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');

const args = z.strictObject({
  version: z.string().regex(/^\d+\.\d+\.\d+$/, 'a version looks like 7.0.15'),
  install: z.enum(['source', 'package']).default('source'),
  // The inventory resolves absent keys to null; null and absent mean the same here.
  source: z
    .strictObject({ path: z.string().nullish(), url: z.string().url().nullish(), sha256: sha256Hex })
    .refine((s) => Boolean(s.path) !== Boolean(s.url), 'give exactly one of source.path and source.url')
    .nullish(),
  prefix: z.string().startsWith('/').default('/usr/local'),
  malloc: z.enum(['auto', 'jemalloc', 'libc']).default('auto'),
  build_dir: z.string().startsWith('/').default('/usr/local/src/rha'),
  jobs: z.number().int().positive().optional(),
  /** `install`: a missing compiler is installed with the package manager; `never`: fail instead. */
  toolchain: z.enum(['install', 'never']).default('install'),
  /** Build on this inventory host instead (same OS and architecture), then ship the binaries here. */
  build_host: z.string().nullish(),
  /** Seconds to wait for an apt/dpkg lock another process holds (the package module's lock_timeout). */
  lock_timeout: z.number().int().nonnegative().default(120),
});
type Args = z.infer<typeof args>;

export interface Installed {
  version: string;
  malloc: string;
}

interface Probe {
  installed?: Installed;
  hasCc: boolean;
  hasMake: boolean;
  /** A source tree is already unpacked on the host (maybe half-built by an earlier attempt). */
  tree: boolean;
  tarballSha?: string;
}

interface State {
  probe: Probe;
  key: string;
  /** install: package — the package layer's plan. */
  packages?: PackagePlanState;
}

const MARK = '@@rha:';

/** Parses `redis-server --version`: `Redis server v=7.0.15 sha=00000000:0 malloc=libc bits=64 build=...`. */
export function parseRedisVersion(text: string): Installed | undefined {
  const v = /\bv=(\d+\.\d+\.\d+)/.exec(text)?.[1];
  const m = /\bmalloc=([\w.-]+)/.exec(text)?.[1];
  return v ? { version: v, malloc: m ?? 'unknown' } : undefined;
}

/** True when the build failed the way a tree half-built before gcc was installed fails (seed 004). */
export function isJemallocHeaderError(buildLog: string): boolean {
  return /jemalloc\/jemalloc\.h: No such file or directory/.test(buildLog);
}

/** Does the installed build satisfy the wanted version and allocator? */
export function satisfies(installed: Installed | undefined, a: Pick<Args, 'version' | 'malloc' | 'install'>): boolean {
  if (!installed) return false;
  if (a.install === 'package') return true; // the distribution decides; version differences are a warning
  return installed.version === a.version && (a.malloc === 'auto' || installed.malloc === a.malloc);
}

const srcDir = (a: Args) => `${a.build_dir}/redis-${a.version}`;
const tarball = (a: Args) => `${a.build_dir}/redis-${a.version}.tar.gz`;

function probeCommand(a: Args, become: boolean): Command {
  const bin = quote(`${a.prefix}/bin/redis-server`);
  return shellCommand(
    [
      `echo ${MARK}version; [ -x ${bin} ] && ${bin} --version 2>&1 || echo none`,
      `echo ${MARK}cc; command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 && echo yes || echo no`,
      `echo ${MARK}make; command -v make >/dev/null 2>&1 && echo yes || echo no`,
      `echo ${MARK}tree; [ -f ${quote(`${srcDir(a)}/src/Makefile`)} ] && echo yes || echo no`,
      `echo ${MARK}tarball; sha256sum ${quote(tarball(a))} 2>/dev/null | cut -d' ' -f1`,
    ].join('\n'),
    { become },
  );
}

/** Parses the probe's output. */
export function parseProbe(out: string): Probe {
  const sec = new Map<string, string>();
  for (const part of out.split(MARK).slice(1)) {
    const nl = part.indexOf('\n');
    sec.set(part.slice(0, nl).trim(), part.slice(nl + 1).trim());
  }
  return {
    installed: parseRedisVersion(sec.get('version') ?? ''),
    hasCc: sec.get('cc') === 'yes',
    hasMake: sec.get('make') === 'yes',
    tree: sec.get('tree') === 'yes',
    tarballSha: sec.get('tarball') || undefined,
  };
}

/** The controller folder holding built binaries, shared by runs (RHA_CACHE_DIR overrides). */
export function buildCacheDir(): string {
  const base = process.env.RHA_CACHE_DIR ?? (process.getuid?.() === 0 ? '/var/cache/rha' : path.join(homedir(), '.cache', 'rha'));
  return path.join(base, 'redis-builds');
}

/** Cache key of a build: what makes two builds interchangeable. */
export function buildKey(a: Args, facts: HostFacts): string {
  const sha = a.source?.sha256.slice(0, 16) ?? 'nosource';
  return `redis-${a.version}-${sha}-${facts.osId}${facts.osVersion}-${facts.arch}-${a.malloc}`;
}

interface Artifact {
  /** tar.gz of redis-server, redis-cli, redis-benchmark and SHA256SUMS. */
  tgz: Buffer;
  malloc: string;
  builtOn: string;
  /** Why the allocator differs from the wish, when it does. */
  note?: string;
}

async function loadArtifact(key: string): Promise<Artifact | undefined> {
  const file = path.join(buildCacheDir(), `${key}.tar.gz`);
  if (!existsSync(file) || !existsSync(`${file}.json`)) return undefined;
  const meta = JSON.parse(await readFile(`${file}.json`, 'utf8')) as Omit<Artifact, 'tgz'> & { sha256: string };
  const tgz = await readFile(file);
  if (createHash('sha256').update(tgz).digest('hex') !== meta.sha256) return undefined; // corrupt: rebuild
  return { tgz, malloc: meta.malloc, builtOn: meta.builtOn, note: meta.note };
}

async function storeArtifact(key: string, art: Artifact): Promise<void> {
  const dir = buildCacheDir();
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, `${key}.tar.gz`);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, art.tgz);
  await rename(tmp, file);
  const meta = { malloc: art.malloc, builtOn: art.builtOn, note: art.note, sha256: createHash('sha256').update(art.tgz).digest('hex'), at: new Date().toISOString() };
  await writeFile(`${tmp}.json`, JSON.stringify(meta, null, 2));
  await rename(`${tmp}.json`, `${file}.json`);
}

/** Builds in flight in this process, by key: the second host of a pair waits for the first. */
const building = new Map<string, Promise<Artifact>>();

export const redisInstall: Module<Args, State> = {
  name: 'redis_install',
  args,
  async plan(ctx, a) {
    if (a.install === 'source' && !a.source) throw new ModuleFailure('redis_install: install "source" needs `source` (path or url, and sha256)');
    const r = await ctx.conn.exec(probeCommand(a, ctx.become));
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
      const manager = packageManagerOf(ctx.host.name, ctx.facts);
      const p = await planPackagesOn(hostRunner(ctx.conn, ctx.become), manager, redisPackageRequest(manager, a));
      // Installed, but not where redis.prefix says: the bring-up would start a binary that is not there.
      if (!p.changes.length) throw new ModuleFailure(`${p.reason}, but ${a.prefix}/bin/redis-server is not there: set redis.prefix to /usr for install: package`);
      changes.push(...p.changes.map((c) => ({ description: `${c.description}${c.description.startsWith('install') ? ` (the distribution's Redis${now}; it does not start: rha's config and bring-up do)` : ''}` })));
      return { changes, data, state: { probe, key, packages: p.state } };
    } else if ((await loadArtifact(key)) || building.has(key)) {
      changes.push({ description: `install redis ${a.version} from the controller's build cache into ${a.prefix}/bin${now}: no compilation` });
    } else if (a.build_host && a.build_host !== ctx.host.name) {
      changes.push({ description: `build redis ${a.version} on ${a.build_host}, then install it into ${a.prefix}/bin${now}` });
    } else {
      if (!probe.hasCc || !probe.hasMake) changes.push({ description: `install a compiler toolchain (gcc, make, libc headers) with ${ctx.facts.packageManager}` });
      if (probe.tarballSha !== a.source!.sha256) changes.push({ description: `upload the redis ${a.version} source to ${tarball(a)}` });
      changes.push({ description: `build redis ${a.version} (malloc=${a.malloc}${a.malloc === 'auto' ? ': jemalloc, or libc after the jemalloc header error' : ''})${probe.tree ? ' in the existing source tree' : ''}` });
      changes.push({ description: `install redis-server, redis-cli, redis-benchmark into ${a.prefix}/bin${now}` });
    }
    return { changes, data, state: { probe, key } };
  },
  async apply(ctx, a, plan) {
    const { key } = plan.state!;
    if (a.install === 'package') return installPackage(ctx, a, plan.state!.packages!, plan.changes.map((c) => c.description).join('; '));
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

class BuildError extends ModuleFailure {
  override name = 'BuildError';
}

async function run(conn: Connection, cmd: Command, what: string): Promise<string> {
  const r = await conn.exec(cmd);
  if (!r.ok) throw new BuildError(`${what} failed on ${conn.hostName}: ${describeFailure(r)}`);
  return r.stdout;
}

/** Compiles on `host`, returning the packed binaries. */
async function buildOn(ctx: TaskContext, conn: Connection, host: string, a: Args, probeHere: Probe, isHere: boolean): Promise<Artifact> {
  const become = ctx.become;
  const probe = isHere ? probeHere : parseProbe(await run(conn, probeCommand(a, become), 'probe'));
  if (!probe.hasCc || !probe.hasMake) await installToolchain(ctx, conn, host, a);

  const local = await readSource(a);
  if (probe.tarballSha !== a.source!.sha256) {
    await run(
      conn,
      shellCommand(
        [
          'set -e',
          `mkdir -p ${quote(a.build_dir)}`,
          `tmp=$(mktemp ${quote(`${tarball(a)}.XXXXXX`)})`,
          'cat > "$tmp"',
          `echo ${quote(`${a.source!.sha256}  `)}"$tmp" | sha256sum -c --quiet`,
          `mv -f "$tmp" ${quote(tarball(a))}`,
          // A different tarball under the same version: its old tree must not be reused.
          `rm -rf ${quote(srcDir(a))}`,
        ].join('\n'),
        { become, stdin: local },
      ),
      'uploading the Redis source',
    );
  }
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
  const packed = await run(
    conn,
    shellCommand(`cd ${quote(`${srcDir(a)}/src`)} && tar -czf - redis-server redis-cli redis-benchmark SHA256SUMS | base64 -w0`, { become }),
    'packing the built binaries',
  );
  return { tgz: Buffer.from(packed.trim(), 'base64'), malloc: built.malloc, builtOn: host, note };
}

async function readSource(a: Args): Promise<Buffer> {
  const s = a.source!;
  let data: Buffer;
  if (s.path) {
    data = await readFile(s.path).catch((e: NodeJS.ErrnoException) => {
      throw new BuildError(`cannot read the Redis source ${s.path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    });
  } else {
    const res = await fetch(s.url!);
    if (!res.ok) throw new BuildError(`downloading ${s.url} failed: HTTP ${res.status}`);
    data = Buffer.from(await res.arrayBuffer());
  }
  const got = createHash('sha256').update(data).digest('hex');
  if (got !== s.sha256) throw new BuildError(`the Redis source ${s.path ?? s.url} has sha256 ${got}, but the inventory says ${s.sha256}: refusing to build it`);
  return data;
}

/** Runs scripts on a connection with the task's become setting (the package layer's way to reach a host). */
function hostRunner(conn: Connection, become: boolean): ScriptRunner {
  return async (script, opts) => {
    const r = await conn.exec(shellCommand(script, { become, timeoutMs: opts?.timeoutMs }));
    return opts?.label ? { ...r, display: opts.label } : r;
  };
}

/** The compiler toolchain's package names per package manager. */
export function toolchainPackages(manager: PackageManager): string[] {
  return manager === 'apt' ? ['gcc', 'make', 'libc6-dev'] : ['gcc', 'make', 'glibc-devel'];
}

/** A missing compiler and make, installed through the package layer on the host that builds (index refreshed when stale, lock waited for). */
async function installToolchain(ctx: TaskContext, conn: Connection, host: string, a: Args): Promise<void> {
  const elsewhere =
    `build elsewhere instead: set redis.build_host to a host of the same OS and architecture that can compile ` +
    `(rha builds there once and ships the binaries), or give ${host} a package source`;
  if (a.toolchain === 'never') throw new BuildError(`${host} has no C compiler or make, and redis.toolchain is "never": ${elsewhere}`);
  const facts = host === ctx.host.name ? ctx.facts : await gatherFacts(conn);
  if (facts.packageManager === 'none') {
    throw new BuildError(`${host} has no C compiler or make, and it has no package manager (looked for apt-get, dnf, yum)\nTo go on: ${elsewhere}`);
  }
  const manager = facts.packageManager;
  const run = hostRunner(conn, ctx.become);
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

/** Unpacks the binaries next to their destination, verifies checksums, renames into place. */
async function ship(ctx: TaskContext, a: Args, art: Artifact): Promise<Installed> {
  const bin = `${a.prefix}/bin`;
  const script = [
    'set -e',
    `mkdir -p ${quote(bin)}`,
    `d=$(mktemp -d ${quote(`${bin}/.rha-redis.XXXXXX`)})`,
    'trap \'rm -rf "$d"\' EXIT',
    'tar -xzf - -C "$d"',
    '(cd "$d" && sha256sum -c --quiet SHA256SUMS)',
    'for b in redis-server redis-cli redis-benchmark; do chown root:root "$d/$b"; chmod 0755 "$d/$b"; mv -f "$d/$b" ' + quote(bin) + '/$b; done',
    `for l in redis-check-aof redis-check-rdb redis-sentinel; do ln -sfn redis-server ${quote(bin)}/$l; done`,
    `${quote(`${bin}/redis-server`)} --version`,
  ].join('\n');
  const out = await run(ctx.conn, shellCommand(script, { become: ctx.become, stdin: art.tgz }), 'installing the Redis binaries');
  const got = parseRedisVersion(out);
  if (!got) throw new BuildError(`installed redis-server on ${ctx.host.name} does not report a version: ${out}`);
  return got;
}

/** The distribution's Redis package: Debian's redis-server, the RHEL family's redis. */
function redisPackageRequest(manager: PackageManager, a: Args): PackageRequest {
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

// Debian's redis-server postinst registers a dpkg-statoverride "redis redis 640" for its conffile,
// which an upgrade re-applies: the redis user could then rewrite the config that holds the
// password. rha's layout is root:redis 640; with an override present the postinst leaves it alone.
const DEBIAN_CONF_OVERRIDE = `f=/etc/redis/redis.conf
if dpkg-statoverride --list "$f" 2>/dev/null | grep -q '^redis redis '; then
  dpkg-statoverride --remove "$f" && dpkg-statoverride --add root redis 640 "$f"
fi`;

async function installPackage(ctx: TaskContext, a: Args, state: PackagePlanState, planned: string) {
  const manager = packageManagerOf(ctx.host.name, ctx.facts);
  const req = redisPackageRequest(manager, a);
  const run = hostRunner(ctx.conn, ctx.become);
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
