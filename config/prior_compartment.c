/*
 * prior_compartment.c: the "compartments" of a lesion type (configs/priors/ *.json): extent
 * (radius_fraction, margin_mm, wall_mm, inclusions, network), the parent of inclusions and
 * networks, the tissues a compartment may replace, and its MRI and CT properties. docs/recipe.md
 * documents every key; prior.c parses the rest of the file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static const rsy__range range_factor = {0.0, 10.0, 1, 0};
static const rsy__range range_gd_mM = {0.0, INFINITY, 0, 1};
static const rsy__range range_texture = {0.0, 0.5, 0, 0};
static const rsy__range range_probability = {0.0, 1.0, 1, 0};
/* As tissue tables (ct.c): air is -1000 HU, 3071 the top of the int16 output range. */
static const rsy__range range_hu = {-1024.0, 3071.0, 0, 0};
static const rsy__range range_hu_offset = {-3000.0, 3000.0, 0, 0};
static const rsy__range range_sd_hu = {0.0, 500.0, 0, 0};

static const char *const extent_keys[] = {"radius_fraction", "margin_mm", "wall_mm",
                                          "inclusions",      "network",   NULL};
static const char *const phase_keys[] = {"non_contrast", "arterial", "portal_venous", NULL};

static int in_list(const char list[][RSY_NAME_MAX], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Extent                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* A <dist> at key @p key of @p obj (key path @p kp), required. */
static rsy_status required_dist(const char *file, const cJSON *obj, const char *kp, const char *key,
                                const rsy__dist_rules *rules, rsy_dist *out)
{
    char ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    return rsy__cfg_dist(file, item, ckp, rules, NULL, out);
}

static rsy_status parse_inclusions(const char *file, const cJSON *c, const char *kp,
                                   rsy_compartment *dst)
{
    static const char *const keys[] = {"volume_fraction", "diameter_mm", "where", NULL};
    static const char *const wheres[] = {"anywhere", "periphery", "centre", NULL};
    char ikp[RSY__KEYPATH_MAX];
    rsy__kp_key(ikp, kp, "inclusions");
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(c, "inclusions");
    int where = 0;
    rsy_status rc;
    if ((rc = rsy__cfg_check_object(file, ikp, inc, keys)) != RSY_OK ||
        (rc = required_dist(file, inc, ikp, "volume_fraction", &rsy__rules_open_fraction,
                            &dst->extent)) != RSY_OK ||
        (rc = required_dist(file, inc, ikp, "diameter_mm", &rsy__rules_inclusion_mm,
                            &dst->inclusion_diameter_mm)) != RSY_OK ||
        (rc = rsy__cfg_enum(file, inc, ikp, "where", 0, wheres, &where)) != RSY_OK)
        return rc;
    dst->where = (rsy_inclusion_where)where;
    return RSY_OK;
}

static rsy_status parse_network(const char *file, const cJSON *c, const char *kp,
                                rsy_compartment *dst)
{
    static const char *const keys[] = {"line_mm", "cell_mm", NULL};
    char nkp[RSY__KEYPATH_MAX];
    rsy__kp_key(nkp, kp, "network");
    const cJSON *net = cJSON_GetObjectItemCaseSensitive(c, "network");
    rsy_status rc;
    if ((rc = rsy__cfg_check_object(file, nkp, net, keys)) != RSY_OK ||
        (rc = required_dist(file, net, nkp, "line_mm", &rsy__rules_line_mm, &dst->extent)) !=
            RSY_OK ||
        (rc = required_dist(file, net, nkp, "cell_mm", &rsy__rules_cell_mm, &dst->cell_mm)) !=
            RSY_OK)
        return rc;
    double line_lo, line_hi, cell_lo, cell_hi;
    rsy__dist_bounds(&dst->extent, &line_lo, &line_hi);
    rsy__dist_bounds(&dst->cell_mm, &cell_lo, &cell_hi);
    if (!(line_lo < cell_hi)) {
        char lkp[RSY__KEYPATH_MAX];
        rsy__kp_key(lkp, nkp, "line_mm");
        return rsy__cfg_fail(file, lkp, NULL,
                             "expected lines thinner than the cells they bound (line_mm is at "
                             "least %g mm, cell_mm at most %g mm)",
                             line_lo, cell_hi);
    }
    return RSY_OK;
}

/* Exactly one extent key; fills extent_kind, extent and the kind's own fields. */
static rsy_status parse_extent(const char *file, const cJSON *c, const char *kp,
                               rsy_compartment *dst)
{
    const char *found[5];
    int n = 0, kind = -1;
    for (int k = 0; extent_keys[k]; k++)
        if (cJSON_GetObjectItemCaseSensitive(c, extent_keys[k])) {
            found[n++] = extent_keys[k];
            kind = k;
        }
    if (n != 1)
        return rsy__cfg_fail(file, kp, NULL,
                             "expected exactly one extent key (radius_fraction, margin_mm, "
                             "wall_mm, inclusions, network), got %s%s%s",
                             n == 0 ? "none" : found[0], n > 1 ? " and " : "",
                             n > 1 ? found[1] : "");
    char ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, extent_keys[kind]);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(c, extent_keys[kind]);
    dst->extent_kind = (rsy_extent_kind)kind;
    switch (dst->extent_kind) {
    case RSY_EXTENT_RADIUS_FRACTION:
        return rsy__cfg_dist(file, item, ckp, &rsy__rules_fraction, NULL, &dst->extent);
    case RSY_EXTENT_MARGIN_MM:
        return rsy__cfg_dist(file, item, ckp, &rsy__rules_margin_mm, NULL, &dst->extent);
    case RSY_EXTENT_WALL_MM:
        return rsy__cfg_dist(file, item, ckp, &rsy__rules_wall_mm, NULL, &dst->extent);
    case RSY_EXTENT_INCLUSIONS:
        return parse_inclusions(file, c, kp, dst);
    case RSY_EXTENT_NETWORK:
        return parse_network(file, c, kp, dst);
    }
    return RSY_OK;
}

