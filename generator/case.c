/*
 * case.c: the per-case pipeline (DESIGN.md section 2).
 *
 *   1. phantom: class map (uint16) and subject attributes;
 *   2. lesions (MRI and CT alike): sampled against the tissue map, which their mass effect
 *      deforms in place, rasterised into the class map with an instance map beside it, then
 *      the subject's volumes are measured again;
 *   3. tissue properties: one MRI property set per class id (CT: one HU per class id in the
 *      recipe's phase, lesion compartments included); with the texture model
 *      "preset" or "fitted", a texture field u drawn by the diffusion sampler (texture_case.c)
 *      makes per-voxel T1, T2 and PD maps of the textured classes;
 *   4. imaging, per channel: the signal of untextured classes from a lookup table over class
 *      ids (computed once per class), of textured voxels from their own properties; times the
 *      case's bias field, then Rician noise with the BrainWeb sigma (noise_percent of the
 *      reference tissue's noise-free signal [S47]); for CT, one channel per dose from the
 *      HU map of the same class map and texture field (ct_case.c);
 *   5. the output label map (uint8) and the lesion descriptions;
 *   6. the findings text from the lesion records measured on the voxels.
 * Every random number comes from the case's own streams (generator_internal.h), so a case
 * is the same whichever thread makes it and whatever else runs.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "generator_internal.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"

/* Subject facts: sex, age, size, deformation, then the head volumes or the body organs. */
#define RSY__SUBJECT_KV (4 + 3 + RSY_SUBJECT_MAX_ORGANS)
/* Sampled parameters per lesion: diameter, elongation, 3 semi-axes, 3 centre coordinates,
 * placement attempts, and one extent per compartment. */
#define RSY__LESION_FIXED_KV 9
/* Optional ones: lobes, the anchor's distance to the rule's reference, the mass effect's drawn
 * strength and largest displacement; per compartment its extent and, for a network, its cell
 * size. */
#define RSY__LESION_KV (RSY__LESION_FIXED_KV + 4 + 2 * RSY_MAX_COMPARTMENTS)
/* Acquisition facts: MRI, per channel the noise sigma and the reference tissue's signal, plus
 * the intensity scale; CT, per channel dose fraction, I0, kernel, noise model and measured
 * noise SD (the recipe's phase and scanner profile are written by the export). */
#define RSY__ACQ_KV (5 * RSY_MAX_SEQUENCES)
#define RSY__KEY_MAX (RSY_NAME_MAX + 32)

/* Storage behind one rsy_lesion_info. */
typedef struct gen_lesion {
    char type[RSY_NAME_MAX];
    char display_name[RSY_TEXT_MAX];
    char host[RSY_NAME_MAX];
    char region[RSY_TEXT_MAX];
    rsy_kv params[RSY__LESION_KV];
    char keys[2 * RSY_MAX_COMPARTMENTS][RSY__KEY_MAX];
} gen_lesion;

struct rsy_case {
    size_t case_index;
    rsy_volume *classes;   /* uint16 working classes */
    rsy_volume *instances; /* uint16 */
    rsy_volume *labels;    /* uint8 */
    int n_channels;
    rsy_volume *channels[RSY_MAX_SEQUENCES];
    const rsy_volume *channel_views[RSY_MAX_SEQUENCES];
    rsy_subject subject;
    rsy_kv subject_kv[RSY__SUBJECT_KV];
    char subject_keys[RSY_SUBJECT_MAX_ORGANS][48];
    int n_subject;
    rsy_kv acq_kv[RSY__ACQ_KV];
    char acq_keys[RSY__ACQ_KV][RSY__KEY_MAX];
    int n_acq;
    int n_lesions;
    gen_lesion *lesion_store;
    rsy_lesion_info *lesions;
    char *findings;
    rsy_case_timing timing;
};

/* ---------------------------------------------------------------------------------------- */
/* Accessors                                                                                  */
/* ---------------------------------------------------------------------------------------- */
void rsy_case_destroy(rsy_case *c)
{
    if (!c)
        return;
    rsy_volume_destroy(c->classes);
    rsy_volume_destroy(c->instances);
    rsy_volume_destroy(c->labels);
    for (int i = 0; i < c->n_channels; i++)
        rsy_volume_destroy(c->channels[i]);
    free(c->lesion_store);
    free(c->lesions);
    free(c->findings);
    free(c);
}

