/*
 * bench_texture.c: one 128³ texture field drawn with the default sampler (Heun, 18 steps,
 * 35 denoiser evaluations) from a three-class patch prior (p = 5, d = 125, K = 3 analytic
 * components per class), on one thread, next to the single-thread sgemm and dgemm rates of
 * the same OpenBLAS on the denoiser's two matrix shapes, measured in the same run.
 *
 * Prints machine-readable lines:
 *     bench texture field_128 threads=1 seconds=<s> evals=<n> gemm_gflop=<x> gflops=<x>
 *         sgemm_gflops=<x> dgemm_gflops=<x> gemm_fraction=<x>
 *     bench texture denoise_128 seconds_per_eval=<s> gflops=<x> gemm_share=<x>
 * gflops is the denoiser's counted matrix flops (4·n·K·d² per batch) over the whole sampling
 * time; gemm_fraction = gflops / sgemm_gflops. gemm_share estimates the part of a denoiser
 * evaluation spent in the products (flops at the measured sgemm rate over the evaluation
 * time); the rest is gathering, scattering, the responsibilities and the ODE updates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "rsy_core.h"
#include "rsy_generator.h"

#define N 128
#define P 5
#define K 3
#define N_CLASSES 3
#define BLAS_REPS 20

/* Three classes: a sphere of radius 40 voxels (1) with a core of radius 15 (2) in a
 * background (0), like a head with a lesion. */
static void fill_map(rsy_volume *v)
{
    uint8_t *c = v->data;
    for (int k = 0; k < N; k++)
        for (int j = 0; j < N; j++)
            for (int i = 0; i < N; i++) {
                double x = i - N / 2 + 0.5, y = j - N / 2 + 0.5, z = k - N / 2 + 0.5;
                double r2 = x * x + y * y + z * z;
                c[(size_t)i + (size_t)N * ((size_t)j + (size_t)N * (size_t)k)] =
                    (uint8_t)(r2 < 15.0 * 15.0 ? 2 : (r2 < 40.0 * 40.0 ? 1 : 0));
            }
}

/* GFLOP/s of C = A·B (transposed B when @p trans_b) with A m×k, repeated BLAS_REPS times. */
static double gemm_rate(int is_double, int m, int n, int k, int trans_b)
{
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    size_t es = is_double ? sizeof(double) : sizeof(float);
    void *a = malloc(na * es), *b = malloc(nb * es), *c = malloc(nc * es);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0.0;
    }
    for (size_t i = 0; i < na; i++) {
        if (is_double)
            ((double *)a)[i] = (double)(i % 7) * 0.1;
        else
            ((float *)a)[i] = (float)(i % 7) * 0.1f;
    }
    for (size_t i = 0; i < nb; i++) {
        if (is_double)
            ((double *)b)[i] = (double)(i % 5) * 0.1;
        else
            ((float *)b)[i] = (float)(i % 5) * 0.1f;
    }
    const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    const int ldb = trans_b ? k : n;
    double best = 1e30;
    for (int r = 0; r < BLAS_REPS; r++) {
        double t0 = rsy_time_now();
        if (is_double)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, tb, m, n, k, 1.0, a, k, b, ldb, 0.0, c, n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, m, n, k, 1.0f, a, k, b, ldb, 0.0f, c, n);
        double dt = rsy_time_now() - t0;
        if (dt < best)
            best = dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k / best * 1e-9;
}

