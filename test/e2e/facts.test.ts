/** Fact gathering against a real lab host (minimal Debian 12, sshd as PID 1, no systemd, no sudo). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import type { Command, CommandResult } from '../../src/core/command.js';
import type { Connection, HostSpec } from '../../src/core/types.js';
import { ConnectionPool } from '../../src/connection/index.js';
import { gatherFacts } from '../../src/facts/index.js';
import { labExec } from '../../src/lab/index.js';
import { hostAddress, useLab } from '../support/lab.js';

const LAB = 'facts';
const lab = useLab(LAB, 1);
const knownHosts = path.join(mkdtempSync(path.join(tmpdir(), 'rha-facts-e2e-')), 'known_hosts');
const pool = new ConnectionPool();
afterAll(() => pool.closeAll());

function hostSpec(user = 'root'): HostSpec {
  const info = lab();
  return {
    name: 'node1',
    groups: ['all'],
    vars: {},
    connection: {
      address: hostAddress(info, 'node1'),
      port: 22,
      user,
      privateKey: info.privateKeyPath,
      become: false,
      knownHosts,
      connectTimeoutMs: 10_000,
      connectRetries: 0,
    },
  };
}

/** Wraps a connection to count round-trips. */
function counting(conn: Connection): { conn: Connection; execs: Command[] } {
  const execs: Command[] = [];
  return {
    execs,
    conn: {
      hostName: conn.hostName,
      close: () => conn.close(),
      exec: (cmd: Command): Promise<CommandResult> => {
        execs.push(cmd);
        return conn.exec(cmd);
      },
    },
  };
}

test('facts of a lab host, in one round-trip', async () => {
  const { conn, execs } = counting(await pool.get(hostSpec()));
  const facts = await gatherFacts(conn);
  expect(execs).toHaveLength(1);
  const uname = await labExec(lab().name, 'node1', ['uname', '-m', '-r']);
  const [kernel, arch] = uname.stdout.trim().split(' ');
  // The lab's root filesystem has sudo (for its sudo logins); the fact must say what the host has.
  const sudo = (await labExec(lab().name, 'node1', ['sh', '-c', 'command -v sudo'])).code === 0;
  expect(sudo).toBe(true);
  expect(facts).toMatchObject({
    hostname: 'node1',
    osId: 'debian',
    osVersion: '12',
    osFamily: 'debian',
    arch,
    kernel,
    packageManager: 'apt',
    serviceManager: 'plain', // sshd is PID 1 of the host's PID namespace
    isRoot: true,
    hasSudo: sudo,
  });
  expect(facts.interfaces.eth0).toEqual([`${hostAddress(lab(), 'node1')}/24`]);
  expect(facts.interfaces.lo).toEqual(['127.0.0.1/8']);
  expect(facts.cpus).toBeGreaterThanOrEqual(1);
  expect(facts.memoryMb).toBeGreaterThan(100);
});

test('as a non-root user, with an extra address on eth0 (as a VIP would be)', async () => {
  const setup = await labExec(lab().name, 'node1', ['sh', '-c', [
    'useradd -m -s /bin/sh ops && mkdir -p /home/ops/.ssh && cp /root/.ssh/authorized_keys /home/ops/.ssh/ && chown -R ops: /home/ops/.ssh',
    'ip addr add 10.99.0.100/32 dev eth0',
  ].join(' && ')]);
  expect(setup.code, setup.stderr).toBe(0);
  const ops = { ...hostSpec('ops'), name: 'node1-ops' };
  const facts = await gatherFacts(await pool.get(ops));
  expect(facts.isRoot).toBe(false);
  expect(facts.interfaces.eth0).toEqual([`${hostAddress(lab(), 'node1')}/24`, '10.99.0.100/32']);
});
