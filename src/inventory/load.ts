/**
 * loadInventory: YAML → zod safeParse → normalise into the resolved Inventory → semantic rules
 * that push problems. Every problem names file, line and key path; all are reported at once.
 *
 * This file reads the input (native YAML, or an Ansible inventory converted by ansible.ts) and
 * runs the steps in order (normalise below); each step lives in its own file: rules.ts (names and
 * every semantic rule), groups.ts, hosts.ts (connections, ssh config, jump chains), clusters.ts,
 * vars.ts, secrets.ts, all sharing the LoadContext of context.ts.
 */
import { InputError, type InputProblem, type Inventory } from '../core/types.js';
import { LoadContext } from './context.js';
import { groupMap, resolveGroups } from './groups.js';
import { resolveHosts } from './hosts.js';
import { checkNames } from './rules.js';
import { resolveClusters } from './clusters.js';
import { assignHostVars } from './vars.js';
import { inventorySchema, type RawInventory } from './schema.js';
import { Document, LineCounter } from 'yaml';
import { addVarsDirs, detectFormat, locateIn, readAnsibleIni, readAnsibleYaml, toNative } from './ansible.js';
import { parseYaml, readInputFile, sortProblems, zodProblems, type YamlSource } from './source.js';

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
  const ctx = new LoadContext(source, parsed.data as RawInventory, opts.env ?? process.env);
  const inv = normalise(ctx);
  const errors = ctx.problems.filter((p) => p.severity === 'error');
  if (errors.length) throw new InputError(sortProblems([...extra, ...ctx.problems]));
  inv.warnings = sortProblems([...extra, ...ctx.problems]);
  return inv;
}

/**
 * Returns the resolved inventory (warnings still empty); every problem found goes onto
 * `ctx.problems`. The steps run in this order because each needs the ones before it (the hosts'
 * addresses for the clusters' VIP and unicast rules, the clusters for the group map and vars),
 * and because it is the order problems on one line are printed.
 */
function normalise(ctx: LoadContext): Inventory {
  checkNames(ctx);
  const tree = resolveGroups(ctx);
  const hosts = resolveHosts(ctx);
  const resolved = resolveClusters(ctx, hosts);
  const groups = groupMap(ctx, tree, hosts, resolved.clusters, resolved.clusterOf);
  assignHostVars(ctx, tree, hosts, resolved);
  return { file: ctx.src.file, dir: ctx.dir, hosts, groups, clusters: resolved.clusters, secrets: ctx.secrets, warnings: [] };
}
