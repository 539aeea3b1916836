/*
 * texture_io.c: fitted texture models in HDF5 (layout: docs/texture-model.md).
 *
 * Writing goes to a temporary name next to the target (rsy__file_temp_path), which is
 * fsynced and renamed over the target, so a reader never sees half a model. Object
 * timestamps are off (H5Pset_obj_track_times on the file, group and dataset creation
 * property lists) so writing the same model twice gives byte-identical files. Every negative
 * HDF5 return maps to RSY_EDEP with one logged line naming the file and the object; HDF5's
 * own error-stack printing is off (rsy_init).
 *
 * Reading checks everything a corrupt or foreign file can get wrong (not HDF5, truncated,
 * another format or version, missing attribute or dataset, wrong shape, non-finite or
 * out-of-range value) and reports the first problem as RSY_EFORMAT with one logged line.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "core_internal.h"
#include "texture_fit_internal.h"

#define MODEL_FORMAT "raresynth-texture-model"
#define MODEL_VERSION 1
/* Longest string attribute read back (file names, hashes, versions). */
#define ATTR_STR_MAX 512

/* ---- writing ----------------------------------------------------------------------------- */
typedef struct writer {
    const char *path; /* the target, for messages */
    hid_t gcpl, dcpl;
} writer;

static rsy_status h5_fail(const char *path, const char *object, const char *what)
{
    rsy_log_error("%s: %s: HDF5 failed to %s", path, object, what);
    return RSY_EDEP;
}

static rsy_status put_attr(const writer *w, hid_t loc, const char *obj, const char *name,
                           hid_t ftype, hid_t mtype, size_t n, const void *buf)
{
    hsize_t dims[1] = {n};
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    if (space < 0)
        return h5_fail(w->path, obj, "create a dataspace");
    hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, mtype, buf);
    if (a >= 0 && H5Aclose(a) < 0)
        st = -1;
    H5Sclose(space);
    if (st < 0) {
        rsy_log_error("%s: %s: HDF5 failed to write attribute '%s'", w->path, obj, name);
        return RSY_EDEP;
    }
    return RSY_OK;
}

/* Scalar attributes: n = 0 means a scalar dataspace. */
static rsy_status put_i64(const writer *w, hid_t loc, const char *obj, const char *name,
                          int64_t v)
{
    return put_attr(w, loc, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &v);
}

static rsy_status put_u64(const writer *w, hid_t loc, const char *obj, const char *name,
                          uint64_t v)
{
    return put_attr(w, loc, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, &v);
}

static rsy_status put_f64(const writer *w, hid_t loc, const char *obj, const char *name,
                          double v)
{
    return put_attr(w, loc, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
}

/* A fixed-length, NUL-padded ASCII string (h5py reads it as bytes). */
static rsy_status put_str(const writer *w, hid_t loc, const char *obj, const char *name,
                          const char *s)
{
    size_t len = strlen(s);
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, len ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0) {
        if (t >= 0)
            H5Tclose(t);
        return h5_fail(w->path, obj, "make a string type");
    }
    char empty[1] = {0};
    rsy_status rc = put_attr(w, loc, obj, name, t, t, 0, len ? s : empty);
    H5Tclose(t);
    return rc;
}

static rsy_status put_dataset(const writer *w, hid_t loc, const char *obj, const char *name,
                              int rank, const hsize_t *dims, const double *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    if (space < 0)
        return h5_fail(w->path, obj, "create a dataspace");
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, w->dcpl, H5P_DEFAULT);
    herr_t st = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0 && H5Dclose(ds) < 0)
        st = -1;
    H5Sclose(space);
    if (st < 0) {
        rsy_log_error("%s: %s/%s: HDF5 failed to write the dataset", w->path, obj, name);
        return RSY_EDEP;
    }
    return RSY_OK;
}

