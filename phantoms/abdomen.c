/*
 * abdomen.c: the procedural "abdomen" phantom family (upper abdomen, T10 to L3).
 *
 * Anatomy is a set of smooth implicit shapes in a reference frame (mm, RAS+: +x = subject's
 * right, +y anterior, +z superior; origin in the midline at the centre of the L1 vertebral body
 * level, which is the world origin, i.e. the centre of the field of view). Each voxel is mapped
 * to that frame by the subject's smooth random diffeomorphism (phantoms/deform.c) and a global
 * anisotropic scale, then classified (pull-back, so topology is kept). Solid organs have their
 * own scale about their centre, calibrated per subject by integrating the undeformed class map
 * so that each organ's volume matches a drawn target. Tubular structures (bowel, intrahepatic
 * vessels) are unions of tapered capsules, rasterised once per subject into signed-distance
 * grids and interpolated trilinearly.
 *
 * Priority (what wins where shapes overlap): skin, subcutaneous fat, spine, abdominal wall and
 * back muscles, blood vessels, kidneys, liver, spleen, pancreas, bowel, visceral fat.
 *
 * Organ volumes (domain.md 5.4, [S115] Geraghty et al., Abdom Imaging 2004, 149 CTs): liver
 * F 1411 / M 1710 mL, spleen F 179.8 / M 238.4 mL, kidney F 156.5 / M 193.1 mL, pancreas
 * F 64.4 / M 87.4 mL. The kidney figure is read as the volume of ONE kidney: [S115] reports it
 * as "kidneys" (one value, not a sum of two organs), and half of it (78-97 mL per kidney) would
 * be below the textbook 10-12 x 5-7 x 3 cm kidney (GK), whose ellipsoid is already 80-130 mL.
 * Spread: the liver's coefficient of variation is 219 / 1281 = 17% in [S116] (Jasper, JCDR
 * 2019); it is used for liver, kidneys and pancreas; the spleen's is 78 / 194.6 = 40% [S116].
 * Draws are normal, truncated at +-2 SD (+-1.5 SD for the spleen so it stays positive-sized).
 * Other dimensions are textbook adult anatomy, marked (GK).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abdomen_internal.h"
#include "core_internal.h"
#include "phantoms_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Subject-level constants                                                                    */
/* ---------------------------------------------------------------------------------------- */
/* Organ volume targets, mL [S115], spread [S116] (see the file comment). */
#define LIVER_F_ML 1411.0
#define LIVER_M_ML 1710.0
#define SPLEEN_F_ML 179.8
#define SPLEEN_M_ML 238.4
#define KIDNEY_F_ML 156.5
#define KIDNEY_M_ML 193.1
#define PANCREAS_F_ML 64.4
#define PANCREAS_M_ML 87.4
#define ORGAN_CV 0.17
#define SPLEEN_CV 0.40
#define ORGAN_TRUNCATION_SD 2.0
#define SPLEEN_TRUNCATION_SD 1.5
/* Left and right kidney differ by a few percent in an individual (GK): +-5%. */
#define KIDNEY_ASYMMETRY 0.05
/* Body size (GK): isotropic scale of the reference trunk, women about 6% smaller linearly;
 * SD 4%, truncated at +-2 SD; per-axis shape variation +-4%. */
#define BODY_SCALE_M 1.0
#define BODY_SCALE_F 0.94
#define BODY_SCALE_SD 0.04
#define AXIS_SCALE_SPREAD 0.04
/* Layer thicknesses (GK): skin 1.5-2.5 mm; subcutaneous fat at the umbilical level 10-25 mm in
 * men, 18-35 mm in women; abdominal wall muscles 8-14 mm. */
#define SKIN_MM_MIN 1.5
#define SKIN_MM_MAX 2.5
#define SUBCUT_M_MM_MIN 10.0
#define SUBCUT_M_MM_MAX 25.0
#define SUBCUT_F_MM_MIN 18.0
#define SUBCUT_F_MM_MAX 35.0
#define WALL_MUSCLE_MM_MIN 8.0
#define WALL_MUSCLE_MM_MAX 14.0

/* ---------------------------------------------------------------------------------------- */
/* Shape constants (reference frame, mm; adult anatomy, GK)                                   */
/* ---------------------------------------------------------------------------------------- */
/* Abdominal cavity (inner surface of the wall muscles): an ellipse in front of y = 0 and a
 * flatter (power-4) superellipse behind it, so the back is broad and flat. */
#define CAVITY_A_MM 125.0
#define CAVITY_B_ANT_MM 78.0
#define CAVITY_B_POST_MM 92.0
/* Spine: vertebral levels are 36 mm apart (27 mm body + 9 mm disc), L1 centred at z = 0.
 * Body: elliptic cylinder of semi-axes 24 x 17 mm centred 40 mm behind the origin; cortical
 * shell 2 mm; spinal canal radius 10 mm centred at y = -68; neural arch 6 mm thick; spinous
 * process to y = -102; transverse processes 16-45 mm from the midline. */
#define LEVEL_MM 36.0
#define VB_HALF_HEIGHT_MM 13.5
#define VB_A_MM 24.0
#define VB_B_MM 17.0
#define VB_CY_MM (-40.0)
#define CORTEX_SHELL_MM 2.0
#define CANAL_R_MM 10.0
#define CANAL_CY_MM (-68.0)
#define ARCH_MM 6.0
#define ARCH_HALF_HEIGHT_MM 11.0
#define SPINOUS_Y_MIN_MM (-102.0)
#define SPINOUS_HALF_WIDTH_MM 4.0
#define TRANSVERSE_X0_MM 16.0
#define TRANSVERSE_X1_MM 45.0
#define TRANSVERSE_HALF_MM 5.0
/* Erector spinae (paraspinal) and quadratus lumborum: elliptic columns; psoas: a column beside
 * the vertebral bodies, absent above T12 and growing caudally (GK). */
#define ERECTOR_CX_MM 30.0
#define ERECTOR_CY_MM (-86.0)
#define ERECTOR_A_MM 24.0
#define ERECTOR_B_MM 17.0
#define QL_CX_MM 60.0
#define QL_CY_MM (-70.0)
#define QL_A_MM 20.0
#define QL_B_MM 10.0
#define QL_TOP_MM 15.0
#define PSOAS_TOP_MM 30.0
#define PSOAS_GROWTH 0.18
#define PSOAS_R_MAX_MM 26.0
/* Liver: right lobe and left lobe ellipsoids blended by a smooth minimum (radius 18 mm), the
 * right lobe larger and reaching the dome; intrahepatic vessels keep this margin from the
 * capsule. */
static const double liver_right[6] = {62.0, -5.0, 32.0, 58.0, 80.0, 70.0};
static const double liver_left[6] = {-12.0, 32.0, 52.0, 58.0, 46.0, 30.0};
#define LIVER_BLEND_MM 18.0
#define VESSEL_CAPSULE_MARGIN_MM 4.0
/* Porta hepatis and the IVC confluence of the hepatic veins (liver frame). */
static const double porta[3] = {30.0, 10.0, 14.0};
static const double hv_confluence[3] = {20.0, -22.0, 74.0};
/* Spleen: a crescent, the lateral ellipsoid minus a medial one (concave visceral surface). */
static const double spleen_outer[6] = {-88.0, -38.0, 45.0, 28.0, 50.0, 55.0};
static const double spleen_cut[6] = {-46.0, -10.0, 40.0, 45.0, 55.0, 85.0};
/* Kidneys: centre, semi-axes (long, medio-lateral, antero-posterior); the left sits higher;
 * the upper poles lean medially and backwards; the hilum faces antero-medially (30 deg). */
static const double kidney_centre[2][3] = {{68.0, -52.0, -28.0}, {-66.0, -48.0, -12.0}};
#define KIDNEY_LONG_MM 55.0
#define KIDNEY_WIDTH_MM 28.0
#define KIDNEY_THICK_MM 22.0
#define KIDNEY_CORTEX_RADIUS 0.78 /* normalised radius inside which medulla may lie */
#define KIDNEY_N_PYRAMIDS 8
#define KIDNEY_PYRAMID_COS 0.94 /* half-angle of a pyramid cone, about 20 deg */
/* Pancreas: centre line from the head (in the duodenal C-loop) to the tail at the splenic
 * hilum, knots x, y, z, radius. */
