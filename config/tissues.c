/*
 * tissues.c: tissue property tables (configs/tissues/ *.json): loading, lookup, and the
 * properties at a given field strength.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define FIELD_LOW_T 1.5
#define FIELD_HIGH_T 3.0

static const rsy__range range_relax_ms = {0.0, 1e5, 1, 0}; /* T1, T2: (0, 100 s] */
static const rsy__range range_pd = {0.0, 1.2, 0, 0};       /* relative to pure water */
static const rsy__range range_gd_mM = {0.0, INFINITY, 0, 1};
static const rsy__range range_texture = {0.0, 0.5, 0, 0};

rsy_status rsy__cfg_mri_props(const char *file, const cJSON *obj, const char *kp, const char *key,
                              rsy_mri_props *out)
{
    static const char *const keys[] = {"t1_ms", "t2_ms", "pd", "gd_mM", NULL};
    char ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item)
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    rsy_status rc = rsy__cfg_check_object(file, ckp, item, keys);
    if (rc != RSY_OK)
        return rc;
    out->gd_mM = 0.0;
    if ((rc = rsy__cfg_number(file, item, ckp, "t1_ms", 1, range_relax_ms, &out->t1_ms)) !=
            RSY_OK ||
        (rc = rsy__cfg_number(file, item, ckp, "t2_ms", 1, range_relax_ms, &out->t2_ms)) !=
            RSY_OK ||
        (rc = rsy__cfg_number(file, item, ckp, "pd", 1, range_pd, &out->pd)) != RSY_OK ||
        (rc = rsy__cfg_number(file, item, ckp, "gd_mM", 0, range_gd_mM, &out->gd_mM)) != RSY_OK)
        return rc;
    return RSY_OK;
}

static rsy_status parse_tissue(const char *file, const cJSON *item, const char *kp, rsy_tissue *t)
{
    static const char *const keys[] = {"1.5T", "3T", "texture_sd_fraction", "ct", NULL};
    rsy_status rc = rsy__cfg_check_object(file, kp, item, keys);
    if (rc != RSY_OK)
        return rc;
    t->texture_sd_fraction = 0.0;
    int has_low = cJSON_GetObjectItemCaseSensitive(item, "1.5T") != NULL;
    int has_high = cJSON_GetObjectItemCaseSensitive(item, "3T") != NULL;
    t->has_ct = cJSON_GetObjectItemCaseSensitive(item, "ct") != NULL;
    t->has_mri = has_low || has_high;
    /* MRI properties come as a pair of field strengths, or not at all when the entry is for
     * CT only; an entry with neither images in no modality. */
    if (t->has_mri || !t->has_ct) {
        if ((rc = rsy__cfg_mri_props(file, item, kp, "1.5T", &t->mri_1p5t)) != RSY_OK ||
            (rc = rsy__cfg_mri_props(file, item, kp, "3T", &t->mri_3t)) != RSY_OK)
            return rc;
    }
    if (t->has_ct && (rc = rsy__cfg_ct_props(file, item, kp, t->ct)) != RSY_OK)
        return rc;
    return rsy__cfg_number(file, item, kp, "texture_sd_fraction", 0, range_texture,
                           &t->texture_sd_fraction);
}

