/**
 * The notify hooks' state machine (docs/design.md, "The notify hooks' state machine"), row by row,
 * against the rendered templates/keepalived/notify.sh and two REAL redis-server processes on this
 * machine: "local" on 127.0.0.1 and "peer" on 127.0.0.2, same port, as the two nodes of a pair.
 * A peer that times out, answers garbage or is LOADING is a small TCP server on the peer's address
 * that records what it was sent, so that "never REPLICAOF" is checked, not assumed.
 *
 * Needs redis-server and redis-cli on PATH (bash .ci/setup installs Debian's package, not started)
 * or RHA_TEST_REDIS_BIN=DIR.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { loadInventory } from '../../src/inventory/index.js';
import { renderTemplateFile } from '../../src/template/index.js';
import { snapshotScript } from '../../src/modules/ha/redis-replication.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PASSWORD = 'hook pass #1';
const LOCAL = '127.0.0.1';
const PEER = '127.0.0.2';
const FENCE = '1000000';

function findBin(name: string): string {
  const dir = process.env.RHA_TEST_REDIS_BIN;
  if (dir) return path.join(dir, name);
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${name} not found: run bash .ci/setup (installs Debian's redis-server, not started) or set RHA_TEST_REDIS_BIN`);
  return r.stdout.trim();
}

let dir: string;
let port: number;
let script: string;
let checkScript: string;
let replicaScript: string;
let logFile: string;
let roleFile: string;
let runDir: string;
const servers = new Map<string, ChildProcess>();
const fakes: net.Server[] = [];

beforeAll(async () => {
  const serverBin = findBin('redis-server');
  const cliBin = findBin('redis-cli');
  dir = mkdtempSync(path.join(os.tmpdir(), 'rha-notify-'));
  port = 21000 + Math.floor(Math.random() * 20000);
  for (const d of ['prefix/bin', 'conf', 'hook', 'run', 'data']) mkdirSync(path.join(dir, d), { recursive: true });
  symlinkSync(cliBin, path.join(dir, 'prefix/bin/redis-cli'));
  symlinkSync(serverBin, path.join(dir, 'prefix/bin/redis-server'));
  writeFileSync(path.join(dir, 'hook/redis.auth'), PASSWORD, { mode: 0o600 });
  writeFileSync(path.join(dir, 'secret.pass'), PASSWORD, { mode: 0o600 });
  logFile = path.join(dir, 'notify.log');
  roleFile = path.join(dir, 'conf/replication.conf');
  runDir = path.join(dir, 'run');
  // A real inventory through the real loader, so the script sees the same vars as on a host.
  const invFile = path.join(dir, 'inventory.yaml');
  writeFileSync(
    invFile,
    [
      'hosts: { local: 127.0.0.1, peer: 127.0.0.2 }',
      'clusters:',
      '  cache:',
      '    master: local',
      '    replica: peer',
      '    vip: 10.250.0.100/24',
      `    redis: { port: ${port}, password: { file: ./secret.pass }, prefix: ${dir}/prefix, config_dir: ${dir}/conf, min_replicas_max_lag: 7 }`,
      `    keepalived: { virtual_router_id: 9, log_file: ${logFile} }`,
      '',
    ].join('\n'),
  );
  const inv = await loadInventory(invFile);
  const vars = { ...inv.hosts.get('local')!.vars, notify_hook: { hook_dir: path.join(dir, 'hook'), run_dir: runDir, catchup_s: 1 } };
  script = path.join(dir, 'hook/notify.sh'); // where the health check runs it from (rule C3)
  writeFileSync(script, await renderTemplateFile(path.join(ROOT, 'templates/keepalived/notify.sh.hbs'), vars));
  chmodSync(script, 0o755);
  // The same node as the inventory's replica (the lower VRRP priority): rule W1.
  replicaScript = path.join(dir, 'notify-as-replica.sh');
  const asReplica = { ...vars, node: { ...(vars.node as object), role: 'replica' } };
  writeFileSync(replicaScript, await renderTemplateFile(path.join(ROOT, 'templates/keepalived/notify.sh.hbs'), asReplica));
  chmodSync(replicaScript, 0o755);
  checkScript = path.join(dir, 'check_redis.sh');
  writeFileSync(checkScript, await renderTemplateFile(path.join(ROOT, 'templates/keepalived/check_redis.sh.hbs'), vars));
  chmodSync(checkScript, 0o755);
});

afterEach(async () => {
  await stopAll();
  rmSync(logFile, { force: true });
  rmSync(roleFile, { force: true });
  // The latest event a test recorded (or wrote) is not the next test's.
  rmSync(eventFile(), { force: true });
});

afterAll(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function stopAll(): Promise<void> {
  for (const [, p] of servers) {
    p.kill('SIGKILL');
    await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(undefined) : p.once('exit', r)));
  }
  servers.clear();
  for (const f of fakes.splice(0)) await new Promise((r) => f.close(r));
}

/** Starts a real redis-server on ADDR:port (no persistence, fresh data) and waits for PING. */
async function start(addr: string, extra: string[] = [], password = PASSWORD, keepData = false): Promise<void> {
  const data = path.join(dir, 'data', addr);
  if (!keepData) rmSync(data, { recursive: true, force: true });
  mkdirSync(data, { recursive: true });
  const p = spawn(
    path.join(dir, 'prefix/bin/redis-server'),
    ['--port', String(port), '--bind', addr, '--requirepass', password, '--masterauth', PASSWORD, '--save', '', '--appendonly', 'no',
      '--dir', data, '--replica-announce-ip', addr, '--repl-diskless-sync-delay', '0', '--repl-ping-replica-period', '3600', '--protected-mode', 'no', ...extra],
    { stdio: 'ignore' },
  );
  servers.set(addr, p);
  for (let i = 0; i < 100; i++) {
    if (cli(addr, ['PING'], password) === 'PONG') return;
    await sleep(50);
  }
  throw new Error(`redis-server on ${addr}:${port} did not start`);
}

/** redis-cli against ADDR (password through the environment); the reply text. */
function cli(addr: string, args: string[], password = PASSWORD): string {
  const r = spawnSync(path.join(dir, 'prefix/bin/redis-cli'), ['--no-auth-warning', '-h', addr, '-p', String(port), ...args], {
    env: { REDISCLI_AUTH: password, PATH: process.env.PATH },
    encoding: 'utf8',
    timeout: 5000,
  });
  return (r.stdout + r.stderr).trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const info = (addr: string, field: string) => new RegExp(`^${field}:(.*)$`, 'm').exec(cli(addr, ['INFO', 'replication']).replace(/\r/g, ''))?.[1];
const role = (addr: string) => info(addr, 'role');
const dbsize = (addr: string) => Number(cli(addr, ['DBSIZE']));
const minReplicas = (addr: string) => cli(addr, ['CONFIG', 'GET', 'min-replicas-to-write']).split('\n')[1];
/** Whether ADDR is fenced: a write is refused with NOREPLICAS because min-replicas-to-write is the hook's fence. */
const fenced = (addr: string) => minReplicas(addr) === FENCE && cli(addr, ['SET', 'fence-probe', 'x']).startsWith('NOREPLICAS');

function write(addr: string, prefix: string, n: number): void {
  for (let i = 0; i < n; i++) expect(cli(addr, ['SET', `${prefix}:${i}`, String(i)])).toBe('OK');
}

async function waitUntil(probe: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (probe()) return true;
    await sleep(50);
  }
  return probe();
}

