/*
 * nifti_io.c: NIfTI-1 volume writing and reading (reference/formats.md, "NIfTI-1").
 *
 * Writing: nifti_clib builds the 348-byte header (under rsy__nifti_lock, since it keeps global
 * options), then this file streams header, extender and voxels through zlib to a temporary
 * name and renames it into place. zlib's gzip header written by gzopen() carries no file name
 * and a zero mtime (zlib.h, deflateSetHeader: "the default gzip header ... with no extra, name,
 * or comment fields"), so equal volumes give byte-identical files. Doing the writes ourselves
 * lets every gzwrite()/gzclose() result be checked, which nifti_image_write() does not report.
 *
 * Reading: the header and voxels are read with gzread(), which handles .nii and .nii.gz alike,
 * so corrupt or truncated files give RSY_EFORMAT with a reason instead of nifti_clib's prints.
 * Byte-swapped (big-endian) files are swapped on reading. Nothing is allocated for a header
 * that declares more voxels than its file can hold (deflate expands at most 1032:1) or more than
 * RSY__NIFTI_MAX_BYTES: a crafted header cannot make a reader (merge, resume, validate) claim
 * gigabytes. validate applies the same rule first, through rsy__nifti_check_extent().
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <nifti1_io.h>
#include <zlib.h>

#include "core_internal.h"

_Static_assert(sizeof(struct nifti_1_header) == 348, "NIfTI-1 header must be 348 bytes");

/* NIfTI-1 layout constants (nifti1.h): header size, first voxel byte of a single .nii file. */
#define NIFTI1_HEADER_BYTES 348
#define NIFTI1_VOX_OFFSET 352
#define NIFTI2_HEADER_BYTES 540

/* Largest byte count passed to one gzread()/gzwrite() call (their length is unsigned int). */
#define GZ_CHUNK_BYTES (1u << 30)

/* Relative tolerance for "columns orthogonal" and "column norm equals spacing". The affine is
 * stored in float32 in the header, so anything below float precision is immaterial. */
#define RIGID_REL_TOL 1e-5

static pthread_mutex_t nifti_mutex = PTHREAD_MUTEX_INITIALIZER;

void rsy__nifti_lock(void)
{
    pthread_mutex_lock(&nifti_mutex);
}
void rsy__nifti_unlock(void)
{
    pthread_mutex_unlock(&nifti_mutex);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* NIfTI datatype code for a dtype allowed for @p kind, 0 if not allowed. */
static int nifti_datatype_for(rsy_dtype dtype, rsy_nifti_kind kind)
{
    if (kind == RSY_NIFTI_IMAGE) {
        if (dtype == RSY_DTYPE_FLOAT32)
            return NIFTI_TYPE_FLOAT32;
        if (dtype == RSY_DTYPE_INT16)
            return NIFTI_TYPE_INT16;
    } else if (kind == RSY_NIFTI_LABEL) {
        if (dtype == RSY_DTYPE_UINT8)
            return NIFTI_TYPE_UINT8;
        if (dtype == RSY_DTYPE_UINT16)
            return NIFTI_TYPE_UINT16;
    }
    return 0;
}

/* The affine must be rotation x spacing: orthogonal columns whose norms are the spacing, and a
 * last row (0 0 0 1). Anything else cannot be stored as the same qform and sform. */
static rsy_status check_rigid(const rsy_geometry *g, const char *path)
{
    const double(*a)[4] = (const double(*)[4])g->affine;
    double norm[3];
    for (int c = 0; c < 3; c++) {
        norm[c] = sqrt(a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]);
        if (!isfinite(norm[c]) || !(norm[c] > 0.0) ||
            !(fabs(norm[c] - g->spacing_mm[c]) <= RIGID_REL_TOL * g->spacing_mm[c])) {
            rsy_log_error("%s: affine column %d has length %g mm but the spacing is %g mm", path, c,
                          norm[c], g->spacing_mm[c]);
            return RSY_EINVAL;
        }
    }
    for (int c = 0; c < 3; c++)
        for (int d = c + 1; d < 3; d++) {
            double dot = a[0][c] * a[0][d] + a[1][c] * a[1][d] + a[2][c] * a[2][d];
            if (!(fabs(dot) <= RIGID_REL_TOL * norm[c] * norm[d])) {
                rsy_log_error("%s: affine columns %d and %d are not orthogonal (shear cannot be "
                              "stored as a NIfTI qform)",
                              path, c, d);
                return RSY_EINVAL;
            }
        }
    if (a[3][0] != 0.0 || a[3][1] != 0.0 || a[3][2] != 0.0 || a[3][3] != 1.0) {
        rsy_log_error("%s: affine last row is not (0 0 0 1)", path);
        return RSY_EINVAL;
    }
    for (int r = 0; r < 3; r++)
        if (!isfinite(a[r][3])) {
            rsy_log_error("%s: affine translation is not finite", path);
            return RSY_EINVAL;
        }
    return RSY_OK;
}

