/*
 * hdf5.c: the HDF5 dataset writer (rsy_export.h, "HDF5"; layout and attributes in docs/hdf5.md).
 *
 * Reproducibility. Equal inputs give byte-identical files, so nothing in the file may depend
 * on time, on the process or on memory left over from earlier work:
 * - object timestamps off on the file, group and dataset creation property lists
 *   (H5Pset_obj_track_times; reference/formats.md, "HDF5 1.10.8");
 * - link and attribute creation order neither tracked nor indexed, so the only orders in the
 *   file are the order of our calls and HDF5's name hashes;
 * - a fixed file format (H5Pset_libver_bounds V18..V18): the bytes do not change with the
 *   HDF5 version that writes them, and every HDF5 >= 1.8 (h5py, MATLAB, ITK) reads them;
 * - chunks compressed here and stored with H5Dwrite_chunk (write_chunks()), the part of an
 *   edge chunk outside the dataset zero-filled (0 is also the dataset's fill value), so no
 *   byte comes from a buffer HDF5 or we used before;
 * - attributes and datasets written in a fixed order; the root's n_cases and case_ids last.
 * tests/test_hdf5.c writes the same input twice, with the heap dirtied in between, and
 * compares the bytes.
 *
 * Errors. HDF5's automatic error printing is off for the calling thread (the Debian build is
 * thread-safe, where the setting is per thread), and every negative return becomes a status
 * with one logged line "PATH: OBJECT: HDF5 failed to WHAT: CAUSE", CAUSE being the innermost
 * message of HDF5's error stack (for a failed write, the system's reason, e.g. "No space left
 * on device"). A failure that HDF5 traces to the low-level I/O layer is RSY_EIO, so the CLI
 * reports a full disk as an I/O error; anything else is RSY_EDEP.
 *
 * Atomicity. The file is created under rsy__file_temp_path(path) in the target's directory,
 * and only rsy_export_hdf5_close() makes it visible: flush, close, fsync, rename, fsync of the
 * directory (the same sequence as the NIfTI writer's files). Any failure removes the
 * temporary file; the target is never half-written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>
#include <zlib.h>

#include "export_internal.h"

#define HDF5_FORMAT "raresynth-hdf5"
#define HDF5_FORMAT_VERSION 1
/* Room for a case's object path in messages ("/cases/<case_id>"; twice that for the
 * objects inside it). */
#define OBJ_MAX 96

/* One row of /cases/<id>/lesions in memory. The file type is built from lesion_fields[]. */
typedef struct lesion_row {
    int32_t instance_id;
    const char *type, *display_name, *host, *region;
    int32_t label;
    int64_t voxel_count;
    double volume_mm3;
    int64_t mass_voxel_count;
    double mass_volume_mm3;
    double centroid_vox[3], centroid_mm[3];
    int64_t bbox_min_vox[3], bbox_max_vox[3];
    double box_cccwhd_mm[6];
    double long_axis_mm, short_axis_mm;
    int64_t key_slice;
    int64_t slice_range[2];
    double equivalent_diameter_mm;
    int64_t label_voxels[RSY_MAX_LABELS];
} lesion_row;

typedef enum { F_I32, F_I64, F_F64, F_STR } field_kind;

/* The lesion table's columns, in the order and with the names of the manifest's lesion
 * objects (docs/manifest.md section 4) plus "label"; count 0 means one per label value. */
static const struct {
    const char *name;
    size_t offset;
    field_kind kind;
    int count;
} lesion_fields[] = {
    {"instance_id", offsetof(lesion_row, instance_id), F_I32, 1},
    {"type", offsetof(lesion_row, type), F_STR, 1},
    {"display_name", offsetof(lesion_row, display_name), F_STR, 1},
    {"host", offsetof(lesion_row, host), F_STR, 1},
    {"region", offsetof(lesion_row, region), F_STR, 1},
    {"label", offsetof(lesion_row, label), F_I32, 1},
    {"voxel_count", offsetof(lesion_row, voxel_count), F_I64, 1},
    {"volume_mm3", offsetof(lesion_row, volume_mm3), F_F64, 1},
    {"mass_voxel_count", offsetof(lesion_row, mass_voxel_count), F_I64, 1},
    {"mass_volume_mm3", offsetof(lesion_row, mass_volume_mm3), F_F64, 1},
    {"centroid_vox", offsetof(lesion_row, centroid_vox), F_F64, 3},
    {"centroid_mm", offsetof(lesion_row, centroid_mm), F_F64, 3},
    {"bbox_min_vox", offsetof(lesion_row, bbox_min_vox), F_I64, 3},
    {"bbox_max_vox", offsetof(lesion_row, bbox_max_vox), F_I64, 3},
    {"box_cccwhd_mm", offsetof(lesion_row, box_cccwhd_mm), F_F64, 6},
    {"long_axis_mm", offsetof(lesion_row, long_axis_mm), F_F64, 1},
    {"short_axis_mm", offsetof(lesion_row, short_axis_mm), F_F64, 1},
    {"key_slice", offsetof(lesion_row, key_slice), F_I64, 1},
    {"slice_range", offsetof(lesion_row, slice_range), F_I64, 2},
    {"equivalent_diameter_mm", offsetof(lesion_row, equivalent_diameter_mm), F_F64, 1},
    {"label_voxels", offsetof(lesion_row, label_voxels), F_I64, 0},
};
#define N_LESION_FIELDS (sizeof lesion_fields / sizeof lesion_fields[0])

