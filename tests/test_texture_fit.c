/*
 * test_texture_fit.c: fitting texture models (generator/texture_fit.c) and their HDF5 files
 * (generator/texture_io.c, docs/texture-model.md). Fixed seeds; tolerances stated at each
 * check.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "test_util.h"

#include "rsy_core.h"
#include "rsy_generator.h"
#include "texture_fit_internal.h"

#define COLIN27 "/usr/share/mricron/templates/ch2bet.nii.gz"
#define PYTHON "/usr/bin/python3"

static int setup(void **state)
{
    (void)state;
    assert_int_equal(rsy_init(), RSY_OK);
    tu_log_capture();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rsy_log_set_handler(NULL, NULL);
    return 0;
}

/* Draw n samples of a 2-D mixture (weights w, means mu[k][2], covariances cov[k][2][2]). */
static void draw_mixture(rsy_rng *r, size_t n, int k, const double *w, const double mu[][2],
                         const double cov[][2][2], double *x)
{
    for (size_t i = 0; i < n; i++) {
        size_t j = rsy_rng_categorical(r, w, (size_t)k);
        /* 2×2 Cholesky factor of cov[j]. */
        double l00 = sqrt(cov[j][0][0]), l10 = cov[j][1][0] / l00;
        double l11 = sqrt(cov[j][1][1] - l10 * l10);
        double z0 = rsy_rng_gaussian(r, 1.0), z1 = rsy_rng_gaussian(r, 1.0);
        x[2 * i] = mu[j][0] + l00 * z0;
        x[2 * i + 1] = mu[j][1] + l10 * z0 + l11 * z1;
    }
}

static void test_em_recovers_mixture(void **state)
{
    (void)state;
    enum { K = 3, N = 12000 };
    const double w[K] = {0.5, 0.3, 0.2};
    const double mu[K][2] = {{-4.0, 0.0}, {0.0, 3.0}, {4.0, -1.0}};
    const double cov[K][2][2] = {
        {{1.0, 0.3}, {0.3, 0.5}}, {{0.6, -0.2}, {-0.2, 1.2}}, {{0.8, 0.0}, {0.0, 0.8}}};
    double *x = malloc(N * 2 * sizeof *x);
    assert_non_null(x);
    rsy_rng *r = NULL;
    assert_int_equal(rsy_rng_create(&r, 12345), RSY_OK);
    draw_mixture(r, N, K, w, mu, cov, x);
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    p.cov_floor = 0.0;
    p.tolerance = 1e-9;
    p.max_iterations = 500;
    double fw[K], fm[K * 2], fc[K * 4];
    rsy__texture_em_result res;
    assert_int_equal(rsy__texture_em(x, N, 2, K, &p, r, fw, fm, fc, NULL, &res), RSY_OK);
    assert_true(res.n_iterations >= 1 && res.n_iterations <= 500);
    assert_int_equal(res.n_components, K);
    /* Match fitted components to the true ones by the nearest mean (the clusters are 4+ SD
     * apart, so the match is unambiguous). */
    for (int t = 0; t < K; t++) {
        int best = 0;
        double bd = INFINITY;
        for (int j = 0; j < K; j++) {
            double dx = fm[2 * j] - mu[t][0], dy = fm[2 * j + 1] - mu[t][1];
            if (dx * dx + dy * dy < bd) {
                bd = dx * dx + dy * dy;
                best = j;
            }
        }
        /* With N = 12000, standard errors are about 0.005 for the weights, 0.015 for the
         * means and 0.02 for the covariance entries: tolerances are about 4 of them. */
        assert_true(fabs(fw[best] - w[t]) < 0.02);
        assert_true(sqrt(bd) < 0.06);
        for (int a = 0; a < 4; a++)
            assert_true(fabs(fc[4 * best + a] - cov[t][a / 2][a % 2]) < 0.08);
    }
    /* Same seed and data, two threads: identical numbers. */
    rsy_rng *r1 = NULL, *r2 = NULL;
    assert_int_equal(rsy_rng_create(&r1, 7), RSY_OK);
    assert_int_equal(rsy_rng_create(&r2, 7), RSY_OK);
    double w1[K], m1[K * 2], c1[K * 4], w2[K], m2[K * 2], c2[K * 4];
    rsy__texture_em_result res1, res2;
    assert_int_equal(rsy__texture_em(x, N, 2, K, &p, r1, w1, m1, c1, NULL, &res1), RSY_OK);
    p.n_threads = 2;
    assert_int_equal(rsy__texture_em(x, N, 2, K, &p, r2, w2, m2, c2, NULL, &res2), RSY_OK);
    assert_memory_equal(w1, w2, sizeof w1);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(c1, c2, sizeof c1);
    assert_int_equal(res1.n_iterations, res2.n_iterations);
    /* Fewer samples than components is refused. */
    assert_int_equal(rsy__texture_em(x, 2, 2, K, &p, r1, w1, m1, c1, NULL, &res1), RSY_EINVAL);
    rsy_rng_destroy(r2);
    rsy_rng_destroy(r1);
    rsy_rng_destroy(r);
    free(x);
}

