/** The lab network's pure parts. */
import { describe, expect, it } from 'vitest';
import { cidrOverlap, macFor } from '../../src/lab/net.js';

describe('macFor (pinned neighbours of large labs)', () => {
  it('is a locally administered unicast MAC made from the address', () => {
    expect(macFor('10.213.11.44')).toBe('02:72:0a:d5:0b:2c');
    expect(macFor('10.213.255.1')).toBe('02:72:0a:d5:ff:01');
    // 0x02 in the first octet: locally administered, not multicast.
    expect(parseInt(macFor('10.0.0.1').slice(0, 2), 16) & 0b11).toBe(0b10);
  });

  it('differs for every host address', () => {
    const macs = new Set(Array.from({ length: 1000 }, (_, i) => macFor(`10.213.${1 + Math.floor(i / 100)}.${11 + (i % 100)}`)));
    expect(macs.size).toBe(1000);
  });
});

describe('cidrOverlap', () => {
  it('tells overlapping from disjoint networks', () => {
    expect(cidrOverlap('10.213.5.0/24', '10.213.0.0/16')).toBe(true);
    expect(cidrOverlap('10.213.5.0/24', '10.213.6.0/24')).toBe(false);
  });
});
