/*
 * placement.c: where a lesion may go (DESIGN.md section 5; docs/priors.md "placement").
 *
 * Distance maps. Every rule but host_tissue places the lesion by its distance to reference
 * tissues; radial/tangential orientation follows the gradient of that distance. The distance
 * of a voxel is the exact Euclidean distance in mm from its centre to the nearest point of a
 * voxel of a reference tissue other than the voxel's own class (anisotropic spacing; the voxel
 * axes are orthogonal, as in every rsy_geometry): the distance to the reference tissue as a
 * region whose boundary is the voxels' faces, so grey_white_junction (hosts GM and WM,
 * reference GM and WM) measures a GM voxel's distance to WM and a WM voxel's to GM. A voxel
 * next to the reference is half a voxel from it, whatever the grid: a window of 0-2 mm
 * (juxtacortical) holds the white matter touching the cortex on every grid up to 4 mm, where
 * a distance between voxel centres would leave it empty on any grid coarser than 2 mm. One map
 * per host class that is itself a reference tissue, one shared map otherwise. Maps are
 * computed once per lesion type and case, over the hosts' bounding box grown by
 * max_distance_mm (a nearest reference voxel within that distance lies inside it), or over
 * the whole volume when only the orientation needs them; after a lesion with mass effect the
 * maps of the type being placed are computed again from the deformed class map.
 *
 * The transform is Felzenszwalb & Huttenlocher's (Theory of Computing 8, 2012, pp. 415-428):
 * an exact 1-D pass along i on the binary feature set (two sweeps), then the lower envelope of
 * parabolas along j and along k, each exact, so the result is the exact squared Euclidean
 * distance; linear in the number of voxels.
 *
 * Candidates (the anchor of a lesion). A voxel is a candidate when its class is a host and,
 * for the distance rules, its distance lies in [min_distance_mm, max_distance_mm]. Its weight
 * is the zone weight of its third of the hosts' superior-inferior extent (world z of the host
 * voxel centres: upper, middle, lower third; equal weights when the prior gives none), so an
 * anchor drawn with probability proportional to the weight is the uniform draw over the
 * candidates accepted by zone. The draw is one uniform (a binary search over per-row
 * cumulative weights, then a scan of the row) and three uniforms of jitter within the voxel,
 * so the anchor's nearest voxel is the candidate: the rule holds for the anchor's voxel.
 * Zones are strata when the weights differ: a lesion's zone is drawn first (one uniform,
 * rsy__placer_draw_zone: zone z with probability w_z N_z / sum w N, N_z its candidates) and
 * every attempt for it draws among that zone's candidates, so a lesion that fits less easily
 * in one third (a large meningioma at the skull base, a large region at the lung apex) is
 * placed there as often as the weights say: the zone shares are the prior's, and only the
 * position within the zone is conditioned on the lesion fitting. Equal weights (the default)
 * are no constraint and draw no zone.
 *
 * The anchor is the lesion centre, except for extra_axial: there the anchor is the dural base
 * (a host voxel, CSF, within the window of the inner table of the skull, the reference), the
 * lesion is turned tangential (its shortest axis along the distance gradient) and its centre
 * moved inward along the gradient to anchor + (R_n - d) n, where n is the unit gradient, d the
 * anchor's distance and R_n the lesion's radius towards the reference: the base of the lesion
 * then meets the face of the nearest reference voxel, the inner table (a broad dural base).
 * Orientation radial turns the longest axis along the gradient (Dawson's fingers), tangential the
 * shortest; the roll about it is one more uniform. Where the gradient vanishes (a ridge of
 * the distance map) the drawn random orientation is kept; extra_axial then rejects the
 * attempt.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "priors_internal.h"

#define EDT_BIG 1e30 /* "no feature" in the squared-distance passes */

/* ---------------------------------------------------------------------------------------- */
/* Exact Euclidean distance transform                                                         */
/* ---------------------------------------------------------------------------------------- */

/* Lower envelope of the parabolas s2 (p - q)^2 + f[q] over the q with f[q] < EDT_BIG
 * (Felzenszwalb & Huttenlocher 2012, algorithm DT(f)); d[p] = EDT_BIG when there is none.
 * With @p edges, the distance along this axis is measured to the feature voxel's faces (see
 * below). */
