/*
 * rsy_export.h: datasets on disk. Lesion measurement from voxels, the nnU-Net v2 layout,
 * per-case and dataset manifests (JSON), BIDS-style dataset_description.json, checksums, and
 * `validate`, which re-reads a dataset and says exactly what is wrong.
 *
 * Output directory (DESIGN.md section 11):
 *   DIR/.raresynth                 marker: this directory is a raresynth dataset
 *   DIR/raresynth.json             dataset manifest, written last (its presence = complete)
 *   DIR/dataset_description.json   BIDS-style provenance
 *   DIR/manifests/case_0000.json   per case
 *   DIR/instances/case_0000.nii.gz instance map (0 background, 1..N lesions)
 *   DIR/DatasetNNN_Name/{dataset.json, imagesTr/case_0000_0000.nii.gz, labelsTr/case_0000.nii.gz}
 *   DIR/.staging/case_0000/        a case's files while it is being written (never read)
 * Every file is written under a temporary name, made durable (fsync) and renamed when
 * complete; a case's files are renamed into place only once all of them are written, the
 * manifest last, so a failed case leaves no file.
 *
 * export never calls the generator; the generator hands it finished volumes and plain
 * descriptions (rsy_case_data).
 */
#ifndef RSY_EXPORT_H
#define RSY_EXPORT_H

#include "rsy_config.h"
#include "rsy_core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RSY_MAX_LABELS 64

/* ---------------------------------------------------------------------------------------- */
/* Lesion records (reference/formats.md, "Lesion records"), measured from the voxels          */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_lesion_record {
    int instance_id;
    /* Whole lesion: every voxel of the instance, all compartments (perilesional ones such as
       oedema included). */
    int64_t voxel_count;
    double volume_mm3;
    /* Mass: the voxels of the instance whose label is not flagged perilesional. */
    int64_t mass_voxel_count;
    double mass_volume_mm3;
    double centroid_vox[3]; /* whole lesion */
    double centroid_mm[3];  /* whole lesion, world RAS+ mm */
    int64_t bbox_min[3];    /* whole lesion, voxel indices, inclusive */
    int64_t bbox_max[3];
    double box_cccwhd_mm[6]; /* whole lesion: centre (world RAS+ mm) and full extent (mm) of
                                the voxel box, voxel edges included: MONAI "cccwhd" */
    /* RECIST axes and key slice: measured on the mass voxels (on the whole lesion when it has
       no mass voxel), between voxel centres (docs/manifest.md section 4). */
    double long_axis_mm;                  /* longest in-plane diameter over all axial slices */
    double short_axis_mm;                 /* longest chord perpendicular to it on the key slice */
    int64_t key_slice;                    /* axial slice (k) of the long axis */
    int64_t slice_min, slice_max;         /* whole lesion */
    double equivalent_diameter_mm;        /* whole lesion: diameter of the sphere of equal volume */
    int64_t label_voxels[RSY_MAX_LABELS]; /* whole lesion: voxels per output label value */
} rsy_lesion_record;

/**
 * Measure instances 1..@p n_instances of @p instances (uint16) with the labels of @p labels
 * (uint8 or uint16, same geometry; label values >= RSY_MAX_LABELS are not counted per label
 * and belong to the mass). @p perilesional holds RSY_MAX_LABELS flags (1 = the label value is a
 * perilesional compartment, e.g. oedema, left out of the mass and so of the RECIST axes), or
 * is NULL (every voxel is mass). @p records[i] describes instance i+1; an instance with no
 * voxel gets voxel_count 0. The definitions are those of docs/manifest.md section 4.
 * @return RSY_OK, RSY_EINVAL (geometry or dtype mismatch), RSY_ENOMEM.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_measure_lesions(const rsy_volume *instances,
                                                            const rsy_volume *labels,
                                                            int n_instances,
                                                            const unsigned char *perilesional,
                                                            rsy_lesion_record *records);

/* ---------------------------------------------------------------------------------------- */
/* What the generator hands over for one case                                                */
/* ---------------------------------------------------------------------------------------- */
typedef enum { RSY_KV_NUMBER = 0, RSY_KV_STRING = 1 } rsy_kv_type;

