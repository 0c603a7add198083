#!/bin/sh
# stale-ctr-position: a raid5 LV reshaping 3 -> 4 stripes, the same table loaded again
# (`dmsetup table | dmsetup load`), the reshape let run on, then `dmsetup suspend
# --noflush` + `dmsetup resume`: the instance swapped in restarts the reshape from the
# position it read at load time and the LV's data is corrupted.
#
# Run as root on a scratch machine (a VM): it creates a volume group `vgrepro` on six 64 MiB
# loop devices backed by files in a temporary directory and removes everything at the end.
# Needs lvm2, dmsetup, losetup, dd, cmp (busybox is enough).
#
#   sh stale-ctr-position.sh [SECTORS]
#
# SECTORS: how far the reshape must move (status sectors per device) between the load and
# the suspend; default 12288. With 0 the suspend follows the load at once (lvm's own timing;
# usually clean). DEVS="/dev/loopN ..." uses existing devices instead (at least 6, >= 64 MiB,
# their contents are destroyed).
#
# Exit status: 0 data intact, 1 data corrupted, 2 set-up failure.
set -u
ADV=${1:-12288}
VG=vgrepro
DM=$VG-lv
tmp=$(mktemp -d /tmp/repro.XXXXXX)
own_loops=

fail() { echo "set-up failure: $*"; cleanup; exit 2; }
cleanup() {
    echo 200000 >/proc/sys/dev/raid/speed_limit_max
    echo 1000 >/proc/sys/dev/raid/speed_limit_min
    lvremove -f -y "$VG" >/dev/null 2>&1
    vgremove -f -y "$VG" >/dev/null 2>&1
    for l in $own_loops; do losetup -d "$l"; done
    rm -rf "$tmp"
}
# field K of `dmsetup status` (raid: 1 start 2 len 3 raid 4 type 5 #devs 6 health 7 N/M
# 8 action 9 mismatch 10 data_offset)
st() { dmsetup status "$DM" | awk -v k="$1" '{ print $k }'; }
pos() { st 7 | cut -d/ -f1; }
total() { st 7 | cut -d/ -f2; }

if [ -z "${DEVS:-}" ]; then
    for i in 0 1 2 3 4 5; do
        truncate -s 64M "$tmp/d$i"
        l=$(losetup -f --show "$tmp/d$i") || fail "losetup"
        own_loops="$own_loops $l"
    done
    DEVS=$own_loops
fi
# shellcheck disable=SC2086
pvcreate -y $DEVS >/dev/null || fail "pvcreate"
# shellcheck disable=SC2086
vgcreate -y -s 1M "$VG" $DEVS >/dev/null || fail "vgcreate"
lvcreate -y --type raid5 -i 3 -I 64k -L 48M -n lv "$VG" >/dev/null || fail "lvcreate"
n=0
until [ "$(st 8)" = idle ] && [ "$(pos)" = "$(total)" ]; do
    sleep 0.5; n=$((n + 1)); [ $n -gt 240 ] && fail "initial sync"
done

dd if=/dev/urandom of="$tmp/ref" bs=1M count=48 2>/dev/null
dd if="$tmp/ref" of="/dev/$VG/lv" bs=1M oflag=direct 2>/dev/null || fail "writing the data"

# Slow the reshape down so that it is still running between the steps below.
echo 1 >/proc/sys/dev/raid/speed_limit_min
echo 500 >/proc/sys/dev/raid/speed_limit_max
lvconvert -y --stripes 4 "$VG/lv" >/dev/null || fail "lvconvert --stripes 4"
n=0
until [ "$(st 8)" = reshape ] && [ "$(pos)" -gt 0 ]; do
    sleep 0.2; n=$((n + 1)); [ $n -gt 150 ] && fail "the reshape did not start"
done
echo "reshaping: $(dmsetup status "$DM")"

dmsetup table "$DM" | dmsetup load "$DM" || fail "dmsetup load"
p0=$(pos)
echo "loaded the same table at position $p0"
n=0
while [ "$(st 8)" = reshape ] && [ "$(pos)" -lt $((p0 + ADV)) ]; do
    sleep 0.2; n=$((n + 1)); [ $n -gt 600 ] && break
done
echo "before the suspend: $(dmsetup status "$DM")"
dmsetup suspend --noflush "$DM" || fail "dmsetup suspend"
dmsetup resume "$DM" || fail "dmsetup resume"
echo "after the resume:   $(dmsetup status "$DM")"

echo 200000 >/proc/sys/dev/raid/speed_limit_max
echo 1000 >/proc/sys/dev/raid/speed_limit_min
n=0
until [ "$(st 8)" = idle ] && [ "$(pos)" = "$(total)" ] && [ "$(st 10)" = 0 ]; do
    sleep 0.5; n=$((n + 1)); [ $n -gt 240 ] && fail "the reshape did not finish"
done
echo "finished:           $(dmsetup status "$DM")"

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
