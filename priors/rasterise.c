/*
 * rasterise.c: writing sampled lesions into the class map and the instance map.
 *
 * Each voxel centre inside a lesion's bounding box is classified by the lesion's radial
 * coordinate (shape.c): it belongs to the innermost compartment that contains it, i.e.
 *  - inside the surface, the radius-fraction compartment with the smallest fraction f such
 *    that r/R < f (nested level sets of r/R, so they nest by construction);
 *  - outside it, the margin compartment with the smallest margin m such that
 *    0 < distance <= m (distance along the ray from the centre, shape.c).
 * Ties keep the compartment listed first. The voxel is written only if its current class is a
 * tissue the compartment may replace (its confined_to tissues if it has any, else the prior's
 * allowed tissues) and no lesion has taken it yet. Lesions are drawn in increasing instance id,
 * so where lesions overlap the lower id wins. Voxel centres only: no partial volume.
 *
 * Cost: one 3x3 product and, with lobulation, one evaluation of 21 closed-form harmonics per
 * voxel of the bounding box that lies in the bounding sphere and on a tissue the lesion may
 * replace; voxels outside the sphere cost one squared norm.
 */
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "priors_internal.h"

/* Compartments of one lesion ordered for the innermost-first search. */
typedef struct compartment_order {
    int n_frac, n_margin;
    int frac[RSY_MAX_COMPARTMENTS];   /* radius-fraction compartments, by increasing fraction */
    int margin[RSY_MAX_COMPARTMENTS]; /* margin compartments, by increasing margin */
} compartment_order;

/* Insertion sort of compartment indices by extent; stable, so ties keep list order. */
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

static void order_compartments(const rsy_prior *p, const rsy_lesion *l, compartment_order *o)
{
    o->n_frac = o->n_margin = 0;
    for (int c = 0; c < p->n_compartments; c++) {
        if (p->compartments[c].extent_kind == RSY_EXTENT_RADIUS_FRACTION)
            o->frac[o->n_frac++] = c;
        else
            o->margin[o->n_margin++] = c;
    }
    sort_by_extent(o->frac, o->n_frac, l->extent);
    sort_by_extent(o->margin, o->n_margin, l->extent);
}

/* Compartment containing a point with radial coordinate @p rn and ray distance @p dist_mm,
 * or -1. */
static int compartment_at(const compartment_order *o, const double *extent, double rn,
                          double dist_mm)
{
    if (rn < 1.0) {
        for (int a = 0; a < o->n_frac; a++)
            if (rn < extent[o->frac[a]])
                return o->frac[a];
        return -1;
    }
    if (dist_mm > 0.0)
        for (int a = 0; a < o->n_margin; a++)
            if (dist_mm <= extent[o->margin[a]])
                return o->margin[a];
    return -1;
}

/* Voxel index box [lo, hi] (inclusive, clamped to the volume) of the world cube of half-side
 * @p radius_mm around @p center_mm. Returns 0 if it misses the volume. */
static int voxel_box(const rsy_geometry *g, const double center_mm[3], double radius_mm,
                     int64_t lo[3], int64_t hi[3])
{
    double mn[3] = {HUGE_VAL, HUGE_VAL, HUGE_VAL}, mx[3] = {-HUGE_VAL, -HUGE_VAL, -HUGE_VAL};
    for (int corner = 0; corner < 8; corner++) {
        double xyz[3], ijk[3];
        for (int k = 0; k < 3; k++)
            xyz[k] = center_mm[k] + ((corner >> k) & 1 ? radius_mm : -radius_mm);
        rsy_geometry_world_to_voxel(g, xyz, ijk);
        for (int k = 0; k < 3; k++) {
            mn[k] = fmin(mn[k], ijk[k]);
            mx[k] = fmax(mx[k], ijk[k]);
        }
    }
    for (int k = 0; k < 3; k++) {
        const double a = fmax(0.0, ceil(mn[k]));
        const double b = fmin((double)(g->dims[k] - 1), floor(mx[k]));
        if (!(a <= b))
            return 0;
        lo[k] = (int64_t)a;
        hi[k] = (int64_t)b;
    }
    return 1;
}