static void fh_line(const double *f, int64_t n, double s2, int edges, double *d, int64_t *v,
                    double *z)
{
    int64_t k = -1;
    for (int64_t q = 0; q < n; q++) {
        if (!(f[q] < EDT_BIG))
            continue;
        if (k < 0) {
            k = 0;
            v[0] = q;
            z[0] = -HUGE_VAL;
            z[1] = HUGE_VAL;
            continue;
        }
        const double fq = f[q] + s2 * (double)q * (double)q;
        double s;
        for (;;) {
            const int64_t p = v[k];
            s = (fq - (f[p] + s2 * (double)p * (double)p)) / (2.0 * s2 * (double)(q - p));
            if (s > z[k])
                break;
            k--; /* z[0] = -inf stops this at k = 0 */
        }
        k++;
        v[k] = q;
        z[k] = s;
        z[k + 1] = HUGE_VAL;
    }
    if (k < 0) {
        for (int64_t p = 0; p < n; p++)
            d[p] = EDT_BIG;
        return;
    }
    if (!edges) {
        k = 0;
        for (int64_t p = 0; p < n; p++) {
            while (z[k + 1] < (double)p)
                k++;
            const double dp = (double)(p - v[k]);
            d[p] = s2 * dp * dp + f[v[k]];
        }
        return;
    }
    /* Edges: the squared distance to the box of a feature voxel q != p along this axis is
     * s2 (|p - q| - 1/2)^2 = min over x = p -/+ 1/2 of s2 (x - q)^2, and 0 for q = p, so the
     * result is min(f[p], envelope(p - 1/2), envelope(p + 1/2)) (the envelope's q = p terms,
     * s2/4 + f[p], never win against f[p]). */
    int64_t ka = 0, kb = 0;
    for (int64_t p = 0; p < n; p++) {
        const double xa = (double)p - 0.5, xb = (double)p + 0.5;
        while (z[ka + 1] < xa)
            ka++;
        while (z[kb + 1] < xb)
            kb++;
        const double da = xa - (double)v[ka], db = xb - (double)v[kb];
        d[p] = fmin(f[p], fmin(s2 * da * da + f[v[ka]], s2 * db * db + f[v[kb]]));
    }
}

/* Largest reach (voxels) for which a pass takes the windowed minimum instead of the lower
 * envelope: 2 R + 1 additions per voxel along contiguous rows, vectorised, against a few
 * divisions and branches per voxel of the envelope (measured faster up to about this). */
#define WINDOW_MAX 12

/* One pass along axis @p axis (1: j, 2: k) of the truncated transform by brute force over the
 * window: out[p] = min over |dq| <= reach of out[p + dq] + s2 g(dq), with g(dq) = dq^2, or
 * with @p edges (|dq| - 1/2)^2 and g(0) = 0 (the same terms, in double and in the same order,
 * as fh_line's, so the results are the same). Exact when reach voxels along the axis exceed
 * max_mm: farther features are beyond max2 anyway. Rows are contiguous along i, so the inner
 * loop runs over i. @p live: as in edt_core (after the pass along j, rows with a value).
 * @return RSY_OK, RSY_ENOMEM. */
static rsy_status window_pass(float *out, int64_t nx, int64_t ny, int64_t nz, int axis,
                              double spacing, int edges, int64_t reach, double max2,
                              unsigned char *live)
{
    const int64_t n = axis == 1 ? ny : nz;           /* along the axis */
    const int64_t outer = axis == 1 ? nz : ny;       /* slices (k) or row indices (j) */
    const int64_t stride = axis == 1 ? nx : nx * ny; /* between consecutive rows of a line */
    const double s2 = spacing * spacing;
    double w[WINDOW_MAX + 1];
    for (int64_t q = 0; q <= reach; q++) {
        const double e = edges ? (double)q - 0.5 : (double)q;
        w[q] = q == 0 ? 0.0 : s2 * e * e;
    }
    double *acc = malloc((size_t)nx * sizeof *acc);
    float *tmp = malloc((size_t)(n * nx) * sizeof *tmp);
    unsigned char *row_live = malloc((size_t)n), *row_out = malloc((size_t)n);
    if (!acc || !tmp || !row_live || !row_out) {
        free(acc);
        free(tmp);
        free(row_live);
        free(row_out);
        return RSY_ENOMEM;
    }
    for (int64_t a = 0; a < outer; a++) {
        float *base = out + (axis == 1 ? a * nx * ny : a * nx);
        int any = 0;
        for (int64_t q = 0; q < n; q++) {
            row_live[q] = live[axis == 1 ? a * ny + q : q * ny + a];
            any |= row_live[q];
        }
        if (!any)
            continue; /* nothing within reach in this slice: it stays "none" */
        for (int64_t q = 0; q < n; q++) {
            const int64_t lo = q - reach < 0 ? 0 : q - reach;
            const int64_t hi = q + reach >= n ? n - 1 : q + reach;
            int near = 0;
            for (int64_t t = lo; t <= hi && !near; t++)
                near = row_live[t];
            row_out[q] = (unsigned char)near;
            float *o = tmp + q * nx;
            if (!near) {
                for (int64_t i = 0; i < nx; i++)
                    o[i] = INFINITY;
                continue;
            }
            const float *r0 = base + q * stride;
            for (int64_t i = 0; i < nx; i++)
                acc[i] = (double)r0[i];
            for (int64_t t = lo; t <= hi; t++) {
                if (t == q || !row_live[t])
                    continue;
                const double wt = w[t < q ? q - t : t - q];
                const float *rt = base + t * stride;
                for (int64_t i = 0; i < nx; i++) {
                    const double c = (double)rt[i] + wt;
                    acc[i] = c < acc[i] ? c : acc[i];
                }
            }
            int finite = 0;
            for (int64_t i = 0; i < nx; i++) {
                const int none = !(acc[i] <= max2);
                o[i] = none ? INFINITY : (float)acc[i];
                finite |= !none;
            }
            row_out[q] = (unsigned char)finite;
        }
        for (int64_t q = 0; q < n; q++) {
            memcpy(base + q * stride, tmp + q * nx, (size_t)nx * sizeof *tmp);
            if (axis == 1)
                live[a * ny + q] = row_out[q];
        }
    }
    free(acc);
    free(tmp);
    free(row_live);
    free(row_out);
    return RSY_OK;
}

