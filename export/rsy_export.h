/*
 * rsy_export.h: datasets on disk. Lesion measurement from voxels, the nnU-Net v2 layout,
 * per-case and dataset manifests (JSON), BIDS-style dataset_description.json, checksums, and
 * `validate`, which re-reads a dataset and says exactly what is wrong.
 *
 * Output directory (DESIGN.md section 11; docs/manifest.md section 1):
 *   DIR/.raresynth                 marker: this directory is a raresynth dataset
 *   DIR/raresynth.json             dataset manifest, written last (its presence = complete);
 *                                  in a shard directory, the shard manifest
 *   DIR/dataset_description.json   BIDS-style provenance
 *   DIR/manifests/case_0000.json   per case
 *   DIR/instances/case_0000.nii.gz instance map (0 background, 1..N lesions)
 *   DIR/DatasetNNN_Name/{dataset.json, imagesTr/case_0000_0000.nii.gz, labelsTr/case_0000.nii.gz}
 *                                  nnU-Net v2: always written, the store the other layouts
 *                                  link to
 *   DIR/msd/{dataset.json, imagesTr/, labelsTr/}             RSY_LAYOUT_MSD (hard links)
 *   DIR/TaskNNN_Name/{dataset.json, raw_splitted/imagesTr/, raw_splitted/labelsTr/}
 *                                  RSY_LAYOUT_NNDET (image links; renumbered instance maps
 *                                  and {case}.json)
 *   DIR/previews/case_0000.png     with params.preview
 *   DIR/DatasetNNN_Name.h5         RSY_FORMAT_HDF5, built by finish from the cases' files
 *   DIR/.staging/case_0000/        a case's files while it is being written (never read)
 * Every file is written under a temporary name, made durable (fsync) and renamed when
 * complete; a case's files in every layout are renamed into place only once all of them are
 * written, the manifest last, so a failed case leaves no file.
 *
 * Resume and merge (one path for both): rsy_export_begin() on the existing directory (not
 * rsy_export_prepare_dir(), which refuses a non-empty one) with the run's parameters;
 * resume: rsy_export_remove_temporaries(), then rsy_export_adopt_case() for each case whose
 * manifest is there (rsy_export_case_file(), last file) and rsy_export_write_case() for the
 * cases it refuses or that are missing; merge: rsy_export_import_case() for each case from
 * the shard that holds it; then rsy_export_finish(): its files are byte-identical to an
 * uninterrupted run's.
 * Shards: with shard_count >= 2 a directory holds the cases i % shard_count == shard_index
 * and finish writes only the shard manifest (docs/manifest.md section 5); the recipe to merge
 * with is embedded in it ("recipe": {"content"}).
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
    unsigned layouts;    /* RSY_LAYOUT_* bits; 0 = RSY_LAYOUT_NNUNET @since 0.4 */
    unsigned formats;    /* RSY_FORMAT_* bits; NIfTI is always written @since 0.4 */
    int preview;         /* 1: DIR/previews/case_NNNN.png per case, staged with it @since 0.4 */
    int64_t shard_index; /* with shard_count >= 2: this directory holds the cases i with
                            i % shard_count == shard_index, and finish writes a shard
                            manifest instead of the dataset files @since 0.4 */
    int64_t shard_count; /* 0 or 1: no sharding @since 0.4 */
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
 * Write one case: its images, label map, instance map (NIfTI), measured lesion records, the
 * files of the other layouts asked (links, nnDetection label map and JSON), its preview when
 * asked, and its manifest. All of them are first written to DIR/.staging/<case>/ and fsynced,
 * then renamed into place (manifest last) and the destination folders fsynced. On any failure
 * every file of the case is removed (staged and final) and the case counts as not written.
 * Safe to call from several threads at once for different cases; the result does not depend
 * on the order of calls or the thread count.
 * @return RSY_OK, RSY_EINVAL (bad case; a case index not in this shard), RSY_EIO (logged with
 *         the path), RSY_ENOMEM, or the preview's RSY_ELIMIT / RSY_EDEP.
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_write_case(rsy_export *e, const rsy_case_data *c);
/** Write the dataset-level files (nnU-Net dataset.json, msd/dataset.json and
 *  TaskNNN_Name/dataset.json as the layouts ask, DatasetNNN_Name.h5 with RSY_FORMAT_HDF5,
 *  dataset_description.json, and last raresynth.json with checksums, provenance and summary
 *  statistics), each fsynced before its rename; the dataset folder is fsynced before and after
 *  raresynth.json. In a shard (shard_count >= 2) only the shard manifest raresynth.json is
 *  written. Every case the directory holds must have been written or adopted; the output
 *  depends only on the cases' files, not on how they got there.
 *  @return RSY_OK, RSY_EINVAL (cases missing), RSY_EIO, RSY_EDEP (HDF5), RSY_ENOMEM. */
