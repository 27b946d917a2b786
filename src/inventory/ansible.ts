/**
 * Ansible inventories taken as they are: YAML (`all:` / `children:` / `hosts:` / `vars:`) and INI
 * (`[group]`, `[group:vars]`, `[group:children]`), plus `group_vars/` and `host_vars/` beside the
 * file. They are converted into rha's native inventory data, which then goes through the same
 * zod schema and rules as a native file.
 *
 * Mapping: `ansible_host`, `ansible_port`, `ansible_user`, `ansible_ssh_private_key_file`,
 * `ansible_password`, `ansible_become`, `ansible_become_password` (and their old spellings), and
 * `-J`/`-o ProxyJump=`/`-o UserKnownHostsFile=` in `ansible_ssh_common_args` become host connection
 * settings; `rha_clusters` (in any group's vars, usually `all`) is the native `clusters:`; other
 * variables stay variables. Any other `ansible_*` variable is reported, naming it, never dropped
 * silently. Ansible's precedence holds: all < parent group < child group < host.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { parse as parseYamlText } from 'yaml';
import { byCodeUnit } from '../core/order.js';
import type { InputProblem } from '../core/types.js';
import { dotted, lineOf, parseYaml, readInputFile, type KeyPath, type YamlSource } from './source.js';

export type InventoryFormat = 'rha' | 'ansible-yaml' | 'ansible-ini';

/** Which format `text` is in: INI by extension or a `[section]` first line; YAML Ansible by its group shape. */
export function detectFormat(file: string, text: string, data?: unknown): InventoryFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.ini' || ext === '.cfg') return 'ansible-ini';
  if (!['.yaml', '.yml', '.json'].includes(ext)) {
    const first = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#') && !l.startsWith(';'));
    if (first !== undefined && /^\[[^\]]+\]$/.test(first)) return 'ansible-ini';
    // `host1 ansible_host=...` lines before any section: ungrouped hosts of an INI file.
    if (first !== undefined && /^\S+(\s+\S+=\S*)+$/.test(first) && !first.includes(':')) return 'ansible-ini';
  }
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const top = data as Record<string, unknown>;
    if ('hosts' in top || 'clusters' in top || 'ssh' in top) return 'rha';
    const groupKeys = ['hosts', 'children', 'vars'];
    const values = Object.values(top);
    const groupLike = (v: unknown) => v === null || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).every((k) => groupKeys.includes(k)));
    // A native file missing hosts: (`vars: {}`) is not Ansible: a group must list hosts or children.
    const hasMembers = values.some((v) => v !== null && typeof v === 'object' && ('hosts' in v || 'children' in v));
    if (values.length > 0 && values.every(groupLike) && ('all' in top || hasMembers)) return 'ansible-yaml';
  }
  return 'rha';
}

interface Located<T> {
  value: T;
  line?: number;
  /** A file other than the inventory (group_vars/…), for messages. */
  file?: string;
}
type VarMap = Map<string, Located<unknown>>;

interface AGroup {
  hosts: string[];
  children: string[];
  vars: VarMap;
  line?: number;
}

/** The Ansible model: groups (with `all`), per-host vars, host order as first seen. */
interface AnsibleModel {
  groups: Map<string, AGroup>;
  hostVars: Map<string, VarMap>;
  hostLine: Map<string, number | undefined>;
}

/** Native inventory data, where each native key path came from, and what could not be mapped. */
export interface Converted {
  data: Record<string, unknown>;
  /** Native dotted path → line in the Ansible file (the longest known prefix answers). */
  lines: Map<string, number>;
  problems: InputProblem[];
}

function group(m: AnsibleModel, name: string): AGroup {
  let g = m.groups.get(name);
  if (!g) m.groups.set(name, (g = { hosts: [], children: [], vars: new Map() }));
  return g;
}
function addHost(m: AnsibleModel, g: string, host: string, line?: number): VarMap {
  const grp = group(m, g);
  if (!grp.hosts.includes(host)) grp.hosts.push(host);
  if (!m.hostVars.has(host)) {
    m.hostVars.set(host, new Map());
    m.hostLine.set(host, line);
  }
  return m.hostVars.get(host)!;
}

// ---------------------------------------------------------------------------------------------
// YAML

