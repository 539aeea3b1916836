/*
 * test_ct.c: the CT imaging model (generator/ct_*.c; docs/ct.md). Slices are at most 256²,
 * seeds are fixed, and each tolerance is stated beside its assertion.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include "ct_internal.h"
#include "rsy_core.h"
#include "rsy_generator.h"

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */
static float *xalloc(size_t n)
{
    float *p = calloc(n, sizeof(float));
    assert_non_null(p);
    return p;
}

/* HU slice of a water disc of radius @p radius_mm in air (pixel centres inside read 0 HU). */
static float *water_disc(int64_t n, double pixel_mm, double radius_mm)
{
    float *hu = xalloc((size_t)(n * n));
    const double c = 0.5 * (double)(n - 1);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < n; i++) {
            const double x = ((double)i - c) * pixel_mm, y = ((double)j - c) * pixel_mm;
            hu[j * n + i] = x * x + y * y <= radius_mm * radius_mm ? 0.0f : -1000.0f;
        }
    return hu;
}

/* Mean and population SD of @p img over pixels at radius in [r0, r1) pixels from the centre. */
static void ring_stats(const float *img, int64_t n, double r0, double r1, double *mean, double *sd)
{
    const double c = 0.5 * (double)(n - 1);
    double s = 0.0, s2 = 0.0;
    size_t cnt = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < n; i++) {
            const double r = hypot((double)i - c, (double)j - c);
            if (r >= r0 && r < r1) {
                s += img[j * n + i];
                s2 += (double)img[j * n + i] * img[j * n + i];
                cnt++;
            }
        }
    assert_true(cnt > 10);
    *mean = s / (double)cnt;
    *sd = sqrt(s2 / (double)cnt - *mean * *mean);
}

/* Noise variance of the projection model in a ring: pooled over @p reps realisations
 * (seeds seed, seed+1, ...), about the noise-free mean (0 HU in water). */
static double sim_ring_var(const rsy_ct_fbp *r, const float *hu, int64_t n, double dose,
                           uint64_t seed, int reps, double r0, double r1)
{
    float *out = xalloc((size_t)(n * n));
    double v = 0.0;
    for (int k = 0; k < reps; k++) {
        rsy_rng *rng = NULL;
        assert_int_equal(rsy_rng_create(&rng, seed + (uint64_t)k), RSY_OK);
        assert_int_equal(rsy_ct_simulate_slice(r, hu, dose, rng, out), RSY_OK);
        rsy_rng_destroy(rng);
        double m, sd;
        ring_stats(out, n, r0, r1, &m, &sd);
        v += sd * sd;
    }
    free(out);
    return v / reps;
}

/* ---------------------------------------------------------------------------------------- */
/* The 2-D Shepp–Logan phantom, Kak & Slaney 1988 Table 3.1 (the z = 0 plane of the         */
/* Kak–Slaney densities of domain.md section 5.1 [S107]): centre, semi-axis along the        */
/* rotated x' and y' axes, rotation of x' from x in degrees, additive density (relative to  */
/* water).                                                                                    */
/* ---------------------------------------------------------------------------------------- */
static const double kak_slaney[10][6] = {
    {0.0, 0.0, 0.92, 0.69, 90.0, 2.0},      {0.0, -0.0184, 0.874, 0.6624, 90.0, -0.98},
    {0.22, 0.0, 0.31, 0.11, 72.0, -0.02},   {-0.22, 0.0, 0.41, 0.16, 108.0, -0.02},
    {0.0, 0.35, 0.25, 0.21, 90.0, 0.01},    {0.0, 0.1, 0.046, 0.046, 0.0, 0.01},
    {0.0, -0.1, 0.046, 0.046, 0.0, 0.01},   {-0.08, -0.605, 0.046, 0.023, 0.0, 0.01},
    {0.0, -0.606, 0.023, 0.023, 0.0, 0.01}, {0.06, -0.605, 0.046, 0.023, 90.0, 0.01},
};

