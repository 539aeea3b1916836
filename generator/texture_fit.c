/*
 * texture_fit.c: fitting texture models on real scans (`raresynth fit-texture`,
 * docs/texture-model.md, DESIGN.md section 6).
 *
 * Classes come from a label map or from a 1-D Gaussian mixture of the intensities inside the
 * brain mask (the non-zero voxels). The intensity mean and SD of every class are estimated
 * first; the image is then normalised voxel by voxel with the voxel's own class,
 * u(v) = (I(v) − mean[class(v)]) / sd[class(v)] (DESIGN.md section 6: the pipeline applies u
 * the same way), so a class boundary inside a patch is not texture. Per class the p³ patches
 * centred on the class's voxels that lie inside the labelled region (no voxel of label 0 or
 * outside the volume) are extracted (a random subset when there are more than max_patches,
 * or than the memory bound), and a full-covariance Gaussian mixture is
 * fitted by EM (Dempster, Laird & Rubin 1977; Bishop 2006, "Pattern Recognition and Machine
 * Learning", section 9.2.2) from a k-means++ seeding (Arthur & Vassilvitskii 2007) refined by
 * Lloyd iterations:
 *     E-step  log r_nk = log π_k − ½ (d log 2π + log|Σ_k| + ‖L_k⁻¹ (x_n − μ_k)‖²) − lse_n,
 *             Σ_k = L_k L_kᵀ (Cholesky), lse_n = log Σ_k exp(·) (log-sum-exp);
 *     M-step  N_k = Σ_n r_nk, π_k = N_k / n, μ_k = Σ_n r_nk x_n / N_k,
 *             Σ_k = Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ / N_k + floor·I;
 *             a component with N_k < max(50, 2d) is dropped and the weights renormalised;
 *     stop    when the mean log-likelihood (1/n) Σ_n lse_n improves by less than the tolerance
 *             (or falls: the floor makes the M-step inexact), or at the iteration cap, and
 *             return the best parameters evaluated.
 * The whitening is a triangular solve (cblas_dtrsm) per block of rows and the covariance a
 * rank-k update (cblas_dsyrk) per block of rows. The E-step runs on the pool over fixed blocks
 * of rows, the M-step over components; every sum is accumulated in a fixed order and
 * OpenBLAS runs single-threaded in each caller, so results do not depend on the thread count.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core_internal.h"
#include "texture_fit_internal.h"

/* Rows per block of the E- and M-steps: fixes the partition (and so the results) and bounds
 * the scratch to n_threads·block·d doubles. */
#define FIT_BLOCK_ROWS 1024
/* Lloyd iterations refining the k-means++ seeds before EM. */
#define FIT_LLOYD_MAX 20
/* Minimum effective count N_k = Σ_n r_nk of a component: max(FIT_MIN_COUNT_FLOOR, 2·d). Below
 * it the component's mean and covariance rest on too few patches (with d = 125, a covariance
 * of 7875 free entries from fewer than 250 patches is the floor plus a few rank-one terms, and
 * a component collapsed on one patch stores that patch): such components are dropped and the
 * weights renormalised. */
#define FIT_MIN_COUNT_FLOOR 50.0
/* A mean log-likelihood decrease larger than this (relative to max(1, |ll|)) between EM
 * iterations is reported: with a zero covariance floor EM cannot decrease it beyond rounding;
 * the floor makes the M-step inexact and it can. */
#define FIT_LL_DECREASE_TOL 1e-9
/* Memory bound of one class's patch matrix (n·d doubles): 512 MiB, 2^26 doubles, i.e. at most
 * 536870 patches at p = 5 and 92056 at p = 9. max_patches = 0 means every patch up to this
 * bound; an explicit max_patches above it is refused. */
#define FIT_MAX_PATCH_DOUBLES ((size_t)1 << 26)
/* Variance floor of the 1-D intensity mixture, relative to the variance inside the mask, so
 * a component cannot collapse onto one value of an integer-valued image. */
#define FIT_INTENSITY_VAR_FLOOR_REL 1e-4
/* An intensity component with less than one voxel of responsibility has collapsed. */
#define FIT_INTENSITY_MIN_COUNT 1.0

static const double LOG_2PI = 1.8378770664093454836;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void)
{
    /* Our parallelism is over blocks; nested BLAS threads would only oversubscribe. */
    openblas_set_num_threads(1);
}

rsy_texture_fit_params rsy_texture_fit_params_default(void)
{
    rsy_texture_fit_params p;
    memset(&p, 0, sizeof p);
    p.patch_size = 5;
    p.n_components = 3;
    p.max_iterations = 100;
    p.tolerance = 1e-4;
    p.cov_floor = 1e-3;
    p.max_patches = 20000;
    p.seed = 1;
    p.n_threads = 1;
    return p;
}

