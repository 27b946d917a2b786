import { describe, expect, test } from 'vitest';
import { byCodeUnit, byNaturalName } from '../../src/core/order.js';

describe('name orders without Intl', () => {
  test('host names: digit runs by value, then text by code unit', () => {
    const names = ['node10', 'node2', 'node1', 'db-b', 'db-a', 'node02', 'n', 'node', 'node1a', 'node1b', 'x99999999999999999999', 'x100000000000000000000'];
    expect([...names].sort(byNaturalName)).toEqual(['db-a', 'db-b', 'n', 'node', 'node1', 'node1a', 'node1b', 'node2', 'node02', 'node10', 'x99999999999999999999', 'x100000000000000000000']);
  });
  test('a total order: equal only for equal names, antisymmetric', () => {
    const names = ['a1', 'a01', 'a001', 'a1b', 'a', 'A1', '1', '01', ''];
    for (const x of names)
      for (const y of names) {
        expect(Math.sign(byNaturalName(x, y)) + Math.sign(byNaturalName(y, x)), `${x} ${y}`).toBe(0);
        expect(byNaturalName(x, y) === 0, `${x} ${y}`).toBe(x === y);
      }
  });
  test('code-unit order is Python\'s (Ansible sorts groups so): upper case before lower', () => {
    expect(['web', 'Web', 'db', '_x'].sort(byCodeUnit)).toEqual(['Web', '_x', 'db', 'web']);
  });
});