RSY_API RSY_NODISCARD rsy_status rsy_export_finish(rsy_export *e);
/**
 * Register case @p index as already complete in the output directory (resume, merge): its
 * per-case manifest is read and checked to be this dataset's (case id and index, generator
 * version, dataset seed, labels, the file paths this writer gives the case), every file it
 * lists is checked against its SHA-256, and its records join the dataset files that finish
 * writes, as if rsy_export_write_case() had written it. Files of other layouts and the
 * preview are (re)made from the nnU-Net files when missing or not what they would be (a link
 * elsewhere, a different nnDetection JSON; a renumbered nnDetection label map is always
 * remade). A leftover DIR/.staging/<case>/ is removed. Safe to call from several threads at
 * once for different cases.
 * @return RSY_OK; RSY_EINVAL (index out of range or not in this shard); RSY_EIO when the
 *         case is incomplete, its manifest is not this dataset's, or a checksum differs (one
 *         line logged naming the file; the caller then regenerates the case with
 *         rsy_export_write_case(), which replaces every file of it), RSY_ENOMEM; the
 *         preview's status when it had to be remade.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_adopt_case(rsy_export *e, size_t index);
/**
 * The number of files rsy_export_write_case() makes per case with @p e's layouts and
 * options (the same for every case), or 0 for NULL.
 * @since 0.4
 */
