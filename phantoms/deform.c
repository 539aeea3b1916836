/*
 * deform.c: a smooth random diffeomorphism for subject variety.
 *
 * The velocity field v is a sum of random Fourier features of a Gaussian covariance
 * (Rahimi & Recht, "Random features for large-scale kernel machines", NIPS 2007): with wave
 * vectors k ~ N(0, I / L^2) and uniform phases, cov(v(x), v(x+r)) is proportional to
 * exp(-|r|^2 / (2 L^2)), so L is the correlation length. The displacement of phi = exp(v) is
 * integrated by scaling and squaring (Arsigny et al., MICCAI 2006; Ashburner, NeuroImage 2007,
 * DARTEL): u_0 = v / 2^N, then N times u <- u + u o (id + u). Each step composes a
 * diffeomorphism close to the identity with itself, so phi stays invertible when the first
 * step is small compared with the grid spacing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "phantoms_internal.h"

/* Number of Fourier modes: enough for a Gaussian-looking field, cheap on a coarse grid. */
#define N_MODES 32
/* Grid nodes per correlation length (the field is smooth on that scale). */
#define NODES_PER_SCALE 2.5
/* Upper bound on nodes per axis, so huge fields of view stay cheap. */
#define MAX_NODES_PER_AXIS 96
/* The first step's largest displacement is at most this fraction of the node spacing. */
#define FIRST_STEP_FRACTION 0.25

typedef struct mode {
    double k[3];   /* wave vector, rad/mm */
    double phase;  /* rad */
    double amp[3]; /* vector amplitude (unit variance before scaling) */
} mode;

static size_t node_index(const rsy__deform *d, int64_t i, int64_t j, int64_t k)
{
    return (size_t)((k * d->n[1] + j) * d->n[0] + i);
}

/* Trilinear interpolation of field @p f (3 interleaved components) at world @p x_mm;
 * constant extension outside the grid. */
static void sample(const rsy__deform *d, const double *f, const double x_mm[3], double out[3])
{
    int64_t i0[3];
    double w[3];
    for (int a = 0; a < 3; a++) {
        double t = (x_mm[a] - d->origin_mm[a]) / d->h_mm;
        double tmax = (double)(d->n[a] - 1);
        if (!(t > 0.0))
            t = 0.0;
        if (t > tmax)
            t = tmax;
        int64_t it = (int64_t)t;
        if (it > d->n[a] - 2)
            it = d->n[a] - 2;
        if (it < 0)
            it = 0;
        i0[a] = it;
        w[a] = t - (double)it;
        if (d->n[a] < 2)
            w[a] = 0.0;
    }
    int64_t i1 = d->n[0] > 1 ? 1 : 0, j1 = d->n[1] > 1 ? 1 : 0, k1 = d->n[2] > 1 ? 1 : 0;
    out[0] = out[1] = out[2] = 0.0;
    for (int c = 0; c < 8; c++) {
        int di = c & 1, dj = (c >> 1) & 1, dk = (c >> 2) & 1;
        double wc = (di ? w[0] : 1.0 - w[0]) * (dj ? w[1] : 1.0 - w[1]) * (dk ? w[2] : 1.0 - w[2]);
        if (wc == 0.0)
            continue;
        const double *p = f + 3 * node_index(d, i0[0] + di * i1, i0[1] + dj * j1, i0[2] + dk * k1);
        out[0] += wc * p[0];
        out[1] += wc * p[1];
        out[2] += wc * p[2];
    }
}

void rsy__deform_apply(const rsy__deform *d, const double x_mm[3], double y_mm[3])
{
    double u[3];
    sample(d, d->u, x_mm, u);
    y_mm[0] = x_mm[0] + u[0];
    y_mm[1] = x_mm[1] + u[1];
    y_mm[2] = x_mm[2] + u[2];
}

/* Integrate exp(gain * v) into d->u by scaling and squaring; @p tmp has the size of d->u.
 * Returns the RMS of |u| over the nodes. */
