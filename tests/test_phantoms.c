/*
 * test_phantoms.c: the procedural head phantom (cmocka group "phantoms").
 *
 * Volumes are checked against adult reference ranges (shared/reference/domain.md 5.4):
 * intracranial volume M 1469 +- 102, F 1289 +- 111 cm^3 [S117]; total ventricular volume
 * mean 17.4 cm^3 (M 16.3, F 18.0) in 38 adults, growing with age [S118]. All grids are 64^3
 * at 3.5 mm (224 mm field of view, which holds a whole adult head).
 */
#include "test_util.h"

#include <math.h>

#include "phantoms_internal.h"
#include "rsy_phantoms.h"

#define N_SUBJECTS 20
#define DATASET_SEED 20261122u

static rsy_phantom_spec default_spec(void)
{
    rsy_phantom_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.family, sizeof s.family, "head");
    for (int a = 0; a < 3; a++) {
        s.dims[a] = 64;
        s.spacing_mm[a] = 3.5;
    }
    s.sex = RSY_SEX_RANDOM;
    s.female_fraction = 0.5;
    s.age_min_years = 20.0;
    s.age_max_years = 80.0;
    s.deformation_mm = 2.0;
    s.deformation_scale_mm = 40.0;
    return s;
}

/* Generate case @p case_index of DATASET_SEED (or of @p seed) with the standard streams. */
static rsy_status make_subject(const rsy_phantom_spec *spec, uint64_t seed, uint64_t case_index,
                               rsy_volume **vol, rsy_subject *subj, rsy__deform **def)
{
    rsy_rng *rs = NULL, *rp = NULL;
    rsy_status rc = rsy_rng_create_stream(&rs, seed, case_index, RSY_STAGE_SUBJECT);
    if (rc == RSY_OK)
        rc = rsy_rng_create_stream(&rp, seed, case_index, RSY_STAGE_PHANTOM);
    if (rc == RSY_OK)
        rc = rsy__head_generate_ex(spec, rs, rp, vol, subj, def);
    rsy_rng_destroy(rs);
    rsy_rng_destroy(rp);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    tu_log_capture();
    return 0;
}

static void test_class_tables(void **state)
{
    (void)state;
    static const char *names[] = {"background",  "scalp",        "skull",      "csf",
                                  "grey_matter", "white_matter", "ventricles", "deep_grey",
                                  "cerebellum",  "brainstem"};
    assert_int_equal(rsy_phantom_n_classes("head"), RSY_HEAD_N_CLASSES);
    assert_int_equal(RSY_HEAD_N_CLASSES, 10);
    for (int i = 0; i < RSY_HEAD_N_CLASSES; i++) {
        assert_string_equal(rsy_phantom_class_name("head", i), names[i]);
        assert_int_equal(rsy_phantom_class_id("head", names[i]), i);
    }
    assert_null(rsy_phantom_class_name("head", -1));
    assert_null(rsy_phantom_class_name("head", RSY_HEAD_N_CLASSES));
    assert_int_equal(rsy_phantom_class_id("head", "liver"), -1);
    assert_int_equal(rsy_phantom_n_classes("pelvis"), 0);
    assert_null(rsy_phantom_class_name("pelvis", 0));
    assert_int_equal(rsy_phantom_class_id("pelvis", "csf"), -1);
    assert_int_equal(rsy_phantom_n_classes(NULL), 0);
}

/* 1 if a voxel of class @p a has a 6-neighbour of class @p b. */
static int classes_touch(const rsy_volume *v, uint16_t a, uint16_t b)
{
    const uint16_t *l = v->data;
    int64_t nx = v->geom.dims[0], ny = v->geom.dims[1], nz = v->geom.dims[2];
    for (int64_t k = 1; k + 1 < nz; k++)
        for (int64_t j = 1; j + 1 < ny; j++)
            for (int64_t i = 1; i + 1 < nx; i++) {
                size_t q = (size_t)((k * ny + j) * nx + i);
                if (l[q] != a)
                    continue;
                size_t sx = 1, sy = (size_t)nx, sz = (size_t)(nx * ny);
                if (l[q - sx] == b || l[q + sx] == b || l[q - sy] == b || l[q + sy] == b ||
                    l[q - sz] == b || l[q + sz] == b)
                    return 1;
            }
    return 0;
}

