/*
 * manifest.c: the JSON documents of a dataset (docs/manifest.md documents every key).
 *
 * Every document is deterministic: no timestamps, host names or absolute paths; keys in a
 * fixed order; numbers printed by cJSON (%1.15g, or %1.17g when needed to round-trip);
 * 64-bit seeds and hashes as decimal or hex strings (reference/formats.md, "cJSON 1.7.15").
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"

/* cJSON's Add* functions return NULL on failure and accept a NULL parent, so a document is
 * built in one go and checked once: CHK records any failed step. */
#define CHK(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) == NULL)                                                                        \
            failed = 1;                                                                            \
    } while (0)

void rsy__export_u64_string(uint64_t v, char buf[24])
{
    snprintf(buf, 24, "%" PRIu64, v);
}

char *rsy__export_json_text(const cJSON *doc, size_t *len)
{
    char *text = cJSON_Print(doc);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *buf = malloc(n + 2);
    if (buf) {
        memcpy(buf, text, n);
        buf[n++] = '\n';
        buf[n] = '\0';
        *len = n;
    }
    cJSON_free(text);
    return buf;
}

rsy_status rsy__export_write_json(const cJSON *doc, const char *path)
{
    size_t len = 0;
    char *buf = rsy__export_json_text(doc, &len);
    if (!buf)
        return RSY_ENOMEM;
    rsy_status rc = rsy__export_write_durable(path, buf, len);
    free(buf);
    return rc;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* Add @p n key/value pairs to @p obj; a key given twice (or clashing with a key already in
 * @p obj) is refused, since cJSON would silently write a duplicate key. */
static rsy_status add_kvs(cJSON *obj, const rsy_kv *kv, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (!kv[i].key || !*kv[i].key) {
            rsy_log_error("%s: entry %d has no key", what, i);
            return RSY_EINVAL;
        }
        if (cJSON_GetObjectItemCaseSensitive(obj, kv[i].key)) {
            rsy_log_error("%s: key \"%s\" given twice", what, kv[i].key);
            return RSY_EINVAL;
        }
        cJSON *item = kv[i].type == RSY_KV_STRING ? cJSON_CreateString(str_or_empty(kv[i].string))
                                                  : cJSON_CreateNumber(kv[i].number);
        if (!item)
            return RSY_ENOMEM;
        if (!cJSON_AddItemToObject(obj, kv[i].key, item)) {
            cJSON_Delete(item);
            return RSY_ENOMEM;
        }
    }
    return RSY_OK;
}

static cJSON *int64_array(const int64_t *v, int n)
{
    double d[8];
    for (int i = 0; i < n && i < 8; i++)
        d[i] = (double)v[i];
    return cJSON_CreateDoubleArray(d, n);
}

