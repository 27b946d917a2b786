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