/**
 * Two masters holding keys of their own made replicas of each other without either syncing (their
 * links held off until both follow): they deadlock in NOMASTERLINK, as diverged masters do when
 * each one's hook makes it follow the other.
 */
async function cycle(): Promise<void> {
  for (const a of [LOCAL, PEER]) expect(cli(a, ['CONFIG', 'SET', 'masterauth', 'wrong'])).toBe('OK');
  await replicate(LOCAL, PEER, false);
  await replicate(PEER, LOCAL, false);
  for (const a of [LOCAL, PEER]) expect(cli(a, ['CONFIG', 'SET', 'masterauth', PASSWORD])).toBe('OK');
  await sleep(1500); // both retry (once a second) and get NOMASTERLINK
  expect(cli(LOCAL, ['INFO', 'replication'])).toContain('master_link_status:down');
}

/** Local an in-sync replica of the peer, a master holding KEYS keys (p:0..). */
async function inSyncReplicaOfPeer(keys: number): Promise<void> {
  await start(LOCAL);
  await start(PEER);
  write(PEER, 'p', keys);
  await replicate(LOCAL, PEER);
  expect(await waitUntil(() => info(LOCAL, 'master_repl_offset') === info(PEER, 'master_repl_offset'))).toBe(true);
}

/** REPLICAOF, then wait for the link (or not, when `linked` is false). */
async function replicate(from: string, to: string, linked = true): Promise<void> {
  expect(cli(from, ['REPLICAOF', to, String(port)])).toBe('OK');
  if (linked) expect(await waitUntil(() => info(from, 'master_link_status') === 'up' && info(from, 'master_sync_in_progress') === '0')).toBe(true);
}

/** Runs the rendered hook for EVENT (as keepalived would: no terminal, a bare environment); returns this run's log. */
async function hook(event: string, file = script): Promise<string> {
  const before = existsSync(logFile) ? readFileSync(logFile, 'utf8').length : 0;
  await runAsKeepalived(file, [event], 30_000);
  return existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(before) : '';
}