static rsy_status edt_core(const uint16_t *cls, const int64_t dims[3], const double spacing_mm[3],
                           const rsy__box *b, const unsigned char *feature, double max_mm,
                           int edges, float *out)
{
    const int64_t nx = rsy__box_n(b, 0), ny = rsy__box_n(b, 1), nz = rsy__box_n(b, 2);
    int64_t nmax = nx > ny ? nx : ny;
    nmax = nmax > nz ? nmax : nz;
    double *f = malloc((size_t)nmax * sizeof *f), *d = malloc((size_t)nmax * sizeof *d);
    double *z = malloc((size_t)(nmax + 1) * sizeof *z);
    int64_t *v = malloc((size_t)nmax * sizeof *v);
    if (!f || !d || !z || !v) {
        free(f);
        free(d);
        free(z);
        free(v);
        return RSY_ENOMEM;
    }
    /* squared distances above max2 are "none" from the start: they cannot become <= max2 */
    const double max2 = isfinite(max_mm) ? max_mm * max_mm : HUGE_VAL;
    const double sx = spacing_mm[0];
    /* live[k * ny + j]: row (j, k) holds a finite value after the current pass, so lines and
     * slices with nothing in reach are skipped */
    unsigned char *live = calloc((size_t)(ny * nz), 1);
    if (!live) {
        free(f);
        free(d);
        free(z);
        free(v);
        return RSY_ENOMEM;
    }
    /* Pass 1, along i: distance to the nearest feature of the row, two sweeps. */
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++) {
            const uint16_t *row =
                cls + ((b->lo[2] + k) * dims[1] + (b->lo[1] + j)) * dims[0] + b->lo[0];
            float *o = out + (k * ny + j) * nx;
            int64_t last = -1;
            for (int64_t i = 0; i < nx; i++) {
                if (row[i] < RSY__MAX_TISSUE_CLASSES && feature[row[i]])
                    last = i;
                d[i] = last < 0 ? EDT_BIG : (double)(i - last);
            }
            if (last < 0) { /* no feature in the row */
                for (int64_t i = 0; i < nx; i++)
                    o[i] = INFINITY;
                continue;
            }
            live[k * ny + j] = 1;
            last = -1;
            for (int64_t i = nx - 1; i >= 0; i--) {
                if (row[i] < RSY__MAX_TISSUE_CLASSES && feature[row[i]])
                    last = i;
                if (last >= 0 && (double)(last - i) < d[i])
                    d[i] = (double)(last - i);
                /* edges: n voxels from the nearest feature is n - 1/2 voxels from its face */
                const double di = edges && d[i] > 0.0 ? d[i] - 0.5 : d[i];
                const double d2 = di * sx * di * sx;
                o[i] = d[i] >= EDT_BIG || d2 > max2 ? INFINITY : (float)d2;
            }
        }
    /* Pass 2 along j (per slice k) and pass 3 along k (per row index j): exact lower envelopes
     * on the squared distances, or with a short reach the windowed minimum. */
    for (int pass = 1; pass <= 2; pass++) {
        const int64_t reach =
            isfinite(max_mm) ? (int64_t)ceil(max_mm / spacing_mm[pass]) + 1 : WINDOW_MAX + 1;
        if (reach <= WINDOW_MAX) {
            const rsy_status rc =
                window_pass(out, nx, ny, nz, pass, spacing_mm[pass], edges, reach, max2, live);
            if (rc != RSY_OK) {
                free(live);
                free(f);
                free(d);
                free(z);
                free(v);
                return rc;
            }
            continue;
        }
        const int64_t n = pass == 1 ? ny : nz;
        const int64_t stride = pass == 1 ? nx : nx * ny;
        const int64_t outer = pass == 1 ? nz : ny;
        const double s2 = spacing_mm[pass] * spacing_mm[pass];
        for (int64_t a = 0; a < outer; a++) {
            int any_row = 0; /* a line of this slice can hold a finite value */
            for (int64_t q = 0; q < n && !any_row; q++)
                any_row = live[pass == 1 ? a * ny + q : q * ny + a];
            if (!any_row)
                continue;
            for (int64_t i = 0; i < nx; i++) {
                float *line = out + (pass == 1 ? a * nx * ny : a * nx) + i;
                int any = 0;
                for (int64_t q = 0; q < n; q++) {
                    const float x = line[q * stride];
                    f[q] = isinf(x) ? EDT_BIG : (double)x;
                    any |= !isinf(x);
                }
                if (!any)
                    continue; /* nothing within reach: the line stays "none" */
                fh_line(f, n, s2, edges, d, v, z);
                for (int64_t q = 0; q < n; q++) {
                    const int none = d[q] >= 0.5 * EDT_BIG || d[q] > max2;
                    line[q * stride] = none ? INFINITY : (float)d[q];
                    if (pass == 1 && !none)
                        live[a * ny + q] = 1;
                }
            }
        }
    }
    const size_t nvox = rsy__box_nvox(b);
    for (size_t q = 0; q < nvox; q++)
        out[q] = sqrtf(out[q]); /* sqrt(inf) = inf */
    free(live);
    free(f);
    free(d);
    free(z);
    free(v);
    return RSY_OK;
}

