/**
 * loadInventory: YAML → zod safeParse → normalise into the resolved Inventory → semantic rules
 * that push problems. Every problem names file, line and key path; all are reported at once.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, type ClusterSpec, type HostConnectionSpec, type JumpHostSpec, type HostSpec, type InputProblem, type Inventory, type NodeRole } from '../core/types.js';
import { addressProblem, type Cidr } from './net.js';
import { defaultSshConfig, parseJumpSpec, readSshConfig, type SshConfigFile, type SshConfigHost } from '../connection/ssh-config.js';
import { LoadContext } from './context.js';
import { resolveSecret } from './secrets.js';
import { groupMap, resolveGroups } from './groups.js';
import { checkAuthPass, checkInterfaceAndVip, checkMembers, checkNames, checkPriority, checkRedis, checkUnicast, checkVirtualRouterIds } from './rules.js';
import { inventorySchema, type RawInventory } from './schema.js';
import { Document, LineCounter } from 'yaml';
import { addVarsDirs, detectFormat, locateIn, readAnsibleIni, readAnsibleYaml, toNative } from './ansible.js';
import { dotted, parseYaml, readInputFile, sortProblems, zodProblems, type KeyPath, type YamlSource } from './source.js';

export { MANAGED_REDIS_KEYS, redisMemoryProblem, redisWordsProblem } from './rules.js';

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

  run(): Inventory {
    const raw = this.ctx.raw;
    const hostNames = Object.keys(raw.hosts);
    const groupNames = Object.keys(raw.groups);

    checkNames(this.ctx);

    const { members, depth } = resolveGroups(this.ctx);

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
      checkMembers(this.ctx, cname, c, clusterOf);
      checkInterfaceAndVip(this.ctx, cname, c, cidrs, hosts);
      const k = c.keepalived;
      const kp: KeyPath = ['clusters', cname, 'keepalived'];
      checkPriority(this.ctx, k, kp);
      const auth = resolveSecret(this.ctx, k.auth_pass, [...kp, 'auth_pass']);
      if (auth) checkAuthPass(this.ctx, auth.value, [...kp, 'auth_pass']);
      if (k.unicast) checkUnicast(this.ctx, c, kp, hosts);
      const r = c.redis;
      const pw = resolveSecret(this.ctx, r.password, ['clusters', cname, 'redis', 'password']);
      checkRedis(this.ctx, cname, c, pw?.value, hosts);
      const maxmemory = String(r.maxmemory);
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
    checkVirtualRouterIds(this.ctx, cidrs);

    const groups = groupMap(this.ctx, { members, depth }, hosts, clusters, clusterOf);

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
}

/** The first of `files` that exists (OpenSSH would try each; rha's connection takes one key). */
function firstExisting(files: string[]): string | undefined {
  return files.find((f) => existsSync(f));
}

/** Host names in a jump spec (for "does the inventory-wide jump name this host"). */
function parseJumpSpecHosts(spec: string): string[] {
  const hops = parseJumpSpec(spec);
  return typeof hops === 'string' ? [] : hops.map((h) => h.host);
}
