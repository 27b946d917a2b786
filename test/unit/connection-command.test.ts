import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { Secret, type Command } from '../../src/core/command.js';
import { buildRemoteInvocation, explainBecomeFailure, killGroupArgv } from '../../src/connection/remote-command.js';

const asAdmin = { loginUser: 'admin', hasBecomePassword: false, nonce: 'n0nce' };
const asRoot = { loginUser: 'root', hasBecomePassword: false, nonce: 'n0nce' };

/** Runs the line as sshd would (`sh -c LINE`) with the given stdin; returns stdout. */
function runLocally(line: string, stdin: string): string {
  return execFileSync('sh', ['-c', line], { input: stdin, stdio: ['pipe', 'pipe', 'ignore'] }).toString();
}
// Every line starts by printing the session's PID on stderr (used to kill it on timeout).
const PID = `printf '[rha-pid:n0nce:%s]\\n' "$$" >&2 && `;

describe('the remote command line', () => {
  test('argv is quoted once; cwd becomes cd; the command is exec-ed', () => {
    const inv = buildRemoteInvocation({ argv: ['echo', "it's", 'a b', ''], cwd: '/tmp/x y' }, asRoot);
    expect(inv).toEqual({ line: `${PID}cd '/tmp/x y' && exec echo 'it'\\''s' 'a b' ''`, pidMarker: '[rha-pid:n0nce:', secretPreamble: '' });
  });

  test('plain env values are inlined (quoted); secrets are read from stdin, never on the line', () => {
    const cmd: Command = {
      argv: ['sh', '-c', 'echo "$A|$TOKEN|$B"'],
      env: { A: 'x y', TOKEN: new Secret("s3cr3t 'quoted' $HOME"), B: 'b' },
    };
    const inv = buildRemoteInvocation(cmd, asRoot);
    expect(inv.line).toBe(
      `${PID}IFS= read -r TOKEN && export TOKEN && export A='x y' && export B=b && exec sh -c 'echo "$A|$TOKEN|$B"'`,
    );
    expect(inv.line).not.toContain('s3cr3t');
    expect(inv.secretPreamble).toBe("s3cr3t 'quoted' $HOME\n");
    // The secret arrives intact, and the command's own stdin follows it.
    expect(runLocally(inv.line, inv.secretPreamble)).toBe("x y|s3cr3t 'quoted' $HOME|b\n");
    const withStdin = buildRemoteInvocation({ argv: ['cat'], env: { K: new Secret('v') } }, asRoot);
    expect(runLocally(withStdin.line, withStdin.secretPreamble + 'payload\n')).toBe('payload\n');
  });

  test('secret length is visible to the command (the e2e check, locally)', () => {
    const inv = buildRemoteInvocation({ argv: ['sh', '-c', 'echo ${#NAME}'], env: { NAME: new Secret('abc def') } }, asRoot);
    expect(runLocally(inv.line, inv.secretPreamble)).toBe('7\n');
  });

  test('invalid env names and secrets with newlines are bugs, not commands', () => {
    expect(() => buildRemoteInvocation({ argv: ['true'], env: { 'A B': 'x' } }, asRoot)).toThrow(/invalid environment variable name/);
    expect(() => buildRemoteInvocation({ argv: ['true'], env: { S: new Secret('a\nb') } }, asRoot)).toThrow(
      'secret environment variable S contains a newline',
    );
    expect(() => buildRemoteInvocation({ argv: [] }, asRoot)).toThrow(/empty argv/);
  });

  test('become as root is a no-op', () => {
    expect(buildRemoteInvocation({ argv: ['id', '-u'], become: true }, asRoot)).toMatchObject({ line: `${PID}exec id -u`, secretPreamble: '' });
  });

  test('become without a password: sudo -n, and a started marker before secrets are read', () => {
    const inv = buildRemoteInvocation({ argv: ['id', '-u'], become: true, env: { P: new Secret('pw') } }, asAdmin);
    expect(inv.line).toBe(
      `${PID}exec sudo -n -- sh -c 'printf '\\''%s\\n'\\'' '\\''[rha-become-started:n0nce]'\\'' >&2 && IFS= read -r P && export P && exec id -u'`,
    );
    expect(inv.line).not.toContain('pw\n');
    expect(inv.become).toEqual({ startedMarker: '[rha-become-started:n0nce]' });
  });

  test('become with a password: sudo -S with a unique prompt; the password is not on the line', () => {
    const inv = buildRemoteInvocation({ argv: ['true'], become: true }, { ...asAdmin, hasBecomePassword: true });
    expect(inv.line).toBe(
      `${PID}exec sudo -S -p '[rha-sudo-password:n0nce]' -- sh -c 'printf '\\''%s\\n'\\'' '\\''[rha-become-started:n0nce]'\\'' >&2 && exec true'`,
    );
    expect(inv.become).toEqual({ startedMarker: '[rha-become-started:n0nce]', promptMarker: '[rha-sudo-password:n0nce]' });
  });

  test('the inner become script runs under sh and prints the marker first', () => {
    const inv = buildRemoteInvocation({ argv: ['sh', '-c', 'echo ${#S}'], become: true, env: { S: new Secret('four') } }, asAdmin);
    // Strip `exec sudo -n -- ` to run the rest locally (we are root here).
    const line = inv.line.replace('exec sudo -n -- ', '');
    const out = execFileSync('sh', ['-c', 'exec 2>&1; ' + line], { input: inv.secretPreamble }).toString();
    expect(out).toMatch(/^\[rha-pid:n0nce:\d+\]\n\[rha-become-started:n0nce\]\n4\n$/);
  });
});

test('the kill command ends a whole process group (TERM, then KILL)', () => {
  expect(killGroupArgv(42)).toEqual([
    'sh', '-c', 'kill -s TERM -- "-$1" 2>/dev/null; sleep 1; kill -s KILL -- "-$1" 2>/dev/null; true', 'sh', '42',
  ]);
});

describe('become failures explained', () => {
  const ctx = { hostName: 'node1', user: 'admin', passwordRejected: false, hasBecomePassword: false };
  test.each([
    ['sudo: a password is required\n', 1, ctx, 'become failed on node1: sudo needs a password for user admin (set become_password in the inventory)'],
    ['sh: 1: sudo: not found\n', 127, ctx, 'become failed on node1: sudo is not installed (install it, or connect as root)'],
    ['sudo: 1 incorrect password attempt\n', 1, { ...ctx, passwordRejected: true }, 'become failed on node1: sudo rejected the become password for user admin'],
    ['admin is not in the sudoers file.\n', 1, ctx, 'become failed on node1: user admin may not run commands as root with sudo'],
    ['', 1, ctx, 'become failed on node1: sudo exited with code 1 before running the command'],
  ])('%j → message', (stderr, code, c, want) => {
    expect(explainBecomeFailure(stderr, code, c)).toBe(want);
  });
});
