/**
 * A module failure found while planning (an assertion that does not hold, a missing package
 * manager, a `src:` file that is not there). plan() has no failed outcome to return, so it throws
 * this; the runner reports the task as failed with `message`. Bugs stay plain Errors.
 */
export class ModuleFailure extends Error {
  constructor(
    message: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ModuleFailure';
  }
}

/**
 * A failure whose cause is another host that rha could not reach or refused to trust (its pair
 * peer): this host stops, and the run's exit code blames `peer` (3, unreachable), not this host (2).
 */
export class PeerUnreachableFailure extends ModuleFailure {
  constructor(
    message: string,
    readonly peer: string,
  ) {
    super(message);
    this.name = 'PeerUnreachableFailure';
  }
}
