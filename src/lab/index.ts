/**
 * `rha lab`: throwaway real Linux hosts on this machine (namespaces + overlay root + sshd), for
 * the demo, the tests and users' CI smoke runs. See ../../docs/design.md and lab.md.
 */
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCache, type CacheInfo } from './cache.js';
import {
  execInHost,
  findHostInit,
  hostDiskDir,
  hostKeyLines,
  startHost,
  stopHost,
  wipeHostDisk,
} from './host.js';
import { pairHosts, writeLabInventory, type LabCluster } from './inventory.js';
import { LAB_LOGIN_USER, ensureLoginUser, writeLoginPassword, type LabLogin } from './login.js';
import {
  DEFAULT_LAB,
  checkLabName,
  controllerIf,
  hostName,
  hostNetns,
  labDir,
  labDiskDir,
  labNetns,
  ownsNetns,
  subnetOf,
} from './names.js';
import {
  allocatePrefix,
  createHostNetwork,
  createLabNetwork,
  hostLinkUp,
  listNetns,
  netnsPids,
  setHostLink,
  setHostPower,
  withSubnetLock,
} from './net.js';
import { LabError, have, must, run } from './sh.js';
import { checkSystemdMachine, rebootSystemdHost, startSystemdHost } from './systemd.js';

export { ensureCache, cacheDir, REDIS_SOURCE, REPO_PACKAGES, ROOTFS_INCLUDE } from './cache.js';
export { LabError } from './sh.js';
export { DEFAULT_LAB } from './names.js';
export type { LabCluster } from './inventory.js';
export { LAB_LOGINS, LAB_LOGIN_USER, type LabLogin } from './login.js';

export interface LabHost {
  name: string;
  address: string;
  netns: string;
  running: boolean;
  pid?: number;
  /** Whether the host's cable (its port on the lab bridge) is plugged in. */
  linkUp?: boolean;
}

export interface LabInfo {
  name: string;
  /** namespace: sshd as PID 1 of each host; systemd: each host boots systemd (rha lab up --systemd). */
  kind: 'namespace' | 'systemd';
  dir: string;
  subnet: string;
  controllerAddress: string;
  hosts: LabHost[];
  clusters: LabCluster[];
  inventoryPath: string;
  privateKeyPath: string;
  knownHostsPath: string;
  redisSource: { path: string; sha256: string; version: string };
  /** The inventory's login: root, or the sudo user LAB_LOGIN_USER. */
  login: LabLogin;
}

interface LabState {
  version: 1;
  name: string;
  /** First three octets of the lab's /24. */
  prefix: string;
  python: boolean;
  /** Absent in labs made before logins existed: root. */
  login?: LabLogin;
  /** Hosts boot systemd with systemd-nspawn (absent in labs made before it existed). */
  systemd?: boolean;
  hosts: Array<{ name: string; address: string }>;
  clusters: LabCluster[];
  cache: CacheInfo;
  createdAt: string;
}

const MAX_HOSTS = 100;

// ---------------------------------------------------------------------------------------------
// Machine checks: clear errors before anything is created.

