/**
 * Lab fixtures for e2e test files: one lab per file, brought up before the first test and
 * removed after the last one even when tests fail.
 */
import { afterAll, beforeAll } from 'vitest';
import type { CommandResult } from '../../src/core/command.js';
import { labDown, labUp, type LabInfo, type LabLogin } from '../../src/lab/index.js';
import { run } from '../../src/lab/sh.js';

/**
 * Registers beforeAll(labUp)/afterAll(labDown) for a lab of `hosts` fresh hosts; returns a getter
 * for its LabInfo (valid inside tests). Leftovers of an earlier crashed run are removed first.
 * `login`: how the lab's inventory logs in (root, or a sudo user with or without a password).
 * RHA_TEST_LAB_PREFIX prefixes the lab's name (files that pass info.name to the lab API; one that
 * named its lab with a constant would need it unset).
 */
export function useLab(base: string, hosts = 2, opts: { python?: boolean; login?: LabLogin; systemd?: boolean } = {}): () => LabInfo {
  // RHA_TEST_LAB_PREFIX: on a shared machine, runs from different checkouts keep apart.
  const name = `${process.env.RHA_TEST_LAB_PREFIX ?? ''}${base}`;
  let info: LabInfo | undefined;
  beforeAll(async () => {
    info = await labUp({ name, hosts, python: opts.python, login: opts.login, systemd: opts.systemd, recreate: true });
  }, 15 * 60_000);
  afterAll(async () => {
    await labDown(name);
  }, 5 * 60_000);
  return () => {
    if (!info) throw new Error(`lab ${name} is not up (its beforeAll failed)`);
    return info;
  };
}

/** The lab host's address, by host name. */
export function hostAddress(info: LabInfo, host: string): string {
  const h = info.hosts.find((x) => x.name === host);
  if (!h) throw new Error(`lab ${info.name} has no host ${host}`);
  return h.address;
}

/**
 * Runs a shell command on a lab host with the machine's ssh client, host key checking on
 * (StrictHostKeyChecking=yes against the lab's known_hosts); returns the result, never throws.
 */
export function sshRun(
  info: LabInfo,
  host: string,
  command: string,
  opts: { stdin?: string; timeoutMs?: number; connectTimeoutS?: number } = {},
): Promise<CommandResult> {
  return run(
    [
      'ssh',
      '-i', info.privateKeyPath,
      '-o', 'IdentitiesOnly=yes',
      '-o', 'BatchMode=yes',
      '-o', `UserKnownHostsFile=${info.knownHostsPath}`,
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `ConnectTimeout=${opts.connectTimeoutS ?? 10}`,
      `root@${hostAddress(info, host)}`,
      command,
    ],
    { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 5 * 60_000 },
  );
}
