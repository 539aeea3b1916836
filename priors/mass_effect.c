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
 *     m(x) = min(m_rad(x), beta max(0, d(x) - h)),  beta = 3/4,
 * where s is the drawn strength, R(n) the radius in direction n of the lesion's ellipsoid
 * (its semi-axes and rotation; the lobulation and roughness, a few tens of percent of the
 * radius, do not shape the push, which stays smooth), range the prior's range_mm,
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
 *     det dS >= (1 - max(s, 3/4)) (1 - s)^2 > 0.
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
 * The voxels. Where m < half the smallest voxel size the source point rounds to the voxel
 * itself, so only voxels within r_eff = R_max + t* range of c can change, with
 * s R_max g(t*) = half the smallest spacing (m <= s R_max g((r - R_max)/range) since R(n) <=
 * R_max and g decreases): an exact cut, not an approximation. The push reads and writes the
 * cube around c of half-side max(r_eff, grow),
 *     grow = max over t in [0, t*] of R_max + t range + s R_max g(t)/beta + h,
 * which also holds every fixed voxel that can cap it (the cap at x matters only within
 * m_rad(x)/beta + h of x); the distance to fixed tissue (exact EDT, placement.c) is computed
 * over that cube, and not at all when it has no fixed voxel. rsy_lesions_rasterise()
 * recomputes each push from the lesion record (the same inputs give the same cube).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "priors_internal.h"

#define GROW_STEPS 600
#define G_TABLE 1024 /* the profile g is this table over [0, T], read linearly */

typedef struct push {
    double c[3];
    double s, range;
    double rmax;     /* longest semi-axis */
    double reach;    /* r_eff: no voxel beyond it changes */
    double h;        /* half the voxel diagonal */
    double ef[3][3]; /* world offset -> ellipsoid unit-sphere coordinates */
    float *fdist;    /* distance to fixed tissue over the region box, NULL: none near */
    rsy__box box;    /* the region box */
    const rsy_geometry *g;
    double inv[3][3]; /* world -> voxel index, linear part */
    double gtab[G_TABLE + 1];
} push;

/* g(t) = e^-t (1 - (t/T)^2)^2 sampled at G_TABLE + 1 points of [0, T] (push.gtab) and read
 * by linear interpolation: the profile used is that piecewise-linear function, still
 * decreasing, Lipschitz, 1 at 0 and 0 from T on (the samples decrease strictly to 0). */
static void g_table_fill(double *gt)
{
    for (int q = 0; q <= G_TABLE; q++) {
        const double t = RSY__MASS_CUTOFF * q / G_TABLE, u = t / RSY__MASS_CUTOFF;
        gt[q] = exp(-t) * (1.0 - u * u) * (1.0 - u * u);
    }
}

static inline double g_profile(const double *gt, double t)
{
    if (!(t < RSY__MASS_CUTOFF))
        return 0.0;
    const double f = t * (G_TABLE / RSY__MASS_CUTOFF);
    const int q = (int)f;
    const double w = f - q;
    return (1.0 - w) * gt[q] + w * gt[q + 1];
}

/* m before the cap at offset d = x - c (|d| = r). With u the unit-sphere coordinates of d,
 * the ellipsoid radius along d is R = r/|u|. */
