/**
 * Orders for names, without Intl: `localeCompare` builds an ICU collator on first use, and loading
 * ICU's data was ~20 ms of every run's start (issue 17), spent sorting a handful of host names.
 */

/** Code-unit order (Python's and Ansible's string order). */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Host names as a person reads them: digit runs by value, so node2 comes before node10. */
export function byNaturalName(a: string, b: string): number {
  const re = /(\d+)|\D+/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      // By value, without Number's precision limit: the longer run (leading zeros aside) is larger.
      const vx = x.replace(/^0+(?=\d)/, '');
      const vy = y.replace(/^0+(?=\d)/, '');
      if (vx.length !== vy.length) return vx.length - vy.length;
      if (vx !== vy) return vx < vy ? -1 : 1;
      // Equal values (node01, node1): fewer leading zeros first, as the whole names still differ.
      return x.length - y.length;
    }
    return byCodeUnit(x, y);
  }
  return pa.length - pb.length || byCodeUnit(a, b);
}
