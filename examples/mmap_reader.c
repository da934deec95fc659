/* Reads a file through mmap, a page at a time, 3 MB a second: RSS grows with the file's pages
 * (RssFile), while the program's own memory (RssAnon) stays where it started. The kernel takes
 * those pages back whenever memory is short: no leak.
 *
 * memsleuth should say: stable, judged without mapped files' pages (from outside, RSS alone
 * reads as a leak of ~10 GiB/h).
 *
 *     gcc -O2 -o mmap_reader examples/mmap_reader.c
 *     ./mmap_reader FILE [SECONDS]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [SECONDS]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 30.0;
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        perror(argv[1]);
        return 1;
    }
    const unsigned char *map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    char *work = malloc(10 << 20); /* the program's own memory: taken once, kept */
    memset(work, 1, 10 << 20);
    unsigned long sum = 0;
    size_t off = 0;
    const struct timespec tick = {0, 100 * 1000 * 1000};
    for (double start = now(); now() - start < seconds;) {
        size_t end = off + (300 << 10); /* 300 KiB each 0.1 s */
        if (end > (size_t)st.st_size) {
            off = 0;
            end = 300 << 10;
        }
        for (; off < end; off += 4096)
            sum += map[off];
        nanosleep(&tick, NULL);
    }
    printf("%lu %d\n", sum, work[12345]);
    return 0;
}
