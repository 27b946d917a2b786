/**
 * The keeper's pure parts: when a command line goes to the keeper (keeper-client.ts), and when a
 * kept connection may be handed to a run (connection/keep.ts). The keeper itself, on real hosts:
 * test/e2e/keeper.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { DEFAULT_IDLE_SECONDS, keeperEligible, keeperIdleSeconds, keeperSocket } from '../../src/cli/keeper-client.js';
import { terminalSize } from '../../src/cli/keeper.js';
import { ConnectionKeeper } from '../../src/connection/keep.js';
import type { SshConnection } from '../../src/connection/ssh.js';
import type { HostSpec } from '../../src/core/types.js';

const dir = mkdtempSync(path.join(tmpdir(), 'rha-keeper-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('which command lines go to the keeper', () => {
  const argv = (...a: string[]) => ['node', 'rha', ...a];
  test('run and provision, also at a terminal with colours, unless RHA_KEEPER is off or help is asked', () => {
    expect(keeperEligible(argv('run', 'p.yaml', '-i', 'i.yaml'), {}, undefined)).toBe(true);
    expect(keeperEligible(argv('provision', 'i.yaml'), {}, false)).toBe(true);
    // A terminal: the keeper draws the listr2 display for it, always in colour, so only for one that shows colours.
    expect(keeperEligible(argv('provision', 'i.yaml'), { TERM: 'xterm-256color' }, true, true)).toBe(true);
    expect(keeperEligible(argv('provision', 'i.yaml', '-o', 'pretty'), {}, true, true)).toBe(true);
    expect(keeperEligible(argv('provision', 'i.yaml'), {}, true, false)).toBe(false);
    expect(keeperEligible(argv('provision', 'i.yaml'), { NO_COLOR: '1' }, true, true)).toBe(false);
    expect(keeperEligible(argv('provision', 'i.yaml'), { TERM: 'dumb' }, true, true)).toBe(false);
    expect(keeperEligible(argv('provision', 'i.yaml'), { RHA_KEEPER: 'off' }, true, true)).toBe(false);
    for (const off of ['off', '0', 'no', 'false', 'OFF ']) expect(keeperEligible(argv('provision', 'i.yaml'), { RHA_KEEPER: off }, false)).toBe(false);
    for (const cmd of ['validate', 'status', 'switchover', 'lab', 'keeper', 'demo', 'init']) expect(keeperEligible(argv(cmd, 'x'), {}, false)).toBe(false);
    for (const h of ['-h', '--help', '-V', '--version']) expect(keeperEligible(argv('provision', 'i.yaml', h), {}, false)).toBe(false);
    expect(keeperEligible(argv(), {}, false)).toBe(false);
    for (const o of [['-o', 'pretty'], ['--output', 'pretty'], ['--output=pretty'], ['-opretty']]) {
      expect(keeperEligible(argv('provision', 'i.yaml', ...o), {}, false)).toBe(false);
    }
    expect(keeperEligible(argv('provision', 'i.yaml', '-o', 'json'), {}, false)).toBe(true);
    expect(keeperEligible(argv('run', 'pretty', '-i', 'i.yaml'), {}, false)).toBe(true); // a playbook named "pretty"
  });

  test("a client terminal's size is two small whole numbers, else none", () => {
    expect(terminalSize({ columns: 120, rows: 40 })).toEqual({ columns: 120, rows: 40 });
    expect(terminalSize({ columns: 0, rows: 0 })).toEqual({ columns: 0, rows: 0 });
    for (const bad of [undefined, null, 'x', {}, { columns: 80 }, { columns: -1, rows: 2 }, { columns: 1.5, rows: 2 }, { columns: '80', rows: 24 }, { columns: 1e9, rows: 1 }]) {
      expect(terminalSize(bad)).toBeUndefined();
    }
  });

  test('RHA_KEEPER: seconds of idle time, default 60, capped at a day', () => {
    expect(keeperIdleSeconds({})).toBe(DEFAULT_IDLE_SECONDS);
    expect(keeperIdleSeconds({ RHA_KEEPER: '5' })).toBe(5);
    expect(keeperIdleSeconds({ RHA_KEEPER: '0.5' })).toBe(0.5);
    expect(keeperIdleSeconds({ RHA_KEEPER: '999999' })).toBe(24 * 3600);
    expect(keeperIdleSeconds({ RHA_KEEPER: 'on' })).toBe(DEFAULT_IDLE_SECONDS);
    expect(keeperIdleSeconds({ RHA_KEEPER: 'off' })).toBeUndefined();
  });

  test('the socket lives in a folder of ours that others cannot write, named by the build', () => {
    const bundle = path.join(dir, 'rha.cjs');
    writeFileSync(bundle, 'x');
    const a = keeperSocket(bundle, { XDG_CACHE_HOME: path.join(dir, 'c1') });
    expect(a).toMatch(new RegExp(`^${dir}/c1/rha/keeper-[0-9a-f]{16}\\.sock$`));
    // Another build of rha (the bundle rewritten): another keeper.
    writeFileSync(bundle, 'xy');
    expect(keeperSocket(bundle, { XDG_CACHE_HOME: path.join(dir, 'c1') })).not.toBe(a);
    // A path too long for a Unix socket: no keeper.
    expect(keeperSocket(bundle, { XDG_CACHE_HOME: path.join(dir, 'x'.repeat(120)) })).toBeUndefined();
  });
});

/** A stand-in for an SshConnection: what the store looks at (pure logic only). */
function fakeConn(o: { alive?: boolean; answers?: boolean } = {}) {
  const c = {
    alive: o.alive ?? true,
    closed: false,
    adopted: [] as Array<AbortSignal | undefined>,
    ping: async () => o.answers ?? true,
    adopt: (_h: HostSpec, s: AbortSignal | undefined) => void c.adopted.push(s),
    forgot: 0,
    forgetBecome: () => void c.forgot++,
    close: async () => {
      c.closed = true;
      c.alive = false;
    },
  };
  return c;
}
const asConn = (c: ReturnType<typeof fakeConn>) => c as unknown as SshConnection;

