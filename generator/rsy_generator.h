/*
 * rsy_generator.h: imaging models and the per-case pipeline.
 *
 * One case is one pass down the pipeline (DESIGN.md section 2): phantom -> lesions ->
 * tissue property maps -> imaging model (MRI: spin echo, inversion recovery, spoiled GRE;
 * bias field; Rician noise) -> export. Cases are independent and run on a thread pool; each
 * draws its random numbers from its own streams (dataset seed, case index, stage), so the
 * output does not depend on the thread count.
 */
#ifndef RSY_GENERATOR_H
#define RSY_GENERATOR_H

#include <signal.h>

#include "rsy_config.h"
#include "rsy_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* MRI signal equations (reference/domain.md section 2.2); times in ms, magnitude signal      */
/* ---------------------------------------------------------------------------------------- */
/** Spin echo: PD·(1 − 2e^{−(TR−TE/2)/T1} + e^{−TR/T1})·e^{−TE/T2}. */
RSY_API double rsy_mri_signal_spin_echo(double pd, double t1_ms, double t2_ms, double tr_ms,
                                        double te_ms);
/** Inversion recovery (FLAIR): PD·|1 − 2e^{−TI/T1} + e^{−TR/T1}|·e^{−TE/T2}. */
RSY_API double rsy_mri_signal_inversion_recovery(double pd, double t1_ms, double t2_ms,
                                                 double tr_ms, double te_ms, double ti_ms);
/** Spoiled gradient echo: PD·sinα·(1−E1)/(1−cosα·E1)·e^{−TE/T2}, E1 = e^{−TR/T1}. */
RSY_API double rsy_mri_signal_spoiled_gre(double pd, double t1_ms, double t2_ms, double tr_ms,
                                          double te_ms, double flip_deg);
/** T1 shortened by gadolinium: 1/T1 = 1/T1₀ + r1·[Gd] (T1 in ms, r1 in 1/(mM·s)). */
RSY_API double rsy_mri_t1_with_gd(double t1_ms, double r1_per_mM_s, double gd_mM);
/** Signal of @p seq for tissue properties @p p (contrast applied if seq->contrast). */
RSY_API double rsy_mri_signal(const rsy_sequence *seq, const rsy_mri_props *p, double r1_per_mM_s);

/* ---------------------------------------------------------------------------------------- */
/* The per-case pipeline                                                                      */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_case rsy_case;

/**
 * Generate case @p case_index of @p r entirely in memory (no file is touched).
 * On success @p *out is owned by the caller; release with rsy_case_destroy().
 * @return RSY_OK, RSY_EPLACEMENT, RSY_ENOMEM, RSY_ENUMERIC, RSY_EINVAL.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_case_generate(const rsy_recipe *r, size_t case_index,
                                                   rsy_case **out);
/** Free a case and everything it holds; NULL is a no-op. @since 0.1 */
RSY_API void rsy_case_destroy(rsy_case *c);
/*
 * Accessors: borrowed views of a generated case, valid until rsy_case_destroy(). Volumes share
 * one geometry. @since 0.1
 */
/** Number of image channels (the recipe's sequences, in order). */
RSY_API int rsy_case_n_channels(const rsy_case *c);
/** Channel @p i (float32), NULL if out of range. */
RSY_API const rsy_volume *rsy_case_channel(const rsy_case *c, int i);
/** Output label map (uint8), values of rsy_generator_label_names(). */
RSY_API const rsy_volume *rsy_case_labels(const rsy_case *c);
/** Working class map (uint16): phantom tissue ids, then lesion compartment ids
 *  (rsy_priors.h). */
RSY_API const rsy_volume *rsy_case_classes(const rsy_case *c);
/** Instance map (uint16): 0 outside lesions, 1..N per lesion. */
RSY_API const rsy_volume *rsy_case_instances(const rsy_case *c);
/** Number of lesions sampled (instance ids 1..N). */
RSY_API int rsy_case_n_lesions(const rsy_case *c);
/** Findings text in a radiologist's register (NUL-terminated, never NULL for a valid case). */
RSY_API const char *rsy_case_findings(const rsy_case *c);

/** Output label dictionary of @p r: names in value order, [0] = "background". Returns the
 *  count (<= RSY_MAX_LABELS) and fills at most @p max entries of @p names (static or
 *  recipe-owned strings). */
RSY_API int rsy_generator_label_names(const rsy_recipe *r, const char **names, int max);

/** Perilesional flags of the output labels of @p r, in value order: flags[i] = 1 when label i
 *  is a compartment outside the lesion surface (a margin compartment such as oedema), which the
 *  RECIST measurement leaves out; 0 otherwise. Writes at most @p max flags and returns the
 *  label count, as rsy_generator_label_names(). @since 0.1 */
