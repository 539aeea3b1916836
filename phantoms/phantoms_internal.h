/*
 * phantoms_internal.h: library-internal declarations of phantoms/, shared by its .c files and
 * by tests/test_phantoms.c. Never installed.
 *
 * The head is built in a "reference frame": millimetres, RAS+ axes, origin at the centre of
 * the cerebral envelope, for a reference adult head. A subject maps world points to that frame
 * through its smooth random deformation, then an anisotropic scale (size_scale * axis_scale)
 * about the brain centre.
 */
#ifndef RSY_PHANTOMS_INTERNAL_H
#define RSY_PHANTOMS_INTERNAL_H

#include <stdint.h>

#include "rsy_core.h"
#include "rsy_phantoms.h"

/* ---------------------------------------------------------------------------------------- */
/* Reference anatomy constants shared by head.c (rasterising) and measure.c (naming regions). */
/* Positions are reference-frame mm; see head.c for the sources of each size.                 */
/* ---------------------------------------------------------------------------------------- */
/* Semi-axes (R, A, S) of the cerebral envelope = inner table of the skull above the skull base;
 * the envelope is shallower below the origin (ENV_C_INF) than above it (ENV_C). */
#define RSY__HEAD_ENV_A_MM 67.0
#define RSY__HEAD_ENV_B_MM 84.0
#define RSY__HEAD_ENV_C_MM 60.0
#define RSY__HEAD_ENV_C_INF_MM 50.0
/* Corpus callosum: antero-posterior span (splenium .. genu) and the height of its upper
 * surface at the midline, z_top(y) = CC_TOP - CC_CURV * (y - CC_MID)^2. */
#define RSY__HEAD_CC_Y_MIN_MM (-38.0)
#define RSY__HEAD_CC_Y_MAX_MM 32.0
#define RSY__HEAD_CC_MID_MM (-3.0)
#define RSY__HEAD_CC_TOP_MM 27.0
#define RSY__HEAD_CC_CURV_PER_MM 0.0057
/* Posterior cranial fossa (holds the cerebellum), an ellipsoid below the tentorium. */
#define RSY__HEAD_PF_CY_MM (-48.0)
#define RSY__HEAD_PF_CZ_MM (-40.0)
#define RSY__HEAD_PF_A_MM 50.0
#define RSY__HEAD_PF_B_MM 34.0
#define RSY__HEAD_PF_C_MM 26.0
/* Axis of the brainstem and spinal canal below the pons (antero-posterior position). */
#define RSY__HEAD_CANAL_Y_MM (-28.0)
/* Level of the foramen magnum: below it, intracranial classes lie in the spinal canal only. */
#define RSY__HEAD_FORAMEN_Z_MM (-66.0)

/** Height of the tentorium cerebelli above reference point (x, y): a tent that is highest at
 *  the midline near the incisura and slopes down laterally and posteriorly. */
double rsy__head_tentorium_z(double x_mm, double y_mm);
/** Sylvian fissure: its height at @p y_mm and the depth (distance from the midline) of the
 *  insula it reaches, larger towards the fissure's ends so the cleft fades out smoothly. */
double rsy__head_sylvian_z(double y_mm);
double rsy__head_insula_x(double y_mm);
/** Centre line (y) and radius of the brainstem at height @p z_mm (reference frame);
 *  returns 0 above the midbrain (no brainstem), 1 otherwise. */
int rsy__head_brainstem_at(double z_mm, double *y_mm, double *r_mm);

/** Reference-frame position of world point @p xyz_mm for @p subject, ignoring the small
 *  deformation (for naming regions). */
void rsy__head_world_to_ref(const rsy_subject *subject, const double xyz_mm[3], double p[3]);

/* ---------------------------------------------------------------------------------------- */
/* Smooth random diffeomorphism (deform.c)                                                     */
/* ---------------------------------------------------------------------------------------- */
/**
 * Displacement u of phi = exp(v) for a stationary velocity field v, sampled on a coarse
 * regular grid in world mm; phi(x) = x + u(x) with u trilinearly interpolated.
 */
