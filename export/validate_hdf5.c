/*
 * validate_hdf5.c: the HDF5 file of a dataset (docs/hdf5.md), checked by `raresynth validate`:
 * opened read-only and only when its SHA-256 matches the one raresynth.json records (the HDF5
 * library is not hardened against crafted files); root attributes; each case's volumes voxel
 * for voxel against the NIfTI files, its attributes and lesion table.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_internal.h"

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
void rsy__validate_open_hdf5(vctx *v)
{
    v->h5 = -1;
    const cJSON *h = v->dsman ? json_get(v->dsman, "hdf5") : NULL;
    const char *p = h ? json_str(h, "path") : NULL, *want = h ? json_str(h, "sha256") : NULL;
    if (h && !cJSON_IsNull(h) && (!p || !rsy__validate_rel_safe(p) || !ends_with(p, ".h5"))) {
        problem(v, RSY_EXPORT_MANIFEST,
                "hdf5.path must be the relative path of the .h5 file inside the dataset");
        p = NULL;
    }
    if (p)
        snprintf(v->h5rel, sizeof v->h5rel, "%s", p);
    DIR *d = rsy__validate_open_folder(v, ".", NULL);
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
    if (!rsy__validate_path_exists(v, p)) {
        problem(v, p, "missing (listed in " RSY_EXPORT_MANIFEST ")");
        return;
    }
    long hi = rsy__validate_file_hash(v, p);
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
    if (rsy__validate_locate(v, p, 0, path, sizeof path, NULL) != LOC_OK)
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
void rsy__validate_check_hdf5_root(vctx *v)
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
void rsy__validate_check_hdf5_volume(vctx *v, hid_t grp, const char *obj, const char *name,
                                     int channel, int n_ch, const rsy_volume *vol,
                                     const char *nifti_rel)
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
void rsy__validate_check_hdf5_case(vctx *v, const vcase *c, hid_t grp, const char *obj,
                                   const rsy_nifti_info *info, const rsy_lesion_record *rec,
                                   int n_rec, int measured)
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
            r[row].label != rsy__validate_main_label(v, &rec[i], v->peri)) {
            problem(v, rel,
                    "%s/lesions[%d] (instance %d, label %d, %lld voxels) differs from the "
                    "instance map's lesion (instance %d, label %d, %lld voxels)",
                    obj, row, r[row].instance_id, r[row].label, (long long)r[row].voxel_count,
                    i + 1, rsy__validate_main_label(v, &rec[i], v->peri),
                    (long long)rec[i].voxel_count);
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
hid_t rsy__validate_open_hdf5_case(vctx *v, const vcase *c, char *obj, size_t n)
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
