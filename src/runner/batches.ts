/**
 * `serial` batches: rolling runs over a play's hosts, Ansible-style. Each entry is a host count
 * or a percentage of the play's hosts; entries are used in turn and the last one repeats, so
 * `[1, "50%"]` runs one canary host first, then half of the hosts at a time.
 */

/** Size of one batch entry for a play of `total` hosts: at least 1, at most `total`. */
export function batchSize(entry: number | string, total: number): number {
  let n: number;
  if (typeof entry === 'number') n = entry;
  else {
    const s = entry.trim();
    const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(s);
    // Ansible rounds percentages down but never below one host per batch.
    n = pct ? Math.floor((Number(pct[1]) * total) / 100) : Number(s);
  }
  if (!Number.isFinite(n) || n < 1) n = 1;
  return Math.min(Math.floor(n), Math.max(total, 1));
}

/** The play's hosts split into batches per `serial`; one batch of all hosts when `serial` is empty. */
export function planBatches(hosts: readonly string[], serial: ReadonlyArray<number | string>): string[][] {
  if (hosts.length === 0) return [];
  if (serial.length === 0) return [[...hosts]];
  const batches: string[][] = [];
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const size = batchSize(serial[Math.min(k, serial.length - 1)], hosts.length);
    batches.push(hosts.slice(i, i + size));
    i += size;
    k++;
  }
  return batches;
}
