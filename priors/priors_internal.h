/*
 * priors_internal.h: library-internal declarations of priors/, shared by its .c files and by
 * tests/test_priors.c. Never installed.
 *
 * Files: shape.c (surface: ellipsoid, harmonics, fine roughness, lobes, the per-lesion
 * evaluator rsy__shape), compartments.c (which compartment a point belongs to: nested level
 * sets, walls, inclusions, network), placement.c (Euclidean distance transforms, candidate
 * centres of the placement rules, orientation), sample.c (drawing and placing the lesions of
 * a case, tissue sets), mass_effect.c (the displacement of the surroundings), rasterise.c
 * (writing the lesions into the class and instance maps).
 */
#ifndef RSY_PRIORS_INTERNAL_H
#define RSY_PRIORS_INTERNAL_H

#include "core_internal.h"
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

/* ---------------------------------------------------------------------------------------- */
/* shape.c                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/**
 * Real orthonormal spherical harmonics Y_lm (integral of Y^2 over the unit sphere = 1) for
 * l = 0..4 at the unit vector @p n, stored at index l^2 + l + m (the order of rsy_lesion.sh).
 * Closed Cartesian forms (no Condon-Shortley phase).
 */
void rsy__priors_sh_basis(const double n[3], double y[RSY_SH_MAX_COEFFS]);

/** Standard deviation sigma_l of a_lm for degree @p l so that, with a_lm ~ N(0, sigma_l^2)
 *  for l = 2..@p lmax, the expected RMS over the sphere of sum a_lm Y_lm is @p amplitude. */
double rsy__priors_sh_sigma(int lmax, double amplitude, int l);

/** Lobulation factor max(RSY__SH_SCALE_MIN, 1 + sum a_lm Y_lm(n)) of @p l at unit vector
 *  @p n (no roughness: use rsy__shape_scale for the whole surface). */
double rsy__priors_sh_scale(const rsy_lesion *l, const double n[3]);

/** An upper bound of the lobulation factor over all directions (Cauchy-Schwarz per degree
 *  with the addition theorem sum_m Y_lm^2 = (2l+1)/(4 pi)); exactly 1 without lobulation. */
double rsy__priors_sh_scale_bound(const rsy_lesion *l);

/** Largest margin (mm) over the margin compartments of @p l (0 if it has none). */
double rsy__priors_margin_max_mm(const rsy_prior *p, const rsy_lesion *l);

/** Semi-axes of @p l from the diameter, elongation (a/c) and flatness (b/c, clamped to
 *  [1, elongation]), volume-preserving; sets diameter_mm and semi_axes_mm. */
void rsy__priors_set_axes(rsy_lesion *l, double diameter_mm, double elongation, double flatness);

/**
 * Draw the shape of @p l (prior @p p): semi-axes (rsy__priors_set_axes), a uniformly random
 * rotation (three uniforms), the lobulation coefficients, the lesion seed (one u64), the lobe
 * count and, with lobes, per lobe a rotation (three uniforms) and a size (one Gaussian).
 * Copies the prior's roughness into the lesion.
 */
void rsy__priors_shape_draw(const rsy_prior *p, double diameter_mm, double elongation,
                            double flatness, rsy_rng *rng, rsy_lesion *l);

/** Turn @p l so its axis @p axis (0 longest, 2 shortest) points along the unit vector
 *  @p dir, rolled about it by the angle 2 pi @p roll_u. */
void rsy__priors_orient(rsy_lesion *l, const double dir[3], int axis, double roll_u);

/** Unit direction of node (@p i, @p j) of face @p f (+x, -x, +y, -y, +z, -z) of a cube map of
 *  @p n x @p n nodes per face (node u = -1 + 2i/(n-1) along the face's first free axis). */
void rsy__cube_node(int f, int i, int j, int n, double d[3]);
/** Bilinear value of cube map @p t (6 n^2 nodes, face-major, then j, then i) at direction
 *  @p d (need not be normalised); continuous across faces, never above its largest node. */
double rsy__cube_lookup(const float *t, int n, const double d[3]);

/**
 * The evaluator of one lesion's surface: frames of its lobes and, with roughness, the cube-map
 * table of s(n) (shape.c). Reads the lesion through @p l (borrowed: it must outlive the
 * evaluator); call rsy__shape_update() after changing the lesion's centre or rotation.
 */
