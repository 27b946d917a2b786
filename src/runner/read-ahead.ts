/**
 * Read-ahead: the state reads of the reader tasks of a play (file, copy, template, package, ...:
 * see Module.reads) made in one command per host, up to the next task that could change state
 * without saying so, and on into the next plays when they run on exactly the same hosts.
 *
 * Why: on a re-run where nothing needs to change, each such task is one read and nothing else;
 * one command per task costs a round trip and a few processes on the host each, which at 100
 * hosts is most of the run. Read together, they cost one; reads a module can do in bulk
 * (ReadSpec.bulk: one stat and one sha256sum over all the files) cost a few programs in all. The
 * batch runs beside the first task's own commands (take() waits for it); a read with stdin, a
 * slow one (`alone`) or one with another become is its own command beside it.
 *
 * Safe because a read-ahead output is used only while nothing can have changed on the host since
 * it was read. The runner forgets a host's reads
 * - after any task on it that changed something or failed;
 * - after a task that could change state while ending ok: a module that declares neither `reads`
 *   nor `keepsReads` (none of rha's), and any task with `changed_when` or `failed_when`, which
 *   make its status the playbook's word rather than the module's;
 * - on every host of the batch, after a step in which a module that acts on peers (`actsOnPeers`,
 *   e.g. ha_switchover) changed something or failed anywhere, and before any handler runs
 *   (handlers never use them);
 * - at the end of every play batch, unless the next play runs on exactly the same hosts.
 * A read that was in flight when its reads were forgotten is not handed out. An output is handed
 * only to the exact same read (script, arguments, become, stdin); a task whose arguments come out
 * differently reads for itself.
 */
import { randomBytes } from 'node:crypto';
import { quote, shellCommand } from '../core/command.js';
import type { Connection, ReadAhead, ReadSpec } from '../core/types.js';

/** Reads ahead for one host. */
export class HostReadAhead implements ReadAhead {
  /** Per read started since the last clear(): its output (undefined: not kept). */
  private readonly reads = new Map<string, Promise<string | undefined>>();
  /** Bumped by clear(): a read that started before a clear is not handed out. */
  private generation = 0;

  private static key(r: Pick<ReadSpec, 'script' | 'args' | 'stdin'>, become: boolean): string {
    return `${become ? 1 : 0}\0${r.script}\0${r.args.join('\0')}\0${r.stdin === undefined ? '-' : `+${r.stdin}`}`;
  }

  async take(script: string, args: readonly string[], become: boolean, stdin?: string): Promise<string | undefined> {
    const generation = this.generation;
    const out = await this.reads.get(HostReadAhead.key({ script, args: [...args], stdin }, become));
    return this.generation === generation ? out : undefined;
  }

  /** How many reads are kept or on their way (the runner starts no other batch meanwhile). */
  get size(): number {
    return this.reads.size;
  }

  clear(): void {
    this.generation++;
    this.reads.clear();
  }

  /**
   * Starts the reads: those without stdin in one command (two or more; one gains nothing over the
   * task's own), each with stdin, `alone` or another become as its own command beside it. take() waits for the
   * command that holds its read. Never fails: a read not kept is made by its task.
   */
  start(conn: Connection, become: boolean, reads: readonly ReadSpec[]): void {
    const as = (r: ReadSpec) => r.become ?? become;
    const unique = [...new Map(reads.map((r) => [HostReadAhead.key(r, as(r)), r])).values()];
    const own = unique.filter((r) => r.stdin !== undefined || r.alone || as(r) !== become);
    const batched = unique.filter((r) => !own.includes(r));
    const track = (group: readonly ReadSpec[], outputs: Promise<Map<string, string>>) => {
      const settled = outputs.catch(() => new Map<string, string>());
      for (const r of group) {
        const key = HostReadAhead.key(r, as(r));
        this.reads.set(key, settled.then((m) => m.get(key)));
      }
    };
    if (batched.length >= 2) track(batched, this.run(conn, become, batched));
    for (const r of own) track([r], this.runOwn(conn, as(r), r));
  }