/* With a zero covariance floor the M-step is exact, so EM never lowers the likelihood (Dempster,
 * Laird & Rubin 1977): the per-iteration sequence must be non-decreasing up to rounding, and
 * the returned parameters are the best evaluated, with or without a floor. */
static void test_em_monotone(void **state)
{
    (void)state;
    enum { K = 3, N = 6000, CAP = 300 };
    /* Overlapping clusters (means 1.5–2.5 SD apart), so EM takes many small steps. */
    const double w[K] = {0.4, 0.35, 0.25};
    const double mu[K][2] = {{-1.5, 0.0}, {0.5, 1.0}, {1.5, -1.0}};
    const double cov[K][2][2] = {
        {{1.0, 0.4}, {0.4, 0.8}}, {{0.7, -0.3}, {-0.3, 1.0}}, {{0.9, 0.0}, {0.0, 0.6}}};
    double *x = malloc(N * 2 * sizeof *x), hist[CAP];
    assert_non_null(x);
    rsy_rng *r = NULL;
    assert_int_equal(rsy_rng_create(&r, 31), RSY_OK);
    draw_mixture(r, N, K, w, mu, cov, x);
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    p.cov_floor = 0.0;
    p.tolerance = 0.0; /* run until the likelihood stops rising (or the cap) */
    p.max_iterations = CAP;
    double fw[K], fm[K * 2], fc[K * 4];
    rsy__texture_em_result res;
    assert_int_equal(rsy__texture_em(x, N, 2, K, &p, r, fw, fm, fc, hist, &res), RSY_OK);
    assert_true(res.n_iterations >= 10);
    double best = hist[0];
    for (int i = 1; i < res.n_iterations; i++) {
        /* Rounding of a mean over 6000 log-densities of magnitude ~3: far below 1e-12. */
        assert_true(hist[i] >= hist[i - 1] - 1e-12);
        best = fmax(best, hist[i]);
    }
    assert_true(res.log_likelihood == best);
    /* A large floor (0.5 on unit-scale data) makes the M-step inexact; whatever the sequence
     * does, the parameters returned are those of its maximum. */
    p.cov_floor = 0.5;
    assert_int_equal(rsy__texture_em(x, N, 2, K, &p, r, fw, fm, fc, hist, &res), RSY_OK);
    best = -INFINITY;
    for (int i = 0; i < res.n_iterations; i++)
        best = fmax(best, hist[i]);
    assert_true(res.log_likelihood == best);
    rsy_rng_destroy(r);
    free(x);
}

/* A component must keep max(50, 2·d) effective samples: a small far cluster is dropped, too few
 * samples fail with RSY_ENUMERIC. */
static void test_em_min_count(void **state)
{
    (void)state;
    enum { N = 400 };
    const double w[2] = {0.97, 0.03};
    const double mu[2][2] = {{0.0, 0.0}, {30.0, 30.0}};
    const double cov[2][2][2] = {{{1, 0}, {0, 1}}, {{1, 0}, {0, 1}}};
    double *x = malloc(N * 2 * sizeof *x);
    assert_non_null(x);
    rsy_rng *r = NULL;
    assert_int_equal(rsy_rng_create(&r, 8), RSY_OK);
    draw_mixture(r, N, 2, w, mu, cov, x);
    size_t far = 0;
    for (size_t i = 0; i < N; i++)
        far += x[2 * i] > 15.0;
    assert_true(far > 0 && far < 50); /* about 12 samples in the far cluster */
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    double fw[2], fm[4], fc[8];
    rsy__texture_em_result res;
    /* k-means++ seeds one centre in the far cluster (D² of 1800 against ~2): it holds < 50. */
    assert_int_equal(rsy__texture_em(x, N, 2, 2, &p, r, fw, fm, fc, NULL, &res), RSY_OK);
    assert_int_equal(res.n_components, 1);
    assert_true(fw[0] == 1.0);
    /* 40 samples, fewer than the 50 one component needs. */
    assert_int_equal(rsy__texture_em(x, 40, 2, 1, &p, r, fw, fm, fc, NULL, &res), RSY_ENUMERIC);
    assert_non_null(strstr(tu_last_error(), "fewer than the 50"));
    rsy_rng_destroy(r);
    free(x);
}

