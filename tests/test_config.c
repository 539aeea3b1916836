/*
 * test_config.c: recipes, priors and tissue tables (config/).
 *
 * - every JSON file under configs/recipes, configs/priors, configs/tissues and configs/textures
 *   loads (the directories are listed at run time, so new files are covered automatically);
 * - the "texture" object: defaults, the preset found like priors, strict checks;
 * - defaults are filled, overrides merge into the prior's distributions;
 * - every malformed recipe in tests/recipes_bad/ gives RSY_ECONFIG and exactly one logged
 *   line naming the file, the key path and the expectation;
 * - the prior format of issue 5: every key of a disease with several lesion types parsed into
 *   the structs, the defaults of a type that gives only the required keys, glioblastoma.json
 *   unchanged, a disease expanded into one lesion spec per type by a recipe (CT recipes too),
 *   and a malformed prior or lesion entry per contradiction, each one line naming file and key;
 * - rsy_dist_sample follows rsy_dist_cdf for every kind (Kolmogorov-Smirnov, fixed seeds);
 * - tissue lookup and field interpolation; the memory estimate grows with dims and workers.
 * Run from the repository root.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"

#include "rsy_config.h"
#include "rsy_core.h"

#define KS_N 5000
/* Kolmogorov-Smirnov critical value at the 5% level: 1.36 / sqrt(n) = 0.0192 for n = 5000.
 * The seeds are fixed, so the outcome is deterministic; for the discrete kinds the KS test is
 * conservative, so the same bound holds. */
#define KS_CRIT (1.36 / sqrt((double)KS_N))

static const char *const search_configs[] = {"configs", NULL};

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Write @p text to dir/name; returns the malloc'd path. */
static char *write_file(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
    return path;
}

/* Read a whole file (test side, independent of the library). */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Load a recipe written into a scratch directory from @p text. */
static rsy_status load_text(const char *text, rsy_recipe **out)
{
    char *dir = tu_tmpdir("config");
    assert_non_null(dir);
    char *path = write_file(dir, "recipe.json", text);
    rsy_status rc = rsy_recipe_load(out, path, search_configs);
    free(path);
    tu_rmtree(dir);
    free(dir);
    return rc;
}

/* The loader only checks that a fitted texture model file exists (the generator reads it), so
 * the recipes that name the Colin27 model load whether or not `make texture-model` has run:
 * when configs/textures/brain-colin27.h5 is absent, an empty stand-in in a scratch search
 * directory (DIR/textures/brain-colin27.h5) is found instead. Returns the search directories
 * {"configs", DIR, NULL} in @p dirs and DIR (free with tu_rmtree and free). */
static char *fitted_standin(const char *dirs[3])
{
    char *dir = tu_tmpdir("config-fitted");
    assert_non_null(dir);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/textures", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    free(write_file(sub, "brain-colin27.h5", ""));
    dirs[0] = "configs";
    dirs[1] = dir;
    dirs[2] = NULL;
    return dir;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* KS distance of KS_N samples of @p d (seed @p seed) to rsy_dist_cdf(d, .).
 * Continuous kinds use the classic two-sided statistic over the sorted sample; discrete kinds
 * compare the step functions at each support point, where both jump. Also checks that every
 * sample lies within the support bounds. */
static double ks_distance(const rsy_dist *d, uint64_t seed, int discrete)
{
    rsy_rng *rng = NULL;
    assert_int_equal(rsy_rng_create(&rng, seed), RSY_OK);
    double *x = malloc(KS_N * sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < KS_N; i++) {
        x[i] = rsy_dist_sample(d, rng);
        if (d->kind != RSY_DIST_CATEGORICAL && d->kind != RSY_DIST_FIXED) {
            assert_true(x[i] >= d->min);
            assert_true(x[i] <= d->max);
        }
    }
    rsy_rng_destroy(rng);
    qsort(x, KS_N, sizeof *x, cmp_double);
    double dmax = 0.0;
    if (!discrete) {
        for (int i = 0; i < KS_N; i++) {
            double f = rsy_dist_cdf(d, x[i]);
            dmax = fmax(dmax, fmax((i + 1.0) / KS_N - f, f - (double)i / KS_N));
        }
    } else {
        /* Support points: the sample values themselves plus every integer in the sampled
         * range (so values never drawn count too). */
        double lo = x[0], hi = x[KS_N - 1];
        int j = 0;
        for (double v = floor(lo) - 1.0; v <= hi + 1.0; v += 1.0) {
            while (j < KS_N && x[j] <= v)
                j++;
            dmax = fmax(dmax, fabs((double)j / KS_N - rsy_dist_cdf(d, v)));
        }
        for (int i = 0; i < KS_N; i++) {
            int k = i;
            while (k + 1 < KS_N && x[k + 1] == x[i])
                k++;
            dmax = fmax(dmax, fabs((k + 1.0) / KS_N - rsy_dist_cdf(d, x[i])));
        }
    }
    free(x);
    return dmax;
}

/* ---------------------------------------------------------------------------------------- */
/* Shipped configs                                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef enum { KIND_RECIPE, KIND_PRIOR, KIND_TISSUES, KIND_TEXTURE, KIND_SCANNER } config_kind;

static int load_all_in(const char *dir, config_kind kind)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (!has_suffix(e->d_name, ".json"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        tu_log_capture();
        rsy_status rc = RSY_EINVAL;
        if (kind == KIND_RECIPE) {
            rsy_recipe *r = NULL;
            const char *dirs[3];
            char *standin = fitted_standin(dirs);
            rc = rsy_recipe_load(&r, path, dirs);
            rsy_recipe_destroy(r);
            tu_rmtree(standin);
            free(standin);
        } else if (kind == KIND_PRIOR) {
            /* Disease files: one lesion type at the top level or several in "lesion_types". */
            rsy_disease *d = NULL;
            rc = rsy_disease_load(&d, path);
            free(d);
        } else if (kind == KIND_TEXTURE) {
            rsy_texture_preset *t = NULL;
            rc = rsy_texture_preset_load(&t, path);
            free(t);
        } else if (kind == KIND_SCANNER) {
            rsy_ct_scanner *s = NULL;
            rc = rsy_ct_scanner_load(&s, path);
            free(s);
        } else {
            rsy_tissue_table *t = NULL;
            rc = rsy_tissue_table_load(&t, path);
            free(t);
        }
        if (rc != RSY_OK)
            print_error("%s: %s (%s)\n", path, rsy_strerror(rc), tu_last_error());
        assert_int_equal(rc, RSY_OK);
        assert_int_equal(tu_errors(), 0);
        n++;
    }
    closedir(dp);
    return n;
}

static void test_all_configs_load(void **state)
{
    (void)state;
    assert_true(load_all_in("configs/tissues", KIND_TISSUES) >= 1);
    assert_true(load_all_in("configs/priors", KIND_PRIOR) >= 1);
    /* The valid disease that the malformed fixture_prior_*.json files each alter in one place. */
    rsy_disease *d = NULL;
    tu_log_capture();
    assert_int_equal(rsy_disease_load(&d, "tests/recipes_bad/fixture_prior_disease.json"), RSY_OK);
    assert_int_equal(d->n_types, 2);
    free(d);
    assert_true(load_all_in("configs/scanners", KIND_SCANNER) >= 1);
    assert_true(load_all_in("configs/textures", KIND_TEXTURE) >= 1);
    assert_true(load_all_in("configs/recipes", KIND_RECIPE) >= 1);
}

static void test_gbm_recipe(void **state)
{
    (void)state;
    const char *path = "configs/recipes/brain-glioblastoma-mri.json";
    rsy_recipe *r = NULL;
    const char *dirs[3];
    char *standin = fitted_standin(dirs);
    tu_log_capture();
    assert_int_equal(rsy_recipe_load(&r, path, dirs), RSY_OK);
    tu_rmtree(standin);
    free(standin);
    assert_string_equal(r->path, path);
    assert_string_equal(r->name, "BrainGBM");
    assert_int_equal(r->dataset_id, 501);
    assert_int_equal(r->seed, 20261122u);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r->phantom.dims[i], 128);
        assert_true(r->phantom.spacing_mm[i] == 1.75);
    }
    assert_string_equal(r->phantom.family, "head");
    assert_int_equal(r->phantom.sex, RSY_SEX_RANDOM);
    assert_true(r->phantom.age_min_years == 45.0 && r->phantom.age_max_years == 75.0);
    assert_string_equal(r->modality, "mri");
    assert_true(r->mri.field_t == 3.0);
    assert_true(r->mri.bias_amplitude == 0.1);
    assert_int_equal(r->mri.n_sequences, 4);
    const char *names[] = {"T1w", "T1c", "T2w", "FLAIR"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(r->mri.sequences[i].name, names[i]);
    assert_int_equal(r->mri.sequences[1].contrast, 1);
    assert_int_equal(r->mri.sequences[0].contrast, 0);
    assert_int_equal(r->mri.sequences[3].kind, RSY_SEQ_INVERSION_RECOVERY);
    assert_true(r->mri.sequences[3].ti_ms == 2500.0);
    assert_string_equal(r->mri.sequences[2].noise_reference, "csf");
    assert_int_equal(r->n_lesion_types, 1);
    assert_string_equal(r->lesions[0].prior.name, "glioblastoma");
    assert_string_equal(r->tissues.name, "mri-brain");
    assert_int_equal(r->label_set, RSY_LABELS_LESIONS);
    /* The demo draws brain texture from the Colin27 model, the other classes from the brain
     * preset found beside the recipe's directory. */
    assert_int_equal(r->texture, RSY_TEXTURE_FITTED);
    assert_string_equal(r->texture_spec.fitted_name, "brain-colin27");
    assert_non_null(strstr(r->texture_spec.fitted_path, "/textures/brain-colin27.h5"));
    assert_int_equal(r->texture_spec.n_class_map, 7);
    assert_string_equal(r->texture_spec.class_map[0].working, "csf");
    assert_string_equal(r->texture_spec.class_map[0].model, "class_1");
    assert_string_equal(r->texture_spec.class_map[5].working, "white_matter");
    assert_string_equal(r->texture_spec.class_map[5].model, "class_3");
    assert_string_equal(r->texture_spec.preset.name, "brain-mri");
    assert_string_equal(r->texture_spec.preset.path, "configs/recipes/../textures/brain-mri.json");
    assert_int_equal(r->texture_spec.sampler, RSY_TEXTURE_METHOD_HEUN);
    assert_int_equal(r->texture_spec.steps, 18);
    assert_non_null(rsy_texture_preset_find(&r->texture_spec.preset, "white_matter"));
    assert_non_null(rsy_texture_preset_find(&r->texture_spec.preset, "enhancing_tumour"));
    assert_null(rsy_texture_preset_find(&r->texture_spec.preset, "liver"));

    /* The embedded text and hash are those of the file's bytes. */
    size_t len;
    char *text = slurp(path, &len);
    char hex[65];
    rsy_sha256_hex(text, len, hex);
    assert_string_equal(r->sha256, hex);
    assert_non_null(r->json);
    assert_string_equal(r->json, text);
    free(text);
    rsy_recipe_destroy(r);
    rsy_recipe_destroy(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Defaults, overrides, seeds                                                                 */
/* ---------------------------------------------------------------------------------------- */

#define MINIMAL_HEAD                                                                               \
    "{\"raresynth_recipe\": 1, \"name\": \"Min\", \"dataset_id\": 7,\n"                            \
    " \"phantom\": {\"family\": \"head\"},\n"                                                      \
    " \"acquisition\": {\"modality\": \"mri\", \"sequences\": [{\"name\": \"A\", "                 \
    "\"type\": \"spin_echo\", \"tr_ms\": 500, \"te_ms\": 10}]}"

static void test_defaults(void **state)
{
    (void)state;
    rsy_recipe *r = NULL;
    tu_log_capture();
    assert_int_equal(load_text(MINIMAL_HEAD "}\n", &r), RSY_OK);
    assert_int_equal(r->cases, 10);
    assert_int_equal(r->seed, 0);
    assert_string_equal(r->description, "");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r->phantom.dims[i], 128);
        assert_true(r->phantom.spacing_mm[i] == 1.75);
    }
    assert_int_equal(r->phantom.sex, RSY_SEX_RANDOM);
    assert_true(r->phantom.female_fraction == 0.5);
    assert_true(r->phantom.age_min_years == 20.0 && r->phantom.age_max_years == 80.0);
    assert_true(r->phantom.deformation_mm == 2.0);
    assert_true(r->phantom.deformation_scale_mm == 40.0);
    assert_int_equal(r->n_lesion_types, 0);
    assert_true(r->mri.field_t == 3.0);
    assert_true(r->mri.gd_r1_per_mM_s == 4.0);
    assert_true(r->mri.bias_amplitude == 0.1);
    assert_true(r->mri.bias_scale_mm == 120.0);
    const rsy_sequence *s = &r->mri.sequences[0];
    assert_true(s->noise_percent == 3.0);
    assert_string_equal(s->noise_reference, "white_matter");
    assert_int_equal(s->contrast, 0);
    assert_true(s->ti_ms == 0.0 && s->flip_deg == 0.0);
    /* The default table "mri-brain" was found through the search directory. */
    assert_string_equal(r->tissues.name, "mri-brain");
    assert_int_equal(r->texture, RSY_TEXTURE_UNIFORM);
    assert_int_equal(r->texture_spec.sampler, RSY_TEXTURE_METHOD_HEUN);
    assert_int_equal(r->texture_spec.steps, 18);
    assert_true(r->texture_spec.sigma_min == 0.002 && r->texture_spec.sigma_max == 80.0);
    assert_int_equal(r->texture_spec.n_offsets, 1);
    assert_int_equal(r->label_set, RSY_LABELS_LESIONS);
    assert_int_equal(tu_errors(), 0);
    rsy_recipe_destroy(r);
}

