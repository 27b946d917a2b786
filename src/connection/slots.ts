/** Limits on what one SSH connection runs at once: channel slots, and pools of long-lived shells. */
import type { RemoteShell } from './shell.js';

/** A small counting semaphore: resolves with a release function. */
export class Slots {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.releaser();
  }
  /** A slot now, or undefined when none is free (never waits). */
  tryAcquire(): (() => void) | undefined {
    if (this.free <= 0) return undefined;
    this.free--;
    return this.releaser();
  }
  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

/** The shells of one kind on a connection. */
export class ShellPool {
  readonly shells: RemoteShell[] = [];
  opening = 0;
  failures = 0;
  /** Set when the host cannot run such a shell (no setsid, sudo refusing): exec channels only. */
  unsupported = false;
}
