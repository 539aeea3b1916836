/*
 * recipe.c: recipes (configs/recipes/ *.json): loading, validation, lookup of the priors and
 * the tissue table they name, cross-checks, and the memory estimate. docs/recipe.md
 * documents every key, its unit, range and default.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_internal.h"
#include "core_internal.h"

#define DATASET_NAME_MAX 40
#define SEQUENCE_NAME_MAX 32
#define CASES_MAX 10000000
#define DIMS_MIN 16
#define DIMS_MAX 2048
#define EXACT_INT_MAX 9007199254740992.0 /* 2^53 */
#define MEMORY_OVERHEAD_BYTES (64ull << 20)

/* ---------------------------------------------------------------------------------------- */
/* Lookup of priors and tissue tables                                                         */
/* ---------------------------------------------------------------------------------------- */

static int regular_file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Directory part of @p path ("." when it has none). */
static void dir_of(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(slash - path), path);
}

static int has_suffix(const char *s, const char *ext)
{
    size_t n = strlen(s), e = strlen(ext);
    return n > e && strcmp(s + n - e, ext) == 0;
}

rsy_status rsy__resolve_ref(const char *file, const char *kp, const cJSON *item, const char *ref,
                            const char *recipe_dir, const char *const *search_dirs,
                            const char *subdir, const char *noun, char out[RSY_PATH_MAX])
{
    return rsy__resolve_ref_ext(file, kp, item, ref, recipe_dir, search_dirs, subdir, ".json", noun,
                                out);
}

rsy_status rsy__resolve_ref_ext(const char *file, const char *kp, const cJSON *item,
                                const char *ref, const char *recipe_dir,
                                const char *const *search_dirs, const char *subdir, const char *ext,
                                const char *noun, char out[RSY_PATH_MAX])
{
    int w;
    if (has_suffix(ref, ext)) {
        if (ref[0] == '/')
            w = snprintf(out, RSY_PATH_MAX, "%s", ref);
        else
            w = snprintf(out, RSY_PATH_MAX, "%s/%s", recipe_dir, ref);
        if (w < 0 || w >= RSY_PATH_MAX)
            return rsy__cfg_fail(file, kp, item, "expected a path shorter than %d bytes",
                                 RSY_PATH_MAX);
        if (!regular_file_exists(out))
            return rsy__cfg_fail(file, kp, NULL, "no %s file \"%s\" (looked for %s)", noun, ref,
                                 out);
        return RSY_OK;
    }
    if (!rsy__is_ident(ref))
        return rsy__cfg_fail(file, kp, item,
                             "expected a %s name of 1 to %d characters from [a-z0-9_-], or a "
                             "relative path ending in \"%s\"",
                             noun, RSY_NAME_MAX - 1, ext);

    char tried[1024];
    size_t k = 0;
    tried[0] = '\0';
    char dir[RSY_PATH_MAX];
    int n_search = 0;
    while (search_dirs && search_dirs[n_search])
        n_search++;
    /* Candidate i: 0 = beside the recipe, 1..2n = search dirs (with and without SUBDIR),
     * 2n+1 = the installed data directory. */
    for (int i = 0; i < 2 * n_search + 2; i++) {
        if (i == 0)
            w = snprintf(dir, sizeof dir, "%s/../%s", recipe_dir, subdir);
        else if (i <= 2 * n_search && (i % 2) == 1)
            w = snprintf(dir, sizeof dir, "%s/%s", search_dirs[(i - 1) / 2], subdir);
        else if (i <= 2 * n_search)
            w = snprintf(dir, sizeof dir, "%s", search_dirs[(i - 1) / 2]);
        else
            w = snprintf(dir, sizeof dir, "%s/%s", RSY_DATADIR, subdir);
        if (w < 0 || (size_t)w >= sizeof dir)
            continue;
        w = snprintf(out, RSY_PATH_MAX, "%s/%s%s", dir, ref, ext);
        if (w > 0 && w < RSY_PATH_MAX && regular_file_exists(out))
            return RSY_OK;
        if (k < sizeof tried) {
            int a = snprintf(tried + k, sizeof tried - k, "%s%s", k ? ", " : "", dir);
            if (a > 0)
                k += (size_t)a;
        }
    }
    out[0] = '\0';
    return rsy__cfg_fail(file, kp, NULL, "no %s named \"%s\" (looked in %s)", noun, ref, tried);
}

/* ---------------------------------------------------------------------------------------- */
/* Top-level scalars                                                                          */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_name(const char *file, const cJSON *root, char out[RSY_NAME_MAX])
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!item)
        return rsy__cfg_fail(file, "name", NULL, "required key missing");
    int ok = cJSON_IsString(item);
    size_t n = ok ? strlen(item->valuestring) : 0;
    ok = ok && n >= 1 && n <= DATASET_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = item->valuestring[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    }
    if (!ok)
        return rsy__cfg_fail(file, "name", item,
                             "expected a dataset name of 1 to %d characters from [A-Za-z0-9]",
                             DATASET_NAME_MAX);
    memcpy(out, item->valuestring, n + 1);
    return RSY_OK;
}

/* The seed: a decimal string of a uint64 (JSON numbers are doubles, exact only to 2^53,
 * reference/formats.md), or a JSON integer <= 2^53. */
