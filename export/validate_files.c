/*
 * validate_files.c: how `raresynth validate` reads the files of a dataset, and the checks of
 * single files (validate.c has the overview).
 *
 * - hostile-input guards: a path is opened only when it resolves to a regular file or folder
 *   inside DIR; JSON documents are size- and depth-limited before parsing and refused with a
 *   duplicate key; a NIfTI header's dims are checked against what the file can hold before any
 *   voxel is read;
 * - NIfTI headers and voxels (finite images, declared label values);
 * - checksums: each file hashed once per case, the files both manifests list, the layouts'
 *   copies compared by inode or SHA-256;
 * - folders: every file belongs to a case; partial files of an interrupted run (no
 *   raresynth.json) are listed, not counted; temporaries and DIR/.staging;
 * - shards: a shard manifest and the cases it must hold;
 * - previews: PNG signature, IHDR and IEND.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "validate_internal.h"

/* Largest quaternion-vs-row discrepancy accepted between qform and sform, mm. */
#define QS_TOL_MM 1e-4
/* Previews larger than this on a side are refused by the writer (docs/previews.md). */
#define PREVIEW_MAX_SIDE 32768

/* NIfTI-1 datatype codes (nifti1.h) of the integer types. */
static const int integer_datatypes[] = {2, 4, 8, 256, 512, 768, 1024, 1280};

static int mark_once(vctx *v, const char *rel, unsigned what);

/* ---------------------------------------------------------------------------------------- */
/* Paths: nothing outside DIR is ever opened                                                  */
/* ---------------------------------------------------------------------------------------- */
/* A relative path from a manifest: not empty, not absolute, no "." or ".." component, no
 * empty component, printable ASCII, shorter than RSY_EXPORT_REL_MAX. */
