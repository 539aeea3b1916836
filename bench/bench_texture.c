/*
 * bench_texture.c: one 128³ texture field drawn with the default sampler (Heun, 18 steps,
 * 35 denoiser evaluations) on one thread, on the class map of a head phantom
 * (rsy_phantom_generate, family "head", 128³ at 1.75 mm), with the default brain model
 * configs/textures/brain-colin27.h5 (`make texture-model`) when it is present: its classes
 * (CSF, grey matter, white matter by intensity) carry the phantom's CSF and ventricles, grey
 * matter, deep grey and cerebellum, white matter and brainstem; background, scalp and skull
 * share one analytic preset class. Without the file, a synthetic analytic prior (p = 5, K = 3
 * components per class) is used on the same map; the output line says which (model=). Next
 * to it, the single-thread sgemm and dgemm rates of the same OpenBLAS on the denoiser's two
 * matrix shapes and on square 1024³ products, measured in the same run.
 *
 * Prints machine-readable lines:
 *     bench texture field_128 model=<colin27|synthetic> threads=1 seconds=<s> evals=<n>
 *         gemm_gflop=<x> gflops=<x> sgemm_gflops=<x> dgemm_gflops=<x> gemm_fraction=<x>
 *     bench texture denoise_128 seconds_per_eval=<s> gflops=<x> gemm_share=<x>
 *     bench texture blas_peak sgemm_1024_gflops=<x> dgemm_1024_gflops=<x>
 * gflops is the denoiser's counted matrix flops (4·n·K·d² per batch) over the whole sampling
 * time; sgemm_gflops and dgemm_gflops are the rates on the denoiser's shapes (batch × d times
 * d × K·d and back) and gemm_fraction = gflops / sgemm_gflops. gemm_share estimates the part
 * of a denoiser evaluation spent in the products (flops at the measured sgemm rate over the
 * evaluation time); the rest is gathering, scattering, the responsibilities and the ODE
 * updates. The 1024³ rates are the BLAS's square-matrix peak, for scale: the skinny shapes
 * (inner dimension d = 125) run below it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "rsy_core.h"
#include "rsy_generator.h"
#include "rsy_phantoms.h"

#define N 128
#define SPACING_MM 1.75
#define MODEL_PATH "configs/textures/brain-colin27.h5"
#define P_SYNTH 5
#define K_SYNTH 3
/* Prior classes: 0 the non-brain preset class, 1..3 CSF, grey matter, white matter. */
#define N_CLASSES 4
#define SKINNY_REPS 20
#define SQUARE_N 1024
#define SQUARE_REPS 5

/* Prior class of each head phantom class (rsy_head_class). */
static uint8_t prior_class(uint16_t head)
{
    switch (head) {
    case RSY_HEAD_CSF:
    case RSY_HEAD_VENTRICLES:
        return 1;
    case RSY_HEAD_GREY_MATTER:
    case RSY_HEAD_DEEP_GREY:
    case RSY_HEAD_CEREBELLUM:
        return 2;
    case RSY_HEAD_WHITE_MATTER:
    case RSY_HEAD_BRAINSTEM:
        return 3;
    default:
        return 0;
    }
}

/* The head phantom's class map at 128³, mapped to the prior's classes into @p *out (uint8). */
static rsy_status head_map(rsy_volume **out)
{
    rsy_phantom_spec spec;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.family, sizeof spec.family, "head");
    for (int a = 0; a < 3; a++) {
        spec.dims[a] = N;
        spec.spacing_mm[a] = SPACING_MM;
    }
    spec.sex = RSY_SEX_FEMALE;
    spec.female_fraction = 0.5;
    spec.age_min_years = 40.0;
    spec.age_max_years = 40.0;
    spec.deformation_mm = 2.0;
    spec.deformation_scale_mm = 30.0;
    rsy_rng *rs = NULL, *rh = NULL;
    rsy_volume *head = NULL, *map = NULL;
    rsy_subject subject;
    rsy_status rc = rsy_rng_create(&rs, 1);
    if (rc == RSY_OK)
        rc = rsy_rng_create(&rh, 2);
    if (rc == RSY_OK)
        rc = rsy_phantom_generate(&spec, rs, rh, &head, &subject);
    if (rc == RSY_OK)
        rc = rsy_volume_create(&map, &head->geom, RSY_DTYPE_UINT8);
    if (rc == RSY_OK) {
        const uint16_t *h = head->data;
        uint8_t *c = map->data;
        for (size_t i = 0; i < rsy_geometry_nvox(&head->geom); i++)
            c[i] = prior_class(h[i]);
        *out = map;
        map = NULL;
    }
    rsy_volume_destroy(map);
    rsy_volume_destroy(head);
    rsy_rng_destroy(rh);
    rsy_rng_destroy(rs);
    return rc;
}

/* The prior: the default model's three classes as classes 1..3 when @p m is not NULL, else
 * synthetic presets; class 0 always an analytic preset. Sets *k_max to the most components of
 * a class. */
