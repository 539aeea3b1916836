/*
 * test_ct_case.c: CT recipes through the case pipeline (generator/ct_case.c, generator/case.c).
 *
 * An abdomen in the portal venous phase at 64 x 64 x 32 voxels of 6 mm, through the
 * projection-domain dose model of a quantum-limited scanner profile (the ct-standard profile,
 * Hann kernel and I0 per 1 mm, without electronic noise, written to a scratch directory;
 * slices as thick as the 6 mm spacing), texture uniform:
 * - HU of the eroded liver, spleen and muscle at full dose within +-5 HU of the table means
 *   (configs/tissues/ct-body.json: 114, 120, 45). The per-voxel noise SD at full dose is about
 *   7 HU, so the mean over >= 100 interior voxels has a standard error <= 1 HU (more with the
 *   kernel's correlation), and the masks, eroded by two voxels in-plane (the Hann kernel's
 *   edge response) and one along k, keep the partial-volume edges out;
 * - the dose channels of one case share the label map byte for byte (the labels of a recipe
 *   with the low dose only are identical), a channel does not change when another is added,
 *   and the noise SD at 25% dose over that at 100% is 2.0 +- 0.15 (quantum-limited: the
 *   variance of a log-transformed Poisson count is 1/N, N proportional to dose; the SDs are
 *   measured against the noise-free reconstruction over thousands of interior voxels,
 *   standard error of the ratio about 0.03);
 * - a case is byte-identical with a shared reconstructor and 1 texture thread or its own
 *   reconstructor and 2 threads;
 * - the fast image-domain noise model gives the same mean HU and a noise SD within 15% of
 *   the projection model's (its calibration, docs/ct.md).
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

#include <cmocka.h>

#include "generator_internal.h"
#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_generator.h"
#include "rsy_phantoms.h"
#include "test_util.h"

static const char *const search_configs[] = {"configs", NULL};

/* Write the scratch tree DIR/scanners/ct-quantum.json + DIR/recipes/NAME.json, the profile
 * with the slice thickness @p thickness (a JSON number; NULL: unset, the z spacing); return
 * the recipe's path in @p path and rsy_recipe_load's status, the recipe in @p out. */