/** Resolves when this machine can run a lab; throws a LabError naming what is missing. */
export async function checkMachine(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new LabError('rha lab must run as root: it creates network namespaces, interfaces and mounts (try: sudo rha lab ...)');
  }
  const missing: string[] = [];
  for (const [prog, pkg] of [
    ['ip', 'iproute2'],
    ['unshare', 'util-linux'],
    ['nsenter', 'util-linux'],
    ['ssh-keygen', 'openssh-client'],
    ['bash', 'bash'],
    ['debootstrap', 'debootstrap'],
    ['dpkg-scanpackages', 'dpkg-dev'],
    ['apt-get', 'apt'],
  ] as const) {
    if (!(await have(prog))) missing.push(`${prog} (package ${pkg})`);
  }
  if (missing.length) throw new LabError(`rha lab needs these programs: ${missing.join(', ')}`);
  const ns = await run(['unshare', '--mount', '--pid', '--uts', '--ipc', '--net', '--fork', '--propagation', 'private', 'true']);
  if (!ns.ok) {
    throw new LabError(`Linux namespaces are unavailable here (unshare --mount --pid --uts --ipc --net failed): ${ns.stderr.trim()}`);
  }
  const probe = await fs.mkdtemp(path.join(os.tmpdir(), 'rha-overlay-'));
  try {
    const ov = await run([
      'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
      'mkdir l u w m && mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w m',
    ], { cwd: probe });
    if (!ov.ok) throw new LabError(`overlayfs is unavailable here (a test mount failed): ${ov.stderr.trim()}`);
  } finally {
    await fs.rm(probe, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// State

function statePath(name: string): string {
  return path.join(labDir(name), 'state.json');
}

async function readState(name: string): Promise<LabState | undefined> {
  try {
    const s = JSON.parse(await fs.readFile(statePath(name), 'utf8')) as LabState & { octet?: number };
    // Labs made before the prefix was stored kept only the third octet of 10.213.X.0/24.
    if (!s.prefix && s.octet !== undefined) s.prefix = `10.213.${s.octet}`;
    return s;
  } catch {
    return undefined;
  }
}

async function writeState(s: LabState): Promise<void> {
  const tmp = `${statePath(s.name)}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
  await fs.rename(tmp, statePath(s.name));
}

async function describe(s: LabState): Promise<LabInfo> {
  const dir = labDir(s.name);
  const { prefix } = s;
  const subnet = subnetOf(prefix);
  const hosts: LabHost[] = [];
  for (const h of s.hosts) {
    const pid = await findHostInit(s.name, h.name);
    hosts.push({
      name: h.name,
      address: h.address,
      netns: hostNetns(s.name, h.name),
      running: pid !== undefined,
      ...(pid !== undefined ? { pid } : {}),
      linkUp: await hostLinkUp(s.name, h.name),
    });
  }
  return {
    name: s.name,
    kind: s.systemd ? 'systemd' : 'namespace',
    dir,
    subnet,
    controllerAddress: `${prefix}.1`,
    hosts,
    clusters: s.clusters,
    inventoryPath: path.join(dir, 'inventory.yaml'),
    privateKeyPath: path.join(dir, 'id_ed25519'),
    knownHostsPath: path.join(dir, 'known_hosts'),
    redisSource: s.cache.redisSource,
    login: s.login ?? 'root',
  };
}

async function requireState(name: string): Promise<LabState> {
  const s = await readState(checkLabName(name));
  if (!s) throw new LabError(`no lab named ${name} is up (start one: rha lab up${name === DEFAULT_LAB ? '' : ` --name ${name}`})`);
  return s;
}

function requireHost(s: LabState, host: string): { name: string; address: string } {
  const h = s.hosts.find((x) => x.name === host);
  if (!h) throw new LabError(`lab ${s.name} has no host ${host} (hosts: ${s.hosts.map((x) => x.name).join(', ')})`);
  return h;
}

async function startLabHost(s: LabState, h: { name: string; address: string }): Promise<number> {
  for (const p of [s.cache.rootfs, s.cache.repo]) {
    if (!existsSync(p)) throw new LabError(`the lab's cache ${p} is gone; recreate the lab (rha lab down, rha lab up)`);
  }
  const p = { lab: s.name, host: h.name, address: h.address, rootfs: s.cache.rootfs, repo: s.cache.repo };
  const pid = await (s.systemd ? startSystemdHost(p) : startHost(p));
  await ensureLoginUser(s.name, labDir(s.name), h.name, s.login);
  return pid;
}

async function writeKnownHosts(s: LabState): Promise<void> {
  const lines: string[] = [];
  for (const h of s.hosts) lines.push(...(await hostKeyLines(s.name, h.name, h.address)));
  await fs.writeFile(path.join(labDir(s.name), 'known_hosts'), lines.join('\n') + '\n', { mode: 0o600 });
}

// ---------------------------------------------------------------------------------------------
// Public API

/** Brings up a lab of fresh hosts and returns what it made (hosts, inventory, keys). */
export async function labUp(
  opts: {
    name?: string;
    hosts?: number;
    python?: boolean;
    /** How the inventory logs in: root (default), or the sudo user LAB_LOGIN_USER with or without a sudo password. */
    login?: LabLogin;
    /** Hosts boot systemd as PID 1 (systemd-nspawn) instead of running sshd as PID 1. */
    systemd?: boolean;
    /**
     * Every host gets the same SSH host keys, made once for the lab, instead of its own from
     * `ssh-keygen -A` (an RSA key costs ~1.6 s of CPU per host: 1000 hosts would take minutes).
     * For benchmarks at scale only: a replaced host then keeps the shared key, not a new one.
     */
    sharedHostKeys?: boolean;
    /**
     * The controller keeps a permanent neighbour (ARP) entry per host (net.ts, createHostNetwork):
     * for labs that together hold more hosts than the machine's neighbour table (1024 by default).
     */
    pinNeighbours?: boolean;
    /** Remove a lab of this name first instead of refusing. */
    recreate?: boolean;
    /** A private /24 of the caller's choice (refused when routed); default a free 10.213.X.0/24. */
    subnet?: string;
    log?: (line: string) => void;
    /** Aborting stops the build between steps and removes what was made (Ctrl-C). */
    signal?: AbortSignal;
  } = {},
): Promise<LabInfo> {
  const name = checkLabName(opts.name ?? DEFAULT_LAB);
  const count = opts.hosts ?? 2;
  const log = opts.log ?? (() => undefined);
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) {
    throw new LabError(`--hosts must be a whole number from 1 to ${MAX_HOSTS}, not ${count}`);
  }
  await checkMachine();
  if (opts.systemd) await checkSystemdMachine();
  const existing = await readState(name);
  if (existing && !opts.recreate) {
    throw new LabError(
      `lab ${name} is already up (${existing.hosts.length} hosts in ${subnetOf(existing.prefix)}); ` +
        `remove it first (rha lab down${name === DEFAULT_LAB ? '' : ` --name ${name}`}) or use --recreate`,
    );
  }
  const stopIfAborted = () => {
    if (opts.signal?.aborted) throw new LabError(`interrupted: lab ${name} removed`);
  };
  // Leftovers of a crashed or interrupted run (or the lab being recreated) never break this one.
  await labDown(name);
  const cache = await ensureCache({ python: opts.python, systemd: opts.systemd, log });
  stopIfAborted();

  const dir = labDir(name);
  await fs.mkdir(path.dirname(dir), { recursive: true, mode: 0o700 });
  await fs.mkdir(dir, { mode: 0o700 });
  await fs.mkdir(labDiskDir(name), { recursive: true, mode: 0o700 });
  try {
    await must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `rha-lab-${name}`, '-f', path.join(dir, 'id_ed25519')], {
      what: 'generating the lab key',
    });
    const state = await withSubnetLock(async () => {
      const prefix = await allocatePrefix(name, opts.subnet);
      const hosts = Array.from({ length: count }, (_, i) => ({ name: hostName(i), address: `${prefix}.${11 + i}` }));
      const s: LabState = {
        version: 1,
        name,
        prefix,
        python: !!opts.python,
        ...(opts.login && opts.login !== 'root' ? { login: opts.login } : {}),
        ...(opts.systemd ? { systemd: true } : {}),
        hosts,
        clusters: pairHosts(hosts.map((h) => h.name), prefix),
        cache,
        createdAt: new Date().toISOString(),
      };
      // Written before anything else exists, so `down` after a crash knows what to remove.
      await writeState(s);
      await createLabNetwork(name, prefix);
      return s;
    });
    const { prefix } = state;
    await fs.writeFile(
      path.join(dir, 'hosts'),
      ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', `${prefix}.1 controller`, ...state.hosts.map((h) => `${h.address} ${h.name}`)].join('\n') + '\n',
    );
    if (state.login === 'sudo') await writeLoginPassword(dir);
    log(`starting ${count} host${count > 1 ? 's' : ''} in ${subnetOf(prefix)}${state.login ? `, login ${LAB_LOGIN_USER} (${state.login})` : ''}`);
    const hostKeys = opts.sharedHostKeys ? await makeSharedHostKeys(dir) : undefined;
    for (const h of state.hosts) {
      stopIfAborted();
      await createHostNetwork(name, h.name, h.address, { pinNeighbour: opts.pinNeighbours });
      if (hostKeys) await seedHostKeys(hostKeys, hostDiskDir(name, h.name));
    }
    stopIfAborted();
    await Promise.all(state.hosts.map((h) => startLabHost(state, h)));
    stopIfAborted();
    await writeKnownHosts(state);
    await writeLabInventory({ dir, labName: name, hosts: state.hosts, clusters: state.clusters, redisSource: cache.redisSource, login: state.login });
    return await describe(state);
  } catch (e) {
    await labDown(name).catch(() => undefined);
    throw e;
  }
}