/*
 * Twenty default subjects (random sex, ages 20-80):
 * - intracranial volume within mean +- 3 SD of its sex [S117] (the draw is truncated at
 *   +-2 SD; the extra SD covers voxelisation at 3.5 mm and the deformation);
 * - ventricular volume in 7-45 cm^3: [S118] reports a mean of 17.4 cm^3; the model's age
 *   factor (x0.64 at 20 y to x1.57 at 80 y, GK), head size and individual factor span about
 *   0.4-2.3 times the mean, which this range contains;
 * - CSF (everything intracranial that is not brain) about 11.4% of ICV [S117]: the mean
 *   over the subjects within 7-17% (the model thickens the CSF with age, GK);
 * - every class present; brain never touches background; ventricles never touch skull,
 *   scalp or background; brain voxels left and right of the brain centre within 8%.
 */
static void test_population(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec();
    int n_female = 0;
    double csf_fraction_sum = 0.0;
    for (uint64_t c = 0; c < N_SUBJECTS; c++) {
        rsy_volume *v = NULL;
        rsy_subject s;
        assert_int_equal(make_subject(&spec, DATASET_SEED, c, &v, &s, NULL), RSY_OK);
        assert_true(s.sex == RSY_SEX_FEMALE || s.sex == RSY_SEX_MALE);
        n_female += s.sex == RSY_SEX_FEMALE;
        assert_true(s.age_years >= 20.0 && s.age_years <= 80.0);
        double mean = s.sex == RSY_SEX_MALE ? 1469.0 : 1289.0;
        double sd = s.sex == RSY_SEX_MALE ? 102.0 : 111.0;
        assert_true(s.intracranial_ml > mean - 3.0 * sd && s.intracranial_ml < mean + 3.0 * sd);
        assert_true(s.ventricles_ml > 7.0 && s.ventricles_ml < 45.0);
        assert_true(s.brain_ml > 0.7 * s.intracranial_ml && s.brain_ml < s.intracranial_ml);
        csf_fraction_sum += 1.0 - s.brain_ml / s.intracranial_ml;

        size_t counts[RSY_HEAD_N_CLASSES] = {0};
        const uint16_t *l = v->data;
        size_t nv = rsy_geometry_nvox(&v->geom);
        double vox_x[2] = {0.0, 0.0};
        for (size_t q = 0; q < nv; q++) {
            assert_true(l[q] < RSY_HEAD_N_CLASSES);
            counts[l[q]]++;
        }
        for (int cl = 0; cl < RSY_HEAD_N_CLASSES; cl++)
            assert_true(counts[cl] > 0);
        assert_false(classes_touch(v, RSY_HEAD_GREY_MATTER, RSY_HEAD_BACKGROUND));
        assert_false(classes_touch(v, RSY_HEAD_WHITE_MATTER, RSY_HEAD_BACKGROUND));
        assert_false(classes_touch(v, RSY_HEAD_CEREBELLUM, RSY_HEAD_BACKGROUND));
        assert_false(classes_touch(v, RSY_HEAD_BRAINSTEM, RSY_HEAD_BACKGROUND));
        assert_false(classes_touch(v, RSY_HEAD_CSF, RSY_HEAD_BACKGROUND));
        assert_false(classes_touch(v, RSY_HEAD_VENTRICLES, RSY_HEAD_SKULL));
        assert_false(classes_touch(v, RSY_HEAD_VENTRICLES, RSY_HEAD_SCALP));
        assert_false(classes_touch(v, RSY_HEAD_VENTRICLES, RSY_HEAD_BACKGROUND));
        assert_false(classes_touch(v, RSY_HEAD_GREY_MATTER, RSY_HEAD_SCALP));

        /* Left/right symmetry of the cerebral hemispheres (GM + WM + deep grey), split at
         * their centroid (the deformation shifts the brain by about a millimetre, which alone
         * moves several percent across a fixed plane). */
        double sum_x = 0.0, n_cer = 0.0;
        for (int pass = 0; pass < 2; pass++) {
            size_t idx = 0;
            double split = pass == 1 ? sum_x / n_cer : 0.0;
            for (int64_t k = 0; k < v->geom.dims[2]; k++)
                for (int64_t j = 0; j < v->geom.dims[1]; j++)
                    for (int64_t i = 0; i < v->geom.dims[0]; i++, idx++) {
                        uint16_t cl = l[idx];
                        if (cl != RSY_HEAD_GREY_MATTER && cl != RSY_HEAD_WHITE_MATTER &&
                            cl != RSY_HEAD_DEEP_GREY)
                            continue;
                        double ijk[3] = {(double)i, (double)j, (double)k}, w[3];
                        rsy_geometry_voxel_to_world(&v->geom, ijk, w);
                        if (pass == 0) {
                            sum_x += w[0];
                            n_cer += 1.0;
                        } else {
                            vox_x[w[0] > split ? 0 : 1] += 1.0;
                        }
                    }
        }
        /* The centroid lies within 3 mm of the brain centre, and the halves agree within
         * 10%: the random sulcal pattern and the deformation's local volume change (Jacobian
         * about 1 +- 0.05 on the 40-mm correlation length, averaged over a few correlation
         * volumes per hemisphere) make real but mild asymmetries. */
        assert_true(fabs(sum_x / n_cer - s.brain_center_mm[0]) < 3.0);
        assert_true(fabs(vox_x[0] - vox_x[1]) < 0.10 * 0.5 * (vox_x[0] + vox_x[1]));
        rsy_volume_destroy(v);
    }
    /* female_fraction 0.5 over 20 subjects: both sexes present (P(fail) = 2^-19). */
    assert_true(n_female > 0 && n_female < N_SUBJECTS);
    double csf_mean = csf_fraction_sum / N_SUBJECTS;
    assert_true(csf_mean > 0.07 && csf_mean < 0.17);
}