/* "inside": required for inclusions and networks (the name of an earlier compartment),
 * refused for the other kinds. @p names holds the "name" of every compartment of the list (""
 * where it is not a string), @p index this compartment's position. */
static rsy_status parse_inside(const char *file, const cJSON *c, const char *kp,
                               const char names[][RSY_NAME_MAX], int n_names, int index,
                               rsy_compartment *dst)
{
    char ikp[RSY__KEYPATH_MAX];
    rsy__kp_key(ikp, kp, "inside");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(c, "inside");
    int needs = dst->extent_kind == RSY_EXTENT_INCLUSIONS || dst->extent_kind == RSY_EXTENT_NETWORK;
    if (!needs) {
        if (item)
            return rsy__cfg_fail(file, ikp, item,
                                 "expected no \"inside\": only inclusions and network "
                                 "compartments lie inside another compartment");
        return RSY_OK;
    }
    if (!item)
        return rsy__cfg_fail(file, ikp, NULL,
                             "required key missing (%s lie inside a compartment listed before "
                             "them)",
                             dst->extent_kind == RSY_EXTENT_INCLUSIONS ? "inclusions" : "networks");
    rsy_status rc = rsy__cfg_ident(file, c, kp, "inside", 1, dst->parent);
    if (rc != RSY_OK)
        return rc;
    for (int j = 0; j < n_names; j++) {
        if (strcmp(names[j], dst->parent) != 0)
            continue;
        if (j < index)
            return RSY_OK;
        return rsy__cfg_fail(file, ikp, item,
                             "expected the name of a compartment listed before this one (\"%s\" "
                             "is %s compartments[%d]: list the parent first)",
                             dst->parent, j == index ? "this compartment," : "the later", j);
    }
    return rsy__cfg_fail(file, ikp, item,
                         "expected the name of a compartment listed before this one (there is "
                         "no compartment \"%s\")",
                         dst->parent);
}

/* ---------------------------------------------------------------------------------------- */
/* Properties                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* "mri" or "ct": required when the modalities list it, refused otherwise. Returns the item in
 * *@p out (NULL when absent and not wanted). */