/* Density at (x, y) in normalised coordinates. */
static double sl_density(double x, double y)
{
    double d = 0.0;
    for (int e = 0; e < 10; e++) {
        const double *p = kak_slaney[e];
        const double al = p[4] * M_PI / 180.0;
        const double dx = x - p[0], dy = y - p[1];
        const double xr = dx * cos(al) + dy * sin(al), yr = -dx * sin(al) + dy * cos(al);
        if ((xr / p[2]) * (xr / p[2]) + (yr / p[3]) * (yr / p[3]) <= 1.0)
            d += p[5];
    }
    return d;
}

/* Exact line integral of the phantom (density·mm) at angle th and offset t_mm, the phantom
 * scaled by half_mm: an ellipse gives 2ρAB√(s² − t'²)/s², s² = A²cos²(θ−α) + B²sin²(θ−α)
 * (Kak & Slaney eq. 3.5 with a rotated, shifted ellipse). */
static double sl_projection(double th, double t_mm, double half_mm)
{
    double sum = 0.0;
    for (int e = 0; e < 10; e++) {
        const double *p = kak_slaney[e];
        const double al = p[4] * M_PI / 180.0;
        const double a = p[2] * half_mm, b = p[3] * half_mm;
        const double s2 = a * a * cos(th - al) * cos(th - al) + b * b * sin(th - al) * sin(th - al);
        const double tp = t_mm - half_mm * (p[0] * cos(th) + p[1] * sin(th));
        if (tp * tp < s2)
            sum += 2.0 * p[5] * a * b * sqrt(s2 - tp * tp) / s2;
    }
    return sum;
}

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                      */
/* ---------------------------------------------------------------------------------------- */
static void test_params_and_errors(void **state)
{
    (void)state;
    rsy_ct_params d = rsy_ct_params_default();
    assert_int_equal(d.kernel, RSY_CT_KERNEL_RAMLAK);
    assert_true(d.i0_photons == 1e5 && d.electronic_noise_sd == 10.0);
    assert_true(fabs(d.mu_water_per_mm - 0.01879) < 1e-12);

    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, 512, 512, 0.7, NULL), RSY_OK);
    rsy_ct_params got = rsy_ct_fbp_params(r);
    /* Kak–Slaney sampling of a 512² slice: 725 bins, 1139 = ⌈(π/2)·725⌉ views. */
    assert_int_equal(got.n_det, 725);
    assert_int_equal(got.n_views, 1139);
    assert_true(got.det_spacing_mm == 0.7);
    rsy_ct_fbp_destroy(r);
    rsy_ct_fbp_destroy(NULL);

    r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, 4, 64, 1.0, NULL), RSY_EINVAL);
    assert_null(r);
    assert_int_equal(rsy_ct_fbp_create(&r, 64, 64, 0.0, NULL), RSY_EINVAL);
    rsy_ct_params p = rsy_ct_params_default();
    p.n_det = 80; /* narrower than the 64² slice's diagonal of 90.5 pixels */
    assert_int_equal(rsy_ct_fbp_create(&r, 64, 64, 1.0, &p), RSY_EINVAL);
    p = rsy_ct_params_default();
    p.i0_photons = -1.0;
    assert_int_equal(rsy_ct_fbp_create(&r, 64, 64, 1.0, &p), RSY_EINVAL);
    p = rsy_ct_params_default();
    p.kernel = (rsy_ct_kernel)7;
    assert_int_equal(rsy_ct_fbp_create(&r, 64, 64, 1.0, &p), RSY_EINVAL);
    assert_null(r);
    assert_int_equal(rsy_ct_fbp_create(NULL, 64, 64, 1.0, NULL), RSY_EINVAL);

    assert_int_equal(rsy_ct_fbp_create(&r, 32, 32, 1.0, NULL), RSY_OK);
    float img[32 * 32] = {0};
    rsy_rng *rng = NULL;
    assert_int_equal(rsy_rng_create(&rng, 1), RSY_OK);
    assert_int_equal(rsy_ct_simulate_slice(r, img, 0.0, rng, img), RSY_EINVAL);
    assert_int_equal(rsy_ct_noise_fast(r, img, NAN, rng, img), RSY_EINVAL);
    assert_int_equal(rsy_ct_forward(r, NULL, img), RSY_EINVAL);
    assert_int_equal(rsy_ct_reconstruct(NULL, img, img), RSY_EINVAL);
    rsy_rng_destroy(rng);
    rsy_ct_fbp_destroy(r);
    assert_true(rsy_ct_mu_from_hu(-1000.0, 0.02) == 0.0);
    assert_true(fabs(rsy_ct_mu_from_hu(1000.0, 0.02) - 0.04) < 1e-15);
}

