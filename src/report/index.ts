/**
 * Reporters: `pretty` (listr2, a person at a terminal), `plain` (CI logs), `json` (machines).
 * All of them sit behind maskingReporter, so no secret is ever printed.
 */
import type { Reporter } from '../core/types.js';
import { JsonReporter } from './json.js';
import { maskingReporter } from '../core/mask.js';
import { PlainReporter, type ReporterOptions } from './plain.js';
import { PrettyReporter } from './pretty.js';
import type { OutputFormat } from './open.js';

export { JsonReporter } from './json.js';
export { PlainReporter, recapLines, recapLine, taskLines, formatDuration, type ReporterOptions } from './plain.js';
export { PrettyReporter, type PrettyOptions } from './pretty.js';
export { maskingReporter, maskDeep } from '../core/mask.js';
export { unifiedDiff, maskSecretLine } from './diff.js';
export { outputFormats, defaultOutput, openReporter, type OutputFormat } from './open.js';

/** A masked reporter of the given format writing to `o.out` (synchronous: loads listr2 with this module; the CLI uses openReporter). */
export function createReporter(
  format: OutputFormat,
  o: ReporterOptions & { err?: NodeJS.WritableStream },
  secrets: ReadonlySet<string>,
): Reporter {
  const inner = format === 'json' ? new JsonReporter(o) : format === 'pretty' ? new PrettyReporter(o) : new PlainReporter(o);
  return maskingReporter(inner, secrets);
}
