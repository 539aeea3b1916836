/*
 * sample.c: drawing the lesions of one case from the priors of a recipe and placing them in
 * the phantom's class map (DESIGN.md section 5).
 *
 * Order of random draws (fixed, so a seed gives the same lesions on every machine): for each
 * lesion type in recipe order, one uniform for presence, then the count; for each lesion the
 * diameter, the elongation, the orientation (three uniforms), the lobulation coefficients, the
 * compartment extents in compartment order, and then per placement attempt one host-voxel
 * index and three jitter uniforms.
 *
 * Placement rule host_tissue: the centre is a uniformly drawn voxel among those whose class is
 * one of the prior's hosts, jittered uniformly within that voxel. A position is accepted when
 *  (a) at least 90 % of 200 quasi-random points inside the lesion surface fall on voxels of
 *      the prior's allowed tissues (so a tumour stays inside the brain), and
 *  (b) its surface keeps a gap of at least min_separation_mm to the surface of every lesion
 *      placed before it ("between lesion surfaces", the prior's key). Two lesions whose
 *      bounding spheres (radius rsy__priors_surface_bound_mm) are that far apart pass at
 *      once. Closer pairs are tested on 512 surface points of each (a Fibonacci lattice of
 *      directions): every point of one must lie outside the other with a ray distance
 *      (rsy_lesion_radial) of at least the separation, and vice versa. The ray distance
 *      over-estimates the normal distance on oblique parts of the surface, so the true gap
 *      can be somewhat smaller than min_separation_mm there (about 0.8 of it for elongation
 *      1.5 and lobulation 0.15; tests/test_priors.c checks >= 0.5); the surfaces never cross
 *      and neither lesion contains the other. Margin shells (oedema) are left out on
 *      purpose: shells of neighbouring foci may touch and merge, as confluent peritumoural
 *      oedema does, and rasterisation gives shared voxels to the lower instance id.
 *      Between lesions of two types the larger of the two priors' separations applies.
 * The 90 % threshold and the 200 points are engineering choices (GK): enough points to resolve
 * 5 % of the volume, few enough to try thousands of positions per lesion in milliseconds.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core_internal.h"
#include "priors_internal.h"

#define PLACE_POINTS 200
#define SURFACE_POINTS 512
#define PLACE_ALLOWED_TENTHS 9 /* accept when >= 9/10 of the points are on allowed tissue */
#define MAX_INSTANCES 65535    /* instance ids are stored as uint16 */
#define LESION_REDRAWS 8       /* draws of size and shape per lesion before placement fails */

int rsy_lesion_compartment_offset(const rsy_recipe *r, int t)
{
    if (!r || t <= 0)
        return 0;
    if (t > r->n_lesion_types)
        t = r->n_lesion_types;
    int off = 0;
    for (int i = 0; i < t; i++)
        off += r->lesions[i].prior.n_compartments;
    return off;
}

int rsy_lesion_compartment_total(const rsy_recipe *r)
{
    return r ? rsy_lesion_compartment_offset(r, r->n_lesion_types) : 0;
}

