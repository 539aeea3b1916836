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
    char **label_names; /* n_labels, owned */
    char *texture_note; /* owned, never NULL */
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

/* ---- manifest.c -------------------------------------------------------------------------- */
/** The decimal string of a 64-bit value (seeds are stored as strings: cJSON prints %1.15g). */
void rsy__export_u64_string(uint64_t v, char buf[24]);
/** Print @p doc (cJSON_Print) and write it atomically to @p path with a trailing newline; if
 *  @p sha is not NULL it receives the SHA-256 of the written bytes. */
rsy_status rsy__export_write_json(const cJSON *doc, const char *path, char sha[65]);
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
