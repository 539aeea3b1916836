/*
 * prior.c: disease files (configs/priors/ *.json) with their lesion types, loaded and
 * validated: the file's header, each type's probability, count, size, shape, placement and
 * mass effect, and the checks that involve several keys. The compartments are parsed in
 * prior_compartment.c. docs/recipe.md documents every key; the tissue names a prior uses are
 * checked against the recipe's tissue table by rsy__prior_check_tissues() once both are loaded.
 *
 * A file holds either one lesion type at its top level (rsy_prior name = the file stem) or
 * several in "lesion_types" (names "stem/type").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define MAX_ATTEMPTS_LIMIT 1000000
#define DEFAULT_MAX_ATTEMPTS 1000
#define DEFAULT_ROUGHNESS_SCALE_MM 2.0

static const rsy__range range_unit = {0.0, 1.0, 0, 0};
static const rsy__range range_lobulation = {0.0, 0.4, 0, 0};
static const rsy__range range_roughness = {0.0, 0.3, 0, 0};
static const rsy__range range_roughness_scale_mm = {0.0, 100.0, 1, 0};
static const rsy__range range_separation_mm = {0.0, 1000.0, 0, 0};
static const rsy__range range_min_distance_mm = {0.0, 1000.0, 0, 0};
static const rsy__range range_max_distance_mm = {0.0, 1000.0, 1, 0};
static const rsy__range range_zone_weight = {0.0, 1e6, 0, 0};
static const rsy__range range_mass_range_mm = {0.0, 200.0, 1, 0};

static const char *const rule_names[] = {"host_tissue",         "periventricular", "juxtacortical",
                                         "grey_white_junction", "extra_axial",     "subpleural",
                                         "subcapsular",         "subependymal",    NULL};
static const char *const orientation_names[] = {"random", "radial", "tangential", NULL};

const char *rsy_placement_rule_name(rsy_placement_rule rule)
{
    const size_t n = sizeof rule_names / sizeof rule_names[0] - 1;
    return (size_t)rule < n ? rule_names[rule] : "unknown";
}

/* The keys of one lesion type, at the top level of a file or in each of "lesion_types". */
#define TYPE_KEYS                                                                                  \
    "probability", "count", "diameter_mm", "shape", "placement", "mass_effect", "compartments"

static int in_list(const char list[][RSY_NAME_MAX], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static void dist_fixed(rsy_dist *d, double v)
{
    memset(d, 0, sizeof *d);
    d->kind = RSY_DIST_FIXED;
    d->value = d->min = d->max = v;
}

/* An optional <dist> at key @p key of @p obj (key path @p kp); *out keeps its default when
 * the key is absent. */
static rsy_status optional_dist(const char *file, const cJSON *obj, const char *kp, const char *key,
                                const rsy__dist_rules *rules, rsy_dist *out)
{
    char ckp[RSY__KEYPATH_MAX];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item)
        return RSY_OK;
    rsy__kp_key(ckp, kp, key);
    return rsy__cfg_dist(file, item, ckp, rules, NULL, out);
}

