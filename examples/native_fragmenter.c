/* Seed 002's other hypothesis: memory glibc keeps after free (fragmentation), not a leak.
 *
 * Each round (every 100 ms) builds a batch of 1 KiB blocks a little larger than the last
 * (the work grows: a longer queue, a larger request), writes it, and frees all of it except
 * the block allocated last, which it keeps until the next round: a small live object at the
 * top of the heap. The heap cannot shrink below its highest live block, so every page the
 * largest batch touched stays resident. Live (in-use) memory is one block; RSS grows by
 * 50 KiB a round, ~1.7 GiB an hour, and nothing is leaked.
 *
 * With `fork` as its second argument, a worker it forks does the work while it waits, as in
 * a pre-fork server: record the tree with --children.
 *
 * memsleuth should say: fragmentation, with --malloc-stats (from outside alone: leak).
 *
 *   gcc -O2 -o native_fragmenter examples/native_fragmenter.c
 *   memsleuth record --malloc-stats --duration 30s -- ./native_fragmenter
 *   memsleuth record --malloc-stats --children --duration 30s -- ./native_fragmenter 1e9 fork
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 1024
#define MORE_EACH_ROUND 50 /* blocks */

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1e9;
    if (argc > 2 && strcmp(argv[2], "fork") == 0) {
        pid_t worker = fork();
        if (worker < 0) return 1;
        if (worker > 0) {
            int status;
            return waitpid(worker, &status, 0) == worker && WIFEXITED(status)
                       ? WEXITSTATUS(status)
                       : 1;
        }
    }
    struct timespec tick = {0, 100 * 1000 * 1000};
    void *kept = NULL;
    for (long round = 1; round <= (long)(seconds * 10); round++) {
        long n = round * MORE_EACH_ROUND;
        void **batch = malloc(sizeof(void *) * (size_t)n);
        if (!batch) return 1;
        for (long i = 0; i < n; i++) {
            batch[i] = malloc(BLOCK);
            if (batch[i]) memset(batch[i], (int)(i & 0xff), BLOCK);
        }
        free(kept);
        kept = batch[n - 1];
        for (long i = 0; i < n - 1; i++) free(batch[i]);
        free(batch);
        nanosleep(&tick, NULL);
    }
    free(kept);
    return 0;
}