int rsy_case_n_channels(const rsy_case *c)
{
    return c ? c->n_channels : 0;
}

const rsy_volume *rsy_case_channel(const rsy_case *c, int i)
{
    return c && i >= 0 && i < c->n_channels ? c->channels[i] : NULL;
}

const rsy_volume *rsy_case_labels(const rsy_case *c)
{
    return c ? c->labels : NULL;
}
const rsy_volume *rsy_case_classes(const rsy_case *c)
{
    return c ? c->classes : NULL;
}
const rsy_volume *rsy_case_instances(const rsy_case *c)
{
    return c ? c->instances : NULL;
}
int rsy_case_n_lesions(const rsy_case *c)
{
    return c ? c->n_lesions : 0;
}
const char *rsy_case_findings(const rsy_case *c)
{
    return c ? c->findings : NULL;
}

rsy_case_timing rsy_case_get_timing(const rsy_case *c)
{
    rsy_case_timing zero = {0.0, 0.0, 0.0, 0.0, 0.0};
    return c ? c->timing : zero;
}

void rsy__case_data(const rsy_case *c, rsy_case_data *out)
{
    memset(out, 0, sizeof *out);
    out->case_index = c->case_index;
    out->channels = c->channel_views;
    out->n_channels = c->n_channels;
    out->labels = c->labels;
    out->instances = c->instances;
    out->lesions = c->lesions;
    out->n_lesions = c->n_lesions;
    out->subject = c->subject_kv;
    out->n_subject = c->n_subject;
    out->acquisition = c->acq_kv;
    out->n_acquisition = c->n_acq;
    out->findings = c->findings;
}

void rsy__case_set_export_time(rsy_case *c, double export_s)
{
    c->timing.export_s = export_s;
}

/* ---------------------------------------------------------------------------------------- */
/* Pipeline steps                                                                             */
/* ---------------------------------------------------------------------------------------- */
static rsy_kv kv_number(const char *key, double x)
{
    rsy_kv kv = {key, RSY_KV_NUMBER, x, NULL};
    return kv;
}

static rsy_kv kv_string(const char *key, const char *s)
{
    rsy_kv kv = {key, RSY_KV_STRING, 0.0, s};
    return kv;
}

static void subject_kv_fill(rsy_case *c)
{
    const rsy_subject *s = &c->subject;
    int n = 0;
    c->subject_kv[n++] = kv_string("sex", s->sex == RSY_SEX_FEMALE ? "female" : "male");
    c->subject_kv[n++] = kv_number("age_years", s->age_years);
    c->subject_kv[n++] = kv_number("size_scale", s->size_scale);
    c->subject_kv[n++] = kv_number("deformation_mm", s->deformation_mm);
    if (s->n_organs == 0) { /* the head family's volumes */
        c->subject_kv[n++] = kv_number("intracranial_ml", s->intracranial_ml);
        c->subject_kv[n++] = kv_number("brain_ml", s->brain_ml);
        c->subject_kv[n++] = kv_number("ventricles_ml", s->ventricles_ml);
    }
    /* Body families: each organ volume as "<organ>_ml" (families name them with or without
     * the suffix). */
    for (int i = 0; i < s->n_organs && i < RSY_SUBJECT_MAX_ORGANS; i++) {
        const char *name = s->organs[i].name;
        size_t len = strlen(name);
        int has_unit = len > 3 && strcmp(name + len - 3, "_ml") == 0;
        snprintf(c->subject_keys[i], sizeof c->subject_keys[i], "%.40s%s", name,
                 has_unit ? "" : "_ml");
        c->subject_kv[n++] = kv_number(c->subject_keys[i], s->organs[i].ml);
    }
    c->n_subject = n;
}

/* Class id of the voxel nearest to world point @p xyz_mm (clamped into the grid). */
static int class_at_world(const rsy_volume *classes, const double xyz_mm[3])
{
    const rsy_geometry *g = &classes->geom;
    double ijk[3];
    rsy_geometry_world_to_voxel(g, xyz_mm, ijk);
    int64_t idx[3];
    for (int a = 0; a < 3; a++) {
        double v = floor(ijk[a] + 0.5);
        idx[a] = v < 0.0 ? 0 : (v > (double)(g->dims[a] - 1) ? g->dims[a] - 1 : (int64_t)v);
    }
    size_t vox = (size_t)idx[0] +
                 (size_t)g->dims[0] * ((size_t)idx[1] + (size_t)g->dims[1] * (size_t)idx[2]);
    return ((const uint16_t *)classes->data)[vox];
}

