/**
 * systemd-booted lab hosts (`rha lab up --systemd`): the same network namespace, veth and overlay
 * disk as a namespace host (host.ts), but booted with systemd-nspawn, so systemd is PID 1 of the
 * host and sshd, Redis and keepalived run as systemd units, as on users' servers.
 *
 * Why nspawn and not QEMU/KVM: see docs/design.md (Lab: systemd hosts), with the measurements.
 *
 * This machine has no systemd as PID 1: nspawn runs with --register=no (no machined) and is
 * supervised by a small shell loop instead of systemd-nspawn@.service: exit status 133 is how
 * nspawn reports `systemctl reboot` inside, so the loop boots the host again from the same disk,
 * after resetting its NIC to its own address only (a rebooted machine does not keep the VIP).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HOST_REPO_DIR } from './cache.js';
import { execInHost, findHostInit, hostDiskDir, spawnHost, sshBanner, stopHost, type HostParams } from './host.js';
import { hostNetns, labDir } from './names.js';
import { LabError, have } from './sh.js';

/** How long a systemd host may take from start (or reboot) to sshd answering. */
export const SYSTEMD_BOOT_TIMEOUT_MS = 120_000;

/**
 * Runs in the host's network namespace and a private mount namespace (so the overlay mount is the
 * host's own and goes with its last process). Arguments, not interpolation, carry the data.
 */
// --private-network with --network-namespace-path: the host's own namespace, and nspawn treats it as
// private, so the host keeps CAP_NET_ADMIN (keepalived adds the VIP) and a writable /proc/sys/net.
const NSPAWN_SCRIPT = String.raw`
set -u
LOWER=$1 REPO=$2 D=$3 H=$4 IP=$5 PUB=$6 HOSTS=$7 NETNS=$8
R=$D/root
set -e
mkdir -p "$D/upper" "$D/work" "$R"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$D/upper,workdir=$D/work" "$R"
echo "$H" > "$R/etc/hostname"
cat "$HOSTS" > "$R/etc/hosts"
mkdir -p "$R/root/.ssh" "$R${HOST_REPO_DIR}"
chmod 700 "$R/root/.ssh"
cat "$PUB" > "$R/root/.ssh/authorized_keys"
chmod 600 "$R/root/.ssh/authorized_keys"
# Only missing keys are generated: a rebooted host keeps its keys, a replaced (wiped) one gets new ones.
ssh-keygen -A -f "$R" >/dev/null
set +e
while :; do
  echo "rha-lab: booting $H at $IP"
  systemd-nspawn --quiet --boot --register=no --keep-unit --directory="$R" --machine="$H" \
    --private-network --network-namespace-path="/run/netns/$NETNS" --bind-ro="$REPO:${HOST_REPO_DIR}" \
    --resolv-conf=off --timezone=off --link-journal=no --console=read-only
  rc=$?
  # 133: the host asked for a reboot (systemctl reboot). Anything else: it was powered off or failed.
  [ "$rc" = 133 ] || { echo "rha-lab: $H stopped (nspawn exit $rc)"; exit "$rc"; }
  echo "rha-lab: $H rebooting"
  ip link set eth0 down
  ip addr flush dev eth0
  ip addr add "$IP/24" dev eth0
  ip link set eth0 up
done
`;

/** Resolves when this machine can boot systemd hosts; throws a LabError saying what is missing. */
export async function checkSystemdMachine(): Promise<void> {
  if (!(await have('systemd-nspawn'))) {
    throw new LabError('rha lab up --systemd needs systemd-nspawn (package systemd-container: apt-get install systemd-container)');
  }
}

