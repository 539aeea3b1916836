/*
 * thorax.c: the procedural "thorax" phantom family (issue 4).
 *
 * Anatomy is a set of smooth implicit shapes and tubes in a reference frame (mm, RAS+, origin
 * at the carina; thorax_internal.h), evaluated per voxel at the point the subject's random
 * diffeomorphism maps the voxel to (pull-back, so topology is kept). From outside in: skin,
 * subcutaneous fat (with breasts in women), chest-wall muscle, the rib cage (12 pairs of
 * curved ribs with costal cartilage, sternum), the thoracic cavity with both lungs, the
 * mediastinum (heart with myocardium around blood-filled chambers, aorta, pulmonary trunk,
 * venae cavae, trachea, oesophagus, fat), the thoracic spine (vertebral bodies of cancellous
 * bone in a cortical shell, discs, neural arch, processes, spinal canal) with the paraspinal
 * muscles, and below the diaphragm the top of the liver, spleen and stomach.
 *
 * Airways (trachea, main and lobar bronchi, then random trees of smaller bronchi) and the
 * pulmonary vessels are tapered tubes, grown and binned in a segment grid in thorax_tubes.c.
 *
 * Sizes: the lung volume is drawn from adult TLC by sex (domain.md 5.4, GK: M 6 L, F 4.5 L)
 * times INSPIRATION_FRACTION for a CT at full inspiration, and the whole reference chest is
 * scaled to it (its lung volume is integrated numerically per subject); the heart is scaled
 * separately to a drawn cardiac volume. Other sizes are textbook adult values (GK).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "phantoms_internal.h"
#include "thorax_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Subject-level constants                                                                    */
/* ---------------------------------------------------------------------------------------- */
/* Total lung capacity (GK, domain.md 5.4): M 6.0 L, F 4.5 L; individual spread SD 12% (GK),
 * truncated at +-2 SD. A CT "at full inspiration" reaches about 90% of plethysmographic TLC
 * (GK), so the drawn CT lung volume (parenchyma plus intrapulmonary vessels) is 0.9 TLC. */
#define TLC_MALE_ML 6000.0
#define TLC_FEMALE_ML 4500.0
#define TLC_SD_FRACTION 0.12
#define TRUNCATION_SD 2.0
#define INSPIRATION_FRACTION 0.90
/* Cardiac volume including the chambers, end-diastole (GK: 500-900 mL in adults). */
#define HEART_MALE_ML 720.0
#define HEART_MALE_SD_ML 70.0
#define HEART_FEMALE_ML 620.0
#define HEART_FEMALE_SD_ML 55.0
/* Per-axis chest shape variation beyond the isotropic size, +-5% (GK). */
#define AXIS_SCALE_SPREAD 0.05
/* Subcutaneous fat over the chest, mm (GK): men 8-25, women 12-32. */
#define FAT_MALE_MM_MIN 8.0
#define FAT_MALE_MM_MAX 25.0
#define FAT_FEMALE_MM_MIN 12.0
#define FAT_FEMALE_MM_MAX 32.0
/* Aortic diameter grows about 1 mm per decade in adults (GK); factor per year on the radius
 * around the reference at 50 y. */
#define AORTA_AGE_SLOPE_PER_YEAR 0.003
#define AORTA_AGE_REF_YEARS 50.0

/* ---------------------------------------------------------------------------------------- */
/* Shape constants (reference frame, mm; GK adult anatomy unless stated)                     */
/* ---------------------------------------------------------------------------------------- */
/* Thoracic cavity (inner surface of the ribs): a boxy ellipse in the axial plane. */
#define CAV_CY_MM (-15.0)
#define CAV_A_MM 135.0
#define CAV_B_MM 85.0
#define CAV_BOXINESS 0.3
/* Above APEX0 the lung cavity narrows to the apex (RSY__THORAX_APEX_Z_MM, about 10 cm
 * above the carina); the body outline keeps at least NECK_FRACTION of the cavity (thoracic
 * inlet, root of the neck). */
#define APEX0_Z_MM 30.0
#define NECK_FRACTION 0.58
/* Wall layers (reference mm before the subject's scale): skin 1.5-3 mm, rib layer,
 * muscle (pectoral and latissimus bumps), then subcutaneous fat. */
#define SKIN_MM 2.0
#define RIB_LAYER_MM 8.0
#define MUSCLE_MALE_MM 7.0
#define MUSCLE_FEMALE_MM 5.5
/* Extrapleural fat line between the ribs and the lung. */
#define PLEURA_GAP_MM 1.0
/* Vertebrae: thoracic body height about 20 mm plus a 5 mm disc (pitch 25 mm); T1 centre,
 * with the carina at the T4/T5 disc. Body semi-axes grow caudally. */
#define VERT_PITCH_MM 25.0
#define Z_T1_MM 87.5
#define N_VERTEBRAE 17 /* T1..T12, L1..L5 */
#define VERT_BODY_HALF_H_MM 10.0
#define CORTEX_MM 1.5
#define CANAL_Y_MM (-70.0)
#define CANAL_R_MM 8.0
#define ARCH_MM 5.0
/* Ribs: the centre line drops RIB_DROP_MM from the head to the anterior end (ribs slope down
 * by 2-3 vertebral levels); cross-section RIB_LAYER_MM thick and 2 * RIB_HALF_H_MM high. */
#define RIB_DROP_MM 55.0
#define RIB_HALF_H_MM 6.0
#define RIB_START_RAD 0.30
/* Sternum (jugular notch at T2-T3, xiphoid tip at T10-T11), 12 mm thick. */
#define STERNUM_TOP_Z_MM 50.0
#define MANUBRIUM_Z_MM 5.0
#define XIPHOID_Z_MM (-115.0)
#define STERNUM_BOTTOM_Z_MM (-150.0)
#define STERNUM_MM 12.0
/* Diaphragm: two domes, the right about 2 cm higher than the left; muscle 5 mm thick. */
#define DOME_R_X_MM 55.0
#define DOME_R_Y_MM 5.0
#define DOME_R_Z_MM (-112.0)
#define DOME_L_X_MM (-60.0)
#define DOME_L_Y_MM 0.0
#define DOME_L_Z_MM (-130.0)
#define DOME_CURV_PER_MM 0.0045
#define DIAPHRAGM_MM 5.0
/* Heart: a rotated ellipsoid, long axis from base (right, posterior, superior) to apex (left,
 * anterior, inferior); reference semi-axes (long, transverse, antero-posterior) and a
 * wall (ventricular myocardium 6-10 mm, thinner atria: one mean value). */
