/** The bench's table cells and judged targets, shared by every section of the result. */

export interface Target {
  name: string;
  goal: string;
  /** The measured value, in words (e.g. "41.2x", "0.84 s"). */
  measured: string;
  /** undefined: not measured in this run. */
  met?: boolean;
  /** How far from the goal, in words ("2.1x better than needed", "0.4 s over"). */
  margin: string;
}

/** Pads cells into aligned columns (first column left, the others right). */
export function formatTable(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}
