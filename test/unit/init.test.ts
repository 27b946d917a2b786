/**
 * `rha init DIR`: the starter inventory validates as written (the real CLI entry, in-process),
 * its generated secrets are mode 0600, and nothing is ever overwritten.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { initCommand } from '../../src/cli/init.js';
import { main } from '../../src/cli/main.js';
import { loadInventory } from '../../src/inventory/index.js';

function sink() {
  let text = '';
  const s = new Writable({ write(c, _e, cb) { text += String(c); cb(); } });
  return { s: s as unknown as NodeJS.WriteStream, text: () => text };
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('rha init', () => {
  it('writes an inventory that validates as written, secrets mode 0600', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'rha-init-')), 'tmp');
    const out = sink();
    expect(await initCommand(dir, { out: out.s, err: out.s })).toBe(0);
    expect(out.text()).toContain('rha validate');
    for (const f of ['redis.pass', 'vrrp.pass']) expect(statSync(join(dir, 'secrets', f)).mode & 0o777).toBe(0o600);
    const inv = await loadInventory(join(dir, 'inventory.yaml'), { env: { HOME: '/home/op' } });
    expect([...inv.hosts.keys()]).toEqual(['redis-a', 'redis-b']);
    expect(inv.clusters.get('cache')).toMatchObject({ master: 'redis-a', replica: 'redis-b', vip: '10.0.0.100/24' });
    expect(inv.warnings).toEqual([]);
    // The real command line, as a user types it: rha validate DIR/inventory.yaml exits 0.
    await main(['node', 'rha', 'validate', join(dir, 'inventory.yaml')]);
    expect(process.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'inventory.yaml'), 'utf8')).toMatch(/^# yaml-language-server: \$schema=\S+inventory\.schema\.json\n/);
  });

  it('refuses to overwrite any existing file and writes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rha-init-'));
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets', 'vrrp.pass'), 'mine\n');
    const err = sink();
    expect(await initCommand(dir, { out: err.s, err: err.s })).toBe(4);
    expect(err.text()).toBe(`error: ${join(dir, 'secrets', 'vrrp.pass')} already exists: rha init never overwrites files; pick another folder or remove them\n`);
    expect(() => statSync(join(dir, 'inventory.yaml'))).toThrow();
    expect(readFileSync(join(dir, 'secrets', 'vrrp.pass'), 'utf8')).toBe('mine\n');
  });
});
