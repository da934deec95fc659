/* A bounded native cache: 4,096 slots of 8 KiB entries, replaced in place once full.
 * Memory grows while the cache fills (~32 MiB over ~8 s), then stays flat. Not a leak.
 *
 * memsleuth should say: plateau, ceiling ~32-36 MiB above the start.
 *
 *   gcc -O2 -o native_cache examples/native_cache.c
 *   ./native_cache [SECONDS]
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 4096
#define ENTRY_BYTES 8192
#define INSERTS_PER_TICK 5   /* every 10 ms: 500 inserts a second */

static void *slots[SLOTS];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1e18;
    double start = now();
    unsigned long inserted = 0;
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (now() - start < seconds) {
        for (int i = 0; i < INSERTS_PER_TICK; i++) {
            unsigned long slot = inserted < SLOTS ? inserted : (inserted * 2654435761UL) % SLOTS;
            free(slots[slot]);          /* evict what was there */
            slots[slot] = malloc(ENTRY_BYTES);
            if (slots[slot]) memset(slots[slot], (int)(inserted & 0xff), ENTRY_BYTES);
            inserted++;
        }
        nanosleep(&tick, NULL);
    }
    return 0;
}