static const double pancreas_knots[][4] = {{34.0, 18.0, -32.0, 17.0}, {12.0, 26.0, -12.0, 12.0},
                                           {-14.0, 20.0, 0.0, 11.0},  {-44.0, 6.0, 14.0, 10.0},
                                           {-68.0, -12.0, 28.0, 8.0}};
#define N_PANCREAS (sizeof pancreas_knots / sizeof pancreas_knots[0])
static const double pancreas_centre[3] = {-10.0, 14.0, -2.0};
/* Stomach and duodenum centre line (x, y, z, radius, gas level y: gas where y is above it;
 * the stomach's air-fluid level is anterior in a supine patient). */
#define NO_GAS 1.0e3
static const double gut_knots[][5] = {
    {-45.0, 2.0, 62.0, 36.0, 30.0},   {-36.0, 38.0, 28.0, 34.0, 38.0},
    {-10.0, 55.0, 2.0, 26.0, 55.0},   {20.0, 50.0, -6.0, 17.0, 60.0},
    {38.0, 35.0, -8.0, 10.0, NO_GAS}, {50.0, 20.0, -10.0, 14.0, 22.0},
    {56.0, 5.0, -26.0, 13.0, NO_GAS}, {53.0, 5.0, -56.0, 12.0, NO_GAS},
    {20.0, 0.0, -66.0, 11.0, NO_GAS}, {-16.0, 0.0, -62.0, 11.0, NO_GAS},
    {-32.0, 10.0, -46.0, 11.0, NO_GAS}};
#define N_GUT (sizeof gut_knots / sizeof gut_knots[0])
/* Colon frame: caecum/ascending (right), hepatic flexure, transverse, splenic flexure,
 * descending (left); x, y, z, radius. */
static const double colon_knots[][4] = {
    {96.0, 5.0, -120.0, 26.0}, {96.0, 10.0, -60.0, 24.0}, {86.0, 32.0, -42.0, 23.0},
    {40.0, 62.0, -40.0, 21.0}, {-20.0, 62.0, -34.0, 21.0}, {-78.0, 28.0, 12.0, 21.0},
    {-96.0, 0.0, -30.0, 19.0}, {-96.0, 0.0, -120.0, 18.0}};
#define N_COLON (sizeof colon_knots / sizeof colon_knots[0])
/* Small bowel: a persistent random walk of SB_STEPS steps inside the box below the transverse
 * mesocolon, radius 12 mm; a fraction of the loops hold a small gas pocket (GK). */
#define SB_STEPS 110
#define SB_STEP_MM 9.0
#define SB_RADIUS_MM 12.0
#define SB_TURN 0.55
#define SB_GAS_FRACTION 0.15
static const double sb_lo[3] = {-80.0, -2.0, -118.0}, sb_hi[3] = {78.0, 78.0, -32.0};
/* Bowel wall thickness, mm (GK: a distended bowel wall is under 3 mm). */
#define BOWEL_WALL_MM 3.0
/* Grids for the tube fields: bowel in the reference frame, vessels in the liver frame. */
#define BOWEL_GRID_MM 2.0
#define VESSEL_GRID_MM 1.5
#define FAR_MM 1.0e3f
/* Calibration of organ scales: integration step of the undeformed class map. */
#define CALIB_STEP_MM 3.0
static const double calib_lo[3] = {-135.0, -110.0, -130.0}, calib_hi[3] = {135.0, 100.0, 130.0};

/* A tapered capsule (radius ra at a, rb at b) with a gas level: content above y = gas_y is gas. */
typedef struct tube {
    double a[3], b[3], ra, rb, gas_y;
} tube;

/* Signed distance to a union of tubes, sampled on a grid (and the gas height of the nearest). */
typedef struct tube_grid {
    int64_t n[3];
    double lo[3], h;
    float *sd;
    float *gas;
} tube_grid;

#define MAX_VESSELS 160
#define MAX_BIG 20
#define MAX_BOWEL (N_GUT + N_COLON + SB_STEPS + 4)

typedef struct abd_model {
    double inv_scale[3]; /* world -> reference */
    double t_skin, t_subcut, t_muscle;
    /* Organ scale about the organ's centre (reference frame). */
    double s_liver, s_spleen, s_kidney[2], s_pancreas;
    double liver_c[3], spleen_c[3], kid_c[2][3];
    double kid_axes[2][3][3]; /* long, medial (hilum), third */
    double pyramid[2][KIDNEY_N_PYRAMIDS][3];
    tube pancreas[N_PANCREAS - 1];
    tube big[MAX_BIG];
    double big_lo[MAX_BIG][3], big_hi[MAX_BIG][3]; /* bounding boxes, for a cheap rejection */
    int n_big;
    double panc_lo[3], panc_hi[3]; /* bounding box of the pancreas (its own frame) */
    tube_grid vessels, bowel;
    int use_grids; /* 0 while calibrating organ scales (tubes do not change organ volumes) */
} abd_model;

/* ---------------------------------------------------------------------------------------- */
/* Geometry helpers                                                                            */
/* ---------------------------------------------------------------------------------------- */
/* First-order signed distance to an axis-aligned ellipsoid e = centre, semi-axes. */
static double ellipsoid_sd(const double p[3], const double e[6])
{
    double q2 = 0.0, g2 = 0.0;
    for (int i = 0; i < 3; i++) {
        double q = (p[i] - e[i]) / e[3 + i];
        q2 += q * q;
        g2 += q * q / (e[3 + i] * e[3 + i]);
    }
    double r = sqrt(q2);
    if (g2 < 1e-20)
        return -fmin(e[3], fmin(e[4], e[5]));
    /* grad r = q / (r a); |grad r| = sqrt(g2) / r */
    return (r - 1.0) * r / sqrt(g2);
}

/* Polynomial smooth minimum of radius k (Quilez). */
static double smooth_min(double a, double b, double k)
{
    double h = fmax(k - fabs(a - b), 0.0) / k;
    return fmin(a, b) - h * h * k * 0.25;
}

/* Distance from p to the capsule axis and the interpolated radius there. */
static double tube_sd(const tube *t, const double p[3], double *s_out)
{
    double ab[3], ap[3], l2 = 0.0, d = 0.0;
    for (int i = 0; i < 3; i++) {
        ab[i] = t->b[i] - t->a[i];
        ap[i] = p[i] - t->a[i];
        l2 += ab[i] * ab[i];
        d += ab[i] * ap[i];
    }
    double s = l2 > 0.0 ? d / l2 : 0.0;
    s = s < 0.0 ? 0.0 : (s > 1.0 ? 1.0 : s);
    double r2 = 0.0;
    for (int i = 0; i < 3; i++) {
        double e = ap[i] - s * ab[i];
        r2 += e * e;
    }
    if (s_out)
        *s_out = s;
    return sqrt(r2) - (t->ra + s * (t->rb - t->ra));
}

static void set_tube(tube *t, const double a[3], const double b[3], double ra, double rb,
                     double gas_y)
{
    memcpy(t->a, a, sizeof t->a);
    memcpy(t->b, b, sizeof t->b);
    t->ra = ra;
    t->rb = rb;
    t->gas_y = gas_y;
}

static rsy_status grid_init(tube_grid *g, const double lo[3], const double hi[3], double h)
{
    size_t nn = 1;
    g->h = h;
    for (int a = 0; a < 3; a++) {
        g->lo[a] = lo[a];
        g->n[a] = (int64_t)ceil((hi[a] - lo[a]) / h) + 1;
        nn *= (size_t)g->n[a];
    }
    g->sd = malloc(nn * sizeof *g->sd);
    g->gas = malloc(nn * sizeof *g->gas);
    if (g->sd == NULL || g->gas == NULL)
        return RSY_ENOMEM;
    for (size_t q = 0; q < nn; q++) {
        g->sd[q] = FAR_MM;
        g->gas[q] = -FAR_MM;
    }
    return RSY_OK;
}

static void grid_clear(tube_grid *g)
{
    free(g->sd);
    free(g->gas);
    g->sd = g->gas = NULL;
}