RSY_API int rsy_generator_label_perilesional(const rsy_recipe *r, unsigned char *flags, int max);

/** Timings of the stages of one case, seconds (for benchmarks). */
typedef struct rsy_case_timing {
    double phantom_s, lesions_s, texture_s, imaging_s, export_s;
} rsy_case_timing;
RSY_API rsy_case_timing rsy_case_get_timing(const rsy_case *c);

/* ---------------------------------------------------------------------------------------- */
/* Whole-dataset run                                                                          */
/* ---------------------------------------------------------------------------------------- */
/** Progress callback: called after each completed case, from the worker that finished it
 *  (serialised by the library). */
typedef void (*rsy_progress_fn)(size_t done, size_t total, void *user);

typedef struct rsy_run_options {
    int n_threads;                       /* cases in flight, >= 1 */
    int force;                           /* replace an earlier raresynth dataset in out_dir */
    uint64_t max_memory_bytes;           /* refuse if the estimate exceeds it; 0 = no limit */
    const volatile sig_atomic_t *cancel; /* when it becomes non-zero, stop after cases in
                                            flight and return RSY_ECANCELED; may be NULL */
    rsy_progress_fn progress;
    void *progress_user;
    unsigned layouts;    /* RSY_LAYOUT_* bits of rsy_export.h; 0 = nnU-Net only @since 0.4 */
    unsigned formats;    /* RSY_FORMAT_* bits; NIfTI is always written @since 0.4 */
    int preview;         /* 1: a PNG preview per case @since 0.4 */
    int resume;          /* 1: continue the run left in out_dir (rsy_generator_run) @since 0.4 */
    int64_t shard_index; /* with shard_count >= 2: make only the cases i with
                            i % shard_count == shard_index @since 0.4 */
    int64_t shard_count; /* 0: every case; 1: every case, the directory recorded as shard 0
                            of 1 (mergeable without --recipe) @since 0.4 */
} rsy_run_options;

/** Defaults: 1 thread, no force, no memory limit, no cancel flag, no progress, the nnU-Net
 *  layout in NIfTI, no preview, no resume, no sharding. */
RSY_API rsy_run_options rsy_run_options_default(void);

/**
 * Generate the whole dataset of @p r into @p out_dir: check the memory estimate, prepare the
 * directory, generate and write every case on a pool of n_threads, then write the dataset
 * files. Byte-identical output for the same recipe, seed and version whatever n_threads,
 * and whether it was made in one run, resumed, or sharded and merged.
 * On failure or cancellation, temporary files are removed and raresynth.json is not written:
 * `validate` then reports the dataset as incomplete.
 * Before the directory is touched, the recipe is checked for what only the generator knows
 * (every phantom class has a tissue entry, the output labels fit RSY_MAX_LABELS; with the
 * texture model "fitted", the model file is read and every name of the recipe's class mapping
 * exists in the class map and in the model).
 * The directory gets a run state (rsy_export.h, RSY_EXPORT_RUN_STATE) before any case.
 * With opt->shard_count >= 2, only the cases of shard opt->shard_index are made and the
 * directory is finished with a shard manifest instead of the dataset files (rsy_export.h).
 * With opt->resume (force is then ignored), a missing or empty out_dir is a new run; otherwise
 * out_dir must hold a run of the same recipe, configuration files, seed, case count, version,
 * layouts, formats, preview and shard (rsy_export_resume_prepare: a difference is RSY_ECONFIG,
 * logged naming it). Staging and temporary files are removed, every case whose manifest is
 * present and whose files match their checksums is kept (rsy_export_adopt_case), the files of
 * the other cases are removed (rsy_export_resume_sweep) and those cases generated, and the
 * dataset is finished: the same bytes as an uninterrupted run.
 * @return RSY_OK, RSY_EINVAL (NULL argument, n_threads < 1, a shard index outside
 *         [0, shard_count)), RSY_ECONFIG (the checks above, or a resume of another run; one
 *         logged line per problem), RSY_ELIMIT (memory estimate over the limit; logged with
 *         both figures), RSY_EIO, RSY_ECANCELED, RSY_EPLACEMENT, RSY_ENOMEM, RSY_ENUMERIC.
 * @since 0.1 (layouts, formats, preview, resume and shards @since 0.4)
 */
RSY_API RSY_NODISCARD rsy_status rsy_generator_run(const rsy_recipe *r, const char *out_dir,
                                                   const rsy_run_options *opt);

