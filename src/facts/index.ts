/**
 * Host facts in one round-trip: one POSIX sh script prints KEY=VALUE lines between two markers,
 * and a pure parser turns them into HostFacts. The script needs only sh, uname, id, sed and
 * (for interfaces) iproute2: nothing a minimal Debian lacks, no python.
 */
import { describeFailure, type Command } from '../core/command.js';
import type { Connection, HostFacts } from '../core/types.js';

export const FACTS_BEGIN = '@@rha-facts-v1-begin@@';
export const FACTS_END = '@@rha-facts-v1-end@@';

/**
 * The fact-gathering script. Every probe tolerates a missing tool (prints nothing for it). Files
 * are read with the shell's own `read`: each external program is a fork and exec on the host,
 * and at 100 hosts those add up (4 here: uname, id, ip, nproc).
 */
export const FACTS_SCRIPT = [
  `echo '${FACTS_BEGIN}'`,
  // GNU and busybox uname print the fields in this order whatever the flags' order: n, r, m.
  `set -- $(uname -n -r -m)`,
  `echo "hostname=$1"; echo "kernel=$2"; echo "arch=$3"`,
  `for f in /etc/os-release /usr/lib/os-release; do if [ -r "$f" ]; then while IFS= read -r l || [ -n "$l" ]; do echo "os.$l"; done < "$f"; break; fi; done`,
  `for p in apt-get dnf yum; do if command -v "$p" >/dev/null 2>&1; then echo "pkg=$p"; fi; done`,
  `if [ -d /run/systemd/system ]; then echo "systemd_run=yes"; fi`,
  `c=; [ -r /proc/1/comm ] && read -r c < /proc/1/comm; echo "pid1=$c"`,
  `echo "uid=$(id -u)"`,
  `if command -v sudo >/dev/null 2>&1; then echo "sudo=yes"; fi`,
  `if command -v ip >/dev/null 2>&1; then ip -o -4 addr show 2>/dev/null | while IFS= read -r l; do echo "ip4=$l"; done; fi`,
  `echo "nproc=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"`,
  `while read -r k v _; do if [ "$k" = MemTotal: ]; then echo "memkb=$v"; break; fi; done < /proc/meminfo`,
  `echo '${FACTS_END}'`,
].join('\n');

/** The Command that gathers facts (plain sh, no become: facts describe the login user too). */
export function factsCommand(): Command {
  return { argv: ['sh', '-c', FACTS_SCRIPT], timeoutMs: 60_000 };
}

/** os-release values may be quoted ("..." or '...') with backslash escapes inside double quotes. */
function unquoteOsRelease(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
  if (t.length >= 2 && t.startsWith("'") && t.endsWith("'")) return t.slice(1, -1);
  return t;
}

const RHEL_IDS = new Set(['rhel', 'centos', 'rocky', 'almalinux', 'fedora', 'ol', 'amzn', 'scientific']);
const DEBIAN_IDS = new Set(['debian', 'ubuntu', 'raspbian', 'linuxmint', 'devuan', 'kali', 'pop']);

/** HostFacts from the script's output; throws if the markers are missing (not our script's output). */
export function parseFacts(output: string): HostFacts {
  const begin = output.indexOf(FACTS_BEGIN);
  const end = output.indexOf(FACTS_END, begin + 1);
  if (begin < 0 || end < 0) throw new Error('fact output is incomplete (section markers missing)');
  const lines = output.slice(begin + FACTS_BEGIN.length, end).split('\n');

  const kv = new Map<string, string>();
  const os = new Map<string, string>();
  const pkgs: string[] = [];
  const ipLines: string[] = [];
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key.startsWith('os.')) os.set(key.slice(3), unquoteOsRelease(value));
    else if (key === 'pkg') pkgs.push(value.trim());
    else if (key === 'ip4') ipLines.push(value);
    else kv.set(key, value.trim());
  }

  const osId = (os.get('ID') ?? 'unknown').toLowerCase();
  const like = (os.get('ID_LIKE') ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const family: HostFacts['osFamily'] =
    DEBIAN_IDS.has(osId) || like.includes('debian') || like.includes('ubuntu')
      ? 'debian'
      : RHEL_IDS.has(osId) || like.some((l) => RHEL_IDS.has(l))
        ? 'rhel'
        : 'unknown';

  // dnf before yum: on RHEL 8+ yum is a compatibility alias of dnf.
  const packageManager: HostFacts['packageManager'] = pkgs.includes('apt-get')
    ? 'apt'
    : pkgs.includes('dnf')
      ? 'dnf'
      : pkgs.includes('yum')
        ? 'yum'
        : 'none';

  const interfaces: Record<string, string[]> = {};
  for (const l of ipLines) {
    // `2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0\       valid_lft forever ...`
    const m = /^\s*\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(l);
    if (!m) continue;
    const name = m[1].replace(/@.*$/, '');
    (interfaces[name] ??= []).push(m[2]);
  }

  const uid = kv.get('uid');
  const int = (v: string | undefined) => {
    const n = Number.parseInt(v ?? '', 10);
    return Number.isFinite(n) ? n : 0;
  };
  return {
    hostname: kv.get('hostname') ?? '',
    osId,
    osVersion: os.get('VERSION_ID') ?? '',
    osFamily: family,
    arch: kv.get('arch') ?? '',
    kernel: kv.get('kernel') ?? '',
    packageManager,
    // Both, because /run/systemd/system can exist in a container whose PID 1 is something else.
    serviceManager: kv.get('systemd_run') === 'yes' && kv.get('pid1') === 'systemd' ? 'systemd' : 'plain',
    isRoot: uid === '0',
    hasSudo: kv.get('sudo') === 'yes',
    interfaces,
    cpus: Math.max(1, int(kv.get('nproc'))),
    memoryMb: Math.floor(int(kv.get('memkb')) / 1024),
  };
}

/** The host's facts, gathered in one exec; throws if the script fails (the host is unusable then). */
export async function gatherFacts(conn: Connection): Promise<HostFacts> {
  const result = await conn.exec(factsCommand());
  if (!result.ok) throw new Error(`gathering facts on ${conn.hostName} failed: ${describeFailure(result)}`);
  try {
    return parseFacts(result.stdout);
  } catch (err) {
    throw new Error(`gathering facts on ${conn.hostName}: ${(err as Error).message}`);
  }
}
