/*
 * prior.c: lesion priors (configs/priors/ *.json), loaded and validated. docs/recipe.md
 * documents every key; the tissue names a prior uses are checked against the recipe's tissue
 * table by rsy__prior_check_tissues() once both are loaded.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define MAX_ATTEMPTS_LIMIT 1000000
#define DEFAULT_MAX_ATTEMPTS 1000

static const rsy__range range_factor = {0.0, 10.0, 1, 0};
static const rsy__range range_gd_mM = {0.0, INFINITY, 0, 1};
static const rsy__range range_texture = {0.0, 0.5, 0, 0};
static const rsy__range range_lobulation = {0.0, 0.4, 0, 0};
static const rsy__range range_separation_mm = {0.0, 1000.0, 0, 0};

static int in_list(const char list[][RSY_NAME_MAX], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static rsy_status parse_modalities(const char *file, const cJSON *root, unsigned *bits)
{
    static const char *const names[] = {"mri", "ct", NULL};
    static const unsigned flags[] = {RSY__MODALITY_MRI, RSY__MODALITY_CT};
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "modalities");
    if (!item)
        return rsy__cfg_fail(file, "modalities", NULL, "required key missing");
    int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 0;
    if (n < 1 || n > 2)
        return rsy__cfg_fail(file, "modalities", item,
                             "expected an array of 1 or 2 of \"mri\", \"ct\"");
    *bits = 0;
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        char kp[RSY__KEYPATH_MAX];
        rsy__kp_index(kp, "modalities", i);
        int k = -1;
        for (int j = 0; names[j] && cJSON_IsString(e); j++)
            if (strcmp(e->valuestring, names[j]) == 0)
                k = j;
        if (k < 0 || (*bits & flags[k]))
            return rsy__cfg_fail(file, kp, e, "expected \"mri\" or \"ct\", each at most once");
        *bits |= flags[k];
    }
    return RSY_OK;
}

static rsy_status parse_shape(const char *file, const cJSON *root, rsy_prior *p)
{
    static const char *const keys[] = {"elongation", "lobulation_lmax", "lobulation_amplitude",
                                       NULL};
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(root, "shape");
    /* Defaults: a sphere. */
    memset(&p->elongation, 0, sizeof p->elongation);
    p->elongation.kind = RSY_DIST_FIXED;
    p->elongation.value = p->elongation.min = p->elongation.max = 1.0;
    p->lobulation_lmax = 0;
    p->lobulation_amplitude = 0.0;
    if (!shape)
        return RSY_OK;
    rsy_status rc = rsy__cfg_check_object(file, "shape", shape, keys);
    if (rc != RSY_OK)
        return rc;
    const cJSON *el = cJSON_GetObjectItemCaseSensitive(shape, "elongation");
    if (el) {
        rc = rsy__cfg_dist(file, el, "shape.elongation", &rsy__rules_elongation, NULL,
                           &p->elongation);
        if (rc != RSY_OK)
            return rc;
    }
    int64_t lmax = 0;
    rc = rsy__cfg_int(file, shape, "shape", "lobulation_lmax", 0, 0, 4, &lmax);
    if (rc != RSY_OK)
        return rc;
    if (lmax == 1)
        return rsy__cfg_fail(file, "shape.lobulation_lmax",
                             cJSON_GetObjectItemCaseSensitive(shape, "lobulation_lmax"),
                             "expected 0 (no lobulation) or an integer in [2, 4] (degree 1 "
                             "would only shift the centre)");
    p->lobulation_lmax = (int)lmax;
    return rsy__cfg_number(file, shape, "shape", "lobulation_amplitude", 0, range_lobulation,
                           &p->lobulation_amplitude);
}

