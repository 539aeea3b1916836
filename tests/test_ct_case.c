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
static rsy_status try_load_ex(const char *dir, const char *name, const char *doses,
                              const char *noise_model, const char *thickness, const char *phase,
                              const char *grid, char path[1024], rsy_recipe **out)
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
            " \"phantom\": {\"family\": \"abdomen\", %s},\n"
            " \"acquisition\": {\"modality\": \"ct\", \"tissues\": \"ct-body\",\n"
            "   \"scanner\": \"ct-quantum\", \"phase\": \"%s\", \"doses\": %s,\n"
            "   \"noise_model\": \"%s\"},\n"
            " \"texture\": {\"model\": \"uniform\"},\n"
            " \"output\": {\"labels\": \"tissues+lesions\"}}\n",
            grid, phase, doses, noise_model);
    fclose(f);
    *out = NULL;
    tu_log_capture();
    return rsy_recipe_load(out, path, search_configs);
}

/* try_load_ex on the default grid (64 x 64 x 32 voxels of 6 mm), portal venous phase. */
static rsy_status try_load(const char *dir, const char *name, const char *doses,
                           const char *noise_model, const char *thickness, char path[1024],
                           rsy_recipe **out)
{
    return try_load_ex(dir, name, doses, noise_model, thickness, "portal_venous",
                       "\"dims\": [64, 64, 32], \"spacing_mm\": 6", path, out);
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

/* ---------------------------------------------------------------------------------------- */
/* Lesions in CT                                                                              */
/* ---------------------------------------------------------------------------------------- */
static rsy_dist fixed(double x)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_FIXED;
    d.value = x;
    return d;
}

/* HU of the test lesion's core (absolute) per phase, and of its rim as offsets to the liver's
 * HU (relative): a hypoattenuating core and a rim that enhances in the arterial phase and
 * washes out in the portal venous one (the HCC pattern of domain.md Card 10, GK values). */
static const double core_hu[RSY_CT_N_PHASES] = {18.0, 24.0, 30.0};
static const double rim_offset_hu[RSY_CT_N_PHASES] = {-12.0, 55.0, -25.0};

/* A hand-made liver lesion type: one fixed 90 mm sphere centred in the liver, allowed to
 * replace the soft tissues around it (not bone, gas or air), with a core (radius fraction 0.5,
 * absolute HU) and a rim (radius fraction 1, HU relative to the liver). */
static void add_test_lesion(rsy_recipe *r)
{
    rsy_lesion_spec *ls = &r->lesions[0];
    memset(ls, 0, sizeof *ls);
    ls->probability = 1.0;
    rsy_prior *p = &ls->prior;
    snprintf(p->name, sizeof p->name, "test-liver-mass");
    snprintf(p->disease, sizeof p->disease, "test-liver-mass");
    snprintf(p->display_name, sizeof p->display_name, "Test liver mass");
    snprintf(p->organ, sizeof p->organ, "liver");
    snprintf(p->path, sizeof p->path, "test_ct_case.c");
    p->modalities = RSY_PRIOR_CT;
    p->probability = 1.0;
    p->count = fixed(1.0);
    p->diameter_mm = fixed(90.0);
    p->elongation = fixed(1.0);
    p->flatness = fixed(1.0);
    p->lobes = fixed(1.0);
    p->roughness_scale_mm = 2.0;
    p->rule = RSY_PLACE_HOST_TISSUE;
    p->n_hosts = 1;
    snprintf(p->hosts[0], RSY_NAME_MAX, "liver");
    static const char *const allowed[] = {"liver", "fat", "muscle", "hepatic_vessel",
                                          "blood", "kidney_cortex", "kidney_medulla", "pancreas"};
    p->n_allowed = (int)(sizeof allowed / sizeof allowed[0]);
    for (int i = 0; i < p->n_allowed; i++)
        snprintf(p->allowed[i], RSY_NAME_MAX, "%s", allowed[i]);
    for (int z = 0; z < 3; z++)
        p->zone_weights[z] = 1.0;
    p->max_attempts = 1000;
    p->n_compartments = 2;
    rsy_compartment *core = &p->compartments[0], *rim = &p->compartments[1];
    snprintf(core->name, RSY_NAME_MAX, "test_core");
    snprintf(core->display_name, RSY_TEXT_MAX, "necrotic core");
    core->extent_kind = RSY_EXTENT_RADIUS_FRACTION;
    core->extent = fixed(0.5);
    core->has_ct = 1;
    core->ct_mode = RSY_PROPS_ABSOLUTE;
    snprintf(rim->name, RSY_NAME_MAX, "test_rim");
    snprintf(rim->display_name, RSY_TEXT_MAX, "viable tumour");
    rim->extent_kind = RSY_EXTENT_RADIUS_FRACTION;
    rim->extent = fixed(1.0);
    rim->has_ct = 1;
    rim->ct_mode = RSY_PROPS_RELATIVE;
    snprintf(rim->ct_relative_to, RSY_NAME_MAX, "liver");
    for (int ph = 0; ph < RSY_CT_N_PHASES; ph++) {
        core->ct[ph].hu = core_hu[ph];
        rim->ct[ph].hu = rim_offset_hu[ph];
    }
    r->n_lesion_types = 1;
}