rsy_status rsy__edt_box(const uint16_t *cls, const int64_t dims[3], const double spacing_mm[3],
                        const rsy__box *b, const unsigned char *feature, double max_mm, float *out)
{
    return rsy__edt_box_ex(cls, dims, spacing_mm, b, feature, max_mm, 0, out);
}

rsy_status rsy__edt_box_ex(const uint16_t *cls, const int64_t dims[3], const double spacing_mm[3],
                           const rsy__box *b, const unsigned char *feature, double max_mm,
                           int edges, float *out)
{
    /* Only voxels within max_mm of a feature get a finite value: run the passes over the
     * features' bounding box grown by max_mm (exact: it holds every such voxel) and mark the
     * rest of the box "none". */
    rsy__box f = {{b->hi[0] + 1, b->hi[1] + 1, b->hi[2] + 1},
                  {b->lo[0] - 1, b->lo[1] - 1, b->lo[2] - 1}};
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++) {
            const uint16_t *row = cls + (k * dims[1] + j) * dims[0];
            int64_t first = -1, last = -1;
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++)
                if (row[i] < RSY__MAX_TISSUE_CLASSES && feature[row[i]]) {
                    last = i;
                    first = first < 0 ? i : first;
                }
            if (first < 0)
                continue;
            const int64_t v0[3] = {first, j, k}, v1[3] = {last, j, k};
            for (int a = 0; a < 3; a++) {
                f.lo[a] = v0[a] < f.lo[a] ? v0[a] : f.lo[a];
                f.hi[a] = v1[a] > f.hi[a] ? v1[a] : f.hi[a];
            }
        }
    const size_t n = rsy__box_nvox(b);
    if (f.hi[0] < f.lo[0] || !isfinite(max_mm)) {
        if (f.hi[0] < f.lo[0]) { /* no feature in the box */
            for (size_t q = 0; q < n; q++)
                out[q] = INFINITY;
            return RSY_OK;
        }
        return edt_core(cls, dims, spacing_mm, b, feature, max_mm, edges, out);
    }
    for (int a = 0; a < 3; a++) {
        const int64_t g = (int64_t)ceil(max_mm / spacing_mm[a]);
        f.lo[a] = f.lo[a] - g < b->lo[a] ? b->lo[a] : f.lo[a] - g;
        f.hi[a] = f.hi[a] + g > b->hi[a] ? b->hi[a] : f.hi[a] + g;
    }
    if (memcmp(&f, b, sizeof f) == 0)
        return edt_core(cls, dims, spacing_mm, b, feature, max_mm, edges, out);
    float *sub = malloc(rsy__box_nvox(&f) * sizeof *sub);
    if (!sub)
        return RSY_ENOMEM;
    const rsy_status rc = edt_core(cls, dims, spacing_mm, &f, feature, max_mm, edges, sub);
    if (rc == RSY_OK) {
        for (size_t q = 0; q < n; q++)
            out[q] = INFINITY;
        const int64_t bx = rsy__box_n(b, 0), by = rsy__box_n(b, 1);
        const int64_t fx = rsy__box_n(&f, 0), fy = rsy__box_n(&f, 1);
        for (int64_t k = f.lo[2]; k <= f.hi[2]; k++)
            for (int64_t j = f.lo[1]; j <= f.hi[1]; j++)
                memcpy(out + ((k - b->lo[2]) * by + (j - b->lo[1])) * bx + (f.lo[0] - b->lo[0]),
                       sub + ((k - f.lo[2]) * fy + (j - f.lo[1])) * fx, (size_t)fx * sizeof *sub);
    }
    free(sub);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The placer                                                                                 */
/* ---------------------------------------------------------------------------------------- */

struct rsy__placer {
    const rsy_prior *p;
    const rsy__prior_tissues *tis;
    rsy_geometry geom;
    const uint16_t *cls;
    rsy__box box; /* hosts' bounding box (the candidates lie in it) */
    int window;   /* distance rules: the anchor's distance must lie in [dmin, dmax] */
    double dmin, dmax;
    int n_maps; /* distance maps over map_box, 0 if the rule needs none */
    rsy__box map_box;
    float *maps[RSY_MAX_HOST_TISSUES];
    int map_of_class[RSY__MAX_TISSUE_CLASSES]; /* -1: none */
    double zmax, zspan;                        /* hosts' superior-inferior extent (world z), mm */
    double zone_w[3];
    int64_t n_rows; /* rows (j, k) of box */
    double *cum;    /* n_rows + 1 cumulative candidate weights */
    uint64_t n_candidates;
    int stratified;       /* unequal zone weights: each lesion's zone is drawn first */
    double *zcum;         /* stratified: 3 x (n_rows + 1) cumulative weights per zone */
    double zone_total[3]; /* candidate weight per zone: w_z times its candidates */
};

static int is_host(const rsy__placer *pl, uint16_t c)
{
    return c < RSY__MAX_TISSUE_CLASSES && pl->tis->hosts[c];
}

static double world_z(const rsy__placer *pl, int64_t i, int64_t j, int64_t k)
{
    const double(*a)[4] = (const double(*)[4])pl->geom.affine;
    return a[2][0] * (double)i + a[2][1] * (double)j + a[2][2] * (double)k + a[2][3];
}