/* The exact discrete ramp has a small positive DC gain (2/π²)·Σ_{odd n >= M/2} 1/n², whereas a
 * sampled |ω| has exactly zero (domain.md 1.4 [S33]); the response must equal the closed form
 * to rounding (1e-9 relative). */
static void test_ramp_dc_gain(void **state)
{
    (void)state;
    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, 64, 64, 1.0, NULL), RSY_OK);
    size_t nf = 0;
    const double *resp = rsy__ct_filter_response(r, &nf);
    const int m = r->fft_len;
    assert_true(m >= 2 * r->n_det);
    assert_int_equal(nf, (size_t)m / 2 + 1);
    double dc = 0.25;
    for (int n = 1; n <= m / 2; n += 2) /* tap m/2, when odd, is its own mirror: once */
        dc -= (n == m / 2 ? 1.0 : 2.0) / (M_PI * M_PI * (double)n * (double)n);
    const double scale = M_PI / r->n_views / r->p.det_spacing_mm / m;
    assert_true(dc > 0.0);
    assert_true(resp[0] > 0.0);
    assert_true(fabs(resp[0] / scale - dc) < 1e-9 * dc + 1e-15);
    /* At the Nyquist frequency the exact ramp reaches 1/4 + 2·Σ_odd 1/(πn)² ≈ 1/2 (within
     * the truncated tail, 1%). */
    assert_true(fabs(resp[nf - 1] / scale - 0.5) < 0.005);
    rsy_ct_fbp_destroy(r);
}

/* FBP of the noise-free 2-D Shepp–Logan phantom at 256² (1 mm pixels, phantom half-size
 * 120 mm, μ = density·μ_water). Inside the head, away from edges (pixels whose 2.5-pixel
 * neighbourhood is uniform), the relative RMS error (RMS of μ error over RMS of μ) is below
 * 1% for exact analytic projections (measured 0.23%) and below 2% through the Joseph
 * projector of the pixelised phantom (measured 1.03%: the skull's binary edges alias into
 * faint streaks). Issue bound: 5%. In absolute terms (RMS μ error over μ_water, in HU):
 * below 3 HU analytic (measured 2.4) and 12 HU through Joseph (measured 10.5; the 3 HU bound
 * does not hold there, the streaks of the skull's pixel edges dominate). */
