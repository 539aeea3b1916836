/*
 * validate.c: `raresynth validate DIR`. Re-reads a dataset and reports every problem as one
 * line "PATH: what is wrong" at RSY_LOG_ERROR; it never stops at the first one. docs/validate.md
 * lists every check, its message and what to do about it.
 *
 * Checked (reference/formats.md): the marker and raresynth.json; the nnU-Net v2 checklist
 * (folder name, dataset.json keys, numTraining, every channel of every case, no stray file in
 * imagesTr/labelsTr, one label map per case, label values declared and consecutive, equal
 * shapes and affines, no NaN); the NIfTI header rules; SHA-256 checksums of every file the
 * manifests list; the lesion records, recomputed from the label and instance maps with
 * rsy_export_measure_lesions(); the MSD/MONAI and nnDetection layouts, whose rules are coded
 * here from formats.md and not taken from the writer; the HDF5 file (voxels against the NIfTI
 * files, attributes per docs/hdf5.md); the previews (PNG signature, IHDR, IEND); shard
 * manifests; and interrupted runs (incomplete, but every present case complete).
 *
 * Hostile input. validate reads files it did not write and may be pointed at anything, so:
 * - it only reads: files are opened read-only, nothing is created, renamed or removed;
 * - a path is only opened when it resolves (symbolic links included) to a regular file or a
 *   folder inside DIR; paths from JSON must be relative without "..", case ids [A-Za-z0-9_-];
 * - allocation is bounded by the input: a NIfTI header's dims are checked against what the
 *   file can hold (deflate expands at most 1032:1) before the voxels are read; JSON documents
 *   have size limits and a nesting limit, checked before parsing;
 * - an HDF5 file is opened with the HDF5 library only when its SHA-256 matches the one
 *   raresynth.json records (the HDF5 library is not hardened against crafted files);
 * - lookups are O(log n) in the number of cases, so a manifest listing millions of cases
 *   takes time proportional to its size.
 *
 * The checks are split by subject (validate_internal.h lists the files). This file holds the
 * entry point and the report, the nnU-Net folder and dataset.json, raresynth.json and the case
 * manifests, the lesion records, and the per-case and dataset-level steps that call the rest.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_internal.h"

/* Measured and recorded values agree within |a-b| <= REL_TOL·max(|a|,|b|) + ABS_TOL. The
 * absolute floor covers NIfTI's float32 storage of the affine (2^-24 relative, so < 1e-4 mm
 * for world coordinates within ±1.6 m); REL_TOL covers cJSON's round-trip printing. */
#define REL_TOL 1e-6
#define ABS_TOL 1e-4
/* Summary statistics recomputed from the cases agree within this relative tolerance (they
 * are sums of the same doubles, possibly in another order). */
#define SUMMARY_REL_TOL 1e-9

