/**
 * The Redis source tarball: read from the controller's disk or downloaded, verified against the
 * inventory's sha256, and put on the building host (verified again there).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { quote, shellCommand } from '../../core/command.js';
import type { Connection } from '../../core/types.js';
import { BuildError, runStep } from './redis-host.js';
import { srcDir, tarball, type RedisInstallArgs } from './redis-install-args.js';

/** Returns the source's bytes (source.path or source.url), or throws a BuildError when they are not there or not the inventory's sha256. */
export async function readSource(a: RedisInstallArgs): Promise<Buffer> {
  const s = a.source!;
  let data: Buffer;
  if (s.path) {
    data = await readFile(s.path).catch((e: NodeJS.ErrnoException) => {
      throw new BuildError(`cannot read the Redis source ${s.path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    });
  } else {
    const res = await fetch(s.url!);
    if (!res.ok) throw new BuildError(`downloading ${s.url} failed: HTTP ${res.status}`);
    data = Buffer.from(await res.arrayBuffer());
  }
  const got = createHash('sha256').update(data).digest('hex');
  if (got !== s.sha256) throw new BuildError(`the Redis source ${s.path ?? s.url} has sha256 ${got}, but the inventory says ${s.sha256}: refusing to build it`);
  return data;
}

/**
 * Reads and verifies the source, then uploads it to the building host unless the tarball there
 * (`hostSha`, from the probe) is already the wanted one.
 */
export async function placeSource(conn: Connection, a: RedisInstallArgs, become: boolean, hostSha: string | undefined): Promise<void> {
  const local = await readSource(a);
  if (hostSha === a.source!.sha256) return;
  await runStep(
    conn,
    shellCommand(
      [
        'set -e',
        `mkdir -p ${quote(a.build_dir)}`,
        `tmp=$(mktemp ${quote(`${tarball(a)}.XXXXXX`)})`,
        'cat > "$tmp"',
        `echo ${quote(`${a.source!.sha256}  `)}"$tmp" | sha256sum -c --quiet`,
        `mv -f "$tmp" ${quote(tarball(a))}`,
        // A different tarball under the same version: its old tree must not be reused.
        `rm -rf ${quote(srcDir(a))}`,
      ].join('\n'),
      { become, stdin: local },
    ),
    'uploading the Redis source',
  );
}