void rsy_lesion_set_clear(rsy_lesion_set *s)
{
    if (!s)
        return;
    RSY_FREE(s->items);
    s->n = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Tissue sets                                                                                */
/* ---------------------------------------------------------------------------------------- */

static rsy_status tissue_set(const char *family, const rsy_prior *p, const char *what,
                             const char (*names)[RSY_NAME_MAX], int n,
                             unsigned char set[RSY__MAX_TISSUE_CLASSES])
{
    memset(set, 0, RSY__MAX_TISSUE_CLASSES);
    if (n > RSY_MAX_HOST_TISSUES)
        n = RSY_MAX_HOST_TISSUES;
    for (int i = 0; i < n; i++) {
        const int id = rsy_phantom_class_id(family, names[i]);
        if (id < 0 || id >= RSY__MAX_TISSUE_CLASSES) {
            rsy_log_error("prior '%s': %s tissue '%s' is not a class of phantom family '%s'",
                          p->name, what, names[i], family);
            return RSY_EINVAL;
        }
        set[id] = 1;
    }
    return RSY_OK;
}

rsy_status rsy__priors_tissues_build(const char *family, const rsy_prior *p,
                                     rsy__prior_tissues *out)
{
    const int n_classes = rsy_phantom_n_classes(family);
    if (n_classes <= 0 || n_classes > RSY__MAX_TISSUE_CLASSES) {
        rsy_log_error("prior '%s': unknown phantom family '%s'", p->name, family);
        return RSY_EINVAL;
    }
    if (p->n_compartments < 1 || p->n_compartments > RSY_MAX_COMPARTMENTS) {
        rsy_log_error("prior '%s': %d compartments, expected 1..%d", p->name,
                      p->n_compartments, RSY_MAX_COMPARTMENTS);
        return RSY_EINVAL;
    }
    memset(out, 0, sizeof *out);
    rsy_status rc = tissue_set(family, p, "host", p->hosts, p->n_hosts, out->hosts);
    if (rc == RSY_OK)
        rc = tissue_set(family, p, "allowed", p->allowed, p->n_allowed, out->allowed);
    for (int c = 0; rc == RSY_OK && c < p->n_compartments; c++) {
        const rsy_compartment *cp = &p->compartments[c];
        if (cp->n_confined > 0)
            rc = tissue_set(family, p, "confined_to", cp->confined_to, cp->n_confined,
                            out->permitted[c]);
        else
            memcpy(out->permitted[c], out->allowed, sizeof out->allowed);
        for (int k = 0; k < RSY__MAX_TISSUE_CLASSES; k++)
            out->any[k] |= out->permitted[c][k];
    }
    return rc;
}

/* Comma-separated list of @p n names into @p buf (truncated to @p size). */
static void join_names(const char (*names)[RSY_NAME_MAX], int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 1 < size; i++) {
        const int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Uniform choice among host voxels                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Cumulative host-voxel counts per image row (fixed j, k): picking the h-th host voxel is a
 * binary search over rows and a scan of one row, with (ny nz + 1) counters of memory. */
typedef struct host_index {
    const uint16_t *cls;
    int64_t nx, n_rows;
    uint64_t *cum; /* n_rows + 1 entries, cum[0] = 0 */
} host_index;

static void host_index_fill(host_index *h, const unsigned char *hosts)
{
    uint64_t total = 0;
    h->cum[0] = 0;
    for (int64_t row = 0; row < h->n_rows; row++) {
        const uint16_t *c = h->cls + row * h->nx;
        for (int64_t i = 0; i < h->nx; i++)
            total += c[i] < RSY__MAX_TISSUE_CLASSES && hosts[c[i]];
        h->cum[row + 1] = total;
    }
}

/* Linear voxel index of the host voxel of rank @p rank (0-based, < cum[n_rows]). */
static int64_t host_index_pick(const host_index *h, const unsigned char *hosts, uint64_t rank)
{
    int64_t lo = 0, hi = h->n_rows; /* invariant: cum[lo] <= rank < cum[hi] */
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (h->cum[mid] <= rank)
            lo = mid;
        else
            hi = mid;
    }
    uint64_t left = rank - h->cum[lo];
    const uint16_t *c = h->cls + lo * h->nx;
    for (int64_t i = 0; i < h->nx; i++) {
        if (c[i] < RSY__MAX_TISSUE_CLASSES && hosts[c[i]]) {
            if (left == 0)
                return lo * h->nx + i;
            left--;
        }
    }
    return lo * h->nx; /* unreachable when cum[] matches the map */
}

/* ---------------------------------------------------------------------------------------- */
/* Acceptance tests                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Radical inverse of @p i in @p base (van der Corput), the coordinates of the Halton sequence
 * (J. H. Halton, Numer. Math. 2, 1960, pp. 84-90). */
static double radical_inverse(unsigned i, unsigned base)
{
    double inv = 1.0 / base, f = inv, v = 0.0;
    while (i > 0) {
        v += f * (double)(i % base);
        i /= base;
        f *= inv;
    }
    return v;
}

/* PLACE_POINTS quasi-random points of the open unit ball: Halton points (bases 2, 3, 5) of
 * the cube [-1, 1]^3 that fall inside it, origin excluded. */
static void ball_points(double pts[PLACE_POINTS][3])
{
    int n = 0;
    for (unsigned i = 1; n < PLACE_POINTS; i++) {
        const double p[3] = {2.0 * radical_inverse(i, 2) - 1.0,
                             2.0 * radical_inverse(i, 3) - 1.0,
                             2.0 * radical_inverse(i, 5) - 1.0};
        const double r2 = p[0] * p[0] + p[1] * p[1] + p[2] * p[2];
        if (r2 < 1.0 && r2 > 0.0) {
            memcpy(pts[n], p, sizeof p);
            n++;
        }
    }
}

/* Class of the voxel nearest to world point @p xyz_mm, or -1 outside the volume. */
static int class_at(const rsy_volume *classes, const double xyz_mm[3])
{
    double ijk[3];
    rsy_geometry_world_to_voxel(&classes->geom, xyz_mm, ijk);
    int64_t v[3];
    for (int k = 0; k < 3; k++) {
        const double f = floor(ijk[k] + 0.5);
        if (!(f >= 0.0) || f >= (double)classes->geom.dims[k])
            return -1;
        v[k] = (int64_t)f;
    }
    const int64_t *d = classes->geom.dims;
    return ((const uint16_t *)classes->data)[(v[2] * d[1] + v[1]) * d[0] + v[0]];
}

/* Test (a): the ball points, mapped inside the lobulated ellipsoid of @p l (radial position
 * |p| times the surface radius in the direction of p), are >= 90 % on allowed tissue. */
static int allowed_enough(const rsy_lesion *l, const rsy_volume *classes,
                          const unsigned char *allowed, const double pts[PLACE_POINTS][3])
{
    const int max_misses = PLACE_POINTS - (PLACE_POINTS * PLACE_ALLOWED_TENTHS + 9) / 10;
    int misses = 0;
    for (int i = 0; i < PLACE_POINTS; i++) {
        const double *p = pts[i];
        const double r = sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
        const double n[3] = {p[0] / r, p[1] / r, p[2] / r};
        const double s = rsy__priors_sh_scale(l, n);
        double local[3], xyz[3];
        for (int k = 0; k < 3; k++)
            local[k] = l->semi_axes_mm[k] * s * p[k];
        for (int k = 0; k < 3; k++)
            xyz[k] = l->center_mm[k] + l->rotation[k][0] * local[0] +
                     l->rotation[k][1] * local[1] + l->rotation[k][2] * local[2];
        const int c = class_at(classes, xyz);
        if (c < 0 || c >= RSY__MAX_TISSUE_CLASSES || !allowed[c]) {
            if (++misses > max_misses)
                return 0;
        }
    }
    return 1;
}

/* Surface offsets (world mm, from the centre) of @p l along SURFACE_POINTS directions of a
 * Fibonacci lattice (golden-angle spiral; Gonzalez, Math. Geosci. 42, 2010, pp. 49-64). */
static void surface_offsets(const rsy_lesion *l, double (*off)[3])
{
    const double golden_angle = M_PI * (3.0 - sqrt(5.0));
    for (int i = 0; i < SURFACE_POINTS; i++) {
        const double z = 1.0 - (2.0 * i + 1.0) / SURFACE_POINTS;
        const double rxy = sqrt(1.0 - z * z), phi = golden_angle * i;
        const double n[3] = {rxy * cos(phi), rxy * sin(phi), z};
        const double s = rsy__priors_sh_scale(l, n);
        double local[3];
        for (int k = 0; k < 3; k++)
            local[k] = l->semi_axes_mm[k] * s * n[k];
        for (int k = 0; k < 3; k++)
            off[i][k] = l->rotation[k][0] * local[0] + l->rotation[k][1] * local[1] +
                        l->rotation[k][2] * local[2];
    }
}

/* 1 if every surface point of @p a (offsets @p a_off) lies outside @p b at a ray distance
 * >= @p sep_mm. */
static int surface_outside(const rsy_lesion *a, const double (*a_off)[3], const rsy_lesion *b,
                           double sep_mm)
{
    double m[3][3];
    rsy__priors_unit_frame(b, m);
    for (int i = 0; i < SURFACE_POINTS; i++) {
        double d[3], u[3], dist;
        for (int k = 0; k < 3; k++)
            d[k] = a->center_mm[k] + a_off[i][k] - b->center_mm[k];
        for (int k = 0; k < 3; k++)
            u[k] = m[k][0] * d[0] + m[k][1] * d[1] + m[k][2] * d[2];
        (void)rsy__priors_radial_unit(b, u, sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]),
                                      &dist);
        if (!(dist >= sep_mm))
            return 0;
    }
    return 1;
}