cJSON *rsy__json_add(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return NULL;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

static const char *sequence_type(rsy_sequence_kind k)
{
    switch (k) {
    case RSY_SEQ_SPIN_ECHO:
        return "spin_echo";
    case RSY_SEQ_INVERSION_RECOVERY:
        return "inversion_recovery";
    case RSY_SEQ_SPOILED_GRE:
        return "spoiled_gre";
    }
    return "unknown";
}

/* {"background": 0, "necrotic_core": 1, ...} in value order. */
static cJSON *label_object(const rsy_export *e)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < e->n_labels; i++) {
        if (!cJSON_AddNumberToObject(o, e->label_names[i], i)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* ["oedema", ...]: names of the perilesional labels, in value order. */
static cJSON *perilesional_array(const rsy_export *e)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 1; a && i < e->n_labels; i++) {
        if (!e->perilesional[i])
            continue;
        cJSON *str = cJSON_CreateString(e->label_names[i]);
        if (!str || !cJSON_AddItemToArray(a, str)) {
            cJSON_Delete(str);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* {"0": "T1w", "1": "T2w", ...} in channel order (nnU-Net channel_names). */
static cJSON *channel_object(const rsy_export *e)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < e->n_channels; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        if (!cJSON_AddStringToObject(o, key, rsy_recipe_channel_name(e->recipe, i))) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* ---------------------------------------------------------------------------------------- */
/* Per-case manifest                                                                          */
/* ---------------------------------------------------------------------------------------- */
static cJSON *seeds_object(const rsy_export *e, size_t case_index)
{
    static const struct {
        const char *name;
        rsy_stage stage;
    } stages[] = {{"subject", RSY_STAGE_SUBJECT},
                  {"phantom", RSY_STAGE_PHANTOM},
                  {"lesions", RSY_STAGE_LESIONS},
                  {"texture", RSY_STAGE_TEXTURE}};
    const uint64_t seed = e->recipe->seed;
    char buf[24];
    int failed = 0;
    cJSON *o = cJSON_CreateObject();
    rsy__export_u64_string(seed, buf);
    CHK(cJSON_AddStringToObject(o, "dataset_seed", buf));
    CHK(cJSON_AddNumberToObject(o, "case_index", (double)case_index));
    cJSON *streams = cJSON_AddObjectToObject(o, "streams");
    CHK(streams);
    for (size_t s = 0; s < sizeof stages / sizeof stages[0]; s++) {
        rsy__export_u64_string(rsy_seed_derive(seed, case_index, stages[s].stage), buf);
        CHK(cJSON_AddStringToObject(streams, stages[s].name, buf));
    }
    /* The acquisition stream of channel c is stage RSY_STAGE_ACQUISITION + c (rsy_core.h). */
    cJSON *acq = cJSON_AddArrayToObject(streams, "acquisition");
    CHK(acq);
    for (int ch = 0; acq && ch < e->n_channels; ch++) {
        rsy__export_u64_string(
            rsy_seed_derive(seed, case_index, (uint32_t)RSY_STAGE_ACQUISITION + (uint32_t)ch), buf);
        cJSON *str = cJSON_CreateString(buf);
        if (!str || !cJSON_AddItemToArray(acq, str)) {
            cJSON_Delete(str);
            failed = 1;
        }
    }
    CHK(cJSON_AddStringToObject(o, "rng", rsy_rng_description()));
    if (failed) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The CT part of a case's acquisition object: the recipe's settings; the per-channel facts
 * (dose, I0, measured noise) come with the case's key-value list. */
static int acquisition_ct(cJSON *o, const rsy_recipe *r)
{
    int failed = 0;
    const rsy_ct_scanner *s = &r->ct.scanner;
    CHK(cJSON_AddStringToObject(o, "phase", rsy_ct_phase_name(r->ct.phase)));
    CHK(cJSON_AddStringToObject(o, "noise_model",
                                r->ct.noise_model == RSY_CT_NOISE_FAST ? "fast" : "projection"));
    cJSON *sc = cJSON_AddObjectToObject(o, "scanner");
    CHK(sc);
    CHK(cJSON_AddStringToObject(sc, "name", s->name));
    CHK(cJSON_AddStringToObject(sc, "kernel", rsy_ct_window_name(s->kernel)));
    CHK(cJSON_AddNumberToObject(sc, "i0_photons", s->i0_photons));
    CHK(cJSON_AddNumberToObject(sc, "electronic_noise_sd", s->electronic_noise_sd));
    CHK(cJSON_AddNumberToObject(sc, "mu_water_per_mm", s->mu_water_per_mm));
    CHK(cJSON_AddNumberToObject(sc, "slice_thickness_mm", s->slice_thickness_mm));
    CHK(cJSON_AddNumberToObject(sc, "psf_fwhm_mm", s->psf_fwhm_mm));
    cJSON *doses = cJSON_AddArrayToObject(o, "doses");
    CHK(doses);
    for (int i = 0; doses && i < r->ct.n_doses; i++) {
        cJSON *d = cJSON_CreateNumber(r->ct.doses[i]);
        if (!d || !cJSON_AddItemToArray(doses, d)) {
            cJSON_Delete(d);
            failed = 1;
        }
    }
    return failed;
}

/* The MRI part of a case's acquisition object: field, contrast agent, bias field, sequences. */
static int acquisition_mri(cJSON *o, const rsy_recipe *r)
{
    int failed = 0;
    CHK(cJSON_AddNumberToObject(o, "field_strength_T", r->mri.field_t));
    CHK(cJSON_AddNumberToObject(o, "contrast_agent_r1_per_mM_s", r->mri.gd_r1_per_mM_s));
    cJSON *bias = cJSON_AddObjectToObject(o, "bias_field");
    CHK(bias);
    CHK(cJSON_AddNumberToObject(bias, "amplitude", r->mri.bias_amplitude));
    CHK(cJSON_AddNumberToObject(bias, "scale_mm", r->mri.bias_scale_mm));
    cJSON *seqs = cJSON_AddArrayToObject(o, "sequences");
    CHK(seqs);
    for (int i = 0; seqs && i < r->mri.n_sequences; i++) {
        const rsy_sequence *s = &r->mri.sequences[i];
        cJSON *so = cJSON_CreateObject();
        if (!so || !cJSON_AddItemToArray(seqs, so)) {
            cJSON_Delete(so);
            failed = 1;
            break;
        }
        CHK(cJSON_AddNumberToObject(so, "channel", i));
        CHK(cJSON_AddStringToObject(so, "name", s->name));
        CHK(cJSON_AddStringToObject(so, "type", sequence_type(s->kind)));
        CHK(cJSON_AddNumberToObject(so, "tr_ms", s->tr_ms));
        CHK(cJSON_AddNumberToObject(so, "te_ms", s->te_ms));
        if (s->kind == RSY_SEQ_INVERSION_RECOVERY)
            CHK(cJSON_AddNumberToObject(so, "ti_ms", s->ti_ms));
        if (s->kind == RSY_SEQ_SPOILED_GRE)
            CHK(cJSON_AddNumberToObject(so, "flip_deg", s->flip_deg));
        CHK(cJSON_AddBoolToObject(so, "contrast", s->contrast != 0));
        CHK(cJSON_AddNumberToObject(so, "noise_percent", s->noise_percent));
        CHK(cJSON_AddStringToObject(so, "noise_reference", s->noise_reference));
    }
    return failed;
}

static rsy_status acquisition_object(cJSON **out, const rsy_export *e, const rsy_case_data *c)
{
    const rsy_recipe *r = e->recipe;
    int failed = 0;
    cJSON *o = cJSON_CreateObject();
    CHK(cJSON_AddStringToObject(o, "modality", r->modality));
    if (strcmp(r->modality, "ct") == 0)
        failed |= acquisition_ct(o, r);
    else
        failed |= acquisition_mri(o, r);
    rsy_status rc = failed ? RSY_ENOMEM : RSY_OK;
    if (rc == RSY_OK) {
        char what[64];
        snprintf(what, sizeof what, "case %zu acquisition", c->case_index);
        rc = add_kvs(o, c->acquisition, c->n_acquisition, what);
    }
    if (rc != RSY_OK) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return RSY_OK;
}

static cJSON *file_entry(const char *rel, const char *sha)
{
    int failed = 0;
    cJSON *f = cJSON_CreateObject();
    CHK(cJSON_AddStringToObject(f, "path", rel));
    CHK(cJSON_AddStringToObject(f, "sha256", sha));
    if (failed) {
        cJSON_Delete(f);
        return NULL;
    }
    return f;
}

static cJSON *files_object(const rsy_export *e, const char *case_id, char (*sha)[65])
{
    char rel[RSY_EXPORT_REL_MAX];
    int failed = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *images = cJSON_AddArrayToObject(o, "images");
    CHK(images);
    for (int ch = 0; images && ch < e->n_channels; ch++) {
        rsy__export_image_relpath(e, case_id, ch, rel, sizeof rel);
        cJSON *f = cJSON_CreateObject();
        if (!f || !cJSON_AddItemToArray(images, f)) {
            cJSON_Delete(f);
            failed = 1;
            break;
        }
        CHK(cJSON_AddNumberToObject(f, "channel", ch));
        CHK(cJSON_AddStringToObject(f, "name", rsy_recipe_channel_name(e->recipe, ch)));
        CHK(cJSON_AddStringToObject(f, "path", rel));
        CHK(cJSON_AddStringToObject(f, "sha256", sha[ch]));
    }
    rsy__export_label_relpath(e, case_id, rel, sizeof rel);
    CHK(rsy__json_add(o, "label", file_entry(rel, sha[e->n_channels])));
    rsy__export_instance_relpath(case_id, rel, sizeof rel);
    CHK(rsy__json_add(o, "instances", file_entry(rel, sha[e->n_channels + 1])));
    if (failed) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static rsy_status lesion_object(cJSON **out, const rsy_export *e, const rsy_lesion_info *info,
                                const rsy_lesion_record *r, size_t case_index)
{
    int failed = 0;
    const double voxel_mm3 = r->voxel_count > 0 ? r->volume_mm3 / (double)r->voxel_count : 0.0;
    cJSON *o = cJSON_CreateObject();
    CHK(cJSON_AddNumberToObject(o, "instance_id", r->instance_id));
    CHK(cJSON_AddStringToObject(o, "type", str_or_empty(info->type)));
    /* The type's disease file and its lesion type: "tuberous-sclerosis/cortical_tuber" gives
     * "tuberous-sclerosis" and "cortical_tuber"; a file with its one type at the top level
     * ("glioblastoma") gives the stem for both. */
    char disease[RSY_NAME_MAX], lesion_type[RSY_NAME_MAX];
    const char *type = str_or_empty(info->type), *slash = strchr(type, '/');
    snprintf(disease, sizeof disease, "%.*s", slash ? (int)(slash - type) : (int)strlen(type),
             type);
    snprintf(lesion_type, sizeof lesion_type, "%s", slash ? slash + 1 : type);
    CHK(cJSON_AddStringToObject(o, "disease", disease));
    CHK(cJSON_AddStringToObject(o, "lesion_type", lesion_type));
    CHK(cJSON_AddStringToObject(o, "display_name", str_or_empty(info->display_name)));
    CHK(cJSON_AddStringToObject(o, "host", str_or_empty(info->host)));
    CHK(cJSON_AddStringToObject(o, "region", str_or_empty(info->region)));
    CHK(cJSON_AddNumberToObject(o, "voxel_count", (double)r->voxel_count));
    CHK(cJSON_AddNumberToObject(o, "volume_mm3", r->volume_mm3));
    CHK(cJSON_AddNumberToObject(o, "mass_voxel_count", (double)r->mass_voxel_count));
    CHK(cJSON_AddNumberToObject(o, "mass_volume_mm3", r->mass_volume_mm3));
    CHK(rsy__json_add(o, "centroid_vox", cJSON_CreateDoubleArray(r->centroid_vox, 3)));
    CHK(rsy__json_add(o, "centroid_mm", cJSON_CreateDoubleArray(r->centroid_mm, 3)));
    CHK(rsy__json_add(o, "bbox_min_vox", int64_array(r->bbox_min, 3)));
    CHK(rsy__json_add(o, "bbox_max_vox", int64_array(r->bbox_max, 3)));
    CHK(rsy__json_add(o, "box_cccwhd_mm", cJSON_CreateDoubleArray(r->box_cccwhd_mm, 6)));
    CHK(cJSON_AddNumberToObject(o, "long_axis_mm", r->long_axis_mm));
    CHK(cJSON_AddNumberToObject(o, "short_axis_mm", r->short_axis_mm));
    CHK(cJSON_AddNumberToObject(o, "key_slice", (double)r->key_slice));
    const int64_t range[2] = {r->slice_min, r->slice_max};
    CHK(rsy__json_add(o, "slice_range", int64_array(range, 2)));
    CHK(cJSON_AddNumberToObject(o, "equivalent_diameter_mm", r->equivalent_diameter_mm));
    /* Compartments: the non-background labels this lesion's voxels carry. */
    cJSON *comp = cJSON_AddObjectToObject(o, "compartments");
    CHK(comp);
    for (int l = 1; comp && l < e->n_labels && l < RSY_MAX_LABELS; l++) {
        if (r->label_voxels[l] == 0)
            continue;
        cJSON *co = cJSON_AddObjectToObject(comp, e->label_names[l]);
        CHK(co);
        CHK(cJSON_AddNumberToObject(co, "label", l));
        CHK(cJSON_AddNumberToObject(co, "voxel_count", (double)r->label_voxels[l]));
        CHK(cJSON_AddNumberToObject(co, "volume_mm3", (double)r->label_voxels[l] * voxel_mm3));
    }
    cJSON *params = cJSON_AddObjectToObject(o, "sampled_parameters");
    CHK(params);
    rsy_status rc = failed ? RSY_ENOMEM : RSY_OK;
    if (rc == RSY_OK) {
        char what[64];
        snprintf(what, sizeof what, "case %zu lesion %d parameters", case_index, r->instance_id);
        rc = add_kvs(params, info->params, info->n_params, what);
    }
    if (rc != RSY_OK) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return RSY_OK;
}

rsy_status rsy__export_case_manifest(cJSON **out, const rsy_export *e, const rsy_case_data *c,
                                     const char *case_id, char (*sha)[65],
                                     const rsy_lesion_record *records, int n_records)
{
    int failed = 0;
    rsy_status rc = RSY_OK;
    char what[64];
    cJSON *acq = NULL;

    *out = NULL;
    cJSON *doc = cJSON_CreateObject();
    CHK(cJSON_AddNumberToObject(doc, "raresynth_case", 1));
    CHK(cJSON_AddStringToObject(doc, "case_id", case_id));
    CHK(cJSON_AddNumberToObject(doc, "case_index", (double)c->case_index));
    cJSON *gen = cJSON_AddObjectToObject(doc, "generator");
    CHK(gen);
    CHK(cJSON_AddStringToObject(gen, "name", "raresynth"));
    CHK(cJSON_AddStringToObject(gen, "version", rsy_version()));
    CHK(rsy__json_add(doc, "seeds", seeds_object(e, c->case_index)));
    cJSON *subject = cJSON_AddObjectToObject(doc, "subject");
    CHK(subject);
    if (failed)
        goto fail;
    snprintf(what, sizeof what, "case %zu subject", c->case_index);
    if ((rc = add_kvs(subject, c->subject, c->n_subject, what)) != RSY_OK ||
        (rc = acquisition_object(&acq, e, c)) != RSY_OK)
        goto fail;
    CHK(rsy__json_add(doc, "acquisition", acq));
    acq = NULL;
    CHK(cJSON_AddStringToObject(doc, "texture", e->texture_note));
    CHK(rsy__json_add(doc, "files", files_object(e, case_id, sha)));
    CHK(rsy__json_add(doc, "labels", label_object(e)));
    CHK(rsy__json_add(doc, "labels_perilesional", perilesional_array(e)));
    CHK(cJSON_AddStringToObject(doc, "coordinate_system", RSY_EXPORT_COORDS));
    cJSON *lesions = cJSON_AddArrayToObject(doc, "lesions");
    CHK(lesions);
    if (failed)
        goto fail;
    for (int l = 0; l < c->n_lesions && l < n_records; l++) {
        if (records[l].voxel_count == 0)
            continue;
        cJSON *lo = NULL;
        if ((rc = lesion_object(&lo, e, &c->lesions[l], &records[l], c->case_index)) != RSY_OK)
            goto fail;
        if (!cJSON_AddItemToArray(lesions, lo)) {
            cJSON_Delete(lo);
            goto fail;
        }
    }
    CHK(cJSON_AddStringToObject(doc, "findings", str_or_empty(c->findings)));
    if (failed)
        goto fail;
    *out = doc;
    return RSY_OK;

fail:
    cJSON_Delete(acq);
    cJSON_Delete(doc);
    return rc != RSY_OK ? rc : RSY_ENOMEM;
}

/* ---------------------------------------------------------------------------------------- */
/* Per-case manifest, parsed back (resume, merge, and the writer's own summary)              */
/* ---------------------------------------------------------------------------------------- */
/* The parser stops at the first problem and logs one line "WHAT: KEY: expected ...". */
typedef struct parser {
    const char *what;
    int failed;
} parser;

static void bad(parser *ps, const char *key, const char *expected)
{
    if (!ps->failed)
        rsy_log_error("%s: %s: expected %s", ps->what, key, expected);
    ps->failed = 1;
}

static const cJSON *get(parser *ps, const cJSON *obj, const char *key, const char *name)
{
    const cJSON *item = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!item)
        bad(ps, name, "a value (key missing)");
    return item;
}

static double get_number(parser *ps, const cJSON *obj, const char *key, const char *name)
{
    const cJSON *item = get(ps, obj, key, name);
    if (item && (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))) {
        bad(ps, name, "a finite number");
        return 0.0;
    }
    return item ? item->valuedouble : 0.0;
}

/* An integer in [lo, hi] stored as a JSON number. */
static int64_t get_int(parser *ps, const cJSON *obj, const char *key, const char *name, double lo,
                       double hi)
{
    double v = get_number(ps, obj, key, name);
    if (!ps->failed && (v != floor(v) || v < lo || v > hi)) {
        char exp[96];
        snprintf(exp, sizeof exp, "an integer in [%.17g, %.17g]", lo, hi);
        bad(ps, name, exp);
        return 0;
    }
    return (int64_t)v;
}

static const char *get_string(parser *ps, const cJSON *obj, const char *key, const char *name)
{
    const cJSON *item = get(ps, obj, key, name);
    if (item && !cJSON_IsString(item)) {
        bad(ps, name, "a string");
        return "";
    }
    return item ? item->valuestring : "";
}

/* @p n numbers of the array @p key into @p out (doubles), each in [lo, hi] and integral when
 * @p integral. */
static void get_numbers(parser *ps, const cJSON *obj, const char *key, const char *name,
                        double *out, int n, int integral)
{
    const cJSON *arr = get(ps, obj, key, name);
    if (ps->failed)
        return;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) {
        char exp[64];
        snprintf(exp, sizeof exp, "an array of %d numbers", n);
        bad(ps, name, exp);
        return;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) ||
            (integral && (item->valuedouble != floor(item->valuedouble) ||
                          fabs(item->valuedouble) > 9007199254740992.0))) {
            bad(ps, name, integral ? "integers" : "finite numbers");
            return;
        }
        out[i++] = item->valuedouble;
    }
}

