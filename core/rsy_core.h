/*
 * rsy_core.h: the base layer of raresynth.
 *
 * Status codes and messages, logging through a handler, version, volume and geometry types,
 * reproducible random streams, a thread pool, SHA-256 checksums, atomic file writes and
 * NIfTI-1 volume I/O. Every other module builds on this header; it includes no dependency's
 * header (no GSL, nifti, HDF5 or cJSON types appear here).
 *
 * The library never exits, aborts or prints on its own: details go to the log handler,
 * results come back as rsy_status.
 */
#ifndef RSY_CORE_H
#define RSY_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Export and attribute macros (htslib hts_defs.h, lz4 LZ4FLIB_API)                          */
/* ---------------------------------------------------------------------------------------- */
#if defined(__GNUC__)
#define RSY_API __attribute__((visibility("default")))
#define RSY_NODISCARD __attribute__((warn_unused_result))
#define RSY_FORMAT(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))
#else
#define RSY_API
#define RSY_NODISCARD
#define RSY_FORMAT(fmt_idx, first_arg)
#endif

/* ---------------------------------------------------------------------------------------- */
/* Version                                                                                    */
/* ---------------------------------------------------------------------------------------- */
#define RSY_VERSION_MAJOR 0
#define RSY_VERSION_MINOR 1
#define RSY_VERSION_PATCH 0
#define RSY_VERSION_NUMBER \
    (RSY_VERSION_MAJOR * 10000 + RSY_VERSION_MINOR * 100 + RSY_VERSION_PATCH)
#define RSY_VERSION_STRING "0.1.0"

/** @return the library version as "MAJOR.MINOR.PATCH" (static storage). @since 0.1 */
RSY_API const char *rsy_version(void);

/* ---------------------------------------------------------------------------------------- */
/* Status codes: one X-macro list keeps codes and messages together (lz4 LZ4F_LIST_ERRORS)   */
/* ---------------------------------------------------------------------------------------- */
#define RSY_STATUS_LIST(X)                                                  \
    X(RSY_OK, "success")                                                    \
    X(RSY_EINVAL, "invalid argument")                                       \
    X(RSY_ENOMEM, "out of memory")                                          \
    X(RSY_EIO, "I/O error")                                                 \
    X(RSY_ECONFIG, "invalid configuration")                                 \
    X(RSY_ENUMERIC, "numerical failure")                                    \
    X(RSY_EFORMAT, "malformed or unsupported file format")                  \
    X(RSY_EDEP, "error reported by a dependency (GSL/HDF5/NIfTI/cJSON)")    \
    X(RSY_ELIMIT, "resource limit exceeded")                                \
    X(RSY_ECANCELED, "interrupted")                                         \
    X(RSY_EPLACEMENT, "lesion placement rule could not be satisfied")       \
    X(RSY_EINVALID_DATASET, "dataset failed validation")

typedef enum {
#define RSY_X_ENUM(code, msg) code,
    RSY_STATUS_LIST(RSY_X_ENUM)
#undef RSY_X_ENUM
        RSY_STATUS_COUNT
} rsy_status;

/** @return a static English message for @p s; never NULL (unknown codes give "unknown status").
 *  @since 0.1 */
RSY_API const char *rsy_strerror(rsy_status s);

/**
 * Tame the dependencies once per process: GSL's abort-on-error handler off, nifti_clib's
 * debug printing off, HDF5's automatic error-stack printing off, OpenBLAS on one thread (so
 * results never depend on its thread count; this applies to the whole process). Safe to call
 * repeatedly and from several threads (the first call does the work).
 * @return RSY_OK. @since 0.1
 */
RSY_API rsy_status rsy_init(void);

/* ---------------------------------------------------------------------------------------- */
/* Logging (htslib hts_log.h): levelled, tagged with the calling function, redirectable      */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    RSY_LOG_OFF = 0,
    RSY_LOG_ERROR = 1,
    RSY_LOG_WARNING = 2,
    RSY_LOG_INFO = 3,
    RSY_LOG_DEBUG = 4
} rsy_log_level;