/** A named value for manifests (subject attributes, sampled lesion parameters). */
typedef struct rsy_kv {
    const char *key;
    rsy_kv_type type;
    double number;
    const char *string;
} rsy_kv;

/** One lesion's description beside its voxels. */
typedef struct rsy_lesion_info {
    int instance_id;          /* 1..N; matches the instance map */
    const char *type;         /* prior name, e.g. "glioblastoma" */
    const char *display_name; /* "Glioblastoma" */
    const char *host;         /* host tissue at the centre, e.g. "white_matter" */
    const char *region;       /* "right frontal lobe" */
    const rsy_kv *params;     /* sampled parameters */
    int n_params;
} rsy_lesion_info;

typedef struct rsy_case_data {
    size_t case_index;
    const rsy_volume *const *channels; /* n_channels images, recipe order: float32 (MRI) or
                                          int16 HU (CT) */
    int n_channels;
    const rsy_volume *labels;       /* uint8 output label map (values of the dictionary) */
    const rsy_volume *instances;    /* uint16 instance map */
    const rsy_lesion_info *lesions; /* n_lesions, instance ids 1..n_lesions */
    int n_lesions;
    const rsy_kv *subject; /* subject attributes */
    int n_subject;
    const rsy_kv *acquisition; /* per-case acquisition facts (e.g. noise σ per channel) */
    int n_acquisition;
    const char *findings; /* findings text */
} rsy_case_data;

/* ---------------------------------------------------------------------------------------- */
/* Dataset writer                                                                             */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_export rsy_export;

typedef struct rsy_export_params {
    const rsy_recipe *recipe; /* borrowed for the writer's lifetime */
    const char *out_dir;
    const char *const *label_names; /* label value i has name label_names[i]; [0] = "background" */
    int n_labels;
    const char *texture_note;                /* how tissue texture was made, for the manifest */
    const unsigned char *label_perilesional; /* n_labels flags: 1 = a perilesional compartment
                                                (e.g. oedema) left out of the RECIST
                                                measurement; NULL = none */
    unsigned layouts;      /* RSY_LAYOUT_* bits; 0 = RSY_LAYOUT_NNUNET @since 0.4 */
    unsigned formats;      /* RSY_FORMAT_* bits; NIfTI is always written @since 0.4 */
    int preview;           /* 1: DIR/previews/case_NNNN.png per case, staged with it @since 0.4 */
    int64_t shard_index;   /* with shard_count >= 2: this directory holds the cases i with
                              i % shard_count == shard_index, and finish writes a shard
                              manifest instead of the dataset files @since 0.4 */
    int64_t shard_count;   /* 0 or 1: no sharding @since 0.4 */
} rsy_export_params;

#define RSY_LAYOUT_NNUNET 1u /* DIR/DatasetNNN_Name (nnU-Net v2) @since 0.4 */
#define RSY_LAYOUT_MSD 2u    /* DIR/msd (Medical Segmentation Decathlon / MONAI) @since 0.4 */
#define RSY_LAYOUT_NNDET 4u  /* DIR/TaskNNN_Name (nnDetection) @since 0.4 */
#define RSY_FORMAT_NIFTI 1u  /* @since 0.4 */
#define RSY_FORMAT_HDF5 2u   /* DIR/DatasetNNN_Name.h5, built by finish @since 0.4 */

/**
 * Prepare @p dir for a new dataset: create it if missing; if it exists and is not empty,
 * refuse (RSY_EIO, logged: "DIR: output directory is not empty (use --force)") unless
 * @p force, in which case its contents are removed only if it holds the ".raresynth" marker
 * of an earlier run (otherwise refuse: we never delete a directory we did not make).
 * Writes the marker.
 * @return RSY_OK, RSY_EIO.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_prepare_dir(const char *dir, int force);

/** Start a dataset in a prepared directory: check the parameters, hash the recipe's prior and
 *  tissue-table files (SHA-256, for the dataset manifest) and create the folders. On success
 *  @p *out is owned by the caller; release with rsy_export_destroy().
 *  @return RSY_OK, RSY_EINVAL (bad recipe, labels or flags; a prior or the tissue table
 *  without a file path), RSY_EIO (a file cannot be hashed, a folder not made), RSY_ENOMEM. */
