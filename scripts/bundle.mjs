#!/usr/bin/env node
/**
 * Bundles the CLI for start-up speed (issue 7); runs after tsc in `npm run build`. Writes
 * dist/cli/rha.cjs: program.ts and everything it imports in one CommonJS file, which tsc's
 * dist/cli/main.js (src/cli/main.ts) then compiles with a V8 code cache (code-cache.ts). Node 20
 * has no compile cache for ES modules, hence CommonJS; program.ts's dynamic imports still run each
 * sub-command's modules only when it is used (esbuild keeps them as lazy initialisers).
 * The rest of dist/ stays as tsc wrote it: tests and src/bench import those modules, and a bare
 * `tsc` (no rha.cjs written since) still gives a working, if slower, CLI.
 */
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = (f) => path.join(root, 'dist/cli', f);

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

// ssh2 is bundled (its ~40 files then come from the V8 code cache too), but its optional native
// crypto binding must still load from ssh2's own folder, wherever npm put it: the relative require
// becomes one resolved at run time. cpu-features (also native, optional) stays a package.
const ssh2NativeBinding = {
  name: 'ssh2-native-binding',
  setup(b) {
    b.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]crypto\.js$/ }, async (args) => {
      const { readFile } = await import('node:fs/promises');
      const src = await readFile(args.path, 'utf8');
      const from = "require('./crypto/build/Release/sshcrypto.node')";
      if (!src.includes(from)) throw new Error(`ssh2's crypto.js no longer loads ${from}: check the bundle plugin`);
      const to = "require(require('path').join(require('path').dirname(require.resolve('ssh2/package.json')), 'lib/protocol/crypto/build/Release/sshcrypto.node'))";
      return { contents: src.replace(from, to), loader: 'js' };
    });
  },
};

const common = { absWorkingDir: root, bundle: true, platform: 'node', target: 'node20', legalComments: 'none', logLevel: 'warning' };

await build({
  ...common,
  entryPoints: ['src/cli/program.ts'],
  outfile: out('rha.cjs'),
  format: 'cjs',
  minify: process.env.RHA_BUNDLE_MINIFY !== "0",
  // ssh2 stays a real package: it loads its native crypto binding (sshcrypto.node) relative to its
  // own folder; bundled it fell back to pure-JS crypto (slower), and with the binding kept it was
  // no faster. ioredis reads its package.json by __dirname; only status/switchover/demo load it.
  external: ['ioredis', 'cpu-features'],
  plugins: [zodEnglishOnly, ssh2NativeBinding],
  // main.ts passes its own URL: packageRoot() then walks up from dist/cli as in tsc's output.
  define: { 'import.meta.url': '__rhaImportMetaUrl' },
});
