/*
 * bench_priors.c: time to sample and rasterise one glioblastoma-like lesion (40 mm diameter,
 * 15 mm oedema margin, lobulated, elongated) at 1 mm in a 256^3 synthetic head class map.
 *
 * Prints one machine-readable line:
 *     bench priors lesion_256 ms_per_lesion=<x> sample_ms=<x> rasterise_ms=<x> voxels=<n> reps=<n>
 * The class map is restored before each repetition outside the timed region.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"

#define N 256
#define REPS 20

static rsy_dist fixed(double v)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_FIXED;
    d.value = d.min = d.max = v;
    return d;
}

static rsy_dist uniform(double a, double b)
{
    rsy_dist d;
    memset(&d, 0, sizeof d);
    d.kind = RSY_DIST_UNIFORM;
    d.min = a;
    d.max = b;
    return d;
}

static void add_compartment(rsy_prior *p, const char *name, rsy_extent_kind kind, rsy_dist e)
{
    rsy_compartment *c = &p->compartments[p->n_compartments++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->extent_kind = kind;
    c->extent = e;
}

static void fill_recipe(rsy_recipe *r)
{
    snprintf(r->phantom.family, sizeof r->phantom.family, "head");
    r->n_lesion_types = 1;
    r->lesions[0].probability = 1.0;
    rsy_prior *p = &r->lesions[0].prior;
    snprintf(p->name, sizeof p->name, "glioblastoma");
    p->count = fixed(1);
    p->diameter_mm = fixed(40.0);
    p->elongation = uniform(1.0, 1.5);
    p->lobulation_lmax = 4;
    p->lobulation_amplitude = 0.12;
    p->rule = RSY_PLACE_HOST_TISSUE;
    p->n_hosts = 1;
    snprintf(p->hosts[0], RSY_NAME_MAX, "white_matter");
    p->n_allowed = 3;
    snprintf(p->allowed[0], RSY_NAME_MAX, "white_matter");
    snprintf(p->allowed[1], RSY_NAME_MAX, "grey_matter");
    snprintf(p->allowed[2], RSY_NAME_MAX, "deep_grey");
    p->min_separation_mm = 10.0;
    p->max_attempts = 2000;
    add_compartment(p, "necrotic_core", RSY_EXTENT_RADIUS_FRACTION, uniform(0.35, 0.65));
    add_compartment(p, "enhancing_tumour", RSY_EXTENT_RADIUS_FRACTION, fixed(1.0));
    add_compartment(p, "oedema", RSY_EXTENT_MARGIN_MM, fixed(15.0));
    p->compartments[2].n_confined = 1;
    snprintf(p->compartments[2].confined_to[0], RSY_NAME_MAX, "white_matter");
}

/* Concentric head: white matter to 70 mm, grey matter to 85, CSF to 90, skull to 100, scalp to
 * 106 mm from the centre of a 256 mm field of view. */
static void fill_map(rsy_volume *v)
{
    uint16_t *c = v->data;
    for (int64_t k = 0; k < N; k++)
        for (int64_t j = 0; j < N; j++)
            for (int64_t i = 0; i < N; i++) {
                const double ijk[3] = {(double)i, (double)j, (double)k};
                double x[3];
                rsy_geometry_voxel_to_world(&v->geom, ijk, x);
                const double r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
                c[(k * N + j) * N + i] = r2 < 70.0 * 70.0    ? RSY_HEAD_WHITE_MATTER
                                         : r2 < 85.0 * 85.0  ? RSY_HEAD_GREY_MATTER
                                         : r2 < 90.0 * 90.0  ? RSY_HEAD_CSF
                                         : r2 < 100.0 * 100.0 ? RSY_HEAD_SKULL
                                         : r2 < 106.0 * 106.0 ? RSY_HEAD_SCALP
                                                              : RSY_HEAD_BACKGROUND;
            }
}

int main(void)
{
    int rc = 1;
    rsy_recipe *r = calloc(1, sizeof *r);
    rsy_volume *map = NULL, *cls = NULL, *inst = NULL;
    const int64_t dims[3] = {N, N, N};
    const double spacing[3] = {1.0, 1.0, 1.0};
    rsy_geometry g;
    if (!r || rsy_init() != RSY_OK || rsy_geometry_init(&g, dims, spacing) != RSY_OK ||
        rsy_volume_create(&map, &g, RSY_DTYPE_UINT16) != RSY_OK ||
        rsy_volume_create(&cls, &g, RSY_DTYPE_UINT16) != RSY_OK ||
        rsy_volume_create(&inst, &g, RSY_DTYPE_UINT16) != RSY_OK) {
        fprintf(stderr, "bench_priors: setup failed\n");
        goto done;
    }
    fill_recipe(r);
    fill_map(map);

    double t_sample = 0.0, t_raster = 0.0;
    size_t voxels = 0;
    for (int rep = 0; rep < REPS; rep++) {
        memcpy(cls->data, map->data, rsy_volume_nbytes(map));
        memset(inst->data, 0, rsy_volume_nbytes(inst));
        rsy_rng *rng = NULL;
        if (rsy_rng_create_stream(&rng, 1, (uint64_t)rep, RSY_STAGE_LESIONS) != RSY_OK)
            goto done;
        rsy_lesion_set set = {0, NULL};
        const double t0 = rsy_time_now();
        rsy_status s = rsy_lesions_sample(r, "head", map, rng, &set);
        const double t1 = rsy_time_now();
        if (s == RSY_OK)
            s = rsy_lesions_rasterise(r, "head", &set, cls, inst);
        const double t2 = rsy_time_now();
        rsy_rng_destroy(rng);
        rsy_lesion_set_clear(&set);
        if (s != RSY_OK) {
            fprintf(stderr, "bench_priors: %s\n", rsy_strerror(s));
            goto done;
        }
        t_sample += t1 - t0;
        t_raster += t2 - t1;
        const uint16_t *in = inst->data;
        for (size_t v = 0; v < rsy_geometry_nvox(&g); v++)
            voxels += in[v] != 0;
    }
    printf("bench priors lesion_256 ms_per_lesion=%.2f sample_ms=%.2f rasterise_ms=%.2f "
           "voxels=%zu reps=%d\n",
           1e3 * (t_sample + t_raster) / REPS, 1e3 * t_sample / REPS, 1e3 * t_raster / REPS,
           voxels / REPS, REPS);
    rc = 0;
done:
    rsy_volume_destroy(inst);
    rsy_volume_destroy(cls);
    rsy_volume_destroy(map);
    free(r);
    return rc;
}