static int is_sha(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* {"path", "sha256"} of a listed file: the path must be @p rel. */
static void get_file(parser *ps, const cJSON *f, const char *name, const char *rel, char sha[65])
{
    char key[96];
    snprintf(key, sizeof key, "%s.path", name);
    const char *path = get_string(ps, f, "path", key);
    if (!ps->failed && strcmp(path, rel) != 0) {
        char exp[RSY_EXPORT_REL_MAX + 16];
        snprintf(exp, sizeof exp, "\"%s\"", rel);
        bad(ps, key, exp);
    }
    snprintf(key, sizeof key, "%s.sha256", name);
    const char *h = get_string(ps, f, "sha256", key);
    if (!ps->failed && !is_sha(h))
        bad(ps, key, "64 lowercase hex digits");
    if (!ps->failed)
        memcpy(sha, h, 65);
}

static void parse_files(parser *ps, const rsy_export *e, const cJSON *doc, const char *case_id,
                        char (*sha)[65])
{
    char rel[RSY_EXPORT_REL_MAX], key[64];
    const cJSON *files = get(ps, doc, "files", "files");
    const cJSON *images = get(ps, files, "images", "files.images");
    if (ps->failed)
        return;
    if (!cJSON_IsArray(images) || cJSON_GetArraySize(images) != e->n_channels) {
        snprintf(key, sizeof key, "an array of %d images", e->n_channels);
        bad(ps, "files.images", key);
        return;
    }
    for (int ch = 0; ch < e->n_channels && !ps->failed; ch++) {
        const cJSON *f = cJSON_GetArrayItem(images, ch);
        snprintf(key, sizeof key, "files.images[%d].channel", ch);
        get_int(ps, f, "channel", key, ch, ch);
        snprintf(key, sizeof key, "files.images[%d]", ch);
        rsy__export_image_relpath(e, case_id, ch, rel, sizeof rel);
        get_file(ps, f, key, rel, sha[ch]);
    }
    rsy__export_label_relpath(e, case_id, rel, sizeof rel);
    get_file(ps, get(ps, files, "label", "files.label"), "files.label", rel, sha[e->n_channels]);
    rsy__export_instance_relpath(case_id, rel, sizeof rel);
    get_file(ps, get(ps, files, "instances", "files.instances"), "files.instances", rel,
             sha[e->n_channels + 1]);
}

/* The label dictionary and the perilesional names must be this writer's. */
static void parse_labels(parser *ps, const rsy_export *e, const cJSON *doc)
{
    const cJSON *labels = get(ps, doc, "labels", "labels");
    if (ps->failed)
        return;
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, labels)
    {
        if (i >= e->n_labels || !item->string || strcmp(item->string, e->label_names[i]) != 0 ||
            !cJSON_IsNumber(item) || item->valuedouble != i)
            break;
        i++;
    }
    if (!cJSON_IsObject(labels) || i != e->n_labels || cJSON_GetArraySize(labels) != e->n_labels) {
        bad(ps, "labels", "the label dictionary of this dataset");
        return;
    }
    const cJSON *peri = get(ps, doc, "labels_perilesional", "labels_perilesional");
    if (ps->failed)
        return;
    const cJSON *it = cJSON_IsArray(peri) ? peri->child : NULL;
    int ok = cJSON_IsArray(peri);
    for (int l = 1; ok && l < e->n_labels; l++) {
        if (!e->perilesional[l])
            continue;
        ok = it && cJSON_IsString(it) && strcmp(it->valuestring, e->label_names[l]) == 0;
        it = it ? it->next : NULL;
    }
    if (!ok || it)
        bad(ps, "labels_perilesional", "the perilesional labels of this dataset");
}

