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

/* Per-voxel code of a lesion's box: 0 outside every compartment, else bits 0-3 the final
 * compartment + 1, bit 6 inside the surface, bit 7 drawn in the margin pass. */
#define CODE_COMP 0x0f
#define CODE_INSIDE 0x40
#define CODE_MARGIN 0x80

typedef struct lesion_raster {
    int has_box;
    rsy__box box;
    unsigned char *code;
} lesion_raster;

/* 1 if a 6-neighbour of box voxel (i, j, k) (box-relative) is outside the surface. */
static int touches_outside(const unsigned char *code, const rsy__box *b, int64_t i, int64_t j,
                           int64_t k)
{
    const int64_t nx = rsy__box_n(b, 0), ny = rsy__box_n(b, 1), nz = rsy__box_n(b, 2);
    const int64_t nb[6][3] = {{i - 1, j, k}, {i + 1, j, k}, {i, j - 1, k},
                              {i, j + 1, k}, {i, j, k - 1}, {i, j, k + 1}};
    for (int q = 0; q < 6; q++) {
        const int64_t *v = nb[q];
        if (v[0] < 0 || v[0] >= nx || v[1] < 0 || v[1] >= ny || v[2] < 0 || v[2] >= nz ||
            !(code[(v[2] * ny + v[1]) * nx + v[0]] & CODE_INSIDE))
            return 1;
    }
    return 0;
}

/* Classify every voxel of the lesion's box (see the file comment). */
static rsy_status classify(const rsy__compartments *cs, const rsy__prior_tissues *tis,
                           const uint16_t *cls, const rsy_geometry *g, lesion_raster *lr)
{
    const rsy_prior *p = cs->p;
    const rsy_lesion *l = cs->l;
    const rsy__shape *sh = &cs->shape;
    lr->has_box = voxel_box(g, l->center_mm, cs->outer_mm, &lr->box);
    if (!lr->has_box)
        return RSY_OK;
    const rsy__box *b = &lr->box;
    lr->code = calloc(rsy__box_nvox(b), 1);
    if (!lr->code)
        return RSY_ENOMEM;
    unsigned char *code = lr->code;
    /* The closed-wall rule applies only to a wall present in this lesion (extent > 0). */
    const int walls = cs->n_wall > 0 && l->extent[cs->wall[0]] > 0.0;
    const double(*a)[4] = (const double(*)[4])g->affine;
    const double outer2 = cs->outer_mm * cs->outer_mm;
    const int64_t nx = g->dims[0], ny = g->dims[1];
    const double(*m)[3] = (const double(*)[3])sh->frame[0];
    double ui[3]; /* unit-frame step of one voxel along i (single lobe) */
    for (int r = 0; r < 3; r++)
        ui[r] = m[r][0] * a[0][0] + m[r][1] * a[1][0] + m[r][2] * a[2][0];
    size_t q = 0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++) {
            double d0[3], u0[3]; /* world offset and unit-frame point at i = 0 */
            for (int r = 0; r < 3; r++)
                d0[r] = a[r][1] * (double)j + a[r][2] * (double)k + a[r][3] - l->center_mm[r];
            for (int r = 0; r < 3; r++)
                u0[r] = m[r][0] * d0[0] + m[r][1] * d0[1] + m[r][2] * d0[2];
            const uint16_t *crow = cls + (k * ny + j) * nx;
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++, q++) {
                const uint16_t cv = crow[i];
                if (!walls && (cv >= RSY__MAX_TISSUE_CLASSES || !tis->any[cv]))
                    continue;
                const double fi = (double)i;
                const double d[3] = {d0[0] + a[0][0] * fi, d0[1] + a[1][0] * fi,
                                     d0[2] + a[2][0] * fi};
                const double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                if (d2 > outer2)
                    continue;
                double rn, dist;
                if (sh->n_lobes == 1) {
                    const double u[3] = {u0[0] + ui[0] * fi, u0[1] + ui[1] * fi,
                                         u0[2] + ui[2] * fi};
                    rn = rsy__shape_radial_unit(sh, u, sqrt(d2), &dist);
                } else {
                    const double x[3] = {d[0] + l->center_mm[0], d[1] + l->center_mm[1],
                                         d[2] + l->center_mm[2]};
                    rn = rsy__shape_radial(sh, x, &dist);
                }
                const int base = rsy__compartments_base(cs, rn, dist);
                code[q] = (unsigned char)((rn < 1.0 ? CODE_INSIDE : 0) | (base + 1));
            }
        }
    /* The closed-wall rule, then nesting, then the pass of each voxel. */
    q = 0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++)
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++, q++) {
                int base = (code[q] & CODE_COMP) - 1;
                if (walls && (code[q] & CODE_INSIDE) &&
                    (base < 0 || p->compartments[base].extent_kind != RSY_EXTENT_WALL_MM) &&
                    touches_outside(code, b, i - b->lo[0], j - b->lo[1], k - b->lo[2]))
                    base = cs->wall[0];
                if (base < 0)
                    continue;
                int c = base;
                if (cs->n_nested > 0) {
                    double x[3];
                    voxel_world(g, i, j, k, x);
                    c = rsy__compartments_nest(cs, base, x);
                }
                const int margin = p->compartments[base].extent_kind == RSY_EXTENT_MARGIN_MM;
                code[q] =
                    (unsigned char)((code[q] & CODE_INSIDE) | (margin ? CODE_MARGIN : 0) | (c + 1));
            }
    return RSY_OK;
}

