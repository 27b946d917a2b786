/**
 * VRRP falls silent while Redis stays up: the master's keepalived stops sending adverts for a while
 * (SIGSTOP here; a stalled daemon or a multicast outage look the same to the peer), with a client
 * writing through the VIP and no rha run watching. After about 3 s (3 adverts plus the skew) the
 * replica's keepalived becomes MASTER too, and both nodes hold the VIP.
 * - 4 s: the replica's MASTER hook waits (W1, 2 s) and its BACKUP event, once the adverts are
 *   back, supersedes it: nothing is done.
 * - 8 s: the replica's hook takes the master role (M7: the old master follows it). When the adverts
 *   come back it goes BACKUP and fences itself (B9), and the old master's health check takes the
 *   role back (C3, then M7).
 * Asserted are the outcomes, not the rules (their timing depends on the machine's load): one
 * master with the VIP and its replica online, writes taken again, no acknowledged write lost.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { ClusterSpec } from '../../src/core/types.js';
import { labExec, labKill, type LabInfo } from '../../src/lab/index.js';
import { useLab } from '../support/lab.js';
import { labPair, missingThroughVip, redisOn, redisRole, rha, vipHolders, vipWriter, waitFor } from '../support/rha.js';

const lab = useLab('vrrp-stall', 2);
let info: LabInfo;
let c: ClusterSpec;
let inv: string;

const cliOn = async (h: string, args: string[]) => (await redisOn(info, h, c, args)).out;
const role = (h: string) => redisRole(info, h, c);
const holders = () => vipHolders(info, c);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hookLog = async (h: string) => (await labExec(info.name, h, ['cat', '/var/log/rha-keepalived.log'])).stdout;
const fence = async (h: string) => (await cliOn(h, ['CONFIG', 'GET', 'min-replicas-to-write'])).split('\n')[1];

beforeAll(async () => {
  ({ info, c, inv } = await labPair(lab()));
});

describe('the master\'s VRRP adverts stop for a while, Redis up on both nodes', () => {
  for (const seconds of [4, 8]) {
    test(`${seconds} s of silence: one master with the VIP afterwards, its replica online, writes taken, no acknowledged write lost, no rha run`, async () => {
      const p = await rha(['provision', inv]);
      expect(p.code, p.all).toBe(0);
      const master0 = (await holders())[0];
      const peer0 = master0 === 'node1' ? 'node2' : 'node1';
      for (const h of ['node1', 'node2']) await labExec(info.name, h, ['sh', '-c', ': > /var/log/rha-keepalived.log']);
      const w = vipWriter(c, `stall${seconds}`);
      const roles: string[] = [];
      try {
        expect(await waitFor(async () => w.acked.length >= 20 || undefined, 10_000)).toBe(true);
        expect(await labKill(info.name, master0, 'keepalived', 'STOP')).toBeGreaterThan(0);
        const t0 = Date.now();
        while (Date.now() - t0 < seconds * 1000) {
          roles.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${master0}=${await role(master0)} ${peer0}=${await role(peer0)} vip=${(await holders()).join('+')}`);
          await sleep(250);
        }
        expect(await labKill(info.name, master0, 'keepalived', 'CONT')).toBeGreaterThan(0);
        const settled = async () => {
          const h = await holders();
          if (h.length !== 1) return undefined;
          const m = h[0];
          const r = m === 'node1' ? 'node2' : 'node1';
          return (await role(m)) === 'master' && (await fence(m)) !== '1000000' && (await role(r)) === 'slave' &&
            /master_link_status:up/.test(await cliOn(r, ['INFO', 'replication'])) ? m : undefined;
        };
        // Judged once no hook runs (a MASTER hook may still be in its W1 wait), then settled.
        const hooksIdle = async () => {
          for (const h of ['node1', 'node2']) if ((await labExec(info.name, h, ['pgrep', '-f', 'rha/notify.sh'])).code !== 1) return undefined;
          return true;
        };
        await sleep(500);
        expect(await waitFor(hooksIdle, 30_000)).toBe(true);
        const m = await waitFor(settled, 45_000);
        console.log(`${seconds} s stall: roles while silent:\n${roles.join('\n')}\nafter: master ${m}\n${master0} hooks:\n${await hookLog(master0)}\n${peer0} hooks:\n${await hookLog(peer0)}`);
        expect(m, `not settled; ${master0}: ${await hookLog(master0)}\n${peer0}: ${await hookLog(peer0)}`).toBeTruthy();
        const acked = w.acked.length;
        expect(await waitFor(async () => w.acked.length > acked + 5 || undefined, 15_000)).toBe(true);
      } finally {
        await labKill(info.name, master0, 'keepalived', 'CONT').catch(() => 0);
        await w.stop();
      }
      expect(await missingThroughVip(c, `stall${seconds}`, w.acked)).toEqual([]);
      console.log(`${seconds} s stall: ${w.acked.length} writes acknowledged, ${w.errors} refused or failed; longest time without an acknowledged write ${w.longestGap()} ms`);
      const st = await rha(['status', inv]);
      expect(st.code, st.all).toBe(0);
    }, 180_000);
  }
});
