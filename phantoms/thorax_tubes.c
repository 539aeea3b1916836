/*
 * thorax_tubes.c: the airway and pulmonary vessel trees of the "thorax" phantom family
 * (thorax.c), as tapered tubes in the reference frame, and the segment grid that finds the
 * tubes near a point. thorax.c builds them once per subject (rsy__thorax_build_tubes, then
 * rsy__thorax_build_grid) and asks rsy__thorax_tube_hit per voxel; the lung they grow in is
 * thorax.c's (rsy__thorax_lung_side). Declarations in thorax_internal.h.
 *
 * Airways (trachea, main and lobar bronchi, then a random tree of smaller bronchi) and the
 * pulmonary vessels are tapered tubes. The random airway trees branch asymmetrically in a
 * random plane, with children's radii from Murray's law, and grow only while their segments
 * end inside the lung of their side. The vessels are four space-filling trees (artery and
 * vein of each lung, one root per lobe at the hilum) that split the lung volume they serve
 * down to 0.5 mm radius; segments are binned in a coarse reference-frame grid, so a voxel
 * tests only the tubes whose bounding boxes reach it, and vessels thinner than a voxel are
 * left out of the grid.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "thorax_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Tube constants (reference frame, mm; GK adult anatomy unless stated)                      */
/* ---------------------------------------------------------------------------------------- */
/* Airway wall thickness = AIRWAY_WALL_FRAC * lumen radius + AIRWAY_WALL_MIN_MM (GK: about
 * 2.5 mm for the trachea, 10-20% of the diameter for bronchi). */
#define AIRWAY_WALL_FRAC 0.2
#define AIRWAY_WALL_MIN_MM 0.6
/* Random trees: segment length per radius (Weibel: L/D about 3), taper along a segment,
 * Murray-law children (0.83^3 + 0.76^3 ~ 1), branching angles of the
 * major and minor child, pull away from the root, smallest radius drawn. */
#define TREE_LEN_PER_RADIUS 6.0
#define TREE_TAPER 0.98
#define TREE_MAJOR 0.83
#define TREE_MINOR 0.76
#define TREE_ANGLE_MAJOR_RAD 0.35
#define TREE_ANGLE_MINOR_RAD 0.9
#define TREE_OUTWARD 0.35
/* Spread of the deflection tried when a branch would leave its lung. */
#define TREE_RETRY_SPREAD 0.6
#define AIRWAY_R_MIN_MM 1.2
#define MAX_TUBES 250000
/* Space-filling vessel trees (a recursive territory split: no branch grows into lung that
 * another branch already serves). Each branch serves a territory of lung sample points (a
 * lattice of TERRITORY_STEP_MM; the vein lattice is offset by half a step), heads for the
 * territory's centroid, and at its end splits the territory across its principal axis into
 * two parts (fraction SPLIT_MIN..SPLIT_MAX); the children's radii follow Murray's law with
 * flow in proportion to territory volume, r^3 = r1^3 + r2^3 (GK). Segment length 5-10 radii
 * (length/diameter 2.5-5 for pulmonary vessel segments, GK), never beyond the centroid; a
 * child deviates at most VESSEL_ANGLE_MAX_RAD (60 degrees) from its parent (branching angles
 * 30-60 degrees, GK). Branching stops below VESSEL_R_MIN_MM, half a voxel of a 1 mm grid; at
 * coarser grids the rasteriser skips segments thinner than SUBVOXEL_FRACTION of a voxel
 * (thorax.c). */
#define VESSEL_R_MIN_MM 0.5
#define TERRITORY_STEP_MM 4.0
#define SPLIT_MIN 0.35
#define SPLIT_MAX 0.65
#define VESSEL_LEN_MIN 5.0
#define VESSEL_LEN_MAX 10.0
#define VESSEL_ANGLE_MAX_RAD 1.05
#define VESSEL_DIR_JITTER 0.15
#define VESSEL_ROOT_R_SPREAD 0.1
/* Segment grid over the reference chest. */
#define GRID_CELL_MM 8.0
#define GRID_LO_X (-200.0)
#define GRID_LO_Y (-170.0)
#define GRID_LO_Z (-280.0)
#define GRID_NX 50
#define GRID_NY 40
#define GRID_NZ 70

