/**
 * How `redis_install` meets a host: the one-round-trip probe of what is there, the reading of
 * `redis-server --version` every step checks its result with, and the runner of its steps, whose
 * failure is a BuildError naming the host.
 */
import { describeFailure, quote, shellCommand, type Command } from '../../core/command.js';
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

/** Returns the probe: installed version, compiler, make, source tree and tarball checksum, in one command. */
export function probeCommand(a: RedisInstallArgs, become: boolean): Command {
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

export class BuildError extends ModuleFailure {
  override name = 'BuildError';
}

/** Runs one step of the install on a host; returns its stdout, or throws a BuildError saying what failed where. */
export async function runStep(conn: Connection, cmd: Command, what: string): Promise<string> {
  const r = await conn.exec(cmd);
  if (!r.ok) throw new BuildError(`${what} failed on ${conn.hostName}: ${describeFailure(r)}`);
  return r.stdout;
}
