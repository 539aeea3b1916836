/*
 * generator_internal.h: declarations shared by the .c files of generator/ and by
 * tests/test_generator.c. Never installed.
 *
 * Random streams of one case (rsy_rng_create_stream(recipe seed, case index, stage)):
 *   (CT: RSY_STAGE_ACQUISITION + c is the noise of dose channel c, drawn slice by slice in
 *   slice order; there is no bias field)
 *   RSY_STAGE_SUBJECT         subject attributes (phantoms)
 *   RSY_STAGE_PHANTOM         anatomy shape and deformation (phantoms)
 *   RSY_STAGE_LESIONS         lesion count, size, shape, placement (priors)
 *   RSY_STAGE_ACQUISITION + c Rician noise of channel c (c < RSY_MAX_SEQUENCES), so channels
 *                             are independent and adding a channel leaves the others unchanged
 *   RSY__GEN_STAGE_BIAS       the receive bias field, shared by all channels of the case
 *   RSY_STAGE_TEXTURE         the texture field u (models "preset" and "fitted"; the uniform
 *                             model draws nothing)
 */
#ifndef RSY_GENERATOR_INTERNAL_H
#define RSY_GENERATOR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_export.h"
#include "rsy_generator.h"

/** Stream of the bias field: one past the last channel stream, independent of the channel
 *  count. */
#define RSY__GEN_STAGE_BIAS ((uint32_t)RSY_STAGE_ACQUISITION + RSY_MAX_SEQUENCES)

/** Intensity scale of the MRI channels: a tissue of PD 1 with full relaxation and no T2 decay
 *  reads 1000 (arbitrary units, like a scanner's magnitude image). */
#define RSY__GEN_SIGNAL_SCALE 1000.0

/** Texture note recorded in the dataset manifest for the uniform texture model. */
#define RSY__GEN_TEXTURE_NOTE_UNIFORM                                                              \
    "uniform per class (recipe texture model \"uniform\"); acquisition noise only"
/** Capacity of the texture note of the sampled models. */
#define RSY__GEN_TEXTURE_NOTE_MAX 1024

/* ---------------------------------------------------------------------------------------- */
/* Class tables (mri.c)                                                                       */
/* ---------------------------------------------------------------------------------------- */
/** What the generator knows about one class id of the working class map. */
typedef struct rsy__gen_class {
    rsy_mri_props props;        /* at the recipe's field strength */
    int is_lesion;              /* 1 for lesion compartment classes */
    int type_index;             /* lesion type (recipe order), -1 for tissues */
    int compartment;            /* compartment index within the prior, -1 for tissues */
    int label;                  /* output label value */
    double texture_sd_fraction; /* relative SD of T1, T2, PD within the class (tissue table or
                                   compartment), 0 = uniform; MRI only (0 for CT) */
    double hu;                  /* CT: mean HU in the recipe's phase, tissues and lesion
                                   compartments alike (0 for MRI) */
    double hu_sd;               /* CT: SD of the HU within the class, drawn by the texture
                                   stage (0 = uniform; 0 for MRI) */
} rsy__gen_class;

/**
 * Build the table of every class id of @p r's working class map: phantom tissue classes
 * 0..n_tissue-1 (properties from r->tissues by class name), then lesion compartment classes
 * n_tissue + rsy_lesion_compartment_offset(r, t) + c (absolute or relative properties: MRI
 * at the recipe's field strength, or CT in the recipe's phase by rsy__gen_compartment_ct).
 * On success @p *out (n entries) is owned by the caller (free()).
 * @return RSY_OK, RSY_EINVAL (unknown family, tissue missing from the table, too many output
 *         labels; logged), RSY_ENOMEM.
 */
rsy_status rsy__gen_class_table(const rsy_recipe *r, rsy__gen_class **out, int *n_out);

/**
 * CT properties of lesion compartment @p cp (of prior @p p) in contrast phase @p phase:
 * ABSOLUTE, cp->ct[phase] as given; RELATIVE, the HU of tissue cp->ct_relative_to in that
 * phase (r->tissues) plus cp->ct[phase].hu, with cp->ct[phase].sd_hu as the SD.
 * @return RSY_OK, RSY_EINVAL (no CT properties, or a reference tissue the table lacks or gives
 *         no CT properties; logged naming the prior file and the compartment).
 */
rsy_status rsy__gen_compartment_ct(const rsy_recipe *r, const rsy_prior *p,
                                   const rsy_compartment *cp, rsy_ct_phase phase,
                                   rsy_ct_props *out);

/** The key of a compartment's sampled extent in the lesion parameters ("COMPARTMENT.KEY"):
 *  "radius_fraction", "margin_mm", "wall_mm", "volume_fraction" (inclusions) or "line_mm"
 *  (network). Static string. */
const char *rsy__gen_extent_key(rsy_extent_kind kind);

/** Output label dictionary without the RSY_MAX_LABELS cap: the full count is returned and at
 *  most @p max names are written. Names are static or recipe-owned. */
int rsy__gen_label_names_all(const rsy_recipe *r, const char **names, int max);