/**
 * Merge the shard directories @p shard_dirs (made by rsy_generator_run with shard_count N,
 * indices 0..N-1, each given once, in any order; or one unsharded dataset) into @p out_dir,
 * which must be new or empty: the dataset a single run of @p r makes, byte for byte.
 * @p r must be the recipe the shards were made from (its file's SHA-256 is compared), with
 * cases and seed set to the shards' (rsy_export_shard_info); opt->layouts, formats and preview
 * must be the shards' too; opt->n_threads workers check and link the cases. The recipe is
 * checked as rsy_generator_run does and the shards as rsy_export_merge() does, before
 * @p out_dir is touched; on failure @p out_dir is left absent (or empty, if it was).
 * @return as rsy_export_merge(); RSY_EINVAL also for opt->shard_count != 0.
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_generator_merge(const rsy_recipe *r,
                                                     const char *const *shard_dirs,
                                                     size_t n_shards, const char *out_dir,
                                                     const rsy_run_options *opt);

/* ======================================================================================== */
/* Texture: patch priors, denoisers and the diffusion sampler (DESIGN.md section 6,           */
/* docs/texture.md). The normalized texture field u is drawn by integrating the probability-  */
/* flow ODE of Karras et al. 2022 with an exact denoiser of a class-conditional patch prior.   */
/* ======================================================================================== */
/** A texture prior: for each class id 0..n_classes-1 of a class map, a Gaussian mixture over
 *  p×p×p patches (d = p³ values, x fastest within the patch, as NIfTI voxel order). Each
 *  covariance is eigendecomposed once, when its component is added. Opaque. */
typedef struct rsy_texture_prior rsy_texture_prior;

/** Largest patch edge p accepted (d = 9³ = 729 values per patch). */
#define RSY_TEXTURE_MAX_PATCH 9
/** Largest number of mixture components per class. */
#define RSY_TEXTURE_MAX_COMPONENTS 16

/**
 * Create an empty prior for patches of @p patch_size³ voxels at voxel size @p spacing_mm,
 * for class ids 0..n_classes-1. Add at least one component to every class before use.
 * On success @p *out is owned by the caller; release with rsy_texture_prior_destroy().
 * @return RSY_OK, RSY_EINVAL (patch_size not odd in [1, RSY_TEXTURE_MAX_PATCH], n_classes
 *         outside [1, 65536], spacing not finite and > 0), RSY_ENOMEM.
 * @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_prior_create(rsy_texture_prior **out, int patch_size,
                                                          const double spacing_mm[3],
                                                          int n_classes);
/** Free @p m; NULL is a no-op. @since 0.2 */
RSY_API void rsy_texture_prior_destroy(rsy_texture_prior *m);

/**
 * Add the component weight·N(mean, cov) to class @p class_id of @p m. The covariance
 * (d×d, row-major, symmetric) is eigendecomposed here (GSL gsl_eigen_symmv, double) and its
 * eigenvalues are floored at 1e-6 times the largest (and at 1e-12 absolutely), so a
 * semi-definite covariance is accepted. Weights need not sum to 1 over a class: they are
 * normalised when a denoiser is built. @p mean may be NULL for the zero mean. Both arrays
 * are copied.
 * @return RSY_OK, RSY_EINVAL (bad class id, weight not finite and > 0, non-finite values,
 *         covariance not symmetric to 1e-9 relative, largest eigenvalue not > 0, class
 *         full), RSY_ENUMERIC (eigensolver failure), RSY_ENOMEM.
 * @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_prior_add_component(rsy_texture_prior *m, int class_id,
                                                                 double weight, const double *mean,
                                                                 const double *cov);

/** An analytic component: a stationary Gaussian random field with a squared-exponential
 *  correlation, cov(Δ) = variance·exp(−Σ_a (Δ_a·spacing_a)² / (2·corr_length_mm_a²)) between
 *  patch voxels Δ voxels apart along axis a, and a constant mean. Unequal lengths make the
 *  texture anisotropic. */
typedef struct rsy_texture_preset_component {
    double weight;            /* mixture weight, > 0 */
    double variance;          /* marginal variance of u, > 0 */
    double corr_length_mm[3]; /* correlation length ℓ along i, j, k, > 0 */
    double mean;              /* mean of u, every voxel */
} rsy_texture_preset_component;

/**
 * Add the analytic component @p c (covariance by the kernel above at the prior's spacing) to
 * class @p class_id of @p m.
 * @return as rsy_texture_prior_add_component(); RSY_EINVAL also for a variance or length
 *         not finite and > 0.
 * @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_prior_add_preset(
    rsy_texture_prior *m, int class_id, const rsy_texture_preset_component *c);

/** Patch edge p, class count, and component count of one class (0 for a bad id). @since 0.2 */
RSY_API int rsy_texture_prior_patch_size(const rsy_texture_prior *m);
RSY_API int rsy_texture_prior_n_classes(const rsy_texture_prior *m);
RSY_API int rsy_texture_prior_n_components(const rsy_texture_prior *m, int class_id);