/* The third of the superior-inferior extent of its type's host tissues that holds the centre
 * of each lesion (0 upper, 1 middle, 2 lower; -1 when no host voxel exists), on the class map
 * before rasterisation: the zones of the placement rule's zone_weights and of the findings.
 * The grid is axis-aligned (phantoms), so world z depends on k alone. */
static rsy_status lesion_zones(const rsy_recipe *r, const rsy_volume *classes,
                               const rsy_lesion_set *set, int *zone)
{
    const rsy_geometry *g = &classes->geom;
    const uint16_t *cl = classes->data;
    size_t slice = (size_t)g->dims[0] * (size_t)g->dims[1];
    for (int t = 0; t < r->n_lesion_types; t++) {
        int used = 0;
        for (int i = 0; i < set->n; i++)
            used |= set->items[i].type_index == t;
        if (!used)
            continue;
        const rsy_prior *p = &r->lesions[t].prior;
        unsigned char host[65536 / 8];
        memset(host, 0, sizeof host);
        for (int h = 0; h < p->n_hosts; h++) {
            int id = rsy_phantom_class_id(r->phantom.family, p->hosts[h]);
            if (id >= 0)
                host[id / 8] |= (unsigned char)(1u << (id % 8));
        }
        int64_t kmin = -1, kmax = -1;
        for (int64_t k = 0; k < g->dims[2]; k++) {
            const uint16_t *sl = cl + (size_t)k * slice;
            int any = 0;
            for (size_t v = 0; v < slice && !any; v++)
                any = (host[sl[v] / 8] >> (sl[v] % 8)) & 1u;
            if (any) {
                if (kmin < 0)
                    kmin = k;
                kmax = k;
            }
        }
        for (int i = 0; i < set->n; i++) {
            if (set->items[i].type_index != t)
                continue;
            zone[i] = -1;
            if (kmin < 0)
                continue;
            double a[3] = {0.0, 0.0, (double)kmin}, b[3] = {0.0, 0.0, (double)kmax}, wa[3], wb[3];
            rsy_geometry_voxel_to_world(g, a, wa);
            rsy_geometry_voxel_to_world(g, b, wb);
            double top = fmax(wa[2], wb[2]), bottom = fmin(wa[2], wb[2]);
            double f = top > bottom ? (top - set->items[i].center_mm[2]) / (top - bottom) : 0.5;
            zone[i] = f < 1.0 / 3.0 ? 0 : (f < 2.0 / 3.0 ? 1 : 2);
        }
    }
    return RSY_OK;
}