static rsy_status check_params(const rsy_texture_fit_params *p)
{
    if (p->patch_size < 1 || p->patch_size > RSY_TEXTURE_MAX_PATCH || p->patch_size % 2 == 0) {
        rsy_log_error("patch size %d is not odd in [1, %d]", p->patch_size,
                      RSY_TEXTURE_MAX_PATCH);
        return RSY_EINVAL;
    }
    if (p->n_components < 1 || p->n_components > RSY_TEXTURE_MAX_COMPONENTS) {
        rsy_log_error("component count %d outside [1, %d]", p->n_components,
                      RSY_TEXTURE_MAX_COMPONENTS);
        return RSY_EINVAL;
    }
    if (p->max_iterations < 1) {
        rsy_log_error("iteration cap %d is not >= 1", p->max_iterations);
        return RSY_EINVAL;
    }
    if (!isfinite(p->tolerance) || p->tolerance < 0.0 || !isfinite(p->cov_floor) ||
        p->cov_floor < 0.0) {
        rsy_log_error("tolerance %g or covariance floor %g is not finite and >= 0", p->tolerance,
                      p->cov_floor);
        return RSY_EINVAL;
    }
    if (p->n_threads < 1 || p->n_threads > 1024) {
        rsy_log_error("thread count %d outside [1, 1024]", p->n_threads);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

/* ---- the model object ------------------------------------------------------------------ */
rsy_status rsy__texture_fitted_alloc(rsy_texture_fitted **out, int p, const double spacing_mm[3],
                                    int n_classes)
{
    *out = NULL;
    rsy_texture_fitted *m = calloc(1, sizeof *m);
    if (!m)
        return RSY_ENOMEM;
    m->patch_size = p;
    m->dim = p * p * p;
    memcpy(m->spacing_mm, spacing_mm, sizeof m->spacing_mm);
    m->n_classes = n_classes;
    m->classes = calloc((size_t)n_classes, sizeof *m->classes);
    if (!m->classes) {
        free(m);
        return RSY_ENOMEM;
    }
    m->fit = rsy_texture_fit_params_default();
    snprintf(m->version, sizeof m->version, "%s", rsy_version());
    *out = m;
    return RSY_OK;
}

rsy_status rsy__texture_fitted_class_alloc(rsy_texture_fitted *m, int c, int k)
{
    rsy__texture_fitted_class *cl = &m->classes[c];
    const size_t d = (size_t)m->dim;
    cl->n_components = k;
    cl->weights = calloc((size_t)k, sizeof *cl->weights);
    cl->means = calloc((size_t)k * d, sizeof *cl->means);
    cl->covs = calloc((size_t)k * d * d, sizeof *cl->covs);
    if (!cl->weights || !cl->means || !cl->covs)
        return RSY_ENOMEM;
    return RSY_OK;
}

void rsy_texture_fitted_destroy(rsy_texture_fitted *m)
{
    if (!m)
        return;
    if (m->classes) {
        for (int c = 0; c < m->n_classes; c++) {
            free(m->classes[c].weights);
            free(m->classes[c].means);
            free(m->classes[c].covs);
        }
    }
    free(m->classes);
    free(m);
}

int rsy_texture_fitted_patch_size(const rsy_texture_fitted *m)
{
    return m ? m->patch_size : 0;
}

int rsy_texture_fitted_n_classes(const rsy_texture_fitted *m)
{
    return m ? m->n_classes : 0;
}

rsy_status rsy_texture_fitted_class_info(const rsy_texture_fitted *m, int class_id,
                                        rsy_texture_class_info *info)
{
    if (!m || !info || class_id < 0 || class_id >= m->n_classes)
        return RSY_EINVAL;
    const rsy__texture_fitted_class *cl = &m->classes[class_id];
    info->name = cl->name;
    info->label = cl->label;
    info->intensity_mean = cl->intensity_mean;
    info->intensity_sd = cl->intensity_sd;
    info->n_patches = cl->n_patches;
    info->n_components = cl->n_components;
    info->n_iterations = cl->n_iterations;
    info->log_likelihood = cl->log_likelihood;
    return RSY_OK;
}

rsy_status rsy_texture_fitted_component(const rsy_texture_fitted *m, int class_id, int k,
                                       double *weight, const double **mean, const double **cov)
{
    if (!m || class_id < 0 || class_id >= m->n_classes)
        return RSY_EINVAL;
    const rsy__texture_fitted_class *cl = &m->classes[class_id];
    if (k < 0 || k >= cl->n_components)
        return RSY_EINVAL;
    const size_t d = (size_t)m->dim;
    if (weight)
        *weight = cl->weights[k];
    if (mean)
        *mean = cl->means + (size_t)k * d;
    if (cov)
        *cov = cl->covs + (size_t)k * d * d;
    return RSY_OK;
}

rsy_status rsy_texture_fitted_to_prior(const rsy_texture_fitted *m, rsy_texture_prior **out)
{
    if (!m || !out)
        return RSY_EINVAL;
    *out = NULL;
    rsy_texture_prior *prior = NULL;
    rsy_status rc = rsy_texture_prior_create(&prior, m->patch_size, m->spacing_mm, m->n_classes);
    if (rc != RSY_OK)
        return rc;
    const size_t d = (size_t)m->dim;
    for (int c = 0; c < m->n_classes; c++) {
        const rsy__texture_fitted_class *cl = &m->classes[c];
        for (int k = 0; k < cl->n_components; k++) {
            rc = rsy_texture_prior_add_component(prior, c, cl->weights[k],
                                                 cl->means + (size_t)k * d,
                                                 cl->covs + (size_t)k * d * d);
            if (rc != RSY_OK) {
                rsy_log_error("class '%s', component %d: not a valid prior component", cl->name,
                              k);
                rsy_texture_prior_destroy(prior);
                return rc;
            }
        }
    }
    *out = prior;
    return RSY_OK;
}

/* Basename of @p path into @p dst. */
static void copy_basename(char *dst, size_t n, const char *path)
{
    const char *slash = strrchr(path, '/');
    snprintf(dst, n, "%s", slash ? slash + 1 : path);
}

rsy_status rsy_texture_fitted_set_source(rsy_texture_fitted *m, const char *image_path,
                                        const char *labels_path)
{
    if (!m || !image_path)
        return RSY_EINVAL;
    char img_hex[65], lab_hex[65] = "";
    rsy_status rc = rsy_sha256_file(image_path, img_hex);
    if (rc != RSY_OK)
        return rc;
    if (labels_path) {
        rc = rsy_sha256_file(labels_path, lab_hex);
        if (rc != RSY_OK)
            return rc;
    }
    copy_basename(m->source_file, sizeof m->source_file, image_path);
    memcpy(m->source_sha256, img_hex, sizeof m->source_sha256);
    if (labels_path)
        copy_basename(m->labels_file, sizeof m->labels_file, labels_path);
    else
        m->labels_file[0] = '\0';
    memcpy(m->labels_sha256, lab_hex, sizeof m->labels_sha256);
    return RSY_OK;
}

/* ---- voxel access ---------------------------------------------------------------------- */
static double voxel_value(const rsy_volume *v, size_t i)
{
    switch (v->dtype) {
    case RSY_DTYPE_UINT8:
        return ((const uint8_t *)v->data)[i];
    case RSY_DTYPE_INT16:
        return ((const int16_t *)v->data)[i];
    case RSY_DTYPE_UINT16:
        return ((const uint16_t *)v->data)[i];
    case RSY_DTYPE_FLOAT32:
        return ((const float *)v->data)[i];
    }
    return NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* ---- auto-classes: the 1-D intensity mixture -------------------------------------------- */
rsy_status rsy__texture_intensity_classes(const rsy_volume *image, int k, int max_iterations,
                                          double tolerance, uint16_t *class_of, double *means)
{
    rsy_status rc = RSY_OK;
    const size_t nvox = rsy_geometry_nvox(&image->geom);
    double *vals = NULL, *uval = NULL, *ucnt = NULL, *resp = NULL;
    double mu[RSY_TEXTURE_MAX_COMPONENTS], var[RSY_TEXTURE_MAX_COMPONENTS];
    double w[RSY_TEXTURE_MAX_COMPONENTS];
    int order[RSY_TEXTURE_MAX_COMPONENTS];
    if (k < 1 || k > RSY_TEXTURE_MAX_COMPONENTS) {
        rsy_log_error("auto-classes %d outside [1, %d]", k, RSY_TEXTURE_MAX_COMPONENTS);
        return RSY_EINVAL;
    }
    vals = malloc(nvox * sizeof *vals);
    if (!vals)
        return RSY_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nvox; i++) {
        double v = voxel_value(image, i);
        if (isfinite(v) && v != 0.0)
            vals[n++] = v;
    }
    if (n == 0) {
        rsy_log_error("the image has no non-zero voxel (empty brain mask)");
        rc = RSY_EINVAL;
        goto done;
    }
    qsort(vals, n, sizeof *vals, cmp_double);
    /* EM on the distinct values weighted by their counts: the same sums, far fewer terms for
     * an integer-valued image. */
    size_t m = 0;
    uval = malloc(n * sizeof *uval);
    ucnt = malloc(n * sizeof *ucnt);
    if (!uval || !ucnt) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && vals[i] == uval[m - 1]) {
            ucnt[m - 1] += 1.0;
        } else {
            uval[m] = vals[i];
            ucnt[m++] = 1.0;
        }
    }
    if (m < (size_t)k) {
        rsy_log_error("%zu distinct intensities in the mask, fewer than %d classes", m, k);
        rc = RSY_EINVAL;
        goto done;
    }
    double gmean = 0.0, gvar = 0.0;
    for (size_t i = 0; i < n; i++)
        gmean += vals[i];
    gmean /= (double)n;
    for (size_t i = 0; i < n; i++)
        gvar += (vals[i] - gmean) * (vals[i] - gmean);
    gvar /= (double)n;
    const double var_floor = fmax(FIT_INTENSITY_VAR_FLOOR_REL * gvar, DBL_MIN);
    /* Start: means at the quantiles (j + ½)/k, equal weights, variance gvar/k². */
    for (int j = 0; j < k; j++) {
        size_t q = (size_t)(((double)j + 0.5) / (double)k * (double)n);
        mu[j] = vals[q < n ? q : n - 1];
        var[j] = fmax(gvar / ((double)k * (double)k), var_floor);
        w[j] = 1.0 / (double)k;
    }
    resp = malloc(m * (size_t)k * sizeof *resp);
    if (!resp) {
        rc = RSY_ENOMEM;
        goto done;
    }
    double prev = -INFINITY;
    for (int it = 0; it < max_iterations; it++) {
        double ll = 0.0, lnorm[RSY_TEXTURE_MAX_COMPONENTS];
        for (int j = 0; j < k; j++)
            lnorm[j] = log(w[j]) - 0.5 * (LOG_2PI + log(var[j]));
        for (size_t i = 0; i < m; i++) {
            double *r = resp + i * (size_t)k, mx = -INFINITY, s = 0.0;
            for (int j = 0; j < k; j++) {
                double dx = uval[i] - mu[j];
                r[j] = lnorm[j] - 0.5 * dx * dx / var[j];
                mx = fmax(mx, r[j]);
            }
            for (int j = 0; j < k; j++)
                s += exp(r[j] - mx);
            double lse = mx + log(s);
            for (int j = 0; j < k; j++)
                r[j] = exp(r[j] - lse);
            ll += ucnt[i] * lse;
        }
        ll /= (double)n;
        if (it > 0 && ll - prev < tolerance)
            break;
        prev = ll;
        for (int j = 0; j < k; j++) {
            double nk = 0.0, s1 = 0.0, s2 = 0.0;
            for (size_t i = 0; i < m; i++)
                nk += ucnt[i] * resp[i * (size_t)k + j];
            if (nk < FIT_INTENSITY_MIN_COUNT) {
                rsy_log_error("intensity component %d lost all its voxels; use fewer classes", j);
                rc = RSY_ENUMERIC;
                goto done;
            }
            for (size_t i = 0; i < m; i++)
                s1 += ucnt[i] * resp[i * (size_t)k + j] * uval[i];
            mu[j] = s1 / nk;
            for (size_t i = 0; i < m; i++) {
                double dx = uval[i] - mu[j];
                s2 += ucnt[i] * resp[i * (size_t)k + j] * dx * dx;
            }
            var[j] = fmax(s2 / nk, var_floor);
            w[j] = nk / (double)n;
        }
    }
    /* Rank the components by mean (insertion sort of k <= 16 indices). */
    for (int j = 0; j < k; j++)
        order[j] = j;
    for (int j = 1; j < k; j++) {
        int t = order[j], i = j;
        while (i > 0 && mu[order[i - 1]] > mu[t]) {
            order[i] = order[i - 1];
            i--;
        }
        order[i] = t;
    }
    double lnorm[RSY_TEXTURE_MAX_COMPONENTS];
    for (int j = 0; j < k; j++) {
        means[j] = mu[order[j]];
        lnorm[j] = log(w[order[j]]) - 0.5 * log(var[order[j]]);
    }
    for (size_t i = 0; i < nvox; i++) {
        double v = voxel_value(image, i);
        class_of[i] = 0;
        if (!isfinite(v) || v == 0.0)
            continue;
        double best = -INFINITY;
        for (int j = 0; j < k; j++) {
            double dx = v - mu[order[j]];
            double l = lnorm[j] - 0.5 * dx * dx / var[order[j]];
            if (l > best) {
                best = l;
                class_of[i] = (uint16_t)(j + 1);
            }
        }
    }
done:
    free(resp);
    free(ucnt);
    free(uval);
    free(vals);
    return rc;
}

