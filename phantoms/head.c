/*
 * head.c: the procedural "head" phantom family.
 *
 * Anatomy is a set of smooth implicit surfaces in a reference frame (mm, RAS+, origin at the
 * centre of the cerebral envelope), evaluated per voxel at the point the subject's random
 * diffeomorphism maps the voxel to (pull-back, so the class map is the anatomy composed with
 * an invertible map and keeps its topology). Layers, from outside in: scalp, skull (outer and
 * inner table), subarachnoid CSF, a folded cortical grey-matter band, white matter; inside:
 * lateral and third ventricles, deep grey nuclei, corpus callosum (white matter crossing the
 * midline under the interhemispheric fissure), cerebellum below the tentorium, brainstem
 * continuing as the spinal cord through the foramen magnum.
 *
 * Sizes: the intracranial volume (ICV) is drawn from the adult distribution by sex (domain.md
 * 5.4, [S117] Matsumae et al. 1996: M 1469 +- 102, F 1289 +- 111 cm^3) and the reference
 * shape is scaled to it (its volume is integrated numerically once per subject). The other
 * dimensions are textbook adult values, marked (GK) where they appear.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "phantoms_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Subject-level constants                                                                    */
/* ---------------------------------------------------------------------------------------- */
/* Intracranial volume, cm^3, adults [S117]; the draw is truncated at +-2 SD. */
#define ICV_MALE_MEAN_ML 1469.0
#define ICV_MALE_SD_ML 102.0
#define ICV_FEMALE_MEAN_ML 1289.0
#define ICV_FEMALE_SD_ML 111.0
#define ICV_TRUNCATION_SD 2.0
/* Per-axis head shape variation beyond the isotropic size, +-4% (GK). */
#define AXIS_SCALE_SPREAD 0.04
/* Ventricular volume grows with age: factor exp(VENT_AGE_SLOPE * (age - VENT_AGE_REF)), about
 * +1.5%/year, i.e. roughly doubling between the 3rd and 8th decade (GK); mean 17.4 cm^3 in
 * adults [S118]. Individual variation: log-normal GSD 1.2 truncated to [0.8, 1.25] (GK). */
#define VENT_AGE_SLOPE_PER_YEAR 0.015
#define VENT_AGE_REF_YEARS 50.0
#define VENT_INDIVIDUAL_GSD 1.2
#define VENT_INDIVIDUAL_MIN 0.8
#define VENT_INDIVIDUAL_MAX 1.25
/* Brain atrophy with age (GK): the subarachnoid CSF layer thickens and sulci widen. Values at
 * age 20 and slopes per year, chosen so that all CSF (extra-axial, sulcal, cisternal and
 * ventricular) is about 10% of ICV at 20-30 y, 12% at 40-55 y (the adult 11.4% of [S117])
 * and 14-16% at 70-80 y. Sulcal span under 1 mm in young adults, widening with age (GK). */
#define CSF_LAYER_MM_AT_20 0.4
#define CSF_LAYER_SLOPE_MM_PER_YEAR 0.008
#define SULCUS_WIDTH_MM_AT_20 0.3
#define SULCUS_WIDTH_SLOPE_MM_PER_YEAR 0.01
#define FISSURE_WIDTH_MM_AT_20 1.5
#define FISSURE_WIDTH_SLOPE_MM_PER_YEAR 0.01

/* ---------------------------------------------------------------------------------------- */
/* Shape constants (reference frame, mm)                                                       */
/* ---------------------------------------------------------------------------------------- */
/* Soft-tissue and bone thickness ranges (GK): scalp 5-7 mm, skull 6-8 mm, cortex 2.5-3 mm. */
#define SCALP_MM_MIN 5.0
#define SCALP_MM_MAX 7.0
#define SKULL_MM_MIN 6.0
#define SKULL_MM_MAX 8.0
#define CORTEX_MM_MIN 2.5
#define CORTEX_MM_MAX 3.0
/* Envelope boxiness (0 = ellipsoid) and egg shape (wider posteriorly), GK head shape. */
#define ENV_BOXINESS 0.35
#define ENV_EGG 0.06
/* Cortical folding (GK adult values): sulci are clefts 10-20 mm deep, about 12-15 mm apart, so
 * gyri are about 1 cm wide with a white-matter core. Their mid-surfaces are the boundaries of
 * a Voronoi tessellation (Worley's cellular noise, SIGGRAPH 1996) of seeds jittered on a 3D
 * grid of FOLD_CELL_MM, evaluated on the radial projection of a point onto the envelope, so
 * every sulcus runs perpendicular to the brain surface and the sulci form one connected,
 * branching network around gyral cells. */
#define FOLD_CELL_MM 15.0
/* Seeds within a cell: jitter fraction (1 = anywhere in the cell). */
#define FOLD_JITTER 0.9
#define SULCUS_DEPTH_MM_MIN 10.0
#define SULCUS_DEPTH_MM_MAX 20.0
/* Sulcal depth varies smoothly over the surface on this scale (GK: deep primary sulci,
 * shallower secondary ones). */
#define SULCUS_DEPTH_SCALE_MM 50.0
/* Sulci end (at a fundus lined by grey matter) where the point lies closer to the envelope
 * centre than this envelope-normalised radius, which keeps sulcal CSF out of the deep white
 * matter, the basal ganglia and the ventricles; FUNDUS_SCALE_MM converts the radius deficit
 * to millimetres. Medial sulci (cingulate, parieto-occipital...) are cut from the
 * interhemispheric fissure only within the maximal sulcal depth plus MEDIAL_SULCI_MARGIN_MM of
 * the convexity. */
#define SULCI_MIN_RADIUS 0.6
#define FUNDUS_SCALE_MM 60.0
#define MEDIAL_SULCI_MARGIN_MM 6.0
/* Sylvian fissure and tentorium CSF cleft widths (GK). */
#define SYLVIAN_WIDTH_MM 2.5
#define TENTORIUM_WIDTH_MM 2.0
/* Width of the ambient and prepontine cisterns around the brainstem (GK). */
#define CISTERN_MM 2.5
/* Third ventricle: a midline slit between the thalami, about 3-5 mm wide in adults (GK). */
#define THIRD_VENTRICLE_WIDTH_MM 3.0
/* Skull base (GK adult anatomy, reference frame): the anterior cranial fossa floor (orbital
 * roofs) at ANT_FOSSA_Z; the middle fossa floor at MID_FOSSA_Z laterally, rising towards the
 * sella turcica by MID_FOSSA_RISE at the midline (Gaussian of width MID_FOSSA_SIGMA); the
 * sphenoid ridge between them runs from SPHENOID_Y0 to SPHENOID_Y1. */