int main(void)
{
    int ret = EXIT_FAILURE;
    rsy_texture_prior *prior = NULL;
    rsy_patch_denoiser *dn = NULL;
    rsy_volume *cm = NULL, *u = NULL;
    rsy_rng *rng = NULL;
    float *tmp = NULL;
    rsy_status rc = rsy_init();
    const double spacing[3] = {1.0, 1.0, 1.0};
    const int64_t dims[3] = {N, N, N};
    rsy_geometry g;
    if (rc == RSY_OK)
        rc = rsy_texture_prior_create(&prior, P, spacing, N_CLASSES);
    for (int c = 0; c < N_CLASSES && rc == RSY_OK; c++)
        for (int k = 0; k < K && rc == RSY_OK; k++) {
            rsy_texture_preset_component pc;
            pc.weight = 1.0 + k;
            pc.variance = 0.5 + 0.5 * k;
            pc.corr_length_mm[0] = 1.0 + 0.5 * k;
            pc.corr_length_mm[1] = 1.0 + 0.5 * k;
            pc.corr_length_mm[2] = 1.5 + 0.5 * c;
            pc.mean = 0.3 * (k - 1);
            rc = rsy_texture_prior_add_preset(prior, c, &pc);
        }
    rsy_patch_denoiser_params dp = rsy_patch_denoiser_params_default();
    if (rc == RSY_OK)
        rc = rsy_patch_denoiser_create(&dn, prior, &dp);
    if (rc == RSY_OK)
        rc = rsy_geometry_init(&g, dims, spacing);
    if (rc == RSY_OK)
        rc = rsy_volume_create(&cm, &g, RSY_DTYPE_UINT8);
    if (rc == RSY_OK)
        rc = rsy_rng_create(&rng, 42);
    if (rc != RSY_OK) {
        fprintf(stderr, "bench_texture: setup: %s\n", rsy_strerror(rc));
        goto done;
    }
    fill_map(cm);
    rsy_denoiser iface = rsy_patch_denoiser_interface(dn);
    rsy_texture_sample_params sp = rsy_texture_sample_params_default();
    rsy_texture_stats st;

    double t0 = rsy_time_now();
    rc = rsy_texture_sample(&iface, cm, &sp, rng, &u, &st);
    double seconds = rsy_time_now() - t0;
    if (rc != RSY_OK) {
        fprintf(stderr, "bench_texture: sample: %s\n", rsy_strerror(rc));
        goto done;
    }
    double flops = rsy_patch_denoiser_gemm_flops(dn);

    /* Denoiser alone, on the drawn field at a mid noise level. */
    const size_t nvox = rsy_geometry_nvox(&g);
    tmp = malloc(nvox * sizeof *tmp);
    if (!tmp)
        goto done;
    const int reps = 10;
    double f0 = rsy_patch_denoiser_gemm_flops(dn);
    double t1 = rsy_time_now();
    for (int r = 0; r < reps && rc == RSY_OK; r++)
        rc = iface.denoise(iface.self, u->data, cm, 1.0, rng, tmp);
    double per_eval = (rsy_time_now() - t1) / reps;
    double eval_flops = (rsy_patch_denoiser_gemm_flops(dn) - f0) / reps;
    if (rc != RSY_OK)
        goto done;

    /* The same shapes as the denoiser's products: batch × d times d × K·d, and batch × K·d
     * times (d × K·d)ᵀ. The rate is the flop-weighted harmonic mean of the two. */
    const int m = (int)dp.batch_patches, d = P * P * P, kd = K * P * P * P;
    double s1 = gemm_rate(0, m, kd, d, 0), s2 = gemm_rate(0, m, d, kd, 1);
    double d1 = gemm_rate(1, m, kd, d, 0), d2 = gemm_rate(1, m, d, kd, 1);
    double sgemm = 2.0 / (1.0 / s1 + 1.0 / s2), dgemm = 2.0 / (1.0 / d1 + 1.0 / d2);
    double gflops = flops / seconds * 1e-9;
    printf("bench texture field_128 threads=1 seconds=%.3f evals=%zu gemm_gflop=%.2f "
           "gflops=%.2f sgemm_gflops=%.2f dgemm_gflops=%.2f gemm_fraction=%.3f\n",
           seconds, st.denoiser_evals, flops * 1e-9, gflops, sgemm, dgemm, gflops / sgemm);
    printf("bench texture denoise_128 seconds_per_eval=%.4f gflops=%.2f gemm_share=%.3f\n",
           per_eval, eval_flops / per_eval * 1e-9, eval_flops / (sgemm * 1e9) / per_eval);
    ret = EXIT_SUCCESS;
done:
    free(tmp);
    rsy_rng_destroy(rng);
    rsy_volume_destroy(u);
    rsy_volume_destroy(cm);
    rsy_patch_denoiser_destroy(dn);
    rsy_texture_prior_destroy(prior);
    return ret;
}
