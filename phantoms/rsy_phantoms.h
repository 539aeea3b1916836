/*
 * rsy_phantoms.h: procedural anatomy. A phantom is a class map (uint16, one tissue class per
 * voxel), its geometry (RAS+ mm) and the subject's attributes. Phantoms know nothing of
 * lesions.
 *
 * Family "head" (first version): scalp, skull, CSF, grey matter, white matter, lateral
 * ventricles, deep grey nuclei, cerebellum, brainstem, from smooth implicit surfaces, sized
 * from adult reference ranges by sex and age and warped by a smooth random diffeomorphism
 * (stationary velocity field integrated by scaling and squaring), so every subject differs
 * while topology is kept.
 */
#ifndef RSY_PHANTOMS_H
#define RSY_PHANTOMS_H

#include "rsy_config.h"
#include "rsy_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Tissue classes of the head family; the value is the class id stored in the class map. */
typedef enum {
    RSY_HEAD_BACKGROUND = 0,
    RSY_HEAD_SCALP = 1,
    RSY_HEAD_SKULL = 2,
    RSY_HEAD_CSF = 3, /* extra-axial (subarachnoid) CSF */
    RSY_HEAD_GREY_MATTER = 4,
    RSY_HEAD_WHITE_MATTER = 5,
    RSY_HEAD_VENTRICLES = 6, /* lateral ventricles (CSF-filled) */
    RSY_HEAD_DEEP_GREY = 7,  /* caudate, putamen, thalamus */
    RSY_HEAD_CEREBELLUM = 8,
    RSY_HEAD_BRAINSTEM = 9,
    RSY_HEAD_N_CLASSES = 10
} rsy_head_class;

#define RSY_SUBJECT_MAX_ORGANS 24

/** A named volume measured on a class map (e.g. "liver", 1571.2 mL). */
typedef struct rsy_organ_volume {
    char name[32];
    double ml;
} rsy_organ_volume;

/** Attributes of one generated subject (recorded in the case manifest). */
typedef struct rsy_subject {
    rsy_sex sex;               /* FEMALE or MALE, never RANDOM */
    double age_years;
    double size_scale;         /* isotropic scale applied to the reference anatomy */
    double axis_scale[3];      /* extra anisotropic scale per RAS axis */
    double deformation_mm;     /* RMS displacement actually applied */
    /* Landmarks in world mm, for region naming: brain centre and semi-axes (R, A, S). */
    double brain_center_mm[3];
    double brain_semi_axes_mm[3];
    /* Volumes measured on the class map, mL. */
    double intracranial_ml;    /* everything inside the inner table of the skull */
    double brain_ml;           /* GM + WM + deep grey + cerebellum + brainstem */
    double ventricles_ml;
    /* Volumes of the family's organs measured on the class map (body families; the head
     * family uses the three fields above and leaves this empty). */
    int n_organs;
    rsy_organ_volume organs[RSY_SUBJECT_MAX_ORGANS];
} rsy_subject;

/** Number of classes of @p family ("head"), 0 if unknown. */
RSY_API int rsy_phantom_n_classes(const char *family);
/** Name of class @p id of @p family ("white_matter"), NULL if out of range. Names match the
 *  tissue tables in configs/tissues/. */
RSY_API const char *rsy_phantom_class_name(const char *family, int id);
/** Class id for @p name, -1 if absent. */
RSY_API int rsy_phantom_class_id(const char *family, const char *name);

/**
 * Build one subject: draw its attributes from @p spec with @p subject_rng, its shape and
 * deformation with @p shape_rng, and rasterise the class map on the spec's grid.
 * On success @p *classes_out (uint16, geometry from the spec) is owned by the caller;
 * release with rsy_volume_destroy(). @p subject_out is filled.
 * @return RSY_OK, RSY_EINVAL (unknown family, bad spec), RSY_ENOMEM, RSY_ENUMERIC.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_phantom_generate(const rsy_phantom_spec *spec,
                                                      rsy_rng *subject_rng,
                                                      rsy_rng *shape_rng,
                                                      rsy_volume **classes_out,
                                                      rsy_subject *subject_out);

/** Recompute the subject's volumes (head: intracranial, brain, ventricles; body families: the
 *  organ volumes) from a class map. Class ids at or above the family's class count (lesion
 *  compartments) count as the tissue they replaced where the family can tell (head: brain). */
RSY_API void rsy_phantom_measure(const char *family, const rsy_volume *classes,
                                 rsy_subject *subject);

/**
 * Describe a world position in anatomical words for findings text, e.g. "right frontal lobe",
 * "left parietal lobe", "corpus callosum", "left cerebellar hemisphere". Writes at most
 * @p n bytes including the NUL.
 */
RSY_API void rsy_phantom_describe_location(const char *family, const rsy_subject *subject,
                                           const double xyz_mm[3], char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* RSY_PHANTOMS_H */
