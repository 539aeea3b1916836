/*
 * writer.c: the dataset writer. prepare_dir guards the output directory; begin/write_case/
 * finish lay out the nnU-Net v2 folder (reference/formats.md, "nnU-Net v2"), the instance maps
 * and the manifests. Cases may be written concurrently and in any order: each keeps its
 * summary in a slot indexed by case index, so finish() produces the same bytes whatever the
 * order or thread count.
 *
 * Durability and atomicity: a case's files are staged in DIR/.staging/<case>/, each fsynced
 * (one fsync per file), then renamed into place (manifest last) and the four destination
 * folders fsynced once per case; a failure at any step removes every file of the case. The
 * dataset-level files are written to a temporary name, fsynced and renamed; the dataset
 * folder is fsynced before and after raresynth.json, whose presence marks a complete dataset.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Names and paths                                                                            */
/* ---------------------------------------------------------------------------------------- */
void rsy_export_nnunet_dirname(const rsy_recipe *r, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    snprintf(buf, n, "Dataset%03d_%s", r ? r->dataset_id : 0, r ? r->name : "");
}

void rsy_export_case_id(size_t index, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    snprintf(buf, n, "case_%04zu", index);
}

rsy_status rsy__export_path(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= n) {
        rsy_log_error("path too long (%d bytes, limit %zu)", len, n);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

void rsy__export_image_relpath(const rsy_export *e, const char *case_id, int channel, char *buf,
                               size_t n)
{
    snprintf(buf, n, "%s/imagesTr/%s_%04d" RSY_EXPORT_NII, e->nnunet_dir, case_id, channel);
}

void rsy__export_label_relpath(const rsy_export *e, const char *case_id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/labelsTr/%s" RSY_EXPORT_NII, e->nnunet_dir, case_id);
}

void rsy__export_instance_relpath(const char *case_id, char *buf, size_t n)
{
    snprintf(buf, n, RSY_EXPORT_INSTANCE_DIR "/%s" RSY_EXPORT_NII, case_id);
}

void rsy__export_manifest_relpath(const char *case_id, char *buf, size_t n)
{
    snprintf(buf, n, RSY_EXPORT_MANIFEST_DIR "/%s.json", case_id);
}

const char *rsy__export_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---------------------------------------------------------------------------------------- */
/* Durable writes                                                                             */
/* ---------------------------------------------------------------------------------------- */
rsy_status rsy__export_fsync(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rsy_log_error("%s: cannot open to sync: %s", path, strerror(errno));
        return RSY_EIO;
    }
    /* EINVAL: the file system does not support syncing this kind of file (POSIX fsync());
     * there is nothing more we can do for durability, and it is no write error. */
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) {
        rsy_log_error("%s: fsync failed: %s", path, strerror(err));
        return RSY_EIO;
    }
    return RSY_OK;
}

rsy_status rsy__export_write_synced(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rsy_log_error("%s: %s", path, strerror(errno));
        return RSY_EIO;
    }
    const char *p = data;
    size_t done = 0;
    int err = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        done += (size_t)n;
    }
    if (!err && fsync(fd) != 0 && errno != EINVAL)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (err) {
        rsy_log_error("%s: %s", path, strerror(err));
        return RSY_EIO;
    }
    return RSY_OK;
}

rsy_status rsy__export_write_durable(const char *path, const void *data, size_t len)
{
    char *tmp = rsy__file_temp_path(path);
    if (!tmp) {
        rsy_log_error("%s: cannot allocate a temporary name", path);
        return RSY_ENOMEM;
    }
    rsy_status rc = rsy__export_write_synced(tmp, data, len);
    if (rc == RSY_OK && rename(tmp, path) != 0) {
        rsy_log_error("%s: %s", path, strerror(errno));
        rc = RSY_EIO;
    }
    if (rc != RSY_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* prepare_dir                                                                                */
/* ---------------------------------------------------------------------------------------- */
/* 1 if @p dir has an entry besides "." and "..", 0 if empty, -1 on error (logged). */
static int dir_has_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        rsy_log_error("%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int found = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0) {
            found = 1;
            break;
        }
    }
    closedir(d);
    return found;
}