describe('kept connections (connection/keep.ts)', () => {
  const kh = path.join(dir, 'known_hosts');
  const key = path.join(dir, 'id');
  writeFileSync(kh, '10.0.0.1 ssh-ed25519 AAAA\n');
  writeFileSync(key, 'KEY1');
  const host = (over: Partial<HostSpec['connection']> = {}, name = 'h1'): HostSpec => ({
    name,
    groups: [],
    vars: {},
    connection: { address: '10.0.0.1', port: 22, user: 'root', privateKey: key, become: false, knownHosts: kh, connectTimeoutMs: 10_000, connectRetries: 2, ...over },
  });

  test('given back, taken by the same settings only', async () => {
    const k = new ConnectionKeeper(() => ({}));
    const c = fakeConn();
    await k.give(host(), asConn(c));
    expect(k.size).toBe(1);
    expect(c.adopted).toEqual([undefined]); // no run's Ctrl-C while kept
    expect(c.forgot).toBe(1); // root shells closed: the next run asks sudo itself
    for (const other of [host({ port: 2222 }), host({ user: 'ops' }), host({ becomePassword: { source: 'x', value: 'p' } }), host({}, 'h2')]) {
      expect(await k.take(other)).toBeUndefined();
    }
    expect(await k.take(host())).toBe(c);
    expect(k.size).toBe(0);
    expect(await k.take(host())).toBeUndefined();
  });

  test('a changed known_hosts or private key file means a fresh connect', async () => {
    const k = new ConnectionKeeper(() => ({}));
    await k.give(host(), asConn(fakeConn()));
    writeFileSync(kh, '10.0.0.1 ssh-ed25519 BBBB\n');
    expect(await k.take(host())).toBeUndefined();
    await k.give(host(), asConn(fakeConn()));
    writeFileSync(key, 'KEY2');
    expect(await k.take(host())).toBeUndefined();
  });

  test('a connection that died, or does not answer the ping, is closed and not handed out', async () => {
    const k = new ConnectionKeeper(() => ({}));
    const silent = fakeConn({ answers: false });
    await k.give(host(), asConn(silent));
    expect(await k.take(host())).toBeUndefined();
    expect(silent.closed).toBe(true);
    const dead = fakeConn({ alive: false });
    await k.give(host(), asConn(dead));
    expect(k.size).toBe(0);
    expect(dead.closed).toBe(true);
  });

  test('a second connection for the same settings replaces the first, which is closed; closeAll closes all', async () => {
    const k = new ConnectionKeeper(() => ({}));
    const a = fakeConn();
    const b = fakeConn();
    await k.give(host(), asConn(a));
    await k.give(host(), asConn(b));
    expect(a.closed).toBe(true);
    expect(k.size).toBe(1);
    await k.closeAll();
    expect(b.closed).toBe(true);
    expect(k.size).toBe(0);
  });

  test('without a key file, the ssh-agent socket is part of the settings', async () => {
    let sock = '/run/agent-1';
    const k = new ConnectionKeeper(() => ({ SSH_AUTH_SOCK: sock }));
    await k.give(host({ privateKey: undefined }), asConn(fakeConn()));
    sock = '/run/agent-2';
    expect(await k.take(host({ privateKey: undefined }))).toBeUndefined();
  });
});
