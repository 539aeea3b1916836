/*
 * mass_effect.c: a lesion pushes its surroundings outward (DESIGN.md section 5).
 *
 * The map. Around the push centre c (the lesion centre when it was placed), a world point x at
 * r = |x - c| in direction n = (x - c)/r takes its content from the source point
 *     S(x) = x - m(x) n        (backward warping: the new map at x is the old map at S(x)),
 * with m the displacement magnitude
 *     m_rad(x) = s r                                  for r <= R(n),
 *              = s R(n) g((r - R(n)) / range)         beyond,
 *     g(t) = e^-t (1 - (t/T)^2)^2 for t < T = 3, 0 beyond        (decreasing, C1, g(0) = 1)
 *     m(x) = min(m_rad(x), beta max(0, d(x) - h)),  beta = 1/2,
 * where s is the drawn strength, R(n) the lesion surface's radius in direction n (tabulated on
 * a 24 x 24 per face cube map of world directions, so smooth), range the prior's range_mm,
 * d(x) the Euclidean distance to the nearest voxel centre of a fixed tissue (bone) and h half
 * the voxel diagonal. So tissue at the lesion surface moves out by s R (the surface
 * displacement strength x radius), the displacement decays with range_mm beyond the surface
 * and vanishes 3 ranges out, and it fades linearly to 0 at fixed tissue.
 *
 * Invertible by construction. S maps every ray from c onto itself (x - m n with m < r stays on
 * the ray's side of c). In the frame (n, e1, e2) its Jacobian matrix is upper triangular,
 *     dS = [[1 - dm/dr, -dm/de1, -dm/de2], [0, 1 - m/r, 0], [0, 0, 1 - m/r]],
 * (the tangential derivatives of m only enter the first row), so
 *     det dS = (1 - dm/dr) (1 - m/r)^2.
 * Inside the surface m/r <= s and dm/dr <= s; beyond it dm/dr <= 0 (g decreases; R(n) is
 * constant along a ray) and m/r <= s g <= s; the cap's radial slope is at most beta (d is
 * 1-Lipschitz). So dm/dr <= max(s, beta) < 1 and m/r <= s < 1 wherever m is differentiable
 * (everywhere but on measure-zero kinks of the min, where S stays Lipschitz):
 *     det dS >= (1 - max(s, 1/2)) (1 - s)^2 > 0.
 * Along each ray r -> r - m is continuous and strictly increasing from 0 and equal to r beyond
 * the support, so S is a bijection of each ray and hence of space: the push is a
 * homeomorphism with positive Jacobian (strengths are in (0, 1)). Its inverse, the forward
 * map, moves tissue outward; the centres of lesions placed before are moved by it (found by
 * bisection along their ray).
 *
 * Fixed tissue keeps every voxel: at a fixed voxel d = 0, so m = 0; at any other voxel
 * m <= beta (d - h) < d - h, so the source point's nearest voxel (within h of it) is nearer
 * than d to x and cannot be fixed: no fixed label is copied either.
 *
 * Cost. Only voxels within R_max + T range of c move. The distance to fixed tissue is computed
 * (exact EDT, placement.c) over the cube around c of half-side
 *     max over t in [0, T] of R_max + t range + s R_max g(t)/beta + h,
 * which holds every fixed voxel that can cap the push (the cap at x matters only within
 * m_rad(x)/beta + h of x), and not at all when that cube has no fixed voxel.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "priors_internal.h"

#define PUSH_TABLE_N 24
#define GROW_STEPS 600

typedef struct push {
    double c[3];
    double s, range;
    double rmax;         /* largest node of rtab */
    double support;      /* rmax + T range */
    double h;            /* half the voxel diagonal */
    float rtab[6 * PUSH_TABLE_N * PUSH_TABLE_N]; /* R(n) over world directions, mm */
    int has_fixed;
    rsy__box fbox;       /* box of the fixed-tissue distance */
    float *fdist;
    rsy__box box;        /* support box */
    const rsy_geometry *g;
    double inv[3][3];    /* world -> voxel index, linear part */
} push;

static double g_profile(double t)
{
    if (t >= RSY__MASS_CUTOFF)
        return 0.0;
    const double q = t / RSY__MASS_CUTOFF;
    return exp(-t) * (1.0 - q * q) * (1.0 - q * q);
}

