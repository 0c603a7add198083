#!/usr/bin/env bash
# conformance/build.sh - build the real-kernel VM images for conformance runs.
#
# Usage: conformance/build.sh [--update] [--force] [--kernels "6.12 6.1 7.3"]
#   --update   run `apt-get update` first (pick up newer kernels/packages)
#   --force    rebuild the initramfs images even if the stamps match
#   --kernels  which images to build (default: all three; 7.3 = the newest backports
#              kernel, whatever its version)
#
# What it does (Debian 12 host, run as root):
#   1. installs the host tools if missing (qemu-system-x86 busybox-static kmod
#      cpio xz-utils, and gcc libc6-dev for the static pattern generator) with
#      apt-get install;
#   2. picks the newest linux-image-6.12*-amd64-unsigned and the newest
#      linux-image-6.1.0-N-amd64-unsigned known to apt, the newest kernel of
#      trixie-backports (its own apt lists under <cache>/apt-bpo; the split
#      linux-binary/modules/base packages), plus lvm2, dmsetup,
#      e2fsprogs and their libraries, and fetches them with `apt-get download`
#      (nothing is installed on the host) into <cache>/debs;
#   3. per kernel, if the stamp (package versions + guest file hashes) changed:
#      dpkg -x the packages, depmod -b, resolve the module list from
#      modules.dep, collect the user-space binaries and their ldd libraries,
#      and write <cache>/out/<k>/{vmlinuz,base.cpio.gz,version,stamp}.
#
# <cache> is $CONFORMANCE_CACHE or conformance/.cache (git-ignored).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CONFORMANCE_CACHE:-$HERE/.cache}
GUEST=$HERE/guest
T0=$(date +%s)

UPDATE=0
FORCE=0
KERNELS="6.12 6.1 7.3"
want() { case " $KERNELS " in *" $1 "*) return 0 ;; esac; return 1; }
while [ $# -gt 0 ]; do
    a=$1
    shift
    case $a in
        --kernels) KERNELS=${1:?--kernels needs a list}; shift ;;
        --update) UPDATE=1 ;;
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done

log() { printf 'build.sh: %s\n' "$*"; }
die() { printf 'build.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get)"
export DEBIAN_FRONTEND=noninteractive

# scratch image root of the kernel being built, removed on any exit
ROOT_TMP=
trap 'if [ -n "$ROOT_TMP" ]; then rm -rf "$ROOT_TMP"; fi' EXIT

# ---------------------------------------------------------------- apt helpers
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        # stderr: callers run inside $(...) and print the package name on stdout
        log "apt-get update" >&2
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
}
[ "$UPDATE" = 1 ] && apt_update_once

