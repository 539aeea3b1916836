/*
 * merge.c: the run state of an output directory, resuming an interrupted run, and merging
 * shard directories into the dataset a single run makes (issue 6; DESIGN.md sections 9-10).
 *
 * Run state (DIR/.raresynth-run.json): written when a run starts and kept. It holds what the
 * bytes of the dataset depend on and nothing else, so `generate`, `generate --resume` and
 * `merge` write the same file. `--resume` compares it with the command's, field by field,
 * before anything is removed.
 *
 * Merge never trusts a name it reads: case ids and file paths are made here from the case
 * index (rsy_export_case_id and the writer's path helpers), and what a shard manifest says is
 * only compared with them. Every file is opened below its shard (its real path is checked to
 * stay inside it), must be a regular file, and must match its checksum in both the shard
 * manifest and the case manifest before the output directory is created; the output is
 * removed again on any later failure. Cases are linked into place in the writer's publish
 * order (images, label map, instance map, manifest last), so an interrupted merge leaves only
 * complete cases, which `generate --resume` adopts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_internal.h"

#define RUN_STATE_VERSION 1
/* Run states and shard manifests are small; a shard manifest lists its cases' checksums. */
#define RUN_STATE_MAX_BYTES ((size_t)1 << 20)
#define ALL_LAYOUTS (RSY_LAYOUT_NNUNET | RSY_LAYOUT_MSD | RSY_LAYOUT_NNDET)
#define ALL_FORMATS (RSY_FORMAT_NIFTI | RSY_FORMAT_HDF5)
/* Configuration files a recipe can name: priors, tissue table, scanner, preset, model. */
#define MAX_CONFIGS (RSY_MAX_LESION_TYPES + 4)

static const struct {
    unsigned bit;
    const char *name;
} layout_names[] = {{RSY_LAYOUT_NNUNET, "nnunet"}, {RSY_LAYOUT_MSD, "msd"},
                    {RSY_LAYOUT_NNDET, "nndet"}},
  format_names[] = {{RSY_FORMAT_NIFTI, "nifti"}, {RSY_FORMAT_HDF5, "hdf5"}};

/* ---------------------------------------------------------------------------------------- */
/* The run state document                                                                     */
/* ---------------------------------------------------------------------------------------- */
/* A directory made with an explicit shard, 0 of 1 included: it records its shard and the
 * recipe's path (for merge). */
static int is_sharded(const rsy_export_params *p)
{
    return p->shard_count >= 1;
}

static cJSON *names_array(unsigned bits, int n, const unsigned *bit, const char *const *name)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        if (!(bits & bit[i]))
            continue;
        cJSON *s = cJSON_CreateString(name[i]);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *layouts_array(unsigned layouts)
{
    unsigned bit[3];
    const char *name[3];
    for (int i = 0; i < 3; i++) {
        bit[i] = layout_names[i].bit;
        name[i] = layout_names[i].name;
    }
    return names_array(layouts ? layouts : RSY_LAYOUT_NNUNET, 3, bit, name);
}

static cJSON *formats_array(unsigned formats)
{
    unsigned bit[2];
    const char *name[2];
    for (int i = 0; i < 2; i++) {
        bit[i] = format_names[i].bit;
        name[i] = format_names[i].name;
    }
    return names_array(formats | RSY_FORMAT_NIFTI, 2, bit, name);
}

/* Append {"role", "file": base name, "sha256"} for @p path, once per path. */
static rsy_status add_config(cJSON *arr, const char *role, const char *path,
                             const char **seen, int *n_seen)
{
    if (!path || !path[0])
        return RSY_OK;
    for (int i = 0; i < *n_seen; i++)
        if (strcmp(seen[i], path) == 0)
            return RSY_OK;
    if (*n_seen < MAX_CONFIGS)
        seen[(*n_seen)++] = path;
    char sha[65];
    if (rsy_sha256_file(path, sha) != RSY_OK) {
        rsy_log_error("%s: cannot read the %s file to record its checksum in the run state",
                      path, role);
        return RSY_EIO;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "role", role) ||
        !cJSON_AddStringToObject(o, "file", rsy__export_basename(path)) ||
        !cJSON_AddStringToObject(o, "sha256", sha) || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return RSY_ENOMEM;
    }
    return RSY_OK;
}

static rsy_status configs_array(const rsy_recipe *r, cJSON **out)
{
    const char *seen[MAX_CONFIGS];
    int n_seen = 0;
    rsy_status rc = RSY_OK;
    cJSON *a = cJSON_CreateArray();
    if (!a)
        return RSY_ENOMEM;
    for (int t = 0; rc == RSY_OK && t < r->n_lesion_types; t++)
        rc = add_config(a, "prior", r->lesions[t].prior.path, seen, &n_seen);
    if (rc == RSY_OK)
        rc = add_config(a, "tissue table", r->tissues.path, seen, &n_seen);
    if (rc == RSY_OK && strcmp(r->modality, "ct") == 0)
        rc = add_config(a, "scanner profile", r->ct.scanner.path, seen, &n_seen);
    if (rc == RSY_OK && r->texture != RSY_TEXTURE_UNIFORM)
        rc = add_config(a, "texture preset", r->texture_spec.preset.path, seen, &n_seen);
    if (rc == RSY_OK && r->texture == RSY_TEXTURE_FITTED)
        rc = add_config(a, "texture model", r->texture_spec.fitted_path, seen, &n_seen);
    if (rc != RSY_OK) {
        cJSON_Delete(a);
        return rc;
    }
    *out = a;
    return RSY_OK;
}

