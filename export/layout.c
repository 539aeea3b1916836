/*
 * layout.c: the files a case has in every layout, and the dataset files of the MSD / MONAI and
 * nnDetection layouts and of the HDF5 format (reference/formats.md; docs/manifest.md).
 *
 * The nnU-Net folder is the store: the NIfTI files are written there once, and the MSD and
 * nnDetection folders hold hard links to them (a copy when the file system refuses a link:
 * EXDEV, EPERM, EMLINK, ENOTSUP). A case's derived files (links, the nnDetection label map and
 * JSON, the preview) are made from the case's files and its manifest as parsed back, never
 * from values the files do not hold, so that a case written now and one adopted later by
 * resume or merge give the same bytes:
 * - the volumes they are made from carry the geometry as stored in the NIfTI files
 *   (rsy__export_geometry_as_stored), which is what rsy_volume_read_nifti() returns;
 * - lesion numbers come from the manifest as parsed back (cJSON may round a double when it
 *   prints it).
 * For the same reason the HDF5 file is built by finish from the cases' files, in case-index
 * order, for a run, a resume and a merge alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* The files of a case                                                                        */
/* ---------------------------------------------------------------------------------------- */
static void add_file(rsy__case_file *f, int *n, rsy__file_kind kind, int channel, int src,
                     const char *rel)
{
    rsy__case_file *x = &f[(*n)++];
    x->kind = kind;
    x->channel = channel;
    x->src = src;
    snprintf(x->rel, sizeof x->rel, "%s", rel);
}

int rsy__export_case_plan(const rsy_export *e, const char *case_id, rsy__case_file *files)
{
    char rel[RSY_EXPORT_REL_MAX];
    int n = 0;
    const int nc = e->n_channels, label = nc, inst = nc + 1;
    /* The store: plan index = checksum index of the manifest (images, label map, instances). */
    for (int ch = 0; ch < nc; ch++) {
        rsy__export_image_relpath(e, case_id, ch, rel, sizeof rel);
        add_file(files, &n, RSY__FILE_IMAGE, ch, -1, rel);
    }
    rsy__export_label_relpath(e, case_id, rel, sizeof rel);
    add_file(files, &n, RSY__FILE_LABEL, -1, -1, rel);
    rsy__export_instance_relpath(case_id, rel, sizeof rel);
    add_file(files, &n, RSY__FILE_INSTANCES, -1, -1, rel);
    if (e->layouts & RSY_LAYOUT_MSD) {
        for (int ch = 0; ch < nc; ch++) {
            snprintf(rel, sizeof rel, RSY_EXPORT_MSD_DIR "/imagesTr/%s_%04d" RSY_EXPORT_NII,
                     case_id, ch);
            add_file(files, &n, RSY__FILE_LINK, -1, ch, rel);
        }
        snprintf(rel, sizeof rel, RSY_EXPORT_MSD_DIR "/labelsTr/%s" RSY_EXPORT_NII, case_id);
        add_file(files, &n, RSY__FILE_LINK, -1, label, rel);
    }
    if (e->layouts & RSY_LAYOUT_NNDET) {
        for (int ch = 0; ch < nc; ch++) {
            snprintf(rel, sizeof rel, "%s/raw_splitted/imagesTr/%s_%04d" RSY_EXPORT_NII,
                     e->nndet_dir, case_id, ch);
            add_file(files, &n, RSY__FILE_LINK, -1, ch, rel);
        }
        snprintf(rel, sizeof rel, "%s/raw_splitted/labelsTr/%s" RSY_EXPORT_NII, e->nndet_dir,
                 case_id);
        add_file(files, &n, RSY__FILE_NNDET_LABEL, -1, inst, rel);
        snprintf(rel, sizeof rel, "%s/raw_splitted/labelsTr/%s.json", e->nndet_dir, case_id);
        add_file(files, &n, RSY__FILE_NNDET_JSON, -1, -1, rel);
    }
    if (e->preview) {
        snprintf(rel, sizeof rel, RSY_EXPORT_PREVIEW_DIR "/%s.png", case_id);
        add_file(files, &n, RSY__FILE_PREVIEW, -1, -1, rel);
    }
    rsy__export_manifest_relpath(case_id, rel, sizeof rel);
    add_file(files, &n, RSY__FILE_MANIFEST, -1, -1, rel);
    return n;
}

int rsy_export_case_file_count(const rsy_export *e)
{
    rsy__case_file files[RSY__CASE_FILES_MAX];
    return e ? rsy__export_case_plan(e, "case_0000", files) : 0;
}

