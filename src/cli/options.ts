/**
 * The options shared by `rha provision` and `rha run` (and the parsers behind them).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import YAML from 'yaml';
import { outputFormats, type OutputFormat } from '../report/open.js';

/**
 * Ansible's default is 5; rha hosts mostly wait on the network and on remote builds, so 10. Kept
 * here rather than imported from runner/index.ts, which would load the whole engine (zod,
 * handlebars) for `rha --help` and `rha lab`; a unit test pins it to the runner's DEFAULT_FORKS.
 */
export const DEFAULT_FORKS = 10;

export interface RunCliOptions {
  inventory?: string;
  check: boolean;
  diff: boolean;
  limit?: string;
  tags: string[];
  skipTags: string[];
  forks: number;
  output?: OutputFormat;
  verbose: number;
  extraVars: Record<string, unknown>;
  acceptHostKey: string[];
  /** Clusters whose inventory preference wins even where data would be lost (`--force NAME`). */
  force: string[];
}

/** `a,b` and repeated flags → one list, blanks dropped. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** A whole number ≥ 1. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

/** `key=value` with the value read as YAML (`port=6380` is a number, `x=true` a boolean), merged into previous. */
export function parseExtraVar(value: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got "${value}"`);
  const key = value.slice(0, eq).trim();
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new InvalidArgumentError(`"${key}" is not a variable name (letters, digits, _)`);
  const raw = value.slice(eq + 1);
  let parsed: unknown = raw;
  try {
    parsed = raw === '' ? '' : YAML.parse(raw);
  } catch {
    // Not valid YAML (e.g. `msg=a: b: c`): the text as written.
  }
  return { ...previous, [key]: parsed };
}

function increase(_: string, previous: number | undefined): number {
  return (previous ?? 0) + 1;
}

/** Adds the common run options to a command. */
export function addRunOptions(cmd: Command): Command {
  return cmd
    .option('-C, --check', 'plan only: show what would change, change nothing')
    .option('-D, --diff', 'show the difference of every file that changes (secrets masked)')
    .option('-l, --limit <pattern>', 'only these hosts: a host, a group, `a:b` union, `a:&b` intersection, `a:!b` exclusion')
    .option('-t, --tags <tags>', 'only tasks with these tags (comma-separated, repeatable)', collectList)
    .option('--skip-tags <tags>', 'skip tasks with these tags (comma-separated, repeatable)', collectList)
    .option('-f, --forks <n>', `hosts worked on at once`, positiveInt, DEFAULT_FORKS)
    .addOption(new Option('-o, --output <format>', 'pretty (default on a terminal), plain (default in CI and pipes) or json (JSON Lines)').choices(outputFormats))
    .option('-v, --verbose', 'more output: -v shows every planned change and task start, -vv full command output', increase)
    .option('-e, --extra-vars <key=value>', 'set a variable (highest precedence; value read as YAML, repeatable)', parseExtraVar)
    .option(
      '--accept-host-key <host>',
      'accept a changed SSH host key of this host for this run (a replaced node; repeatable, or `all`)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--force <cluster>',
      "let the inventory's master win in this cluster even where rha refuses because data would be lost (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    );
}

/** Commander's parsed options with every default filled in (defaults are not shown in --help noise). */
export function normalizeRunOptions(o: Partial<RunCliOptions>): RunCliOptions {
  return {
    inventory: o.inventory,
    check: o.check ?? false,
    diff: o.diff ?? false,
    limit: o.limit,
    tags: o.tags ?? [],
    skipTags: o.skipTags ?? [],
    forks: o.forks ?? DEFAULT_FORKS,
    output: o.output,
    verbose: o.verbose ?? 0,
    extraVars: o.extraVars ?? {},
    acceptHostKey: o.acceptHostKey ?? [],
    force: o.force ?? [],
  };
}
