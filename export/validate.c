/*
 * validate.c: `raresynth validate DIR`. Re-reads a dataset and reports every problem as one
 * line "PATH: what is wrong" at RSY_LOG_ERROR; it never stops at the first one. docs/validate.md
 * lists every check, its message and what to do about it.
 *
 * Checked (reference/formats.md): the marker and raresynth.json; the nnU-Net v2 checklist
 * (folder name, dataset.json keys, numTraining, every channel of every case, no stray file in
 * imagesTr/labelsTr, one label map per case, label values declared and consecutive, equal
 * shapes and affines, no NaN); the NIfTI header rules; SHA-256 checksums of every file the
 * manifests list; the lesion records, recomputed from the label and instance maps with
 * rsy_export_measure_lesions(); the MSD/MONAI and nnDetection layouts, whose rules are coded
 * here from formats.md and not taken from the writer; the HDF5 file (voxels against the NIfTI
 * files, attributes per docs/hdf5.md); the previews (PNG signature, IHDR, IEND); shard
 * manifests; and interrupted runs (incomplete, but every present case complete).
 *
 * Hostile input. validate reads files it did not write and may be pointed at anything, so:
 * - it only reads: files are opened read-only, nothing is created, renamed or removed;
 * - a path is only opened when it resolves (symbolic links included) to a regular file or a
 *   folder inside DIR; paths from JSON must be relative without "..", case ids [A-Za-z0-9_-];
 * - allocation is bounded by the input: a NIfTI header's dims are checked against what the
 *   file can hold (deflate expands at most 1032:1) before the voxels are read; JSON documents
 *   have size limits and a nesting limit, checked before parsing;
 * - an HDF5 file is opened with the HDF5 library only when its SHA-256 matches the one
 *   raresynth.json records (the HDF5 library is not hardened against crafted files);
 * - lookups are O(log n) in the number of cases, so a manifest listing millions of cases
 *   takes time proportional to its size.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>
#include <zlib.h>

#include "export_internal.h"

/* Measured and recorded values agree within |a-b| <= REL_TOL·max(|a|,|b|) + ABS_TOL. The
 * absolute floor covers NIfTI's float32 storage of the affine (2^-24 relative, so < 1e-4 mm
 * for world coordinates within ±1.6 m); REL_TOL covers cJSON's round-trip printing. */
#define REL_TOL 1e-6
#define ABS_TOL 1e-4
/* Largest quaternion-vs-row discrepancy accepted between qform and sform, mm. */
#define QS_TOL_MM 1e-4
/* Summary statistics recomputed from the cases agree within this relative tolerance (they
 * are sums of the same doubles, possibly in another order). */
#define SUMMARY_REL_TOL 1e-9
#define MAX_CHANNELS 64
#define ID_MAX 64
/* JSON limits: raresynth.json and the layouts' dataset.json of a million cases stay below
 * RSY_EXPORT_JSON_MAX_BYTES; a per-case JSON file below 16 MiB. No document raresynth writes
 * nests deeper than about 10 levels (an embedded recipe included). */
#define JSON_CASE_MAX_BYTES ((size_t)16 << 20)
#define JSON_MAX_DEPTH 64
/* A volume is read only if its voxels fit the file: deflate expands at most 1032:1 (zlib
 * FAQ, "maximum compression ratio"), plus this many bytes for the gzip and NIfTI headers; and
 * never beyond VOLUME_MAX_BYTES (a 1024^3 float32 volume, four times the largest recipe). */
#define DEFLATE_MAX_RATIO 1032
#define VOLUME_SLACK_BYTES 4096
#define VOLUME_MAX_BYTES ((uint64_t)4 << 30)
/* Previews larger than this on a side are refused by the writer (docs/previews.md). */
#define PREVIEW_MAX_SIDE 32768
/* MONAI box mode and coordinate system stated in msd/dataset.json. */
#define MSD_BOX_MODE "cccwhd"
/* Every nnDetection and MSD box matches its lesion's voxel box within a voxel plus this (mm),
 * for cJSON's printing and the float32 affine. */
#define BOX_TOL_MM 1e-3

/* NIfTI-1 datatype codes (nifti1.h) of the integer types, and every code's byte size. */
static const int integer_datatypes[] = {2, 4, 8, 256, 512, 768, 1024, 1280};
static const struct {
    int code;
    int bytes;
} datatype_bytes[] = {{2, 1},     {4, 2},     {8, 4},     {16, 4},   {64, 8}, {256, 1},
                      {512, 2},   {768, 4},   {1024, 8},  {1280, 8}, {32, 8}, {128, 3},
                      {1536, 16}, {1792, 16}, {2048, 32}, {2304, 4}};

/* One case the dataset holds (listed in raresynth.json, or with a manifest). */
typedef struct vcase {
    char *id;
    int64_t index;         /* from "case_NNNN"; -1 for another id */
    int list_pos;          /* position in raresynth.json "cases"; -1 without */
    const cJSON *entry;    /* raresynth.json cases[list_pos], or NULL */
    const cJSON *msd_item; /* its item of msd/dataset.json "training", or NULL */
    int msd_pos;
} vcase;

/* A file met while checking one case (one entry per path): its checksum, hashed once (the
 * layouts' copies are compared by checksum and by inode: a hard link is the same file), and
 * what was reported about it, so each thing is said once whoever looks for the file. */
#define SEEN_MISSING 1u /* reported missing */
#define SEEN_BAD 2u     /* reported hostile or unreadable (locate) */
typedef struct hashed {
    char rel[RSY_EXPORT_REL_MAX];
    char hex[65];
    int hashed; /* a checksum was attempted; ok = it succeeded */
    int ok;
    unsigned seen; /* SEEN_* */
    int sha_bad;   /* its SHA-256 differs from the case manifest (1), raresynth.json (2) */
    dev_t dev;
    ino_t ino;
} hashed;

typedef struct vctx {
    const char *dir;
    char real_dir[RSY_PATH_MAX]; /* realpath(dir): every file read must resolve inside it */
    rsy_validate_report *rep;
    cJSON *dsman;  /* raresynth.json, or NULL */
    cJSON *nnjson; /* dataset.json, or NULL */
    char nnunet_dir[96];
    int have_nnunet;
    int n_channels; /* -1 = unknown */
    char channel_names[MAX_CHANNELS][RSY_NAME_MAX];
    int n_labels; /* declared values 0..n_labels-1; -1 = unknown */
    char label_names[RSY_MAX_LABELS][RSY_NAME_MAX];
    unsigned char peri[RSY_MAX_LABELS]; /* perilesional flags of raresynth.json (0 unknown) */
    vcase *cases;                       /* sorted by id */
    size_t n_cases, cap_cases;
    /* Shard manifest: raresynth.json with "shard": {"index", "count"}. */
    int64_t shard_index, shard_count; /* count 0: not a shard */
    int64_t total_cases;              /* effective.cases of the run, -1 unknown */
    /* Interrupted runs: files of cases without a manifest, temporaries, staging leftovers. */
    int64_t partial_files;
    /* What the summary of raresynth.json is recomputed from (every case's manifest and label
     * map); summary_known = 0 once one of them could not be read. */
    int summary_known;
    int64_t lesions_total, lesions_min, lesions_max, cases_seen;
    double *volumes; /* volume_mm3 of every lesion record */
    size_t n_volumes, cap_volumes;
    int64_t label_totals[RSY_MAX_LABELS];
    /* Layouts. */
    cJSON *msdjson; /* msd/dataset.json, or NULL */
    int have_msd;
    char nndet_dir[96];
    int have_nndet;
    int nndet_n_classes; /* labels of nndet dataset.json; -1 unknown */
    /* HDF5: the file raresynth.json lists, opened only if its checksum matches. */
    char h5rel[RSY_EXPORT_REL_MAX];
    hid_t h5;
    int previews; /* 1: a preview per case is expected */
    /* Per case: the files hashed so far. */
    hashed *hashes;
    size_t n_hashes, cap_hashes;
} vctx;

/* ---------------------------------------------------------------------------------------- */
/* Reporting                                                                                  */
/* ---------------------------------------------------------------------------------------- */
static void problem(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);
static void note(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);
static void missing_once(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);
static int mark_once(vctx *v, const char *rel, unsigned what);

static void emit(vctx *v, int counted, const char *rel, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (counted) {
        if (rel)
            rsy_log_error("%s/%s: %s", v->dir, rel, msg);
        else
            rsy_log_error("%s: %s", v->dir, msg);
        v->rep->problems++;
    } else if (rel) {
        rsy_log_warning("%s/%s: %s", v->dir, rel, msg);
    } else {
        rsy_log_warning("%s: %s", v->dir, msg);
    }
}

/* A problem: counted, logged as an error. */
static void problem(vctx *v, const char *rel, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(v, 1, rel, fmt, ap);
    va_end(ap);
}

/* Something the user should know that does not make the dataset invalid (a partial file of
 * an interrupted run, a shard's status): logged as a warning, not counted. */
static void note(vctx *v, const char *rel, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(v, 0, rel, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* Paths: nothing outside DIR is ever opened                                                  */
/* ---------------------------------------------------------------------------------------- */
static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Case ids (and file stems) are [A-Za-z0-9_-]{1,63}: no '/', no "..", no '.', so a path made
 * from one never leaves the dataset (and nnDetection's "no '.'" rule holds). */
static int safe_id(const char *s)
{
    return rsy__name_ok(s, ID_MAX - 1);
}

/* A relative path from a manifest: not empty, not absolute, no "." or ".." component, no
 * empty component, printable ASCII, shorter than RSY_EXPORT_REL_MAX. */
static int rel_safe(const char *rel)
{
    size_t n = strlen(rel);
    if (n == 0 || n >= RSY_EXPORT_REL_MAX || rel[0] == '/')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)rel[i] < 0x20 || (unsigned char)rel[i] > 0x7e || rel[i] == '\\')
            return 0;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += len + (slash ? 1 : 0);
        if (slash && !*p)
            return 0; /* trailing '/' */
    }
    return 1;
}

static int full_path(const vctx *v, const char *rel, char *buf, size_t n)
{
    return rsy__export_path(buf, n, "%s/%s", v->dir, rel) == RSY_OK;
}

typedef enum { LOC_MISSING = 0, LOC_OK = 1, LOC_BAD = 2 } loc_state;

/* A hostile or unreadable path, reported once per case. */
static void bad_path(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);
static void bad_path(vctx *v, const char *rel, const char *fmt, ...)
{
    if (!mark_once(v, rel, SEEN_BAD))
        return;
    char msg[PATH_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    problem(v, rel, "%s", msg);
}

/* Find @p rel (a regular file, or a folder if @p want_dir) inside the dataset, with its full
 * path in @p path. A missing path is LOC_MISSING and not reported (callers say what it is);
 * a path that resolves outside DIR (a symbolic link, in the path or at its end), a dangling
 * link, or an entry of the wrong type (a FIFO, a device, a folder for a file) is reported and
 * LOC_BAD, and is never opened. @p st receives the resolved entry's status. */
static loc_state locate(vctx *v, const char *rel, int want_dir, char *path, size_t n,
                        struct stat *st)
{
    struct stat lst, local;
    struct stat *s = st ? st : &local;
    if (!full_path(v, rel, path, n)) {
        bad_path(v, rel, "path too long");
        return LOC_BAD;
    }
    if (lstat(path, &lst) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return LOC_MISSING;
        bad_path(v, rel, "cannot be examined: %s", strerror(errno));
        return LOC_BAD;
    }
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        if (S_ISLNK(lst.st_mode))
            bad_path(v, rel, "symbolic link to a missing target");
        else
            bad_path(v, rel, "cannot be resolved: %s", strerror(errno));
        return LOC_BAD;
    }
    size_t nd = strlen(v->real_dir);
    int inside = (nd == 1 && v->real_dir[0] == '/') ||
                 (strncmp(real, v->real_dir, nd) == 0 && (real[nd] == '/' || real[nd] == '\0'));
    if (!inside) {
        bad_path(v, rel, "resolves to %s, outside the dataset (symbolic link); not read", real);
        return LOC_BAD;
    }
    if (stat(real, s) != 0) {
        bad_path(v, rel, "cannot be examined: %s", strerror(errno));
        return LOC_BAD;
    }
    if (want_dir ? !S_ISDIR(s->st_mode) : !S_ISREG(s->st_mode)) {
        bad_path(v, rel, "is not a %s", want_dir ? "folder" : "regular file");
        return LOC_BAD;
    }
    return LOC_OK;
}

/* 1 if @p rel is a regular file inside the dataset (reports only hostile entries). */
static int file_ok(vctx *v, const char *rel)
{
    char path[RSY_PATH_MAX];
    return locate(v, rel, 0, path, sizeof path, NULL) == LOC_OK;
}

/* 1 if anything exists at @p rel (not followed). */
static int path_exists(const vctx *v, const char *rel)
{
    char path[RSY_PATH_MAX];
    struct stat st;
    return full_path(v, rel, path, sizeof path) && lstat(path, &st) == 0;
}

/* Open the folder @p rel inside the dataset; NULL if missing (not reported) or hostile
 * (reported). */
static DIR *open_folder(vctx *v, const char *rel, int *missing)
{
    char path[RSY_PATH_MAX];
    loc_state s = locate(v, rel, 1, path, sizeof path, NULL);
    if (missing)
        *missing = s == LOC_MISSING;
    if (s != LOC_OK)
        return NULL;
    DIR *d = opendir(path);
    if (!d)
        problem(v, rel, "cannot be listed: %s", strerror(errno));
    return d;
}

/* A temporary file of an atomic write ("<name>.part-<pid>-<n>", core/fileio.c). */
static int is_temporary(const char *name)
{
    return strstr(name, ".part-") != NULL;
}

static int is_dot(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..");
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                       */
/* ---------------------------------------------------------------------------------------- */
/* An integer-valued JSON number, or 0 with *ok = 0. */
static int64_t json_int(const cJSON *item, int *ok)
{
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) ||
        fabs(item->valuedouble) > 9007199254740992.0) {
        *ok = 0;
        return 0;
    }
    *ok = 1;
    return (int64_t)item->valuedouble;
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static const cJSON *json_get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Deepest nesting of objects and arrays in @p text (strings skipped). */
static int json_depth(const char *text, size_t len)
{
    int depth = 0, worst = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > worst)
                worst = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return worst;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice in one object of @p node, or NULL. cJSON keeps both and
 * returns the first, Python's json the last: readers would disagree on the value. Recursion
 * is bounded by JSON_MAX_DEPTH (checked before parsing). */
static const char *duplicate_key(const cJSON *node, int *oom)
{
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
        return NULL;
    const cJSON *c;
    if (cJSON_IsObject(node)) {
        size_t n = 0, k = 0;
        cJSON_ArrayForEach(c, node) n++;
        if (n > 1) {
            const char **keys = malloc(n * sizeof *keys);
            if (!keys) {
                *oom = 1;
                return NULL;
            }
            cJSON_ArrayForEach(c, node) keys[k++] = c->string ? c->string : "";
            qsort(keys, n, sizeof *keys, cmp_cstr);
            const char *dup = NULL;
            for (size_t i = 1; i < n && !dup; i++)
                if (!strcmp(keys[i - 1], keys[i]))
                    dup = keys[i];
            free(keys);
            if (dup)
                return dup;
        }
    }
    cJSON_ArrayForEach(c, node)
    {
        const char *dup = duplicate_key(c, oom);
        if (dup || *oom)
            return dup;
    }
    return NULL;
}

/* Read and parse a JSON document; problems are reported. NULL if absent or broken. @p count:
 * add it to files_checked (a file peeked at before its own check passes 0). @p text_out, if
 * not NULL, receives the text (free()) of a document that parsed. */
static cJSON *load_json_text(vctx *v, const char *rel, int report_missing, int count,
                             size_t max_bytes, char **text_out)
{
    char path[RSY_PATH_MAX], *text = NULL;
    size_t len = 0;
    if (text_out)
        *text_out = NULL;
    loc_state s = locate(v, rel, 0, path, sizeof path, NULL);
    if (s != LOC_OK) {
        if (s == LOC_MISSING && report_missing && mark_once(v, rel, SEEN_MISSING))
            problem(v, rel, "missing");
        return NULL;
    }
    rsy_status rc = rsy_file_read_all(path, max_bytes, &text, &len);
    if (rc == RSY_ELIMIT) {
        problem(v, rel, "larger than %zu MiB; not read", max_bytes >> 20);
        return NULL;
    }
    if (rc != RSY_OK) {
        problem(v, rel, "cannot be read");
        return NULL;
    }
    v->rep->files_checked += count;
    cJSON *doc = NULL;
    int depth = 0, oom = 0;
    const char *dup;
    if (strlen(text) != len) {
        problem(v, rel, "holds a NUL byte at offset %zu (not JSON text)", strlen(text));
    } else if ((depth = json_depth(text, len)) > JSON_MAX_DEPTH) {
        problem(v, rel, "JSON nested deeper than %d levels; not parsed", JSON_MAX_DEPTH);
    } else {
        const char *end = NULL;
        doc = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
        if (!doc) {
            size_t off = end && end >= text ? (size_t)(end - text) : 0, line = 1;
            for (size_t i = 0; i < off && i < len; i++)
                line += text[i] == '\n';
            problem(v, rel, "malformed JSON near byte %zu (line %zu)", off, line);
        } else if (!cJSON_IsObject(doc)) {
            problem(v, rel, "top level is not a JSON object");
            cJSON_Delete(doc);
            doc = NULL;
        } else if ((dup = duplicate_key(doc, &oom)) != NULL) {
            problem(v, rel,
                    "key \"%.64s\" appears twice in one object (readers disagree on "
                    "which one counts)",
                    dup);
        } else if (oom) {
            problem(v, rel, "out of memory checking for duplicate keys");
        }
    }
    if (doc && text_out)
        *text_out = text;
    else
        free(text);
    return doc;
}