/* Draw one lesion's compartments inside its surface (@p margins = 0) or outside it
 * (@p margins = 1); returns the number of voxels written. */
static size_t rasterise_one(const rsy_prior *p, const rsy__prior_tissues *tis,
                            const rsy_lesion *l, int class_base, uint16_t *cls,
                            uint16_t *inst, const rsy_geometry *g, int margins)
{
    compartment_order order;
    order_compartments(p, l, &order);
    const double outer_mm = rsy__priors_surface_bound_mm(l) + rsy__priors_margin_max_mm(p, l);
    int64_t lo[3], hi[3];
    if (!voxel_box(g, l->center_mm, outer_mm, lo, hi))
        return 0;

    double m[3][3], a[3][3], ui[3];
    rsy__priors_unit_frame(l, m);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            a[r][c] = g->affine[r][c];
    for (int r = 0; r < 3; r++) /* unit-frame step of one voxel along i */
        ui[r] = m[r][0] * a[0][0] + m[r][1] * a[1][0] + m[r][2] * a[2][0];
    const double outer2 = outer_mm * outer_mm;
    const uint16_t id = (uint16_t)l->instance_id;
    const int64_t nx = g->dims[0], ny = g->dims[1];
    size_t written = 0;

    for (int64_t k = lo[2]; k <= hi[2]; k++) {
        for (int64_t j = lo[1]; j <= hi[1]; j++) {
            double d0[3], u0[3]; /* world offset and unit-frame point at i = 0 */
            for (int r = 0; r < 3; r++)
                d0[r] = a[r][1] * (double)j + a[r][2] * (double)k + g->affine[r][3] -
                        l->center_mm[r];
            for (int r = 0; r < 3; r++)
                u0[r] = m[r][0] * d0[0] + m[r][1] * d0[1] + m[r][2] * d0[2];
            const size_t row = (size_t)((k * ny + j) * nx);
            for (int64_t i = lo[0]; i <= hi[0]; i++) {
                const size_t v = row + (size_t)i;
                const uint16_t cv = cls[v];
                if (inst[v] != 0 || cv >= RSY__MAX_TISSUE_CLASSES || !tis->any[cv])
                    continue;
                const double fi = (double)i;
                const double d[3] = {d0[0] + a[0][0] * fi, d0[1] + a[1][0] * fi,
                                     d0[2] + a[2][0] * fi};
                const double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                if (d2 > outer2)
                    continue;
                const double u[3] = {u0[0] + ui[0] * fi, u0[1] + ui[1] * fi,
                                     u0[2] + ui[2] * fi};
                double dist_mm;
                const double rn = rsy__priors_radial_unit(l, u, sqrt(d2), &dist_mm);
                const int c = compartment_at(&order, l->extent, rn, dist_mm);
                if (c < 0 || !tis->permitted[c][cv] ||
                    (p->compartments[c].extent_kind == RSY_EXTENT_MARGIN_MM) != margins)
                    continue;
                cls[v] = (uint16_t)(class_base + c);
                inst[v] = id;
                written++;
            }
        }
    }
    return written;
}

static rsy_status check_set(const rsy_recipe *r, const rsy_lesion_set *set)
{
    if (set->n < 0 || (set->n > 0 && !set->items)) {
        rsy_log_error("malformed lesion set (%d lesions)", set->n);
        return RSY_EINVAL;
    }
    int last_id = 0;
    for (int i = 0; i < set->n; i++) {
        const rsy_lesion *l = &set->items[i];
        if (l->type_index < 0 || l->type_index >= r->n_lesion_types) {
            rsy_log_error("lesion %d: type index %d, the recipe has %d lesion types",
                          l->instance_id, l->type_index, r->n_lesion_types);
            return RSY_EINVAL;
        }
        if (l->instance_id <= last_id || l->instance_id > 65535) {
            rsy_log_error("lesion %d: instance ids must increase within 1..65535", l->instance_id);
            return RSY_EINVAL;
        }
        last_id = l->instance_id;
        for (int k = 0; k < 3; k++) {
            if (!(l->semi_axes_mm[k] > 0.0) || !isfinite(l->semi_axes_mm[k]) ||
                !isfinite(l->center_mm[k])) {
                rsy_log_error("lesion %d: non-finite centre or non-positive semi-axes",
                              l->instance_id);
                return RSY_EINVAL;
            }
        }
        if (l->n_sh < 0 || l->n_sh > RSY_SH_MAX_COEFFS) {
            rsy_log_error("lesion %d: %d harmonic coefficients, expected 0..%d", l->instance_id,
                          l->n_sh, RSY_SH_MAX_COEFFS);
            return RSY_EINVAL;
        }
    }
    return RSY_OK;
}