static inline double m_radial(const push *pu, const double d[3], double r)
{
    if (!(r > 1e-12) || r >= pu->reach)
        return 0.0;
    double u2 = 0.0;
    for (int k = 0; k < 3; k++) {
        const double u = pu->ef[k][0] * d[0] + pu->ef[k][1] * d[1] + pu->ef[k][2] * d[2];
        u2 += u * u;
    }
    const double rho = sqrt(u2); /* r / R */
    if (rho <= 1.0)
        return pu->s * r;
    const double rs = r / rho;
    return pu->s * rs * g_profile(pu->gtab, (r - rs) / pu->range);
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

/* Everything about the push but the fixed-tissue distance. */
static rsy_status push_init(push *pu, const rsy_prior *p, const rsy__prior_tissues *tis,
                            const rsy_lesion *l, const rsy_geometry *g)
{
    memset(pu, 0, sizeof *pu);
    g_table_fill(pu->gtab);
    pu->g = g;
    memcpy(pu->c, l->mass_center_mm, sizeof pu->c);
    pu->s = fmin(0.95, fmax(0.0, l->mass_strength));
    pu->range = p->mass_effect.range_mm > 0.0 ? p->mass_effect.range_mm : 1.0;
    const double *sp = g->spacing_mm;
    pu->h = 0.5 * sqrt(sp[0] * sp[0] + sp[1] * sp[1] + sp[2] * sp[2]);
    for (int r = 0; r < 3; r++) /* inverse of (R diag(sp)) is diag(1/sp) R^T */
        for (int c = 0; c < 3; c++)
            pu->inv[r][c] = g->affine[c][r] / (sp[r] * sp[r]);

    /* the pushing surface is the lesion's ellipsoid (semi-axes and rotation) */
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++)
            pu->ef[k][j] = l->rotation[j][k] / l->semi_axes_mm[k];
    pu->rmax = fmax(l->semi_axes_mm[0], fmax(l->semi_axes_mm[1], l->semi_axes_mm[2]));

    /* reach: s R_max g(t*) = half the smallest spacing (bisection; g decreases) */
    const double half_vox = 0.5 * fmin(sp[0], fmin(sp[1], sp[2]));
    const double smax = pu->s * pu->rmax;
    double tstar = 0.0;
    if (smax > half_vox) {
        double lo = 0.0, hi = RSY__MASS_CUTOFF;
        for (int it = 0; it < 60; it++) {
            const double mid = 0.5 * (lo + hi);
            if (smax * g_profile(pu->gtab, mid) > half_vox)
                lo = mid;
            else
                hi = mid;
        }
        tstar = hi;
        pu->reach = pu->rmax + tstar * pu->range;
    } else {
        pu->reach = 0.0; /* nothing moves by half a voxel */
    }
    double half = pu->reach;
    int any_fixed = 0;
    for (int c = 0; c < RSY__MAX_TISSUE_CLASSES; c++)
        any_fixed |= tis->fixed[c];
    if (any_fixed && pu->reach > 0.0) {
        const double dt = tstar / GROW_STEPS;
        double grow = 0.0;
        for (int q = 0; q <= GROW_STEPS; q++) {
            const double t = q * dt;
            grow = fmax(grow, t * pu->range + smax * g_profile(pu->gtab, t) / RSY__MASS_BETA);
        }
        grow += pu->rmax + pu->h + pu->range * dt; /* f' <= range between the samples */
        half = fmax(half, grow);
    }
    if (pu->reach > 0.0)
        cube_box(g, pu->c, half, &pu->box);
    else
        pu->box.hi[0] = pu->box.lo[0] - 1;
    return RSY_OK;
}

/* The distance to fixed tissue over the box, from the box's current classes @p cur. */
static rsy_status push_fixed(push *pu, const rsy__prior_tissues *tis, const uint16_t *cur)
{
    const size_t n = rsy__box_nvox(&pu->box);
    int any = 0;
    for (size_t q = 0; q < n && !any; q++)
        any = cur[q] < RSY__MAX_TISSUE_CLASSES && tis->fixed[cur[q]];
    if (!any)
        return RSY_OK;
    pu->fdist = malloc(n * sizeof *pu->fdist);
    if (!pu->fdist)
        return RSY_ENOMEM;
    const int64_t dims[3] = {rsy__box_n(&pu->box, 0), rsy__box_n(&pu->box, 1),
                             rsy__box_n(&pu->box, 2)};
    const rsy__box whole = {{0, 0, 0}, {dims[0] - 1, dims[1] - 1, dims[2] - 1}};
    /* beyond s R_max / beta + h the cap exceeds every displacement: no need to know d there */
    const double dmax = pu->s * pu->rmax / RSY__MASS_BETA + pu->h;
    return rsy__edt_box(cur, dims, pu->g->spacing_mm, &whole, tis->fixed, dmax, pu->fdist);
}