/* ---------------------------------------------------------------------------------------- */
/* Reporting                                                                                  */
/* ---------------------------------------------------------------------------------------- */
void rsy__validate_emit(vctx *v, int counted, const char *rel, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (counted) {
        if (rel)
            rsy_log_error("%s/%s: %s", v->dir, rel, msg);
        else
            rsy_log_error("%s: %s", v->dir, msg);
        v->rep->problems++;
    } else if (rel) {
        rsy_log_warning("%s/%s: %s", v->dir, rel, msg);
    } else {
        rsy_log_warning("%s: %s", v->dir, msg);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Dictionaries: labels and channels                                                          */
/* ---------------------------------------------------------------------------------------- */
/* Parse a {"name": value} label object: needs "background": 0 and values 0..n-1 each once. */
static int parse_labels(vctx *v, const char *rel, const cJSON *labels)
{
    int seen[RSY_MAX_LABELS] = {0}, n = 0, bad = 0, ok;
    char names[RSY_MAX_LABELS][RSY_NAME_MAX];
    memset(names, 0, sizeof names);
    if (!cJSON_IsObject(labels)) {
        problem(v, rel, "\"labels\" missing or not an object");
        return 0;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        int64_t val = json_int(it, &ok);
        if (!ok || val < 0 || val >= RSY_MAX_LABELS) {
            problem(v, rel, "labels.%.64s: expected an integer label value in 0..%d", it->string,
                    RSY_MAX_LABELS - 1);
            bad = 1;
            continue;
        }
        if (seen[val]) {
            problem(v, rel, "labels.%.64s: value %lld used twice", it->string, (long long)val);
            bad = 1;
        }
        seen[val] = 1;
        snprintf(names[val], RSY_NAME_MAX, "%s", it->string);
        n++;
    }
    const cJSON *bg = json_get(labels, "background");
    if (!bg || json_int(bg, &ok) != 0 || !ok) {
        problem(v, rel, "labels: \"background\": 0 is required");
        bad = 1;
    }
    for (int i = 0; i < n && !bad; i++) {
        if (!seen[i]) {
            problem(v, rel, "labels: values are not consecutive from 0 (%d missing)", i);
            bad = 1;
        }
    }
    if (bad)
        return 0;
    v->n_labels = n;
    memcpy(v->label_names, names, sizeof names);
    return 1;
}

/* Parse a {"0": "T1w", ...} channel object: keys "0".."C-1", string values. */
static int parse_channels(vctx *v, const char *rel, const cJSON *ch, const char *key)
{
    if (!cJSON_IsObject(ch)) {
        problem(v, rel, "\"%s\" missing or not an object", key);
        return 0;
    }
    int n = cJSON_GetArraySize(ch);
    if (n < 1 || n > MAX_CHANNELS) {
        problem(v, rel, "%s: %d channels (need 1..%d)", key, n, MAX_CHANNELS);
        return 0;
    }
    for (int c = 0; c < n; c++) {
        char k[16];
        snprintf(k, sizeof k, "%d", c);
        const char *name = json_str(ch, k);
        if (!name) {
            problem(v, rel, "%s: key \"%s\" missing or not a string (keys must be \"0\"..\"%d\")",
                    key, k, n - 1);
            return 0;
        }
        snprintf(v->channel_names[c], RSY_NAME_MAX, "%s", name);
    }
    v->n_channels = n;
    return 1;
}

/* The perilesional flags of a "labels_perilesional" list (declared, non-background names).
 * 0 (reported) if the list is missing or names an unknown label. */
static int perilesional_flags(vctx *v, const char *rel, const cJSON *owner,
                              unsigned char peri[RSY_MAX_LABELS])
{
    const cJSON *list = json_get(owner, "labels_perilesional"), *it;
    memset(peri, 0, RSY_MAX_LABELS);
    if (!cJSON_IsArray(list)) {
        problem(v, rel, "labels_perilesional missing or not an array of label names");
        return 0;
    }
    int ok = 1, idx = 0;
    cJSON_ArrayForEach(it, list)
    {
        int found = 0;
        for (int lab = 1; cJSON_IsString(it) && lab < v->n_labels; lab++) {
            if (strcmp(it->valuestring, v->label_names[lab]) == 0) {
                peri[lab] = 1;
                found = 1;
            }
        }
        if (!found) {
            problem(v, rel, "labels_perilesional[%d] is not a declared non-background label", idx);
            ok = 0;
        }
        idx++;
    }
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Dataset level: the nnU-Net folder                                                          */
/* ---------------------------------------------------------------------------------------- */
/* "<prefix>NNN_Name": NNN three digits, Name [A-Za-z0-9]+ (nnU-Net "Dataset", nnDetection
 * "Task"). */
static int numbered_name_ok(const char *s, const char *prefix)
{
    size_t p = strlen(prefix);
    if (strlen(s) >= 96 || strncmp(s, prefix, p) != 0)
        return 0;
    for (size_t i = p; i < p + 3; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    if (s[p + 3] != '_' || !s[p + 4])
        return 0;
    for (const char *c = s + p + 4; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

/* The one folder of DIR named "<prefix>NNN_Name" into @p out (96 bytes); 0 if none. */
int rsy__validate_find_numbered_dir(vctx *v, const char *prefix, const char *what, char *out)
{
    DIR *d = rsy__validate_open_folder(v, ".", NULL);
    if (!d)
        return 0;
    struct dirent *ent;
    int found = 0;
    size_t p = strlen(prefix);
    while ((ent = readdir(d)) != NULL) {
        if (strncmp(ent->d_name, prefix, p) != 0 || ends_with(ent->d_name, ".h5") ||
            is_temporary(ent->d_name))
            continue;
        if (!numbered_name_ok(ent->d_name, prefix)) {
            problem(v, ent->d_name,
                    "%s folder name is not %sNNN_Name (NNN three digits, Name letters and "
                    "digits)",
                    what, prefix);
            continue;
        }
        if (found++) {
            problem(v, ent->d_name, "a second %s folder (one dataset per directory)", what);
            continue;
        }
        snprintf(out, 96, "%.95s", ent->d_name);
    }
    closedir(d);
    return found > 0;
}

static void find_nnunet_dir(vctx *v)
{
    const char *named = v->dsman ? json_str(v->dsman, "nnunet_dir") : NULL;
    if (named) {
        if (!numbered_name_ok(named, "Dataset")) {
            problem(v, RSY_EXPORT_MANIFEST,
                    "nnunet_dir \"%.96s\" is not of the form DatasetNNN_Name (NNN three digits)",
                    named);
            return;
        }
        snprintf(v->nnunet_dir, sizeof v->nnunet_dir, "%.95s", named);
        v->have_nnunet = 1;
        return;
    }
    v->have_nnunet = rsy__validate_find_numbered_dir(v, "Dataset", "nnU-Net", v->nnunet_dir);
    if (!v->have_nnunet)
        problem(v, NULL, "no nnU-Net folder DatasetNNN_Name");
}

/* dataset.json (reference/formats.md, "nnU-Net v2"). */
static void check_nnunet_json(vctx *v)
{
    char rel[RSY_EXPORT_REL_MAX];
    snprintf(rel, sizeof rel, "%s/dataset.json", v->nnunet_dir);
    /* Only finish() writes it: a shard or an interrupted run need not have it. */
    v->nnjson = rsy__validate_load_json(v, rel, v->rep->complete, 1, RSY_EXPORT_JSON_MAX_BYTES);
    if (!v->nnjson)
        return;
    if (json_get(v->nnjson, "dataset"))
        problem(v, rel, "has a key \"dataset\", which switches nnU-Net to explicit file lists");
    parse_channels(v, rel, json_get(v->nnjson, "channel_names"), "channel_names");
    parse_labels(v, rel, json_get(v->nnjson, "labels"));
    const char *fe = json_str(v->nnjson, "file_ending");
    if (!fe || strcmp(fe, RSY_EXPORT_NII) != 0)
        problem(v, rel, "file_ending must be \"" RSY_EXPORT_NII "\"");
    int ok;
    int64_t nt = json_int(json_get(v->nnjson, "numTraining"), &ok);
    if (!ok)
        problem(v, rel, "numTraining missing or not an integer");
    else if (v->rep->complete && (nt < 0 || (size_t)nt != v->n_cases))
        problem(v, rel, "numTraining is %lld but the dataset has %zu cases", (long long)nt,
                v->n_cases);
}

/* ---------------------------------------------------------------------------------------- */
/* The cases                                                                                  */
/* ---------------------------------------------------------------------------------------- */
static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const vcase *)a)->id, ((const vcase *)b)->id);
}

vcase *rsy__validate_find_case(const vctx *v, const char *id)
{
    if (!v->n_cases)
        return NULL;
    vcase key;
    memset(&key, 0, sizeof key);
    key.id = (char *)(uintptr_t)id; /* only read by cmp_case */
    return bsearch(&key, v->cases, v->n_cases, sizeof *v->cases, cmp_case);
}

/* The case index of "case_NNNN" (at least 4 digits, no sign), or -1. */
static int64_t case_index_of(const char *id)
{
    if (strncmp(id, "case_", 5) != 0)
        return -1;
    const char *d = id + 5;
    size_t n = strlen(d);
    if (n < 4 || n > 15)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        x = 10 * x + (d[i] - '0');
    }
    char back[32];
    rsy_export_case_id((size_t)x, back, sizeof back);
    return strcmp(back, id) == 0 ? x : -1; /* "case_00001" is not the id of case 1 */
}

static rsy_status add_case(vctx *v, const char *id, int list_pos, const cJSON *entry)
{
    if (v->n_cases == v->cap_cases) {
        size_t cap = v->cap_cases ? 2 * v->cap_cases : 64;
        vcase *grown = realloc(v->cases, cap * sizeof *grown);
        if (!grown)
            return RSY_ENOMEM;
        v->cases = grown;
        v->cap_cases = cap;
    }
    vcase *c = &v->cases[v->n_cases];
    memset(c, 0, sizeof *c);
    size_t n = strlen(id) + 1;
    if (!(c->id = malloc(n)))
        return RSY_ENOMEM;
    memcpy(c->id, id, n);
    c->index = case_index_of(id);
    c->list_pos = list_pos;
    c->entry = entry;
    c->msd_pos = -1;
    v->n_cases++;
    return RSY_OK;
}

/* Sort the cases by id and report (and drop) ids listed twice. */
static void sort_cases(vctx *v)
{
    if (v->n_cases > 1)
        qsort(v->cases, v->n_cases, sizeof *v->cases, cmp_case);
    size_t w = 0;
    for (size_t i = 0; i < v->n_cases; i++) {
        if (w > 0 && !strcmp(v->cases[w - 1].id, v->cases[i].id)) {
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d]: case id %s listed twice",
                    v->cases[i].list_pos, v->cases[i].id);
            free(v->cases[i].id);
            continue;
        }
        v->cases[w++] = v->cases[i];
    }
    v->n_cases = w;
}

