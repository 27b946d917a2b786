/**
 * Drives the real `rha` CLI (dist/, built by `npm test` before vitest runs) and reads lab hosts'
 * Redis without SSH, for end-to-end tests of the pair.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterSpec } from '../../src/core/types.js';
import { loadInventory } from '../../src/inventory/index.js';
import { labExec, type LabInfo } from '../../src/lab/index.js';
import { call, vipTarget } from '../../src/pair/client.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const RHA = path.join(root, 'dist/cli/main.js');

export interface RhaRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout + stderr, for messages. */
  all: string;
}

/** Runs `rha ARGS` as a user would (plain output, no TTY); never throws. */
export function rha(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RhaRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RHA, ...args], {
      env: { ...process.env, CI: 'true', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20 * 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, all: stdout + stderr });
    });
  });
}

/** The recap line counts of a plain run: { node1: { ok, changed, ... } }. */
export function recapOf(out: string): Record<string, Record<string, number>> {
  const recap: Record<string, Record<string, number>> = {};
  for (const m of out.matchAll(/^(\S+)\s+:\s+(ok=.*)$/gm)) {
    recap[m[1]] = Object.fromEntries([...m[2].matchAll(/(\w+)=(\d+)/g)].map((x) => [x[1], Number(x[2])]));
  }
  return recap;
}

/** The lab's first cluster, resolved from its inventory (secrets included). */
export async function labCluster(info: LabInfo): Promise<ClusterSpec> {
  const inv = await loadInventory(info.inventoryPath);
  return [...inv.clusters.values()][0];
}

/** A lab, its first cluster and its inventory path, for a test file's beforeAll. */
export interface LabPair {
  info: LabInfo;
  c: ClusterSpec;
  inv: string;
}

/** The lab's pair, provisioned first unless `provision` is false (then as the lab started). */
export async function labPair(info: LabInfo, opts: { provision?: boolean } = {}): Promise<LabPair> {
  const c = await labCluster(info);
  const inv = info.inventoryPath;
  if (opts.provision !== false) {
    const r = await rha(['provision', inv]);
    if (r.code !== 0) throw new Error(`provisioning the ${info.name} pair failed:\n${r.all}`);
  }
  return { info, c, inv };
}

/** redis-cli on a lab host (inside its namespaces, not over SSH); the password travels over stdin. */
export async function redisOn(info: LabInfo, host: string, c: ClusterSpec, args: string[]): Promise<{ code: number; out: string }> {
  const r = c.redis as { port: number; password: string; prefix: string };
  // --askpass reads the first line of stdin: the password is in no process's environment or argv.
  const script = `exec "$0" --askpass -h 127.0.0.1 -p ${r.port} "$@"`;
  const res = await labExec(info.name, host, ['sh', '-c', script, `${r.prefix}/bin/redis-cli`, ...args], { stdin: `${r.password}\n` });
  return { code: res.code, out: (res.stdout + res.stderr).trim() };
}

/** Polls `probe` every 100 ms until it returns a truthy value or `timeoutMs` passes; returns the value or undefined. */
export async function waitFor<T>(probe: () => Promise<T>, timeoutMs: number): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) return undefined;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The lab hosts holding the cluster's VIP on eth0 (a stopped host holds nothing). */
export async function vipHolders(info: LabInfo, c: ClusterSpec, hosts = ['node1', 'node2']): Promise<string[]> {
  const holders: string[] = [];
  for (const h of hosts) {
    const r = await labExec(info.name, h, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']).catch(() => undefined);
    if (r?.stdout.includes(` ${c.vip} `)) holders.push(h);
  }
  return holders;
}

/** The first line of ROLE on a lab host's Redis: master, slave, or an error text. */
export async function redisRole(info: LabInfo, host: string, c: ClusterSpec): Promise<string> {
  return (await redisOn(info, host, c, ['ROLE'])).out.split('\n')[0];
}

/**
 * keepalived's own VRRP state of the cluster's instance on a lab host (MASTER, BACKUP, FAULT...),
 * from its SIGUSR1 dump, read inside the host (not with rha's code); '' when there is none.
 */
export async function vrrpState(info: LabInfo, host: string, c: ClusterSpec): Promise<string> {
  await labExec(info.name, host, ['sh', '-c', 'rm -f /tmp/keepalived.data; kill -USR1 "$(cat /run/keepalived.pid)"']);
  let state = '';
  await waitFor(async () => {
    const dump = (await labExec(info.name, host, ['cat', '/tmp/keepalived.data'])).stdout;
    const block = dump.split(/^ VRRP Instance = /m).find((b) => b.startsWith(`${c.name}\n`)) ?? '';
    state = /^ {3}State = (\S+)/m.exec(block)?.[1] ?? '';
    return state || undefined;
  }, 5_000);
  return state;
}

/** A client writing PREFIX:i through the VIP every few ms until stopped; the values Redis acknowledged. */
export function vipWriter(c: ClusterSpec, prefix: string) {
  const acked: number[] = [];
  /** When each acknowledged write was acknowledged (ms since the epoch), in the order of `acked`. */
  const ackedAt: number[] = [];
  let errors = 0;
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        if ((await call(vipTarget(c), ['SET', `${prefix}:${i}`, String(i)], 500)) === 'OK') {
          acked.push(i);
          ackedAt.push(Date.now());
        }
      } catch {
        errors++;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    acked,
    /** The longest time between two acknowledged writes (ms): how long writes were not taken. */
    longestGap() {
      let gap = 0;
      for (let k = 1; k < ackedAt.length; k++) gap = Math.max(gap, ackedAt[k] - ackedAt[k - 1]);
      return gap;
    },
    get errors() {
      return errors;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

/** The acknowledged PREFIX:i that the VIP's Redis lacks or holds with another value. */
export async function missingThroughVip(c: ClusterSpec, prefix: string, acked: number[]): Promise<number[]> {
  const missing: number[] = [];
  for (let i = 0; i < acked.length; i += 200) {
    const chunk = acked.slice(i, i + 200);
    const got = (await call(vipTarget(c), ['MGET', ...chunk.map((n) => `${prefix}:${n}`)], 3000)) as Array<string | null>;
    chunk.forEach((n, k) => got[k] !== String(n) && missing.push(n));
  }
  return missing;
}
