/**
 * The operator's OpenSSH client config (~/.ssh/config, or `ssh: { config: FILE }`): what rha
 * takes from it for one host name — HostName, User, Port, IdentityFile, ProxyJump — with
 * OpenSSH's rules (Host patterns with `*`, `?` and `!`, first value obtained wins). Parsing is
 * the `ssh-config` package's; `Match exec` blocks are never run (a config must not run commands
 * on rha's behalf). Inventory settings win over these (see README "SSH config and bastions").
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import SSHConfig from 'ssh-config';

/** What the ssh config says about one host (absent = not said). */
export interface SshConfigHost {
  hostName?: string;
  user?: string;
  port?: number;
  /** In file order, `~` expanded; OpenSSH tries each, rha takes the first that exists. */
  identityFiles: string[];
  /** `[user@]host[:port]` hops, comma-separated, or `none`. */
  proxyJump?: string;
}

/** A parsed ssh config; `lookup(name)` answers for one host. */
export interface SshConfigFile {
  file: string;
  lookup(name: string): SshConfigHost;
  /** Directives rha read but cannot honour (e.g. ProxyCommand), per host name, for warnings. */
  unsupported(name: string): string[];
}

/** Directives that change how ssh connects and that rha does not follow: said, not dropped silently. */
const UNSUPPORTED = ['proxycommand', 'hostkeyalias', 'include', 'certificatefile', 'localcommand'];

/** Returns the parsed config; throws an Error naming the file when it cannot be read. */
export function readSshConfig(file: string, home: string): SshConfigFile {
  return parseSshConfig(file, readFileSync(file, 'utf8'), home);
}

/** The default config (~/.ssh/config) when it exists, else undefined. */
export function defaultSshConfig(home: string): SshConfigFile | undefined {
  const file = join(home, '.ssh', 'config');
  return existsSync(file) ? readSshConfig(file, home) : undefined;
}

/** Parses config text (the file name is for messages). */
export function parseSshConfig(file: string, text: string, home: string): SshConfigFile {
  const config = SSHConfig.parse(text);
  const compute = (name: string) => config.compute(name, { ignoreCase: true, matchExec: false }) as Record<string, string | string[]>;
  const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
  return {
    file,
    lookup(name: string): SshConfigHost {
      const c = compute(name);
      const user = one(c.user);
      // In HostName itself %h is the name as given; elsewhere it is the expanded HostName.
      const rawHostName = one(c.hostname);
      const hostName = rawHostName === undefined ? undefined : expandTokens(rawHostName, { host: name, hostName: name, user, home });
      const tokens = (s: string) => expandTokens(s, { host: name, hostName: hostName ?? name, user, home });
      const port = one(c.port);
      const ids = c.identityfile === undefined ? [] : Array.isArray(c.identityfile) ? c.identityfile : [c.identityfile];
      return {
        hostName,
        user,
        port: port === undefined || !/^\d+$/.test(port) ? undefined : Number(port),
        identityFiles: ids.map((p) => expandHome(tokens(p), home)),
        proxyJump: one(c.proxyjump),
      };
    },
    unsupported(name: string): string[] {
      return Object.keys(compute(name)).filter((k) => UNSUPPORTED.includes(k));
    },
  };
}

/** `%h` (host name), `%n` (name as given), `%r` (user), `%d` (home), `%%`; `~/` → home. */
function expandTokens(s: string, t: { host: string; hostName: string; user?: string; home: string }): string {
  return s.replace(/%([%hnrd])/g, (_m, c: string) =>
    c === '%' ? '%' : c === 'h' ? t.hostName : c === 'n' ? t.host : c === 'r' ? (t.user ?? '%r') : t.home,
  );
}

function expandHome(p: string, home: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return join(home, p.slice(2));
  return isAbsolute(p) ? p : join(home, '.ssh', p); // OpenSSH: relative IdentityFile is under ~/.ssh
}

/** One hop of a ProxyJump / `jump:` value. */
export interface JumpHop {
  user?: string;
  host: string;
  port?: number;
  /** As written, for messages. */
  text: string;
}

/** Splits `[user@]host[:port][,...]` into hops (first hop first); returns an error message for a bad hop. */
export function parseJumpSpec(spec: string): JumpHop[] | string {
  const hops: JumpHop[] = [];
  for (const raw of spec.split(',')) {
    const text = raw.trim();
    const m = /^(?:ssh:\/\/)?(?:([^@\s:/]+)@)?(\[[^\]\s]+\]|[^@\s:/[\]]+)(?::(\d{1,5}))?$/.exec(text);
    if (!m) return `"${text}" is not [user@]host[:port]`;
    const port = m[3] === undefined ? undefined : Number(m[3]);
    if (port !== undefined && (port < 1 || port > 65535)) return `"${text}": port ${port} is not between 1 and 65535`;
    hops.push({ user: m[1], host: m[2].replace(/^\[|\]$/g, ''), port, text });
  }
  return hops;
}