struct rsy_export_hdf5 {
    char *path; /* the target */
    char *tmp;  /* the temporary file beside it */
    char *dir;  /* the target's directory, fsynced after the rename */
    int level;
    int n_channels, n_labels;
    char **channel_names; /* n_channels, owned */
    unsigned char perilesional[RSY_MAX_LABELS];
    hid_t file, cases;      /* the open file and its /cases group */
    hid_t gcpl, dcpl_plain; /* no timestamps, no creation order; dcpl_plain: no chunking */
    hid_t t_str;            /* variable-length UTF-8 string (file and memory) */
    hid_t t_row_mem, t_row_file;
    hid_t maj_io, min_write; /* error classes that mean "the I/O layer failed" */
    int tmp_created;         /* the temporary file is ours to remove */
    int have_case;
    size_t last_index;
    size_t n_cases, cap;
    size_t *case_index; /* n_cases indices written, increasing */
    rsy_status failed;  /* != RSY_OK once a write failed: only close/abort remain */
    int swap;           /* the host is big-endian: chunks are byte-swapped to the LE file types */
    uint8_t *chunk_buf, *shuffle_buf, *deflate_buf; /* one chunk, reused for every chunk */
    size_t deflate_cap;
};

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                     */
/* ---------------------------------------------------------------------------------------- */
typedef struct h5_cause {
    hid_t maj_io, min_write;
    int io;
    char text[200];
} h5_cause;

/* Walked upward: entry 0 is the innermost (most specific) error. A system error carries
 * "..., errno = N, error message = 'REASON', ..." (HDF5 H5Eprivate.h HSYS_ERROR): keep REASON. */
static herr_t cause_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_cause *c = data;
    if (e->maj_num == c->maj_io || e->min_num == c->min_write)
        c->io = 1;
    if (n == 0 && e->desc) {
        const char *key = "error message = '";
        const char *s = strstr(e->desc, key);
        if (s) {
            s += strlen(key);
            const char *end = strchr(s, '\'');
            int len = end ? (int)(end - s) : (int)strlen(s);
            snprintf(c->text, sizeof c->text, "%.*s", len, s);
        } else {
            snprintf(c->text, sizeof c->text, "%s", e->desc);
        }
    }
    return 0;
}

/* Log the failed step with HDF5's innermost reason and clear the error stack. Call it right
 * after the failing call: the next HDF5 API call clears the stack. */
static rsy_status h5_fail(const rsy_export_hdf5 *w, const char *obj, const char *fmt, ...)
    RSY_FORMAT(3, 4);

static rsy_status h5_fail(const rsy_export_hdf5 *w, const char *obj, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    h5_cause c = {w->maj_io, w->min_write, 0, ""};
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, cause_cb, &c) < 0)
        c.text[0] = '\0';
    H5Eclear2(H5E_DEFAULT);
    rsy_log_error("%s: %s: HDF5 failed to %s%s%s", w->path, obj, what, c.text[0] ? ": " : "",
                  c.text);
    return c.io ? RSY_EIO : RSY_EDEP;
}

/* The error printing setting is per thread in a thread-safe HDF5: set it at every entry. */
static void h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Attributes                                                                                 */
/* ---------------------------------------------------------------------------------------- */
/* Attribute @p name of @p rank (0 = scalar) and @p dims on @p loc, written from @p buf. */
static rsy_status put_attr(const rsy_export_hdf5 *w, hid_t loc, const char *obj, const char *name,
                           hid_t ftype, hid_t mtype, int rank, const hsize_t *dims, const void *buf)
{
    rsy_status rc = RSY_OK;
    hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    if (space < 0)
        return h5_fail(w, obj, "create the dataspace of attribute '%s'", name);
    hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        rc = h5_fail(w, obj, "create attribute '%s'", name);
    else if (H5Awrite(a, mtype, buf) < 0)
        rc = h5_fail(w, obj, "write attribute '%s'", name);
    if (a >= 0 && H5Aclose(a) < 0 && rc == RSY_OK)
        rc = h5_fail(w, obj, "close attribute '%s'", name);
    if (H5Sclose(space) < 0 && rc == RSY_OK)
        rc = h5_fail(w, obj, "close the dataspace of attribute '%s'", name);
    return rc;
}

static rsy_status put_str(const rsy_export_hdf5 *w, hid_t loc, const char *obj, const char *name,
                          const char *s)
{
    const char *v = s ? s : "";
    return put_attr(w, loc, obj, name, w->t_str, w->t_str, 0, NULL, &v);
}

/* A 1-D array of strings (h5py: a numpy array of str); n may be 0. */
static rsy_status put_strs(const rsy_export_hdf5 *w, hid_t loc, const char *obj, const char *name,
                           const char *const *s, size_t n)
{
    static const char *const none[1] = {""};
    const hsize_t dims[1] = {n};
    return put_attr(w, loc, obj, name, w->t_str, w->t_str, 1, dims, n ? (const void *)s : none);
}

static rsy_status put_i64(const rsy_export_hdf5 *w, hid_t loc, const char *obj, const char *name,
                          int64_t v)
{
    return put_attr(w, loc, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, &v);
}

static rsy_status put_f64s(const rsy_export_hdf5 *w, hid_t loc, const char *obj, const char *name,
                           int rank, const hsize_t *dims, const double *v)
{
    return put_attr(w, loc, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, v);
}

