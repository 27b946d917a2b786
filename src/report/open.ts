/**
 * Choosing and opening a reporter without loading listr2 up front: the CLI's `run` and `provision`
 * open reporters here, so a plain or JSON run (CI, pipes, the benchmark) never parses listr2 and
 * its terminal helpers (issue 7, start-up time). `report/index.ts` re-exports all of it.
 */
import type { Reporter } from '../core/types.js';
import { JsonReporter } from './json.js';
import { maskingReporter } from '../core/mask.js';
import { PlainReporter, type ReporterOptions } from './plain.js';

export type OutputFormat = 'pretty' | 'plain' | 'json';
export const outputFormats: readonly OutputFormat[] = ['pretty', 'plain', 'json'];

/** `pretty` on an interactive terminal outside CI, else `plain`. */
export function defaultOutput(out: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv = process.env): OutputFormat {
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0';
  // A pseudo-terminal without a size (`script`, some CI runners) reports 0 columns: listr2 would
  // then wrap every character onto its own line.
  const sized = out.columns === undefined || out.columns > 0;
  return out.isTTY === true && sized && !ci && env.TERM !== 'dumb' ? 'pretty' : 'plain';
}

/** A masked reporter of the given format writing to `o.out`; loads listr2 only for `pretty`. */
export async function openReporter(
  format: OutputFormat,
  o: ReporterOptions & { err?: NodeJS.WritableStream; forceRender?: boolean },
  secrets: ReadonlySet<string>,
): Promise<Reporter> {
  if (format === 'pretty') {
    const { PrettyReporter } = await import('./pretty.js');
    return maskingReporter(new PrettyReporter(o), secrets);
  }
  return maskingReporter(format === 'json' ? new JsonReporter(o) : new PlainReporter(o), secrets);
}
