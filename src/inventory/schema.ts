/**
 * The raw inventory file as zod sees it (shape, types, defaults). Relations between values
 * (priority rule, collisions, addresses) are semantic rules in rules.ts; this schema is also the
 * source of the published JSON Schema, so defaults live here.
 */
import { z } from 'zod';

const NAME = /^[A-Za-z0-9_.-]+$/;
const nameMsg = 'may contain only letters, digits, "_", "." and "-"';

/** A secret: a literal string, `{ env: NAME }` or `{ file: PATH }` (relative to the inventory). */
export const secretSchema = z.union([
  z.string(),
  z.strictObject({ env: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);
export type RawSecret = z.infer<typeof secretSchema>;

const port = z.number().int().min(1).max(65535);
const seconds = z.number().positive();
/**
 * vrrp_script interval and timeout: keepalived 2.2.7 takes whole seconds from 1 to 4294 and
 * ignores anything else with a log line only (`keepalived -t` still exits 0), falling back to 1.
 */
const checkSeconds = z.number().int().min(1).max(4294);

const connectionFields = {
  port: port.optional(),
  user: z.string().min(1).optional(),
  private_key: z.string().min(1).optional(),
  password: secretSchema.optional(),
  become: z.boolean().optional(),
  become_password: secretSchema.optional(),
  known_hosts: z.string().min(1).optional(),
  connect_timeout: seconds.optional(),
  connect_retries: z.number().int().min(0).max(20).optional(),
  /** Reach the host through this one: another inventory host, or `[user@]host[:port]` (ssh's ProxyJump; a comma-separated chain allowed). */
  jump: z.string().min(1).optional(),
};

const vars = z.record(z.string(), z.unknown());

export const sshSchema = z.strictObject({
  ...connectionFields,
  /** An OpenSSH client config to honour (default ~/.ssh/config when it exists); false ignores every ssh config. */
  config: z.union([z.string().min(1), z.literal(false)]).optional(),
});

export const hostSchema = z.union([
  z.string().min(1),
  z.strictObject({ address: z.string().min(1), ...connectionFields, vars: vars.optional() }),
]);

export const groupSchema = z.strictObject({
  hosts: z.array(z.string()).default([]),
  children: z.array(z.string()).default([]),
  vars: vars.default({}),
});

const configValue = z.union([z.string(), z.number(), z.boolean()]);

export const redisSchema = z.strictObject({
  version: z.string().regex(/^\d+\.\d+\.\d+$/, 'must look like 7.0.15').default('7.0.15'),
  install: z.enum(['source', 'package']).default('source'),
  source: z
    .strictObject({ path: z.string().min(1).optional(), url: z.string().url().optional(), sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').optional() })
    .optional(),
  port: port.default(6379),
  password: secretSchema,
  /** Where bin/redis-server is: /usr/local by default, /usr (the distribution's) with install: package. */
  prefix: z.string().startsWith('/', 'must be an absolute path').optional(),
  config_dir: z.string().startsWith('/', 'must be an absolute path').default('/etc/redis'),
  data_dir: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/redis'),
  log_dir: z.string().startsWith('/', 'must be an absolute path').default('/var/log/redis'),
  bind: z.string().min(1).default('0.0.0.0'),
  maxmemory: z.union([z.string(), z.number()]).default('0'), // a number is bytes; made a string when resolved
  maxmemory_policy: z
    .enum(['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'])
    .default('noeviction'),
  appendonly: z.boolean().default(true),
  appendfsync: z.enum(['always', 'everysec', 'no']).default('everysec'),
  save: z.string().default('3600 1 300 100 60 10000'),
  /** `none` says that a pair with neither AOF nor RDB is meant (a pure cache); anything else must persist. */
  persistence: z.enum(['required', 'none']).default('required'),
  /**
   * Split-brain bound: the master refuses writes (NOREPLICAS) once its replica has not acknowledged
   * for this many seconds (min-replicas-to-write 1, min-replicas-max-lag N). 0 disables it.
   */
  min_replicas_max_lag: z.number().int().min(0).max(3600).default(10),
  malloc: z.enum(['auto', 'jemalloc', 'libc']).default('auto'),
  /** Compile on this inventory host (same OS and architecture) and ship the binaries: for hosts that cannot compile. */
  build_host: z.string().min(1).optional(),
  config: z.record(z.string(), configValue).default({}),
});

export const keepalivedSchema = z.strictObject({
  virtual_router_id: z.number().int().min(1).max(255),
  auth_pass: secretSchema.optional(),
  priority: z
    .strictObject({ master: z.number().int().min(1).max(254).default(150), replica: z.number().int().min(1).max(254).default(140) })
    .prefault({}),
  advert_int: seconds.default(1),
  preempt: z.boolean().default(false),
  check: z
    .strictObject({
      // Chosen by measurement (npm run bench, health section; README "The health check's defaults"):
      // a crashed Redis fails every check at once, so failover takes (fall - 1) x interval plus up
      // to one interval whatever the timeout; a stall of up to timeout + (fall - 1) x interval
      // (5 s here) never moves the VIP.
      interval: checkSeconds.default(1),
      timeout: checkSeconds.default(4),
      fall: z.number().int().min(1).max(2147483647).default(2),
      rise: z.number().int().min(1).max(2147483647).default(2),
      weight: z.number().int().min(-253).max(253).default(-20),
    })
    .prefault({}),
  unicast: z.boolean().default(false),
  log_file: z.string().startsWith('/', 'must be an absolute path').default('/var/log/rha-keepalived.log'),
});

export const clusterSchema = z.strictObject({
  master: z.string().min(1),
  replica: z.string().min(1),
  vip: z.string().min(1),
  interface: z.string().default('eth0'),
  redis: redisSchema,
  keepalived: keepalivedSchema,
});

/** The whole inventory file. */
export const inventorySchema = z.strictObject({
  ssh: sshSchema.prefault({}),
  hosts: z.record(z.string(), hostSchema),
  groups: z.record(z.string(), groupSchema).default({}),
  vars: vars.default({}),
  clusters: z.record(z.string(), clusterSchema).default({}),
});
export type RawInventory = z.infer<typeof inventorySchema>;
export type RawCluster = z.infer<typeof clusterSchema>;

export { NAME as NAME_PATTERN, nameMsg as NAME_RULE };