/* ---- k-means++ and Lloyd ---------------------------------------------------------------- */
static double sqdist(const double *a, const double *b, int d)
{
    double s = 0.0;
    for (int j = 0; j < d; j++) {
        double t = a[j] - b[j];
        s += t * t;
    }
    return s;
}

rsy_status rsy__texture_kmeanspp(const double *x, size_t n, int d, int k, rsy_rng *rng,
                                 size_t *centre_idx)
{
    if (!x || !rng || !centre_idx || d < 1 || k < 1 || n < (size_t)k)
        return RSY_EINVAL;
    double *d2 = malloc(n * sizeof *d2);
    if (!d2)
        return RSY_ENOMEM;
    centre_idx[0] = (size_t)rsy_rng_uniform_int(rng, n);
    const double *c0 = x + centre_idx[0] * (size_t)d;
    for (size_t i = 0; i < n; i++)
        d2[i] = sqdist(x + i * (size_t)d, c0, d);
    for (int j = 1; j < k; j++) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++)
            total += d2[i];
        if (!(total > 0.0)) {
            rsy_log_error("fewer than %d distinct samples for k-means++", k);
            free(d2);
            return RSY_EINVAL;
        }
        /* D² sampling: the first row whose cumulative weight exceeds u·total; the last row of
         * non-zero weight if rounding leaves the scan short. */
        double u = rsy_rng_uniform(rng) * total, cum = 0.0;
        size_t pick = n, last = 0;
        for (size_t i = 0; i < n; i++) {
            if (d2[i] > 0.0)
                last = i;
            cum += d2[i];
            if (cum > u && d2[i] > 0.0) {
                pick = i;
                break;
            }
        }
        if (pick == n)
            pick = last;
        centre_idx[j] = pick;
        const double *cj = x + pick * (size_t)d;
        for (size_t i = 0; i < n; i++)
            d2[i] = fmin(d2[i], sqdist(x + i * (size_t)d, cj, d));
    }
    free(d2);
    return RSY_OK;
}

