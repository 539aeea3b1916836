/*
 * ct.c: the CT parts of the configuration: CT properties in tissue tables, CT scanner profiles
 * (configs/scanners/ *.json) and the "acquisition" object of a CT recipe. docs/recipe.md
 * documents every key, its unit, range and default.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define CT_VIEWS_MAX 20000
#define CT_BINS_MAX 20000

static const char *const phase_names[] = {"non_contrast", "arterial", "portal_venous", NULL};
static const char *const window_names[] = {"ram-lak", "shepp-logan", "hann", NULL};

const char *rsy_ct_phase_name(rsy_ct_phase phase)
{
    return (int)phase >= 0 && (int)phase < RSY_CT_N_PHASES ? phase_names[phase] : "unknown";
}

const char *rsy_ct_window_name(rsy_ct_window kernel)
{
    return (int)kernel >= 0 && (int)kernel < 3 ? window_names[kernel] : "unknown";
}

int rsy_recipe_n_channels(const rsy_recipe *r)
{
    if (!r)
        return 0;
    return strcmp(r->modality, "ct") == 0 ? r->ct.n_doses : r->mri.n_sequences;
}

const char *rsy_recipe_channel_name(const rsy_recipe *r, int i)
{
    if (!r || i < 0 || i >= rsy_recipe_n_channels(r))
        return NULL;
    return strcmp(r->modality, "ct") == 0 ? "CT" : r->mri.sequences[i].name;
}

/* ---------------------------------------------------------------------------------------- */
/* Tissue tables                                                                              */
/* ---------------------------------------------------------------------------------------- */

