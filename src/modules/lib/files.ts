/**
 * The one place that writes files on hosts (style.md: "template = render, then copy"):
 * read the remote state in one command, compare checksums locally, upload only when different,
 * write atomically (temp file beside the destination, owner and mode set, validate, backup, rename).
 */
import { createHash } from 'node:crypto';
import { describeFailure, maskSecrets, quote } from '../../core/command.js';
import type { BulkReader, FileDiff, ModuleOutcome, PlannedChange, ReadSpec, TaskContext } from '../../core/types.js';
import { maskFileDiff } from '../../core/secret-lines.js';
import { ModuleFailure } from './failure.js';
import { changed, failed, runScript } from './run.js';

/** Old content is fetched for --diff only below this size. */
export const DIFF_MAX_BYTES = 64 * 1024;

export interface FileSpec {
  dest: string;
  content: Buffer | string;
  /** Four-digit octal ("0640"); when absent an existing file keeps its mode, a new one gets 0644. */
  mode?: string;
  owner?: string;
  group?: string;
  /**
   * Which lines hold secrets, for diffs: `true` = the whole file (a password file; its size and
   * checksum are not reported either), or directive names (`requirepass`) whose values are secret.
   * Either way, the defaults of maskFileDiff (requirepass, auth_pass, *password*...) apply too.
   */
  secret?: boolean | readonly string[];
}

export interface WriteOptions {
  /** Keep `dest.TIMESTAMP~`, a copy of the old file, before replacing it. */
  backup?: boolean;
  /** Validator argv; each `%s` (also inside a word) is replaced by the temp file's path. */
  validate?: string[];
  /**
   * Keep the replaced file as `dest.rha-prev` (a hard link: the same bytes, owner and mode), for
   * a service that fails to start with the new one to put back (see restorePrevious).
   */
  keepPrevious?: boolean;
}

/** Where the file a write replaced is kept (keepPrevious), and where a rejected new one is kept after a restore. */
export const PREVIOUS_SUFFIX = '.rha-prev';
export const REJECTED_SUFFIX = '.rha-rejected';

/** What is at a path on the host (following symlinks). */
export type RemoteFile =
  | { kind: 'absent' }
  | { kind: 'directory' }
  | { kind: 'other' }
  | {
      kind: 'file';
      mode: string;
      uid: string;
      gid: string;
      owner: string;
      group: string;
      size: number;
      sha256: string;
      /** Present only when asked for (--diff) and the file is small. */
      content?: Buffer;
    };

export interface FilePlan {
  current: RemoteFile;
  /** sha256 of the wanted content. */
  sha256: string;
  contentChanged: boolean;
  /** Attribute changes needed on an existing file whose content is already right. */
  attrs: { mode?: string; owner?: string; group?: string };
  changes: PlannedChange[];
  /** "DEST is up to date" when nothing is needed. */
  reason?: string;
  diff?: FileDiff;
}

// Reads kind, attributes, checksum and (for diffs) the base64 content in one round-trip.
// $1 = path, $2 = 1 to include content when below DIFF_MAX_BYTES.
const READ_SCRIPT = `p=$1
if [ -d "$p" ]; then echo directory; exit 0; fi
if [ ! -e "$p" ]; then echo absent; exit 0; fi
if [ ! -f "$p" ]; then echo other; exit 0; fi
echo file
stat -L -c '%a %u %g %s %U %G' -- "$p" || exit 1
s=$(sha256sum < "$p") || exit 1
echo "\${s%% *}"
if [ "$2" = 1 ] && [ "$(stat -L -c %s -- "$p")" -lt ${DIFF_MAX_BYTES} ]; then base64 < "$p"; fi`;

