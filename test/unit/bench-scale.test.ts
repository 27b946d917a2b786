/**
 * Fixes `npm run bench` led to at 100 hosts: one-pass secret masking (the per-secret split/join
 * cost a third of a second of every no-op run), known_hosts plain patterns compared without a
 * RegExp each. Behaviour only; the timings live in the bench.
 */
import { describe, expect, it } from 'vitest';
import { maskDeep, maskingReporter, secretMasker } from '../../src/core/mask.js';
import type { RunEvent } from '../../src/core/types.js';

describe('secretMasker', () => {
  it('masks every secret, longest first, regex characters taken literally', () => {
    const mask = secretMasker(['a.b', 'x', 'a.b.c', '(]\\']);
    expect(mask('za.b.c a.bx a?b (]\\ q')).toBe('z*** ****** a?b *** q');
    expect(mask('')).toBe('');
  });

  it('no secrets: text unchanged', () => {
    expect(secretMasker([])('pw')).toBe('pw');
    expect(secretMasker([''])('pw')).toBe('pw');
  });

  it('maskDeep masks strings and keys at any depth', () => {
    const secrets = new Set(['s3cr3t']);
    expect(maskDeep({ a: ['x s3cr3t'], s3cr3t: { b: 's3cr3ts3cr3t' }, n: 1 }, secrets)).toEqual({ a: ['x ***'], '***': { b: '******' }, n: 1 });
  });

  it('the masking reporter follows secrets added during the run', () => {
    const secrets = new Set(['one']);
    const seen: RunEvent[] = [];
    const r = maskingReporter({ emit: (e) => void seen.push(e), close: async () => {} }, secrets);
    r.emit({ kind: 'warning', msg: 'one two' });
    secrets.add('two');
    r.emit({ kind: 'warning', msg: 'one two' });
    expect(seen.map((e) => (e as { msg: string }).msg)).toEqual(['*** two', '*** ***']);
  });
});

describe('known_hosts plain patterns (matched without a RegExp)', () => {
  it('exact, case-insensitive, never a prefix; wildcards still work', async () => {
    const { entryMatchesHost } = await import('../../src/connection/known-hosts.js');
    expect(entryMatchesHost({ hosts: 'Redis-A.example,10.0.0.1' }, 'redis-a.EXAMPLE', 22)).toBe(true);
    expect(entryMatchesHost({ hosts: '10.0.0.1' }, '10.0.0.10', 22)).toBe(false);
    expect(entryMatchesHost({ hosts: '10.0.0.1' }, '10.0.0.1', 2222)).toBe(false);
    expect(entryMatchesHost({ hosts: '[10.0.0.1]:2222' }, '10.0.0.1', 2222)).toBe(true);
    expect(entryMatchesHost({ hosts: '10.0.0.?' }, '10.0.0.7', 22)).toBe(true);
    expect(entryMatchesHost({ hosts: '10.0.*,!10.0.0.9' }, '10.0.0.9', 22)).toBe(false);
  });
});
