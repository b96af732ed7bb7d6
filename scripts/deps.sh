#!/usr/bin/env bash
# Installs what netloomd and its tests need on a fresh Debian machine (run as root).
# The package installs never start system services (policy-rc.d), so nothing runs
# in the host namespace afterwards.
set -euo pipefail
# containernetworking-plugins: the reference CNI plugins (/usr/lib/cni) that the
# netloom-cni tests chain with (tuning) and bench/cni.sh compares against. Its
# cni-dhcp unit is neither enabled nor started by the package (postinst only re-enables
# it if it was enabled before), so installing it starts nothing.
#
# Images from registries (tests/tests/registry.rs, bench/pull.sh): docker-registry (the
# distribution v2 `registry` server; the tests start it on loopback with a throwaway
# config), skopeo (pushes the test images), openssl (token-auth keys), and docker.io
# (dockerd, for the load/save round trip and the pull benchmark; the tests start it in
# their own namespace and data root). docker-registry and docker.io ship systemd units:
# their postinst asks invoke-rc.d, which policy-rc.d (or no running systemd) refuses,
# so neither server is started, and nothing listens after the install.
pkgs=(nftables iproute2 busybox-static curl ca-certificates iputils-ping bind9-dnsutils python3 containernetworking-plugins
      docker-registry skopeo openssl docker.io)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v nft >/dev/null && command -v ip >/dev/null && [ -x /bin/busybox ] && [ -x /usr/lib/cni/tuning ]
[ -x /usr/bin/docker-registry ] && [ -x /usr/bin/skopeo ] && [ -x /usr/sbin/dockerd ]
echo "deps: ok"
