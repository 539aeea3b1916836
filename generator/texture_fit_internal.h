/*
 * texture_fit_internal.h: the fitted texture model's representation and the EM kernels,
 * shared by generator/texture_fit.c, texture_io.c and tests/test_texture_fit.c. Never
 * installed.
 */
#ifndef RSY_TEXTURE_FIT_INTERNAL_H
#define RSY_TEXTURE_FIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rsy_core.h"
#include "rsy_generator.h"

/** Longest class name (bytes, NUL included) and provenance file name. */
#define RSY__TEXTURE_NAME_MAX 64
#define RSY__TEXTURE_FILE_MAX 256

/** One class of a fitted model: mixture parameters as fitted (not eigendecomposed). */
typedef struct rsy__texture_fitted_class {
    char name[RSY__TEXTURE_NAME_MAX];
    int64_t label;
    double intensity_mean, intensity_sd;
    uint64_t n_patches;
    int n_iterations;
    double log_likelihood;
    int n_components;
    double *weights; /* K, summing to 1 */
    double *means;   /* K × d */
    double *covs;    /* K × d × d, symmetric */
} rsy__texture_fitted_class;

struct rsy_texture_fitted {
    int patch_size, dim;
    double spacing_mm[3];
    int n_classes;
    rsy__texture_fitted_class *classes;
    /* Provenance (docs/texture-model.md). */
    char source_file[RSY__TEXTURE_FILE_MAX], source_sha256[65];
    char labels_file[RSY__TEXTURE_FILE_MAX], labels_sha256[65];
    int auto_classes; /* 0 when classes came from a label map */
    rsy_texture_fit_params fit;
    char version[32];
};

/** An empty model of @p n_classes classes of patch edge @p p (arrays not allocated). */
rsy_status rsy__texture_fitted_alloc(rsy_texture_fitted **out, int p, const double spacing_mm[3],
                                    int n_classes);
/** Allocate class @p c's arrays for @p k components. */
rsy_status rsy__texture_fitted_class_alloc(rsy_texture_fitted *m, int c, int k);

/** Result of a mixture fit. */
typedef struct rsy__texture_em_result {
    int n_iterations;      /* E-steps evaluated */
    int n_components;      /* components kept (<= k; the first n_components of the arrays) */
    double log_likelihood; /* mean per sample, at the returned parameters */
} rsy__texture_em_result;

/**
 * k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre uniform among the @p n
 * rows of @p x (n × d), each next one drawn with probability proportional to the squared
 * distance to the nearest centre chosen so far. Writes @p k row indices to @p centre_idx.
 * @return RSY_OK, RSY_EINVAL (n < k, or fewer than k distinct rows), RSY_ENOMEM.
 */
rsy_status rsy__texture_kmeanspp(const double *x, size_t n, int d, int k, rsy_rng *rng,
                                 size_t *centre_idx);

/**
 * Fit an up-to-@p k-component full-covariance Gaussian mixture to the @p n rows of @p x
 * (n × d) by EM from a k-means++ + Lloyd start, with the parameters' cov_floor, tolerance,
 * max_iterations and n_threads. Components whose effective count Σ_n r_nk falls below
 * max(50, 2·d) are dropped one at a time, smallest first (a warning is logged), their
 * responsibilities renormalised over the others and the weights with them; the kept
 * components are the first res->n_components of weights[k], means[k·d], covs[k·d·d]. The
 * parameters returned are the best evaluated (highest mean log-likelihood since the last
 * drop); a fall of the likelihood between iterations (possible with cov_floor > 0, which makes
 * the M-step inexact) is logged as a warning and ends the iteration. When @p ll_history is not
 * NULL it receives the mean log-likelihood of each E-step (max_iterations values at most;
 * res->n_iterations written).
 * @return RSY_OK, RSY_EINVAL, RSY_ENUMERIC (fewer than max(50, 2·d) samples, no component
 *         keeping that many, a covariance not positive definite; logged), RSY_ENOMEM.
 */
rsy_status rsy__texture_em(const double *x, size_t n, int d, int k,
                           const rsy_texture_fit_params *p, rsy_rng *rng, double *weights,
                           double *means, double *covs, double *ll_history,
                           rsy__texture_em_result *res);

/**
 * Intensity classes: a @p k-component 1-D Gaussian mixture fitted by EM on the finite
 * non-zero voxels of @p image (quantile start), components sorted by mean; writes to
 * @p class_of (one per voxel) 0 outside the mask, else 1 + the rank of the most responsible
 * component, and the sorted component means to @p means (k values).
 * @return RSY_OK, RSY_EINVAL (fewer than k distinct values in the mask), RSY_ENOMEM.
 */
rsy_status rsy__texture_intensity_classes(const rsy_volume *image, int k, int max_iterations,
                                          double tolerance, uint16_t *class_of, double *means);

#endif /* RSY_TEXTURE_FIT_INTERNAL_H */
