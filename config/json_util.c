/*
 * json_util.c: reading JSON files and typed values with one-line error messages.
 *
 * cJSON 1.7.15 is used with cJSON_ParseWithLengthOpts(..., &end, 1): its global error pointer
 * is not thread-safe, so the position of a syntax error is computed here from the end pointer
 * it returns (reference/formats.md, "cJSON 1.7.15"). Every getter uses the case-sensitive
 * lookup, and duplicate keys (which cJSON keeps silently) are rejected after parsing.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "core_internal.h"

#define VALUE_SHOW_MAX 40 /* characters of an offending JSON value shown in a message */
/* Our schemas nest 8 deep (a prior's lesion_types[].compartments[].inclusions.diameter_mm.values);
 * deeper documents are rejected early. */
#define MAX_NESTING 32
#define EXACT_INT_MAX 9007199254740992.0 /* 2^53: larger doubles are not exact integers */

/* ---------------------------------------------------------------------------------------- */
/* Messages                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Compact JSON text of @p v, cut to about VALUE_SHOW_MAX characters on a UTF-8 boundary. */
static void value_text(const cJSON *v, char *buf, size_t n)
{
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        snprintf(buf, n, "(unprintable value)");
        return;
    }
    size_t len = strlen(s);
    if (len > VALUE_SHOW_MAX) {
        size_t cut = VALUE_SHOW_MAX - 3;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        snprintf(buf, n, "%.*s...", (int)cut, s);
    } else {
        snprintf(buf, n, "%s", s);
    }
    cJSON_free(s);
}

rsy_status rsy__cfg_fail(const char *file, const char *kp, const cJSON *got, const char *fmt, ...)
{
    char msg[1024];
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *sep = (kp && *kp) ? ": " : "";
    if (got) {
        char shown[VALUE_SHOW_MAX + 16];
        value_text(got, shown, sizeof shown);
        snprintf(line, sizeof line, "%s: %s%s%s, got %s", file, kp ? kp : "", sep, msg, shown);
    } else {
        snprintf(line, sizeof line, "%s: %s%s%s", file, kp ? kp : "", sep, msg);
    }
    /* Names and paths come from user files: keep the message on one line whatever they hold. */
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    rsy_log_error("%s", line);
    return RSY_ECONFIG;
}

/* Key paths longer than the buffer end in "..." (messages stay readable; such paths only
 * arise from absurdly nested or long keys, which are rejected anyway). */
static void kp_mark_truncated(char out[RSY__KEYPATH_MAX], int written)
{
    if (written >= RSY__KEYPATH_MAX)
        memcpy(out + RSY__KEYPATH_MAX - 4, "...", 4);
}

void rsy__kp_key(char out[RSY__KEYPATH_MAX], const char *parent, const char *key)
{
    int w;
    if (parent && *parent)
        w = snprintf(out, RSY__KEYPATH_MAX, "%s.%s", parent, key);
    else
        w = snprintf(out, RSY__KEYPATH_MAX, "%s", key);
    kp_mark_truncated(out, w);
}

void rsy__kp_index(char out[RSY__KEYPATH_MAX], const char *parent, int index)
{
    kp_mark_truncated(out, snprintf(out, RSY__KEYPATH_MAX, "%s[%d]", parent ? parent : "", index));
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static rsy_status read_file(const char *path, char **text_out, size_t *len_out)
{
    rsy_status rc;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        char err[128];
        if (strerror_r(errno, err, sizeof err) != 0)
            snprintf(err, sizeof err, "errno %d", errno);
        rsy_log_error("%s: cannot open file: %s", path, err);
        return RSY_EIO;
    }
    for (;;) {
        if (cap - len < 4096 + 1) {
            size_t ncap = cap ? 2 * cap : 16384;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                rc = RSY_ENOMEM;
                goto fail;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, fp);
        len += got;
        if (len > RSY__JSON_MAX_BYTES) {
            rc = rsy__cfg_fail(path, "", NULL, "file larger than %u MiB",
                               (unsigned)(RSY__JSON_MAX_BYTES >> 20));
            goto fail;
        }
        if (got == 0) {
            if (ferror(fp)) {
                rsy_log_error("%s: read error", path);
                rc = RSY_EIO;
                goto fail;
            }
            break;
        }
    }
    fclose(fp);
    buf[len] = '\0';
    *text_out = buf;
    *len_out = len;
    return RSY_OK;
fail:
    fclose(fp);
    free(buf);
    return rc;
}