static rsy_status parse_modalities(const char *file, const cJSON *root, unsigned *bits)
{
    static const char *const names[] = {"mri", "ct", NULL};
    static const unsigned flags[] = {RSY_PRIOR_MRI, RSY_PRIOR_CT};
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

/* ---------------------------------------------------------------------------------------- */
/* Shape                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_shape(const char *file, const cJSON *obj, const char *kp, rsy_prior *p)
{
    static const char *const keys[] = {"kind",
                                       "elongation",
                                       "flatness",
                                       "lobulation_lmax",
                                       "lobulation_amplitude",
                                       "roughness_amplitude",
                                       "roughness_scale_mm",
                                       "lobes",
                                       "orientation",
                                       NULL};
    static const char *const kinds[] = {"solid", "cyst", NULL};
    char skp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(skp, kp, "shape");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
    /* Defaults: a smooth sphere of one lobe, randomly oriented. */
    p->shape_kind = RSY_SHAPE_SOLID;
    dist_fixed(&p->elongation, 1.0);
    dist_fixed(&p->flatness, 1.0);
    dist_fixed(&p->lobes, 1.0);
    p->lobulation_lmax = 0;
    p->lobulation_amplitude = 0.0;
    p->roughness_amplitude = 0.0;
    p->roughness_scale_mm = DEFAULT_ROUGHNESS_SCALE_MM;
    p->orientation = RSY_ORIENT_RANDOM;
    if (!shape)
        return RSY_OK;
    int kind = 0, orientation = 0;
    int64_t lmax = 0;
    rsy_status rc;
    if ((rc = rsy__cfg_check_object(file, skp, shape, keys)) != RSY_OK ||
        (rc = rsy__cfg_enum(file, shape, skp, "kind", 0, kinds, &kind)) != RSY_OK ||
        (rc = optional_dist(file, shape, skp, "elongation", &rsy__rules_elongation,
                            &p->elongation)) != RSY_OK ||
        (rc = optional_dist(file, shape, skp, "flatness", &rsy__rules_elongation, &p->flatness)) !=
            RSY_OK ||
        (rc = rsy__cfg_int(file, shape, skp, "lobulation_lmax", 0, 0, 4, &lmax)) != RSY_OK)
        return rc;
    if (lmax == 1) {
        rsy__kp_key(ckp, skp, "lobulation_lmax");
        return rsy__cfg_fail(file, ckp, cJSON_GetObjectItemCaseSensitive(shape, "lobulation_lmax"),
                             "expected 0 (no lobulation) or an integer in [2, 4] (degree 1 "
                             "would only shift the centre)");
    }
    if ((rc = rsy__cfg_number(file, shape, skp, "lobulation_amplitude", 0, range_lobulation,
                              &p->lobulation_amplitude)) != RSY_OK ||
        (rc = rsy__cfg_number(file, shape, skp, "roughness_amplitude", 0, range_roughness,
                              &p->roughness_amplitude)) != RSY_OK ||
        (rc = rsy__cfg_number(file, shape, skp, "roughness_scale_mm", 0, range_roughness_scale_mm,
                              &p->roughness_scale_mm)) != RSY_OK ||
        (rc = optional_dist(file, shape, skp, "lobes", &rsy__rules_lobes, &p->lobes)) != RSY_OK ||
        (rc = rsy__cfg_enum(file, shape, skp, "orientation", 0, orientation_names, &orientation)) !=
            RSY_OK)
        return rc;
    p->shape_kind = (rsy_shape_kind)kind;
    p->lobulation_lmax = (int)lmax;
    p->orientation = (rsy_orientation)orientation;
    /* The middle axis cannot exceed the longest: some draw must allow flatness <= elongation. */
    double f_lo, f_hi, e_lo, e_hi;
    rsy__dist_bounds(&p->flatness, &f_lo, &f_hi);
    rsy__dist_bounds(&p->elongation, &e_lo, &e_hi);
    if (f_lo > e_hi) {
        rsy__kp_key(ckp, skp, "flatness");
        return rsy__cfg_fail(file, ckp, NULL,
                             "expected values <= shape.elongation's (middle to shortest axis "
                             "cannot exceed longest to shortest): flatness is at least %g, "
                             "elongation at most %g",
                             f_lo, e_hi);
    }
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Placement                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_zone_weights(const char *file, const cJSON *pl, const char *plkp,
                                     double w[3])
{
    char zkp[RSY__KEYPATH_MAX], ekp[RSY__KEYPATH_MAX];
    rsy__kp_key(zkp, plkp, "zone_weights");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(pl, "zone_weights");
    w[0] = w[1] = w[2] = 1.0;
    if (!item)
        return RSY_OK;
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 3)
        return rsy__cfg_fail(file, zkp, item,
                             "expected [upper, middle, lower]: 3 numbers >= 0, not all 0");
    int i = 0;
    double sum = 0.0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        rsy__kp_index(ekp, zkp, i);
        rsy_status rc = rsy__cfg_number_item(file, e, ekp, range_zone_weight, &w[i]);
        if (rc != RSY_OK)
            return rc;
        sum += w[i];
    }
    if (!(sum > 0.0))
        return rsy__cfg_fail(file, zkp, item,
                             "expected weights not all 0 (no third of the hosts could hold a "
                             "lesion)");
    return RSY_OK;
}

