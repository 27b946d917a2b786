/**
 * loadInventory: YAML → zod safeParse → normalise into the resolved Inventory → semantic rules
 * that push problems. Every problem names file, line and key path; all are reported at once.
 */
import { InputError, type ClusterSpec, type InputProblem, type Inventory, type NodeRole } from '../core/types.js';
import type { Cidr } from './net.js';
import { LoadContext } from './context.js';
import { resolveSecret } from './secrets.js';
import { groupMap, resolveGroups } from './groups.js';
import { resolveHosts } from './hosts.js';
import { checkAuthPass, checkInterfaceAndVip, checkMembers, checkNames, checkPriority, checkRedis, checkUnicast, checkVirtualRouterIds } from './rules.js';
import { inventorySchema, type RawInventory } from './schema.js';
import { Document, LineCounter } from 'yaml';
import { addVarsDirs, detectFormat, locateIn, readAnsibleIni, readAnsibleYaml, toNative } from './ansible.js';
import { parseYaml, readInputFile, sortProblems, zodProblems, type KeyPath, type YamlSource } from './source.js';

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
    const groupNames = Object.keys(raw.groups);

    checkNames(this.ctx);

    const { members, depth } = resolveGroups(this.ctx);

    const hosts = resolveHosts(this.ctx);

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
}
