/*
 * conftool - guest helpers the shell is too slow (or unable) to do under TCG.
 * Built statically by build.sh.
 *
 *   conftool badmap FILE OFF
 *     FILE holds LV sectors [OFF, OFF + size/512) read back from the LV. Every sector is
 *     compared with the conformance pattern (patgen.c: 32 records "#%09d:%04d\n"); prints
 *       BADMAP bad=<sectors> first=<lv sector|-> runs=<n> [run=<start>+<len>:<got>...]
 *     where a run is a maximal range of bad sectors whose contents continue one source
 *     (got = the LV sector the first one's pattern belongs to, `zero` for zeros, `other`
 *     for anything else); at most 16 runs are listed.
 *
 *   conftool sb DEV
 *     Decodes the dm-raid superblock (struct dm_raid_superblock, drivers/md/dm-raid.c,
 *     packed little-endian) at offset 0 of a metadata sub-device (read with O_DIRECT):
 *       SBDUMP magic=ok|bad events=<n> reshape_position=<n|max> flags=<hex>
 *              array_resync=<n|max> disk_recovery=<n|max> layout=<n> stripe_sectors=<n>
 *              new_layout=<n> new_stripe_sectors=<n> delta_disks=<n> array_sectors=<n>
 *              data_offset=<n> new_data_offset=<n> num_devices=<n> position=<n>
 *              compat=<flags> sectors=<n>
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void num_or_max(const char *key, uint64_t v)
{
    if (v == UINT64_MAX)
        printf(" %s=max", key);
    else
        printf(" %s=%llu", key, (unsigned long long)v);
}

static int sb(const char *dev)
{
    void *buf;
    if (posix_memalign(&buf, 4096, 4096))
        return 2;
    int fd = open(dev, O_RDONLY | O_DIRECT);
    if (fd < 0) {
        perror(dev);
        return 1;
    }
    ssize_t n = pread(fd, buf, 4096, 0);
    close(fd);
    if (n < 120) {
        fprintf(stderr, "%s: short read (%zd)\n", dev, n);
        return 1;
    }
    const unsigned char *p = buf;
    printf("SBDUMP magic=%s", le32(p) == 0x64526D44 ? "ok" : "bad");
    num_or_max("events", le64(p + 16));
    num_or_max("reshape_position", le64(p + 64));
    printf(" flags=%#x", le32(p + 60));
    num_or_max("array_resync", le64(p + 40));
    num_or_max("disk_recovery", le64(p + 32));
    printf(" layout=%u stripe_sectors=%u new_layout=%u new_stripe_sectors=%u delta_disks=%d",
           le32(p + 52), le32(p + 56), le32(p + 76), le32(p + 80), (int32_t)le32(p + 84));
    num_or_max("array_sectors", le64(p + 88));
    num_or_max("data_offset", le64(p + 96));
    num_or_max("new_data_offset", le64(p + 104));
    printf(" num_devices=%u position=%u", le32(p + 8), le32(p + 12));
    /* The 1.9.0 extension (compat bit 0x1): `sectors`, rdev->sectors as super_sync wrote it. */
    printf(" compat=%#x", le32(p + 4));
    num_or_max("sectors", le64(p + 112));
    printf("\n");
    return 0;
}

/* The LV sector a pattern sector belongs to; -1 zeros, -2 other. */
static long long source_of(const unsigned char *s)
{
    int zero = 1;
    for (int i = 0; i < 512; i++)
        if (s[i]) {
            zero = 0;
            break;
        }
    if (zero)
        return -1;
    if (s[0] != '#' || s[10] != ':')
        return -2;
    long long v = 0;
    for (int i = 1; i < 10; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -2;
        v = v * 10 + (s[i] - '0');
    }
    /* the rest of the sector must be that sector's records */
    char rec[32];
    for (int r = 0; r < 32; r++) {
        snprintf(rec, sizeof rec, "#%09lld:%04d\n", v, r);
        if (memcmp(s + 16 * r, rec, 16))
            return -2;
    }
    return v;
}

struct run {
    long long start, len, src;
};

static int badmap(const char *file, long long off)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        perror(file);
        return 1;
    }
    unsigned char s[512];
    struct run r[16];
    long long i = 0, bad = 0, first = -1, runs = 0;
    /* the open run: the sector it continues at, and the source that sector should hold */
    long long open_end = -1, open_next = 0, open_src = 0;
    while (fread(s, 1, 512, f) == 512) {
        long long lv = off + i++;
        long long src = source_of(s);
        if (src == lv) {
            open_end = -1;
            continue;
        }
        bad++;
        if (first < 0)
            first = lv;
        /* one run while the data continues the same source (or zeros / other) */
        if (lv == open_end && ((src >= 0 && src == open_next) || (src < 0 && src == open_src))) {
            if (runs <= 16)
                r[runs - 1].len++;
        } else {
            if (runs < 16)
                r[runs] = (struct run){lv, 1, src};
            runs++;
            open_src = src;
        }
        open_end = lv + 1;
        open_next = src >= 0 ? src + 1 : src;
    }
    fclose(f);
    printf("BADMAP bad=%lld first=", bad);
    if (first < 0)
        printf("-");
    else
        printf("%lld", first);
    printf(" runs=%lld", runs);
    for (long long k = 0; k < runs && k < 16; k++) {
        printf(" run=%lld+%lld:", r[k].start, r[k].len);
        if (r[k].src == -1)
            printf("zero");
        else if (r[k].src == -2)
            printf("other");
        else
            printf("%lld", r[k].src);
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "sb"))
        return sb(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "badmap"))
        return badmap(argv[2], atoll(argv[3]));
    fprintf(stderr, "usage: conftool sb DEV | conftool badmap FILE OFF\n");
    return 2;
}
