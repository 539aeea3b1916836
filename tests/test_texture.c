/*
 * test_texture.c: the patch priors, the patch-mixture denoiser and the diffusion samplers
 * (DESIGN.md section 6, docs/texture.md). Statistical tests use fixed seeds; each states its
 * tolerance and why it holds. Set RSY_TEST_VERBOSE=1 to print the measured figures.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_sort.h>

#include "rsy_core.h"
#include "rsy_generator.h"
#include "test_util.h"
#include "texture_internal.h"

#define SEED 20240611u

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */
static int verbose(void)
{
    return getenv("RSY_TEST_VERBOSE") != NULL;
}

static rsy_rng *rng_new(uint64_t seed)
{
    rsy_rng *r = NULL;
    assert_int_equal(rsy_rng_create(&r, seed), RSY_OK);
    return r;
}

static rsy_texture_prior *prior_new(int p, int n_classes)
{
    const double spacing[3] = {1.0, 1.0, 1.0};
    rsy_texture_prior *m = NULL;
    assert_int_equal(rsy_texture_prior_create(&m, p, spacing, n_classes), RSY_OK);
    return m;
}

static rsy_texture_preset_component preset(double var, double ell_mm, double mean)
{
    rsy_texture_preset_component c;
    c.weight = 1.0;
    c.variance = var;
    c.corr_length_mm[0] = c.corr_length_mm[1] = c.corr_length_mm[2] = ell_mm;
    c.mean = mean;
    return c;
}

static rsy_patch_denoiser *denoiser_new(const rsy_texture_prior *m, int n_threads, size_t batch,
                                        int n_offsets)
{
    rsy_patch_denoiser_params dp = rsy_patch_denoiser_params_default();
    dp.n_threads = n_threads;
    dp.batch_patches = batch;
    dp.n_offsets = n_offsets;
    rsy_patch_denoiser *d = NULL;
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_OK);
    return d;
}

/* A random symmetric positive definite d×d matrix: A·Aᵀ/d + floor·I, A standard normal. */
static void random_spd(int d, double floor_val, rsy_rng *r, double *cov)
{
    double *a = malloc((size_t)d * d * sizeof *a);
    assert_non_null(a);
    for (int i = 0; i < d * d; i++)
        a[i] = rsy_rng_gaussian(r, 1.0);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++)
                s += a[i * d + k] * a[j * d + k];
            cov[i * d + j] = s / d + (i == j ? floor_val : 0.0);
        }
    free(a);
}

static rsy_volume *class_map_new(const int64_t dims[3], rsy_dtype t)
{
    rsy_geometry g;
    const double spacing[3] = {1.0, 1.0, 1.0};
    assert_int_equal(rsy_geometry_init(&g, dims, spacing), RSY_OK);
    rsy_volume *v = NULL;
    assert_int_equal(rsy_volume_create(&v, &g, t), RSY_OK);
    return v;
}

/* A mixture for the denoiser tests: K components over p = 3 patches with random means and
 * well-conditioned random covariances (eigenvalues >= 0.2, so no floor applies). */
typedef struct test_mixture {
    int k, d;
    double w[3];
    double *mean; /* k × d */
    double *cov;  /* k × d × d */
} test_mixture;

static void mixture_make(test_mixture *t, rsy_rng *r)
{
    t->k = 3;
    t->d = 27;
    t->w[0] = 0.2;
    t->w[1] = 0.5;
    t->w[2] = 0.3;
    t->mean = malloc((size_t)t->k * t->d * sizeof *t->mean);
    t->cov = malloc((size_t)t->k * t->d * t->d * sizeof *t->cov);
    assert_non_null(t->mean);
    assert_non_null(t->cov);
    for (int k = 0; k < t->k; k++) {
        for (int i = 0; i < t->d; i++)
            t->mean[k * t->d + i] = rsy_rng_gaussian(r, 1.0);
        random_spd(t->d, 0.2, r, t->cov + (size_t)k * t->d * t->d);
    }
}

static void mixture_free(test_mixture *t)
{
    free(t->mean);
    free(t->cov);
}

/* log p_σ(y) of the noised mixture, computed independently of the library (Cholesky, double). */
static double mixture_log_density(const test_mixture *t, const double *y, double sigma)
{
    const int d = t->d;
    gsl_matrix *c = gsl_matrix_alloc((size_t)d, (size_t)d);
    gsl_vector *v = gsl_vector_alloc((size_t)d);
    assert_non_null(c);
    assert_non_null(v);
    double lp[3], lmax = -INFINITY;
    for (int k = 0; k < t->k; k++) {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                gsl_matrix_set(c, (size_t)i, (size_t)j,
                               t->cov[(size_t)k * d * d + (size_t)i * d + j] +
                                   (i == j ? sigma * sigma : 0.0));
        assert_int_equal(gsl_linalg_cholesky_decomp1(c), 0);
        for (int i = 0; i < d; i++)
            gsl_vector_set(v, (size_t)i, y[i] - t->mean[k * d + i]);
        assert_int_equal(gsl_linalg_cholesky_svx(c, v), 0);
        double q = 0.0, logdet = 0.0;
        for (int i = 0; i < d; i++) {
            q += (y[i] - t->mean[k * d + i]) * gsl_vector_get(v, (size_t)i);
            logdet += 2.0 * log(gsl_matrix_get(c, (size_t)i, (size_t)i));
        }
        lp[k] = log(t->w[k]) - 0.5 * (q + logdet + d * log(2.0 * M_PI));
        lmax = fmax(lmax, lp[k]);
    }
    double s = 0.0;
    for (int k = 0; k < t->k; k++)
        s += exp(lp[k] - lmax);
    gsl_vector_free(v);
    gsl_matrix_free(c);
    return lmax + log(s);
}

