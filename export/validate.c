/*
 * validate.c: `raresynth validate DIR`. Re-reads a dataset and reports every problem as one
 * line "PATH: what is wrong" at RSY_LOG_ERROR; it never stops at the first one.
 *
 * Checked (reference/formats.md): the marker and raresynth.json; the nnU-Net v2 checklist
 * (folder name, dataset.json keys, numTraining, every channel of every case, no stray file in
 * imagesTr/labelsTr, one label map per case, label values declared and consecutive, equal
 * shapes and affines, no NaN); the NIfTI header rules; SHA-256 checksums against both the
 * per-case manifests and the dataset manifest; and the lesion records, recomputed from the
 * label and instance maps with rsy_export_measure_lesions().
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export_internal.h"

/* Measured and recorded values agree within |a-b| <= REL_TOL·max(|a|,|b|) + ABS_TOL. The
 * absolute floor covers NIfTI's float32 storage of the affine (2^-24 relative, so < 1e-4 mm
 * for world coordinates within ±1.6 m); REL_TOL covers cJSON's round-trip printing. */
#define REL_TOL 1e-6
#define ABS_TOL 1e-4
/* Largest quaternion-vs-row discrepancy accepted between qform and sform, mm. */
#define QS_TOL_MM 1e-4
#define MAX_CHANNELS 64
#define ID_MAX 64

/* NIfTI-1 datatype codes (nifti1.h) of the integer types. */
static const int integer_datatypes[] = {2, 4, 8, 256, 512, 768, 1024, 1280};

typedef struct vctx {
    const char *dir;
    rsy_validate_report *rep;
    cJSON *dsman;  /* raresynth.json, or NULL */
    cJSON *nnjson; /* dataset.json, or NULL */
    char nnunet_dir[96];
    int have_nnunet;
    int n_channels; /* -1 = unknown */
    char channel_names[MAX_CHANNELS][RSY_NAME_MAX];
    int n_labels; /* declared values 0..n_labels-1; -1 = unknown */
    char label_names[RSY_MAX_LABELS][RSY_NAME_MAX];
    char **ids; /* expected case ids */
    size_t n_ids;
    /* What the summary of raresynth.json is recomputed from (every case's manifest and label
     * map); summary_known = 0 once one of them could not be read. */
    int summary_known;
    int64_t lesions_total, lesions_min, lesions_max, cases_seen;
    double *volumes; /* volume_mm3 of every lesion record */
    size_t n_volumes, cap_volumes;
    int64_t label_totals[RSY_MAX_LABELS];
} vctx;

static void problem(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);

static void problem(vctx *v, const char *rel, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (rel)
        rsy_log_error("%s/%s: %s", v->dir, rel, msg);
    else
        rsy_log_error("%s: %s", v->dir, msg);
    v->rep->problems++;
}

static int full_path(const vctx *v, const char *rel, char *buf, size_t n)
{
    return rsy__export_path(buf, n, "%s/%s", v->dir, rel) == RSY_OK;
}

static int file_exists(const vctx *v, const char *rel)
{
    char path[RSY_PATH_MAX];
    struct stat st;
    return full_path(v, rel, path, sizeof path) && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int path_exists(const vctx *v, const char *rel)
{
    char path[RSY_PATH_MAX];
    struct stat st;
    return full_path(v, rel, path, sizeof path) && lstat(path, &st) == 0;
}

/* Case ids (and file stems) are [A-Za-z0-9_-]{1,63}: no '/', no "..", no '.', so a path made
 * from one never leaves the dataset (and nnDetection's "no '.'" rule holds). */
static int safe_id(const char *s)
{
    return rsy__name_ok(s, ID_MAX - 1);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int close_enough(double a, double b)
{
    return fabs(a - b) <= REL_TOL * fmax(fabs(a), fabs(b)) + ABS_TOL;
}

/* Summary statistics recomputed from the cases agree within this relative tolerance (they
 * are sums of the same doubles, possibly in another order). */
#define SUMMARY_REL_TOL 1e-9

/* An integer-valued JSON number, or 0 with *ok = 0. */
static int64_t json_int(const cJSON *item, int *ok)
{
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) ||
        fabs(item->valuedouble) > 9007199254740992.0) {
        *ok = 0;
        return 0;
    }
    *ok = 1;
    return (int64_t)item->valuedouble;
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Read and parse a JSON document; problems are reported. NULL if absent or broken. @p count:
 * add it to files_checked (a file peeked at before its own check passes 0). */
static cJSON *load_json(vctx *v, const char *rel, int report_missing, int count)
{
    char path[RSY_PATH_MAX], *text = NULL;
    size_t len = 0;
    if (!full_path(v, rel, path, sizeof path))
        return NULL;
    if (!file_exists(v, rel)) {
        if (report_missing)
            problem(v, rel, "missing");
        return NULL;
    }
    if (rsy_file_read_all(path, RSY_EXPORT_JSON_MAX_BYTES, &text, &len) != RSY_OK) {
        problem(v, rel, "cannot be read");
        return NULL;
    }
    v->rep->files_checked += count;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!doc) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0, line = 1;
        for (size_t i = 0; i < off && i < len; i++)
            line += text[i] == '\n';
        problem(v, rel, "malformed JSON near byte %zu (line %zu)", off, line);
    } else if (!cJSON_IsObject(doc)) {
        problem(v, rel, "top level is not a JSON object");
        cJSON_Delete(doc);
        doc = NULL;
    }
    free(text);
    return doc;
}

