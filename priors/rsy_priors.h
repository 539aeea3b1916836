/*
 * rsy_priors.h: lesions drawn from the priors of a recipe, placed in a phantom, and
 * rasterised into the class map with an instance map beside it.
 *
 * Class ids in the working class map: tissues of the phantom family keep 0..n_tissue-1;
 * compartment c of lesion type t (recipe order) gets
 *     n_tissue + rsy_lesion_compartment_offset(recipe, t) + c.
 * The instance map (uint16) holds 0 outside lesions and the lesion's instance id (1..N,
 * in sampling order) on every voxel of every compartment of that lesion.
 */
#ifndef RSY_PRIORS_H
#define RSY_PRIORS_H

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_phantoms.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RSY_SH_MAX_COEFFS 25 /* real spherical harmonics up to degree 4: (4+1)^2 */
#define RSY_MAX_LOBES 8      /* sub-surfaces of one lesion (shape.lobes) @since 0.4 */

/**
 * One sampled lesion, before rasterisation: everything needed to draw it again (plain data:
 * copying the struct copies the lesion). Fields marked 0.4 were added with the lesion model
 * of issue 5; a lesion built by hand with them zeroed is a single smooth surface without
 * mass effect, as before.
 */
typedef struct rsy_lesion {
    int instance_id;              /* 1..N */
    int type_index;               /* index into recipe->lesions */
    double center_mm[3];          /* world RAS+ mm (moved by the mass effect of later lesions) */
    double diameter_mm;           /* drawn diameter of the lesion surface (before shape factors) */
    double semi_axes_mm[3];       /* ellipsoid semi-axes a >= b >= c after elongation (a/c) and
                                     flatness (b/c), volume-preserving: a b c = (diameter/2)^3 */
    double rotation[3][3];        /* columns: ellipsoid axes in world coordinates */
    int n_sh;                     /* spherical-harmonic coefficients used */
    double sh[RSY_SH_MAX_COEFFS]; /* a_lm for l = 2..lmax in (l, m) order, l^2 + l + m;
                                     entries 0..3 are 0, n_sh = (lmax+1)^2 or 0 */
    double extent[RSY_MAX_COMPARTMENTS]; /* per compartment, drawn: RADIUS_FRACTION the
                                            fraction; MARGIN_MM, WALL_MM the thickness in mm;
                                            INCLUSIONS the volume fraction of the parent;
                                            NETWORK the line thickness in mm */
    int attempts;                        /* placement attempts used */
    /* Shape details @since 0.4 */
    uint64_t seed;              /* per-lesion seed (drawn from the stream) of the fine
                                   roughness field, the inclusions and the network */
    double roughness_amplitude; /* RMS relative radius of the fine roughness (0 = none) */
    double roughness_scale_mm;  /* its correlation length on the surface, mm */
    int n_lobes;                /* 0 or 1: one surface; 2..RSY_MAX_LOBES: the union of
                                   n_lobes sub-surfaces (the lesion's surface scaled by
                                   lobe_scale, turned by lobe_rotation, centred at
                                   lobe_offset_mm), all in the lesion frame */
    double lobe_offset_mm[RSY_MAX_LOBES][3];   /* lobe centre, lesion frame, mm */
    double lobe_scale[RSY_MAX_LOBES];          /* lobe size / the lesion's size */
    double lobe_rotation[RSY_MAX_LOBES][3][3]; /* lobe frame in the lesion frame */
    double cell_mm[RSY_MAX_COMPARTMENTS];      /* NETWORK compartments: drawn cell size */
    /* Placement @since 0.4 */
    int host_class;            /* class id under the anchor when placed (-1 if unknown) */
    double anchor_mm[3];       /* point the rule was checked at: the centre, or for
                                  extra_axial the dural base (moved by later mass effect) */
    double anchor_distance_mm; /* distance of the anchor voxel to the nearest reference
                                  voxel when placed (-1: the rule has no reference) */
    double normal[3];          /* unit gradient of that distance at the anchor (pointing
                                  away from the reference), 0 when undefined */
    /* Mass effect @since 0.4 */
    int mass_effect;          /* 1 if this lesion displaced its surroundings */
    double mass_strength;     /* drawn strength: surface displacement / radius */
    double mass_center_mm[3]; /* centre of the push (center_mm when placed) */
    double mass_max_mm;       /* largest displacement it applied to a voxel, mm */
    int mass_applied;         /* 1: the push is already in the class map given to
                                 rsy_lesions_sample_deform(); rasterisation skips it */
} rsy_lesion;

typedef struct rsy_lesion_set {
    int n;
    rsy_lesion *items; /* n lesions, owned */
} rsy_lesion_set;