/* Union of the grid's field with one tube (the nearest tube also sets the gas height). */
static void grid_add_tube(tube_grid *g, const tube *t)
{
    double rmax = fmax(t->ra, t->rb) + 2.0 * g->h;
    int64_t i0[3], i1[3];
    for (int a = 0; a < 3; a++) {
        double lo = fmin(t->a[a], t->b[a]) - rmax, hi = fmax(t->a[a], t->b[a]) + rmax;
        i0[a] = (int64_t)floor((lo - g->lo[a]) / g->h);
        i1[a] = (int64_t)ceil((hi - g->lo[a]) / g->h);
        if (i0[a] < 0)
            i0[a] = 0;
        if (i1[a] > g->n[a] - 1)
            i1[a] = g->n[a] - 1;
    }
    for (int64_t k = i0[2]; k <= i1[2]; k++)
        for (int64_t j = i0[1]; j <= i1[1]; j++)
            for (int64_t i = i0[0]; i <= i1[0]; i++) {
                double p[3] = {g->lo[0] + (double)i * g->h, g->lo[1] + (double)j * g->h,
                               g->lo[2] + (double)k * g->h};
                double sd = tube_sd(t, p, NULL);
                size_t q = (size_t)((k * g->n[1] + j) * g->n[0] + i);
                if (sd < g->sd[q]) {
                    g->sd[q] = (float)sd;
                    double gh = p[1] - t->gas_y;
                    g->gas[q] = (float)fmax(-100.0, fmin(100.0, gh));
                }
            }
}

/* Trilinear sample of the grid at p; FAR_MM outside. */
static double grid_sample(const tube_grid *g, const double p[3], double *gas)
{
    int64_t i0[3];
    double w[3];
    for (int a = 0; a < 3; a++) {
        double t = (p[a] - g->lo[a]) / g->h;
        if (!(t >= 0.0) || t >= (double)(g->n[a] - 1))
            return FAR_MM;
        i0[a] = (int64_t)t;
        w[a] = t - (double)i0[a];
    }
    double sd = 0.0, gh = 0.0;
    for (int c = 0; c < 8; c++) {
        int di = c & 1, dj = (c >> 1) & 1, dk = (c >> 2) & 1;
        double wc = (di ? w[0] : 1.0 - w[0]) * (dj ? w[1] : 1.0 - w[1]) * (dk ? w[2] : 1.0 - w[2]);
        size_t q = (size_t)(((i0[2] + dk) * g->n[1] + i0[1] + dj) * g->n[0] + i0[0] + di);
        sd += wc * g->sd[q];
        gh += wc * g->gas[q];
    }
    if (gas)
        *gas = gh;
    return sd;
}

static void organ_frame(const double p[3], const double c[3], double s, double q[3])
{
    for (int a = 0; a < 3; a++)
        q[a] = c[a] + (p[a] - c[a]) / s;
}

/* ---------------------------------------------------------------------------------------- */
/* Organ shapes (reference frame, or the organ's own unscaled frame)                          */
/* ---------------------------------------------------------------------------------------- */
/* Signed distance to the abdominal cavity (inner surface of the wall muscles), 2D in x, y. */
static double cavity_sd(const double p[3])
{
    double x = p[0] / CAVITY_A_MM;
    if (p[1] >= 0.0) {
        double y = p[1] / CAVITY_B_ANT_MM;
        double r = sqrt(x * x + y * y);
        double gx = x / CAVITY_A_MM, gy = y / CAVITY_B_ANT_MM;
        double g = sqrt(gx * gx + gy * gy);
        return g > 1e-12 ? (r * r - 1.0) / (2.0 * g) : -CAVITY_B_ANT_MM;
    }
    double y = p[1] / CAVITY_B_POST_MM;
    double x2 = x * x, y2 = y * y;
    double f = x2 * x2 + y2 * y2; /* r^4 */
    double gx = 4.0 * x2 * x / CAVITY_A_MM, gy = 4.0 * y2 * y / CAVITY_B_POST_MM;
    double g = sqrt(gx * gx + gy * gy);
    return g > 1e-12 ? (f - 1.0) / g : -CAVITY_B_POST_MM;
}

static double liver_sd(const double q[3])
{
    return smooth_min(ellipsoid_sd(q, liver_right), ellipsoid_sd(q, liver_left), LIVER_BLEND_MM);
}

static double spleen_sd(const double q[3])
{
    return fmax(ellipsoid_sd(q, spleen_outer), -ellipsoid_sd(q, spleen_cut));
}

/* Kidney class at reference point p (0 if outside): cortex, medulla (pyramids), or fat in the
 * renal sinus, which opens medially at the hilum. */
static int kidney_class(const abd_model *m, int side, const double p[3])
{
    double q[3], d[3], u[3];
    organ_frame(p, m->kid_c[side], m->s_kidney[side], q);
    for (int a = 0; a < 3; a++)
        d[a] = q[a] - m->kid_c[side][a];
    for (int b = 0; b < 3; b++)
        u[b] = d[0] * m->kid_axes[side][b][0] + d[1] * m->kid_axes[side][b][1] +
               d[2] * m->kid_axes[side][b][2];
    double n[3] = {u[0] / KIDNEY_LONG_MM, u[1] / KIDNEY_WIDTH_MM, u[2] / KIDNEY_THICK_MM};
    double r2 = n[0] * n[0] + n[1] * n[1] + n[2] * n[2];
    if (r2 >= 1.0)
        return 0;
    /* Renal sinus: an ellipsoid centred 45% of the half-width medially, continued by the
     * hilum, a slot to the medial surface. */
    double sv = n[1] - 0.45;
    double s2 = (n[0] / 0.55) * (n[0] / 0.55) + (sv / 0.42) * (sv / 0.42) +
                (n[2] / 0.5) * (n[2] / 0.5);
    double h2 = (n[0] / 0.35) * (n[0] / 0.35) + (n[2] / 0.35) * (n[2] / 0.35);
    if (s2 < 1.0 || (sv > 0.0 && h2 < 1.0))
        return n[1] > 0.75 ? 0 : RSY__ABD_FAT;
    if (r2 > KIDNEY_CORTEX_RADIUS * KIDNEY_CORTEX_RADIUS)
        return RSY__ABD_KIDNEY_CORTEX;
    /* Pyramids: cones from the sinus towards the surface, separated by cortical columns. */
    double v[3] = {n[0], sv, n[2]};
    double vl = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (vl < 1e-9)
        return RSY__ABD_KIDNEY_CORTEX;
    for (int k = 0; k < KIDNEY_N_PYRAMIDS; k++) {
        const double *a = m->pyramid[side][k];
        if ((v[0] * a[0] + v[1] * a[1] + v[2] * a[2]) / vl > KIDNEY_PYRAMID_COS)
            return RSY__ABD_KIDNEY_MEDULLA;
    }
    return RSY__ABD_KIDNEY_CORTEX;
}

