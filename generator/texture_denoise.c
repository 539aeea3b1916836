/*
 * texture_denoise.c: the patch-mixture denoiser (DESIGN.md section 6, docs/texture.md).
 *
 * Per patch y (d = p³ values) of a class with components (π_k, μ_k, Σ_k = U_k Λ_k U_kᵀ), the
 * noised prior under y = u + σ·n is the mixture of N(μ_k, Σ_k + σ²I), so the posterior mean is
 * exact at every σ (Tweedie's formula applied to a Gaussian mixture):
 *     z_k   = U_kᵀ (y − μ_k)
 *     log γ_k = log π_k − ½ Σ_j [z_kj² / (λ_kj + σ²) + log(λ_kj + σ²)] + const   (log-sum-exp)
 *     D(y)  = Σ_k γ_k [μ_k + U_k diag(λ_k / (λ_k + σ²)) z_k].
 * Batched over n patches of one class, both projections are single-precision matrix products:
 *     Z (n × K·d) = Y (n × d) · [U_1 … U_K],   z_k = Z_k − (U_kᵀ μ_k)ᵀ,
 *     D (n × d)   = Γ·M + W · [U_1 … U_K]ᵀ,    W_k = γ_k ∘ z_k · diag(λ_k / (λ_k + σ²)),
 * which is 4·n·K·d² flops through cblas_sgemm (less when only a central block is kept, below). The quadratic forms and the log-sum-exp are
 * accumulated in double. Single precision costs about 1e-6 relative in D (tests/test_texture.c
 * states the bound it checks), half the time of double.
 *
 * Whole volume: cells of p³ voxels whose corners lie q voxels apart (the stride, q <= p,
 * p − q even) each write only their central q³ block; the halo h = (p − q)/2 around the block
 * is context. At each evaluation an offset o in [0, q)³ is drawn; the blocks with corners at
 * o + q·m (m ∈ Z³) partition the voxels, so every voxel is written exactly once per offset.
 * With q = p this is a tiling of non-overlapping patches; the default q = p − 2 (p >= 5)
 * gives every written voxel at least one voxel of context on each side, which removes most
 * of the tiling's bias (pairs straddling a tile border denoised as independent: shorter
 * correlations, lost variance; docs/texture.md, "Reach of a patch prior") for (p/q)³ times
 * the cells. Only the q³ output rows of a cell are computed: the second product uses the
 * rows of [U_1 … U_K] at the block's voxels, so a cell costs 2·K·d·(d + q³) flops.
 * Windows crossing the border read the field mirrored at the border (half-sample symmetric:
 * −1 ↦ 0, n ↦ n−1) and write back only their voxels inside it. A cell takes the class of its
 * block's centre voxel (clamped into the volume), which is also its window's centre.
 * Cells are sorted by class (counting sort, stable) and cut into batches of batch_patches; the
 * batches are the tasks of the pool. The partition depends only on the class map, the offset
 * and batch_patches, every voxel is written by one task, and OpenBLAS runs single-threaded in
 * each caller, so the output does not depend on the thread count.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core_internal.h"
#include "texture_internal.h"

/* Largest batch accepted, so batch sizes fit the int arguments of cblas. */
#define RSY__PD_MAX_BATCH ((size_t)1 << 20)

/* One class of the model, in the form the kernel uses. */
typedef struct pd_class {
    int k;            /* components */
    float *ucat;      /* d × (k·d) row-major: [U_1 … U_k] */
    float *proj_mean; /* k·d: U_kᵀ μ_k */
    float *mean;      /* k × d */
    /* The central q³ block of the cell (only when q < p): the rows of ucat and the entries of
     * mean at the block's voxels, so the second product computes only what is written. */
    int w;             /* q³ */
    float *ucat_c;     /* w × (k·d) */
    float *mean_c;     /* k × w */
    double *lambda;   /* k·d eigenvalues */
    double *log_pi;   /* k normalised log weights */
    /* Tables of the current noise level, refreshed at each evaluation. */
    double *inv_var; /* k·d: 1 / (λ + σ²) */
    float *shrink;   /* k·d: λ / (λ + σ²) */
    double *log_det; /* k: Σ_j log(λ_kj + σ²) */
} pd_class;