static rsy_status parse_seed(const char *file, const cJSON *root, uint64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "seed");
    *out = 0;
    if (!item)
        return RSY_OK;
    if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        if (v >= 0.0 && v <= EXACT_INT_MAX && v == floor(v)) {
            *out = (uint64_t)v;
            return RSY_OK;
        }
    } else if (cJSON_IsString(item)) {
        const char *s = item->valuestring;
        size_t n = strlen(s);
        uint64_t v = 0;
        int ok = n >= 1 && n <= 20;
        for (size_t i = 0; ok && i < n; i++) {
            if (s[i] < '0' || s[i] > '9') {
                ok = 0;
                break;
            }
            uint64_t d = (uint64_t)(s[i] - '0');
            if (v > (UINT64_MAX - d) / 10u)
                ok = 0;
            else
                v = v * 10u + d;
        }
        if (ok) {
            *out = v;
            return RSY_OK;
        }
    }
    return rsy__cfg_fail(file, "seed", item,
                         "expected a decimal string of an unsigned 64-bit integer "
                         "(\"0\" to \"18446744073709551615\") or a JSON integer in [0, 2^53]");
}

/* ---------------------------------------------------------------------------------------- */
/* Phantom                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_dims(const char *file, const cJSON *ph, int64_t dims[3])
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(ph, "dims");
    if (!item)
        return RSY_OK;
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 3)
        return rsy__cfg_fail(file, "phantom.dims", item,
                             "expected an array of 3 integers in [%d, %d]", DIMS_MIN, DIMS_MAX);
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        char kp[RSY__KEYPATH_MAX];
        rsy__kp_index(kp, "phantom.dims", i);
        rsy_status rc = rsy__cfg_int_item(file, e, kp, DIMS_MIN, DIMS_MAX, &dims[i]);
        if (rc != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

static rsy_status parse_spacing(const char *file, const cJSON *ph, double spacing_mm[3])
{
    static const rsy__range r = {0.1, 10.0, 1, 0};
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(ph, "spacing_mm");
    if (!item)
        return RSY_OK;
    if (cJSON_IsNumber(item)) {
        rsy_status rc = rsy__cfg_number_item(file, item, "phantom.spacing_mm", r, &spacing_mm[0]);
        spacing_mm[1] = spacing_mm[2] = spacing_mm[0];
        return rc;
    }
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 3)
        return rsy__cfg_fail(file, "phantom.spacing_mm", item,
                             "expected a number in (0.1, 10] or an array of 3 such numbers");
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        char kp[RSY__KEYPATH_MAX];
        rsy__kp_index(kp, "phantom.spacing_mm", i);
        rsy_status rc = rsy__cfg_number_item(file, e, kp, r, &spacing_mm[i]);
        if (rc != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

static rsy_status parse_age(const char *file, const cJSON *ph, rsy_phantom_spec *s)
{
    static const rsy__range r = {18.0, 100.0, 0, 0};
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(ph, "age_years");
    if (!item)
        return RSY_OK;
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2)
        return rsy__cfg_fail(file, "phantom.age_years", item,
                             "expected [min, max] with 18 <= min <= max <= 100");
    rsy_status rc;
    if ((rc = rsy__cfg_number_item(file, item->child, "phantom.age_years[0]", r,
                                   &s->age_min_years)) != RSY_OK ||
        (rc = rsy__cfg_number_item(file, item->child->next, "phantom.age_years[1]", r,
                                   &s->age_max_years)) != RSY_OK)
        return rc;
    if (s->age_min_years > s->age_max_years)
        return rsy__cfg_fail(file, "phantom.age_years", item,
                             "expected [min, max] with min <= max");
    return RSY_OK;
}

static rsy_status parse_phantom(const char *file, const cJSON *root, rsy_phantom_spec *s)
{
    static const char *const keys[] = {
        "family",    "dims",           "spacing_mm",           "sex", "female_fraction",
        "age_years", "deformation_mm", "deformation_scale_mm", NULL};
    /* Families the generator may know (phantoms/family.c registers them; a family the build
     * does not register fails cleanly at generation). */
    static const char *const families[] = {"head", "thorax", "abdomen", NULL};
    static const char *const sexes[] = {"random", "female", "male", NULL};
    static const rsy__range unit = {0.0, 1.0, 0, 0};
    static const rsy__range deformation = {0.0, 20.0, 0, 0};
    static const rsy__range deformation_scale = {5.0, 500.0, 1, 0};
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(root, "phantom");
    if (!ph)
        return rsy__cfg_fail(file, "phantom", NULL, "required key missing");
    rsy_status rc = rsy__cfg_check_object(file, "phantom", ph, keys);
    if (rc != RSY_OK)
        return rc;
    /* Defaults (docs/recipe.md): 128^3 voxels of 1.75 mm, a 224 mm field of view that holds
     * an adult head. */
    for (int i = 0; i < 3; i++) {
        s->dims[i] = 128;
        s->spacing_mm[i] = 1.75;
    }
    s->female_fraction = 0.5;
    s->age_min_years = 20.0;
    s->age_max_years = 80.0;
    s->deformation_mm = 2.0;
    s->deformation_scale_mm = 40.0;
    int family = 0, sex = 0;
    if ((rc = rsy__cfg_enum(file, ph, "phantom", "family", 1, families, &family)) != RSY_OK ||
        (rc = parse_dims(file, ph, s->dims)) != RSY_OK ||
        (rc = parse_spacing(file, ph, s->spacing_mm)) != RSY_OK ||
        (rc = rsy__cfg_enum(file, ph, "phantom", "sex", 0, sexes, &sex)) != RSY_OK ||
        (rc = rsy__cfg_number(file, ph, "phantom", "female_fraction", 0, unit,
                              &s->female_fraction)) != RSY_OK ||
        (rc = parse_age(file, ph, s)) != RSY_OK ||
        (rc = rsy__cfg_number(file, ph, "phantom", "deformation_mm", 0, deformation,
                              &s->deformation_mm)) != RSY_OK ||
        (rc = rsy__cfg_number(file, ph, "phantom", "deformation_scale_mm", 0, deformation_scale,
                              &s->deformation_scale_mm)) != RSY_OK)
        return rc;
    snprintf(s->family, sizeof s->family, "%s", families[family]);
    s->sex = sex == 1 ? RSY_SEX_FEMALE : sex == 2 ? RSY_SEX_MALE : RSY_SEX_RANDOM;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Acquisition                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* A key that only one sequence type takes: required for it, refused for the others.
 * *item_out is the key's value (NULL when absent), @p ckp its key path. */
