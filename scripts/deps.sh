#!/usr/bin/env bash
# Installs what netloomd and its tests need on a fresh Debian machine (run as root).
# The package installs never start system services (policy-rc.d), so nothing runs
# in the host namespace afterwards.
set -euo pipefail
# containernetworking-plugins: the reference CNI plugins (/usr/lib/cni) that the
# netloom-cni tests chain with (tuning) and bench/cni.sh compares against. Its
# cni-dhcp unit is neither enabled nor started by the package (postinst only re-enables
# it if it was enabled before), so installing it starts nothing.
# runc: the OCI runtime containers run with; crun: the alternative runtime that the
# runtime-selection test configures (Debian's 1.8 refuses hybrid cgroup hosts).
pkgs=(nftables iproute2 busybox-static curl ca-certificates iputils-ping bind9-dnsutils python3 containernetworking-plugins runc crun)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v nft >/dev/null && command -v ip >/dev/null && [ -x /bin/busybox ] && [ -x /usr/lib/cni/tuning ] && command -v runc >/dev/null
echo "deps: ok"
