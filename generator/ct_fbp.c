/*
 * ct_fbp.c: the CT reconstructor: parameters, the exact discrete ramp filter with its
 * windows, and pixel-driven back-projection (reference/domain.md section 1.4; docs/ct.md).
 *
 * Conventions (rsy_generator.h, "CT imaging"): view v at θ = v·π/n_views, detector bin b at
 * t = (b − (n_det−1)/2)·τ, pixel (i, j) at x = (i − (nx−1)/2)·Δ, y = (j − (ny−1)/2)·Δ, and
 * t = x cosθ + y sinθ.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ct_internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Back-projection tile: 32 rows of 64 pixels (8 KiB of output) stay in L1 while every view
 * passes over them, and the ~100 bins a view needs per tile stay in L2. Looping over views
 * outside the whole image instead streams the 1 MiB output of a 512² slice through the cache
 * 1100 times. */
#define TILE_ROWS 32
#define TILE_COLS 64

/* FFTW's planner (plan creation and destruction) is not thread-safe; fftw_execute_dft_* on
 * separate arrays is (FFTW 3 manual, section 5.4 "Thread safety"). This lock is the only
 * mutable global of the CT code and serialises planning across every reconstructor. */
static pthread_mutex_t fftw_planner_lock = PTHREAD_MUTEX_INITIALIZER;

void rsy__ct_fftw_lock(void)
{
    pthread_mutex_lock(&fftw_planner_lock);
}
void rsy__ct_fftw_unlock(void)
{
    pthread_mutex_unlock(&fftw_planner_lock);
}

rsy_ct_params rsy_ct_params_default(void)
{
    rsy_ct_params p;
    p.n_views = 0;
    p.n_det = 0;
    p.det_spacing_mm = 0.0;
    p.kernel = RSY_CT_KERNEL_RAMLAK;
    p.i0_photons = 1e5;           /* "standard clinical number", TIGRE d03 demo [S27] */
    p.electronic_noise_sd = 10.0; /* counts, TIGRE demo and Fang pct_noisesino [S27, S28] */
    p.mu_water_per_mm = 0.01879;  /* water at 75 keV, RTK AddNoise example (Rit 2016) [S22] */
    return p;
}

double rsy_ct_mu_from_hu(double hu, double mu_water_per_mm)
{
    const double mu = mu_water_per_mm * (1.0 + hu / 1000.0);
    return mu > 0.0 ? mu : 0.0;
}

rsy_ct_params rsy_ct_fbp_params(const rsy_ct_fbp *r)
{
    if (!r)
        return rsy_ct_params_default();
    return r->p;
}

const double *rsy__ct_filter_response(const rsy_ct_fbp *r, size_t *n)
{
    *n = (size_t)r->fft_len / 2 + 1;
    return r->resp;
}

/* Smallest 2^a·3^b·5^c >= n: sizes FFTW transforms fastest. */
static int fft_size(int n)
{
    for (int m = n;; m++) {
        int k = m;
        while (k % 2 == 0)
            k /= 2;
        while (k % 3 == 0)
            k /= 3;
        while (k % 5 == 0)
            k /= 5;
        if (k == 1)
            return m;
    }
}

/* Apodisation window at f cycles per bin, f in [0, 1/2], cut-off f_c = 1/2 (domain.md 1.4:
 * Shepp–Logan = |ω|·sinc(ω/2ω_c); Hann = (1 + cos(πf/f_c))/2 (GK)). */
double rsy__ct_window(rsy_ct_kernel k, double f)
{
    switch (k) {
    case RSY_CT_KERNEL_RAMLAK:
        return 1.0;
    case RSY_CT_KERNEL_SHEPP_LOGAN:
        return f > 0.0 ? sin(M_PI * f) / (M_PI * f) : 1.0;
    case RSY_CT_KERNEL_HANN:
        return 0.5 * (1.0 + cos(2.0 * M_PI * f));
    }
    return 1.0;
}