#define HEART_CX_MM (-12.0)
#define HEART_CY_MM 30.0
#define HEART_CZ_MM (-82.0)
#define HEART_SEMI_LONG_MM 62.0
#define HEART_SEMI_2_MM 50.0
#define HEART_SEMI_3_MM 46.0
#define HEART_WALL_MM 7.0
#define HEART_SEPTUM_MM 9.0
#define HEART_MARGIN_MM 4.0
/* Mediastinal width beside the midline (lungs excluded): anterior junction, middle, and a
 * paravertebral zone that widens posteriorly. */
#define MED_W_ANTERIOR_MM 9.0
#define MED_W_MIDDLE_MM 24.0
#define MED_W_POST_SLOPE 0.15
/* The mediastinal band's centre lies left of the midline (aortic arch, heart; GK). */
#define MED_X_MM (-10.0)
#define VESSEL_MARGIN_MM 3.0
/* Vessel segments thinner than SUBVOXEL_FRACTION of a voxel everywhere are left out of the
 * segment grid (the vessel trees of thorax_tubes.c branch down to 0.5 mm radius). */
#define SUBVOXEL_FRACTION 1.0
/* Step of the numerical integration of the reference lung volume. */
#define LUNG_INTEGRATION_STEP_MM 4.0
/* Lung fissures (GK), for naming regions: the oblique fissure from high posteriorly to the
 * anterior diaphragm, the horizontal fissure of the right lung at the 4th costal cartilage. */
#define OBLIQUE_Y0_MM (-90.0)
#define OBLIQUE_Z0_MM 10.0
#define OBLIQUE_SLOPE (-0.875)
#define HORIZONTAL_Z_MM (-45.0)
#define LINGULA_Z_MM (-60.0)
#define SUBPLEURAL_MM 10.0

/* Fixed great vessels: polyline knots (x, y, z, radius). */
static const double aorta_knots[][4] = {
    {10.0, 14.0, -52.0, 14.0}, {15.0, 18.0, -20.0, 15.0},   {12.0, 15.0, 15.0, 14.5},
    {0.0, 5.0, 32.0, 13.0},    {-18.0, -12.0, 30.0, 12.0},  {-27.0, -28.0, 8.0, 12.0},
    {-28.0, -30.0, -60.0, 11.0}, {-20.0, -22.0, -140.0, 11.0}, {-6.0, -16.0, -210.0, 10.0},
    {-3.0, -16.0, -300.0, 10.0}};
#define N_AORTA (sizeof aorta_knots / sizeof aorta_knots[0])
/* Other mediastinal vessels as single segments (a, b, ra, rb): pulmonary trunk and arteries
 * to the hila, pulmonary veins to the left atrium, venae cavae, arch branches. */
static const double great_vessels[][8] = {
    {-8.0, 40.0, -55.0, -12.0, 22.0, -22.0, 13.0, 13.0},  /* pulmonary trunk */
    {-12.0, 22.0, -22.0, 12.0, 8.0, -18.0, 11.0, 10.0},   /* right pulmonary artery */
    {12.0, 8.0, -18.0, RSY__THORAX_HILUM_R_X_MM, RSY__THORAX_HILUM_R_Y_MM,
     RSY__THORAX_HILUM_R_Z_MM, 10.0, 9.0},
    {-12.0, 22.0, -22.0, -28.0, 8.0, -6.0, 11.0, 10.0},   /* left pulmonary artery */
    {-28.0, 8.0, -6.0, RSY__THORAX_HILUM_L_X_MM, RSY__THORAX_HILUM_L_Y_MM,
     RSY__THORAX_HILUM_L_Z_MM, 10.0, 9.0},
    {30.0, -8.0, -55.0, 5.0, -2.0, -70.0, 7.0, 8.0},      /* right pulmonary veins */
    {-32.0, -10.0, -45.0, -12.0, -4.0, -68.0, 7.0, 8.0},  /* left pulmonary veins */
    {24.0, 16.0, 130.0, 24.0, 12.0, -45.0, 10.0, 11.0},   /* superior vena cava */
    {20.0, 6.0, -105.0, 22.0, 0.0, -300.0, 12.0, 12.0},   /* inferior vena cava */
    {8.0, 10.0, 30.0, 18.0, 16.0, 130.0, 6.5, 6.0},       /* brachiocephalic artery */
    {-5.0, 8.0, 32.0, -10.0, 10.0, 130.0, 4.5, 4.0},      /* left common carotid */
    {-15.0, -6.0, 30.0, -35.0, -4.0, 110.0, 5.5, 5.0}};   /* left subclavian */
#define N_GREAT (sizeof great_vessels / sizeof great_vessels[0])
/* Oesophagus knots (x, y, z, radius): behind the trachea and left atrium, to the stomach. */
static const double oesophagus_knots[][4] = {
    {-2.0, -18.0, 300.0, 8.0}, {-4.0, -20.0, 60.0, 8.0},  {-6.0, -20.0, 0.0, 8.0},
    {-10.0, -20.0, -80.0, 8.0}, {-22.0, -8.0, -150.0, 8.0}, {-45.0, 5.0, -178.0, 9.0}};
#define N_OESOPHAGUS (sizeof oesophagus_knots / sizeof oesophagus_knots[0])

/* ---------------------------------------------------------------------------------------- */
/* Geometry helpers                                                                           */
/* ---------------------------------------------------------------------------------------- */
/* (clampd, dot3, normalize3 and segment_distance are in thorax_internal.h.) */
/* Signed distance (first order) to a tapered tube: negative inside. */
static double tube_distance(const double p[3], const double a[3], const double b[3], double ra,
                            double rb)
{
    double t;
    double d = segment_distance(p, a, b, &t);
    return d - (ra + t * (rb - ra));
}

/* Signed distance to a polyline of knots (x, y, z, r), radius times @p rf. */
static double polyline_distance(const double p[3], const double (*k)[4], size_t n, double rf)
{
    double best = INFINITY;
    for (size_t i = 0; i + 1 < n; i++) {
        double d = tube_distance(p, k[i], k[i + 1], rf * k[i][3], rf * k[i + 1][3]);
        if (d < best)
            best = d;
    }
    return best;
}

/* Scale of the cavity cross-section at height z: the lungs' (narrowing to the apex) and the
 * body's (never below the root of the neck). */