static void parse_record(parser *ps, const rsy_export *e, const cJSON *lo, int l,
                         rsy_lesion_record *r, rsy_lesion_info *info)
{
    char key[96];
    double v[6];
#define KEY(k) (snprintf(key, sizeof key, "lesions[%d].%s", l, k), key)
    r->instance_id = (int)get_int(ps, lo, "instance_id", KEY("instance_id"), 1, UINT16_MAX);
    info->instance_id = r->instance_id;
    info->type = get_string(ps, lo, "type", KEY("type"));
    info->display_name = get_string(ps, lo, "display_name", KEY("display_name"));
    info->host = get_string(ps, lo, "host", KEY("host"));
    info->region = get_string(ps, lo, "region", KEY("region"));
    const double big = 9007199254740992.0; /* 2^53: every int64 count we write is below it */
    r->voxel_count = get_int(ps, lo, "voxel_count", KEY("voxel_count"), 1, big);
    r->volume_mm3 = get_number(ps, lo, "volume_mm3", KEY("volume_mm3"));
    r->mass_voxel_count = get_int(ps, lo, "mass_voxel_count", KEY("mass_voxel_count"), 0, big);
    r->mass_volume_mm3 = get_number(ps, lo, "mass_volume_mm3", KEY("mass_volume_mm3"));
    get_numbers(ps, lo, "centroid_vox", KEY("centroid_vox"), r->centroid_vox, 3, 0);
    get_numbers(ps, lo, "centroid_mm", KEY("centroid_mm"), r->centroid_mm, 3, 0);
    get_numbers(ps, lo, "bbox_min_vox", KEY("bbox_min_vox"), v, 3, 1);
    for (int a = 0; a < 3 && !ps->failed; a++)
        r->bbox_min[a] = (int64_t)v[a];
    get_numbers(ps, lo, "bbox_max_vox", KEY("bbox_max_vox"), v, 3, 1);
    for (int a = 0; a < 3 && !ps->failed; a++)
        r->bbox_max[a] = (int64_t)v[a];
    get_numbers(ps, lo, "box_cccwhd_mm", KEY("box_cccwhd_mm"), r->box_cccwhd_mm, 6, 0);
    r->long_axis_mm = get_number(ps, lo, "long_axis_mm", KEY("long_axis_mm"));
    r->short_axis_mm = get_number(ps, lo, "short_axis_mm", KEY("short_axis_mm"));
    r->key_slice = get_int(ps, lo, "key_slice", KEY("key_slice"), -big, big);
    get_numbers(ps, lo, "slice_range", KEY("slice_range"), v, 2, 1);
    if (!ps->failed) {
        r->slice_min = (int64_t)v[0];
        r->slice_max = (int64_t)v[1];
    }
    r->equivalent_diameter_mm =
        get_number(ps, lo, "equivalent_diameter_mm", KEY("equivalent_diameter_mm"));
    /* Compartments give the voxels per non-background label; the rest of the lesion's voxels
     * carry label 0 (every voxel's label is a value of the dictionary). */
    const cJSON *comp = get(ps, lo, "compartments", KEY("compartments"));
    if (!ps->failed && !cJSON_IsObject(comp))
        bad(ps, key, "an object");
    int64_t rest = r->voxel_count;
    const cJSON *co, *comps = ps->failed ? NULL : comp;
    cJSON_ArrayForEach(co, comps)
    {
        snprintf(key, sizeof key, "lesions[%d].compartments.%s", l, co->string);
        int lab = 0;
        for (int i = 1; i < e->n_labels; i++)
            if (strcmp(co->string, e->label_names[i]) == 0)
                lab = i;
        if (!lab) {
            bad(ps, key, "a non-background label of the dictionary");
            break;
        }
        get_int(ps, co, "label", key, lab, lab);
        int64_t n = get_int(ps, co, "voxel_count", key, 1, (double)r->voxel_count);
        if (ps->failed)
            break;
        r->label_voxels[lab] = n;
        rest -= n;
    }
    if (!ps->failed && rest < 0)
        bad(ps, KEY("compartments"), "voxel counts summing to at most voxel_count");
    r->label_voxels[0] = rest;
#undef KEY
}