static double integrate(rsy__deform *d, const double *v, double gain, double *tmp)
{
    size_t nn = (size_t)(d->n[0] * d->n[1] * d->n[2]);
    double vmax = 0.0;
    for (size_t q = 0; q < nn; q++) {
        double m = gain * sqrt(v[3 * q] * v[3 * q] + v[3 * q + 1] * v[3 * q + 1] +
                               v[3 * q + 2] * v[3 * q + 2]);
        if (m > vmax)
            vmax = m;
    }
    int n_sq = 0;
    while (vmax / ldexp(1.0, n_sq) > FIRST_STEP_FRACTION * d->h_mm && n_sq < 30)
        n_sq++;
    if (n_sq < 4)
        n_sq = 4;
    d->n_squarings = n_sq;
    double s = gain / ldexp(1.0, n_sq);
    for (size_t q = 0; q < 3 * nn; q++)
        d->u[q] = s * v[q];
    for (int step = 0; step < n_sq; step++) {
        for (int64_t k = 0; k < d->n[2]; k++)
            for (int64_t j = 0; j < d->n[1]; j++)
                for (int64_t i = 0; i < d->n[0]; i++) {
                    size_t q = node_index(d, i, j, k);
                    const double *u = d->u + 3 * q;
                    double x[3] = {d->origin_mm[0] + (double)i * d->h_mm + u[0],
                                   d->origin_mm[1] + (double)j * d->h_mm + u[1],
                                   d->origin_mm[2] + (double)k * d->h_mm + u[2]};
                    double uu[3];
                    sample(d, d->u, x, uu);
                    tmp[3 * q] = u[0] + uu[0];
                    tmp[3 * q + 1] = u[1] + uu[1];
                    tmp[3 * q + 2] = u[2] + uu[2];
                }
        memcpy(d->u, tmp, 3 * nn * sizeof *tmp);
    }
    double ss = 0.0;
    for (size_t q = 0; q < 3 * nn; q++)
        ss += d->u[q] * d->u[q];
    return sqrt(ss / (double)nn);
}

