/*
 * texture_prior.c: class-conditional Gaussian-mixture patch priors (DESIGN.md section 6).
 *
 * A model holds, per class id, up to RSY_TEXTURE_MAX_COMPONENTS Gaussian components over
 * p×p×p patches. Each covariance is eigendecomposed once, when the component is added, with
 * GSL's symmetric eigensolver in double precision (gsl_eigen_symmv: Householder
 * tridiagonalisation and implicit QL, GSL reference manual section "Real Symmetric
 * Matrices"). Eigenvalues are floored so the exact denoiser of texture_denoise.c can divide
 * by λ + σ² for every σ >= 0 and so semi-definite covariances (a smooth analytic kernel has
 * many numerically zero eigenvalues) are usable.
 *
 * Analytic presets use the squared-exponential (Gaussian) correlation
 *     cov(Δ) = variance · exp(−Σ_a (Δ_a·spacing_a)² / (2·ℓ_a²)),
 * the kernel whose autocorrelation at lag h voxels along axis a is exp(−(h·s_a)²/(2ℓ_a²))
 * (Rasmussen & Williams 2006, "Gaussian Processes for Machine Learning", eq. 4.9).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>

#include "core_internal.h"
#include "texture_internal.h"

/* Relative asymmetry accepted in a covariance (|c_ij − c_ji| <= tol·max|c|). */
#define RSY__TEXTURE_SYM_TOL 1e-9

static void component_clear(rsy__texture_component *c)
{
    RSY_FREE(c->mean);
    RSY_FREE(c->eigval);
    RSY_FREE(c->eigvec);
}

rsy_status rsy_texture_prior_create(rsy_texture_prior **out, int patch_size,
                                    const double spacing_mm[3], int n_classes)
{
    rsy_status rc = RSY_OK;
    rsy_texture_prior *m = NULL;
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (patch_size < 1 || patch_size > RSY_TEXTURE_MAX_PATCH || patch_size % 2 == 0) {
        rsy_log_error("patch size %d is not odd in [1, %d]", patch_size, RSY_TEXTURE_MAX_PATCH);
        return RSY_EINVAL;
    }
    rsy__texture_blas_single_thread(); /* the eigensolver calls OpenBLAS */
    if (n_classes < 1 || n_classes > 65536) {
        rsy_log_error("class count %d outside [1, 65536]", n_classes);
        return RSY_EINVAL;
    }
    if (!spacing_mm)
        return RSY_EINVAL;
    for (int a = 0; a < 3; a++) {
        if (!isfinite(spacing_mm[a]) || spacing_mm[a] <= 0.0) {
            rsy_log_error("spacing %g mm along axis %d is not finite and > 0", spacing_mm[a], a);
            return RSY_EINVAL;
        }
    }
    m = calloc(1, sizeof *m);
    if (!m)
        return RSY_ENOMEM;
    m->patch_size = patch_size;
    m->dim = patch_size * patch_size * patch_size;
    memcpy(m->spacing_mm, spacing_mm, sizeof m->spacing_mm);
    m->n_classes = n_classes;
    m->n_components = calloc((size_t)n_classes, sizeof *m->n_components);
    m->components = calloc((size_t)n_classes, sizeof *m->components);
    if (!m->n_components || !m->components) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    *out = m;
    return RSY_OK;
fail:
    rsy_texture_prior_destroy(m);
    return rc;
}

void rsy_texture_prior_destroy(rsy_texture_prior *m)
{
    if (!m)
        return;
    if (m->components && m->n_components) {
        for (int c = 0; c < m->n_classes; c++)
            for (int k = 0; k < m->n_components[c]; k++)
                component_clear(&m->components[c][k]);
    }
    free(m->components);
    free(m->n_components);
    free(m);
}

int rsy_texture_prior_patch_size(const rsy_texture_prior *m)
{
    return m ? m->patch_size : 0;
}

int rsy_texture_prior_n_classes(const rsy_texture_prior *m)
{
    return m ? m->n_classes : 0;
}

int rsy_texture_prior_n_components(const rsy_texture_prior *m, int class_id)
{
    if (!m || class_id < 0 || class_id >= m->n_classes)
        return 0;
    return m->n_components[class_id];
}