typedef struct rsy__deform {
    int64_t n[3];        /* grid nodes per axis */
    double origin_mm[3]; /* world position of node (0,0,0) */
    double h_mm;         /* node spacing (isotropic) */
    int n_squarings;     /* scaling-and-squaring steps used */
    double rms_mm;       /* RMS of |u| over the grid nodes */
    double *u;           /* 3 * n0 * n1 * n2 components, x fastest, xyz interleaved */
} rsy__deform;

/**
 * Draw a velocity field from @p rng (random Fourier features of a Gaussian covariance with
 * correlation length @p scale_mm), integrate it by scaling and squaring on a grid covering
 * the box [lo_mm, hi_mm] plus a margin, and scale it so that the RMS displacement over the
 * grid is @p rms_mm (0 gives the identity). On success @p *out is owned by the caller;
 * release with rsy__deform_destroy().
 * @return RSY_OK, RSY_EINVAL (bad arguments), RSY_ENOMEM, RSY_ENUMERIC (non-finite field).
 */
rsy_status rsy__deform_create(rsy__deform **out, const double lo_mm[3], const double hi_mm[3],
                              double rms_mm, double scale_mm, rsy_rng *rng);
void rsy__deform_destroy(rsy__deform *d);
/** @p y_mm = x + u(x) (trilinear, constant extension outside the grid). */
void rsy__deform_apply(const rsy__deform *d, const double x_mm[3], double y_mm[3]);
/** Smallest determinant of I + grad u over interior grid nodes (central differences). */
double rsy__deform_min_jacobian(const rsy__deform *d);

/* ---------------------------------------------------------------------------------------- */
/* Phantom families (family.c dispatches the public API through this table).                  */
/* ---------------------------------------------------------------------------------------- */
/** One phantom family: its class names (index = class id, [0] = "background") and its
 *  operations. The spec, rngs and outputs given to generate() were checked for NULL. */
typedef struct rsy__phantom_family {
    const char *name;
    int n_classes;
    const char *const *class_names;
    rsy_status (*generate)(const rsy_phantom_spec *spec, rsy_rng *subject_rng,
                           rsy_rng *shape_rng, rsy_volume **classes_out,
                           rsy_subject *subject_out);
    void (*measure)(const rsy_volume *classes, rsy_subject *subject);
    void (*describe)(const rsy_subject *subject, const double xyz_mm[3], char *buf, size_t n);
} rsy__phantom_family;

/** Check the parts of @p spec every family shares (family name equal to @p family, dims,
 *  spacing, sex, ages, deformation); one logged line and RSY_EINVAL on the first problem. */
rsy_status rsy__phantom_check_spec(const rsy_phantom_spec *spec, const char *family);

/** Append an organ volume to @p s (ignored once RSY_SUBJECT_MAX_ORGANS are recorded). */
void rsy__subject_add_organ(rsy_subject *s, const char *name, double ml);

/** The family called @p name, NULL if there is none. */
const rsy__phantom_family *rsy__phantom_family_find(const char *name);

/** The body families (thorax.c, abdomen.c; issue 4). Registered in family.c by the lead. */
extern const rsy__phantom_family rsy__phantom_family_thorax;
extern const rsy__phantom_family rsy__phantom_family_abdomen;

/** The head family (head.c, measure.c). */
extern const rsy__phantom_family rsy__phantom_family_head;
void rsy__head_measure(const rsy_volume *classes, rsy_subject *subject);
void rsy__head_describe(const rsy_subject *subject, const double xyz_mm[3], char *buf,
                        size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Generation with the deformation exposed (head.c), for tests.                                */
/* ---------------------------------------------------------------------------------------- */
/** As rsy_phantom_generate() for the head; if @p deform_out is not NULL it receives the
 *  deformation used (owned by the caller; release with rsy__deform_destroy()). */
rsy_status rsy__head_generate_ex(const rsy_phantom_spec *spec, rsy_rng *subject_rng,
                                    rsy_rng *shape_rng, rsy_volume **classes_out,
                                    rsy_subject *subject_out, rsy__deform **deform_out);

#endif /* RSY_PHANTOMS_INTERNAL_H */