/* ---------------------------------------------------------------------------------------- */
/* Denoiser interface: any denoiser plugs into the samplers through this struct              */
/* ---------------------------------------------------------------------------------------- */
/**
 * Denoise a whole field: write to @p out (one float per voxel of @p class_map) an estimate of
 * E[u | u + σ·n = y] for the prior conditioned on @p class_map (uint8 or uint16 class ids; its
 * geometry is the field's). A denoiser may draw from @p rng (e.g. tile offsets) and must draw
 * a number of values that does not depend on the thread count. @p y and @p out do not alias.
 * @return RSY_OK, RSY_EINVAL, RSY_ENOMEM, RSY_ENUMERIC.
 */
typedef rsy_status (*rsy_denoise_fn)(void *self, const float *y, const rsy_volume *class_map,
                                     double sigma, rsy_rng *rng, float *out);
/** A denoiser: the function and the object it works on (borrowed by the samplers). */
typedef struct rsy_denoiser {
    rsy_denoise_fn denoise;
    void *self;
} rsy_denoiser;

/* ---------------------------------------------------------------------------------------- */
/* The patch-mixture denoiser (exact posterior mean of the noised mixture, per patch)        */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_patch_denoiser rsy_patch_denoiser;

typedef struct rsy_patch_denoiser_params {
    int n_offsets;        /* random tilings averaged per evaluation, >= 1 */
    size_t batch_patches; /* patches per matrix product, >= 1 (bounds the scratch memory) */
    int n_threads;        /* workers over batches, >= 1; results do not depend on it */
    int stride;           /* side q of the central block each p³ cell writes, cells q apart:
                             1 <= q <= p with p − q even (q = p: non-overlapping tiles); 0
                             (default) = p − 2 for p >= 5, else p (docs/texture.md) @since 0.4 */
} rsy_patch_denoiser_params;

/** Defaults: 1 offset, 2048 patches per batch, 1 thread. @since 0.2 */
RSY_API rsy_patch_denoiser_params rsy_patch_denoiser_params_default(void);

/**
 * Build the patch-mixture denoiser of @p prior (DESIGN.md section 6): p³ cells whose corners
 * lie q = params->stride voxels apart, on a grid shifted by a random offset in [0, q)³ drawn
 * at each evaluation, each write only their central q³ block (q = p: non-overlapping tiles);
 * a cell takes its centre voxel's class; cells crossing the border read the field mirrored at
 * the border and write back only their voxels inside it, so each voxel is written exactly once
 * per offset. Per class, batches of patches go through two single-
 * precision matrix products (OpenBLAS, set to one thread once per process: the parallelism
 * is ours, over batches, with a fixed partition). The prior's data are copied: @p prior may
 * be destroyed afterwards. One denoiser must not be used by two threads at once.
 * On success @p *out is owned by the caller; release with rsy_patch_denoiser_destroy().
 * @return RSY_OK, RSY_EINVAL (bad params, a class without components), RSY_ENOMEM.
 * @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_patch_denoiser_create(rsy_patch_denoiser **out,
                                                           const rsy_texture_prior *prior,
                                                           const rsy_patch_denoiser_params *params);
/** Free @p d; NULL is a no-op. @since 0.2 */
RSY_API void rsy_patch_denoiser_destroy(rsy_patch_denoiser *d);
/** The interface view of @p d (borrowed: valid while @p d lives). @since 0.2 */
RSY_API rsy_denoiser rsy_patch_denoiser_interface(rsy_patch_denoiser *d);
/** Floating-point operations of the matrix products done by @p d so far (4·n·K·d² per
 *  batch of n patches of a K-component class), for benchmarks. @since 0.2 */
RSY_API double rsy_patch_denoiser_gemm_flops(const rsy_patch_denoiser *d);

/* ---------------------------------------------------------------------------------------- */
/* Samplers (Karras et al. 2022, Algorithms 1 and 2)                                          */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    RSY_TEXTURE_SAMPLER_EULER = 0,     /* Euler on the probability-flow ODE: N evaluations */
    RSY_TEXTURE_SAMPLER_HEUN = 1,      /* Heun (2nd order): 2N − 1 evaluations */
    RSY_TEXTURE_SAMPLER_STOCHASTIC = 2 /* churn + Heun (Algorithm 2): 2N − 1 evaluations */
} rsy_texture_sampler;

