# Example (b): "frozen" during a throttled grow reshape, a write across the
# reshape position, "idle", suspend/resume, then let the reshape finish.
# Seen: 6.12 rejects frozen (EINVAL: reshape stalls, the write gets EIO; or
# EBUSY: reshape goes on); 6.1 accepts it and the write blocks until idle.
standard_lv
write_all
throttle
reshape_stripes 4
sleep 3
status s1
pos p1                          # remembered; status reads 0/M once frozen
dm_message frozen frozen
status s2
io_write w_across across        # 1 MiB centred on the reshape position
status s3
dm_message idle idle
recheck 40                      # 6.1: the blocked write finishes after idle
status s4
dm_suspend suspend
status s5
dm_resume resume
status s6
unthrottle
wait_reshape
recheck 30
checksum
size z
kmsg k