/* ---------------------------------------------------------------------------------------- */
/* Dictionaries: labels and channels                                                          */
/* ---------------------------------------------------------------------------------------- */
/* Parse a {"name": value} label object: needs "background": 0 and values 0..n-1 each once. */
static int parse_labels(vctx *v, const char *rel, const cJSON *labels)
{
    int seen[RSY_MAX_LABELS] = {0}, n = 0, bad = 0, ok;
    char names[RSY_MAX_LABELS][RSY_NAME_MAX];
    if (!cJSON_IsObject(labels)) {
        problem(v, rel, "\"labels\" missing or not an object");
        return 0;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        int64_t val = json_int(it, &ok);
        if (!ok || val < 0 || val >= RSY_MAX_LABELS) {
            problem(v, rel, "labels.%s: expected an integer label value in 0..%d", it->string,
                    RSY_MAX_LABELS - 1);
            bad = 1;
            continue;
        }
        if (seen[val]) {
            problem(v, rel, "labels.%s: value %lld used twice", it->string, (long long)val);
            bad = 1;
        }
        seen[val] = 1;
        snprintf(names[val], RSY_NAME_MAX, "%s", it->string);
        n++;
    }
    const cJSON *bg = cJSON_GetObjectItemCaseSensitive(labels, "background");
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

/* ---------------------------------------------------------------------------------------- */
/* Dataset level                                                                              */
/* ---------------------------------------------------------------------------------------- */
/* "DatasetNNN_Name": NNN three digits, Name [A-Za-z0-9]+. */
static int nnunet_name_ok(const char *s)
{
    if (strlen(s) >= 96 || strncmp(s, "Dataset", 7) != 0)
        return 0;
    for (int i = 7; i < 10; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    if (s[10] != '_' || !s[11])
        return 0;
    for (const char *p = s + 11; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

static void find_nnunet_dir(vctx *v)
{
    const char *named = v->dsman ? json_str(v->dsman, "nnunet_dir") : NULL;
    if (named) {
        if (!nnunet_name_ok(named)) {
            problem(v, RSY_EXPORT_MANIFEST,
                    "nnunet_dir \"%s\" is not of the form DatasetNNN_Name (NNN three digits)",
                    named);
            return;
        }
        snprintf(v->nnunet_dir, sizeof v->nnunet_dir, "%.95s", named);
        v->have_nnunet = 1;
        return;
    }
    DIR *d = opendir(v->dir);
    if (!d)
        return;
    struct dirent *ent;
    int found = 0;
    while ((ent = readdir(d)) != NULL) {
        if (strncmp(ent->d_name, "Dataset", 7) != 0)
            continue;
        if (!nnunet_name_ok(ent->d_name)) {
            problem(v, ent->d_name,
                    "nnU-Net folder name is not DatasetNNN_Name (NNN three "
                    "digits, Name letters and digits)");
            continue;
        }
        if (found++) {
            problem(v, ent->d_name, "a second nnU-Net folder (one dataset per directory)");
            continue;
        }
        snprintf(v->nnunet_dir, sizeof v->nnunet_dir, "%.95s", ent->d_name);
        v->have_nnunet = 1;
    }
    closedir(d);
    if (!found)
        problem(v, NULL, "no nnU-Net folder DatasetNNN_Name");
}

/* dataset.json (reference/formats.md, "nnU-Net v2"). */
static void check_nnunet_json(vctx *v)
{
    char rel[RSY_EXPORT_REL_MAX];
    snprintf(rel, sizeof rel, "%s/dataset.json", v->nnunet_dir);
    /* An incomplete dataset has not reached finish(): dataset.json is not expected yet. */
    v->nnjson = load_json(v, rel, v->rep->complete, 1);
    if (!v->nnjson)
        return;
    if (cJSON_GetObjectItemCaseSensitive(v->nnjson, "dataset"))
        problem(v, rel, "has a key \"dataset\", which switches nnU-Net to explicit file lists");
    parse_channels(v, rel, cJSON_GetObjectItemCaseSensitive(v->nnjson, "channel_names"),
                   "channel_names");
    parse_labels(v, rel, cJSON_GetObjectItemCaseSensitive(v->nnjson, "labels"));
    const char *fe = json_str(v->nnjson, "file_ending");
    if (!fe || strcmp(fe, RSY_EXPORT_NII) != 0)
        problem(v, rel, "file_ending must be \"" RSY_EXPORT_NII "\"");
    int ok;
    int64_t nt = json_int(cJSON_GetObjectItemCaseSensitive(v->nnjson, "numTraining"), &ok);
    if (!ok)
        problem(v, rel, "numTraining missing or not an integer");
    else if (v->rep->complete && (size_t)nt != v->n_ids)
        problem(v, rel, "numTraining is %lld but the dataset has %zu cases", (long long)nt,
                v->n_ids);
}

static int has_id(const vctx *v, const char *id)
{
    for (size_t i = 0; i < v->n_ids; i++)
        if (strcmp(v->ids[i], id) == 0)
            return 1;
    return 0;
}

static rsy_status add_id(vctx *v, const char *id)
{
    char **grown = realloc(v->ids, (v->n_ids + 1) * sizeof *grown);
    if (!grown)
        return RSY_ENOMEM;
    v->ids = grown;
    size_t n = strlen(id) + 1;
    if (!(v->ids[v->n_ids] = malloc(n)))
        return RSY_ENOMEM;
    memcpy(v->ids[v->n_ids++], id, n);
    return RSY_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The expected cases: raresynth.json's list when complete, else every manifest present. */
static rsy_status collect_cases(vctx *v)
{
    rsy_status rc;
    if (v->dsman) {
        const cJSON *cases = cJSON_GetObjectItemCaseSensitive(v->dsman, "cases"), *c;
        if (!cJSON_IsArray(cases)) {
            problem(v, RSY_EXPORT_MANIFEST, "\"cases\" missing or not an array");
            return RSY_OK;
        }
        int idx = 0;
        cJSON_ArrayForEach(c, cases)
        {
            const char *id = json_str(c, "case_id");
            if (!id || !safe_id(id)) {
                problem(v, RSY_EXPORT_MANIFEST,
                        "cases[%d].case_id missing or unsafe (need [A-Za-z0-9_-], no '/' or "
                        "'..')",
                        idx);
            } else if (has_id(v, id)) {
                problem(v, RSY_EXPORT_MANIFEST, "cases[%d]: case id %s listed twice", idx, id);
            } else if ((rc = add_id(v, id)) != RSY_OK) {
                return rc;
            }
            idx++;
        }
        int ok;
        int64_t n = json_int(cJSON_GetObjectItemCaseSensitive(v->dsman, "n_cases"), &ok);
        if (!ok || n != idx)
            problem(v, RSY_EXPORT_MANIFEST, "n_cases does not equal the %d cases listed", idx);
    }
    char rel[RSY_EXPORT_REL_MAX];
    snprintf(rel, sizeof rel, "%s", RSY_EXPORT_MANIFEST_DIR);
    char path[RSY_PATH_MAX];
    if (!full_path(v, rel, path, sizeof path))
        return RSY_OK;
    DIR *d = opendir(path);
    if (!d) {
        problem(v, rel, "manifest folder missing");
        return RSY_OK;
    }
    struct dirent *ent;
    rc = RSY_OK;
    while (rc == RSY_OK && (ent = readdir(d)) != NULL) {
        char stem[ID_MAX + 8];
        if (ent->d_name[0] == '.' && (!ent->d_name[1] || !strcmp(ent->d_name, "..")))
            continue;
        size_t n = strlen(ent->d_name);
        if (!ends_with(ent->d_name, ".json") || n - 5 >= sizeof stem) {
            problem(v, rel, "unexpected file %s", ent->d_name);
            continue;
        }
        memcpy(stem, ent->d_name, n - 5);
        stem[n - 5] = '\0';
        if (!safe_id(stem))
            problem(v, rel, "manifest %s has an unsafe case id", ent->d_name);
        else if (v->dsman && !has_id(v, stem))
            problem(v, rel, "manifest %s belongs to no case listed in " RSY_EXPORT_MANIFEST,
                    ent->d_name);
        else if (!v->dsman)
            rc = add_id(v, stem);
    }
    closedir(d);
    if (rc == RSY_OK && v->n_ids > 1)
        qsort(v->ids, v->n_ids, sizeof *v->ids, cmp_str);
    return rc;
}

/* Without dataset.json or raresynth.json, take channels and labels from the first manifest. */
static void dictionaries_from_manifest(vctx *v)
{
    if ((v->n_channels > 0 && v->n_labels > 0) || v->n_ids == 0)
        return;
    char rel[RSY_EXPORT_REL_MAX];
    rsy__export_manifest_relpath(v->ids[0], rel, sizeof rel);
    cJSON *m = load_json(v, rel, 0, 0);
    if (!m)
        return;
    if (v->n_labels < 0)
        parse_labels(v, rel, cJSON_GetObjectItemCaseSensitive(m, "labels"));
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(files, "images");
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
    cJSON_Delete(m);
}

/* Every file in @p sub must be "<id><suffix>" of an expected case; images carry a channel
 * "_CCCC" (4 digits) below the channel count. */
static void check_folder(vctx *v, const char *sub, int images)
{
    char path[RSY_PATH_MAX];
    if (!full_path(v, sub, path, sizeof path))
        return;
    DIR *d = opendir(path);
    if (!d) {
        problem(v, sub, "folder missing");
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *name = ent->d_name;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        size_t n = strlen(name), stem_len = n - strlen(RSY_EXPORT_NII);
        char stem[ID_MAX + 8];
        int ok = ends_with(name, RSY_EXPORT_NII) && stem_len > 0 && stem_len < sizeof stem;
        if (ok) {
            memcpy(stem, name, stem_len);
            stem[stem_len] = '\0';
            if (images) {
                /* "<id>_CCCC" */
                ok = stem_len > 5 && stem[stem_len - 5] == '_';
                for (size_t i = stem_len - 4; ok && i < stem_len; i++)
                    ok = stem[i] >= '0' && stem[i] <= '9';
                if (ok) {
                    int ch = atoi(stem + stem_len - 4);
                    stem[stem_len - 5] = '\0';
                    ok = v->n_channels < 0 || ch < v->n_channels;
                }
            }
            ok = ok && safe_id(stem) && has_id(v, stem);
        }
        if (!ok)
            problem(v, sub, "stray file %s (not a file of any case of this dataset%s)", name,
                    images ? "; nnU-Net takes every *.nii.gz here as an image" : "");
    }
    closedir(d);
}

/* ---------------------------------------------------------------------------------------- */
/* NIfTI files                                                                                */
/* ---------------------------------------------------------------------------------------- */
/* descrip must be "raresynth" or "raresynth <version>" and nothing else (de-identification). */
static int descrip_ok(const char *d)
{
    if (strncmp(d, "raresynth", 9) != 0)
        return 0;
    if (d[9] == '\0')
        return 1;
    if (d[9] != ' ' || !d[10])
        return 0;
    for (const char *p = d + 10; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '.' || *p == '-' || *p == '+'))
            return 0;
    return 1;
}

static void check_header(vctx *v, const char *rel, const rsy_nifti_info *h, const rsy_volume *vol,
                         int label)
{
    if (h->sizeof_hdr != 348)
        problem(v, rel, "sizeof_hdr is %d (need 348)", h->sizeof_hdr);
    if (memcmp(h->magic, "n+1", 4) != 0)
        problem(v, rel, "magic is not \"n+1\" (single-file NIfTI-1)");
    if (h->vox_offset != 352.0)
        problem(v, rel, "vox_offset is %g (need 352)", h->vox_offset);
    if (h->num_ext != 0)
        problem(v, rel, "has %d header extension(s) (need none)", h->num_ext);
    if (h->qform_code != 1 || h->sform_code != 1)
        problem(v, rel, "qform_code %d, sform_code %d (need both 1)", h->qform_code, h->sform_code);
    double worst = 0.0;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            worst = fmax(worst, fabs(h->qto_xyz[r][c] - h->sto_xyz[r][c]));
    if (!(worst <= QS_TOL_MM))
        problem(v, rel, "qform and sform transforms differ (by up to %g mm)", worst);
    if (!h->xyz_units_mm)
        problem(v, rel, "spatial units are not millimetres");
    if (fabs(h->qfac) != 1.0)
        problem(v, rel, "pixdim[0] (qfac) is %g (need 1 or -1)", h->qfac);
    for (int a = 1; a <= 3; a++)
        if (!(h->pixdim[a] > 0.0))
            problem(v, rel, "pixdim[%d] is %g (need > 0)", a, h->pixdim[a]);
    if (!descrip_ok(h->descrip))
        problem(v, rel, "descrip \"%s\" holds more than \"raresynth <version>\"", h->descrip);
    if (h->aux_file[0] || h->intent_name[0] || h->db_name[0])
        problem(v, rel, "aux_file, intent_name and db_name must be empty");

    if (!label) {
        if (h->datatype != 16 && h->datatype != 4)
            problem(v, rel, "image datatype %d (need float32 or int16)", h->datatype);
        return;
    }
    int integer = 0;
    for (size_t i = 0; i < sizeof integer_datatypes / sizeof integer_datatypes[0]; i++)
        integer |= h->datatype == integer_datatypes[i];
    if (!integer)
        problem(v, rel, "label datatype %d is not an integer type", h->datatype);
    if (h->intent_code != 1002)
        problem(v, rel, "intent_code %d (need 1002, NIFTI_INTENT_LABEL)", h->intent_code);
    if (h->scl_slope != 1.0 && h->scl_slope != 0.0)
        problem(v, rel, "scl_slope %g (need 1 or 0)", h->scl_slope);
    if (h->scl_inter != 0.0)
        problem(v, rel, "scl_inter %g (need 0)", h->scl_inter);
    double mx = rsy__volume_max(vol);
    if (h->cal_min != 0.0 || h->cal_max != mx)
        problem(v, rel, "cal_min %g, cal_max %g (need 0 and the largest label, %g)", h->cal_min,
                h->cal_max, mx);
}

/* Read one NIfTI file of a case and check its header. NULL if missing or unreadable. */
static rsy_volume *read_volume(vctx *v, const char *rel, int label, const char *what)
{
    char path[RSY_PATH_MAX];
    rsy_nifti_info info;
    rsy_volume *vol = NULL;
    if (!file_exists(v, rel)) {
        problem(v, rel, "missing (%s)", what);
        return NULL;
    }
    if (!full_path(v, rel, path, sizeof path) ||
        rsy_volume_read_nifti(&vol, &info, path) != RSY_OK) {
        problem(v, rel, "cannot be read as NIfTI-1 (%s)", what);
        return NULL;
    }
    v->rep->files_checked++;
    check_header(v, rel, &info, vol, label);
    return vol;
}

static void check_finite(vctx *v, const char *rel, const rsy_volume *vol)
{
    if (vol->dtype != RSY_DTYPE_FLOAT32)
        return;
    size_t n = rsy_geometry_nvox(&vol->geom), bad = 0, first = 0;
    const float *x = vol->data;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) && bad++ == 0)
            first = i;
    }
    if (bad)
        problem(v, rel, "%zu voxels are NaN or infinite (first at voxel %zu)", bad, first);
}

static void check_label_values(vctx *v, const char *rel, const rsy_volume *vol)
{
    if (v->n_labels < 1)
        return;
    size_t n = rsy_geometry_nvox(&vol->geom), bad = 0;
    double first = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = rsy__volume_get(vol, i);
        if ((x < 0.0 || x >= v->n_labels || x != floor(x)) && bad++ == 0)
            first = x;
    }
    if (bad)
        problem(v, rel,
                "label value %g is not declared in dataset.json (declared 0..%d): "
                "%zu voxels",
                first, v->n_labels - 1, bad);
}