void rsy__case_parsed_clear(rsy__case_parsed *p)
{
    if (!p)
        return;
    cJSON_Delete(p->doc);
    free(p->sha);
    free(p->records);
    free(p->info);
    memset(p, 0, sizeof *p);
}

rsy_status rsy__export_parse_case(const rsy_export *e, size_t index, const char *text, size_t len,
                                  const char *what, rsy__case_parsed *out)
{
    parser ps = {what, 0};
    char case_id[32], seed[24], exp[64];
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    out->doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!out->doc) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        rsy_log_error("%s: not valid JSON (byte %zu)", what, off);
        return RSY_EIO;
    }
    const cJSON *doc = out->doc;
    if (!cJSON_IsObject(doc))
        bad(&ps, "(document)", "a JSON object");
    get_int(&ps, doc, "raresynth_case", "raresynth_case", 1, 1);
    rsy_export_case_id(index, case_id, sizeof case_id);
    if (!ps.failed && strcmp(get_string(&ps, doc, "case_id", "case_id"), case_id) != 0) {
        snprintf(exp, sizeof exp, "\"%s\"", case_id);
        bad(&ps, "case_id", exp);
    }
    get_int(&ps, doc, "case_index", "case_index", (double)index, (double)index);
    const cJSON *gen = get(&ps, doc, "generator", "generator");
    if (!ps.failed &&
        strcmp(get_string(&ps, gen, "version", "generator.version"), rsy_version()) != 0) {
        snprintf(exp, sizeof exp, "\"%s\" (this version)", rsy_version());
        bad(&ps, "generator.version", exp);
    }
    rsy__export_u64_string(e->recipe->seed, seed);
    const cJSON *seeds = get(&ps, doc, "seeds", "seeds");
    if (!ps.failed &&
        strcmp(get_string(&ps, seeds, "dataset_seed", "seeds.dataset_seed"), seed) != 0) {
        snprintf(exp, sizeof exp, "\"%s\" (this dataset's seed)", seed);
        bad(&ps, "seeds.dataset_seed", exp);
    }
    if (!ps.failed && !(out->sha = calloc((size_t)e->n_channels + 2, sizeof *out->sha)))
        goto nomem;
    if (!ps.failed)
        parse_files(&ps, e, doc, case_id, out->sha);
    parse_labels(&ps, e, doc);
    const cJSON *lesions = get(&ps, doc, "lesions", "lesions");
    if (!ps.failed && !cJSON_IsArray(lesions))
        bad(&ps, "lesions", "an array");
    int n = ps.failed ? 0 : cJSON_GetArraySize(lesions);
    if (n > UINT16_MAX)
        bad(&ps, "lesions", "at most 65535 records");
    if (!ps.failed && n > 0) {
        out->records = calloc((size_t)n, sizeof *out->records);
        out->info = calloc((size_t)n, sizeof *out->info);
        if (!out->records || !out->info)
            goto nomem;
    }
    int l = 0;
    const cJSON *lo, *list = ps.failed ? NULL : lesions;
    cJSON_ArrayForEach(lo, list)
    {
        parse_record(&ps, e, lo, l, &out->records[l], &out->info[l]);
        if (!ps.failed && l > 0 && out->records[l].instance_id <= out->records[l - 1].instance_id)
            bad(&ps, "lesions", "records in increasing instance_id order");
        if (ps.failed)
            break;
        l++;
    }
    out->n_records = l;
    out->findings = get_string(&ps, doc, "findings", "findings");
    if (ps.failed) {
        rsy__case_parsed_clear(out);
        return RSY_EIO;
    }
    return RSY_OK;