rsy_status rsy__tissue_table_load(rsy_tissue_table *out, const char *path)
{
    static const char *const keys[] = {"raresynth_tissues", "name",    "description",
                                       "tissues",           "sources", NULL};
    rsy__json_file f;
    char description[RSY_TEXT_MAX];
    char stem[RSY_NAME_MAX + 8];
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
        (rc = rsy__cfg_version(path, root, "raresynth_tissues")) != RSY_OK ||
        (rc = rsy__cfg_ident(path, root, "", "name", 1, out->name)) != RSY_OK ||
        (rc = rsy__cfg_string(path, root, "", "description", 0, RSY_TEXT_MAX - 1, description)) !=
            RSY_OK)
        goto done;
    rsy__path_stem(path, stem, sizeof stem);
    if (strcmp(stem, out->name) != 0) {
        rc =
            rsy__cfg_fail(path, "name", cJSON_GetObjectItemCaseSensitive(root, "name"),
                          "expected \"%s\", the file's stem (tables are found by file name)", stem);
        goto done;
    }
    const cJSON *tissues = cJSON_GetObjectItemCaseSensitive(root, "tissues");
    if (!tissues) {
        rc = rsy__cfg_fail(path, "tissues", NULL, "required key missing");
        goto done;
    }
    int n = cJSON_IsObject(tissues) ? cJSON_GetArraySize(tissues) : 0;
    if (n < 1 || n > RSY_MAX_TISSUES) {
        rc = rsy__cfg_fail(path, "tissues", tissues,
                           "expected an object of 1 to %d tissues, keyed by tissue name",
                           RSY_MAX_TISSUES);
        goto done;
    }
    for (const cJSON *t = tissues->child; t; t = t->next) {
        char kp[RSY__KEYPATH_MAX];
        rsy__kp_key(kp, "tissues", t->string);
        if (!rsy__is_ident(t->string)) {
            rc = rsy__cfg_fail(path, kp, NULL,
                               "expected a tissue name of 1 to %d characters from [a-z0-9_-]",
                               RSY_NAME_MAX - 1);
            goto done;
        }
        rsy_tissue *dst = &out->tissues[out->n_tissues];
        snprintf(dst->name, sizeof dst->name, "%s", t->string);
        rc = parse_tissue(path, t, kp, dst);
        if (rc != RSY_OK)
            goto done;
        out->n_tissues++;
    }
    rc = rsy__cfg_sources(path, root, "", "sources", out->sources, &out->n_sources);
done:
    rsy__json_file_clear(&f);
    return rc;
}

rsy_status rsy_tissue_table_load(rsy_tissue_table **out, const char *path)
{
    if (!out || !path)
        return RSY_EINVAL;
    *out = NULL;
    rsy_tissue_table *t = malloc(sizeof *t);
    if (!t)
        return RSY_ENOMEM;
    rsy_status rc = rsy__tissue_table_load(t, path);
    if (rc != RSY_OK) {
        free(t);
        return rc;
    }
    *out = t;
    return RSY_OK;
}

int rsy__tissue_index(const rsy_tissue_table *t, const char *name)
{
    for (int i = 0; i < t->n_tissues; i++)
        if (strcmp(t->tissues[i].name, name) == 0)
            return i;
    return -1;
}

const rsy_tissue *rsy_tissue_table_find(const rsy_tissue_table *t, const char *name)
{
    if (!t || !name)
        return NULL;
    int i = rsy__tissue_index(t, name);
    return i >= 0 ? &t->tissues[i] : NULL;
}

rsy_mri_props rsy_tissue_mri_at(const rsy_tissue *t, double field_t)
{
    /* Linear in field strength between the 1.5 T and 3 T entries, clamped outside: relaxation
     * times vary smoothly with B0 over this range (T1 rises ~21% from 1.5 to 3 T, domain.md
     * Table 2b note, S37), and no table gives intermediate fields. */
    double w = (field_t - FIELD_LOW_T) / (FIELD_HIGH_T - FIELD_LOW_T);
    if (!(w > 0.0))
        w = 0.0;
    if (w > 1.0)
        w = 1.0;
    const rsy_mri_props *a = &t->mri_1p5t, *b = &t->mri_3t;
    rsy_mri_props p;
    p.t1_ms = a->t1_ms + w * (b->t1_ms - a->t1_ms);
    p.t2_ms = a->t2_ms + w * (b->t2_ms - a->t2_ms);
    p.pd = a->pd + w * (b->pd - a->pd);
    p.gd_mM = a->gd_mM + w * (b->gd_mM - a->gd_mM);
    return p;
}
