/**
 * `rha`: provision highly available Redis pairs (master/replica behind a keepalived VIP) over SSH.
 *
 * Exit codes: 0 ok · 1 internal error · 2 a host failed · 3 a host unreachable (none failed) ·
 * 4 invalid input (nothing touched) · 130 interrupted.
 */
import { Command, CommanderError, Option } from 'commander';
import { ExitCode, InputError } from '../core/types.js';
import { addRunOptions, normalizeRunOptions, type RunCliOptions } from './options.js';
import { labCommand } from './lab.js';
import type { CliIo } from './io.js';

export type { CliIo } from './io.js';

// Each sub-command loads its code when it runs, not at start-up: `rha --help` parses commander and
// the option parsers only, and `rha run` never parses ioredis (status, switchover, demo), the lab or
// listr2 (pretty output). In the bundled CLI (scripts/build.mjs) each import() is a separate chunk.
const runCli = () => import('./run.js');

const EXIT_CODES = `
Exit codes:
  0    success
  1    internal error (-v prints the stack)
  2    some host failed
  3    some host was unreachable or its changed host key refused (and none failed on its own)
  4    invalid input: nothing was touched
  130  interrupted (Ctrl-C; a second Ctrl-C exits at once)`;

/** One parse of a command line: its output, its -v level and its exit code. */
interface Session {
  io?: CliIo;
  verbosity: number;
  code: ExitCode;
}

/** Runs a command action and records its exit code; input errors never show a stack. */
function act<A extends unknown[]>(session: Session, fn: (...args: A) => Promise<ExitCode>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      session.code = await fn(...args);
    } catch (e) {
      session.code = await reportError(e, session);
    }
  };
}