/* Lloyd's k-means from the seeds in @p centres (k × d), writing the final assignment. */
static rsy_status lloyd(const double *x, size_t n, int d, int k, double *centres, int *assign)
{
    size_t *count = malloc((size_t)k * sizeof *count);
    if (!count)
        return RSY_ENOMEM;
    for (size_t i = 0; i < n; i++)
        assign[i] = -1;
    for (int it = 0; it < FIT_LLOYD_MAX; it++) {
        size_t changed = 0;
        for (size_t i = 0; i < n; i++) {
            int best = 0;
            double bd = INFINITY;
            for (int j = 0; j < k; j++) {
                double dist = sqdist(x + i * (size_t)d, centres + (size_t)j * d, d);
                if (dist < bd) {
                    bd = dist;
                    best = j;
                }
            }
            if (assign[i] != best) {
                assign[i] = best;
                changed++;
            }
        }
        if (changed == 0)
            break;
        /* New centres; an empty cluster keeps its centre. */
        memset(count, 0, (size_t)k * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[assign[i]]++;
        for (int j = 0; j < k; j++)
            if (count[j] > 0)
                memset(centres + (size_t)j * d, 0, (size_t)d * sizeof *centres);
        for (size_t i = 0; i < n; i++) {
            double *cj = centres + (size_t)assign[i] * d;
            for (int a = 0; a < d; a++)
                cj[a] += x[i * (size_t)d + a];
        }
        for (int j = 0; j < k; j++)
            if (count[j] > 0)
                for (int a = 0; a < d; a++)
                    centres[(size_t)j * d + a] /= (double)count[j];
    }
    free(count);
    return RSY_OK;
}

/* ---- EM ---------------------------------------------------------------------------------- */
typedef struct em_ctx {
    const double *x;
    size_t n;
    int d, k;
    double cov_floor;
    double *weights, *means, *covs; /* current parameters, the first k components */
    double *nk;                     /* k effective counts Σ_i r_ij */
    double nk_sum;                  /* Σ_j nk[j] over the kept components */
    double *chol;                   /* k × d × d lower Cholesky factors */
    double *log_norm;               /* k: log π_k − ½ (d log 2π + log|Σ_k|) */
    double *resp;                   /* n × k */
    double *ll_row;                 /* n */
    double *scratch;                /* n_threads × FIT_BLOCK_ROWS × d */
} em_ctx;

static rsy_status e_step_task(void *vctx, size_t index, int worker)
{
    em_ctx *c = vctx;
    const size_t d = (size_t)c->d, k = (size_t)c->k;
    const size_t r0 = index * FIT_BLOCK_ROWS;
    const size_t rows = c->n - r0 < FIT_BLOCK_ROWS ? c->n - r0 : FIT_BLOCK_ROWS;
    double *y = c->scratch + (size_t)worker * FIT_BLOCK_ROWS * d;
    for (size_t j = 0; j < k; j++) {
        const double *mu = c->means + j * d;
        for (size_t r = 0; r < rows; r++)
            for (size_t a = 0; a < d; a++)
                y[r * d + a] = c->x[(r0 + r) * d + a] - mu[a];
        /* Y ← Y·L⁻ᵀ, so each row becomes zᵀ with z = L⁻¹(x − μ) and ‖z‖² the Mahalanobis
         * distance. */
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)rows,
                    (int)d, 1.0, c->chol + j * d * d, (int)d, y, (int)d);
        for (size_t r = 0; r < rows; r++) {
            double q = 0.0;
            for (size_t a = 0; a < d; a++)
                q += y[r * d + a] * y[r * d + a];
            c->resp[(r0 + r) * k + j] = c->log_norm[j] - 0.5 * q;
        }
    }
    for (size_t r = 0; r < rows; r++) {
        double *lr = c->resp + (r0 + r) * k, mx = -INFINITY, s = 0.0;
        for (size_t j = 0; j < k; j++)
            mx = fmax(mx, lr[j]);
        for (size_t j = 0; j < k; j++)
            s += exp(lr[j] - mx);
        double lse = mx + log(s);
        for (size_t j = 0; j < k; j++)
            lr[j] = exp(lr[j] - lse);
        c->ll_row[r0 + r] = lse;
    }
    return RSY_OK;
}

static rsy_status m_step_task(void *vctx, size_t j, int worker)
{
    em_ctx *c = vctx;
    const size_t d = (size_t)c->d, k = (size_t)c->k, n = c->n;
    const double nk = c->nk[j];
    double *mu = c->means + j * d, *cov = c->covs + j * d * d;
    /* μ = Xᵀ r_j / N_j. */
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)d, 1.0 / nk, c->x, (int)d, c->resp + j,
                (int)k, 0.0, mu, 1);
    /* Σ = Σ_blocks Wᵀ W / N_j with rows w_i = √r_ij (x_i − μ): a rank-k update per block. */
    memset(cov, 0, d * d * sizeof *cov);
    double *w = c->scratch + (size_t)worker * FIT_BLOCK_ROWS * d;
    for (size_t r0 = 0; r0 < n; r0 += FIT_BLOCK_ROWS) {
        size_t rows = n - r0 < FIT_BLOCK_ROWS ? n - r0 : FIT_BLOCK_ROWS;
        for (size_t r = 0; r < rows; r++) {
            double s = sqrt(c->resp[(r0 + r) * k + j]);
            for (size_t a = 0; a < d; a++)
                w[r * d + a] = s * (c->x[(r0 + r) * d + a] - mu[a]);
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)rows, 1.0, w, (int)d, 1.0,
                    cov, (int)d);
    }
    for (size_t a = 0; a < d; a++) {
        for (size_t b = a; b < d; b++) {
            double v = cov[a * d + b] / nk;
            cov[a * d + b] = v;
            cov[b * d + a] = v;
        }
        cov[a * d + a] += c->cov_floor;
    }
    c->weights[j] = nk / c->nk_sum;
    return RSY_OK;
}

