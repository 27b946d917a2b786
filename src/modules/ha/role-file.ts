/**
 * replication.conf (included by redis.conf) records the role a restarted Redis comes back in.
 * Written only through this script: temp file beside it, owner and mode set, then rename.
 */
import { quote } from '../../core/command.js';

/** Shell lines that replace CONFIG_DIR/replication.conf with `replicaof HOST PORT`, or nothing (a master). */
export function writeRoleFileScript(configDir: string, replicaOf: { host: string; port: number } | undefined, writer: string): string {
  const file = quote(`${configDir}/replication.conf`);
  const body = [`# Written by rha (${writer})`, ...(replicaOf ? [`replicaof ${replicaOf.host} ${replicaOf.port}`] : [])];
  return [
    `tmp=$(mktemp ${file}.XXXXXX)`,
    `printf '%s\\n' ${body.map(quote).join(' ')} > "$tmp"`,
    `chown root:redis "$tmp"; chmod 0640 "$tmp"; mv -f "$tmp" ${file}`,
  ].join('\n');
}
