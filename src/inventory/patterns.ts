/**
 * Host patterns (Ansible's grammar, the subset rha needs): `all`, a group, a host, `node*`
 * wildcards, joined by `:` (or `,`): `a:b` union, `a:&b` intersection, `a:!b` exclusion.
 * Unions are taken first, then intersections, then exclusions, whatever their order.
 */
import { InputError, type Inventory } from '../core/types.js';
import { suggestion } from './source.js';

export interface PatternWhere {
  file: string;
  line?: number;
  path?: string;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp('^' + glob.replace(/[.+^${}()|[\]\\?]/g, '\\$&').replace(/\*/g, '.*') + '$');
}

/** Returns the host names a pattern selects, in inventory order; an unknown name throws InputError. */
export function selectHosts(inv: Inventory, pattern: string, where: PatternWhere = { file: inv.file }): string[] {
  const all = [...inv.hosts.keys()];
  const fail = (message: string): never => {
    throw new InputError([{ file: where.file, line: where.line, path: where.path, message, severity: 'error' }]);
  };
  const terms = pattern.split(/[:,]/).map((t) => t.trim());
  if (!pattern.trim() || terms.some((t) => t === '' || t === '&' || t === '!')) fail(`host pattern "${pattern}" has an empty term: write e.g. "cache", "cache:&web" or "all:!redis-b"`);

  const resolveTerm = (term: string): Set<string> => {
    if (term === 'all' || term === '*') return new Set(all);
    if (term.includes('*')) {
      const re = globToRegExp(term);
      const out = new Set<string>();
      for (const h of all) if (re.test(h)) out.add(h);
      for (const [g, hs] of inv.groups) if (re.test(g)) hs.forEach((h) => out.add(h));
      return out;
    }
    const group = inv.groups.get(term);
    if (group) return new Set(group);
    if (inv.hosts.has(term)) return new Set([term]);
    return fail(`unknown host or group "${term}" in pattern "${pattern}"${suggestion(term, [...inv.groups.keys(), ...all], false)}`);
  };

  let union: Set<string> | undefined;
  const intersect: Set<string>[] = [];
  const exclude: Set<string>[] = [];
  for (const t of terms) {
    if (t.startsWith('&')) intersect.push(resolveTerm(t.slice(1)));
    else if (t.startsWith('!')) exclude.push(resolveTerm(t.slice(1)));
    else {
      union ??= new Set();
      for (const h of resolveTerm(t)) union.add(h);
    }
  }
  // `!b` alone means "all but b", as in Ansible.
  let selected = union ?? new Set(all);
  for (const s of intersect) selected = new Set([...selected].filter((h) => s.has(h)));
  for (const s of exclude) selected = new Set([...selected].filter((h) => !s.has(h)));
  return all.filter((h) => selected.has(h));
}

/** Returns `hosts` narrowed by a `--limit` pattern (same grammar), in their given order. */
export function limitHosts(inv: Inventory, hosts: string[], limit?: string): string[] {
  if (limit === undefined || limit === '') return [...hosts];
  const allowed = new Set(selectHosts(inv, limit, { file: '--limit' }));
  return hosts.filter((h) => allowed.has(h));
}
