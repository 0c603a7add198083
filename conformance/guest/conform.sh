# shellcheck shell=sh
# /lib/conform.sh - guest library for conformance scenarios (busybox ash).
#
# Sourced by /init and by the scenario shell.  A scenario is a plain sh script
# (/scenario.sh) that calls the functions below; it must not use `set -e`
# (helpers return non-zero to report failures, that is not an error).
#
# LINE PROTOCOL (serial console).  Every line meant for the host starts at
# column 0 with one of these upper-case keywords; anything else (kernel
# messages, which start with "[", tool noise) is to be ignored.  <name> is
# [A-Za-z0-9_.:+-]+; <n> is a decimal integer; trailing key=value fields may
# be added in later versions, parsers must ignore unknown ones.
#   BOOT kernel=<release> modules=<n> modfail=<n> disks=<n> disk_mb=<n> uptime_ms=<n>
#   STEP <name> rc=<n> dur_ms=<n> blocked=0 end_ms=<n>   (end_ms: guest uptime at the return)
#   STEP <name> rc=- dur_ms=<n> blocked=1          (still running at deadline)
#   BEGIN STACKS <name> / END STACKS <name>         (lines between start with "| ")
#   LATE <name> rc=<n> after_ms=<n> end_ms=<n>      (blocked step finished later;
#                                                    after_ms counts from its start)
#   LATE <name> still-blocked after_ms=<n>
#   ERR <name> <text>                               (last stderr lines of the step)
#   ERRNO <name> <EINVAL|EBUSY|EIO|EPERM|ENOSPC|EROFS|ENXIO|ENOENT|EACCES>
#   STATUS <name> <dmsetup status line> | STATUS <name> error <text> | STATUS <name> blocked
#   TABLE <name> <dmsetup table line>   | TABLE <name> error <text>  | TABLE <name> blocked
#   POS <name> dev=<n> of=<n> lv=<n> stripes=<n> action=<word> src=live|cached|idle
#   IO <name> <ok|eio|eperm|einval|enospc|erofs|err|short|mismatch|blocked>
#        op=read|write off=<n> len=<n> pos=<n|-> src=<live|cached|idle|none> [done=<n>]
#        [loops=<n>] [bad=<n> got=<n|zero|other>]        (sectors; one line)
#   RESULT <name> <ok|mismatch|eio|err|blocked|timeout|none> [key=value...]
#   RESULT <name> rc=<n>|rc=-                        (fsck)
#   SIZE <name> dev=<n|blocked> table=<n> lvs=<n|?>
#   KMSG <name> <kernel log line>
#   ADVANCE <name> <ok|ended|stalled> from=<n|-> to=<n|-> want=<n|-> dur_ms=<n>
#   SB <name> <SBDUMP fields of conftool sb> | SB <name> error <text> | SB <name> blocked
#   BADMAP <name> bad=<n> first=<n|-> runs=<n> [run=<start>+<len>:<got>...]  (after a
#        mismatching checksum: runs of bad LV sectors and whose pattern they hold)
#   NOTE <free text>
#   DONE rc=<n|-> timeout=<0|1> uptime_ms=<n>      (final marker, printed by /init)
#
# FUNCTIONS (times in integer seconds, offsets/lengths in 512-byte sectors)
#   step [-t SECS] NAME CMD...   run CMD in the background, wait up to SECS
#                                ($STEP_DEADLINE=20); STEP (+ERR/ERRNO, or
#                                STACKS if blocked).  Returns CMD's rc, 254 if blocked.
#   spawn NAME CMD...            start CMD in the background, print nothing
#   join NAME [SECS]             wait up to SECS more for a spawned step; as step
#   recheck [SECS]               wait up to SECS (0) for blocked steps; LATE lines
#   status NAME [DMDEV]          STATUS line (dmsetup status, default vg-lv)
#   table NAME [DMDEV]           TABLE line
#   pos NAME                     POS line: reshape position (see _reshape_pos)
#   size NAME                    SIZE line: blockdev --getsz, table length, lvs
#   kmsg NAME [ERE]              KMSG lines: new kernel log lines matching ERE
#   note TEXT...                 NOTE line
#   setup_vg                     pvcreate + vgcreate -s 1M $VG on $LOOPS
#   create_lv [TYPE [STRIPES [SIZE [STRIPESIZE]]]]   default raid5 3 48M 64k
#   wait_sync [SECS [NAME]]      wait for idle, N==M, all 'A' (RESULT + STATUS)
#   standard_lv                  setup_vg; create_lv; wait_sync
#   reshape_stripes N [NAME]     lvconvert -y --stripes N $VG/$LV (as a step)
#   dm_message NAME WORD...      dmsetup message $DMDEV 0 WORD... (as a step)
#   dm_suspend NAME [--noflush]  dmsetup suspend (as a step)
#   dm_resume NAME               dmsetup resume (as a step)
#   throttle [MAX [MIN]]         speed_limit_max/min = 500/1 KiB/s
#   unthrottle                   speed_limit_max/min = 200000/1000
#   wait_reshape [SECS [NAME]]   wait (120 s) until the reshape finished (RESULT + STATUS)
#   wait_progress NAME [SECS]    wait (15 s) until the reshape moved off its start; POS
#   advance NAME N DEV [SECS]    wait (60 s) until the reshape position moved by N*M/DEV
#                                sectors per member (M: the status total; the model's N
#                                blocks of DEV per member), or it ended; ADVANCE + STEP
#   sb NAME [K]                  SB line: the dm-raid superblock of ${LV}_rmeta_K (0)
#   reload_at_reshape_end NAME   `dmsetup table | load` while the superblock records an ended,
#                                uncommitted reshape (rc 1: the window never came)
#   suspend_at_reshape_end NAME [--noflush]  dmsetup suspend as soon as the status shows the
#                                reshape ended (rc 1: no end seen)
#   set_write_delay NAME MS      writes to the PVs take MS ms (USE_DELAY=1 before setup_vg
#                                puts the PVs on dm-delay devices over the loops)
#   write_all [NAME]             write the pattern over the whole LV; sets the
#                                checksum reference extent
#   io_write NAME WHERE [LEN]    pattern write, O_DIRECT (a step + IO line)
#   io_read NAME WHERE [LEN]     O_DIRECT read verified against the pattern
#        WHERE: ahead | across | behind (relative to the reshape position),
#               all, abs:OFF or OFF; LEN defaults to $IO_LEN (2048 = 1 MiB)
#   writer_start NAME WHERE [LEN]  background loop of pattern writes
#   writer_stop NAME [SECS]      stop it; STEP + IO line with loops=<n>
#   checksum [NAME]              drop caches, read the reference extent with
#                                O_DIRECT, compare sha256: RESULT <name> ok|mismatch
#   mkfs_lv / mount_lv / umount_lv   ext4 on the LV at /mnt (steps)
#   fsck [NAME]                  e2fsck -f -n: RESULT fsck rc=<n>
#
# PATTERN: sector S of the LV holds 32 records "#%09d:%04d\n" (S, record
# index), 512 bytes; so any range can be written/verified on its own and a
# mismatch tells where the found data came from (got=<sector>).
#
# RESHAPE POSITION: dm-raid reports the progress N/M of a reshape in sectors
# per member device.  For a forward (growing) raid4/5/6 reshape the LV offset
# of the position is approximated as P = N * D, where D = data stripes of the
# current (new) geometry = #devices - parity (1 for raid4/5, 2 for raid6).  N
# is md's checkpoint (curr_resync_completed) and lags the real position by up
# to one reshape window, so "across" ranges should span a few MiB.  While
# frozen/suspended/stalled the status shows 0/M or M/M: the last position seen
# during an active reshape is used instead (src=cached).  Ranges (aligned to
# 8 sectors, clamped to the LV):  behind = [P-MARGIN-LEN, P-MARGIN),
# across = [P-LEN/2, P+LEN/2), ahead = [P+MARGIN, P+MARGIN+LEN), MARGIN =
# $POS_MARGIN (4096).  Backward reshapes (removing stripes) are not modelled.

