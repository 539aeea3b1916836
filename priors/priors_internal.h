/*
 * priors_internal.h: library-internal declarations of priors/, shared by its .c files and by
 * tests/test_priors.c. Never installed.
 *
 * Files: shape.c (surface: spherical harmonics, ellipsoid, rotation, radial coordinate),
 * sample.c (drawing and placing the lesions of a case, tissue sets), rasterise.c (writing the
 * lesions into the class and instance maps).
 */
#ifndef RSY_PRIORS_INTERNAL_H
#define RSY_PRIORS_INTERNAL_H

#include "rsy_priors.h"

/* Spectral slope of the lobulation: sigma_l proportional to l^-beta, beta = 2.5 (domain.md
 * 4.2: "beta ~ 2-3", [S101]; the middle of that range, GK). */
#define RSY__SH_BETA 2.5
/* Lower clamp of the radial factor 1 + sum a_lm Y_lm, so the surface stays star-shaped. */
#define RSY__SH_SCALE_MIN 0.5
/* Highest degree of the closed-form real spherical harmonics (RSY_SH_MAX_COEFFS = 25). */
#define RSY__SH_LMAX 4

/* Class ids >= this are never tissues of a prior's sets (RSY_MAX_TISSUES is 48). */
#define RSY__MAX_TISSUE_CLASSES 64

/**
 * Real orthonormal spherical harmonics Y_lm (integral of Y^2 over the unit sphere = 1) for
 * l = 0..4 at the unit vector @p n, stored at index l^2 + l + m (the order of rsy_lesion.sh).
 * Closed Cartesian forms (no Condon-Shortley phase).
 */
void rsy__priors_sh_basis(const double n[3], double y[RSY_SH_MAX_COEFFS]);

/** Standard deviation sigma_l of a_lm for degree @p l so that, with a_lm ~ N(0, sigma_l^2)
 *  for l = 2..@p lmax, the expected RMS over the sphere of sum a_lm Y_lm is @p amplitude. */
double rsy__priors_sh_sigma(int lmax, double amplitude, int l);

/** Radial factor max(RSY__SH_SCALE_MIN, 1 + sum a_lm Y_lm(n)) of @p l at unit vector @p n. */
double rsy__priors_sh_scale(const rsy_lesion *l, const double n[3]);

/** An upper bound of the radial factor over all directions (Cauchy-Schwarz per degree with the
 *  addition theorem sum_m Y_lm^2 = (2l+1)/(4 pi)); exactly 1 without lobulation. */
double rsy__priors_sh_scale_bound(const rsy_lesion *l);

/** Radius in mm of a sphere around the centre that contains the whole lesion surface. */
double rsy__priors_surface_bound_mm(const rsy_lesion *l);

/** Largest margin (mm) over the margin compartments of @p l (0 if it has none). */
double rsy__priors_margin_max_mm(const rsy_prior *p, const rsy_lesion *l);

/**
 * Draw the shape of @p l (prior @p p): semi-axes from @p diameter_mm and @p elongation,
 * a uniformly random orientation and the lobulation coefficients. Fills diameter_mm,
 * semi_axes_mm, rotation, n_sh and sh.
 */
void rsy__priors_shape_draw(const rsy_prior *p, double diameter_mm, double elongation,
                            rsy_rng *rng, rsy_lesion *l);

/** Matrix taking a world offset d (mm, from the centre) to the lesion's unit-sphere frame:
 *  u = diag(1/semi_axes) R^T d. */
void rsy__priors_unit_frame(const rsy_lesion *l, double m[3][3]);

/**
 * Radial coordinate from unit-frame coordinates @p u of a point at @p d_mm (its world
 * distance from the centre): returns rho/s(u/rho) and, if @p dist_out_mm is not NULL, the
 * distance outside the surface measured along the ray from the centre (see shape.c).
 */
double rsy__priors_radial_unit(const rsy_lesion *l, const double u[3], double d_mm,
                               double *dist_out_mm);

/** Membership tables (index: class id) of one prior's tissue names in a phantom family. */
typedef struct rsy__prior_tissues {
    unsigned char hosts[RSY__MAX_TISSUE_CLASSES];
    unsigned char allowed[RSY__MAX_TISSUE_CLASSES];
    /* per compartment: its confined_to tissues if it has any, else the allowed ones */
    unsigned char permitted[RSY_MAX_COMPARTMENTS][RSY__MAX_TISSUE_CLASSES];
    unsigned char any[RSY__MAX_TISSUE_CLASSES]; /* union of permitted[] */
} rsy__prior_tissues;

/**
 * Map the host, allowed and confined_to names of @p p to class ids of @p family.
 * @return RSY_OK, RSY_EINVAL (unknown family, or a name that is not a class of it: logged
 *         naming the prior and the tissue).
 */
rsy_status rsy__priors_tissues_build(const char *family, const rsy_prior *p,
                                     rsy__prior_tissues *out);

#endif /* RSY_PRIORS_INTERNAL_H */