/* m at box voxel q (offset d from c, |d| = r), the cap included. */
static inline double m_at(const push *pu, const double d[3], double r, size_t q)
{
    const double m = m_radial(pu, d, r);
    if (m <= 0.0 || !pu->fdist)
        return m;
    const double cap = RSY__MASS_BETA * ((double)pu->fdist[q] - pu->h);
    return cap < m ? (cap > 0.0 ? cap : 0.0) : m;
}

/* Box index of the voxel nearest to world point x, clamped to the box. */
static size_t nearest_in_box(const push *pu, const double x[3])
{
    double t[3];
    for (int a = 0; a < 3; a++)
        t[a] = x[a] - pu->g->affine[a][3];
    int64_t v[3];
    for (int a = 0; a < 3; a++) {
        v[a] = (int64_t)floor(pu->inv[a][0] * t[0] + pu->inv[a][1] * t[1] + pu->inv[a][2] * t[2] +
                              0.5);
        v[a] = v[a] < pu->box.lo[a] ? pu->box.lo[a] : (v[a] > pu->box.hi[a] ? pu->box.hi[a] : v[a]);
    }
    return (size_t)(((v[2] - pu->box.lo[2]) * rsy__box_n(&pu->box, 1) + (v[1] - pu->box.lo[1])) *
                        rsy__box_n(&pu->box, 0) +
                    (v[0] - pu->box.lo[0]));
}

/* Visit every box voxel that moves: fn(q, src_q, src_mm, m). */
typedef void (*visit_fn)(void *ctx, size_t q, size_t src, const double src_mm[3], double m);

static void push_visit(const push *pu, visit_fn fn, void *ctx)
{
    const rsy__box *b = &pu->box;
    const double(*a)[4] = (const double(*)[4])pu->g->affine;
    const double reach2 = pu->reach * pu->reach;
    size_t q = 0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++) {
            double d0[3];
            for (int r = 0; r < 3; r++)
                d0[r] = a[r][1] * (double)j + a[r][2] * (double)k + a[r][3] - pu->c[r];
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++, q++) {
                const double fi = (double)i;
                const double d[3] = {d0[0] + a[0][0] * fi, d0[1] + a[1][0] * fi,
                                     d0[2] + a[2][0] * fi};
                const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                if (r2 >= reach2)
                    continue;
                const double r = sqrt(r2);
                const double m = m_at(pu, d, r, q);
                if (!(m > 0.0))
                    continue;
                const double f = 1.0 - m / r;
                const double src_mm[3] = {pu->c[0] + f * d[0], pu->c[1] + f * d[1],
                                          pu->c[2] + f * d[2]};
                fn(ctx, q, nearest_in_box(pu, src_mm), src_mm, m);
            }
        }
}

/* The warp of the box contents: dst[k][q] = src[k][source of q] for the n arrays; returns the
 * largest displacement. The same arithmetic as push_visit, made incremental along rows. */