static rsy_status type_specific(const char *file, const cJSON *sq, const char *kp, const char *key,
                                int applies, const char *type_name, const cJSON **item_out,
                                char ckp[RSY__KEYPATH_MAX])
{
    rsy__kp_key(ckp, kp, key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(sq, key);
    *item_out = item;
    if (applies && !item)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing (type \"%s\")", type_name);
    if (!applies && item)
        return rsy__cfg_fail(file, ckp, item, "expected no %s: it only applies to type \"%s\"", key,
                             type_name);
    return RSY_OK;
}

/* A time in (0, tr_ms): echo and inversion times. */
static rsy_status time_below_tr(const char *file, const cJSON *item, const char *ckp, double tr_ms,
                                double *out)
{
    static const rsy__range positive = {0.0, INFINITY, 1, 1};
    rsy_status rc = rsy__cfg_number_item(file, item, ckp, positive, out);
    if (rc != RSY_OK)
        return rc;
    if (!(*out < tr_ms))
        return rsy__cfg_fail(file, ckp, item, "expected a number < tr_ms (%g)", tr_ms);
    return RSY_OK;
}

static rsy_status parse_sequence(const char *file, const cJSON *sq, const char *kp, rsy_sequence *s)
{
    static const char *const keys[] = {
        "name",     "type",     "tr_ms",         "te_ms",           "ti_ms",
        "flip_deg", "contrast", "noise_percent", "noise_reference", NULL};
    static const char *const types[] = {"spin_echo", "inversion_recovery", "spoiled_gre", NULL};
    static const rsy__range positive = {0.0, INFINITY, 1, 1};
    static const rsy__range noise = {0.0, 50.0, 0, 0};
    static const rsy__range flip = {0.0, 180.0, 1, 1};
    char ckp[RSY__KEYPATH_MAX];
    const cJSON *item;
    rsy_status rc = rsy__cfg_check_object(file, kp, sq, keys);
    if (rc != RSY_OK)
        return rc;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(sq, "name");
    rsy__kp_key(ckp, kp, "name");
    if (!name)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    if (!cJSON_IsString(name) || !rsy__name_ok(name->valuestring, SEQUENCE_NAME_MAX))
        return rsy__cfg_fail(file, ckp, name,
                             "expected a sequence name of 1 to %d characters from "
                             "[A-Za-z0-9_-]",
                             SEQUENCE_NAME_MAX);
    snprintf(s->name, sizeof s->name, "%s", name->valuestring);
    int type = 0;
    s->noise_percent = 3.0; /* BrainWeb standard noise level, domain.md 2.3 [S47] */
    snprintf(s->noise_reference, sizeof s->noise_reference, "white_matter");
    if ((rc = rsy__cfg_enum(file, sq, kp, "type", 1, types, &type)) != RSY_OK ||
        (rc = rsy__cfg_number(file, sq, kp, "tr_ms", 1, positive, &s->tr_ms)) != RSY_OK)
        return rc;
    s->kind = (rsy_sequence_kind)type;
    rsy__kp_key(ckp, kp, "te_ms");
    item = cJSON_GetObjectItemCaseSensitive(sq, "te_ms");
    if (!item)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    if ((rc = time_below_tr(file, item, ckp, s->tr_ms, &s->te_ms)) != RSY_OK)
        return rc;
    if ((rc = type_specific(file, sq, kp, "ti_ms", s->kind == RSY_SEQ_INVERSION_RECOVERY,
                            "inversion_recovery", &item, ckp)) != RSY_OK ||
        (item && (rc = time_below_tr(file, item, ckp, s->tr_ms, &s->ti_ms)) != RSY_OK))
        return rc;
    if ((rc = type_specific(file, sq, kp, "flip_deg", s->kind == RSY_SEQ_SPOILED_GRE, "spoiled_gre",
                            &item, ckp)) != RSY_OK ||
        (item && (rc = rsy__cfg_number_item(file, item, ckp, flip, &s->flip_deg)) != RSY_OK))
        return rc;
    if ((rc = rsy__cfg_bool(file, sq, kp, "contrast", 0, &s->contrast)) != RSY_OK ||
        (rc = rsy__cfg_number(file, sq, kp, "noise_percent", 0, noise, &s->noise_percent)) !=
            RSY_OK ||
        (rc = rsy__cfg_ident(file, sq, kp, "noise_reference", 0, s->noise_reference)) != RSY_OK)
        return rc;
    return RSY_OK;
}

static rsy_status parse_sequences(const char *file, const cJSON *acq, rsy_mri_spec *m,
                                  const rsy_tissue_table *table, const char *table_path)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(acq, "sequences");
    if (!arr)
        return rsy__cfg_fail(file, "acquisition.sequences", NULL, "required key missing");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n < 1 || n > RSY_MAX_SEQUENCES)
        return rsy__cfg_fail(file, "acquisition.sequences", arr,
                             "expected an array of 1 to %d sequence objects", RSY_MAX_SEQUENCES);
    int i = 0;
    for (const cJSON *sq = arr->child; sq; sq = sq->next, i++) {
        char kp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX];
        rsy__kp_index(kp, "acquisition.sequences", i);
        rsy_sequence *s = &m->sequences[i];
        rsy_status rc = parse_sequence(file, sq, kp, s);
        if (rc != RSY_OK)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(m->sequences[j].name, s->name) == 0) {
                rsy__kp_key(ckp, kp, "name");
                return rsy__cfg_fail(file, ckp, NULL,
                                     "duplicate sequence name \"%s\" (also "
                                     "acquisition.sequences[%d]); names must be unique",
                                     s->name, j);
            }
        if (rsy__tissue_index(table, s->noise_reference) < 0) {
            rsy__kp_key(ckp, kp, "noise_reference");
            return rsy__cfg_fail(file, ckp, NULL,
                                 "no tissue \"%s\" in the tissue table \"%s\" (%s)",
                                 s->noise_reference, table->name, table_path);
        }
        m->n_sequences = i + 1;
    }
    return RSY_OK;
}