/** A log handler receives one complete message (no trailing newline). It may be called from
 *  several threads at once and must be thread-safe. */
typedef void (*rsy_log_handler)(rsy_log_level level, const char *func, const char *msg,
                                void *user);

/** Install @p fn (NULL restores the default, which discards everything: the library never
 *  prints on its own). @p user is passed through unchanged. @since 0.1 */
RSY_API void rsy_log_set_handler(rsy_log_handler fn, void *user);
/** Messages above @p level are dropped before formatting. Default RSY_LOG_WARNING. @since 0.1 */
RSY_API void rsy_log_set_level(rsy_log_level level);
RSY_API rsy_log_level rsy_log_get_level(void);
/** Format and deliver one message. Messages longer than 2 KiB are truncated. @since 0.1 */
RSY_API void rsy_log(rsy_log_level level, const char *func, const char *fmt, ...)
    RSY_FORMAT(3, 4);

#define rsy_log_error(...) rsy_log(RSY_LOG_ERROR, __func__, __VA_ARGS__)
#define rsy_log_warning(...) rsy_log(RSY_LOG_WARNING, __func__, __VA_ARGS__)
#define rsy_log_info(...) rsy_log(RSY_LOG_INFO, __func__, __VA_ARGS__)
#define rsy_log_debug(...) rsy_log(RSY_LOG_DEBUG, __func__, __VA_ARGS__)

/* ---------------------------------------------------------------------------------------- */
/* Geometry and volumes. Voxel order is NIfTI order: x fastest, then y, then z.               */
/* World coordinates are RAS+ millimetres (x to the subject's Right, y Anterior, z Superior). */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    RSY_DTYPE_UINT8 = 1,
    RSY_DTYPE_INT16 = 2,
    RSY_DTYPE_UINT16 = 3,
    RSY_DTYPE_FLOAT32 = 4
} rsy_dtype;

/** Size in bytes of one voxel of @p t, 0 for an unknown type. @since 0.1 */
RSY_API size_t rsy_dtype_size(rsy_dtype t);
/** Short name ("uint8", "int16", "uint16", "float32"), "unknown" otherwise. @since 0.1 */
RSY_API const char *rsy_dtype_name(rsy_dtype t);

typedef struct rsy_geometry {
    int64_t dims[3];      /* voxels along i, j, k */
    double spacing_mm[3]; /* voxel size along i, j, k, > 0 */
    double affine[4][4];  /* voxel (i,j,k,1) -> world RAS+ mm; rigid rotation x spacing */
} rsy_geometry;

/**
 * Axis-aligned RAS+ geometry centred on the world origin: voxel (i,j,k) maps to
 * x = (i - (nx-1)/2)·dx, y likewise, z likewise.
 * @return RSY_OK, or RSY_EINVAL if a dim is < 1 or a spacing is not finite and > 0.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_geometry_init(rsy_geometry *g, const int64_t dims[3],
                                                   const double spacing_mm[3]);
/** Number of voxels (product of dims). @since 0.1 */
RSY_API size_t rsy_geometry_nvox(const rsy_geometry *g);
/** Voxel (continuous index) to world mm through the affine. @since 0.1 */
RSY_API void rsy_geometry_voxel_to_world(const rsy_geometry *g, const double ijk[3],
                                         double xyz_mm[3]);
/** World mm to continuous voxel index (inverse affine). @since 0.1 */
RSY_API void rsy_geometry_world_to_voxel(const rsy_geometry *g, const double xyz_mm[3],
                                         double ijk[3]);
/** 1 if the two geometries have equal dims and spacing/affine within 1e-6 mm, else 0. */
RSY_API int rsy_geometry_equal(const rsy_geometry *a, const rsy_geometry *b);