struct rsy_patch_denoiser {
    int p, d, n_classes, max_k;
    int q; /* stride: side of the central block each cell writes (p: non-overlapping tiles) */
    double spacing_mm[3];
    pd_class *classes;
    rsy_patch_denoiser_params params;
    rsy_pool *pool; /* NULL when n_threads == 1 */
    float *scratch; /* per worker: batch × (d + max_k·d + d) floats */
    size_t scratch_per_worker;
    double flops;
};

/* OpenBLAS's own threads would oversubscribe our pool and make the parallelism someone else's:
 * one thread per caller, set once per process. Results of a threaded OpenBLAS call also depend
 * on its thread count (GSL's eigensolver goes through it too), hence texture_internal.h. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void)
{
    openblas_set_num_threads(1);
}

void rsy__texture_blas_single_thread(void)
{
    pthread_once(&blas_once, blas_single_thread);
}

static void class_clear(pd_class *c)
{
    RSY_FREE(c->ucat);
    RSY_FREE(c->proj_mean);
    RSY_FREE(c->mean);
    RSY_FREE(c->ucat_c);
    RSY_FREE(c->mean_c);
    RSY_FREE(c->lambda);
    RSY_FREE(c->log_pi);
    RSY_FREE(c->inv_var);
    RSY_FREE(c->shrink);
    RSY_FREE(c->log_det);
}

rsy_patch_denoiser_params rsy_patch_denoiser_params_default(void)
{
    rsy_patch_denoiser_params p;
    p.n_offsets = 1;
    p.batch_patches = 2048;
    p.n_threads = 1;
    p.stride = 0;
    return p;
}

void rsy_patch_denoiser_destroy(rsy_patch_denoiser *d)
{
    if (!d)
        return;
    if (d->classes)
        for (int c = 0; c < d->n_classes; c++)
            class_clear(&d->classes[c]);
    free(d->classes);
    rsy_pool_destroy(d->pool);
    free(d->scratch);
    free(d);
}

/* Copy class @p cid of @p m into @p c (float projections, normalised log weights), with the
 * central-block tables of stride @p q when q < p. */
static rsy_status class_build(const rsy_texture_prior *m, int cid, int q, pd_class *c)
{
    const int d = m->dim, k = m->n_components[cid];
    const size_t kd = (size_t)k * (size_t)d;
    c->k = k;
    c->ucat = malloc((size_t)d * kd * sizeof *c->ucat);
    c->proj_mean = malloc(kd * sizeof *c->proj_mean);
    c->mean = malloc(kd * sizeof *c->mean);
    c->lambda = malloc(kd * sizeof *c->lambda);
    c->log_pi = malloc((size_t)k * sizeof *c->log_pi);
    c->inv_var = malloc(kd * sizeof *c->inv_var);
    c->shrink = malloc(kd * sizeof *c->shrink);
    c->log_det = malloc((size_t)k * sizeof *c->log_det);
    if (!c->ucat || !c->proj_mean || !c->mean || !c->lambda || !c->log_pi || !c->inv_var ||
        !c->shrink || !c->log_det)
        return RSY_ENOMEM;
    double wsum = 0.0;
    for (int j = 0; j < k; j++)
        wsum += m->components[cid][j].weight;
    for (int j = 0; j < k; j++) {
        const rsy__texture_component *src = &m->components[cid][j];
        c->log_pi[j] = log(src->weight / wsum);
        for (int i = 0; i < d; i++) {
            c->mean[(size_t)j * d + i] = (float)src->mean[i];
            c->lambda[(size_t)j * d + i] = src->eigval[i];
            for (int e = 0; e < d; e++)
                c->ucat[(size_t)i * kd + (size_t)j * d + e] = (float)src->eigvec[(size_t)i * d + e];
        }
        for (int e = 0; e < d; e++) {
            double s = 0.0;
            for (int i = 0; i < d; i++)
                s += src->eigvec[(size_t)i * d + e] * src->mean[i];
            c->proj_mean[(size_t)j * d + e] = (float)s;
        }
    }
    if (q < m->patch_size) {
        const int p = m->patch_size, h = (p - q) / 2;
        c->w = q * q * q;
        c->ucat_c = malloc((size_t)c->w * kd * sizeof *c->ucat_c);
        c->mean_c = malloc((size_t)k * (size_t)c->w * sizeof *c->mean_c);
        if (!c->ucat_c || !c->mean_c)
            return RSY_ENOMEM;
        int row = 0;
        for (int zz = h; zz < h + q; zz++)
            for (int yy = h; yy < h + q; yy++)
                for (int xx = h; xx < h + q; xx++, row++) {
                    size_t i = (size_t)((zz * p + yy) * p + xx);
                    memcpy(c->ucat_c + (size_t)row * kd, c->ucat + i * kd, kd * sizeof *c->ucat_c);
                    for (int j = 0; j < k; j++)
                        c->mean_c[(size_t)j * c->w + row] = c->mean[(size_t)j * d + i];
                }
    }
    return RSY_OK;
}

