/**
 * The login a lab's inventory uses: root (the default), or a non-root user with sudo, as on most
 * users' servers: `sudo` (sudo asks for the user's password, which the inventory gives as
 * become_password from a 0600 file) or `sudo-nopasswd` (a NOPASSWD sudoers rule).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { execInHost } from './host.js';
import { LabError } from './sh.js';

export const LAB_LOGINS = ['root', 'sudo', 'sudo-nopasswd'] as const;
export type LabLogin = (typeof LAB_LOGINS)[number];

/** The non-root login's user name on every host. */
export const LAB_LOGIN_USER = 'admin';

/** The sudo password's file, relative to the lab folder (the inventory points at it). */
export const LOGIN_PASSWORD_FILE = 'secrets/login.pass';

/** Writes a random sudo password for the lab's login user (mode 0600) before any host starts. */
export async function writeLoginPassword(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'secrets'), { recursive: true, mode: 0o700 });
  const file = path.join(dir, LOGIN_PASSWORD_FILE);
  await fs.writeFile(file, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
  await fs.chmod(file, 0o600);
}

// Idempotent, so a restarted host is left as it was and a replaced (wiped) one gets the user
// again. The key and the password travel over stdin, never in argv.
const LOGIN_SCRIPT = String.raw`set -eu
u=$1 mode=$2
IFS= read -r pub
IFS= read -r pw || true
id -u "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo "$u"
h=$(getent passwd "$u" | cut -d: -f6)
install -d -m 0700 -o "$u" -g "$u" "$h/.ssh"
printf '%s\n' "$pub" > "$h/.ssh/authorized_keys"
chown "$u:$u" "$h/.ssh/authorized_keys"
chmod 0600 "$h/.ssh/authorized_keys"
rule=/etc/sudoers.d/rha-lab-login
if [ "$mode" = sudo ]; then
  printf '%s:%s\n' "$u" "$pw" | chpasswd
  rm -f "$rule"
else
  # No password at all ('*' is not the locked '!', so sshd still accepts the key).
  usermod -p '*' "$u"
  printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$u" > "$rule.tmp"
  chmod 0440 "$rule.tmp"
  mv -f "$rule.tmp" "$rule"
fi
`;

/** Creates the login user on a running host (nothing for root); throws a LabError naming the host on failure. */
export async function ensureLoginUser(lab: string, dir: string, host: string, login: LabLogin | undefined): Promise<void> {
  if (!login || login === 'root') return;
  const pub = (await fs.readFile(path.join(dir, 'id_ed25519.pub'), 'utf8')).trim();
  const pw = login === 'sudo' ? (await fs.readFile(path.join(dir, LOGIN_PASSWORD_FILE), 'utf8')).trim() : '';
  const r = await execInHost(lab, host, ['sh', '-c', LOGIN_SCRIPT, 'rha-lab-login', LAB_LOGIN_USER, login], { stdin: `${pub}\n${pw}\n` });
  if (r.code !== 0) throw new LabError(`${host}: creating the ${login} login ${LAB_LOGIN_USER} failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/** The inventory's ssh section for a login (pure). */
export function loginSshSection(login: LabLogin | undefined): Record<string, unknown> {
  const base = { private_key: './id_ed25519', known_hosts: './known_hosts' };
  if (!login || login === 'root') return { user: 'root', ...base };
  return {
    user: LAB_LOGIN_USER,
    ...base,
    become: true,
    ...(login === 'sudo' ? { become_password: { file: `./${LOGIN_PASSWORD_FILE}` } } : {}),
  };
}