# ------------------------------------------------------------- configuration
: "${VG:=vg}" "${LV:=lv}"
: "${DMDEV:=$VG-$LV}"
: "${DEVPATH:=/dev/mapper/$DMDEV}"
: "${STEP_DEADLINE:=20}"
: "${POLL:=0.1}"
: "${IO_LEN:=2048}"
: "${POS_MARGIN:=4096}"
: "${PATTERN_SECTORS:=131072}"
: "${LOOPS:=/dev/loop0 /dev/loop1 /dev/loop2 /dev/loop3 /dev/loop4 /dev/loop5}"
: "${C_DIR:=/tmp/conform}"
mkdir -p "$C_DIR/steps"

# ------------------------------------------------------------------ basics
emit() { printf '%s\n' "$*"; }
note() { emit "NOTE $*"; }

# _now: NOW = guest uptime in ms (from /proc/uptime, 10 ms resolution).
_now() {
    local up rest
    read -r up rest </proc/uptime
    # the fraction always has two digits; "1xx - 100" avoids octal "0xx"
    NOW=$((${up%.*} * 1000 + (1${up#*.} - 100) * 10))
}

_check_name() {
    case $1 in
        '' | *[!A-Za-z0-9_.:+-]*) note "invalid step name '$1'"; return 1 ;;
    esac
}

# _bounded SECS CMD...: run CMD with a time bound without printing anything.
# Returns 0 with B_RC/B_OUT/B_ERR set, or 1 if CMD is still running (left
# alone: it may be in D state).
_bounded() {
    local secs=$1 d lim
    shift
    d=$(mktemp -d "$C_DIR/b.XXXXXX")
    (
        "$@" >"$d/out" 2>"$d/err" </dev/null
        echo $? >"$d/rc.tmp"
        mv "$d/rc.tmp" "$d/rc"
    ) &
    _now
    lim=$((NOW + secs * 1000))
    while [ ! -e "$d/rc" ]; do
        _now
        [ "$NOW" -ge "$lim" ] && break
        sleep 0.05
    done
    if [ -e "$d/rc" ]; then
        read -r B_RC <"$d/rc"
        B_OUT=$(cat "$d/out")
        B_ERR=$(cat "$d/err")
        rm -rf "$d"
        return 0
    fi
    B_RC=-
    B_OUT=
    B_ERR=
    return 1
}

# --------------------------------------------------------------- steps
# A step lives in $C_DIR/steps/<name>/: start (ms), pid, out, err, rc ("<rc>
# <end ms>", written to rc.tmp then renamed so a reader never sees it half
# written), optional fin (finalizer function) and io (IO parameters).

# spawn NAME CMD...: start CMD in the background; SPAWNED = the step name
# used (NAME, or NAME.<k> if NAME is still outstanding).  CMD sees STEP_DIR.
spawn() {
    local name=$1 d k
    shift
    _check_name "$name" || return 2
    d=$C_DIR/steps/$name
    if [ -e "$d" ]; then
        if [ -e "$d/reported" ]; then
            rm -rf "$d"
        else
            k=2
            while [ -e "$d.$k" ]; do k=$((k + 1)); done
            note "step $name still outstanding, using $name.$k"
            name=$name.$k
            d=$d.$k
        fi
    fi
    mkdir -p "$d"
    _now
    echo "$NOW" >"$d/start"
    (
        STEP_DIR=$d
        "$@" >"$d/out" 2>"$d/err" </dev/null
        r=$?
        _now
        echo "$r $NOW" >"$d/rc.tmp"
        mv "$d/rc.tmp" "$d/rc"
    ) &
    echo $! >"$d/pid"
    SPAWNED=$name
    return 0
}

# join NAME [SECS]: wait up to SECS (default $STEP_DEADLINE) from now.
join() {
    local name=$1 dl=${2:-$STEP_DEADLINE} d start lim rc end
    d=$C_DIR/steps/$name
    if [ ! -e "$d/start" ]; then
        note "join: no step $name"
        return 2
    fi
    read -r start <"$d/start"
    _now
    lim=$((NOW + dl * 1000))
    while [ ! -e "$d/rc" ]; do
        _now
        [ "$NOW" -ge "$lim" ] && break
        sleep "$POLL"
    done
    if [ -e "$d/rc" ]; then
        read -r rc end <"$d/rc"
        emit "STEP $name rc=$rc dur_ms=$((end - start)) blocked=0 end_ms=$end"
        _step_tail "$name" "done"
        return "$rc"
    fi
    emit "STEP $name rc=- dur_ms=$((NOW - start)) blocked=1"
    _stacks "$name"
    echo "$name" >>"$C_DIR/blocked"
    _step_fin "$name" blocked
    return 254
}

step() {
    local dl=$STEP_DEADLINE
    if [ "$1" = -t ]; then
        dl=$2
        shift 2
    fi
    spawn "$@" || return 2
    join "$SPAWNED" "$dl"
}

# recheck [SECS]: wait up to SECS for the blocked steps, then print a LATE
# line for each (finished: rc + time since its start; else still-blocked).
recheck() {
    local wait=${1:-0} lim name d pending rc end start
    [ -s "$C_DIR/blocked" ] || return 0
    _now
    lim=$((NOW + wait * 1000))
    while :; do
        pending=0
        for name in $(cat "$C_DIR/blocked"); do
            [ -e "$C_DIR/steps/$name/rc" ] || pending=1
        done
        [ "$pending" = 0 ] && break
        _now
        [ "$NOW" -ge "$lim" ] && break
        sleep 0.2
    done
    : >"$C_DIR/blocked.tmp"
    for name in $(cat "$C_DIR/blocked"); do
        d=$C_DIR/steps/$name
        read -r start <"$d/start"
        if [ -e "$d/rc" ]; then
            read -r rc end <"$d/rc"
            emit "LATE $name rc=$rc after_ms=$((end - start)) end_ms=$end"
            _step_tail "$name" late
        else
            _now
            emit "LATE $name still-blocked after_ms=$((NOW - start))"
            echo "$name" >>"$C_DIR/blocked.tmp"
        fi
    done
    mv "$C_DIR/blocked.tmp" "$C_DIR/blocked"
}

# _step_tail NAME STATE: ERR/ERRNO lines, finalizer, mark reported.
_step_tail() {
    _err_lines "$1" "$C_DIR/steps/$1/err"
    _step_fin "$1" "$2"
    : >"$C_DIR/steps/$1/reported"
}

_step_fin() {
    local f
    [ -e "$C_DIR/steps/$1/fin" ] || return 0
    read -r f <"$C_DIR/steps/$1/fin"
    "$f" "$1" "$2"
}

# _err_lines NAME FILE: last ${ERR_LINES:-3} meaningful stderr lines as ERR,
# and an ERRNO line for each error text found anywhere in FILE.
_err_lines() {
    local name=$1 f=$2 l e
    [ -s "$f" ] || return 0
    # dropped: dd statistics, and lvm's backup warning (backups are off)
    grep -v -E '^[0-9]+\+[0-9]+ records (in|out)$|^[0-9]+ bytes .* copied|metadata update is NOT backed up' "$f" |
        tr -d '\r' | tr '\t' ' ' | sed -e 's/^ *//' -e '/^$/d' |
        tail -n "${ERR_LINES:-3}" >"$f.tail"
    while IFS= read -r l; do
        emit "ERR $name $l"
    done <"$f.tail"
    for e in "EINVAL:Invalid argument" "EBUSY:Device or resource busy" \
        "EIO:Input/output error" "EPERM:Operation not permitted" \
        "ENOSPC:No space left on device" "EROFS:Read-only file system" \
        "ENXIO:No such device or address" "ENOENT:No such file or directory" \
        "EACCES:Permission denied"; do
        grep -q -F "${e#*:}" "$f" && emit "ERRNO $name ${e%%:*}"
    done
    return 0
}

# _stacks NAME: D-state tasks (from /proc) and the blocked-task stacks from
# sysrq-w (plus the kernel log lines before it) between BEGIN/END markers.
_stacks() {
    local name=$1 f=$C_DIR/dmesg.txt h a p
    emit "BEGIN STACKS $name"
    for p in $(awk '/^State:/ && $2 == "D" { print FILENAME }' /proc/[0-9]*/status 2>/dev/null); do
        p=${p#/proc/}
        p=${p%/status}
        emit "| D-state pid=$p comm=$(cat "/proc/$p/comm" 2>/dev/null) wchan=$(cat "/proc/$p/wchan" 2>/dev/null)"
    done
    echo w >/proc/sysrq-trigger 2>/dev/null
    sleep 0.5
    dmesg >"$f" 2>/dev/null
    h=$(grep -n 'Show Blocked State' "$f" | tail -n 1 | cut -d: -f1)
    if [ -n "$h" ]; then
        a=$((h - ${STACK_CONTEXT:-20}))
        [ "$a" -lt 1 ] && a=1
        sed -n "${a},$((h + ${STACK_LINES:-300}))p" "$f"
    else
        tail -n 60 "$f"
    fi | sed 's/^/| /'
    emit "END STACKS $name"
}

# --------------------------------------------------------------- status
# _parse_status LINE: ST_* fields of a dm-raid status line
#   <start> <len> raid <type> <#devs> <health> <N>/<M> <action> <mismatch> <data_offset> <journal>
# and remember the reshape position / data offset while a reshape is active.
_parse_status() {
    local ratio
    ST_LINE=$*
    # shellcheck disable=SC2086
    set -- $*
    ST_LEN=$2 ST_TARGET=$3 ST_TYPE=$4 ST_NDEV=$5 ST_HEALTH=$6 ratio=$7 ST_ACTION=$8
    ST_DOFF=${10}
    ST_N=${ratio%/*}
    ST_M=${ratio#*/}
    case $ST_NDEV in '' | *[!0-9]*) ST_NDEV=0 ;; esac
    case $ST_TYPE in
        raid6*) ST_D=$((ST_NDEV - 2)) ;;
        raid4* | raid5*) ST_D=$((ST_NDEV - 1)) ;;
        raid10*) ST_D=$((ST_NDEV / 2)) ;;
        raid0*) ST_D=$ST_NDEV ;;
        *) ST_D=1 ;;
    esac
    if [ "$ST_ACTION" = reshape ]; then
        echo "$ST_DOFF" >"$C_DIR/reshape_doff"
        if [ "$ST_N" -gt 0 ] && [ "$ST_N" -lt "$ST_M" ]; then
            echo "$((ST_N * ST_D)) $ST_N $ST_M $ST_D" >"$C_DIR/lastpos"
        fi
    fi
}

