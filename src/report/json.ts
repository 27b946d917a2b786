/**
 * The JSON reporter: JSON Lines, one RunEvent per line as emitted, then a final summary object
 * `{ "kind": "summary", "exitCode", "interrupted", "durationMs", "failed": [...], "unreachable": [...] }`.
 */
import type { Reporter, RunEvent } from '../core/types.js';
import { exitCodeFor } from '../runner/recap.js';
import { safeWriter, type ReporterOptions } from './plain.js';

export class JsonReporter implements Reporter {
  private readonly write: (lines: string[]) => void;

  constructor(o: Pick<ReporterOptions, 'out'>) {
    this.write = safeWriter(o.out);
  }

  emit(e: RunEvent): void {
    try {
      const lines = [JSON.stringify(e)];
      if (e.kind === 'recap') {
        const hosts = Object.entries(e.hosts);
        lines.push(
          JSON.stringify({
            kind: 'summary',
            exitCode: exitCodeFor(e.hosts, e.interrupted),
            interrupted: e.interrupted,
            durationMs: e.durationMs,
            failed: hosts.filter(([, r]) => r.failed > 0).map(([h]) => h),
            unreachable: hosts.filter(([, r]) => r.unreachable > 0).map(([h]) => h),
          }),
        );
      }
      this.write(lines);
    } catch {
      // Never throw out of a reporter.
    }
  }

  async close(): Promise<void> {}
}