/* The run state @p p implies. @p with_path: record the recipe's absolute path (shards). */
static rsy_status run_state_doc(const rsy_export_params *p, int with_path, cJSON **out)
{
    const rsy_recipe *r = p->recipe;
    if ((p->layouts & ~ALL_LAYOUTS) || (p->formats & ~ALL_FORMATS) || p->shard_count < 0 ||
        (is_sharded(p) && (p->shard_index < 0 || p->shard_index >= p->shard_count))) {
        rsy_log_error("run state: unknown layout or format bits, or shard %lld of %lld",
                      (long long)p->shard_index, (long long)p->shard_count);
        return RSY_EINVAL;
    }
    cJSON *configs = NULL;
    rsy_status rc = configs_array(r, &configs);
    if (rc != RSY_OK)
        return rc;
    char seed[24], abs_path[PATH_MAX];
    rsy__export_u64_string(r->seed, seed);
    int ok = 1;
    cJSON *doc = cJSON_CreateObject(), *rec = NULL, *sh = NULL;
    ok = doc && cJSON_AddNumberToObject(doc, "raresynth_run", RUN_STATE_VERSION) &&
         cJSON_AddStringToObject(doc, "generator_version", rsy_version()) &&
         (rec = cJSON_AddObjectToObject(doc, "recipe")) &&
         cJSON_AddStringToObject(rec, "name", r->name) &&
         cJSON_AddStringToObject(rec, "sha256", r->sha256);
    if (ok && with_path)
        ok = cJSON_AddStringToObject(rec, "path",
                                     realpath(r->path, abs_path) ? abs_path : r->path) != NULL;
    ok = ok && cJSON_AddItemToObject(doc, "configs", configs);
    if (!ok)
        cJSON_Delete(configs);
    configs = NULL;
    ok = ok && cJSON_AddStringToObject(doc, "seed", seed) &&
         cJSON_AddNumberToObject(doc, "cases", (double)r->cases) &&
         cJSON_AddItemToObject(doc, "layouts", layouts_array(p->layouts)) &&
         cJSON_AddItemToObject(doc, "formats", formats_array(p->formats)) &&
         cJSON_AddBoolToObject(doc, "preview", p->preview ? 1 : 0);
    if (ok && is_sharded(p))
        ok = (sh = cJSON_AddObjectToObject(doc, "shard")) &&
             cJSON_AddNumberToObject(sh, "index", (double)p->shard_index) &&
             cJSON_AddNumberToObject(sh, "count", (double)p->shard_count);
    if (!ok) {
        cJSON_Delete(doc);
        return RSY_ENOMEM;
    }
    *out = doc;
    return RSY_OK;
}

rsy_status rsy_export_run_state_write(const rsy_export_params *p)
{
    if (!p || !p->recipe || !p->out_dir)
        return RSY_EINVAL;
    cJSON *doc = NULL;
    char path[RSY_PATH_MAX];
    rsy_status rc = rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_RUN_STATE, p->out_dir);
    if (rc == RSY_OK)
        rc = run_state_doc(p, is_sharded(p), &doc);
    if (rc == RSY_OK)
        rc = rsy__export_write_json(doc, path);
    cJSON_Delete(doc);
    return rc;
}

/* Read and parse a JSON object. @return RSY_OK, RSY_EIO (absent or unreadable: logged unless
 * @p missing is given and it does not exist, which sets *missing = 1), RSY_EINVALID_DATASET
 * (not a regular file, not a JSON object: logged). */
static rsy_status read_json(const char *path, int *missing, cJSON **out)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    struct stat st;
    if (missing)
        *missing = 0;
    if (lstat(path, &st) != 0) {
        if (missing && errno == ENOENT)
            *missing = 1;
        else
            rsy_log_error("%s: %s", path, strerror(errno));
        return RSY_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        rsy_log_error("%s: not a regular file", path);
        return RSY_EINVALID_DATASET;
    }
    rsy_status rc = rsy_file_read_all(path, RSY_EXPORT_JSON_MAX_BYTES, &text, &len);
    if (rc != RSY_OK) {
        rsy_log_error("%s: cannot read: %s", path, rsy_strerror(rc));
        return rc == RSY_ENOMEM ? RSY_ENOMEM : RSY_EIO;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    free(text);
    if (!cJSON_IsObject(doc)) {
        rsy_log_error("%s: not a JSON object (truncated or not written by raresynth)", path);
        cJSON_Delete(doc);
        return RSY_EINVALID_DATASET;
    }
    *out = doc;
    return RSY_OK;
}

/* A JSON value as short text for messages ("absent" for NULL). */
static void value_text(const cJSON *v, char *buf, size_t n)
{
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    if (!s) {
        snprintf(buf, n, "%s", v ? "?" : "absent");
        return;
    }
    if (strlen(s) >= n && n > 4)
        snprintf(buf, n, "%.*s...", (int)(n - 4), s);
    else
        snprintf(buf, n, "%s", s);
    free(s);
}

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Compare the fields that make the bytes of a dataset; log one line per difference, prefixed
 * with @p what, giving @p a_name's value then @p b_name's. The recipe path is not compared;
 * the shard only when @p with_shard. @return the number of differences. */