static void test_kmeanspp_deterministic(void **state)
{
    (void)state;
    enum { K = 3, N = 3000 };
    const double w[K] = {0.4, 0.3, 0.3};
    const double mu[K][2] = {{-100.0, 0.0}, {0.0, 100.0}, {100.0, 0.0}};
    const double cov[K][2][2] = {{{1, 0}, {0, 1}}, {{1, 0}, {0, 1}}, {{1, 0}, {0, 1}}};
    double *x = malloc(N * 2 * sizeof *x);
    assert_non_null(x);
    rsy_rng *r = NULL, *a = NULL, *b = NULL;
    assert_int_equal(rsy_rng_create(&r, 99), RSY_OK);
    draw_mixture(r, N, K, w, mu, cov, x);
    size_t s1[K], s2[K];
    assert_int_equal(rsy_rng_create(&a, 5), RSY_OK);
    assert_int_equal(rsy_rng_create(&b, 5), RSY_OK);
    assert_int_equal(rsy__texture_kmeanspp(x, N, 2, K, a, s1), RSY_OK);
    assert_int_equal(rsy__texture_kmeanspp(x, N, 2, K, b, s2), RSY_OK);
    assert_memory_equal(s1, s2, sizeof s1);
    /* D² seeding puts one seed in each of three clusters 100 SD apart: a second seed in a
     * seeded cluster has D² ≈ 4 against ≥ 10⁴ for the others, a chance below 1e-3. */
    int seen[K] = {0, 0, 0};
    for (int j = 0; j < K; j++) {
        const double *c = x + 2 * s1[j];
        int cl = c[0] < -50 ? 0 : c[0] > 50 ? 2 : 1;
        seen[cl]++;
    }
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 1);
    /* Identical rows: fewer than K distinct samples. */
    double same[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(rsy__texture_kmeanspp(same, 4, 2, 2, a, s1), RSY_EINVAL);
    rsy_rng_destroy(b);
    rsy_rng_destroy(a);
    rsy_rng_destroy(r);
    free(x);
}

/* A 32³ float image: a zero border of 2 voxels, inside three slabs along z of true means 30,
 * 60, 90 plus N(0, 4²) noise. Fills @p truth (1..3, 0 outside) when not NULL. */
static rsy_volume *three_class_image(uint64_t seed, uint8_t *truth)
{
    const int64_t dims[3] = {32, 32, 32};
    const double sp[3] = {1.0, 1.0, 1.0};
    rsy_geometry g;
    rsy_volume *v = NULL;
    rsy_rng *r = NULL;
    if (rsy_geometry_init(&g, dims, sp) != RSY_OK || rsy_volume_create(&v, &g, RSY_DTYPE_FLOAT32) ||
        rsy_rng_create(&r, seed) != RSY_OK) {
        rsy_volume_destroy(v);
        return NULL;
    }
    float *f = v->data;
    for (int k = 0; k < 32; k++)
        for (int j = 0; j < 32; j++)
            for (int i = 0; i < 32; i++) {
                size_t idx = (size_t)(i + 32 * (j + 32 * k));
                int inside = i >= 2 && i < 30 && j >= 2 && j < 30 && k >= 2 && k < 30;
                int cls = inside ? 1 + (k - 2) * 3 / 28 : 0;
                f[idx] = cls ? (float)(30.0 * cls + rsy_rng_gaussian(r, 4.0)) : 0.0f;
                if (truth)
                    truth[idx] = (uint8_t)cls;
            }
    rsy_rng_destroy(r);
    return v;
}

static void test_auto_classes(void **state)
{
    (void)state;
    uint8_t *truth = malloc(32 * 32 * 32);
    uint16_t *cls = malloc(32 * 32 * 32 * sizeof *cls);
    assert_non_null(truth);
    assert_non_null(cls);
    rsy_volume *v = three_class_image(3, truth);
    assert_non_null(v);
    double means[3];
    assert_int_equal(rsy__texture_intensity_classes(v, 3, 200, 1e-8, cls, means), RSY_OK);
    /* About 7000 voxels per class with SD 4: the mean's standard error is 0.05; the mixture
     * tails (classes 7.5 SD apart) shift it by far less than 0.3. */
    assert_true(fabs(means[0] - 30.0) < 0.3);
    assert_true(fabs(means[1] - 60.0) < 0.3);
    assert_true(fabs(means[2] - 90.0) < 0.3);
    size_t wrong = 0;
    for (size_t i = 0; i < 32 * 32 * 32; i++)
        wrong += cls[i] != truth[i];
    /* Misclassification beyond the midpoint (3.75 SD): P = 9e-5 per voxel, 2 expected. */
    assert_true(wrong < 20);
    rsy_volume_destroy(v);
    free(cls);
    free(truth);
}