/* Distance of voxel (i, j, k) (inside map_box) for host class c, or -1 without maps. */
static double map_value(const rsy__placer *pl, int c, int64_t i, int64_t j, int64_t k)
{
    if (pl->n_maps == 0 || c < 0 || c >= RSY__MAX_TISSUE_CLASSES || pl->map_of_class[c] < 0)
        return -1.0;
    const rsy__box *b = &pl->map_box;
    if (i < b->lo[0] || i > b->hi[0] || j < b->lo[1] || j > b->hi[1] || k < b->lo[2] ||
        k > b->hi[2])
        return INFINITY;
    const float *m = pl->maps[pl->map_of_class[c]];
    return m[((k - b->lo[2]) * rsy__box_n(b, 1) + (j - b->lo[1])) * rsy__box_n(b, 0) +
             (i - b->lo[0])];
}

/* Zone (0 upper, 1 middle, 2 lower third of the hosts' S-I extent) of world z. */
static int zone_index(const rsy__placer *pl, double z)
{
    const double t = pl->zspan > 0.0 ? (pl->zmax - z) / pl->zspan : 0.0;
    return t < 1.0 / 3.0 ? 0 : (t < 2.0 / 3.0 ? 1 : 2);
}

/* Zone weight of world z. */
static double zone_weight(const rsy__placer *pl, double z)
{
    return pl->zone_w[zone_index(pl, z)];
}

/* Weight of voxel (i, j, k) of class c as a candidate (0 if it is none). */
static double weight_of(const rsy__placer *pl, uint16_t c, int64_t i, int64_t j, int64_t k)
{
    if (!is_host(pl, c))
        return 0.0;
    if (pl->window) {
        const double d = map_value(pl, c, i, j, k);
        if (!(d >= pl->dmin && d <= pl->dmax))
            return 0.0;
    }
    return zone_weight(pl, world_z(pl, i, j, k));
}

static rsy_status compute_maps(rsy__placer *pl)
{
    for (int m = 0; m < pl->n_maps; m++) {
        unsigned char feature[RSY__MAX_TISSUE_CLASSES];
        memcpy(feature, pl->tis->reference, sizeof feature);
        /* the map's own host class is left out of its features (grey_white_junction) */
        for (int c = 0; c < RSY__MAX_TISSUE_CLASSES; c++)
            if (pl->map_of_class[c] == m && pl->tis->reference[c] && pl->tis->hosts[c])
                feature[c] = 0;
        /* beyond the window (and one voxel for the gradient) no value is read */
        const double reach =
            pl->window && isfinite(pl->dmax)
                ? pl->dmax + fmax(pl->geom.spacing_mm[0],
                                  fmax(pl->geom.spacing_mm[1], pl->geom.spacing_mm[2]))
                : HUGE_VAL;
        const rsy_status rc = rsy__edt_box_ex(pl->cls, pl->geom.dims, pl->geom.spacing_mm,
                                              &pl->map_box, feature, reach, 1, pl->maps[m]);
        if (rc != RSY_OK)
            return rc;
    }
    return RSY_OK;
}

/* Candidates of the box rows; @p row_hosts (host count per volume row, from host_scan) serves
 * the rows without a window when z is constant along rows. Stratified placers also sum the
 * weights of each zone (pl->zcum). */
static void fill_candidates(rsy__placer *pl, const uint32_t *row_hosts)
{
    const rsy__box *b = &pl->box;
    const int64_t nx = pl->geom.dims[0], ny = pl->geom.dims[1];
    const double(*a)[4] = (const double(*)[4])pl->geom.affine;
    /* world z is constant along a row when the i axis has no z component (every geometry of
     * rsy_geometry_init); then the zone weight is one per row */
    const int flat_rows = a[2][0] == 0.0 && !pl->window;
    const int64_t stride = pl->n_rows + 1;
    double total = 0.0, zt[3] = {0.0, 0.0, 0.0};
    uint64_t n = 0;
    pl->cum[0] = 0.0;
    if (pl->zcum)
        pl->zcum[0] = pl->zcum[stride] = pl->zcum[2 * stride] = 0.0;
    int64_t row = 0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++, row++) {
            if (flat_rows) {
                const uint32_t hosts = row_hosts[k * ny + j];
                const double z = world_z(pl, 0, j, k);
                const double w = hosts ? zone_weight(pl, z) : 0.0;
                if (w > 0.0) {
                    total += w * (double)hosts;
                    zt[zone_index(pl, z)] += w * (double)hosts;
                    n += hosts;
                }
            } else {
                const uint16_t *c = pl->cls + (k * ny + j) * nx;
                for (int64_t i = b->lo[0]; i <= b->hi[0]; i++) {
                    if (!is_host(pl, c[i]))
                        continue;
                    const double w = weight_of(pl, c[i], i, j, k);
                    total += w;
                    if (w > 0.0)
                        zt[zone_index(pl, world_z(pl, i, j, k))] += w;
                    n += w > 0.0;
                }
            }
            pl->cum[row + 1] = total;
            if (pl->zcum)
                for (int z = 0; z < 3; z++)
                    pl->zcum[z * stride + row + 1] = zt[z];
        }
    pl->n_candidates = n;
    memcpy(pl->zone_total, zt, sizeof zt);
}

