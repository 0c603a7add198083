#!/bin/sh
# sb-before-finish-reshape: at the end of a stripe-size (or layout) reshape the md daemon
# writes a superblock that says "no reshape" but still holds the previous chunk size, and
# only commits the new one when it reaps the sync thread. A table loaded in between takes
# the previous chunk size over data laid out with the new one.
#
# Run as root on a scratch machine (a VM): makes a volume group `vgrepro` on six 64 MiB loop
# devices, each under a dm-delay device (writes are slowed to widen the window), and removes
# everything at the end. Needs lvm2, dmsetup, losetup, dd, od, cmp.
#
#   sh sb-before-finish-reshape.sh [DELAY_MS]     (default 1500)
#
# lvm must accept /dev/mapper/rdly* as PVs and must not see the loop devices (a filter such
# as [ "a|^/dev/mapper/rdly|", "r|.*|" ] in lvm.conf, or run it where lvm sees no other
# devices). DEVS="/dev/loopN ..." uses six existing devices (>= 64 MiB, contents destroyed)
# instead of new loop devices. Exit status: 0 data intact, 1 data corrupted, 2 set-up
# failure or no window.
set -u
DELAY=${1:-1500}
VG=vgrepro
DM=$VG-lv
tmp=$(mktemp -d /tmp/repro.XXXXXX)
loops=
pvs_=

fail() { echo "set-up failure: $*"; cleanup; exit 2; }
cleanup() {
    echo 200000 >/proc/sys/dev/raid/speed_limit_max
    echo 1000 >/proc/sys/dev/raid/speed_limit_min
    lvremove -f -y "$VG" >/dev/null 2>&1
    vgremove -f -y "$VG" >/dev/null 2>&1
    for i in 0 1 2 3 4 5; do dmsetup remove "rdly$i" >/dev/null 2>&1; done
    [ -n "${own:-}" ] && for l in $loops; do losetup -d "$l"; done
    rm -rf "$tmp"
}
st() { dmsetup status "$DM" | awk -v k="$1" '{ print $k }'; }
pos() { st 7 | cut -d/ -f1; }
total() { st 7 | cut -d/ -f2; }
delay() {
    i=0
    for l in $loops; do
        n=$(blockdev --getsz "$l")
        dmsetup load "rdly$i" --table "0 $n delay $l 0 0 $l 0 $1" && dmsetup resume "rdly$i"
        i=$((i + 1))
    done
}
# the superblock of rmeta_0: SB_EVENTS SB_FLAGS SB_CHUNK SB_NEW_CHUNK (dm_raid_superblock:
# events at byte 16, flags at 60, stripe_sectors at 56, new_stripe_sectors at 80)
sb() {
    dd if="/dev/mapper/${VG}-lv_rmeta_0" of="$tmp/sb" bs=4096 count=1 iflag=direct 2>/dev/null
    SB_EVENTS=$(od -An -t u8 -j 16 -N 8 "$tmp/sb" | tr -d ' ')
    SB_CHUNK=$(od -An -t u4 -j 56 -N 4 "$tmp/sb" | tr -d ' ')
    SB_FLAGS=$(od -An -t u4 -j 60 -N 4 "$tmp/sb" | tr -d ' ')
    SB_NEW_CHUNK=$(od -An -t u4 -j 80 -N 4 "$tmp/sb" | tr -d ' ')
}
# ended but not committed: no RESHAPE_ACTIVE flag, chunk != new chunk
ended_uncommitted() { sb; [ $((SB_FLAGS & 1)) = 0 ] && [ "$SB_CHUNK" != "$SB_NEW_CHUNK" ]; }

if [ -n "${DEVS:-}" ]; then
    own=
    loops=$DEVS
else
    own=1
    for i in 0 1 2 3 4 5; do
        truncate -s 64M "$tmp/d$i"
        l=$(losetup -f --show "$tmp/d$i") || fail "losetup"
        loops="$loops $l"
    done
