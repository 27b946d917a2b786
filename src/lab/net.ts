/**
 * The lab's network: a bridge in the lab's own namespace, one veth per host (eth0 inside the host),
 * and one veth for the controller in the machine's namespace with an address in the lab's /24 and
 * the kernel's route for that /24 only. Hosts get no default route: no traffic leaves the segment.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { controllerIf, hostNetns, labNetns, subnetOf } from './names.js';

const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];
import { LabError, must, run } from './sh.js';

/** a.b.c.d → 32-bit number. */
function ipNum(ip: string): number {
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

/** Whether two IPv4 CIDRs overlap. */
export function cidrOverlap(a: string, b: string): boolean {
  const [aip, alen = '32'] = a.split('/');
  const [bip, blen = '32'] = b.split('/');
  const len = Math.min(Number(alen), Number(blen));
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return ((ipNum(aip) & mask) >>> 0) === ((ipNum(bip) & mask) >>> 0);
}

/** The IPv4 networks the machine already routes or has addresses in (the default route excluded). */
export async function machineNetworks(): Promise<Array<{ cidr: string; dev: string }>> {
  const out: Array<{ cidr: string; dev: string }> = [];
  const routes = JSON.parse((await must(['ip', '-j', '-4', 'route', 'show', 'table', 'all'])) || '[]') as Array<{
    dst: string;
    dev?: string;
    type?: string;
  }>;
  for (const r of routes) {
    if (r.dst === 'default' || r.dst === '0.0.0.0/0') continue;
    if (r.type === 'broadcast' || r.type === 'local') continue; // covered by the addresses below
    out.push({ cidr: r.dst, dev: r.dev ?? '?' });
  }
  const addrs = JSON.parse((await must(['ip', '-j', '-4', 'addr', 'show'])) || '[]') as Array<{
    ifname: string;
    addr_info?: Array<{ local: string; prefixlen: number }>;
  }>;
  for (const a of addrs) for (const i of a.addr_info ?? []) out.push({ cidr: `${i.local}/${i.prefixlen}`, dev: a.ifname });
  return out;
}

/** Why a /24 cannot be used, or undefined when it is free. */
export async function subnetConflict(subnet: string): Promise<string | undefined> {
  const hit = (await machineNetworks()).find((n) => cidrOverlap(n.cidr, subnet));
  return hit ? `${subnet} overlaps ${hit.cidr} (dev ${hit.dev}), which this machine already routes` : undefined;
}

const LOCK = '/run/rha/lab/.subnet.lock';

/** Runs fn while holding the machine-wide lock for choosing a lab subnet (labs may start concurrently). */
export async function withSubnetLock<T>(fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(path.dirname(LOCK), { recursive: true, mode: 0o700 });
  for (let i = 0; ; i++) {
    try {
      await fs.writeFile(LOCK, String(process.pid), { flag: 'wx' });
      break;
    } catch {
      const holder = Number(await fs.readFile(LOCK, 'utf8').catch(() => '0'));
      let alive = false;
      try {
        process.kill(holder, 0);
        alive = holder > 0;
      } catch {
        alive = false;
      }
      if (!alive || i > 300) await fs.rm(LOCK, { force: true });
      else await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(LOCK, { force: true });
  }
}

/**
 * The first three octets of the lab's /24. A requested one (`A.B.C.0/24`, private) is refused when
 * the machine already routes it; otherwise a free 10.213.X.0/24, X derived from the lab name when
 * free, else the next free one. Throws when the whole 10.213.0.0/16 is taken or routed (e.g. by a VPN).
 */
export async function allocatePrefix(name: string, requested?: string): Promise<string> {
  if (requested !== undefined) {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(requested);
    if (!m || m.slice(1).some((o) => Number(o) > 255) || !PRIVATE.some((p) => cidrOverlap(p, requested))) {
      throw new LabError(`--subnet ${requested}: expected a private /24 such as 10.213.7.0/24`);
    }
    const conflict = await subnetConflict(requested);
    if (conflict) throw new LabError(`${conflict}; choose another --subnet`);
    return m.slice(1).join('.');
  }
  const nets = await machineNetworks();
  const start = createHash('sha1').update(name).digest()[0] % 254;
  for (let i = 0; i < 254; i++) {
    const prefix = `10.213.${1 + ((start + i) % 254)}`;
    if (!nets.some((n) => cidrOverlap(n.cidr, subnetOf(prefix)))) return prefix;
  }
  const hit = nets.find((n) => cidrOverlap(n.cidr, '10.213.0.0/16'));
  throw new LabError(
    `no free /24 in 10.213.0.0/16 for the lab: ${hit ? `this machine routes ${hit.cidr} (dev ${hit.dev})` : 'all are taken by other labs'}`,
  );
}

/** Creates the lab namespace, its bridge and the controller's veth with its address. */
export async function createLabNetwork(name: string, prefix: string): Promise<void> {
  const ns = labNetns(name);
  const ctl = controllerIf(name);
  await must(['ip', 'netns', 'add', ns], { what: 'creating the lab network namespace' });
  await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  await must(['ip', '-n', ns, 'link', 'add', 'br0', 'type', 'bridge']);
  await must(['ip', '-n', ns, 'link', 'set', 'br0', 'up']);
  await must(['ip', 'link', 'add', ctl, 'type', 'veth', 'peer', 'name', 'ctl', 'netns', ns], { what: 'creating the controller link' });
  // No IPv6 link-local address on the machine's side: nothing of the lab talks on it but IPv4 in the /24.
  await run(['ip', 'link', 'set', 'dev', ctl, 'addrgenmode', 'none']);
  await must(['ip', '-n', ns, 'link', 'set', 'ctl', 'master', 'br0', 'up']);
  await must(['ip', 'addr', 'add', `${prefix}.1/24`, 'dev', ctl]);
  await must(['ip', 'link', 'set', ctl, 'up']);
}

/** A locally administered MAC address made from an IPv4 address (02:72:a:b:c:d; the lab's /24s are distinct on a machine) (pure). */
export function macFor(address: string): string {
  return ['02', '72', ...address.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

/**
 * Creates a host's namespace and plugs its eth0 into the lab bridge. With `pinNeighbour`, eth0
 * gets the MAC macFor(address) and the controller a permanent neighbour entry for it: the kernel's
 * neighbour table is machine-wide and overflows past gc_thresh3 (1024 by default) entries, and a
 * controller on the segment of 1000 hosts then loses ARP entries (connects hang in SYN-SENT).
 * Permanent entries are outside that limit. A real controller reaches that many hosts through a
 * router (one neighbour); the lab's sits on every host's segment.
 */
export async function createHostNetwork(name: string, host: string, address: string, opts: { pinNeighbour?: boolean } = {}): Promise<void> {
  const lab = labNetns(name);
  const ns = hostNetns(name, host);
  await must(['ip', 'netns', 'add', ns], { what: `creating ${host}'s network namespace` });
  const mac = opts.pinNeighbour ? ['address', macFor(address)] : [];
  await must(['ip', '-n', lab, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', ...mac, 'netns', ns]);
  if (opts.pinNeighbour) {
    await must(['ip', 'neigh', 'replace', address, 'lladdr', macFor(address), 'dev', controllerIf(name), 'nud', 'permanent'], {
      what: `pinning ${host}'s neighbour entry`,
    });
  }
  await must(['ip', '-n', lab, 'link', 'set', host, 'master', 'br0', 'up']);
  await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  await must(['ip', '-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await must(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
}

/**
 * A powered-off host's NIC: down, addresses gone (so it answers no ARP for an address a killed
 * keepalived left behind, like the VIP). Powering on restores only the host's own address, as a
 * reboot does.
 */
export async function setHostPower(name: string, host: string, address: string, state: 'on' | 'off'): Promise<void> {
  const ns = hostNetns(name, host);
  await must(['ip', '-n', ns, 'link', 'set', 'eth0', 'down'], { what: `powering ${host}'s NIC down` });
  await must(['ip', '-n', ns, 'addr', 'flush', 'dev', 'eth0']);
  if (state === 'off') return;
  await must(['ip', '-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await must(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'], { what: `powering ${host}'s NIC up` });
}

/** Pulls or plugs a host's cable: its port on the lab bridge goes down or up. */
export async function setHostLink(name: string, host: string, state: 'up' | 'down'): Promise<void> {
  await must(['ip', '-n', labNetns(name), 'link', 'set', host, state], { what: `setting ${host}'s link ${state}` });
}

/** Whether a host's port on the lab bridge is up. */
export async function hostLinkUp(name: string, host: string): Promise<boolean> {
  const r = await run(['ip', '-n', labNetns(name), '-j', 'link', 'show', host]);
  if (!r.ok) return false;
  const [l] = JSON.parse(r.stdout) as Array<{ flags: string[] }>;
  return !!l?.flags.includes('UP');
}

/** Names of all network namespaces on the machine. */
export async function listNetns(): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list']);
  if (!r.ok || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as Array<{ name: string }>).map((n) => n.name);
}

/** Process ids inside a network namespace. */
export async function netnsPids(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns]);
  return r.ok ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}
