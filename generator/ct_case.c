/*
 * ct_case.c: the CT imaging of a case (DESIGN.md section 7, docs/ct.md).
 *
 *   1. the noise-free HU map: each voxel its class's mean HU in the recipe's contrast phase
 *      (phantom tissues from the tissue table, lesion compartments absolute or relative to a
 *      tissue: rsy__gen_compartment_ct, mri.c), plus hu_sd · u in the classes the texture
 *      stage modulates (u with the preset's variance, so hu_sd is the within-class SD for a
 *      unit-variance preset);
 *   2. the resolution, applied to that noise-free map as on a scanner, where focal spot and
 *      detector blur act before quantum noise: the in-plane PSF and the rectangular slice
 *      profile of the slice thickness (rsy_ct_volume_finish's blur; docs/ct.md);
 *   3. per dose channel, every axial slice (k fixed) through the recipe's noise model — the
 *      projection-domain dose model (rsy_ct_simulate_slice) or the calibrated image-domain
 *      one (rsy_ct_noise_fast) — with I₀ the profile's photons per 1 mm times the slice
 *      thickness, and one stream per (case, RSY_STAGE_ACQUISITION + channel) consumed in
 *      slice order, so a case is byte-identical whatever thread makes it;
 *   4. the channel's noise SD, on the finished float values (clamped to the int16 HU range,
 *      before rounding): the SD of the difference to the noise-free finished image (for the
 *      projection model its noise-free reconstruction, made once per case, so the
 *      reconstruction's own deterministic error — edge streaks, aliasing — is not counted as
 *      noise; for the fast model the blurred HU map itself) over the in-plane interior of
 *      the body;
 *   5. int16 HU (rsy_ct_volume_finish with no blur).
 * All channels share the class map, lesions and texture of the case (lesions are sampled and
 * rasterised by case.c for CT as for MRI): they differ in dose and in their noise stream only
 * (the "paired" data of the dataset manifest).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ct_internal.h"
#include "generator_internal.h"

/* Voxels within this many pixels along i and j of another class are not "interior": the
 * reconstruction's edge response (ramp filter ringing, interpolation) reaches that far at
 * full strength, so the noise measured there would include it. */
#define RSY__CT_INTERIOR_PX 2

double rsy__gen_ct_thickness_mm(const rsy_recipe *r)
{
    const double t = r->ct.scanner.slice_thickness_mm;
    return t > 0.0 ? t : r->phantom.spacing_mm[2];
}

rsy_ct_params rsy__gen_ct_params(const rsy_recipe *r)
{
    const rsy_ct_scanner *s = &r->ct.scanner;
    rsy_ct_params p = rsy_ct_params_default();
    p.n_views = s->n_views;
    p.n_det = s->n_det;
    switch (s->kernel) {
    case RSY_CT_WINDOW_RAMLAK:
        p.kernel = RSY_CT_KERNEL_RAMLAK;
        break;
    case RSY_CT_WINDOW_SHEPP_LOGAN:
        p.kernel = RSY_CT_KERNEL_SHEPP_LOGAN;
        break;
    case RSY_CT_WINDOW_HANN:
        p.kernel = RSY_CT_KERNEL_HANN;
        break;
    }
    /* The profile's I₀ is per 1 mm of slice (docs/recipe.md): a slab of thickness T collects
     * T times the photons, so its noise variance falls as 1/T, as on a scanner (GK). */
    p.i0_photons = s->i0_photons * rsy__gen_ct_thickness_mm(r);
    p.electronic_noise_sd = s->electronic_noise_sd;
    p.mu_water_per_mm = s->mu_water_per_mm;
    return p;
}