/* What the placement of one lesion needs to know about the case so far. */
typedef struct place_ctx {
    const rsy_recipe *recipe;
    const rsy_volume *classes;
    rsy_rng *rng;
    const rsy__prior_tissues *tissues;
    const host_index *hosts;
    const double (*pts)[3];
    const rsy_lesion *placed;    /* lesions placed so far ... */
    const double *bound_mm;      /* ... the radii of their bounding spheres ... */
    const double (*surface)[3];  /* ... and their surface offsets, SURFACE_POINTS each */
    int n_placed;
    const double (*own_surface)[3]; /* surface offsets of the lesion being placed */
} place_ctx;

/* Test (b) against every lesion placed before. */
static int separated(const place_ctx *ctx, const rsy_prior *p, const rsy_lesion *l,
                     double bound_mm)
{
    for (int i = 0; i < ctx->n_placed; i++) {
        const rsy_lesion *q = &ctx->placed[i];
        const double sep = fmax(p->min_separation_mm,
                                ctx->recipe->lesions[q->type_index].prior.min_separation_mm);
        const double need = bound_mm + ctx->bound_mm[i] + sep;
        double d2 = 0.0;
        for (int k = 0; k < 3; k++) {
            const double dk = l->center_mm[k] - q->center_mm[k];
            d2 += dk * dk;
        }
        if (d2 >= need * need)
            continue;
        if (!surface_outside(l, ctx->own_surface, q, sep) ||
            !surface_outside(q, ctx->surface + (size_t)i * SURFACE_POINTS, l, sep))
            return 0;
    }
    return 1;
}