/* Chamfer distance (mm, 3x3x3 two-pass, within 8% of Euclidean) from every voxel to the
 * nearest voxel of a class in @p mask_classes (bit set); caller frees the result. */
static double *chamfer_distance(const rsy_volume *v, unsigned mask_classes)
{
    const uint16_t *l = v->data;
    int64_t nx = v->geom.dims[0], ny = v->geom.dims[1], nz = v->geom.dims[2];
    size_t nv = rsy_geometry_nvox(&v->geom);
    double h = v->geom.spacing_mm[0];
    double *d = malloc(nv * sizeof *d);
    if (d == NULL)
        return NULL;
    for (size_t q = 0; q < nv; q++)
        d[q] = (mask_classes >> l[q]) & 1u ? 0.0 : 1e9;
    for (int pass = 0; pass < 2; pass++) {
        int64_t s = pass == 0 ? 1 : -1;
        for (int64_t kk = 0; kk < nz; kk++)
            for (int64_t jj = 0; jj < ny; jj++)
                for (int64_t ii = 0; ii < nx; ii++) {
                    int64_t k = pass == 0 ? kk : nz - 1 - kk, j = pass == 0 ? jj : ny - 1 - jj;
                    int64_t i = pass == 0 ? ii : nx - 1 - ii;
                    size_t q = (size_t)((k * ny + j) * nx + i);
                    for (int64_t dk = -1; dk <= 0; dk++)
                        for (int64_t dj = -1; dj <= 1; dj++)
                            for (int64_t di = -1; di <= 1; di++) {
                                if (dk == 0 && (dj > 0 || (dj == 0 && di >= 0)))
                                    continue;
                                int64_t a = i + s * di, b = j + s * dj, c = k + s * dk;
                                if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz)
                                    continue;
                                double w = h * sqrt((double)(di * di + dj * dj + dk * dk));
                                double cand = d[(size_t)((c * ny + b) * nx + a)] + w;
                                if (cand < d[q])
                                    d[q] = cand;
                            }
                }
    }
    return d;
}

/* Share of the ventricle voxels on one side (x beyond 2 mm of the brain centre) held by the
 * largest 6-connected component of that side. */