/* Effective counts N_j = Σ_i r_ij of the current responsibilities (fixed-order serial sums). */
static void effective_counts(em_ctx *c)
{
    const size_t k = (size_t)c->k, n = c->n;
    for (size_t j = 0; j < k; j++)
        c->nk[j] = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++)
            c->nk[j] += c->resp[i * k + j];
}

/* Drop, one at a time and smallest first, the components whose effective count is below
 * @p min_count. A dropped component's parameters are removed (survivors move to the front of
 * the arrays; resp rows are repacked with the new stride, moves only to lower addresses, so in
 * place is safe) and each row's responsibilities are renormalised over the survivors; a row
 * that had none on them goes wholly to the survivor of nearest mean. Rows keep summing to 1,
 * so one component always keeps all n >= min_count samples. Sets *dropped. */
static rsy_status count_and_drop(em_ctx *c, double min_count, int *dropped)
{
    const size_t d = (size_t)c->d, n = c->n;
    *dropped = 0;
    for (;;) {
        const size_t k = (size_t)c->k;
        effective_counts(c);
        size_t s = 0;
        for (size_t j = 1; j < k; j++)
            if (c->nk[j] < c->nk[s])
                s = j;
        if (c->nk[s] >= min_count)
            break;
        if (k == 1) {
            rsy_log_error("no mixture component keeps %.0f effective samples (%zu samples, "
                          "d = %zu)",
                          min_count, n, d);
            return RSY_ENUMERIC;
        }
        rsy_log_warning("mixture component %zu of %zu holds %.1f effective samples, fewer than "
                        "%.0f: dropped",
                        s, k, c->nk[s], min_count);
        for (size_t j = s; j + 1 < k; j++) {
            c->weights[j] = c->weights[j + 1];
            memmove(c->means + j * d, c->means + (j + 1) * d, d * sizeof *c->means);
            memmove(c->covs + j * d * d, c->covs + (j + 1) * d * d, d * d * sizeof *c->covs);
        }
        const size_t k2 = k - 1;
        for (size_t i = 0; i < n; i++) {
            const double *src = c->resp + i * k;
            double *dst = c->resp + i * k2, sum = 0.0;
            for (size_t t = 0; t < k2; t++) {
                dst[t] = src[t < s ? t : t + 1];
                sum += dst[t];
            }
            if (sum > 0.0) {
                for (size_t t = 0; t < k2; t++)
                    dst[t] /= sum;
            } else {
                size_t best = 0;
                double bd = INFINITY;
                for (size_t t = 0; t < k2; t++) {
                    double dist = sqdist(c->x + i * d, c->means + t * d, (int)d);
                    if (dist < bd) {
                        bd = dist;
                        best = t;
                    }
                    dst[t] = 0.0;
                }
                dst[best] = 1.0;
            }
        }
        c->k = (int)k2;
        (*dropped)++;
    }
    c->nk_sum = 0.0;
    for (size_t j = 0; j < (size_t)c->k; j++)
        c->nk_sum += c->nk[j];
    return RSY_OK;
}

/* In-place Cholesky factorisation A = L·Lᵀ of the symmetric d×d row-major @p a, L in the
 * lower triangle (Cholesky–Banachiewicz, row by row: both rows of each dot product are
 * contiguous). GSL's gsl_linalg_cholesky_decomp1 would pull in gsl_cblas.h, whose
 * declarations clash with OpenBLAS's cblas.h. Returns 0, or -1 if A is not positive
 * definite. */
static int cholesky(double *a, size_t d)
{
    for (size_t i = 0; i < d; i++) {
        double *ri = a + i * d;
        for (size_t j = 0; j <= i; j++) {
            const double *rj = a + j * d;
            double s = ri[j];
            for (size_t t = 0; t < j; t++)
                s -= ri[t] * rj[t];
            if (j == i) {
                if (!(s > 0.0) || !isfinite(s))
                    return -1;
                ri[i] = sqrt(s);
            } else {
                ri[j] = s / rj[j];
            }
        }
    }
    return 0;
}

/* Cholesky factors and log normalisers of the current parameters. */
static rsy_status prepare_components(em_ctx *c)
{
    const size_t d = (size_t)c->d;
    for (int j = 0; j < c->k; j++) {
        double *l = c->chol + (size_t)j * d * d;
        memcpy(l, c->covs + (size_t)j * d * d, d * d * sizeof *l);
        if (cholesky(l, d) != 0) {
            rsy_log_error("covariance of component %d is not positive definite; raise the "
                          "covariance floor",
                          j);
            return RSY_ENUMERIC;
        }
        double logdet = 0.0;
        for (size_t a = 0; a < d; a++)
            logdet += 2.0 * log(l[a * d + a]);
        c->log_norm[j] = log(c->weights[j]) - 0.5 * ((double)d * LOG_2PI + logdet);
    }
    return RSY_OK;
}

