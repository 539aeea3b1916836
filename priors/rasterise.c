/*
 * rasterise.c: writing sampled lesions into the class map and the instance map.
 *
 * First the mass effect: the pushes recorded in the lesions (mass_effect = 1) are replayed in
 * instance order on the class map and the instance map, exactly as rsy_lesions_sample()
 * applied them to its working copy (same code, same order, same inputs), so the map is the
 * deformed anatomy the lesions were placed in.
 *
 * Then each voxel centre inside a lesion's bounding box is classified by the compartment
 * evaluator (compartments.c): the base compartment from the radial coordinate and ray distance
 * (walls, then radius fractions inside the surface; margins outside), the closed-wall rule (an
 * inside voxel with a 6-neighbour outside the surface belongs to the thinnest wall, so a wall
 * is a closed shell of voxels), then the nested inclusions and network. The voxel is written
 * only if its current class is a tissue the compartment may replace (its confined_to tissues
 * if it has any, else the prior's allowed tissues; a nested compartment that may not replace
 * it falls back to its parent) and no lesion has taken it yet. Lesions are drawn in increasing
 * instance id, so where lesions overlap the lower id wins, and in two passes: every lesion's
 * compartments inside its surface first, then the margin compartments (and what nests in
 * them), so a lesion's core or rim always beats a neighbour's oedema. Voxel centres only: no
 * partial volume.
 *
 * Cost: per voxel of the bounding box inside the bounding sphere and on a tissue the lesion
 * may replace, one 3x3 product per lobe and the surface factor (21 closed-form harmonics, or a
 * bilinear cube-map read with roughness); walled lesions evaluate their box once more for the
 * inside mask.
 */
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "priors_internal.h"

/* Voxel index box (clamped to the volume) of the world cube of half-side @p radius_mm around
 * @p center_mm. Returns 0 if it misses the volume. */
static int voxel_box(const rsy_geometry *g, const double center_mm[3], double radius_mm,
                     rsy__box *b)
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
        const double c = fmin((double)(g->dims[k] - 1), floor(mx[k]));
        if (!(a <= c))
            return 0;
        b->lo[k] = (int64_t)a;
        b->hi[k] = (int64_t)c;
    }
    return 1;
}

static void voxel_world(const rsy_geometry *g, int64_t i, int64_t j, int64_t k, double x[3])
{
    for (int r = 0; r < 3; r++)
        x[r] = g->affine[r][0] * (double)i + g->affine[r][1] * (double)j +
               g->affine[r][2] * (double)k + g->affine[r][3];
}

/* Inside mask (rn < 1) of the box, 1 byte per voxel; voxels outside the bounding sphere are
 * outside. */
static unsigned char *inside_mask(const rsy__compartments *cs, const rsy_geometry *g,
                                  const rsy__box *b)
{
    unsigned char *m = calloc(rsy__box_nvox(b), 1);
    if (!m)
        return NULL;
    const double *c = cs->l->center_mm, r2 = cs->shape.bound_mm * cs->shape.bound_mm;
    size_t q = 0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++)
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++, q++) {
                double x[3];
                voxel_world(g, i, j, k, x);
                const double d2 = (x[0] - c[0]) * (x[0] - c[0]) + (x[1] - c[1]) * (x[1] - c[1]) +
                                  (x[2] - c[2]) * (x[2] - c[2]);
                m[q] = d2 <= r2 && rsy__shape_radial(&cs->shape, x, NULL) < 1.0;
            }
    return m;
}

/* 1 if a 6-neighbour of box voxel (i, j, k) (box-relative) is outside the mask. */
static int touches_outside(const unsigned char *m, const rsy__box *b, int64_t i, int64_t j,
                           int64_t k)
{
    const int64_t nx = rsy__box_n(b, 0), ny = rsy__box_n(b, 1), nz = rsy__box_n(b, 2);
    const int64_t nb[6][3] = {{i - 1, j, k}, {i + 1, j, k}, {i, j - 1, k},
                              {i, j + 1, k}, {i, j, k - 1}, {i, j, k + 1}};
    for (int q = 0; q < 6; q++) {
        const int64_t *v = nb[q];
        if (v[0] < 0 || v[0] >= nx || v[1] < 0 || v[1] >= ny || v[2] < 0 || v[2] >= nz ||
            !m[(v[2] * ny + v[1]) * nx + v[0]])
            return 1;
    }
    return 0;
}

/* Draw one lesion's compartments inside its surface (@p margins = 0) or outside it
 * (@p margins = 1); returns the number of voxels written, or (size_t)-1 on ENOMEM. */