static rsy_status parse_bias(const char *file, const cJSON *acq, rsy_mri_spec *m)
{
    static const char *const keys[] = {"amplitude", "scale_mm", NULL};
    static const rsy__range amplitude = {0.0, 0.5, 0, 0};
    static const rsy__range scale = {10.0, 10000.0, 1, 0};
    /* BrainWeb "20% INU": a multiplicative field of 0.90-1.10, domain.md 2.3 [S47]. */
    m->bias_amplitude = 0.1;
    m->bias_scale_mm = 120.0;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(acq, "bias_field");
    if (!b)
        return RSY_OK;
    rsy_status rc = rsy__cfg_check_object(file, "acquisition.bias_field", b, keys);
    if (rc != RSY_OK)
        return rc;
    if ((rc = rsy__cfg_number(file, b, "acquisition.bias_field", "amplitude", 0, amplitude,
                              &m->bias_amplitude)) != RSY_OK)
        return rc;
    return rsy__cfg_number(file, b, "acquisition.bias_field", "scale_mm", 0, scale,
                           &m->bias_scale_mm);
}

static rsy_status parse_acquisition(const char *file, const cJSON *root, rsy_recipe *r,
                                    const char *recipe_dir, const char *const *search_dirs,
                                    char table_path[RSY_PATH_MAX])
{
    static const char *const keys[] = {
        "modality",   "field_strength_T", "tissues", "contrast_agent_r1",
        "bias_field", "sequences",        NULL};
    static const char *const ct_keys[] = {"scanner", "phase", "doses", "noise_model", NULL};
    static const char *const modalities[] = {"mri", "ct", NULL};
    static const rsy__range field = {1.0, 3.5, 0, 0};
    static const rsy__range r1 = {0.0, 100.0, 1, 0};
    const char *kp = "acquisition";
    const cJSON *acq = cJSON_GetObjectItemCaseSensitive(root, kp);
    if (!acq)
        return rsy__cfg_fail(file, kp, NULL, "required key missing");
    int modality = 0;
    rsy_status rc = rsy__cfg_enum(file, acq, kp, "modality", 1, modalities, &modality);
    if (rc != RSY_OK)
        return rc;
    if (modality == 1)
        return rsy__recipe_parse_ct(file, acq, r, recipe_dir, search_dirs, table_path);
    for (int i = 0; ct_keys[i]; i++) {
        char ckp[RSY__KEYPATH_MAX];
        rsy__kp_key(ckp, kp, ct_keys[i]);
        if (cJSON_GetObjectItemCaseSensitive(acq, ct_keys[i]))
            return rsy__cfg_fail(file, ckp, NULL,
                                 "a CT key, not allowed when acquisition.modality is \"mri\"");
    }
    if ((rc = rsy__cfg_check_object(file, kp, acq, keys)) != RSY_OK)
        return rc;
    rsy_mri_spec *m = &r->mri;
    char tissues[RSY_PATH_MAX] = "mri-brain";
    m->field_t = 3.0;
    /* Gd-DTPA r1 ~ 4 /(mM s) at 1.5 T (GK), domain.md 2.1. */
    m->gd_r1_per_mM_s = 4.0;
    if ((rc = rsy__cfg_number(file, acq, kp, "field_strength_T", 0, field, &m->field_t)) !=
            RSY_OK ||
        (rc = rsy__cfg_string(file, acq, kp, "tissues", 0, RSY_PATH_MAX - 1, tissues)) != RSY_OK ||
        (rc = rsy__cfg_number(file, acq, kp, "contrast_agent_r1", 0, r1, &m->gd_r1_per_mM_s)) !=
            RSY_OK ||
        (rc = parse_bias(file, acq, m)) != RSY_OK)
        return rc;
    snprintf(r->modality, sizeof r->modality, "%s", modalities[modality]);
    rc = rsy__resolve_ref(file, "acquisition.tissues",
                          cJSON_GetObjectItemCaseSensitive(acq, "tissues"), tissues, recipe_dir,
                          search_dirs, "tissues", "tissue table", table_path);
    if (rc != RSY_OK)
        return rc;
    rc = rsy__tissue_table_load(&r->tissues, table_path);
    if (rc != RSY_OK)
        return rc;
    for (int i = 0; i < r->tissues.n_tissues; i++) {
        if (r->tissues.tissues[i].has_mri)
            continue;
        char tkp[RSY__KEYPATH_MAX];
        rsy__kp_key(tkp, "tissues", r->tissues.tissues[i].name);
        return rsy__cfg_fail(table_path, tkp, NULL,
                             "no MRI properties (\"1.5T\", \"3T\"), which the MRI recipe %s "
                             "needs",
                             file);
    }
    return parse_sequences(file, acq, m, &r->tissues, table_path);
}