static double largest_component_share(const rsy_volume *v, double cx, int right)
{
    const uint16_t *l = v->data;
    int64_t nx = v->geom.dims[0], ny = v->geom.dims[1], nz = v->geom.dims[2];
    size_t nv = rsy_geometry_nvox(&v->geom);
    unsigned char *in = calloc(nv, 1);
    size_t *stack = malloc(nv * sizeof *stack);
    size_t total = 0, best = 0;
    assert_non_null(in);
    assert_non_null(stack);
    for (size_t q = 0; q < nv; q++) {
        if (l[q] != RSY_HEAD_VENTRICLES)
            continue;
        int64_t i = (int64_t)(q % (size_t)nx);
        double ijk[3] = {(double)i, 0.0, 0.0}, w[3];
        rsy_geometry_voxel_to_world(&v->geom, ijk, w);
        if (right ? w[0] > cx + 2.0 : w[0] < cx - 2.0) {
            in[q] = 1;
            total++;
        }
    }
    for (size_t q0 = 0; q0 < nv; q0++) {
        if (in[q0] != 1)
            continue;
        size_t n = 0, top = 0;
        stack[top++] = q0;
        in[q0] = 2;
        while (top > 0) {
            size_t q = stack[--top];
            n++;
            int64_t i = (int64_t)(q % (size_t)nx), j = (int64_t)(q / (size_t)nx % (size_t)ny);
            int64_t k = (int64_t)(q / (size_t)(nx * ny));
            const int64_t off[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0},
                                       {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
            for (int t = 0; t < 6; t++) {
                int64_t a = i + off[t][0], b = j + off[t][1], c = k + off[t][2];
                if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz)
                    continue;
                size_t r = (size_t)((c * ny + b) * nx + a);
                if (in[r] == 1) {
                    in[r] = 2;
                    stack[top++] = r;
                }
            }
        }
        if (n > best)
            best = n;
    }
    free(in);
    free(stack);
    return total > 0 ? (double)best / (double)total : 0.0;
}

/*
 * Cortex and ventricles at the demo's resolution (1.75 mm; a 64^3 grid holds the upper
 * 11 cm of the head, clipped at the sides, which is allowed with a warning):
 * - no sulcal CSF in the deep white matter: every CSF voxel above the brain centre + 10 mm
 *   and more than 8 mm off the midline (so not the interhemispheric or Sylvian fissure) lies
 *   within 40 mm of the skull. Sulci are cut at most 20 mm deep (medial ones within 26 mm of
 *   the convexity); 40 mm covers that times the largest head scale (1.15), the CSF layer, the
 *   deformation (2 x 2 mm), a voxel and the chamfer error (8%). The periventricular white
 *   matter lies 45 mm or more from the skull;
 * - a continuous cortical ribbon: of the white-matter voxels on the white matter's boundary,
 *   at most 8% touch CSF, skull, scalp or background (elsewhere grey matter, deep grey,
 *   ventricles, cerebellum or brainstem cover the white matter). The corpus callosum under
 *   the interhemispheric fissure touches CSF by design, and 1.75-mm sampling of a 2.5-3 mm
 *   ribbon leaves a few diagonal contacts;
 * - at least 90% of the grey-matter voxels lie within 8 mm of non-brain (CSF, skull, scalp,
 *   background): the grey matter is a shell, not scattered through the white matter;
 * - each lateral ventricle is one piece: its largest 6-connected component holds >= 90% of
 *   its voxels (the thin temporal horn tip may be cut by voxelisation).
 */