# _dm_status: read and parse the status of $DMDEV (bounded to 5 s).
_dm_status() {
    if ! _bounded 5 dmsetup status "$DMDEV"; then
        ST_LINE=blocked
        return 1
    fi
    if [ "$B_RC" != 0 ]; then
        ST_LINE="error $(echo "$B_ERR" | tr '\n' ' ')"
        return 1
    fi
    _parse_status "$B_OUT"
}

_oneline() { printf '%s' "$1" | tr '\n\t' '; '; }

# _dm_line KEY SUBCMD NAME DEV: one KEY line from `dmsetup SUBCMD DEV` (bounded to 5 s):
# the output, `blocked` or `error <text>`. Returns 0 when dmsetup answered with rc 0.
_dm_line() {
    if ! _bounded 5 dmsetup "$2" "$4"; then
        emit "$1 $3 blocked"
        return 1
    fi
    if [ "$B_RC" != 0 ]; then
        emit "$1 $3 error $(_oneline "$B_ERR")"
        return 1
    fi
    emit "$1 $3 $(_oneline "$B_OUT")"
}

status() {
    local dev=${2:-$DMDEV}
    if _dm_line STATUS status "$1" "$dev" && [ "$dev" = "$DMDEV" ]; then
        _parse_status "$B_OUT"
    fi
    return 0
}

