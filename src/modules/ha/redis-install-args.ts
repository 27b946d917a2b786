/** `redis_install`'s arguments, and the paths on a host that they decide. */
import { z } from 'zod';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');

export const redisInstallArgs = z.strictObject({
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
export type RedisInstallArgs = z.infer<typeof redisInstallArgs>;

/** Returns the folder the source unpacks into on the building host. */
export const srcDir = (a: RedisInstallArgs) => `${a.build_dir}/redis-${a.version}`;
/** Returns the path of the uploaded source tarball on the building host. */
export const tarball = (a: RedisInstallArgs) => `${a.build_dir}/redis-${a.version}.tar.gz`;
