/*
 * measure.c: lesion records measured from an instance map (reference/formats.md, "Lesion
 * records"). docs/manifest.md states every definition used here; tests/check_dataset.py
 * re-implements them independently, so a change here must be made there and in the doc.
 *
 * RECIST long and short axes (Eisenhauer et al. 2009, "New response evaluation criteria in
 * solid tumours: revised RECIST guideline (version 1.1)", Eur J Cancer 45:228-247: the longest
 * diameter in the axial plane, and the longest diameter perpendicular to it) are measured on
 * the lesion's mass (perilesional compartments such as oedema left out, as RECIST measures
 * the tumour, not the surrounding oedema), between voxel centres, slice by slice along k, in
 * millimetres using the voxel spacing along i and j.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"

double rsy__volume_get(const rsy_volume *v, size_t idx)
{
    switch (v->dtype) {
    case RSY_DTYPE_UINT8:
        return (double)((const uint8_t *)v->data)[idx];
    case RSY_DTYPE_INT16:
        return (double)((const int16_t *)v->data)[idx];
    case RSY_DTYPE_UINT16:
        return (double)((const uint16_t *)v->data)[idx];
    case RSY_DTYPE_FLOAT32:
        return (double)((const float *)v->data)[idx];
    }
    return 0.0;
}

double rsy__volume_max(const rsy_volume *v)
{
    size_t n = rsy_geometry_nvox(&v->geom);
    double m = n ? rsy__volume_get(v, 0) : 0.0;
    for (size_t i = 1; i < n; i++) {
        double x = rsy__volume_get(v, i);
        if (x > m)
            m = x;
    }
    return m;
}

/* The voxel set an axis measurement works on: the voxels of instance @p id, and, when
 * @p peri is not NULL, only those whose label is not flagged perilesional (the mass). */
typedef struct axis_set {
    const uint16_t *inst;
    const rsy_volume *labels;
    const unsigned char *peri; /* RSY_MAX_LABELS flags, or NULL = the whole lesion */
    int64_t nx, ny;
    uint16_t id;
} axis_set;

static int is_perilesional(const unsigned char *peri, double label)
{
    return peri && label < RSY_MAX_LABELS && peri[(int)label];
}

static int in_set(const axis_set *s, size_t idx)
{
    return s->inst[idx] == s->id && !is_perilesional(s->peri, rsy__volume_get(s->labels, idx));
}

/* An in-plane boundary voxel of the set: one of its four in-plane neighbours (i±1, j±1) lies
 * outside the set or outside the volume. The extreme points of the set of voxel centres in a
 * slice (so both ends of every longest chord) are boundary voxels, so searching them alone
 * gives the exact long axis. */
static int is_boundary(const axis_set *s, int64_t i, int64_t j, size_t idx)
{
    if (i == 0 || i == s->nx - 1 || j == 0 || j == s->ny - 1)
        return 1;
    return !in_set(s, idx - 1) || !in_set(s, idx + 1) || !in_set(s, idx - (size_t)s->nx) ||
           !in_set(s, idx + (size_t)s->nx);
}

/* Voxels (i, j) of the set in slice @p k within the lesion's box, in scan order (j outer,
 * i inner: memory order); only boundary voxels if @p boundary. Returns their count. */
static size_t slice_points(const axis_set *s, const rsy_lesion_record *r, int64_t k, int boundary,
                           int64_t *pts)
{
    size_t np = 0;
    for (int64_t j = r->bbox_min[1]; j <= r->bbox_max[1]; j++) {
        size_t row = ((size_t)k * (size_t)s->ny + (size_t)j) * (size_t)s->nx;
        for (int64_t i = r->bbox_min[0]; i <= r->bbox_max[0]; i++) {
            size_t idx = row + (size_t)i;
            if (!in_set(s, idx) || (boundary && !is_boundary(s, i, j, idx)))
                continue;
            pts[2 * np] = i;
            pts[2 * np + 1] = j;
            np++;
        }
    }
    return np;
}

/* Number of short-axis bins a lesion can need: bin indices run from 0 to
 * floor(L / width + 0.5) with L at most the in-plane diagonal of the lesion's box. */
static size_t bins_needed(const rsy_lesion_record *r, double sx, double sy)
{
    double dx = (double)(r->bbox_max[0] - r->bbox_min[0]) * sx;
    double dy = (double)(r->bbox_max[1] - r->bbox_min[1]) * sy;
    return (size_t)(sqrt(dx * dx + dy * dy) / fmin(sx, sy) + 0.5) + 2;
}

