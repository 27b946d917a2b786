/**
 * known_hosts: parse, match (plain, wildcard and hashed `|1|` entries), record on first contact,
 * replace deliberately. The pure functions work on text; the file functions add an in-process lock
 * and atomic writes, because many hosts of one run connect at once and share one file.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface KnownHostsEntry {
  /** 1-based line number in the file. */
  line: number;
  /** The host field: comma-separated patterns, or one `|1|salt|hash`. */
  hosts: string;
  keyType: string;
  /** The base64 key blob as written in the file. */
  key: string;
  /** `@cert-authority` / `@revoked`: such lines are kept but never used to accept a key. */
  marker?: string;
}

/** The parsed key entries of a known_hosts text (comments, blanks and malformed lines skipped). */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === '' || fields[0].startsWith('#')) return;
    let marker: string | undefined;
    if (fields[0].startsWith('@')) marker = fields.shift();
    if (fields.length < 3) return;
    // Copies, not slices: a slice of `text` keeps the whole text alive for as long as it is held
    // (a key type in a connection's algorithm list: 1000 connections held 1000 copies of a 0.8 MB
    // file, most of a 1000-host run's memory; issue 17).
    entries.push({ line: i + 1, hosts: own(fields[0]), keyType: own(fields[1]), key: own(fields[2]), ...(marker ? { marker: own(marker) } : {}) });
  });
  return entries;
}

/**
 * A known_hosts text's entries, found by host without a scan: plain entries (only literal names, no
 * wildcard, negation or hash) by name, the rest checked one by one as before. A run of 1000 hosts
 * sharing a 1000-line file parsed and scanned it twice per connect: a fifth of its CPU (issue 17).
 */
export class KnownHostsIndex {
  private readonly plain = new Map<string, KnownHostsEntry[]>();
  private readonly others: KnownHostsEntry[] = [];

  constructor(readonly entries: readonly KnownHostsEntry[]) {
    for (const e of entries) {
      const patterns = e.hosts.split(',');
      if (e.hosts.startsWith('|') || patterns.some((p) => p === '' || p.startsWith('!') || /[*?]/.test(p))) {
        this.others.push(e);
        continue;
      }
      for (const name of new Set(patterns.map((p) => p.toLowerCase()))) {
        const list = this.plain.get(name);
        if (list) list.push(e);
        else this.plain.set(name, [e]);
      }
    }
  }

  /** The entries naming this address and port, in file order (what a scan with entryMatchesHost finds). */
  forHost(address: string, port: number): KnownHostsEntry[] {
    const byName = this.plain.get(knownHostsName(address, port).toLowerCase()) ?? [];
    const rest = this.others.filter((e) => entryMatchesHost(e, address, port));
    if (!rest.length) return byName.slice();
    return [...byName, ...rest].sort((a, b) => a.line - b.line);
  }
}

/** A string of its own, not a slice of a larger one (V8 keeps the parent of a slice alive). */
function own(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/** The name OpenSSH writes and hashes for a host: `addr` on port 22, `[addr]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** `*` and `?` glob match, as OpenSSH's match_pattern (case-insensitive host names). */
function globMatch(text: string, pattern: string): boolean {
  // Most entries are plain addresses: no RegExp per line per connect (a 100-host run built 40,000).
  if (!/[*?]/.test(pattern)) return text.toLowerCase() === pattern.toLowerCase();
  const re = new RegExp(
    '^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$',
    'i',
  );
  return re.test(text);
}

/** Whether an entry's host field names this address and port (hashed or plain, with negation). */
export function entryMatchesHost(entry: Pick<KnownHostsEntry, 'hosts'>, address: string, port: number): boolean {
  const name = knownHostsName(address, port);
  if (entry.hosts.startsWith('|1|')) {
    const [, , salt, hash] = entry.hosts.split('|');
    if (!salt || !hash) return false;
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return digest === hash;
  }
  let matched = false;
  for (const pattern of entry.hosts.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatch(name, pattern.slice(1))) return false;
    } else if (globMatch(name, pattern)) {
      matched = true;
    }
  }
  return matched;
}

/** The key type written inside an SSH public key blob (`ssh-ed25519`, `ssh-rsa`, ...). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  if (len > blob.length - 4) return 'unknown';
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** `SHA256:...` as `ssh-keygen -l` prints it (base64 without padding). */
export function hostKeyFingerprint(blob: Buffer | string): string {
  const bytes = typeof blob === 'string' ? Buffer.from(blob, 'base64') : blob;
  return 'SHA256:' + createHash('sha256').update(bytes).digest('base64').replace(/=+$/, '');
}

export interface StoredKey {
  file: string;
  line: number;
  keyType: string;
  fingerprint: string;
}

export type HostKeyCheck =
  | { kind: 'match'; line: number }
  /** No usable entry of this key type: first contact (or a key type not seen before). */
  | { kind: 'unknown' }
  /** Entries of the same type exist and none holds this key. */
  | { kind: 'changed'; stored: Omit<StoredKey, 'file'>[] };

/**
 * Checks a presented key against entries: accepted if any entry of the same key type for this
 * host holds it. Entries of other types only mean "not seen before" (OpenSSH's accept-new does the
 * same), because a server offers several key types and which one is negotiated may change.
 */
export function checkHostKey(entries: KnownHostsEntry[], address: string, port: number, blob: Buffer): HostKeyCheck {
  const type = keyTypeOf(blob);
  const presented = blob.toString('base64');
  const sameType = entries.filter((e) => !e.marker && e.keyType === type && entryMatchesHost(e, address, port));
  const hit = sameType.find((e) => e.key === presented);
  if (hit) return { kind: 'match', line: hit.line };
  if (sameType.length === 0) return { kind: 'unknown' };
  return {
    kind: 'changed',
    stored: sameType.map((e) => ({ line: e.line, keyType: e.keyType, fingerprint: hostKeyFingerprint(e.key) })),
  };
}

