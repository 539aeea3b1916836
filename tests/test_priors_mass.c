/*
 * test_priors_mass.c: cmocka tests of the mass effect of priors/ (mass_effect.c): the
 * Jacobian of the push, topology of the deformed anatomy (a synthetic head and real head
 * phantoms), consistency of rsy_lesions_sample + rasterise with rsy_lesions_sample_deform,
 * and determinism of a case with every feature of the lesion model on. Fixtures in
 * tests/priors_fixtures.h; fixed seeds.
 */
#include "priors_fixtures.h"

/* ---------------------------------------------------------------------------------------- */
/* Mass effect                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void prior_mass(rsy_prior *p, double strength_lo, double strength_hi, double range_mm)
{
    prior_init(p, "mass", d_uniform(16.0, 30.0));
    p->count = d_fixed(2);
    p->elongation = d_uniform(1.0, 1.5);
    p->lobulation_lmax = 4;
    p->lobulation_amplitude = 0.1;
    p->roughness_amplitude = 0.03;
    p->min_separation_mm = 4.0;
    p->mass_effect.enabled = 1;
    p->mass_effect.strength = d_uniform(strength_lo, strength_hi);
    p->mass_effect.range_mm = range_mm;
    names(p->mass_effect.fixed, &p->mass_effect.n_fixed, "skull", NULL, NULL);
    add_comp(p, "core", RSY_EXTENT_RADIUS_FRACTION, d_fixed(0.5), NULL);
    add_comp(p, "rim", RSY_EXTENT_RADIUS_FRACTION, d_fixed(1.0), NULL);
}

/* The backward map of a push: its finite-difference Jacobian determinant (central differences
 * over neighbouring voxel centres) is > 0 at every voxel of the push's box, for strengths up
 * to 0.8, lesions deep and against the skull; skull voxels map to themselves and no other
 * voxel's source rounds to a skull voxel; far from bone the largest displacement is s a (a the
 * longest semi-axis) within s times half a voxel diagonal (voxel centres sample the surface). */
static void test_mass_jacobian(void **state)
{
    (void)state;
    rsy_volume *map = head_map(64, 2.0);
    rsy_prior p;
    prior_mass(&p, 0.2, 0.2, 8.0);
    rsy__prior_tissues tis;
    assert_int_equal(rsy__priors_tissues_build("head", &p, &tis), RSY_OK);
    const double centres[4][3] = {{0, 0, 0}, {-20, 10, 5}, {25, 20, 0}, {0, -10, 34}};
    const double strengths[4] = {0.2, 0.5, 0.8, 0.4}, ranges[4] = {8.0, 4.0, 12.0, 6.0};
    const double sp = 2.0, h = 0.5 * sqrt(3.0) * sp;
    rsy_rng *g = rng_new(501, 0);
    for (int t = 0; t < 4; t++) {
        rsy_lesion l;
        memset(&l, 0, sizeof l);
        p.mass_effect.range_mm = ranges[t];
        rsy__priors_shape_draw(&p, 20.0, 1.3, 1.0, g, &l);
        memcpy(l.center_mm, centres[t], sizeof l.center_mm);
        memcpy(l.mass_center_mm, centres[t], sizeof l.mass_center_mm);
        l.mass_effect = 1;
        l.mass_strength = strengths[t];
        l.instance_id = 1;
        rsy__box b;
        double *src = NULL;
        assert_int_equal(rsy__mass_effect_map(&p, &tis, &l, map, &b, &src), RSY_OK);
        const int64_t nx = rsy__box_n(&b, 0), ny = rsy__box_n(&b, 1), nz = rsy__box_n(&b, 2);
        assert_true(nx > 2 && ny > 2 && nz > 2);
        double mmax = 0.0;
        size_t n_moved = 0;
        for (int64_t k = 0; k < nz; k++)
            for (int64_t j = 0; j < ny; j++)
                for (int64_t i = 0; i < nx; i++) {
                    const size_t q = (size_t)((k * ny + j) * nx + i);
                    double x[3];
                    world_of(map, b.lo[0] + i, b.lo[1] + j, b.lo[2] + k, x);
                    const double *s = src + 3 * q;
                    const double m =
                        sqrt((s[0] - x[0]) * (s[0] - x[0]) + (s[1] - x[1]) * (s[1] - x[1]) +
                             (s[2] - x[2]) * (s[2] - x[2]));
                    mmax = fmax(mmax, m);
                    n_moved += m > 0.0;
                    const uint16_t c = at(map, b.lo[0] + i, b.lo[1] + j, b.lo[2] + k);
                    if (c == RSY_HEAD_SKULL) {
                        assert_true(m == 0.0);
                    } else if (m > 0.0) {
                        int64_t v[3];
                        nearest_voxel(map, s, v);
                        assert_true(at(map, v[0], v[1], v[2]) != RSY_HEAD_SKULL);
                    }
                    if (i == 0 || j == 0 || k == 0 || i == nx - 1 || j == ny - 1 || k == nz - 1)
                        continue;
                    double J[3][3];
                    const size_t st[3] = {1, (size_t)nx, (size_t)(nx * ny)};
                    for (int a = 0; a < 3; a++)
                        for (int r = 0; r < 3; r++)
                            J[r][a] =
                                (src[3 * (q + st[a]) + r] - src[3 * (q - st[a]) + r]) / (2 * sp);
                    const double det = J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1]) -
                                       J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0]) +
                                       J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0]);
                    assert_true(det > 0.0);
                }
        assert_true(n_moved > 0);
        if (t < 2) { /* deep: the cap never binds */
            const double rmax = fmax(l.semi_axes_mm[0], fmax(l.semi_axes_mm[1], l.semi_axes_mm[2]));
            assert_true(mmax <= strengths[t] * rmax + 1e-9);
            assert_true(mmax >= strengths[t] * (rmax - h) - 1e-9);
        }
        free(src);
    }
    rsy_rng_destroy(g);
    rsy_volume_destroy(map);
}