/* Fit a small model on the three-class image with a label map of values 2, 5 and 9. */
static rsy_texture_fitted *small_model(rsy_volume **img_out, rsy_volume **lab_out, int threads)
{
    uint8_t *truth = malloc(32 * 32 * 32);
    rsy_volume *img = three_class_image(11, truth), *lab = NULL;
    rsy_texture_fitted *m = NULL;
    if (!img || rsy_volume_create(&lab, &img->geom, RSY_DTYPE_UINT8) != RSY_OK)
        goto done;
    static const uint8_t values[4] = {0, 2, 5, 9};
    for (size_t i = 0; i < 32 * 32 * 32; i++)
        ((uint8_t *)lab->data)[i] = values[truth[i]];
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    p.patch_size = 3;
    p.n_components = 2;
    p.max_patches = 2000;
    p.seed = 42;
    p.n_threads = threads;
    if (rsy_texture_fit(&m, img, lab, 0, &p) != RSY_OK)
        m = NULL;
done:
    free(truth);
    if (img_out && lab_out) {
        *img_out = img;
        *lab_out = lab;
    } else {
        rsy_volume_destroy(img);
        rsy_volume_destroy(lab);
    }
    return m;
}

static void assert_models_equal(const rsy_texture_fitted *a, const rsy_texture_fitted *b)
{
    assert_int_equal(a->patch_size, b->patch_size);
    assert_int_equal(a->n_classes, b->n_classes);
    assert_memory_equal(a->spacing_mm, b->spacing_mm, sizeof a->spacing_mm);
    assert_string_equal(a->source_file, b->source_file);
    assert_string_equal(a->source_sha256, b->source_sha256);
    assert_string_equal(a->labels_file, b->labels_file);
    assert_string_equal(a->labels_sha256, b->labels_sha256);
    assert_string_equal(a->version, b->version);
    assert_int_equal(a->auto_classes, b->auto_classes);
    assert_int_equal(a->fit.n_components, b->fit.n_components);
    assert_true(a->fit.tolerance == b->fit.tolerance && a->fit.cov_floor == b->fit.cov_floor);
    assert_true(a->fit.max_patches == b->fit.max_patches && a->fit.seed == b->fit.seed);
    const size_t d = (size_t)a->dim;
    for (int c = 0; c < a->n_classes; c++) {
        const rsy__texture_fitted_class *x = &a->classes[c], *y = &b->classes[c];
        assert_string_equal(x->name, y->name);
        assert_true(x->label == y->label && x->n_patches == y->n_patches);
        assert_true(x->intensity_mean == y->intensity_mean && x->intensity_sd == y->intensity_sd);
        assert_true(x->log_likelihood == y->log_likelihood);
        assert_int_equal(x->n_iterations, y->n_iterations);
        assert_int_equal(x->n_components, y->n_components);
        size_t k = (size_t)x->n_components;
        assert_memory_equal(x->weights, y->weights, k * sizeof *x->weights);
        assert_memory_equal(x->means, y->means, k * d * sizeof *x->means);
        assert_memory_equal(x->covs, y->covs, k * d * d * sizeof *x->covs);
    }
}

static char *read_file(const char *path, size_t *len)
{
    char *buf = NULL;
    if (rsy_file_read_all(path, (size_t)1 << 30, &buf, len) != RSY_OK)
        return NULL;
    return buf;
}

