/*
 * test_priors.c: cmocka tests of priors/ (lesion shape, sampling, placement, rasterisation).
 *
 * The class maps are synthetic (64^3 at most): concentric spheres of white matter, grey
 * matter, CSF, skull and scalp around the world origin, with a ventricle and a deep-grey
 * sphere inside, in the class ids of the head family (phantoms/rsy_phantoms.h). Recipes are
 * built by hand, plus the shipped glioblastoma recipe loaded through config/.
 *
 * Statistical tests use fixed seeds, so they are deterministic; their thresholds are the
 * stated critical values, chosen so a correct implementation passes for almost every seed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_sf_legendre.h>

#include "test_util.h"

#include "core_internal.h"
#include "priors_internal.h"
#include "rsy_config.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"

#define FAMILY "head"
#define N_TISSUE RSY_HEAD_N_CLASSES

/* ---------------------------------------------------------------------------------------- */
/* Synthetic class maps                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Head-like map of n^3 voxels: radii as fractions of the half field of view h. */
static rsy_volume *head_map(int64_t n, double spacing_mm)
{
    const int64_t dims[3] = {n, n, n};
    const double sp[3] = {spacing_mm, spacing_mm, spacing_mm};
    rsy_geometry g;
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    rsy_volume *v = NULL;
    assert_int_equal(rsy_volume_create(&v, &g, RSY_DTYPE_UINT16), RSY_OK);
    uint16_t *c = v->data;
    const double h = 0.5 * (double)n * spacing_mm;
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++) {
                const double ijk[3] = {(double)i, (double)j, (double)k};
                double x[3];
                rsy_geometry_voxel_to_world(&g, ijk, x);
                const double r = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
                const double rv = sqrt((x[0] - 0.2 * h) * (x[0] - 0.2 * h) + x[1] * x[1] +
                                       x[2] * x[2]);
                const double rd = sqrt((x[0] + 0.2 * h) * (x[0] + 0.2 * h) +
                                       (x[1] - 0.1 * h) * (x[1] - 0.1 * h) + x[2] * x[2]);
                uint16_t cl;
                if (rv < 0.1 * h)
                    cl = RSY_HEAD_VENTRICLES;
                else if (rd < 0.08 * h)
                    cl = RSY_HEAD_DEEP_GREY;
                else if (r < 0.6 * h)
                    cl = RSY_HEAD_WHITE_MATTER;
                else if (r < 0.72 * h)
                    cl = RSY_HEAD_GREY_MATTER;
                else if (r < 0.78 * h)
                    cl = RSY_HEAD_CSF;
                else if (r < 0.88 * h)
                    cl = RSY_HEAD_SKULL;
                else if (r < 0.94 * h)
                    cl = RSY_HEAD_SCALP;
                else
                    cl = RSY_HEAD_BACKGROUND;
                c[(k * n + j) * n + i] = cl;
            }
    return v;
}

static rsy_volume *uniform_map(int64_t n, double spacing_mm, uint16_t cl)
{
    const int64_t dims[3] = {n, n, n};
    const double sp[3] = {spacing_mm, spacing_mm, spacing_mm};
    rsy_geometry g;
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    rsy_volume *v = NULL;
    assert_int_equal(rsy_volume_create(&v, &g, RSY_DTYPE_UINT16), RSY_OK);
    uint16_t *c = v->data;
    for (size_t i = 0; i < rsy_geometry_nvox(&g); i++)
        c[i] = cl;
    return v;
}

static rsy_volume *zero_like(const rsy_volume *v)
{
    rsy_volume *z = NULL;
    assert_int_equal(rsy_volume_create(&z, &v->geom, RSY_DTYPE_UINT16), RSY_OK);
    return z;
}

/* ---------------------------------------------------------------------------------------- */
/* Hand-built priors and recipes                                                              */
/* ---------------------------------------------------------------------------------------- */

static rsy_dist d_fixed(double v)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_FIXED;
    d.value = d.min = d.max = v;
    return d;
}

static rsy_dist d_uniform(double a, double b)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_UNIFORM;
    d.min = a;
    d.max = b;
    return d;
}

static rsy_dist d_lognormal(double median, double gsd, double a, double b)
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

