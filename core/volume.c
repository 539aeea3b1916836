/*
 * volume.c: geometry (voxel <-> world RAS+ mm) and the volume container.
 */
#include <math.h>
#include <string.h>

#include "core_internal.h"

/* Tolerance of rsy_geometry_equal() in mm (rsy_core.h). */
#define GEOMETRY_EQUAL_TOL_MM 1e-6

size_t rsy_dtype_size(rsy_dtype t)
{
    switch (t) {
    case RSY_DTYPE_UINT8:
        return 1;
    case RSY_DTYPE_INT16:
    case RSY_DTYPE_UINT16:
        return 2;
    case RSY_DTYPE_FLOAT32:
        return 4;
    }
    return 0;
}

const char *rsy_dtype_name(rsy_dtype t)
{
    switch (t) {
    case RSY_DTYPE_UINT8:
        return "uint8";
    case RSY_DTYPE_INT16:
        return "int16";
    case RSY_DTYPE_UINT16:
        return "uint16";
    case RSY_DTYPE_FLOAT32:
        return "float32";
    }
    return "unknown";
}

rsy_status rsy_geometry_init(rsy_geometry *g, const int64_t dims[3], const double spacing_mm[3])
{
    if (!g || !dims || !spacing_mm)
        return RSY_EINVAL;
    for (int a = 0; a < 3; a++) {
        if (dims[a] < 1 || !isfinite(spacing_mm[a]) || !(spacing_mm[a] > 0.0)) {
            rsy_log_error("axis %d: dims %lld, spacing %g mm (need dims >= 1, spacing > 0)", a,
                          (long long)dims[a], spacing_mm[a]);
            return RSY_EINVAL;
        }
    }
    memset(g, 0, sizeof *g);
    for (int a = 0; a < 3; a++) {
        g->dims[a] = dims[a];
        g->spacing_mm[a] = spacing_mm[a];
        /* Centred: voxel (n-1)/2 along each axis sits at the world origin. */
        g->affine[a][a] = spacing_mm[a];
        g->affine[a][3] = -0.5 * (double)(dims[a] - 1) * spacing_mm[a];
    }
    g->affine[3][3] = 1.0;
    return RSY_OK;
}

size_t rsy_geometry_nvox(const rsy_geometry *g)
{
    return (size_t)g->dims[0] * (size_t)g->dims[1] * (size_t)g->dims[2];
}

void rsy_geometry_voxel_to_world(const rsy_geometry *g, const double ijk[3], double xyz_mm[3])
{
    double out[3];
    for (int r = 0; r < 3; r++)
        out[r] = g->affine[r][0] * ijk[0] + g->affine[r][1] * ijk[1] + g->affine[r][2] * ijk[2] +
                 g->affine[r][3];
    memcpy(xyz_mm, out, sizeof out);
}

void rsy_geometry_world_to_voxel(const rsy_geometry *g, const double xyz_mm[3], double ijk[3])
{
    /* The affine is [A t; 0 0 0 1], so its inverse maps x to A^-1 (x - t). A^-1 is the
     * adjugate over the determinant, which holds for any non-singular A (not only
     * rotation x scale). A singular A gives non-finite results. */
    const double(*m)[4] = (const double(*)[4])g->affine;
    double c[3][3];
    c[0][0] = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    c[0][1] = m[0][2] * m[2][1] - m[0][1] * m[2][2];
    c[0][2] = m[0][1] * m[1][2] - m[0][2] * m[1][1];
    c[1][0] = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    c[1][1] = m[0][0] * m[2][2] - m[0][2] * m[2][0];
    c[1][2] = m[0][2] * m[1][0] - m[0][0] * m[1][2];
    c[2][0] = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    c[2][1] = m[0][1] * m[2][0] - m[0][0] * m[2][1];
    c[2][2] = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    double det = m[0][0] * c[0][0] + m[0][1] * c[1][0] + m[0][2] * c[2][0];
    const double d[3] = {xyz_mm[0] - m[0][3], xyz_mm[1] - m[1][3], xyz_mm[2] - m[2][3]};
    double out[3];
    for (int r = 0; r < 3; r++)
        out[r] = (c[r][0] * d[0] + c[r][1] * d[1] + c[r][2] * d[2]) / det;
    memcpy(ijk, out, sizeof out);
}