static void test_cortex_and_ventricles(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec();
    for (int a = 0; a < 3; a++)
        spec.spacing_mm[a] = 1.75;
    for (uint64_t c = 0; c < 3; c++) {
        rsy_volume *v = NULL;
        rsy_subject s;
        spec.age_min_years = spec.age_max_years = 30.0 + 25.0 * (double)c;
        assert_int_equal(make_subject(&spec, DATASET_SEED, c, &v, &s, NULL), RSY_OK);
        const uint16_t *l = v->data;
        int64_t nx = v->geom.dims[0], ny = v->geom.dims[1], nz = v->geom.dims[2];
        const unsigned outside = (1u << RSY_HEAD_BACKGROUND) | (1u << RSY_HEAD_SCALP) |
                                 (1u << RSY_HEAD_SKULL);
        double *d_skull = chamfer_distance(v, outside);
        double *d_nonbrain = chamfer_distance(v, outside | (1u << RSY_HEAD_CSF));
        assert_non_null(d_skull);
        assert_non_null(d_nonbrain);
        size_t n_wm_edge = 0, n_wm_bare = 0, n_gm = 0, n_gm_shell = 0, n_csf_checked = 0;
        double csf_depth_max = 0.0;
        for (int64_t k = 1; k + 1 < nz; k++)
            for (int64_t j = 1; j + 1 < ny; j++)
                for (int64_t i = 1; i + 1 < nx; i++) {
                    size_t q = (size_t)((k * ny + j) * nx + i);
                    double ijk[3] = {(double)i, (double)j, (double)k}, w[3];
                    rsy_geometry_voxel_to_world(&v->geom, ijk, w);
                    if (l[q] == RSY_HEAD_CSF && w[2] > s.brain_center_mm[2] + 10.0 &&
                        fabs(w[0] - s.brain_center_mm[0]) > 8.0) {
                        n_csf_checked++;
                        if (d_skull[q] > csf_depth_max)
                            csf_depth_max = d_skull[q];
                    }
                    if (l[q] == RSY_HEAD_GREY_MATTER) {
                        n_gm++;
                        n_gm_shell += d_nonbrain[q] <= 8.0;
                    }
                    if (l[q] != RSY_HEAD_WHITE_MATTER)
                        continue;
                    const size_t nb[6] = {q - 1, q + 1, q - (size_t)nx, q + (size_t)nx,
                                          q - (size_t)(nx * ny), q + (size_t)(nx * ny)};
                    int edge = 0, bare = 0;
                    for (int t = 0; t < 6; t++) {
                        uint16_t cl = l[nb[t]];
                        edge |= cl != RSY_HEAD_WHITE_MATTER;
                        bare |= cl == RSY_HEAD_CSF || ((outside >> cl) & 1u);
                    }
                    n_wm_edge += (size_t)edge;
                    n_wm_bare += (size_t)bare;
                }
        if (getenv("RSY_TEST_VERBOSE"))
            printf("csf depth max %.1f mm, bare WM %.3f, GM shell %.3f\n", csf_depth_max,
                   (double)n_wm_bare / (double)n_wm_edge, (double)n_gm_shell / (double)n_gm);
        assert_true(n_csf_checked > 100);
        assert_true(csf_depth_max < 40.0);
        assert_true(n_wm_edge > 0 && (double)n_wm_bare < 0.08 * (double)n_wm_edge);
        assert_true(n_gm > 0 && (double)n_gm_shell > 0.90 * (double)n_gm);
        assert_true(largest_component_share(v, s.brain_center_mm[0], 1) >= 0.90);
        assert_true(largest_component_share(v, s.brain_center_mm[0], 0) >= 0.90);
        free(d_skull);
        free(d_nonbrain);
        rsy_volume_destroy(v);
    }
}

/* Fixed sex and age: the ICV mean follows the sex, and ventricles are larger at 80 than 20. */
static void test_sex_and_age(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec();
    double icv[2] = {0.0, 0.0}, vent[2] = {0.0, 0.0};
    for (int g = 0; g < 2; g++) {
        spec.sex = g == 0 ? RSY_SEX_FEMALE : RSY_SEX_MALE;
        spec.age_min_years = spec.age_max_years = g == 0 ? 20.0 : 80.0;
        for (uint64_t c = 0; c < 6; c++) {
            rsy_volume *v = NULL;
            rsy_subject s;
            assert_int_equal(make_subject(&spec, 7, c, &v, &s, NULL), RSY_OK);
            assert_int_equal(s.sex, spec.sex);
            assert_true(fabs(s.age_years - spec.age_min_years) < 1e-12);
            icv[g] += s.intracranial_ml / 6.0;
            vent[g] += s.ventricles_ml / 6.0;
            rsy_volume_destroy(v);
        }
    }
    /* Means 1289 vs 1469 [S117]; 6 subjects each give SE about 45 cm^3. */
    assert_true(icv[1] - icv[0] > 60.0);
    assert_true(vent[1] > 1.5 * vent[0]);
}