static void test_texture_keys(void **state)
{
    (void)state;
    rsy_recipe *r = NULL;
    tu_log_capture();
    /* Every key given; the preset found through the search directory (configs/textures). */
    assert_int_equal(load_text(MINIMAL_HEAD ", \"texture\": {\"model\": \"preset\", \"preset\": "
                                            "\"brain-mri\", \"sampler\": \"stochastic\", "
                                            "\"steps\": 12, \"sigma_min\": 0.01, "
                                            "\"sigma_max\": 40, \"offsets\": 2}}",
                               &r),
                     RSY_OK);
    assert_int_equal(r->texture, RSY_TEXTURE_PRESET);
    assert_int_equal(r->texture_spec.sampler, RSY_TEXTURE_METHOD_STOCHASTIC);
    assert_int_equal(r->texture_spec.steps, 12);
    assert_true(r->texture_spec.sigma_min == 0.01 && r->texture_spec.sigma_max == 40.0);
    assert_int_equal(r->texture_spec.n_offsets, 2);
    assert_int_equal(r->texture_spec.preset.patch_size, 5);
    rsy_recipe_destroy(r);
    r = NULL;

    /* A fitted model given as a path relative to the recipe (found without reading it), no
     * fallback preset. */
    {
        const char *dirs[3];
        char *standin = fitted_standin(dirs);
        char text[2048];
        snprintf(text, sizeof text,
                 "%s, \"texture\": {\"model\": \"fitted\", \"fitted\": "
                 "\"%s/textures/brain-colin27.h5\", \"classes\": {\"grey_matter\": "
                 "\"class_2\", \"note\": \"n\"}, \"steps\": 8}}",
                 MINIMAL_HEAD, standin);
        assert_int_equal(load_text(text, &r), RSY_OK);
        tu_rmtree(standin);
        free(standin);
        assert_int_equal(r->texture, RSY_TEXTURE_FITTED);
        assert_string_equal(r->texture_spec.fitted_name, "brain-colin27");
        assert_int_equal(r->texture_spec.n_class_map, 1);
        assert_string_equal(r->texture_spec.class_map[0].working, "grey_matter");
        assert_string_equal(r->texture_spec.class_map[0].model, "class_2");
        assert_string_equal(r->texture_spec.preset.name, "");
        assert_int_equal(r->texture_spec.steps, 8);
        rsy_recipe_destroy(r);
        r = NULL;
    }

    /* One line per problem, naming the key. */
    static const struct {
        const char *texture;
        const char *expected;
    } bad[] = {
        {"{\"model\": \"fitted\", \"fitted\": \"no-such-model\", \"classes\": {\"csf\": \"c\"}}",
         "texture.fitted: no fitted texture model named \"no-such-model\""},
        {"{\"model\": \"preset\", \"preset\": \"brain-mri\", \"classes\": {}}",
         "texture.classes: only used with \"model\": \"fitted\""},
        {"{\"model\": \"fitted\", \"fitted\": \"x.json\", \"classes\": {\"csf\": \"c\"}}",
         "texture.fitted: expected a fitted texture model name of 1 to 63 characters from "
         "[a-z0-9_-], or a relative path ending in \".h5\""},
        {"{\"model\": \"fitted\", \"fitted\": \"brain-colin27\", \"classes\": {\"csf\": 1}}",
         "texture.classes.csf: expected the name of a class of the fitted model"},
        {"{\"model\": \"fitted\", \"fitted\": \"brain-colin27\", \"classes\": {}}",
         "texture.classes: expected at least one class"},
        {"{\"model\": \"preset\"}", "texture.preset: required key missing"},
        {"{\"model\": \"uniform\", \"steps\": 10}",
         "texture.steps: only used with \"model\": \"preset\""},
        {"{\"model\": \"diffusion\"}", "texture.model: expected one of \"uniform\", \"preset\""},
        {"{\"model\": \"preset\", \"preset\": \"brain-mri\", \"steps\": 1}",
         "texture.steps: expected an integer in [2, 1000], got 1"},
        {"{\"model\": \"preset\", \"preset\": \"brain-mri\", \"sigma_max\": 0.001}",
         "texture.sigma_max: expected a number > sigma_min (0.002), got 0.001"},
        {"{\"model\": \"preset\", \"preset\": \"brain-mri\", \"offset\": 2}",
         "texture.offset: unknown key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s, \"texture\": %s}", MINIMAL_HEAD, bad[i].texture);
        tu_log_capture();
        assert_int_equal(load_text(text, &r), RSY_ECONFIG);
        assert_null(r);
        assert_int_equal(tu_errors(), 1);
        if (!strstr(tu_last_error(), bad[i].expected))
            print_error("got \"%s\", expected \"%s\"\n", tu_last_error(), bad[i].expected);
        assert_non_null(strstr(tu_last_error(), bad[i].expected));
    }
}

/* The shipped presets: u is normalised, so every class's mixture has total variance 1 and
 * mean 0 (configs/textures/ notes), and a malformed preset names its file and key. */
static void test_texture_presets(void **state)
{
    (void)state;
    rsy_texture_preset *p = NULL;
    tu_log_capture();
    assert_int_equal(rsy_texture_preset_load(&p, "configs/textures/brain-mri.json"), RSY_OK);
    assert_int_equal(p->patch_size, 5);
    assert_true(p->n_sources >= 1);
    static const char *const names[] = {
        "background",    "scalp",      "skull",           "csf",        "grey_matter",
        "white_matter",  "ventricles", "deep_grey",       "cerebellum", "brainstem",
        "necrotic_core", "oedema",     "enhancing_tumour"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const rsy_texture_class_spec *c = rsy_texture_preset_find(p, names[i]);
        assert_non_null(c);
        double w = 0.0, m1 = 0.0, m2 = 0.0;
        for (int k = 0; k < c->n_components; k++)
            w += c->components[k].weight;
        for (int k = 0; k < c->n_components; k++) {
            const rsy_texture_component_spec *s = &c->components[k];
            m1 += s->weight / w * s->mean;
            m2 += s->weight / w * (s->variance + s->mean * s->mean);
        }
        assert_true(fabs(m1) < 1e-12);
        assert_true(fabs(m2 - m1 * m1 - 1.0) < 1e-12);
    }
    /* Anisotropy is kept per axis. */
    const rsy_texture_class_spec *wm = rsy_texture_preset_find(p, "white_matter");
    assert_true(wm->n_components == 2 && wm->components[1].corr_length_mm[2] == 6.0 &&
                wm->components[1].corr_length_mm[0] == 2.5);
    free(p);

    char *dir = tu_tmpdir("config");
    assert_non_null(dir);
    static const struct {
        const char *body;
        const char *expected;
    } bad[] = {
        {"\"patch_size\": 4, \"classes\": {\"csf\": {\"components\": [{\"correlation_length_mm\": "
         "2}]}}",
         "t.json: patch_size: expected an odd integer in [1, 9]"},
        {"\"patch_size\": 5, \"classes\": {\"csf\": {\"components\": [{\"variance\": 1}]}}",
         "t.json: classes.csf.components[0].correlation_length_mm: required key missing"},
        {"\"patch_size\": 5, \"classes\": {\"csf\": {\"components\": [{\"correlation_length_mm\": "
         "[1, 2]}]}}",
         "t.json: classes.csf.components[0].correlation_length_mm: expected a number or an "
         "array of 3"},
        {"\"patch_size\": 5, \"classes\": {\"csf\": {\"components\": [{\"correlation_length_mm\": "
         "2, \"variance\": 0}]}}",
         "t.json: classes.csf.components[0].variance: expected a number in (0, 100], got 0"},
        {"\"patch_size\": 5, \"classes\": {\"CSF\": {\"components\": []}}",
         "t.json: classes.CSF: expected a class name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"raresynth_texture\": 1, \"name\": \"t\", \"sources\": [\"GK\"], %s}",
                 bad[i].body);
        char *path = write_file(dir, "t.json", text);
        p = (rsy_texture_preset *)&p;
        tu_log_capture();
        assert_int_equal(rsy_texture_preset_load(&p, path), RSY_ECONFIG);
        assert_null(p);
        assert_int_equal(tu_errors(), 1);
        if (!strstr(tu_last_error(), bad[i].expected))
            print_error("got \"%s\", expected \"%s\"\n", tu_last_error(), bad[i].expected);
        assert_non_null(strstr(tu_last_error(), bad[i].expected));
        free(path);
    }
    tu_rmtree(dir);
    free(dir);
}

static void test_overrides_merge(void **state)
{
    (void)state;
    rsy_prior *p = NULL;
    tu_log_capture();
    assert_int_equal(rsy_prior_load(&p, "configs/priors/glioblastoma.json"), RSY_OK);

    /* A partial object overrides only the keys it gives. */
    rsy_recipe *r = NULL;
    assert_int_equal(load_text(MINIMAL_HEAD ", \"lesions\": [{\"prior\": \"glioblastoma\", "
                                            "\"probability\": 0.5, \"diameter_mm\": "
                                            "{\"median\": 30}, \"count\": 2}]}",
                               &r),
                     RSY_OK);
    const rsy_prior *q = &r->lesions[0].prior;
    assert_true(r->lesions[0].probability == 0.5);
    assert_int_equal(q->diameter_mm.kind, RSY_DIST_LOGNORMAL);
    assert_true(q->diameter_mm.median == 30.0);
    assert_true(q->diameter_mm.gsd == p->diameter_mm.gsd);
    assert_true(q->diameter_mm.min == p->diameter_mm.min);
    assert_true(q->diameter_mm.max == p->diameter_mm.max);
    assert_int_equal(q->count.kind, RSY_DIST_FIXED);
    assert_true(q->count.value == 2.0);
    /* Everything else is the prior's. */
    assert_int_equal(q->n_compartments, p->n_compartments);
    assert_string_equal(q->compartments[2].name, p->compartments[2].name);
    rsy_recipe_destroy(r);

    /* Another kind replaces the distribution; a weights-only override keeps the values. */
    assert_int_equal(load_text(MINIMAL_HEAD ", \"lesions\": [{\"prior\": \"glioblastoma\", "
                                            "\"diameter_mm\": {\"distribution\": \"uniform\", "
                                            "\"min\": 20, \"max\": 40}, "
                                            "\"count\": {\"weights\": [0.5, 0.3, 0.2]}}]}",
                               &r),
                     RSY_OK);
    q = &r->lesions[0].prior;
    assert_int_equal(q->diameter_mm.kind, RSY_DIST_UNIFORM);
    assert_true(q->diameter_mm.min == 20.0 && q->diameter_mm.max == 40.0);
    assert_int_equal(q->count.kind, RSY_DIST_CATEGORICAL);
    assert_int_equal(q->count.n_categories, p->count.n_categories);
    assert_true(q->count.values[1] == p->count.values[1]);
    assert_true(q->count.weights[0] == 0.5 && q->count.weights[2] == 0.2);
    rsy_recipe_destroy(r);

    /* The merged result is validated as a whole: two weights for the prior's three values. */
    assert_int_equal(load_text(MINIMAL_HEAD ", \"lesions\": [{\"prior\": \"glioblastoma\", "
                                            "\"count\": {\"weights\": [0.5, 0.5]}}]}",
                               &r),
                     RSY_ECONFIG);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "lesions[0].count.weights: expected one weight"));
    free(p);
}