static void test_shepp_logan(void **state)
{
    (void)state;
    const int64_t n = 256;
    const double px = 1.0, half = 120.0;
    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, n, n, px, NULL), RSY_OK);
    const double mu_w = r->p.mu_water_per_mm;
    const size_t ns = (size_t)r->n_views * (size_t)r->n_det;
    float *sino = xalloc(ns), *rec = xalloc((size_t)(n * n)), *truth = xalloc((size_t)(n * n));
    float *mask = xalloc((size_t)(n * n));
    const double c = 0.5 * (double)(n - 1);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < n; i++) {
            const double x = ((double)i - c) * px / half, y = ((double)j - c) * px / half;
            const double d = sl_density(x, y);
            truth[j * n + i] = (float)(d * mu_w);
            int uniform = d > 0.5; /* inside the skull's inner ellipse (density ~1.0) */
            for (int a = 0; a < 8 && uniform; a++) {
                const double o = 2.5 * px / half;
                uniform = sl_density(x + o * cos(a * M_PI / 4), y + o * sin(a * M_PI / 4)) == d;
            }
            mask[j * n + i] = (float)uniform;
        }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            for (int v = 0; v < r->n_views; v++)
                for (int b = 0; b < r->n_det; b++)
                    sino[(size_t)v * (size_t)r->n_det + (size_t)b] =
                        (float)(mu_w * sl_projection(
                                           M_PI * v / r->n_views,
                                           (b - 0.5 * (r->n_det - 1)) * r->p.det_spacing_mm, half));
        } else {
            assert_int_equal(rsy_ct_forward(r, truth, sino), RSY_OK);
        }
        assert_int_equal(rsy_ct_reconstruct(r, sino, rec), RSY_OK);
        double se = 0.0, st = 0.0;
        size_t cnt = 0;
        for (size_t k = 0; k < (size_t)(n * n); k++) {
            if (mask[k] == 0.0f)
                continue;
            const double mu = mu_w * (1.0 + rec[k] / 1000.0);
            se += (mu - truth[k]) * (mu - truth[k]);
            st += (double)truth[k] * truth[k];
            cnt++;
        }
        assert_true(cnt > 20000);
        const double rel = sqrt(se / st);
        const double rms_hu = 1000.0 * sqrt(se / (double)cnt) / mu_w;
        print_message("Shepp-Logan %s: relative RMS error %.4f%%, %.2f HU, over %zu pixels\n",
                      pass == 0 ? "analytic" : "Joseph", 100.0 * rel, rms_hu, cnt);
        assert_true(rel < (pass == 0 ? 0.01 : 0.02));
        assert_true(rms_hu < (pass == 0 ? 3.0 : 12.0));
    }
    free(mask);
    free(truth);
    free(rec);
    free(sino);
    rsy_ct_fbp_destroy(r);
}

/* A uniform water cylinder (radius 100 mm, 256² slice of 1 mm pixels) reconstructs to
 * 0 ± 2 HU in its centre (mean of the central 21-pixel disc), noise off (issue 4). */
static void test_water_cylinder_noise_free(void **state)
{
    (void)state;
    const int64_t n = 256;
    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, n, n, 1.0, NULL), RSY_OK);
    float *hu = water_disc(n, 1.0, 100.0);
    float *mu = xalloc((size_t)(n * n));
    float *sino = xalloc((size_t)r->n_views * (size_t)r->n_det);
    for (size_t k = 0; k < (size_t)(n * n); k++)
        mu[k] = (float)rsy_ct_mu_from_hu(hu[k], r->p.mu_water_per_mm);
    assert_int_equal(rsy_ct_forward(r, mu, sino), RSY_OK);
    assert_int_equal(rsy_ct_reconstruct(r, sino, hu), RSY_OK);
    double m, sd;
    ring_stats(hu, n, 0.0, 10.5, &m, &sd);
    print_message("water cylinder centre: %.3f HU (SD %.3f)\n", m, sd);
    assert_true(fabs(m) < 2.0);
    ring_stats(hu, n, 115.0, 125.0, &m, &sd); /* air outside: −1000 ± 5 HU (edge ripple) */
    assert_true(fabs(m + 1000.0) < 5.0);
    free(sino);
    free(mu);
    free(hu);
    rsy_ct_fbp_destroy(r);
}

/*
 * Dose: a water cylinder of 150 mm (128², 1.5 mm pixels), central disc of radius 25 pixels,
 * variance pooled over 3 realisations per dose. Quantum-limited noise gives SD(25%)/SD(100%)
 * = 2; electronic noise (10 counts against ~6000 and ~1500 photons through the centre) raises
 * it to 2.05. Bound 2.0 ± 0.15 (issue 4). Then the fast model against the projection model
 * at both doses: within 15% (issue 4).
 */
