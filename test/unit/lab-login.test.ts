import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/inventory/index.js';
import { writeLabInventory } from '../../src/lab/inventory.js';
import { loginSshSection, writeLoginPassword } from '../../src/lab/login.js';

describe('lab logins', () => {
  it.each([
    [undefined, { user: 'root', private_key: './id_ed25519', known_hosts: './known_hosts' }],
    ['root', { user: 'root', private_key: './id_ed25519', known_hosts: './known_hosts' }],
    ['sudo', { user: 'admin', private_key: './id_ed25519', known_hosts: './known_hosts', become: true, become_password: { file: './secrets/login.pass' } }],
    ['sudo-nopasswd', { user: 'admin', private_key: './id_ed25519', known_hosts: './known_hosts', become: true }],
  ] as const)('%s: the inventory ssh section', (login, ssh) => {
    expect(loginSshSection(login)).toEqual(ssh);
  });

  it('sudo: the inventory it writes loads, with become and the password from the 0600 file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rha-lab-login-'));
    try {
      await writeLoginPassword(dir);
      // The inventory names the lab's key, which validation checks is a readable file.
      writeFileSync(path.join(dir, 'id_ed25519'), 'not a real key\n', { mode: 0o600 });
      const file = await writeLabInventory({
        dir,
        labName: 't',
        hosts: [{ name: 'node1', address: '10.0.0.11' }],
        clusters: [],
        redisSource: { path: '/nonexistent', sha256: '0'.repeat(64), version: '7.0.15' },
        login: 'sudo',
      });
      const inv = await loadInventory(file);
      const conn = inv.hosts.get('node1')!.connection;
      expect(conn.user).toBe('admin');
      expect(conn.become).toBe(true);
      expect(conn.becomePassword?.value).toMatch(/^[A-Za-z0-9_-]{24}$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
