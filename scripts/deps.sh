#!/usr/bin/env bash
# Installs the Debian 12 packages imc needs to build and test (README "Dependencies").
# Does nothing when they are all present already.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libopenmpi-dev openmpi-bin libhwloc-dev hwloc libnuma-dev
      libpcre2-dev libopenblas-dev
      clang libclang-rt-14-dev shellcheck
      slurmctld slurmd slurm-client munge libpmix-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
