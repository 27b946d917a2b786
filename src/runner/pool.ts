/**
 * A small promise pool: `--forks` bounds how many hosts run at once.
 */

/** Runs `fn` over `items` with at most `limit` in flight; resolves when all have settled. */
export async function runPool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  const width = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      // fn is expected not to throw (the runner turns every failure into a result); if it does,
      // the other workers still finish their hosts before the error surfaces.
      await fn(items[i], i);
    }
  };
  const results = await Promise.allSettled(Array.from({ length: width }, worker));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
