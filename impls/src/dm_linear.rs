//! drivers/md/dm-linear.c: lvm's `linear` segment over one image. No suspend hooks, no
//! message, no `max_io_len`: a bio is remapped whole (`linear_map_sector`).

use crate::dm_stripe::map_blocks;
use crate::enter;
use crate::md::{Errno, EINVAL};
use crate::md_h::Sector;
use crate::sched::{BioId, DevId, K};

/// `struct linear_c`: the device (image 0 of the LV's members) and `start`; `ti->len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearC {
    pub members: usize,
    pub start: u32,
    pub len: Sector,
}

/// `linear_ctr()`: `linear <dev> <offset>`, as long as the image's data area.
pub fn linear_ctr(k: &mut K, d: DevId, start: u32) -> Result<LinearC, Errno> {
    enter!(k, "linear_ctr");
    let mem = k.dms[d].members;
    let (dev_data, dev_blocks) = (k.members[mem].dev_data, k.members[mem].dev_blocks);
    if start + dev_data > dev_blocks {
        return Err(EINVAL);
    }
    Ok(LinearC {
        members: mem,
        start,
        len: dev_data as Sector,
    })
}

/// `linear_map_sector()`: target block -> slot on image 0.
pub fn linear_map_sector(start: u32, b: Sector) -> (usize, usize) {
    (0, start as usize + b as usize)
}

/// `linear_map()`.
pub fn linear_map(k: &mut K, lc: &LinearC, bio: BioId) {
    enter!(k, "linear_map");
    map_blocks(k, lc.members, lc.len, bio, |b| {
        linear_map_sector(lc.start, b)
    });
}
