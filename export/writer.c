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

int rsy__export_holds(const rsy_export *e, size_t index)
{
    return e->shard_count <= 1 || (int64_t)(index % (size_t)e->shard_count) == e->shard_index;
}

size_t rsy__export_n_held(const rsy_export *e)
{
    if (e->shard_count <= 1)
        return e->n_cases;
    size_t k = (size_t)e->shard_index, n = (size_t)e->shard_count;
    return e->n_cases > k ? (e->n_cases - k + n - 1) / n : 0;
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
    free(s->box);
    free(s->box_class);
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

/* Layouts, formats and shards of the parameters (rsy_export_params). */
static rsy_status check_outputs(const rsy_export_params *p)
{
    if (p->layouts & ~RSY_EXPORT_LAYOUTS_ALL) {
        rsy_log_error("layouts: unknown layout bits 0x%x", p->layouts & ~RSY_EXPORT_LAYOUTS_ALL);
        return RSY_EINVAL;
    }
    if (p->formats & ~RSY_EXPORT_FORMATS_ALL) {
        rsy_log_error("formats: unknown format bits 0x%x", p->formats & ~RSY_EXPORT_FORMATS_ALL);
        return RSY_EINVAL;
    }
    if (p->shard_count < 0 ||
        (p->shard_count > 1 && (p->shard_index < 0 || p->shard_index >= p->shard_count))) {
        rsy_log_error("shard %lld/%lld: need 0 <= index < count", (long long)p->shard_index,
                      (long long)p->shard_count);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

/* nnDetection refuses a '.' anywhere in the absolute path of its data (reference/formats.md);
 * the layout is written anyway, with a warning naming the path. */
static void warn_nndet_path(const char *dir)
{
    char *abs = realpath(dir, NULL);
    if (abs && strchr(abs, '.'))
        rsy_log_warning("%s: the path holds a '.', which nnDetection does not accept in the "
                        "directory of its data; move the dataset before training nnDetection",
                        abs);
    free(abs);
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
    if (r->cases < 1 || n_channels < 1 || n_channels > RSY_MAX_SEQUENCES || r->dataset_id < 1 ||
        r->dataset_id > 999 || !r->name[0]) {
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
    if ((rc = check_labels(p)) != RSY_OK || (rc = check_outputs(p)) != RSY_OK)
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
    snprintf(e->nndet_dir, sizeof e->nndet_dir, "Task%03d_%s", r->dataset_id, r->name);
    e->layouts = (p->layouts ? p->layouts : RSY_LAYOUT_NNUNET) | RSY_LAYOUT_NNUNET;
    e->formats = p->formats | RSY_FORMAT_NIFTI;
    e->preview = p->preview != 0;
    e->shard_count = p->shard_count > 1 ? p->shard_count : 1;
    e->shard_index = p->shard_count > 1 ? p->shard_index : 0;
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

    char rel[9][RSY_EXPORT_REL_MAX];
    int n_sub = 0;
    snprintf(rel[n_sub++], sizeof rel[0], "%s/imagesTr", e->nnunet_dir);
    snprintf(rel[n_sub++], sizeof rel[0], "%s/labelsTr", e->nnunet_dir);
    snprintf(rel[n_sub++], sizeof rel[0], RSY_EXPORT_INSTANCE_DIR);
    snprintf(rel[n_sub++], sizeof rel[0], RSY_EXPORT_MANIFEST_DIR);
    snprintf(rel[n_sub++], sizeof rel[0], RSY_EXPORT_STAGING_DIR);
    if (e->layouts & RSY_LAYOUT_MSD) {
        snprintf(rel[n_sub++], sizeof rel[0], RSY_EXPORT_MSD_DIR "/imagesTr");
        snprintf(rel[n_sub++], sizeof rel[0], RSY_EXPORT_MSD_DIR "/labelsTr");
    }
    if (e->layouts & RSY_LAYOUT_NNDET) {
        snprintf(rel[n_sub++], sizeof rel[0], "%s/raw_splitted/imagesTr", e->nndet_dir);
        snprintf(rel[n_sub++], sizeof rel[0], "%s/raw_splitted/labelsTr", e->nndet_dir);
    }
    for (int s = 0; s < n_sub + (e->preview ? 1 : 0); s++) {
        const char *sub = s < n_sub ? rel[s] : RSY_EXPORT_PREVIEW_DIR;
        if ((rc = rsy__export_path(path, sizeof path, "%s/%s", e->out_dir, sub)) != RSY_OK)
            goto fail;
        if (rsy_mkdir_p(path) != RSY_OK) {
            rc = RSY_EIO;
            goto fail;
        }
    }
    if (e->layouts & RSY_LAYOUT_NNDET)
        warn_nndet_path(e->out_dir);
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

/* The files of one case (rsy__export_case_plan, in rename order, the manifest last): final
 * paths, and their staged names in DIR/.staging/<case>/ ("NN-<file name>", NN the index). */
typedef struct case_files {
    int n;
    rsy__case_file plan[RSY__CASE_FILES_MAX];
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
    rsy_status rc;
    f->n = rsy__export_case_plan(e, case_id, f->plan);
    f->final = calloc((size_t)f->n, sizeof *f->final);
    f->staged = calloc((size_t)f->n, sizeof *f->staged);
    if (!f->final || !f->staged)
        return RSY_ENOMEM;
    if ((rc = rsy__export_path(f->stage_dir, sizeof f->stage_dir,
                               "%s/" RSY_EXPORT_STAGING_DIR "/%s", e->out_dir, case_id)) != RSY_OK)
        return rc;
    for (int i = 0; i < f->n; i++) {
        if ((rc = rsy__export_path(f->final[i], sizeof f->final[i], "%s/%s", e->out_dir,
                                   f->plan[i].rel)) != RSY_OK ||
            (rc = rsy__export_path(f->staged[i], sizeof f->staged[i], "%s/%02d-%s", f->stage_dir, i,
                                   rsy__export_basename(f->plan[i].rel))) != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* Empty and remove a case's staging folder left by an interrupted run (its files are ours:
 * whatever is in it was never published). Quiet when there is none. */
static void remove_stage_dir(const char *stage_dir)
{
    DIR *d = opendir(stage_dir);
    if (!d) {
        if (errno == ENOTDIR && unlink(stage_dir) != 0)
            rsy_log_warning("%s: cannot remove: %s", stage_dir, strerror(errno));
        return;
    }
    char path[RSY_PATH_MAX];
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if (rsy__export_path(path, sizeof path, "%s/%s", stage_dir, ent->d_name) == RSY_OK &&
            unlink(path) != 0)
            rsy_log_warning("%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(d);
    if (rmdir(stage_dir) != 0 && errno != ENOENT)
        rsy_log_warning("%s: cannot remove: %s", stage_dir, strerror(errno));
}

/* Remove every case folder (or stray file) in DIR/.staging. */
static void remove_staging_folders(const char *staging)
{
    DIR *d = opendir(staging);
    if (!d)
        return;
    char sub[RSY_PATH_MAX];
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL)
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0 &&
            rsy__export_path(sub, sizeof sub, "%s/%s", staging, ent->d_name) == RSY_OK)
            remove_stage_dir(sub);
    closedir(d);
}

/* Remove every file of a failed case, staged or final, and its staging folder. unlink() never
 * removes a directory, so whatever else sits at a final path is left alone. */
static void case_files_remove(const case_files *f)
{
    for (int i = 0; i < f->n; i++) {
        if (unlink(f->final[i]) != 0 && errno != ENOENT && errno != EISDIR && errno != EPERM)
            rsy_log_error("%s: cannot remove: %s", f->final[i], strerror(errno));
    }
    remove_stage_dir(f->stage_dir);
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

/* fsync the distinct folders of the files @p which[k] != 0 of @p f (their renames). */
static rsy_status fsync_folders(const case_files *f, const unsigned char *which)
{
    char dirs[RSY__CASE_FILES_MAX][RSY_PATH_MAX];
    int n_dirs = 0;
    for (int i = 0; i < f->n; i++) {
        if (which && !which[i])
            continue;
        char dir[RSY_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", f->final[i]);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        int seen = 0;
        for (int d = 0; d < n_dirs && !seen; d++)
            seen = strcmp(dirs[d], dir) == 0;
        if (!seen)
            memcpy(dirs[n_dirs++], dir, sizeof dir);
    }
    for (int d = 0; d < n_dirs; d++)
        if (rsy__export_fsync(dirs[d]) != RSY_OK)
            return RSY_EIO;
    return RSY_OK;
}

/* Rename the staged files into place in order (the manifest last), then fsync each
 * destination folder once. */
static rsy_status publish_case(const case_files *f)
{
    for (int i = 0; i < f->n; i++) {
        if (rename(f->staged[i], f->final[i]) != 0) {
            rsy_log_error("%s: %s", f->final[i], strerror(errno));
            return RSY_EIO;
        }
    }
    if (fsync_folders(f, NULL) != RSY_OK)
        return RSY_EIO;
    if (rmdir(f->stage_dir) != 0) {
        rsy_log_error("%s: cannot remove: %s", f->stage_dir, strerror(errno));
        return RSY_EIO;
    }
    return RSY_OK;
}

/* The summary of a case from its manifest as parsed back (export_internal.h); the label
 * counts are filled by the caller. */
static rsy_status summary_from_parsed(const rsy_export *e, const rsy__case_parsed *p,
                                      rsy__case_summary *s)
{
    int n = p->n_records;
    if (!(s->sha = calloc((size_t)e->n_channels + 2, sizeof *s->sha)))
        return RSY_ENOMEM;
    memcpy(s->sha, p->sha, ((size_t)e->n_channels + 2) * sizeof *s->sha);
    if (n > 0 && (!(s->lesion_volume_mm3 = calloc((size_t)n, sizeof *s->lesion_volume_mm3)) ||
                  !(s->box = calloc((size_t)n, sizeof *s->box)) ||
                  !(s->box_class = calloc((size_t)n, sizeof *s->box_class))))
        return RSY_ENOMEM;
    for (int l = 0; l < n; l++) {
        s->lesion_volume_mm3[l] = p->records[l].volume_mm3;
        memcpy(s->box[l], p->records[l].box_cccwhd_mm, sizeof s->box[l]);
        s->box_class[l] = rsy__export_lesion_class(e, &p->records[l]);
    }
    s->n_lesions = n;
    return RSY_OK;
}

static void install_summary(rsy_export *e, size_t index, rsy__case_summary *s)
{
    pthread_mutex_lock(&e->lock);
    rsy__case_summary *old = e->cases[index];
    e->cases[index] = s;
    pthread_mutex_unlock(&e->lock);
    rsy__case_summary_free(old);
}

/* A shallow copy of @p v with the geometry its NIfTI file gives back (layout.c). */
static rsy_volume as_stored(const rsy_volume *v)
{
    rsy_volume s = *v;
    rsy__export_geometry_as_stored(&v->geom, &s.geom);
    return s;
}

static rsy_status check_held(const rsy_export *e, size_t index)
{
    if (index >= e->n_cases) {
        rsy_log_error("case index %zu out of range (dataset has %zu cases)", index, e->n_cases);
        return RSY_EINVAL;
    }
    if (!rsy__export_holds(e, index)) {
        rsy_log_error("case %zu is not in shard %lld/%lld", index, (long long)e->shard_index,
                      (long long)e->shard_count);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

rsy_status rsy_export_write_case(rsy_export *e, const rsy_case_data *c)
{
    rsy__case_summary *s = NULL;
    rsy_lesion_record *records = NULL;
    rsy__case_parsed parsed;
    cJSON *doc = NULL;
    char *text = NULL;
    char(*sha)[65] = NULL;
    size_t text_len = 0;
    case_files files;
    int started = 0;
    rsy_status rc;
    char case_id[32];

    memset(&parsed, 0, sizeof parsed);
    files.final = files.staged = NULL;
    files.n = 0;
    if (!e || !c)
        return RSY_EINVAL;
    if ((rc = check_case(e, c)) != RSY_OK || (rc = check_held(e, c->case_index)) != RSY_OK)
        return rc;
    rsy_export_case_id(c->case_index, case_id, sizeof case_id);

    s = calloc(1, sizeof *s);
    if (!s || !(sha = calloc((size_t)e->n_channels + 2, sizeof *sha)) ||
        !(s->label_voxels = calloc((size_t)e->n_labels, sizeof *s->label_voxels))) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    if ((rc = count_labels(e, c, s->label_voxels)) != RSY_OK ||
        (rc = case_files_init(&files, e, case_id)) != RSY_OK)
        goto fail;

    if (c->n_lesions > 0 && !(records = calloc((size_t)c->n_lesions, sizeof *records))) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    if ((rc = rsy_export_measure_lesions(c->instances, c->labels, c->n_lesions, e->perilesional,
                                         records)) != RSY_OK)
        goto fail;
    for (int l = 0; l < c->n_lesions; l++)
        if (records[l].voxel_count == 0)
            rsy_log_warning("%s: lesion %d (%s) has no voxel in the instance map; it is left "
                            "out of the manifest",
                            case_id, l + 1, c->lesions[l].type ? c->lesions[l].type : "?");

    /* From here on files exist: any failure removes every file of the case. */
    started = 1;
    remove_stage_dir(files.stage_dir);
    if (mkdir(files.stage_dir, 0777) != 0 && errno != EEXIST) {
        rsy_log_error("%s: cannot create: %s", files.stage_dir, strerror(errno));
        rc = RSY_EIO;
        goto fail;
    }
    for (int ch = 0; ch < e->n_channels; ch++)
        if ((rc = stage_volume(c->channels[ch], files.staged[ch], RSY_NIFTI_IMAGE, sha[ch])) !=
            RSY_OK)
            goto fail;
    if ((rc = stage_volume(c->labels, files.staged[e->n_channels], RSY_NIFTI_LABEL,
                           sha[e->n_channels])) != RSY_OK ||
        (rc = stage_volume(c->instances, files.staged[e->n_channels + 1], RSY_NIFTI_LABEL,
                           sha[e->n_channels + 1])) != RSY_OK)
        goto fail;

    if ((rc = rsy__export_case_manifest(&doc, e, c, case_id, sha, records, c->n_lesions)) != RSY_OK)
        goto fail;
    if (!(text = rsy__export_json_text(doc, &text_len))) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    rsy_sha256_hex(text, text_len, s->manifest_sha);
    /* Everything kept or derived comes from the manifest as it reads back (adopt_case does
     * the same with the file). */
    if ((rc = rsy__export_parse_case(e, c->case_index, text, text_len, files.final[files.n - 1],
                                     &parsed)) != RSY_OK ||
        (rc = summary_from_parsed(e, &parsed, s)) != RSY_OK)
        goto fail;

    rsy_volume chv[RSY_MAX_SEQUENCES], labv = as_stored(c->labels), instv = as_stored(c->instances);
    const rsy_volume *chp[RSY_MAX_SEQUENCES];
    for (int ch = 0; ch < e->n_channels; ch++) {
        chv[ch] = as_stored(c->channels[ch]);
        chp[ch] = &chv[ch];
    }
    const rsy__case_src src = {chp, &labv, &instv, &parsed};
    for (int k = e->n_channels + 2; k < files.n - 1; k++)
        if ((rc = rsy__export_make_file(e, files.plan, k, files.staged, &src)) != RSY_OK)
            goto fail;
    if ((rc = rsy__export_write_synced(files.staged[files.n - 1], text, text_len)) != RSY_OK ||
        (rc = publish_case(&files)) != RSY_OK)
        goto fail;

    install_summary(e, c->case_index, s);
    rsy__case_parsed_clear(&parsed);
    free(text);
    cJSON_Delete(doc);
    free(records);
    free(sha);
    case_files_free(&files);
    return RSY_OK;

fail:
    if (started) {
        case_files_remove(&files);
        /* The case's files are gone, so it counts as not written (finish() reports it). */
        install_summary(e, c->case_index, NULL);
    }
    rsy__case_parsed_clear(&parsed);
    free(text);
    cJSON_Delete(doc);
    free(records);
    free(sha);
    case_files_free(&files);
    rsy__case_summary_free(s);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* adopt_case                                                                                 */
/* ---------------------------------------------------------------------------------------- */
/* Count the label values of a label map read back; RSY_EIO (logged) for a value outside the
 * dictionary or a map of another shape or type than the case's. */
static rsy_status count_stored_labels(const rsy_export *e, const rsy_volume *lab, const char *path,
                                      int64_t *counts)
{
    if (lab->dtype != RSY_DTYPE_UINT8 && lab->dtype != RSY_DTYPE_UINT16) {
        rsy_log_error("%s: expected a uint8 or uint16 label map, got %s", path,
                      rsy_dtype_name(lab->dtype));
        return RSY_EIO;
    }
    size_t n = rsy_geometry_nvox(&lab->geom);
    for (size_t i = 0; i < n; i++) {
        double v = rsy__volume_get(lab, i);
        if (v >= e->n_labels) {
            rsy_log_error("%s: label value %g at voxel %zu is not in the dictionary", path, v, i);
            return RSY_EIO;
        }
        counts[(int)v]++;
    }
    return RSY_OK;
}

/* Read file @p k of a case (its checksum was verified) into @p *out, geometry as stored. */
static rsy_status read_stored(const case_files *f, int k, rsy_volume **out)
{
    rsy_status rc = rsy_volume_read_nifti(out, NULL, f->final[k]);
    return rc == RSY_OK || rc == RSY_ENOMEM ? rc : RSY_EIO;
}

rsy_status rsy_export_adopt_case(rsy_export *e, size_t index)
{
    case_files files;
    rsy__case_parsed parsed;
    rsy__case_summary *s = NULL;
    rsy_volume *vol[RSY_MAX_SEQUENCES + 2] = {NULL};
    unsigned char remake[RSY__CASE_FILES_MAX] = {0};
    char *text = NULL, case_id[32], sha[65];
    size_t len = 0;
    struct stat st;
    rsy_status rc;

    memset(&parsed, 0, sizeof parsed);
    files.final = files.staged = NULL;
    if (!e)
        return RSY_EINVAL;
    if ((rc = check_held(e, index)) != RSY_OK)
        return rc;
    rsy_export_case_id(index, case_id, sizeof case_id);
    if ((rc = case_files_init(&files, e, case_id)) != RSY_OK)
        goto done;
    /* Whatever an interrupted write left in the case's staging folder was never published. */
    remove_stage_dir(files.stage_dir);

    const int nc = e->n_channels, last = files.n - 1;
    const char *manifest = files.final[last];
    if (lstat(manifest, &st) != 0 || !S_ISREG(st.st_mode)) {
        rsy_log_error("%s: missing or not a regular file: case %zu is incomplete", manifest, index);
        rc = RSY_EIO;
        goto done;
    }
    if ((rc = rsy_file_read_all(manifest, RSY_EXPORT_JSON_MAX_BYTES, &text, &len)) != RSY_OK) {
        rc = rc == RSY_ENOMEM ? rc : RSY_EIO;
        goto done;
    }
    if ((rc = rsy__export_parse_case(e, index, text, len, manifest, &parsed)) != RSY_OK)
        goto done;
    for (int k = 0; k < nc + 2; k++) {
        if (lstat(files.final[k], &st) != 0 || !S_ISREG(st.st_mode)) {
            rsy_log_error(
                "%s: missing or not a regular file (listed in %s): case %zu is incomplete",
                files.final[k], manifest, index);
            rc = RSY_EIO;
            goto done;
        }
        if ((rc = rsy_sha256_file(files.final[k], sha)) != RSY_OK)
            goto done;
        if (strcmp(sha, parsed.sha[k]) != 0) {
            rsy_log_error("%s: SHA-256 %s differs from %s in %s", files.final[k], sha,
                          parsed.sha[k], manifest);
            rc = RSY_EIO;
            goto done;
        }
    }

    if (!(s = calloc(1, sizeof *s)) ||
        !(s->label_voxels = calloc((size_t)e->n_labels, sizeof *s->label_voxels))) {
        rc = RSY_ENOMEM;
        goto done;
    }
    rsy_sha256_hex(text, len, s->manifest_sha);
    if ((rc = summary_from_parsed(e, &parsed, s)) != RSY_OK ||
        (rc = read_stored(&files, nc, &vol[nc])) != RSY_OK ||
        (rc = count_stored_labels(e, vol[nc], files.final[nc], s->label_voxels)) != RSY_OK)
        goto done;

    /* The derived files (links, nnDetection files, preview): remade when missing or not what
     * this case's files give. */
    int need = 0;
    for (int k = nc + 2; k < last; k++) {
        if (rsy__export_file_current(e, files.plan, k, files.final, &parsed))
            continue;
        remake[k] = 1;
        int nk = rsy__export_file_needs(e, files.plan, k, &parsed);
        need = nk > need ? nk : need;
    }
    if (need >= 1 && (rc = read_stored(&files, nc + 1, &vol[nc + 1])) != RSY_OK)
        goto done;
    for (int ch = 0; need >= 2 && ch < nc; ch++)
        if ((rc = read_stored(&files, ch, &vol[ch])) != RSY_OK)
            goto done;
    const rsy_volume *chp[RSY_MAX_SEQUENCES];
    for (int ch = 0; ch < nc; ch++)
        chp[ch] = vol[ch];
    const rsy__case_src src = {need >= 2 ? chp : NULL, vol[nc], vol[nc + 1], &parsed};
    int made = 0;
    for (int k = nc + 2; k < last; k++) {
        if (!remake[k])
            continue;
        if ((rc = rsy__export_make_file(e, files.plan, k, files.final, &src)) != RSY_OK)
            goto done;
        made = 1;
    }
    if (made && (rc = fsync_folders(&files, remake)) != RSY_OK)
        goto done;
    install_summary(e, index, s);
    s = NULL;

done:
    for (int i = 0; i < RSY_MAX_SEQUENCES + 2; i++)
        rsy_volume_destroy(vol[i]);
    rsy__case_summary_free(s);
    rsy__case_parsed_clear(&parsed);
    free(text);
    case_files_free(&files);
    return rc;
}

rsy_status rsy_export_import_case(rsy_export *e, const char *src_dir, size_t index)
{
    case_files files;
    char case_id[32], src[RSY_PATH_MAX];
    struct stat st;
    files.final = files.staged = NULL;
    if (!e || !src_dir || !*src_dir)
        return RSY_EINVAL;
    rsy_status rc = check_held(e, index);
    if (rc != RSY_OK)
        return rc;
    rsy_export_case_id(index, case_id, sizeof case_id);
    if ((rc = case_files_init(&files, e, case_id)) != RSY_OK)
        goto done;
    /* The store and the manifest must be there; a derived file may be missing (adopt remakes
     * it). The manifest goes last, so an interrupted import leaves no adoptable half case. */
    for (int k = 0; k < files.n; k++) {
        rsy__file_kind kind = files.plan[k].kind;
        int store = kind == RSY__FILE_IMAGE || kind == RSY__FILE_LABEL ||
                    kind == RSY__FILE_INSTANCES || kind == RSY__FILE_MANIFEST;
        if ((rc = rsy__export_path(src, sizeof src, "%s/%s", src_dir, files.plan[k].rel)) != RSY_OK)
            goto done;
        if (lstat(src, &st) != 0 || !S_ISREG(st.st_mode)) {
            if (!store)
                continue;
            rsy_log_error("%s: missing or not a regular file: case %zu is incomplete in %s", src,
                          index, src_dir);
            rc = RSY_EIO;
            goto done;
        }
        if ((rc = rsy__export_link_or_copy(src, files.final[k])) != RSY_OK)
            goto done;
    }
    if ((rc = fsync_folders(&files, NULL)) == RSY_OK)
        rc = rsy_export_adopt_case(e, index);

done:
    case_files_free(&files);
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
        if (rsy__export_holds(e, i) && !e->cases[i]) {
            missing++;
            first = i;
        }
    }
    pthread_mutex_unlock(&e->lock);
    if (missing) {
        rsy_log_error("%s: %zu of %zu cases not written (first: case %zu); dataset left "
                      "incomplete",
                      e->out_dir, missing, rsy__export_n_held(e), first);
        return RSY_EINVAL;
    }
    char path[RSY_PATH_MAX];
    rsy_status rc = rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_STAGING_DIR, e->out_dir);
    if (rc != RSY_OK)
        return rc;
    /* Every case succeeded or was adopted, so its staging folder is gone; folders an
     * interrupted run left behind (never published) go too. */
    remove_staging_folders(path);
    if (rmdir(path) != 0 && errno != ENOENT) {
        rsy_log_error("%s: cannot remove the staging folder: %s", path, strerror(errno));
        return RSY_EIO;
    }
    return rsy__export_write_dataset_files(e);
}

/* ---------------------------------------------------------------------------------------- */
/* remove_temporaries                                                                         */
/* ---------------------------------------------------------------------------------------- */
/* 1 if @p name is a temporary name of an atomic write: "<file>.part-<pid>-<serial>"
 * (rsy__file_temp_path). */
static int is_temporary(const char *name)
{
    const char *p = strstr(name, ".part-");
    if (!p || p == name)
        return 0;
    p += strlen(".part-");
    int dashes = 0, digits = 0;
    for (; *p; p++) {
        if (*p == '-' && digits > 0 && dashes == 0) {
            dashes = 1;
            digits = 0;
        } else if (*p >= '0' && *p <= '9') {
            digits++;
        } else {
            return 0;
        }
    }
    return dashes == 1 && digits > 0;
}

/* Remove the temporary files directly in @p dir (a missing folder is fine). */
static rsy_status remove_temporaries_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT || errno == ENOTDIR ? RSY_OK : RSY_EIO;
    rsy_status rc = RSY_OK;
    char path[RSY_PATH_MAX];
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!is_temporary(ent->d_name) ||
            rsy__export_path(path, sizeof path, "%s/%s", dir, ent->d_name) != RSY_OK)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0 || S_ISDIR(st.st_mode))
            continue;
        if (unlink(path) != 0) {
            rsy_log_error("%s: cannot remove: %s", path, strerror(errno));
            rc = RSY_EIO;
        }
    }
    closedir(d);
    return rc;
}

rsy_status rsy_export_remove_temporaries(rsy_export *e)
{
    if (!e)
        return RSY_EINVAL;
    char dirs[12][RSY_EXPORT_REL_MAX];
    int n = 0;
    snprintf(dirs[n++], sizeof dirs[0], ".");
    snprintf(dirs[n++], sizeof dirs[0], "%s", e->nnunet_dir);
    snprintf(dirs[n++], sizeof dirs[0], "%s/imagesTr", e->nnunet_dir);
    snprintf(dirs[n++], sizeof dirs[0], "%s/labelsTr", e->nnunet_dir);
    snprintf(dirs[n++], sizeof dirs[0], RSY_EXPORT_INSTANCE_DIR);
    snprintf(dirs[n++], sizeof dirs[0], RSY_EXPORT_MANIFEST_DIR);
    snprintf(dirs[n++], sizeof dirs[0], RSY_EXPORT_PREVIEW_DIR);
    snprintf(dirs[n++], sizeof dirs[0], RSY_EXPORT_MSD_DIR);
    snprintf(dirs[n++], sizeof dirs[0], RSY_EXPORT_MSD_DIR "/imagesTr");
    snprintf(dirs[n++], sizeof dirs[0], RSY_EXPORT_MSD_DIR "/labelsTr");
    snprintf(dirs[n++], sizeof dirs[0], "%s/raw_splitted/imagesTr", e->nndet_dir);
    snprintf(dirs[n++], sizeof dirs[0], "%s/raw_splitted/labelsTr", e->nndet_dir);
    rsy_status rc = RSY_OK;
    char path[RSY_PATH_MAX];
    for (int i = 0; i < n; i++) {
        if (rsy__export_path(path, sizeof path, "%s/%s", e->out_dir, dirs[i]) != RSY_OK)
            return RSY_EINVAL;
        if (remove_temporaries_in(path) != RSY_OK)
            rc = RSY_EIO;
    }
    /* The nnDetection folder itself (its dataset.json's temporary). */
    if (rsy__export_path(path, sizeof path, "%s/%s", e->out_dir, e->nndet_dir) != RSY_OK)
        return RSY_EINVAL;
    if (remove_temporaries_in(path) != RSY_OK)
        rc = RSY_EIO;
    /* Staging folders: never published, so nothing in them is part of the dataset. */
    if (rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_STAGING_DIR, e->out_dir) != RSY_OK)
        return RSY_EINVAL;
    remove_staging_folders(path);
    return rc;
}
