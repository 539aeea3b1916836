/*
 * validate_layouts.c: the MSD / MONAI and nnDetection layouts of a dataset, checked by
 * `raresynth validate` against reference/formats.md (not against the writer): msd/dataset.json
 * and its training list, boxes and labels; TaskNNN_Name/dataset.json, the instance maps and
 * {case}.json; every layout file byte-identical to its nnU-Net file (a hard link or a copy).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_internal.h"

/* MONAI box mode and coordinate system stated in msd/dataset.json. */
#define MSD_BOX_MODE "cccwhd"
/* Every nnDetection and MSD box matches its lesion's voxel box within a voxel plus this (mm),
 * for cJSON's printing and the float32 affine. */
#define BOX_TOL_MM 1e-3

/* ---------------------------------------------------------------------------------------- */
/* JSON of the layouts' files                                                                 */
/* ---------------------------------------------------------------------------------------- */
/* 1 if some number token of @p text has a fraction or an exponent ("1.0", "1e0"): Python's
 * json reads those as float, and nnDetection needs integers. */
static int json_has_nonint_number(const char *text)
{
    int in_str = 0;
    for (const char *p = text; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
        } else if ((*p >= '0' && *p <= '9') || *p == '-') {
            for (; (*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
                   *p == 'E';
                 p++)
                if (*p == '.' || *p == 'e' || *p == 'E')
                    return 1;
            p--;
        }
    }
    return 0;
}

