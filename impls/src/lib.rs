//! An executable model of the md / dm-raid sync_thread lifecycle at Linux v6.7 and under the
//! "dm-raid: fix v6.7 regressions" series (v2 as posted, and as merged for 6.8/6.9).
//!
//! One model file per kernel source file — `md.rs` (md.c), `md_h.rs` (md.h), `dm.rs` (dm.c /
//! dm-ioctl.c), `dm_raid.rs` (dm-raid.c), `dm_stripe.rs` / `dm_linear.rs` (dm-stripe.c / dm-linear.c), `raid5.rs` (raid5.c), `raid10.rs` (raid10.c) — with the kernel's function
//! and flag names. `kernel.rs` holds the patch gates, `sched.rs` the kthread / wait-queue
//! infrastructure, `sync.rs` the shuttle / loom facade.

pub mod dm;
pub mod dm_linear;
pub mod dm_raid;
pub mod dm_stripe;
pub mod kernel;
pub mod md;
pub mod md_h;
pub mod raid1;
pub mod raid10;
pub mod raid5;
pub mod sched;
pub mod sync;

pub use kernel::{Change, Kernel, KernelError};