static cJSON *load_json(vctx *v, const char *rel, int report_missing, int count, size_t max_bytes)
{
    return load_json_text(v, rel, report_missing, count, max_bytes, NULL);
}

/* 1 if some number token of @p text has a fraction or an exponent ("1.0", "1e0"): Python's
 * json reads those as float, and nnDetection needs integers. */
static int json_has_nonint_number(const char *text)
{
    int in_str = 0;
    for (const char *p = text; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
        } else if ((*p >= '0' && *p <= '9') || *p == '-') {
            for (; (*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
                   *p == 'E';
                 p++)
                if (*p == '.' || *p == 'e' || *p == 'E')
                    return 1;
            p--;
        }
    }
    return 0;
}

/* An object whose keys are "0".."n-1" (any order) with string values: the count, or -1. */
static int consecutive_string_map(const cJSON *obj, int max_n)
{
    if (!cJSON_IsObject(obj))
        return -1;
    int n = cJSON_GetArraySize(obj);
    if (n > max_n)
        return -1;
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        if (!json_str(obj, k))
            return -1;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Dictionaries: labels and channels                                                          */
/* ---------------------------------------------------------------------------------------- */
/* Parse a {"name": value} label object: needs "background": 0 and values 0..n-1 each once. */
static int parse_labels(vctx *v, const char *rel, const cJSON *labels)
{
    int seen[RSY_MAX_LABELS] = {0}, n = 0, bad = 0, ok;
    char names[RSY_MAX_LABELS][RSY_NAME_MAX];
    memset(names, 0, sizeof names);
    if (!cJSON_IsObject(labels)) {
        problem(v, rel, "\"labels\" missing or not an object");
        return 0;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        int64_t val = json_int(it, &ok);
        if (!ok || val < 0 || val >= RSY_MAX_LABELS) {
            problem(v, rel, "labels.%.64s: expected an integer label value in 0..%d", it->string,
                    RSY_MAX_LABELS - 1);
            bad = 1;
            continue;
        }
        if (seen[val]) {
            problem(v, rel, "labels.%.64s: value %lld used twice", it->string, (long long)val);
            bad = 1;
        }
        seen[val] = 1;
        snprintf(names[val], RSY_NAME_MAX, "%s", it->string);
        n++;
    }
    const cJSON *bg = json_get(labels, "background");
    if (!bg || json_int(bg, &ok) != 0 || !ok) {
        problem(v, rel, "labels: \"background\": 0 is required");
        bad = 1;
    }
    for (int i = 0; i < n && !bad; i++) {
        if (!seen[i]) {
            problem(v, rel, "labels: values are not consecutive from 0 (%d missing)", i);
            bad = 1;
        }
    }
    if (bad)
        return 0;
    v->n_labels = n;
    memcpy(v->label_names, names, sizeof names);
    return 1;
}

/* Parse a {"0": "T1w", ...} channel object: keys "0".."C-1", string values. */
static int parse_channels(vctx *v, const char *rel, const cJSON *ch, const char *key)
{
    if (!cJSON_IsObject(ch)) {
        problem(v, rel, "\"%s\" missing or not an object", key);
        return 0;
    }
    int n = cJSON_GetArraySize(ch);
    if (n < 1 || n > MAX_CHANNELS) {
        problem(v, rel, "%s: %d channels (need 1..%d)", key, n, MAX_CHANNELS);
        return 0;
    }
    for (int c = 0; c < n; c++) {
        char k[16];
        snprintf(k, sizeof k, "%d", c);
        const char *name = json_str(ch, k);
        if (!name) {
            problem(v, rel, "%s: key \"%s\" missing or not a string (keys must be \"0\"..\"%d\")",
                    key, k, n - 1);
            return 0;
        }
        snprintf(v->channel_names[c], RSY_NAME_MAX, "%s", name);
    }
    v->n_channels = n;
    return 1;
}

/* The perilesional flags of a "labels_perilesional" list (declared, non-background names).
 * 0 (reported) if the list is missing or names an unknown label. */
static int perilesional_flags(vctx *v, const char *rel, const cJSON *owner,
                              unsigned char peri[RSY_MAX_LABELS])
{
    const cJSON *list = json_get(owner, "labels_perilesional"), *it;
    memset(peri, 0, RSY_MAX_LABELS);
    if (!cJSON_IsArray(list)) {
        problem(v, rel, "labels_perilesional missing or not an array of label names");
        return 0;
    }
    int ok = 1, idx = 0;
    cJSON_ArrayForEach(it, list)
    {
        int found = 0;
        for (int lab = 1; cJSON_IsString(it) && lab < v->n_labels; lab++) {
            if (strcmp(it->valuestring, v->label_names[lab]) == 0) {
                peri[lab] = 1;
                found = 1;
            }
        }
        if (!found) {
            problem(v, rel, "labels_perilesional[%d] is not a declared non-background label", idx);
            ok = 0;
        }
        idx++;
    }
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Dataset level: the nnU-Net folder                                                          */
/* ---------------------------------------------------------------------------------------- */
/* "<prefix>NNN_Name": NNN three digits, Name [A-Za-z0-9]+ (nnU-Net "Dataset", nnDetection
 * "Task"). */
static int numbered_name_ok(const char *s, const char *prefix)
{
    size_t p = strlen(prefix);
    if (strlen(s) >= 96 || strncmp(s, prefix, p) != 0)
        return 0;
    for (size_t i = p; i < p + 3; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    if (s[p + 3] != '_' || !s[p + 4])
        return 0;
    for (const char *c = s + p + 4; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

/* The one folder of DIR named "<prefix>NNN_Name" into @p out (96 bytes); 0 if none. */
static int find_numbered_dir(vctx *v, const char *prefix, const char *what, char *out)
{
    DIR *d = open_folder(v, ".", NULL);
    if (!d)
        return 0;
    struct dirent *ent;
    int found = 0;
    size_t p = strlen(prefix);
    while ((ent = readdir(d)) != NULL) {
        if (strncmp(ent->d_name, prefix, p) != 0 || ends_with(ent->d_name, ".h5") ||
            is_temporary(ent->d_name))
            continue;
        if (!numbered_name_ok(ent->d_name, prefix)) {
            problem(v, ent->d_name,
                    "%s folder name is not %sNNN_Name (NNN three digits, Name letters and "
                    "digits)",
                    what, prefix);
            continue;
        }
        if (found++) {
            problem(v, ent->d_name, "a second %s folder (one dataset per directory)", what);
            continue;
        }
        snprintf(out, 96, "%.95s", ent->d_name);
    }
    closedir(d);
    return found > 0;
}

static void find_nnunet_dir(vctx *v)
{
    const char *named = v->dsman ? json_str(v->dsman, "nnunet_dir") : NULL;
    if (named) {
        if (!numbered_name_ok(named, "Dataset")) {
            problem(v, RSY_EXPORT_MANIFEST,
                    "nnunet_dir \"%.96s\" is not of the form DatasetNNN_Name (NNN three digits)",
                    named);
            return;
        }
        snprintf(v->nnunet_dir, sizeof v->nnunet_dir, "%.95s", named);
        v->have_nnunet = 1;
        return;
    }
    v->have_nnunet = find_numbered_dir(v, "Dataset", "nnU-Net", v->nnunet_dir);
    if (!v->have_nnunet)
        problem(v, NULL, "no nnU-Net folder DatasetNNN_Name");
}

/* dataset.json (reference/formats.md, "nnU-Net v2"). */
static void check_nnunet_json(vctx *v)
{
    char rel[RSY_EXPORT_REL_MAX];
    snprintf(rel, sizeof rel, "%s/dataset.json", v->nnunet_dir);
    /* Only finish() writes it: a shard or an interrupted run need not have it. */
    v->nnjson = load_json(v, rel, v->rep->complete, 1, RSY_EXPORT_JSON_MAX_BYTES);
    if (!v->nnjson)
        return;
    if (json_get(v->nnjson, "dataset"))
        problem(v, rel, "has a key \"dataset\", which switches nnU-Net to explicit file lists");
    parse_channels(v, rel, json_get(v->nnjson, "channel_names"), "channel_names");
    parse_labels(v, rel, json_get(v->nnjson, "labels"));
    const char *fe = json_str(v->nnjson, "file_ending");
    if (!fe || strcmp(fe, RSY_EXPORT_NII) != 0)
        problem(v, rel, "file_ending must be \"" RSY_EXPORT_NII "\"");
    int ok;
    int64_t nt = json_int(json_get(v->nnjson, "numTraining"), &ok);
    if (!ok)
        problem(v, rel, "numTraining missing or not an integer");
    else if (v->rep->complete && (nt < 0 || (size_t)nt != v->n_cases))
        problem(v, rel, "numTraining is %lld but the dataset has %zu cases", (long long)nt,
                v->n_cases);
}

/* ---------------------------------------------------------------------------------------- */
/* The cases                                                                                  */
/* ---------------------------------------------------------------------------------------- */
static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const vcase *)a)->id, ((const vcase *)b)->id);
}

static vcase *find_case(const vctx *v, const char *id)
{
    if (!v->n_cases)
        return NULL;
    vcase key;
    memset(&key, 0, sizeof key);
    key.id = (char *)(uintptr_t)id; /* only read by cmp_case */
    return bsearch(&key, v->cases, v->n_cases, sizeof *v->cases, cmp_case);
}

/* The case index of "case_NNNN" (at least 4 digits, no sign), or -1. */
static int64_t case_index_of(const char *id)
{
    if (strncmp(id, "case_", 5) != 0)
        return -1;
    const char *d = id + 5;
    size_t n = strlen(d);
    if (n < 4 || n > 15)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        x = 10 * x + (d[i] - '0');
    }
    char back[32];
    rsy_export_case_id((size_t)x, back, sizeof back);
    return strcmp(back, id) == 0 ? x : -1; /* "case_00001" is not the id of case 1 */
}

static rsy_status add_case(vctx *v, const char *id, int list_pos, const cJSON *entry)
{
    if (v->n_cases == v->cap_cases) {
        size_t cap = v->cap_cases ? 2 * v->cap_cases : 64;
        vcase *grown = realloc(v->cases, cap * sizeof *grown);
        if (!grown)
            return RSY_ENOMEM;
        v->cases = grown;
        v->cap_cases = cap;
    }
    vcase *c = &v->cases[v->n_cases];
    memset(c, 0, sizeof *c);
    size_t n = strlen(id) + 1;
    if (!(c->id = malloc(n)))
        return RSY_ENOMEM;
    memcpy(c->id, id, n);
    c->index = case_index_of(id);
    c->list_pos = list_pos;
    c->entry = entry;
    c->msd_pos = -1;
    v->n_cases++;
    return RSY_OK;
}

/* Sort the cases by id and report (and drop) ids listed twice. */
static void sort_cases(vctx *v)
{
    if (v->n_cases > 1)
        qsort(v->cases, v->n_cases, sizeof *v->cases, cmp_case);
    size_t w = 0;
    for (size_t i = 0; i < v->n_cases; i++) {
        if (w > 0 && !strcmp(v->cases[w - 1].id, v->cases[i].id)) {
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d]: case id %s listed twice",
                    v->cases[i].list_pos, v->cases[i].id);
            free(v->cases[i].id);
            continue;
        }
        v->cases[w++] = v->cases[i];
    }
    v->n_cases = w;
}

/* "shard": {"index": K, "count": N, "n_cases": M} of a shard manifest (docs/manifest.md,
 * "Shard manifest"); reported if malformed. n_cases and effective.cases of the document are
 * the whole dataset's count. */
static void parse_shard(vctx *v)
{
    const cJSON *sh = json_get(v->dsman, "shard");
    if (!sh || cJSON_IsNull(sh))
        return;
    int ok1, ok2, ok3;
    int64_t k = json_int(json_get(sh, "index"), &ok1), n = json_int(json_get(sh, "count"), &ok2);
    json_int(json_get(sh, "n_cases"), &ok3);
    if (!cJSON_IsObject(sh) || !ok1 || !ok2 || !ok3 || n < 2 || k < 0 || k >= n) {
        problem(v, RSY_EXPORT_MANIFEST,
                "\"shard\" must be {\"index\": K, \"count\": N, \"n_cases\": M} with "
                "0 <= K < N, N >= 2");
        return;
    }
    v->shard_index = k;
    v->shard_count = n;
    int ok;
    int64_t t = json_int(json_get(json_get(v->dsman, "effective"), "cases"), &ok);
    if (!ok || t < 0)
        problem(v, RSY_EXPORT_MANIFEST, "effective.cases missing or not a count");
    else
        v->total_cases = t;
}

/* The expected cases: raresynth.json's list when present, else every manifest present. Each
 * manifest file must belong to a listed case. */
static rsy_status collect_cases(vctx *v)
{
    rsy_status rc;
    if (v->dsman) {
        const cJSON *cases = json_get(v->dsman, "cases"), *c;
        if (!cJSON_IsArray(cases)) {
            problem(v, RSY_EXPORT_MANIFEST, "\"cases\" missing or not an array");
        } else {
            int idx = 0;
            cJSON_ArrayForEach(c, cases)
            {
                const char *id = json_str(c, "case_id");
                if (!id || !safe_id(id)) {
                    problem(v, RSY_EXPORT_MANIFEST,
                            "cases[%d].case_id missing or unsafe (need [A-Za-z0-9_-], no '/', "
                            "'.' or '..')",
                            idx);
                } else if ((rc = add_case(v, id, idx, c)) != RSY_OK) {
                    return rc;
                }
                idx++;
            }
            int ok;
            int64_t n = json_int(json_get(v->dsman, "n_cases"), &ok);
            if (v->shard_count) {
                int64_t held = json_int(json_get(json_get(v->dsman, "shard"), "n_cases"), &ok);
                if (held != idx)
                    problem(v, RSY_EXPORT_MANIFEST,
                            "shard.n_cases does not equal the %d cases listed", idx);
                n = json_int(json_get(v->dsman, "n_cases"), &ok);
                if (!ok || (v->total_cases >= 0 && n != v->total_cases))
                    problem(v, RSY_EXPORT_MANIFEST,
                            "n_cases must be the whole dataset's case count (effective.cases)");
            } else if (!ok || n != idx) {
                problem(v, RSY_EXPORT_MANIFEST, "n_cases does not equal the %d cases listed", idx);
            }
        }
    }
    const char *rel = RSY_EXPORT_MANIFEST_DIR;
    int missing = 0;
    DIR *d = open_folder(v, rel, &missing);
    if (!d) {
        if (missing && (v->dsman || path_exists(v, RSY_EXPORT_MARKER)))
            problem(v, rel, "manifest folder missing");
        sort_cases(v);
        return RSY_OK;
    }
    struct dirent *ent;
    rc = RSY_OK;
    while (rc == RSY_OK && (ent = readdir(d)) != NULL) {
        char stem[ID_MAX + 8];
        if (is_dot(ent->d_name))
            continue;
        size_t n = strlen(ent->d_name);
        if (is_temporary(ent->d_name) && !v->dsman) {
            note(v, rel, "partial file %s (a manifest being written when the run stopped)",
                 ent->d_name);
            v->partial_files++;
            continue;
        }
        if (!ends_with(ent->d_name, ".json") || n - 5 >= sizeof stem) {
            problem(v, rel, "unexpected file %.255s", ent->d_name);
            continue;
        }
        memcpy(stem, ent->d_name, n - 5);
        stem[n - 5] = '\0';
        if (!safe_id(stem))
            problem(v, rel, "manifest %.255s has an unsafe case id", ent->d_name);
        else if (!v->dsman)
            rc = add_case(v, stem, -1, NULL);
    }
    closedir(d);
    sort_cases(v);
    if (rc == RSY_OK && v->dsman) {
        /* Listed cases are known now: every manifest must belong to one. */
        if ((d = open_folder(v, rel, NULL)) != NULL) {
            while ((ent = readdir(d)) != NULL) {
                size_t n = strlen(ent->d_name);
                if (is_dot(ent->d_name) || !ends_with(ent->d_name, ".json") || n - 5 >= ID_MAX)
                    continue;
                char stem[ID_MAX];
                memcpy(stem, ent->d_name, n - 5);
                stem[n - 5] = '\0';
                if (safe_id(stem) && !find_case(v, stem))
                    problem(v, rel, "manifest %s belongs to no case listed in " RSY_EXPORT_MANIFEST,
                            ent->d_name);
            }
            closedir(d);
        }
    }
    return rc;
}

/* A shard holds exactly the cases i with i % count == index (of the run's effective.cases
 * when known). */
