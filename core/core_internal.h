/*
 * core_internal.h: library-internal declarations of core/, shared by the other modules of
 * libraresynth and by the tests. Never installed.
 */
#ifndef RSY_CORE_INTERNAL_H
#define RSY_CORE_INTERNAL_H

#include <stdlib.h>

#include <gsl/gsl_rng.h>

#include "rsy_core.h"

/** Free and NULL a pointer (nifti_clib znzclose style). */
#define RSY_FREE(p) \
    do {            \
        free(p);    \
        (p) = NULL; \
    } while (0)

/** The gsl_rng behind @p r, for gsl_ran_* distributions. Borrowed: valid while r lives. */
gsl_rng *rsy__rng_gsl(rsy_rng *r);

/** Serialise calls into nifti_clib, which keeps global options (reference/formats.md). */
void rsy__nifti_lock(void);
void rsy__nifti_unlock(void);

/** Largest voxel data a NIfTI-1 header may declare before anything is allocated: the volume
 *  (at most 4 bytes a voxel) plus the raw voxels, counted as raw bytes + 4 bytes a voxel. 4 GiB,
 *  four times the largest recipe's float32 volume. */
#define RSY__NIFTI_MAX_BYTES ((uint64_t)4 << 30)
/** Deflate expands at most this much (zlib FAQ, "maximum compression ratio"): a gzip stream of
 *  n bytes holds at most n · RSY__NIFTI_DEFLATE_MAX_RATIO + RSY__NIFTI_SLACK_BYTES bytes, the
 *  slack covering the gzip and NIfTI headers. */
#define RSY__NIFTI_DEFLATE_MAX_RATIO 1032
#define RSY__NIFTI_SLACK_BYTES 4096

/** What a NIfTI-1 header declares, against what its file can hold (rsy__nifti_check_extent;
 *  rsy_volume_read_nifti applies the same rule to the header it reads). */
typedef struct rsy__nifti_extent {
    int dim[8];          /* dim[0] (1..7) and dim[1..dim[0]] as declared; 0 when not read */
    int bytes_per_voxel; /* of the declared datatype (every nifti1.h type) */
    uint64_t n_voxels;   /* product of the dims, stopped once beyond RSY__NIFTI_MAX_BYTES */
    uint64_t raw_bytes;  /* n_voxels · bytes_per_voxel */
    uint64_t file_bytes; /* size of the file (UINT64_MAX: unknown, a pipe) */
    int compressed;      /* a gzip stream (else a plain .nii) */
} rsy__nifti_extent;

/** Before the NIfTI-1 file @p path is read: do the voxels its header declares fit the file
 *  (a gzip stream expands at most RSY__NIFTI_DEFLATE_MAX_RATIO:1) and RSY__NIFTI_MAX_BYTES?
 *  Reads only the 348-byte header (either byte order) and logs nothing, so the caller words
 *  the message from @p ext. A header that cannot be read or is not NIfTI-1 passes: the reader
 *  reports it.
 *  @return RSY_OK, RSY_ELIMIT (beyond RSY__NIFTI_MAX_BYTES), RSY_EFORMAT (more than the file
 *          can hold: truncated or corrupt). */
rsy_status rsy__nifti_check_extent(const char *path, rsy__nifti_extent *ext);

/** A unique temporary name "<path>.part-<pid>-<serial>" for an atomic write next to @p path
 *  (the serial is a process-wide counter, so threads never collide). Heap string owned by the
 *  caller (free()); NULL when out of memory. Remove the file or rename it over @p path. */
char *rsy__file_temp_path(const char *path);

/** 1 if @p s is a safe name: 1..max_len characters from [A-Za-z0-9_-] (no '/', no '.', so a
 *  path made from it never leaves its directory), else 0. */
int rsy__name_ok(const char *s, size_t max_len);

/** World-space (mm) bounding box of the voxel centres of @p g. */
void rsy__geometry_world_bounds(const rsy_geometry *g, double lo[3], double hi[3]);

/** fsync a file or directory by path (a directory: its entries, i.e. completed renames).
 *  @return RSY_OK, or RSY_EIO with errno set. A filesystem that cannot sync directories
 *  (EINVAL) counts as success. */
rsy_status rsy__fsync_path(const char *path);

#endif /* RSY_CORE_INTERNAL_H */