static void tissue_components(const rsy_volume *m, size_t min_size, int out[RSY_HEAD_N_CLASSES])
{
    for (int c = 0; c < RSY_HEAD_N_CLASSES; c++)
        out[c] = components_min(m, (uint16_t)c, min_size);
}

/* Push two lesions (strength 0.2-0.5) into @p head with rsy_lesions_sample_deform and check
 * the 26-connected components of every tissue with >= @p min_size voxels: same count before
 * and after; the skull unchanged voxel for voxel; something moved. */
static void check_topology(const rsy_recipe *r, const rsy_volume *head, size_t min_size,
                           uint64_t case_index)
{
    int before[RSY_HEAD_N_CLASSES], after[RSY_HEAD_N_CLASSES];
    tissue_components(head, min_size, before);
    rsy_volume *def = clone_of(head);
    rsy_rng *g = rng_new(78, case_index);
    rsy_lesion_set set = {0, NULL};
    assert_int_equal(rsy_lesions_sample_deform(r, "head", def, g, &set), RSY_OK);
    rsy_rng_destroy(g);
    assert_int_equal(set.n, 2);
    for (int i = 0; i < set.n; i++) {
        assert_true(set.items[i].mass_effect && set.items[i].mass_applied);
        assert_true(set.items[i].mass_max_mm > 0.0);
    }
    tissue_components(def, min_size, after);
    for (int t = 0; t < RSY_HEAD_N_CLASSES; t++) {
        if (before[t] != after[t] && getenv("RSY_TEST_VERBOSE"))
            fprintf(stderr, "case %d class %d: %d -> %d components\n", (int)case_index, t,
                    before[t], after[t]);
        assert_int_equal(before[t], after[t]);
    }
    const uint16_t *a = head->data, *b = def->data;
    size_t changed = 0;
    for (size_t q = 0; q < rsy_geometry_nvox(&head->geom); q++) {
        assert_int_equal(a[q] == RSY_HEAD_SKULL, b[q] == RSY_HEAD_SKULL);
        changed += a[q] != b[q];
    }
    assert_true(changed > 0);
    rsy_lesion_set_clear(&set);
    rsy_volume_destroy(def);
}