/* Eigendecompose the symmetric d×d @p cov into @p c (eigval, eigvec), flooring eigenvalues. */
static rsy_status eigendecompose(int d, const double *cov, rsy__texture_component *c)
{
    rsy_status rc = RSY_OK;
    gsl_matrix *a = gsl_matrix_alloc((size_t)d, (size_t)d);
    gsl_matrix *v = gsl_matrix_alloc((size_t)d, (size_t)d);
    gsl_vector *eval = gsl_vector_alloc((size_t)d);
    gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc((size_t)d);
    if (!a || !v || !eval || !w) {
        rc = RSY_ENOMEM;
        goto done;
    }
    /* Symmetrise exactly: the solver reads only the lower triangle. */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            gsl_matrix_set(a, (size_t)i, (size_t)j,
                           0.5 * (cov[(size_t)i * d + j] + cov[(size_t)j * d + i]));
    int gerr = gsl_eigen_symmv(a, eval, v, w);
    if (gerr != GSL_SUCCESS) {
        rsy_log_error("eigendecomposition failed: %s", gsl_strerror(gerr));
        rc = RSY_ENUMERIC;
        goto done;
    }
    /* Descending order, so the largest eigenvalue is first (only for readability of dumps;
     * the denoiser does not depend on the order). */
    gerr = gsl_eigen_symmv_sort(eval, v, GSL_EIGEN_SORT_VAL_DESC);
    if (gerr != GSL_SUCCESS) {
        rc = RSY_ENUMERIC;
        goto done;
    }
    double lmax = gsl_vector_get(eval, 0);
    if (!(lmax > 0.0) || !isfinite(lmax)) {
        rsy_log_error("covariance has no positive eigenvalue (largest %g)", lmax);
        rc = RSY_EINVAL;
        goto done;
    }
    double floor_val = fmax(RSY__TEXTURE_EIG_FLOOR_REL * lmax, RSY__TEXTURE_EIG_FLOOR_ABS);
    for (int j = 0; j < d; j++)
        c->eigval[j] = fmax(gsl_vector_get(eval, (size_t)j), floor_val);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            c->eigvec[(size_t)i * d + j] = gsl_matrix_get(v, (size_t)i, (size_t)j);
done:
    gsl_eigen_symmv_free(w);
    gsl_vector_free(eval);
    gsl_matrix_free(v);
    gsl_matrix_free(a);
    return rc;
}

rsy_status rsy_texture_prior_add_component(rsy_texture_prior *m, int class_id, double weight,
                                           const double *mean, const double *cov)
{
    rsy_status rc = RSY_OK;
    rsy__texture_component c = {0};
    if (!m || !cov)
        return RSY_EINVAL;
    if (class_id < 0 || class_id >= m->n_classes) {
        rsy_log_error("class id %d outside [0, %d)", class_id, m->n_classes);
        return RSY_EINVAL;
    }
    if (m->n_components[class_id] >= RSY_TEXTURE_MAX_COMPONENTS) {
        rsy_log_error("class %d already has %d components", class_id, RSY_TEXTURE_MAX_COMPONENTS);
        return RSY_EINVAL;
    }
    if (!isfinite(weight) || weight <= 0.0) {
        rsy_log_error("component weight %g is not finite and > 0", weight);
        return RSY_EINVAL;
    }
    const int d = m->dim;
    const size_t dd = (size_t)d * (size_t)d;
    double cmax = 0.0;
    for (size_t i = 0; i < dd; i++) {
        if (!isfinite(cov[i])) {
            rsy_log_error("covariance has a non-finite entry");
            return RSY_EINVAL;
        }
        cmax = fmax(cmax, fabs(cov[i]));
    }
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < i; j++) {
            double asym = fabs(cov[(size_t)i * d + j] - cov[(size_t)j * d + i]);
            if (asym > RSY__TEXTURE_SYM_TOL * cmax) {
                rsy_log_error("covariance is not symmetric at (%d, %d)", i, j);
                return RSY_EINVAL;
            }
        }
    }
    if (mean) {
        for (int i = 0; i < d; i++) {
            if (!isfinite(mean[i])) {
                rsy_log_error("mean has a non-finite entry");
                return RSY_EINVAL;
            }
        }
    }
    c.weight = weight;
    c.mean = calloc((size_t)d, sizeof *c.mean);
    c.eigval = malloc((size_t)d * sizeof *c.eigval);
    c.eigvec = malloc(dd * sizeof *c.eigvec);
    if (!c.mean || !c.eigval || !c.eigvec) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    if (mean)
        memcpy(c.mean, mean, (size_t)d * sizeof *c.mean);
    rc = eigendecompose(d, cov, &c);
    if (rc != RSY_OK)
        goto fail;
    m->components[class_id][m->n_components[class_id]++] = c;
    return RSY_OK;