/* ---------------------------------------------------------------------------------------- */
/* Checksums                                                                                  */
/* ---------------------------------------------------------------------------------------- */
/* The record of @p rel in a per-case manifest's "files" section, or NULL. */
static const cJSON *manifest_file_entry(const cJSON *man, const char *rel)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(man, "files"), *it;
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(files, "images");
    cJSON_ArrayForEach(it, images)
    {
        const char *p = json_str(it, "path");
        if (p && strcmp(p, rel) == 0)
            return it;
    }
    static const char *const single[] = {"label", "instances"};
    for (int s = 0; s < 2; s++) {
        it = cJSON_GetObjectItemCaseSensitive(files, single[s]);
        const char *p = json_str(it, "path");
        if (p && strcmp(p, rel) == 0)
            return it;
    }
    return NULL;
}

static const cJSON *dataset_file_entry(const cJSON *entry, const char *rel)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(entry, "files"), *it;
    cJSON_ArrayForEach(it, files)
    {
        const char *p = json_str(it, "path");
        if (p && strcmp(p, rel) == 0)
            return it;
    }
    return NULL;
}

/* Compare the file's SHA-256 with the per-case manifest and the dataset manifest. */
static void check_sha(vctx *v, const char *rel, const cJSON *man, const char *manrel,
                      const cJSON *entry)
{
    char path[RSY_PATH_MAX], hex[65];
    if (!file_exists(v, rel) || !full_path(v, rel, path, sizeof path))
        return;
    if (rsy_sha256_file(path, hex) != RSY_OK) {
        problem(v, rel, "cannot be read for its checksum");
        return;
    }
    if (man) {
        const char *want = json_str(manifest_file_entry(man, rel), "sha256");
        if (!want)
            problem(v, manrel, "files: no SHA-256 recorded for %s", rel);
        else if (strcmp(want, hex) != 0)
            problem(v, rel, "SHA-256 differs from %s (file changed after it was written)", manrel);
    }
    if (entry) {
        const char *want = json_str(dataset_file_entry(entry, rel), "sha256");
        if (!want)
            problem(v, RSY_EXPORT_MANIFEST, "no SHA-256 recorded for %s", rel);
        else if (strcmp(want, hex) != 0)
            problem(v, rel,
                    "SHA-256 differs from " RSY_EXPORT_MANIFEST
                    " (file changed after it was written)");
    }
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
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(lesion, key);
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
    cmp_int(l, "voxel_count", cJSON_GetObjectItemCaseSensitive(o, "voxel_count"), r->voxel_count);
    cmp_num(l, "volume_mm3", cJSON_GetObjectItemCaseSensitive(o, "volume_mm3"), r->volume_mm3);
    cmp_int(l, "mass_voxel_count", cJSON_GetObjectItemCaseSensitive(o, "mass_voxel_count"),
            r->mass_voxel_count);
    cmp_num(l, "mass_volume_mm3", cJSON_GetObjectItemCaseSensitive(o, "mass_volume_mm3"),
            r->mass_volume_mm3);
    cmp_vec(l, o, "centroid_vox", r->centroid_vox, 3, 0);
    cmp_vec(l, o, "centroid_mm", r->centroid_mm, 3, 0);
    cmp_vec(l, o, "bbox_min_vox", b0, 3, 1);
    cmp_vec(l, o, "bbox_max_vox", b1, 3, 1);
    cmp_vec(l, o, "box_cccwhd_mm", r->box_cccwhd_mm, 6, 0);
    cmp_num(l, "long_axis_mm", cJSON_GetObjectItemCaseSensitive(o, "long_axis_mm"),
            r->long_axis_mm);
    cmp_num(l, "short_axis_mm", cJSON_GetObjectItemCaseSensitive(o, "short_axis_mm"),
            r->short_axis_mm);
    cmp_int(l, "key_slice", cJSON_GetObjectItemCaseSensitive(o, "key_slice"), r->key_slice);
    cmp_vec(l, o, "slice_range", range, 2, 1);
    cmp_num(l, "equivalent_diameter_mm",
            cJSON_GetObjectItemCaseSensitive(o, "equivalent_diameter_mm"),
            r->equivalent_diameter_mm);

    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(o, "compartments"), *c;
    if (!cJSON_IsObject(comp)) {
        problem(v, l->manrel, "lesions[%d] (instance %d): compartments missing", l->index, l->id);
        return;
    }
    for (int lab = 1; lab < v->n_labels; lab++) {
        const cJSON *co = cJSON_GetObjectItemCaseSensitive(comp, v->label_names[lab]);
        if (r->label_voxels[lab] == 0 && !co)
            continue;
        char key[RSY_NAME_MAX + 32];
        snprintf(key, sizeof key, "compartments.%s.voxel_count", v->label_names[lab]);
        cmp_int(l, key, cJSON_GetObjectItemCaseSensitive(co, "voxel_count"), r->label_voxels[lab]);
    }
    cJSON_ArrayForEach(c, comp)
    {
        int known = 0;
        for (int lab = 1; lab < v->n_labels; lab++)
            known |= strcmp(c->string, v->label_names[lab]) == 0;
        if (!known)
            problem(v, l->manrel,
                    "lesions[%d] (instance %d): compartment \"%s\" is not a "
                    "declared label",
                    l->index, l->id, c->string);
    }
}