/* 26-connected component labels (1..n, per class) of every voxel of @p m; sizes[label]. */
static int32_t *label_components(const rsy_volume *m, int32_t *n_out, size_t **sizes_out)
{
    const int64_t *d = m->geom.dims;
    const size_t n = rsy_geometry_nvox(&m->geom);
    int32_t *lab = calloc(n, sizeof *lab);
    size_t *stack = malloc(n * sizeof *stack), *sizes = calloc(n + 1, sizeof *sizes);
    assert_true(lab && stack && sizes);
    const uint16_t *v = m->data;
    int32_t count = 0;
    for (size_t s0 = 0; s0 < n; s0++) {
        if (lab[s0])
            continue;
        const uint16_t c = v[s0];
        lab[s0] = ++count;
        size_t top = 0;
        stack[top++] = s0;
        while (top > 0) {
            const size_t q = stack[--top];
            sizes[count]++;
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
                        if (v[r] == c && !lab[r]) {
                            lab[r] = count;
                            stack[top++] = r;
                        }
                    }
        }
    }
    free(stack);
    *n_out = count;
    *sizes_out = sizes;
    return lab;
}

/* One push (the first lesion of a sampled case) on a real head phantom, followed component by
 * component through the voxels the warp copied. At 3.5 mm the phantom's thin sulcal CSF and
 * gyral white matter sample into 20-300 fragments of 1-3 voxels and 1-voxel-thin strands,
 * which a compressive map resampled at voxel centres cannot keep one by one (as a real mass
 * effaces sulci): so the check is at the scale of the anatomy. No component of >= 4 voxels
 * vanishes; where deformed voxels of two original components join, all but the largest
 * original are voxel-scale (<= 16 voxels, 0.7 mL); pieces of a component cut off from its
 * main image are voxel-scale (<= 16 voxels). Returns the number of such voxel-scale events
 * (the exact topology is checked on the synthetic head, check_topology). */
