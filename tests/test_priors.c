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
                const double rv =
                    sqrt((x[0] - 0.2 * h) * (x[0] - 0.2 * h) + x[1] * x[1] + x[2] * x[2]);
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

/* Grey matter with a white-matter sphere of @p host_radius_mm at the origin: lesions centred
 * on the host fit entirely in the volume, so nothing is clipped. */
static rsy_volume *core_map(int64_t n, double spacing_mm, double host_radius_mm)
{
    rsy_volume *v = uniform_map(n, spacing_mm, RSY_HEAD_GREY_MATTER);
    uint16_t *c = v->data;
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++) {
                const double ijk[3] = {(double)i, (double)j, (double)k};
                double x[3];
                rsy_geometry_voxel_to_world(&v->geom, ijk, x);
                if (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] < host_radius_mm * host_radius_mm)
                    c[(k * n + j) * n + i] = RSY_HEAD_WHITE_MATTER;
            }
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

static int add_margin(rsy_prior *p, const char *name, rsy_dist extent, const char *const *confined)
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
    rsy__shape sh;
    assert_int_equal(rsy__shape_init(&sh, l), RSY_OK);
    const double b = sh.bound_mm + margin_mm;
    int n = 0;
    for (int t = 0; t < tries && n < max; t++) {
        double x[3], dist;
        for (int k = 0; k < 3; k++)
            x[k] = l->center_mm[k] + rsy_rng_uniform_range(g, -b, b);
        const double rn = rsy__shape_radial(&sh, x, &dist);
        if (rn < 1.0 || (margin_mm > 0.0 && dist <= margin_mm))
            memcpy(pts[n++], x, sizeof x);
    }
    rsy__shape_clear(&sh);
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
                    double ref = m == 0  ? plm
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
    rsy_rng *g = rng_new(11, 0);
    double msq = 0.0, var_l[5] = {0}, axis_sq[3][3] = {{0}};
    for (int i = 0; i < N; i++) {
        rsy_lesion l;
        memset(&l, 0, sizeof l);
        const double e = 1.0 + 2.0 * rsy_rng_uniform(g);
        rsy__priors_shape_draw(&p, 20.0, e, 1.0, g, &l);
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
    rsy__priors_shape_draw(&p, 10.0, 1.0, 1.0, g, &l0);
    rsy_rng_destroy(g);
    assert_int_equal(l0.n_sh, 0);
    assert_true(rsy__priors_sh_scale_bound(&l0) == 1.0);
}

/* Exact radial coordinates of spheres, rotated ellipsoids and a lobulated surface. */
static void test_radial(void **state)
{
    (void)state;
    rsy_lesion l;
    memset(&l, 0, sizeof l);
    const double c[3] = {1.0, 2.0, 3.0};
    memcpy(l.center_mm, c, sizeof c);
    for (int k = 0; k < 3; k++) {
        l.semi_axes_mm[k] = 10.0;
        l.rotation[k][k] = 1.0;
    }
    double dist;
    double x[3] = {c[0] + 4.0, c[1], c[2] + 3.0};
    assert_true(fabs(rsy_lesion_radial(&l, x, &dist) - 0.5) < 1e-12);
    assert_true(fabs(dist + 5.0) < 1e-12);
    x[0] = c[0];
    x[1] = c[1] + 12.0;
    x[2] = c[2];
    assert_true(fabs(rsy_lesion_radial(&l, x, &dist) - 1.2) < 1e-12);
    assert_true(fabs(dist - 2.0) < 1e-12);
    assert_true(rsy_lesion_radial(&l, c, &dist) == 0.0);
    assert_true(fabs(dist + 10.0) < 1e-12);
    assert_true(fabs(rsy_lesion_radial(&l, x, NULL) - 1.2) < 1e-12);

    /* Prolate 20 x 10 x 10 with its long axis along world y (column 0 = (0, 1, 0)). */
    const double rot[3][3] = {{0, -1, 0}, {1, 0, 0}, {0, 0, 1}};
    memcpy(l.rotation, rot, sizeof rot);
    l.semi_axes_mm[0] = 20.0;
    const double py[3] = {c[0], c[1] + 30.0, c[2]};
    assert_true(fabs(rsy_lesion_radial(&l, py, &dist) - 1.5) < 1e-12);
    assert_true(fabs(dist - 10.0) < 1e-12);
    const double px[3] = {c[0] + 15.0, c[1], c[2]};
    assert_true(fabs(rsy_lesion_radial(&l, px, &dist) - 1.5) < 1e-12);
    assert_true(fabs(dist - 5.0) < 1e-12);

    /* Lobulated: a_20 = 0.2 gives s = 1 + 0.2 Y_20(z axis) = 1 + 0.4 * 0.3153916 along z. */
    l.n_sh = 9;
    l.sh[6] = 0.2;
    const double s = 1.0 + 0.2 * 2.0 * 0.31539156525252005;
    const double pz[3] = {c[0], c[1], c[2] + 10.0 * s};
    assert_true(fabs(rsy_lesion_radial(&l, pz, &dist) - 1.0) < 1e-12);
    assert_true(fabs(dist) < 1e-12);
    /* The clamp: a large negative coefficient gives the floor 0.5 along z. */
    l.sh[6] = -5.0;
    const double pz2[3] = {c[0], c[1], c[2] + 5.0};
    assert_true(fabs(rsy_lesion_radial(&l, pz2, &dist) - 1.0) < 1e-12);
}

