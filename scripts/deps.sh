#!/usr/bin/env bash
# Installs what netloomd and its tests need on a fresh Debian machine (run as root).
# The package installs never start system services (policy-rc.d), so nothing runs
# in the host namespace afterwards.
set -euo pipefail
pkgs=(nftables iproute2 busybox-static curl ca-certificates iputils-ping bind9-dnsutils python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v nft >/dev/null && command -v ip >/dev/null && [ -x /bin/busybox ]
echo "deps: ok"