/** Runs a rendered script as keepalived would (no terminal, a bare environment); its exit code. */
function runAsKeepalived(file: string, args: string[], timeoutMs: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const p = spawn('/bin/sh', [file, ...args], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: 'ignore' });
    const t = setTimeout(() => reject(new Error(`${path.basename(file)} did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve(code ?? -1);
    });
  });
}

/** The whole hook log so far. */
const logText = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

/** The rule IDs a run logged, in order. */
const rules = (log: string) => [...log.matchAll(/rule (\w+):/g)].map((m) => m[1]);

/** A TCP server on the peer's address (or ADDR): `reply` decides what each connection gets; records what it was sent. */
async function fakePeer(reply: 'silent' | 'garbage' | 'loading', addr = PEER): Promise<{ received: () => string }> {
  let got = '';
  const server = net.createServer((s) => {
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (reply === 'loading') s.write('-LOADING Redis is loading the dataset in memory\r\n');
    });
    s.on('error', () => undefined);
    if (reply === 'garbage') s.write('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
  });
  await new Promise<void>((r) => server.listen(port, addr, r));
  fakes.push(server);
  return { received: () => got };
}

describe('master event: this node took the VIP', () => {
  test('M1: the peer is unreachable (nothing listens): promoted at once, with the configured min-replicas (never 0)', async () => {
    await start(LOCAL);
    write(LOCAL, 'l', 3);
    await replicate(LOCAL, PEER, false);
    const log = await hook('master');
    expect(rules(log)).toEqual(['M1']);
    expect(log).toContain('unreachable');
    expect(role(LOCAL)).toBe('master');
    expect(dbsize(LOCAL)).toBe(3);
    expect(minReplicas(LOCAL)).toBe('1');
    expect(readFileSync(roleFile, 'utf8')).not.toMatch(/replicaof|min-replicas/);
  });

  test('M1: a peer that accepts and never answers (timeout): promoted, and the peer is never sent REPLICAOF', async () => {
    await start(LOCAL);
    write(LOCAL, 'l', 2);
    const fake = await fakePeer('silent');
    const log = await hook('master');
    expect(rules(log)).toEqual(['M1']);
    expect(log).toContain('timeout');
    expect(role(LOCAL)).toBe('master');
    expect(fake.received()).not.toMatch(/REPLICAOF/i);
  });

  test('M1 after a wait: a peer LOADING its data gets the catch-up time, then this node is promoted; no REPLICAOF to it', async () => {
    await start(LOCAL);
    const fake = await fakePeer('loading');
    const log = await hook('master');
    expect(rules(log)).toEqual(['M1']);
    expect(log).toContain('loading');
    expect(role(LOCAL)).toBe('master');
    // It was asked again during the wait: INFO more than once, never REPLICAOF.
    expect(fake.received().match(/INFO/gi)!.length).toBeGreaterThan(1);
    expect(fake.received()).not.toMatch(/REPLICAOF/i);
  });

  test('M3: a peer that rejects the password: promoted but fenced, the peer (a master with keys) not touched', async () => {
    await start(LOCAL);
    await start(PEER, [], 'another password');
    expect(cli(PEER, ['SET', 'p', '1'], 'another password')).toBe('OK');
    const log = await hook('master');
    expect(rules(log)).toEqual(['M3', 'M3']);
    expect(log).toContain('auth');
    expect(role(LOCAL)).toBe('master');
    expect(fenced(LOCAL)).toBe(true);
    expect(readFileSync(roleFile, 'utf8')).toContain('# rha-fenced: rule M3');
    expect(cli(PEER, ['DBSIZE'], 'another password')).toBe('1');
    expect(cli(PEER, ['ROLE'], 'another password').split('\n')[0]).toBe('master');
  });

  test('M3: a peer that answers garbage (not Redis): promoted but fenced, never REPLICAOF', async () => {
    await start(LOCAL);
    const fake = await fakePeer('garbage');
    const log = await hook('master');
    expect(rules(log)).toEqual(['M3', 'M3']);
    expect(log).toContain('garbage');
    expect(fenced(LOCAL)).toBe(true);
    expect(fake.received()).not.toMatch(/REPLICAOF/i);
  });

  test('M2: a peer that answers garbage to us but is our online replica: promoted, not fenced', async () => {
    // The peer is a real replica of ours; the hook's probe of it fails (wrong password there).
    await start(LOCAL);
    await start(PEER, [], 'another password');
    write(LOCAL, 'l', 2);
    expect(cli(PEER, ['REPLICAOF', LOCAL, String(port)], 'another password')).toBe('OK');
    expect(await waitUntil(() => cli(PEER, ['DBSIZE'], 'another password') === '2')).toBe(true);
    // M2's condition is the master listing the peer as an online replica: the replica may have
    // loaded its copy a moment before the master marks it online.
    expect(await waitUntil(() => cli(LOCAL, ['INFO', 'replication']).includes('state=online'))).toBe(true);
    const log = await hook('master');
    expect(rules(log)).toEqual(['M2']);
    expect(fenced(LOCAL)).toBe(false);
  });

  test('M4: the peer is our replica in sync (the normal case): promoted, the peer left as it is', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 5);
    await replicate(PEER, LOCAL);
    expect(cli(LOCAL, ['CONFIG', 'SET', 'min-replicas-to-write', FENCE])).toBe('OK');
    const log = await hook('master');
    expect(rules(log)).toEqual(['M4']);
    expect(role(LOCAL)).toBe('master');
    expect(minReplicas(LOCAL)).toBe('1'); // the fence lifted to the user's value, not 0
    expect(role(PEER)).toBe('slave');
  });

  test('M5: each replicates from the other (diverged masters started together): the peer is detached and fenced, no key lost on either side', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 4);
    write(PEER, 'p', 6);
    await cycle();
    const log = await hook('master');
    expect(rules(log)).toEqual(['M5', 'M5']);
    expect(role(LOCAL)).toBe('master');
    expect(role(PEER)).toBe('master');
    await sleep(500); // had the peer kept following us, its sync would have replaced its keys by now
    expect(dbsize(LOCAL)).toBe(4);
    expect(dbsize(PEER)).toBe(6);
    expect(fenced(PEER)).toBe(true);
  });

  test('M6: the peer is a master holding no keys: promoted, the empty peer demoted to our replica', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 3);
    const log = await hook('master');
    expect(rules(log)).toEqual(['M6', 'M6']);
    expect(role(LOCAL)).toBe('master');
    expect(await waitUntil(() => role(PEER) === 'slave' && dbsize(PEER) === 3)).toBe(true);
    expect(dbsize(LOCAL)).toBe(3);
  });

  test('M7: the peer is a master on our history and not ahead: fenced, then demoted after we are promoted (partial resync)', async () => {
    await inSyncReplicaOfPeer(5);
    const log = await hook('master');
    expect(rules(log)).toEqual(['M7', 'M7']);
    expect(role(LOCAL)).toBe('master');
    expect(await waitUntil(() => role(PEER) === 'slave' && info(PEER, 'master_link_status') === 'up')).toBe(true);
    expect(dbsize(PEER)).toBe(5);
    expect(dbsize(LOCAL)).toBe(5);
    expect(cli(PEER, ['INFO', 'stats'])).toMatch(/sync_partial_ok:0/); // the peer is the one who resynced...
    expect(cli(LOCAL, ['INFO', 'stats'])).toMatch(/sync_partial_ok:1/); // ...partially, from us
  });

  test('W1: on the lower-priority node (the inventory\'s replica) the hook waits before acting on a master peer; its BACKUP event during the wait supersedes it: the peer is never fenced nor demoted', async () => {
    await inSyncReplicaOfPeer(5);
    // Both nodes MASTER for a moment: this one hears the other's adverts and goes BACKUP.
    const master = hook('master', replicaScript);
    await sleep(1000);
    expect(logText()).toMatch(/\[master\] rule W1: the peer is a master too and has the higher VRRP priority: waiting 2s/);
    const backup = hook('backup', replicaScript);
    await Promise.all([master, backup]);
    expect(rules(logText())).toEqual(['W1', 'L2', 'B4']);
    expect(logText()).toMatch(/\[master\] rule L2: superseded by a later event \(backup [^)]*\) during the wait: nothing done/);
    expect(role(PEER)).toBe('master');
    expect(fenced(PEER)).toBe(false);
    expect(role(LOCAL)).toBe('slave');
    expect(dbsize(LOCAL)).toBe(5);
  });

  test('W1: with no BACKUP event in the wait (the peer\'s keepalived is gone, its Redis alive), the hook reads both again and decides: M7', async () => {
    await inSyncReplicaOfPeer(5);
    const t0 = Date.now();
    const log = await hook('master', replicaScript);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    expect(rules(log)).toEqual(['W1', 'M7', 'M7']);
    expect(log.match(/ local: ok /g)).toHaveLength(2); // read again after the wait
    expect(role(LOCAL)).toBe('master');
    expect(await waitUntil(() => role(PEER) === 'slave' && info(PEER, 'master_link_status') === 'up')).toBe(true);
    expect(dbsize(PEER)).toBe(5);
  });

  test('M8: the peer is ahead of us on our history: fenced, we catch up, then take over; its later writes are kept', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 5);
    await replicate(LOCAL, PEER);
    expect(cli(LOCAL, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK'); // we left its history, with no write since
    write(PEER, 'later', 4); // ...and it went on
    const log = await hook('master');
    expect(rules(log)).toEqual(['M8', 'M8', 'M8']);
    expect(role(LOCAL)).toBe('master');
    expect(dbsize(LOCAL)).toBe(9);
    expect(await waitUntil(() => role(PEER) === 'slave' && dbsize(PEER) === 9)).toBe(true);
  });

  test('M8: we hold no keys and the peer, a master on another history, holds them: we copy them first, then take over', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 7);
    const log = await hook('master');
    expect(rules(log)).toEqual(['M8', 'M8', 'M8']);
    expect(role(LOCAL)).toBe('master');
    expect(dbsize(LOCAL)).toBe(7);
    expect(await waitUntil(() => role(PEER) === 'slave' && dbsize(PEER) === 7)).toBe(true);
  });

  test('M9: the catch-up does not complete: not promoted, the peer fenced and NOT demoted, nothing lost', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 5);
    await replicate(LOCAL, PEER);
    expect(cli(LOCAL, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK');
    write(PEER, 'later', 4);
    // Our link to the peer cannot come up (wrong masterauth here): the catch-up cannot finish.
    expect(cli(LOCAL, ['CONFIG', 'SET', 'masterauth', 'wrong'])).toBe('OK');
    const log = await hook('master');
    expect(rules(log)).toEqual(['M8', 'M9']);
    expect(log).toContain('catch-up incomplete');
    expect(role(LOCAL)).toBe('slave');
    expect(role(PEER)).toBe('master');
    expect(dbsize(PEER)).toBe(9);
    expect(fenced(PEER)).toBe(true);
  });

  test('M10: the peer is a master on another history holding keys: promoted, the peer fenced with its keys, none lost', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 3);
    write(PEER, 'p', 4);
    const log = await hook('master');
    expect(rules(log)).toEqual(['M10', 'M10']);
    expect(role(LOCAL)).toBe('master');
    expect(role(PEER)).toBe('master');
    expect(dbsize(LOCAL)).toBe(3);
    expect(dbsize(PEER)).toBe(4);
    expect(fenced(PEER)).toBe(true);
    expect(minReplicas(LOCAL)).toBe('1');
  });

  test('M0: the local Redis does not answer: nothing is done to the peer', async () => {
    await start(PEER);
    write(PEER, 'p', 2);
    const log = await hook('master');
    expect(rules(log)).toEqual(['M0']);
    expect(role(PEER)).toBe('master');
    expect(fenced(PEER)).toBe(false);
  });
});

describe('backup event: this node does not hold the VIP', () => {
  for (const kind of ['unreachable', 'timeout', 'garbage', 'loading', 'auth'] as const) {
    test(`B1: a master whose peer is ${kind}: fenced, keys kept, never REPLICAOF`, async () => {
      await start(LOCAL);
      write(LOCAL, 'l', 3);
      let received = () => '';
      if (kind === 'auth') await start(PEER, [], 'another password');
      else if (kind !== 'unreachable') received = (await fakePeer(kind === 'loading' ? 'loading' : kind === 'timeout' ? 'silent' : 'garbage')).received;
      const log = await hook('backup');
      expect(rules(log)).toEqual(['B1']);
      expect(log).toContain(kind);
      expect(role(LOCAL)).toBe('master');
      expect(dbsize(LOCAL)).toBe(3);
      expect(fenced(LOCAL)).toBe(true);
      expect(readFileSync(roleFile, 'utf8')).toContain('min-replicas-to-write 1000000');
      expect(received()).not.toMatch(/REPLICAOF/i);
    });
  }

  test('B2: a replica whose peer is unreachable stays a replica, data untouched', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 3);
    await replicate(LOCAL, PEER);
    servers.get(PEER)!.kill('SIGKILL');
    await waitUntil(() => info(LOCAL, 'master_link_status') === 'down');
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B2']);
    expect(role(LOCAL)).toBe('slave');
    expect(dbsize(LOCAL)).toBe(3);
  });

  test('B3: following an EMPTY master whose sync has not completed: stops following it, fenced, keys kept', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 3);
    expect(cli(LOCAL, ['CONFIG', 'SET', 'masterauth', 'wrong'])).toBe('OK'); // holds the sync off, as a slow link would
    await replicate(LOCAL, PEER, false);
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B3']);
    expect(role(LOCAL)).toBe('master');
    expect(dbsize(LOCAL)).toBe(3);
    expect(fenced(LOCAL)).toBe(true);
  });

  test('B4: already a replica of the master peer: stays, replication.conf records it', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 3);
    await replicate(LOCAL, PEER);
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B4']);
    expect(role(LOCAL)).toBe('slave');
    expect(readFileSync(roleFile, 'utf8')).toContain(`replicaof ${PEER} ${port}`);
  });

  test('B5: we follow the peer, which follows us (a cycle): nothing done, data untouched', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 2);
    write(PEER, 'p', 3);
    await cycle();
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B5']);
    expect(dbsize(LOCAL)).toBe(2);
    expect(dbsize(PEER)).toBe(3);
  });

  test('B6: we hold no keys and the peer is a master: we replicate from it', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 4);
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B6']);
    expect(await waitUntil(() => role(LOCAL) === 'slave' && dbsize(LOCAL) === 4)).toBe(true);
    expect(readFileSync(roleFile, 'utf8')).toContain(`replicaof ${PEER} ${port}`);
  });

  test('B7: a master on the peer\'s history and not ahead of it (promoted, no write since): replicates from it, nothing lost', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 4);
    await replicate(LOCAL, PEER);
    expect(cli(LOCAL, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK');
    write(PEER, 'later', 2);
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B7']);
    expect(await waitUntil(() => role(LOCAL) === 'slave' && dbsize(LOCAL) === 6)).toBe(true);
  });

  test('B7 after a fence: the offset a fenced master gained since (replication pings, no writes) is not counted as data', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 4);
    await replicate(PEER, LOCAL);
    expect(cli(PEER, ['SAVE'])).toBe('OK'); // the peer's copy on disk: history of LOCAL up to here
    servers.get(PEER)!.kill('SIGSTOP'); // a partition: LOCAL still believes in its replica...
    expect(rules(await hook('fault'))).toEqual(['F1']); // ...its keepalived faults: fenced here
    const at = Number(info(LOCAL, 'master_repl_offset'));
    expect(cli(LOCAL, ['CONFIG', 'SET', 'repl-ping-replica-period', '1'])).toBe('OK');
    expect(await waitUntil(() => Number(info(LOCAL, 'master_repl_offset')) > at, 5000)).toBe(true); // pings
    // The other side took over (here: restarted from its copy, a master that left LOCAL's history at `at`).
    servers.get(PEER)!.kill('SIGKILL');
    await new Promise((r) => servers.get(PEER)!.once('exit', r));
    await start(PEER, [], PASSWORD, true);
    expect(dbsize(PEER)).toBe(4);
    const log = await hook('backup');
    expect(log).toMatch(/fenced since offset \d+ \(the \d+ bytes since are replication pings, no writes\)/);
    expect(rules(log)).toEqual(['B7']);
    expect(await waitUntil(() => role(LOCAL) === 'slave' && info(LOCAL, 'master_link_status') === 'up')).toBe(true);
    expect(dbsize(LOCAL)).toBe(4);
  });

  test('B7 after a reboot: a master fenced by its stop hook restarts with a new replication ID; judged by where the fence stopped it, it replicates from the promoted peer, nothing lost', async () => {
    await start(LOCAL, ['--appendonly', 'yes']);
    await start(PEER);
    write(LOCAL, 'l', 4);
    await replicate(PEER, LOCAL);
    expect(rules(await hook('stop'))).toEqual(['F1']); // the reboot stops keepalived first: fenced
    expect(readFileSync(roleFile, 'utf8')).toMatch(/^# rha-fenced-at: [0-9a-f]{40} \d+$/m);
    const before = info(LOCAL, 'master_replid');
    // The peer takes over (its hook promotes it) and takes writes; this node reboots from its AOF,
    // with the fence replication.conf gives it at start-up.
    expect(cli(PEER, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK');
    write(PEER, 'later', 2);
    cli(LOCAL, ['SHUTDOWN']);
    await new Promise((r) => (servers.get(LOCAL)!.exitCode !== null ? r(undefined) : servers.get(LOCAL)!.once('exit', r)));
    await start(LOCAL, ['--appendonly', 'yes', '--min-replicas-to-write', FENCE], PASSWORD, true);
    expect(dbsize(LOCAL)).toBe(4);
    expect(info(LOCAL, 'master_replid')).not.toBe(before); // what the rule is for
    const log = await hook('backup');
    expect(log).toMatch(/fenced since offset \d+ of [0-9a-f]{40}, before a restart/);
    expect(rules(log)).toEqual(['B7']);
    expect(await waitUntil(() => role(LOCAL) === 'slave' && dbsize(LOCAL) === 6)).toBe(true);
  });

  test('B8: diverged masters (each with keys of its own): fenced, both key sets kept, never REPLICAOF', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 3);
    write(PEER, 'p', 5);
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B8']);
    expect(role(LOCAL)).toBe('master');
    expect(dbsize(LOCAL)).toBe(3);
    expect(dbsize(PEER)).toBe(5);
    expect(fenced(LOCAL)).toBe(true);
  });

  test('B8: a split brain healed: the peer was promoted without our last writes; we keep them, fenced', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 3);
    await replicate(PEER, LOCAL);
    expect(cli(PEER, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK'); // the partition: the peer takes over
    write(LOCAL, 'isolated', 2); // writes the old master took before its bound stopped it
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B8']);
    expect(role(LOCAL)).toBe('master');
    expect(dbsize(LOCAL)).toBe(5);
    expect(fenced(LOCAL)).toBe(true);
  });

  test('B9: the master the peer replicates from, without the VIP: fenced until the VIP comes here', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 3);
    await replicate(PEER, LOCAL);
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B9']);
    expect(fenced(LOCAL)).toBe(true);
    expect(role(PEER)).toBe('slave');
    // The VIP arrives: the master hook lifts the fence to the user's value.
    expect(rules(await hook('master'))).toEqual(['M4']);
    expect(fenced(LOCAL)).toBe(false);
    expect(minReplicas(LOCAL)).toBe('1');
  });

  test('B10: a master whose peer is a replica of someone else: fenced', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 1);
    await replicate(PEER, '127.0.0.3', false);
    const log = await hook('backup');
    expect(rules(log)).toEqual(['B10']);
    expect(fenced(LOCAL)).toBe(true);
  });
});

describe('fault and stop events', () => {
  test('F1: a master is fenced (now and after a restart: replication.conf says so)', async () => {
    await start(LOCAL);
    write(LOCAL, 'l', 2);
    for (const event of ['fault', 'stop']) {
      const log = await hook(event);
      expect(rules(log)).toEqual(['F1']);
      expect(fenced(LOCAL)).toBe(true);
      expect(readFileSync(roleFile, 'utf8')).toMatch(/# rha-fenced: rule F1: keepalived (fault|stop)[^\n]*\n# rha-fenced-at: [0-9a-f]{40} \d+\nmin-replicas-to-write 1000000\nmin-replicas-max-lag 7\n/);
    }
  });

  test("F1 from the Redis unit's ExecStop (redis-stop): a master stopping for a reboot is fenced by itself, whatever keepalived's hook managed", async () => {
    await start(LOCAL);
    write(LOCAL, 'l', 2);
    expect(rules(await hook('redis-stop'))).toEqual(['F1']);
    expect(fenced(LOCAL)).toBe(true);
    expect(readFileSync(roleFile, 'utf8')).toMatch(/# rha-fenced: rule F1: Redis is being stopped\n# rha-fenced-at: [0-9a-f]{40} \d+\nmin-replicas-to-write 1000000\n/);
  });

  test('F2: a replica: nothing to do; made the peer\'s replica at run time (its hook, M6-M8), it records that first, so that a restart comes back a replica', async () => {
    await start(LOCAL);
    await start(PEER);
    writeFileSync(roleFile, `# rha-fenced: rule B9: ...\nmin-replicas-to-write ${FENCE}\nmin-replicas-max-lag 7\n`);
    await replicate(LOCAL, PEER); // what the peer's demote_peer does: REPLICAOF, at run time only
    const first = await hook('fault');
    expect(rules(first)).toEqual(['F2']);
    expect(first).toContain(`a replica of the peer; recorded "replicaof ${PEER} ${port}" in replication.conf`);
    expect(readFileSync(roleFile, 'utf8')).toMatch(new RegExp(`^# Written by rha's notify hook \\(fault\\)[^\\n]*\\nreplicaof ${PEER} ${port}\\n$`));
    const second = await hook('redis-stop');
    expect(rules(second)).toEqual(['F2']);
    expect(second).toContain('a replica, nothing to do');
    expect(role(LOCAL)).toBe('slave');
  });
});