/** Returns the parsed output of READ_SCRIPT (exported for unit tests). */
export function parseRemoteFile(stdout: string): RemoteFile {
  const lines = stdout.split('\n');
  const kind = lines[0]?.trim();
  if (kind === 'absent' || kind === 'directory' || kind === 'other') return { kind };
  if (kind !== 'file') throw new Error(`unexpected file state output: ${stdout.slice(0, 200)}`);
  const [mode, uid, gid, size, owner, group] = (lines[1] ?? '').trim().split(' ');
  // `sha256sum < FILE` prints "HASH  -"; a script may leave the name on (one program fewer than cut).
  const sha256 = (lines[2] ?? '').trim().split(' ')[0];
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`unexpected checksum output: ${lines[2]}`);
  const b64 = lines.slice(3).join('');
  return {
    kind: 'file',
    mode: mode.padStart(4, '0'),
    uid,
    gid,
    owner,
    group,
    size: Number(size),
    sha256,
    content: b64.trim() ? Buffer.from(b64, 'base64') : lines.length > 3 && Number(size) === 0 ? Buffer.alloc(0) : undefined,
  };
}

// READ_SCRIPT for every path in "$@" (without content): a kind letter per path, then one stat and
// one sha256sum over all the regular files, instead of two programs per file.
const READ_MANY_SCRIPT = `n=$#
for p; do
  if [ -d "$p" ]; then echo d; elif [ ! -e "$p" ]; then echo a; elif [ ! -f "$p" ]; then echo o; else echo f; set -- "$@" "$p"; fi
done
shift $n
echo @@
if [ $# -gt 0 ]; then stat -L -c '%a %u %g %s %U %G' -- "$@" || exit 1; echo @@; sha256sum -- "$@" || exit 1; fi`;

/** READ_SCRIPT's output for each path, from READ_MANY_SCRIPT's (pure; exported for tests). */
export function splitRemoteFiles(stdout: string, paths: readonly string[]): Array<string | undefined> {
  const none = paths.map(() => undefined);
  const [kindPart, statPart = '', sumPart = ''] = stdout.split('@@\n');
  const kinds = kindPart.split('\n').filter((l) => l !== '');
  const stats = statPart.split('\n').filter((l) => l !== '');
  // sha256sum escapes a name holding a newline or backslash with a leading backslash.
  const sums = sumPart.split('\n').filter((l) => l !== '').map((l) => l.replace(/^\\/, '').slice(0, 64));
  const files = kinds.filter((k) => k === 'f').length;
  if (kinds.length !== paths.length || stats.length !== files || sums.length !== files) return none;
  if (!sums.every((s) => /^[0-9a-f]{64}$/.test(s))) return none;
  let f = 0;
  return kinds.map((k) => {
    if (k === 'd') return 'directory\n';
    if (k === 'a') return 'absent\n';
    if (k === 'o') return 'other\n';
    const out = `file\n${stats[f]}\n${sums[f]}\n`;
    f++;
    return out;
  });
}

const remoteFilesReader: BulkReader = { script: READ_MANY_SCRIPT, split: splitRemoteFiles };

/** The read readRemoteFile makes (for Module.reads); without content it can be read in bulk. */
export function remoteFileRead(path: string, withContent: boolean): ReadSpec {
  return {
    script: READ_SCRIPT,
    args: [path, withContent ? '1' : '0'],
    ...(withContent ? {} : { bulk: { reader: remoteFilesReader, path } }),
  };
}

/** Returns the state of a path on the host (one command). */
export async function readRemoteFile(ctx: TaskContext, path: string, withContent: boolean): Promise<RemoteFile> {
  const read = remoteFileRead(path, withContent);
  const r = await runScript(ctx, read.script, read.args);
  if (!r.ok) throw new ModuleFailure(`cannot read ${path}: ${describeFailure(r)}`);
  return parseRemoteFile(r.stdout);
}

/** Returns the text of a buffer when it is UTF-8 text without NUL bytes, else undefined. */
export function asText(buf: Buffer): string | undefined {
  if (buf.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return undefined;
  }
}

/** Returns sha256 of the content as hex. */
export function sha256(content: Buffer | string): string {
  return createHash('sha256').update(content).digest('hex');
}

function matches(want: string | undefined, name: string, id: string): boolean {
  return want === undefined || want === name || want === id;
}

/**
 * Returns what writing `spec` would change, from the current state (pure; exported for tests).
 * `ctx` supplies diff and secrets only.
 */
