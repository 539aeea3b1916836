/*
 * compartments.c: which compartment of a lesion a point belongs to (DESIGN.md section 5).
 *
 * Base compartments are level sets of the lesion's radial coordinate rn = r/R(theta, phi)
 * and of its ray distance to the surface (shape.c), so they nest by construction:
 *  - inside the surface (rn < 1): the thinnest wall compartment (WALL_MM, thickness t) whose
 *    shell R - t < r <= R holds the point, i.e. ray depth < t; else the radius-fraction
 *    compartment with the smallest fraction f such that rn < f;
 *  - outside (ray distance > 0): the margin compartment (MARGIN_MM) with the smallest margin m
 *    such that the distance is <= m.
 * Ties keep the compartment listed first. Walls beat fractions, so a cyst's wall lines its
 * fluid. The rasteriser adds one rule for walls (rasterise.c): an inside voxel with a
 * 6-neighbour outside the surface belongs to the thinnest wall, so a wall is a closed shell of
 * voxels even where the ray depth over-estimates the thickness.
 *
 * A cyst (shape.kind "cyst") is drawn by these rules: its WALL_MM compartment lines the
 * surface as a closed shell and its radius-fraction compartment (the fluid) fills the rest.
 *
 * Nested compartments (INCLUSIONS, NETWORK, each "inside" an earlier compartment, its parent)
 * are then applied in list order: a nested compartment takes a point when the point lies in
 * its blobs or on its lines and the point's compartment so far is its parent. Nested
 * compartments therefore only ever cover voxels of their parent (and chains nest: a network
 * inside inclusions inside a core).
 *
 * Inclusions: spheres whose diameters are drawn from the compartment's inclusion_diameter_mm,
 * added one at a time until they cover the drawn volume fraction of the parent (what is left
 * of it when this compartment is drawn; the parent region as the level sets give it, before the
 * rasteriser's closed-wall rule). Coverage is estimated on 8192 uniform points of the
 * parent's bounding cube (the points inside the parent count), so the covered fraction is the
 * drawn one within the Monte-Carlo error of the parent's point count (about 1/sqrt(n)). Centres
 * are uniform in the parent ("anywhere"), in its outer third ("periphery": normalised position
 * q >= 2/3) or its inner half ("centre": q <= 1/2), where q is rn/f in a fraction parent,
 * 1 - depth/t in a wall, distance/m in a margin and rn otherwise: a centre is one of 8192
 * other uniform points that fell in the parent and the zone, jittered uniformly by their mean
 * spacing, kept if it is still in the parent and the zone. At most 4096 blobs; 200 rejected centre
 * draws in a row end the drawing.
 *
 * Network: the cell faces of the Voronoi tessellation of seeds on a jittered cubic lattice
 * (spacing cell_mm (pi/6)^(1/3), one seed uniformly in each lattice cell, lattice origin at the
 * lesion centre, world axes), thickened to the drawn line thickness: a point is on the network
 * when its distance to the bisector of its two nearest seeds, (|x-s2|^2 - |x-s1|^2) /
 * (2 |s2-s1|), is at most half the line thickness. The mean cell volume is that of a sphere of
 * diameter cell_mm. In 3-D the septa are the faces between cells (interlobular septa bound
 * secondary lobules); any slice shows them as the polygonal lines of crazy paving. The two
 * nearest seeds are searched in the 27 lattice cells around the point (exact for the nearest;
 * the second can be missed only where it is farther than the lattice spacing, away from the
 * faces that matter).
 *
 * Randomness: inclusions and network seeds come from the lesion's seed through
 * rsy_seed_derive(seed, 16 + compartment, RSY_STAGE_LESIONS) streams, so they are a
 * deterministic function of the lesion record.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "priors_internal.h"

#define INCL_POINTS 8192
#define INCL_MAX_BLOBS 4096
#define INCL_MAX_MISSES 200
#define SEED_SALT 16u

/* ---------------------------------------------------------------------------------------- */
/* Base compartments                                                                          */
/* ---------------------------------------------------------------------------------------- */

static void sort_by_extent(int *idx, int n, const double *extent)
{
    for (int a = 1; a < n; a++) {
        const int v = idx[a];
        int b = a;
        while (b > 0 && extent[idx[b - 1]] > extent[v]) {
            idx[b] = idx[b - 1];
            b--;
        }
        idx[b] = v;
    }
}