#define ANT_FOSSA_Z_MM (-24.0)
#define MID_FOSSA_Z_MM (-44.0)
#define MID_FOSSA_RISE_MM 16.0
#define MID_FOSSA_SIGMA_MM 9.0
#define SPHENOID_Y0_MM 10.0
#define SPHENOID_Y1_MM 24.0
/* Clivus: the posterior surface of the sloping bone from the dorsum sellae (y, z) to the
 * basion, leaving a prepontine cistern of a few millimetres in front of the pons (GK). */
#define CLIVUS_TOP_Y_MM 4.0
#define CLIVUS_TOP_Z_MM (-20.0)
#define CLIVUS_BASION_Y_MM (-16.0)
#define CLIVUS_BASION_Z_MM (-66.0)
/* Prepontine and cerebellopontine-angle space between the clivus and the cerebellum: a
 * rounded box (centre y, z and semi-axes, mm). */
#define PREPONTINE_CY_MM (-12.0)
#define PREPONTINE_CZ_MM (-38.0)
#define PREPONTINE_A_MM 18.0
#define PREPONTINE_B_MM 14.0
#define PREPONTINE_C_MM 28.0
/* Spinal canal (CSF around the cord) and the cervical vertebrae below the foramen magnum:
 * a vertebral body (with the dens) in front of the canal and a posterior arch (GK). */
#define CANAL_RADIUS_MM 12.0
#define CANAL_TOP_MM (-50.0)
#define VERTEBRA_TOP_MM (-72.0)
#define VERTEBRAL_ARCH_MM 5.0
#define VERTEBRAL_BODY_A_MM 13.0
#define VERTEBRAL_BODY_B_MM 9.0
#define VERTEBRAL_BODY_OFFSET_MM 19.0
/* Face and neck soft tissue (GK proportions): a face ellipsoid below the frontal bone and an
 * elliptic neck column, blended with the scalp by a smooth minimum of this radius so the
 * outline has no corners. */
#define FACE_CY_MM 24.0
#define FACE_CZ_MM (-58.0)
#define FACE_A_MM 56.0
#define FACE_B_MM 64.0
#define FACE_C_MM 52.0
#define NECK_CY_MM (-16.0)
#define NECK_A_MM 50.0
#define NECK_B_MM 54.0
#define NECK_TOP_MM (-40.0)
#define SOFT_BLEND_MM 24.0
/* Placement: the brain centre sits at most this high above the world origin, which puts the
 * vertex about 2 cm below the top of a 224-mm field of view, as in a head MRI. */
#define CENTRE_Z_MAX_MM 20.0
#define VERTEX_CLEARANCE_MM 8.0
/* Grid step of the numerical integration of the reference intracranial volume. */
#define ICV_INTEGRATION_STEP_MM 1.5

/* One segment of a ventricle centre line; radius at each end. */
typedef struct seg {
    double a[3], b[3];
    double ra, rb;
} seg;

/* Lateral ventricle, right side (the left mirrors it), adult shape (GK).
 * Frontal horn and body: in coronal section a wing between the septum pellucidum (medial wall,
 * VENT_SEPTUM_HALF_MM from the midline) and a pointed superolateral angle; the roof is the
 * underside of the corpus callosum (VENT_CC_THICK_MM below its upper surface), the floor
 * slopes up laterally over the caudate nucleus, so the two sides together form the coronal
 * "butterfly". Knots along y give the wing's lateral extent (mm from the septum) and its
 * height at the septum; the frontal horn is taller and the body flatter. */
#define VENT_SEPTUM_HALF_MM 1.2
#define VENT_CC_THICK_MM 7.0
#define VENT_ROOF_DROOP_MM 2.0
#define VENT_FLOOR_POWER 1.6
static const double vent_wing[][3] = {/* y, lateral extent, height at the septum */
                                      {38.0, 0.0, 0.0},   {33.0, 9.0, 10.0},
                                      {24.0, 14.0, 14.0}, {12.0, 14.0, 12.0},
                                      {0.0, 14.0, 9.0},   {-12.0, 15.0, 9.0},
                                      {-20.0, 15.0, 9.0}, {-24.0, 0.0, 0.0}};
#define N_VENT_WING (sizeof vent_wing / sizeof vent_wing[0])
/* Atrium (trigone), occipital horn and temporal horn as swept spheres (centre x, y, z and
 * radius), continuing the body backwards; the temporal horn curves forwards and down into the
 * temporal lobe from the atrium. Radii tuned so the total ventricular volume matches [S118]
 * at the reference age. */
static const double vent_main[][4] = {{12.0, -16.0, 16.0, 5.0},
                                      {20.0, -30.0, 12.0, 6.3},
                                      {18.0, -44.0, 8.0, 3.8},
                                      {14.0, -56.0, 6.0, 1.8}};
static const double vent_temporal[][4] = {{20.0, -30.0, 12.0, 5.4},
                                          {27.0, -25.0, -4.0, 3.8},
                                          {30.0, -10.0, -16.0, 3.1},
                                          {29.0, 4.0, -20.0, 1.8}};
#define N_VENT_MAIN (sizeof vent_main / sizeof vent_main[0])
#define N_VENT_TEMPORAL (sizeof vent_temporal / sizeof vent_temporal[0])
#define N_VENT_SEGS (N_VENT_MAIN - 1 + N_VENT_TEMPORAL - 1)
/* Ventricles are flattened vertically: half-height = VENT_FLAT * radius (GK). */
#define VENT_FLAT 0.75

/* Deep grey nuclei, right side (x > 0): centre and semi-axes (GK adult sizes). */
enum { DG_CAUDATE_HEAD, DG_CAUDATE_BODY, DG_PUTAMEN, DG_PALLIDUM, DG_THALAMUS, N_DG };
static const double deep_grey_ref[N_DG][6] = {
    {14.0, 20.0, 6.0, 6.0, 9.0, 8.0},    /* caudate head, beside the frontal horn */
    {15.0, 2.0, 15.0, 4.0, 12.0, 4.0},   /* caudate body, on the ventricle's floor */
    {24.0, 6.0, 0.0, 6.0, 16.0, 11.0},   /* putamen */
    {18.0, 2.0, -2.0, 3.5, 8.0, 6.0},    /* globus pallidus */
    {9.5, -14.0, 5.0, 8.0, 16.0, 10.0}}; /* thalamus */
