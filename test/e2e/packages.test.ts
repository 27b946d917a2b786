/**
 * Packages on hosts like freshly imaged servers (issue 15), with real apt and dpkg on lab hosts:
 * empty apt lists (container-built and many freshly imaged machines have none), and a package
 * manager locked by another process (unattended-upgrades on a fresh boot).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ClusterSpec } from '../../src/core/types.js';
import { labExec, type LabInfo } from '../../src/lab/index.js';
import { useLab } from '../support/lab.js';
import { labPair, recapOf, redisRole, rha, vipHolders, waitFor } from '../support/rha.js';

const lab = useLab('pkgs', 2);
// A build cache of this file's own: one node compiles (its toolchain install refreshes the index),
// the other receives the binaries and meets apt first at keepalived: the failing host.
const dir = mkdtempSync(path.join(tmpdir(), 'rha-pkgs-'));
const env = { RHA_CACHE_DIR: path.join(dir, 'cache') };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let info: LabInfo;
let c: ClusterSpec;
let inv: string;
beforeAll(async () => {
  ({ info, c, inv } = await labPair(lab(), { provision: false }));
});

/** Empties a host's apt lists, as on a container-built image; returns how many entries are left. */
async function emptyLists(host: string): Promise<string> {
  const r = await labExec(info.name, host, ['sh', '-c', 'rm -rf /var/lib/apt/lists/* /var/lib/apt/periodic && ls -A /var/lib/apt/lists | wc -l']);
  return r.stdout.trim();
}

const installed = async (host: string, pkg: string) =>
  (await labExec(info.name, host, ['dpkg-query', '-W', '-f', '${db:Status-Abbrev}', pkg])).stdout.trim() === 'ii';

describe('a fresh image: empty apt lists on both hosts', () => {
  test('provision succeeds on the first try; the index is refreshed where an install needs it', async () => {
    expect(await emptyLists('node1')).toBe('0');
    expect(await emptyLists('node2')).toBe('0');
    const r = await rha(['provision', inv], { env });
    expect(r.code, r.all).toBe(0);
    expect(r.stdout.match(/compiled here/g)?.length, r.stdout).toBe(1);
    // The node that did not compile: keepalived's install refreshed the empty index itself.
    const refreshed = [...r.stdout.matchAll(/\[(node[12])\] changed: keepalived package [^\n]*— apt-get update \(no package index\); install keepalived/g)].map((m) => m[1]);
    expect(refreshed, r.stdout).toHaveLength(1);
    const compiler = /\[(node[12])\] changed: Redis binaries — [^\n]*compiled here/.exec(r.stdout)?.[1];
    expect(refreshed[0]).not.toBe(compiler);
    for (const h of ['node1', 'node2']) expect(await installed(h, 'keepalived'), h).toBe(true);
    expect(await vipHolders(info, c)).toEqual(['node1']);
    expect(await redisRole(info, 'node2', c)).toBe('slave');
  }, 30 * 60_000); // one node compiles Redis: about a minute alone, ten on a loaded 2-core machine

  test('re-run: 0 changed', async () => {
    const r = await rha(['provision', inv], { env });
    expect(r.code, r.all).toBe(0);
    const recap = recapOf(r.stdout);
    expect(recap.node1.changed, r.stdout).toBe(0);
    expect(recap.node2.changed, r.stdout).toBe(0);
  });
});

describe('a package manager locked by another process', () => {
  // A stand-in for unattended-upgrades: a process named like it that holds the lock as apt does,
  // with fcntl(F_SETLKW) (`flock FILE` takes a flock(2) lock, which apt does not see).
  async function holdLock(host: string, file: string, seconds: number): Promise<string> {
    const perl = `use Fcntl; $0 = "unattended-upgr"; open(my $f, ">>", $ARGV[0]) or die "$!"; fcntl($f, F_SETLKW, pack("s s x4 q q i x4", F_WRLCK, SEEK_SET, 0, 0, 0)) or die "$!"; sleep $ARGV[1];`;
    const r = await labExec(info.name, host, ['sh', '-c', 'setsid perl -e "$1" "$2" "$3" </dev/null >/dev/null 2>&1 & echo $!', 'sh', perl, file, String(seconds)]);
    const pid = r.stdout.trim();
    const held = await waitFor(async () => (await labExec(info.name, host, ['cat', '/proc/locks'])).stdout.includes(` ${pid} `), 10_000);
    expect(held, `lock holder ${pid} on ${host}`).toBe(true);
    return pid;
  }
  const play = (wait: number) => {
    const file = path.join(dir, `locked-${wait}.yaml`);
    writeFileSync(
      file,
      `- name: a package while another process may hold the lock\n  hosts: node2\n  tasks:\n` +
        `    - name: pkg-config\n      package: { name: pkg-config, update_cache: true, lock_timeout: ${wait} }\n`,
    );
    return file;
  };

  test('held past lock_timeout: a bounded wait, then an error naming the host, the lock and its holder', async () => {
    expect(await installed('node2', 'pkg-config')).toBe(false);
    const pid = await holdLock('node2', '/var/lib/dpkg/lock-frontend', 600);
    try {
      const r = await rha(['run', '-i', inv, play(4)], { env });
      expect(r.code, r.all).not.toBe(0);
      expect(r.stdout).toContain(
        `[node2] failed: pkg-config — node2: the package manager is busy: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process ${pid} (unattended-upgr), still after waiting 4 s. ` +
          'Another apt or dpkg run holds it (on a fresh machine often unattended-upgrades): let it finish, or stop it (systemctl stop unattended-upgrades), then run rha again',
      );
      expect(await installed('node2', 'pkg-config')).toBe(false);
    } finally {
      await labExec(info.name, 'node2', ['kill', pid]);
    }
  });

  test('released in time (the lists lock during apt-get update of an empty index): rha waits, then installs', async () => {
    expect(await emptyLists('node2')).toBe('0');
    const pid = await holdLock('node2', '/var/lib/apt/lists/lock', 15);
    const r = await rha(['run', '-i', inv, play(300)], { env });
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        String.raw`\[node2\] changed: pkg-config — apt-get update \(no package index\); install pkg-config; waited \d+ s for the package manager lock \(Could not get lock /var/lib/apt/lists/lock\. It is held by process ${pid} \(unattended-upgr\)\)`,
      ),
    );
    expect(await installed('node2', 'pkg-config')).toBe(true);
  });
});