/**
 * Runs the rendered health check as keepalived would; its exit code. `fresh` (the default) drops
 * the record of when the last check looked at the role, so that this one looks.
 */
async function check(fresh = true): Promise<number> {
  if (fresh) rmSync(checkStamp(), { force: true });
  return runAsKeepalived(checkScript, [], 10_000);
}
/** Where the check keeps the time of its last look at the role. */
const checkStamp = () => path.join(runDir, 'rha-check.cache.recorded');
/** The hooks' latest-event file and lock. */
const eventFile = () => path.join(runDir, 'rha-notify.cache.event');
const lockFile = () => path.join(runDir, 'rha-notify.cache.lock');
const lockFree = () => spawnSync('flock', ['-n', lockFile(), 'true']).status === 0;
/** What keepalived's hooks last recorded on this node: EVENT as the latest VRRP state. */
const latestEvent = (event: string) => writeFileSync(eventFile(), `4242 ${event} ${Date.now()}000000\n`);
/** The check, then the hook it started in the background (if any) to its end. */
async function checkAndHook(): Promise<void> {
  expect(await check()).toBe(0);
  await sleep(300);
  expect(await waitUntil(lockFree, 20_000)).toBe(true);
}

describe('the health check (check_redis.sh): PING decides; what the peer\'s hook made this node is recorded for a restart', () => {
  const staleFence = `# rha-fenced: rule B9: we are the master the peer replicates from\n# rha-fenced-at: ${'a'.repeat(40)} 126\nmin-replicas-to-write ${FENCE}\nmin-replicas-max-lag 7\n`;

  test('passes on a Redis that answers PING; fails when nothing listens, on a wrong password, and while Redis is LOADING', async () => {
    expect(await check()).toBe(1);
    await start(LOCAL, [], 'another password');
    expect(await check()).toBe(1);
    await stopAll();
    await fakePeer('loading', LOCAL);
    expect(await check()).toBe(1);
    await stopAll();
    await start(LOCAL);
    expect(await check()).toBe(0);
    expect(existsSync(roleFile)).toBe(false); // a master's file is the hooks' business
  });

  test('C1: made the peer\'s replica at run time, with replication.conf still saying "fenced master": the file is rewritten to follow the peer, once', async () => {
    await start(LOCAL);
    await start(PEER);
    writeFileSync(roleFile, staleFence);
    await replicate(LOCAL, PEER);
    expect(await check()).toBe(0);
    const text = readFileSync(roleFile, 'utf8');
    expect(text).toMatch(new RegExp(`^# Written by rha's health check \\(C1\\) [^\\n]*\\nreplicaof ${PEER} ${port}\\n$`));
    expect(statSync(roleFile).mode & 0o777).toBe(0o640);
    expect(readFileSync(logFile, 'utf8')).toContain(`local[check] rule C1: a replica of the peer ${PEER}: recorded "replicaof ${PEER} ${port}" in replication.conf`);
    const ino = statSync(roleFile).ino;
    expect(await check()).toBe(0);
    expect(statSync(roleFile).ino).toBe(ino); // already true: not written again
    // No temp file is left beside it.
    expect(readdirSync(path.dirname(roleFile)).filter((f) => f.startsWith('replication.conf.'))).toEqual([]);
  });

  test('C2: fenced by the peer\'s hook at run time (M5: detached, then a master, fenced), with replication.conf still saying "replicaof PEER": the fence is recorded and the replicaof line goes, so a restart cannot sync its keys away', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'own', 3);
    writeFileSync(roleFile, `replicaof ${PEER} ${port}\n`);
    // What the peer's M5 does to this node: REPLICAOF NO ONE, then the fence, at run time only.
    expect(cli(LOCAL, ['CONFIG', 'SET', 'min-replicas-to-write', FENCE, 'min-replicas-max-lag', '7'])).toBe('OK');
    expect(await check()).toBe(0);
    expect(readFileSync(roleFile, 'utf8')).toMatch(/^# Written by rha's health check \(C2\) [^\n]*\n# rha-fenced: rule C2: the peer's hook fenced this master at run time\nmin-replicas-to-write 1000000\nmin-replicas-max-lag 7\n$/);
    expect(readFileSync(logFile, 'utf8')).toContain('local[check] rule C2: fenced by the peer\'s hook: recorded the fence in replication.conf');
    expect(fenced(LOCAL)).toBe(true);
    expect(dbsize(LOCAL)).toBe(3);
  });

  test('the role is looked at once per 5 s, not at every check (each look is one or two more redis-cli runs)', async () => {
    await start(LOCAL);
    await start(PEER);
    writeFileSync(roleFile, staleFence);
    expect(await check()).toBe(0); // a master, unfenced: nothing to record; the look is recorded
    await replicate(LOCAL, PEER);
    expect(await check(false)).toBe(0);
    expect(readFileSync(roleFile, 'utf8')).toBe(staleFence); // within 5 s of the last look
    writeFileSync(checkStamp(), `${Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0])) - 5}\n`);
    expect(await check(false)).toBe(0);
    expect(readFileSync(roleFile, 'utf8')).toMatch(new RegExp(`\\nreplicaof ${PEER} ${port}\\n$`));
  });

  test('a replica of someone else, or a master, is left alone; a running hook (its lock held) is never raced: the file waits for a later check', async () => {
    await start(LOCAL);
    await start(PEER);
    writeFileSync(roleFile, staleFence);
    expect(await check()).toBe(0);
    expect(readFileSync(roleFile, 'utf8')).toBe(staleFence); // a master
    expect(cli(LOCAL, ['REPLICAOF', '127.0.0.1', '1'])).toBe('OK'); // M5's detached peer
    expect(await check()).toBe(0);
    expect(readFileSync(roleFile, 'utf8')).toBe(staleFence);
    await replicate(LOCAL, PEER);
    const lock = path.join(runDir, 'rha-notify.cache.lock');
    const holder = spawn('sh', ['-c', `exec 9>>'${lock}'; flock 9; read x`], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await waitUntil(() => spawnSync('flock', ['-n', lock, 'true']).status !== 0);
      expect(await check()).toBe(0); // healthy all the same
      expect(readFileSync(roleFile, 'utf8')).toBe(staleFence);
    } finally {
      holder.stdin!.end();
    }
    await waitUntil(() => spawnSync('flock', ['-n', lock, 'true']).status === 0);
    expect(await check()).toBe(0);
    expect(readFileSync(roleFile, 'utf8')).toMatch(new RegExp(`\\nreplicaof ${PEER} ${port}\\n$`));
  });
});