static void set_names(char (*dst)[RSY_NAME_MAX], int *n, const char *const *names)
{
    *n = 0;
    for (; names[*n]; (*n)++)
        snprintf(dst[*n], RSY_NAME_MAX, "%s", names[*n]);
}

static const char *const BRAIN_TISSUES[] = {"white_matter", "grey_matter", "deep_grey", NULL};
static const char *const WM_ONLY[] = {"white_matter", NULL};

/* A prior with one lesion per case, spherical, hosts WM, allowed WM/GM/deep grey. */
static void prior_basic(rsy_prior *p, const char *name, double diameter_mm)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->count = d_fixed(1);
    p->diameter_mm = d_fixed(diameter_mm);
    p->elongation = d_fixed(1);
    p->lobulation_lmax = 0;
    p->lobulation_amplitude = 0.0;
    p->rule = RSY_PLACE_HOST_TISSUE;
    set_names(p->hosts, &p->n_hosts, WM_ONLY);
    set_names(p->allowed, &p->n_allowed, BRAIN_TISSUES);
    p->min_separation_mm = 5.0;
    p->max_attempts = 2000;
}

static int add_fraction(rsy_prior *p, const char *name, rsy_dist extent)
{
    rsy_compartment *c = &p->compartments[p->n_compartments];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->extent_kind = RSY_EXTENT_RADIUS_FRACTION;
    c->extent = extent;
    return p->n_compartments++;
}

static int add_margin(rsy_prior *p, const char *name, rsy_dist extent,
                      const char *const *confined)
{
    rsy_compartment *c = &p->compartments[p->n_compartments];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->extent_kind = RSY_EXTENT_MARGIN_MM;
    c->extent = extent;
    if (confined)
        set_names(c->confined_to, &c->n_confined, confined);
    return p->n_compartments++;
}

/* Glioblastoma-like: core uniform[0.35, 0.65] of the radius, enhancing tumour to the
 * surface, oedema margin in mm confined to white matter (domain.md Card 4 layout). */
static void prior_gbm(rsy_prior *p, rsy_dist diameter_mm, rsy_dist margin_mm)
{
    prior_basic(p, "glioblastoma", 0.0);
    p->diameter_mm = diameter_mm;
    p->elongation = d_uniform(1.0, 1.5);
    p->lobulation_lmax = 4;
    p->lobulation_amplitude = 0.12;
    add_fraction(p, "necrotic_core", d_uniform(0.35, 0.65));
    add_fraction(p, "enhancing_tumour", d_fixed(1.0));
    add_margin(p, "oedema", margin_mm, WM_ONLY);
}

static rsy_recipe *recipe_new(void)
{
    rsy_recipe *r = calloc(1, sizeof *r);
    assert_non_null(r);
    snprintf(r->phantom.family, sizeof r->phantom.family, FAMILY);
    return r;
}

