/*
 * texture_sample.c: the Karras schedule and the probability-flow ODE samplers
 * (Karras, Aittala, Aila, Laine 2022, "Elucidating the Design Space of Diffusion-Based
 * Generative Models", NeurIPS; eq. 5 for the schedule, Algorithm 1 for Euler/Heun,
 * Algorithm 2 for the stochastic sampler), whole-volume sampling and inpainting.
 *
 * With σ(t) = t and s(t) = 1 the probability-flow ODE is dx/dσ = (x − D(x; σ)) / σ, integrated
 * from x = σ_max·N(0, I) through σ_0 = σ_max > … > σ_{N−1} = σ_min to σ_N = 0; the last step
 * is a plain Euler step (x_N = D(x; σ_{N−1})), as in Algorithm 1.
 *
 * Inpainting follows RePaint (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising
 * Diffusion Probabilistic Models", CVPR, eq. 8) in the variance-exploding form: before every
 * evaluation at noise level σ the known voxels of the state are replaced by known + σ·ε with
 * fresh ε, so the denoiser sees them at the marginal of the current level; at the end they
 * are set to the known values. RePaint's resampling ("jumps") is not used.
 *
 * The state is float32; every update is computed in double and rounded once. All random
 * numbers come from the caller's stream in a fixed order, so results are reproducible.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "texture_internal.h"

rsy_texture_sample_params rsy_texture_sample_params_default(void)
{
    rsy_texture_sample_params p;
    p.sampler = RSY_TEXTURE_SAMPLER_HEUN;
    /* σ range, ρ and N: Karras et al. 2022, Table 1 ("Ours" column) and section 3. */
    p.steps = 18;
    p.sigma_min = 0.002;
    p.sigma_max = 80.0;
    p.rho = 7.0;
    p.s_churn = 5.0;
    p.s_tmin = 0.05;
    p.s_tmax = 50.0;
    p.s_noise = 1.0;
    return p;
}

