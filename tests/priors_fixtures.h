/*
 * priors_fixtures.h: fixtures shared by tests/test_priors_model.c and tests/test_priors_mass.c
 * (header-only, static inline): synthetic class maps in the class ids of the head, thorax and
 * abdomen families, priors built in C, sampling and rasterising helpers, brute-force
 * distances, 26-connected components, a Kolmogorov-Smirnov statistic.
 */
#ifndef RSY_PRIORS_FIXTURES_H
#define RSY_PRIORS_FIXTURES_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include "core_internal.h"
#include "priors_internal.h"
#include "rsy_config.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"

/* ---------------------------------------------------------------------------------------- */
/* Maps                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static inline rsy_volume *new_map(int64_t n, const double sp[3])
{
    const int64_t dims[3] = {n, n, n};
    rsy_geometry g;
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    rsy_volume *v = NULL;
    assert_int_equal(rsy_volume_create(&v, &g, RSY_DTYPE_UINT16), RSY_OK);
    return v;
}

static inline rsy_volume *zero_like(const rsy_volume *v)
{
    rsy_volume *z = NULL;
    assert_int_equal(rsy_volume_create(&z, &v->geom, RSY_DTYPE_UINT16), RSY_OK);
    return z;
}

static inline rsy_volume *clone_of(const rsy_volume *v)
{
    rsy_volume *c = NULL;
    assert_int_equal(rsy_volume_clone(&c, v), RSY_OK);
    return c;
}

static inline size_t idx(const rsy_volume *v, int64_t i, int64_t j, int64_t k)
{
    return (size_t)((k * v->geom.dims[1] + j) * v->geom.dims[0] + i);
}

static inline uint16_t at(const rsy_volume *v, int64_t i, int64_t j, int64_t k)
{
    return ((const uint16_t *)v->data)[idx(v, i, j, k)];
}

static inline void world_of(const rsy_volume *v, int64_t i, int64_t j, int64_t k, double x[3])
{
    const double ijk[3] = {(double)i, (double)j, (double)k};
    rsy_geometry_voxel_to_world(&v->geom, ijk, x);
}

static inline void nearest_voxel(const rsy_volume *v, const double x[3], int64_t q[3])
{
    double ijk[3];
    rsy_geometry_world_to_voxel(&v->geom, x, ijk);
    for (int a = 0; a < 3; a++)
        q[a] = (int64_t)floor(ijk[a] + 0.5);
}

/* Head-like map of n^3 voxels of size sp (radii as fractions of the half field of view h):
 * an ellipsoidal ventricle and a deep-grey sphere in white matter, cortex, CSF, skull, scalp. */
static inline rsy_volume *head_map(int64_t n, double sp)
{
    const double s3[3] = {sp, sp, sp};
    rsy_volume *v = new_map(n, s3);
    const double h = 0.5 * (double)n * sp;
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++) {
                double x[3];
                world_of(v, i, j, k, x);
                const double r = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
                const double ev =
                    ((x[0] - 0.15 * h) / (0.1 * h)) * ((x[0] - 0.15 * h) / (0.1 * h)) +
                    (x[1] / (0.25 * h)) * (x[1] / (0.25 * h)) +
                    (x[2] / (0.12 * h)) * (x[2] / (0.12 * h));
                const double rd =
                    sqrt((x[0] + 0.25 * h) * (x[0] + 0.25 * h) + x[1] * x[1] + x[2] * x[2]);
                uint16_t c;
                if (ev < 1.0)
                    c = RSY_HEAD_VENTRICLES;
                else if (rd < 0.1 * h)
                    c = RSY_HEAD_DEEP_GREY;
                else if (r < 0.6 * h)
                    c = RSY_HEAD_WHITE_MATTER;
                else if (r < 0.72 * h)
                    c = RSY_HEAD_GREY_MATTER;
                else if (r < 0.78 * h)
                    c = RSY_HEAD_CSF;
                else if (r < 0.88 * h)
                    c = RSY_HEAD_SKULL;
                else if (r < 0.94 * h)
                    c = RSY_HEAD_SCALP;
                else
                    c = RSY_HEAD_BACKGROUND;
                ((uint16_t *)v->data)[idx(v, i, j, k)] = c;
            }
    return v;
}

static inline rsy_volume *uniform_map(int64_t n, double sp, uint16_t c)
{
    const double s3[3] = {sp, sp, sp};
    rsy_volume *v = new_map(n, s3);
    for (size_t q = 0; q < rsy_geometry_nvox(&v->geom); q++)
        ((uint16_t *)v->data)[q] = c;
    return v;
}

static inline int cls(const char *family, const char *name)
{
    const int c = rsy_phantom_class_id(family, name);
    assert_true(c >= 0);
    return c;
}

