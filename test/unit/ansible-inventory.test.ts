/**
 * Ansible inventories as they are: YAML and INI (with group_vars/) resolve to the same hosts,
 * groups, variables and clusters as the native inventory they describe; what cannot be mapped is
 * a warning naming the variable.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError, formatProblem, type Inventory } from '../../src/core/types.js';
import { detectFormat } from '../../src/inventory/ansible.js';
import { loadInventory } from '../../src/inventory/index.js';

let dir: string;
const env = { HOME: '/home/op', VRRP: 'vrrp1234' };

const native = `ssh: { config: false }
hosts:
  node1: { address: 10.0.0.11, user: root, private_key: ./id_ed25519, known_hosts: ./known_hosts }
  node2: { address: 10.0.0.12, port: 2222, user: admin, private_key: ./id_ed25519, known_hosts: ./known_hosts, become: true, become_password: { env: VRRP }, vars: { zone: b } }
groups:
  redis: { hosts: [node1, node2], vars: { tier: cache } }
vars: { env_name: lab }
clusters:
  pair1:
    master: node1
    replica: node2
    vip: 10.0.0.200/24
    redis: { password: { file: ./secrets/redis.pass } }
    keepalived: { virtual_router_id: 51, auth_pass: { env: VRRP } }
`;

const ansibleYaml = `all:
  vars:
    env_name: lab
    ansible_ssh_private_key_file: ./id_ed25519
    ansible_ssh_common_args: -o UserKnownHostsFile=./known_hosts -o StrictHostKeyChecking=yes
    ansible_python_interpreter: /usr/bin/python3
    ansible_user: root
    rha_clusters:
      pair1:
        master: node1
        replica: node2
        vip: 10.0.0.200/24
        redis: { password: { file: ./secrets/redis.pass } }
        keepalived: { virtual_router_id: 51, auth_pass: { env: VRRP } }
  children:
    redis:
      vars: { tier: cache }
      hosts:
        node1: { ansible_host: 10.0.0.11 }
        node2:
          ansible_host: 10.0.0.12
          ansible_port: 2222
          ansible_user: admin
          ansible_become: true
          ansible_become_password: "{{ lookup('env', 'VRRP') }}"
          zone: b
`;

const ini = `# the same hosts, as most Ansible users write them
[redis]
node1 ansible_host=10.0.0.11
node2 ansible_host=10.0.0.12 ansible_port=2222 ansible_user=admin ansible_become=yes ansible_become_password="{{ lookup('env', 'VRRP') }}" zone=b  # inline comment

[redis:vars]
tier=cache

[all:vars]
env_name=lab
ansible_user=root
ansible_ssh_private_key_file=./id_ed25519
ansible_ssh_common_args='-o UserKnownHostsFile=./known_hosts'
`;

const groupVarsAll = `rha_clusters:
  pair1:
    master: node1
    replica: node2
    vip: 10.0.0.200/24
    redis: { password: { file: ./secrets/redis.pass } }
    keepalived: { virtual_router_id: 51, auth_pass: { env: VRRP } }
`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rha-ansible-'));
  mkdirSync(join(dir, 'secrets'));
  writeFileSync(join(dir, 'secrets', 'redis.pass'), 'redis-secret\n', { mode: 0o600 });
  // private_key must name a readable file (checked at load); its content is never read here.
  writeFileSync(join(dir, 'id_ed25519'), 'not a real key\n', { mode: 0o600 });
  writeFileSync(join(dir, 'native.yaml'), native);
  writeFileSync(join(dir, 'ansible.yaml'), ansibleYaml);
  mkdirSync(join(dir, 'ini'));
  mkdirSync(join(dir, 'ini', 'group_vars'));
  mkdirSync(join(dir, 'ini', 'secrets'));
  writeFileSync(join(dir, 'ini', 'secrets', 'redis.pass'), 'redis-secret\n', { mode: 0o600 });
  writeFileSync(join(dir, 'ini', 'hosts.ini'), ini);
  writeFileSync(join(dir, 'ini', 'hosts'), ini); // no extension: detected by content
  writeFileSync(join(dir, 'ini', 'id_ed25519'), 'not a real key\n', { mode: 0o600 });
  writeFileSync(join(dir, 'ini', 'group_vars', 'all.yml'), groupVarsAll);
});

/** What a run sees of an inventory, with paths made relative to its folder. */
function essence(inv: Inventory, base: string) {
  const rel = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'string' ? x.replaceAll(base, '.') : x)));
  return rel({
    hosts: [...inv.hosts.values()].map((h) => ({ ...h, connection: { ...h.connection, password: h.connection.password?.value, becomePassword: h.connection.becomePassword?.value } })),
    groups: [...inv.groups.entries()],
    clusters: [...inv.clusters.entries()],
  });
}