rsy_status rsy__gen_ct_fbp_create(const rsy_recipe *r, rsy_ct_fbp **out)
{
    *out = NULL;
    if (strcmp(r->modality, "ct") != 0) {
        rsy_log_error("%s: not a CT recipe", r->path);
        return RSY_EINVAL;
    }
    const double *sp = r->phantom.spacing_mm;
    if (sp[0] != sp[1]) {
        rsy_log_error("%s: CT needs square pixels, but phantom.spacing_mm is %g x %g in-plane",
                      r->path, sp[0], sp[1]);
        return RSY_EINVAL;
    }
    rsy_ct_params p = rsy__gen_ct_params(r);
    return rsy_ct_fbp_create(out, r->phantom.dims[0], r->phantom.dims[1], sp[0], &p);
}

/* 1 when voxel (i, j) of slice @p cl (nx·ny) and its neighbours up to RSY__CT_INTERIOR_PX
 * pixels along i and j all hold the same non-background class. */
static int interior(const uint16_t *cl, int64_t nx, int64_t ny, int64_t i, int64_t j)
{
    const int64_t d = RSY__CT_INTERIOR_PX;
    if (i < d || j < d || i >= nx - d || j >= ny - d)
        return 0;
    uint16_t c = cl[i + nx * j];
    if (c == 0)
        return 0;
    for (int64_t o = 1; o <= d; o++)
        if (cl[i - o + nx * j] != c || cl[i + o + nx * j] != c || cl[i + nx * (j - o)] != c ||
            cl[i + nx * (j + o)] != c)
            return 0;
    return 1;
}

/* One dose channel: every slice of @p hu through the noise model into @p noisy (float32). */
static rsy_status simulate_channel(const rsy_recipe *r, size_t case_index, int ch,
                                   const rsy_ct_fbp *fbp, const float *hu, float *noisy,
                                   const rsy_geometry *g)
{
    rsy_rng *rng = NULL;
    rsy_status rc = rsy_rng_create_stream(&rng, r->seed, case_index,
                                          (uint32_t)RSY_STAGE_ACQUISITION + (uint32_t)ch);
    if (rc != RSY_OK)
        return rc;
    size_t slice = (size_t)g->dims[0] * (size_t)g->dims[1];
    double dose = r->ct.doses[ch];
    for (int64_t k = 0; k < g->dims[2] && rc == RSY_OK; k++) {
        const float *in = hu + (size_t)k * slice;
        float *outp = noisy + (size_t)k * slice;
        if (r->ct.noise_model == RSY_CT_NOISE_FAST)
            rc = rsy_ct_noise_fast(fbp, in, dose, rng, outp);
        else
            rc = rsy_ct_simulate_slice(fbp, in, dose, rng, outp);
    }
    rsy_rng_destroy(rng);
    return rc;
}

/* The noise-free reference of every slice of @p hu into @p ref: FBP of the exact line
 * integrals for the projection model. */
static rsy_status reference_volume(const rsy_recipe *r, const rsy_ct_fbp *fbp, const float *hu,
                                   float *ref, const rsy_geometry *g)
{
    size_t slice = (size_t)g->dims[0] * (size_t)g->dims[1];
    size_t nvox = slice * (size_t)g->dims[2];
    if (r->ct.noise_model == RSY_CT_NOISE_FAST) {
        memcpy(ref, hu, nvox * sizeof *ref);
        return RSY_OK;
    }
    rsy_ct_params p = rsy_ct_fbp_params(fbp);
    float *mu = malloc(slice * sizeof *mu);
    float *sino = malloc((size_t)p.n_views * (size_t)p.n_det * sizeof *sino);
    rsy_status rc = mu && sino ? RSY_OK : RSY_ENOMEM;
    for (int64_t k = 0; k < g->dims[2] && rc == RSY_OK; k++) {
        const float *in = hu + (size_t)k * slice;
        for (size_t v = 0; v < slice; v++)
            mu[v] = (float)rsy_ct_mu_from_hu(in[v], p.mu_water_per_mm);
        rc = rsy_ct_forward(fbp, mu, sino);
        if (rc == RSY_OK)
            rc = rsy_ct_reconstruct(fbp, sino, ref + (size_t)k * slice);
    }
    free(sino);
    free(mu);
    return rc;
}

