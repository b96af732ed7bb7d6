#!/usr/bin/env bash
# Installs what netloomd and its tests need on a fresh Debian machine (run as root).
# The package installs never start system services (policy-rc.d), so nothing runs
# in the host namespace afterwards.
set -euo pipefail
# containernetworking-plugins: the reference CNI plugins (/usr/lib/cni) that the
# netloom-cni tests chain with (tuning) and bench/cni.sh compares against. Its
# cni-dhcp unit is neither enabled nor started by the package (postinst only re-enables
# it if it was enabled before), so installing it starts nothing.
# etcd-server: the cluster-store backend's tests and swarm managers start their own etcd
# (never a system one); etcd-client: etcdctl, with which the HA tests read the managers'
# etcd membership; protobuf-compiler + libprotobuf-dev: etcd-client's build runs protoc
# and needs the well-known .proto files.
#
# Images from registries (tests/tests/registry.rs, bench/pull.sh): docker-registry (the
# distribution v2 `registry` server; the tests start it on loopback with a throwaway
# config), skopeo (pushes the test images), openssl (token-auth keys), and docker.io
# (dockerd, for the load/save round trip and the pull benchmark; the tests start it in
# their own namespace and data root). docker-registry and docker.io ship systemd units:
# their postinst asks invoke-rc.d, which policy-rc.d (or no running systemd) refuses,
# so neither server is started, and nothing listens after the install.
#
# docker-compose: Debian's 1.29 (python), driven by tests/tests/compose.rs through a
# project's whole life (restart policies, depends_on: condition: service_healthy; its
# `exec` and `run` call the docker CLI from docker.io).
# procps: `ps`, which GET /containers/{id}/top runs (as Docker does).
#
# runc: the OCI runtime containers run with; crun: the alternative runtime that the
# runtime-selection test configures (Debian's 1.8 refuses hybrid cgroup hosts).
pkgs=(nftables iproute2 busybox-static curl ca-certificates iputils-ping bind9-dnsutils python3 containernetworking-plugins
  etcd-server etcd-client protobuf-compiler libprotobuf-dev docker-registry skopeo openssl docker.io runc crun
  docker-compose procps)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # No package may start a service (etcd-server's postinst would start a system etcd on
  # 2379): invoke-rc.d and deb-systemd-invoke obey a policy-rc.d that exits 101.
  policy=/usr/sbin/policy-rc.d; own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; own_policy=1
  fi
  trap '[ -n "$own_policy" ] && rm -f "$policy"' EXIT
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# nothing of ours listens on etcd's port: tests run their own etcd on other ports
if ss -Hltn 'sport = :2379' | grep -q .; then
  echo "deps: something listens on :2379 after the install:" >&2
  ss -ltnp 'sport = :2379' >&2
  if pgrep -x etcd >/dev/null && command -v systemctl >/dev/null; then
    systemctl stop etcd 2>/dev/null || true; systemctl disable etcd 2>/dev/null || true
  fi
  if ss -Hltn 'sport = :2379' | grep -q .; then
    echo "deps: stop it (a system etcd is not needed and must not run)" >&2; exit 1
  fi
fi
command -v nft >/dev/null && command -v ip >/dev/null && [ -x /bin/busybox ] && [ -x /usr/lib/cni/tuning ]
command -v etcd >/dev/null && command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/descriptor.proto ]
[ -x /usr/bin/docker-registry ] && [ -x /usr/bin/skopeo ] && [ -x /usr/sbin/dockerd ]
command -v docker-compose >/dev/null && command -v ps >/dev/null
command -v runc >/dev/null
echo "deps: ok"
