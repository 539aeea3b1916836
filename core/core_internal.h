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
