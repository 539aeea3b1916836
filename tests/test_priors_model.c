/*
 * test_priors_model.c: cmocka tests of the lesion model of issue 5 in priors/: the distance
 * transform, shapes (flatness, fine roughness, lobes), compartments (walls, inclusions,
 * network, nesting) and the placement rules. tests/test_priors_mass.c tests the mass effect
 * and determinism; tests/test_priors.c keeps the tests of the 0.1 engine (harmonics, sampling
 * statistics, rasterisation, failures).
 *
 * Maps are synthetic (<= 64^3, tests/priors_fixtures.h); priors are built in C (the JSON keys
 * of issue 5 are parsed elsewhere). Every statistical test uses a fixed seed and states its
 * critical value; tolerances say why they are what they are.
 */
#include <gsl/gsl_sf_bessel.h>
#include <gsl/gsl_sf_legendre.h>

#include "priors_fixtures.h"
/* ---------------------------------------------------------------------------------------- */
/* Distance transform                                                                         */
/* ---------------------------------------------------------------------------------------- */

/* The EDT equals brute force (anisotropic spacing, a sub-box, two feature classes, with and
 * without truncation, both 1-D algorithms), to voxel centres and to voxel faces (edges, what the
 * placement rules use). Tolerance 1e-3 mm: squared distances are stored as float (relative rounding
 * 6e-8 of at most ~1e4 mm^2). */
static void test_edt_exact(void **state)
{
    (void)state;
    const double sp[3] = {1.0, 1.5, 2.5};
    rsy_volume *m = new_map(24, sp);
    rsy_rng *g = rng_new(7, 0);
    uint16_t *c = m->data;
    for (size_t q = 0; q < rsy_geometry_nvox(&m->geom); q++) {
        const double u = rsy_rng_uniform(g);
        c[q] = u < 0.004 ? 2 : (u < 0.008 ? 3 : 1);
    }
    c[0] = 70; /* a class id beyond the tissue tables is never a feature */
    rsy_rng_destroy(g);
    unsigned char feature[64] = {0};
    feature[2] = feature[3] = 1;
    const rsy__box b = {{2, 0, 3}, {21, 23, 17}};
    float *out = malloc(rsy__box_nvox(&b) * sizeof *out);
    assert_non_null(out);
    /* no truncation (lower envelopes), 6 mm (the windowed passes along j and k: reach <= 12
     * voxels) and 20 mm (lower envelopes with truncation) */
    const double trunc_mm[3] = {HUGE_VAL, 6.0, 20.0};
    for (int run = 0; run < 6; run++) {
        const int edges = run / 3;
        const double max_mm = trunc_mm[run % 3];
        if (edges)
            assert_int_equal(
                rsy__edt_box_ex(m->data, m->geom.dims, sp, &b, feature, max_mm, 1, out), RSY_OK);
        else
            assert_int_equal(rsy__edt_box(m->data, m->geom.dims, sp, &b, feature, max_mm, out),
                             RSY_OK);
        size_t q = 0;
        for (int64_t k = b.lo[2]; k <= b.hi[2]; k++)
            for (int64_t j = b.lo[1]; j <= b.hi[1]; j++)
                for (int64_t i = b.lo[0]; i <= b.hi[0]; i++, q++) {
                    double best = HUGE_VAL;
                    for (int64_t z = b.lo[2]; z <= b.hi[2]; z++)
                        for (int64_t y = b.lo[1]; y <= b.hi[1]; y++)
                            for (int64_t x = b.lo[0]; x <= b.hi[0]; x++)
                                if (feature[at(m, x, y, z) < 64 ? at(m, x, y, z) : 0]) {
                                    const double h = edges ? 0.5 : 0.0;
                                    const double dx = fmax(0.0, fabs((double)(x - i)) - h) * sp[0],
                                                 dy = fmax(0.0, fabs((double)(y - j)) - h) * sp[1],
                                                 dz = fmax(0.0, fabs((double)(z - k)) - h) * sp[2];
                                    best = fmin(best, sqrt(dx * dx + dy * dy + dz * dz));
                                }
                    if (best <= max_mm)
                        assert_true(fabs(out[q] - best) < 1e-3);
                    else
                        assert_true(isinf(out[q]));
                }
    }
    free(out);
    rsy_volume_destroy(m);
}

/* ---------------------------------------------------------------------------------------- */
/* Shapes                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Flatness: three distinct axes with a/c = e, b/c = f, volume preserved; the rasterised
 * voxels have principal SDs in the ratios a : b : c (a uniform ellipsoid has variance a^2/5
 * per axis) within 10 % (lattice error of a 24 mm lesion at 1 mm is a few %). */