static void check_shard_cases(vctx *v)
{
    if (!v->shard_count)
        return;
    for (size_t i = 0; i < v->n_cases; i++) {
        const vcase *c = &v->cases[i];
        if (c->index < 0)
            problem(v, RSY_EXPORT_MANIFEST, "case %s: not a case_NNNN id, so not in any shard",
                    c->id);
        else if (c->index % v->shard_count != v->shard_index ||
                 (v->total_cases >= 0 && c->index >= v->total_cases))
            problem(v, RSY_EXPORT_MANIFEST,
                    "case %s does not belong to shard %lld of %lld (cases i with i %% %lld == "
                    "%lld%s)",
                    c->id, (long long)v->shard_index, (long long)v->shard_count,
                    (long long)v->shard_count, (long long)v->shard_index,
                    v->total_cases >= 0 ? ", i < effective.cases" : "");
    }
    if (v->total_cases < 0)
        return;
    /* effective.cases comes from the file: compare counts before walking the indices. */
    int64_t want = v->total_cases > v->shard_index
                       ? (v->total_cases - v->shard_index + v->shard_count - 1) / v->shard_count
                       : 0;
    if (want != (int64_t)v->n_cases) {
        problem(v, RSY_EXPORT_MANIFEST,
                "shard %lld of %lld of a %lld-case run should hold %lld cases, it lists %zu",
                (long long)v->shard_index, (long long)v->shard_count, (long long)v->total_cases,
                (long long)want, v->n_cases);
        return;
    }
    for (int64_t i = v->shard_index; i < v->total_cases; i += v->shard_count) {
        char id[32];
        rsy_export_case_id((size_t)i, id, sizeof id);
        if (!find_case(v, id))
            problem(v, RSY_EXPORT_MANIFEST, "shard %lld of %lld lacks case %s",
                    (long long)v->shard_index, (long long)v->shard_count, id);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Folders: every file belongs to a case                                                      */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    FK_IMAGES,       /* "<id>_CCCC.nii.gz", CCCC below the channel count */
    FK_NII,          /* "<id>.nii.gz" */
    FK_NNDET_LABELS, /* "<id>.nii.gz" and "<id>.json" */
    FK_PNG           /* "<id>.png" */
} folder_kind;

/* The case id of file @p name in a folder of kind @p k into @p id (ID_MAX + 8 bytes); 0 if
 * the name does not fit the pattern. */
static int file_case_id(const vctx *v, const char *name, folder_kind k, char *id)
{
    const char *suffix = k == FK_PNG ? ".png" : RSY_EXPORT_NII;
    if (k == FK_NNDET_LABELS && ends_with(name, ".json"))
        suffix = ".json";
    size_t n = strlen(name), m = strlen(suffix);
    if (!ends_with(name, suffix) || n <= m || n - m >= ID_MAX + 8)
        return 0;
    size_t stem_len = n - m;
    memcpy(id, name, stem_len);
    id[stem_len] = '\0';
    if (k == FK_IMAGES) {
        int ok = stem_len > 5 && id[stem_len - 5] == '_';
        for (size_t i = stem_len - 4; ok && i < stem_len; i++)
            ok = id[i] >= '0' && id[i] <= '9';
        if (!ok)
            return 0;
        int ch = atoi(id + stem_len - 4);
        id[stem_len - 5] = '\0';
        if (v->n_channels >= 0 && ch >= v->n_channels)
            return 0;
    }
    return safe_id(id);
}

/* Every entry of folder @p sub must be a file of a case of the dataset. In an interrupted run
 * (no raresynth.json) files of a case without a manifest, and temporaries, are partial: they
 * are listed, not counted (generate --resume removes them). */
static void check_folder(vctx *v, const char *sub, folder_kind k, int required)
{
    int missing = 0;
    DIR *d = open_folder(v, sub, &missing);
    if (!d) {
        if (missing && required)
            problem(v, sub, "folder missing");
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *name = ent->d_name;
        char id[ID_MAX + 8];
        if (is_dot(name))
            continue;
        int pattern = file_case_id(v, name, k, id);
        if (pattern && find_case(v, id))
            continue;
        if (!v->dsman && (is_temporary(name) || pattern)) {
            note(v, sub,
                 is_temporary(name) ? "partial file %.255s (being written when the run stopped)"
                                    : "partial file %.255s (its case has no manifest: it was "
                                      "being written when the run stopped)",
                 name);
            v->partial_files++;
        } else if (is_temporary(name)) {
            problem(v, sub, "temporary file %.255s left over by a failed write", name);
        } else {
            problem(v, sub, "stray file %.255s (not a file of any case of this dataset%s)", name,
                    k == FK_IMAGES ? "; nnU-Net takes every *.nii.gz here as an image" : "");
        }
    }
    closedir(d);
}

/* Top level and dataset-level folders: temporaries of atomic writes; DIR/.staging. */
static void check_leftovers(vctx *v, const char *sub)
{
    DIR *d = open_folder(v, sub, NULL);
    if (!d)
        return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!is_temporary(ent->d_name))
            continue;
        char rel[RSY_EXPORT_REL_MAX];
        snprintf(rel, sizeof rel, "%s/%.200s", sub, ent->d_name);
        if (!v->rep->complete && !v->shard_count) {
            note(v, rel, "partial file (being written when the run stopped)");
            v->partial_files++;
        } else {
            problem(v, rel, "temporary file left over by a failed write");
        }
    }
    closedir(d);
}

/* DIR/.staging/<case>/...: files of cases being written. */
static void check_staging(vctx *v)
{
    const char *rel = RSY_EXPORT_STAGING_DIR;
    if (!path_exists(v, rel))
        return;
    if (v->dsman) {
        problem(v, rel, "left over in a finished dataset (files of a failed case)");
        return;
    }
    DIR *d = open_folder(v, rel, NULL);
    if (!d)
        return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (is_dot(ent->d_name))
            continue;
        char sub[RSY_EXPORT_REL_MAX];
        snprintf(sub, sizeof sub, "%s/%.200s", rel, ent->d_name);
        note(v, sub, "partial case (being written when the run stopped)");
        v->partial_files++;
    }
    closedir(d);
}

/* ---------------------------------------------------------------------------------------- */
/* NIfTI files                                                                                */
/* ---------------------------------------------------------------------------------------- */
static int datatype_size(int code)
{
    for (size_t i = 0; i < sizeof datatype_bytes / sizeof datatype_bytes[0]; i++)
        if (datatype_bytes[i].code == code)
            return datatype_bytes[i].bytes;
    return 0;
}

static uint16_t swap16(uint16_t x)
{
    return (uint16_t)((x >> 8) | (x << 8));
}

static uint32_t swap32(uint32_t x)
{
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

/* Before a volume is read: do the voxels its header declares fit the file? A header that
 * claims more than the file can hold (deflate expands at most DEFLATE_MAX_RATIO:1) or more
 * than VOLUME_MAX_BYTES is reported and the file not read, so no allocation follows a
 * hostile header. Anything else wrong with the header is left to the reader's messages. */
static int volume_size_ok(vctx *v, const char *rel, const char *path, uint64_t file_bytes)
{
    unsigned char h[348];
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return 1; /* the reader reports why */
    int got = gzread(gz, h, sizeof h);
    int plain = gzdirect(gz);
    gzclose(gz);
    if (got != (int)sizeof h)
        return 1;
    uint32_t size;
    memcpy(&size, h, 4);
    int swapped = size != 348;
    if (swapped && swap32(size) != 348)
        return 1;
    int16_t dim[8], datatype;
    memcpy(dim, h + 40, sizeof dim);
    memcpy(&datatype, h + 70, 2);
    if (swapped) {
        for (int i = 0; i < 8; i++)
            dim[i] = (int16_t)swap16((uint16_t)dim[i]);
        datatype = (int16_t)swap16((uint16_t)datatype);
    }
    int bytes = datatype_size(datatype);
    if (dim[0] < 1 || dim[0] > 7 || bytes == 0)
        return 1;
    uint64_t nvox = 1;
    for (int i = 1; i <= dim[0]; i++) {
        if (dim[i] < 1)
            return 1;
        nvox *= (uint64_t)dim[i]; /* < 2^32 · 32767 before the break: no overflow */
        if (nvox > VOLUME_MAX_BYTES)
            break;
    }
    /* The reader allocates the volume (at most 4 bytes a voxel) and, for a converted type, the
     * raw voxels too. */
    uint64_t raw = nvox * (uint64_t)bytes, need = raw + nvox * 4;
    uint64_t can_hold =
        plain ? file_bytes : file_bytes * DEFLATE_MAX_RATIO + (uint64_t)VOLUME_SLACK_BYTES;
    if (nvox > VOLUME_MAX_BYTES || need > VOLUME_MAX_BYTES) {
        problem(v, rel,
                "header declares %d x %d x %d voxels (dim[0] %d), beyond the %llu GiB validate "
                "reads; not read",
                dim[1], dim[0] > 1 ? dim[2] : 1, dim[0] > 2 ? dim[3] : 1, dim[0],
                (unsigned long long)(VOLUME_MAX_BYTES >> 30));
        return 0;
    }
    if (raw > can_hold) {
        problem(v, rel,
                "header declares %d x %d x %d voxels of %d bytes (%llu bytes), more than this "
                "%llu-byte file can hold: truncated or corrupt; not read",
                dim[1], dim[0] > 1 ? dim[2] : 1, dim[0] > 2 ? dim[3] : 1, bytes,
                (unsigned long long)raw, (unsigned long long)file_bytes);
        return 0;
    }
    return 1;
}

/* descrip must be "raresynth" or "raresynth <version>" and nothing else (de-identification). */
static int descrip_ok(const char *d)
{
    if (strncmp(d, "raresynth", 9) != 0)
        return 0;
    if (d[9] == '\0')
        return 1;
    if (d[9] != ' ' || !d[10])
        return 0;
    for (const char *p = d + 10; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '.' || *p == '-' || *p == '+'))
            return 0;
    return 1;
}

static void check_header(vctx *v, const char *rel, const rsy_nifti_info *h, const rsy_volume *vol,
                         int label)
{
    if (h->sizeof_hdr != 348)
        problem(v, rel, "sizeof_hdr is %d (need 348)", h->sizeof_hdr);
    if (memcmp(h->magic, "n+1", 4) != 0)
        problem(v, rel, "magic is not \"n+1\" (single-file NIfTI-1)");
    if (h->vox_offset != 352.0)
        problem(v, rel, "vox_offset is %g (need 352)", h->vox_offset);
    if (h->num_ext != 0)
        problem(v, rel, "has %d header extension(s) (need none)", h->num_ext);
    if (h->qform_code != 1 || h->sform_code != 1)
        problem(v, rel, "qform_code %d, sform_code %d (need both 1)", h->qform_code, h->sform_code);
    double worst = 0.0;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            worst = fmax(worst, fabs(h->qto_xyz[r][c] - h->sto_xyz[r][c]));
    if (!(worst <= QS_TOL_MM))
        problem(v, rel, "qform and sform transforms differ (by up to %g mm)", worst);
    if (!h->xyz_units_mm)
        problem(v, rel, "spatial units are not millimetres");
    if (fabs(h->qfac) != 1.0)
        problem(v, rel, "pixdim[0] (qfac) is %g (need 1 or -1)", h->qfac);
    for (int a = 1; a <= 3; a++)
        if (!(h->pixdim[a] > 0.0))
            problem(v, rel, "pixdim[%d] is %g (need > 0)", a, h->pixdim[a]);
    if (!descrip_ok(h->descrip))
        problem(v, rel, "descrip \"%s\" holds more than \"raresynth <version>\"", h->descrip);
    if (h->aux_file[0] || h->intent_name[0] || h->db_name[0])
        problem(v, rel, "aux_file, intent_name and db_name must be empty");

    if (!label) {
        if (h->datatype != 16 && h->datatype != 4)
            problem(v, rel, "image datatype %d (need float32 or int16)", h->datatype);
        return;
    }
    int integer = 0;
    for (size_t i = 0; i < sizeof integer_datatypes / sizeof integer_datatypes[0]; i++)
        integer |= h->datatype == integer_datatypes[i];
    if (!integer)
        problem(v, rel, "label datatype %d is not an integer type", h->datatype);
    if (h->intent_code != 1002)
        problem(v, rel, "intent_code %d (need 1002, NIFTI_INTENT_LABEL)", h->intent_code);
    if (h->scl_slope != 1.0 && h->scl_slope != 0.0)
        problem(v, rel, "scl_slope %g (need 1 or 0)", h->scl_slope);
    if (h->scl_inter != 0.0)
        problem(v, rel, "scl_inter %g (need 0)", h->scl_inter);
    double mx = rsy__volume_max(vol);
    if (h->cal_min != 0.0 || h->cal_max != mx)
        problem(v, rel, "cal_min %g, cal_max %g (need 0 and the largest label, %g)", h->cal_min,
                h->cal_max, mx);
}

/* Read one NIfTI file of a case and check its header (into @p info if not NULL). NULL if
 * missing, hostile or unreadable (reported, as "missing (@p what)" when absent). */
static rsy_volume *read_volume(vctx *v, const char *rel, int label, const char *what,
                               rsy_nifti_info *info)
{
    char path[RSY_PATH_MAX];
    rsy_nifti_info local;
    rsy_nifti_info *inf = info ? info : &local;
    rsy_volume *vol = NULL;
    struct stat st;
    loc_state s = locate(v, rel, 0, path, sizeof path, &st);
    if (s == LOC_MISSING)
        missing_once(v, rel, "%s", what);
    if (s != LOC_OK || !volume_size_ok(v, rel, path, (uint64_t)st.st_size))
        return NULL;
    rsy_status rc = rsy_volume_read_nifti(&vol, inf, path);
    if (rc != RSY_OK) {
        problem(v, rel, "cannot be read as NIfTI-1 (%s)%s", what,
                rc == RSY_ENOMEM ? ": out of memory" : "");
        return NULL;
    }
    v->rep->files_checked++;
    check_header(v, rel, inf, vol, label);
    return vol;
}

static void check_finite(vctx *v, const char *rel, const rsy_volume *vol)
{
    if (vol->dtype != RSY_DTYPE_FLOAT32)
        return;
    size_t n = rsy_geometry_nvox(&vol->geom), bad = 0, first = 0;
    const float *x = vol->data;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) && bad++ == 0)
            first = i;
    }
    if (bad)
        problem(v, rel, "%zu voxels are NaN or infinite (first at voxel %zu)", bad, first);
}

static void check_label_values(vctx *v, const char *rel, const rsy_volume *vol)
{
    if (v->n_labels < 1)
        return;
    size_t n = rsy_geometry_nvox(&vol->geom), bad = 0;
    double first = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = rsy__volume_get(vol, i);
        if ((x < 0.0 || x >= v->n_labels || x != floor(x)) && bad++ == 0)
            first = x;
    }
    if (bad)
        problem(v, rel,
                "label value %g is not declared in dataset.json (declared 0..%d): "
                "%zu voxels",
                first, v->n_labels - 1, bad);
}

/* ---------------------------------------------------------------------------------------- */
/* Checksums                                                                                  */
/* ---------------------------------------------------------------------------------------- */
/* The entry of @p rel in this case's registry, created if new; -1 if out of memory. */
static long entry_of(vctx *v, const char *rel)
{
    for (size_t i = 0; i < v->n_hashes; i++)
        if (!strcmp(v->hashes[i].rel, rel))
            return (long)i;
    if (v->n_hashes == v->cap_hashes) {
        size_t cap = v->cap_hashes ? 2 * v->cap_hashes : 32;
        hashed *grown = realloc(v->hashes, cap * sizeof *grown);
        if (!grown)
            return -1;
        v->hashes = grown;
        v->cap_hashes = cap;
    }
    hashed *h = &v->hashes[v->n_hashes];
    memset(h, 0, sizeof *h);
    snprintf(h->rel, sizeof h->rel, "%s", rel);
    return (long)v->n_hashes++;
}

/* 1 the first time @p what is reported about @p rel in this case, 0 after. */
static int mark_once(vctx *v, const char *rel, unsigned what)
{
    long i = entry_of(v, rel);
    if (i < 0)
        return 1;
    if (v->hashes[i].seen & what)
        return 0;
    v->hashes[i].seen |= what;
    return 1;
}

/* The index in v->hashes of @p rel with its SHA-256, device and inode, hashed once per case;
 * -1 if the file is missing (not reported), hostile or unreadable (reported). An index, not a
 * pointer: the registry may grow (realloc) at the next call. */
static long file_hash(vctx *v, const char *rel)
{
    long i = entry_of(v, rel);
    if (i < 0)
        return -1;
    if (v->hashes[i].hashed)
        return v->hashes[i].ok ? i : -1;
    v->hashes[i].hashed = 1;
    char path[RSY_PATH_MAX], hex[65];
    struct stat st;
    if (locate(v, rel, 0, path, sizeof path, &st) != LOC_OK) /* may grow the registry */
        return -1;
    if (rsy_sha256_file(path, hex) != RSY_OK) {
        bad_path(v, rel, "cannot be read for its checksum");
        return -1;
    }
    hashed *h = &v->hashes[i];
    memcpy(h->hex, hex, sizeof hex);
    h->ok = 1;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    return i;
}

static void missing_once(vctx *v, const char *rel, const char *fmt, ...)
{
    if (!mark_once(v, rel, SEEN_MISSING))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    problem(v, rel, "missing (%s)", msg);
}

/* Is @p rel byte-identical to @p src (same inode, i.e. a hard link, or same SHA-256)? Reports
 * a difference; missing files are the caller's to report. */