/** A volume: geometry plus a contiguous voxel buffer of @c dtype. Plain data, not opaque. */
typedef struct rsy_volume {
    rsy_geometry geom;
    rsy_dtype dtype;
    void *data; /* rsy_geometry_nvox(&geom) * rsy_dtype_size(dtype) bytes, owned by the volume */
} rsy_volume;

/**
 * Allocate a zero-filled volume.
 * On success @p *out is owned by the caller; release with rsy_volume_destroy().
 * @return RSY_OK, RSY_EINVAL (bad geometry or dtype), RSY_ENOMEM, RSY_ELIMIT (size overflows).
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_volume_create(rsy_volume **out, const rsy_geometry *g,
                                                   rsy_dtype dtype);
/** Deep copy. Ownership as rsy_volume_create(). @since 0.1 */
RSY_API RSY_NODISCARD rsy_status rsy_volume_clone(rsy_volume **out, const rsy_volume *src);
/** Free @p v and its buffer; NULL is a no-op. @since 0.1 */
RSY_API void rsy_volume_destroy(rsy_volume *v);
/** Bytes of the voxel buffer. @since 0.1 */
RSY_API size_t rsy_volume_nbytes(const rsy_volume *v);

/* ---------------------------------------------------------------------------------------- */
/* Reproducible random streams (reference/formats.md, "Reproducible random streams").         */
/* One generator per (dataset seed, case index, stage); outputs depend neither on the thread   */
/* count nor on sharding. The generator is xoshiro256** seeded through SplitMix64, wrapped as */
/* a gsl_rng type inside the library so gsl_ran_* distributions work on it.                   */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    RSY_STAGE_SUBJECT = 1,     /* subject attributes: sex, age, size */
    RSY_STAGE_PHANTOM = 2,     /* anatomy shape and deformation */
    RSY_STAGE_LESIONS = 3,     /* lesion count, size, shape, placement */
    RSY_STAGE_TEXTURE = 4,     /* tissue texture */
    RSY_STAGE_ACQUISITION = 5, /* bias field, noise; channel index is added to this stage */
    RSY_STAGE_USER = 64        /* first stage number free for callers/tests */
} rsy_stage;

/** SplitMix64-mixed 64-bit seed of (dataset seed, case index, stage). Pure function. */
RSY_API uint64_t rsy_seed_derive(uint64_t dataset_seed, uint64_t case_index, uint32_t stage);

typedef struct rsy_rng rsy_rng;

/** Create a stream from a 64-bit seed (every value, 0 included, is a distinct stream).
 *  On success @p *out is owned by the caller; release with rsy_rng_destroy().
 *  @return RSY_OK, RSY_ENOMEM. @since 0.1 */
RSY_API RSY_NODISCARD rsy_status rsy_rng_create(rsy_rng **out, uint64_t seed);
/** Shorthand for rsy_rng_create(out, rsy_seed_derive(dataset_seed, case_index, stage)). */
RSY_API RSY_NODISCARD rsy_status rsy_rng_create_stream(rsy_rng **out, uint64_t dataset_seed,
                                                       uint64_t case_index, uint32_t stage);
/** Free a stream; NULL is a no-op. @since 0.1 */
RSY_API void rsy_rng_destroy(rsy_rng *r);
/** Name recorded in manifests, e.g. "xoshiro256** (SplitMix64 seeding) via GSL 2.7.1". */
RSY_API const char *rsy_rng_description(void);

/** Next raw 64-bit output of the stream. @since 0.1 */
RSY_API uint64_t rsy_rng_u64(rsy_rng *r);
/** Uniform on [0, 1) with 53 random bits. */
RSY_API double rsy_rng_uniform(rsy_rng *r);
/** Uniform on (0, 1). */
RSY_API double rsy_rng_uniform_pos(rsy_rng *r);
/** Uniform on [a, b). */
RSY_API double rsy_rng_uniform_range(rsy_rng *r, double a, double b);
/** Uniform integer on [0, n), unbiased; n = 0 returns 0. */
RSY_API uint64_t rsy_rng_uniform_int(rsy_rng *r, uint64_t n);
/** Gaussian with mean 0 and standard deviation @p sd (GSL ziggurat). */
RSY_API double rsy_rng_gaussian(rsy_rng *r, double sd);
/** Log-normal: exp(N(log(median), log(gsd)^2)), @p gsd the geometric standard deviation >= 1.
 *  NaN when median <= 0, gsd < 1 or either is not finite. */