/* ---------------------------------------------------------------------------------------- */
/* Lesions                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Split a lesions[].prior value into the file reference and an optional lesion type: "stem/type"
 * and "path.json/type" select one type of the disease file; any other value is a reference as a
 * whole (and "" in @p type). */
static void split_type(const char *ref, char file_ref[RSY_PATH_MAX], char type[RSY_NAME_MAX])
{
    snprintf(file_ref, RSY_PATH_MAX, "%s", ref);
    type[0] = '\0';
    const char *slash = strrchr(ref, '/');
    if (!slash || !rsy__is_ident(slash + 1))
        return;
    char head[RSY_PATH_MAX];
    snprintf(head, sizeof head, "%.*s", (int)(slash - ref), ref);
    if (!rsy__is_ident(head) && !has_suffix(head, ".json"))
        return;
    snprintf(file_ref, RSY_PATH_MAX, "%s", head);
    snprintf(type, RSY_NAME_MAX, "%s", slash + 1);
}

/* The recipe's overrides of a lesion entry that resolves to one type, merged into @p ls. */
static rsy_status apply_overrides(const char *file, const cJSON *item, const char *kp,
                                  rsy_lesion_spec *ls)
{
    static const rsy__range unit = {0.0, 1.0, 0, 0};
    char ckp[RSY__KEYPATH_MAX];
    rsy_prior *p = &ls->prior;
    rsy_status rc = rsy__cfg_number(file, item, kp, "probability", 0, unit, &ls->probability);
    if (rc != RSY_OK)
        return rc;
    p->probability = ls->probability;
    /* Overrides merge into the prior's distributions (docs/recipe.md, "Overrides"). */
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(item, "count");
    if (count) {
        rsy__kp_key(ckp, kp, "count");
        if ((rc = rsy__cfg_dist(file, count, ckp, &rsy__rules_count, &p->count, &p->count)) !=
            RSY_OK)
            return rc;
    }
    const cJSON *diam = cJSON_GetObjectItemCaseSensitive(item, "diameter_mm");
    if (diam) {
        rsy__kp_key(ckp, kp, "diameter_mm");
        if ((rc = rsy__cfg_dist(file, diam, ckp, &rsy__rules_diameter_mm, &p->diameter_mm,
                                &p->diameter_mm)) != RSY_OK)
            return rc;
        double need_mm;
        int c = rsy__prior_size_conflict(p, &need_mm);
        if (c >= 0)
            return rsy__cfg_fail(file, ckp, NULL,
                                 "expected a distribution that can draw diameters above %g mm "
                                 "(compartment \"%s\" of \"%s\" needs them)",
                                 need_mm, p->compartments[c].name, p->name);
    }
    return RSY_OK;
}

/* Add lesion type @p p of the entry lesions[@p entry] (key path @p kp) to the recipe: modality
 * and tissue checks, then the spec with the recipe's overrides when the entry has one type.
 * @p tkp is the type's key path in its file ("" or "lesion_types[2]"); @p entry_of maps each
 * spec so far to its entry. */
static rsy_status add_lesion_type(const char *file, const cJSON *item, const char *kp,
                                  rsy_recipe *r, int entry, int *entry_of, const rsy_prior *p,
                                  const char *tkp, int single, const char *table_path)
{
    char pkp[RSY__KEYPATH_MAX], ckp[RSY__KEYPATH_MAX], skp[RSY__KEYPATH_MAX];
    int ct = strcmp(r->modality, "ct") == 0;
    unsigned modality = ct ? RSY_PRIOR_CT : RSY_PRIOR_MRI;
    rsy__kp_key(pkp, kp, "prior");
    for (int j = 0; j < r->n_lesion_types; j++)
        if (strcmp(r->lesions[j].prior.name, p->name) == 0)
            return rsy__cfg_fail(file, pkp, NULL,
                                 "lesion type \"%s\" is already used by lesions[%d] (each "
                                 "lesion type may appear once: its compartments become labels)",
                                 p->name, entry_of[j]);
    /* The disease lists the modality (checked by the caller); each compartment must then have
     * its properties, which the prior loader guarantees: checked again here because the
     * generator relies on it. */
    for (int c = 0; c < p->n_compartments; c++)
        if (!(ct ? p->compartments[c].has_ct : p->compartments[c].has_mri)) {
            rsy__kp_key(skp, tkp, "compartments");
            rsy__kp_index(ckp, skp, c);
            return rsy__cfg_fail(p->path, ckp, NULL,
                                 "no \"%s\" properties, which the %s recipe %s needs",
                                 ct ? "ct" : "mri", ct ? "CT" : "MRI", file);
        }
    rsy_status rc = rsy__prior_check_tissues(p, tkp, modality, &r->tissues, table_path);
    if (rc != RSY_OK)
        return rc;
    rsy_lesion_spec *ls = &r->lesions[r->n_lesion_types];
    ls->prior = *p;
    ls->probability = p->probability;
    if (single && (rc = apply_overrides(file, item, kp, ls)) != RSY_OK)
        return rc;
    entry_of[r->n_lesion_types] = entry;
    r->n_lesion_types++;
    return RSY_OK;
}