static rsy_texture_prior *mixture_prior(const test_mixture *t)
{
    rsy_texture_prior *m = prior_new(3, 1);
    for (int k = 0; k < t->k; k++)
        assert_int_equal(rsy_texture_prior_add_component(m, 0, t->w[k], t->mean + k * t->d,
                                                         t->cov + (size_t)k * t->d * t->d),
                         RSY_OK);
    return m;
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                     */
/* ---------------------------------------------------------------------------------------- */
static void test_bad_params(void **state)
{
    (void)state;
    tu_log_capture();
    const double spacing[3] = {1.0, 1.0, 1.0}, bad_spacing[3] = {1.0, 0.0, 1.0};
    rsy_texture_prior *m = NULL;
    assert_int_equal(rsy_texture_prior_create(&m, 4, spacing, 1), RSY_EINVAL);
    assert_int_equal(rsy_texture_prior_create(&m, 11, spacing, 1), RSY_EINVAL);
    assert_int_equal(rsy_texture_prior_create(&m, 3, spacing, 0), RSY_EINVAL);
    assert_int_equal(rsy_texture_prior_create(&m, 3, bad_spacing, 1), RSY_EINVAL);
    assert_null(m);
    m = prior_new(3, 2);
    rsy_texture_preset_component c = preset(1.0, 2.0, 0.0);
    assert_int_equal(rsy_texture_prior_add_preset(m, 2, &c), RSY_EINVAL);
    c.corr_length_mm[1] = 0.0;
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c), RSY_EINVAL);
    c = preset(-1.0, 2.0, 0.0);
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c), RSY_EINVAL);
    c = preset(1.0, 2.0, 0.0);
    c.weight = 0.0;
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c), RSY_EINVAL);
    double cov[27 * 27];
    memset(cov, 0, sizeof cov);
    for (int i = 0; i < 27; i++)
        cov[i * 27 + i] = 1.0;
    cov[1] = 0.5; /* not symmetric */
    assert_int_equal(rsy_texture_prior_add_component(m, 0, 1.0, NULL, cov), RSY_EINVAL);
    cov[1] = 0.0;
    for (int i = 0; i < 27; i++)
        cov[i * 27 + i] = -1.0; /* no positive eigenvalue */
    assert_int_equal(rsy_texture_prior_add_component(m, 0, 1.0, NULL, cov), RSY_EINVAL);
    assert_int_equal(rsy_texture_prior_n_components(m, 0), 0);

    /* A class without components makes the denoiser refuse. */
    c = preset(1.0, 2.0, 0.0);
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c), RSY_OK);
    rsy_patch_denoiser_params dp = rsy_patch_denoiser_params_default();
    rsy_patch_denoiser *d = NULL;
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_EINVAL);
    assert_int_equal(rsy_texture_prior_add_preset(m, 1, &c), RSY_OK);
    dp.n_offsets = 0;
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_EINVAL);
    dp = rsy_patch_denoiser_params_default();
    dp.batch_patches = 0;
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_EINVAL);
    dp = rsy_patch_denoiser_params_default();
    dp.stride = 2; /* p − q must be even (the written block is centred) */
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_EINVAL);
    dp.stride = 5; /* larger than p = 3 */
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_EINVAL);
    dp.stride = -1;
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_EINVAL);
    assert_null(d);
    d = denoiser_new(m, 1, 2048, 1);

    /* Sampler parameters. */
    rsy_texture_sample_params sp = rsy_texture_sample_params_default();
    double sig[64];
    sp.steps = 1;
    assert_int_equal(rsy_texture_schedule(&sp, sig), RSY_EINVAL);
    sp = rsy_texture_sample_params_default();
    sp.sigma_min = 0.0;
    assert_int_equal(rsy_texture_schedule(&sp, sig), RSY_EINVAL);
    sp = rsy_texture_sample_params_default();
    sp.sigma_max = sp.sigma_min;
    assert_int_equal(rsy_texture_schedule(&sp, sig), RSY_EINVAL);
    sp = rsy_texture_sample_params_default();
    sp.rho = 0.0;
    assert_int_equal(rsy_texture_schedule(&sp, sig), RSY_EINVAL);
    sp = rsy_texture_sample_params_default();
    sp.sampler = (rsy_texture_sampler)7;
    assert_int_equal(rsy_texture_schedule(&sp, sig), RSY_EINVAL);

    /* Class maps: id outside the prior, wrong dtype, wrong spacing; inpainting geometry. */
    rsy_denoiser dn = rsy_patch_denoiser_interface(d);
    rsy_rng *r = rng_new(SEED);
    const int64_t dims[3] = {8, 8, 8};
    rsy_volume *cm = class_map_new(dims, RSY_DTYPE_UINT8), *u = NULL;
    sp = rsy_texture_sample_params_default();
    ((uint8_t *)cm->data)[100] = 2;
    assert_int_equal(rsy_texture_sample(&dn, cm, &sp, r, &u, NULL), RSY_EINVAL);
    assert_null(u);
    ((uint8_t *)cm->data)[100] = 1;
    rsy_volume *fm = class_map_new(dims, RSY_DTYPE_FLOAT32);
    assert_int_equal(rsy_texture_sample(&dn, fm, &sp, r, &u, NULL), RSY_EINVAL);
    rsy_volume *cm2 = class_map_new(dims, RSY_DTYPE_UINT16);
    cm2->geom.spacing_mm[2] = 2.0;
    assert_int_equal(rsy_texture_sample(&dn, cm2, &sp, r, &u, NULL), RSY_EINVAL);
    const int64_t dims2[3] = {8, 8, 9};
    rsy_volume *mask = class_map_new(dims2, RSY_DTYPE_UINT8);
    assert_int_equal(rsy_texture_inpaint(&dn, cm, fm, mask, &sp, r, &u, NULL), RSY_EINVAL);
    assert_int_equal(rsy_texture_inpaint(&dn, cm, cm, cm, &sp, r, &u, NULL), RSY_EINVAL);
    assert_null(u);
    assert_true(tu_errors() > 0);

    rsy_volume_destroy(mask);
    rsy_volume_destroy(cm2);
    rsy_volume_destroy(fm);
    rsy_volume_destroy(cm);
    rsy_rng_destroy(r);
    rsy_patch_denoiser_destroy(d);
    rsy_texture_prior_destroy(m);
    rsy_patch_denoiser_destroy(NULL);
    rsy_texture_prior_destroy(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Schedule                                                                                   */
/* ---------------------------------------------------------------------------------------- */
static void test_schedule(void **state)
{
    (void)state;
    rsy_texture_sample_params sp = rsy_texture_sample_params_default();
    double sig[19];
    assert_int_equal(rsy_texture_schedule(&sp, sig), RSY_OK);
    assert_true(sig[0] == 80.0);
    assert_true(sig[17] == 0.002);
    assert_true(sig[18] == 0.0);
    for (int i = 0; i < 18; i++)
        assert_true(sig[i + 1] < sig[i]);
    /* Karras et al. 2022 eq. 5 at i = 9 of N = 18. */
    double a = pow(80.0, 1.0 / 7.0), b = pow(0.002, 1.0 / 7.0);
    double want = pow(a + 9.0 / 17.0 * (b - a), 7.0);
    assert_true(fabs(sig[9] - want) <= 1e-12 * want);
}

/* ---------------------------------------------------------------------------------------- */
/* Denoiser                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* σ → 0 returns the input; σ → ∞ returns the prior mean Σ π_k μ_k. Bounds: float32 products
 * of 27 terms of size ~3 give errors ~1e-6, well inside 1e-4; at σ = 1e-4 the shrink leaves
 * σ²/λ_min <= 5e-8 of the input; at σ = 1e6 the responsibilities are π_k to 1e-11 and the
 * shrink is below 1e-11. */
static void test_denoiser_limits(void **state)
{
    (void)state;
    rsy_rng *r = rng_new(SEED);
    test_mixture t;
    mixture_make(&t, r);
    rsy_texture_prior *m = mixture_prior(&t);
    rsy_patch_denoiser *d = denoiser_new(m, 1, 7, 1); /* 7: several batches for 20 patches */
    enum { N = 20 };
    float y[N * 27], out[N * 27];
    for (int i = 0; i < N * 27; i++)
        y[i] = (float)rsy_rng_gaussian(r, 2.0);
    assert_int_equal(rsy__patch_denoiser_denoise_patches(d, 0, y, N, 1e-4, out), RSY_OK);
    for (int n = 0; n < N; n++) {
        double e = 0.0, s = 0.0;
        for (int i = 0; i < 27; i++) {
            e += pow(out[n * 27 + i] - y[n * 27 + i], 2);
            s += pow(y[n * 27 + i], 2);
        }
        assert_true(sqrt(e / s) < 1e-4);
    }
    assert_int_equal(rsy__patch_denoiser_denoise_patches(d, 0, y, N, 1e6, out), RSY_OK);
    for (int i = 0; i < 27; i++) {
        double mu = 0.0;
        for (int k = 0; k < 3; k++)
            mu += t.w[k] * t.mean[k * 27 + i];
        for (int n = 0; n < N; n++)
            assert_true(fabs(out[n * 27 + i] - mu) < 1e-4);
    }
    assert_int_equal(rsy__patch_denoiser_denoise_patches(d, 1, y, N, 1.0, out), RSY_EINVAL);
    assert_int_equal(rsy__patch_denoiser_denoise_patches(d, 0, y, N, -1.0, out), RSY_EINVAL);
    assert_true(rsy_patch_denoiser_gemm_flops(d) == 2.0 * 4.0 * N * 3 * 27.0 * 27.0);
    rsy_patch_denoiser_destroy(d);
    rsy_texture_prior_destroy(m);
    mixture_free(&t);
    rsy_rng_destroy(r);
}

/* Tweedie: (D(y) − y)/σ² = ∇ log p_σ(y). The gradient is taken by central differences
 * (step 1e-3, truncation error ~1e-7 relative) of the log-density computed independently in
 * double. Bound 1e-4 relative (Euclidean norm over the 27 coordinates): the denoiser works in
 * float32 (~1e-7 relative in D), which the 1/σ² factor amplifies to at most ~1e-5 at σ = 0.3
 * for |y| ~ 5; the points are chosen between components so the responsibilities matter. */
static void test_denoiser_score(void **state)
{
    (void)state;
    rsy_rng *r = rng_new(SEED + 1);
    test_mixture t;
    mixture_make(&t, r);
    rsy_texture_prior *m = mixture_prior(&t);
    rsy_patch_denoiser *d = denoiser_new(m, 1, 2048, 1);
    const double sigmas[3] = {0.3, 1.0, 3.0};
    double worst = 0.0;
    for (int si = 0; si < 3; si++) {
        for (int trial = 0; trial < 4; trial++) {
            double y[27], yp[27];
            float yf[27], df[27];
            /* Between components 0 and 1, plus noise at the current level. */
            double a = rsy_rng_uniform(r);
            for (int i = 0; i < 27; i++) {
                y[i] = a * t.mean[i] + (1.0 - a) * t.mean[27 + i] + rsy_rng_gaussian(r, sigmas[si]);
                yf[i] = (float)y[i];
                y[i] = yf[i]; /* the denoiser sees the float value */
            }
            assert_int_equal(rsy__patch_denoiser_denoise_patches(d, 0, yf, 1, sigmas[si], df),
                             RSY_OK);
            double e = 0.0, s = 0.0;
            for (int i = 0; i < 27; i++) {
                const double h = 1e-3;
                memcpy(yp, y, sizeof yp);
                yp[i] = y[i] + h;
                double lp = mixture_log_density(&t, yp, sigmas[si]);
                yp[i] = y[i] - h;
                double lm = mixture_log_density(&t, yp, sigmas[si]);
                double fd = (lp - lm) / (2.0 * h);
                double score = ((double)df[i] - y[i]) / (sigmas[si] * sigmas[si]);
                e += (score - fd) * (score - fd);
                s += fd * fd;
            }
            worst = fmax(worst, sqrt(e / s));
        }
    }
    if (verbose())
        fprintf(stderr, "score vs finite differences: worst relative error %.3g\n", worst);
    assert_true(worst < 1e-4);
    rsy_patch_denoiser_destroy(d);
    rsy_texture_prior_destroy(m);
    mixture_free(&t);
    rsy_rng_destroy(r);
}

/* The whole-volume denoiser covers every voxel exactly once per offset, border cells
 * included, for dims not multiple of p and smaller than p: at σ → 0 it returns its input (the
 * output is pre-filled with NaN so a missed voxel fails), at σ → ∞ the prior mean. */
static void test_volume_denoiser_limits(void **state)
{
    (void)state;
    rsy_rng *r = rng_new(SEED + 2);
    rsy_texture_prior *m = prior_new(5, 2);
    rsy_texture_preset_component c0 = preset(1.0, 1.5, 0.5), c1 = preset(2.0, 3.0, -1.0);
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c0), RSY_OK);
    assert_int_equal(rsy_texture_prior_add_preset(m, 1, &c1), RSY_OK);
    c0.weight = 3.0;
    c0.mean = 2.0;
    assert_int_equal(rsy_texture_prior_add_preset(m, 1, &c0), RSY_OK);
    const int64_t dims[3] = {13, 4, 9};
    rsy_volume *cm = class_map_new(dims, RSY_DTYPE_UINT16);
    const size_t nvox = rsy_geometry_nvox(&cm->geom);
    for (size_t v = 0; v < nvox; v++)
        ((uint16_t *)cm->data)[v] = (uint16_t)(v % 13 >= 6);
    float *y = malloc(nvox * sizeof *y), *out = malloc(nvox * sizeof *out);
    assert_non_null(y);
    assert_non_null(out);
    for (size_t v = 0; v < nvox; v++)
        y[v] = (float)rsy_rng_gaussian(r, 1.0);
    for (int offsets = 1; offsets <= 3; offsets += 2) {
        rsy_patch_denoiser *d = denoiser_new(m, 1, 3, offsets);
        rsy_denoiser dn = rsy_patch_denoiser_interface(d);
        for (int rep = 0; rep < 5; rep++) {
            for (size_t v = 0; v < nvox; v++)
                out[v] = NAN;
            /* The preset's smallest eigenvalues are floored at 1e-6·λ_max; σ = 1e-6 leaves
             * 1e-6 of the input in those directions. */
            assert_int_equal(dn.denoise(dn.self, y, cm, 1e-6, r, out), RSY_OK);
            for (size_t v = 0; v < nvox; v++)
                assert_true(fabs(out[v] - y[v]) < 1e-4);
            assert_int_equal(dn.denoise(dn.self, y, cm, 1e6, r, out), RSY_OK);
            for (size_t v = 0; v < nvox; v++) {
                /* A border cell's centre may lie in the other class only near x = 6. */
                double want = (v % 13 >= 6) ? (1.0 * -1.0 + 3.0 * 2.0) / 4.0 : 0.5;
                int near = v % 13 >= 2 && v % 13 <= 10;
                if (!near)
                    assert_true(fabs(out[v] - want) < 1e-4);
                assert_true(isfinite(out[v]));
            }
        }
        rsy_patch_denoiser_destroy(d);
    }
    free(out);
    free(y);
    rsy_volume_destroy(cm);
    rsy_texture_prior_destroy(m);
    rsy_rng_destroy(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Samplers, low dimension                                                                    */
/* ---------------------------------------------------------------------------------------- */
static const char *sampler_name(rsy_texture_sampler s)
{
    switch (s) {
    case RSY_TEXTURE_SAMPLER_EULER:
        return "euler";
    case RSY_TEXTURE_SAMPLER_HEUN:
        return "heun";
    case RSY_TEXTURE_SAMPLER_STOCHASTIC:
        return "stochastic";
    }
    return "?";
}

/* One Gaussian component (p = 3, d = 27, squared-exponential kernel, ℓ = 1.5 voxels):
 * the sample covariance of n = 8000 patches must match the prior's within a relative
 * Frobenius error of 0.05 (Euler, 128 steps; Heun, 32 steps) or 0.09 (stochastic, 32 steps,
 * default churn). Sampling error alone: E‖S − Σ‖²_F = (tr(Σ)² + tr(Σ²))/n, 0.024 relative for
 * this Σ. The rest is discretisation error, measured with these seeds at 0.032 (Euler), 0.023
 * (Heun) and 0.067 (stochastic: each churned step spans a wider σ interval). With the default
 * 18 steps Heun's error is 0.061: the default trades a few percent of covariance for speed. */
static void test_sampler_covariance(void **state)
{
    (void)state;
    enum { N = 8000, D = 27 };
    rsy_texture_prior *m = prior_new(3, 1);
    rsy_texture_preset_component c = preset(1.0, 1.5, 0.0);
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c), RSY_OK);
    rsy_patch_denoiser *d = denoiser_new(m, 1, 2048, 1);
    double sigma_ref[D * D], s2 = 0.0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double q =
                (pow(i % 3 - j % 3, 2) + pow(i / 3 % 3 - j / 3 % 3, 2) + pow(i / 9 - j / 9, 2)) /
                (2.0 * 1.5 * 1.5);
            sigma_ref[i * D + j] = exp(-q);
            s2 += sigma_ref[i * D + j] * sigma_ref[i * D + j];
        }
    float *x = malloc((size_t)N * D * sizeof *x);
    assert_non_null(x);
    const rsy_texture_sampler samplers[3] = {RSY_TEXTURE_SAMPLER_EULER, RSY_TEXTURE_SAMPLER_HEUN,
                                             RSY_TEXTURE_SAMPLER_STOCHASTIC};
    for (int si = 0; si < 3; si++) {
        rsy_texture_sample_params sp = rsy_texture_sample_params_default();
        sp.sampler = samplers[si];
        sp.steps = sp.sampler == RSY_TEXTURE_SAMPLER_EULER ? 128 : 32;
        rsy_rng *r = rng_new(SEED + 10 + (uint64_t)si);
        size_t evals = 0;
        assert_int_equal(rsy__texture_sample_patches(d, 0, N, &sp, r, x, &evals), RSY_OK);
        assert_int_equal(evals, sp.sampler == RSY_TEXTURE_SAMPLER_EULER ? (size_t)sp.steps
                                                                        : 2 * (size_t)sp.steps - 1);
        double e2 = 0.0;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                double s = 0.0;
                for (int n = 0; n < N; n++)
                    s += (double)x[n * D + i] * x[n * D + j];
                e2 += pow(s / N - sigma_ref[i * D + j], 2);
            }
        double rel = sqrt(e2 / s2);
        if (verbose())
            fprintf(stderr, "covariance %s: relative Frobenius error %.4f\n",
                    sampler_name(samplers[si]), rel);
        assert_true(rel < (sp.sampler == RSY_TEXTURE_SAMPLER_STOCHASTIC ? 0.09 : 0.05));
        rsy_rng_destroy(r);
    }
    free(x);
    rsy_patch_denoiser_destroy(d);
    rsy_texture_prior_destroy(m);
}