/* Thorax-like: two lungs (ellipsoids) in muscle inside fat, a vertebra between them. */
static inline rsy_volume *thorax_map(int64_t n, double sp)
{
    const double s3[3] = {sp, sp, sp};
    rsy_volume *v = new_map(n, s3);
    const double h = 0.5 * (double)n * sp;
    const uint16_t lung = (uint16_t)cls("thorax", "lung"),
                   muscle = (uint16_t)cls("thorax", "muscle"), fat = (uint16_t)cls("thorax", "fat"),
                   bone = (uint16_t)cls("thorax", "cortical_bone");
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++) {
                double x[3];
                world_of(v, i, j, k, x);
                const double ax = fabs(x[0]) - 0.4 * h;
                const double el = (ax / (0.3 * h)) * (ax / (0.3 * h)) +
                                  (x[1] / (0.5 * h)) * (x[1] / (0.5 * h)) +
                                  (x[2] / (0.8 * h)) * (x[2] / (0.8 * h));
                const double body = (x[0] / (0.95 * h)) * (x[0] / (0.95 * h)) +
                                    (x[1] / (0.7 * h)) * (x[1] / (0.7 * h));
                uint16_t c = body < 1.0 ? muscle : fat;
                if (el < 1.0)
                    c = lung;
                else if (fabs(x[0]) < 0.08 * h && x[1] < -0.45 * h && body < 1.0)
                    c = bone;
                ((uint16_t *)v->data)[idx(v, i, j, k)] = c;
            }
    return v;
}

/* Abdomen-like: a liver ellipsoid in fat. */
static inline rsy_volume *abdomen_map(int64_t n, double sp)
{
    const double s3[3] = {sp, sp, sp};
    rsy_volume *v = new_map(n, s3);
    const double h = 0.5 * (double)n * sp;
    const uint16_t liver = (uint16_t)cls("abdomen", "liver"), fat = (uint16_t)cls("abdomen", "fat");
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++) {
                double x[3];
                world_of(v, i, j, k, x);
                const double el = (x[0] / (0.8 * h)) * (x[0] / (0.8 * h)) +
                                  (x[1] / (0.6 * h)) * (x[1] / (0.6 * h)) +
                                  (x[2] / (0.5 * h)) * (x[2] / (0.5 * h));
                ((uint16_t *)v->data)[idx(v, i, j, k)] = el < 1.0 ? liver : fat;
            }
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* Priors                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static inline rsy_dist d_fixed(double v)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_FIXED;
    d.value = d.min = d.max = v;
    return d;
}

static inline rsy_dist d_uniform(double a, double b)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_UNIFORM;
    d.min = a;
    d.max = b;
    return d;
}

static inline rsy_dist d_lognormal(double median, double gsd, double a, double b)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_LOGNORMAL;
    d.median = median;
    d.gsd = gsd;
    d.min = a;
    d.max = b;
    return d;
}

static inline rsy_dist d_categorical(int n, const double *values, const double *weights)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_CATEGORICAL;
    d.n_categories = n;
    memcpy(d.values, values, (size_t)n * sizeof *values);
    memcpy(d.weights, weights, (size_t)n * sizeof *weights);
    return d;
}

static inline void names(char (*dst)[RSY_NAME_MAX], int *n, const char *a, const char *b,
                         const char *c)
{
    const char *src[3] = {a, b, c};
    *n = 0;
    for (int i = 0; i < 3; i++)
        if (src[i])
            snprintf(dst[(*n)++], RSY_NAME_MAX, "%s", src[i]);
}

static inline void prior_init(rsy_prior *p, const char *name, rsy_dist diameter)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->count = d_fixed(1);
    p->diameter_mm = diameter;
    p->elongation = d_fixed(1);
    p->flatness = d_fixed(1);
    p->lobes = d_fixed(1);
    p->rule = RSY_PLACE_HOST_TISSUE;
    names(p->hosts, &p->n_hosts, "white_matter", NULL, NULL);
    names(p->allowed, &p->n_allowed, "white_matter", "grey_matter", "deep_grey");
    p->max_attempts = 3000;
}

static inline int add_comp(rsy_prior *p, const char *name, rsy_extent_kind kind, rsy_dist extent,
                           const char *parent)
{
    rsy_compartment *c = &p->compartments[p->n_compartments];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->extent_kind = kind;
    c->extent = extent;
    if (parent)
        snprintf(c->parent, sizeof c->parent, "%s", parent);
    return p->n_compartments++;
}