/** Prints an unexpected error and returns its exit code. */
async function reportError(e: unknown, session: Session): Promise<ExitCode> {
  const { printProblems, processIo } = await runCli();
  const io = session.io ?? processIo();
  if (e instanceof InputError) {
    printProblems(e.problems, io);
    return ExitCode.invalidInput;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  io.stderr.write(`error: internal error: ${err.message}\n`);
  if (session.verbosity >= 1 && err.stack) io.stderr.write(err.stack + '\n');
  else io.stderr.write('(run again with -v for the stack trace; please report it)\n');
  return ExitCode.internalError;
}

/** The `rha` program with its sub-commands. */
export function buildProgram(session: Session = { verbosity: 0, code: ExitCode.ok }): Command {
  const io = session.io;
  const program = new Command('rha');
  // Before any sub-command is added: each copies its parent's output settings when created.
  if (io) program.configureOutput({ writeOut: (t) => void io.stdout.write(t), writeErr: (t) => void io.stderr.write(t) });
  sessions.set(program, session);
  program
    .description('Provision highly available Redis pairs (master/replica behind a keepalived virtual IP) over SSH.')
    .showHelpAfterError('(rha --help shows usage)')
    .addHelpText(
      'after',
      `
Examples:
  $ rha validate inventory.yaml                 check everything without connecting
  $ rha provision inventory.yaml --check --diff show what would change
  $ rha provision inventory.yaml                provision every cluster
  $ rha run playbooks/redis.yaml -i inventory.yaml --limit cache
${EXIT_CODES}`,
    );

  addRunOptions(
    program
      .command('provision')
      .description("run rha's shipped playbook (playbooks/site.yaml: Redis, keepalived, the documented bring-up order) against INVENTORY")
      .argument('<inventory>', 'inventory file (YAML)'),
  )
    .addHelpText('after', `\nExamples:\n  $ rha provision inventory.yaml --check --diff\n  $ rha provision inventory.yaml --limit cache -v\n  $ rha provision inventory.yaml --accept-host-key redis-b   # after replacing redis-b\n${EXIT_CODES}`)
    .action(
      act(session, async (inventory: string, raw: Partial<RunCliOptions>) => {
        const o = normalizeRunOptions(raw);
        session.verbosity = o.verbose;
        const { runCommand, sitePlaybook } = await runCli();
        return runCommand(sitePlaybook(), inventory, o, io);
      }),
    );

  addRunOptions(
    program
      .command('run')
      .description('run PLAYBOOK against the hosts of INVENTORY')
      .argument('<playbook>', 'playbook file (YAML)')
      .requiredOption('-i, --inventory <file>', 'inventory file (YAML)'),
  )
    .addHelpText('after', `\nExamples:\n  $ rha run playbooks/redis.yaml -i inventory.yaml --check\n  $ rha run my-play.yaml -i inventory.yaml --tags config -e maxmemory=2gb\n${EXIT_CODES}`)
    .action(
      act(session, async (playbook: string, raw: Partial<RunCliOptions>) => {
        const o = normalizeRunOptions(raw);
        session.verbosity = o.verbose;
        const { runCommand } = await runCli();
        return runCommand(playbook, o.inventory!, o, io);
      }),
    );

  program
    .command('validate')
    .description('check an inventory (with the shipped site playbook, or PLAYBOOK) without connecting to any host')
    .argument('<inventory>', 'inventory file (YAML)')
    .argument('[playbook]', 'playbook file (default: the shipped playbooks/site.yaml)')
    .addHelpText('after', `\nExamples:\n  $ rha validate inventory.yaml\n  $ rha validate inventory.yaml my-play.yaml\n\nPrints every problem as \`file:line key.path: message\`; exit 4 when any is an error.`)
    .action(act(session, async (inventory: string, playbook: string | undefined) => (await runCli()).validateCommand(inventory, playbook)));

  const hosts = program.command('hosts').description('manage what rha remembers about hosts');
  hosts
    .command('accept')
    .description("forget HOST's recorded SSH host key (known_hosts) so that the next run records its new key, e.g. after the host was replaced")
    .argument('<host>', 'host name from the inventory')
    .requiredOption('-i, --inventory <file>', 'inventory file (YAML)')
    .addHelpText('after', `\nExample:\n  $ rha hosts accept redis-b -i inventory.yaml`)
    .action(act(session, async (host: string, o: { inventory: string }) => (await runCli()).hostsAcceptCommand(host, o.inventory)));

  program
    .command('status')
    .description('per cluster and node: VIP holder, Redis role, link, lag, keys, keepalived, and a verdict; exit 0 only when every cluster is healthy')
    .argument('<inventory>', 'inventory file (YAML)')
    .option('-c, --cluster <name>', 'only this cluster (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addOption(new Option('-o, --output <format>', 'table for people, json for machines').choices(['table', 'json']).default('table'))
    .option('--accept-host-key <host>', 'accept a changed SSH host key of this host (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addHelpText('after', `\nExamples:\n  $ rha status inventory.yaml\n  $ rha status inventory.yaml --cluster cache -o json   # exit 2 unless healthy: gates a CI job`)
    .action(
      act(session, async (inventory: string, o: { cluster?: string[]; output: 'table' | 'json'; acceptHostKey?: string[] }) =>
        (await import('./status.js')).statusCommand(inventory, { cluster: o.cluster ?? [], output: o.output, acceptHostKey: o.acceptHostKey ?? [] }),
      ),
    );

  program
    .command('switchover')
    .description('planned move of the VIP and the master role to the in-sync replica, with no acknowledged write lost (writes pause briefly)')
    .argument('<inventory>', 'inventory file (YAML)')
    .argument('<cluster>', 'cluster name')
    .addHelpText('after', `\nExample:\n  $ rha switchover inventory.yaml cache\n\nRefused (exit 2, nothing moved) unless the replica is in sync and keepalived runs on both nodes.`)
    .action(act(session, async (inventory: string, cluster: string) => (await import('./switchover.js')).switchoverCommand(inventory, cluster)));

  program
    .command('init')
    .description('write a commented starter inventory for one pair (two hosts, one VIP) into DIR, with random secrets (mode 0600); never overwrites')
    .argument('[dir]', 'folder to write into (default: the current folder)')
    .addHelpText('after', `\nExample:\n  $ rha init prod-cache && rha validate prod-cache/inventory.yaml`)
    .action(act(session, async (dir: string | undefined) => (await import('./init.js')).initCommand(dir)));

  program
    .command('demo')
    .description('bring up a two-host lab on this machine, provision a pair into it, and show it working (root)')
    .option('-n, --name <name>', 'lab name', 'default')
    .addOption(new Option('-o, --output <format>', 'run output').choices(['pretty', 'plain', 'json']))
    .addHelpText('after', `\nExample:\n  $ rha demo && rha lab down`)
    .action(act(session, async (o: { name: string; output?: 'pretty' | 'plain' | 'json' }) => (await import('./demo.js')).demoCommand(o)));

  const keeper = program
    .command('keeper')
    .description('the warm rha process that runs `run` and `provision` for scripts and CI (not on a terminal) and keeps their SSH connections (RHA_KEEPER)')
    .addHelpText(
      'after',
      `\nRHA_KEEPER=off runs every command in its own process; RHA_KEEPER=SECONDS sets how long a keeper
waits for the next run before it ends (default 60), as Ansible's ControlPersist.`,
    );
  keeper
    .command('status')
    .description("this user's keepers: runs, kept connections, memory")
    .option('--json', 'as JSON')
    .action(act(session, async (o: { json?: boolean }) => (await import('./keeper.js')).keeperStatusCommand(o, io ?? process)));
  keeper
    .command('stop')
    .description("end this user's keepers now, closing their SSH connections")
    .action(act(session, async () => (await import('./keeper.js')).keeperStopCommand(io ?? process)));
  keeper
    .command('serve', { hidden: true })
    .requiredOption('--socket <path>', 'socket to listen on')
    .option('--idle <seconds>', 'end after this long without a run', '60')
    .action(async (o: { socket: string; idle: string }) => {
      await (await import('./keeper.js')).serveKeeper(o.socket, Number(o.idle) || 60, runArgv);
      // main.ts saves the V8 code cache on 'beforeExit', which process.exit skips: the next
      // keeper then starts from compiled code too.
      process.emit('beforeExit', ExitCode.ok);
      process.exit(ExitCode.ok);
    });

  program.addCommand(labCommand());
  addVerboseEverywhere(program, session);
  return program;
}

/**
 * `-v` on every command that runs something: an internal error says "run again with -v", so each
 * must accept it (provision and run already count it for their output). The level reaches
 * reportError through the session before the action runs.
 */
function addVerboseEverywhere(program: Command, session: Session): void {
  const visit = (cmd: Command): void => {
    // `lab ssh HOST CMD...` and `lab exec`: their trailing words (a -v among them) are the remote command's.
    const passesArgsOn = cmd.registeredArguments.some((a) => a.variadic);
    if (cmd.commands.length === 0 && !passesArgsOn && !cmd.options.some((o) => o.short === '-v')) {
      cmd.option('-v, --verbose', 'on an internal error, print its stack trace (repeatable)', (_: string, prev: number | undefined) => (prev ?? 0) + 1);
    }
    cmd.commands.forEach(visit);
  };
  program.commands.forEach(visit);
  program.hook('preAction', (_, action) => {
    const v = action.opts().verbose;
    if (typeof v === 'number') session.verbosity = v;
  });
}

const sessions = new WeakMap<Command, Session>();

/** Parses argv and runs; usage errors exit 4 (invalid input), help exits 0. Sets process.exitCode. */
export async function main(argv: string[] = process.argv, program: Command = buildProgram()): Promise<void> {
  // One command per process: zod's JIT (a `new Function` per object schema, compiled on its first
  // parse) costs more than it saves when each schema parses a few times (~20-40 ms of a no-op's
  // start-up, cpu profile). The keeper (runArgv) keeps it: its schemas parse on every run.
  (await import('zod')).config({ jitless: true });
  const code = await parseAndRun(argv, program);
  // `rha lab ...` sets process.exitCode itself.
  if (code !== ExitCode.ok || process.exitCode === undefined) process.exitCode = code;
}

/**
 * Runs one command line with its output on `io` (the keeper, for a client) and returns its exit
 * code; touches neither this process's streams nor its exit code.
 */
export async function runArgv(argv: string[], io: CliIo): Promise<ExitCode> {
  return parseAndRun(argv, buildProgram({ io, verbosity: 0, code: ExitCode.ok }));
}

async function parseAndRun(argv: string[], program: Command): Promise<ExitCode> {
  const session = sessions.get(program) ?? { verbosity: 0, code: ExitCode.ok };
  program.exitOverride();
  for (const c of program.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  try {
    await program.parseAsync(argv);
    return session.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? ExitCode.ok : ExitCode.invalidInput;
    }
    return reportError(e, session);
  }
}