/* CDF of the 1-D two-component mixture of the KS test. */
static double mix_cdf(double x)
{
    return 0.3 * 0.5 * erfc(-(x + 2.0) / (0.5 * M_SQRT2)) +
           0.7 * 0.5 * erfc(-(x - 1.5) / (sqrt(0.5) * M_SQRT2));
}

/* A two-component mixture in one dimension (p = 1): 0.3·N(−2, 0.5²) + 0.7·N(1.5, 0.5). The
 * samples (n = 2000) must pass a Kolmogorov–Smirnov test at the 1% level: D_n < 1.628/√n
 * = 0.0364 (asymptotic critical value, Smirnov 1948). Euler runs 128 steps, the others 32
 * (with 18 steps the stochastic sampler's discretisation error is detectable at this n). */
static void test_sampler_mixture_ks(void **state)
{
    (void)state;
    enum { N = 2000 };
    rsy_texture_prior *m = prior_new(1, 1);
    const double mu0 = -2.0, mu1 = 1.5, v0 = 0.25, v1 = 0.5;
    assert_int_equal(rsy_texture_prior_add_component(m, 0, 0.3, &mu0, &v0), RSY_OK);
    assert_int_equal(rsy_texture_prior_add_component(m, 0, 0.7, &mu1, &v1), RSY_OK);
    rsy_patch_denoiser *d = denoiser_new(m, 1, 2048, 1);
    float x[N];
    double xs[N];
    const rsy_texture_sampler samplers[3] = {RSY_TEXTURE_SAMPLER_EULER, RSY_TEXTURE_SAMPLER_HEUN,
                                             RSY_TEXTURE_SAMPLER_STOCHASTIC};
    for (int si = 0; si < 3; si++) {
        rsy_texture_sample_params sp = rsy_texture_sample_params_default();
        sp.sampler = samplers[si];
        sp.steps = sp.sampler == RSY_TEXTURE_SAMPLER_EULER ? 128 : 32;
        rsy_rng *r = rng_new(SEED + 20 + (uint64_t)si);
        assert_int_equal(rsy__texture_sample_patches(d, 0, N, &sp, r, x, NULL), RSY_OK);
        for (int i = 0; i < N; i++)
            xs[i] = x[i];
        gsl_sort(xs, 1, N);
        double dn = 0.0;
        for (int i = 0; i < N; i++) {
            double f = mix_cdf(xs[i]);
            dn = fmax(dn, fmax(fabs(f - (double)i / N), fabs((double)(i + 1) / N - f)));
        }
        if (verbose())
            fprintf(stderr, "KS %s: D_n = %.4f (critical 0.0364)\n", sampler_name(samplers[si]),
                    dn);
        assert_true(dn < 1.628 / sqrt((double)N));
        rsy_rng_destroy(r);
    }
    rsy_patch_denoiser_destroy(d);
    rsy_texture_prior_destroy(m);
}

