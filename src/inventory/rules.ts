/**
 * The inventory's semantic rules: relations between values that the zod schema (schema.ts) cannot
 * express. Each rule pushes its problems onto the LoadContext, naming file, line and key path, and
 * says what to do; none stops the others, so the user sees every problem at once. The order the
 * rules run in is the order problems on one line are printed: keep it when adding a rule.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { HostSpec } from '../core/types.js';
import type { LoadContext } from './context.js';
import { interfaceNameProblem, parseCidr, parseIPv4, type Cidr } from './net.js';
import { NAME_PATTERN, NAME_RULE, type RawCluster } from './schema.js';
import { suggestion, type KeyPath } from './source.js';

/** Group names rha defines itself. */
const RESERVED_GROUPS = ['all', 'clusters'];

/**
 * redis.conf directives rha writes itself, and what to set instead. A `config:` entry for one of
 * these would fight rha's own line (and for replicaof, silently change the topology).
 */
export const MANAGED_REDIS_KEYS: Record<string, string> = {
  requirepass: 'redis.password',
  masterauth: 'redis.password',
  replicaof: "the cluster's master/replica",
  slaveof: "the cluster's master/replica",
  port: 'redis.port',
  bind: 'redis.bind',
  dir: 'redis.data_dir',
  logfile: 'redis.log_dir',
  pidfile: 'nothing (rha manages it)',
  daemonize: 'nothing (rha manages supervision)',
  supervised: 'nothing (rha manages supervision)',
  dbfilename: 'nothing (rha manages it)',
  appendonly: 'redis.appendonly',
  appendfsync: 'redis.appendfsync',
  save: 'redis.save',
  maxmemory: 'redis.maxmemory',
  'maxmemory-policy': 'redis.maxmemory_policy',
  'min-replicas-to-write': 'redis.min_replicas_max_lag (0 disables the split-brain bound)',
  'min-replicas-max-lag': 'redis.min_replicas_max_lag',
  'min-slaves-to-write': 'redis.min_replicas_max_lag (0 disables the split-brain bound)',
  'min-slaves-max-lag': 'redis.min_replicas_max_lag',
  include: 'nothing (rha renders the whole file; includes are not allowed)',
};

const CONTROL = /[\x00-\x1f\x7f]/;