/* Cerebellum: two hemispheres and the vermis, together about 140 cm^3 and filling the
 * posterior fossa but for a thin CSF layer and the cisterna magna (GK). */
static const double cerebellum_ref[3][6] = {{23.0, -52.0, -38.0, 29.5, 32.0, 24.5},
                                            {-23.0, -52.0, -38.0, 29.5, 32.0, 24.5},
                                            {0.0, -55.0, -34.0, 12.0, 25.0, 19.0}};
/* Brainstem centre line knots (z, y, radius), midbrain to the cord (GK). */
static const double brainstem_knots[][3] = {
    {0.0, -14.0, 9.0},   {-12.0, -16.0, 10.5}, {-22.0, -15.0, 13.0}, {-36.0, -19.0, 12.5},
    {-46.0, -24.0, 9.0}, {-66.0, -28.0, 7.0},  {-90.0, -28.0, 6.0}};
#define N_BS_KNOTS (sizeof brainstem_knots / sizeof brainstem_knots[0])

/* Everything needed to classify a reference-frame point. */
typedef struct head_model {
    /* world -> reference */
    double centre_mm[3];
    double inv_scale[3];
    /* layers */
    double t_scalp, t_skull, t_csf, t_gm;
    double w_sulcus, w_fissure;
    double vent_wing_scale[2]; /* linear size of the ventricular wing section, per side */
    /* folding */
    uint64_t fold_seed;
    double depth_k[3], depth_phase, depth_mean, depth_amp;
    /* ventricles: segments, both sides */
    seg vent[2][N_VENT_SEGS];
    /* deep grey and cerebellum ellipsoids per side: centre, inverse semi-axes */
    double dg[2][N_DG][6];
    double cb[3][6];
} head_model;

/* ---------------------------------------------------------------------------------------- */
/* Shared geometric helpers (declared in phantoms_internal.h)                                 */
/* ---------------------------------------------------------------------------------------- */
double rsy__head_tentorium_z(double x_mm, double y_mm)
{
    double behind = -40.0 - y_mm;
    return -14.0 - 0.2 * fabs(x_mm) - 0.25 * (behind > 0.0 ? behind : 0.0);
}

double rsy__head_sylvian_z(double y_mm)
{
    return -11.0 - 0.3 * y_mm;
}

double rsy__head_insula_x(double y_mm)
{
    double dy = y_mm + 1.0;
    return 36.0 + 0.02 * dy * dy;
}