int rsy__validate_rel_safe(const char *rel)
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
loc_state rsy__validate_locate(vctx *v, const char *rel, int want_dir, char *path, size_t n,
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
int rsy__validate_file_ok(vctx *v, const char *rel)
{
    char path[RSY_PATH_MAX];
    return rsy__validate_locate(v, rel, 0, path, sizeof path, NULL) == LOC_OK;
}

/* 1 if anything exists at @p rel (not followed). */
int rsy__validate_path_exists(const vctx *v, const char *rel)
{
    char path[RSY_PATH_MAX];
    struct stat st;
    return full_path(v, rel, path, sizeof path) && lstat(path, &st) == 0;
}

/* Open the folder @p rel inside the dataset; NULL if missing (not reported) or hostile
 * (reported). */
DIR *rsy__validate_open_folder(vctx *v, const char *rel, int *missing)
{
    char path[RSY_PATH_MAX];
    loc_state s = rsy__validate_locate(v, rel, 1, path, sizeof path, NULL);
    if (missing)
        *missing = s == LOC_MISSING;
    if (s != LOC_OK)
        return NULL;
    DIR *d = opendir(path);
    if (!d)
        problem(v, rel, "cannot be listed: %s", strerror(errno));
    return d;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                       */
/* ---------------------------------------------------------------------------------------- */
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
cJSON *rsy__validate_load_json_text(vctx *v, const char *rel, int report_missing, int count,
                                    size_t max_bytes, char **text_out)
{
    char path[RSY_PATH_MAX], *text = NULL;
    size_t len = 0;
    if (text_out)
        *text_out = NULL;
    loc_state s = rsy__validate_locate(v, rel, 0, path, sizeof path, NULL);
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

cJSON *rsy__validate_load_json(vctx *v, const char *rel, int report_missing, int count,
                               size_t max_bytes)
{
    return rsy__validate_load_json_text(v, rel, report_missing, count, max_bytes, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Shards                                                                                     */
/* ---------------------------------------------------------------------------------------- */
/* "shard": {"index": K, "count": N, "n_cases": M} of a shard manifest (docs/manifest.md,
 * "Shard manifest"); reported if malformed. n_cases and effective.cases of the document are
 * the whole dataset's count. */
void rsy__validate_parse_shard(vctx *v)
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

/* A shard holds exactly the cases i with i % count == index (of the run's effective.cases
 * when known). */
void rsy__validate_check_shard_cases(vctx *v)
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
        if (!rsy__validate_find_case(v, id))
            problem(v, RSY_EXPORT_MANIFEST, "shard %lld of %lld lacks case %s",
                    (long long)v->shard_index, (long long)v->shard_count, id);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Folders: every file belongs to a case                                                      */
/* ---------------------------------------------------------------------------------------- */
/* The case id of file @p name in a folder of kind @p k into @p id (ID_MAX + 8 bytes); 0 if
 * the name does not fit the pattern. */
int rsy__validate_file_case_id(const vctx *v, const char *name, folder_kind k, char *id)
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
    DIR *d = rsy__validate_open_folder(v, sub, &missing);
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
        int pattern = rsy__validate_file_case_id(v, name, k, id);
        if (pattern && rsy__validate_find_case(v, id))
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
    DIR *d = rsy__validate_open_folder(v, sub, NULL);
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
    if (!rsy__validate_path_exists(v, rel))
        return;
    if (v->dsman) {
        problem(v, rel, "left over in a finished dataset (files of a failed case)");
        return;
    }
    DIR *d = rsy__validate_open_folder(v, rel, NULL);
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

/* The folders of every layout: no stray file, every folder there. */
void rsy__validate_check_folders(vctx *v)
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

/* ---------------------------------------------------------------------------------------- */
/* NIfTI files                                                                                */
/* ---------------------------------------------------------------------------------------- */
/* Before a volume is read: do the voxels its header declares fit the file? A header that
 * claims more than the file can hold (deflate expands at most 1032:1) or more than
 * RSY__NIFTI_MAX_BYTES is reported and the file not read, so no allocation follows a hostile
 * header (rsy__nifti_check_extent, the rule rsy_volume_read_nifti applies too). Anything else
 * wrong with the header is left to the reader's messages. */
static int volume_size_ok(vctx *v, const char *rel, const char *path)
{
    rsy__nifti_extent e;
    rsy_status rc = rsy__nifti_check_extent(path, &e);
    const int *dim = e.dim;
    if (rc == RSY_ELIMIT) {
        problem(v, rel,
                "header declares %d x %d x %d voxels (dim[0] %d), beyond the %llu GiB validate "
                "reads; not read",
                dim[1], dim[0] > 1 ? dim[2] : 1, dim[0] > 2 ? dim[3] : 1, dim[0],
                (unsigned long long)(RSY__NIFTI_MAX_BYTES >> 30));
        return 0;
    }
    if (rc != RSY_OK) {
        problem(v, rel,
                "header declares %d x %d x %d voxels of %d bytes (%llu bytes), more than this "
                "%llu-byte file can hold: truncated or corrupt; not read",
                dim[1], dim[0] > 1 ? dim[2] : 1, dim[0] > 2 ? dim[3] : 1, e.bytes_per_voxel,
                (unsigned long long)e.raw_bytes, (unsigned long long)e.file_bytes);
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
rsy_volume *rsy__validate_read_volume(vctx *v, const char *rel, int label, const char *what,
                                      rsy_nifti_info *info)
{
    char path[RSY_PATH_MAX];
    rsy_nifti_info local;
    rsy_nifti_info *inf = info ? info : &local;
    rsy_volume *vol = NULL;
    loc_state s = rsy__validate_locate(v, rel, 0, path, sizeof path, NULL);
    if (s == LOC_MISSING)
        rsy__validate_missing_once(v, rel, "%s", what);
    if (s != LOC_OK || !volume_size_ok(v, rel, path))
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

void rsy__validate_check_finite(vctx *v, const char *rel, const rsy_volume *vol)
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

void rsy__validate_check_label_values(vctx *v, const char *rel, const rsy_volume *vol)
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
long rsy__validate_file_hash(vctx *v, const char *rel)
{
    long i = entry_of(v, rel);
    if (i < 0)
        return -1;
    if (v->hashes[i].hashed)
        return v->hashes[i].ok ? i : -1;
    v->hashes[i].hashed = 1;
    char path[RSY_PATH_MAX], hex[65];
    struct stat st;
    if (rsy__validate_locate(v, rel, 0, path, sizeof path, &st) !=
        LOC_OK) /* may grow the registry */
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

void rsy__validate_missing_once(vctx *v, const char *rel, const char *fmt, ...)
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
void rsy__validate_check_identical(vctx *v, const char *rel, const char *src, const char *layout)
{
    long ia = rsy__validate_file_hash(v, rel), ib = rsy__validate_file_hash(v, src);
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
    if (!p || !rsy__validate_rel_safe(p)) {
        problem(v, owner,
                "lists the path \"%.128s\", which is not a relative path inside the dataset "
                "(no leading '/', no '..')",
                p ? p : "(not a string)");
        return;
    }
    if (!rsy__validate_path_exists(v, p)) {
        rsy__validate_missing_once(v, p, "listed in %s", owner);
        return;
    }
    long i = rsy__validate_file_hash(v, p);
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
/* The files both manifests list (present, safe, checksums), and the case's expected files
 * among them. */
void rsy__validate_check_case_files(vctx *v, const vcase *c, const cJSON *man, const char *manrel)
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

/* ---------------------------------------------------------------------------------------- */
/* Previews (docs/previews.md)                                                                */
/* ---------------------------------------------------------------------------------------- */
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* previews/<case>.png: the PNG signature, an IHDR first (8-bit RGB, not interlaced, sides
 * 1..32768, CRC correct) and an IEND last. The image data is not decoded. */
void rsy__validate_check_preview(vctx *v, const vcase *c)
{
    char rel[RSY_EXPORT_REL_MAX], path[RSY_PATH_MAX];
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    snprintf(rel, sizeof rel, "%s/%s.png", RSY_EXPORT_PREVIEW_DIR, c->id);
    struct stat st;
    loc_state s = rsy__validate_locate(v, rel, 0, path, sizeof path, &st);
    if (s == LOC_MISSING)
        rsy__validate_missing_once(v, rel, "preview of %s", c->id);
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
