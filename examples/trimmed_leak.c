/* A leak beside a heap that trims itself: malloc's free bytes grow, RSS does not keep them.
 *
 * Every 100 ms it keeps a 20 KiB block it never frees (a leak of 200 KiB/s, ~700 MiB an
 * hour). Once a second it also builds a batch of 1 KiB blocks a little larger than the last,
 * frees all of it but the block allocated last (which pins the top of the heap until the next
 * batch), and calls malloc_trim(0), which gives the free chunks' pages back to the kernel.
 * The chunks stay free in malloc's books: mallinfo2's free bytes (fordblks) grow by the
 * batch each second, faster than RSS, though none of them is resident.
 *
 * memsleuth should say: leak, with --malloc-stats too (live allocations grow with RSS), not
 * fragmentation (RSS less malloc's free bytes had fallen while RSS grew).
 *
 *   gcc -O2 -o trimmed_leak examples/trimmed_leak.c
 *   memsleuth record --malloc-stats --duration 30s -- ./trimmed_leak
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEPT (20 * 1024)
#define BLOCK 1000
#define MORE_EACH_SECOND 512 /* blocks */

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1e9;
    void *pin = NULL;
    for (long tick = 0; tick < seconds * 10; tick++) {
        char *kept = malloc(KEPT);
        if (kept == NULL) return 1;
        memset(kept, 7, KEPT); /* touched: resident */
        if (tick % 10 == 0) {
            size_t n = (size_t)(tick / 10 + 1) * MORE_EACH_SECOND;
            void **batch = malloc(n * sizeof *batch);
            if (batch == NULL) return 1;
            for (size_t i = 0; i < n; i++) {
                batch[i] = malloc(BLOCK);
                if (batch[i] == NULL) return 1;
                memset(batch[i], 1, BLOCK);
            }
            for (size_t i = 0; i + 1 < n; i++) free(batch[i]);
            free(pin);
            pin = batch[n - 1];
            free(batch);
            malloc_trim(0);
        }
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return 0;
}