static rsy_status place_host_tissue(const place_ctx *ctx, const rsy_prior *p, rsy_lesion *l,
                                    double bound_mm, int index_in_type, int count,
                                    int log_failure)
{
    const host_index *h = ctx->hosts;
    const uint64_t n_hosts = h->cum[h->n_rows];
    const int max_attempts = p->max_attempts > 0 ? p->max_attempts : 1;
    const int64_t nx = ctx->classes->geom.dims[0], ny = ctx->classes->geom.dims[1];
    int attempt = 0;
    if (n_hosts > 0) {
        for (attempt = 1; attempt <= max_attempts; attempt++) {
            const int64_t v = host_index_pick(h, ctx->tissues->hosts,
                                              rsy_rng_uniform_int(ctx->rng, n_hosts));
            double ijk[3] = {(double)(v % nx), (double)((v / nx) % ny), (double)(v / (nx * ny))};
            for (int k = 0; k < 3; k++)
                ijk[k] += rsy_rng_uniform(ctx->rng) - 0.5;
            rsy_geometry_voxel_to_world(&ctx->classes->geom, ijk, l->center_mm);
            if (separated(ctx, p, l, bound_mm) &&
                allowed_enough(l, ctx->classes, ctx->tissues->allowed, ctx->pts)) {
                l->attempts = attempt;
                return RSY_OK;
            }
        }
        attempt = max_attempts;
    }
    if (!log_failure && n_hosts > 0)
        return RSY_EPLACEMENT;
    char hosts[512], allowed[512];
    join_names(p->hosts, p->n_hosts, hosts, sizeof hosts);
    join_names(p->allowed, p->n_allowed, allowed, sizeof allowed);
    if (n_hosts == 0) {
        rsy_log_error("prior '%s': placement rule host_tissue cannot be met: no voxel of its "
                      "host tissues (%s) in the class map",
                      p->name, hosts);
        return RSY_EPLACEMENT;
    }
    rsy_log_error("prior '%s': placement rule host_tissue not met for lesion %d of %d "
                  "(last diameter %.1f mm) after %d attempts for each of %d draws of its size "
                  "and shape (hosts: %s; allowed: %s; %llu host voxels in the class map)",
                  p->name, index_in_type + 1, count, l->diameter_mm, attempt, LESION_REDRAWS,
                  hosts, allowed, (unsigned long long)n_hosts);
    return RSY_EPLACEMENT;
}