describe('the health check runs the master hook again where its decision did not hold (C3)', () => {
  /**
   * Both nodes MASTER at once (both booted together), both holding the same data on one history,
   * and each one's hook applied M7 to the other: fenced it, promoted itself, demoted it. The
   * demotions crossed: each is a replica of the other, links down (NOMASTERLINK), the VIP holder
   * (local) still carrying the peer's fence. Seen in a systemd e2e run of a double reboot.
   */
  async function crossedM7(keys: number): Promise<void> {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'k', keys);
    await replicate(PEER, LOCAL);
    expect(cli(PEER, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK'); // two masters, one history, the same keys
    for (const a of [LOCAL, PEER]) expect(cli(a, ['CONFIG', 'SET', 'min-replicas-to-write', FENCE, 'min-replicas-max-lag', '7'])).toBe('OK');
    await cycle();
    expect(role(LOCAL)).toBe('slave');
    expect(role(PEER)).toBe('slave');
  }

  test('C3: a replication cycle after both MASTER hooks demoted each other: the VIP holder takes the master role back (M4), unfenced; the peer follows it; no key lost', async () => {
    await crossedM7(5);
    writeFileSync(roleFile, `replicaof ${PEER} ${port}\n`); // as C1 or F2 could have recorded meanwhile
    latestEvent('master');
    // A running hook is never raced: with the lock held the check starts nothing that acts.
    const holder = spawn('sh', ['-c', `exec 9>>'${lockFile()}'; flock 9; read x`], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await waitUntil(() => !lockFree());
      expect(await check()).toBe(0);
      await sleep(700);
      expect(role(LOCAL)).toBe('slave');
      expect(logText()).toBe('');
    } finally {
      holder.stdin!.end();
    }
    await waitUntil(lockFree);
    await checkAndHook();
    const log = logText();
    expect(rules(log)).toEqual(['C3', 'M4']);
    expect(log).toContain('[master] rule C3: the health check found this node holding the VIP (latest event: master) as a replica of 127.0.0.2, and the peer replicates from us too (a cycle: no master)');
    expect(role(LOCAL)).toBe('master');
    expect(minReplicas(LOCAL)).toBe('1'); // the peer's fence lifted: the inventory's bound
    expect(await waitUntil(() => info(PEER, 'master_link_status') === 'up' && info(PEER, 'master_host') === LOCAL)).toBe(true);
    expect(dbsize(LOCAL)).toBe(5);
    expect(dbsize(PEER)).toBe(5);
    // Writes taken again once the master counts the peer as an online replica (its first ACK).
    expect(await waitUntil(() => /state=online/.test(cli(LOCAL, ['INFO', 'replication'])))).toBe(true);
    expect(cli(LOCAL, ['SET', 'after', '1'])).toBe('OK');
    expect(readFileSync(roleFile, 'utf8')).not.toMatch(/replicaof|min-replicas/); // a restart comes back the master
    expect(readFileSync(eventFile(), 'utf8')).toMatch(/^4242 master /); // `again` records no event of its own
    // Held: a later check has nothing to do.
    await checkAndHook();
    expect(rules(logText())).toEqual(['C3', 'M4']);
  });

  test('C3 not on the node without the VIP (latest event backup): it records C1 and waits for the VIP holder', async () => {
    await crossedM7(3);
    latestEvent('backup');
    await checkAndHook();
    expect(rules(logText())).toEqual(['C1']);
    expect(role(LOCAL)).toBe('slave');
    expect(role(PEER)).toBe('slave');
  });

  test('C3 not while the peer is a master taking writes: two nodes that both stay MASTER must not take the role from each other at every check', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 4);
    await replicate(LOCAL, PEER);
    writeFileSync(roleFile, `replicaof ${PEER} ${port}\n`);
    latestEvent('master');
    await checkAndHook();
    expect(logText()).toBe('');
    expect(role(LOCAL)).toBe('slave');
    expect(role(PEER)).toBe('master');
    expect(fenced(PEER)).toBe(false);
  });

  test('C3 after M9: once the catch-up has completed, the next check finishes the takeover (the peer now within our history: M7), the fenced peer demoted, nothing lost', async () => {
    await start(LOCAL);
    await start(PEER);
    write(PEER, 'p', 5);
    await replicate(LOCAL, PEER);
    expect(cli(LOCAL, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK');
    write(PEER, 'later', 4);
    expect(cli(LOCAL, ['CONFIG', 'SET', 'masterauth', 'wrong'])).toBe('OK');
    expect(rules(await hook('master'))).toEqual(['M8', 'M9']);
    expect(role(LOCAL)).toBe('slave');
    await checkAndHook(); // the link still cannot come up: M9 again, nothing demoted
    expect(rules(logText())).toEqual(['M8', 'M9', 'C3', 'M9']);
    expect(role(PEER)).toBe('master');
    expect(cli(LOCAL, ['CONFIG', 'SET', 'masterauth', PASSWORD])).toBe('OK');
    expect(await waitUntil(() => info(LOCAL, 'master_link_status') === 'up' && dbsize(LOCAL) === 9)).toBe(true);
    await checkAndHook();
    expect(rules(logText())).toEqual(['M8', 'M9', 'C3', 'M9', 'C3', 'M7', 'M7']);
    expect(role(LOCAL)).toBe('master');
    expect(await waitUntil(() => role(PEER) === 'slave' && info(PEER, 'master_link_status') === 'up')).toBe(true);
    expect(dbsize(LOCAL)).toBe(9);
    expect(dbsize(PEER)).toBe(9);
  });
});

describe('the health check runs the backup hook again to follow a peer that became the master later (C4)', () => {
  /**
   * A double reboot seen in CI: this node (the master) stopped fenced (F1) and came back a master on
   * a new replication ID, fenced; the peer, still its replica (link down), was its backup hook's
   * reason to stay fenced (B9). Then the peer's MASTER hook, which cannot see where our writes
   * stopped, judged us a master on another history: promoted itself and fenced us (M10). No hook
   * runs here after that: our VRRP state did not change.
   */
  async function fencedAfterRestart(): Promise<void> {
    await start(LOCAL, ['--appendonly', 'yes']);
    await start(PEER);
    write(LOCAL, 'l', 4);
    await replicate(PEER, LOCAL);
    expect(rules(await hook('stop'))).toEqual(['F1']);
    expect(cli(PEER, ['CONFIG', 'SET', 'masterauth', 'wrong'])).toBe('OK'); // its sync from our restart does not complete
    cli(LOCAL, ['SHUTDOWN']);
    await new Promise((r) => (servers.get(LOCAL)!.exitCode !== null ? r(undefined) : servers.get(LOCAL)!.once('exit', r)));
    await start(LOCAL, ['--appendonly', 'yes', '--min-replicas-to-write', FENCE], PASSWORD, true);
    expect(rules(await hook('backup'))).toEqual(['B9']);
    // The peer's M10: promoted (a new ID; ours before the restart is its previous one), we fenced.
    expect(cli(PEER, ['REPLICAOF', 'NO', 'ONE'])).toBe('OK');
    expect(cli(PEER, ['CONFIG', 'SET', 'masterauth', PASSWORD])).toBe('OK');
    expect(readFileSync(eventFile(), 'utf8')).toMatch(/ backup /);
  }

  test('C4: a fenced master without the VIP follows the peer once the peer is a master taking writes and holds every write we hold (B7 again); nothing lost', async () => {
    await fencedAfterRestart();
    write(PEER, 'later', 2);
    const before = logText().length;
    await checkAndHook();
    const log = logText().slice(before);
    expect(rules(log)).toEqual(['C4', 'B7']);
    expect(log).toMatch(/\[backup\] fenced since offset \d+ of [0-9a-f]{40}, before a restart/);
    expect(await waitUntil(() => role(LOCAL) === 'slave' && info(LOCAL, 'master_link_status') === 'up' && dbsize(LOCAL) === 6)).toBe(true);
    expect(readFileSync(roleFile, 'utf8')).toMatch(new RegExp(`\\nreplicaof ${PEER} ${port}\\n$`));
    expect(readFileSync(eventFile(), 'utf8')).toMatch(/ backup /); // `again` records no event
  });

  test('C4 acts on nothing else: a fenced peer (two fenced masters never follow each other), a peer on another history, a latest event that is not backup', async () => {
    await fencedAfterRestart();
    const quiet = async () => {
      const before = logText().length;
      await checkAndHook();
      expect(logText().slice(before)).toBe('');
      expect(role(LOCAL)).toBe('master');
      expect(fenced(LOCAL)).toBe(true);
    };
    expect(cli(PEER, ['CONFIG', 'SET', 'min-replicas-to-write', FENCE, 'min-replicas-max-lag', '7'])).toBe('OK');
    await quiet();
    expect(cli(PEER, ['CONFIG', 'SET', 'min-replicas-to-write', '1'])).toBe('OK');
    latestEvent('stop');
    await quiet();
    latestEvent('backup');
    // A peer on another history (a fresh master with keys of its own): our keys are never discarded.
    const p = servers.get(PEER)!;
    p.kill('SIGKILL');
    await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(undefined) : p.once('exit', r)));
    await start(PEER);
    write(PEER, 'other', 3);
    await quiet();
    expect(dbsize(LOCAL)).toBe(4);
  });
});