/** Key types already recorded for this host, so the client can prefer them in negotiation. */
export function knownKeyTypes(entries: KnownHostsEntry[], address: string, port: number): string[] {
  const types = entries.filter((e) => !e.marker && entryMatchesHost(e, address, port)).map((e) => e.keyType);
  return [...new Set(types)];
}

/** The line rha appends for a newly learned key (plain, not hashed, so a person can read it). */
export function formatEntry(address: string, port: number, blob: Buffer): string {
  return `${knownHostsName(address, port)} ${keyTypeOf(blob)} ${blob.toString('base64')}`;
}

/** Text with a line appended (adding the missing final newline first). */
export function appendLine(text: string, line: string): string {
  if (text !== '' && !text.endsWith('\n')) text += '\n';
  return text + line + '\n';
}

/**
 * Text without the entries for this host (any key type, plain or hashed; marker lines kept), and
 * how many lines were removed. A line naming several hosts is removed whole, as `ssh-keygen -R` does.
 */
export function removeHostEntries(text: string, address: string, port: number): { text: string; removed: number } {
  const drop = new Set(
    parseKnownHosts(text)
      .filter((e) => !e.marker && entryMatchesHost(e, address, port))
      .map((e) => e.line),
  );
  const kept = text.split('\n').filter((_, i) => !drop.has(i + 1));
  return { text: kept.join('\n'), removed: drop.size };
}

// ---------------------------------------------------------------------------------------------
// Files: an in-process lock per path, atomic writes (temp file in the same folder + rename).

const locks = new Map<string, Promise<unknown>>();

/** Runs fn with exclusive access to one known_hosts file within this process; returns fn's value. */
export async function withKnownHostsLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const key = path.resolve(file);
  const previous = locks.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => undefined);
  locks.set(key, tail);
  try {
    return await run;
  } finally {
    if (locks.get(key) === tail) locks.delete(key);
  }
}

/** The file's text, or '' when it does not exist yet. */
export async function readKnownHosts(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

const indexes = new Map<string, { stamp: string; index: Promise<KnownHostsIndex> }>();

/**
 * The file's entries, indexed; parsed again only when the file changed (inode, size, mtime or ctime:
 * rha's own writes rename a new file into place). A missing file is an empty index.
 */
export async function knownHostsIndex(file: string): Promise<KnownHostsIndex> {
  const key = path.resolve(file);
  let stamp: string;
  try {
    const st = await fs.stat(key, { bigint: true });
    stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new KnownHostsIndex([]);
    throw err;
  }
  const hit = indexes.get(key);
  if (hit?.stamp === stamp) return hit.index;
  // Hosts connecting at once share one read and parse.
  const index = readKnownHosts(key).then((text) => new KnownHostsIndex(parseKnownHosts(text)));
  indexes.set(key, { stamp, index });
  index.catch(() => {
    if (indexes.get(key)?.index === index) indexes.delete(key);
  });
  return index;
}

/** Writes the whole file atomically with mode 0600, creating its folder (0700) when missing. */
export async function writeKnownHosts(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.rha-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.writeFile(tmp, text, { mode: 0o600 });
    await fs.chmod(tmp, 0o600);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export type HostKeyVerdict =
  | { kind: 'known'; line: number }
  | { kind: 'learned' }
  | { kind: 'replaced'; removed: number; previous: StoredKey[] }
  | { kind: 'changed'; stored: StoredKey[]; presented: { keyType: string; fingerprint: string } };

/**
 * Verifies a presented host key against the file: known → accept; unknown → record it (TOFU);
 * changed → reject, unless acceptChanged, in which case the host's old entries are replaced.
 */
export async function verifyHostKeyInFile(
  file: string,
  address: string,
  port: number,
  blob: Buffer,
  acceptChanged: boolean,
): Promise<HostKeyVerdict> {
  return withKnownHostsLock(file, async () => {
    // The common case (a recorded key) from the index; anything else from the file's text as it is now.
    const known = checkHostKey((await knownHostsIndex(file)).forHost(address, port), address, port, blob);
    if (known.kind === 'match') return { kind: 'known', line: known.line };
    const text = await readKnownHosts(file);
    const result = checkHostKey(parseKnownHosts(text), address, port, blob);
    if (result.kind === 'match') return { kind: 'known', line: result.line };
    if (result.kind === 'unknown') {
      await writeKnownHosts(file, appendLine(text, formatEntry(address, port, blob)));
      return { kind: 'learned' };
    }
    const stored = result.stored.map((s) => ({ file, ...s }));
    if (!acceptChanged) {
      return { kind: 'changed', stored, presented: { keyType: keyTypeOf(blob), fingerprint: hostKeyFingerprint(blob) } };
    }
    const { text: without, removed } = removeHostEntries(text, address, port);
    await writeKnownHosts(file, appendLine(without, formatEntry(address, port, blob)));
    return { kind: 'replaced', removed, previous: stored };
  });
}

/** Removes every entry for address:port from the file; returns how many lines were removed. */
export async function forgetHostKey(knownHostsPath: string, address: string, port: number): Promise<number> {
  return withKnownHostsLock(knownHostsPath, async () => {
    const text = await readKnownHosts(knownHostsPath);
    const { text: without, removed } = removeHostEntries(text, address, port);
    if (removed > 0) await writeKnownHosts(knownHostsPath, without);
    return removed;
  });
}