/* A tapered tube (cone frustum approximated by a swept sphere of linear radius). */
enum { TUBE_AIRWAY = 0, TUBE_VESSEL = 1 };
struct tube {
    double a[3], b[3];
    double ra, rb;
    int kind;
};

/* Central airways (a, b, ra, rb): trachea, main bronchi, bronchus intermedius, lobar bronchi
 * (GK: trachea lumen 15-20 mm, right main bronchus short and steep, left long and oblique). */
static const double central_airways[][8] = {
    {0.0, 16.0, 300.0, 0.0, 10.0, 100.0, 9.0, 9.0},     /* trachea (cervical part) */
    {0.0, 10.0, 100.0, 0.0, 0.0, 0.0, 9.0, 8.5},        /* trachea to the carina */
    {0.0, 0.0, 0.0, 22.0, -4.0, -22.0, 7.5, 7.0},       /* right main bronchus */
    {22.0, -4.0, -22.0, 30.0, -5.0, -50.0, 6.0, 5.5},   /* bronchus intermedius */
    {0.0, 0.0, 0.0, -40.0, -8.0, -30.0, 6.5, 6.0}};     /* left main bronchus */
#define N_CENTRAL_AIRWAYS (sizeof central_airways / sizeof central_airways[0])
/* Lobar bronchi (a, b, r) from which the random airway trees grow; side 1 right, 2 left. */
static const double lobar_bronchi[][8] = {
    {22.0, -4.0, -22.0, 45.0, -2.0, -6.0, 4.5, 1.0},   /* right upper lobe */
    {30.0, -5.0, -50.0, 46.0, 18.0, -68.0, 3.5, 1.0},  /* right middle lobe */
    {30.0, -5.0, -50.0, 46.0, -24.0, -84.0, 5.0, 1.0}, /* right lower lobe */
    {-40.0, -8.0, -30.0, -54.0, 10.0, -14.0, 4.5, 2.0}, /* left upper lobe */
    {-40.0, -8.0, -30.0, -54.0, -25.0, -64.0, 4.5, 2.0}}; /* left lower lobe */
#define N_LOBAR (sizeof lobar_bronchi / sizeof lobar_bronchi[0])
/* Origins of the space-filling pulmonary vessel trees (x, y, z, radius, side 1 right / 2 left,
 * tree 0 artery / 1 vein): the lobar arteries leave the pulmonary artery at each hilum, the
 * pulmonary veins reach the left atrium below and behind it. Radius of the whole tree at its
 * origin: right/left pulmonary artery about 18-20 mm in diameter, two lobar veins per side of
 * 12-15 mm (GK; r^3 of the pair gives about 9 mm). */
static const double vessel_roots[][6] = {
    {RSY__THORAX_HILUM_R_X_MM, RSY__THORAX_HILUM_R_Y_MM, RSY__THORAX_HILUM_R_Z_MM, 9.0, 1.0, 0.0},
    {RSY__THORAX_HILUM_L_X_MM, RSY__THORAX_HILUM_L_Y_MM, RSY__THORAX_HILUM_L_Z_MM, 9.0, 2.0, 0.0},
    {30.0, -8.0, -55.0, 8.5, 1.0, 1.0},
    {-32.0, -10.0, -45.0, 8.5, 2.0, 1.0}};

/* ---------------------------------------------------------------------------------------- */
/* Tubes: random trees and the segment grid                                                   */
/* ---------------------------------------------------------------------------------------- */
static rsy_status add_tube(thorax_model *m, size_t *cap, const double a[3], const double b[3],
                           double ra, double rb, int kind)
{
    if (m->n_tubes == *cap) {
        size_t nc = *cap ? 2 * *cap : 1024;
        tube *t = realloc(m->tubes, nc * sizeof *t);
        if (t == NULL)
            return RSY_ENOMEM;
        m->tubes = t;
        *cap = nc;
    }
    tube *t = &m->tubes[m->n_tubes++];
    memcpy(t->a, a, sizeof t->a);
    memcpy(t->b, b, sizeof t->b);
    t->ra = ra;
    t->rb = rb;
    t->kind = kind;
    return RSY_OK;
}

