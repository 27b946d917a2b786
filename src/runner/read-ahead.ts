/**
 * Read-ahead: the state reads of a run of consecutive file-like tasks (file, copy, template: see
 * Module.reads) made in one command per host, before the first of them.
 *
 * Why: on a re-run where nothing needs to change, each such task is one read and nothing else;
 * one command per task costs a round trip and a few processes on the host each, which at 100
 * hosts is most of the run. Read together, they cost one; reads a module can do in bulk
 * (ReadSpec.bulk: one stat and one sha256sum over all the files) cost a few programs in all.
 *
 * Safe because a read-ahead output is used only while nothing can have changed on the host since
 * it was read: the runner forgets a host's reads after any task on it that changed something,
 * failed, or is not a reader itself (a command, a service, a handler, or an HA module that acts on
 * a peer), and at the end of every play batch. An output is handed only to the exact same read
 * (script, arguments, become); a task whose arguments come out differently reads for itself.
 */
import { randomBytes } from 'node:crypto';
import { quote, shellCommand } from '../core/command.js';
import type { Connection, ReadAhead, ReadSpec } from '../core/types.js';

/** Reads ahead for one host. */
export class HostReadAhead implements ReadAhead {
  private readonly outputs = new Map<string, string>();

  private static key(script: string, args: readonly string[], become: boolean): string {
    return `${become ? 1 : 0}\0${script}\0${args.join('\0')}`;
  }

  take(script: string, args: readonly string[], become: boolean): string | undefined {
    return this.outputs.get(HostReadAhead.key(script, args, become));
  }

  get size(): number {
    return this.outputs.size;
  }

  clear(): void {
    this.outputs.clear();
  }

  /**
   * Runs the reads in one command and keeps the output of each that exited 0. Never throws for a
   * failed read: that task then reads for itself and reports its own error.
   */
  async fill(conn: Connection, become: boolean, reads: readonly ReadSpec[]): Promise<void> {
    const unique = [...new Map(reads.map((r) => [HostReadAhead.key(r.script, r.args, become), r])).values()];
    if (unique.length < 2) return; // one read gains nothing over the task's own
    const jobs = planJobs(unique);
    const nonce = randomBytes(8).toString('hex');
    const r = await conn.exec(shellCommand(batchScript(jobs, nonce), { become, timeoutMs: 60_000 }));
    if (!r.ok) return;
    const outs = parseBatch(r.stdout, nonce, jobs.length);
    jobs.forEach((job, i) => {
      const out = outs[i];
      if (out === undefined) return;
      const per = job.split ? job.split(out) : [out];
      job.reads.forEach((read, k) => {
        if (per[k] !== undefined) this.outputs.set(HostReadAhead.key(read.script, read.args, become), per[k]!);
      });
    });
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