/* ---------------------------------------------------------------------------------------- */
/* Whole volume                                                                               */
/* ---------------------------------------------------------------------------------------- */
/* Empirical autocorrelation of @p u at lag @p h along axis @p a (mean and variance of the
 * whole field). */
static double autocorr(const rsy_volume *u, int a, int h)
{
    const float *f = u->data;
    const int64_t *n = u->geom.dims;
    const size_t nvox = rsy_geometry_nvox(&u->geom);
    double mean = 0.0, var = 0.0, cov = 0.0;
    size_t pairs = 0;
    for (size_t v = 0; v < nvox; v++)
        mean += f[v];
    mean /= (double)nvox;
    for (size_t v = 0; v < nvox; v++)
        var += (f[v] - mean) * (f[v] - mean);
    var /= (double)nvox;
    const size_t stride = a == 0 ? 1 : (a == 1 ? (size_t)n[0] : (size_t)(n[0] * n[1]));
    for (int64_t k = 0; k < n[2]; k++)
        for (int64_t j = 0; j < n[1]; j++)
            for (int64_t i = 0; i < n[0]; i++) {
                int64_t ijk[3] = {i, j, k};
                if (ijk[a] + h >= n[a])
                    continue;
                size_t v = (size_t)(i + n[0] * (j + n[1] * k));
                cov += (f[v] - mean) * (f[v + (size_t)h * stride] - mean);
                pairs++;
            }
    return cov / (double)pairs / var;
}