static inline rsy_recipe *recipe_of(const char *family, const rsy_prior *p)
{
    rsy_recipe *r = calloc(1, sizeof *r);
    assert_non_null(r);
    snprintf(r->phantom.family, sizeof r->phantom.family, "%s", family);
    r->n_lesion_types = 1;
    r->lesions[0].probability = 1.0;
    r->lesions[0].prior = *p;
    return r;
}

static inline rsy_rng *rng_new(uint64_t seed, uint64_t case_index)
{
    rsy_rng *g = NULL;
    assert_int_equal(rsy_rng_create_stream(&g, seed, case_index, RSY_STAGE_LESIONS), RSY_OK);
    return g;
}

static inline rsy_status sample(const rsy_recipe *r, const rsy_volume *map, uint64_t seed,
                                uint64_t c, rsy_lesion_set *set)
{
    rsy_rng *g = rng_new(seed, c);
    const rsy_status rc = rsy_lesions_sample(r, r->phantom.family, map, g, set);
    rsy_rng_destroy(g);
    return rc;
}

/* Rasterise @p set into clones of @p map; returns the class and instance maps. */
static inline void rasterise(const rsy_recipe *r, const rsy_lesion_set *set, const rsy_volume *map,
                             rsy_volume **cls_out, rsy_volume **inst_out)
{
    *cls_out = clone_of(map);
    *inst_out = zero_like(map);
    assert_int_equal(rsy_lesions_rasterise(r, r->phantom.family, set, *cls_out, *inst_out), RSY_OK);
}

static inline int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov statistic of @p x (sorted in place) against the CDF of @p d. */
static inline double ks_statistic(double *x, size_t n, const rsy_dist *d)
{
    qsort(x, n, sizeof *x, cmp_double);
    double dmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double f = rsy_dist_cdf(d, x[i]);
        dmax = fmax(dmax, fmax(fabs(f - (double)(i + 1) / n), fabs(f - (double)i / n)));
    }
    return dmax;
}

/* Brute-force distance (mm) from voxel @p v to the nearest voxel whose class is in @p set
 * (and is not @p skip), searched within @p max_mm (+ one voxel); HUGE_VAL if none. */
static inline double brute_distance(const rsy_volume *m, const int64_t v[3],
                                    const unsigned char *set, int skip, double max_mm)
{
    const double *sp = m->geom.spacing_mm;
    int64_t rad[3];
    for (int a = 0; a < 3; a++)
        rad[a] = (int64_t)ceil(max_mm / sp[a]) + 1;
    double best = HUGE_VAL;
    for (int64_t k = v[2] - rad[2]; k <= v[2] + rad[2]; k++)
        for (int64_t j = v[1] - rad[1]; j <= v[1] + rad[1]; j++)
            for (int64_t i = v[0] - rad[0]; i <= v[0] + rad[0]; i++) {
                if (i < 0 || j < 0 || k < 0 || i >= m->geom.dims[0] || j >= m->geom.dims[1] ||
                    k >= m->geom.dims[2])
                    continue;
                const uint16_t c = at(m, i, j, k);
                if (c >= 64 || !set[c] || (int)c == skip)
                    continue;
                const double dx = (double)(i - v[0]) * sp[0], dy = (double)(j - v[1]) * sp[1],
                             dz = (double)(k - v[2]) * sp[2];
                best = fmin(best, sqrt(dx * dx + dy * dy + dz * dz));
            }
    return best;
}

/* As brute_distance, to the nearest point of a feature voxel (its box, faces included): per
 * axis max(0, |offset| - half a voxel); the distance the placement rules measure. */
static inline double edge_distance(const rsy_volume *m, const int64_t v[3],
                                   const unsigned char *set, int skip, double max_mm)
{
    const double *sp = m->geom.spacing_mm;
    int64_t rad[3];
    for (int a = 0; a < 3; a++)
        rad[a] = (int64_t)ceil(max_mm / sp[a]) + 1;
    double best = HUGE_VAL;
    for (int64_t k = v[2] - rad[2]; k <= v[2] + rad[2]; k++)
        for (int64_t j = v[1] - rad[1]; j <= v[1] + rad[1]; j++)
            for (int64_t i = v[0] - rad[0]; i <= v[0] + rad[0]; i++) {
                if (i < 0 || j < 0 || k < 0 || i >= m->geom.dims[0] || j >= m->geom.dims[1] ||
                    k >= m->geom.dims[2])
                    continue;
                const uint16_t c = at(m, i, j, k);
                if (c >= 64 || !set[c] || (int)c == skip)
                    continue;
                const int64_t off[3] = {i - v[0], j - v[1], k - v[2]};
                double d2 = 0.0;
                for (int a = 0; a < 3; a++) {
                    const double t = fmax(0.0, (double)llabs(off[a]) - 0.5) * sp[a];
                    d2 += t * t;
                }
                best = fmin(best, sqrt(d2));
            }
    return best;
}

