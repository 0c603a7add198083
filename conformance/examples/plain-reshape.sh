# Example (a): plain grow reshape raid5 3 -> 4 data stripes, no interference.
standard_lv                      # pvcreate, vgcreate -s 1M, lvcreate raid5 -i 3 -I 64k -L 48M, sync
table t0
write_all                        # 48 MiB pattern, O_DIRECT; checksum reference
status s0
throttle                         # 500 KiB/s: keep the reshape running while we look
reshape_stripes 4                # lvconvert -y --stripes 4 vg/lv
table t1
status s1
sleep 2
status s2
pos p2
sleep 3
status s3
pos p3
size z1
unthrottle
wait_reshape
status s4
table t4
size z4
checksum
kmsg k