static rsy_status write_root(const writer *w, hid_t file, const rsy_texture_fitted *m)
{
    const char *o = "/";
    rsy_status rc;
    if ((rc = put_str(w, file, o, "format", MODEL_FORMAT)) != RSY_OK ||
        (rc = put_i64(w, file, o, "version", MODEL_VERSION)) != RSY_OK ||
        (rc = put_str(w, file, o, "contents",
                      "Gaussian-mixture parameters of normalised patches, per-class intensity "
                      "mean and SD, provenance; no voxel of any scan")) != RSY_OK ||
        (rc = put_i64(w, file, o, "patch_size", m->patch_size)) != RSY_OK ||
        (rc = put_attr(w, file, o, "spacing_mm", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3,
                       m->spacing_mm)) != RSY_OK ||
        (rc = put_i64(w, file, o, "n_classes", m->n_classes)) != RSY_OK ||
        (rc = put_str(w, file, o, "source_file", m->source_file)) != RSY_OK ||
        (rc = put_str(w, file, o, "source_sha256", m->source_sha256)) != RSY_OK ||
        (rc = put_str(w, file, o, "labels_file", m->labels_file)) != RSY_OK ||
        (rc = put_str(w, file, o, "labels_sha256", m->labels_sha256)) != RSY_OK ||
        (rc = put_i64(w, file, o, "auto_classes", m->auto_classes)) != RSY_OK ||
        (rc = put_i64(w, file, o, "fit_components", m->fit.n_components)) != RSY_OK ||
        (rc = put_i64(w, file, o, "fit_max_iterations", m->fit.max_iterations)) != RSY_OK ||
        (rc = put_f64(w, file, o, "fit_tolerance", m->fit.tolerance)) != RSY_OK ||
        (rc = put_f64(w, file, o, "fit_cov_floor", m->fit.cov_floor)) != RSY_OK ||
        (rc = put_u64(w, file, o, "fit_max_patches", m->fit.max_patches)) != RSY_OK ||
        (rc = put_u64(w, file, o, "fit_seed", m->fit.seed)) != RSY_OK ||
        (rc = put_str(w, file, o, "raresynth_version", m->version)) != RSY_OK)
        return rc;
    return RSY_OK;
}