/* ---------------------------------------------------------------------------------------- */
/* Drawing one lesion                                                                         */
/* ---------------------------------------------------------------------------------------- */

static rsy_status draw_lesion(const rsy_prior *p, rsy_rng *rng, rsy_lesion *l)
{
    const double diameter_mm = rsy_dist_sample(&p->diameter_mm, rng);
    if (!(diameter_mm > 0.0) || !isfinite(diameter_mm)) {
        rsy_log_error("prior '%s': diameter_mm drew %g, expected a finite value > 0", p->name,
                      diameter_mm);
        return RSY_EINVAL;
    }
    const double elongation = rsy_dist_sample(&p->elongation, rng);
    if (!isfinite(elongation)) {
        rsy_log_error("prior '%s': shape.elongation drew %g, expected a finite value >= 1",
                      p->name, elongation);
        return RSY_EINVAL;
    }
    rsy__priors_shape_draw(p, diameter_mm, elongation, rng, l);
    for (int c = 0; c < p->n_compartments; c++) {
        const rsy_compartment *cp = &p->compartments[c];
        const double x = rsy_dist_sample(&cp->extent, rng);
        if (!isfinite(x)) {
            rsy_log_error("prior '%s': compartment '%s' extent drew %g", p->name, cp->name, x);
            return RSY_EINVAL;
        }
        /* Fractions stay in [0, 1], so radius-fraction compartments nest inside the surface;
         * margins are non-negative. */
        if (cp->extent_kind == RSY_EXTENT_RADIUS_FRACTION)
            l->extent[c] = fmin(1.0, fmax(0.0, x));
        else
            l->extent[c] = fmax(0.0, x);
    }
    return RSY_OK;
}