/* Bone, canal or disc of the lumbar/lower thoracic spine at p; 0 if none. */
static int spine_class(const double p[3])
{
    double x = p[0], y = p[1], ax = fabs(x);
    if (ax > TRANSVERSE_X1_MM + 2.0 || y > VB_CY_MM + VB_B_MM + 1.0 || y < SPINOUS_Y_MIN_MM - 1.0)
        return 0;
    double level = floor(p[2] / LEVEL_MM + 0.5);
    double dz = p[2] - level * LEVEL_MM;
    /* Vertebral body and disc. */
    double ex = x / VB_A_MM, ey = (y - VB_CY_MM) / VB_B_MM;
    double er = sqrt(ex * ex + ey * ey);
    if (er < 1.0) {
        if (fabs(dz) > VB_HALF_HEIGHT_MM)
            return RSY__ABD_MUSCLE; /* intervertebral disc: fibrocartilage, soft tissue */
        double radial = (1.0 - er) * VB_B_MM;
        double axial = VB_HALF_HEIGHT_MM - fabs(dz);
        return fmin(radial, axial) < CORTEX_SHELL_MM ? RSY__ABD_CORTICAL_BONE
                                                      : RSY__ABD_CANCELLOUS_BONE;
    }
    double cy = y - CANAL_CY_MM;
    double rc = sqrt(x * x + cy * cy);
    if (rc < CANAL_R_MM)
        return RSY__ABD_SPINAL_CANAL;
    /* Neural arch (pedicles and laminae) around the canal, behind the body. */
    if (fabs(dz) < ARCH_HALF_HEIGHT_MM) {
        if (rc < CANAL_R_MM + ARCH_MM && y < VB_CY_MM - VB_B_MM * 0.5) {
            double mid = fabs(rc - CANAL_R_MM - 0.5 * ARCH_MM);
            return mid < 0.5 * ARCH_MM - CORTEX_SHELL_MM ? RSY__ABD_CANCELLOUS_BONE
                                                        : RSY__ABD_CORTICAL_BONE;
        }
        /* Transverse processes (lumbar). */
        if (ax > TRANSVERSE_X0_MM && ax < TRANSVERSE_X1_MM &&
            fabs(y - (CANAL_CY_MM + 6.0)) < TRANSVERSE_HALF_MM && fabs(dz) < TRANSVERSE_HALF_MM)
            return RSY__ABD_CORTICAL_BONE;
    }
    /* Spinous process, sloping caudally. */
    double dzs = dz + 0.25 * (y - CANAL_CY_MM);
    if (ax < SPINOUS_HALF_WIDTH_MM && y < CANAL_CY_MM - CANAL_R_MM && y > SPINOUS_Y_MIN_MM &&
        fabs(dzs) < 9.0)
        return RSY__ABD_CORTICAL_BONE;
    return 0;
}

static int in_ellipse(double x, double y, double cx, double cy, double a, double b)
{
    double u = (x - cx) / a, v = (y - cy) / b;
    return u * u + v * v < 1.0;
}

/* Psoas, quadratus lumborum, erector spinae. */
static int back_muscle(const double p[3])
{
    double ax = fabs(p[0]), y = p[1], z = p[2];
    if (in_ellipse(ax, y, ERECTOR_CX_MM, ERECTOR_CY_MM, ERECTOR_A_MM, ERECTOR_B_MM))
        return 1;
    if (z < QL_TOP_MM && in_ellipse(ax, y, QL_CX_MM, QL_CY_MM, QL_A_MM, QL_B_MM))
        return 1;
    if (z < PSOAS_TOP_MM) {
        double r = fmin(PSOAS_R_MAX_MM, 3.0 + PSOAS_GROWTH * (PSOAS_TOP_MM - z));
        if (in_ellipse(ax, y, VB_A_MM + 0.8 * r, VB_CY_MM + 2.0, r, 0.85 * r))
            return 1;
    }
    return 0;
}

/* Approximate distance (mm) from a point outside them to the kidneys, the pancreas and the
 * large vessels, for closing the bowel lumen against them; structures farther than @p cutoff
 * are skipped by a bounding-box test. */
static int beyond(const double p[3], const double lo[3], const double hi[3], double cutoff)
{
    for (int a = 0; a < 3; a++)
        if (p[a] < lo[a] - cutoff || p[a] > hi[a] + cutoff)
            return 1;
    return 0;
}

static double solid_clearance(const abd_model *m, const double p[3], double cutoff)
{
    double best = FAR_MM;
    for (int s = 0; s < 2; s++) {
        double reach = KIDNEY_LONG_MM * m->s_kidney[s] + cutoff;
        double dx = p[0] - m->kid_c[s][0], dy = p[1] - m->kid_c[s][1],
               dz = p[2] - m->kid_c[s][2];
        if (dx * dx + dy * dy + dz * dz > reach * reach)
            continue;
        double q[3], d[3], r2 = 0.0;
        static const double semi[3] = {KIDNEY_LONG_MM, KIDNEY_WIDTH_MM, KIDNEY_THICK_MM};
        organ_frame(p, m->kid_c[s], m->s_kidney[s], q);
        for (int a = 0; a < 3; a++)
            d[a] = q[a] - m->kid_c[s][a];
        for (int b = 0; b < 3; b++) {
            double u = (d[0] * m->kid_axes[s][b][0] + d[1] * m->kid_axes[s][b][1] +
                        d[2] * m->kid_axes[s][b][2]) /
                       semi[b];
            r2 += u * u;
        }
        best = fmin(best, (sqrt(r2) - 1.0) * KIDNEY_THICK_MM * m->s_kidney[s]);
    }
    double q[3];
    organ_frame(p, pancreas_centre, m->s_pancreas, q);
    if (!beyond(q, m->panc_lo, m->panc_hi, cutoff / m->s_pancreas))
        for (size_t i = 0; i + 1 < N_PANCREAS; i++)
            best = fmin(best, tube_sd(&m->pancreas[i], q, NULL) * m->s_pancreas);
    for (int i = 0; i < m->n_big; i++)
        if (!beyond(p, m->big_lo[i], m->big_hi[i], cutoff))
            best = fmin(best, tube_sd(&m->big[i], p, NULL));
    return best;
}

/* ---------------------------------------------------------------------------------------- */
/* The classifier                                                                              */
/* ---------------------------------------------------------------------------------------- */
static int classify(const abd_model *m, const double p[3])
{
    double dc = cavity_sd(p);
    double d_fat = m->t_muscle, d_skin = d_fat + m->t_subcut, d_out = d_skin + m->t_skin;
    if (dc > d_out)
        return RSY__ABD_BACKGROUND;
    if (dc > d_skin)
        return RSY__ABD_SKIN;
    int c = spine_class(p);
    if (c)
        return c;
    if (dc > d_fat)
        return RSY__ABD_FAT;
    if (dc > 0.0 || back_muscle(p))
        return RSY__ABD_MUSCLE;

    for (int i = 0; i < m->n_big; i++) {
        const double *lo = m->big_lo[i], *hi = m->big_hi[i];
        if (p[0] < lo[0] || p[0] > hi[0] || p[1] < lo[1] || p[1] > hi[1] || p[2] < lo[2] ||
            p[2] > hi[2])
            continue;
        if (tube_sd(&m->big[i], p, NULL) < 0.0)
            return RSY__ABD_BLOOD;
    }
    for (int s = 0; s < 2; s++) {
        double dx = p[0] - m->kid_c[s][0], dy = p[1] - m->kid_c[s][1],
               dz = p[2] - m->kid_c[s][2];
        double reach = KIDNEY_LONG_MM * m->s_kidney[s] + 2.0;
        if (dx * dx + dy * dy + dz * dz < reach * reach) {
            c = kidney_class(m, s, p);
            if (c)
                return c;
        }
    }
    double q[3];
    organ_frame(p, m->liver_c, m->s_liver, q);
    double dl = liver_sd(q);
    if (dl < 0.0) {
        if (m->use_grids && dl < -VESSEL_CAPSULE_MARGIN_MM &&
            grid_sample(&m->vessels, q, NULL) < 0.0)
            return RSY__ABD_HEPATIC_VESSEL;
        return RSY__ABD_LIVER;
    }
    organ_frame(p, m->spleen_c, m->s_spleen, q);
    double ds = spleen_sd(q);
    if (ds < 0.0)
        return RSY__ABD_SPLEEN;
    organ_frame(p, pancreas_centre, m->s_pancreas, q);
    if (q[0] > m->panc_lo[0] && q[0] < m->panc_hi[0] && q[1] > m->panc_lo[1] &&
        q[1] < m->panc_hi[1] && q[2] > m->panc_lo[2] && q[2] < m->panc_hi[2])
        for (size_t i = 0; i + 1 < N_PANCREAS; i++)
            if (tube_sd(&m->pancreas[i], q, NULL) < 0.0)
                return RSY__ABD_PANCREAS;
    if (m->use_grids) {
        double gas;
        double sd = grid_sample(&m->bowel, p, &gas);
        if (sd < 0.0) {
            /* Where a solid organ or the wall truncates a loop, the wall closes the lumen:
             * the lumen is kept at least a wall thickness from them. */
            double clear = fmin(-dc, fmin(dl * m->s_liver, ds * m->s_spleen));
            clear = fmin(clear, solid_clearance(m, p, -sd));
            sd = fmax(sd, -clear);
            if (sd > -BOWEL_WALL_MM)
                return RSY__ABD_BOWEL_WALL;
            return gas > 0.0 ? RSY__ABD_BOWEL_GAS : RSY__ABD_BOWEL_CONTENT;
        }
    }
    return RSY__ABD_FAT;
}

