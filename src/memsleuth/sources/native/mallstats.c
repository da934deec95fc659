/* memsleuth's reader of a native program's allocator (`memsleuth record --malloc-stats`).
 *
 * Loaded with LD_PRELOAD into a program linked with glibc, it starts one thread that, every
 * MEMSLEUTH_MALLSTATS_INTERVAL seconds, writes glibc's mallinfo2() (all arenas) to
 * $MEMSLEUTH_MALLSTATS_DIR/mallstats.<pid>: "fordblks uordblks hblkhd arena\n". The recorder
 * reads it beside RSS: RSS growing while in-use bytes stay flat is memory malloc keeps after
 * free (fragmentation), not a leak.
 *
 * It must never harm its host: the thread blocks every signal (the host's handlers run on the
 * host's threads), is detached, has a 64 KiB stack, allocates nothing after it starts, and
 * writes by rename so a reader never sees half a line. Without the environment it does nothing.
 * A child the host execs inherits the variables and loads it again; a child it only forks (a
 * pre-fork server's workers) gets a thread and a file of its own from the fork handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[4096], path[4096], tmp[4096];
static struct timespec every;

static void write_stats(void) {
    struct mallinfo2 mi = mallinfo2();
    char line[128];
    int n = snprintf(line, sizeof line, "%zu %zu %zu %zu\n", mi.fordblks, mi.uordblks,
                     mi.hblkhd, mi.arena);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    if (w == n) rename(tmp, path);
}

static void *loop(void *arg) {
    (void)arg;
    for (;;) {
        write_stats();
        while (nanosleep(&every, NULL) != 0 && errno == EINTR) {}
    }
    return NULL;
}

/* Name this process's file and start its writer: at load, and again in each forked child,
 * where the parent's thread does not exist and the pid differs. */
static void start(void) {
    int pid = (int)getpid();
    if (snprintf(path, sizeof path, "%s/mallstats.%d", dir, pid) >= (int)sizeof path) return;
    if (snprintf(tmp, sizeof tmp, "%s/.mallstats.%d.tmp", dir, pid) >= (int)sizeof tmp) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  /* the new thread inherits: no signal for it */
    pthread_attr_t attr;
    pthread_t th;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        pthread_create(&th, &attr, loop, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

__attribute__((constructor)) static void memsleuth_mallstats_start(void) {
    const char *d = getenv("MEMSLEUTH_MALLSTATS_DIR");
    if (d == NULL || *d == '\0' || strlen(d) >= sizeof dir) return;
    strcpy(dir, d);
    const char *iv = getenv("MEMSLEUTH_MALLSTATS_INTERVAL");
    double s = iv ? atof(iv) : 1.0;
    if (!(s >= 0.01)) s = 1.0;
    every.tv_sec = (time_t)s;
    every.tv_nsec = (long)((s - (double)every.tv_sec) * 1e9);
    start();
    pthread_atfork(NULL, NULL, start);
}
