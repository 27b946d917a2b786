/**
 * Hosts and how to reach them: each host's connection settings (the host's own, else the
 * inventory-wide `ssh:`, else the OpenSSH client config, else rha's defaults), the private key
 * checked readable, and jump chains (bastions) from `jump:` or the ssh config's ProxyJump.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { HostConnectionSpec, HostSpec, JumpHostSpec } from '../core/types.js';
import { defaultSshConfig, parseJumpSpec, readSshConfig, type SshConfigFile, type SshConfigHost } from '../connection/ssh-config.js';
import type { LoadContext } from './context.js';
import { addressProblem } from './net.js';
import { resolveSecret } from './secrets.js';
import { dotted, type KeyPath } from './source.js';

/** Returns every host of the inventory with its resolved connection (groups and vars still empty), in inventory order. */
export function resolveHosts(ctx: LoadContext): Map<string, HostSpec> {
  return new HostResolver(ctx).run();
}

class HostResolver {
  private readonly hosts = new Map<string, HostSpec>();
  private sshConfig: SshConfigFile | undefined;
  /** What the ssh config says for each inventory host, by host name. */
  private readonly sshCfgOf = new Map<string, SshConfigHost>();
  private readonly checkedKeys = new Set<string>();
  private readonly jumpMemo = new Map<string, JumpHostSpec | undefined>();

  constructor(private readonly ctx: LoadContext) {}

  run(): Map<string, HostSpec> {
    const hostNames = Object.keys(this.ctx.raw.hosts);
    this.loadSshConfig();
    for (const name of hostNames) this.hosts.set(name, this.host(name));
    // Jumps last: a jump may name any inventory host, so every host's own settings must be known.
    for (const name of hostNames) {
      const j = this.resolveJump(name, []);
      if (j) this.hosts.get(name)!.connection.jump = j;
    }
    return this.hosts;
  }

  /** The host `name` with its connection settings: the host's, else `ssh:`, else the ssh config, else defaults. */
  private host(name: string): HostSpec {
    const ssh = this.ctx.raw.ssh;
    const h = this.ctx.raw.hosts[name];
    const o = typeof h === 'string' ? { address: h } : h;
    const hp: KeyPath = typeof h === 'string' ? ['hosts', name] : ['hosts', name, 'address'];
    const bad = addressProblem(o.address);
    if (bad) this.ctx.error(hp, `${bad}: use the host's IPv4 address or DNS name`);
    const pick = <K extends keyof typeof ssh>(k: K): { v: (typeof ssh)[K]; path: KeyPath } =>
      typeof h !== 'string' && (h as Record<string, unknown>)[k] !== undefined
        ? { v: (h as typeof ssh)[k], path: ['hosts', name, k] }
        : { v: ssh[k], path: ['ssh', k] };
    // Inventory settings win over the ssh config, which wins over rha's defaults (README).
    const cfg = this.sshConfigFor(o.address, hp);
    this.sshCfgOf.set(name, cfg);
    const user = pick('user').v ?? cfg.user ?? 'root';
    const keyPick = pick('private_key');
    const key = keyPick.v;
    if (key) this.checkPrivateKey(key, keyPick.path);
    const pw = pick('password');
    const bpw = pick('become_password');
    const kh = pick('known_hosts').v;
    return {
      name,
      connection: {
        address: cfg.hostName ?? o.address,
        port: pick('port').v ?? cfg.port ?? 22,
        user,
        privateKey: key ? this.ctx.path(key) : firstExisting(cfg.identityFiles),
        password: resolveSecret(this.ctx, pw.v, pw.path),
        become: pick('become').v ?? user !== 'root',
        becomePassword: resolveSecret(this.ctx, bpw.v, bpw.path),
        knownHosts: kh ? this.ctx.path(kh) : join(this.ctx.home(), '.ssh', 'known_hosts'),
        connectTimeoutMs: Math.round((pick('connect_timeout').v ?? 10) * 1000),
        connectRetries: pick('connect_retries').v ?? 2,
      },
      groups: [],
      vars: {},
    };
  }

  /** Reads `ssh.config` (or ~/.ssh/config when it exists; none with `config: false`). */
  private loadSshConfig(): void {
    const c = this.ctx.raw.ssh.config;
    if (c === false) return;
    try {
      this.sshConfig = c === undefined ? defaultSshConfig(this.ctx.home()) : readSshConfig(this.ctx.path(c), this.ctx.home());
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.ctx.error(['ssh', 'config'], code === 'ENOENT' ? `ssh config ${c} does not exist (looked at ${this.ctx.path(String(c))})` : `cannot read ssh config ${c}: ${code ?? (e as Error).message}`);
    }
  }

  /** What the ssh config says for `alias` (nothing without a config); warns about directives rha does not follow. */
  private sshConfigFor(alias: string, path: KeyPath): SshConfigHost {
    if (!this.sshConfig) return { identityFiles: [] };
    for (const d of this.sshConfig.unsupported(alias)) {
      this.ctx.warn(path, `ssh config ${this.sshConfig.file} sets ${d} for "${alias}", which rha does not follow: use jump: / ProxyJump, or set it in the inventory`);
    }
    return this.sshConfig.lookup(alias);
  }

