/**
 * Every namespace, interface and folder of a lab carries its name, so `down` finds everything
 * even after a crash, by prefix as well as from the state file.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { LabError } from './sh.js';

export const DEFAULT_LAB = 'default';
const LAB_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** The name itself when valid; throws a LabError saying what names are allowed. */
export function checkLabName(name: string): string {
  if (!LAB_NAME.test(name)) {
    throw new LabError(`invalid lab name ${JSON.stringify(name)}: use 1-32 of a-z 0-9 - (starting with a letter or digit)`);
  }
  return name;
}

/**
 * A short form of the name for interface names in the machine's own namespace (at most 15
 * characters: `rha-` + tag + `-c`): the name when short, else a prefix and a hash of it.
 */
export function labTag(name: string): string {
  if (name.length <= 9) return name;
  return name.slice(0, 4) + createHash('sha1').update(name).digest('hex').slice(0, 5);
}

/** The lab's own network namespace, holding the bridge every host and the controller plug into. */
export function labNetns(name: string): string {
  return `rha-${name}-lab`;
}

/** The network namespace of one host. */
export function hostNetns(name: string, host: string): string {
  return `rha-${name}-${host}`;
}

/** Whether a network namespace name belongs to the lab (exactly: lab `a` does not own `rha-a-b-lab`). */
export function ownsNetns(name: string, netns: string): boolean {
  const esc = name.replace(/[-]/g, '\\-');
  return new RegExp(`^rha-${esc}-(lab|node\\d+)$`).test(netns);
}

/** The controller's veth in the machine's namespace (the only interface the lab adds there). */
export function controllerIf(name: string): string {
  return `rha-${labTag(name)}-c`;
}

/** Folder of a lab's state, keys, inventory and logs. */
export function labDir(name: string): string {
  return path.join(process.env.RHA_LAB_RUN_DIR || '/run/rha/lab', name);
}

/** Folder of a lab's host disks (overlay upper/work dirs): on disk, since Redis builds write ~300 MB per host. */
export function labDiskDir(name: string): string {
  return path.join(process.env.RHA_LAB_DISK_DIR || '/var/lib/rha/lab', name);
}

/** node1, node2, ... */
export function hostName(index: number): string {
  return `node${index + 1}`;
}

/** The lab's /24 from its first three octets: `10.213.7` → `10.213.7.0/24`. */
export function subnetOf(prefix: string): string {
  return `${prefix}.0/24`;
}
