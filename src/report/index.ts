/**
 * Reporters: `pretty` (listr2, a person at a terminal), `plain` (CI logs), `json` (machines).
 * All of them sit behind maskingReporter, so no secret is ever printed.
 */
import type { Reporter } from '../core/types.js';
import { JsonReporter } from './json.js';
import { maskingReporter } from './mask.js';
import { PlainReporter, type ReporterOptions } from './plain.js';
import { PrettyReporter } from './pretty.js';

export { JsonReporter } from './json.js';
export { PlainReporter, recapLines, recapLine, taskLines, formatDuration, type ReporterOptions } from './plain.js';
export { PrettyReporter, type PrettyOptions } from './pretty.js';
export { maskingReporter, maskDeep } from './mask.js';
export { unifiedDiff, maskSecretLine } from './diff.js';

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

/** A masked reporter of the given format writing to `o.out`. */
export function createReporter(
  format: OutputFormat,
  o: ReporterOptions & { err?: NodeJS.WritableStream },
  secrets: ReadonlySet<string>,
): Reporter {
  const inner = format === 'json' ? new JsonReporter(o) : format === 'pretty' ? new PrettyReporter(o) : new PlainReporter(o);
  return maskingReporter(inner, secrets);
}