/* An object whose keys are "0".."n-1" (any order) with string values: the count, or -1. */
static int consecutive_string_map(const cJSON *obj, int max_n)
{
    if (!cJSON_IsObject(obj))
        return -1;
    int n = cJSON_GetArraySize(obj);
    if (n > max_n)
        return -1;
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        if (!json_str(obj, k))
            return -1;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* MSD / MONAI layout (reference/formats.md, "MSD / MONAI")                                    */
/* ---------------------------------------------------------------------------------------- */
/* A path of msd/dataset.json as the dataset-relative path MONAI opens (load_decathlon_datalist
 * joins it to the folder of dataset.json and normalises it): leading "./" dropped, then it
 * must be a safe relative path. 0 if it is not (absolute, "..", empty). */
static int msd_rel(const char *p, char *out, size_t n)
{
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (!rsy__validate_rel_safe(p))
        return 0;
    return snprintf(out, n, "%s/%s", RSY_EXPORT_MSD_DIR, p) < (int)n;
}

static void check_msd_strings(vctx *v, const char *rel)
{
    static const char *const keys[] = {"name", "description", "reference", "licence", "release"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!json_str(v->msdjson, keys[i]))
            problem(v, rel, "\"%s\" missing or not a string", keys[i]);
    const char *tis = json_str(v->msdjson, "tensorImageSize");
    if (!tis || strcmp(tis, "3D") != 0)
        problem(v, rel, "tensorImageSize must be \"3D\" (one file per channel)");
    const char *bm = json_str(v->msdjson, "box_mode");
    if (!bm || strcmp(bm, MSD_BOX_MODE) != 0)
        problem(v, rel, "box_mode must be \"" MSD_BOX_MODE "\" (the boxes' MONAI mode)");
    const char *cs = json_str(v->msdjson, "coordinate_system");
    if (!cs || !strstr(cs, "RAS"))
        problem(v, rel, "coordinate_system must state RAS (the boxes are in RAS+ world mm)");
}

/* The dictionaries of msd/dataset.json: modality {"0": name} equal to the channels, labels
 * {"0": "background", "1": name} the reverse of nnU-Net's. */
static void check_msd_dictionaries(vctx *v, const char *rel)
{
    const cJSON *mod = json_get(v->msdjson, "modality");
    int nm = consecutive_string_map(mod, MAX_CHANNELS);
    if (nm < 1)
        problem(v, rel, "modality must be {\"0\": name, ...} with consecutive string keys");
    else if (v->n_channels >= 0 && nm != v->n_channels)
        problem(v, rel, "modality has %d channels, the dataset %d", nm, v->n_channels);
    else
        for (int c = 0; c < nm && v->n_channels >= 0; c++) {
            char k[16];
            snprintf(k, sizeof k, "%d", c);
            if (strcmp(json_str(mod, k), v->channel_names[c]) != 0)
                problem(v, rel, "modality.%s is \"%.64s\", channel %d is \"%s\"", k,
                        json_str(mod, k), c, v->channel_names[c]);
        }
    const cJSON *lab = json_get(v->msdjson, "labels");
    int nl = consecutive_string_map(lab, RSY_MAX_LABELS);
    if (nl < 1 || strcmp(json_str(lab, "0"), "background") != 0)
        problem(v, rel,
                "labels must be {\"0\": \"background\", \"1\": name, ...} (value -> name, "
                "consecutive string keys)");
    else if (v->n_labels >= 0 && nl != v->n_labels)
        problem(v, rel, "labels has %d entries, the dataset %d", nl, v->n_labels);
    else
        for (int l = 0; l < nl && v->n_labels >= 0; l++) {
            char k[16];
            snprintf(k, sizeof k, "%d", l);
            if (strcmp(json_str(lab, k), v->label_names[l]) != 0)
                problem(v, rel, "labels.%s is \"%.64s\", label value %d is \"%s\"", k,
                        json_str(lab, k), l, v->label_names[l]);
        }
}

/* box_labels {"0": name, ...}: the box classes, the non-background labels in value order. */
static void check_msd_box_labels(vctx *v, const char *rel)
{
    const cJSON *bl = json_get(v->msdjson, "box_labels");
    int n = consecutive_string_map(bl, RSY_MAX_LABELS);
    if (n < 0) {
        problem(v, rel, "box_labels must be {\"0\": class name, ...} with consecutive string keys");
        return;
    }
    if (v->n_labels < 1)
        return;
    if (n != v->n_labels - 1) {
        problem(v, rel, "box_labels has %d classes, the dataset %d non-background labels", n,
                v->n_labels - 1);
        return;
    }
    for (int l = 0; l < n; l++) {
        char k[16];
        snprintf(k, sizeof k, "%d", l);
        if (strcmp(json_str(bl, k), v->label_names[l + 1]) != 0)
            problem(v, rel, "box_labels.%s is \"%.64s\", class %d is label \"%s\"", k,
                    json_str(bl, k), l, v->label_names[l + 1]);
    }
}

/* msd/dataset.json: keys and types, the training list against the cases. */
void rsy__validate_check_msd_dataset(vctx *v)
{
    char rel[RSY_EXPORT_REL_MAX];
    if (!rsy__validate_path_exists(v, RSY_EXPORT_MSD_DIR))
        return;
    v->have_msd = 1;
    snprintf(rel, sizeof rel, "%s/dataset.json", RSY_EXPORT_MSD_DIR);
    v->msdjson = rsy__validate_load_json(v, rel, v->rep->complete, 1, RSY_EXPORT_JSON_MAX_BYTES);
    if (!v->msdjson)
        return;
    check_msd_strings(v, rel);
    check_msd_dictionaries(v, rel);
    check_msd_box_labels(v, rel);
    const cJSON *test = json_get(v->msdjson, "test");
    int ok;
    if (test && (!cJSON_IsArray(test) || cJSON_GetArraySize(test) == 0))
        problem(v, rel,
                "\"test\" is empty or not a list: an empty test list crashes MONAI's "
                "DecathlonDataset; leave the key out");
    const cJSON *nts = json_get(v->msdjson, "numTest");
    if (nts) {
        int64_t want = cJSON_IsArray(test) ? cJSON_GetArraySize(test) : 0;
        if (json_int(nts, &ok) != want || !ok)
            problem(v, rel, "numTest must be the length of \"test\" (%lld)", (long long)want);
    }
    const cJSON *training = json_get(v->msdjson, "training"), *item;
    if (!cJSON_IsArray(training)) {
        problem(v, rel, "\"training\" missing or not a list");
        return;
    }
    int n = cJSON_GetArraySize(training);
    int64_t nt = json_int(json_get(v->msdjson, "numTraining"), &ok);
    if (!ok || nt != n)
        problem(v, rel, "numTraining must be the length of \"training\" (%d)", n);
    if (v->rep->complete && (size_t)n != v->n_cases)
        problem(v, rel, "training lists %d cases, the dataset has %zu", n, v->n_cases);
    int k = 0;
    cJSON_ArrayForEach(item, training)
    {
        const char *lp = cJSON_IsObject(item) ? json_str(item, "label") : NULL;
        char lrel[RSY_EXPORT_REL_MAX], id[ID_MAX + 8];
        if (!lp) {
            problem(v, rel, "training[%d]: not an object with a \"label\" path", k);
        } else if (!msd_rel(lp, lrel, sizeof lrel)) {
            problem(v, rel,
                    "training[%d].label \"%.128s\" is not a relative path inside msd/ (no "
                    "leading '/', no '..')",
                    k, lp);
        } else if (!rsy__validate_file_case_id(v, rsy__export_basename(lrel), FK_NII, id) ||
                   !rsy__validate_find_case(v, id)) {
            problem(v, rel, "training[%d].label \"%.128s\" is the label map of no case", k, lp);
        } else {
            vcase *c = rsy__validate_find_case(v, id);
            if (c->msd_item)
                problem(v, rel, "training[%d]: case %s listed twice (also training[%d])", k, id,
                        c->msd_pos);
            else {
                c->msd_item = item;
                c->msd_pos = k;
            }
        }
        k++;
    }
}

/* Boxes of one msd item against the lesions (records of the instance map, within a voxel):
 * each box matches one lesion, each lesion has one box, box_label is its class. */
static void check_msd_boxes(vctx *v, const char *rel, const vcase *c, const rsy_lesion_record *rec,
                            int n_rec, const rsy_geometry *g)
{
    const cJSON *boxes = json_get(c->msd_item, "box"), *labels = json_get(c->msd_item, "box_label");
    int k = c->msd_pos;
    if (!cJSON_IsArray(boxes) || !cJSON_IsArray(labels)) {
        problem(v, rel, "training[%d] (%s): \"box\" and \"box_label\" must be lists", k, c->id);
        return;
    }
    int nb = cJSON_GetArraySize(boxes), n_les = 0;
    for (int i = 0; i < n_rec; i++)
        n_les += rec[i].voxel_count > 0;
    if (cJSON_GetArraySize(labels) != nb)
        problem(v, rel, "training[%d] (%s): %d boxes but %d box labels", k, c->id, nb,
                cJSON_GetArraySize(labels));
    if (nb != n_les)
        problem(v, rel, "training[%d] (%s): %d boxes, the instance map has %d lesions", k, c->id,
                nb, n_les);
    if (nb > n_les + 64)
        return; /* a crafted list: matching each box would be quadratic; reported above */
    unsigned char *used = n_rec ? calloc((size_t)n_rec, 1) : NULL;
    if (n_rec && !used)
        return;
    const cJSON *b;
    int i = 0;
    cJSON_ArrayForEach(b, boxes)
    {
        double x[6];
        int good = cJSON_IsArray(b) && cJSON_GetArraySize(b) == 6;
        for (int a = 0; good && a < 6; a++) {
            const cJSON *e = cJSON_GetArrayItem(b, a);
            good = cJSON_IsNumber(e) && isfinite(e->valuedouble);
            x[a] = good ? e->valuedouble : 0.0;
        }
        if (!good) {
            problem(v, rel, "training[%d].box[%d] (%s): not 6 numbers [cx, cy, cz, w, h, d]", k, i,
                    c->id);
            i++;
            continue;
        }
        /* The i-th lesion first (the writer's order), then any unmatched one. */
        int match = -1;
        for (int pass = 0; pass < 2 && match < 0; pass++) {
            int seen = 0;
            for (int j = 0; j < n_rec && match < 0; j++) {
                if (rec[j].voxel_count == 0)
                    continue;
                if ((pass == 0 && seen++ != i) || used[j])
                    continue;
                int fits = 1;
                for (int a = 0; a < 3 && fits; a++)
                    fits = fabs(x[a] - rec[j].box_cccwhd_mm[a]) <= g->spacing_mm[a] + BOX_TOL_MM &&
                           fabs(x[a + 3] - rec[j].box_cccwhd_mm[a + 3]) <=
                               g->spacing_mm[a] + BOX_TOL_MM;
                if (fits)
                    match = j;
            }
        }
        if (match < 0) {
            problem(v, rel,
                    "training[%d].box[%d] (%s) [%g, %g, %g, %g, %g, %g] matches no lesion of the "
                    "instance map within a voxel",
                    k, i, c->id, x[0], x[1], x[2], x[3], x[4], x[5]);
        } else {
            used[match] = 1;
            int ok;
            int64_t cls = json_int(cJSON_GetArrayItem(labels, i), &ok);
            int want = rsy__validate_lesion_class(v, &rec[match], v->peri);
            if (i < cJSON_GetArraySize(labels) && (!ok || cls != want))
                problem(v, rel,
                        "training[%d].box_label[%d] (%s) must be %d, the class of instance %d "
                        "(its main label minus 1)",
                        k, i, c->id, want, match + 1);
        }
        i++;
    }
    free(used);
}

/* One case's msd item: image list and label byte-identical to the nnU-Net files, and the boxes
 * when the lesions could be @p measured (records @p rec of the instance map, geometry @p g). */
void rsy__validate_check_msd_case(vctx *v, const vcase *c, const rsy_lesion_record *rec, int n_rec,
                                  const rsy_geometry *g, int measured)
{
    char rel[RSY_EXPORT_REL_MAX], src[RSY_EXPORT_REL_MAX], p[RSY_EXPORT_REL_MAX];
    snprintf(rel, sizeof rel, "%s/dataset.json", RSY_EXPORT_MSD_DIR);
    if (!v->msdjson) {
        /* A shard or an interrupted run: no dataset.json, but a case is written whole, in
         * every layout: its files are there under the nnU-Net names, with the same bytes. */
        for (int ch = -1; ch < v->n_channels && v->have_nnunet; ch++) {
            const char *sub = ch < 0 ? "labelsTr" : "imagesTr";
            char suffix[16] = "";
            if (ch >= 0)
                snprintf(suffix, sizeof suffix, "_%04d", ch);
            snprintf(p, sizeof p, "%s/%s/%s%s" RSY_EXPORT_NII, RSY_EXPORT_MSD_DIR, sub, c->id,
                     suffix);
            snprintf(src, sizeof src, "%s/%s/%s%s" RSY_EXPORT_NII, v->nnunet_dir, sub, c->id,
                     suffix);
            if (!rsy__validate_path_exists(v, p))
                rsy__validate_missing_once(v, p, "MSD file of %s", c->id);
            else
                rsy__validate_check_identical(v, p, src, "msd");
        }
        return;
    }
    if (!c->msd_item) {
        problem(v, rel, "case %s is missing from \"training\"", c->id);
        return;
    }
    int k = c->msd_pos;
    const cJSON *img = json_get(c->msd_item, "image"), *e;
    int n_img = cJSON_IsArray(img) ? cJSON_GetArraySize(img) : cJSON_IsString(img) ? 1 : 0;
    if (n_img == 0 || (v->n_channels >= 0 && n_img != v->n_channels)) {
        problem(v, rel, "training[%d].image (%s) must list the %d channel files", k, c->id,
                v->n_channels);
    } else if (v->have_nnunet) {
        int ch = 0;
        const cJSON *single = cJSON_IsString(img) ? img : NULL;
        for (e = single ? single : img->child; e; e = single ? NULL : e->next, ch++) {
            if (!cJSON_IsString(e) || !msd_rel(e->valuestring, p, sizeof p)) {
                problem(v, rel,
                        "training[%d].image[%d] (%s) is not a relative path inside msd/ (no "
                        "leading '/', no '..')",
                        k, ch, c->id);
                continue;
            }
            snprintf(src, sizeof src, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, c->id,
                     ch);
            if (!rsy__validate_path_exists(v, p))
                rsy__validate_missing_once(v, p, "training[%d].image[%d] of msd/dataset.json", k,
                                           ch);
            else
                rsy__validate_check_identical(v, p, src, "msd");
        }
    }
    const char *lp = json_str(c->msd_item, "label");
    if (msd_rel(lp, p, sizeof p) && v->have_nnunet) {
        snprintf(src, sizeof src, "%s/labelsTr/%s" RSY_EXPORT_NII, v->nnunet_dir, c->id);
        if (!rsy__validate_path_exists(v, p))
            rsy__validate_missing_once(v, p, "training[%d].label of msd/dataset.json", k);
        else
            rsy__validate_check_identical(v, p, src, "msd");
    }
    if (measured)
        check_msd_boxes(v, rel, c, rec, n_rec, g);
}

/* ---------------------------------------------------------------------------------------- */
/* nnDetection layout (reference/formats.md, "nnDetection")                                   */
/* ---------------------------------------------------------------------------------------- */
void rsy__validate_check_nndet_dataset(vctx *v)
{
    if (!rsy__validate_find_numbered_dir(v, "Task", "nnDetection", v->nndet_dir))
        return;
    v->have_nndet = 1;
    v->nndet_n_classes = -1;
    char rel[RSY_EXPORT_REL_MAX], path[RSY_PATH_MAX], real[PATH_MAX];
    /* nnDetection splits paths at '.': a '.' anywhere in the absolute path breaks it. */
    if (full_path(v, v->nndet_dir, path, sizeof path) && realpath(path, real) && strchr(real, '.'))
        note(v, v->nndet_dir,
             "the absolute path %s holds a '.', which nnDetection cannot handle: move or link "
             "the dataset to a path without '.' before training",
             real);
    snprintf(rel, sizeof rel, "%s/dataset.json", v->nndet_dir);
    char yaml[RSY_EXPORT_REL_MAX];
    snprintf(yaml, sizeof yaml, "%s/dataset.yaml", v->nndet_dir);
    if (!rsy__validate_path_exists(v, rel) && rsy__validate_path_exists(v, yaml)) {
        note(v, yaml, "dataset.yaml is not checked (raresynth writes dataset.json)");
        return;
    }
    cJSON *dj = rsy__validate_load_json(v, rel, v->rep->complete, 1, RSY_EXPORT_JSON_MAX_BYTES);
    if (!dj)
        return;
    const char *task = json_str(dj, "task");
    if (!task || strcmp(task, v->nndet_dir) != 0)
        problem(v, rel, "task must be the folder name \"%s\"", v->nndet_dir);
    int ok;
    if (json_int(json_get(dj, "dim"), &ok) != 3 || !ok)
        problem(v, rel, "dim must be 3");
    const cJSON *labels = json_get(dj, "labels");
    int nl = consecutive_string_map(labels, RSY_MAX_LABELS);
    if (nl < 1) {
        problem(v, rel,
                "labels must be {\"0\": class name, ...} with consecutive string keys from "
                "\"0\" (no background entry)");
    } else {
        v->nndet_n_classes = nl;
        for (int l = 0; l < nl; l++) {
            char k[16];
            snprintf(k, sizeof k, "%d", l);
            const char *name = json_str(labels, k);
            if (!strcmp(name, "background"))
                problem(v, rel,
                        "labels.%s is \"background\": nnDetection classes have no "
                        "background entry",
                        k);
            else if (v->n_labels == nl + 1 && strcmp(name, v->label_names[l + 1]) != 0)
                problem(v, rel, "labels.%s is \"%.64s\", class %d is label \"%s\"", k, name, l,
                        v->label_names[l + 1]);
        }
        if (v->n_labels >= 1 && nl != v->n_labels - 1)
            problem(v, rel, "labels has %d classes, the dataset %d non-background labels", nl,
                    v->n_labels - 1);
    }
    const cJSON *mod = json_get(dj, "modalities");
    int nm = consecutive_string_map(mod, MAX_CHANNELS);
    if (nm < 1)
        problem(v, rel, "modalities must be {\"0\": name, ...} with consecutive string keys");
    else if (v->n_channels >= 0 && nm != v->n_channels)
        problem(v, rel, "modalities has %d channels, the dataset %d", nm, v->n_channels);
    else
        for (int c = 0; c < nm && v->n_channels >= 0; c++) {
            char k[16];
            snprintf(k, sizeof k, "%d", c);
            if (strcmp(json_str(mod, k), v->channel_names[c]) != 0)
                problem(v, rel, "modalities.%s is \"%.64s\", channel %d is \"%s\"", k,
                        json_str(mod, k), c, v->channel_names[c]);
        }
    const cJSON *tc = json_get(dj, "target_class");
    if (tc && !cJSON_IsNull(tc)) {
        int64_t t = json_int(tc, &ok);
        if (!ok || t < 0 || (nl >= 1 && t >= nl))
            problem(v, rel, "target_class must be null or a class key (0..%d)", nl - 1);
    }
    const cJSON *tl = json_get(dj, "test_labels");
    if (tl && !cJSON_IsBool(tl))
        problem(v, rel, "test_labels must be true or false");
    cJSON_Delete(dj);
}

/* {case}.json: {"instances": {"1": c, ..., "N": c}}, keys exactly "1".."N", values JSON
 * integers among the class keys. The count N, or -1 (reported); classes[i-1] = class of i. */
static int nndet_instances(vctx *v, const char *rel, int **classes)
{
    char *text = NULL;
    *classes = NULL;
    cJSON *doc = rsy__validate_load_json_text(v, rel, 1, 1, JSON_CASE_MAX_BYTES, &text);
    if (!doc)
        return -1;
    int n = -1;
    const cJSON *inst = json_get(doc, "instances");
    if (!cJSON_IsObject(inst)) {
        problem(v, rel, "\"instances\" missing or not an object");
        goto done;
    }
    if (json_has_nonint_number(text)) {
        problem(v, rel,
                "holds a number with a fraction or exponent: instance classes must be "
                "JSON integers");
        goto done;
    }
    /* One pass over the keys (a lookup per key would be quadratic in a crafted file). */
    int count = cJSON_GetArraySize(inst);
    if (count > 65535) {
        problem(v, rel, "instances: %d entries, more than a uint16 instance map holds", count);
        goto done;
    }
    int *cls = count ? malloc((size_t)count * sizeof *cls) : NULL;
    if (count && !cls) {
        problem(v, rel, "out of memory");
        goto done;
    }
    for (int i = 0; i < count; i++)
        cls[i] = -1;
    int good = 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, inst)
    {
        const char *k = it->string ? it->string : "";
        long key = 0;
        int canonical = k[0] >= '1' && k[0] <= '9' && strlen(k) <= 5;
        for (const char *d = k; canonical && *d; d++) {
            canonical = *d >= '0' && *d <= '9';
            key = 10 * key + (*d - '0');
        }
        int ok;
        int64_t c = json_int(it, &ok);
        if (!canonical || key > count || cls[key - 1] >= 0) {
            problem(v, rel,
                    "instances: keys must be exactly \"1\"..\"%d\" (\"%.16s\" is not one of them)",
                    count, k);
            good = 0;
            break;
        }
        if (!ok || c < 0 || (v->nndet_n_classes >= 0 && c >= v->nndet_n_classes)) {
            problem(v, rel, "instances.%s must be an integer class key (0..%d)", k,
                    v->nndet_n_classes - 1);
            good = 0;
            break;
        }
        cls[key - 1] = (int)c;
    }
    if (good) {
        n = count;
        *classes = cls;
    } else {
        free(cls);
    }
done:
    cJSON_Delete(doc);
    free(text);
    return n;
}

