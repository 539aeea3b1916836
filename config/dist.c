/*
 * dist.c: scalar distributions (<dist> objects of recipes and priors): parsing with
 * validation and override merging, sampling, and the cumulative distribution function.
 *
 * Truncation. Lognormal, normal and poisson draws outside [min, max] are re-drawn, up to
 * MAX_REDRAWS times; only if all fail is the last draw clamped into [min, max]. Parsing
 * refuses bounds that hold less than MIN_TRUNCATED_MASS of the untruncated distribution, so
 * a clamp needs 1000 consecutive misses at probability <= 0.95 each (< 1e-22): samples follow
 * the truncated distribution that rsy_dist_cdf() describes.
 */
#include <math.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

#include "config_internal.h"

#define MAX_REDRAWS 1000
#define MIN_TRUNCATED_MASS 0.05
#define POISSON_MEAN_MAX 1e6

/* Valid values of the quantities priors and recipes draw. */
const rsy__dist_rules rsy__rules_count = {{1.0, 1000.0, 0, 0}, 1};
const rsy__dist_rules rsy__rules_diameter_mm = {{0.0, 1000.0, 1, 0}, 0};
const rsy__dist_rules rsy__rules_elongation = {{1.0, 10.0, 0, 0}, 0};
const rsy__dist_rules rsy__rules_fraction = {{0.0, 1.0, 1, 0}, 0};
const rsy__dist_rules rsy__rules_margin_mm = {{0.0, 200.0, 1, 0}, 0};
const rsy__dist_rules rsy__rules_lobes = {{1.0, 16.0, 0, 0}, 1};
const rsy__dist_rules rsy__rules_open_fraction = {{0.0, 1.0, 1, 1}, 0};
const rsy__dist_rules rsy__rules_wall_mm = {{0.0, 100.0, 1, 0}, 0};
const rsy__dist_rules rsy__rules_inclusion_mm = {{0.0, 200.0, 1, 0}, 0};
const rsy__dist_rules rsy__rules_line_mm = {{0.0, 50.0, 1, 0}, 0};
const rsy__dist_rules rsy__rules_cell_mm = {{0.0, 500.0, 1, 0}, 0};

static const char *const kind_names[] = {"fixed",       "uniform", "lognormal", "normal",
                                         "categorical", "poisson", NULL};

static const char *const keys_fixed[] = {"distribution", "value", NULL};
static const char *const keys_uniform[] = {"distribution", "min", "max", NULL};
static const char *const keys_lognormal[] = {"distribution", "median", "gsd", "min", "max", NULL};
static const char *const keys_normal[] = {"distribution", "mean", "sd", "min", "max", NULL};
static const char *const keys_categorical[] = {"distribution", "values", "weights", NULL};
static const char *const keys_poisson[] = {"distribution", "mean", "min", "max", NULL};

static const char *const *kind_keys(rsy_dist_kind k)
{
    switch (k) {
    case RSY_DIST_FIXED:
        return keys_fixed;
    case RSY_DIST_UNIFORM:
        return keys_uniform;
    case RSY_DIST_LOGNORMAL:
        return keys_lognormal;
    case RSY_DIST_NORMAL:
        return keys_normal;
    case RSY_DIST_CATEGORICAL:
        return keys_categorical;
    case RSY_DIST_POISSON:
        return keys_poisson;
    }
    return keys_fixed;
}

/* ---------------------------------------------------------------------------------------- */
/* CDF                                                                                        */
/* ---------------------------------------------------------------------------------------- */

static double std_normal_cdf(double z)
{
    if (z == -INFINITY)
        return 0.0;
    if (z == INFINITY)
        return 1.0;
    return gsl_cdf_ugaussian_P(z);
}

/* P(min + N <= x), N ~ Poisson(mean). */
static double poisson_shifted_cdf(const rsy_dist *d, double x)
{
    double k = floor(x - d->min);
    if (k < 0)
        return 0.0;
    if (d->mean <= 0.0 || k > 4e9)
        return 1.0;
    return gsl_cdf_poisson_P((unsigned int)k, d->mean);
}

