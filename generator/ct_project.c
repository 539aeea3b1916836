/*
 * ct_project.c: parallel-beam forward projection of a μ slice (reference/domain.md section
 * 1.3 step 1): line integrals p(θ, t) = ∫ μ dl in mm⁻¹·mm by Joseph's ray-driven method
 * (P. M. Joseph, "An improved algorithm for reprojecting rays through pixel images", IEEE
 * TMI 1982;1:192-196): a ray is walked one pixel line at a time along the axis it is most
 * aligned with, the image is interpolated linearly across the ray at each line, and each
 * sample weighs the path length per line, Δ/max(|cosθ|, |sinθ|).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ct_internal.h"

/* Sum over lines l of the padded image a (lines of `stride` values, secondary coordinate c
 * in padded units, c = c0 + l·dc): linear interpolation between a[l][⌊c⌋] and a[l][⌊c⌋+1].
 * The padded image has one zero sample at each end of a line, so only l with
 * 0 <= c < n_sec + 1 contribute, and they form one interval because c is affine in l. */
static double ray_sum(const float *a, size_t stride, int64_t n_prim, int64_t n_sec, double c0,
                      double dc)
{
    const double hi = (double)n_sec + 1.0;
    int64_t l0 = 0, l1 = n_prim - 1;
    if (fabs(dc) < 1e-12) {
        if (!(c0 >= 0.0 && c0 < hi))
            return 0.0;
    } else {
        double a0 = (0.0 - c0) / dc, a1 = (hi - c0) / dc;
        if (a0 > a1) {
            const double t = a0;
            a0 = a1;
            a1 = t;
        }
        if (a1 < 0.0 || a0 > (double)(n_prim - 1))
            return 0.0;
        if (a0 > 0.0)
            l0 = (int64_t)floor(a0);
        if (a1 < (double)(n_prim - 1))
            l1 = (int64_t)ceil(a1);
        /* The end points were found in floating point: tighten them with the very test a
         * sample must pass, so the loop below never reads outside a line. */
        while (l0 <= l1 && !(c0 + (double)l0 * dc >= 0.0 && c0 + (double)l0 * dc < hi))
            l0++;
        while (l1 >= l0 && !(c0 + (double)l1 * dc >= 0.0 && c0 + (double)l1 * dc < hi))
            l1--;
    }
    double s = 0.0;
    for (int64_t l = l0; l <= l1; l++) {
        const double c = c0 + (double)l * dc;
        const int64_t k = (int64_t)c;
        const double w = c - (double)k;
        const float *line = a + (size_t)(l + 1) * stride;
        s += (1.0 - w) * line[k] + w * line[k + 1];
    }
    return s;
}

rsy_status rsy__ct_joseph(const float *mu_per_mm, int64_t nx, int64_t ny, double px, int n_views,
                          int n_det, double tau, const double *cos_t, const double *sin_t,
                          float *sino)
{
    const size_t sx = (size_t)nx + 2, sy = (size_t)ny + 2;
    /* Zero-bordered copies: rows (lines along x, for steps over rows) and the transpose
     * (lines along y, for steps over columns), so both walks read contiguous memory. */
    float *rows = calloc(sx * sy, sizeof(float));
    float *cols = calloc(sx * sy, sizeof(float));
    if (!rows || !cols) {
        free(cols);
        free(rows);
        return RSY_ENOMEM;
    }
    for (int64_t j = 0; j < ny; j++) {
        for (int64_t i = 0; i < nx; i++) {
            const float v = mu_per_mm[j * nx + i];
            rows[(size_t)(j + 1) * sx + (size_t)(i + 1)] = v;
            cols[(size_t)(i + 1) * sy + (size_t)(j + 1)] = v;
        }
    }
    const double cx = 0.5 * (double)(nx - 1), cy = 0.5 * (double)(ny - 1);
    const double bc = 0.5 * (n_det - 1);
    for (int v = 0; v < n_views; v++) {
        const double c = cos_t[v], s = sin_t[v];
        float *out = sino + (size_t)v * (size_t)n_det;
        for (int b = 0; b < n_det; b++) {
            const double t = ((double)b - bc) * tau;
            double sum;
            if (fabs(s) >= fabs(c)) {
                /* Mostly along x: at column i, y = (t − x·c)/s; padded row coordinate
                 * y/Δ + cy + 1. */
                const double c0 = (t + cx * px * c) / (s * px) + cy + 1.0;
                const double dc = -c / s;
                sum = ray_sum(cols, sy, nx, ny, c0, dc) * px / fabs(s);
            } else {
                /* Mostly along y: at row j, x = (t − y·s)/c. */
                const double c0 = (t + cy * px * s) / (c * px) + cx + 1.0;
                const double dc = -s / c;
                sum = ray_sum(rows, sx, ny, nx, c0, dc) * px / fabs(c);
            }
            out[b] = (float)sum;
        }
    }
    free(cols);
    free(rows);
    return RSY_OK;
}

rsy_status rsy_ct_forward(const rsy_ct_fbp *r, const float *mu_per_mm, float *sino)
{
    if (!r || !mu_per_mm || !sino)
        return RSY_EINVAL;
    return rsy__ct_joseph(mu_per_mm, r->nx, r->ny, r->pixel_mm, r->n_views, r->n_det,
                          r->p.det_spacing_mm, r->cos_t, r->sin_t, sino);
}
