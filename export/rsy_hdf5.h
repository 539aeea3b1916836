/*
 * rsy_hdf5.h: the HDF5 dataset writer (issue 6, "HDF5 export"): one file per dataset, a group
 * per case. docs/hdf5.md documents the layout, every attribute and the index order.
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
 * cases are added in increasing case index.
 *
 * Declarations to be folded into rsy_export.h; the header needs only rsy_export.h.
 */
#ifndef RSY_HDF5_H
#define RSY_HDF5_H

#include "rsy_export.h"

#ifdef __cplusplus
extern "C" {
#endif

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
    const char *path;          /* the file to make, e.g. "DIR/raresynth.h5" */
    const char *dataset_name;  /* recipe name */
    const char *recipe_sha256; /* SHA-256 of the recipe file (rsy_recipe.sha256) */
    uint64_t dataset_seed;     /* stored as a decimal string */
    const char *modality;      /* "mri" or "ct" (rsy_recipe.modality) */
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

#ifdef __cplusplus
}
#endif
#endif /* RSY_HDF5_H */