static void test_determinism(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec();
    rsy_volume *a = NULL, *b = NULL, *c = NULL;
    rsy_subject sa, sb, sc;
    assert_int_equal(make_subject(&spec, 99, 3, &a, &sa, NULL), RSY_OK);
    assert_int_equal(make_subject(&spec, 99, 3, &b, &sb, NULL), RSY_OK);
    assert_int_equal(make_subject(&spec, 99, 4, &c, &sc, NULL), RSY_OK);
    assert_int_equal(rsy_volume_nbytes(a), rsy_volume_nbytes(b));
    assert_memory_equal(a->data, b->data, rsy_volume_nbytes(a));
    assert_memory_equal(&sa, &sb, sizeof sa);
    assert_true(memcmp(a->data, c->data, rsy_volume_nbytes(a)) != 0);
    rsy_volume_destroy(a);
    rsy_volume_destroy(b);
    rsy_volume_destroy(c);
}

/* The deformation: invertible (Jacobian determinant of the coarse field > 0 at every node),
 * RMS within 5% of the request, the identity when 0 is asked. */
static void test_deformation(void **state)
{
    (void)state;
    const double lo[3] = {-112.0, -112.0, -112.0}, hi[3] = {112.0, 112.0, 112.0};
    const double rms[] = {2.0, 5.0, 10.0};
    const double scale[] = {40.0, 25.0, 60.0};
    for (int t = 0; t < 3; t++) {
        rsy_rng *r = NULL;
        rsy__deform *d = NULL;
        assert_int_equal(rsy_rng_create(&r, 1000u + (uint64_t)t), RSY_OK);
        assert_int_equal(rsy__deform_create(&d, lo, hi, rms[t], scale[t], r), RSY_OK);
        assert_true(fabs(d->rms_mm - rms[t]) < 0.05 * rms[t]);
        assert_true(rsy__deform_min_jacobian(d) > 0.0);
        rsy__deform_destroy(d);
        rsy_rng_destroy(r);
    }
    rsy_rng *r = NULL;
    rsy__deform *d = NULL;
    assert_int_equal(rsy_rng_create(&r, 5), RSY_OK);
    assert_int_equal(rsy__deform_create(&d, lo, hi, 0.0, 40.0, r), RSY_OK);
    double x[3] = {10.0, -20.0, 30.0}, y[3];
    rsy__deform_apply(d, x, y);
    assert_memory_equal(x, y, sizeof x);
    assert_true(d->rms_mm == 0.0);
    rsy__deform_destroy(d);
    assert_int_equal(rsy__deform_create(&d, lo, hi, -1.0, 40.0, r), RSY_EINVAL);
    assert_null(d);
    rsy_rng_destroy(r);

    /* Through the generator: the achieved RMS is recorded in the subject. */
    rsy_phantom_spec spec = default_spec();
    spec.deformation_mm = 4.0;
    rsy_volume *v = NULL;
    rsy_subject s;
    assert_int_equal(make_subject(&spec, 11, 0, &v, &s, &d), RSY_OK);
    assert_non_null(d);
    assert_true(fabs(s.deformation_mm - 4.0) < 0.2);
    assert_true(s.deformation_mm == d->rms_mm);
    assert_true(rsy__deform_min_jacobian(d) > 0.0);
    rsy__deform_destroy(d);
    rsy_volume_destroy(v);
}

static void test_invalid_specs(void **state)
{
    (void)state;
    rsy_rng *r1 = NULL, *r2 = NULL;
    assert_int_equal(rsy_rng_create(&r1, 1), RSY_OK);
    assert_int_equal(rsy_rng_create(&r2, 2), RSY_OK);
    for (int t = 0; t < 9; t++) {
        rsy_phantom_spec s = default_spec();
        switch (t) {
        case 0:
            snprintf(s.family, sizeof s.family, "pelvis");
            break;
        case 1:
            s.dims[1] = 8;
            break;
        case 2:
            s.spacing_mm[2] = 0.0;
            break;
        case 3:
            s.spacing_mm[0] = 11.0;
            break;
        case 4:
            s.age_min_years = 60.0;
            s.age_max_years = 40.0;
            break;
        case 5:
            s.deformation_mm = 25.0;
            break;
        case 6:
            s.deformation_scale_mm = 2.0;
            break;
        case 7:
            s.female_fraction = 1.5;
            break;
        default:
            s.spacing_mm[1] = NAN;
            break;
        }
        int before = tu_errors();
        rsy_volume *v = NULL;
        rsy_subject subj;
        assert_int_equal(rsy_phantom_generate(&s, r1, r2, &v, &subj), RSY_EINVAL);
        assert_null(v);
        assert_int_equal(tu_errors(), before + 1);
    }
    rsy_phantom_spec s = default_spec();
    rsy_volume *v = NULL;
    rsy_subject subj;
    assert_int_equal(rsy_phantom_generate(NULL, r1, r2, &v, &subj), RSY_EINVAL);
    assert_int_equal(rsy_phantom_generate(&s, NULL, r2, &v, &subj), RSY_EINVAL);
    assert_int_equal(rsy_phantom_generate(&s, r1, r2, NULL, &subj), RSY_EINVAL);
    rsy_rng_destroy(r1);
    rsy_rng_destroy(r2);
}