static double m_radial(const push *pu, const double x[3], double *r_out)
{
    const double d[3] = {x[0] - pu->c[0], x[1] - pu->c[1], x[2] - pu->c[2]};
    const double r = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    *r_out = r;
    if (!(r > 1e-12) || r >= pu->support)
        return 0.0;
    const double rs = rsy__cube_lookup(pu->rtab, PUSH_TABLE_N, d);
    if (r <= rs)
        return pu->s * r;
    return pu->s * rs * g_profile((r - rs) / pu->range);
}

/* Voxel index nearest to world point x (unclamped). */
static void nearest_voxel(const push *pu, const double x[3], int64_t v[3])
{
    double t[3];
    for (int a = 0; a < 3; a++)
        t[a] = x[a] - pu->g->affine[a][3];
    for (int a = 0; a < 3; a++)
        v[a] = (int64_t)floor(pu->inv[a][0] * t[0] + pu->inv[a][1] * t[1] + pu->inv[a][2] * t[2] +
                              0.5);
}

static double fixed_distance_at(const push *pu, const int64_t v[3])
{
    if (!pu->has_fixed)
        return HUGE_VAL;
    const rsy__box *b = &pu->fbox;
    for (int a = 0; a < 3; a++)
        if (v[a] < b->lo[a] || v[a] > b->hi[a])
            return HUGE_VAL; /* farther than any fixed voxel that can cap the push */
    return pu->fdist[((v[2] - b->lo[2]) * rsy__box_n(b, 1) + (v[1] - b->lo[1])) *
                         rsy__box_n(b, 0) +
                     (v[0] - b->lo[0])];
}

/* m(x) at voxel v (world x), the cap included. */
static double m_at(const push *pu, const double x[3], const int64_t v[3], double *r_out)
{
    const double m = m_radial(pu, x, r_out);
    if (m <= 0.0)
        return 0.0;
    const double cap = RSY__MASS_BETA * (fixed_distance_at(pu, v) - pu->h);
    return cap < m ? (cap > 0.0 ? cap : 0.0) : m;
}

static void cube_box(const rsy_geometry *g, const double c[3], double half, rsy__box *b)
{
    double lo[3] = {HUGE_VAL, HUGE_VAL, HUGE_VAL}, hi[3] = {-HUGE_VAL, -HUGE_VAL, -HUGE_VAL};
    for (int corner = 0; corner < 8; corner++) {
        double xyz[3], ijk[3];
        for (int k = 0; k < 3; k++)
            xyz[k] = c[k] + ((corner >> k) & 1 ? half : -half);
        rsy_geometry_world_to_voxel(g, xyz, ijk);
        for (int k = 0; k < 3; k++) {
            lo[k] = fmin(lo[k], ijk[k]);
            hi[k] = fmax(hi[k], ijk[k]);
        }
    }
    for (int k = 0; k < 3; k++) {
        b->lo[k] = (int64_t)fmax(0.0, floor(lo[k]));
        b->hi[k] = (int64_t)fmin((double)(g->dims[k] - 1), ceil(hi[k]));
        if (b->hi[k] < b->lo[k]) /* outside the volume: an empty box */
            b->hi[k] = b->lo[k] - 1;
    }
}

static int box_empty(const rsy__box *b)
{
    return b->hi[0] < b->lo[0] || b->hi[1] < b->lo[1] || b->hi[2] < b->lo[2];
}

static void push_clear(push *pu) { RSY_FREE(pu->fdist); }