/* Distance (mm) from world point @p x to the nearest point of a voxel of @p m whose class is
 * in @p set, searched within @p reach voxels of x's nearest voxel; HUGE_VAL if none. */
static inline double point_edge_distance(const rsy_volume *m, const double x[3],
                                         const unsigned char *set, int reach)
{
    double ijk[3];
    rsy_geometry_world_to_voxel(&m->geom, x, ijk);
    const double *sp = m->geom.spacing_mm;
    int64_t v[3];
    for (int a = 0; a < 3; a++)
        v[a] = (int64_t)floor(ijk[a] + 0.5);
    double best = HUGE_VAL;
    for (int64_t k = v[2] - reach; k <= v[2] + reach; k++)
        for (int64_t j = v[1] - reach; j <= v[1] + reach; j++)
            for (int64_t i = v[0] - reach; i <= v[0] + reach; i++) {
                if (i < 0 || j < 0 || k < 0 || i >= m->geom.dims[0] || j >= m->geom.dims[1] ||
                    k >= m->geom.dims[2])
                    continue;
                const uint16_t c = at(m, i, j, k);
                if (c >= 64 || !set[c])
                    continue;
                const double q[3] = {(double)i, (double)j, (double)k};
                double d2 = 0.0;
                for (int a = 0; a < 3; a++) { /* voxel axes are the world axes (up to signs) */
                    const double t = fmax(0.0, fabs(ijk[a] - q[a]) - 0.5) * sp[a];
                    d2 += t * t;
                }
                best = fmin(best, sqrt(d2));
            }
    return best;
}

static inline void set_of(const char *family, const char (*nm)[RSY_NAME_MAX], int n,
                          unsigned char set[64])
{
    memset(set, 0, 64);
    for (int i = 0; i < n; i++)
        set[cls(family, nm[i])] = 1;
}

/* Number of 26-connected components of the voxels of class @p c with at least @p min_size
 * voxels. */
static inline int components_min(const rsy_volume *m, uint16_t c, size_t min_size)
{
    const int64_t *d = m->geom.dims;
    const size_t n = rsy_geometry_nvox(&m->geom);
    unsigned char *seen = calloc(n, 1);
    size_t *stack = malloc(n * sizeof *stack);
    assert_true(seen && stack);
    const uint16_t *v = m->data;
    int count = 0;
    for (size_t s = 0; s < n; s++) {
        if (v[s] != c || seen[s])
            continue;
        size_t top = 0, size = 0;
        stack[top++] = s;
        seen[s] = 1;
        while (top > 0) {
            const size_t q = stack[--top];
            size++;
            const int64_t i = (int64_t)(q % (size_t)d[0]),
                          j = (int64_t)((q / (size_t)d[0]) % (size_t)d[1]),
                          k = (int64_t)(q / (size_t)(d[0] * d[1]));
            for (int dz = -1; dz <= 1; dz++)
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        const int64_t a = i + dx, b = j + dy, e = k + dz;
                        if (a < 0 || b < 0 || e < 0 || a >= d[0] || b >= d[1] || e >= d[2])
                            continue;
                        const size_t r = idx(m, a, b, e);
                        if (v[r] == c && !seen[r]) {
                            seen[r] = 1;
                            stack[top++] = r;
                        }
                    }
        }
        count += size >= min_size;
    }
    free(stack);
    free(seen);
    return count;
}

static inline int components(const rsy_volume *m, uint16_t c)
{
    return components_min(m, c, 1);
}

static inline void lesions_equal(const rsy_lesion_set *a, const rsy_lesion_set *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++)
        assert_memory_equal(&a->items[i], &b->items[i], sizeof(rsy_lesion));
}

static const double COUNT_VALUES[4] = {2, 3, 4, 5}, COUNT_WEIGHTS[4] = {0.3, 0.3, 0.2, 0.2};

/* A rule prior: counts 2-5 (categorical), small lognormal diameters. */
static inline void prior_rule(rsy_prior *p, const char *name, rsy_placement_rule rule, double dmin,
                              double dmax)
{
    prior_init(p, name, d_lognormal(4.0, 1.3, 2.0, 8.0));
    p->count = d_categorical(4, COUNT_VALUES, COUNT_WEIGHTS);
    p->rule = rule;
    p->min_distance_mm = dmin;
    p->max_distance_mm = dmax;
    p->elongation = d_uniform(1.0, 2.0);
    p->lobulation_lmax = 3;
    p->lobulation_amplitude = 0.08;
    p->min_separation_mm = 1.0;
    add_comp(p, "lesion", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
}

#endif /* RSY_PRIORS_FIXTURES_H */