export function compareFile(
  spec: FileSpec,
  current: RemoteFile,
  opts: { diff: boolean; secrets: Iterable<string> },
): FilePlan {
  const content = Buffer.isBuffer(spec.content) ? spec.content : Buffer.from(spec.content, 'utf8');
  const sum = sha256(content);
  const dest = spec.dest;
  if (current.kind === 'directory') throw new ModuleFailure(`${dest} is a directory`);
  if (current.kind === 'other') throw new ModuleFailure(`${dest} exists and is not a regular file`);
  const owner = [spec.owner, spec.group].filter(Boolean).join(':');
  const attrsText = [spec.mode ? `mode ${spec.mode}` : '', spec.owner || spec.group ? `owner ${owner || '-'}` : '']
    .filter(Boolean)
    .join(', ');
  const makeDiff = (before: Buffer | undefined): FileDiff | undefined => {
    if (!opts.diff) return undefined;
    const after = asText(content);
    const old = before === undefined ? '' : asText(before);
    if (after === undefined || old === undefined) return undefined;
    // Lines first, on the real values (so a changed secret is told apart from an unchanged one),
    // then any secret value of the run left elsewhere in the text.
    const masked = maskFileDiff(
      { path: dest, before: old, after },
      { whole: spec.secret === true, directives: Array.isArray(spec.secret) ? spec.secret : [], values: opts.secrets },
    );
    return { path: dest, before: maskSecrets(masked.before, opts.secrets), after: maskSecrets(masked.after, opts.secrets) };
  };
  // A password file's size is the password's length.
  const size = spec.secret === true ? 'secret' : `${content.length} bytes`;
  if (current.kind === 'absent') {
    const diff = makeDiff(undefined);
    return {
      current,
      sha256: sum,
      contentChanged: true,
      attrs: {},
      changes: [{ description: `create ${dest} (${size}${attrsText ? `, ${attrsText}` : ''})`, ...(diff ? { diff } : {}) }],
      diff,
    };
  }
  const attrs: FilePlan['attrs'] = {};
  if (spec.mode && spec.mode !== current.mode) attrs.mode = spec.mode;
  if (!matches(spec.owner, current.owner, current.uid)) attrs.owner = spec.owner;
  if (!matches(spec.group, current.group, current.gid)) attrs.group = spec.group;
  const changes: PlannedChange[] = [];
  let diff: FileDiff | undefined;
  const contentChanged = current.sha256 !== sum;
  if (contentChanged) {
    // Too big (or --diff off) to fetch: the diff shows only the new side when it is text.
    diff = current.content !== undefined ? makeDiff(current.content) : undefined;
    changes.push({ description: `update ${dest} (${size}${attrsText ? `, ${attrsText}` : ''})`, ...(diff ? { diff } : {}) });
  } else {
    if (attrs.mode) changes.push({ description: `chmod ${attrs.mode} ${dest} (was ${current.mode})` });
    if (attrs.owner || attrs.group) {
      const want = [attrs.owner ?? current.owner, attrs.group ?? current.group].join(':');
      changes.push({ description: `chown ${want} ${dest} (was ${current.owner}:${current.group})` });
    }
  }
  return {
    current,
    sha256: sum,
    contentChanged,
    attrs,
    changes,
    reason: changes.length === 0 ? `${dest} is up to date` : undefined,
    diff,
  };
}

/** Returns what writing `spec` would change on the host; reads the host in one command, uploads nothing. */
export async function planFile(ctx: TaskContext, spec: FileSpec): Promise<FilePlan> {
  const current = await readRemoteFile(ctx, spec.dest, ctx.diff);
  return compareFile(spec, current, { diff: ctx.diff, secrets: ctx.secrets });
}

/** Returns the validator as shell text, each `%s` becoming the quoted temp path "$tmp" (exported for tests). */
export function validateShell(argv: readonly string[]): string {
  return argv.map((word) => word.split('%s').map((part) => (part === '' ? '' : quote(part))).join('"$tmp"')).join(' ');
}

// Exit codes of the write script, mapped to messages below.
const EXIT_TEMP = 70;
const EXIT_WRITE = 71;
const EXIT_ATTRS = 72;
const EXIT_VALIDATE = 73;
const EXIT_BACKUP = 74;
const EXIT_RENAME = 75;