static void test_flatness(void **state)
{
    (void)state;
    rsy_prior p;
    prior_init(&p, "flat", d_fixed(24.0));
    p.elongation = d_fixed(2.5);
    p.flatness = d_fixed(1.6);
    add_comp(&p, "lesion", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_volume *map = uniform_map(56, 1.0, RSY_HEAD_WHITE_MATTER);
    for (int seed = 0; seed < 3; seed++) {
        rsy_lesion l;
        memset(&l, 0, sizeof l);
        rsy_rng *g = rng_new(300 + (uint64_t)seed, 0);
        rsy__priors_shape_draw(&p, 24.0, 2.5, 1.6, g, &l);
        rsy_rng_destroy(g);
        const double *s = l.semi_axes_mm;
        assert_true(fabs(s[0] * s[1] * s[2] - 1728.0) < 1e-9);
        assert_true(fabs(s[0] / s[2] - 2.5) < 1e-12 && fabs(s[1] / s[2] - 1.6) < 1e-12);
        memset(l.center_mm, 0, sizeof l.center_mm);
        l.instance_id = 1;
        l.extent[0] = 1.0;
        rsy_lesion_set set = {1, &l};
        rsy_volume *c = NULL, *inst = NULL;
        rasterise(r, &set, map, &c, &inst);
        double m2[3] = {0, 0, 0};
        size_t n = 0;
        for (int64_t k = 0; k < 56; k++)
            for (int64_t j = 0; j < 56; j++)
                for (int64_t i = 0; i < 56; i++) {
                    if (!at(inst, i, j, k))
                        continue;
                    double x[3];
                    world_of(map, i, j, k, x);
                    for (int a = 0; a < 3; a++) { /* coordinates along the lesion's axes */
                        const double u = l.rotation[0][a] * x[0] + l.rotation[1][a] * x[1] +
                                         l.rotation[2][a] * x[2];
                        m2[a] += u * u;
                    }
                    n++;
                }
        assert_true(fabs(n / (4.0 / 3.0 * M_PI * 1728.0) - 1.0) < 0.03);
        assert_true(fabs(sqrt(m2[0] / m2[2]) / 2.5 - 1.0) < 0.10);
        assert_true(fabs(sqrt(m2[1] / m2[2]) / 1.6 - 1.0) < 0.10);
        rsy_volume_destroy(c);
        rsy_volume_destroy(inst);
    }
    rsy_volume_destroy(map);
    free(r);
}

/* Expected correlation of the roughness field at angle gamma: sum_{l=2..L} (2l+1) w_l
 * P_l(cos gamma) / sum (2l+1) w_l, w_l = e^-kappa i_l(kappa) (shape.c). */
static double rough_corr(double kappa, int lmax, double cosg)
{
    double num = 0.0, den = 0.0;
    for (int l = 2; l <= lmax; l++) {
        const double w = gsl_sf_bessel_il_scaled(l, kappa);
        num += (2.0 * l + 1.0) * w * gsl_sf_legendre_Pl(l, cosg);
        den += (2.0 * l + 1.0) * w;
    }
    return num / den;
}

/* Fine roughness: over 200 lesions the mean square of the field over the sphere is A^2 within
 * 10 % (each lesion's mean square has relative SD ~ sqrt(2/dof) with dof ~ kappa = 25, ~0.3,
 * so the mean over 200 has ~2 %), and the correlation at the chord length ell is the
 * spectrum's within 0.05 (averaged over 200 x 400 pairs). The table is deterministic and is
 * the surface: rasterised voxels are exactly those with rsy_lesion_radial < 1. */
static void test_roughness(void **state)
{
    (void)state;
    enum { NL = 200, ND = 1000, NP = 400 };
    const double A = 0.08, ell = 3.0, r0 = 15.0;
    rsy_prior p;
    prior_init(&p, "rough", d_fixed(2.0 * r0));
    p.roughness_amplitude = A;
    p.roughness_scale_mm = ell;
    rsy_rng *g = rng_new(41, 0);
    const double kappa = (r0 / ell) * (r0 / ell);
    const int lmax = (int)(ceil(3.0 * sqrt(kappa)) + 2.0);
    const double cos_ell = 1.0 - 0.5 * (ell / r0) * (ell / r0); /* chord ell on radius r0 */
    const double expected = rough_corr(kappa, lmax, cos_ell);
    double msq = 0.0, cov = 0.0;
    for (int t = 0; t < NL; t++) {
        rsy_lesion l;
        memset(&l, 0, sizeof l);
        rsy__priors_shape_draw(&p, 2.0 * r0, 1.0, 1.0, g, &l);
        rsy__shape sh, sh2;
        assert_int_equal(rsy__shape_init(&sh, &l), RSY_OK);
        assert_int_equal(rsy__shape_init(&sh2, &l), RSY_OK);
        assert_int_equal(sh.tn, sh2.tn);
        assert_memory_equal(sh.table, sh2.table, 6 * (size_t)sh.tn * (size_t)sh.tn * sizeof(float));
        double m = 0.0;
        for (int i = 0; i < ND; i++) { /* Fibonacci directions: equal areas */
            const double z = 1.0 - (2.0 * i + 1.0) / ND, rxy = sqrt(1.0 - z * z);
            const double phi = M_PI * (3.0 - sqrt(5.0)) * i;
            const double n[3] = {rxy * cos(phi), rxy * sin(phi), z};
            const double f = rsy__shape_scale(&sh, n) - 1.0;
            m += f * f / ND;
        }
        msq += m / NL;
        for (int q = 0; q < NP; q++) { /* random pairs at angle gamma */
            const double z = rsy_rng_uniform_range(g, -1.0, 1.0),
                         ph = rsy_rng_uniform(g) * 2 * M_PI;
            const double n1[3] = {sqrt(1 - z * z) * cos(ph), sqrt(1 - z * z) * sin(ph), z};
            double t1[3] = {-n1[1], n1[0], 0.0};
            const double tn = sqrt(t1[0] * t1[0] + t1[1] * t1[1]);
            if (tn < 1e-6)
                continue;
            const double sg = sqrt(1.0 - cos_ell * cos_ell);
            double n2[3];
            for (int a = 0; a < 3; a++)
                n2[a] = cos_ell * n1[a] + sg * t1[a] / tn;
            cov += (rsy__shape_scale(&sh, n1) - 1.0) * (rsy__shape_scale(&sh, n2) - 1.0) /
                   ((double)NL * NP);
        }
        rsy__shape_clear(&sh);
        rsy__shape_clear(&sh2);
    }
    rsy_rng_destroy(g);
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "roughness: ms/A^2 %.3f, corr %.3f (expected %.3f)\n", msq / (A * A),
                cov / (A * A), expected);
    assert_true(fabs(msq / (A * A) - 1.0) < 0.10);
    assert_true(fabs(cov / (A * A) - expected) < 0.05);

    /* The rasterised lesion is the table's surface. */
    add_comp(&p, "lesion", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_volume *map = uniform_map(40, 1.0, RSY_HEAD_WHITE_MATTER);
    rsy_lesion l;
    memset(&l, 0, sizeof l);
    g = rng_new(42, 0);
    rsy__priors_shape_draw(&p, 2.0 * r0, 1.3, 1.0, g, &l);
    rsy_rng_destroy(g);
    l.instance_id = 1;
    l.extent[0] = 1.0;
    rsy_lesion_set set = {1, &l};
    rsy_volume *c = NULL, *inst = NULL;
    rasterise(r, &set, map, &c, &inst);
    rsy__shape sh;
    assert_int_equal(rsy__shape_init(&sh, &l), RSY_OK);
    for (int64_t k = 0; k < 40; k++)
        for (int64_t j = 0; j < 40; j++)
            for (int64_t i = 0; i < 40; i++) {
                double x[3];
                world_of(map, i, j, k, x);
                assert_int_equal(at(inst, i, j, k) == 1, rsy__shape_radial(&sh, x, NULL) < 1.0);
            }
    rsy__shape_clear(&sh);
    rsy_volume_destroy(c);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(map);
    free(r);
}

/* Lobes: the union of the lobe surfaces (each checked against a one-lobe lesion built from the
 * lobe's record), spanning about the drawn diameter; one 26-connected piece for >= 95 % of
 * 60 lesions (lobes overlap by construction; a strongly lobulated lobe can pull away). */
static void test_lobes(void **state)
{
    (void)state;
    rsy_prior p;
    prior_init(&p, "popcorn", d_fixed(24.0));
    p.lobes = d_uniform(2.0, 5.0);
    p.elongation = d_uniform(1.0, 1.4);
    p.lobulation_lmax = 3;
    p.lobulation_amplitude = 0.1;
    add_comp(&p, "lesion", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_volume *map = uniform_map(40, 1.0, RSY_HEAD_WHITE_MATTER);
    rsy_rng *g = rng_new(51, 0);
    int connected = 0, seen_lobes[RSY_MAX_LOBES + 1] = {0};
    for (int t = 0; t < 60; t++) {
        rsy_lesion l;
        memset(&l, 0, sizeof l);
        const double nl = floor(rsy_dist_sample(&p.lobes, g) + 0.5);
        rsy_prior q = p;
        q.lobes = d_fixed(nl);
        rsy__priors_shape_draw(&q, 24.0, 1.2, 1.0, g, &l);
        assert_int_equal(l.n_lobes, (int)nl);
        seen_lobes[l.n_lobes]++;
        l.instance_id = 1;
        l.extent[0] = 1.0;
        /* union = min over single-lobe lesions */
        rsy_lesion one[RSY_MAX_LOBES];
        for (int k = 0; k < l.n_lobes; k++) {
            one[k] = l;
            one[k].n_lobes = 1;
            for (int a = 0; a < 3; a++) {
                one[k].semi_axes_mm[a] = l.semi_axes_mm[a] * l.lobe_scale[k];
                one[k].center_mm[a] = l.rotation[a][0] * l.lobe_offset_mm[k][0] +
                                      l.rotation[a][1] * l.lobe_offset_mm[k][1] +
                                      l.rotation[a][2] * l.lobe_offset_mm[k][2];
                for (int b = 0; b < 3; b++) {
                    one[k].rotation[a][b] = 0.0;
                    for (int e = 0; e < 3; e++)
                        one[k].rotation[a][b] += l.rotation[a][e] * l.lobe_rotation[k][e][b];
                }
            }
        }
        for (int s = 0; s < 200; s++) {
            double x[3], du, best = HUGE_VAL, bestd = HUGE_VAL;
            for (int a = 0; a < 3; a++)
                x[a] = rsy_rng_uniform_range(g, -14.0, 14.0);
            const double ru = rsy_lesion_radial(&l, x, &du);
            for (int k = 0; k < l.n_lobes; k++) {
                double dk;
                best = fmin(best, rsy_lesion_radial(&one[k], x, &dk));
                bestd = fmin(bestd, dk);
            }
            assert_true(fabs(ru - best) < 1e-12 && fabs(du - bestd) < 1e-9);
        }
        rsy_lesion_set set = {1, &l};
        rsy_volume *c = NULL, *inst = NULL;
        rasterise(r, &set, map, &c, &inst);
        double rmax = 0.0;
        for (int64_t k = 0; k < 40; k++)
            for (int64_t j = 0; j < 40; j++)
                for (int64_t i = 0; i < 40; i++)
                    if (at(inst, i, j, k)) {
                        double x[3];
                        world_of(map, i, j, k, x);
                        rmax = fmax(rmax, sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]));
                    }
        /* lobe centres at 0.4 of the axes, lobes 0.45-0.75 of the size, lobulation <= ~1.3 */
        assert_true(rmax > 0.6 * 12.0 && rmax < 1.6 * 12.0 * 1.4);
        connected += components(inst, 1) == 1;
        rsy_volume_destroy(c);
        rsy_volume_destroy(inst);
    }
    rsy_rng_destroy(g);
    assert_true(connected >= 57);
    for (int n = 2; n <= 5; n++)
        assert_true(seen_lobes[n] > 0);
    rsy_volume_destroy(map);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Compartments                                                                               */
/* ---------------------------------------------------------------------------------------- */

enum { C_CAPSULE, C_CORE, C_BODY, C_OEDEMA, C_FAT, C_SEPTA, C_CALC };

/* Wall, two fractions, a margin, then the nested ones: fat inclusions in the body (periphery),
 * a septal network in the core, calcified inclusions in the fat. */
static void prior_nested(rsy_prior *p, int n_compartments)
{
    prior_init(p, "nested", d_fixed(30.0));
    names(p->allowed, &p->n_allowed, "white_matter", NULL, NULL);
    p->elongation = d_fixed(1.3);
    p->lobulation_lmax = 4;
    p->lobulation_amplitude = 0.08;
    add_comp(p, "capsule", RSY_EXTENT_WALL_MM, d_fixed(1.5), NULL);
    add_comp(p, "core", RSY_EXTENT_RADIUS_FRACTION, d_fixed(0.5), NULL);
    add_comp(p, "body", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
    add_comp(p, "oedema", RSY_EXTENT_MARGIN_MM, d_fixed(3.0), NULL);
    const int fat = add_comp(p, "fat", RSY_EXTENT_INCLUSIONS, d_fixed(0.25), "body");
    p->compartments[fat].inclusion_diameter_mm = d_uniform(2.0, 4.0);
    p->compartments[fat].where = RSY_WHERE_PERIPHERY;
    const int septa = add_comp(p, "septa", RSY_EXTENT_NETWORK, d_fixed(1.0), "core");
    p->compartments[septa].cell_mm = d_fixed(5.0);
    const int calc = add_comp(p, "calc", RSY_EXTENT_INCLUSIONS, d_fixed(0.3), "fat");
    p->compartments[calc].inclusion_diameter_mm = d_fixed(1.5);
    p->n_compartments = n_compartments;
}

/* 6-neighbour of voxel (i, j, k) of @p inst not in lesion @p id or of class @p outside_class */
static int touches_out(const rsy_volume *inst, const rsy_volume *c, int64_t i, int64_t j, int64_t k,
                       uint16_t id, int outside_class)
{
    const int64_t nb[6][3] = {{i - 1, j, k}, {i + 1, j, k}, {i, j - 1, k},
                              {i, j + 1, k}, {i, j, k - 1}, {i, j, k + 1}};
    for (int q = 0; q < 6; q++) {
        const int64_t *v = nb[q];
        if (at(inst, v[0], v[1], v[2]) != id || (int)at(c, v[0], v[1], v[2]) == outside_class)
            return 1;
    }
    return 0;
}

/* Nesting as declared, checked against the same lesion drawn without the nested compartments:
 * inclusions and network voxels are voxels of their parent there, and nothing else changes;
 * the inclusions cover their drawn fraction of the parent (within 0.06: Monte-Carlo error of
 * ~900 parent points, sd 0.015, plus the voxelisation of 2-4 mm blobs at 1 mm) in its outer
 * third; the capsule (a 1.5 mm wall) is a closed shell. Over 6 lesions. */
static void test_nesting(void **state)
{
    (void)state;
    rsy_prior full, mid, base;
    prior_nested(&full, 7);
    prior_nested(&mid, 6);
    prior_nested(&base, 4);
    rsy_recipe *rf = recipe_of("head", &full), *rm = recipe_of("head", &mid),
               *rb = recipe_of("head", &base);
    rsy_volume *map = uniform_map(48, 1.0, RSY_HEAD_WHITE_MATTER);
    const uint16_t T = RSY_HEAD_N_CLASSES;
    for (int t = 0; t < 6; t++) {
        rsy_lesion l;
        memset(&l, 0, sizeof l);
        rsy_rng *g = rng_new(61, (uint64_t)t);
        rsy__priors_shape_draw(&full, 30.0, 1.3, 1.0, g, &l);
        rsy_rng_destroy(g);
        l.instance_id = 1;
        const double ext[7] = {1.5, 0.5, 1.0, 3.0, 0.25, 1.0, 0.3};
        memcpy(l.extent, ext, sizeof ext);
        l.cell_mm[C_SEPTA] = 5.0;
        rsy_lesion_set set = {1, &l};
        rsy_volume *cf, *inf, *cm, *inm, *cb, *inb;
        rasterise(rf, &set, map, &cf, &inf);
        rasterise(rm, &set, map, &cm, &inm);
        rasterise(rb, &set, map, &cb, &inb);
        rsy__shape sh;
        assert_int_equal(rsy__shape_init(&sh, &l), RSY_OK);
        size_t n_fat = 0, n_calc = 0, n_body = 0, n_septa = 0, n_core = 0, n_fat_mid = 0;
        for (int64_t k = 1; k < 47; k++)
            for (int64_t j = 1; j < 47; j++)
                for (int64_t i = 1; i < 47; i++) {
                    const int f = at(cf, i, j, k) - T, m = at(cm, i, j, k) - T,
                              b = at(cb, i, j, k) - T;
                    assert_int_equal(at(inf, i, j, k), at(inb, i, j, k));
                    if (f == C_FAT || f == C_CALC)
                        assert_int_equal(b, C_BODY);
                    else if (f == C_SEPTA)
                        assert_int_equal(b, C_CORE);
                    else
                        assert_int_equal(f, b);
                    if (f == C_CALC)
                        assert_int_equal(m, C_FAT);
                    else
                        assert_int_equal(f, m);
                    n_fat += f == C_FAT || f == C_CALC;
                    n_calc += f == C_CALC;
                    n_fat_mid += m == C_FAT;
                    n_body += b == C_BODY;
                    n_septa += f == C_SEPTA;
                    n_core += b == C_CORE;
                    if (f == C_FAT || f == C_CALC) { /* periphery: centres at rn >= 2/3 */
                        double x[3];
                        world_of(map, i, j, k, x);
                        assert_true(rsy__shape_radial(&sh, x, NULL) > 0.45);
                    }
                    /* the capsule is a closed shell: no inside voxel touches the outside */
                    if (at(inf, i, j, k) == 1 && f != C_CAPSULE && f != C_OEDEMA)
                        assert_false(touches_out(inf, cf, i, j, k, 1, T + C_OEDEMA));
                }
        rsy__shape_clear(&sh);
        if (getenv("RSY_TEST_VERBOSE"))
            fprintf(stderr, "nesting: fat %.3f calc %.3f septa %.3f\n", (double)n_fat / n_body,
                    (double)n_calc / n_fat_mid, (double)n_septa / n_core);
        assert_true(fabs((double)n_fat / n_body - 0.25) < 0.06);
        assert_true(fabs((double)n_calc / n_fat_mid - 0.3) < 0.1);
        assert_true(n_septa > 0.2 * n_core && n_septa < 0.9 * n_core);
        rsy_volume *vols[6] = {cf, inf, cm, inm, cb, inb};
        for (int q = 0; q < 6; q++)
            rsy_volume_destroy(vols[q]);
    }
    rsy_volume_destroy(map);
    free(rf);
    free(rm);
    free(rb);
}

/* Cysts: a 1 mm wall lines elongated, lobulated, rough surfaces at 1 mm as a closed shell (no
 * fluid voxel touches the outside), over 20 lesions sampled through rsy_lesions_sample. */
static void test_cyst_wall(void **state)
{
    (void)state;
    rsy_prior p;
    prior_init(&p, "cyst", d_uniform(8.0, 20.0));
    p.shape_kind = RSY_SHAPE_CYST;
    p.elongation = d_uniform(1.5, 3.0);
    p.flatness = d_uniform(1.0, 1.5);
    p.lobulation_lmax = 4;
    p.lobulation_amplitude = 0.15;
    p.roughness_amplitude = 0.05;
    p.roughness_scale_mm = 2.0;
    names(p.allowed, &p.n_allowed, "white_matter", NULL, NULL);
    add_comp(&p, "wall", RSY_EXTENT_WALL_MM, d_fixed(1.0), NULL);
    add_comp(&p, "fluid", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_volume *map = uniform_map(40, 1.0, RSY_HEAD_WHITE_MATTER);
    const uint16_t T = RSY_HEAD_N_CLASSES;
    for (int t = 0; t < 20; t++) {
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(sample(r, map, 71, (uint64_t)t, &set), RSY_OK);
        rsy_volume *c, *inst;
        rasterise(r, &set, map, &c, &inst);
        size_t n_wall = 0, n_fluid = 0;
        for (int64_t k = 1; k < 39; k++)
            for (int64_t j = 1; j < 39; j++)
                for (int64_t i = 1; i < 39; i++) {
                    const uint16_t v = at(c, i, j, k);
                    n_wall += v == T;
                    n_fluid += v == T + 1;
                    if (v == T + 1)
                        assert_false(touches_out(inst, c, i, j, k, 1, -1));
                }
        assert_true(n_wall > 0 && n_fluid > 0);
        rsy_volume_destroy(c);
        rsy_volume_destroy(inst);
        rsy_lesion_set_clear(&set);
    }
    rsy_volume_destroy(map);
    free(r);
}

/* Compartments that may be absent (JSON "probability" < 1): over 500 lesions of a 14 mm nested
 * prior whose fat inclusions are present with probability 0.3, the fraction of lesions with
 * fat is 0.3 within 0.08 (binomial SD 0.020: four SDs); a capsule (wall) with presence 0 never
 * appears, and without it the closed-wall rule adds no shell. Rasterised, every 10th lesion has
 * fat voxels exactly when it was drawn present, and calcified inclusions (inside the fat) only
 * then; the presence draw leaves the other compartments' draws unchanged. */
static void test_compartment_presence(void **state)
{
    (void)state;
    rsy_prior p;
    prior_nested(&p, 7);
    p.diameter_mm = d_fixed(14.0);
    p.compartments[C_FAT].absent_probability = 0.7;
    p.compartments[C_CAPSULE].absent_probability = 1.0;
    p.compartments[C_FAT].inclusion_diameter_mm = d_fixed(2.0);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_volume *map = uniform_map(40, 1.0, RSY_HEAD_WHITE_MATTER);
    const uint16_t T = RSY_HEAD_N_CLASSES;
    int n = 0, with_fat = 0;
    for (int t = 0; t < 500; t++) {
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(sample(r, map, 97, (uint64_t)t, &set), RSY_OK);
        assert_int_equal(set.n, 1);
        const rsy_lesion *l = &set.items[0];
        const int fat = l->extent[C_FAT] > 0.0;
        n++;
        with_fat += fat;
        assert_true(l->extent[C_CAPSULE] == 0.0);
        assert_true(l->extent[C_BODY] == 1.0 && l->extent[C_CORE] == 0.5);
        if (t % 10 == 0) {
            rsy_volume *c, *inst;
            rasterise(r, &set, map, &c, &inst);
            size_t n_fat = 0, n_calc = 0, n_capsule = 0, n_body = 0;
            const size_t nvox = rsy_geometry_nvox(&c->geom);
            for (size_t v = 0; v < nvox; v++) {
                const int k = (int)((const uint16_t *)c->data)[v] - T;
                n_fat += k == C_FAT;
                n_calc += k == C_CALC;
                n_capsule += k == C_CAPSULE;
                n_body += k == C_BODY;
            }
            assert_int_equal(n_capsule, 0);
            assert_true(n_body > 0);
            if (fat)
                assert_true(n_fat > 0);
            else
                assert_true(n_fat == 0 && n_calc == 0);
            rsy_volume_destroy(c);
            rsy_volume_destroy(inst);
        }
        rsy_lesion_set_clear(&set);
    }
    const double frac = (double)with_fat / n;
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "presence: fat in %.3f of %d lesions\n", frac, n);
    assert_true(fabs(frac - 0.3) < 0.08);
    rsy_volume_destroy(map);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Placement rules                                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct rule_stats {
    int n_lesions;
    int protruding; /* lesions that replaced a reference voxel (subependymal) */
} rule_stats;

/* Sample @p cases cases of @p p on @p map and check every lesion: its anchor voxel is a host,
 * its brute-force distance to the reference lies in the window and equals the recorded one,
 * the orientation follows the distance gradient, extra_axial lesions rest on the reference;
 * then the diameters (KS) and the counts (chi-square, 3 degrees of freedom) against the prior.
 * Seven priors are tested this way, so the critical values are those of the 0.1 % level
 * (family-wise about 0.7 %): KS 1.95/sqrt(n) (asymptotic Kolmogorov), chi-square 16.27. */
static rule_stats check_rule(const rsy_prior *p, const char *family, const rsy_volume *map,
                             int cases, uint64_t seed)
{
    rsy_recipe *r = recipe_of(family, p);
    unsigned char hosts[64], ref[64];
    set_of(family, (const char(*)[RSY_NAME_MAX])p->hosts, p->n_hosts, hosts);
    set_of(family, (const char(*)[RSY_NAME_MAX])p->reference, p->n_reference, ref);
    double *diam = malloc((size_t)cases * 8 * sizeof *diam);
    assert_non_null(diam);
    int hist[6] = {0};
    rule_stats st = {0, 0};
    const double *sp = map->geom.spacing_mm;
    const double half_diag = 0.5 * sqrt(sp[0] * sp[0] + sp[1] * sp[1] + sp[2] * sp[2]);
    for (int c = 0; c < cases; c++) {
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(sample(r, map, seed, (uint64_t)c, &set), RSY_OK);
        assert_true(set.n >= 2 && set.n <= 5);
        for (int i = 1; i < set.n; i++) /* placed, and numbered, largest first */
            assert_true(set.items[i].diameter_mm <= set.items[i - 1].diameter_mm);
        hist[set.n]++;
        for (int i = 0; i < set.n; i++) {
            const rsy_lesion *l = &set.items[i];
            diam[st.n_lesions++] = l->diameter_mm;
            int64_t v[3];
            nearest_voxel(map, l->anchor_mm, v);
            const uint16_t hc = at(map, v[0], v[1], v[2]);
            assert_true(hc < 64 && hosts[hc]);
            assert_int_equal(l->host_class, hc);
            if (p->rule == RSY_PLACE_HOST_TISSUE)
                continue;
            const int skip = ref[hc] ? hc : -1; /* grey_white_junction: the other tissue */
            const double d = edge_distance(map, v, ref, skip, p->max_distance_mm);
            assert_true(d >= p->min_distance_mm - 1e-6 && d <= p->max_distance_mm + 1e-6);
            assert_true(fabs(d - l->anchor_distance_mm) < 1e-3);
            const double *n = l->normal;
            if (n[0] == 0.0 && n[1] == 0.0 && n[2] == 0.0) {
                assert_true(p->rule != RSY_PLACE_EXTRA_AXIAL);
                continue;
            }
            const int axis =
                p->rule == RSY_PLACE_EXTRA_AXIAL || p->orientation == RSY_ORIENT_TANGENTIAL
                    ? 2
                    : (p->orientation == RSY_ORIENT_RADIAL ? 0 : -1);
            if (axis >= 0) {
                const double dot = l->rotation[0][axis] * n[0] + l->rotation[1][axis] * n[1] +
                                   l->rotation[2][axis] * n[2];
                assert_true(fabs(fabs(dot) - 1.0) < 1e-9);
            }
            if (p->rule == RSY_PLACE_EXTRA_AXIAL) {
                /* the centre lies inward along n, the base point centre - R_n n within about a
                 * voxel of the inner table (the skull voxels' faces): anchor jitter (half a
                 * voxel diagonal) plus the angle error of the discrete gradient over the
                 * distance d */
                rsy__shape sh;
                assert_int_equal(rsy__shape_init(&sh, l), RSY_OK);
                const double toward[3] = {-n[0], -n[1], -n[2]};
                const double rn = rsy__shape_radius_along(&sh, toward);
                rsy__shape_clear(&sh);
                double base[3];
                for (int a = 0; a < 3; a++)
                    base[a] = l->center_mm[a] - rn * n[a];
                const double best = point_edge_distance(map, base, ref, 3);
                assert_true(best <= half_diag + 0.5 * d + 1e-6);
            } else {
                assert_memory_equal(l->center_mm, l->anchor_mm, sizeof l->center_mm);
                /* the normal is the central-difference gradient of the (brute-force) distance
                 * map, where that gradient is well defined (|grad| >= 0.5: off the ridges) */
                double gfd[3], gn = 0.0;
                int ok = 1;
                for (int a = 0; a < 3 && ok; a++) {
                    int64_t lo[3] = {v[0], v[1], v[2]}, hi[3] = {v[0], v[1], v[2]};
                    lo[a]--;
                    hi[a]++;
                    ok = lo[a] >= 0 && hi[a] < map->geom.dims[a];
                    if (!ok)
                        break;
                    const double dl =
                        edge_distance(map, lo, ref, skip, p->max_distance_mm + 2 * sp[a]);
                    const double dh =
                        edge_distance(map, hi, ref, skip, p->max_distance_mm + 2 * sp[a]);
                    ok = isfinite(dl) && isfinite(dh) && dl < 1e300 && dh < 1e300;
                    gfd[a] = (dh - dl) / (2.0 * sp[a]);
                    gn += gfd[a] * gfd[a];
                }
                gn = sqrt(gn);
                if (ok && gn >= 0.5)
                    assert_true((gfd[0] * n[0] + gfd[1] * n[1] + gfd[2] * n[2]) / gn > 0.999);
            }
        }
        if (p->rule == RSY_PLACE_SUBEPENDYMAL) {
            rsy_volume *cv, *inst;
            rasterise(r, &set, map, &cv, &inst);
            for (int i = 0; i < set.n; i++) {
                int hit = 0;
                for (size_t q = 0; q < rsy_geometry_nvox(&map->geom) && !hit; q++)
                    hit = ((uint16_t *)inst->data)[q] == i + 1 && ref[((uint16_t *)map->data)[q]];
                st.protruding += hit;
            }
            rsy_volume_destroy(cv);
            rsy_volume_destroy(inst);
        }
        rsy_lesion_set_clear(&set);
    }
    assert_true(st.n_lesions >= 500);
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "rule %s: %d lesions, KS %.4f (critical %.4f)\n", p->name, st.n_lesions,
                ks_statistic(diam, (size_t)st.n_lesions, &p->diameter_mm),
                1.95 / sqrt((double)st.n_lesions));
    assert_true(ks_statistic(diam, (size_t)st.n_lesions, &p->diameter_mm) <
                1.95 / sqrt((double)st.n_lesions));
    double chi2 = 0.0;
    for (int k = 0; k < 4; k++) {
        const double e = cases * COUNT_WEIGHTS[k];
        chi2 += (hist[k + 2] - e) * (hist[k + 2] - e) / e;
    }
    assert_true(chi2 < 16.27);
    free(diam);
    free(r);
    return st;
}

static void test_rules_brain(void **state)
{
    (void)state;
    rsy_volume *map = head_map(64, 2.0);
    rsy_prior p;

    prior_rule(&p, "plaques", RSY_PLACE_PERIVENTRICULAR, 0.0, 8.0);
    names(p.reference, &p.n_reference, "ventricles", NULL, NULL);
    p.orientation = RSY_ORIENT_RADIAL;
    p.elongation = d_uniform(1.5, 2.5);
    (void)check_rule(&p, "head", map, 160, 101);

    prior_rule(&p, "juxtacortical", RSY_PLACE_JUXTACORTICAL, 0.0, 4.0);
    names(p.reference, &p.n_reference, "grey_matter", NULL, NULL);
    p.orientation = RSY_ORIENT_TANGENTIAL;
    (void)check_rule(&p, "head", map, 160, 102);

    prior_rule(&p, "gw_junction", RSY_PLACE_GREY_WHITE_JUNCTION, 0.0, 2.5);
    names(p.hosts, &p.n_hosts, "grey_matter", "white_matter", NULL);
    names(p.reference, &p.n_reference, "grey_matter", "white_matter", NULL);
    (void)check_rule(&p, "head", map, 160, 103);

    prior_rule(&p, "tsc_nodule", RSY_PLACE_SUBEPENDYMAL, 0.0, 3.0);
    names(p.hosts, &p.n_hosts, "white_matter", "deep_grey", NULL);
    names(p.reference, &p.n_reference, "ventricles", NULL, NULL);
    p.diameter_mm = d_lognormal(5.0, 1.3, 3.0, 9.0);
    const rule_stats st = check_rule(&p, "head", map, 160, 104);
    /* centres within 3 mm of the ventricle and lesions >= 3 mm across: most protrude */
    assert_true(st.protruding > st.n_lesions / 3);

    prior_rule(&p, "meningioma", RSY_PLACE_EXTRA_AXIAL, 0.0, 3.0);
    names(p.hosts, &p.n_hosts, "csf", NULL, NULL);
    names(p.allowed, &p.n_allowed, "csf", "grey_matter", "white_matter");
    names(p.reference, &p.n_reference, "skull", NULL, NULL);
    p.diameter_mm = d_lognormal(12.0, 1.2, 8.0, 20.0);
    p.flatness = d_uniform(1.0, 1.5);
    p.lobulation_amplitude = 0.04;
    (void)check_rule(&p, "head", map, 160, 105);
    rsy_volume_destroy(map);
}

static void test_rules_body(void **state)
{
    (void)state;
    rsy_prior p;
    rsy_volume *chest = thorax_map(64, 3.0);
    prior_rule(&p, "subpleural", RSY_PLACE_SUBPLEURAL, 0.0, 6.0);
    names(p.hosts, &p.n_hosts, "lung", NULL, NULL);
    names(p.allowed, &p.n_allowed, "lung", NULL, NULL);
    names(p.reference, &p.n_reference, "muscle", "fat", "cortical_bone");
    p.orientation = RSY_ORIENT_TANGENTIAL;
    (void)check_rule(&p, "thorax", chest, 160, 201);
    rsy_volume_destroy(chest);

    rsy_volume *abd = abdomen_map(64, 3.0);
    prior_rule(&p, "subcapsular", RSY_PLACE_SUBCAPSULAR, 0.0, 5.0);
    names(p.hosts, &p.n_hosts, "liver", NULL, NULL);
    names(p.allowed, &p.n_allowed, "liver", NULL, NULL);
    names(p.reference, &p.n_reference, "fat", NULL, NULL);
    (void)check_rule(&p, "abdomen", abd, 160, 202);
    rsy_volume_destroy(abd);
}

/* Zone weights [4, 2, 1] (upper-zone predominance): the anchors' thirds of the hosts' S-I
 * extent follow w_z N_z / sum w N (N_z candidate voxels per third): chi-square, 2 degrees of
 * freedom, 1 % critical value 9.21, over 1500 one-lesion cases. */
static void test_zone_weights(void **state)
{
    (void)state;
    enum { CASES = 1500 };
    rsy_volume *map = head_map(48, 2.0);
    rsy_prior p;
    prior_init(&p, "upper_zone", d_uniform(1.0, 2.0));
    names(p.allowed, &p.n_allowed, "white_matter", "grey_matter", "ventricles");
    p.zone_weights[0] = 4.0;
    p.zone_weights[1] = 2.0;
    p.zone_weights[2] = 1.0;
    add_comp(&p, "lesion", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
    rsy_recipe *r = recipe_of("head", &p);
    double zmin = HUGE_VAL, zmax = -HUGE_VAL;
    for (int64_t k = 0; k < 48; k++)
        for (int64_t j = 0; j < 48; j++)
            for (int64_t i = 0; i < 48; i++)
                if (at(map, i, j, k) == RSY_HEAD_WHITE_MATTER) {
                    double x[3];
                    world_of(map, i, j, k, x);
                    zmin = fmin(zmin, x[2]);
                    zmax = fmax(zmax, x[2]);
                }
    double nz[3] = {0, 0, 0};
    for (int64_t k = 0; k < 48; k++)
        for (int64_t j = 0; j < 48; j++)
            for (int64_t i = 0; i < 48; i++)
                if (at(map, i, j, k) == RSY_HEAD_WHITE_MATTER) {
                    double x[3];
                    world_of(map, i, j, k, x);
                    const double t = (zmax - x[2]) / (zmax - zmin);
                    nz[t < 1.0 / 3.0 ? 0 : (t < 2.0 / 3.0 ? 1 : 2)] += 1.0;
                }
    int obs[3] = {0, 0, 0};
    for (int c = 0; c < CASES; c++) {
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(sample(r, map, 301, (uint64_t)c, &set), RSY_OK);
        int64_t v[3];
        nearest_voxel(map, set.items[0].anchor_mm, v);
        double x[3];
        world_of(map, v[0], v[1], v[2], x);
        const double t = (zmax - x[2]) / (zmax - zmin);
        obs[t < 1.0 / 3.0 ? 0 : (t < 2.0 / 3.0 ? 1 : 2)]++;
        rsy_lesion_set_clear(&set);
    }
    const double w[3] = {4, 2, 1};
    const double tot = w[0] * nz[0] + w[1] * nz[1] + w[2] * nz[2];
    double chi2 = 0.0;
    for (int z = 0; z < 3; z++) {
        const double e = CASES * w[z] * nz[z] / tot;
        chi2 += (obs[z] - e) * (obs[z] - e) / e;
    }
    assert_true(chi2 < 9.21);
    rsy_volume_destroy(map);
    free(r);
}

/* No overlap where forbidden: dense periventricular plaques keep min_separation_mm between
 * surfaces (>= 0.5 of it measured between point clouds of the bodies: the sampler's ray
 * distance over-estimates the normal gap on oblique surfaces, see sample.c). */
static void test_separation_rule(void **state)
{
    (void)state;
    enum { NP = 300 };
    rsy_volume *map = head_map(64, 2.0);
    rsy_prior p;
    prior_rule(&p, "dense", RSY_PLACE_PERIVENTRICULAR, 0.0, 10.0);
    names(p.reference, &p.n_reference, "ventricles", NULL, NULL);
    p.count = d_fixed(8);
    p.min_separation_mm = 3.0;
    rsy_recipe *r = recipe_of("head", &p);
    double(*pts)[NP][3] = malloc(8 * sizeof *pts);
    assert_non_null(pts);
    rsy_rng *mc = rng_new(404, 0);
    for (int c = 0; c < 20; c++) {
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(sample(r, map, 401, (uint64_t)c, &set), RSY_OK);
        for (int i = 0; i < set.n; i++) {
            rsy__shape sh;
            assert_int_equal(rsy__shape_init(&sh, &set.items[i]), RSY_OK);
            for (int q = 0; q < NP;) {
                double x[3];
                for (int a = 0; a < 3; a++)
                    x[a] = set.items[i].center_mm[a] +
                           rsy_rng_uniform_range(mc, -sh.bound_mm, sh.bound_mm);
                if (rsy__shape_radial(&sh, x, NULL) < 1.0)
                    memcpy(pts[i][q++], x, sizeof x);
            }
            rsy__shape_clear(&sh);
        }
        for (int i = 0; i < set.n; i++)
            for (int j = i + 1; j < set.n; j++) {
                double dmin = HUGE_VAL;
                for (int a = 0; a < NP; a++)
                    for (int b = 0; b < NP; b++) {
                        double d2 = 0.0;
                        for (int k = 0; k < 3; k++)
                            d2 += (pts[i][a][k] - pts[j][b][k]) * (pts[i][a][k] - pts[j][b][k]);
                        dmin = fmin(dmin, d2);
                    }
                assert_true(sqrt(dmin) >= 0.5 * p.min_separation_mm);
            }
        rsy_lesion_set_clear(&set);
    }
    rsy_rng_destroy(mc);
    free(pts);
    rsy_volume_destroy(map);
    free(r);
}

static int n_size_warnings;

static void count_size_warnings(rsy_log_level level, const char *func, const char *msg, void *user)
{
    (void)func;
    (void)user;
    if (level == RSY_LOG_WARNING && strstr(msg, "diameter is drawn again"))
        n_size_warnings++;
}

/* A lesion that does not fit keeps its diameter while its shape is drawn again (8 rounds), and
 * only then gets a new diameter, with one warning. Diameters 8 mm (fits) or 40 mm (never fits
 * in a white-matter ball of radius 12 mm, allowed white matter only), equally likely: over 40
 * one-lesion cases every lesion is 8 mm; exactly the lesions whose first draw was 40 mm used
 * more than 8 x max_attempts attempts, and each logged one warning. */
static void test_size_redraw(void **state)
{
    (void)state;
    rsy_volume *map = uniform_map(24, 2.0, RSY_HEAD_CSF);
    for (int64_t k = 0; k < 24; k++)
        for (int64_t j = 0; j < 24; j++)
            for (int64_t i = 0; i < 24; i++) {
                double x[3];
                world_of(map, i, j, k, x);
                if (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] < 144.0)
                    ((uint16_t *)map->data)[idx(map, i, j, k)] = RSY_HEAD_WHITE_MATTER;
            }
    const double values[2] = {8.0, 40.0}, weights[2] = {0.5, 0.5};
    rsy_prior p;
    prior_init(&p, "too_big", d_categorical(2, values, weights));
    names(p.allowed, &p.n_allowed, "white_matter", NULL, NULL);
    p.max_attempts = 20;
    add_comp(&p, "lesion", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_log_set_handler(count_size_warnings, NULL);
    int redrawn = 0;
    n_size_warnings = 0;
    for (int c = 0; c < 40; c++) {
        rsy_lesion_set set = {0, NULL};
        assert_int_equal(sample(r, map, 77, (uint64_t)c, &set), RSY_OK);
        assert_int_equal(set.n, 1);
        assert_true(set.items[0].diameter_mm == 8.0);
        redrawn += set.items[0].attempts > 8 * p.max_attempts;
        rsy_lesion_set_clear(&set);
    }
    tu_log_capture();
    assert_int_equal(redrawn, n_size_warnings);
    assert_true(redrawn >= 8 && redrawn <= 32); /* binomial(40, 1/2): beyond 4 SDs */
    rsy_volume_destroy(map);
    free(r);
}

/* A rule that cannot be met gives RSY_EPLACEMENT and one line naming the prior and the rule:
 * no candidate (window out of reach), and candidates whose bodies never fit. */
static void test_rule_failure(void **state)
{
    (void)state;
    rsy_volume *map = head_map(48, 2.0);
    rsy_prior p;
    prior_rule(&p, "far_plaques", RSY_PLACE_PERIVENTRICULAR, 200.0, 210.0);
    names(p.reference, &p.n_reference, "ventricles", NULL, NULL);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_lesion_set set = {0, NULL};
    tu_log_capture();
    assert_int_equal(sample(r, map, 1, 0, &set), RSY_EPLACEMENT);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "far_plaques"));
    assert_non_null(strstr(tu_last_error(), "periventricular"));
    assert_non_null(strstr(tu_last_error(), "cannot be met"));
    assert_null(set.items);

    r->lesions[0].prior.min_distance_mm = 0.0;
    r->lesions[0].prior.max_distance_mm = 4.0;
    r->lesions[0].prior.max_attempts = 20;
    r->lesions[0].prior.diameter_mm = d_fixed(30.0);
    names(r->lesions[0].prior.allowed, &r->lesions[0].prior.n_allowed, "deep_grey", NULL, NULL);
    tu_log_capture();
    assert_int_equal(sample(r, map, 1, 0, &set), RSY_EPLACEMENT);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "periventricular"));
    assert_non_null(strstr(tu_last_error(), "20 attempts"));
    assert_null(set.items);
    rsy_volume_destroy(map);
    free(r);
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
        cmocka_unit_test(test_edt_exact),
        cmocka_unit_test(test_flatness),
        cmocka_unit_test(test_roughness),
        cmocka_unit_test(test_lobes),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_cyst_wall),
        cmocka_unit_test(test_compartment_presence),
        cmocka_unit_test(test_rules_brain),
        cmocka_unit_test(test_rules_body),
        cmocka_unit_test(test_zone_weights),
        cmocka_unit_test(test_separation_rule),
        cmocka_unit_test(test_size_redraw),
        cmocka_unit_test(test_rule_failure),
    };
    return cmocka_run_group_tests_name("priors_model", tests, group_setup, NULL);
}
