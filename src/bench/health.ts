/**
 * The health check's settings against each other (issue 16, item 6): for a few candidate
 * (interval, timeout, fall, rise), on one provisioned lab pair,
 *  - failover: kill -9 of the master's Redis → first write through the VIP;
 *  - stalls: `DEBUG SLEEP S` on the master (its main thread blocked, as by a slow command or a
 *    stuck disk) → did the VIP move (a false failover)?
 *  - fork: BGSAVE of a dataset of a few GB (the fork blocks the main thread for its duration) →
 *    fork time (INFO latest_fork_usec) and whether the VIP moved.
 * The pair runs without the split-brain bound (as the failover section does) and with
 * `enable-debug-command yes` (a lab setting: DEBUG is refused by default).
 */
import { promises as fs } from 'node:fs';
import { parseDocument } from 'yaml';
import type { ClusterSpec } from '../core/types.js';
import { loadInventory } from '../inventory/index.js';
import { labDown, labKill, labUp, type LabInfo } from '../lab/index.js';
import { call, vipTarget, type RedisTarget } from '../pair/client.js';
import { availabilityFirst, vipHolder } from './availability.js';
import { samples, type ForkTrial, type HealthCheck, type HealthResult, type StallTrial } from './result.js';

/**
 * The shipped default before issue 16 first, then one knob at a time: more checks (fall), slower
 * checks (interval), a longer wait for PONG (timeout). A dead Redis refuses connections at once, so
 * its detection takes (fall - 1) x interval plus up to one interval whatever the timeout; a
 * stalled one fails only the checks that start at least `timeout` before the stall ends.
 */
export const HEALTH_CANDIDATES: HealthCheck[] = [
  { interval: 1, timeout: 1, fall: 2, rise: 2 },
  { interval: 1, timeout: 1, fall: 3, rise: 2 },
  { interval: 2, timeout: 2, fall: 2, rise: 2 },
  { interval: 1, timeout: 3, fall: 2, rise: 2 },
  { interval: 1, timeout: 4, fall: 2, rise: 2 },
];

/** Stall lengths (s) given to DEBUG SLEEP on the master. */
export const STALL_SECONDS = [1, 2, 3, 4, 5, 6];
/** A hang: longer than any candidate tolerates (timeout + fall x interval). */
const HANG_SECONDS = 15;

