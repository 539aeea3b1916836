/*
 * rng.c: reproducible random streams.
 *
 * Generator: xoshiro256** by D. Blackman and S. Vigna, "Scrambled linear pseudorandom number
 * generators", ACM Trans. Math. Softw. 47(4), 2021 (preprint 2018, arXiv:1805.01407), with the
 * reference code at https://prng.di.unimi.it/xoshiro256starstar.c (public domain). Its 256-bit
 * state is filled from the 64-bit seed by SplitMix64 (G. Steele, D. Lea, C. Flood, "Fast
 * splittable pseudorandom number generators", OOPSLA 2014; the seeding the xoshiro authors
 * recommend), so every 64-bit seed, 0 included, gives its own stream.
 *
 * It is wrapped as a gsl_rng_type so GSL's gsl_ran_* distributions run on it (the GSL manual,
 * "Random Number Generator Algorithms": a type is a name, max, min, state size and set/get/
 * get_double functions). GSL keeps no global state for this, so streams are thread-safe as long
 * as each one is used by one thread at a time.
 */
#include <math.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_version.h>

#include "core_internal.h"

struct rsy_rng {
    gsl_rng *gsl;
};

typedef struct {
    uint64_t s[4];
} xoshiro_state;

/* 2^64 / golden ratio: the SplitMix64 increment (Steele et al. 2014). */
#define SPLITMIX64_GAMMA UINT64_C(0x9e3779b97f4a7c15)

/* SplitMix64 finaliser (Steele et al. 2014, "mix64" variant 13 of D. Stafford's
 * "Better bit mixing", 2011). A bijection of the 64-bit integers. */