/** Starts a systemd host detached (it outlives this process) and resolves with its PID 1 once its sshd answers. */
export async function startSystemdHost(p: HostParams): Promise<number> {
  if (await findHostInit(p.lab, p.host)) throw new LabError(`${p.host} is already running`);
  const dir = labDir(p.lab);
  // nsenter, not `ip netns exec`: that remounts /sys for the namespace, which hides
  // /sys/fs/cgroup from nspawn ("Failed to determine whether the unified cgroups hierarchy is used").
  const argv = [
    `--net=/run/netns/${hostNetns(p.lab, p.host)}`,
    'unshare', '--mount', '--propagation', 'private',
    'bash', '-c', NSPAWN_SCRIPT, `rha-host-${p.host}`,
    p.rootfs, p.repo, hostDiskDir(p.lab, p.host), p.host, p.address,
    path.join(dir, 'id_ed25519.pub'), path.join(dir, 'hosts'), hostNetns(p.lab, p.host),
  ];
  const { logFile, exitCode } = await spawnHost(p, 'nsenter', argv);
  const init = await waitBooted(p, undefined, () => exitCode() !== undefined);
  if (init) return init;
  const tail = await logTail(logFile);
  const exited = exitCode();
  if (exited === undefined) await stopHost(p.lab, p.host);
  throw new LabError(
    `${p.host} did not boot (${exited !== undefined ? `exit ${exited}` : `sshd not answering after ${SYSTEMD_BOOT_TIMEOUT_MS / 1000} s`}); ${logFile}:\n${tail}`,
  );
}

/**
 * Polls until the host runs a PID 1 other than `previous` and its sshd answers; returns that PID 1,
 * or undefined on timeout or when `gone` says the host's supervisor ended.
 */
async function waitBooted(p: { lab: string; host: string; address: string }, previous: number | undefined, gone: () => boolean): Promise<number | undefined> {
  const deadline = Date.now() + SYSTEMD_BOOT_TIMEOUT_MS;
  while (Date.now() < deadline && !gone()) {
    const init = await findHostInit(p.lab, p.host);
    if (init && init !== previous && (await sshBanner(p.address))) return init;
    await new Promise((r) => setTimeout(r, 150));
  }
  return undefined;
}

async function logTail(logFile: string): Promise<string> {
  return (await fs.readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-15).join('\n');
}

/**
 * Reboots a running systemd host through its own `systemctl reboot` (units stop in order, Redis
 * saves, keepalived says goodbye) and resolves with the new PID 1 once sshd answers again.
 */
export async function rebootSystemdHost(p: { lab: string; host: string; address: string }): Promise<number> {
  const before = await findHostInit(p.lab, p.host);
  if (!before) throw new LabError(`${p.host} is not running (start it: rha lab start ${p.host}${p.lab === 'default' ? '' : ` --name ${p.lab}`})`);
  const comm = (await fs.readFile(`/proc/${before}/comm`, 'utf8').catch(() => '')).trim();
  if (comm !== 'systemd') throw new LabError(`${p.host} does not boot systemd (its PID 1 is ${comm || 'unknown'}); reboot needs a lab made with rha lab up --systemd`);
  // --no-block: the reply comes back before the SSH-less exec channel is torn down by the shutdown.
  const r = await execInHost(p.lab, p.host, ['systemctl', 'reboot', '--no-block'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new LabError(`systemctl reboot on ${p.host} failed (exit ${r.code}): ${r.stderr.trim()}`);
  const init = await waitBooted(p, before, () => false);
  if (init) return init;
  const logFile = path.join(labDir(p.lab), 'logs', `${p.host}.log`);
  throw new LabError(`${p.host} did not come back within ${SYSTEMD_BOOT_TIMEOUT_MS / 1000} s after systemctl reboot; ${logFile}:\n${await logTail(logFile)}`);
}

/** Waits until systemd in the host reports the boot finished (running or degraded); returns that state. */
export async function waitSystemRunning(lab: string, host: string, timeoutS = 60): Promise<string> {
  const r = await execInHost(lab, host, ['timeout', String(timeoutS), 'systemctl', 'is-system-running', '--wait'], {
    timeoutMs: (timeoutS + 10) * 1000,
  });
  return r.stdout.trim() || `unknown (exit ${r.code})`;
}