static void test_hdf5_round_trip(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("texfit");
    assert_non_null(dir);
    char img_path[1024], lab_path[1024], a[1024], b[1024], cmd[4096];
    snprintf(img_path, sizeof img_path, "%s/img.nii.gz", dir);
    snprintf(lab_path, sizeof lab_path, "%s/lab.nii.gz", dir);
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    rsy_volume *img = NULL, *lab = NULL;
    rsy_texture_fitted *m = small_model(&img, &lab, 1);
    assert_non_null(m);
    assert_int_equal(rsy_texture_fitted_n_classes(m), 3);
    rsy_texture_class_info info;
    assert_int_equal(rsy_texture_fitted_class_info(m, 1, &info), RSY_OK);
    assert_string_equal(info.name, "5");
    assert_true(info.label == 5 && fabs(info.intensity_mean - 60.0) < 0.5);
    assert_int_equal(rsy_volume_write_nifti(img, img_path, RSY_NIFTI_IMAGE), RSY_OK);
    assert_int_equal(rsy_volume_write_nifti(lab, lab_path, RSY_NIFTI_LABEL), RSY_OK);
    assert_int_equal(rsy_texture_fitted_set_source(m, img_path, lab_path), RSY_OK);
    assert_string_equal(m->source_file, "img.nii.gz");

    /* Two threads give the same model. */
    rsy_texture_fitted *m2 = small_model(NULL, NULL, 2);
    assert_non_null(m2);
    assert_int_equal(rsy_texture_fitted_set_source(m2, img_path, lab_path), RSY_OK);
    assert_models_equal(m, m2);
    rsy_texture_fitted_destroy(m2);

    /* Write, read back: every number equal; rewrite: byte-identical. */
    assert_int_equal(rsy_texture_fitted_write(m, a), RSY_OK);
    rsy_texture_fitted *back = NULL;
    assert_int_equal(rsy_texture_fitted_read(&back, a), RSY_OK);
    assert_models_equal(m, back);
    assert_int_equal(rsy_texture_fitted_write(back, b), RSY_OK);
    size_t la = 0, lb = 0;
    char *ba = read_file(a, &la), *bb = read_file(b, &lb);
    assert_non_null(ba);
    assert_non_null(bb);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    free(bb);
    rsy_texture_prior *prior = NULL;
    assert_int_equal(rsy_texture_fitted_to_prior(back, &prior), RSY_OK);
    assert_int_equal(rsy_texture_prior_n_classes(prior), 3);
    assert_int_equal(rsy_texture_prior_n_components(prior, 2), 2);
    rsy_texture_prior_destroy(prior);
    rsy_texture_fitted_destroy(back);

    /* h5py reads it as a user would; no dataset has the image's shape or as many values as
     * the image has voxels (the model holds no voxel). */
    snprintf(cmd, sizeof cmd,
             PYTHON " -c \"import h5py, sys\n"
                    "f = h5py.File('%s', 'r')\n"
                    "assert f.attrs['format'] == b'raresynth-texture-model', f.attrs['format']\n"
                    "assert int(f.attrs['version']) == 1 and int(f.attrs['patch_size']) == 3\n"
                    "assert sorted(f['classes']) == ['2', '5', '9']\n"
                    "g = f['classes/5']\n"
                    "assert g['weights'].shape == (2,) and g['means'].shape == (2, 27)\n"
                    "assert g['covariances'].shape == (2, 27, 27)\n"
                    "assert abs(g['weights'][()].sum() - 1) < 1e-12\n"
                    "shapes = []\n"
                    "f.visititems(lambda n, o: shapes.append(o.shape) if isinstance(o, "
                    "h5py.Dataset) else None)\n"
                    "assert len(shapes) == 9\n"
                    "assert all(s != (32, 32, 32) and s[::-1] != (32, 32, 32) for s in shapes)\n"
                    "assert all(int(__import__('numpy').prod(s)) < 32 ** 3 for s in shapes)\n"
                    "\" 2>&1",
             a);
    assert_int_equal(system(cmd), 0);

    /* Corrupt files: EFORMAT with one logged line each. */
    char c[1024];
    snprintf(c, sizeof c, "%s/corrupt.h5", dir);
    assert_int_equal(rsy_file_write_atomic(c, ba, la / 2), RSY_OK); /* truncated */
    assert_int_equal(rsy_texture_fitted_read(&back, c), RSY_EFORMAT);
    assert_null(back);
    assert_non_null(strstr(tu_last_error(), "corrupt.h5"));
    assert_int_equal(rsy_file_write_atomic(c, "not hdf5 at all\n", 16), RSY_OK);
    assert_int_equal(rsy_texture_fitted_read(&back, c), RSY_EFORMAT);
    free(ba);
    snprintf(c, sizeof c, "%s/missing.h5", dir);
    assert_int_equal(rsy_texture_fitted_read(&back, c), RSY_EIO);

    /* A missing dataset, then a dataset of the wrong shape, then a wrong format string. */
    hid_t f = H5Fopen(a, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, "/classes/9/means", H5P_DEFAULT) >= 0);
    assert_true(H5Fclose(f) >= 0);
    assert_int_equal(rsy_texture_fitted_read(&back, a), RSY_EFORMAT);
    assert_non_null(strstr(tu_last_error(), "/classes/9"));
    assert_non_null(strstr(tu_last_error(), "means"));
    f = H5Fopen(a, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t dims[2] = {2, 26};
    double zeros[52] = {0};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(f, "/classes/9/means", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
    assert_true(H5Fclose(f) >= 0);
    assert_int_equal(rsy_texture_fitted_read(&back, a), RSY_EFORMAT);
    assert_non_null(strstr(tu_last_error(), "wrong shape"));
    f = H5Fopen(b, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Adelete(f, "version") >= 0);
    assert_true(H5Fclose(f) >= 0);
    assert_int_equal(rsy_texture_fitted_read(&back, b), RSY_EFORMAT);
    assert_non_null(strstr(tu_last_error(), "version"));

    rsy_texture_fitted_destroy(m);
    rsy_volume_destroy(img);
    rsy_volume_destroy(lab);
    tu_rmtree(dir);
    free(dir);
}

static void test_fit_errors(void **state)
{
    (void)state;
    rsy_volume *img = three_class_image(1, NULL);
    assert_non_null(img);
    rsy_texture_fitted *m = NULL;
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    assert_int_equal(rsy_texture_fit(&m, img, NULL, 0, &p), RSY_EINVAL); /* no class source */
    assert_int_equal(rsy_texture_fit(&m, img, img, 3, &p), RSY_EINVAL);  /* both */
    p.patch_size = 4;
    assert_int_equal(rsy_texture_fit(&m, img, NULL, 3, &p), RSY_EINVAL);
    p = rsy_texture_fit_params_default();
    p.cov_floor = -1.0;
    assert_int_equal(rsy_texture_fit(&m, img, NULL, 3, &p), RSY_EINVAL);
    /* Memory bound: 2^26 doubles of patches, 92056 patches at p = 9. */
    p = rsy_texture_fit_params_default();
    p.patch_size = 9;
    p.max_patches = 92057;
    assert_int_equal(rsy_texture_fit(&m, img, NULL, 3, &p), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "exceeds the bound"));
    assert_null(m);

    /* A class with very few patches: label 2 on a 6³ cube in a labelled 28³ block of label 1.
     * Patches lie wholly in their class, so at p = 3 the cube has 4³ = 64 patch centres: with
     * K = 2 at most one component keeps the 54 = 2·27 effective samples (the smaller is
     * dropped, the other holds all 64); a 5³ cube (27 centres) cannot keep one. */
    rsy_volume *lab = NULL;
    assert_int_equal(rsy_volume_create(&lab, &img->geom, RSY_DTYPE_UINT8), RSY_OK);
    uint8_t *l = lab->data;
    for (int edge = 6; edge >= 5; edge--) {
        for (int k = 0; k < 32; k++)
            for (int j = 0; j < 32; j++)
                for (int i = 0; i < 32; i++) {
                    int in = i >= 2 && i < 30 && j >= 2 && j < 30 && k >= 2 && k < 30;
                    int cube = i >= 14 && i < 14 + edge && j >= 14 && j < 14 + edge && k >= 14 &&
                               k < 14 + edge;
                    l[i + 32 * (j + 32 * k)] = (uint8_t)(cube ? 2 : in ? 1 : 0);
                }
        p = rsy_texture_fit_params_default();
        p.patch_size = 3;
        p.n_components = 2;
        p.max_patches = 2000;
        if (edge == 6) {
            assert_int_equal(rsy_texture_fit(&m, img, lab, 0, &p), RSY_OK);
            rsy_texture_class_info info;
            assert_int_equal(rsy_texture_fitted_class_info(m, 1, &info), RSY_OK);
            assert_true(info.n_patches == 64);
            assert_int_equal(info.n_components, 1);
            double wk;
            assert_int_equal(rsy_texture_fitted_component(m, 1, 0, &wk, NULL, NULL), RSY_OK);
            assert_true(wk == 1.0);
            rsy_texture_fitted_destroy(m);
            m = NULL;
        } else {
            assert_int_equal(rsy_texture_fit(&m, img, lab, 0, &p), RSY_ENUMERIC);
            assert_null(m);
            assert_non_null(strstr(tu_last_error(), "class '2'"));
        }
    }
    rsy_volume_destroy(lab);
    rsy_volume_destroy(img);
}

