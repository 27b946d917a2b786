/**
 * loadInventory: YAML → zod safeParse → normalise into the resolved Inventory → semantic rules
 * that push problems. Every problem names file, line and key path; all are reported at once.
 */
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InputError, type ClusterSpec, type HostSpec, type InputProblem, type Inventory, type NodeRole, type SecretValue } from '../core/types.js';
import { addressProblem, interfaceNameProblem, parseCidr, parseIPv4, type Cidr } from './net.js';
import { inventorySchema, NAME_PATTERN, NAME_RULE, type RawInventory, type RawSecret } from './schema.js';
import { dotted, lineOf, parseYaml, sortProblems, suggestion, zodProblems, type KeyPath, type YamlSource } from './source.js';

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

export interface LoadInventoryOptions {
  env?: NodeJS.ProcessEnv;
}

/** Returns the resolved inventory; throws InputError with every problem (errors first). Warnings go to `inv.warnings`. */
export async function loadInventory(file: string, opts: LoadInventoryOptions = {}): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new InputError([{ file, message: `cannot read inventory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, severity: 'error' }]);
  }
  return parseInventory(file, text, opts);
}

/** Returns the resolved inventory for already-read text (the file name is used for messages and relative paths). */
export function parseInventory(file: string, text: string, opts: LoadInventoryOptions = {}): Inventory {
  const { source, problems } = parseYaml(file, text);
  if (problems.length) throw new InputError(problems);
  if (source.data === null || source.data === undefined || typeof source.data !== 'object' || Array.isArray(source.data)) {
    throw new InputError([{ file, line: 1, message: 'expected a mapping with hosts: (and usually clusters:) at the top level', severity: 'error' }]);
  }
  const parsed = inventorySchema.safeParse(source.data);
  if (!parsed.success) throw new InputError(sortProblems(zodProblems(source, inventorySchema, parsed.error.issues)));
  const n = new Normaliser(source, parsed.data as RawInventory, opts.env ?? process.env);
  const inv = n.run();
  const errors = n.problems.filter((p) => p.severity === 'error');
  if (errors.length) throw new InputError(sortProblems(n.problems));
  inv.warnings = sortProblems(n.problems);
  return inv;
}

class Normaliser {
  readonly problems: InputProblem[] = [];
  private readonly dir: string;
  private readonly secrets = new Set<string>();

  constructor(
    private readonly src: YamlSource,
    private readonly raw: RawInventory,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.dir = dirname(resolve(src.file));
  }

  private error(path: KeyPath, message: string, key = false): void {
    this.problems.push({ file: this.src.file, line: lineOf(this.src, path, { key }), path: dotted(path), message, severity: 'error' });
  }

  private warn(path: KeyPath, message: string, key = false): void {
    this.problems.push({ file: this.src.file, line: lineOf(this.src, path, { key }), path: dotted(path), message, severity: 'warning' });
  }

  private home(): string {
    return this.env.HOME || homedir();
  }

  /** Absolute path: `~` expands to HOME, relative paths are relative to the inventory file. */
  private path(p: string): string {
    if (p === '~') return this.home();
    if (p.startsWith('~/')) return join(this.home(), p.slice(2));
    return isAbsolute(p) ? p : resolve(this.dir, p);
  }

  private secret(raw: RawSecret | undefined, path: KeyPath): SecretValue | undefined {
    if (raw === undefined) return undefined;
    let value: string | undefined;
    let source: string;
    if (typeof raw === 'string') {
      value = raw;
      source = `${this.src.file}:${lineOf(this.src, path) ?? ''}`;
    } else if ('env' in raw) {
      source = `env ${raw.env}`;
      value = this.env[raw.env];
      if (value === undefined) {
        this.error(path, `environment variable ${raw.env} is not set: export it, or use { file: PATH } or a literal`);
        return undefined;
      }
    } else {
      const abs = this.path(raw.file);
      source = `file ${raw.file}`;
      try {
        value = readFileSync(abs, 'utf8').replace(/(\r?\n)+$/, '');
        const mode = statSync(abs).mode;
        if (mode & 0o077) this.warn(path, `secret file ${raw.file} is readable by group/others: chmod 600 ${abs}`);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        this.error(path, code === 'ENOENT' ? `secret file ${raw.file} does not exist (looked at ${abs})` : `cannot read secret file ${raw.file}: ${code ?? (e as Error).message}`);
        return undefined;
      }
    }
    if (value === '') {
      this.error(path, `secret from ${source} is empty`);
      return undefined;
    }
    this.secrets.add(value);
    return { source, value };
  }

  private checkName(kind: string, name: string, path: KeyPath): void {
    if (!NAME_PATTERN.test(name)) this.error(path, `${kind} name "${name}" ${NAME_RULE}`, true);
  }

  run(): Inventory {
    const raw = this.raw;
    const hostNames = Object.keys(raw.hosts);
    const groupNames = Object.keys(raw.groups);
    const clusterNames = Object.keys(raw.clusters);

    // --- names and collisions (one namespace: patterns may name any of them)
    for (const h of hostNames) this.checkName('host', h, ['hosts', h]);
    for (const g of groupNames) {
      this.checkName('group', g, ['groups', g]);
      if (RESERVED_GROUPS.includes(g)) this.error(['groups', g], `group name "${g}" is reserved by rha: rename the group`, true);
      if (raw.hosts[g] !== undefined) this.error(['groups', g], `group "${g}" has the same name as a host: rename one of them`, true);
    }
    for (const c of clusterNames) {
      this.checkName('cluster', c, ['clusters', c]);
      if (RESERVED_GROUPS.includes(c)) this.error(['clusters', c], `cluster name "${c}" is reserved by rha (it names a group): rename the cluster`, true);
      if (raw.hosts[c] !== undefined) this.error(['clusters', c], `cluster "${c}" has the same name as a host (each cluster gets a group of that name): rename one of them`, true);
      if (raw.groups[c] !== undefined) this.error(['clusters', c], `cluster "${c}" has the same name as a group (each cluster gets a group of that name): rename one of them`, true);
    }
    if (hostNames.length === 0) this.error(['hosts'], 'no hosts: add at least one under hosts:');

    // --- groups: membership, children, cycles
    const directHosts = new Map<string, string[]>();
    for (const [g, grp] of Object.entries(raw.groups)) {
      grp.hosts.forEach((h, i) => {
        if (raw.hosts[h] === undefined) this.error(['groups', g, 'hosts', i], `unknown host "${h}"${suggestion(h, hostNames, false)}`);
      });
      grp.children.forEach((c, i) => {
        if (raw.groups[c] === undefined) this.error(['groups', g, 'children', i], `unknown group "${c}"${suggestion(c, groupNames, false)}`);
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
    for (const name of hostNames) {
      const h = raw.hosts[name];
      const o = typeof h === 'string' ? { address: h } : h;
      const hp: KeyPath = typeof h === 'string' ? ['hosts', name] : ['hosts', name, 'address'];
      const bad = addressProblem(o.address);
      if (bad) this.error(hp, `${bad}: use the host's IPv4 address or DNS name`);
      const pick = <K extends keyof typeof ssh>(k: K): { v: (typeof ssh)[K]; path: KeyPath } =>
        typeof h !== 'string' && (h as Record<string, unknown>)[k] !== undefined
          ? { v: (h as typeof ssh)[k], path: ['hosts', name, k] }
          : { v: ssh[k], path: ['ssh', k] };
      const user = pick('user').v ?? 'root';
      const key = pick('private_key').v;
      const pw = pick('password');
      const bpw = pick('become_password');
      const kh = pick('known_hosts').v;
      hosts.set(name, {
        name,
        connection: {
          address: o.address,
          port: pick('port').v ?? 22,
          user,
          privateKey: key ? this.path(key) : undefined,
          password: this.secret(pw.v, pw.path),
          become: pick('become').v ?? user !== 'root',
          becomePassword: this.secret(bpw.v, bpw.path),
          knownHosts: kh ? this.path(kh) : join(this.home(), '.ssh', 'known_hosts'),
          connectTimeoutMs: Math.round((pick('connect_timeout').v ?? 10) * 1000),
          connectRetries: pick('connect_retries').v ?? 2,
        },
        groups: [],
        vars: {},
      });
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
          this.error([...base, role], `unknown host "${h}"${suggestion(h, hostNames, false)}: ${role} must name a host under hosts:`);
        } else if (clusterOf.has(h) && clusterOf.get(h) !== cname) {
          this.error([...base, role], `host "${h}" is already in cluster "${clusterOf.get(h)}": a host can serve only one cluster (one redis port, one keepalived)`);
        } else {
          clusterOf.set(h, cname);
        }
      }
      if (c.master === c.replica) this.error([...base, 'replica'], `master and replica are both "${c.master}": a pair needs two different hosts`);
      const ifBad = interfaceNameProblem(c.interface);
      if (ifBad) this.error([...base, 'interface'], ifBad);
      const cidr = parseCidr(c.vip);
      if (typeof cidr === 'string') this.error([...base, 'vip'], cidr);
      else {
        cidrs.set(cname, cidr);
        for (const [other, oc] of cidrs) {
          if (other !== cname && oc.address === cidr.address) this.error([...base, 'vip'], `VIP ${cidr.address} is also the VIP of cluster "${other}": each cluster needs its own`);
        }
        for (const hn of hostNames) {
          if (hosts.get(hn)!.connection.address === cidr.address) this.error([...base, 'vip'], `VIP ${cidr.address} is the address of host "${hn}": the VIP must be a free address`);
        }
      }
      // keepalived
      const k = c.keepalived;
      const kp: KeyPath = [...base, 'keepalived'];
      if (k.check.weight >= 0) this.error([...kp, 'check', 'weight'], `weight ${k.check.weight} must be negative (e.g. -20): a failing check must lower the priority so the VIP moves`);
      const { master: pm, replica: pr } = k.priority;
      const w = Math.abs(k.check.weight);
      if (!(pr < pm)) this.error([...kp, 'priority', 'master'], `${pm} breaks the priority rule (${pr} < master < ${pr}+${w}): the master must have a higher priority than the replica (${pr}) to win the first election`);
      else if (!(pm < pr + w)) this.error([...kp, 'priority', 'master'], `${pm} breaks the priority rule (${pr} < master < ${pr}+${w}): after a failed check the master drops to ${pm - w}, not below the replica (${pr}), so the VIP would stay on a dead Redis; lower priority.master or raise |check.weight|`);
      const auth = this.secret(k.auth_pass, [...kp, 'auth_pass']);
      if (auth) {
        if (CONTROL.test(auth.value)) this.error([...kp, 'auth_pass'], `contains a newline or control character: it would inject a directive into keepalived.conf`);
        if (auth.value.length > 8) {
          this.warn([...kp, 'auth_pass'], `is ${auth.value.length} characters but keepalived uses only the first 8: shorten it`);
          this.secrets.add(auth.value.slice(0, 8));
        }
      }
      if (k.unicast) {
        for (const role of ['master', 'replica'] as const) {
          const a = hosts.get(c[role])?.connection.address;
          if (a !== undefined && parseIPv4(a) === undefined) this.error([...kp, 'unicast'], `unicast peers need IPv4 addresses but ${role} "${c[role]}" has address "${a}": give the host an IPv4 address`);
        }
      }
      // redis
      const r = c.redis;
      const rp: KeyPath = [...base, 'redis'];
      const pw = this.secret(r.password, [...rp, 'password']);
      if (pw && CONTROL.test(pw.value)) this.error([...rp, 'password'], `contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf`);
      if (r.source) {
        const n = Number(r.source.path !== undefined) + Number(r.source.url !== undefined);
        if (n !== 1) this.error([...rp, 'source'], `give exactly one of source.path (a local tarball or tree) or source.url`);
        if (r.source.url && !r.source.sha256) this.error([...rp, 'source', 'url'], `a download needs source.sha256 to verify it: add the tarball's SHA-256`);
      }
      if (r.install === 'package' && r.source) this.warn([...rp, 'source'], `is ignored with install: package`);
      for (const [key, value] of Object.entries(r.config)) {
        const path: KeyPath = [...rp, 'config', key];
        if (CONTROL.test(key)) this.error(path, `key contains a newline or control character: it would inject a directive into redis.conf`, true);
        else if (!/^[a-z][a-z0-9-]*$/.test(key)) this.error(path, `"${key}" does not look like a redis.conf directive (lowercase letters, digits and "-", e.g. tcp-keepalive)`, true);
        else if (MANAGED_REDIS_KEYS[key]) this.error(path, `"${key}" is managed by rha: set ${MANAGED_REDIS_KEYS[key]} instead`, true);
        if (typeof value === 'string' && CONTROL.test(value)) this.error(path, `value contains a newline, carriage return, NUL or other control character: it would inject a directive into redis.conf`);
      }
      const maxmemory = String(r.maxmemory);
      for (const [key, v] of [['bind', r.bind], ['save', r.save], ['maxmemory', maxmemory]] as const) {
        if (CONTROL.test(v)) this.error([...rp, key], `contains a newline or control character: it would inject a directive into redis.conf`);
      }
      for (const key of ['prefix', 'config_dir', 'data_dir', 'log_dir'] as const) {
        if (/[\s\x00-\x1f\x7f]/.test(r[key])) this.error([...rp, key], `path must not contain whitespace or control characters`);
      }
      if (/[\s\x00-\x1f\x7f]/.test(k.log_file)) this.error([...kp, 'log_file'], `path must not contain whitespace or control characters`);

      const redis: Record<string, unknown> = {
        ...r,
        maxmemory,
        password: pw?.value ?? '',
        source: r.source
          ? { path: r.source.path ? this.path(r.source.path) : null, url: r.source.url ?? null, sha256: r.source.sha256 ?? null }
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
        this.error(
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

    return { file: this.src.file, dir: this.dir, hosts, groups, clusters, secrets: this.secrets, warnings: [] };
  }

  /** Reports every group cycle once (`a → b → a`); returns whether any exists. */
  private findCycles(): boolean {
    const groups = this.raw.groups;
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
            this.error(['groups', g, 'children', idx], `group cycle ${cycle.join(' → ')}: a group cannot contain itself; remove one of these children`);
          }
        } else if (!state.has(c)) visit(c, [...stack, c]);
      }
      state.set(g, 'done');
    };
    for (const g of Object.keys(groups)) if (!state.has(g)) visit(g, [g]);
    return found;
  }
}