static void test_seed_forms(void **state)
{
    (void)state;
    rsy_recipe *r = NULL;
    tu_log_capture();
    assert_int_equal(load_text(MINIMAL_HEAD ", \"seed\": \"18446744073709551615\"}", &r), RSY_OK);
    assert_true(r->seed == UINT64_MAX);
    rsy_recipe_destroy(r);
    assert_int_equal(load_text(MINIMAL_HEAD ", \"seed\": 9007199254740992}", &r), RSY_OK);
    assert_true(r->seed == 9007199254740992ull);
    rsy_recipe_destroy(r);
    assert_int_equal(load_text(MINIMAL_HEAD ", \"seed\": 9007199254740994}", &r), RSY_ECONFIG);
    assert_int_equal(load_text(MINIMAL_HEAD ", \"seed\": -1}", &r), RSY_ECONFIG);
    assert_int_equal(load_text(MINIMAL_HEAD ", \"seed\": \"\"}", &r), RSY_ECONFIG);
    assert_int_equal(tu_errors(), 3);
    assert_null(r);
}

/* The shipped abdominal CT recipe: modality, doses, phase, scanner profile, CT tissue table
 * (liver portal venous = unenhanced 58 + 56 HU [S14]), channel names, memory estimate. */
static void test_ct_recipe(void **state)
{
    (void)state;
    rsy_recipe *r = NULL;
    tu_log_capture();
    assert_int_equal(rsy_recipe_load(&r, "configs/recipes/abdomen-ct.json", search_configs),
                     RSY_OK);
    assert_string_equal(r->modality, "ct");
    assert_string_equal(r->phantom.family, "abdomen");
    assert_int_equal(r->mri.n_sequences, 0);
    assert_int_equal(r->ct.n_doses, 2);
    assert_true(r->ct.doses[0] == 1.0 && r->ct.doses[1] == 0.25);
    assert_int_equal(r->ct.phase, RSY_CT_PHASE_PORTAL_VENOUS);
    assert_int_equal(r->ct.noise_model, RSY_CT_NOISE_PROJECTION);
    assert_string_equal(r->ct.scanner.name, "ct-standard");
    assert_int_equal(r->ct.scanner.kernel, RSY_CT_WINDOW_HANN);
    /* I0 per 1 mm of slice; the profile leaves the thickness unset: the z spacing. */
    assert_true(r->ct.scanner.i0_photons == 1e5);
    assert_true(r->ct.scanner.slice_thickness_mm == 3.0);
    assert_true(r->ct.scanner.electronic_noise_sd == 10.0);
    assert_true(r->ct.scanner.mu_water_per_mm == 0.01879);
    assert_int_equal(rsy_recipe_n_channels(r), 2);
    assert_string_equal(rsy_recipe_channel_name(r, 0), "CT");
    assert_string_equal(rsy_recipe_channel_name(r, 1), "CT");
    assert_null(rsy_recipe_channel_name(r, 2));
    const rsy_tissue *liver = rsy_tissue_table_find(&r->tissues, "liver");
    assert_non_null(liver);
    assert_true(liver->has_ct && !liver->has_mri);
    assert_true(liver->ct[RSY_CT_PHASE_NON_CONTRAST].hu == 58.0);
    assert_true(liver->ct[RSY_CT_PHASE_PORTAL_VENOUS].hu == 58.0 + 56.0);
    /* 256 x 256 x 64 voxels at 25 + 2 x 2 bytes each, plus the fixed 64 MiB: 0.1-1 GiB. */
    uint64_t mem = rsy_recipe_memory_estimate(r, 1);
    assert_true(mem > (uint64_t)256 * 256 * 64 * 29 && mem < (1ull << 30));
    assert_int_equal(tu_errors(), 0);
    rsy_recipe_destroy(r);

    /* The MRI tissue table has no CT properties: a CT recipe naming it is refused. */
    char *dir = tu_tmpdir("ct_recipe");
    char path[1024];
    snprintf(path, sizeof path, "%s/r.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"raresynth_recipe\": 1, \"name\": \"X\", \"dataset_id\": 1,\n"
          " \"phantom\": {\"family\": \"abdomen\"},\n"
          " \"acquisition\": {\"modality\": \"ct\", \"tissues\": \"mri-brain\"}}\n",
          f);
    fclose(f);
    tu_log_capture();
    assert_int_equal(rsy_recipe_load(&r, path, search_configs), RSY_ECONFIG);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "mri-brain.json: tissues.background: no \"ct\""));
    tu_rmtree(dir);
    free(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Malformed recipes                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *recipe;   /* under tests/recipes_bad/ */
    const char *file;     /* file the message must name (a prior for errors inside it) */
    const char *expected; /* key path and expectation */
} bad_case;

static const bad_case bad_cases[] = {
    {"bad_syntax.json", "bad_syntax.json:4:3:", "malformed JSON (syntax error near"},
    {"trailing_garbage.json",
     "trailing_garbage.json:32:1:", "malformed JSON (unexpected text after the value: \"}\")"},
    {"empty.json", "empty.json:2:1:", "malformed JSON (empty document)"},
    {"top_level_array.json", "top_level_array.json",
     "expected a JSON object at the top level, got [1,2,3]"},
    {"dup_key.json", "dup_key.json", "phantom.dims: duplicate key"},
    {"wrong_version.json", "wrong_version.json", "raresynth_recipe: expected 1"},
    {"unknown_top_key.json", "unknown_top_key.json", "cases_count: unknown key (expected one of"},
    {"typo_nested.json", "typo_nested.json", "phantom.spacing_m: unknown key"},
    {"typo_dist_key.json", "typo_dist_key.json", "lesions[0].diameter_mm.medain: unknown key"},
    {"wrong_type.json", "wrong_type.json",
     "cases: expected an integer in [1, 10000000], got \"ten\""},
    {"negative_diameter.json", "negative_diameter.json",
     "lesions[0].diameter_mm.median: expected a number > 0, got -5"},
    {"string_number.json", "string_number.json",
     "lesions[0].diameter_mm.median: expected a number > 0, got \"abc\""},
    {"uniform_min_gt_max.json", "uniform_min_gt_max.json",
     "lesions[0].diameter_mm: expected min <= max"},
    {"count_fraction.json", "count_fraction.json",
     "lesions[0].count: expected an integer in [1, 1000], got 1.5"},
    {"dims_zero.json", "dims_zero.json",
     "phantom.dims[0]: expected an integer in [16, 2048], got 0"},
    {"dims_fraction.json", "dims_fraction.json",
     "phantom.dims[1]: expected an integer in [16, 2048], got 32.5"},
    {"dims_huge.json", "dims_huge.json",
     "phantom.dims[2]: expected an integer in [16, 2048], got 100000"},
    {"missing_sequences.json", "missing_sequences.json",
     "acquisition.sequences: required key missing"},
    {"missing_prior.json", "missing_prior.json",
     "lesions[0].prior: no prior named \"glioblastomaa\" (looked in tests/recipes_bad/../priors, "
     "configs/priors, configs, "},
    {"path_traversal.json", "path_traversal.json",
     "lesions[0].prior: expected a prior name of 1 to 63 characters from [a-z0-9_-]"},
    {"unknown_tissue_table.json", "unknown_tissue_table.json",
     "acquisition.tissues: no tissue table named \"mri-brian\""},
    {"prior_unknown_tissue.json", "fixture_prior_unknown_tissue.json",
     "compartments[1].mri.relative_to: no tissue \"whte_matter\" in the tissue table "
     "\"mri-brain\""},
    {"prior_two_extents.json", "fixture_prior_two_extents.json",
     "compartments[2]: expected exactly one extent key (radius_fraction, margin_mm, wall_mm, "
     "inclusions, network), got radius_fraction and margin_mm"},
    {"te_ge_tr.json", "te_ge_tr.json",
     "acquisition.sequences[0].te_ms: expected a number < tr_ms (600), got 700"},
    {"ti_missing.json", "ti_missing.json",
     "acquisition.sequences[0].ti_ms: required key missing (type \"inversion_recovery\")"},
    {"dup_sequence.json", "dup_sequence.json",
     "acquisition.sequences[1].name: duplicate sequence name \"T1w\""},
    {"seed_not_number.json", "seed_not_number.json",
     "seed: expected a decimal string of an unsigned 64-bit integer"},
    {"seed_overflow.json", "seed_overflow.json", "got \"18446744073709551616\""},
    {"unknown_sequence_type.json", "unknown_sequence_type.json",
     "acquisition.sequences[0].type: expected one of \"spin_echo\", \"inversion_recovery\", "
     "\"spoiled_gre\", got \"fast_spin_echo\""},
    {"noise_reference_unknown.json", "noise_reference_unknown.json",
     "acquisition.sequences[0].noise_reference: no tissue \"wm\""},
    {"texture_unknown_preset.json", "texture_unknown_preset.json",
     "texture.preset: no texture preset named \"brain-mir\" (looked in "
     "tests/recipes_bad/../textures, configs/textures, configs, "},
    {"texture_bad_sampler.json", "texture_bad_sampler.json",
     "texture.sampler: expected one of \"euler\", \"heun\", \"stochastic\", got \"rk4\""},
    {"texture_fitted_missing.json", "texture_fitted_missing.json",
     "texture.fitted: required key missing (\"model\": \"fitted\" needs the model's name"},
    {"texture_fitted_unknown_key.json", "texture_fitted_unknown_key.json",
     "texture.class_map: unknown key (expected one of"},
    {"ct_mri_key.json", "ct_mri_key.json",
     "acquisition.field_strength_T: an MRI key, not allowed when acquisition.modality is "
     "\"ct\""},
    {"mri_ct_key.json", "mri_ct_key.json",
     "acquisition.doses: a CT key, not allowed when acquisition.modality is \"mri\""},
    {"ct_unknown_phase.json", "ct_unknown_phase.json",
     "acquisition.phase: expected one of \"non_contrast\", \"arterial\", \"portal_venous\", "
     "got \"delayed\""},
    {"ct_dose_zero.json", "ct_dose_zero.json", "acquisition.doses[1]: expected a number in (0, 1]"},
    {"ct_dose_above_one.json", "ct_dose_above_one.json",
     "acquisition.doses[0]: expected a number in (0, 1], got 1.5"},
    {"ct_prior.json", "ct_prior.json",
     "lesions[0].prior: prior \"glioblastoma\" (configs/priors/glioblastoma.json) has no \"ct\" "
     "in its modalities, but the recipe images with CT"},
    /* Issue 5 prior format: each malformed fixture_prior_X.json differs from the valid
     * fixture_prior_disease.json (two lesion types, MRI and CT) in one place. */
    {"ct_prior_mri_only.json", "ct_prior_mri_only.json",
     "lesions[0].prior: prior \"glioblastoma\" (tests/recipes_bad/../../configs/priors/"
     "glioblastoma.json) has no \"ct\" in its modalities, but the recipe images with CT"},
    {"prior_unknown_key_shape.json", "fixture_prior_unknown_key_shape.json",
     "lesion_types[0].shape.roughness_amp: unknown key (expected one of: kind, elongation"},
    {"prior_unknown_key_placement.json", "fixture_prior_unknown_key_placement.json",
     "lesion_types[0].placement.zone_weight: unknown key (expected one of: rule, hosts"},
    {"prior_unknown_key_mass_effect.json", "fixture_prior_unknown_key_mass_effect.json",
     "lesion_types[0].mass_effect.strenght: unknown key (expected one of: strength, range_mm, "
     "fixed_tissues, note)"},
    {"prior_unknown_key_inclusions.json", "fixture_prior_unknown_key_inclusions.json",
     "lesion_types[0].compartments[2].inclusions.size_mm: unknown key (expected one of: "
     "volume_fraction, diameter_mm, where, note)"},
    {"prior_unknown_key_network.json", "fixture_prior_unknown_key_network.json",
     "lesion_types[0].compartments[3].network.cell_size_mm: unknown key (expected one of: "
     "line_mm, cell_mm, note)"},
    {"prior_unknown_key_ct_phase.json", "fixture_prior_unknown_key_ct_phase.json",
     "lesion_types[0].compartments[0].ct.arterial.sd: unknown key (expected one of: hu, sd_hu, "
     "note)"},
    {"prior_unknown_key_ct_relative.json", "fixture_prior_unknown_key_ct_relative.json",
     "lesion_types[0].compartments[1].ct.offset_hu: unknown key (expected one of: relative_to, "
     "hu_offset, sd_hu, note)"},
    {"prior_unknown_key_lesion_type.json", "fixture_prior_unknown_key_lesion_type.json",
     "lesion_types[1].counts: unknown key (expected one of: name, display_name, probability"},
    {"prior_diameter_max_lt_min.json", "fixture_prior_diameter_max_lt_min.json",
     "lesion_types[0].diameter_mm: expected min <= max (min 20, max 10)"},
    {"prior_negative_wall.json", "fixture_prior_negative_wall.json",
     "lesion_types[0].compartments[1].wall_mm: expected a number in (0, 100], got -1"},
    {"prior_wall_too_thick.json", "fixture_prior_wall_too_thick.json",
     "lesion_types[0].compartments[1].wall_mm: expected a wall thinner than the largest lesion "
     "radius (it is at least 12 mm; diameter_mm draws at most 20 mm)"},
    {"prior_unknown_reference.json", "fixture_prior_unknown_reference.json",
     "lesion_types[0].placement.reference[0]: no tissue \"ventricle\" in the tissue table "
     "\"mri-brain\""},
    {"prior_rule_without_reference.json", "fixture_prior_rule_without_reference.json",
     "lesion_types[0].placement.reference: required key missing (rule \"periventricular\" "
     "measures distances to these tissues)"},
    {"prior_min_distance_gt_max.json", "fixture_prior_min_distance_gt_max.json",
     "lesion_types[0].placement.min_distance_mm: expected a number < "
     "lesion_types[0].placement.max_distance_mm (8), got 10"},
    {"prior_inside_later.json", "fixture_prior_inside_later.json",
     "lesion_types[0].compartments[2].inside: expected the name of a compartment listed before "
     "this one (\"septa\" is the later compartments[3]: list the parent first)"},
    {"prior_inside_missing.json", "fixture_prior_inside_missing.json",
     "lesion_types[0].compartments[3].inside: expected the name of a compartment listed before "
     "this one (there is no compartment \"core\")"},
    {"prior_cyst_without_wall.json", "fixture_prior_cyst_without_wall.json",
     "lesion_types[0].shape.kind: expected \"solid\", or a compartment with \"wall_mm\""},
    {"prior_zone_weights_zero.json", "fixture_prior_zone_weights_zero.json",
     "lesion_types[0].placement.zone_weights: expected weights not all 0"},
    {"prior_ct_missing.json", "fixture_prior_ct_missing.json",
     "lesion_types[1].compartments[0].ct: required key missing (modalities include \"ct\")"},
    {"prior_override_multi_type.json", "prior_override_multi_type.json",
     "lesions[0].count: expected no override on an entry that takes 2 lesion types "
     "(\"fixture_prior_disease\" has 2): name one type, e.g. \"fixture_prior_disease/cyst\""},
    {"prior_unknown_lesion_type.json", "prior_unknown_lesion_type.json",
     "lesions[0].prior: no lesion type \"nodules\" in tests/recipes_bad/fixture_prior_disease.json "
     "(its types: \"cyst\", \"nodule\")"},
    {"prior_type_of_single_file.json", "prior_type_of_single_file.json",
     "lesions[0].prior: expected no \"/core\": tests/recipes_bad/../../configs/priors/"
     "glioblastoma.json holds one lesion type at its top level"},
};