static rsy_status params_check(const rsy_texture_sample_params *p)
{
    if (!p)
        return RSY_EINVAL;
    if (p->sampler != RSY_TEXTURE_SAMPLER_EULER && p->sampler != RSY_TEXTURE_SAMPLER_HEUN &&
        p->sampler != RSY_TEXTURE_SAMPLER_STOCHASTIC) {
        rsy_log_error("unknown sampler %d", (int)p->sampler);
        return RSY_EINVAL;
    }
    if (p->steps < 2 || p->steps > 100000) {
        rsy_log_error("steps %d outside [2, 100000]", p->steps);
        return RSY_EINVAL;
    }
    if (!isfinite(p->sigma_min) || !isfinite(p->sigma_max) || !(p->sigma_min > 0.0) ||
        !(p->sigma_max > p->sigma_min) || !isfinite(p->rho) || !(p->rho > 0.0)) {
        rsy_log_error("bad schedule: sigma_min %g, sigma_max %g, rho %g", p->sigma_min,
                      p->sigma_max, p->rho);
        return RSY_EINVAL;
    }
    if (!isfinite(p->s_churn) || p->s_churn < 0.0 || !isfinite(p->s_noise) || p->s_noise < 0.0 ||
        isnan(p->s_tmin) || isnan(p->s_tmax)) {
        rsy_log_error("bad churn: S_churn %g, S_noise %g, S_tmin %g, S_tmax %g", p->s_churn,
                      p->s_noise, p->s_tmin, p->s_tmax);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

rsy_status rsy_texture_schedule(const rsy_texture_sample_params *p, double *sigmas)
{
    rsy_status rc = params_check(p);
    if (rc != RSY_OK)
        return rc;
    if (!sigmas)
        return RSY_EINVAL;
    const double a = pow(p->sigma_max, 1.0 / p->rho), b = pow(p->sigma_min, 1.0 / p->rho);
    for (int i = 0; i < p->steps; i++)
        sigmas[i] = pow(a + (double)i / (double)(p->steps - 1) * (b - a), p->rho);
    /* Exact end points, whatever pow's rounding. */
    sigmas[0] = p->sigma_max;
    sigmas[p->steps - 1] = p->sigma_min;
    sigmas[p->steps] = 0.0;
    return RSY_OK;
}

/* Evaluate the ODE's slope at (x, sigma) into @p slope: (x − D(x; σ)) / σ. */
static rsy_status slope_at(size_t n, rsy__texture_eval_fn eval, void *eval_ctx,
                           rsy__texture_impose_fn impose, void *impose_ctx, rsy_rng *rng, float *x,
                           double sigma, float *slope, size_t *n_evals)
{
    if (impose)
        impose(impose_ctx, x, sigma, rng);
    rsy_status rc = eval(eval_ctx, x, sigma, slope);
    if (rc != RSY_OK)
        return rc;
    (*n_evals)++;
    for (size_t i = 0; i < n; i++)
        slope[i] = (float)(((double)x[i] - (double)slope[i]) / sigma);
    return RSY_OK;
}

rsy_status rsy__texture_solve(size_t n, rsy__texture_eval_fn eval, void *eval_ctx,
                              rsy__texture_impose_fn impose, void *impose_ctx,
                              const rsy_texture_sample_params *p, rsy_rng *rng, float *x,
                              size_t *n_evals)
{
    rsy_status rc = params_check(p);
    double *sig = NULL;
    float *d1 = NULL, *d2 = NULL, *xn = NULL;
    size_t evals = 0;
    if (rc != RSY_OK)
        return rc;
    if (!eval || !rng || !x || n == 0)
        return RSY_EINVAL;
    sig = malloc(((size_t)p->steps + 1) * sizeof *sig);
    d1 = malloc(n * sizeof *d1);
    d2 = malloc(n * sizeof *d2);
    xn = malloc(n * sizeof *xn);
    if (!sig || !d1 || !d2 || !xn) {
        rc = RSY_ENOMEM;
        goto done;
    }
    rc = rsy_texture_schedule(p, sig);
    if (rc != RSY_OK)
        goto done;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rsy_rng_gaussian(rng, sig[0]);
    const int heun = p->sampler != RSY_TEXTURE_SAMPLER_EULER;
    /* Algorithm 2, line 4: γ_i = min(S_churn/N, √2 − 1) inside [S_tmin, S_tmax]. */
    const double gamma_max = fmin(p->s_churn / (double)p->steps, sqrt(2.0) - 1.0);
    for (int s = 0; s < p->steps; s++) {
        double cur = sig[s], next = sig[s + 1];
        if (p->sampler == RSY_TEXTURE_SAMPLER_STOCHASTIC && cur >= p->s_tmin && cur <= p->s_tmax &&
            gamma_max > 0.0) {
            /* Algorithm 2, lines 5-6: raise the noise level to σ̂ = (1 + γ)σ by adding noise
             * of variance σ̂² − σ². */
            double hat = cur * (1.0 + gamma_max);
            double add_sd = sqrt(hat * hat - cur * cur) * p->s_noise;
            for (size_t i = 0; i < n; i++)
                x[i] = (float)((double)x[i] + rsy_rng_gaussian(rng, add_sd));
            cur = hat;
        }
        rc = slope_at(n, eval, eval_ctx, impose, impose_ctx, rng, x, cur, d1, &evals);
        if (rc != RSY_OK)
            goto done;
        const double h = next - cur;
        if (!heun || next == 0.0) {
            for (size_t i = 0; i < n; i++)
                x[i] = (float)((double)x[i] + h * (double)d1[i]);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            xn[i] = (float)((double)x[i] + h * (double)d1[i]);
        rc = slope_at(n, eval, eval_ctx, impose, impose_ctx, rng, xn, next, d2, &evals);
        if (rc != RSY_OK)
            goto done;
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((double)x[i] + 0.5 * h * ((double)d1[i] + (double)d2[i]));
    }
    if (impose)
        impose(impose_ctx, x, 0.0, rng);
done:
    if (n_evals)
        *n_evals = evals;
    free(xn);
    free(d2);
    free(d1);
    free(sig);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Independent patches (low-dimensional path)                                                 */
/* ---------------------------------------------------------------------------------------- */
typedef struct patch_ctx {
    rsy_patch_denoiser *dn;
    int class_id;
    size_t n;
} patch_ctx;

static rsy_status patch_eval(void *ctx, const float *x, double sigma, float *out)
{
    patch_ctx *c = ctx;
    return rsy__patch_denoiser_denoise_patches(c->dn, c->class_id, x, c->n, sigma, out);
}

rsy_status rsy__texture_sample_patches(rsy_patch_denoiser *d, int class_id, size_t n,
                                       const rsy_texture_sample_params *p, rsy_rng *rng, float *out,
                                       size_t *n_evals)
{
    int dim = 0, n_classes = 0;
    if (!d || n == 0 || !out)
        return RSY_EINVAL;
    rsy__patch_denoiser_shape(d, &dim, &n_classes);
    if (class_id < 0 || class_id >= n_classes)
        return RSY_EINVAL;
    patch_ctx ctx = {d, class_id, n};
    return rsy__texture_solve(n * (size_t)dim, patch_eval, &ctx, NULL, NULL, p, rng, out, n_evals);
}

/* ---------------------------------------------------------------------------------------- */
/* Whole volume                                                                               */
/* ---------------------------------------------------------------------------------------- */
typedef struct volume_ctx {
    const rsy_denoiser *dn;
    const rsy_volume *class_map;
    rsy_rng *rng;
} volume_ctx;

static rsy_status volume_eval(void *ctx, const float *x, double sigma, float *out)
{
    volume_ctx *c = ctx;
    return c->dn->denoise(c->dn->self, x, c->class_map, sigma, c->rng, out);
}

typedef struct inpaint_ctx {
    const float *known;
    const uint8_t *mask;
    size_t n;
} inpaint_ctx;

static void inpaint_impose(void *ctx, float *x, double sigma, rsy_rng *rng)
{
    const inpaint_ctx *c = ctx;
    for (size_t i = 0; i < c->n; i++) {
        if (!c->mask[i])
            continue;
        x[i] =
            sigma > 0.0 ? (float)((double)c->known[i] + rsy_rng_gaussian(rng, sigma)) : c->known[i];
    }
}

static rsy_status class_map_check(const rsy_volume *cm)
{
    if (!cm || !cm->data)
        return RSY_EINVAL;
    if (cm->dtype != RSY_DTYPE_UINT8 && cm->dtype != RSY_DTYPE_UINT16) {
        rsy_log_error("class map must be uint8 or uint16, not %s", rsy_dtype_name(cm->dtype));
        return RSY_EINVAL;
    }
    return RSY_OK;
}

static rsy_status sample_impl(const rsy_denoiser *dn, const rsy_volume *class_map,
                              inpaint_ctx *inpaint, const rsy_texture_sample_params *p,
                              rsy_rng *rng, rsy_volume **out, rsy_texture_stats *stats)
{
    rsy_status rc = RSY_OK;
    rsy_volume *u = NULL;
    volume_ctx ctx = {dn, class_map, rng};
    size_t evals = 0;
    rc = rsy_volume_create(&u, &class_map->geom, RSY_DTYPE_FLOAT32);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy__texture_solve(rsy_geometry_nvox(&class_map->geom), volume_eval, &ctx,
                            inpaint ? inpaint_impose : NULL, inpaint, p, rng, u->data, &evals);
    if (rc != RSY_OK)
        goto fail;
    if (stats)
        stats->denoiser_evals = evals;
    *out = u;
    return RSY_OK;
fail:
    rsy_volume_destroy(u);
    return rc;
}

rsy_status rsy_texture_sample(const rsy_denoiser *dn, const rsy_volume *class_map,
                              const rsy_texture_sample_params *p, rsy_rng *rng, rsy_volume **out,
                              rsy_texture_stats *stats)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!dn || !dn->denoise || !rng || class_map_check(class_map) != RSY_OK ||
        params_check(p) != RSY_OK)
        return RSY_EINVAL;
    return sample_impl(dn, class_map, NULL, p, rng, out, stats);
}

rsy_status rsy_texture_inpaint(const rsy_denoiser *dn, const rsy_volume *class_map,
                               const rsy_volume *known, const rsy_volume *mask,
                               const rsy_texture_sample_params *p, rsy_rng *rng, rsy_volume **out,
                               rsy_texture_stats *stats)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!dn || !dn->denoise || !rng || class_map_check(class_map) != RSY_OK ||
        params_check(p) != RSY_OK || !known || !mask || !known->data || !mask->data)
        return RSY_EINVAL;
    if (known->dtype != RSY_DTYPE_FLOAT32 || mask->dtype != RSY_DTYPE_UINT8) {
        rsy_log_error("known field must be float32 (is %s) and mask uint8 (is %s)",
                      rsy_dtype_name(known->dtype), rsy_dtype_name(mask->dtype));
        return RSY_EINVAL;
    }
    if (!rsy_geometry_equal(&known->geom, &class_map->geom) ||
        !rsy_geometry_equal(&mask->geom, &class_map->geom)) {
        rsy_log_error("known field and mask must have the class map's geometry");
        return RSY_EINVAL;
    }
    inpaint_ctx ic = {known->data, mask->data, rsy_geometry_nvox(&class_map->geom)};
    return sample_impl(dn, class_map, &ic, p, rng, out, stats);
}
