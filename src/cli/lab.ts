/**
 * `rha lab ...`: throwaway real Linux hosts on this machine for demos, tests and CI smoke runs.
 */
import { spawnSync } from 'node:child_process';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
// The lab's code (namespaces, debootstrap, the cache) loads only when a lab command runs, so that
// `rha run` and `rha --help` do not parse it (issue 7); names.ts and sh.ts are small.
import { DEFAULT_LAB } from '../lab/names.js';
import { LabError } from '../lab/sh.js';
import type { LabInfo } from '../lab/index.js';
import { ExitCode } from '../core/types.js';
import { selfCommand } from './paths.js';

const nameOption = () => new Option('-n, --name <name>', 'lab name').default(DEFAULT_LAB);

function labFlag(name: string): string {
  return name === DEFAULT_LAB ? '' : ` --name ${name}`;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

/** Wraps an action: lab errors are printed as one message and set the exit code, not a stack trace. */
function act<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof LabError) {
        process.stderr.write(`rha lab: ${e.message}\n`);
        process.exitCode = ExitCode.internalError;
        return;
      }
      throw e;
    }
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => '  ' + r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** The human form of a lab: hosts, clusters, files. */
export function formatLab(info: LabInfo): string {
  const hosts = table([
    ['HOST', 'ADDRESS', 'STATE', 'LINK', 'NETNS'],
    ...info.hosts.map((h) => [h.name, h.address, h.running ? `running (pid ${h.pid})` : 'stopped', h.linkUp ? 'up' : 'down', h.netns]),
  ]);
  const clusters = info.clusters.length
    ? '\n\n' +
      table([
        ['CLUSTER', 'MASTER', 'REPLICA', 'VIP', 'VRID'],
        ...info.clusters.map((c) => [c.name, c.master, c.replica, c.vip, String(c.vrid)]),
      ])
    : '';
  return (
    `lab ${info.name}: ${info.hosts.length} ${info.kind === 'systemd' ? 'systemd ' : ''}host${info.hosts.length === 1 ? '' : 's'} in ${info.subnet} ` +
    `(this machine is ${info.controllerAddress} on it)\n\n${hosts}${clusters}\n\n` +
    `  inventory    ${info.inventoryPath}\n` +
    `  ssh key      ${info.privateKeyPath}\n` +
    `  known_hosts  ${info.knownHostsPath}\n` +
    `  redis source ${info.redisSource.path} (sha256 ${info.redisSource.sha256.slice(0, 12)}...)\n`
  );
}

const labApi = () => import('../lab/index.js');

