/**
 * Build once, ship everywhere: the controller's cache of built Redis binaries, keyed by what makes
 * two builds interchangeable (source checksum, OS, architecture, allocator), and the shipping of a
 * build to a host (checksums verified there).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { quote, shellCommand } from '../../core/command.js';
import type { HostFacts, TaskContext } from '../../core/types.js';
import { BuildError, parseRedisVersion, runStep, type Installed } from './redis-host.js';
import type { RedisInstallArgs } from './redis-install-args.js';

export interface Artifact {
  /** tar.gz of redis-server, redis-cli, redis-benchmark and SHA256SUMS. */
  tgz: Buffer;
  malloc: string;
  builtOn: string;
  /** Why the allocator differs from the wish, when it does. */
  note?: string;
}

/** The controller folder holding built binaries, shared by runs (RHA_CACHE_DIR overrides). */
export function buildCacheDir(): string {
  const base = process.env.RHA_CACHE_DIR ?? (process.getuid?.() === 0 ? '/var/cache/rha' : path.join(homedir(), '.cache', 'rha'));
  return path.join(base, 'redis-builds');
}

/** Cache key of a build: what makes two builds interchangeable. */
export function buildKey(a: RedisInstallArgs, facts: HostFacts): string {
  const sha = a.source?.sha256.slice(0, 16) ?? 'nosource';
  return `redis-${a.version}-${sha}-${facts.osId}${facts.osVersion}-${facts.arch}-${a.malloc}`;
}

/** Returns the cached build of `key`, or undefined when there is none or its checksum does not match (then it is rebuilt). */
export async function loadArtifact(key: string): Promise<Artifact | undefined> {
  const file = path.join(buildCacheDir(), `${key}.tar.gz`);
  if (!existsSync(file) || !existsSync(`${file}.json`)) return undefined;
  const meta = JSON.parse(await readFile(`${file}.json`, 'utf8')) as Omit<Artifact, 'tgz'> & { sha256: string };
  const tgz = await readFile(file);
  if (createHash('sha256').update(tgz).digest('hex') !== meta.sha256) return undefined; // corrupt: rebuild
  return { tgz, malloc: meta.malloc, builtOn: meta.builtOn, note: meta.note };
}

/** Writes a build into the cache (the binaries, then their metadata, each renamed into place). */
export async function storeArtifact(key: string, art: Artifact): Promise<void> {
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
export const building = new Map<string, Promise<Artifact>>();

/** Unpacks the binaries next to their destination, verifies checksums, renames into place. */
export async function ship(ctx: TaskContext, a: RedisInstallArgs, art: Artifact): Promise<Installed> {
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
  const out = await runStep(ctx.conn, shellCommand(script, { become: ctx.become, stdin: art.tgz }), 'installing the Redis binaries');
  const got = parseRedisVersion(out);
  if (!got) throw new BuildError(`installed redis-server on ${ctx.host.name} does not report a version: ${out}`);
  return got;
}
