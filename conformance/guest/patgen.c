/*
 * patgen START COUNT - write the conformance data pattern for LV sectors
 * [START, START+COUNT) to stdout.  Sector S (512 bytes) consists of 32
 * records "#%09d:%04d\n" (S, record index 0..31).  Same bytes as the awk
 * fallback in conform.sh; this exists because awk takes ~12 s for 64 MiB
 * under QEMU TCG.  Built statically by build.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: patgen START COUNT\n");
        return 2;
    }
    unsigned long long start = strtoull(argv[1], NULL, 10);
    unsigned long long count = strtoull(argv[2], NULL, 10);
    static char buf[64 * 512];
    size_t used = 0;
    char sec[512 + 1]; /* +1: snprintf NUL of the last record */

    /* record indices never change: fill them in once */
    for (int r = 0; r < 32; r++)
        snprintf(sec + 16 * r, 17, "#000000000:%04d\n", r);

    for (unsigned long long s = start; s < start + count; s++) {
        char num[16];
        snprintf(num, sizeof num, "%09llu", s % 1000000000ULL);
        for (int r = 0; r < 32; r++)
            memcpy(sec + 16 * r + 1, num, 9);
        memcpy(buf + used, sec, 512);
        used += 512;
        if (used == sizeof buf || s + 1 == start + count) {
            size_t off = 0;
            while (off < used) {
                ssize_t w = write(1, buf + off, used - off);
                if (w <= 0) {
                    perror("patgen: write");
                    return 1;
                }
                off += (size_t)w;
            }
            used = 0;
        }
    }
    return 0;
}