rsy_status rsy_export_case_file(const rsy_export *e, size_t index, int k, char *buf, size_t n)
{
    if (!e || !buf || n == 0 || index >= e->n_cases)
        return RSY_EINVAL;
    char case_id[32];
    rsy__case_file files[RSY__CASE_FILES_MAX];
    rsy_export_case_id(index, case_id, sizeof case_id);
    int count = rsy__export_case_plan(e, case_id, files);
    if (k < 0 || k >= count)
        return RSY_EINVAL;
    return rsy__export_path(buf, n, "%s", files[k].rel);
}

/* ---------------------------------------------------------------------------------------- */
/* Geometry, classes, renumbering                                                             */
/* ---------------------------------------------------------------------------------------- */
void rsy__export_geometry_as_stored(const rsy_geometry *g, rsy_geometry *out)
{
    /* rsy_volume_write_nifti() stores the affine as float (sform rows, and the qform made from
     * the same float matrix); rsy_volume_read_nifti() returns the sform and the column norms. */
    rsy_geometry s = *g;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            s.affine[r][c] = (double)(float)g->affine[r][c];
    s.affine[3][0] = s.affine[3][1] = s.affine[3][2] = 0.0;
    s.affine[3][3] = 1.0;
    for (int c = 0; c < 3; c++) {
        double a0 = s.affine[0][c], a1 = s.affine[1][c], a2 = s.affine[2][c];
        s.spacing_mm[c] = sqrt(a0 * a0 + a1 * a1 + a2 * a2);
    }
    *out = s;
}

int rsy__export_lesion_class(const rsy_export *e, const rsy_lesion_record *r)
{
    for (int pass = 0; pass < 2; pass++) {
        int best = 0;
        int64_t most = 0;
        for (int l = 1; l < e->n_labels; l++) {
            if (e->perilesional[l] != pass)
                continue;
            if (r->label_voxels[l] > most) {
                most = r->label_voxels[l];
                best = l;
            }
        }
        if (best)
            return best - 1;
    }
    return 0;
}

/* nnDetection wants instances 1..N with no gap: the records (lesions with voxels) in
 * instance-id order are renumbered 1..n_records. 1 if that changes an id. */
static int needs_renumbering(const rsy__case_parsed *p)
{
    for (int i = 0; i < p->n_records; i++)
        if (p->records[i].instance_id != i + 1)
            return 1;
    return 0;
}

static rsy_status write_renumbered(const rsy__case_parsed *p, const rsy_volume *inst,
                                   const char *path)
{
    if (!inst || inst->dtype != RSY_DTYPE_UINT16) {
        rsy_log_error("%s: need the case's uint16 instance map", path);
        return RSY_EINVAL;
    }
    uint16_t *map = calloc(UINT16_MAX + 1, sizeof *map);
    rsy_volume *out = NULL;
    rsy_status rc = map ? rsy_volume_create(&out, &inst->geom, RSY_DTYPE_UINT16) : RSY_ENOMEM;
    if (rc != RSY_OK)
        goto done;
    for (int i = 0; i < p->n_records; i++)
        map[p->records[i].instance_id] = (uint16_t)(i + 1);
    const uint16_t *src = inst->data;
    uint16_t *dst = out->data;
    size_t n = rsy_geometry_nvox(&inst->geom);
    for (size_t v = 0; v < n; v++) {
        if (src[v] && !map[src[v]]) {
            rsy_log_error("%s: instance id %u at voxel %zu has no lesion record", path,
                          (unsigned)src[v], v);
            rc = RSY_EIO;
            goto done;
        }
        dst[v] = map[src[v]];
    }
    rc = rsy_volume_write_nifti(out, path, RSY_NIFTI_LABEL);

done:
    rsy_volume_destroy(out);
    free(map);
    return rc;
}

/* {"instances": {"1": class, ...}} of the renumbered instances. */
static char *nndet_json_text(const rsy_export *e, const rsy__case_parsed *p, size_t *len)
{
    int failed = 0;
    cJSON *doc = cJSON_CreateObject();
    cJSON *inst = cJSON_AddObjectToObject(doc, "instances");
    failed |= inst == NULL;
    for (int i = 0; inst && i < p->n_records; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i + 1);
        failed |=
            cJSON_AddNumberToObject(inst, key, rsy__export_lesion_class(e, &p->records[i])) == NULL;
    }
    char *text = failed ? NULL : rsy__export_json_text(doc, len);
    cJSON_Delete(doc);
    return text;
}