typedef struct branch {
    double p[3], d[3], r;
} branch;

/* Grow a random tree from @p root along @p dir with radius @p r0 inside lung @p side, breadth
 * first, so a cap on the number of tubes trims the finest generation evenly. */
static rsy_status grow_tree(thorax_model *m, size_t *cap, rsy_rng *rng, const double root[3],
                            const double dir[3], double r0, int side, int kind, double r_min)
{
    size_t qcap = 4096, head = 0, tail = 0;
    branch *q = malloc(qcap * sizeof *q);
    if (q == NULL)
        return RSY_ENOMEM;
    q[tail].r = r0;
    memcpy(q[tail].p, root, sizeof q[tail].p);
    memcpy(q[tail].d, dir, sizeof q[tail].d);
    normalize3(q[tail].d);
    tail++;
    rsy_status rc = RSY_OK;
    while (head < tail && m->n_tubes < MAX_TUBES) {
        branch b = q[head++];
        double len = TREE_LEN_PER_RADIUS * b.r * rsy_rng_uniform_range(rng, 0.75, 1.25);
        /* Perpendicular direction of the branching plane, angle jitters and two alternative
         * directions, drawn whether or not used, so every branch advances the stream alike. */
        double e[3], alt[2][3], jitter[2];
        for (int i = 0; i < 3; i++)
            e[i] = rsy_rng_gaussian(rng, 1.0);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 3; i++)
                alt[k][i] = rsy_rng_gaussian(rng, TREE_RETRY_SPREAD);
        for (int c = 0; c < 2; c++)
            jitter[c] = rsy_rng_uniform_range(rng, 0.8, 1.2);
        /* The segment must end in the lung of its side (the root starts at the hilum, in the
         * mediastinum): try the drawn direction, then two deflected ones, each at full and at
         * half length; a branch that finds no room ends there. */
        double end[3];
        int ok = 0;
        for (int attempt = 0; attempt < 6 && !ok; attempt++) {
            double d[3];
            for (int i = 0; i < 3; i++)
                d[i] = b.d[i] + (attempt >= 2 ? alt[attempt / 2 - 1][i] : 0.0);
            normalize3(d);
            double l = attempt % 2 == 0 ? len : 0.5 * len;
            for (int i = 0; i < 3; i++)
                end[i] = b.p[i] + l * d[i];
            ok = rsy__thorax_lung_side(m, end) == side;
            if (ok)
                memcpy(b.d, d, sizeof b.d);
        }
        if (!ok)
            continue;
        double rb = b.r * TREE_TAPER;
        rc = add_tube(m, cap, b.p, end, b.r, rb, kind);
        if (rc != RSY_OK)
            break;
        double ed = dot3(e, b.d);
        for (int i = 0; i < 3; i++)
            e[i] -= ed * b.d[i];
        normalize3(e);
        double out[3] = {end[0] - root[0], end[1] - root[1], end[2] - root[2]};
        normalize3(out);
        for (int c = 0; c < 2; c++) {
            double rc_mm = rb * (c == 0 ? TREE_MAJOR : TREE_MINOR);
            if (rc_mm < r_min)
                continue;
            double ang = jitter[c] * (c == 0 ? TREE_ANGLE_MAJOR_RAD : TREE_ANGLE_MINOR_RAD);
            double sgn = c == 0 ? 1.0 : -1.0;
            if (tail == qcap) {
                if (head > 0) {
                    memmove(q, q + head, (tail - head) * sizeof *q);
                    tail -= head;
                    head = 0;
                } else {
                    branch *nq = realloc(q, 2 * qcap * sizeof *q);
                    if (nq == NULL) {
                        rc = RSY_ENOMEM;
                        goto done;
                    }
                    q = nq;
                    qcap *= 2;
                }
            }
            branch *nb = &q[tail++];
            memcpy(nb->p, end, sizeof nb->p);
            nb->r = rc_mm;
            for (int i = 0; i < 3; i++)
                nb->d[i] = cos(ang) * b.d[i] + sgn * sin(ang) * e[i] + TREE_OUTWARD * out[i];
            normalize3(nb->d);
        }
    }