static double lung_cavity_factor(double z)
{
    if (z <= APEX0_Z_MM)
        return 1.0;
    double u = (z - APEX0_Z_MM) / (RSY__THORAX_APEX_Z_MM - APEX0_Z_MM);
    return u >= 1.0 ? 0.0 : sqrt(1.0 - u * u);
}

static double body_cavity_factor(double z)
{
    return fmax(lung_cavity_factor(z), NECK_FRACTION);
}

/* First-order signed distance to a boxy ellipse with semi-axes (a, b) centred (0, CAV_CY). */
static double cavity_distance(double x, double y, double f)
{
    if (f <= 0.0)
        return INFINITY;
    double a = CAV_A_MM * f, b = CAV_B_MM * f;
    double q0 = x / a, q1 = (y - CAV_CY_MM) / b;
    double g = CAV_BOXINESS;
    double q0s = q0 * q0, q1s = q1 * q1;
    double fv = (q0s + q1s + g * (q0s * q0s + q1s * q1s)) / (1.0 + g);
    double d0 = (2.0 * q0 + 4.0 * g * q0s * q0) / (a * (1.0 + g));
    double d1 = (2.0 * q1 + 4.0 * g * q1s * q1) / (b * (1.0 + g));
    double grad = sqrt(d0 * d0 + d1 * d1);
    double s = sqrt(fv);
    if (grad < 1e-30)
        return -b;
    return (s - 1.0) * 2.0 * s / grad;
}

/* Height of the top of the diaphragm at (x, y): the upper envelope of two domes. */
static double diaphragm_z(double x, double y)
{
    double dr = (x - DOME_R_X_MM) * (x - DOME_R_X_MM) + (y - DOME_R_Y_MM) * (y - DOME_R_Y_MM);
    double dl = (x - DOME_L_X_MM) * (x - DOME_L_X_MM) + (y - DOME_L_Y_MM) * (y - DOME_L_Y_MM);
    return fmax(DOME_R_Z_MM - DOME_CURV_PER_MM * dr, DOME_L_Z_MM - DOME_CURV_PER_MM * dl);
}

/* Heart coordinates of p: q[0] along the long axis (towards the apex), normalised radius. */
static double heart_rho(const thorax_model *m, const double p[3], double q[3])
{
    double d[3] = {p[0] - m->hc[0], p[1] - m->hc[1], p[2] - m->hc[2]};
    double rho2 = 0.0;
    for (int i = 0; i < 3; i++) {
        q[i] = dot3(d, m->hu[i]);
        rho2 += (q[i] / m->hs[i]) * (q[i] / m->hs[i]);
    }
    return sqrt(rho2);
}

int rsy__thorax_lobe(const double p[3])
{
    double z_oblique = OBLIQUE_Z0_MM + OBLIQUE_SLOPE * (p[1] - OBLIQUE_Y0_MM);
    if (p[2] < z_oblique)
        return 0;
    return p[2] > (p[0] > 0.0 ? HORIZONTAL_Z_MM : LINGULA_Z_MM) ? 1 : 2;
}

/* 1 if p is closer than @p margin to the tube a-b (radii ra, rb): a bounding-box test
 * first, the exact distance only near the tube. */
static int near_tube(const double p[3], const double a[3], const double b[3], double ra,
                     double rb, double margin)
{
    double r = fmax(ra, rb) + margin;
    for (int i = 0; i < 3; i++)
        if (p[i] < fmin(a[i], b[i]) - r || p[i] > fmax(a[i], b[i]) + r)
            return 0;
    return tube_distance(p, a, b, ra, rb) < margin;
}

/* 1 if p lies in the mediastinal compartment: a midline band, the heart and the great
 * vessels, plus margins (the lungs are what the cavity holds outside it). */
static int in_mediastinum(const thorax_model *m, const double p[3])
{
    double x = p[0], y = p[1];
    double w;
    if (y > 45.0)
        w = MED_W_ANTERIOR_MM;
    else if (y > 30.0)
        w = MED_W_ANTERIOR_MM + (MED_W_MIDDLE_MM - MED_W_ANTERIOR_MM) * (45.0 - y) / 15.0;
    else if (y > -28.0)
        w = MED_W_MIDDLE_MM;
    else
        w = MED_W_MIDDLE_MM + MED_W_POST_SLOPE * (-28.0 - y);
    if (fabs(x - MED_X_MM) < w)
        return 1;
    double q[3];
    if ((heart_rho(m, p, q) - 1.0) * m->hs[2] < HEART_MARGIN_MM)
        return 1;
    if (fabs(x) > 80.0)
        return 0;
    for (size_t i = 0; i + 1 < N_AORTA; i++) {
        const double *a = aorta_knots[i], *b = aorta_knots[i + 1];
        if (near_tube(p, a, b, m->aorta_factor * a[3], m->aorta_factor * b[3],
                      VESSEL_MARGIN_MM))
            return 1;
    }
    for (size_t i = 0; i < N_GREAT; i++) {
        const double *g = great_vessels[i];
        if (near_tube(p, g, g + 3, g[6], g[7], VESSEL_MARGIN_MM))
            return 1;
    }
    return 0;
}

int rsy__thorax_lung_side(const thorax_model *m, const double p[3])
{
    if (p[2] <= diaphragm_z(p[0], p[1]))
        return 0;
    if (cavity_distance(p[0], p[1], lung_cavity_factor(p[2])) > -PLEURA_GAP_MM)
        return 0;
    if (in_mediastinum(m, p))
        return 0;
    return p[0] > 0.0 ? 1 : 2;
}
/* ---------------------------------------------------------------------------------------- */
/* Bone                                                                                        */
/* ---------------------------------------------------------------------------------------- */
/* Nearest vertebral level (1 = T1) of height z, clamped to the modelled column. */
static int vertebra_level(double z)
{
    int k = (int)lround((Z_T1_MM - z) / VERT_PITCH_MM) + 1;
    return k < 1 ? 1 : (k > N_VERTEBRAE ? N_VERTEBRAE : k);
}

static double level_z(int k)
{
    return Z_T1_MM - (k - 1) * VERT_PITCH_MM;
}