typedef struct rsy_texture_sample_params {
    rsy_texture_sampler sampler;
    int steps;        /* N >= 2 noise levels before the final σ = 0 */
    double sigma_min; /* > 0 */
    double sigma_max; /* > sigma_min */
    double rho;       /* schedule exponent, > 0 */
    double s_churn;   /* stochastic: total churn, >= 0 (γ_i = min(S_churn/N, √2 − 1)) */
    double s_tmin;    /* stochastic: churn only for σ_i in [s_tmin, s_tmax] */
    double s_tmax;
    double s_noise; /* stochastic: scale of the added noise, >= 0 */
} rsy_texture_sample_params;

/** Defaults: Heun, 18 steps, σ from 80 down to 0.002, ρ = 7 (Karras et al. 2022, Table 1);
 *  churn S_churn 5, S_tmin 0.05, S_tmax 50, S_noise 1 (an exact denoiser needs no noise
 *  inflation). @since 0.2 */
RSY_API rsy_texture_sample_params rsy_texture_sample_params_default(void);

/**
 * The Karras schedule: σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for
 * i < N, and σ_N = 0. Writes @p p->steps + 1 values to @p sigmas.
 * @return RSY_OK, RSY_EINVAL (bad params). @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_schedule(const rsy_texture_sample_params *p,
                                                      double *sigmas);

/** Counters of one sampler run. */
typedef struct rsy_texture_stats {
    size_t denoiser_evals;
} rsy_texture_stats;

/**
 * Draw a texture field u for @p class_map (uint8 or uint16 class ids) by integrating from
 * x = σ_max·N(0, I) down to σ = 0 with @p dn. Deterministic for a given @p rng state, whatever
 * the denoiser's thread count. @p stats may be NULL.
 * On success @p *out (float32, geometry of @p class_map) is owned by the caller; release with
 * rsy_volume_destroy().
 * @return RSY_OK, RSY_EINVAL (bad params, bad class map), RSY_ENOMEM, or the denoiser's status.
 * @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_sample(const rsy_denoiser *dn,
                                                    const rsy_volume *class_map,
                                                    const rsy_texture_sample_params *p,
                                                    rsy_rng *rng, rsy_volume **out,
                                                    rsy_texture_stats *stats);

/**
 * As rsy_texture_sample(), with the voxels where @p mask (uint8, non-zero = known) is set
 * taken from @p known (float32): before every denoiser evaluation at noise level σ they are
 * replaced by known + σ·N(0, 1) (RePaint-style, Lugmayr et al. 2022), and at the end by the
 * known values exactly, so the rest is drawn conditioned on them. Geometries must equal the
 * class map's. Ownership of @p *out as rsy_texture_sample().
 * @return RSY_OK, RSY_EINVAL (also: dtype or geometry mismatch), RSY_ENOMEM, or the
 *         denoiser's status.
 * @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status
rsy_texture_inpaint(const rsy_denoiser *dn, const rsy_volume *class_map, const rsy_volume *known,
                    const rsy_volume *mask, const rsy_texture_sample_params *p, rsy_rng *rng,
                    rsy_volume **out, rsy_texture_stats *stats);

/* ---------------------------------------------------------------------------------------- */
/* Texture models fitted from real scans (`raresynth fit-texture`, docs/texture-model.md).    */
/* A model holds mixture parameters, per-class intensity statistics and provenance: no voxel. */
/* ---------------------------------------------------------------------------------------- */
/** A fitted texture model: per class a Gaussian mixture over normalised p³ patches, the
 *  class's intensity mean and SD (u = (I − mean)/sd), its name, and provenance. Opaque. */
typedef struct rsy_texture_fitted rsy_texture_fitted;

typedef struct rsy_texture_fit_params {
    int patch_size;       /* p, odd in [1, RSY_TEXTURE_MAX_PATCH] */
    int n_components;     /* K per class, in [1, RSY_TEXTURE_MAX_COMPONENTS] */
    int max_iterations;   /* EM iteration cap, >= 1 (also for the auto-classes mixture) */
    double tolerance;     /* stop when the mean log-likelihood per sample improves by less */
    double cov_floor;     /* added to each covariance diagonal (normalised variance units) */
    uint64_t max_patches; /* per class; more are subsampled at random from the seed;
                             0 = all, up to 2^26 / p³ (bounded memory) */
    uint64_t seed;        /* subsampling and k-means++ streams */
    int n_threads;        /* workers, >= 1; results do not depend on it */
} rsy_texture_fit_params;