static double push_warp(const push *pu, const uint16_t *const *src, uint16_t *const *dst, int n,
                        int64_t *src_index)
{
    const rsy__box *b = &pu->box;
    const double(*a)[4] = (const double(*)[4])pu->g->affine;
    const double reach2 = pu->reach * pu->reach;
    const int64_t bx = rsy__box_n(b, 0), by = rsy__box_n(b, 1);
    double ci[3], step[3]; /* continuous box index of c; index step of one voxel along i */
    for (int r = 0; r < 3; r++) {
        const double t[3] = {pu->c[0] - a[0][3], pu->c[1] - a[1][3], pu->c[2] - a[2][3]};
        ci[r] =
            pu->inv[r][0] * t[0] + pu->inv[r][1] * t[1] + pu->inv[r][2] * t[2] - (double)b->lo[r];
        step[r] = pu->inv[r][0] * a[0][0] + pu->inv[r][1] * a[1][0] + pu->inv[r][2] * a[2][0];
    }
    const int64_t hi[3] = {bx - 1, by - 1, rsy__box_n(b, 2) - 1};
    double mmax = 0.0;
    size_t q = 0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++) {
            double d0[3], e0[3];
            for (int r = 0; r < 3; r++)
                d0[r] = a[r][1] * (double)j + a[r][2] * (double)k + a[r][3] - pu->c[r];
            for (int r = 0; r < 3; r++)
                e0[r] = pu->inv[r][0] * d0[0] + pu->inv[r][1] * d0[1] + pu->inv[r][2] * d0[2];
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++, q++) {
                const double fi = (double)i;
                const double d[3] = {d0[0] + a[0][0] * fi, d0[1] + a[1][0] * fi,
                                     d0[2] + a[2][0] * fi};
                const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                if (r2 >= reach2)
                    continue;
                const double r = sqrt(r2);
                const double m = m_at(pu, d, r, q);
                if (!(m > 0.0))
                    continue;
                mmax = m > mmax ? m : mmax;
                const double f = 1.0 - m / r;
                int64_t v[3];
                for (int c = 0; c < 3; c++) {
                    const double x = ci[c] + f * (e0[c] + step[c] * fi) + 0.5;
                    v[c] = x <= 0.0 ? 0 : (int64_t)x;
                    v[c] = v[c] > hi[c] ? hi[c] : v[c];
                }
                const size_t sq = (size_t)((v[2] * by + v[1]) * bx + v[0]);
                for (int w = 0; w < n; w++)
                    dst[w][q] = src[w][sq];
                if (src_index)
                    src_index[q] = (int64_t)sq;
            }
        }
    return mmax;
}

/* Forward map of world point y (the inverse of S along its ray), by bisection; the cap is
 * read at the voxel nearest to each trial point. */
static void push_forward(const push *pu, double y[3])
{
    const double d[3] = {y[0] - pu->c[0], y[1] - pu->c[1], y[2] - pu->c[2]};
    const double r = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    if (!(r > 1e-12) || r >= pu->reach || box_empty(&pu->box))
        return;
    const double n[3] = {d[0] / r, d[1] / r, d[2] / r};
    double lo = r, hi = r + pu->s * pu->rmax + 1e-9;
    for (int it = 0; it < 60; it++) {
        const double mid = 0.5 * (lo + hi);
        const double dm[3] = {mid * n[0], mid * n[1], mid * n[2]};
        const double x[3] = {pu->c[0] + dm[0], pu->c[1] + dm[1], pu->c[2] + dm[2]};
        if (mid - m_at(pu, dm, mid, nearest_in_box(pu, x)) < r)
            lo = mid;
        else
            hi = mid;
    }
    const double rf = 0.5 * (lo + hi);
    for (int a = 0; a < 3; a++)
        y[a] = pu->c[a] + rf * n[a];
}

/* ---------------------------------------------------------------------------------------- */
/* Box helpers and the internal API                                                           */
/* ---------------------------------------------------------------------------------------- */

void rsy__box_read(const rsy_volume *v, const rsy__box *b, uint16_t *out)
{
    const int64_t *d = v->geom.dims, bx = rsy__box_n(b, 0), by = rsy__box_n(b, 1);
    const uint16_t *data = v->data;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++)
            memcpy(out + ((k - b->lo[2]) * by + (j - b->lo[1])) * bx,
                   data + (k * d[1] + j) * d[0] + b->lo[0], (size_t)bx * sizeof *out);
}

void rsy__box_write(rsy_volume *v, const rsy__box *b, const uint16_t *in)
{
    const int64_t *d = v->geom.dims, bx = rsy__box_n(b, 0), by = rsy__box_n(b, 1);
    uint16_t *data = v->data;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++)
            memcpy(data + (k * d[1] + j) * d[0] + b->lo[0],
                   in + ((k - b->lo[2]) * by + (j - b->lo[1])) * bx, (size_t)bx * sizeof *in);
}

