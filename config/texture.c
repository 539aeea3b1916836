/*
 * texture.c: texture presets (configs/textures/ *.json) and the recipe's "texture" object.
 * docs/recipe.md documents every key, its unit, range and default; docs/texture.md the model.
 *
 * A preset maps class names (phantom tissues and lesion compartments) to mixtures of
 * stationary Gaussian components over p×p×p patches of the normalised texture field u; the
 * generator builds its rsy_texture_prior from them (generator/texture_case.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* Largest patch edge: RSY_TEXTURE_MAX_PATCH of rsy_generator.h (config/ does not include the
 * generator's header; tests/test_generator.c checks that the two agree). */
#define PATCH_MAX 9
/* Sampler limits: a few hundred steps already exceed what the schedule gains from (Karras et
 * al. 2022, section 3); more tilings per evaluation do not remove the tiling bias
 * (docs/texture.md), so a small cap keeps run times sane. */
/* The longest correlation length, in voxels, that the whole-volume sampler reproduces with a
 * p-voxel patch: min(2, (p − 1)/2). Measured (docs/texture.md, "Reach of a patch prior"):
 * with p = 5 and the default stride, lengths of 1 to 2 voxels come out within −10% to +6%,
 * 2.5 voxels 16% short; longer patches with the default stride do not reach further. */
#define REACH_VOXELS_MAX 2.0
#define STEPS_MIN 2
#define STEPS_MAX 1000
#define OFFSETS_MAX 64

static const rsy__range range_weight = {0.0, 1e6, 1, 0};
static const rsy__range range_variance = {0.0, 100.0, 1, 0};
static const rsy__range range_length_mm = {0.0, 1000.0, 1, 0};
static const rsy__range range_mean = {-10.0, 10.0, 0, 0};
static const rsy__range range_sigma = {0.0, 1e4, 1, 0};

/* ---------------------------------------------------------------------------------------- */
/* Presets                                                                                    */
/* ---------------------------------------------------------------------------------------- */

const rsy_texture_class_spec *rsy_texture_preset_find(const rsy_texture_preset *p, const char *name)
{
    if (!p || !name)
        return NULL;
    for (int i = 0; i < p->n_classes; i++)
        if (strcmp(p->classes[i].name, name) == 0)
            return &p->classes[i];
    return NULL;
}

/* "correlation_length_mm": a number (isotropic) or an array of 3 numbers. */
static rsy_status parse_lengths(const char *file, const cJSON *obj, const char *kp, double out[3])
{
    char ckp[RSY__KEYPATH_MAX], ekp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, "correlation_length_mm");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, "correlation_length_mm");
    if (!item)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    if (cJSON_IsNumber(item)) {
        rsy_status rc = rsy__cfg_number_item(file, item, ckp, range_length_mm, &out[0]);
        out[1] = out[2] = out[0];
        return rc;
    }
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 3)
        return rsy__cfg_fail(file, ckp, item,
                             "expected a number or an array of 3 numbers in (0, 1000] mm");
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        rsy__kp_index(ekp, ckp, i);
        rsy_status rc = rsy__cfg_number_item(file, e, ekp, range_length_mm, &out[i]);
        if (rc != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

static rsy_status parse_component(const char *file, const cJSON *item, const char *kp,
                                  rsy_texture_component_spec *c)
{
    static const char *const keys[] = {"weight", "variance", "correlation_length_mm", "mean", NULL};
    rsy_status rc = rsy__cfg_check_object(file, kp, item, keys);
    if (rc != RSY_OK)
        return rc;
    /* Defaults: equal weights, unit variance (u is normalised: the tissue table's
     * texture_sd_fraction carries the amplitude), zero mean. */
    c->weight = 1.0;
    c->variance = 1.0;
    c->mean = 0.0;
    if ((rc = rsy__cfg_number(file, item, kp, "weight", 0, range_weight, &c->weight)) != RSY_OK ||
        (rc = rsy__cfg_number(file, item, kp, "variance", 0, range_variance, &c->variance)) !=
            RSY_OK ||
        (rc = parse_lengths(file, item, kp, c->corr_length_mm)) != RSY_OK ||
        (rc = rsy__cfg_number(file, item, kp, "mean", 0, range_mean, &c->mean)) != RSY_OK)
        return rc;
    return RSY_OK;
}

static rsy_status parse_class(const char *file, const cJSON *item, const char *kp,
                              rsy_texture_class_spec *cls)
{
    static const char *const keys[] = {"components", NULL};
    char ckp[RSY__KEYPATH_MAX], ekp[RSY__KEYPATH_MAX];
    rsy_status rc = rsy__cfg_check_object(file, kp, item, keys);
    if (rc != RSY_OK)
        return rc;
    rsy__kp_key(ckp, kp, "components");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(item, "components");
    if (!arr)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n < 1 || n > RSY_MAX_TEXTURE_COMPONENTS)
        return rsy__cfg_fail(file, ckp, arr, "expected an array of 1 to %d component objects",
                             RSY_MAX_TEXTURE_COMPONENTS);
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        rsy__kp_index(ekp, ckp, i);
        rc = parse_component(file, e, ekp, &cls->components[i]);
        if (rc != RSY_OK)
            return rc;
    }
    cls->n_components = n;
    return RSY_OK;
}

