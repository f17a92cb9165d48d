#!/usr/bin/env bash
# Try the two commands as a new user would, on a fresh Debian root: debootstrap a minimal bookworm
# holding only Python and make, clone this checkout into it (with ../shared beside it when
# present), and there, in network, mount and PID namespaces of its own (its own loopback, its own
# Docker engine), run `make up` until it says it is up, drive a task through its gateway with
# examples/client/run_task.py, stop it, then run `make test`.
#
#   deploy/fresh-root.sh [DIR]     as root; DIR defaults to /srv/dockyard-fresh (emptied first)
#
# The namespace reaches the package registries through a veth pair and NAT on this host (the
# only traffic that leaves it); everything the commands start listens on the namespace's own
# loopback. Logs: DIR/rootfs/root/make-up.log and make-test.log. The exit status is 0 only when
# make up came up, the task SUCCEEDED and make test passed. Everything started inside ends with
# the PID namespace; the network namespace, veth and NAT rule are removed on exit.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ "$(id -u)" = 0 ] || {
  echo "fresh-root.sh: needs root (debootstrap, namespaces)" >&2
  exit 1
}
dir=${1:-/srv/dockyard-fresh}
rootfs=$dir/rootfs
ns=${FRESH_NETNS:-dockyard-fresh}
subnet=${FRESH_SUBNET:-10.231.0}
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}

step() { printf '\n==> %s\n' "$*"; }

for tool in debootstrap iptables; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$tool" </dev/null
done

cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  ip link del fresh-host 2>/dev/null || true
  iptables -t nat -D POSTROUTING -s "$subnet.0/30" -j MASQUERADE 2>/dev/null || true
}
trap cleanup EXIT

step "A minimal Debian root with only python3 and make: $rootfs"
rm -rf "$dir"
mkdir -p "$dir"
debootstrap --variant=minbase --include=python3,make bookworm "$rootfs" "$mirror" >"$dir/debootstrap.log"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# Where the registries are reached through a TLS-inspecting egress proxy, its CA and the
# variables that point tools at it belong to the machine, not to Dockyard: carry them in.
trust_env=()
for var in SSL_CERT_FILE PIP_CERT REQUESTS_CA_BUNDLE NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE; do
  if [ -n "${!var:-}" ] && [ -f "${!var}" ]; then
    mkdir -p "$rootfs$(dirname "${!var}")"
    cp "${!var}" "$rootfs${!var}"
    trust_env+=("$var=${!var}")
  fi
done
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi
git clone -q . "$rootfs/root/dockyard"
if [ -d ../shared ]; then cp -r ../shared "$rootfs/root/shared"; fi

step "Network namespace $ns: its own loopback, registries reached through NAT"
cleanup
ip netns add "$ns"
ip link add fresh-host type veth peer name fresh-ns
ip link set fresh-ns netns "$ns"
ip addr add "$subnet.1/30" dev fresh-host
ip link set fresh-host up
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip addr add "$subnet.2/30" dev fresh-ns
ip netns exec "$ns" ip link set fresh-ns up
ip netns exec "$ns" ip route add default via "$subnet.1"
sysctl -qw net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s "$subnet.0/30" -j MASQUERADE

cat >"$rootfs/root/fresh-inside.sh" <<'INSIDE'
#!/bin/bash
# Runs inside the fresh root as PID 1's child: make up, a task through it, make test.
set -u
cd /root/dockyard
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
start=$SECONDS
setsid make up >/root/make-up.log 2>&1 &
up=$!
until grep -q 'Dockyard is up' /root/make-up.log 2>/dev/null; do
  if ! kill -0 "$up" 2>/dev/null || ((SECONDS - start > 2400)); then
    echo "make up did not come up; the end of /root/make-up.log:"
    tail -n 40 /root/make-up.log
    exit 1
  fi
  sleep 5
done
echo "make up: up after $((SECONDS - start)) s: $(grep 'Dockyard is up' /root/make-up.log | head -n 1)"
printf 'line one\nline two\nline three\n' >/root/notes.txt
.venv/bin/python examples/client/run_task.py --register --email fresh-root@example.com \
  --password 'Fresh-root check, 2026!' --image dockyard/busybox:test /root/notes.txt
task=$?
echo "the task through make up's gateway: exit status $task"
kill -TERM -- "-$up"
wait "$up"
echo "make up stopped (status $?)"
start=$SECONDS
make test >/root/make-test.log 2>&1
tests=$?
echo "make test: exit status $tests after $((SECONDS - start)) s: $(tail -n 1 /root/make-test.log)"
[ "$task" = 0 ] && [ "$tests" = 0 ]
INSIDE

step "make up, a task, make test inside the fresh root (logs under $rootfs/root)"
# pivot_root rather than chroot: the Docker engine inside refuses to start containers in a chroot.
# nsenter rather than `ip netns exec`, which mounts a sysfs of its own without the cgroup tree.
unshare --mount --pid --fork --propagation private nsenter --net="/run/netns/$ns" bash -c '
  set -e
  rootfs=$1
  shift
  mount --bind "$rootfs" "$rootfs"
  mount -t proc proc "$rootfs/proc"
  mount --rbind /sys "$rootfs/sys"
  mount --rbind /dev "$rootfs/dev"
  mkdir -p "$rootfs/.host"
  cd "$rootfs"
  pivot_root . .host
  umount -l /.host
  rmdir /.host
  exec env -i TERM=dumb "$@" /bin/bash /root/fresh-inside.sh
' fresh-root "$rootfs" "${trust_env[@]}"