export interface HealthDeps {
  labName: string;
  repeat: number;
  datasetMb: number;
  signal: AbortSignal;
  log: (line: string) => void;
  /** `rha provision` of the lab's inventory; throws on failure. */
  provision: (lab: LabInfo) => Promise<unknown>;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const label = (c: HealthCheck): string => `interval ${c.interval}, timeout ${c.timeout}, fall ${c.fall}, rise ${c.rise}`;

/** Writes keepalived.check of every cluster of a lab inventory (and redis config for the bench). */
async function setCheck(inventoryPath: string, check: HealthCheck, debug: boolean): Promise<void> {
  const doc = parseDocument(await fs.readFile(inventoryPath, 'utf8'));
  const clusters = doc.get('clusters') as { items: Array<{ key: { value: string } }> } | undefined;
  for (const item of clusters?.items ?? []) {
    for (const [k, v] of Object.entries(check)) doc.setIn(['clusters', item.key.value, 'keepalived', 'check', k], v);
    // DEBUG SLEEP and DEBUG POPULATE from the controller (a lab; refused by Redis' default).
    if (debug) doc.setIn(['clusters', item.key.value, 'redis', 'config', 'enable-debug-command'], 'yes');
  }
  await fs.writeFile(inventoryPath, doc.toString());
}

function info(text: unknown, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(String(text))?.[1]?.trim();
}

/**
 * A writer through the VIP for the length of a trial: `stop()` resolves with the longest interval
 * between two acknowledged writes (from the start, and to the stop).
 */
function gapWriter(c: ClusterSpec, key: string): { stop: () => Promise<number> } {
  let stopped = false;
  const t0 = performance.now();
  let lastAck = t0;
  let longest = 0;
  const run = (async () => {
    for (let k = 0; !stopped; k++) {
      try {
        await call(vipTarget(c), ['SET', key, String(k)], 300);
        const now = performance.now();
        longest = Math.max(longest, now - lastAck);
        lastAck = now;
      } catch {
        await sleep(25);
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await run;
      return Math.max(longest, performance.now() - lastAck);
    },
  };
}

/** Resolves with the time of the first acknowledged write through the VIP, or undefined after `limitMs`. */
async function firstWrite(c: ClusterSpec, key: string, startedAt: number, limitMs: number, signal: AbortSignal): Promise<number | undefined> {
  for (let i = 0; performance.now() - startedAt < limitMs; i++) {
    if (signal.aborted) throw new Error('interrupted');
    try {
      await call(vipTarget(c), ['SET', key, String(i)], 300);
      return performance.now();
    } catch {
      await sleep(25);
    }
  }
  return undefined;
}

interface Pair {
  lab: LabInfo;
  c: ClusterSpec;
  target: (host: string) => RedisTarget;
}

/** The node holding the VIP once writes through it succeed, and its peer once it replicates from it. */
async function settled(p: Pair, signal: AbortSignal, limitMs = 60_000): Promise<{ master: string; peer: string }> {
  const t0 = performance.now();
  if ((await firstWrite(p.c, 'rha:bench:health:warmup', t0, limitMs, signal)) === undefined) throw new Error('writes through the VIP never succeeded');
  const master = await vipHolder(p.lab, p.c);
  if (!master) throw new Error('no node holds the VIP');
  const peer = master === p.c.master ? p.c.replica : p.c.master;
  // A failover right after a resync measures the resync: wait for the replica's link.
  while (performance.now() - t0 < limitMs) {
    const r = await call(p.target(peer), ['INFO', 'replication'], 2000).catch(() => '');
    if (info(r, 'role') === 'slave' && info(r, 'master_link_status') === 'up') return { master, peer };
    await sleep(500);
  }
  throw new Error(`the replica ${peer} did not get its link to ${master} up within ${limitMs / 1000} s`);
}

/**
 * After a false failover: the hooks make the stalled node the new master's replica on their own
 * (rule B4), which is quicker than `rha provision`; provision only when they have not within 30 s.
 */
async function recover(p: Pair, d: HealthDeps): Promise<void> {
  try {
    await settled(p, d.signal, 30_000);
  } catch (e) {
    d.log(`health: the pair did not settle after the failover (${(e as Error).message}); rha provision`);
    try {
      await d.provision(p.lab);
    } catch (e2) {
      // Seen once after a 15 s hang under load: the VIP back on the old master while it was
      // already its peer's replica, hooks still running. Recorded; the next provision repairs it.
      d.log(`health: rha provision refused the pair (${(e2 as Error).message.split('\n')[0]}); again in 10 s`);
      await sleep(10_000);
      await d.provision(p.lab);
    }
  }
}

/**
 * After a trial: did the VIP leave `master`, or was `peer` promoted? Watched for `windowMs`: a
 * failover decided during the stall completes within about one advert interval after it.
 */
async function movedAway(p: Pair, master: string, peer: string, windowMs: number): Promise<boolean> {
  const end = performance.now() + windowMs;
  do {
    const holder = await vipHolder(p.lab, p.c);
    if (holder && holder !== master) return true;
    const role = info(await call(p.target(peer), ['INFO', 'replication'], 1000).catch(() => ''), 'role');
    if (role === 'master') return true;
    await sleep(200);
  } while (performance.now() < end);
  return false;
}

async function failoverOnce(p: Pair, d: HealthDeps): Promise<number> {
  const { master } = await settled(p, d.signal);
  if ((await labKill(p.lab.name, master, 'redis-server')) === 0) throw new Error(`no redis-server to kill on ${master}`);
  const t0 = performance.now();
  const t1 = await firstWrite(p.c, 'rha:bench:health:failover', t0, 30_000, d.signal);
  if (t1 === undefined) throw new Error(`no write through the VIP succeeded within 30 s of killing Redis on ${master}`);
  await d.provision(p.lab); // the killed Redis back, as the pair's replica
  return t1 - t0;
}

/**
 * A Redis that hangs (alive, answering nothing): DEBUG SLEEP longer than any candidate waits;
 * the time from its start to the first write through the VIP (on the promoted peer).
 */
async function hangOnce(p: Pair, d: HealthDeps): Promise<number> {
  const { master } = await settled(p, d.signal);
  const t0 = performance.now();
  const sleeping = call(p.target(master), ['DEBUG', 'SLEEP', String(HANG_SECONDS)], HANG_SECONDS * 1000 + 10_000).catch(() => undefined);
  // Writes start once the master has stopped answering: a write that landed before the sleep
  // did would count as a failover in no time.
  for (;;) {
    if (performance.now() - t0 > 10_000) throw new Error(`DEBUG SLEEP on ${master} never took effect`);
    if (await call(p.target(master), ['PING'], 250).then(() => false, () => true)) break;
  }
  const t1 = await firstWrite(p.c, 'rha:bench:health:hang', t0, HANG_SECONDS * 1000, d.signal);
  await sleeping;
  if (t1 === undefined) throw new Error(`no write through the VIP succeeded during a ${HANG_SECONDS} s hang of Redis on ${master}`);
  await recover(p, d);
  return t1 - t0;
}

async function stallOnce(p: Pair, d: HealthDeps, seconds: number): Promise<StallTrial> {
  const { master, peer } = await settled(p, d.signal);
  const w = gapWriter(p.c, 'rha:bench:health:stall');
  await call(p.target(master), ['DEBUG', 'SLEEP', String(seconds)], seconds * 1000 + 10_000);
  const moved = await movedAway(p, master, peer, 4000);
  const longestGapMs = await w.stop();
  if (moved) await recover(p, d);
  return { seconds, moved, longestGapMs };
}

/** Fills the master with DEBUG POPULATE in slices (one big call would itself be a long stall). */
async function populate(p: Pair, master: string, targetMb: number, d: HealthDeps): Promise<number> {
  const t = p.target(master);
  const valueSize = 4096;
  const slice = 16_384; // 64 MB of values per call
  for (let i = 0; ; i++) {
    if (d.signal.aborted) throw new Error('interrupted');
    const used = Number(info(await call(t, ['INFO', 'memory'], 10_000), 'used_memory')) / 2 ** 20;
    if (used >= targetMb) return used;
    await call(t, ['DEBUG', 'POPULATE', String(slice), `rha:bench:health:fill:${Date.now()}:${i}`, String(valueSize)], 60_000);
    if (i % 8 === 0) d.log(`health: dataset on ${master} ${used.toFixed(0)} MB of ${targetMb} MB`);
  }
}

async function forkOnce(p: Pair, d: HealthDeps): Promise<ForkTrial> {
  const { master, peer } = await settled(p, d.signal);
  const t = p.target(master);
  const datasetMb = await populate(p, master, d.datasetMb, d);
  for (let i = 0; info(await call(t, ['INFO', 'persistence'], 5000), 'rdb_bgsave_in_progress') !== '0'; i++) {
    if (i > 600) throw new Error(`a background save on ${master} did not end within 5 minutes`);
    await sleep(500);
  }
  const w = gapWriter(p.c, 'rha:bench:health:fork');
  await sleep(500);
  await call(t, ['BGSAVE'], 30_000);
  for (let i = 0; info(await call(t, ['INFO', 'persistence'], 5000).catch(() => ''), 'rdb_bgsave_in_progress') !== '0'; i++) {
    if (i > 600) throw new Error(`BGSAVE on ${master} did not end within 5 minutes`);
    await sleep(500);
  }
  const forkMs = Number(info(await call(t, ['INFO', 'stats'], 5000), 'latest_fork_usec')) / 1000;
  const moved = await movedAway(p, master, peer, 3000);
  const longestGapMs = await w.stop();
  if (moved) await recover(p, d);
  return { datasetMb, forkMs, moved, longestGapMs };
}

/**
 * Runs every candidate on a pair of its own, filling `result` as it goes (so that a run stopped
 * early keeps what it measured); the lab is removed at the end.
 */
export async function healthRuns(d: HealthDeps, result: HealthResult, candidates = HEALTH_CANDIDATES): Promise<HealthResult> {
  d.log(`health: starting a 2-host lab`);
  const lab = await labUp({ name: d.labName, hosts: 2, recreate: true, signal: d.signal, log: d.log });
  try {
    await availabilityFirst(lab.inventoryPath);
    await setCheck(lab.inventoryPath, candidates[0], true);
    await d.provision(lab);
    const inv = await loadInventory(lab.inventoryPath);
    const c = [...inv.clusters.values()][0];
    const r = c.redis as { port: number; password: string };
    const p: Pair = { lab, c, target: (h) => ({ host: lab.hosts.find((x) => x.name === h)!.address, port: r.port, password: r.password }) };

    // Kill and stall trials first, on a small dataset: a failover loses DEBUG POPULATE's keys
    // (they are not replicated), and resyncs of a few GB would dominate the run.
    for (const check of candidates) {
      await setCheck(lab.inventoryPath, check, true);
      await d.provision(lab);
      const failover: number[] = [];
      for (let i = 1; i <= d.repeat; i++) {
        failover.push(await failoverOnce(p, d));
        d.log(`health [${label(check)}]: failover ${i}/${d.repeat}: writes resumed ${secs(failover.at(-1)!)} after kill -9`);
      }
      const hang = await hangOnce(p, d);
      d.log(`health [${label(check)}]: DEBUG SLEEP ${HANG_SECONDS} (a hang): writes resumed on the peer ${secs(hang)} after it began`);
      const stalls: StallTrial[] = [];
      for (const s of STALL_SECONDS) {
        const t = await stallOnce(p, d, s);
        stalls.push(t);
        d.log(`health [${label(check)}]: DEBUG SLEEP ${s}: ${t.moved ? 'FAILED OVER' : 'stayed'} (longest write gap ${secs(t.longestGapMs)})`);
      }
      result.candidates.push({ check, failover: samples(failover), hangFailoverMs: hang, stalls });
    }
    // Fork trials: one dataset, every candidate in turn (a keepalived reload keeps Redis' data).
    for (const entry of result.candidates) {
      await setCheck(lab.inventoryPath, entry.check, true);
      await d.provision(lab);
      entry.fork = await forkOnce(p, d);
      const f = entry.fork;
      d.log(`health [${label(entry.check)}]: BGSAVE of ${f.datasetMb.toFixed(0)} MB: fork ${f.forkMs.toFixed(1)} ms, ${f.moved ? 'FAILED OVER' : 'stayed'} (longest write gap ${secs(f.longestGapMs)})`);
    }
    return result;
  } finally {
    await labDown(d.labName);
  }
}