rsy_status rsy__texture_preset_load(rsy_texture_preset *out, const char *path)
{
    static const char *const keys[] = {"raresynth_texture", "name",    "description", "patch_size",
                                       "classes",           "sources", NULL};
    rsy__json_file f;
    char description[RSY_TEXT_MAX];
    char stem[RSY_NAME_MAX + 8];
    int64_t patch = 0;
    memset(out, 0, sizeof *out);
    if (strlen(path) >= sizeof out->path) {
        rsy_log_error("%.200s...: path longer than %zu bytes", path, sizeof out->path - 1);
        return RSY_ECONFIG;
    }
    snprintf(out->path, sizeof out->path, "%s", path);
    rsy_status rc = rsy__json_file_load(&f, path);
    if (rc != RSY_OK)
        return rc;
    const cJSON *root = f.root;
    if ((rc = rsy__cfg_check_object(path, "", root, keys)) != RSY_OK ||
        (rc = rsy__cfg_version(path, root, "raresynth_texture")) != RSY_OK ||
        (rc = rsy__cfg_ident(path, root, "", "name", 1, out->name)) != RSY_OK ||
        (rc = rsy__cfg_string(path, root, "", "description", 0, RSY_TEXT_MAX - 1, description)) !=
            RSY_OK ||
        (rc = rsy__cfg_int(path, root, "", "patch_size", 1, 1, PATCH_MAX, &patch)) != RSY_OK)
        goto done;
    if (patch % 2 == 0) {
        rc = rsy__cfg_fail(path, "patch_size", cJSON_GetObjectItemCaseSensitive(root, "patch_size"),
                           "expected an odd integer in [1, %d] (a patch has a centre voxel)",
                           PATCH_MAX);
        goto done;
    }
    out->patch_size = (int)patch;
    rsy__path_stem(path, stem, sizeof stem);
    if (strcmp(stem, out->name) != 0) {
        rc = rsy__cfg_fail(path, "name", cJSON_GetObjectItemCaseSensitive(root, "name"),
                           "expected \"%s\", the file's stem (presets are found by file name)",
                           stem);
        goto done;
    }
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(root, "classes");
    if (!classes) {
        rc = rsy__cfg_fail(path, "classes", NULL, "required key missing");
        goto done;
    }
    int n = cJSON_IsObject(classes) ? cJSON_GetArraySize(classes) : 0;
    if (n < 1 || n > RSY_MAX_TEXTURE_CLASSES) {
        rc = rsy__cfg_fail(path, "classes", classes,
                           "expected an object of 1 to %d classes, keyed by tissue or "
                           "compartment name",
                           RSY_MAX_TEXTURE_CLASSES);
        goto done;
    }
    for (const cJSON *c = classes->child; c; c = c->next) {
        char kp[RSY__KEYPATH_MAX];
        rsy__kp_key(kp, "classes", c->string);
        if (strcmp(c->string, "note") == 0) {
            if (!cJSON_IsString(c)) {
                rc = rsy__cfg_fail(path, kp, c, "expected a string (a free-text note)");
                goto done;
            }
            continue;
        }
        if (!rsy__is_ident(c->string)) {
            rc = rsy__cfg_fail(path, kp, NULL,
                               "expected a class name of 1 to %d characters from [a-z0-9_-]",
                               RSY_NAME_MAX - 1);
            goto done;
        }
        rsy_texture_class_spec *dst = &out->classes[out->n_classes];
        snprintf(dst->name, sizeof dst->name, "%s", c->string);
        rc = parse_class(path, c, kp, dst);
        if (rc != RSY_OK)
            goto done;
        out->n_classes++;
    }
    if (out->n_classes == 0) {
        rc = rsy__cfg_fail(path, "classes", NULL, "expected at least one class besides \"note\"");
        goto done;
    }
    rc = rsy__cfg_sources(path, root, "", "sources", out->sources, &out->n_sources);
done:
    rsy__json_file_clear(&f);
    return rc;
}

