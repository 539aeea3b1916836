/*
 * validate_internal.h: declarations shared by the files of `raresynth validate`
 * (rsy_export_validate). Private to export/, never installed.
 *
 * validate.c          entry point and report; the nnU-Net folder and dataset.json;
 *                     raresynth.json and the case manifests; lesion records; one case; summary
 * validate_files.c    hostile-input guards (paths inside DIR, bounded JSON, NIfTI size before
 *                     reading), NIfTI files, checksums, folders and interrupted runs, shards,
 *                     previews
 * validate_layouts.c  the MSD / MONAI and nnDetection layouts
 * validate_hdf5.c     the HDF5 file
 *
 * Small helpers are static inline here. A function one file calls in another is named
 * rsy__validate_<name>; the others stay static in their file.
 */
#ifndef RSY_VALIDATE_INTERNAL_H
#define RSY_VALIDATE_INTERNAL_H

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <hdf5.h>

#include "export_internal.h"

#define MAX_CHANNELS 64
#define ID_MAX 64
/* JSON limits: raresynth.json and the layouts' dataset.json of a million cases stay below
 * RSY_EXPORT_JSON_MAX_BYTES; a per-case JSON file below 16 MiB. No document raresynth writes
 * nests deeper than about 10 levels (an embedded recipe included). */
#define JSON_CASE_MAX_BYTES ((size_t)16 << 20)
#define JSON_MAX_DEPTH 64

/* One case the dataset holds (listed in raresynth.json, or with a manifest). */
typedef struct vcase {
    char *id;
    int64_t index;         /* from "case_NNNN"; -1 for another id */
    int list_pos;          /* position in raresynth.json "cases"; -1 without */
    const cJSON *entry;    /* raresynth.json cases[list_pos], or NULL */
    const cJSON *msd_item; /* its item of msd/dataset.json "training", or NULL */
    int msd_pos;
} vcase;

/* A file met while checking one case (one entry per path): its checksum, hashed once (the
 * layouts' copies are compared by checksum and by inode: a hard link is the same file), and
 * what was reported about it, so each thing is said once whoever looks for the file. */
#define SEEN_MISSING 1u /* reported missing */
#define SEEN_BAD 2u     /* reported hostile or unreadable (locate) */
typedef struct hashed {
    char rel[RSY_EXPORT_REL_MAX];
    char hex[65];
    int hashed; /* a checksum was attempted; ok = it succeeded */
    int ok;
    unsigned seen; /* SEEN_* */
    int sha_bad;   /* its SHA-256 differs from the case manifest (1), raresynth.json (2) */
    dev_t dev;
    ino_t ino;
} hashed;

typedef struct vctx {
    const char *dir;
    char real_dir[RSY_PATH_MAX]; /* realpath(dir): every file read must resolve inside it */
    rsy_validate_report *rep;
    cJSON *dsman;  /* raresynth.json, or NULL */
    cJSON *nnjson; /* dataset.json, or NULL */
    char nnunet_dir[96];
    int have_nnunet;
    int n_channels; /* -1 = unknown */
    char channel_names[MAX_CHANNELS][RSY_NAME_MAX];
    int n_labels; /* declared values 0..n_labels-1; -1 = unknown */
    char label_names[RSY_MAX_LABELS][RSY_NAME_MAX];
    unsigned char peri[RSY_MAX_LABELS]; /* perilesional flags of raresynth.json (0 unknown) */
    vcase *cases;                       /* sorted by id */
    size_t n_cases, cap_cases;
    /* Shard manifest: raresynth.json with "shard": {"index", "count"}. */
    int64_t shard_index, shard_count; /* count 0: not a shard */
    int64_t total_cases;              /* effective.cases of the run, -1 unknown */
    /* Interrupted runs: files of cases without a manifest, temporaries, staging leftovers. */
    int64_t partial_files;
    /* What the summary of raresynth.json is recomputed from (every case's manifest and label
     * map); summary_known = 0 once one of them could not be read. */
    int summary_known;
    int64_t lesions_total, lesions_min, lesions_max, cases_seen;
    double *volumes; /* volume_mm3 of every lesion record */
    size_t n_volumes, cap_volumes;
    int64_t label_totals[RSY_MAX_LABELS];
    /* Layouts. */
    cJSON *msdjson; /* msd/dataset.json, or NULL */
    int have_msd;
    char nndet_dir[96];
    int have_nndet;
    int nndet_n_classes; /* labels of nndet dataset.json; -1 unknown */
    /* HDF5: the file raresynth.json lists, opened only if its checksum matches. */
    char h5rel[RSY_EXPORT_REL_MAX];
    hid_t h5;
    int previews; /* 1: a preview per case is expected */
    /* Per case: the files hashed so far. */
    hashed *hashes;
    size_t n_hashes, cap_hashes;
} vctx;

/* What rsy__validate_locate() found at a path. */
typedef enum { LOC_MISSING = 0, LOC_OK = 1, LOC_BAD = 2 } loc_state;

/* The kinds of case files a folder holds (rsy__validate_file_case_id). */
typedef enum {
    FK_IMAGES,       /* "<id>_CCCC.nii.gz", CCCC below the channel count */
    FK_NII,          /* "<id>.nii.gz" */
    FK_NNDET_LABELS, /* "<id>.nii.gz" and "<id>.json" */
    FK_PNG           /* "<id>.png" */
} folder_kind;

/* ---------------------------------------------------------------------------------------- */
/* Reporting                                                                                  */
/* ---------------------------------------------------------------------------------------- */
static inline void problem(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);
static inline void note(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);

