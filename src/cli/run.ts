/**
 * `rha provision`, `rha run`, `rha validate`, `rha hosts accept`: load and validate everything
 * before the first connection (exit 4, nothing touched), then run with a reporter, and map the
 * outcome to the documented exit codes.
 */
import { setMaxListeners } from 'node:events';
import path from 'node:path';
import { maskSecrets } from '../core/command.js';
import { ExitCode, formatProblem, InputError, type Connection, type HostFacts, type InputProblem, type Inventory, type Playbook } from '../core/types.js';
import { ConnectionPool, forgetHostKey } from '../connection/index.js';
import { gatherFacts } from '../facts/index.js';
import { limitHosts, loadInventory, selectHosts } from '../inventory/index.js';
import { modules } from '../modules/index.js';
import { RunLocks } from '../lock/index.js';
import { isStored, loadPlaybook, validatePlaybook } from '../playbook/index.js';
import { defaultOutput, openReporter } from '../report/open.js';
import { displayPath } from '../report/plain.js';
import { runPlaybook, type RunOptions } from '../runner/index.js';
import { useTemplateStore } from '../template/index.js';
import type { RunCliOptions } from './options.js';
import { packageRoot } from './paths.js';
import { ownPlaybookStore } from './playbook-store.js';
import { ownTemplateStore } from './template-store.js';

import type { CliIo } from './io.js';

export { packageRoot, selfCommand } from './paths.js';

/** Where a command's output goes and what it reads (cli/io.ts). */
export type Io = CliIo;

export const processIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() });

