/**
 * The pretty reporter (default on a TTY): a live listr2 view, one entry per play (per batch).
 * It stays readable with 100 hosts: finished hosts collapse into the counts of the entry's title,
 * only hosts running a task right now and hosts that failed are listed under it. Failure output,
 * diffs (--diff) and changes (-v) are printed below each play once it is done, then the recap.
 */
import { DefaultRenderer, Listr, ListrLogger, ProcessOutput, type ListrTaskWrapper } from 'listr2';
import type { Reporter, RunEvent } from '../core/types.js';
import { formatDuration, recapLines, runStartLine, safeWriter, taskLines, type ReporterOptions } from './plain.js';

export interface PrettyOptions extends ReporterOptions {
  /** Render even when `out` is not a terminal (tests, and the keeper drawing for a client's terminal). */
  forceRender?: boolean;
  /**
   * The error stream, held back while the live view draws so that messages (Ctrl-C notice) do
   * not tear it; they appear once the play's view is done. Default: `out`.
   */
  err?: NodeJS.WritableStream;
  /** How many running / failed hosts to list before "… and N more" (default 12 each). */
  maxListed?: number;
}

interface HostView {
  running?: string;
  failed?: string;
  changed: number;
  results: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Wrapper = ListrTaskWrapper<any, any, any>;

class PlayView {
  readonly hosts = new Map<string, HostView>();
  readonly details: string[] = [];
  task?: Wrapper;
  ended = false;
  readonly done: Promise<void>;
  private finish!: (e?: Error) => void;

  constructor(
    readonly name: string,
    hosts: string[],
    readonly batch?: { index: number; count: number },
  ) {
    for (const h of hosts) this.hosts.set(h, { changed: 0, results: 0 });
    this.done = new Promise((resolve, reject) => (this.finish = (e) => (e ? reject(e) : resolve())));
    // listr may pick this promise up only later (plays render one after another): never unhandled.
    this.done.catch(() => {});
  }

  host(name: string): HostView {
    let h = this.hosts.get(name);
    if (!h) this.hosts.set(name, (h = { changed: 0, results: 0 }));
    return h;
  }

  /** One line: `name (batch 1/3) — 100 hosts: 37 running, 12 changed, 3 failed`. */
  title(): string {
    const all = [...this.hosts.values()];
    const running = all.filter((h) => h.running && !h.failed).length;
    const failed = all.filter((h) => h.failed).length;
    const changed = all.filter((h) => h.changed > 0 && !h.failed).length;
    const batch = this.batch ? ` (batch ${this.batch.index}/${this.batch.count})` : '';
    const parts = [
      !this.ended && running ? `${running} running` : '',
      changed ? `${changed} changed` : '',
      failed ? `${failed} failed` : '',
      this.ended ? `${all.length - failed} ok` : '',
    ].filter(Boolean);
    return `${this.name}${batch} — ${all.length} host${all.length === 1 ? '' : 's'}${parts.length ? ': ' + parts.join(', ') : ''}`;
  }

  /** Running hosts with their task, then failed hosts with why; each list bounded. */
  output(max: number): string {
    const lines: string[] = [];
    const entries = [...this.hosts.entries()];
    const running = this.ended ? [] : entries.filter(([, h]) => h.running && !h.failed);
    const failed = entries.filter(([, h]) => h.failed);
    for (const [n, h] of running.slice(0, max)) lines.push(`${n} ▸ ${h.running}`);
    if (running.length > max) lines.push(`… and ${running.length - max} more running`);
    for (const [n, h] of failed.slice(0, max)) lines.push(`✖ ${n} — ${h.failed}`);
    if (failed.length > max) lines.push(`… and ${failed.length - max} more failed`);
    return lines.join('\n');
  }

  end(): void {
    this.ended = true;
    const failed = [...this.hosts.values()].filter((h) => h.failed).length;
    this.finish(failed ? new Error(this.title()) : undefined);
  }
}

/** listr2's default renderer, allowed to draw on a non-terminal stream (for tests). */
class AnyStreamRenderer extends DefaultRenderer {
  static override nonTTY = true;
}

export class PrettyReporter implements Reporter {
  private readonly write: (lines: string[]) => void;
  private chain: Promise<void> = Promise.resolve();
  private current?: PlayView;
  private readonly globalWarnings: string[] = [];
  private refreshTimer?: NodeJS.Timeout;
  private readonly max: number;

