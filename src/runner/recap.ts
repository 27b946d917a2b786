import { ExitCode, type HostRecap } from '../core/types.js';

/** A recap with every count at zero. */
export function emptyRecap(): HostRecap {
  return { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, ignored: 0 };
}

/**
 * The documented exit code of a run: 130 interrupted, 2 some host failed, 3 some host unreachable
 * (and none failed), else 0. `failedByPeer` counts, per host, failures caused by another host rha
 * could not reach (a pair node that stops because its peer's host key was refused): those blame
 * the unreachable host, so they make the run a 3, not a 2.
 */
export function exitCodeFor(recap: Record<string, HostRecap>, interrupted: boolean, failedByPeer: Record<string, number> = {}): ExitCode {
  if (interrupted) return ExitCode.interrupted;
  const all = Object.entries(recap);
  if (all.some(([h, r]) => r.failed > (failedByPeer[h] ?? 0))) return ExitCode.hostFailed;
  if (all.some(([h, r]) => r.unreachable > 0 || (failedByPeer[h] ?? 0) > 0)) return ExitCode.hostUnreachable;
  return ExitCode.ok;
}
