/*
 * texture_case.c: the texture stage of the per-case pipeline (DESIGN.md section 6,
 * docs/texture.md, docs/recipe.md "texture").
 *
 * Model "preset": the recipe's preset gives, per class name, a mixture of stationary
 * Gaussian components; every class id of the working class map (phantom tissues, then lesion
 * compartments) takes the entry of its name. The prior is built once (rsy__gen_texture_create)
 * and only read afterwards, so the cases of a run share it; each case makes its own denoiser
 * (a denoiser holds scratch and must not be shared) and draws u with the stream
 * (seed, case, RSY_STAGE_TEXTURE), so a case does not depend on which thread makes it.
 *
 * Model "fitted": the model file (NAME.h5, `raresynth fit-texture`) is read once per run and
 * turned into a patch prior over its own classes (rsy_texture_fitted_to_prior: every
 * covariance eigendecomposed once); each working class the recipe's "classes" maps takes a copy
 * of its model class's components, the others the fallback preset's entry as above (or stay
 * uniform). Every name of the mapping is checked here, before any output exists: a working class
 * that is neither a phantom tissue nor a lesion compartment of the recipe, or a model class
 * the file lacks, is RSY_ECONFIG with one logged line. The model's covariances are over patch
 * voxels and are used as they are, in voxel units: a model fitted at 1 mm on a 1.75 mm phantom
 * gives correlations 1.75 times longer in mm (logged at info level). The model's class
 * intensity means and SDs (T1-weighted intensities of the scan it was fitted on) are not used:
 * u modulates T1, T2 and PD through texture_sd_fraction exactly as with a preset, the target
 * variance of u being the mixture's variance at the patch's centre voxel (about 1: the fit
 * normalises each class to unit variance).
 *
 * The sampler keeps the prior's variance only approximately (docs/texture.md, "Reach of a
 * patch prior": −6% to +15% within the reach, less beyond it). So that texture_sd_fraction means what
 * it says, u is centred per class (so a class's mean property is its table value, whatever
 * mean the model's centre voxel has: a fitted model's interior patches need not average 0) and
 * rescaled to the model's variance. The property maps are then
 *     T1(v) = T1[c] · max(0.01, 1 + f[c] · u(v)),   likewise T2 and PD,
 * with f the class's texture_sd_fraction: one field for the three properties, i.e. a single
 * mode of variation (water content raises T1, T2 and PD together; GK).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "generator_internal.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"
#include "texture_internal.h"

/* Floor of 1 + f·u: every property stays above 1% of its class mean (positive T1, T2, PD). */
#define PROPERTY_FLOOR 0.01

void rsy__gen_texture_destroy(rsy__gen_texture *t)
{
    if (!t)
        return;
    rsy_texture_prior_destroy(t->prior);
    free(t->textured);
    free(t->variance);
    free(t);
}

static rsy_texture_sampler sampler_of(rsy_texture_method m)
{
    switch (m) {
    case RSY_TEXTURE_METHOD_EULER:
        return RSY_TEXTURE_SAMPLER_EULER;
    case RSY_TEXTURE_METHOD_HEUN:
        return RSY_TEXTURE_SAMPLER_HEUN;
    case RSY_TEXTURE_METHOD_STOCHASTIC:
        return RSY_TEXTURE_SAMPLER_STOCHASTIC;
    }
    return RSY_TEXTURE_SAMPLER_HEUN;
}

static const char *sampler_name(rsy_texture_method m)
{
    switch (m) {
    case RSY_TEXTURE_METHOD_EULER:
        return "euler";
    case RSY_TEXTURE_METHOD_HEUN:
        return "heun";
    case RSY_TEXTURE_METHOD_STOCHASTIC:
        return "stochastic";
    }
    return "heun";
}

/* Total variance of a mixture: Σ w_k (var_k + μ_k²) − (Σ w_k μ_k)², weights normalised. */
static double mixture_variance(const rsy_texture_class_spec *cls)
{
    double wsum = 0.0, m1 = 0.0, m2 = 0.0;
    for (int k = 0; k < cls->n_components; k++)
        wsum += cls->components[k].weight;
    for (int k = 0; k < cls->n_components; k++) {
        const rsy_texture_component_spec *c = &cls->components[k];
        double w = c->weight / wsum;
        m1 += w * c->mean;
        m2 += w * (c->variance + c->mean * c->mean);
    }
    return m2 - m1 * m1;
}