fi
i=0
for l in $loops; do
    dmsetup create "rdly$i" --table "0 $(blockdev --getsz "$l") delay $l 0 0 $l 0 0" || fail "dm-delay"
    pvs_="$pvs_ /dev/mapper/rdly$i"
    i=$((i + 1))
done
dmsetup mknodes
# shellcheck disable=SC2086
pvcreate -y $pvs_ >/dev/null || fail "pvcreate"
# shellcheck disable=SC2086
vgcreate -y -s 1M "$VG" $pvs_ >/dev/null || fail "vgcreate"
lvcreate -y --type raid5 -i 3 -I 64k -L 48M -n lv "$VG" >/dev/null || fail "lvcreate"
n=0
until [ "$(st 8)" = idle ] && [ "$(pos)" = "$(total)" ]; do
    sleep 0.5; n=$((n + 1)); [ $n -gt 240 ] && fail "initial sync"
done
dd if=/dev/urandom of="$tmp/ref" bs=1M count=48 2>/dev/null
dd if="$tmp/ref" of="/dev/$VG/lv" bs=1M oflag=direct 2>/dev/null || fail "writing the data"

echo 1 >/proc/sys/dev/raid/speed_limit_min
echo 500 >/proc/sys/dev/raid/speed_limit_max
lvconvert -y --stripesize 128k "$VG/lv" >/dev/null || fail "lvconvert --stripesize 128k"
n=0
until [ "$(st 8)" = reshape ] && [ "$(pos)" -gt 0 ]; do
    sleep 0.2; n=$((n + 1)); [ $n -gt 150 ] && fail "the reshape did not start"
done
# near the end, slow the writes down: the end-of-reshape superblock writes take seconds
while [ "$(st 8)" = reshape ] && [ "$(pos)" -lt $(($(total) * 13 / 16)) ]; do sleep 0.2; done
delay "$DELAY"
echo "writes delayed by $DELAY ms at: $(dmsetup status "$DM")"
loaded=
n=0
while [ $n -lt 3000 ]; do
    if ended_uncommitted; then
        ev=$SB_EVENTS
        dmsetup table "$DM" | dmsetup load "$DM"
        if ended_uncommitted && [ "$SB_EVENTS" = "$ev" ]; then
            loaded=$ev
            break
        fi
    fi
    n=$((n + 1))
    sleep 0.02
done
[ -n "$loaded" ] || fail "no load landed in the window"
echo "loaded while the superblock (events $loaded) said: no reshape, chunk $SB_CHUNK, new chunk $SB_NEW_CHUNK"
delay 0
dmsetup suspend "$DM" && dmsetup resume "$DM" || fail "suspend/resume"
echo "after the resume: $(dmsetup status "$DM")"
echo 200000 >/proc/sys/dev/raid/speed_limit_max
echo 1000 >/proc/sys/dev/raid/speed_limit_min
sleep 2
echo 3 >/proc/sys/vm/drop_caches
dd if="/dev/$VG/lv" of="$tmp/back" bs=1M count=48 iflag=direct 2>/dev/null
if cmp -s "$tmp/ref" "$tmp/back"; then
    echo "RESULT: data intact"
    rc=0
else
    # which MiB differ (cmp -l on tens of MiB of differences is far too slow)
    bad=0
    for i in $(seq 0 47); do
        dd if="$tmp/ref" of="$tmp/a" bs=1M skip="$i" count=1 2>/dev/null
        dd if="$tmp/back" of="$tmp/b" bs=1M skip="$i" count=1 2>/dev/null
        cmp -s "$tmp/a" "$tmp/b" || bad=$((bad + 1))
    done
    first=$(cmp "$tmp/ref" "$tmp/back" | sed -n 's/.*differ: [a-z]* \([0-9]*\).*/\1/p')
    echo "RESULT: CORRUPTED: $bad of 48 MiB differ, the first difference at LV sector $(((first - 1) / 512))"
    rc=1
fi
cleanup
exit $rc