/* Report a syntax error at byte @p pos as "PATH:LINE:COL: malformed JSON (reason)". */
static rsy_status syntax_error(const char *path, const char *text, size_t len, size_t pos,
                               const char *reason_fmt, const char *detail)
{
    size_t line = 1, col = 1;
    if (pos > len)
        pos = len;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char reason[256];
    snprintf(reason, sizeof reason, reason_fmt, detail);
    char where[RSY__KEYPATH_MAX];
    snprintf(where, sizeof where, "%zu:%zu", line, col);
    /* "PATH:LINE:COL: ..." is the compiler convention editors jump to. */
    char file_pos[RSY_PATH_MAX + 64];
    snprintf(file_pos, sizeof file_pos, "%s:%s", path, where);
    return rsy__cfg_fail(file_pos, "", NULL, "malformed JSON (%s)", reason);
}

/* Up to 20 characters of @p s, JSON-quoted, for messages about the text near an error. */
static void snippet(const char *s, size_t avail, char *out, size_t n)
{
    size_t k = 0;
    if (n < 4)
        return;
    out[k++] = '"';
    for (size_t i = 0; i < avail && i < 20 && k + 3 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\r')
            break;
        out[k++] = (c < 0x20) ? '?' : (char)c;
    }
    out[k++] = '"';
    out[k] = '\0';
}

static rsy_status check_duplicates(const char *file, const cJSON *item, const char *kp, int depth)
{
    if (depth > MAX_NESTING)
        return rsy__cfg_fail(file, kp, NULL, "expected at most %d levels of nesting", MAX_NESTING);
    char child_kp[RSY__KEYPATH_MAX];
    if (cJSON_IsObject(item)) {
        for (const cJSON *a = item->child; a; a = a->next) {
            rsy__kp_key(child_kp, kp, a->string ? a->string : "");
            for (const cJSON *b = item->child; b != a; b = b->next)
                if (a->string && b->string && strcmp(a->string, b->string) == 0)
                    return rsy__cfg_fail(file, child_kp, NULL,
                                         "duplicate key (each key may appear once per object)");
            rsy_status rc = check_duplicates(file, a, child_kp, depth + 1);
            if (rc != RSY_OK)
                return rc;
        }
    } else if (cJSON_IsArray(item)) {
        int i = 0;
        for (const cJSON *a = item->child; a; a = a->next, i++) {
            rsy__kp_index(child_kp, kp, i);
            rsy_status rc = check_duplicates(file, a, child_kp, depth + 1);
            if (rc != RSY_OK)
                return rc;
        }
    }
    return RSY_OK;
}

rsy_status rsy__json_file_load(rsy__json_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    rsy_status rc = read_file(path, &f->text, &f->len);
    if (rc != RSY_OK)
        return rc;
    const char *text = f->text;
    size_t len = f->len;
    char near[32];
    if (strlen(text) != len) {
        rc = syntax_error(path, text, len, strlen(text), "%s", "NUL byte in the file");
        goto fail;
    }
    size_t first = strspn(text, " \t\r\n");
    if (first == len) {
        rc = syntax_error(path, text, len, len, "%s", "empty document");
        goto fail;
    }
    const char *end = NULL;
    /* The length includes the terminating NUL: with require_null_terminated = 1, cJSON
     * checks that nothing but whitespace follows the value up to that NUL. */
    f->root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!f->root) {
        size_t pos = end ? (size_t)(end - text) : 0;
        cJSON *prefix = cJSON_ParseWithLengthOpts(text, len, &end, 0);
        if (prefix) {
            /* The document is valid up to end: what follows is trailing text. */
            cJSON_Delete(prefix);
            pos = (size_t)(end - text) + strspn(end, " \t\r\n");
            snippet(text + pos, len - pos, near, sizeof near);
            rc = syntax_error(path, text, len, pos, "unexpected text after the value: %s", near);
        } else if (pos >= len) {
            rc = syntax_error(path, text, len, len, "%s", "unexpected end of file");
        } else {
            snippet(text + pos, len - pos, near, sizeof near);
            rc = syntax_error(path, text, len, pos, "syntax error near %s", near);
        }
        goto fail;
    }
    if (!cJSON_IsObject(f->root)) {
        rc = rsy__cfg_fail(path, "", f->root, "expected a JSON object at the top level");
        goto fail;
    }
    rc = check_duplicates(path, f->root, "", 0);
    if (rc != RSY_OK)
        goto fail;
    return RSY_OK;
fail:
    rsy__json_file_clear(f);
    return rc;
}