table() { _dm_line TABLE table "$1" "${2:-$DMDEV}" || true; }

size() {
    local name=$1 dev=blocked tbl="?" lvs="?"
    _bounded 5 blockdev --getsz "$DEVPATH" && dev=$B_OUT
    _bounded 5 dmsetup table "$DMDEV" && [ "$B_RC" = 0 ] &&
        tbl=$(echo "$B_OUT" | awk '{ s += $2 } END { print s + 0 }')
    _bounded 10 lvs --noheadings --units s --nosuffix -o lv_size "$VG/$LV" &&
        [ "$B_RC" = 0 ] && lvs=$(echo $B_OUT)
    emit "SIZE $name dev=$dev table=$tbl lvs=$lvs"
}

# kmsg NAME [ERE]: kernel log lines added since the last kmsg call.
kmsg() {
    local name=$1 re=${2:-'md|raid[0-9]*:|dm-|device-mapper|reshape|capacity|blocked|hung'} seen=0 f=$C_DIR/kmsg.txt
    [ -e "$C_DIR/kmsg.seen" ] && read -r seen <"$C_DIR/kmsg.seen"
    dmesg >"$f" 2>/dev/null
    wc -l <"$f" >"$C_DIR/kmsg.seen"
    tail -n +"$((seen + 1))" "$f" | grep -E "$re" | grep -v -E 'raid6: |WRITE_ZEROES' |
        tr -d '\r' | while IFS= read -r l; do
        emit "KMSG $name $l"
    done
}

# ------------------------------------------------------------- positions
# _reshape_pos: P (LV sectors), POS_SRC, POS_N, POS_M, POS_D.
_reshape_pos() {
    _dm_status || true
    if [ -n "$ST_TARGET" ] && [ "$ST_TARGET" != raid ]; then
        # striped / linear: no reshape, no ratio; the middle of the LV (as the model).
        POS_SRC=plain
        POS_N=- POS_M=- POS_D=1 P=$((ST_LEN / 2))
    elif [ "$ST_ACTION" = reshape ] && [ "$ST_N" -gt 0 ] 2>/dev/null && [ "$ST_N" -lt "$ST_M" ]; then
        POS_SRC=live
        read -r P POS_N POS_M POS_D <"$C_DIR/lastpos"
    elif [ -e "$C_DIR/lastpos" ]; then
        POS_SRC=cached
        read -r P POS_N POS_M POS_D <"$C_DIR/lastpos"
    elif [ -n "$ST_N" ] && [ "$ST_N" -ge 0 ] 2>/dev/null; then
        POS_SRC=idle
        POS_N=$ST_N POS_M=$ST_M POS_D=$ST_D P=$((ST_N * ST_D))
    else
        return 1
    fi
}

pos() {
    if _reshape_pos; then
        emit "POS $1 dev=$POS_N of=$POS_M lv=$P stripes=$POS_D action=$ST_ACTION src=$POS_SRC"
    else
        emit "POS $1 dev=- of=- lv=- stripes=- action=- src=none"
    fi
}

_lv_sectors() {
    if _bounded 5 blockdev --getsz "$DEVPATH" && [ "$B_RC" = 0 ]; then
        LV_SECTORS=$B_OUT
    else
        LV_SECTORS=0
    fi
}

# _range WHERE [LEN]: R_OFF R_LEN R_POS R_SRC
_range() {
    local where=$1 len=${2:-$IO_LEN} lim
    R_POS=- R_SRC=none
    _lv_sectors
    lim=$LV_SECTORS
    [ "$lim" -gt "$PATTERN_SECTORS" ] && lim=$PATTERN_SECTORS
    case $where in
        all) R_OFF=0 len=$lim ;;
        abs:*) R_OFF=${where#abs:} ;;
        [0-9]*) R_OFF=$where ;;
        ahead | across | behind)
            _reshape_pos || return 1
            R_POS=$P R_SRC=$POS_SRC
            case $where in
                ahead) R_OFF=$((P + POS_MARGIN)) ;;
                across) R_OFF=$((P - len / 2)) ;;
                behind) R_OFF=$((P - POS_MARGIN - len)) ;;
            esac
            R_OFF=$((R_OFF / 8 * 8))
            [ "$R_OFF" -lt 0 ] && R_OFF=0
            [ $((R_OFF + len)) -gt "$lim" ] && R_OFF=$(((lim - len) / 8 * 8))
            [ "$R_OFF" -lt 0 ] && R_OFF=0
            ;;
        *) return 1 ;;
    esac
    R_LEN=$len
    [ "$R_LEN" -gt 0 ] || return 1
}

# ---------------------------------------------------------------- pattern/IO
_pattern_init() {
    local t
    [ -e "$C_DIR/pattern" ] && return 0
    _now
    t=$NOW
    if command -v patgen >/dev/null; then
        patgen 0 "$PATTERN_SECTORS" >"$C_DIR/pattern.tmp"
    else
        awk -v n="$PATTERN_SECTORS" 'BEGIN {
        for (r = 0; r < 32; r++) tmpl = tmpl sprintf("#XXXXXXXXX:%04d\n", r)
        for (s = 0; s < n; s++) { x = tmpl; gsub(/XXXXXXXXX/, sprintf("%09d", s), x); printf "%s", x }
        }' >"$C_DIR/pattern.tmp"
    fi
    mv "$C_DIR/pattern.tmp" "$C_DIR/pattern"
    _now
    note "pattern sectors=$PATTERN_SECTORS ms=$((NOW - t))"
}

# _bs OFF LEN: BS = largest power of two <= 2048 sectors dividing both
_bs() {
    BS=2048
    while [ "$BS" -gt 1 ] && { [ $(($1 % BS)) -ne 0 ] || [ $(($2 % BS)) -ne 0 ]; }; do
        BS=$((BS / 2))
    done
}

# _io_dd read|write OFF LEN [DATAFILE]  (reads go to $STEP_DIR/data by default)
_io_dd() {
    _bs "$2" "$3"
    if [ "$1" = write ]; then
        dd if="${5:-$C_DIR/pattern}" of="$DEVPATH" bs=$((BS * 512)) skip=$(($2 / BS)) \
            seek=$(($2 / BS)) count=$(($3 / BS)) oflag=direct conv=notrunc
    else
        dd if="$DEVPATH" of="${4:-$STEP_DIR/data}" bs=$((BS * 512)) skip=$(($2 / BS)) count=$(($3 / BS)) iflag=direct
    fi
}

