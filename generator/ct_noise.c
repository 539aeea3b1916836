/*
 * ct_noise.c: the CT dose model (reference/domain.md sections 1.2-1.3), the fast image-domain
 * noise calibrated to it, and the finishing of a CT volume (slice thickness, in-plane PSF,
 * int16 HU). Calibration and physics notes: docs/ct.md.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ct_internal.h"

/* The coarse grid of the predicted SD map: at most SD_GRID pixels along a side, SD_VIEWS
 * views over [0, π) (docs/ct.md: the mean over views of e^p is smooth in the angle, and the
 * map is smooth in space away from edges). */
#define SD_GRID 64
#define SD_VIEWS 100

/* sinc(x) = sin(πx)/(πx). */
static double sinc(double x)
{
    return x != 0.0 ? sin(M_PI * x) / (M_PI * x) : 1.0;
}

/*
 * The fast model's spectrum. FBP of white projection noise has the noise power spectrum
 * NPS(ρ) ∝ |ρ|·W(ρ)² up to the detector Nyquist frequency 1/(2τ): the ramp's |ρ|² times the
 * 1/|ρ| density of the radial samples (Kak & Slaney 1988 section 5.1.2; Hanson 1979, GK).
 * Linear interpolation in the back-projection multiplies the filtered views by sinc²(ρτ),
 * hence the NPS by sinc⁴(ρτ). The amplitude is normalised to a unit-variance field and folds
 * in the 1/(nx·ny) of FFTW's unnormalised inverse.
 */
rsy_status rsy__ct_noise_prepare(rsy_ct_fbp *r)
{
    const int64_t nx = r->nx, ny = r->ny;
    const int64_t nxc = nx / 2 + 1;
    const size_t nspec = (size_t)(ny * nxc);
    const double tau = r->p.det_spacing_mm;
    r->nps_amp = fftw_malloc(sizeof(double) * nspec);
    double *field = fftw_malloc(sizeof(double) * (size_t)(nx * ny));
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * nspec);
    rsy_status rc = RSY_OK;
    if (!r->nps_amp || !field || !spec) {
        rc = RSY_ENOMEM;
        goto done;
    }
    double total = 0.0; /* Σ over the full (not half) spectrum of the NPS */
    for (int64_t ky = 0; ky < ny; ky++) {
        const double fy = (double)(ky <= ny / 2 ? ky : ky - ny) / ((double)ny * r->pixel_mm);
        for (int64_t kx = 0; kx < nxc; kx++) {
            const double fx = (double)kx / ((double)nx * r->pixel_mm);
            const double f = sqrt(fx * fx + fy * fy) * tau; /* cycles per bin */
            double nps = 0.0;
            if (f <= 0.5) {
                const double w = rsy__ct_window(r->p.kernel, f);
                const double si = sinc(f);
                nps = f * w * w * si * si * si * si;
            }
            r->nps_amp[ky * nxc + kx] = nps;
            /* Columns 1 .. (nx−1)/2 stand for themselves and their conjugates. */
            const int twice = kx > 0 && !(nx % 2 == 0 && kx == nx / 2);
            total += twice ? 2.0 * nps : nps;
        }
    }
    if (!(total > 0.0)) {
        rsy_log_error("empty noise spectrum");
        rc = RSY_ENUMERIC;
        goto done;
    }
    /* Var = (1/M)·Σ|A|² for y = IFFT(A·FFT(w)), w white of unit variance, M = nx·ny. */
    const double m = (double)(nx * ny);
    const double norm = 1.0 / (sqrt(total / m) * m);
    for (size_t k = 0; k < nspec; k++)
        r->nps_amp[k] = sqrt(r->nps_amp[k]) * norm;
    rsy__ct_fftw_lock();
    r->plan2_r2c = fftw_plan_dft_r2c_2d((int)ny, (int)nx, field, spec, FFTW_ESTIMATE);
    r->plan2_c2r = fftw_plan_dft_c2r_2d((int)ny, (int)nx, spec, field, FFTW_ESTIMATE);
    rsy__ct_fftw_unlock();
    if (!r->plan2_r2c || !r->plan2_c2r) {
        rsy_log_error("FFTW could not plan a %lld x %lld transform", (long long)nx, (long long)ny);
        rc = RSY_EDEP;
    }