/* Untruncated CDF of the lognormal, normal and poisson kinds; NAN when degenerate
 * (gsd = 1 or sd = 0), where the distribution is a point. */
static double untruncated_cdf(const rsy_dist *d, double x)
{
    switch (d->kind) {
    case RSY_DIST_LOGNORMAL:
        if (!(d->gsd > 1.0))
            return NAN;
        if (x <= 0.0)
            return 0.0;
        return std_normal_cdf((log(x) - log(d->median)) / log(d->gsd));
    case RSY_DIST_NORMAL:
        if (!(d->sd > 0.0))
            return NAN;
        return std_normal_cdf((x - d->mean) / d->sd);
    case RSY_DIST_POISSON:
        return poisson_shifted_cdf(d, x);
    case RSY_DIST_FIXED:
    case RSY_DIST_UNIFORM:
    case RSY_DIST_CATEGORICAL:
        break;
    }
    return NAN;
}

/* The single value of a degenerate truncated distribution (its point, clamped). */
static double degenerate_point(const rsy_dist *d)
{
    double p = d->kind == RSY_DIST_LOGNORMAL ? d->median : d->mean;
    return fmin(fmax(p, d->min), d->max);
}

/* Probability mass of [min, max] under the untruncated distribution. */
static double truncated_mass(const rsy_dist *d)
{
    if (d->kind == RSY_DIST_POISSON)
        return poisson_shifted_cdf(d, d->max);
    double hi = untruncated_cdf(d, d->max), lo = untruncated_cdf(d, d->min);
    if (isnan(hi) || isnan(lo)) {
        double p = d->kind == RSY_DIST_LOGNORMAL ? d->median : d->mean;
        return (p >= d->min && p <= d->max) ? 1.0 : 0.0;
    }
    return hi - lo;
}

double rsy_dist_cdf(const rsy_dist *d, double x)
{
    switch (d->kind) {
    case RSY_DIST_FIXED:
        return x >= d->value ? 1.0 : 0.0;
    case RSY_DIST_UNIFORM:
        if (!(d->max > d->min))
            return x >= d->min ? 1.0 : 0.0;
        return fmin(1.0, fmax(0.0, (x - d->min) / (d->max - d->min)));
    case RSY_DIST_CATEGORICAL: {
        double total = 0.0, below = 0.0;
        for (int i = 0; i < d->n_categories; i++) {
            total += d->weights[i];
            if (d->values[i] <= x)
                below += d->weights[i];
        }
        return total > 0.0 ? below / total : 0.0;
    }
    case RSY_DIST_POISSON: {
        if (x < d->min)
            return 0.0;
        if (x >= d->max)
            return 1.0;
        double mass = poisson_shifted_cdf(d, d->max);
        return mass > 0.0 ? fmin(1.0, poisson_shifted_cdf(d, x) / mass) : 1.0;
    }
    case RSY_DIST_LOGNORMAL:
    case RSY_DIST_NORMAL: {
        if (x < d->min)
            return 0.0;
        if (x >= d->max)
            return 1.0;
        double lo = untruncated_cdf(d, d->min), hi = untruncated_cdf(d, d->max);
        if (isnan(lo) || isnan(hi) || !(hi > lo))
            return x >= degenerate_point(d) ? 1.0 : 0.0;
        return fmin(1.0, fmax(0.0, (untruncated_cdf(d, x) - lo) / (hi - lo)));
    }
    }
    return 0.0;
}

void rsy__dist_bounds(const rsy_dist *d, double *lo, double *hi)
{
    switch (d->kind) {
    case RSY_DIST_FIXED:
        *lo = *hi = d->value;
        return;
    case RSY_DIST_CATEGORICAL:
        *lo = INFINITY;
        *hi = -INFINITY;
        for (int i = 0; i < d->n_categories; i++)
            if (d->weights[i] > 0.0) {
                *lo = fmin(*lo, d->values[i]);
                *hi = fmax(*hi, d->values[i]);
            }
        return;
    case RSY_DIST_UNIFORM:
    case RSY_DIST_LOGNORMAL:
    case RSY_DIST_NORMAL:
    case RSY_DIST_POISSON:
        break;
    }
    *lo = d->min;
    *hi = d->max;
}