/** What keepalived.conf can carry unquoted in `auth_pass`: printable ASCII without its special characters. */
const AUTH_PASS_CHARS = /^[A-Za-z0-9%&()*+,\-./:;<=>?@[\]^_`|~]*$/;
const AUTH_PASS_RULE =
  'may contain only ASCII letters, digits and %&()*+,-./:;<=>?@[]^_`|~ (no spaces, quotes, #, !, $, \\, braces or non-ASCII): keepalived.conf has no quoting for auth_pass';

/** Paths rha writes into shell scripts and config files: no shell or config metacharacters. */
const SAFE_PATH = /^\/[A-Za-z0-9._\/+@-]*$/;

/** Why a redis.conf value would not split into the words it says (redis's sdssplitargs rules), or undefined. */
export function redisWordsProblem(value: string): string | undefined {
  let i = 0;
  while (i < value.length) {
    while (i < value.length && value[i] === ' ') i++;
    if (i >= value.length) break;
    const q = value[i];
    if (q === '"' || q === "'") {
      i++;
      for (;;) {
        if (i >= value.length) return `has an unbalanced ${q === '"' ? 'double' : 'single'} quote: redis-server would refuse to start`;
        if (q === '"' && value[i] === '\\') i += 2;
        else if (value[i] === q) {
          i++;
          if (i < value.length && value[i] !== ' ') return 'has a closing quote not followed by a space: redis-server would refuse to start';
          break;
        } else i++;
      }
    } else {
      while (i < value.length && value[i] !== ' ') i++;
    }
  }
  return undefined;
}

/**
 * Why `value` is not a size redis.conf's `maxmemory` accepts, or undefined. Redis 7.0's memtoull:
 * digits, then optionally b, k (1000), kb (1024), m, mb, g, gb in any case; no sign, no fraction,
 * no space, and no percentage (only maxmemory-clients takes one), at most 2^64-1 bytes.
 */
export function redisMemoryProblem(value: string | number): string | undefined {
  const rule = 'give bytes (e.g. 1073741824) or a whole number with k/kb/m/mb/g/gb (kb/mb/gb are 1024-based, k/m/g 1000-based, any case), e.g. 2gb; 0 means no limit';
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? undefined : `${value} is not a whole number of bytes: ${rule}`;
  if (/^\s*\d+(\.\d+)?\s*%\s*$/.test(value)) return `"${value}": redis.conf's maxmemory takes no percentage (in Redis 7.0 only maxmemory-clients does): ${rule}`;
  const m = /^(\d{1,20})(b|k|kb|m|mb|g|gb)?$/i.exec(value);
  if (!m) return `${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)} is not a memory size redis.conf accepts: ${rule}`;
  const mul: Record<string, bigint> = { '': 1n, b: 1n, k: 1000n, kb: 1024n, m: 1000n ** 2n, mb: 1024n ** 2n, g: 1000n ** 3n, gb: 1024n ** 3n };
  if (BigInt(m[1]) * mul[(m[2] ?? '').toLowerCase()] > 2n ** 64n - 1n) return `"${value}" is more than redis can count (2^64-1 bytes): ${rule}`;
  return undefined;
}

function checkName(ctx: LoadContext, kind: string, name: string, path: KeyPath): void {
  if (!NAME_PATTERN.test(name)) ctx.error(path, `${kind} name "${name}" ${NAME_RULE}`, true);
}

/** Host, group and cluster names: well-formed, not reserved, and distinct (patterns may name any of them). */
export function checkNames(ctx: LoadContext): void {
  const raw = ctx.raw;
  for (const h of Object.keys(raw.hosts)) checkName(ctx, 'host', h, ['hosts', h]);
  for (const g of Object.keys(raw.groups)) {
    checkName(ctx, 'group', g, ['groups', g]);
    if (RESERVED_GROUPS.includes(g)) ctx.error(['groups', g], `group name "${g}" is reserved by rha: rename the group`, true);
    if (raw.hosts[g] !== undefined) ctx.error(['groups', g], `group "${g}" has the same name as a host: rename one of them`, true);
  }
  for (const c of Object.keys(raw.clusters)) {
    checkName(ctx, 'cluster', c, ['clusters', c]);
    if (RESERVED_GROUPS.includes(c)) ctx.error(['clusters', c], `cluster name "${c}" is reserved by rha (it names a group): rename the cluster`, true);
    if (raw.hosts[c] !== undefined) ctx.error(['clusters', c], `cluster "${c}" has the same name as a host (each cluster gets a group of that name): rename one of them`, true);
    if (raw.groups[c] !== undefined) ctx.error(['clusters', c], `cluster "${c}" has the same name as a group (each cluster gets a group of that name): rename one of them`, true);
  }
  if (Object.keys(raw.hosts).length === 0) ctx.error(['hosts'], 'no hosts: add at least one under hosts:');
}

/**
 * master and replica: known hosts, two different ones, each serving no other cluster. Records
 * each accepted member in `clusterOf` (host → cluster), which later clusters are checked against.
 */
export function checkMembers(ctx: LoadContext, cname: string, c: RawCluster, clusterOf: Map<string, string>): void {
  const base: KeyPath = ['clusters', cname];
  for (const role of ['master', 'replica'] as const) {
    const h = c[role];
    if (ctx.raw.hosts[h] === undefined) {
      ctx.error([...base, role], `unknown host "${h}"${suggestion(h, Object.keys(ctx.raw.hosts), false)}: ${role} must name a host under hosts:`);
    } else if (clusterOf.has(h) && clusterOf.get(h) !== cname) {
      ctx.error([...base, role], `host "${h}" is already in cluster "${clusterOf.get(h)}": a host can serve only one cluster (one redis port, one keepalived)`);
    } else {
      clusterOf.set(h, cname);
    }
  }
  if (c.master === c.replica) ctx.error([...base, 'replica'], `master and replica are both "${c.master}": a pair needs two different hosts`);
}

/**
 * The interface name, and the VIP: a host address inside its subnet, no other cluster's VIP and
 * no host's address. Records a well-formed VIP in `cidrs` (cluster → parsed VIP).
 */
export function checkInterfaceAndVip(ctx: LoadContext, cname: string, c: RawCluster, cidrs: Map<string, Cidr>, hosts: Map<string, HostSpec>): void {
  const base: KeyPath = ['clusters', cname];
  const ifBad = interfaceNameProblem(c.interface);
  if (ifBad) ctx.error([...base, 'interface'], ifBad);
  const cidr = parseCidr(c.vip);
  if (typeof cidr === 'string') {
    ctx.error([...base, 'vip'], cidr);
    return;
  }
  cidrs.set(cname, cidr);
  for (const [other, oc] of cidrs) {
    if (other !== cname && oc.address === cidr.address) ctx.error([...base, 'vip'], `VIP ${cidr.address} is also the VIP of cluster "${other}": each cluster needs its own`);
  }
  for (const [hn, host] of hosts) {
    if (host.connection.address === cidr.address) ctx.error([...base, 'vip'], `VIP ${cidr.address} is the address of host "${hn}": the VIP must be a free address`);
  }
}

/** The priority rule: replica < master < replica + |check.weight|, with a negative weight. */
export function checkPriority(ctx: LoadContext, k: RawCluster['keepalived'], kp: KeyPath): void {
  if (k.check.weight >= 0) ctx.error([...kp, 'check', 'weight'], `weight ${k.check.weight} must be negative (e.g. -20): a failing check must lower the priority so the VIP moves`);
  const { master: pm, replica: pr } = k.priority;
  const w = Math.abs(k.check.weight);
  if (!(pr < pm)) ctx.error([...kp, 'priority', 'master'], `${pm} breaks the priority rule (${pr} < master < ${pr}+${w}): the master must have a higher priority than the replica (${pr}) to win the first election`);
  else if (!(pm < pr + w)) ctx.error([...kp, 'priority', 'master'], `${pm} breaks the priority rule (${pr} < master < ${pr}+${w}): after a failed check the master drops to ${pm - w}, not below the replica (${pr}), so the VIP would stay on a dead Redis; lower priority.master or raise |check.weight|`);
}

/** auth_pass must go unquoted into keepalived.conf; keepalived reads only its first 8 characters (also masked). */
export function checkAuthPass(ctx: LoadContext, value: string, at: KeyPath): void {
  if (CONTROL.test(value)) ctx.error(at, `contains a newline or control character: it would inject a directive into keepalived.conf`);
  // keepalived.conf has no quoting: whitespace splits the word, "#" and "!" start a comment,
  // "$" expands a definition, braces are block tokens. Refuse rather than render it wrong.
  else if (!AUTH_PASS_CHARS.test(value)) ctx.error(at, AUTH_PASS_RULE);
  if (value.length > 8) {
    ctx.warn(at, `is ${value.length} characters but keepalived uses only the first 8: shorten it`);
    ctx.secrets.add(value.slice(0, 8));
  }
}

/** unicast VRRP: both members have IPv4 addresses, and not the same one. */
export function checkUnicast(ctx: LoadContext, c: RawCluster, kp: KeyPath, hosts: Map<string, HostSpec>): void {
  const addrs: string[] = [];
  for (const role of ['master', 'replica'] as const) {
    const a = hosts.get(c[role])?.connection.address;
    if (a !== undefined && parseIPv4(a) === undefined) ctx.error([...kp, 'unicast'], `unicast peers need IPv4 addresses but ${role} "${c[role]}" has address "${a}": give the host an IPv4 address`);
    else if (a !== undefined) addrs.push(a);
  }
  // unicast_src_ip and unicast_peer would be one address: each node sends its adverts to itself and never hears the other.
  if (addrs.length === 2 && parseIPv4(addrs[0]) === parseIPv4(addrs[1]) && c.master !== c.replica) {
    ctx.error(
      [...kp, 'unicast'],
      `master "${c.master}" and replica "${c.replica}" both have address ${addrs[0]}: with unicast each node sends its VRRP adverts to the other's address, so they would only hear themselves and both take the VIP; give each host its own address`,
    );
  }
}

/** Where Redis comes from: exactly one of path or url, each pinned by sha256 when it is built. */
function checkRedisSource(ctx: LoadContext, r: RawCluster['redis'], rp: KeyPath): void {
  if (r.source) {
    const n = Number(r.source.path !== undefined) + Number(r.source.url !== undefined);
    if (n !== 1) ctx.error([...rp, 'source'], `give exactly one of source.path (a local tarball or tree) or source.url`);
    if (r.source.url && !r.source.sha256) ctx.error([...rp, 'source', 'url'], `a download needs source.sha256 to verify it: add the tarball's SHA-256`);
    if (r.source.path && !r.source.sha256 && r.install === 'source') ctx.error([...rp, 'source', 'path'], `needs source.sha256 next to it, so that the tarball built is the one you meant: add its SHA-256 (sha256sum FILE)`);
  }
  if (r.install === 'package' && r.source) ctx.warn([...rp, 'source'], `is ignored with install: package`);
}

/** `config:` entries: directive-shaped keys rha does not manage, values that stay one redis.conf line. */
function checkRedisConfig(ctx: LoadContext, config: RawCluster['redis']['config'], rp: KeyPath): void {
  for (const [key, value] of Object.entries(config)) {
    const path: KeyPath = [...rp, 'config', key];
    if (CONTROL.test(key)) ctx.error(path, `key contains a newline or control character: it would inject a directive into redis.conf`, true);
    else if (!/^[a-z][a-z0-9-]*$/.test(key)) ctx.error(path, `"${key}" does not look like a redis.conf directive (lowercase letters, digits and "-", e.g. tcp-keepalive)`, true);
    else if (MANAGED_REDIS_KEYS[key]) ctx.error(path, `"${key}" is managed by rha: set ${MANAGED_REDIS_KEYS[key]} instead`, true);
    if (typeof value === 'string' && CONTROL.test(value)) ctx.error(path, `value contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf`);
    else if (typeof value === 'string') {
      const bad = redisWordsProblem(value);
      if (bad) ctx.error(path, `value ${bad}`);
    }
  }
}

/** Where bin/redis-server is: `redis.prefix`, else /usr with install: package (the distribution's), else /usr/local. */
export function redisPrefix(r: RawCluster['redis']): string {
  return r.prefix ?? (r.install === 'package' ? '/usr' : '/usr/local');
}

/** A pair keeps its data on disk (AOF or RDB) unless the user says it is a cache (`persistence: none`). */
function checkPersistence(ctx: LoadContext, r: RawCluster['redis'], rp: KeyPath): void {
  // A master that restarts empty is then replicated from and wipes its replica (domain.md):
  // a pair keeps data on disk unless the user says, in so many words, that it is a cache.
  const rdbOff = r.save.trim() === '' || /^(""|'')$/.test(r.save.trim());
  if (!r.appendonly && rdbOff && r.persistence !== 'none') {
    ctx.error(
      [...rp, 'appendonly'], // false only when written out (the default is true), so its line exists
      `neither AOF (appendonly: false) nor RDB snapshots (save: "") are on: a Redis that restarts empty comes back as an empty master, and its replica then copies the empty dataset (every key lost on both nodes). Turn on appendonly or set save, or say persistence: none if this pair is a cache whose data may vanish`,
    );
  }
}

/** Values written unquoted into redis.conf, keepalived.conf and root-run scripts: nothing that injects. */
function checkRedisValues(ctx: LoadContext, c: RawCluster, rp: KeyPath, kp: KeyPath): void {
  const r = c.redis;
  const memBad = redisMemoryProblem(r.maxmemory);
  if (memBad) ctx.error([...rp, 'maxmemory'], memBad);
  // maxmemory has its own, stricter rule (redisMemoryProblem).
  for (const [key, v] of [['bind', r.bind], ['save', r.save]] as const) {
    if (CONTROL.test(v)) ctx.error([...rp, key], `contains a newline or control character: it would inject a directive into redis.conf`);
    else if (/["'\\]/.test(v)) ctx.error([...rp, key], `must not contain quotes or backslashes: it is written unquoted into redis.conf`);
  }
  // These paths go unquoted into redis.conf, keepalived.conf and the root-run health/notify
  // scripts: a "$(...)" or ";" there would run as root on every health check.
  const pathRule = 'path may contain only letters, digits and "/", ".", "_", "+", "@", "-" (it is written into shell scripts and config files)';
  const paths = { prefix: redisPrefix(r), config_dir: r.config_dir, data_dir: r.data_dir, log_dir: r.log_dir };
  for (const key of ['prefix', 'config_dir', 'data_dir', 'log_dir'] as const) {
    if (!SAFE_PATH.test(paths[key])) ctx.error([...rp, key], pathRule);
  }
  if (!SAFE_PATH.test(c.keepalived.log_file)) ctx.error([...kp, 'log_file'], pathRule);
}

/**
 * The redis settings of a cluster (`password` is its resolved value, when it resolved): the
 * password, the source, `config:`, the values written into config files, the local tarball, and
 * the build host.
 */
export function checkRedis(ctx: LoadContext, cname: string, c: RawCluster, password: string | undefined, hosts: Map<string, HostSpec>): void {
  const r = c.redis;
  const rp: KeyPath = ['clusters', cname, 'redis'];
  if (password !== undefined && CONTROL.test(password)) ctx.error([...rp, 'password'], `contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf`);
  checkRedisSource(ctx, r, rp);
  checkRedisConfig(ctx, r.config, rp);
  checkPersistence(ctx, r, rp);
  checkRedisValues(ctx, c, rp, ['clusters', cname, 'keepalived']);
  if (r.source?.path && !r.source.url && r.install === 'source') checkTarball(ctx, r.source.path, r.source.sha256, [...rp, 'source']);
  if (r.build_host !== undefined && !hosts.has(r.build_host)) {
    ctx.error([...rp, 'build_host'], `"${r.build_host}" is not a host of this inventory${suggestion(r.build_host, [...hosts.keys()])}`);
  }
}

/** sha256 of source tarballs already checked in this process, by path, size and mtime. */
const tarballHashes = new Map<string, string>();

/** A local source tarball must exist, and match its pinned sha256, before any host is touched. */
function checkTarball(ctx: LoadContext, p: string, sha256: string | undefined, at: KeyPath): void {
  const file = ctx.path(p);
  let st;
  try {
    st = statSync(file);
  } catch {
    ctx.error([...at, 'path'], `source ${file} does not exist: give the path of the Redis source tarball (or tree)`);
    return;
  }
  if (!st.isFile() || !sha256) return;
  // Every cluster of a lab (or fleet) names the same tarball: hash it once, not once per cluster
  // (50 clusters spent 0.4 s here re-hashing 3 MB each time).
  const key = `${file}\0${st.size}\0${st.mtimeMs}`;
  let actual = tarballHashes.get(key);
  if (actual === undefined) tarballHashes.set(key, (actual = createHash('sha256').update(readFileSync(file)).digest('hex')));
  if (actual !== sha256) ctx.error([...at, 'sha256'], `${file} has sha256 ${actual}, not the pinned ${sha256}: the tarball is not the one you meant (re-download it, or update source.sha256)`);
}

/** virtual_router_id: unique per L2 segment (same interface name and VIP subnet). `cidrs` holds each cluster's parsed VIP. */
export function checkVirtualRouterIds(ctx: LoadContext, cidrs: Map<string, Cidr>): void {
  const seen = new Map<string, string>();
  for (const [cname, c] of Object.entries(ctx.raw.clusters)) {
    const cidr = cidrs.get(cname);
    if (!cidr) continue;
    const seg = `${c.interface} ${cidr.network} ${c.keepalived.virtual_router_id}`;
    const other = seen.get(seg);
    if (other) {
      ctx.error(
        ['clusters', cname, 'keepalived', 'virtual_router_id'],
        `${c.keepalived.virtual_router_id} is also used by cluster "${other}" on ${c.interface} ${cidr.network}: clusters on one segment need different virtual_router_id values`,
      );
    } else seen.set(seg, cname);
  }
}
