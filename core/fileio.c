/*
 * fileio.c: monotonic time, atomic whole-file writes, whole-file reads and mkdir -p.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core_internal.h"

/* Process-wide counter that makes temporary names unique between threads. */
static atomic_ulong temp_counter;

double rsy_time_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *rsy__file_temp_path(const char *path)
{
    unsigned long serial = atomic_fetch_add(&temp_counter, 1UL);
    long pid = (long)getpid();
    int n = snprintf(NULL, 0, "%s.part-%ld-%lu", path, pid, serial);
    if (n < 0)
        return NULL;
    char *tmp = malloc((size_t)n + 1);
    if (!tmp)
        return NULL;
    snprintf(tmp, (size_t)n + 1, "%s.part-%ld-%lu", path, pid, serial);
    return tmp;
}

rsy_status rsy_file_write_atomic(const char *path, const void *data, size_t len)
{
    if (!path || (!data && len > 0))
        return RSY_EINVAL;
    rsy_status rc = RSY_EIO;
    FILE *f = NULL;
    char *tmp = rsy__file_temp_path(path);
    if (!tmp) {
        rsy_log_error("%s: cannot allocate a temporary name", path);
        return RSY_ENOMEM;
    }
    int err;
    f = fopen(tmp, "wb");
    if (!f) {
        err = errno;
        goto fail;
    }
    errno = 0;
    if (len > 0 && fwrite(data, 1, len, f) != len) {
        err = errno ? errno : EIO;
        goto fail;
    }
    errno = 0;
    /* Flushed and synced: the data is on disk before the rename says the file is complete. */
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        err = errno ? errno : EIO;
        goto fail;
    }
    errno = 0;
    int close_rc = fclose(f);
    f = NULL;
    if (close_rc != 0) {
        err = errno ? errno : EIO;
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        goto fail;
    }
    free(tmp);
    return RSY_OK;

fail:
    rsy_log_error("%s: %s", path, strerror(err));
    if (f)
        fclose(f);
    remove(tmp);
    free(tmp);
    return rc;
}

int rsy__name_ok(const char *s, size_t max_len)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > max_len)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

rsy_status rsy__fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return RSY_EIO;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* A directory on a filesystem that cannot sync directories (EINVAL) is not an error. */
    if (rc != 0 && err != EINVAL) {
        errno = err;
        return RSY_EIO;
    }
    return RSY_OK;
}

rsy_status rsy_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len_out)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (len_out)
        *len_out = 0;
    if (!path)
        return RSY_EINVAL;

    rsy_status rc;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rsy_log_error("%s: %s", path, strerror(errno));
        return RSY_EIO;
    }
    /* Read at most one byte beyond max_bytes (enough to detect the limit), growing the
     * buffer geometrically; the buffer keeps one byte more for the NUL terminator. */
    size_t limit = max_bytes < SIZE_MAX - 1 ? max_bytes + 1 : SIZE_MAX - 1;
    size_t cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= limit)
                break;
            size_t want = cap == 0 ? 4096 : (cap > SIZE_MAX / 4 ? limit : 2 * cap);
            if (want > limit)
                want = limit;
            char *grown = realloc(buf, want + 1);
            if (!grown) {
                rsy_log_error("%s: cannot allocate %zu bytes", path, want + 1);
                rc = RSY_ENOMEM;
                goto fail;
            }
            buf = grown;
            cap = want;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rsy_log_error("%s: %s", path, strerror(errno));
        rc = RSY_EIO;
        goto fail;
    }
    if (len > max_bytes) {
        rsy_log_error("%s: larger than the limit of %zu bytes", path, max_bytes);
        rc = RSY_ELIMIT;
        goto fail;
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    if (len_out)
        *len_out = len;
    return RSY_OK;

fail:
    fclose(f);
    free(buf);
    return rc;
}

rsy_status rsy_mkdir_p(const char *path)
{
    if (!path || !*path)
        return RSY_EINVAL;
    char *copy = strdup(path);
    if (!copy) {
        rsy_log_error("%s: cannot allocate", path);
        return RSY_ENOMEM;
    }
    rsy_status rc = RSY_OK;
    /* Create each prefix ending before a '/', then the whole path. */
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
            rsy_log_error("%s: %s", copy, strerror(errno));
            rc = RSY_EIO;
            goto fail;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    errno = 0;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rsy_log_error("%s: %s", path, errno ? strerror(errno) : "not a directory");
        rc = RSY_EIO;
    }

fail:
    free(copy);
    return rc;
}