/* ---------------------------------------------------------------------------------------- */
/* Sampling                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static double draw_untruncated(const rsy_dist *d, rsy_rng *rng)
{
    switch (d->kind) {
    case RSY_DIST_LOGNORMAL:
        return rsy_rng_lognormal(rng, d->median, d->gsd);
    case RSY_DIST_NORMAL:
        return d->mean + rsy_rng_gaussian(rng, d->sd);
    case RSY_DIST_POISSON:
        return d->min + (double)rsy_rng_poisson(rng, d->mean);
    case RSY_DIST_FIXED:
    case RSY_DIST_UNIFORM:
    case RSY_DIST_CATEGORICAL:
        break;
    }
    return d->value;
}

double rsy_dist_sample(const rsy_dist *d, rsy_rng *rng)
{
    switch (d->kind) {
    case RSY_DIST_FIXED:
        return d->value;
    case RSY_DIST_UNIFORM:
        return d->max > d->min ? rsy_rng_uniform_range(rng, d->min, d->max) : d->min;
    case RSY_DIST_CATEGORICAL:
        return d->values[rsy_rng_categorical(rng, d->weights, (size_t)d->n_categories)];
    case RSY_DIST_LOGNORMAL:
    case RSY_DIST_NORMAL:
    case RSY_DIST_POISSON: {
        double x = d->min;
        for (int i = 0; i < MAX_REDRAWS; i++) {
            x = draw_untruncated(d, rng);
            if (x >= d->min && x <= d->max)
                return x;
        }
        return fmin(fmax(x, d->min), d->max);
    }
    }
    return d->value;
}

/* ---------------------------------------------------------------------------------------- */
/* Parsing                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* A value the distribution can produce: in the domain, and an integer when required. */
static rsy_status value_item(const char *file, const cJSON *item, const char *kp,
                             const rsy__dist_rules *rules, double *out)
{
    double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
    if (!rsy__range_contains(&rules->domain, v) || (rules->integer && v != floor(v))) {
        char text[128];
        rsy__range_text(&rules->domain, rules->integer, text, sizeof text);
        return rsy__cfg_fail(file, kp, item, "expected %s", text);
    }
    *out = v;
    return RSY_OK;
}

/* A bound: in the closure of the domain (lognormal/normal/poisson), or in the domain itself
 * (uniform, whose bounds are values it can return). */
static rsy_status bound(const char *file, const cJSON *obj, const char *kp, const char *key,
                        int required, const rsy__dist_rules *rules, int closed, double *out)
{
    char ckp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item) {
        if (required)
            return rsy__cfg_fail(file, ckp, NULL, "required key missing");
        return RSY_OK;
    }
    rsy__dist_rules r = *rules;
    if (closed)
        r.domain.lo_open = r.domain.hi_open = 0;
    return value_item(file, item, ckp, &r, out);
}

