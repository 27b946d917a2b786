/** IPv4 and interface-name checks (pure; used by the inventory rules). */

/** Returns the address as a 32-bit unsigned number, or undefined when it is not dotted-quad IPv4. */
export function parseIPv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p, i) => p > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith('0')))) return undefined;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  address: string;
  prefix: number;
  /** Network address as text, e.g. 10.0.0.0/24 — identifies the segment. */
  network: string;
}

/** Returns the parsed CIDR, or a message saying what is wrong with it. */
export function parseCidr(s: string): Cidr | string {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m) return `"${s}" is not ADDRESS/PREFIX (e.g. 10.0.0.100/24)`;
  const addr = parseIPv4(m[1]);
  if (addr === undefined) return `"${m[1]}" is not a valid IPv4 address`;
  const prefix = Number(m[2]);
  if (prefix < 1 || prefix > 32) return `prefix /${prefix} must be between 1 and 32`;
  const mask = prefix === 32 ? 0xffffffff : (~(0xffffffff >>> prefix)) >>> 0;
  const net = (addr & mask) >>> 0;
  const broadcast = (net | (~mask >>> 0)) >>> 0;
  // /31 and /32 have no network/broadcast addresses (RFC 3021).
  if (prefix <= 30 && addr === net) return `${m[1]} is the network address of ${formatIPv4(net)}/${prefix}, not a host address: pick an address inside the subnet`;
  if (prefix <= 30 && addr === broadcast) return `${m[1]} is the broadcast address of ${formatIPv4(net)}/${prefix}, not a host address: pick an address inside the subnet`;
  return { address: m[1], prefix, network: `${formatIPv4(net)}/${prefix}` };
}

/** Returns why a Linux interface name is invalid, or undefined when it is fine. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > 15) return `interface name "${name}" must be 1-15 characters (Linux IFNAMSIZ)`;
  if (name === '.' || name === '..') return `interface name "${name}" is not allowed`;
  if (/[/:\s]/.test(name) || /[\x00-\x1f\x7f]/.test(name)) return `interface name "${name}" must not contain "/", ":" or whitespace`;
  // Linux allows more, but the name goes unquoted into keepalived.conf and scripts.
  if (!/^[A-Za-z0-9_.@-]+$/.test(name)) return `interface name "${name}" may contain only letters, digits, "_", ".", "@" and "-"`;
  return undefined;
}

/** Whether a host address is an acceptable SSH target: IPv4 or a DNS name. */
export function addressProblem(address: string): string | undefined {
  if (/^[0-9.]+$/.test(address)) return parseIPv4(address) === undefined ? `"${address}" is not a valid IPv4 address` : undefined;
  if (/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(address)) return undefined;
  return `"${address}" is neither an IPv4 address nor a host name`;
}