# _classify ERRFILE: CL = result word for a failed command
_classify() {
    if grep -q 'Input/output error' "$1"; then CL=eio
    elif grep -q 'Operation not permitted' "$1"; then CL=eperm
    elif grep -q 'Invalid argument' "$1"; then CL=einval
    elif grep -q 'No space left' "$1"; then CL=enospc
    elif grep -q 'Read-only file system' "$1"; then CL=erofs
    else CL=err
    fi
}

# _verify OFF LEN DATAFILE: V = ok|mismatch|short, VX = extra fields
_verify() {
    local off=$1 len=$2 data=$3 c s hdr
    VX=
    _bs "$off" "$len"
    dd if="$(_ref_image)" of="$data.ref" bs=$((BS * 512)) skip=$((off / BS)) count=$((len / BS)) 2>/dev/null
    if ! cmp -s "$data.ref" "$data" && [ -s "$C_DIR/gen_uncertain" ]; then
        _gen_settle "$data" "$off" "$len"
        _bs "$off" "$len"
        dd if="$(_ref_image)" of="$data.ref" bs=$((BS * 512)) skip=$((off / BS)) count=$((len / BS)) 2>/dev/null
    fi
    if cmp -s "$data.ref" "$data"; then
        V=ok
    else
        c=$(cmp "$data.ref" "$data" 2>/dev/null | sed -n 's/.* differ: [a-z]* \([0-9]*\),.*/\1/p')
        if [ -z "$c" ]; then
            V=short
        else
            V=mismatch
            s=$(((c - 1) / 512))
            hdr=$(dd if="$data" bs=512 skip="$s" count=1 2>/dev/null | tr -d '\0' | head -c 10)
            case $hdr in
                '') VX="bad=$((off + s)) got=zero" ;;
                '#'[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])
                    hdr=$(echo "${hdr#?}" | sed 's/^0*//')
                    VX="bad=$((off + s)) got=${hdr:-0}" ;;
                *) VX="bad=$((off + s)) got=other" ;;
            esac
        fi
    fi
    rm -f "$data.ref"
}

# finalizer of IO steps and writers: prints the IO line
_io_fin() {
    local name=$1 state=$2 d=$C_DIR/steps/$1 op off len pos src rc end b extra=
    read -r op off len pos src <"$d/io"
    if [ "$state" = blocked ]; then
        emit "IO $name blocked op=$op off=$off len=$len pos=$pos src=$src"
        # A second-generation write still in flight may land later: the checksum takes
        # either generation there.
        [ "${GEN_WRITES:-0}" = 1 ] && [ "$op" = write ] && echo "$off $len" >>"$C_DIR/gen_uncertain"
        return 0
    fi
    read -r rc end <"$d/rc"
    # busybox dd reports "<full>+<partial> records in|out"; done = full
    # records (of BS sectors) transferred by the last dd
    b=in
    [ "$op" = write ] && b=out
    b=$(sed -n "s/^\([0-9][0-9]*\)+[0-9]* records $b\$/\1/p" "$d/err" | tail -n 1)
    _bs "$off" "$len"
    [ -n "$b" ] && b=$((b * BS)) && extra=" done=$b"
    [ -e "$d/loops" ] && extra="$extra loops=$(cat "$d/loops")"
    if [ "$rc" != 0 ]; then
        _classify "$d/err"
        V=$CL VX=
        [ "${GEN_WRITES:-0}" = 1 ] && [ "$op" = write ] && echo "$off $len" >>"$C_DIR/gen_uncertain"
    elif [ -n "$b" ] && [ "$b" -lt "$len" ] && [ ! -e "$d/loops" ]; then
        V=short VX=
        [ "${GEN_WRITES:-0}" = 1 ] && [ "$op" = write ] && echo "$off $len" >>"$C_DIR/gen_uncertain"
    elif [ "$op" = read ]; then
        _verify "$off" "$len" "$d/data"
    else
        V=ok VX=
        if [ "${GEN_WRITES:-0}" = 1 ] && [ "$name" != setup_write ] && [ ! -e "$d/loops" ]; then
            dd if="$C_DIR/pattern2" of="$C_DIR/refimg" bs=$((BS * 512)) skip=$((off / BS)) \
                seek=$((off / BS)) count=$((len / BS)) conv=notrunc 2>/dev/null
        fi
    fi
    emit "IO $name $V op=$op off=$off len=$len pos=$pos src=$src$extra${VX:+ $VX}"
    rm -f "$d/data"
}

_io() {
    local op=$1 name=$2 where=$3 len=$4
    _pattern_init
    if ! _range "$where" "$len"; then
        emit "IO $name err op=$op off=- len=- pos=- src=none reason=range"
        return 2
    fi
    local src=
    [ "${GEN_WRITES:-0}" = 1 ] && [ "$op" = write ] && [ "$name" != setup_write ] &&
        src=$C_DIR/pattern2
    spawn "$name" _io_dd "$op" "$R_OFF" "$R_LEN" "" $src || return 2
    echo "$op $R_OFF $R_LEN $R_POS $R_SRC" >"$C_DIR/steps/$SPAWNED/io"
    echo _io_fin >"$C_DIR/steps/$SPAWNED/fin"
    join "$SPAWNED" "$STEP_DEADLINE"
}

io_write() { _io write "$@"; }
io_read() { _io read "$@"; }

write_all() {
    local name=${1:-write_all}
    _lv_sectors
    local n=$LV_SECTORS
    [ "$n" -gt "$PATTERN_SECTORS" ] && n=$PATTERN_SECTORS
    echo "$n" >"$C_DIR/ref_sectors"
    if [ "${GEN_WRITES:-0}" = 1 ]; then
        _pattern_init
        # A second generation of the pattern (':' -> '+' in every record): a write the
        # scenario issues is told from the data it replaced, so a lost write shows.
        tr ':' '+' <"$C_DIR/pattern" >"$C_DIR/pattern2"
        _bs 0 "$n"
        dd if="$C_DIR/pattern" of="$C_DIR/refimg" bs=$((BS * 512)) count=$((n / BS)) 2>/dev/null
    fi
    _io write "$name" abs:0 "$n"
}