static void test_compartment_offsets(void **state)
{
    (void)state;
    rsy_recipe *r = recipe_new();
    rsy_prior *a = recipe_add(r, 1.0);
    prior_gbm(a, d_fixed(20), d_fixed(5));
    rsy_prior *b = recipe_add(r, 1.0);
    prior_basic(b, "small", 5.0);
    add_fraction(b, "core", d_fixed(0.5));
    add_fraction(b, "rim", d_fixed(1.0));
    assert_int_equal(rsy_lesion_compartment_offset(r, 0), 0);
    assert_int_equal(rsy_lesion_compartment_offset(r, 1), 3);
    assert_int_equal(rsy_lesion_compartment_offset(r, 2), 5);
    assert_int_equal(rsy_lesion_compartment_total(r), 5);
    assert_int_equal(rsy_lesion_compartment_total(NULL), 0);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Sampling statistics                                                                        */
/* ---------------------------------------------------------------------------------------- */

static const char *const WM_GM[] = {"white_matter", "grey_matter", NULL};

/* Type 0 metastasis-like (1-3 per case), type 1 small two-compartment lesion present in 30 %
 * of cases. */
static rsy_recipe *stats_recipe(void)
{
    rsy_recipe *r = recipe_new();
    rsy_prior *a = recipe_add(r, 1.0);
    prior_basic(a, "metastasis", 0.0);
    a->count.kind = RSY_DIST_CATEGORICAL;
    a->count.n_categories = 3;
    const double values[3] = {1, 2, 3}, weights[3] = {0.6, 0.3, 0.1};
    memcpy(a->count.values, values, sizeof values);
    memcpy(a->count.weights, weights, sizeof weights);
    a->diameter_mm = d_lognormal(8.0, 1.4, 4.0, 20.0);
    a->elongation = d_uniform(1.0, 1.5);
    a->lobulation_lmax = 3;
    a->lobulation_amplitude = 0.1;
    add_fraction(a, "necrotic_core", d_uniform(0.3, 0.6));
    add_fraction(a, "enhancing_tumour", d_fixed(1.0));
    add_margin(a, "oedema", d_uniform(2.0, 6.0), WM_ONLY);
    a->min_separation_mm = 4.0;
    rsy_prior *b = recipe_add(r, 0.3);
    prior_basic(b, "cavernoma", 6.0);
    set_names(b->hosts, &b->n_hosts, WM_GM);
    add_fraction(b, "core", d_fixed(0.6));
    add_fraction(b, "rim", d_fixed(1.0));
    b->min_separation_mm = 2.0;
    return r;
}

#define STATS_CASES 600
#define STATS_PTS 1000

static void test_sample_statistics(void **state)
{
    (void)state;
    rsy_recipe *r = stats_recipe();
    rsy_volume *map = head_map(64, 2.0);
    const rsy_prior *pa = &r->lesions[0].prior;
    double *diam = malloc(3 * STATS_CASES * sizeof *diam);
    double *margin = malloc(3 * STATS_CASES * sizeof *margin);
    double(*pts)[STATS_PTS][3] = malloc(4 * sizeof *pts);
    int npts[4];
    assert_non_null(diam);
    assert_non_null(margin);
    assert_non_null(pts);
    size_t n_a = 0;
    int hist[4] = {0}, present_b = 0;
    double min_allowed_fraction = 1.0, min_gap_ratio = HUGE_VAL;
    rsy_rng *mc = rng_new(77, 0);

    for (int c = 0; c < STATS_CASES; c++) {
        rsy_rng *g = rng_new(2024, (uint64_t)c);
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &set), RSY_OK);
        rsy_rng_destroy(g);
        assert_true(set.n >= 1 && set.n <= 4);
        int count_a = 0, count_b = 0;
        for (int i = 0; i < set.n; i++) {
            const rsy_lesion *l = &set.items[i];
            const rsy_prior *p = &r->lesions[l->type_index].prior;
            assert_int_equal(l->instance_id, i + 1);
            assert_true(l->attempts >= 1 && l->attempts <= p->max_attempts);
            if (l->type_index == 0) {
                count_a++;
                diam[n_a] = l->diameter_mm;
                margin[n_a] = l->extent[2];
                n_a++;
                assert_true(l->extent[0] >= 0.3 && l->extent[0] <= 0.6);
                assert_true(l->extent[1] == 1.0);
            } else {
                count_b++;
            }
            /* The centre lies on a host voxel. */
            const uint16_t host = class_at(map, l->center_mm);
            assert_true(in_list(host, l->type_index == 0 ? WM_ONLY : WM_GM));
            /* Allowed-tissue fraction of the lesion body by Monte Carlo (>= 400 points). The
             * sampler accepts at >= 90 % of 200 quasi-random points; the two estimates differ
             * by a few percent on a lesion at the limit: threshold 80 %. */
            const int nin = region_points(l, 0.0, mc, 20000, pts[i], 400);
            assert_true(nin == 400);
            int ok = 0;
            for (int k = 0; k < nin; k++)
                ok += in_list(class_at(map, pts[i][k]), BRAIN_TISSUES);
            min_allowed_fraction = fmin(min_allowed_fraction, (double)ok / nin);
            /* Points of the lesion body for the separation test (between surfaces: margin
             * shells of neighbours may touch). */
            npts[i] = region_points(l, 0.0, mc, 20 * STATS_PTS, pts[i], STATS_PTS);
            assert_true(npts[i] == STATS_PTS);
        }
        /* No two lesions closer than the separation. The sampler measures the gap along the
         * rays of each lesion, which over-estimates the normal distance on oblique surface
         * parts (sample.c), so the true gap is >= 0.5 of min_separation_mm here; the minimum
         * distance between points of the two bodies over-estimates the true gap, so the
         * check is one-sided and still exact. */
        for (int i = 0; i < set.n; i++)
            for (int j = i + 1; j < set.n; j++) {
                const rsy_prior *pi = &r->lesions[set.items[i].type_index].prior;
                const rsy_prior *pj = &r->lesions[set.items[j].type_index].prior;
                const double sep = fmax(pi->min_separation_mm, pj->min_separation_mm);
                double dmin2 = HUGE_VAL;
                for (int a = 0; a < npts[i]; a++)
                    for (int b = 0; b < npts[j]; b++) {
                        double d2 = 0.0;
                        for (int k = 0; k < 3; k++)
                            d2 += (pts[i][a][k] - pts[j][b][k]) * (pts[i][a][k] - pts[j][b][k]);
                        dmin2 = fmin(dmin2, d2);
                    }
                assert_true(sqrt(dmin2) >= 0.5 * sep);
                min_gap_ratio = fmin(min_gap_ratio, sqrt(dmin2) / sep);
            }
        assert_true(count_a >= 1 && count_a <= 3);
        assert_true(count_b <= 1);
        hist[count_a]++;
        present_b += count_b;
        rsy_lesion_set_clear(&set);
        assert_null(set.items);
    }
    rsy_rng_destroy(mc);
    assert_true(min_allowed_fraction >= 0.8);
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "min allowed fraction %.3f, min gap / separation %.3f\n",
                min_allowed_fraction, min_gap_ratio);

    /* Diameters and margins against the prior's CDFs: KS critical value at the 1 % level,
     * 1.63/sqrt(n) (asymptotic Kolmogorov distribution). */
    const double ks_crit = 1.63 / sqrt((double)n_a);
    assert_true(ks_statistic(diam, n_a, &pa->diameter_mm) < ks_crit);
    assert_true(ks_statistic(margin, n_a, &pa->compartments[2].extent) < ks_crit);

    /* Counts against the categorical weights: chi-square, 2 degrees of freedom, 1 % critical
     * value 9.21. */
    double chi2 = 0.0;
    for (int k = 1; k <= 3; k++) {
        const double expected = STATS_CASES * pa->count.weights[k - 1];
        chi2 += (hist[k] - expected) * (hist[k] - expected) / expected;
    }
    assert_true(chi2 < 9.21);
    /* Presence of type 1: Binomial(600, 0.3), mean 180, SD 11.2; tolerance 4 SD. */
    assert_true(abs(present_b - 180) <= 45);

    free(pts);
    free(margin);
    free(diam);
    rsy_volume_destroy(map);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Rasterisation                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Glioblastoma-like type (3 compartments, oedema confined to WM) plus a two-compartment
 * metastasis-like type, both always present. */