/* The lesion types of @p d an entry takes: all of them, or the one named @p type. */
static rsy_status select_types(const char *file, const char *pkp, const cJSON *prior_item,
                               const rsy_disease *d, const char *type, int *first, int *n_sel)
{
    *first = 0;
    *n_sel = d->n_types;
    if (!type[0])
        return RSY_OK;
    if (d->types[0].type_name[0] == '\0')
        return rsy__cfg_fail(file, pkp, prior_item,
                             "expected no \"/%s\": %s holds one lesion type at its top level "
                             "(no \"lesion_types\" to choose from)",
                             type, d->path);
    char list[512];
    size_t k = 0;
    list[0] = '\0';
    for (int i = 0; i < d->n_types; i++) {
        if (strcmp(d->types[i].type_name, type) == 0) {
            *first = i;
            *n_sel = 1;
            return RSY_OK;
        }
        if (k < sizeof list) {
            int w = snprintf(list + k, sizeof list - k, "%s\"%s\"", i ? ", " : "",
                             d->types[i].type_name);
            if (w > 0)
                k += (size_t)w;
        }
    }
    return rsy__cfg_fail(file, pkp, prior_item, "no lesion type \"%s\" in %s (its types: %s)", type,
                         d->path, list);
}

static rsy_status parse_lesion(const char *file, const cJSON *item, const char *kp, rsy_recipe *r,
                               int entry, int *entry_of, const char *recipe_dir,
                               const char *const *search_dirs, const char *table_path)
{
    static const char *const keys[] = {"prior", "probability", "count", "diameter_mm", NULL};
    static const char *const overrides[] = {"probability", "count", "diameter_mm", NULL};
    char pkp[RSY__KEYPATH_MAX], okp[RSY__KEYPATH_MAX];
    char ref[RSY_PATH_MAX], file_ref[RSY_PATH_MAX], type[RSY_NAME_MAX];
    char prior_path[RSY_PATH_MAX];
    rsy_status rc = rsy__cfg_check_object(file, kp, item, keys);
    if (rc != RSY_OK)
        return rc;
    if ((rc = rsy__cfg_string(file, item, kp, "prior", 1, RSY_PATH_MAX - 1, ref)) != RSY_OK)
        return rc;
    rsy__kp_key(pkp, kp, "prior");
    const cJSON *prior_item = cJSON_GetObjectItemCaseSensitive(item, "prior");
    split_type(ref, file_ref, type);
    rc = rsy__resolve_ref(file, pkp, prior_item, file_ref, recipe_dir, search_dirs, "priors",
                          "prior", prior_path);
    if (rc != RSY_OK)
        return rc;
    rsy_disease *d = malloc(sizeof *d);
    if (!d)
        return RSY_ENOMEM;
    int first = 0, n_sel = 0;
    if ((rc = rsy__disease_load(d, prior_path)) != RSY_OK ||
        (rc = select_types(file, pkp, prior_item, d, type, &first, &n_sel)) != RSY_OK)
        goto done;
    if (n_sel > 1)
        for (int i = 0; overrides[i]; i++)
            if (cJSON_GetObjectItemCaseSensitive(item, overrides[i])) {
                rsy__kp_key(okp, kp, overrides[i]);
                rc = rsy__cfg_fail(file, okp, NULL,
                                   "expected no override on an entry that takes %d lesion types "
                                   "(\"%s\" has %d): name one type, e.g. \"%s\"",
                                   n_sel, d->name, d->n_types, d->types[0].name);
                goto done;
            }
    if (r->n_lesion_types + n_sel > RSY_MAX_LESION_TYPES) {
        rc = rsy__cfg_fail(file, pkp, NULL,
                           "expected at most %d lesion types per recipe (\"%s\" brings %d to "
                           "the %d before it)",
                           RSY_MAX_LESION_TYPES, ref, n_sel, r->n_lesion_types);
        goto done;
    }
    {
        int ct = strcmp(r->modality, "ct") == 0;
        if (!(d->modalities & (ct ? RSY_PRIOR_CT : RSY_PRIOR_MRI))) {
            rc = rsy__cfg_fail(file, pkp, NULL,
                               "prior \"%s\" (%s) has no \"%s\" in its modalities, but the "
                               "recipe images with %s",
                               d->name, prior_path, ct ? "ct" : "mri", ct ? "CT" : "MRI");
            goto done;
        }
    }
    for (int k = first; k < first + n_sel; k++) {
        char tkp[RSY__KEYPATH_MAX] = "";
        if (d->types[k].type_name[0])
            rsy__kp_index(tkp, "lesion_types", k);
        rc = add_lesion_type(file, item, kp, r, entry, entry_of, &d->types[k], tkp, n_sel == 1,
                             table_path);
        if (rc != RSY_OK)
            goto done;
    }
done:
    free(d);
    return rc;
}

