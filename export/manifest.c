/*
 * manifest.c: the JSON documents of a dataset (docs/manifest.md documents every key).
 *
 * Every document is deterministic: no timestamps, host names or absolute paths; keys in a
 * fixed order; numbers printed by cJSON (%1.15g, or %1.17g when needed to round-trip);
 * 64-bit seeds and hashes as decimal or hex strings (reference/formats.md, "cJSON 1.7.15").
 */
#include <inttypes.h>
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

static cJSON *add_item(cJSON *obj, const char *key, cJSON *arr)
{
    if (!arr)
        return NULL;
    if (!cJSON_AddItemToObject(obj, key, arr)) {
        cJSON_Delete(arr);
        return NULL;
    }
    return arr;
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
    CHK(add_item(o, "label", file_entry(rel, sha[e->n_channels])));
    rsy__export_instance_relpath(case_id, rel, sizeof rel);
    CHK(add_item(o, "instances", file_entry(rel, sha[e->n_channels + 1])));
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
    CHK(add_item(o, "centroid_vox", cJSON_CreateDoubleArray(r->centroid_vox, 3)));
    CHK(add_item(o, "centroid_mm", cJSON_CreateDoubleArray(r->centroid_mm, 3)));
    CHK(add_item(o, "bbox_min_vox", int64_array(r->bbox_min, 3)));
    CHK(add_item(o, "bbox_max_vox", int64_array(r->bbox_max, 3)));
    CHK(add_item(o, "box_cccwhd_mm", cJSON_CreateDoubleArray(r->box_cccwhd_mm, 6)));
    CHK(cJSON_AddNumberToObject(o, "long_axis_mm", r->long_axis_mm));
    CHK(cJSON_AddNumberToObject(o, "short_axis_mm", r->short_axis_mm));
    CHK(cJSON_AddNumberToObject(o, "key_slice", (double)r->key_slice));
    const int64_t range[2] = {r->slice_min, r->slice_max};
    CHK(add_item(o, "slice_range", int64_array(range, 2)));
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
    CHK(add_item(doc, "seeds", seeds_object(e, c->case_index)));
    cJSON *subject = cJSON_AddObjectToObject(doc, "subject");
    CHK(subject);
    if (failed)
        goto fail;
    snprintf(what, sizeof what, "case %zu subject", c->case_index);
    if ((rc = add_kvs(subject, c->subject, c->n_subject, what)) != RSY_OK ||
        (rc = acquisition_object(&acq, e, c)) != RSY_OK)
        goto fail;
    CHK(add_item(doc, "acquisition", acq));
    acq = NULL;
    CHK(cJSON_AddStringToObject(doc, "texture", e->texture_note));
    CHK(add_item(doc, "files", files_object(e, case_id, sha)));
    CHK(add_item(doc, "labels", label_object(e)));
    CHK(add_item(doc, "labels_perilesional", perilesional_array(e)));
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
    CHK(add_item(doc, "channel_names", channel_object(e)));
    CHK(add_item(doc, "labels", label_object(e)));
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

/* Summary statistics over cases, computed in case order (independent of write order). */
static cJSON *summary_object(const rsy_export *e)
{
    int failed = 0;
    size_t total = 0;
    int min_l = 0, max_l = 0;
    for (size_t i = 0; i < e->n_cases; i++) {
        int n = e->cases[i]->n_lesions;
        total += (size_t)n;
        if (i == 0 || n < min_l)
            min_l = n;
        if (i == 0 || n > max_l)
            max_l = n;
    }
    double *vol = total ? malloc(total * sizeof *vol) : NULL;
    if (total && !vol)
        return NULL;
    size_t m = 0;
    double sum = 0.0;
    for (size_t i = 0; i < e->n_cases; i++) {
        for (int l = 0; l < e->cases[i]->n_lesions; l++) {
            vol[m] = e->cases[i]->lesion_volume_mm3[l];
            sum += vol[m++];
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *lpc = cJSON_AddObjectToObject(o, "lesions_per_case");
    CHK(lpc);
    CHK(cJSON_AddNumberToObject(lpc, "mean", (double)total / (double)e->n_cases));
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

/* raresynth.json: written last; its presence marks the dataset complete. */
static rsy_status write_dataset_manifest(const rsy_export *e)
{
    const rsy_recipe *r = e->recipe;
    char seed[24];
    int failed = 0;
    const char *end = NULL;
    rsy__export_u64_string(r->seed, seed);

    cJSON *doc = cJSON_CreateObject();
    CHK(cJSON_AddNumberToObject(doc, "raresynth_dataset", 1));
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
    CHK(add_item(rec, "content", cJSON_ParseWithLengthOpts(r->json, strlen(r->json) + 1, &end, 1)));
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
    CHK(add_item(doc, "tissue_table",
                 config_file_entry(r->tissues.name, r->tissues.path, e->tissue_sha)));
    if (strcmp(r->modality, "ct") == 0) {
        CHK(add_item(doc, "scanner_profile",
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
        CHK(add_item(doc, "texture_preset",
                     config_file_entry(r->texture_spec.preset.name, r->texture_spec.preset.path,
                                       e->preset_sha)));
    CHK(cJSON_AddNumberToObject(doc, "n_cases", (double)e->n_cases));
    CHK(add_item(doc, "labels", label_object(e)));
    CHK(add_item(doc, "labels_perilesional", perilesional_array(e)));
    CHK(add_item(doc, "channels", channel_object(e)));
    CHK(cJSON_AddStringToObject(doc, "nnunet_dir", e->nnunet_dir));
    cJSON *cases = cJSON_AddArrayToObject(doc, "cases");
    CHK(cases);
    for (size_t i = 0; cases && !failed && i < e->n_cases; i++) {
        cJSON *ce = case_entry(e, i);
        if (!ce || !cJSON_AddItemToArray(cases, ce)) {
            cJSON_Delete(ce);
            failed = 1;
        }
    }
    CHK(add_item(doc, "summary", summary_object(e)));
    CHK(cJSON_AddStringToObject(doc, "data_sources", RSY_EXPORT_DATA_SOURCES));
    CHK(cJSON_AddStringToObject(doc, "texture", e->texture_note));
    return write_doc(e, RSY_EXPORT_MANIFEST, doc, failed);
}

rsy_status rsy__export_write_dataset_files(const rsy_export *e)
{
    char nn[RSY_PATH_MAX];
    rsy_status rc;
    if ((rc = rsy__export_path(nn, sizeof nn, "%s/%s", e->out_dir, e->nnunet_dir)) != RSY_OK)
        return rc;
    /* raresynth.json marks the dataset complete: everything before it must be durable first
     * (each file was fsynced before its rename; the folders hold the renames). */
    if ((rc = write_nnunet_json(e)) != RSY_OK || (rc = write_bids_description(e)) != RSY_OK ||
        (rc = rsy__export_fsync(nn)) != RSY_OK || (rc = rsy__export_fsync(e->out_dir)) != RSY_OK ||
        (rc = write_dataset_manifest(e)) != RSY_OK)
        return rc;
    return rsy__export_fsync(e->out_dir);
}
