/**
 * The lab's cache: a minimal Debian root filesystem, a local apt repository with what provisioning
 * installs, and Redis's real source tarball. Each lives in a folder named after a key of its
 * recipe, is built in a temp folder and renamed into place, so an interrupted build never leaves a
 * half cache and a change of the package list builds a new one.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { pidAlive } from '../core/process.js';
import { HOST_ENV, LabError, run } from './sh.js';

export const DEBIAN_SUITE = 'bookworm';
export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
/**
 * What a fresh host has: a minimal Debian with an SSH server (no gcc, no make, no keepalived), and
 * sudo, as on most images, so a lab can log in as a sudo user (`rha lab up --login sudo`).
 */
export const ROOTFS_INCLUDE = ['openssh-server', 'iproute2', 'procps', 'sudo'] as const;
/** Benchmark hosts also get python3 (Ansible needs it on managed hosts). */
export const PYTHON_INCLUDE = ['python3'] as const;
/** systemd-booted hosts (rha lab up --systemd) boot the rootfs with systemd as PID 1. */
export const SYSTEMD_INCLUDE = ['systemd', 'systemd-sysv', 'dbus', 'sudo'] as const;
/**
 * What a provisioning run installs from a mirror: the lab's local repository carries these and
 * their dependencies. redis-server is Debian's package, for `redis.install: package`.
 */
export const REPO_PACKAGES = ['keepalived', 'gcc', 'make', 'libc6-dev', 'tar', 'gzip', 'ca-certificates', 'pkg-config', 'sudo', 'redis-server'] as const;
/** Bump when the build steps change in a way the lists above do not show. */
const RECIPE_VERSION = 1;

/** Debian's source package of redis for bookworm: the untouched upstream tarball (sha256 as in Debian's signed .dsc). */
export const REDIS_SOURCE = {
  version: '7.0.15',
  file: 'redis_7.0.15.orig.tar.gz',
  size: 3_025_940,
  sha256: '4b1dc4ee6d622a09fff9c6777191209750fb5e5a725ef78ea012d6eef4c22982',
} as const;

/** Where the rootfs is mounted read-only inside every host (the hosts' apt source points here). */
export const HOST_REPO_DIR = '/srv/rha-repo';

export interface CacheInfo {
  /** Lower layer of every host's overlay root. */
  rootfs: string;
  /** Flat apt repository (.deb files + Packages). */
  repo: string;
  redisSource: { path: string; sha256: string; version: string };
}

/** The cache folder: RHA_CACHE_DIR or /var/cache/rha. */
export function cacheDir(): string {
  return process.env.RHA_CACHE_DIR || '/var/cache/rha';
}

/** The key of a rootfs+repo recipe: changes whenever a package list or the build steps change. */
export function rootfsKey(python: boolean, systemd = false): string {
  const recipe = {
    v: RECIPE_VERSION,
    suite: DEBIAN_SUITE,
    mirror: DEBIAN_MIRROR,
    include: includeList(python, systemd),
    repo: [...REPO_PACKAGES],
  };
  return createHash('sha256').update(JSON.stringify(recipe)).digest('hex').slice(0, 12);
}

/** debootstrap's include list of a rootfs variant (the systemd list only when asked: its key stays unchanged otherwise). */
function includeList(python: boolean, systemd: boolean): string[] {
  return [...ROOTFS_INCLUDE, ...(python ? PYTHON_INCLUDE : []), ...(systemd ? SYSTEMD_INCLUDE : [])];
}