static void check_identical(vctx *v, const char *rel, const char *src, const char *layout)
{
    long ia = file_hash(v, rel), ib = file_hash(v, src);
    if (ia < 0 || ib < 0)
        return;
    const hashed *a = &v->hashes[ia], *b = &v->hashes[ib];
    if ((a->dev == b->dev && a->ino == b->ino) || !strcmp(a->hex, b->hex))
        return;
    problem(v, rel,
            "differs from %s (the %s layout must hold the same bytes: a hard link or a "
            "copy)",
            src, layout);
}

/* The entries {"path": ..., "sha256": ...} found under @p node (objects and arrays, to a
 * small depth), in document order. */
typedef void (*listed_fn)(vctx *v, const char *owner, const cJSON *entry, void *ctx);

static void walk_listed(vctx *v, const char *owner, const cJSON *node, int depth, listed_fn fn,
                        void *ctx)
{
    if (depth > 6 || (!cJSON_IsObject(node) && !cJSON_IsArray(node)))
        return;
    if (cJSON_IsObject(node) && json_get(node, "path")) {
        fn(v, owner, node, ctx);
        return;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, node) walk_listed(v, owner, c, depth + 1, fn, ctx);
}

/* Every file a manifest lists: a safe relative path, present, with the recorded SHA-256.
 * @p ctx counts the entries: a case has at most 3 files a channel plus a few (the writer's
 * plan), so past MAX_LISTED the list is crafted and the rest is not examined (the per-case
 * registry is searched linearly). */
#define MAX_LISTED 1024
static void check_listed_entry(vctx *v, const char *owner, const cJSON *entry, void *ctx)
{
    int *n = ctx;
    if (++*n > MAX_LISTED) {
        if (*n == MAX_LISTED + 1)
            problem(v, owner, "lists more than %d files; the rest are not checked", MAX_LISTED);
        return;
    }
    const char *p = json_str(entry, "path");
    const char *want = json_str(entry, "sha256");
    if (!p || !rel_safe(p)) {
        problem(v, owner,
                "lists the path \"%.128s\", which is not a relative path inside the dataset "
                "(no leading '/', no '..')",
                p ? p : "(not a string)");
        return;
    }
    if (!path_exists(v, p)) {
        missing_once(v, p, "listed in %s", owner);
        return;
    }
    long i = file_hash(v, p);
    if (i < 0)
        return;
    if (!want)
        problem(v, owner, "files: no SHA-256 recorded for %s", p);
    else if (strcmp(want, v->hashes[i].hex) != 0) /* reported by check_case_files() */
        v->hashes[i].sha_bad |= strcmp(owner, RSY_EXPORT_MANIFEST) == 0 ? 2 : 1;
}

/* 1 if a manifest lists @p rel among its files. */
typedef struct find_ctx {
    const char *rel;
    int found, seen;
} find_ctx;

static void find_listed_entry(vctx *v, const char *owner, const cJSON *entry, void *ctx)
{
    (void)v;
    (void)owner;
    find_ctx *f = ctx;
    if (++f->seen > MAX_LISTED)
        return;
    const char *p = json_str(entry, "path");
    f->found |= p && !strcmp(p, f->rel);
}

static int lists(vctx *v, const cJSON *files, const char *rel)
{
    find_ctx f = {rel, 0, 0};
    walk_listed(v, "", files, 0, find_listed_entry, &f);
    return f.found;
}

/* ---------------------------------------------------------------------------------------- */
/* Lesion records                                                                             */
/* ---------------------------------------------------------------------------------------- */
typedef struct lctx {
    vctx *v;
    const char *manrel;
    int index, id;
} lctx;

static void cmp_int(lctx *l, const char *key, const cJSON *item, int64_t measured)
{
    int ok;
    int64_t got = json_int(item, &ok);
    if (!ok)
        problem(l->v, l->manrel, "lesions[%d] (instance %d): %s missing or not an integer",
                l->index, l->id, key);
    else if (got != measured)
        problem(l->v, l->manrel,
                "lesions[%d] (instance %d): %s is %lld in the manifest, %lld measured from the "
                "voxels",
                l->index, l->id, key, (long long)got, (long long)measured);
}

static int close_enough(double a, double b)
{
    return fabs(a - b) <= REL_TOL * fmax(fabs(a), fabs(b)) + ABS_TOL;
}

static void cmp_num(lctx *l, const char *key, const cJSON *item, double measured)
{
    if (!cJSON_IsNumber(item))
        problem(l->v, l->manrel, "lesions[%d] (instance %d): %s missing or not a number", l->index,
                l->id, key);
    else if (!close_enough(item->valuedouble, measured))
        problem(l->v, l->manrel,
                "lesions[%d] (instance %d): %s is %.9g in the manifest, %.9g measured from the "
                "voxels",
                l->index, l->id, key, item->valuedouble, measured);
}

static void cmp_vec(lctx *l, const cJSON *lesion, const char *key, const double *m, int n,
                    int integer)
{
    const cJSON *arr = json_get(lesion, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) {
        problem(l->v, l->manrel, "lesions[%d] (instance %d): %s missing or not %d numbers",
                l->index, l->id, key, n);
        return;
    }
    for (int i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s[%d]", key, i);
        if (integer)
            cmp_int(l, k, cJSON_GetArrayItem(arr, i), (int64_t)m[i]);
        else
            cmp_num(l, k, cJSON_GetArrayItem(arr, i), m[i]);
    }
}

static void compare_lesion(lctx *l, const cJSON *o, const rsy_lesion_record *r)
{
    vctx *v = l->v;
    double b0[3], b1[3], range[2] = {(double)r->slice_min, (double)r->slice_max};
    for (int a = 0; a < 3; a++) {
        b0[a] = (double)r->bbox_min[a];
        b1[a] = (double)r->bbox_max[a];
    }
    cmp_int(l, "voxel_count", json_get(o, "voxel_count"), r->voxel_count);
    cmp_num(l, "volume_mm3", json_get(o, "volume_mm3"), r->volume_mm3);
    cmp_int(l, "mass_voxel_count", json_get(o, "mass_voxel_count"), r->mass_voxel_count);
    cmp_num(l, "mass_volume_mm3", json_get(o, "mass_volume_mm3"), r->mass_volume_mm3);
    cmp_vec(l, o, "centroid_vox", r->centroid_vox, 3, 0);
    cmp_vec(l, o, "centroid_mm", r->centroid_mm, 3, 0);
    cmp_vec(l, o, "bbox_min_vox", b0, 3, 1);
    cmp_vec(l, o, "bbox_max_vox", b1, 3, 1);
    cmp_vec(l, o, "box_cccwhd_mm", r->box_cccwhd_mm, 6, 0);
    cmp_num(l, "long_axis_mm", json_get(o, "long_axis_mm"), r->long_axis_mm);
    cmp_num(l, "short_axis_mm", json_get(o, "short_axis_mm"), r->short_axis_mm);
    cmp_int(l, "key_slice", json_get(o, "key_slice"), r->key_slice);
    cmp_vec(l, o, "slice_range", range, 2, 1);
    cmp_num(l, "equivalent_diameter_mm", json_get(o, "equivalent_diameter_mm"),
            r->equivalent_diameter_mm);

    const cJSON *comp = json_get(o, "compartments"), *c;
    if (!cJSON_IsObject(comp)) {
        problem(v, l->manrel, "lesions[%d] (instance %d): compartments missing", l->index, l->id);
        return;
    }
    for (int lab = 1; lab < v->n_labels; lab++) {
        const cJSON *co = json_get(comp, v->label_names[lab]);
        if (r->label_voxels[lab] == 0 && !co)
            continue;
        char key[RSY_NAME_MAX + 32];
        snprintf(key, sizeof key, "compartments.%s.voxel_count", v->label_names[lab]);
        cmp_int(l, key, json_get(co, "voxel_count"), r->label_voxels[lab]);
    }
    cJSON_ArrayForEach(c, comp)
    {
        int known = 0;
        for (int lab = 1; lab < v->n_labels; lab++)
            known |= strcmp(c->string, v->label_names[lab]) == 0;
        if (!known)
            problem(v, l->manrel,
                    "lesions[%d] (instance %d): compartment \"%.64s\" is not a "
                    "declared label",
                    l->index, l->id, c->string);
    }
}

/* The instance map's lesions measured from the voxels (records[i] = instance i+1, n of them,
 * owned by the caller) and compared with the manifest's records. NULL if they cannot be
 * measured (reported). */
static rsy_lesion_record *check_lesions(vctx *v, const char *manrel, const cJSON *man,
                                        const char *instrel, const rsy_volume *inst,
                                        const rsy_volume *lab, int *n_out)
{
    *n_out = 0;
    if (inst->dtype != RSY_DTYPE_UINT16) {
        problem(v, instrel, "instance map is %s (need uint16)", rsy_dtype_name(inst->dtype));
        return NULL;
    }
    if (lab->dtype != RSY_DTYPE_UINT8 && lab->dtype != RSY_DTYPE_UINT16)
        return NULL; /* reported by the header check */
    const cJSON *lesions = man ? json_get(man, "lesions") : NULL, *o;
    unsigned char peri[RSY_MAX_LABELS];
    if (man && !cJSON_IsArray(lesions)) {
        problem(v, manrel, "\"lesions\" missing or not an array");
        man = NULL;
    }
    if (man && !perilesional_flags(v, manrel, man, peri))
        man = NULL;
    if (!man)
        memcpy(peri, v->peri, sizeof peri);
    int n_inst = (int)rsy__volume_max(inst);
    rsy_lesion_record *rec = n_inst ? calloc((size_t)n_inst, sizeof *rec) : NULL;
    unsigned char *seen = n_inst ? calloc((size_t)n_inst, 1) : NULL;
    if (n_inst && (!rec || !seen)) {
        problem(v, manrel, "out of memory measuring %d lesions", n_inst);
        free(seen);
        free(rec);
        return NULL;
    }
    if (rsy_export_measure_lesions(inst, lab, n_inst, peri, rec) != RSY_OK) {
        problem(v, instrel, "lesions cannot be measured (geometry differs from the label map)");
        free(seen);
        free(rec);
        return NULL;
    }
    if (man) {
        lctx l = {v, manrel, 0, 0};
        cJSON_ArrayForEach(o, lesions)
        {
            int ok;
            l.id = (int)json_int(json_get(o, "instance_id"), &ok);
            if (!ok || l.id < 1 || l.id > n_inst || rec[l.id - 1].voxel_count == 0) {
                problem(v, manrel, "lesions[%d]: instance %d has no voxel in %s", l.index, l.id,
                        instrel);
            } else if (seen[l.id - 1]) {
                problem(v, manrel, "lesions[%d]: instance %d recorded twice", l.index, l.id);
            } else {
                seen[l.id - 1] = 1;
                compare_lesion(&l, o, &rec[l.id - 1]);
            }
            l.index++;
        }
        for (int i = 0; i < n_inst; i++)
            if (rec[i].voxel_count > 0 && !seen[i])
                problem(v, instrel, "instance %d (%lld voxels) has no record in %s", i + 1,
                        (long long)rec[i].voxel_count, manrel);
    }
    free(seen);
    *n_out = n_inst;
    return rec;
}

/* The lesion's main label (docs/manifest.md, "MSD / MONAI"): the non-perilesional,
 * non-background label value holding most of its voxels (ties to the lower value); if it has
 * none, the same over the perilesional labels; 0 if it carries no non-background label. */
static int main_label(const vctx *v, const rsy_lesion_record *r, const unsigned char *peri)
{
    for (int pass = 0; pass < 2; pass++) {
        int best = 0;
        for (int lab = 1; lab < v->n_labels && lab < RSY_MAX_LABELS; lab++)
            if (peri[lab] == pass && r->label_voxels[lab] > 0 &&
                (best == 0 || r->label_voxels[lab] > r->label_voxels[best]))
                best = lab;
        if (best > 0)
            return best;
    }
    return 0;
}

/* The lesion's class for detection (MSD box_label, nnDetection instances): its main label
 * minus 1, i.e. 0-based over the non-background labels; 0 without a label. */