/* Voxels of a row equal to h0 or h1, four at a time in a 64-bit word (SIMD within a
 * register): a lane of w ^ H is zero where the voxel equals h, and ~(((y & 0x7fff) + 0x7fff) |
 * y) & 0x8000 sets the lane's top bit exactly when the lane is zero (no carry crosses lanes). */
static uint32_t count_two(const uint16_t *c, int64_t n, uint16_t h0, uint16_t h1)
{
    const uint64_t ones = 0x0001000100010001ull, low = 0x7fff7fff7fff7fffull;
    const uint64_t high = 0x8000800080008000ull, H0 = ones * h0, H1 = ones * h1;
    uint32_t count = 0;
    int64_t i = 0;
    if (h0 == h1) {
        for (; i + 4 <= n; i += 4) {
            uint64_t w;
            memcpy(&w, c + i, sizeof w);
            const uint64_t y = w ^ H0;
            const uint64_t t = ~(((y & low) + low) | y) & high;
            count += (uint32_t)(((t >> 15) * ones) >> 48); /* sum of the four lane bits */
        }
    }
    for (; i + 4 <= n; i += 4) {
        uint64_t w;
        memcpy(&w, c + i, sizeof w);
        const uint64_t y0 = w ^ H0, y1 = w ^ H1;
        const uint64_t t = (~(((y0 & low) + low) | y0) | ~(((y1 & low) + low) | y1)) & high;
        count += (uint32_t)(((t >> 15) * ones) >> 48);
    }
    for (; i < n; i++)
        count += (uint32_t)(c[i] == h0 || c[i] == h1);
    return count;
}

/* One scan of the map: host voxels per row, the hosts' bounding box and S-I extent (world z is
 * linear in i, so along a row its extremes over the host voxels are at the first and the last
 * of them). Returns 0 if there is no host voxel. */
static int host_scan(rsy__placer *pl, uint32_t *row_hosts)
{
    const int64_t *d = pl->geom.dims;
    int64_t lo[3] = {d[0], d[1], d[2]}, hi[3] = {-1, -1, -1};
    double zmin = HUGE_VAL, zmax = -HUGE_VAL;
    unsigned char *lut = calloc(65536, 1); /* class id -> host, no bounds test per voxel */
    if (!lut)
        return -1;
    int n_ids = 0;
    uint16_t ids[2] = {0, 0};
    for (int c = 0; c < RSY__MAX_TISSUE_CLASSES; c++) {
        lut[c] = pl->tis->hosts[c];
        if (lut[c]) {
            if (n_ids < 2)
                ids[n_ids] = (uint16_t)c;
            n_ids++;
        }
    }
    if (n_ids == 1)
        ids[1] = ids[0];
    for (int64_t k = 0; k < d[2]; k++)
        for (int64_t j = 0; j < d[1]; j++) {
            const uint16_t *c = pl->cls + (k * d[1] + j) * d[0];
            uint32_t count = 0;
            if (n_ids <= 2) {
                count = count_two(c, d[0], ids[0], ids[1]);
            } else {
                for (int64_t i = 0; i < d[0]; i++)
                    count += lut[c[i]];
            }
            row_hosts[k * d[1] + j] = count;
            if (count == 0)
                continue;
            int64_t first = 0, last = d[0] - 1;
            while (!lut[c[first]])
                first++;
            while (!lut[c[last]])
                last--;
            lo[0] = first < lo[0] ? first : lo[0];
            hi[0] = last > hi[0] ? last : hi[0];
            lo[1] = j < lo[1] ? j : lo[1];
            hi[1] = j > hi[1] ? j : hi[1];
            lo[2] = k < lo[2] ? k : lo[2];
            hi[2] = k > hi[2] ? k : hi[2];
            const double z0 = world_z(pl, first, j, k), z1 = world_z(pl, last, j, k);
            zmin = fmin(zmin, fmin(z0, z1));
            zmax = fmax(zmax, fmax(z0, z1));
        }
    free(lut);
    if (hi[0] < 0)
        return 0;
    memcpy(pl->box.lo, lo, sizeof lo);
    memcpy(pl->box.hi, hi, sizeof hi);
    pl->zmax = zmax;
    pl->zspan = zmax - zmin;
    return 1;
}