static rsy_status parse_lesions(const char *file, const cJSON *root, rsy_recipe *r,
                                const char *recipe_dir, const char *const *search_dirs,
                                const char *table_path)
{
    int entry_of[RSY_MAX_LESION_TYPES];
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "lesions");
    r->n_lesion_types = 0;
    if (!arr)
        return RSY_OK;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (n < 0 || n > RSY_MAX_LESION_TYPES)
        return rsy__cfg_fail(file, "lesions", arr, "expected an array of 0 to %d lesion objects",
                             RSY_MAX_LESION_TYPES);
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char kp[RSY__KEYPATH_MAX];
        rsy__kp_index(kp, "lesions", i);
        rsy_status rc =
            parse_lesion(file, e, kp, r, i, entry_of, recipe_dir, search_dirs, table_path);
        if (rc != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Texture and output                                                                         */
/* ---------------------------------------------------------------------------------------- */

/* An optional object holding one enumerated key. */
static rsy_status parse_choice_object(const char *file, const cJSON *root, const char *name,
                                      const char *key, const char *const *choices, int *out)
{
    const char *const keys[] = {key, NULL};
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, name);
    *out = 0;
    if (!obj)
        return RSY_OK;
    rsy_status rc = rsy__cfg_check_object(file, name, obj, keys);
    if (rc != RSY_OK)
        return rc;
    return rsy__cfg_enum(file, obj, name, key, 0, choices, out);
}

/* ---------------------------------------------------------------------------------------- */
/* Public                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static rsy_status parse_recipe(const char *file, const cJSON *root, rsy_recipe *r,
                               const char *const *search_dirs)
{
    static const char *const keys[] = {
        "raresynth_recipe", "name",    "dataset_id",  "description", "cases",  "seed",
        "phantom",          "lesions", "acquisition", "texture",     "output", NULL};
    static const char *const label_sets[] = {"lesions", "tissues+lesions", NULL};
    char recipe_dir[RSY_PATH_MAX];
    char table_path[RSY_PATH_MAX];
    int64_t dataset_id = 0;
    int labels = 0;
    rsy_status rc;
    dir_of(file, recipe_dir, sizeof recipe_dir);
    r->cases = 10;
    if ((rc = rsy__cfg_check_object(file, "", root, keys)) != RSY_OK ||
        (rc = rsy__cfg_version(file, root, "raresynth_recipe")) != RSY_OK ||
        (rc = parse_name(file, root, r->name)) != RSY_OK ||
        (rc = rsy__cfg_int(file, root, "", "dataset_id", 1, 1, 999, &dataset_id)) != RSY_OK ||
        (rc = rsy__cfg_string(file, root, "", "description", 0, RSY_TEXT_MAX - 1,
                              r->description)) != RSY_OK ||
        (rc = rsy__cfg_int(file, root, "", "cases", 0, 1, CASES_MAX, &r->cases)) != RSY_OK ||
        (rc = parse_seed(file, root, &r->seed)) != RSY_OK ||
        (rc = parse_phantom(file, root, &r->phantom)) != RSY_OK ||
        (rc = parse_acquisition(file, root, r, recipe_dir, search_dirs, table_path)) != RSY_OK ||
        (rc = parse_lesions(file, root, r, recipe_dir, search_dirs, table_path)) != RSY_OK ||
        (rc = rsy__recipe_parse_texture(file, root, r, recipe_dir, search_dirs)) != RSY_OK ||
        (rc = parse_choice_object(file, root, "output", "labels", label_sets, &labels)) != RSY_OK)
        return rc;
    r->dataset_id = (int)dataset_id;
    r->label_set = labels == 1 ? RSY_LABELS_TISSUES_AND_LESIONS : RSY_LABELS_LESIONS;
    return RSY_OK;
}

rsy_status rsy_recipe_load(rsy_recipe **out, const char *path, const char *const *search_dirs)
{
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    rsy_status rc0 = rsy_init(); /* GSL's abort-on-error handler off before any GSL call */
    if (rc0 != RSY_OK)
        return rc0;
    if (strlen(path) >= RSY_PATH_MAX) {
        rsy_log_error("%.200s...: path longer than %d bytes", path, RSY_PATH_MAX - 1);
        return RSY_EINVAL;
    }
    rsy_recipe *r = calloc(1, sizeof *r);
    if (!r)
        return RSY_ENOMEM;
    rsy__json_file f;
    memset(&f, 0, sizeof f);
    rsy_status rc = rsy__json_file_load(&f, path);
    if (rc != RSY_OK)
        goto fail;
    snprintf(r->path, sizeof r->path, "%s", path);
    rsy_sha256_hex(f.text, f.len, r->sha256);
    rc = parse_recipe(path, f.root, r, search_dirs);
    if (rc != RSY_OK)
        goto fail;
    r->json = f.text; /* the recipe keeps the file's text for the dataset manifest */
    f.text = NULL;
    rsy__json_file_clear(&f);
    *out = r;
    return RSY_OK;
fail:
    rsy__json_file_clear(&f);
    rsy_recipe_destroy(r);
    return rc;
}

void rsy_recipe_destroy(rsy_recipe *r)
{
    if (!r)
        return;
    free(r->json);
    free(r);
}

/* a * b, saturating at UINT64_MAX. */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