/* The distance keys: refused for host_tissue, max required for the distance rules. */
static rsy_status parse_distances(const char *file, const cJSON *pl, const char *plkp, rsy_prior *p)
{
    char ckp[RSY__KEYPATH_MAX];
    const cJSON *min_item = cJSON_GetObjectItemCaseSensitive(pl, "min_distance_mm");
    const cJSON *max_item = cJSON_GetObjectItemCaseSensitive(pl, "max_distance_mm");
    p->min_distance_mm = 0.0;
    p->max_distance_mm = INFINITY;
    if (p->rule == RSY_PLACE_HOST_TISSUE) {
        if (min_item || max_item) {
            rsy__kp_key(ckp, plkp, min_item ? "min_distance_mm" : "max_distance_mm");
            return rsy__cfg_fail(file, ckp, NULL,
                                 "expected no distance with rule \"host_tissue\" (distances "
                                 "apply to the other rules)");
        }
        return RSY_OK;
    }
    rsy_status rc;
    if ((rc = rsy__cfg_number(file, pl, plkp, "min_distance_mm", 0, range_min_distance_mm,
                              &p->min_distance_mm)) != RSY_OK)
        return rc;
    rsy__kp_key(ckp, plkp, "max_distance_mm");
    if (!max_item)
        return rsy__cfg_fail(file, ckp, NULL,
                             "required key missing (rule \"%s\" keeps the centre within this "
                             "distance of the reference tissues)",
                             rule_names[p->rule]);
    if ((rc = rsy__cfg_number_item(file, max_item, ckp, range_max_distance_mm,
                                   &p->max_distance_mm)) != RSY_OK)
        return rc;
    if (!(p->min_distance_mm < p->max_distance_mm)) {
        rsy__kp_key(ckp, plkp, "min_distance_mm");
        return rsy__cfg_fail(file, ckp, min_item, "expected a number < %s.max_distance_mm (%g)",
                             plkp, p->max_distance_mm);
    }
    return RSY_OK;
}