  constructor(private readonly o: PrettyOptions) {
    this.write = safeWriter(o.out);
    this.max = o.maxListed ?? 12;
  }

  emit(e: RunEvent): void {
    try {
      this.handle(e);
    } catch {
      // Never throw out of a reporter.
    }
  }

  private handle(e: RunEvent): void {
    switch (e.kind) {
      case 'run-start':
        this.write([runStartLine(e)]);
        return;
      case 'play-start': {
        const view = new PlayView(e.play, e.hosts, e.batch);
        this.current = view;
        this.chain = this.chain.then(() => this.runPlay(view));
        return;
      }
      case 'task-start': {
        const h = this.current?.host(e.host);
        if (h) h.running = e.handler ? `${e.task} (handler)` : e.task;
        this.scheduleRefresh();
        return;
      }
      case 'task-end': {
        const view = this.current;
        if (!view) return;
        const h = view.host(e.host);
        h.running = undefined;
        h.results++;
        if (e.status === 'changed') h.changed++;
        const fatal = (e.status === 'failed' && !e.ignored) || e.status === 'unreachable';
        if (fatal) h.failed = `${e.task}: ${e.msg.split('\n')[0]}`;
        const interesting =
          e.status === 'failed' || e.status === 'unreachable' || (e.warnings?.length ?? 0) > 0 ||
          (this.o.diff && (e.diffs?.length ?? 0) > 0) || (this.o.verbosity >= 1 && e.status === 'changed') || this.o.verbosity >= 2;
        if (interesting) view.details.push(...taskLines(e, this.o));
        this.scheduleRefresh();
        return;
      }
      case 'warning':
        if (!e.host) this.globalWarnings.push(e.msg);
        else this.current?.details.push(`[WARNING] [${e.host}] ${e.msg}`);
        return;
      case 'play-end': {
        const view = this.current;
        if (!view) return;
        view.ended = true;
        this.refresh(view);
        view.end();
        this.current = undefined;
        return;
      }
      case 'recap':
        this.chain = this.chain.then(() => this.write(recapLines(e, this.globalWarnings)));
        return;
    }
  }

  private async runPlay(view: PlayView): Promise<void> {
    const started = Date.now();
    const listr = new Listr(
      [
        {
          title: view.title(),
          task: (_ctx, task) => {
            view.task = task;
            this.refresh(view);
            return view.done;
          },
          // One output entry, replaced on every refresh (not a growing log).
          rendererOptions: { outputBar: 1, persistentOutput: true },
        },
      ],
      {
        renderer: this.o.forceRender ? AnyStreamRenderer : 'default',
        fallbackRenderer: 'simple',
        rendererOptions: {
          logger: new ListrLogger({ useIcons: true, processOutput: this.processOutput() }),
          collapseErrors: false,
          showErrorMessage: false,
        },
        fallbackRendererOptions: {
          logger: new ListrLogger({ useIcons: true, processOutput: this.processOutput() }),
        },
        exitOnError: false,
        registerSignalListeners: false,
        collectErrors: false,
      },
    );
    try {
      await listr.run();
    } catch {
      // A failed host is reported by the entry itself and by the details below.
    }
    if (view.details.length) this.write(view.details);
    if (this.o.verbosity >= 2) this.write([`(${view.name}: ${formatDuration(Date.now() - started)})`]);
  }

  private processOutput(): ProcessOutput {
    return new ProcessOutput(this.o.out as NodeJS.WriteStream, (this.o.err ?? this.o.out) as NodeJS.WriteStream);
  }

  private scheduleRefresh(): void {
    // Hundreds of events per second with many hosts: redraw at most every 100 ms.
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      if (this.current) this.refresh(this.current);
    }, 100);
    this.refreshTimer.unref?.();
  }

  private refresh(view: PlayView): void {
    if (!view.task) return;
    view.task.title = view.title();
    view.task.output = view.output(this.max);
  }

  async close(): Promise<void> {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    // A run cut short (internal error) may leave a play open: end it so its listr finishes.
    if (this.current) this.current.end();
    await this.chain;
  }
}