/* Describe lesion @p l (sampled against the pre-rasterisation class map) for the export. */
static void lesion_describe(const rsy_recipe *r, const rsy_case *c, const rsy_lesion *l,
                            int host_class, gen_lesion *gl, rsy_lesion_info *info)
{
    const char *family = r->phantom.family;
    const rsy_prior *p = &r->lesions[l->type_index].prior;
    snprintf(gl->type, sizeof gl->type, "%s", p->name);
    snprintf(gl->display_name, sizeof gl->display_name, "%s", p->display_name);
    const char *host = rsy_phantom_class_name(family, host_class);
    snprintf(gl->host, sizeof gl->host, "%s", host ? host : "unknown");
    rsy_phantom_describe_location(family, &c->subject, l->center_mm, gl->region, sizeof gl->region);

    double amin = l->semi_axes_mm[0], amax = l->semi_axes_mm[0];
    for (int a = 1; a < 3; a++) {
        amin = fmin(amin, l->semi_axes_mm[a]);
        amax = fmax(amax, l->semi_axes_mm[a]);
    }
    int n = 0;
    gl->params[n++] = kv_number("diameter_mm", l->diameter_mm);
    gl->params[n++] = kv_number("elongation", amin > 0.0 ? amax / amin : 1.0);
    gl->params[n++] = kv_number("semi_axis_1_mm", l->semi_axes_mm[0]);
    gl->params[n++] = kv_number("semi_axis_2_mm", l->semi_axes_mm[1]);
    gl->params[n++] = kv_number("semi_axis_3_mm", l->semi_axes_mm[2]);
    gl->params[n++] = kv_number("center_x_mm", l->center_mm[0]);
    gl->params[n++] = kv_number("center_y_mm", l->center_mm[1]);
    gl->params[n++] = kv_number("center_z_mm", l->center_mm[2]);
    gl->params[n++] = kv_number("placement_attempts", (double)l->attempts);
    if (l->n_lobes > 1)
        gl->params[n++] = kv_number("lobes", (double)l->n_lobes);
    if (p->n_reference > 0 && l->anchor_distance_mm >= 0.0)
        gl->params[n++] = kv_number("reference_distance_mm", l->anchor_distance_mm);
    if (l->mass_effect) {
        gl->params[n++] = kv_number("mass_effect_strength", l->mass_strength);
        gl->params[n++] = kv_number("mass_effect_max_mm", l->mass_max_mm);
    }
    int nk = 0;
    for (int k = 0; k < p->n_compartments; k++) {
        const rsy_compartment *cp = &p->compartments[k];
        snprintf(gl->keys[nk], sizeof gl->keys[nk], "%s.%s", cp->name,
                 rsy__gen_extent_key(cp->extent_kind));
        gl->params[n++] = kv_number(gl->keys[nk++], l->extent[k]);
        if (cp->extent_kind == RSY_EXTENT_NETWORK) {
            snprintf(gl->keys[nk], sizeof gl->keys[nk], "%s.cell_mm", cp->name);
            gl->params[n++] = kv_number(gl->keys[nk++], l->cell_mm[k]);
        }
    }
    info->instance_id = l->instance_id;
    info->type = gl->type;
    info->display_name = gl->display_name;
    info->host = gl->host;
    info->region = gl->region;
    info->params = gl->params;
    info->n_params = n;
}

/* Largest class id in a uint16 map. */
static int max_class(const rsy_volume *classes)
{
    const uint16_t *cl = classes->data;
    size_t nvox = rsy_geometry_nvox(&classes->geom);
    int m = 0;
    for (size_t v = 0; v < nvox; v++)
        if (cl[v] > m)
            m = cl[v];
    return m;
}

/* Per-voxel property maps of the textured classes (NULL arrays: uniform model). */
typedef struct prop_maps {
    float *t1_ms, *t2_ms, *pd;
} prop_maps;

/* Channels: signal per class from a lookup table, or per voxel for the textured classes; bias
 * field; Rician noise. */