static void test_dose_and_fast_noise(void **state)
{
    (void)state;
    const int64_t n = 128;
    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, n, n, 1.5, NULL), RSY_OK);
    float *hu = water_disc(n, 1.5, 75.0);
    const double v100 = sim_ring_var(r, hu, n, 1.0, 100, 3, 0.0, 25.0);
    const double v25 = sim_ring_var(r, hu, n, 0.25, 200, 3, 0.0, 25.0);
    const double ratio = sqrt(v25 / v100);
    print_message("noise SD 100%%: %.2f HU, 25%%: %.2f HU, ratio %.3f\n", sqrt(v100), sqrt(v25),
                  ratio);
    assert_true(fabs(ratio - 2.0) <= 0.15);

    float *out = xalloc((size_t)(n * n));
    const double doses[2] = {1.0, 0.25};
    const double proj_sd[2] = {sqrt(v100), sqrt(v25)};
    for (int d = 0; d < 2; d++) {
        double vf = 0.0;
        for (int k = 0; k < 3; k++) {
            rsy_rng *rng = NULL;
            assert_int_equal(rsy_rng_create(&rng, 300 + (uint64_t)(10 * d + k)), RSY_OK);
            assert_int_equal(rsy_ct_noise_fast(r, hu, doses[d], rng, out), RSY_OK);
            rsy_rng_destroy(rng);
            double m, sd;
            ring_stats(out, n, 0.0, 25.0, &m, &sd);
            vf += sd * sd / 3.0;
        }
        const double rel = sqrt(vf) / proj_sd[d];
        print_message("dose %.2f: fast SD %.2f HU vs projection %.2f HU (ratio %.3f)\n", doses[d],
                      sqrt(vf), proj_sd[d], rel);
        assert_true(fabs(rel - 1.0) < 0.15);
    }
    free(out);
    free(hu);
    rsy_ct_fbp_destroy(r);
}

/*
 * Centre versus edge of a large cylinder. Physics: without a bowtie filter, a ray through the
 * centre of a round object crosses its full diameter in every view, while a ray through a
 * point near the edge is short in most views; the variance of −ln N grows as e^p, and FBP
 * sums the views' variances, so the noise is HIGHEST at the centre and falls toward the edge
 * (docs/ct.md). Issue 4's wording ("noise rises from centre to edge") does not hold for this
 * geometry; this test checks what the physics gives: a 180 mm cylinder (128², 1.5 mm), SD in
 * the central disc (r < 12 px) over SD in the ring 48-56 px above 1.15, and within 15% of the
 * predicted SD map (rsy__ct_noise_sd_map), 4 realisations.
 */
static void test_noise_centre_vs_edge(void **state)
{
    (void)state;
    const int64_t n = 128;
    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, n, n, 1.5, NULL), RSY_OK);
    float *hu = water_disc(n, 1.5, 90.0);
    const double vc = sim_ring_var(r, hu, n, 1.0, 400, 4, 0.0, 12.0);
    const double ve = sim_ring_var(r, hu, n, 1.0, 400, 4, 48.0, 56.0);
    float *sd = xalloc((size_t)(n * n));
    assert_int_equal(rsy__ct_noise_sd_map(r, hu, 1.0, sd), RSY_OK);
    double pc, pe, dummy;
    ring_stats(sd, n, 0.0, 12.0, &pc, &dummy);
    ring_stats(sd, n, 48.0, 56.0, &pe, &dummy);
    const double measured = sqrt(vc / ve), predicted = pc / pe;
    print_message("centre/edge SD: measured %.3f (%.2f / %.2f HU), predicted %.3f\n", measured,
                  sqrt(vc), sqrt(ve), predicted);
    assert_true(measured > 1.15);
    assert_true(fabs(measured / predicted - 1.0) < 0.15);
    free(sd);
    free(hu);
    rsy_ct_fbp_destroy(r);
}

/* HU slice (n², @p px mm pixels) of a soft-tissue ellipse (40 HU, semi-axes @p ax × @p ay mm)
 * in air, with two lung ellipses (−850 HU, semi-axes 50 × 80 mm at x = ±75 mm) if @p lungs. */