static rsy_status modality_item(const char *file, const cJSON *c, const char *ckp, const char *key,
                                int wanted, const cJSON **out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(c, key);
    *out = item;
    if (!item)
        return wanted ? rsy__cfg_fail(file, ckp, NULL,
                                      "required key missing (modalities include \"%s\")", key)
                      : RSY_OK;
    if (!wanted)
        return rsy__cfg_fail(file, ckp, NULL,
                             "unexpected %s properties: modalities do not include \"%s\"",
                             strcmp(key, "mri") == 0 ? "MRI" : "CT", key);
    if (!cJSON_IsObject(item))
        return rsy__cfg_fail(file, ckp, item, "expected an object");
    return RSY_OK;
}

static rsy_status parse_mri(const char *file, const cJSON *c, const char *kp, unsigned modalities,
                            rsy_compartment *dst)
{
    static const char *const keys_abs[] = {"1.5T", "3T", NULL};
    static const char *const keys_rel[] = {"relative_to", "t1_factor", "t2_factor",
                                           "pd_factor",   "gd_mM",     NULL};
    char mkp[RSY__KEYPATH_MAX];
    rsy__kp_key(mkp, kp, "mri");
    const cJSON *mri;
    rsy_status rc = modality_item(file, c, mkp, "mri", (modalities & RSY_PRIOR_MRI) != 0, &mri);
    if (rc != RSY_OK || !mri)
        return rc;
    dst->has_mri = 1;
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
        return RSY_OK;
    }
    dst->props_mode = RSY_PROPS_ABSOLUTE;
    if ((rc = rsy__cfg_check_object(file, mkp, mri, keys_abs)) != RSY_OK ||
        (rc = rsy__cfg_mri_props(file, mri, mkp, "1.5T", &dst->mri_1p5t)) != RSY_OK ||
        (rc = rsy__cfg_mri_props(file, mri, mkp, "3T", &dst->mri_3t)) != RSY_OK)
        return rc;
    return RSY_OK;
}

/* CT, absolute: {"non_contrast": {"hu", "sd"}, "arterial": ..., "portal_venous": ...}, every
 * phase required (a recipe may image in any of them). */