static rsy_status resolve_params(rsy_ct_params *p, int64_t nx, int64_t ny, double pixel_mm)
{
    if (!(isfinite(p->det_spacing_mm) && p->det_spacing_mm >= 0.0)) {
        rsy_log_error("det_spacing_mm %g: must be finite and >= 0", p->det_spacing_mm);
        return RSY_EINVAL;
    }
    if (p->det_spacing_mm == 0.0)
        p->det_spacing_mm = pixel_mm;
    const double diag_mm = sqrt((double)(nx * nx + ny * ny)) * pixel_mm;
    if (p->n_det < 0 || p->n_views < 0 || p->n_det > 65536 || p->n_views > 65536) {
        rsy_log_error("n_det %d, n_views %d: must be in [0, 65536]", p->n_det, p->n_views);
        return RSY_EINVAL;
    }
    if (p->n_det == 0)
        p->n_det = (int)ceil(diag_mm / p->det_spacing_mm - 1e-9);
    /* Kak & Slaney sampling rule: n_views ≈ (π/2)·n_det (domain.md section 1.4, GK). */
    if (p->n_views == 0)
        p->n_views = (int)ceil(0.5 * M_PI * p->n_det);
    /* Every pixel centre must project inside [0, n_det − 1] so back-projection needs no
     * bounds test (the zero padding covers the interpolation's right neighbour). */
    const double half_diag_centres =
        0.5 * sqrt((double)((nx - 1) * (nx - 1) + (ny - 1) * (ny - 1))) * pixel_mm;
    if (0.5 * (p->n_det - 1) * p->det_spacing_mm < half_diag_centres) {
        rsy_log_error("detector of %d bins of %g mm is narrower than the slice diagonal "
                      "(%g mm)",
                      p->n_det, p->det_spacing_mm, 2.0 * half_diag_centres);
        return RSY_EINVAL;
    }
    if (p->n_views < 1) {
        rsy_log_error("n_views must be >= 1");
        return RSY_EINVAL;
    }
    if ((unsigned)p->kernel > (unsigned)RSY_CT_KERNEL_HANN) {
        rsy_log_error("unknown CT kernel %d", (int)p->kernel);
        return RSY_EINVAL;
    }
    if (!(isfinite(p->i0_photons) && p->i0_photons > 0.0 && p->i0_photons <= 1e9)) {
        rsy_log_error("i0_photons %g: must be in (0, 1e9]", p->i0_photons);
        return RSY_EINVAL;
    }
    if (!(isfinite(p->electronic_noise_sd) && p->electronic_noise_sd >= 0.0)) {
        rsy_log_error("electronic_noise_sd %g: must be finite and >= 0", p->electronic_noise_sd);
        return RSY_EINVAL;
    }
    if (!(isfinite(p->mu_water_per_mm) && p->mu_water_per_mm > 0.0)) {
        rsy_log_error("mu_water_per_mm %g: must be finite and > 0", p->mu_water_per_mm);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

/*
 * The filter: the exact discrete ramp h[0] = 1/4, h[n odd] = −1/(πn)², h[n even] = 0 (Kak &
 * Slaney 1988 eq. 3.61; domain.md 1.4 [S33]), laid out circularly over fft_len >= 2·n_det
 * samples so the circular convolution equals the linear one over the detector, transformed
 * once; its real spectrum times the window is the response. The truncated kernel's DC gain
 * (2/π²)·Σ_{odd n >= fft_len/2} 1/n² is small but positive, unlike a sampled |ω|, whose zero
 * DC shifts the reconstruction (Zeng 2015 [S33]).
 * Also computes the noise factor: g = IFFT(response) is the spatial filter actually applied,
 * Var(μ) = (π/N_v)²·N_v·(Σg²/τ²)·γ per unit projection variance, with γ = 2/3 + (1/3)·c1/c0
 * the mean over the interpolation weight w of (1−w)² + w² + 2w(1−w)·c1/c0, c0 = Σg[k]²,
 * c1 = Σg[k]g[k+1].
 */
static rsy_status build_filter(rsy_ct_fbp *r)
{
    const int m = r->fft_len;
    const int nf = m / 2 + 1;
    rsy_status rc = RSY_OK;
    double *h = fftw_malloc(sizeof(double) * (size_t)m);
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * (size_t)nf);
    fftw_plan fwd = NULL, inv = NULL;
    if (!h || !spec) {
        rc = RSY_ENOMEM;
        goto done;
    }
    rsy__ct_fftw_lock();
    fwd = fftw_plan_dft_r2c_1d(m, h, spec, FFTW_ESTIMATE);
    inv = fftw_plan_dft_c2r_1d(m, spec, h, FFTW_ESTIMATE);
    rsy__ct_fftw_unlock();
    if (!fwd || !inv) {
        rsy_log_error("FFTW could not plan a transform of %d points", m);
        rc = RSY_EDEP;
        goto done;
    }
    memset(h, 0, sizeof(double) * (size_t)m);
    h[0] = 0.25;
    /* n = m/2, when odd, is its own mirror image and is set once. */
    for (int n = 1; n <= m / 2; n += 2) {
        const double v = -1.0 / (M_PI * M_PI * (double)n * (double)n);
        h[n] = v;
        h[m - n] = v;
    }
    fftw_execute(fwd);
    for (int k = 0; k < nf; k++) {
        const double win = rsy__ct_window(r->p.kernel, (double)k / m);
        r->resp[k] = spec[k][0] * win;
        spec[k][0] = r->resp[k] / m; /* for g: the windowed kernel back in space */
        spec[k][1] = 0.0;
    }
    fftw_execute(inv); /* h now holds g·τ (dimensionless taps) */
    double c0 = 0.0, c1 = 0.0;
    for (int k = 0; k < m; k++) {
        c0 += h[k] * h[k];
        c1 += h[k] * h[(k + 1) % m];
    }
    const double tau = r->p.det_spacing_mm;
    const double gamma = 2.0 / 3.0 + c1 / (3.0 * c0);
    r->var_per_unit_proj = M_PI * M_PI / r->n_views * c0 / (tau * tau) * gamma;
    /* q[n] = τ·Σ_k h(nτ − kτ)·p[k] with h(nτ) = h_d[n]/τ² (Kak & Slaney eq. 3.61-3.62), then
     * the back-projection's π/N_views; 1/m undoes FFTW's unnormalised inverse. */
    const double scale = M_PI / r->n_views / tau / m;
    for (int k = 0; k < nf; k++)
        r->resp[k] *= scale;
done:
    rsy__ct_fftw_lock();
    if (fwd)
        fftw_destroy_plan(fwd);
    if (inv)
        fftw_destroy_plan(inv);
    rsy__ct_fftw_unlock();
    fftw_free(spec);
    fftw_free(h);
    return rc;
}

rsy_status rsy_ct_fbp_create(rsy_ct_fbp **out, int64_t nx, int64_t ny, double pixel_mm,
                             const rsy_ct_params *params)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (nx < 8 || ny < 8 || nx > 8192 || ny > 8192) {
        rsy_log_error("slice of %lld x %lld pixels: each side must be in [8, 8192]", (long long)nx,
                      (long long)ny);
        return RSY_EINVAL;
    }
    if (!(isfinite(pixel_mm) && pixel_mm > 0.0)) {
        rsy_log_error("pixel_mm %g: must be finite and > 0", pixel_mm);
        return RSY_EINVAL;
    }
    rsy_ct_params p = params ? *params : rsy_ct_params_default();
    rsy_status rc = resolve_params(&p, nx, ny, pixel_mm);
    if (rc != RSY_OK)
        return rc;

    rsy_ct_fbp *r = calloc(1, sizeof *r);
    if (!r)
        return RSY_ENOMEM;
    r->nx = nx;
    r->ny = ny;
    r->pixel_mm = pixel_mm;
    r->p = p;
    r->n_views = p.n_views;
    r->n_det = p.n_det;
    r->fft_len = fft_size(2 * p.n_det);
    r->cos_t = malloc(sizeof(double) * (size_t)p.n_views);
    r->sin_t = malloc(sizeof(double) * (size_t)p.n_views);
    r->resp = malloc(sizeof(double) * ((size_t)r->fft_len / 2 + 1));
    if (!r->cos_t || !r->sin_t || !r->resp) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    for (int v = 0; v < p.n_views; v++) {
        const double th = M_PI * v / p.n_views;
        r->cos_t[v] = cos(th);
        r->sin_t[v] = sin(th);
    }
    rc = build_filter(r);
    if (rc != RSY_OK)
        goto fail;

    const int m = r->fft_len;
    double *buf = fftw_malloc(sizeof(double) * (size_t)m);
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * ((size_t)m / 2 + 1));
    if (buf && spec) {
        rsy__ct_fftw_lock();
        r->plan_r2c = fftw_plan_dft_r2c_1d(m, buf, spec, FFTW_ESTIMATE);
        r->plan_c2r = fftw_plan_dft_c2r_1d(m, spec, buf, FFTW_ESTIMATE);
        rsy__ct_fftw_unlock();
    }
    fftw_free(spec);
    fftw_free(buf);
    if (!buf || !spec) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    if (!r->plan_r2c || !r->plan_c2r) {
        rsy_log_error("FFTW could not plan a transform of %d points", m);
        rc = RSY_EDEP;
        goto fail;
    }
    rc = rsy__ct_noise_prepare(r);
    if (rc != RSY_OK)
        goto fail;
    *out = r;
    return RSY_OK;