/**
 * Returns the remote script that writes stdin to $1 atomically (exported for tests).
 * $1 dest, $2 mode ('' = keep the old file's, else 0644), $3 owner, $4 group, $5 backup (1/0),
 * $6 keep the replaced file as dest.rha-prev (1/0).
 * umask 077 so the temp file is never readable by others, even before its final mode is set.
 */
export function writeScript(validate?: readonly string[]): string {
  const validateText = validate?.length
    ? `out=$(${validateShell(validate)} 2>&1) || { rc=$?; printf '%s\\n' "$out" >&2; exit ${EXIT_VALIDATE}; }`
    : ':';
  return `dest=$1; mode=$2; owner=$3; group=$4; backup=$5; keep=$6
umask 077
tmp=$(mktemp -- "$dest.rha-XXXXXX") || exit ${EXIT_TEMP}
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp" || exit ${EXIT_WRITE}
if [ -f "$dest" ]; then
  chown --reference="$dest" -- "$tmp" 2>/dev/null
  [ -n "$mode" ] || mode=$(stat -L -c %a -- "$dest")
fi
[ -n "$mode" ] || mode=0644
if [ -n "$owner" ]; then chown -- "$owner" "$tmp" || exit ${EXIT_ATTRS}; fi
if [ -n "$group" ]; then chgrp -- "$group" "$tmp" || exit ${EXIT_ATTRS}; fi
chmod -- "$mode" "$tmp" || exit ${EXIT_ATTRS}
${validateText}
if [ "$backup" = 1 ] && [ -f "$dest" ]; then
  b="$dest.$(date +%Y-%m-%d@%H:%M:%S)~"
  cp -p -- "$dest" "$b" || exit ${EXIT_BACKUP}
  echo "backup=$b"
fi
if [ "$keep" = 1 ] && [ -f "$dest" ]; then
  # A hard link: the old bytes, owner and mode as they were (redis.conf holds the password), and
  # the rename below leaves it as the only name of the old file.
  ln -f -- "$dest" "$dest${PREVIOUS_SUFFIX}" || exit ${EXIT_BACKUP}
  echo "previous=$dest${PREVIOUS_SUFFIX}"
fi
mv -f -- "$tmp" "$dest" || exit ${EXIT_RENAME}`;
}

export type WriteResult = { ok: true; backupFile?: string; previousFile?: string } | { ok: false; msg: string };

/** Writes the content atomically in one command (content over stdin); returns ok with the backup path, or why it failed. */
export async function writeFileAtomic(ctx: TaskContext, spec: FileSpec & WriteOptions): Promise<WriteResult> {
  const content = Buffer.isBuffer(spec.content) ? spec.content : Buffer.from(spec.content, 'utf8');
  const r = await runScript(
    ctx,
    writeScript(spec.validate),
    [spec.dest, spec.mode ?? '', spec.owner ?? '', spec.group ?? '', spec.backup ? '1' : '0', spec.keepPrevious ? '1' : '0'],
    { stdin: content },
  );
  if (r.ok) {
    const backup = /^backup=(.*)$/m.exec(r.stdout)?.[1];
    const previous = /^previous=(.*)$/m.exec(r.stdout)?.[1];
    return { ok: true, ...(backup ? { backupFile: backup } : {}), ...(previous ? { previousFile: previous } : {}) };
  }
  const out = maskSecrets((r.stderr.trim() || r.stdout.trim()).split('\n').slice(-20).join('\n'), ctx.secrets);
  const why: Record<number, string> = {
    [EXIT_TEMP]: `cannot create a temp file beside ${spec.dest}`,
    // A full disk lands here: the temp file is removed, the old file was never touched.
    [EXIT_WRITE]: `cannot write the new content of ${spec.dest} (${content.length} bytes) to a temp file beside it; ${spec.dest} was not changed`,
    [EXIT_ATTRS]: `cannot set owner/group/mode for ${spec.dest}`,
    [EXIT_VALIDATE]: `validation of ${spec.dest} failed (${(spec.validate ?? []).join(' ')}); the file was not changed`,
    [EXIT_BACKUP]: `cannot back up ${spec.dest}`,
    [EXIT_RENAME]: `cannot rename the temp file to ${spec.dest}`,
  };
  const msg = r.code !== null && why[r.code] ? `${why[r.code]}${out ? `:\n${out}` : ''}` : maskSecrets(describeFailure(r), ctx.secrets);
  return { ok: false, msg };
}