static rsy_status parse_placement(const char *file, const cJSON *obj, const char *kp, rsy_prior *p)
{
    static const char *const keys[] = {"rule",
                                       "hosts",
                                       "allowed_tissues",
                                       "reference",
                                       "min_distance_mm",
                                       "max_distance_mm",
                                       "zone_weights",
                                       "min_separation_mm",
                                       "max_attempts",
                                       NULL};
    char plkp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(plkp, kp, "placement");
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(obj, "placement");
    if (!pl)
        return rsy__cfg_fail(file, plkp, NULL, "required key missing");
    int rule = 0;
    int64_t attempts = DEFAULT_MAX_ATTEMPTS;
    p->min_separation_mm = 0.0;
    rsy_status rc;
    if ((rc = rsy__cfg_check_object(file, plkp, pl, keys)) != RSY_OK ||
        (rc = rsy__cfg_enum(file, pl, plkp, "rule", 0, rule_names, &rule)) != RSY_OK ||
        (rc = rsy__cfg_ident_list(file, pl, plkp, "hosts", 1, RSY_MAX_HOST_TISSUES, p->hosts,
                                  &p->n_hosts)) != RSY_OK ||
        (rc = rsy__cfg_ident_list(file, pl, plkp, "allowed_tissues", 0, RSY_MAX_HOST_TISSUES,
                                  p->allowed, &p->n_allowed)) != RSY_OK ||
        (rc = rsy__cfg_ident_list(file, pl, plkp, "reference", 0, RSY_MAX_HOST_TISSUES,
                                  p->reference, &p->n_reference)) != RSY_OK)
        return rc;
    p->rule = (rsy_placement_rule)rule;
    if (p->rule != RSY_PLACE_HOST_TISSUE && p->n_reference == 0) {
        rsy__kp_key(ckp, plkp, "reference");
        return rsy__cfg_fail(file, ckp, NULL,
                             "required key missing (rule \"%s\" measures distances to these "
                             "tissues)",
                             rule_names[rule]);
    }
    if ((rc = parse_distances(file, pl, plkp, p)) != RSY_OK ||
        (rc = parse_zone_weights(file, pl, plkp, p->zone_weights)) != RSY_OK ||
        (rc = rsy__cfg_number(file, pl, plkp, "min_separation_mm", 0, range_separation_mm,
                              &p->min_separation_mm)) != RSY_OK ||
        (rc = rsy__cfg_int(file, pl, plkp, "max_attempts", 0, 1, MAX_ATTEMPTS_LIMIT, &attempts)) !=
            RSY_OK)
        return rc;
    p->max_attempts = (int)attempts;
    if (p->n_allowed == 0) {
        memcpy(p->allowed, p->hosts, sizeof p->allowed);
        p->n_allowed = p->n_hosts;
    }
    if (p->rule == RSY_PLACE_SUBEPENDYMAL) {
        /* A subependymal lesion protrudes into the ventricle: it may replace the reference. */
        for (int i = 0; i < p->n_reference; i++) {
            if (in_list(p->allowed, p->n_allowed, p->reference[i]))
                continue;
            if (p->n_allowed == RSY_MAX_HOST_TISSUES) {
                rsy__kp_key(ckp, plkp, "allowed_tissues");
                return rsy__cfg_fail(file, ckp, NULL,
                                     "expected at most %d tissues with the reference ones, which "
                                     "rule \"subependymal\" adds (the lesion protrudes into them)",
                                     RSY_MAX_HOST_TISSUES);
            }
            /* memcpy, not snprintf: both are fields of *p, which GCC's -Wrestrict flags. */
            memcpy(p->allowed[p->n_allowed++], p->reference[i], RSY_NAME_MAX);
        }
    }
    for (int i = 0; i < p->n_hosts; i++)
        if (!in_list(p->allowed, p->n_allowed, p->hosts[i])) {
            char lkp[RSY__KEYPATH_MAX];
            rsy__kp_key(lkp, plkp, "hosts");
            rsy__kp_index(ckp, lkp, i);
            return rsy__cfg_fail(file, ckp, NULL,
                                 "expected a tissue also listed in %s.allowed_tissues (\"%s\" "
                                 "is not)",
                                 plkp, p->hosts[i]);
        }
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Mass effect                                                                                */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_mass_effect(const char *file, const cJSON *obj, const char *kp,
                                    rsy_prior *p)
{
    static const char *const keys[] = {"strength", "range_mm", "fixed_tissues", NULL};
    char mkp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX];
    rsy_mass_effect *m = &p->mass_effect;
    memset(m, 0, sizeof *m);
    rsy__kp_key(mkp, kp, "mass_effect");
    const cJSON *me = cJSON_GetObjectItemCaseSensitive(obj, "mass_effect");
    if (!me)
        return RSY_OK;
    rsy_status rc = rsy__cfg_check_object(file, mkp, me, keys);
    if (rc != RSY_OK)
        return rc;
    const cJSON *strength = cJSON_GetObjectItemCaseSensitive(me, "strength");
    rsy__kp_key(ckp, mkp, "strength");
    if (!strength)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    if ((rc = rsy__cfg_dist(file, strength, ckp, &rsy__rules_open_fraction, NULL, &m->strength)) !=
            RSY_OK ||
        (rc = rsy__cfg_number(file, me, mkp, "range_mm", 1, range_mass_range_mm, &m->range_mm)) !=
            RSY_OK ||
        (rc = rsy__cfg_ident_list(file, me, mkp, "fixed_tissues", 0, RSY_MAX_HOST_TISSUES, m->fixed,
                                  &m->n_fixed)) != RSY_OK)
        return rc;
    m->enabled = 1;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* One lesion type                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* Checks between shape, placement and compartments. */
static rsy_status check_type(const char *file, const cJSON *obj, const char *kp, rsy_prior *p)
{
    char skp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(skp, kp, "shape");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
    const cJSON *orient = shape ? cJSON_GetObjectItemCaseSensitive(shape, "orientation") : NULL;
    rsy__kp_key(ckp, skp, "orientation");
    if (p->rule == RSY_PLACE_EXTRA_AXIAL) {
        /* An extra-axial mass lies flat on its dural base. */
        if (orient && p->orientation != RSY_ORIENT_TANGENTIAL)
            return rsy__cfg_fail(file, ckp, orient,
                                 "expected \"tangential\" with rule \"extra_axial\" (the lesion "
                                 "lies flat against the reference)");
        p->orientation = RSY_ORIENT_TANGENTIAL;
    }
    if (p->orientation != RSY_ORIENT_RANDOM && p->n_reference == 0)
        return rsy__cfg_fail(file, ckp, orient,
                             "expected \"random\" without placement.reference (\"radial\" and "
                             "\"tangential\" orient the lesion along the distance to the "
                             "reference tissues)");
    if (p->shape_kind == RSY_SHAPE_CYST) {
        int wall = 0;
        for (int c = 0; c < p->n_compartments; c++)
            wall |= p->compartments[c].extent_kind == RSY_EXTENT_WALL_MM;
        if (!wall) {
            rsy__kp_key(ckp, skp, "kind");
            return rsy__cfg_fail(file, ckp, NULL,
                                 "expected \"solid\", or a compartment with \"wall_mm\" (a cyst "
                                 "is a wall around a fluid compartment)");
        }
    }
    return RSY_OK;
}

/* The keys of one lesion type of @p obj (key path @p kp) into @p p, whose header fields
 * (names, organ, path, modalities, sources) the caller has filled. */
static rsy_status parse_type(const char *file, const cJSON *obj, const char *kp, rsy_prior *p)
{
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc;
    p->probability = 1.0;
    if ((rc = rsy__cfg_number(file, obj, kp, "probability", 0, range_unit, &p->probability)) !=
        RSY_OK)
        return rc;
    static const char *const required[] = {"count", "diameter_mm"};
    const rsy__dist_rules *rules[] = {&rsy__rules_count, &rsy__rules_diameter_mm};
    rsy_dist *dst[] = {&p->count, &p->diameter_mm};
    for (int i = 0; i < 2; i++) {
        rsy__kp_key(ckp, kp, required[i]);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, required[i]);
        if (!item)
            return rsy__cfg_fail(file, ckp, NULL, "required key missing");
        if ((rc = rsy__cfg_dist(file, item, ckp, rules[i], NULL, dst[i])) != RSY_OK)
            return rc;
    }
    if ((rc = parse_shape(file, obj, kp, p)) != RSY_OK ||
        (rc = parse_placement(file, obj, kp, p)) != RSY_OK ||
        (rc = parse_mass_effect(file, obj, kp, p)) != RSY_OK ||
        (rc = rsy__prior_parse_compartments(file, obj, kp, p)) != RSY_OK)
        return rc;
    return check_type(file, obj, kp, p);
}