static int run_state_diff(const cJSON *a, const cJSON *b, int with_shard, const char *what,
                          const char *a_name, const char *b_name)
{
    static const struct {
        const char *key, *sub, *label;
    } fields[] = {{"raresynth_run", NULL, "run state format"},
                  {"generator_version", NULL, "raresynth version"},
                  {"recipe", "sha256", "recipe file (sha256)"},
                  {"recipe", "name", "recipe name"},
                  {"configs", NULL, "configuration files (priors, tissue table, ...: sha256)"},
                  {"seed", NULL, "seed"},
                  {"cases", NULL, "case count"},
                  {"layouts", NULL, "layouts (--layout)"},
                  {"formats", NULL, "formats (--format)"},
                  {"preview", NULL, "previews (--preview)"},
                  {"shard", NULL, "shard (--shard)"}};
    int n = 0;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        if (!with_shard && strcmp(fields[f].key, "shard") == 0)
            continue;
        const cJSON *va = get(a, fields[f].key), *vb = get(b, fields[f].key);
        if (fields[f].sub) {
            va = va ? get(va, fields[f].sub) : NULL;
            vb = vb ? get(vb, fields[f].sub) : NULL;
        }
        if (!va && !vb)
            continue;
        if (va && vb && cJSON_Compare(va, vb, 1))
            continue;
        char ta[160], tb[160];
        value_text(va, ta, sizeof ta);
        value_text(vb, tb, sizeof tb);
        rsy_log_error("%s: %s: %s has %s, %s %s", what, fields[f].label, a_name, ta, b_name,
                      tb);
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Walking a directory tree (symbolic links are never followed)                                */
/* ---------------------------------------------------------------------------------------- */
typedef rsy_status (*walk_fn)(const char *path, const char *name, const struct stat *st,
                              void *ctx);

/* Call @p fn for every entry below @p dir, children before their directory. */
static rsy_status walk(const char *dir, walk_fn fn, void *ctx, int depth)
{
    if (depth > 32) {
        rsy_log_error("%s: directories nested too deep", dir);
        return RSY_EIO;
    }
    DIR *d = opendir(dir);
    if (!d) {
        rsy_log_error("%s: cannot open directory: %s", dir, strerror(errno));
        return RSY_EIO;
    }
    rsy_status rc = RSY_OK;
    const struct dirent *ent;
    char path[RSY_PATH_MAX];
    while (rc == RSY_OK && (ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        struct stat st;
        if ((rc = rsy__export_path(path, sizeof path, "%s/%s", dir, ent->d_name)) != RSY_OK)
            break;
        if (lstat(path, &st) != 0) {
            if (errno == ENOENT)
                continue;
            rsy_log_error("%s: %s", path, strerror(errno));
            rc = RSY_EIO;
            break;
        }
        if (S_ISDIR(st.st_mode))
            rc = walk(path, fn, ctx, depth + 1);
        if (rc == RSY_OK)
            rc = fn(path, ent->d_name, &st, ctx);
    }
    closedir(d);
    return rc;
}

static rsy_status remove_any(const char *path, const char *name, const struct stat *st,
                             void *ctx)
{
    (void)name;
    (void)ctx;
    if ((S_ISDIR(st->st_mode) ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT) {
        rsy_log_error("%s: cannot remove: %s", path, strerror(errno));
        return RSY_EIO;
    }
    return RSY_OK;
}

/* Remove @p dir and everything below it (symbolic links as links); absent is fine. */
static rsy_status remove_tree(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT ? RSY_OK : RSY_EIO;
    if (!S_ISDIR(st.st_mode))
        return remove_any(dir, dir, &st, NULL);
    rsy_status rc = walk(dir, remove_any, NULL, 0);
    if (rc == RSY_OK && rmdir(dir) != 0) {
        rsy_log_error("%s: cannot remove: %s", dir, strerror(errno));
        rc = RSY_EIO;
    }
    return rc;
}

/* "NAME.part-PID-N": a temporary file of rsy__file_temp_path(). */
static int is_temp_name(const char *name)
{
    const char *p = strstr(name, ".part-");
    while (p) {
        const char *q = p + 6;
        size_t a = strspn(q, "0123456789");
        if (a > 0 && q[a] == '-') {
            size_t b = strspn(q + a + 1, "0123456789");
            if (b > 0 && q[a + 1 + b] == '\0')
                return 1;
        }
        p = strstr(p + 1, ".part-");
    }
    return 0;
}

static rsy_status remove_temp(const char *path, const char *name, const struct stat *st,
                              void *ctx)
{
    (void)ctx;
    if (S_ISDIR(st->st_mode) || !is_temp_name(name))
        return RSY_OK;
    rsy_log_debug("%s: removing a temporary file of the interrupted run", path);
    return remove_any(path, name, st, NULL);
}

/* The case index of a file name "case_NNNN" + ('.' or '_') ..., or -1. */
static int64_t case_index_of_name(const char *name)
{
    if (strncmp(name, "case_", 5) != 0)
        return -1;
    const char *p = name + 5;
    size_t n = strspn(p, "0123456789");
    if (n < 4 || n > 15 || (p[n] != '.' && p[n] != '_'))
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    /* The id must be the one rsy_export_case_id() makes (no extra leading zeros). */
    char id[32];
    rsy_export_case_id((size_t)v, id, sizeof id);
    return strlen(id) == 5 + n ? v : -1;
}

typedef struct sweep_ctx {
    const unsigned char *keep;
    size_t n_cases;
} sweep_ctx;

static rsy_status sweep_entry(const char *path, const char *name, const struct stat *st,
                              void *vctx)
{
    const sweep_ctx *s = vctx;
    if (!S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode))
        return RSY_OK;
    int64_t i = case_index_of_name(name);
    if (i < 0 || ((size_t)i < s->n_cases && s->keep[i]))
        return RSY_OK;
    rsy_log_debug("%s: removing a file of an incomplete case", path);
    return remove_any(path, name, st, NULL);
}

rsy_status rsy_export_resume_sweep(const char *dir, const unsigned char *keep, size_t n_cases)
{
    if (!dir || (!keep && n_cases > 0))
        return RSY_EINVAL;
    sweep_ctx s = {keep, n_cases};
    return walk(dir, sweep_entry, &s, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Resume                                                                                     */
/* ---------------------------------------------------------------------------------------- */
/* 1 if @p dir has an entry besides "." and "..", 0 if empty or missing, -1 on error. */
static int dir_state(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        rsy_log_error("%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int found = 0;
    const struct dirent *ent;
    while (!found && (ent = readdir(d)) != NULL)
        found = strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0;
    closedir(d);
    return found;
}

/* Whether DIR/manifests holds a case manifest. */
static int has_case_manifest(const char *dir)
{
    char path[RSY_PATH_MAX];
    if (rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_MANIFEST_DIR, dir) != RSY_OK)
        return 1;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    const struct dirent *ent;
    while (!found && (ent = readdir(d)) != NULL)
        found = case_index_of_name(ent->d_name) >= 0;
    closedir(d);
    return found;
}

static rsy_status start_afresh(const rsy_export_params *p, int force, int *resumed)
{
    rsy_status rc = rsy_export_prepare_dir(p->out_dir, force);
    if (rc == RSY_OK)
        rc = rsy_export_run_state_write(p);
    *resumed = 0;
    return rc;
}

rsy_status rsy_export_resume_prepare(const rsy_export_params *p, int *resumed)
{
    if (!p || !p->recipe || !p->out_dir || !p->out_dir[0] || !resumed)
        return RSY_EINVAL;
    *resumed = 0;
    const char *dir = p->out_dir;
    char path[RSY_PATH_MAX];
    struct stat st;

    int has = dir_state(dir);
    if (has < 0)
        return RSY_EIO;
    if (has == 0)
        return start_afresh(p, 0, resumed);
    if (rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_MARKER, dir) != RSY_OK)
        return RSY_EIO;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        rsy_log_error("%s: not empty and holds no " RSY_EXPORT_MARKER " marker: not a raresynth "
                      "output directory, nothing to resume (choose another directory)",
                      dir);
        return RSY_EIO;
    }

    cJSON *have = NULL, *want = NULL;
    if (rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_RUN_STATE, dir) != RSY_OK)
        return RSY_EIO;
    int missing = 0;
    rsy_status rc = read_json(path, &missing, &have);
    if (missing) {
        char done[RSY_PATH_MAX];
        if (rsy__export_path(done, sizeof done, "%s/" RSY_EXPORT_MANIFEST, dir) != RSY_OK)
            return RSY_EIO;
        /* Killed between the marker and the run state: nothing of a case was written. */
        if (!has_case_manifest(dir) && lstat(done, &st) != 0)
            return start_afresh(p, 1, resumed);
        rsy_log_error("%s: no run state (" RSY_EXPORT_RUN_STATE "): the dataset was made by an "
                      "earlier raresynth or by merge of an older version, and cannot be resumed "
                      "(use --force to start again)",
                      dir);
        return RSY_ECONFIG;
    }
    if (rc != RSY_OK)
        return rc == RSY_EINVALID_DATASET ? RSY_ECONFIG : rc;
    rc = run_state_doc(p, 0, &want);
    if (rc == RSY_OK) {
        char what[RSY_PATH_MAX + 32];
        snprintf(what, sizeof what, "%s: cannot resume", dir);
        if (run_state_diff(have, want, 1, what, "the run in the directory", "this command") > 0)
            rc = RSY_ECONFIG;
    }
    cJSON_Delete(have);
    cJSON_Delete(want);
    if (rc != RSY_OK)
        return rc;

    /* The run matches: clear what an interrupted run leaves besides complete cases. The
     * completion mark goes first, so the directory never claims a dataset it does not hold. */
    if ((rc = rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_MANIFEST, dir)) != RSY_OK)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT) {
        rsy_log_error("%s: cannot remove: %s", path, strerror(errno));
        return RSY_EIO;
    }
    if ((rc = rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_STAGING_DIR, dir)) != RSY_OK ||
        (rc = remove_tree(path)) != RSY_OK || (rc = walk(dir, remove_temp, NULL, 0)) != RSY_OK)
        return rc;
    /* Rewritten: a shard's recipe may have moved (its path is recorded for merge). */
    if ((rc = rsy_export_run_state_write(p)) != RSY_OK || (rc = rsy__export_fsync(dir)) != RSY_OK)
        return rc;
    *resumed = 1;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Shard information                                                                          */