static uint64_t splitmix64_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t splitmix64_next(uint64_t *x)
{
    *x += SPLITMIX64_GAMMA;
    return splitmix64_mix(*x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** step, transcribed from the reference code. */
static uint64_t xoshiro_next(xoshiro_state *st)
{
    uint64_t *s = st->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Four consecutive SplitMix64 outputs. SplitMix64 output is a bijection of its counter, so at
 * most one of the four words is zero and the forbidden all-zero state cannot occur; distinct
 * seeds give distinct first words, hence distinct states. */
static void xoshiro_seed(xoshiro_state *st, uint64_t seed)
{
    uint64_t x = seed;
    for (int k = 0; k < 4; k++)
        st->s[k] = splitmix64_next(&x);
}

/* gsl_rng_type callbacks. GSL passes an unsigned long seed; on LP64 it carries all 64 bits. */
static void gsl_xoshiro_set(void *state, unsigned long seed)
{
    xoshiro_seed(state, (uint64_t)seed);
}

/* The top 32 bits are the best bits of xoshiro256** (reference code comments). */
static unsigned long gsl_xoshiro_get(void *state)
{
    return (unsigned long)(xoshiro_next(state) >> 32);
}

/* 53 random bits scaled into [0, 1), as the reference code suggests for doubles. */
static double gsl_xoshiro_get_double(void *state)
{
    return (double)(xoshiro_next(state) >> 11) * 0x1.0p-53;
}

static const gsl_rng_type xoshiro_gsl_type = {
    "rsy_xoshiro256ss",    /* name */
    0xffffffffUL,          /* max value of get() */
    0,                     /* min value of get() */
    sizeof(xoshiro_state), /* state size */
    gsl_xoshiro_set,
    gsl_xoshiro_get,
    gsl_xoshiro_get_double,
};

/*
 * Stream seed of (dataset seed, case index, stage): three rounds of the SplitMix64 finaliser,
 *   h1 = mix(seed + G), h2 = mix(h1 ^ (case + 2G)), h3 = mix(h2 ^ (stage + 3G)),
 * with G the SplitMix64 gamma. Every round is a bijection of the value it mixes in, so with the
 * other two inputs fixed, distinct values of any one input give distinct seeds (no collision
 * among the cases of a dataset or among the stages of a case). Collisions between unrelated
 * triples behave like those of a random 64-bit function (about n^2 / 2^65 for n streams).
 */
uint64_t rsy_seed_derive(uint64_t dataset_seed, uint64_t case_index, uint32_t stage)
{
    uint64_t h = splitmix64_mix(dataset_seed + SPLITMIX64_GAMMA);
    h = splitmix64_mix(h ^ (case_index + 2 * SPLITMIX64_GAMMA));
    h = splitmix64_mix(h ^ ((uint64_t)stage + 3 * SPLITMIX64_GAMMA));
    return h;
}

rsy_status rsy_rng_create(rsy_rng **out, uint64_t seed)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    rsy_rng *r = calloc(1, sizeof *r);
    if (!r)
        goto fail;
    r->gsl = gsl_rng_alloc(&xoshiro_gsl_type);
    if (!r->gsl)
        goto fail;
    /* gsl_rng_alloc seeded with gsl_rng_default_seed (a global GSL variable); re-seed from our
     * full 64-bit seed so the stream never depends on it. */
    xoshiro_seed(r->gsl->state, seed);
    *out = r;
    return RSY_OK;

fail:
    rsy_log_error("cannot allocate a random stream");
    rsy_rng_destroy(r);
    return RSY_ENOMEM;
}

rsy_status rsy_rng_create_stream(rsy_rng **out, uint64_t dataset_seed, uint64_t case_index,
                                 uint32_t stage)
{
    return rsy_rng_create(out, rsy_seed_derive(dataset_seed, case_index, stage));
}

void rsy_rng_destroy(rsy_rng *r)
{
    if (!r)
        return;
    if (r->gsl)
        gsl_rng_free(r->gsl);
    free(r);
}

const char *rsy_rng_description(void)
{
    return "xoshiro256** (SplitMix64 seeding) via GSL " GSL_VERSION;
}

gsl_rng *rsy__rng_gsl(rsy_rng *r)
{
    return r->gsl;
}

uint64_t rsy_rng_u64(rsy_rng *r)
{
    return xoshiro_next(r->gsl->state);
}

double rsy_rng_uniform(rsy_rng *r)
{
    return gsl_xoshiro_get_double(r->gsl->state);
}

double rsy_rng_uniform_pos(rsy_rng *r)
{
    double u;
    do {
        u = gsl_xoshiro_get_double(r->gsl->state);
    } while (u == 0.0);
    return u;
}

double rsy_rng_uniform_range(rsy_rng *r, double a, double b)
{
    return a + (b - a) * rsy_rng_uniform(r);
}

/* Rejection sampling: values below 2^64 mod n are rejected, so the accepted range is a whole
 * number of copies of [0, n) and x mod n is exactly uniform (the method of OpenBSD's
 * arc4random_uniform). At most half the draws are rejected, for n just above 2^63. */
uint64_t rsy_rng_uniform_int(rsy_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    const uint64_t threshold = (0 - n) % n; /* 2^64 mod n */
    uint64_t x;
    do {
        x = rsy_rng_u64(r);
    } while (x < threshold);
    return x % n;
}

double rsy_rng_gaussian(rsy_rng *r, double sd)
{
    return gsl_ran_gaussian_ziggurat(r->gsl, sd);
}

/* Invalid parameters (median <= 0, gsd < 1, non-finite) give NaN, which callers' checks on
 * sampled values catch; config validation rejects such parameters before sampling. */
double rsy_rng_lognormal(rsy_rng *r, double median, double gsd)
{
    if (!(median > 0.0) || !(gsd >= 1.0) || !isfinite(median) || !isfinite(gsd))
        return NAN;
    return gsl_ran_lognormal(r->gsl, log(median), log(gsd));
}

/* A negative or non-finite mean gives 0 draws. */
unsigned int rsy_rng_poisson(rsy_rng *r, double mu)
{
    if (!(mu > 0.0) || !isfinite(mu))
        return 0;
    return gsl_ran_poisson(r->gsl, mu);
}

/* Non-positive or non-finite parameters give NaN. */
double rsy_rng_gamma(rsy_rng *r, double a, double b)
{
    if (!(a > 0.0) || !(b > 0.0) || !isfinite(a) || !isfinite(b))
        return NAN;
    return gsl_ran_gamma(r->gsl, a, b);
}

/* Inverse of the cumulative weights. Invalid weights (a negative or non-finite weight, or none
 * positive) give @p n, an out-of-range index, and an error in the log. The returned index
 * always has a positive weight. */
size_t rsy_rng_categorical(rsy_rng *r, const double *weights, size_t n)
{
    double total = 0.0;
    size_t last_positive = n;
    for (size_t i = 0; i < n; i++) {
        if (!(weights[i] >= 0.0) || !isfinite(weights[i])) {
            rsy_log_error("weight %zu is %g (need finite and >= 0)", i, weights[i]);
            return n;
        }
        if (weights[i] > 0.0)
            last_positive = i;
        total += weights[i];
    }
    if (last_positive == n) {
        rsy_log_error("no positive weight among %zu", n);
        return n;
    }
    double u = rsy_rng_uniform(r) * total;
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += weights[i];
        if (weights[i] > 0.0 && u < cum)
            return i;
    }
    /* Rounding can leave u at or above the last partial sum. */
    return last_positive;
}
