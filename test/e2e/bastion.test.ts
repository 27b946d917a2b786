/**
 * Hosts reachable only through a bastion: node2 and node3 sit on a second segment that the
 * controller is not on (labHideBehind); node1 is on both. rha reaches them with `jump: node1`
 * (and with ProxyJump from an ssh config), verifying each hop's host key, and provisions a pair there.
 */
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { labHideBehind } from '../../src/lab/index.js';
import { hostAddress, useLab } from '../support/lab.js';
import { recapOf, rha } from '../support/rha.js';

// The lab API takes the full name: useLab prefixes it with RHA_TEST_LAB_PREFIX.
const LAB = `${process.env.RHA_TEST_LAB_PREFIX ?? ''}bastion`;
const lab = useLab('bastion', 3);

/** Whether a TCP connection from the controller to address:22 opens within 3 s. */
function reachable(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port: 22, timeout: 3000 });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('timeout', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(false));
  });
}

let inventory: string;
let sshInventory: string;
beforeAll(async () => {
  const info = lab();
  // Fresh known_hosts files below: the hidden hosts' keys are learned (and later verified) through the bastion.
  await labHideBehind(LAB, 'node1', ['node2', 'node3']);
  const dir = info.dir;
  const redis = info.redisSource;
  inventory = path.join(dir, 'bastion.yaml');
  writeFileSync(
    inventory,
    `ssh: { user: root, private_key: ./id_ed25519, known_hosts: ./known_hosts-bastion, config: false }
hosts:
  node1: ${hostAddress(info, 'node1')}
  node2: { address: ${hostAddress(info, 'node2')}, jump: node1 }
  node3: { address: ${hostAddress(info, 'node3')}, jump: node1 }
clusters:
  hidden:
    master: node2
    replica: node3
    vip: ${hostAddress(info, 'node1').replace(/\.\d+$/, '.220')}/24
    redis: { version: ${redis.version}, password: { file: ./secrets/pair1.redis.pass }, source: { path: ${redis.path}, sha256: ${redis.sha256} } }
    keepalived: { virtual_router_id: 61, auth_pass: { file: ./secrets/pair1.vrrp.pass } }
`,
  );
  // The same hosts through the operator's ssh config instead: aliases, HostName, ProxyJump.
  writeFileSync(
    path.join(dir, 'ssh_config'),
    `Host bastion\n  HostName ${hostAddress(info, 'node1')}\n  User root\nHost hidden-*\n  ProxyJump bastion\n  User root\nHost hidden-2\n  HostName ${hostAddress(info, 'node2')}\nHost hidden-3\n  HostName ${hostAddress(info, 'node3')}\n`,
  );
  sshInventory = path.join(dir, 'via-ssh-config.yaml');
  writeFileSync(
    sshInventory,
    `ssh: { private_key: ./id_ed25519, known_hosts: ./known_hosts-sshcfg, config: ./ssh_config }\nhosts:\n  node2: hidden-2\n  node3: hidden-3\n`,
  );
}, 60_000);

test('the controller cannot reach the hidden hosts; the bastion can', async () => {
  const info = lab();
  expect(await reachable(hostAddress(info, 'node1'))).toBe(true);
  expect(await reachable(hostAddress(info, 'node2'))).toBe(false);
  expect(await reachable(hostAddress(info, 'node3'))).toBe(false);
});

test('rha run: facts and modules on hidden hosts through the bastion, host keys learned per hop', async () => {
  const play = path.join(lab().dir, 'bastion-play.yaml');
  writeFileSync(
    play,
    `- hosts: node2:node3
  tasks:
    - name: a file behind the bastion
      copy: { dest: /tmp/behind-bastion, content: "hello from behind the bastion\\n" }
    - name: read it back
      command: [cat, /tmp/behind-bastion]
      register: r
      changed_when: false
    - assert: { that: [ 'eq (lookup r.stdout_lines 0) "hello from behind the bastion"' ] }
`,
  );
  const r = await rha(['run', play, '-i', inventory, '-o', 'plain']);
  expect(r.code, r.all).toBe(0);
  expect(recapOf(r.stdout)).toMatchObject({ node2: { failed: 0, unreachable: 0 }, node3: { failed: 0, unreachable: 0 } });
  expect(r.stdout).toMatch(/node2.*changed/);
  // Every hop's key recorded: the bastion's and both hidden hosts'.
  const again = await rha(['run', play, '-i', inventory, '-o', 'plain']);
  expect(again.code, again.all).toBe(0);
  expect(recapOf(again.stdout).node2.changed).toBe(0);
});

test('the same hosts through ~/.ssh/config-style aliases and ProxyJump', async () => {
  const play = path.join(lab().dir, 'bastion-facts.yaml');
  writeFileSync(play, `- hosts: all\n  tasks:\n    - command: [hostname]\n      register: h\n    - assert: { that: [ 'eq (lookup h.stdout_lines 0) facts.hostname' ] }\n`);
  const r = await rha(['run', play, '-i', sshInventory, '-o', 'plain']);
  expect(r.code, r.all).toBe(0);
  expect(recapOf(r.stdout)).toMatchObject({ node2: { failed: 0, unreachable: 0 }, node3: { failed: 0, unreachable: 0 } });
});

test('a changed host key behind the bastion is still refused', async () => {
  // A wrong recorded key for node2 (node3's): verification happens at the hidden hop too.
  const info = lab();
  const kh = path.join(info.dir, 'known_hosts-bastion');
  const { readFileSync } = await import('node:fs');
  const lines = readFileSync(kh, 'utf8').split('\n');
  const n2 = hostAddress(info, 'node2');
  const n3 = hostAddress(info, 'node3');
  const swapped = lines.map((l) => (l.startsWith(n3 + ' ') ? l.replace(n3, n2) : l.startsWith(n2 + ' ') ? '' : l)).join('\n');
  writeFileSync(path.join(info.dir, 'known_hosts-bad'), swapped);
  const bad = path.join(info.dir, 'bastion-bad.yaml');
  writeFileSync(bad, readFileSync(inventory, 'utf8').replace('known_hosts-bastion', 'known_hosts-bad'));
  const r = await rha(['run', path.join(info.dir, 'bastion-facts.yaml'), '-i', bad, '-o', 'plain', '--limit', 'node2']);
  expect(r.code, r.all).toBe(3);
  expect(r.all).toMatch(/node2.*host key/i);
});

test('provision a pair on the hidden segment through the bastion', async () => {
  const r = await rha(['provision', inventory, '-o', 'plain']);
  expect(r.code, r.all).toBe(0);
  expect(recapOf(r.stdout)).toMatchObject({ node2: { failed: 0, unreachable: 0 }, node3: { failed: 0, unreachable: 0 } });
  const again = await rha(['provision', inventory, '-o', 'plain']);
  expect(again.code, again.all).toBe(0);
  expect(recapOf(again.stdout)).toMatchObject({ node2: { changed: 0 }, node3: { changed: 0 } });
}, 10 * 60_000);