/* Log one line "DIR/REL: message"; @p counted: a problem (else a note). */
void rsy__validate_emit(vctx *v, int counted, const char *rel, const char *fmt, va_list ap);

/* A problem: counted, logged as an error. */
static inline void problem(vctx *v, const char *rel, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rsy__validate_emit(v, 1, rel, fmt, ap);
    va_end(ap);
}

/* Something the user should know that does not make the dataset invalid (a partial file of
 * an interrupted run, a shard's status): logged as a warning, not counted. */
static inline void note(vctx *v, const char *rel, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rsy__validate_emit(v, 0, rel, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                              */
/* ---------------------------------------------------------------------------------------- */
static inline int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Case ids (and file stems) are [A-Za-z0-9_-]{1,63}: no '/', no "..", no '.', so a path made
 * from one never leaves the dataset (and nnDetection's "no '.'" rule holds). */
static inline int safe_id(const char *s)
{
    return rsy__name_ok(s, ID_MAX - 1);
}

static inline int full_path(const vctx *v, const char *rel, char *buf, size_t n)
{
    return rsy__export_path(buf, n, "%s/%s", v->dir, rel) == RSY_OK;
}

/* A temporary file of an atomic write ("<name>.part-<pid>-<n>", core/fileio.c). */
static inline int is_temporary(const char *name)
{
    return strstr(name, ".part-") != NULL;
}

static inline int is_dot(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..");
}

/* An integer-valued JSON number, or 0 with *ok = 0. */
static inline int64_t json_int(const cJSON *item, int *ok)
{
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) ||
        fabs(item->valuedouble) > 9007199254740992.0) {
        *ok = 0;
        return 0;
    }
    *ok = 1;
    return (int64_t)item->valuedouble;
}

static inline const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static inline const cJSON *json_get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* ---------------------------------------------------------------------------------------- */
/* Shared between the files                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* validate.c (each documented there) */
int rsy__validate_find_numbered_dir(vctx *v, const char *prefix, const char *what, char *out);
vcase *rsy__validate_find_case(const vctx *v, const char *id);
int rsy__validate_main_label(const vctx *v, const rsy_lesion_record *r, const unsigned char *peri);
int rsy__validate_lesion_class(const vctx *v, const rsy_lesion_record *r,
                               const unsigned char *peri);

/* validate_files.c (each documented there) */
int rsy__validate_rel_safe(const char *rel);
loc_state rsy__validate_locate(vctx *v, const char *rel, int want_dir, char *path, size_t n,
                               struct stat *st);
int rsy__validate_file_ok(vctx *v, const char *rel);
int rsy__validate_path_exists(const vctx *v, const char *rel);
DIR *rsy__validate_open_folder(vctx *v, const char *rel, int *missing);
cJSON *rsy__validate_load_json_text(vctx *v, const char *rel, int report_missing, int count,
                                    size_t max_bytes, char **text_out);
cJSON *rsy__validate_load_json(vctx *v, const char *rel, int report_missing, int count,
                               size_t max_bytes);
void rsy__validate_parse_shard(vctx *v);
void rsy__validate_check_shard_cases(vctx *v);
int rsy__validate_file_case_id(const vctx *v, const char *name, folder_kind k, char *id);
void rsy__validate_check_folders(vctx *v);
rsy_volume *rsy__validate_read_volume(vctx *v, const char *rel, int label, const char *what,
                                      rsy_nifti_info *info);
void rsy__validate_check_finite(vctx *v, const char *rel, const rsy_volume *vol);
void rsy__validate_check_label_values(vctx *v, const char *rel, const rsy_volume *vol);
long rsy__validate_file_hash(vctx *v, const char *rel);
void rsy__validate_missing_once(vctx *v, const char *rel, const char *fmt, ...) RSY_FORMAT(3, 4);
void rsy__validate_check_identical(vctx *v, const char *rel, const char *src, const char *layout);
void rsy__validate_check_case_files(vctx *v, const vcase *c, const cJSON *man, const char *manrel);
void rsy__validate_check_preview(vctx *v, const vcase *c);

/* validate_layouts.c (each documented there) */
void rsy__validate_check_msd_dataset(vctx *v);
void rsy__validate_check_msd_case(vctx *v, const vcase *c, const rsy_lesion_record *rec, int n_rec,
                                  const rsy_geometry *g, int measured);
void rsy__validate_check_nndet_dataset(vctx *v);
void rsy__validate_check_nndet_case(vctx *v, const vcase *c, const rsy_volume *inst,
                                    const rsy_lesion_record *rec, int n_rec, int measured,
                                    const rsy_nifti_info *ref, const rsy_volume *ref_vol);

/* validate_hdf5.c (each documented there) */
void rsy__validate_open_hdf5(vctx *v);
void rsy__validate_check_hdf5_root(vctx *v);
void rsy__validate_check_hdf5_volume(vctx *v, hid_t grp, const char *obj, const char *name,
                                     int channel, int n_ch, const rsy_volume *vol,
                                     const char *nifti_rel);
void rsy__validate_check_hdf5_case(vctx *v, const vcase *c, hid_t grp, const char *obj,
                                   const rsy_nifti_info *info, const rsy_lesion_record *rec,
                                   int n_rec, int measured);
hid_t rsy__validate_open_hdf5_case(vctx *v, const vcase *c, char *obj, size_t n);

#endif /* RSY_VALIDATE_INTERNAL_H */