rsy_status rsy_texture_preset_load(rsy_texture_preset **out, const char *path)
{
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    rsy_texture_preset *p = malloc(sizeof *p);
    if (!p)
        return RSY_ENOMEM;
    rsy_status rc = rsy__texture_preset_load(p, path);
    if (rc != RSY_OK) {
        free(p);
        return rc;
    }
    *out = p;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The recipe's "texture" object                                                              */
/* ---------------------------------------------------------------------------------------- */

/* "classes" of a fitted model: {"<working class>": "<model class>", ...}. */
static rsy_status parse_class_map(const char *file, const cJSON *obj, const char *kp,
                                  rsy_texture_spec *t)
{
    char ckp[RSY__KEYPATH_MAX], ekp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, "classes");
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(obj, "classes");
    if (!map)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing (\"model\": \"fitted\")");
    if (!cJSON_IsObject(map))
        return rsy__cfg_fail(file, ckp, map,
                             "expected an object mapping class names (tissues, compartments) "
                             "to the fitted model's class names");
    t->n_class_map = 0;
    for (const cJSON *c = map->child; c; c = c->next) {
        rsy__kp_key(ekp, ckp, c->string);
        if (strcmp(c->string, "note") == 0) {
            if (!cJSON_IsString(c))
                return rsy__cfg_fail(file, ekp, c, "expected a string (a free-text note)");
            continue;
        }
        if (!rsy__is_ident(c->string))
            return rsy__cfg_fail(file, ekp, NULL,
                                 "expected a class name of 1 to %d characters from [a-z0-9_-]",
                                 RSY_NAME_MAX - 1);
        if (!cJSON_IsString(c) || !rsy__is_ident(c->valuestring))
            return rsy__cfg_fail(file, ekp, c,
                                 "expected the name of a class of the fitted model (1 to %d "
                                 "characters from [a-z0-9_-], e.g. \"class_2\")",
                                 RSY_NAME_MAX - 1);
        if (t->n_class_map == RSY_MAX_TEXTURE_CLASSES)
            return rsy__cfg_fail(file, ckp, NULL, "expected at most %d classes",
                                 RSY_MAX_TEXTURE_CLASSES);
        rsy_texture_class_map *e = &t->class_map[t->n_class_map++];
        snprintf(e->working, sizeof e->working, "%s", c->string);
        snprintf(e->model, sizeof e->model, "%s", c->valuestring);
    }
    if (t->n_class_map == 0)
        return rsy__cfg_fail(file, ckp, NULL, "expected at least one class besides \"note\"");
    return RSY_OK;
}