/* ---------------------------------------------------------------------------------------- */
/* Subject and model                                                                           */
/* ---------------------------------------------------------------------------------------- */
static double truncated_normal(rsy_rng *r, double mean, double sd, double k)
{
    for (int i = 0; i < 1000; i++) {
        double v = mean + rsy_rng_gaussian(r, sd);
        if (v >= mean - k * sd && v <= mean + k * sd)
            return v;
    }
    return mean;
}

/* Target organ volumes, mL, in the order liver, spleen, kidney right, kidney left, pancreas. */
enum { ORG_LIVER, ORG_SPLEEN, ORG_KIDNEY_R, ORG_KIDNEY_L, ORG_PANCREAS, N_ORG };

static void draw_subject(const rsy_phantom_spec *spec, rsy_rng *r, rsy_subject *s,
                         double target_ml[N_ORG])
{
    double u_sex = rsy_rng_uniform(r);
    if (spec->sex == RSY_SEX_RANDOM)
        s->sex = u_sex < spec->female_fraction ? RSY_SEX_FEMALE : RSY_SEX_MALE;
    else
        s->sex = spec->sex;
    int male = s->sex == RSY_SEX_MALE;
    s->age_years = rsy_rng_uniform_range(r, spec->age_min_years, spec->age_max_years);
    if (!(s->age_years >= spec->age_min_years))
        s->age_years = spec->age_min_years;
    double body = male ? BODY_SCALE_M : BODY_SCALE_F;
    s->size_scale = truncated_normal(r, body, BODY_SCALE_SD * body, 2.0);
    for (int a = 0; a < 3; a++)
        s->axis_scale[a] =
            rsy_rng_uniform_range(r, 1.0 - AXIS_SCALE_SPREAD, 1.0 + AXIS_SCALE_SPREAD);
    double liver = male ? LIVER_M_ML : LIVER_F_ML, spleen = male ? SPLEEN_M_ML : SPLEEN_F_ML;
    double kidney = male ? KIDNEY_M_ML : KIDNEY_F_ML;
    double pancreas = male ? PANCREAS_M_ML : PANCREAS_F_ML;
    target_ml[ORG_LIVER] = truncated_normal(r, liver, ORGAN_CV * liver, ORGAN_TRUNCATION_SD);
    target_ml[ORG_SPLEEN] = truncated_normal(r, spleen, SPLEEN_CV * spleen, SPLEEN_TRUNCATION_SD);
    double k = truncated_normal(r, kidney, ORGAN_CV * kidney, ORGAN_TRUNCATION_SD);
    double asym = rsy_rng_uniform_range(r, -KIDNEY_ASYMMETRY, KIDNEY_ASYMMETRY);
    target_ml[ORG_KIDNEY_R] = k * (1.0 - asym);
    target_ml[ORG_KIDNEY_L] = k * (1.0 + asym);
    target_ml[ORG_PANCREAS] =
        truncated_normal(r, pancreas, ORGAN_CV * pancreas, ORGAN_TRUNCATION_SD);
}

static void normalize(double v[3])
{
    double l = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (l > 0.0)
        for (int a = 0; a < 3; a++)
            v[a] /= l;
}

static void cross(const double a[3], const double b[3], double c[3])
{
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
}

/* World position (reference frame) of a kidney's hilum, for the renal vessels. */
static void kidney_hilum(const abd_model *m, int side, double h[3])
{
    double off = 0.85 * KIDNEY_WIDTH_MM * m->s_kidney[side];
    for (int a = 0; a < 3; a++)
        h[a] = m->kid_c[side][a] + off * m->kid_axes[side][1][a];
}

/* Axis-aligned bounding box of a tube. */
static void tube_box(const tube *t, double lo[3], double hi[3])
{
    double r = fmax(t->ra, t->rb);
    for (int a = 0; a < 3; a++) {
        lo[a] = fmin(t->a[a], t->b[a]) - r;
        hi[a] = fmax(t->a[a], t->b[a]) + r;
    }
}

/* Aorta, IVC and their named branches and tributaries (reference frame), after the organ
 * scales are known (the renal vessels end at the hilum). Radii (GK): aorta 11 mm, IVC 12 mm,
 * portal vein 7 mm, renal vein 5 mm, renal artery 3 mm, splenic vein 4.5 mm, SMV 5 mm, SMA
 * 3.5 mm. The aorta lies left-anterior of the spine, the IVC on the right, entering the liver's
 * bare area; the left renal vein crosses in front of the aorta. */
static void build_big_vessels(abd_model *m, const double jitter[4])
{
    static const double aorta_top[3] = {-14.0, -12.0, 140.0}, aorta_bif[3] = {-12.0, -8.0, -108.0};
    static const double iliac_l[3] = {-45.0, -2.0, -150.0}, iliac_r[3] = {20.0, -2.0, -150.0};
    static const double ivc_low[3] = {22.0, -16.0, -150.0}, ivc_mid[3] = {22.0, -16.0, 20.0};
    static const double ivc_hep[3] = {18.0, -22.0, 74.0}, ivc_top[3] = {14.0, -18.0, 140.0};
    static const double confluence[3] = {10.0, 14.0, -14.0}, porta_out[3] = {28.0, 8.0, 12.0};
    static const double smv_low[3] = {14.0, 28.0, -110.0}, splenic_hilum[3] = {-64.0, -18.0, 36.0};
    static const double splenic_mid[3] = {-30.0, 6.0, 4.0}, sma_top[3] = {-13.0, 0.0, -4.0};
    static const double sma_low[3] = {-4.0, 30.0, -100.0}, lrv_cross[3] = {-13.0, 4.0, -18.0};
    double ao_top[3], ao_bif[3];
    for (int a = 0; a < 3; a++) {
        ao_top[a] = aorta_top[a];
        ao_bif[a] = aorta_bif[a];
    }
    ao_top[0] += jitter[0];
    ao_bif[0] += jitter[1];
    int n = 0;
    set_tube(&m->big[n++], ao_top, ao_bif, 11.0 + jitter[2], 9.5 + jitter[2], NO_GAS);
    set_tube(&m->big[n++], ao_bif, iliac_l, 7.0, 6.5, NO_GAS);
    set_tube(&m->big[n++], ao_bif, iliac_r, 7.0, 6.5, NO_GAS);
    set_tube(&m->big[n++], ivc_low, ivc_mid, 11.0 + jitter[3], 12.0 + jitter[3], NO_GAS);
    set_tube(&m->big[n++], ivc_mid, ivc_hep, 12.0 + jitter[3], 13.0 + jitter[3], NO_GAS);
    set_tube(&m->big[n++], ivc_hep, ivc_top, 13.0 + jitter[3], 13.0 + jitter[3], NO_GAS);
    set_tube(&m->big[n++], confluence, porta_out, 7.0, 7.0, NO_GAS);
    set_tube(&m->big[n++], smv_low, confluence, 4.0, 5.5, NO_GAS);
    set_tube(&m->big[n++], splenic_hilum, splenic_mid, 4.0, 4.5, NO_GAS);
    set_tube(&m->big[n++], splenic_mid, confluence, 4.5, 5.0, NO_GAS);
    set_tube(&m->big[n++], sma_top, sma_low, 3.5, 2.5, NO_GAS);
    double hr[3], hl[3], ivc_r[3] = {22.0, -16.0, 0.0}, ao_r[3], ao_l[3];
    kidney_hilum(m, 0, hr);
    kidney_hilum(m, 1, hl);
    ivc_r[2] = hr[2] + 6.0;
    set_tube(&m->big[n++], hr, ivc_r, 5.0, 5.5, NO_GAS);
    double ivc_l[3] = {22.0, -16.0, lrv_cross[2]};
    set_tube(&m->big[n++], hl, lrv_cross, 5.0, 5.0, NO_GAS);
    set_tube(&m->big[n++], lrv_cross, ivc_l, 5.0, 5.5, NO_GAS);
    /* Renal arteries, behind the veins, from the aorta's side at the hilum level. */
    for (int a = 0; a < 3; a++) {
        ao_r[a] = ao_top[a] + (ao_bif[a] - ao_top[a]) * (ao_top[2] - hr[2]) /
                                  (ao_top[2] - ao_bif[2]);
        ao_l[a] = ao_top[a] + (ao_bif[a] - ao_top[a]) * (ao_top[2] - hl[2]) /
                                  (ao_top[2] - ao_bif[2]);
    }
    hr[1] -= 6.0;
    hl[1] -= 6.0;
    set_tube(&m->big[n++], ao_r, hr, 3.0, 3.0, NO_GAS);
    set_tube(&m->big[n++], ao_l, hl, 3.0, 3.0, NO_GAS);
    m->n_big = n;
    for (int i = 0; i < n; i++)
        tube_box(&m->big[i], m->big_lo[i], m->big_hi[i]);
}

