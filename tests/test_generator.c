/*
 * test_generator.c: MRI signal equations, gadolinium, contrast ordering with the real tissue
 * table, Rician noise statistics, the bias field, the per-case pipeline on the demo recipe,
 * the label dictionary, findings text, the texture stage (statistics of u and of the property
 * maps, thread independence, the uniform model), and whole runs (determinism across thread
 * counts with the demo's texture preset, cancellation, the memory limit).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <ftw.h>

#include "generator_internal.h"
#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_export.h"
#include "rsy_generator.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"
#include "test_util.h"

#define DEMO_RECIPE "configs/recipes/brain-glioblastoma-mri.json"
#define TISSUE_TABLE "configs/tissues/mri-brain.json"

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */
/* The demo recipe at dim^3 voxels of spacing_mm, its texture switched to its fallback preset
 * (brain-mri), so the tests do not need `make texture-model`: the loader only checks that the
 * fitted model exists, so an empty stand-in (DIR/textures/brain-colin27.h5 in a scratch search
 * directory) is found when configs/textures/brain-colin27.h5 has not been built. */
static rsy_recipe *load_demo(int64_t dim, double spacing_mm)
{
    rsy_recipe *r = NULL;
    char *dir = tu_tmpdir("gen-standin");
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/textures", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/textures/brain-colin27.h5", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    const char *dirs[] = {"configs", dir, NULL};
    rsy_status rc = rsy_recipe_load(&r, DEMO_RECIPE, dirs);
    tu_rmtree(dir);
    free(dir);
    if (rc != RSY_OK)
        fprintf(stderr, "loading %s: %s: %s\n", DEMO_RECIPE, rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    assert_int_equal(r->texture, RSY_TEXTURE_FITTED);
    assert_string_equal(r->texture_spec.preset.name, "brain-mri");
    r->texture = RSY_TEXTURE_PRESET;
    for (int a = 0; a < 3; a++) {
        r->phantom.dims[a] = dim;
        r->phantom.spacing_mm[a] = spacing_mm;
    }
    return r;
}

static const rsy_sequence *find_seq(const rsy_recipe *r, const char *name)
{
    for (int i = 0; i < r->mri.n_sequences; i++)
        if (strcmp(r->mri.sequences[i].name, name) == 0)
            return &r->mri.sequences[i];
    return NULL;
}

static int seq_index(const rsy_recipe *r, const char *name)
{
    const rsy_sequence *s = find_seq(r, name);
    return s ? (int)(s - r->mri.sequences) : -1;
}

static int label_index(const rsy_recipe *r, const char *name)
{
    const char *names[RSY_MAX_LABELS];
    int n = rsy_generator_label_names(r, names, RSY_MAX_LABELS);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

static double kv_get(const rsy_kv *kv, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].number;
    fail_msg("key %s missing", key);
    return NAN;
}

/* ---------------------------------------------------------------------------------------- */
/* Signal equations                                                                           */
/* ---------------------------------------------------------------------------------------- */
static void test_spin_echo(void **state)
{
    (void)state;
    /* TE -> 0 and TR -> infinity: full relaxation and no decay leave exactly PD. */
    assert_float_equal(rsy_mri_signal_spin_echo(0.83, 900.0, 80.0, 1e12, 1e-9), 0.83, 1e-9);
    /* Hand-computed closed form of domain.md 2.2 for PD 0.8, T1 800, T2 80, TR 600, TE 15:
     * 0.8 (1 - 2 e^{-592.5/800} + e^{-600/800}) e^{-15/80}. */
    double expect = 0.8 * (1.0 - 2.0 * exp(-592.5 / 800.0) + exp(-0.75)) * exp(-15.0 / 80.0);
    assert_float_equal(rsy_mri_signal_spin_echo(0.8, 800.0, 80.0, 600.0, 15.0), expect, 1e-12);
    /* TE << TR reduces to PD (1 - e^{-TR/T1}) e^{-TE/T2} (GK), to first order in TE/T1: the
     * relative difference is e^{-TR/T1} TE / (T1 (1 - e^{-TR/T1})) = 1.1e-5 for TE = 0.01 ms;
     * tolerance 2e-5. */
    double reduced = 0.8 * (1.0 - exp(-600.0 / 800.0)) * exp(-0.01 / 80.0);
    assert_float_equal(rsy_mri_signal_spin_echo(0.8, 800.0, 80.0, 600.0, 0.01), reduced,
                       2e-5 * reduced);
}

static void test_flair_null_point(void **state)
{
    (void)state;
    /* domain.md 2.2 [S42]: TI = T1 [ln 2 - ln(1 + e^{-TR/T1})] nulls the tissue of that T1. */
    double t1 = 4300.0, tr = 9000.0;
    double ti = t1 * (log(2.0) - log1p(exp(-tr / t1)));
    assert_float_equal(ti, 2480.0, 5.0); /* the worked example of domain.md: about 2480 ms */
    assert_float_equal(rsy_mri_signal_inversion_recovery(1.0, t1, 2000.0, tr, 120.0, ti), 0.0,
                       1e-12);
    /* A shorter T1 (white matter) is not nulled and recovers positive magnitude. */
    assert_true(rsy_mri_signal_inversion_recovery(0.7, 830.0, 69.0, tr, 120.0, ti) > 0.05);
    /* Magnitude: a TI well before the null gives |negative Mz|, still >= 0. */
    assert_true(rsy_mri_signal_inversion_recovery(1.0, t1, 2000.0, tr, 120.0, 100.0) > 0.0);
}

static void test_spgr_ernst(void **state)
{
    (void)state;
    /* The Ernst angle acos(e^{-TR/T1}) maximises the spoiled GRE signal (GK). */
    double t1 = 900.0, tr = 20.0;
    double ernst = acos(exp(-tr / t1)) * 180.0 / 3.14159265358979323846;
    double s_e = rsy_mri_signal_spoiled_gre(1.0, t1, 80.0, tr, 3.0, ernst);
    for (double a = 1.0; a < 90.0; a += 0.5)
        assert_true(rsy_mri_signal_spoiled_gre(1.0, t1, 80.0, tr, 3.0, a) <= s_e + 1e-15);
    assert_true(rsy_mri_signal_spoiled_gre(1.0, t1, 80.0, tr, 3.0, ernst - 1.0) < s_e);
    assert_true(rsy_mri_signal_spoiled_gre(1.0, t1, 80.0, tr, 3.0, ernst + 1.0) < s_e);
    /* At 90 degrees it is the saturation-recovery signal PD (1 - E1) e^{-TE/T2}. */
    assert_float_equal(rsy_mri_signal_spoiled_gre(1.0, t1, 80.0, tr, 3.0, 90.0),
                       (1.0 - exp(-tr / t1)) * exp(-3.0 / 80.0), 1e-12);
}

static void test_gd_shortening(void **state)
{
    (void)state;
    /* 1/T1 = 1/1000 ms + 4 /(mM s) x 0.5 mM = 0.001 + 0.002 per ms -> 333.33 ms. */
    assert_float_equal(rsy_mri_t1_with_gd(1000.0, 4.0, 0.5), 1000.0 / 3.0, 1e-9);
    assert_float_equal(rsy_mri_t1_with_gd(1000.0, 4.0, 0.0), 1000.0, 0.0);

    rsy_sequence seq;
    memset(&seq, 0, sizeof seq);
    seq.kind = RSY_SEQ_SPIN_ECHO;
    seq.tr_ms = 600.0;
    seq.te_ms = 15.0;
    rsy_mri_props p = {1400.0, 120.0, 0.9, 0.4};
    double pre = rsy_mri_signal(&seq, &p, 4.0);
    assert_float_equal(pre, rsy_mri_signal_spin_echo(0.9, 1400.0, 120.0, 600.0, 15.0), 1e-15);
    seq.contrast = 1;
    double post = rsy_mri_signal(&seq, &p, 4.0);
    double t1c = rsy_mri_t1_with_gd(1400.0, 4.0, 0.4);
    assert_float_equal(post, rsy_mri_signal_spin_echo(0.9, t1c, 120.0, 600.0, 15.0), 1e-15);
    assert_true(post > 1.2 * pre); /* enhancement on T1w */
    /* The dispatcher uses the right equation for each kind. */
    seq.contrast = 0;
    seq.kind = RSY_SEQ_INVERSION_RECOVERY;
    seq.tr_ms = 9000.0;
    seq.te_ms = 120.0;
    seq.ti_ms = 2500.0;
    assert_float_equal(rsy_mri_signal(&seq, &p, 4.0),
                       rsy_mri_signal_inversion_recovery(0.9, 1400.0, 120.0, 9000.0, 120.0, 2500.0),
                       1e-15);
    seq.kind = RSY_SEQ_SPOILED_GRE;
    seq.tr_ms = 20.0;
    seq.te_ms = 4.0;
    seq.flip_deg = 25.0;
    assert_float_equal(rsy_mri_signal(&seq, &p, 4.0),
                       rsy_mri_signal_spoiled_gre(0.9, 1400.0, 120.0, 20.0, 4.0, 25.0), 1e-15);
}

static void test_contrast_ordering_3t(void **state)
{
    (void)state;
    rsy_recipe *r = load_demo(48, 4.5);
    rsy_tissue_table *tab = NULL;
    assert_int_equal(rsy_tissue_table_load(&tab, TISSUE_TABLE), RSY_OK);
    rsy_mri_props wm = rsy_tissue_mri_at(rsy_tissue_table_find(tab, "white_matter"), 3.0);
    rsy_mri_props gm = rsy_tissue_mri_at(rsy_tissue_table_find(tab, "grey_matter"), 3.0);
    rsy_mri_props csf = rsy_tissue_mri_at(rsy_tissue_table_find(tab, "csf"), 3.0);
    const rsy_sequence *t1w = find_seq(r, "T1w"), *t2w = find_seq(r, "T2w");
    const rsy_sequence *flair = find_seq(r, "FLAIR");
    assert_non_null(t1w);
    assert_non_null(t2w);
    assert_non_null(flair);
    double r1 = r->mri.gd_r1_per_mM_s;
    /* Textbook brain contrast (domain.md 2.2, S45): T1w WM > GM > CSF, T2w CSF > GM > WM,
     * FLAIR nulls CSF below WM. */
    assert_true(rsy_mri_signal(t1w, &wm, r1) > rsy_mri_signal(t1w, &gm, r1));
    assert_true(rsy_mri_signal(t1w, &gm, r1) > rsy_mri_signal(t1w, &csf, r1));
    assert_true(rsy_mri_signal(t2w, &csf, r1) > rsy_mri_signal(t2w, &gm, r1));
    assert_true(rsy_mri_signal(t2w, &gm, r1) > rsy_mri_signal(t2w, &wm, r1));
    assert_true(rsy_mri_signal(flair, &csf, r1) < rsy_mri_signal(flair, &wm, r1));
    assert_string_equal(rsy__gen_sequence_weighting(t1w), "T1");
    assert_string_equal(rsy__gen_sequence_weighting(t2w), "T2");
    assert_string_equal(rsy__gen_sequence_weighting(flair), "FLAIR");
    free(tab);
    rsy_recipe_destroy(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Noise and bias field                                                                       */
/* ---------------------------------------------------------------------------------------- */
#define NOISE_N ((size_t)64 * 64 * 64)

static void moments(const float *x, size_t n, double *mean, double *sd)
{
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        s2 += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(s2 / (double)(n - 1));
}

static void test_rician_statistics(void **state)
{
    (void)state;
    float *img = malloc(NOISE_N * sizeof *img);
    assert_non_null(img);
    rsy_rng *rng = NULL;
    assert_int_equal(rsy_rng_create(&rng, 20240601), RSY_OK);
    double sigma = 10.0, mean, sd;

    /* A = 0: Rayleigh, mean sigma sqrt(pi/2) = 12.533 and SD sigma sqrt((4-pi)/2) = 6.551
     * (S47). With n = 262144 the standard error of the mean is 0.013: tolerance 0.1 (~8 SE),
     * of the SD about 0.01: tolerance 0.1. */
    for (size_t i = 0; i < NOISE_N; i++)
        img[i] = 0.0f;
    rsy__gen_rician(img, NOISE_N, sigma, rng);
    moments(img, NOISE_N, &mean, &sd);
    assert_float_equal(mean, sigma * sqrt(3.14159265358979323846 / 2.0), 0.1);
    assert_float_equal(sd, sigma * sqrt((4.0 - 3.14159265358979323846) / 2.0), 0.1);
    for (size_t i = 0; i < NOISE_N; i++)
        assert_true(img[i] >= 0.0f);

    /* A = 1000 >> sigma: nearly Gaussian, mean A + sigma^2/(2A) = 1000.05 and SD sigma
     * (standard errors 0.02 and 0.014): tolerances 0.2 on the mean and 2 % on the SD. */
    for (size_t i = 0; i < NOISE_N; i++)
        img[i] = 1000.0f;
    rsy__gen_rician(img, NOISE_N, sigma, rng);
    moments(img, NOISE_N, &mean, &sd);
    assert_float_equal(mean, 1000.05, 0.2);
    assert_float_equal(sd, sigma, 0.02 * sigma);

    /* sigma = 0 leaves the image untouched. */
    float before[4] = {img[0], img[1], img[2], img[3]};
    rsy__gen_rician(img, 4, 0.0, rng);
    assert_memory_equal(img, before, sizeof before);
    rsy_rng_destroy(rng);
    free(img);
}

static void test_bias_field(void **state)
{
    (void)state;
    const int64_t n = 48;
    const double sp = 4.0, a = 0.2, scale_mm = 120.0;
    int64_t dims[3] = {n, n, n};
    double spacing[3] = {sp, sp, sp};
    rsy_geometry g;
    assert_int_equal(rsy_geometry_init(&g, dims, spacing), RSY_OK);
    rsy_volume *cls = NULL;
    assert_int_equal(rsy_volume_create(&cls, &g, RSY_DTYPE_UINT16), RSY_OK);
    uint16_t *c = cls->data;
    size_t nvox = rsy_geometry_nvox(&g);
    /* A head: a ball of radius 80 mm at the centre. */
    size_t v = 0;
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++, v++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, x[3];
                rsy_geometry_voxel_to_world(&g, ijk, x);
                c[v] = x[0] * x[0] + x[1] * x[1] + x[2] * x[2] < 80.0 * 80.0 ? 1 : 0;
            }
    float *f = malloc(nvox * sizeof *f);
    assert_non_null(f);
    rsy_rng *rng = NULL;
    assert_int_equal(rsy_rng_create(&rng, 77), RSY_OK);
    assert_int_equal(rsy__gen_bias_field(cls, a, scale_mm, rng, f), RSY_OK);

    /* Range: exactly [1 - a, 1 + a] over the head (float rounding 1e-6), within it outside. */
    double hmin = INFINITY, hmax = -INFINITY;
    for (v = 0; v < nvox; v++) {
        assert_true(f[v] >= 1.0 - a - 1e-6 && f[v] <= 1.0 + a + 1e-6);
        if (c[v]) {
            hmin = fmin(hmin, f[v]);
            hmax = fmax(hmax, f[v]);
        }
    }
    assert_float_equal(hmin, 1.0 - a, 1e-6);
    assert_float_equal(hmax, 1.0 + a, 1e-6);

    /* Smooth over the head: one cosine of wavelength >= scale/sqrt(2) = 85 mm changes by at
     * most 2 pi sp / 85 = 0.30 of its span per 4 mm step, and its second difference by at
     * most (2 pi sp / 85)^2 = 0.087 of the span. The normalised sum of the six waves stayed
     * below 0.12 and 0.06 of the span over 40 seeds tried; white noise would reach the
     * full span 2a. */
    double span = 2.0 * a, d1 = 0.0, d2 = 0.0;
    for (int64_t k = 1; k < n - 1; k++)
        for (int64_t j = 1; j < n - 1; j++)
            for (int64_t i = 1; i < n - 1; i++) {
                size_t w = (size_t)(i + n * (j + n * k));
                if (!c[w])
                    continue;
                const size_t step[3] = {1, (size_t)n, (size_t)(n * n)};
                for (int ax = 0; ax < 3; ax++) {
                    d1 = fmax(d1, fabs((double)f[w + step[ax]] - f[w]));
                    d2 = fmax(d2, fabs((double)f[w + step[ax]] - 2.0 * f[w] + f[w - step[ax]]));
                }
            }
    assert_true(d1 <= 0.30 * span);
    assert_true(d2 <= 0.087 * span);

    /* Amplitude 0 gives a unit field; a bad amplitude is refused. */
    assert_int_equal(rsy__gen_bias_field(cls, 0.0, scale_mm, rng, f), RSY_OK);
    for (v = 0; v < nvox; v++)
        assert_true(f[v] == 1.0f);
    assert_int_equal(rsy__gen_bias_field(cls, 1.5, scale_mm, rng, f), RSY_EINVAL);
    assert_int_equal(rsy__gen_bias_field(cls, 0.1, 0.0, rng, f), RSY_EINVAL);
    rsy_rng_destroy(rng);
    free(f);
    rsy_volume_destroy(cls);
}

/* ---------------------------------------------------------------------------------------- */
/* Label dictionary                                                                           */
/* ---------------------------------------------------------------------------------------- */
static void test_label_names(void **state)
{
    (void)state;
    rsy_recipe *r = load_demo(48, 4.5);
    const char *names[RSY_MAX_LABELS];
    /* BraTS-like order for the GBM prior: compartments in first-appearance order. */
    int n = rsy_generator_label_names(r, names, RSY_MAX_LABELS);
    assert_int_equal(n, 4);
    assert_string_equal(names[0], "background");
    assert_string_equal(names[1], "necrotic_core");
    assert_string_equal(names[2], "oedema");
    assert_string_equal(names[3], "enhancing_tumour");
    /* Fewer slots than labels: the count is still the full count. */
    assert_int_equal(rsy_generator_label_names(r, names, 2), 4);

    r->label_set = RSY_LABELS_TISSUES_AND_LESIONS;
    n = rsy_generator_label_names(r, names, RSY_MAX_LABELS);
    int nt = rsy_phantom_n_classes("head");
    assert_int_equal(n, nt + 3);
    for (int c = 1; c < nt; c++)
        assert_string_equal(names[c], rsy_phantom_class_name("head", c));
    assert_string_equal(names[nt], "necrotic_core");

    /* The class table maps tissue class c to label c and compartments after them. */
    rsy__gen_class *tab = NULL;
    int n_classes = 0;
    assert_int_equal(rsy__gen_class_table(r, &tab, &n_classes), RSY_OK);
    assert_int_equal(n_classes, nt + 3);
    for (int c = 0; c < nt; c++)
        assert_int_equal(tab[c].label, c);
    assert_int_equal(tab[nt + 2].label, nt + 2);
    assert_true(tab[nt + 2].props.gd_mM > 0.0); /* the enhancing tumour takes up Gd */
    free(tab);
    rsy_recipe_destroy(r);
}

/* ---------------------------------------------------------------------------------------- */
/* One case end to end                                                                        */
/* ---------------------------------------------------------------------------------------- */
static double mean_where(const float *img, const uint8_t *lab, size_t n, int value)
{
    double s = 0.0;
    size_t k = 0;
    for (size_t v = 0; v < n; v++)
        if (lab[v] == value) {
            s += img[v];
            k++;
        }
    assert_true(k > 0);
    return s / (double)k;
}

static void test_case_end_to_end(void **state)
{
    (void)state;
    rsy_recipe *r = load_demo(48, 4.5);
    rsy_case *c = NULL;
    rsy_status rc = rsy_case_generate(r, 0, &c);
    if (rc != RSY_OK)
        fprintf(stderr, "case: %s: %s\n", rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    size_t nvox = rsy_geometry_nvox(&rsy_case_labels(c)->geom);
    assert_int_equal(nvox, 48 * 48 * 48);

    /* Channels: one per sequence, float32, finite and non-negative (magnitudes). */
    assert_int_equal(rsy_case_n_channels(c), r->mri.n_sequences);
    for (int ch = 0; ch < rsy_case_n_channels(c); ch++) {
        const rsy_volume *img = rsy_case_channel(c, ch);
        assert_int_equal(img->dtype, RSY_DTYPE_FLOAT32);
        const float *px = img->data;
        for (size_t v = 0; v < nvox; v++)
            assert_true(isfinite(px[v]) && px[v] >= 0.0f);
    }
    assert_null(rsy_case_channel(c, rsy_case_n_channels(c)));

    /* Labels within the dictionary. */
    const char *names[RSY_MAX_LABELS];
    int n_labels = rsy_generator_label_names(r, names, RSY_MAX_LABELS);
    const uint8_t *lab = rsy_case_labels(c)->data;
    for (size_t v = 0; v < nvox; v++)
        assert_true(lab[v] < n_labels);

    /* The GBM prior always gives a lesion; each sampled lesion has voxels, and its centre
     * is labelled. */
    rsy_case_data d;
    rsy__case_data(c, &d);
    assert_true(rsy_case_n_lesions(c) >= 1);
    assert_int_equal(d.n_lesions, rsy_case_n_lesions(c));
    const uint16_t *inst = rsy_case_instances(c)->data;
    const rsy_geometry *g = &rsy_case_labels(c)->geom;
    for (int i = 0; i < d.n_lesions; i++) {
        const rsy_lesion_info *li = &d.lesions[i];
        assert_int_equal(li->instance_id, i + 1);
        assert_string_equal(li->type, "glioblastoma");
        assert_true(strlen(li->region) > 0);
        size_t count = 0;
        for (size_t v = 0; v < nvox; v++)
            count += inst[v] == li->instance_id;
        assert_true(count > 0);
        double x[3] = {kv_get(li->params, li->n_params, "center_x_mm"),
                       kv_get(li->params, li->n_params, "center_y_mm"),
                       kv_get(li->params, li->n_params, "center_z_mm")};
        double ijk[3];
        rsy_geometry_world_to_voxel(g, x, ijk);
        size_t v = (size_t)llround(ijk[0]) +
                   (size_t)g->dims[0] *
                       ((size_t)llround(ijk[1]) + (size_t)g->dims[1] * (size_t)llround(ijk[2]));
        assert_true(lab[v] != 0);
        assert_true(kv_get(li->params, li->n_params, "diameter_mm") > 0.0);
        assert_true(kv_get(li->params, li->n_params, "oedema.margin_mm") > 0.0);
    }

    /* Contrast: the enhancing rim is brighter on T1c than on T1w; oedema is brighter than
     * white matter on FLAIR. */
    const float *t1w = rsy_case_channel(c, seq_index(r, "T1w"))->data;
    const float *t1c = rsy_case_channel(c, seq_index(r, "T1c"))->data;
    const float *flair = rsy_case_channel(c, seq_index(r, "FLAIR"))->data;
    int enh = label_index(r, "enhancing_tumour"), oed = label_index(r, "oedema");
    assert_true(mean_where(t1c, lab, nvox, enh) > mean_where(t1w, lab, nvox, enh));
    const uint16_t *cls = rsy_case_classes(c)->data;
    double wm = 0.0;
    size_t nwm = 0;
    for (size_t v = 0; v < nvox; v++)
        if (cls[v] == RSY_HEAD_WHITE_MATTER) {
            wm += flair[v];
            nwm++;
        }
    assert_true(nwm > 0);
    assert_true(mean_where(flair, lab, nvox, oed) > wm / (double)nwm);

    /* Noise sigma recorded per channel: 3 % of the reference tissue's signal (BrainWeb). */
    double sigma = kv_get(d.acquisition, d.n_acquisition, "T1w.noise_sigma");
    double ref = kv_get(d.acquisition, d.n_acquisition, "T1w.reference_signal");
    assert_float_equal(sigma, find_seq(r, "T1w")->noise_percent / 100.0 * ref, 1e-9);
    /* Subject attributes. */
    assert_int_equal(d.n_subject, 7);
    assert_string_equal(d.subject[0].key, "sex");
    assert_true(kv_get(d.subject, d.n_subject, "brain_ml") > 0.0);

    /* Findings from the measured lesion. */
    const char *f = rsy_case_findings(c);
    assert_non_null(f);
    if (d.n_lesions == 1) {
        assert_non_null(strstr(f, "Solitary"));
        assert_non_null(strstr(f, "No other lesion."));
    }
    assert_non_null(strstr(f, "mm (axial long x short axis)"));
    /* The rim wording needs a core inside it, which a small lesion on this coarse grid may
     * lose to partial volume. */
    size_t necrotic = 0;
    int nec = label_index(r, "necrotic_core");
    for (size_t v = 0; v < nvox; v++)
        necrotic += lab[v] == nec;
    if (necrotic > 0) {
        assert_non_null(strstr(f, "necrotic core"));
        assert_non_null(strstr(f, "enhancing rim"));
    }
    assert_non_null(strstr(f, "post-contrast T1"));
    assert_non_null(strstr(f, "oedema (volume"));
    rsy_case_timing t = rsy_case_get_timing(c);
    assert_true(t.phantom_s >= 0.0 && t.imaging_s >= 0.0 && t.export_s == 0.0);

    /* The same case again is identical (streams depend on the case index only). */
    rsy_case *c2 = NULL;
    assert_int_equal(rsy_case_generate(r, 0, &c2), RSY_OK);
    for (int ch = 0; ch < rsy_case_n_channels(c); ch++)
        assert_memory_equal(rsy_case_channel(c, ch)->data, rsy_case_channel(c2, ch)->data,
                            nvox * sizeof(float));
    assert_string_equal(rsy_case_findings(c), rsy_case_findings(c2));
    rsy_case_destroy(c2);
    rsy_case_destroy(c);
    rsy_recipe_destroy(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Texture stage (texture_case.c)                                                             */
/* ---------------------------------------------------------------------------------------- */
/* Sample mean and SD of x over the voxels of class @p cls. */
static void class_moments(const float *x, const uint16_t *cl, size_t n, int cls, double *mean,
                          double *sd, size_t *count)
{
    double s = 0.0, s2 = 0.0;
    size_t k = 0;
    for (size_t v = 0; v < n; v++)
        if (cl[v] == cls) {
            s += x[v];
            k++;
        }
    assert_true(k > 1);
    *mean = s / (double)k;
    for (size_t v = 0; v < n; v++)
        if (cl[v] == cls)
            s2 += (x[v] - *mean) * (x[v] - *mean);
    *sd = sqrt(s2 / (double)(k - 1));
    *count = k;
}

static void test_texture_case(void **state)
{
    (void)state;
    tu_log_capture();
    /* 48^3 at 4.5 mm (216 mm: the whole head). */
    rsy_recipe *r = load_demo(48, 4.5);
    assert_int_equal(r->texture, RSY_TEXTURE_PRESET);
    rsy_case *c = NULL;
    rsy_status rc = rsy_case_generate(r, 1, &c);
    if (rc != RSY_OK)
        fprintf(stderr, "case: %s: %s\n", rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    const rsy_volume *classes = rsy_case_classes(c);
    const uint16_t *cl = classes->data;
    size_t nvox = rsy_geometry_nvox(&classes->geom);

    rsy__gen_class *tab = NULL;
    int n_classes = 0;
    assert_int_equal(rsy__gen_class_table(r, &tab, &n_classes), RSY_OK);
    rsy__gen_texture *tex = NULL;
    assert_int_equal(rsy__gen_texture_create(r, tab, n_classes, &tex), RSY_OK);
    assert_non_null(tex->prior);
    assert_non_null(strstr(tex->note, "brain-mri"));
    assert_non_null(strstr(tex->note, "heun, 18 steps"));
    /* Air has texture_sd_fraction 0: untextured; white matter and the tumour are textured. */
    assert_int_equal(tex->textured[RSY_HEAD_BACKGROUND], 0);
    assert_int_equal(tex->textured[RSY_HEAD_WHITE_MATTER], 1);
    assert_int_equal(tex->textured[n_classes - 1], 1);

    /* The raw field does not depend on the denoiser's thread count. */
    rsy_volume *u = NULL, *u2 = NULL;
    assert_int_equal(rsy__gen_texture_draw(tex, r, 1, classes, 1, &u), RSY_OK);
    assert_int_equal(rsy__gen_texture_draw(tex, r, 1, classes, 2, &u2), RSY_OK);
    assert_memory_equal(u->data, u2->data, nvox * sizeof(float));
    rsy_volume_destroy(u2);

    /* Raw u inside white matter (several thousand voxels): mean 0 within 0.1 (the field's
     * correlation is under two voxels here, so the mean of N voxels has an SD near
     * 1/sqrt(N/8) < 0.05); SD in [0.85, 1.15]: within the reach of the patch the sampler
     * keeps the preset's unit variance within -6%..+15% (SD 0.97-1.07; docs/texture.md, "Reach
     * of a patch prior"), plus the class border's influence on a class this thin. */
    double m, sd;
    size_t n_wm;
    class_moments(u->data, cl, nvox, RSY_HEAD_WHITE_MATTER, &m, &sd, &n_wm);
    assert_true(n_wm > 2000);
    if (!(fabs(m) < 0.1 && sd > 0.85 && sd < 1.15))
        fprintf(stderr, "raw u in WM: mean %g, sd %g over %zu voxels\n", m, sd, n_wm);
    assert_true(fabs(m) < 0.1);
    assert_true(sd > 0.85 && sd < 1.15);

    /* Normalised: zero mean and unit SD in every textured class big enough (so a class's mean
     * property is its table value); u = 0 where untextured. */
    assert_int_equal(rsy__gen_texture_normalise(tex, classes, u->data), RSY_OK);
    const float *uf = u->data;
    double m2, sd2;
    class_moments(uf, cl, nvox, RSY_HEAD_WHITE_MATTER, &m2, &sd2, &n_wm);
    assert_float_equal(sd2, 1.0, 1e-4);
    assert_float_equal(m2, 0.0, 1e-4);
    for (size_t v = 0; v < nvox; v++)
        if (!tex->textured[cl[v]])
            assert_true(uf[v] == 0.0f);

    /* Property maps: within white matter, T1, T2 and PD vary with relative SD equal to the
     * tissue table's texture_sd_fraction (0.03; tolerance 1e-3 relative, float rounding and
     * no clamping at 33 SD), around the table value. */
    float *t1 = malloc(nvox * sizeof *t1), *t2 = malloc(nvox * sizeof *t2);
    float *pd = malloc(nvox * sizeof *pd);
    assert_true(t1 && t2 && pd);
    rsy__gen_texture_props(tex, tab, classes, uf, t1, t2, pd);
    const rsy__gen_class *wm = &tab[RSY_HEAD_WHITE_MATTER];
    assert_true(wm->texture_sd_fraction == 0.03);
    const float *maps[3] = {t1, t2, pd};
    const double means[3] = {wm->props.t1_ms, wm->props.t2_ms, wm->props.pd};
    for (int k = 0; k < 3; k++) {
        class_moments(maps[k], cl, nvox, RSY_HEAD_WHITE_MATTER, &m2, &sd2, &n_wm);
        assert_float_equal(sd2 / means[k], 0.03, 0.03 * 1e-3);
        assert_float_equal(m2 / means[k], 1.0, 1e-4); /* centred u: the table value */
    }
    /* Untextured voxels carry their class's properties exactly; all stay positive. */
    for (size_t v = 0; v < nvox; v++) {
        assert_true(t1[v] > 0.0f && t2[v] > 0.0f && pd[v] >= 0.0f);
        if (!tex->textured[cl[v]])
            assert_true(t1[v] == (float)tab[cl[v]].props.t1_ms);
    }
    free(pd);
    free(t2);
    free(t1);
    rsy_volume_destroy(u);

    /* A case made with a shared model and 2 denoiser threads equals the stand-alone one. */
    rsy_case *c2 = NULL;
    assert_int_equal(rsy__case_generate(r, 1, tex, NULL, 2, &c2), RSY_OK);
    for (int ch = 0; ch < rsy_case_n_channels(c); ch++)
        assert_memory_equal(rsy_case_channel(c, ch)->data, rsy_case_channel(c2, ch)->data,
                            nvox * sizeof(float));
    rsy_case_destroy(c2);

    /* The images show it: on T2w, white matter's variance grows by the texture's share over
     * the uniform model's (same streams, so the same anatomy, bias field and noise draws).
     * Linearised, d ln S = (1 + TE/T2) f u for PD and T2 moving together (T1's share is
     * -0.04 f u at TR 4000 ms): 2.41 x 0.03 = 7.2% of the WM signal; accepted in [5%, 10%]
     * (the excess variance is a difference of two sample variances of a few thousand
     * correlated voxels). */
    const float *t2w = rsy_case_channel(c, seq_index(r, "T2w"))->data;
    class_moments(t2w, cl, nvox, RSY_HEAD_WHITE_MATTER, &m, &sd, &n_wm);
    r->texture = RSY_TEXTURE_UNIFORM;
    rsy_case *cu = NULL;
    assert_int_equal(rsy_case_generate(r, 1, &cu), RSY_OK);
    assert_memory_equal(rsy_case_classes(cu)->data, cl, nvox * sizeof(uint16_t));
    const float *t2w_u = rsy_case_channel(cu, seq_index(r, "T2w"))->data;
    class_moments(t2w_u, cl, nvox, RSY_HEAD_WHITE_MATTER, &m2, &sd2, &n_wm);
    double excess = sqrt(fmax(sd * sd - sd2 * sd2, 0.0)) / m2;
    if (!(excess > 0.05 && excess < 0.10))
        fprintf(stderr, "T2w WM: sd %g with texture, %g uniform, mean %g: excess %g\n", sd, sd2, m2,
                excess);
    assert_true(excess > 0.05 && excess < 0.10);
    /* The uniform model: untextured voxels identical to the textured case's (same LUT path),
     * and its note. */
    const float *t2w_c = rsy_case_channel(c, seq_index(r, "T2w"))->data;
    for (size_t v = 0; v < nvox; v++)
        if (!tex->textured[cl[v]])
            assert_true(t2w_c[v] == t2w_u[v]);
    rsy__gen_texture *tu = NULL;
    assert_int_equal(rsy__gen_texture_create(r, tab, n_classes, &tu), RSY_OK);
    assert_null(tu->prior);
    assert_int_equal(tu->any_textured, 0);
    assert_string_equal(tu->note, RSY__GEN_TEXTURE_NOTE_UNIFORM);
    rsy__gen_texture_destroy(tu);
    rsy_case_destroy(cu);

    rsy__gen_texture_destroy(tex);
    free(tab);
    rsy_case_destroy(c);
    rsy_recipe_destroy(r);
}

/* config/ validates presets without the generator's header: its limits must be the texture
 * code's. */
/* A tiny model fitted in the test: 24^3 voxels of 1 mm, label 1 in the lower half along k and
 * label 2 in the upper half, intensities 100 + 10 x N(0, 1) and 200 + 5 x N(0, 1) (white noise,
 * seed 11); p = 3, K = 2, at most 3000 patches per class. Written to DIR/tiny.h5. */
static void write_tiny_model(const char *dir, char path[1024])
{
    const int64_t dims[3] = {24, 24, 24};
    const double sp[3] = {1.0, 1.0, 1.0};
    rsy_geometry g;
    rsy_volume *img = NULL, *lab = NULL;
    rsy_rng *rng = NULL;
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    assert_int_equal(rsy_volume_create(&img, &g, RSY_DTYPE_FLOAT32), RSY_OK);
    assert_int_equal(rsy_volume_create(&lab, &g, RSY_DTYPE_UINT8), RSY_OK);
    assert_int_equal(rsy_rng_create(&rng, 11), RSY_OK);
    float *x = img->data;
    uint8_t *l = lab->data;
    for (size_t v = 0; v < rsy_geometry_nvox(&g); v++) {
        int upper = v >= rsy_geometry_nvox(&g) / 2;
        l[v] = (uint8_t)(upper ? 2 : 1);
        x[v] = (float)(upper ? 200.0 + 5.0 * rsy_rng_gaussian(rng, 1.0) : 100.0 + 10.0 * rsy_rng_gaussian(rng, 1.0));
    }
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    p.patch_size = 3;
    p.n_components = 2;
    p.max_patches = 3000;
    p.seed = 5;
    rsy_texture_fitted *m = NULL;
    assert_int_equal(rsy_texture_fit(&m, img, lab, 0, &p), RSY_OK);
    snprintf(path, 1024, "%s/tiny.h5", dir);
    assert_int_equal(rsy_texture_fitted_write(m, path), RSY_OK);
    rsy_texture_fitted_destroy(m);
    rsy_rng_destroy(rng);
    rsy_volume_destroy(lab);
    rsy_volume_destroy(img);
}

static int exists(const char *dir, const char *name);

/* A fitted model drives a case; a mapping naming a class the model lacks (or a class the
 * recipe lacks) is RSY_ECONFIG from rsy_generator_run before the output directory exists. */
static void test_fitted_texture(void **state)
{
    (void)state;
    tu_log_capture();
    char *dir = tu_tmpdir("gen-fitted");
    assert_non_null(dir);
    char model_path[1024];
    write_tiny_model(dir, model_path);

    /* 32^3 at 7 mm (224 mm: the whole head). Grey and white matter from the model's classes
     * "1" and "2", every other class from the demo's fallback preset. */
    rsy_recipe *r = load_demo(32, 7.0);
    r->cases = 1;
    rsy_texture_spec *ts = &r->texture_spec;
    r->texture = RSY_TEXTURE_FITTED;
    snprintf(ts->fitted_path, sizeof ts->fitted_path, "%s", model_path);
    snprintf(ts->fitted_name, sizeof ts->fitted_name, "tiny");
    ts->n_class_map = 2;
    snprintf(ts->class_map[0].working, RSY_NAME_MAX, "grey_matter");
    snprintf(ts->class_map[0].model, RSY_NAME_MAX, "1");
    snprintf(ts->class_map[1].working, RSY_NAME_MAX, "white_matter");
    snprintf(ts->class_map[1].model, RSY_NAME_MAX, "2");

    rsy__gen_class *tab = NULL;
    int n_classes = 0;
    assert_int_equal(rsy__gen_class_table(r, &tab, &n_classes), RSY_OK);
    rsy__gen_texture *tex = NULL;
    rsy_status rc = rsy__gen_texture_create(r, tab, n_classes, &tex);
    if (rc != RSY_OK)
        fprintf(stderr, "fitted texture: %s: %s\n", rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    /* The working prior takes the model's patch size and, for the mapped classes, its K = 2
     * components; the preset's classes keep theirs (air: 1 component, untextured). */
    assert_int_equal(rsy_texture_prior_patch_size(tex->prior), 3);
    assert_int_equal(rsy_texture_prior_n_components(tex->prior, RSY_HEAD_WHITE_MATTER), 2);
    assert_int_equal(rsy_texture_prior_n_components(tex->prior, RSY_HEAD_GREY_MATTER), 2);
    assert_int_equal(tex->textured[RSY_HEAD_WHITE_MATTER], 1);
    assert_int_equal(tex->textured[RSY_HEAD_BACKGROUND], 0);
    /* The fit normalises each class to unit variance: the centre voxel's mixture variance is
     * 1 up to the covariance floor (1e-3) and EM's convergence; accepted within 5%. */
    assert_true(fabs(tex->variance[RSY_HEAD_WHITE_MATTER] - 1.0) < 0.05);
    /* The manifest note names the model and its file's SHA-256, and the fallback preset. */
    char sha[65];
    assert_int_equal(rsy_sha256_file(model_path, sha), RSY_OK);
    assert_non_null(strstr(tex->note, "fitted \"tiny\""));
    assert_non_null(strstr(tex->note, sha));
    assert_non_null(strstr(tex->note, "preset \"brain-mri\""));
    rsy__gen_texture_destroy(tex);

    /* A case: the grey and white matter carry texture (T2w varies within them beyond the
     * uniform model's noise, same streams otherwise), and the case is reproducible. */
    rsy_case *c = NULL, *c2 = NULL, *cu = NULL;
    assert_int_equal(rsy_case_generate(r, 0, &c), RSY_OK);
    assert_int_equal(rsy_case_generate(r, 0, &c2), RSY_OK);
    const rsy_volume *classes = rsy_case_classes(c);
    size_t nvox = rsy_geometry_nvox(&classes->geom);
    int t2 = seq_index(r, "T2w");
    assert_memory_equal(rsy_case_channel(c, t2)->data, rsy_case_channel(c2, t2)->data,
                        nvox * sizeof(float));
    r->texture = RSY_TEXTURE_UNIFORM;
    assert_int_equal(rsy_case_generate(r, 0, &cu), RSY_OK);
    r->texture = RSY_TEXTURE_FITTED;
    double m, sd, mu, sdu;
    size_t n_wm;
    class_moments(rsy_case_channel(c, t2)->data, classes->data, nvox, RSY_HEAD_WHITE_MATTER, &m,
                  &sd, &n_wm);
    class_moments(rsy_case_channel(cu, t2)->data, classes->data, nvox, RSY_HEAD_WHITE_MATTER,
                  &mu, &sdu, &n_wm);
    /* As in test_texture_case: white matter's excess T2w variance over the uniform model is
     * the texture's share, about 2.41 x 0.03 = 7.2% of the signal; accepted in [5%, 10%]. */
    double excess = sqrt(fmax(sd * sd - sdu * sdu, 0.0)) / mu;
    if (!(excess > 0.05 && excess < 0.10))
        fprintf(stderr, "T2w WM sd %g fitted, %g uniform, mean %g: excess %g\n", sd, sdu, mu,
                excess);
    assert_true(excess > 0.05 && excess < 0.10);
    rsy_case_destroy(cu);
    rsy_case_destroy(c2);
    rsy_case_destroy(c);

    /* A model class the file lacks, then a working class the recipe lacks: refused before the
     * output directory exists, one line naming the key. */
    char out[1200];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(ts->class_map[1].model, RSY_NAME_MAX, "3");
    tu_log_capture();
    assert_int_equal(rsy_generator_run(r, out, NULL), RSY_ECONFIG);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "texture.classes.white_matter"));
    assert_non_null(strstr(tu_last_error(), "has no class \"3\" (its classes: 1, 2)"));
    assert_int_equal(exists(dir, "out"), 0);
    snprintf(ts->class_map[1].model, RSY_NAME_MAX, "2");
    snprintf(ts->class_map[1].working, RSY_NAME_MAX, "white_mater");
    tu_log_capture();
    assert_int_equal(rsy_generator_run(r, out, NULL), RSY_ECONFIG);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "texture.classes.white_mater: no class"));
    assert_int_equal(exists(dir, "out"), 0);

    free(tab);
    rsy_recipe_destroy(r);
    tu_rmtree(dir);
    free(dir);
}

static void test_texture_limits_agree(void **state)
{
    (void)state;
    assert_int_equal(RSY_MAX_TEXTURE_COMPONENTS, RSY_TEXTURE_MAX_COMPONENTS);
    char *dir = tu_tmpdir("gen-tex");
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/t.json", dir);
    for (int p = RSY_TEXTURE_MAX_PATCH; p <= RSY_TEXTURE_MAX_PATCH + 2; p += 2) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp,
                "{\"raresynth_texture\": 1, \"name\": \"t\", \"patch_size\": %d, \"classes\": "
                "{\"csf\": {\"components\": [{\"correlation_length_mm\": 2}]}}, \"sources\": "
                "[\"GK\"]}",
                p);
        assert_int_equal(fclose(fp), 0);
        rsy_texture_preset *t = NULL;
        tu_log_capture();
        rsy_status rc = rsy_texture_preset_load(&t, path);
        assert_int_equal(rc, p == RSY_TEXTURE_MAX_PATCH ? RSY_OK : RSY_ECONFIG);
        free(t);
    }
    tu_rmtree(dir);
    free(dir);
}

static void test_findings_depend_on_sequences(void **state)
{
    (void)state;
    rsy_recipe *r = load_demo(40, 5.5);
    /* Without the post-contrast sequence, no enhancement is mentioned. */
    int k = 0;
    for (int i = 0; i < r->mri.n_sequences; i++)
        if (!r->mri.sequences[i].contrast)
            r->mri.sequences[k++] = r->mri.sequences[i];
    r->mri.n_sequences = k;
    rsy_case *c = NULL;
    assert_int_equal(rsy_case_generate(r, 1, &c), RSY_OK);
    assert_int_equal(rsy_case_n_channels(c), k);
    assert_null(strstr(rsy_case_findings(c), "enhanc"));
    assert_non_null(strstr(rsy_case_findings(c), "oedema"));
    rsy_case_destroy(c);

    /* Without lesion types: no lesion, all labels background. */
    r->n_lesion_types = 0;
    assert_int_equal(rsy_case_generate(r, 1, &c), RSY_OK);
    assert_int_equal(rsy_case_n_lesions(c), 0);
    assert_string_equal(rsy_case_findings(c), "No focal lesion.");
    const uint8_t *lab = rsy_case_labels(c)->data;
    size_t nvox = rsy_geometry_nvox(&rsy_case_labels(c)->geom);
    for (size_t v = 0; v < nvox; v++)
        assert_int_equal(lab[v], 0);
    rsy_case_destroy(c);
    rsy_recipe_destroy(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Findings text of constructed cases (exact strings)                                        */
/* ---------------------------------------------------------------------------------------- */
static rsy_dist fixed_dist(double x)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_FIXED;
    d.value = x;
    return d;
}

/* Lesion type @p t of @p r, reset: one fixed lesion, host @p host, rule @p rule. */
static rsy_prior *set_type(rsy_recipe *r, int t, const char *name, const char *organ,
                           const char *host, rsy_placement_rule rule, rsy_shape_kind shape)
{
    rsy_lesion_spec *ls = &r->lesions[t];
    memset(ls, 0, sizeof *ls);
    ls->probability = 1.0;
    rsy_prior *p = &ls->prior;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->organ, sizeof p->organ, "%s", organ);
    snprintf(p->path, sizeof p->path, "test_generator.c");
    p->probability = 1.0;
    p->count = fixed_dist(1.0);
    p->diameter_mm = fixed_dist(10.0);
    p->elongation = fixed_dist(1.0);
    p->flatness = fixed_dist(1.0);
    p->lobes = fixed_dist(1.0);
    p->shape_kind = shape;
    p->rule = rule;
    p->n_hosts = 1;
    snprintf(p->hosts[0], RSY_NAME_MAX, "%s", host);
    p->n_allowed = 1;
    snprintf(p->allowed[0], RSY_NAME_MAX, "%s", host);
    if (r->n_lesion_types < t + 1)
        r->n_lesion_types = t + 1;
    return p;
}

static rsy_compartment *add_comp(rsy_prior *p, const char *name, const char *display,
                                 rsy_extent_kind kind, double extent)
{
    rsy_compartment *c = &p->compartments[p->n_compartments++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, RSY_NAME_MAX, "%s", name);
    snprintf(c->display_name, RSY_TEXT_MAX, "%s", display);
    c->extent_kind = kind;
    c->extent = fixed_dist(extent);
    return c;
}

/* CT properties: absolute HU per phase (non-contrast, arterial, portal venous). */
static void ct_abs(rsy_compartment *c, double nc, double art, double pv)
{
    c->has_ct = 1;
    c->ct_mode = RSY_PROPS_ABSOLUTE;
    c->ct[0].hu = nc;
    c->ct[1].hu = art;
    c->ct[2].hu = pv;
}

/* MRI properties relative to tissue @p t. */
static void mri_rel(rsy_compartment *c, const char *t, double t1, double t2, double pd, double gd)
{
    c->has_mri = 1;
    c->props_mode = RSY_PROPS_RELATIVE;
    snprintf(c->relative_to, RSY_NAME_MAX, "%s", t);
    c->t1_factor = t1;
    c->t2_factor = t2;
    c->pd_factor = pd;
    c->gd_mM = gd;
}

/* The lesions of a constructed case and their records. */
#define FC_MAX 64
typedef struct fcase {
    int n;
    rsy__gen_finding_lesion fl[FC_MAX];
    rsy_lesion_record whole[FC_MAX], mass[FC_MAX];
    double extent[FC_MAX][RSY_MAX_COMPARTMENTS];
} fcase;

/* One lesion of type @p t centred in @p host at @p region (zone @p zone) with axes
 * @p long_mm x @p short_mm (on its mass) and @p vox[k] voxels of compartment k. */
static void fc_add(fcase *f, const rsy_recipe *r, const rsy__gen_class *tab, int t,
                   const char *host, const char *region, int zone, double long_mm,
                   double short_mm, const int64_t *vox, double displacement_mm)
{
    assert_true(f->n < FC_MAX);
    int i = f->n++;
    const rsy_prior *p = &r->lesions[t].prior;
    int base = rsy_phantom_n_classes(r->phantom.family) + rsy_lesion_compartment_offset(r, t);
    rsy__gen_finding_lesion *fl = &f->fl[i];
    fl->type_index = t;
    fl->host_class = rsy_phantom_class_id(r->phantom.family, host);
    assert_true(fl->host_class >= 0);
    fl->region = region;
    fl->zone = zone;
    fl->displacement_mm = displacement_mm;
    for (int k = 0; k < p->n_compartments; k++)
        f->extent[i][k] = p->compartments[k].extent.value;
    fl->extent = f->extent[i];
    rsy_lesion_record *w = &f->whole[i], *m = &f->mass[i];
    memset(w, 0, sizeof *w);
    w->instance_id = i + 1;
    for (int k = 0; k < p->n_compartments; k++) {
        w->voxel_count += vox[k];
        w->label_voxels[tab[base + k].label] += vox[k];
        if (p->compartments[k].extent_kind != RSY_EXTENT_MARGIN_MM)
            w->mass_voxel_count += vox[k];
    }
    *m = *w;
    m->voxel_count = w->mass_voxel_count;
    w->long_axis_mm = m->long_axis_mm = long_mm;
    w->short_axis_mm = m->short_axis_mm = short_mm;
}

/* The findings of @p f on a 1 mm grid, compared with @p expect. */
static void fc_expect(const rsy_recipe *r, const fcase *f, const char *expect)
{
    rsy__gen_class *tab = NULL;
    int n = 0;
    assert_int_equal(rsy__gen_class_table(r, &tab, &n), RSY_OK);
    rsy_geometry g;
    memset(&g, 0, sizeof g);
    for (int a = 0; a < 3; a++)
        g.spacing_mm[a] = 1.0;
    char *text = NULL;
    assert_int_equal(rsy__gen_findings(r, tab, &g, f->fl, f->whole, f->mass, f->n, &text), RSY_OK);
    if (strcmp(text, expect) != 0)
        print_error("findings:\n  got    %s\n  expect %s\n", text, expect);
    assert_string_equal(text, expect);
    free(text);
    free(tab);
}

static rsy__gen_class *class_table(const rsy_recipe *r)
{
    rsy__gen_class *tab = NULL;
    int n = 0;
    assert_int_equal(rsy__gen_class_table(r, &tab, &n), RSY_OK);
    return tab;
}

static rsy_recipe *load_ct(const char *path, rsy_ct_phase phase)
{
    const char *dirs[] = {"configs", NULL};
    rsy_recipe *r = NULL;
    assert_int_equal(rsy_recipe_load(&r, path, dirs), RSY_OK);
    r->ct.phase = phase;
    r->n_lesion_types = 0;
    return r;
}

/* Chest CT: many thin-walled air cysts, counted, with side, zone predominance and size range;
 * one solid nodule of another type, described alone; mass effect words only above 0.5 mm. */
static void test_findings_chest_ct(void **state)
{
    (void)state;
    rsy_recipe *r = load_ct("configs/recipes/chest-ct.json", RSY_CT_PHASE_NON_CONTRAST);
    rsy_prior *cyst = set_type(r, 0, "lam", "lung", "lung", RSY_PLACE_HOST_TISSUE,
                               RSY_SHAPE_CYST);
    ct_abs(add_comp(cyst, "cyst_wall", "cyst wall", RSY_EXTENT_WALL_MM, 1.0), 40, 40, 40);
    ct_abs(add_comp(cyst, "cyst_air", "cyst lumen", RSY_EXTENT_RADIUS_FRACTION, 1.0), -990, -990,
           -990);
    rsy_prior *nod = set_type(r, 1, "nodule", "lung", "lung", RSY_PLACE_HOST_TISSUE,
                              RSY_SHAPE_SOLID);
    ct_abs(add_comp(nod, "solid_nodule", "Solid nodule", RSY_EXTENT_RADIUS_FRACTION, 1.0), 40,
           40, 40);
    rsy__gen_class *tab = class_table(r);
    fcase f;
    memset(&f, 0, sizeof f);
    const int64_t cyst_vox[2] = {20, 60};
    /* 37 cysts: 25 in the lower zone, 8 in the middle, 4 in the upper; both lungs; long axes
     * 2..12 mm, the largest in the right lower lobe. */
    for (int i = 0; i < 37; i++) {
        int zone = i < 25 ? 2 : (i < 33 ? 1 : 0);
        const char *region = i % 2 ? "left lower lobe" : "subpleural right lower lobe";
        double L = i == 7 ? 12.0 : 2.0 + (double)(i % 9);
        fc_add(&f, r, tab, 0, "lung", i == 7 ? "right lower lobe" : region, zone, L, 0.8 * L,
               cyst_vox, 0.0);
    }
    const int64_t nod_vox[1] = {300};
    fc_add(&f, r, tab, 1, "lung", "right upper lobe", 0, 9.4, 7.6, nod_vox, 0.3);
    fc_expect(r, &f,
              "Multiple (n = 37) thin-walled cysts, bilateral and lower-zone predominant, "
              "measuring 2 to 12 mm (the largest 12 x 10 mm, in the right lower lobe). "
              "A solid nodule in the right upper lobe (upper zone) measuring 9 x 8 mm (axial long "
              "x short axis).");

    /* Ground glass around a solid part: a part-solid nodule, alone in the case. */
    r->n_lesion_types = 1;
    rsy_prior *gg = set_type(r, 0, "part-solid", "lung", "lung", RSY_PLACE_HOST_TISSUE,
                             RSY_SHAPE_SOLID);
    ct_abs(add_comp(gg, "solid_part", "solid component", RSY_EXTENT_RADIUS_FRACTION, 0.4), 30, 30,
           30);
    ct_abs(add_comp(gg, "ground_glass", "ground-glass opacity", RSY_EXTENT_RADIUS_FRACTION, 1.0),
           -600, -600, -600);
    free(tab);
    tab = class_table(r);
    memset(&f, 0, sizeof f);
    const int64_t gg_vox[2] = {30, 400};
    fc_add(&f, r, tab, 0, "lung", "left upper lobe", 1, 14.2, 11.0, gg_vox, 0.0);
    fc_expect(r, &f,
              "Solitary part-solid nodule in the left upper lobe (middle zone) measuring 14 x 11 "
              "mm (axial long x short axis), with a solid component of about 4 mm. No other "
              "lesion.");
    free(tab);
    rsy_recipe_destroy(r);
}

/* Abdomen CT: a kidney lesion with macroscopic fat in the arterial phase; hepatic cysts of
 * fluid attenuation in both lobes in the portal venous phase. */
static void test_findings_abdomen_ct(void **state)
{
    (void)state;
    rsy_recipe *r = load_ct("configs/recipes/abdomen-ct.json", RSY_CT_PHASE_ARTERIAL);
    rsy_prior *aml = set_type(r, 0, "aml", "kidney", "kidney_cortex", RSY_PLACE_HOST_TISSUE,
                              RSY_SHAPE_SOLID);
    ct_abs(add_comp(aml, "aml_soft", "angiomyogenic tissue", RSY_EXTENT_RADIUS_FRACTION, 1.0), 40,
           95, 80);
    ct_abs(add_comp(aml, "aml_fat", "Macroscopic fat", RSY_EXTENT_INCLUSIONS, 0.3), -90, -90,
           -90);
    rsy__gen_class *tab = class_table(r);
    fcase f;
    memset(&f, 0, sizeof f);
    const int64_t aml_vox[2] = {5000, 1500};
    fc_add(&f, r, tab, 0, "kidney_cortex", "right kidney interpolar region", 1, 24.4, 19.6,
           aml_vox, 0.0);
    fc_expect(r, &f,
              "Solitary lesion in the right kidney interpolar region measuring 24 x 20 mm (axial "
              "long x short axis), enhancing, hypoattenuating to kidney cortex in the arterial "
              "phase, containing macroscopic fat. No other lesion.");
    free(tab);

    r->ct.phase = RSY_CT_PHASE_PORTAL_VENOUS;
    rsy_prior *cy = set_type(r, 0, "hepatic-cyst", "liver", "liver", RSY_PLACE_HOST_TISSUE,
                             RSY_SHAPE_CYST);
    ct_abs(add_comp(cy, "cyst_wall", "cyst wall", RSY_EXTENT_WALL_MM, 0.8), 45, 60, 70);
    ct_abs(add_comp(cy, "cyst_fluid", "cyst fluid", RSY_EXTENT_RADIUS_FRACTION, 1.0), 5, 5, 5);
    tab = class_table(r);
    memset(&f, 0, sizeof f);
    const int64_t cy_vox[2] = {100, 900};
    static const char *const regions[7] = {
        "right hepatic lobe (segment VII)", "left hepatic lobe (segment II)",
        "subcapsular right hepatic lobe (segment VI)", "right hepatic lobe (segment V)",
        "left hepatic lobe (segment III)", "right hepatic lobe (segment VIII)",
        "caudate lobe (segment I)"};
    for (int i = 0; i < 7; i++)
        fc_add(&f, r, tab, 0, "liver", regions[i], -1, i == 0 ? 40.3 : 5.0 + 4.0 * i,
               i == 0 ? 35.0 : 4.0 + 3.0 * i, cy_vox, 0.0);
    fc_expect(r, &f,
              "Multiple (n = 7) thin-walled cysts in both hepatic lobes, measuring 9 to 40 mm "
              "(the largest 40 x 35 mm, in the right hepatic lobe (segment VII)), of fluid "
              "attenuation.");
    free(tab);

    /* An enhancing capsule (a wall whose name says "enhancing": not said twice, and the phase
     * once per passage), an enhancing inclusion in the "with" list, mass effect; and a lesion
     * one voxel wide. */
    rsy_prior *hcc = set_type(r, 0, "hcc", "liver", "liver", RSY_PLACE_HOST_TISSUE,
                              RSY_SHAPE_SOLID);
    ct_abs(add_comp(hcc, "hcc_tumour", "tumour", RSY_EXTENT_RADIUS_FRACTION, 1.0), 40, 100, 70);
    ct_abs(add_comp(hcc, "hcc_capsule", "enhancing capsule", RSY_EXTENT_WALL_MM, 1.6), 40, 60,
           95);
    ct_abs(add_comp(hcc, "hcc_nodules", "nodular enhancement", RSY_EXTENT_INCLUSIONS, 0.1), 40,
           160, 150);
    tab = class_table(r);
    memset(&f, 0, sizeof f);
    const int64_t hcc_vox[3] = {12000, 900, 400};
    fc_add(&f, r, tab, 0, "liver", "right hepatic lobe (segment VIII)", -1, 31.2, 27.9, hcc_vox,
           2.2);
    const int64_t dot_vox[3] = {1, 0, 0};
    fc_add(&f, r, tab, 0, "liver", "left hepatic lobe (segment III)", -1, 0.0, 0.0, dot_vox,
           0.0);
    fc_expect(r, &f,
              "Two lesions in both hepatic lobes, enhancing, hypoattenuating to liver in the "
              "portal venous phase, with an enhancing capsule about 2 mm thick and nodular "
              "enhancement: in the right hepatic lobe (segment VIII) (31 x 28 mm) and in the left "
              "hepatic lobe (segment III) (under 1 mm). Local mass effect, with displacement of "
              "the adjacent structures by up to 2 mm.");
    free(tab);
    rsy_recipe_destroy(r);
}

/* Brain MRI: a mass with core, rim, oedema and mass effect; three lesions at the grey-white
 * junction listed; a subependymal nodule; a periventricular lesion beside other types. */
static void test_findings_brain_mri(void **state)
{
    (void)state;
    rsy_recipe *r = load_demo(32, 7.0);
    r->n_lesion_types = 0;
    rsy_prior *gbm = set_type(r, 0, "gbm", "brain", "white_matter", RSY_PLACE_HOST_TISSUE,
                              RSY_SHAPE_SOLID);
    gbm->lobulation_lmax = 4;
    gbm->lobulation_amplitude = 0.15;
    mri_rel(add_comp(gbm, "necrotic_core", "necrotic core", RSY_EXTENT_RADIUS_FRACTION, 0.6),
            "csf", 1.0, 1.0, 1.0, 0.0);
    mri_rel(add_comp(gbm, "oedema", "peritumoral oedema", RSY_EXTENT_MARGIN_MM, 10.0),
            "white_matter", 1.35, 1.71, 1.0, 0.0);
    mri_rel(add_comp(gbm, "enhancing_tumour", "enhancing tumour", RSY_EXTENT_RADIUS_FRACTION, 1.0),
            "white_matter", 2.0, 2.37, 1.0, 0.5);
    rsy__gen_class *tab = class_table(r);
    fcase f;
    memset(&f, 0, sizeof f);
    /* core 14137 voxels (30 mm sphere), mass 33510 (40 mm): rim (40 - 30) / 2 = 5 mm. */
    const int64_t gbm_vox[3] = {14137, 30000, 33510 - 14137};
    fc_add(&f, r, tab, 0, "white_matter", "right frontal lobe", -1, 46.2, 38.4, gbm_vox, 4.3);
    fc_expect(r, &f,
              "Solitary intra-axial mass in the right frontal lobe measuring 46 x 38 mm (axial "
              "long x short axis), with a necrotic core, an irregular enhancing rim about 5 mm "
              "thick on post-contrast T1 and surrounding T2/FLAIR hyperintense peritumoral oedema "
              "(volume 30.0 mL). Local mass effect, with displacement of the adjacent structures "
              "by up to 4 mm. No other lesion.");
    free(tab);

    /* Tuberous sclerosis: tubers at the grey-white junction and a subependymal nodule with a
     * T2 hypointense haemosiderin-like wall (MRI words from the wall's properties). */
    r->n_lesion_types = 0;
    rsy_prior *tuber = set_type(r, 0, "tsc/cortical_tuber", "brain", "white_matter",
                                RSY_PLACE_GREY_WHITE_JUNCTION, RSY_SHAPE_SOLID);
    mri_rel(add_comp(tuber, "tuber", "Cortical tuber", RSY_EXTENT_RADIUS_FRACTION, 1.0),
            "white_matter", 1.3, 1.6, 1.05, 0.0);
    rsy_prior *sen = set_type(r, 1, "tsc/subependymal_nodule", "brain", "white_matter",
                              RSY_PLACE_SUBEPENDYMAL, RSY_SHAPE_SOLID);
    mri_rel(add_comp(sen, "sen", "subependymal nodule", RSY_EXTENT_RADIUS_FRACTION, 1.0),
            "white_matter", 0.9, 1.0, 1.0, 0.3);
    mri_rel(add_comp(sen, "sen_rim", "haemosiderin rim", RSY_EXTENT_WALL_MM, 1.2), "white_matter",
            1.0, 0.3, 0.8, 0.0);
    tab = class_table(r);
    memset(&f, 0, sizeof f);
    const int64_t t_vox[1] = {800};
    fc_add(&f, r, tab, 0, "white_matter", "right frontal lobe", -1, 12.4, 9.1, t_vox, 0.0);
    fc_add(&f, r, tab, 0, "white_matter", "left parietal lobe", -1, 8.2, 6.6, t_vox, 0.0);
    fc_add(&f, r, tab, 0, "white_matter", "right occipital lobe", -1, 15.0, 10.0, t_vox, 0.0);
    const int64_t s_vox[2] = {120, 60};
    fc_add(&f, r, tab, 1, "white_matter", "left basal ganglia", -1, 6.4, 5.2, s_vox, 0.0);
    fc_expect(r, &f,
              "Three intra-axial lesions at the grey-white matter junction, bilateral, T2/FLAIR "
              "hyperintense, without enhancement: in the right frontal lobe (12 x 9 mm), in the "
              "left parietal lobe (8 x 7 mm) and in the right occipital lobe (15 x 10 mm). A "
              "subependymal nodule along the left lateral ventricle measuring 6 x 5 mm (axial "
              "long x short axis), isointense to white matter, enhancing on post-contrast T1, "
              "with a T1/T2/FLAIR hypointense haemosiderin rim about 1 mm thick.");
    free(tab);

    /* Demyelinating plaques (13, periventricular) and an extra-axial mass, whose region the
     * head phantom words as extra-axial space. */
    r->n_lesion_types = 0;
    rsy_prior *ms = set_type(r, 0, "ms", "brain", "white_matter", RSY_PLACE_PERIVENTRICULAR,
                             RSY_SHAPE_SOLID);
    mri_rel(add_comp(ms, "plaque", "plaque", RSY_EXTENT_RADIUS_FRACTION, 1.0), "white_matter",
            1.5, 2.8, 1.05, 0.0);
    rsy_prior *men = set_type(r, 1, "meningioma", "brain", "csf", RSY_PLACE_EXTRA_AXIAL,
                              RSY_SHAPE_SOLID);
    mri_rel(add_comp(men, "meningioma", "meningioma", RSY_EXTENT_RADIUS_FRACTION, 1.0),
            "grey_matter", 1.0, 1.0, 1.0, 0.4);
    tab = class_table(r);
    memset(&f, 0, sizeof f);
    const int64_t p_vox[1] = {50};
    for (int i = 0; i < 13; i++)
        fc_add(&f, r, tab, 0, "white_matter", i % 3 ? "right parietal lobe" : "left frontal lobe",
               -1, i == 4 ? 14.6 : 3.2 + 0.5 * i, 3.0, p_vox, 0.0);
    const int64_t m_vox[1] = {20000};
    fc_add(&f, r, tab, 1, "csf", "right extra-axial space over the frontal lobe", -1, 35.0, 28.0,
           m_vox, 2.0);
    fc_expect(r, &f,
              "Multiple (n = 13) periventricular lesions, bilateral, measuring 3 to 15 mm (the "
              "largest 15 x 3 mm, in the right parietal lobe), T2/FLAIR hyperintense and T1 "
              "hypointense, without enhancement. An extra-axial mass over the right frontal lobe "
              "measuring 35 x 28 mm (axial long x short axis), isointense to grey matter, "
              "enhancing on post-contrast T1. Local "
              "mass effect, with displacement of the adjacent structures by up to 2 mm.");
    free(tab);
    rsy_recipe_destroy(r);
}

/* Lesion records do not depend on how the spacing is rounded: a reader of the NIfTI file sees
 * the spacing as float32 (2.2 mm becomes 2.2000000477 mm), and the validator and
 * tests/check_dataset.py measure with it. Two slices whose longest chords tie in voxels
 * (8^2 + 1^2 = 7^2 + 4^2 = 65) but not in double-precision millimetres at 2.2 mm must give
 * the same key slice (the first, by the tie rule) and the same axes at both spacings. */
static void test_records_spacing_rounding(void **state)
{
    (void)state;
    const double spacings[2] = {2.2, (double)(float)2.2};
    rsy_lesion_record rec[2];
    for (int t = 0; t < 2; t++) {
        rsy_geometry g;
        const int64_t dims[3] = {16, 16, 2};
        const double sp[3] = {spacings[t], spacings[t], spacings[t]};
        assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
        rsy_volume *inst = NULL, *lab = NULL;
        assert_int_equal(rsy_volume_create(&inst, &g, RSY_DTYPE_UINT16), RSY_OK);
        assert_int_equal(rsy_volume_create(&lab, &g, RSY_DTYPE_UINT8), RSY_OK);
        uint16_t *in = inst->data;
        uint8_t *lb = lab->data;
        /* slice 0: (2, 2) and (10, 3); slice 1: (2, 2) and (9, 6) */
        const int vox[4][3] = {{2, 2, 0}, {10, 3, 0}, {2, 2, 1}, {9, 6, 1}};
        for (int v = 0; v < 4; v++) {
            size_t idx = (size_t)vox[v][0] + 16u * ((size_t)vox[v][1] + 16u * (size_t)vox[v][2]);
            in[idx] = 1;
            lb[idx] = 1;
        }
        assert_int_equal(rsy_export_measure_lesions(inst, lab, 1, NULL, &rec[t]), RSY_OK);
        rsy_volume_destroy(lab);
        rsy_volume_destroy(inst);
    }
    assert_int_equal(rec[0].key_slice, 0);
    assert_int_equal(rec[1].key_slice, 0);
    /* sqrt(65) voxels; the two spacings differ by 2e-8 relative. */
    assert_float_equal(rec[0].long_axis_mm, sqrt(65.0) * 2.2, 1e-9);
    assert_float_equal(rec[1].long_axis_mm, rec[0].long_axis_mm, 1e-6);
    assert_float_equal(rec[1].short_axis_mm, rec[0].short_axis_mm, 1e-6);
}

static void test_case_errors(void **state)
{
    (void)state;
    tu_log_capture();
    rsy_case *c = NULL;
    assert_int_equal(rsy_case_generate(NULL, 0, &c), RSY_EINVAL);
    assert_null(c);
    rsy_recipe *r = load_demo(40, 5.5);
    snprintf(r->modality, sizeof r->modality, "pet");
    assert_int_equal(rsy_case_generate(r, 0, &c), RSY_EINVAL);
    assert_null(c);
    assert_non_null(strstr(tu_last_error(), "modality"));
    snprintf(r->modality, sizeof r->modality, "mri");
    snprintf(r->mri.sequences[0].noise_reference, RSY_NAME_MAX, "no_such_tissue");
    assert_int_equal(rsy_case_generate(r, 0, &c), RSY_EINVAL);
    assert_null(c);
    assert_non_null(strstr(tu_last_error(), "no_such_tissue"));
    /* A compartment without MRI properties in an MRI recipe (a hand-made one: the loader
     * requires them). */
    snprintf(r->mri.sequences[0].noise_reference, RSY_NAME_MAX, "white_matter");
    r->lesions[0].prior.compartments[1].has_mri = 0;
    assert_int_equal(rsy_case_generate(r, 0, &c), RSY_EINVAL);
    assert_null(c);
    assert_non_null(strstr(tu_last_error(), "gives no MRI properties"));
    /* Accessors accept NULL. */
    assert_int_equal(rsy_case_n_channels(NULL), 0);
    assert_null(rsy_case_labels(NULL));
    rsy_case_destroy(NULL);
    rsy_recipe_destroy(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Whole runs                                                                                 */
/* ---------------------------------------------------------------------------------------- */
#define MAX_FILES 256
static struct {
    char rel[MAX_FILES][512];
    char sha[MAX_FILES][65];
    int n;
    size_t root_len;
} walk;

static int walk_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag != FTW_F || walk.n >= MAX_FILES)
        return 0;
    snprintf(walk.rel[walk.n], sizeof walk.rel[0], "%s", path + walk.root_len);
    if (rsy_sha256_file(path, walk.sha[walk.n]) != RSY_OK)
        return 1;
    walk.n++;
    return 0;
}

static int cmp_index_by_rel(const void *a, const void *b)
{
    return strcmp(walk.rel[*(const int *)a], walk.rel[*(const int *)b]);
}

/* Sorted "relative-path sha256" lines of every file under @p dir, newline-joined. */
static char *tree_digest(const char *dir)
{
    walk.n = 0;
    walk.root_len = strlen(dir);
    assert_int_equal(nftw(dir, walk_cb, 16, FTW_PHYS), 0);
    assert_true(walk.n < MAX_FILES);
    int order[MAX_FILES] = {0};
    for (int i = 0; i < walk.n; i++)
        order[i] = i;
    qsort(order, (size_t)walk.n, sizeof order[0], cmp_index_by_rel);
    size_t cap = (size_t)walk.n * (512 + 66) + 1;
    char *out = calloc(1, cap);
    assert_non_null(out);
    size_t len = 0;
    for (int i = 0; i < walk.n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s %s\n", walk.rel[order[i]],
                                walk.sha[order[i]]);
    return out;
}

static int exists(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof p, "%s%s%s", dir, name ? "/" : "", name ? name : "");
    struct stat st;
    return stat(p, &st) == 0;
}

