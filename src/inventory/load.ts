/**
 * loadInventory: YAML → zod safeParse → normalise into the resolved Inventory → semantic rules
 * that push problems. Every problem names file, line and key path; all are reported at once.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, type ClusterSpec, type HostConnectionSpec, type JumpHostSpec, type HostSpec, type InputProblem, type Inventory, type NodeRole } from '../core/types.js';
import { addressProblem, interfaceNameProblem, parseCidr, parseIPv4, type Cidr } from './net.js';
import { defaultSshConfig, parseJumpSpec, readSshConfig, type SshConfigFile, type SshConfigHost } from '../connection/ssh-config.js';
import { LoadContext } from './context.js';
import { resolveSecret } from './secrets.js';
import { inventorySchema, NAME_PATTERN, NAME_RULE, type RawInventory } from './schema.js';
import { Document, LineCounter } from 'yaml';
import { addVarsDirs, detectFormat, locateIn, readAnsibleIni, readAnsibleYaml, toNative } from './ansible.js';
import { dotted, parseYaml, readInputFile, sortProblems, suggestion, zodProblems, type KeyPath, type YamlSource } from './source.js';

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

export interface LoadInventoryOptions {
  env?: NodeJS.ProcessEnv;
}

/** Returns the resolved inventory; throws InputError with every problem (errors first). Warnings go to `inv.warnings`. */
export async function loadInventory(file: string, opts: LoadInventoryOptions = {}): Promise<Inventory> {
  let read: ReturnType<typeof readInputFile>;
  try {
    read = readInputFile(file);
  } catch (e) {
    throw new InputError([{ file, message: `cannot read inventory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, severity: 'error' }]);
  }
  if (read.problem) throw new InputError([read.problem]);
  return parseInventory(file, read.text!, opts);
}

/** Returns the resolved inventory for already-read text (the file name is used for messages and relative paths). */
export function parseInventory(file: string, text: string, opts: LoadInventoryOptions = {}): Inventory {
  // Ansible inventories (INI, or YAML with all:/children:) are converted into native data first.
  if (detectFormat(file, text) === 'ansible-ini') return fromAnsible(file, readAnsibleIni(file, text), opts);
  const { source, problems } = parseYaml(file, text);
  if (problems.length) throw new InputError(problems);
  if (detectFormat(file, text, source.data) === 'ansible-yaml') return fromAnsible(file, readAnsibleYaml(source), opts);
  return fromSource(source, opts);
}

function fromAnsible(file: string, read: ReturnType<typeof readAnsibleIni>, opts: LoadInventoryOptions): Inventory {
  if (read.problems.some((p) => p.severity === 'error')) throw new InputError(sortProblems(read.problems));
  const varsProblems = addVarsDirs(read.model, file);
  if (varsProblems.length) throw new InputError(sortProblems(varsProblems));
  const conv = toNative(file, read.model);
  const source: YamlSource = { file, doc: new Document(conv.data), lc: new LineCounter(), data: conv.data, locate: (p) => locateIn(conv.lines, p) };
  return fromSource(source, opts, conv.problems);
}

/** The resolved inventory from native data; `extra` are problems found while converting it. */
function fromSource(source: YamlSource, opts: LoadInventoryOptions, extra: InputProblem[] = []): Inventory {
  const file = source.file;
  if (extra.some((p) => p.severity === 'error')) throw new InputError(sortProblems(extra));
  if (source.data === null || source.data === undefined || typeof source.data !== 'object' || Array.isArray(source.data)) {
    throw new InputError([{ file, line: 1, message: 'expected a mapping with hosts: (and usually clusters:) at the top level', severity: 'error' }]);
  }
  const parsed = inventorySchema.safeParse(source.data);
  if (!parsed.success) throw new InputError(sortProblems(zodProblems(source, inventorySchema, parsed.error.issues)));
  const n = new Normaliser(source, parsed.data as RawInventory, opts.env ?? process.env);
  const inv = n.run();
  const errors = n.problems.filter((p) => p.severity === 'error');
  if (errors.length) throw new InputError(sortProblems([...extra, ...n.problems]));
  inv.warnings = sortProblems([...extra, ...n.problems]);
  return inv;
}

class Normaliser {
  private readonly ctx: LoadContext;

  constructor(src: YamlSource, raw: RawInventory, env: NodeJS.ProcessEnv) {
    this.ctx = new LoadContext(src, raw, env);
  }

  get problems(): InputProblem[] {
    return this.ctx.problems;
  }

  private checkName(kind: string, name: string, path: KeyPath): void {
    if (!NAME_PATTERN.test(name)) this.ctx.error(path, `${kind} name "${name}" ${NAME_RULE}`, true);
  }

  run(): Inventory {
    const raw = this.ctx.raw;
    const hostNames = Object.keys(raw.hosts);
    const groupNames = Object.keys(raw.groups);
    const clusterNames = Object.keys(raw.clusters);

    // --- names and collisions (one namespace: patterns may name any of them)
    for (const h of hostNames) this.checkName('host', h, ['hosts', h]);
    for (const g of groupNames) {
      this.checkName('group', g, ['groups', g]);
      if (RESERVED_GROUPS.includes(g)) this.ctx.error(['groups', g], `group name "${g}" is reserved by rha: rename the group`, true);
      if (raw.hosts[g] !== undefined) this.ctx.error(['groups', g], `group "${g}" has the same name as a host: rename one of them`, true);
    }
    for (const c of clusterNames) {
      this.checkName('cluster', c, ['clusters', c]);
      if (RESERVED_GROUPS.includes(c)) this.ctx.error(['clusters', c], `cluster name "${c}" is reserved by rha (it names a group): rename the cluster`, true);
      if (raw.hosts[c] !== undefined) this.ctx.error(['clusters', c], `cluster "${c}" has the same name as a host (each cluster gets a group of that name): rename one of them`, true);
      if (raw.groups[c] !== undefined) this.ctx.error(['clusters', c], `cluster "${c}" has the same name as a group (each cluster gets a group of that name): rename one of them`, true);
    }
    if (hostNames.length === 0) this.ctx.error(['hosts'], 'no hosts: add at least one under hosts:');

    // --- groups: membership, children, cycles
    const directHosts = new Map<string, string[]>();
    for (const [g, grp] of Object.entries(raw.groups)) {
      grp.hosts.forEach((h, i) => {
        if (raw.hosts[h] === undefined) this.ctx.error(['groups', g, 'hosts', i], `unknown host "${h}"${suggestion(h, hostNames, false)}`);
      });
      grp.children.forEach((c, i) => {
        if (raw.groups[c] === undefined) this.ctx.error(['groups', g, 'children', i], `unknown group "${c}"${suggestion(c, groupNames, false)}`);
      });
      directHosts.set(g, grp.hosts.filter((h) => raw.hosts[h] !== undefined));
    }
    const cyclic = this.findCycles();
    const members = new Map<string, Set<string>>();
    const depth = new Map<string, number>();
    const collect = (g: string, seen: Set<string>): Set<string> => {
      const out = new Set(directHosts.get(g) ?? []);
      for (const c of raw.groups[g]?.children ?? []) {
        if (!raw.groups[c] || seen.has(c)) continue;
        for (const h of collect(c, new Set([...seen, c]))) out.add(h);
      }
      return out;
    };
    const depthOf = (g: string, seen: Set<string>): number => {
      const parents = groupNames.filter((p) => raw.groups[p].children.includes(g) && !seen.has(p));
      return parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, new Set([...seen, p])))) : 0;
    };
    for (const g of groupNames) {
      members.set(g, collect(g, new Set([g])));
      depth.set(g, cyclic ? 0 : depthOf(g, new Set([g])));
    }

    // --- hosts: connection settings
    const ssh = raw.ssh;
    const hosts = new Map<string, HostSpec>();
    const sshCfgOf = new Map<string, SshConfigHost>();
    this.loadSshConfig();
    for (const name of hostNames) {
      const h = raw.hosts[name];
      const o = typeof h === 'string' ? { address: h } : h;
      const hp: KeyPath = typeof h === 'string' ? ['hosts', name] : ['hosts', name, 'address'];
      const bad = addressProblem(o.address);
      if (bad) this.ctx.error(hp, `${bad}: use the host's IPv4 address or DNS name`);
      const pick = <K extends keyof typeof ssh>(k: K): { v: (typeof ssh)[K]; path: KeyPath } =>
        typeof h !== 'string' && (h as Record<string, unknown>)[k] !== undefined
          ? { v: (h as typeof ssh)[k], path: ['hosts', name, k] }
          : { v: ssh[k], path: ['ssh', k] };
      // Inventory settings win over the ssh config, which wins over rha's defaults (README).
      const cfg = this.sshConfigFor(o.address, hp);
      sshCfgOf.set(name, cfg);
      const user = pick('user').v ?? cfg.user ?? 'root';
      const keyPick = pick('private_key');
      const key = keyPick.v;
      if (key) this.checkPrivateKey(key, keyPick.path);
      const pw = pick('password');
      const bpw = pick('become_password');
      const kh = pick('known_hosts').v;
      hosts.set(name, {
        name,
        connection: {
          address: cfg.hostName ?? o.address,
          port: pick('port').v ?? cfg.port ?? 22,
          user,
          privateKey: key ? this.ctx.path(key) : firstExisting(cfg.identityFiles),
          password: resolveSecret(this.ctx, pw.v, pw.path),
          become: pick('become').v ?? user !== 'root',
          becomePassword: resolveSecret(this.ctx, bpw.v, bpw.path),
          knownHosts: kh ? this.ctx.path(kh) : join(this.ctx.home(), '.ssh', 'known_hosts'),
          connectTimeoutMs: Math.round((pick('connect_timeout').v ?? 10) * 1000),
          connectRetries: pick('connect_retries').v ?? 2,
        },
        groups: [],
        vars: {},
      });
    }

    // --- jump hosts (bastions): `jump:` in the inventory, else the ssh config's ProxyJump
    const jumpMemo = new Map<string, JumpHostSpec | undefined>();
    const resolveJump = (name: string, stack: string[]): JumpHostSpec | undefined => {
      if (jumpMemo.has(name)) return jumpMemo.get(name);
      const h = raw.hosts[name];
      const own = typeof h !== 'string' ? h.jump : undefined;
      let spec: string | undefined;
      let path: KeyPath;
      let from: string;
      if (own !== undefined) [spec, path, from] = [own, ['hosts', name, 'jump'], 'jump'];
      else if (ssh.jump !== undefined) [spec, path, from] = [ssh.jump, ['ssh', 'jump'], 'ssh.jump'];
      else [spec, path, from] = [sshCfgOf.get(name)?.proxyJump, typeof h === 'string' ? ['hosts', name] : ['hosts', name, 'address'], `ProxyJump in ${this.sshConfig?.file}`];
      let out: JumpHostSpec | undefined;
      // The inventory-wide jump does not apply to the bastion itself (a host does not jump via itself).
      const selfOnly = own === undefined && ssh.jump !== undefined && parseJumpSpecHosts(ssh.jump).includes(name);
      if (spec !== undefined && spec !== 'none' && !selfOnly) out = this.jumpChain(spec, path, from, [...stack, name], hosts, resolveJump);
      jumpMemo.set(name, out);
      return out;
    };
    for (const name of hostNames) {
      const j = resolveJump(name, []);
      if (j) hosts.get(name)!.connection.jump = j;
    }

    // --- clusters
    const clusters = new Map<string, ClusterSpec>();
    const clusterOf = new Map<string, string>();
    const cidrs = new Map<string, Cidr>();
    for (const [cname, c] of Object.entries(raw.clusters)) {
      const base: KeyPath = ['clusters', cname];
      for (const role of ['master', 'replica'] as const) {
        const h = c[role];
        if (raw.hosts[h] === undefined) {
          this.ctx.error([...base, role], `unknown host "${h}"${suggestion(h, hostNames, false)}: ${role} must name a host under hosts:`);
        } else if (clusterOf.has(h) && clusterOf.get(h) !== cname) {
          this.ctx.error([...base, role], `host "${h}" is already in cluster "${clusterOf.get(h)}": a host can serve only one cluster (one redis port, one keepalived)`);
        } else {
          clusterOf.set(h, cname);
        }
      }
      if (c.master === c.replica) this.ctx.error([...base, 'replica'], `master and replica are both "${c.master}": a pair needs two different hosts`);
      const ifBad = interfaceNameProblem(c.interface);
      if (ifBad) this.ctx.error([...base, 'interface'], ifBad);
      const cidr = parseCidr(c.vip);
      if (typeof cidr === 'string') this.ctx.error([...base, 'vip'], cidr);
      else {
        cidrs.set(cname, cidr);
        for (const [other, oc] of cidrs) {
          if (other !== cname && oc.address === cidr.address) this.ctx.error([...base, 'vip'], `VIP ${cidr.address} is also the VIP of cluster "${other}": each cluster needs its own`);
        }
        for (const hn of hostNames) {
          if (hosts.get(hn)!.connection.address === cidr.address) this.ctx.error([...base, 'vip'], `VIP ${cidr.address} is the address of host "${hn}": the VIP must be a free address`);
        }
      }
      // keepalived
      const k = c.keepalived;
      const kp: KeyPath = [...base, 'keepalived'];
      if (k.check.weight >= 0) this.ctx.error([...kp, 'check', 'weight'], `weight ${k.check.weight} must be negative (e.g. -20): a failing check must lower the priority so the VIP moves`);
      const { master: pm, replica: pr } = k.priority;
      const w = Math.abs(k.check.weight);
      if (!(pr < pm)) this.ctx.error([...kp, 'priority', 'master'], `${pm} breaks the priority rule (${pr} < master < ${pr}+${w}): the master must have a higher priority than the replica (${pr}) to win the first election`);
      else if (!(pm < pr + w)) this.ctx.error([...kp, 'priority', 'master'], `${pm} breaks the priority rule (${pr} < master < ${pr}+${w}): after a failed check the master drops to ${pm - w}, not below the replica (${pr}), so the VIP would stay on a dead Redis; lower priority.master or raise |check.weight|`);
      const auth = resolveSecret(this.ctx, k.auth_pass, [...kp, 'auth_pass']);
      if (auth) {
        if (CONTROL.test(auth.value)) this.ctx.error([...kp, 'auth_pass'], `contains a newline or control character: it would inject a directive into keepalived.conf`);
        // keepalived.conf has no quoting: whitespace splits the word, "#" and "!" start a comment,
        // "$" expands a definition, braces are block tokens. Refuse rather than render it wrong.
        else if (!AUTH_PASS_CHARS.test(auth.value)) this.ctx.error([...kp, 'auth_pass'], AUTH_PASS_RULE);
        if (auth.value.length > 8) {
          this.ctx.warn([...kp, 'auth_pass'], `is ${auth.value.length} characters but keepalived uses only the first 8: shorten it`);
          this.ctx.secrets.add(auth.value.slice(0, 8));
        }
      }
      if (k.unicast) {
        const addrs: string[] = [];
        for (const role of ['master', 'replica'] as const) {
          const a = hosts.get(c[role])?.connection.address;
          if (a !== undefined && parseIPv4(a) === undefined) this.ctx.error([...kp, 'unicast'], `unicast peers need IPv4 addresses but ${role} "${c[role]}" has address "${a}": give the host an IPv4 address`);
          else if (a !== undefined) addrs.push(a);
        }
        // unicast_src_ip and unicast_peer would be one address: each node sends its adverts to itself and never hears the other.
        if (addrs.length === 2 && parseIPv4(addrs[0]) === parseIPv4(addrs[1]) && c.master !== c.replica) {
          this.ctx.error(
            [...kp, 'unicast'],
            `master "${c.master}" and replica "${c.replica}" both have address ${addrs[0]}: with unicast each node sends its VRRP adverts to the other's address, so they would only hear themselves and both take the VIP; give each host its own address`,
          );
        }
      }
      // redis
      const r = c.redis;
      const rp: KeyPath = [...base, 'redis'];
      const pw = resolveSecret(this.ctx, r.password, [...rp, 'password']);
      if (pw && CONTROL.test(pw.value)) this.ctx.error([...rp, 'password'], `contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf`);
      if (r.source) {
        const n = Number(r.source.path !== undefined) + Number(r.source.url !== undefined);
        if (n !== 1) this.ctx.error([...rp, 'source'], `give exactly one of source.path (a local tarball or tree) or source.url`);
        if (r.source.url && !r.source.sha256) this.ctx.error([...rp, 'source', 'url'], `a download needs source.sha256 to verify it: add the tarball's SHA-256`);
        if (r.source.path && !r.source.sha256 && r.install === 'source') this.ctx.error([...rp, 'source', 'path'], `needs source.sha256 next to it, so that the tarball built is the one you meant: add its SHA-256 (sha256sum FILE)`);
      }
      if (r.install === 'package' && r.source) this.ctx.warn([...rp, 'source'], `is ignored with install: package`);
      for (const [key, value] of Object.entries(r.config)) {
        const path: KeyPath = [...rp, 'config', key];
        if (CONTROL.test(key)) this.ctx.error(path, `key contains a newline or control character: it would inject a directive into redis.conf`, true);
        else if (!/^[a-z][a-z0-9-]*$/.test(key)) this.ctx.error(path, `"${key}" does not look like a redis.conf directive (lowercase letters, digits and "-", e.g. tcp-keepalive)`, true);
        else if (MANAGED_REDIS_KEYS[key]) this.ctx.error(path, `"${key}" is managed by rha: set ${MANAGED_REDIS_KEYS[key]} instead`, true);
        if (typeof value === 'string' && CONTROL.test(value)) this.ctx.error(path, `value contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf`);
        else if (typeof value === 'string') {
          const bad = redisWordsProblem(value);
          if (bad) this.ctx.error(path, `value ${bad}`);
        }
      }
      const maxmemory = String(r.maxmemory);
      const memBad = redisMemoryProblem(r.maxmemory);
      if (memBad) this.ctx.error([...rp, 'maxmemory'], memBad);
      // maxmemory has its own, stricter rule (redisMemoryProblem).
      for (const [key, v] of [['bind', r.bind], ['save', r.save]] as const) {
        if (CONTROL.test(v)) this.ctx.error([...rp, key], `contains a newline or control character: it would inject a directive into redis.conf`);
        else if (/["'\\]/.test(v)) this.ctx.error([...rp, key], `must not contain quotes or backslashes: it is written unquoted into redis.conf`);
      }
      // These paths go unquoted into redis.conf, keepalived.conf and the root-run health/notify
      // scripts: a "$(...)" or ";" there would run as root on every health check.
      const pathRule = 'path may contain only letters, digits and "/", ".", "_", "+", "@", "-" (it is written into shell scripts and config files)';
      for (const key of ['prefix', 'config_dir', 'data_dir', 'log_dir'] as const) {
        if (!SAFE_PATH.test(r[key])) this.ctx.error([...rp, key], pathRule);
      }
      if (!SAFE_PATH.test(k.log_file)) this.ctx.error([...kp, 'log_file'], pathRule);
      if (r.source?.path && !r.source.url && r.install === 'source') this.checkTarball(r.source.path, r.source.sha256, [...rp, 'source']);

      if (r.build_host !== undefined && !hosts.has(r.build_host)) {
        this.ctx.error([...rp, 'build_host'], `"${r.build_host}" is not a host of this inventory${suggestion(r.build_host, [...hosts.keys()])}`);
      }
      const redis: Record<string, unknown> = {
        ...r,
        build_host: r.build_host ?? null,
        maxmemory,
        password: pw?.value ?? '',
        source: r.source
          ? { path: r.source.path ? this.ctx.path(r.source.path) : null, url: r.source.url ?? null, sha256: r.source.sha256 ?? null }
          : null,
        config: { ...r.config },
      };
      const keepalived: Record<string, unknown> = {
        ...k,
        auth_pass: auth?.value ?? null,
        priority: { ...k.priority },
        check: { ...k.check },
      };
      clusters.set(cname, {
        name: cname,
        master: c.master,
        replica: c.replica,
        vip: c.vip,
        interface: c.interface,
        redis,
        keepalived,
      });
    }
    // virtual_router_id: unique per L2 segment (same interface name and VIP subnet)
    const seen = new Map<string, string>();
    for (const [cname, c] of Object.entries(raw.clusters)) {
      const cidr = cidrs.get(cname);
      if (!cidr) continue;
      const seg = `${c.interface} ${cidr.network} ${c.keepalived.virtual_router_id}`;
      const other = seen.get(seg);
      if (other) {
        this.ctx.error(
          ['clusters', cname, 'keepalived', 'virtual_router_id'],
          `${c.keepalived.virtual_router_id} is also used by cluster "${other}" on ${c.interface} ${cidr.network}: clusters on one segment need different virtual_router_id values`,
        );
      } else seen.set(seg, cname);
    }

    // --- group map: all, declared groups, one per cluster, clusters
    const order = (set: Iterable<string>) => {
      const s = new Set(set);
      return hostNames.filter((h) => s.has(h));
    };
    const groups = new Map<string, string[]>();
    groups.set('all', [...hostNames]);
    for (const g of groupNames) groups.set(g, order(members.get(g)!));
    for (const [cname, c] of clusters) groups.set(cname, order([c.master, c.replica].filter((h) => hosts.has(h))));
    groups.set('clusters', order(clusterOf.keys()));

    // --- vars by precedence: all < groups (parents before children, then by name) < host < cluster-derived
    const groupOrder = [...groupNames].sort((a, b) => depth.get(a)! - depth.get(b)! || a.localeCompare(b));
    for (const [name, host] of hosts) {
      const hv = raw.hosts[name];
      const memberOf = groupOrder.filter((g) => members.get(g)!.has(name));
      const vars: Record<string, unknown> = { ...raw.vars };
      for (const g of memberOf) Object.assign(vars, raw.groups[g].vars);
      if (typeof hv !== 'string' && hv.vars) Object.assign(vars, hv.vars);
      const cname = clusterOf.get(name);
      const c = cname ? clusters.get(cname) : undefined;
      host.groups = ['all', ...groupNames.filter((g) => members.get(g)!.has(name))];
      if (c && cname) {
        const role: NodeRole = c.master === name ? 'master' : 'replica';
        const peer = role === 'master' ? c.replica : c.master;
        const cidr = cidrs.get(cname);
        const prio = (c.keepalived.priority as { master: number; replica: number })[role];
        vars.cluster = {
          name: cname,
          master: c.master,
          replica: c.replica,
          master_address: hosts.get(c.master)?.connection.address ?? null,
          replica_address: hosts.get(c.replica)?.connection.address ?? null,
          vip: c.vip,
          vip_address: cidr?.address ?? c.vip.split('/')[0],
          vip_prefix: cidr?.prefix ?? Number(c.vip.split('/')[1]),
          interface: c.interface,
          redis: c.redis,
          keepalived: c.keepalived,
        };
        vars.node = { name: host.name, role, peer, peer_address: hosts.get(peer)?.connection.address ?? null, address: host.connection.address, priority: prio };
        host.groups.push(cname, 'clusters');
      }
      host.vars = vars;
    }

    return { file: this.ctx.src.file, dir: this.ctx.dir, hosts, groups, clusters, secrets: this.ctx.secrets, warnings: [] };
  }

  private sshConfig: SshConfigFile | undefined;

  /** Reads `ssh.config` (or ~/.ssh/config when it exists; none with `config: false`). */
  private loadSshConfig(): void {
    const c = this.ctx.raw.ssh.config;
    if (c === false) return;
    try {
      this.sshConfig = c === undefined ? defaultSshConfig(this.ctx.home()) : readSshConfig(this.ctx.path(c), this.ctx.home());
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.ctx.error(['ssh', 'config'], code === 'ENOENT' ? `ssh config ${c} does not exist (looked at ${this.ctx.path(String(c))})` : `cannot read ssh config ${c}: ${code ?? (e as Error).message}`);
    }
  }

  /** What the ssh config says for `alias` (nothing without a config); warns about directives rha does not follow. */
  private sshConfigFor(alias: string, path: KeyPath): SshConfigHost {
    if (!this.sshConfig) return { identityFiles: [] };
    for (const d of this.sshConfig.unsupported(alias)) {
      this.ctx.warn(path, `ssh config ${this.sshConfig.file} sets ${d} for "${alias}", which rha does not follow: use jump: / ProxyJump, or set it in the inventory`);
    }
    return this.sshConfig.lookup(alias);
  }

  /**
   * The last hop of a jump chain, each hop carrying the one before it: a hop is an inventory host
   * (its settings, and its own jump when it is the first hop) or a name the ssh config may describe.
   */
  private jumpChain(
    spec: string,
    path: KeyPath,
    from: string,
    stack: string[],
    hosts: Map<string, HostSpec>,
    resolveJump: (name: string, stack: string[]) => JumpHostSpec | undefined,
  ): JumpHostSpec | undefined {
    const hops = parseJumpSpec(spec);
    if (typeof hops === 'string') {
      this.ctx.error(path, `${from}: ${hops} (a jump host is an inventory host or [user@]host[:port], several separated by ",")`);
      return undefined;
    }
    let prev: JumpHostSpec | undefined;
    for (const [i, hop] of hops.entries()) {
      let conn: HostConnectionSpec;
      const inv = hosts.get(hop.host);
      if (inv) {
        if (stack.includes(hop.host)) {
          this.ctx.error(path, `jump cycle ${[...stack, hop.host].join(' → ')}: a host cannot be reached through itself`);
          return undefined;
        }
        conn = { ...inv.connection, ...(hop.user ? { user: hop.user } : {}), ...(hop.port ? { port: hop.port } : {}) };
        // An explicit chain says how to reach every hop; otherwise the first hop's own jump applies.
        conn.jump = i === 0 ? resolveJump(hop.host, stack) : prev;
      } else {
        // Not in the inventory: the ssh config describes it (it wins over the inventory-wide ssh: defaults here).
        const cfg = this.sshConfigFor(hop.host, path);
        const ssh = this.ctx.raw.ssh;
        const key = firstExisting(cfg.identityFiles) ?? (ssh.private_key ? this.ctx.path(ssh.private_key) : undefined);
        conn = {
          address: cfg.hostName ?? hop.host,
          port: hop.port ?? cfg.port ?? ssh.port ?? 22,
          user: hop.user ?? cfg.user ?? ssh.user ?? 'root',
          privateKey: key,
          become: false,
          knownHosts: ssh.known_hosts ? this.ctx.path(ssh.known_hosts) : join(this.ctx.home(), '.ssh', 'known_hosts'),
          connectTimeoutMs: Math.round((ssh.connect_timeout ?? 10) * 1000),
          connectRetries: ssh.connect_retries ?? 2,
        };
        if (i > 0) conn.jump = prev;
        else if (cfg.proxyJump && cfg.proxyJump !== 'none' && !stack.includes(hop.text)) {
          conn.jump = this.jumpChain(cfg.proxyJump, path, `ProxyJump of ${hop.host} in ${this.sshConfig?.file}`, [...stack, hop.text], hosts, resolveJump);
        }
      }
      prev = { name: inv ? hop.host : hop.text, connection: conn };
    }
    return prev;
  }

  private readonly checkedKeys = new Set<string>();

  /**
   * A private_key the inventory names must be a file this user can read: otherwise every
   * connection fails later as "unreachable", far from the line that is wrong.
   */
  private checkPrivateKey(p: string, at: KeyPath): void {
    const id = dotted(at);
    if (this.checkedKeys.has(id)) return;
    this.checkedKeys.add(id);
    const file = this.ctx.path(p);
    const shown = file === p ? p : `${p} (${file})`;
    let st;
    try {
      st = statSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.ctx.error(at, code === 'ENOENT' ? `private key ${shown} does not exist: give the path of the SSH private key (or leave private_key out to use ssh-agent)` : `cannot read private key ${shown}: ${code ?? (e as Error).message}`);
      return;
    }
    if (!st.isFile()) {
      this.ctx.error(at, `private key ${shown} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}: give the path of the key file itself (e.g. ~/.ssh/id_ed25519)`);
      return;
    }
    try {
      accessSync(file, constants.R_OK);
    } catch {
      const uid = process.getuid?.();
      this.ctx.error(at, `private key ${shown} is not readable by this user (uid ${uid ?? '?'}; the file is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${st.uid}): run rha as its owner, or chown/chmod it`);
    }
  }

  /** A local source tarball must exist, and match its pinned sha256, before any host is touched. */
  private checkTarball(p: string, sha256: string | undefined, at: KeyPath): void {
    const file = this.ctx.path(p);
    let st;
    try {
      st = statSync(file);
    } catch {
      this.ctx.error([...at, 'path'], `source ${file} does not exist: give the path of the Redis source tarball (or tree)`);
      return;
    }
    if (!st.isFile() || !sha256) return;
    // Every cluster of a lab (or fleet) names the same tarball: hash it once, not once per cluster
    // (50 clusters spent 0.4 s here re-hashing 3 MB each time).
    const key = `${file}\0${st.size}\0${st.mtimeMs}`;
    let actual = tarballHashes.get(key);
    if (actual === undefined) tarballHashes.set(key, (actual = createHash('sha256').update(readFileSync(file)).digest('hex')));
    if (actual !== sha256) this.ctx.error([...at, 'sha256'], `${file} has sha256 ${actual}, not the pinned ${sha256}: the tarball is not the one you meant (re-download it, or update source.sha256)`);
  }

  /** Reports every group cycle once (`a → b → a`); returns whether any exists. */
  private findCycles(): boolean {
    const groups = this.ctx.raw.groups;
    const state = new Map<string, 'visiting' | 'done'>();
    let found = false;
    const reported = new Set<string>();
    const visit = (g: string, stack: string[]): void => {
      state.set(g, 'visiting');
      for (const c of groups[g].children) {
        if (!groups[c]) continue;
        if (state.get(c) === 'visiting') {
          const cycle = [...stack.slice(stack.indexOf(c)), c];
          const id = [...cycle].slice(0, -1).sort().join(',');
          if (!reported.has(id)) {
            reported.add(id);
            found = true;
            const idx = groups[g].children.indexOf(c);
            this.ctx.error(['groups', g, 'children', idx], `group cycle ${cycle.join(' → ')}: a group cannot contain itself; remove one of these children`);
          }
        } else if (!state.has(c)) visit(c, [...stack, c]);
      }
      state.set(g, 'done');
    };
    for (const g of Object.keys(groups)) if (!state.has(g)) visit(g, [g]);
    return found;
  }
}

/** sha256 of source tarballs already checked in this process, by path, size and mtime. */
const tarballHashes = new Map<string, string>();

/** The first of `files` that exists (OpenSSH would try each; rha's connection takes one key). */
function firstExisting(files: string[]): string | undefined {
  return files.find((f) => existsSync(f));
}

/** Host names in a jump spec (for "does the inventory-wide jump name this host"). */
function parseJumpSpecHosts(spec: string): string[] {
  const hops = parseJumpSpec(spec);
  return typeof hops === 'string' ? [] : hops.map((h) => h.host);
}