/*
 * Lesion compartments take their HU per contrast phase: in each of the three phases, the mean
 * HU over the interior voxels of the core and of the rim (eroded by 2 voxels in-plane and 1
 * along k, as for the organs above) at full dose matches the table value: absolute for the
 * core, the liver's HU of that phase plus the offset for the rim. Grid 96 x 96 x 48 voxels of
 * 4 mm, so the 90 mm lesion's 5.6-voxel rim keeps an interior after the erosion.
 * Tolerance 8 * SD / sqrt(n) + 2 HU: the standard error of a mean over n voxels of SD sd is
 * sd/sqrt(n) for independent voxels, and the FBP noise is correlated over a few pixels (the
 * Hann kernel, the slice profile), which the factor 8 covers with room (an effective
 * sample 1/5 of n still leaves 3.5 standard errors); 2 HU is the partial volume left two voxels
 * (8 mm) inside a class after the 1 mm PSF and the kernel's edge response.
 * The lesion, labels and instance map are those of an MRI case of the same pipeline (case.c):
 * the labels, instances and findings do not depend on the doses.
 */
static void test_lesion_hu_per_phase(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("ct_lesion");
    assert_non_null(dir);
    static const char *const phases[RSY_CT_N_PHASES] = {"non_contrast", "arterial",
                                                         "portal_venous"};
    const char *grid = "\"dims\": [96, 96, 48], \"spacing_mm\": 4";
    int n_tissue = rsy_phantom_n_classes("abdomen");
    for (int ph = 0; ph < RSY_CT_N_PHASES; ph++) {
        char path[1024], name[64];
        snprintf(name, sizeof name, "lesion-%s", phases[ph]);
        rsy_recipe *r = NULL;
        rsy_status rc = try_load_ex(dir, name, "[1.0, 0.25]", "projection", NULL, phases[ph], grid,
                                    path, &r);
        if (rc != RSY_OK)
            print_error("%s: %s\n", path, tu_last_error());
        assert_int_equal(rc, RSY_OK);
        assert_int_equal((int)r->ct.phase, ph);
        add_test_lesion(r);
        rsy_case *c = make_case(r, NULL, 1);
        assert_int_equal(rsy_case_n_lesions(c), 1);
        const rsy_volume *classes = rsy_case_classes(c);
        const rsy_tissue *liver = rsy_tissue_table_find(&r->tissues, "liver");
        assert_non_null(liver);
        const double expect[2] = {core_hu[ph], liver->ct[ph].hu + rim_offset_hu[ph]};
        for (int k = 0; k < 2; k++) {
            double mean, sd;
            size_t n = interior_stats(classes, rsy_case_channel(c, 0), n_tissue + k, 2, &mean, &sd);
            double tol = 8.0 * sd / sqrt((double)n) + 2.0;
            print_message("%-13s %s: %4zu interior voxels, %7.2f HU (table %6.1f, tolerance "
                          "%.1f), SD %.1f\n",
                          phases[ph], k ? "rim " : "core", n, mean, expect[k], tol, sd);
            assert_true(n >= 30);
            assert_true(fabs(mean - expect[k]) <= tol);
        }
        /* Labels: both compartments are labelled and carry the lesion's instance id. */
        const uint8_t *lab = rsy_case_labels(c)->data;
        const uint16_t *inst = rsy_case_instances(c)->data;
        const uint16_t *cl = classes->data;
        size_t nvox = rsy_geometry_nvox(&classes->geom), in_lesion = 0;
        for (size_t v = 0; v < nvox; v++) {
            if (cl[v] >= n_tissue) {
                assert_int_equal(inst[v], 1);
                assert_true(lab[v] > 0);
                in_lesion++;
            } else {
                assert_int_equal(inst[v], 0);
            }
        }
        assert_true(in_lesion > 0);
        assert_non_null(strstr(rsy_case_findings(c), "mm"));

        /* The same recipe with the low dose only: identical lesion, labels, instances and
         * findings. */
        if (ph == RSY_CT_PHASE_PORTAL_VENOUS) {
            rsy_recipe *r_low = NULL;
            snprintf(name, sizeof name, "lesion-low");
            assert_int_equal(try_load_ex(dir, name, "[0.25]", "projection", NULL, phases[ph],
                                         grid, path, &r_low),
                             RSY_OK);
            add_test_lesion(r_low);
            rsy_case *c_low = make_case(r_low, NULL, 1);
            assert_true(volumes_equal(classes, rsy_case_classes(c_low)));
            assert_true(volumes_equal(rsy_case_labels(c), rsy_case_labels(c_low)));
            assert_true(volumes_equal(rsy_case_instances(c), rsy_case_instances(c_low)));
            assert_string_equal(rsy_case_findings(c), rsy_case_findings(c_low));
            print_message("findings: %s\n", rsy_case_findings(c));
            rsy_case_destroy(c_low);
            rsy_recipe_destroy(r_low);
        }
        rsy_case_destroy(c);
        rsy_recipe_destroy(r);
    }
    assert_int_equal(tu_errors(), 0);
    tu_rmtree(dir);
    free(dir);
}