/** Reads an Ansible YAML inventory (already parsed, with positions). */
export function readAnsibleYaml(src: YamlSource): { model: AnsibleModel; problems: InputProblem[] } {
  const m: AnsibleModel = { groups: new Map(), hostVars: new Map(), hostLine: new Map() };
  const problems: InputProblem[] = [];
  const err = (path: KeyPath, message: string): void => void problems.push({ file: src.file, line: lineOf(src, path), path: dotted(path), message, severity: 'error' });
  const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  const walk = (name: string, body: unknown, path: KeyPath): void => {
    const g = group(m, name);
    g.line ??= lineOf(src, path, { key: true });
    if (body === null || body === undefined) return;
    if (!isMap(body)) return err(path, `expected a group (a mapping with hosts:, children:, vars:)`);
    for (const k of Object.keys(body)) if (!['hosts', 'children', 'vars'].includes(k)) err([...path, k], `unknown key "${k}" in an Ansible group (expected hosts, children, vars)`);
    if (body.hosts != null) {
      if (!isMap(body.hosts)) err([...path, 'hosts'], 'expected a mapping of host names');
      else
        for (const [h, hv] of Object.entries(body.hosts)) {
          const vars = addHost(m, name, h, lineOf(src, [...path, 'hosts', h], { key: true }));
          if (hv == null) continue;
          if (!isMap(hv)) err([...path, 'hosts', h], 'expected host variables (a mapping) or nothing');
          else for (const [k, v] of Object.entries(hv)) vars.set(k, { value: v, line: lineOf(src, [...path, 'hosts', h, k]) });
        }
    }
    if (body.vars != null) {
      if (!isMap(body.vars)) err([...path, 'vars'], 'expected a mapping of variables');
      else for (const [k, v] of Object.entries(body.vars)) g.vars.set(k, { value: v, line: lineOf(src, [...path, 'vars', k]) });
    }
    if (body.children != null) {
      if (!isMap(body.children)) err([...path, 'children'], 'expected a mapping of child groups');
      else
        for (const [c, cv] of Object.entries(body.children)) {
          if (!g.children.includes(c)) g.children.push(c);
          walk(c, cv, [...path, 'children', c]);
        }
    }
  };
  group(m, 'all');
  for (const [name, body] of Object.entries(src.data as Record<string, unknown>)) {
    walk(name, body, [name]);
    if (name !== 'all' && !group(m, 'all').children.includes(name)) group(m, 'all').children.push(name);
  }
  return { model: m, problems };
}

// ---------------------------------------------------------------------------------------------
// INI

/** Splits a line into shell-like words (quotes kept out), stopping at a `#` comment. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | undefined;
  let inWord = false;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else if (ch === '#' && !inWord) {
      break;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** Ansible reads inline host values as Python literals: numbers and True/False become typed. */
function literal(v: string): unknown {
  if (/^-?\d+$/.test(v)) return Number(v);
  if (v === 'True') return true;
  if (v === 'False') return false;
  return v;
}