/* Largest voxel value of a label volume (cal_max). */
static double label_max(const rsy_volume *v)
{
    size_t n = rsy_geometry_nvox(&v->geom);
    unsigned max = 0;
    if (v->dtype == RSY_DTYPE_UINT8) {
        const uint8_t *p = v->data;
        for (size_t i = 0; i < n; i++)
            if (p[i] > max)
                max = p[i];
    } else {
        const uint16_t *p = v->data;
        for (size_t i = 0; i < n; i++)
            if (p[i] > max)
                max = p[i];
    }
    return (double)max;
}

/* Build the header through nifti_clib. Serialised: nifti_clib keeps global options. */
static rsy_status build_header(const rsy_volume *v, rsy_nifti_kind kind, int datatype,
                               const char *path, struct nifti_1_header *hdr)
{
    const rsy_geometry *g = &v->geom;
    int dims[8] = {3, (int)g->dims[0], (int)g->dims[1], (int)g->dims[2], 1, 1, 1, 1};
    mat44 m;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            m.m[r][c] = (float)g->affine[r][c];
    double cal_max = kind == RSY_NIFTI_LABEL ? label_max(v) : 0.0;

    rsy__nifti_lock();
    nifti_image *nim = nifti_make_new_nim(dims, datatype, 0);
    if (!nim) {
        rsy__nifti_unlock();
        rsy_log_error("%s: nifti_make_new_nim failed", path);
        return RSY_EDEP;
    }
    nim->dx = nim->pixdim[1] = (float)g->spacing_mm[0];
    nim->dy = nim->pixdim[2] = (float)g->spacing_mm[1];
    nim->dz = nim->pixdim[3] = (float)g->spacing_mm[2];
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->time_units = NIFTI_UNITS_UNKNOWN;
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    /* The qform is the rotation part as a quaternion plus qfac (NIfTI-1 "method 2"); for a
     * rigid x spacing affine it reproduces the sform (the rigidity was checked before). */
    float qdx, qdy, qdz;
    nifti_mat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x,
                           &nim->qoffset_y, &nim->qoffset_z, &qdx, &qdy, &qdz, &nim->qfac);
    nim->qto_xyz = m;
    nim->sto_xyz = m;
    nim->scl_slope = 1.0f;
    nim->scl_inter = 0.0f;
    if (kind == RSY_NIFTI_LABEL) {
        nim->intent_code = NIFTI_INTENT_LABEL;
        nim->cal_min = 0.0f;
        nim->cal_max = (float)cal_max;
    }
    memset(nim->descrip, 0, sizeof nim->descrip);
    snprintf(nim->descrip, sizeof nim->descrip, "raresynth %s", rsy_version());
    *hdr = nifti_convert_nim2nhdr(nim);
    nim->data = NULL;
    nifti_image_free(nim);
    rsy__nifti_unlock();

    /* Pin what formats.md requires regardless of nifti_clib's defaults. The unused dims are 1,
     * not 0 (NIfTI-1: dim[i] for i > dim[0] should be 1; some older readers insist). */
    for (int k = 4; k < 8; k++)
        hdr->dim[k] = 1;
    hdr->sizeof_hdr = NIFTI1_HEADER_BYTES;
    hdr->vox_offset = (float)NIFTI1_VOX_OFFSET;
    memcpy(hdr->magic, "n+1", 4);
    return RSY_OK;
}

/* Log a zlib stream error on @p path: errno for Z_ERRNO, zlib's message otherwise. */
static void log_gz_error(gzFile gz, const char *path, int saved_errno)
{
    int errnum = Z_ERRNO;
    const char *msg = gz ? gzerror(gz, &errnum) : NULL;
    if (errnum == Z_ERRNO || !msg || !*msg)
        rsy_log_error("%s: %s", path, strerror(saved_errno ? saved_errno : EIO));
    else
        rsy_log_error("%s: zlib: %s", path, msg);
}

static int gz_write_all(gzFile gz, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        unsigned n = len > GZ_CHUNK_BYTES ? GZ_CHUNK_BYTES : (unsigned)len;
        if (gzwrite(gz, p, n) != (int)n)
            return -1;
        p += n;
        len -= n;
    }
    return 0;
}