/* ---------------------------------------------------------------------------------------- */
/* Links                                                                                      */
/* ---------------------------------------------------------------------------------------- */
/* Copy @p src to the new file @p dst (created exclusively) and fsync it. */
static rsy_status copy_file(const char *src, const char *dst)
{
    char buf[1 << 16];
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, err = 0;
    if (in < 0) {
        rsy_log_error("%s: %s", src, strerror(errno));
        return RSY_EIO;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (out < 0)
        err = errno;
    while (!err) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n && !err;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno != EINTR)
                err = errno;
            else if (w > 0)
                done += w;
        }
    }
    if (!err && fsync(out) != 0 && errno != EINVAL)
        err = errno;
    if (out >= 0 && close(out) != 0 && !err)
        err = errno;
    close(in);
    if (err) {
        rsy_log_error("%s: cannot copy %s: %s", dst, src, strerror(err));
        if (out >= 0)
            unlink(dst);
        return RSY_EIO;
    }
    return RSY_OK;
}

rsy_status rsy__export_link_or_copy(const char *src, const char *dst)
{
    char *tmp = rsy__file_temp_path(dst);
    if (!tmp) {
        rsy_log_error("%s: cannot allocate a temporary name", dst);
        return RSY_ENOMEM;
    }
    rsy_status rc = RSY_OK;
    if (link(src, tmp) != 0) {
        int err = errno;
        if (err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EOPNOTSUPP) {
            rsy_log_debug("%s: cannot hard-link %s (%s): copying", dst, src, strerror(err));
            rc = copy_file(src, tmp);
        } else {
            rsy_log_error("%s: cannot link %s: %s", dst, src, strerror(err));
            rc = RSY_EIO;
        }
    }
    if (rc == RSY_OK && rename(tmp, dst) != 0) {
        rsy_log_error("%s: %s", dst, strerror(errno));
        rc = RSY_EIO;
    }
    /* rename() of two links to one file does nothing and leaves the temporary name. */
    unlink(tmp);
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Previews                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* The CT window by phantom family (docs/previews.md): thorax -> lung, head -> brain, else soft
 * tissue. MRI: percentiles on the Otsu foreground of each channel (the class map of the
 * phantom is not among a case's files, so adopting a case could not use it). */
static rsy_status write_preview(const rsy_export *e, const rsy__case_src *src, const char *path)
{
    const rsy_recipe *r = e->recipe;
    rsy_preview_params p = rsy_preview_params_default();
    rsy_preview_input in = {RSY_PREVIEW_MRI, src->channels,  e->n_channels,
                            src->labels,     src->instances, NULL};
    if (strcmp(r->modality, "ct") == 0) {
        in.modality = RSY_PREVIEW_CT;
        if (strcmp(r->phantom.family, "thorax") == 0)
            p.window = RSY_PREVIEW_WINDOW_CT_LUNG;
        else if (strcmp(r->phantom.family, "head") == 0)
            p.window = RSY_PREVIEW_WINDOW_CT_BRAIN;
        else
            p.window = RSY_PREVIEW_WINDOW_CT_SOFT_TISSUE;
    }
    if (!src->channels || !src->labels || !src->instances) {
        rsy_log_error("%s: the case's volumes are needed for its preview", path);
        return RSY_EINVAL;
    }
    return rsy_export_preview_write(&in, &p, path);
}

/* ---------------------------------------------------------------------------------------- */
/* Derived files of a case                                                                    */
/* ---------------------------------------------------------------------------------------- */
int rsy__export_file_needs(const rsy_export *e, const rsy__case_file *plan, int k,
                           const rsy__case_parsed *parsed)
{
    (void)e;
    if (plan[k].kind == RSY__FILE_PREVIEW)
        return 2;
    if (plan[k].kind == RSY__FILE_NNDET_LABEL && needs_renumbering(parsed))
        return 1;
    return 0;
}

rsy_status rsy__export_make_file(const rsy_export *e, const rsy__case_file *plan, int k,
                                 char (*paths)[RSY_PATH_MAX], const rsy__case_src *src)
{
    const rsy__case_file *f = &plan[k];
    switch (f->kind) {
    case RSY__FILE_LINK:
        return rsy__export_link_or_copy(paths[f->src], paths[k]);
    case RSY__FILE_NNDET_LABEL:
        if (!needs_renumbering(src->parsed))
            return rsy__export_link_or_copy(paths[f->src], paths[k]);
        return write_renumbered(src->parsed, src->instances, paths[k]);
    case RSY__FILE_NNDET_JSON: {
        size_t len = 0;
        char *text = nndet_json_text(e, src->parsed, &len);
        if (!text)
            return RSY_ENOMEM;
        rsy_status rc = rsy__export_write_durable(paths[k], text, len);
        free(text);
        return rc;
    }
    case RSY__FILE_PREVIEW:
        return write_preview(e, src, paths[k]);
    case RSY__FILE_IMAGE:
    case RSY__FILE_LABEL:
    case RSY__FILE_INSTANCES:
    case RSY__FILE_MANIFEST:
        break;
    }
    rsy_log_error("%s: not a derived file", paths[k]);
    return RSY_EINVAL;
}

/* 1 if @p path is @p src's inode, or a regular file with checksum @p sha. */
static int same_file(const char *path, const char *src, const char *sha)
{
    struct stat a, b;
    if (lstat(path, &a) != 0 || !S_ISREG(a.st_mode))
        return 0;
    if (stat(src, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return 1;
    char h[65];
    return rsy_sha256_file(path, h) == RSY_OK && strcmp(h, sha) == 0;
}

int rsy__export_file_current(const rsy_export *e, const rsy__case_file *plan, int k,
                             char (*paths)[RSY_PATH_MAX], const rsy__case_parsed *parsed)
{
    const rsy__case_file *f = &plan[k];
    struct stat st;
    switch (f->kind) {
    case RSY__FILE_NNDET_LABEL:
        if (needs_renumbering(parsed))
            return 0;
        /* fall through */
    case RSY__FILE_LINK:
        return same_file(paths[k], paths[f->src], parsed->sha[f->src]);
    case RSY__FILE_NNDET_JSON: {
        size_t len = 0, have_len = 0;
        char *want = nndet_json_text(e, parsed, &len), *have = NULL;
        int same = 0;
        if (want && lstat(paths[k], &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len &&
            rsy_file_read_all(paths[k], len, &have, &have_len) == RSY_OK)
            same = have_len == len && memcmp(have, want, len) == 0;
        free(want);
        free(have);
        return same;
    }
    case RSY__FILE_PREVIEW:
        return lstat(paths[k], &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    case RSY__FILE_IMAGE:
    case RSY__FILE_LABEL:
    case RSY__FILE_INSTANCES:
    case RSY__FILE_MANIFEST:
        break;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Dataset files of the MSD and nnDetection layouts                                           */
/* ---------------------------------------------------------------------------------------- */
#define CHK(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) == NULL)                                                                        \
            failed = 1;                                                                            \
    } while (0)

static int append(cJSON *arr, cJSON *item)
{
    if (!item || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        return 1;
    }
    return 0;
}

/* {"0": first, ...}: @p n names from @p names[first..]. */
static cJSON *index_object(const char *const *names, int first, int n)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        if (!cJSON_AddStringToObject(o, key, names[first + i])) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

static cJSON *channel_names(const rsy_export *e)
{
    const char *names[RSY_MAX_SEQUENCES];
    for (int i = 0; i < e->n_channels; i++)
        names[i] = rsy_recipe_channel_name(e->recipe, i);
    return index_object(names, 0, e->n_channels);
}

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

/* One entry of the MSD training list: per-channel image paths, the label map, and the
 * detection boxes of its lesion records with their classes. */
static cJSON *msd_item(const rsy_export *e, size_t index)
{
    const rsy__case_summary *s = e->cases[index];
    char case_id[32], rel[RSY_EXPORT_REL_MAX];
    int failed = 0;
    rsy_export_case_id(index, case_id, sizeof case_id);
    cJSON *o = cJSON_CreateObject();
    cJSON *img = cJSON_AddArrayToObject(o, "image");
    CHK(img);
    for (int ch = 0; img && ch < e->n_channels; ch++) {
        snprintf(rel, sizeof rel, "imagesTr/%s_%04d" RSY_EXPORT_NII, case_id, ch);
        failed |= append(img, cJSON_CreateString(rel));
    }
    snprintf(rel, sizeof rel, "labelsTr/%s" RSY_EXPORT_NII, case_id);
    CHK(cJSON_AddStringToObject(o, "label", rel));
    cJSON *box = cJSON_AddArrayToObject(o, "box");
    cJSON *cls = cJSON_AddArrayToObject(o, "box_label");
    CHK(box);
    CHK(cls);
    for (int l = 0; box && cls && l < s->n_lesions; l++) {
        failed |= append(box, cJSON_CreateDoubleArray(s->box[l], 6));
        failed |= append(cls, cJSON_CreateNumber(s->box_class[l]));
    }
    if (failed) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* msd/dataset.json (Medical Segmentation Decathlon, as MONAI's load_decathlon_datalist reads
 * it): labels value -> name, paths relative to msd/, no "test" key (an empty one crashes the
 * loader), boxes cccwhd in world RAS mm with 0-based classes over the non-background labels. */
static rsy_status write_msd_json(const rsy_export *e)
{
    const rsy_recipe *r = e->recipe;
    char ref[128];
    int failed = 0;
    const char *names[RSY_MAX_LABELS];
    for (int i = 0; i < e->n_labels; i++)
        names[i] = e->label_names[i];
    cJSON *doc = cJSON_CreateObject();
    CHK(cJSON_AddStringToObject(doc, "name", r->name));
    CHK(cJSON_AddStringToObject(doc, "description", r->description));
    snprintf(ref, sizeof ref, "Synthetic data generated by raresynth %s; no patient data",
             rsy_version());
    CHK(cJSON_AddStringToObject(doc, "reference", ref));
    CHK(cJSON_AddStringToObject(doc, "licence", RSY_EXPORT_LICENCE));
    CHK(cJSON_AddStringToObject(doc, "release", rsy_version()));
    CHK(cJSON_AddStringToObject(doc, "tensorImageSize", "3D"));
    CHK(rsy__json_add(doc, "modality", channel_names(e)));
    CHK(rsy__json_add(doc, "labels", index_object(names, 0, e->n_labels)));
    CHK(cJSON_AddNumberToObject(doc, "numTraining", (double)e->n_cases));
    CHK(cJSON_AddStringToObject(doc, "box_mode", "cccwhd"));
    CHK(cJSON_AddStringToObject(doc, "coordinate_system", "RAS"));
    CHK(rsy__json_add(doc, "box_labels", index_object(names, 1, e->n_labels - 1)));
    cJSON *training = cJSON_AddArrayToObject(doc, "training");
    CHK(training);
    for (size_t i = 0; training && !failed && i < e->n_cases; i++)
        failed |= append(training, msd_item(e, i));
    return write_doc(e, RSY_EXPORT_MSD_DIR "/dataset.json", doc, failed);
}

/* TaskNNN_Name/dataset.json (nnDetection): classes without background, string keys from 0. */
static rsy_status write_nndet_json(const rsy_export *e)
{
    char rel[RSY_EXPORT_REL_MAX];
    int failed = 0;
    const char *names[RSY_MAX_LABELS];
    for (int i = 0; i < e->n_labels; i++)
        names[i] = e->label_names[i];
    cJSON *doc = cJSON_CreateObject();
    CHK(cJSON_AddStringToObject(doc, "task", e->nndet_dir));
    CHK(cJSON_AddStringToObject(doc, "name", e->recipe->name));
    CHK(cJSON_AddNumberToObject(doc, "dim", 3));
    CHK(rsy__json_add(doc, "labels", index_object(names, 1, e->n_labels - 1)));
    CHK(rsy__json_add(doc, "modalities", channel_names(e)));
    snprintf(rel, sizeof rel, "%s/dataset.json", e->nndet_dir);
    return write_doc(e, rel, doc, failed);
}

rsy_status rsy__export_write_layout_files(const rsy_export *e)
{
    rsy_status rc = RSY_OK;
    if (e->layouts & RSY_LAYOUT_MSD)
        rc = write_msd_json(e);
    if (rc == RSY_OK && (e->layouts & RSY_LAYOUT_NNDET))
        rc = write_nndet_json(e);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* HDF5, built from the cases' files                                                          */
/* ---------------------------------------------------------------------------------------- */
typedef struct h5_case {
    rsy__case_parsed parsed;
    rsy_volume *vol[RSY_MAX_SEQUENCES + 2]; /* channels, label map, instance map */
    rsy_lesion_info *info;                  /* max instance id of them, gaps empty */
    rsy_lesion_record *rec;
} h5_case;

static void h5_case_clear(h5_case *c)
{
    rsy__case_parsed_clear(&c->parsed);
    for (int i = 0; i < RSY_MAX_SEQUENCES + 2; i++)
        rsy_volume_destroy(c->vol[i]);
    free(c->info);
    free(c->rec);
    memset(c, 0, sizeof *c);
}

static rsy_status hdf5_add(const rsy_export *e, rsy_export_hdf5 *w, size_t index)
{
    char case_id[32], path[RSY_PATH_MAX];
    rsy__case_file plan[RSY__CASE_FILES_MAX];
    h5_case c;
    memset(&c, 0, sizeof c);
    rsy_export_case_id(index, case_id, sizeof case_id);
    int n = rsy__export_case_plan(e, case_id, plan);
    char *text = NULL;
    size_t len = 0;
    rsy_status rc = rsy__export_path(path, sizeof path, "%s/%s", e->out_dir, plan[n - 1].rel);
    if (rc == RSY_OK)
        rc = rsy_file_read_all(path, RSY_EXPORT_JSON_MAX_BYTES, &text, &len);
    if (rc != RSY_OK) {
        rc = rc == RSY_ENOMEM ? rc : RSY_EIO;
        goto done;
    }
    char sha[65];
    rsy_sha256_hex(text, len, sha);
    if (strcmp(sha, e->cases[index]->manifest_sha) != 0) {
        rsy_log_error("%s: changed since the case was written (SHA-256 differs)", path);
        rc = RSY_EIO;
        goto done;
    }
    if ((rc = rsy__export_parse_case(e, index, text, len, path, &c.parsed)) != RSY_OK)
        goto done;
    for (int k = 0; k < e->n_channels + 2; k++) {
        if ((rc = rsy__export_path(path, sizeof path, "%s/%s", e->out_dir, plan[k].rel)) !=
                RSY_OK ||
            (rc = rsy_volume_read_nifti(&c.vol[k], NULL, path)) != RSY_OK) {
            rc = rc == RSY_ENOMEM ? rc : RSY_EIO;
            goto done;
        }
    }
    /* The writer takes lesions 1..N with their records; ids without a record (lesions that
     * have no voxel) get an empty one, which it leaves out as the manifest does. */
    int n_les = c.parsed.n_records ? c.parsed.records[c.parsed.n_records - 1].instance_id : 0;
    if (n_les > 0 && (!(c.info = calloc((size_t)n_les, sizeof *c.info)) ||
                      !(c.rec = calloc((size_t)n_les, sizeof *c.rec)))) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (int l = 0; l < n_les; l++)
        c.info[l].instance_id = c.rec[l].instance_id = l + 1;
    for (int i = 0; i < c.parsed.n_records; i++) {
        int id = c.parsed.records[i].instance_id;
        c.rec[id - 1] = c.parsed.records[i];
        c.info[id - 1] = c.parsed.info[i];
    }
    const rsy_volume *chans[RSY_MAX_SEQUENCES];
    for (int ch = 0; ch < e->n_channels; ch++)
        chans[ch] = c.vol[ch];
    rsy_case_data d = {index,
                       chans,
                       e->n_channels,
                       c.vol[e->n_channels],
                       c.vol[e->n_channels + 1],
                       c.info,
                       n_les,
                       NULL,
                       0,
                       NULL,
                       0,
                       c.parsed.findings};
    rc = rsy_export_hdf5_add_case(w, &d, c.rec);

done:
    free(text);
    h5_case_clear(&c);
    return rc;
}

rsy_status rsy__export_build_hdf5(const rsy_export *e, char sha[65])
{
    char path[RSY_PATH_MAX];
    const char *chan[RSY_MAX_SEQUENCES];
    rsy_status rc = rsy__export_path(path, sizeof path, "%s/%s.h5", e->out_dir, e->nnunet_dir);
    if (rc != RSY_OK)
        return rc;
    for (int i = 0; i < e->n_channels; i++)
        chan[i] = rsy_recipe_channel_name(e->recipe, i);
    rsy_export_hdf5_params p = rsy_export_hdf5_params_default();
    p.path = path;
    p.dataset_name = e->recipe->name;
    p.recipe_sha256 = e->recipe->sha256;
    p.dataset_seed = e->recipe->seed;
    p.modality = e->recipe->modality;
    p.channel_names = chan;
    p.n_channels = e->n_channels;
    p.label_names = (const char *const *)e->label_names;
    p.n_labels = e->n_labels;
    p.label_perilesional = e->perilesional;
    rsy_export_hdf5 *w = NULL;
    if ((rc = rsy_export_hdf5_create(&w, &p)) != RSY_OK)
        return rc;
    for (size_t i = 0; i < e->n_cases && rc == RSY_OK; i++)
        if (rsy__export_holds(e, i))
            rc = hdf5_add(e, w, i);
    if (rc != RSY_OK) {
        rsy_export_hdf5_abort(w);
        return rc;
    }
    return rsy_export_hdf5_close(w, sha);
}