  /** start(), then waits for every read. */
  async fill(conn: Connection, become: boolean, reads: readonly ReadSpec[]): Promise<void> {
    this.start(conn, become, reads);
    await Promise.all(this.reads.values());
  }

  /** A read as runScript would run it, as its own command. */
  private async runOwn(conn: Connection, become: boolean, read: ReadSpec): Promise<Map<string, string>> {
    const cmd = shellCommand(read.script, { become, ...(read.stdin !== undefined ? { stdin: read.stdin } : {}), timeoutMs: 60_000 });
    const r = await conn.exec({ ...cmd, argv: [...cmd.argv, 'sh', ...read.args] });
    return new Map(r.ok ? [[HostReadAhead.key(read, become), r.stdout]] : []);
  }

  private async run(conn: Connection, become: boolean, unique: readonly ReadSpec[]): Promise<Map<string, string>> {
    const kept = new Map<string, string>();
    const jobs = planJobs(unique);
    const nonce = randomBytes(8).toString('hex');
    const r = await conn.exec(shellCommand(batchScript(jobs, nonce), { become, timeoutMs: 60_000 }));
    if (!r.ok) return kept;
    const outs = parseBatch(r.stdout, nonce, jobs.length);
    jobs.forEach((job, i) => {
      const out = outs[i];
      if (out === undefined) return;
      const per = job.split ? job.split(out) : [out];
      job.reads.forEach((read, k) => {
        if (per[k] !== undefined) kept.set(HostReadAhead.key(read, become), per[k]!);
      });
    });
    return kept;
  }
}

/** One script of the batch: a single read, or one bulk read standing for several. */
interface Job extends ReadSpec {
  reads: ReadSpec[];
  /** Per read of `reads`, its output (bulk jobs only). */
  split?: (stdout: string) => Array<string | undefined>;
}

/** Groups reads that share a bulk reader into one job each (two paths or more); the rest stay single (pure). */
export function planJobs(reads: readonly ReadSpec[]): Job[] {
  const groups = new Map<unknown, ReadSpec[]>();
  for (const r of reads) if (r.bulk) groups.set(r.bulk.reader, [...(groups.get(r.bulk.reader) ?? []), r]);
  const jobs: Job[] = [];
  const grouped = new Set<ReadSpec>();
  for (const [, group] of groups) {
    if (group.length < 2) continue;
    const reader = group[0].bulk!.reader;
    const paths = group.map((r) => r.bulk!.path);
    jobs.push({ script: reader.script, args: paths, reads: group, split: (out) => reader.split(out, paths) });
    group.forEach((r) => grouped.add(r));
  }
  for (const r of reads) if (!grouped.has(r)) jobs.push({ script: r.script, args: r.args, reads: [r] });
  return jobs;
}

/**
 * One script running each read in its own subshell (a fork, not an exec), with its positional
 * arguments and /dev/null as stdin, each followed by `@@rha-ra:NONCE:INDEX:STATUS@@` (pure).
 */
export function batchScript(reads: readonly Pick<ReadSpec, 'script' | 'args'>[], nonce: string): string {
  return reads
    .map(
      (r, i) =>
        `(\nset -- ${r.args.map(quote).join(' ')}\n${r.script}\n) </dev/null 2>/dev/null; printf '@@rha-ra:${nonce}:${i}:%s@@' "$?"`,
    )
    .join('\n');
}

/** Each read's stdout, or undefined for a read that did not exit 0 or is missing (pure). */
export function parseBatch(stdout: string, nonce: string, count: number): Array<string | undefined> {
  const outs: Array<string | undefined> = new Array(count).fill(undefined);
  const marker = new RegExp(`@@rha-ra:${nonce}:(\\d+):(\\d+)@@`, 'g');
  let from = 0;
  let expected = 0;
  for (const m of stdout.matchAll(marker)) {
    const index = Number(m[1]);
    // Markers come in order; anything else means the output is not what the batch printed.
    if (index !== expected) return new Array(count).fill(undefined);
    if (m[2] === '0') outs[index] = stdout.slice(from, m.index);
    from = m.index! + m[0].length;
    expected++;
  }
  return outs;
}