/* "fitted": the model's name (NAME.h5 looked up like presets) or a path ending in ".h5". */
static rsy_status parse_fitted(const char *file, const cJSON *obj, const char *kp,
                               rsy_texture_spec *t, const char *recipe_dir,
                               const char *const *search_dirs)
{
    char ckp[RSY__KEYPATH_MAX];
    char ref[RSY_PATH_MAX];
    rsy__kp_key(ckp, kp, "fitted");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, "fitted");
    if (!item)
        return rsy__cfg_fail(file, ckp, NULL,
                             "required key missing (\"model\": \"fitted\" needs the model's name, "
                             "e.g. \"brain-colin27\")");
    rsy_status rc = rsy__cfg_string(file, obj, kp, "fitted", 1, RSY_PATH_MAX - 1, ref);
    if (rc != RSY_OK || (rc = parse_class_map(file, obj, kp, t)) != RSY_OK)
        return rc;
    rc = rsy__resolve_ref_ext(file, ckp, item, ref, recipe_dir, search_dirs, "textures", ".h5",
                              "fitted texture model", t->fitted_path);
    if (rc != RSY_OK)
        return rc;
    /* The name: the file's stem (the basename without ".h5"). */
    const char *slash = strrchr(t->fitted_path, '/');
    const char *base = slash ? slash + 1 : t->fitted_path;
    size_t len = strlen(base) - strlen(".h5");
    snprintf(t->fitted_name, sizeof t->fitted_name, "%.*s",
             (int)(len < sizeof t->fitted_name ? len : sizeof t->fitted_name - 1), base);
    return RSY_OK;
}

/* Every length of @p preset at the recipe's voxel size @p spacing_mm must be within the reach
 * of its patch (REACH_VOXELS_MAX): a longer one would come out shorter than asked. Errors name
 * the recipe @p file and its key "texture.preset", then the preset's own key. */
static rsy_status check_reach(const char *file, const rsy_texture_preset *preset,
                              const double spacing_mm[3])
{
    static const char axis_name[3] = {'i', 'j', 'k'};
    const double reach = fmin(REACH_VOXELS_MAX, 0.5 * (preset->patch_size - 1));
    for (int c = 0; c < preset->n_classes; c++) {
        const rsy_texture_class_spec *cls = &preset->classes[c];
        for (int k = 0; k < cls->n_components; k++)
            for (int a = 0; a < 3; a++) {
                double mm = cls->components[k].corr_length_mm[a], vox = mm / spacing_mm[a];
                if (vox <= reach * (1.0 + 1e-9))
                    continue;
                return rsy__cfg_fail(file, "texture.preset", NULL,
                                     "expected a preset whose lengths are at most %g voxels "
                                     "(the longest a %d-voxel patch reproduces, docs/texture.md), "
                                     "got %s: classes.%s.components[%d].correlation_length_mm "
                                     "%g mm = %.2f voxels along %c at %g mm spacing",
                                     reach, preset->patch_size, preset->path, cls->name, k, mm,
                                     vox, axis_name[a], spacing_mm[a]);
            }
    }
    return RSY_OK;
}

