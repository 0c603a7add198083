#!/usr/bin/env bash
# conformance/build-module.sh PATCH [KERNEL]
#
# Builds dm-raid.ko for the VM's 6.12 kernel with PATCH (a -p1 diff against drivers/md)
# applied, out of tree against Debian's headers for that exact kernel, and prints the path
# of the module: <cache>/modules/<kernel>-<patch name>/dm-raid.ko. run-vm.sh loads it in
# place of the stock module when CONF_MODULE names it (mdfuzz conform --module PATH).
#
# What it does (Debian 12 host, root): apt-get download linux-source-6.12,
# linux-headers-<release> (+ -common) and linux-kbuild-<release> of the version the image
# was built from (conformance/build.sh, <cache>/out/6.12/version), dpkg -x them into
# <cache>/kbuild, points the arch headers' Makefile at the extracted common headers, copies
# drivers/md/*.[ch] out of the source tarball, applies PATCH and runs
# `make -C <headers> M=<dir> modules` with a one-line Kbuild (obj-m := dm-raid.o). The
# host's gcc-12 is the compiler the Debian kernel was built with; BTF needs pahole
# (dwarves), installed with apt if missing. Cached by package version and patch hash.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CONFORMANCE_CACHE:-$HERE/.cache}
PATCH=$(realpath "${1:?usage: build-module.sh PATCH [KERNEL]}")
KERNEL=${2:-6.12}
log() { printf 'build-module.sh: %s\n' "$*" >&2; }
die() { printf 'build-module.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get)"
[ -r "$PATCH" ] || die "cannot read $PATCH"
[ "$KERNEL" = 6.12 ] || die "only the 6.12 image is supported (7.x needs gcc-14, not in Debian 12)"
VERSION_FILE=$CACHE/out/$KERNEL/version
[ -e "$VERSION_FILE" ] || die "$VERSION_FILE missing: run conformance/build.sh first"
release=$(sed -n 's/^kernel=//p' "$VERSION_FILE")       # 6.12.118+deb12-amd64
pkgver=$(sed -n 's/^package_version=//p' "$VERSION_FILE") # 6.12.118-1~deb12u1
flavourless=${release%-amd64}                           # 6.12.118+deb12
command -v pahole >/dev/null || apt-get install -y -qq --no-install-recommends dwarves >/dev/null
command -v patch >/dev/null || apt-get install -y -qq --no-install-recommends patch >/dev/null

KB=$CACHE/kbuild/$flavourless
mkdir -p "$KB/debs"
pkgs=("linux-source-${KERNEL}=$pkgver" "linux-headers-$release=$pkgver"
    "linux-headers-$flavourless-common=$pkgver" "linux-kbuild-$flavourless=$pkgver")
if [ ! -e "$KB/.done" ]; then
    log "apt-get download ${pkgs[*]}"
    (cd "$KB/debs" && apt-get download -qq "${pkgs[@]}" >/dev/null 2>&1) ||
        { apt-get update -qq >/dev/null && (cd "$KB/debs" && apt-get download -qq "${pkgs[@]}" >/dev/null); } ||
        die "apt-get download failed"
    rm -rf "$KB/root"
    mkdir -p "$KB/root"
    for d in "$KB/debs/"*.deb; do dpkg -x "$d" "$KB/root"; done
    # the arch headers include the common ones by absolute path
    sed -i "s|include /usr/src/|include $KB/root/usr/src/|" \
        "$KB/root/usr/src/linux-headers-$release/Makefile"
    mkdir -p "$KB/src"
    tar -xaf "$KB/root/usr/src/linux-source-$KERNEL.tar.xz" -C "$KB/src" \
        --wildcards "linux-source-$KERNEL/drivers/md/*"
    touch "$KB/.done"
fi

name=$(basename "$PATCH" .patch)
hash=$(sha256sum "$PATCH" | cut -c1-12)
OUT=$CACHE/modules/$KERNEL-$name
if [ -e "$OUT/dm-raid.ko" ] && [ "$(cat "$OUT/hash" 2>/dev/null)" = "$hash" ]; then
    echo "$OUT/dm-raid.ko"
    exit 0
fi
rm -rf "$OUT"
mkdir -p "$OUT/src/drivers/md"
cp "$KB/src/linux-source-$KERNEL/drivers/md/"*.[ch] "$OUT/src/drivers/md/"
(cd "$OUT/src" && patch -p1 --quiet <"$PATCH") || die "$PATCH does not apply to $KERNEL's drivers/md"
echo 'obj-m := dm-raid.o' >"$OUT/src/drivers/md/Kbuild"
log "building dm-raid.ko ($name) against linux-headers-$release"
make -s -C "$KB/root/usr/src/linux-headers-$release" M="$OUT/src/drivers/md" modules >&2 ||
    die "module build failed"
cp "$OUT/src/drivers/md/dm-raid.ko" "$OUT/dm-raid.ko"
echo "$hash" >"$OUT/hash"
log "$(modinfo -F vermagic "$OUT/dm-raid.ko" 2>/dev/null || true)"
echo "$OUT/dm-raid.ko"