function processInterrupts(handler: () => void): () => void {
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** The shipped site playbook: Redis + keepalived + the documented bring-up order. */
export function sitePlaybook(): string {
  return path.join(packageRoot(), 'playbooks', 'site.yaml');
}

interface Loaded {
  inv?: Inventory;
  pb?: Playbook;
  problems: InputProblem[];
}

/** Loads the inventory and the playbook and validates them against each other; never connects. */
async function loadAll(inventoryFile: string, playbookFile: string, io: Io): Promise<Loaded> {
  const problems: InputProblem[] = [];
  const collect = (e: unknown): undefined => {
    if (e instanceof InputError) problems.push(...e.problems);
    else if (isNotFound(e)) problems.push({ file: e.path ?? '', message: 'no such file', severity: 'error' });
    else throw e;
    return undefined;
  };
  // Both load at once; problems are listed inventory first whatever finishes first.
  const pbPath = path.resolve(io.cwd, playbookFile);
  const [invResult, pbResult] = await Promise.allSettled([
    loadInventory(path.resolve(io.cwd, inventoryFile), { env: io.env }),
    loadPlaybook(pbPath, { store: ownPlaybookStore(pbPath, io.env) }),
  ]);
  const inv = invResult.status === 'fulfilled' ? invResult.value : collect(invResult.reason);
  let pb = pbResult.status === 'fulfilled' ? pbResult.value : collect(pbResult.reason);
  if (inv) problems.push(...inv.warnings);
  if (inv && pb) {
    let found = validatePlaybook(pb, inv, modules);
    // A stored playbook knows each task's line, not each field's: parse it again to say where.
    if (found.length && isStored(pb)) {
      pb = await loadPlaybook(pbPath, { fresh: true });
      found = validatePlaybook(pb, inv, modules);
    }
    problems.push(...found);
  }
  return { inv, pb, problems };
}

function isNotFound(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && (e as NodeJS.ErrnoException).code === 'ENOENT';
}

/** Prints problems as `error: file:line path: message` (warnings without the prefix); returns whether any is an error. */
export function printProblems(problems: InputProblem[], io: Io, secrets: Iterable<string> = []): boolean {
  const sorted = [...problems].sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
  const seen = new Set<string>();
  for (const p of sorted) {
    const file = p.file && path.isAbsolute(p.file) ? displayPath(p.file, io.cwd) : p.file;
    // Masked before formatting: formatProblem escapes control characters, after which a secret holding one would no longer match.
    const mask = (t: string | undefined) => (t === undefined ? t : maskSecrets(t, secrets));
    const text = formatProblem({ ...p, file, path: mask(p.path), message: mask(p.message)! });
    const line = p.severity === 'error' ? `error: ${text}` : text;
    if (seen.has(line)) continue;
    seen.add(line);
    io.stderr.write(line + '\n');
  }
  return problems.some((p) => p.severity === 'error');
}

/** `rha validate INVENTORY [PLAYBOOK]`: 0 when valid, 4 when not. */
export async function validateCommand(inventoryFile: string, playbookFile: string | undefined, io: Io = processIo()): Promise<ExitCode> {
  const pbFile = playbookFile ?? sitePlaybook();
  const { inv, pb, problems } = await loadAll(inventoryFile, pbFile, io);
  if (printProblems(problems, io, inv?.secrets)) return ExitCode.invalidInput;
  const tasks = pb!.plays.reduce((n, p) => n + p.tasks.length + p.handlers.length, 0);
  io.stdout.write(
    `valid: ${displayPath(inv!.file, io.cwd)} (${plural(inv!.hosts.size, 'host')}, ${plural(inv!.clusters.size, 'cluster')}) ` +
      `with ${displayPath(pb!.file, io.cwd)} (${plural(pb!.plays.length, 'play')}, ${plural(tasks, 'task')})\n`,
  );
  return ExitCode.ok;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Whether this process uses rha's stored compiled templates yet (once per process: the keeper runs many commands). */
let templateStoreSet = false;

/** `rha run PLAYBOOK -i INVENTORY` and `rha provision INVENTORY`: runs and returns the exit code. */
export async function runCommand(playbookFile: string, inventoryFile: string, o: RunCliOptions, io: Io = processIo()): Promise<ExitCode> {
  if (!templateStoreSet) {
    templateStoreSet = true;
    useTemplateStore(ownTemplateStore(io.env));
  }
  const { inv, pb, problems } = await loadAll(inventoryFile, playbookFile, io);
  if (inv && pb) problems.push(...checkRunOptions(inv, pb, o));
  if (printProblems(problems, io, inv?.secrets)) return ExitCode.invalidInput;

  const controller = new AbortController();
  // Every running command and connect listens for Ctrl-C: with --forks above 10 Node would warn
  // "possible EventTarget memory leak" in the middle of the output.
  setMaxListeners(0, controller.signal);
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts === 1) {
      io.stderr.write('\ninterrupting: no new task starts, running commands are stopped (Ctrl-C again to exit at once)\n');
      controller.abort();
    } else {
      process.exit(ExitCode.interrupted);
    }
  };
  const stopListening = (io.onInterrupt ?? processInterrupts)(onSignal);

  const format = o.output ?? defaultOutput(io.stdout, io.env);
  const reporter = await openReporter(format, { out: io.stdout, err: io.stderr, verbosity: o.verbose, diff: o.diff, forceRender: io.terminal }, inv!.secrets);
  const pool = new ConnectionPool({
    acceptChangedHostKeys: o.acceptHostKey.includes('all') ? 'all' : new Set(o.acceptHostKey),
    signal: controller.signal,
    keep: io.keep,
    inventoryPath: inventoryFile,
    onHostKey: (e) => {
      if (e.kind === 'replaced' || o.verbose >= 1) {
        const what = e.kind === 'replaced' ? 'accepted the changed host key' : 'recorded the host key (first contact)';
        reporter.emit({ kind: 'warning', host: e.host, msg: `${what} ${e.fingerprint} in ${e.knownHosts}` });
      }
    },
  });
  const opts: RunOptions = {
    check: o.check,
    diff: o.diff,
    limit: o.limit,
    tags: o.tags,
    skipTags: o.skipTags,
    forks: o.forks,
    // The pair modules read `rha_force` (ha_topology, redis_replication).
    extraVars: o.force.length ? { ...o.extraVars, rha_force: o.force } : o.extraVars,
    signal: controller.signal,
  };
  // Check mode changes nothing, so it neither needs nor takes the per-host run lock.
  const locks = o.check
    ? undefined
    : new RunLocks({
        command: `rha ${path.basename(playbookFile)} -i ${displayPath(path.resolve(io.cwd, inventoryFile), io.cwd)}`,
        warn: (host, msg) => reporter.emit({ kind: 'warning', host, msg }),
      });
  // Facts are read while the run lock is taken (two round trips at once, not one after the
  // other): reading them changes nothing, and a host whose lock is refused never uses them.
  // Facts run without become (facts/index.ts), so this never tries a sudo password twice at once.
  const factsAhead = new WeakMap<Connection, Promise<HostFacts>>();
  const connect = async (h: Parameters<ConnectionPool['get']>[0], how?: { forFacts?: boolean }) => {
    const conn = await pool.get(h);
    if (locks && how?.forFacts && !factsAhead.has(conn)) {
      const facts = gatherFacts(conn);
      facts.catch(() => undefined); // its error is the facts task's, when it asks
      factsAhead.set(conn, facts);
    }
    await locks?.acquire(h, conn);
    return conn;
  };
  const factsOf = (conn: Connection): Promise<HostFacts> => {
    const ahead = factsAhead.get(conn);
    factsAhead.delete(conn);
    return ahead ?? gatherFacts(conn);
  };
  try {
    const summary = await runPlaybook(pb!, inv!, opts, { modules, connect, gatherFacts: factsOf, reporter });
    return summary.exitCode;
  } catch (e) {
    // An internal error is printed by main with its stack: mask it like everything else.
    if (e instanceof Error) {
      e.message = maskSecrets(e.message, inv!.secrets);
      if (e.stack) e.stack = maskSecrets(e.stack, inv!.secrets);
    }
    throw e;
  } finally {
    await locks?.releaseAll();
    await reporter.close();
    await pool.closeAll().catch(() => undefined);
    stopListening();
  }
}