/* Spine class at p, or BACKGROUND if p is not in the spine. */
static uint16_t spine_class(const double p[3])
{
    double x = p[0], y = p[1], z = p[2], ax = fabs(x);
    double kc = clampd((Z_T1_MM - z) / VERT_PITCH_MM + 1.0, 1.0, (double)N_VERTEBRAE);
    double a = 14.0 + 0.7 * kc, b = 9.5 + 0.45 * kc; /* body semi-axes, T1 30x20 mm (GK) */
    double yb = CANAL_Y_MM + CANAL_R_MM + 1.0 + b;
    double dy = y - CANAL_Y_MM, rc = sqrt(x * x + dy * dy);
    if (rc < CANAL_R_MM)
        return RSY__THORAX_SPINAL_CANAL;
    int k = vertebra_level(z);
    double zk = level_z(k), dz = fabs(z - zk);
    double rho = sqrt((x / a) * (x / a) + ((y - yb) / b) * ((y - yb) / b));
    if (rho < 1.0) {
        if (dz >= VERT_BODY_HALF_H_MM)
            return RSY__THORAX_CARTILAGE;
        if ((1.0 - rho) * b < CORTEX_MM || VERT_BODY_HALF_H_MM - dz < CORTEX_MM)
            return RSY__THORAX_CORTICAL_BONE;
        return RSY__THORAX_CANCELLOUS_BONE;
    }
    if (rc < CANAL_R_MM + ARCH_MM)
        return RSY__THORAX_CORTICAL_BONE;
    /* Spinous process: a plate sloping down from the arch (thoracic processes overlap). */
    if (ax < 3.5 && dy < -(CANAL_R_MM + 2.0) && dy > -(CANAL_R_MM + 40.0)) {
        double zc = zk - 0.5 * (-(CANAL_R_MM + 2.0) - dy);
        if (fabs(z - zc) < 6.0)
            return RSY__THORAX_CORTICAL_BONE;
    }
    /* Transverse processes, reaching the rib tubercles. */
    if (k <= 12 && fabs(dy - 2.0) < 6.0 && ax > CANAL_R_MM && ax < CANAL_R_MM + 28.0 &&
        dz < 7.0)
        return fabs(dy - 2.0) < 6.0 - CORTEX_MM && dz < 7.0 - CORTEX_MM
                   ? RSY__THORAX_CANCELLOUS_BONE
                   : RSY__THORAX_CORTICAL_BONE;
    return RSY__THORAX_BACKGROUND;
}

/* Rib cage class at a point of the chest wall: @p dcav is the depth into the wall beyond the
 * inner rib surface, @p phi the angle from the posterior midline (0) to the anterior (pi). */
static uint16_t ribcage_class(double z, double ax, double dcav, double phi)
{
    /* Bone and cartilage extents per rib (rad): true ribs 1-7 reach the sternum through
     * their cartilage, 8-10 join the costal margin, 11-12 float (GK). */
    static const double bone_end[12] = {2.45, 2.55, 2.55, 2.55, 2.55, 2.55,
                                        2.5,  2.35, 2.25, 2.1,  1.9,  1.5};
    static const double cart_end[12] = {2.95, 2.98, 2.98, 2.98, 2.98, 2.98,
                                        2.95, 2.75, 2.6,  2.45, 0.0,  0.0};
    if (z < STERNUM_TOP_Z_MM && z > STERNUM_BOTTOM_Z_MM && dcav < STERNUM_MM && phi > 2.5) {
        double w = z > MANUBRIUM_Z_MM ? 25.0 : (z > XIPHOID_Z_MM ? 15.0 : 8.0);
        if (ax < w) {
            double edge = fmin(fmin(w - ax, dcav), STERNUM_MM - dcav);
            edge = fmin(edge, fmin(STERNUM_TOP_Z_MM - z, z - STERNUM_BOTTOM_Z_MM));
            return edge < CORTEX_MM ? RSY__THORAX_CORTICAL_BONE : RSY__THORAX_CANCELLOUS_BONE;
        }
    }
    if (dcav >= RIB_LAYER_MM || phi < RIB_START_RAD)
        return RSY__THORAX_BACKGROUND;
    double drop = RIB_DROP_MM * pow(phi / M_PI, 1.3);
    int k0 = (int)lround((Z_T1_MM - drop - z) / VERT_PITCH_MM) + 1;
    for (int k = k0 - 1; k <= k0 + 1; k++) {
        if (k < 1 || k > 12)
            continue;
        double zr = level_z(k) - drop;
        double u = (dcav - 0.5 * RIB_LAYER_MM) / (0.5 * RIB_LAYER_MM);
        double v = (z - zr) / RIB_HALF_H_MM;
        double rho = sqrt(u * u + v * v);
        if (rho >= 1.0)
            continue;
        if (phi <= bone_end[k - 1])
            return (1.0 - rho) * 0.5 * RIB_LAYER_MM < CORTEX_MM ? RSY__THORAX_CORTICAL_BONE
                                                                : RSY__THORAX_CANCELLOUS_BONE;
        if (phi <= cart_end[k - 1])
            return RSY__THORAX_CARTILAGE;
    }
    return RSY__THORAX_BACKGROUND;
}

/* ---------------------------------------------------------------------------------------- */
/* Classification                                                                              */
/* ---------------------------------------------------------------------------------------- */
/* Muscle thickness of the chest wall at angle phi: pectoral and latissimus bumps. */
static double muscle_at(const thorax_model *m, double phi)
{
    double u = (phi - 2.2) / 0.45, v = (phi - 1.1) / 0.5;
    return m->t_muscle * (1.0 + 0.9 * exp(-u * u) + 0.7 * exp(-v * v));
}

static double fat_at(const thorax_model *m, double phi)
{
    return m->t_fat * (0.6 + 0.6 * sin(phi));
}

static double breast_distance(const thorax_model *m, const double p[3])
{
    if (m->breast_scale <= 0.0 || p[1] < 20.0)
        return INFINITY;
    double s = m->breast_scale;
    double bx = (fabs(p[0]) - 80.0) / (55.0 * s), by = (p[1] - 80.0) / (40.0 * s),
           bz = (p[2] + 60.0) / (50.0 * s);
    return (sqrt(bx * bx + by * by + bz * bz) - 1.0) * 40.0 * s;
}