int rsy__head_brainstem_at(double z_mm, double *y_mm, double *r_mm)
{
    if (z_mm > brainstem_knots[0][0])
        return 0;
    for (size_t i = 1; i < N_BS_KNOTS; i++) {
        if (z_mm >= brainstem_knots[i][0]) {
            double t = (brainstem_knots[i - 1][0] - z_mm) /
                       (brainstem_knots[i - 1][0] - brainstem_knots[i][0]);
            *y_mm =
                brainstem_knots[i - 1][1] + t * (brainstem_knots[i][1] - brainstem_knots[i - 1][1]);
            *r_mm =
                brainstem_knots[i - 1][2] + t * (brainstem_knots[i][2] - brainstem_knots[i - 1][2]);
            return 1;
        }
    }
    *y_mm = brainstem_knots[N_BS_KNOTS - 1][1];
    *r_mm = brainstem_knots[N_BS_KNOTS - 1][2];
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Intracranial space                                                                          */
/* ---------------------------------------------------------------------------------------- */
/* First-order signed distance to the level set sqrt(f) = 1 of a boxy ellipsoid
 * f = (sum q_i^2 + g sum q_i^4) / (1 + g), q_i = p_i / a_i: (sqrt f - 1) / |grad sqrt f|. */
static double boxy_distance(const double p[3], const double a[3], double g)
{
    double f = 0.0, grad2 = 0.0;
    double q[3];
    for (int i = 0; i < 3; i++)
        q[i] = p[i] / a[i];
    for (int i = 0; i < 3; i++) {
        double q2 = q[i] * q[i];
        f += q2 + g * q2 * q2;
        double df = (2.0 * q[i] + 4.0 * g * q2 * q[i]) / a[i];
        grad2 += df * df;
    }
    f /= 1.0 + g;
    grad2 /= (1.0 + g) * (1.0 + g);
    double s = sqrt(f);
    if (grad2 < 1e-30)
        return -a[0];
    /* grad sqrt(f) = grad f / (2 sqrt f) */
    return (s - 1.0) * 2.0 * s / sqrt(grad2);
}

static double envelope_distance(const double p[3])
{
    double a[3] = {RSY__HEAD_ENV_A_MM * (1.0 - ENV_EGG * p[1] / RSY__HEAD_ENV_B_MM),
                   RSY__HEAD_ENV_B_MM, p[2] >= 0.0 ? RSY__HEAD_ENV_C_MM : RSY__HEAD_ENV_C_INF_MM};
    return boxy_distance(p, a, ENV_BOXINESS);
}

static double smoothstep(double e0, double e1, double x)
{
    double t = (x - e0) / (e1 - e0);
    t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
    return t * t * (3.0 - 2.0 * t);
}

/* Signed distance (first order, positive below) to the floor of the anterior and middle
 * cranial fossae, a smooth height field z_f(x, y): the orbital roofs in front of the sphenoid
 * ridge, the deeper middle fossa behind it, rising to the sella turcica at the midline. */
static double floor_distance(const double p[3])
{
    const double s2 = MID_FOSSA_SIGMA_MM * MID_FOSSA_SIGMA_MM;
    const double span = SPHENOID_Y1_MM - SPHENOID_Y0_MM;
    double x = p[0], y = p[1];
    double gauss = exp(-0.5 * x * x / s2);
    double mid = MID_FOSSA_Z_MM + MID_FOSSA_RISE_MM * gauss;
    double t = smoothstep(SPHENOID_Y0_MM, SPHENOID_Y1_MM, y);
    double u = (y - SPHENOID_Y0_MM) / span;
    double dt_dy = u > 0.0 && u < 1.0 ? 6.0 * u * (1.0 - u) / span : 0.0;
    double zf = mid + t * (ANT_FOSSA_Z_MM - mid);
    double gx = -MID_FOSSA_RISE_MM * gauss * x / s2 * (1.0 - t);
    double gy = (ANT_FOSSA_Z_MM - mid) * dt_dy;
    return (zf - p[2]) / sqrt(1.0 + gx * gx + gy * gy);
}

/* Signed distance to the posterior surface of the clivus, positive in front (in the bone). */
static double clivus_distance(const double p[3])
{
    double vy = CLIVUS_BASION_Y_MM - CLIVUS_TOP_Y_MM, vz = CLIVUS_BASION_Z_MM - CLIVUS_TOP_Z_MM;
    double len = sqrt(vy * vy + vz * vz);
    /* (-vz, vy) / len is the unit normal pointing forwards (to +y) and down. */
    return (-(p[1] - CLIVUS_TOP_Y_MM) * vz + (p[2] - CLIVUS_TOP_Z_MM) * vy) / len;
}

static double pf_distance(const double p[3])
{
    double q[3] = {p[0], p[1] - RSY__HEAD_PF_CY_MM, p[2] - RSY__HEAD_PF_CZ_MM};
    double a[3] = {RSY__HEAD_PF_A_MM, RSY__HEAD_PF_B_MM, RSY__HEAD_PF_C_MM};
    double d = boxy_distance(q, a, 0.0);
    /* The prepontine space between the clivus and the cerebellum. */
    double qp[3] = {p[0], p[1] - PREPONTINE_CY_MM, p[2] - PREPONTINE_CZ_MM};
    double ap[3] = {PREPONTINE_A_MM, PREPONTINE_B_MM, PREPONTINE_C_MM};
    double dp = fmax(boxy_distance(qp, ap, ENV_BOXINESS), clivus_distance(p));
    return fmin(d, dp);
}

static int inside_pf(const double p[3])
{
    double x = p[0] / RSY__HEAD_PF_A_MM, y = (p[1] - RSY__HEAD_PF_CY_MM) / RSY__HEAD_PF_B_MM;
    double z = (p[2] - RSY__HEAD_PF_CZ_MM) / RSY__HEAD_PF_C_MM;
    return x * x + y * y + z * z < 1.0;
}

/* Signed distance (approximate, mm, negative inside) to the supratentorial compartment: the
 * cerebral envelope above the floor of the anterior and middle fossae. */
static double cerebral_distance(const double p[3])
{
    return fmax(envelope_distance(p), floor_distance(p));
}

/* Signed distance (approximate, mm, negative inside) to the inner table of the skull: the
 * supratentorial compartment united with the posterior fossa (behind the clivus). */
static double icv_distance(const double p[3])
{
    return fmin(cerebral_distance(p), pf_distance(p));
}

/* ---------------------------------------------------------------------------------------- */
/* Per-voxel classification                                                                    */
/* ---------------------------------------------------------------------------------------- */
static int in_ellipsoid(const double e[6], double x, double y, double z)
{
    double u = (x - e[0]) * e[3], v = (y - e[1]) * e[4], w = (z - e[2]) * e[5];
    return u * u + v * v + w * w < 1.0;
}

/* Height of the upper surface of the corpus callosum at the midline, at @p y_mm. */
static double cc_top_z(double y_mm)
{
    double dy = y_mm - RSY__HEAD_CC_MID_MM;
    return RSY__HEAD_CC_TOP_MM - RSY__HEAD_CC_CURV_PER_MM * dy * dy;
}

/* Frontal horn and body of one lateral ventricle (the wing of vent_wing), at distance @p ax
 * from the midline. */
static int in_ventricle_wing(double scale, double ax, double y, double z)
{
    if (y >= vent_wing[0][0] || y <= vent_wing[N_VENT_WING - 1][0])
        return 0;
    size_t i = 0;
    while (i + 2 < N_VENT_WING && y <= vent_wing[i + 1][0])
        i++;
    double t = (vent_wing[i][0] - y) / (vent_wing[i][0] - vent_wing[i + 1][0]);
    double w = scale * (vent_wing[i][1] + t * (vent_wing[i + 1][1] - vent_wing[i][1]));
    double h = scale * (vent_wing[i][2] + t * (vent_wing[i + 1][2] - vent_wing[i][2]));
    double u = (ax - VENT_SEPTUM_HALF_MM) / w;
    if (!(u >= 0.0 && u < 1.0))
        return 0;
    double z_roof = cc_top_z(y) - VENT_CC_THICK_MM - VENT_ROOF_DROOP_MM * u * u;
    double z_floor = z_roof - h * pow(1.0 - u, VENT_FLOOR_POWER);
    return z < z_roof && z > z_floor;
}

static int in_ventricle(const head_model *m, int side, const double p[3])
{
    if (in_ventricle_wing(m->vent_wing_scale[side], fabs(p[0]), p[1], p[2]))
        return 1;
    /* Work in a frame stretched vertically so the tubes become flat. */
    double q[3] = {p[0], p[1], p[2] / VENT_FLAT};
    for (size_t s = 0; s < N_VENT_SEGS; s++) {
        const seg *g = &m->vent[side][s];
        double ab[3], aq[3], ab2 = 0.0, t = 0.0;
        for (int i = 0; i < 3; i++) {
            ab[i] = g->b[i] - g->a[i];
            aq[i] = q[i] - g->a[i];
            ab2 += ab[i] * ab[i];
            t += aq[i] * ab[i];
        }
        t = ab2 > 0.0 ? t / ab2 : 0.0;
        t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
        double r = g->ra + t * (g->rb - g->ra), d2 = 0.0;
        for (int i = 0; i < 3; i++) {
            double c = aq[i] - t * ab[i];
            d2 += c * c;
        }
        if (d2 < r * r)
            return 1;
    }
    return 0;
}

/* Seed of folding cell @p c: a point jittered in the cell from a hash of its integer
 * coordinates and the subject's seed (splitmix64 finaliser; Steele et al., OOPSLA 2014). */
static void fold_seed_point(uint64_t seed, const int64_t c[3], double out[3])
{
    uint64_t h = seed;
    for (int i = 0; i < 3; i++) {
        h ^= (uint64_t)c[i] + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h += 0x9e3779b97f4a7c15ULL;
        uint64_t z = h;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        double u = (double)(z >> 11) * (1.0 / 9007199254740992.0);
        out[i] = ((double)c[i] + 0.5 + FOLD_JITTER * (u - 0.5)) * FOLD_CELL_MM;
    }
}

/* Tangential distance (mm) from reference point @p p to the nearest sulcal mid-surface, and
 * the local sulcal depth, both from the folding pattern on the radial projection of @p p onto
 * the ellipsoid of the envelope's semi-axes. */
static void sulcus_at(const head_model *m, const double p[3], double *dist_mm, double *depth_mm)
{
    const double a[3] = {RSY__HEAD_ENV_A_MM, RSY__HEAD_ENV_B_MM,
                         p[2] >= 0.0 ? RSY__HEAD_ENV_C_MM : RSY__HEAD_ENV_C_INF_MM};
    double rho2 = 0.0;
    for (int i = 0; i < 3; i++)
        rho2 += p[i] * p[i] / (a[i] * a[i]);
    double rho = sqrt(rho2 > 1e-12 ? rho2 : 1e-12);
    double q[3], nrm[3], nn = 0.0;
    for (int i = 0; i < 3; i++) {
        q[i] = p[i] / rho;
        nrm[i] = q[i] / (a[i] * a[i]);
        nn += nrm[i] * nrm[i];
    }
    nn = sqrt(nn);
    /* Nearest and second-nearest seeds among the 27 cells around q. */
    double d1 = INFINITY, d2 = INFINITY, s1[3] = {0.0, 0.0, 0.0}, s2[3] = {0.0, 0.0, 0.0};
    int64_t c0[3];
    for (int i = 0; i < 3; i++)
        c0[i] = (int64_t)floor(q[i] / FOLD_CELL_MM);
    for (int64_t dk = -1; dk <= 1; dk++)
        for (int64_t dj = -1; dj <= 1; dj++)
            for (int64_t di = -1; di <= 1; di++) {
                int64_t c[3] = {c0[0] + di, c0[1] + dj, c0[2] + dk};
                double sd[3], dd = 0.0;
                fold_seed_point(m->fold_seed, c, sd);
                for (int i = 0; i < 3; i++)
                    dd += (q[i] - sd[i]) * (q[i] - sd[i]);
                if (dd < d1) {
                    d2 = d1;
                    memcpy(s2, s1, sizeof s1);
                    d1 = dd;
                    memcpy(s1, sd, sizeof sd);
                } else if (dd < d2) {
                    d2 = dd;
                    memcpy(s2, sd, sizeof sd);
                }
            }
    /* Distance to their bisector plane, measured along the surface: the plane's unit normal
     * e = (s2 - s1) / |s2 - s1| has tangential part e_t, and a step t along e_t moves the
     * plane distance by t |e_t|^2 / |e_t| = t |e_t|. */
    double e[3], len = 0.0;
    for (int i = 0; i < 3; i++) {
        e[i] = s2[i] - s1[i];
        len += e[i] * e[i];
    }
    len = sqrt(len);
    double en = 0.0;
    for (int i = 0; i < 3; i++) {
        e[i] /= len;
        en += e[i] * nrm[i] / nn;
    }
    double et = sqrt(fmax(1.0 - en * en, 0.0));
    double plane = (d2 - d1) / (2.0 * len);
    *dist_mm = rho * plane / fmax(et, 0.3);
    *depth_mm = m->depth_mean + m->depth_amp * cos(m->depth_k[0] * q[0] + m->depth_k[1] * q[1] +
                                                   m->depth_k[2] * q[2] + m->depth_phase);
}

static uint16_t classify_cerebrum(const head_model *m, const double p[3], double delta)
{
    double x = p[0], y = p[1], z = p[2], ax = fabs(x);
    int side = x >= 0.0 ? 0 : 1;

    if (ax < 0.5 * THIRD_VENTRICLE_WIDTH_MM && y > -22.0 && y < 6.0 && z > -8.0 && z < 12.0)
        return RSY_HEAD_VENTRICLES;
    int near_deep = ax < 45.0 && y > -66.0 && y < 44.0 && z > -30.0 && z < 34.0;
    /* The caudate nucleus indents the frontal horn and lines the body's floor. */
    if (near_deep && (in_ellipsoid(m->dg[side][DG_CAUDATE_HEAD], x, y, z) ||
                      in_ellipsoid(m->dg[side][DG_CAUDATE_BODY], x, y, z)))
        return RSY_HEAD_DEEP_GREY;
    if (near_deep && in_ventricle(m, side, p))
        return RSY_HEAD_VENTRICLES;
    if (near_deep)
        for (int n = DG_PUTAMEN; n < N_DG; n++)
            if (in_ellipsoid(m->dg[side][n], x, y, z))
                return RSY_HEAD_DEEP_GREY;

    /* Distance to the nearest pial surface: the outer envelope, the interhemispheric fissure
     * above the corpus callosum, the Sylvian fissure, the tentorium, and the sulci. */
    double pial = delta;
    int in_cc_span = y > RSY__HEAD_CC_Y_MIN_MM && y < RSY__HEAD_CC_Y_MAX_MM;
    double d_medial = INFINITY;
    if (!in_cc_span || z > cc_top_z(y)) {
        d_medial = ax - 0.5 * m->w_fissure;
        if (d_medial < 0.0)
            return RSY_HEAD_CSF;
        if (d_medial < pial)
            pial = d_medial;
    }
    double x_ins = rsy__head_insula_x(y);
    double dz = fabs(z - rsy__head_sylvian_z(y)) - 0.5 * SYLVIAN_WIDTH_MM;
    if (ax > x_ins) {
        if (dz < 0.0)
            return RSY_HEAD_CSF;
        if (dz < pial)
            pial = dz;
    } else {
        double d = hypot(dz > 0.0 ? dz : 0.0, x_ins - ax);
        if (d < pial)
            pial = d;
    }
    if (inside_pf(p)) {
        double d = z - rsy__head_tentorium_z(x, y);
        if (d < pial)
            pial = d;
    }
    /* The ambient cistern around the midbrain is lined by cortex (medial temporal lobe). */
    double yb, rb;
    if (z < -4.0 && rsy__head_brainstem_at(z, &yb, &rb)) {
        double d = hypot(x, y - yb) - (rb + CISTERN_MM);
        if (d < pial)
            pial = d;
    }
    /* Sulci are cut from the convexity, and from the medial surface away from the deep
     * midline structures. */
    double from = delta;
    if (d_medial < from && delta < SULCUS_DEPTH_MM_MAX + MEDIAL_SULCI_MARGIN_MM)
        from = d_medial;
    if (from < SULCUS_DEPTH_MM_MAX + m->t_gm) {
        double e[3] = {x / RSY__HEAD_ENV_A_MM, y / RSY__HEAD_ENV_B_MM,
                       z / (z >= 0.0 ? RSY__HEAD_ENV_C_MM : RSY__HEAD_ENV_C_INF_MM)};
        double rho = sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2]);
        double r_s, depth;
        sulcus_at(m, p, &r_s, &depth);
        r_s -= 0.5 * m->w_sulcus;
        /* How far beyond the fundus the point lies (negative inside the cleft's depth). */
        double beyond = fmax(from - depth, (SULCI_MIN_RADIUS - rho) * FUNDUS_SCALE_MM);
        if (beyond < 0.0) {
            if (r_s < 0.0)
                return RSY_HEAD_CSF;
            if (r_s < pial)
                pial = r_s;
        } else {
            double d = hypot(r_s > 0.0 ? r_s : 0.0, beyond);
            if (d < pial)
                pial = d;
        }
    }
    return pial < m->t_gm ? RSY_HEAD_GREY_MATTER : RSY_HEAD_WHITE_MATTER;
}