/** Defaults: p = 5, K = 3, 100 iterations, tolerance 1e-4, covariance floor 1e-3, 20000
 *  patches per class, seed 1, 1 thread. @since 0.2 */
RSY_API rsy_texture_fit_params rsy_texture_fit_params_default(void);

/**
 * Fit a texture model on @p image (any dtype; geometry gives the model's voxel size). Classes
 * come from @p labels (same geometry; integer labels; each non-zero value present is a class,
 * named by its decimal value, in increasing order) or, when @p labels is NULL, from
 * @p auto_classes > 0: a 1-D Gaussian mixture fitted by EM on the intensities of the non-zero
 * voxels of @p image (the brain mask), each voxel labelled by its most responsible component,
 * classes ordered by mean intensity and named "class_1", "class_2", ... Every voxel is
 * normalised by its own class's mean and SD (u = (I − mean) / sd); per class, the p³ patches
 * lying wholly inside the class and the volume are extracted (at most max_patches, a random
 * subset), and a K-component full-covariance Gaussian mixture is fitted by EM from a
 * k-means++ start, each component keeping at least max(50, 2·p³) effective patches (smaller
 * ones are dropped, so no component is a copy of one patch). Deterministic for a given seed
 * whatever n_threads.
 * On success @p *out is owned by the caller; release with rsy_texture_fitted_destroy().
 * @return RSY_OK, RSY_EINVAL (bad params, both or neither class sources, geometry mismatch,
 *         non-integer or negative labels, a class with fewer patches than K or a constant
 *         intensity; logged), RSY_ENUMERIC (a covariance not positive definite, a class
 *         that cannot keep one component of the minimum size; logged), RSY_ENOMEM.
 * @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_fit(rsy_texture_fitted **out, const rsy_volume *image,
                                                 const rsy_volume *labels, int auto_classes,
                                                 const rsy_texture_fit_params *p);

/**
 * Record the provenance of @p m: the basenames and SHA-256 of the image file and of the label
 * file (@p labels_path may be NULL). Paths themselves are not stored.
 * @return RSY_OK, RSY_EINVAL, RSY_EIO (a file unreadable; logged). @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_fitted_set_source(rsy_texture_fitted *m,
                                                              const char *image_path,
                                                              const char *labels_path);
/** Free @p m; NULL is a no-op. @since 0.2 */
RSY_API void rsy_texture_fitted_destroy(rsy_texture_fitted *m);

/** Patch edge p and class count of @p m (0 for NULL). @since 0.2 */
RSY_API int rsy_texture_fitted_patch_size(const rsy_texture_fitted *m);
RSY_API int rsy_texture_fitted_n_classes(const rsy_texture_fitted *m);

/** What a model knows about one class. */
typedef struct rsy_texture_class_info {
    const char *name;      /* borrowed from the model */
    int64_t label;         /* label value, or the intensity-class rank 1..K with auto-classes */
    double intensity_mean; /* of the class's voxels, image units */
    double intensity_sd;   /* population SD, > 0 */
    uint64_t n_patches;    /* patches the mixture was fitted on */
    int n_components;
    int n_iterations;      /* EM iterations run */
    double log_likelihood; /* final mean log-likelihood per patch */
} rsy_texture_class_info;