/** The cached root filesystem, repository and Redis source, building whatever is missing. */
export async function ensureCache(
  opts: { python?: boolean; systemd?: boolean; log?: (line: string) => void } = {},
): Promise<CacheInfo> {
  const log = opts.log ?? (() => undefined);
  const base = cacheDir();
  await fs.mkdir(base, { recursive: true, mode: 0o755 });
  await removeStaleTemps(base);
  const python = !!opts.python;
  const systemd = !!opts.systemd;
  const key = `rootfs-${python ? 'python-' : ''}${systemd ? 'systemd-' : ''}${rootfsKey(python, systemd)}`;
  const final = path.join(base, key);
  await buildOnce(base, key, log, (tmp) => buildRootfs(tmp, includeList(python, systemd), log));
  const redisDir = path.join(base, `redis-${REDIS_SOURCE.version}`);
  await buildOnce(base, path.basename(redisDir), log, (tmp) => downloadRedisSource(tmp, log));
  const tarball = path.join(redisDir, REDIS_SOURCE.file);
  const sha256 = await sha256File(tarball);
  if (sha256 !== REDIS_SOURCE.sha256) {
    throw new LabError(
      `${tarball}: sha256 ${sha256} does not match Debian's ${REDIS_SOURCE.sha256}; remove ${redisDir} and run again`,
    );
  }
  return {
    rootfs: path.join(final, 'root'),
    repo: path.join(final, 'repo'),
    redisSource: { path: tarball, sha256, version: REDIS_SOURCE.version },
  };
}

/** sha256 hex of a file. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Temp folders of builds whose process is gone (interrupted runs). */
async function removeStaleTemps(base: string): Promise<void> {
  for (const entry of await fs.readdir(base)) {
    const m = /\.tmp-(\d+)$/.exec(entry);
    if (m && !pidAlive(Number(m[1]))) await fs.rm(path.join(base, entry), { recursive: true, force: true });
  }
}

/**
 * Builds base/name once: under a lock (another lab may be building the same thing right now),
 * into name.tmp-PID, renamed into place only when complete.
 */