static uint16_t classify_intracranial(const head_model *m, const double p[3], double d_icv)
{
    double x = p[0], y = p[1], z = p[2];
    if (d_icv > -m->t_csf)
        return RSY_HEAD_CSF;
    double yb, rb;
    if (rsy__head_brainstem_at(z, &yb, &rb)) {
        double e2 = x * x + (y - yb) * (y - yb);
        if (e2 < rb * rb)
            return RSY_HEAD_BRAINSTEM;
        /* Ambient and prepontine cisterns around the brainstem (GK). */
        double rc = rb + CISTERN_MM;
        if (z < -4.0 && e2 < rc * rc)
            return RSY_HEAD_CSF;
    }
    double zt = rsy__head_tentorium_z(x, y);
    if (z < zt && inside_pf(p)) {
        if (z > zt - TENTORIUM_WIDTH_MM)
            return RSY_HEAD_CSF;
        for (int c = 0; c < 3; c++)
            if (in_ellipsoid(m->cb[c], x, y, z))
                return RSY_HEAD_CEREBELLUM;
        return RSY_HEAD_CSF;
    }
    /* Outside the supratentorial compartment: the cisterns in front of the pons. */
    double d_cer = cerebral_distance(p);
    if (d_cer > -m->t_csf)
        return RSY_HEAD_CSF;
    return classify_cerebrum(m, p, -d_cer - m->t_csf);
}