/* The expected cases: raresynth.json's list when present, else every manifest present. Each
 * manifest file must belong to a listed case. */
static rsy_status collect_cases(vctx *v)
{
    rsy_status rc;
    if (v->dsman) {
        const cJSON *cases = json_get(v->dsman, "cases"), *c;
        if (!cJSON_IsArray(cases)) {
            problem(v, RSY_EXPORT_MANIFEST, "\"cases\" missing or not an array");
        } else {
            int idx = 0;
            cJSON_ArrayForEach(c, cases)
            {
                const char *id = json_str(c, "case_id");
                if (!id || !safe_id(id)) {
                    problem(v, RSY_EXPORT_MANIFEST,
                            "cases[%d].case_id missing or unsafe (need [A-Za-z0-9_-], no '/', "
                            "'.' or '..')",
                            idx);
                } else if ((rc = add_case(v, id, idx, c)) != RSY_OK) {
                    return rc;
                }
                idx++;
            }
            int ok;
            int64_t n = json_int(json_get(v->dsman, "n_cases"), &ok);
            if (v->shard_count) {
                int64_t held = json_int(json_get(json_get(v->dsman, "shard"), "n_cases"), &ok);
                if (held != idx)
                    problem(v, RSY_EXPORT_MANIFEST,
                            "shard.n_cases does not equal the %d cases listed", idx);
                n = json_int(json_get(v->dsman, "n_cases"), &ok);
                if (!ok || (v->total_cases >= 0 && n != v->total_cases))
                    problem(v, RSY_EXPORT_MANIFEST,
                            "n_cases must be the whole dataset's case count (effective.cases)");
            } else if (!ok || n != idx) {
                problem(v, RSY_EXPORT_MANIFEST, "n_cases does not equal the %d cases listed", idx);
            }
        }
    }
    const char *rel = RSY_EXPORT_MANIFEST_DIR;
    int missing = 0;
    DIR *d = rsy__validate_open_folder(v, rel, &missing);
    if (!d) {
        if (missing && (v->dsman || rsy__validate_path_exists(v, RSY_EXPORT_MARKER)))
            problem(v, rel, "manifest folder missing");
        sort_cases(v);
        return RSY_OK;
    }
    struct dirent *ent;
    rc = RSY_OK;
    while (rc == RSY_OK && (ent = readdir(d)) != NULL) {
        char stem[ID_MAX + 8];
        if (is_dot(ent->d_name))
            continue;
        size_t n = strlen(ent->d_name);
        if (is_temporary(ent->d_name) && !v->dsman) {
            note(v, rel, "partial file %s (a manifest being written when the run stopped)",
                 ent->d_name);
            v->partial_files++;
            continue;
        }
        if (!ends_with(ent->d_name, ".json") || n - 5 >= sizeof stem) {
            problem(v, rel, "unexpected file %.255s", ent->d_name);
            continue;
        }
        memcpy(stem, ent->d_name, n - 5);
        stem[n - 5] = '\0';
        if (!safe_id(stem))
            problem(v, rel, "manifest %.255s has an unsafe case id", ent->d_name);
        else if (!v->dsman)
            rc = add_case(v, stem, -1, NULL);
    }
    closedir(d);
    sort_cases(v);
    if (rc == RSY_OK && v->dsman) {
        /* Listed cases are known now: every manifest must belong to one. */
        if ((d = rsy__validate_open_folder(v, rel, NULL)) != NULL) {
            while ((ent = readdir(d)) != NULL) {
                size_t n = strlen(ent->d_name);
                if (is_dot(ent->d_name) || !ends_with(ent->d_name, ".json") || n - 5 >= ID_MAX)
                    continue;
                char stem[ID_MAX];
                memcpy(stem, ent->d_name, n - 5);
                stem[n - 5] = '\0';
                if (safe_id(stem) && !rsy__validate_find_case(v, stem))
                    problem(v, rel, "manifest %s belongs to no case listed in " RSY_EXPORT_MANIFEST,
                            ent->d_name);
            }
            closedir(d);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Lesion records                                                                             */
/* ---------------------------------------------------------------------------------------- */
typedef struct lctx {
    vctx *v;
    const char *manrel;
    int index, id;
} lctx;

static void cmp_int(lctx *l, const char *key, const cJSON *item, int64_t measured)
{
    int ok;
    int64_t got = json_int(item, &ok);
    if (!ok)
        problem(l->v, l->manrel, "lesions[%d] (instance %d): %s missing or not an integer",
                l->index, l->id, key);
    else if (got != measured)
        problem(l->v, l->manrel,
                "lesions[%d] (instance %d): %s is %lld in the manifest, %lld measured from the "
                "voxels",
                l->index, l->id, key, (long long)got, (long long)measured);
}

static int close_enough(double a, double b)
{
    return fabs(a - b) <= REL_TOL * fmax(fabs(a), fabs(b)) + ABS_TOL;
}

static void cmp_num(lctx *l, const char *key, const cJSON *item, double measured)
{
    if (!cJSON_IsNumber(item))
        problem(l->v, l->manrel, "lesions[%d] (instance %d): %s missing or not a number", l->index,
                l->id, key);
    else if (!close_enough(item->valuedouble, measured))
        problem(l->v, l->manrel,
                "lesions[%d] (instance %d): %s is %.9g in the manifest, %.9g measured from the "
                "voxels",
                l->index, l->id, key, item->valuedouble, measured);
}

static void cmp_vec(lctx *l, const cJSON *lesion, const char *key, const double *m, int n,
                    int integer)
{
    const cJSON *arr = json_get(lesion, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) {
        problem(l->v, l->manrel, "lesions[%d] (instance %d): %s missing or not %d numbers",
                l->index, l->id, key, n);
        return;
    }
    for (int i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s[%d]", key, i);
        if (integer)
            cmp_int(l, k, cJSON_GetArrayItem(arr, i), (int64_t)m[i]);
        else
            cmp_num(l, k, cJSON_GetArrayItem(arr, i), m[i]);
    }
}

static void compare_lesion(lctx *l, const cJSON *o, const rsy_lesion_record *r)
{
    vctx *v = l->v;
    double b0[3], b1[3], range[2] = {(double)r->slice_min, (double)r->slice_max};
    for (int a = 0; a < 3; a++) {
        b0[a] = (double)r->bbox_min[a];
        b1[a] = (double)r->bbox_max[a];
    }
    cmp_int(l, "voxel_count", json_get(o, "voxel_count"), r->voxel_count);
    cmp_num(l, "volume_mm3", json_get(o, "volume_mm3"), r->volume_mm3);
    cmp_int(l, "mass_voxel_count", json_get(o, "mass_voxel_count"), r->mass_voxel_count);
    cmp_num(l, "mass_volume_mm3", json_get(o, "mass_volume_mm3"), r->mass_volume_mm3);
    cmp_vec(l, o, "centroid_vox", r->centroid_vox, 3, 0);
    cmp_vec(l, o, "centroid_mm", r->centroid_mm, 3, 0);
    cmp_vec(l, o, "bbox_min_vox", b0, 3, 1);
    cmp_vec(l, o, "bbox_max_vox", b1, 3, 1);
    cmp_vec(l, o, "box_cccwhd_mm", r->box_cccwhd_mm, 6, 0);
    cmp_num(l, "long_axis_mm", json_get(o, "long_axis_mm"), r->long_axis_mm);
    cmp_num(l, "short_axis_mm", json_get(o, "short_axis_mm"), r->short_axis_mm);
    cmp_int(l, "key_slice", json_get(o, "key_slice"), r->key_slice);
    cmp_vec(l, o, "slice_range", range, 2, 1);
    cmp_num(l, "equivalent_diameter_mm", json_get(o, "equivalent_diameter_mm"),
            r->equivalent_diameter_mm);

    const cJSON *comp = json_get(o, "compartments"), *c;
    if (!cJSON_IsObject(comp)) {
        problem(v, l->manrel, "lesions[%d] (instance %d): compartments missing", l->index, l->id);
        return;
    }
    for (int lab = 1; lab < v->n_labels; lab++) {
        const cJSON *co = json_get(comp, v->label_names[lab]);
        if (r->label_voxels[lab] == 0 && !co)
            continue;
        char key[RSY_NAME_MAX + 32];
        snprintf(key, sizeof key, "compartments.%s.voxel_count", v->label_names[lab]);
        cmp_int(l, key, json_get(co, "voxel_count"), r->label_voxels[lab]);
    }
    cJSON_ArrayForEach(c, comp)
    {
        int known = 0;
        for (int lab = 1; lab < v->n_labels; lab++)
            known |= strcmp(c->string, v->label_names[lab]) == 0;
        if (!known)
            problem(v, l->manrel,
                    "lesions[%d] (instance %d): compartment \"%.64s\" is not a "
                    "declared label",
                    l->index, l->id, c->string);
    }
}

/* The instance map's lesions measured from the voxels (records[i] = instance i+1, n of them,
 * owned by the caller) and compared with the manifest's records. NULL if they cannot be
 * measured (reported). */
static rsy_lesion_record *check_lesions(vctx *v, const char *manrel, const cJSON *man,
                                        const char *instrel, const rsy_volume *inst,
                                        const rsy_volume *lab, int *n_out)
{
    *n_out = 0;
    if (inst->dtype != RSY_DTYPE_UINT16) {
        problem(v, instrel, "instance map is %s (need uint16)", rsy_dtype_name(inst->dtype));
        return NULL;
    }
    if (lab->dtype != RSY_DTYPE_UINT8 && lab->dtype != RSY_DTYPE_UINT16)
        return NULL; /* reported by the header check */
    const cJSON *lesions = man ? json_get(man, "lesions") : NULL, *o;
    unsigned char peri[RSY_MAX_LABELS];
    if (man && !cJSON_IsArray(lesions)) {
        problem(v, manrel, "\"lesions\" missing or not an array");
        man = NULL;
    }
    if (man && !perilesional_flags(v, manrel, man, peri))
        man = NULL;
    if (!man)
        memcpy(peri, v->peri, sizeof peri);
    int n_inst = (int)rsy__volume_max(inst);
    rsy_lesion_record *rec = n_inst ? calloc((size_t)n_inst, sizeof *rec) : NULL;
    unsigned char *seen = n_inst ? calloc((size_t)n_inst, 1) : NULL;
    if (n_inst && (!rec || !seen)) {
        problem(v, manrel, "out of memory measuring %d lesions", n_inst);
        free(seen);
        free(rec);
        return NULL;
    }
    if (rsy_export_measure_lesions(inst, lab, n_inst, peri, rec) != RSY_OK) {
        problem(v, instrel, "lesions cannot be measured (geometry differs from the label map)");
        free(seen);
        free(rec);
        return NULL;
    }
    if (man) {
        lctx l = {v, manrel, 0, 0};
        cJSON_ArrayForEach(o, lesions)
        {
            int ok;
            l.id = (int)json_int(json_get(o, "instance_id"), &ok);
            if (!ok || l.id < 1 || l.id > n_inst || rec[l.id - 1].voxel_count == 0) {
                problem(v, manrel, "lesions[%d]: instance %d has no voxel in %s", l.index, l.id,
                        instrel);
            } else if (seen[l.id - 1]) {
                problem(v, manrel, "lesions[%d]: instance %d recorded twice", l.index, l.id);
            } else {
                seen[l.id - 1] = 1;
                compare_lesion(&l, o, &rec[l.id - 1]);
            }
            l.index++;
        }
        for (int i = 0; i < n_inst; i++)
            if (rec[i].voxel_count > 0 && !seen[i])
                problem(v, instrel, "instance %d (%lld voxels) has no record in %s", i + 1,
                        (long long)rec[i].voxel_count, manrel);
    }
    free(seen);
    *n_out = n_inst;
    return rec;
}

/* The lesion's main label (docs/manifest.md, "MSD / MONAI"): the non-perilesional,
 * non-background label value holding most of its voxels (ties to the lower value); if it has
 * none, the same over the perilesional labels; 0 if it carries no non-background label. */
int rsy__validate_main_label(const vctx *v, const rsy_lesion_record *r, const unsigned char *peri)
{
    for (int pass = 0; pass < 2; pass++) {
        int best = 0;
        for (int lab = 1; lab < v->n_labels && lab < RSY_MAX_LABELS; lab++)
            if (peri[lab] == pass && r->label_voxels[lab] > 0 &&
                (best == 0 || r->label_voxels[lab] > r->label_voxels[best]))
                best = lab;
        if (best > 0)
            return best;
    }
    return 0;
}

/* The lesion's class for detection (MSD box_label, nnDetection instances): its main label
 * minus 1, i.e. 0-based over the non-background labels; 0 without a label. */
int rsy__validate_lesion_class(const vctx *v, const rsy_lesion_record *r, const unsigned char *peri)
{
    int m = rsy__validate_main_label(v, r, peri);
    return m > 0 ? m - 1 : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* One case                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* Cross-check the case's entry in raresynth.json against its manifest, and collect what the
 * dataset summary is recomputed from: the lesion count and every lesion's volume_mm3. */
static rsy_status case_against_dataset(vctx *v, const char *manrel, const cJSON *man,
                                       const vcase *c)
{
    const cJSON *lesions = man ? json_get(man, "lesions") : NULL, *o;
    if (!cJSON_IsArray(lesions)) {
        v->summary_known = 0;
        return RSY_OK;
    }
    int64_t n = cJSON_GetArraySize(lesions);
    if (c->entry) {
        int ok;
        int64_t listed = json_int(json_get(c->entry, "n_lesions"), &ok);
        if (!ok)
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d].n_lesions missing or not an integer",
                    c->list_pos);
        else if (listed != n)
            problem(v, RSY_EXPORT_MANIFEST,
                    "cases[%d].n_lesions is %lld but %s has %lld lesion records", c->list_pos,
                    (long long)listed, manrel, (long long)n);
        if (!cJSON_Compare(json_get(man, "labels_perilesional"),
                           json_get(v->dsman, "labels_perilesional"), 1))
            problem(v, manrel, "labels_perilesional differs from " RSY_EXPORT_MANIFEST);
    }
    if (v->cases_seen == 0 || n < v->lesions_min)
        v->lesions_min = n;
    if (v->cases_seen == 0 || n > v->lesions_max)
        v->lesions_max = n;
    v->lesions_total += n;
    v->cases_seen++;
    cJSON_ArrayForEach(o, lesions)
    {
        const cJSON *vol = json_get(o, "volume_mm3");
        if (!cJSON_IsNumber(vol)) {
            v->summary_known = 0; /* reported by the lesion check */
            continue;
        }
        if (v->n_volumes == v->cap_volumes) {
            size_t cap = v->cap_volumes ? 2 * v->cap_volumes : 64;
            double *grown = realloc(v->volumes, cap * sizeof *grown);
            if (!grown)
                return RSY_ENOMEM;
            v->volumes = grown;
            v->cap_volumes = cap;
        }
        v->volumes[v->n_volumes++] = vol->valuedouble;
    }
    return RSY_OK;
}

static void count_label_voxels(vctx *v, const rsy_volume *lab)
{
    if (!lab || v->n_labels < 1) {
        v->summary_known = 0;
        return;
    }
    size_t n = rsy_geometry_nvox(&lab->geom);
    for (size_t i = 0; i < n; i++) {
        double x = rsy__volume_get(lab, i);
        if (x >= 0.0 && x < v->n_labels)
            v->label_totals[(int)x]++;
    }
}

/* The manifest of case @p c: identity, labels, and its checksum in raresynth.json. */
static cJSON *load_case_manifest(vctx *v, const vcase *c, const char *manrel)
{
    cJSON *man = rsy__validate_load_json(v, manrel, 1, 1, JSON_CASE_MAX_BYTES);
    if (man) {
        int ok;
        const char *cid = json_str(man, "case_id");
        if (json_int(json_get(man, "raresynth_case"), &ok) != 1 || !ok)
            problem(v, manrel, "\"raresynth_case\": 1 missing (not a raresynth case manifest)");
        if (!cid || strcmp(cid, c->id) != 0)
            problem(v, manrel, "case_id \"%.64s\" does not match the file name", cid ? cid : "");
        if (v->nnjson && !cJSON_Compare(json_get(man, "labels"), json_get(v->nnjson, "labels"), 1))
            problem(v, manrel, "labels differ from dataset.json");
    }
    if (c->entry && rsy__validate_path_exists(v, manrel)) {
        const char *listed = json_str(c->entry, "manifest");
        const char *want = json_str(c->entry, "manifest_sha256");
        long h = rsy__validate_file_hash(v, manrel);
        if (listed && strcmp(listed, manrel) != 0)
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d].manifest is \"%.128s\", not \"%s\"",
                    c->list_pos, listed, manrel);
        if (h >= 0 && (!want || strcmp(want, v->hashes[h].hex) != 0))
            problem(v, manrel,
                    "SHA-256 differs from " RSY_EXPORT_MANIFEST
                    " (manifest changed after it was written)");
    }
    return man;
}