rsy_status rsy__texture_em(const double *x, size_t n, int d, int k,
                           const rsy_texture_fit_params *p, rsy_rng *rng, double *weights,
                           double *means, double *covs, double *ll_history,
                           rsy__texture_em_result *res)
{
    rsy_status rc = RSY_OK;
    em_ctx c;
    rsy_pool *pool = NULL;
    size_t *seeds = NULL;
    int *assign = NULL;
    double *best_w = NULL, *best_m = NULL, *best_c = NULL;
    memset(&c, 0, sizeof c);
    if (!x || !p || !rng || !weights || !means || !covs || !res || d < 1 || k < 1 ||
        k > RSY_TEXTURE_MAX_COMPONENTS || (size_t)d > INT32_MAX / FIT_BLOCK_ROWS ||
        n > (size_t)INT32_MAX)
        return RSY_EINVAL;
    rc = check_params(p);
    if (rc != RSY_OK)
        return rc;
    if (n < (size_t)k) {
        rsy_log_error("%zu samples for %d components", n, k);
        return RSY_EINVAL;
    }
    const double min_count = fmax(FIT_MIN_COUNT_FLOOR, 2.0 * (double)d);
    if ((double)n < min_count) {
        rsy_log_error("%zu samples of dimension %d: fewer than the %.0f a mixture component "
                      "needs",
                      n, d, min_count);
        return RSY_ENUMERIC;
    }
    pthread_once(&blas_once, blas_single_thread);
    const size_t ud = (size_t)d, uk = (size_t)k;
    c.x = x;
    c.n = n;
    c.d = d;
    c.k = k;
    c.cov_floor = p->cov_floor;
    c.weights = weights;
    c.means = means;
    c.covs = covs;
    c.nk = malloc(uk * sizeof *c.nk);
    c.chol = malloc(uk * ud * ud * sizeof *c.chol);
    c.log_norm = malloc(uk * sizeof *c.log_norm);
    c.resp = calloc(n * uk, sizeof *c.resp);
    c.ll_row = malloc(n * sizeof *c.ll_row);
    c.scratch = malloc((size_t)p->n_threads * FIT_BLOCK_ROWS * ud * sizeof *c.scratch);
    seeds = malloc(uk * sizeof *seeds);
    assign = malloc(n * sizeof *assign);
    best_w = malloc(uk * sizeof *best_w);
    best_m = malloc(uk * ud * sizeof *best_m);
    best_c = malloc(uk * ud * ud * sizeof *best_c);
    if (!c.nk || !c.chol || !c.log_norm || !c.resp || !c.ll_row || !c.scratch || !seeds ||
        !assign || !best_w || !best_m || !best_c) {
        rc = RSY_ENOMEM;
        goto done;
    }
    rc = rsy_pool_create(&pool, p->n_threads);
    if (rc != RSY_OK)
        goto done;

    /* Start: k-means++ seeds, Lloyd, then one M-step from the hard assignment (clusters below
     * the minimum count dropped). */
    rc = rsy__texture_kmeanspp(x, n, d, k, rng, seeds);
    if (rc != RSY_OK)
        goto done;
    for (size_t j = 0; j < uk; j++)
        memcpy(means + j * ud, x + seeds[j] * ud, ud * sizeof *means);
    rc = lloyd(x, n, d, k, means, assign);
    if (rc != RSY_OK)
        goto done;
    for (size_t i = 0; i < n; i++)
        c.resp[i * uk + (size_t)assign[i]] = 1.0;
    int dropped = 0;
    rc = count_and_drop(&c, min_count, &dropped);
    if (rc != RSY_OK)
        goto done;
    rc = rsy_pool_run(pool, (size_t)c.k, m_step_task, &c);
    if (rc != RSY_OK)
        goto done;

    /* Iterate; keep the best parameters evaluated (the floor makes the M-step inexact, so the
     * likelihood can fall), and stop when it gains less than the tolerance (a fall included)
     * or at the cap. A drop changes the model: the best-so-far and the stop rule restart. */
    double prev = -INFINITY, ll = -INFINITY, best_ll = -INFINITY;
    int it = 0, best_k = 0;
    while (it < p->max_iterations) {
        it++;
        const size_t n_blocks = (n + FIT_BLOCK_ROWS - 1) / FIT_BLOCK_ROWS;
        rc = prepare_components(&c);
        if (rc != RSY_OK)
            goto done;
        rc = rsy_pool_run(pool, n_blocks, e_step_task, &c);
        if (rc != RSY_OK)
            goto done;
        ll = 0.0;
        for (size_t i = 0; i < n; i++)
            ll += c.ll_row[i];
        ll /= (double)n;
        if (!isfinite(ll)) {
            rsy_log_error("log-likelihood is not finite at EM iteration %d", it);
            rc = RSY_ENUMERIC;
            goto done;
        }
        if (ll_history)
            ll_history[it - 1] = ll;
        if (ll > best_ll) {
            const size_t kb = (size_t)c.k;
            best_ll = ll;
            best_k = c.k;
            memcpy(best_w, weights, kb * sizeof *best_w);
            memcpy(best_m, means, kb * ud * sizeof *best_m);
            memcpy(best_c, covs, kb * ud * ud * sizeof *best_c);
        }
        if (ll < prev - FIT_LL_DECREASE_TOL * fmax(1.0, fabs(prev)))
            rsy_log_warning("EM iteration %d: mean log-likelihood fell from %.10g to %.10g "
                            "(covariance floor %g); keeping the best parameters",
                            it, prev, ll, p->cov_floor);
        if (ll - prev < p->tolerance || it == p->max_iterations)
            break;
        prev = ll;
        rc = count_and_drop(&c, min_count, &dropped);
        if (rc != RSY_OK)
            goto done;
        if (dropped > 0) {
            prev = -INFINITY;
            best_ll = -INFINITY;
        }
        rc = rsy_pool_run(pool, (size_t)c.k, m_step_task, &c);
        if (rc != RSY_OK)
            goto done;
    }
    if (best_ll > ll) {
        const size_t kb = (size_t)best_k;
        memcpy(weights, best_w, kb * sizeof *weights);
        memcpy(means, best_m, kb * ud * sizeof *means);
        memcpy(covs, best_c, kb * ud * ud * sizeof *covs);
    }
    res->n_iterations = it;
    res->n_components = best_k;
    res->log_likelihood = best_ll;
done:
    rsy_pool_destroy(pool);
    free(best_c);
    free(best_m);
    free(best_w);
    free(assign);
    free(seeds);
    free(c.scratch);
    free(c.ll_row);
    free(c.resp);
    free(c.log_norm);
    free(c.chol);
    free(c.nk);
    return rc;
}

/* ---- the fit ----------------------------------------------------------------------------- */
/* Label value of voxel @p i, or -1 when it is not a non-negative integer below 65536. */
static int64_t label_value(const rsy_volume *v, size_t i)
{
    double x = voxel_value(v, i);
    if (!(x >= 0.0) || x > 65535.0 || x != floor(x))
        return -1;
    return (int64_t)x;
}

/* Class index + 1 per voxel from a label map: the non-zero values present, in order. */
static rsy_status classes_from_labels(const rsy_volume *labels, uint16_t *class_of,
                                      int64_t **values_out, int *n_out)
{
    const size_t nvox = rsy_geometry_nvox(&labels->geom);
    uint16_t *rank = calloc(65536, sizeof *rank);
    int64_t *values = NULL;
    if (!rank)
        return RSY_ENOMEM;
    for (size_t i = 0; i < nvox; i++) {
        int64_t v = label_value(labels, i);
        if (v < 0) {
            rsy_log_error("label map voxel %zu holds %g, not an integer label in [0, 65535]", i,
                          voxel_value(labels, i));
            free(rank);
            return RSY_EINVAL;
        }
        rank[v] = 1;
    }
    int n = 0;
    for (int v = 1; v < 65536; v++)
        n += rank[v];
    if (n == 0) {
        rsy_log_error("the label map has no non-zero label");
        free(rank);
        return RSY_EINVAL;
    }
    values = malloc((size_t)n * sizeof *values);
    if (!values) {
        free(rank);
        return RSY_ENOMEM;
    }
    int r = 0;
    for (int v = 1; v < 65536; v++) {
        if (rank[v]) {
            values[r] = v;
            rank[v] = (uint16_t)++r;
        }
    }
    for (size_t i = 0; i < nvox; i++)
        class_of[i] = rank[label_value(labels, i)];
    free(rank);
    *values_out = values;
    *n_out = n;
    return RSY_OK;
}

