/* An allocator that frees lazily: every 100 ms it maps a 256 KiB chunk, uses it, and gives it
 * back with madvise(MADV_FREE), as jemalloc, mimalloc and Go before 1.16 do. The kernel counts
 * such pages in RSS (LazyFree in smaps_rollup) until it needs the memory, then takes them
 * without a write: RSS grows by 2.5 MiB a second while the program holds 8 MiB and no more.
 * With `dontneed`, the chunks go back with MADV_DONTNEED, and RSS stays flat.
 *
 * memsleuth should say: stable, judged without the lazily freed pages (RSS alone reads as a
 * leak of ~9 GiB/h).
 *
 *     gcc -O2 -o lazy_free examples/lazy_free.c
 *     ./lazy_free [SECONDS [dontneed]]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define CHUNK (256 * 1024)
#define HELD (8 * 1024 * 1024)

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1e9;
    int advice = argc > 2 && strcmp(argv[2], "dontneed") == 0 ? MADV_DONTNEED : MADV_FREE;
    char *held = malloc(HELD);
    if (held == NULL) return 1;
    memset(held, 1, HELD);
    for (long tick = 0; tick < seconds * 10; tick++) {
        /* A fresh range each time, never reused: the freed pages stay counted until reclaimed. */
        char *chunk = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunk == MAP_FAILED) return 1;
        memset(chunk, (int)tick, CHUNK);
        if (madvise(chunk, CHUNK, advice) != 0) {
            perror("madvise");
            return 1;
        }
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return 0;
}
