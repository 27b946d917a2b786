/**
 * Secret rotation's pure parts: what redis-cli replies mean, the add/drop plans from a node's
 * state, redis.conf's password lines as the template writes them, and when a keepalived reload
 * would leave the two nodes on different auth_pass.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/core/command.js';
import {
  classifyReply,
  needsDrop,
  parseAclPasswords,
  parseConfigGet,
  planAdd,
  probeRead,
  redisAuth,
  rewriteAuthLines,
  sha256hex,
} from '../../src/modules/ha/redis-auth.js';
import type { Command, CommandResult } from '../../src/core/command.js';
import type { TaskContext } from '../../src/core/types.js';
import { UNKNOWN_FACTS } from '../../src/runner/context.js';
import { encodeCliLine, redisCliCommands, splitCliReplies } from '../../src/modules/ha/redis-state.js';
import { parseConfState, reloadBlocked, type KeepalivedConfState } from '../../src/modules/ha/keepalived-reload.js';
import { renderString } from '../../src/template/index.js';

const NEW = 'n3w "pa$$" \\ word>';

describe('redis-cli transport for rotation', () => {
  it("runs redis-cli as the login user even when the task becomes root; only redis.auth (root's) is read as root", async () => {
    const seen: Array<{ become?: boolean; stdin: boolean; text: string }> = [];
    const ctx = {
      host: { name: 'h1' },
      conn: {
        hostName: 'h1',
        async exec(cmd: Command): Promise<CommandResult> {
          seen.push({ become: cmd.become, stdin: cmd.stdin !== undefined, text: cmd.argv.join(' ') });
          // The new password is refused, the old one in redis.auth works.
          const text = cmd.argv.join(' ');
          const stdout = text.includes('redis.auth') ? 'old-pw\n' : cmd.stdin?.toString().startsWith('old-pw') ? '@@rha:reply\nflags\n@@rha:reply\nmasterauth\nold-pw\n' : '@@rha:reply\nWRONGPASS\n';
          return { display: 'x', code: 0, stdout, stderr: '', ok: true, durationMs: 0 };
        },
        async close() {},
      },
      facts: UNKNOWN_FACTS,
      check: true,
      diff: false,
      become: true,
      vars: {
        inventory_hostname: 'h1',
        cluster: { name: 'c', master: 'h1', vip: '10.0.0.200/24', interface: 'eth0', redis: { port: 6379, password: 'new-pw', prefix: '/usr/local', config_dir: '/etc/redis' } },
        node: { peer: 'h2', address: '10.0.0.1', peer_address: '10.0.0.2' },
      },
      searchPaths: [],
      secrets: new Set<string>(),
      warn: () => undefined,
      signal: new AbortController().signal,
    } as unknown as TaskContext;
    const plan = await redisAuth.plan(ctx, redisAuth.args.parse({ phase: 'add' }));
    expect(plan.changes.length).toBeGreaterThan(0);
    const withPassword = seen.filter((c) => c.stdin);
    expect(withPassword.length).toBe(2);
    for (const c of withPassword) expect(c.become).toBe(false);
    expect(seen.find((c) => c.text.includes('redis.auth'))?.become).toBe(true);
    expect(probeRead({ binDir: '/usr/local/bin', port: 6379, password: 'new-pw' } as never).become).toBe(false);
  });

  it('encodes every byte of every argument as \\xHH inside quotes (redis-cli splits it back exactly)', () => {
    expect(encodeCliLine(['ACL', new Secret('>a b"')])).toBe('"\\x41\\x43\\x4c" "\\x3e\\x61\\x20\\x62\\x22"');
  });
  it('puts commands and the password on stdin, never on the command line', () => {
    const cmd = redisCliCommands({ cliPath: '/usr/local/bin/redis-cli', port: 6379, password: 'OLD-secret', become: true }, [['ACL', 'SETUSER', 'default', new Secret(`>${NEW}`)]]);
    const line = cmd.argv.join(' ');
    expect(line).not.toContain('OLD-secret');
    expect(line).not.toContain('n3w');
    expect(String(cmd.stdin)).not.toContain('n3w'); // hex-encoded even there
    // The password is the first line of stdin (read by the shell's `read`), in no environment.
    expect(String(cmd.stdin).split('\n')[0]).toBe('OLD-secret');
    expect(cmd.env ?? {}).toEqual({});
  });
  it('splits the replies by their marks', () => {
    expect(splitCliReplies('@@rha:reply\nOK\r\n@@rha:reply\nPONG\n')).toEqual(['OK', 'PONG']);
  });
});

describe('what a reply says', () => {
  it.each([
    ['Could not connect to Redis at 127.0.0.1:6379: Connection refused', 'down'],
    ["timeout: failed to run command '/usr/local/bin/redis-cli': No such file or directory", 'down'],
    ['AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\nNOAUTH Authentication required.', 'refused'],
    ['flags\non\npasswords\n' + 'a'.repeat(64), 'ok'],
  ])('%s → %s', (text, kind) => expect(classifyReply(text).kind).toBe(kind));

  it('reads the accepted password hashes of ACL GETUSER default (raw reply, Redis 7.0)', () => {
    const h1 = sha256hex('one');
    const h2 = sha256hex('two');
    expect(parseAclPasswords(`flags\non\npasswords\n${h1}\n${h2}\ncommands\n+@all\nkeys\n~*`)).toEqual([h1, h2]);
    expect(parseAclPasswords('flags\non\nnopass\npasswords\ncommands\n+@all')).toEqual([]);
  });
  it('reads CONFIG GET masterauth', () => {
    expect(parseConfigGet('masterauth\nsecret', 'masterauth')).toBe('secret');
    expect(parseConfigGet('masterauth', 'masterauth')).toBe('');
  });
});

describe('redis.conf password lines', () => {
  it('are written exactly as the template renders them, so the template finds nothing to change', () => {
    const tpl = readFileSync('templates/redis/redis.conf.hbs', 'utf8')
      .split('\n')
      .filter((l) => /^(requirepass|masterauth) /.test(l))
      .join('\n');
    const render = (pw: string) => renderString(tpl, { cluster: { redis: { password: pw } } });
    const conf = `port 6379\n${render('old')}\ndir /var/lib/redis\n`;
    expect(rewriteAuthLines(conf, NEW)).toBe(`port 6379\n${render(NEW)}\ndir /var/lib/redis\n`);
  });
  it('leaves other lines alone, also ones that mention the words', () => {
    expect(rewriteAuthLines('# requirepass here\nrequirepassword x\n', 'p')).toBe('# requirepass here\nrequirepassword x\n');
  });
});

describe('the add and drop plans', () => {
  it('adds the new password where only the old one works; masterauth waits for the drop (the peer may not accept it yet)', () => {
    expect(planAdd({ kind: 'old', old: 'o' }, true)).toEqual({ addNew: true, rewriteConf: true });
  });
  it('a re-run after the add step only finishes what is left', () => {
    expect(planAdd({ kind: 'new', hashes: [sha256hex('o'), sha256hex('n')], masterauthNew: false }, false)).toEqual({ addNew: false, rewriteConf: false });
    expect(planAdd({ kind: 'new', hashes: [sha256hex('n')], masterauthNew: false }, true)).toEqual({ addNew: false, rewriteConf: true });
  });
  it('a stopped Redis gets its password from redis.conf when it starts', () => {
    expect(planAdd({ kind: 'down', why: 'refused' }, true)).toEqual({ addNew: false, rewriteConf: true });
  });
  it('drops while another password is accepted or masterauth is old; not once only the new one is left', () => {
    expect(needsDrop({ kind: 'new', hashes: [sha256hex('o'), sha256hex('n')], masterauthNew: true }, 'n')).toBe(true);
    expect(needsDrop({ kind: 'new', hashes: [sha256hex('n')], masterauthNew: false }, 'n')).toBe(true);
    expect(needsDrop({ kind: 'new', hashes: [sha256hex('n')], masterauthNew: true }, 'n')).toBe(false);
  });
});

describe('keepalived reload', () => {
  const out = (o: Record<string, string>) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join('\n');
  it('knows the loaded config from rha\'s record for the running pid', () => {
    const s = parseConfState(out({ running: '540', conf: 'C2', auth: 'A2', loaded: 'C1 A1 540', started: '100.5', mtime: '200.1' }));
    expect(s).toMatchObject({ running: true, confSha: 'C2', loadedConf: 'C1', loadedAuth: 'A1' });
  });
  it('a keepalived started after the file was written has loaded it; a record of another pid does not count', () => {
    expect(parseConfState(out({ running: '7', conf: 'C', auth: 'A', loaded: 'X Y 6', started: '200.52', mtime: '200.517' }))).toMatchObject({ loadedConf: 'C', loadedAuth: 'A' });
    expect(parseConfState(out({ running: '7', conf: 'C', auth: 'A', loaded: '', started: '200.5', mtime: '200.6' }))).toMatchObject({ loadedConf: '', loadedAuth: '' });
  });
  const st = (p: Partial<KeepalivedConfState>): KeepalivedConfState => ({ running: true, pid: '1', confSha: 'C2', authSha: 'A2', loadedConf: 'C1', loadedAuth: 'A1', ...p });
  const names = { self: 'node1', peer: 'node2' };
  it('refuses an auth_pass change when the peer\'s installed file has another auth_pass, or the peer cannot be read', () => {
    expect(reloadBlocked(st({}), st({ authSha: 'A1' }), names)).toMatch(/node2's installed keepalived.conf has another auth_pass/);
    expect(reloadBlocked(st({}), undefined, names)).toMatch(/node2 is unreachable/);
  });
  it('reloads when both nodes have the same new auth_pass, or auth_pass does not change', () => {
    expect(reloadBlocked(st({}), st({}), names)).toBeUndefined();
    expect(reloadBlocked(st({ loadedAuth: 'A2' }), undefined, names)).toBeUndefined();
  });
});
