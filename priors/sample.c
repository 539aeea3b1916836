/*
 * sample.c: drawing the lesions of one case from the priors of a recipe and placing them in
 * the phantom's class map (DESIGN.md section 5).
 *
 * Order of random draws (fixed, so a seed gives the same lesions on every machine): for each
 * lesion type in recipe order, one uniform for presence, then the count; then for each lesion
 * (all of the type's lesions are drawn before any is placed) the diameter, the elongation, the
 * flatness, the orientation (three uniforms), the lobulation coefficients, the lesion seed (one
 * u64: roughness, inclusions, network), the lobe count and per lobe a rotation (three uniforms) and
 * a size (one Gaussian), the compartment extents in compartment order (a network's line thickness
 * then its cell size), the mass-effect strength when the prior has one; then, placing the lesions
 * by decreasing diameter (sample_case), for each lesion, for a prior with unequal zone weights one
 * uniform for its zone (placement.c; not on the redraws that keep the diameter, see sample_one),
 * and per placement attempt one uniform for the anchor voxel, three of jitter and, for the oriented
 * rules and extra_axial, one for the roll (placement.c), and the draws of its redraws (sample_one).
 *
 * Placement: the anchor is drawn among the candidates of the prior's rule (placement.c: hosts,
 * the distance window, the zone weights). A position is accepted when
 *  (a) at least 90 % of 200 quasi-random points inside the lesion surface (every lobe) fall on
 *      voxels of the prior's allowed tissues (so a tumour stays inside the brain), and
 *  (b) its surface keeps a gap of at least min_separation_mm to the surface of every lesion
 *      placed before it ("between lesion surfaces", the prior's key). Two lesions whose
 *      bounding spheres are that far apart pass at once. Closer pairs are tested on 512
 *      surface points of each (a Fibonacci lattice of directions, shared among the lobes):
 *      every point of one must lie outside the other with a ray distance of at least the
 *      separation, and vice versa. The ray distance over-estimates the normal distance on
 *      oblique parts of the surface, so the true gap can be somewhat smaller than
 *      min_separation_mm there (about 0.8 of it for elongation 1.5 and lobulation 0.15;
 *      tests/test_priors.c checks >= 0.5); the surfaces never cross and neither lesion
 *      contains the other. Margin shells (oedema) are left out on purpose: shells of
 *      neighbouring foci may touch and merge, as confluent peritumoural oedema does, and
 *      rasterisation gives shared voxels to the lower instance id. Between lesions of two types
 *      the larger of the two priors' separations applies.
 * The 90 % threshold and the 200 points are engineering choices (GK): enough points to resolve
 * 5 % of the volume, few enough to try thousands of positions per lesion in milliseconds.
 *
 * Mass effect: after each lesion with mass effect is placed, its push (mass_effect.c) deforms
 * the anatomy and moves the centres (and anchors) of the lesions placed before; later lesions
 * are placed in the deformed anatomy (the placer of the type being placed is rebuilt).
 * rsy_lesions_sample() leaves the caller's map untouched: the pushed boxes are kept as an
 * overlay, and a working copy of the map is made only when a lesion is placed after a push;
 * rsy_lesions_rasterise() then replays the pushes, in instance order, on the map it is given.
 * rsy_lesions_sample_deform() pushes the caller's map in place (no copy) and marks the lesions
 * mass_applied, so rasterisation does not push again. Both draw the same numbers.
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
#define LESION_REDRAWS                                                                             \
    8 /* draws of the shape per diameter, and of the diameter after                                \
         the first, before placement fails (sample_one) */

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