RSY_API RSY_NODISCARD rsy_status rsy_export_begin(rsy_export **out, const rsy_export_params *p);
/**
 * Write one case: its images, label map, instance map (NIfTI), measured lesion records and
 * its manifest. All of them are first written to DIR/.staging/<case>/ and fsynced, then
 * renamed into place (manifest last) and the destination folders fsynced. On any failure
 * every file of the case is removed (staged and final) and the case counts as not written.
 * Safe to call from several threads at once for different cases; the result does not depend
 * on the order of calls or the thread count.
 * @return RSY_OK, RSY_EINVAL, RSY_EIO (logged with the path), RSY_ENOMEM.
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_write_case(rsy_export *e, const rsy_case_data *c);
/** Write the dataset-level files (nnU-Net dataset.json, dataset_description.json, and last
 *  raresynth.json with checksums, provenance and summary statistics), each fsynced before its
 *  rename; the dataset folder is fsynced before and after raresynth.json. Every case must
 *  have been written. @return RSY_OK, RSY_EINVAL (cases missing), RSY_EIO, RSY_ENOMEM. */
RSY_API RSY_NODISCARD rsy_status rsy_export_finish(rsy_export *e);
/**
 * Register case @p index as already complete in the output directory (resume, merge): its
 * per-case manifest is read, every file it lists is checked against its SHA-256, and its
 * records join the dataset files that finish writes, as if rsy_export_write_case() had
 * written it. Files of other layouts and the preview are (re)made from the nnU-Net files if
 * missing.
 * @return RSY_OK; RSY_EIO when the case is incomplete or a checksum differs
 *         (logged naming the file; the caller then regenerates the case), RSY_ENOMEM.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_adopt_case(rsy_export *e, size_t index);
RSY_API void rsy_export_destroy(rsy_export *e);

/** The nnU-Net folder name, "DatasetNNN_Name". */
RSY_API void rsy_export_nnunet_dirname(const rsy_recipe *r, char *buf, size_t n);
/** The case id of case @p index, "case_0000". */
RSY_API void rsy_export_case_id(size_t index, char *buf, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Validation                                                                                 */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_validate_report {
    int64_t cases_checked;
    int64_t files_checked;
    int64_t problems; /* each one logged at RSY_LOG_ERROR as "PATH: what is wrong" */
    int complete;     /* 1 if raresynth.json is present */
} rsy_validate_report;

/**
 * Re-read the dataset in @p dir and check it: the nnU-Net checklist of reference/formats.md
 * (layout, dataset.json keys and counts, channels per case, equal shapes and affines, label
 * values declared and consecutive, no NaN), the NIfTI header rules (qform = sform code 1,
 * mm units, label intent 1002, de-identified header, no extensions), the SHA-256 checksums,
 * the manifests (lesion records recomputed from the voxels with each manifest's perilesional
 * flags) and raresynth.json against the cases (lesion counts, summary statistics, channels,
 * labels, case count).
 * @return RSY_OK if no problem, RSY_EINVALID_DATASET if problems were found (each logged),
 *         RSY_EIO if @p dir cannot be read, RSY_ENOMEM.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_validate(const char *dir, rsy_validate_report *rep);

/* ======================================================================================== */
/* Resume, shards and merge (export/merge.c; owned by the run/CLI side, issue 6)             */
/* ======================================================================================== */
/** Run state of an output directory: DIR/.raresynth-run.json, written when a run starts and
 *  kept. It records what the files depend on (raresynth version, recipe SHA-256 and name,
 *  the SHA-256 of every configuration file the recipe loaded, seed, case count, layouts,
 *  formats, preview, shard) and nothing that varies between equal runs (no time, no thread
 *  count, no path), so a run, a resumed run and a merge write the same bytes. A shard
 *  directory's run state also records the recipe's absolute path, for `merge`. @since 0.4 */
#define RSY_EXPORT_RUN_STATE ".raresynth-run.json"

/**
 * Write the run state of the run described by @p p (out_dir, recipe, layouts, formats,
 * preview, shard) to p->out_dir, durably and atomically.
 * @return RSY_OK, RSY_EINVAL, RSY_EIO (a configuration file cannot be hashed, the file not
 *         written; logged), RSY_ENOMEM.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_run_state_write(const rsy_export_params *p);

/**
 * Prepare p->out_dir to resume the run @p p describes. A missing or empty directory is
 * prepared as rsy_export_prepare_dir() does (@p *resumed = 0). Otherwise the directory must
 * hold the marker and a run state equal to the one @p p would write (the recipe path aside);
 * the staging folder, every temporary file ("*.part-PID-N") and raresynth.json (the mark of
 * completion, rewritten by finish) are removed and @p *resumed = 1. A directory holding only
 * the debris of a run killed before its run state was written (no case manifest, no
 * raresynth.json) is started afresh (@p *resumed = 0).
 * @return RSY_OK; RSY_ECONFIG when the run state differs (each difference logged, naming it)
 *         or is missing; RSY_EIO (not a raresynth directory, unreadable, a file that cannot be
 *         removed; logged), RSY_ENOMEM.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_resume_prepare(const rsy_export_params *p,
                                                           int *resumed);

/**
 * Remove from @p dir every file of a case that is not kept: any regular file or symbolic
 * link below @p dir whose name is a case id ("case_NNNN") followed by '.' or '_', and whose
 * case index i is >= @p n_cases or has keep[i] == 0 (the partly published files of a case a
 * resumed run regenerates). Directories and other files are left alone.
 * @return RSY_OK, RSY_EIO (logged).
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_resume_sweep(const char *dir,
                                                         const unsigned char *keep,
                                                         size_t n_cases);

/** What a shard directory's run state says (rsy_export_shard_info()). A complete unsharded
 *  dataset reads as shard 0 of 1. @since 0.4 */
typedef struct rsy_shard_info {
    char recipe_path[RSY_PATH_MAX]; /* absolute path of the recipe, "" when not recorded */
    char recipe_sha256[65];
    char version[32]; /* raresynth version that made it */
    uint64_t seed;
    int64_t cases; /* cases of the whole dataset */
    int64_t shard_index, shard_count;
    unsigned layouts, formats; /* RSY_LAYOUT_* and RSY_FORMAT_* bits */
    int preview;
} rsy_shard_info;

/**
 * Read the run state of the shard (or dataset) directory @p dir into @p out.
 * @return RSY_OK, RSY_EIO (no such directory, no run state: logged),
 *         RSY_EINVALID_DATASET (malformed run state; logged), RSY_ENOMEM.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_shard_info(const char *dir, rsy_shard_info *out);

/**
 * Merge shard directories into the dataset a single run of @p p makes (p->out_dir; p's
 * shard fields must be 0 or 1), byte-identical to it. Before p->out_dir is touched, every
 * shard is checked: its run state equals the one @p p implies (recipe, configuration files,
 * seed, version, case count, layouts, formats, preview), the shards hold indices 0..N-1 of
 * one count N each once, every shard is complete (its shard manifest, raresynth.json, lists
 * exactly its cases i % N == index, by the case ids this version makes), and every file of
 * every case exists below its shard as a regular file whose SHA-256 matches both the shard
 * manifest and the case's manifest. Then p->out_dir (new or empty) is prepared, each case's
 * files are hard-linked into place (copied when linking fails: another file system, no
 * permission), the case manifest last, each case adopted (rsy_export_adopt_case), and the
 * dataset finished. On any failure the output directory is removed again (or emptied, if it
 * existed empty) and the shards are never written to. @p n_threads (>= 1) workers check and
 * link cases; the result does not depend on it.
 * @return RSY_OK; RSY_ECONFIG (shards that do not belong together: another recipe, seed,
 *         version, count or options, an index missing or given twice); RSY_EINVALID_DATASET
 *         (a shard incomplete or damaged: a file missing or not a regular file, a checksum
 *         that differs, manifests that disagree with each other or with the files, a case id
 *         that is not one this version makes, e.g. "../x"); RSY_EIO (a shard unreadable, the
 *         output directory not empty, a write failure); RSY_EINVAL, RSY_ENOMEM. Every
 *         problem is logged naming the shard file.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_merge(const rsy_export_params *p,
                                                  const char *const *shard_dirs, size_t n_shards,
                                                  int n_threads);
/* ==================================== end of merge.c ==================================== */

#ifdef __cplusplus
}
#endif
#endif /* RSY_EXPORT_H */