fail:
    rsy_ct_fbp_destroy(r);
    return rc;
}

void rsy_ct_fbp_destroy(rsy_ct_fbp *r)
{
    if (!r)
        return;
    rsy__ct_fftw_lock();
    if (r->plan_r2c)
        fftw_destroy_plan(r->plan_r2c);
    if (r->plan_c2r)
        fftw_destroy_plan(r->plan_c2r);
    if (r->plan2_r2c)
        fftw_destroy_plan(r->plan2_r2c);
    if (r->plan2_c2r)
        fftw_destroy_plan(r->plan2_c2r);
    rsy__ct_fftw_unlock();
    fftw_free(r->nps_amp);
    free(r->resp);
    free(r->sin_t);
    free(r->cos_t);
    free(r);
}

rsy_status rsy__ct_filter(const rsy_ct_fbp *r, const float *sino, float *q)
{
    const int m = r->fft_len;
    const int nf = m / 2 + 1;
    const int nd = r->n_det;
    const size_t stride = rsy__ct_qstride(r);
    /* Scratch of this call only, so concurrent calls on one reconstructor do not share it.
     * fftw_malloc gives the alignment the plans were made for (new-array execute). */
    double *buf = fftw_malloc(sizeof(double) * (size_t)m);
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * (size_t)nf);
    if (!buf || !spec) {
        fftw_free(spec);
        fftw_free(buf);
        return RSY_ENOMEM;
    }
    for (int v = 0; v < r->n_views; v++) {
        const float *row = sino + (size_t)v * (size_t)nd;
        for (int b = 0; b < nd; b++)
            buf[b] = row[b];
        memset(buf + nd, 0, sizeof(double) * (size_t)(m - nd));
        fftw_execute_dft_r2c(r->plan_r2c, buf, spec);
        for (int k = 0; k < nf; k++) {
            spec[k][0] *= r->resp[k];
            spec[k][1] *= r->resp[k];
        }
        fftw_execute_dft_c2r(r->plan_c2r, spec, buf);
        float *qv = q + (size_t)v * stride;
        for (int b = 0; b < RSY__CT_PAD; b++) {
            qv[b] = 0.0f;
            qv[RSY__CT_PAD + nd + b] = 0.0f;
        }
        for (int b = 0; b < nd; b++)
            qv[RSY__CT_PAD + b] = (float)buf[b];
    }
    fftw_free(spec);
    fftw_free(buf);
    return RSY_OK;
}