static rsy_status parse_placement(const char *file, const cJSON *root, rsy_prior *p)
{
    static const char *const keys[] = {
        "rule", "hosts", "allowed_tissues", "min_separation_mm", "max_attempts", NULL};
    static const char *const rules[] = {"host_tissue", NULL};
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(root, "placement");
    if (!pl)
        return rsy__cfg_fail(file, "placement", NULL, "required key missing");
    rsy_status rc = rsy__cfg_check_object(file, "placement", pl, keys);
    if (rc != RSY_OK)
        return rc;
    int rule = 0;
    int64_t attempts = DEFAULT_MAX_ATTEMPTS;
    p->min_separation_mm = 0.0;
    if ((rc = rsy__cfg_enum(file, pl, "placement", "rule", 0, rules, &rule)) != RSY_OK ||
        (rc = rsy__cfg_ident_list(file, pl, "placement", "hosts", 1, RSY_MAX_HOST_TISSUES, p->hosts,
                                  &p->n_hosts)) != RSY_OK ||
        (rc = rsy__cfg_ident_list(file, pl, "placement", "allowed_tissues", 0, RSY_MAX_HOST_TISSUES,
                                  p->allowed, &p->n_allowed)) != RSY_OK ||
        (rc = rsy__cfg_number(file, pl, "placement", "min_separation_mm", 0, range_separation_mm,
                              &p->min_separation_mm)) != RSY_OK ||
        (rc = rsy__cfg_int(file, pl, "placement", "max_attempts", 0, 1, MAX_ATTEMPTS_LIMIT,
                           &attempts)) != RSY_OK)
        return rc;
    p->rule = (rsy_placement_rule)rule;
    p->max_attempts = (int)attempts;
    if (p->n_allowed == 0) {
        memcpy(p->allowed, p->hosts, sizeof p->allowed);
        p->n_allowed = p->n_hosts;
    }
    for (int i = 0; i < p->n_hosts; i++)
        if (!in_list(p->allowed, p->n_allowed, p->hosts[i])) {
            char kp[RSY__KEYPATH_MAX];
            rsy__kp_index(kp, "placement.hosts", i);
            return rsy__cfg_fail(file, kp, NULL,
                                 "expected a tissue also listed in placement.allowed_tissues "
                                 "(\"%s\" is not)",
                                 p->hosts[i]);
        }
    return RSY_OK;
}

