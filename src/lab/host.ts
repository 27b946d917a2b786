/**
 * One lab host: its own network namespace (made by net.ts), and mount, PID, UTS and IPC
 * namespaces with an overlay root over the cached rootfs, running sshd as PID 1. sshd reaps
 * every child (waitpid(-1) on SIGCHLD), so orphaned daemons inside the host leave no zombies;
 * killing PID 1 ends every process of the host.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { HOST_REPO_DIR } from './cache.js';
import { hostNetns, labDir, labDiskDir } from './names.js';
import { netnsPids } from './net.js';
import { HOST_ENV, LabError, run } from './sh.js';

/**
 * Runs inside the host's fresh namespaces (arguments, not interpolation, carry the data).
 * /proc/sys and /sys are read-only, so a host's `sysctl -w` fails instead of changing the machine.
 */
const HOST_SCRIPT = String.raw`
set -eu
LOWER=$1 REPO=$2 D=$3 H=$4 IP=$5 PUB=$6 HOSTS=$7
R=$D/root
mkdir -p "$D/upper" "$D/work" "$R"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$D/upper,workdir=$D/work" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro sysfs "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mkdir -p "$R${HOST_REPO_DIR}"
mount --bind "$REPO" "$R${HOST_REPO_DIR}"
mount -o remount,bind,ro "$R${HOST_REPO_DIR}"
hostname "$H"
echo "$H" > "$R/etc/hostname"
cat "$HOSTS" > "$R/etc/hosts"
mkdir -p "$R/run/sshd" "$R/root/.ssh"
chmod 700 "$R/root/.ssh"
cat "$PUB" > "$R/root/.ssh/authorized_keys"
chmod 600 "$R/root/.ssh/authorized_keys"
# Only missing keys are generated: a restarted host keeps its keys, a replaced (wiped) one gets new ones.
chroot "$R" ssh-keygen -A
echo "rha-lab: $H up at $IP"
exec chroot "$R" /usr/sbin/sshd -D -e -o ListenAddress="$IP"
`;

export interface HostParams {
  lab: string;
  host: string;
  address: string;
  rootfs: string;
  repo: string;
}

/** The host's disk: overlay upper and work dirs and the mount point of its root. */
export function hostDiskDir(lab: string, host: string): string {
  return path.join(labDiskDir(lab), host);
}

/** PID (in the machine's namespace) of the host's PID 1, or undefined when the host is not running. */
export async function findHostInit(lab: string, host: string): Promise<number | undefined> {
  for (const pid of await netnsPids(hostNetns(lab, host))) {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/);
    if (nspid && nspid.length >= 2 && nspid[nspid.length - 1] === '1') return pid;
  }
  return undefined;
}

/** Starts a host detached (it outlives this process) and resolves once its sshd answers. */
export async function startHost(p: HostParams): Promise<number> {
  if (await findHostInit(p.lab, p.host)) throw new LabError(`${p.host} is already running`);
  const dir = labDir(p.lab);
  const argv = [
    'netns', 'exec', hostNetns(p.lab, p.host),
    'unshare', '--mount', '--pid', '--uts', '--ipc', '--fork', '--propagation', 'private',
    'bash', '-c', HOST_SCRIPT, `rha-host-${p.host}`,
    p.rootfs, p.repo, hostDiskDir(p.lab, p.host), p.host, p.address,
    path.join(dir, 'id_ed25519.pub'), path.join(dir, 'hosts'),
  ];
  const { logFile, exitCode } = await spawnHost(p, 'ip', argv);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exitCode() !== undefined) break;
    if (await sshBanner(p.address)) {
      const init = await findHostInit(p.lab, p.host);
      if (init) return init;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  const tail = (await fs.readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-10).join('\n');
  const exited = exitCode();
  if (exited === undefined) await stopHost(p.lab, p.host);
  throw new LabError(
    `${p.host} did not start (${exited !== undefined ? `exit ${exited}` : 'sshd not answering after 60 s'}); ${logFile}:\n${tail}`,
  );
}

/**
 * Spawns a host's first process detached (setsid: the host does not die with this process or its
 * terminal), its output appended to the lab's log for the host; `exitCode()` is undefined while it runs.
 */
export async function spawnHost(p: HostParams, command: string, argv: string[]): Promise<{ logFile: string; exitCode: () => number | null | undefined }> {
  const logFile = path.join(labDir(p.lab), 'logs', `${p.host}.log`);
  await fs.mkdir(path.dirname(logFile), { recursive: true });
  const fd = openSync(logFile, 'a');
  const child = spawn(command, argv, { detached: true, stdio: ['ignore', fd, fd], env: HOST_ENV });
  closeSync(fd);
  let code: number | null | undefined;
  child.on('exit', (c) => (code = c));
  child.unref();
  return { logFile, exitCode: () => code };
}

/** Whether an SSH server answers at address:22 (reads its banner). */
export function sshBanner(address: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: address, port: 22, timeout: timeoutMs });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('data', (d) => done(d.toString().startsWith('SSH-')));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
}

/** Kills every process of a host (PID 1 first ends its PID namespace) and waits until none is left. */
export async function stopHost(lab: string, host: string): Promise<void> {
  const ns = hostNetns(lab, host);
  for (let i = 0; i < 100; i++) {
    const pids = await netnsPids(ns);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if ((await netnsPids(ns)).length) throw new LabError(`${host}: processes still alive after SIGKILL`);
  // The mounts lived in the host's mount namespace and went with its last process.
}

/** Wipes a host's disk (upper and work dirs): the next start is a blank machine. */
export async function wipeHostDisk(lab: string, host: string): Promise<void> {
  await fs.rm(hostDiskDir(lab, host), { recursive: true, force: true });
}

/** The host's public SSH host keys as known_hosts lines for its address. */
export async function hostKeyLines(lab: string, host: string, address: string): Promise<string[]> {
  const sshDir = path.join(hostDiskDir(lab, host), 'upper', 'etc', 'ssh');
  const lines: string[] = [];
  for (const t of ['ed25519', 'ecdsa', 'rsa']) {
    const f = path.join(sshDir, `ssh_host_${t}_key.pub`);
    if (!existsSync(f)) continue;
    const [type, key] = (await fs.readFile(f, 'utf8')).trim().split(/\s+/);
    lines.push(`${address} ${type} ${key}`);
  }
  if (lines.length === 0) throw new LabError(`${host}: no SSH host keys under ${sshDir}`);
  return lines;
}

/** Runs argv inside a running host's namespaces and root (not over SSH). */
export async function execInHost(
  lab: string,
  host: string,
  argv: string[],
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const init = await findHostInit(lab, host);
  if (!init) throw new LabError(`${host} is not running (start it: rha lab start ${host}${lab === 'default' ? '' : ` --name ${lab}`})`);
  const r = await run(['nsenter', '-t', String(init), '-m', '-u', '-i', '-n', '-p', '-r', '-w', '--', ...argv], {
    stdin: opts.stdin,
    env: HOST_ENV,
    timeoutMs: opts.timeoutMs,
  });
  return { code: r.code ?? 128, stdout: r.stdout, stderr: r.stderr };
}