/* One row of one view: the detector coordinate is affine in the column, u = u0 + i·du, and
 * stays inside the padded view (checked when the reconstructor was made), so the loop has no
 * branch and truncation is floor. With SSE2 (every x86-64) four pixels go at once: each
 * lane's pair (q[k], q[k+1]) is one 64-bit load, and two shuffles split the pairs. The
 * arithmetic is the scalar loop's, in the same order and without FMA, so both paths give
 * the same bits. The scalar loop serves other targets and the row's last n mod 4 pixels. */
static void backproject_row(float *restrict o, const float *restrict qv, float u0, float du, int n)
{
    int i = 0;
#if defined(__SSE2__)
    const __m128 vdu = _mm_set1_ps(du), vu0 = _mm_set1_ps(u0);
    const __m128 four = _mm_set1_ps(4.0f);
    __m128 vi = _mm_setr_ps(0.0f, 1.0f, 2.0f, 3.0f);
    for (; i + 4 <= n; i += 4) {
        const __m128 u = _mm_add_ps(vu0, _mm_mul_ps(vi, vdu));
        const __m128i k = _mm_cvttps_epi32(u);
        const __m128 w = _mm_sub_ps(u, _mm_cvtepi32_ps(k));
        const int k0 = _mm_cvtsi128_si32(k);
        const int k1 = _mm_cvtsi128_si32(_mm_shuffle_epi32(k, 0x55));
        const int k2 = _mm_cvtsi128_si32(_mm_shuffle_epi32(k, 0xAA));
        const int k3 = _mm_cvtsi128_si32(_mm_shuffle_epi32(k, 0xFF));
        __m128 p01 = _mm_setzero_ps(), p23 = _mm_setzero_ps();
        p01 = _mm_loadl_pi(p01, (const __m64 *)(const void *)(qv + k0));
        p01 = _mm_loadh_pi(p01, (const __m64 *)(const void *)(qv + k1));
        p23 = _mm_loadl_pi(p23, (const __m64 *)(const void *)(qv + k2));
        p23 = _mm_loadh_pi(p23, (const __m64 *)(const void *)(qv + k3));
        const __m128 a = _mm_shuffle_ps(p01, p23, _MM_SHUFFLE(2, 0, 2, 0));
        const __m128 b = _mm_shuffle_ps(p01, p23, _MM_SHUFFLE(3, 1, 3, 1));
        const __m128 val = _mm_add_ps(a, _mm_mul_ps(w, _mm_sub_ps(b, a)));
        _mm_storeu_ps(o + i, _mm_add_ps(_mm_loadu_ps(o + i), val));
        vi = _mm_add_ps(vi, four);
    }
#endif
    for (; i < n; i++) {
        const float u = u0 + (float)i * du;
        const int k = (int)u;
        const float w = u - (float)k;
        const float a = qv[k];
        o[i] += a + w * (qv[k + 1] - a);
    }
}