static rsy_status push_prepare(push *pu, const rsy_prior *p, const rsy__prior_tissues *tis,
                               const rsy_lesion *l, const rsy_volume *classes)
{
    memset(pu, 0, sizeof *pu);
    const rsy_geometry *g = &classes->geom;
    pu->g = g;
    memcpy(pu->c, l->mass_center_mm, sizeof pu->c);
    pu->s = fmin(0.95, fmax(0.0, l->mass_strength));
    pu->range = p->mass_effect.range_mm > 0.0 ? p->mass_effect.range_mm : 1.0;
    pu->h = 0.5 * sqrt(g->spacing_mm[0] * g->spacing_mm[0] + g->spacing_mm[1] * g->spacing_mm[1] +
                       g->spacing_mm[2] * g->spacing_mm[2]);
    for (int r = 0; r < 3; r++) /* inverse of (R diag(sp)) is diag(1/sp) R^T */
        for (int c = 0; c < 3; c++)
            pu->inv[r][c] = g->affine[c][r] / (g->spacing_mm[r] * g->spacing_mm[r]);

    rsy__shape sh;
    rsy_status rc = rsy__shape_init(&sh, l);
    if (rc != RSY_OK)
        return rc;
    pu->rmax = 0.0;
    for (int f = 0; f < 6; f++)
        for (int j = 0; j < PUSH_TABLE_N; j++)
            for (int i = 0; i < PUSH_TABLE_N; i++) {
                double d[3];
                rsy__cube_node(f, i, j, PUSH_TABLE_N, d);
                const float rv = (float)rsy__shape_radius_along(&sh, d);
                pu->rtab[(f * PUSH_TABLE_N + j) * PUSH_TABLE_N + i] = rv;
                pu->rmax = fmax(pu->rmax, (double)rv);
            }
    rsy__shape_clear(&sh);
    pu->support = pu->rmax + RSY__MASS_CUTOFF * pu->range;
    cube_box(g, pu->c, pu->support, &pu->box);

    int any_fixed = 0;
    for (int c = 0; c < RSY__MAX_TISSUE_CLASSES; c++)
        any_fixed |= tis->fixed[c];
    if (!any_fixed || box_empty(&pu->box) || !(pu->s > 0.0))
        return RSY_OK;
    double grow = 0.0;
    const double dt = RSY__MASS_CUTOFF / GROW_STEPS;
    for (int q = 0; q <= GROW_STEPS; q++) {
        const double t = q * dt;
        grow = fmax(grow, t * pu->range + pu->s * pu->rmax * g_profile(t) / RSY__MASS_BETA);
    }
    grow += pu->rmax + pu->h + pu->range * dt; /* f' <= range between the samples */
    cube_box(g, pu->c, grow, &pu->fbox);
    const uint16_t *cls = classes->data;
    const int64_t *d = g->dims;
    for (int64_t k = pu->fbox.lo[2]; k <= pu->fbox.hi[2] && !pu->has_fixed; k++)
        for (int64_t j = pu->fbox.lo[1]; j <= pu->fbox.hi[1] && !pu->has_fixed; j++) {
            const uint16_t *row = cls + (k * d[1] + j) * d[0];
            for (int64_t i = pu->fbox.lo[0]; i <= pu->fbox.hi[0]; i++)
                if (row[i] < RSY__MAX_TISSUE_CLASSES && tis->fixed[row[i]]) {
                    pu->has_fixed = 1;
                    break;
                }
        }
    if (!pu->has_fixed)
        return RSY_OK;
    pu->fdist = malloc(rsy__box_nvox(&pu->fbox) * sizeof *pu->fdist);
    if (!pu->fdist)
        return RSY_ENOMEM;
    rc = rsy__edt_box(cls, d, g->spacing_mm, &pu->fbox, tis->fixed, pu->fdist);
    if (rc != RSY_OK)
        push_clear(pu);
    return rc;
}

/* Forward map of world point y (the inverse of S along its ray), by bisection. */
static void push_forward(const push *pu, double y[3])
{
    const double d[3] = {y[0] - pu->c[0], y[1] - pu->c[1], y[2] - pu->c[2]};
    const double r = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    if (!(r > 1e-12) || r >= pu->support)
        return;
    const double n[3] = {d[0] / r, d[1] / r, d[2] / r};
    double lo = r, hi = r + pu->s * pu->rmax + 1e-9;
    for (int it = 0; it < 60; it++) {
        const double mid = 0.5 * (lo + hi);
        const double x[3] = {pu->c[0] + mid * n[0], pu->c[1] + mid * n[1], pu->c[2] + mid * n[2]};
        int64_t v[3];
        double rr;
        nearest_voxel(pu, x, v);
        if (mid - m_at(pu, x, v, &rr) < r)
            lo = mid;
        else
            hi = mid;
    }
    const double rf = 0.5 * (lo + hi);
    for (int a = 0; a < 3; a++)
        y[a] = pu->c[a] + rf * n[a];
}

