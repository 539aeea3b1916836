/*
 * ct_internal.h: the CT reconstructor's layout and the steps shared by ct_project.c, ct_fbp.c,
 * ct_noise.c, tests/test_ct.c and bench/bench_ct.c. Never installed.
 */
#ifndef RSY_CT_INTERNAL_H
#define RSY_CT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <fftw3.h>

#include "rsy_core.h"
#include "rsy_generator.h"

/** Zero bins on each side of a filtered view, so linear interpolation never needs a branch. */
#define RSY__CT_PAD 2

struct rsy_ct_fbp {
    int64_t nx, ny;
    double pixel_mm;
    rsy_ct_params p;    /* defaults resolved */
    int n_views, n_det; /* copies of p.n_views, p.n_det */
    double *cos_t, *sin_t;

    /* Filtering: views are zero-padded to fft_len (>= 2·n_det, a 2^a·3^b·5^c size) and
     * multiplied by resp[0 .. fft_len/2] (real: the kernel is even), which already holds the
     * 1/det_spacing scale of the discrete convolution, FFTW's 1/fft_len and π/n_views. */
    int fft_len;
    double *resp;
    fftw_plan plan_r2c, plan_c2r;

    /* Fast noise: the amplitude spectrum of a unit-variance field with the FBP NPS on the
     * slice grid (ny rows of nx/2+1 values, r2c layout), and its 2-D plans. */
    double *nps_amp;
    fftw_plan plan2_r2c, plan2_c2r;

    /* Variance of the reconstructed μ (mm⁻²) per unit variance of independent, identically
     * distributed noise in the line integrals: (π²/n_views)·Σ_k g[k]²·γ, g the spatial filter
     * in mm⁻¹, γ the variance factor of linear interpolation between correlated samples. */
    double var_per_unit_proj;
};

/** Stride of one filtered view: n_det bins plus RSY__CT_PAD zeros on each side. */
static inline size_t rsy__ct_qstride(const rsy_ct_fbp *r)
{
    return (size_t)r->n_det + 2 * RSY__CT_PAD;
}

/**
 * Filter every view of @p sino into @p q (n_views rows of rsy__ct_qstride(), padding zeroed;
 * the bin b of view v at q[v·stride + RSY__CT_PAD + b]), scaled so that rsy__ct_backproject
 * yields μ in mm⁻¹.
 * @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__ct_filter(const rsy_ct_fbp *r, const float *sino, float *q);

/** Back-project filtered views @p q into @p mu (nx·ny, mm⁻¹), overwriting it. */
void rsy__ct_backproject(const rsy_ct_fbp *r, const float *q, float *mu);

/** The filter's frequency response resp[0 .. *n-1] (n = fft_len/2 + 1), borrowed. */
const double *rsy__ct_filter_response(const rsy_ct_fbp *r, size_t *n);

/** Variance of line integrals at dose fraction @p a for a noiseless line integral @p p:
 *  e^p/(I₀a) + σ_e²·e^{2p}/(I₀a)² (domain.md section 1.3). */
double rsy__ct_proj_variance(const rsy_ct_fbp *r, double p, double a);

/**
 * Joseph forward projection (ct_project.c) of the nx·ny slice @p mu_per_mm of @p px pixels
 * over @p n_views views with angles cos_t[v], sin_t[v] and @p n_det bins of pitch @p tau,
 * centred, into @p sino (n_views·n_det): the projector of rsy_ct_forward on any grid.
 * @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__ct_joseph(const float *mu_per_mm, int64_t nx, int64_t ny, double px, int n_views,
                          int n_det, double tau, const double *cos_t, const double *sin_t,
                          float *sino);

/**
 * Predicted noise SD (HU) of the projection model at every pixel of @p hu at dose fraction
 * @p a, from the slice's own sinogram on a coarse grid (ct_noise.c, docs/ct.md): writes
 * @p sd_hu (nx·ny).
 * @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__ct_noise_sd_map(const rsy_ct_fbp *r, const float *hu, double a, float *sd_hu);

/**
 * Blur the float32 HU volume @p hu in place: a Gaussian in-plane PSF of FWHM @p psf_fwhm_mm,
 * a rectangular slice profile of width @p slice_thickness_mm (0 skips either); the blur of
 * rsy_ct_volume_finish, for the noise-free map before noise (ct_case.c).
 * @return RSY_OK, RSY_EINVAL (not float32, a width negative or not finite; logged),
 *         RSY_ENOMEM.
 */
rsy_status rsy__ct_volume_blur(rsy_volume *hu, double slice_thickness_mm, double psf_fwhm_mm);

/** The kernel's apodisation window at @p f cycles per bin, f in [0, 1/2] (ct_fbp.c). */
double rsy__ct_window(rsy_ct_kernel k, double f);

/** Build the fast-noise spectrum and its 2-D plans (ct_noise.c; called by the constructor).
 *  @return RSY_OK, RSY_ENOMEM, RSY_ENUMERIC, RSY_EDEP. */
rsy_status rsy__ct_noise_prepare(rsy_ct_fbp *r);

/** Lock and unlock the process-wide mutex around FFTW's planner (not thread-safe). */
void rsy__ct_fftw_lock(void);
void rsy__ct_fftw_unlock(void);

#endif /* RSY_CT_INTERNAL_H */
