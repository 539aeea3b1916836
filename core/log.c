/*
 * log.c: the levelled log (htslib hts_log.h). The handler, its user pointer and the level are
 * the only mutable globals of the library (STYLE.md section 5); a mutex keeps the handler and
 * its user pointer consistent, the level is an atomic so the common "dropped" path takes no
 * lock.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "core_internal.h"

/* Longest delivered message including the NUL; longer ones are truncated (rsy_core.h). */
#define LOG_BUFFER_BYTES 2048

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static rsy_log_handler log_handler; /* NULL: the default, which discards */
static void *log_user;
static atomic_int log_level = RSY_LOG_WARNING;

void rsy_log_set_handler(rsy_log_handler fn, void *user)
{
    pthread_mutex_lock(&log_mutex);
    log_handler = fn;
    log_user = fn ? user : NULL;
    pthread_mutex_unlock(&log_mutex);
}

void rsy_log_set_level(rsy_log_level level)
{
    int l = (int)level;
    if (l < RSY_LOG_OFF)
        l = RSY_LOG_OFF;
    if (l > RSY_LOG_DEBUG)
        l = RSY_LOG_DEBUG;
    atomic_store(&log_level, l);
}

rsy_log_level rsy_log_get_level(void)
{
    return (rsy_log_level)atomic_load(&log_level);
}

void rsy_log(rsy_log_level level, const char *func, const char *fmt, ...)
{
    if ((int)level <= RSY_LOG_OFF || (int)level > atomic_load(&log_level))
        return;

    /* Copy the handler under the lock but call it outside, so a slow handler does not
     * serialise the library and a handler that itself logs cannot deadlock. */
    pthread_mutex_lock(&log_mutex);
    rsy_log_handler fn = log_handler;
    void *user = log_user;
    pthread_mutex_unlock(&log_mutex);
    if (!fn)
        return;

    char msg[LOG_BUFFER_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    fn(level, func ? func : "", msg, user);
}
