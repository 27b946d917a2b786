/**
 * `rha init [DIR]`: a commented starter inventory for one pair (two hosts, one VIP) that
 * validates as written, with random secrets in files of mode 0600. It never overwrites anything.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ExitCode } from '../core/types.js';
import { packageRoot } from './paths.js';

/** The starter inventory; `schemaRef` is how the editor finds the JSON Schema. */
export function starterInventory(schemaRef: string): string {
  return `# yaml-language-server: $schema=${schemaRef}
# An rha inventory for one highly available Redis pair: two hosts, one virtual IP (VIP).
# Clients talk only to the VIP; keepalived moves it to the other host when Redis or the host fails.
# Check it without touching any host:  rha validate inventory.yaml
# Provision (dry run first):            rha provision inventory.yaml --check --diff

ssh:
  # rha logs in as this user. Not root? It uses sudo for the steps that need it (become).
  user: root
  # No private_key here: rha uses your ssh-agent (SSH_AUTH_SOCK), and honours ~/.ssh/config
  # (Host aliases, HostName, User, Port, IdentityFile, ProxyJump); settings here win over it.
  # private_key: ~/.ssh/id_ed25519
  # Hosts reachable only through a bastion: jump: bastion.example.net (or per host below).

hosts:
  # Name: address (IPv4 or a DNS name / ~/.ssh/config alias). Replace with your two servers.
  redis-a: 10.0.0.11
  redis-b: 10.0.0.12

clusters:
  cache:
    # Initial preference only: re-runs follow whichever node is the live master.
    master: redis-a
    replica: redis-b
    # A free address in the hosts' subnet; keepalived adds it to the master's interface.
    vip: 10.0.0.100/24
    interface: eth0
    redis:
      # Same password on both nodes (requirepass + masterauth), so either can be master.
      # Secrets are a literal, { env: NAME } or { file: PATH }; never printed by rha.
      password: { file: ./secrets/redis.pass }
      # Built from source by default (install: package uses the distribution's Redis).
      version: 7.0.15
      # Bytes or e.g. 2400mb; 0 = no limit, and then the kernel's OOM killer is the limit. Set about
      # 60% of the host's memory (room for a background save's copy-on-write); --check prints it.
      maxmemory: 0
      # Neither AOF nor RDB is refused unless you write persistence: none (a cache that may vanish).
      appendonly: true
      # Split-brain bound: a master whose replica has not acknowledged for this many seconds
      # refuses writes, so an isolated master loses at most this much. Writes also pause while
      # the replica is down. 0 disables it.
      min_replicas_max_lag: 10
    keepalived:
      # 1-255, the same on both nodes, unique per network segment (ask who else runs VRRP there).
      virtual_router_id: 51
      # VRRP authentication; keepalived uses the first 8 characters.
      auth_pass: { file: ./secrets/vrrp.pass }
      # The priority rule (rha validate checks it): replica < master < replica + |check.weight|.
      priority: { master: 150, replica: 140 }
`;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Writes DIR/inventory.yaml and DIR/secrets/{redis,vrrp}.pass (0600); exit 4 when any exists. */
export async function initCommand(dirArg: string | undefined, io = { out: process.stdout, err: process.stderr }): Promise<ExitCode> {
  const dir = resolve(dirArg ?? '.');
  const inventory = join(dir, 'inventory.yaml');
  const secrets = join(dir, 'secrets');
  const files = [inventory, join(secrets, 'redis.pass'), join(secrets, 'vrrp.pass')];
  const present = [];
  for (const f of files) if (await exists(f)) present.push(f);
  if (present.length) {
    io.err.write(`error: ${present.join(', ')} already exist${present.length === 1 ? 's' : ''}: rha init never overwrites files; pick another folder or remove them\n`);
    return ExitCode.invalidInput;
  }
  await fs.mkdir(secrets, { recursive: true, mode: 0o700 });
  // The schema ships with rha; point editors at the copy in this installation.
  const schema = join(packageRoot(), 'schema', 'inventory.schema.json');
  // A nearby copy (a clone) is named relatively; an installed one far away by file URL.
  const rel = relative(dir, schema);
  const ref = rel.startsWith('../../') ? pathToFileURL(schema).href : rel;
  // 'wx': fail rather than overwrite, even if a file appeared since the check above.
  await fs.writeFile(inventory, starterInventory(ref), { flag: 'wx', mode: 0o644 });
  await fs.writeFile(files[1], randomBytes(24).toString('base64url') + '\n', { flag: 'wx', mode: 0o600 });
  await fs.writeFile(files[2], randomBytes(6).toString('base64url') + '\n', { flag: 'wx', mode: 0o600 });
  const shown = relative(process.cwd(), dir) || '.';
  io.out.write(
    `wrote ${join(shown, 'inventory.yaml')} and random secrets in ${join(shown, 'secrets')}/ (mode 0600; keep them out of version control)\n` +
      `next: edit the two host addresses and the VIP, then\n` +
      `  rha validate ${join(shown, 'inventory.yaml')}\n` +
      `  rha provision ${join(shown, 'inventory.yaml')} --check --diff\n` +
      `warning: redis.maxmemory is 0 (no limit): the kernel's OOM killer would be Redis's memory limit. Set it to about 60% of the hosts' memory ` +
      `(${os.totalmem() >= 1024 ** 3 ? `${Math.floor((os.totalmem() / 1024 ** 2) * 0.6)}mb on a host like this one, ` : ''}e.g. 2400mb on 4 GB hosts); the --check run prints the figure for each host\n`,
  );
  return ExitCode.ok;
}