/* Write one lesion's compartments of one pass; returns the number of voxels written. */
static size_t write_pass(const rsy__compartments *cs, const rsy__prior_tissues *tis,
                         const lesion_raster *lr, int class_base, uint16_t *cls, uint16_t *inst,
                         const rsy_geometry *g, int margins)
{
    if (!lr->has_box)
        return 0;
    const rsy__box *b = &lr->box;
    const uint16_t id = (uint16_t)cs->l->instance_id;
    const int64_t nx = g->dims[0], ny = g->dims[1];
    size_t written = 0, q = 0;
    for (int64_t k = b->lo[2]; k <= b->hi[2]; k++)
        for (int64_t j = b->lo[1]; j <= b->hi[1]; j++) {
            const size_t row = (size_t)((k * ny + j) * nx);
            for (int64_t i = b->lo[0]; i <= b->hi[0]; i++, q++) {
                const unsigned char cd = lr->code[q];
                if (!(cd & CODE_COMP) || ((cd & CODE_MARGIN) != 0) != margins)
                    continue;
                const size_t v = row + (size_t)i;
                const uint16_t cv = cls[v];
                if (inst[v] != 0 || cv >= RSY__MAX_TISSUE_CLASSES)
                    continue;
                int c = (cd & CODE_COMP) - 1;
                while (c >= 0 && !tis->permitted[c][cv]) /* nested falls back to its parent */
                    c = cs->parent[c];
                if (c < 0)
                    continue;
                cls[v] = (uint16_t)(class_base + c);
                inst[v] = id;
                written++;
            }
        }
    return written;
}

/* Apply the push of @p l to @p classes and @p instances (the instance box only when it holds
 * a lesion voxel). */
static rsy_status replay_push(const rsy_prior *p, const rsy__prior_tissues *tis,
                              const rsy_lesion *l, rsy_volume *classes, rsy_volume *instances)
{
    rsy__box box;
    rsy_status rc = rsy__mass_effect_region(p, tis, l, &classes->geom, &box);
    if (rc != RSY_OK || box.hi[0] < box.lo[0] || box.hi[1] < box.lo[1] || box.hi[2] < box.lo[2])
        return rc;
    const size_t n = rsy__box_nvox(&box);
    uint16_t *buf = malloc(n * sizeof *buf), *ibuf = malloc(n * sizeof *ibuf);
    if (!buf || !ibuf) {
        free(buf);
        free(ibuf);
        return RSY_ENOMEM;
    }
    rsy__box_read(classes, &box, buf);
    rsy__box_read(instances, &box, ibuf);
    int inst_zero = 1;
    for (size_t q = 0; q < n && inst_zero; q++)
        inst_zero = ibuf[q] == 0;
    double unused;
    rc = rsy__mass_effect_warp(p, tis, l, &classes->geom, &box, buf, inst_zero ? NULL : ibuf, NULL,
                               0, &unused, NULL);
    if (rc == RSY_OK) {
        rsy__box_write(classes, &box, buf);
        if (!inst_zero)
            rsy__box_write(instances, &box, ibuf);
    }
    free(buf);
    free(ibuf);
    return rc;
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

rsy_status rsy_lesions_rasterise(const rsy_recipe *r, const char *family, const rsy_lesion_set *set,
                                 rsy_volume *classes, rsy_volume *instances)
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
        if (!l->mass_effect || l->mass_applied)
            continue;
        const int t = l->type_index;
        rc = replay_push(&r->lesions[t].prior, &tissues[t], l, classes, instances);
        if (rc != RSY_OK)
            return rc;
    }
    /* Two passes: every lesion's compartments inside its surface first, then the margin
     * compartments (oedema) on the voxels left. A lesion's core or enhancing rim thus always
     * beats a neighbour's oedema; within a pass the lower instance id wins. */
    const size_t n_alloc = (size_t)(set->n > 0 ? set->n : 1);
    size_t *written = calloc(n_alloc, sizeof *written);
    rsy__compartments *cs = calloc(n_alloc, sizeof *cs);
    lesion_raster *lr = calloc(n_alloc, sizeof *lr);
    int n_built = 0;
    if (!written || !cs || !lr) {
        rc = RSY_ENOMEM;
        goto done;
    }
    for (; n_built < set->n; n_built++) {
        const rsy_lesion *l = &set->items[n_built];
        const int t = l->type_index;
        rc = rsy__compartments_init(&cs[n_built], &r->lesions[t].prior, l);
        if (rc == RSY_OK)
            rc = classify(&cs[n_built], &tissues[t], classes->data, &classes->geom, &lr[n_built]);
        if (rc != RSY_OK) {
            n_built++;
            goto done;
        }
    }
    for (int margins = 0; margins <= 1; margins++) {
        for (int i = 0; i < set->n; i++) {
            const int t = set->items[i].type_index;
            const int class_base = n_tissue + rsy_lesion_compartment_offset(r, t);
            written[i] += write_pass(&cs[i], &tissues[t], &lr[i], class_base, classes->data,
                                     instances->data, &classes->geom, margins);
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
    for (int i = 0; i < n_built; i++) {
        rsy__compartments_clear(&cs[i]);
        free(lr[i].code);
    }
    free(lr);
    free(cs);
    free(written);
    return rc;
}