/** One set of SSH host keys for every host of the lab (`sharedHostKeys`), in the lab folder; returns its etc/ssh folder. */
async function makeSharedHostKeys(dir: string): Promise<string> {
  const keys = path.join(dir, 'host-keys');
  await fs.mkdir(path.join(keys, 'etc', 'ssh'), { recursive: true, mode: 0o700 });
  // ssh-keygen -A -f PREFIX writes PREFIX/etc/ssh/ssh_host_*_key{,.pub}: every type sshd's -A would make.
  await must(['ssh-keygen', '-A', '-f', keys], { what: 'generating the lab\'s shared host keys' });
  return path.join(keys, 'etc', 'ssh');
}

/** Puts the shared host keys into a host's overlay upper dir before it starts: its `ssh-keygen -A` then finds them all. */
async function seedHostKeys(from: string, disk: string): Promise<void> {
  const to = path.join(disk, 'upper', 'etc', 'ssh');
  await fs.mkdir(to, { recursive: true, mode: 0o755 });
  for (const f of await fs.readdir(from)) await fs.copyFile(path.join(from, f), path.join(to, f));
}

/** Removes a lab entirely (hosts, namespaces, interfaces, mounts, folders); idempotent, also after a crash. */
export async function labDown(name: string = DEFAULT_LAB): Promise<void> {
  checkLabName(name);
  const all = (await listNetns()).filter((ns) => ownsNetns(name, ns));
  const hostNs = all.filter((ns) => ns !== labNetns(name));
  // Every process of a host lives in its network namespace: killing them all ends the host.
  for (const ns of [...hostNs, ...all.filter((ns) => ns === labNetns(name))]) {
    for (let i = 0; i < 100; i++) {
      const pids = await netnsPids(ns);
      if (!pids.length) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  for (const ns of [...hostNs, ...all.filter((ns) => ns === labNetns(name))]) {
    const r = await run(['ip', 'netns', 'delete', ns]);
    if (!r.ok && (await listNetns()).includes(ns)) throw new LabError(`could not delete network namespace ${ns}: ${r.stderr.trim()}`);
  }
  // The controller veth dies with its peer in the lab namespace; this covers a half-made one.
  const ctl = controllerIf(name);
  if ((await run(['ip', 'link', 'show', ctl])).ok) await run(['ip', 'link', 'delete', ctl]);
  // Nothing should be mounted in the machine's namespace, but never delete through a mount.
  const roots = [labDir(name), labDiskDir(name)];
  const mounts = (await fs.readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && roots.some((r) => m === r || m.startsWith(r + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run(['umount', '-l', m]);
  for (const r of roots) await fs.rm(r, { recursive: true, force: true });
}

/** The lab's hosts and files with live state (running, link), or undefined when no such lab is up. */
export async function labStatus(name: string = DEFAULT_LAB): Promise<LabInfo | undefined> {
  const s = await readState(checkLabName(name));
  return s ? describe(s) : undefined;
}

/** Names of the labs that have state on this machine. */
export async function labList(): Promise<string[]> {
  const base = path.dirname(labDir(DEFAULT_LAB));
  const entries = await fs.readdir(base).catch(() => [] as string[]);
  return entries.filter((e) => existsSync(path.join(base, e, 'state.json'))).sort();
}

/**
 * Replaces a host by a blank machine at the same address: disk wiped, new SSH host keys. The lab's
 * known_hosts is left alone on purpose (rha must see the changed key and refuse); returns the host.
 */
export async function labReplace(name: string, host: string): Promise<LabHost> {
  const s = await requireState(name);
  const h = requireHost(s, host);
  await stopHost(s.name, h.name);
  await wipeHostDisk(s.name, h.name);
  // A new machine has only its own address (not a VIP the old one's killed keepalived left).
  await setHostPower(s.name, h.name, h.address, 'on');
  const pid = await startLabHost(s, h);
  return { name: h.name, address: h.address, netns: hostNetns(s.name, h.name), running: true, pid, linkUp: await hostLinkUp(s.name, h.name) };
}

/** Puts a host's current SSH host keys into the lab's known_hosts (after a replace); returns the new lines. */
export async function labAcceptHostKey(name: string, host: string): Promise<string[]> {
  const s = await requireState(name);
  const h = requireHost(s, host);
  const file = path.join(labDir(s.name), 'known_hosts');
  const fresh = await hostKeyLines(s.name, h.name, h.address);
  const kept = (await fs.readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l.trim() && l.split(' ')[0] !== h.address);
  await fs.writeFile(file, [...kept, ...fresh].join('\n') + '\n', { mode: 0o600 });
  return fresh;
}

/**
 * Runs argv inside a host's namespaces and root (not over SSH); resolves with its exit code and
 * output (a non-zero exit is a result) once its output pipes close: a daemon started this way
 * must redirect its output (`</dev/null >/dev/null 2>&1`), as over SSH.
 */
export async function labExec(
  name: string,
  host: string,
  argv: string[],
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const s = await requireState(name);
  requireHost(s, host);
  return execInHost(s.name, host, argv, opts);
}

/**
 * Sends a signal (default KILL) to every process of a host with this exact name; returns how many.
 * A KILL stops them all first: pkill signals one process after another, and a process that outlives
 * its parent by those microseconds may run cleanup code (keepalived's children get a SIGTERM when
 * their parent dies, and remove the VIP). Killed means that no process of the name ran another line.
 */
export async function labKill(name: string, host: string, processName: string, signal = 'KILL'): Promise<number> {
  const sig = signal.replace(/^SIG/, '');
  if (sig === 'KILL' || sig === '9') await labExec(name, host, ['pkill', '--signal', 'STOP', '-x', processName]);
  const r = await labExec(name, host, ['pkill', '--count', '--signal', sig, '-x', processName]);
  if (r.code === 1) return 0;
  if (r.code !== 0) throw new LabError(`pkill ${processName} on ${host} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return Number(r.stdout.trim()) || 0;
}

/** Takes a host's link down (cable pulled) or up again. */
export async function labLink(name: string, host: string, state: 'up' | 'down'): Promise<void> {
  const s = await requireState(name);
  requireHost(s, host);
  await setHostLink(s.name, host, state);
}

/** Stops a host entirely (every process killed, as on power loss); its disk is kept. */
export async function labStopHost(name: string, host: string): Promise<void> {
  const s = await requireState(name);
  const h = requireHost(s, host);
  await stopHost(s.name, host);
  await setHostPower(s.name, host, h.address, 'off');
}

/** Starts a stopped host again with its disk (and SSH host keys) as it was. */
export async function labStartHost(name: string, host: string): Promise<void> {
  const s = await requireState(name);
  const h = requireHost(s, host);
  if (await findHostInit(s.name, h.name)) return;
  await setHostPower(s.name, host, h.address, 'on');
  await startLabHost(s, h);
}

/**
 * Reboots a systemd host with `systemctl reboot` inside it (services stop in order, the disk is
 * kept, the NIC comes back with the host's own address only); resolves once sshd answers again.
 */
export async function labReboot(name: string, host: string): Promise<LabHost> {
  const s = await requireState(name);
  const h = requireHost(s, host);
  if (!s.systemd) throw new LabError(`lab ${s.name} runs sshd as PID 1, not systemd: reboot needs a lab made with rha lab up --systemd (stop + start is the nearest)`);
  const pid = await rebootSystemdHost({ lab: s.name, host: h.name, address: h.address });
  return { name: h.name, address: h.address, netns: hostNetns(s.name, h.name), running: true, pid, linkUp: await hostLinkUp(s.name, h.name) };
}

/** Folder of a host's disk (overlay upper dir = what changed on the host), for tests and debugging. */
export function labHostDisk(name: string, host: string): string {
  return path.join(hostDiskDir(name, host), 'upper');
}

/**
 * A second network segment behind a bastion: `hidden` hosts move off the lab bridge onto a bridge
 * of their own (br1) that the controller is not on; `bastion` gets a second NIC (eth1) on it and a
 * route to each hidden host. Addresses stay the same, so sshd (bound to its address) keeps
 * serving; only the bastion can reach the hidden hosts, as with a real jump host.
 */
export async function labHideBehind(name: string, bastion: string, hidden: string[]): Promise<void> {
  const state = await readState(name);
  if (!state) throw new LabError(`no lab named "${name}" (rha lab up --name ${name})`);
  const addr = (h: string) => {
    const a = state.hosts.find((x) => x.name === h)?.address;
    if (!a) throw new LabError(`lab "${name}" has no host "${h}"`);
    return a;
  };
  addr(bastion);
  const lab = labNetns(name);
  if (!(await run(['ip', '-n', lab, 'link', 'show', 'br1'])).ok) {
    await must(['ip', '-n', lab, 'link', 'add', 'br1', 'type', 'bridge'], { what: 'creating the second segment' });
    await must(['ip', '-n', lab, 'link', 'set', 'br1', 'up']);
    const port = `${bastion}-s2`.slice(0, 15);
    await must(['ip', '-n', lab, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', hostNetns(name, bastion)], { what: `giving ${bastion} a second NIC` });
    await must(['ip', '-n', lab, 'link', 'set', port, 'master', 'br1', 'up']);
    await must(['ip', '-n', hostNetns(name, bastion), 'link', 'set', 'eth1', 'up']);
  }
  for (const h of hidden) {
    await must(['ip', '-n', lab, 'link', 'set', h, 'nomaster'], { what: `unplugging ${h} from the lab bridge` });
    await must(['ip', '-n', lab, 'link', 'set', h, 'master', 'br1', 'up'], { what: `plugging ${h} into the second segment` });
    await must(['ip', '-n', hostNetns(name, bastion), 'route', 'replace', `${addr(h)}/32`, 'dev', 'eth1']);
  }
}