static float *body_ellipse(int64_t n, double px, double ax, double ay, int lungs)
{
    float *hu = xalloc((size_t)(n * n));
    const double c = 0.5 * (double)(n - 1);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < n; i++) {
            const double x = ((double)i - c) * px, y = ((double)j - c) * px;
            float v = -1000.0f;
            if ((x / ax) * (x / ax) + (y / ay) * (y / ay) <= 1.0)
                v = 40.0f;
            const double lx = fabs(x) - 75.0;
            if (lungs && (lx / 50.0) * (lx / 50.0) + (y / 80.0) * (y / 80.0) <= 1.0)
                v = -850.0f;
            hu[j * n + i] = v;
        }
    return hu;
}

/* Variance of @p img − @p ref over the discs of radius @p rad_mm at (±@p x_mm, 0) (one disc
 * when x_mm is 0), about its mean. */
static double roi_var(const float *img, const float *ref, int64_t n, double px, double x_mm,
                      double rad_mm)
{
    const double c = 0.5 * (double)(n - 1);
    double s = 0.0, s2 = 0.0;
    size_t cnt = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < n; i++) {
            const double x = ((double)i - c) * px, y = ((double)j - c) * px;
            if (hypot(fabs(x) - x_mm, y) >= rad_mm)
                continue;
            const double d = (double)img[j * n + i] - ref[j * n + i];
            s += d;
            s2 += d * d;
            cnt++;
        }
    assert_true(cnt > 20);
    const double m = s / (double)cnt;
    return s2 / (double)cnt - m * m;
}

/*
 * Elongated bodies: the fast model's SD map comes from the slice's own sinogram, so it follows
 * the long rays of a 340 × 240 mm ellipse and the lower attenuation through lungs. 128² at
 * 3 mm, Hann, I₀ 3e5, σ_e 10 (the ct-standard profile at a 1 mm slice times 3); doses 100% and
 * 25%; ROIs: a centre disc (r 15 mm) and two lateral discs (x = ±130 mm, r 12 mm, in soft
 * tissue), variance about the noise-free reconstruction, pooled over 6 realisations (standard
 * error of an SD about 3% at the centre, 2.5% lateral). Bound: fast/projection within 15%
 * (issue 4). Before the fix the ellipse gave 0.74 (centre) and 0.69 (lateral).
 */
static void test_fast_noise_elongated(void **state)
{
    (void)state;
    const int64_t n = 128;
    const double px = 3.0;
    rsy_ct_params p = rsy_ct_params_default();
    p.kernel = RSY_CT_KERNEL_HANN;
    p.i0_photons = 3e5;
    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, n, n, px, &p), RSY_OK);
    float *out = xalloc((size_t)(n * n)), *ref = xalloc((size_t)(n * n));
    float *mu = xalloc((size_t)(n * n));
    float *sino = xalloc((size_t)r->n_views * (size_t)r->n_det);
    const double doses[2] = {1.0, 0.25};
    const double roi_x[2] = {0.0, 130.0}, roi_r[2] = {15.0, 12.0};
    const int reps = 6;
    for (int lungs = 0; lungs < 2; lungs++) {
        float *hu = body_ellipse(n, px, 170.0, 120.0, lungs);
        for (size_t k = 0; k < (size_t)(n * n); k++)
            mu[k] = (float)rsy_ct_mu_from_hu(hu[k], p.mu_water_per_mm);
        assert_int_equal(rsy_ct_forward(r, mu, sino), RSY_OK);
        assert_int_equal(rsy_ct_reconstruct(r, sino, ref), RSY_OK);
        for (int d = 0; d < 2; d++) {
            double vp[2] = {0.0, 0.0}, vf[2] = {0.0, 0.0};
            for (int k = 0; k < reps; k++) {
                for (int fast = 0; fast < 2; fast++) {
                    rsy_rng *rng = NULL;
                    assert_int_equal(rsy_rng_create(&rng, 900 + (uint64_t)(100 * d + k)), RSY_OK);
                    if (fast)
                        assert_int_equal(rsy_ct_noise_fast(r, hu, doses[d], rng, out), RSY_OK);
                    else
                        assert_int_equal(rsy_ct_simulate_slice(r, hu, doses[d], rng, out), RSY_OK);
                    rsy_rng_destroy(rng);
                    for (int q = 0; q < 2; q++) {
                        const double v = roi_var(out, fast ? hu : ref, n, px, roi_x[q], roi_r[q]);
                        if (fast)
                            vf[q] += v / reps;
                        else
                            vp[q] += v / reps;
                    }
                }
            }
            for (int q = 0; q < 2; q++) {
                const double ratio = sqrt(vf[q] / vp[q]);
                print_message("%s, dose %.2f, %s: fast SD %.2f HU, projection %.2f HU (%.3f)\n",
                              lungs ? "ellipse+lungs" : "ellipse", doses[d],
                              q ? "lateral" : "centre", sqrt(vf[q]), sqrt(vp[q]), ratio);
                assert_true(fabs(ratio - 1.0) < 0.15);
            }
        }
        free(hu);
    }
    free(sino);
    free(mu);
    free(ref);
    free(out);
    rsy_ct_fbp_destroy(r);
}