/* ---------------------------------------------------------------------------------------- */
/* Creation                                                                                   */
/* ---------------------------------------------------------------------------------------- */
rsy_export_hdf5_params rsy_export_hdf5_params_default(void)
{
    rsy_export_hdf5_params p;
    memset(&p, 0, sizeof p);
    p.deflate_level = RSY_EXPORT_HDF5_LEVEL_DEFAULT;
    return p;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static rsy_status check_params(const rsy_export_hdf5_params *p)
{
    if (!p->path || !p->path[0] || !p->dataset_name || !p->recipe_sha256 || !p->modality) {
        rsy_log_error("HDF5 export: missing file path, dataset name, recipe hash or modality");
        return RSY_EINVAL;
    }
    if (p->deflate_level < 0 || p->deflate_level > 9) {
        rsy_log_error("%s: deflate level must be 0..9, got %d", p->path, p->deflate_level);
        return RSY_EINVAL;
    }
    if (!p->channel_names || p->n_channels < 1 || p->n_channels > RSY_MAX_SEQUENCES) {
        rsy_log_error("%s: need 1..%d channel names, got %d", p->path, RSY_MAX_SEQUENCES,
                      p->n_channels);
        return RSY_EINVAL;
    }
    for (int c = 0; c < p->n_channels; c++) {
        if (!p->channel_names[c] || !p->channel_names[c][0]) {
            rsy_log_error("%s: channel %d has no name", p->path, c);
            return RSY_EINVAL;
        }
    }
    if (!p->label_names || p->n_labels < 1 || p->n_labels > RSY_MAX_LABELS) {
        rsy_log_error("%s: need 1..%d label names, got %d", p->path, RSY_MAX_LABELS, p->n_labels);
        return RSY_EINVAL;
    }
    for (int i = 0; i < p->n_labels; i++) {
        const char *n = p->label_names[i];
        if (!n || !n[0] || (i == 0 && strcmp(n, "background") != 0)) {
            rsy_log_error("%s: label value %d has name \"%s\" (value 0 must be \"background\", "
                          "names non-empty)",
                          p->path, i, n ? n : "(null)");
            return RSY_EINVAL;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(p->label_names[j], n) == 0) {
                rsy_log_error("%s: label name \"%s\" used for values %d and %d", p->path, n, j, i);
                return RSY_EINVAL;
            }
        }
    }
    if (p->label_perilesional && p->label_perilesional[0]) {
        rsy_log_error("%s: \"background\" (value 0) cannot be perilesional", p->path);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

/* The file and memory compound types of the lesion table (label_voxels has n_labels
 * elements). Both are closed by the caller. */
static rsy_status make_row_types(rsy_export_hdf5 *w)
{
    size_t file_size = 0;
    for (size_t f = 0; f < N_LESION_FIELDS; f++) {
        size_t count =
            lesion_fields[f].count ? (size_t)lesion_fields[f].count : (size_t)w->n_labels;
        size_t elem = lesion_fields[f].kind == F_I32 ? 4 : 8;
        file_size += lesion_fields[f].kind == F_STR ? sizeof(char *) : elem * count;
    }
    w->t_row_mem = H5Tcreate(H5T_COMPOUND, sizeof(lesion_row));
    w->t_row_file = H5Tcreate(H5T_COMPOUND, file_size);
    if (w->t_row_mem < 0 || w->t_row_file < 0)
        return h5_fail(w, "/", "create the lesion table's compound types");
    size_t file_off = 0;
    for (size_t f = 0; f < N_LESION_FIELDS; f++) {
        const char *name = lesion_fields[f].name;
        hid_t mbase, fbase;
        switch (lesion_fields[f].kind) {
        case F_I32:
            mbase = H5T_NATIVE_INT32;
            fbase = H5T_STD_I32LE;
            break;
        case F_I64:
            mbase = H5T_NATIVE_INT64;
            fbase = H5T_STD_I64LE;
            break;
        case F_F64:
            mbase = H5T_NATIVE_DOUBLE;
            fbase = H5T_IEEE_F64LE;
            break;
        case F_STR:
        default:
            mbase = fbase = w->t_str;
            break;
        }
        hsize_t count =
            lesion_fields[f].count ? (hsize_t)lesion_fields[f].count : (hsize_t)w->n_labels;
        hid_t mt = count > 1 ? H5Tarray_create2(mbase, 1, &count) : H5Tcopy(mbase);
        hid_t ft = count > 1 ? H5Tarray_create2(fbase, 1, &count) : H5Tcopy(fbase);
        herr_t st = mt < 0 || ft < 0 ? -1 : 0;
        if (st >= 0)
            st = H5Tinsert(w->t_row_mem, name, lesion_fields[f].offset, mt);
        if (st >= 0)
            st = H5Tinsert(w->t_row_file, name, file_off, ft);
        rsy_status rc =
            st < 0 ? h5_fail(w, "/", "add column '%s' to the lesion table", name) : RSY_OK;
        if (st >= 0)
            file_off += H5Tget_size(ft);
        if (mt >= 0)
            H5Tclose(mt);
        if (ft >= 0)
            H5Tclose(ft);
        if (rc != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* {"background": 0, "name": 1, ...} in value order (nnU-Net dataset.json "labels"). */
static char *labels_json(const rsy_export_hdf5_params *p)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < p->n_labels; i++) {
        if (!cJSON_AddNumberToObject(o, p->label_names[i], i)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

static rsy_status write_root(rsy_export_hdf5 *w, const rsy_export_hdf5_params *p)
{
    const char *o = "/";
    hid_t f = w->file;
    char seed[24];
    const char *peri[RSY_MAX_LABELS];
    size_t n_peri = 0;
    for (int i = 1; i < p->n_labels; i++)
        if (w->perilesional[i])
            peri[n_peri++] = p->label_names[i];
    rsy__export_u64_string(p->dataset_seed, seed);
    char *json = labels_json(p);
    if (!json)
        return RSY_ENOMEM;
    rsy_status rc;
    if ((rc = put_str(w, f, o, "format", HDF5_FORMAT)) != RSY_OK ||
        (rc = put_i64(w, f, o, "format_version", HDF5_FORMAT_VERSION)) != RSY_OK ||
        (rc = put_str(w, f, o, "generator", "raresynth")) != RSY_OK ||
        (rc = put_str(w, f, o, "generator_version", RSY_VERSION_STRING)) != RSY_OK ||
        (rc = put_str(w, f, o, "dataset_name", p->dataset_name)) != RSY_OK ||
        (rc = put_str(w, f, o, "recipe_sha256", p->recipe_sha256)) != RSY_OK ||
        (rc = put_str(w, f, o, "dataset_seed", seed)) != RSY_OK ||
        (rc = put_str(w, f, o, "modality", p->modality)) != RSY_OK ||
        (rc = put_strs(w, f, o, "channel_names", p->channel_names, (size_t)p->n_channels)) !=
            RSY_OK ||
        (rc = put_strs(w, f, o, "label_names", p->label_names, (size_t)p->n_labels)) != RSY_OK ||
        (rc = put_str(w, f, o, "labels", json)) != RSY_OK ||
        (rc = put_strs(w, f, o, "labels_perilesional", peri, n_peri)) != RSY_OK ||
        (rc = put_str(w, f, o, "coordinate_system", RSY_EXPORT_COORDS)) != RSY_OK ||
        (rc = put_str(w, f, o, "index_order",
                      "image[c, k, j, i], label[k, j, i], instances[k, j, i] (C order: "
                      "channel, z, y, x); affine maps voxel (i, j, k, 1) to RAS+ mm as the "
                      "NIfTI sform does; spacing_mm is (di, dj, dk)")) != RSY_OK ||
        (rc = put_str(w, f, o, "data_sources", RSY_EXPORT_DATA_SOURCES)) != RSY_OK) {
        cJSON_free(json);
        return rc;
    }
    cJSON_free(json);
    return RSY_OK;
}

/* The directory part of @p path ("." when it has none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return dup_str(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* Close every HDF5 object of @p w; errors are ignored (used when the file is discarded). */
static void close_handles(rsy_export_hdf5 *w)
{
    if (w->cases >= 0)
        H5Gclose(w->cases);
    if (w->file >= 0)
        H5Fclose(w->file);
    w->cases = w->file = -1;
}

static void writer_free(rsy_export_hdf5 *w)
{
    hid_t plists[2] = {w->gcpl, w->dcpl_plain};
    hid_t types[3] = {w->t_str, w->t_row_mem, w->t_row_file};
    for (int i = 0; i < 2; i++)
        if (plists[i] >= 0)
            H5Pclose(plists[i]);
    for (int i = 0; i < 3; i++)
        if (types[i] >= 0)
            H5Tclose(types[i]);
    if (w->channel_names)
        for (int c = 0; c < w->n_channels; c++)
            free(w->channel_names[c]);
    free(w->channel_names);
    free(w->case_index);
    free(w->chunk_buf);
    free(w->shuffle_buf);
    free(w->deflate_buf);
    free(w->dir);
    free(w->tmp);
    free(w->path);
    free(w);
}

void rsy_export_hdf5_abort(rsy_export_hdf5 *w)
{
    if (!w)
        return;
    h5_quiet();
    close_handles(w);
    H5Eclear2(H5E_DEFAULT);
    if (w->tmp_created && unlink(w->tmp) != 0 && errno != ENOENT)
        rsy_log_error("%s: cannot remove: %s", w->tmp, strerror(errno));
    writer_free(w);
}

/* Create the temporary file ourselves first: HDF5 reports a failed open without errno in a
 * form we could show, and "Permission denied" or "No such file or directory" is what a user
 * needs to read. HDF5 then truncates and takes it over. */
static rsy_status touch_tmp(const rsy_export_hdf5 *w)
{
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        rsy_log_error("%s: cannot create the temporary file %s: %s", w->path, w->tmp,
                      strerror(errno));
        return RSY_EIO;
    }
    close(fd);
    return RSY_OK;
}

rsy_status rsy_export_hdf5_create(rsy_export_hdf5 **out, const rsy_export_hdf5_params *p)
{
    rsy_export_hdf5 *w = NULL;
    hid_t fcpl = -1, fapl = -1;
    rsy_status rc;

    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!p) {
        rsy_log_error("HDF5 export: no parameters");
        return RSY_EINVAL;
    }
    if ((rc = check_params(p)) != RSY_OK)
        return rc;
    h5_quiet();

    w = calloc(1, sizeof *w);
    if (!w)
        return RSY_ENOMEM;
    w->file = w->cases = w->gcpl = w->dcpl_plain = -1;
    w->t_str = w->t_row_mem = w->t_row_file = -1;
    w->level = p->deflate_level;
    w->n_channels = p->n_channels;
    w->n_labels = p->n_labels;
    w->path = dup_str(p->path);
    w->tmp = rsy__file_temp_path(p->path);
    w->dir = dir_of(p->path);
    w->channel_names = calloc((size_t)p->n_channels, sizeof *w->channel_names);
    if (!w->path || !w->tmp || !w->dir || !w->channel_names) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    for (int c = 0; c < p->n_channels; c++) {
        if (!(w->channel_names[c] = dup_str(p->channel_names[c]))) {
            rc = RSY_ENOMEM;
            goto fail;
        }
    }
    for (int i = 0; i < p->n_labels; i++)
        w->perilesional[i] = p->label_perilesional && p->label_perilesional[i] ? 1 : 0;
    w->maj_io = H5E_IO;
    w->min_write = H5E_WRITEERROR;
    /* Largest chunk: 64³ voxels of 4 bytes. */
    const size_t chunk_max = (size_t)RSY_EXPORT_HDF5_CHUNK_EDGE * RSY_EXPORT_HDF5_CHUNK_EDGE *
                             RSY_EXPORT_HDF5_CHUNK_EDGE * 4;
    w->deflate_cap = (size_t)compressBound((uLong)chunk_max);
    w->chunk_buf = malloc(chunk_max);
    w->shuffle_buf = malloc(chunk_max);
    w->deflate_buf = malloc(w->deflate_cap);
    if (!w->chunk_buf || !w->shuffle_buf || !w->deflate_buf) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    const uint16_t probe = 1;
    uint8_t first;
    memcpy(&first, &probe, 1);
    w->swap = first == 0;

    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0 || H5Zfilter_avail(H5Z_FILTER_SHUFFLE) <= 0) {
        rsy_log_error("%s: this HDF5 library lacks the deflate or shuffle filter", w->path);
        rc = RSY_EDEP;
        goto fail;
    }
    fcpl = H5Pcreate(H5P_FILE_CREATE);
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    w->gcpl = H5Pcreate(H5P_GROUP_CREATE);
    w->dcpl_plain = H5Pcreate(H5P_DATASET_CREATE);
    w->t_str = H5Tcopy(H5T_C_S1);
    if (fcpl < 0 || fapl < 0 || w->gcpl < 0 || w->dcpl_plain < 0 || w->t_str < 0 ||
        H5Tset_size(w->t_str, H5T_VARIABLE) < 0 || H5Tset_cset(w->t_str, H5T_CSET_UTF8) < 0 ||
        H5Pset_obj_track_times(fcpl, 0) < 0 || H5Pset_link_creation_order(fcpl, 0) < 0 ||
        H5Pset_attr_creation_order(fcpl, 0) < 0 || H5Pset_obj_track_times(w->gcpl, 0) < 0 ||
        H5Pset_link_creation_order(w->gcpl, 0) < 0 || H5Pset_attr_creation_order(w->gcpl, 0) < 0 ||
        H5Pset_obj_track_times(w->dcpl_plain, 0) < 0 ||
        H5Pset_attr_creation_order(w->dcpl_plain, 0) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        rc = h5_fail(w, "/", "set up the property lists and string type");
        goto fail;
    }
    if ((rc = make_row_types(w)) != RSY_OK)
        goto fail;
    if ((rc = touch_tmp(w)) != RSY_OK)
        goto fail;
    w->tmp_created = 1;
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (w->file < 0) {
        rc = h5_fail(w, "/", "create the file (temporary %s)", w->tmp);
        goto fail;
    }
    if ((rc = write_root(w, p)) != RSY_OK)
        goto fail;
    w->cases = H5Gcreate2(w->file, "cases", H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
    if (w->cases < 0) {
        rc = h5_fail(w, "/cases", "create the group");
        goto fail;
    }
    H5Pclose(fapl);
    H5Pclose(fcpl);
    *out = w;
    return RSY_OK;

fail:
    if (fapl >= 0)
        H5Pclose(fapl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    rsy_export_hdf5_abort(w);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Cases                                                                                      */
/* ---------------------------------------------------------------------------------------- */
static rsy_status check_case(const rsy_export_hdf5 *w, const rsy_case_data *c,
                             const rsy_lesion_record *records)
{
    if (w->have_case && c->case_index <= w->last_index) {
        rsy_log_error("%s: case %zu added after case %zu (cases must come in increasing order)",
                      w->path, c->case_index, w->last_index);
        return RSY_EINVAL;
    }
    if (c->n_channels != w->n_channels || !c->channels || !c->labels || !c->instances) {
        rsy_log_error("%s: case %zu: %d channels (the file has %d), label map %s, instance map "
                      "%s",
                      w->path, c->case_index, c->n_channels, w->n_channels,
                      c->labels ? "set" : "missing", c->instances ? "set" : "missing");
        return RSY_EINVAL;
    }
    for (int ch = 0; ch < c->n_channels; ch++) {
        const rsy_volume *v = c->channels[ch];
        if (!v || !v->data || (v->dtype != RSY_DTYPE_FLOAT32 && v->dtype != RSY_DTYPE_INT16) ||
            v->dtype != c->channels[0]->dtype || !rsy_geometry_equal(&v->geom, &c->labels->geom)) {
            rsy_log_error("%s: case %zu: channel %d missing, not float32/int16 like channel 0, "
                          "or its geometry differs from the label map",
                          w->path, c->case_index, ch);
            return RSY_EINVAL;
        }
    }
    if (!c->labels->data || !c->instances->data ||
        !rsy_geometry_equal(&c->instances->geom, &c->labels->geom) ||
        c->instances->dtype != RSY_DTYPE_UINT16 ||
        (c->labels->dtype != RSY_DTYPE_UINT8 && c->labels->dtype != RSY_DTYPE_UINT16)) {
        rsy_log_error("%s: case %zu: need a uint8/uint16 label map and a uint16 instance map of "
                      "equal geometry",
                      w->path, c->case_index);
        return RSY_EINVAL;
    }
    if (c->n_lesions < 0 || c->n_lesions > UINT16_MAX ||
        (c->n_lesions > 0 && (!c->lesions || !records))) {
        rsy_log_error("%s: case %zu: %d lesions with %s descriptions and %s records", w->path,
                      c->case_index, c->n_lesions, c->lesions ? "their" : "no",
                      records ? "their" : "no");
        return RSY_EINVAL;
    }
    for (int l = 0; l < c->n_lesions; l++) {
        if (c->lesions[l].instance_id != l + 1 || records[l].instance_id != l + 1) {
            rsy_log_error("%s: case %zu: lesion %d has instance id %d and record id %d "
                          "(expected %d)",
                          w->path, c->case_index, l, c->lesions[l].instance_id,
                          records[l].instance_id, l + 1);
            return RSY_EINVAL;
        }
    }
    /* Values outside the label dictionary or the lesion list would make a file that
     * contradicts its own attributes. */
    size_t n = rsy_geometry_nvox(&c->labels->geom);
    const uint16_t *inst = c->instances->data;
    for (size_t i = 0; i < n; i++) {
        unsigned v = c->labels->dtype == RSY_DTYPE_UINT8 ? ((const uint8_t *)c->labels->data)[i]
                                                         : ((const uint16_t *)c->labels->data)[i];
        if (v >= (unsigned)w->n_labels || inst[i] > c->n_lesions) {
            rsy_log_error("%s: case %zu: voxel %zu has label %u (%d labels) and instance %u "
                          "(%d lesions)",
                          w->path, c->case_index, i, v, w->n_labels, (unsigned)inst[i],
                          c->n_lesions);
            return RSY_EINVAL;
        }
    }
    return RSY_OK;
}

/* Chunk edges in C order for an (n_lead leading 1s, Z, Y, X) dataset: at most
 * RSY_EXPORT_HDF5_CHUNK_EDGE voxels along each spatial axis, one channel per chunk, so a chunk
 * holds at most 64³ voxels = 1 MiB of float32 and a patch loader reads one channel's block. */
static void chunk_dims(const int64_t dims_ijk[3], int n_lead, hsize_t *chunk)
{
    for (int a = 0; a < n_lead; a++)
        chunk[a] = 1;
    for (int a = 0; a < 3; a++) {
        int64_t d = dims_ijk[2 - a];
        chunk[n_lead + a] =
            (hsize_t)(d < RSY_EXPORT_HDF5_CHUNK_EDGE ? d : RSY_EXPORT_HDF5_CHUNK_EDGE);
    }
}

static void volume_types(rsy_dtype t, hid_t *ftype, hid_t *mtype)
{
    switch (t) {
    case RSY_DTYPE_UINT8:
        *ftype = H5T_STD_U8LE;
        *mtype = H5T_NATIVE_UINT8;
        return;
    case RSY_DTYPE_INT16:
        *ftype = H5T_STD_I16LE;
        *mtype = H5T_NATIVE_INT16;
        return;
    case RSY_DTYPE_UINT16:
        *ftype = H5T_STD_U16LE;
        *mtype = H5T_NATIVE_UINT16;
        return;
    case RSY_DTYPE_FLOAT32:
        *ftype = H5T_IEEE_F32LE;
        *mtype = H5T_NATIVE_FLOAT;
        return;
    }
    *ftype = *mtype = -1;
}

/* Gather the chunk at voxel (x0, y0, z0) of @p v into @p dst (c x c x c edges @p ce, C
 * order), zero-padding the part outside the volume (HDF5 stores edge chunks whole; zeros are
 * the dataset's fill value), in little-endian byte order. */
static void gather_chunk(const rsy_volume *v, const int64_t o[3], const hsize_t ce[3], size_t elem,
                         int swap, uint8_t *dst)
{
    const int64_t *d = v->geom.dims; /* i, j, k = x, y, z */
    const size_t cx = (size_t)ce[2], cy = (size_t)ce[1], cz = (size_t)ce[0];
    const size_t nx = (size_t)(d[0] - o[0] < (int64_t)cx ? d[0] - o[0] : (int64_t)cx);
    const size_t ny = (size_t)(d[1] - o[1] < (int64_t)cy ? d[1] - o[1] : (int64_t)cy);
    const size_t nz = (size_t)(d[2] - o[2] < (int64_t)cz ? d[2] - o[2] : (int64_t)cz);
    const uint8_t *src = v->data;
    if (nx < cx || ny < cy || nz < cz)
        memset(dst, 0, cx * cy * cz * elem);
    for (size_t z = 0; z < nz; z++) {
        for (size_t y = 0; y < ny; y++) {
            size_t from = (((size_t)o[2] + z) * (size_t)d[1] + (size_t)o[1] + y) * (size_t)d[0] +
                          (size_t)o[0];
            memcpy(dst + ((z * cy + y) * cx) * elem, src + from * elem, nx * elem);
        }
    }
    if (swap && elem > 1) {
        size_t n = cx * cy * cz;
        for (size_t e = 0; e < n; e++) {
            uint8_t *b = dst + e * elem;
            for (size_t lo = 0, hi = elem - 1; lo < hi; lo++, hi--) {
                uint8_t t = b[lo];
                b[lo] = b[hi];
                b[hi] = t;
            }
        }
    }
}

/* HDF5's shuffle filter (H5Zshuffle.c): byte b of every element, plane after plane. */
static void shuffle_bytes(const uint8_t *src, uint8_t *dst, size_t n, size_t elem)
{
    for (size_t b = 0; b < elem; b++) {
        uint8_t *out = dst + b * n;
        const uint8_t *in = src + b;
        for (size_t e = 0; e < n; e++)
            out[e] = in[e * elem];
    }
}

/* Write every chunk of volume @p v (channel @p channel of a channel-first dataset, or -1)
 * through H5Dwrite_chunk: gathered, shuffled and deflated here, exactly as the dataset's
 * filter pipeline (shuffle, deflate) would store them, so every HDF5 reader decodes them with
 * its own filters. Doing it here reuses three buffers for the whole file instead of HDF5's
 * per-chunk allocations, and costs the same as deflating the bytes directly (bench_hdf5). */
static rsy_status write_chunks(const rsy_export_hdf5 *w, hid_t ds, const char *obj,
                               const rsy_volume *v, int channel, const hsize_t ce[3])
{
    const size_t elem = rsy_dtype_size(v->dtype);
    const size_t n = (size_t)(ce[0] * ce[1] * ce[2]), bytes = n * elem;
    const int64_t *d = v->geom.dims;
    for (int64_t z = 0; z < d[2]; z += (int64_t)ce[0]) {
        for (int64_t y = 0; y < d[1]; y += (int64_t)ce[1]) {
            for (int64_t x = 0; x < d[0]; x += (int64_t)ce[2]) {
                const int64_t o[3] = {x, y, z};
                gather_chunk(v, o, ce, elem, w->swap, w->chunk_buf);
                const uint8_t *out = w->chunk_buf;
                size_t out_bytes = bytes;
                if (w->level > 0) {
                    const uint8_t *in = w->chunk_buf;
                    if (elem > 1) {
                        shuffle_bytes(w->chunk_buf, w->shuffle_buf, n, elem);
                        in = w->shuffle_buf;
                    }
                    uLongf zn = (uLongf)w->deflate_cap;
                    int zrc = compress2(w->deflate_buf, &zn, in, (uLong)bytes, w->level);
                    if (zrc != Z_OK) {
                        rsy_log_error("%s: %s: zlib compress2 failed (%d)", w->path, obj, zrc);
                        return zrc == Z_MEM_ERROR ? RSY_ENOMEM : RSY_EDEP;
                    }
                    out = w->deflate_buf;
                    out_bytes = (size_t)zn;
                }
                hsize_t off[4];
                int a = 0;
                if (channel >= 0)
                    off[a++] = (hsize_t)channel;
                off[a++] = (hsize_t)z;
                off[a++] = (hsize_t)y;
                off[a] = (hsize_t)x;
                if (H5Dwrite_chunk(ds, H5P_DEFAULT, 0, off, out_bytes, out) < 0)
                    return h5_fail(w, obj, "write the chunk at voxel (%lld, %lld, %lld)",
                                   (long long)x, (long long)y, (long long)z);
            }
        }
    }
    return RSY_OK;
}

/* Dataset @p name of @p group from @p n_vols volumes of equal geometry and dtype: with
 * @p channel_axis, shape (n_vols, Z, Y, X) and volume c written to [c]; else shape (Z, Y, X).
 * Chunked, shuffle then deflate (when level > 0), fill value 0, no timestamps; attribute
 * "axes" names the axes. */
static rsy_status put_volume(const rsy_export_hdf5 *w, hid_t group, const char *case_obj,
                             const char *name, const rsy_volume *const *vols, int n_vols,
                             int channel_axis)
{
    char obj[2 * OBJ_MAX];
    snprintf(obj, sizeof obj, "%s/%s", case_obj, name);
    const rsy_geometry *g = &vols[0]->geom;
    const int lead = channel_axis ? 1 : 0, rank = 3 + lead;
    hsize_t dims[4], chunk[4];
    if (channel_axis)
        dims[0] = (hsize_t)n_vols;
    for (int a = 0; a < 3; a++)
        dims[lead + a] = (hsize_t)g->dims[2 - a];
    chunk_dims(g->dims, lead, chunk);
    hid_t ftype, mtype;
    volume_types(vols[0]->dtype, &ftype, &mtype);
    static const double zero[2] = {0.0, 0.0}; /* a zero of every voxel type */

    rsy_status rc = RSY_OK;
    hid_t dcpl = -1, fspace = -1, ds = -1;
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
        (w->level > 0 &&
         (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)w->level) < 0)) ||
        H5Pset_fill_value(dcpl, mtype, zero) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ||
        H5Pset_attr_creation_order(dcpl, 0) < 0) {
        rc = h5_fail(w, obj, "set up the chunking and filters");
        goto done;
    }
    fspace = H5Screate_simple(rank, dims, NULL);
    if (fspace < 0) {
        rc = h5_fail(w, obj, "create the dataspace");
        goto done;
    }
    ds = H5Dcreate2(group, name, ftype, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) {
        rc = h5_fail(w, obj, "create the dataset");
        goto done;
    }
    for (int v = 0; v < n_vols && rc == RSY_OK; v++)
        rc = write_chunks(w, ds, obj, vols[v], channel_axis ? v : -1, chunk + lead);
    if (rc != RSY_OK)
        goto done;
    static const char *const axes[4] = {"channel", "k", "j", "i"};
    const hsize_t n_axes[1] = {(hsize_t)rank};
    rc = put_attr(w, ds, obj, "axes", w->t_str, w->t_str, 1, n_axes, axes + 1 - lead);
    if (rc == RSY_OK && channel_axis)
        rc = put_strs(w, ds, obj, "channel_names", (const char *const *)w->channel_names,
                      (size_t)n_vols);

done:
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == RSY_OK)
        rc = h5_fail(w, obj, "close the dataset");
    if (fspace >= 0)
        H5Sclose(fspace);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return rc;
}

/* The lesion's main label: the non-background, non-perilesional label value holding most of
 * its voxels (ties to the lower value); if it has none, the same over the perilesional
 * labels; 0 if the lesion carries no non-background label. */
static int32_t main_label(const rsy_export_hdf5 *w, const rsy_lesion_record *r)
{
    for (int pass = 0; pass < 2; pass++) {
        int32_t best = 0;
        int64_t most = 0;
        for (int l = 1; l < w->n_labels; l++) {
            if (w->perilesional[l] != pass)
                continue;
            if (r->label_voxels[l] > most) {
                most = r->label_voxels[l];
                best = l;
            }
        }
        if (best)
            return best;
    }
    return 0;
}

static const char *nonnull(const char *s)
{
    return s ? s : "";
}

/* The rows of the lesion table: the records with voxels (copied, not re-measured). */
static size_t fill_rows(const rsy_export_hdf5 *w, const rsy_case_data *c,
                        const rsy_lesion_record *records, lesion_row *rows)
{
    size_t n = 0;
    for (int l = 0; l < c->n_lesions; l++) {
        const rsy_lesion_record *r = &records[l];
        const rsy_lesion_info *info = &c->lesions[l];
        if (r->voxel_count == 0)
            continue;
        lesion_row *o = &rows[n++];
        memset(o, 0, sizeof *o);
        o->instance_id = r->instance_id;
        o->type = nonnull(info->type);
        o->display_name = nonnull(info->display_name);
        o->host = nonnull(info->host);
        o->region = nonnull(info->region);
        o->label = main_label(w, r);
        o->voxel_count = r->voxel_count;
        o->volume_mm3 = r->volume_mm3;
        o->mass_voxel_count = r->mass_voxel_count;
        o->mass_volume_mm3 = r->mass_volume_mm3;
        for (int a = 0; a < 3; a++) {
            o->centroid_vox[a] = r->centroid_vox[a];
            o->centroid_mm[a] = r->centroid_mm[a];
            o->bbox_min_vox[a] = r->bbox_min[a];
            o->bbox_max_vox[a] = r->bbox_max[a];
        }
        memcpy(o->box_cccwhd_mm, r->box_cccwhd_mm, sizeof o->box_cccwhd_mm);
        o->long_axis_mm = r->long_axis_mm;
        o->short_axis_mm = r->short_axis_mm;
        o->key_slice = r->key_slice;
        o->slice_range[0] = r->slice_min;
        o->slice_range[1] = r->slice_max;
        o->equivalent_diameter_mm = r->equivalent_diameter_mm;
        memcpy(o->label_voxels, r->label_voxels, sizeof o->label_voxels);
    }
    return n;
}

static rsy_status put_lesions(const rsy_export_hdf5 *w, hid_t group, const char *case_obj,
                              const lesion_row *rows, size_t n)
{
    char obj[2 * OBJ_MAX];
    snprintf(obj, sizeof obj, "%s/lesions", case_obj);
    const hsize_t dims[1] = {n};
    rsy_status rc = RSY_OK;
    hid_t ds = -1, space = H5Screate_simple(1, dims, NULL);
    if (space < 0)
        return h5_fail(w, obj, "create the dataspace");
    ds =
        H5Dcreate2(group, "lesions", w->t_row_file, space, H5P_DEFAULT, w->dcpl_plain, H5P_DEFAULT);
    if (ds < 0)
        rc = h5_fail(w, obj, "create the table");
    else if (n > 0 && H5Dwrite(ds, w->t_row_mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0)
        rc = h5_fail(w, obj, "write the table");
    if (rc == RSY_OK)
        rc = put_str(w, ds, obj, "coordinate_system", RSY_EXPORT_COORDS);
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == RSY_OK)
        rc = h5_fail(w, obj, "close the table");
    H5Sclose(space);
    return rc;
}

static rsy_status write_case(rsy_export_hdf5 *w, const rsy_case_data *c, const char *case_id,
                             const lesion_row *rows, size_t n_rows)
{
    char obj[OBJ_MAX];
    snprintf(obj, sizeof obj, "/cases/%s", case_id);
    const rsy_geometry *g = &c->labels->geom;
    hid_t grp = H5Gcreate2(w->cases, case_id, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
    if (grp < 0)
        return h5_fail(w, obj, "create the group");
    const hsize_t d3[1] = {3}, d44[2] = {4, 4};
    rsy_status rc;
    if ((rc = put_str(w, grp, obj, "case_id", case_id)) != RSY_OK ||
        (rc = put_i64(w, grp, obj, "case_index", (int64_t)c->case_index)) != RSY_OK ||
        (rc = put_f64s(w, grp, obj, "spacing_mm", 1, d3, g->spacing_mm)) != RSY_OK ||
        (rc = put_f64s(w, grp, obj, "affine", 2, d44, &g->affine[0][0])) != RSY_OK ||
        (rc = put_i64(w, grp, obj, "n_lesions", (int64_t)n_rows)) != RSY_OK ||
        (rc = put_str(w, grp, obj, "findings", c->findings)) != RSY_OK ||
        (rc = put_volume(w, grp, obj, "image", c->channels, c->n_channels, 1)) != RSY_OK ||
        (rc = put_volume(w, grp, obj, "label", &c->labels, 1, 0)) != RSY_OK ||
        (rc = put_volume(w, grp, obj, "instances", &c->instances, 1, 0)) != RSY_OK ||
        (rc = put_lesions(w, grp, obj, rows, n_rows)) != RSY_OK) {
        H5Gclose(grp);
        return rc;
    }
    if (H5Gclose(grp) < 0)
        return h5_fail(w, obj, "close the group");
    return RSY_OK;
}

rsy_status rsy_export_hdf5_add_case(rsy_export_hdf5 *w, const rsy_case_data *c,
                                    const rsy_lesion_record *records)
{
    if (!w || !c)
        return RSY_EINVAL;
    if (w->failed != RSY_OK) {
        rsy_log_error("%s: an earlier write failed; the file will not be kept", w->path);
        return w->failed;
    }
    h5_quiet();
    rsy_status rc = check_case(w, c, records);
    if (rc != RSY_OK)
        return rc;
    char case_id[32];
    rsy_export_case_id(c->case_index, case_id, sizeof case_id);
    lesion_row *rows = NULL;
    if (c->n_lesions > 0 && !(rows = calloc((size_t)c->n_lesions, sizeof *rows)))
        return RSY_ENOMEM;
    if (w->n_cases == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        size_t *grown = realloc(w->case_index, cap * sizeof *grown);
        if (!grown) {
            free(rows);
            return RSY_ENOMEM;
        }
        w->case_index = grown;
        w->cap = cap;
    }
    size_t n_rows = fill_rows(w, c, records, rows);
    /* From here on the file changes: a failure leaves it unusable. */
    rc = write_case(w, c, case_id, rows, n_rows);
    free(rows);
    if (rc != RSY_OK) {
        w->failed = rc;
        return rc;
    }
    w->case_index[w->n_cases++] = c->case_index;
    w->last_index = c->case_index;
    w->have_case = 1;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Close                                                                                      */
/* ---------------------------------------------------------------------------------------- */
/* Root attributes known only at the end: the number of cases and their ids in index order
 * (the order of /cases when iterated by name is lexicographic, which differs past case_9999). */
static rsy_status write_index(rsy_export_hdf5 *w)
{
    char **ids = w->n_cases ? calloc(w->n_cases, sizeof *ids) : NULL;
    if (w->n_cases && !ids)
        return RSY_ENOMEM;
    rsy_status rc = RSY_OK;
    for (size_t i = 0; i < w->n_cases && rc == RSY_OK; i++) {
        char id[32];
        rsy_export_case_id(w->case_index[i], id, sizeof id);
        if (!(ids[i] = dup_str(id)))
            rc = RSY_ENOMEM;
    }
    if (rc == RSY_OK && (rc = put_i64(w, w->file, "/", "n_cases", (int64_t)w->n_cases)) == RSY_OK)
        rc = put_strs(w, w->file, "/", "case_ids", (const char *const *)ids, w->n_cases);
    for (size_t i = 0; ids && i < w->n_cases; i++)
        free(ids[i]);
    free(ids);
    return rc;
}

rsy_status rsy_export_hdf5_close(rsy_export_hdf5 *w, char sha256[65])
{
    if (!w)
        return RSY_EINVAL;
    h5_quiet();
    rsy_status rc = w->failed;
    if (rc != RSY_OK) {
        rsy_log_error("%s: not written: an earlier write failed", w->path);
        goto fail;
    }
    if ((rc = write_index(w)) != RSY_OK)
        goto fail;
    herr_t st = H5Gclose(w->cases);
    w->cases = -1;
    if (st < 0) {
        rc = h5_fail(w, "/cases", "close the group");
        goto fail;
    }
    /* Flush first: a write error (full disk) shows here, with the file still open to close. */
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
        rc = h5_fail(w, "/", "flush the file");
        goto fail;
    }
    st = H5Fclose(w->file);
    w->file = -1;
    if (st < 0) {
        rc = h5_fail(w, "/", "close the file");
        goto fail;
    }
    if (rsy__fsync_path(w->tmp) != RSY_OK) {
        rsy_log_error("%s: fsync of %s failed: %s", w->path, w->tmp, strerror(errno));
        rc = RSY_EIO;
        goto fail;
    }
    if (sha256 && (rc = rsy_sha256_file(w->tmp, sha256)) != RSY_OK)
        goto fail;
    if (rename(w->tmp, w->path) != 0) {
        rsy_log_error("%s: cannot rename %s into place: %s", w->path, w->tmp, strerror(errno));
        rc = RSY_EIO;
        goto fail;
    }
    w->tmp_created = 0; /* renamed: abort must not remove anything now */
    if (rsy__fsync_path(w->dir) != RSY_OK) {
        rsy_log_error("%s: fsync of the directory %s failed: %s", w->path, w->dir, strerror(errno));
        rc = RSY_EIO;
        /* The file is complete and in place; only its durability is in doubt. Remove it, so a
         * failed close never leaves a file behind. */
        if (unlink(w->path) != 0)
            rsy_log_error("%s: cannot remove: %s", w->path, strerror(errno));
        goto fail;
    }
    writer_free(w);
    return RSY_OK;

fail:
    if (sha256)
        sha256[0] = '\0';
    rsy_export_hdf5_abort(w);
    return rc;
}
