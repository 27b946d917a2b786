/**
 * A command's stdin and secrets through the long-lived shell (remote-command.ts buildShellBody with
 * `input`), run by a real local sh (dash on Debian) and bash with the framing SshConnection uses:
 * the input is written only once the ready marker arrives, as over SSH.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { Secret, type Command } from '../../src/core/command.js';
import { buildRemoteInvocation, buildShellBody, shellInput } from '../../src/connection/remote-command.js';
import { framedLine, framedStreams } from '../../src/connection/shell.js';

interface Ran {
  stdout: string;
  stderr: string;
  status: string;
  pid: number;
}

/** A long-lived `shell` fed framed lines one after another, as RemoteShell does. */
function localShell(shell: string) {
  const child = spawn(shell, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.write('exec 3>&2 2>/dev/null\n');
  let n = 0;
  const run = (cmd: Command): Promise<Ran> => {
    const nonce = `n${++n}`.padEnd(16, '0');
    const inv = buildRemoteInvocation(cmd, { loginUser: 'root', hasBecomePassword: false, nonce });
    // Above the 64 KiB SshConnection allows, so that a pipe to the command would fill up.
    const input = shellInput(cmd, inv, 1024 * 1024);
    if (input === undefined) throw new Error('not shellable');
    const ready = `[rha-ready:${nonce}]\n`;
    const body = input.length ? buildShellBody(cmd, inv.pidMarker, { bytes: input.length, readyMarker: ready.trimEnd() }) : buildShellBody(cmd, inv.pidMarker);
    const { out, err } = framedStreams(nonce);
    let pending = input.length > 0;
    return new Promise((resolve) => {
      const done = () => {
        if (!out.done || !err.done) return;
        child.stdout.off('data', onOut);
        child.stderr.off('data', onErr);
        let text = err.content.toString('latin1');
        const at = text.indexOf(inv.pidMarker);
        const end = text.indexOf(']\n', at);
        const pid = Number(text.slice(at + inv.pidMarker.length, end));
        text = text.slice(0, at) + text.slice(end + 2);
        resolve({ stdout: out.content.toString('utf8'), stderr: text, status: out.value, pid });
      };
      const onOut = (b: Buffer) => {
        out.feed(b);
        done();
      };
      const onErr = (b: Buffer) => {
        err.feed(b);
        if (pending) {
          const c = err.content;
          const at = c.indexOf(ready);
          if (at >= 0) {
            pending = false;
            err.setContent(Buffer.concat([c.subarray(0, at), c.subarray(at + ready.length)]));
            child.stdin.write(input);
          }
        }
        done();
      };
      child.stdout.on('data', onOut);
      child.stderr.on('data', onErr);
      child.stdin.write(framedLine(body, nonce));
    });
  };
  return { run, close: () => child.stdin.end() };
}

describe.each(['sh', 'bash'])('stdin and secrets through a long-lived %s', (shellName) => {
  test('secret lines then stdin reach the command byte for byte; the shell runs the next command as usual', async () => {
    const sh = localShell(shellName);
    try {
      const stdin = "line one\n$HOME `id` 'q' \"d\" ; rm -rf /nonexistent\nno newline at the end, ends in x";
      const r = await sh.run({
        argv: ['sh', '-c', 'printf "%s|%s|" "$A" "$B"; cat'],
        env: { A: new Secret('s3cr3t $HOME'), B: 'plain' },
        stdin,
      });
      expect(r.stdout).toBe(`s3cr3t $HOME|plain|${stdin}`);
      expect(r.status).toBe('0');
      expect(r.stderr).toBe('');
      // Trailing newlines are kept (a command substitution alone would strip them).
      const nl = await sh.run({ argv: ['od', '-An', '-c'], stdin: 'a\n\n\n' });
      expect(nl.stdout.replace(/\s+/g, ' ').trim()).toBe('a \\n \\n \\n');
      const next = await sh.run({ argv: ['echo', 'next'] });
      expect(next.stdout).toBe('next\n');
    } finally {
      sh.close();
    }
  });

  test('a command that closes its stdin unread leaves no byte behind for the shell to run as a command', async () => {
    const sh = localShell(shellName);
    const dir = mkdtempSync(path.join(tmpdir(), 'rha-shell-input-'));
    try {
      // 200 KiB of lines that would each be a command, were any left on the shell's stdin: more
      // than a pipe holds, so a reader that quits early cannot be fed from the shell's stdin directly.
      const stdin = `echo leaked >> ${dir}/leak\n`.repeat(5000);
      expect(stdin.length).toBeGreaterThan(200 * 1024);
      const r = await sh.run({ argv: ['sh', '-c', 'exec <&-; sleep 0.2; echo done'], stdin });
      expect(r.stdout).toBe('done\n');
      expect(r.status).toBe('0');
      const next = await sh.run({ argv: ['echo', 'next'] });
      expect(next.stdout).toBe('next\n');
      expect(next.stderr).toBe('');
      expect(existsSync(`${dir}/leak`)).toBe(false);
    } finally {
      sh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the exit status, the stderr and the PID of the command itself (its own session) come back', async () => {
    const sh = localShell(shellName);
    try {
      const r = await sh.run({ argv: ['sh', '-c', 'read x; echo "got $x" >&2; ps -o sid= -p $$; exit 3'], stdin: 'it\n' });
      expect(r.status).toBe('3');
      expect(r.stderr).toBe('got it\n');
      expect(Number(r.stdout.trim())).toBe(r.pid);
    } finally {
      sh.close();
    }
  });
});

describe('shellInput', () => {
  const inv = (cmd: Command) => buildRemoteInvocation(cmd, { loginUser: 'root', hasBecomePassword: false, nonce: '0123456789abcdef' });
  test('secret lines first, then stdin; none when binary (NUL) or above the limit', () => {
    const cmd: Command = { argv: ['cat'], env: { S: new Secret('pw') }, stdin: 'data' };
    expect(shellInput(cmd, inv(cmd), 100)?.toString()).toBe('pw\ndata');
    const nul: Command = { argv: ['cat'], stdin: Buffer.from([0x61, 0x00, 0x62]) };
    expect(shellInput(nul, inv(nul), 100)).toBeUndefined();
    const big: Command = { argv: ['cat'], stdin: 'x'.repeat(101) };
    expect(shellInput(big, inv(big), 100)).toBeUndefined();
  });
});