/* Name of class id @p id of @p r's working class map (tissue, then compartments). */
static const char *class_name(const rsy_recipe *r, int n_tissue, int id)
{
    if (id < n_tissue)
        return rsy_phantom_class_name(r->phantom.family, id);
    for (int t = 0; t < r->n_lesion_types; t++) {
        int base = n_tissue + rsy_lesion_compartment_offset(r, t);
        const rsy_prior *p = &r->lesions[t].prior;
        if (id >= base && id < base + p->n_compartments)
            return p->compartments[id - base].name;
    }
    return NULL;
}

/* Class @p c of the working prior from the preset entry @p cls (NULL: a class left
 * uniform, given a stand-in unit component the denoiser needs but whose field is zeroed).
 * Sets t->variance[c] and t->textured[c]. */
static rsy_status add_preset_class(const rsy_recipe *r, const rsy__gen_class *tab,
                                   const rsy_texture_class_spec *cls, const char *name, int c,
                                   rsy__gen_texture *t)
{
    const rsy_texture_preset *preset = &r->texture_spec.preset;
    rsy_status rc;
    t->variance[c] = 1.0;
    if (!cls) {
        /* Every class needs a component (the denoiser refuses empty classes); a class the
         * preset does not name stays uniform (u = 0 after normalisation), and this
         * unit-variance field of one voxel's length only shapes the cells centred on it. */
        rsy_log_debug("texture: no entry for class \"%s\": uniform (u = 0)", name ? name : "?");
        rsy_texture_preset_component ph = {1.0, 1.0, {0.0, 0.0, 0.0}, 0.0};
        for (int a = 0; a < 3; a++)
            ph.corr_length_mm[a] = r->phantom.spacing_mm[a];
        return rsy_texture_prior_add_preset(t->prior, c, &ph);
    }
    for (int k = 0; k < cls->n_components; k++) {
        const rsy_texture_component_spec *s = &cls->components[k];
        rsy_texture_preset_component pc = {
            s->weight,
            s->variance,
            {s->corr_length_mm[0], s->corr_length_mm[1], s->corr_length_mm[2]},
            s->mean};
        rc = rsy_texture_prior_add_preset(t->prior, c, &pc);
        if (rc != RSY_OK) {
            rsy_log_error("%s: classes.%s.components[%d]: refused by the texture prior: %s",
                          preset->path, name, k, rsy_strerror(rc));
            return rc;
        }
    }
    t->variance[c] = mixture_variance(cls);
    t->textured[c] =
        (tab[c].texture_sd_fraction > 0.0 || tab[c].hu_sd > 0.0) && t->variance[c] > 0.0;
    if (!t->textured[c])
        rsy_log_debug("class \"%s\": texture_sd_fraction 0, uniform", name);
    t->any_textured |= t->textured[c];
    return RSY_OK;
}