static int warnings_seen;
static void count_warnings(rsy_log_level level, const char *func, const char *msg, void *user)
{
    (void)func;
    (void)msg;
    (void)user;
    if (level == RSY_LOG_WARNING)
        warnings_seen++;
}

/* A field of view that cuts the head is allowed (clipped) but warned about. */
static void test_small_fov_warns(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec();
    for (int a = 0; a < 3; a++) {
        spec.dims[a] = 32;
        spec.spacing_mm[a] = 3.5; /* 112 mm */
    }
    rsy_log_set_handler(count_warnings, NULL);
    rsy_log_set_level(RSY_LOG_WARNING);
    warnings_seen = 0;
    rsy_volume *v = NULL;
    rsy_subject s;
    assert_int_equal(make_subject(&spec, 5, 0, &v, &s, NULL), RSY_OK);
    assert_int_equal(warnings_seen, 1);
    rsy_volume_destroy(v);
    warnings_seen = 0;
    spec = default_spec();
    assert_int_equal(make_subject(&spec, 5, 0, &v, &s, NULL), RSY_OK);
    assert_int_equal(warnings_seen, 0);
    rsy_volume_destroy(v);
    tu_log_capture();
}

/* rsy_phantom_measure counts voxels: lesion ids (>= RSY_HEAD_N_CLASSES) are brain. */
static void test_measure(void **state)
{
    (void)state;
    rsy_geometry g;
    const int64_t dims[3] = {10, 10, 10};
    const double sp[3] = {2.0, 2.0, 2.0}; /* 8 mm^3 per voxel */
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    rsy_volume *v = NULL;
    assert_int_equal(rsy_volume_create(&v, &g, RSY_DTYPE_UINT16), RSY_OK);
    uint16_t *l = v->data;
    for (int q = 0; q < 100; q++)
        l[q] = RSY_HEAD_WHITE_MATTER;
    for (int q = 100; q < 150; q++)
        l[q] = RSY_HEAD_VENTRICLES;
    for (int q = 150; q < 175; q++)
        l[q] = RSY_HEAD_CSF;
    for (int q = 175; q < 200; q++)
        l[q] = RSY_HEAD_N_CLASSES + 2; /* a lesion compartment */
    for (int q = 200; q < 300; q++)
        l[q] = RSY_HEAD_SKULL;
    rsy_subject s;
    memset(&s, 0, sizeof s); /* no landmarks: every intracranial-class voxel counts */
    rsy_phantom_measure("head", v, &s);
    assert_true(fabs(s.brain_ml - 125 * 8 / 1000.0) < 1e-9);
    assert_true(fabs(s.ventricles_ml - 50 * 8 / 1000.0) < 1e-9);
    assert_true(fabs(s.intracranial_ml - 200 * 8 / 1000.0) < 1e-9);
    rsy_volume_destroy(v);
}

