/* Test helper: reads an Arrow IPC stream with apache-arrow (tests/js/read_arrow.mjs), an
 * implementation that shares no code with ours. Include after cmocka.h and jansson.h; the tests
 * run with the repository root as working directory. */
#ifndef DG_TEST_ARROW_READER_H
#define DG_TEST_ARROW_READER_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Fails the test when node or the pinned reader is missing (tools/setup.sh installs both). */
static void arrow_reader_require(void)
{
    if (system("node --version >/dev/null 2>&1") != 0 ||
        access("tests/js/node_modules/apache-arrow", F_OK) != 0) {
        fail_msg("node and tests/js/node_modules/apache-arrow are required (run tools/setup.sh)");
    }
}

/* Reads the stream at path; returns the reader's JSON ({"schema","batches","num_rows","rows"};
 * the caller decrefs). Fails the test when the reader rejects the stream. */
static json_t *arrow_reader_read(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "node tests/js/read_arrow.mjs '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t jerr;
    json_t *j = json_loadf(p, 0, &jerr);
    int status = pclose(p);
    assert_int_equal(status, 0);
    assert_non_null(j);
    return j;
}

#endif
