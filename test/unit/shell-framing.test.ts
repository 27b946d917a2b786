/** The long-lived shell's framing (src/connection/shell.ts): pure parsing of marker-framed output. */
import { describe, expect, test } from 'vitest';
import { framedLine, framedStreams } from '../../src/connection/shell.js';

const N = '0123456789abcdef';
const begin = `[rha-begin:${N}]\n`;
const end = (v: string) => `[rha-end:${N}:${v}]\n`;

/** Feeds `text` in pieces of `size` bytes; returns the stream. */
function feedAll(text: string, size: number) {
  const { out } = framedStreams(N);
  const b = Buffer.from(text);
  let done = false;
  for (let i = 0; i < b.length; i += size) done = out.feed(b.subarray(i, i + size));
  return { out, done };
}

describe('FramedStream', () => {
  test('content between the markers, exit status after the end marker, for every chunk size', () => {
    const text = `junk from before${begin}hello\nworld${end('7')}trailing`;
    for (const size of [1, 2, 3, 7, 16, 1000]) {
      const { out, done } = feedAll(text, size);
      expect(done).toBe(true);
      expect(out.content.toString()).toBe('hello\nworld');
      expect(out.value).toBe('7');
    }
  });

  test('not done until the status is complete; an empty body', () => {
    const { out } = framedStreams(N);
    expect(out.feed(Buffer.from(begin + `[rha-end:${N}:12`))).toBe(false);
    expect(out.feed(Buffer.from('5]\n'))).toBe(true);
    expect(out.value).toBe('125');
    expect(out.content.length).toBe(0);
  });

  test('look-alike markers with another nonce are output, not markers', () => {
    const other = '[rha-end:ffffffffffffffff:0]\n[rha-begin:ffffffffffffffff]\n';
    const { out, done } = feedAll(`${begin}${other}${end('0')}`, 5);
    expect(done).toBe(true);
    expect(out.content.toString()).toBe(other);
  });

  test('content is readable before the end (a PID marker), and can be replaced while the end is awaited', () => {
    const { err } = framedStreams(N);
    err.feed(Buffer.from(`${begin}[rha-pid:x:42]\n`));
    expect(err.content.toString()).toBe('[rha-pid:x:42]\n');
    err.setContent(Buffer.alloc(0));
    expect(err.feed(Buffer.from(`oops\n${end('')}`))).toBe(true);
    expect(err.content.toString()).toBe('oops\n');
  });

  test('multi-byte UTF-8 split across chunks survives', () => {
    const { out, done } = feedAll(`${begin}žluťoučký 🐎${end('0')}`, 1);
    expect(done).toBe(true);
    expect(out.content.toString('utf8')).toBe('žluťoučký 🐎');
  });
});

describe('framedLine', () => {
  test('one line: markers on stdout and fd 3 around the body, the exit status printed after it', () => {
    const line = framedLine('true', N);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.split('\n')).toHaveLength(2);
    expect(line).toBe(
      `printf '%s\\n' '[rha-begin:${N}]'; printf '%s\\n' '[rha-begin:${N}]' >&3; true; ` +
        `printf '%s%s]\\n' '[rha-end:${N}:' "$?"; printf '%s]\\n' '[rha-end:${N}:' >&3\n`,
    );
  });
});
