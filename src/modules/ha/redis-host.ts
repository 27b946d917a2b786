/**
 * How `redis_install` meets a host: the one-round-trip probe of what is there, the reading of
 * `redis-server --version` every step checks its result with, and the runner of its steps, whose
 * failure is a BuildError naming the host.
 */
import { describeFailure, shellCommand, type Command } from '../../core/command.js';
import type { Connection } from '../../core/types.js';
import { ModuleFailure } from '../lib/failure.js';
import { srcDir, tarball, type RedisInstallArgs } from './redis-install-args.js';

export interface Installed {
  version: string;
  malloc: string;
}

export interface Probe {
  installed?: Installed;
  hasCc: boolean;
  hasMake: boolean;
  /** A source tree is already unpacked on the host (maybe half-built by an earlier attempt). */
  tree: boolean;
  tarballSha?: string;
}

const MARK = '@@rha:';

/** Parses `redis-server --version`: `Redis server v=7.0.15 sha=00000000:0 malloc=libc bits=64 build=...`. */
export function parseRedisVersion(text: string): Installed | undefined {
  const v = /\bv=(\d+\.\d+\.\d+)/.exec(text)?.[1];
  const m = /\bmalloc=([\w.-]+)/.exec(text)?.[1];
  return v ? { version: v, malloc: m ?? 'unknown' } : undefined;
}

/**
 * The probe: installed version, compiler, make, source tree and (when `$3` names it) the source
 * tarball's checksum, in one command. A fixed script with the paths as arguments, so that the
 * runner can read it ahead with the tasks around it (read-ahead.ts). The checksum reads the whole
 * tarball (3 MB), so only a build on this host asks for it: a no-op leaves it out.
 */
export const PROBE_SCRIPT = [
  `echo ${MARK}version; [ -x "$1" ] && "$1" --version 2>&1 || echo none`,
  `echo ${MARK}cc; command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 && echo yes || echo no`,
  `echo ${MARK}make; command -v make >/dev/null 2>&1 && echo yes || echo no`,
  `echo ${MARK}tree; [ -f "$2" ] && echo yes || echo no`,
  `echo ${MARK}tarball; [ -z "$3" ] || sha256sum -- "$3" 2>/dev/null | cut -d' ' -f1`,
].join('\n');

/** The probe's arguments: server binary, source Makefile, and the tarball when its checksum is wanted. */
export function probeArgs(a: RedisInstallArgs, withTarball: boolean): string[] {
  return [`${a.prefix}/bin/redis-server`, `${srcDir(a)}/src/Makefile`, withTarball ? tarball(a) : ''];
}

/** The probe as a command of its own (a build host's, which always needs the checksum). */
export function probeCommand(a: RedisInstallArgs, become: boolean): Command {
  const cmd = shellCommand(PROBE_SCRIPT, { become });
  return { ...cmd, argv: [...cmd.argv, 'sh', ...probeArgs(a, true)] };
}

/** The tarball's checksum on the host (undefined when there is none). */
export async function tarballSha(conn: Connection, a: RedisInstallArgs, become: boolean): Promise<string | undefined> {
  const cmd = shellCommand(`sha256sum -- "$1" 2>/dev/null | cut -d' ' -f1`, { become });
  const r = await conn.exec({ ...cmd, argv: [...cmd.argv, 'sh', tarball(a)] });
  return (r.ok && r.stdout.trim()) || undefined;
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

export class BuildError extends ModuleFailure {
  override name = 'BuildError';
}

/** Runs one step of the install on a host; returns its stdout, or throws a BuildError saying what failed where. */
export async function runStep(conn: Connection, cmd: Command, what: string): Promise<string> {
  const r = await conn.exec(cmd);
  if (!r.ok) throw new BuildError(`${what} failed on ${conn.hostName}: ${describeFailure(r)}`);
  return r.stdout;
}
