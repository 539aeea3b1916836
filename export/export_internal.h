/*
 * export_internal.h: declarations shared by the .c files of export/ (never installed).
 *
 * writer.c    the dataset writer (prepare_dir, begin, write_case, adopt_case, finish) and path
 *             helpers
 * layout.c    the per-case file list of every layout, the MSD and nnDetection files, hard links,
 *             previews of a case, the HDF5 file built at finish
 * manifest.c  the JSON documents: per-case manifest (written and parsed back), dataset
 *             manifest, nnU-Net dataset.json, BIDS dataset_description.json
 * measure.c   lesion records measured from an instance map
 * merge.c     resume state, shard checks and `raresynth merge`
 * preview.c   PNG previews; hdf5.c the HDF5 dataset writer
 * validate.c, validate_layouts.c, validate_files.c, validate_hdf5.c
 *             `raresynth validate` (shared declarations in validate_internal.h)
 */
#ifndef RSY_EXPORT_INTERNAL_H
#define RSY_EXPORT_INTERNAL_H

#include <pthread.h>

#include <cjson/cJSON.h>

#include "core_internal.h"

/** Add @p item to @p obj under @p key; on failure (or a NULL @p item) free @p item and return
 *  NULL, else return @p item (manifest.c). */
cJSON *rsy__json_add(cJSON *obj, const char *key, cJSON *item);
#include "rsy_export.h"

#define RSY_EXPORT_MARKER ".raresynth"       /* marker file of a dataset directory */
#define RSY_EXPORT_MANIFEST "raresynth.json" /* dataset manifest, written last */
#define RSY_EXPORT_DESCRIPTION "dataset_description.json"
#define RSY_EXPORT_MANIFEST_DIR "manifests"
/* A case's files are written here (DIR/.staging/<case>/) and renamed into place when all are
 * complete; nnU-Net never looks outside imagesTr/labelsTr. */
#define RSY_EXPORT_STAGING_DIR ".staging"
#define RSY_EXPORT_INSTANCE_DIR "instances"
#define RSY_EXPORT_MSD_DIR "msd"
#define RSY_EXPORT_PREVIEW_DIR "previews"
#define RSY_EXPORT_LAYOUTS_ALL (RSY_LAYOUT_NNUNET | RSY_LAYOUT_MSD | RSY_LAYOUT_NNDET)
#define RSY_EXPORT_FORMATS_ALL (RSY_FORMAT_NIFTI | RSY_FORMAT_HDF5)
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

/** What the writer keeps of one written or adopted case until finish(). Every field is
 *  reconstructible from the case's files: the numbers come from its manifest as parsed back
 *  (rsy__export_parse_case), never from the in-memory values before printing, since cJSON's
 *  printing may round a double (it accepts %1.15g when it reads back within DBL_EPSILON), and
 *  the label counts from its label map. So a resumed or merged dataset gets the same bytes. */
typedef struct rsy__case_summary {
    char (*sha)[65]; /* n_channels images, then the label map, then the instance map */
    char manifest_sha[65];
    int n_lesions;             /* lesion records (lesions with at least one voxel) */
    double *lesion_volume_mm3; /* n_lesions */
    double (*box)[6];          /* n_lesions: box_cccwhd_mm, for msd/dataset.json */
    int *box_class;            /* n_lesions: lesion class, 0-based over the non-background
                                  labels (rsy__export_lesion_class) */
    int64_t *label_voxels;     /* n_labels: voxels of each label value in the case */
} rsy__case_summary;

/** A per-case manifest parsed back (rsy__export_parse_case). The strings point into @c doc. */
typedef struct rsy__case_parsed {
    cJSON *doc;
    char (*sha)[65];            /* n_channels + 2 file checksums, as in the summary */
    int n_records;              /* lesion records, instance ids strictly increasing */
    rsy_lesion_record *records; /* n_records; label_voxels[0] = voxel_count minus the
                                   compartments' voxels */
    rsy_lesion_info *info;      /* n_records: type, display_name, host, region (no params) */
    const char *findings;
} rsy__case_parsed;