static rsy_recipe *gbm_recipe(void)
{
    rsy_recipe *r = recipe_new();
    prior_gbm(recipe_add(r, 1.0), d_uniform(16.0, 28.0), d_uniform(3.0, 8.0));
    rsy_prior *b = recipe_add(r, 1.0);
    prior_basic(b, "metastasis", 0.0);
    b->diameter_mm = d_lognormal(8.0, 1.3, 6.0, 14.0);
    b->lobulation_lmax = 2;
    b->lobulation_amplitude = 0.1;
    add_fraction(b, "core", d_fixed(0.5));
    add_fraction(b, "rim", d_fixed(1.0));
    return r;
}

/* Every check that relates the class map, the instance map and the lesion set. */
static void check_rasterised(const rsy_recipe *r, const rsy_lesion_set *set, const rsy_volume *orig,
                             const rsy_volume *cls, const rsy_volume *inst)
{
    const uint16_t *o = orig->data, *c = cls->data, *in = inst->data;
    const int64_t *d = orig->geom.dims;
    /* per lesion, per compartment: voxel count and range of the radial coordinate */
    enum { MAXL = 8 };
    assert_true(set->n <= MAXL);
    size_t count[MAXL][RSY_MAX_COMPARTMENTS] = {{0}};
    double lo[MAXL][RSY_MAX_COMPARTMENTS], hi[MAXL][RSY_MAX_COMPARTMENTS];
    for (int i = 0; i < MAXL; i++)
        for (int k = 0; k < RSY_MAX_COMPARTMENTS; k++) {
            lo[i][k] = HUGE_VAL;
            hi[i][k] = -HUGE_VAL;
        }
    for (int64_t z = 0; z < d[2]; z++)
        for (int64_t y = 0; y < d[1]; y++)
            for (int64_t x = 0; x < d[0]; x++) {
                const size_t v = (size_t)((z * d[1] + y) * d[0] + x);
                if (in[v] == 0) {
                    assert_int_equal(c[v], o[v]); /* untouched outside lesions */
                    continue;
                }
                assert_true(in[v] <= set->n);
                const rsy_lesion *l = &set->items[in[v] - 1];
                const int t = l->type_index;
                const rsy_prior *p = &r->lesions[t].prior;
                const int base = N_TISSUE + rsy_lesion_compartment_offset(r, t);
                assert_true(c[v] >= base && c[v] < base + p->n_compartments);
                const int k = c[v] - base;
                const rsy_compartment *cp = &p->compartments[k];
                /* Only tissues the compartment may replace were replaced. */
                if (cp->n_confined > 0)
                    assert_int_equal(o[v], RSY_HEAD_WHITE_MATTER);
                else
                    assert_true(in_list(o[v], BRAIN_TISSUES));
                const double ijk[3] = {(double)x, (double)y, (double)z};
                double xyz[3], dist;
                rsy_geometry_voxel_to_world(&orig->geom, ijk, xyz);
                const double rn = rsy_lesion_radial(l, xyz, &dist);
                if (cp->extent_kind == RSY_EXTENT_RADIUS_FRACTION)
                    assert_true(rn < l->extent[k]);
                else
                    assert_true(rn >= 1.0 && dist > 0.0 && dist <= l->extent[k]);
                count[in[v] - 1][k]++;
                lo[in[v] - 1][k] = fmin(lo[in[v] - 1][k], rn);
                hi[in[v] - 1][k] = fmax(hi[in[v] - 1][k], rn);
            }
    for (int i = 0; i < set->n; i++) {
        const rsy_prior *p = &r->lesions[set->items[i].type_index].prior;
        size_t total = 0;
        for (int k = 0; k < p->n_compartments; k++)
            total += count[i][k];
        assert_true(total > 0);
        /* Compartments nest: along every ray from the centre r/R grows monotonically, so
         * nesting core -> enhancing/rim -> oedema means disjoint, ordered ranges of r/R. */
        for (int a = 0; a + 1 < p->n_compartments; a++) {
            for (int b = a + 1; b < p->n_compartments; b++) {
                if (!count[i][a] || !count[i][b])
                    continue;
                const rsy_compartment *ca = &p->compartments[a], *cb = &p->compartments[b];
                const int a_inner = ca->extent_kind == RSY_EXTENT_RADIUS_FRACTION &&
                                    (cb->extent_kind == RSY_EXTENT_MARGIN_MM ||
                                     set->items[i].extent[a] < set->items[i].extent[b]);
                if (a_inner)
                    assert_true(hi[i][a] < lo[i][b]);
                else
                    assert_true(hi[i][b] < lo[i][a]);
            }
        }
    }
}