# _gen_settle DATA [BASE LEN]: a write that failed or was still in flight when its step gave
# up landed in part, in whole or not at all: for each of its blocks inside DATA (LV sectors
# BASE..BASE+LEN, default the whole reference) the reference takes the second generation
# where DATA shows it.
_gen_settle() {
    local off len b base=${2:-0} dlen=${3:-0}
    [ "$dlen" = 0 ] && read -r dlen <"$C_DIR/ref_sectors"
    while read -r off len; do
        _bs "$off" "$len"
        b=$off
        while [ "$b" -lt $((off + len)) ]; do
            if [ "$b" -lt "$base" ] || [ $((b + BS)) -gt $((base + dlen)) ] ||
                [ $(((b - base) % BS)) != 0 ]; then
                b=$((b + BS))
                continue
            fi
            dd if="$C_DIR/pattern2" of="$C_DIR/gen2.tmp" bs=$((BS * 512)) skip=$((b / BS)) \
                count=1 2>/dev/null
            if dd if="$1" bs=$((BS * 512)) skip=$(((b - base) / BS)) count=1 2>/dev/null |
                cmp -s - "$C_DIR/gen2.tmp"; then
                dd if="$C_DIR/gen2.tmp" of="$C_DIR/refimg" bs=$((BS * 512)) seek=$((b / BS)) \
                    conv=notrunc 2>/dev/null
                note "gen_settle off=$b len=$BS landed"
            fi
            b=$((b + BS))
        done
        rm -f "$C_DIR/gen2.tmp"
    done <"$C_DIR/gen_uncertain"
}

# _ref_image: what the LV should hold (the pattern, or with GEN_WRITES the pattern with each
# completed scenario write's second generation in place).
_ref_image() {
    if [ "${GEN_WRITES:-0}" = 1 ]; then echo "$C_DIR/refimg"; else echo "$C_DIR/pattern"; fi
}

_writer_loop() {
    local n=0
    echo 0 >"$STEP_DIR/loops"
    while [ ! -e "$STEP_DIR/stop" ]; do
        if ! _io_dd write "$1" "$2" 2>"$STEP_DIR/dd.err"; then
            cat "$STEP_DIR/dd.err" >&2
            return 1
        fi
        n=$((n + 1))
        echo "$n" >"$STEP_DIR/loops"
    done
}

writer_start() {
    local name=$1 where=${2:-across} len=${3:-$IO_LEN}
    _pattern_init
    if ! _range "$where" "$len"; then
        emit "IO $name err op=write off=- len=- pos=- src=none reason=range"
        return 2
    fi
    spawn "$name" _writer_loop "$R_OFF" "$R_LEN" || return 2
    echo "write $R_OFF $R_LEN $R_POS $R_SRC" >"$C_DIR/steps/$SPAWNED/io"
    echo _io_fin >"$C_DIR/steps/$SPAWNED/fin"
    note "writer $SPAWNED started off=$R_OFF len=$R_LEN"
}

writer_stop() {
    : >"$C_DIR/steps/$1/stop"
    join "$1" "${2:-$STEP_DEADLINE}"
}

# ------------------------------------------------------------ checksum/fsck
_checksum_read() {
    echo 3 >/proc/sys/vm/drop_caches
    _bs 0 "$1"
    dd if="$DEVPATH" of="$STEP_DIR/data" bs=$((BS * 512)) count=$(($1 / BS)) iflag=direct
}

_checksum_fin() {
    local name=$1 state=$2 d=$C_DIR/steps/$1 rc end ref want got lvs
    if [ "$state" = blocked ]; then
        emit "RESULT $name blocked"
        return 0
    fi
    read -r ref <"$C_DIR/ref_sectors"
    read -r rc end <"$d/rc"
    if [ "$rc" != 0 ]; then
        _classify "$d/err"
        emit "RESULT $name $CL sectors=$ref"
        rm -f "$d/data"
        return 0
    fi
    if [ ! -e "$C_DIR/pattern.sha.$ref" ] || [ "${GEN_WRITES:-0}" = 1 ]; then
        _bs 0 "$ref"
        dd if="$(_ref_image)" bs=$((BS * 512)) count=$((ref / BS)) 2>/dev/null |
            sha256sum | cut -c1-64 >"$C_DIR/pattern.sha.$ref"
    fi
    read -r want <"$C_DIR/pattern.sha.$ref"
    got=$(sha256sum "$d/data" | cut -c1-64)
    if [ "$got" != "$want" ] && [ -s "$C_DIR/gen_uncertain" ]; then
        _gen_settle "$d/data"
        _bs 0 "$ref"
        want=$(dd if="$C_DIR/refimg" bs=$((BS * 512)) count=$((ref / BS)) 2>/dev/null |
            sha256sum | cut -c1-64)
    fi
    _lv_sectors
    lvs=$LV_SECTORS
    if [ "$got" = "$want" ]; then
        emit "RESULT $name ok sectors=$ref lv_sectors=$lvs sha256=$(echo "$got" | cut -c1-16)"
    else
        _verify 0 "$ref" "$d/data"
        emit "RESULT $name mismatch sectors=$ref lv_sectors=$lvs sha256=$(echo "$got" | cut -c1-16)${VX:+ $VX}"
        emit "BADMAP $name $(conftool badmap "$d/data" 0 | sed 's/^BADMAP //')"
    fi
    rm -f "$d/data"
}

checksum() {
    local name=${1:-checksum} ref
    if [ ! -s "$C_DIR/ref_sectors" ]; then
        emit "RESULT $name none reason=no-reference"
        return 2
    fi
    _pattern_init
    read -r ref <"$C_DIR/ref_sectors"
    spawn "$name" _checksum_read "$ref" || return 2
    echo _checksum_fin >"$C_DIR/steps/$SPAWNED/fin"
    join "$SPAWNED" "${CHECKSUM_DEADLINE:-60}"
}

_fsck_fin() {
    local rc end
    if [ "$2" = blocked ]; then
        emit "RESULT $1 rc=-"
        return 0
    fi
    read -r rc end <"$C_DIR/steps/$1/rc"
    emit "RESULT $1 rc=$rc"
}

fsck() {
    spawn "${1:-fsck}" e2fsck -f -n "$DEVPATH" || return 2
    echo _fsck_fin >"$C_DIR/steps/$SPAWNED/fin"
    join "$SPAWNED" "${FSCK_DEADLINE:-60}"
}

mkfs_lv() { step -t 60 mkfs mke2fs -q -F -t ext4 "$DEVPATH"; }
mount_lv() { step mount mount -t ext4 "$DEVPATH" /mnt; }
umount_lv() { step umount umount /mnt; }

