#!/usr/bin/env bash
# CI smoke provisioning: throwaway hosts, a Redis pair provisioned onto them, `rha status` as the
# gate, a value written through the VIP and read back from the replica, then everything torn down.
# Runs as root on a Debian/Ubuntu machine after `bash .ci/setup && npm run build` (see
# examples/github-actions.yml). `npm test` runs this same script (test/e2e/smoke.test.ts).
#
#   RHA           the rha command (default: rha; from a checkout: "node dist/cli/main.js")
#   SMOKE_LAB     the lab's name (default: smoke)
#   SMOKE_HOSTS   systemd (default: hosts boot systemd, log in as a sudo user) or namespace
#   SMOKE_EMPTY_APT_LISTS=1  empty the hosts' apt lists first, as on container-built and many
#                 freshly imaged machines (npm test sets it: the first provision must refresh them)
set -euo pipefail
RHA=${RHA:-rha}
LAB=${SMOKE_LAB:-smoke}
KIND=${SMOKE_HOSTS:-systemd}
rha() { $RHA "$@"; }
step() { printf '\n== %s\n' "$*"; }

case "$KIND" in
systemd) up_args=(--systemd --login sudo) ;;
namespace) up_args=() ;;
*) echo "SMOKE_HOSTS=$KIND: expected systemd or namespace" >&2; exit 2 ;;
esac

trap 'step "tearing down lab $LAB"; rha lab down --name "$LAB" || true' EXIT

step "throwaway hosts ($KIND)"
rha lab up --name "$LAB" --recreate "${up_args[@]}"
inv=/run/rha/lab/$LAB/inventory.yaml

if [ "${SMOKE_EMPTY_APT_LISTS:-0}" = 1 ]; then
  step "empty apt lists on the hosts (a freshly imaged machine)"
  for h in node1 node2; do
    left=$(rha lab exec --name "$LAB" "$h" sh -c 'rm -rf /var/lib/apt/lists/* && ls -A /var/lib/apt/lists | wc -l')
    [ "$left" = 0 ] || { echo "smoke: $h still has $left entries in /var/lib/apt/lists" >&2; exit 1; }
    echo "$h: /var/lib/apt/lists is empty"
  done
fi

step "rha provision"
rha provision "$inv" --output plain

step "rha provision again: nothing to change"
again=$(rha provision "$inv" --output plain)
printf '%s\n' "$again" | tail -n 4
if printf '%s\n' "$again" | grep -E '^[a-z0-9-]+ +: ok=' | grep -vq ' changed=0 '; then
  echo "smoke: the second provision changed something (it must report changed=0 on every host)" >&2
  exit 1
fi

step "rha status (exit 0 only when the pair is healthy)"
rha status "$inv"
status=$(rha status "$inv" --output json)
field() { printf '%s' "$status" | node -e "const s=JSON.parse(require('fs').readFileSync(0,'utf8')).clusters[0]; console.log($1)"; }
vip=$(field 's.vip.split("/")[0]')
holder=$(field 's.vipHolder')
replica=$(field 's.nodes.find((n) => n.role === "slave").host')

step "a write through the VIP $vip (held by $holder), read back from the replica $replica"
value="smoke $(date -u +%Y-%m-%dT%H:%M:%SZ) $$"
# redis-cli on a lab host, the password from its root-only file as stdin (never in argv).
cli() { rha lab exec --name "$LAB" "$1" sh -c "redis-cli --askpass $2 </etc/keepalived/rha/redis.auth"; }
[ "$(cli "$replica" "-h $vip SET rha:smoke '$value'")" = OK ] || { echo "smoke: SET through the VIP failed" >&2; exit 1; }
for _ in $(seq 50); do
  got=$(cli "$replica" "GET rha:smoke")
  [ "$got" = "$value" ] && break
  sleep 0.1
done
[ "$got" = "$value" ] || { echo "smoke: the replica has '$got', not the value written through the VIP" >&2; exit 1; }
echo "read back from $replica: $got"
step "smoke passed"