done:
    free(q);
    return rc;
}

/* A space-filling vessel tree under construction: lung sample points (reference frame) and
 * their projections for the territory split (also scratch for the lobe ordering). */
typedef struct vessel_ctx {
    thorax_model *m;
    size_t *cap;
    rsy_rng *rng;
    int side;
    double (*pts)[3];
    double *key;
} vessel_ctx;

/* Principal axis (largest variance) of points [lo, hi) around centroid @p c, by power
 * iteration from the axis of largest spread. */
static void principal_axis(const vessel_ctx *v, size_t lo, size_t hi, const double c[3],
                           double axis[3])
{
    double cov[3][3] = {{0.0}};
    for (size_t i = lo; i < hi; i++) {
        double d[3] = {v->pts[i][0] - c[0], v->pts[i][1] - c[1], v->pts[i][2] - c[2]};
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                cov[a][b] += d[a] * d[b];
    }
    int best = 0;
    for (int a = 1; a < 3; a++)
        if (cov[a][a] > cov[best][best])
            best = a;
    axis[0] = axis[1] = axis[2] = 0.0;
    axis[best] = 1.0;
    for (int it = 0; it < 16; it++) {
        double nv[3];
        for (int a = 0; a < 3; a++)
            nv[a] = dot3(cov[a], axis);
        if (dot3(nv, nv) < 1e-24)
            return;
        memcpy(axis, nv, sizeof nv);
        normalize3(axis);
    }
}

/* Partition points [lo, hi) about their projection on @p axis so that the @p k first have
 * the smallest projections (Hoare quickselect with a middle pivot: deterministic, linear on
 * average). */