/** Reads an Ansible INI inventory. */
export function readAnsibleIni(file: string, text: string): { model: AnsibleModel; problems: InputProblem[] } {
  const m: AnsibleModel = { groups: new Map(), hostVars: new Map(), hostLine: new Map() };
  const problems: InputProblem[] = [];
  const err = (line: number, message: string): void => void problems.push({ file, line, message, severity: 'error' });
  group(m, 'all');
  let section: { name: string; kind: 'hosts' | 'vars' | 'children' } = { name: 'ungrouped', kind: 'hosts' };
  text.split(/\r?\n/).forEach((rawLine, i) => {
    const line = i + 1;
    const t = rawLine.trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';')) return;
    const sec = /^\[([^\]:]+)(?::(vars|children))?\]$/.exec(t);
    if (sec) {
      section = { name: sec[1].trim(), kind: (sec[2] as 'vars' | 'children' | undefined) ?? 'hosts' };
      const g = group(m, section.name);
      g.line ??= line;
      if (section.name !== 'all' && !group(m, 'all').children.includes(section.name)) group(m, 'all').children.push(section.name);
      return;
    }
    if (t.startsWith('[')) return err(line, `"${t}" is not a section: use [group], [group:vars] or [group:children]`);
    if (section.kind === 'vars') {
      const eq = t.indexOf('=');
      if (eq <= 0) return err(line, `expected NAME=VALUE in [${section.name}:vars]`);
      const w = words(t.slice(eq + 1));
      // :vars values are strings in Ansible; rha_clusters (a mapping) may be written as YAML/JSON flow.
      group(m, section.name).vars.set(t.slice(0, eq).trim(), { value: w.join(' '), line });
      return;
    }
    const w = words(t);
    if (w.length === 0) return;
    if (section.kind === 'children') {
      const g = group(m, section.name);
      if (!g.children.includes(w[0])) g.children.push(w[0]);
      group(m, w[0]);
      return;
    }
    const [host, ...kvs] = w;
    if (/\[[^\]]*:[^\]]*\]/.test(host)) return err(line, `host range "${host}" is not supported: list the hosts one per line`);
    const vars = addHost(m, section.name, host, line);
    for (const kv of kvs) {
      const eq = kv.indexOf('=');
      if (eq <= 0) {
        err(line, `expected NAME=VALUE after the host name, got "${kv}"`);
        continue;
      }
      vars.set(kv.slice(0, eq), { value: literal(kv.slice(eq + 1)), line });
    }
  });
  if (!group(m, 'all').children.includes('ungrouped')) group(m, 'all').children.push('ungrouped');
  return { model: m, problems };
}

// ---------------------------------------------------------------------------------------------
// group_vars/ and host_vars/ beside the inventory (as ansible-inventory reads them)