/* Polynomial smooth minimum of radius @p k (Quilez): equals min(a, b) when they differ by
 * more than k, and rounds the crease where they meet. */
static double smooth_min(double a, double b, double k)
{
    double h = k - fabs(a - b);
    h = h > 0.0 ? h / k : 0.0;
    return fmin(a, b) - 0.25 * h * h * k;
}

/* Signed distance (approximate) to the skin: the scalp over the cranium, the face and the
 * neck, blended smoothly. */
static double skin_distance(const head_model *m, const double p[3], double d_icv)
{
    double d_head = d_icv - m->t_skull - m->t_scalp;
    double qf[3] = {p[0], p[1] - FACE_CY_MM, p[2] - FACE_CZ_MM};
    const double af[3] = {FACE_A_MM, FACE_B_MM, FACE_C_MM};
    double d_face = boxy_distance(qf, af, 0.0);
    double nx = p[0] / NECK_A_MM, ny = (p[1] - NECK_CY_MM) / NECK_B_MM;
    double d_neck = (sqrt(nx * nx + ny * ny) - 1.0) * fmin(NECK_A_MM, NECK_B_MM);
    d_neck = fmax(d_neck, p[2] - NECK_TOP_MM);
    return smooth_min(d_head, smooth_min(d_face, d_neck, SOFT_BLEND_MM), SOFT_BLEND_MM);
}

static uint16_t classify(const head_model *m, const double p[3])
{
    double d_icv = icv_distance(p);
    if (d_icv < 0.0)
        return classify_intracranial(m, p, d_icv);
    double x = p[0], y = p[1], z = p[2];
    if (z < CANAL_TOP_MM) {
        double ry = y - RSY__HEAD_CANAL_Y_MM;
        double rc2 = x * x + ry * ry;
        if (rc2 < CANAL_RADIUS_MM * CANAL_RADIUS_MM) {
            double yb, rb;
            if (rsy__head_brainstem_at(z, &yb, &rb) && x * x + (y - yb) * (y - yb) < rb * rb)
                return RSY_HEAD_BRAINSTEM;
            return RSY_HEAD_CSF;
        }
        if (z < VERTEBRA_TOP_MM) {
            double rv = CANAL_RADIUS_MM + VERTEBRAL_ARCH_MM;
            double bx = x / VERTEBRAL_BODY_A_MM;
            double by = (ry - VERTEBRAL_BODY_OFFSET_MM) / VERTEBRAL_BODY_B_MM;
            if (rc2 < rv * rv || bx * bx + by * by < 1.0)
                return RSY_HEAD_SKULL;
        }
    }
    if (d_icv < m->t_skull)
        return RSY_HEAD_SKULL;
    if (skin_distance(m, p, d_icv) < 0.0)
        return RSY_HEAD_SCALP;
    return RSY_HEAD_BACKGROUND;
}

/* ---------------------------------------------------------------------------------------- */
/* Subject and model                                                                           */
/* ---------------------------------------------------------------------------------------- */
static double truncated_normal(rsy_rng *r, double mean, double sd, double lo, double hi)
{
    for (int i = 0; i < 1000; i++) {
        double v = mean + rsy_rng_gaussian(r, sd);
        if (v >= lo && v <= hi)
            return v;
    }
    return mean;
}

/* Volume (mm^3) of the reference intracranial space, integrated on a regular grid. */
static double reference_icv_mm3(void)
{
    const double h = ICV_INTEGRATION_STEP_MM;
    const double lo[3] = {-75.0, -95.0, -75.0}, hi[3] = {75.0, 95.0, 70.0};
    double count = 0.0;
    for (double z = lo[2] + 0.5 * h; z < hi[2]; z += h)
        for (double y = lo[1] + 0.5 * h; y < hi[1]; y += h)
            for (double x = lo[0] + 0.5 * h; x < hi[0]; x += h) {
                double p[3] = {x, y, z};
                if (icv_distance(p) < 0.0)
                    count += 1.0;
            }
    return count * h * h * h;
}

static rsy_status check_spec(const rsy_phantom_spec *spec)
{
    return rsy__phantom_check_spec(spec, "head");
}

/* Subject attributes from the subject stream: sex, age, ICV -> size, axis scale, and the
 * ventricular size factor. The number of draws does not depend on the spec. */