/* The kinds of a case's files (rsy__export_case_plan). */
typedef enum {
    RSY__FILE_IMAGE = 0,   /* nnU-Net image of channel `channel` */
    RSY__FILE_LABEL,       /* nnU-Net label map */
    RSY__FILE_INSTANCES,   /* instance map */
    RSY__FILE_LINK,        /* a hard link (copy fallback) to file `src` of the plan */
    RSY__FILE_NNDET_LABEL, /* nnDetection instance map: renumbered, or a link to `src` */
    RSY__FILE_NNDET_JSON,  /* nnDetection {case}.json */
    RSY__FILE_PREVIEW,     /* previews/{case}.png */
    RSY__FILE_MANIFEST     /* manifests/{case}.json, always last */
} rsy__file_kind;

typedef struct rsy__case_file {
    rsy__file_kind kind;
    int channel; /* RSY__FILE_IMAGE */
    int src;     /* RSY__FILE_LINK, RSY__FILE_NNDET_LABEL: index of the source file in the plan */
    char rel[RSY_EXPORT_REL_MAX]; /* path relative to the dataset directory */
} rsy__case_file;

/* Most files of one case: 3 per channel, label, instances, msd label, nndet label and json,
 * preview, manifest. */
#define RSY__CASE_FILES_MAX (3 * RSY_MAX_SEQUENCES + 8)

struct rsy_export {
    const rsy_recipe *recipe; /* borrowed */
    char *out_dir;
    char nnunet_dir[96]; /* "DatasetNNN_<name>" */
    char nndet_dir[96];  /* "TaskNNN_<name>" */
    unsigned layouts;    /* RSY_LAYOUT_* (RSY_LAYOUT_NNUNET always set: it is the store) */
    unsigned formats;    /* RSY_FORMAT_* (RSY_FORMAT_NIFTI always set) */
    int preview;         /* 1: previews/<case>.png */
    int64_t shard_index; /* the cases i with i % shard_count == shard_index */
    int64_t shard_count; /* 1: not sharded */
    int n_channels;
    int n_labels;
    char **label_names;                         /* n_labels, owned */
    char *texture_note;                         /* owned, never NULL */
    unsigned char perilesional[RSY_MAX_LABELS]; /* 1 = label value left out of the mass */
    char (*prior_sha)[65];     /* SHA-256 of each recipe lesion type's prior file, owned */
    char tissue_sha[65];       /* SHA-256 of the recipe's tissue-table file */
    char preset_sha[65];       /* SHA-256 of the texture preset file ("" without a preset) */
    char scanner_sha[65];      /* SHA-256 of the CT scanner profile ("" for MRI) */
    size_t n_cases;            /* cases of the whole dataset (a shard holds some of them) */
    pthread_mutex_t lock;      /* guards cases[] */
    rsy__case_summary **cases; /* n_cases, NULL until written or adopted */
};

/* ---- writer.c ---------------------------------------------------------------------------- */
/** Relative paths (to the dataset directory) of the files of one case. */
void rsy__export_image_relpath(const rsy_export *e, const char *case_id, int channel, char *buf,
                               size_t n);
void rsy__export_label_relpath(const rsy_export *e, const char *case_id, char *buf, size_t n);
void rsy__export_instance_relpath(const char *case_id, char *buf, size_t n);
void rsy__export_manifest_relpath(const char *case_id, char *buf, size_t n);
/** 1 if case @p index belongs to this directory (every case, or the shard's). */
int rsy__export_holds(const rsy_export *e, size_t index);
/** Number of cases this directory holds. */
size_t rsy__export_n_held(const rsy_export *e);
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
/**
 * Parse the per-case manifest text @p text of case @p index back and check that it belongs to
 * this dataset: format version, case id and index, generator version, dataset seed, the label
 * dictionary and perilesional labels, and the file list (exactly the paths this writer gives
 * the case, each with a 64-digit checksum). The lesion records are read back exactly as
 * printed. @p what names the file in the one line logged on a problem ("WHAT: KEY: expected
 * ..."). On success @p out owns the document; release with rsy__case_parsed_clear().
 * @return RSY_OK, RSY_EIO (not this case's manifest or malformed; logged), RSY_ENOMEM.
 */
rsy_status rsy__export_parse_case(const rsy_export *e, size_t index, const char *text, size_t len,
                                  const char *what, rsy__case_parsed *out);
void rsy__case_parsed_clear(rsy__case_parsed *p);
/** Write the dataset-level files and, last, raresynth.json: for a whole dataset the nnU-Net
 *  dataset.json, the MSD and nnDetection dataset.json (when asked), the HDF5 file (when
 *  asked), dataset_description.json; for a shard only its shard manifest. Every case the
 *  directory holds must have a summary. */