rsy_status rsy_patch_denoiser_create(rsy_patch_denoiser **out, const rsy_texture_prior *prior,
                                     const rsy_patch_denoiser_params *params)
{
    rsy_status rc = RSY_OK;
    rsy_patch_denoiser *d = NULL;
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!prior || !params)
        return RSY_EINVAL;
    if (params->n_offsets < 1 || params->n_offsets > 1024 || params->batch_patches < 1 ||
        params->batch_patches > RSY__PD_MAX_BATCH || params->n_threads < 1 ||
        params->n_threads > 1024 || params->stride < 0 || params->stride > prior->patch_size ||
        (params->stride > 0 && (prior->patch_size - params->stride) % 2 != 0)) {
        rsy_log_error("bad denoiser params: offsets %d, batch %zu, threads %d, stride %d (patch "
                      "%d)",
                      params->n_offsets, params->batch_patches, params->n_threads, params->stride,
                      prior->patch_size);
        return RSY_EINVAL;
    }
    for (int c = 0; c < prior->n_classes; c++) {
        if (prior->n_components[c] < 1) {
            rsy_log_error("texture prior class %d has no component", c);
            return RSY_EINVAL;
        }
    }
    rsy__texture_blas_single_thread();
    d = calloc(1, sizeof *d);
    if (!d)
        return RSY_ENOMEM;
    d->p = prior->patch_size;
    d->d = prior->dim;
    d->q = params->stride != 0 ? params->stride : (d->p >= 5 ? d->p - 2 : d->p);
    d->n_classes = prior->n_classes;
    memcpy(d->spacing_mm, prior->spacing_mm, sizeof d->spacing_mm);
    d->params = *params;
    d->classes = calloc((size_t)prior->n_classes, sizeof *d->classes);
    if (!d->classes) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    for (int c = 0; c < prior->n_classes; c++) {
        rc = class_build(prior, c, d->q, &d->classes[c]);
        if (rc != RSY_OK)
            goto fail;
        if (d->classes[c].k > d->max_k)
            d->max_k = d->classes[c].k;
    }
    d->scratch_per_worker = params->batch_patches * (size_t)d->d * (size_t)(d->max_k + 2);
    d->scratch = malloc((size_t)params->n_threads * d->scratch_per_worker * sizeof *d->scratch);
    if (!d->scratch) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    if (params->n_threads > 1) {
        rc = rsy_pool_create(&d->pool, params->n_threads);
        if (rc != RSY_OK)
            goto fail;
    }
    *out = d;
    return RSY_OK;
fail:
    rsy_patch_denoiser_destroy(d);
    return rc;
}

void rsy__patch_denoiser_shape(const rsy_patch_denoiser *d, int *dim, int *n_classes)
{
    *dim = d->d;
    *n_classes = d->n_classes;
}

double rsy_patch_denoiser_gemm_flops(const rsy_patch_denoiser *d)
{
    return d ? d->flops : 0.0;
}