# ---------------------------------------------------------- LVM / dm helpers
# _delay_setup: a dm-delay device dlyN over each loop device (no delay yet); the PVs go on
# them and lvm stops seeing the loops (set_write_delay slows their writes later).
_delay_setup() {
    local i=0 l n d=
    for l in $LOOPS; do
        n=$(blockdev --getsz "$l")
        dmsetup create "dly$i" --table "0 $n delay $l 0 0 $l 0 0" || return 1
        d="$d /dev/mapper/dly$i"
        i=$((i + 1))
    done
    # no udev here: make the /dev/mapper nodes ourselves (lvm does so for its own devices)
    dmsetup mknodes
    echo "$LOOPS" >"$C_DIR/delay_loops"
    LOOPS=${d# }
    sed -i 's#"a|^/dev/loop\[0-9\]+\$|", ##' /etc/lvm/lvm.conf
    note "PVs on dm-delay: $LOOPS"
}

# set_write_delay NAME MS: every write to a PV now takes MS ms (reads are not delayed).
set_write_delay() {
    local name=$1 ms=$2 i=0 l n start rc=0
    _now
    start=$NOW
    for l in $(cat "$C_DIR/delay_loops"); do
        n=$(blockdev --getsz "$l")
        if ! dmsetup load "dly$i" --table "0 $n delay $l 0 0 $l 0 $ms" ||
            ! dmsetup resume "dly$i"; then
            rc=1
        fi
        i=$((i + 1))
    done
    _now
    emit "STEP $name rc=$rc dur_ms=$((NOW - start)) blocked=0 end_ms=$NOW"
    note "write delay ${ms} ms"
    return $rc
}

# leg_device NAME LEG fail|work: every IO to the leg's data image (vg-lv_rimage_LEG) fails
# (its table becomes an error target, as lvm2's aux disable_dev does to a whole PV) or works
# again (the saved table back). The raid set sees a failing leg; its metadata image and the
# PV (lvm's own metadata) stay readable.
leg_device() {
    local name=$1 leg=$2 how=$3 dev=vg-lv_rimage_$2 n
    if [ "$how" = fail ]; then
        dmsetup table "$dev" >"$C_DIR/leg$leg.table" || return 2
        n=$(blockdev --getsz "/dev/mapper/$dev")
        step "$name" sh -c "dmsetup load $dev --table '0 $n error' && dmsetup resume $dev"
    else
        [ -s "$C_DIR/leg$leg.table" ] || return 2
        step "$name" sh -c "dmsetup load $dev <$C_DIR/leg$leg.table && dmsetup resume $dev"
    fi
}

# _sb_inconclusive: SBDUMP of rmeta_0 (in $B_OUT) records no active reshape, yet a layout,
# chunk or disk-count change: the end of a reshape written before raid5_finish_reshape
# committed it. Sets SB_EVENTS.
_sb_inconclusive() {
    local w k v flags= layout= nl= ss= nss= dd=
    for w in $B_OUT; do
        k=${w%%=*} v=${w#*=}
        case $k in
            events) SB_EVENTS=$v ;; flags) flags=$v SB_FLAGS=$v ;; layout) layout=$v ;;
            new_layout) nl=$v ;; stripe_sectors) ss=$v ;; new_stripe_sectors) nss=$v ;;
            delta_disks) dd=$v ;;
        esac
    done
    [ $((flags & 1)) = 0 ] && { [ "$layout" != "$nl" ] || [ "$ss" != "$nss" ] || [ "$dd" != 0 ]; }
}

# reload_at_reshape_end NAME [SECS]: wait (120 s) until the superblock records an ended but
# uncommitted reshape, then `dmsetup table | dmsetup load`; done (rc 0) when the superblock
# read before and after the load is that same one (the new instance's ctr read it), else
# try again; rc 1 ("missed") once the end is committed or the deadline passes.
reload_at_reshape_end() {
    local name=$1 secs=${2:-120} start lim ev1 tries=0 active=0
    _now
    start=$NOW
    lim=$((NOW + secs * 1000))
    while :; do
        _now
        [ "$NOW" -ge "$lim" ] && break
        if ! _bounded 5 conftool sb "/dev/mapper/$VG-${LV}_rmeta_0" || [ "$B_RC" != 0 ]; then
            sleep 0.05
            continue
        fi
        if _sb_inconclusive; then
            ev1=$SB_EVENTS
            tries=$((tries + 1))
            _bounded 10 sh -c "dmsetup table $DMDEV | dmsetup load $DMDEV"
            if _bounded 5 conftool sb "/dev/mapper/$VG-${LV}_rmeta_0" && _sb_inconclusive &&
                [ "$SB_EVENTS" = "$ev1" ]; then
                _now
                note "loaded in the window (events $ev1, try $tries)"
                emit "STEP $name rc=0 dur_ms=$((NOW - start)) blocked=0 end_ms=$NOW"
                return 0
            fi
        elif [ $((SB_FLAGS & 1)) = 1 ]; then
            active=1
        elif [ "$active" = 1 ]; then
            break # the end was committed before a load landed in the window
        elif _dm_status && [ "$ST_ACTION" = idle ] && [ -e "$C_DIR/reshape_doff" ] &&
            [ "$ST_DOFF" != "$(cat "$C_DIR/reshape_doff")" ]; then
            break # the reshape had ended, committed, before the first look
        fi
        sleep 0.02
    done
    _now
    note "reload_at_reshape_end: no window (tries $tries)"
    emit "STEP $name rc=1 dur_ms=$((NOW - start)) blocked=0 end_ms=$NOW"
    return 1
}

# suspend_at_reshape_end NAME [--noflush]: poll dmsetup status as fast as the shell can until
# the reshape has ended (idle, N == M, a data offset other than the reshape's: end_reshape
# ran and DONE is set), then `dmsetup suspend` at once, hoping to take reconfig_mutex before
# the daemon reaps. rc 1 ("missed") if no end is seen within 120 s.
suspend_at_reshape_end() {
    local name=$1 start lim doff= rc
    shift
    _now
    start=$NOW
    lim=$((NOW + 120000))
    while :; do
        if _bounded 5 dmsetup status "$DMDEV" && [ "$B_RC" = 0 ]; then
            _parse_status "$B_OUT"
            [ -e "$C_DIR/reshape_doff" ] && read -r doff <"$C_DIR/reshape_doff"
            if [ "$ST_ACTION" = idle ] && [ "$ST_N" = "$ST_M" ] && [ -n "$doff" ] &&
                [ "$ST_DOFF" != "$doff" ]; then
                dmsetup suspend "$@" "$DMDEV"
                rc=$?
                _now
                emit "STEP $name rc=$rc dur_ms=$((NOW - start)) blocked=0 end_ms=$NOW"
                return $rc
            fi
        fi
        _now
        [ "$NOW" -ge "$lim" ] && break
    done
    emit "STEP $name rc=1 dur_ms=$((NOW - start)) blocked=0 end_ms=$NOW"
    return 1
}