/** Problems with --limit, --tags and --accept-host-key against this inventory and playbook. */
function checkRunOptions(inv: Inventory, pb: Playbook, o: RunCliOptions): InputProblem[] {
  const problems: InputProblem[] = [];
  const where = { file: '(command line)', severity: 'error' as const };
  if (o.limit !== undefined) {
    try {
      const all = [...new Set(pb.plays.flatMap((p) => selectHosts(inv, p.hosts, { file: p.file, line: p.line, path: 'hosts' })))];
      if (limitHosts(inv, all, o.limit).length === 0) problems.push({ ...where, path: '--limit', message: `"${o.limit}" matches no host of the playbook's plays` });
    } catch (e) {
      if (e instanceof InputError) problems.push(...e.problems.map((p) => ({ ...p, file: '(command line)', path: '--limit' })));
      else throw e;
    }
  }
  for (const c of o.force) {
    if (!inv.clusters.has(c)) problems.push({ ...where, path: '--force', message: `no cluster "${c}" in the inventory (clusters: ${[...inv.clusters.keys()].join(', ') || 'none'})` });
  }
  for (const h of o.acceptHostKey) {
    if (h !== 'all' && !inv.hosts.has(h)) problems.push({ ...where, path: '--accept-host-key', message: `no host "${h}" in the inventory` });
  }
  const known = new Set(pb.plays.flatMap((p) => [...p.tags, ...p.tasks.flatMap((t) => t.tags), ...p.handlers.flatMap((t) => t.tags)]));
  const special = new Set(['all', 'tagged', 'untagged', 'always', 'never']);
  for (const [flag, list] of [['--tags', o.tags], ['--skip-tags', o.skipTags]] as const) {
    for (const t of list) {
      if (!known.has(t) && !special.has(t)) problems.push({ file: '(command line)', path: flag, message: `no task or play has the tag "${t}"`, severity: 'warning' });
    }
  }
  return problems;
}

/**
 * Loads an inventory for a command that needs only the inventory; returns it, or (after printing
 * the problems) the invalid-input exit code.
 */
export async function loadInventoryOrReport(inventoryFile: string, io: Io = processIo()): Promise<Inventory | ExitCode> {
  try {
    return await loadInventory(path.resolve(io.cwd, inventoryFile), { env: io.env });
  } catch (e) {
    if (e instanceof InputError) {
      printProblems(e.problems, io);
      return ExitCode.invalidInput;
    }
    if (isNotFound(e)) {
      printProblems([{ file: inventoryFile, message: 'no such file', severity: 'error' }], io);
      return ExitCode.invalidInput;
    }
    throw e;
  }
}

/** `rha hosts accept HOST -i INVENTORY`: forgets HOST's known_hosts entries so the next run records its new key. */
export async function hostsAcceptCommand(host: string, inventoryFile: string, io: Io = processIo()): Promise<ExitCode> {
  const inv = await loadInventoryOrReport(inventoryFile, io);
  if (typeof inv === 'number') return inv;
  const spec = inv.hosts.get(host);
  if (!spec) {
    const names = [...inv.hosts.keys()].join(', ');
    printProblems([{ file: '(command line)', path: 'HOST', message: `no host "${host}" in the inventory (hosts: ${names})`, severity: 'error' }], io);
    return ExitCode.invalidInput;
  }
  const { address, port, knownHosts } = spec.connection;
  const removed = await forgetHostKey(knownHosts, address, port);
  io.stdout.write(
    removed > 0
      ? `forgot ${removed} known_hosts ${removed === 1 ? 'entry' : 'entries'} of ${host} (${address}:${port}) in ${knownHosts}; the next run records its new key\n`
      : `${knownHosts} has no entry for ${host} (${address}:${port}); the next run records its key\n`,
  );
  return ExitCode.ok;
}