  /** The jump chain of host `name` (memoised): its `jump:`, else `ssh.jump`, else the ssh config's ProxyJump; `stack` is the hosts on the way here. */
  private resolveJump(name: string, stack: string[]): JumpHostSpec | undefined {
    if (this.jumpMemo.has(name)) return this.jumpMemo.get(name);
    const ssh = this.ctx.raw.ssh;
    const h = this.ctx.raw.hosts[name];
    const own = typeof h !== 'string' ? h.jump : undefined;
    let spec: string | undefined;
    let path: KeyPath;
    let from: string;
    if (own !== undefined) [spec, path, from] = [own, ['hosts', name, 'jump'], 'jump'];
    else if (ssh.jump !== undefined) [spec, path, from] = [ssh.jump, ['ssh', 'jump'], 'ssh.jump'];
    else [spec, path, from] = [this.sshCfgOf.get(name)?.proxyJump, typeof h === 'string' ? ['hosts', name] : ['hosts', name, 'address'], `ProxyJump in ${this.sshConfig?.file}`];
    let out: JumpHostSpec | undefined;
    // The inventory-wide jump does not apply to the bastion itself (a host does not jump via itself).
    const selfOnly = own === undefined && ssh.jump !== undefined && parseJumpSpecHosts(ssh.jump).includes(name);
    if (spec !== undefined && spec !== 'none' && !selfOnly) out = this.jumpChain(spec, path, from, [...stack, name]);
    this.jumpMemo.set(name, out);
    return out;
  }

  /**
   * The last hop of a jump chain, each hop carrying the one before it: a hop is an inventory host
   * (its settings, and its own jump when it is the first hop) or a name the ssh config may describe.
   */
  private jumpChain(spec: string, path: KeyPath, from: string, stack: string[]): JumpHostSpec | undefined {
    const hops = parseJumpSpec(spec);
    if (typeof hops === 'string') {
      this.ctx.error(path, `${from}: ${hops} (a jump host is an inventory host or [user@]host[:port], several separated by ",")`);
      return undefined;
    }
    let prev: JumpHostSpec | undefined;
    for (const [i, hop] of hops.entries()) {
      let conn: HostConnectionSpec;
      const inv = this.hosts.get(hop.host);
      if (inv) {
        if (stack.includes(hop.host)) {
          this.ctx.error(path, `jump cycle ${[...stack, hop.host].join(' → ')}: a host cannot be reached through itself`);
          return undefined;
        }
        conn = { ...inv.connection, ...(hop.user ? { user: hop.user } : {}), ...(hop.port ? { port: hop.port } : {}) };
        // An explicit chain says how to reach every hop; otherwise the first hop's own jump applies.
        conn.jump = i === 0 ? this.resolveJump(hop.host, stack) : prev;
      } else {
        // Not in the inventory: the ssh config describes it (it wins over the inventory-wide ssh: defaults here).
        const cfg = this.sshConfigFor(hop.host, path);
        const ssh = this.ctx.raw.ssh;
        const key = firstExisting(cfg.identityFiles) ?? (ssh.private_key ? this.ctx.path(ssh.private_key) : undefined);
        conn = {
          address: cfg.hostName ?? hop.host,
          port: hop.port ?? cfg.port ?? ssh.port ?? 22,
          user: hop.user ?? cfg.user ?? ssh.user ?? 'root',
          privateKey: key,
          become: false,
          knownHosts: ssh.known_hosts ? this.ctx.path(ssh.known_hosts) : join(this.ctx.home(), '.ssh', 'known_hosts'),
          connectTimeoutMs: Math.round((ssh.connect_timeout ?? 10) * 1000),
          connectRetries: ssh.connect_retries ?? 2,
        };
        if (i > 0) conn.jump = prev;
        else if (cfg.proxyJump && cfg.proxyJump !== 'none' && !stack.includes(hop.text)) {
          conn.jump = this.jumpChain(cfg.proxyJump, path, `ProxyJump of ${hop.host} in ${this.sshConfig?.file}`, [...stack, hop.text]);
        }
      }
      prev = { name: inv ? hop.host : hop.text, connection: conn };
    }
    return prev;
  }

  /**
   * A private_key the inventory names must be a file this user can read: otherwise every
   * connection fails later as "unreachable", far from the line that is wrong.
   */
  private checkPrivateKey(p: string, at: KeyPath): void {
    const id = dotted(at);
    if (this.checkedKeys.has(id)) return;
    this.checkedKeys.add(id);
    const file = this.ctx.path(p);
    const shown = file === p ? p : `${p} (${file})`;
    let st;
    try {
      st = statSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.ctx.error(at, code === 'ENOENT' ? `private key ${shown} does not exist: give the path of the SSH private key (or leave private_key out to use ssh-agent)` : `cannot read private key ${shown}: ${code ?? (e as Error).message}`);
      return;
    }
    if (!st.isFile()) {
      this.ctx.error(at, `private key ${shown} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}: give the path of the key file itself (e.g. ~/.ssh/id_ed25519)`);
      return;
    }
    try {
      accessSync(file, constants.R_OK);
    } catch {
      const uid = process.getuid?.();
      this.ctx.error(at, `private key ${shown} is not readable by this user (uid ${uid ?? '?'}; the file is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${st.uid}): run rha as its owner, or chown/chmod it`);
    }
  }
}

/** The first of `files` that exists (OpenSSH would try each; rha's connection takes one key). */
function firstExisting(files: string[]): string | undefined {
  return files.find((f) => existsSync(f));
}

/** Host names in a jump spec (for "does the inventory-wide jump name this host"). */
function parseJumpSpecHosts(spec: string): string[] {
  const hops = parseJumpSpec(spec);
  return typeof hops === 'string' ? [] : hops.map((h) => h.host);
}