/* nftw callback: remove everything below the root (depth-first, symlinks removed as links,
 * never followed: FTW_PHYS). */
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (ftw->level == 0)
        return 0;
    if (remove(path) != 0) {
        rsy_log_error("%s: cannot remove: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

rsy_status rsy_export_prepare_dir(const char *dir, int force)
{
    char path[RSY_PATH_MAX];
    struct stat st;

    if (!dir || !*dir) {
        rsy_log_error("no output directory given");
        return RSY_EIO;
    }
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            rsy_log_error("%s: exists and is not a directory", dir);
            return RSY_EIO;
        }
        int has = dir_has_entries(dir);
        if (has < 0)
            return RSY_EIO;
        if (has) {
            if (!force) {
                rsy_log_error("%s: output directory is not empty (use --force)", dir);
                return RSY_EIO;
            }
            if (rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_MARKER, dir) != RSY_OK)
                return RSY_EIO;
            if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
                rsy_log_error("%s: not empty and holds no " RSY_EXPORT_MARKER
                              " marker of an earlier raresynth run: refusing to delete its "
                              "contents (choose another directory)",
                              dir);
                return RSY_EIO;
            }
            /* "<dir>/." resolves a symlinked root once; below it nothing is followed. */
            if (rsy__export_path(path, sizeof path, "%s/.", dir) != RSY_OK)
                return RSY_EIO;
            if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
                rsy_log_error("%s: could not remove the earlier dataset", dir);
                return RSY_EIO;
            }
        }
    } else if (errno != ENOENT) {
        rsy_log_error("%s: %s", dir, strerror(errno));
        return RSY_EIO;
    } else if (rsy_mkdir_p(dir) != RSY_OK) {
        return RSY_EIO;
    }

    static const char marker[] = "raresynth dataset directory (" RSY_EXPORT_MARKER
                                 " marks a directory that raresynth may replace with --force)\n";
    if (rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_MARKER, dir) != RSY_OK)
        return RSY_EIO;
    return rsy_file_write_atomic(path, marker, sizeof marker - 1) == RSY_OK ? RSY_OK : RSY_EIO;
}

/* ---------------------------------------------------------------------------------------- */
/* begin / destroy                                                                            */
/* ---------------------------------------------------------------------------------------- */
void rsy__case_summary_free(rsy__case_summary *s)
{
    if (!s)
        return;
    free(s->sha);
    free(s->lesion_volume_mm3);
    free(s->label_voxels);
    free(s);
}

void rsy_export_destroy(rsy_export *e)
{
    if (!e)
        return;
    if (e->cases) {
        for (size_t i = 0; i < e->n_cases; i++)
            rsy__case_summary_free(e->cases[i]);
        free(e->cases);
        pthread_mutex_destroy(&e->lock);
    }
    if (e->label_names) {
        for (int i = 0; i < e->n_labels; i++)
            free(e->label_names[i]);
        free(e->label_names);
    }
    free(e->prior_sha);
    free(e->texture_note);
    free(e->out_dir);
    free(e);
}

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* The label dictionary must start with "background" and hold unique, non-empty names. */
static rsy_status check_labels(const rsy_export_params *p)
{
    if (!p->label_names || p->n_labels < 1 || p->n_labels > RSY_MAX_LABELS) {
        rsy_log_error("label dictionary: need 1..%d names, got %d", RSY_MAX_LABELS, p->n_labels);
        return RSY_EINVAL;
    }
    for (int i = 0; i < p->n_labels; i++) {
        const char *n = p->label_names[i];
        if (!n || !*n || (i == 0 && strcmp(n, "background") != 0)) {
            rsy_log_error("label dictionary: value %d has name \"%s\" (value 0 must be "
                          "\"background\", names non-empty)",
                          i, n ? n : "(null)");
            return RSY_EINVAL;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(p->label_names[j], n) == 0) {
                rsy_log_error("label dictionary: name \"%s\" used for values %d and %d", n, j, i);
                return RSY_EINVAL;
            }
        }
    }
    if (p->label_perilesional && p->label_perilesional[0]) {
        rsy_log_error("label dictionary: \"background\" (value 0) cannot be perilesional");
        return RSY_EINVAL;
    }
    return RSY_OK;
}