/** Fill @p info for class @p class_id of @p m. @return RSY_OK, RSY_EINVAL. @since 0.2 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_fitted_class_info(const rsy_texture_fitted *m,
                                                              int class_id,
                                                              rsy_texture_class_info *info);
/** Component @p k of class @p class_id: weight (normalised over the class), mean (d values)
 *  and covariance (d×d row-major), borrowed from @p m. @return RSY_OK, RSY_EINVAL.
 *  @since 0.2 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_fitted_component(const rsy_texture_fitted *m,
                                                             int class_id, int k, double *weight,
                                                             const double **mean,
                                                             const double **cov);

/**
 * Build the patch prior of @p m (class ids as in the model) for the denoiser.
 * On success @p *out is owned by the caller; release with rsy_texture_prior_destroy().
 * @return as rsy_texture_prior_create() and rsy_texture_prior_add_component(). @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_fitted_to_prior(const rsy_texture_fitted *m,
                                                            rsy_texture_prior **out);

/**
 * Write @p m to the HDF5 file @p path (layout: docs/texture-model.md), atomically (temporary
 * name, then rename) and without timestamps, so equal models give byte-identical files.
 * @return RSY_OK, RSY_EINVAL, RSY_EDEP (an HDF5 call failed; logged with file and object),
 *         RSY_EIO (rename failed; logged), RSY_ENOMEM. @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_fitted_write(const rsy_texture_fitted *m,
                                                         const char *path);
/**
 * Read a model written by rsy_texture_fitted_write(), checking format, version, shapes and
 * values. On success @p *out is owned by the caller; release with rsy_texture_fitted_destroy().
 * @return RSY_OK, RSY_EINVAL, RSY_EIO (missing or unreadable; logged), RSY_EFORMAT (not
 *         HDF5, truncated, wrong format or version, missing object, wrong shape or value;
 *         one logged line naming the file and the object), RSY_ENOMEM. @since 0.2
 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_fitted_read(rsy_texture_fitted **out,
                                                        const char *path);

/* ======================================================================================== */
/* CT imaging (DESIGN.md section 7, docs/ct.md, reference/domain.md sections 1.1-1.4):       */
/* parallel-beam projection over [0, π), a photon-counting dose model, filtered back-         */
/* projection with the exact discrete ramp, a fast image-domain noise model calibrated to    */
/* it, and the finishing of a CT volume (slice thickness, in-plane PSF, int16 HU).           */
/* A slice is nx·ny float32 values, x fastest, square pixels of pixel_mm; a sinogram is      */
/* n_views·n_det float32 line integrals (mm⁻¹·mm), detector bin fastest, view v at angle     */
/* θ_v = v·π/n_views, bin b at t = (b − (n_det−1)/2)·det_spacing_mm with t = x cosθ + y sinθ */
/* and (x, y) = ((i − (nx−1)/2)·pixel_mm, (j − (ny−1)/2)·pixel_mm).                          */
/* ======================================================================================== */
/** Reconstruction kernels: the ramp's apodisation window (domain.md section 1.4). */
typedef enum {
    RSY_CT_KERNEL_RAMLAK = 0,      /* ramp truncated at the detector Nyquist frequency */
    RSY_CT_KERNEL_SHEPP_LOGAN = 1, /* ramp · sinc(f / 2f_c) */
    RSY_CT_KERNEL_HANN = 2         /* ramp · (1 + cos(π f / f_c)) / 2: smoothest, least noise */
} rsy_ct_kernel;

/** Acquisition parameters. Zero for n_views, n_det or det_spacing_mm means "from the slice". */
typedef struct rsy_ct_params {
    int n_views;                /* views over [0, π); 0: ⌈(π/2)·n_det⌉ (Kak–Slaney rule) */
    int n_det;                  /* bins; 0: ⌈√(nx²+ny²)·pixel_mm/det_spacing_mm⌉ (⌈√2·N⌉) */
    double det_spacing_mm;      /* bin pitch at the isocentre; 0: the pixel size */
    rsy_ct_kernel kernel;       /* reconstruction window */
    double i0_photons;          /* unattenuated photons per bin and view at dose 1, > 0 */
    double electronic_noise_sd; /* Gaussian electronic noise, counts, >= 0 */
    double mu_water_per_mm;     /* linear attenuation of water, mm⁻¹, > 0 */
} rsy_ct_params;

/** Defaults: views, bins and pitch from the slice; Ram-Lak; I₀ = 1e5 photons per bin
 *  (TIGRE demo [S27]); electronic noise SD 10 counts [S27, S28]; μ_water = 0.01879 mm⁻¹ at
 *  75 keV (RTK, Rit et al. 2016 [S22]). @since 0.3 */
RSY_API rsy_ct_params rsy_ct_params_default(void);

/** μ from HU: μ_water·(1 + HU/1000), floored at 0 (domain.md section 1.1). @since 0.3 */
RSY_API double rsy_ct_mu_from_hu(double hu, double mu_water_per_mm);

/** A reconstructor for one slice size: angles, trig tables, the filter's frequency response
 *  and FFTW plans, computed once. Immutable after creation, so one object may serve several
 *  threads at once (every call allocates its own scratch). Opaque. */
typedef struct rsy_ct_fbp rsy_ct_fbp;

/**
 * Create a reconstructor for nx·ny slices of square pixels of @p pixel_mm with @p params
 * (NULL: rsy_ct_params_default()). The detector must cover the slice's diagonal. FFTW plans
 * are made with FFTW_ESTIMATE (deterministic) under a process-wide lock, since FFTW's planner
 * is not thread-safe.
 * On success @p *out is owned by the caller; release with rsy_ct_fbp_destroy().
 * @return RSY_OK, RSY_EINVAL (nx or ny outside [8, 8192], pixel_mm not finite and > 0, a
 *         parameter out of range, a detector narrower than the diagonal; logged),
 *         RSY_ENOMEM, RSY_EDEP (an FFTW plan could not be made).
 * @since 0.3
 */
