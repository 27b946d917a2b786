/** Small statistics for the benchmark: medians, maxima, ratios, and the recap counts of a run's output. */

/** The median of the samples (mean of the middle two for an even count); undefined when empty. */
export function median(samples: readonly number[]): number | undefined {
  if (samples.length === 0) return undefined;
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The largest sample; undefined when empty. */
export function maximum(samples: readonly number[]): number | undefined {
  return samples.length ? Math.max(...samples) : undefined;
}

/** How many times faster `fast` is than `slow` (slow / fast), or undefined when either is missing or not positive. */
export function speedup(slow: number | undefined, fast: number | undefined): number | undefined {
  if (slow === undefined || fast === undefined || !(slow > 0) || !(fast > 0)) return undefined;
  return slow / fast;
}

/**
 * Per-host recap counts from a run's plain output, rha's and Ansible's alike
 * (`node1 : ok=12 changed=3 unreachable=0 failed=0 ...`); ANSI colours are ignored.
 */
export function parseRecap(out: string): Record<string, Record<string, number>> {
  // eslint-disable-next-line no-control-regex
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const recap: Record<string, Record<string, number>> = {};
  for (const m of plain.matchAll(/^(\S+)\s+:\s+(ok=.*)$/gm)) {
    recap[m[1]] = Object.fromEntries([...m[2].matchAll(/(\w+)=(\d+)/g)].map((x) => [x[1], Number(x[2])]));
  }
  return recap;
}

/** Totals over hosts of a recap: { hosts, ok, changed, failed, unreachable }. */
export function recapTotals(recap: Record<string, Record<string, number>>): {
  hosts: number;
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
} {
  const t = { hosts: 0, ok: 0, changed: 0, failed: 0, unreachable: 0 };
  for (const r of Object.values(recap)) {
    t.hosts++;
    t.ok += r.ok ?? 0;
    t.changed += r.changed ?? 0;
    t.failed += r.failed ?? 0;
    t.unreachable += r.unreachable ?? 0;
  }
  return t;
}