/* ---------------------------------------------------------------------------------------- */
static int json_i64(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return 0;
    *out = (int64_t)v->valuedouble;
    return 1;
}

static int json_u64_string(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 20 ||
        strspn(v->valuestring, "0123456789") != strlen(v->valuestring))
        return 0;
    errno = 0;
    char *end = NULL;
    unsigned long long u = strtoull(v->valuestring, &end, 10);
    if (errno || *end)
        return 0;
    *out = (uint64_t)u;
    return 1;
}

static int names_bits(const cJSON *a, int n, const unsigned *bit, const char *const *name,
                      unsigned *out)
{
    *out = 0;
    if (!cJSON_IsArray(a))
        return 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, a)
    {
        if (!cJSON_IsString(s))
            return 0;
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            if (strcmp(s->valuestring, name[i]) == 0) {
                *out |= bit[i];
                found = 1;
            }
        if (!found)
            return 0;
    }
    return 1;
}

static int sha_ok(const char *s)
{
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

rsy_status rsy_export_shard_info(const char *dir, rsy_shard_info *out)
{
    if (!dir || !out)
        return RSY_EINVAL;
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(dir, &st) != 0) {
        rsy_log_error("%s: %s", dir, strerror(errno));
        return RSY_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        rsy_log_error("%s: not a directory", dir);
        return RSY_EIO;
    }
    char path[RSY_PATH_MAX];
    cJSON *doc = NULL;
    rsy_status rc = rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_RUN_STATE, dir);
    if (rc != RSY_OK)
        return RSY_EIO;
    int missing = 0;
    if ((rc = read_json(path, &missing, &doc)) != RSY_OK) {
        if (missing)
            rsy_log_error("%s: not a raresynth shard or dataset directory of this version (no "
                          RSY_EXPORT_RUN_STATE ")",
                          dir);
        return rc;
    }
    unsigned lbit[3], fbit[2];
    const char *lname[3], *fname[2];
    for (int i = 0; i < 3; i++) {
        lbit[i] = layout_names[i].bit;
        lname[i] = layout_names[i].name;
    }
    for (int i = 0; i < 2; i++) {
        fbit[i] = format_names[i].bit;
        fname[i] = format_names[i].name;
    }
    const cJSON *rec = get(doc, "recipe"), *sh = get(doc, "shard");
    const cJSON *sha = rec ? get(rec, "sha256") : NULL, *rp = rec ? get(rec, "path") : NULL;
    const cJSON *ver = get(doc, "generator_version"), *pv = get(doc, "preview");
    int64_t run = 0;
    int ok = json_i64(get(doc, "raresynth_run"), RUN_STATE_VERSION, RUN_STATE_VERSION, &run) &&
             cJSON_IsString(sha) && sha_ok(sha->valuestring) && cJSON_IsString(ver) &&
             strlen(ver->valuestring) < sizeof out->version &&
             json_u64_string(get(doc, "seed"), &out->seed) &&
             json_i64(get(doc, "cases"), 1, INT64_C(1) << 40, &out->cases) &&
             names_bits(get(doc, "layouts"), 3, lbit, lname, &out->layouts) &&
             names_bits(get(doc, "formats"), 2, fbit, fname, &out->formats) && cJSON_IsBool(pv) &&
             (!rp || (cJSON_IsString(rp) && strlen(rp->valuestring) < sizeof out->recipe_path));
    if (ok && sh)
        ok = json_i64(get(sh, "count"), 1, INT64_C(1) << 40, &out->shard_count) &&
             json_i64(get(sh, "index"), 0, out->shard_count - 1, &out->shard_index);
    if (!ok) {
        rsy_log_error("%s: malformed run state (a key missing or of the wrong type)", path);
        cJSON_Delete(doc);
        return RSY_EINVALID_DATASET;
    }
    if (!sh) {
        out->shard_index = 0;
        out->shard_count = 1;
    }
    snprintf(out->recipe_sha256, sizeof out->recipe_sha256, "%s", sha->valuestring);
    snprintf(out->version, sizeof out->version, "%s", ver->valuestring);
    snprintf(out->recipe_path, sizeof out->recipe_path, "%s", rp ? rp->valuestring : "");
    out->preview = cJSON_IsTrue(pv);
    cJSON_Delete(doc);
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Merge                                                                                      */
/* ---------------------------------------------------------------------------------------- */
typedef struct shard {
    const char *dir;
    char real[PATH_MAX]; /* realpath of dir */
    int64_t index, count;
    cJSON *manifest; /* its raresynth.json */
    const cJSON *cases;
    const cJSON **entry; /* the items of "cases", for lookups in constant time */
} shard;