static rsy_status write_class(const writer *w, hid_t classes, const rsy_texture_fitted *m,
                              int c)
{
    const rsy__texture_fitted_class *cl = &m->classes[c];
    char obj[RSY__TEXTURE_NAME_MAX + 16];
    snprintf(obj, sizeof obj, "/classes/%s", cl->name);
    hid_t g = H5Gcreate2(classes, cl->name, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
    if (g < 0)
        return h5_fail(w->path, obj, "create the group");
    const hsize_t k = (hsize_t)cl->n_components, d = (hsize_t)m->dim;
    const hsize_t dw[1] = {k}, dm[2] = {k, d}, dc[3] = {k, d, d};
    rsy_status rc;
    if ((rc = put_i64(w, g, obj, "class_id", c)) != RSY_OK ||
        (rc = put_i64(w, g, obj, "label", cl->label)) != RSY_OK ||
        (rc = put_f64(w, g, obj, "intensity_mean", cl->intensity_mean)) != RSY_OK ||
        (rc = put_f64(w, g, obj, "intensity_sd", cl->intensity_sd)) != RSY_OK ||
        (rc = put_u64(w, g, obj, "n_patches", cl->n_patches)) != RSY_OK ||
        (rc = put_i64(w, g, obj, "n_iterations", cl->n_iterations)) != RSY_OK ||
        (rc = put_f64(w, g, obj, "log_likelihood", cl->log_likelihood)) != RSY_OK ||
        (rc = put_dataset(w, g, obj, "weights", 1, dw, cl->weights)) != RSY_OK ||
        (rc = put_dataset(w, g, obj, "means", 2, dm, cl->means)) != RSY_OK ||
        (rc = put_dataset(w, g, obj, "covariances", 3, dc, cl->covs)) != RSY_OK) {
        H5Gclose(g);
        return rc;
    }
    if (H5Gclose(g) < 0)
        return h5_fail(w->path, obj, "close the group");
    return RSY_OK;
}

rsy_status rsy_texture_fitted_write(const rsy_texture_fitted *m, const char *path)
{
    rsy_status rc = RSY_OK;
    writer w = {path, -1, -1};
    hid_t fcpl = -1, file = -1, classes = -1;
    char *tmp = NULL;
    if (!m || !path)
        return RSY_EINVAL;
    tmp = rsy__file_temp_path(path);
    if (!tmp)
        return RSY_ENOMEM;
    fcpl = H5Pcreate(H5P_FILE_CREATE);
    w.gcpl = H5Pcreate(H5P_GROUP_CREATE);
    w.dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (fcpl < 0 || w.gcpl < 0 || w.dcpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0 ||
        H5Pset_obj_track_times(w.gcpl, 0) < 0 || H5Pset_obj_track_times(w.dcpl, 0) < 0) {
        rc = h5_fail(path, "/", "set up property lists");
        goto done;
    }
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (file < 0) {
        rsy_log_error("%s: cannot create the HDF5 file (temporary %s)", path, tmp);
        rc = RSY_EDEP;
        goto done;
    }
    rc = write_root(&w, file, m);
    if (rc != RSY_OK)
        goto done;
    classes = H5Gcreate2(file, "classes", H5P_DEFAULT, w.gcpl, H5P_DEFAULT);
    if (classes < 0) {
        rc = h5_fail(path, "/classes", "create the group");
        goto done;
    }
    for (int c = 0; c < m->n_classes && rc == RSY_OK; c++)
        rc = write_class(&w, classes, m, c);
    if (rc != RSY_OK)
        goto done;
    herr_t st = H5Gclose(classes);
    classes = -1;
    if (st < 0 || H5Fclose(file) < 0) {
        file = -1;
        rc = h5_fail(path, "/", "close the file");
        goto done;
    }
    file = -1;
    if (rsy__fsync_path(tmp) != RSY_OK || rename(tmp, path) != 0) {
        rsy_log_error("%s: cannot move the model into place: %s", path, strerror(errno));
        rc = RSY_EIO;
        goto done;
    }
done:
    if (classes >= 0)
        H5Gclose(classes);
    if (file >= 0)
        H5Fclose(file);
    if (w.dcpl >= 0)
        H5Pclose(w.dcpl);
    if (w.gcpl >= 0)
        H5Pclose(w.gcpl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (rc != RSY_OK)
        remove(tmp);
    free(tmp);
    return rc;
}

/* ---- reading ----------------------------------------------------------------------------- */
static rsy_status bad(const char *path, const char *obj, const char *what)
{
    rsy_log_error("%s: %s: %s", path, obj, what);
    return RSY_EFORMAT;
}

/* Open attribute @p name of @p loc with @p n elements (0 = scalar or one element). */
static hid_t open_attr(const char *path, hid_t loc, const char *obj, const char *name,
                       size_t n, H5T_class_t want, rsy_status *rc)
{
    char msg[128];
    if (H5Aexists(loc, name) <= 0) {
        snprintf(msg, sizeof msg, "attribute '%s' missing", name);
        *rc = bad(path, obj, msg);
        return -1;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    hid_t s = a < 0 ? -1 : H5Aget_space(a);
    hssize_t npts = s < 0 ? -1 : H5Sget_simple_extent_npoints(s);
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    int ok = a >= 0 && npts == (hssize_t)(n ? n : 1) &&
             (cls == want || (want == H5T_FLOAT && cls == H5T_INTEGER));
    if (!ok) {
        if (a >= 0)
            H5Aclose(a);
        snprintf(msg, sizeof msg, "attribute '%s' has the wrong type or size", name);
        *rc = bad(path, obj, msg);
        return -1;
    }
    return a;
}

static rsy_status get_num(const char *path, hid_t loc, const char *obj, const char *name,
                          size_t n, H5T_class_t cls, hid_t mtype, void *out)
{
    rsy_status rc = RSY_OK;
    hid_t a = open_attr(path, loc, obj, name, n, cls, &rc);
    if (a < 0)
        return rc;
    herr_t st = H5Aread(a, mtype, out);
    H5Aclose(a);
    if (st < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "attribute '%s' unreadable", name);
        return bad(path, obj, msg);
    }
    return RSY_OK;
}

static rsy_status get_i64(const char *path, hid_t loc, const char *obj, const char *name,
                          int64_t *v)
{
    return get_num(path, loc, obj, name, 0, H5T_INTEGER, H5T_NATIVE_INT64, v);
}

static rsy_status get_u64(const char *path, hid_t loc, const char *obj, const char *name,
                          uint64_t *v)
{
    return get_num(path, loc, obj, name, 0, H5T_INTEGER, H5T_NATIVE_UINT64, v);
}

static rsy_status get_f64(const char *path, hid_t loc, const char *obj, const char *name,
                          double *v)
{
    rsy_status rc = get_num(path, loc, obj, name, 0, H5T_FLOAT, H5T_NATIVE_DOUBLE, v);
    if (rc == RSY_OK && !isfinite(*v)) {
        char msg[128];
        snprintf(msg, sizeof msg, "attribute '%s' is not finite", name);
        return bad(path, obj, msg);
    }
    return rc;
}

/* A fixed-length string attribute into @p buf (cap bytes, NUL-terminated). */
static rsy_status get_str(const char *path, hid_t loc, const char *obj, const char *name,
                          char *buf, size_t cap)
{
    rsy_status rc = RSY_OK;
    char msg[128];
    hid_t a = open_attr(path, loc, obj, name, 0, H5T_STRING, &rc);
    if (a < 0)
        return rc;
    hid_t t = H5Aget_type(a);
    size_t size = t < 0 ? 0 : H5Tget_size(t);
    htri_t vlen = t < 0 ? -1 : H5Tis_variable_str(t);
    char tmp[ATTR_STR_MAX + 1];
    herr_t st = -1;
    if (t >= 0 && vlen == 0 && size > 0 && size <= ATTR_STR_MAX && size < cap)
        st = H5Aread(a, t, tmp);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    if (st < 0) {
        snprintf(msg, sizeof msg, "attribute '%s' is not a fixed-length string of at most %zu "
                                  "bytes",
                 name, cap - 1);
        return bad(path, obj, msg);
    }
    tmp[size] = '\0';
    memcpy(buf, tmp, size + 1);
    return RSY_OK;
}

/* Dataset @p name of @p g, float, of exactly the given dims, into @p out (allocated here). */
static rsy_status get_dataset(const char *path, hid_t g, const char *obj, const char *name,
                              int rank, const hsize_t *want, double **out)
{
    char msg[160];
    *out = NULL;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) {
        snprintf(msg, sizeof msg, "dataset '%s' missing", name);
        return bad(path, obj, msg);
    }
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t s = ds < 0 ? -1 : H5Dget_space(ds);
    hid_t t = ds < 0 ? -1 : H5Dget_type(ds);
    int r = s < 0 ? -1 : H5Sget_simple_extent_ndims(s);
    hsize_t dims[3] = {0, 0, 0};
    int shape_ok = r == rank && H5Sget_simple_extent_dims(s, dims, NULL) == rank;
    for (int a = 0; shape_ok && a < rank; a++)
        shape_ok = dims[a] == want[a];
    int type_ok = t >= 0 && H5Tget_class(t) == H5T_FLOAT;
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    if (ds < 0 || !shape_ok || !type_ok) {
        if (ds >= 0)
            H5Dclose(ds);
        snprintf(msg, sizeof msg, "dataset '%s' %s", name,
                 ds < 0 ? "cannot be opened" : !type_ok ? "is not floating-point"
                                                        : "has the wrong shape");
        return bad(path, obj, msg);
    }
    size_t n = 1;
    for (int a = 0; a < rank; a++)
        n *= (size_t)want[a];
    double *buf = malloc(n * sizeof *buf);
    if (!buf) {
        H5Dclose(ds);
        return RSY_ENOMEM;
    }
    herr_t st = H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    if (st < 0) {
        free(buf);
        snprintf(msg, sizeof msg, "dataset '%s' unreadable (truncated or corrupt)", name);
        return bad(path, obj, msg);
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(buf[i])) {
            free(buf);
            snprintf(msg, sizeof msg, "dataset '%s' holds a non-finite value", name);
            return bad(path, obj, msg);
        }
    }
    *out = buf;
    return RSY_OK;
}

