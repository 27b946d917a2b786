#!/usr/bin/env node
/**
 * Bundles the CLI for start-up speed (issue 7): runs after tsc (`npm run build`) and writes
 * dist/cli/main.js over tsc's copy, with every sub-command's code in chunks under dist/cli/chunks/
 * that load on first use. Node then reads a handful of files instead of ~100 modules plus the
 * dependencies' own trees, and `rha run` never parses ioredis, listr2 or the lab.
 *
 * The rest of dist/ stays as tsc wrote it: tests and src/bench import those modules.
 */
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist/cli');

// zod's `z` namespace carries every locale (`z.locales`, ~200 KB minified) whether used or not;
// rha only ever uses the English messages zod sets by default, so the bundle gets only `en`.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({
      contents: 'export { default as en } from "./en.js";',
      loader: 'js',
      resolveDir: path.join(root, 'node_modules/zod/v4/locales'),
    }));
  },
};

rmSync(path.join(outdir, 'chunks'), { recursive: true, force: true });
// tsc's source map describes tsc's main.js, not the bundle written over it.
rmSync(path.join(outdir, 'main.js.map'), { force: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: { main: 'src/cli/main.ts' },
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  // ssh2 stays a real package: it loads its native crypto binding (sshcrypto.node) relative to its
  // own folder, and bundled it falls back to pure-JS crypto, which made a run slower, not faster.
  // ioredis reads its package.json and trims stacks by __dirname; only status/switchover/demo load
  // it (lazily), so bundling it would gain nothing.
  external: ['ssh2', 'ioredis'],
  plugins: [zodEnglishOnly],
  // The dependencies bundled from CommonJS call require() for Node's built-ins and ssh2; ESM has no
  // require, so each output file makes one for its own location.
  banner: { js: "import{createRequire as __rhaRequire}from'node:module';const require=__rhaRequire(import.meta.url);" },
  // Which sources went into which file: test/unit/bundle.test.ts checks what each command loads.
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(path.join(root, 'dist/cli-bundle.meta.json'), JSON.stringify(result.metafile));