static rsy_status check_args(const rsy_recipe *r, const char *family,
                             const rsy_volume *classes, const rsy_rng *rng)
{
    if (!r || !family || !classes || !rng || !classes->data) {
        rsy_log_error("NULL argument");
        return RSY_EINVAL;
    }
    if (classes->dtype != RSY_DTYPE_UINT16) {
        rsy_log_error("class map has dtype %s, expected uint16", rsy_dtype_name(classes->dtype));
        return RSY_EINVAL;
    }
    if (r->n_lesion_types < 0 || r->n_lesion_types > RSY_MAX_LESION_TYPES) {
        rsy_log_error("recipe has %d lesion types, expected 0..%d", r->n_lesion_types,
                      RSY_MAX_LESION_TYPES);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

rsy_status rsy_lesions_sample(const rsy_recipe *r, const char *family,
                              const rsy_volume *classes, rsy_rng *rng, rsy_lesion_set *out)
{
    if (!out) {
        rsy_log_error("NULL output");
        return RSY_EINVAL;
    }
    out->n = 0;
    out->items = NULL;
    rsy_status rc = check_args(r, family, classes, rng);
    if (rc != RSY_OK)
        return rc;

    rsy_lesion *items = NULL;
    double *bound_mm = NULL;
    double(*surface)[3] = NULL;
    host_index hosts = {.cls = classes->data,
                        .nx = classes->geom.dims[0],
                        .n_rows = classes->geom.dims[1] * classes->geom.dims[2],
                        .cum = NULL};
    double pts[PLACE_POINTS][3];
    rsy__prior_tissues tissues;
    int n = 0;

    ball_points(pts);
    hosts.cum = malloc(((size_t)hosts.n_rows + 1) * sizeof *hosts.cum);
    if (!hosts.cum) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    for (int t = 0; t < r->n_lesion_types; t++) {
        const rsy_lesion_spec *spec = &r->lesions[t];
        const rsy_prior *p = &spec->prior;
        /* One uniform per type whatever the probability, so the stream layout is fixed. */
        if (!(rsy_rng_uniform(rng) < spec->probability))
            continue;
        const double count_drawn = rsy_dist_sample(&p->count, rng);
        if (!isfinite(count_drawn)) {
            rsy_log_error("prior '%s': count drew %g", p->name, count_drawn);
            rc = RSY_EINVAL;
            goto fail;
        }
        const double count_rounded = fmax(1.0, floor(count_drawn + 0.5));
        if (count_rounded > (double)(MAX_INSTANCES - n)) {
            rsy_log_error("prior '%s': %.0f lesions would exceed %d lesions per case", p->name,
                          count_rounded, MAX_INSTANCES);
            rc = RSY_EINVAL;
            goto fail;
        }
        const int count = (int)count_rounded;
        rc = rsy__priors_tissues_build(family, p, &tissues);
        if (rc != RSY_OK)
            goto fail;
        host_index_fill(&hosts, tissues.hosts);

        rsy_lesion *grown = realloc(items, (size_t)(n + count) * sizeof *items);
        if (!grown) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        items = grown;
        double *grown_bound = realloc(bound_mm, (size_t)(n + count) * sizeof *bound_mm);
        if (!grown_bound) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        bound_mm = grown_bound;
        double(*grown_surface)[3] =
            realloc(surface, (size_t)(n + count) * SURFACE_POINTS * sizeof *surface);
        if (!grown_surface) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        surface = grown_surface;

        for (int i = 0; i < count; i++) {
            rsy_lesion *l = &items[n];
            double bound = 0.0;
            int attempts_before = 0;
            /* A lesion whose drawn size and shape fit nowhere is drawn again from its prior,
             * up to LESION_REDRAWS times: the prior is thereby conditioned on fitting in this
             * anatomy beside the lesions already placed, as real lesions do. */
            for (int redraw = 0; redraw < LESION_REDRAWS; redraw++) {
                memset(l, 0, sizeof *l);
                l->instance_id = n + 1;
                l->type_index = t;
                rc = draw_lesion(p, rng, l);
                if (rc != RSY_OK)
                    goto fail;
                bound = rsy__priors_surface_bound_mm(l);
                double(*own)[3] = surface + (size_t)n * SURFACE_POINTS;
                surface_offsets(l, own);
                const place_ctx ctx = {.recipe = r,
                                       .classes = classes,
                                       .rng = rng,
                                       .tissues = &tissues,
                                       .hosts = &hosts,
                                       .pts = (const double(*)[3])pts,
                                       .placed = items,
                                       .bound_mm = bound_mm,
                                       .surface = (const double(*)[3])surface,
                                       .n_placed = n,
                                       .own_surface = (const double(*)[3])own};
                switch (p->rule) {
                case RSY_PLACE_HOST_TISSUE:
                    rc = place_host_tissue(&ctx, p, l, bound, i, count,
                                           redraw == LESION_REDRAWS - 1);
                    break;
                default:
                    rsy_log_error("prior '%s': unknown placement rule %d", p->name, (int)p->rule);
                    rc = RSY_EINVAL;
                    break;
                }
                if (rc != RSY_EPLACEMENT)
                    break;
                if (hosts.cum[hosts.n_rows] == 0)
                    break; /* no host voxel at all: redrawing the size cannot help */
                attempts_before += p->max_attempts > 0 ? p->max_attempts : 1;
            }
            if (rc != RSY_OK)
                goto fail;
            l->attempts += attempts_before;
            bound_mm[n] = bound;
            n++;
        }
    }
    free(hosts.cum);
    free(surface);
    free(bound_mm);
    out->n = n;
    out->items = items;
    return RSY_OK;

fail:
    free(hosts.cum);
    free(surface);
    free(bound_mm);
    free(items);
    return rc;
}