/* A tapering branching tube (liver frame): a segment from @p a along @p dir, then two children
 * turned by about 35 deg in random planes, down to @p depth generations. */
static void grow_tree(tube *out, int *n, int cap, const double a[3], const double dir[3],
                      double len, double r, int depth, rsy_rng *rng)
{
    if (*n >= cap)
        return;
    double b[3];
    for (int i = 0; i < 3; i++)
        b[i] = a[i] + len * dir[i];
    double rb = 0.8 * r;
    set_tube(&out[(*n)++], a, b, r, rb, NO_GAS);
    if (depth <= 0)
        return;
    for (int c = 0; c < 2; c++) {
        double d[3], w[3] = {rsy_rng_gaussian(rng, 1.0), rsy_rng_gaussian(rng, 1.0),
                             rsy_rng_gaussian(rng, 1.0)};
        double dw = w[0] * dir[0] + w[1] * dir[1] + w[2] * dir[2];
        for (int i = 0; i < 3; i++)
            w[i] -= dw * dir[i];
        normalize(w);
        double ang = rsy_rng_uniform_range(rng, 0.45, 0.75);
        double sg = c == 0 ? 1.0 : -1.0;
        for (int i = 0; i < 3; i++)
            d[i] = cos(ang) * dir[i] + sg * sin(ang) * w[i];
        normalize(d);
        grow_tree(out, n, cap, b, d, 0.75 * len, 0.72 * rb / 0.8, depth - 1, rng);
    }
}

/* Intrahepatic vessels (liver frame): portal vein branches from the porta hepatis to the right
 * and left lobes; right, middle and left hepatic veins from the IVC confluence fanning out
 * antero-inferiorly. Radii taper from 6-7 mm to about 1.5 mm over four generations (GK). */
static rsy_status build_vessels(abd_model *m, rsy_rng *rng)
{
    static const double pv_dirs[2][3] = {{0.85, -0.2, 0.35}, {-0.8, 0.45, 0.4}};
    static const double pv_len[2] = {42.0, 40.0}, pv_r[2] = {6.0, 5.0};
    static const double hv_dirs[3][3] = {{0.8, 0.15, -0.55}, {0.25, 0.75, -0.55},
                                         {-0.7, 0.55, -0.35}};
    static const double hv_len[3] = {48.0, 44.0, 40.0}, hv_r[3] = {6.0, 5.5, 5.0};
    const double lo[3] = {-80.0, -95.0, -50.0}, hi[3] = {130.0, 90.0, 115.0};
    tube *t = malloc(MAX_VESSELS * sizeof *t);
    if (t == NULL)
        return RSY_ENOMEM;
    int n = 0;
    for (int b = 0; b < 2; b++) {
        double d[3] = {pv_dirs[b][0], pv_dirs[b][1], pv_dirs[b][2]};
        for (int i = 0; i < 3; i++)
            d[i] += rsy_rng_gaussian(rng, 0.1);
        normalize(d);
        grow_tree(t, &n, MAX_VESSELS, porta, d, pv_len[b], pv_r[b], 4, rng);
    }
    for (int b = 0; b < 3; b++) {
        double d[3] = {hv_dirs[b][0], hv_dirs[b][1], hv_dirs[b][2]};
        for (int i = 0; i < 3; i++)
            d[i] += rsy_rng_gaussian(rng, 0.1);
        normalize(d);
        grow_tree(t, &n, MAX_VESSELS, hv_confluence, d, hv_len[b], hv_r[b], 3, rng);
    }
    rsy_status rc = grid_init(&m->vessels, lo, hi, VESSEL_GRID_MM);
    if (rc == RSY_OK)
        for (int i = 0; i < n; i++)
            grid_add_tube(&m->vessels, &t[i]);
    free(t);
    return rc;
}

/* Stomach, duodenum, colon and a random small-bowel path (reference frame). */
static rsy_status build_bowel(abd_model *m, rsy_rng *rng)
{
    const double lo[3] = {-130.0, -40.0, -150.0}, hi[3] = {130.0, 110.0, 110.0};
    tube *t = malloc(MAX_BOWEL * sizeof *t);
    if (t == NULL)
        return RSY_ENOMEM;
    int n = 0;
    for (size_t i = 0; i + 1 < N_GUT; i++)
        set_tube(&t[n++], gut_knots[i], gut_knots[i + 1], gut_knots[i][3], gut_knots[i + 1][3],
                 gut_knots[i][4]);
    for (size_t i = 0; i + 1 < N_COLON; i++) {
        /* Colonic gas: each segment's gas level anywhere from a thin anterior crescent to a
         * nearly gas-filled lumen (GK). */
        double cy = 0.5 * (colon_knots[i][1] + colon_knots[i + 1][1]);
        double level = cy + colon_knots[i][3] * rsy_rng_uniform_range(rng, -0.6, 0.7);
        set_tube(&t[n++], colon_knots[i], colon_knots[i + 1], colon_knots[i][3],
                 colon_knots[i + 1][3], level);
    }
    double p[3] = {gut_knots[N_GUT - 1][0], gut_knots[N_GUT - 1][1], gut_knots[N_GUT - 1][2]};
    double d[3] = {0.0, 0.3, -1.0};
    normalize(d);
    for (int s = 0; s < SB_STEPS; s++) {
        double q[3];
        for (int a = 0; a < 3; a++)
            d[a] += rsy_rng_gaussian(rng, SB_TURN);
        normalize(d);
        for (int a = 0; a < 3; a++) {
            q[a] = p[a] + SB_STEP_MM * d[a];
            if (q[a] < sb_lo[a] || q[a] > sb_hi[a]) {
                d[a] = -d[a];
                q[a] = p[a] + SB_STEP_MM * d[a];
            }
        }
        double u_gas = rsy_rng_uniform(rng);
        double level = u_gas < SB_GAS_FRACTION ? 0.5 * (p[1] + q[1]) + 0.4 * SB_RADIUS_MM : NO_GAS;
        set_tube(&t[n++], p, q, SB_RADIUS_MM, SB_RADIUS_MM, level);
        memcpy(p, q, sizeof p);
    }
    rsy_status rc = grid_init(&m->bowel, lo, hi, BOWEL_GRID_MM);
    if (rc == RSY_OK)
        for (int i = 0; i < n; i++)
            grid_add_tube(&m->bowel, &t[i]);
    free(t);
    return rc;
}