static void progress_count(size_t done, size_t total, void *user)
{
    size_t *last = user;
    assert_true(done >= 1 && done <= total);
    *last = done;
}

static void test_run_deterministic_across_threads(void **state)
{
    (void)state;
    tu_log_capture();
    rsy_recipe *r = load_demo(40, 5.5);
    r->cases = 3;
    char *base = tu_tmpdir("gen-det");
    assert_non_null(base);
    char d1[1024], d2[1024];
    snprintf(d1, sizeof d1, "%s/j1", base);
    snprintf(d2, sizeof d2, "%s/j2", base);

    rsy_run_options o = rsy_run_options_default();
    assert_int_equal(o.n_threads, 1);
    size_t last = 0;
    o.progress = progress_count;
    o.progress_user = &last;
    rsy_status rc = rsy_generator_run(r, d1, &o);
    if (rc != RSY_OK)
        fprintf(stderr, "run -j1: %s: %s\n", rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    assert_int_equal(last, 3);
    o.n_threads = 2;
    last = 0;
    assert_int_equal(rsy_generator_run(r, d2, &o), RSY_OK);
    assert_int_equal(last, 3);
    assert_true(exists(d1, "raresynth.json"));

    char *t1 = tree_digest(d1);
    int n1 = walk.n;
    char *t2 = tree_digest(d2);
    assert_true(n1 >= 3 * (r->mri.n_sequences + 1)); /* images and labels at least */
    assert_int_equal(n1, walk.n);
    if (strcmp(t1, t2) != 0)
        fprintf(stderr, "-j1:\n%s\n-j2:\n%s\n", t1, t2);
    assert_string_equal(t1, t2);
    free(t1);
    free(t2);
    tu_rmtree(base);
    free(base);
    rsy_recipe_destroy(r);
}

static void test_run_cancel_and_limit(void **state)
{
    (void)state;
    tu_log_capture();
    rsy_recipe *r = load_demo(40, 5.5);
    r->cases = 2;
    char *base = tu_tmpdir("gen-cancel");
    assert_non_null(base);
    char d[1024];

    /* A cancel flag raised before the start: nothing generated, no raresynth.json. */
    snprintf(d, sizeof d, "%s/cancelled", base);
    volatile sig_atomic_t flag = 1;
    rsy_run_options o = rsy_run_options_default();
    o.cancel = &flag;
    assert_int_equal(rsy_generator_run(r, d, &o), RSY_ECANCELED);
    assert_false(exists(d, "raresynth.json"));

    /* A 1 MiB memory limit: refused with one line naming both figures, before any
     * directory is created. */
    snprintf(d, sizeof d, "%s/limited", base);
    o = rsy_run_options_default();
    o.max_memory_bytes = 1u << 20;
    int errors = tu_errors();
    assert_int_equal(rsy_generator_run(r, d, &o), RSY_ELIMIT);
    assert_int_equal(tu_errors(), errors + 1);
    assert_non_null(strstr(tu_last_error(), "over the limit of"));
    assert_non_null(strstr(tu_last_error(), "--max-memory"));
    assert_false(exists(d, NULL));

    /* Bad arguments. */
    o = rsy_run_options_default();
    o.n_threads = 0;
    assert_int_equal(rsy_generator_run(r, d, &o), RSY_EINVAL);
    assert_int_equal(rsy_generator_run(NULL, d, NULL), RSY_EINVAL);
    assert_false(exists(d, NULL));
    tu_rmtree(base);
    free(base);
    rsy_recipe_destroy(r);
}

/* Shards, merge and resume through the library: shards 0/2 and 1/2 hold cases {0, 2} and {1},
 * their merge (given in reverse order) equals the single run byte for byte, and so does a
 * resume after a case and the completion mark were lost; a resume of another seed, bad shard
 * numbers and an incomplete set of shards are refused. */
static void test_run_shards_merge_resume(void **state)
{
    (void)state;
    tu_log_capture();
    rsy_recipe *r = load_demo(40, 5.5);
    r->cases = 3;
    char *base = tu_tmpdir("gen-shards");
    assert_non_null(base);
    char full[1024], s0[1024], s1[1024], merged[1024], path[1100];
    snprintf(full, sizeof full, "%s/full", base);
    snprintf(s0, sizeof s0, "%s/s0", base);
    snprintf(s1, sizeof s1, "%s/s1", base);
    snprintf(merged, sizeof merged, "%s/merged", base);

    rsy_run_options o = rsy_run_options_default();
    assert_int_equal(o.layouts, 0);
    assert_int_equal(o.resume, 0);
    assert_int_equal(o.shard_count, 0);
    o.n_threads = 2;
    assert_int_equal(rsy_generator_run(r, full, &o), RSY_OK);
    assert_true(exists(full, RSY_EXPORT_RUN_STATE));

    o.shard_count = 2;
    o.shard_index = 0;
    rsy_status rc = rsy_generator_run(r, s0, &o);
    if (rc != RSY_OK)
        fprintf(stderr, "shard 0/2: %s: %s\n", rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    o.shard_index = 1;
    assert_int_equal(rsy_generator_run(r, s1, &o), RSY_OK);
    assert_true(exists(s0, "manifests/case_0000.json"));
    assert_false(exists(s0, "manifests/case_0001.json"));
    assert_true(exists(s0, "manifests/case_0002.json"));
    assert_true(exists(s1, "manifests/case_0001.json"));
    assert_false(exists(s1, "manifests/case_0000.json"));

    rsy_shard_info info;
    assert_int_equal(rsy_export_shard_info(s1, &info), RSY_OK);
    assert_int_equal(info.shard_index, 1);
    assert_int_equal(info.shard_count, 2);
    assert_int_equal(info.cases, 3);
    assert_true(info.seed == r->seed);
    assert_string_equal(info.recipe_sha256, r->sha256);
    assert_true(info.recipe_path[0] == '/');
    assert_int_equal(rsy_export_shard_info(full, &info), RSY_OK);
    assert_int_equal(info.shard_count, 1);
    assert_string_equal(info.recipe_path, "");

    /* Bad shard numbers: refused before the directory is made. */
    snprintf(path, sizeof path, "%s/bad", base);
    o.shard_index = 2;
    assert_int_equal(rsy_generator_run(r, path, &o), RSY_EINVAL);
    o.shard_count = 1;
    o.shard_index = 1;
    assert_int_equal(rsy_generator_run(r, path, &o), RSY_EINVAL);
    assert_false(exists(path, NULL));

    /* Merge: one shard missing, then both in reverse order. */
    rsy_run_options m = rsy_run_options_default();
    m.n_threads = 2;
    const char *one[] = {s0};
    assert_int_equal(rsy_generator_merge(r, one, 1, merged, &m), RSY_ECONFIG);
    assert_non_null(strstr(tu_last_error(), "shard 1 of 2 is missing"));
    assert_false(exists(merged, NULL));
    const char *both[] = {s1, s0};
    rc = rsy_generator_merge(r, both, 2, merged, &m);
    if (rc != RSY_OK)
        fprintf(stderr, "merge: %s: %s\n", rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    char *t_full = tree_digest(full);
    char *t_merged = tree_digest(merged);
    if (strcmp(t_full, t_merged) != 0)
        fprintf(stderr, "single run:\n%s\nmerged:\n%s\n", t_full, t_merged);
    assert_string_equal(t_full, t_merged);

    /* Resume after losing a case manifest and the completion mark. */
    snprintf(path, sizeof path, "%s/manifests/case_0001.json", full);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/raresynth.json", full);
    assert_int_equal(unlink(path), 0);
    rsy_run_options res = rsy_run_options_default();
    res.resume = 1;
    res.n_threads = 2;
    uint64_t seed = r->seed;
    r->seed = seed + 1;
    int errors = tu_errors();
    assert_int_equal(rsy_generator_run(r, full, &res), RSY_ECONFIG);
    assert_true(tu_errors() > errors);
    assert_non_null(strstr(tu_last_error(), "seed"));
    r->seed = seed;
    assert_int_equal(rsy_generator_run(r, full, &res), RSY_OK);
    char *t_resumed = tree_digest(full);
    assert_string_equal(t_full, t_resumed);

    free(t_full);
    free(t_merged);
    free(t_resumed);
    tu_rmtree(base);
    free(base);
    rsy_recipe_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spin_echo),
        cmocka_unit_test(test_flair_null_point),
        cmocka_unit_test(test_spgr_ernst),
        cmocka_unit_test(test_gd_shortening),
        cmocka_unit_test(test_contrast_ordering_3t),
        cmocka_unit_test(test_rician_statistics),
        cmocka_unit_test(test_bias_field),
        cmocka_unit_test(test_label_names),
        cmocka_unit_test(test_case_end_to_end),
        cmocka_unit_test(test_texture_case),
        cmocka_unit_test(test_texture_limits_agree),
        cmocka_unit_test(test_findings_depend_on_sequences),
        cmocka_unit_test(test_findings_chest_ct),
        cmocka_unit_test(test_findings_abdomen_ct),
        cmocka_unit_test(test_findings_brain_mri),
        cmocka_unit_test(test_records_spacing_rounding),
        cmocka_unit_test(test_case_errors),
        cmocka_unit_test(test_run_deterministic_across_threads),
        cmocka_unit_test(test_run_cancel_and_limit),
        cmocka_unit_test(test_run_shards_merge_resume),
        cmocka_unit_test(test_fitted_texture),
    };
    tu_log_capture();
    return cmocka_run_group_tests_name("generator", tests, NULL, NULL);
}