static void draw_subject(const rsy_phantom_spec *spec, rsy_rng *r, rsy_subject *s, double *icv_ml,
                         double *vent_factor)
{
    double u_sex = rsy_rng_uniform(r);
    if (spec->sex == RSY_SEX_RANDOM)
        s->sex = u_sex < spec->female_fraction ? RSY_SEX_FEMALE : RSY_SEX_MALE;
    else
        s->sex = spec->sex;
    s->age_years = rsy_rng_uniform_range(r, spec->age_min_years, spec->age_max_years);
    if (!(s->age_years >= spec->age_min_years))
        s->age_years = spec->age_min_years;
    double mean = s->sex == RSY_SEX_MALE ? ICV_MALE_MEAN_ML : ICV_FEMALE_MEAN_ML;
    double sd = s->sex == RSY_SEX_MALE ? ICV_MALE_SD_ML : ICV_FEMALE_SD_ML;
    *icv_ml =
        truncated_normal(r, mean, sd, mean - ICV_TRUNCATION_SD * sd, mean + ICV_TRUNCATION_SD * sd);
    for (int a = 0; a < 3; a++)
        s->axis_scale[a] =
            rsy_rng_uniform_range(r, 1.0 - AXIS_SCALE_SPREAD, 1.0 + AXIS_SCALE_SPREAD);
    double indiv = 1.0;
    for (int i = 0; i < 1000; i++) {
        indiv = rsy_rng_lognormal(r, 1.0, VENT_INDIVIDUAL_GSD);
        if (indiv >= VENT_INDIVIDUAL_MIN && indiv <= VENT_INDIVIDUAL_MAX)
            break;
        indiv = 1.0;
    }
    *vent_factor = indiv * exp(VENT_AGE_SLOPE_PER_YEAR * (s->age_years - VENT_AGE_REF_YEARS));
}

static void set_ellipsoid(double e[6], const double ref[6], double mirror, double size)
{
    e[0] = mirror * ref[0];
    e[1] = ref[1];
    e[2] = ref[2];
    for (int i = 0; i < 3; i++)
        e[3 + i] = 1.0 / (ref[3 + i] * size);
}

/* Shape parameters from the shape stream (the deformation draws from it afterwards). */
static void draw_shape(head_model *m, rsy_rng *r, double age, double vent_factor)
{
    m->t_scalp = rsy_rng_uniform_range(r, SCALP_MM_MIN, SCALP_MM_MAX);
    m->t_skull = rsy_rng_uniform_range(r, SKULL_MM_MIN, SKULL_MM_MAX);
    m->t_gm = rsy_rng_uniform_range(r, CORTEX_MM_MIN, CORTEX_MM_MAX);
    double years = age - 20.0;
    m->t_csf = CSF_LAYER_MM_AT_20 + CSF_LAYER_SLOPE_MM_PER_YEAR * years;
    m->w_sulcus = SULCUS_WIDTH_MM_AT_20 + SULCUS_WIDTH_SLOPE_MM_PER_YEAR * years;
    m->w_fissure = FISSURE_WIDTH_MM_AT_20 + FISSURE_WIDTH_SLOPE_MM_PER_YEAR * years;

    m->fold_seed = rsy_rng_u64(r);
    double n2 = 0.0;
    for (int i = 0; i < 3; i++) {
        m->depth_k[i] = rsy_rng_gaussian(r, 1.0);
        n2 += m->depth_k[i] * m->depth_k[i];
    }
    /* Sulcal depth varies smoothly over the surface between its bounds. */
    for (int i = 0; i < 3; i++)
        m->depth_k[i] *= 2.0 * M_PI / SULCUS_DEPTH_SCALE_MM / sqrt(n2 > 1e-12 ? n2 : 1.0);
    m->depth_phase = rsy_rng_uniform_range(r, 0.0, 2.0 * M_PI);
    m->depth_mean = 0.5 * (SULCUS_DEPTH_MM_MIN + SULCUS_DEPTH_MM_MAX);
    m->depth_amp = 0.5 * (SULCUS_DEPTH_MM_MAX - SULCUS_DEPTH_MM_MIN);

    /* Ventricles: cross-section area scales with the volume factor, so radii with its root.
     * Each side gets its own +-5% (GK: mild physiological asymmetry). */
    for (int side = 0; side < 2; side++) {
        double mirror = side == 0 ? 1.0 : -1.0;
        double rs = sqrt(vent_factor * rsy_rng_uniform_range(r, 0.95, 1.05));
        m->vent_wing_scale[side] = rs;
        size_t s = 0;
        for (size_t i = 0; i + 1 < N_VENT_MAIN; i++, s++) {
            seg *g = &m->vent[side][s];
            for (int a = 0; a < 3; a++) {
                g->a[a] = vent_main[i][a];
                g->b[a] = vent_main[i + 1][a];
            }
            g->ra = rs * vent_main[i][3];
            g->rb = rs * vent_main[i + 1][3];
        }
        for (size_t i = 0; i + 1 < N_VENT_TEMPORAL; i++, s++) {
            seg *g = &m->vent[side][s];
            for (int a = 0; a < 3; a++) {
                g->a[a] = vent_temporal[i][a];
                g->b[a] = vent_temporal[i + 1][a];
            }
            g->ra = rs * vent_temporal[i][3];
            g->rb = rs * vent_temporal[i + 1][3];
        }
        for (size_t i = 0; i < N_VENT_SEGS; i++) {
            m->vent[side][i].a[0] *= mirror;
            m->vent[side][i].b[0] *= mirror;
            m->vent[side][i].a[2] /= VENT_FLAT;
            m->vent[side][i].b[2] /= VENT_FLAT;
        }
        for (int n = 0; n < N_DG; n++)
            set_ellipsoid(m->dg[side][n], deep_grey_ref[n], mirror,
                          rsy_rng_uniform_range(r, 0.92, 1.08));
    }
    for (int c = 0; c < 3; c++)
        set_ellipsoid(m->cb[c], cerebellum_ref[c], 1.0, rsy_rng_uniform_range(r, 0.94, 1.06));
}

void rsy__head_world_to_ref(const rsy_subject *subject, const double xyz_mm[3], double p[3])
{
    const double ref[3] = {RSY__HEAD_ENV_A_MM, RSY__HEAD_ENV_B_MM, RSY__HEAD_ENV_C_MM};
    for (int a = 0; a < 3; a++) {
        double semi = subject->brain_semi_axes_mm[a];
        double scale = semi > 0.0 ? semi / ref[a] : 1.0;
        p[a] = (xyz_mm[a] - subject->brain_center_mm[a]) / scale;
    }
}