static size_t rasterise_one(const rsy__compartments *cs, const rsy__prior_tissues *tis,
                            int class_base, uint16_t *cls, uint16_t *inst,
                            const rsy_geometry *g, int margins)
{
    const rsy_prior *p = cs->p;
    const rsy_lesion *l = cs->l;
    rsy__box b;
    const double outer = margins ? cs->outer_mm : cs->shape.bound_mm;
    if (!voxel_box(g, l->center_mm, outer, &b))
        return 0;
    unsigned char *mask = NULL;
    if (!margins && cs->n_wall > 0) {
        mask = inside_mask(cs, g, &b);
        if (!mask)
            return (size_t)-1;
    }
    const double outer2 = outer * outer;
    const uint16_t id = (uint16_t)l->instance_id;
    const int64_t nx = g->dims[0], ny = g->dims[1];
    size_t written = 0;
    for (int64_t k = b.lo[2]; k <= b.hi[2]; k++) {
        for (int64_t j = b.lo[1]; j <= b.hi[1]; j++) {
            const size_t row = (size_t)((k * ny + j) * nx);
            for (int64_t i = b.lo[0]; i <= b.hi[0]; i++) {
                const size_t v = row + (size_t)i;
                const uint16_t cv = cls[v];
                if (inst[v] != 0 || cv >= RSY__MAX_TISSUE_CLASSES || !tis->any[cv])
                    continue;
                double x[3];
                voxel_world(g, i, j, k, x);
                const double d2 = (x[0] - l->center_mm[0]) * (x[0] - l->center_mm[0]) +
                                  (x[1] - l->center_mm[1]) * (x[1] - l->center_mm[1]) +
                                  (x[2] - l->center_mm[2]) * (x[2] - l->center_mm[2]);
                if (d2 > outer2)
                    continue;
                double dist_mm;
                const double rn = rsy__shape_radial(&cs->shape, x, &dist_mm);
                int base = rsy__compartments_base(cs, rn, dist_mm);
                if (mask && rn < 1.0 &&
                    (base < 0 || p->compartments[base].extent_kind != RSY_EXTENT_WALL_MM) &&
                    touches_outside(mask, &b, i - b.lo[0], j - b.lo[1], k - b.lo[2]))
                    base = cs->wall[0];
                if (base < 0 ||
                    (p->compartments[base].extent_kind == RSY_EXTENT_MARGIN_MM) != margins)
                    continue;
                int c = rsy__compartments_nest(cs, base, x);
                while (c >= 0 && !tis->permitted[c][cv])
                    c = c == base ? -1 : cs->parent[c];
                if (c < 0)
                    continue;
                cls[v] = (uint16_t)(class_base + c);
                inst[v] = id;
                written++;
            }
        }
    }
    free(mask);
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
        if (l->n_lobes < 0 || l->n_lobes > RSY_MAX_LOBES) {
            rsy_log_error("lesion %d: %d lobes, expected 0..%d", l->instance_id, l->n_lobes,
                          RSY_MAX_LOBES);
            return RSY_EINVAL;
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
    /* The mass effect, replayed in instance order. */
    for (int i = 0; i < set->n; i++) {
        const rsy_lesion *l = &set->items[i];
        if (!l->mass_effect)
            continue;
        const int t = l->type_index;
        double unused;
        rc = rsy__mass_effect_apply(&r->lesions[t].prior, &tissues[t], l, classes, instances,
                                    NULL, 0, &unused);
        if (rc != RSY_OK)
            return rc;
    }
    /* Two passes: every lesion's compartments inside its surface first, then the margin
     * compartments (oedema) on the voxels left. A lesion's core or enhancing rim thus always
     * beats a neighbour's oedema; within a pass the lower instance id wins. */
    size_t *written = calloc((size_t)(set->n > 0 ? set->n : 1), sizeof *written);
    rsy__compartments *cs = calloc((size_t)(set->n > 0 ? set->n : 1), sizeof *cs);
    int n_built = 0;
    if (!written || !cs) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (; n_built < set->n; n_built++) {
        const rsy_lesion *l = &set->items[n_built];
        rc = rsy__compartments_init(&cs[n_built], &r->lesions[l->type_index].prior, l);
        if (rc != RSY_OK)
            goto done;
    }
    for (int margins = 0; margins <= 1; margins++) {
        for (int i = 0; i < set->n; i++) {
            const rsy_lesion *l = &set->items[i];
            const int t = l->type_index;
            const int class_base = n_tissue + rsy_lesion_compartment_offset(r, t);
            const size_t w = rasterise_one(&cs[i], &tissues[t], class_base, classes->data,
                                           instances->data, &classes->geom, margins);
            if (w == (size_t)-1) {
                rc = RSY_ENOMEM;
                goto done;
            }
            written[i] += w;
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
done:
    for (int i = 0; i < n_built; i++)
        rsy__compartments_clear(&cs[i]);
    free(cs);
    free(written);
    return rc;
}