# ------------------------------------------------------------ 1. host tools
# package -> a file it provides, to check cheaply whether it is installed
declare -A HOST_TOOLS=(
    [qemu-system-x86]=/usr/bin/qemu-system-x86_64
    [busybox-static]=/bin/busybox
    [kmod]=/sbin/depmod
    [cpio]=/bin/cpio
    [xz-utils]=/usr/bin/xz
    [gcc]=/usr/bin/gcc
    [libc6-dev]=/usr/lib/x86_64-linux-gnu/libc.a
)
missing=()
for p in "${!HOST_TOOLS[@]}"; do
    [ -e "${HOST_TOOLS[$p]}" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing host tools: ${missing[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        apt_update_once
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
for p in "${!HOST_TOOLS[@]}"; do
    [ -e "${HOST_TOOLS[$p]}" ] || die "host tool $p (${HOST_TOOLS[$p]}) still missing"
done
command -v ldd >/dev/null || die "ldd missing (libc-bin)"

# ------------------------------------------------------ 2. pick the packages
# Newest package whose name matches the extended regex $1.
newest_pkg() {
    apt-cache search --names-only "$1" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1
}
find_kernel_pkg() {
    local re=$1 p
    p=$(newest_pkg "$re")
    if [ -z "$p" ]; then apt_update_once; p=$(newest_pkg "$re"); fi
    [ -n "$p" ] || die "no package matches $re"
    printf '%s' "$p"
}
KPKG_612=$(find_kernel_pkg '^linux-image-6\.12[.0-9]*\+deb[0-9]+-amd64-unsigned$')
KPKG_61=$(find_kernel_pkg '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$')

# User-space packages for the guest.  Libraries that are not listed here are
# taken from the host (identical Debian 12: glibc, libcap, libgcrypt, ...);
# ldd decides, and a library found nowhere is an error.
USER_PKGS=(lvm2 dmsetup libdevmapper1.02.1 libdevmapper-event1.02.1 libaio1
    libedit2 libbsd0 libmd0 libtinfo6 libsystemd0 libudev1 libselinux1
    libpcre2-8-0 libblkid1 libuuid1 e2fsprogs libext2fs2 libcom-err2 libss2)

# Candidate versions, one apt-cache call for all ("pkg:" header lines, then
# "  Candidate: <v>").
declare -A VER=()
lookup_versions() {
    local p v
    while read -r p v; do
        [ "$v" = "(none)" ] || VER[$p]=$v
    done < <(apt-cache policy "$@" 2>/dev/null |
        awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) } /^  Candidate:/ { print p, $2 }')
}
ALL_PKGS=("$KPKG_612" "$KPKG_61" "${USER_PKGS[@]}")
lookup_versions "${ALL_PKGS[@]}"
for p in "${ALL_PKGS[@]}"; do
    if [ -z "${VER[$p]:-}" ]; then apt_update_once; lookup_versions "${ALL_PKGS[@]}"; break; fi
done
for p in "${ALL_PKGS[@]}"; do
    [ -n "${VER[$p]:-}" ] || die "apt knows no version of $p"
done
log "kernel 6.12: $KPKG_612 ${VER[$KPKG_612]}"
log "kernel 6.1:  $KPKG_61 ${VER[$KPKG_61]}"

# ----------------------------------------------- the newest kernel (backports)
# Debian's newest kernel line is in trixie-backports. A private apt state (its own source
# list and package lists under <cache>) is used for the kernel packages only; bookworm stays
# the source of lvm2 and the libraries. The image package is a meta package there: the
# files are in linux-binary-* (vmlinuz), linux-modules-* (the .ko.xz) and linux-base-*
# (modules.builtin, modules.order) of the same version; all that the image depends on
# among those is downloaded and merged.
BPO=$CACHE/apt-bpo
BPO_OPTS=(-o "Dir::Etc::SourceList=$BPO/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$BPO/lists" -o "Dir::Cache=$BPO/cache")
declare -A FROM_BPO=()
bpo_update() {
    mkdir -p "$BPO/lists/partial" "$BPO/cache/archives/partial"
    echo "deb [trusted=yes] ${BPO_MIRROR:-http://deb.debian.org/debian} ${BPO_SUITE:-trixie-backports} main" \
        >"$BPO/sources.list"
    log "apt-get update (${BPO_SUITE:-trixie-backports}, kernel packages only)" >&2
    apt-get "${BPO_OPTS[@]}" update -qq >/dev/null
}
if want 7.3; then
if [ "$UPDATE" = 1 ] || ! ls "$BPO/lists/"*Packages* >/dev/null 2>&1; then
    bpo_update || die "apt-get update of ${BPO_SUITE:-trixie-backports} failed"
fi
KPKG_NEW=$(apt-cache "${BPO_OPTS[@]}" search --names-only \
    '^linux-image-[0-9]+\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64(-unsigned)?$' 2>/dev/null |
    awk '{print $1}' | sort -V | tail -n 1)
[ -n "$KPKG_NEW" ] || die "no linux-image package in ${BPO_SUITE:-trixie-backports}"
NEW_PKGS=("$KPKG_NEW")
for p in $(apt-cache "${BPO_OPTS[@]}" show "$KPKG_NEW" 2>/dev/null | sed -n 's/^Depends: //p' |
    head -n 1 | tr ',|' '\n\n' | awk '{print $1}' | grep -E '^linux-(base|binary|modules)-'); do
    NEW_PKGS+=("$p")
done
while read -r p v; do
    [ "$v" = "(none)" ] || { VER[$p]=$v; FROM_BPO[$p]=1; }
done < <(apt-cache "${BPO_OPTS[@]}" policy "${NEW_PKGS[@]}" 2>/dev/null |
    awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) } /^  Candidate:/ { print p, $2 }')
for p in "${NEW_PKGS[@]}"; do
    [ -n "${VER[$p]:-}" ] || die "apt knows no version of $p (backports)"
done
# 7.3.4-1~bpo13+1 -> 7.3
NEW_SHORT=$(echo "${VER[$KPKG_NEW]}" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
log "kernel $NEW_SHORT: ${NEW_PKGS[*]} ${VER[$KPKG_NEW]}"
fi

# ------------------------------------------------------------- downloading
DEBS=$CACHE/debs
mkdir -p "$DEBS"
# deb_file PKG -> path of the cached .deb of the wanted version (downloads it
# if needed, removes other cached versions of the same package).
deb_file() {
    local p=$1 v=${VER[$1]} f found=
    for f in "$DEBS/${p}_"*.deb; do
        [ -e "$f" ] || continue
        if [ "$(dpkg-deb -f "$f" Version)" = "$v" ] && [ -z "$found" ]; then
            found=$f
        else
            rm -f "$f"
        fi
    done
    if [ -z "$found" ]; then
        log "apt-get download $p=$v" >&2
        if [ -n "${FROM_BPO[$p]:-}" ]; then
            (cd "$DEBS" && apt-get "${BPO_OPTS[@]}" download -qq "$p=$v" >/dev/null 2>&1) ||
                (bpo_update && cd "$DEBS" && apt-get "${BPO_OPTS[@]}" download -qq "$p=$v" >/dev/null) ||
                die "apt-get download $p=$v (backports) failed"
        else
            (cd "$DEBS" && apt-get download -qq "$p=$v" >/dev/null 2>&1) ||
                (apt_update_once >&2 && cd "$DEBS" && apt-get download -qq "$p=$v" >/dev/null) ||
                die "apt-get download $p=$v failed"
        fi
        for f in "$DEBS/${p}_"*.deb; do
            [ "$(dpkg-deb -f "$f" Version)" = "$v" ] && found=$f
        done
    fi
    [ -n "$found" ] || die "downloaded $p but no matching .deb found"
    printf '%s' "$found"
}

# ------------------------------------------------------- user-space tree
# Extracted once per set of user package versions.
BB_VER=$(dpkg-query -W -f='${Version}' busybox-static)
USER_KEY=$(for p in "${USER_PKGS[@]}"; do echo "$p=${VER[$p]}"; done)
USER_KEY_HASH=$(printf '%s\n' "$USER_KEY" | sha256sum | cut -c1-16)
USERTREE=$CACHE/tree/user-$USER_KEY_HASH
if [ ! -e "$USERTREE/.done" ]; then
    log "extracting user-space packages into $USERTREE"
    rm -rf "$USERTREE"
    mkdir -p "$USERTREE"
    for p in "${USER_PKGS[@]}"; do
        dpkg -x "$(deb_file "$p")" "$USERTREE"
    done
    touch "$USERTREE/.done"
fi

# Hash of everything from the repo that goes into the image.
GUEST_HASH=$(cat "$0" "$GUEST"/* | sha256sum | cut -c1-16)

# ---------------------------------------------------------- modules
# Modules for the guest; dependencies come from modules.dep.  The crc32c
# providers go first because libcrc32c/ext4 only soft-depend on them.
MODS_REQUIRED=(dm-mod md-mod raid456 dm-raid loop ext4)
MODS_OPTIONAL=(crc32c_generic crc32c-intel raid0 raid1 raid10 dm-delay dm-mirror
    dm-snapshot dm-flakey dm-log)

# resolve_modules MODDIR -> prints module paths (relative to MODDIR) in load order
resolve_modules() {
    local md=$1
    awk -v req="${MODS_REQUIRED[*]}" -v opt="${MODS_OPTIONAL[*]}" -v md="$md" '
        function norm(s) { sub(/.*\//, "", s); sub(/\.ko(\.[a-z]+)?$/, "", s); gsub(/-/, "_", s); return s }
        function visit(p,   n, i, d) {
            if (p in seen) return
            seen[p] = 1
            n = split(deps[p], d, " ")
            # modules.dep lists deps so that loading them last-to-first works
            for (i = n; i >= 1; i--) visit(d[i])
            print p
        }
        FILENAME ~ /modules\.builtin$/ { builtin[norm($1)] = 1; next }
        {
            p = $1; sub(/:$/, "", p)
            deps[p] = ""
            for (i = 2; i <= NF; i++) deps[p] = deps[p] " " $i
            path[norm(p)] = p
        }
        END {
            nr = split(req, r, " "); no = split(opt, o, " ")
            # crc32c first (soft dependency of libcrc32c and ext4)
            for (i = 1; i <= no; i++) if (o[i] ~ /^crc32c/ && norm(o[i]) in path) visit(path[norm(o[i])])
            for (i = 1; i <= nr; i++) {
                m = norm(r[i])
                if (m in path) visit(path[m])
                else if (!(m in builtin)) { print "MISSING " r[i] > "/dev/stderr"; bad = 1 }
            }
            for (i = 1; i <= no; i++) {
                m = norm(o[i])
                if (m in path) visit(path[m])
                else if (!(m in builtin)) print "note: optional module " o[i] " not available" > "/dev/stderr"
            }
            exit bad
        }' "$md/modules.builtin" "$md/modules.dep"
}

# ------------------------------------------------------- per-kernel build
# build_kernel SHORT PKG [PKG...]: the kernel is PKG (with the split packages after it)
build_kernel() {
    local short=$1 kpkg=$2 out=$CACHE/out/$1 stamp kdir kver root mods f n t0 p
    t0=$(date +%s)
    stamp=$(printf '%s\n' "kernel $kpkg=${VER[$kpkg]}" "$USER_KEY" "busybox-static=$BB_VER" "guest=$GUEST_HASH")
    if [ "$FORCE" = 0 ] && [ -e "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
        [ -e "$out/base.cpio.gz" ] && [ -e "$out/vmlinuz" ]; then
        log "$short: up to date ($kpkg ${VER[$kpkg]})"
        return 0
    fi
    log "$short: building from $kpkg ${VER[$kpkg]}"

    # kernel tree: extract + depmod, once per kernel package version
    kdir=$CACHE/tree/$kpkg-${VER[$kpkg]}
    if [ ! -e "$kdir/.done" ]; then
        rm -rf "$kdir"
        mkdir -p "$kdir"
        for p in "${@:2}"; do
            dpkg -x "$(deb_file "$p")" "$kdir"
        done
        # merged-/usr packages ship usr/lib/modules/V (with vmlinuz in it)
        if [ -d "$kdir/usr/lib/modules" ]; then
            mkdir -p "$kdir/lib/modules" "$kdir/boot"
            for f in "$kdir/usr/lib/modules/"*; do
                mv "$f" "$kdir/lib/modules/"
            done
        fi
        kver=$(ls "$kdir/lib/modules")
        if [ ! -e "$kdir/boot/vmlinuz-$kver" ] && [ -e "$kdir/lib/modules/$kver/vmlinuz" ]; then
            mkdir -p "$kdir/boot"
            cp "$kdir/lib/modules/$kver/vmlinuz" "$kdir/boot/vmlinuz-$kver"
        fi
        [ -e "$kdir/boot/vmlinuz-$kver" ] || die "no vmlinuz for $kver in ${*:2}"
        depmod -b "$kdir" "$kver"
        touch "$kdir/.done"
    fi
    kver=$(ls "$kdir/lib/modules")
    [ "$(echo "$kver" | wc -l)" = 1 ] || die "expected one module dir in $kdir"
    local md=$kdir/lib/modules/$kver

    root=$(mktemp -d "$CACHE/root.XXXXXX")
    ROOT_TMP=$root
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,lib/x86_64-linux-gnu,lib64,etc/lvm,proc,sys,dev,tmp,run,mnt,root}

    # busybox and its applet links (real binaries copied later win)
    cp /bin/busybox "$root/bin/busybox"
    for f in $("$root/bin/busybox" --list-full); do
        [ "$f" = bin/busybox ] && continue
        mkdir -p "$root/$(dirname "$f")"
        ln -sf /bin/busybox "$root/$f"
    done

    # modules, decompressed, flat, plus the load order
    mods=$(resolve_modules "$md")
    : >"$root/lib/modules/load-order"
    n=0
    for f in $mods; do
        local base
        base=$(basename "$f")
        case $base in
            *.xz) xz -dc "$md/$f" >"$root/lib/modules/${base%.xz}"; base=${base%.xz} ;;
            *.zst) die "zstd modules not supported ($f)" ;;
            *.gz) gzip -dc "$md/$f" >"$root/lib/modules/${base%.gz}"; base=${base%.gz} ;;
            *) cp "$md/$f" "$root/lib/modules/$base" ;;
        esac
        echo "$base" >>"$root/lib/modules/load-order"
        n=$((n + 1))
    done
    log "$short: $n modules: $(tr '\n' ' ' <"$root/lib/modules/load-order")"

    # user space: lvm (+ its command links), dmsetup, e2fsck, mke2fs
    local bins="sbin/lvm sbin/dmsetup sbin/e2fsck sbin/mke2fs" b libpath
    for b in $bins; do
        [ -e "$USERTREE/$b" ] || die "missing $b in $USERTREE"
        rm -f "$root/$b" # may be a busybox applet link (to the host's busybox!)
        cp "$USERTREE/$b" "$root/$b"
    done
    for b in pvcreate pvs pvremove vgcreate vgs vgremove vgchange lvcreate lvs lvchange \
        lvconvert lvremove lvextend lvreduce lvresize lvdisplay vgdisplay pvdisplay; do
        rm -f "$root/sbin/$b"
        ln -s lvm "$root/sbin/$b"
    done
    ln -sf e2fsck "$root/sbin/fsck.ext4"
    ln -sf mke2fs "$root/sbin/mkfs.ext4"
    [ -e "$USERTREE/etc/mke2fs.conf" ] && cp "$USERTREE/etc/mke2fs.conf" "$root/etc/"

    # shared libraries: prefer the extracted packages, fall back to the host
    libpath=$(find "$USERTREE" -name '*.so*' -printf '%h\n' | sort -u | tr '\n' ':')
    for b in $bins; do
        LD_LIBRARY_PATH=$libpath ldd "$USERTREE/$b"
    done | awk '
        /not found/ { print "NOTFOUND " $1; next }
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }' | sort -u >"$root/.libs"
    if grep -q '^NOTFOUND' "$root/.libs"; then
        die "unresolved libraries: $(grep '^NOTFOUND' "$root/.libs" | tr '\n' ' ')"
    fi
    n=0
    while read -r f; do
        case $f in
            */ld-linux-x86-64.so.2) cp -L "$f" "$root/lib64/ld-linux-x86-64.so.2" ;;
            *) cp -L "$f" "$root/lib/x86_64-linux-gnu/$(basename "$f")" ;;
        esac
        n=$((n + 1))
    done <"$root/.libs"
    rm -f "$root/.libs"
    log "$short: $n shared libraries"

    # guest files; patgen: static pattern generator (awk is too slow in TCG)
    gcc -O2 -static -s -Wall -o "$root/bin/patgen" "$GUEST/patgen.c"
    gcc -O2 -static -s -Wall -o "$root/bin/conftool" "$GUEST/conftool.c"
    cp "$GUEST/init" "$root/init"
    cp "$GUEST/conform.sh" "$root/lib/conform.sh"
    cp "$GUEST/lvm.conf" "$root/etc/lvm/lvm.conf"
    chmod 755 "$root/init"
    printf 'kernel=%s\npackage=%s\npackage_version=%s\n' "$kver" "$kpkg" "${VER[$kpkg]}" \
        >"$root/etc/conform-version"

    mkdir -p "$out"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -6 >"$out/base.cpio.gz.tmp"
    mv "$out/base.cpio.gz.tmp" "$out/base.cpio.gz"
    # temp + rename: a VM starting right now reads either the old or the new file
    cp "$kdir/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
    mv "$out/vmlinuz.tmp" "$out/vmlinuz"
    cp "$root/etc/conform-version" "$out/version"
    printf '%s\n' "$stamp" >"$out/stamp"
    rm -rf "$root"
    ROOT_TMP=
    log "$short: wrote $out/base.cpio.gz ($(du -k "$out/base.cpio.gz" | cut -f1) KiB) in $(($(date +%s) - t0)) s"
}

if want 6.12; then build_kernel 6.12 "$KPKG_612"; fi
if want 6.1; then build_kernel 6.1 "$KPKG_61"; fi
if want 7.3; then
    build_kernel "$NEW_SHORT" "${NEW_PKGS[@]}"
    # 7.3: the name mdfuzz conform knows for the newest backports kernel, whatever its
    # version (a newer one is held to the same v7.3 model until the model catches up)
    [ "$NEW_SHORT" = 7.3 ] || ln -sfn "$NEW_SHORT" "$CACHE/out/7.3"
    ln -sfn "$NEW_SHORT" "$CACHE/out/newest"
fi
log "done in $(($(date +%s) - T0)) s; images in $CACHE/out ($KERNELS)"