static rsy_status build_prior(const rsy_recipe *r, const rsy__gen_class *tab, rsy__gen_texture *t)
{
    const rsy_texture_preset *preset = &r->texture_spec.preset;
    int n_tissue = rsy_phantom_n_classes(r->phantom.family);
    rsy_status rc = rsy_texture_prior_create(&t->prior, preset->patch_size, r->phantom.spacing_mm,
                                             t->n_classes);
    if (rc != RSY_OK)
        return rc;
    for (int c = 0; c < t->n_classes; c++) {
        const char *name = class_name(r, n_tissue, c);
        const rsy_texture_class_spec *cls = name ? rsy_texture_preset_find(preset, name) : NULL;
        if ((rc = add_preset_class(r, tab, cls, name, c, t)) != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* Variance of the centre voxel of class @p id's patches under the mixture of @p m:
 * Σ w_k (Σ_k[cc] + μ_k[c]²) − (Σ w_k μ_k[c])², weights normalised by the model. */
static double fitted_centre_variance(const rsy_texture_fitted *m, int id)
{
    rsy_texture_class_info info;
    if (rsy_texture_fitted_class_info(m, id, &info) != RSY_OK)
        return 1.0;
    int p = rsy_texture_fitted_patch_size(m);
    size_t d = (size_t)p * (size_t)p * (size_t)p, centre = d / 2;
    double m1 = 0.0, m2 = 0.0;
    for (int k = 0; k < info.n_components; k++) {
        double w;
        const double *mean, *cov;
        if (rsy_texture_fitted_component(m, id, k, &w, &mean, &cov) != RSY_OK)
            return 1.0;
        m1 += w * mean[centre];
        m2 += w * (cov[centre * d + centre] + mean[centre] * mean[centre]);
    }
    return m2 - m1 * m1;
}

/* Class id of the model class named @p name, -1 if none. */
static int fitted_class_id(const rsy_texture_fitted *m, const char *name)
{
    for (int id = 0; id < rsy_texture_fitted_n_classes(m); id++) {
        rsy_texture_class_info info;
        if (rsy_texture_fitted_class_info(m, id, &info) == RSY_OK && strcmp(info.name, name) == 0)
            return id;
    }
    return -1;
}

/* The model's class names, comma-separated, for messages. */
static void fitted_class_list(const rsy_texture_fitted *m, char *out, size_t n)
{
    size_t k = 0;
    out[0] = '\0';
    for (int id = 0; id < rsy_texture_fitted_n_classes(m) && k < n; id++) {
        rsy_texture_class_info info;
        if (rsy_texture_fitted_class_info(m, id, &info) != RSY_OK)
            continue;
        int w = snprintf(out + k, n - k, "%s%s", k ? ", " : "", info.name);
        if (w < 0)
            break;
        k += (size_t)w;
    }
}

/* Working class id of @p name in @p r's class map, -1 if none. */
static int working_class_id(const rsy_recipe *r, int n_tissue, int n_classes, const char *name)
{
    for (int c = 0; c < n_classes; c++) {
        const char *cn = class_name(r, n_tissue, c);
        if (cn && strcmp(cn, name) == 0)
            return c;
    }
    return -1;
}

/* The working prior of model "fitted" (file header). @p model_of[c] receives the model class of
 * working class c, or -1. Errors in the recipe's mapping are RSY_ECONFIG. */
static rsy_status build_fitted(const rsy_recipe *r, const rsy__gen_class *tab,
                               const rsy_texture_fitted *m, const rsy_texture_prior *mp,
                               rsy__gen_texture *t, int *model_of)
{
    const rsy_texture_spec *s = &r->texture_spec;
    const rsy_texture_preset *preset = &s->preset;
    int n_tissue = rsy_phantom_n_classes(r->phantom.family);
    char list[512];
    for (int c = 0; c < t->n_classes; c++)
        model_of[c] = -1;
    for (int i = 0; i < s->n_class_map; i++) {
        const rsy_texture_class_map *e = &s->class_map[i];
        int c = working_class_id(r, n_tissue, t->n_classes, e->working);
        int id = fitted_class_id(m, e->model);
        if (c < 0) {
            rsy_log_error("%s: texture.classes.%s: no class \"%s\" in this recipe (expected a "
                          "tissue of phantom \"%s\" or a lesion compartment)",
                          r->path, e->working, e->working, r->phantom.family);
            return RSY_ECONFIG;
        }
        if (id < 0) {
            fitted_class_list(m, list, sizeof list);
            rsy_log_error("%s: texture.classes.%s: the fitted texture model \"%s\" (%s) has no "
                          "class \"%s\" (its classes: %s)",
                          r->path, e->working, s->fitted_name, s->fitted_path, e->model, list);
            return RSY_ECONFIG;
        }
        model_of[c] = id;
    }
    rsy_status rc = rsy_texture_prior_create(&t->prior, rsy_texture_fitted_patch_size(m),
                                             r->phantom.spacing_mm, t->n_classes);
    if (rc != RSY_OK)
        return rc;
    for (int c = 0; c < t->n_classes; c++) {
        const char *name = class_name(r, n_tissue, c);
        if (model_of[c] < 0) {
            const rsy_texture_class_spec *cls =
                name && preset->name[0] ? rsy_texture_preset_find(preset, name) : NULL;
            if ((rc = add_preset_class(r, tab, cls, name, c, t)) != RSY_OK)
                return rc;
            continue;
        }
        if ((rc = rsy__texture_prior_copy_class(t->prior, c, mp, model_of[c])) != RSY_OK)
            return rc;
        t->variance[c] = fitted_centre_variance(m, model_of[c]);
        t->textured[c] =
            (tab[c].texture_sd_fraction > 0.0 || tab[c].hu_sd > 0.0) && t->variance[c] > 0.0;
        t->any_textured |= t->textured[c];
    }
    const double *model_mm = mp->spacing_mm;
    if (model_mm[0] != r->phantom.spacing_mm[0] || model_mm[1] != r->phantom.spacing_mm[1] ||
        model_mm[2] != r->phantom.spacing_mm[2])
        rsy_log_info("texture model \"%s\" was fitted at %g x %g x %g mm voxels, the phantom's "
                     "are %g x %g x %g mm: its patches are used per voxel (texture scales with "
                     "the grid)",
                     s->fitted_name, model_mm[0], model_mm[1], model_mm[2],
                     r->phantom.spacing_mm[0], r->phantom.spacing_mm[1], r->phantom.spacing_mm[2]);
    return RSY_OK;
}

/* Load the fitted model of @p r and build the working prior; the manifest note records the
 * model's name and the SHA-256 of its file (and of the fallback preset's). */
static rsy_status create_fitted(const rsy_recipe *r, const rsy__gen_class *tab,
                                rsy__gen_texture *t)
{
    const rsy_texture_spec *s = &r->texture_spec;
    rsy_texture_fitted *m = NULL;
    rsy_texture_prior *mp = NULL;
    char model_sha[65], preset_sha[65] = "";
    char preset_part[RSY_NAME_MAX + 128] = "no fallback preset";
    int *model_of = malloc((size_t)t->n_classes * sizeof *model_of);
    if (!model_of)
        return RSY_ENOMEM;
    /* An unreadable or malformed model is a problem of the recipe's reference (the reader
     * logged the one line naming the file and the object). */
    rsy_status rc = rsy_texture_fitted_read(&m, s->fitted_path);
    if (rc == RSY_EIO || rc == RSY_EFORMAT || rc == RSY_EINVAL)
        rc = RSY_ECONFIG;
    if (rc != RSY_OK)
        goto done;
    if ((rc = rsy_sha256_file(s->fitted_path, model_sha)) != RSY_OK) {
        rsy_log_error("%s: cannot hash the fitted texture model: %s", s->fitted_path,
                      rsy_strerror(rc));
        goto done;
    }
    if (s->preset.name[0]) {
        if ((rc = rsy_sha256_file(s->preset.path, preset_sha)) != RSY_OK) {
            rsy_log_error("%s: cannot hash the texture preset: %s", s->preset.path,
                          rsy_strerror(rc));
            goto done;
        }
        snprintf(preset_part, sizeof preset_part, "preset \"%s\" (sha256 %s)", s->preset.name,
                 preset_sha);
    }
    if ((rc = rsy_texture_fitted_to_prior(m, &mp)) != RSY_OK)
        goto done;
    if ((rc = build_fitted(r, tab, m, mp, t, model_of)) != RSY_OK)
        goto done;
    snprintf(t->note, sizeof t->note,
             "texture model fitted \"%s\" (file sha256 %s, patch %d, covariances used per "
             "voxel), %d class(es) mapped to it by the recipe, the others from %s or uniform; "
             "diffusion sampler %s, %d steps, sigma %g to %g, %d tiling offset(s) per "
             "evaluation; T1, T2 and PD per voxel = class mean x (1 + texture_sd_fraction x u), "
             "u rescaled per class to the model's variance (the model's intensity statistics "
             "unused); classes with texture_sd_fraction 0 uniform; acquisition noise on top",
             s->fitted_name, model_sha, rsy_texture_fitted_patch_size(m), s->n_class_map,
             preset_part, sampler_name(s->sampler), s->steps, s->sigma_max, s->sigma_min,
             s->n_offsets);
done:
    rsy_texture_prior_destroy(mp);
    rsy_texture_fitted_destroy(m);
    free(model_of);
    return rc;
}

rsy_status rsy__gen_texture_create(const rsy_recipe *r, const rsy__gen_class *tab, int n_classes,
                                   rsy__gen_texture **out)
{
    *out = NULL;
    rsy_status rc = RSY_OK;
    rsy__gen_texture *t = calloc(1, sizeof *t);
    if (!t)
        return RSY_ENOMEM;
    t->model = r->texture;
    t->n_classes = n_classes;
    t->n_offsets = r->texture_spec.n_offsets;
    t->sample = rsy_texture_sample_params_default();
    t->sample.sampler = sampler_of(r->texture_spec.sampler);
    t->sample.steps = r->texture_spec.steps;
    t->sample.sigma_min = r->texture_spec.sigma_min;
    t->sample.sigma_max = r->texture_spec.sigma_max;
    t->textured = calloc((size_t)n_classes, sizeof *t->textured);
    t->variance = calloc((size_t)n_classes, sizeof *t->variance);
    if (!t->textured || !t->variance) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    const rsy_texture_spec *s = &r->texture_spec;
    switch (r->texture) {
    case RSY_TEXTURE_UNIFORM:
        snprintf(t->note, sizeof t->note, "%s", RSY__GEN_TEXTURE_NOTE_UNIFORM);
        break;
    case RSY_TEXTURE_PRESET:
        rc = build_prior(r, tab, t);
        if (rc != RSY_OK)
            goto fail;
        snprintf(t->note, sizeof t->note,
                 "texture preset \"%s\" (patch %d), diffusion sampler %s, %d steps, sigma %g to "
                 "%g, %d tiling offset(s) per evaluation; T1, T2 and PD per voxel = class mean x "
                 "(1 + texture_sd_fraction x u), u rescaled per class to the preset's variance; "
                 "classes without a preset entry or with texture_sd_fraction 0 uniform; "
                 "acquisition noise on top",
                 s->preset.name, s->preset.patch_size, sampler_name(s->sampler), s->steps,
                 s->sigma_max, s->sigma_min, s->n_offsets);
        break;
    case RSY_TEXTURE_FITTED:
        rc = create_fitted(r, tab, t);
        if (rc != RSY_OK)
            goto fail;
        break;
    }
    *out = t;
    return RSY_OK;
fail:
    rsy__gen_texture_destroy(t);
    return rc;
}

rsy_status rsy__gen_texture_draw(const rsy__gen_texture *t, const rsy_recipe *r, size_t case_index,
                                 const rsy_volume *classes, int n_threads, rsy_volume **out)
{
    *out = NULL;
    if (!t->prior)
        return RSY_EINVAL;
    rsy_patch_denoiser *pd = NULL;
    rsy_rng *rng = NULL;
    rsy_patch_denoiser_params dp = rsy_patch_denoiser_params_default();
    dp.n_offsets = t->n_offsets;
    dp.n_threads = n_threads < 1 ? 1 : n_threads;
    rsy_texture_stats stats = {0};
    rsy_status rc = rsy_patch_denoiser_create(&pd, t->prior, &dp);
    if (rc != RSY_OK)
        goto done;
    rc = rsy_rng_create_stream(&rng, r->seed, case_index, RSY_STAGE_TEXTURE);
    if (rc != RSY_OK)
        goto done;
    rsy_denoiser dn = rsy_patch_denoiser_interface(pd);
    rc = rsy_texture_sample(&dn, classes, &t->sample, rng, out, &stats);
    if (rc == RSY_OK)
        rsy_log_debug("case %zu: texture field, %zu denoiser evaluations, %d thread(s)", case_index,
                      stats.denoiser_evals, dp.n_threads);
done:
    rsy_rng_destroy(rng);
    rsy_patch_denoiser_destroy(pd);
    return rc;
}

rsy_status rsy__gen_texture_normalise(const rsy__gen_texture *t, const rsy_volume *classes,
                                      float *u)
{
    const uint16_t *cl = classes->data;
    size_t nvox = rsy_geometry_nvox(&classes->geom);
    size_t n = (size_t)t->n_classes;
    rsy_status rc = RSY_OK;
    /* Two passes in voxel order, sums in double: deterministic and accurate enough for the
     * scale factor. */
    double *mean = calloc(n, sizeof *mean), *sq = calloc(n, sizeof *sq);
    double *scale = calloc(n, sizeof *scale);
    size_t *count = calloc(n, sizeof *count);
    if (!mean || !sq || !scale || !count) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (size_t v = 0; v < nvox; v++) {
        mean[cl[v]] += u[v];
        count[cl[v]]++;
    }
    for (size_t c = 0; c < n; c++)
        if (count[c] > 0)
            mean[c] /= (double)count[c];
    for (size_t v = 0; v < nvox; v++) {
        double d = (double)u[v] - mean[cl[v]];
        sq[cl[v]] += d * d;
    }
    for (size_t c = 0; c < n; c++) {
        scale[c] = 1.0;
        if (count[c] >= RSY__GEN_TEXTURE_MIN_VOXELS && sq[c] > 0.0)
            scale[c] = sqrt(t->variance[c] / (sq[c] / (double)(count[c] - 1)));
    }
    for (size_t v = 0; v < nvox; v++) {
        int c = cl[v];
        u[v] = t->textured[c] ? (float)(((double)u[v] - mean[c]) * scale[c]) : 0.0f;
    }
done:
    free(count);
    free(scale);
    free(sq);
    free(mean);
    return rc;
}

void rsy__gen_texture_props(const rsy__gen_texture *t, const rsy__gen_class *tab,
                            const rsy_volume *classes, const float *u, float *t1_ms, float *t2_ms,
                            float *pd)
{
    const uint16_t *cl = classes->data;
    size_t nvox = rsy_geometry_nvox(&classes->geom);
    for (size_t v = 0; v < nvox; v++) {
        const rsy__gen_class *e = &tab[cl[v]];
        double f = 1.0;
        if (t->textured[cl[v]]) {
            f = 1.0 + e->texture_sd_fraction * (double)u[v];
            if (f < PROPERTY_FLOOR)
                f = PROPERTY_FLOOR;
        }
        t1_ms[v] = (float)(e->props.t1_ms * f);
        t2_ms[v] = (float)(e->props.t2_ms * f);
        pd[v] = (float)(e->props.pd * f);
    }
}
