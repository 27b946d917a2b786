import { ExitCode, type HostRecap } from '../core/types.js';

/** A recap with every count at zero. */
export function emptyRecap(): HostRecap {
  return { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, ignored: 0 };
}

/**
 * The documented exit code of a run: 130 interrupted, 2 some host failed, 3 some host unreachable
 * (and none failed), else 0.
 */
export function exitCodeFor(recap: Record<string, HostRecap>, interrupted: boolean): ExitCode {
  if (interrupted) return ExitCode.interrupted;
  const all = Object.values(recap);
  if (all.some((r) => r.failed > 0)) return ExitCode.hostFailed;
  if (all.some((r) => r.unreachable > 0)) return ExitCode.hostUnreachable;
  return ExitCode.ok;
}
