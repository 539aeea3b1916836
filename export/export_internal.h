/*
 * export_internal.h: declarations shared by the .c files of export/ (never installed).
 *
 * writer.c    the dataset writer (prepare_dir, begin, write_case, finish) and path helpers
 * manifest.c  the JSON documents: per-case manifest, dataset manifest, nnU-Net dataset.json,
 *             BIDS dataset_description.json
 * measure.c   lesion records measured from an instance map
 * validate.c  `raresynth validate`
 */
#ifndef RSY_EXPORT_INTERNAL_H
#define RSY_EXPORT_INTERNAL_H

#include <pthread.h>

#include <cjson/cJSON.h>

#include "core_internal.h"
#include "rsy_export.h"

#define RSY_EXPORT_MARKER ".raresynth"       /* marker file of a dataset directory */
#define RSY_EXPORT_MANIFEST "raresynth.json" /* dataset manifest, written last */
#define RSY_EXPORT_DESCRIPTION "dataset_description.json"
#define RSY_EXPORT_MANIFEST_DIR "manifests"
/* A case's files are written here (DIR/.staging/<case>/) and renamed into place when all are
 * complete; nnU-Net never looks outside imagesTr/labelsTr. */
#define RSY_EXPORT_STAGING_DIR ".staging"
#define RSY_EXPORT_INSTANCE_DIR "instances"
#define RSY_EXPORT_NII ".nii.gz"
#define RSY_EXPORT_LICENCE "CC-BY-4.0"
#define RSY_EXPORT_BIDS_VERSION "1.9.0"
#define RSY_EXPORT_COORDS "RAS+ world millimetres (NIfTI sform/qform code 1); box mode cccwhd"
#define RSY_EXPORT_DATA_SOURCES                                                                    \
    "No patient data: every case is generated from procedural anatomy and published "              \
    "population statistics; no image of any person was used."
/* Largest JSON document validate reads (a manifest of a huge dataset stays far below). */
#define RSY_EXPORT_JSON_MAX_BYTES ((size_t)1 << 30)
/* Room for a relative path inside a dataset ("DatasetNNN_<name>/imagesTr/<case>_CCCC.nii.gz"). */
#define RSY_EXPORT_REL_MAX 256

/** What the writer keeps of one written case until finish(): enough for the dataset manifest. */
typedef struct rsy__case_summary {
    char (*sha)[65]; /* n_channels images, then the label map, then the instance map */
    char manifest_sha[65];
    int n_lesions;             /* lesions with at least one voxel */
    double *lesion_volume_mm3; /* n_lesions */
    int64_t *label_voxels;     /* n_labels: voxels of each label value in the case */
} rsy__case_summary;

struct rsy_export {
    const rsy_recipe *recipe; /* borrowed */
    char *out_dir;
    char nnunet_dir[96]; /* "DatasetNNN_<name>" */
    int n_channels;
    int n_labels;
    char **label_names;                         /* n_labels, owned */
    char *texture_note;                         /* owned, never NULL */
    unsigned char perilesional[RSY_MAX_LABELS]; /* 1 = label value left out of the mass */
    char (*prior_sha)[65]; /* SHA-256 of each recipe lesion type's prior file, owned */
    char tissue_sha[65];   /* SHA-256 of the recipe's tissue-table file */
    char preset_sha[65];   /* SHA-256 of the texture preset file ("" without a preset) */
    char scanner_sha[65];  /* SHA-256 of the CT scanner profile ("" for MRI) */
    size_t n_cases;
    pthread_mutex_t lock;      /* guards cases[] */
    rsy__case_summary **cases; /* n_cases, NULL until written */
};

/* ---- writer.c ---------------------------------------------------------------------------- */
/** Relative paths (to the dataset directory) of the files of one case. */
void rsy__export_image_relpath(const rsy_export *e, const char *case_id, int channel, char *buf,
                               size_t n);
void rsy__export_label_relpath(const rsy_export *e, const char *case_id, char *buf, size_t n);
void rsy__export_instance_relpath(const char *case_id, char *buf, size_t n);
void rsy__export_manifest_relpath(const char *case_id, char *buf, size_t n);
/** snprintf into @p buf; RSY_EINVAL (logged) if the result does not fit. */
rsy_status rsy__export_path(char *buf, size_t n, const char *fmt, ...) RSY_FORMAT(3, 4);
void rsy__case_summary_free(rsy__case_summary *s);
/** The file name part of @p path (after the last '/'). */
const char *rsy__export_basename(const char *path);
/** fsync the file or directory @p path, opened read-only. @return RSY_OK, RSY_EIO (logged). */
rsy_status rsy__export_fsync(const char *path);
/** Create or truncate @p path, write @p len bytes and fsync them (no rename).
 *  @return RSY_OK, RSY_EIO (logged). */
rsy_status rsy__export_write_synced(const char *path, const void *data, size_t len);
/** Durable atomic write: to a temporary name beside @p path, fsync, rename over @p path. On
 *  failure the temporary file is removed and @p path untouched. @return RSY_OK, RSY_EIO,
 *  RSY_ENOMEM. */
rsy_status rsy__export_write_durable(const char *path, const void *data, size_t len);

/* ---- manifest.c -------------------------------------------------------------------------- */
/** The decimal string of a 64-bit value (seeds are stored as strings: cJSON prints %1.15g). */
void rsy__export_u64_string(uint64_t v, char buf[24]);
/** The text of @p doc (cJSON_Print) with a trailing newline, in a heap buffer owned by the
 *  caller (free()); NULL when out of memory. */
char *rsy__export_json_text(const cJSON *doc, size_t *len);
/** Write @p doc's text durably and atomically to @p path (rsy__export_write_durable). */
rsy_status rsy__export_write_json(const cJSON *doc, const char *path);
/**
 * Build the per-case manifest. @p records[i] describes instance i+1 (n_records of them);
 * @p sha holds the checksums of the case's NIfTI files (images, label, instances).
 * On success @p *out is owned by the caller (cJSON_Delete).
 * @return RSY_OK, RSY_EINVAL (duplicate key among the case's facts), RSY_ENOMEM.
 */
rsy_status rsy__export_case_manifest(cJSON **out, const rsy_export *e, const rsy_case_data *c,
                                     const char *case_id, char (*sha)[65],
                                     const rsy_lesion_record *records, int n_records);
/** Write dataset.json, dataset_description.json and, last, raresynth.json. Every case of
 *  @p e must have a summary. */
rsy_status rsy__export_write_dataset_files(const rsy_export *e);

/* ---- measure.c --------------------------------------------------------------------------- */
/** Largest value of an integer volume (uint8/int16/uint16; float32 read as its value). */
double rsy__volume_max(const rsy_volume *v);
/** Value of voxel @p idx of any dtype, as a double. */
double rsy__volume_get(const rsy_volume *v, size_t idx);

#endif /* RSY_EXPORT_INTERNAL_H */
