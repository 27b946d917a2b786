/** The pair a host belongs to, read from the derived inventory vars `cluster` and `node`. */
import type { TaskContext } from '../../core/types.js';
import { ModuleFailure } from '../lib/failure.js';

export interface PairView {
  cluster: string;
  self: string;
  peer: string;
  preferredMaster: string;
  port: number;
  password: string;
  vip: string;
  interface: string;
  binDir: string;
  configDir: string;
  addressOf(host: string): string;
}

/** Returns this host's pair; throws (a configuration bug) when the host is in no cluster. */
export function pairOf(ctx: TaskContext): PairView {
  return pairFrom(ctx.vars, ctx.host.name);
}

/** pairOf from a task's vars (for Module.reads, which has no TaskContext). */
export function pairFrom(vars: Record<string, unknown>, self: string): PairView {
  const cluster = vars.cluster as Record<string, any> | undefined;
  const node = vars.node as Record<string, any> | undefined;
  if (!cluster || !node) throw new ModuleFailure(`${self} is not in any cluster: run this task on hosts of \`clusters\``);
  const redis = cluster.redis as Record<string, any>;
  const peer = String(node.peer);
  const addresses: Record<string, string> = { [self]: String(node.address), [peer]: String(node.peer_address) };
  return {
    cluster: String(cluster.name),
    self,
    peer,
    preferredMaster: String(cluster.master),
    port: Number(redis.port),
    password: String(redis.password),
    vip: String(cluster.vip),
    interface: String(cluster.interface),
    binDir: `${String(redis.prefix).replace(/\/$/, '')}/bin`,
    configDir: String(redis.config_dir),
    addressOf: (h) => addresses[h] ?? h,
  };
}