/* Draw one 48³ field of a single-class preset component @p c (p = 5, default denoiser
 * stride and sampler, 1 mm voxels) and return its variance (mean removed); @p u receives it. */
static double preset_field(const rsy_texture_preset_component *c, int stride, uint64_t seed,
                           rsy_volume **u)
{
    rsy_texture_prior *m = prior_new(5, 1);
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, c), RSY_OK);
    rsy_patch_denoiser_params dp = rsy_patch_denoiser_params_default();
    dp.stride = stride;
    rsy_patch_denoiser *d = NULL;
    assert_int_equal(rsy_patch_denoiser_create(&d, m, &dp), RSY_OK);
    rsy_denoiser dn = rsy_patch_denoiser_interface(d);
    const int64_t dims[3] = {48, 48, 48};
    rsy_volume *cm = class_map_new(dims, RSY_DTYPE_UINT8);
    rsy_rng *r = rng_new(seed);
    rsy_texture_sample_params sp = rsy_texture_sample_params_default();
    rsy_texture_stats st;
    assert_int_equal(rsy_texture_sample(&dn, cm, &sp, r, u, &st), RSY_OK);
    assert_int_equal(st.denoiser_evals, 35);
    double mean = 0.0, var = 0.0;
    const size_t nvox = rsy_geometry_nvox(&(*u)->geom);
    const float *f = (*u)->data;
    for (size_t v = 0; v < nvox; v++)
        mean += f[v];
    mean /= (double)nvox;
    for (size_t v = 0; v < nvox; v++)
        var += (f[v] - mean) * (f[v] - mean);
    var /= (double)nvox;
    assert_true(fabs(mean) < 0.15);
    rsy_volume_destroy(cm);
    rsy_rng_destroy(r);
    rsy_patch_denoiser_destroy(d);
    rsy_texture_prior_destroy(m);
    return var;
}

