/**
 * Host kinds for the e2e suites that must hold on both kinds of lab host (issue 15):
 * - namespace: sshd as PID 1 of the host, no systemd; rha runs Redis and keepalived with its own
 *   exec/pidfile supervisor.
 * - systemd: the host boots systemd (`rha lab up --systemd`, systemd-nspawn); Redis and keepalived
 *   are units, restarted with systemctl, enabled for boot, logging to the journal; the login is a
 *   sudo user with a password, as on users' servers.
 *
 * A file wraps its whole suite in forEachHostKind(kind => ...): one describe per kind, "[namespace]"
 * or "[systemd]" in every test's name, each with its own lab (useLab inside a describe is scoped
 * to it, so only one lab is up at a time). RHA_E2E_HOST_KINDS=systemd (a comma list) runs one kind.
 */
import { describe, test, type TestFunction } from 'vitest';
import type { LabInfo, LabLogin } from '../../src/lab/index.js';
import { useLab } from './lab.js';

export type HostKind = 'namespace' | 'systemd';
export const HOST_KINDS: readonly HostKind[] = ['namespace', 'systemd'];

/** The kinds this run covers: all, or those named in RHA_E2E_HOST_KINDS; throws on an unknown name. */
export function hostKinds(): HostKind[] {
  const raw = process.env.RHA_E2E_HOST_KINDS?.trim();
  if (!raw) return [...HOST_KINDS];
  const kinds = raw.split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of kinds) {
    if (!(HOST_KINDS as readonly string[]).includes(k)) throw new Error(`RHA_E2E_HOST_KINDS: unknown host kind ${JSON.stringify(k)} (kinds: ${HOST_KINDS.join(', ')})`);
  }
  return kinds as HostKind[];
}

/** Registers the file's suite once per host kind, inside describe('[kind]'). */
export function forEachHostKind(suite: (kind: HostKind) => void): void {
  for (const kind of hostKinds()) describe(`[${kind}]`, () => suite(kind));
}

/**
 * useLab for a kind: namespace hosts with `login` (root unless given), or systemd hosts with the
 * sudo login (users' servers). The systemd lab's name gets "-systemd", so the kinds never share a lab.
 */
export function useKindLab(base: string, kind: HostKind, hosts = 2, opts: { login?: LabLogin } = {}): () => LabInfo {
  if (kind === 'systemd') return useLab(`${base}-systemd`, hosts, { systemd: true, login: 'sudo' });
  return useLab(base, hosts, { login: opts.login });
}

/**
 * test() for a case that runs on one kind only, because the other kind adds nothing to it: on
 * `only` it is registered with "[ONLY only: WHY]" at the end of its name; on the other kind it is
 * not registered at all (not a skipped test: nothing is counted for it).
 */
export function testOnlyOn(kind: HostKind, only: HostKind, why: string) {
  return (name: string, fn: TestFunction, timeout?: number): void => {
    if (kind === only) test(`${name} [${only} only: ${why}]`, fn, timeout);
  };
}

/** describe() for a group whose cases all run on one kind only: as testOnlyOn, for a whole group (vitest fails an empty group). */
export function describeOnlyOn(kind: HostKind, only: HostKind, why: string) {
  return (name: string, fn: () => void): void => {
    if (kind === only) describe(`${name} [${only} only: ${why}]`, fn);
  };
}
