/**
 * Replication histories: whether one node may follow another and lose nothing. The same relation
 * as `within` in templates/keepalived/notify.sh.hbs (docs/design.md, "The notify hooks' state
 * machine"), so that `rha provision` and the hooks agree on what a lossless REPLICAOF is.
 */
import type { NodeState } from './redis-state.js';

export type History = Pick<NodeState, 'replid' | 'replid2' | 'offset' | 'secondOffset' | 'keys'>;

/**
 * True when every write `x` holds is in `y`'s history (x may REPLICAOF y and lose nothing): x holds
 * no keys; the same replication ID with x not ahead; x's ID is the one y left and x stopped before
 * y left it; x left y's ID and took no write since, at an offset y has reached; or both left the
 * same ID, x with no write since and no later than y.
 */
export function within(x: History, y: History): boolean {
  if (x.keys === 0) return true;
  if (!x.replid || !y.replid) return false;
  const xs = x.secondOffset ?? -1;
  const ys = y.secondOffset ?? -1;
  if (x.replid === y.replid && x.offset <= y.offset) return true;
  if (x.replid === y.replid2 && x.offset < ys) return true;
  if (x.replid2 === y.replid && xs > 0 && x.offset < xs && xs - 1 <= y.offset) return true;
  if (x.replid2 !== undefined && x.replid2 === y.replid2 && !/^0+$/.test(x.replid2) && xs > 0 && x.offset < xs && xs <= ys) return true;
  return false;
}