/* The length ℓ_h = h / sqrt(−2 ln ρ(h)) that a squared-exponential kernel with the field's
 * empirical correlation ρ(h) at lag h along axis a would have. */
static double length_at_lag(const rsy_volume *u, int a, int h)
{
    double rho = autocorr(u, a, h);
    assert_true(rho > 0.0 && rho < 1.0);
    return h / sqrt(-2.0 * log(rho));
}

/* Fields drawn from presets of lengths 1, 1.5 and 2 voxels (isotropic) and (1, 1.5, 2)
 * voxels along (i, j, k) have, along each axis, a squared-exponential autocorrelation whose
 * length ℓ_h at every lag h with kernel correlation >= 0.1 (h = 1..2 for ℓ = 1, 1..3 above)
 * lies in [0.85ℓ, 1.12ℓ], and a variance in [0.8, 1.25] (the preset's is 1). Why these
 * bounds: with the default stride (cells of 5³ writing their central 3³ block) the sampler's
 * own bias is −10% to +6% in ℓ_h and −6% to +15% in variance over this range (measured,
 * docs/texture.md, "Reach of a patch prior"); a 48³ field adds a sampling error of about 0.02
 * on ρ(h), i.e. 3% on ℓ_h at lag 1 for ℓ = 2. 2 voxels is the longest length a recipe may
 * ask of a 5-voxel patch (config/texture.c). */