/* Kernels on the same noisy data (same seed, so identical counts): the central SD orders
 * Ram-Lak > Shepp–Logan > Hann, each step by more than 5%. */
static void test_kernel_noise_order(void **state)
{
    (void)state;
    const int64_t n = 96;
    float *hu = water_disc(n, 1.5, 60.0);
    float *out = xalloc((size_t)(n * n));
    double sds[3];
    for (int k = 0; k < 3; k++) {
        rsy_ct_params p = rsy_ct_params_default();
        p.kernel = (rsy_ct_kernel)k;
        rsy_ct_fbp *r = NULL;
        assert_int_equal(rsy_ct_fbp_create(&r, n, n, 1.5, &p), RSY_OK);
        rsy_rng *rng = NULL;
        assert_int_equal(rsy_rng_create(&rng, 77), RSY_OK);
        assert_int_equal(rsy_ct_simulate_slice(r, hu, 0.25, rng, out), RSY_OK);
        rsy_rng_destroy(rng);
        double m;
        ring_stats(out, n, 0.0, 20.0, &m, &sds[k]);
        rsy_ct_fbp_destroy(r);
    }
    print_message("kernel SD: Ram-Lak %.2f, Shepp-Logan %.2f, Hann %.2f HU\n", sds[0], sds[1],
                  sds[2]);
    assert_true(sds[0] > 1.05 * sds[1]);
    assert_true(sds[1] > 1.05 * sds[2]);
    free(out);
    free(hu);
}

/* Same seed ⇒ identical bytes (projection model and fast model); another seed differs. */
static void test_determinism(void **state)
{
    (void)state;
    const int64_t n = 64;
    rsy_ct_fbp *r = NULL;
    assert_int_equal(rsy_ct_fbp_create(&r, n, n, 2.0, NULL), RSY_OK);
    float *hu = water_disc(n, 2.0, 50.0);
    float *a = xalloc((size_t)(n * n)), *b = xalloc((size_t)(n * n));
    for (int fast = 0; fast < 2; fast++) {
        for (int k = 0; k < 3; k++) {
            rsy_rng *rng = NULL;
            assert_int_equal(rsy_rng_create(&rng, k < 2 ? 5 : 6), RSY_OK);
            float *dst = k == 0 ? a : b;
            if (fast)
                assert_int_equal(rsy_ct_noise_fast(r, hu, 0.5, rng, dst), RSY_OK);
            else
                assert_int_equal(rsy_ct_simulate_slice(r, hu, 0.5, rng, dst), RSY_OK);
            rsy_rng_destroy(rng);
            if (k == 1)
                assert_memory_equal(a, b, sizeof(float) * (size_t)(n * n));
            if (k == 2)
                assert_memory_not_equal(a, b, sizeof(float) * (size_t)(n * n));
        }
    }
    /* In place (hu_out == hu) is allowed. */
    memcpy(b, hu, sizeof(float) * (size_t)(n * n));
    rsy_rng *rng = NULL;
    assert_int_equal(rsy_rng_create(&rng, 5), RSY_OK);
    assert_int_equal(rsy_ct_noise_fast(r, b, 0.5, rng, b), RSY_OK);
    rsy_rng_destroy(rng);
    assert_memory_equal(a, b, sizeof(float) * (size_t)(n * n));
    free(b);
    free(a);
    free(hu);
    rsy_ct_fbp_destroy(r);
}