static void test_rasterise(void **state)
{
    (void)state;
    rsy_recipe *r = gbm_recipe();
    rsy_volume *map = head_map(64, 2.5);
    size_t core_voxels = 0, oedema_voxels = 0;
    for (int c = 0; c < 30; c++) {
        rsy_rng *g = rng_new(31337, (uint64_t)c);
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &set), RSY_OK);
        rsy_rng_destroy(g);
        assert_int_equal(set.n, 2);
        rsy_volume *cls = NULL, *inst = zero_like(map);
        assert_int_equal(rsy_volume_clone(&cls, map), RSY_OK);
        assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, inst), RSY_OK);
        check_rasterised(r, &set, map, cls, inst);
        const uint16_t *cv = cls->data;
        for (size_t v = 0; v < rsy_geometry_nvox(&map->geom); v++) {
            core_voxels += cv[v] == N_TISSUE + 0;
            oedema_voxels += cv[v] == N_TISSUE + 2;
        }
        rsy_volume_destroy(inst);
        rsy_volume_destroy(cls);
        rsy_lesion_set_clear(&set);
    }
    assert_true(core_voxels > 0);
    assert_true(oedema_voxels > 0);
    rsy_volume_destroy(map);
    free(r);
}

static rsy_lesion sphere_lesion(int id, const double c[3], double radius_mm)
{
    rsy_lesion l;
    memset(&l, 0, sizeof l);
    l.instance_id = id;
    memcpy(l.center_mm, c, sizeof l.center_mm);
    l.diameter_mm = 2.0 * radius_mm;
    for (int k = 0; k < 3; k++) {
        l.semi_axes_mm[k] = radius_mm;
        l.rotation[k][k] = 1.0;
    }
    l.extent[0] = 1.0;
    return l;
}