typedef struct rsy__shape {
    const rsy_lesion *l;
    float *table; /* cube map of s(n), 6 tn^2 nodes; NULL: exact harmonics */
    int tn;
    double smax;                       /* max of s(n) over all directions */
    int n_lobes;                       /* >= 1 */
    double frame[RSY_MAX_LOBES][3][3]; /* world offset from center[k] -> unit-sphere coords */
    double center[RSY_MAX_LOBES][3];   /* world centres of the lobes */
    double main_frame[3][3];           /* of the lesion surface itself (lobes ignored) */
    double bound_mm;      /* radius around center_mm of a sphere holding the whole union */
    double main_bound_mm; /* the same for the lesion surface itself */
} rsy__shape;

/** Build the evaluator of @p l. @return RSY_OK, RSY_ENOMEM, RSY_ENUMERIC (GSL failure). */
rsy_status rsy__shape_init(rsy__shape *sh, const rsy_lesion *l);
/** Recompute frames and bounds after the lesion's centre or rotation changed. */
void rsy__shape_update(rsy__shape *sh);
/** Free the table (the struct itself is the caller's). */
void rsy__shape_clear(rsy__shape *sh);
/** s(n) at unit-frame direction @p n. */
double rsy__shape_scale(const rsy__shape *sh, const double n[3]);
/** Radial coordinate of unit-frame point @p u at world distance @p d_mm from its centre:
 *  rho/s(u/rho), and the ray distance outside the surface through @p dist_out_mm. */
double rsy__shape_radial_unit(const rsy__shape *sh, const double u[3], double d_mm,
                              double *dist_out_mm);
/** Radial coordinate (and ray distance) of world point @p x: the minimum over the lobes. */
double rsy__shape_radial(const rsy__shape *sh, const double x[3], double *dist_out_mm);
/** Distance (mm) from the centre to the lesion surface itself along world unit vector
 *  @p dir. */
double rsy__shape_radius_along(const rsy__shape *sh, const double dir[3]);

/* ---------------------------------------------------------------------------------------- */
/* sample.c: tissue sets                                                                      */
/* ---------------------------------------------------------------------------------------- */

/** Membership tables (index: class id) of one prior's tissue names in a phantom family. */
typedef struct rsy__prior_tissues {
    unsigned char hosts[RSY__MAX_TISSUE_CLASSES];
    unsigned char allowed[RSY__MAX_TISSUE_CLASSES]; /* subependymal: plus the reference */
    unsigned char reference[RSY__MAX_TISSUE_CLASSES];
    unsigned char fixed[RSY__MAX_TISSUE_CLASSES]; /* mass effect: tissues never moved */
    /* per compartment: its confined_to tissues if it has any, else the allowed ones */
    unsigned char permitted[RSY_MAX_COMPARTMENTS][RSY__MAX_TISSUE_CLASSES];
    unsigned char any[RSY__MAX_TISSUE_CLASSES]; /* union of permitted[] */
} rsy__prior_tissues;

/**
 * Map the tissue names of @p p (hosts, allowed, reference, mass-effect fixed, confined_to) to
 * class ids of @p family.
 * @return RSY_OK, RSY_EINVAL (unknown family, or a name that is not a class of it: logged
 *         naming the prior and the tissue).
 */
rsy_status rsy__priors_tissues_build(const char *family, const rsy_prior *p,
                                     rsy__prior_tissues *out);

/* ---------------------------------------------------------------------------------------- */
/* compartments.c                                                                             */
/* ---------------------------------------------------------------------------------------- */

/** A sphere of an inclusions compartment. */
typedef struct rsy__blob {
    double c[3]; /* world mm */
    double r2;   /* squared radius, mm^2 */
} rsy__blob;

/** Compartment evaluator of one lesion: the shape plus the inclusions and network of each
 *  compartment, regenerated from the lesion record (its seed). */
typedef struct rsy__compartments {
    const rsy_prior *p;
    const rsy_lesion *l;
    rsy__shape shape;
    int parent[RSY_MAX_COMPARTMENTS]; /* index of the "inside" compartment, -1 if none */
    int n_frac, n_wall, n_margin;
    int frac[RSY_MAX_COMPARTMENTS];   /* by increasing fraction */
    int wall[RSY_MAX_COMPARTMENTS];   /* by increasing thickness */
    int margin[RSY_MAX_COMPARTMENTS]; /* by increasing margin */
    int n_nested;
    int nested[RSY_MAX_COMPARTMENTS]; /* inclusions and network compartments, list order */
    /* inclusions: blobs and a uniform grid over them */
    int n_blobs[RSY_MAX_COMPARTMENTS];
    rsy__blob *blobs[RSY_MAX_COMPARTMENTS];
    double grid_lo[RSY_MAX_COMPARTMENTS][3], grid_cell[RSY_MAX_COMPARTMENTS];
    int grid_n[RSY_MAX_COMPARTMENTS][3];
    int *grid_start[RSY_MAX_COMPARTMENTS]; /* CSR: cell -> range of grid_items */
    int *grid_items[RSY_MAX_COMPARTMENTS];
    double wall_max_mm; /* thickest wall (0 = no wall) */
    double outer_mm;    /* radius around the centre holding every compartment */
} rsy__compartments;