static rsy_status parse_compartment_mri(const char *file, const cJSON *c, const char *kp,
                                        unsigned modalities, rsy_compartment *dst)
{
    static const char *const keys_abs[] = {"1.5T", "3T", NULL};
    static const char *const keys_rel[] = {"relative_to", "t1_factor", "t2_factor",
                                           "pd_factor",   "gd_mM",     NULL};
    char mkp[RSY__KEYPATH_MAX];
    rsy__kp_key(mkp, kp, "mri");
    const cJSON *mri = cJSON_GetObjectItemCaseSensitive(c, "mri");
    int wanted = (modalities & RSY__MODALITY_MRI) != 0;
    if (!mri)
        return wanted ? rsy__cfg_fail(file, mkp, NULL,
                                      "required key missing (modalities include \"mri\")")
                      : RSY_OK;
    if (!wanted)
        return rsy__cfg_fail(file, mkp, NULL,
                             "unexpected MRI properties: modalities do not include \"mri\"");
    if (!cJSON_IsObject(mri))
        return rsy__cfg_fail(file, mkp, mri, "expected an object");
    rsy_status rc;
    if (cJSON_GetObjectItemCaseSensitive(mri, "relative_to")) {
        dst->props_mode = RSY_PROPS_RELATIVE;
        dst->t1_factor = dst->t2_factor = dst->pd_factor = 1.0;
        dst->gd_mM = 0.0;
        if ((rc = rsy__cfg_check_object(file, mkp, mri, keys_rel)) != RSY_OK ||
            (rc = rsy__cfg_ident(file, mri, mkp, "relative_to", 1, dst->relative_to)) != RSY_OK ||
            (rc = rsy__cfg_number(file, mri, mkp, "t1_factor", 0, range_factor, &dst->t1_factor)) !=
                RSY_OK ||
            (rc = rsy__cfg_number(file, mri, mkp, "t2_factor", 0, range_factor, &dst->t2_factor)) !=
                RSY_OK ||
            (rc = rsy__cfg_number(file, mri, mkp, "pd_factor", 0, range_factor, &dst->pd_factor)) !=
                RSY_OK ||
            (rc = rsy__cfg_number(file, mri, mkp, "gd_mM", 0, range_gd_mM, &dst->gd_mM)) != RSY_OK)
            return rc;
    } else {
        dst->props_mode = RSY_PROPS_ABSOLUTE;
        if ((rc = rsy__cfg_check_object(file, mkp, mri, keys_abs)) != RSY_OK ||
            (rc = rsy__cfg_mri_props(file, mri, mkp, "1.5T", &dst->mri_1p5t)) != RSY_OK ||
            (rc = rsy__cfg_mri_props(file, mri, mkp, "3T", &dst->mri_3t)) != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

static rsy_status parse_compartment(const char *file, const cJSON *c, const char *kp,
                                    unsigned modalities, const rsy_prior *p, rsy_compartment *dst)
{
    static const char *const keys[] = {
        "name",        "display_name", "radius_fraction",     "margin_mm",
        "confined_to", "mri",          "texture_sd_fraction", NULL};
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc = rsy__cfg_check_object(file, kp, c, keys);
    if (rc != RSY_OK)
        return rc;
    if ((rc = rsy__cfg_ident(file, c, kp, "name", 1, dst->name)) != RSY_OK)
        return rc;
    /* Default display name: the name with underscores as spaces ("necrotic core"). */
    memcpy(dst->display_name, dst->name, strlen(dst->name) + 1);
    for (char *ch = dst->display_name; *ch; ch++)
        if (*ch == '_')
            *ch = ' ';
    if ((rc = rsy__cfg_string(file, c, kp, "display_name", 0, RSY_TEXT_MAX - 1,
                              dst->display_name)) != RSY_OK)
        return rc;

    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(c, "radius_fraction");
    const cJSON *mm = cJSON_GetObjectItemCaseSensitive(c, "margin_mm");
    if ((rf != NULL) == (mm != NULL))
        return rsy__cfg_fail(file, kp, NULL,
                             "expected exactly one of radius_fraction and margin_mm, got %s",
                             rf ? "both" : "neither");
    if (rf) {
        dst->extent_kind = RSY_EXTENT_RADIUS_FRACTION;
        rsy__kp_key(ckp, kp, "radius_fraction");
        rc = rsy__cfg_dist(file, rf, ckp, &rsy__rules_fraction, NULL, &dst->extent);
    } else {
        dst->extent_kind = RSY_EXTENT_MARGIN_MM;
        rsy__kp_key(ckp, kp, "margin_mm");
        rc = rsy__cfg_dist(file, mm, ckp, &rsy__rules_margin_mm, NULL, &dst->extent);
    }
    if (rc != RSY_OK)
        return rc;

    dst->n_confined = 0;
    rc = rsy__cfg_ident_list(file, c, kp, "confined_to", 0, RSY_MAX_HOST_TISSUES, dst->confined_to,
                             &dst->n_confined);
    if (rc != RSY_OK)
        return rc;
    for (int i = 0; i < dst->n_confined; i++)
        if (!in_list(p->allowed, p->n_allowed, dst->confined_to[i])) {
            char ekp[RSY__KEYPATH_MAX];
            rsy__kp_key(ckp, kp, "confined_to");
            rsy__kp_index(ekp, ckp, i);
            return rsy__cfg_fail(file, ekp, NULL,
                                 "expected a tissue listed in placement.allowed_tissues "
                                 "(\"%s\" is not)",
                                 dst->confined_to[i]);
        }
    if ((rc = parse_compartment_mri(file, c, kp, modalities, dst)) != RSY_OK)
        return rc;
    dst->texture_sd_fraction = 0.0;
    return rsy__cfg_number(file, c, kp, "texture_sd_fraction", 0, range_texture,
                           &dst->texture_sd_fraction);
}

static rsy_status parse_compartments(const char *file, const cJSON *root, unsigned modalities,
                                     rsy_prior *p)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "compartments");
    if (!arr)
        return rsy__cfg_fail(file, "compartments", NULL, "required key missing");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n < 1 || n > RSY_MAX_COMPARTMENTS)
        return rsy__cfg_fail(file, "compartments", arr,
                             "expected an array of 1 to %d compartment objects",
                             RSY_MAX_COMPARTMENTS);
    int i = 0, has_surface = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        char kp[RSY__KEYPATH_MAX];
        rsy__kp_index(kp, "compartments", i);
        rsy_compartment *dst = &p->compartments[i];
        rsy_status rc = parse_compartment(file, c, kp, modalities, p, dst);
        if (rc != RSY_OK)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(p->compartments[j].name, dst->name) == 0) {
                char nkp[RSY__KEYPATH_MAX];
                rsy__kp_key(nkp, kp, "name");
                return rsy__cfg_fail(file, nkp, NULL,
                                     "duplicate compartment name \"%s\" (also compartments[%d])",
                                     dst->name, j);
            }
        if (dst->extent_kind == RSY_EXTENT_RADIUS_FRACTION && dst->extent.kind == RSY_DIST_FIXED &&
            dst->extent.value == 1.0)
            has_surface = 1;
        p->n_compartments = i + 1;
    }
    if (!has_surface)
        return rsy__cfg_fail(file, "compartments", NULL,
                             "expected one compartment with \"radius_fraction\": 1 (the lesion "
                             "surface that diameter_mm measures)");
    return RSY_OK;
}