static int lesion_class(const vctx *v, const rsy_lesion_record *r, const unsigned char *peri)
{
    int m = main_label(v, r, peri);
    return m > 0 ? m - 1 : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* MSD / MONAI layout (reference/formats.md, "MSD / MONAI")                                    */
/* ---------------------------------------------------------------------------------------- */
/* A path of msd/dataset.json as the dataset-relative path MONAI opens (load_decathlon_datalist
 * joins it to the folder of dataset.json and normalises it): leading "./" dropped, then it
 * must be a safe relative path. 0 if it is not (absolute, "..", empty). */
static int msd_rel(const char *p, char *out, size_t n)
{
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (!rel_safe(p))
        return 0;
    return snprintf(out, n, "%s/%s", RSY_EXPORT_MSD_DIR, p) < (int)n;
}

static void check_msd_strings(vctx *v, const char *rel)
{
    static const char *const keys[] = {"name", "description", "reference", "licence", "release"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!json_str(v->msdjson, keys[i]))
            problem(v, rel, "\"%s\" missing or not a string", keys[i]);
    const char *tis = json_str(v->msdjson, "tensorImageSize");
    if (!tis || strcmp(tis, "3D") != 0)
        problem(v, rel, "tensorImageSize must be \"3D\" (one file per channel)");
    const char *bm = json_str(v->msdjson, "box_mode");
    if (!bm || strcmp(bm, MSD_BOX_MODE) != 0)
        problem(v, rel, "box_mode must be \"" MSD_BOX_MODE "\" (the boxes' MONAI mode)");
    const char *cs = json_str(v->msdjson, "coordinate_system");
    if (!cs || !strstr(cs, "RAS"))
        problem(v, rel, "coordinate_system must state RAS (the boxes are in RAS+ world mm)");
}

/* The dictionaries of msd/dataset.json: modality {"0": name} equal to the channels, labels
 * {"0": "background", "1": name} the reverse of nnU-Net's. */
static void check_msd_dictionaries(vctx *v, const char *rel)
{
    const cJSON *mod = json_get(v->msdjson, "modality");
    int nm = consecutive_string_map(mod, MAX_CHANNELS);
    if (nm < 1)
        problem(v, rel, "modality must be {\"0\": name, ...} with consecutive string keys");
    else if (v->n_channels >= 0 && nm != v->n_channels)
        problem(v, rel, "modality has %d channels, the dataset %d", nm, v->n_channels);
    else
        for (int c = 0; c < nm && v->n_channels >= 0; c++) {
            char k[16];
            snprintf(k, sizeof k, "%d", c);
            if (strcmp(json_str(mod, k), v->channel_names[c]) != 0)
                problem(v, rel, "modality.%s is \"%.64s\", channel %d is \"%s\"", k,
                        json_str(mod, k), c, v->channel_names[c]);
        }
    const cJSON *lab = json_get(v->msdjson, "labels");
    int nl = consecutive_string_map(lab, RSY_MAX_LABELS);
    if (nl < 1 || strcmp(json_str(lab, "0"), "background") != 0)
        problem(v, rel,
                "labels must be {\"0\": \"background\", \"1\": name, ...} (value -> name, "
                "consecutive string keys)");
    else if (v->n_labels >= 0 && nl != v->n_labels)
        problem(v, rel, "labels has %d entries, the dataset %d", nl, v->n_labels);
    else
        for (int l = 0; l < nl && v->n_labels >= 0; l++) {
            char k[16];
            snprintf(k, sizeof k, "%d", l);
            if (strcmp(json_str(lab, k), v->label_names[l]) != 0)
                problem(v, rel, "labels.%s is \"%.64s\", label value %d is \"%s\"", k,
                        json_str(lab, k), l, v->label_names[l]);
        }
}

/* box_labels {"0": name, ...}: the box classes, the non-background labels in value order. */
static void check_msd_box_labels(vctx *v, const char *rel)
{
    const cJSON *bl = json_get(v->msdjson, "box_labels");
    int n = consecutive_string_map(bl, RSY_MAX_LABELS);
    if (n < 0) {
        problem(v, rel, "box_labels must be {\"0\": class name, ...} with consecutive string keys");
        return;
    }
    if (v->n_labels < 1)
        return;
    if (n != v->n_labels - 1) {
        problem(v, rel, "box_labels has %d classes, the dataset %d non-background labels", n,
                v->n_labels - 1);
        return;
    }
    for (int l = 0; l < n; l++) {
        char k[16];
        snprintf(k, sizeof k, "%d", l);
        if (strcmp(json_str(bl, k), v->label_names[l + 1]) != 0)
            problem(v, rel, "box_labels.%s is \"%.64s\", class %d is label \"%s\"", k,
                    json_str(bl, k), l, v->label_names[l + 1]);
    }
}

/* msd/dataset.json: keys and types, the training list against the cases. */
static void check_msd_dataset(vctx *v)
{
    char rel[RSY_EXPORT_REL_MAX];
    if (!path_exists(v, RSY_EXPORT_MSD_DIR))
        return;
    v->have_msd = 1;
    snprintf(rel, sizeof rel, "%s/dataset.json", RSY_EXPORT_MSD_DIR);
    v->msdjson = load_json(v, rel, v->rep->complete, 1, RSY_EXPORT_JSON_MAX_BYTES);
    if (!v->msdjson)
        return;
    check_msd_strings(v, rel);
    check_msd_dictionaries(v, rel);
    check_msd_box_labels(v, rel);
    const cJSON *test = json_get(v->msdjson, "test");
    int ok;
    if (test && (!cJSON_IsArray(test) || cJSON_GetArraySize(test) == 0))
        problem(v, rel,
                "\"test\" is empty or not a list: an empty test list crashes MONAI's "
                "DecathlonDataset; leave the key out");
    const cJSON *nts = json_get(v->msdjson, "numTest");
    if (nts) {
        int64_t want = cJSON_IsArray(test) ? cJSON_GetArraySize(test) : 0;
        if (json_int(nts, &ok) != want || !ok)
            problem(v, rel, "numTest must be the length of \"test\" (%lld)", (long long)want);
    }
    const cJSON *training = json_get(v->msdjson, "training"), *item;
    if (!cJSON_IsArray(training)) {
        problem(v, rel, "\"training\" missing or not a list");
        return;
    }
    int n = cJSON_GetArraySize(training);
    int64_t nt = json_int(json_get(v->msdjson, "numTraining"), &ok);
    if (!ok || nt != n)
        problem(v, rel, "numTraining must be the length of \"training\" (%d)", n);
    if (v->rep->complete && (size_t)n != v->n_cases)
        problem(v, rel, "training lists %d cases, the dataset has %zu", n, v->n_cases);
    int k = 0;
    cJSON_ArrayForEach(item, training)
    {
        const char *lp = cJSON_IsObject(item) ? json_str(item, "label") : NULL;
        char lrel[RSY_EXPORT_REL_MAX], id[ID_MAX + 8];
        if (!lp) {
            problem(v, rel, "training[%d]: not an object with a \"label\" path", k);
        } else if (!msd_rel(lp, lrel, sizeof lrel)) {
            problem(v, rel,
                    "training[%d].label \"%.128s\" is not a relative path inside msd/ (no "
                    "leading '/', no '..')",
                    k, lp);
        } else if (!file_case_id(v, rsy__export_basename(lrel), FK_NII, id) || !find_case(v, id)) {
            problem(v, rel, "training[%d].label \"%.128s\" is the label map of no case", k, lp);
        } else {
            vcase *c = find_case(v, id);
            if (c->msd_item)
                problem(v, rel, "training[%d]: case %s listed twice (also training[%d])", k, id,
                        c->msd_pos);
            else {
                c->msd_item = item;
                c->msd_pos = k;
            }
        }
        k++;
    }
}

/* Boxes of one msd item against the lesions (records of the instance map, within a voxel):
 * each box matches one lesion, each lesion has one box, box_label is its class. */
static void check_msd_boxes(vctx *v, const char *rel, const vcase *c, const rsy_lesion_record *rec,
                            int n_rec, const rsy_geometry *g)
{
    const cJSON *boxes = json_get(c->msd_item, "box"), *labels = json_get(c->msd_item, "box_label");
    int k = c->msd_pos;
    if (!cJSON_IsArray(boxes) || !cJSON_IsArray(labels)) {
        problem(v, rel, "training[%d] (%s): \"box\" and \"box_label\" must be lists", k, c->id);
        return;
    }
    int nb = cJSON_GetArraySize(boxes), n_les = 0;
    for (int i = 0; i < n_rec; i++)
        n_les += rec[i].voxel_count > 0;
    if (cJSON_GetArraySize(labels) != nb)
        problem(v, rel, "training[%d] (%s): %d boxes but %d box labels", k, c->id, nb,
                cJSON_GetArraySize(labels));
    if (nb != n_les)
        problem(v, rel, "training[%d] (%s): %d boxes, the instance map has %d lesions", k, c->id,
                nb, n_les);
    if (nb > n_les + 64)
        return; /* a crafted list: matching each box would be quadratic; reported above */
    unsigned char *used = n_rec ? calloc((size_t)n_rec, 1) : NULL;
    if (n_rec && !used)
        return;
    const cJSON *b;
    int i = 0;
    cJSON_ArrayForEach(b, boxes)
    {
        double x[6];
        int good = cJSON_IsArray(b) && cJSON_GetArraySize(b) == 6;
        for (int a = 0; good && a < 6; a++) {
            const cJSON *e = cJSON_GetArrayItem(b, a);
            good = cJSON_IsNumber(e) && isfinite(e->valuedouble);
            x[a] = good ? e->valuedouble : 0.0;
        }
        if (!good) {
            problem(v, rel, "training[%d].box[%d] (%s): not 6 numbers [cx, cy, cz, w, h, d]", k, i,
                    c->id);
            i++;
            continue;
        }
        /* The i-th lesion first (the writer's order), then any unmatched one. */
        int match = -1;
        for (int pass = 0; pass < 2 && match < 0; pass++) {
            int seen = 0;
            for (int j = 0; j < n_rec && match < 0; j++) {
                if (rec[j].voxel_count == 0)
                    continue;
                if ((pass == 0 && seen++ != i) || used[j])
                    continue;
                int fits = 1;
                for (int a = 0; a < 3 && fits; a++)
                    fits = fabs(x[a] - rec[j].box_cccwhd_mm[a]) <= g->spacing_mm[a] + BOX_TOL_MM &&
                           fabs(x[a + 3] - rec[j].box_cccwhd_mm[a + 3]) <=
                               g->spacing_mm[a] + BOX_TOL_MM;
                if (fits)
                    match = j;
            }
        }
        if (match < 0) {
            problem(v, rel,
                    "training[%d].box[%d] (%s) [%g, %g, %g, %g, %g, %g] matches no lesion of the "
                    "instance map within a voxel",
                    k, i, c->id, x[0], x[1], x[2], x[3], x[4], x[5]);
        } else {
            used[match] = 1;
            int ok;
            int64_t cls = json_int(cJSON_GetArrayItem(labels, i), &ok);
            int want = lesion_class(v, &rec[match], v->peri);
            if (i < cJSON_GetArraySize(labels) && (!ok || cls != want))
                problem(v, rel,
                        "training[%d].box_label[%d] (%s) must be %d, the class of instance %d "
                        "(its main label minus 1)",
                        k, i, c->id, want, match + 1);
        }
        i++;
    }
    free(used);
}

/* One case's msd item: image list and label byte-identical to the nnU-Net files, and the boxes
 * when the lesions could be @p measured (records @p rec of the instance map, geometry @p g). */
static void check_msd_case(vctx *v, const vcase *c, const rsy_lesion_record *rec, int n_rec,
                           const rsy_geometry *g, int measured)
{
    char rel[RSY_EXPORT_REL_MAX], src[RSY_EXPORT_REL_MAX], p[RSY_EXPORT_REL_MAX];
    snprintf(rel, sizeof rel, "%s/dataset.json", RSY_EXPORT_MSD_DIR);
    if (!v->msdjson) {
        /* A shard or an interrupted run: no dataset.json, but a case is written whole, in
         * every layout: its files are there under the nnU-Net names, with the same bytes. */
        for (int ch = -1; ch < v->n_channels && v->have_nnunet; ch++) {
            const char *sub = ch < 0 ? "labelsTr" : "imagesTr";
            char suffix[16] = "";
            if (ch >= 0)
                snprintf(suffix, sizeof suffix, "_%04d", ch);
            snprintf(p, sizeof p, "%s/%s/%s%s" RSY_EXPORT_NII, RSY_EXPORT_MSD_DIR, sub, c->id,
                     suffix);
            snprintf(src, sizeof src, "%s/%s/%s%s" RSY_EXPORT_NII, v->nnunet_dir, sub, c->id,
                     suffix);
            if (!path_exists(v, p))
                missing_once(v, p, "MSD file of %s", c->id);
            else
                check_identical(v, p, src, "msd");
        }
        return;
    }
    if (!c->msd_item) {
        problem(v, rel, "case %s is missing from \"training\"", c->id);
        return;
    }
    int k = c->msd_pos;
    const cJSON *img = json_get(c->msd_item, "image"), *e;
    int n_img = cJSON_IsArray(img) ? cJSON_GetArraySize(img) : cJSON_IsString(img) ? 1 : 0;
    if (n_img == 0 || (v->n_channels >= 0 && n_img != v->n_channels)) {
        problem(v, rel, "training[%d].image (%s) must list the %d channel files", k, c->id,
                v->n_channels);
    } else if (v->have_nnunet) {
        int ch = 0;
        const cJSON *single = cJSON_IsString(img) ? img : NULL;
        for (e = single ? single : img->child; e; e = single ? NULL : e->next, ch++) {
            if (!cJSON_IsString(e) || !msd_rel(e->valuestring, p, sizeof p)) {
                problem(v, rel,
                        "training[%d].image[%d] (%s) is not a relative path inside msd/ (no "
                        "leading '/', no '..')",
                        k, ch, c->id);
                continue;
            }
            snprintf(src, sizeof src, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, c->id,
                     ch);
            if (!path_exists(v, p))
                missing_once(v, p, "training[%d].image[%d] of msd/dataset.json", k, ch);
            else
                check_identical(v, p, src, "msd");
        }
    }
    const char *lp = json_str(c->msd_item, "label");
    if (msd_rel(lp, p, sizeof p) && v->have_nnunet) {
        snprintf(src, sizeof src, "%s/labelsTr/%s" RSY_EXPORT_NII, v->nnunet_dir, c->id);
        if (!path_exists(v, p))
            missing_once(v, p, "training[%d].label of msd/dataset.json", k);
        else
            check_identical(v, p, src, "msd");
    }
    if (measured)
        check_msd_boxes(v, rel, c, rec, n_rec, g);
}

/* ---------------------------------------------------------------------------------------- */
/* nnDetection layout (reference/formats.md, "nnDetection")                                   */
/* ---------------------------------------------------------------------------------------- */
static void check_nndet_dataset(vctx *v)
{
    if (!find_numbered_dir(v, "Task", "nnDetection", v->nndet_dir))
        return;
    v->have_nndet = 1;
    v->nndet_n_classes = -1;
    char rel[RSY_EXPORT_REL_MAX], path[RSY_PATH_MAX], real[PATH_MAX];
    /* nnDetection splits paths at '.': a '.' anywhere in the absolute path breaks it. */
    if (full_path(v, v->nndet_dir, path, sizeof path) && realpath(path, real) && strchr(real, '.'))
        note(v, v->nndet_dir,
             "the absolute path %s holds a '.', which nnDetection cannot handle: move or link "
             "the dataset to a path without '.' before training",
             real);
    snprintf(rel, sizeof rel, "%s/dataset.json", v->nndet_dir);
    char yaml[RSY_EXPORT_REL_MAX];
    snprintf(yaml, sizeof yaml, "%s/dataset.yaml", v->nndet_dir);
    if (!path_exists(v, rel) && path_exists(v, yaml)) {
        note(v, yaml, "dataset.yaml is not checked (raresynth writes dataset.json)");
        return;
    }
    cJSON *dj = load_json(v, rel, v->rep->complete, 1, RSY_EXPORT_JSON_MAX_BYTES);
    if (!dj)
        return;
    const char *task = json_str(dj, "task");
    if (!task || strcmp(task, v->nndet_dir) != 0)
        problem(v, rel, "task must be the folder name \"%s\"", v->nndet_dir);
    int ok;
    if (json_int(json_get(dj, "dim"), &ok) != 3 || !ok)
        problem(v, rel, "dim must be 3");
    const cJSON *labels = json_get(dj, "labels");
    int nl = consecutive_string_map(labels, RSY_MAX_LABELS);
    if (nl < 1) {
        problem(v, rel,
                "labels must be {\"0\": class name, ...} with consecutive string keys from "
                "\"0\" (no background entry)");
    } else {
        v->nndet_n_classes = nl;
        for (int l = 0; l < nl; l++) {
            char k[16];
            snprintf(k, sizeof k, "%d", l);
            const char *name = json_str(labels, k);
            if (!strcmp(name, "background"))
                problem(v, rel,
                        "labels.%s is \"background\": nnDetection classes have no "
                        "background entry",
                        k);
            else if (v->n_labels == nl + 1 && strcmp(name, v->label_names[l + 1]) != 0)
                problem(v, rel, "labels.%s is \"%.64s\", class %d is label \"%s\"", k, name, l,
                        v->label_names[l + 1]);
        }
        if (v->n_labels >= 1 && nl != v->n_labels - 1)
            problem(v, rel, "labels has %d classes, the dataset %d non-background labels", nl,
                    v->n_labels - 1);
    }
    const cJSON *mod = json_get(dj, "modalities");
    int nm = consecutive_string_map(mod, MAX_CHANNELS);
    if (nm < 1)
        problem(v, rel, "modalities must be {\"0\": name, ...} with consecutive string keys");
    else if (v->n_channels >= 0 && nm != v->n_channels)
        problem(v, rel, "modalities has %d channels, the dataset %d", nm, v->n_channels);
    else
        for (int c = 0; c < nm && v->n_channels >= 0; c++) {
            char k[16];
            snprintf(k, sizeof k, "%d", c);
            if (strcmp(json_str(mod, k), v->channel_names[c]) != 0)
                problem(v, rel, "modalities.%s is \"%.64s\", channel %d is \"%s\"", k,
                        json_str(mod, k), c, v->channel_names[c]);
        }
    const cJSON *tc = json_get(dj, "target_class");
    if (tc && !cJSON_IsNull(tc)) {
        int64_t t = json_int(tc, &ok);
        if (!ok || t < 0 || (nl >= 1 && t >= nl))
            problem(v, rel, "target_class must be null or a class key (0..%d)", nl - 1);
    }
    const cJSON *tl = json_get(dj, "test_labels");
    if (tl && !cJSON_IsBool(tl))
        problem(v, rel, "test_labels must be true or false");
    cJSON_Delete(dj);
}

/* {case}.json: {"instances": {"1": c, ..., "N": c}}, keys exactly "1".."N", values JSON
 * integers among the class keys. The count N, or -1 (reported); classes[i-1] = class of i. */
static int nndet_instances(vctx *v, const char *rel, int **classes)
{
    char *text = NULL;
    *classes = NULL;
    cJSON *doc = load_json_text(v, rel, 1, 1, JSON_CASE_MAX_BYTES, &text);
    if (!doc)
        return -1;
    int n = -1;
    const cJSON *inst = json_get(doc, "instances");
    if (!cJSON_IsObject(inst)) {
        problem(v, rel, "\"instances\" missing or not an object");
        goto done;
    }
    if (json_has_nonint_number(text)) {
        problem(v, rel,
                "holds a number with a fraction or exponent: instance classes must be "
                "JSON integers");
        goto done;
    }
    /* One pass over the keys (a lookup per key would be quadratic in a crafted file). */
    int count = cJSON_GetArraySize(inst);
    if (count > 65535) {
        problem(v, rel, "instances: %d entries, more than a uint16 instance map holds", count);
        goto done;
    }
    int *cls = count ? malloc((size_t)count * sizeof *cls) : NULL;
    if (count && !cls) {
        problem(v, rel, "out of memory");
        goto done;
    }
    for (int i = 0; i < count; i++)
        cls[i] = -1;
    int good = 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, inst)
    {
        const char *k = it->string ? it->string : "";
        long key = 0;
        int canonical = k[0] >= '1' && k[0] <= '9' && strlen(k) <= 5;
        for (const char *d = k; canonical && *d; d++) {
            canonical = *d >= '0' && *d <= '9';
            key = 10 * key + (*d - '0');
        }
        int ok;
        int64_t c = json_int(it, &ok);
        if (!canonical || key > count || cls[key - 1] >= 0) {
            problem(v, rel,
                    "instances: keys must be exactly \"1\"..\"%d\" (\"%.16s\" is not one of them)",
                    count, k);
            good = 0;
            break;
        }
        if (!ok || c < 0 || (v->nndet_n_classes >= 0 && c >= v->nndet_n_classes)) {
            problem(v, rel, "instances.%s must be an integer class key (0..%d)", k,
                    v->nndet_n_classes - 1);
            good = 0;
            break;
        }
        cls[key - 1] = (int)c;
    }
    if (good) {
        n = count;
        *classes = cls;
    } else {
        free(cls);
    }
done:
    cJSON_Delete(doc);
    free(text);
    return n;
}

/* The same geometry, exactly (nnDetection compares size, origin, direction and spacing). */
static int same_header_geometry(const rsy_nifti_info *a, const rsy_volume *va,
                                const rsy_nifti_info *b, const rsy_volume *vb)
{
    for (int k = 0; k < 3; k++)
        if (va->geom.dims[k] != vb->geom.dims[k] || a->pixdim[k + 1] != b->pixdim[k + 1])
            return 0;
    return !memcmp(a->sto_xyz, b->sto_xyz, sizeof a->sto_xyz) &&
           !memcmp(a->qto_xyz, b->qto_xyz, sizeof a->qto_xyz) && a->qfac == b->qfac;
}

/* One case of the nnDetection layout: channels byte-identical to nnU-Net's; {case}.json; the
 * instance map with values exactly 0..N, each present, the instances of DIR/instances
 * renumbered in order after dropping empty ones (when the lesions were @p measured: @p rec,
 * n_rec of them), its geometry that of the images (@p ref); classes. */