/* "lesion_types": each type into d->types[], from the template @p head (header fields). */
static rsy_status parse_lesion_types(const char *file, const cJSON *root, const rsy_prior *head,
                                     rsy_disease *d)
{
    static const char *const keys[] = {"name", "display_name", TYPE_KEYS, NULL};
    static const char *const type_keys[] = {TYPE_KEYS, NULL};
    for (int k = 0; type_keys[k]; k++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, type_keys[k]);
        if (item)
            return rsy__cfg_fail(file, type_keys[k], NULL,
                                 "expected no lesion-type key at the top level of a file with "
                                 "\"lesion_types\" (give it in each type)");
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "lesion_types");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n < 1 || n > RSY_MAX_LESION_TYPES)
        return rsy__cfg_fail(file, "lesion_types", arr,
                             "expected an array of 1 to %d lesion type objects",
                             RSY_MAX_LESION_TYPES);
    int i = 0;
    for (const cJSON *t = arr->child; t; t = t->next, i++) {
        char kp[RSY__KEYPATH_MAX], nkp[RSY__KEYPATH_MAX];
        rsy_prior *p = &d->types[i];
        rsy__kp_index(kp, "lesion_types", i);
        rsy__kp_key(nkp, kp, "name");
        *p = *head;
        rsy_status rc = rsy__cfg_check_object(file, kp, t, keys);
        if (rc != RSY_OK || (rc = rsy__cfg_ident(file, t, kp, "name", 1, p->type_name)) != RSY_OK)
            return rc;
        if (strlen(p->disease) + 1 + strlen(p->type_name) >= RSY_NAME_MAX)
            return rsy__cfg_fail(file, nkp, cJSON_GetObjectItemCaseSensitive(t, "name"),
                                 "expected a name short enough that \"%s/<name>\" has at most "
                                 "%d characters",
                                 p->disease, RSY_NAME_MAX - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(d->types[j].type_name, p->type_name) == 0)
                return rsy__cfg_fail(file, nkp, NULL,
                                     "duplicate lesion type name \"%s\" (also lesion_types[%d])",
                                     p->type_name, j);
        /* "stem/type": the lengths were checked above. */
        size_t n_stem = strlen(p->disease), n_type = strlen(p->type_name);
        memcpy(p->name, p->disease, n_stem);
        p->name[n_stem] = '/';
        memcpy(p->name + n_stem + 1, p->type_name, n_type + 1);
        /* Default display name: the type's name with underscores as spaces. */
        memcpy(p->display_name, p->type_name, n_type + 1); /* n_type < RSY_NAME_MAX <= RSY_TEXT_MAX */
        for (char *ch = p->display_name; *ch; ch++)
            if (*ch == '_')
                *ch = ' ';
        if ((rc = rsy__cfg_string(file, t, kp, "display_name", 0, RSY_TEXT_MAX - 1,
                                  p->display_name)) != RSY_OK ||
            (rc = parse_type(file, t, kp, p)) != RSY_OK)
            return rc;
        d->n_types = i + 1;
    }
    return RSY_OK;
}

