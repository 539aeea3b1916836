/*
 * ct_noise.c: the CT dose model (reference/domain.md sections 1.2-1.3), the fast image-domain
 * noise calibrated to it, and the finishing of a CT volume (slice thickness, in-plane PSF,
 * int16 HU). Calibration and physics notes: docs/ct.md.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ct_internal.h"

/* Angular samples of the mean over views of the projection variance (midpoint rule), and the
 * radial step of the tabulated SD profile, in pixels. */
#define SD_N_ANGLES 256
#define SD_RADIAL_STEP_PX 0.5

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
 * Predicted noise SD of the projection model. The slice is replaced by its water-equivalent
 * cylinder: diameter D_w = 2·√(Σ (1 + HU/1000)·Δ² / π) (AAPM Report 220, 2014: the
 * water-equivalent diameter, GK), centred on the attenuation-weighted centroid. At distance r
 * from the centre a view whose ray passes at impact parameter s = r·|sin φ| has the line
 * integral μ_w·2√(R² − s²) (0 if s >= R), and FBP adds the views' variances, so
 * Var μ(r) = K·mean_φ Var p(r sin φ), K = r->var_per_unit_proj (ct_fbp.c). Noise is therefore
 * highest at the centre of a round object, where every ray is long.
 */
rsy_status rsy__ct_noise_sd_map(const rsy_ct_fbp *r, const float *hu, double a, float *sd_hu,
                                double *dw_mm)
{
    const int64_t nx = r->nx, ny = r->ny;
    const double px = r->pixel_mm, mu_w = r->p.mu_water_per_mm;
    const double cx = 0.5 * (double)(nx - 1), cy = 0.5 * (double)(ny - 1);
    double sw = 0.0, sx = 0.0, sy = 0.0;
    for (int64_t j = 0; j < ny; j++) {
        for (int64_t i = 0; i < nx; i++) {
            double w = 1.0 + hu[j * nx + i] / 1000.0;
            if (!(w > 0.0))
                w = 0.0;
            sw += w;
            sx += w * ((double)i - cx);
            sy += w * ((double)j - cy);
        }
    }
    const double radius_mm = sqrt(sw * px * px / M_PI);
    const double xc = sw > 0.0 ? sx / sw : 0.0, yc = sw > 0.0 ? sy / sw : 0.0;
    if (dw_mm)
        *dw_mm = 2.0 * radius_mm;
    const double rmax_px =
        sqrt((cx + fabs(xc)) * (cx + fabs(xc)) + (cy + fabs(yc)) * (cy + fabs(yc)));
    const size_t nr = (size_t)ceil(rmax_px / SD_RADIAL_STEP_PX) + 2;
    double *table = malloc(sizeof(double) * nr);
    if (!table)
        return RSY_ENOMEM;
    const double to_hu = 1000.0 / mu_w;
    for (size_t k = 0; k < nr; k++) {
        const double rr = (double)k * SD_RADIAL_STEP_PX * px;
        double acc = 0.0;
        for (int n = 0; n < SD_N_ANGLES; n++) {
            const double s = rr * sin(M_PI * (n + 0.5) / SD_N_ANGLES);
            const double chord = s < radius_mm ? 2.0 * sqrt(radius_mm * radius_mm - s * s) : 0.0;
            acc += rsy__ct_proj_variance(r, mu_w * chord, a);
        }
        table[k] = to_hu * sqrt(r->var_per_unit_proj * acc / SD_N_ANGLES);
    }
    for (int64_t j = 0; j < ny; j++) {
        for (int64_t i = 0; i < nx; i++) {
            const double dx = (double)i - cx - xc, dy = (double)j - cy - yc;
            const double u = sqrt(dx * dx + dy * dy) / SD_RADIAL_STEP_PX;
            size_t k = (size_t)u;
            if (k > nr - 2)
                k = nr - 2;
            const double w = u - (double)k;
            sd_hu[j * nx + i] = (float)((1.0 - w) * table[k] + w * table[k + 1]);
        }
    }
    free(table);
    return RSY_OK;
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
    rc = rsy__ct_noise_sd_map(r, hu, dose_fraction, sd, NULL);
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

/* Convolve @p v along axis @p axis with a normalised Gaussian of @p sigma_vox (radius
 * ⌈3σ⌉), mirrored at the borders. @p line is scratch of the axis length. */
static rsy_status blur_axis(float *v, const int64_t dims[3], int axis, double sigma_vox)
{
    const int64_t n = dims[axis];
    const int64_t rad = (int64_t)ceil(3.0 * sigma_vox);
    if (rad < 1)
        return RSY_OK;
    double *kern = malloc(sizeof(double) * (size_t)(2 * rad + 1));
    double *line = malloc(sizeof(double) * (size_t)n);
    if (!kern || !line) {
        free(line);
        free(kern);
        return RSY_ENOMEM;
    }
    double ks = 0.0;
    for (int64_t k = -rad; k <= rad; k++) {
        kern[k + rad] = exp(-0.5 * (double)(k * k) / (sigma_vox * sigma_vox));
        ks += kern[k + rad];
    }
    for (int64_t k = 0; k <= 2 * rad; k++)
        kern[k] /= ks;
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
    free(kern);
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
    if (!(isfinite(slice_thickness_mm) && slice_thickness_mm >= 0.0 && isfinite(psf_fwhm_mm) &&
          psf_fwhm_mm >= 0.0)) {
        rsy_log_error("slice thickness %g mm, PSF FWHM %g mm: must be finite and >= 0",
                      slice_thickness_mm, psf_fwhm_mm);
        return RSY_EINVAL;
    }
    rsy_volume *tmp = NULL, *res = NULL;
    rsy_status rc = rsy_volume_clone(&tmp, hu);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_volume_create(&res, &hu->geom, RSY_DTYPE_INT16);
    if (rc != RSY_OK)
        goto fail;
    /* A Gaussian of FWHM w has σ = w / (2√(2 ln 2)) (GK); the slice sensitivity profile and
     * the in-plane PSF are modelled as Gaussians (docs/ct.md). */
    const double fwhm_to_sigma = 1.0 / (2.0 * sqrt(2.0 * log(2.0)));
    const double widths[3] = {psf_fwhm_mm, psf_fwhm_mm, slice_thickness_mm};
    for (int a = 0; a < 3; a++) {
        if (widths[a] <= 0.0)
            continue;
        rc = blur_axis(tmp->data, hu->geom.dims, a,
                       widths[a] * fwhm_to_sigma / hu->geom.spacing_mm[a]);
        if (rc != RSY_OK)
            goto fail;
    }
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
