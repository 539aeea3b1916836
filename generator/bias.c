/*
 * bias.c: the acquisition's multiplicative receive (bias) field and Rician magnitude noise.
 *
 * Bias field. BrainWeb's "20% INU" is a smooth multiplicative field spanning 0.90-1.10 over
 * the brain, and "40%" spans 0.80-1.20 [S47] (domain.md 2.3); SynthSeg builds its field as
 * the exponential of a smooth random function [S49]. Here the log-field is a sum of
 * RSY__BIAS_WAVES plane cosine waves with random directions (uniform on the sphere), random
 * phases, Gaussian amplitudes and wavelengths of about scale_mm (a factor 2^U(-1/2, 1/2)
 * around it). It is then mapped affinely so that the field spans exactly
 * [1 - amplitude, 1 + amplitude] over the head (the non-background voxels), and clamped to
 * that range outside it. The receive field belongs to the coil and the subject, not to the
 * sequence, so one field per case multiplies every channel.
 *
 * Rician noise. Noise is added to the real and imaginary channels before the magnitude is
 * taken: M = sqrt((A + n1)^2 + n2^2), n1, n2 ~ N(0, sigma^2); where A = 0 (air) the magnitude
 * is Rayleigh distributed [S47, S48].
 */
#include <math.h>
#include <stdlib.h>

#include "generator_internal.h"

#define RSY__BIAS_WAVES 6
#define RSY__TWO_PI 6.28318530717958647692

/* One plane wave of the log-field: phase(ijk) = ci·i + cj·j + ck·k + c0 (radians). */
typedef struct bias_wave {
    double amp;
    double c[3];
    double c0;
} bias_wave;

/* Draw a wave in world coordinates and express its phase in voxel indices through the
 * affine, so any rigid voxel-to-world mapping is handled. */
static void wave_draw(bias_wave *w, const rsy_geometry *g, double scale_mm, rsy_rng *rng)
{
    double d[3], norm = 0.0;
    do {
        norm = 0.0;
        for (int a = 0; a < 3; a++) {
            d[a] = rsy_rng_gaussian(rng, 1.0);
            norm += d[a] * d[a];
        }
    } while (norm < 1e-12);
    norm = sqrt(norm);
    double wavelength_mm = scale_mm * pow(2.0, rsy_rng_uniform_range(rng, -0.5, 0.5));
    double phase = rsy_rng_uniform_range(rng, 0.0, RSY__TWO_PI);
    w->amp = rsy_rng_gaussian(rng, 1.0);
    double k_per_mm[3];
    for (int a = 0; a < 3; a++)
        k_per_mm[a] = RSY__TWO_PI / wavelength_mm * d[a] / norm;
    /* phase(x) = k·x + phase, x = A·ijk + t. */
    for (int a = 0; a < 3; a++) {
        w->c[a] = 0.0;
        for (int b = 0; b < 3; b++)
            w->c[a] += k_per_mm[b] * g->affine[b][a];
    }
    w->c0 = phase;
    for (int b = 0; b < 3; b++)
        w->c0 += k_per_mm[b] * g->affine[b][3];
}

/* Integer class of voxel @p v of @p classes, whatever its integer dtype. */
static int class_at(const rsy_volume *classes, size_t v)
{
    switch (classes->dtype) {
    case RSY_DTYPE_UINT8:
        return ((const uint8_t *)classes->data)[v];
    case RSY_DTYPE_UINT16:
        return ((const uint16_t *)classes->data)[v];
    case RSY_DTYPE_INT16:
        return ((const int16_t *)classes->data)[v];
    case RSY_DTYPE_FLOAT32:
        return (int)((const float *)classes->data)[v];
    }
    return 0;
}

rsy_status rsy__gen_bias_field(const rsy_volume *classes, double amplitude, double scale_mm,
                               rsy_rng *rng, float *field)
{
    if (!(amplitude >= 0.0 && amplitude < 1.0) || !(scale_mm > 0.0))
        return RSY_EINVAL;
    if (classes->dtype == RSY_DTYPE_FLOAT32)
        return RSY_EINVAL;
    const rsy_geometry *g = &classes->geom;
    size_t nvox = rsy_geometry_nvox(g);
    int64_t nx = g->dims[0], ny = g->dims[1], nz = g->dims[2];

    /* The waves are drawn even when amplitude is 0, so the stream is consumed the same way
     * whatever the recipe's amplitude. */
    bias_wave waves[RSY__BIAS_WAVES];
    for (int w = 0; w < RSY__BIAS_WAVES; w++)
        wave_draw(&waves[w], g, scale_mm, rng);
    if (amplitude == 0.0) {
        for (size_t v = 0; v < nvox; v++)
            field[v] = 1.0f;
        return RSY_OK;
    }

    /* Log-field, evaluated voxel by voxel; each voxel depends only on its own index, so the
     * result is exact and independent of any evaluation order. */
    double gmin = INFINITY, gmax = -INFINITY;
    size_t v = 0;
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++, v++) {
                double s = 0.0;
                for (int w = 0; w < RSY__BIAS_WAVES; w++) {
                    const bias_wave *b = &waves[w];
                    s += b->amp * cos(b->c[0] * (double)i + b->c[1] * (double)j +
                                      b->c[2] * (double)k + b->c0);
                }
                field[v] = (float)s;
                if (class_at(classes, v) != 0) {
                    if (s < gmin)
                        gmin = s;
                    if (s > gmax)
                        gmax = s;
                }
            }

    /* Map [gmin, gmax] over the head to [ln(1-a), ln(1+a)] and exponentiate. An empty head
     * or a flat log-field gives a unit field. */
    double lo = log1p(-amplitude), hi = log1p(amplitude);
    double span = gmax - gmin;
    if (!(span > 1e-12)) {
        for (v = 0; v < nvox; v++)
            field[v] = 1.0f;
        return RSY_OK;
    }
    float fmin = (float)(1.0 - amplitude), fmax = (float)(1.0 + amplitude);
    for (v = 0; v < nvox; v++) {
        double t = ((double)field[v] - gmin) / span;
        float b = (float)exp(lo + t * (hi - lo));
        field[v] = b < fmin ? fmin : (b > fmax ? fmax : b);
    }
    return RSY_OK;
}

void rsy__gen_rician(float *img, size_t n, double sigma, rsy_rng *rng)
{
    if (!(sigma > 0.0))
        return;
    for (size_t v = 0; v < n; v++) {
        double re = (double)img[v] + rsy_rng_gaussian(rng, sigma);
        double im = rsy_rng_gaussian(rng, sigma);
        img[v] = (float)sqrt(re * re + im * im);
    }
}