static void test_bad_recipes(void **state)
{
    (void)state;
    size_t n = sizeof bad_cases / sizeof bad_cases[0];
    assert_true(n >= 14);
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &bad_cases[i];
        char path[512];
        snprintf(path, sizeof path, "tests/recipes_bad/%s", c->recipe);
        rsy_recipe *r = (rsy_recipe *)&r; /* must be reset to NULL on failure */
        tu_log_capture();
        rsy_status rc = rsy_recipe_load(&r, path, search_configs);
        const char *msg = tu_last_error();
        if (rc != RSY_ECONFIG || tu_errors() != 1 || !strstr(msg, c->file) ||
            !strstr(msg, c->expected))
            print_error("%s: rc %d, %d error lines, last \"%s\"; expected \"%s\" and \"%s\"\n",
                        c->recipe, (int)rc, tu_errors(), msg, c->file, c->expected);
        assert_int_equal(rc, RSY_ECONFIG);
        assert_null(r);
        assert_int_equal(tu_errors(), 1);
        assert_non_null(strstr(msg, c->file));
        assert_non_null(strstr(msg, c->expected));
        assert_null(strchr(msg, '\n'));
    }
}

static void test_unreadable_recipe(void **state)
{
    (void)state;
    rsy_recipe *r = NULL;
    tu_log_capture();
    assert_int_equal(rsy_recipe_load(&r, "tests/recipes_bad/no-such-file.json", NULL), RSY_EIO);
    assert_null(r);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "no-such-file.json"));
    assert_int_equal(rsy_recipe_load(NULL, "x.json", NULL), RSY_EINVAL);
}

/* ---------------------------------------------------------------------------------------- */
/* Priors and tissue tables loaded directly                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_prior_direct(void **state)
{
    (void)state;
    rsy_prior *p = NULL;
    tu_log_capture();
    assert_int_equal(rsy_prior_load(&p, "configs/priors/glioblastoma.json"), RSY_OK);
    assert_string_equal(p->name, "glioblastoma");
    assert_string_equal(p->organ, "brain");
    assert_string_equal(p->path, "configs/priors/glioblastoma.json");
    assert_int_equal(p->count.kind, RSY_DIST_CATEGORICAL);
    assert_true(p->count.values[0] == 1.0);
    assert_int_equal(p->diameter_mm.kind, RSY_DIST_LOGNORMAL);
    /* 3-6 cm is the central ~80% (domain.md Card 4): check it through the CDF. */
    double central = rsy_dist_cdf(&p->diameter_mm, 60.0) - rsy_dist_cdf(&p->diameter_mm, 30.0);
    assert_true(central > 0.78 && central < 0.84);
    assert_int_equal(p->n_hosts, 1);
    assert_string_equal(p->hosts[0], "white_matter");
    assert_int_equal(p->n_allowed, 3);
    assert_int_equal(p->n_compartments, 3);
    assert_string_equal(p->compartments[0].name, "necrotic_core");
    assert_string_equal(p->compartments[1].name, "oedema");
    assert_string_equal(p->compartments[2].name, "enhancing_tumour");
    assert_int_equal(p->compartments[1].extent_kind, RSY_EXTENT_MARGIN_MM);
    assert_int_equal(p->compartments[1].n_confined, 1);
    assert_int_equal(p->compartments[1].props_mode, RSY_PROPS_RELATIVE);
    assert_string_equal(p->compartments[1].relative_to, "white_matter");
    assert_int_equal(p->compartments[0].props_mode, RSY_PROPS_ABSOLUTE);
    assert_true(p->compartments[2].extent.kind == RSY_DIST_FIXED &&
                p->compartments[2].extent.value == 1.0);
    assert_true(p->compartments[2].gd_mM > 0.0);
    assert_true(p->n_sources >= 1);
    assert_int_equal(tu_errors(), 0);
    free(p);

    /* Errors inside a prior name the prior's file and its key path. */
    p = (rsy_prior *)&p;
    assert_int_equal(rsy_prior_load(&p, "tests/recipes_bad/fixture_prior_two_extents.json"),
                     RSY_ECONFIG);
    assert_null(p);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "fixture_prior_two_extents.json: compartments[2]"));

    /* The name must equal the file stem. */
    char *dir = tu_tmpdir("config");
    assert_non_null(dir);
    size_t len;
    char *text = slurp("configs/priors/glioblastoma.json", &len);
    char *path = write_file(dir, "other.json", text);
    tu_log_capture();
    assert_int_equal(rsy_prior_load(&p, path), RSY_ECONFIG);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "other.json: name: expected \"other\""));
    free(path);
    free(text);
    tu_rmtree(dir);
    free(dir);
}