rsy_status rsy__mass_effect_region(const rsy_prior *p, const rsy__prior_tissues *tis,
                                   const rsy_lesion *l, const rsy_geometry *g, rsy__box *box)
{
    push pu;
    const rsy_status rc = push_init(&pu, p, tis, l, g);
    *box = pu.box;
    return rc;
}

rsy_status rsy__mass_effect_warp(const rsy_prior *p, const rsy__prior_tissues *tis,
                                 const rsy_lesion *l, const rsy_geometry *g, const rsy__box *box,
                                 uint16_t *classes_box, uint16_t *instances_box, rsy_lesion *moved,
                                 int n_moved, double *max_mm, int64_t *src_index)
{
    *max_mm = 0.0;
    push pu;
    rsy_status rc = push_init(&pu, p, tis, l, g);
    if (rc != RSY_OK || box_empty(&pu.box))
        return rc;
    if (memcmp(&pu.box, box, sizeof *box) != 0) {
        rsy_log_error("lesion %d: mass-effect box mismatch", l->instance_id);
        return RSY_EINVAL;
    }
    const size_t n = rsy__box_nvox(box);
    const int nw = instances_box ? 2 : 1;
    uint16_t *const dst[2] = {classes_box, instances_box};
    const uint16_t *srcs[2] = {NULL, NULL};
    uint16_t *copy = malloc(n * (size_t)nw * sizeof *copy);
    rc = copy ? push_fixed(&pu, tis, classes_box) : RSY_ENOMEM;
    if (rc == RSY_OK) {
        for (int k = 0; k < nw; k++) {
            memcpy(copy + (size_t)k * n, dst[k], n * sizeof *copy);
            srcs[k] = copy + (size_t)k * n;
        }
        if (src_index)
            for (size_t q = 0; q < n; q++)
                src_index[q] = (int64_t)q;
        *max_mm = push_warp(&pu, srcs, dst, nw, src_index);
        for (int q = 0; q < n_moved; q++) {
            push_forward(&pu, moved[q].center_mm);
            push_forward(&pu, moved[q].anchor_mm);
        }
    }
    free(copy);
    free(pu.fdist);
    return rc;
}

typedef struct map_ctx {
    double *src;
} map_ctx;

static void map_visit(void *vctx, size_t q, size_t src, const double src_mm[3], double m)
{
    (void)src;
    (void)m;
    memcpy(((map_ctx *)vctx)->src + 3 * q, src_mm, 3 * sizeof(double));
}

rsy_status rsy__mass_effect_map(const rsy_prior *p, const rsy__prior_tissues *tis,
                                const rsy_lesion *l, const rsy_volume *classes, rsy__box *box,
                                double **src)
{
    *src = NULL;
    push pu;
    rsy_status rc = push_init(&pu, p, tis, l, &classes->geom);
    if (rc != RSY_OK)
        return rc;
    *box = pu.box;
    const size_t n = box_empty(&pu.box) ? 0 : rsy__box_nvox(&pu.box);
    double *out = malloc(3 * (n + 1) * sizeof *out);
    uint16_t *cur = malloc((n + 1) * sizeof *cur);
    if (!out || !cur) {
        free(out);
        free(cur);
        return RSY_ENOMEM;
    }
    if (n > 0) {
        rsy__box_read(classes, &pu.box, cur);
        rc = push_fixed(&pu, tis, cur);
    }
    if (rc == RSY_OK && n > 0) {
        size_t q = 0;
        for (int64_t k = pu.box.lo[2]; k <= pu.box.hi[2]; k++)
            for (int64_t j = pu.box.lo[1]; j <= pu.box.hi[1]; j++)
                for (int64_t i = pu.box.lo[0]; i <= pu.box.hi[0]; i++, q++) {
                    const double ijk[3] = {(double)i, (double)j, (double)k};
                    rsy_geometry_voxel_to_world(pu.g, ijk, out + 3 * q);
                }
        map_ctx mc = {out};
        push_visit(&pu, map_visit, &mc);
    }
    free(cur);
    free(pu.fdist);
    if (rc != RSY_OK) {
        free(out);
        return rc;
    }
    *src = out;
    return RSY_OK;
}