static void test_volume_autocorrelation(void **state)
{
    (void)state;
    const double lengths[4][3] = {{1.0, 1.0, 1.0}, {1.5, 1.5, 1.5}, {2.0, 2.0, 2.0}, {1.0, 1.5, 2.0}};
    for (int t = 0; t < 4; t++) {
        rsy_texture_preset_component c = preset(1.0, 1.0, 0.0);
        for (int a = 0; a < 3; a++)
            c.corr_length_mm[a] = lengths[t][a];
        rsy_volume *u = NULL;
        double var = preset_field(&c, 0, SEED + 30 + (uint64_t)t, &u);
        if (verbose())
            fprintf(stderr, "lengths (%.1f, %.1f, %.1f): variance %.3f\n", lengths[t][0],
                    lengths[t][1], lengths[t][2], var);
        assert_true(var > 0.8 && var < 1.25);
        for (int a = 0; a < 3; a++) {
            const double ell = lengths[t][a];
            for (int h = 1; exp(-h * h / (2.0 * ell * ell)) >= 0.1; h++) {
                double ell_h = length_at_lag(u, a, h);
                if (verbose())
                    fprintf(stderr, "  axis %d lag %d: length %.3f (%.3f of the preset's)\n", a,
                            h, ell_h, ell_h / ell);
                assert_true(ell_h > 0.85 * ell && ell_h < 1.12 * ell);
            }
        }
        rsy_volume_destroy(u);
    }
}

/* Why the default stride writes only the centre of overlapping cells: non-overlapping tiles
 * (stride = p) denoise every pair straddling a tile border as independent, and the field comes
 * out with a shorter correlation and a lower variance (measured 0.78ℓ at lag 1 and variance
 * 0.60 for ℓ = 2). The same seed with tiles must be measurably worse than with the default:
 * this guards the default against a regression to tiles. */
static void test_volume_tiles_biased(void **state)
{
    (void)state;
    rsy_texture_preset_component c = preset(1.0, 2.0, 0.0);
    rsy_volume *u_tiles = NULL, *u_default = NULL;
    double var_tiles = preset_field(&c, 5, SEED + 40, &u_tiles);
    double var_default = preset_field(&c, 0, SEED + 40, &u_default);
    double l_tiles = length_at_lag(u_tiles, 0, 1), l_default = length_at_lag(u_default, 0, 1);
    if (verbose())
        fprintf(stderr, "tiles: variance %.3f length %.3f; default: %.3f, %.3f\n", var_tiles,
                l_tiles, var_default, l_default);
    assert_true(var_tiles < 0.75 && var_default > 0.85);
    assert_true(l_tiles < 0.82 * 2.0 && l_default > 0.85 * 2.0);
    rsy_volume_destroy(u_tiles);
    rsy_volume_destroy(u_default);
}

/* Two classes, each with its own mean and variance; determinism for a seed, and identical
 * bytes for 1 and 2 threads (small batches, so both workers take several; two offsets, so
 * the accumulation path runs too). */
static void test_volume_classes_determinism(void **state)
{
    (void)state;
    rsy_texture_prior *m = prior_new(5, 2); /* default stride 3: overlapping cells */
    rsy_texture_preset_component c0 = preset(1.0, 1.0, 0.0), c1 = preset(4.0, 1.0, 3.0);
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c0), RSY_OK);
    assert_int_equal(rsy_texture_prior_add_preset(m, 1, &c1), RSY_OK);
    const int64_t dims[3] = {32, 24, 20};
    rsy_volume *cm = class_map_new(dims, RSY_DTYPE_UINT16);
    const size_t nvox = rsy_geometry_nvox(&cm->geom);
    for (size_t v = 0; v < nvox; v++)
        ((uint16_t *)cm->data)[v] = (uint16_t)(v % 32 >= 16);
    rsy_texture_sample_params sp = rsy_texture_sample_params_default();
    sp.sampler = RSY_TEXTURE_SAMPLER_STOCHASTIC;
    rsy_volume *u[4] = {NULL, NULL, NULL, NULL};
    const int threads[4] = {1, 1, 2, 1};
    const uint64_t seeds[4] = {SEED, SEED, SEED, SEED + 1};
    for (int i = 0; i < 4; i++) {
        rsy_patch_denoiser *d = denoiser_new(m, threads[i], 50, 2);
        rsy_denoiser dn = rsy_patch_denoiser_interface(d);
        rsy_rng *r = rng_new(seeds[i]);
        assert_int_equal(rsy_texture_sample(&dn, cm, &sp, r, &u[i], NULL), RSY_OK);
        rsy_rng_destroy(r);
        rsy_patch_denoiser_destroy(d);
    }
    const size_t nb = rsy_volume_nbytes(u[0]);
    assert_memory_equal(u[0]->data, u[1]->data, nb);
    assert_memory_equal(u[0]->data, u[2]->data, nb);
    assert_memory_not_equal(u[0]->data, u[3]->data, nb);
    /* Per-class statistics away from the class border (x in [2, 12] and [20, 30]): means 0 and
     * 3 within 0.25; variances 1 and 4 within [0.8, 1.45] of the target (about 5000 voxels
     * each, ℓ = 1 voxel: a sampling error of about 5%). Overlapping cells overshoot the
     * variance at short lengths: +15% with Heun at ℓ = 1 (docs/texture.md, "Reach of a patch
     * prior"), measured 1.33 and 1.15 here with the stochastic sampler and two offsets; the
     * pipeline rescales u per class (generator/texture_case.c), so only the shape of the
     * texture reaches the images. */
    for (int cls = 0; cls < 2; cls++) {
        double s = 0.0, s2 = 0.0;
        size_t n = 0;
        for (size_t v = 0; v < nvox; v++) {
            int x = (int)(v % 32);
            if (x < 2 + 18 * cls || x > 12 + 18 * cls)
                continue;
            double f = ((const float *)u[0]->data)[v];
            s += f;
            s2 += f * f;
            n++;
        }
        double mean = s / (double)n, var = s2 / (double)n - mean * mean;
        if (verbose())
            fprintf(stderr, "class %d: mean %.3f variance %.3f\n", cls, mean, var);
        assert_true(fabs(mean - 3.0 * cls) < 0.25);
        double ratio = var / (cls ? 4.0 : 1.0);
        assert_true(ratio > 0.8 && ratio < 1.45);
    }
    for (int i = 0; i < 4; i++)
        rsy_volume_destroy(u[i]);
    rsy_volume_destroy(cm);
    rsy_texture_prior_destroy(m);
}