static void test_tissue_table(void **state)
{
    (void)state;
    rsy_tissue_table *t = NULL;
    tu_log_capture();
    assert_int_equal(rsy_tissue_table_load(&t, "configs/tissues/mri-brain.json"), RSY_OK);
    assert_string_equal(t->name, "mri-brain");
    const char *head[] = {"background",   "scalp",      "skull",     "csf",        "grey_matter",
                          "white_matter", "ventricles", "deep_grey", "cerebellum", "brainstem"};
    assert_int_equal(t->n_tissues, 10);
    for (int i = 0; i < 10; i++)
        assert_non_null(rsy_tissue_table_find(t, head[i]));
    assert_null(rsy_tissue_table_find(t, "liver"));
    assert_true(rsy_tissue_table_find(t, "background")->mri_3t.pd == 0.0);

    const rsy_tissue *wm = rsy_tissue_table_find(t, "white_matter");
    rsy_mri_props a = rsy_tissue_mri_at(wm, 1.5), b = rsy_tissue_mri_at(wm, 3.0);
    assert_true(a.t1_ms == wm->mri_1p5t.t1_ms && b.t1_ms == wm->mri_3t.t1_ms);
    rsy_mri_props m = rsy_tissue_mri_at(wm, 2.25);
    assert_true(fabs(m.t1_ms - 0.5 * (a.t1_ms + b.t1_ms)) < 1e-9);
    assert_true(fabs(m.t2_ms - 0.5 * (a.t2_ms + b.t2_ms)) < 1e-9);
    /* Clamped outside [1.5, 3] T. */
    assert_true(rsy_tissue_mri_at(wm, 1.0).t1_ms == a.t1_ms);
    assert_true(rsy_tissue_mri_at(wm, 3.5).t1_ms == b.t1_ms);
    /* Deep grey lies between GM and WM at both fields. */
    const rsy_tissue *gm = rsy_tissue_table_find(t, "grey_matter");
    const rsy_tissue *dg = rsy_tissue_table_find(t, "deep_grey");
    assert_true(dg->mri_3t.t1_ms > wm->mri_3t.t1_ms && dg->mri_3t.t1_ms < gm->mri_3t.t1_ms);
    assert_true(dg->mri_1p5t.t1_ms > wm->mri_1p5t.t1_ms && dg->mri_1p5t.t1_ms < gm->mri_1p5t.t1_ms);
    assert_int_equal(tu_errors(), 0);
    free(t);

    t = (rsy_tissue_table *)&t;
    assert_int_equal(rsy_tissue_table_load(&t, "tests/recipes_bad/no-such-table.json"), RSY_EIO);
    assert_null(t);
    assert_int_equal(tu_errors(), 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Distributions                                                                              */
/* ---------------------------------------------------------------------------------------- */

static rsy_dist dist_of(rsy_dist_kind kind)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    return d;
}

static void test_dist_statistics(void **state)
{
    (void)state;
    rsy_dist d;

    d = dist_of(RSY_DIST_UNIFORM);
    d.min = 0.35;
    d.max = 0.65;
    assert_true(ks_distance(&d, 101, 0) < KS_CRIT);

    /* Lognormal, truncated on both sides (the glioblastoma diameter). */
    d = dist_of(RSY_DIST_LOGNORMAL);
    d.median = 42.4;
    d.gsd = 1.31;
    d.min = 15.0;
    d.max = 80.0;
    assert_true(ks_distance(&d, 102, 0) < KS_CRIT);
    /* Lognormal with a truncation that cuts deep (re-drawing must follow the CDF). */
    d.min = 40.0;
    d.max = 50.0;
    assert_true(ks_distance(&d, 103, 0) < KS_CRIT);

    d = dist_of(RSY_DIST_NORMAL);
    d.mean = 10.0;
    d.sd = 4.0;
    d.min = 0.0;
    d.max = INFINITY;
    assert_true(ks_distance(&d, 104, 0) < KS_CRIT);

    d = dist_of(RSY_DIST_CATEGORICAL);
    d.n_categories = 3;
    d.values[0] = 1;
    d.values[1] = 2;
    d.values[2] = 3;
    d.weights[0] = 0.9;
    d.weights[1] = 0.07;
    d.weights[2] = 0.03;
    assert_true(ks_distance(&d, 105, 1) < KS_CRIT);

    /* Poisson shifted by min = 1 and truncated at max = 4. */
    d = dist_of(RSY_DIST_POISSON);
    d.mean = 2.0;
    d.min = 1.0;
    d.max = 4.0;
    assert_true(ks_distance(&d, 106, 1) < KS_CRIT);
    d.max = INFINITY;
    assert_true(ks_distance(&d, 107, 1) < KS_CRIT);

    d = dist_of(RSY_DIST_FIXED);
    d.value = d.min = d.max = 7.0;
    assert_true(ks_distance(&d, 108, 1) == 0.0);

    /* The statistic can fail: a shifted distribution is far beyond the bound. */
    d = dist_of(RSY_DIST_NORMAL);
    d.mean = 10.0;
    d.sd = 4.0;
    d.min = -INFINITY;
    d.max = INFINITY;
    rsy_dist shifted = d;
    shifted.mean = 10.5;
    rsy_rng *rng = NULL;
    assert_int_equal(rsy_rng_create(&rng, 109), RSY_OK);
    double *x = malloc(KS_N * sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < KS_N; i++)
        x[i] = rsy_dist_sample(&shifted, rng);
    rsy_rng_destroy(rng);
    qsort(x, KS_N, sizeof *x, cmp_double);
    double dmax = 0.0;
    for (int i = 0; i < KS_N; i++) {
        double f = rsy_dist_cdf(&d, x[i]);
        dmax = fmax(dmax, fmax((i + 1.0) / KS_N - f, f - (double)i / KS_N));
    }
    free(x);
    assert_true(dmax > KS_CRIT);
}

static void test_dist_cdf_edges(void **state)
{
    (void)state;
    rsy_dist d = dist_of(RSY_DIST_LOGNORMAL);
    d.median = 42.4;
    d.gsd = 1.31;
    d.min = 15.0;
    d.max = 80.0;
    assert_true(rsy_dist_cdf(&d, 14.9) == 0.0);
    assert_true(rsy_dist_cdf(&d, 80.0) == 1.0);
    /* The truncated median stays close to the untruncated one (nearly symmetric cut). */
    assert_true(fabs(rsy_dist_cdf(&d, 42.4) - 0.5) < 0.01);
    rsy_dist u = dist_of(RSY_DIST_UNIFORM);
    u.min = u.max = 3.0;
    assert_true(rsy_dist_cdf(&u, 2.9) == 0.0 && rsy_dist_cdf(&u, 3.0) == 1.0);
}

/* ---------------------------------------------------------------------------------------- */
/* Memory estimate                                                                            */
/* ---------------------------------------------------------------------------------------- */

static void test_memory_estimate(void **state)
{
    (void)state;
    rsy_recipe *r = NULL;
    tu_log_capture();
    const char *dirs[3];
    char *standin = fitted_standin(dirs);
    assert_int_equal(rsy_recipe_load(&r, "configs/recipes/brain-glioblastoma-mri.json", dirs),
                     RSY_OK);
    tu_rmtree(standin);
    free(standin);
    /* The demo's fitted model is not read by the loader: the bound takes the largest patch
     * (9^3 = 729 values) and 16 components for the scratch and 1-voxel cells for the tiling
     * term: 128^3 x (29 + 16 + 16 + 16) bytes + 2048 x 729 x 18 floats + 64 MiB. */
    assert_int_equal(r->texture, RSY_TEXTURE_FITTED);
    assert_true(rsy_recipe_memory_estimate(r, 1) ==
                128ull * 128 * 128 * (29 + 16 + 32) + 2048ull * 729 * 18 * 4 + (64ull << 20));
    r->texture = RSY_TEXTURE_PRESET;
    /* With its preset the demo samples texture: 128^3 voxels x (29 + 4 x 4 channels + 16 for the
     * texture field and sampler state + 1 for the tiling cells of 5^3 voxels, 16 / 125 rounded up)
     * bytes + the denoiser's scratch of 2048 patches x 125 x (2 components + 2) floats +
     * 64 MiB (the documented formula). */
    assert_int_equal(r->texture, RSY_TEXTURE_PRESET);
    uint64_t base = rsy_recipe_memory_estimate(r, 1);
    assert_true(base ==
                128ull * 128 * 128 * (29 + 16 + 17) + 2048ull * 125 * 4 * 4 + (64ull << 20));
    /* The uniform model: 128^3 voxels x (29 + 4 x 4 channels) bytes + 64 MiB. */
    r->texture = RSY_TEXTURE_UNIFORM;
    assert_true(rsy_recipe_memory_estimate(r, 1) == 128ull * 128 * 128 * (29 + 16) + (64ull << 20));
    r->texture = RSY_TEXTURE_PRESET;
    uint64_t prev = base;
    for (int w = 2; w <= 16; w *= 2) {
        uint64_t m = rsy_recipe_memory_estimate(r, w);
        assert_true(m > prev);
        prev = m;
    }
    assert_true(rsy_recipe_memory_estimate(r, 0) == base);
    prev = 0;
    for (int64_t n = 16; n <= 2048; n *= 2) {
        r->phantom.dims[0] = r->phantom.dims[1] = r->phantom.dims[2] = n;
        uint64_t m = rsy_recipe_memory_estimate(r, 4);
        assert_true(m > prev);
        prev = m;
    }
    r->phantom.dims[2] = 64;
    uint64_t m64 = rsy_recipe_memory_estimate(r, 4);
    assert_true(m64 < prev);
    /* Saturates instead of wrapping around. */
    assert_true(rsy_recipe_memory_estimate(r, 1 << 30) > prev);
    rsy_recipe_destroy(r);
}

/* ---------------------------------------------------------------------------------------- */
/* The issue-5 prior format: every key, defaults, diseases with several lesion types          */
/* ---------------------------------------------------------------------------------------- */

/* A disease with every key of the format: a cystic type with all shape, placement, mass-effect
 * and compartment keys (every extent kind, MRI and CT properties absolute and relative), an
 * extra-axial type, and a type that gives only the required keys. */
static const char every_prior[] =
    "{\"raresynth_prior\": 1, \"name\": \"every\", \"display_name\": \"Every key\",\n"
    " \"organ\": \"brain\", \"modalities\": [\"mri\", \"ct\"], \"description\": \"All keys.\",\n"
    " \"note\": \"n\", \"sources\": [\"GK\", \"S1 a source\"],\n"
    " \"lesion_types\": [\n"
    "  {\"name\": \"cystic_mass\", \"display_name\": \"Cystic mass\", \"probability\": 0.25,\n"
    "   \"note\": \"t\",\n"
    "   \"count\": {\"distribution\": \"poisson\", \"mean\": 2, \"min\": 1, \"max\": 6},\n"
    "   \"diameter_mm\": {\"distribution\": \"uniform\", \"min\": 8, \"max\": 20},\n"
    "   \"shape\": {\"kind\": \"cyst\", \"elongation\": 1.5,\n"
    "     \"flatness\": {\"distribution\": \"uniform\", \"min\": 1, \"max\": 1.2},\n"
    "     \"lobulation_lmax\": 3, \"lobulation_amplitude\": 0.1, \"roughness_amplitude\": 0.05,\n"
    "     \"roughness_scale_mm\": 3,\n"
    "     \"lobes\": {\"distribution\": \"categorical\", \"values\": [1, 3], \"weights\": [2, "
    "1]},\n"
    "     \"orientation\": \"radial\", \"note\": \"s\"},\n"
    "   \"placement\": {\"rule\": \"periventricular\", \"hosts\": [\"white_matter\"],\n"
    "     \"allowed_tissues\": [\"white_matter\", \"ventricles\"], \"reference\": "
    "[\"ventricles\"],\n"
    "     \"min_distance_mm\": 1, \"max_distance_mm\": 10, \"zone_weights\": [3, 1, 0],\n"
    "     \"min_separation_mm\": 2, \"max_attempts\": 50, \"note\": \"p\"},\n"
    "   \"mass_effect\": {\"strength\": {\"distribution\": \"uniform\", \"min\": 0.1, \"max\": "
    "0.3},\n"
    "     \"range_mm\": 15, \"fixed_tissues\": [\"skull\", \"scalp\"], \"note\": \"m\"},\n"
    "   \"compartments\": [\n"
    "    {\"name\": \"fluid\", \"display_name\": \"cyst fluid\", \"radius_fraction\": 1,\n"
    "     \"mri\": {\"1.5T\": {\"t1_ms\": 3000, \"t2_ms\": 1500, \"pd\": 1.0},\n"
    "             \"3T\": {\"t1_ms\": 3200, \"t2_ms\": 1400, \"pd\": 0.98, \"gd_mM\": 0.1}},\n"
    "     \"ct\": {\"non_contrast\": {\"hu\": 5, \"sd_hu\": 3}, \"arterial\": {\"hu\": 6},\n"
    "            \"portal_venous\": {\"hu\": 7, \"sd_hu\": 2}},\n"
    "     \"texture_sd_fraction\": 0.05, \"note\": \"c\"},\n"
    "    {\"name\": \"wall\", \"wall_mm\": {\"distribution\": \"uniform\", \"min\": 0.5, \"max\": "
    "2},\n"
    "     \"confined_to\": [\"white_matter\"],\n"
    "     \"mri\": {\"relative_to\": \"white_matter\", \"t1_factor\": 1.2, \"t2_factor\": 1.5,\n"
    "             \"pd_factor\": 0.9, \"gd_mM\": 0.3},\n"
    "     \"ct\": {\"relative_to\": \"white_matter\", \"hu_offset\": {\"non_contrast\": 10,\n"
    "             \"arterial\": 40, \"portal_venous\": 30}, \"sd_hu\": 4}},\n"
    "    {\"name\": \"calcification\", \"inside\": \"fluid\",\n"
    "     \"inclusions\": {\"volume_fraction\": 0.1, \"diameter_mm\": {\"distribution\":\n"
    "       \"lognormal\", \"median\": 1.5, \"gsd\": 1.3}, \"where\": \"periphery\", \"note\": "
    "\"i\"},\n"
    "     \"mri\": {\"relative_to\": \"skull\"},\n"
    "     \"ct\": {\"relative_to\": \"skull\", \"hu_offset\": {\"non_contrast\": 0, \"arterial\": "
    "0,\n"
    "             \"portal_venous\": 0}}},\n"
    "    {\"name\": \"septa\", \"inside\": \"fluid\",\n"
    "     \"network\": {\"line_mm\": 0.5, \"cell_mm\": {\"distribution\": \"uniform\", \"min\": "
    "3,\n"
    "       \"max\": 5}, \"note\": \"n\"},\n"
    "     \"mri\": {\"relative_to\": \"white_matter\"},\n"
    "     \"ct\": {\"relative_to\": \"white_matter\", \"hu_offset\": {\"non_contrast\": 5,\n"
    "             \"arterial\": 5, \"portal_venous\": 5}}}]},\n"
    "  {\"name\": \"meningeal\", \"count\": 1, \"diameter_mm\": 30,\n"
    "   \"placement\": {\"rule\": \"extra_axial\", \"hosts\": [\"csf\"],\n"
    "     \"allowed_tissues\": [\"csf\", \"grey_matter\"], \"reference\": [\"skull\"],\n"
    "     \"max_distance_mm\": 3},\n"
    "   \"compartments\": [{\"name\": \"mass\", \"radius_fraction\": 1,\n"
    "     \"mri\": {\"relative_to\": \"grey_matter\"},\n"
    "     \"ct\": {\"relative_to\": \"grey_matter\", \"hu_offset\": {\"non_contrast\": 5,\n"
    "             \"arterial\": 30, \"portal_venous\": 20}}}]},\n"
    "  {\"name\": \"dot\", \"count\": 1, \"diameter_mm\": 4,\n"
    "   \"placement\": {\"hosts\": [\"white_matter\"]},\n"
    "   \"compartments\": [{\"name\": \"dot\", \"radius_fraction\": 1,\n"
    "     \"mri\": {\"relative_to\": \"white_matter\"},\n"
    "     \"ct\": {\"relative_to\": \"white_matter\", \"hu_offset\": {\"non_contrast\": 1,\n"
    "             \"arterial\": 2, \"portal_venous\": 3}}}]}]}\n";

/* The defaults of a lesion type that gives only the required keys (host_tissue rule). */
static void assert_type_defaults(const rsy_prior *p)
{
    assert_true(p->probability == 1.0);
    assert_int_equal(p->shape_kind, RSY_SHAPE_SOLID);
    assert_int_equal(p->flatness.kind, RSY_DIST_FIXED);
    assert_true(p->flatness.value == 1.0);
    assert_int_equal(p->lobes.kind, RSY_DIST_FIXED);
    assert_true(p->lobes.value == 1.0);
    assert_true(p->roughness_amplitude == 0.0 && p->roughness_scale_mm == 2.0);
    assert_int_equal(p->orientation, RSY_ORIENT_RANDOM);
    assert_int_equal(p->rule, RSY_PLACE_HOST_TISSUE);
    assert_int_equal(p->n_reference, 0);
    assert_true(p->min_distance_mm == 0.0 && isinf(p->max_distance_mm));
    for (int z = 0; z < 3; z++)
        assert_true(p->zone_weights[z] == 1.0);
    assert_int_equal(p->mass_effect.enabled, 0);
    assert_int_equal(p->mass_effect.n_fixed, 0);
    for (int c = 0; c < p->n_compartments; c++)
        assert_string_equal(p->compartments[c].parent, "");
}

static void test_prior_every_key(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("config");
    assert_non_null(dir);
    char *path = write_file(dir, "every.json", every_prior);
    rsy_disease *d = NULL;
    tu_log_capture();
    assert_int_equal(rsy_disease_load(&d, path), RSY_OK);
    assert_int_equal(tu_errors(), 0);
    assert_string_equal(d->name, "every");
    assert_string_equal(d->display_name, "Every key");
    assert_string_equal(d->organ, "brain");
    assert_string_equal(d->description, "All keys.");
    assert_string_equal(d->path, path);
    assert_true(d->modalities == (RSY_PRIOR_MRI | RSY_PRIOR_CT));
    assert_int_equal(d->n_types, 3);

    const rsy_prior *p = &d->types[0];
    assert_string_equal(p->name, "every/cystic_mass");
    assert_string_equal(p->disease, "every");
    assert_string_equal(p->type_name, "cystic_mass");
    assert_string_equal(p->display_name, "Cystic mass");
    assert_string_equal(p->organ, "brain");
    assert_string_equal(p->path, path);
    assert_true(p->modalities == (RSY_PRIOR_MRI | RSY_PRIOR_CT));
    assert_int_equal(p->n_sources, 2);
    assert_string_equal(p->sources[1], "S1 a source");
    assert_true(p->probability == 0.25);
    assert_int_equal(p->count.kind, RSY_DIST_POISSON);
    assert_true(p->count.mean == 2.0 && p->count.min == 1.0 && p->count.max == 6.0);
    assert_int_equal(p->diameter_mm.kind, RSY_DIST_UNIFORM);
    assert_true(p->diameter_mm.min == 8.0 && p->diameter_mm.max == 20.0);
    /* shape */
    assert_int_equal(p->shape_kind, RSY_SHAPE_CYST);
    assert_true(p->elongation.kind == RSY_DIST_FIXED && p->elongation.value == 1.5);
    assert_true(p->flatness.kind == RSY_DIST_UNIFORM && p->flatness.max == 1.2);
    assert_int_equal(p->lobulation_lmax, 3);
    assert_true(p->lobulation_amplitude == 0.1);
    assert_true(p->roughness_amplitude == 0.05 && p->roughness_scale_mm == 3.0);
    assert_int_equal(p->lobes.kind, RSY_DIST_CATEGORICAL);
    assert_int_equal(p->lobes.n_categories, 2);
    assert_true(p->lobes.values[1] == 3.0 && p->lobes.weights[0] == 2.0);
    assert_int_equal(p->orientation, RSY_ORIENT_RADIAL);
    /* placement */
    assert_int_equal(p->rule, RSY_PLACE_PERIVENTRICULAR);
    assert_int_equal(p->n_hosts, 1);
    assert_string_equal(p->hosts[0], "white_matter");
    assert_int_equal(p->n_allowed, 2);
    assert_string_equal(p->allowed[1], "ventricles");
    assert_int_equal(p->n_reference, 1);
    assert_string_equal(p->reference[0], "ventricles");
    assert_true(p->min_distance_mm == 1.0 && p->max_distance_mm == 10.0);
    assert_true(p->zone_weights[0] == 3.0 && p->zone_weights[1] == 1.0 &&
                p->zone_weights[2] == 0.0);
    assert_true(p->min_separation_mm == 2.0);
    assert_int_equal(p->max_attempts, 50);
    /* mass effect */
    assert_int_equal(p->mass_effect.enabled, 1);
    assert_int_equal(p->mass_effect.strength.kind, RSY_DIST_UNIFORM);
    assert_true(p->mass_effect.strength.min == 0.1 && p->mass_effect.strength.max == 0.3);
    assert_true(p->mass_effect.range_mm == 15.0);
    assert_int_equal(p->mass_effect.n_fixed, 2);
    assert_string_equal(p->mass_effect.fixed[1], "scalp");
    /* compartments */
    assert_int_equal(p->n_compartments, 4);
    const rsy_compartment *fluid = &p->compartments[0], *wall = &p->compartments[1];
    const rsy_compartment *calc = &p->compartments[2], *septa = &p->compartments[3];
    assert_string_equal(fluid->display_name, "cyst fluid");
    assert_int_equal(fluid->extent_kind, RSY_EXTENT_RADIUS_FRACTION);
    assert_true(fluid->has_mri && fluid->has_ct);
    assert_int_equal(fluid->props_mode, RSY_PROPS_ABSOLUTE);
    assert_true(fluid->mri_1p5t.t1_ms == 3000.0 && fluid->mri_3t.pd == 0.98 &&
                fluid->mri_3t.gd_mM == 0.1);
    assert_int_equal(fluid->ct_mode, RSY_PROPS_ABSOLUTE);
    assert_true(fluid->ct[RSY_CT_PHASE_NON_CONTRAST].hu == 5.0 &&
                fluid->ct[RSY_CT_PHASE_NON_CONTRAST].sd_hu == 3.0);
    assert_true(fluid->ct[RSY_CT_PHASE_ARTERIAL].hu == 6.0 &&
                fluid->ct[RSY_CT_PHASE_ARTERIAL].sd_hu == 0.0);
    assert_true(fluid->ct[RSY_CT_PHASE_PORTAL_VENOUS].hu == 7.0 &&
                fluid->ct[RSY_CT_PHASE_PORTAL_VENOUS].sd_hu == 2.0);
    assert_true(fluid->texture_sd_fraction == 0.05);
    assert_string_equal(fluid->parent, "");
    assert_int_equal(wall->extent_kind, RSY_EXTENT_WALL_MM);
    assert_true(wall->extent.kind == RSY_DIST_UNIFORM && wall->extent.min == 0.5 &&
                wall->extent.max == 2.0);
    assert_int_equal(wall->n_confined, 1);
    assert_int_equal(wall->props_mode, RSY_PROPS_RELATIVE);
    assert_string_equal(wall->relative_to, "white_matter");
    assert_true(wall->t1_factor == 1.2 && wall->t2_factor == 1.5 && wall->pd_factor == 0.9 &&
                wall->gd_mM == 0.3);
    assert_int_equal(wall->ct_mode, RSY_PROPS_RELATIVE);
    assert_string_equal(wall->ct_relative_to, "white_matter");
    assert_true(wall->ct[RSY_CT_PHASE_NON_CONTRAST].hu == 10.0 &&
                wall->ct[RSY_CT_PHASE_ARTERIAL].hu == 40.0 &&
                wall->ct[RSY_CT_PHASE_PORTAL_VENOUS].hu == 30.0);
    for (int ph = 0; ph < RSY_CT_N_PHASES; ph++)
        assert_true(wall->ct[ph].sd_hu == 4.0);
    assert_int_equal(calc->extent_kind, RSY_EXTENT_INCLUSIONS);
    assert_true(calc->extent.kind == RSY_DIST_FIXED && calc->extent.value == 0.1);
    assert_int_equal(calc->inclusion_diameter_mm.kind, RSY_DIST_LOGNORMAL);
    assert_true(calc->inclusion_diameter_mm.median == 1.5);
    assert_int_equal(calc->where, RSY_WHERE_PERIPHERY);
    assert_string_equal(calc->parent, "fluid");
    /* Relative MRI factors default to 1 and Gd to 0. */
    assert_true(calc->t1_factor == 1.0 && calc->pd_factor == 1.0 && calc->gd_mM == 0.0);
    assert_int_equal(septa->extent_kind, RSY_EXTENT_NETWORK);
    assert_true(septa->extent.kind == RSY_DIST_FIXED && septa->extent.value == 0.5);
    assert_true(septa->cell_mm.kind == RSY_DIST_UNIFORM && septa->cell_mm.max == 5.0);
    assert_string_equal(septa->parent, "fluid");

    /* Extra-axial: tangential without being asked; the display name defaults to the type's. */
    p = &d->types[1];
    assert_string_equal(p->name, "every/meningeal");
    assert_string_equal(p->display_name, "meningeal");
    assert_int_equal(p->rule, RSY_PLACE_EXTRA_AXIAL);
    assert_int_equal(p->orientation, RSY_ORIENT_TANGENTIAL);
    assert_true(p->min_distance_mm == 0.0 && p->max_distance_mm == 3.0);

    /* Only the required keys: every default. */
    p = &d->types[2];
    assert_string_equal(p->name, "every/dot");
    assert_type_defaults(p);
    assert_true(p->compartments[0].ct[RSY_CT_PHASE_PORTAL_VENOUS].hu == 3.0 &&
                p->compartments[0].ct[RSY_CT_PHASE_PORTAL_VENOUS].sd_hu == 0.0);
    free(d);

    /* A subependymal lesion may replace its reference tissues (it protrudes into the
     * ventricle): they are added to the allowed tissues. */
    char *sub = write_file(dir, "sub.json",
                           "{\"raresynth_prior\": 1, \"name\": \"sub\", \"organ\": \"brain\", "
                           "\"modalities\": [\"mri\"], \"sources\": [\"GK\"], \"count\": 1, "
                           "\"diameter_mm\": 8, \"placement\": {\"rule\": \"subependymal\", "
                           "\"hosts\": [\"white_matter\"], \"reference\": [\"ventricles\"], "
                           "\"max_distance_mm\": 4}, \"compartments\": [{\"name\": \"n\", "
                           "\"radius_fraction\": 1, \"mri\": {\"relative_to\": "
                           "\"grey_matter\"}}]}");
    rsy_prior *q = NULL;
    assert_int_equal(rsy_prior_load(&q, sub), RSY_OK);
    assert_int_equal(q->rule, RSY_PLACE_SUBEPENDYMAL);
    assert_int_equal(q->n_allowed, 2);
    assert_string_equal(q->allowed[0], "white_matter");
    assert_string_equal(q->allowed[1], "ventricles");
    assert_true(q->min_distance_mm == 0.0 && q->max_distance_mm == 4.0);
    free(q);
    free(sub);

    /* rsy_prior_load takes only a file with one type at its top level. */
    q = (rsy_prior *)&q;
    tu_log_capture();
    assert_int_equal(rsy_prior_load(&q, path), RSY_ECONFIG);
    assert_null(q);
    assert_int_equal(tu_errors(), 1);
    assert_non_null(strstr(tu_last_error(), "every.json: lesion_types: expected one lesion type"));
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* glioblastoma.json, written before the issue-5 keys, loads unchanged: the keys it gives as
 * before (test_prior_direct), every new field at its default, the same result through both
 * loaders. */
static void test_prior_defaults_glioblastoma(void **state)
{
    (void)state;
    const char *path = "configs/priors/glioblastoma.json";
    rsy_prior *p = NULL;
    rsy_disease *d = NULL;
    tu_log_capture();
    assert_int_equal(rsy_prior_load(&p, path), RSY_OK);
    assert_int_equal(rsy_disease_load(&d, path), RSY_OK);
    assert_int_equal(tu_errors(), 0);
    assert_string_equal(p->name, "glioblastoma");
    assert_string_equal(p->disease, "glioblastoma");
    assert_string_equal(p->type_name, "");
    assert_string_equal(p->display_name, "Glioblastoma (IDH-wildtype)");
    assert_true(p->modalities == RSY_PRIOR_MRI);
    assert_type_defaults(p);
    assert_true(p->elongation.kind == RSY_DIST_UNIFORM && p->elongation.min == 1.0 &&
                p->elongation.max == 1.5);
    assert_int_equal(p->lobulation_lmax, 4);
    assert_true(p->lobulation_amplitude == 0.15);
    assert_true(p->min_separation_mm == 10.0);
    assert_int_equal(p->max_attempts, 2000);
    assert_int_equal(p->n_allowed, 3);
    assert_string_equal(p->allowed[2], "deep_grey");
    static const rsy_extent_kind kinds[] = {RSY_EXTENT_RADIUS_FRACTION, RSY_EXTENT_MARGIN_MM,
                                            RSY_EXTENT_RADIUS_FRACTION};
    for (int c = 0; c < 3; c++) {
        const rsy_compartment *cm = &p->compartments[c];
        assert_int_equal(cm->extent_kind, kinds[c]);
        assert_true(cm->has_mri && !cm->has_ct);
    }
    assert_true(p->compartments[0].extent.kind == RSY_DIST_UNIFORM &&
                p->compartments[0].extent.min == 0.55 && p->compartments[0].extent.max == 0.8);
    assert_true(p->compartments[0].mri_3t.t1_ms == 3162.0 &&
                p->compartments[0].mri_3t.t2_ms == 671.0);
    assert_true(p->compartments[1].extent.min == 5.0 && p->compartments[1].extent.max == 25.0);
    assert_true(p->compartments[1].t1_factor == 1.352 && p->compartments[1].t2_factor == 1.711);
    assert_true(p->compartments[2].t1_factor == 1.997 && p->compartments[2].gd_mM == 0.5);
    assert_true(p->compartments[0].texture_sd_fraction == 0.1);
    assert_int_equal(p->n_sources, 6);
    assert_int_equal(d->n_types, 1);
    assert_string_equal(d->name, "glioblastoma");
    assert_string_equal(d->organ, "brain");
    assert_true(d->modalities == RSY_PRIOR_MRI);
    assert_non_null(strstr(d->description, "Solitary, poorly defined"));
    /* Both loaders fill every byte the same way (the structs are zeroed before parsing). */
    assert_memory_equal(p, &d->types[0], sizeof *p);
    free(p);
    free(d);
}

/* A recipe directory: DIR/recipes/r.json beside DIR/priors/ holding @p n_priors files. */
static char *recipe_dir_with(const char *const names[], const char *const texts[], int n_priors)
{
    char *dir = tu_tmpdir("config");
    assert_non_null(dir);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/priors", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    for (int i = 0; i < n_priors; i++)
        free(write_file(sub, names[i], texts[i]));
    snprintf(sub, sizeof sub, "%s/recipes", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    return dir;
}

/* Load DIR/recipes/r.json made of @p head and @p lesions (the "lesions" array's text). */
static rsy_status load_in(const char *dir, const char *head, const char *lesions, rsy_recipe **r)
{
    char sub[1024], text[4096];
    snprintf(sub, sizeof sub, "%s/recipes", dir);
    snprintf(text, sizeof text, "%s, \"lesions\": %s}\n", head, lesions);
    char *path = write_file(sub, "r.json", text);
    rsy_status rc = rsy_recipe_load(r, path, search_configs);
    free(path);
    return rc;
}

#define CT_HEAD                                                                                    \
    "{\"raresynth_recipe\": 1, \"name\": \"Ct\", \"dataset_id\": 8,\n"                             \
    " \"phantom\": {\"family\": \"head\"},\n"                                                      \
    " \"acquisition\": {\"modality\": \"ct\", \"tissues\": \"ct-body\", \"scanner\": "             \
    "\"ct-standard\", \"phase\": \"arterial\", \"doses\": [1.0]}"

/* A prior for MRI and CT whose MRI properties name a tissue no table has: a CT recipe reads only
 * the CT properties, so only their tissue is checked against its table. */
static const char mixed_prior[] =
    "{\"raresynth_prior\": 1, \"name\": \"mixed\", \"organ\": \"brain\",\n"
    " \"modalities\": [\"mri\", \"ct\"], \"sources\": [\"GK\"], \"count\": 1, \"diameter_mm\": "
    "20,\n"
    " \"placement\": {\"hosts\": [\"white_matter\"]},\n"
    " \"compartments\": [{\"name\": \"lesion\", \"radius_fraction\": 1,\n"
    "   \"mri\": {\"relative_to\": \"tissue_of_no_table\"},\n"
    "   \"ct\": {\"relative_to\": \"white_matter\", \"hu_offset\": {\"non_contrast\": -20,\n"
    "          \"arterial\": 40, \"portal_venous\": -10}, \"sd_hu\": 8}}]}\n";

static void test_disease_in_recipe(void **state)
{
    (void)state;
    /* 16 lesion types in one disease: with one more, a recipe is over RSY_MAX_LESION_TYPES. */
    char many[16384];
    size_t k = (size_t)snprintf(many, sizeof many,
                                "{\"raresynth_prior\": 1, \"name\": \"many\", \"organ\": "
                                "\"brain\", \"modalities\": [\"mri\"], \"sources\": [\"GK\"], "
                                "\"lesion_types\": [");
    for (int i = 0; i < RSY_MAX_LESION_TYPES; i++)
        k += (size_t)snprintf(many + k, sizeof many - k,
                              "%s{\"name\": \"t%d\", \"count\": 1, \"diameter_mm\": 5, "
                              "\"placement\": {\"hosts\": [\"white_matter\"]}, \"compartments\": "
                              "[{\"name\": \"c%d\", \"radius_fraction\": 1, \"mri\": "
                              "{\"relative_to\": \"white_matter\"}}]}",
                              i ? ", " : "", i, i);
    snprintf(many + k, sizeof many - k, "]}\n");
    static const char *const names[] = {"every.json", "many.json", "mixed.json"};
    const char *const texts[] = {every_prior, many, mixed_prior};
    char *dir = recipe_dir_with(names, texts, 3);
    rsy_recipe *r = NULL;
    tu_log_capture();

    /* A disease name takes every type, with the prior's probabilities. */
    assert_int_equal(load_in(dir, MINIMAL_HEAD, "[{\"prior\": \"every\"}]", &r), RSY_OK);
    assert_int_equal(r->n_lesion_types, 3);
    assert_string_equal(r->lesions[0].prior.name, "every/cystic_mass");
    assert_string_equal(r->lesions[1].prior.name, "every/meningeal");
    assert_string_equal(r->lesions[2].prior.name, "every/dot");
    assert_true(r->lesions[0].probability == 0.25 && r->lesions[1].probability == 1.0);
    assert_int_equal(r->lesions[0].prior.n_compartments, 4);
    assert_string_equal(r->lesions[0].prior.compartments[3].parent, "fluid");
    /* A distance rule and mass effect add 8 + 16 bytes per voxel to the memory bound (the
     * documented formula; the default grid is 128^3). */
    uint64_t with = rsy_recipe_memory_estimate(r, 1);
    r->lesions[0].prior.mass_effect.enabled = 0;
    assert_true(with - rsy_recipe_memory_estimate(r, 1) == 128ull * 128 * 128 * 16);
    r->n_lesion_types = 0;
    assert_true(with - rsy_recipe_memory_estimate(r, 1) == 128ull * 128 * 128 * 24);
    r->n_lesion_types = 3;
    rsy_recipe_destroy(r);

    /* "stem/type" takes one type, whose overrides apply; a single-type file keeps its name. */
    assert_int_equal(load_in(dir, MINIMAL_HEAD,
                             "[{\"prior\": \"every/dot\", \"probability\": 0.5, \"count\": 3, "
                             "\"diameter_mm\": {\"distribution\": \"uniform\", \"min\": 2, "
                             "\"max\": 6}}, {\"prior\": \"glioblastoma\"}, "
                             "{\"prior\": \"every/cystic_mass\"}]",
                             &r),
                     RSY_OK);
    assert_int_equal(r->n_lesion_types, 3);
    const rsy_lesion_spec *ls = &r->lesions[0];
    assert_string_equal(ls->prior.name, "every/dot");
    assert_true(ls->probability == 0.5 && ls->prior.probability == 0.5);
    assert_true(ls->prior.count.kind == RSY_DIST_FIXED && ls->prior.count.value == 3.0);
    assert_true(ls->prior.diameter_mm.kind == RSY_DIST_UNIFORM && ls->prior.diameter_mm.max == 6.0);
    assert_string_equal(r->lesions[1].prior.name, "glioblastoma");
    assert_true(r->lesions[1].probability == 1.0);
    assert_true(r->lesions[2].probability == 0.25);
    rsy_recipe_destroy(r);

    /* A CT recipe takes priors that list "ct"; their HU come through. */
    assert_int_equal(load_in(dir, CT_HEAD, "[{\"prior\": \"every\"}, {\"prior\": \"mixed\"}]", &r),
                     RSY_OK);
    assert_int_equal(r->n_lesion_types, 4);
    assert_string_equal(r->modality, "ct");
    assert_true(r->lesions[0].prior.compartments[1].ct[RSY_CT_PHASE_ARTERIAL].hu == 40.0);
    assert_string_equal(r->lesions[3].prior.name, "mixed");
    assert_string_equal(r->lesions[3].prior.compartments[0].ct_relative_to, "white_matter");
    assert_int_equal(tu_errors(), 0);
    rsy_recipe_destroy(r);

    /* One line per problem, naming the key. */
    static const struct {
        int ct;
        const char *lesions;
        const char *expected;
    } bad[] = {
        {0, "[{\"prior\": \"every\"}, {\"prior\": \"every/dot\"}]",
         "r.json: lesions[1].prior: lesion type \"every/dot\" is already used by lesions[0]"},
        {0, "[{\"prior\": \"every\", \"probability\": 0.5}]",
         "r.json: lesions[0].probability: expected no override on an entry that takes 3 lesion "
         "types (\"every\" has 3): name one type, e.g. \"every/cystic_mass\""},
        {0, "[{\"prior\": \"many\"}, {\"prior\": \"glioblastoma\"}]",
         "r.json: lesions[1].prior: expected at most 16 lesion types per recipe (\"glioblastoma\" "
         "brings 1 to the 16 before it)"},
        {0, "[{\"prior\": \"every/cyst\"}]",
         "r.json: lesions[0].prior: no lesion type \"cyst\" in"},
        {0, "[{\"prior\": \"glioblastoma/core\"}]",
         "r.json: lesions[0].prior: expected no \"/core\""},
        {0, "[{\"prior\": \"nothing/core\"}]",
         "r.json: lesions[0].prior: no prior named \"nothing\""},
        /* The wall (at least 0.5 mm) needs lesions above 1 mm. */
        {0, "[{\"prior\": \"every/cystic_mass\", \"diameter_mm\": 1}]",
         "r.json: lesions[0].diameter_mm: expected a distribution that can draw diameters above 1 "
         "mm (compartment \"wall\" of \"every/cystic_mass\" needs them)"},
        /* An MRI recipe checks the MRI properties' tissue. */
        {0, "[{\"prior\": \"mixed\"}]",
         "mixed.json: compartments[0].mri.relative_to: no tissue \"tissue_of_no_table\" in the "
         "tissue table \"mri-brain\""},
        {1, "[{\"prior\": \"many/t3\"}]", "r.json: lesions[0].prior: prior \"many\" ("},
        /* A CT recipe refuses an MRI-only prior after accepting others. */
        {1, "[{\"prior\": \"every/meningeal\"}, {\"prior\": \"glioblastoma\"}]",
         "has no \"ct\" in its modalities, but the recipe images with CT"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = (rsy_recipe *)&r;
        tu_log_capture();
        rsy_status rc = load_in(dir, bad[i].ct ? CT_HEAD : MINIMAL_HEAD, bad[i].lesions, &r);
        if (rc != RSY_ECONFIG || tu_errors() != 1 || !strstr(tu_last_error(), bad[i].expected))
            print_error("case %zu: rc %d, %d errors, got \"%s\", expected \"%s\"\n", i, (int)rc,
                        tu_errors(), tu_last_error(), bad[i].expected);
        assert_int_equal(rc, RSY_ECONFIG);
        assert_null(r);
        assert_int_equal(tu_errors(), 1);
        assert_non_null(strstr(tu_last_error(), bad[i].expected));
    }
    tu_rmtree(dir);
    free(dir);
}

/* Malformed single-type priors: each case differs from a valid prior in one place. */
#define P_MOD "\"modalities\": [\"mri\"], "
#define P_CD "\"count\": 1, \"diameter_mm\": 10, "
#define P_PL "\"placement\": {\"hosts\": [\"white_matter\"]}, "
#define P_C1                                                                                       \
    "{\"name\": \"c\", \"radius_fraction\": 1, \"mri\": {\"relative_to\": \"white_matter\"}}"
#define P_COMPS(x) "\"compartments\": [" x "]"
#define P_CT_REL                                                                                   \
    "\"ct\": {\"relative_to\": \"white_matter\", \"hu_offset\": {\"non_contrast\": 1, "            \
    "\"arterial\": 2, \"portal_venous\": 3}}"

static void test_prior_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *expected; /* NULL: the prior is valid */
    } cases[] = {
        {P_MOD P_CD P_PL P_COMPS(P_C1), NULL},
        {P_MOD P_CD P_PL "\"probability\": 1.5, " P_COMPS(P_C1),
         "probability: expected a number in [0, 1], got 1.5"},
        /* shape */
        {P_MOD P_CD P_PL "\"shape\": {\"kind\": \"blob\"}, " P_COMPS(P_C1),
         "shape.kind: expected one of \"solid\", \"cyst\", got \"blob\""},
        {P_MOD P_CD P_PL "\"shape\": {\"elongation\": 1.2, \"flatness\": 1.5}, " P_COMPS(P_C1),
         "shape.flatness: expected values <= shape.elongation's"},
        {P_MOD P_CD P_PL "\"shape\": {\"flatness\": 0.5}, " P_COMPS(P_C1),
         "shape.flatness: expected a number in [1, 10], got 0.5"},
        {P_MOD P_CD P_PL "\"shape\": {\"lobes\": 0}, " P_COMPS(P_C1),
         "shape.lobes: expected an integer in [1, 16], got 0"},
        {P_MOD P_CD P_PL "\"shape\": {\"lobes\": {\"distribution\": \"uniform\", \"min\": 1, "
                         "\"max\": 3}}, " P_COMPS(P_C1),
         "shape.lobes.distribution: expected \"fixed\", \"categorical\" or \"poisson\""},
        {P_MOD P_CD P_PL "\"shape\": {\"roughness_amplitude\": 0.5}, " P_COMPS(P_C1),
         "shape.roughness_amplitude: expected a number in [0, 0.3], got 0.5"},
        {P_MOD P_CD P_PL "\"shape\": {\"roughness_scale_mm\": 0}, " P_COMPS(P_C1),
         "shape.roughness_scale_mm: expected a number in (0, 100], got 0"},
        {P_MOD P_CD P_PL "\"shape\": {\"orientation\": \"radial\"}, " P_COMPS(P_C1),
         "shape.orientation: expected \"random\" without placement.reference"},
        {P_MOD P_CD P_PL "\"shape\": {\"orientation\": \"sideways\"}, " P_COMPS(P_C1),
         "shape.orientation: expected one of \"random\", \"radial\", \"tangential\""},
        /* placement */
        {P_MOD P_CD
         "\"placement\": {\"rule\": \"perivascular\", \"hosts\": [\"white_matter\"]}, " P_COMPS(
             P_C1),
         "placement.rule: expected one of \"host_tissue\", \"periventricular\""},
        {P_MOD P_CD "\"placement\": {\"rule\": \"juxtacortical\", \"hosts\": [\"white_matter\"], "
                    "\"reference\": [\"grey_matter\"]}, " P_COMPS(P_C1),
         "placement.max_distance_mm: required key missing (rule \"juxtacortical\" keeps the "
         "centre within this distance of the reference tissues)"},
        {P_MOD P_CD
         "\"placement\": {\"hosts\": [\"white_matter\"], \"max_distance_mm\": 5}, " P_COMPS(P_C1),
         "placement.max_distance_mm: expected no distance with rule \"host_tissue\""},
        {P_MOD P_CD
         "\"placement\": {\"rule\": \"subpleural\", \"hosts\": [\"white_matter\"], "
         "\"reference\": [\"csf\"], \"min_distance_mm\": -1, \"max_distance_mm\": 5}, " P_COMPS(
             P_C1),
         "placement.min_distance_mm: expected a number in [0, 1000], got -1"},
        {P_MOD P_CD "\"placement\": {\"rule\": \"extra_axial\", \"hosts\": [\"csf\"], "
                    "\"reference\": [\"skull\"], \"max_distance_mm\": 2}, "
                    "\"shape\": {\"orientation\": \"radial\"}, " P_COMPS(
                        "{\"name\": \"c\", \"radius_fraction\": 1, \"mri\": "
                        "{\"relative_to\": \"csf\"}}"),
         "shape.orientation: expected \"tangential\" with rule \"extra_axial\""},
        {P_MOD P_CD
         "\"placement\": {\"hosts\": [\"white_matter\"], \"zone_weights\": [1, 2]}, " P_COMPS(P_C1),
         "placement.zone_weights: expected [upper, middle, lower]: 3 numbers >= 0, not all 0"},
        {P_MOD P_CD
         "\"placement\": {\"hosts\": [\"white_matter\"], \"zone_weights\": [1, -2, 1]}, " P_COMPS(
             P_C1),
         "placement.zone_weights[1]: expected a number in [0, 1e+06], got -2"},
        {P_MOD P_CD "\"placement\": {\"hosts\": [\"white_matter\"], \"allowed_tissues\": "
                    "[\"grey_matter\"]}, " P_COMPS(P_C1),
         "placement.hosts[0]: expected a tissue also listed in placement.allowed_tissues"},
        /* mass effect */
        {P_MOD P_CD P_PL "\"mass_effect\": {\"strength\": 1, \"range_mm\": 5}, " P_COMPS(P_C1),
         "mass_effect.strength: expected a number in (0, 1), got 1"},
        {P_MOD P_CD P_PL "\"mass_effect\": {\"strength\": 0.2}, " P_COMPS(P_C1),
         "mass_effect.range_mm: required key missing"},
        {P_MOD P_CD P_PL "\"mass_effect\": {\"strength\": 0.2, \"range_mm\": 0}, " P_COMPS(P_C1),
         "mass_effect.range_mm: expected a number in (0, 200], got 0"},
        /* compartments */
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"d\", \"radius_fraction\": 0.5, \"inside\": "
                                      "\"c\", \"mri\": {\"relative_to\": \"csf\"}}"),
         "compartments[1].inside: expected no \"inside\": only inclusions and network"},
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"d\", \"network\": {\"line_mm\": 1, "
                                      "\"cell_mm\": 5}, \"mri\": {\"relative_to\": \"csf\"}}"),
         "compartments[1].inside: required key missing (networks lie inside a compartment"},
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"d\", \"inside\": \"c\", \"network\": "
                                      "{\"line_mm\": 5, \"cell_mm\": 4}, \"mri\": "
                                      "{\"relative_to\": \"csf\"}}"),
         "compartments[1].network.line_mm: expected lines thinner than the cells they bound"},
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"d\", \"inside\": \"c\", \"inclusions\": "
                                      "{\"volume_fraction\": 0.2, \"diameter_mm\": 12}, \"mri\": "
                                      "{\"relative_to\": \"csf\"}}"),
         "compartments[1].inclusions.diameter_mm: expected inclusions smaller than the largest "
         "lesion (they are at least 12 mm; diameter_mm draws at most 10 mm)"},
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"d\", \"inside\": \"c\", \"inclusions\": "
                                      "{\"volume_fraction\": 1, \"diameter_mm\": 1}, \"mri\": "
                                      "{\"relative_to\": \"csf\"}}"),
         "compartments[1].inclusions.volume_fraction: expected a number in (0, 1), got 1"},
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"d\", \"inside\": \"c\", \"inclusions\": "
                                      "{\"volume_fraction\": 0.1, \"diameter_mm\": 1, \"where\": "
                                      "\"edge\"}, \"mri\": {\"relative_to\": \"csf\"}}"),
         "compartments[1].inclusions.where: expected one of \"anywhere\", \"periphery\", "
         "\"centre\""},
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"d\", \"inside\": \"d\", \"inclusions\": "
                                      "{\"volume_fraction\": 0.1, \"diameter_mm\": 1}, \"mri\": "
                                      "{\"relative_to\": \"csf\"}}"),
         "compartments[1].inside: expected the name of a compartment listed before this one "
         "(\"d\" is this compartment, compartments[1]"},
        {P_MOD P_CD P_PL P_COMPS(P_C1 ", {\"name\": \"w\", \"wall_mm\": 1, \"mri\": "
                                      "{\"relative_to\": \"csf\"}}, {\"name\": \"v\", \"wall_mm\": "
                                      "2, \"mri\": {\"relative_to\": \"csf\"}}"),
         "compartments[2].wall_mm: expected one wall_mm compartment per lesion type (also "
         "compartments[1])"},
        {P_MOD P_CD P_PL P_COMPS("{\"name\": \"c\", \"radius_fraction\": 1}"),
         "compartments[0].mri: required key missing (modalities include \"mri\")"},
        {P_MOD P_CD P_PL P_COMPS("{\"name\": \"c\", \"radius_fraction\": 1, \"mri\": "
                                 "{\"relative_to\": \"csf\"}, " P_CT_REL "}"),
         "compartments[0].ct: unexpected CT properties: modalities do not include \"ct\""},
        {"\"modalities\": [\"ct\"], " P_CD P_PL P_COMPS(
             "{\"name\": \"c\", \"radius_fraction\": 1, \"mri\": {\"relative_to\": "
             "\"csf\"}, " P_CT_REL "}"),
         "compartments[0].mri: unexpected MRI properties: modalities do not include \"mri\""},
        {"\"modalities\": [\"ct\"], " P_CD P_PL P_COMPS(
             "{\"name\": \"c\", \"radius_fraction\": 1, \"ct\": {\"non_contrast\": {\"hu\": "
             "5}, \"arterial\": {\"hu\": 5}}}"),
         "compartments[0].ct.portal_venous: required key missing (absolute CT properties give "
         "every phase"},
        {"\"modalities\": [\"ct\"], " P_CD P_PL P_COMPS(
             "{\"name\": \"c\", \"radius_fraction\": 1, \"ct\": {\"non_contrast\": {\"hu\": "
             "-2000}, \"arterial\": {\"hu\": 5}, \"portal_venous\": {\"hu\": 5}}}"),
         "compartments[0].ct.non_contrast.hu: expected a number in [-1024, 3071], got -2000"},
        {"\"modalities\": [\"ct\"], " P_CD P_PL P_COMPS(
             "{\"name\": \"c\", \"radius_fraction\": 1, \"ct\": {\"relative_to\": \"liver\", "
             "\"hu_offset\": {\"non_contrast\": 5, \"arterial\": 5}}}"),
         "compartments[0].ct.hu_offset.portal_venous: required key missing"},
        {"\"modalities\": [\"ct\"], " P_CD P_PL P_COMPS(
             "{\"name\": \"c\", \"radius_fraction\": 1, \"ct\": {\"relative_to\": \"liver\"}}"),
         "compartments[0].ct.hu_offset: required key missing"},
        /* lesion_types */
        {P_MOD P_CD "\"lesion_types\": []",
         "count: expected no lesion-type key at the top level of a file with \"lesion_types\""},
        {P_MOD "\"lesion_types\": []",
         "lesion_types: expected an array of 1 to 16 lesion type objects"},
        {P_MOD "\"lesion_types\": [{\"name\": \"a\", " P_CD P_PL P_COMPS(
             P_C1) "}, "
                   "{\"name\": \"a\", " P_CD P_PL P_COMPS(P_C1) "}]",
         "lesion_types[1].name: duplicate lesion type name \"a\" (also lesion_types[0])"},
        {P_MOD "\"lesion_types\": [{\"name\": \""
               "ab123456789012345678901234567890123456789012345678901234567890\", " P_CD P_PL
                   P_COMPS(P_C1) "}]",
         "lesion_types[0].name: expected a name short enough that \"p/<name>\" has at most 63 "
         "characters"},
        {P_MOD "\"lesion_types\": [{\"name\": \"a\", " P_CD P_COMPS(P_C1) "}]",
         "lesion_types[0].placement: required key missing"},
    };
    char *dir = tu_tmpdir("config");
    assert_non_null(dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[4096];
        snprintf(text, sizeof text,
                 "{\"raresynth_prior\": 1, \"name\": \"p\", \"organ\": \"brain\", "
                 "\"sources\": [\"GK\"], %s}\n",
                 cases[i].body);
        char *path = write_file(dir, "p.json", text);
        rsy_disease *d = (rsy_disease *)&d;
        tu_log_capture();
        rsy_status rc = rsy_disease_load(&d, path);
        free(path);
        if (!cases[i].expected) {
            assert_int_equal(rc, RSY_OK);
            assert_int_equal(tu_errors(), 0);
            free(d);
            continue;
        }
        char want[512];
        snprintf(want, sizeof want, "p.json: %s", cases[i].expected);
        if (rc != RSY_ECONFIG || tu_errors() != 1 || !strstr(tu_last_error(), want))
            print_error("case %zu: rc %d, %d errors, got \"%s\", expected \"%s\"\n", i, (int)rc,
                        tu_errors(), tu_last_error(), want);
        assert_int_equal(rc, RSY_ECONFIG);
        assert_null(d);
        assert_int_equal(tu_errors(), 1);
        assert_non_null(strstr(tu_last_error(), want));
    }
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_configs_load),
        cmocka_unit_test(test_gbm_recipe),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_texture_keys),
        cmocka_unit_test(test_texture_presets),
        cmocka_unit_test(test_overrides_merge),
        cmocka_unit_test(test_seed_forms),
        cmocka_unit_test(test_ct_recipe),
        cmocka_unit_test(test_bad_recipes),
        cmocka_unit_test(test_unreadable_recipe),
        cmocka_unit_test(test_prior_direct),
        cmocka_unit_test(test_tissue_table),
        cmocka_unit_test(test_dist_statistics),
        cmocka_unit_test(test_dist_cdf_edges),
        cmocka_unit_test(test_memory_estimate),
        cmocka_unit_test(test_prior_every_key),
        cmocka_unit_test(test_prior_defaults_glioblastoma),
        cmocka_unit_test(test_disease_in_recipe),
        cmocka_unit_test(test_prior_errors),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
