//! drivers/md/dm-stripe.c: lvm's `striped` segment. `stripe_ctr` checks the table,
//! `stripe_map` sends each clone straight to the image device that holds it
//! (`stripe_map_sector`); dm core splits bios at the chunk (`max_io_len`). The target has no
//! presuspend / postsuspend / preresume / resume hooks and no message: a suspend only blocks
//! and drains IO, which is all the lifecycle sees of it.
//!
//! The images are the LV's members (the rimage devices of the raid LV it was taken over from
//! or will be taken over to): the same blocks, so a takeover keeps the data where it is.

use crate::enter;
use crate::md::{Errno, EINVAL, EIO};
use crate::md_h::{Geo, Layout, Sector};
use crate::sched::{BioId, DevId, IoRefusal, K};

/// `struct stripe_c`, reduced: the image devices (`members`), `stripes`, `chunk_size` and
/// each device's `physical_start` (one offset for all, as lvm maps the images) in `geo`;
/// `ti->len` in `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeC {
    pub members: usize,
    pub geo: Geo,
    pub len: Sector,
}

/// `stripe_ctr()`: `striped <#stripes> <chunk size> [<dev> <offset>]+`. The target covers
/// `stripes` x the per-image data length; the chunk must divide it ("Target length not
/// divisible by chunk size"; any chunk size, not only powers of two, since v4.x).
pub fn stripe_ctr(
    k: &mut K,
    d: DevId,
    stripes: u32,
    chunk: u32,
    offset: u32,
) -> Result<StripeC, Errno> {
    enter!(k, "stripe_ctr");
    let mem = k.dms[d].members;
    let (dev_data, dev_blocks) = (k.members[mem].dev_data, k.members[mem].dev_blocks);
    if stripes == 0
        || stripes as usize > k.members[mem].disks.len()
        || chunk == 0
        || dev_data % chunk != 0
        || offset + dev_data > dev_blocks
    {
        return Err(EINVAL);
    }
    let geo = Geo {
        raid_disks: stripes,
        layout: Layout::Striped,
        chunk,
        data_offset: offset,
    };
    let sc = StripeC {
        members: mem,
        geo,
        len: stripes as Sector * dev_data as Sector,
    };
    k.trace(|| format!("stripe_ctr: {stripes} stripes, chunk {chunk}, offset {offset}"));
    Ok(sc)
}

/// `stripe_map_sector()`: target block -> (image, slot). Chunk `c` is on image `c % stripes`,
/// at row `c / stripes` of that image.
pub fn stripe_map_sector(g: &Geo, b: Sector) -> (usize, usize) {
    let chunk = g.chunk as Sector;
    let (c, o) = (b / chunk, b % chunk);
    let n = g.raid_disks as Sector;
    (
        (c % n) as usize,
        (g.data_offset as Sector + c / n * chunk + o) as usize,
    )
}

/// `stripe_map()` and the clone's completion (`stripe_end_io`): every block of the clone is
/// read from / written to its image; an image that fails IO fails the clone with EIO. A
/// clone past `ti->len` never gets here in the kernel (bio_check_eod fails it): EIO too.
pub fn stripe_map(k: &mut K, sc: &StripeC, bio: BioId) {
    enter!(k, "stripe_map");
    map_blocks(k, sc.members, sc.len, bio, |b| {
        stripe_map_sector(&sc.geo, b)
    });
}

/// The data path shared by dm-stripe and dm-linear: each block of the clone at the (image,
/// slot) `place` gives; EIO past `len` or from an image that fails IO (`Members::failing`).
pub fn map_blocks(
    k: &mut K,
    mem: usize,
    len: Sector,
    bio: BioId,
    place: impl Fn(Sector) -> (usize, usize),
) {
    let (start, n, write) = (k.bios[bio].start, k.bios[bio].len, k.bios[bio].write);
    k.bios[bio].data.clear();
    k.bios[bio].origins.clear();
    for b in start..start + n {
        let fail = if b >= len {
            Some(format!("block {b} is beyond the end of the target ({len})"))
        } else {
            let (d, _) = place(b);
            (k.members[mem].failing & (1 << d) != 0).then(|| format!("image {d} fails IO"))
        };
        if let Some(why) = fail {
            k.io_refusals.push(IoRefusal {
                bio,
                justified: true,
                why,
            });
            k.bios[bio].status = Some(Err(EIO));
            return;
        }
        let (d, s) = place(b);
        if write {
            k.members[mem].disks[d][s] = k.bios[bio].tag | b;
            k.members[mem].origin[d][s] = (k.cx.task, k.steps);
        } else {
            let (v, o) = (k.members[mem].disks[d][s], k.members[mem].origin[d][s]);
            k.bios[bio].data.push(v);
            k.bios[bio].origins.push(o);
        }
    }
    k.bios[bio].status = Some(Ok(()));
}