function varsFile(dir: string, name: string): string | undefined {
  for (const ext of ['', '.yml', '.yaml', '.json']) {
    const p = join(dir, name + ext);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The vars files for `name` under `dir` (a file, or a folder of files), each top-level key with its line; problems for files rha refuses. */
function readVarsFiles(dir: string, name: string, problems: InputProblem[]): Array<{ file: string; vars: Map<string, number | undefined>; data: Record<string, unknown> }> {
  const p = varsFile(dir, name);
  if (!p) return [];
  const files = statSync(p).isDirectory()
    ? readdirSync(p).filter((f) => /\.(ya?ml|json)$/.test(f)).sort().map((f) => join(p, f))
    : [p];
  return files.flatMap((file) => {
    let read: ReturnType<typeof readInputFile>;
    try {
      read = readInputFile(file);
    } catch (e) {
      problems.push({ file, message: `cannot read vars file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, severity: 'error' });
      return [];
    }
    if (read.problem) return void problems.push(read.problem), [];
    // The same parser as every other input: duplicate keys named, alias bombs refused, lines kept.
    const { source, problems: bad } = parseYaml(file, read.text!);
    if (bad.length) return void problems.push(...bad), [];
    const v = source.data;
    const data = v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
    return [{ file, data, vars: new Map(Object.keys(data).map((k) => [k, lineOf(source, [k], { key: true })])) }];
  });
}

/**
 * Adds group_vars/GROUP(.yml) and host_vars/HOST(.yml) next to `inventoryFile` (the inventory's
 * own vars win, as in Ansible); returns problems with those files.
 */
export function addVarsDirs(m: AnsibleModel, inventoryFile: string): InputProblem[] {
  const base = dirname(inventoryFile);
  const problems: InputProblem[] = [];
  for (const [name, g] of m.groups) {
    for (const { file, vars, data } of readVarsFiles(join(base, 'group_vars'), name, problems)) {
      for (const [k, v] of Object.entries(data)) if (!g.vars.has(k)) g.vars.set(k, { value: v, file, line: vars.get(k) });
    }
  }
  for (const [host, hv] of m.hostVars) {
    for (const { file, vars, data } of readVarsFiles(join(base, 'host_vars'), host, problems)) {
      for (const [k, v] of Object.entries(data)) if (!hv.has(k)) hv.set(k, { value: v, file, line: vars.get(k) });
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Conversion

/** Ansible variable → rha connection key; the value converter says how. */
const CONNECTION: Record<string, { key: string; as: 'string' | 'port' | 'bool' | 'secret' }> = {
  ansible_host: { key: 'address', as: 'string' },
  ansible_ssh_host: { key: 'address', as: 'string' },
  ansible_port: { key: 'port', as: 'port' },
  ansible_ssh_port: { key: 'port', as: 'port' },
  ansible_user: { key: 'user', as: 'string' },
  ansible_ssh_user: { key: 'user', as: 'string' },
  ansible_ssh_private_key_file: { key: 'private_key', as: 'string' },
  ansible_private_key_file: { key: 'private_key', as: 'string' },
  ansible_password: { key: 'password', as: 'secret' },
  ansible_ssh_pass: { key: 'password', as: 'secret' },
  ansible_ssh_password: { key: 'password', as: 'secret' },
  ansible_become: { key: 'become', as: 'bool' },
  ansible_become_password: { key: 'become_password', as: 'secret' },
  ansible_become_pass: { key: 'become_password', as: 'secret' },
  ansible_ssh_common_args: { key: '', as: 'string' },
  ansible_ssh_extra_args: { key: '', as: 'string' },
};

/** Variables whose Ansible meaning rha already has: no warning for these values. */
const HARMLESS: Record<string, (v: unknown) => boolean> = {
  ansible_connection: (v) => ['ssh', 'smart', 'paramiko'].includes(String(v)),
  ansible_become_method: (v) => String(v) === 'sudo',
  ansible_become_user: (v) => String(v) === 'root',
};

const ENV_LOOKUP = /^\{\{\s*lookup\(\s*['"]env['"]\s*,\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\)\s*\}\}$/;

/** Converts the model into native inventory data; problems name the Ansible variable and where it is set. */
export function toNative(file: string, m: AnsibleModel): Converted {
  const problems: InputProblem[] = [];
  const lines = new Map<string, number>();
  const where = (l: Located<unknown>) => ({ file: l.file ?? file, line: l.file ? undefined : l.line });
  const warned = new Set<string>();
  const warn = (name: string, l: Located<unknown>, message: string, severity: 'warning' | 'error' = 'warning') => {
    const id = `${name}@${l.file ?? ''}:${l.line ?? ''}:${message}`;
    if (warned.has(id)) return;
    warned.add(id);
    problems.push({ ...where(l), path: name, message, severity });
  };

  // Depth for precedence: all 0, its children 1, ...
  const depth = new Map<string, number>([['all', 0]]);
  const queue = ['all'];
  while (queue.length) {
    const g = queue.shift()!;
    for (const c of m.groups.get(g)?.children ?? []) {
      if (!depth.has(c)) {
        depth.set(c, depth.get(g)! + 1);
        queue.push(c);
      }
    }
  }
  const memberOf = (host: string): string[] => {
    const direct = [...m.groups].filter(([, g]) => g.hosts.includes(host)).map(([n]) => n);
    const out = new Set<string>(['all']);
    const up = (g: string) => {
      if (out.has(g)) return;
      out.add(g);
      for (const [p, pg] of m.groups) if (pg.children.includes(g)) up(p);
    };
    direct.forEach(up);
    return [...out].sort((a, b) => (depth.get(a) ?? 1) - (depth.get(b) ?? 1) || byCodeUnit(a, b));
  };

  // rha_clusters: the native clusters:, from any group's vars (a mapping, or YAML/JSON text in INI).
  const clusters: Record<string, unknown> = {};
  for (const [gname, g] of m.groups) {
    const rc = g.vars.get('rha_clusters');
    if (!rc) continue;
    let v = rc.value;
    if (typeof v === 'string') {
      try {
        v = parseYamlText(v);
      } catch (e) {
        warn('rha_clusters', rc, `is not YAML/JSON: ${(e as Error).message.split('\n')[0]}`, 'error');
        continue;
      }
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) {
      warn('rha_clusters', rc, 'must be a mapping of cluster name → cluster (the native clusters: shape)', 'error');
      continue;
    }
    for (const [c, body] of Object.entries(v as Record<string, unknown>)) {
      if (c in clusters) warn('rha_clusters', rc, `cluster "${c}" is defined again (in group ${gname}): define each cluster once`, 'error');
      clusters[c] = body;
      if (rc.line) lines.set(`clusters.${c}`, rc.line);
    }
  }
  if (Object.keys(clusters).length) lines.set('clusters', [...m.groups.values()].map((g) => g.vars.get('rha_clusters')?.line).find((l) => l) ?? 1);

  const plainVars = (vars: VarMap): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, l] of vars) {
      if (k === 'rha_clusters' || k.startsWith('ansible_')) continue;
      out[k] = l.value;
    }
    return out;
  };

  const hosts: Record<string, unknown> = {};
  for (const [host, hv] of m.hostVars) {
    const hl = m.hostLine.get(host);
    if (hl) lines.set(`hosts.${host}`, hl);
    // Effective ansible_* settings: all < parent < child < host.
    const eff = new Map<string, Located<unknown>>();
    for (const g of memberOf(host)) for (const [k, l] of m.groups.get(g)?.vars ?? []) if (k.startsWith('ansible_')) eff.set(k, l);
    for (const [k, l] of hv) if (k.startsWith('ansible_')) eff.set(k, l);
    const out: Record<string, unknown> = { address: host };
    for (const [k, l] of eff) {
      const map = CONNECTION[k];
      if (!map) {
        if (HARMLESS[k]?.(l.value)) continue;
        warn(k, l, k === 'ansible_python_interpreter'
          ? `ansible_python_interpreter is not used: rha needs no Python on the hosts`
          : `ansible variable ${k} (= ${JSON.stringify(l.value)}) has no rha equivalent: ignored`);
        continue;
      }
      if (l.line) lines.set(`hosts.${host}.${map.key || 'jump'}`, l.line);
      const v = l.value;
      if (map.key === '') {
        const args = words(String(v));
        for (let i = 0; i < args.length; i++) {
          const a = args[i];
          const opt = a === '-o' ? args[++i] ?? '' : a.startsWith('-o') ? a.slice(2) : undefined;
          if (a === '-J') out.jump = args[++i];
          else if (opt !== undefined && /^proxyjump=/i.test(opt)) out.jump = opt.slice(opt.indexOf('=') + 1);
          else if (opt !== undefined && /^userknownhostsfile=/i.test(opt)) out.known_hosts = opt.slice(opt.indexOf('=') + 1);
          else if (opt !== undefined && /^(stricthostkeychecking|controlmaster|controlpersist|controlpath)=/i.test(opt)) continue; // rha always verifies host keys; it keeps one connection per host itself
          else warn(k, l, `${k}: "${opt ?? a}" has no rha equivalent: ignored (rha understands -J and -o ProxyJump=, -o UserKnownHostsFile=)`);
        }
      } else if (map.as === 'port') {
        out.port = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
      } else if (map.as === 'bool') {
        out.become = typeof v === 'string' ? /^(yes|true|1|on)$/i.test(v) : typeof v === 'number' ? v !== 0 : v;
      } else if (map.as === 'secret') {
        const env = typeof v === 'string' ? ENV_LOOKUP.exec(v) : null;
        if (env) out[map.key] = { env: env[1] };
        else if (typeof v === 'string' && v.includes('{{')) warn(k, l, `${k} is a Jinja expression, which rha does not evaluate: use a literal, {{ lookup('env', 'NAME') }}, or the native { env: NAME } / { file: PATH }`, 'error');
        else out[map.key] = typeof v === 'string' ? v : String(v);
      } else {
        out[map.key] = v;
      }
    }
    const vars = plainVars(hv);
    if (Object.keys(vars).length) out.vars = vars;
    hosts[host] = out;
  }

  const groups: Record<string, unknown> = {};
  for (const [name, g] of m.groups) {
    if (name === 'all' || name === 'ungrouped') continue;
    groups[name] = { hosts: g.hosts, children: g.children, vars: plainVars(g.vars) };
    if (g.line) lines.set(`groups.${name}`, g.line);
  }
  const data: Record<string, unknown> = { hosts, groups, vars: plainVars(m.groups.get('all')?.vars ?? new Map()) };
  if (Object.keys(clusters).length) data.clusters = clusters;
  return { data, lines, problems };
}

/** The line a native key path came from (its longest known prefix), for problems about converted data. */
export function locateIn(lines: Map<string, number>, path: KeyPath): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const l = lines.get(dotted(path.slice(0, n)));
    if (l !== undefined) return l;
  }
  return undefined;
}