/* Erode the 0/1 mask @p m (dims @p n) by the box of half-width @p h: afterwards m[v] = 1 iff
 * every voxel within h of v along each axis (the whole p³ patch centred on v) was 1 and lies
 * inside the volume. Separable: one running count of ones per axis line, @p line scratch of
 * max(n) bytes. */
static void erode_box(uint8_t *m, const int64_t n[3], int64_t h, uint8_t *line)
{
    const int64_t stride[3] = {1, n[0], n[0] * n[1]};
    for (int ax = 0; ax < 3; ax++) {
        const int64_t len = n[ax], s = stride[ax];
        const int64_t o1 = n[(ax + 1) % 3], o2 = n[(ax + 2) % 3];
        const int64_t s1 = stride[(ax + 1) % 3], s2 = stride[(ax + 2) % 3];
        for (int64_t b = 0; b < o2; b++)
            for (int64_t a = 0; a < o1; a++) {
                uint8_t *base = m + a * s1 + b * s2;
                for (int64_t t = 0; t < len; t++)
                    line[t] = base[t * s];
                /* ones = count of ones in line[t − h .. t + h]. */
                int64_t ones = 0;
                for (int64_t t = 0; t < h && t < len; t++)
                    ones += line[t];
                for (int64_t t = 0; t < len; t++) {
                    if (t + h < len)
                        ones += line[t + h];
                    if (t - h - 1 >= 0)
                        ones -= line[t - h - 1];
                    base[t * s] = (uint8_t)(t >= h && t + h < len && ones == 2 * h + 1);
                }
            }
    }
}

/* Patch centres of class @p cls among the voxels whose whole patch is in the class (@p inside),
 * subsampled to at most @p max by a partial Fisher–Yates shuffle and sorted by voxel index. */
static rsy_status patch_centres(size_t nvox, const uint16_t *class_of, const uint8_t *inside,
                                uint16_t cls, size_t max, rsy_rng *rng, size_t **out,
                                size_t *n_out)
{
    size_t n = 0;
    for (size_t v = 0; v < nvox; v++)
        n += inside[v] && class_of[v] == cls;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        return RSY_ENOMEM;
    size_t t = 0;
    for (size_t v = 0; v < nvox; v++)
        if (inside[v] && class_of[v] == cls)
            idx[t++] = v;
    if (n > max) {
        for (size_t a = 0; a < max; a++) {
            size_t b = a + (size_t)rsy_rng_uniform_int(rng, n - a);
            size_t tmp = idx[a];
            idx[a] = idx[b];
            idx[b] = tmp;
        }
        n = max;
        qsort(idx, n, sizeof *idx, cmp_size);
    }
    *out = idx;
    *n_out = n;
    return RSY_OK;
}

/* Intensity mean and population SD of every class (two passes), into @p mean and @p sd indexed
 * by class_of value (entry 0, the unlabelled voxels, unused). */
static rsy_status class_statistics(rsy_texture_fitted *m, const rsy_volume *image,
                                   const uint16_t *class_of, double *mean, double *sd)
{
    const size_t nvox = rsy_geometry_nvox(&image->geom), nc = (size_t)m->n_classes + 1;
    size_t *count = calloc(nc, sizeof *count);
    if (!count)
        return RSY_ENOMEM;
    for (size_t c = 0; c < nc; c++)
        mean[c] = sd[c] = 0.0;
    for (size_t i = 0; i < nvox; i++) {
        if (class_of[i] != 0) {
            mean[class_of[i]] += voxel_value(image, i);
            count[class_of[i]]++;
        }
    }
    for (size_t c = 1; c < nc; c++)
        mean[c] = count[c] ? mean[c] / (double)count[c] : 0.0;
    for (size_t i = 0; i < nvox; i++) {
        if (class_of[i] != 0) {
            double dv = voxel_value(image, i) - mean[class_of[i]];
            sd[class_of[i]] += dv * dv;
        }
    }
    rsy_status rc = RSY_OK;
    for (size_t c = 1; c < nc; c++) {
        sd[c] = count[c] ? sqrt(sd[c] / (double)count[c]) : 0.0;
        rsy__texture_fitted_class *cl = &m->classes[c - 1];
        if (!(sd[c] > 0.0) || !isfinite(sd[c])) {
            rsy_log_error("class '%s': intensity SD %g over %zu voxels (constant or empty "
                          "class)",
                          cl->name, sd[c], count[c]);
            rc = RSY_EINVAL;
            break;
        }
        cl->intensity_mean = mean[c];
        cl->intensity_sd = sd[c];
    }
    free(count);
    return rc;
}

/* Fit class @p c of @p m (class_of value c + 1) on patches normalised voxel by voxel with the
 * class statistics @p cmean, @p csd (indexed by class_of value). */