typedef struct merge_ctx {
    const rsy_export_params *p;
    rsy_export probe; /* only nnunet_dir and n_channels set: for the path helpers */
    shard *shards;    /* by shard index */
    int64_t n;        /* shard count */
    rsy_export *e;    /* the output, once begun */
    int n_files;      /* per case: channels, label map, instance map */
} merge_ctx;

/* The relative path of file @p f (0..n_files-1) of case @p id, in publish order. */
static void case_file_rel(const merge_ctx *m, const char *id, int f, char *buf, size_t n)
{
    int nc = m->probe.n_channels;
    if (f < nc)
        rsy__export_image_relpath(&m->probe, id, f, buf, n);
    else if (f == nc)
        rsy__export_label_relpath(&m->probe, id, buf, n);
    else
        rsy__export_instance_relpath(id, buf, n);
}

/* Check that SHARD/rel is a regular file inside the shard whose SHA-256 is @p sha. */
static rsy_status check_source(const shard *s, const char *rel, const char *sha,
                               const char *listed_in)
{
    char path[RSY_PATH_MAX], real[PATH_MAX], got[65];
    struct stat st;
    if (rsy__export_path(path, sizeof path, "%s/%s", s->dir, rel) != RSY_OK)
        return RSY_EINVALID_DATASET;
    if (lstat(path, &st) != 0) {
        rsy_log_error("%s: missing (listed in %s): %s", path, listed_in, strerror(errno));
        return RSY_EINVALID_DATASET;
    }
    if (!S_ISREG(st.st_mode)) {
        rsy_log_error("%s: not a regular file (a symbolic link or a folder)", path);
        return RSY_EINVALID_DATASET;
    }
    size_t rn = strlen(s->real);
    if (!realpath(path, real) || strncmp(real, s->real, rn) != 0 || real[rn] != '/') {
        rsy_log_error("%s: resolves outside its shard directory %s", path, s->dir);
        return RSY_EINVALID_DATASET;
    }
    if (rsy_sha256_file(path, got) != RSY_OK) {
        rsy_log_error("%s: cannot read", path);
        return RSY_EIO;
    }
    if (strcmp(got, sha) != 0) {
        rsy_log_error("%s: sha256 %s differs from %s's %s (truncated or changed)", path, got,
                      listed_in, sha);
        return RSY_EINVALID_DATASET;
    }
    return RSY_OK;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = o ? get(o, k) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Case @p index: its entry in the shard manifest agrees with the case ids and paths this
 * version makes, the case manifest agrees with it, and every file with both. */
static rsy_status check_case(void *vctx, size_t index, int worker)
{
    (void)worker;
    merge_ctx *m = vctx;
    const shard *s = &m->shards[(int64_t)index % m->n];
    size_t pos = index / (size_t)m->n;
    char id[32], rel[RSY_EXPORT_REL_MAX], man_rel[RSY_EXPORT_REL_MAX], where[RSY_PATH_MAX + 64];
    rsy_export_case_id(index, id, sizeof id);
    rsy__export_manifest_relpath(id, man_rel, sizeof man_rel);
    snprintf(where, sizeof where, "%s/" RSY_EXPORT_MANIFEST, s->dir);

    const cJSON *entry = s->entry[pos];
    const char *cid = str_of(entry, "case_id"), *msha = str_of(entry, "manifest_sha256");
    const char *mrel = str_of(entry, "manifest");
    const cJSON *files = entry ? get(entry, "files") : NULL;
    if (!cid || strcmp(cid, id) != 0) {
        char t[96];
        value_text(entry ? get(entry, "case_id") : NULL, t, sizeof t);
        rsy_log_error("%s: cases[%zu]: case id %s is not %s (shard %lld/%lld holds the cases i "
                      "with i %% %lld == %lld, in order)",
                      where, pos, t, id, (long long)s->index, (long long)s->count,
                      (long long)s->count, (long long)s->index);
        return RSY_EINVALID_DATASET;
    }
    if (!sha_ok(msha) || (mrel && strcmp(mrel, man_rel) != 0) || !cJSON_IsArray(files) ||
        cJSON_GetArraySize(files) != m->n_files) {
        rsy_log_error("%s: %s: malformed entry (need manifest \"%s\", its manifest_sha256 and "
                      "%d files)",
                      where, id, man_rel, m->n_files);
        return RSY_EINVALID_DATASET;
    }
    /* The shard manifest's files are the ones this version writes, in publish order. */
    const char *sha[RSY_MAX_SEQUENCES + 2];
    for (int f = 0; f < m->n_files; f++) {
        const cJSON *fe = cJSON_GetArrayItem(files, f);
        const char *fp = str_of(fe, "path");
        sha[f] = str_of(fe, "sha256");
        case_file_rel(m, id, f, rel, sizeof rel);
        if (!fp || strcmp(fp, rel) != 0 || !sha_ok(sha[f])) {
            char t[RSY_EXPORT_REL_MAX + 8];
            value_text(fe ? get(fe, "path") : NULL, t, sizeof t);
            rsy_log_error("%s: %s: files[%d] is %s, expected \"%s\" with its sha256", where, id, f,
                          t, rel);
            return RSY_EINVALID_DATASET;
        }
    }
    rsy_status rc = check_source(s, man_rel, msha, "the shard manifest");
    if (rc != RSY_OK)
        return rc;
    /* The case manifest lists the same files and checksums. */
    char mpath[RSY_PATH_MAX];
    cJSON *cm = NULL;
    if ((rc = rsy__export_path(mpath, sizeof mpath, "%s/%s", s->dir, man_rel)) != RSY_OK ||
        (rc = read_json(mpath, NULL, &cm)) != RSY_OK)
        return rc == RSY_EIO ? RSY_EINVALID_DATASET : rc;
    const cJSON *cf = get(cm, "files"), *images = cf ? get(cf, "images") : NULL;
    const char *ccid = str_of(cm, "case_id");
    int agree = ccid && strcmp(ccid, id) == 0 && cJSON_IsArray(images) &&
                cJSON_GetArraySize(images) == m->probe.n_channels;
    for (int f = 0; agree && f < m->n_files; f++) {
        const cJSON *fe = f < m->probe.n_channels ? cJSON_GetArrayItem(images, f)
                          : f == m->probe.n_channels ? get(cf, "label")
                                                     : get(cf, "instances");
        const char *fp = str_of(fe, "path"), *fs = str_of(fe, "sha256");
        case_file_rel(m, id, f, rel, sizeof rel);
        agree = fp && fs && strcmp(fp, rel) == 0 && strcmp(fs, sha[f]) == 0;
    }
    cJSON_Delete(cm);
    if (!agree) {
        rsy_log_error("%s: its case id, files or checksums disagree with %s", mpath, where);
        return RSY_EINVALID_DATASET;
    }
    for (int f = 0; f < m->n_files; f++) {
        case_file_rel(m, id, f, rel, sizeof rel);
        if ((rc = check_source(s, rel, sha[f], "the manifests")) != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* Copy @p src to @p dst: to a temporary name beside it, fsynced, then renamed. */
static rsy_status copy_file(const char *src, const char *dst)
{
    char *tmp = rsy__file_temp_path(dst);
    if (!tmp)
        return RSY_ENOMEM;
    rsy_status rc = RSY_OK;
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int out = in < 0 ? -1 : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    char *buf = malloc((size_t)1 << 20);
    if (in < 0 || out < 0 || !buf) {
        rsy_log_error("%s: %s", in < 0 ? src : tmp, buf ? strerror(errno) : "out of memory");
        rc = buf ? RSY_EIO : RSY_ENOMEM;
    }
    while (rc == RSY_OK) {
        ssize_t n = read(in, buf, (size_t)1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rsy_log_error("%s: %s", src, strerror(errno));
            rc = RSY_EIO;
        }
        if (n <= 0)
            break;
        for (ssize_t done = 0; rc == RSY_OK && done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rsy_log_error("%s: %s", dst, strerror(errno));
                rc = RSY_EIO;
            } else {
                done += w;
            }
        }
    }
    if (rc == RSY_OK && fsync(out) != 0 && errno != EINVAL) {
        rsy_log_error("%s: fsync failed: %s", dst, strerror(errno));
        rc = RSY_EIO;
    }
    if (out >= 0 && close(out) != 0 && rc == RSY_OK) {
        rsy_log_error("%s: %s", dst, strerror(errno));
        rc = RSY_EIO;
    }
    if (in >= 0)
        close(in);
    free(buf);
    if (rc == RSY_OK && rename(tmp, dst) != 0) {
        rsy_log_error("%s: %s", dst, strerror(errno));
        rc = RSY_EIO;
    }
    if (rc != RSY_OK && out >= 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* Hard-link @p src at @p dst, or copy it when the file system refuses the link. */
static rsy_status link_or_copy(const char *src, const char *dst)
{
    if (link(src, dst) == 0)
        return RSY_OK;
    int err = errno;
    if (err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EACCES)
        return copy_file(src, dst);
    rsy_log_error("%s: cannot link from %s: %s", dst, src, strerror(err));
    return RSY_EIO;
}

/* Link case @p index's files into the output (manifest last) and adopt it. */
static rsy_status place_case(void *vctx, size_t index, int worker)
{
    (void)worker;
    merge_ctx *m = vctx;
    const shard *s = &m->shards[(int64_t)index % m->n];
    char id[32], rel[RSY_EXPORT_REL_MAX], src[RSY_PATH_MAX], dst[RSY_PATH_MAX];
    rsy_export_case_id(index, id, sizeof id);
    rsy_status rc = RSY_OK;
    for (int f = 0; rc == RSY_OK && f <= m->n_files; f++) {
        if (f < m->n_files)
            case_file_rel(m, id, f, rel, sizeof rel);
        else
            rsy__export_manifest_relpath(id, rel, sizeof rel);
        if ((rc = rsy__export_path(src, sizeof src, "%s/%s", s->dir, rel)) == RSY_OK &&
            (rc = rsy__export_path(dst, sizeof dst, "%s/%s", m->p->out_dir, rel)) == RSY_OK)
            rc = link_or_copy(src, dst);
    }
    if (rc == RSY_OK && (rc = rsy_export_adopt_case(m->e, index)) != RSY_OK)
        rsy_log_error("%s: %s could not be adopted after linking: %s", m->p->out_dir, id,
                      rsy_strerror(rc));
    return rc;
}

/* Read and check the shards' run states and manifests: who is which shard, and that they
 * belong together with the run @p p describes. Fills m->shards by index. */
static rsy_status load_shards(merge_ctx *m, const char *const *dirs, size_t n_dirs)
{
    const rsy_export_params *p = m->p;
    cJSON *want = NULL;
    rsy_status rc = run_state_doc(p, 0, &want), worst = RSY_OK;
    if (rc != RSY_OK)
        return rc;
    shard *tmp = calloc(n_dirs, sizeof *tmp);
    if (!tmp) {
        cJSON_Delete(want);
        return RSY_ENOMEM;
    }
    char path[RSY_PATH_MAX], what[RSY_PATH_MAX + 64];
    for (size_t i = 0; i < n_dirs; i++) {
        shard *s = &tmp[i];
        s->dir = dirs[i];
        rsy_shard_info info;
        if ((rc = rsy_export_shard_info(s->dir, &info)) != RSY_OK) {
            worst = worst == RSY_OK ? rc : worst;
            continue;
        }
        s->index = info.shard_index;
        s->count = info.shard_count;
        if (!realpath(s->dir, s->real)) {
            rsy_log_error("%s: %s", s->dir, strerror(errno));
            worst = worst == RSY_OK ? RSY_EIO : worst;
            continue;
        }
        cJSON *have = NULL;
        if (rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_RUN_STATE, s->dir) != RSY_OK ||
            read_json(path, NULL, &have) != RSY_OK) {
            worst = worst == RSY_OK ? RSY_EINVALID_DATASET : worst;
            continue;
        }
        snprintf(what, sizeof what, "%s", s->dir);
        if (run_state_diff(have, want, 0, what, "the shard", "the merge asks for") > 0)
            worst = worst == RSY_OK ? RSY_ECONFIG : worst;
        cJSON_Delete(have);
    }
    cJSON_Delete(want);
    if (worst != RSY_OK)
        goto done;

    /* One count N, indices 0..N-1 each exactly once. */
    int64_t n = tmp[0].count;
    for (size_t i = 1; i < n_dirs; i++) {
        if (tmp[i].count != n) {
            rsy_log_error("%s is shard %lld of %lld, but %s is shard %lld of %lld: shards of one "
                          "run share their count",
                          tmp[i].dir, (long long)tmp[i].index, (long long)tmp[i].count,
                          tmp[0].dir, (long long)tmp[0].index, (long long)n);
            worst = RSY_ECONFIG;
            goto done;
        }
    }
    m->shards = calloc((size_t)n, sizeof *m->shards);
    if (!m->shards) {
        worst = RSY_ENOMEM;
        goto done;
    }
    m->n = n;
    for (size_t i = 0; i < n_dirs; i++) {
        shard *s = &m->shards[tmp[i].index];
        if (s->dir) {
            rsy_log_error("%s and %s are both shard %lld of %lld", s->dir, tmp[i].dir,
                          (long long)tmp[i].index, (long long)n);
            worst = RSY_ECONFIG;
        } else {
            *s = tmp[i];
        }
    }
    for (int64_t k = 0; k < n && worst == RSY_OK; k++) {
        if (!m->shards[k].dir) {
            rsy_log_error("shard %lld of %lld is missing (%zu director%s given)", (long long)k,
                          (long long)n, n_dirs, n_dirs == 1 ? "y" : "ies");
            worst = RSY_ECONFIG;
        }
    }
    if (worst != RSY_OK)
        goto done;

    /* Each shard is complete and lists exactly its cases. */
    for (int64_t k = 0; k < n; k++) {
        shard *s = &m->shards[k];
        if ((rc = rsy__export_path(path, sizeof path, "%s/" RSY_EXPORT_MANIFEST, s->dir)) !=
            RSY_OK) {
            worst = RSY_EINVALID_DATASET;
            break;
        }
        int missing = 0;
        rc = read_json(path, &missing, &s->manifest);
        if (missing) {
            rsy_log_error("%s: missing: the shard is incomplete (finish it with raresynth "
                          "generate --resume --shard %lld/%lld)",
                          path, (long long)k, (long long)n);
            rc = RSY_EINVALID_DATASET;
        }
        if (rc != RSY_OK) {
            worst = rc == RSY_EIO ? RSY_EINVALID_DATASET : rc;
            break;
        }
        const cJSON *sh = get(s->manifest, "shard");
        int64_t si = 0, sc = 1;
        uint64_t seed = 0;
        if (sh && !(json_i64(get(sh, "index"), 0, INT64_C(1) << 40, &si) &&
                    json_i64(get(sh, "count"), 2, INT64_C(1) << 40, &sc))) {
            si = -1;
        }
        const cJSON *gen = get(s->manifest, "generator"), *rec = get(s->manifest, "recipe");
        const char *ver = str_of(gen, "version"), *rsha = str_of(rec, "sha256");
        s->cases = get(s->manifest, "cases");
        int64_t expect = (p->recipe->cases - k + n - 1) / n;
        if (si != k || sc != n || !ver || strcmp(ver, rsy_version()) != 0 || !rsha ||
            strcmp(rsha, p->recipe->sha256) != 0 ||
            !json_u64_string(get(s->manifest, "seed"), &seed) || seed != p->recipe->seed) {
            rsy_log_error("%s: its shard, version, recipe sha256 or seed disagree with the "
                          "shard's run state (" RSY_EXPORT_RUN_STATE ")",
                          path);
            worst = RSY_EINVALID_DATASET;
            break;
        }
        if (!cJSON_IsArray(s->cases) || cJSON_GetArraySize(s->cases) != expect) {
            rsy_log_error("%s: \"cases\" must list the shard's %lld cases, got %d", path,
                          (long long)expect,
                          cJSON_IsArray(s->cases) ? cJSON_GetArraySize(s->cases) : -1);
            worst = RSY_EINVALID_DATASET;
            break;
        }
        if (!(s->entry = calloc((size_t)(expect > 0 ? expect : 1), sizeof *s->entry))) {
            worst = RSY_ENOMEM;
            break;
        }
        size_t j = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, s->cases)
        {
            s->entry[j++] = it;
        }
    }
done:
    /* Manifests read so far belong to m->shards (freed by the caller). */
    free(tmp);
    return worst;
}

/* 1 if @p path is @p dir or lies below it (both resolved). */
static int path_within(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return 1;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* The real path of @p dir, or of its nearest existing parent followed by the rest. 1 on
 * success. */
static int resolve_out(const char *dir, char real[PATH_MAX])
{
    if (realpath(dir, real))
        return 1;
    if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
        return 0;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* trailing slashes */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    const char *base = slash ? slash + 1 : parent;
    char head[PATH_MAX];
    if (!slash)
        snprintf(head, sizeof head, ".");
    else if (slash == parent)
        snprintf(head, sizeof head, "/");
    else
        snprintf(head, sizeof head, "%.*s", (int)(slash - parent), parent);
    char up[PATH_MAX];
    if (!resolve_out(head, up))
        return 0;
    int n = snprintf(real, PATH_MAX, "%s%s%s", up, strcmp(up, "/") == 0 ? "" : "/", base);
    return n > 0 && n < PATH_MAX;
}

rsy_status rsy_export_merge(const rsy_export_params *p, const char *const *shard_dirs,
                            size_t n_shards, int n_threads)
{
    if (!p || !p->recipe || !p->out_dir || !p->out_dir[0] || !shard_dirs || n_shards < 1 ||
        p->shard_count != 0 || n_threads < 1 || p->recipe->cases < 1) {
        rsy_log_error("merge: need a recipe, an output directory, at least one shard and "
                      "n_threads >= 1");
        return RSY_EINVAL;
    }
    for (size_t i = 0; i < n_shards; i++)
        if (!shard_dirs[i] || !shard_dirs[i][0])
            return RSY_EINVAL;
    merge_ctx m;
    memset(&m, 0, sizeof m);
    m.p = p;
    rsy_export_nnunet_dirname(p->recipe, m.probe.nnunet_dir, sizeof m.probe.nnunet_dir);
    m.probe.n_channels = rsy_recipe_n_channels(p->recipe);
    if (m.probe.n_channels < 1 || m.probe.n_channels > RSY_MAX_SEQUENCES)
        return RSY_EINVAL;
    m.n_files = m.probe.n_channels + 2;
    rsy_pool *pool = NULL;
    int created = 0;
    rsy_status rc = load_shards(&m, shard_dirs, n_shards);
    if (rc != RSY_OK)
        goto done;
    /* The output must not be a shard, hold one or lie inside one. */
    char real[PATH_MAX];
    if (resolve_out(p->out_dir, real)) {
        for (int64_t k = 0; k < m.n; k++) {
            if (path_within(m.shards[k].real, real) || path_within(real, m.shards[k].real)) {
                rsy_log_error("%s: the output directory and the shard %s overlap (merge never "
                              "writes into a shard)",
                              p->out_dir, m.shards[k].dir);
                rc = RSY_EIO;
                goto done;
            }
        }
    }
    if ((rc = rsy_pool_create(&pool, n_threads)) != RSY_OK ||
        (rc = rsy_pool_run(pool, (size_t)p->recipe->cases, check_case, &m)) != RSY_OK)
        goto done;

    /* Everything checks out: build the output. */
    int had = dir_state(p->out_dir);
    if (had < 0) {
        rc = RSY_EIO;
        goto done;
    }
    if (had > 0) {
        rsy_log_error("%s: output directory is not empty (merge writes a new directory)",
                      p->out_dir);
        rc = RSY_EIO;
        goto done;
    }
    struct stat st;
    created = stat(p->out_dir, &st) != 0 ? 2 : 1; /* 2: made here, 1: existed empty */
    if ((rc = rsy_export_prepare_dir(p->out_dir, 0)) != RSY_OK ||
        (rc = rsy_export_run_state_write(p)) != RSY_OK ||
        (rc = rsy_export_begin(&m.e, p)) != RSY_OK ||
        (rc = rsy_pool_run(pool, (size_t)p->recipe->cases, place_case, &m)) != RSY_OK)
        goto done;
    /* The links are durable before the dataset files say the dataset is complete. */
    char dir[RSY_PATH_MAX], id[32], rel[RSY_EXPORT_REL_MAX];
    rsy_export_case_id(0, id, sizeof id);
    for (int f = 0; rc == RSY_OK && f <= m.n_files; f++) {
        if (f > 0 && f < m.probe.n_channels)
            continue;
        if (f < m.n_files)
            case_file_rel(&m, id, f, rel, sizeof rel);
        else
            rsy__export_manifest_relpath(id, rel, sizeof rel);
        if ((rc = rsy__export_path(dir, sizeof dir, "%s/%s", p->out_dir, rel)) == RSY_OK) {
            *strrchr(dir, '/') = '\0';
            rc = rsy__export_fsync(dir);
        }
    }
    if (rc == RSY_OK)
        rc = rsy_export_finish(m.e);

done:
    rsy_pool_destroy(pool);
    rsy_export_destroy(m.e);
    if (rc != RSY_OK && created) {
        /* Leave the output as it was: absent, or empty. */
        if (created == 2) {
            if (remove_tree(p->out_dir) != RSY_OK)
                rsy_log_error("%s: could not remove the incomplete merge", p->out_dir);
        } else if (walk(p->out_dir, remove_any, NULL, 0) != RSY_OK) {
            rsy_log_error("%s: could not empty the incomplete merge", p->out_dir);
        }
    }
    if (m.shards) {
        for (int64_t k = 0; k < m.n; k++) {
            cJSON_Delete(m.shards[k].manifest);
            free(m.shards[k].entry);
        }
    }
    free(m.shards);
    return rc;
}