static rsy_status number_array(const char *file, const cJSON *obj, const char *kp, const char *key,
                               const rsy__dist_rules *rules, double *vals, int *n_out)
{
    char ckp[RSY__KEYPATH_MAX], ekp[RSY__KEYPATH_MAX];
    rsy__kp_key(ckp, kp, key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 0;
    if (n < 1 || n > RSY_MAX_CATEGORIES)
        return rsy__cfg_fail(file, ckp, item, "expected an array of 1 to %d numbers",
                             RSY_MAX_CATEGORIES);
    int i = 0;
    for (const cJSON *e = item->child; e; e = e->next, i++) {
        rsy__kp_index(ekp, ckp, i);
        rsy_status rc = value_item(file, e, ekp, rules, &vals[i]);
        if (rc != RSY_OK)
            return rc;
    }
    *n_out = n;
    return RSY_OK;
}

static rsy_status parse_categorical(const char *file, const cJSON *obj, const char *kp,
                                    const rsy__dist_rules *rules, int merge, rsy_dist *d)
{
    static const rsy__dist_rules weight_rules = {{0.0, INFINITY, 0, 1}, 0};
    char ckp[RSY__KEYPATH_MAX];
    rsy_status rc;
    int n_values = d->n_categories, n_weights = d->n_categories;
    if (cJSON_GetObjectItemCaseSensitive(obj, "values") || !merge) {
        rc = number_array(file, obj, kp, "values", rules, d->values, &n_values);
        if (rc != RSY_OK)
            return rc;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, "weights") || !merge) {
        rc = number_array(file, obj, kp, "weights", &weight_rules, d->weights, &n_weights);
        if (rc != RSY_OK)
            return rc;
    }
    rsy__kp_key(ckp, kp, "weights");
    if (n_values != n_weights)
        return rsy__cfg_fail(file, ckp, NULL,
                             "expected one weight per value (%d values, %d weights)", n_values,
                             n_weights);
    double total = 0.0;
    for (int i = 0; i < n_weights; i++)
        total += d->weights[i];
    if (!(total > 0.0))
        return rsy__cfg_fail(file, ckp, NULL, "expected weights with a positive sum");
    for (int i = 0; i < n_values; i++)
        for (int j = 0; j < i; j++)
            if (d->values[i] == d->values[j])
                return rsy__cfg_fail(file, kp, NULL, "expected distinct values (%g repeats)",
                                     d->values[i]);
    d->n_categories = n_values;
    return RSY_OK;
}

/* Checks that involve several keys: bound order, integer bounds, and enough mass inside the
 * truncation bounds for re-drawing to work (see the file comment). */
static rsy_status check_bounds(const char *file, const char *kp, const rsy__dist_rules *rules,
                               const rsy_dist *d)
{
    if (!(d->min <= d->max))
        return rsy__cfg_fail(file, kp, NULL, "expected min <= max (min %g, max %g)", d->min,
                             d->max);
    if (d->kind == RSY_DIST_POISSON) {
        if (!isfinite(d->min))
            return rsy__cfg_fail(file, kp, NULL, "expected a finite min for a poisson");
        if (rules->integer &&
            (d->min != floor(d->min) || (isfinite(d->max) && d->max != floor(d->max))))
            return rsy__cfg_fail(file, kp, NULL, "expected integer min and max (min %g, max %g)",
                                 d->min, d->max);
    }
    if (d->kind == RSY_DIST_LOGNORMAL || d->kind == RSY_DIST_NORMAL ||
        d->kind == RSY_DIST_POISSON) {
        double mass = truncated_mass(d);
        if (!(mass >= MIN_TRUNCATED_MASS))
            return rsy__cfg_fail(file, kp, NULL,
                                 "expected [min, max] = [%g, %g] to hold at least %g%% of the "
                                 "%s distribution (it holds %.3g%%)",
                                 d->min, d->max, 100.0 * MIN_TRUNCATED_MASS, kind_names[d->kind],
                                 100.0 * mass);
    }
    return RSY_OK;
}