static rsy_status try_load(const char *dir, const char *name, const char *doses,
                           const char *noise_model, const char *thickness, char path[1024],
                           rsy_recipe **out)
{
    snprintf(path, 1024, "%s/scanners", dir);
    mkdir(path, 0700);
    snprintf(path, 1024, "%s/recipes", dir);
    mkdir(path, 0700);
    snprintf(path, 1024, "%s/scanners/ct-quantum.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* ct-standard [S22, S27] (its Hann kernel and I₀ per 1 mm) without electronic noise. */
    fprintf(f,
            "{\"raresynth_scanner\": 1, \"name\": \"ct-quantum\", \"modality\": \"ct\",\n"
            " \"kernel\": \"hann\", \"i0_photons\": 100000, \"electronic_noise_sd\": 0,\n"
            " \"mu_water_per_mm\": 0.01879, %s%s%s \"psf_fwhm_mm\": 1.0,\n"
            " \"sources\": [\"S22 RTK\", \"S27 TIGRE\"]}\n",
            thickness ? "\"slice_thickness_mm\": " : "", thickness ? thickness : "",
            thickness ? "," : "");
    fclose(f);
    snprintf(path, 1024, "%s/recipes/%s.json", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"raresynth_recipe\": 1, \"name\": \"CtTest\", \"dataset_id\": 990,\n"
            " \"cases\": 2, \"seed\": \"77\",\n"
            " \"phantom\": {\"family\": \"abdomen\", \"dims\": [64, 64, 32], \"spacing_mm\": 6},\n"
            " \"acquisition\": {\"modality\": \"ct\", \"tissues\": \"ct-body\",\n"
            "   \"scanner\": \"ct-quantum\", \"phase\": \"portal_venous\", \"doses\": %s,\n"
            "   \"noise_model\": \"%s\"},\n"
            " \"texture\": {\"model\": \"uniform\"},\n"
            " \"output\": {\"labels\": \"tissues+lesions\"}}\n",
            doses, noise_model);
    fclose(f);
    *out = NULL;
    tu_log_capture();
    return rsy_recipe_load(out, path, search_configs);
}

/* try_load, which must succeed. */
static rsy_recipe *load_recipe(const char *dir, const char *name, const char *doses,
                               const char *noise_model, const char *thickness)
{
    char path[1024];
    rsy_recipe *r = NULL;
    rsy_status rc = try_load(dir, name, doses, noise_model, thickness, path, &r);
    if (rc != RSY_OK)
        print_error("%s: %s\n", path, tu_last_error());
    assert_int_equal(rc, RSY_OK);
    return r;
}

static rsy_case *make_case(const rsy_recipe *r, const rsy_ct_fbp *fbp, int threads)
{
    rsy_case *c = NULL;
    rsy_status rc = rsy__case_generate(r, 0, NULL, fbp, threads, &c);
    if (rc != RSY_OK)
        print_error("case: %s (%s)\n", rsy_strerror(rc), tu_last_error());
    assert_int_equal(rc, RSY_OK);
    return c;
}

static int class_id(const char *name)
{
    for (int i = 0; i < rsy_phantom_n_classes("abdomen"); i++)
        if (strcmp(rsy_phantom_class_name("abdomen", i), name) == 0)
            return i;
    fail_msg("no abdomen class \"%s\"", name);
    return -1;
}

/* Mean and SD of channel @p img over the voxels of class @p cls whose face neighbours up to
 * @p e voxels along i and j and one along k are of the same class (erosion). Returns the
 * voxel count. */
static size_t interior_stats(const rsy_volume *classes, const rsy_volume *img, int cls, int e,
                             double *mean, double *sd)
{
    const int64_t *d = classes->geom.dims;
    const uint16_t *cl = classes->data;
    const int16_t *x = img->data;
    assert_int_equal(img->dtype, RSY_DTYPE_INT16);
    double s = 0.0, s2 = 0.0;
    size_t n = 0;
    int64_t sx = 1, sy = d[0], sz = d[0] * d[1];
    for (int64_t k = 1; k < d[2] - 1; k++)
        for (int64_t j = e; j < d[1] - e; j++)
            for (int64_t i = e; i < d[0] - e; i++) {
                int64_t v = i + sy * j + sz * k;
                int in = cl[v] == cls && cl[v - sz] == cls && cl[v + sz] == cls;
                for (int64_t o = 1; o <= e && in; o++)
                    in = cl[v - o * sx] == cls && cl[v + o * sx] == cls && cl[v - o * sy] == cls &&
                         cl[v + o * sy] == cls;
                if (!in)
                    continue;
                s += x[v];
                s2 += (double)x[v] * x[v];
                n++;
            }
    *mean = n ? s / (double)n : NAN;
    *sd = n > 1 ? sqrt((s2 - (double)n * *mean * *mean) / (double)(n - 1)) : NAN;
    return n;
}

/* The case's measured noise SD of channel @p ch (acquisition key channel_CH.noise_sd_hu). */
static double noise_sd_of(const rsy_case *c, int ch)
{
    rsy_case_data d;
    rsy__case_data(c, &d);
    char key[64];
    snprintf(key, sizeof key, "channel_%d.noise_sd_hu", ch);
    for (int i = 0; i < d.n_acquisition; i++)
        if (strcmp(d.acquisition[i].key, key) == 0)
            return d.acquisition[i].number;
    fail_msg("no acquisition key %s", key);
    return NAN;
}

static int volumes_equal(const rsy_volume *a, const rsy_volume *b)
{
    return a->dtype == b->dtype && memcmp(a->geom.dims, b->geom.dims, sizeof a->geom.dims) == 0 &&
           memcmp(a->data, b->data, rsy_geometry_nvox(&a->geom) * rsy_dtype_size(a->dtype)) == 0;
}

static void test_hu_noise_and_pairs(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("ct_case");
    assert_non_null(dir);
    rsy_recipe *r = load_recipe(dir, "pair", "[1.0, 0.25]", "projection", NULL);
    rsy_ct_fbp *fbp = NULL;
    assert_int_equal(rsy__gen_ct_fbp_create(r, &fbp), RSY_OK);
    rsy_case *c = make_case(r, fbp, 1);
    assert_int_equal(rsy_case_n_channels(c), 2);
    const rsy_volume *classes = rsy_case_classes(c);
    const rsy_volume *full = rsy_case_channel(c, 0), *low = rsy_case_channel(c, 1);

    /* Organ HU at full dose against the table's portal venous means. */
    static const struct {
        const char *name;
        double hu;
    } organs[] = {{"liver", 114.0}, {"spleen", 120.0}, {"muscle", 45.0}};
    for (size_t o = 0; o < sizeof organs / sizeof organs[0]; o++) {
        double mean, sd;
        size_t n = interior_stats(classes, full, class_id(organs[o].name), 2, &mean, &sd);
        print_message("%-7s %5zu interior voxels: %7.2f HU (table %g), SD %.1f\n", organs[o].name,
                      n, mean, organs[o].hu, sd);
        assert_true(n >= 100);
        assert_true(fabs(mean - organs[o].hu) <= 5.0);
    }

    /* Noise: the case's own measurement against the noise-free reconstruction over all
     * interior voxels (the image minus the table mean would also count the reconstruction's
     * deterministic error, which does not scale with dose). */
    double sd_full = noise_sd_of(c, 0), sd_low = noise_sd_of(c, 1);
    print_message("noise SD full %.2f, 25%% %.2f HU (ratio %.3f)\n", sd_full, sd_low,
                  sd_low / sd_full);
    assert_true(sd_full > 1.0);
    assert_true(fabs(sd_low / sd_full - 2.0) <= 0.15);
    assert_false(volumes_equal(full, low));

    /* Pairs: a recipe with the low dose only has the same classes and labels byte for byte;
     * one with the full dose only has the same full-dose channel. */
    rsy_recipe *r_low = load_recipe(dir, "low", "[0.25]", "projection", NULL);
    rsy_case *c_low = make_case(r_low, fbp, 1);
    assert_true(volumes_equal(rsy_case_labels(c), rsy_case_labels(c_low)));
    assert_true(volumes_equal(classes, rsy_case_classes(c_low)));
    rsy_recipe *r_full = load_recipe(dir, "full", "[1.0]", "projection", NULL);
    rsy_case *c_full = make_case(r_full, fbp, 1);
    assert_true(volumes_equal(full, rsy_case_channel(c_full, 0)));

    /* Determinism: its own reconstructor and two texture threads give the same bytes. */
    rsy_case *c2 = make_case(r, NULL, 2);
    for (int ch = 0; ch < 2; ch++)
        assert_true(volumes_equal(rsy_case_channel(c, ch), rsy_case_channel(c2, ch)));
    assert_true(volumes_equal(rsy_case_labels(c), rsy_case_labels(c2)));

    /* The fast noise model: same HU, noise within 15% of the projection model's. */
    rsy_recipe *r_fast = load_recipe(dir, "fast", "[1.0, 0.25]", "fast", NULL);
    rsy_case *c_fast = make_case(r_fast, fbp, 1);
    double mf, sf;
    interior_stats(classes, rsy_case_channel(c_fast, 0), class_id("liver"), 2, &mf, &sf);
    double sd_fast = noise_sd_of(c_fast, 0);
    print_message("fast model: liver %.2f HU, noise SD %.2f HU (projection %.2f)\n", mf, sd_fast,
                  sd_full);
    assert_true(fabs(mf - 114.0) <= 5.0);
    assert_true(fabs(sd_fast / sd_full - 1.0) <= 0.15);
    assert_int_equal(tu_errors(), 0);

    rsy_case_destroy(c_fast);
    rsy_recipe_destroy(r_fast);
    rsy_case_destroy(c2);
    rsy_case_destroy(c_full);
    rsy_recipe_destroy(r_full);
    rsy_case_destroy(c_low);
    rsy_recipe_destroy(r_low);
    rsy_case_destroy(c);
    rsy_ct_fbp_destroy(fbp);
    rsy_recipe_destroy(r);
    tu_rmtree(dir);
    free(dir);
}

/*
 * Slice thickness: unset, it is the z spacing (6 mm); thinner than the spacing is refused
 * naming the key. A 12 mm slab collects twice the photons of a 6 mm one (I₀ per 1 mm times
 * the thickness) and averages two slices of anatomy before the noise, so its noise SD
 * (quantum-limited profile, full dose) is 1/√2 = 0.707 of the 6 mm one's; bound ±0.05 (the
 * noise is measured against each case's own noise-free reconstruction over thousands of
 * interior voxels, standard error of the ratio about 0.02).
 */
static void test_slice_thickness(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("ct_thick");
    assert_non_null(dir);
    char path[1024];
    rsy_recipe *bad = NULL;
    assert_int_equal(try_load(dir, "thin", "[1.0]", "projection", "3", path, &bad), RSY_ECONFIG);
    assert_null(bad);
    assert_non_null(strstr(tu_last_error(), "slice_thickness_mm"));
    rsy_recipe *r6 = load_recipe(dir, "t6", "[1.0]", "projection", NULL);
    assert_true(r6->ct.scanner.slice_thickness_mm == 6.0);
    rsy_recipe *r12 = load_recipe(dir, "t12", "[1.0]", "projection", "12");
    assert_true(r12->ct.scanner.slice_thickness_mm == 12.0);
    rsy_case *c6 = make_case(r6, NULL, 1), *c12 = make_case(r12, NULL, 1);
    const double sd6 = noise_sd_of(c6, 0), sd12 = noise_sd_of(c12, 0);
    print_message("noise SD 6 mm %.2f HU, 12 mm %.2f HU (ratio %.3f, 1/sqrt 2 = 0.707)\n", sd6,
                  sd12, sd12 / sd6);
    assert_true(fabs(sd12 / sd6 - M_SQRT1_2) <= 0.05);
    assert_int_equal(tu_errors(), 0);
    rsy_case_destroy(c12);
    rsy_case_destroy(c6);
    rsy_recipe_destroy(r12);
    rsy_recipe_destroy(r6);
    tu_rmtree(dir);
    free(dir);
}

/* A CT recipe whose table lacks a phantom class, or a hand-made one with a lesion prior, fails
 * cleanly at generation with one logged line. */
static void test_refusals(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("ct_refuse");
    assert_non_null(dir);
    rsy_recipe *r = load_recipe(dir, "pair", "[1.0]", "projection", NULL);
    rsy_tissue_table saved = r->tissues;
    for (int i = 0; i < r->tissues.n_tissues; i++)
        if (strcmp(r->tissues.tissues[i].name, "liver") == 0)
            snprintf(r->tissues.tissues[i].name, RSY_NAME_MAX, "%s", "hepar");
    rsy_case *c = NULL;
    tu_log_capture();
    assert_int_equal(rsy_case_generate(r, 0, &c), RSY_EINVAL);
    assert_null(c);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "no entry for phantom class \"liver\""));
    r->tissues = saved;
    r->phantom.spacing_mm[1] = 5.0;
    rsy_ct_fbp *fbp = NULL;
    tu_log_capture();
    assert_int_equal(rsy__gen_ct_fbp_create(r, &fbp), RSY_EINVAL);
    assert_null(fbp);
    assert_non_null(strstr(tu_last_error(), "CT needs square pixels"));
    rsy_recipe_destroy(r);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hu_noise_and_pairs),
        cmocka_unit_test(test_slice_thickness),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("ct_case", tests, NULL, NULL);
}
