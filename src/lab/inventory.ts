/**
 * The ready-to-use inventory a lab writes for its hosts (docs/design.md's native format): hosts
 * node1..nodeN, clusters pairing them two by two, random secrets in files of mode 0600.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { loginSshSection, type LabLogin } from './login.js';

export interface LabCluster {
  name: string;
  master: string;
  replica: string;
  vip: string;
  vrid: number;
}

/** Clusters pairing hosts two by two (an odd last host is left out): VIPs from .200, VRIDs from 51. */
export function pairHosts(hosts: string[], prefix: string): LabCluster[] {
  const out: LabCluster[] = [];
  for (let k = 0; k + 1 < hosts.length && k < 100; k += 2) {
    const i = k / 2;
    out.push({ name: `pair${i + 1}`, master: hosts[k], replica: hosts[k + 1], vip: `${prefix}.${200 + i}/24`, vrid: 51 + i });
  }
  return out;
}

async function writeSecret(file: string, value: string): Promise<void> {
  await fs.writeFile(file, `${value}\n`, { mode: 0o600 });
  await fs.chmod(file, 0o600);
}

/** Writes inventory.yaml and its secrets into the lab folder; returns the inventory's path. */
export async function writeLabInventory(opts: {
  dir: string;
  labName: string;
  hosts: Array<{ name: string; address: string }>;
  clusters: LabCluster[];
  redisSource: { path: string; sha256: string; version: string };
  /** The hosts' login: root (default) or a sudo user. */
  login?: LabLogin;
}): Promise<string> {
  const secrets = path.join(opts.dir, 'secrets');
  await fs.mkdir(secrets, { recursive: true, mode: 0o700 });
  const clusters: Record<string, unknown> = {};
  for (const c of opts.clusters) {
    // keepalived uses at most 8 characters of auth_pass.
    await writeSecret(path.join(secrets, `${c.name}.redis.pass`), randomBytes(24).toString('base64url'));
    await writeSecret(path.join(secrets, `${c.name}.vrrp.pass`), randomBytes(6).toString('base64url'));
    clusters[c.name] = {
      master: c.master,
      replica: c.replica,
      vip: c.vip,
      interface: 'eth0',
      redis: {
        version: opts.redisSource.version,
        password: { file: `./secrets/${c.name}.redis.pass` },
        source: { path: opts.redisSource.path, sha256: opts.redisSource.sha256 },
      },
      keepalived: { virtual_router_id: c.vrid, auth_pass: { file: `./secrets/${c.name}.vrrp.pass` } },
    };
  }
  const doc = {
    ssh: loginSshSection(opts.login),
    hosts: Object.fromEntries(opts.hosts.map((h) => [h.name, h.address])),
    ...(opts.clusters.length ? { clusters } : {}),
  };
  const header =
    `# Written by \`rha lab up\` for lab "${opts.labName}": throwaway hosts on this machine.\n` +
    `# Removed by \`rha lab down\`. Secrets are random, in ./secrets (mode 0600).\n`;
  const file = path.join(opts.dir, 'inventory.yaml');
  await fs.writeFile(file, header + stringify(doc), { mode: 0o600 });
  await fs.chmod(file, 0o600);
  return file;
}