/** Offset of lesion type @p t's compartments among all lesion compartments of @p r. */
RSY_API int rsy_lesion_compartment_offset(const rsy_recipe *r, int t);
/** Total lesion compartments over all lesion types of @p r. */
RSY_API int rsy_lesion_compartment_total(const rsy_recipe *r);

/**
 * Sample the lesions of one case: per lesion type, whether present (probability), the count,
 * then each lesion's size, shape and compartment extents, and a placement obeying the prior's
 * rule against @p classes (tissue ids of @p family), with non-overlap between lesions. A
 * placement that cannot be met in the prior's max_attempts gives RSY_EPLACEMENT and one
 * logged line naming the prior, the rule and the attempts. Within a type, the lesions are
 * placed, and numbered, by decreasing drawn diameter; a lesion that does not fit is drawn
 * again keeping its diameter, and only as a last resort (logged as a warning) with a new one,
 * so the sizes follow the prior (@since 0.4; priors/sample.c).
 * Mass effect (@since 0.4): after each lesion of a type with mass effect is placed, its push
 * deforms a working copy of the class map (never @p classes itself) and moves the lesions
 * placed before; later lesions are placed in the deformed anatomy. Each lesion records its
 * push (mass_effect, mass_strength, mass_center_mm, mass_max_mm), from which
 * rsy_lesions_rasterise() applies the same deformation to the class map it is given.
 * On success @p out->items is owned by the caller; release with rsy_lesion_set_clear().
 * @return RSY_OK, RSY_EPLACEMENT, RSY_ENOMEM, RSY_EINVAL.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_lesions_sample(const rsy_recipe *r, const char *family,
                                                    const rsy_volume *classes, rsy_rng *rng,
                                                    rsy_lesion_set *out);
/**
 * As rsy_lesions_sample(), with the same draws and the same lesions, but the mass effect
 * deforms @p classes itself, in place (no working copy), and every pushing lesion records
 * mass_applied = 1 so that rsy_lesions_rasterise() on this same map does not push again.
 * This is the call for a pipeline that rasterises into the map it sampled on: each push is
 * computed once (rsy_lesions_sample() + rsy_lesions_rasterise() compute it twice). Without
 * a type with mass effect it is rsy_lesions_sample() exactly and leaves @p classes untouched.
 * On failure @p classes may hold the pushes of the lesions placed before the failure.
 * @return as rsy_lesions_sample(). @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_lesions_sample_deform(const rsy_recipe *r, const char *family,
                                                           rsy_volume *classes, rsy_rng *rng,
                                                           rsy_lesion_set *out);

/** Free the lesions of @p s and set it empty (n = 0, items = NULL). @since 0.1 */
RSY_API void rsy_lesion_set_clear(rsy_lesion_set *s);

/**
 * Rasterise @p set into @p classes (uint16, modified in place: voxels of allowed tissues
 * inside a compartment take that compartment's class id; confined compartments only replace
 * their tissues) and fill @p instances (uint16, same geometry, zeroed by the caller).
 * First the pushes of the lesions with mass effect (and mass_applied = 0) are applied, in
 * instance order, to @p classes and @p instances (@since 0.4): pass the class map the set was
 * sampled on, so the lesions land in the anatomy they were placed in (the pushes are
 * recomputed from the lesion records, bit-identical to those of sampling). After
 * rsy_lesions_sample_deform() the map already holds them and none is applied again. Where
 * lesions overlap, compartments inside a lesion surface beat margin compartments (a core or
 * rim is never holed by a neighbour's oedema), then the lower instance id wins. Lesions whose
 * rasterisation is empty are reported by rsy_log_warning and keep their id (the exporter drops
 * them from the records).
 * @return RSY_OK, RSY_EINVAL (geometry or dtype mismatch), RSY_ENOMEM.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_lesions_rasterise(const rsy_recipe *r, const char *family,
                                                       const rsy_lesion_set *set,
                                                       rsy_volume *classes, rsy_volume *instances);

/**
 * The lesion's normalised radial coordinate at world point @p xyz_mm: r / R(θ,φ), where R is
 * the lobulated ellipsoidal surface with its fine roughness (1 on the surface, < 1 inside).
 * Also returns, through @p dist_out_mm if not NULL, the approximate distance in mm outside the
 * surface (<= 0 inside), measured along the ray from the lesion centre: exact where the
 * surface is normal to that ray, an over-estimate of the Euclidean distance on oblique parts
 * of the surface. With lobes (n_lobes > 1) both are the minimum over the lobes, each measured
 * from the lobe's centre. With roughness the call tabulates the lesion's surface first (a few
 * milliseconds); NAN if that allocation fails. @since 0.1 (lobes, roughness @since 0.4)
 */
RSY_API double rsy_lesion_radial(const rsy_lesion *l, const double xyz_mm[3], double *dist_out_mm);

#ifdef __cplusplus
}
#endif
#endif /* RSY_PRIORS_H */
