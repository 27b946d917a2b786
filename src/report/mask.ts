import { maskSecrets } from '../core/command.js';
import type { Reporter, RunEvent } from '../core/types.js';

/** `value` with every secret inside every string (deeply, keys included) replaced by `***`. */
export function maskDeep<T>(value: T, secrets: ReadonlySet<string>): T {
  if (secrets.size === 0) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return maskSecrets(v, secrets);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[maskSecrets(k, secrets)] = walk(x);
      return out;
    }
    return v;
  };
  return walk(value) as T;
}

/**
 * A reporter that masks every secret in every event before passing it on, and swallows anything
 * the inner reporter throws: the one place that guarantees reporters never print a secret and
 * never break a run.
 */
export function maskingReporter(inner: Reporter, secrets: ReadonlySet<string>): Reporter {
  if ((inner as MaskedReporter)[MASKED]) return inner;
  const r: MaskedReporter = {
    [MASKED]: true,
    emit(event: RunEvent): void {
      try {
        inner.emit(maskDeep(event, secrets));
      } catch {
        // A reporter bug must not stop provisioning half-way; the recap still comes from the runner.
      }
    },
    async close(): Promise<void> {
      try {
        await inner.close();
      } catch {
        // Same as emit: releasing the terminal is best effort.
      }
    },
  };
  return r;
}

const MASKED = Symbol('rha.masked');
type MaskedReporter = Reporter & { [MASKED]?: true };