static size_t count_value(const rsy_volume *v, uint16_t value)
{
    const uint16_t *p = v->data;
    size_t n = 0;
    for (size_t i = 0; i < rsy_geometry_nvox(&v->geom); i++)
        n += p[i] == value;
    return n;
}

/* Where two lesions overlap the lower instance id keeps its voxels. */
static void test_overlap_lower_id_wins(void **state)
{
    (void)state;
    rsy_recipe *r = recipe_new();
    rsy_prior *p = recipe_add(r, 1.0);
    prior_basic(p, "blob", 16.0);
    add_fraction(p, "lesion", d_fixed(1.0));
    rsy_volume *map = uniform_map(48, 1.0, RSY_HEAD_WHITE_MATTER);
    const double c1[3] = {-5.0, 0.0, 0.0}, c2[3] = {5.0, 0.0, 0.0};
    rsy_lesion both[2] = {sphere_lesion(1, c1, 8.0), sphere_lesion(2, c2, 8.0)};
    rsy_lesion second = sphere_lesion(1, c2, 8.0);
    rsy_lesion_set s_both = {2, both}, s_first = {1, both}, s_second = {1, &second};

    rsy_volume *cls[3], *inst[3];
    const rsy_lesion_set *sets[3] = {&s_both, &s_first, &s_second};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(rsy_volume_clone(&cls[k], map), RSY_OK);
        inst[k] = zero_like(map);
        assert_int_equal(rsy_lesions_rasterise(r, FAMILY, sets[k], cls[k], inst[k]), RSY_OK);
    }
    const uint16_t *ib = inst[0]->data, *i1 = inst[1]->data, *i2 = inst[2]->data;
    size_t overlap = 0;
    for (size_t v = 0; v < rsy_geometry_nvox(&map->geom); v++) {
        assert_int_equal(ib[v] == 1, i1[v] == 1);      /* lesion 1 is drawn in full */
        assert_int_equal(ib[v] == 2, i2[v] && !i1[v]); /* lesion 2 gets the rest */
        overlap += i1[v] && i2[v];
    }
    assert_true(overlap > 0);
    assert_int_equal(count_value(inst[0], 2) + overlap, count_value(inst[2], 1));
    for (int k = 0; k < 3; k++) {
        rsy_volume_destroy(cls[k]);
        rsy_volume_destroy(inst[k]);
    }
    rsy_volume_destroy(map);
    free(r);
}

/* A lesion's mass beats a neighbour's oedema: lesion 1 (lower id) has a 10 mm oedema margin
 * reaching into lesion 2's mass; lesion 2 must still be drawn whole (its mass voxels equal
 * those it gets alone), and lesion 1's oedema keeps only the voxels nobody's mass claims. */
static void test_mass_beats_neighbour_margin(void **state)
{
    (void)state;
    rsy_recipe *r = recipe_new();
    rsy_prior *p = recipe_add(r, 1.0);
    prior_basic(p, "blob", 16.0);
    add_fraction(p, "lesion", d_fixed(1.0));
    add_margin(p, "oedema", d_fixed(10.0), NULL);
    rsy_volume *map = uniform_map(48, 1.0, RSY_HEAD_WHITE_MATTER);
    const double c1[3] = {-7.0, 0.0, 0.0}, c2[3] = {8.0, 0.0, 0.0};
    rsy_lesion both[2] = {sphere_lesion(1, c1, 6.0), sphere_lesion(2, c2, 6.0)};
    both[0].extent[1] = both[1].extent[1] = 10.0;
    rsy_lesion alone = sphere_lesion(1, c2, 6.0);
    alone.extent[1] = 10.0;
    rsy_lesion_set s_both = {2, both}, s_alone = {1, &alone};

    rsy_volume *cb = NULL, *ca = NULL, *ib = zero_like(map), *ia = zero_like(map);
    assert_int_equal(rsy_volume_clone(&cb, map), RSY_OK);
    assert_int_equal(rsy_volume_clone(&ca, map), RSY_OK);
    assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &s_both, cb, ib), RSY_OK);
    assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &s_alone, ca, ia), RSY_OK);
    const uint16_t *clb = cb->data, *cla = ca->data, *ivb = ib->data;
    const uint16_t mass = N_TISSUE + 0, oedema = N_TISSUE + 1;
    size_t mass_alone = 0, mass_2 = 0, oedema_1 = 0;
    for (size_t v = 0; v < rsy_geometry_nvox(&map->geom); v++) {
        mass_alone += cla[v] == mass;
        mass_2 += clb[v] == mass && ivb[v] == 2;
        oedema_1 += clb[v] == oedema && ivb[v] == 1;
        if (cla[v] == mass) /* every voxel of lesion 2's mass alone is its mass together */
            assert_true(clb[v] == mass && ivb[v] == 2);
    }
    assert_true(mass_alone > 0);
    assert_int_equal(mass_2, mass_alone);
    assert_true(oedema_1 > 0);
    rsy_volume_destroy(cb);
    rsy_volume_destroy(ca);
    rsy_volume_destroy(ib);
    rsy_volume_destroy(ia);
    rsy_volume_destroy(map);
    free(r);
}