nomem:
    rsy__case_parsed_clear(out);
    return RSY_ENOMEM;
}

/* ---------------------------------------------------------------------------------------- */
/* Dataset-level documents                                                                    */
/* ---------------------------------------------------------------------------------------- */
static rsy_status write_doc(const rsy_export *e, const char *rel, cJSON *doc, int failed)
{
    char path[RSY_PATH_MAX];
    rsy_status rc =
        failed ? RSY_ENOMEM : rsy__export_path(path, sizeof path, "%s/%s", e->out_dir, rel);
    if (rc == RSY_OK)
        rc = rsy__export_write_json(doc, path);
    cJSON_Delete(doc);
    return rc;
}

/* nnU-Net v2 dataset.json (reference/formats.md): the four required keys plus descriptive
 * extras nnU-Net ignores; never a key named "dataset" (it switches nnU-Net to file lists). */
static rsy_status write_nnunet_json(const rsy_export *e)
{
    const rsy_recipe *r = e->recipe;
    char rel[RSY_EXPORT_REL_MAX], ref[128];
    int failed = 0;
    cJSON *doc = cJSON_CreateObject();
    CHK(rsy__json_add(doc, "channel_names", channel_object(e)));
    CHK(rsy__json_add(doc, "labels", label_object(e)));
    CHK(cJSON_AddNumberToObject(doc, "numTraining", (double)e->n_cases));
    CHK(cJSON_AddStringToObject(doc, "file_ending", RSY_EXPORT_NII));
    CHK(cJSON_AddStringToObject(doc, "name", r->name));
    CHK(cJSON_AddStringToObject(doc, "description", r->description));
    snprintf(ref, sizeof ref, "Synthetic data generated by raresynth %s; no patient data",
             rsy_version());
    CHK(cJSON_AddStringToObject(doc, "reference", ref));
    CHK(cJSON_AddStringToObject(doc, "licence", RSY_EXPORT_LICENCE));
    CHK(cJSON_AddStringToObject(doc, "release", rsy_version()));
    snprintf(rel, sizeof rel, "%s/dataset.json", e->nnunet_dir);
    return write_doc(e, rel, doc, failed);
}