/* SHA-256 of a configuration file the recipe was built from, for the dataset manifest. */
static rsy_status hash_config_file(const char *what, const char *name, const char *path,
                                   char sha[65])
{
    if (!path[0]) {
        rsy_log_error("recipe: %s \"%s\" has no file path to record in the dataset manifest", what,
                      name);
        return RSY_EINVAL;
    }
    return rsy_sha256_file(path, sha) == RSY_OK ? RSY_OK : RSY_EIO;
}

rsy_status rsy_export_begin(rsy_export **out, const rsy_export_params *p)
{
    rsy_export *e = NULL;
    rsy_status rc;
    char path[RSY_PATH_MAX];
    cJSON *probe = NULL;

    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!p || !p->recipe || !p->out_dir) {
        rsy_log_error("missing recipe or output directory");
        return RSY_EINVAL;
    }
    const rsy_recipe *r = p->recipe;
    int n_channels = rsy_recipe_n_channels(r);
    if (r->cases < 1 || n_channels < 1 || n_channels > RSY_MAX_SEQUENCES ||
        r->dataset_id < 1 || r->dataset_id > 999 || !r->name[0]) {
        rsy_log_error("recipe: need cases >= 1, 1..%d channels, dataset_id 1..999 and a name",
                      RSY_MAX_SEQUENCES);
        return RSY_EINVAL;
    }
    if (!r->json) {
        rsy_log_error("recipe: no JSON text to embed in the dataset manifest");
        return RSY_EINVAL;
    }
    /* The recipe text is embedded as a JSON object in raresynth.json: check it parses now. */
    const char *end = NULL;
    probe = cJSON_ParseWithLengthOpts(r->json, strlen(r->json) + 1, &end, 1);
    if (!cJSON_IsObject(probe)) {
        rsy_log_error("recipe: embedded JSON text is not a JSON object");
        rc = RSY_EINVAL;
        goto fail;
    }
    if ((rc = check_labels(p)) != RSY_OK)
        goto fail;

    e = calloc(1, sizeof *e);
    if (!e) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    e->recipe = r;
    e->n_channels = n_channels;
    e->n_cases = (size_t)r->cases;
    rsy_export_nnunet_dirname(r, e->nnunet_dir, sizeof e->nnunet_dir);
    e->out_dir = dup_string(p->out_dir);
    e->texture_note = dup_string(p->texture_note ? p->texture_note : "");
    e->label_names = calloc((size_t)p->n_labels, sizeof *e->label_names);
    if (!e->out_dir || !e->texture_note || !e->label_names) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    e->n_labels = p->n_labels;
    for (int i = 0; i < p->n_labels; i++) {
        if (!(e->label_names[i] = dup_string(p->label_names[i]))) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        e->perilesional[i] = p->label_perilesional && p->label_perilesional[i] ? 1 : 0;
    }
    if (r->n_lesion_types > 0 &&
        !(e->prior_sha = calloc((size_t)r->n_lesion_types, sizeof *e->prior_sha))) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    for (int t = 0; t < r->n_lesion_types; t++) {
        const rsy_prior *pr = &r->lesions[t].prior;
        if ((rc = hash_config_file("prior", pr->name, pr->path, e->prior_sha[t])) != RSY_OK)
            goto fail;
    }
    if ((rc = hash_config_file("tissue table", r->tissues.name, r->tissues.path, e->tissue_sha)) !=
        RSY_OK)
        goto fail;
    if (strcmp(r->modality, "ct") == 0 &&
        (rc = hash_config_file("scanner profile", r->ct.scanner.name, r->ct.scanner.path,
                               e->scanner_sha)) != RSY_OK)
        goto fail;
    if (r->texture == RSY_TEXTURE_PRESET &&
        (rc = hash_config_file("texture preset", r->texture_spec.preset.name,
                               r->texture_spec.preset.path, e->preset_sha)) != RSY_OK)
        goto fail;
    if (pthread_mutex_init(&e->lock, NULL) != 0) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    e->cases = calloc(e->n_cases, sizeof *e->cases);
    if (!e->cases) {
        pthread_mutex_destroy(&e->lock);
        rc = RSY_ENOMEM;
        goto fail;
    }

    char rel[2][RSY_EXPORT_REL_MAX];
    snprintf(rel[0], sizeof rel[0], "%s/imagesTr", e->nnunet_dir);
    snprintf(rel[1], sizeof rel[1], "%s/labelsTr", e->nnunet_dir);
    static const char *const fixed[] = {RSY_EXPORT_INSTANCE_DIR, RSY_EXPORT_MANIFEST_DIR,
                                        RSY_EXPORT_STAGING_DIR};
    for (int s = 0; s < 5; s++) {
        const char *sub = s < 2 ? rel[s] : fixed[s - 2];
        if ((rc = rsy__export_path(path, sizeof path, "%s/%s", e->out_dir, sub)) != RSY_OK)
            goto fail;
        if (rsy_mkdir_p(path) != RSY_OK) {
            rc = RSY_EIO;
            goto fail;
        }
    }
    cJSON_Delete(probe);
    *out = e;
    return RSY_OK;