static rsy_status imaging(const rsy_recipe *r, rsy_case *c, const rsy__gen_class *tab,
                          int n_classes, const rsy__gen_texture *tex, const prop_maps *maps)
{
    rsy_status rc = RSY_OK;
    rsy_rng *rng = NULL;
    float *bias = NULL, *lut = NULL;
    size_t nvox = rsy_geometry_nvox(&c->classes->geom);
    const uint16_t *cl = c->classes->data;

    bias = malloc(nvox * sizeof *bias);
    lut = malloc((size_t)n_classes * sizeof *lut);
    if (!bias || !lut) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    rc = rsy_rng_create_stream(&rng, r->seed, c->case_index, RSY__GEN_STAGE_BIAS);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy__gen_bias_field(c->classes, r->mri.bias_amplitude, r->mri.bias_scale_mm, rng, bias);
    rsy_rng_destroy(rng);
    rng = NULL;
    if (rc != RSY_OK) {
        rsy_log_error("bias field: amplitude %g and scale %g mm are out of range",
                      r->mri.bias_amplitude, r->mri.bias_scale_mm);
        goto fail;
    }

    c->acq_kv[c->n_acq++] = kv_number("intensity_scale", RSY__GEN_SIGNAL_SCALE);
    for (int ch = 0; ch < r->mri.n_sequences; ch++) {
        const rsy_sequence *seq = &r->mri.sequences[ch];
        double r1 = r->mri.gd_r1_per_mM_s;
        for (int k = 0; k < n_classes; k++)
            lut[k] = (float)(RSY__GEN_SIGNAL_SCALE * rsy_mri_signal(seq, &tab[k].props, r1));

        /* BrainWeb convention [S47]: sigma is noise_percent of the noise-free signal of the
         * reference tissue in this sequence (bias field excluded). */
        const rsy_tissue *ref = rsy_tissue_table_find(&r->tissues, seq->noise_reference);
        if (!ref) {
            rsy_log_error("sequence \"%s\": noise reference \"%s\" is not in tissue table "
                          "\"%s\"",
                          seq->name, seq->noise_reference, r->tissues.name);
            rc = RSY_EINVAL;
            goto fail;
        }
        rsy_mri_props ref_props = rsy_tissue_mri_at(ref, r->mri.field_t);
        double ref_signal = RSY__GEN_SIGNAL_SCALE * rsy_mri_signal(seq, &ref_props, r1);
        double sigma = seq->noise_percent / 100.0 * ref_signal;

        rsy_volume *img = NULL;
        rc = rsy_volume_create(&img, &c->classes->geom, RSY_DTYPE_FLOAT32);
        if (rc != RSY_OK)
            goto fail;
        c->channels[c->n_channels] = img;
        c->channel_views[c->n_channels] = img;
        c->n_channels++;
        float *px = img->data;
        if (maps->t1_ms) {
            for (size_t v = 0; v < nvox; v++) {
                if (!tex->textured[cl[v]]) {
                    px[v] = lut[cl[v]] * bias[v];
                    continue;
                }
                rsy_mri_props pv = {maps->t1_ms[v], maps->t2_ms[v], maps->pd[v],
                                    tab[cl[v]].props.gd_mM};
                px[v] = (float)(RSY__GEN_SIGNAL_SCALE * rsy_mri_signal(seq, &pv, r1)) * bias[v];
            }
        } else {
            for (size_t v = 0; v < nvox; v++)
                px[v] = lut[cl[v]] * bias[v];
        }

        rc = rsy_rng_create_stream(&rng, r->seed, c->case_index,
                                   (uint32_t)RSY_STAGE_ACQUISITION + (uint32_t)ch);
        if (rc != RSY_OK)
            goto fail;
        rsy__gen_rician(px, nvox, sigma, rng);
        rsy_rng_destroy(rng);
        rng = NULL;

        snprintf(c->acq_keys[c->n_acq], RSY__KEY_MAX, "%s.noise_sigma", seq->name);
        c->acq_kv[c->n_acq] = kv_number(c->acq_keys[c->n_acq], sigma);
        c->n_acq++;
        snprintf(c->acq_keys[c->n_acq], RSY__KEY_MAX, "%s.reference_signal", seq->name);
        c->acq_kv[c->n_acq] = kv_number(c->acq_keys[c->n_acq], ref_signal);
        c->n_acq++;
    }

fail:
    rsy_rng_destroy(rng);
    free(lut);
    free(bias);
    return rc;
}

/* CT channels (ct_case.c) and their acquisition facts. */
static rsy_status imaging_ct(const rsy_recipe *r, rsy_case *c, const rsy__gen_class *tab,
                             const rsy__gen_texture *tex, const float *u, const rsy_ct_fbp *fbp)
{
    rsy__gen_ct_result res;
    rsy_status rc = rsy__gen_ct_imaging(r, c->case_index, c->classes, tab, tex, u, fbp, &res);
    if (rc != RSY_OK)
        return rc;
    const rsy_ct_spec *ct = &r->ct;
    const char *noise = ct->noise_model == RSY_CT_NOISE_FAST ? "fast" : "projection";
    for (int ch = 0; ch < ct->n_doses; ch++) {
        c->channels[ch] = res.channels[ch];
        c->channel_views[ch] = res.channels[ch];
        c->n_channels = ch + 1;
        struct {
            const char *key;
            int is_string;
            double x;
            const char *s;
        } facts[] = {{"dose_fraction", 0, ct->doses[ch], NULL},
                     /* photons per detector bin and view for the whole slab: the profile's
                      * per-mm I₀ times the slice thickness times the dose */
                     {"i0_photons", 0,
                      ct->scanner.i0_photons * rsy__gen_ct_thickness_mm(r) * ct->doses[ch], NULL},
                     {"slice_thickness_mm", 0, rsy__gen_ct_thickness_mm(r), NULL},
                     {"kernel", 1, 0.0, rsy_ct_window_name(ct->scanner.kernel)},
                     {"noise_model", 1, 0.0, noise},
                     {"noise_sd_hu", 0, res.noise_sd_hu[ch], NULL}};
        for (size_t f = 0; f < sizeof facts / sizeof facts[0]; f++) {
            if (!facts[f].is_string && !isfinite(facts[f].x))
                continue; /* no interior voxel to measure the noise on */
            snprintf(c->acq_keys[c->n_acq], RSY__KEY_MAX, "channel_%d.%s", ch, facts[f].key);
            c->acq_kv[c->n_acq] = facts[f].is_string ? kv_string(c->acq_keys[c->n_acq], facts[f].s)
                                                     : kv_number(c->acq_keys[c->n_acq], facts[f].x);
            c->n_acq++;
        }
    }
    return RSY_OK;
}