rsy_status rsy__deform_create(rsy__deform **out, const double lo_mm[3], const double hi_mm[3],
                              double rms_mm, double scale_mm, rsy_rng *rng)
{
    rsy_status rc = RSY_OK;
    rsy__deform *d = NULL;
    double *v = NULL, *tmp = NULL;
    mode modes[N_MODES];

    if (out == NULL)
        return RSY_EINVAL;
    *out = NULL;
    if (rng == NULL || !(rms_mm >= 0.0) || !isfinite(rms_mm) || !(scale_mm > 0.0) ||
        !isfinite(scale_mm)) {
        rsy_log_error("deformation: need rms_mm >= 0 and scale_mm > 0 (got %g, %g)", rms_mm,
                      scale_mm);
        return RSY_EINVAL;
    }
    /* Draw the modes first, always the same number of draws, so the stream position after
     * this call does not depend on the requested amplitude. */
    for (int m = 0; m < N_MODES; m++) {
        for (int a = 0; a < 3; a++)
            modes[m].k[a] = rsy_rng_gaussian(rng, 1.0 / scale_mm);
        modes[m].phase = rsy_rng_uniform_range(rng, 0.0, 2.0 * M_PI);
        for (int a = 0; a < 3; a++)
            modes[m].amp[a] = rsy_rng_gaussian(rng, 1.0);
    }

    d = calloc(1, sizeof *d);
    if (d == NULL) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    /* Margin: the pull-back samples u at x and, while squaring, at x + u. */
    double margin = 3.0 * rms_mm + 2.0 * scale_mm / NODES_PER_SCALE;
    double extent = 0.0;
    for (int a = 0; a < 3; a++)
        if (hi_mm[a] - lo_mm[a] + 2.0 * margin > extent)
            extent = hi_mm[a] - lo_mm[a] + 2.0 * margin;
    d->h_mm = scale_mm / NODES_PER_SCALE;
    if (extent / d->h_mm > MAX_NODES_PER_AXIS - 1)
        d->h_mm = extent / (MAX_NODES_PER_AXIS - 1);
    for (int a = 0; a < 3; a++) {
        double len = hi_mm[a] - lo_mm[a] + 2.0 * margin;
        d->n[a] = (int64_t)ceil(len / d->h_mm) + 1;
        if (d->n[a] < 2)
            d->n[a] = 2;
        d->origin_mm[a] = 0.5 * (lo_mm[a] + hi_mm[a]) - 0.5 * d->h_mm * (double)(d->n[a] - 1);
    }
    size_t nn = (size_t)(d->n[0] * d->n[1] * d->n[2]);
    d->u = calloc(3 * nn, sizeof *d->u);
    v = malloc(3 * nn * sizeof *v);
    tmp = malloc(3 * nn * sizeof *tmp);
    if (d->u == NULL || v == NULL || tmp == NULL) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    if (rms_mm == 0.0) {
        d->rms_mm = 0.0;
        goto done;
    }
    /* Unit-variance field per component: sqrt(2/M) sum a_m cos(k_m . x + phase_m). */
    double norm = sqrt(2.0 / N_MODES);
    for (int64_t k = 0; k < d->n[2]; k++)
        for (int64_t j = 0; j < d->n[1]; j++)
            for (int64_t i = 0; i < d->n[0]; i++) {
                double x = d->origin_mm[0] + (double)i * d->h_mm;
                double y = d->origin_mm[1] + (double)j * d->h_mm;
                double z = d->origin_mm[2] + (double)k * d->h_mm;
                double s[3] = {0.0, 0.0, 0.0};
                for (int m = 0; m < N_MODES; m++) {
                    double c = cos(modes[m].k[0] * x + modes[m].k[1] * y + modes[m].k[2] * z +
                                   modes[m].phase);
                    s[0] += modes[m].amp[0] * c;
                    s[1] += modes[m].amp[1] * c;
                    s[2] += modes[m].amp[2] * c;
                }
                size_t q = node_index(d, i, j, k);
                v[3 * q] = norm * s[0];
                v[3 * q + 1] = norm * s[1];
                v[3 * q + 2] = norm * s[2];
            }
    /* The RMS of exp(v) is nearly linear in the amplitude of v for smooth fields: integrate
     * once at unit gain, rescale the gain, integrate again, and record what was achieved. */
    double rms1 = integrate(d, v, 1.0, tmp);
    if (!isfinite(rms1) || rms1 <= 0.0) {
        rsy_log_error("deformation: degenerate velocity field (RMS %g)", rms1);
        rc = RSY_ENUMERIC;
        goto fail;
    }
    d->rms_mm = integrate(d, v, rms_mm / rms1, tmp);
    if (!isfinite(d->rms_mm)) {
        rsy_log_error("deformation: non-finite displacement after scaling and squaring");
        rc = RSY_ENUMERIC;
        goto fail;
    }
done:
    free(v);
    free(tmp);
    *out = d;
    return RSY_OK;
fail:
    free(v);
    free(tmp);
    rsy__deform_destroy(d);
    return rc;
}

void rsy__deform_destroy(rsy__deform *d)
{
    if (d == NULL)
        return;
    free(d->u);
    free(d);
}

double rsy__deform_min_jacobian(const rsy__deform *d)
{
    double jmin = 1.0;
    double inv2h = 1.0 / (2.0 * d->h_mm);
    for (int64_t k = 1; k + 1 < d->n[2]; k++)
        for (int64_t j = 1; j + 1 < d->n[1]; j++)
            for (int64_t i = 1; i + 1 < d->n[0]; i++) {
                const double *ux0 = d->u + 3 * node_index(d, i - 1, j, k);
                const double *ux1 = d->u + 3 * node_index(d, i + 1, j, k);
                const double *uy0 = d->u + 3 * node_index(d, i, j - 1, k);
                const double *uy1 = d->u + 3 * node_index(d, i, j + 1, k);
                const double *uz0 = d->u + 3 * node_index(d, i, j, k - 1);
                const double *uz1 = d->u + 3 * node_index(d, i, j, k + 1);
                double J[3][3];
                for (int c = 0; c < 3; c++) {
                    J[c][0] = (c == 0) + (ux1[c] - ux0[c]) * inv2h;
                    J[c][1] = (c == 1) + (uy1[c] - uy0[c]) * inv2h;
                    J[c][2] = (c == 2) + (uz1[c] - uz0[c]) * inv2h;
                }
                double det = J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1]) -
                             J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0]) +
                             J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0]);
                if (det < jmin)
                    jmin = det;
            }
    return jmin;
}