static int check_identity(const rsy_recipe *r, const rsy_volume *head, uint64_t case_index)
{
    rsy_lesion_set set = {0, NULL};
    assert_int_equal(sample(r, head, 79, case_index, &set), RSY_OK);
    rsy_lesion *l = &set.items[0];
    assert_true(l->mass_effect);
    rsy__prior_tissues tis;
    const rsy_prior *p = &r->lesions[0].prior;
    assert_int_equal(rsy__priors_tissues_build("head", p, &tis), RSY_OK);
    rsy__box box;
    assert_int_equal(rsy__mass_effect_region(p, &tis, l, &head->geom, &box), RSY_OK);
    const size_t nb = rsy__box_nvox(&box);
    uint16_t *buf = malloc(nb * sizeof *buf);
    int64_t *src = malloc(nb * sizeof *src);
    assert_true(buf && src);
    rsy__box_read(head, &box, buf);
    double mmax;
    assert_int_equal(
        rsy__mass_effect_warp(p, &tis, l, &head->geom, &box, buf, NULL, NULL, 0, &mmax, src),
        RSY_OK);
    assert_true(mmax > 1.0);
    rsy_volume *def = clone_of(head);
    rsy__box_write(def, &box, buf);
    int32_t n0, n1;
    size_t *size0, *size1;
    int32_t *l0 = label_components(head, &n0, &size0), *l1 = label_components(def, &n1, &size1);
    /* count[a][b]: voxels of original component a that end in deformed component b, kept
     * sparse as (a, b) pairs: the main image of a is its largest b */
    int32_t *main_b = calloc((size_t)n0 + 1, sizeof *main_b);
    size_t *main_n = calloc((size_t)n0 + 1, sizeof *main_n);
    int32_t *pair_a = malloc(rsy_geometry_nvox(&head->geom) * sizeof *pair_a);
    assert_true(main_b && main_n && pair_a);
    const int64_t bx = rsy__box_n(&box, 0), by = rsy__box_n(&box, 1);
    for (size_t v = 0; v < rsy_geometry_nvox(&head->geom); v++) {
        const int64_t i = (int64_t)(v % (size_t)head->geom.dims[0]),
                      j = (int64_t)((v / (size_t)head->geom.dims[0]) % (size_t)head->geom.dims[1]),
                      k = (int64_t)(v / (size_t)(head->geom.dims[0] * head->geom.dims[1]));
        size_t s = v;
        if (i >= box.lo[0] && i <= box.hi[0] && j >= box.lo[1] && j <= box.hi[1] &&
            k >= box.lo[2] && k <= box.hi[2]) {
            const int64_t q = src[((k - box.lo[2]) * by + (j - box.lo[1])) * bx + (i - box.lo[0])];
            s = idx(head, box.lo[0] + q % bx, box.lo[1] + (q / bx) % by, box.lo[2] + q / (bx * by));
        }
        assert_int_equal(((uint16_t *)def->data)[v], ((uint16_t *)head->data)[s]);
        pair_a[v] = l0[s];
    }
    /* per deformed component: the original components feeding it (voxel counts) */
    int fragments = 0;
    size_t *feed = calloc((size_t)n0 + 1, sizeof *feed);
    int32_t *touched = malloc(((size_t)n0 + 1) * sizeof *touched);
    assert_true(feed && touched);
    /* group voxels by deformed component through a counting sort */
    size_t *start = calloc((size_t)n1 + 2, sizeof *start), *order;
    order = malloc(rsy_geometry_nvox(&head->geom) * sizeof *order);
    assert_true(start && order);
    for (size_t v = 0; v < rsy_geometry_nvox(&head->geom); v++)
        start[l1[v] + 1]++;
    for (int32_t b = 1; b <= n1 + 1; b++)
        start[b] += start[b - 1];
    for (size_t v = 0; v < rsy_geometry_nvox(&head->geom); v++)
        order[start[l1[v]]++] = v;
    for (int32_t b = n1; b >= 1; b--)
        start[b] = start[b - 1];
    start[0] = 0;
    for (int32_t b = 1; b <= n1; b++) {
        int nt = 0;
        for (size_t q = start[b]; q < start[b + 1]; q++) {
            const int32_t a = pair_a[order[q]];
            if (!feed[a]++)
                touched[nt++] = a;
        }
        /* merged: every feeding component but the largest is voxel-scale */
        int32_t big = touched[0];
        for (int t = 1; t < nt; t++)
            big = size0[touched[t]] > size0[big] ? touched[t] : big;
        for (int t = 0; t < nt; t++) {
            const int32_t a = touched[t];
            if (a != big) {
                assert_true(size0[a] <= 16);
                fragments++;
            }
            if (feed[a] > main_n[a]) {
                main_n[a] = feed[a];
                main_b[a] = b;
            }
        }
        for (int t = 0; t < nt; t++)
            feed[touched[t]] = 0;
    }
    /* split: the pieces of an original component outside its main image are voxel-scale */
    for (int32_t b = 1; b <= n1; b++)
        for (size_t q = start[b]; q < start[b + 1]; q++) {
            const int32_t a = pair_a[order[q]];
            if (main_b[a] != b) {
                assert_true(size1[b] <= 16);
                fragments++;
                break;
            }
        }
    /* vanished: only fragments */
    for (int32_t a = 1; a <= n0; a++)
        if (!main_b[a]) {
            assert_true(size0[a] < 4);
            fragments++;
        }
    free(start);
    free(order);
    free(feed);
    free(touched);
    free(main_b);
    free(main_n);
    free(pair_a);

    free(l0);
    free(l1);
    free(size0);
    free(size1);
    free(buf);
    free(src);
    rsy_volume_destroy(def);
    rsy_lesion_set_clear(&set);
    return fragments;
}

/* Topology of the mass effect. On the synthetic head (smooth tissues, 2 mm voxels), two pushes
 * per case keep every tissue's exact count of 26-connected components, over 6 cases. On real
 * head phantoms (64^3 at 3.5 mm) one push per case is followed component by component
 * (check_identity), over 6 cases. */