/* Labels from classes; a second instance map restricted to the compartments inside the
 * lesion surface (for the mass size); measured records of both; then the findings. */
static rsy_status labels_and_findings(const rsy_recipe *r, rsy_case *c, const rsy__gen_class *tab,
                                      const rsy_lesion_set *set, const int *host_class,
                                      const int *zone)
{
    rsy_status rc = RSY_OK;
    rsy_volume *mass_inst = NULL;
    rsy_lesion_record *whole = NULL, *mass = NULL;
    rsy__gen_finding_lesion *fl = NULL;
    size_t nvox = rsy_geometry_nvox(&c->classes->geom);
    const uint16_t *cl = c->classes->data;
    const uint16_t *inst = c->instances->data;

    rc = rsy_volume_create(&c->labels, &c->classes->geom, RSY_DTYPE_UINT8);
    if (rc != RSY_OK)
        goto fail;
    uint8_t *lab = c->labels->data;
    for (size_t v = 0; v < nvox; v++)
        lab[v] = (uint8_t)tab[cl[v]].label;

    int n = set->n;
    if (n > 0) {
        rc = rsy_volume_create(&mass_inst, &c->classes->geom, RSY_DTYPE_UINT16);
        if (rc != RSY_OK)
            goto fail;
        uint16_t *mi = mass_inst->data;
        for (size_t v = 0; v < nvox; v++) {
            const rsy__gen_class *e = &tab[cl[v]];
            /* The mass: everything inside the lesion surface (radius fractions, walls,
             * inclusions, networks), i.e. every compartment but the margins outside it. */
            int inside = e->is_lesion &&
                         r->lesions[e->type_index].prior.compartments[e->compartment].extent_kind !=
                             RSY_EXTENT_MARGIN_MM;
            mi[v] = inside ? inst[v] : 0;
        }
        whole = calloc((size_t)n, sizeof *whole);
        mass = calloc((size_t)n, sizeof *mass);
        fl = calloc((size_t)n, sizeof *fl);
        if (!whole || !mass || !fl) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        rc = rsy_export_measure_lesions(c->instances, c->labels, n, NULL, whole);
        if (rc != RSY_OK)
            goto fail;
        rc = rsy_export_measure_lesions(mass_inst, c->labels, n, NULL, mass);
        if (rc != RSY_OK)
            goto fail;
        for (int i = 0; i < n; i++) {
            fl[i].type_index = set->items[i].type_index;
            fl[i].host_class = host_class[i];
            fl[i].region = c->lesion_store[i].region;
            fl[i].extent = set->items[i].extent;
            fl[i].zone = zone[i];
            fl[i].displacement_mm = set->items[i].mass_effect ? set->items[i].mass_max_mm : 0.0;
        }
    }
    /* Numbers in the findings text are formatted in the C locale, whatever LC_NUMERIC the
     * embedding program set, so the manifests stay byte-identical ("46.5", never "46,5"). */
    locale_t c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c_numeric) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    locale_t previous = uselocale(c_numeric);
    rc = rsy__gen_findings(r, tab, &c->classes->geom, fl, whole, mass, n, &c->findings);
    uselocale(previous);
    freelocale(c_numeric);

fail:
    free(fl);
    free(mass);
    free(whole);
    rsy_volume_destroy(mass_inst);
    return rc;
}

/* The texture stage: u drawn, normalised, and turned into property maps (texture_case.c); for
 * CT (@p u_keep not NULL) the normalised field itself is handed over instead. */
