/**
 * sysctl's writable path, for real: lab hosts mount /proc/sys read-only, so this runs the module's
 * commands inside a network namespace of our own (`ip netns exec`), whose net.* keys are its own
 * and writable, and harmless to change. Needs root and iproute2.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { HostFacts, Module } from '../../src/core/types.js';
import { modules } from '../../src/modules/index.js';
import { LocalConnection, makeContext, runModule } from '../support/context.js';

const NS = `rha-mods-sysctl-${process.pid}`;
const dir = mkdtempSync(path.join(tmpdir(), 'rha-mods-sysctl-'));
const facts = { hostname: 'netns', osFamily: 'debian', packageManager: 'apt', serviceManager: 'plain' } as HostFacts;
const sysctl = modules.get('sysctl') as Module;
const conn = new LocalConnection(NS, ['ip', 'netns', 'exec', NS]);
const host = { name: NS, connection: {} as never, groups: ['all'], vars: {} };
const inNs = (...argv: string[]) => execFileSync('ip', ['netns', 'exec', NS, ...argv], { encoding: 'utf8' }).trim();

beforeAll(() => {
  execFileSync('ip', ['netns', 'add', NS]);
});
afterAll(() => {
  execFileSync('ip', ['netns', 'delete', NS]);
  rmSync(dir, { recursive: true, force: true });
});

test('writable key: check changes nothing, apply sets runtime and file, again is ok', async () => {
  const key = '/proc/sys/net/ipv4/ip_forward';
  expect(inNs('cat', key)).toBe('0'); // a fresh namespace
  const persist = path.join(dir, '99-rha.conf');
  const args = { name: 'net.ipv4.ip_forward', value: 1, persist_file: persist };
  const check = await runModule(sysctl, makeContext(host, conn, facts, { check: true }), args);
  expect(check.plan.changes.map((c) => c.description)).toEqual([
    'set net.ipv4.ip_forward = 1 (was 0)',
    `create ${persist} (78 bytes): net.ipv4.ip_forward = 1`,
  ]);
  expect(inNs('cat', key)).toBe('0');
  const first = await runModule(sysctl, makeContext(host, conn, facts), args);
  expect(first.outcome).toMatchObject({ changed: true, failed: false });
  expect(inNs('cat', key)).toBe('1');
  expect(readFileSync(persist, 'utf8')).toBe('# Managed by rha: kernel parameters set by playbooks.\nnet.ipv4.ip_forward = 1\n');
  const second = await runModule(sysctl, makeContext(host, conn, facts), args);
  expect(second.outcome).toMatchObject({ changed: false, failed: false, msg: `net.ipv4.ip_forward is 1 and persisted in ${persist}` });
  // The kernel's own refusal (an invalid value) is a failure with its words, after the file was written.
  const bad = await runModule(sysctl, makeContext(host, conn, facts), { ...args, value: 'abc' });
  expect(bad.outcome.failed).toBe(true);
  expect(bad.outcome.msg).toMatch(/^the kernel refused net.ipv4.ip_forward = abc on rha-mods-sysctl-\d+: .*Invalid argument$/);
  expect(inNs('cat', key)).toBe('1');
});

test('a sysctl that does not exist', async () => {
  const r = await runModule(sysctl, makeContext(host, conn, facts), { name: 'net.ipv4.no_such_key', value: 1, persist_file: false });
  expect(r.outcome).toMatchObject({ failed: true, msg: `sysctl net.ipv4.no_such_key does not exist on ${NS} (/proc/sys/net/ipv4/no_such_key)` });
});

test('a value of several fields (tab-separated in /proc) compares equal to the same fields space-separated', async () => {
  const key = '/proc/sys/net/ipv4/ip_local_port_range';
  const now = inNs('cat', key);
  expect(now).toMatch(/^\d+\t\d+$/);
  const value = now.replace('\t', ' ');
  const same = await runModule(sysctl, makeContext(host, conn, facts, { check: true }), { name: 'net.ipv4.ip_local_port_range', value, persist_file: false });
  expect(same.plan.changes).toEqual([]);
  const other = await runModule(sysctl, makeContext(host, conn, facts, { check: true }), { name: 'net.ipv4.ip_local_port_range', value: '40000 50000', persist_file: false });
  expect(other.plan.changes.map((c) => c.description)).toEqual([`set net.ipv4.ip_local_port_range = 40000 50000 (was ${value})`]);
});