/* A sphere (no lobulation, elongation 1) of radius 10 voxels rasterises to 4/3 pi R^3 voxels
 * within 3 % (the lattice-point error of a sphere of radius 10 is about 1 %). */
static void test_sphere_volume(void **state)
{
    (void)state;
    rsy_recipe *r = recipe_new();
    rsy_prior *p = recipe_add(r, 1.0);
    prior_basic(p, "sphere", 20.0);
    add_fraction(p, "lesion", d_fixed(1.0));
    rsy_volume *map = core_map(48, 1.0, 5.0); /* lesion within 15 mm of the origin */
    const double expected = 4.0 / 3.0 * M_PI * 1000.0;
    for (int seed = 0; seed < 5; seed++) {
        rsy_rng *g = rng_new(500 + (uint64_t)seed, 0);
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &set), RSY_OK);
        rsy_rng_destroy(g);
        assert_int_equal(set.n, 1);
        assert_int_equal(set.items[0].n_sh, 0);
        rsy_volume *cls = NULL, *inst = zero_like(map);
        assert_int_equal(rsy_volume_clone(&cls, map), RSY_OK);
        assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, inst), RSY_OK);
        const double n = (double)count_value(inst, 1);
        assert_true(fabs(n / expected - 1.0) < 0.03);
        assert_int_equal((size_t)n, count_value(cls, N_TISSUE));
        rsy_volume_destroy(inst);
        rsy_volume_destroy(cls);
        rsy_lesion_set_clear(&set);
    }
    rsy_volume_destroy(map);
    free(r);
}

/* Elongation 2: the principal axes of the rasterised voxels have SDs in the ratio a/c = 2
 * (uniform ellipsoid: variance a^2/5 per axis) within 10 %, the two short axes are equal
 * within 10 %, the long axis is the lesion's first axis, and the volume is the sphere's of
 * the drawn diameter within 3 %. */
static void test_elongation(void **state)
{
    (void)state;
    rsy_recipe *r = recipe_new();
    rsy_prior *p = recipe_add(r, 1.0);
    prior_basic(p, "prolate", 24.0);
    p->elongation = d_fixed(2.0);
    add_fraction(p, "lesion", d_fixed(1.0));
    rsy_volume *map = core_map(64, 1.0, 5.0); /* lesion within 24 mm of the origin */
    gsl_matrix *cov = gsl_matrix_alloc(3, 3), *evec = gsl_matrix_alloc(3, 3);
    gsl_vector *eval = gsl_vector_alloc(3);
    gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(3);
    assert_true(cov && evec && eval && ws);
    for (int seed = 0; seed < 3; seed++) {
        rsy_rng *g = rng_new(900 + (uint64_t)seed, 0);
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &set), RSY_OK);
        rsy_rng_destroy(g);
        rsy_volume *cls = NULL, *inst = zero_like(map);
        assert_int_equal(rsy_volume_clone(&cls, map), RSY_OK);
        assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, inst), RSY_OK);
        double s1[3] = {0}, s2[3][3] = {{0}};
        size_t n = 0;
        const uint16_t *in = inst->data;
        const int64_t *d = map->geom.dims;
        for (int64_t z = 0; z < d[2]; z++)
            for (int64_t y = 0; y < d[1]; y++)
                for (int64_t x = 0; x < d[0]; x++) {
                    if (!in[(z * d[1] + y) * d[0] + x])
                        continue;
                    const double ijk[3] = {(double)x, (double)y, (double)z};
                    double w[3];
                    rsy_geometry_voxel_to_world(&map->geom, ijk, w);
                    for (int a = 0; a < 3; a++) {
                        s1[a] += w[a];
                        for (int b = 0; b < 3; b++)
                            s2[a][b] += w[a] * w[b];
                    }
                    n++;
                }
        assert_true(fabs(n / (4.0 / 3.0 * M_PI * 1728.0) - 1.0) < 0.03);
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                gsl_matrix_set(cov, (size_t)a, (size_t)b, s2[a][b] / n - (s1[a] / n) * (s1[b] / n));
        assert_int_equal(gsl_eigen_symmv(cov, eval, evec, ws), 0);
        assert_int_equal(gsl_eigen_symmv_sort(eval, evec, GSL_EIGEN_SORT_VAL_DESC), 0);
        const double l0 = gsl_vector_get(eval, 0), l1 = gsl_vector_get(eval, 1),
                     l2 = gsl_vector_get(eval, 2);
        assert_true(fabs(sqrt(l0 / l2) / 2.0 - 1.0) < 0.10);
        assert_true(fabs(sqrt(l1 / l2) - 1.0) < 0.10);
        double dot = 0.0;
        for (int a = 0; a < 3; a++)
            dot += gsl_matrix_get(evec, (size_t)a, 0) * set.items[0].rotation[a][0];
        assert_true(fabs(dot) > 0.99);
        rsy_volume_destroy(inst);
        rsy_volume_destroy(cls);
        rsy_lesion_set_clear(&set);
    }
    gsl_eigen_symmv_free(ws);
    gsl_vector_free(eval);
    gsl_matrix_free(evec);
    gsl_matrix_free(cov);
    rsy_volume_destroy(map);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Placement failures, determinism, argument checks                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_placement_failure(void **state)
{
    (void)state;
    rsy_recipe *r = recipe_new();
    rsy_prior *p = recipe_add(r, 1.0);
    prior_basic(p, "glioblastoma", 20.0);
    add_fraction(p, "tumour", d_fixed(1.0));
    rsy_lesion_set set = {7, NULL};

    /* No host tissue at all. */
    rsy_volume *gm = uniform_map(32, 2.0, RSY_HEAD_GREY_MATTER);
    rsy_rng *g = rng_new(1, 0);
    tu_log_capture();
    assert_int_equal(rsy_lesions_sample(r, FAMILY, gm, g, &set), RSY_EPLACEMENT);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "glioblastoma"));
    assert_non_null(strstr(tu_last_error(), "host_tissue"));
    assert_non_null(strstr(tu_last_error(), "white_matter"));
    assert_int_equal(set.n, 0);
    assert_null(set.items);

    /* One white-matter voxel in CSF: the centre is found but the body never fits. */
    rsy_volume *csf = uniform_map(32, 2.0, RSY_HEAD_CSF);
    ((uint16_t *)csf->data)[(16 * 32 + 16) * 32 + 16] = RSY_HEAD_WHITE_MATTER;
    p->max_attempts = 50;
    tu_log_capture();
    assert_int_equal(rsy_lesions_sample(r, FAMILY, csf, g, &set), RSY_EPLACEMENT);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "glioblastoma"));
    assert_non_null(strstr(tu_last_error(), "50 attempts"));
    assert_null(set.items);
    /* A lesion smaller than the voxel fits on it. */
    p->diameter_mm = d_fixed(1.0);
    assert_int_equal(rsy_lesions_sample(r, FAMILY, csf, g, &set), RSY_OK);
    assert_int_equal(set.n, 1);
    rsy_lesion_set_clear(&set);
    rsy_rng_destroy(g);
    rsy_volume_destroy(csf);
    rsy_volume_destroy(gm);
    free(r);
}