/* Shape parameters from the shape stream: layers, organ positions, kidney frames. */
static void draw_shape(abd_model *m, const rsy_subject *s, rsy_rng *r, double jitter[4])
{
    int male = s->sex == RSY_SEX_MALE;
    m->t_skin = rsy_rng_uniform_range(r, SKIN_MM_MIN, SKIN_MM_MAX);
    m->t_subcut = male ? rsy_rng_uniform_range(r, SUBCUT_M_MM_MIN, SUBCUT_M_MM_MAX)
                       : rsy_rng_uniform_range(r, SUBCUT_F_MM_MIN, SUBCUT_F_MM_MAX);
    m->t_muscle = rsy_rng_uniform_range(r, WALL_MUSCLE_MM_MIN, WALL_MUSCLE_MM_MAX);
    /* Organ positions vary by a few millimetres (GK). */
    for (int a = 0; a < 3; a++) {
        m->liver_c[a] = liver_right[a] + rsy_rng_gaussian(r, 3.0);
        m->spleen_c[a] = spleen_outer[a] + rsy_rng_gaussian(r, 3.0);
        m->kid_c[0][a] = kidney_centre[0][a] + rsy_rng_gaussian(r, 3.0);
        m->kid_c[1][a] = kidney_centre[1][a] + rsy_rng_gaussian(r, 3.0);
    }
    for (int i = 0; i < 4; i++)
        jitter[i] = rsy_rng_gaussian(r, i < 2 ? 2.0 : 0.8);
    for (int side = 0; side < 2; side++) {
        double sg = side == 0 ? 1.0 : -1.0; /* +1 right */
        double up[3] = {-sg * 0.22 + rsy_rng_gaussian(r, 0.04), -0.18, 1.0};
        normalize(up);
        /* Hilum direction: medial and 30 deg anterior, made orthogonal to the long axis. */
        double med[3] = {-sg * cos(M_PI / 6.0), sin(M_PI / 6.0), 0.0};
        double dm = med[0] * up[0] + med[1] * up[1] + med[2] * up[2];
        for (int a = 0; a < 3; a++)
            med[a] -= dm * up[a];
        normalize(med);
        double third[3];
        cross(up, med, third);
        memcpy(m->kid_axes[side][0], up, sizeof up);
        memcpy(m->kid_axes[side][1], med, sizeof med);
        memcpy(m->kid_axes[side][2], third, sizeof third);
        /* Pyramid axes (kidney-normalised frame): spread along the long axis, pointing
         * laterally, alternately in front of and behind the mid-plane. */
        for (int k = 0; k < KIDNEY_N_PYRAMIDS; k++) {
            double t = -0.8 + 1.6 * (double)k / (double)(KIDNEY_N_PYRAMIDS - 1);
            double *a = m->pyramid[side][k];
            a[0] = t + rsy_rng_gaussian(r, 0.05);
            a[1] = -0.75;
            a[2] = (k % 2 ? 0.55 : -0.55) + rsy_rng_gaussian(r, 0.05);
            normalize(a);
        }
    }
    for (int a = 0; a < 3; a++) {
        m->panc_lo[a] = INFINITY;
        m->panc_hi[a] = -INFINITY;
    }
    for (size_t i = 0; i + 1 < N_PANCREAS; i++) {
        double lo[3], hi[3];
        set_tube(&m->pancreas[i], pancreas_knots[i], pancreas_knots[i + 1], pancreas_knots[i][3],
                 pancreas_knots[i + 1][3], NO_GAS);
        tube_box(&m->pancreas[i], lo, hi);
        for (int a = 0; a < 3; a++) {
            m->panc_lo[a] = fmin(m->panc_lo[a], lo[a]);
            m->panc_hi[a] = fmax(m->panc_hi[a], hi[a]);
        }
    }
}

/* Volumes (mm^3, reference frame, undeformed) of the five organs in the current model. */
static void integrate_organs(const abd_model *m, double vol_mm3[N_ORG])
{
    const double h = CALIB_STEP_MM;
    double count[N_ORG] = {0.0};
    for (double z = calib_lo[2] + 0.5 * h; z < calib_hi[2]; z += h)
        for (double y = calib_lo[1] + 0.5 * h; y < calib_hi[1]; y += h)
            for (double x = calib_lo[0] + 0.5 * h; x < calib_hi[0]; x += h) {
                double p[3] = {x, y, z};
                int c = classify(m, p);
                if (c == RSY__ABD_LIVER || c == RSY__ABD_HEPATIC_VESSEL)
                    count[ORG_LIVER] += 1.0;
                else if (c == RSY__ABD_SPLEEN)
                    count[ORG_SPLEEN] += 1.0;
                else if (c == RSY__ABD_KIDNEY_CORTEX || c == RSY__ABD_KIDNEY_MEDULLA)
                    count[x > 0.0 ? ORG_KIDNEY_R : ORG_KIDNEY_L] += 1.0;
                else if (c == RSY__ABD_PANCREAS)
                    count[ORG_PANCREAS] += 1.0;
            }
    for (int o = 0; o < N_ORG; o++)
        vol_mm3[o] = count[o] * h * h * h;
}

/* Organ scales so that each organ's volume (after the global scale) is its target: two
 * fixed-point passes (organs that lose volume to higher-priority neighbours are corrected). */
static rsy_status calibrate(abd_model *m, const double target_ml[N_ORG], double global3,
                            const double jitter[4])
{
    double *s[N_ORG] = {&m->s_liver, &m->s_spleen, &m->s_kidney[0], &m->s_kidney[1],
                        &m->s_pancreas};
    for (int o = 0; o < N_ORG; o++)
        *s[o] = 1.0;
    m->use_grids = 0;
    for (int pass = 0; pass < 3; pass++) {
        build_big_vessels(m, jitter);
        double v[N_ORG];
        integrate_organs(m, v);
        for (int o = 0; o < N_ORG; o++) {
            double want_mm3 = target_ml[o] * 1000.0 / global3;
            if (!(v[o] > 0.0)) {
                rsy_log_error("phantom: abdomen organ %d vanished during calibration", o);
                return RSY_ENUMERIC;
            }
            *s[o] *= cbrt(want_mm3 / v[o]);
        }
    }
    build_big_vessels(m, jitter);
    m->use_grids = 1;
    return RSY_OK;
}

static rsy_status check_spec(const rsy_phantom_spec *spec)
{
    return rsy__phantom_check_spec(spec, "abdomen");
}

/* World extent of the voxel centres along each axis. */

static void abdomen_measure(const rsy_volume *classes, rsy_subject *subject);

static rsy_status abdomen_generate(const rsy_phantom_spec *spec, rsy_rng *subject_rng,
                                   rsy_rng *shape_rng, rsy_volume **classes_out,
                                   rsy_subject *subject_out)
{
    rsy_status rc = RSY_OK;
    rsy_volume *vol = NULL;
    rsy__deform *def = NULL;
    abd_model *m = NULL;
    rsy_geometry geom;
    rsy_subject subj;
    double target_ml[N_ORG], jitter[4];

    *classes_out = NULL;
    rc = check_spec(spec);
    if (rc != RSY_OK)
        return rc;
    rc = rsy_geometry_init(&geom, spec->dims, spec->spacing_mm);
    if (rc != RSY_OK) {
        rsy_log_error("phantom: invalid geometry");
        return rc;
    }
    memset(&subj, 0, sizeof subj);
    draw_subject(spec, subject_rng, &subj, target_ml);

    m = calloc(1, sizeof *m);
    if (m == NULL) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    double global3 = 1.0;
    for (int a = 0; a < 3; a++) {
        double sc = subj.size_scale * subj.axis_scale[a];
        m->inv_scale[a] = 1.0 / sc;
        global3 *= sc;
    }
    draw_shape(m, &subj, shape_rng, jitter);
    rc = build_vessels(m, shape_rng);
    if (rc == RSY_OK)
        rc = build_bowel(m, shape_rng);
    if (rc == RSY_OK)
        rc = calibrate(m, target_ml, global3, jitter);
    if (rc != RSY_OK)
        goto fail;

    double lo[3], hi[3];
    rsy__geometry_world_bounds(&geom, lo, hi);
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
                    p[a] = y[a] * m->inv_scale[a];
                lab[idx] = (uint16_t)classify(m, p);
            }
    abdomen_measure(vol, &subj);
    grid_clear(&m->vessels);
    grid_clear(&m->bowel);
    free(m);
    rsy__deform_destroy(def);
    *subject_out = subj;
    *classes_out = vol;
    return RSY_OK;
fail:
    rsy_volume_destroy(vol);
    rsy__deform_destroy(def);
    if (m != NULL) {
        grid_clear(&m->vessels);
        grid_clear(&m->bowel);
    }
    free(m);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Measuring and naming                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* Organ volumes: liver (parenchyma + intrahepatic vessels), spleen, each kidney (cortex +
 * medulla, side by the sign of x), both kidneys, pancreas. Lesion classes (ids at or above the
 * class count) are not attributed: the map no longer says which organ they replaced. */
