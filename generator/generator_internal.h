/*
 * generator_internal.h: declarations shared by the .c files of generator/ and by
 * tests/test_generator.c. Never installed.
 *
 * Random streams of one case (rsy_rng_create_stream(recipe seed, case index, stage)):
 *   RSY_STAGE_SUBJECT         subject attributes (phantoms)
 *   RSY_STAGE_PHANTOM         anatomy shape and deformation (phantoms)
 *   RSY_STAGE_LESIONS         lesion count, size, shape, placement (priors)
 *   RSY_STAGE_ACQUISITION + c Rician noise of channel c (c < RSY_MAX_SEQUENCES), so channels
 *                             are independent and adding a channel leaves the others unchanged
 *   RSY__GEN_STAGE_BIAS       the receive bias field, shared by all channels of the case
 * The uniform texture model draws nothing, so RSY_STAGE_TEXTURE is not opened yet.
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
    "uniform per class (no texture model yet); acquisition noise only"

/* ---------------------------------------------------------------------------------------- */
/* Class tables (mri.c)                                                                       */
/* ---------------------------------------------------------------------------------------- */
/** What the generator knows about one class id of the working class map. */
typedef struct rsy__gen_class {
    rsy_mri_props props; /* at the recipe's field strength */
    int is_lesion;       /* 1 for lesion compartment classes */
    int type_index;      /* lesion type (recipe order), -1 for tissues */
    int compartment;     /* compartment index within the prior, -1 for tissues */
    int label;           /* output label value */
} rsy__gen_class;

/**
 * Build the table of every class id of @p r's working class map: phantom tissue classes
 * 0..n_tissue-1 (properties from r->tissues by class name), then lesion compartment classes
 * n_tissue + rsy_lesion_compartment_offset(r, t) + c (absolute or relative properties).
 * On success @p *out (n entries) is owned by the caller (free()).
 * @return RSY_OK, RSY_EINVAL (unknown family, tissue missing from the table, too many output
 *         labels; logged), RSY_ENOMEM.
 */
rsy_status rsy__gen_class_table(const rsy_recipe *r, rsy__gen_class **out, int *n_out);

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
    int type_index;       /* into recipe->lesions */
    int host_class;       /* class id at the centre before rasterisation */
    const char *region;   /* "right frontal lobe" */
    const double *extent; /* sampled extent of each compartment (rsy_lesion.extent) */
} rsy__gen_finding_lesion;

/**
 * Write the findings text of a case. @p whole[i] and @p mass[i] are the measured records of
 * instance i+1 over all its compartments and over its radius-fraction compartments only.
 * On success @p *out is owned by the caller (free()).
 * @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__gen_findings(const rsy_recipe *r, const rsy__gen_class *classes,
                             const rsy_geometry *geom, const rsy__gen_finding_lesion *lesions,
                             const rsy_lesion_record *whole, const rsy_lesion_record *mass,
                             int n_lesions, char **out);

/* ---------------------------------------------------------------------------------------- */
/* Case access for run.c and the tests (case.c)                                               */
/* ---------------------------------------------------------------------------------------- */
/** Fill @p out with borrowed views of @p c (valid until rsy_case_destroy). */
void rsy__case_data(const rsy_case *c, rsy_case_data *out);
/** Record the seconds spent writing the case. */
void rsy__case_set_export_time(rsy_case *c, double export_s);

#endif /* RSY_GENERATOR_INTERNAL_H */
