/*
 * test_util.h: helpers shared by the cmocka test programs (header-only, static functions).
 * - a log capture: install with tu_log_capture(), read the last error with tu_last_error();
 * - a scratch directory under $TMPDIR removed at the end (tu_tmpdir / tu_rmtree).
 */
#ifndef RSY_TEST_UTIL_H
#define RSY_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ftw.h>
#include <unistd.h>

#include "rsy_core.h"

static char tu_last_error_buf[4096];
static int tu_error_count;

static void tu_log_handler(rsy_log_level level, const char *func, const char *msg, void *user)
{
    (void)func;
    (void)user;
    if (level == RSY_LOG_ERROR) {
        snprintf(tu_last_error_buf, sizeof tu_last_error_buf, "%s", msg);
        tu_error_count++;
    }
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "[log %d %s] %s\n", (int)level, func, msg);
}

/** Start capturing log messages (errors are remembered; the rest is dropped). */
static inline void tu_log_capture(void)
{
    tu_last_error_buf[0] = '\0';
    tu_error_count = 0;
    rsy_log_set_handler(tu_log_handler, NULL);
    rsy_log_set_level(getenv("RSY_TEST_VERBOSE") ? RSY_LOG_DEBUG : RSY_LOG_WARNING);
}

static inline const char *tu_last_error(void) { return tu_last_error_buf; }
static inline int tu_errors(void) { return tu_error_count; }

static int tu_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/** Remove a directory tree (ignore errors). */
static inline void tu_rmtree(const char *path) { nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/** Make a fresh scratch directory; the caller frees the returned string and removes the tree. */
static inline char *tu_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[1024];
    snprintf(tmpl, sizeof tmpl, "%s/rsy-%s-XXXXXX", base ? base : "/tmp", tag);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

#endif /* RSY_TEST_UTIL_H */