static rsy_status texture_stage(const rsy_recipe *r, const rsy_case *c, const rsy__gen_class *tab,
                                const rsy__gen_texture *tex, int n_threads, prop_maps *maps,
                                rsy_volume **u_keep)
{
    if (tex->model == RSY_TEXTURE_UNIFORM || !tex->any_textured)
        return RSY_OK;
    rsy_volume *u = NULL;
    size_t nvox = rsy_geometry_nvox(&c->classes->geom);
    rsy_status rc = rsy__gen_texture_draw(tex, r, c->case_index, c->classes, n_threads, &u);
    if (rc != RSY_OK) {
        rsy_log_error("case %zu: texture field: %s", c->case_index, rsy_strerror(rc));
        return rc;
    }
    rc = rsy__gen_texture_normalise(tex, c->classes, u->data);
    if (rc != RSY_OK)
        goto done;
    if (u_keep) {
        *u_keep = u;
        return RSY_OK;
    }
    maps->t1_ms = malloc(nvox * sizeof *maps->t1_ms);
    maps->t2_ms = malloc(nvox * sizeof *maps->t2_ms);
    maps->pd = malloc(nvox * sizeof *maps->pd);
    if (!maps->t1_ms || !maps->t2_ms || !maps->pd) {
        rc = RSY_ENOMEM;
        goto done;
    }
    rsy__gen_texture_props(tex, tab, c->classes, u->data, maps->t1_ms, maps->t2_ms, maps->pd);
done:
    rsy_volume_destroy(u);
    return rc;
}

static void prop_maps_clear(prop_maps *m)
{
    RSY_FREE(m->t1_ms);
    RSY_FREE(m->t2_ms);
    RSY_FREE(m->pd);
}

rsy_status rsy_case_generate(const rsy_recipe *r, size_t case_index, rsy_case **out)
{
    return rsy__case_generate(r, case_index, NULL, NULL, 1, out);
}