/* Volume finishing: int16 HU, clamped to [−1024, 3071], rounded; the Gaussian slice profile
 * keeps a slab's integral along z (to 0.5 HU·slice per column, the rounding) and spreads it
 * to the neighbouring slices; bad arguments give RSY_EINVAL. */
static void test_volume_finish(void **state)
{
    (void)state;
    const int64_t dims[3] = {8, 8, 16};
    const double sp[3] = {1.0, 1.0, 1.0};
    rsy_geometry g;
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    rsy_volume *v = NULL, *o = NULL;
    assert_int_equal(rsy_volume_create(&v, &g, RSY_DTYPE_FLOAT32), RSY_OK);
    float *f = v->data;
    for (size_t k = 0; k < rsy_geometry_nvox(&g); k++)
        f[k] = -5000.0f; /* below air: clamps */
    f[0] = 5000.0f;      /* above the range: clamps */
    f[1] = 12.6f;        /* rounds to 13 */
    assert_int_equal(rsy_ct_volume_finish(v, 0.0, 0.0, &o), RSY_OK);
    const int16_t *s = o->data;
    assert_int_equal(o->dtype, RSY_DTYPE_INT16);
    assert_int_equal(s[0], 3071);
    assert_int_equal(s[1], 13);
    assert_int_equal(s[2], -1024);
    rsy_volume_destroy(o);

    for (size_t k = 0; k < rsy_geometry_nvox(&g); k++)
        f[k] = (k / 64 == 8) ? 1000.0f : 0.0f; /* one slab at z = 8 */
    /* A 2 mm slab on 1 mm spacing: taps 1/4, 1/2, 1/4 (exact, ±1 HU rounding); in-plane the
     * slab is uniform, so the PSF leaves it. A slab of one spacing changes nothing. */
    assert_int_equal(rsy_ct_volume_finish(v, 2.0, 1.0, &o), RSY_OK);
    s = o->data;
    double col = 0.0;
    for (int z = 0; z < 16; z++)
        col += s[z * 64 + 3 * 8 + 3];
    assert_true(fabs(col - 1000.0) <= 0.5 * 16);
    assert_true(abs(s[7 * 64 + 27] - 250) <= 1 && abs(s[8 * 64 + 27] - 500) <= 1 &&
                abs(s[9 * 64 + 27] - 250) <= 1 && s[6 * 64 + 27] == 0);
    rsy_volume_destroy(o);
    assert_int_equal(rsy_ct_volume_finish(v, 1.0, 0.0, &o), RSY_OK);
    s = o->data;
    assert_true(s[8 * 64 + 27] == 1000 && s[7 * 64 + 27] == 0);
    rsy_volume_destroy(o);
    o = NULL;
    assert_int_equal(rsy_ct_volume_finish(v, -1.0, 0.0, &o), RSY_EINVAL);
    assert_null(o);
    assert_int_equal(rsy_ct_volume_finish(NULL, 1.0, 0.0, &o), RSY_EINVAL);
    rsy_volume_destroy(v);
}

int main(void)
{
    tu_log_capture();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_and_errors),
        cmocka_unit_test(test_ramp_dc_gain),
        cmocka_unit_test(test_shepp_logan),
        cmocka_unit_test(test_water_cylinder_noise_free),
        cmocka_unit_test(test_dose_and_fast_noise),
        cmocka_unit_test(test_noise_centre_vs_edge),
        cmocka_unit_test(test_fast_noise_elongated),
        cmocka_unit_test(test_kernel_noise_order),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_volume_finish),
    };
    return cmocka_run_group_tests_name("ct", tests, NULL, NULL);
}