static rsy_status check_case(vctx *v, vcase *c)
{
    char manrel[RSY_EXPORT_REL_MAX], instrel[RSY_EXPORT_REL_MAX], labrel[RSY_EXPORT_REL_MAX],
        rel[RSY_EXPORT_REL_MAX], what[RSY_NAME_MAX + 96], obj[ID_MAX + 16];
    rsy_volume *lab = NULL, *inst = NULL, *img0 = NULL;
    rsy_nifti_info info0, info;
    rsy_lesion_record *rec = NULL;
    int n_rec = 0, measured = 0;
    hid_t grp = -1;
    v->rep->cases_checked++;
    v->n_hashes = 0;

    rsy__export_manifest_relpath(c->id, manrel, sizeof manrel);
    cJSON *man = load_case_manifest(v, c, manrel);
    if (v->h5 >= 0)
        grp = rsy__validate_open_hdf5_case(v, c, obj, sizeof obj);

    if (v->have_nnunet) {
        snprintf(labrel, sizeof labrel, "%s/labelsTr/%s" RSY_EXPORT_NII, v->nnunet_dir, c->id);
        snprintf(what, sizeof what, "label map of %s", c->id);
        lab = rsy__validate_read_volume(v, labrel, 1, what, NULL);
        if (lab)
            rsy__validate_check_label_values(v, labrel, lab);
        count_label_voxels(v, lab);
        if (lab && grp >= 0)
            rsy__validate_check_hdf5_volume(v, grp, obj, "label", -1, 1, lab, labrel);
        for (int ch = 0; ch < v->n_channels; ch++) {
            snprintf(rel, sizeof rel, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, c->id,
                     ch);
            snprintf(what, sizeof what, "channel %d (%s) of %s", ch, v->channel_names[ch], c->id);
            rsy_volume *img = rsy__validate_read_volume(v, rel, 0, what, &info);
            if (img) {
                rsy__validate_check_finite(v, rel, img);
                if (lab && !rsy_geometry_equal(&img->geom, &lab->geom))
                    problem(v, rel, "shape or affine differs from the label map %s", labrel);
                if (grp >= 0)
                    rsy__validate_check_hdf5_volume(v, grp, obj, "image", ch, v->n_channels, img,
                                                    rel);
            }
            if (ch == 0 && img) {
                img0 = img;
                info0 = info;
            } else {
                rsy_volume_destroy(img);
            }
        }
    }

    rsy__export_instance_relpath(c->id, instrel, sizeof instrel);
    snprintf(what, sizeof what, "instance map of %s", c->id);
    inst = rsy__validate_read_volume(v, instrel, 1, what, NULL);
    if (inst && lab && !rsy_geometry_equal(&inst->geom, &lab->geom)) {
        problem(v, instrel, "shape or affine differs from the label map");
    } else if (inst && lab) {
        rec = check_lesions(v, manrel, man, instrel, inst, lab, &n_rec);
        measured = rec != NULL ||
                   (n_rec == 0 && inst->dtype == RSY_DTYPE_UINT16 && rsy__volume_max(inst) == 0.0);
        if (grp >= 0)
            rsy__validate_check_hdf5_volume(v, grp, obj, "instances", -1, 1, inst, instrel);
    }
    if (grp >= 0)
        rsy__validate_check_hdf5_case(v, c, grp, obj, img0 ? &info0 : NULL, rec, n_rec, measured);
    if (v->have_msd)
        rsy__validate_check_msd_case(v, c, rec, n_rec, inst ? &inst->geom : NULL, measured);
    if (v->have_nndet)
        rsy__validate_check_nndet_case(v, c, inst, rec, n_rec, measured, img0 ? &info0 : NULL,
                                       img0);
    if (v->previews)
        rsy__validate_check_preview(v, c);
    rsy__validate_check_case_files(v, c, man, manrel);
    if (!v->have_nnunet)
        v->summary_known = 0;
    rsy_status rc = case_against_dataset(v, manrel, man, c);

    if (grp >= 0)
        H5Gclose(grp);
    free(rec);
    rsy_volume_destroy(img0);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(lab);
    cJSON_Delete(man);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* raresynth.json against the cases                                                          */
/* ---------------------------------------------------------------------------------------- */
static void cmp_summary(vctx *v, const cJSON *obj, const char *path, const char *key, double want,
                        int defined)
{
    const cJSON *it = json_get(obj, key);
    if (!defined) {
        if (!cJSON_IsNull(it))
            problem(v, RSY_EXPORT_MANIFEST, "summary.%s.%s must be null (no lesion record)", path,
                    key);
        return;
    }
    if (!cJSON_IsNumber(it))
        problem(v, RSY_EXPORT_MANIFEST, "summary.%s.%s missing or not a number", path, key);
    else if (!(fabs(it->valuedouble - want) <=
               SUMMARY_REL_TOL * fmax(fabs(it->valuedouble), fabs(want))))
        problem(v, RSY_EXPORT_MANIFEST, "summary.%s.%s is %.17g, recomputed from the cases %.17g",
                path, key, it->valuedouble, want);
}

static int cmp_volume(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The "summary" of raresynth.json recomputed from every case manifest (lesion counts and
 * volumes) and label map (label voxels), and "effective.cases". */
static void check_summary(vctx *v)
{
    const cJSON *sum = json_get(v->dsman, "summary");
    int ok;
    if (!v->shard_count) {
        int64_t eff = json_int(json_get(json_get(v->dsman, "effective"), "cases"), &ok);
        if (!ok || eff < 0 || (size_t)eff != v->n_cases)
            problem(v, RSY_EXPORT_MANIFEST, "effective.cases is not the %zu cases listed",
                    v->n_cases);
    } else if (!sum) {
        return; /* a shard manifest need not summarise */
    }
    if (!cJSON_IsObject(sum)) {
        problem(v, RSY_EXPORT_MANIFEST, "\"summary\" missing or not an object");
        return;
    }
    if (!v->summary_known || v->cases_seen == 0)
        return; /* a case could not be read: reported already */
    const cJSON *lpc = json_get(sum, "lesions_per_case");
    cmp_summary(v, lpc, "lesions_per_case", "mean",
                (double)v->lesions_total / (double)v->cases_seen, 1);
    cmp_summary(v, lpc, "lesions_per_case", "min", (double)v->lesions_min, 1);
    cmp_summary(v, lpc, "lesions_per_case", "max", (double)v->lesions_max, 1);

    const cJSON *lv = json_get(sum, "lesion_volume_mm3");
    size_t n = v->n_volumes;
    double total = 0.0, median = 0.0;
    if (n) {
        for (size_t i = 0; i < n; i++)
            total += v->volumes[i];
        qsort(v->volumes, n, sizeof *v->volumes, cmp_volume);
        median = n % 2 ? v->volumes[n / 2] : 0.5 * (v->volumes[n / 2 - 1] + v->volumes[n / 2]);
    }
    cmp_summary(v, lv, "lesion_volume_mm3", "count", (double)n, 1);
    cmp_summary(v, lv, "lesion_volume_mm3", "mean", n ? total / (double)n : 0.0, n > 0);
    cmp_summary(v, lv, "lesion_volume_mm3", "median", median, n > 0);
    cmp_summary(v, lv, "lesion_volume_mm3", "min", n ? v->volumes[0] : 0.0, n > 0);
    cmp_summary(v, lv, "lesion_volume_mm3", "max", n ? v->volumes[n - 1] : 0.0, n > 0);

    const cJSON *lab = json_get(sum, "label_voxels");
    for (int l = 0; l < v->n_labels; l++)
        cmp_summary(v, lab, "label_voxels", v->label_names[l], (double)v->label_totals[l], 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Dataset-level steps                                                                        */
/* ---------------------------------------------------------------------------------------- */
/* Without raresynth.json (or dataset.json), take the perilesional labels (and channels and
 * labels) from the first manifest. */
static void dictionaries_from_manifest(vctx *v)
{
    if ((v->n_channels > 0 && v->n_labels > 0 && v->dsman) || v->n_cases == 0)
        return;
    char rel[RSY_EXPORT_REL_MAX];
    rsy__export_manifest_relpath(v->cases[0].id, rel, sizeof rel);
    cJSON *m = rsy__validate_load_json(v, rel, 0, 0, JSON_CASE_MAX_BYTES);
    if (!m)
        return;
    if (v->n_labels < 0)
        parse_labels(v, rel, json_get(m, "labels"));
    const cJSON *images = json_get(json_get(m, "files"), "images");
    if (v->n_channels < 0 && cJSON_IsArray(images)) {
        const cJSON *im;
        int n = 0;
        cJSON_ArrayForEach(im, images)
        {
            const char *name = json_str(im, "name");
            if (n < MAX_CHANNELS)
                snprintf(v->channel_names[n], RSY_NAME_MAX, "%s", name ? name : "?");
            n++;
        }
        if (n >= 1 && n <= MAX_CHANNELS)
            v->n_channels = n;
    }
    if (v->n_labels > 0 && !v->dsman)
        perilesional_flags(v, rel, m, v->peri);
    cJSON_Delete(m);
}

/* raresynth.json's own identity and dictionaries, compared with dataset.json. */
static void check_dataset_manifest(vctx *v)
{
    const char *rel = RSY_EXPORT_MANIFEST;
    if (v->n_channels < 0)
        parse_channels(v, rel, json_get(v->dsman, "channels"), "channels");
    if (v->n_labels < 0)
        parse_labels(v, rel, json_get(v->dsman, "labels"));
    if (v->n_labels > 0)
        perilesional_flags(v, rel, v->dsman, v->peri);
    if (v->nnjson && !cJSON_Compare(json_get(v->dsman, "labels"), json_get(v->nnjson, "labels"), 1))
        problem(v, rel, "labels differ from %s/dataset.json", v->nnunet_dir);
    if (v->nnjson &&
        !cJSON_Compare(json_get(v->dsman, "channels"), json_get(v->nnjson, "channel_names"), 1))
        problem(v, rel, "channels differ from channel_names in %s/dataset.json", v->nnunet_dir);
}

/* "outputs" of raresynth.json: {"layouts": {"nnunet": folder, "msd": "msd", "nndet":
 * folder}, "formats": ["nifti", "hdf5"], "previews": bool}. Each layout listed has its folder,
 * each layout folder present is listed; hdf5 asked means an "hdf5" entry (not in a shard). */
static void check_outputs(vctx *v)
{
    const char *rel = RSY_EXPORT_MANIFEST;
    const cJSON *out = json_get(v->dsman, "outputs"), *it;
    if (!out)
        return; /* written by raresynth before 0.4 */
    const cJSON *lay = json_get(out, "layouts"), *fmt = json_get(out, "formats");
    const cJSON *prev = json_get(out, "previews");
    if (!cJSON_IsObject(out) || !cJSON_IsObject(lay) || !cJSON_IsArray(fmt) ||
        !cJSON_IsBool(prev)) {
        problem(v, rel,
                "outputs must be {\"layouts\": {name: folder}, \"formats\": [...], "
                "\"previews\": true/false}");
        return;
    }
    static const char *const names[] = {"nnunet", "msd", "nndet"};
    const char *dirs[] = {v->nnunet_dir, RSY_EXPORT_MSD_DIR, v->nndet_dir};
    const int have[] = {v->have_nnunet, v->have_msd, v->have_nndet};
    for (int l = 0; l < 3; l++) {
        const char *folder = json_str(lay, names[l]);
        if (folder && !have[l])
            problem(v, rel, "outputs.layouts lists %s (%.96s), but its folder is missing", names[l],
                    folder);
        else if (folder && strcmp(folder, dirs[l]) != 0)
            problem(v, rel, "outputs.layouts.%s is \"%.96s\", the folder is %s", names[l], folder,
                    dirs[l]);
        else if (!json_get(lay, names[l]) && have[l] && l > 0)
            problem(v, dirs[l], "layout folder present, but outputs.layouts does not list %s",
                    names[l]);
    }
    cJSON_ArrayForEach(it, lay)
    {
        int known = 0;
        for (int l = 0; l < 3; l++)
            known |= !strcmp(it->string, names[l]);
        if (!known)
            problem(v, rel, "outputs.layouts: unknown layout \"%.32s\"", it->string);
    }
    int hdf5 = 0;
    cJSON_ArrayForEach(it, fmt)
    {
        const char *f = cJSON_IsString(it) ? it->valuestring : "";
        if (!strcmp(f, "hdf5"))
            hdf5 = 1;
        else if (strcmp(f, "nifti") != 0)
            problem(v, rel, "outputs.formats: unknown format \"%.32s\"", f);
    }
    const cJSON *h = json_get(v->dsman, "hdf5");
    if (hdf5 && !v->shard_count && (!h || cJSON_IsNull(h)))
        problem(v, rel, "outputs.formats lists hdf5, but there is no \"hdf5\" entry");
    else if (!hdf5 && h && !cJSON_IsNull(h))
        problem(v, rel, "an \"hdf5\" entry, but outputs.formats does not list hdf5");
}

/* Are previews expected? raresynth.json outputs.previews, or a previews folder (an
 * interrupted run). */
static void find_previews(vctx *v)
{
    const cJSON *p = v->dsman ? json_get(json_get(v->dsman, "outputs"), "previews") : NULL;
    v->previews = cJSON_IsTrue(p) || rsy__validate_path_exists(v, RSY_EXPORT_PREVIEW_DIR);
    if (cJSON_IsFalse(p) && v->previews)
        problem(v, RSY_EXPORT_PREVIEW_DIR, "present, but outputs.previews is false");
}

/* The last line: the dataset's state. An interrupted run is one problem (the dataset cannot
 * be used yet) that says whether what is there is consistent; a shard is a finished part of a
 * dataset, stated as a note. */
static void report_state(vctx *v, int64_t problems_before)
{
    int64_t found = v->rep->problems - problems_before;
    char list[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < v->n_cases && len < sizeof list - 80; i++)
        len +=
            (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", v->cases[i].id);
    if (len >= sizeof list - 80 && v->n_cases > 0)
        snprintf(list + len, sizeof list - len, ", ...");
    if (v->shard_count) {
        note(v, NULL, "incomplete: shard %lld of %lld, holds cases %s (%zu); %s",
             (long long)v->shard_index, (long long)v->shard_count, v->n_cases ? list : "(none)",
             v->n_cases,
             found ? "problems above"
                   : "consistent: join the shards with raresynth merge SHARD_DIR... --out DIR");
        return;
    }
    if (v->rep->complete)
        return;
    char partial[64] = "";
    if (v->partial_files)
        snprintf(partial, sizeof partial, "; %lld partial file(s) listed above",
                 (long long)v->partial_files);
    if (found)
        problem(v, NULL,
                "incomplete dataset: " RSY_EXPORT_MANIFEST " missing (interrupted run?): %zu "
                "case(s) with a manifest%s; %lld problem(s) above",
                v->n_cases, partial, (long long)found);
    else
        problem(v, NULL,
                "incomplete dataset: " RSY_EXPORT_MANIFEST " missing (interrupted run?): the %zu "
                "case(s) present are complete and consistent (%s)%s; raresynth generate --resume "
                "finishes it",
                v->n_cases, v->n_cases ? list : "none", partial);
}

/* ---------------------------------------------------------------------------------------- */
/* Entry point                                                                                */
/* ---------------------------------------------------------------------------------------- */
rsy_status rsy_export_validate(const char *dir, rsy_validate_report *rep)
{
    rsy_validate_report local = {0, 0, 0, 0};
    rsy_validate_report *r = rep ? rep : &local;
    struct stat st;
    rsy_status rc = RSY_OK;
    memset(r, 0, sizeof *r);
    if (!dir)
        return RSY_EINVAL;
    if (stat(dir, &st) != 0) {
        rsy_log_error("%s: %s", dir, strerror(errno));
        return RSY_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        rsy_log_error("%s: not a directory", dir);
        return RSY_EIO;
    }
    vctx *v = calloc(1, sizeof *v);
    if (!v)
        return RSY_ENOMEM;
    if (!realpath(dir, v->real_dir)) {
        rsy_log_error("%s: %s", dir, strerror(errno));
        free(v);
        return RSY_EIO;
    }
    v->dir = dir;
    v->rep = r;
    v->n_channels = -1;
    v->n_labels = -1;
    v->total_cases = -1;
    v->h5 = -1;

    if (!rsy__validate_file_ok(v, RSY_EXPORT_MARKER))
        problem(v, RSY_EXPORT_MARKER, "marker missing: not a raresynth dataset directory");
    if (rsy__validate_path_exists(v, RSY_EXPORT_MANIFEST)) {
        v->dsman = rsy__validate_load_json(v, RSY_EXPORT_MANIFEST, 1, 1, RSY_EXPORT_JSON_MAX_BYTES);
        int ok;
        if (v->dsman && (json_int(json_get(v->dsman, "raresynth_dataset"), &ok) != 1 || !ok))
            problem(v, RSY_EXPORT_MANIFEST, "\"raresynth_dataset\": 1 missing");
        if (v->dsman)
            rsy__validate_parse_shard(v);
        r->complete = v->shard_count == 0;
    }
    int64_t problems_before = r->problems;

    if ((rc = collect_cases(v)) != RSY_OK)
        goto done;
    rsy__validate_check_shard_cases(v);
    find_nnunet_dir(v);
    if (v->have_nnunet)
        check_nnunet_json(v);
    if (v->dsman)
        check_dataset_manifest(v);
    dictionaries_from_manifest(v);
    if (v->n_channels < 0)
        problem(v, NULL, "channel names unknown (no dataset.json, raresynth.json or manifest)");
    rsy__validate_check_msd_dataset(v);
    rsy__validate_check_nndet_dataset(v);
    if (v->dsman)
        check_outputs(v);
    rsy__validate_open_hdf5(v);
    if (v->h5 >= 0)
        rsy__validate_check_hdf5_root(v);
    find_previews(v);
    rsy__validate_check_folders(v);

    v->summary_known = 1;
    for (size_t i = 0; rc == RSY_OK && i < v->n_cases; i++)
        rc = check_case(v, &v->cases[i]);
    if (rc == RSY_OK && v->dsman)
        check_summary(v);
    if (rc == RSY_OK)
        report_state(v, problems_before);

done:
    if (v->h5 >= 0)
        H5Fclose(v->h5);
    for (size_t i = 0; i < v->n_cases; i++)
        free(v->cases[i].id);
    free(v->cases);
    free(v->volumes);
    free(v->hashes);
    cJSON_Delete(v->dsman);
    cJSON_Delete(v->nnjson);
    cJSON_Delete(v->msdjson);
    free(v);
    if (rc != RSY_OK)
        return rc;
    return r->problems > 0 ? RSY_EINVALID_DATASET : RSY_OK;
}
