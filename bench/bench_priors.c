/*
 * bench_priors.c: lesion sampling + mass effect + rasterisation time per lesion at 1 mm in a
 * 256^3 synthetic head class map (issue 5 target: <= 50 ms per lesion on one core).
 *
 * Scenario lesion_256: one glioblastoma-like lesion per case (40 mm diameter, 15 mm oedema
 * margin, lobulated, elongated, fine roughness 0.05 at 2 mm) with mass effect (strength 0.25,
 * range 10 mm, skull fixed): sampling includes placing and pushing, rasterisation replays the
 * push and draws the compartments. lesion_256 runs rsy_lesions_sample_deform() (the push
 * deforms the map in place, once) then rsy_lesions_rasterise(); lesion_256_replay runs
 * rsy_lesions_sample() (push on a working copy) and rsy_lesions_rasterise() (push again).
 * Scenario plaques_256: 12 periventricular plaques per case (8 mm, radial orientation, a
 * 10 mm window from the ventricles), so the per-case distance map is shared by 12 lesions.
 *
 * Prints one machine-readable line per scenario:
 *     bench priors <name> ms_per_lesion=<x> sample_ms=<x> rasterise_ms=<x> voxels=<n> reps=<n>
 * (sample_ms and rasterise_ms per case). The class map is restored before each repetition
 * outside the timed region.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"

#define N 256
#ifndef REPS
#define REPS 20
#endif

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

static void set_names(char (*dst)[RSY_NAME_MAX], int *n, const char *a, const char *b,
                      const char *c)
{
    const char *names[3] = {a, b, c};
    *n = 0;
    for (int i = 0; i < 3; i++)
        if (names[i])
            snprintf(dst[(*n)++], RSY_NAME_MAX, "%s", names[i]);
}

static void fill_plaques(rsy_recipe *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->phantom.family, sizeof r->phantom.family, "head");
    r->n_lesion_types = 1;
    r->lesions[0].probability = 1.0;
    rsy_prior *p = &r->lesions[0].prior;
    snprintf(p->name, sizeof p->name, "plaques");
    p->count = fixed(12);
    p->diameter_mm = uniform(5.0, 10.0);
    p->elongation = uniform(1.5, 2.5);
    p->flatness = fixed(1.0);
    p->lobes = fixed(1.0);
    p->orientation = RSY_ORIENT_RADIAL;
    p->rule = RSY_PLACE_PERIVENTRICULAR;
    set_names(p->hosts, &p->n_hosts, "white_matter", NULL, NULL);
    set_names(p->allowed, &p->n_allowed, "white_matter", "grey_matter", NULL);
    set_names(p->reference, &p->n_reference, "ventricles", NULL, NULL);
    p->max_distance_mm = 10.0;
    p->min_separation_mm = 1.0;
    p->max_attempts = 2000;
    add_compartment(p, "plaque", RSY_EXTENT_RADIUS_FRACTION, fixed(1.0));
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
    p->flatness = fixed(1.0);
    p->lobes = fixed(1.0);
    p->roughness_amplitude = 0.05;
    p->roughness_scale_mm = 2.0;
    p->mass_effect.enabled = 1;
    p->mass_effect.strength = fixed(0.25);
    p->mass_effect.range_mm = 10.0;
    set_names(p->mass_effect.fixed, &p->mass_effect.n_fixed, "skull", NULL, NULL);
    add_compartment(p, "necrotic_core", RSY_EXTENT_RADIUS_FRACTION, uniform(0.35, 0.65));
    add_compartment(p, "enhancing_tumour", RSY_EXTENT_RADIUS_FRACTION, fixed(1.0));
    add_compartment(p, "oedema", RSY_EXTENT_MARGIN_MM, fixed(15.0));
    p->compartments[2].n_confined = 1;
    snprintf(p->compartments[2].confined_to[0], RSY_NAME_MAX, "white_matter");
}

/* Concentric head with an ellipsoidal ventricle (10 x 20 x 10 mm semi-axes, 15 mm right of the
 * centre): white matter to 70 mm, grey matter to 85, CSF to 90, skull to 100, scalp to
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
                const double v2 = (x[0] - 15.0) * (x[0] - 15.0) + x[1] * x[1] / 4.0 + x[2] * x[2];
                c[(k * N + j) * N + i] = v2 < 10.0 * 10.0     ? RSY_HEAD_VENTRICLES
                                         : r2 < 70.0 * 70.0   ? RSY_HEAD_WHITE_MATTER
                                         : r2 < 85.0 * 85.0   ? RSY_HEAD_GREY_MATTER
                                         : r2 < 90.0 * 90.0   ? RSY_HEAD_CSF
                                         : r2 < 100.0 * 100.0 ? RSY_HEAD_SKULL
                                         : r2 < 106.0 * 106.0 ? RSY_HEAD_SCALP
                                                              : RSY_HEAD_BACKGROUND;
            }
}

/* Run @p reps cases of recipe @p r on @p map; print the scenario's line. */
static int run(const char *name, const rsy_recipe *r, const rsy_volume *map, rsy_volume *cls,
               rsy_volume *inst, int reps, int deform)
{
    double t_sample = 0.0, t_raster = 0.0;
    size_t voxels = 0, lesions = 0;
    for (int rep = 0; rep < reps; rep++) {
        memcpy(cls->data, map->data, rsy_volume_nbytes(map));
        memset(inst->data, 0, rsy_volume_nbytes(inst));
        rsy_rng *rng = NULL;
        if (rsy_rng_create_stream(&rng, 1, (uint64_t)rep, RSY_STAGE_LESIONS) != RSY_OK)
            return 1;
        rsy_lesion_set set = {0, NULL};
        const double t0 = rsy_time_now();
        rsy_status s = deform ? rsy_lesions_sample_deform(r, "head", cls, rng, &set)
                              : rsy_lesions_sample(r, "head", map, rng, &set);
        const double t1 = rsy_time_now();
        if (s == RSY_OK)
            s = rsy_lesions_rasterise(r, "head", &set, cls, inst);
        const double t2 = rsy_time_now();
        rsy_rng_destroy(rng);
        lesions += (size_t)set.n;
        rsy_lesion_set_clear(&set);
        if (s != RSY_OK) {
            fprintf(stderr, "bench_priors: %s\n", rsy_strerror(s));
            return 1;
        }
        t_sample += t1 - t0;
        t_raster += t2 - t1;
        const uint16_t *in = inst->data;
        const size_t nvox = rsy_geometry_nvox(&map->geom);
        for (size_t v = 0; v < nvox; v++)
            voxels += in[v] != 0;
    }
    printf("bench priors %s ms_per_lesion=%.2f sample_ms=%.2f rasterise_ms=%.2f "
           "voxels=%zu reps=%d\n",
           name, 1e3 * (t_sample + t_raster) / (double)(lesions ? lesions : 1),
           1e3 * t_sample / reps, 1e3 * t_raster / reps, voxels / (size_t)reps, reps);
    return 0;
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
    fill_map(map);
    fill_recipe(r);
    if (run("lesion_256", r, map, cls, inst, REPS, 1) ||
        run("lesion_256_replay", r, map, cls, inst, REPS, 0))
        goto done;
    fill_plaques(r);
    if (run("plaques_256", r, map, cls, inst, REPS / 4, 1))
        goto done;
    rc = 0;
done:
    rsy_volume_destroy(inst);
    rsy_volume_destroy(cls);
    rsy_volume_destroy(map);
    free(r);
    return rc;
}