rsy_status rsy__disease_load(rsy_disease *d, const char *path)
{
    static const char *const keys[] = {
        "raresynth_prior", "name",    "display_name", "organ",   "modalities",
        "description",     "sources", "lesion_types", TYPE_KEYS, NULL};
    rsy__json_file f;
    char stem[RSY_NAME_MAX + 8];
    memset(d, 0, sizeof *d);
    if (strlen(path) >= sizeof d->path) {
        rsy_log_error("%.200s...: path longer than %d bytes", path, RSY_PATH_MAX - 1);
        return RSY_ECONFIG;
    }
    snprintf(d->path, sizeof d->path, "%s", path);
    rsy_prior *head = calloc(1, sizeof *head);
    if (!head)
        return RSY_ENOMEM;
    rsy_status rc = rsy__json_file_load(&f, path);
    if (rc != RSY_OK) {
        free(head);
        return rc;
    }
    const cJSON *root = f.root;
    if ((rc = rsy__cfg_check_object(path, "", root, keys)) != RSY_OK ||
        (rc = rsy__cfg_version(path, root, "raresynth_prior")) != RSY_OK ||
        (rc = rsy__cfg_ident(path, root, "", "name", 1, d->name)) != RSY_OK)
        goto done;
    rsy__path_stem(path, stem, sizeof stem);
    if (strcmp(stem, d->name) != 0) {
        rc =
            rsy__cfg_fail(path, "name", cJSON_GetObjectItemCaseSensitive(root, "name"),
                          "expected \"%s\", the file's stem (priors are found by file name)", stem);
        goto done;
    }
    snprintf(d->display_name, sizeof d->display_name, "%s", d->name);
    if ((rc = rsy__cfg_string(path, root, "", "display_name", 0, RSY_TEXT_MAX - 1,
                              d->display_name)) != RSY_OK ||
        (rc = rsy__cfg_ident(path, root, "", "organ", 1, d->organ)) != RSY_OK ||
        (rc = parse_modalities(path, root, &d->modalities)) != RSY_OK ||
        (rc = rsy__cfg_string(path, root, "", "description", 0, RSY_TEXT_MAX - 1,
                              d->description)) != RSY_OK ||
        (rc = rsy__cfg_sources(path, root, "", "sources", head->sources, &head->n_sources)) !=
            RSY_OK)
        goto done;
    /* The header every lesion type of the file shares. */
    snprintf(head->name, sizeof head->name, "%s", d->name);
    snprintf(head->disease, sizeof head->disease, "%s", d->name);
    snprintf(head->display_name, sizeof head->display_name, "%s", d->display_name);
    snprintf(head->organ, sizeof head->organ, "%s", d->organ);
    snprintf(head->path, sizeof head->path, "%s", d->path);
    head->modalities = d->modalities;
    if (cJSON_GetObjectItemCaseSensitive(root, "lesion_types")) {
        rc = parse_lesion_types(path, root, head, d);
    } else {
        d->types[0] = *head;
        rc = parse_type(path, root, "", &d->types[0]);
        d->n_types = rc == RSY_OK ? 1 : 0;
    }
done:
    free(head);
    rsy__json_file_clear(&f);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Public loaders                                                                             */
/* ---------------------------------------------------------------------------------------- */

rsy_status rsy_disease_load(rsy_disease **out, const char *path)
{
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    rsy_disease *d = malloc(sizeof *d);
    if (!d)
        return RSY_ENOMEM;
    rsy_status rc = rsy__disease_load(d, path);
    if (rc != RSY_OK) {
        free(d);
        return rc;
    }
    *out = d;
    return RSY_OK;
}

rsy_status rsy_prior_load(rsy_prior **out, const char *path)
{
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    rsy_disease *d = NULL;
    rsy_status rc = rsy_disease_load(&d, path);
    if (rc != RSY_OK)
        return rc;
    if (d->types[0].type_name[0] != '\0') {
        free(d);
        return rsy__cfg_fail(path, "lesion_types", NULL,
                             "expected one lesion type at the top level: a file with several "
                             "types is loaded with rsy_disease_load()");
    }
    rsy_prior *p = malloc(sizeof *p);
    if (!p) {
        free(d);
        return RSY_ENOMEM;
    }
    *p = d->types[0];
    free(d);
    *out = p;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Tissue names against the recipe's table                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Every name of @p list (key path @p parent.@p key) against the table. */
static rsy_status check_tissue_list(const rsy_prior *p, const char *parent, const char *key,
                                    const char list[][RSY_NAME_MAX], int n,
                                    const rsy_tissue_table *table, const char *table_path)
{
    char lkp[RSY__KEYPATH_MAX], kp[RSY__KEYPATH_MAX];
    rsy__kp_key(lkp, parent, key);
    for (int i = 0; i < n; i++) {
        if (rsy__tissue_index(table, list[i]) >= 0)
            continue;
        if (n == 1 && strcmp(key, "relative_to") == 0)
            snprintf(kp, sizeof kp, "%s", lkp);
        else
            rsy__kp_index(kp, lkp, i);
        return rsy__cfg_fail(p->path, kp, NULL, "no tissue \"%s\" in the tissue table \"%s\" (%s)",
                             list[i], table->name, table_path);
    }
    return RSY_OK;
}

rsy_status rsy__prior_check_tissues(const rsy_prior *p, const char *kp, unsigned modality,
                                    const rsy_tissue_table *table, const char *table_path)
{
    char pkp[RSY__KEYPATH_MAX], mkp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX], skp[RSY__KEYPATH_MAX];
    rsy_status rc;
    rsy__kp_key(pkp, kp, "placement");
    rsy__kp_key(mkp, kp, "mass_effect");
    if ((rc = check_tissue_list(p, pkp, "hosts", p->hosts, p->n_hosts, table, table_path)) !=
            RSY_OK ||
        (rc = check_tissue_list(p, pkp, "allowed_tissues", p->allowed, p->n_allowed, table,
                                table_path)) != RSY_OK ||
        (rc = check_tissue_list(p, pkp, "reference", p->reference, p->n_reference, table,
                                table_path)) != RSY_OK ||
        (rc = check_tissue_list(p, mkp, "fixed_tissues", p->mass_effect.fixed,
                                p->mass_effect.n_fixed, table, table_path)) != RSY_OK)
        return rc;
    for (int c = 0; c < p->n_compartments; c++) {
        const rsy_compartment *cm = &p->compartments[c];
        rsy__kp_key(skp, kp, "compartments");
        rsy__kp_index(ckp, skp, c);
        if ((rc = check_tissue_list(p, ckp, "confined_to", cm->confined_to, cm->n_confined, table,
                                    table_path)) != RSY_OK)
            return rc;
        /* Only the properties of the recipe's modality are read: check their tissue. */
        if (modality == RSY_PRIOR_MRI && cm->has_mri && cm->props_mode == RSY_PROPS_RELATIVE) {
            rsy__kp_key(skp, ckp, "mri");
            if ((rc = check_tissue_list(p, skp, "relative_to", &cm->relative_to, 1, table,
                                        table_path)) != RSY_OK)
                return rc;
        }
        if (modality == RSY_PRIOR_CT && cm->has_ct && cm->ct_mode == RSY_PROPS_RELATIVE) {
            rsy__kp_key(skp, ckp, "ct");
            if ((rc = check_tissue_list(p, skp, "relative_to", &cm->ct_relative_to, 1, table,
                                        table_path)) != RSY_OK)
                return rc;
        }
    }
    return RSY_OK;
}