rsy_status rsy__prior_load(rsy_prior *p, const char *path, unsigned *modalities_out)
{
    static const char *const keys[] = {"raresynth_prior",
                                       "name",
                                       "display_name",
                                       "organ",
                                       "modalities",
                                       "description",
                                       "count",
                                       "diameter_mm",
                                       "shape",
                                       "placement",
                                       "compartments",
                                       "sources",
                                       NULL};
    rsy__json_file f;
    char description[RSY_TEXT_MAX];
    char stem[RSY_NAME_MAX + 8];
    unsigned modalities = 0;
    memset(p, 0, sizeof *p);
    if (strlen(path) >= sizeof p->path) {
        rsy_log_error("%.200s...: path longer than %d bytes", path, RSY_PATH_MAX - 1);
        return RSY_ECONFIG;
    }
    snprintf(p->path, sizeof p->path, "%s", path);
    rsy_status rc = rsy__json_file_load(&f, path);
    if (rc != RSY_OK)
        return rc;
    const cJSON *root = f.root;
    if ((rc = rsy__cfg_check_object(path, "", root, keys)) != RSY_OK ||
        (rc = rsy__cfg_version(path, root, "raresynth_prior")) != RSY_OK ||
        (rc = rsy__cfg_ident(path, root, "", "name", 1, p->name)) != RSY_OK)
        goto done;
    rsy__path_stem(path, stem, sizeof stem);
    if (strcmp(stem, p->name) != 0) {
        rc =
            rsy__cfg_fail(path, "name", cJSON_GetObjectItemCaseSensitive(root, "name"),
                          "expected \"%s\", the file's stem (priors are found by file name)", stem);
        goto done;
    }
    snprintf(p->display_name, sizeof p->display_name, "%s", p->name);
    if ((rc = rsy__cfg_string(path, root, "", "display_name", 0, RSY_TEXT_MAX - 1,
                              p->display_name)) != RSY_OK ||
        (rc = rsy__cfg_ident(path, root, "", "organ", 1, p->organ)) != RSY_OK ||
        (rc = parse_modalities(path, root, &modalities)) != RSY_OK ||
        (rc = rsy__cfg_string(path, root, "", "description", 0, RSY_TEXT_MAX - 1, description)) !=
            RSY_OK)
        goto done;
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(root, "count");
    const cJSON *diam = cJSON_GetObjectItemCaseSensitive(root, "diameter_mm");
    if (!count) {
        rc = rsy__cfg_fail(path, "count", NULL, "required key missing");
        goto done;
    }
    if (!diam) {
        rc = rsy__cfg_fail(path, "diameter_mm", NULL, "required key missing");
        goto done;
    }
    if ((rc = rsy__cfg_dist(path, count, "count", &rsy__rules_count, NULL, &p->count)) != RSY_OK ||
        (rc = rsy__cfg_dist(path, diam, "diameter_mm", &rsy__rules_diameter_mm, NULL,
                            &p->diameter_mm)) != RSY_OK ||
        (rc = parse_shape(path, root, p)) != RSY_OK ||
        (rc = parse_placement(path, root, p)) != RSY_OK ||
        (rc = parse_compartments(path, root, modalities, p)) != RSY_OK ||
        (rc = rsy__cfg_sources(path, root, "", "sources", p->sources, &p->n_sources)) != RSY_OK)
        goto done;
    if (modalities_out)
        *modalities_out = modalities;
done:
    rsy__json_file_clear(&f);
    return rc;
}