fail:
    cJSON_Delete(probe);
    rsy_export_destroy(e);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* write_case                                                                                 */
/* ---------------------------------------------------------------------------------------- */
static rsy_status check_case(const rsy_export *e, const rsy_case_data *c)
{
    if (c->case_index >= e->n_cases) {
        rsy_log_error("case index %zu out of range (dataset has %zu cases)", c->case_index,
                      e->n_cases);
        return RSY_EINVAL;
    }
    if (c->n_channels != e->n_channels || !c->channels || !c->labels || !c->instances) {
        rsy_log_error("case %zu: %d channels (recipe has %d sequences), label map %s, "
                      "instance map %s",
                      c->case_index, c->n_channels, e->n_channels, c->labels ? "set" : "missing",
                      c->instances ? "set" : "missing");
        return RSY_EINVAL;
    }
    for (int ch = 0; ch < c->n_channels; ch++) {
        const rsy_volume *v = c->channels[ch];
        if (!v || (v->dtype != RSY_DTYPE_FLOAT32 && v->dtype != RSY_DTYPE_INT16) ||
            !rsy_geometry_equal(&v->geom, &c->labels->geom)) {
            rsy_log_error("case %zu: channel %d missing, not float32/int16, or its geometry "
                          "differs from the label map",
                          c->case_index, ch);
            return RSY_EINVAL;
        }
    }
    if (!rsy_geometry_equal(&c->instances->geom, &c->labels->geom) ||
        c->instances->dtype != RSY_DTYPE_UINT16 ||
        (c->labels->dtype != RSY_DTYPE_UINT8 && c->labels->dtype != RSY_DTYPE_UINT16)) {
        rsy_log_error("case %zu: need a uint8/uint16 label map and a uint16 instance map of "
                      "equal geometry",
                      c->case_index);
        return RSY_EINVAL;
    }
    if (c->n_lesions < 0 || c->n_lesions > UINT16_MAX || (c->n_lesions > 0 && !c->lesions) ||
        (c->n_subject > 0 && !c->subject) || (c->n_acquisition > 0 && !c->acquisition)) {
        rsy_log_error("case %zu: inconsistent lesion, subject or acquisition arrays",
                      c->case_index);
        return RSY_EINVAL;
    }
    for (int l = 0; l < c->n_lesions; l++) {
        if (c->lesions[l].instance_id != l + 1) {
            rsy_log_error("case %zu: lesion %d has instance id %d (expected %d)", c->case_index, l,
                          c->lesions[l].instance_id, l + 1);
            return RSY_EINVAL;
        }
    }
    return RSY_OK;
}