void rsy__json_file_clear(rsy__json_file *f)
{
    if (!f)
        return;
    cJSON_Delete(f->root);
    f->root = NULL;
    RSY_FREE(f->text);
    f->len = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Objects and typed values                                                                  */
/* ---------------------------------------------------------------------------------------- */

rsy_status rsy__cfg_check_object(const char *file, const char *kp, const cJSON *obj,
                                 const char *const *allowed)
{
    if (!cJSON_IsObject(obj))
        return rsy__cfg_fail(file, kp, obj, "expected an object");
    char child_kp[RSY__KEYPATH_MAX];
    for (const cJSON *c = obj->child; c; c = c->next) {
        rsy__kp_key(child_kp, kp, c->string);
        if (strcmp(c->string, "note") == 0) {
            if (!cJSON_IsString(c))
                return rsy__cfg_fail(file, child_kp, c, "expected a string (a free-text note)");
            continue;
        }
        int known = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(c->string, *a) == 0)
                known = 1;
        if (!known) {
            char list[768];
            size_t k = 0;
            list[0] = '\0';
            for (const char *const *a = allowed; *a && k < sizeof list; a++) {
                int w = snprintf(list + k, sizeof list - k, "%s%s", a == allowed ? "" : ", ", *a);
                if (w < 0)
                    break;
                k += (size_t)w;
            }
            return rsy__cfg_fail(file, child_kp, NULL, "unknown key (expected one of: %s, note)",
                                 list);
        }
    }
    return RSY_OK;
}

int rsy__range_contains(const rsy__range *r, double x)
{
    if (!isfinite(x))
        return 0;
    if (r->lo_open ? !(x > r->lo) : !(x >= r->lo))
        return 0;
    if (r->hi_open ? !(x < r->hi) : !(x <= r->hi))
        return 0;
    return 1;
}

void rsy__range_text(const rsy__range *r, int integer, char *buf, size_t n)
{
    const char *what = integer ? "an integer" : "a number";
    int has_lo = isfinite(r->lo), has_hi = isfinite(r->hi);
    if (has_lo && has_hi)
        snprintf(buf, n, "%s in %c%g, %g%c", what, r->lo_open ? '(' : '[', r->lo, r->hi,
                 r->hi_open ? ')' : ']');
    else if (has_lo)
        snprintf(buf, n, "%s %s %g", what, r->lo_open ? ">" : ">=", r->lo);
    else if (has_hi)
        snprintf(buf, n, "%s %s %g", what, r->hi_open ? "<" : "<=", r->hi);
    else
        snprintf(buf, n, "%s", what);
}

/* Look up @p key; NULL if absent. Reports a missing required key. */
static rsy_status get_item(const char *file, const cJSON *obj, const char *kp, const char *key,
                           int required, const cJSON **item, char child_kp[RSY__KEYPATH_MAX])
{
    rsy__kp_key(child_kp, kp, key);
    *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*item && required)
        return rsy__cfg_fail(file, child_kp, NULL, "required key missing");
    return RSY_OK;
}

rsy_status rsy__cfg_number_item(const char *file, const cJSON *item, const char *kp, rsy__range r,
                                double *out)
{
    if (!cJSON_IsNumber(item) || !rsy__range_contains(&r, item->valuedouble)) {
        char text[128];
        rsy__range_text(&r, 0, text, sizeof text);
        return rsy__cfg_fail(file, kp, item, "expected %s", text);
    }
    *out = item->valuedouble;
    return RSY_OK;
}

rsy_status rsy__cfg_int_item(const char *file, const cJSON *item, const char *kp, int64_t lo,
                             int64_t hi, int64_t *out)
{
    double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
    if (!isfinite(v) || v != floor(v) || fabs(v) > EXACT_INT_MAX || v < (double)lo ||
        v > (double)hi) {
        char text[128];
        if (hi == INT64_MAX)
            snprintf(text, sizeof text, "an integer >= %lld", (long long)lo);
        else
            snprintf(text, sizeof text, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
        return rsy__cfg_fail(file, kp, item, "expected %s", text);
    }
    *out = (int64_t)v;
    return RSY_OK;
}

rsy_status rsy__cfg_number(const char *file, const cJSON *obj, const char *kp, const char *key,
                           int required, rsy__range r, double *out)
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, required, &item, ckp);
    if (rc != RSY_OK || !item)
        return rc;
    return rsy__cfg_number_item(file, item, ckp, r, out);
}

rsy_status rsy__cfg_int(const char *file, const cJSON *obj, const char *kp, const char *key,
                        int required, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, required, &item, ckp);
    if (rc != RSY_OK || !item)
        return rc;
    return rsy__cfg_int_item(file, item, ckp, lo, hi, out);
}

rsy_status rsy__cfg_bool(const char *file, const cJSON *obj, const char *kp, const char *key,
                         int required, int *out)
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, required, &item, ckp);
    if (rc != RSY_OK || !item)
        return rc;
    if (!cJSON_IsBool(item))
        return rsy__cfg_fail(file, ckp, item, "expected true or false");
    *out = cJSON_IsTrue(item) ? 1 : 0;
    return RSY_OK;
}