static void check_nndet_case(vctx *v, const vcase *c, const rsy_volume *inst,
                             const rsy_lesion_record *rec, int n_rec, int measured,
                             const rsy_nifti_info *ref, const rsy_volume *ref_vol)
{
    char rel[RSY_EXPORT_REL_MAX], src[RSY_EXPORT_REL_MAX], what[ID_MAX + 64];
    for (int ch = 0; ch < v->n_channels && v->have_nnunet; ch++) {
        snprintf(rel, sizeof rel, "%s/raw_splitted/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nndet_dir,
                 c->id, ch);
        snprintf(src, sizeof src, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, c->id, ch);
        if (!path_exists(v, rel))
            missing_once(v, rel, "channel %d of %s", ch, c->id);
        else
            check_identical(v, rel, src, "nnDetection");
    }
    int *cls = NULL;
    snprintf(rel, sizeof rel, "%s/raw_splitted/labelsTr/%s.json", v->nndet_dir, c->id);
    int n = nndet_instances(v, rel, &cls);
    snprintf(rel, sizeof rel, "%s/raw_splitted/labelsTr/%s" RSY_EXPORT_NII, v->nndet_dir, c->id);
    snprintf(what, sizeof what, "nnDetection instance map of %s", c->id);
    rsy_nifti_info info;
    rsy_volume *nd = read_volume(v, rel, 1, what, &info);
    if (!nd)
        goto done;
    if (ref && ref_vol && !same_header_geometry(&info, nd, ref, ref_vol))
        problem(v, rel,
                "size, origin, direction or spacing differs from the case's images (nnDetection "
                "needs them identical)");
    size_t nvox = rsy_geometry_nvox(&nd->geom);
    if (n >= 0) {
        /* Values exactly 0..N, each instance present. */
        size_t *count = calloc((size_t)n + 1, sizeof *count);
        size_t beyond = 0;
        double bad = 0.0;
        if (!count)
            goto done;
        for (size_t i = 0; i < nvox; i++) {
            double x = rsy__volume_get(nd, i);
            if (x >= 0.0 && x <= n && x == floor(x))
                count[(size_t)x]++;
            else if (beyond++ == 0)
                bad = x;
        }
        if (beyond)
            problem(v, rel, "value %g is not an instance of %s (values must be 0..%d): %zu voxels",
                    bad, rsy__export_basename(rel), n, beyond);
        for (int i = 1; i <= n; i++)
            if (!count[i]) {
                problem(v, rel, "instance %d of the .json has no voxel", i);
                break;
            }
        free(count);
    }
    if (inst && measured && rsy_geometry_equal(&inst->geom, &nd->geom) &&
        inst->dtype == RSY_DTYPE_UINT16) {
        /* Renumbering: every lesion of DIR/instances maps to one nnDetection id, in order. */
        int *map = calloc((size_t)n_rec + 1, sizeof *map);
        size_t differ = 0;
        if (!map)
            goto done;
        const uint16_t *a = inst->data;
        for (size_t i = 0; i < nvox; i++) {
            double b = rsy__volume_get(nd, i);
            int ai = a[i];
            if (ai > n_rec || (ai == 0) != (b == 0.0) || !(b >= 0.0 && b <= 65535.0)) {
                differ++;
                continue;
            }
            if (ai && !map[ai])
                map[ai] = (int)b;
            else if (ai && map[ai] != (int)b)
                differ++;
        }
        int next = 1;
        for (int i = 1; i <= n_rec && !differ; i++) {
            if (rec[i - 1].voxel_count == 0)
                continue;
            if (map[i] != next)
                differ++;
            else if (cls && next <= n) {
                int want = lesion_class(v, &rec[i - 1], v->peri);
                snprintf(src, sizeof src, "%s/raw_splitted/labelsTr/%s.json", v->nndet_dir, c->id);
                if (cls[next - 1] != want)
                    problem(v, src,
                            "instances.%d is class %d, but the lesion (instance %d of %s/%s) is "
                            "class %d (its main label minus 1)",
                            next, cls[next - 1], i, RSY_EXPORT_INSTANCE_DIR, c->id, want);
            }
            next++;
        }
        if (differ)
            problem(v, rel,
                    "does not hold the lesions of %s/%s" RSY_EXPORT_NII
                    " renumbered 1..N in order (empty instances dropped)",
                    RSY_EXPORT_INSTANCE_DIR, c->id);
        else if (n >= 0 && next - 1 != n)
            problem(v, rel, "%d instances in the .json, %d lesions in %s/%s" RSY_EXPORT_NII, n,
                    next - 1, RSY_EXPORT_INSTANCE_DIR, c->id);
        free(map);
    }
done:
    rsy_volume_destroy(nd);
    free(cls);
}

/* ---------------------------------------------------------------------------------------- */
/* HDF5 (docs/hdf5.md)                                                                        */
/* ---------------------------------------------------------------------------------------- */
#define H5_STR_MAX ((size_t)1 << 20)

static hid_t h5_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        t = -1;
    }
    return t;
}

static void h5_reclaim(hid_t type, hid_t space, void *buf)
{
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(type, space, H5P_DEFAULT, buf);
#else
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
#endif
}

/* Attribute @p name of @p loc opened, with its type class and number of elements (a scalar
 * counts 1, and *rank 0). -1 if absent. */
static hid_t h5_attr_open(hid_t loc, const char *name, H5T_class_t *cls, hsize_t *count, int *rank)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    int r = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    *cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t >= 0 && *cls == H5T_STRING && H5Tis_variable_str(t) <= 0)
        *cls = H5T_NO_CLASS; /* fixed-length strings are not what h5py users get as str */
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    if (r < 0 || n < 0) {
        H5Aclose(a);
        return -1;
    }
    *count = (hsize_t)n;
    *rank = r;
    return a;
}

/* Variable-length strings of attribute @p name (a scalar is one), at most @p max_n: heap
 * array of heap strings (free with h5_strs_free), NULL if absent, of another type or too
 * many. */
static char **h5_attr_strs(hid_t loc, const char *name, size_t max_n, size_t *n_out,
                           int want_scalar)
{
    H5T_class_t cls;
    hsize_t n;
    int rank;
    *n_out = 0;
    hid_t a = h5_attr_open(loc, name, &cls, &n, &rank);
    if (a < 0)
        return NULL;
    char **out = NULL, **raw = NULL;
    hid_t mt = h5_str_type(), sp = H5Aget_space(a);
    if (cls != H5T_STRING || n > max_n || (want_scalar ? rank != 0 : rank != 1) || mt < 0 || sp < 0)
        goto done;
    raw = calloc(n ? n : 1, sizeof *raw);
    out = calloc(n ? n : 1, sizeof *out);
    if (!raw || !out || H5Aread(a, mt, raw) < 0) {
        free(out);
        out = NULL;
        free(raw);
        raw = NULL;
        goto done;
    }
    int good = 1;
    for (hsize_t i = 0; i < n && good; i++) {
        size_t len = raw[i] ? strnlen(raw[i], H5_STR_MAX) : 0;
        good = raw[i] && len < H5_STR_MAX && (out[i] = malloc(len + 1)) != NULL;
        if (good)
            memcpy(out[i], raw[i], len + 1);
    }
    h5_reclaim(mt, sp, raw);
    if (!good) {
        for (hsize_t i = 0; i < n; i++)
            free(out[i]);
        free(out);
        out = NULL;
    } else {
        *n_out = (size_t)n;
    }
done:
    free(raw);
    if (mt >= 0)
        H5Tclose(mt);
    if (sp >= 0)
        H5Sclose(sp);
    H5Aclose(a);
    return out;
}

static void h5_strs_free(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

/* A scalar string attribute (heap, free()); NULL if absent or not a string. */
static char *h5_attr_str(hid_t loc, const char *name)
{
    size_t n;
    char **s = h5_attr_strs(loc, name, 1, &n, 1);
    if (!s)
        return NULL;
    char *r = s[0];
    free(s);
    return r;
}

/* Numeric attribute (integer or float class) of exactly @p n elements, read as double. */
static int h5_attr_nums(hid_t loc, const char *name, double *out, size_t n)
{
    H5T_class_t cls;
    hsize_t count;
    int rank;
    hid_t a = h5_attr_open(loc, name, &cls, &count, &rank);
    if (a < 0)
        return 0;
    int ok = (cls == H5T_INTEGER || cls == H5T_FLOAT) && count == n &&
             H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0;
    H5Aclose(a);
    return ok;
}

/* The HDF5 file raresynth.json lists as {"hdf5": {"path", "sha256"}}: checked by checksum,
 * then opened read-only. Every other .h5 at the top of DIR is reported (or, in an interrupted
 * run, listed). */
static void open_hdf5(vctx *v)
{
    v->h5 = -1;
    const cJSON *h = v->dsman ? json_get(v->dsman, "hdf5") : NULL;
    const char *p = h ? json_str(h, "path") : NULL, *want = h ? json_str(h, "sha256") : NULL;
    if (h && !cJSON_IsNull(h) && (!p || !rel_safe(p) || !ends_with(p, ".h5"))) {
        problem(v, RSY_EXPORT_MANIFEST,
                "hdf5.path must be the relative path of the .h5 file inside the dataset");
        p = NULL;
    }
    if (p)
        snprintf(v->h5rel, sizeof v->h5rel, "%s", p);
    DIR *d = open_folder(v, ".", NULL);
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d)) != NULL) {
            if (!ends_with(ent->d_name, ".h5") || (p && !strcmp(ent->d_name, p)))
                continue;
            if (v->rep->complete || v->shard_count)
                problem(v, ent->d_name,
                        "HDF5 file not listed in " RSY_EXPORT_MANIFEST " (checksum unknown; not "
                        "opened)");
            else
                note(v, ent->d_name,
                     "HDF5 file of an interrupted run (not opened; generate --resume rewrites "
                     "it)");
        }
        closedir(d);
    }
    if (!p)
        return;
    if (!path_exists(v, p)) {
        problem(v, p, "missing (listed in " RSY_EXPORT_MANIFEST ")");
        return;
    }
    long hi = file_hash(v, p);
    char hex[65] = "";
    if (hi >= 0)
        memcpy(hex, v->hashes[hi].hex, sizeof hex);
    v->n_hashes = 0;
    if (hi < 0)
        return;
    if (!want || strcmp(want, hex) != 0) {
        problem(v, p,
                "SHA-256 differs from " RSY_EXPORT_MANIFEST " (changed after it was "
                "written); not opened");
        return;
    }
    char path[RSY_PATH_MAX];
    if (locate(v, p, 0, path, sizeof path, NULL) != LOC_OK)
        return;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* Read-only: no lock file semantics needed, and some filesystems refuse locks. */
    if (fapl >= 0)
        H5Pset_file_locking(fapl, 0, 1);
    v->h5 = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (v->h5 < 0) {
        problem(v, p, "cannot be opened as HDF5");
        return;
    }
    v->rep->files_checked++;
}

static int cmp_index(const void *a, const void *b)
{
    const vcase *x = *(const vcase *const *)a, *y = *(const vcase *const *)b;
    return (x->index > y->index) - (x->index < y->index);
}

/* Root attributes against the dataset (docs/hdf5.md, "Root attributes"). */
static void check_hdf5_root(vctx *v)
{
    const char *rel = v->h5rel;
    hid_t f = v->h5;
    char *s = h5_attr_str(f, "format");
    if (!s || strcmp(s, "raresynth-hdf5") != 0)
        problem(v, rel, "root attribute format is not \"raresynth-hdf5\"");
    free(s);
    double x;
    if (!h5_attr_nums(f, "format_version", &x, 1) || x != 1.0)
        problem(v, rel, "root attribute format_version is not 1");
    if (!(s = h5_attr_str(f, "data_sources")) || !strstr(s, "No patient data"))
        problem(v, rel, "root attribute data_sources lacks the no-patient-data statement");
    free(s);
    static const char *const strs[] = {"generator",         "generator_version", "dataset_name",
                                       "recipe_sha256",     "dataset_seed",      "modality",
                                       "coordinate_system", "index_order"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (!(s = h5_attr_str(f, strs[i])))
            problem(v, rel, "root attribute %s missing or not a UTF-8 string", strs[i]);
        free(s);
    }
    if (!h5_attr_nums(f, "n_cases", &x, 1) || x != (double)v->n_cases)
        problem(v, rel, "root attribute n_cases is not the %zu cases of the dataset", v->n_cases);
    size_t n;
    char **ids = h5_attr_strs(f, "case_ids", v->n_cases + 1, &n, 0);
    const vcase **order = v->n_cases ? malloc(v->n_cases * sizeof *order) : NULL;
    if (order) {
        for (size_t i = 0; i < v->n_cases; i++)
            order[i] = &v->cases[i];
        qsort(order, v->n_cases, sizeof *order, cmp_index);
    }
    int same = ids && n == v->n_cases && (order || !n);
    for (size_t i = 0; same && i < n; i++)
        same = !strcmp(ids[i], order[i]->id);
    if (!same)
        problem(v, rel, "root attribute case_ids is not the dataset's case ids in index order");
    h5_strs_free(ids, n);
    free(order);
    char **ch = h5_attr_strs(f, "channel_names", MAX_CHANNELS, &n, 0);
    same = ch && (int)n == v->n_channels;
    for (size_t i = 0; same && i < n; i++)
        same = !strcmp(ch[i], v->channel_names[i]);
    if (!same && v->n_channels >= 0)
        problem(v, rel, "root attribute channel_names differs from the dataset's channels");
    h5_strs_free(ch, n);
    char **ln = h5_attr_strs(f, "label_names", RSY_MAX_LABELS, &n, 0);
    same = ln && (int)n == v->n_labels;
    for (size_t i = 0; same && i < n; i++)
        same = !strcmp(ln[i], v->label_names[i]);
    if (!same && v->n_labels >= 0)
        problem(v, rel, "root attribute label_names differs from the dataset's labels");
    h5_strs_free(ln, n);
    s = h5_attr_str(f, "labels");
    cJSON *lj = s ? cJSON_Parse(s) : NULL;
    const cJSON *want = v->nnjson  ? json_get(v->nnjson, "labels")
                        : v->dsman ? json_get(v->dsman, "labels")
                                   : NULL;
    if (!lj || (want && !cJSON_Compare(lj, want, 1)))
        problem(v, rel, "root attribute labels is not the dataset's label dictionary (JSON)");
    cJSON_Delete(lj);
    free(s);
}

/* A volume dataset of a case against the NIfTI voxels: type, shape (C, Z, Y, X) or (Z, Y, X)
 * and every value (channel @p channel of @p n_ch for the image). */