/* Mean, variance and lag-1 autocorrelation (averaged over the three axes) of the values
 * @p u (dims @p n) at the voxels where @p sel is non-zero; a lag-1 pair is a selected voxel and
 * its +1 neighbour along an axis (inside the volume and selected too when @p pair_sel). */
typedef struct field_stats {
    double mean, var, rho1;
    size_t n;
} field_stats;

static field_stats stats_of(const double *u, const uint8_t *sel, const int64_t n[3])
{
    field_stats st = {0.0, 0.0, 0.0, 0};
    const size_t nvox = (size_t)(n[0] * n[1] * n[2]);
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < nvox; i++)
        if (sel[i]) {
            s += u[i];
            st.n++;
        }
    st.mean = s / (double)st.n;
    for (size_t i = 0; i < nvox; i++)
        if (sel[i])
            ss += (u[i] - st.mean) * (u[i] - st.mean);
    st.var = ss / (double)st.n;
    const int64_t stride[3] = {1, n[0], n[0] * n[1]};
    for (int ax = 0; ax < 3; ax++) {
        double cov = 0.0;
        size_t pairs = 0;
        for (int64_t k = 0; k < n[2]; k++)
            for (int64_t j = 0; j < n[1]; j++)
                for (int64_t i = 0; i < n[0]; i++) {
                    int64_t c[3] = {i, j, k};
                    if (c[ax] + 1 >= n[ax])
                        continue;
                    size_t v = (size_t)(i + n[0] * (j + n[1] * k)), w = v + (size_t)stride[ax];
                    if (!sel[v] || !sel[w])
                        continue;
                    cov += (u[v] - st.mean) * (u[w] - st.mean);
                    pairs++;
                }
        st.rho1 += cov / (double)pairs / st.var / 3.0;
    }
    return st;
}

