/* Replays every file of the directories (or files) given on the command line through
 * LLVMFuzzerTestOneInput, so each corpus runs as a regular test on every build (label
 * fuzz-replay). Exits non-zero when nothing was replayed or a file cannot be read; a crash
 * fails the test by itself (and is caught by ASan/UBSan in the asan build). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        return -1;
    }
    /* An exact-size copy lets ASan catch reads past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int replayed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s not found\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]) != 0) {
                return 1;
            }
            replayed++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            return 1;
        }
        char *names[4096];
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL && n < sizeof names / sizeof names[0]) {
            if (de->d_name[0] != '.') {
                names[n++] = strdup(de->d_name);
            }
        }
        closedir(d);
        qsort(names, n, sizeof names[0], cmp_str);
        for (size_t k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
            if (replay_file(path) != 0) {
                return 1;
            }
            replayed++;
            free(names[k]);
        }
    }
    printf("replayed %d inputs\n", replayed);
    return replayed > 0 ? 0 : 1;
}