/* Read class group @p name into the slot given by its class_id attribute. */
static rsy_status read_class(const char *path, hid_t classes, const char *name,
                             rsy_texture_fitted *m)
{
    rsy_status rc = RSY_OK;
    char obj[RSY__TEXTURE_NAME_MAX + 16];
    snprintf(obj, sizeof obj, "/classes/%s", name);
    if (strlen(name) >= RSY__TEXTURE_NAME_MAX)
        return bad(path, obj, "class name too long");
    hid_t g = H5Gopen2(classes, name, H5P_DEFAULT);
    if (g < 0)
        return bad(path, obj, "not a group");
    int64_t id = -1, label = 0, iters = 0;
    double imean = 0, isd = 0, ll = 0;
    uint64_t npatch = 0;
    if ((rc = get_i64(path, g, obj, "class_id", &id)) != RSY_OK ||
        (rc = get_i64(path, g, obj, "label", &label)) != RSY_OK ||
        (rc = get_f64(path, g, obj, "intensity_mean", &imean)) != RSY_OK ||
        (rc = get_f64(path, g, obj, "intensity_sd", &isd)) != RSY_OK ||
        (rc = get_u64(path, g, obj, "n_patches", &npatch)) != RSY_OK ||
        (rc = get_i64(path, g, obj, "n_iterations", &iters)) != RSY_OK ||
        (rc = get_f64(path, g, obj, "log_likelihood", &ll)) != RSY_OK)
        goto done;
    if (id < 0 || id >= m->n_classes || m->classes[id].weights) {
        rc = bad(path, obj, "class_id out of range or repeated");
        goto done;
    }
    if (!(isd > 0.0) || iters < 0 || iters > INT32_MAX) {
        rc = bad(path, obj, "intensity_sd not > 0 or n_iterations out of range");
        goto done;
    }
    rsy__texture_fitted_class *cl = &m->classes[id];
    /* K comes from the weights' length; the other shapes must follow. */
    hid_t ds = H5Lexists(g, "weights", H5P_DEFAULT) > 0 ? H5Dopen2(g, "weights", H5P_DEFAULT)
                                                         : -1;
    hsize_t k = 0;
    if (ds >= 0) {
        hid_t s = H5Dget_space(ds);
        if (s >= 0 && H5Sget_simple_extent_ndims(s) == 1)
            H5Sget_simple_extent_dims(s, &k, NULL);
        if (s >= 0)
            H5Sclose(s);
        H5Dclose(ds);
    }
    if (ds < 0 || k < 1 || k > RSY_TEXTURE_MAX_COMPONENTS) {
        rc = bad(path, obj, ds < 0 ? "dataset 'weights' missing"
                                   : "dataset 'weights' is not a vector of 1..16 values");
        goto done;
    }
    const hsize_t d = (hsize_t)m->dim;
    const hsize_t dw[1] = {k}, dm[2] = {k, d}, dc[3] = {k, d, d};
    double *w = NULL, *mu = NULL, *cov = NULL;
    if ((rc = get_dataset(path, g, obj, "weights", 1, dw, &w)) != RSY_OK ||
        (rc = get_dataset(path, g, obj, "means", 2, dm, &mu)) != RSY_OK ||
        (rc = get_dataset(path, g, obj, "covariances", 3, dc, &cov)) != RSY_OK) {
        free(w);
        free(mu);
        free(cov);
        goto done;
    }
    cl->n_components = (int)k;
    cl->weights = w;
    cl->means = mu;
    cl->covs = cov;
    for (hsize_t j = 0; j < k; j++) {
        if (!(w[j] > 0.0)) {
            rc = bad(path, obj, "a weight is not > 0");
            goto done;
        }
        const double *cj = cov + j * d * d;
        for (hsize_t a = 0; a < d; a++)
            for (hsize_t b = 0; b < a; b++)
                if (cj[a * d + b] != cj[b * d + a]) {
                    rc = bad(path, obj, "a covariance is not symmetric");
                    goto done;
                }
    }
    size_t name_len = strlen(name);
    if (name_len >= sizeof cl->name) {
        rc = bad(path, obj, "the class name is too long");
        goto done;
    }
    memcpy(cl->name, name, name_len + 1);
    cl->label = label;
    cl->intensity_mean = imean;
    cl->intensity_sd = isd;
    cl->n_patches = npatch;
    cl->n_iterations = (int)iters;
    cl->log_likelihood = ll;
done:
    H5Gclose(g);
    return rc;
}