static rsy_prior *recipe_add(rsy_recipe *r, double probability)
{
    rsy_lesion_spec *s = &r->lesions[r->n_lesion_types++];
    s->probability = probability;
    return &s->prior;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                              */
/* ---------------------------------------------------------------------------------------- */

static rsy_rng *rng_new(uint64_t seed, uint64_t case_index)
{
    rsy_rng *g = NULL;
    assert_int_equal(rsy_rng_create_stream(&g, seed, case_index, RSY_STAGE_LESIONS), RSY_OK);
    return g;
}

static uint16_t class_at(const rsy_volume *v, const double xyz[3])
{
    double ijk[3];
    rsy_geometry_world_to_voxel(&v->geom, xyz, ijk);
    int64_t q[3];
    for (int k = 0; k < 3; k++) {
        q[k] = (int64_t)floor(ijk[k] + 0.5);
        if (q[k] < 0 || q[k] >= v->geom.dims[k])
            return UINT16_MAX;
    }
    const int64_t *d = v->geom.dims;
    return ((const uint16_t *)v->data)[(q[2] * d[1] + q[1]) * d[0] + q[0]];
}

static int in_list(uint16_t c, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (rsy_phantom_class_id(FAMILY, names[i]) == (int)c)
            return 1;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov statistic of @p x (sorted in place) against the CDF of @p d. */
static double ks_statistic(double *x, size_t n, const rsy_dist *d)
{
    qsort(x, n, sizeof *x, cmp_double);
    double dmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double f = rsy_dist_cdf(d, x[i]);
        dmax = fmax(dmax, fmax(fabs(f - (double)(i + 1) / n), fabs(f - (double)i / n)));
    }
    return dmax;
}

/* Points of a lesion's region (inside the surface, or with @p margin_mm > 0 also within the
 * margin shell), drawn uniformly in its bounding cube; returns how many (<= max). */
static int region_points(const rsy_lesion *l, double margin_mm, rsy_rng *g, int tries,
                         double (*pts)[3], int max)
{
    const double b = rsy__priors_surface_bound_mm(l) + margin_mm;
    int n = 0;
    for (int t = 0; t < tries && n < max; t++) {
        double x[3], dist;
        for (int k = 0; k < 3; k++)
            x[k] = l->center_mm[k] + rsy_rng_uniform_range(g, -b, b);
        const double rn = rsy_lesion_radial(l, x, &dist);
        if (rn < 1.0 || (margin_mm > 0.0 && dist <= margin_mm))
            memcpy(pts[n++], x, sizeof x);
    }
    return n;
}

static void lesions_assert_equal(const rsy_lesion_set *a, const rsy_lesion_set *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const rsy_lesion *x = &a->items[i], *y = &b->items[i];
        assert_int_equal(x->instance_id, y->instance_id);
        assert_int_equal(x->type_index, y->type_index);
        assert_int_equal(x->n_sh, y->n_sh);
        assert_int_equal(x->attempts, y->attempts);
        assert_memory_equal(x->center_mm, y->center_mm, sizeof x->center_mm);
        assert_memory_equal(x->semi_axes_mm, y->semi_axes_mm, sizeof x->semi_axes_mm);
        assert_memory_equal(x->rotation, y->rotation, sizeof x->rotation);
        assert_memory_equal(x->sh, y->sh, sizeof x->sh);
        assert_memory_equal(x->extent, y->extent, sizeof x->extent);
        assert_true(x->diameter_mm == y->diameter_mm);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Shape                                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* The closed-form harmonics are orthonormal (product Gauss-Legendre x trapezoid quadrature,
 * exact for these polynomials of degree <= 8) and equal GSL's real harmonics built from
 * gsl_sf_legendre_sphPlm up to the Condon-Shortley sign (-1)^m. */
static void test_sh_basis(void **state)
{
    (void)state;
    enum { NT = 12, NP = 24 };
    gsl_integration_glfixed_table *tab = gsl_integration_glfixed_table_alloc(NT);
    assert_non_null(tab);
    double gram[RSY_SH_MAX_COEFFS][RSY_SH_MAX_COEFFS] = {{0}};
    for (int a = 0; a < NT; a++) {
        double z, w;
        assert_int_equal(gsl_integration_glfixed_point(-1.0, 1.0, (size_t)a, &z, &w, tab), 0);
        for (int b = 0; b < NP; b++) {
            const double phi = 2.0 * M_PI * b / NP, st = sqrt(1.0 - z * z);
            const double n[3] = {st * cos(phi), st * sin(phi), z};
            double y[RSY_SH_MAX_COEFFS];
            rsy__priors_sh_basis(n, y);
            for (int p = 0; p < RSY_SH_MAX_COEFFS; p++)
                for (int q = 0; q < RSY_SH_MAX_COEFFS; q++)
                    gram[p][q] += w * (2.0 * M_PI / NP) * y[p] * y[q];
            for (int l = 0; l <= 4; l++)
                for (int m = -l; m <= l; m++) {
                    const int am = abs(m);
                    const double plm = gsl_sf_legendre_sphPlm(l, am, z);
                    double ref = m == 0   ? plm
                                 : m > 0 ? M_SQRT2 * plm * cos(am * phi)
                                         : M_SQRT2 * plm * sin(am * phi);
                    if (am % 2)
                        ref = -ref; /* remove the Condon-Shortley phase */
                    assert_true(fabs(y[l * l + l + m] - ref) < 1e-12);
                }
        }
    }
    gsl_integration_glfixed_table_free(tab);
    for (int p = 0; p < RSY_SH_MAX_COEFFS; p++)
        for (int q = 0; q < RSY_SH_MAX_COEFFS; q++)
            assert_true(fabs(gram[p][q] - (p == q ? 1.0 : 0.0)) < 1e-12);
}

/* Ellipsoid volume and axis ratio, rotations orthonormal and uniform, lobulation RMS and
 * spectral slope, and the radial-factor bound. */
static void test_shape_draw(void **state)
{
    (void)state;
    enum { N = 4000 };
    rsy_prior p;
    prior_basic(&p, "shape", 20.0);
    p.lobulation_lmax = 4;
    p.lobulation_amplitude = 0.12;
    rsy_rng *g = rng_new(11, 0, 0 + 0);
    double msq = 0.0, var_l[5] = {0}, axis_sq[3][3] = {{0}};
    for (int i = 0; i < N; i++) {
        rsy_lesion l;
        memset(&l, 0, sizeof l);
        const double e = 1.0 + 2.0 * rsy_rng_uniform(g);
        rsy__priors_shape_draw(&p, 20.0, e, g, &l);
        const double *s = l.semi_axes_mm;
        assert_true(fabs(s[0] * s[1] * s[2] - 1000.0) < 1e-9);
        assert_true(fabs(s[0] / fmin(s[1], s[2]) - e) < 1e-12);
        assert_true(s[0] >= s[1] && s[0] >= s[2]);
        double rr[3][3] = {{0}}; /* R^T R */
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                for (int k = 0; k < 3; k++)
                    rr[a][b] += l.rotation[k][a] * l.rotation[k][b];
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                assert_true(fabs(rr[a][b] - (a == b)) < 1e-12);
        const double(*R)[3] = (const double(*)[3])l.rotation;
        const double det = R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1]) -
                           R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0]) +
                           R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0]);
        assert_true(fabs(det - 1.0) < 1e-12);
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                axis_sq[a][b] += R[a][b] * R[a][b] / N;
        assert_int_equal(l.n_sh, 25);
        for (int k = 0; k < 4; k++)
            assert_true(l.sh[k] == 0.0);
        for (int deg = 2; deg <= 4; deg++)
            for (int m = -deg; m <= deg; m++) {
                const double a = l.sh[deg * deg + deg + m];
                msq += a * a / (4.0 * M_PI) / N;
                var_l[deg] += a * a / ((2.0 * deg + 1.0) * N);
            }
        if (i < 200) { /* the bound holds over many directions */
            const double bound = rsy__priors_sh_scale_bound(&l);
            for (int t = 0; t < 2000; t++) {
                const double z = rsy_rng_uniform_range(g, -1.0, 1.0);
                const double phi = rsy_rng_uniform_range(g, 0.0, 2.0 * M_PI);
                const double n[3] = {sqrt(1 - z * z) * cos(phi), sqrt(1 - z * z) * sin(phi), z};
                const double sc = rsy__priors_sh_scale(&l, n);
                assert_true(sc <= bound + 1e-12);
                assert_true(sc >= RSY__SH_SCALE_MIN);
            }
        }
    }
    rsy_rng_destroy(g);
    /* Expected mean square 0.12^2; the estimate's relative SD over 4000 draws is ~1.5 %:
     * tolerance 5 %. */
    assert_true(fabs(msq / (0.12 * 0.12) - 1.0) < 0.05);
    /* sigma_2^2 / sigma_3^2 = (3/2)^(2 beta) = 7.59 for beta = 2.5; relative SD ~1.5 %:
     * tolerance 6 %. */
    assert_true(fabs(var_l[2] / var_l[3] / pow(1.5, 2 * RSY__SH_BETA) - 1.0) < 0.06);
    /* Uniform rotations: E[R_ab^2] = 1/3; SD of the mean ~0.0047: tolerance 0.02. */
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            assert_true(fabs(axis_sq[a][b] - 1.0 / 3.0) < 0.02);
    /* Without lobulation nothing is drawn and the factor is exactly 1. */
    p.lobulation_lmax = 0;
    rsy_lesion l0;
    memset(&l0, 0, sizeof l0);
    g = rng_new(12, 0);
    rsy__priors_shape_draw(&p, 10.0, 1.0, g, &l0);
    rsy_rng_destroy(g);
    assert_int_equal(l0.n_sh, 0);
    assert_true(rsy__priors_sh_scale_bound(&l0) == 1.0);
}