/** Weighting of a sequence in a radiologist's words: "T1", "T2", "PD", "FLAIR", or the
 *  sequence's own name when none applies. Static or @p seq-owned string. */
const char *rsy__gen_sequence_weighting(const rsy_sequence *seq);

/* ---------------------------------------------------------------------------------------- */
/* Acquisition (bias.c)                                                                       */
/* ---------------------------------------------------------------------------------------- */
/**
 * Smooth multiplicative receive field over the grid of @p classes (any integer class map;
 * class 0 is background), spanning exactly [1 - amplitude, 1 + amplitude] over the
 * non-background voxels and clamped to that range elsewhere. Written to @p field (one float
 * per voxel). Draws a fixed number of values from @p rng.
 * @return RSY_OK, RSY_EINVAL (amplitude outside [0, 1), scale_mm <= 0, bad dtype).
 */
rsy_status rsy__gen_bias_field(const rsy_volume *classes, double amplitude, double scale_mm,
                               rsy_rng *rng, float *field);

/** Replace each of the @p n magnitudes A of @p img by sqrt((A + n1)^2 + n2^2), n1 and n2
 *  drawn from N(0, sigma^2) by @p rng in voxel order (real, then imaginary). sigma = 0 leaves
 *  @p img unchanged and draws nothing. */
void rsy__gen_rician(float *img, size_t n, double sigma, rsy_rng *rng);

/* ---------------------------------------------------------------------------------------- */
/* Findings (findings.c)                                                                      */
/* ---------------------------------------------------------------------------------------- */
/** Per-lesion facts the findings text needs beyond the measured records. */
typedef struct rsy__gen_finding_lesion {
    int type_index;         /* into recipe->lesions */
    int host_class;         /* class id at the centre before rasterisation */
    const char *region;     /* "right frontal lobe" */
    const double *extent;   /* sampled extent of each compartment (rsy_lesion.extent) */
    int zone;               /* third of the host tissue's superior-inferior extent holding the
                               centre: 0 upper, 1 middle, 2 lower; -1 unknown */
    double displacement_mm; /* largest displacement of the surroundings by this lesion's mass
                               effect, mm (0 = none) */
} rsy__gen_finding_lesion;

/**
 * Write the findings text of a case (findings.c: wording rules and thresholds). @p whole[i]
 * and @p mass[i] are the measured records of instance i+1 over all its compartments and over
 * the compartments inside its surface (every kind but margins). Numbers are printed with the
 * current locale: the caller sets LC_NUMERIC to "C" (case.c).
 * On success @p *out is owned by the caller (free()).
 * @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__gen_findings(const rsy_recipe *r, const rsy__gen_class *classes,
                             const rsy_geometry *geom, const rsy__gen_finding_lesion *lesions,
                             const rsy_lesion_record *whole, const rsy_lesion_record *mass,
                             int n_lesions, char **out);

/* ---------------------------------------------------------------------------------------- */
/* Texture stage (texture_case.c)                                                             */
/* ---------------------------------------------------------------------------------------- */
/** The texture model of a recipe, built once and then only read (shared by the cases of a run,
 *  each of which makes its own denoiser from the prior). */
typedef struct rsy__gen_texture {
    rsy_texture_model model;
    rsy_texture_prior *prior;         /* PRESET, FITTED: every class id of the class table;
                                         UNIFORM: NULL */
    rsy_texture_sample_params sample; /* sampler settings from the recipe */
    int n_offsets;                    /* tilings per denoiser evaluation */
    int n_classes;
    unsigned char *textured; /* per class id: 1 when u modulates its properties (named by the
                                preset or mapped to the fitted model, and
                                texture_sd_fraction > 0) */
    double *variance;        /* per class id: total variance of the preset's mixture, or of
                                the fitted mixture at the patch centre (1 for classes with
                                neither) */
    int any_textured;
    char note[RSY__GEN_TEXTURE_NOTE_MAX]; /* for the dataset manifest */
} rsy__gen_texture;

/**
 * Build the texture model of @p r for the class table @p tab (n_classes entries, from
 * rsy__gen_class_table): for PRESET, the prior of every class id from the preset entry of the
 * same name (classes it does not name get a stand-in unit component and stay uniform; logged at
 * debug level); for FITTED, the model file read and each class the recipe maps given its
 * model class's components, the others as for PRESET with the fallback preset (texture_case.c).
 * On success @p *out is owned by the caller; release with rsy__gen_texture_destroy().
 * @return RSY_OK, RSY_EINVAL (a preset the texture code refuses; logged), RSY_ECONFIG (FITTED:
 *         the model unreadable or malformed, or the mapping names a class that neither this
 *         recipe's class map nor the model has; one logged line), RSY_EIO, RSY_ENUMERIC,
 *         RSY_ENOMEM.
 */
rsy_status rsy__gen_texture_create(const rsy_recipe *r, const rsy__gen_class *tab, int n_classes,
                                   rsy__gen_texture **out);
void rsy__gen_texture_destroy(rsy__gen_texture *t);

