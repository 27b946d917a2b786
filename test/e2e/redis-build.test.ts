/**
 * Redis built from the real source on fresh minimal Debian hosts, through the documented failure
 * chain (domain.md, seed 004): a tree half-built before gcc was there, a host with no package
 * source and no compiler, and the build-elsewhere-and-ship path.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { labExec, type LabInfo } from '../../src/lab/index.js';
import { useLab } from '../support/lab.js';
import { recapOf, rha } from '../support/rha.js';

const lab = useLab('build', 2);
const work = mkdtempSync(path.join(tmpdir(), 'rha-build-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let info: LabInfo;
beforeAll(() => {
  info = lab();
});

/** A playbook of one redis_install task on `hosts`, with extra module arguments. */
function playbook(name: string, hosts: string, extra: Record<string, unknown> = {}): string {
  const file = path.join(work, `${name}.yaml`);
  const args = { version: '7.0.15', source: '{{cluster.redis.source}}', ...extra };
  writeFileSync(file, `- name: ${name}\n  hosts: ${hosts}\n  tasks:\n    - name: Redis binaries\n      redis_install: ${JSON.stringify(args)}\n`);
  return file;
}
const freshCache = () => ({ RHA_CACHE_DIR: mkdtempSync(path.join(work, 'cache-')) });
const sh = (host: string, script: string) => labExec(info.name, host, ['sh', '-c', script]);

describe('the documented failure chain', () => {
  test('a tree half-built before gcc was installed: rha installs the toolchain, falls back to libc, and says so', async () => {
    // Reproduce seed 004 by hand: make is there, gcc is not; `make` fails with cc: not found.
    const src = info.redisSource.path;
    let r = await sh('node1', 'apt-get update -qq && apt-get install -y -qq make >/dev/null && command -v make && ! command -v gcc');
    expect(r.code, r.stderr).toBe(0);
    const tarball = await import('node:fs/promises').then((fs) => fs.readFile(src));
    // labExec's stdin is text: the tarball travels as base64.
    r = await labExec(info.name, 'node1', ['sh', '-c', 'mkdir -p /usr/local/src/rha && base64 -d > /usr/local/src/rha/redis-7.0.15.tar.gz && cd /usr/local/src/rha && tar -xzf redis-7.0.15.tar.gz'], {
      stdin: tarball.toString('base64'),
    });
    const sum = await sh('node1', 'sha256sum /usr/local/src/rha/redis-7.0.15.tar.gz');
    expect(sum.stdout.split(' ')[0]).toBe(info.redisSource.sha256);
    r = await sh('node1', 'cd /usr/local/src/rha/redis-7.0.15 && make 2>&1');
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/cc: not found|cc: command not found/);

    const run = await rha(['run', playbook('chain', 'node1'), '-i', info.inventoryPath, '-v'], { env: freshCache() });
    expect(run.code, run.all).toBe(0);
    expect(run.stdout).toContain('install a compiler toolchain');
    expect(run.stdout).toContain('in the existing source tree');
    expect(run.stdout).toContain('redis built with malloc=libc on node1: the jemalloc build failed with "jemalloc/jemalloc.h: No such file or directory"');
    const v = await sh('node1', '/usr/local/bin/redis-server --version');
    expect(v.stdout).toContain('v=7.0.15');
    expect(v.stdout).toContain('malloc=libc');

    const again = await rha(['run', playbook('chain', 'node1'), '-i', info.inventoryPath], { env: freshCache() });
    expect(again.code, again.all).toBe(0);
    expect(recapOf(again.stdout).node1.changed).toBe(0);
    expect(again.stdout).toContain('redis 7.0.15 (malloc=libc) is installed');
  });

  test('asking for jemalloc explicitly cleans the tree and rebuilds with jemalloc', async () => {
    const run = await rha(['run', playbook('jemalloc', 'node1', { malloc: 'jemalloc' }), '-i', info.inventoryPath, '-v'], { env: freshCache() });
    expect(run.code, run.all).toBe(0);
    expect(run.stdout).toContain('(now 7.0.15, malloc=libc)');
    const v = await sh('node1', '/usr/local/bin/redis-server --version');
    expect(v.stdout).toMatch(/malloc=jemalloc/);
  });
});

describe('a host that cannot compile', () => {
  test('no package source and no compiler: a clear error that says how to go on, and nothing half-installed', async () => {
    // node2: its only package source removed, apt's lists wiped, no compiler.
    const r = await sh('node2', 'rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*; rm -rf /var/lib/apt/lists/*; ! command -v gcc');
    expect(r.code, r.stderr).toBe(0);
    const run = await rha(['run', playbook('nosource', 'node2'), '-i', info.inventoryPath, '-v'], { env: freshCache() });
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('node2 has no C compiler or make, and installing gcc, make and libc headers with apt failed');
    expect(run.stdout).toContain('To go on: build elsewhere instead: set redis.build_host to a host of the same OS and architecture');
    expect((await sh('node2', 'test -e /usr/local/bin/redis-server')).code).not.toBe(0);
  });

  test('build_host: node1 compiles once, node2 receives the binaries with their checksums verified', async () => {
    const run = await rha(['run', playbook('elsewhere', 'node2', { build_host: 'node1' }), '-i', info.inventoryPath, '-v'], { env: freshCache() });
    expect(run.code, run.all).toBe(0);
    expect(run.stdout).toContain('build redis 7.0.15 on node1, then install it');
    expect(run.stdout).toContain('compiled on node1');
    const v = await sh('node2', '/usr/local/bin/redis-server --version && ! command -v gcc');
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('v=7.0.15');
  });
});