/* Count the voxels of each label value; a value outside the dictionary, or an instance id
 * above n_lesions, is the caller's error. */
static rsy_status count_labels(const rsy_export *e, const rsy_case_data *c, int64_t *counts)
{
    size_t n = rsy_geometry_nvox(&c->labels->geom);
    const uint16_t *inst = c->instances->data;
    for (size_t i = 0; i < n; i++) {
        double v = rsy__volume_get(c->labels, i);
        if (v >= e->n_labels) {
            rsy_log_error("case %zu: label value %g at voxel %zu is not in the dictionary "
                          "(%d labels)",
                          c->case_index, v, i, e->n_labels);
            return RSY_EINVAL;
        }
        counts[(int)v]++;
        if (inst[i] > c->n_lesions) {
            rsy_log_error("case %zu: instance id %u at voxel %zu exceeds the %d lesions",
                          c->case_index, (unsigned)inst[i], i, c->n_lesions);
            return RSY_EINVAL;
        }
    }
    return RSY_OK;
}

/* The files of one case: final paths (in rename order: images, label map, instance map,
 * manifest last) and their staged names in DIR/.staging/<case>/. */
typedef struct case_files {
    int n; /* n_channels + 3 */
    char stage_dir[RSY_PATH_MAX];
    char (*final)[RSY_PATH_MAX];
    char (*staged)[RSY_PATH_MAX];
} case_files;

static void case_files_free(case_files *f)
{
    free(f->final);
    free(f->staged);
}

