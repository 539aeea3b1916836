/*
 * thorax_internal.h: the "thorax" phantom family's class ids and reference frame, shared by
 * phantoms/thorax.c, phantoms/thorax_tubes.c and tests/test_thorax.c, and the model and small
 * geometry helpers shared by the two phantom sources (thorax.c: anatomy, classification,
 * subject; thorax_tubes.c: airway and vessel trees, segment grid). Never installed.
 *
 * Reference frame: millimetres, RAS+ axes, origin at the carina, for a reference adult chest.
 * A subject maps a world point w to the frame as p = (w + u(w)) / scale + RSY__THORAX_SHIFT,
 * with u the subject's smooth random displacement and scale = size_scale * axis_scale (per
 * axis); the shift puts the carina 30 mm above the centre of the field of view and the body
 * centred antero-posteriorly.
 */
#ifndef RSY_THORAX_INTERNAL_H
#define RSY_THORAX_INTERNAL_H

#include <math.h>
#include <stddef.h>

#include "rsy_phantoms.h"

/** Tissue classes of the thorax family (value = class id in the class map). */
typedef enum {
    RSY__THORAX_BACKGROUND = 0,
    RSY__THORAX_SKIN = 1,
    RSY__THORAX_FAT = 2,              /* subcutaneous, mediastinal and extrapleural fat */
    RSY__THORAX_MUSCLE = 3,           /* chest wall, paraspinal, diaphragm */
    RSY__THORAX_LUNG = 4,             /* parenchyma */
    RSY__THORAX_AIRWAY = 5,           /* air in the trachea and bronchi */
    RSY__THORAX_AIRWAY_WALL = 6,      /* tracheal and bronchial wall */
    RSY__THORAX_PULMONARY_VESSEL = 7, /* intrapulmonary arteries and veins */
    RSY__THORAX_MYOCARDIUM = 8,
    RSY__THORAX_BLOOD = 9, /* cardiac chambers, aorta, pulmonary trunk, central veins */
    RSY__THORAX_CORTICAL_BONE = 10,
    RSY__THORAX_CANCELLOUS_BONE = 11,
    RSY__THORAX_SPINAL_CANAL = 12, /* cord and CSF */
    RSY__THORAX_CARTILAGE = 13,    /* costal cartilage, intervertebral discs */
    RSY__THORAX_OESOPHAGUS = 14,
    RSY__THORAX_LIVER = 15, /* upper abdomen below the diaphragm */
    RSY__THORAX_SPLEEN = 16,
    RSY__THORAX_STOMACH = 17,
    RSY__THORAX_N_CLASSES = 18
} rsy__thorax_class;

/* Reference-frame position of the world origin (see the file comment). */
#define RSY__THORAX_SHIFT_X_MM 0.0
#define RSY__THORAX_SHIFT_Y_MM (-17.0)
#define RSY__THORAX_SHIFT_Z_MM (-30.0)
/* Roots of the pulmonary artery trees at the right and left hilum (reference frame). */
#define RSY__THORAX_HILUM_R_X_MM 40.0
#define RSY__THORAX_HILUM_R_Y_MM 4.0
#define RSY__THORAX_HILUM_R_Z_MM (-18.0)
#define RSY__THORAX_HILUM_L_X_MM (-40.0)
#define RSY__THORAX_HILUM_L_Y_MM 0.0
#define RSY__THORAX_HILUM_L_Z_MM (-8.0)
/* Top of the lung apices, about 10 cm above the carina (GK): thorax.c narrows the lung cavity
 * to it; thorax_tubes.c samples the lungs below it. */
#define RSY__THORAX_APEX_Z_MM 100.0

/* A tapered tube of the airway or vessel trees (defined in thorax_tubes.c). */
typedef struct tube tube;

/* Everything needed to classify a reference-frame point. */
typedef struct thorax_model {
    double inv_scale[3];
    int female;
    double t_fat, t_muscle, t_skin; /* reference mm */
    double breast_scale;            /* 0: none */
    double aorta_factor;
    /* heart: centre, unit axes (rows), outer semi-axes */
    double hc[3], hu[3][3], hs[3];
    /* tubes and their grid (CSR: cell_start[n_cells + 1], cell_items); thorax_tubes.c */
    tube *tubes;
    size_t n_tubes;
    int *cell_start;
    int *cell_items;
} thorax_model;

/* ---------------------------------------------------------------------------------------- */
/* Geometry helpers                                                                           */
/* ---------------------------------------------------------------------------------------- */
static inline double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline double dot3(const double a[3], const double b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static inline void normalize3(double v[3])
{
    double n = sqrt(dot3(v, v));
    if (n > 1e-12)
        for (int i = 0; i < 3; i++)
            v[i] /= n;
}

/* Distance from p to the segment a-b and the parameter t in [0, 1] of the closest point. */
static inline double segment_distance(const double p[3], const double a[3], const double b[3],
                                      double *t_out)
{
    double ab[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    double ap[3] = {p[0] - a[0], p[1] - a[1], p[2] - a[2]};
    double l2 = dot3(ab, ab);
    double t = l2 > 1e-12 ? clampd(dot3(ap, ab) / l2, 0.0, 1.0) : 0.0;
    double d[3] = {ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]};
    *t_out = t;
    return sqrt(dot3(d, d));
}

/** 1 if p lies in the right lung, 2 in the left, 0 otherwise (airways and vessels included);
 *  in thorax.c, also used by the trees in thorax_tubes.c. */
int rsy__thorax_lung_side(const thorax_model *m, const double p[3]);
/** Tubes of @p m from the shape stream @p r: central airways, lobar bronchi and their random
 *  trees, then the four space-filling vessel trees. Fills m->tubes and m->n_tubes (the caller
 *  frees m->tubes, also on failure). RSY_OK or RSY_ENOMEM. */
rsy_status rsy__thorax_build_tubes(thorax_model *m, rsy_rng *r);
/** Bins the tubes of @p m in the segment grid (m->cell_start, m->cell_items: the caller frees
 *  them, also on failure), leaving out vessels thinner than @p r_skip_mm everywhere. RSY_OK or
 *  RSY_ENOMEM. */
rsy_status rsy__thorax_build_grid(thorax_model *m, double r_skip_mm);
/* What rsy__thorax_tube_hit found at a point. */
enum { HIT_NONE = 0, HIT_VESSEL = 1, HIT_AIRWAY_WALL = 2, HIT_AIRWAY = 3 };
/** Strongest tube hit at reference-frame point @p p (airway lumen > airway wall > vessel), by
 *  the segment grid of @p m. */
int rsy__thorax_tube_hit(const thorax_model *m, const double p[3]);

/** Reference-frame point of world point @p xyz_mm for @p subject, ignoring the deformation. */
void rsy__thorax_world_to_ref(const rsy_subject *subject, const double xyz_mm[3], double p[3]);
/** World point of reference-frame point @p p for @p subject, ignoring the deformation. */
void rsy__thorax_ref_to_world(const rsy_subject *subject, const double p[3], double xyz_mm[3]);
/** Lobe of the lung at reference-frame point @p p, by the fissures (GK): 0 lower lobe, 1 upper
 *  lobe, 2 right middle lobe or lingula (left upper lobe below the lingular level); the side
 *  is the sign of p[0] (right positive). Meaningful for points inside a lung. */
int rsy__thorax_lobe(const double p[3]);

#endif /* RSY_THORAX_INTERNAL_H */