/* Mediastinal (non-lung) content of the thoracic cavity at p. */
static uint16_t mediastinum_class(const thorax_model *m, const double p[3])
{
    int hit = rsy__thorax_tube_hit(m, p);
    if (hit == HIT_AIRWAY)
        return RSY__THORAX_AIRWAY;
    if (hit == HIT_AIRWAY_WALL)
        return RSY__THORAX_AIRWAY_WALL;
    if (fabs(p[0]) < 80.0) {
        if (polyline_distance(p, aorta_knots, N_AORTA, m->aorta_factor) < 0.0)
            return RSY__THORAX_BLOOD;
        for (size_t i = 0; i < N_GREAT; i++) {
            const double *g = great_vessels[i];
            if (tube_distance(p, g, g + 3, g[6], g[7]) < 0.0)
                return RSY__THORAX_BLOOD;
        }
    }
    double q[3];
    double rho = heart_rho(m, p, q);
    if (rho < 1.0) {
        double inner[3];
        double rin = 0.0;
        for (int i = 0; i < 3; i++) {
            inner[i] = q[i] / (m->hs[i] - HEART_WALL_MM);
            rin += inner[i] * inner[i];
        }
        if (rin >= 1.0)
            return RSY__THORAX_MYOCARDIUM;
        /* Interventricular/interatrial septum: a plane through the long axis. */
        if (fabs(q[1] - 0.1 * m->hs[1]) < 0.5 * HEART_SEPTUM_MM)
            return RSY__THORAX_MYOCARDIUM;
        return RSY__THORAX_BLOOD;
    }
    if (hit == HIT_VESSEL)
        return RSY__THORAX_BLOOD;
    if (polyline_distance(p, oesophagus_knots, N_OESOPHAGUS, 1.0) < 0.0)
        return RSY__THORAX_OESOPHAGUS;
    return RSY__THORAX_FAT;
}

/* Below the diaphragm: upper abdomen. */
static uint16_t abdomen_class(const thorax_model *m, const double p[3])
{
    double x = p[0], y = p[1], z = p[2];
    if (polyline_distance(p, aorta_knots, N_AORTA, m->aorta_factor) < 0.0)
        return RSY__THORAX_BLOOD;
    const double *ivc = great_vessels[8];
    if (tube_distance(p, ivc, ivc + 3, ivc[6], ivc[7]) < 0.0)
        return RSY__THORAX_BLOOD;
    if (polyline_distance(p, oesophagus_knots, N_OESOPHAGUS, 1.0) < 0.0)
        return RSY__THORAX_OESOPHAGUS;
    if (x > -20.0 - 0.5 * fmax(0.0, y))
        return RSY__THORAX_LIVER;
    double sx = (x + 90.0) / 32.0, sy = (y + 40.0) / 55.0, sz = (z + 180.0) / 50.0;
    if (sx * sx + sy * sy + sz * sz < 1.0)
        return RSY__THORAX_SPLEEN;
    return RSY__THORAX_STOMACH;
}

