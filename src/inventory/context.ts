/**
 * What every normalisation step of the inventory shares: the parsed source and its raw data, the
 * environment, and the two sinks (problems pushed with file, line and key path; secret values to
 * mask). The steps (rules.ts, groups.ts, hosts.ts, clusters.ts, vars.ts, secrets.ts) take it as
 * their first argument; load.ts creates it and runs them in order.
 */
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { InputProblem } from '../core/types.js';
import type { RawInventory } from './schema.js';
import { dotted, lineOf, type KeyPath, type YamlSource } from './source.js';

export class LoadContext {
  readonly problems: InputProblem[] = [];
  /** Every secret value read, so that printers can mask them. */
  readonly secrets = new Set<string>();
  /** The inventory file's folder: relative paths in it are relative to here. */
  readonly dir: string;

  constructor(
    readonly src: YamlSource,
    readonly raw: RawInventory,
    readonly env: NodeJS.ProcessEnv,
  ) {
    this.dir = dirname(resolve(src.file));
  }

  error(path: KeyPath, message: string, key = false): void {
    this.problems.push({ file: this.src.file, line: lineOf(this.src, path, { key }), path: dotted(path), message, severity: 'error' });
  }

  warn(path: KeyPath, message: string, key = false): void {
    this.problems.push({ file: this.src.file, line: lineOf(this.src, path, { key }), path: dotted(path), message, severity: 'warning' });
  }

  /** The user's home: HOME from the given environment, else the OS's. */
  home(): string {
    return this.env.HOME || homedir();
  }

  /** Absolute path: `~` expands to HOME, relative paths are relative to the inventory file. */
  path(p: string): string {
    if (p === '~') return this.home();
    if (p.startsWith('~/')) return join(this.home(), p.slice(2));
    return isAbsolute(p) ? p : resolve(this.dir, p);
  }
}