int rsy__compartments_base(const rsy__compartments *cs, double rn, double dist_mm)
{
    const double *e = cs->l->extent;
    if (rn < 1.0) {
        for (int a = 0; a < cs->n_wall; a++)
            if (-dist_mm < e[cs->wall[a]])
                return cs->wall[a];
        for (int a = 0; a < cs->n_frac; a++)
            if (rn < e[cs->frac[a]])
                return cs->frac[a];
        return -1;
    }
    if (dist_mm > 0.0)
        for (int a = 0; a < cs->n_margin; a++)
            if (dist_mm <= e[cs->margin[a]])
                return cs->margin[a];
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Network                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static double lattice_spacing(const rsy__compartments *cs, int c)
{
    return cs->l->cell_mm[c] * cbrt(M_PI / 6.0);
}

/* Seed of lattice cell g of compartment c (world mm). */
static void cell_seed(const rsy__compartments *cs, int c, const int64_t g[3], double h, double s[3])
{
    const uint64_t key = ((uint64_t)(g[0] & 0x1fffff)) | ((uint64_t)(g[1] & 0x1fffff) << 21) |
                         ((uint64_t)(g[2] & 0x1fffff) << 42);
    const uint64_t r = rsy_seed_derive(cs->l->seed, key, SEED_SALT + (uint32_t)c + 1000u);
    for (int a = 0; a < 3; a++) {
        const double u = (double)((r >> (21 * a)) & 0x1fffff) / (double)(1u << 21);
        s[a] = cs->l->center_mm[a] + h * ((double)g[a] + u);
    }
}

int rsy__network_at(const rsy__compartments *cs, int c, const double x[3])
{
    const double h = lattice_spacing(cs, c);
    if (!(h > 0.0))
        return 0;
    int64_t g0[3];
    for (int a = 0; a < 3; a++)
        g0[a] = (int64_t)floor((x[a] - cs->l->center_mm[a]) / h);
    double d1 = HUGE_VAL, d2 = HUGE_VAL, s1[3] = {0, 0, 0}, s2[3] = {0, 0, 0};
    for (int dz = -1; dz <= 1; dz++)
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const int64_t g[3] = {g0[0] + dx, g0[1] + dy, g0[2] + dz};
                double s[3];
                cell_seed(cs, c, g, h, s);
                const double d = (x[0] - s[0]) * (x[0] - s[0]) + (x[1] - s[1]) * (x[1] - s[1]) +
                                 (x[2] - s[2]) * (x[2] - s[2]);
                if (d < d1) {
                    d2 = d1;
                    memcpy(s2, s1, sizeof s1);
                    d1 = d;
                    memcpy(s1, s, sizeof s);
                } else if (d < d2) {
                    d2 = d;
                    memcpy(s2, s, sizeof s);
                }
            }
    const double sep = sqrt((s2[0] - s1[0]) * (s2[0] - s1[0]) + (s2[1] - s1[1]) * (s2[1] - s1[1]) +
                            (s2[2] - s1[2]) * (s2[2] - s1[2]));
    return sep > 0.0 && cs->l->extent[c] > 0.0 && (d2 - d1) / (2.0 * sep) <= 0.5 * cs->l->extent[c];
}

/* ---------------------------------------------------------------------------------------- */
/* Inclusions                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static int in_blobs(const rsy__compartments *cs, int c, const double x[3])
{
    if (cs->n_blobs[c] == 0)
        return 0;
    int64_t g[3];
    for (int a = 0; a < 3; a++) {
        const double f = floor((x[a] - cs->grid_lo[c][a]) / cs->grid_cell[c]);
        if (!(f >= 0.0) || f >= (double)cs->grid_n[c][a])
            return 0;
        g[a] = (int64_t)f;
    }
    const int64_t cell = (g[2] * cs->grid_n[c][1] + g[1]) * cs->grid_n[c][0] + g[0];
    for (int q = cs->grid_start[c][cell]; q < cs->grid_start[c][cell + 1]; q++) {
        const rsy__blob *b = &cs->blobs[c][cs->grid_items[c][q]];
        const double d2 = (x[0] - b->c[0]) * (x[0] - b->c[0]) +
                          (x[1] - b->c[1]) * (x[1] - b->c[1]) + (x[2] - b->c[2]) * (x[2] - b->c[2]);
        if (d2 <= b->r2)
            return 1;
    }
    return 0;
}

/* Compartment of x with nesting limited to compartments listed before @p limit. */
static int resolve(const rsy__compartments *cs, const double x[3], int limit, double *rn_out,
                   double *dist_out)
{
    double dist;
    const double rn = rsy__shape_radial(&cs->shape, x, &dist);
    if (rn_out)
        *rn_out = rn;
    if (dist_out)
        *dist_out = dist;
    int comp = rsy__compartments_base(cs, rn, dist);
    for (int a = 0; a < cs->n_nested; a++) {
        const int c = cs->nested[a];
        if (c >= limit)
            break;
        if (comp < 0 || comp != cs->parent[c])
            continue;
        const int hit = cs->p->compartments[c].extent_kind == RSY_EXTENT_INCLUSIONS
                            ? in_blobs(cs, c, x)
                            : rsy__network_at(cs, c, x);
        if (hit)
            comp = c;
    }
    return comp;
}