rsy_status rsy_prior_load(rsy_prior **out, const char *path)
{
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    rsy_prior *p = malloc(sizeof *p);
    if (!p)
        return RSY_ENOMEM;
    rsy_status rc = rsy__prior_load(p, path, NULL);
    if (rc != RSY_OK) {
        free(p);
        return rc;
    }
    *out = p;
    return RSY_OK;
}

/* One tissue name of a prior against the table; @p kp is its key path in the prior file. */
static rsy_status check_tissue(const rsy_prior *p, const char *kp, const char *name,
                               const rsy_tissue_table *table, const char *table_path)
{
    if (rsy__tissue_index(table, name) >= 0)
        return RSY_OK;
    return rsy__cfg_fail(p->path, kp, NULL, "no tissue \"%s\" in the tissue table \"%s\" (%s)",
                         name, table->name, table_path);
}

rsy_status rsy__prior_check_tissues(const rsy_prior *p, const rsy_tissue_table *table,
                                    const char *table_path)
{
    char kp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX];
    rsy_status rc;
    for (int i = 0; i < p->n_hosts; i++) {
        rsy__kp_index(kp, "placement.hosts", i);
        if ((rc = check_tissue(p, kp, p->hosts[i], table, table_path)) != RSY_OK)
            return rc;
    }
    for (int i = 0; i < p->n_allowed; i++) {
        rsy__kp_index(kp, "placement.allowed_tissues", i);
        if ((rc = check_tissue(p, kp, p->allowed[i], table, table_path)) != RSY_OK)
            return rc;
    }
    for (int c = 0; c < p->n_compartments; c++) {
        const rsy_compartment *cm = &p->compartments[c];
        rsy__kp_index(ckp, "compartments", c);
        for (int i = 0; i < cm->n_confined; i++) {
            char lkp[RSY__KEYPATH_MAX];
            rsy__kp_key(lkp, ckp, "confined_to");
            rsy__kp_index(kp, lkp, i);
            if ((rc = check_tissue(p, kp, cm->confined_to[i], table, table_path)) != RSY_OK)
                return rc;
        }
        if (cm->props_mode == RSY_PROPS_RELATIVE) {
            rsy__kp_key(kp, ckp, "mri.relative_to");
            if ((rc = check_tissue(p, kp, cm->relative_to, table, table_path)) != RSY_OK)
                return rc;
        }
    }
    return RSY_OK;
}