describe('Ansible inventories', () => {
  it('YAML, INI (with group_vars/) and extension-less INI resolve like the native inventory', async () => {
    const want = essence(await loadInventory(join(dir, 'native.yaml'), { env }), dir);
    expect(essence(await loadInventory(join(dir, 'ansible.yaml'), { env }), dir)).toEqual(want);
    expect(essence(await loadInventory(join(dir, 'ini', 'hosts.ini'), { env }), join(dir, 'ini'))).toEqual(want);
    expect(essence(await loadInventory(join(dir, 'ini', 'hosts'), { env }), join(dir, 'ini'))).toEqual(want);
  });

  it('reports what it cannot map, naming the variable and line', async () => {
    const inv = await loadInventory(join(dir, 'ansible.yaml'), { env });
    expect(inv.warnings.map(formatProblem).map((p) => p.replace(dir, '.'))).toEqual([
      './ansible.yaml:6 ansible_python_interpreter: warning: ansible_python_interpreter is not used: rha needs no Python on the hosts',
    ]);
    writeFileSync(join(dir, 'odd.ini'), '[db]\nx ansible_host=10.0.0.5 ansible_connection=local ansible_ssh_extra_args="-o Compression=yes"\n');
    const odd = await loadInventory(join(dir, 'odd.ini'), { env });
    expect(odd.warnings.map(formatProblem).map((p) => p.replace(dir, '.'))).toEqual([
      './odd.ini:2 ansible_connection: warning: ansible variable ansible_connection (= "local") has no rha equivalent: ignored',
      './odd.ini:2 ansible_ssh_extra_args: warning: ansible_ssh_extra_args: "Compression=yes" has no rha equivalent: ignored (rha understands -J and -o ProxyJump=, -o UserKnownHostsFile=)',
    ]);
  });

  it('errors in converted data point at the Ansible line', async () => {
    writeFileSync(join(dir, 'bad.ini'), '[db]\nx ansible_host=10.0.0.5 ansible_port=99999\ny ansible_host=10.0.0.6 ansible_become_password="{{ vault_pw }}"\n[web\n');
    await expect(loadInventory(join(dir, 'bad.ini'), { env })).rejects.toThrow(InputError);
    const problems = await loadInventory(join(dir, 'bad.ini'), { env }).catch((e: InputError) => e.problems.map(formatProblem).map((p) => p.replace(dir, '.')));
    expect(problems).toEqual(['./bad.ini:4: "[web" is not a section: use [group], [group:vars] or [group:children]']);
    writeFileSync(join(dir, 'bad2.ini'), '[db]\nx ansible_host=10.0.0.5 ansible_port=99999\ny ansible_host=10.0.0.6 ansible_become_password="{{ vault_pw }}"\n');
    const p2 = await loadInventory(join(dir, 'bad2.ini'), { env }).catch((e: InputError) => e.problems.map(formatProblem).map((p) => p.replace(dir, '.')));
    expect(p2).toEqual([
      `./bad2.ini:3 ansible_become_password: ansible_become_password is a Jinja expression, which rha does not evaluate: use a literal, {{ lookup('env', 'NAME') }}, or the native { env: NAME } / { file: PATH }`,
    ]);
    writeFileSync(join(dir, 'bad3.ini'), '[db]\nx ansible_host=10.0.0.5 ansible_port=99999\n');
    const p3 = await loadInventory(join(dir, 'bad3.ini'), { env }).catch((e: InputError) => e.problems.map(formatProblem).map((p) => p.replace(dir, '.')));
    expect(p3).toEqual(['./bad3.ini:2 hosts.x.port: 99999 is too big (maximum 65535)']);
  });

  it('detects the format by extension, then content', () => {
    expect(detectFormat('x.ini', 'hosts: {}')).toBe('ansible-ini');
    expect(detectFormat('hosts', '# c\n[web]\na\n')).toBe('ansible-ini');
    expect(detectFormat('x.yaml', '', { all: { hosts: { a: null } } })).toBe('ansible-yaml');
    expect(detectFormat('x.yaml', '', { web: { hosts: { a: null } } })).toBe('ansible-yaml');
    expect(detectFormat('x.yaml', '', { hosts: { a: '10.0.0.1' } })).toBe('rha');
  });
});