static void check_hdf5_volume(vctx *v, hid_t grp, const char *obj, const char *name, int channel,
                              int n_ch, const rsy_volume *vol, const char *nifti_rel)
{
    const char *rel = v->h5rel;
    hid_t ds = H5Dopen2(grp, name, H5P_DEFAULT);
    if (ds < 0) {
        if (channel <= 0)
            problem(v, rel, "%s/%s missing", obj, name);
        return;
    }
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds), mem = -1, msp = -1;
    void *buf = NULL;
    const rsy_geometry *g = &vol->geom;
    int image = channel >= 0, rank = image ? 4 : 3;
    hsize_t dims[4] = {0, 0, 0, 0};
    hsize_t want[4] = {(hsize_t)n_ch, (hsize_t)g->dims[2], (hsize_t)g->dims[1],
                       (hsize_t)g->dims[0]};
    const hsize_t *w = image ? want : want + 1;
    if (ft < 0 || sp < 0 || H5Sget_simple_extent_ndims(sp) != rank ||
        H5Sget_simple_extent_dims(sp, dims, NULL) != rank || memcmp(dims, w, rank * sizeof *w)) {
        problem(v, rel, "%s/%s: shape is not (%s%lld, %lld, %lld) as %s", obj, name,
                image ? "C, " : "", (long long)g->dims[2], (long long)g->dims[1],
                (long long)g->dims[0], nifti_rel);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(ft);
    size_t size = H5Tget_size(ft);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(ft) : H5T_SGN_ERROR;
    int ok = 0;
    switch (vol->dtype) {
    case RSY_DTYPE_FLOAT32:
        ok = cls == H5T_FLOAT && size == 4;
        mem = H5T_NATIVE_FLOAT;
        break;
    case RSY_DTYPE_INT16:
        ok = cls == H5T_INTEGER && size == 2 && sign == H5T_SGN_2;
        mem = H5T_NATIVE_INT16;
        break;
    case RSY_DTYPE_UINT16:
        ok = cls == H5T_INTEGER && size == 2 && sign == H5T_SGN_NONE;
        mem = H5T_NATIVE_UINT16;
        break;
    case RSY_DTYPE_UINT8:
        ok = cls == H5T_INTEGER && size == 1 && sign == H5T_SGN_NONE;
        mem = H5T_NATIVE_UINT8;
        break;
    }
    if (!ok) {
        problem(v, rel, "%s/%s: stored type is not %s as in %s", obj, name,
                rsy_dtype_name(vol->dtype), nifti_rel);
        goto done;
    }
    size_t nvox = rsy_geometry_nvox(g), elem = rsy_dtype_size(vol->dtype);
    hsize_t start[4] = {(hsize_t)(image ? channel : 0), 0, 0, 0};
    hsize_t count[4] = {1, want[1], want[2], want[3]};
    hsize_t mdim[1] = {(hsize_t)nvox};
    if (image && H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
        goto done;
    msp = H5Screate_simple(1, mdim, NULL);
    buf = malloc(nvox * elem);
    if (msp < 0 || !buf || H5Dread(ds, mem, msp, sp, H5P_DEFAULT, buf) < 0) {
        problem(v, rel, "%s/%s cannot be read", obj, name);
        goto done;
    }
    if (memcmp(buf, vol->data, nvox * elem) != 0) {
        size_t i = 0;
        const unsigned char *a = buf, *b = vol->data;
        while (i < nvox && !memcmp(a + i * elem, b + i * elem, elem))
            i++;
        size_t nx = (size_t)g->dims[0], ny = (size_t)g->dims[1];
        char chan[32] = "";
        if (image)
            snprintf(chan, sizeof chan, "[%d]", channel);
        problem(v, rel, "%s/%s%s differs from %s at voxel (i, j, k) = (%zu, %zu, %zu)", obj, name,
                chan, nifti_rel, i % nx, (i / nx) % ny, i / (nx * ny));
    }
done:
    free(buf);
    if (msp >= 0)
        H5Sclose(msp);
    if (sp >= 0)
        H5Sclose(sp);
    if (ft >= 0)
        H5Tclose(ft);
    H5Dclose(ds);
}

typedef struct h5_row {
    int32_t instance_id;
    int32_t label;
    int64_t voxel_count;
} h5_row;

/* Case group attributes and the lesion table against the measured records. */
static void check_hdf5_case(vctx *v, const vcase *c, hid_t grp, const char *obj,
                            const rsy_nifti_info *info, const rsy_lesion_record *rec, int n_rec,
                            int measured)
{
    const char *rel = v->h5rel;
    char *s = h5_attr_str(grp, "case_id");
    if (!s || strcmp(s, c->id) != 0)
        problem(v, rel, "%s: attribute case_id is not \"%s\"", obj, c->id);
    free(s);
    double x, sp[3], aff[16];
    if (c->index >= 0 && (!h5_attr_nums(grp, "case_index", &x, 1) || x != (double)c->index))
        problem(v, rel, "%s: attribute case_index is not %lld", obj, (long long)c->index);
    if (info) {
        /* NIfTI stores spacing and affine as float32: compare after the same rounding. */
        int good = h5_attr_nums(grp, "spacing_mm", sp, 3);
        for (int a = 0; good && a < 3; a++)
            good = (float)sp[a] == (float)info->pixdim[a + 1];
        if (!good)
            problem(v, rel, "%s: attribute spacing_mm differs from the NIfTI pixdim", obj);
        good = h5_attr_nums(grp, "affine", aff, 16);
        for (int r = 0; good && r < 4; r++)
            for (int k = 0; good && k < 4; k++)
                good = r < 3 ? (float)aff[4 * r + k] == (float)info->sto_xyz[r][k]
                             : aff[4 * r + k] == (k == 3 ? 1.0 : 0.0);
        if (!good)
            problem(v, rel, "%s: attribute affine differs from the NIfTI sform", obj);
    }
    if (!measured)
        return;
    int n_les = 0;
    for (int i = 0; i < n_rec; i++)
        n_les += rec[i].voxel_count > 0;
    if (!h5_attr_nums(grp, "n_lesions", &x, 1) || x != (double)n_les)
        problem(v, rel, "%s: attribute n_lesions is not the %d lesions of the instance map", obj,
                n_les);
    hid_t ds = H5Dopen2(grp, "lesions", H5P_DEFAULT);
    if (ds < 0) {
        problem(v, rel, "%s/lesions missing", obj);
        return;
    }
    hid_t space = H5Dget_space(ds), mt = H5Tcreate(H5T_COMPOUND, sizeof(h5_row));
    hssize_t rows = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    h5_row *r = NULL;
    if (rows != n_les || mt < 0) {
        problem(v, rel, "%s/lesions has %lld rows, the instance map %d lesions", obj,
                (long long)rows, n_les);
        goto done;
    }
    if (H5Tinsert(mt, "instance_id", offsetof(h5_row, instance_id), H5T_NATIVE_INT32) < 0 ||
        H5Tinsert(mt, "label", offsetof(h5_row, label), H5T_NATIVE_INT32) < 0 ||
        H5Tinsert(mt, "voxel_count", offsetof(h5_row, voxel_count), H5T_NATIVE_INT64) < 0 ||
        !(r = calloc(n_les ? (size_t)n_les : 1, sizeof *r)) ||
        (n_les && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, r) < 0)) {
        problem(v, rel, "%s/lesions cannot be read (instance_id, label, voxel_count)", obj);
        goto done;
    }
    for (int i = 0, row = 0; i < n_rec; i++) {
        if (rec[i].voxel_count == 0)
            continue;
        if (r[row].instance_id != i + 1 || r[row].voxel_count != rec[i].voxel_count ||
            r[row].label != main_label(v, &rec[i], v->peri)) {
            problem(v, rel,
                    "%s/lesions[%d] (instance %d, label %d, %lld voxels) differs from the "
                    "instance map's lesion (instance %d, label %d, %lld voxels)",
                    obj, row, r[row].instance_id, r[row].label, (long long)r[row].voxel_count,
                    i + 1, main_label(v, &rec[i], v->peri), (long long)rec[i].voxel_count);
        }
        row++;
    }
done:
    free(r);
    if (mt >= 0)
        H5Tclose(mt);
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(ds);
}

/* The case's group, or -1 (reported). */
static hid_t open_hdf5_case(vctx *v, const vcase *c, char *obj, size_t n)
{
    snprintf(obj, n, "/cases/%s", c->id);
    if (H5Lexists(v->h5, "cases", H5P_DEFAULT) <= 0 || H5Lexists(v->h5, obj, H5P_DEFAULT) <= 0) {
        problem(v, v->h5rel, "%s missing", obj);
        return -1;
    }
    hid_t g = H5Gopen2(v->h5, obj, H5P_DEFAULT);
    if (g < 0)
        problem(v, v->h5rel, "%s cannot be opened as a group", obj);
    return g;
}

/* ---------------------------------------------------------------------------------------- */
/* Previews (docs/previews.md)                                                                */
/* ---------------------------------------------------------------------------------------- */
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* previews/<case>.png: the PNG signature, an IHDR first (8-bit RGB, not interlaced, sides
 * 1..32768, CRC correct) and an IEND last. The image data is not decoded. */
static void check_preview(vctx *v, const vcase *c)
{
    char rel[RSY_EXPORT_REL_MAX], path[RSY_PATH_MAX];
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    snprintf(rel, sizeof rel, "%s/%s.png", RSY_EXPORT_PREVIEW_DIR, c->id);
    struct stat st;
    loc_state s = locate(v, rel, 0, path, sizeof path, &st);
    if (s == LOC_MISSING)
        missing_once(v, rel, "preview of %s", c->id);
    if (s != LOC_OK)
        return;
    unsigned char head[33], tail[12];
    FILE *f = fopen(path, "rb");
    int ok = f && st.st_size >= 33 + 12 && fread(head, 1, sizeof head, f) == sizeof head &&
             fseek(f, -12L, SEEK_END) == 0 && fread(tail, 1, sizeof tail, f) == sizeof tail;
    if (f)
        fclose(f);
    v->rep->files_checked++;
    if (!ok || memcmp(head, sig, 8) != 0) {
        problem(v, rel, "not a PNG file (signature missing or file too short)");
        return;
    }
    uint32_t w = be32(head + 16), h = be32(head + 20);
    if (be32(head + 8) != 13 || memcmp(head + 12, "IHDR", 4) != 0 ||
        be32(head + 29) != (uint32_t)crc32(crc32(0L, Z_NULL, 0), head + 12, 17)) {
        problem(v, rel, "PNG without a valid IHDR chunk first (corrupt)");
        return;
    }
    if (w < 1 || h < 1 || w > PREVIEW_MAX_SIDE || h > PREVIEW_MAX_SIDE || head[24] != 8 ||
        head[25] != 2 || head[26] != 0 || head[27] != 0 || head[28] != 0)
        problem(v, rel,
                "IHDR is %u x %u, bit depth %d, colour type %d, interlace %d (need 1..%d pixels "
                "a side, 8-bit RGB, not interlaced)",
                w, h, head[24], head[25], head[28], PREVIEW_MAX_SIDE);
    if (memcmp(tail, iend, sizeof iend) != 0)
        problem(v, rel, "does not end with an IEND chunk (truncated)");
}

/* ---------------------------------------------------------------------------------------- */
/* One case                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* Cross-check the case's entry in raresynth.json against its manifest, and collect what the
 * dataset summary is recomputed from: the lesion count and every lesion's volume_mm3. */
static rsy_status case_against_dataset(vctx *v, const char *manrel, const cJSON *man,
                                       const vcase *c)
{
    const cJSON *lesions = man ? json_get(man, "lesions") : NULL, *o;
    if (!cJSON_IsArray(lesions)) {
        v->summary_known = 0;
        return RSY_OK;
    }
    int64_t n = cJSON_GetArraySize(lesions);
    if (c->entry) {
        int ok;
        int64_t listed = json_int(json_get(c->entry, "n_lesions"), &ok);
        if (!ok)
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d].n_lesions missing or not an integer",
                    c->list_pos);
        else if (listed != n)
            problem(v, RSY_EXPORT_MANIFEST,
                    "cases[%d].n_lesions is %lld but %s has %lld lesion records", c->list_pos,
                    (long long)listed, manrel, (long long)n);
        if (!cJSON_Compare(json_get(man, "labels_perilesional"),
                           json_get(v->dsman, "labels_perilesional"), 1))
            problem(v, manrel, "labels_perilesional differs from " RSY_EXPORT_MANIFEST);
    }
    if (v->cases_seen == 0 || n < v->lesions_min)
        v->lesions_min = n;
    if (v->cases_seen == 0 || n > v->lesions_max)
        v->lesions_max = n;
    v->lesions_total += n;
    v->cases_seen++;
    cJSON_ArrayForEach(o, lesions)
    {
        const cJSON *vol = json_get(o, "volume_mm3");
        if (!cJSON_IsNumber(vol)) {
            v->summary_known = 0; /* reported by the lesion check */
            continue;
        }
        if (v->n_volumes == v->cap_volumes) {
            size_t cap = v->cap_volumes ? 2 * v->cap_volumes : 64;
            double *grown = realloc(v->volumes, cap * sizeof *grown);
            if (!grown)
                return RSY_ENOMEM;
            v->volumes = grown;
            v->cap_volumes = cap;
        }
        v->volumes[v->n_volumes++] = vol->valuedouble;
    }
    return RSY_OK;
}

static void count_label_voxels(vctx *v, const rsy_volume *lab)
{
    if (!lab || v->n_labels < 1) {
        v->summary_known = 0;
        return;
    }
    size_t n = rsy_geometry_nvox(&lab->geom);
    for (size_t i = 0; i < n; i++) {
        double x = rsy__volume_get(lab, i);
        if (x >= 0.0 && x < v->n_labels)
            v->label_totals[(int)x]++;
    }
}

/* The manifest of case @p c: identity, labels, and its checksum in raresynth.json. */
static cJSON *load_case_manifest(vctx *v, const vcase *c, const char *manrel)
{
    cJSON *man = load_json(v, manrel, 1, 1, JSON_CASE_MAX_BYTES);
    if (man) {
        int ok;
        const char *cid = json_str(man, "case_id");
        if (json_int(json_get(man, "raresynth_case"), &ok) != 1 || !ok)
            problem(v, manrel, "\"raresynth_case\": 1 missing (not a raresynth case manifest)");
        if (!cid || strcmp(cid, c->id) != 0)
            problem(v, manrel, "case_id \"%.64s\" does not match the file name", cid ? cid : "");
        if (v->nnjson && !cJSON_Compare(json_get(man, "labels"), json_get(v->nnjson, "labels"), 1))
            problem(v, manrel, "labels differ from dataset.json");
    }
    if (c->entry && path_exists(v, manrel)) {
        const char *listed = json_str(c->entry, "manifest");
        const char *want = json_str(c->entry, "manifest_sha256");
        long h = file_hash(v, manrel);
        if (listed && strcmp(listed, manrel) != 0)
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d].manifest is \"%.128s\", not \"%s\"",
                    c->list_pos, listed, manrel);
        if (h >= 0 && (!want || strcmp(want, v->hashes[h].hex) != 0))
            problem(v, manrel,
                    "SHA-256 differs from " RSY_EXPORT_MANIFEST
                    " (manifest changed after it was written)");
    }
    return man;
}

/* The files both manifests list (present, safe, checksums), and the case's expected files
 * among them. */
static void check_case_files(vctx *v, const vcase *c, const cJSON *man, const char *manrel)
{
    const cJSON *mfiles = man ? json_get(man, "files") : NULL;
    const cJSON *dfiles = c->entry ? json_get(c->entry, "files") : NULL;
    if (man && !cJSON_IsObject(mfiles))
        problem(v, manrel, "\"files\" missing or not an object");
    if (c->entry && !cJSON_IsArray(dfiles))
        problem(v, RSY_EXPORT_MANIFEST, "cases[%d].files missing or not a list", c->list_pos);
    int n_listed = 0;
    walk_listed(v, manrel, mfiles, 0, check_listed_entry, &n_listed);
    n_listed = 0;
    walk_listed(v, RSY_EXPORT_MANIFEST, dfiles, 0, check_listed_entry, &n_listed);
    /* One line per file whose checksum differs, naming every manifest it disagrees with. */
    for (size_t i = 0; i < v->n_hashes; i++) {
        const hashed *h = &v->hashes[i];
        if (h->sha_bad)
            problem(v, h->rel, "SHA-256 differs from %s%s%s (file changed after it was written)",
                    h->sha_bad & 1 ? manrel : "", h->sha_bad == 3 ? " and " : "",
                    h->sha_bad & 2 ? RSY_EXPORT_MANIFEST : "");
    }
    char rel[RSY_EXPORT_REL_MAX];
    for (int f = -2; f < (v->have_nnunet ? v->n_channels : 0); f++) {
        if (f == -2)
            rsy__export_instance_relpath(c->id, rel, sizeof rel);
        else if (f == -1 && v->have_nnunet)
            snprintf(rel, sizeof rel, "%s/labelsTr/%s" RSY_EXPORT_NII, v->nnunet_dir, c->id);
        else if (f == -1)
            continue;
        else
            snprintf(rel, sizeof rel, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, c->id,
                     f);
        if (cJSON_IsObject(mfiles) && !lists(v, mfiles, rel))
            problem(v, manrel, "files: no SHA-256 recorded for %s", rel);
        if (cJSON_IsArray(dfiles) && !lists(v, dfiles, rel))
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d].files: no SHA-256 recorded for %s",
                    c->list_pos, rel);
    }
}