/* World extent of the voxel centres along each axis. */

rsy_status rsy__head_generate_ex(const rsy_phantom_spec *spec, rsy_rng *subject_rng,
                                    rsy_rng *shape_rng, rsy_volume **classes_out,
                                    rsy_subject *subject_out, rsy__deform **deform_out)
{
    rsy_status rc = RSY_OK;
    rsy_volume *vol = NULL;
    rsy__deform *def = NULL;
    head_model *m = NULL;
    rsy_geometry geom;
    rsy_subject subj;

    if (classes_out != NULL)
        *classes_out = NULL;
    if (deform_out != NULL)
        *deform_out = NULL;
    if (spec == NULL || subject_rng == NULL || shape_rng == NULL || classes_out == NULL ||
        subject_out == NULL) {
        rsy_log_error("phantom: NULL argument");
        return RSY_EINVAL;
    }
    rc = check_spec(spec);
    if (rc != RSY_OK)
        return rc;
    rc = rsy_geometry_init(&geom, spec->dims, spec->spacing_mm);
    if (rc != RSY_OK) {
        rsy_log_error("phantom: invalid geometry");
        return rc;
    }

    memset(&subj, 0, sizeof subj);
    double icv_ml = 0.0, vent_factor = 1.0;
    draw_subject(spec, subject_rng, &subj, &icv_ml, &vent_factor);
    double ref_icv_ml = reference_icv_mm3() / 1000.0;
    double axes = subj.axis_scale[0] * subj.axis_scale[1] * subj.axis_scale[2];
    subj.size_scale = cbrt(icv_ml / (ref_icv_ml * axes));

    m = calloc(1, sizeof *m);
    if (m == NULL) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    draw_shape(m, shape_rng, subj.age_years, vent_factor);
    double scale[3];
    for (int a = 0; a < 3; a++) {
        scale[a] = subj.size_scale * subj.axis_scale[a];
        m->inv_scale[a] = 1.0 / scale[a];
    }

    double lo[3], hi[3];
    rsy__geometry_world_bounds(&geom, lo, hi);
    double top_extent = (RSY__HEAD_ENV_C_MM + m->t_skull + m->t_scalp) * scale[2];
    m->centre_mm[0] = 0.5 * (lo[0] + hi[0]);
    m->centre_mm[1] = 0.5 * (lo[1] + hi[1]);
    m->centre_mm[2] = fmin(CENTRE_Z_MAX_MM, hi[2] - VERTEX_CLEARANCE_MM - top_extent);
    for (int a = 0; a < 3; a++)
        subj.brain_center_mm[a] = m->centre_mm[a];
    subj.brain_semi_axes_mm[0] = RSY__HEAD_ENV_A_MM * scale[0];
    subj.brain_semi_axes_mm[1] = RSY__HEAD_ENV_B_MM * scale[1];
    subj.brain_semi_axes_mm[2] = RSY__HEAD_ENV_C_MM * scale[2];

    /* Warn (the map is still made, clipped) if the intracranial space leaves the field of
     * view; its reference extent is the envelope plus the posterior fossa. */
    const double icv_lo[3] = {-RSY__HEAD_ENV_A_MM * (1.0 + ENV_EGG),
                              RSY__HEAD_PF_CY_MM - RSY__HEAD_PF_B_MM, RSY__HEAD_FORAMEN_Z_MM};
    const double icv_hi[3] = {RSY__HEAD_ENV_A_MM * (1.0 + ENV_EGG), RSY__HEAD_ENV_B_MM,
                              RSY__HEAD_ENV_C_MM};
    for (int a = 0; a < 3; a++) {
        double margin = 2.0 * spec->deformation_mm;
        if (m->centre_mm[a] + icv_lo[a] * scale[a] - margin < lo[a] ||
            m->centre_mm[a] + icv_hi[a] * scale[a] + margin > hi[a]) {
            rsy_log_warning("phantom: the intracranial space (%.0f mL) does not fit the field "
                            "of view along axis %d (%.0f mm); the head is clipped",
                            icv_ml, a, hi[a] - lo[a] + spec->spacing_mm[a]);
            break;
        }
    }

    rc = rsy__deform_create(&def, lo, hi, spec->deformation_mm, spec->deformation_scale_mm,
                            shape_rng);
    if (rc != RSY_OK)
        goto fail;
    subj.deformation_mm = def->rms_mm;

    rc = rsy_volume_create(&vol, &geom, RSY_DTYPE_UINT16);
    if (rc != RSY_OK)
        goto fail;
    uint16_t *lab = vol->data;
    size_t idx = 0;
    for (int64_t k = 0; k < geom.dims[2]; k++)
        for (int64_t j = 0; j < geom.dims[1]; j++)
            for (int64_t i = 0; i < geom.dims[0]; i++, idx++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, w[3], y[3], p[3];
                rsy_geometry_voxel_to_world(&geom, ijk, w);
                rsy__deform_apply(def, w, y);
                for (int a = 0; a < 3; a++)
                    p[a] = (y[a] - m->centre_mm[a]) * m->inv_scale[a];
                lab[idx] = classify(m, p);
            }

    rsy__head_measure(vol, &subj);
    free(m);
    *subject_out = subj;
    *classes_out = vol;
    if (deform_out != NULL)
        *deform_out = def;
    else
        rsy__deform_destroy(def);
    return RSY_OK;
fail:
    rsy_volume_destroy(vol);
    rsy__deform_destroy(def);
    free(m);
    return rc;
}

static rsy_status head_generate(const rsy_phantom_spec *spec, rsy_rng *subject_rng,
                                rsy_rng *shape_rng, rsy_volume **classes_out,
                                rsy_subject *subject_out)
{
    return rsy__head_generate_ex(spec, subject_rng, shape_rng, classes_out, subject_out, NULL);
}

/* Indexed by rsy_head_class; names match configs/tissues/. */
static const char *const head_class_names[RSY_HEAD_N_CLASSES] = {
    "background",   "scalp",      "skull",     "csf",        "grey_matter",
    "white_matter", "ventricles", "deep_grey", "cerebellum", "brainstem"};

const rsy__phantom_family rsy__phantom_family_head = {
    "head", RSY_HEAD_N_CLASSES, head_class_names, head_generate, rsy__head_measure,
    rsy__head_describe};