/* RECIST axes of the set @p s (docs/manifest.md section 4, which tests/check_dataset.py
 * follows operation for operation, so the results agree bit for bit).
 * Long axis: the largest distance between two boundary voxel centres of one axial slice, over
 * all slices. Ties go to the lowest k, then to the first pair (a < b) in scan order.
 * Short axis: the longest chord perpendicular to the long axis on the key slice. The key
 * slice's voxel centres p are projected on the long axis' unit vector u (from its first end
 * a) and on the in-plane perpendicular w; they fall in bins along u of width
 * min(sx, sy), index floor(u·(p−a) / width + 0.5); a bin's chord is max w·(p−a) − min w·(p−a);
 * the short axis is the largest chord. A slice of one voxel has long and short axis 0.
 * Square pixels (sx == sy, every phantom grid): the comparisons and the bin indices are made
 * in voxel units from integers (squared distances exactly, projections as one correctly
 * rounded division each), so ties and bin edges do not depend on the rounding of the spacing:
 * a reader of the NIfTI file, whose pixdim is the spacing rounded to float32, finds the same
 * key slice, ends and bins. Other spacings use the millimetre arithmetic throughout.
 * @p pts has room for every voxel of one slice of the lesion's box; @p bins for
 * 2·bins_needed() values. */
static void measure_axes(const axis_set *s, const double spacing[2], rsy_lesion_record *r,
                         int64_t *pts, double *bins)
{
    const double sx = spacing[0], sy = spacing[1];
    const int square = sx == sy;
    double best2 = -1.0; /* mm^2; square pixels: voxel units^2 (an integer) */
    int64_t key = r->slice_min, pa[2] = {0, 0}, pb[2] = {0, 0};

    for (int64_t k = r->slice_min; k <= r->slice_max; k++) {
        size_t np = slice_points(s, r, k, 1, pts);
        if (np > 0 && best2 < 0.0) {
            best2 = 0.0;
            key = k;
        }
        for (size_t a = 0; a < np; a++) {
            for (size_t b = a + 1; b < np; b++) {
                int64_t di = pts[2 * b] - pts[2 * a], dj = pts[2 * b + 1] - pts[2 * a + 1];
                double d2;
                if (square) {
                    d2 = (double)(di * di + dj * dj); /* exact below 2^53 */
                } else {
                    double dx = (double)di * sx, dy = (double)dj * sy;
                    d2 = dx * dx + dy * dy;
                }
                if (d2 > best2) {
                    best2 = d2;
                    key = k;
                    pa[0] = pts[2 * a];
                    pa[1] = pts[2 * a + 1];
                    pb[0] = pts[2 * b];
                    pb[1] = pts[2 * b + 1];
                }
            }
        }
    }
    r->key_slice = key;
    r->short_axis_mm = 0.0;
    if (!(best2 > 0.0)) {
        r->long_axis_mm = 0.0;
        return;
    }
    /* In the units of the comparisons: voxels for square pixels, mm otherwise. */
    const double len = sqrt(best2), unit = square ? sx : 1.0;
    const double gx = square ? 1.0 : sx, gy = square ? 1.0 : sy;
    r->long_axis_mm = len * unit;

    const int64_t li = pb[0] - pa[0], lj = pb[1] - pa[1];
    const double ux = (double)li * gx / len, uy = (double)lj * gy / len;
    const double wx = -uy, wy = ux;
    const double width = square ? 1.0 : fmin(sx, sy);
    const size_t nb = bins_needed(r, sx, sy);
    for (size_t b = 0; b < nb; b++) {
        bins[2 * b] = INFINITY;
        bins[2 * b + 1] = -INFINITY;
    }
    size_t np = slice_points(s, r, key, 0, pts);
    for (size_t p = 0; p < np; p++) {
        int64_t di = pts[2 * p] - pa[0], dj = pts[2 * p + 1] - pa[1];
        double along, across;
        if (square) {
            along = (double)(di * li + dj * lj) / len;
            across = (double)(dj * li - di * lj) / len;
        } else {
            double dx = (double)di * sx, dy = (double)dj * sy;
            along = dx * ux + dy * uy;
            across = dx * wx + dy * wy;
        }
        /* along lies in [0, L] up to rounding (a and b are the farthest pair of the slice),
         * so the index lies in [0, nb - 2]; the clamp only guards against rounding. */
        double fb = floor(along / width + 0.5);
        size_t b = fb <= 0.0 ? 0 : fb >= (double)(nb - 1) ? nb - 1 : (size_t)fb;
        bins[2 * b] = fmin(bins[2 * b], across);
        bins[2 * b + 1] = fmax(bins[2 * b + 1], across);
    }
    double best = 0.0;
    for (size_t b = 0; b < nb; b++)
        if (bins[2 * b + 1] - bins[2 * b] > best)
            best = bins[2 * b + 1] - bins[2 * b];
    r->short_axis_mm = best * unit;
}