/** The `lab` command with its sub-commands (wired into the main CLI). */
export function labCommand(): Command {
  const lab = new Command('lab')
    .description('throwaway real Linux hosts on this machine (network namespaces + sshd), for demos, tests and CI')
    .addHelpText('after', `\nExample:\n  $ rha lab up --hosts 2 && rha provision /run/rha/lab/default/inventory.yaml && rha lab down`);

  lab
    .command('up')
    .description('bring up fresh hosts on a private segment and write a ready inventory')
    .addHelpText('after', `\nExample:\n  $ rha lab up --hosts 4 --name ci   # then: rha lab ssh node1 --name ci`)
    .addOption(new Option('--hosts <n>', 'number of hosts').argParser(positiveInt).default(2))
    .addOption(nameOption())
    .option('--python', 'hosts have python3 (for Ansible side-by-side runs)', false)
    .addOption(
      new Option('--login <kind>', 'how the inventory logs in: root, or the sudo user "admin" with a sudo password (in secrets/, mode 0600) or NOPASSWD')
        .choices(['root', 'sudo', 'sudo-nopasswd'])
        .default('root'),
    )
    .option('--systemd', 'hosts boot systemd as PID 1 (systemd-nspawn), like real servers', false)
    .option('--recreate', 'remove a lab of this name first, if one is up', false)
    .option('--subnet <cidr>', 'a private /24 for the lab (default: a free 10.213.X.0/24)')
    .action(
      act(async (o: { hosts: number; name: string; python: boolean; login: 'root' | 'sudo' | 'sudo-nopasswd'; systemd: boolean; recreate: boolean; subnet?: string }) => {
        // Ctrl-C during up stops it between steps and removes the half-made lab (labUp cleans up
        // what it made when it fails); a second Ctrl-C kills at once, `rha lab down` then cleans.
        const abort = new AbortController();
        const onSignal = () => {
          process.stderr.write(`\ninterrupted: removing the half-made lab ${o.name}\n`);
          abort.abort();
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        let info: LabInfo;
        try {
          info = await (await labApi()).labUp({
            name: o.name,
            hosts: o.hosts,
            python: o.python,
            login: o.login,
            systemd: o.systemd,
            recreate: o.recreate,
            subnet: o.subnet,
            signal: abort.signal,
            log: (l) => process.stderr.write(`  ${l}\n`),
          });
        } catch (e) {
          if (!abort.signal.aborted) throw e;
          process.exitCode = ExitCode.interrupted;
          return;
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        process.stdout.write(
          formatLab(info) +
            `\nnext:\n` +
            `  ${selfCommand()} provision ${info.inventoryPath}\n` +
            `  ${selfCommand()} lab ssh ${info.hosts[0].name}${labFlag(info.name)}      # a shell on a host\n` +
            `  ${selfCommand()} lab down${labFlag(info.name)}           # remove everything the lab made\n`,
        );
      }),
    );

  lab
    .command('down')
    .description('remove the lab: hosts, namespaces, interfaces, disks (also after a crash)')
    .addOption(nameOption())
    .action(
      act(async (o: { name: string }) => {
        await (await labApi()).labDown(o.name);
        process.stdout.write(`lab ${o.name} removed\n`);
      }),
    );

  lab
    .command('status')
    .description('show the lab and whether each host runs')
    .addOption(nameOption())
    .option('--json', 'machine-readable output', false)
    .action(
      act(async (o: { name: string; json: boolean }) => {
        const info = await (await labApi()).labStatus(o.name);
        if (o.json) {
          process.stdout.write(JSON.stringify(info ?? null, null, 2) + '\n');
        } else if (info) {
          process.stdout.write(formatLab(info));
        } else {
          const others = (await (await labApi()).labList()).filter((n) => n !== o.name);
          process.stdout.write(`no lab named ${o.name} is up${others.length ? ` (labs up: ${others.join(', ')})` : ''}\n`);
        }
        if (!info) process.exitCode = 1;
      }),
    );

  lab
    .command('ssh')
    .description("open a shell (or run a command) on a host with the machine's ssh client, host key checked")
    .argument('<host>')
    .argument('[command...]', 'command to run instead of a shell')
    .addOption(nameOption())
    .allowUnknownOption()
    .action(
      act(async (host: string, command: string[], o: { name: string }) => {
        const info = await (await labApi()).labStatus(o.name);
        if (!info) throw new LabError(`no lab named ${o.name} is up`);
        const h = info.hosts.find((x) => x.name === host);
        if (!h) throw new LabError(`lab ${o.name} has no host ${host} (hosts: ${info.hosts.map((x) => x.name).join(', ')})`);
        const r = spawnSync(
          'ssh',
          [
            '-i', info.privateKeyPath,
            '-o', 'IdentitiesOnly=yes',
            '-o', `UserKnownHostsFile=${info.knownHostsPath}`,
            '-o', 'StrictHostKeyChecking=yes',
            '-o', 'ConnectTimeout=10',
            `root@${h.address}`,
            ...command,
          ],
          { stdio: 'inherit' },
        );
        process.exitCode = r.status ?? 1;
      }),
    );

  lab
    .command('exec')
    .description("run a command inside a host's namespaces (not over SSH)")
    .argument('<host>')
    .argument('<argv...>')
    .addOption(nameOption())
    // The command's own options (sh -c ...) belong to it, whether or not `--` separates them.
    .allowUnknownOption()
    .action(
      act(async (host: string, argv: string[], o: { name: string }) => {
        const r = await (await labApi()).labExec(o.name, host, argv);
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        process.exitCode = r.code;
      }),
    );

  lab
    .command('replace')
    .description("replace a host by a blank machine at the same address (disk wiped, new SSH host keys)")
    .argument('<host>')
    .addOption(nameOption())
    .action(
      act(async (host: string, o: { name: string }) => {
        const h = await (await labApi()).labReplace(o.name, host);
        process.stdout.write(
          `${h.name} replaced: blank disk, same address ${h.address}, NEW SSH host key.\n` +
            `The lab's known_hosts still has the old key, so rha (and ssh) will refuse ${h.name} as a changed host.\n` +
            `After checking this is expected, accept the new key with:\n` +
            `  rha lab accept-key ${h.name}${labFlag(o.name)}\n`,
        );
      }),
    );

  lab
    .command('accept-key')
    .description("put a host's current SSH host key into the lab's known_hosts (after replace)")
    .argument('<host>')
    .addOption(nameOption())
    .action(
      act(async (host: string, o: { name: string }) => {
        const lines = await (await labApi()).labAcceptHostKey(o.name, host);
        process.stdout.write(`${host}: known_hosts now holds\n${lines.map((l) => `  ${l.slice(0, 60)}...`).join('\n')}\n`);
      }),
    );

  lab
    .command('kill')
    .description('send a signal to every process of this name in a host (fault injection)')
    .argument('<host>')
    .argument('<process>', 'exact process name, e.g. redis-server or keepalived')
    .addOption(nameOption())
    .option('-s, --signal <signal>', 'signal name', 'KILL')
    .action(
      act(async (host: string, proc: string, o: { name: string; signal: string }) => {
        const n = await (await labApi()).labKill(o.name, host, proc, o.signal);
        process.stdout.write(`${host}: sent SIG${o.signal.replace(/^SIG/, '')} to ${n} ${proc} process${n === 1 ? '' : 'es'}\n`);
        if (n === 0) process.exitCode = 1;
      }),
    );

  lab
    .command('link')
    .description("take a host's network link down (cable pulled) or up")
    .argument('<host>')
    .addArgument(new Argument('<state>', 'up or down').choices(['up', 'down']))
    .addOption(nameOption())
    .action(
      act(async (host: string, state: 'up' | 'down', o: { name: string }) => {
        await (await labApi()).labLink(o.name, host, state);
        process.stdout.write(`${host}: link ${state}\n`);
      }),
    );

  lab
    .command('stop')
    .description('stop a host entirely, as on power loss (disk kept)')
    .argument('<host>')
    .addOption(nameOption())
    .action(
      act(async (host: string, o: { name: string }) => {
        await (await labApi()).labStopHost(o.name, host);
        process.stdout.write(`${host}: stopped (disk kept; start it with: rha lab start ${host}${labFlag(o.name)})\n`);
      }),
    );

  lab
    .command('start')
    .description('start a stopped host again with its disk as it was')
    .argument('<host>')
    .addOption(nameOption())
    .action(
      act(async (host: string, o: { name: string }) => {
        await (await labApi()).labStartHost(o.name, host);
        process.stdout.write(`${host}: running\n`);
      }),
    );

  lab
    .command('reboot')
    .description('reboot a host of a systemd lab with systemctl reboot inside it (disk kept); waits until sshd answers again')
    .argument('<host>')
    .addOption(nameOption())
    .action(
      act(async (host: string, o: { name: string }) => {
        const h = await (await labApi()).labReboot(o.name, host);
        process.stdout.write(`${host}: rebooted (pid ${h.pid}), sshd answering at ${h.address}\n`);
      }),
    );

  lab
    .command('cache')
    .description('build (or check) the cached root filesystem, apt repository and Redis source')
    .option('--python', 'the root filesystem variant with python3', false)
    .option('--systemd', 'the root filesystem variant that boots systemd (rha lab up --systemd)', false)
    .action(
      act(async (o: { python: boolean; systemd: boolean }) => {
        const c = await (await labApi()).ensureCache({
          python: o.python,
          systemd: o.systemd,
          log: (l) => process.stderr.write(`  ${l}\n`),
        });
        process.stdout.write(
          `rootfs        ${c.rootfs}\napt repo      ${c.repo}\nredis source  ${c.redisSource.path}\n` +
            `              sha256 ${c.redisSource.sha256}\n`,
        );
      }),
    );

  return lab;
}