static void test_describe_location(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec();
    rsy_volume *v = NULL;
    rsy_subject s;
    assert_int_equal(make_subject(&spec, 3, 1, &v, &s, NULL), RSY_OK);
    rsy_volume_destroy(v);
    const double *c = s.brain_center_mm, *ax = s.brain_semi_axes_mm;
    char buf[128];
    /* Right and left frontal white matter: 40% of the semi-axes out, front and up. */
    double p[3] = {c[0] + 0.4 * ax[0], c[1] + 0.5 * ax[1], c[2] + 0.3 * ax[2]};
    rsy_phantom_describe_location("head", &s, p, buf, sizeof buf);
    assert_string_equal(buf, "right frontal lobe");
    p[0] = c[0] - 0.4 * ax[0];
    rsy_phantom_describe_location("head", &s, p, buf, sizeof buf);
    assert_string_equal(buf, "left frontal lobe");
    /* Occipital, parietal and temporal. */
    double occ[3] = {c[0] + 0.3 * ax[0], c[1] - 0.8 * ax[1], c[2] + 0.2 * ax[2]};
    rsy_phantom_describe_location("head", &s, occ, buf, sizeof buf);
    assert_string_equal(buf, "right occipital lobe");
    double par[3] = {c[0] - 0.3 * ax[0], c[1] - 0.3 * ax[1], c[2] + 0.7 * ax[2]};
    rsy_phantom_describe_location("head", &s, par, buf, sizeof buf);
    assert_string_equal(buf, "left parietal lobe");
    double tmp[3] = {c[0] + 0.7 * ax[0], c[1], c[2] - 0.5 * ax[2]};
    rsy_phantom_describe_location("head", &s, tmp, buf, sizeof buf);
    assert_string_equal(buf, "right temporal lobe");
    /* Cerebellum, low and posterior; corpus callosum on the midline above the ventricles. */
    double cb[3] = {c[0] - 0.35 * ax[0], c[1] - 0.62 * ax[1], c[2] - 0.65 * ax[2]};
    rsy_phantom_describe_location("head", &s, cb, buf, sizeof buf);
    assert_string_equal(buf, "left cerebellar hemisphere");
    double cc[3] = {c[0], c[1], c[2] + 22.0 * ax[2] / RSY__HEAD_ENV_C_MM};
    rsy_phantom_describe_location("head", &s, cc, buf, sizeof buf);
    assert_string_equal(buf, "corpus callosum");
    /* Truncation and unknown family. */
    char small[6];
    rsy_phantom_describe_location("head", &s, p, small, sizeof small);
    assert_int_equal(strlen(small), 5);
    rsy_phantom_describe_location("pelvis", &s, p, buf, sizeof buf);
    assert_string_equal(buf, "unknown location");
}

/* A subject fits the default 64^3 x 3.5 mm grid and its landmarks agree with the map. */
static void test_landmarks(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec();
    spec.deformation_mm = 0.0;
    rsy_volume *v = NULL;
    rsy_subject s;
    assert_int_equal(make_subject(&spec, 8, 2, &v, &s, NULL), RSY_OK);
    assert_true(s.deformation_mm == 0.0);
    /* The brain centre lies in white matter or deep grey/ventricles, never outside. */
    double ijk[3];
    rsy_geometry_world_to_voxel(&v->geom, s.brain_center_mm, ijk);
    int64_t i = (int64_t)lround(ijk[0]), j = (int64_t)lround(ijk[1]), k = (int64_t)lround(ijk[2]);
    uint16_t cl = ((uint16_t *)v->data)[(k * 64 + j) * 64 + i];
    assert_true(cl == RSY_HEAD_WHITE_MATTER || cl == RSY_HEAD_DEEP_GREY ||
                cl == RSY_HEAD_VENTRICLES || cl == RSY_HEAD_CSF);
    /* The semi-axes match the reference envelope scaled by the subject's scales. */
    assert_true(
        fabs(s.brain_semi_axes_mm[0] - RSY__HEAD_ENV_A_MM * s.size_scale * s.axis_scale[0]) < 1e-9);
    assert_true(s.size_scale > 0.85 && s.size_scale < 1.15);
    for (int a = 0; a < 3; a++)
        assert_true(s.axis_scale[a] >= 0.96 && s.axis_scale[a] <= 1.04);
    rsy_volume_destroy(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_class_tables, setup),
        cmocka_unit_test_setup(test_population, setup),
        cmocka_unit_test_setup(test_cortex_and_ventricles, setup),
        cmocka_unit_test_setup(test_sex_and_age, setup),
        cmocka_unit_test_setup(test_determinism, setup),
        cmocka_unit_test_setup(test_deformation, setup),
        cmocka_unit_test_setup(test_invalid_specs, setup),
        cmocka_unit_test_setup(test_small_fov_warns, setup),
        cmocka_unit_test_setup(test_measure, setup),
        cmocka_unit_test_setup(test_describe_location, setup),
        cmocka_unit_test_setup(test_landmarks, setup),
    };
    return cmocka_run_group_tests_name("phantoms", tests, NULL, NULL);
}
