/**
 * keepalived's own VRRP state of an instance (MASTER, BACKUP, FAULT, ...), as keepalived sees it:
 * "running" is not "ready". A replica whose health check failed (its Redis was down) stays in FAULT
 * until the check has passed `rise` times again, and a node in FAULT cannot take the VIP: a
 * failover in that window would leave the VIP nowhere. So the bring-up ends only once the
 * replica's keepalived is BACKUP, and a switchover waits for it (or refuses).
 *
 * keepalived has no query interface without D-Bus or SNMP; SIGUSR1 makes it write its state to
 * /tmp/keepalived.data, read here through /proc/PID/root so that a systemd unit with a private /tmp
 * is read as well. The instance is the cluster's name (templates/keepalived/keepalived.conf.hbs).
 */
import { quote } from '../../core/command.js';

/** A shell script printing the instance's state (`BACKUP`, `FAULT`, ...), `DOWN` without keepalived, `UNKNOWN` without a dump. */
export function vrrpStateScript(instance: string): string {
  return [
    `want=${quote(instance)}`,
    'p=$(cat /run/keepalived.pid 2>/dev/null)',
    'if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null; then p=$(pgrep -o -x keepalived 2>/dev/null); fi',
    'if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null; then echo DOWN; exit 0; fi',
    'f=/proc/$p/root/tmp/keepalived.data',
    'rm -f "$f"',
    'kill -USR1 "$p" 2>/dev/null || { echo DOWN; exit 0; }',
    'i=0',
    'while [ $i -lt 100 ]; do',
    // The dump is written a little after the signal, and read while it is written: the instance's
    // first "State = " line, once it is there.
    `  s=$(awk -v want="$want" '$1 == "VRRP" && $2 == "Instance" { inst = $4 } inst == want && $1 == "State" && $2 == "=" { print $3; exit }' "$f" 2>/dev/null)`,
    '  if [ -n "$s" ]; then echo "$s"; exit 0; fi',
    '  sleep 0.02; i=$((i + 1))',
    'done',
    'echo UNKNOWN',
  ].join('\n');
}

/**
 * A shell script that waits until the instance is in `want` state (checked every 0.2 s), for at
 * most `timeoutS` seconds; exits 0 when it is, else 1 with the last state seen on stdout.
 */
export function waitVrrpStateScript(instance: string, want: string, timeoutS: number): string {
  return [
    `vrrp_state() {\n${vrrpStateScript(instance).replace(/\bexit 0\b/g, 'return 0')}\n}`,
    `end=$(( $(date +%s) + ${Math.ceil(timeoutS)} ))`,
    'while :; do',
    '  st=$(vrrp_state)',
    `  [ "$st" = ${quote(want)} ] && { echo "$st"; exit 0; }`,
    '  [ "$(date +%s)" -lt "$end" ] || { echo "$st"; exit 1; }',
    '  sleep 0.2',
    'done',
  ].join('\n');
}

/** In words, for messages: what a state means for taking over the VIP. */
export function describeVrrpState(state: string): string {
  switch (state) {
    case 'FAULT':
      return 'FAULT: its Redis health check has not passed yet (keepalived needs `rise` passes in a row), so it cannot take the VIP';
    case 'DOWN':
      return 'not running';
    case 'UNKNOWN':
      return 'unknown: keepalived did not answer SIGUSR1 with its state dump (/tmp/keepalived.data)';
    default:
      return state;
  }
}