/* BIDS dataset_description.json (BIDS 1.9.0, "Derivative datasets"): provenance only. */
static rsy_status write_bids_description(const rsy_export *e)
{
    const rsy_recipe *r = e->recipe;
    char seed[24], text[RSY_PATH_MAX + 256];
    int failed = 0;
    rsy__export_u64_string(r->seed, seed);
    cJSON *doc = cJSON_CreateObject();
    CHK(cJSON_AddStringToObject(doc, "Name", r->name));
    CHK(cJSON_AddStringToObject(doc, "BIDSVersion", RSY_EXPORT_BIDS_VERSION));
    CHK(cJSON_AddStringToObject(doc, "DatasetType", "derivative"));
    CHK(cJSON_AddStringToObject(doc, "License", RSY_EXPORT_LICENCE));
    cJSON *gen = cJSON_AddArrayToObject(doc, "GeneratedBy");
    cJSON *g = cJSON_CreateObject();
    if (!gen || !g || !cJSON_AddItemToArray(gen, g)) {
        cJSON_Delete(g);
        failed = 1;
    }
    CHK(cJSON_AddStringToObject(g, "Name", "raresynth"));
    CHK(cJSON_AddStringToObject(g, "Version", rsy_version()));
    snprintf(text, sizeof text,
             "Synthetic dataset generated from recipe %s (sha256 %s) with dataset seed %s",
             rsy__export_basename(r->path), r->sha256, seed);
    CHK(cJSON_AddStringToObject(g, "Description", text));
    CHK(cJSON_AddStringToObject(
        doc, "SyntheticData",
        "All images and labels in this dataset are synthetic. " RSY_EXPORT_DATA_SOURCES));
    return write_doc(e, RSY_EXPORT_DESCRIPTION, doc, failed);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Summary statistics over the cases held, computed in case order (independent of write
 * order) from the values as parsed back from the case manifests. */
static cJSON *summary_object(const rsy_export *e)
{
    int failed = 0;
    size_t total = 0, held = rsy__export_n_held(e), seen = 0;
    int min_l = 0, max_l = 0;
    for (size_t i = 0; i < e->n_cases; i++) {
        if (!rsy__export_holds(e, i))
            continue;
        int n = e->cases[i]->n_lesions;
        total += (size_t)n;
        if (seen == 0 || n < min_l)
            min_l = n;
        if (seen == 0 || n > max_l)
            max_l = n;
        seen++;
    }
    double *vol = total ? malloc(total * sizeof *vol) : NULL;
    if (total && !vol)
        return NULL;
    size_t m = 0;
    double sum = 0.0;
    for (size_t i = 0; i < e->n_cases; i++) {
        if (!rsy__export_holds(e, i))
            continue;
        for (int l = 0; l < e->cases[i]->n_lesions; l++) {
            vol[m] = e->cases[i]->lesion_volume_mm3[l];
            sum += vol[m++];
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *lpc = cJSON_AddObjectToObject(o, "lesions_per_case");
    CHK(lpc);
    CHK(cJSON_AddNumberToObject(lpc, "mean", held ? (double)total / (double)held : 0.0));
    CHK(cJSON_AddNumberToObject(lpc, "min", min_l));
    CHK(cJSON_AddNumberToObject(lpc, "max", max_l));
    cJSON *lv = cJSON_AddObjectToObject(o, "lesion_volume_mm3");
    CHK(lv);
    CHK(cJSON_AddNumberToObject(lv, "count", (double)total));
    if (total) {
        qsort(vol, total, sizeof *vol, cmp_double);
        double median = total % 2 ? vol[total / 2] : 0.5 * (vol[total / 2 - 1] + vol[total / 2]);
        CHK(cJSON_AddNumberToObject(lv, "mean", sum / (double)total));
        CHK(cJSON_AddNumberToObject(lv, "median", median));
        CHK(cJSON_AddNumberToObject(lv, "min", vol[0]));
        CHK(cJSON_AddNumberToObject(lv, "max", vol[total - 1]));
    } else {
        /* No lesion in the dataset: the statistics are undefined, not zero. */
        CHK(cJSON_AddNullToObject(lv, "mean"));
        CHK(cJSON_AddNullToObject(lv, "median"));
        CHK(cJSON_AddNullToObject(lv, "min"));
        CHK(cJSON_AddNullToObject(lv, "max"));
    }
    free(vol);
    cJSON *lab = cJSON_AddObjectToObject(o, "label_voxels");
    CHK(lab);
    for (int l = 0; lab && l < e->n_labels; l++) {
        int64_t t = 0;
        for (size_t i = 0; i < e->n_cases; i++)
            if (rsy__export_holds(e, i))
                t += e->cases[i]->label_voxels[l];
        CHK(cJSON_AddNumberToObject(lab, e->label_names[l], (double)t));
    }
    if (failed) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *case_entry(const rsy_export *e, size_t i)
{
    char case_id[32], rel[RSY_EXPORT_REL_MAX];
    const rsy__case_summary *s = e->cases[i];
    int failed = 0;
    rsy_export_case_id(i, case_id, sizeof case_id);
    cJSON *o = cJSON_CreateObject();
    CHK(cJSON_AddStringToObject(o, "case_id", case_id));
    rsy__export_manifest_relpath(case_id, rel, sizeof rel);
    CHK(cJSON_AddStringToObject(o, "manifest", rel));
    CHK(cJSON_AddStringToObject(o, "manifest_sha256", s->manifest_sha));
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    CHK(files);
    for (int f = 0; files && f < e->n_channels + 2; f++) {
        if (f < e->n_channels)
            rsy__export_image_relpath(e, case_id, f, rel, sizeof rel);
        else if (f == e->n_channels)
            rsy__export_label_relpath(e, case_id, rel, sizeof rel);
        else
            rsy__export_instance_relpath(case_id, rel, sizeof rel);
        cJSON *fe = file_entry(rel, s->sha[f]);
        if (!fe || !cJSON_AddItemToArray(files, fe)) {
            cJSON_Delete(fe);
            failed = 1;
        }
    }
    CHK(cJSON_AddNumberToObject(o, "n_lesions", s->n_lesions));
    if (failed) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* {"name", "file": base name, "sha256"} of a configuration file the recipe was built from. */
static cJSON *config_file_entry(const char *name, const char *path, const char *sha)
{
    int failed = 0;
    cJSON *o = cJSON_CreateObject();
    CHK(cJSON_AddStringToObject(o, "name", name));
    CHK(cJSON_AddStringToObject(o, "file", rsy__export_basename(path)));
    CHK(cJSON_AddStringToObject(o, "sha256", sha));
    if (failed) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static const char *const layout_names[] = {"nnunet", "msd", "nndet"};
static const char *const format_names[] = {"nifti", "hdf5"};

cJSON *rsy__export_outputs_object(const rsy_export *e)
{
    int failed = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *lay = cJSON_AddObjectToObject(o, "layouts");
    CHK(lay);
    const char *dirs[] = {e->nnunet_dir, RSY_EXPORT_MSD_DIR, e->nndet_dir};
    for (int b = 0; b < 3; b++)
        if (e->layouts & (1u << b))
            CHK(cJSON_AddStringToObject(lay, layout_names[b], dirs[b]));
    cJSON *fmt = cJSON_AddArrayToObject(o, "formats");
    CHK(fmt);
    for (int b = 0; fmt && b < 2; b++) {
        if (!(e->formats & (1u << b)))
            continue;
        cJSON *str = cJSON_CreateString(format_names[b]);
        if (!str || !cJSON_AddItemToArray(fmt, str)) {
            cJSON_Delete(str);
            failed = 1;
        }
    }
    CHK(cJSON_AddBoolToObject(o, "previews", e->preview != 0));
    if (failed) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* raresynth.json: written last; its presence marks the dataset complete. For a shard
 * (shard_count >= 2) it is the shard manifest: the same document with "shard" and only the
 * shard's cases (docs/manifest.md section 5). @p hdf5_sha is the HDF5 file's checksum, or
 * NULL without one. */
static rsy_status write_dataset_manifest(const rsy_export *e, const char *hdf5_sha)
{
    const rsy_recipe *r = e->recipe;
    char seed[24];
    int failed = 0;
    const char *end = NULL;
    rsy__export_u64_string(r->seed, seed);

    cJSON *doc = cJSON_CreateObject();
    CHK(cJSON_AddNumberToObject(doc, "raresynth_dataset", 1));
    if (e->shard_count > 1) {
        cJSON *sh = cJSON_AddObjectToObject(doc, "shard");
        CHK(sh);
        CHK(cJSON_AddNumberToObject(sh, "index", (double)e->shard_index));
        CHK(cJSON_AddNumberToObject(sh, "count", (double)e->shard_count));
        CHK(cJSON_AddNumberToObject(sh, "n_cases", (double)rsy__export_n_held(e)));
    }
    CHK(cJSON_AddStringToObject(doc, "name", r->name));
    CHK(cJSON_AddNumberToObject(doc, "dataset_id", r->dataset_id));
    CHK(cJSON_AddStringToObject(doc, "description", r->description));
    cJSON *gen = cJSON_AddObjectToObject(doc, "generator");
    CHK(gen);
    CHK(cJSON_AddStringToObject(gen, "name", "raresynth"));
    CHK(cJSON_AddStringToObject(gen, "version", rsy_version()));
    CHK(cJSON_AddStringToObject(gen, "rng", rsy_rng_description()));
    CHK(cJSON_AddStringToObject(doc, "seed", seed));
    cJSON *rec = cJSON_AddObjectToObject(doc, "recipe");
    CHK(rec);
    CHK(cJSON_AddStringToObject(rec, "path", rsy__export_basename(r->path)));
    CHK(cJSON_AddStringToObject(rec, "sha256", r->sha256));
    CHK(rsy__json_add(rec, "content", cJSON_ParseWithLengthOpts(r->json, strlen(r->json) + 1, &end, 1)));
    /* The values used, which --cases / --seed may have changed from the recipe's. */
    cJSON *eff = cJSON_AddObjectToObject(doc, "effective");
    CHK(eff);
    CHK(cJSON_AddNumberToObject(eff, "cases", (double)e->n_cases));
    CHK(cJSON_AddStringToObject(eff, "seed", seed));
    cJSON *priors = cJSON_AddArrayToObject(doc, "priors");
    CHK(priors);
    for (int t = 0; priors && t < r->n_lesion_types; t++) {
        const rsy_prior *pr = &r->lesions[t].prior;
        cJSON *po = config_file_entry(pr->name, pr->path, e->prior_sha[t]);
        if (!po || !cJSON_AddItemToArray(priors, po)) {
            cJSON_Delete(po);
            failed = 1;
        }
    }
    CHK(rsy__json_add(doc, "tissue_table",
                 config_file_entry(r->tissues.name, r->tissues.path, e->tissue_sha)));
    if (strcmp(r->modality, "ct") == 0) {
        CHK(rsy__json_add(doc, "scanner_profile",
                     config_file_entry(r->ct.scanner.name, r->ct.scanner.path, e->scanner_sha)));
        /* The dose channels of a case are one acquisition simulated at several doses. */
        cJSON *pair = cJSON_AddObjectToObject(doc, "paired");
        CHK(pair);
        CHK(cJSON_AddStringToObject(pair, "by", "dose"));
        CHK(cJSON_AddStringToObject(
            pair, "statement",
            "the channels of a case share subject, anatomy, lesions, texture and label map and "
            "differ only in dose (and so in their noise draw)"));
        cJSON *doses = cJSON_AddArrayToObject(pair, "dose_fractions");
        CHK(doses);
        for (int i = 0; doses && i < r->ct.n_doses; i++) {
            cJSON *d = cJSON_CreateNumber(r->ct.doses[i]);
            if (!d || !cJSON_AddItemToArray(doses, d)) {
                cJSON_Delete(d);
                failed = 1;
            }
        }
    }
    if (r->texture == RSY_TEXTURE_PRESET)
        CHK(rsy__json_add(doc, "texture_preset",
                     config_file_entry(r->texture_spec.preset.name, r->texture_spec.preset.path,
                                       e->preset_sha)));
    CHK(cJSON_AddNumberToObject(doc, "n_cases", (double)e->n_cases));
    CHK(rsy__json_add(doc, "labels", label_object(e)));
    CHK(rsy__json_add(doc, "labels_perilesional", perilesional_array(e)));
    CHK(rsy__json_add(doc, "channels", channel_object(e)));
    CHK(cJSON_AddStringToObject(doc, "nnunet_dir", e->nnunet_dir));
    CHK(rsy__json_add(doc, "outputs", rsy__export_outputs_object(e)));
    if (hdf5_sha) {
        char rel[RSY_EXPORT_REL_MAX];
        snprintf(rel, sizeof rel, "%s.h5", e->nnunet_dir);
        CHK(rsy__json_add(doc, "hdf5", file_entry(rel, hdf5_sha)));
    }
    cJSON *cases = cJSON_AddArrayToObject(doc, "cases");
    CHK(cases);
    for (size_t i = 0; cases && !failed && i < e->n_cases; i++) {
        if (!rsy__export_holds(e, i))
            continue;
        cJSON *ce = case_entry(e, i);
        if (!ce || !cJSON_AddItemToArray(cases, ce)) {
            cJSON_Delete(ce);
            failed = 1;
        }
    }
    CHK(rsy__json_add(doc, "summary", summary_object(e)));
    CHK(cJSON_AddStringToObject(doc, "data_sources", RSY_EXPORT_DATA_SOURCES));
    CHK(cJSON_AddStringToObject(doc, "texture", e->texture_note));
    return write_doc(e, RSY_EXPORT_MANIFEST, doc, failed);
}

rsy_status rsy__export_write_dataset_files(const rsy_export *e)
{
    char dir[RSY_PATH_MAX];
    rsy_status rc;
    if (e->shard_count > 1) {
        /* A shard holds cases only: the dataset files are written by `merge`. */
        if ((rc = write_dataset_manifest(e, NULL)) != RSY_OK)
            return rc;
        return rsy__export_fsync(e->out_dir);
    }
    char h5_sha[65] = "";
    int hdf5 = (e->formats & RSY_FORMAT_HDF5) != 0;
    /* raresynth.json marks the dataset complete: everything before it must be durable first
     * (each file was fsynced before its rename; the folders hold the renames). */
    if ((rc = write_nnunet_json(e)) != RSY_OK ||
        (rc = rsy__export_write_layout_files(e)) != RSY_OK ||
        (hdf5 && (rc = rsy__export_build_hdf5(e, h5_sha)) != RSY_OK) ||
        (rc = write_bids_description(e)) != RSY_OK)
        return rc;
    const char *sub[] = {e->nnunet_dir, RSY_EXPORT_MSD_DIR, e->nndet_dir};
    for (int b = 0; b < 3; b++) {
        if (!(e->layouts & (1u << b)))
            continue;
        if ((rc = rsy__export_path(dir, sizeof dir, "%s/%s", e->out_dir, sub[b])) != RSY_OK ||
            (rc = rsy__export_fsync(dir)) != RSY_OK)
            return rc;
    }
    if ((rc = rsy__export_fsync(e->out_dir)) != RSY_OK ||
        (rc = write_dataset_manifest(e, hdf5 ? h5_sha : NULL)) != RSY_OK)
        return rc;
    return rsy__export_fsync(e->out_dir);
}