/* The perilesional flags of a case manifest: "labels_perilesional" lists declared,
 * non-background label names. 0 (reported) if the list is missing or names an unknown label. */
static int perilesional_flags(vctx *v, const char *manrel, const cJSON *man,
                              unsigned char peri[RSY_MAX_LABELS])
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(man, "labels_perilesional"), *it;
    memset(peri, 0, RSY_MAX_LABELS);
    if (!cJSON_IsArray(list)) {
        problem(v, manrel, "labels_perilesional missing or not an array of label names");
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
            problem(v, manrel, "labels_perilesional[%d] is not a declared non-background label",
                    idx);
            ok = 0;
        }
        idx++;
    }
    return ok;
}

static void check_lesions(vctx *v, const char *manrel, const cJSON *man, const char *instrel,
                          const rsy_volume *inst, const rsy_volume *lab)
{
    if (inst->dtype != RSY_DTYPE_UINT16) {
        problem(v, instrel, "instance map is %s (need uint16)", rsy_dtype_name(inst->dtype));
        return;
    }
    if (lab->dtype != RSY_DTYPE_UINT8 && lab->dtype != RSY_DTYPE_UINT16)
        return; /* reported by the header check */
    const cJSON *lesions = cJSON_GetObjectItemCaseSensitive(man, "lesions"), *o;
    if (!cJSON_IsArray(lesions)) {
        problem(v, manrel, "\"lesions\" missing or not an array");
        return;
    }
    unsigned char peri[RSY_MAX_LABELS];
    if (!perilesional_flags(v, manrel, man, peri))
        return;
    int n_inst = (int)rsy__volume_max(inst);
    rsy_lesion_record *rec = n_inst ? calloc((size_t)n_inst, sizeof *rec) : NULL;
    unsigned char *seen = n_inst ? calloc((size_t)n_inst, 1) : NULL;
    if (n_inst && (!rec || !seen)) {
        problem(v, manrel, "out of memory measuring %d lesions", n_inst);
        goto done;
    }
    if (rsy_export_measure_lesions(inst, lab, n_inst, peri, rec) != RSY_OK) {
        problem(v, instrel, "lesions cannot be measured (geometry differs from the label map)");
        goto done;
    }
    lctx l = {v, manrel, 0, 0};
    cJSON_ArrayForEach(o, lesions)
    {
        int ok;
        l.id = (int)json_int(cJSON_GetObjectItemCaseSensitive(o, "instance_id"), &ok);
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
done:
    free(seen);
    free(rec);
}

/* ---------------------------------------------------------------------------------------- */
/* One case                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* The entry of case @p id in raresynth.json's "cases" and its position @p *index. */
static const cJSON *dataset_case_entry(const vctx *v, const char *id, int *index)
{
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(v->dsman, "cases"), *c;
    *index = 0;
    cJSON_ArrayForEach(c, cases)
    {
        const char *cid = json_str(c, "case_id");
        if (cid && strcmp(cid, id) == 0)
            return c;
        (*index)++;
    }
    return NULL;
}

/* Cross-check the case's entry in raresynth.json against its manifest, and collect what the
 * dataset summary is recomputed from: the lesion count and every lesion's volume_mm3. */
static rsy_status case_against_dataset(vctx *v, const char *manrel, const cJSON *man,
                                       const cJSON *entry, int entry_index)
{
    const cJSON *lesions = man ? cJSON_GetObjectItemCaseSensitive(man, "lesions") : NULL, *o;
    if (!cJSON_IsArray(lesions)) {
        v->summary_known = 0;
        return RSY_OK;
    }
    int64_t n = cJSON_GetArraySize(lesions);
    if (entry) {
        int ok;
        int64_t listed = json_int(cJSON_GetObjectItemCaseSensitive(entry, "n_lesions"), &ok);
        if (!ok)
            problem(v, RSY_EXPORT_MANIFEST, "cases[%d].n_lesions missing or not an integer",
                    entry_index);
        else if (listed != n)
            problem(v, RSY_EXPORT_MANIFEST,
                    "cases[%d].n_lesions is %lld but %s has %lld lesion records", entry_index,
                    (long long)listed, manrel, (long long)n);
        if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(man, "labels_perilesional"),
                           cJSON_GetObjectItemCaseSensitive(v->dsman, "labels_perilesional"), 1))
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
        const cJSON *vol = cJSON_GetObjectItemCaseSensitive(o, "volume_mm3");
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

static rsy_status check_case(vctx *v, const char *id)
{
    char manrel[RSY_EXPORT_REL_MAX], instrel[RSY_EXPORT_REL_MAX], what[RSY_NAME_MAX + 64],
        path[RSY_PATH_MAX];
    int entry_index = 0;
    const cJSON *entry = v->dsman ? dataset_case_entry(v, id, &entry_index) : NULL;
    rsy_volume *lab = NULL, *inst = NULL;
    v->rep->cases_checked++;

    rsy__export_manifest_relpath(id, manrel, sizeof manrel);
    cJSON *man = load_json(v, manrel, 1, 1);
    if (man) {
        int ok;
        const char *cid = json_str(man, "case_id");
        if (json_int(cJSON_GetObjectItemCaseSensitive(man, "raresynth_case"), &ok) != 1 || !ok)
            problem(v, manrel, "\"raresynth_case\": 1 missing (not a raresynth case manifest)");
        if (!cid || strcmp(cid, id) != 0)
            problem(v, manrel, "case_id \"%s\" does not match the file name", cid ? cid : "");
        if (v->nnjson && !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(man, "labels"),
                                        cJSON_GetObjectItemCaseSensitive(v->nnjson, "labels"), 1))
            problem(v, manrel, "labels differ from dataset.json");
    }
    if (entry && full_path(v, manrel, path, sizeof path) && file_exists(v, manrel)) {
        const char *want = json_str(entry, "manifest_sha256");
        char hex[65];
        if (rsy_sha256_file(path, hex) != RSY_OK)
            problem(v, manrel, "cannot be read for its checksum");
        else if (!want || strcmp(want, hex) != 0)
            problem(v, manrel,
                    "SHA-256 differs from " RSY_EXPORT_MANIFEST
                    " (manifest changed after it was written)");
    }

    if (v->have_nnunet) {
        char rel[RSY_EXPORT_REL_MAX], labrel[RSY_EXPORT_REL_MAX];
        snprintf(labrel, sizeof labrel, "%s/labelsTr/%s" RSY_EXPORT_NII, v->nnunet_dir, id);
        snprintf(what, sizeof what, "label map of %s", id);
        lab = read_volume(v, labrel, 1, what);
        if (lab)
            check_label_values(v, labrel, lab);
        count_label_voxels(v, lab);
        check_sha(v, labrel, man, manrel, entry);
        for (int ch = 0; ch < v->n_channels; ch++) {
            snprintf(rel, sizeof rel, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, id, ch);
            snprintf(what, sizeof what, "channel %d (%s) of %s", ch, v->channel_names[ch], id);
            rsy_volume *img = read_volume(v, rel, 0, what);
            if (img) {
                check_finite(v, rel, img);
                if (lab && !rsy_geometry_equal(&img->geom, &lab->geom))
                    problem(v, rel, "shape or affine differs from the label map %s", labrel);
            }
            rsy_volume_destroy(img);
            check_sha(v, rel, man, manrel, entry);
        }
    }

    rsy__export_instance_relpath(id, instrel, sizeof instrel);
    snprintf(what, sizeof what, "instance map of %s", id);
    inst = read_volume(v, instrel, 1, what);
    check_sha(v, instrel, man, manrel, entry);
    if (inst && lab && !rsy_geometry_equal(&inst->geom, &lab->geom))
        problem(v, instrel, "shape or affine differs from the label map");
    else if (inst && lab && man)
        check_lesions(v, manrel, man, instrel, inst, lab);
    if (!v->have_nnunet)
        v->summary_known = 0;
    rsy_status rc = case_against_dataset(v, manrel, man, entry, entry_index);

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
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
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
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(v->dsman, "summary");
    int ok;
    int64_t eff = json_int(cJSON_GetObjectItemCaseSensitive(
                               cJSON_GetObjectItemCaseSensitive(v->dsman, "effective"), "cases"),
                           &ok);
    if (!ok || (size_t)eff != v->n_ids)
        problem(v, RSY_EXPORT_MANIFEST, "effective.cases is not the %zu cases listed", v->n_ids);
    if (!cJSON_IsObject(sum)) {
        problem(v, RSY_EXPORT_MANIFEST, "\"summary\" missing or not an object");
        return;
    }
    if (!v->summary_known || v->cases_seen == 0)
        return; /* a case could not be read: reported already */
    const cJSON *lpc = cJSON_GetObjectItemCaseSensitive(sum, "lesions_per_case");
    cmp_summary(v, lpc, "lesions_per_case", "mean",
                (double)v->lesions_total / (double)v->cases_seen, 1);
    cmp_summary(v, lpc, "lesions_per_case", "min", (double)v->lesions_min, 1);
    cmp_summary(v, lpc, "lesions_per_case", "max", (double)v->lesions_max, 1);

    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(sum, "lesion_volume_mm3");
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

    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(sum, "label_voxels");
    for (int l = 0; l < v->n_labels; l++)
        cmp_summary(v, lab, "label_voxels", v->label_names[l], (double)v->label_totals[l], 1);
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
    vctx v;
    memset(&v, 0, sizeof v);
    v.dir = dir;
    v.rep = r;
    v.n_channels = -1;
    v.n_labels = -1;

    if (!file_exists(&v, RSY_EXPORT_MARKER))
        problem(&v, RSY_EXPORT_MARKER, "marker missing: not a raresynth dataset directory");
    if (file_exists(&v, RSY_EXPORT_MANIFEST)) {
        r->complete = 1;
        v.dsman = load_json(&v, RSY_EXPORT_MANIFEST, 1, 1);
        int ok;
        if (v.dsman &&
            (json_int(cJSON_GetObjectItemCaseSensitive(v.dsman, "raresynth_dataset"), &ok) != 1 ||
             !ok))
            problem(&v, RSY_EXPORT_MANIFEST, "\"raresynth_dataset\": 1 missing");
    } else {
        problem(&v, NULL, "incomplete dataset: " RSY_EXPORT_MANIFEST " missing (interrupted run?)");
    }

    if ((rc = collect_cases(&v)) != RSY_OK)
        goto done;
    find_nnunet_dir(&v);
    if (v.have_nnunet)
        check_nnunet_json(&v);
    if (v.dsman) {
        const char *rel = RSY_EXPORT_MANIFEST;
        if (v.n_channels < 0)
            parse_channels(&v, rel, cJSON_GetObjectItemCaseSensitive(v.dsman, "channels"),
                           "channels");
        if (v.n_labels < 0)
            parse_labels(&v, rel, cJSON_GetObjectItemCaseSensitive(v.dsman, "labels"));
        if (v.nnjson && !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(v.dsman, "labels"),
                                       cJSON_GetObjectItemCaseSensitive(v.nnjson, "labels"), 1))
            problem(&v, rel, "labels differ from %s/dataset.json", v.nnunet_dir);
        if (v.nnjson &&
            !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(v.dsman, "channels"),
                           cJSON_GetObjectItemCaseSensitive(v.nnjson, "channel_names"), 1))
            problem(&v, rel, "channels differ from channel_names in %s/dataset.json", v.nnunet_dir);
        if (path_exists(&v, RSY_EXPORT_STAGING_DIR))
            problem(&v, RSY_EXPORT_STAGING_DIR,
                    "left over in a complete dataset (files of a failed case)");
    }
    dictionaries_from_manifest(&v);
    if (v.n_channels < 0)
        problem(&v, NULL, "channel names unknown (no dataset.json, raresynth.json or manifest)");

    if (v.have_nnunet) {
        char sub[RSY_EXPORT_REL_MAX];
        snprintf(sub, sizeof sub, "%s/imagesTr", v.nnunet_dir);
        check_folder(&v, sub, 1);
        snprintf(sub, sizeof sub, "%s/labelsTr", v.nnunet_dir);
        check_folder(&v, sub, 0);
    }
    check_folder(&v, RSY_EXPORT_INSTANCE_DIR, 0);
    v.summary_known = 1;
    for (size_t i = 0; rc == RSY_OK && i < v.n_ids; i++)
        rc = check_case(&v, v.ids[i]);
    if (rc == RSY_OK && v.dsman)
        check_summary(&v);

done:
    for (size_t i = 0; i < v.n_ids; i++)
        free(v.ids[i]);
    free(v.ids);
    free(v.volumes);
    cJSON_Delete(v.dsman);
    cJSON_Delete(v.nnjson);
    if (rc != RSY_OK)
        return rc;
    return r->problems > 0 ? RSY_EINVALID_DATASET : RSY_OK;
}