fail:
    component_clear(&c);
    return rc;
}

rsy_status rsy__texture_prior_copy_class(rsy_texture_prior *dst, int dst_class,
                                         const rsy_texture_prior *src, int src_class)
{
    if (!dst || !src || dst_class < 0 || dst_class >= dst->n_classes || src_class < 0 ||
        src_class >= src->n_classes)
        return RSY_EINVAL;
    if (dst->patch_size != src->patch_size) {
        rsy_log_error("patch sizes differ (%d and %d)", dst->patch_size, src->patch_size);
        return RSY_EINVAL;
    }
    const int n = src->n_components[src_class];
    if (dst->n_components[dst_class] + n > RSY_TEXTURE_MAX_COMPONENTS) {
        rsy_log_error("class %d would have more than %d components", dst_class,
                      RSY_TEXTURE_MAX_COMPONENTS);
        return RSY_EINVAL;
    }
    const size_t d = (size_t)src->dim;
    for (int k = 0; k < n; k++) {
        const rsy__texture_component *s = &src->components[src_class][k];
        rsy__texture_component c = {s->weight, NULL, NULL, NULL};
        c.mean = malloc(d * sizeof *c.mean);
        c.eigval = malloc(d * sizeof *c.eigval);
        c.eigvec = malloc(d * d * sizeof *c.eigvec);
        if (!c.mean || !c.eigval || !c.eigvec) {
            component_clear(&c);
            return RSY_ENOMEM;
        }
        memcpy(c.mean, s->mean, d * sizeof *c.mean);
        memcpy(c.eigval, s->eigval, d * sizeof *c.eigval);
        memcpy(c.eigvec, s->eigvec, d * d * sizeof *c.eigvec);
        dst->components[dst_class][dst->n_components[dst_class]++] = c;
    }
    return RSY_OK;
}

rsy_status rsy_texture_prior_add_preset(rsy_texture_prior *m, int class_id,
                                        const rsy_texture_preset_component *c)
{
    rsy_status rc = RSY_OK;
    double *cov = NULL, *mean = NULL;
    if (!m || !c)
        return RSY_EINVAL;
    if (!isfinite(c->variance) || c->variance <= 0.0 || !isfinite(c->mean)) {
        rsy_log_error("preset variance %g / mean %g invalid", c->variance, c->mean);
        return RSY_EINVAL;
    }
    for (int a = 0; a < 3; a++) {
        if (!isfinite(c->corr_length_mm[a]) || c->corr_length_mm[a] <= 0.0) {
            rsy_log_error("correlation length %g mm along axis %d is not finite and > 0",
                          c->corr_length_mm[a], a);
            return RSY_EINVAL;
        }
    }
    const int p = m->patch_size, d = m->dim;
    cov = malloc((size_t)d * (size_t)d * sizeof *cov);
    mean = malloc((size_t)d * sizeof *mean);
    if (!cov || !mean) {
        rc = RSY_ENOMEM;
        goto done;
    }
    /* Patch voxel i = a + p·(b + p·c); the kernel depends on the offset between two voxels. */
    double inv2l2[3];
    for (int a = 0; a < 3; a++)
        inv2l2[a] = 1.0 / (2.0 * c->corr_length_mm[a] * c->corr_length_mm[a]);
    for (int i = 0; i < d; i++) {
        int pi[3] = {i % p, (i / p) % p, i / (p * p)};
        mean[i] = c->mean;
        for (int j = 0; j < d; j++) {
            int pj[3] = {j % p, (j / p) % p, j / (p * p)};
            double q = 0.0;
            for (int a = 0; a < 3; a++) {
                double dx_mm = (double)(pi[a] - pj[a]) * m->spacing_mm[a];
                q += dx_mm * dx_mm * inv2l2[a];
            }
            cov[(size_t)i * d + j] = c->variance * exp(-q);
        }
    }
    rc = rsy_texture_prior_add_component(m, class_id, c->weight, mean, cov);
done:
    free(mean);
    free(cov);
    return rc;
}