static rsy_status check_case(vctx *v, vcase *c)
{
    char manrel[RSY_EXPORT_REL_MAX], instrel[RSY_EXPORT_REL_MAX], labrel[RSY_EXPORT_REL_MAX],
        rel[RSY_EXPORT_REL_MAX], what[RSY_NAME_MAX + 96], obj[ID_MAX + 16];
    rsy_volume *lab = NULL, *inst = NULL, *img0 = NULL;
    rsy_nifti_info info0, info;
    rsy_lesion_record *rec = NULL;
    int n_rec = 0, measured = 0;
    hid_t grp = -1;
    v->rep->cases_checked++;
    v->n_hashes = 0;

    rsy__export_manifest_relpath(c->id, manrel, sizeof manrel);
    cJSON *man = load_case_manifest(v, c, manrel);
    if (v->h5 >= 0)
        grp = open_hdf5_case(v, c, obj, sizeof obj);

    if (v->have_nnunet) {
        snprintf(labrel, sizeof labrel, "%s/labelsTr/%s" RSY_EXPORT_NII, v->nnunet_dir, c->id);
        snprintf(what, sizeof what, "label map of %s", c->id);
        lab = read_volume(v, labrel, 1, what, NULL);
        if (lab)
            check_label_values(v, labrel, lab);
        count_label_voxels(v, lab);
        if (lab && grp >= 0)
            check_hdf5_volume(v, grp, obj, "label", -1, 1, lab, labrel);
        for (int ch = 0; ch < v->n_channels; ch++) {
            snprintf(rel, sizeof rel, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, c->id,
                     ch);
            snprintf(what, sizeof what, "channel %d (%s) of %s", ch, v->channel_names[ch], c->id);
            rsy_volume *img = read_volume(v, rel, 0, what, &info);
            if (img) {
                check_finite(v, rel, img);
                if (lab && !rsy_geometry_equal(&img->geom, &lab->geom))
                    problem(v, rel, "shape or affine differs from the label map %s", labrel);
                if (grp >= 0)
                    check_hdf5_volume(v, grp, obj, "image", ch, v->n_channels, img, rel);
            }
            if (ch == 0 && img) {
                img0 = img;
                info0 = info;
            } else {
                rsy_volume_destroy(img);
            }
        }
    }

    rsy__export_instance_relpath(c->id, instrel, sizeof instrel);
    snprintf(what, sizeof what, "instance map of %s", c->id);
    inst = read_volume(v, instrel, 1, what, NULL);
    if (inst && lab && !rsy_geometry_equal(&inst->geom, &lab->geom)) {
        problem(v, instrel, "shape or affine differs from the label map");
    } else if (inst && lab) {
        rec = check_lesions(v, manrel, man, instrel, inst, lab, &n_rec);
        measured = rec != NULL ||
                   (n_rec == 0 && inst->dtype == RSY_DTYPE_UINT16 && rsy__volume_max(inst) == 0.0);
        if (grp >= 0)
            check_hdf5_volume(v, grp, obj, "instances", -1, 1, inst, instrel);
    }
    if (grp >= 0)
        check_hdf5_case(v, c, grp, obj, img0 ? &info0 : NULL, rec, n_rec, measured);
    if (v->have_msd)
        check_msd_case(v, c, rec, n_rec, inst ? &inst->geom : NULL, measured);
    if (v->have_nndet)
        check_nndet_case(v, c, inst, rec, n_rec, measured, img0 ? &info0 : NULL, img0);
    if (v->previews)
        check_preview(v, c);
    check_case_files(v, c, man, manrel);
    if (!v->have_nnunet)
        v->summary_known = 0;
    rsy_status rc = case_against_dataset(v, manrel, man, c);

    if (grp >= 0)
        H5Gclose(grp);
    free(rec);
    rsy_volume_destroy(img0);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(lab);
    cJSON_Delete(man);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* raresynth.json against the cases                                                          */
/* ---------------------------------------------------------------------------------------- */
static void cmp_summary(vctx *v, const cJSON *obj, const char *path, const char *key, double want,
                        int defined)
{
    const cJSON *it = json_get(obj, key);
    if (!defined) {
        if (!cJSON_IsNull(it))
            problem(v, RSY_EXPORT_MANIFEST, "summary.%s.%s must be null (no lesion record)", path,
                    key);
        return;
    }
    if (!cJSON_IsNumber(it))
        problem(v, RSY_EXPORT_MANIFEST, "summary.%s.%s missing or not a number", path, key);
    else if (!(fabs(it->valuedouble - want) <=
               SUMMARY_REL_TOL * fmax(fabs(it->valuedouble), fabs(want))))
        problem(v, RSY_EXPORT_MANIFEST, "summary.%s.%s is %.17g, recomputed from the cases %.17g",
                path, key, it->valuedouble, want);
}

static int cmp_volume(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The "summary" of raresynth.json recomputed from every case manifest (lesion counts and
 * volumes) and label map (label voxels), and "effective.cases". */
static void check_summary(vctx *v)
{
    const cJSON *sum = json_get(v->dsman, "summary");
    int ok;
    if (!v->shard_count) {
        int64_t eff = json_int(json_get(json_get(v->dsman, "effective"), "cases"), &ok);
        if (!ok || eff < 0 || (size_t)eff != v->n_cases)
            problem(v, RSY_EXPORT_MANIFEST, "effective.cases is not the %zu cases listed",
                    v->n_cases);
    } else if (!sum) {
        return; /* a shard manifest need not summarise */
    }
    if (!cJSON_IsObject(sum)) {
        problem(v, RSY_EXPORT_MANIFEST, "\"summary\" missing or not an object");
        return;
    }
    if (!v->summary_known || v->cases_seen == 0)
        return; /* a case could not be read: reported already */
    const cJSON *lpc = json_get(sum, "lesions_per_case");
    cmp_summary(v, lpc, "lesions_per_case", "mean",
                (double)v->lesions_total / (double)v->cases_seen, 1);
    cmp_summary(v, lpc, "lesions_per_case", "min", (double)v->lesions_min, 1);
    cmp_summary(v, lpc, "lesions_per_case", "max", (double)v->lesions_max, 1);

    const cJSON *lv = json_get(sum, "lesion_volume_mm3");
    size_t n = v->n_volumes;
    double total = 0.0, median = 0.0;
    if (n) {
        for (size_t i = 0; i < n; i++)
            total += v->volumes[i];
        qsort(v->volumes, n, sizeof *v->volumes, cmp_volume);
        median = n % 2 ? v->volumes[n / 2] : 0.5 * (v->volumes[n / 2 - 1] + v->volumes[n / 2]);
    }
    cmp_summary(v, lv, "lesion_volume_mm3", "count", (double)n, 1);
    cmp_summary(v, lv, "lesion_volume_mm3", "mean", n ? total / (double)n : 0.0, n > 0);
    cmp_summary(v, lv, "lesion_volume_mm3", "median", median, n > 0);
    cmp_summary(v, lv, "lesion_volume_mm3", "min", n ? v->volumes[0] : 0.0, n > 0);
    cmp_summary(v, lv, "lesion_volume_mm3", "max", n ? v->volumes[n - 1] : 0.0, n > 0);

    const cJSON *lab = json_get(sum, "label_voxels");
    for (int l = 0; l < v->n_labels; l++)
        cmp_summary(v, lab, "label_voxels", v->label_names[l], (double)v->label_totals[l], 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Dataset-level steps                                                                        */
/* ---------------------------------------------------------------------------------------- */
/* Without raresynth.json (or dataset.json), take the perilesional labels (and channels and
 * labels) from the first manifest. */
static void dictionaries_from_manifest(vctx *v)
{
    if ((v->n_channels > 0 && v->n_labels > 0 && v->dsman) || v->n_cases == 0)
        return;
    char rel[RSY_EXPORT_REL_MAX];
    rsy__export_manifest_relpath(v->cases[0].id, rel, sizeof rel);
    cJSON *m = load_json(v, rel, 0, 0, JSON_CASE_MAX_BYTES);
    if (!m)
        return;
    if (v->n_labels < 0)
        parse_labels(v, rel, json_get(m, "labels"));
    const cJSON *images = json_get(json_get(m, "files"), "images");
    if (v->n_channels < 0 && cJSON_IsArray(images)) {
        const cJSON *im;
        int n = 0;
        cJSON_ArrayForEach(im, images)
        {
            const char *name = json_str(im, "name");
            if (n < MAX_CHANNELS)
                snprintf(v->channel_names[n], RSY_NAME_MAX, "%s", name ? name : "?");
            n++;
        }
        if (n >= 1 && n <= MAX_CHANNELS)
            v->n_channels = n;
    }
    if (v->n_labels > 0 && !v->dsman)
        perilesional_flags(v, rel, m, v->peri);
    cJSON_Delete(m);
}

/* raresynth.json's own identity and dictionaries, compared with dataset.json. */
static void check_dataset_manifest(vctx *v)
{
    const char *rel = RSY_EXPORT_MANIFEST;
    if (v->n_channels < 0)
        parse_channels(v, rel, json_get(v->dsman, "channels"), "channels");
    if (v->n_labels < 0)
        parse_labels(v, rel, json_get(v->dsman, "labels"));
    if (v->n_labels > 0)
        perilesional_flags(v, rel, v->dsman, v->peri);
    if (v->nnjson && !cJSON_Compare(json_get(v->dsman, "labels"), json_get(v->nnjson, "labels"), 1))
        problem(v, rel, "labels differ from %s/dataset.json", v->nnunet_dir);
    if (v->nnjson &&
        !cJSON_Compare(json_get(v->dsman, "channels"), json_get(v->nnjson, "channel_names"), 1))
        problem(v, rel, "channels differ from channel_names in %s/dataset.json", v->nnunet_dir);
}

/* "outputs" of raresynth.json: {"layouts": {"nnunet": folder, "msd": "msd", "nndet":
 * folder}, "formats": ["nifti", "hdf5"], "previews": bool}. Each layout listed has its folder,
 * each layout folder present is listed; hdf5 asked means an "hdf5" entry (not in a shard). */
static void check_outputs(vctx *v)
{
    const char *rel = RSY_EXPORT_MANIFEST;
    const cJSON *out = json_get(v->dsman, "outputs"), *it;
    if (!out)
        return; /* written by raresynth before 0.4 */
    const cJSON *lay = json_get(out, "layouts"), *fmt = json_get(out, "formats");
    const cJSON *prev = json_get(out, "previews");
    if (!cJSON_IsObject(out) || !cJSON_IsObject(lay) || !cJSON_IsArray(fmt) ||
        !cJSON_IsBool(prev)) {
        problem(v, rel,
                "outputs must be {\"layouts\": {name: folder}, \"formats\": [...], "
                "\"previews\": true/false}");
        return;
    }
    static const char *const names[] = {"nnunet", "msd", "nndet"};
    const char *dirs[] = {v->nnunet_dir, RSY_EXPORT_MSD_DIR, v->nndet_dir};
    const int have[] = {v->have_nnunet, v->have_msd, v->have_nndet};
    for (int l = 0; l < 3; l++) {
        const char *folder = json_str(lay, names[l]);
        if (folder && !have[l])
            problem(v, rel, "outputs.layouts lists %s (%.96s), but its folder is missing", names[l],
                    folder);
        else if (folder && strcmp(folder, dirs[l]) != 0)
            problem(v, rel, "outputs.layouts.%s is \"%.96s\", the folder is %s", names[l], folder,
                    dirs[l]);
        else if (!json_get(lay, names[l]) && have[l] && l > 0)
            problem(v, dirs[l], "layout folder present, but outputs.layouts does not list %s",
                    names[l]);
    }
    cJSON_ArrayForEach(it, lay)
    {
        int known = 0;
        for (int l = 0; l < 3; l++)
            known |= !strcmp(it->string, names[l]);
        if (!known)
            problem(v, rel, "outputs.layouts: unknown layout \"%.32s\"", it->string);
    }
    int hdf5 = 0;
    cJSON_ArrayForEach(it, fmt)
    {
        const char *f = cJSON_IsString(it) ? it->valuestring : "";
        if (!strcmp(f, "hdf5"))
            hdf5 = 1;
        else if (strcmp(f, "nifti") != 0)
            problem(v, rel, "outputs.formats: unknown format \"%.32s\"", f);
    }
    const cJSON *h = json_get(v->dsman, "hdf5");
    if (hdf5 && !v->shard_count && (!h || cJSON_IsNull(h)))
        problem(v, rel, "outputs.formats lists hdf5, but there is no \"hdf5\" entry");
    else if (!hdf5 && h && !cJSON_IsNull(h))
        problem(v, rel, "an \"hdf5\" entry, but outputs.formats does not list hdf5");
}

/* Are previews expected? raresynth.json outputs.previews, or a previews folder (an
 * interrupted run). */
static void find_previews(vctx *v)
{
    const cJSON *p = v->dsman ? json_get(json_get(v->dsman, "outputs"), "previews") : NULL;
    v->previews = cJSON_IsTrue(p) || path_exists(v, RSY_EXPORT_PREVIEW_DIR);
    if (cJSON_IsFalse(p) && v->previews)
        problem(v, RSY_EXPORT_PREVIEW_DIR, "present, but outputs.previews is false");
}

/* The folders of every layout: no stray file, every folder there. */
static void check_folders(vctx *v)
{
    char sub[RSY_EXPORT_REL_MAX];
    int any = v->n_cases > 0;
    if (v->have_nnunet) {
        snprintf(sub, sizeof sub, "%s/imagesTr", v->nnunet_dir);
        check_folder(v, sub, FK_IMAGES, any);
        snprintf(sub, sizeof sub, "%s/labelsTr", v->nnunet_dir);
        check_folder(v, sub, FK_NII, any);
        check_leftovers(v, v->nnunet_dir);
    }
    check_folder(v, RSY_EXPORT_INSTANCE_DIR, FK_NII, any);
    if (v->have_msd) {
        snprintf(sub, sizeof sub, "%s/imagesTr", RSY_EXPORT_MSD_DIR);
        check_folder(v, sub, FK_IMAGES, any && v->msdjson);
        snprintf(sub, sizeof sub, "%s/labelsTr", RSY_EXPORT_MSD_DIR);
        check_folder(v, sub, FK_NII, any && v->msdjson);
        check_leftovers(v, RSY_EXPORT_MSD_DIR);
    }
    if (v->have_nndet) {
        snprintf(sub, sizeof sub, "%s/raw_splitted/imagesTr", v->nndet_dir);
        check_folder(v, sub, FK_IMAGES, any);
        snprintf(sub, sizeof sub, "%s/raw_splitted/labelsTr", v->nndet_dir);
        check_folder(v, sub, FK_NNDET_LABELS, any);
        check_leftovers(v, v->nndet_dir);
    }
    if (v->previews)
        check_folder(v, RSY_EXPORT_PREVIEW_DIR, FK_PNG, any);
    check_leftovers(v, ".");
    check_staging(v);
}

/* The last line: the dataset's state. An interrupted run is one problem (the dataset cannot
 * be used yet) that says whether what is there is consistent; a shard is a finished part of a
 * dataset, stated as a note. */
static void report_state(vctx *v, int64_t problems_before)
{
    int64_t found = v->rep->problems - problems_before;
    char list[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < v->n_cases && len < sizeof list - 80; i++)
        len +=
            (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", v->cases[i].id);
    if (len >= sizeof list - 80 && v->n_cases > 0)
        snprintf(list + len, sizeof list - len, ", ...");
    if (v->shard_count) {
        note(v, NULL, "incomplete: shard %lld of %lld, holds cases %s (%zu); %s",
             (long long)v->shard_index, (long long)v->shard_count, v->n_cases ? list : "(none)",
             v->n_cases,
             found ? "problems above"
                   : "consistent: join the shards with raresynth merge SHARD_DIR... --out DIR");
        return;
    }
    if (v->rep->complete)
        return;
    char partial[64] = "";
    if (v->partial_files)
        snprintf(partial, sizeof partial, "; %lld partial file(s) listed above",
                 (long long)v->partial_files);
    if (found)
        problem(v, NULL,
                "incomplete dataset: " RSY_EXPORT_MANIFEST " missing (interrupted run?): %zu "
                "case(s) with a manifest%s; %lld problem(s) above",
                v->n_cases, partial, (long long)found);
    else
        problem(v, NULL,
                "incomplete dataset: " RSY_EXPORT_MANIFEST " missing (interrupted run?): the %zu "
                "case(s) present are complete and consistent (%s)%s; raresynth generate --resume "
                "finishes it",
                v->n_cases, v->n_cases ? list : "none", partial);
}

/* ---------------------------------------------------------------------------------------- */
/* Entry point                                                                                */
/* ---------------------------------------------------------------------------------------- */
rsy_status rsy_export_validate(const char *dir, rsy_validate_report *rep)
{
    rsy_validate_report local = {0, 0, 0, 0};
    rsy_validate_report *r = rep ? rep : &local;
    struct stat st;
    rsy_status rc = RSY_OK;
    memset(r, 0, sizeof *r);
    if (!dir)
        return RSY_EINVAL;
    if (stat(dir, &st) != 0) {
        rsy_log_error("%s: %s", dir, strerror(errno));
        return RSY_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        rsy_log_error("%s: not a directory", dir);
        return RSY_EIO;
    }
    vctx *v = calloc(1, sizeof *v);
    if (!v)
        return RSY_ENOMEM;
    if (!realpath(dir, v->real_dir)) {
        rsy_log_error("%s: %s", dir, strerror(errno));
        free(v);
        return RSY_EIO;
    }
    v->dir = dir;
    v->rep = r;
    v->n_channels = -1;
    v->n_labels = -1;
    v->total_cases = -1;
    v->h5 = -1;

    if (!file_ok(v, RSY_EXPORT_MARKER))
        problem(v, RSY_EXPORT_MARKER, "marker missing: not a raresynth dataset directory");
    if (path_exists(v, RSY_EXPORT_MANIFEST)) {
        v->dsman = load_json(v, RSY_EXPORT_MANIFEST, 1, 1, RSY_EXPORT_JSON_MAX_BYTES);
        int ok;
        if (v->dsman && (json_int(json_get(v->dsman, "raresynth_dataset"), &ok) != 1 || !ok))
            problem(v, RSY_EXPORT_MANIFEST, "\"raresynth_dataset\": 1 missing");
        if (v->dsman)
            parse_shard(v);
        r->complete = v->shard_count == 0;
    }
    int64_t problems_before = r->problems;

    if ((rc = collect_cases(v)) != RSY_OK)
        goto done;
    check_shard_cases(v);
    find_nnunet_dir(v);
    if (v->have_nnunet)
        check_nnunet_json(v);
    if (v->dsman)
        check_dataset_manifest(v);
    dictionaries_from_manifest(v);
    if (v->n_channels < 0)
        problem(v, NULL, "channel names unknown (no dataset.json, raresynth.json or manifest)");
    check_msd_dataset(v);
    check_nndet_dataset(v);
    if (v->dsman)
        check_outputs(v);
    open_hdf5(v);
    if (v->h5 >= 0)
        check_hdf5_root(v);
    find_previews(v);
    check_folders(v);

    v->summary_known = 1;
    for (size_t i = 0; rc == RSY_OK && i < v->n_cases; i++)
        rc = check_case(v, &v->cases[i]);
    if (rc == RSY_OK && v->dsman)
        check_summary(v);
    if (rc == RSY_OK)
        report_state(v, problems_before);

done:
    if (v->h5 >= 0)
        H5Fclose(v->h5);
    for (size_t i = 0; i < v->n_cases; i++)
        free(v->cases[i].id);
    free(v->cases);
    free(v->volumes);
    free(v->hashes);
    cJSON_Delete(v->dsman);
    cJSON_Delete(v->nnjson);
    cJSON_Delete(v->msdjson);
    free(v);
    if (rc != RSY_OK)
        return rc;
    return r->problems > 0 ? RSY_EINVALID_DATASET : RSY_OK;
}