done:
    fftw_free(spec);
    fftw_free(field);
    return rc;
}

double rsy__ct_proj_variance(const rsy_ct_fbp *r, double p, double a)
{
    /* Var(−ln N) ≈ 1/λ + σ_e²/λ² for N = Poisson(λ) + N(0, σ_e²), λ = I₀·a·e^{−p} (delta
     * method; domain.md section 1.3, the Yu 2012 variance model). */
    const double inv_lambda = exp(p) / (r->p.i0_photons * a);
    const double se = r->p.electronic_noise_sd;
    return inv_lambda + se * se * inv_lambda * inv_lambda;
}

/*
 * Predicted noise SD of the projection model, from the slice's own sinogram. FBP adds the
 * views' variances: a pixel at x receives, from view v, the filtered noise of the bins near
 * t_v(x) = x cosθ_v + y sinθ_v, so Var μ(x) = K·mean_v Var p̂_v(t_v(x)) with
 * Var p̂ = e^p/(I₀a) + σ_e²·e^{2p}/(I₀a)² (rsy__ct_proj_variance) and K = r->var_per_unit_proj
 * the exact FBP gain for independent bin noise (ct_fbp.c). The mean over views is dominated
 * by the longest rays through x, so it follows the body's shape (an elongated body is
 * noisiest along its long axis; lungs lower it). It is evaluated on a coarse grid: the slice
 * averaged over f×f blocks (f = ⌈max(nx, ny)/SD_GRID⌉; outside the slice is air), projected
 * with Joseph's method over SD_VIEWS views and bins of the block size, the variance
 * back-projected by linear interpolation, then interpolated bilinearly to the slice.
 * Photon starvation clamps counts to >= 1 (rsy_ct_simulate_slice), so p is capped at ln(I₀a).
 */