static void test_mass_topology(void **state)
{
    (void)state;
    rsy_prior p;
    prior_mass(&p, 0.2, 0.5, 8.0);
    p.diameter_mm = d_uniform(20.0, 40.0);
    rsy_recipe *r = recipe_of("head", &p);
    rsy_volume *synth = head_map(64, 2.0);
    for (int c = 0; c < 6; c++)
        check_topology(r, synth, 1, (uint64_t)c);
    rsy_volume_destroy(synth);

    rsy_phantom_spec spec;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.family, sizeof spec.family, "head");
    for (int a = 0; a < 3; a++) {
        spec.dims[a] = 64;
        spec.spacing_mm[a] = 3.5;
    }
    spec.sex = RSY_SEX_RANDOM;
    spec.female_fraction = 0.5;
    spec.age_min_years = 40.0;
    spec.age_max_years = 70.0;
    spec.deformation_mm = 2.0;
    spec.deformation_scale_mm = 40.0;
    r->lesions[0].prior.count = d_fixed(1);
    int fragments = 0;
    for (int c = 0; c < 6; c++) {
        rsy_rng *rs = NULL, *rp = NULL;
        assert_int_equal(rsy_rng_create_stream(&rs, 77, (uint64_t)c, RSY_STAGE_SUBJECT), RSY_OK);
        assert_int_equal(rsy_rng_create_stream(&rp, 77, (uint64_t)c, RSY_STAGE_PHANTOM), RSY_OK);
        rsy_volume *head = NULL;
        rsy_subject subj;
        assert_int_equal(rsy_phantom_generate(&spec, rs, rp, &head, &subj), RSY_OK);
        rsy_rng_destroy(rs);
        rsy_rng_destroy(rp);
        fragments += check_identity(r, head, (uint64_t)c);
        rsy_volume_destroy(head);
    }
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "mass topology: %d voxel-scale events\n", fragments);
    free(r);
}

/* rsy_lesions_sample + rsy_lesions_rasterise (push replayed) and rsy_lesions_sample_deform +
 * rsy_lesions_rasterise give the same lesions and the same class and instance maps; the first
 * lesion's centre is moved outward by the second's push; the last lesion's anchor is a host of
 * the deformed map (it was placed in it); the same seed gives the same case. */
static void test_mass_consistency(void **state)
{
    (void)state;
    rsy_volume *map = head_map(64, 2.0);
    rsy_prior p;
    prior_mass(&p, 0.3, 0.5, 8.0);
    rsy_recipe *r = recipe_of("head", &p);
    for (int c = 0; c < 4; c++) {
        rsy_lesion_set a = {0, NULL}, b = {0, NULL}, a2 = {0, NULL};
        assert_int_equal(sample(r, map, 601, (uint64_t)c, &a), RSY_OK);
        assert_int_equal(sample(r, map, 601, (uint64_t)c, &a2), RSY_OK);
        lesions_equal(&a, &a2);
        rsy_volume *cb = clone_of(map), *ib = zero_like(map);
        rsy_rng *g = rng_new(601, (uint64_t)c);
        assert_int_equal(rsy_lesions_sample_deform(r, "head", cb, g, &b), RSY_OK);
        rsy_rng_destroy(g);
        assert_int_equal(a.n, 2);
        assert_int_equal(b.n, 2);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(a.items[i].mass_applied, 0);
            assert_int_equal(b.items[i].mass_applied, 1);
            b.items[i].mass_applied = 0;
        }
        lesions_equal(&a, &b);
        for (int i = 0; i < 2; i++)
            b.items[i].mass_applied = 1;
        /* the last lesion was placed in the deformed anatomy */
        int64_t v[3];
        nearest_voxel(cb, b.items[1].anchor_mm, v);
        assert_int_equal(at(cb, v[0], v[1], v[2]), RSY_HEAD_WHITE_MATTER);
        /* lesion 1 moved away from lesion 2's push centre */
        const rsy_lesion *l1 = &a.items[0], *l2 = &a.items[1];
        double d_before = 0.0, d_after = 0.0;
        for (int k = 0; k < 3; k++) {
            d_before += (l1->mass_center_mm[k] - l2->mass_center_mm[k]) *
                        (l1->mass_center_mm[k] - l2->mass_center_mm[k]);
            d_after += (l1->center_mm[k] - l2->mass_center_mm[k]) *
                       (l1->center_mm[k] - l2->mass_center_mm[k]);
        }
        assert_true(d_after >= d_before);
        rsy_volume *ca, *ia;
        rasterise(r, &a, map, &ca, &ia);
        assert_int_equal(rsy_lesions_rasterise(r, "head", &b, cb, ib), RSY_OK);
        assert_memory_equal(ca->data, cb->data, rsy_volume_nbytes(map));
        assert_memory_equal(ia->data, ib->data, rsy_volume_nbytes(map));
        rsy_volume *ca2, *ia2;
        rasterise(r, &a2, map, &ca2, &ia2);
        assert_memory_equal(ca->data, ca2->data, rsy_volume_nbytes(map));
        rsy_volume *vols[6] = {ca, ia, cb, ib, ca2, ia2};
        for (int q = 0; q < 6; q++)
            rsy_volume_destroy(vols[q]);
        rsy_lesion_set_clear(&a);
        rsy_lesion_set_clear(&a2);
        rsy_lesion_set_clear(&b);
    }
    rsy_volume_destroy(map);
    free(r);
}