static rsy_status parse_ct_absolute(const char *file, const cJSON *ct, const char *ckp,
                                    rsy_compartment *dst)
{
    static const char *const keys[] = {"hu", "sd", NULL};
    char pkp[RSY__KEYPATH_MAX];
    rsy_status rc = rsy__cfg_check_object(file, ckp, ct, phase_keys);
    if (rc != RSY_OK)
        return rc;
    dst->ct_mode = RSY_PROPS_ABSOLUTE;
    for (int ph = 0; ph < RSY_CT_N_PHASES; ph++) {
        rsy__kp_key(pkp, ckp, phase_keys[ph]);
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(ct, phase_keys[ph]);
        if (!obj)
            return rsy__cfg_fail(file, pkp, NULL,
                                 "required key missing (absolute CT properties give every "
                                 "phase; or use \"relative_to\")");
        dst->ct[ph].sd_hu = 0.0;
        if ((rc = rsy__cfg_check_object(file, pkp, obj, keys)) != RSY_OK ||
            (rc = rsy__cfg_number(file, obj, pkp, "hu", 1, range_hu, &dst->ct[ph].hu)) != RSY_OK ||
            (rc = rsy__cfg_number(file, obj, pkp, "sd", 0, range_sd_hu, &dst->ct[ph].sd_hu)) !=
                RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* CT, relative: {"relative_to": tissue, "hu_offset": {phase: offset, ...} (every phase),
 * "sd": s}. */
static rsy_status parse_ct_relative(const char *file, const cJSON *ct, const char *ckp,
                                    rsy_compartment *dst)
{
    static const char *const keys[] = {"relative_to", "hu_offset", "sd", NULL};
    char okp[RSY__KEYPATH_MAX];
    double sd = 0.0;
    rsy_status rc;
    dst->ct_mode = RSY_PROPS_RELATIVE;
    if ((rc = rsy__cfg_check_object(file, ckp, ct, keys)) != RSY_OK ||
        (rc = rsy__cfg_ident(file, ct, ckp, "relative_to", 1, dst->ct_relative_to)) != RSY_OK ||
        (rc = rsy__cfg_number(file, ct, ckp, "sd", 0, range_sd_hu, &sd)) != RSY_OK)
        return rc;
    rsy__kp_key(okp, ckp, "hu_offset");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(ct, "hu_offset");
    if (!off)
        return rsy__cfg_fail(file, okp, NULL,
                             "required key missing (the HU added to the tissue's, per phase)");
    if ((rc = rsy__cfg_check_object(file, okp, off, phase_keys)) != RSY_OK)
        return rc;
    for (int ph = 0; ph < RSY_CT_N_PHASES; ph++) {
        if ((rc = rsy__cfg_number(file, off, okp, phase_keys[ph], 1, range_hu_offset,
                                  &dst->ct[ph].hu)) != RSY_OK)
            return rc;
        dst->ct[ph].sd_hu = sd;
    }
    return RSY_OK;
}

static rsy_status parse_ct(const char *file, const cJSON *c, const char *kp, unsigned modalities,
                           rsy_compartment *dst)
{
    char ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, "ct");
    const cJSON *ct;
    rsy_status rc = modality_item(file, c, ckp, "ct", (modalities & RSY_PRIOR_CT) != 0, &ct);
    if (rc != RSY_OK || !ct)
        return rc;
    dst->has_ct = 1;
    if (cJSON_GetObjectItemCaseSensitive(ct, "relative_to"))
        return parse_ct_relative(file, ct, ckp, dst);
    return parse_ct_absolute(file, ct, ckp, dst);
}

/* ---------------------------------------------------------------------------------------- */
/* One compartment, the list                                                                  */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_compartment(const char *file, const cJSON *c, const char *kp,
                                    const rsy_prior *p, const char names[][RSY_NAME_MAX],
                                    int n_names, int index, rsy_compartment *dst)
{
    static const char *const keys[] = {
        "name",    "display_name", "radius_fraction", "margin_mm", "wall_mm", "inclusions",
        "network", "inside",       "confined_to",     "mri",       "ct",      "texture_sd_fraction",
        "probability", NULL};
    char ckp[RSY__KEYPATH_MAX];
    memset(dst, 0, sizeof *dst);
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
    double presence = 1.0;
    if ((rc = rsy__cfg_string(file, c, kp, "display_name", 0, RSY_TEXT_MAX - 1,
                              dst->display_name)) != RSY_OK ||
        (rc = rsy__cfg_number(file, c, kp, "probability", 0, range_probability, &presence)) !=
            RSY_OK ||
        (rc = parse_extent(file, c, kp, dst)) != RSY_OK ||
        (rc = parse_inside(file, c, kp, names, n_names, index, dst)) != RSY_OK)
        return rc;
    dst->absent_probability = 1.0 - presence;

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
    if ((rc = parse_mri(file, c, kp, p->modalities, dst)) != RSY_OK ||
        (rc = parse_ct(file, c, kp, p->modalities, dst)) != RSY_OK)
        return rc;
    return rsy__cfg_number(file, c, kp, "texture_sd_fraction", 0, range_texture,
                           &dst->texture_sd_fraction);
}

int rsy__prior_size_conflict(const rsy_prior *p, double *need_mm)
{
    double d_lo, d_hi;
    rsy__dist_bounds(&p->diameter_mm, &d_lo, &d_hi);
    (void)d_lo;
    for (int c = 0; c < p->n_compartments; c++) {
        const rsy_compartment *cm = &p->compartments[c];
        double lo, hi;
        if (cm->extent_kind == RSY_EXTENT_WALL_MM) {
            /* The wall lies inside the surface: it must leave room for the interior. */
            rsy__dist_bounds(&cm->extent, &lo, &hi);
            if (!(2.0 * lo < d_hi)) {
                *need_mm = 2.0 * lo;
                return c;
            }
        } else if (cm->extent_kind == RSY_EXTENT_INCLUSIONS) {
            rsy__dist_bounds(&cm->inclusion_diameter_mm, &lo, &hi);
            if (!(lo < d_hi)) {
                *need_mm = lo;
                return c;
            }
        }
    }
    return -1;
}

rsy_status rsy__prior_parse_compartments(const char *file, const cJSON *obj, const char *kp,
                                         rsy_prior *p)
{
    char akp[RSY__KEYPATH_MAX];
    char names[RSY_MAX_COMPARTMENTS][RSY_NAME_MAX];
    rsy__kp_key(akp, kp, "compartments");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "compartments");
    if (!arr)
        return rsy__cfg_fail(file, akp, NULL, "required key missing");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n < 1 || n > RSY_MAX_COMPARTMENTS)
        return rsy__cfg_fail(file, akp, arr, "expected an array of 1 to %d compartment objects",
                             RSY_MAX_COMPARTMENTS);
    /* Every name first, so that "inside" can tell a later compartment from a missing one. */
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        names[i][0] = '\0';
        if (cJSON_IsString(name) && rsy__is_ident(name->valuestring))
            snprintf(names[i], RSY_NAME_MAX, "%s", name->valuestring);
    }
    int has_surface = 0, wall = -1;
    i = 0;
    p->n_compartments = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        char ckp[RSY__KEYPATH_MAX];
        rsy__kp_index(ckp, akp, i);
        rsy_compartment *dst = &p->compartments[i];
        rsy_status rc = parse_compartment(file, c, ckp, p, names, n, i, dst);
        if (rc != RSY_OK)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(p->compartments[j].name, dst->name) == 0) {
                char nkp[RSY__KEYPATH_MAX];
                rsy__kp_key(nkp, ckp, "name");
                return rsy__cfg_fail(file, nkp, NULL,
                                     "duplicate compartment name \"%s\" (also compartments[%d])",
                                     dst->name, j);
            }
        if (dst->extent_kind == RSY_EXTENT_WALL_MM) {
            if (wall >= 0) {
                char wkp[RSY__KEYPATH_MAX];
                rsy__kp_key(wkp, ckp, "wall_mm");
                return rsy__cfg_fail(file, wkp, NULL,
                                     "expected one wall_mm compartment per lesion type (also "
                                     "compartments[%d]): both would fill the same shell",
                                     wall);
            }
            wall = i;
        }
        int is_surface = dst->extent_kind == RSY_EXTENT_RADIUS_FRACTION &&
                         dst->extent.kind == RSY_DIST_FIXED && dst->extent.value == 1.0;
        int is_cyst_wall = dst->extent_kind == RSY_EXTENT_WALL_MM && p->shape_kind == RSY_SHAPE_CYST;
        if ((is_surface || is_cyst_wall) && dst->absent_probability > 0.0) {
            char pkp[RSY__KEYPATH_MAX];
            rsy__kp_key(pkp, ckp, "probability");
            return rsy__cfg_fail(file, pkp, NULL,
                                 "expected 1 for %s (it is always present), got %g",
                                 is_surface ? "the compartment at the lesion surface "
                                              "(\"radius_fraction\": 1)"
                                            : "the wall of a cyst",
                                 1.0 - dst->absent_probability);
        }
        has_surface |= is_surface;
        p->n_compartments = i + 1;
    }
    if (!has_surface)
        return rsy__cfg_fail(file, akp, NULL,
                             "expected one compartment with \"radius_fraction\": 1 (the lesion "
                             "surface that diameter_mm measures)");
    double need_mm, d_lo, d_hi;
    int c = rsy__prior_size_conflict(p, &need_mm);
    if (c >= 0) {
        char ckp[RSY__KEYPATH_MAX], ekp[RSY__KEYPATH_MAX];
        rsy__dist_bounds(&p->diameter_mm, &d_lo, &d_hi);
        rsy__kp_index(ckp, akp, c);
        if (p->compartments[c].extent_kind == RSY_EXTENT_INCLUSIONS) {
            rsy__kp_key(ekp, ckp, "inclusions.diameter_mm");
            return rsy__cfg_fail(file, ekp, NULL,
                                 "expected inclusions smaller than the largest lesion (they are "
                                 "at least %g mm; diameter_mm draws at most %g mm)",
                                 need_mm, d_hi);
        }
        rsy__kp_key(ekp, ckp, "wall_mm");
        return rsy__cfg_fail(file, ekp, NULL,
                             "expected a wall thinner than the largest lesion radius (it is at "
                             "least %g mm; diameter_mm draws at most %g mm)",
                             need_mm / 2.0, d_hi);
    }
    return RSY_OK;
}