rsy_status rsy__export_write_dataset_files(const rsy_export *e);
/** "nnunet" etc. of the layout bits, and "nifti"/"hdf5" of the format bits, in bit order. */
cJSON *rsy__export_outputs_object(const rsy_export *e);

/* ---- layout.c ---------------------------------------------------------------------------- */
/** The files of case @p case_id in publication order (nnU-Net images, label map, instance map,
 *  MSD links, nnDetection links, label and JSON, preview, and the manifest last) into
 *  @p files (RSY__CASE_FILES_MAX entries). @return their number. */
int rsy__export_case_plan(const rsy_export *e, const char *case_id, rsy__case_file *files);

/** What the derived files of a case are made from. Volumes have the geometry as stored in the
 *  NIfTI files (rsy__export_geometry_as_stored), so that a case written now and one adopted
 *  later give the same bytes; a volume a file does not need may be NULL. */
typedef struct rsy__case_src {
    const rsy_volume *const *channels; /* n_channels */
    const rsy_volume *labels;
    const rsy_volume *instances;
    const rsy__case_parsed *parsed;
} rsy__case_src;

/** Make derived file @p k of @p plan (a link, the nnDetection label map or JSON, the preview)
 *  at @p paths[k], atomically, from @p paths[plan[k].src] and @p src.
 *  @return RSY_OK, RSY_EIO (logged), RSY_ENOMEM, or the preview's status. */
rsy_status rsy__export_make_file(const rsy_export *e, const rsy__case_file *plan, int k,
                                 char (*paths)[RSY_PATH_MAX], const rsy__case_src *src);
/** 1 when derived file @p k already at @p paths[k] is what rsy__export_make_file() would make:
 *  a link to its source (or a copy with the source's checksum in @p parsed), the nnDetection
 *  JSON with the same bytes, an existing preview. A renumbered nnDetection label map is never
 *  trusted (it is remade). */
int rsy__export_file_current(const rsy_export *e, const rsy__case_file *plan, int k,
                             char (*paths)[RSY_PATH_MAX], const rsy__case_parsed *parsed);
/** 1 if file @p k needs the instance map (renumbered nnDetection labels, preview), 2 if it
 *  needs every volume (preview), else 0. */
int rsy__export_file_needs(const rsy_export *e, const rsy__case_file *plan, int k,
                           const rsy__case_parsed *parsed);
/** Make @p dst a hard link to @p src, or a copy (fsynced) where the file system refuses the
 *  link (EXDEV, EPERM, EMLINK, ENOTSUP), atomically: made under a temporary name and renamed
 *  over @p dst. @return RSY_OK, RSY_EIO (logged), RSY_ENOMEM. */
rsy_status rsy__export_link_or_copy(const char *src, const char *dst);
/** The geometry a volume of geometry @p g has once written to NIfTI and read back with
 *  rsy_volume_read_nifti(): affine entries rounded to float, spacing the column norms. */
void rsy__export_geometry_as_stored(const rsy_geometry *g, rsy_geometry *out);
/** Lesion class of a record, 0-based over the non-background labels: its main label (the
 *  non-perilesional label holding most of its voxels, ties to the lower value; else the same
 *  over the perilesional labels) minus one; 0 when it carries no label. */
int rsy__export_lesion_class(const rsy_export *e, const rsy_lesion_record *r);
/** msd/dataset.json and TaskNNN_Name/dataset.json, as the layouts ask. */
rsy_status rsy__export_write_layout_files(const rsy_export *e);
/** Build DIR/DatasetNNN_Name.h5 from the cases' files, in case-index order; @p sha receives
 *  its SHA-256. @return RSY_OK, RSY_EIO (a case's files changed or unreadable; logged),
 *  RSY_EDEP, RSY_ENOMEM. */
rsy_status rsy__export_build_hdf5(const rsy_export *e, char sha[65]);

/* ---- measure.c --------------------------------------------------------------------------- */
/** Largest value of an integer volume (uint8/int16/uint16; float32 read as its value). */
double rsy__volume_max(const rsy_volume *v);
/** Value of voxel @p idx of any dtype, as a double. */
double rsy__volume_get(const rsy_volume *v, size_t idx);

#endif /* RSY_EXPORT_INTERNAL_H */