/* Determinism with every feature on (flatness, roughness, lobes, wall, inclusions, network,
 * a distance rule with orientation, mass effect): same seed, same records and maps; another
 * case index, another case. */
static void test_determinism_model(void **state)
{
    (void)state;
    rsy_volume *map = head_map(64, 2.0);
    rsy_recipe *r = calloc(1, sizeof *r);
    assert_non_null(r);
    snprintf(r->phantom.family, sizeof r->phantom.family, "head");
    r->n_lesion_types = 2;
    r->lesions[0].probability = r->lesions[1].probability = 1.0;
    rsy_prior *a = &r->lesions[0].prior, *b = &r->lesions[1].prior;
    prior_mass(a, 0.2, 0.4, 6.0);
    a->count = d_fixed(1);
    a->lobes = d_uniform(1.0, 3.0);
    a->flatness = d_uniform(1.0, 1.4);
    a->compartments[0].extent_kind = RSY_EXTENT_WALL_MM;
    a->compartments[0].extent = d_fixed(1.0);
    const int fat = add_comp(a, "fat", RSY_EXTENT_INCLUSIONS, d_fixed(0.2), "rim");
    a->compartments[fat].inclusion_diameter_mm = d_uniform(2.0, 3.0);
    const int net = add_comp(a, "net", RSY_EXTENT_NETWORK, d_fixed(1.0), "rim");
    a->compartments[net].cell_mm = d_uniform(4.0, 6.0);
    prior_rule(b, "plaques", RSY_PLACE_PERIVENTRICULAR, 0.0, 8.0);
    names(b->reference, &b->n_reference, "ventricles", NULL, NULL);
    b->orientation = RSY_ORIENT_RADIAL;
    rsy_lesion_set s[3] = {{0, NULL}, {0, NULL}, {0, NULL}};
    rsy_volume *c[3], *in[3];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sample(r, map, 701, k < 2 ? 5 : 6, &s[k]), RSY_OK);
        rasterise(r, &s[k], map, &c[k], &in[k]);
    }
    lesions_equal(&s[0], &s[1]);
    assert_memory_equal(c[0]->data, c[1]->data, rsy_volume_nbytes(map));
    assert_memory_equal(in[0]->data, in[1]->data, rsy_volume_nbytes(map));
    assert_true(memcmp(c[0]->data, c[2]->data, rsy_volume_nbytes(map)) != 0);
    size_t n_fat = 0, n_net = 0;
    for (size_t q = 0; q < rsy_geometry_nvox(&map->geom); q++) {
        n_fat += ((uint16_t *)c[0]->data)[q] == RSY_HEAD_N_CLASSES + fat;
        n_net += ((uint16_t *)c[0]->data)[q] == RSY_HEAD_N_CLASSES + net;
    }
    assert_true(n_fat > 0 && n_net > 0);
    for (int k = 0; k < 3; k++) {
        rsy_volume_destroy(c[k]);
        rsy_volume_destroy(in[k]);
        rsy_lesion_set_clear(&s[k]);
    }
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
        cmocka_unit_test(test_mass_jacobian),
        cmocka_unit_test(test_mass_topology),
        cmocka_unit_test(test_mass_consistency),
        cmocka_unit_test(test_determinism_model),
    };
    return cmocka_run_group_tests_name("priors_mass", tests, group_setup, NULL);
}