static rsy_status case_files_init(case_files *f, const rsy_export *e, const char *case_id)
{
    char rel[RSY_EXPORT_REL_MAX], name[64];
    rsy_status rc;
    f->n = e->n_channels + 3;
    f->final = calloc((size_t)f->n, sizeof *f->final);
    f->staged = calloc((size_t)f->n, sizeof *f->staged);
    if (!f->final || !f->staged)
        return RSY_ENOMEM;
    if ((rc = rsy__export_path(f->stage_dir, sizeof f->stage_dir,
                               "%s/" RSY_EXPORT_STAGING_DIR "/%s", e->out_dir, case_id)) != RSY_OK)
        return rc;
    for (int i = 0; i < f->n; i++) {
        if (i < e->n_channels) {
            rsy__export_image_relpath(e, case_id, i, rel, sizeof rel);
            snprintf(name, sizeof name, "image_%04d" RSY_EXPORT_NII, i);
        } else if (i == e->n_channels) {
            rsy__export_label_relpath(e, case_id, rel, sizeof rel);
            snprintf(name, sizeof name, "label" RSY_EXPORT_NII);
        } else if (i == e->n_channels + 1) {
            rsy__export_instance_relpath(case_id, rel, sizeof rel);
            snprintf(name, sizeof name, "instances" RSY_EXPORT_NII);
        } else {
            rsy__export_manifest_relpath(case_id, rel, sizeof rel);
            snprintf(name, sizeof name, "manifest.json");
        }
        if ((rc = rsy__export_path(f->final[i], sizeof f->final[i], "%s/%s", e->out_dir, rel)) !=
                RSY_OK ||
            (rc = rsy__export_path(f->staged[i], sizeof f->staged[i], "%s/%s", f->stage_dir,
                                   name)) != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* Remove every file of a failed case, staged or final, and its staging folder. unlink() never
 * removes a directory, so whatever else sits at a final path is left alone. */
static void case_files_remove(const case_files *f)
{
    for (int i = 0; i < f->n; i++) {
        if (unlink(f->staged[i]) != 0 && errno != ENOENT)
            rsy_log_error("%s: cannot remove: %s", f->staged[i], strerror(errno));
        if (unlink(f->final[i]) != 0 && errno != ENOENT && errno != EISDIR && errno != EPERM)
            rsy_log_error("%s: cannot remove: %s", f->final[i], strerror(errno));
    }
    if (f->stage_dir[0] && rmdir(f->stage_dir) != 0 && errno != ENOENT)
        rsy_log_error("%s: cannot remove: %s", f->stage_dir, strerror(errno));
}

/* Stage one NIfTI file: write it, make it durable, record its checksum. */
static rsy_status stage_volume(const rsy_volume *v, const char *staged, rsy_nifti_kind kind,
                               char sha[65])
{
    rsy_status rc = rsy_volume_write_nifti(v, staged, kind);
    if (rc == RSY_OK)
        rc = rsy__export_fsync(staged);
    if (rc == RSY_OK)
        rc = rsy_sha256_file(staged, sha);
    return rc;
}

/* Rename the staged files into place in order, then fsync the destination folders (images,
 * labels, instances, manifests: once per case). */
static rsy_status publish_case(const rsy_export *e, const case_files *f)
{
    char dir[RSY_PATH_MAX];
    for (int i = 0; i < f->n; i++) {
        if (rename(f->staged[i], f->final[i]) != 0) {
            rsy_log_error("%s: %s", f->final[i], strerror(errno));
            return RSY_EIO;
        }
    }
    const int first_of_dir[4] = {0, e->n_channels, e->n_channels + 1, e->n_channels + 2};
    for (int d = 0; d < 4; d++) {
        snprintf(dir, sizeof dir, "%s", f->final[first_of_dir[d]]);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        if (rsy__export_fsync(dir) != RSY_OK)
            return RSY_EIO;
    }
    if (rmdir(f->stage_dir) != 0) {
        rsy_log_error("%s: cannot remove: %s", f->stage_dir, strerror(errno));
        return RSY_EIO;
    }
    return RSY_OK;
}

rsy_status rsy_export_write_case(rsy_export *e, const rsy_case_data *c)
{
    rsy__case_summary *s = NULL, *old = NULL;
    rsy_lesion_record *records = NULL;
    cJSON *doc = NULL;
    char *text = NULL;
    size_t text_len = 0;
    case_files files = {0, "", NULL, NULL};
    int started = 0;
    rsy_status rc;
    char case_id[32];

    if (!e || !c)
        return RSY_EINVAL;
    if ((rc = check_case(e, c)) != RSY_OK)
        return rc;
    rsy_export_case_id(c->case_index, case_id, sizeof case_id);

    s = calloc(1, sizeof *s);
    if (!s || !(s->sha = calloc((size_t)e->n_channels + 2, sizeof *s->sha)) ||
        !(s->label_voxels = calloc((size_t)e->n_labels, sizeof *s->label_voxels))) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    if ((rc = count_labels(e, c, s->label_voxels)) != RSY_OK ||
        (rc = case_files_init(&files, e, case_id)) != RSY_OK)
        goto fail;

    if (c->n_lesions > 0) {
        records = calloc((size_t)c->n_lesions, sizeof *records);
        s->lesion_volume_mm3 = calloc((size_t)c->n_lesions, sizeof *s->lesion_volume_mm3);
        if (!records || !s->lesion_volume_mm3) {
            rc = RSY_ENOMEM;
            goto fail;
        }
    }
    if ((rc = rsy_export_measure_lesions(c->instances, c->labels, c->n_lesions, e->perilesional,
                                         records)) != RSY_OK)
        goto fail;
    for (int l = 0; l < c->n_lesions; l++) {
        if (records[l].voxel_count == 0) {
            rsy_log_warning("%s: lesion %d (%s) has no voxel in the instance map; it is left "
                            "out of the manifest",
                            case_id, l + 1, c->lesions[l].type ? c->lesions[l].type : "?");
            continue;
        }
        s->lesion_volume_mm3[s->n_lesions++] = records[l].volume_mm3;
    }

    /* From here on files exist: any failure removes every file of the case. */
    started = 1;
    if (mkdir(files.stage_dir, 0777) != 0 && errno != EEXIST) {
        rsy_log_error("%s: cannot create: %s", files.stage_dir, strerror(errno));
        rc = RSY_EIO;
        goto fail;
    }
    for (int ch = 0; ch < e->n_channels; ch++)
        if ((rc = stage_volume(c->channels[ch], files.staged[ch], RSY_NIFTI_IMAGE, s->sha[ch])) !=
            RSY_OK)
            goto fail;
    if ((rc = stage_volume(c->labels, files.staged[e->n_channels], RSY_NIFTI_LABEL,
                           s->sha[e->n_channels])) != RSY_OK ||
        (rc = stage_volume(c->instances, files.staged[e->n_channels + 1], RSY_NIFTI_LABEL,
                           s->sha[e->n_channels + 1])) != RSY_OK)
        goto fail;

    if ((rc = rsy__export_case_manifest(&doc, e, c, case_id, s->sha, records, c->n_lesions)) !=
        RSY_OK)
        goto fail;
    if (!(text = rsy__export_json_text(doc, &text_len))) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    rsy_sha256_hex(text, text_len, s->manifest_sha);
    if ((rc = rsy__export_write_synced(files.staged[e->n_channels + 2], text, text_len)) !=
            RSY_OK ||
        (rc = publish_case(e, &files)) != RSY_OK)
        goto fail;

    pthread_mutex_lock(&e->lock);
    old = e->cases[c->case_index];
    e->cases[c->case_index] = s;
    pthread_mutex_unlock(&e->lock);
    rsy__case_summary_free(old);
    free(text);
    cJSON_Delete(doc);
    free(records);
    case_files_free(&files);
    return RSY_OK;

fail:
    if (started) {
        case_files_remove(&files);
        /* The case's files are gone, so it counts as not written (finish() reports it). */
        pthread_mutex_lock(&e->lock);
        old = e->cases[c->case_index];
        e->cases[c->case_index] = NULL;
        pthread_mutex_unlock(&e->lock);
        rsy__case_summary_free(old);
    }
    free(text);
    cJSON_Delete(doc);
    free(records);
    case_files_free(&files);
    rsy__case_summary_free(s);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* finish                                                                                     */
/* ---------------------------------------------------------------------------------------- */
rsy_status rsy_export_finish(rsy_export *e)
{
    if (!e)
        return RSY_EINVAL;
    size_t missing = 0, first = 0;
    pthread_mutex_lock(&e->lock);
    for (size_t i = e->n_cases; i-- > 0;) {
        if (!e->cases[i]) {
            missing++;
            first = i;
        }
    }
    pthread_mutex_unlock(&e->lock);
    if (missing) {
        rsy_log_error("%s: %zu of %zu cases not written (first: case %zu); dataset left "
                      "incomplete",
                      e->out_dir, missing, e->n_cases, first);
        return RSY_EINVAL;
    }
    char path[RSY_PATH_MAX];
    rsy_status rc = rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_STAGING_DIR, e->out_dir);
    if (rc != RSY_OK)
        return rc;
    /* Every case succeeded, so its staging folder is gone and the parent is empty. */
    if (rmdir(path) != 0 && errno != ENOENT) {
        rsy_log_error("%s: cannot remove the staging folder: %s", path, strerror(errno));
        return RSY_EIO;
    }
    return rsy__export_write_dataset_files(e);
}