RSY_API RSY_NODISCARD rsy_status rsy_ct_fbp_create(rsy_ct_fbp **out, int64_t nx, int64_t ny,
                                                   double pixel_mm, const rsy_ct_params *params);
/** Free @p r; NULL is a no-op. @since 0.3 */
RSY_API void rsy_ct_fbp_destroy(rsy_ct_fbp *r);
/** The parameters in effect, defaults resolved (n_views, n_det, det_spacing_mm set).
 *  @since 0.3 */
RSY_API rsy_ct_params rsy_ct_fbp_params(const rsy_ct_fbp *r);

/**
 * Forward-project the μ slice @p mu_per_mm (nx·ny, mm⁻¹) into @p sino (n_views·n_det line
 * integrals): Joseph's ray-driven projector, linear interpolation across the ray, the image
 * zero outside the slice.
 * @return RSY_OK, RSY_EINVAL (NULL argument), RSY_ENOMEM. @since 0.3
 */
RSY_API RSY_NODISCARD rsy_status rsy_ct_forward(const rsy_ct_fbp *r, const float *mu_per_mm,
                                                float *sino);
/**
 * Filtered back-projection of @p sino (line integrals) into the HU slice @p hu_out (nx·ny):
 * each view filtered by the exact discrete ramp times the kernel window (zero-padded FFT),
 * then f(x, y) = (π/n_views)·Σ_θ q_θ(x cosθ + y sinθ) with linear interpolation, and
 * HU = 1000·(f/μ_water − 1).
 * @return RSY_OK, RSY_EINVAL (NULL argument), RSY_ENOMEM. @since 0.3
 */
RSY_API RSY_NODISCARD rsy_status rsy_ct_reconstruct(const rsy_ct_fbp *r, const float *sino,
                                                    float *hu_out);
/**
 * The projection-domain dose model for one slice: μ from @p hu, line integrals p, counts
 * N = Poisson(I₀·a·e^{−p}) + N(0, σ_e²) with a = @p dose_fraction, N clamped to >= 1,
 * p̂ = −ln(N / (I₀·a)), FBP, HU. Random numbers are drawn from @p rng view by view, bin by
 * bin (Poisson, then Gaussian when σ_e > 0), so a seed gives identical bytes.
 * @p hu_out may equal @p hu.
 * @return RSY_OK, RSY_EINVAL (NULL argument, dose_fraction not finite and > 0),
 *         RSY_ENOMEM. @since 0.3
 */
RSY_API RSY_NODISCARD rsy_status rsy_ct_simulate_slice(const rsy_ct_fbp *r, const float *hu,
                                                       double dose_fraction, rsy_rng *rng,
                                                       float *hu_out);
/**
 * Fast image-domain noise: @p hu plus a Gaussian field whose noise power spectrum is that of
 * FBP of white projection noise (NPS ∝ |f|·window(f)², band-limited at the detector Nyquist
 * frequency) and whose local SD is the projection model's prediction at the same dose from
 * the slice's own line integrals on a coarse grid (calibration: docs/ct.md). About 25 times
 * faster than the projection model at 512².
 * @p hu_out may equal @p hu.
 * @return RSY_OK, RSY_EINVAL (NULL argument, dose_fraction not finite and > 0),
 *         RSY_ENOMEM. @since 0.3
 */
RSY_API RSY_NODISCARD rsy_status rsy_ct_noise_fast(const rsy_ct_fbp *r, const float *hu,
                                                   double dose_fraction, rsy_rng *rng,
                                                   float *hu_out);
/**
 * Finish a float32 HU volume as a CT series: a Gaussian in-plane PSF of FWHM @p psf_fwhm_mm
 * along i and j, a rectangular slice sensitivity profile of width @p slice_thickness_mm
 * along k (the slab average; no change up to one voxel spacing); 0 skips either; borders
 * mirrored; then rounding to int16 HU clamped to [−1024, 3071]. Apply the blur to the
 * noise-free HU map before noise (docs/ct.md), then call again with widths 0 to round.
 * On success @p *out (int16, geometry of @p hu) is owned by the caller; release with
 * rsy_volume_destroy().
 * @return RSY_OK, RSY_EINVAL (NULL argument, @p hu not float32, a width negative or not
 *         finite), RSY_ENOMEM, RSY_ELIMIT. @since 0.3
 */
RSY_API RSY_NODISCARD rsy_status rsy_ct_volume_finish(const rsy_volume *hu,
                                                      double slice_thickness_mm,
                                                      double psf_fwhm_mm, rsy_volume **out);
/* ======================================================================================== */
/* End of CT imaging                                                                          */
/* ======================================================================================== */

#ifdef __cplusplus
}
#endif
#endif /* RSY_GENERATOR_H */