static rsy_status placer_build(rsy__placer *pl)
{
    for (int m = 0; m < pl->n_maps; m++)
        RSY_FREE(pl->maps[m]);
    RSY_FREE(pl->cum);
    RSY_FREE(pl->zcum);
    pl->n_candidates = 0;
    pl->n_rows = 0;
    uint32_t *row_hosts = malloc((size_t)(pl->geom.dims[1] * pl->geom.dims[2]) * sizeof *row_hosts);
    if (!row_hosts)
        return RSY_ENOMEM;
    const int found = host_scan(pl, row_hosts);
    if (found <= 0) {
        free(row_hosts);
        return found < 0 ? RSY_ENOMEM : RSY_OK;
    }
    if (pl->n_maps > 0) {
        if (pl->window && isfinite(pl->dmax)) {
            /* the hosts' box grown by the largest distance that counts (+1 voxel) */
            for (int a = 0; a < 3; a++) {
                const int64_t g = (int64_t)ceil(pl->dmax / pl->geom.spacing_mm[a]) + 1;
                pl->map_box.lo[a] = pl->box.lo[a] - g < 0 ? 0 : pl->box.lo[a] - g;
                pl->map_box.hi[a] = pl->box.hi[a] + g >= pl->geom.dims[a] ? pl->geom.dims[a] - 1
                                                                          : pl->box.hi[a] + g;
            }
        } else {
            for (int a = 0; a < 3; a++) {
                pl->map_box.lo[a] = 0;
                pl->map_box.hi[a] = pl->geom.dims[a] - 1;
            }
        }
        for (int m = 0; m < pl->n_maps; m++) {
            pl->maps[m] = malloc(rsy__box_nvox(&pl->map_box) * sizeof *pl->maps[m]);
            if (!pl->maps[m]) {
                free(row_hosts);
                return RSY_ENOMEM;
            }
        }
        const rsy_status rc = compute_maps(pl);
        if (rc != RSY_OK) {
            free(row_hosts);
            return rc;
        }
    }
    pl->n_rows = rsy__box_n(&pl->box, 1) * rsy__box_n(&pl->box, 2);
    pl->cum = malloc((size_t)(pl->n_rows + 1) * sizeof *pl->cum);
    if (pl->stratified)
        pl->zcum = malloc(3 * (size_t)(pl->n_rows + 1) * sizeof *pl->zcum);
    if (!pl->cum || (pl->stratified && !pl->zcum)) {
        free(row_hosts);
        return RSY_ENOMEM;
    }
    fill_candidates(pl, row_hosts);
    free(row_hosts);
    return RSY_OK;
}

rsy_status rsy__placer_create(rsy__placer **out, const rsy_prior *p, const rsy__prior_tissues *tis,
                              const rsy_volume *cls)
{
    *out = NULL;
    rsy__placer *pl = calloc(1, sizeof *pl);
    if (!pl)
        return RSY_ENOMEM;
    pl->p = p;
    pl->tis = tis;
    pl->geom = cls->geom;
    pl->cls = cls->data;
    pl->window = p->rule != RSY_PLACE_HOST_TISSUE;
    pl->dmin = p->min_distance_mm > 0.0 ? p->min_distance_mm : 0.0;
    pl->dmax = p->max_distance_mm > 0.0 ? p->max_distance_mm : HUGE_VAL;
    int any_w = 0;
    for (int z = 0; z < 3; z++) {
        pl->zone_w[z] = p->zone_weights[z] > 0.0 ? p->zone_weights[z] : 0.0;
        any_w |= pl->zone_w[z] > 0.0;
    }
    if (!any_w)
        pl->zone_w[0] = pl->zone_w[1] = pl->zone_w[2] = 1.0;
    pl->stratified = !(pl->zone_w[0] == pl->zone_w[1] && pl->zone_w[1] == pl->zone_w[2]);
    for (int c = 0; c < RSY__MAX_TISSUE_CLASSES; c++)
        pl->map_of_class[c] = -1;
    const int needs_map = pl->window || p->orientation != RSY_ORIENT_RANDOM;
    int has_reference = 0;
    for (int c = 0; c < RSY__MAX_TISSUE_CLASSES; c++)
        has_reference |= tis->reference[c];
    if (needs_map && has_reference) {
        /* one map per host class that is a reference tissue, one shared by the others */
        int shared = -1;
        for (int c = 0; c < RSY__MAX_TISSUE_CLASSES; c++) {
            if (!tis->hosts[c])
                continue;
            if (tis->reference[c]) {
                pl->map_of_class[c] = pl->n_maps++;
            } else {
                if (shared < 0)
                    shared = pl->n_maps++;
                pl->map_of_class[c] = shared;
            }
        }
    } else {
        pl->window = 0; /* without reference tissues (checked by the parser) no window */
    }
    const rsy_status rc = placer_build(pl);
    if (rc != RSY_OK) {
        rsy__placer_destroy(pl);
        return rc;
    }
    *out = pl;
    return RSY_OK;
}

void rsy__placer_destroy(rsy__placer *pl)
{
    if (!pl)
        return;
    for (int m = 0; m < pl->n_maps; m++)
        free(pl->maps[m]);
    free(pl->cum);
    free(pl->zcum);
    free(pl);
}

uint64_t rsy__placer_candidates(const rsy__placer *pl)
{
    return pl ? pl->n_candidates : 0;
}

rsy_status rsy__placer_refresh(rsy__placer *pl, const rsy_volume *cls)
{
    pl->cls = cls->data;
    return placer_build(pl);
}

/* Unit world gradient of the distance map at voxel v (central differences, one-sided at the
 * edges of the map or next to an infinite value); 0 if it vanishes. */