/**
 * Draw the raw texture field of case @p case_index on @p classes (uint16 class ids below
 * t->n_classes) with the stream (seed, case, RSY_STAGE_TEXTURE) and a denoiser of
 * @p n_threads workers (the result does not depend on it). On success @p *out (float32) is
 * owned by the caller. @return RSY_OK, RSY_EINVAL, RSY_ENOMEM, RSY_ENUMERIC.
 */
rsy_status rsy__gen_texture_draw(const rsy__gen_texture *t, const rsy_recipe *r, size_t case_index,
                                 const rsy_volume *classes, int n_threads, rsy_volume **out);

/**
 * Normalise @p u in place: in every textured class with at least RSY__GEN_TEXTURE_MIN_VOXELS
 * voxels, deviations from the class's sample mean are rescaled so its sample variance is the
 * preset's (undoing the tiled prior's variance loss, docs/texture.md); u = 0 in untextured
 * classes. @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__gen_texture_normalise(const rsy__gen_texture *t, const rsy_volume *classes,
                                      float *u);
/** Smallest class (voxels) whose sample variance is trusted for the normalisation. */
#define RSY__GEN_TEXTURE_MIN_VOXELS 64

/**
 * Per-voxel property maps: p(v) = mean[class] · max(0.01, 1 + sd_fraction[class] · u(v)) for
 * T1, T2 and PD (the same u), so each stays above 1% of its class mean. Voxels of untextured
 * classes get the class mean.
 */
void rsy__gen_texture_props(const rsy__gen_texture *t, const rsy__gen_class *tab,
                            const rsy_volume *classes, const float *u, float *t1_ms, float *t2_ms,
                            float *pd);

/* ---------------------------------------------------------------------------------------- */
/* CT imaging of a case (ct_case.c)                                                           */
/* ---------------------------------------------------------------------------------------- */
/** Reconstructor parameters of a CT recipe: its scanner profile, views and bins from the
 *  profile or (0) from the slice size. */
rsy_ct_params rsy__gen_ct_params(const rsy_recipe *r);

/**
 * Make the reconstructor of @p r's axial slices (dims[0] x dims[1] pixels of spacing_mm[0],
 * which must equal spacing_mm[1]). One per run, shared read-only by every case.
 * @return RSY_OK, RSY_EINVAL (not a CT recipe, non-square pixels; logged), and as
 *         rsy_ct_fbp_create().
 */
rsy_status rsy__gen_ct_fbp_create(const rsy_recipe *r, rsy_ct_fbp **out);

/** The CT slice thickness in effect, mm: the scanner profile's, or the z spacing when the
 *  profile leaves it unset (the recipe loader resolves it; a hand-made recipe may not). */
double rsy__gen_ct_thickness_mm(const rsy_recipe *r);

/** What the CT imaging measured on each dose channel of a case. */
typedef struct rsy__gen_ct_result {
    rsy_volume *channels[RSY_MAX_SEQUENCES]; /* int16 HU, one per dose; owned by the caller */
    double noise_sd_hu[RSY_MAX_SEQUENCES];   /* SD of (channel - its noise-free image) over the
                                                in-plane interior of the body classes, before
                                                slice profile and PSF (ct_case.c); NAN when no
                                                voxel is interior */
} rsy__gen_ct_result;

/**
 * The CT imaging of one case: the noise-free HU map (class mean, plus hu_sd · u in the
 * textured classes when @p u is not NULL), then per dose channel c every axial slice through
 * the recipe's noise model with the stream (seed, case, RSY_STAGE_ACQUISITION + c) in slice
 * order, then rsy_ct_volume_finish (slice profile, PSF, int16 HU).
 * On success the channels of @p res are owned by the caller (rsy_volume_destroy each); on
 * failure none is left.
 * @return RSY_OK, RSY_EINVAL, RSY_ENOMEM, and as rsy_ct_simulate_slice().
 */
rsy_status rsy__gen_ct_imaging(const rsy_recipe *r, size_t case_index, const rsy_volume *classes,
                               const rsy__gen_class *tab, const rsy__gen_texture *tex,
                               const float *u, const rsy_ct_fbp *fbp, rsy__gen_ct_result *res);

/* ---------------------------------------------------------------------------------------- */
/* Case access for run.c and the tests (case.c)                                               */
/* ---------------------------------------------------------------------------------------- */
/**
 * rsy_case_generate() with a texture model built beforehand (@p tex, read only; NULL builds
 * one for this case), for CT a reconstructor built beforehand (@p fbp, read only; NULL builds
 * one for this case; ignored for MRI) and @p texture_threads workers for the texture denoiser
 * (>= 1; the result does not depend on it).
 */
rsy_status rsy__case_generate(const rsy_recipe *r, size_t case_index, const rsy__gen_texture *tex,
                              const rsy_ct_fbp *fbp, int texture_threads, rsy_case **out);
/** Fill @p out with borrowed views of @p c (valid until rsy_case_destroy). */
void rsy__case_data(const rsy_case *c, rsy_case_data *out);
/** Record the seconds spent writing the case. */
void rsy__case_set_export_time(rsy_case *c, double export_s);

#endif /* RSY_GENERATOR_INTERNAL_H */