/* A float HU value as rsy_ct_volume_finish clamps it, before rounding (NaN reads as air). */
static double clamp_hu(float x)
{
    return x >= -1024.0f ? (x <= 3071.0f ? (double)x : 3071.0) : -1024.0;
}

/* SD of the clamped noisy image minus ref over the interior voxels (see interior()). */
static double noise_sd(const uint16_t *cl, const float *ref, const float *noisy,
                       const rsy_geometry *g)
{
    int64_t nx = g->dims[0], ny = g->dims[1];
    double s = 0.0, s2 = 0.0;
    size_t n = 0;
    for (int64_t k = 0; k < g->dims[2]; k++) {
        size_t base = (size_t)k * (size_t)nx * (size_t)ny;
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                if (!interior(cl + base, nx, ny, i, j))
                    continue;
                size_t v = base + (size_t)(i + nx * j);
                double d = clamp_hu(noisy[v]) - (double)ref[v];
                s += d;
                s2 += d * d;
                n++;
            }
    }
    if (n < 2)
        return NAN;
    double mean = s / (double)n;
    double var = (s2 - (double)n * mean * mean) / (double)(n - 1);
    return sqrt(var > 0.0 ? var : 0.0);
}

rsy_status rsy__gen_ct_imaging(const rsy_recipe *r, size_t case_index, const rsy_volume *classes,
                               const rsy__gen_class *tab, const rsy__gen_texture *tex,
                               const float *u, const rsy_ct_fbp *fbp, rsy__gen_ct_result *res)
{
    memset(res, 0, sizeof *res);
    if (!r || !classes || !tab || !fbp || classes->dtype != RSY_DTYPE_UINT16 || r->ct.n_doses < 1 ||
        r->ct.n_doses > RSY_MAX_SEQUENCES || (u && !tex))
        return RSY_EINVAL;
    const rsy_geometry *g = &classes->geom;
    size_t nvox = rsy_geometry_nvox(g);
    const uint16_t *cl = classes->data;
    rsy_volume *hu = NULL, *noisy = NULL, *ref = NULL;
    rsy_status rc = rsy_volume_create(&hu, g, RSY_DTYPE_FLOAT32);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_volume_create(&noisy, g, RSY_DTYPE_FLOAT32);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_volume_create(&ref, g, RSY_DTYPE_FLOAT32);
    if (rc != RSY_OK)
        goto fail;

    float *h = hu->data;
    for (size_t v = 0; v < nvox; v++) {
        const rsy__gen_class *e = &tab[cl[v]];
        double x = e->hu;
        if (u && tex->textured[cl[v]])
            x += e->hu_sd * (double)u[v];
        h[v] = (float)x;
    }
    rc = rsy__ct_volume_blur(hu, rsy__gen_ct_thickness_mm(r), r->ct.scanner.psf_fwhm_mm);
    if (rc != RSY_OK)
        goto fail;
    rc = reference_volume(r, fbp, h, ref->data, g);
    if (rc != RSY_OK)
        goto fail;

    for (int ch = 0; ch < r->ct.n_doses; ch++) {
        rc = simulate_channel(r, case_index, ch, fbp, h, noisy->data, g);
        if (rc != RSY_OK)
            goto fail;
        res->noise_sd_hu[ch] = noise_sd(cl, ref->data, noisy->data, g);
        rc = rsy_ct_volume_finish(noisy, 0.0, 0.0, &res->channels[ch]);
        if (rc != RSY_OK)
            goto fail;
    }
    rsy_volume_destroy(ref);
    rsy_volume_destroy(noisy);
    rsy_volume_destroy(hu);
    return RSY_OK;

fail:
    for (int ch = 0; ch < RSY_MAX_SEQUENCES; ch++) {
        rsy_volume_destroy(res->channels[ch]);
        res->channels[ch] = NULL;
    }
    rsy_volume_destroy(ref);
    rsy_volume_destroy(noisy);
    rsy_volume_destroy(hu);
    return rc;
}