int rsy_geometry_equal(const rsy_geometry *a, const rsy_geometry *b)
{
    for (int k = 0; k < 3; k++) {
        if (a->dims[k] != b->dims[k])
            return 0;
        if (!(fabs(a->spacing_mm[k] - b->spacing_mm[k]) <= GEOMETRY_EQUAL_TOL_MM))
            return 0;
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            if (!(fabs(a->affine[r][c] - b->affine[r][c]) <= GEOMETRY_EQUAL_TOL_MM))
                return 0;
    return 1;
}

/* Validate @p g and compute the buffer size for @p dtype without overflowing size_t. */
static rsy_status volume_bytes(const rsy_geometry *g, rsy_dtype dtype, size_t *nbytes)
{
    size_t elem = rsy_dtype_size(dtype);
    if (elem == 0) {
        rsy_log_error("unknown voxel type %d", (int)dtype);
        return RSY_EINVAL;
    }
    size_t n = elem;
    for (int a = 0; a < 3; a++) {
        if (g->dims[a] < 1 || !isfinite(g->spacing_mm[a]) || !(g->spacing_mm[a] > 0.0)) {
            rsy_log_error("axis %d: dims %lld, spacing %g mm (need dims >= 1, spacing > 0)", a,
                          (long long)g->dims[a], g->spacing_mm[a]);
            return RSY_EINVAL;
        }
        if ((uint64_t)g->dims[a] > SIZE_MAX / n) {
            rsy_log_error("volume of %lld x %lld x %lld %s voxels overflows the address space",
                          (long long)g->dims[0], (long long)g->dims[1], (long long)g->dims[2],
                          rsy_dtype_name(dtype));
            return RSY_ELIMIT;
        }
        n *= (size_t)g->dims[a];
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            if (!isfinite(g->affine[r][c])) {
                rsy_log_error("affine[%d][%d] is not finite", r, c);
                return RSY_EINVAL;
            }
    *nbytes = n;
    return RSY_OK;
}

rsy_status rsy_volume_create(rsy_volume **out, const rsy_geometry *g, rsy_dtype dtype)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!g)
        return RSY_EINVAL;
    size_t nbytes = 0;
    rsy_status rc = volume_bytes(g, dtype, &nbytes);
    if (rc != RSY_OK)
        return rc;

    rsy_volume *v = calloc(1, sizeof *v);
    if (!v)
        goto fail;
    v->data = calloc(nbytes, 1);
    if (!v->data)
        goto fail;
    v->geom = *g;
    v->dtype = dtype;
    *out = v;
    return RSY_OK;

fail:
    rsy_log_error("cannot allocate %zu bytes for a %lld x %lld x %lld %s volume", nbytes,
                  (long long)g->dims[0], (long long)g->dims[1], (long long)g->dims[2],
                  rsy_dtype_name(dtype));
    rsy_volume_destroy(v);
    return RSY_ENOMEM;
}

rsy_status rsy_volume_clone(rsy_volume **out, const rsy_volume *src)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!src)
        return RSY_EINVAL;
    rsy_volume *v = NULL;
    rsy_status rc = rsy_volume_create(&v, &src->geom, src->dtype);
    if (rc != RSY_OK)
        return rc;
    memcpy(v->data, src->data, rsy_volume_nbytes(v));
    *out = v;
    return RSY_OK;
}

void rsy_volume_destroy(rsy_volume *v)
{
    if (!v)
        return;
    free(v->data);
    free(v);
}

size_t rsy_volume_nbytes(const rsy_volume *v)
{
    return rsy_geometry_nvox(&v->geom) * rsy_dtype_size(v->dtype);
}

void rsy__geometry_world_bounds(const rsy_geometry *g, double lo[3], double hi[3])
{
    for (int a = 0; a < 3; a++) {
        lo[a] = INFINITY;
        hi[a] = -INFINITY;
    }
    /* The extremes of an affine image of the voxel-centre box are at its 8 corners. */
    for (int c = 0; c < 8; c++) {
        double ijk[3] = {(c & 1) ? (double)(g->dims[0] - 1) : 0.0,
                         (c & 2) ? (double)(g->dims[1] - 1) : 0.0,
                         (c & 4) ? (double)(g->dims[2] - 1) : 0.0};
        double w[3];
        rsy_geometry_voxel_to_world(g, ijk, w);
        for (int a = 0; a < 3; a++) {
            lo[a] = fmin(lo[a], w[a]);
            hi[a] = fmax(hi[a], w[a]);
        }
    }
}