async function buildOnce(
  base: string,
  name: string,
  log: (line: string) => void,
  build: (tmp: string) => Promise<void>,
): Promise<void> {
  const final = path.join(base, name);
  const lock = path.join(base, `${name}.lock`);
  for (;;) {
    if (existsSync(final)) return;
    try {
      await fs.writeFile(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch {
      const holder = Number(await fs.readFile(lock, 'utf8').catch(() => '0'));
      if (holder && !pidAlive(holder)) await fs.rm(lock, { force: true });
      else {
        log(`waiting for another build of ${final} (pid ${holder})`);
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }
  const tmp = `${final}.tmp-${process.pid}`;
  try {
    if (existsSync(final)) return;
    await fs.rm(tmp, { recursive: true, force: true });
    await fs.mkdir(tmp, { recursive: true });
    await build(tmp);
    await fs.rename(tmp, final);
    log(`cached ${final}`);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
    await fs.rm(lock, { force: true });
  }
}

/** Why the first build failed, when Debian's mirror is the likely cause. */
function mirrorHint(what: string, detail: string): LabError {
  return new LabError(
    `${what} failed. The first \`rha lab up\` builds its cache from Debian's package mirror ` +
      `(${DEBIAN_MIRROR}); is it reachable from this machine?\n${detail}`,
  );
}

async function buildRootfs(tmp: string, includePackages: string[], log: (line: string) => void): Promise<void> {
  const root = path.join(tmp, 'root');
  const include = includePackages.join(',');
  log(`building the lab root filesystem (debootstrap ${DEBIAN_SUITE}, include ${include}); first run only, about a minute`);
  const boot = await run(
    ['debootstrap', '--variant=minbase', `--include=${include}`, DEBIAN_SUITE, root, DEBIAN_MIRROR],
    { env: { ...HOST_ENV }, onLine: (l) => /^I: (Retrieving|Validating|Extracting|Installing|Configuring) /.test(l) || log(l) },
  );
  if (!boot.ok) throw mirrorHint('debootstrap', (boot.stderr + boot.stdout).trim().split('\n').slice(-8).join('\n'));

  log(`downloading ${REPO_PACKAGES.join(' ')} into the lab's local apt repository`);
  // In a private mount namespace: proc and /dev mounted for the chroot vanish with it, even on a crash.
  const script = String.raw`
    set -e
    T=$1; shift
    R=$T/root
    mount -t proc proc "$R/proc"
    mount --rbind /dev "$R/dev"
    cat /etc/resolv.conf > "$R/etc/resolv.conf"
    chroot "$R" apt-get -q update
    chroot "$R" apt-get -q install --download-only -y --no-install-recommends "$@"
    mkdir "$T/repo"
    mv "$R"/var/cache/apt/archives/*.deb "$T/repo/"
    (cd "$T/repo" && dpkg-scanpackages -m . > Packages 2>/dev/null)
    # Every host generates its own keys at start: none may come from the shared root filesystem.
    rm -f "$R"/etc/ssh/ssh_host_*
    # Hosts have no route to mirrors: apt sees only the local repository (a mirror line would hang).
    echo 'deb [trusted=yes] file:${HOST_REPO_DIR} ./' > "$R/etc/apt/sources.list"
    rm -f "$R"/etc/apt/sources.list.d/*
    rm -rf "$R"/var/lib/apt/lists/*
    mkdir -p "$R/var/lib/apt/lists/partial" "$R${HOST_REPO_DIR}"
    mount --bind "$T/repo" "$R${HOST_REPO_DIR}"
    chroot "$R" apt-get -q update
    chroot "$R" apt-get clean
    : > "$R/etc/resolv.conf"
    echo localhost > "$R/etc/hostname"
  `;
  const r = await run(['unshare', '--mount', '--propagation', 'private', 'bash', '-c', script, 'bash', tmp, ...REPO_PACKAGES], {
    env: { ...HOST_ENV },
  });
  if (!r.ok) throw mirrorHint('filling the local apt repository', (r.stderr + r.stdout).trim().split('\n').slice(-8).join('\n'));
  const debs = (await fs.readdir(path.join(tmp, 'repo'))).filter((f) => f.endsWith('.deb')).length;
  log(`local apt repository: ${debs} packages`);
}

/**
 * `apt-get source --download-only redis` with apt's own files redirected under the temp folder
 * (-o Dir::...): nothing is written to the machine's /etc or /var/lib/apt.
 */
async function downloadRedisSource(tmp: string, log: (line: string) => void): Promise<void> {
  log(`downloading Debian's redis source package (${REDIS_SOURCE.file})`);
  const etc = path.join(tmp, 'etc');
  await fs.mkdir(path.join(etc, 'sources.list.d'), { recursive: true });
  await fs.mkdir(path.join(tmp, 'lists', 'partial'), { recursive: true });
  await fs.mkdir(path.join(tmp, 'cache', 'archives', 'partial'), { recursive: true });
  await fs.mkdir(path.join(tmp, 'src'), { recursive: true });
  await fs.writeFile(
    path.join(etc, 'sources.list'),
    `deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${DEBIAN_MIRROR} ${DEBIAN_SUITE} main\n`,
  );
  const apt = [
    'apt-get',
    '-q',
    '-o', `Dir::Etc::SourceList=${path.join(etc, 'sources.list')}`,
    '-o', `Dir::Etc::SourceParts=${path.join(etc, 'sources.list.d')}`,
    '-o', `Dir::State::Lists=${path.join(tmp, 'lists')}`,
    '-o', `Dir::Cache=${path.join(tmp, 'cache')}`,
    '-o', 'APT::Sandbox::User=root',
  ];
  const up = await run([...apt, 'update'], { env: { ...HOST_ENV } });
  if (!up.ok) throw mirrorHint('apt-get update for the redis source', (up.stderr + up.stdout).trim());
  const src = await run([...apt, 'source', '--download-only', 'redis'], { cwd: path.join(tmp, 'src'), env: { ...HOST_ENV } });
  if (!src.ok) throw mirrorHint('apt-get source --download-only redis', (src.stderr + src.stdout).trim());
  const downloaded = path.join(tmp, 'src', REDIS_SOURCE.file);
  if (!existsSync(downloaded)) {
    const got = (await fs.readdir(path.join(tmp, 'src'))).join(', ');
    throw new LabError(`apt-get source redis brought ${got}, not ${REDIS_SOURCE.file}: Debian's redis changed`);
  }
  const sha = await sha256File(downloaded);
  if (sha !== REDIS_SOURCE.sha256) {
    throw new LabError(`${REDIS_SOURCE.file} from Debian has sha256 ${sha}, expected ${REDIS_SOURCE.sha256}`);
  }
  // Keep only the upstream tarball; move it to the top and drop apt's working files.
  await fs.rename(downloaded, path.join(tmp, REDIS_SOURCE.file));
  for (const d of ['etc', 'lists', 'cache', 'src']) await fs.rm(path.join(tmp, d), { recursive: true, force: true });
}