static void select_along(vessel_ctx *v, size_t lo, size_t hi, size_t k, const double axis[3])
{
    double *key = v->key;
    for (size_t i = lo; i < hi; i++)
        key[i] = dot3(v->pts[i], axis);
    size_t l = lo, r = hi - 1, kk = lo + k;
    while (l < r) {
        double pivot = key[l + (r - l) / 2];
        size_t i = l, j = r;
        while (i <= j) {
            while (key[i] < pivot)
                i++;
            while (key[j] > pivot)
                j--;
            if (i <= j) {
                double tk = key[i];
                key[i] = key[j];
                key[j] = tk;
                double tp[3];
                memcpy(tp, v->pts[i], sizeof tp);
                memcpy(v->pts[i], v->pts[j], sizeof tp);
                memcpy(v->pts[j], tp, sizeof tp);
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (kk <= j)
            r = j;
        else if (kk >= i)
            l = i;
        else
            break;
    }
}

/* Grow the branch of radius @p r from @p start serving points [lo, hi); @p dir is the parent's
 * direction (NULL for a root, which may point anywhere). Depth is bounded by the territory
 * halving (at most log2 of the point count). */
static rsy_status grow_vessel(vessel_ctx *v, const double start[3], const double *dir, double r,
                              size_t lo, size_t hi)
{
    size_t n = hi - lo;
    if (n == 0 || v->m->n_tubes >= MAX_TUBES)
        return RSY_OK;
    double c[3] = {0.0, 0.0, 0.0};
    for (size_t i = lo; i < hi; i++)
        for (int a = 0; a < 3; a++)
            c[a] += v->pts[i][a];
    for (int a = 0; a < 3; a++)
        c[a] /= (double)n;
    double d[3] = {c[0] - start[0], c[1] - start[1], c[2] - start[2]};
    double dist = sqrt(dot3(d, d));
    /* Draws made whatever happens, so the stream advances alike for every branch. */
    double k_len = rsy_rng_uniform_range(v->rng, VESSEL_LEN_MIN, VESSEL_LEN_MAX);
    double split = rsy_rng_uniform_range(v->rng, SPLIT_MIN, SPLIT_MAX);
    for (int a = 0; a < 3; a++)
        d[a] = (dist > 1e-9 ? d[a] / dist : (dir ? dir[a] : 0.0)) +
               rsy_rng_gaussian(v->rng, VESSEL_DIR_JITTER);
    normalize3(d);
    if (dir != NULL) {
        double cosang = dot3(d, dir);
        if (cosang < cos(VESSEL_ANGLE_MAX_RAD)) {
            double perp[3];
            for (int a = 0; a < 3; a++)
                perp[a] = d[a] - cosang * dir[a];
            normalize3(perp);
            for (int a = 0; a < 3; a++)
                d[a] = cos(VESSEL_ANGLE_MAX_RAD) * dir[a] + sin(VESSEL_ANGLE_MAX_RAD) * perp[a];
        }
    }
    /* Length: k radii, not past the centroid. If the end is not in the lung (a concave
     * territory, e.g. around the heart), halve the length, then turn laterally (away from
     * the mediastinum) and retry; a branch that finds no room adds no segment and its
     * children start from its origin. */
    const double turn_x[3] = {0.0, 0.6, 1.5};
    double lateral_x = v->side == 1 ? 1.0 : -1.0;
    double len0 = fmin(k_len * r, dist), end[3], dt[3];
    int ok = 0;
    for (int t = 0; t < 3 && !ok; t++) {
        memcpy(dt, d, sizeof dt);
        dt[0] += turn_x[t] * lateral_x;
        normalize3(dt);
        for (double len = len0; len > 0.5 * r && !ok; len *= 0.5) {
            for (int a = 0; a < 3; a++)
                end[a] = start[a] + len * dt[a];
            ok = rsy__thorax_lung_side(v->m, end) == v->side;
        }
    }
    double rb = r;
    if (ok) {
        memcpy(d, dt, sizeof d);
        rb = r * TREE_TAPER;
        rsy_status rc = add_tube(v->m, v->cap, start, end, r, rb, TUBE_VESSEL);
        if (rc != RSY_OK)
            return rc;
    } else {
        memcpy(end, start, sizeof end);
    }
    if (n < 2)
        return RSY_OK;
    double axis[3];
    principal_axis(v, lo, hi, c, axis);
    size_t n_first = (size_t)lround(split * (double)n);
    if (n_first < 1)
        n_first = 1;
    if (n_first > n - 1)
        n_first = n - 1;
    select_along(v, lo, hi, n_first, axis);
    size_t mid = lo + n_first;
    const size_t part[2][2] = {{lo, mid}, {mid, hi}};
    for (int ch = 0; ch < 2; ch++) {
        double rc_mm = rb * cbrt((double)(part[ch][1] - part[ch][0]) / (double)n);
        if (rc_mm < VESSEL_R_MIN_MM)
            continue;
        rsy_status rc = grow_vessel(v, end, d, rc_mm, part[ch][0], part[ch][1]);
        if (rc != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* The four space-filling trees (artery and vein of each lung); the shape stream draws each
 * root's radius and then the branches. */
static rsy_status grow_vessel_trees(thorax_model *m, size_t *cap, rsy_rng *rng)
{
    const double h = TERRITORY_STEP_MM;
    size_t n_max = (size_t)(300.0 / h + 1) * (size_t)(220.0 / h + 1) * (size_t)(330.0 / h + 1);
    vessel_ctx v = {m, cap, rng, 0, NULL, NULL};
    rsy_status rc = RSY_OK;
    v.pts = malloc(n_max * sizeof *v.pts);
    v.key = malloc(3 * n_max * sizeof *v.key);
    if (v.pts == NULL || v.key == NULL) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (size_t t = 0; t < sizeof vessel_roots / sizeof vessel_roots[0]; t++) {
        const double *root = vessel_roots[t];
        v.side = (int)root[4];
        double off = root[5] > 0.0 ? 0.5 * h : 0.0;
        size_t n = 0;
        for (double z = -230.0 + off; z < RSY__THORAX_APEX_Z_MM && n < n_max; z += h)
            for (double y = -120.0 + off; y < 100.0 && n < n_max; y += h)
                for (double x = -150.0 + off; x < 150.0 && n < n_max; x += h) {
                    double p[3] = {x, y, z};
                    if ((x > 0.0) == (v.side == 1) && rsy__thorax_lung_side(m, p) == v.side) {
                        memcpy(v.pts[n], p, sizeof p);
                        n++;
                    }
                }
        double r0 = root[3] * rsy_rng_uniform_range(rng, 1.0 - VESSEL_ROOT_R_SPREAD,
                                                    1.0 + VESSEL_ROOT_R_SPREAD);
        /* One root per lobe at the hilum (lobar arteries and veins), radius by Murray's law:
         * order the points by lobe (stable, by a counting pass) and grow each run. */
        size_t start[4] = {0, 0, 0, 0};
        for (size_t i = 0; i < n; i++)
            start[rsy__thorax_lobe(v.pts[i]) + 1]++;
        for (int l = 0; l < 3; l++)
            start[l + 1] += start[l];
        size_t fill[3] = {start[0], start[1], start[2]};
        for (size_t i = 0; i < n; i++) {
            int l = rsy__thorax_lobe(v.pts[i]);
            memcpy(&v.key[3 * fill[l]], v.pts[i], sizeof v.pts[i]);
            fill[l]++;
        }
        for (size_t i = 0; i < n; i++)
            memcpy(v.pts[i], &v.key[3 * i], sizeof v.pts[i]);
        for (int l = 0; l < 3; l++) {
            size_t nl = start[l + 1] - start[l];
            if (nl == 0)
                continue;
            rc = grow_vessel(&v, root, NULL, r0 * cbrt((double)nl / (double)n), start[l],
                             start[l + 1]);
            if (rc != RSY_OK)
                goto done;
        }
    }
done:
    free(v.pts);
    free(v.key);
    return rc;
}

/* Tubes: central airways, lobar bronchi and their trees, then the vessel trees. */
rsy_status rsy__thorax_build_tubes(thorax_model *m, rsy_rng *r)
{
    size_t cap = 0;
    rsy_status rc = RSY_OK;
    for (size_t i = 0; i < N_CENTRAL_AIRWAYS && rc == RSY_OK; i++) {
        const double *c = central_airways[i];
        rc = add_tube(m, &cap, c, c + 3, c[6], c[7], TUBE_AIRWAY);
    }
    for (size_t i = 0; i < N_LOBAR && rc == RSY_OK; i++) {
        const double *c = lobar_bronchi[i];
        double r_end = 0.95 * c[6];
        rc = add_tube(m, &cap, c, c + 3, c[6], r_end, TUBE_AIRWAY);
        double d[3] = {c[3] - c[0], c[4] - c[1], c[5] - c[2]};
        if (rc == RSY_OK)
            rc = grow_tree(m, &cap, r, c + 3, d, TREE_MAJOR * r_end, (int)c[7], TUBE_AIRWAY,
                           AIRWAY_R_MIN_MM);
    }
    if (rc == RSY_OK)
        rc = grow_vessel_trees(m, &cap, r);
    return rc;
}

static double tube_outer_radius(const tube *t, double r)
{
    return t->kind == TUBE_AIRWAY ? r * (1.0 + AIRWAY_WALL_FRAC) + AIRWAY_WALL_MIN_MM : r;
}

static int grid_cell(double v, double lo, int n)
{
    int c = (int)floor((v - lo) / GRID_CELL_MM);
    return c < 0 ? 0 : (c >= n ? n - 1 : c);
}

/* Bin every tube into the cells its bounding box overlaps (two passes: count, fill), except
 * vessels thinner than @p r_skip_mm everywhere (sub-voxel at the output grid). */
rsy_status rsy__thorax_build_grid(thorax_model *m, double r_skip_mm)
{
    const size_t n_cells = (size_t)GRID_NX * GRID_NY * GRID_NZ;
    m->cell_start = calloc(n_cells + 1, sizeof *m->cell_start);
    if (m->cell_start == NULL)
        return RSY_ENOMEM;
    const double lo[3] = {GRID_LO_X, GRID_LO_Y, GRID_LO_Z};
    const int n[3] = {GRID_NX, GRID_NY, GRID_NZ};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (size_t c = 0; c < n_cells; c++)
                m->cell_start[c + 1] += m->cell_start[c];
            size_t total = (size_t)m->cell_start[n_cells];
            m->cell_items = malloc((total ? total : 1) * sizeof *m->cell_items);
            if (m->cell_items == NULL)
                return RSY_ENOMEM;
        }
        for (size_t ti = 0; ti < m->n_tubes; ti++) {
            const tube *t = &m->tubes[ti];
            if (t->kind == TUBE_VESSEL && fmax(t->ra, t->rb) < r_skip_mm)
                continue;
            double r = tube_outer_radius(t, fmax(t->ra, t->rb));
            int c0[3], c1[3];
            for (int a = 0; a < 3; a++) {
                c0[a] = grid_cell(fmin(t->a[a], t->b[a]) - r, lo[a], n[a]);
                c1[a] = grid_cell(fmax(t->a[a], t->b[a]) + r, lo[a], n[a]);
            }
            for (int k = c0[2]; k <= c1[2]; k++)
                for (int j = c0[1]; j <= c1[1]; j++)
                    for (int i = c0[0]; i <= c1[0]; i++) {
                        size_t c = ((size_t)k * GRID_NY + (size_t)j) * GRID_NX + (size_t)i;
                        if (pass == 0)
                            m->cell_start[c + 1]++;
                        else
                            m->cell_items[m->cell_start[c]++] = (int)ti;
                    }
        }
        if (pass == 1) /* the fill advanced every start to the next cell's: shift back */
            for (size_t c = n_cells; c > 0; c--)
                m->cell_start[c] = m->cell_start[c - 1];
    }
    m->cell_start[0] = 0;
    return RSY_OK;
}

/* Strongest tube hit at p: airway lumen > airway wall > vessel. */
int rsy__thorax_tube_hit(const thorax_model *m, const double p[3])
{
    if (p[0] < GRID_LO_X || p[1] < GRID_LO_Y || p[2] < GRID_LO_Z ||
        p[0] >= GRID_LO_X + GRID_NX * GRID_CELL_MM || p[1] >= GRID_LO_Y + GRID_NY * GRID_CELL_MM ||
        p[2] >= GRID_LO_Z + GRID_NZ * GRID_CELL_MM)
        return HIT_NONE;
    size_t c = ((size_t)grid_cell(p[2], GRID_LO_Z, GRID_NZ) * GRID_NY +
                (size_t)grid_cell(p[1], GRID_LO_Y, GRID_NY)) *
                   GRID_NX +
               (size_t)grid_cell(p[0], GRID_LO_X, GRID_NX);
    int best = HIT_NONE;
    for (int it = m->cell_start[c]; it < m->cell_start[c + 1]; it++) {
        const tube *t = &m->tubes[m->cell_items[it]];
        double tt;
        double d = segment_distance(p, t->a, t->b, &tt);
        double r = t->ra + tt * (t->rb - t->ra);
        if (t->kind == TUBE_AIRWAY) {
            if (d < r)
                return HIT_AIRWAY;
            if (d < tube_outer_radius(t, r))
                best = HIT_AIRWAY_WALL;
        } else if (d < r && best == HIT_NONE) {
            best = HIT_VESSEL;
        }
    }
    return best;
}