/* Refresh the noise-level tables of every class for @p sigma. */
static void prepare_sigma(rsy_patch_denoiser *dn, double sigma)
{
    const double s2 = sigma * sigma;
    for (int c = 0; c < dn->n_classes; c++) {
        pd_class *cl = &dn->classes[c];
        for (int k = 0; k < cl->k; k++) {
            double ld = 0.0;
            for (int j = 0; j < dn->d; j++) {
                size_t i = (size_t)k * dn->d + j;
                double v = cl->lambda[i] + s2;
                cl->inv_var[i] = 1.0 / v;
                cl->shrink[i] = (float)(cl->lambda[i] / v);
                ld += log(v);
            }
            cl->log_det[k] = ld;
        }
    }
}

/* The posterior mean of @p n patches @p y of class @p cl (tables already at the current σ):
 * @p z is n × k·d scratch, @p out n × d, or n × q³ (the central block only) when @p central.
 * See the formulas at the top of the file. */
static void kernel(const pd_class *cl, int d, const float *y, size_t n, float *z, float *out,
                   int central)
{
    const int k = cl->k, kd = k * d, ni = (int)n;
    const int w = central ? cl->w : d;
    const float *uout = central ? cl->ucat_c : cl->ucat;
    const float *mout = central ? cl->mean_c : cl->mean;
    double lp[RSY_TEXTURE_MAX_COMPONENTS];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, kd, d, 1.0f, y, d, cl->ucat, kd,
                0.0f, z, kd);
    for (size_t r = 0; r < n; r++) {
        float *zr = z + r * (size_t)kd;
        if (k == 1) {
            /* One component: γ = 1, no quadratic form needed. */
            const float *pm = cl->proj_mean, *sh = cl->shrink;
            float *o = out + r * (size_t)w;
            for (int j = 0; j < d; j++)
                zr[j] = (zr[j] - pm[j]) * sh[j];
            memcpy(o, mout, (size_t)w * sizeof *o);
            continue;
        }
        double lmax = -INFINITY;
        for (int c = 0; c < k; c++) {
            const float *pm = cl->proj_mean + (size_t)c * d;
            const double *iv = cl->inv_var + (size_t)c * d;
            float *zc = zr + (size_t)c * d;
            double q = 0.0;
            for (int j = 0; j < d; j++) {
                float v = zc[j] - pm[j];
                zc[j] = v;
                q += (double)v * (double)v * iv[j];
            }
            lp[c] = cl->log_pi[c] - 0.5 * (q + cl->log_det[c]);
            if (lp[c] > lmax)
                lmax = lp[c];
        }
        double sum = 0.0;
        for (int c = 0; c < k; c++) {
            lp[c] = exp(lp[c] - lmax);
            sum += lp[c];
        }
        float *o = out + r * (size_t)w;
        for (int j = 0; j < w; j++)
            o[j] = 0.0f;
        for (int c = 0; c < k; c++) {
            const float g = (float)(lp[c] / sum);
            const float *sh = cl->shrink + (size_t)c * d;
            const float *mu = mout + (size_t)c * w;
            float *zc = zr + (size_t)c * d;
            for (int j = 0; j < d; j++)
                zc[j] *= g * sh[j];
            for (int j = 0; j < w; j++)
                o[j] += g * mu[j];
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, w, kd, 1.0f, z, kd, uout, kd, 1.0f,
                out, w);
}

/* Flops of the two products for @p n patches: 2·n·K·d² for the projection, 2·n·K·d·w for the
 * output of w values per patch (w = d, or q³ for the central block). */
static double batch_flops(int k, int d, int w, size_t n)
{
    return 2.0 * (double)n * k * (double)d * (double)(d + w);
}

