/*
 * measure.c: lesion records measured from an instance map (reference/formats.md, "Lesion
 * records"). docs/manifest.md states every definition used here; tests/check_dataset.py
 * re-implements them independently, so a change here must be made there and in the doc.
 *
 * RECIST long and short axes (Eisenhauer et al. 2009, "New response evaluation criteria in
 * solid tumours: revised RECIST guideline (version 1.1)", Eur J Cancer 45:228-247: the longest
 * diameter in the axial plane, and the short axis perpendicular to it) are measured between
 * voxel centres, slice by slice along k, in millimetres using the voxel spacing along i and j.
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

/* An in-plane boundary voxel of lesion @p id: one of its four in-plane neighbours (i±1, j±1)
 * lies outside the lesion or outside the volume. The extreme points of the set of voxel
 * centres in a slice (and so both ends of every longest chord, and the extremes of every
 * projection) are boundary voxels, so searching them alone gives the exact answer. */
static int is_boundary(const uint16_t *inst, const int64_t *dims, int64_t i, int64_t j, int64_t k,
                       uint16_t id)
{
    const int64_t nx = dims[0], ny = dims[1];
    const size_t base = ((size_t)k * (size_t)ny + (size_t)j) * (size_t)nx;
    if (i == 0 || i == nx - 1 || j == 0 || j == ny - 1)
        return 1;
    return inst[base + (size_t)i - 1] != id || inst[base + (size_t)i + 1] != id ||
           inst[base - (size_t)nx + (size_t)i] != id || inst[base + (size_t)nx + (size_t)i] != id;
}

/* Boundary voxels (i, j) of lesion @p id in slice @p k within the lesion's box, in scan order
 * (j outer, i inner: memory order). Returns their count. */
static size_t slice_boundary(const rsy_volume *v, const rsy_lesion_record *r, uint16_t id,
                             int64_t k, int64_t *pts)
{
    const uint16_t *inst = v->data;
    const int64_t *dims = v->geom.dims;
    size_t np = 0;
    for (int64_t j = r->bbox_min[1]; j <= r->bbox_max[1]; j++) {
        size_t row = ((size_t)k * (size_t)dims[1] + (size_t)j) * (size_t)dims[0];
        for (int64_t i = r->bbox_min[0]; i <= r->bbox_max[0]; i++) {
            if (inst[row + (size_t)i] != id || !is_boundary(inst, dims, i, j, k, id))
                continue;
            pts[2 * np] = i;
            pts[2 * np + 1] = j;
            np++;
        }
    }
    return np;
}

/* Long axis: the largest distance between two boundary voxel centres of one axial slice, over
 * all slices. Ties go to the lowest k, then to the first pair (a < b) in scan order, so the
 * result is reproducible bit for bit (tests/check_dataset.py follows the same order).
 * Short axis: on the key slice, the width of the projection of the lesion's voxel centres onto
 * the in-plane unit vector perpendicular to the long axis. A single-voxel slice has long and
 * short axis 0. @p pts has room for every voxel of one slice of the lesion's box. */
static void measure_axes(const rsy_volume *v, rsy_lesion_record *r, int64_t *pts)
{
    const uint16_t id = (uint16_t)r->instance_id;
    const double sx = v->geom.spacing_mm[0], sy = v->geom.spacing_mm[1];
    double best2 = -1.0;
    int64_t key = r->slice_min, pa[2] = {0, 0}, pb[2] = {0, 0};

    for (int64_t k = r->slice_min; k <= r->slice_max; k++) {
        size_t np = slice_boundary(v, r, id, k, pts);
        if (np > 0 && best2 < 0.0) {
            best2 = 0.0;
            key = k;
            pa[0] = pb[0] = pts[0];
            pa[1] = pb[1] = pts[1];
        }
        for (size_t a = 0; a < np; a++) {
            for (size_t b = a + 1; b < np; b++) {
                double dx = (double)(pts[2 * b] - pts[2 * a]) * sx;
                double dy = (double)(pts[2 * b + 1] - pts[2 * a + 1]) * sy;
                double d2 = dx * dx + dy * dy;
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
    r->long_axis_mm = best2 > 0.0 ? sqrt(best2) : 0.0;
    r->short_axis_mm = 0.0;
    if (!(best2 > 0.0))
        return;

    double dx = (double)(pb[0] - pa[0]) * sx, dy = (double)(pb[1] - pa[1]) * sy;
    double len = r->long_axis_mm;
    double nx = -dy / len, ny = dx / len; /* unit normal to the long axis, in plane */
    size_t np = slice_boundary(v, r, id, key, pts);
    double tmin = 0.0, tmax = 0.0;
    for (size_t p = 0; p < np; p++) {
        double t = ((double)pts[2 * p] * sx) * nx + ((double)pts[2 * p + 1] * sy) * ny;
        if (p == 0 || t < tmin)
            tmin = t;
        if (p == 0 || t > tmax)
            tmax = t;
    }
    r->short_axis_mm = tmax - tmin;
}

rsy_status rsy_export_measure_lesions(const rsy_volume *instances, const rsy_volume *labels,
                                      int n_instances, rsy_lesion_record *records)
{
    double *sums = NULL;
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

    /* One pass: voxel counts, counts per label value, index sums, boxes. */
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
            }
        }
    }

    const double voxel_mm3 = g->spacing_mm[0] * g->spacing_mm[1] * g->spacing_mm[2];
    size_t max_area = 0;
    for (int n = 0; n < n_instances; n++) {
        rsy_lesion_record *r = &records[n];
        if (r->voxel_count == 0) {
            memset(r->bbox_min, 0, sizeof r->bbox_min);
            memset(r->bbox_max, 0, sizeof r->bbox_max);
            continue;
        }
        size_t area = (size_t)(r->bbox_max[0] - r->bbox_min[0] + 1) *
                      (size_t)(r->bbox_max[1] - r->bbox_min[1] + 1);
        if (area > max_area)
            max_area = area;
        r->volume_mm3 = (double)r->voxel_count * voxel_mm3;
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
        if (!pts) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        for (int n = 0; n < n_instances; n++)
            if (records[n].voxel_count > 0)
                measure_axes(instances, &records[n], pts);
    }

fail:
    free(pts);
    free(sums);
    return rc;
}