void rsy__push_cache_free(rsy__push_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        free(c->e[i].after);
    free(c->e);
    free(c);
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
        rsy_log_error("prior '%s': %d compartments, expected 1..%d", p->name, p->n_compartments,
                      RSY_MAX_COMPARTMENTS);
        return RSY_EINVAL;
    }
    memset(out, 0, sizeof *out);
    rsy_status rc = tissue_set(family, p, "host", p->hosts, p->n_hosts, out->hosts);
    if (rc == RSY_OK)
        rc = tissue_set(family, p, "allowed", p->allowed, p->n_allowed, out->allowed);
    if (rc == RSY_OK)
        rc = tissue_set(family, p, "reference", p->reference, p->n_reference, out->reference);
    if (rc == RSY_OK && p->mass_effect.enabled)
        rc = tissue_set(family, p, "mass_effect fixed", p->mass_effect.fixed,
                        p->mass_effect.n_fixed, out->fixed);
    /* subependymal: the lesion protrudes into the ventricles, which it may replace */
    if (rc == RSY_OK && p->rule == RSY_PLACE_SUBEPENDYMAL)
        for (int k = 0; k < RSY__MAX_TISSUE_CLASSES; k++)
            out->allowed[k] |= out->reference[k];
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
        const double p[3] = {2.0 * radical_inverse(i, 2) - 1.0, 2.0 * radical_inverse(i, 3) - 1.0,
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

/* World offset (from the lesion centre) of the point with unit-frame coordinates @p u of lobe
 * @p k of @p l. */
static void lobe_point(const rsy_lesion *l, int k, const double u[3], double out[3])
{
    double local[3];
    if (l->n_lobes > 1) {
        double t[3];
        for (int a = 0; a < 3; a++)
            t[a] = l->semi_axes_mm[a] * l->lobe_scale[k] * u[a];
        for (int a = 0; a < 3; a++)
            local[a] = l->lobe_offset_mm[k][a] + l->lobe_rotation[k][a][0] * t[0] +
                       l->lobe_rotation[k][a][1] * t[1] + l->lobe_rotation[k][a][2] * t[2];
    } else {
        for (int a = 0; a < 3; a++)
            local[a] = l->semi_axes_mm[a] * u[a];
    }
    for (int a = 0; a < 3; a++)
        out[a] = l->rotation[a][0] * local[0] + l->rotation[a][1] * local[1] +
                 l->rotation[a][2] * local[2];
}

/* What placement attempts of one lesion share: its surface factor s(n) (shape.c) in the
 * directions of the ball points and of the surface lattice, which do not depend on where the
 * lesion is or how it is turned, and its surface offsets for the rotation they were made
 * with. */
typedef struct own_cache {
    double ball_scale[PLACE_POINTS];
    double surface_scale[SURFACE_POINTS];
    double rotation[3][3]; /* of the offsets in place_ctx.own_surface */
    int offsets_valid;
} own_cache;

static void surface_direction(int i, double n[3]);

static void own_cache_init(own_cache *oc, const rsy__shape *sh, const double pts[PLACE_POINTS][3])
{
    for (int i = 0; i < PLACE_POINTS; i++) {
        const double *p = pts[i];
        const double r = sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
        const double n[3] = {p[0] / r, p[1] / r, p[2] / r};
        oc->ball_scale[i] = rsy__shape_scale(sh, n);
    }
    for (int i = 0; i < SURFACE_POINTS; i++) {
        double n[3];
        surface_direction(i, n);
        oc->surface_scale[i] = rsy__shape_scale(sh, n);
    }
    oc->offsets_valid = 0;
}

/* Test (a): the ball points, mapped inside each lobe (radial position |p| times the surface
 * radius in the direction of p, @p scale), are >= 90 % on allowed tissue. */
static int allowed_enough(const rsy_lesion *l, const rsy__shape *sh, const rsy_volume *classes,
                          const unsigned char *allowed, const double pts[PLACE_POINTS][3],
                          const double *scale)
{
    const int max_misses = PLACE_POINTS - (PLACE_POINTS * PLACE_ALLOWED_TENTHS + 9) / 10;
    const int n_lobes = sh->n_lobes;
    int misses = 0;
    for (int i = 0; i < PLACE_POINTS; i++) {
        const double *p = pts[i];
        const double s = scale[i];
        const double u[3] = {s * p[0], s * p[1], s * p[2]};
        double off[3], xyz[3];
        lobe_point(l, i % n_lobes, u, off);
        for (int k = 0; k < 3; k++)
            xyz[k] = l->center_mm[k] + off[k];
        const int c = class_at(classes, xyz);
        if (c < 0 || c >= RSY__MAX_TISSUE_CLASSES || !allowed[c]) {
            if (++misses > max_misses)
                return 0;
        }
    }
    return 1;
}

/* Direction @p i of the SURFACE_POINTS directions of a Fibonacci lattice (golden-angle
 * spiral; Gonzalez, Math. Geosci. 42, 2010, pp. 49-64). */
static void surface_direction(int i, double n[3])
{
    const double golden_angle = M_PI * (3.0 - sqrt(5.0));
    const double z = 1.0 - (2.0 * i + 1.0) / SURFACE_POINTS;
    const double rxy = sqrt(1.0 - z * z), phi = golden_angle * i;
    n[0] = rxy * cos(phi);
    n[1] = rxy * sin(phi);
    n[2] = z;
}

/* Surface offsets (world mm, from the centre) of @p l along the SURFACE_POINTS lattice
 * directions, the directions dealt out among the lobes; @p scale: s(n) in those directions
 * (NULL: evaluated here). */
static void surface_offsets_scaled(const rsy_lesion *l, const rsy__shape *sh, const double *scale,
                                   double (*off)[3])
{
    for (int i = 0; i < SURFACE_POINTS; i++) {
        double n[3];
        surface_direction(i, n);
        const double s = scale ? scale[i] : rsy__shape_scale(sh, n);
        const double u[3] = {s * n[0], s * n[1], s * n[2]};
        lobe_point(l, i % sh->n_lobes, u, off[i]);
    }
}

static void surface_offsets(const rsy_lesion *l, const rsy__shape *sh, double (*off)[3])
{
    surface_offsets_scaled(l, sh, NULL, off);
}

/* 1 if every surface point of @p a (offsets @p a_off) lies outside @p b at a ray distance
 * >= @p sep_mm. */
static int surface_outside(const rsy_lesion *a, const double (*a_off)[3], const rsy__shape *b,
                           double sep_mm)
{
    for (int i = 0; i < SURFACE_POINTS; i++) {
        double x[3], dist;
        for (int k = 0; k < 3; k++)
            x[k] = a->center_mm[k] + a_off[i][k];
        (void)rsy__shape_radial(b, x, &dist);
        if (!(dist >= sep_mm))
            return 0;
    }
    return 1;
}

/* What the placement of one lesion needs to know about the case so far. */
typedef struct place_ctx {
    const rsy_recipe *recipe;
    const rsy_volume *classes;
    const rsy__prior_tissues *tissues;
    const double (*pts)[3];
    const rsy_lesion *placed;   /* lesions placed so far ... */
    const rsy__shape *shapes;   /* ... their evaluators (sharing their tables) ... */
    const double (*surface)[3]; /* ... and their surface offsets, SURFACE_POINTS each */
    int n_placed;
    double (*own_surface)[3]; /* surface offsets of the lesion being placed */
} place_ctx;

/* Test (b) against every lesion placed before; @p oc: the lesion's cached factors and
 * offsets (the offsets are made again when the attempt turned the lesion). */
static int separated(const place_ctx *ctx, const rsy_prior *p, const rsy_lesion *l,
                     const rsy__shape *sh, own_cache *oc)
{
    int own_done = oc->offsets_valid && memcmp(oc->rotation, l->rotation, sizeof oc->rotation) == 0;
    for (int i = 0; i < ctx->n_placed; i++) {
        const rsy_lesion *q = &ctx->placed[i];
        const double sep =
            fmax(p->min_separation_mm, ctx->recipe->lesions[q->type_index].prior.min_separation_mm);
        const double need = sh->bound_mm + ctx->shapes[i].bound_mm + sep;
        double d2 = 0.0;
        for (int k = 0; k < 3; k++) {
            const double dk = l->center_mm[k] - q->center_mm[k];
            d2 += dk * dk;
        }
        if (d2 >= need * need)
            continue;
        if (!own_done) {
            surface_offsets_scaled(l, sh, oc->surface_scale, ctx->own_surface);
            memcpy(oc->rotation, l->rotation, sizeof oc->rotation);
            oc->offsets_valid = own_done = 1;
        }
        if (!surface_outside(l, (const double(*)[3])ctx->own_surface, &ctx->shapes[i], sep) ||
            !surface_outside(q, ctx->surface + (size_t)i * SURFACE_POINTS, sh, sep))
            return 0;
    }
    return 1;
}

static void log_failure(const rsy_prior *p, const rsy_lesion *l, int index_in_type, int count,
                        int attempts, uint64_t n_candidates)
{
    char hosts[512], allowed[512], reference[512], window[640] = "";
    join_names(p->hosts, p->n_hosts, hosts, sizeof hosts);
    join_names(p->allowed, p->n_allowed, allowed, sizeof allowed);
    join_names(p->reference, p->n_reference, reference, sizeof reference);
    const char *rule = rsy_placement_rule_name(p->rule);
    if (p->rule != RSY_PLACE_HOST_TISSUE)
        snprintf(window, sizeof window, " within %g-%g mm of %s", p->min_distance_mm,
                 p->max_distance_mm, reference);
    if (n_candidates == 0) {
        rsy_log_error("prior '%s': placement rule %s cannot be met: no voxel of its host "
                      "tissues (%s)%s in the class map",
                      p->name, rule, hosts, window);
        return;
    }
    rsy_log_error("prior '%s': placement rule %s not met for lesion %d of %d (last diameter "
                  "%.1f mm) after %d attempts for each of %d draws of its shape and size "
                  "(hosts: %s%s; allowed: %s; %llu candidate voxels in the class map)",
                  p->name, rule, index_in_type + 1, count, l->diameter_mm, attempts,
                  2 * LESION_REDRAWS, hosts, window, allowed, (unsigned long long)n_candidates);
}

/* Place @p l (evaluator @p sh) by its prior's rule, in zone @p zone (-1: any): RSY_OK or
 * RSY_EPLACEMENT. */
static rsy_status place_lesion(const place_ctx *ctx, const rsy__placer *pl, rsy_rng *rng,
                               const rsy_prior *p, int zone, rsy_lesion *l, rsy__shape *sh)
{
    const int max_attempts = p->max_attempts > 0 ? p->max_attempts : 1;
    if (rsy__placer_candidates(pl) == 0)
        return RSY_EPLACEMENT;
    own_cache oc;
    own_cache_init(&oc, sh, ctx->pts);
    for (int attempt = 1; attempt <= max_attempts; attempt++) {
        if (!rsy__placer_draw(pl, rng, zone, l, sh))
            continue;
        /* the cheap test first: 200 class lookups reject most attempts of a large lesion,
         * before up to 2 x 512 surface evaluations per neighbour (neither draws a number, so
         * the order does not change the lesions) */
        if (allowed_enough(l, sh, ctx->classes, ctx->tissues->allowed, ctx->pts, oc.ball_scale) &&
            separated(ctx, p, l, sh, &oc)) {
            l->attempts = attempt;
            return RSY_OK;
        }
    }
    return RSY_EPLACEMENT;
}

/* ---------------------------------------------------------------------------------------- */
/* Drawing one lesion                                                                         */
/* ---------------------------------------------------------------------------------------- */

static rsy_status finite_draw(const rsy_prior *p, const char *what, const rsy_dist *d, rsy_rng *rng,
                              double *out)
{
    *out = rsy_dist_sample(d, rng);
    if (!isfinite(*out)) {
        rsy_log_error("prior '%s': %s drew %g, expected a finite value", p->name, what, *out);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

/* Draw lesion @p l of prior @p p. @p keep_diameter_mm > 0: the diameter is still drawn (the
 * stream keeps its layout) but this one is used (a redraw of the shape of a lesion whose size
 * did not fit, see sample_one). */
static rsy_status draw_lesion(const rsy_prior *p, rsy_rng *rng, double keep_diameter_mm,
                              rsy_lesion *l)
{
    double diameter_mm, elongation, flatness;
    rsy_status rc = finite_draw(p, "diameter_mm", &p->diameter_mm, rng, &diameter_mm);
    if (rc == RSY_OK && keep_diameter_mm > 0.0)
        diameter_mm = keep_diameter_mm;
    if (rc == RSY_OK && !(diameter_mm > 0.0)) {
        rsy_log_error("prior '%s': diameter_mm drew %g, expected a finite value > 0", p->name,
                      diameter_mm);
        rc = RSY_EINVAL;
    }
    if (rc == RSY_OK)
        rc = finite_draw(p, "shape.elongation", &p->elongation, rng, &elongation);
    if (rc == RSY_OK)
        rc = finite_draw(p, "shape.flatness", &p->flatness, rng, &flatness);
    if (rc != RSY_OK)
        return rc;
    rsy__priors_shape_draw(p, diameter_mm, elongation, flatness, rng, l);
    for (int c = 0; c < p->n_compartments; c++) {
        const rsy_compartment *cp = &p->compartments[c];
        double x;
        rc = finite_draw(p, cp->name, &cp->extent, rng, &x);
        if (rc != RSY_OK)
            return rc;
        /* Fractions stay in [0, 1], so radius-fraction compartments nest inside the surface;
         * thicknesses are non-negative. */
        if (cp->extent_kind == RSY_EXTENT_RADIUS_FRACTION ||
            cp->extent_kind == RSY_EXTENT_INCLUSIONS)
            l->extent[c] = fmin(1.0, fmax(0.0, x));
        else
            l->extent[c] = fmax(0.0, x);
        if (cp->extent_kind == RSY_EXTENT_NETWORK) {
            rc = finite_draw(p, "network.cell_mm", &cp->cell_mm, rng, &x);
            if (rc != RSY_OK)
                return rc;
            l->cell_mm[c] = fmax(0.0, x);
        }
        /* Presence: a compartment absent from this lesion has extent 0, so it holds no voxel
         * (its voxels go to the compartment around it; its inclusions and networks, which lie
         * only in their parent's voxels, vanish with it). The draw is made only for
         * compartments that may be absent, so priors without "probability" keep their
         * streams. */
        if (cp->absent_probability > 0.0 && rsy_rng_uniform(rng) < cp->absent_probability)
            l->extent[c] = 0.0;
    }
    if (p->mass_effect.enabled) {
        double s;
        rc = finite_draw(p, "mass_effect.strength", &p->mass_effect.strength, rng, &s);
        if (rc != RSY_OK)
            return rc;
        l->mass_strength = fmin(0.95, fmax(0.0, s));
    }
    return RSY_OK;
}

static rsy_status check_args(const rsy_recipe *r, const char *family, const rsy_volume *classes,
                             const rsy_rng *rng)
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

/* Growable per-case arrays: the lesions, their evaluators and surface offsets. */
typedef struct case_state {
    rsy_lesion *items;
    rsy__shape *shapes;
    double (*surface)[3];
    int n, cap;
} case_state;

static rsy_status state_reserve(case_state *st, int more)
{
    if (st->n + more <= st->cap)
        return RSY_OK;
    const int cap = st->n + more;
    rsy_lesion *items = realloc(st->items, (size_t)cap * sizeof *items);
    if (!items)
        return RSY_ENOMEM;
    st->items = items;
    rsy__shape *shapes = realloc(st->shapes, (size_t)cap * sizeof *shapes);
    if (!shapes)
        return RSY_ENOMEM;
    st->shapes = shapes;
    double(*surface)[3] = realloc(st->surface, (size_t)cap * SURFACE_POINTS * sizeof *surface);
    if (!surface)
        return RSY_ENOMEM;
    st->surface = surface;
    st->cap = cap;
    /* the evaluators point at their lesions, which may have moved */
    for (int i = 0; i < st->n; i++) {
        st->shapes[i].l = &st->items[i];
        rsy__shape_update(&st->shapes[i]);
    }
    return RSY_OK;
}

static void state_free(case_state *st, int keep_items)
{
    for (int i = 0; i < st->n; i++)
        rsy__shape_clear(&st->shapes[i]);
    free(st->shapes);
    free(st->surface);
    if (!keep_items)
        free(st->items);
}

/* Place lesion number @p i of @p count of type @p t, drawn beforehand as @p drawn, into
 * st->items[st->n]. */
static rsy_status sample_one(const rsy_recipe *r, int t, int i, int count, const rsy_lesion *drawn,
                             case_state *st, const rsy__placer *pl, const rsy_volume *work,
                             const rsy__prior_tissues *tissues, const double (*pts)[3],
                             rsy_rng *rng)
{
    const rsy_prior *p = &r->lesions[t].prior;
    rsy_lesion *l = &st->items[st->n];
    rsy__shape *sh = &st->shapes[st->n];
    int attempts_before = 0, zone = -1;
    double keep_mm = 0.0;
    rsy_status rc = RSY_OK;
    /* A lesion that fits nowhere in max_attempts positions is drawn again. Rounds 1 to
     * LESION_REDRAWS - 1 keep its diameter (and zone) and draw the rest again (elongation,
     * orientation, lobulation, lobes, extents), so the sizes keep the prior's law: only the
     * shape and the position are conditioned on fitting in this anatomy beside the lesions
     * already placed. A diameter that fits nowhere in all those rounds is then drawn again
     * too, up to LESION_REDRAWS more rounds, with a warning naming the prior: from there on the
     * size law is the prior's conditioned on the anatomy, a mismatch between the prior and the
     * phantom that tests/test_catalogue.c keeps under 1 % of the lesions of every shipped
     * type. */
    for (int round = 0; round < 2 * LESION_REDRAWS; round++) {
        const int fresh = round == 0 || round >= LESION_REDRAWS;
        if (round == LESION_REDRAWS)
            rsy_log_warning("prior '%s': lesion %d of %d, of diameter %.1f mm, fits nowhere "
                            "after %d draws of its shape; its diameter is drawn again (the "
                            "sizes then no longer follow the prior)",
                            p->name, i + 1, count, keep_mm, LESION_REDRAWS);
        if (round == 0) {
            *l = *drawn;
        } else {
            memset(l, 0, sizeof *l);
            rc = draw_lesion(p, rng, fresh ? 0.0 : keep_mm, l);
            if (rc != RSY_OK)
                return rc;
        }
        l->instance_id = st->n + 1;
        l->type_index = t;
        l->host_class = -1;
        l->anchor_distance_mm = -1.0;
        if (fresh) {
            keep_mm = l->diameter_mm;
            zone = rsy__placer_draw_zone(pl, rng);
        }
        rc = rsy__shape_init(sh, l);
        if (rc != RSY_OK)
            return rc;
        const place_ctx ctx = {.recipe = r,
                               .classes = work,
                               .tissues = tissues,
                               .pts = pts,
                               .placed = st->items,
                               .shapes = st->shapes,
                               .surface = (const double(*)[3])st->surface,
                               .n_placed = st->n,
                               .own_surface = st->surface + (size_t)st->n * SURFACE_POINTS};
        rc = place_lesion(&ctx, pl, rng, p, zone, l, sh);
        if (rc == RSY_OK)
            break;
        rsy__shape_clear(sh);
        if (rsy__placer_candidates(pl) == 0)
            break; /* no candidate at all: redrawing the size cannot help */
        attempts_before += p->max_attempts > 0 ? p->max_attempts : 1;
    }
    if (rc != RSY_OK) {
        log_failure(p, l, i, count, p->max_attempts > 0 ? p->max_attempts : 1,
                    rsy__placer_candidates(pl));
        return rc;
    }
    l->attempts += attempts_before;
    surface_offsets(l, sh, st->surface + (size_t)st->n * SURFACE_POINTS);
    st->n++;
    return RSY_OK;
}

/* The class map the case is placed in: the caller's until a push, then a working copy. */
typedef struct work_map {
    const rsy_volume *orig;
    rsy_volume *inplace;    /* rsy_lesions_sample_deform: the caller's map, pushed in place */
    rsy_volume *copy;       /* materialised when a lesion is placed after a push */
    rsy__push_cache *cache; /* the pushes so far */
} work_map;

static const rsy_volume *work_current(const work_map *w)
{
    return w->inplace ? w->inplace : (w->copy ? w->copy : w->orig);
}

/* The working copy, made (the caller's map plus the pushes so far) on first need. */
static rsy_status work_materialise(work_map *w)
{
    if (w->inplace || w->copy || !w->cache || w->cache->n == 0)
        return RSY_OK;
    const rsy_status rc = rsy_volume_clone(&w->copy, w->orig);
    if (rc != RSY_OK)
        return rc;
    for (int i = 0; i < w->cache->n; i++)
        rsy__box_write(w->copy, &w->cache->e[i].box, w->cache->e[i].after);
    return RSY_OK;
}

/* Classes of box @p b in the current anatomy: the caller's map overlaid with the pushes. */
static void work_read(const work_map *w, const rsy__box *b, uint16_t *out)
{
    rsy__box_read(work_current(w), b, out);
    if (w->inplace || w->copy || !w->cache)
        return;
    const int64_t bx = rsy__box_n(b, 0), by = rsy__box_n(b, 1);
    for (int e = 0; e < w->cache->n; e++) {
        const rsy__push_entry *pe = &w->cache->e[e];
        int64_t lo[3], hi[3];
        int empty = 0;
        for (int a = 0; a < 3; a++) {
            lo[a] = b->lo[a] > pe->box.lo[a] ? b->lo[a] : pe->box.lo[a];
            hi[a] = b->hi[a] < pe->box.hi[a] ? b->hi[a] : pe->box.hi[a];
            empty |= hi[a] < lo[a];
        }
        if (empty)
            continue;
        const int64_t ex = rsy__box_n(&pe->box, 0), ey = rsy__box_n(&pe->box, 1);
        for (int64_t k = lo[2]; k <= hi[2]; k++)
            for (int64_t j = lo[1]; j <= hi[1]; j++)
                memcpy(out + ((k - b->lo[2]) * by + (j - b->lo[1])) * bx + (lo[0] - b->lo[0]),
                       pe->after + ((k - pe->box.lo[2]) * ey + (j - pe->box.lo[1])) * ex +
                           (lo[0] - pe->box.lo[0]),
                       (size_t)(hi[0] - lo[0] + 1) * sizeof *out);
    }
}

/* Push of the lesion just placed (st->items[st->n - 1]). */
static rsy_status push_lesion(const rsy_prior *p, const rsy__prior_tissues *tis, case_state *st,
                              work_map *w)
{
    rsy_lesion *l = &st->items[st->n - 1];
    l->mass_effect = 1;
    memcpy(l->mass_center_mm, l->center_mm, sizeof l->mass_center_mm);
    rsy__box box;
    rsy_status rc = rsy__mass_effect_region(p, tis, l, &w->orig->geom, &box);
    if (rc != RSY_OK || box.hi[0] < box.lo[0] || box.hi[1] < box.lo[1] || box.hi[2] < box.lo[2])
        return rc;
    if (w->inplace) {
        uint16_t *buf = malloc(rsy__box_nvox(&box) * sizeof *buf);
        if (!buf)
            return RSY_ENOMEM;
        rsy__box_read(w->inplace, &box, buf);
        rc = rsy__mass_effect_warp(p, tis, l, &w->orig->geom, &box, buf, NULL, st->items, st->n - 1,
                                   &l->mass_max_mm, NULL);
        if (rc == RSY_OK)
            rsy__box_write(w->inplace, &box, buf);
        free(buf);
        l->mass_applied = rc == RSY_OK;
        for (int q = 0; q + 1 < st->n; q++)
            rsy__shape_update(&st->shapes[q]);
        return rc;
    }
    if (!w->cache) {
        w->cache = calloc(1, sizeof *w->cache);
        if (!w->cache)
            return RSY_ENOMEM;
    }
    if (w->cache->n == w->cache->cap) {
        const int cap = w->cache->cap ? 2 * w->cache->cap : 4;
        rsy__push_entry *e = realloc(w->cache->e, (size_t)cap * sizeof *e);
        if (!e)
            return RSY_ENOMEM;
        w->cache->e = e;
        w->cache->cap = cap;
    }
    const size_t n = rsy__box_nvox(&box);
    uint16_t *buf = malloc(n * sizeof *buf);
    if (!buf)
        return RSY_ENOMEM;
    work_read(w, &box, buf);
    rc = rsy__mass_effect_warp(p, tis, l, &w->orig->geom, &box, buf, NULL, st->items, st->n - 1,
                               &l->mass_max_mm, NULL);
    if (rc != RSY_OK) {
        free(buf);
        return rc;
    }
    w->cache->e[w->cache->n++] = (rsy__push_entry){l->instance_id, box, buf};
    if (w->copy)
        rsy__box_write(w->copy, &box, buf);
    for (int q = 0; q + 1 < st->n; q++) /* the lesions placed before have moved */
        rsy__shape_update(&st->shapes[q]);
    return RSY_OK;
}

static rsy_status sample_case(const rsy_recipe *r, const char *family, const rsy_volume *classes,
                              rsy_volume *inplace, rsy_rng *rng, rsy_lesion_set *out)
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

    case_state st = {NULL, NULL, NULL, 0, 0};
    work_map w = {classes, inplace, NULL, NULL};
    rsy__placer *pl = NULL;
    rsy_lesion *drawn = NULL; /* the lesions of the current type, drawn before placement */
    int *order = NULL;        /* their placement order */
    int placer_stale = 0;
    double pts[PLACE_POINTS][3];
    rsy__prior_tissues tissues;
    ball_points(pts);

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
        if (count_rounded > (double)(MAX_INSTANCES - st.n)) {
            rsy_log_error("prior '%s': %.0f lesions would exceed %d lesions per case", p->name,
                          count_rounded, MAX_INSTANCES);
            rc = RSY_EINVAL;
            goto fail;
        }
        const int count = (int)count_rounded;
        rc = rsy__priors_tissues_build(family, p, &tissues);
        if (rc == RSY_OK)
            rc = work_materialise(&w);
        if (rc == RSY_OK)
            rc = rsy__placer_create(&pl, p, &tissues, work_current(&w));
        if (rc == RSY_OK)
            rc = state_reserve(&st, count);
        if (rc != RSY_OK)
            goto fail;
        placer_stale = 0;
        /* All lesions of the type are drawn first (sizes, shapes, extents, in draw order), then
         * placed largest first, as a packer would: a large lesion finds room before smaller
         * ones take it, and a small one fits beside large ones. The sizes are independent
         * draws, so their joint law does not depend on the order; instance ids follow the
         * placement order (within a type, decreasing drawn diameter). */
        drawn = malloc((size_t)count * sizeof *drawn);
        order = malloc((size_t)count * sizeof *order);
        if (!drawn || !order) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        for (int i = 0; i < count; i++) {
            memset(&drawn[i], 0, sizeof drawn[i]);
            rc = draw_lesion(p, rng, 0.0, &drawn[i]);
            if (rc != RSY_OK)
                goto fail;
            order[i] = i;
        }
        for (int i = 1; i < count; i++) { /* insertion sort: stable, decreasing diameter */
            const int o = order[i];
            int q = i;
            for (; q > 0 && drawn[order[q - 1]].diameter_mm < drawn[o].diameter_mm; q--)
                order[q] = order[q - 1];
            order[q] = o;
        }
        for (int i = 0; i < count; i++) {
            if (placer_stale) { /* a push deformed the anatomy since the placer was built */
                rc = work_materialise(&w);
                if (rc == RSY_OK)
                    rc = rsy__placer_refresh(pl, work_current(&w));
                if (rc != RSY_OK)
                    goto fail;
                placer_stale = 0;
            }
            rc = sample_one(r, t, i, count, &drawn[order[i]], &st, pl, work_current(&w), &tissues,
                            (const double(*)[3])pts, rng);
            if (rc == RSY_OK && p->mass_effect.enabled) {
                rc = push_lesion(p, &tissues, &st, &w);
                placer_stale = 1;
            }
            if (rc != RSY_OK)
                goto fail;
        }
        rsy__placer_destroy(pl);
        pl = NULL;
        RSY_FREE(drawn);
        RSY_FREE(order);
    }
    rsy_volume_destroy(w.copy);
    state_free(&st, 1);
    out->n = st.n;
    out->items = st.items;
    rsy__push_cache_free(w.cache);
    return RSY_OK;

fail:
    free(drawn);
    free(order);
    rsy__placer_destroy(pl);
    rsy_volume_destroy(w.copy);
    rsy__push_cache_free(w.cache);
    state_free(&st, 0);
    return rc;
}

rsy_status rsy_lesions_sample(const rsy_recipe *r, const char *family, const rsy_volume *classes,
                              rsy_rng *rng, rsy_lesion_set *out)
{
    return sample_case(r, family, classes, NULL, rng, out);
}

rsy_status rsy_lesions_sample_deform(const rsy_recipe *r, const char *family, rsy_volume *classes,
                                     rsy_rng *rng, rsy_lesion_set *out)
{
    return sample_case(r, family, classes, classes, rng, out);
}