int rsy__compartments_nest(const rsy__compartments *cs, int base, const double x[3])
{
    int comp = base;
    for (int a = 0; a < cs->n_nested; a++) {
        const int c = cs->nested[a];
        if (comp < 0 || comp != cs->parent[c])
            continue;
        const int hit = cs->p->compartments[c].extent_kind == RSY_EXTENT_INCLUSIONS
                            ? in_blobs(cs, c, x)
                            : rsy__network_at(cs, c, x);
        if (hit)
            comp = c;
    }
    return comp;
}

/* Normalised position of a point in its parent compartment @p par (see the file comment). */
static double zone_position(const rsy__compartments *cs, int par, double rn, double dist)
{
    const rsy_compartment *pc = &cs->p->compartments[par];
    const double e = cs->l->extent[par];
    switch (pc->extent_kind) {
    case RSY_EXTENT_RADIUS_FRACTION:
        return e > 0.0 ? rn / e : 0.0;
    case RSY_EXTENT_WALL_MM:
        return e > 0.0 ? 1.0 + dist / e : 1.0;
    case RSY_EXTENT_MARGIN_MM:
        return e > 0.0 ? dist / e : 0.0;
    case RSY_EXTENT_INCLUSIONS:
    case RSY_EXTENT_NETWORK:
        break;
    }
    return rn < 1.0 ? rn : 1.0;
}

static int zone_ok(rsy_inclusion_where where, double q)
{
    switch (where) {
    case RSY_WHERE_PERIPHERY:
        return q >= 2.0 / 3.0;
    case RSY_WHERE_CENTRE:
        return q <= 0.5;
    case RSY_WHERE_ANYWHERE:
        break;
    }
    return 1;
}

static rsy_status build_grid(rsy__compartments *cs, int c)
{
    const int n = cs->n_blobs[c];
    double lo[3] = {HUGE_VAL, HUGE_VAL, HUGE_VAL}, hi[3] = {-HUGE_VAL, -HUGE_VAL, -HUGE_VAL};
    double rmax = 0.0;
    for (int b = 0; b < n; b++) {
        const double r = sqrt(cs->blobs[c][b].r2);
        rmax = fmax(rmax, r);
        for (int a = 0; a < 3; a++) {
            lo[a] = fmin(lo[a], cs->blobs[c][b].c[a] - r);
            hi[a] = fmax(hi[a], cs->blobs[c][b].c[a] + r);
        }
    }
    double cell = fmax(2.0 * rmax, 1e-3);
    int64_t ncell;
    for (;;) { /* coarsen until the grid has at most 2^21 cells */
        ncell = 1;
        for (int a = 0; a < 3; a++) {
            cs->grid_n[c][a] = (int)ceil((hi[a] - lo[a]) / cell) + 1;
            ncell *= cs->grid_n[c][a];
        }
        if (ncell <= (1 << 21))
            break;
        cell *= 1.5;
    }
    memcpy(cs->grid_lo[c], lo, sizeof lo);
    cs->grid_cell[c] = cell;
    int *count = calloc((size_t)ncell + 1, sizeof *count);
    if (!count)
        return RSY_ENOMEM;
    /* Two sweeps: count the cells each blob's bounding box touches, then fill. */
    size_t total = 0;
    for (int sweep = 0; sweep < 2; sweep++) {
        for (int b = 0; b < n; b++) {
            const rsy__blob *bl = &cs->blobs[c][b];
            const double r = sqrt(bl->r2);
            int g0[3], g1[3];
            for (int a = 0; a < 3; a++) {
                g0[a] = (int)floor((bl->c[a] - r - lo[a]) / cell);
                g1[a] = (int)floor((bl->c[a] + r - lo[a]) / cell);
                g0[a] = g0[a] < 0 ? 0 : g0[a];
                g1[a] = g1[a] >= cs->grid_n[c][a] ? cs->grid_n[c][a] - 1 : g1[a];
            }
            for (int z = g0[2]; z <= g1[2]; z++)
                for (int y = g0[1]; y <= g1[1]; y++)
                    for (int x = g0[0]; x <= g1[0]; x++) {
                        const int64_t cl =
                            ((int64_t)z * cs->grid_n[c][1] + y) * cs->grid_n[c][0] + x;
                        if (sweep == 0) {
                            count[cl + 1]++;
                            total++;
                        } else {
                            cs->grid_items[c][count[cl]++] = b;
                        }
                    }
        }
        if (sweep == 0) {
            for (int64_t q = 0; q < ncell; q++)
                count[q + 1] += count[q];
            cs->grid_start[c] = malloc(((size_t)ncell + 1) * sizeof *cs->grid_start[c]);
            cs->grid_items[c] = malloc((total > 0 ? total : 1) * sizeof *cs->grid_items[c]);
            if (!cs->grid_start[c] || !cs->grid_items[c]) {
                free(count);
                return RSY_ENOMEM;
            }
            memcpy(cs->grid_start[c], count, ((size_t)ncell + 1) * sizeof *count);
        }
    }
    free(count);
    return RSY_OK;
}