rsy_status rsy__cfg_dist(const char *file, const cJSON *item, const char *kp,
                         const rsy__dist_rules *rules, const rsy_dist *base, rsy_dist *out)
{
    static const rsy__range positive = {0.0, INFINITY, 1, 1};
    static const rsy__range at_least_one = {1.0, INFINITY, 0, 1};
    static const rsy__range non_negative = {0.0, INFINITY, 0, 1};
    static const rsy__range finite = {-INFINITY, INFINITY, 1, 1};
    static const rsy__range poisson_mean = {0.0, POISSON_MEAN_MAX, 0, 0};
    rsy_dist d;
    rsy_status rc;
    char ckp[RSY__KEYPATH_MAX];
    memset(&d, 0, sizeof d);

    if (cJSON_IsNumber(item)) {
        /* A bare number is a fixed value and replaces any base entirely. */
        d.kind = RSY_DIST_FIXED;
        rc = value_item(file, item, kp, rules, &d.value);
        if (rc != RSY_OK)
            return rc;
        d.min = d.max = d.value;
        *out = d;
        return RSY_OK;
    }
    if (!cJSON_IsObject(item))
        return rsy__cfg_fail(file, kp, item,
                             "expected a number or a distribution object "
                             "({\"distribution\": \"lognormal\", ...})");

    int kind;
    if (cJSON_GetObjectItemCaseSensitive(item, "distribution")) {
        rc = rsy__cfg_enum(file, item, kp, "distribution", 1, kind_names, &kind);
        if (rc != RSY_OK)
            return rc;
    } else if (base) {
        kind = (int)base->kind;
    } else {
        rsy__kp_key(ckp, kp, "distribution");
        return rsy__cfg_fail(file, ckp, NULL, "required key missing");
    }
    int merge = base && (int)base->kind == kind;
    if (merge) {
        d = *base;
    } else {
        d.kind = (rsy_dist_kind)kind;
        d.min = rules->domain.lo;
        d.max = rules->domain.hi;
        d.gsd = 1.0;
    }
    rc = rsy__cfg_check_object(file, kp, item, kind_keys(d.kind));
    if (rc != RSY_OK)
        return rc;
    if (rules->integer && d.kind != RSY_DIST_FIXED && d.kind != RSY_DIST_CATEGORICAL &&
        d.kind != RSY_DIST_POISSON) {
        rsy__kp_key(ckp, kp, "distribution");
        return rsy__cfg_fail(file, ckp, cJSON_GetObjectItemCaseSensitive(item, "distribution"),
                             "expected \"fixed\", \"categorical\" or \"poisson\" (the values "
                             "are integers)");
    }
    int req = !merge;
    switch (d.kind) {
    case RSY_DIST_FIXED: {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "value");
        rsy__kp_key(ckp, kp, "value");
        if (!v && req)
            return rsy__cfg_fail(file, ckp, NULL, "required key missing");
        if (v) {
            rc = value_item(file, v, ckp, rules, &d.value);
            if (rc != RSY_OK)
                return rc;
        }
        d.min = d.max = d.value;
        break;
    }
    case RSY_DIST_UNIFORM:
        if ((rc = bound(file, item, kp, "min", req, rules, 0, &d.min)) != RSY_OK ||
            (rc = bound(file, item, kp, "max", req, rules, 0, &d.max)) != RSY_OK)
            return rc;
        break;
    case RSY_DIST_LOGNORMAL:
        if ((rc = rsy__cfg_number(file, item, kp, "median", req, positive, &d.median)) != RSY_OK ||
            (rc = rsy__cfg_number(file, item, kp, "gsd", req, at_least_one, &d.gsd)) != RSY_OK ||
            (rc = bound(file, item, kp, "min", 0, rules, 1, &d.min)) != RSY_OK ||
            (rc = bound(file, item, kp, "max", 0, rules, 1, &d.max)) != RSY_OK)
            return rc;
        break;
    case RSY_DIST_NORMAL:
        if ((rc = rsy__cfg_number(file, item, kp, "mean", req, finite, &d.mean)) != RSY_OK ||
            (rc = rsy__cfg_number(file, item, kp, "sd", req, non_negative, &d.sd)) != RSY_OK ||
            (rc = bound(file, item, kp, "min", 0, rules, 1, &d.min)) != RSY_OK ||
            (rc = bound(file, item, kp, "max", 0, rules, 1, &d.max)) != RSY_OK)
            return rc;
        break;
    case RSY_DIST_POISSON:
        if ((rc = rsy__cfg_number(file, item, kp, "mean", req, poisson_mean, &d.mean)) != RSY_OK ||
            (rc = bound(file, item, kp, "min", 0, rules, 1, &d.min)) != RSY_OK ||
            (rc = bound(file, item, kp, "max", 0, rules, 1, &d.max)) != RSY_OK)
            return rc;
        break;
    case RSY_DIST_CATEGORICAL:
        rc = parse_categorical(file, item, kp, rules, merge, &d);
        if (rc != RSY_OK)
            return rc;
        break;
    }
    if (d.kind != RSY_DIST_CATEGORICAL) {
        rc = check_bounds(file, kp, rules, &d);
        if (rc != RSY_OK)
            return rc;
    }
    *out = d;
    return RSY_OK;
}