rsy_status rsy_export_measure_lesions(const rsy_volume *instances, const rsy_volume *labels,
                                      int n_instances, const unsigned char *perilesional,
                                      rsy_lesion_record *records)
{
    double *sums = NULL, *bins = NULL;
    int64_t *pts = NULL;
    rsy_status rc = RSY_OK;

    if (!instances || !labels || (!records && n_instances > 0) || n_instances < 0 ||
        n_instances > UINT16_MAX) {
        rsy_log_error("invalid arguments (n_instances %d)", n_instances);
        return RSY_EINVAL;
    }
    if (instances->dtype != RSY_DTYPE_UINT16 ||
        (labels->dtype != RSY_DTYPE_UINT8 && labels->dtype != RSY_DTYPE_UINT16)) {
        rsy_log_error("instance map must be uint16 (is %s), label map uint8 or uint16 (is %s)",
                      rsy_dtype_name(instances->dtype), rsy_dtype_name(labels->dtype));
        return RSY_EINVAL;
    }
    if (!rsy_geometry_equal(&instances->geom, &labels->geom)) {
        rsy_log_error("instance map and label map differ in geometry");
        return RSY_EINVAL;
    }
    for (int n = 0; n < n_instances; n++) {
        memset(&records[n], 0, sizeof records[n]);
        records[n].instance_id = n + 1;
        for (int a = 0; a < 3; a++) {
            records[n].bbox_min[a] = INT64_MAX;
            records[n].bbox_max[a] = -1;
        }
    }
    if (n_instances == 0)
        return RSY_OK;

    sums = calloc((size_t)n_instances * 3, sizeof *sums);
    if (!sums) {
        rc = RSY_ENOMEM;
        goto fail;
    }

    /* One pass: voxel counts (whole and mass), counts per label value, index sums, boxes. */
    const rsy_geometry *g = &instances->geom;
    const uint16_t *inst = instances->data;
    size_t idx = 0;
    for (int64_t k = 0; k < g->dims[2]; k++) {
        for (int64_t j = 0; j < g->dims[1]; j++) {
            for (int64_t i = 0; i < g->dims[0]; i++, idx++) {
                unsigned id = inst[idx];
                if (id == 0 || id > (unsigned)n_instances)
                    continue;
                rsy_lesion_record *r = &records[id - 1];
                const int64_t ijk[3] = {i, j, k};
                r->voxel_count++;
                for (int a = 0; a < 3; a++) {
                    sums[3 * (id - 1) + (unsigned)a] += (double)ijk[a];
                    if (ijk[a] < r->bbox_min[a])
                        r->bbox_min[a] = ijk[a];
                    if (ijk[a] > r->bbox_max[a])
                        r->bbox_max[a] = ijk[a];
                }
                double lv = rsy__volume_get(labels, idx);
                if (lv < RSY_MAX_LABELS)
                    r->label_voxels[(int)lv]++;
                if (!is_perilesional(perilesional, lv))
                    r->mass_voxel_count++;
            }
        }
    }

    const double voxel_mm3 = g->spacing_mm[0] * g->spacing_mm[1] * g->spacing_mm[2];
    size_t max_area = 0, max_bins = 0;
    for (int n = 0; n < n_instances; n++) {
        rsy_lesion_record *r = &records[n];
        if (r->voxel_count == 0) {
            memset(r->bbox_min, 0, sizeof r->bbox_min);
            memset(r->bbox_max, 0, sizeof r->bbox_max);
            continue;
        }
        size_t area = (size_t)(r->bbox_max[0] - r->bbox_min[0] + 1) *
                      (size_t)(r->bbox_max[1] - r->bbox_min[1] + 1);
        size_t nb = bins_needed(r, g->spacing_mm[0], g->spacing_mm[1]);
        if (area > max_area)
            max_area = area;
        if (nb > max_bins)
            max_bins = nb;
        r->volume_mm3 = (double)r->voxel_count * voxel_mm3;
        r->mass_volume_mm3 = (double)r->mass_voxel_count * voxel_mm3;
        double centre[3];
        for (int a = 0; a < 3; a++) {
            r->centroid_vox[a] = sums[3 * n + a] / (double)r->voxel_count;
            centre[a] = 0.5 * (double)(r->bbox_min[a] + r->bbox_max[a]);
            r->box_cccwhd_mm[3 + a] =
                (double)(r->bbox_max[a] - r->bbox_min[a] + 1) * g->spacing_mm[a];
        }
        rsy_geometry_voxel_to_world(g, r->centroid_vox, r->centroid_mm);
        rsy_geometry_voxel_to_world(g, centre, r->box_cccwhd_mm);
        r->slice_min = r->bbox_min[2];
        r->slice_max = r->bbox_max[2];
        /* Sphere of equal volume: V = (π/6)·d³. */
        r->equivalent_diameter_mm = cbrt(6.0 * r->volume_mm3 / M_PI);
    }

    if (max_area > 0) {
        pts = malloc(max_area * 2 * sizeof *pts);
        bins = malloc(max_bins * 2 * sizeof *bins);
        if (!pts || !bins) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        axis_set set = {inst, labels, NULL, g->dims[0], g->dims[1], 0};
        for (int n = 0; n < n_instances; n++) {
            if (records[n].voxel_count == 0)
                continue;
            set.id = (uint16_t)records[n].instance_id;
            /* The mass alone when it has a voxel, else the whole lesion. */
            set.peri = records[n].mass_voxel_count > 0 ? perilesional : NULL;
            measure_axes(&set, g->spacing_mm, &records[n], pts, bins);
        }
    }

fail:
    free(bins);
    free(pts);
    free(sums);
    return rc;
}