setup_vg() {
    if [ "${USE_DELAY:-0}" = 1 ] && ! _delay_setup; then
        emit "STEP pvcreate rc=1 dur_ms=0 blocked=0"
        return 1
    fi
    # shellcheck disable=SC2086
    step pvcreate pvcreate -y $LOOPS
    # shellcheck disable=SC2086
    step vgcreate vgcreate -y -s 1M "$VG" $LOOPS
}

create_lv() {
    step -t 60 lvcreate lvcreate -y --type "${1:-raid5}" -i "${2:-3}" -I "${4:-64k}" \
        -L "${3:-48M}" -n "$LV" "$VG"
}

# create_lv_linear [SIZE]: a linear LV.
create_lv_linear() {
    step -t 60 lvcreate lvcreate -y --type linear -L "${1:-48M}" -n "$LV" "$VG"
}

# create_lv_mirrors MIRRORS [SIZE]: a raid1 LV with MIRRORS + 1 images.
create_lv_mirrors() {
    step -t 60 lvcreate lvcreate -y --type raid1 -m "${1:-1}" -L "${2:-48M}" -n "$LV" "$VG"
}

# _wait_raid synced|reshaped SECS NAME
_wait_raid() {
    local what=$1 dl=$2 name=$3 start lim doff=
    _now
    start=$NOW
    lim=$((start + dl * 1000))
    while :; do
        if _dm_status; then
            case $ST_HEALTH in *[!A]*) ;; *)
                if [ "$ST_ACTION" = idle ] && [ "$ST_N" = "$ST_M" ]; then
                    [ "$what" = synced ] && break
                    # reshaped: the data offset must differ from the one seen
                    # during the reshape (6.12 can stall reporting idle M/M)
                    doff=
                    [ -e "$C_DIR/reshape_doff" ] && read -r doff <"$C_DIR/reshape_doff"
                    [ -z "$doff" ] && doff=${RESHAPE_DOFF:-}
                    [ "$ST_DOFF" != "$doff" ] && break
                fi ;;
            esac
        fi
        _now
        if [ "$NOW" -ge "$lim" ]; then
            emit "RESULT $name timeout dur_ms=$((NOW - start))"
            emit "STATUS $name $ST_LINE"
            return 1
        fi
        sleep "${WAIT_POLL:-0.5}"
    done
    _now
    emit "RESULT $name ok dur_ms=$((NOW - start)) end_ms=$NOW"
    emit "STATUS $name $ST_LINE"
}

wait_sync() { _wait_raid synced "${1:-120}" "${2:-wait_sync}"; }
wait_reshape() { _wait_raid reshaped "${1:-120}" "${2:-wait_reshape}"; }

# wait_progress NAME [SECS] [ACTION]: wait (15 s) until a reshape (or ACTION: recover)
# has moved off its start (0 < N < M), so that ahead/across/behind have a live or cached
# position to work from, then print POS NAME.
wait_progress() {
    local name=$1 secs=${2:-15} action=${3:-reshape} lim
    _now
    lim=$((NOW + secs * 1000))
    while :; do
        if _dm_status && [ "$ST_ACTION" = "$action" ] &&
            [ "$ST_N" -gt 0 ] 2>/dev/null && [ "$ST_N" -lt "$ST_M" ]; then
            break
        fi
        _now
        [ "$NOW" -ge "$lim" ] && break
        sleep "$POLL"
    done
    pos "$name"
}

# advance NAME N DEV [SECS]: see the header. "ended": idle, N == M and a data offset other
# than the one seen while reshaping; a stall (6.12 reports a stalled reshape as idle M/M
# with the reshape's data offset) runs into the deadline: "stalled".
advance() {
    local name=$1 n=$2 dev=$3 secs=${4:-60} start lim from= want= now= res=stalled doff=
    _now
    start=$NOW
    lim=$((NOW + secs * 1000))
    while :; do
        if _dm_status; then
            if [ "$ST_ACTION" = reshape ] && [ "$ST_N" -lt "$ST_M" ] 2>/dev/null; then
                if [ -z "$from" ]; then
                    from=$ST_N
                    want=$((n * ST_M / dev))
                fi
                now=$ST_N
                if [ $((now - from)) -ge "$want" ]; then
                    res=ok
                    break
                fi
            elif [ "$ST_ACTION" = idle ] && [ "$ST_N" = "$ST_M" ]; then
                doff=
                [ -e "$C_DIR/reshape_doff" ] && read -r doff <"$C_DIR/reshape_doff"
                if [ -n "$doff" ] && [ "$ST_DOFF" != "$doff" ]; then
                    res=ended
                    break
                fi
            fi
        fi
        _now
        [ "$NOW" -ge "$lim" ] && break
        sleep "$POLL"
    done
    _now
    emit "ADVANCE $name $res from=${from:--} to=${now:--} want=${want:--} dur_ms=$((NOW - start))"
    [ "$res" = stalled ] && emit "STEP $name rc=1 dur_ms=$((NOW - start)) blocked=0 end_ms=$NOW" && return 1
    emit "STEP $name rc=0 dur_ms=$((NOW - start)) blocked=0 end_ms=$NOW"
}

# sb NAME [K]: the on-disk dm-raid superblock of metadata sub-device K.
sb() {
    local dev=/dev/mapper/$VG-${LV}_rmeta_${2:-0}
    if ! _bounded 5 conftool sb "$dev"; then
        emit "SB $1 blocked"
    elif [ "$B_RC" != 0 ]; then
        emit "SB $1 error $(_oneline "$B_ERR")"
    else
        emit "SB $1 ${B_OUT#SBDUMP }"
    fi
}

standard_lv() {
    setup_vg
    create_lv
    wait_sync
}

reshape_stripes() { step -t 60 "${2:-lvconvert}" lvconvert -y --stripes "$1" "$VG/$LV"; }

dm_message() {
    local name=$1
    shift
    step "$name" dmsetup message "$DMDEV" 0 "$@"
}

dm_suspend() {
    local name=$1
    shift
    step "$name" dmsetup suspend "$@" "$DMDEV"
}

dm_resume() { step "$1" dmsetup resume "$DMDEV"; }

throttle() {
    echo "${2:-1}" >/proc/sys/dev/raid/speed_limit_min
    echo "${1:-500}" >/proc/sys/dev/raid/speed_limit_max
    note "throttle max=${1:-500} min=${2:-1}"
}

unthrottle() {
    echo 200000 >/proc/sys/dev/raid/speed_limit_max
    echo 1000 >/proc/sys/dev/raid/speed_limit_min
    note "unthrottle max=200000 min=1000"
}