static rsy_status fit_class(rsy_texture_fitted *m, int c, const rsy_volume *image,
                            const uint16_t *class_of, const uint8_t *inside,
                            const double *cmean, const double *csd,
                            const rsy_texture_fit_params *p, size_t max_patches)
{
    rsy_status rc = RSY_OK;
    rsy__texture_fitted_class *cl = &m->classes[c];
    const rsy_geometry *g = &image->geom;
    const size_t nvox = rsy_geometry_nvox(g);
    const uint16_t cls = (uint16_t)(c + 1);
    size_t *centres = NULL, n = 0;
    double *x = NULL;
    rsy_rng *rng = NULL;

    rc = rsy_rng_create_stream(&rng, p->seed, (uint64_t)c, RSY_STAGE_TEXTURE);
    if (rc != RSY_OK)
        return rc;
    rc = patch_centres(nvox, class_of, inside, cls, max_patches, rng, &centres, &n);
    if (rc != RSY_OK)
        goto done;
    if (n < (size_t)p->n_components) {
        rsy_log_error("class '%s': %zu patches inside the labelled region, fewer than %d "
                      "components",
                      cl->name, n, p->n_components);
        rc = RSY_EINVAL;
        goto done;
    }
    const int pp = p->patch_size, h = pp / 2;
    const size_t d = (size_t)m->dim;
    const int64_t nx = g->dims[0], ny = g->dims[1];
    x = malloc(n * d * sizeof *x);
    if (!x) {
        rc = RSY_ENOMEM;
        goto done;
    }
    /* Patch voxel a + p·(b + p·e) is image voxel (i + a − h, j + b − h, k + e − h), normalised
     * with its own class. */
    for (size_t s = 0; s < n; s++) {
        int64_t v = (int64_t)centres[s];
        int64_t i = v % nx, j = (v / nx) % ny, k = v / (nx * ny);
        double *row = x + s * d;
        for (int e = 0; e < pp; e++)
            for (int b = 0; b < pp; b++)
                for (int a = 0; a < pp; a++) {
                    size_t src = (size_t)((i + a - h) + nx * ((j + b - h) + ny * (k + e - h)));
                    uint16_t cv = class_of[src];
                    row[a + pp * (b + pp * e)] = (voxel_value(image, src) - cmean[cv]) / csd[cv];
                }
    }
    rc = rsy__texture_fitted_class_alloc(m, c, p->n_components);
    if (rc != RSY_OK)
        goto done;
    rsy__texture_em_result res;
    rc = rsy__texture_em(x, n, m->dim, p->n_components, p, rng, cl->weights, cl->means,
                         cl->covs, NULL, &res);
    if (rc != RSY_OK) {
        rsy_log_error("class '%s': mixture fit on %zu patches failed", cl->name, n);
        goto done;
    }
    cl->n_components = res.n_components;
    cl->n_patches = n;
    cl->n_iterations = res.n_iterations;
    cl->log_likelihood = res.log_likelihood;
    rsy_log_info("class '%s': mean %.4g sd %.4g, %zu patches, %d components, %d EM iterations, "
                 "mean log-likelihood %.6g",
                 cl->name, cmean[cls], csd[cls], n, res.n_components, res.n_iterations,
                 res.log_likelihood);
done:
    free(x);
    free(centres);
    rsy_rng_destroy(rng);
    return rc;
}

rsy_status rsy_texture_fit(rsy_texture_fitted **out, const rsy_volume *image,
                           const rsy_volume *labels, int auto_classes,
                           const rsy_texture_fit_params *p)
{
    rsy_status rc = RSY_OK;
    rsy_texture_fitted *m = NULL;
    uint16_t *class_of = NULL;
    uint8_t *inside = NULL, *line = NULL;
    double *cmean = NULL, *csd = NULL;
    int64_t *values = NULL;
    int n_classes = 0;
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!image || !image->data || !p)
        return RSY_EINVAL;
    rc = check_params(p);
    if (rc != RSY_OK)
        return rc;
    if ((labels != NULL) == (auto_classes > 0)) {
        rsy_log_error("give either a label map or auto-classes > 0 (got %s and %d)",
                      labels ? "a label map" : "no label map", auto_classes);
        return RSY_EINVAL;
    }
    if (rsy_dtype_size(image->dtype) == 0) {
        rsy_log_error("image dtype %d unsupported", (int)image->dtype);
        return RSY_EINVAL;
    }
    if (labels && (!labels->data || rsy_dtype_size(labels->dtype) == 0 ||
                   !rsy_geometry_equal(&image->geom, &labels->geom))) {
        rsy_log_error("the label map's geometry or dtype does not match the image");
        return RSY_EINVAL;
    }
    const size_t d = (size_t)p->patch_size * (size_t)p->patch_size * (size_t)p->patch_size;
    const size_t patch_cap = FIT_MAX_PATCH_DOUBLES / d;
    if (p->max_patches > patch_cap) {
        rsy_log_error("max_patches %llu at p = %d exceeds the bound of %zu patches per class "
                      "(%zu MiB of patches)",
                      (unsigned long long)p->max_patches, p->patch_size, patch_cap,
                      FIT_MAX_PATCH_DOUBLES * sizeof(double) >> 20);
        return RSY_EINVAL;
    }
    const size_t max_patches = p->max_patches ? (size_t)p->max_patches : patch_cap;
    const size_t nvox = rsy_geometry_nvox(&image->geom);
    class_of = malloc(nvox * sizeof *class_of);
    if (!class_of)
        return RSY_ENOMEM;
    if (labels) {
        rc = classes_from_labels(labels, class_of, &values, &n_classes);
    } else {
        double cmeans[RSY_TEXTURE_MAX_COMPONENTS];
        n_classes = auto_classes;
        rc = rsy__texture_intensity_classes(image, auto_classes, p->max_iterations,
                                            p->tolerance, class_of, cmeans);
        if (rc == RSY_OK) {
            for (int c = 0; c < n_classes; c++)
                rsy_log_info("intensity class %d: mean %.6g", c + 1, cmeans[c]);
        }
    }
    if (rc != RSY_OK)
        goto fail;
    rc = rsy__texture_fitted_alloc(&m, p->patch_size, image->geom.spacing_mm, n_classes);
    if (rc != RSY_OK)
        goto fail;
    m->auto_classes = labels ? 0 : auto_classes;
    m->fit = *p;
    for (int c = 0; c < n_classes; c++) {
        rsy__texture_fitted_class *cl = &m->classes[c];
        cl->label = labels ? values[c] : c + 1;
        if (labels)
            snprintf(cl->name, sizeof cl->name, "%lld", (long long)cl->label);
        else
            snprintf(cl->name, sizeof cl->name, "class_%d", c + 1);
    }
    /* Every class's statistics first: a patch reaches into its neighbours' classes. */
    cmean = malloc(((size_t)n_classes + 1) * sizeof *cmean);
    csd = malloc(((size_t)n_classes + 1) * sizeof *csd);
    inside = malloc(nvox);
    const int64_t *dims = image->geom.dims;
    line = malloc((size_t)(dims[0] > dims[1] ? (dims[0] > dims[2] ? dims[0] : dims[2])
                                             : (dims[1] > dims[2] ? dims[1] : dims[2])));
    if (!cmean || !csd || !inside || !line) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    rc = class_statistics(m, image, class_of, cmean, csd);
    if (rc != RSY_OK)
        goto fail;
    for (int c = 0; c < n_classes; c++) {
        /* The class's interior: voxels whose whole patch lies in the class. */
        for (size_t i = 0; i < nvox; i++)
            inside[i] = class_of[i] == c + 1;
        erode_box(inside, dims, p->patch_size / 2, line);
        rc = fit_class(m, c, image, class_of, inside, cmean, csd, p, max_patches);
        if (rc != RSY_OK)
            goto fail;
    }
    free(line);
    free(inside);
    free(csd);
    free(cmean);
    free(values);
    free(class_of);
    *out = m;
    return RSY_OK;
fail:
    rsy_texture_fitted_destroy(m);
    free(line);
    free(inside);
    free(csd);
    free(cmean);
    free(values);
    free(class_of);
    return rc;
}