static rsy_status build_prior(const rsy_texture_fitted *m, rsy_texture_prior **out, int *k_max)
{
    /* The phantom's voxel size: patch priors act in voxels, as in the pipeline. */
    const double spacing[3] = {SPACING_MM, SPACING_MM, SPACING_MM};
    const int p = m ? rsy_texture_fitted_patch_size(m) : P_SYNTH;
    rsy_texture_prior *prior = NULL;
    rsy_status rc = rsy_texture_prior_create(&prior, p, spacing, N_CLASSES);
    *k_max = 0;
    for (int c = 0; c < N_CLASSES && rc == RSY_OK; c++) {
        if (m && c > 0) {
            rsy_texture_class_info info;
            rc = rsy_texture_fitted_class_info(m, c - 1, &info);
            for (int k = 0; rc == RSY_OK && k < info.n_components; k++) {
                double w;
                const double *mean, *cov;
                rc = rsy_texture_fitted_component(m, c - 1, k, &w, &mean, &cov);
                if (rc == RSY_OK)
                    rc = rsy_texture_prior_add_component(prior, c, w, mean, cov);
            }
            if (rc == RSY_OK && info.n_components > *k_max)
                *k_max = info.n_components;
            continue;
        }
        for (int k = 0; k < K_SYNTH && rc == RSY_OK; k++) {
            rsy_texture_preset_component pc;
            pc.weight = 1.0 + k;
            pc.variance = 0.5 + 0.5 * k;
            pc.corr_length_mm[0] = 1.0 + 0.5 * k;
            pc.corr_length_mm[1] = 1.0 + 0.5 * k;
            pc.corr_length_mm[2] = 1.5 + 0.5 * c;
            pc.mean = 0.3 * (k - 1);
            rc = rsy_texture_prior_add_preset(prior, c, &pc);
        }
        if (K_SYNTH > *k_max)
            *k_max = K_SYNTH;
    }
    if (rc != RSY_OK) {
        rsy_texture_prior_destroy(prior);
        return rc;
    }
    *out = prior;
    return RSY_OK;
}

/* GFLOP/s of C = A·B (transposed B when @p trans_b) with A m×k, best of @p reps. */
static double gemm_rate(int is_double, int m, int n, int k, int trans_b, int reps)
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
    for (int r = 0; r < reps; r++) {
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
    rsy_texture_fitted *model = NULL;
    rsy_texture_prior *prior = NULL;
    rsy_patch_denoiser *dn = NULL;
    rsy_volume *cm = NULL, *u = NULL;
    rsy_rng *rng = NULL;
    float *tmp = NULL;
    int k_max = 0;
    rsy_status rc = rsy_init();
    FILE *probe = fopen(MODEL_PATH, "rb");
    if (probe) {
        fclose(probe);
        if (rc == RSY_OK)
            rc = rsy_texture_fitted_read(&model, MODEL_PATH);
        if (rc == RSY_OK && rsy_texture_fitted_n_classes(model) != N_CLASSES - 1) {
            fprintf(stderr, "bench_texture: %s has %d classes, expected 3 (CSF, GM, WM)\n",
                    MODEL_PATH, rsy_texture_fitted_n_classes(model));
            goto done;
        }
    }
    if (rc == RSY_OK)
        rc = build_prior(model, &prior, &k_max);
    rsy_patch_denoiser_params dp = rsy_patch_denoiser_params_default();
    if (rc == RSY_OK)
        rc = rsy_patch_denoiser_create(&dn, prior, &dp);
    if (rc == RSY_OK)
        rc = head_map(&cm);
    if (rc == RSY_OK)
        rc = rsy_rng_create(&rng, 42);
    if (rc != RSY_OK) {
        fprintf(stderr, "bench_texture: setup: %s\n", rsy_strerror(rc));
        goto done;
    }
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
    const size_t nvox = rsy_geometry_nvox(&cm->geom);
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
    const int p = rsy_texture_prior_patch_size(prior);
    const int m = (int)dp.batch_patches, d = p * p * p, kd = k_max * d;
    double s1 = gemm_rate(0, m, kd, d, 0, SKINNY_REPS), s2 = gemm_rate(0, m, d, kd, 1, SKINNY_REPS);
    double d1 = gemm_rate(1, m, kd, d, 0, SKINNY_REPS), d2 = gemm_rate(1, m, d, kd, 1, SKINNY_REPS);
    double sgemm = 2.0 / (1.0 / s1 + 1.0 / s2), dgemm = 2.0 / (1.0 / d1 + 1.0 / d2);
    double sq_s = gemm_rate(0, SQUARE_N, SQUARE_N, SQUARE_N, 0, SQUARE_REPS);
    double sq_d = gemm_rate(1, SQUARE_N, SQUARE_N, SQUARE_N, 0, SQUARE_REPS);
    double gflops = flops / seconds * 1e-9;
    printf("bench texture field_128 model=%s threads=1 seconds=%.3f evals=%zu gemm_gflop=%.2f "
           "gflops=%.2f sgemm_gflops=%.2f dgemm_gflops=%.2f gemm_fraction=%.3f\n",
           model ? "colin27" : "synthetic", seconds, st.denoiser_evals, flops * 1e-9, gflops, sgemm,
           dgemm, gflops / sgemm);
    printf("bench texture denoise_128 seconds_per_eval=%.4f gflops=%.2f gemm_share=%.3f\n",
           per_eval, eval_flops / per_eval * 1e-9, eval_flops / (sgemm * 1e9) / per_eval);
    printf("bench texture blas_peak sgemm_%d_gflops=%.2f dgemm_%d_gflops=%.2f\n", SQUARE_N, sq_s,
           SQUARE_N, sq_d);
    ret = EXIT_SUCCESS;
done:
    free(tmp);
    rsy_rng_destroy(rng);
    rsy_volume_destroy(u);
    rsy_volume_destroy(cm);
    rsy_patch_denoiser_destroy(dn);
    rsy_texture_prior_destroy(prior);
    rsy_texture_fitted_destroy(model);
    return ret;
}