void rsy__ct_backproject(const rsy_ct_fbp *r, const float *q, float *mu)
{
    const int64_t nx = r->nx, ny = r->ny;
    const size_t stride = rsy__ct_qstride(r);
    const double scale = r->pixel_mm / r->p.det_spacing_mm;
    const double centre = 0.5 * (r->n_det - 1) + RSY__CT_PAD;
    const double cx = 0.5 * (double)(nx - 1), cy = 0.5 * (double)(ny - 1);
    memset(mu, 0, sizeof(float) * (size_t)(nx * ny));
    for (int64_t j0 = 0; j0 < ny; j0 += TILE_ROWS) {
        const int64_t j1 = j0 + TILE_ROWS < ny ? j0 + TILE_ROWS : ny;
        for (int64_t i0 = 0; i0 < nx; i0 += TILE_COLS) {
            const int w = (int)(i0 + TILE_COLS < nx ? TILE_COLS : nx - i0);
            for (int v = 0; v < r->n_views; v++) {
                const float *qv = q + (size_t)v * stride;
                const double du = r->cos_t[v] * scale, dv = r->sin_t[v] * scale;
                const double ub = centre + ((double)i0 - cx) * du;
                for (int64_t j = j0; j < j1; j++) {
                    const float u0 = (float)(ub + ((double)j - cy) * dv);
                    backproject_row(mu + j * nx + i0, qv, u0, (float)du, w);
                }
            }
        }
    }
}

rsy_status rsy_ct_reconstruct(const rsy_ct_fbp *r, const float *sino, float *hu_out)
{
    if (!r || !sino || !hu_out)
        return RSY_EINVAL;
    float *q = malloc(sizeof(float) * rsy__ct_qstride(r) * (size_t)r->n_views);
    if (!q)
        return RSY_ENOMEM;
    rsy_status rc = rsy__ct_filter(r, sino, q);
    if (rc == RSY_OK) {
        rsy__ct_backproject(r, q, hu_out);
        const size_t n = (size_t)(r->nx * r->ny);
        const float k = (float)(1000.0 / r->p.mu_water_per_mm);
        for (size_t i = 0; i < n; i++)
            hu_out[i] = hu_out[i] * k - 1000.0f;
    }
    free(q);
    return rc;
}