RSY_API int rsy_export_case_file_count(const rsy_export *e);
/**
 * The path, relative to the dataset directory, of file @p k (0 <= k <
 * rsy_export_case_file_count()) of case @p index, in the order write_case renames them into
 * place: nnU-Net images (channel order), nnU-Net label map, instance map, MSD images and
 * label map, nnDetection images, label map and JSON, preview, and last the per-case manifest.
 * Merge links these from a shard directory (a missing derived file is remade by
 * rsy_export_adopt_case()); resume can test the last one for a finished case.
 * @return RSY_OK, RSY_EINVAL (bad argument, @p k or @p index out of range, @p n too small).
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_case_file(const rsy_export *e, size_t index, int k,
                                                      char *buf, size_t n);
/**
 * Bring case @p index from the dataset or shard directory @p src_dir into @p e's directory
 * and adopt it (merge): every file of the case (rsy_export_case_file()) is hard-linked from
 * @p src_dir, or copied where the file system refuses a link, each atomically and the
 * per-case manifest last; a derived file missing in @p src_dir (a link, the nnDetection
 * files, the preview) is skipped and remade by rsy_export_adopt_case(), which then checks the
 * case as for resume. Nothing in @p src_dir is changed (no file of a dataset is ever written
 * in place, so a shared inode is never modified).
 * @return RSY_OK; RSY_EINVAL (bad argument, index not held by @p e); RSY_EIO (a file of the
 *         case missing in @p src_dir, or not what its manifest lists; one line logged naming
 *         it), RSY_ENOMEM; as rsy_export_adopt_case().
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_import_case(rsy_export *e, const char *src_dir,
                                                        size_t index);
/**
 * Remove what an interrupted run left that is no part of the dataset (resume): the temporary
 * files of atomic writes ("<file>.part-<pid>-<n>") in the dataset's folders, and every
 * folder in DIR/.staging. Files of cases are left alone: a case without its manifest is
 * replaced by rsy_export_write_case(). Call after rsy_export_begin(), before adopting.
 * @return RSY_OK, RSY_EINVAL (NULL), RSY_EIO (a file could not be removed; logged).
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_remove_temporaries(rsy_export *e);
RSY_API void rsy_export_destroy(rsy_export *e);

/** The nnU-Net folder name, "DatasetNNN_Name". */
RSY_API void rsy_export_nnunet_dirname(const rsy_recipe *r, char *buf, size_t n);
/** The case id of case @p index, "case_0000". */
RSY_API void rsy_export_case_id(size_t index, char *buf, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Previews (docs/previews.md)                                                                */
/* ---------------------------------------------------------------------------------------- */
/*
 * Slice previews of a case as one PNG. For each lesion of a case (or the volume centre when it
 * has none), the axial, coronal and sagittal slices through the lesion's centroid, for every
 * image channel, each without and with a label overlay, laid out as a grid. Windowing per
 * modality (CT presets in HU, MRI percentiles), square pixels whatever the voxel spacing,
 * radiological orientation, and deterministic bytes written atomically.
 */
/** What the image channels hold: CT in HU (int16 or float32), MRI in arbitrary units. */
typedef enum { RSY_PREVIEW_MRI = 0, RSY_PREVIEW_CT = 1 } rsy_preview_modality;

/**
 * Grey-level window. The CT presets are width/level pairs in HU (docs/previews.md, (GK)):
 * lung W1500 L-600, soft tissue W400 L40, brain W80 L40, bone W2000 L300.
 */
typedef enum {
    RSY_PREVIEW_WINDOW_AUTO = 0,    /* CT: soft tissue; MRI: percentiles */
    RSY_PREVIEW_WINDOW_CT_LUNG = 1, /* CT only */
    RSY_PREVIEW_WINDOW_CT_SOFT_TISSUE = 2,
    RSY_PREVIEW_WINDOW_CT_BRAIN = 3,
    RSY_PREVIEW_WINDOW_CT_BONE = 4,
    RSY_PREVIEW_WINDOW_PERCENTILE = 5, /* per channel: percentiles of the foreground voxels */
    RSY_PREVIEW_WINDOW_MANUAL = 6      /* window_width / window_level, image units */
} rsy_preview_window;

/** The volumes of one case, all borrowed and never stored. Every volume has the geometry of
 *  channels[0] (rsy_geometry_equal). */
typedef struct rsy_preview_input {
    rsy_preview_modality modality;
    const rsy_volume *const *channels; /* n_channels >= 1 images: float32, int16 or uint16/8 */
    int n_channels;
    const rsy_volume *labels;     /* uint8 or uint16 label map (0 = no label); required */
    const rsy_volume *instances;  /* uint8 or uint16 instance map (0 = none, 1..N lesions), or
                                     NULL: no lesion, the volume centre is shown */
    const rsy_volume *foreground; /* any integer dtype, non-zero = inside the subject: the
                                     voxels the percentile window is computed on; NULL = each
                                     channel's Otsu threshold (docs/previews.md) */
} rsy_preview_input;

/** How a preview is drawn. Start from rsy_preview_params_default(). */
typedef struct rsy_preview_params {
    rsy_preview_window window;
    double window_width, window_level;   /* RSY_PREVIEW_WINDOW_MANUAL only; width > 0 */
    double percentile_lo, percentile_hi; /* RSY_PREVIEW_WINDOW_PERCENTILE (and MRI AUTO);
                                            0 <= lo < hi <= 100 */
    double pixel_mm;       /* output pixel size; 0 = the finest voxel spacing of the volume */
    int max_lesions;       /* lesions shown (lowest instance ids first), >= 1 */
    double contour_alpha;  /* opacity of the 1-pixel label contour, [0, 1] */
    double fill_alpha;     /* opacity of the label fill inside the contour, [0, 1] */
    int gap_px;            /* grey separator between tiles, >= 0 */
    int compression_level; /* zlib level 0..9; fixed, so the bytes are reproducible */
} rsy_preview_params;

/** Defaults: window AUTO, percentiles 1 and 99, pixel_mm 0 (finest spacing), 8 lesions,
 *  opaque contour (alpha 1) and no fill, 2-pixel gaps, compression level 6. @since 0.4 */
RSY_API rsy_preview_params rsy_preview_params_default(void);

/**
 * Width and level (HU) of the CT preset @p w.
 * @return RSY_OK, RSY_EINVAL (@p w is not a CT preset or an argument is NULL). @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_preview_ct_window(rsy_preview_window w, double *width,
                                                              double *level);

/**
 * The grey-level range [@p lo, @p hi] used for channel @p channel of @p in: lo maps to black,
 * hi to white, linearly between (docs/previews.md). A CT preset or MANUAL gives
 * level ∓ width/2; the percentile window gives the percentiles (linear interpolation between
 * order statistics) of the channel's finite values on the foreground voxels.
 * @return RSY_OK, RSY_EINVAL (bad input or parameters, a CT preset for MRI; logged),
 *         RSY_ENOMEM. @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_preview_window_range(const rsy_preview_input *in,
                                                                 int channel,
                                                                 const rsy_preview_params *p,
                                                                 double *lo, double *hi);

/**
 * The overlay colour of label value @p label (>= 1): a fixed table of 12 saturated colours,
 * then hues spaced by the golden ratio. Never grey (r, g, b never all equal). @since 0.4
 */
RSY_API void rsy_export_preview_label_colour(int label, unsigned char rgb[3]);

/**
 * Render the preview of @p in and write it to @p path as an 8-bit RGB PNG: written in memory,
 * then atomically (rsy_file_write_atomic: temporary name, fsync, rename). The PNG has no
 * timestamp or text chunk, so equal inputs give byte-identical files. @p p may be NULL
 * (defaults). On failure no file is left at @p path or beside it.
 * @return RSY_OK, RSY_EINVAL (NULL argument, geometry or dtype mismatch, bad parameters;
 *         logged), RSY_ELIMIT (the image would exceed 32768 pixels on a side or 2^28 pixels),
 *         RSY_ENOMEM, RSY_EDEP (libpng failed; logged), RSY_EIO (logged with the path).
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_preview_write(const rsy_preview_input *in,
                                                          const rsy_preview_params *p,
                                                          const char *path);

/* ---------------------------------------------------------------------------------------- */
/* HDF5 (docs/hdf5.md)                                                                        */
/* ---------------------------------------------------------------------------------------- */
/*
 * The HDF5 dataset writer: one file per dataset, a group per case. docs/hdf5.md documents the
 * layout, every attribute and the index order.
 *
 *   /                       root attributes: generator, version, dataset name, recipe hash,
 *                           modality, channel and label names, a no-patient-data statement
 *   /cases/<case_id>/       attributes: spacing_mm, affine (voxel (i,j,k) -> RAS+ mm), ...
 *       image               (C, Z, Y, X) = (channel, k, j, i): float32 or int16 HU
 *       label               (Z, Y, X) uint8/uint16 class ids
 *       instances           (Z, Y, X) uint16 instance ids (0 background, 1..N lesions)
 *       lesions             compound table, one row per lesion with voxels
 *
 * The voxel buffers of rsy_volume (x fastest, then y, then z) are the C-order arrays h5py
 * returns as (Z, Y, X): no transposition happens on either side. image[c, k, j, i] is the
 * value NIfTI (nibabel) reads as img[i, j, k] of channel c.
 *
 * The file is written under a temporary name beside the target and renamed into place only
 * by rsy_export_hdf5_close(); no timestamps are stored, so equal inputs give byte-identical
 * files. HDF5 is serialised by a global lock: a writer is used by one thread at a time, and
 * cases are added in increasing case index. With RSY_FORMAT_HDF5, rsy_export_finish() builds
 * DIR/DatasetNNN_Name.h5 with this writer from the cases' files.
 */
/** Default deflate level (0 = no compression, 1 fastest .. 9 smallest). @since 0.4 */
#define RSY_EXPORT_HDF5_LEVEL_DEFAULT 4
/** Largest chunk edge in voxels: a chunk holds at most 64³ voxels, 1 MiB of float32, the
 *  size of HDF5's default chunk cache (reference/formats.md). @since 0.4 */
#define RSY_EXPORT_HDF5_CHUNK_EDGE 64

/** An HDF5 dataset file being written. Opaque. @since 0.4 */
typedef struct rsy_export_hdf5 rsy_export_hdf5;

/** What the writer records at the file's root. Every pointer is borrowed during
 *  rsy_export_hdf5_create() only (the strings are copied). @since 0.4 */
typedef struct rsy_export_hdf5_params {
    const char *path;                 /* the file to make, e.g. "DIR/raresynth.h5" */
    const char *dataset_name;         /* recipe name */
    const char *recipe_sha256;        /* SHA-256 of the recipe file (rsy_recipe.sha256) */
    uint64_t dataset_seed;            /* stored as a decimal string */
    const char *modality;             /* "mri" or "ct" (rsy_recipe.modality) */
    const char *const *channel_names; /* n_channels, e.g. rsy_recipe_channel_name() */
    int n_channels;
    const char *const *label_names; /* label value i is named label_names[i]; [0] "background" */
    int n_labels;                   /* 1..RSY_MAX_LABELS */
    const unsigned char *label_perilesional; /* n_labels flags (1 = perilesional) or NULL */
    int deflate_level;                       /* 0..9; 0 stores chunks uncompressed */
} rsy_export_hdf5_params;

/** Parameters with every pointer NULL, counts 0, seed 0 and deflate_level
 *  RSY_EXPORT_HDF5_LEVEL_DEFAULT. @since 0.4 */
RSY_API rsy_export_hdf5_params rsy_export_hdf5_params_default(void);

/**
 * Start the file @p p->path: create it under a temporary name in the same directory
 * ("<path>.part-<pid>-<n>") and write the root attributes. An existing file at @p p->path is
 * left untouched until rsy_export_hdf5_close() replaces it.
 * On success @p *out is owned by the caller; release it with rsy_export_hdf5_close() (keep
 * the file) or rsy_export_hdf5_abort() (discard it). On failure @p *out is NULL and no file is
 * left.
 * @return RSY_OK, RSY_EINVAL (missing or inconsistent parameter, label names not unique or
 *         [0] not "background"), RSY_EIO (the directory is missing or not writable, the disk
 *         is full; logged with the path and the system's reason), RSY_EDEP (HDF5 failed, or
 *         its deflate/shuffle filters are missing), RSY_ENOMEM.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_hdf5_create(rsy_export_hdf5 **out,
                                                        const rsy_export_hdf5_params *p);

/**
 * Add one case as /cases/<case_id> (case_id from rsy_export_case_id()). @p c gives the
 * volumes (channels, labels, instances of equal geometry; channels all float32 or all int16;
 * labels uint8 or uint16 with values < n_labels; instances uint16 with ids <= c->n_lesions)
 * and the lesion descriptions; @p records[i] is the measured record of instance i+1
 * (rsy_export_measure_lesions(), as the NIfTI writer makes them), c->n_lesions of them
 * (NULL when there is none). Records with voxel_count 0 are left out of the lesion table, as
 * they are left out of the manifest. Nothing is measured again here.
 * Cases must come in strictly increasing case index (gaps allowed, e.g. for a shard).
 * Borrowed: @p c and @p records are not kept.
 * @return RSY_OK; RSY_EINVAL (inconsistent case, or a case index not above the previous one;
 *         nothing is written and the writer stays usable); RSY_EIO (disk full, write error),
 *         RSY_EDEP (HDF5 failed) or RSY_ENOMEM once writing began: then the writer is failed,
 *         and every later call returns the same status; rsy_export_hdf5_close() or _abort()
 *         removes the temporary file.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_hdf5_add_case(rsy_export_hdf5 *w,
                                                          const rsy_case_data *c,
                                                          const rsy_lesion_record *records);

/**
 * Finish the file: write the root attributes n_cases and case_ids, close it, fsync it, rename
 * it over the target and fsync the directory. If @p sha256 is not NULL it receives the SHA-256
 * of the file's bytes (64 hex digits and a NUL; an extra read of the file). @p w is released
 * in every case (NULL: RSY_EINVAL). On failure the temporary file is removed and the target
 * is untouched.
 * @return RSY_OK, RSY_EIO (disk full, fsync or rename failed; logged with the path),
 *         RSY_EDEP, RSY_ENOMEM, or the status of an earlier failed rsy_export_hdf5_add_case().
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_hdf5_close(rsy_export_hdf5 *w, char sha256[65]);

/** Discard the file being written: close it, remove the temporary file and release @p w.
 *  The target path is never touched. NULL is a no-op. @since 0.4 */
RSY_API void rsy_export_hdf5_abort(rsy_export_hdf5 *w);

/* ---------------------------------------------------------------------------------------- */
/* Validation                                                                                 */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_validate_report {
    int64_t cases_checked;
    int64_t files_checked;
    int64_t problems; /* each one logged at RSY_LOG_ERROR as "PATH: what is wrong" */
    int complete;     /* 1 = a finished, unsharded dataset; 0 = a shard or an interrupted run */
} rsy_validate_report;

/**
 * Re-read the dataset in @p dir and check it, reporting every problem and never stopping at
 * the first (docs/validate.md lists each check, its message and the fix): the nnU-Net
 * checklist of reference/formats.md (layout, dataset.json keys and counts, channels per case,
 * equal shapes and affines, label values declared and consecutive, no NaN), the NIfTI header
 * rules (qform = sform code 1, mm units, label intent 1002, de-identified header, no
 * extensions), the SHA-256 checksums, the manifests (lesion records recomputed from the voxels
 * with each manifest's perilesional flags) and raresynth.json against the cases (lesion counts,
 * summary statistics, channels, labels, case count, outputs); the MSD / MONAI (msd/) and
 * nnDetection (TaskNNN_Name/) layouts when present (dataset.json, boxes, instance maps, files
 * byte-identical to nnU-Net's); the HDF5 file, opened only when its SHA-256 matches the one
 * raresynth.json records (root and case attributes, every voxel against the NIfTI files); the
 * previews (PNG signature, IHDR, IEND). A shard directory (generate --shard K/N) must hold
 * exactly the cases of its index; a consistent shard has no problem. An interrupted run (no
 * raresynth.json) is one problem, logged with whether every case present is complete and
 * consistent; its partial files are logged as warnings, not counted.
 * Never writes: files are opened read-only, a path only when it resolves inside @p dir, and
 * NIfTI dims and JSON size and depth are bounded before anything is allocated. @p rep may be
 * NULL; it is zeroed first.
 * @return RSY_OK if no problem, RSY_EINVALID_DATASET if problems were found (each logged),
 *         RSY_EIO if @p dir cannot be read, RSY_EINVAL (@p dir NULL), RSY_ENOMEM.
 * @since 0.1 (layouts, HDF5, previews, shards and interrupted runs: 0.4)
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_validate(const char *dir, rsy_validate_report *rep);

/* ======================================================================================== */
/* Resume, shards and merge (export/merge.c; owned by the run/CLI side, issue 6)             */
/* ======================================================================================== */
/** Run state of an output directory: DIR/.raresynth-run.json, written when a run starts and
 *  kept. It records what the files depend on (raresynth version, recipe SHA-256 and name,
 *  the SHA-256 of every configuration file the recipe loaded, seed, case count, layouts,
 *  formats, preview, shard) and nothing that varies between equal runs (no time, no thread
 *  count, no path), so a run, a resumed run and a merge write the same bytes. The run state of
 *  a shard directory (shard_count >= 1, so "--shard 0/1" too) also records the shard and the
 *  recipe's absolute path, for `merge`. @since 0.4 */
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

/** What a shard directory's run state says (rsy_export_shard_info()). An unsharded dataset
 *  reads as shard 0 of 1 with no recipe path. @since 0.4 */
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
 * Merge shard directories into the dataset a single run of @p p makes (p->out_dir;
 * p->shard_count must be 0), byte-identical to it. Before p->out_dir is touched, every
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
