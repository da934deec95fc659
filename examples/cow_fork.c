/* A pre-fork server's memory coming unshared: the parent builds 192 MiB of state, forks a
 * worker that holds it (and sleeps), then goes on writing to its state, 1 MiB every 100 ms.
 * Each page it writes is copied for it (copy-on-write), so the pair holds one more page of
 * memory for each one written, while the parent's RSS does not move: its pages were resident
 * already, shared; they become private. Python pre-fork servers do this without writing a
 * line: reference counts and the collector's links live in every object, so reading an object
 * writes its page (gc.freeze() before fork spares the collector's part).
 *
 * memsleuth should say: plateau, cause copy-on-write: private memory (USS) grows while RSS is
 * flat, bounded by RSS. RSS alone reads stable.
 *
 *     gcc -O2 -o cow_fork examples/cow_fork.c
 *     ./cow_fork [SECONDS]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STATE (192L * 1024 * 1024)
#define STEP (1024 * 1024)

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1e9;
    char *state = malloc(STATE);
    if (state == NULL) return 1;
    memset(state, 1, STATE);
    pid_t worker = fork();
    if (worker < 0) return 1;
    if (worker == 0) {  /* the worker keeps the parent's pages as they were at fork */
        for (;;) pause();
    }
    long offset = 0;
    for (long tick = 0; tick < seconds * 10; tick++) {
        for (long i = 0; i < STEP; i += 4096) state[(offset + i) % STATE] += 1;
        offset += STEP;
        struct timespec pause_for = {0, 100 * 1000 * 1000};
        nanosleep(&pause_for, NULL);
    }
    kill(worker, SIGTERM);
    waitpid(worker, NULL, 0);
    printf("%ld MiB written\n", offset >> 20);
    return 0;
}
