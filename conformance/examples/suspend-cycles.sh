# Example (c): 5 suspend/resume cycles during a throttled grow reshape, the
# third one with --noflush; then the reshape must finish with intact data.
standard_lv
write_all
throttle
reshape_stripes 4
sleep 2
status s0
for i in 1 2 3 4 5; do
    if [ "$i" = 3 ]; then
        dm_suspend "suspend$i" --noflush
    else
        dm_suspend "suspend$i"
    fi
    status "s$i.suspended"
    dm_resume "resume$i"
    sleep 1
    status "s$i"
done
unthrottle
wait_reshape
checksum
size z
kmsg k
