/**
 * The plain reporter: one line per task result, for CI logs and pipes. Also the formatting that
 * the pretty reporter reuses (task lines, diffs, recap).
 */
import path from 'node:path';
import { byNaturalName } from '../core/order.js';
import type { HostRecap, Reporter, RunEvent } from '../core/types.js';
import { maskSecretLine, unifiedDiff } from './diff.js';

export interface ReporterOptions {
  /** Where to write (stdout in the CLI). */
  out: NodeJS.WritableStream;
  /** 0 default, 1 = -v (changes per task, task starts), 2 = -vv (full output of every task). */
  verbosity: number;
  /** Show file diffs (`--diff`). */
  diff: boolean;
}

type TaskEnd = Extract<RunEvent, { kind: 'task-end' }>;

/** `PLAY [name] (batch 1/3) ****` */
export function playHeader(e: Extract<RunEvent, { kind: 'play-start' }>): string {
  const batch = e.batch ? ` (batch ${e.batch.index}/${e.batch.count}: ${e.hosts.join(', ')})` : '';
  const head = `PLAY [${e.play}]${batch} `;
  return head + '*'.repeat(Math.max(3, 79 - head.length));
}

/** The status word of a result: `ok`, `changed`, `failed (ignored)`, ... */
export function statusWord(e: TaskEnd): string {
  const word = e.label ?? e.status;
  return e.ignored ? `${word} (ignored)` : word;
}

/** Lines for one task result: `[host] status: task — first line`, then details by verbosity. */
export function taskLines(e: TaskEnd, o: Pick<ReporterOptions, 'verbosity' | 'diff'>): string[] {
  const [first, ...rest] = e.msg.split('\n');
  const name = e.handler ? `${e.task} (handler)` : e.task;
  const lines = [`[${e.host}] ${statusWord(e)}: ${name}${first ? ` — ${first}` : ''}`];
  // Failures always come with their output; other results only at -vv.
  if (rest.length > 0 && (e.status === 'failed' || e.status === 'unreachable' || o.verbosity >= 2)) {
    for (const l of rest) lines.push(`    ${l}`);
  }
  if (o.verbosity >= 1 && e.changes?.length && (e.status === 'changed' || o.verbosity >= 2)) {
    for (const c of e.changes) lines.push(`    - ${c.description}`);
  }
  for (const w of e.warnings ?? []) lines.push(`    warning: ${w}`);
  if (o.diff) for (const d of e.diffs ?? []) lines.push(...diffLines(unifiedDiff(d)));
  if (o.verbosity >= 2) lines.push(`    (${formatDuration(e.durationMs)})`);
  return lines;
}

/** A unified diff, indented, with password-like lines masked. */
export function diffLines(diff: string): string[] {
  if (!diff) return [];
  return diff.split('\n').map((l) => `    ${maskSecretLine(l)}`);
}

/** `node1 : ok=12 changed=3 unreachable=0 failed=0 skipped=1 ignored=0`, names padded to `width`. */
export function recapLine(host: string, r: HostRecap, width = host.length): string {
  return (
    `${host.padEnd(width)} : ok=${r.ok} changed=${r.changed} unreachable=${r.unreachable} ` +
    `failed=${r.failed} skipped=${r.skipped} ignored=${r.ignored}`
  );
}

/** The PLAY RECAP block with host warnings and the interrupted note. */
export function recapLines(e: Extract<RunEvent, { kind: 'recap' }>, globalWarnings: string[] = []): string[] {
  const names = Object.keys(e.hosts).sort(byNaturalName);
  const width = Math.max(0, ...names.map((n) => n.length));
  const lines = ['', 'PLAY RECAP ' + '*'.repeat(68)];
  for (const n of names) lines.push(recapLine(n, e.hosts[n], width));
  if (names.length === 0) lines.push('(no host ran a task)');
  const hostWarnings = Object.entries(e.warnings).flatMap(([h, ws]) => ws.map((w) => `[${h}] ${w}`));
  const all = [...globalWarnings, ...hostWarnings];
  if (all.length > 0) {
    lines.push('', 'WARNINGS');
    for (const w of all) lines.push(`  ${w}`);
  }
  if (e.interrupted) lines.push('', 'interrupted: stopped before the run finished (Ctrl-C)');
  lines.push('', `finished in ${formatDuration(e.durationMs)}`);
  return lines;
}

/** A file name as the user would type it: relative to the working directory when inside it. */
export function displayPath(file: string, cwd: string = process.cwd()): string {
  const rel = path.relative(cwd, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** The first line of a run: what runs where, and whether anything will change. */
export function runStartLine(e: Extract<RunEvent, { kind: 'run-start' }>): string {
  const hosts = `${e.hosts.length} host${e.hosts.length === 1 ? '' : 's'}`;
  return `rha: ${displayPath(e.playbook)} on ${hosts} of ${displayPath(e.inventory)}${e.check ? ' (check mode: nothing will be changed)' : ''}`;
}

/** `850ms`, `12.3s`, `4m05s` */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** Writes to a stream, never throwing (a closed pipe must not stop provisioning). */
export function safeWriter(out: NodeJS.WritableStream): (lines: string[]) => void {
  let broken = false;
  if (typeof (out as NodeJS.EventEmitter).on === 'function') (out as NodeJS.EventEmitter).on('error', () => (broken = true));
  return (lines) => {
    if (broken || lines.length === 0) return;
    try {
      out.write(lines.join('\n') + '\n');
    } catch {
      broken = true;
    }
  };
}

/** The plain reporter. */
export class PlainReporter implements Reporter {
  private readonly write: (lines: string[]) => void;
  private readonly globalWarnings: string[] = [];

  constructor(private readonly o: ReporterOptions) {
    this.write = safeWriter(o.out);
  }

  emit(e: RunEvent): void {
    try {
      this.write(this.render(e));
    } catch {
      // Never throw out of a reporter.
    }
  }

  private render(e: RunEvent): string[] {
    switch (e.kind) {
      case 'run-start':
        return [runStartLine(e)];
      case 'play-start':
        return ['', playHeader(e)];
      case 'task-start':
        return this.o.verbosity >= 1 ? [`[${e.host}] start: ${e.handler ? `${e.task} (handler)` : e.task}`] : [];
      case 'task-end':
        return taskLines(e, this.o);
      case 'warning':
        if (!e.host) this.globalWarnings.push(e.msg);
        return [`[WARNING]${e.host ? ` [${e.host}]` : ''} ${e.msg}`];
      case 'play-end':
        return [];
      case 'recap':
        return recapLines(e, this.globalWarnings);
    }
  }

  async close(): Promise<void> {}
}