rsy_status rsy__ct_noise_sd_map(const rsy_ct_fbp *r, const float *hu, double a, float *sd_hu)
{
    const int64_t nx = r->nx, ny = r->ny;
    const int64_t f = ((nx > ny ? nx : ny) + SD_GRID - 1) / SD_GRID;
    const int64_t mx = (nx + f - 1) / f, my = (ny + f - 1) / f;
    const double pc = (double)f * r->pixel_mm;
    const int nd = (int)ceil(sqrt((double)(mx * mx + my * my))) + 2;
    const double mu_w = r->p.mu_water_per_mm;
    rsy_status rc = RSY_OK;
    float *mu = calloc((size_t)(mx * my), sizeof(float));
    float *sino = malloc(sizeof(float) * (size_t)SD_VIEWS * (size_t)nd);
    double *var = calloc((size_t)(mx * my), sizeof(double));
    double *ct = malloc(sizeof(double) * 2 * SD_VIEWS);
    if (!mu || !sino || !var || !ct) {
        rc = RSY_ENOMEM;
        goto done;
    }
    double *st = ct + SD_VIEWS;
    for (int v = 0; v < SD_VIEWS; v++) {
        ct[v] = cos(M_PI * v / SD_VIEWS);
        st[v] = sin(M_PI * v / SD_VIEWS);
    }
    const double block = 1.0 / (double)(f * f);
    for (int64_t j = 0; j < ny; j++)
        for (int64_t i = 0; i < nx; i++)
            mu[(j / f) * mx + i / f] += (float)(block * rsy_ct_mu_from_hu(hu[j * nx + i], mu_w));
    rc = rsy__ct_joseph(mu, mx, my, pc, SD_VIEWS, nd, pc, ct, st, sino);
    if (rc != RSY_OK)
        goto done;
    const double p_max = log(r->p.i0_photons * a);
    for (size_t k = 0; k < (size_t)SD_VIEWS * (size_t)nd; k++)
        sino[k] = (float)rsy__ct_proj_variance(r, fmin((double)sino[k], p_max), a);
    const double cx = 0.5 * (double)(mx - 1), cy = 0.5 * (double)(my - 1);
    const double bc = 0.5 * (double)(nd - 1);
    for (int v = 0; v < SD_VIEWS; v++) {
        const float *row = sino + (size_t)v * (size_t)nd;
        for (int64_t j = 0; j < my; j++)
            for (int64_t i = 0; i < mx; i++) {
                /* Bin coordinate of the block centre; the detector spans the diagonal plus
                 * one bin on each side, so u stays inside [0, nd − 1). */
                const double u = ((double)i - cx) * ct[v] + ((double)j - cy) * st[v] + bc;
                const int64_t b = (int64_t)u;
                const double w = u - (double)b;
                var[j * mx + i] += (1.0 - w) * row[b] + w * row[b + 1];
            }
    }
    const double to_hu = 1000.0 / mu_w, gain = r->var_per_unit_proj / SD_VIEWS;
    for (int64_t k = 0; k < mx * my; k++)
        var[k] = to_hu * sqrt(gain * var[k]);
    /* Pixel i lies at block coordinate (i − (f − 1)/2)/f; clamped at the outer blocks. */
    for (int64_t j = 0; j < ny; j++) {
        const double vj =
            fmin(fmax(((double)j - 0.5 * (double)(f - 1)) / (double)f, 0.0), (double)(my - 1));
        const int64_t j0 = vj < (double)(my - 1) ? (int64_t)vj : my - 1;
        const int64_t j1 = j0 + 1 < my ? j0 + 1 : j0;
        const double wj = vj - (double)j0;
        for (int64_t i = 0; i < nx; i++) {
            const double ui =
                fmin(fmax(((double)i - 0.5 * (double)(f - 1)) / (double)f, 0.0), (double)(mx - 1));
            const int64_t i0 = ui < (double)(mx - 1) ? (int64_t)ui : mx - 1;
            const int64_t i1 = i0 + 1 < mx ? i0 + 1 : i0;
            const double wi = ui - (double)i0;
            const double top = (1.0 - wi) * var[j0 * mx + i0] + wi * var[j0 * mx + i1];
            const double bot = (1.0 - wi) * var[j1 * mx + i0] + wi * var[j1 * mx + i1];
            sd_hu[j * nx + i] = (float)((1.0 - wj) * top + wj * bot);
        }
    }
done:
    free(ct);
    free(var);
    free(sino);
    free(mu);
    return rc;
}

static int dose_ok(const rsy_ct_fbp *r, double a)
{
    if (!(isfinite(a) && a > 0.0 && r->p.i0_photons * a <= 4e9)) {
        rsy_log_error("dose fraction %g: must be > 0 with I0·dose <= 4e9", a);
        return 0;
    }
    return 1;
}

rsy_status rsy_ct_simulate_slice(const rsy_ct_fbp *r, const float *hu, double dose_fraction,
                                 rsy_rng *rng, float *hu_out)
{
    if (!r || !hu || !rng || !hu_out)
        return RSY_EINVAL;
    if (!dose_ok(r, dose_fraction))
        return RSY_EINVAL;
    const size_t npix = (size_t)(r->nx * r->ny);
    const size_t nsino = (size_t)r->n_views * (size_t)r->n_det;
    rsy_status rc = RSY_OK;
    float *mu = malloc(sizeof(float) * npix);
    float *sino = malloc(sizeof(float) * nsino);
    if (!mu || !sino) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < npix; i++)
        mu[i] = (float)rsy_ct_mu_from_hu(hu[i], r->p.mu_water_per_mm);
    rc = rsy_ct_forward(r, mu, sino);
    if (rc != RSY_OK)
        goto done;
    /* Counts N = Poisson(I₀·a·e^{−p}) + N(0, σ_e²); N < 1 (photon starvation) is clamped to
     * 1 count, so p̂ <= ln(I₀·a) stays finite (domain.md section 1.3, step 3). */
    const double i0 = r->p.i0_photons * dose_fraction;
    const double se = r->p.electronic_noise_sd;
    for (size_t k = 0; k < nsino; k++) {
        double n = (double)rsy_rng_poisson(rng, i0 * exp(-(double)sino[k]));
        if (se > 0.0)
            n += rsy_rng_gaussian(rng, se);
        if (n < 1.0)
            n = 1.0;
        sino[k] = (float)-log(n / i0);
    }
    rc = rsy_ct_reconstruct(r, sino, hu_out);