rsy_status rsy__cfg_ct_props(const char *file, const cJSON *obj, const char *kp,
                             rsy_ct_props out[RSY_CT_N_PHASES])
{
    static const char *const keys[] = {"hu", "sd", NULL};
    /* Air is -1000 HU; nothing in the body exceeds dense cortical bone (about +2000 HU, GK);
     * 3071 is the top of the int16 HU range the output is clamped to (rsy_ct_volume_finish). */
    static const rsy__range range_hu = {-1024.0, 3071.0, 0, 0};
    static const rsy__range range_sd = {0.0, 500.0, 0, 0};
    char ckp[RSY__KEYPATH_MAX], pkp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, "ct");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(obj, "ct");
    rsy_status rc = rsy__cfg_check_object(file, ckp, ct, phase_names);
    if (rc != RSY_OK)
        return rc;
    for (int p = 0; p < RSY_CT_N_PHASES; p++) {
        rsy__kp_key(pkp, ckp, phase_names[p]);
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(ct, phase_names[p]);
        if (!ph)
            return rsy__cfg_fail(file, pkp, NULL, "required key missing");
        out[p].sd_hu = 0.0;
        if ((rc = rsy__cfg_check_object(file, pkp, ph, keys)) != RSY_OK ||
            (rc = rsy__cfg_number(file, ph, pkp, "hu", 1, range_hu, &out[p].hu)) != RSY_OK ||
            (rc = rsy__cfg_number(file, ph, pkp, "sd", 0, range_sd, &out[p].sd_hu)) != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Scanner profiles                                                                           */
/* ---------------------------------------------------------------------------------------- */

static rsy_status scanner_load(rsy_ct_scanner *out, const char *path)
{
    static const char *const keys[] = {"raresynth_scanner",
                                       "name",
                                       "description",
                                       "modality",
                                       "kernel",
                                       "i0_photons",
                                       "electronic_noise_sd",
                                       "mu_water_per_mm",
                                       "slice_thickness_mm",
                                       "psf_fwhm_mm",
                                       "views",
                                       "detector_bins",
                                       "sources",
                                       NULL};
    static const char *const modalities[] = {"ct", NULL};
    static const rsy__range range_i0 = {1.0, 1e9, 0, 0};
    static const rsy__range range_electronic = {0.0, 1000.0, 0, 0};
    static const rsy__range range_mu = {0.0, 1.0, 1, 0};
    static const rsy__range range_width_mm = {0.0, 20.0, 0, 0};
    rsy__json_file f;
    char description[RSY_TEXT_MAX], stem[RSY_NAME_MAX + 8];
    int modality = 0, kernel = 0;
    int64_t views = 0, bins = 0;
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
    /* Defaults (docs/recipe.md): I0 1e5 photons per bin and view per 1 mm of slice (TIGRE
     * demo [S27]), electronic noise SD 10 counts [S27], mu_water 0.01879 /mm at 75 keV [S22];
     * slice thickness 0 (the recipe's z spacing), no PSF. */
    out->kernel = RSY_CT_WINDOW_RAMLAK;
    out->i0_photons = 1e5;
    out->electronic_noise_sd = 10.0;
    out->mu_water_per_mm = 0.01879;
    if ((rc = rsy__cfg_check_object(path, "", root, keys)) != RSY_OK ||
        (rc = rsy__cfg_version(path, root, "raresynth_scanner")) != RSY_OK ||
        (rc = rsy__cfg_ident(path, root, "", "name", 1, out->name)) != RSY_OK ||
        (rc = rsy__cfg_string(path, root, "", "description", 0, RSY_TEXT_MAX - 1, description)) !=
            RSY_OK ||
        (rc = rsy__cfg_enum(path, root, "", "modality", 1, modalities, &modality)) != RSY_OK ||
        (rc = rsy__cfg_enum(path, root, "", "kernel", 0, window_names, &kernel)) != RSY_OK ||
        (rc = rsy__cfg_number(path, root, "", "i0_photons", 0, range_i0, &out->i0_photons)) !=
            RSY_OK ||
        (rc = rsy__cfg_number(path, root, "", "electronic_noise_sd", 0, range_electronic,
                              &out->electronic_noise_sd)) != RSY_OK ||
        (rc = rsy__cfg_number(path, root, "", "mu_water_per_mm", 0, range_mu,
                              &out->mu_water_per_mm)) != RSY_OK ||
        (rc = rsy__cfg_number(path, root, "", "slice_thickness_mm", 0, range_width_mm,
                              &out->slice_thickness_mm)) != RSY_OK ||
        (rc = rsy__cfg_number(path, root, "", "psf_fwhm_mm", 0, range_width_mm,
                              &out->psf_fwhm_mm)) != RSY_OK ||
        (rc = rsy__cfg_int(path, root, "", "views", 0, 0, CT_VIEWS_MAX, &views)) != RSY_OK ||
        (rc = rsy__cfg_int(path, root, "", "detector_bins", 0, 0, CT_BINS_MAX, &bins)) != RSY_OK)
        goto done;
    rsy__path_stem(path, stem, sizeof stem);
    if (strcmp(stem, out->name) != 0) {
        rc = rsy__cfg_fail(path, "name", cJSON_GetObjectItemCaseSensitive(root, "name"),
                           "expected \"%s\", the file's stem (profiles are found by file name)",
                           stem);
        goto done;
    }
    out->kernel = (rsy_ct_window)kernel;
    out->n_views = (int)views;
    out->n_det = (int)bins;
    rc = rsy__cfg_sources(path, root, "", "sources", out->sources, &out->n_sources);
done:
    rsy__json_file_clear(&f);
    return rc;
}

rsy_status rsy_ct_scanner_load(rsy_ct_scanner **out, const char *path)
{
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    rsy_ct_scanner *s = malloc(sizeof *s);
    if (!s)
        return RSY_ENOMEM;
    rsy_status rc = scanner_load(s, path);
    if (rc != RSY_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The acquisition of a CT recipe                                                             */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_doses(const char *file, const cJSON *acq, rsy_ct_spec *ct)
{
    /* A dose fraction scales I0 (rsy_ct_simulate_slice): above 1 would exceed the profile's
     * full dose, 0 would be no exposure at all. */
    static const rsy__range unit = {0.0, 1.0, 1, 0};
    const char *kp = "acquisition.doses";
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(acq, "doses");
    ct->n_doses = 1;
    ct->doses[0] = 1.0;
    if (!item)
        return RSY_OK;
    int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 0;
    if (n < 1 || n > RSY_MAX_SEQUENCES)
        return rsy__cfg_fail(file, kp, item,
                             "expected an array of 1 to %d dose fractions in (0, 1]",
                             RSY_MAX_SEQUENCES);
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        char ekp[RSY__KEYPATH_MAX];
        rsy__kp_index(ekp, kp, i);
        rsy_status rc = rsy__cfg_number_item(file, e, ekp, unit, &ct->doses[i]);
        if (rc != RSY_OK)
            return rc;
        for (int j = 0; j < i; j++)
            if (ct->doses[j] == ct->doses[i])
                return rsy__cfg_fail(file, ekp, e, "expected distinct dose fractions (also %s[%d])",
                                     kp, j);
    }
    ct->n_doses = n;
    return RSY_OK;
}

rsy_status rsy__recipe_parse_ct(const char *file, const cJSON *acq, rsy_recipe *r,
                                const char *recipe_dir, const char *const *search_dirs,
                                char table_path[RSY_PATH_MAX])
{
    static const char *const keys[] = {"modality", "tissues",     "scanner", "phase",
                                       "doses",    "noise_model", NULL};
    static const char *const noise_models[] = {"projection", "fast", NULL};
    const char *kp = "acquisition";
    rsy_ct_spec *ct = &r->ct;
    char tissues[RSY_PATH_MAX] = "ct-body";
    char scanner[RSY_PATH_MAX] = "ct-standard";
    char scanner_path[RSY_PATH_MAX];
    int phase = 0, noise_model = 0;
    /* MRI keys under CT get their own message: they are not typos but the wrong modality. */
    for (const cJSON *k = acq->child; k; k = k->next) {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= strcmp(k->string, keys[i]) == 0;
        if (known || strcmp(k->string, "note") == 0)
            continue;
        static const char *const mri_keys[] = {"field_strength_T", "contrast_agent_r1",
                                               "bias_field", "sequences", NULL};
        char ckp[RSY__KEYPATH_MAX];
        rsy__kp_key(ckp, kp, k->string);
        for (int i = 0; mri_keys[i]; i++)
            if (strcmp(k->string, mri_keys[i]) == 0)
                return rsy__cfg_fail(file, ckp, NULL,
                                     "an MRI key, not allowed when acquisition.modality is "
                                     "\"ct\"");
    }
    rsy_status rc = rsy__cfg_check_object(file, kp, acq, keys);
    if (rc != RSY_OK)
        return rc;
    if ((rc = rsy__cfg_string(file, acq, kp, "tissues", 0, RSY_PATH_MAX - 1, tissues)) != RSY_OK ||
        (rc = rsy__cfg_string(file, acq, kp, "scanner", 0, RSY_PATH_MAX - 1, scanner)) != RSY_OK ||
        (rc = rsy__cfg_enum(file, acq, kp, "phase", 0, phase_names, &phase)) != RSY_OK ||
        (rc = rsy__cfg_enum(file, acq, kp, "noise_model", 0, noise_models, &noise_model)) !=
            RSY_OK ||
        (rc = parse_doses(file, acq, ct)) != RSY_OK)
        return rc;
    if (r->phantom.spacing_mm[0] != r->phantom.spacing_mm[1])
        return rsy__cfg_fail(file, "phantom.spacing_mm", NULL,
                             "expected equal spacing along i and j (CT reconstructs square "
                             "pixels), got %g and %g",
                             r->phantom.spacing_mm[0], r->phantom.spacing_mm[1]);
    ct->phase = (rsy_ct_phase)phase;
    ct->noise_model = noise_model == 1 ? RSY_CT_NOISE_FAST : RSY_CT_NOISE_PROJECTION;
    snprintf(r->modality, sizeof r->modality, "ct");
    r->mri.n_sequences = 0;

    rc = rsy__resolve_ref(file, "acquisition.scanner",
                          cJSON_GetObjectItemCaseSensitive(acq, "scanner"), scanner, recipe_dir,
                          search_dirs, "scanners", "scanner profile", scanner_path);
    if (rc != RSY_OK || (rc = scanner_load(&ct->scanner, scanner_path)) != RSY_OK)
        return rc;
    /* An output voxel is a slab of the slice thickness (docs/ct.md): unset, it is the z
     * spacing; thinner slices than their spacing would leave gaps the phantom never fills. */
    const double dz = r->phantom.spacing_mm[2];
    if (ct->scanner.slice_thickness_mm == 0.0)
        ct->scanner.slice_thickness_mm = dz;
    else if (ct->scanner.slice_thickness_mm < dz * (1.0 - 1e-9))
        return rsy__cfg_fail(scanner_path, "slice_thickness_mm", NULL,
                             "%g mm is thinner than the recipe %s's slice spacing "
                             "phantom.spacing_mm[2] = %g mm (omit it to use the spacing)",
                             ct->scanner.slice_thickness_mm, file, dz);
    rc = rsy__resolve_ref(file, "acquisition.tissues",
                          cJSON_GetObjectItemCaseSensitive(acq, "tissues"), tissues, recipe_dir,
                          search_dirs, "tissues", "tissue table", table_path);
    if (rc != RSY_OK || (rc = rsy__tissue_table_load(&r->tissues, table_path)) != RSY_OK)
        return rc;
    for (int i = 0; i < r->tissues.n_tissues; i++) {
        if (r->tissues.tissues[i].has_ct)
            continue;
        char tkp[RSY__KEYPATH_MAX];
        rsy__kp_key(tkp, "tissues", r->tissues.tissues[i].name);
        return rsy__cfg_fail(table_path, tkp, NULL,
                             "no \"ct\" properties, which the CT recipe %s needs", file);
    }
    return RSY_OK;
}