static uint16_t classify(const thorax_model *m, const double p[3])
{
    double x = p[0], y = p[1], z = p[2], ax = fabs(x);
    double dcav = cavity_distance(x, y, body_cavity_factor(z));
    double phi = 0.0, t_mus = 0.0;
    if (dcav >= 0.0 || (m->breast_scale > 0.0 && y > 20.0)) {
        /* Chest wall or beyond: the layers depend on the angle around the cavity. */
        phi = atan2(ax, CAV_CY_MM - y); /* 0 posterior midline, pi anterior */
        t_mus = muscle_at(m, phi);
        double wall = RIB_LAYER_MM + t_mus + fat_at(m, phi) + m->t_skin;
        double dbody = fmin(dcav - wall, breast_distance(m, p));
        if (dbody > 0.0)
            return RSY__THORAX_BACKGROUND;
        if (dbody > -m->t_skin)
            return RSY__THORAX_SKIN;
    }
    if (ax < 70.0 && y < -20.0 && y > -140.0) {
        uint16_t c = spine_class(p);
        if (c != RSY__THORAX_BACKGROUND)
            return c;
        /* Erector spinae beside the spinous processes (GK). */
        double ex = (ax - 32.0) / 26.0, ey = (y - (CANAL_Y_MM - 28.0)) / 28.0;
        if (ex * ex + ey * ey < 1.0 && dcav > -10.0)
            return RSY__THORAX_MUSCLE;
    }
    if (dcav >= 0.0) {
        uint16_t c = ribcage_class(z, ax, dcav, phi);
        if (c != RSY__THORAX_BACKGROUND)
            return c;
        return dcav < RIB_LAYER_MM + t_mus ? RSY__THORAX_MUSCLE : RSY__THORAX_FAT;
    }
    double zd = diaphragm_z(x, y);
    if (z < zd) {
        if (z > zd - DIAPHRAGM_MM)
            return RSY__THORAX_MUSCLE;
        return abdomen_class(m, p);
    }
    if (rsy__thorax_lung_side(m, p) != 0) {
        switch (rsy__thorax_tube_hit(m, p)) {
        case HIT_AIRWAY:
            return RSY__THORAX_AIRWAY;
        case HIT_AIRWAY_WALL:
            return RSY__THORAX_AIRWAY_WALL;
        case HIT_VESSEL:
            return RSY__THORAX_PULMONARY_VESSEL;
        default:
            return RSY__THORAX_LUNG;
        }
    }
    return mediastinum_class(m, p);
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

/* Volume (mm^3) of both lungs in the reference frame for model @p m (tubes not needed). */
static double reference_lung_mm3(const thorax_model *m)
{
    const double h = LUNG_INTEGRATION_STEP_MM;
    double count = 0.0;
    for (double z = -200.0 + 0.5 * h; z < RSY__THORAX_APEX_Z_MM; z += h)
        for (double y = -120.0 + 0.5 * h; y < 90.0; y += h)
            for (double x = -150.0 + 0.5 * h; x < 150.0; x += h) {
                double p[3] = {x, y, z};
                if (rsy__thorax_lung_side(m, p) != 0)
                    count += 1.0;
            }
    return count * h * h * h;
}

/* Heart axes from the nominal long axis, optionally perturbed. */
static void heart_axes(double u[3][3], const double jitter[3])
{
    double u1[3] = {-0.55 + jitter[0], 0.55 + jitter[1], -0.45 + jitter[2]};
    normalize3(u1);
    double zaxis[3] = {0.0, 0.0, 1.0};
    double u2[3] = {u1[1] * zaxis[2] - u1[2] * zaxis[1], u1[2] * zaxis[0] - u1[0] * zaxis[2],
                    u1[0] * zaxis[1] - u1[1] * zaxis[0]};
    normalize3(u2);
    double u3[3] = {u1[1] * u2[2] - u1[2] * u2[1], u1[2] * u2[0] - u1[0] * u2[2],
                    u1[0] * u2[1] - u1[1] * u2[0]};
    for (int i = 0; i < 3; i++) {
        u[0][i] = u1[i];
        u[1][i] = u2[i];
        u[2][i] = u3[i];
    }
}

/* The reference model without random parts (for naming regions). */
static void nominal_model(thorax_model *m)
{
    memset(m, 0, sizeof *m);
    const double zero[3] = {0.0, 0.0, 0.0};
    heart_axes(m->hu, zero);
    m->hc[0] = HEART_CX_MM;
    m->hc[1] = HEART_CY_MM;
    m->hc[2] = HEART_CZ_MM;
    m->hs[0] = HEART_SEMI_LONG_MM;
    m->hs[1] = HEART_SEMI_2_MM;
    m->hs[2] = HEART_SEMI_3_MM;
    m->aorta_factor = 1.0;
}

static rsy_status check_spec(const rsy_phantom_spec *spec)
{
    return rsy__phantom_check_spec(spec, "thorax");
}

/* Subject attributes from the subject stream. The number of draws does not depend on the
 * spec. */
static void draw_subject(const rsy_phantom_spec *spec, rsy_rng *r, rsy_subject *s,
                         double *lung_ml, double *heart_ml, double *fat_mm)
{
    double u_sex = rsy_rng_uniform(r);
    if (spec->sex == RSY_SEX_RANDOM)
        s->sex = u_sex < spec->female_fraction ? RSY_SEX_FEMALE : RSY_SEX_MALE;
    else
        s->sex = spec->sex;
    s->age_years = rsy_rng_uniform_range(r, spec->age_min_years, spec->age_max_years);
    if (!(s->age_years >= spec->age_min_years))
        s->age_years = spec->age_min_years;
    int male = s->sex == RSY_SEX_MALE;
    double tlc = male ? TLC_MALE_ML : TLC_FEMALE_ML;
    double sd = TLC_SD_FRACTION * tlc;
    *lung_ml = INSPIRATION_FRACTION * truncated_normal(r, tlc, sd, tlc - TRUNCATION_SD * sd,
                                                       tlc + TRUNCATION_SD * sd);
    double hm = male ? HEART_MALE_ML : HEART_FEMALE_ML;
    double hsd = male ? HEART_MALE_SD_ML : HEART_FEMALE_SD_ML;
    *heart_ml = truncated_normal(r, hm, hsd, hm - TRUNCATION_SD * hsd, hm + TRUNCATION_SD * hsd);
    *fat_mm = male ? rsy_rng_uniform_range(r, FAT_MALE_MM_MIN, FAT_MALE_MM_MAX)
                   : rsy_rng_uniform_range(r, FAT_FEMALE_MM_MIN, FAT_FEMALE_MM_MAX);
    for (int a = 0; a < 3; a++)
        s->axis_scale[a] =
            rsy_rng_uniform_range(r, 1.0 - AXIS_SCALE_SPREAD, 1.0 + AXIS_SCALE_SPREAD);
}

/* Heart semi-axes in the reference frame for a world volume of @p heart_ml. */
static void size_heart(thorax_model *m, double heart_ml, const double scale[3])
{
    double base_ml = 4.0 / 3.0 * M_PI * HEART_SEMI_LONG_MM * HEART_SEMI_2_MM * HEART_SEMI_3_MM /
                     1000.0;
    double f = cbrt(heart_ml / (base_ml * scale[0] * scale[1] * scale[2]));
    m->hs[0] = f * HEART_SEMI_LONG_MM;
    m->hs[1] = f * HEART_SEMI_2_MM;
    m->hs[2] = f * HEART_SEMI_3_MM;
}

/* Shape parameters from the shape stream (the deformation and then the trees draw after
 * them). */
/* Wall thicknesses are set in world mm here and converted once the scale is known. */
static void draw_shape(thorax_model *m, rsy_rng *r, const rsy_subject *s)
{
    m->female = s->sex == RSY_SEX_FEMALE;
    m->t_muscle =
        (m->female ? MUSCLE_FEMALE_MM : MUSCLE_MALE_MM) * rsy_rng_uniform_range(r, 0.85, 1.15);
    double bs = rsy_rng_uniform_range(r, 0.7, 1.3);
    m->breast_scale = m->female ? bs : 0.0;
    m->aorta_factor = (1.0 + AORTA_AGE_SLOPE_PER_YEAR * (s->age_years - AORTA_AGE_REF_YEARS)) *
                      rsy_rng_uniform_range(r, 0.92, 1.08);
    double jitter[3];
    for (int i = 0; i < 3; i++)
        jitter[i] = rsy_rng_gaussian(r, 0.06);
    heart_axes(m->hu, jitter);
    m->hc[0] = HEART_CX_MM + rsy_rng_uniform_range(r, -5.0, 5.0);
    m->hc[1] = HEART_CY_MM + rsy_rng_uniform_range(r, -4.0, 4.0);
    m->hc[2] = HEART_CZ_MM + rsy_rng_uniform_range(r, -5.0, 5.0);
}

void rsy__thorax_world_to_ref(const rsy_subject *subject, const double xyz_mm[3], double p[3])
{
    const double shift[3] = {RSY__THORAX_SHIFT_X_MM, RSY__THORAX_SHIFT_Y_MM,
                             RSY__THORAX_SHIFT_Z_MM};
    for (int a = 0; a < 3; a++) {
        double s = subject->size_scale * subject->axis_scale[a];
        p[a] = xyz_mm[a] / (s > 0.0 ? s : 1.0) + shift[a];
    }
}

void rsy__thorax_ref_to_world(const rsy_subject *subject, const double p[3], double xyz_mm[3])
{
    const double shift[3] = {RSY__THORAX_SHIFT_X_MM, RSY__THORAX_SHIFT_Y_MM,
                             RSY__THORAX_SHIFT_Z_MM};
    for (int a = 0; a < 3; a++) {
        double s = subject->size_scale * subject->axis_scale[a];
        xyz_mm[a] = (p[a] - shift[a]) * (s > 0.0 ? s : 1.0);
    }
}


static void thorax_measure(const rsy_volume *classes, rsy_subject *subject);

static rsy_status thorax_generate(const rsy_phantom_spec *spec, rsy_rng *subject_rng,
                                  rsy_rng *shape_rng, rsy_volume **classes_out,
                                  rsy_subject *subject_out)
{
    rsy_status rc = RSY_OK;
    rsy_volume *vol = NULL;
    rsy__deform *def = NULL;
    thorax_model *m = NULL;
    rsy_geometry geom;
    rsy_subject subj;

    if (classes_out != NULL)
        *classes_out = NULL;
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
    double lung_ml = 0.0, heart_ml = 0.0, fat_mm = 0.0;
    draw_subject(spec, subject_rng, &subj, &lung_ml, &heart_ml, &fat_mm);

    m = calloc(1, sizeof *m);
    if (m == NULL) {
        rc = RSY_ENOMEM;
        goto fail;
    }
    draw_shape(m, shape_rng, &subj);
    /* Size: the reference lung volume depends on the heart's reference size, which depends on
     * the scale; two fixed-point steps converge to well under 1%. */
    double axes = subj.axis_scale[0] * subj.axis_scale[1] * subj.axis_scale[2];
    double scale[3];
    subj.size_scale = 1.0;
    for (int it = 0; it < 3; it++) {
        for (int a = 0; a < 3; a++)
            scale[a] = subj.size_scale * subj.axis_scale[a];
        size_heart(m, heart_ml, scale);
        double ref_ml = reference_lung_mm3(m) / 1000.0;
        if (!(ref_ml > 0.0)) {
            rsy_log_error("phantom: empty reference lungs");
            rc = RSY_ENUMERIC;
            goto fail;
        }
        subj.size_scale = cbrt(lung_ml / (ref_ml * axes));
    }
    double mean_scale = subj.size_scale * cbrt(axes);
    for (int a = 0; a < 3; a++) {
        scale[a] = subj.size_scale * subj.axis_scale[a];
        m->inv_scale[a] = 1.0 / scale[a];
    }
    size_heart(m, heart_ml, scale);
    m->t_skin = SKIN_MM / mean_scale;
    m->t_fat = fat_mm / mean_scale;
    m->t_muscle /= mean_scale;

    double lo[3], hi[3];
    rsy__geometry_world_bounds(&geom, lo, hi);
    rc = rsy__deform_create(&def, lo, hi, spec->deformation_mm, spec->deformation_scale_mm,
                            shape_rng);
    if (rc != RSY_OK)
        goto fail;
    subj.deformation_mm = def->rms_mm;
    /* The trees draw last, so their detail does not change the deformation. */
    rc = rsy__thorax_build_tubes(m, shape_rng);
    if (rc != RSY_OK)
        goto fail;
    double r_skip_mm = INFINITY; /* radius of a vessel SUBVOXEL_FRACTION voxels across */
    for (int a = 0; a < 3; a++)
        r_skip_mm =
            fmin(r_skip_mm, 0.5 * SUBVOXEL_FRACTION * spec->spacing_mm[a] * m->inv_scale[a]);
    rc = rsy__thorax_build_grid(m, r_skip_mm);
    if (rc != RSY_OK)
        goto fail;

    rc = rsy_volume_create(&vol, &geom, RSY_DTYPE_UINT16);
    if (rc != RSY_OK)
        goto fail;
    const double shift[3] = {RSY__THORAX_SHIFT_X_MM, RSY__THORAX_SHIFT_Y_MM,
                             RSY__THORAX_SHIFT_Z_MM};
    uint16_t *lab = vol->data;
    size_t idx = 0;
    for (int64_t k = 0; k < geom.dims[2]; k++)
        for (int64_t j = 0; j < geom.dims[1]; j++)
            for (int64_t i = 0; i < geom.dims[0]; i++, idx++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, w[3], y[3], p[3];
                rsy_geometry_voxel_to_world(&geom, ijk, w);
                rsy__deform_apply(def, w, y);
                for (int a = 0; a < 3; a++)
                    p[a] = y[a] * m->inv_scale[a] + shift[a];
                lab[idx] = classify(m, p);
            }

    thorax_measure(vol, &subj);
    rsy__deform_destroy(def);
    free(m->tubes);
    free(m->cell_start);
    free(m->cell_items);
    free(m);
    *subject_out = subj;
    *classes_out = vol;
    return RSY_OK;
fail:
    rsy_volume_destroy(vol);
    rsy__deform_destroy(def);
    if (m != NULL) {
        free(m->tubes);
        free(m->cell_start);
        free(m->cell_items);
    }
    free(m);
    if (rc == RSY_ENOMEM)
        rsy_log_error("phantom: out of memory");
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Measuring and naming                                                                        */
/* ---------------------------------------------------------------------------------------- */

/*
 * Organ volumes (mL) on a class map: lungs_ml (parenchyma + intrapulmonary vessels, both
 * lungs; airways excluded), lung_right_ml and lung_left_ml (split at world x = 0, the
 * midline), airways_ml (lumen), heart_ml (myocardium plus the blood inside the ellipsoid that
 * bounds the myocardium along the nominal heart axes, so the aorta and pulmonary trunk do not
 * count), liver_ml and spleen_ml (the parts inside the field of view). Lesion compartments
 * (ids >= the class count) are not attributed to an organ.
 */
static void thorax_measure(const rsy_volume *classes, rsy_subject *subject)
{
    if (subject == NULL)
        return;
    subject->n_organs = 0;
    subject->intracranial_ml = subject->brain_ml = subject->ventricles_ml = 0.0;
    if (classes == NULL || classes->data == NULL ||
        (classes->dtype != RSY_DTYPE_UINT16 && classes->dtype != RSY_DTYPE_UINT8)) {
        rsy_log_error("phantom measure: class map must be uint8 or uint16");
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
    double u[3][3];
    const double zero[3] = {0.0, 0.0, 0.0};
    heart_axes(u, zero);
    double n_lung[2] = {0.0, 0.0}, n_air = 0.0, n_myo = 0.0, n_liver = 0.0, n_spleen = 0.0;
    double centre[3] = {0.0, 0.0, 0.0}, ext[3] = {0.0, 0.0, 0.0}, n_heart_blood = 0.0;
    for (int pass = 0; pass < 3; pass++) {
        size_t idx = 0;
        for (int64_t k = 0; k < g->dims[2]; k++)
            for (int64_t j = 0; j < g->dims[1]; j++)
                for (int64_t i = 0; i < g->dims[0]; i++, idx++) {
                    unsigned c = l16 ? l16[idx] : l8[idx];
                    if (pass > 0 && c != RSY__THORAX_MYOCARDIUM && c != RSY__THORAX_BLOOD)
                        continue;
                    double ijk[3] = {(double)i, (double)j, (double)k}, w[3];
                    rsy_geometry_voxel_to_world(g, ijk, w);
                    if (pass == 0) {
                        if (c == RSY__THORAX_LUNG || c == RSY__THORAX_PULMONARY_VESSEL)
                            n_lung[w[0] > 0.0 ? 0 : 1] += 1.0;
                        else if (c == RSY__THORAX_AIRWAY)
                            n_air += 1.0;
                        else if (c == RSY__THORAX_LIVER)
                            n_liver += 1.0;
                        else if (c == RSY__THORAX_SPLEEN)
                            n_spleen += 1.0;
                        else if (c == RSY__THORAX_MYOCARDIUM) {
                            n_myo += 1.0;
                            for (int a = 0; a < 3; a++)
                                centre[a] += w[a];
                        }
                        continue;
                    }
                    double d[3] = {w[0] - centre[0], w[1] - centre[1], w[2] - centre[2]};
                    if (pass == 1 && c == RSY__THORAX_MYOCARDIUM) {
                        for (int a = 0; a < 3; a++)
                            ext[a] = fmax(ext[a], fabs(dot3(d, u[a])));
                    } else if (pass == 2 && c == RSY__THORAX_BLOOD) {
                        double rho2 = 0.0;
                        for (int a = 0; a < 3; a++) {
                            double qa = dot3(d, u[a]) / ext[a];
                            rho2 += qa * qa;
                        }
                        if (rho2 < 1.0)
                            n_heart_blood += 1.0;
                    }
                }
        if (pass == 0) {
            if (n_myo == 0.0)
                break;
            for (int a = 0; a < 3; a++)
                centre[a] /= n_myo;
        }
        if (pass == 1 && (ext[0] <= 0.0 || ext[1] <= 0.0 || ext[2] <= 0.0))
            break;
    }
    rsy__subject_add_organ(subject, "lungs_ml", (n_lung[0] + n_lung[1]) * vox_ml);
    rsy__subject_add_organ(subject, "lung_right_ml", n_lung[0] * vox_ml);
    rsy__subject_add_organ(subject, "lung_left_ml", n_lung[1] * vox_ml);
    rsy__subject_add_organ(subject, "airways_ml", n_air * vox_ml);
    rsy__subject_add_organ(subject, "heart_ml", (n_myo + n_heart_blood) * vox_ml);
    rsy__subject_add_organ(subject, "liver_ml", n_liver * vox_ml);
    rsy__subject_add_organ(subject, "spleen_ml", n_spleen * vox_ml);
}

/* Lobe of a lung point (reference frame) of lung @p side (1 right, 2 left). */
static const char *lobe_of(const double p[3], int side)
{
    static const char *const names[2][3] = {
        {"right lower lobe", "right upper lobe", "right middle lobe"},
        {"left lower lobe", "left upper lobe", "lingula of the left upper lobe"}};
    return names[side == 1 ? 0 : 1][rsy__thorax_lobe(p)];
}

static void thorax_describe(const rsy_subject *subject, const double xyz_mm[3], char *buf,
                            size_t n)
{
    if (buf == NULL || n == 0)
        return;
    buf[0] = '\0';
    if (subject == NULL || xyz_mm == NULL) {
        snprintf(buf, n, "unknown location");
        return;
    }
    thorax_model m;
    nominal_model(&m);
    double p[3];
    rsy__thorax_world_to_ref(subject, xyz_mm, p);
    double x = p[0], y = p[1], z = p[2], ax = fabs(x);
    const char *side = ax < 5.0 ? "midline" : (x > 0.0 ? "right" : "left");
    double dcav = cavity_distance(x, y, body_cavity_factor(z));
    double phi = atan2(ax, CAV_CY_MM - y);
    double dy = y - CANAL_Y_MM;
    if (ax < 40.0 && dy > -45.0 && y < CANAL_Y_MM + 45.0 && z < Z_T1_MM + 15.0) {
        double rc = sqrt(x * x + dy * dy);
        int k = vertebra_level(z);
        char level[8];
        if (k <= 12)
            snprintf(level, sizeof level, "T%d", k);
        else
            snprintf(level, sizeof level, "L%d", k - 12);
        if (rc < CANAL_R_MM) {
            snprintf(buf, n, "spinal canal at %s", level);
            return;
        }
        if (spine_class(p) != RSY__THORAX_BACKGROUND) {
            snprintf(buf, n, "thoracic spine (%s)", level);
            return;
        }
    }
    if (dcav >= 0.0) {
        const char *part = phi > 2.3 ? "anterior" : (phi < 0.9 ? "posterior" : "lateral");
        if (phi > 2.3 || phi < 0.9)
            snprintf(buf, n, "%s chest wall", part);
        else
            snprintf(buf, n, "%s %s chest wall", side, part);
        return;
    }
    if (z < diaphragm_z(x, y)) {
        snprintf(buf, n, "%s upper abdomen", x > -20.0 ? "right" : "left");
        return;
    }
    int ls = rsy__thorax_lung_side(&m, p);
    if (ls != 0) {
        const double hil[2][3] = {
            {RSY__THORAX_HILUM_R_X_MM, RSY__THORAX_HILUM_R_Y_MM, RSY__THORAX_HILUM_R_Z_MM},
            {RSY__THORAX_HILUM_L_X_MM, RSY__THORAX_HILUM_L_Y_MM, RSY__THORAX_HILUM_L_Z_MM}};
        const double *h = hil[ls - 1];
        double dh[3] = {x - h[0], y - h[1], z - h[2]};
        if (dot3(dh, dh) < 25.0 * 25.0) {
            snprintf(buf, n, "%s hilum", ls == 1 ? "right" : "left");
            return;
        }
        const char *lobe = lobe_of(p, ls);
        double dl = cavity_distance(x, y, lung_cavity_factor(z));
        if (dl > -SUBPLEURAL_MM || z - diaphragm_z(x, y) < SUBPLEURAL_MM)
            snprintf(buf, n, "subpleural %s", lobe);
        else
            snprintf(buf, n, "%s", lobe);
        return;
    }
    double q[3];
    if (heart_rho(&m, p, q) < 1.0) {
        snprintf(buf, n, "heart");
        return;
    }
    snprintf(buf, n, "%s mediastinum",
             y > 30.0 ? "anterior" : (y < -15.0 ? "posterior" : "middle"));
}

/* Indexed by rsy__thorax_class; names match configs/tissues/. */
static const char *const thorax_class_names[RSY__THORAX_N_CLASSES] = {
    "background",       "skin",       "fat",           "muscle",
    "lung",             "airway",     "airway_wall",   "pulmonary_vessel",
    "myocardium",       "blood",      "cortical_bone", "cancellous_bone",
    "spinal_canal",     "cartilage",  "oesophagus",    "liver",
    "spleen",           "stomach"};

const rsy__phantom_family rsy__phantom_family_thorax = {
    "thorax",       RSY__THORAX_N_CLASSES, thorax_class_names, thorax_generate,
    thorax_measure, thorax_describe};