describe('serialised runs', () => {
  test('L2: runs wait for the lock, and a run superseded by a later event does nothing', async () => {
    await start(LOCAL);
    await start(PEER);
    write(LOCAL, 'l', 3);
    await replicate(PEER, LOCAL);
    // Hold the hooks' lock, as a long run would.
    const lock = path.join(runDir, 'rha-notify.cache.lock');
    // A shell holding the lock until its stdin closes.
    const holder = spawn('sh', ['-c', `exec 9>>'${lock}'; flock 9; read x`], { stdio: ['pipe', 'ignore', 'ignore'] });
    await waitUntil(() => spawnSync('flock', ['-n', lock, 'true']).status !== 0);
    const older = hook('backup');
    await waitUntil(() => existsSync(path.join(runDir, 'rha-notify.cache.event')) && readFileSync(path.join(runDir, 'rha-notify.cache.event'), 'utf8').includes('backup'));
    const newer = hook('master');
    await waitUntil(() => readFileSync(path.join(runDir, 'rha-notify.cache.event'), 'utf8').includes('master'));
    await sleep(200);
    expect(existsSync(logFile) ? readFileSync(logFile, 'utf8') : '').toBe(''); // both are waiting
    holder.stdin!.end();
    await Promise.all([older, newer]);
    const log = readFileSync(logFile, 'utf8');
    expect(rules(log).sort()).toEqual(['L2', 'M4']);
    expect(log).toMatch(/\[backup\] rule L2: superseded by a later event \(master/);
    expect(fenced(LOCAL)).toBe(false); // the stale backup run did not fence the VIP holder
  });
});

describe('a snapshot before destruction (redis_replication, before a REPLICAOF that discards keys)', () => {
  test('BGSAVE, then a timestamped copy of the RDB under the data folder; its path is reported', async () => {
    await start(LOCAL);
    write(LOCAL, 'doomed', 25);
    const cliLine = `${path.join(dir, 'prefix/bin/redis-cli')} --no-auth-warning -h 127.0.0.1 -p ${port}`;
    const r = spawnSync('sh', ['-c', ['set -e', ...snapshotScript(cliLine, 'before-replicaof-10.0.0.12', 30)].join('\n')], {
      env: { REDISCLI_AUTH: PASSWORD, PATH: process.env.PATH },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const snap = /^snapshot:(.*)$/m.exec(r.stdout)?.[1];
    expect(snap).toMatch(new RegExp(`^${path.join(dir, 'data', LOCAL)}/rha-snapshots/dump\\.rdb\\.\\d{8}T\\d{6}Z\\.before-replicaof-10\\.0\\.0\\.12$`));
    // A real RDB holding the 25 keys: load it into a fresh server.
    expect(readFileSync(snap!).subarray(0, 5).toString()).toBe('REDIS');
    await stopAll();
    const data = path.join(dir, 'data', PEER);
    rmSync(data, { recursive: true, force: true });
    mkdirSync(data, { recursive: true });
    const p = spawn(path.join(dir, 'prefix/bin/redis-server'), ['--port', String(port), '--bind', PEER, '--requirepass', PASSWORD, '--dir', path.dirname(snap!), '--dbfilename', path.basename(snap!), '--appendonly', 'no', '--save', ''], { stdio: 'ignore' });
    servers.set(PEER, p);
    expect(await waitUntil(() => cli(PEER, ['DBSIZE']) === '25')).toBe(true);
  });

  test('a save that fails stops the script before anything is replaced', async () => {
    await start(LOCAL);
    write(LOCAL, 'k', 2);
    const cliLine = `${path.join(dir, 'prefix/bin/redis-cli')} --no-auth-warning -h 127.0.0.1 -p ${port}`;
    // The data folder is gone: BGSAVE fails.
    rmSync(path.join(dir, 'data', LOCAL), { recursive: true, force: true });
    const r = spawnSync('sh', ['-c', ['set -e', ...snapshotScript(cliLine, 'x', 10), 'echo REPLACED'].join('\n')], {
      env: { REDISCLI_AUTH: PASSWORD, PATH: process.env.PATH },
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('nothing replaced');
    expect(r.stdout).not.toContain('REPLACED');
  });
});

describe('redis.conf: the split-brain bound', () => {
  const render = async (lag?: number) => {
    const f = path.join(dir, `inv-${lag ?? 'default'}.yaml`);
    writeFileSync(
      f,
      [
        'hosts: { a: 10.1.0.1, b: 10.1.0.2 }',
        'clusters:',
        '  c: { master: a, replica: b, vip: 10.1.0.100/24, keepalived: { virtual_router_id: 3 },',
        `       redis: { password: x${lag === undefined ? '' : `, min_replicas_max_lag: ${lag}`} } }`,
        '',
      ].join('\n'),
    );
    const inv = await loadInventory(f);
    return renderTemplateFile(path.join(ROOT, 'templates/redis/redis.conf.hbs'), { ...inv.hosts.get('a')!.vars, facts: { serviceManager: 'systemd' } });
  };
  test('default: min-replicas-to-write 1, min-replicas-max-lag 10', async () => {
    expect(await render()).toMatch(/^min-replicas-to-write 1\nmin-replicas-max-lag 10$/m);
  });
  test('configured lag 4; 0 disables', async () => {
    expect(await render(4)).toMatch(/^min-replicas-to-write 1\nmin-replicas-max-lag 4$/m);
    const off = await render(0);
    expect(off).toMatch(/^min-replicas-to-write 0$/m);
    expect(off).not.toMatch(/^min-replicas-max-lag/m);
  });
  test('the rendered file is accepted by a real redis-server', async () => {
    const conf = (await render()).replace(/^include .*$/m, '').replace(/^(logfile|pidfile|dir) .*$/gm, '').replace(/^supervised .*$/m, 'supervised no');
    const f = path.join(dir, 'rendered.conf');
    writeFileSync(f, conf + `\nport ${port}\nbind 127.0.0.1\ndir ${dir}\n`);
    const p = spawn(path.join(dir, 'prefix/bin/redis-server'), [f], { stdio: 'ignore' });
    servers.set(LOCAL, p);
    expect(await waitUntil(() => cli(LOCAL, ['CONFIG', 'GET', 'min-replicas-max-lag'], 'x') === 'min-replicas-max-lag\n10')).toBe(true);
  });
});
