/** Talking to Redis as a client does: through the VIP (ioredis), or on one node over SSH. */
import { Redis } from 'ioredis';
import { quote } from '../core/command.js';
import { redisCliCommand } from '../modules/ha/redis-state.js';
import type { ClusterSpec, Connection } from '../core/types.js';

export interface RedisTarget {
  host: string;
  port: number;
  password: string;
}

/** The VIP's address (without the prefix) and the cluster's Redis port and password. */
export function vipTarget(c: ClusterSpec): RedisTarget {
  const r = c.redis as { port: number; password: string };
  return { host: c.vip.split('/')[0], port: r.port, password: r.password };
}

/** A client that fails fast instead of queueing: each command either lands or errors. */
export function fastClient(t: RedisTarget, timeoutMs = 1000): Redis {
  return new Redis({
    host: t.host,
    port: t.port,
    password: t.password,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    lazyConnect: true,
    retryStrategy: () => null,
  });
}

/** Runs one command against `t` on a fresh connection; resolves with the reply, rejects on any error. */
export async function call(t: RedisTarget, args: string[], timeoutMs = 1000): Promise<unknown> {
  const c = fastClient(t, timeoutMs);
  c.on('error', () => {}); // reported through the rejected promise
  try {
    await c.connect();
    return await c.call(args[0], ...args.slice(1));
  } finally {
    c.disconnect();
  }
}

/** Runs redis-cli on a node over SSH (password over stdin: see redisCliCommand). */
export async function cliOnNode(conn: Connection, c: ClusterSpec, args: string[], become = true): Promise<string> {
  const r = c.redis as { port: number; password: string; prefix: string };
  const cli = `${r.prefix.replace(/\/$/, '')}/bin/redis-cli`;
  const res = await conn.exec(
    redisCliCommand(`rcli ${args.map(quote).join(' ')}`, { cliPath: cli, port: r.port, password: r.password, become }, { timeoutMs: 10_000 }),
  );
  if (!res.ok) throw new Error(`redis-cli ${args[0]} on ${conn.hostName} failed: ${res.stderr || res.stdout}`);
  return res.stdout.trim();
}
