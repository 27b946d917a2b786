/**
 * Ansible's side of the benchmark: Debian's ansible-core installed when missing, and an inventory
 * generated from the lab's (same addresses, key and known_hosts; `cluster` and `node` host vars
 * taken from rha's resolved inventory so both tools render the same values).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Inventory } from '../core/types.js';
import { timed, mustSucceed } from './proc.js';

/** ansible-playbook's version line, installing Debian's ansible-core first when it is missing. */
export async function ensureAnsible(log: (line: string) => void): Promise<string> {
  const probe = await timed(['ansible-playbook', '--version']);
  if (probe.code !== 0) {
    log('installing ansible-core (Debian package) for the side-by-side runs');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    mustSucceed('apt-get update', await timed(['apt-get', 'update', '-qq'], { env }));
    mustSucceed('apt-get install ansible-core', await timed(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'ansible-core'], { env }));
  }
  const v = mustSucceed('ansible-playbook --version', await timed(['ansible-playbook', '--version']));
  return v.stdout.split('\n')[0].trim();
}

/** The Ansible inventory (YAML) for a loaded rha inventory: every cluster host, with its address and vars. */
export function ansibleInventory(inv: Inventory, opts: { privateKey: string; knownHosts: string }): string {
  const hosts: Record<string, unknown> = {};
  for (const name of inv.groups.get('clusters') ?? []) {
    const h = inv.hosts.get(name)!;
    hosts[name] = {
      ansible_host: h.connection.address,
      ansible_port: h.connection.port,
      cluster: h.vars.cluster,
      node: h.vars.node,
    };
  }
  return stringify({
    all: {
      vars: {
        ansible_user: 'root',
        ansible_ssh_private_key_file: opts.privateKey,
        // Host key checking stays on, against the lab's known_hosts (the same file rha verifies with).
        ansible_ssh_common_args: `-o UserKnownHostsFile=${opts.knownHosts} -o StrictHostKeyChecking=yes`,
      },
      children: { clusters: { hosts } },
    },
  });
}

/** Writes the inventory (mode 0600: it holds the lab's Redis passwords) into `dir`; returns its path. */
export async function writeAnsibleInventory(dir: string, inv: Inventory, opts: { privateKey: string; knownHosts: string }): Promise<string> {
  const file = path.join(dir, 'inventory.yaml');
  await fs.writeFile(file, ansibleInventory(inv, opts), { mode: 0o600 });
  return file;
}

/** The environment for ansible-playbook: bench/ansible.cfg, and its temp files inside `dir`. */
export function ansibleEnv(benchDir: string, dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ANSIBLE_CONFIG: path.join(benchDir, 'ansible.cfg'),
    ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(dir, 'cp'),
    ANSIBLE_LOCAL_TEMP: path.join(dir, 'tmp'),
    ANSIBLE_HOME: path.join(dir, 'home'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
  };
}