rsy_status rsy_lesions_rasterise(const rsy_recipe *r, const char *family,
                                 const rsy_lesion_set *set, rsy_volume *classes,
                                 rsy_volume *instances)
{
    if (!r || !family || !set || !classes || !instances || !classes->data || !instances->data) {
        rsy_log_error("NULL argument");
        return RSY_EINVAL;
    }
    if (classes->dtype != RSY_DTYPE_UINT16 || instances->dtype != RSY_DTYPE_UINT16) {
        rsy_log_error("class map (%s) and instance map (%s) must be uint16",
                      rsy_dtype_name(classes->dtype), rsy_dtype_name(instances->dtype));
        return RSY_EINVAL;
    }
    if (!rsy_geometry_equal(&classes->geom, &instances->geom)) {
        rsy_log_error("class map and instance map differ in geometry");
        return RSY_EINVAL;
    }
    if (r->n_lesion_types < 0 || r->n_lesion_types > RSY_MAX_LESION_TYPES) {
        rsy_log_error("recipe has %d lesion types, expected 0..%d", r->n_lesion_types,
                      RSY_MAX_LESION_TYPES);
        return RSY_EINVAL;
    }
    const int n_tissue = rsy_phantom_n_classes(family);
    if (n_tissue <= 0) {
        rsy_log_error("unknown phantom family '%s'", family);
        return RSY_EINVAL;
    }
    if (n_tissue + rsy_lesion_compartment_total(r) > 65535) {
        rsy_log_error("%d tissue and %d lesion classes do not fit a uint16 class map", n_tissue,
                      rsy_lesion_compartment_total(r));
        return RSY_EINVAL;
    }
    rsy_status rc = check_set(r, set);
    if (rc != RSY_OK)
        return rc;

    /* Tissue sets are built once per lesion type. */
    rsy__prior_tissues tissues[RSY_MAX_LESION_TYPES];
    int built[RSY_MAX_LESION_TYPES] = {0};
    for (int i = 0; i < set->n; i++) {
        const int t = set->items[i].type_index;
        if (!built[t]) {
            rc = rsy__priors_tissues_build(family, &r->lesions[t].prior, &tissues[t]);
            if (rc != RSY_OK)
                return rc;
            built[t] = 1;
        }
    }
    /* Two passes: every lesion's compartments inside its surface first, then the margin
     * compartments (oedema) on the voxels left. A lesion's core or enhancing rim thus always
     * beats a neighbour's oedema; within a pass the lower instance id wins. */
    size_t *written = calloc((size_t)(set->n > 0 ? set->n : 1), sizeof *written);
    if (!written)
        return RSY_ENOMEM;
    for (int margins = 0; margins <= 1; margins++) {
        for (int i = 0; i < set->n; i++) {
            const rsy_lesion *l = &set->items[i];
            const int t = l->type_index;
            const int class_base = n_tissue + rsy_lesion_compartment_offset(r, t);
            written[i] += rasterise_one(&r->lesions[t].prior, &tissues[t], l, class_base,
                                        classes->data, instances->data, &classes->geom, margins);
        }
    }
    for (int i = 0; i < set->n; i++) {
        const rsy_lesion *l = &set->items[i];
        const rsy_prior *p = &r->lesions[l->type_index].prior;
        if (written[i] == 0)
            rsy_log_warning("lesion %d (prior '%s', diameter %.1f mm) covers no voxel it may "
                            "replace",
                            l->instance_id, p->name, l->diameter_mm);
        else
            rsy_log_debug("lesion %d (prior '%s'): %zu voxels", l->instance_id, p->name,
                          written[i]);
    }
    free(written);
    return RSY_OK;
}