static void test_determinism(void **state)
{
    (void)state;
    rsy_recipe *r = gbm_recipe();
    rsy_volume *map = head_map(64, 2.5);
    rsy_lesion_set s[3] = {{0, NULL}, {0, NULL}, {0, NULL}};
    rsy_volume *cls[2], *inst[2];
    for (int k = 0; k < 3; k++) {
        rsy_rng *g = rng_new(4242, k < 2 ? 3 : 4);
        assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &s[k]), RSY_OK);
        rsy_rng_destroy(g);
    }
    lesions_assert_equal(&s[0], &s[1]);
    assert_true(memcmp(s[0].items[0].center_mm, s[2].items[0].center_mm,
                       sizeof s[0].items[0].center_mm) != 0);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(rsy_volume_clone(&cls[k], map), RSY_OK);
        inst[k] = zero_like(map);
        assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &s[k], cls[k], inst[k]), RSY_OK);
    }
    assert_memory_equal(cls[0]->data, cls[1]->data, rsy_volume_nbytes(map));
    assert_memory_equal(inst[0]->data, inst[1]->data, rsy_volume_nbytes(map));
    for (int k = 0; k < 2; k++) {
        rsy_volume_destroy(cls[k]);
        rsy_volume_destroy(inst[k]);
    }
    for (int k = 0; k < 3; k++)
        rsy_lesion_set_clear(&s[k]);
    rsy_volume_destroy(map);
    free(r);
}

static int warnings_seen;
static char warning_text[1024];