/* A CT compartment without CT properties, or relative to a tissue the table lacks, is refused
 * at generation with one line naming the compartment. */
static void test_lesion_refusals(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("ct_lesion_refuse");
    assert_non_null(dir);
    rsy_recipe *r = load_recipe(dir, "pair", "[1.0]", "projection", NULL);
    add_test_lesion(r);
    rsy__gen_class *tab = NULL;
    int n = 0;
    assert_int_equal(rsy__gen_class_table(r, &tab, &n), RSY_OK);
    int n_tissue = rsy_phantom_n_classes("abdomen");
    assert_int_equal(n, n_tissue + 2);
    assert_float_equal(tab[n_tissue].hu, core_hu[RSY_CT_PHASE_PORTAL_VENOUS], 0.0);
    free(tab);
    r->lesions[0].prior.compartments[1].has_ct = 0;
    rsy_case *c = NULL;
    tu_log_capture();
    assert_int_equal(rsy_case_generate(r, 0, &c), RSY_EINVAL);
    assert_null(c);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "\"test_rim\""));
    r->lesions[0].prior.compartments[1].has_ct = 1;
    snprintf(r->lesions[0].prior.compartments[1].ct_relative_to, RSY_NAME_MAX, "hepar");
    tu_log_capture();
    assert_int_equal(rsy_case_generate(r, 0, &c), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "\"hepar\""));
    rsy_recipe_destroy(r);
    tu_rmtree(dir);
    free(dir);
}

/* A CT recipe whose table lacks a phantom class, or whose pixels are not square, fails cleanly
 * with one logged line. */
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
        cmocka_unit_test(test_lesion_hu_per_phase),
        cmocka_unit_test(test_lesion_refusals),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("ct_case", tests, NULL, NULL);
}
