import type { FileDiff, Reporter, RunEvent } from './types.js';
import { maskFileDiff } from './secret-lines.js';

/**
 * A function replacing every secret in a string by `***`, in one pass: one regular expression of
 * all secrets, longest first (so a secret containing another is masked whole). With a 100-host
 * inventory (100 secrets) the split/join per secret per string cost a third of a second of
 * every no-op run.
 */
export function secretMasker(secrets: Iterable<string>): (text: string) => string {
  const list = [...new Set(secrets)].filter((x) => x.length > 0).sort((a, b) => b.length - a.length);
  if (list.length === 0) return (text) => text;
  if (list.length > REGEX_MAX_SECRETS) return indexedMasker(list);
  const re = new RegExp(list.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  return (text) => (text.length === 0 ? text : text.replace(re, '***'));
}

/**
 * Above this many secrets, one alternation of them all costs more than it saves: V8 tries every
 * alternative starting with the character at hand, at every position. A 1000-host inventory (500
 * clusters, two secrets each) spent 3 s of a no-op run in that expression (issue 17).
 */
export const REGEX_MAX_SECRETS = 64;

/**
 * The same replacement as the alternation (at each position the longest secret that starts there,
 * then on after it), finding candidates by their first one or two characters (pure). `list` is
 * sorted longest first.
 */
export function indexedMasker(list: readonly string[]): (text: string) => string {
  const k = Math.min(2, list[list.length - 1].length);
  const keyAt = (t: string, i: number) => (k === 1 ? t.charCodeAt(i) : t.charCodeAt(i) * 65536 + t.charCodeAt(i + 1));
  const byPrefix = new Map<number, string[]>();
  for (const s of list) {
    const key = keyAt(s, 0);
    const bucket = byPrefix.get(key);
    if (bucket) bucket.push(s);
    else byPrefix.set(key, [s]);
  }
  return (text) => {
    let out = '';
    let last = 0;
    for (let i = 0; i + k <= text.length; ) {
      const candidates = byPrefix.get(keyAt(text, i));
      const hit = candidates?.find((s) => text.startsWith(s, i));
      if (hit === undefined) {
        i++;
        continue;
      }
      out += text.slice(last, i) + '***';
      i += hit.length;
      last = i;
    }
    return last === 0 ? text : out + text.slice(last);
  };
}

/** `value` with every secret inside every string (deeply, keys included) replaced by `***`. */
export function maskDeep<T>(value: T, secrets: ReadonlySet<string>, mask: (text: string) => string = secretMasker(secrets)): T {
  if (secrets.size === 0) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return mask(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[mask(k)] = walk(x);
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
  // Compiled once, again only if secrets are added during the run.
  let mask = secretMasker(secrets);
  let compiledFor = secrets.size;
  const r: MaskedReporter = {
    [MASKED]: true,
    emit(event: RunEvent): void {
      try {
        if (secrets.size !== compiledFor) {
          mask = secretMasker(secrets);
          compiledFor = secrets.size;
        }
        inner.emit(maskDeep(maskEventDiffs(event, secrets), secrets, mask));
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

/**
 * The event with the secret-bearing lines of its file diffs masked on both sides (by line pattern,
 * so also old values the inventory no longer holds), before values are masked: the JSON reporter
 * prints `before`/`after` whole, in `diffs` and in each change's `diff`. Modules mask their own
 * files' lines already (lib/files.ts); this is the pass for any diff that arrives unmarked.
 */
export function maskEventDiffs(event: RunEvent, secrets: ReadonlySet<string>): RunEvent {
  if (event.kind !== 'task-end' || (!event.diffs && !event.changes?.some((c) => c.diff))) return event;
  const m = (d: FileDiff) => maskFileDiff(d, { values: secrets });
  return {
    ...event,
    ...(event.diffs ? { diffs: event.diffs.map(m) } : {}),
    ...(event.changes ? { changes: event.changes.map((c) => (c.diff ? { ...c, diff: m(c.diff) } : c)) } : {}),
  };
}

const MASKED = Symbol('rha.masked');
type MaskedReporter = Reporter & { [MASKED]?: true };