RSY_API double rsy_rng_lognormal(rsy_rng *r, double median, double gsd);
/** Poisson with mean @p mu >= 0 (a negative or non-finite mean gives 0). */
RSY_API unsigned int rsy_rng_poisson(rsy_rng *r, double mu);
/** Gamma(shape a, scale b); NaN unless both are finite and > 0. */
RSY_API double rsy_rng_gamma(rsy_rng *r, double a, double b);
/** Index drawn from @p n non-negative weights (need not sum to 1; at least one > 0). Invalid
 *  weights (negative, non-finite, none > 0) give @p n, out of range, and a logged error. */
RSY_API size_t rsy_rng_categorical(rsy_rng *r, const double *weights, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Thread pool: a parallel for over task indices                                             */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_pool rsy_pool;

/** A task. @p worker is in [0, n_threads) and is stable for the task's duration, so callers
 *  can keep per-worker scratch buffers. A non-RSY_OK return stops the scheduling of tasks not
 *  yet started. */
typedef rsy_status (*rsy_task_fn)(void *ctx, size_t index, int worker);

/** Create a pool of @p n_threads workers (1 runs tasks in the calling thread, in order).
 *  On success @p *out is owned by the caller; release with rsy_pool_destroy().
 *  @return RSY_OK, RSY_EINVAL (n_threads < 1 or > 1024), RSY_ENOMEM. @since 0.1 */
RSY_API RSY_NODISCARD rsy_status rsy_pool_create(rsy_pool **out, int n_threads);
/** Free a pool (no task may be running); NULL is a no-op. @since 0.1 */
RSY_API void rsy_pool_destroy(rsy_pool *p);
/** Number of workers of @p p. @since 0.1 */
RSY_API int rsy_pool_threads(const rsy_pool *p);
/**
 * Run fn(ctx, i, worker) for i in [0, n_tasks), tasks taken in increasing index order, and
 * wait for all started tasks. Not reentrant on the same pool.
 * @return RSY_OK if every task succeeded, otherwise the status of the failed task with the
 *         lowest index (independent of thread timing for a given set of failing tasks).
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_pool_run(rsy_pool *p, size_t n_tasks, rsy_task_fn fn,
                                              void *ctx);

/* ---------------------------------------------------------------------------------------- */
/* Checksums, time, files                                                                     */
/* ---------------------------------------------------------------------------------------- */
/** SHA-256 (FIPS 180-4) of a buffer as 64 lowercase hex digits plus NUL. @since 0.1 */
RSY_API void rsy_sha256_hex(const void *data, size_t len, char hex[65]);
/** SHA-256 of a file's bytes. @return RSY_OK, RSY_EIO (logged with path and errno). */
RSY_API RSY_NODISCARD rsy_status rsy_sha256_file(const char *path, char hex[65]);

/** Monotonic wall-clock seconds (for progress and benchmarks only, never for results). */
RSY_API double rsy_time_now(void);

/**
 * Write @p len bytes to @p path atomically: to "<path>.part-<pid>-<tid>" first, flushed and
 * closed with every error checked, then renamed over @p path. On any failure the temporary
 * file is removed and @p path is untouched.
 * @return RSY_OK, RSY_EIO (logged with the path and strerror, e.g. "No space left on device").
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_file_write_atomic(const char *path, const void *data,
                                                       size_t len);
/** Read a whole file into a NUL-terminated heap buffer. On success @p *out is owned by the
 *  caller (free()). Files larger than @p max_bytes give RSY_ELIMIT.
 *  @return RSY_OK, RSY_EIO, RSY_ENOMEM, RSY_ELIMIT. @since 0.1 */
RSY_API RSY_NODISCARD rsy_status rsy_file_read_all(const char *path, size_t max_bytes,
                                                   char **out, size_t *len_out);
/** mkdir -p. @return RSY_OK, RSY_EIO. @since 0.1 */
RSY_API RSY_NODISCARD rsy_status rsy_mkdir_p(const char *path);

/* ---------------------------------------------------------------------------------------- */
/* NIfTI-1 volume I/O (reference/formats.md, "NIfTI-1")                                     */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    RSY_NIFTI_IMAGE = 0, /* intensity image (float32 or int16 HU) */
    RSY_NIFTI_LABEL = 1  /* integer label or instance map: intent NIFTI_INTENT_LABEL (1002) */
} rsy_nifti_kind;

