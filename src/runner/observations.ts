/**
 * Observations: live-state reads (a pair node's Redis, VIP and keepalived) shared by the hosts of
 * one play batch, so that a step run on both nodes of a pair reads each node once, and a later
 * step reuses that read while nothing was applied anywhere in the batch since.
 *
 * Why: every ha_* task reads both nodes of its pair, on both nodes: four probes (each an SSH exec
 * channel with a redis-cli) per step, five steps in the bring-up, where a no-op re-run changes
 * nothing between them. Measured on the real site.yaml, they were the largest part of a no-op.
 *
 * Safe because:
 * - a read is kept only while no module applied anything on any host of the batch: the first
 *   apply of a step forgets every read and keeps none until the next step (a read made while
 *   another host's apply runs may see it half done);
 * - `fresh` reads (ha_topology, which decides the roles the later steps act on) accept only a read
 *   made in the current step, i.e. at the same moment as their own would have been;
 * - a module that reuses an older read may only conclude "nothing to do" from it: when the plan
 *   would change something or refuse, it reads again with `fresh` (ha_service does), so every
 *   action and every refusal is decided on a read of this step, as without the cache;
 * - a retry (`retries`/`until`) forgets every read first: it waits for the state to change.
 * What a reused read can miss is a change made outside rha between the two steps, the same race a
 * fresh read has with a change made just after it.
 */

interface Entry {
  step: number;
  value: Promise<unknown>;
}

export class Observations {
  private readonly entries = new Map<string, Entry>();
  private step = 0;
  /** Set by the first apply of a step: nothing is kept until the next step. */
  private applied = false;

  /** A new task step begins (every host of the batch runs the same task). */
  nextStep(): void {
    this.step++;
    this.applied = false;
  }

  /** A module is about to change something on a host (apply, outside check mode). */
  applying(): void {
    this.applied = true;
    this.entries.clear();
  }

  /** Forgets every read (a retry waits for a change; the end of a batch). */
  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value of `read`, shared under `key` (see the file's comment for when it is reused). */
  observe<T>(key: string, read: () => Promise<T>, opts: { fresh?: boolean } = {}): Promise<T> {
    if (this.applied) return read();
    const e = this.entries.get(key);
    if (e && (!opts.fresh || e.step === this.step)) return e.value as Promise<T>;
    const value = read();
    const entry = { step: this.step, value };
    this.entries.set(key, entry);
    // A failed read is not kept: the next caller tries again.
    value.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return value;
  }
}
