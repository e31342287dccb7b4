#!/usr/bin/env bash
# Installs the Debian packages Tessera needs to build and test, only those
# missing. Runs apt-get as root, or through sudo.
set -euo pipefail

pkgs=(cmake ninja-build gcc g++ clang pkg-config
      libzmq3-dev liblmdb-dev lmdb-utils libarchive-dev libopenimageio-dev
      libcmocka-dev libsodium-dev libcjson-dev zstd jq bc python3 bubblewrap
      blender)  # Blender: the blender renderer's tests (large, but CI must run them)
[ "${TESSERA_EXTRA_PKGS:-}" ] && pkgs+=(${TESSERA_EXTRA_PKGS})

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