static rsy_status read_root(const char *path, hid_t file, rsy_texture_fitted **out)
{
    rsy_status rc = RSY_OK;
    char fmt[ATTR_STR_MAX];
    int64_t version = 0, p = 0, n_classes = 0;
    double spacing[3];
    if ((rc = get_str(path, file, "/", "format", fmt, sizeof fmt)) != RSY_OK)
        return rc;
    if (strcmp(fmt, MODEL_FORMAT) != 0)
        return bad(path, "/", "format is not '" MODEL_FORMAT "'");
    if ((rc = get_i64(path, file, "/", "version", &version)) != RSY_OK)
        return rc;
    if (version != MODEL_VERSION)
        return bad(path, "/", "unsupported version (this raresynth reads version 1)");
    if ((rc = get_i64(path, file, "/", "patch_size", &p)) != RSY_OK ||
        (rc = get_num(path, file, "/", "spacing_mm", 3, H5T_FLOAT, H5T_NATIVE_DOUBLE,
                      spacing)) != RSY_OK ||
        (rc = get_i64(path, file, "/", "n_classes", &n_classes)) != RSY_OK)
        return rc;
    if (p < 1 || p > RSY_TEXTURE_MAX_PATCH || p % 2 == 0)
        return bad(path, "/", "patch_size is not odd in [1, 9]");
    if (n_classes < 1 || n_classes > 65535)
        return bad(path, "/", "n_classes outside [1, 65535]");
    for (int a = 0; a < 3; a++)
        if (!isfinite(spacing[a]) || spacing[a] <= 0.0)
            return bad(path, "/", "spacing_mm is not finite and > 0");
    rc = rsy__texture_fitted_alloc(out, (int)p, spacing, (int)n_classes);
    if (rc != RSY_OK)
        return rc;
    rsy_texture_fitted *m = *out;
    int64_t auto_classes = 0, comps = 0, iters = 0;
    if ((rc = get_str(path, file, "/", "source_file", m->source_file,
                      sizeof m->source_file)) != RSY_OK ||
        (rc = get_str(path, file, "/", "source_sha256", m->source_sha256,
                      sizeof m->source_sha256)) != RSY_OK ||
        (rc = get_str(path, file, "/", "labels_file", m->labels_file,
                      sizeof m->labels_file)) != RSY_OK ||
        (rc = get_str(path, file, "/", "labels_sha256", m->labels_sha256,
                      sizeof m->labels_sha256)) != RSY_OK ||
        (rc = get_i64(path, file, "/", "auto_classes", &auto_classes)) != RSY_OK ||
        (rc = get_i64(path, file, "/", "fit_components", &comps)) != RSY_OK ||
        (rc = get_i64(path, file, "/", "fit_max_iterations", &iters)) != RSY_OK ||
        (rc = get_f64(path, file, "/", "fit_tolerance", &m->fit.tolerance)) != RSY_OK ||
        (rc = get_f64(path, file, "/", "fit_cov_floor", &m->fit.cov_floor)) != RSY_OK ||
        (rc = get_u64(path, file, "/", "fit_max_patches", &m->fit.max_patches)) != RSY_OK ||
        (rc = get_u64(path, file, "/", "fit_seed", &m->fit.seed)) != RSY_OK ||
        (rc = get_str(path, file, "/", "raresynth_version", m->version, sizeof m->version)) !=
            RSY_OK)
        return rc;
    if (auto_classes < 0 || auto_classes > RSY_TEXTURE_MAX_COMPONENTS || comps < 1 ||
        comps > RSY_TEXTURE_MAX_COMPONENTS || iters < 1 || iters > INT32_MAX)
        return bad(path, "/", "auto_classes, fit_components or fit_max_iterations out of range");
    m->auto_classes = (int)auto_classes;
    m->fit.patch_size = (int)p;
    m->fit.n_components = (int)comps;
    m->fit.max_iterations = (int)iters;
    return RSY_OK;
}