static rsy_status draw_inclusions(rsy__compartments *cs, int c)
{
    const rsy_compartment *cp = &cs->p->compartments[c];
    const int par = cs->parent[c];
    const double fraction = fmin(0.95, fmax(0.0, cs->l->extent[c]));
    if (par < 0 || !(fraction > 0.0))
        return RSY_OK;
    const double half = cs->p->compartments[par].extent_kind == RSY_EXTENT_MARGIN_MM
                            ? cs->outer_mm
                            : cs->shape.bound_mm;
    rsy_rng *g = NULL;
    rsy_status rc = rsy_rng_create(
        &g, rsy_seed_derive(cs->l->seed, SEED_SALT + (uint64_t)c, RSY_STAGE_LESIONS));
    if (rc != RSY_OK)
        return rc;
    double(*pts)[3] = malloc(INCL_POINTS * sizeof *pts);
    unsigned char *covered = calloc(INCL_POINTS, 1);
    rsy__blob *blobs = malloc(INCL_MAX_BLOBS * sizeof *blobs);
    if (!pts || !covered || !blobs) {
        rc = RSY_ENOMEM;
        goto done;
    }
    /* Two independent uniform samples of the bounding cube: the points of the parent (the
     * coverage estimate) and the points of the parent in the zone (candidate centres, jittered
     * by the mean spacing of the samples so the centres are continuous). The candidates must
     * not be coverage points: a blob would then always cover its own point. */
    int n_par = 0, n_zone = 0;
    double(*cand)[3] = malloc(INCL_POINTS * sizeof *cand);
    if (!cand) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (int i = 0; i < INCL_POINTS; i++) {
        double x[3];
        for (int a = 0; a < 3; a++)
            x[a] = cs->l->center_mm[a] + rsy_rng_uniform_range(g, -half, half);
        if (resolve(cs, x, c, NULL, NULL) == par)
            memcpy(pts[n_par++], x, sizeof x);
    }
    for (int i = 0; i < INCL_POINTS; i++) {
        double x[3], rn, dist;
        for (int a = 0; a < 3; a++)
            x[a] = cs->l->center_mm[a] + rsy_rng_uniform_range(g, -half, half);
        if (resolve(cs, x, c, &rn, &dist) == par &&
            zone_ok(cp->where, zone_position(cs, par, rn, dist)))
            memcpy(cand[n_zone++], x, sizeof x);
    }
    const double spacing = 2.0 * half / cbrt((double)INCL_POINTS);
    const int target = (int)ceil(fraction * n_par);
    int n_cov = 0, n = 0, misses = 0;
    while (n_zone > 0 && n_cov < target && n < INCL_MAX_BLOBS && misses < INCL_MAX_MISSES) {
        const double diam = rsy_dist_sample(&cp->inclusion_diameter_mm, g);
        const double *p0 = cand[rsy_rng_uniform_int(g, (uint64_t)n_zone)];
        double x[3], rn, dist;
        for (int a = 0; a < 3; a++)
            x[a] = p0[a] + spacing * (rsy_rng_uniform(g) - 0.5);
        if (!(diam > 0.0) || !isfinite(diam) || resolve(cs, x, c, &rn, &dist) != par ||
            !zone_ok(cp->where, zone_position(cs, par, rn, dist))) {
            misses++;
            continue;
        }
        misses = 0;
        rsy__blob *b = &blobs[n++];
        memcpy(b->c, x, sizeof x);
        b->r2 = 0.25 * diam * diam;
        for (int i = 0; i < n_par; i++) {
            if (covered[i])
                continue;
            const double d2 = (pts[i][0] - x[0]) * (pts[i][0] - x[0]) +
                              (pts[i][1] - x[1]) * (pts[i][1] - x[1]) +
                              (pts[i][2] - x[2]) * (pts[i][2] - x[2]);
            if (d2 <= b->r2) {
                covered[i] = 1;
                n_cov++;
            }
        }
    }
    free(cand);
    if (n > 0) {
        cs->blobs[c] = realloc(blobs, (size_t)n * sizeof *blobs);
        if (!cs->blobs[c])
            cs->blobs[c] = blobs;
        blobs = NULL;
        cs->n_blobs[c] = n;
        rc = build_grid(cs, c);
    }
done:
    free(blobs);
    free(covered);
    free(pts);
    rsy_rng_destroy(g);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The evaluator                                                                              */
/* ---------------------------------------------------------------------------------------- */

rsy_status rsy__compartments_init(rsy__compartments *cs, const rsy_prior *p, const rsy_lesion *l)
{
    memset(cs, 0, sizeof *cs);
    cs->p = p;
    cs->l = l;
    rsy_status rc = rsy__shape_init(&cs->shape, l);
    if (rc != RSY_OK)
        return rc;
    const int nc =
        p->n_compartments < RSY_MAX_COMPARTMENTS ? p->n_compartments : RSY_MAX_COMPARTMENTS;
    for (int c = 0; c < nc; c++) {
        const rsy_compartment *cp = &p->compartments[c];
        cs->parent[c] = -1;
        for (int q = 0; q < c && cp->parent[0]; q++)
            if (strcmp(p->compartments[q].name, cp->parent) == 0)
                cs->parent[c] = q;
        switch (cp->extent_kind) {
        case RSY_EXTENT_RADIUS_FRACTION:
            cs->frac[cs->n_frac++] = c;
            break;
        case RSY_EXTENT_MARGIN_MM:
            cs->margin[cs->n_margin++] = c;
            break;
        case RSY_EXTENT_WALL_MM:
            cs->wall[cs->n_wall++] = c;
            cs->wall_max_mm = fmax(cs->wall_max_mm, l->extent[c]);
            break;
        case RSY_EXTENT_INCLUSIONS:
        case RSY_EXTENT_NETWORK:
            cs->nested[cs->n_nested++] = c;
            break;
        }
    }
    sort_by_extent(cs->frac, cs->n_frac, l->extent);
    sort_by_extent(cs->wall, cs->n_wall, l->extent);
    sort_by_extent(cs->margin, cs->n_margin, l->extent);
    cs->outer_mm = cs->shape.bound_mm + rsy__priors_margin_max_mm(p, l);
    for (int a = 0; a < cs->n_nested && rc == RSY_OK; a++) {
        const int c = cs->nested[a];
        if (p->compartments[c].extent_kind == RSY_EXTENT_INCLUSIONS)
            rc = draw_inclusions(cs, c);
    }
    if (rc != RSY_OK)
        rsy__compartments_clear(cs);
    return rc;
}

void rsy__compartments_clear(rsy__compartments *cs)
{
    if (!cs)
        return;
    rsy__shape_clear(&cs->shape);
    for (int c = 0; c < RSY_MAX_COMPARTMENTS; c++) {
        RSY_FREE(cs->blobs[c]);
        RSY_FREE(cs->grid_start[c]);
        RSY_FREE(cs->grid_items[c]);
        cs->n_blobs[c] = 0;
    }
}