/** Build the compartment evaluator of @p l of prior @p p (draws the inclusions from the
 *  lesion's seed). @return RSY_OK, RSY_ENOMEM, RSY_ENUMERIC. */
rsy_status rsy__compartments_init(rsy__compartments *cs, const rsy_prior *p, const rsy_lesion *l);
void rsy__compartments_clear(rsy__compartments *cs);

/** Compartment of world point @p x from its radial coordinate @p rn and ray distance
 *  @p dist_mm (rsy__shape_radial), before the closed-wall rule and before nesting: the
 *  thinnest wall holding it, else the smallest fraction, else (outside) the thinnest margin;
 *  -1 if none. */
int rsy__compartments_base(const rsy__compartments *cs, double rn, double dist_mm);
/** Nesting of inclusions and network on top of base compartment @p base at @p x, in list
 *  order: a nested compartment takes the point when the point is in its blobs or lines and
 *  its current compartment is the nested one's parent. */
int rsy__compartments_nest(const rsy__compartments *cs, int base, const double x[3]);
/** 1 if @p x is on the network of compartment @p c (distance to a Voronoi face of the cell
 *  seeds <= half the line thickness). */
int rsy__network_at(const rsy__compartments *cs, int c, const double x[3]);

/* ---------------------------------------------------------------------------------------- */
/* placement.c                                                                                */
/* ---------------------------------------------------------------------------------------- */

/** A box of voxel indices [lo, hi] (inclusive) of a volume. */
typedef struct rsy__box {
    int64_t lo[3], hi[3];
} rsy__box;

static inline int64_t rsy__box_n(const rsy__box *b, int a)
{
    return b->hi[a] - b->lo[a] + 1;
}
static inline size_t rsy__box_nvox(const rsy__box *b)
{
    return (size_t)rsy__box_n(b, 0) * (size_t)rsy__box_n(b, 1) * (size_t)rsy__box_n(b, 2);
}

/**
 * Exact Euclidean distance transform (P. F. Felzenszwalb, D. P. Huttenlocher, "Distance
 * transforms of sampled functions", Theory of Computing 8, 2012, pp. 415-428): for every voxel
 * of box @p b of the uint16 map @p cls (dims @p dims, voxel size @p spacing_mm), the distance
 * in mm to the nearest voxel of the box whose class c has @p feature[c] set (classes >= 64
 * never are). @p out holds rsy__box_nvox(b) floats, x fastest. Distances up to @p max_mm
 * (HUGE_VAL: no limit) are exact; larger ones and voxels without a feature in the box are
 * INFINITY (truncation lets the passes skip lines with nothing in reach).
 * @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__edt_box(const uint16_t *cls, const int64_t dims[3], const double spacing_mm[3],
                        const rsy__box *b, const unsigned char *feature, double max_mm, float *out);
/**
 * As rsy__edt_box(), with @p edges = 1 the distance from each voxel centre to the nearest
 * point of a feature voxel (its box: the voxel's faces), sqrt(sum_a s_a^2 max(0, |n_a| - 1/2)^2)
 * for the index offset n to that voxel: 0 on a feature voxel, half a voxel next to one. This is
 * the distance to the reference tissue as a region, which the distance rules use (placement.c);
 * @p edges = 0 is rsy__edt_box(). Exact (the same separable passes, each line's lower envelope
 * read at p -/+ 1/2). @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__edt_box_ex(const uint16_t *cls, const int64_t dims[3], const double spacing_mm[3],
                           const rsy__box *b, const unsigned char *feature, double max_mm,
                           int edges, float *out);

/** Placement state of one lesion type in one case (placement.c). */
typedef struct rsy__placer rsy__placer;

/** Build the placer of prior @p p (tissue sets @p tis) on the class map @p cls: the distance
 *  maps of its rule, the hosts' S-I extent and the weighted candidate anchors.
 *  @return RSY_OK, RSY_ENOMEM. */
rsy_status rsy__placer_create(rsy__placer **out, const rsy_prior *p, const rsy__prior_tissues *tis,
                              const rsy_volume *cls);
void rsy__placer_destroy(rsy__placer *pl);
/** Candidate anchors (voxels that are hosts within the rule's distance window), 0 if none. */
uint64_t rsy__placer_candidates(const rsy__placer *pl);
/** Recompute the distance maps and candidates from @p cls (same geometry) after the class
 *  map changed (mass effect). @return RSY_OK, RSY_ENOMEM. */