rsy_status rsy_texture_fitted_read(rsy_texture_fitted **out, const char *path)
{
    rsy_status rc = RSY_OK;
    rsy_texture_fitted *m = NULL;
    hid_t file = -1, classes = -1;
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rsy_log_error("%s: cannot open: %s", path, strerror(errno));
        return RSY_EIO;
    }
    fclose(f);
    if (H5Fis_hdf5(path) <= 0)
        return bad(path, "/", "not an HDF5 file (or truncated before its superblock)");
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        return bad(path, "/", "HDF5 cannot open the file (truncated or corrupt)");
    rc = read_root(path, file, &m);
    if (rc != RSY_OK)
        goto fail;
    if (H5Lexists(file, "classes", H5P_DEFAULT) <= 0 ||
        (classes = H5Gopen2(file, "classes", H5P_DEFAULT)) < 0) {
        rc = bad(path, "/classes", "group missing");
        goto fail;
    }
    H5G_info_t info;
    if (H5Gget_info(classes, &info) < 0 || info.nlinks != (hsize_t)m->n_classes) {
        rc = bad(path, "/classes", "number of class groups differs from n_classes");
        goto fail;
    }
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[RSY__TEXTURE_NAME_MAX + 1];
        ssize_t len = H5Lget_name_by_idx(classes, ".", H5_INDEX_NAME, H5_ITER_INC, i, name,
                                         sizeof name, H5P_DEFAULT);
        if (len < 0 || (size_t)len >= sizeof name - 1) {
            rc = bad(path, "/classes", "a class name is unreadable or too long");
            goto fail;
        }
        rc = read_class(path, classes, name, m);
        if (rc != RSY_OK)
            goto fail;
    }
    H5Gclose(classes);
    classes = -1;
    if (H5Fclose(file) < 0) {
        file = -1;
        rc = bad(path, "/", "HDF5 cannot close the file");
        goto fail;
    }
    *out = m;
    return RSY_OK;
fail:
    if (classes >= 0)
        H5Gclose(classes);
    if (file >= 0)
        H5Fclose(file);
    rsy_texture_fitted_destroy(m);
    return rc;
}