static void warning_handler(rsy_log_level level, const char *func, const char *msg, void *user)
{
    (void)func;
    (void)user;
    if (level == RSY_LOG_WARNING) {
        warnings_seen++;
        snprintf(warning_text, sizeof warning_text, "%s", msg);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    rsy_recipe *r = recipe_new();
    rsy_prior *p = recipe_add(r, 1.0);
    prior_basic(p, "blob", 8.0);
    add_fraction(p, "lesion", d_fixed(1.0));
    rsy_volume *map = uniform_map(24, 2.0, RSY_HEAD_WHITE_MATTER);
    rsy_rng *g = rng_new(5, 0);
    rsy_lesion_set set = {0, NULL};
    tu_log_capture();

    assert_int_equal(rsy_lesions_sample(NULL, FAMILY, map, g, &set), RSY_EINVAL);
    assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, NULL), RSY_EINVAL);
    assert_int_equal(rsy_lesions_sample(r, FAMILY, NULL, g, &set), RSY_EINVAL);
    assert_int_equal(rsy_lesions_sample(r, "thorax", map, g, &set), RSY_EINVAL);
    map->dtype = RSY_DTYPE_INT16;
    assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &set), RSY_EINVAL);
    map->dtype = RSY_DTYPE_UINT16;
    snprintf(p->hosts[0], RSY_NAME_MAX, "white_mater");
    assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &set), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "white_mater"));
    assert_non_null(strstr(tu_last_error(), "blob"));
    snprintf(p->hosts[0], RSY_NAME_MAX, "white_matter");
    assert_null(set.items);

    /* Rasterisation: geometry and dtype mismatches, malformed sets. */
    assert_int_equal(rsy_lesions_sample(r, FAMILY, map, g, &set), RSY_OK);
    rsy_volume *cls = NULL, *inst = zero_like(map), *small = uniform_map(16, 2.0, 0);
    assert_int_equal(rsy_volume_clone(&cls, map), RSY_OK);
    assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, small), RSY_EINVAL);
    inst->dtype = RSY_DTYPE_UINT8;
    assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, inst), RSY_EINVAL);
    inst->dtype = RSY_DTYPE_UINT16;
    assert_int_equal(rsy_lesions_rasterise(r, "thorax", &set, cls, inst), RSY_EINVAL);
    set.items[0].type_index = 3;
    assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, inst), RSY_EINVAL);
    set.items[0].type_index = 0;
    set.items[0].instance_id = 0;
    assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, inst), RSY_EINVAL);
    set.items[0].instance_id = 1;
    assert_memory_equal(cls->data, map->data, rsy_volume_nbytes(map)); /* nothing written */

    /* A lesion outside the volume rasterises to nothing: a warning, not an error. */
    set.items[0].center_mm[0] = 500.0;
    warnings_seen = 0;
    rsy_log_set_handler(warning_handler, NULL);
    assert_int_equal(rsy_lesions_rasterise(r, FAMILY, &set, cls, inst), RSY_OK);
    assert_int_equal(warnings_seen, 1);
    assert_non_null(strstr(warning_text, "lesion 1"));
    assert_int_equal(count_value(inst, 1), 0);
    tu_log_capture();

    rsy_lesion_set_clear(&set);
    rsy_lesion_set_clear(NULL);
    rsy_volume_destroy(small);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(cls);
    rsy_rng_destroy(g);
    rsy_volume_destroy(map);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* The shipped glioblastoma recipe                                                            */
/* ---------------------------------------------------------------------------------------- */

#define GBM_RECIPE "configs/recipes/brain-glioblastoma-mri.json"

static void test_recipe_file(void **state)
{
    (void)state;
    rsy_recipe *r = NULL;
    assert_int_equal(rsy_recipe_load(&r, GBM_RECIPE, NULL), RSY_OK);
    assert_true(r->n_lesion_types >= 1);
    /* 64^3 at 3 mm: a 192 mm field of view with a brain of radius 69 mm (adult-like). */
    rsy_volume *map = head_map(64, 3.0);
    const int n_tissue = rsy_phantom_n_classes(r->phantom.family);
    assert_int_equal(n_tissue, N_TISSUE);
    for (int c = 0; c < 10; c++) {
        rsy_rng *g = NULL;
        assert_int_equal(rsy_rng_create_stream(&g, r->seed, (uint64_t)c, RSY_STAGE_LESIONS),
                         RSY_OK);
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(rsy_lesions_sample(r, r->phantom.family, map, g, &set), RSY_OK);
        rsy_rng_destroy(g);
        rsy_volume *cls = NULL, *inst = zero_like(map);
        assert_int_equal(rsy_volume_clone(&cls, map), RSY_OK);
        assert_int_equal(rsy_lesions_rasterise(r, r->phantom.family, &set, cls, inst), RSY_OK);
        for (int i = 0; i < set.n; i++) {
            const rsy_lesion *l = &set.items[i];
            const rsy_prior *p = &r->lesions[l->type_index].prior;
            assert_true(rsy_dist_cdf(&p->diameter_mm, l->diameter_mm) > 0.0);
            assert_true(count_value(inst, (uint16_t)l->instance_id) > 0);
        }
        rsy_volume_destroy(inst);
        rsy_volume_destroy(cls);
        rsy_lesion_set_clear(&set);
    }
    rsy_volume_destroy(map);
    rsy_recipe_destroy(r);
}

static int group_setup(void **state)
{
    (void)state;
    (void)rsy_init();
    tu_log_capture();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sh_basis),
        cmocka_unit_test(test_shape_draw),
        cmocka_unit_test(test_radial),
        cmocka_unit_test(test_compartment_offsets),
        cmocka_unit_test(test_sample_statistics),
        cmocka_unit_test(test_rasterise),
        cmocka_unit_test(test_overlap_lower_id_wins),
        cmocka_unit_test(test_mass_beats_neighbour_margin),
        cmocka_unit_test(test_sphere_volume),
        cmocka_unit_test(test_elongation),
        cmocka_unit_test(test_placement_failure),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_recipe_file),
    };
    return cmocka_run_group_tests_name("priors", tests, group_setup, NULL);
}