/* Inpainting with the stochastic sampler: the known half (x < 16) of a field drawn from the
 * prior is kept exactly, and the drawn half continues it: the mean squared jump across the
 * plane x = 15 | 16 is below 2.5 times the mean squared x-neighbour difference inside the
 * regions. An independent draw glued on would give 1/(1 − ρ(1)) = 5 with the sampler's
 * ρ(1) = 0.8; a perfect continuation 1. Replacement without resampling is known to blend only
 * partly (Lugmayr et al. 2022); the churn of the stochastic sampler is what blends here
 * (measured 1.9, against 3.2 for the deterministic Heun sampler). */
static void test_inpaint(void **state)
{
    (void)state;
    rsy_texture_prior *m = prior_new(5, 1);
    rsy_texture_preset_component c = preset(1.0, 2.0, 0.0);
    assert_int_equal(rsy_texture_prior_add_preset(m, 0, &c), RSY_OK);
    rsy_patch_denoiser *d = denoiser_new(m, 1, 2048, 1);
    rsy_denoiser dn = rsy_patch_denoiser_interface(d);
    const int64_t dims[3] = {32, 32, 32};
    rsy_volume *cm = class_map_new(dims, RSY_DTYPE_UINT8), *known = NULL, *u = NULL;
    rsy_volume *mask = class_map_new(dims, RSY_DTYPE_UINT8);
    const size_t nvox = rsy_geometry_nvox(&cm->geom);
    for (size_t v = 0; v < nvox; v++)
        ((uint8_t *)mask->data)[v] = v % 32 < 16;
    rsy_texture_sample_params sp = rsy_texture_sample_params_default();
    sp.sampler = RSY_TEXTURE_SAMPLER_STOCHASTIC;
    rsy_rng *r = rng_new(SEED + 40);
    assert_int_equal(rsy_texture_sample(&dn, cm, &sp, r, &known, NULL), RSY_OK);
    assert_int_equal(rsy_texture_inpaint(&dn, cm, known, mask, &sp, r, &u, NULL), RSY_OK);
    const float *k = known->data, *f = u->data;
    double jump = 0.0, inside = 0.0;
    size_t nj = 0, ni = 0;
    for (size_t v = 0; v < nvox; v++) {
        int x = (int)(v % 32);
        if (x < 16)
            assert_true(f[v] == k[v]);
        if (x == 31)
            continue;
        double dd = (double)f[v + 1] - f[v];
        if (x == 15) {
            jump += dd * dd;
            nj++;
        } else {
            inside += dd * dd;
            ni++;
        }
    }
    double ratio = (jump / (double)nj) / (inside / (double)ni);
    if (verbose())
        fprintf(stderr, "inpainting: boundary / inside squared jump ratio %.3f\n", ratio);
    assert_true(ratio < 2.5);
    rsy_volume_destroy(u);
    rsy_volume_destroy(known);
    rsy_volume_destroy(mask);
    rsy_volume_destroy(cm);
    rsy_rng_destroy(r);
    rsy_patch_denoiser_destroy(d);
    rsy_texture_prior_destroy(m);
}

int main(void)
{
    rsy_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_denoiser_limits),
        cmocka_unit_test(test_denoiser_score),
        cmocka_unit_test(test_volume_denoiser_limits),
        cmocka_unit_test(test_sampler_covariance),
        cmocka_unit_test(test_sampler_mixture_ks),
        cmocka_unit_test(test_volume_autocorrelation),
        cmocka_unit_test(test_volume_tiles_biased),
        cmocka_unit_test(test_volume_classes_determinism),
        cmocka_unit_test(test_inpaint),
    };
    return cmocka_run_group_tests_name("texture", tests, NULL, NULL);
}