/** Header fields that the formats.md checklist inspects, as read from a file. */
typedef struct rsy_nifti_info {
    int sizeof_hdr;
    char magic[4];
    double vox_offset;
    int datatype;    /* NIfTI datatype code */
    int intent_code;
    char intent_name[17];
    int qform_code, sform_code;
    int xyz_units_mm; /* 1 if xyzt_units spatial part is NIFTI_UNITS_MM */
    double qfac;      /* pixdim[0] */
    double pixdim[4]; /* pixdim[1..3] in [1..3] */
    double scl_slope, scl_inter;
    double cal_min, cal_max;
    char descrip[81];
    char aux_file[25];
    char db_name[19]; /* from the analyze-compat fields, must be empty */
    int num_ext;      /* header extensions present */
    double qto_xyz[4][4], sto_xyz[4][4];
} rsy_nifti_info;

/**
 * Write @p v as NIfTI-1 to @p path (".nii.gz" gzip-compressed, ".nii" plain), atomically
 * (see rsy_file_write_atomic). Header: magic n+1, vox_offset 352, qform = sform = the
 * geometry's affine with code 1 (scanner), pixdim from the spacing, units mm, scl_slope 1,
 * scl_inter 0, no extensions, descrip "raresynth <version>" and nothing else; labels get
 * intent 1002, cal_min 0 and cal_max = largest value. The gzip stream carries no name or time,
 * so equal volumes give byte-identical files. Safe to call from several threads at once.
 * @return RSY_OK, RSY_EINVAL (dtype not storable for @p kind, non-rigid affine),
 *         RSY_EIO (logged with path and errno), RSY_ENOMEM.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_volume_write_nifti(const rsy_volume *v, const char *path,
                                                        rsy_nifti_kind kind);
/**
 * Read a NIfTI-1 volume of 3 spatial dims (uint8, int16, uint16, float32; other integer types
 * and float64 are converted to float32) with its scaling ignored. The geometry's affine comes
 * from sform if sform_code > 0, else qform. If @p info is not NULL, header fields are filled.
 * Nothing is allocated for a header that declares more voxel data than the file can hold
 * (a gzip stream expands at most 1032:1) or more than 4 GiB (the volume plus the raw voxels),
 * so a crafted or truncated file cannot make the reader claim memory.
 * On success @p *out is owned by the caller; release with rsy_volume_destroy().
 * @return RSY_OK, RSY_EIO (missing/unreadable), RSY_EFORMAT (not NIfTI-1, truncated, dims
 *         beyond what the file holds, not 3-D, unsupported type; logged with the path and the
 *         reason), RSY_ELIMIT (dims beyond 4 GiB of voxel data; logged), RSY_ENOMEM.
 * @since 0.1 (the size checks: 0.4)
 */
RSY_API RSY_NODISCARD rsy_status rsy_volume_read_nifti(rsy_volume **out, rsy_nifti_info *info,
                                                       const char *path);

#ifdef __cplusplus
}
#endif
#endif /* RSY_CORE_H */