static void abdomen_measure(const rsy_volume *classes, rsy_subject *subject)
{
    if (subject == NULL)
        return;
    subject->n_organs = 0;
    subject->intracranial_ml = subject->brain_ml = subject->ventricles_ml = 0.0;
    if (classes == NULL || classes->data == NULL) {
        rsy_log_error("phantom measure: no class map");
        return;
    }
    if (classes->dtype != RSY_DTYPE_UINT16 && classes->dtype != RSY_DTYPE_UINT8) {
        rsy_log_error("phantom measure: class map must be uint8 or uint16, got %s",
                      rsy_dtype_name(classes->dtype));
        return;
    }
    const rsy_geometry *g = &classes->geom;
    const double(*A)[4] = g->affine;
    double vox_ml = fabs(A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) -
                         A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                         A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0])) /
                    1000.0;
    const uint16_t *l16 = classes->dtype == RSY_DTYPE_UINT16 ? classes->data : NULL;
    const uint8_t *l8 = classes->dtype == RSY_DTYPE_UINT8 ? classes->data : NULL;
    size_t n[N_ORG] = {0}, idx = 0;
    for (int64_t k = 0; k < g->dims[2]; k++)
        for (int64_t j = 0; j < g->dims[1]; j++)
            for (int64_t i = 0; i < g->dims[0]; i++, idx++) {
                unsigned c = l16 ? l16[idx] : l8[idx];
                if (c == RSY__ABD_LIVER || c == RSY__ABD_HEPATIC_VESSEL) {
                    n[ORG_LIVER]++;
                } else if (c == RSY__ABD_SPLEEN) {
                    n[ORG_SPLEEN]++;
                } else if (c == RSY__ABD_PANCREAS) {
                    n[ORG_PANCREAS]++;
                } else if (c == RSY__ABD_KIDNEY_CORTEX || c == RSY__ABD_KIDNEY_MEDULLA) {
                    double ijk[3] = {(double)i, (double)j, (double)k}, w[3];
                    rsy_geometry_voxel_to_world(g, ijk, w);
                    n[w[0] > 0.0 ? ORG_KIDNEY_R : ORG_KIDNEY_L]++;
                }
            }
    rsy__subject_add_organ(subject, "liver", (double)n[ORG_LIVER] * vox_ml);
    rsy__subject_add_organ(subject, "spleen", (double)n[ORG_SPLEEN] * vox_ml);
    rsy__subject_add_organ(subject, "kidneys",
                           (double)(n[ORG_KIDNEY_R] + n[ORG_KIDNEY_L]) * vox_ml);
    rsy__subject_add_organ(subject, "kidney_right", (double)n[ORG_KIDNEY_R] * vox_ml);
    rsy__subject_add_organ(subject, "kidney_left", (double)n[ORG_KIDNEY_L] * vox_ml);
    rsy__subject_add_organ(subject, "pancreas", (double)n[ORG_PANCREAS] * vox_ml);
}

/* Couinaud segment of a reference-frame point in the liver (GK approximations): the
 * principal plane (Cantlie's line, IVC to gallbladder fossa) at x = 18 mm separates right and
 * left liver; the right hepatic vein plane (x = 62) separates the right anterior (V, VIII) and
 * posterior (VI, VII) sections; the falciform ligament (x = -8) separates IV from II/III; the
 * portal plane (z = porta) separates superior (II, VII, VIII, IVa) and inferior segments; the
 * caudate lobe (I) lies in front of the IVC below the hepatic-vein confluence. */
static const char *liver_segment(const double p[3])
{
    double x = p[0], y = p[1], z = p[2];
    int sup = z > porta[2];
    if (x > 0.0 && x < 30.0 && y < -5.0 && y > -40.0 && z < hv_confluence[2] - 10.0 &&
        z > porta[2] - 10.0)
        return "caudate lobe (segment I)";
    if (x > 62.0)
        return sup ? "right hepatic lobe (segment VII)" : "right hepatic lobe (segment VI)";
    if (x > 18.0)
        return sup ? "right hepatic lobe (segment VIII)" : "right hepatic lobe (segment V)";
    if (x > -8.0)
        return sup ? "left hepatic lobe (segment IVa)" : "left hepatic lobe (segment IVb)";
    return sup ? "left hepatic lobe (segment II)" : "left hepatic lobe (segment III)";
}

static void abdomen_describe(const rsy_subject *subject, const double xyz_mm[3], char *buf,
                             size_t n)
{
    if (buf == NULL || n == 0)
        return;
    buf[0] = '\0';
    if (subject == NULL || xyz_mm == NULL) {
        snprintf(buf, n, "unknown location");
        return;
    }
    /* Reference frame without the small deformation; organs at reference size (their own
     * scale is within about +-25%, so the margins below absorb it). */
    double p[3];
    for (int a = 0; a < 3; a++) {
        double sc = subject->size_scale * subject->axis_scale[a];
        p[a] = xyz_mm[a] / (sc > 0.0 ? sc : 1.0);
    }
    const char *side = fabs(p[0]) < 5.0 ? "midline" : (p[0] > 0.0 ? "right" : "left");
    int c = spine_class(p);
    if (c == RSY__ABD_SPINAL_CANAL) {
        snprintf(buf, n, "spinal canal");
        return;
    }
    if (c != 0 && c != RSY__ABD_MUSCLE) {
        static const char *levels[] = {"L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9"};
        int li = (int)floor(p[2] / LEVEL_MM + 0.5) + 3;
        const char *lv = li >= 0 && li < 8 ? levels[li] : "lumbar";
        snprintf(buf, n, "%s vertebra", lv);
        return;
    }
    for (int s = 0; s < 2; s++) {
        static const double semi[3] = {KIDNEY_LONG_MM, KIDNEY_WIDTH_MM, KIDNEY_THICK_MM};
        double r2 = 0.0;
        for (int a = 0; a < 3; a++) {
            double q = (p[a] - kidney_centre[s][a]) / (1.2 * semi[a]);
            r2 += q * q;
        }
        if (r2 < 1.0) {
            double u = p[2] - kidney_centre[s][2];
            const char *pole = u > 0.33 * KIDNEY_LONG_MM    ? "upper pole"
                               : u < -0.33 * KIDNEY_LONG_MM ? "lower pole"
                                                            : "interpolar region";
            snprintf(buf, n, "%s kidney %s", s == 0 ? "right" : "left", pole);
            return;
        }
    }
    double dl = liver_sd(p);
    if (dl < 8.0) {
        snprintf(buf, n, "%s%s", dl > -10.0 ? "subcapsular " : "", liver_segment(p));
        return;
    }
    if (spleen_sd(p) < 8.0) {
        snprintf(buf, n, "spleen");
        return;
    }
    for (size_t i = 0; i + 1 < N_PANCREAS; i++) {
        tube t;
        set_tube(&t, pancreas_knots[i], pancreas_knots[i + 1], pancreas_knots[i][3] + 6.0,
                 pancreas_knots[i + 1][3] + 6.0, NO_GAS);
        if (tube_sd(&t, p, NULL) < 0.0) {
            const char *part = p[0] > 20.0    ? "head"
                               : p[0] > 0.0   ? "neck"
                               : p[0] > -40.0 ? "body"
                                              : "tail";
            snprintf(buf, n, "pancreatic %s", part);
            return;
        }
    }
    double dc = cavity_sd(p);
    if (dc > 0.0) {
        snprintf(buf, n, "%s abdominal wall", side);
        return;
    }
    if (p[1] < -25.0) {
        snprintf(buf, n, "%s retroperitoneum", side);
        return;
    }
    if (fabs(p[0]) < 5.0) {
        snprintf(buf, n, p[2] > -40.0 ? "epigastrium" : "periumbilical region");
        return;
    }
    snprintf(buf, n, "%s %s quadrant", side, p[2] > -40.0 ? "upper" : "lower");
}

/* Indexed by rsy__abdomen_class; names match configs/tissues/. */
static const char *const abdomen_class_names[RSY__ABD_N_CLASSES] = {
    "background",     "skin",       "fat",           "muscle",        "liver",
    "hepatic_vessel", "spleen",     "kidney_cortex", "kidney_medulla", "pancreas",
    "blood",          "bowel_wall", "bowel_content", "bowel_gas",     "cortical_bone",
    "cancellous_bone", "spinal_canal"};

const rsy__phantom_family rsy__phantom_family_abdomen = {
    "abdomen", RSY__ABD_N_CLASSES, abdomen_class_names, abdomen_generate, abdomen_measure,
    abdomen_describe};