rsy_status rsy_volume_write_nifti(const rsy_volume *v, const char *path, rsy_nifti_kind kind)
{
    if (!v || !path || !v->data)
        return RSY_EINVAL;
    int gz_compress;
    if (has_suffix(path, ".nii.gz")) {
        gz_compress = 1;
    } else if (has_suffix(path, ".nii")) {
        gz_compress = 0;
    } else {
        rsy_log_error("%s: file name must end in .nii.gz or .nii", path);
        return RSY_EINVAL;
    }
    int datatype = nifti_datatype_for(v->dtype, kind);
    if (datatype == 0) {
        rsy_log_error("%s: %s voxels cannot be written as %s (images: float32 or int16; "
                      "labels: uint8 or uint16)",
                      path, rsy_dtype_name(v->dtype),
                      kind == RSY_NIFTI_LABEL ? "labels" : "an image");
        return RSY_EINVAL;
    }
    for (int a = 0; a < 3; a++)
        if (v->geom.dims[a] < 1 || v->geom.dims[a] > SHRT_MAX) {
            rsy_log_error("%s: dimension %d is %lld (NIfTI-1 allows 1..%d)", path, a,
                          (long long)v->geom.dims[a], SHRT_MAX);
            return RSY_EINVAL;
        }
    rsy_status rc = check_rigid(&v->geom, path);
    if (rc != RSY_OK)
        return rc;

    struct nifti_1_header hdr;
    rc = build_header(v, kind, datatype, path, &hdr);
    if (rc != RSY_OK)
        return rc;

    char *tmp = rsy__file_temp_path(path);
    if (!tmp) {
        rsy_log_error("%s: cannot allocate a temporary name", path);
        return RSY_ENOMEM;
    }
    static const unsigned char extender[4] = {0, 0, 0, 0}; /* no extensions */
    errno = 0;
    /* "wb1": gzip level 1, nibabel's default for .nii.gz (nibabel.openers, default_compresslevel
     * = 1). On noisy float32 images level 6 costs about three times the time for a file a few
     * per cent smaller; generation would then spend most of its time in deflate.
     * "wbT": plain, uncompressed output. */
    gzFile gz = gzopen(tmp, gz_compress ? "wb1" : "wbT");
    if (!gz) {
        rsy_log_error("%s: %s", path, strerror(errno ? errno : ENOMEM));
        rc = RSY_EIO;
        goto fail;
    }
    /* A 256 KiB buffer instead of zlib's 8 KiB: fewer, larger deflate calls. */
    if (gzbuffer(gz, 256 * 1024) != 0) {
        rsy_log_error("%s: cannot size the compression buffer", path);
        rc = RSY_ENOMEM;
        goto fail;
    }
    errno = 0;
    if (gz_write_all(gz, &hdr, sizeof hdr) != 0 ||
        gz_write_all(gz, extender, sizeof extender) != 0 ||
        gz_write_all(gz, v->data, rsy_volume_nbytes(v)) != 0) {
        log_gz_error(gz, path, errno);
        rc = RSY_EIO;
        goto fail;
    }
    /* gzclose flushes the last compressed block and reports a failed write or close. */
    errno = 0;
    int zrc = gzclose(gz);
    gz = NULL;
    if (zrc != Z_OK) {
        if (zrc == Z_ERRNO)
            rsy_log_error("%s: %s", path, strerror(errno ? errno : EIO));
        else
            rsy_log_error("%s: zlib error %d while closing", path, zrc);
        rc = RSY_EIO;
        goto fail;
    }
    /* The data must be on disk before the name says the file is complete. */
    rc = rsy__fsync_path(tmp);
    if (rc != RSY_OK) {
        rsy_log_error("%s: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        rsy_log_error("%s: %s", path, strerror(errno));
        rc = RSY_EIO;
        goto fail;
    }
    free(tmp);
    return RSY_OK;

fail:
    if (gz)
        gzclose(gz);
    remove(tmp);
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Reverse the byte order of one @p n-byte value in place. */
static void swap_bytes(void *p, size_t n)
{
    unsigned char *b = p;
    for (size_t k = 0; k < n / 2; k++) {
        unsigned char t = b[k];
        b[k] = b[n - 1 - k];
        b[n - 1 - k] = t;
    }
}

static void swap2(void *p)
{
    swap_bytes(p, 2);
}
static void swap4(void *p)
{
    swap_bytes(p, 4);
}

/* Byte-swap every multi-byte field of a NIfTI-1 header (field list of nifti1.h). */
static void swap_header(struct nifti_1_header *h)
{
    swap4(&h->sizeof_hdr);
    swap4(&h->extents);
    swap2(&h->session_error);
    for (int k = 0; k < 8; k++) {
        swap2(&h->dim[k]);
        swap4(&h->pixdim[k]);
    }
    swap4(&h->intent_p1);
    swap4(&h->intent_p2);
    swap4(&h->intent_p3);
    swap2(&h->intent_code);
    swap2(&h->datatype);
    swap2(&h->bitpix);
    swap2(&h->slice_start);
    swap4(&h->vox_offset);
    swap4(&h->scl_slope);
    swap4(&h->scl_inter);
    swap2(&h->slice_end);
    swap4(&h->cal_max);
    swap4(&h->cal_min);
    swap4(&h->slice_duration);
    swap4(&h->toffset);
    swap4(&h->glmax);
    swap4(&h->glmin);
    swap2(&h->qform_code);
    swap2(&h->sform_code);
    swap4(&h->quatern_b);
    swap4(&h->quatern_c);
    swap4(&h->quatern_d);
    swap4(&h->qoffset_x);
    swap4(&h->qoffset_y);
    swap4(&h->qoffset_z);
    for (int k = 0; k < 4; k++) {
        swap4(&h->srow_x[k]);
        swap4(&h->srow_y[k]);
        swap4(&h->srow_z[k]);
    }
}

/* Read exactly @p len bytes. RSY_EIO on a read error, RSY_EFORMAT on corrupt or short data
 * (@p what names the part for the log). */
static rsy_status gz_read_all(gzFile gz, void *data, size_t len, const char *path, const char *what)
{
    unsigned char *p = data;
    size_t done = 0;
    while (done < len) {
        size_t left = len - done;
        unsigned n = left > GZ_CHUNK_BYTES ? GZ_CHUNK_BYTES : (unsigned)left;
        errno = 0;
        int got = gzread(gz, p + done, n);
        if (got < 0) {
            int errnum = 0;
            const char *msg = gzerror(gz, &errnum);
            if (errnum == Z_ERRNO) {
                rsy_log_error("%s: %s", path, strerror(errno ? errno : EIO));
                return RSY_EIO;
            }
            rsy_log_error("%s: corrupt compressed data in the %s (zlib: %s)", path, what, msg);
            return RSY_EFORMAT;
        }
        if (got == 0)
            break;
        done += (size_t)got;
    }
    if (done < len) {
        rsy_log_error("%s: truncated %s (%zu of %zu bytes)", path, what, done, len);
        return RSY_EFORMAT;
    }
    return RSY_OK;
}

/* Copy a fixed-size, possibly unterminated header string. */
static void copy_field(char *dst, size_t dst_size, const char *src, size_t src_len)
{
    size_t n = strnlen(src, src_len);
    if (n >= dst_size)
        n = dst_size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* NIfTI-1 "method 2": quaternion (b, c, d) with a = sqrt(1 - b^2 - c^2 - d^2), columns scaled
 * by pixdim and the third by qfac, offsets added (nifti1.h, "3D IMAGE (VOLUME) ORIENTATION AND
 * LOCATION IN SPACE"). Computed in double so the result is as precise as the stored floats. */
static void quatern_to_affine(const struct nifti_1_header *h, double out[4][4])
{
    double b = h->quatern_b, c = h->quatern_c, d = h->quatern_d;
    double a = 1.0 - (b * b + c * c + d * d);
    if (a < 1e-7) { /* 180 degree rotation: renormalise (b, c, d) as nifti_clib does */
        double s = 1.0 / sqrt(b * b + c * c + d * d);
        b *= s, c *= s, d *= s;
        a = 0.0;
    } else {
        a = sqrt(a);
    }
    double qfac = h->pixdim[0] < 0.0f ? -1.0 : 1.0;
    double dx = h->pixdim[1] > 0.0f ? h->pixdim[1] : 1.0;
    double dy = h->pixdim[2] > 0.0f ? h->pixdim[2] : 1.0;
    double dz = (h->pixdim[3] > 0.0f ? h->pixdim[3] : 1.0) * qfac;
    double R[3][3] = {{a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
                      {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
                      {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
    const double scale[3] = {dx, dy, dz};
    const double off[3] = {h->qoffset_x, h->qoffset_y, h->qoffset_z};
    memset(out, 0, 16 * sizeof(double));
    for (int r = 0; r < 3; r++) {
        for (int col = 0; col < 3; col++)
            out[r][col] = R[r][col] * scale[col];
        out[r][3] = off[r];
    }
    out[3][3] = 1.0;
}

static void sform_to_affine(const struct nifti_1_header *h, double out[4][4])
{
    memset(out, 0, 16 * sizeof(double));
    for (int c = 0; c < 4; c++) {
        out[0][c] = h->srow_x[c];
        out[1][c] = h->srow_y[c];
        out[2][c] = h->srow_z[c];
    }
    out[3][3] = 1.0;
}

/* Source datatype: its size, and the dtype it is stored as (float32 for converted types). */
static int source_type(int datatype, size_t *elem, rsy_dtype *dtype)
{
    switch (datatype) {
    case NIFTI_TYPE_UINT8:
        *elem = 1, *dtype = RSY_DTYPE_UINT8;
        return 1;
    case NIFTI_TYPE_INT16:
        *elem = 2, *dtype = RSY_DTYPE_INT16;
        return 1;
    case NIFTI_TYPE_UINT16:
        *elem = 2, *dtype = RSY_DTYPE_UINT16;
        return 1;
    case NIFTI_TYPE_FLOAT32:
        *elem = 4, *dtype = RSY_DTYPE_FLOAT32;
        return 1;
    case NIFTI_TYPE_INT8:
        *elem = 1, *dtype = RSY_DTYPE_FLOAT32;
        return 1;
    case NIFTI_TYPE_INT32:
    case NIFTI_TYPE_UINT32:
        *elem = 4, *dtype = RSY_DTYPE_FLOAT32;
        return 1;
    case NIFTI_TYPE_INT64:
    case NIFTI_TYPE_UINT64:
    case NIFTI_TYPE_FLOAT64:
        *elem = 8, *dtype = RSY_DTYPE_FLOAT32;
        return 1;
    default:
        return 0;
    }
}

/* Convert @p n raw voxels of @p datatype (already in host byte order) to float32. */
static void convert_to_float(const unsigned char *raw, int datatype, size_t n, float *dst)
{
    for (size_t i = 0; i < n; i++) {
        switch (datatype) {
        case NIFTI_TYPE_INT8: {
            int8_t x;
            memcpy(&x, raw + i, 1);
            dst[i] = (float)x;
            break;
        }
        case NIFTI_TYPE_INT32: {
            int32_t x;
            memcpy(&x, raw + 4 * i, 4);
            dst[i] = (float)x;
            break;
        }
        case NIFTI_TYPE_UINT32: {
            uint32_t x;
            memcpy(&x, raw + 4 * i, 4);
            dst[i] = (float)x;
            break;
        }
        case NIFTI_TYPE_INT64: {
            int64_t x;
            memcpy(&x, raw + 8 * i, 8);
            dst[i] = (float)x;
            break;
        }
        case NIFTI_TYPE_UINT64: {
            uint64_t x;
            memcpy(&x, raw + 8 * i, 8);
            dst[i] = (float)x;
            break;
        }
        default: { /* NIFTI_TYPE_FLOAT64, the only other type source_type() converts */
            double x;
            memcpy(&x, raw + 8 * i, 8);
            dst[i] = (float)x;
            break;
        }
        }
    }
}

static void swap_voxels(unsigned char *raw, size_t n, size_t elem)
{
    if (elem < 2)
        return;
    for (size_t i = 0; i < n; i++)
        swap_bytes(raw + elem * i, elem);
}

/* Validate the header and fill @p info, the geometry and the type. */
static rsy_status parse_header(struct nifti_1_header *h, const char *path, int *swapped,
                               rsy_nifti_info *info, rsy_geometry *geom, size_t *elem,
                               rsy_dtype *dtype)
{
    *swapped = 0;
    int32_t size = h->sizeof_hdr, size_swapped = size;
    swap4(&size_swapped);
    if (size == NIFTI2_HEADER_BYTES || size_swapped == NIFTI2_HEADER_BYTES) {
        rsy_log_error("%s: NIfTI-2 files are not supported (convert to NIfTI-1)", path);
        return RSY_EFORMAT;
    }
    if (size != NIFTI1_HEADER_BYTES) {
        if (size_swapped != NIFTI1_HEADER_BYTES) {
            rsy_log_error("%s: not a NIfTI-1 file (sizeof_hdr %d, expected 348)", path, (int)size);
            return RSY_EFORMAT;
        }
        swap_header(h);
        *swapped = 1;
    }
    if (memcmp(h->magic, "ni1", 4) == 0) {
        rsy_log_error("%s: two-file NIfTI-1 (.hdr/.img) is not supported", path);
        return RSY_EFORMAT;
    }
    if (memcmp(h->magic, "n+1", 4) != 0) {
        rsy_log_error("%s: not a NIfTI-1 file (no \"n+1\" magic; ANALYZE 7.5 is not supported)",
                      path);
        return RSY_EFORMAT;
    }

    memset(info, 0, sizeof *info);
    info->sizeof_hdr = h->sizeof_hdr;
    memcpy(info->magic, h->magic, 4);
    info->vox_offset = h->vox_offset;
    info->datatype = h->datatype;
    info->intent_code = h->intent_code;
    copy_field(info->intent_name, sizeof info->intent_name, h->intent_name, sizeof h->intent_name);
    info->qform_code = h->qform_code;
    info->sform_code = h->sform_code;
    info->xyz_units_mm = XYZT_TO_SPACE(h->xyzt_units) == NIFTI_UNITS_MM;
    info->qfac = h->pixdim[0];
    for (int k = 0; k < 4; k++)
        info->pixdim[k] = h->pixdim[k];
    info->scl_slope = h->scl_slope;
    info->scl_inter = h->scl_inter;
    info->cal_min = h->cal_min;
    info->cal_max = h->cal_max;
    copy_field(info->descrip, sizeof info->descrip, h->descrip, sizeof h->descrip);
    copy_field(info->aux_file, sizeof info->aux_file, h->aux_file, sizeof h->aux_file);
    copy_field(info->db_name, sizeof info->db_name, h->db_name, sizeof h->db_name);
    quatern_to_affine(h, info->qto_xyz);
    sform_to_affine(h, info->sto_xyz);

    if (!(h->vox_offset >= (float)NIFTI1_VOX_OFFSET) || h->vox_offset > 1e9f ||
        h->vox_offset != floorf(h->vox_offset)) {
        rsy_log_error("%s: vox_offset %g is invalid (need a whole number >= 352)", path,
                      (double)h->vox_offset);
        return RSY_EFORMAT;
    }
    int ndim = h->dim[0];
    if (ndim < 1 || ndim > 7) {
        rsy_log_error("%s: dim[0] = %d is outside 1..7", path, ndim);
        return RSY_EFORMAT;
    }
    for (int k = 1; k <= ndim; k++) {
        if (h->dim[k] < 1) {
            rsy_log_error("%s: dim[%d] = %d (need >= 1)", path, k, h->dim[k]);
            return RSY_EFORMAT;
        }
        if (k > 3 && h->dim[k] != 1) {
            rsy_log_error("%s: not a 3-D volume (dim[%d] = %d)", path, k, h->dim[k]);
            return RSY_EFORMAT;
        }
    }
    if (!source_type(h->datatype, elem, dtype)) {
        rsy_log_error("%s: unsupported NIfTI datatype %d", path, h->datatype);
        return RSY_EFORMAT;
    }
    if (h->bitpix != (short)(8 * *elem)) {
        rsy_log_error("%s: bitpix %d does not match datatype %d", path, h->bitpix, h->datatype);
        return RSY_EFORMAT;
    }

    memset(geom, 0, sizeof *geom);
    for (int k = 0; k < 3; k++)
        geom->dims[k] = k + 1 <= ndim ? h->dim[k + 1] : 1;
    /* sform when present, else qform, else NIfTI "method 1" (pixdim scaling only). */
    if (h->sform_code > 0) {
        memcpy(geom->affine, info->sto_xyz, sizeof geom->affine);
    } else if (h->qform_code > 0) {
        memcpy(geom->affine, info->qto_xyz, sizeof geom->affine);
    } else {
        for (int k = 0; k < 3; k++)
            geom->affine[k][k] = h->pixdim[k + 1] > 0.0f ? h->pixdim[k + 1] : 1.0;
        geom->affine[3][3] = 1.0;
    }
    for (int c = 0; c < 3; c++) {
        double a0 = geom->affine[0][c], a1 = geom->affine[1][c], a2 = geom->affine[2][c];
        geom->spacing_mm[c] = sqrt(a0 * a0 + a1 * a1 + a2 * a2);
        if (!isfinite(geom->spacing_mm[c]) || !(geom->spacing_mm[c] > 0.0)) {
            rsy_log_error("%s: voxel-to-world transform is degenerate along axis %d", path, c);
            return RSY_EFORMAT;
        }
    }
    for (int r = 0; r < 3; r++)
        if (!isfinite(geom->affine[r][3])) {
            rsy_log_error("%s: voxel-to-world offset is not finite", path);
            return RSY_EFORMAT;
        }
    return RSY_OK;
}

/* Count the header extensions between byte 352 and vox_offset (nifti1.h, "Extensions": each
 * starts with int esize, a positive multiple of 16, and int ecode), leaving the stream at
 * vox_offset. */
static rsy_status read_extensions(gzFile gz, const char *path, int swapped, long vox_offset,
                                  int *num_ext)
{
    unsigned char extender[4];
    rsy_status rc = gz_read_all(gz, extender, sizeof extender, path, "header extender");
    if (rc != RSY_OK)
        return rc;
    *num_ext = 0;
    if (extender[0] != 0) {
        long pos = NIFTI1_VOX_OFFSET;
        while (pos + 8 <= vox_offset) {
            int32_t ext_head[2];
            rc = gz_read_all(gz, ext_head, sizeof ext_head, path, "header extension");
            if (rc != RSY_OK)
                return rc;
            if (swapped)
                swap4(&ext_head[0]);
            int32_t esize = ext_head[0];
            if (esize < 16 || esize % 16 != 0 || pos + esize > vox_offset)
                break;
            (*num_ext)++;
            pos += 8;
            if (gzseek(gz, pos + (esize - 8), SEEK_SET) < 0) {
                rsy_log_error("%s: truncated header extension", path);
                return RSY_EFORMAT;
            }
            pos += esize - 8;
        }
    }
    if (gzseek(gz, vox_offset, SEEK_SET) != vox_offset) {
        rsy_log_error("%s: truncated before the voxel data", path);
        return RSY_EFORMAT;
    }
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Voxel data a header may declare (read and validate share this rule)                        */
/* ---------------------------------------------------------------------------------------- */
/* Every NIfTI-1 datatype code (nifti1.h) with its byte size, the types the reader refuses
 * included, so a hostile header is measured whatever type it names. */
static const struct {
    int code;
    int bytes;
} datatype_bytes[] = {{2, 1},     {4, 2},     {8, 4},     {16, 4},   {64, 8}, {256, 1},
                      {512, 2},   {768, 4},   {1024, 8},  {1280, 8}, {32, 8}, {128, 3},
                      {1536, 16}, {1792, 16}, {2048, 32}, {2304, 4}};

static int datatype_size(int code)
{
    for (size_t i = 0; i < sizeof datatype_bytes / sizeof datatype_bytes[0]; i++)
        if (datatype_bytes[i].code == code)
            return datatype_bytes[i].bytes;
    return 0;
}

/* The totals of @p e (dims, bytes_per_voxel, file_bytes and compressed set; file_bytes
 * UINT64_MAX when unknown) and the verdict: RSY_ELIMIT beyond RSY__NIFTI_MAX_BYTES,
 * RSY_EFORMAT beyond what the file can hold. */
static rsy_status extent_judge(rsy__nifti_extent *e)
{
    uint64_t nvox = 1;
    for (int i = 1; i <= e->dim[0]; i++) {
        nvox *= (uint64_t)e->dim[i]; /* < 2^32 · 32767 before the break: no overflow */
        if (nvox > RSY__NIFTI_MAX_BYTES)
            break;
    }
    /* The reader allocates the volume (at most 4 bytes a voxel) and, for a converted type, the
     * raw voxels too. */
    uint64_t raw = nvox * (uint64_t)e->bytes_per_voxel, need = raw + nvox * 4;
    uint64_t can_hold = e->file_bytes; /* a plain .nii, or unknown (UINT64_MAX) */
    if (e->compressed && e->file_bytes != UINT64_MAX)
        can_hold = e->file_bytes * RSY__NIFTI_DEFLATE_MAX_RATIO + RSY__NIFTI_SLACK_BYTES;
    e->n_voxels = nvox;
    e->raw_bytes = raw;
    if (nvox > RSY__NIFTI_MAX_BYTES || need > RSY__NIFTI_MAX_BYTES)
        return RSY_ELIMIT;
    if (raw > can_hold)
        return RSY_EFORMAT;
    return RSY_OK;
}

rsy_status rsy__nifti_check_extent(const char *path, rsy__nifti_extent *ext)
{
    struct nifti_1_header h;
    struct stat st;
    memset(ext, 0, sizeof *ext);
    if (!path || stat(path, &st) != 0)
        return RSY_OK; /* the reader reports why */
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return RSY_OK;
    int got = gzread(gz, &h, sizeof h);
    int plain = gzdirect(gz);
    gzclose(gz);
    if (got != (int)sizeof h)
        return RSY_OK;
    int32_t size = h.sizeof_hdr;
    swap4(&size);
    if (h.sizeof_hdr != NIFTI1_HEADER_BYTES) {
        if (size != NIFTI1_HEADER_BYTES)
            return RSY_OK;
        swap_header(&h);
    }
    int bytes = datatype_size(h.datatype);
    if (h.dim[0] < 1 || h.dim[0] > 7 || bytes == 0)
        return RSY_OK;
    for (int i = 0; i <= h.dim[0]; i++) {
        if (h.dim[i] < 1)
            return RSY_OK;
        ext->dim[i] = h.dim[i];
    }
    ext->bytes_per_voxel = bytes;
    ext->file_bytes = (uint64_t)st.st_size;
    ext->compressed = !plain;
    return extent_judge(ext);
}

rsy_status rsy_volume_read_nifti(rsy_volume **out, rsy_nifti_info *info, const char *path)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!path)
        return RSY_EINVAL;

    rsy_status rc;
    rsy_volume *v = NULL;
    unsigned char *raw = NULL;
    rsy_nifti_info local_info = {0};
    rsy_nifti_info *inf = info ? info : &local_info;
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        rsy_log_error("%s: %s", path, strerror(errno ? errno : ENOMEM));
        return RSY_EIO;
    }
    /* The file's size bounds what its header may declare (below). zlib offers no descriptor
     * to fstat, and gzdopen would name the file "<fd:N>" in zlib's messages: the size is the
     * path's once opened, and the 4 GiB cap holds whatever it is. */
    struct stat st;
    int have_size = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    struct nifti_1_header hdr;
    rc = gz_read_all(gz, &hdr, sizeof hdr, path, "header");
    if (rc != RSY_OK)
        goto fail;
    int swapped = 0;
    size_t elem = 0;
    rsy_dtype dtype = RSY_DTYPE_FLOAT32;
    rsy_geometry geom;
    rc = parse_header(&hdr, path, &swapped, inf, &geom, &elem, &dtype);
    if (rc != RSY_OK)
        goto fail;
    /* Nothing is allocated for a header declaring more than the file can hold or the cap (a
     * hostile shard, a truncated download). A pipe or device has no size: the cap alone. */
    rsy__nifti_extent ext;
    memset(&ext, 0, sizeof ext);
    for (int k = 0; k <= hdr.dim[0]; k++)
        ext.dim[k] = hdr.dim[k];
    ext.bytes_per_voxel = (int)elem;
    ext.compressed = !gzdirect(gz);
    ext.file_bytes = have_size ? (uint64_t)st.st_size : UINT64_MAX;
    rc = extent_judge(&ext);
    if (rc == RSY_ELIMIT) {
        rsy_log_error("%s: header declares %d x %d x %d voxels of %d bytes, beyond the %llu GiB "
                      "a volume may take; not read",
                      path, ext.dim[1], ext.dim[0] > 1 ? ext.dim[2] : 1,
                      ext.dim[0] > 2 ? ext.dim[3] : 1, ext.bytes_per_voxel,
                      (unsigned long long)(RSY__NIFTI_MAX_BYTES >> 30));
        goto fail;
    }
    if (rc != RSY_OK) {
        rsy_log_error("%s: header declares %d x %d x %d voxels of %d bytes (%llu bytes), more "
                      "than this %llu-byte file can hold: truncated or corrupt",
                      path, ext.dim[1], ext.dim[0] > 1 ? ext.dim[2] : 1,
                      ext.dim[0] > 2 ? ext.dim[3] : 1, ext.bytes_per_voxel,
                      (unsigned long long)ext.raw_bytes, (unsigned long long)ext.file_bytes);
        goto fail;
    }
    rc = read_extensions(gz, path, swapped, (long)hdr.vox_offset, &inf->num_ext);
    if (rc != RSY_OK)
        goto fail;

    rc = rsy_volume_create(&v, &geom, dtype);
    if (rc != RSY_OK)
        goto fail;
    size_t nvox = rsy_geometry_nvox(&geom);
    if (nvox > SIZE_MAX / elem) {
        rsy_log_error("%s: voxel data size overflows the address space", path);
        rc = RSY_ELIMIT;
        goto fail;
    }
    size_t raw_bytes = nvox * elem;
    /* Only the four native types are copied as they are; the rest go through float32. */
    int convert = hdr.datatype != NIFTI_TYPE_UINT8 && hdr.datatype != NIFTI_TYPE_INT16 &&
                  hdr.datatype != NIFTI_TYPE_UINT16 && hdr.datatype != NIFTI_TYPE_FLOAT32;
    if (convert) {
        raw = malloc(raw_bytes);
        if (!raw) {
            rsy_log_error("%s: cannot allocate %zu bytes", path, raw_bytes);
            rc = RSY_ENOMEM;
            goto fail;
        }
    }
    unsigned char *dst = convert ? raw : v->data;
    rc = gz_read_all(gz, dst, raw_bytes, path, "voxel data");
    if (rc != RSY_OK)
        goto fail;
    if (swapped)
        swap_voxels(dst, nvox, elem);
    if (convert)
        convert_to_float(raw, hdr.datatype, nvox, v->data);

    /* Read past the voxels so zlib checks the gzip trailer (CRC-32 and length): a stream cut
     * inside its trailer or last block shows up here or in gzclose() as Z_BUF_ERROR. Bytes
     * after the voxels of a plain .nii are allowed and ignored. */
    unsigned char extra;
    int tail = gzread(gz, &extra, 1);
    int errnum = Z_OK;
    if (tail < 0)
        gzerror(gz, &errnum);
    int close_rc = gzclose(gz);
    gz = NULL;
    if (tail < 0 || (close_rc != Z_OK && close_rc != Z_ERRNO)) {
        rsy_log_error("%s: truncated or corrupt compressed stream after the voxel data (zlib "
                      "error %d)",
                      path, tail < 0 ? errnum : close_rc);
        rc = RSY_EFORMAT;
        goto fail;
    }
    free(raw);
    *out = v;
    return RSY_OK;

fail:
    free(raw);
    rsy_volume_destroy(v);
    if (gz)
        gzclose(gz);
    return rc;
}