uint64_t rsy_recipe_memory_estimate(const rsy_recipe *r, int n_workers)
{
    /*
     * One formula, an upper bound of what a case in flight holds at its peak, per voxel:
     *     2 working class map (uint16) + 2 instance map (uint16) + 1 output labels (uint8)
     *   + 16 MRI property maps (float32 T1, T2, PD, Gd)
     *   + 4 per channel (float32 image of each sequence)
     *   + 4 bias field (float32)
     *   + 4 gzip export buffer, at most the largest volume (a float32 channel)
     *   = 29 + 4 * n_sequences bytes per voxel,
     * times the cases in flight (n_workers, at least 1), plus a fixed 64 MiB for everything
     * that does not scale with the grid (recipe and priors, thread stacks, zlib and NIfTI
     * writer state, manifests).
     * A sampled texture (model "preset") adds per voxel 4 for the field u and 12 for the
     * sampler's three state-sized buffers (generator/texture_sample.c), plus 16 bytes per
     * tiling cell of p³ voxels (cell list and classes, generator/texture_denoise.c); and per
     * case the denoiser's scratch, 2048 patches × p³ × (components + 2) floats.
     * A fitted model (model "fitted") is read by the generator, not here, so its patch size and
     * component count are bounded by the largest the format allows (p = 1 for the per-cell
     * term, p = RSY_TEXTURE_MAX_PATCH = 9 with 16 components for the scratch, about 107 MB).
     * Lesions (issue 5) add per voxel, when any lesion type of the recipe needs them: 8 for a
     * distance map to reference tissues (a distance rule, or a radial/tangential orientation;
     * double precision), and 16 for mass effect (a float32 displacement field, 12, and the
     * warped copies of the class and instance maps, 4).
     */
    if (!r)
        return 0;
    uint64_t nvox = 1;
    for (int i = 0; i < 3; i++)
        nvox = mul_sat(nvox, r->phantom.dims[i] > 0 ? (uint64_t)r->phantom.dims[i] : 0);
    uint64_t per_voxel = 29u + 4u * (uint64_t)(r->mri.n_sequences > 0 ? r->mri.n_sequences : 0);
    uint64_t per_case_fixed = 0;
    int distance = 0, mass_effect = 0;
    for (int i = 0; i < r->n_lesion_types; i++) {
        const rsy_prior *p = &r->lesions[i].prior;
        distance |= p->rule != RSY_PLACE_HOST_TISSUE || p->orientation != RSY_ORIENT_RANDOM;
        mass_effect |= p->mass_effect.enabled;
    }
    uint64_t lesion_per_voxel = (distance ? 8u : 0u) + (mass_effect ? 16u : 0u);
    if (strcmp(r->modality, "ct") == 0) {
        /*
         * CT instead of the MRI maps: 5 (class, instance and label maps as above) + 4 HU map
         * (float32) + 4 the channel being reconstructed (float32) + 8 the finishing step's
         * float32 working copies (slice profile and PSF) + 4 gzip export buffer, plus 2 per dose
         * channel (int16) = 25 + 2 * n_doses bytes per voxel; and per case one slice's
         * sinogram, filtered views and back-projection scratch, bounded by 16 bytes per view and
         * bin with the default geometry (bins ~ √2·N, views ~ (π/2)·bins, docs/ct.md).
         */
        uint64_t n_doses = (uint64_t)(r->ct.n_doses > 0 ? r->ct.n_doses : 0);
        per_voxel = 25u + 2u * n_doses;
        double nx = (double)r->phantom.dims[0], ny = (double)r->phantom.dims[1];
        double bins = r->ct.scanner.n_det > 0 ? r->ct.scanner.n_det : ceil(sqrt(nx * nx + ny * ny));
        double views = r->ct.scanner.n_views > 0 ? r->ct.scanner.n_views : ceil(1.5708 * bins);
        per_case_fixed = (uint64_t)(16.0 * 2.0 * bins * views);
    }
    if (r->texture == RSY_TEXTURE_PRESET) {
        const rsy_texture_preset *tp = &r->texture_spec.preset;
        uint64_t cell =
            (uint64_t)tp->patch_size * (uint64_t)tp->patch_size * (uint64_t)tp->patch_size;
        int k_max = 1;
        for (int c = 0; c < tp->n_classes; c++)
            if (tp->classes[c].n_components > k_max)
                k_max = tp->classes[c].n_components;
        per_voxel += 16u + (cell > 0 ? (16u + cell - 1u) / cell : 16u);
        per_case_fixed += 2048u * cell * (uint64_t)(k_max + 2) * 4u;
    } else if (r->texture == RSY_TEXTURE_FITTED) {
        per_voxel += 16u + 16u;
        per_case_fixed += 2048u * 729u * (uint64_t)(RSY_MAX_TEXTURE_COMPONENTS + 2) * 4u;
    }
    per_voxel += lesion_per_voxel;
    uint64_t workers = n_workers > 1 ? (uint64_t)n_workers : 1u;
    uint64_t per_case = mul_sat(nvox, per_voxel);
    per_case = per_case > UINT64_MAX - per_case_fixed ? UINT64_MAX : per_case + per_case_fixed;
    uint64_t total = mul_sat(per_case, workers);
    return total > UINT64_MAX - MEMORY_OVERHEAD_BYTES ? UINT64_MAX : total + MEMORY_OVERHEAD_BYTES;
}