rsy_status rsy__placer_refresh(rsy__placer *pl, const rsy_volume *cls);
/**
 * Draw an anchor (one uniform for the candidate, among those of @p zone when it is >= 0 (from
 * rsy__placer_draw_zone), three for the jitter within its voxel) and
 * write into @p l: anchor_mm, host_class, anchor_distance_mm, normal; for oriented rules turn
 * the lesion (one more uniform: the roll) and for extra_axial move the centre inward so the
 * lesion's base touches the reference; otherwise center_mm = anchor_mm. @p sh is the lesion's
 * evaluator (updated here). Returns 0 when the attempt cannot be used (extra_axial where the
 * distance gradient vanishes), else 1.
 */
int rsy__placer_draw(const rsy__placer *pl, rsy_rng *rng, int zone, rsy_lesion *l, rsy__shape *sh);
/** The zone of a lesion of a prior with unequal zone weights: one uniform, zone z (0 upper,
 *  1 middle, 2 lower third) with probability w_z N_z / sum w N; -1 (and no draw) when the
 *  weights are equal. rsy__placer_draw() with that zone draws among its candidates only. */
int rsy__placer_draw_zone(const rsy__placer *pl, rsy_rng *rng);

/* ---------------------------------------------------------------------------------------- */
/* mass_effect.c                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Decay profile of the displacement beyond the surface: g(t) = e^-t (1 - (t/T)^2)^2 for
 * t = (r - R)/range < T, 0 beyond (compact support, C1, decreasing). */
#define RSY__MASS_CUTOFF 3.0
/* Lipschitz constant of the cap near fixed tissues: displacement <= beta (d - h). */
#define RSY__MASS_BETA 0.75

/** Copy box @p b of the uint16 volume @p v into @p out (x fastest), or back. */
void rsy__box_read(const rsy_volume *v, const rsy__box *b, uint16_t *out);
void rsy__box_write(rsy_volume *v, const rsy__box *b, const uint16_t *in);

/** The box of geometry @p g that the push of lesion @p l (prior @p p, tissue sets @p tis;
 *  centre mass_center_mm, strength mass_strength) reads and writes; empty (hi < lo) when it
 *  moves no voxel. @return RSY_OK, RSY_ENOMEM. */
rsy_status rsy__mass_effect_region(const rsy_prior *p, const rsy__prior_tissues *tis,
                                   const rsy_lesion *l, const rsy_geometry *g, rsy__box *box);

/**
 * Apply the push of @p l to the box contents @p classes_box (in: the classes of @p box, from
 * rsy__mass_effect_region; out: pushed) and, when not NULL, @p instances_box, by backward
 * nearest-neighbour warping; move the centres and anchors of @p moved (n_moved lesions placed
 * before) with the tissue. Writes the largest applied displacement (mm) to @p max_mm and, when
 * @p src_index is not NULL (tests), the box index each voxel of the box took its value from.
 * @return RSY_OK, RSY_ENOMEM, RSY_EINVAL (box not the push's region).
 */
rsy_status rsy__mass_effect_warp(const rsy_prior *p, const rsy__prior_tissues *tis,
                                 const rsy_lesion *l, const rsy_geometry *g, const rsy__box *box,
                                 uint16_t *classes_box, uint16_t *instances_box, rsy_lesion *moved,
                                 int n_moved, double *max_mm, int64_t *src_index);

/** The pushes of one case during sampling (sample.c): per pushing lesion its box and the
 *  classes of the box after the push, an overlay on the caller's class map until a working
 *  copy is needed (a case whose last lesion pushes never copies the map). */
typedef struct rsy__push_entry {
    int instance_id;
    rsy__box box;
    uint16_t *after;
} rsy__push_entry;

typedef struct rsy__push_cache {
    int n, cap;
    rsy__push_entry *e;
} rsy__push_cache;

void rsy__push_cache_free(rsy__push_cache *c);

/**
 * For tests: the backward map of the push of @p l on @p classes at every voxel of its box:
 * @p box receives the box and @p src (3 rsy__box_nvox(box) doubles, owned by the caller,
 * free()) the world source point of each voxel centre (the centre itself where the push moves
 * nothing: beyond the reach, where m < half a voxel, the map is taken as the identity).
 * @return RSY_OK, RSY_ENOMEM.
 */
rsy_status rsy__mass_effect_map(const rsy_prior *p, const rsy__prior_tissues *tis,
                                const rsy_lesion *l, const rsy_volume *classes, rsy__box *box,
                                double **src);

#endif /* RSY_PRIORS_INTERNAL_H */