/* Voxel @p i of @p v as a double. */
static double voxel(const rsy_volume *v, size_t i)
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

/* Fit on the real Colin27 T1 (Holmes et al. 1998, via Debian mricron-data), then compare, per
 * class, a field sampled from the model with the DATA's normalised texture. */
static void test_colin27_fit_and_sample(void **state)
{
    (void)state;
    FILE *probe = fopen(COLIN27, "rb");
    if (!probe) {
        printf("SKIP colin27: %s not found (install Debian mricron-data, listed in deps.txt)\n",
               COLIN27);
        skip();
    }
    fclose(probe);
    rsy_volume *img = NULL;
    assert_int_equal(rsy_volume_read_nifti(&img, NULL, COLIN27), RSY_OK);
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    p.patch_size = 5;
    p.n_components = 2;
    p.max_patches = 3000;
    p.seed = 2024;
    const int h = p.patch_size / 2;
    rsy_texture_fitted *m = NULL;
    assert_int_equal(rsy_texture_fit(&m, img, NULL, 3, &p), RSY_OK);
    assert_int_equal(rsy_texture_fitted_n_classes(m), 3);

    /* The data: the same intensity classes the fit used, u normalised per voxel by its own
     * class, and per class the interior voxels (whole p³ neighbourhood in the class), where u
     * is texture and not a class boundary. */
    const int64_t *dims = img->geom.dims;
    const size_t nvox = rsy_geometry_nvox(&img->geom);
    uint16_t *cls = malloc(nvox * sizeof *cls);
    double *u = malloc(nvox * sizeof *u);
    uint8_t *sel = malloc(nvox);
    assert_non_null(cls);
    assert_non_null(u);
    assert_non_null(sel);
    double cmeans[3], cm[4] = {0, 0, 0, 0}, csd[4] = {1, 1, 1, 1};
    assert_int_equal(
        rsy__texture_intensity_classes(img, 3, p.max_iterations, p.tolerance, cls, cmeans), RSY_OK);
    double prev = -INFINITY;
    for (int c = 0; c < 3; c++) {
        rsy_texture_class_info info;
        assert_int_equal(rsy_texture_fitted_class_info(m, c, &info), RSY_OK);
        assert_true(info.intensity_mean > prev); /* CSF < GM < WM on T1 */
        prev = info.intensity_mean;
        assert_true(info.n_patches == 3000);
        cm[c + 1] = info.intensity_mean;
        csd[c + 1] = info.intensity_sd;
    }
    for (size_t i = 0; i < nvox; i++)
        u[i] = (voxel(img, i) - cm[cls[i]]) / csd[cls[i]];

    rsy_texture_prior *prior = NULL;
    rsy_patch_denoiser *dn = NULL;
    assert_int_equal(rsy_texture_fitted_to_prior(m, &prior), RSY_OK);
    rsy_patch_denoiser_params dp = rsy_patch_denoiser_params_default();
    assert_int_equal(rsy_patch_denoiser_create(&dn, prior, &dp), RSY_OK);
    rsy_denoiser iface = rsy_patch_denoiser_interface(dn);
    rsy_texture_sample_params sp = rsy_texture_sample_params_default();
    const int64_t sdims[3] = {32, 32, 32};
    rsy_geometry g;
    assert_int_equal(rsy_geometry_init(&g, sdims, img->geom.spacing_mm), RSY_OK);
    const size_t ns = rsy_geometry_nvox(&g);
    double *su = malloc(ns * sizeof *su);
    uint8_t *all = malloc(ns);
    assert_non_null(su);
    assert_non_null(all);
    memset(all, 1, ns);
    for (int c = 0; c < 3; c++) {
        for (int64_t k = 0; k < dims[2]; k++)
            for (int64_t j = 0; j < dims[1]; j++)
                for (int64_t i = 0; i < dims[0]; i++) {
                    size_t v = (size_t)(i + dims[0] * (j + dims[1] * k));
                    int in = i >= h && j >= h && k >= h && i + h < dims[0] && j + h < dims[1] &&
                             k + h < dims[2];
                    for (int e = -h; e <= h && in; e++)
                        for (int b = -h; b <= h && in; b++)
                            for (int a = -h; a <= h && in; a++)
                                in =
                                    cls[(size_t)((i + a) +
                                                 dims[0] * ((j + b) + dims[1] * (k + e)))] == c + 1;
                    sel[v] = (uint8_t)in;
                }
        field_stats data = stats_of(u, sel, dims);

        rsy_volume *map = NULL, *f = NULL;
        rsy_rng *r = NULL;
        assert_int_equal(rsy_volume_create(&map, &g, RSY_DTYPE_UINT8), RSY_OK);
        memset(map->data, c, rsy_volume_nbytes(map));
        assert_int_equal(rsy_rng_create(&r, 100 + (uint64_t)c), RSY_OK);
        assert_int_equal(rsy_texture_sample(&iface, map, &sp, r, &f, NULL), RSY_OK);
        for (size_t i = 0; i < ns; i++)
            su[i] = ((const float *)f->data)[i];
        field_stats smp = stats_of(su, all, sdims);
        printf("colin27 class %d: data (%zu interior voxels) mean %.3f variance %.3f rho1 %.3f; "
               "sampled mean %.3f variance %.3f rho1 %.3f\n",
               c + 1, data.n, data.mean, data.var, data.rho1, smp.mean, smp.var, smp.rho1);
        assert_true(data.n > 1000);
        /* Tolerances (p = 5, K = 2, Heun 18 steps, default stride, one 32³ field per class,
         * fixed seeds; measured: mean differences 0.04 / 0.01 / 0.05, variance ratios
         * 1.29 / 0.98 / 0.65, lag-1 differences 0.03 / 0.07 / 0.15 for CSF / GM / WM):
         * - mean within 0.15 of the data's: one correlated 32³ field has a standard error of
         *   about 0.05, and the model is fitted on patches whose outer voxels are nearer the
         *   class boundary than the centres the data side averages.
         * - variance between 0.5 and 1.6 times the data's. A field drawn from a two-component
         *   mixture switches component from cell to cell, which adds the spread of the
         *   component means (CSF: 1.29); white matter's texture reaches beyond the patch (its
         *   lag-1 correlation 0.90 is a squared-exponential length of 2.1 voxels, and part of
         *   its variance is slow variation across the whole structure that a 5³ patch sees
         *   only as an offset), and what lies beyond the reach of a 5-voxel patch
         *   (docs/texture.md, "Reach of a patch prior") is lost (0.65).
         * - lag-1 autocorrelation within 0.2 of the data's: the same reach limit shortens
         *   white matter's (0.75 against 0.90); within the reach the sampler keeps lengths to
         *   within 10% (tests/test_texture.c). */
        assert_true(fabs(smp.mean - data.mean) < 0.15);
        assert_true(smp.var > 0.5 * data.var && smp.var < 1.6 * data.var);
        assert_true(fabs(smp.rho1 - data.rho1) < 0.2);
        rsy_volume_destroy(f);
        rsy_volume_destroy(map);
        rsy_rng_destroy(r);
    }
    free(all);
    free(su);
    free(sel);
    free(u);
    free(cls);
    rsy_patch_denoiser_destroy(dn);
    rsy_texture_prior_destroy(prior);
    rsy_texture_fitted_destroy(m);
    rsy_volume_destroy(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_em_recovers_mixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_em_monotone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_em_min_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kmeanspp_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hdf5_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fit_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_colin27_fit_and_sample, setup, teardown),
    };
    return cmocka_run_group_tests_name("texture_fit", tests, NULL, NULL);
}