/** Sets mode/owner/group of an existing path in one command (no-deref for links); returns the command result. */
export function setAttributes(
  ctx: TaskContext,
  path: string,
  attrs: { mode?: string; owner?: string; group?: string },
  opts: { link?: boolean } = {},
) {
  const h = opts.link ? '-h ' : '';
  const script = `p=$1
if [ -n "$3" ]; then chown ${h}-- "$3" "$p" || exit 1; fi
if [ -n "$4" ]; then chgrp ${h}-- "$4" "$p" || exit 1; fi
if [ -n "$2" ]; then chmod -- "0$2" "$p" || exit 1; fi`;
  return runScript(ctx, script, [path, opts.link ? '' : (attrs.mode ?? ''), attrs.owner ?? '', attrs.group ?? '']);
}

/** Applies a non-empty FilePlan: rewrites the file when content differs, else fixes attributes only; returns the outcome. */
export async function applyFilePlan(
  ctx: TaskContext,
  spec: FileSpec & WriteOptions,
  plan: FilePlan,
): Promise<ModuleOutcome> {
  const data: Record<string, unknown> = { dest: spec.dest, ...(spec.secret === true ? {} : { checksum: plan.sha256 }) };
  const diffs = plan.diff ? [plan.diff] : undefined;
  if (plan.contentChanged) {
    const w = await writeFileAtomic(ctx, spec);
    if (!w.ok) return failed(w.msg, { data });
    if (w.backupFile) data.backup_file = w.backupFile;
    if (w.previousFile) data.previous_file = w.previousFile;
    return changed(plan.changes.map((c) => c.description).join('; '), { data, ...(diffs ? { diffs } : {}) });
  }
  const r = await setAttributes(ctx, spec.dest, plan.attrs);
  if (!r.ok) return failed(maskSecrets(describeFailure(r), ctx.secrets), { data });
  return changed(plan.changes.map((c) => c.description).join('; '), { data });
}

// $@ = files: each FILE with a FILE.rha-prev gets it back by one rename (atomic: FILE is never
// missing), the rejected FILE kept beside it as FILE.rha-rejected; prints each restored FILE.
const RESTORE_SCRIPT = `for f; do
  [ -f "$f${PREVIOUS_SUFFIX}" ] || continue
  if [ -f "$f" ]; then ln -f -- "$f" "$f${REJECTED_SUFFIX}" || exit 1; fi
  mv -f -- "$f${PREVIOUS_SUFFIX}" "$f" || exit 1
  echo "$f"
done`;

/**
 * Puts back the files a write replaced (keepPrevious), for a service that failed to start with the
 * new ones; returns the files restored (none when there was no previous copy), or why it failed.
 */
export async function restorePrevious(ctx: TaskContext, files: readonly string[]): Promise<{ ok: true; restored: string[] } | { ok: false; msg: string }> {
  if (files.length === 0) return { ok: true, restored: [] };
  const r = await runScript(ctx, RESTORE_SCRIPT, files, { label: `restore ${files.map((f) => `${f}${PREVIOUS_SUFFIX}`).join(' ')}` });
  if (!r.ok) return { ok: false, msg: maskSecrets(describeFailure(r), ctx.secrets) };
  return { ok: true, restored: r.stdout.split('\n').filter((l) => l !== '') };
}

/**
 * Forgets the previous copies once the service runs with the installed files (a later failure, of
 * a binary change say, must not bring back a config older than the one that ran); returns the result.
 */
export function forgetPrevious(ctx: TaskContext, files: readonly string[]) {
  const rm = files.flatMap((f) => [`${f}${PREVIOUS_SUFFIX}`, `${f}${REJECTED_SUFFIX}`]);
  return runScript(ctx, 'rm -f -- "$@"', rm, { label: `rm -f ${rm.map(quote).join(' ')}` });
}
