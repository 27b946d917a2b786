/**
 * The source tree is layered (docs/design.md, "Layers"): a folder imports only from folders of its
 * own layer or below, no two folders import each other (directly or round a loop), and no file
 * cycle exists. A new import that breaks this fails here, naming the file and the import.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** Low to high: a folder may import from its own layer and the layers before it. */
export const LAYERS: string[][] = [
  ['core'],
  ['connection', 'facts', 'template', 'lab', 'lock'],
  ['inventory', 'playbook'],
  ['modules'],
  ['runner'],
  ['report'],
  ['pair'],
  ['cli'],
  ['bench'],
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative import of every file under src/ (static, `export from`, dynamic, type-only). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles
      .map((i) => i.fileName)
      .filter((f) => f.startsWith('.'))
      .map((f) => path.resolve(path.dirname(file), f).replace(/\.js$/, '.ts'));
    graph.set(path.relative(SRC, file), targets.map((t) => path.relative(SRC, t)));
  }
  return graph;
}

const folderOf = (file: string): string => file.split(path.sep)[0];
const layerOf = (folder: string): number => LAYERS.findIndex((l) => l.includes(folder));

/** Strongly connected components with more than one member (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('the layered source tree', () => {
  const graph = importGraph();

  test('every folder under src/ has a layer', () => {
    const folders = [...new Set([...graph.keys()].filter((f) => f.includes(path.sep)).map(folderOf))];
    expect(folders.filter((f) => layerOf(f) < 0)).toEqual([]);
  });

  test('no folder imports from a layer above its own', () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      for (const t of targets) {
        const from = folderOf(file);
        const to = folderOf(t);
        if (from !== to && layerOf(to) > layerOf(from)) upward.push(`${file} imports ${t} (${from} is below ${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  test('no cycle between folders', () => {
    const folders = new Map<string, string[]>();
    for (const [file, targets] of graph) {
      const from = folderOf(file);
      const out = folders.get(from) ?? [];
      for (const t of targets) if (folderOf(t) !== from) out.push(folderOf(t));
      folders.set(from, out);
    }
    expect(cycles(folders)).toEqual([]);
  });

  test('no cycle between files', () => {
    expect(cycles(graph)).toEqual([]);
  });

  test('the check sees a cycle and an upward import when there is one', () => {
    const bad = new Map([
      ['runner/a.ts', ['runner/b.ts', 'report/x.ts']],
      ['runner/b.ts', ['runner/a.ts']],
      ['report/x.ts', []],
    ]);
    expect(cycles(bad)).toEqual([['runner/a.ts', 'runner/b.ts']]);
    expect(layerOf('report')).toBeGreaterThan(layerOf('runner'));
  });
});
