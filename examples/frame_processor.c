/* Seed 002: a relay's frame processor that leaks a header on an error path.
 *
 * Processes ~2,000 frames a second. Every frame's buffers are freed - except that one frame in
 * eight takes the "bad CBOR" error path, which returns before freeing the 936-byte decoded
 * header: 936 / 8 = 117 bytes per frame on average, as in zlay's ~117 bytes/frame.
 * It writes its frame counter to WORK_FILE (argv[1]) so memsleuth can give growth per frame.
 *
 * memsleuth should say: leak, ~117 bytes per frame (record --work-file WORK_FILE).
 *
 * With BUSY:IDLE (seconds), it works BUSY seconds and sleeps IDLE seconds in turn: memory climbs
 * only while busy, and memsleuth judges it against the frames done (a leak per frame, even when
 * the recording ends idle).
 *
 *   gcc -O2 -o frame_processor examples/frame_processor.c
 *   ./frame_processor /tmp/frames.count [SECONDS [BUSY:IDLE]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FRAMES_PER_SECOND 2000
#define HEADER_BYTES 936
#define PAYLOAD_BYTES 4096

struct header { unsigned char bytes[HEADER_BYTES]; };

static int decode_frame(unsigned long n) {
    struct header *hdr = malloc(sizeof *hdr);
    unsigned char *payload = malloc(PAYLOAD_BYTES);
    if (!hdr || !payload) return -1;
    memset(hdr, (int)(n & 0xff), sizeof *hdr);
    memset(payload, (int)(n & 0x7f), PAYLOAD_BYTES);
    if (n % 8 == 7) {          /* malformed frame: the error path */
        free(payload);
        return -1;             /* BUG: hdr is never freed here */
    }
    free(payload);
    free(hdr);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *work_file = argc > 1 ? argv[1] : NULL;
    double seconds = argc > 2 ? atof(argv[2]) : 1e18;
    double busy = 1e18, idle = 0;
    if (argc > 3 && sscanf(argv[3], "%lf:%lf", &busy, &idle) != 2) {
        fprintf(stderr, "frame_processor: BUSY:IDLE must be two numbers of seconds\n");
        return 2;
    }
    double start = now();
    unsigned long frames = 0;
    struct timespec tick = {0, 10 * 1000 * 1000}; /* 10 ms */
    while (now() - start < seconds) {
        double t = now() - start, cycle = busy + idle;
        int working = idle <= 0 || t - cycle * (double)(long)(t / cycle) < busy;
        for (int i = 0; working && i < FRAMES_PER_SECOND / 100; i++) decode_frame(frames++);
        if (work_file && frames % 200 == 0) {
            FILE *f = fopen(work_file, "w");
            if (f) { fprintf(f, "%lu\n", frames); fclose(f); }
        }
        nanosleep(&tick, NULL);
    }
    return 0;
}