rsy_status rsy__patch_denoiser_denoise_patches(rsy_patch_denoiser *dn, int class_id, const float *y,
                                               size_t n, double sigma, float *out)
{
    if (!dn || !y || !out || class_id < 0 || class_id >= dn->n_classes || !isfinite(sigma) ||
        sigma < 0.0)
        return RSY_EINVAL;
    prepare_sigma(dn, sigma);
    const pd_class *cl = &dn->classes[class_id];
    const size_t d = (size_t)dn->d, b = dn->params.batch_patches;
    for (size_t s = 0; s < n; s += b) {
        size_t m = n - s < b ? n - s : b;
        kernel(cl, dn->d, y + s * d, m, dn->scratch, out + s * d, 0);
        dn->flops += batch_flops(cl->k, dn->d, dn->d, m);
    }
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Whole volume                                                                               */
/* ---------------------------------------------------------------------------------------- */
/* One batch: @p count cells of class @p cls starting at @p first in the sorted cell list. */
typedef struct pd_task {
    int cls;
    size_t first, count;
} pd_task;

/* The tiling of one offset and what the tasks share. */
typedef struct pd_tiling {
    rsy_patch_denoiser *dn;
    const float *y;
    float *out;
    int accumulate;   /* 0: write, 1: add (offsets after the first) */
    int q, h;         /* stride (side of the block a cell writes) and halo (p − q)/2 */
    int64_t n[3];     /* volume dims */
    int64_t start[3]; /* corner of the written block of cell 0 along each axis (<= 0) */
    int64_t m[3];     /* cells along each axis */
    int64_t *idx[3];  /* per axis, m·q + 2h entries: mirrored voxel index of window position
                         j − h relative to start; cell c's window starts at entry c·q */
    size_t *cells;    /* cell ids sorted by class */
    pd_task *tasks;
} pd_tiling;

/* Half-sample symmetric reflection of @p i into [0, n). */
static int64_t reflect(int64_t i, int64_t n)
{
    int64_t period = 2 * n;
    int64_t r = i % period;
    if (r < 0)
        r += period;
    return r < n ? r : period - 1 - r;
}

static rsy_status run_batch(void *ctx, size_t index, int worker)
{
    pd_tiling *t = ctx;
    rsy_patch_denoiser *dn = t->dn;
    const pd_task *task = &t->tasks[index];
    const pd_class *cl = &dn->classes[task->cls];
    const int p = dn->p;
    const size_t d = (size_t)dn->d, nxy = (size_t)(t->n[0] * t->n[1]);
    float *ybuf = dn->scratch + (size_t)worker * dn->scratch_per_worker;
    float *obuf = ybuf + dn->params.batch_patches * d;
    float *zbuf = obuf + dn->params.batch_patches * d;
    for (size_t r = 0; r < task->count; r++) {
        size_t cell = t->cells[task->first + r];
        int64_t mx = (int64_t)(cell % (size_t)t->m[0]);
        int64_t my = (int64_t)((cell / (size_t)t->m[0]) % (size_t)t->m[1]);
        int64_t mz = (int64_t)(cell / ((size_t)t->m[0] * (size_t)t->m[1]));
        const int64_t *ix = t->idx[0] + mx * t->q, *iy = t->idx[1] + my * t->q,
                      *iz = t->idx[2] + mz * t->q;
        float *row = ybuf + r * d;
        for (int c = 0; c < p; c++)
            for (int b = 0; b < p; b++) {
                const float *src = t->y + (size_t)iz[c] * nxy + (size_t)iy[b] * (size_t)t->n[0];
                for (int a = 0; a < p; a++)
                    *row++ = src[ix[a]];
            }
    }
    const int central = t->q < p;
    kernel(cl, dn->d, ybuf, task->count, zbuf, obuf, central);
    for (size_t r = 0; r < task->count; r++) {
        size_t cell = t->cells[task->first + r];
        int64_t m3[3] = {(int64_t)(cell % (size_t)t->m[0]),
                         (int64_t)((cell / (size_t)t->m[0]) % (size_t)t->m[1]),
                         (int64_t)(cell / ((size_t)t->m[0] * (size_t)t->m[1]))};
        /* The cell writes its central q³ block: window positions h..h+q−1, i.e. voxels
         * s..s+q−1 with s = start + m·q, clipped to the volume. */
        const int q = t->q, h = t->h;
        int64_t lo[3], hi[3], s0[3];
        for (int a = 0; a < 3; a++) {
            s0[a] = t->start[a] + m3[a] * q;
            lo[a] = s0[a] < 0 ? -s0[a] : 0;
            hi[a] = s0[a] + q > t->n[a] ? t->n[a] - s0[a] : q;
        }
        const float *row = obuf + r * (central ? (size_t)cl->w : d);
        for (int64_t c = lo[2]; c < hi[2]; c++)
            for (int64_t b = lo[1]; b < hi[1]; b++) {
                size_t base = (size_t)(s0[2] + c) * nxy + (size_t)(s0[1] + b) * (size_t)t->n[0] +
                              (size_t)s0[0];
                const float *v = central ? row + (size_t)((c * q + b) * q)
                                         : row + (size_t)(((c + h) * p + (b + h)) * p + h);
                if (t->accumulate)
                    for (int64_t a = lo[0]; a < hi[0]; a++)
                        t->out[base + (size_t)a] += v[a];
                else
                    for (int64_t a = lo[0]; a < hi[0]; a++)
                        t->out[base + (size_t)a] = v[a];
            }
    }
    return RSY_OK;
}

/* Integer class of voxel @p v of a uint8 or uint16 class map. */
static int class_at(const rsy_volume *cm, size_t v)
{
    return cm->dtype == RSY_DTYPE_UINT8 ? ((const uint8_t *)cm->data)[v]
                                        : ((const uint16_t *)cm->data)[v];
}

/* Lay out the tiling of offset @p off: per-axis tables, the cell ids sorted by centre class
 * (stable counting sort) and the tasks. @p counts (n_classes + 1 entries) and @p cls_of (one
 * per cell) are scratch. Returns the task count, or SIZE_MAX if a centre class is outside the
 * model. */
static size_t tiling_layout(pd_tiling *t, const rsy_volume *cm, const int off[3], size_t *counts,
                            size_t *cls_of)
{
    rsy_patch_denoiser *dn = t->dn;
    const int q = t->q, h = t->h;
    for (int a = 0; a < 3; a++) {
        t->start[a] = off[a] > 0 ? off[a] - q : 0;
        t->m[a] = (t->n[a] - t->start[a] + q - 1) / q;
        for (int64_t i = 0; i < t->m[a] * q + 2 * h; i++)
            t->idx[a][i] = reflect(t->start[a] - h + i, t->n[a]);
    }
    const size_t ncell = (size_t)(t->m[0] * t->m[1] * t->m[2]);
    memset(counts, 0, ((size_t)dn->n_classes + 1) * sizeof *counts);
    for (size_t cell = 0; cell < ncell; cell++) {
        int64_t mc[3] = {(int64_t)(cell % (size_t)t->m[0]),
                         (int64_t)((cell / (size_t)t->m[0]) % (size_t)t->m[1]),
                         (int64_t)(cell / ((size_t)t->m[0] * (size_t)t->m[1]))};
        size_t v = 0, stride = 1;
        for (int a = 0; a < 3; a++) {
            int64_t c = t->start[a] + mc[a] * q + q / 2;
            c = c < 0 ? 0 : (c >= t->n[a] ? t->n[a] - 1 : c);
            v += (size_t)c * stride;
            stride *= (size_t)t->n[a];
        }
        int cls = class_at(cm, v);
        if (cls >= dn->n_classes)
            return SIZE_MAX;
        cls_of[cell] = (size_t)cls;
        counts[cls + 1]++;
    }
    size_t ntask = 0;
    for (int c = 0; c < dn->n_classes; c++) {
        size_t nc = counts[c + 1];
        for (size_t s = 0; s < nc; s += dn->params.batch_patches) {
            t->tasks[ntask].cls = c;
            t->tasks[ntask].first = counts[c] + s;
            t->tasks[ntask].count =
                nc - s < dn->params.batch_patches ? nc - s : dn->params.batch_patches;
            ntask++;
        }
        counts[c + 1] += counts[c]; /* counts[c] becomes the start of class c */
    }
    for (size_t cell = 0; cell < ncell; cell++)
        t->cells[counts[cls_of[cell]]++] = cell;
    return ntask;
}

static rsy_status pd_denoise(void *self, const float *y, const rsy_volume *cm, double sigma,
                             rsy_rng *rng, float *out)
{
    rsy_status rc = RSY_OK;
    rsy_patch_denoiser *dn = self;
    pd_tiling t;
    size_t *counts = NULL, *cls_of = NULL;
    memset(&t, 0, sizeof t);
    if (!dn || !y || !cm || !cm->data || !rng || !out || !isfinite(sigma) || sigma < 0.0)
        return RSY_EINVAL;
    if (cm->dtype != RSY_DTYPE_UINT8 && cm->dtype != RSY_DTYPE_UINT16) {
        rsy_log_error("class map must be uint8 or uint16, not %s", rsy_dtype_name(cm->dtype));
        return RSY_EINVAL;
    }
    for (int a = 0; a < 3; a++) {
        if (fabs(cm->geom.spacing_mm[a] - dn->spacing_mm[a]) > 1e-6 * dn->spacing_mm[a]) {
            rsy_log_error("class map spacing %g mm differs from the texture prior's %g mm (axis "
                          "%d)",
                          cm->geom.spacing_mm[a], dn->spacing_mm[a], a);
            return RSY_EINVAL;
        }
        t.n[a] = cm->geom.dims[a];
    }
    const int q = dn->q;
    t.q = q;
    t.h = (dn->p - q) / 2;
    size_t max_cells = 1, max_tasks = (size_t)dn->n_classes;
    for (int a = 0; a < 3; a++)
        max_cells *= (size_t)((t.n[a] + 2 * q - 1) / q);
    max_tasks += max_cells / dn->params.batch_patches + 1;
    for (int a = 0; a < 3; a++) {
        t.idx[a] = malloc((size_t)((t.n[a] + 2 * q - 1) / q * q + 2 * t.h) * sizeof *t.idx[a]);
        if (!t.idx[a]) {
            rc = RSY_ENOMEM;
            goto done;
        }
    }
    t.cells = malloc(max_cells * sizeof *t.cells);
    cls_of = malloc(max_cells * sizeof *cls_of);
    t.tasks = malloc(max_tasks * sizeof *t.tasks);
    counts = malloc(((size_t)dn->n_classes + 1) * sizeof *counts);
    if (!t.cells || !cls_of || !t.tasks || !counts) {
        rc = RSY_ENOMEM;
        goto done;
    }
    t.dn = dn;
    t.y = y;
    t.out = out;
    prepare_sigma(dn, sigma);
    for (int o = 0; o < dn->params.n_offsets; o++) {
        int off[3];
        for (int a = 0; a < 3; a++)
            off[a] = (int)rsy_rng_uniform_int(rng, (uint64_t)q);
        size_t ntask = tiling_layout(&t, cm, off, counts, cls_of);
        if (ntask == SIZE_MAX) {
            rsy_log_error("class map holds a class id outside the texture prior's %d classes",
                          dn->n_classes);
            rc = RSY_EINVAL;
            goto done;
        }
        t.accumulate = o > 0;
        if (dn->pool)
            rc = rsy_pool_run(dn->pool, ntask, run_batch, &t);
        else
            for (size_t i = 0; i < ntask && rc == RSY_OK; i++)
                rc = run_batch(&t, i, 0);
        if (rc != RSY_OK)
            goto done;
        for (size_t i = 0; i < ntask; i++)
            dn->flops += batch_flops(dn->classes[t.tasks[i].cls].k, dn->d,
                                     q < dn->p ? q * q * q : dn->d, t.tasks[i].count);
    }
    if (dn->params.n_offsets > 1) {
        const size_t nvox = rsy_geometry_nvox(&cm->geom);
        const float scale = 1.0f / (float)dn->params.n_offsets;
        for (size_t v = 0; v < nvox; v++)
            out[v] *= scale;
    }
done:
    free(counts);
    free(t.tasks);
    free(cls_of);
    free(t.cells);
    for (int a = 0; a < 3; a++)
        free(t.idx[a]);
    return rc;
}

rsy_denoiser rsy_patch_denoiser_interface(rsy_patch_denoiser *d)
{
    rsy_denoiser dn;
    dn.denoise = pd_denoise;
    dn.self = d;
    return dn;
}
