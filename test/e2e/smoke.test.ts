/**
 * The CI recipe users copy (examples/ci-smoke.sh, run by examples/github-actions.yml), run as it is
 * on systemd hosts with a sudo login and empty apt lists (issue 15's "Done when": a new user on
 * fresh systemd-booted hosts): throwaway hosts, a pair provisioned on the first try, a re-run with
 * 0 changed, `rha status`, a write through the VIP read back from the replica, teardown. The
 * script's own checks are the assertions; this test also checks that the empty index was refreshed
 * by rha, and that it left no lab behind.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { run } from '../../src/lab/sh.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LAB = `${process.env.RHA_TEST_LAB_PREFIX ?? ''}smoke-ci`;

test('the CI smoke recipe on systemd hosts with a sudo login and empty apt lists: provision, re-run 0 changed, status, a write through the VIP, teardown', async () => {
  const r = await run(['bash', path.join(ROOT, 'examples/ci-smoke.sh')], {
    env: { ...process.env, RHA: `${process.execPath} ${path.join(ROOT, 'dist/cli/main.js')}`, SMOKE_LAB: LAB, SMOKE_HOSTS: 'systemd', SMOKE_EMPTY_APT_LISTS: '1' },
    timeoutMs: 25 * 60_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  expect(r.code, out.slice(-4000)).toBe(0);
  expect(out).toContain('== smoke passed');
  expect(out).toMatch(/read back from node\d: smoke /);
  // Both hosts started without a package index; the first provision refreshed it where it installed.
  expect(out).toContain('node1: /var/lib/apt/lists is empty');
  expect(out).toContain('node2: /var/lib/apt/lists is empty');
  expect(out).toMatch(/apt-get update \(no package index\)/);
  // Torn down: no state folder and no namespace of the lab is left.
  expect(existsSync(`/run/rha/lab/${LAB}`)).toBe(false);
  const ns = await run(['ip', 'netns', 'list']);
  expect(ns.stdout).not.toContain(`rha-${LAB}-`);
}, 30 * 60_000);