/* The same geometry, exactly (nnDetection compares size, origin, direction and spacing). */
static int same_header_geometry(const rsy_nifti_info *a, const rsy_volume *va,
                                const rsy_nifti_info *b, const rsy_volume *vb)
{
    for (int k = 0; k < 3; k++)
        if (va->geom.dims[k] != vb->geom.dims[k] || a->pixdim[k + 1] != b->pixdim[k + 1])
            return 0;
    return !memcmp(a->sto_xyz, b->sto_xyz, sizeof a->sto_xyz) &&
           !memcmp(a->qto_xyz, b->qto_xyz, sizeof a->qto_xyz) && a->qfac == b->qfac;
}

/* One case of the nnDetection layout: channels byte-identical to nnU-Net's; {case}.json; the
 * instance map with values exactly 0..N, each present, the instances of DIR/instances
 * renumbered in order after dropping empty ones (when the lesions were @p measured: @p rec,
 * n_rec of them), its geometry that of the images (@p ref); classes. */
void rsy__validate_check_nndet_case(vctx *v, const vcase *c, const rsy_volume *inst,
                                    const rsy_lesion_record *rec, int n_rec, int measured,
                                    const rsy_nifti_info *ref, const rsy_volume *ref_vol)
{
    char rel[RSY_EXPORT_REL_MAX], src[RSY_EXPORT_REL_MAX], what[ID_MAX + 64];
    for (int ch = 0; ch < v->n_channels && v->have_nnunet; ch++) {
        snprintf(rel, sizeof rel, "%s/raw_splitted/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nndet_dir,
                 c->id, ch);
        snprintf(src, sizeof src, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, v->nnunet_dir, c->id, ch);
        if (!rsy__validate_path_exists(v, rel))
            rsy__validate_missing_once(v, rel, "channel %d of %s", ch, c->id);
        else
            rsy__validate_check_identical(v, rel, src, "nnDetection");
    }
    int *cls = NULL;
    snprintf(rel, sizeof rel, "%s/raw_splitted/labelsTr/%s.json", v->nndet_dir, c->id);
    int n = nndet_instances(v, rel, &cls);
    snprintf(rel, sizeof rel, "%s/raw_splitted/labelsTr/%s" RSY_EXPORT_NII, v->nndet_dir, c->id);
    snprintf(what, sizeof what, "nnDetection instance map of %s", c->id);
    rsy_nifti_info info;
    rsy_volume *nd = rsy__validate_read_volume(v, rel, 1, what, &info);
    if (!nd)
        goto done;
    if (ref && ref_vol && !same_header_geometry(&info, nd, ref, ref_vol))
        problem(v, rel,
                "size, origin, direction or spacing differs from the case's images (nnDetection "
                "needs them identical)");
    size_t nvox = rsy_geometry_nvox(&nd->geom);
    if (n >= 0) {
        /* Values exactly 0..N, each instance present. */
        size_t *count = calloc((size_t)n + 1, sizeof *count);
        size_t beyond = 0;
        double bad = 0.0;
        if (!count)
            goto done;
        for (size_t i = 0; i < nvox; i++) {
            double x = rsy__volume_get(nd, i);
            if (x >= 0.0 && x <= n && x == floor(x))
                count[(size_t)x]++;
            else if (beyond++ == 0)
                bad = x;
        }
        if (beyond)
            problem(v, rel, "value %g is not an instance of %s (values must be 0..%d): %zu voxels",
                    bad, rsy__export_basename(rel), n, beyond);
        for (int i = 1; i <= n; i++)
            if (!count[i]) {
                problem(v, rel, "instance %d of the .json has no voxel", i);
                break;
            }
        free(count);
    }
    if (inst && measured && rsy_geometry_equal(&inst->geom, &nd->geom) &&
        inst->dtype == RSY_DTYPE_UINT16) {
        /* Renumbering: every lesion of DIR/instances maps to one nnDetection id, in order. */
        int *map = calloc((size_t)n_rec + 1, sizeof *map);
        size_t differ = 0;
        if (!map)
            goto done;
        const uint16_t *a = inst->data;
        for (size_t i = 0; i < nvox; i++) {
            double b = rsy__volume_get(nd, i);
            int ai = a[i];
            if (ai > n_rec || (ai == 0) != (b == 0.0) || !(b >= 0.0 && b <= 65535.0)) {
                differ++;
                continue;
            }
            if (ai && !map[ai])
                map[ai] = (int)b;
            else if (ai && map[ai] != (int)b)
                differ++;
        }
        int next = 1;
        for (int i = 1; i <= n_rec && !differ; i++) {
            if (rec[i - 1].voxel_count == 0)
                continue;
            if (map[i] != next)
                differ++;
            else if (cls && next <= n) {
                int want = rsy__validate_lesion_class(v, &rec[i - 1], v->peri);
                snprintf(src, sizeof src, "%s/raw_splitted/labelsTr/%s.json", v->nndet_dir, c->id);
                if (cls[next - 1] != want)
                    problem(v, src,
                            "instances.%d is class %d, but the lesion (instance %d of %s/%s) is "
                            "class %d (its main label minus 1)",
                            next, cls[next - 1], i, RSY_EXPORT_INSTANCE_DIR, c->id, want);
            }
            next++;
        }
        if (differ)
            problem(v, rel,
                    "does not hold the lesions of %s/%s" RSY_EXPORT_NII
                    " renumbered 1..N in order (empty instances dropped)",
                    RSY_EXPORT_INSTANCE_DIR, c->id);
        else if (n >= 0 && next - 1 != n)
            problem(v, rel, "%d instances in the .json, %d lesions in %s/%s" RSY_EXPORT_NII, n,
                    next - 1, RSY_EXPORT_INSTANCE_DIR, c->id);
        free(map);
    }
done:
    rsy_volume_destroy(nd);
    free(cls);
}
