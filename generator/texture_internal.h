/*
 * texture_internal.h: declarations shared by generator/texture_prior.c, texture_denoise.c,
 * texture_sample.c and tests/test_texture.c. Never installed.
 */
#ifndef RSY_TEXTURE_INTERNAL_H
#define RSY_TEXTURE_INTERNAL_H

#include <stddef.h>

#include "rsy_core.h"
#include "rsy_generator.h"

/** Eigenvalue floor, relative to the largest eigenvalue of the covariance and absolute. */
#define RSY__TEXTURE_EIG_FLOOR_REL 1e-6
#define RSY__TEXTURE_EIG_FLOOR_ABS 1e-12

/** Set OpenBLAS to one thread, once per process (texture_denoise.c). Called before any BLAS
 *  work, including GSL's eigensolver (which calls the same BLAS): a threaded OpenBLAS call's
 *  rounding depends on its thread count, which would make priors, and so fields, depend on
 *  the machine and on what ran first in the process. */
void rsy__texture_blas_single_thread(void);

/** One mixture component, eigendecomposed: cov = U diag(eigval) Uᵀ. */
typedef struct rsy__texture_component {
    double weight;  /* unnormalised, > 0 */
    double *mean;   /* d values */
    double *eigval; /* d values, floored, > 0 */
    double *eigvec; /* d×d row-major; column j is the eigenvector of eigval[j] */
} rsy__texture_component;

struct rsy_texture_prior {
    int patch_size; /* p, odd */
    int dim;        /* d = p³ */
    double spacing_mm[3];
    int n_classes;
    int *n_components;                                                /* per class */
    rsy__texture_component (*components)[RSY_TEXTURE_MAX_COMPONENTS]; /* per class */
};

/**
 * Append deep copies of every component of class @p src_class of @p src (eigendecomposition
 * included, so nothing is recomputed) to class @p dst_class of @p dst. Both priors must have
 * the same patch size; the spacings may differ (a copied component is a covariance over patch
 * voxels, whatever their size).
 * @return RSY_OK, RSY_EINVAL (bad class id, patch sizes differ, @p dst_class would exceed
 *         RSY_TEXTURE_MAX_COMPONENTS; logged), RSY_ENOMEM.
 */
rsy_status rsy__texture_prior_copy_class(rsy_texture_prior *dst, int dst_class,
                                         const rsy_texture_prior *src, int src_class);

/**
 * Denoise @p n patches of class @p class_id (rows of d floats, patch order x fastest) at
 * noise level @p sigma with worker 0's scratch: the per-patch kernel the whole-volume path
 * uses, exposed for the low-dimensional tests and samplers. @p y and @p out do not alias.
 * @return RSY_OK, RSY_EINVAL (bad class id or sigma).
 */
rsy_status rsy__patch_denoiser_denoise_patches(rsy_patch_denoiser *d, int class_id, const float *y,
                                               size_t n, double sigma, float *out);

/** Patch dimension d = p³ and class count of @p d. */
void rsy__patch_denoiser_shape(const rsy_patch_denoiser *d, int *dim, int *n_classes);

/** A denoiser of a flat state of n values: the sampler core's view of any denoiser. */
typedef rsy_status (*rsy__texture_eval_fn)(void *ctx, const float *x, double sigma, float *out);
/** Called on the state before each evaluation at noise level @p sigma, and once at the end
 *  with sigma = 0 (inpainting re-imposes the known values there). */
typedef void (*rsy__texture_impose_fn)(void *ctx, float *x, double sigma, rsy_rng *rng);

/**
 * The sampler core shared by the whole-volume and the patch paths: integrate the
 * probability-flow ODE for a state of @p n values from x = σ_max·N(0, I) (drawn from @p rng
 * into @p x) down to σ = 0. @p impose may be NULL. @p n_evals (may be NULL) receives the
 * number of evaluations.
 * @return RSY_OK, RSY_EINVAL (bad params), RSY_ENOMEM, or the first failing eval's status.
 */
rsy_status rsy__texture_solve(size_t n, rsy__texture_eval_fn eval, void *eval_ctx,
                              rsy__texture_impose_fn impose, void *impose_ctx,
                              const rsy_texture_sample_params *p, rsy_rng *rng, float *x,
                              size_t *n_evals);

/**
 * Draw @p n independent patches of class @p class_id of the model behind @p d (rows of d
 * floats in @p out) with the sampler @p p: the low-dimensional path for the statistical tests.
 * @return as rsy__texture_solve(), RSY_EINVAL also for a bad class id.
 */
rsy_status rsy__texture_sample_patches(rsy_patch_denoiser *d, int class_id, size_t n,
                                       const rsy_texture_sample_params *p, rsy_rng *rng, float *out,
                                       size_t *n_evals);

#endif /* RSY_TEXTURE_INTERNAL_H */