/* Source voxel of voxel (i, j, k) at world x; returns m (0: the voxel keeps its value). */
static double source_of(const push *pu, const double x[3], const int64_t v[3], int64_t src[3],
                        double src_mm[3])
{
    double r;
    const double m = m_at(pu, x, v, &r);
    for (int a = 0; a < 3; a++)
        src_mm[a] = m > 0.0 ? x[a] - m * (x[a] - pu->c[a]) / r : x[a];
    if (m > 0.0) {
        nearest_voxel(pu, src_mm, src);
        for (int a = 0; a < 3; a++) /* the segment [c, x] lies in the support box */
            src[a] = src[a] < pu->box.lo[a] ? pu->box.lo[a]
                                            : (src[a] > pu->box.hi[a] ? pu->box.hi[a] : src[a]);
    } else {
        memcpy(src, v, 3 * sizeof *src);
    }
    return m;
}

static rsy_status warp_volume(const push *pu, uint16_t *data, uint16_t *copy, double *max_mm)
{
    const rsy__box *b = &pu->box;
    const int64_t *d = pu->g->dims;
    const int64_t bx = rsy__box_n(b, 0), by = rsy__box_n(b, 1);
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++)
            memcpy(copy + ((k - b->lo[2]) * by + (j - b->lo[1])) * bx,
                   data + (k * d[1] + j) * d[0] + b->lo[0], (size_t)bx * sizeof *data);
    double mmax = 0.0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++)
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++) {
                const int64_t v[3] = {i, j, k};
                const double ijk[3] = {(double)i, (double)j, (double)k};
                double x[3], src_mm[3];
                int64_t src[3];
                rsy_geometry_voxel_to_world(pu->g, ijk, x);
                const double m = source_of(pu, x, v, src, src_mm);
                if (!(m > 0.0))
                    continue;
                mmax = fmax(mmax, m);
                data[(k * d[1] + j) * d[0] + i] =
                    copy[((src[2] - b->lo[2]) * by + (src[1] - b->lo[1])) * bx +
                         (src[0] - b->lo[0])];
            }
    *max_mm = mmax;
    return RSY_OK;
}

rsy_status rsy__mass_effect_apply(const rsy_prior *p, const rsy__prior_tissues *tis,
                                  const rsy_lesion *l, rsy_volume *classes,
                                  rsy_volume *instances, rsy_lesion *moved, int n_moved,
                                  double *max_mm)
{
    *max_mm = 0.0;
    push pu;
    rsy_status rc = push_prepare(&pu, p, tis, l, classes);
    if (rc != RSY_OK)
        return rc;
    if (box_empty(&pu.box) || !(pu.s > 0.0)) {
        push_clear(&pu);
        return RSY_OK;
    }
    uint16_t *copy = malloc(rsy__box_nvox(&pu.box) * sizeof *copy);
    if (!copy) {
        push_clear(&pu);
        return RSY_ENOMEM;
    }
    rc = warp_volume(&pu, classes->data, copy, max_mm);
    if (rc == RSY_OK && instances) {
        double unused;
        rc = warp_volume(&pu, instances->data, copy, &unused);
    }
    for (int q = 0; q < n_moved; q++) {
        push_forward(&pu, moved[q].center_mm);
        push_forward(&pu, moved[q].anchor_mm);
    }
    free(copy);
    push_clear(&pu);
    return rc;
}

rsy_status rsy__mass_effect_map(const rsy_prior *p, const rsy__prior_tissues *tis,
                                const rsy_lesion *l, const rsy_volume *classes, rsy__box *box,
                                double **src)
{
    *src = NULL;
    push pu;
    rsy_status rc = push_prepare(&pu, p, tis, l, classes);
    if (rc != RSY_OK)
        return rc;
    *box = pu.box;
    double *out = malloc(3 * (rsy__box_nvox(&pu.box) + 1) * sizeof *out);
    if (!out) {
        push_clear(&pu);
        return RSY_ENOMEM;
    }
    size_t q = 0;
    for (int64_t k = pu.box.lo[2]; k <= pu.box.hi[2]; k++)
        for (int64_t j = pu.box.lo[1]; j <= pu.box.hi[1]; j++)
            for (int64_t i = pu.box.lo[0]; i <= pu.box.hi[0]; i++, q++) {
                const int64_t v[3] = {i, j, k};
                const double ijk[3] = {(double)i, (double)j, (double)k};
                double x[3];
                int64_t s[3];
                rsy_geometry_voxel_to_world(pu.g, ijk, x);
                (void)source_of(&pu, x, v, s, out + 3 * q);
            }
    push_clear(&pu);
    *src = out;
    return RSY_OK;
}