done:
    free(sino);
    free(mu);
    return rc;
}

rsy_status rsy_ct_noise_fast(const rsy_ct_fbp *r, const float *hu, double dose_fraction,
                             rsy_rng *rng, float *hu_out)
{
    if (!r || !hu || !rng || !hu_out)
        return RSY_EINVAL;
    if (!dose_ok(r, dose_fraction))
        return RSY_EINVAL;
    const int64_t nx = r->nx, ny = r->ny;
    const size_t npix = (size_t)(nx * ny);
    const size_t nspec = (size_t)(ny * (nx / 2 + 1));
    rsy_status rc = RSY_OK;
    double *field = fftw_malloc(sizeof(double) * npix);
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * nspec);
    float *sd = malloc(sizeof(float) * npix);
    if (!field || !spec || !sd) {
        rc = RSY_ENOMEM;
        goto done;
    }
    rc = rsy__ct_noise_sd_map(r, hu, dose_fraction, sd);
    if (rc != RSY_OK)
        goto done;
    for (size_t k = 0; k < npix; k++)
        field[k] = rsy_rng_gaussian(rng, 1.0);
    fftw_execute_dft_r2c(r->plan2_r2c, field, spec);
    for (size_t k = 0; k < nspec; k++) {
        spec[k][0] *= r->nps_amp[k];
        spec[k][1] *= r->nps_amp[k];
    }
    fftw_execute_dft_c2r(r->plan2_c2r, spec, field);
    for (size_t k = 0; k < npix; k++)
        hu_out[k] = hu[k] + sd[k] * (float)field[k];
done:
    free(sd);
    fftw_free(spec);
    fftw_free(field);
    return rc;
}

/* Mirror an index into [0, n) (half-sample symmetric: −1 → 0, n → n − 1). */
static int64_t mirror(int64_t i, int64_t n)
{
    const int64_t period = 2 * n;
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - 1 - i;
}

/* Convolve @p v along axis @p axis with the normalised kernel @p kern of radius @p rad
 * (2·rad + 1 taps), mirrored at the borders. */
static rsy_status blur_axis(float *v, const int64_t dims[3], int axis, const double *kern,
                            int64_t rad)
{
    const int64_t n = dims[axis];
    double *line = malloc(sizeof(double) * (size_t)n);
    if (!line)
        return RSY_ENOMEM;
    const int64_t step = axis == 0 ? 1 : axis == 1 ? dims[0] : dims[0] * dims[1];
    const int64_t n_lines = dims[0] * dims[1] * dims[2] / n;
    for (int64_t l = 0; l < n_lines; l++) {
        /* Line l: its first voxel, enumerating the two other axes in NIfTI order. */
        int64_t base;
        if (axis == 0)
            base = l * dims[0];
        else if (axis == 1)
            base = (l / dims[0]) * dims[0] * dims[1] + l % dims[0];
        else
            base = l;
        for (int64_t i = 0; i < n; i++)
            line[i] = v[base + i * step];
        for (int64_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int64_t k = -rad; k <= rad; k++)
                s += kern[k + rad] * line[mirror(i + k, n)];
            v[base + i * step] = (float)s;
        }
    }
    free(line);
    return RSY_OK;
}

/* Blur along @p axis with a normalised Gaussian of σ = @p width_vox voxels (radius ⌈3σ⌉)
 * or, when @p box, a rectangular profile of width @p width_vox voxels: tap k weighs the
 * overlap of [k − 1/2, k + 1/2] with [−w/2, w/2], the exact slab average of voxels that are
 * uniform over their extent. A box of at most one voxel does nothing. */