rsy_status rsy__case_generate(const rsy_recipe *r, size_t case_index, const rsy__gen_texture *tex,
                              const rsy_ct_fbp *fbp, int texture_threads, rsy_case **out)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (!r || texture_threads < 1)
        return RSY_EINVAL;
    rsy_status rc = rsy_init();
    if (rc != RSY_OK)
        return rc;
    int is_ct = strcmp(r->modality, "ct") == 0;
    if (!is_ct && strcmp(r->modality, "mri") != 0) {
        rsy_log_error("%s: modality \"%s\" has no imaging model (expected \"mri\" or \"ct\")",
                      r->path, r->modality);
        return RSY_EINVAL;
    }
    rsy_rng *rng_subject = NULL, *rng_shape = NULL, *rng_lesions = NULL;
    rsy__gen_class *tab = NULL;
    int n_classes = 0;
    int *host_class = NULL, *zone = NULL;
    rsy_lesion_set set = {0, NULL};
    rsy__gen_texture *own_tex = NULL;
    rsy_ct_fbp *own_fbp = NULL;
    rsy_volume *u = NULL;
    prop_maps maps = {NULL, NULL, NULL};
    const char *family = r->phantom.family;
    rsy_case *c = calloc(1, sizeof *c);
    if (!c)
        return RSY_ENOMEM;
    c->case_index = case_index;

    /* 1. Phantom. */
    double t0 = rsy_time_now();
    rc = rsy__gen_class_table(r, &tab, &n_classes);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_rng_create_stream(&rng_subject, r->seed, case_index, RSY_STAGE_SUBJECT);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_rng_create_stream(&rng_shape, r->seed, case_index, RSY_STAGE_PHANTOM);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_phantom_generate(&r->phantom, rng_subject, rng_shape, &c->classes, &c->subject);
    if (rc != RSY_OK)
        goto fail;
    double t1 = rsy_time_now();
    c->timing.phantom_s = t1 - t0;

    /* 2. Lesions. The host of each lesion is read before rasterisation overwrites it. */
    rc = rsy_rng_create_stream(&rng_lesions, r->seed, case_index, RSY_STAGE_LESIONS);
    if (rc != RSY_OK)
        goto fail;
    /* Sampled on the case's own class map, which the mass effect deforms in place (each push
     * computed once; rasterisation does not push again), so hosts and zones below are read in
     * the anatomy the lesions were placed in. */
    rc = rsy_lesions_sample_deform(r, family, c->classes, rng_lesions, &set);
    if (rc != RSY_OK)
        goto fail;
    if (set.n > 0) {
        host_class = malloc((size_t)set.n * sizeof *host_class);
        zone = malloc((size_t)set.n * sizeof *zone);
        c->lesion_store = calloc((size_t)set.n, sizeof *c->lesion_store);
        c->lesions = calloc((size_t)set.n, sizeof *c->lesions);
        if (!host_class || !zone || !c->lesion_store || !c->lesions) {
            rc = RSY_ENOMEM;
            goto fail;
        }
        for (int i = 0; i < set.n; i++)
            /* The engine's host at the anchor when it placed the lesion (the dural base of an
             * extra-axial one), else the class at the centre. */
            host_class[i] = set.items[i].host_class > 0
                                ? set.items[i].host_class
                                : class_at_world(c->classes, set.items[i].center_mm);
        rc = lesion_zones(r, c->classes, &set, zone);
        if (rc != RSY_OK)
            goto fail;
    }
    rc = rsy_volume_create(&c->instances, &c->classes->geom, RSY_DTYPE_UINT16);
    if (rc != RSY_OK)
        goto fail;
    rc = rsy_lesions_rasterise(r, family, &set, c->classes, c->instances);
    if (rc != RSY_OK)
        goto fail;
    rsy_phantom_measure(family, c->classes, &c->subject);
    subject_kv_fill(c);
    for (int i = 0; i < set.n; i++)
        lesion_describe(r, c, &set.items[i], host_class[i], &c->lesion_store[i], &c->lesions[i]);
    c->n_lesions = set.n;
    double t2 = rsy_time_now();
    c->timing.lesions_s = t2 - t1;

    /* 3. Texture. The class ids are checked against the table first; the uniform model gives
     * every voxel its class's properties, already held per class in the table. A run passes
     * the model it built once; a case on its own builds it here (same result: the model
     * draws no random numbers). */
    int top = max_class(c->classes);
    if (top >= n_classes) {
        rsy_log_error("class map holds class id %d, but the recipe defines only %d classes", top,
                      n_classes);
        rc = RSY_EINVAL;
        goto fail;
    }
    if (!tex) {
        rc = rsy__gen_texture_create(r, tab, n_classes, &own_tex);
        if (rc != RSY_OK)
            goto fail;
        tex = own_tex;
    }
    rc = texture_stage(r, c, tab, tex, texture_threads, &maps, is_ct ? &u : NULL);
    if (rc != RSY_OK)
        goto fail;
    double t3 = rsy_time_now();
    c->timing.texture_s = t3 - t2;

    /* 4.-6. Imaging, labels, findings. */
    if (is_ct) {
        if (!fbp) {
            rc = rsy__gen_ct_fbp_create(r, &own_fbp);
            if (rc != RSY_OK)
                goto fail;
            fbp = own_fbp;
        }
        rc = imaging_ct(r, c, tab, tex, u ? u->data : NULL, fbp);
    } else {
        rc = imaging(r, c, tab, n_classes, tex, &maps);
    }
    prop_maps_clear(&maps);
    rsy_volume_destroy(u);
    u = NULL;
    if (rc != RSY_OK)
        goto fail;
    rc = labels_and_findings(r, c, tab, &set, host_class, zone);
    if (rc != RSY_OK)
        goto fail;
    c->timing.imaging_s = rsy_time_now() - t3;

    rsy_ct_fbp_destroy(own_fbp);
    rsy__gen_texture_destroy(own_tex);
    rsy_lesion_set_clear(&set);
    free(zone);
    free(host_class);
    free(tab);
    rsy_rng_destroy(rng_lesions);
    rsy_rng_destroy(rng_shape);
    rsy_rng_destroy(rng_subject);
    *out = c;
    return RSY_OK;

fail:
    prop_maps_clear(&maps);
    rsy_volume_destroy(u);
    rsy_ct_fbp_destroy(own_fbp);
    rsy__gen_texture_destroy(own_tex);
    rsy_lesion_set_clear(&set);
    free(zone);
    free(host_class);
    free(tab);
    rsy_rng_destroy(rng_lesions);
    rsy_rng_destroy(rng_shape);
    rsy_rng_destroy(rng_subject);
    rsy_case_destroy(c);
    return rc;
}