rsy_status rsy__recipe_parse_texture(const char *file, const cJSON *root, rsy_recipe *r,
                                     const char *recipe_dir, const char *const *search_dirs)
{
    static const char *const keys[] = {"model",     "preset",  "fitted",    "classes",
                                       "sampler",   "steps",   "sigma_min", "sigma_max",
                                       "offsets",   NULL};
    /* Same order as rsy_texture_model. */
    static const char *const models[] = {"uniform", "preset", "fitted", NULL};
    /* Same order as rsy_texture_method. */
    static const char *const samplers[] = {"euler", "heun", "stochastic", NULL};
    /* Keys that only the sampled models use (refused with "uniform": they would do nothing). */
    static const char *const sampler_keys[] = {"preset",    "fitted",    "classes", "sampler",
                                               "steps",     "sigma_min", "sigma_max",
                                               "offsets",   NULL};
    /* Keys that only the fitted model uses. */
    static const char *const fitted_keys[] = {"fitted", "classes", NULL};
    const char *kp = "texture";
    char ckp[RSY__KEYPATH_MAX];
    char ref[RSY_PATH_MAX];
    char preset_path[RSY_PATH_MAX];
    rsy_texture_spec *t = &r->texture_spec;
    int model = 0, sampler = (int)RSY_TEXTURE_METHOD_HEUN;
    int64_t steps = 18, offsets = 1;

    /* Defaults: Heun, 18 steps, σ from 80 to 0.002 (Karras et al. 2022, Table 1, as
     * rsy_texture_sample_params_default()), one tiling per evaluation. */
    memset(t, 0, sizeof *t);
    t->sampler = RSY_TEXTURE_METHOD_HEUN;
    t->steps = 18;
    t->sigma_min = 0.002;
    t->sigma_max = 80.0;
    t->n_offsets = 1;
    r->texture = RSY_TEXTURE_UNIFORM;
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, kp);
    if (!obj)
        return RSY_OK;
    rsy_status rc = rsy__cfg_check_object(file, kp, obj, keys);
    if (rc != RSY_OK)
        return rc;
    if ((rc = rsy__cfg_enum(file, obj, kp, "model", 1, models, &model)) != RSY_OK)
        return rc;
    if (model == (int)RSY_TEXTURE_UNIFORM) {
        for (const char *const *k = sampler_keys; *k; k++)
            if (cJSON_GetObjectItemCaseSensitive(obj, *k)) {
                rsy__kp_key(ckp, kp, *k);
                return rsy__cfg_fail(file, ckp, NULL,
                                     "only used with \"model\": \"preset\" or \"fitted\" (the "
                                     "uniform model draws no texture)");
            }
        return RSY_OK;
    }
    if (model == (int)RSY_TEXTURE_PRESET) {
        for (const char *const *k = fitted_keys; *k; k++)
            if (cJSON_GetObjectItemCaseSensitive(obj, *k)) {
                rsy__kp_key(ckp, kp, *k);
                return rsy__cfg_fail(file, ckp, NULL, "only used with \"model\": \"fitted\"");
            }
    }
    if ((rc = rsy__cfg_enum(file, obj, kp, "sampler", 0, samplers, &sampler)) != RSY_OK ||
        (rc = rsy__cfg_int(file, obj, kp, "steps", 0, STEPS_MIN, STEPS_MAX, &steps)) != RSY_OK ||
        (rc = rsy__cfg_number(file, obj, kp, "sigma_min", 0, range_sigma, &t->sigma_min)) !=
            RSY_OK ||
        (rc = rsy__cfg_number(file, obj, kp, "sigma_max", 0, range_sigma, &t->sigma_max)) !=
            RSY_OK ||
        (rc = rsy__cfg_int(file, obj, kp, "offsets", 0, 1, OFFSETS_MAX, &offsets)) != RSY_OK)
        return rc;
    if (!(t->sigma_max > t->sigma_min)) {
        rsy__kp_key(ckp, kp, "sigma_max");
        return rsy__cfg_fail(file, ckp, NULL, "expected a number > sigma_min (%g), got %g",
                             t->sigma_min, t->sigma_max);
    }
    t->sampler = (rsy_texture_method)sampler;
    t->steps = (int)steps;
    t->n_offsets = (int)offsets;

    if (model == (int)RSY_TEXTURE_FITTED &&
        (rc = parse_fitted(file, obj, kp, t, recipe_dir, search_dirs)) != RSY_OK)
        return rc;
    /* The preset: required with "preset", the optional fallback of unmapped classes with
     * "fitted". */
    rsy__kp_key(ckp, kp, "preset");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, "preset");
    if (!item) {
        if (model == (int)RSY_TEXTURE_PRESET)
            return rsy__cfg_fail(file, ckp, NULL, "required key missing (\"model\": \"preset\")");
        r->texture = RSY_TEXTURE_FITTED;
        return RSY_OK;
    }
    if ((rc = rsy__cfg_string(file, obj, kp, "preset", 0, RSY_PATH_MAX - 1, ref)) != RSY_OK)
        return rc;
    rc = rsy__resolve_ref(file, ckp, item, ref, recipe_dir, search_dirs, "textures",
                          "texture preset", preset_path);
    if (rc != RSY_OK)
        return rc;
    if ((rc = rsy__texture_preset_load(&t->preset, preset_path)) != RSY_OK)
        return rc;
    if ((rc = check_reach(file, &t->preset, r->phantom.spacing_mm)) != RSY_OK)
        return rc;
    r->texture = (rsy_texture_model)model;
    return RSY_OK;
}