static rsy_status blur(float *v, const int64_t dims[3], int axis, int box, double width_vox)
{
    const double half = 0.5 * width_vox;
    const int64_t rad = box ? (int64_t)ceil(half - 0.5 - 1e-9) : (int64_t)ceil(3.0 * width_vox);
    if (rad < 1)
        return RSY_OK;
    double *kern = malloc(sizeof(double) * (size_t)(2 * rad + 1));
    if (!kern)
        return RSY_ENOMEM;
    double ks = 0.0;
    for (int64_t k = -rad; k <= rad; k++) {
        const double x = (double)k;
        double w;
        if (box)
            w = fmax(0.0, fmin(x + 0.5, half) - fmax(x - 0.5, -half));
        else
            w = exp(-0.5 * x * x / (width_vox * width_vox));
        kern[k + rad] = w;
        ks += w;
    }
    for (int64_t k = 0; k <= 2 * rad; k++)
        kern[k] /= ks;
    rsy_status rc = blur_axis(v, dims, axis, kern, rad);
    free(kern);
    return rc;
}

rsy_status rsy__ct_volume_blur(rsy_volume *hu, double slice_thickness_mm, double psf_fwhm_mm)
{
    if (!hu || hu->dtype != RSY_DTYPE_FLOAT32 || !hu->data)
        return RSY_EINVAL;
    if (!(isfinite(slice_thickness_mm) && slice_thickness_mm >= 0.0 && isfinite(psf_fwhm_mm) &&
          psf_fwhm_mm >= 0.0)) {
        rsy_log_error("slice thickness %g mm, PSF FWHM %g mm: must be finite and >= 0",
                      slice_thickness_mm, psf_fwhm_mm);
        return RSY_EINVAL;
    }
    /* The in-plane PSF is a Gaussian: FWHM w has σ = w / (2√(2 ln 2)) (GK). The slice
     * sensitivity profile is rectangular: the reconstructed slice is the average of a slab of
     * the slice thickness (docs/ct.md). */
    const double fwhm_to_sigma = 1.0 / (2.0 * sqrt(2.0 * log(2.0)));
    for (int a = 0; a < 2 && psf_fwhm_mm > 0.0; a++) {
        rsy_status rc = blur(hu->data, hu->geom.dims, a, 0,
                             psf_fwhm_mm * fwhm_to_sigma / hu->geom.spacing_mm[a]);
        if (rc != RSY_OK)
            return rc;
    }
    if (slice_thickness_mm > 0.0)
        return blur(hu->data, hu->geom.dims, 2, 1, slice_thickness_mm / hu->geom.spacing_mm[2]);
    return RSY_OK;
}

rsy_status rsy_ct_volume_finish(const rsy_volume *hu, double slice_thickness_mm, double psf_fwhm_mm,
                                rsy_volume **out)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!hu || hu->dtype != RSY_DTYPE_FLOAT32 || !hu->data)
        return RSY_EINVAL;
    rsy_volume *tmp = NULL, *res = NULL;
    rsy_status rc = rsy_volume_clone(&tmp, hu);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy__ct_volume_blur(tmp, slice_thickness_mm, psf_fwhm_mm);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_volume_create(&res, &hu->geom, RSY_DTYPE_INT16);
    if (rc != RSY_OK)
        goto fail;
    const float *src = tmp->data;
    int16_t *dst = res->data;
    const size_t n = rsy_geometry_nvox(&hu->geom);
    for (size_t i = 0; i < n; i++) {
        /* The int16 range of clinical CT, −1024 to 3071 (12-bit data, GK). NaN reads as air. */
        double x = src[i];
        if (!(x >= -1024.0))
            x = -1024.0;
        if (x > 3071.0)
            x = 3071.0;
        dst[i] = (int16_t)lrint(x);
    }
    rsy_volume_destroy(tmp);
    *out = res;
    return RSY_OK;
fail:
    rsy_volume_destroy(res);
    rsy_volume_destroy(tmp);
    return rc;
}
