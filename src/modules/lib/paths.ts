import { access } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ModuleFailure } from './failure.js';

/**
 * Returns the controller path of a `src:` file: absolute as is, else the first of
 * `DIR/SUBDIR/src`, `DIR/src` for each search folder in order (Ansible's files/ and templates/).
 */
export async function resolveSource(searchPaths: readonly string[], src: string, subdir: 'files' | 'templates'): Promise<string> {
  const candidates = isAbsolute(src) ? [src] : searchPaths.flatMap((d) => [join(d, subdir, src), join(d, src)]);
  for (const c of candidates) {
    try {
      await access(c);
      return c;
    } catch {
      // try the next one
    }
  }
  throw new ModuleFailure(`src ${src} not found (looked in: ${candidates.join(', ') || 'no search paths'})`);
}
