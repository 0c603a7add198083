#!/usr/bin/env bash
# conformance/run-vm.sh KERNEL SCRIPT LOG [TIMEOUT]   (KERNEL: 6.12, 6.1, 7.3 or newest)
#
# Boots the image built by build.sh for KERNEL (6.12 or 6.1) under QEMU TCG
# with SCRIPT as the guest's /scenario.sh, writes the serial console (CRs
# stripped) to LOG and kills QEMU after TIMEOUT seconds (default 300).
# One last line is appended to LOG (and printed):
#   HOST kernel=<k> release=<uname -r> wall_ms=<n> timeout=<0|1> qemu_rc=<n> done=<0|1>
# Exit code: 0 if the guest's final `DONE` marker was seen, 1 if not
# (crash, hang, timeout), 2 on usage/setup errors.
#
# Environment: CONFORMANCE_CACHE (as build.sh), CONF_MODULE (a dm-raid.ko to load instead of
# the stock one), CONF_APPEND (extra kernel
# command line words; KEY=value words become guest environment variables,
# e.g. CONF_APPEND="STEP_DEADLINE=30"), QEMU (default qemu-system-x86_64).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CONFORMANCE_CACHE:-$HERE/.cache}

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
KERNEL=$1 SCRIPT=$2 LOG=$3 TIMEOUT=${4:-300}
OUT=$CACHE/out/$KERNEL
for f in vmlinuz base.cpio.gz version; do
    if [ ! -e "$OUT/$f" ]; then
        echo "run-vm.sh: $OUT/$f missing; run conformance/build.sh" >&2
        exit 2
    fi
done
[ -r "$SCRIPT" ] || { echo "run-vm.sh: cannot read $SCRIPT" >&2; exit 2; }
case $TIMEOUT in '' | *[!0-9]*) echo "run-vm.sh: bad TIMEOUT $TIMEOUT" >&2; exit 2 ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/conform-vm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# /scenario.sh travels in a second (gzipped newc) archive after the base
# one; the kernel unpacks concatenated archives in order.
mkdir "$tmp/root"
cp "$SCRIPT" "$tmp/root/scenario.sh"
chmod 755 "$tmp/root/scenario.sh"
extra=scenario.sh
# CONF_MODULE: a dm-raid.ko (conformance/build-module.sh) replacing the stock one; later
# archives replace earlier files.
if [ -n "${CONF_MODULE:-}" ]; then
    [ -r "$CONF_MODULE" ] || { echo "run-vm.sh: cannot read CONF_MODULE=$CONF_MODULE" >&2; exit 2; }
    mkdir -p "$tmp/root/lib/modules"
    cp "$CONF_MODULE" "$tmp/root/lib/modules/dm-raid.ko"
    extra="$extra lib/modules/dm-raid.ko"
fi
# shellcheck disable=SC2086
(cd "$tmp/root" && printf '%s\n' $extra | cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$tmp/extra.cpio.gz"
cat "$OUT/base.cpio.gz" "$tmp/extra.cpio.gz" >"$tmp/initrd"

release=$(sed -n 's/^kernel=//p' "$OUT/version")
append="console=ttyS0 panic=-1 loglevel=4 edd=off ${CONF_APPEND:-}"
mkdir -p "$(dirname "$LOG")"

t0=$(date +%s%N)
set +e
timeout --kill-after=10 "$TIMEOUT" "${QEMU:-qemu-system-x86_64}" \
    -accel tcg -cpu max -m 1536M -smp 1 \
    -nographic -nodefaults -serial stdio -no-reboot -net none \
    -kernel "$OUT/vmlinuz" -initrd "$tmp/initrd" -append "$append" \
    </dev/null 2>&1 | tr -d '\r' >"$LOG"
qrc=${PIPESTATUS[0]}
set -e
wall_ms=$((($(date +%s%N) - t0) / 1000000))

timed_out=0
[ "$qrc" = 124 ] || [ "$qrc" = 137 ] && timed_out=1
done_seen=0
grep -q '^DONE ' "$LOG" && done_seen=1

# the console may end in the middle of a line (kill, panic): start a new one
[ -s "$LOG" ] && [ -n "$(tail -c 1 "$LOG")" ] && echo >>"$LOG"
line="HOST kernel=$KERNEL release=$release wall_ms=$wall_ms timeout=$timed_out qemu_rc=$qrc done=$done_seen"
echo "$line" >>"$LOG"
echo "$line"
[ "$done_seen" = 1 ]