static void gradient_at(const rsy__placer *pl, int c, const int64_t v[3], double g[3])
{
    double di[3];
    for (int a = 0; a < 3; a++) {
        int64_t lo[3] = {v[0], v[1], v[2]}, hi[3] = {v[0], v[1], v[2]};
        lo[a]--;
        hi[a]++;
        double fl = map_value(pl, c, lo[0], lo[1], lo[2]);
        double fh = map_value(pl, c, hi[0], hi[1], hi[2]);
        const double f0 = map_value(pl, c, v[0], v[1], v[2]);
        double step = 2.0;
        if (!isfinite(fl) || lo[a] < pl->map_box.lo[a]) {
            fl = f0;
            step = 1.0;
        }
        if (!isfinite(fh) || hi[a] > pl->map_box.hi[a]) {
            fh = f0;
            step = step == 2.0 ? 1.0 : 0.0;
        }
        di[a] = step > 0.0 && isfinite(fl) && isfinite(fh) ? (fh - fl) / step : 0.0;
    }
    double norm2 = 0.0;
    for (int r = 0; r < 3; r++) {
        g[r] = 0.0;
        for (int a = 0; a < 3; a++)
            g[r] +=
                pl->geom.affine[r][a] / (pl->geom.spacing_mm[a] * pl->geom.spacing_mm[a]) * di[a];
        norm2 += g[r] * g[r];
    }
    const double norm = sqrt(norm2);
    for (int r = 0; r < 3; r++)
        g[r] = norm > 1e-9 ? g[r] / norm : 0.0;
}

/* Voxel of the candidate of cumulative weight @p u (0 <= u < total) among the candidates of
 * zone @p zone (-1: all; cumulative weights @p cum, those of the zone or of all). */
static void pick(const rsy__placer *pl, const double *cum, int zone, double u, int64_t v[3])
{
    int64_t lo = 0, hi = pl->n_rows; /* cum[lo] <= u < cum[hi] */
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (cum[mid] <= u)
            lo = mid;
        else
            hi = mid;
    }
    const int64_t ny_b = rsy__box_n(&pl->box, 1);
    const int64_t j = pl->box.lo[1] + lo % ny_b, k = pl->box.lo[2] + lo / ny_b;
    const uint16_t *c = pl->cls + (k * pl->geom.dims[1] + j) * pl->geom.dims[0];
    double left = u - cum[lo];
    int64_t last = -1;
    for (int64_t i = pl->box.lo[0]; i <= pl->box.hi[0]; i++) {
        const double w = weight_of(pl, c[i], i, j, k);
        if (w <= 0.0 || (zone >= 0 && zone_index(pl, world_z(pl, i, j, k)) != zone))
            continue;
        last = i;
        if (left < w)
            break;
        left -= w;
    }
    v[0] = last; /* rounding can leave u past the row's last weight: take that voxel */
    v[1] = j;
    v[2] = k;
}

int rsy__placer_draw_zone(const rsy__placer *pl, rsy_rng *rng)
{
    if (!pl->stratified)
        return -1;
    const double total = pl->zone_total[0] + pl->zone_total[1] + pl->zone_total[2];
    const double u = rsy_rng_uniform(rng) * total;
    int z = 0;
    double acc = pl->zone_total[0];
    while (z < 2 && (u >= acc || pl->zone_total[z] <= 0.0)) {
        z++;
        acc += pl->zone_total[z];
    }
    return pl->zone_total[z] > 0.0 ? z : -1;
}

int rsy__placer_draw(const rsy__placer *pl, rsy_rng *rng, int zone, rsy_lesion *l, rsy__shape *sh)
{
    const rsy_prior *p = pl->p;
    int64_t v[3];
    if (zone >= 0 && zone < 3 && pl->zcum && pl->zone_total[zone] > 0.0) {
        const double *zc = pl->zcum + zone * (pl->n_rows + 1);
        pick(pl, zc, zone, rsy_rng_uniform(rng) * zc[pl->n_rows], v);
    } else {
        pick(pl, pl->cum, -1, rsy_rng_uniform(rng) * pl->cum[pl->n_rows], v);
    }
    double ijk[3] = {(double)v[0], (double)v[1], (double)v[2]};
    for (int a = 0; a < 3; a++)
        ijk[a] += rsy_rng_uniform(rng) - 0.5;
    rsy_geometry_voxel_to_world(&pl->geom, ijk, l->anchor_mm);
    const int c = pl->cls[(v[2] * pl->geom.dims[1] + v[1]) * pl->geom.dims[0] + v[0]];
    l->host_class = c;
    l->anchor_distance_mm = map_value(pl, c, v[0], v[1], v[2]);
    memset(l->normal, 0, sizeof l->normal);
    if (l->anchor_distance_mm >= 0.0)
        gradient_at(pl, c, v, l->normal);
    const int extra_axial = p->rule == RSY_PLACE_EXTRA_AXIAL;
    const int has_normal = l->normal[0] != 0.0 || l->normal[1] != 0.0 || l->normal[2] != 0.0;
    memcpy(l->center_mm, l->anchor_mm, sizeof l->center_mm);
    if (extra_axial || p->orientation != RSY_ORIENT_RANDOM) {
        const double roll = rsy_rng_uniform(rng);
        const int axis = extra_axial || p->orientation == RSY_ORIENT_TANGENTIAL ? 2 : 0;
        if (has_normal)
            rsy__priors_orient(l, l->normal, axis, roll);
    }
    rsy__shape_update(sh);
    if (!extra_axial)
        return 1;
    if (!has_normal)
        return 0;
    const double toward[3] = {-l->normal[0], -l->normal[1], -l->normal[2]};
    const double shift = rsy__shape_radius_along(sh, toward) - l->anchor_distance_mm;
    for (int a = 0; a < 3; a++)
        l->center_mm[a] = l->anchor_mm[a] + shift * l->normal[a];
    rsy__shape_update(sh);
    return 1;
}
