/**
 * An Ansible YAML inventory and an INI one (with group_vars/all.yml) for the lab's hosts produce
 * the same plan as the lab's native inventory: `rha provision --check` output, line for line, once
 * the inventory path is normalised.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { useLab } from '../support/lab.js';
import { rha } from '../support/rha.js';

const lab = useLab('ansinv', 2);

/**
 * The plain output per host (hosts run in parallel, so only each host's own order is stable),
 * without timings and with the inventory's path made neutral.
 */
function plan(out: string, inventory: string): Record<string, string[]> {
  const per: Record<string, string[]> = {};
  let host = '-';
  for (const raw of out.replaceAll(inventory, 'INVENTORY').split('\n')) {
    if (/^finished in /.test(raw)) continue;
    const m = /^\[([^\]]+)\]/.exec(raw);
    if (m) host = m[1];
    else if (!raw.startsWith(' ')) host = '-';
    (per[host] ??= []).push(raw.replace(/\d+(\.\d+)? ?m?s\b/g, 'T'));
  }
  return per;
}

test('Ansible YAML and INI inventories give the native plan', async () => {
  const info = lab();
  const native = parse(readFileSync(info.inventoryPath, 'utf8')) as {
    hosts: Record<string, string>;
    clusters: Record<string, unknown>;
  };
  const hostsYaml = Object.fromEntries(Object.entries(native.hosts).map(([h, a]) => [h, { ansible_host: a }]));
  const yamlInv = path.join(info.dir, 'ansible.yaml');
  writeFileSync(
    yamlInv,
    stringify({
      all: {
        vars: { ansible_user: 'root', ansible_ssh_private_key_file: './id_ed25519', ansible_ssh_common_args: '-o UserKnownHostsFile=./known_hosts', rha_clusters: native.clusters },
        children: { redis: { hosts: hostsYaml } },
      },
    }),
  );
  // INI next to the native one: group_vars/ beside it holds the clusters.
  const iniInv = path.join(info.dir, 'hosts.ini');
  writeFileSync(
    iniInv,
    `[redis]\n${Object.entries(native.hosts).map(([h, a]) => `${h} ansible_host=${a}`).join('\n')}\n\n[all:vars]\nansible_user=root\nansible_ssh_private_key_file=./id_ed25519\nansible_ssh_common_args='-o UserKnownHostsFile=./known_hosts'\n`,
  );
  mkdirSync(path.join(info.dir, 'group_vars'), { recursive: true });
  writeFileSync(path.join(info.dir, 'group_vars', 'all.yml'), stringify({ rha_clusters: native.clusters }));

  const want = await rha(['provision', info.inventoryPath, '--check', '-o', 'plain']);
  expect(want.code, want.all).toBe(0);
  expect(want.stdout).toMatch(/would change|changed/);
  for (const inv of [yamlInv, iniInv]) {
    const got = await rha(['provision', inv, '--check', '-o', 'plain']);
    expect(got.code, got.all).toBe(0);
    expect(plan(got.stdout, inv)).toEqual(plan(want.stdout, info.inventoryPath));
  }
}, 10 * 60_000);
