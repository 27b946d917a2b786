/**
 * A timing trace for profiling (issue 17): with RHA_TRACE=FILE set, every remote command appends
 * one line to FILE: milliseconds since this process started, the host, the command's duration,
 * how it ran (shell or exec channel) and its first 100 characters of display text (secrets are
 * never in a display text: they travel on stdin); RHA_TRACE_WIDTH sets the width, `full` writes
 * the whole text as JSON. Off, and free, unless set.
 */
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const file = process.env.RHA_TRACE;

/** Whether tracing is on. */
export const tracing = file !== undefined && file !== '';

/** Appends a line to the trace (no-op unless RHA_TRACE is set). */
export function trace(host: string, what: string, startedMs: number, via: string): void {
  if (!tracing) return;
  const now = performance.now();
  // RHA_TRACE_WIDTH=full: the whole text as a JSON string (to run a script again by hand).
  const width = process.env.RHA_TRACE_WIDTH;
  const text = width === 'full' ? JSON.stringify(what) : what.replace(/\s+/g, ' ').slice(0, Number(width ?? 100));
  const line = `${(now - (Date.now() - startedMs)).toFixed(0).padStart(6)} +${String(Date.now() - startedMs).padStart(4)}ms ${host} ${via} ${text}\n`;
  try {
    appendFileSync(file!, line);
  } catch {
    /* a trace never fails a run */
  }
}