rsy_status rsy__cfg_string(const char *file, const cJSON *obj, const char *kp, const char *key,
                           int required, size_t max_len, char *out)
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, required, &item, ckp);
    if (rc != RSY_OK || !item)
        return rc;
    if (!cJSON_IsString(item) || strlen(item->valuestring) > max_len)
        return rsy__cfg_fail(file, ckp, item, "expected a string of at most %zu characters",
                             max_len);
    memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
    return RSY_OK;
}

rsy_status rsy__cfg_enum(const char *file, const cJSON *obj, const char *kp, const char *key,
                         int required, const char *const *choices, int *out)
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, required, &item, ckp);
    if (rc != RSY_OK || !item)
        return rc;
    if (cJSON_IsString(item))
        for (int i = 0; choices[i]; i++)
            if (strcmp(item->valuestring, choices[i]) == 0) {
                *out = i;
                return RSY_OK;
            }
    char list[512];
    size_t k = 0;
    list[0] = '\0';
    for (int i = 0; choices[i] && k < sizeof list; i++) {
        int w = snprintf(list + k, sizeof list - k, "%s\"%s\"", i ? ", " : "", choices[i]);
        if (w < 0)
            break;
        k += (size_t)w;
    }
    return rsy__cfg_fail(file, ckp, item, "expected one of %s", list);
}

int rsy__is_ident(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= RSY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static rsy_status ident_item(const char *file, const cJSON *item, const char *kp,
                             char out[RSY_NAME_MAX])
{
    if (!cJSON_IsString(item) || !rsy__is_ident(item->valuestring))
        return rsy__cfg_fail(file, kp, item,
                             "expected a name of 1 to %d characters from [a-z0-9_-]",
                             RSY_NAME_MAX - 1);
    snprintf(out, RSY_NAME_MAX, "%s", item->valuestring);
    return RSY_OK;
}

rsy_status rsy__cfg_ident(const char *file, const cJSON *obj, const char *kp, const char *key,
                          int required, char out[RSY_NAME_MAX])
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, required, &item, ckp);
    if (rc != RSY_OK || !item)
        return rc;
    return ident_item(file, item, ckp, out);
}

rsy_status rsy__cfg_ident_list(const char *file, const cJSON *obj, const char *kp, const char *key,
                               int required, int max, char out[][RSY_NAME_MAX], int *n_out)
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    char ekp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, required, &item, ckp);
    if (rc != RSY_OK || !item)
        return rc;
    int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 0;
    if (n < 1 || n > max)
        return rsy__cfg_fail(file, ckp, item, "expected an array of 1 to %d names", max);
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        rsy__kp_index(ekp, ckp, i);
        rc = ident_item(file, e, ekp, out[i]);
        if (rc != RSY_OK)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(out[j], out[i]) == 0)
                return rsy__cfg_fail(file, ekp, NULL, "duplicate name \"%s\" (also [%d])", out[i],
                                     j);
    }
    *n_out = n;
    return RSY_OK;
}

rsy_status rsy__cfg_sources(const char *file, const cJSON *obj, const char *kp, const char *key,
                            char out[][RSY_TEXT_MAX], int *n_out)
{
    const cJSON *item;
    char ckp[RSY__KEYPATH_MAX];
    char ekp[RSY__KEYPATH_MAX];
    rsy_status rc = get_item(file, obj, kp, key, 1, &item, ckp);
    if (rc != RSY_OK)
        return rc;
    int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 0;
    if (n < 1 || n > RSY_MAX_SOURCES)
        return rsy__cfg_fail(file, ckp, item,
                             "expected an array of 1 to %d source references (strings)",
                             RSY_MAX_SOURCES);
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        rsy__kp_index(ekp, ckp, i);
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0' ||
            strlen(e->valuestring) >= RSY_TEXT_MAX)
            return rsy__cfg_fail(file, ekp, e,
                                 "expected a non-empty string of at most %d characters",
                                 RSY_TEXT_MAX - 1);
        memcpy(out[i], e->valuestring, strlen(e->valuestring) + 1);
    }
    *n_out = n;
    return RSY_OK;
}

rsy_status rsy__cfg_version(const char *file, const cJSON *root, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item)
        return rsy__cfg_fail(file, key, NULL, "required key missing (format version, 1)");
    if (!cJSON_IsNumber(item) || item->valuedouble != 1.0)
        return rsy__cfg_fail(file, key, item,
                             "expected 1 (the only format version this build reads)");
    return RSY_OK;
}

void rsy__path_stem(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".json") == 0)
        len -= 5;
    snprintf(out, n, "%.*s", (int)len, base);
}
