/*
 * measure.c: volumes measured on a head class map, and anatomical names of positions for
 * findings text.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "phantoms_internal.h"

/* Voxels lower than this (reference frame, mm) lie below the foramen magnum, in the spinal
 * canal: their CSF and cord are not intracranial. The margin covers the deformation. */
#define CANAL_CUTOFF_MARGIN_MM 3.0

static int is_brain(unsigned c)
{
    return c == RSY_HEAD_GREY_MATTER || c == RSY_HEAD_WHITE_MATTER || c == RSY_HEAD_DEEP_GREY ||
           c == RSY_HEAD_CEREBELLUM || c == RSY_HEAD_BRAINSTEM || c >= RSY_HEAD_N_CLASSES;
}

void rsy__head_measure(const rsy_volume *classes, rsy_subject *subject)
{
    if (subject == NULL)
        return;
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
    double vox_mm3 = fabs(A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) -
                          A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                          A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]));
    /* The foramen magnum cut needs the subject's landmarks; without them (semi-axes 0)
     * every intracranial-class voxel counts. */
    int have_landmarks = subject->brain_semi_axes_mm[2] > 0.0;
    double cut_ref = RSY__HEAD_FORAMEN_Z_MM - CANAL_CUTOFF_MARGIN_MM;
    const uint16_t *l16 = classes->dtype == RSY_DTYPE_UINT16 ? classes->data : NULL;
    const uint8_t *l8 = classes->dtype == RSY_DTYPE_UINT8 ? classes->data : NULL;
    size_t n_icv = 0, n_brain = 0, n_vent = 0, idx = 0;
    for (int64_t k = 0; k < g->dims[2]; k++)
        for (int64_t j = 0; j < g->dims[1]; j++)
            for (int64_t i = 0; i < g->dims[0]; i++, idx++) {
                unsigned c = l16 ? l16[idx] : l8[idx];
                if (c == RSY_HEAD_BACKGROUND || c == RSY_HEAD_SCALP || c == RSY_HEAD_SKULL)
                    continue;
                if (have_landmarks) {
                    double ijk[3] = {(double)i, (double)j, (double)k}, w[3], p[3];
                    rsy_geometry_voxel_to_world(g, ijk, w);
                    rsy__head_world_to_ref(subject, w, p);
                    if (p[2] < cut_ref)
                        continue;
                }
                n_icv++;
                if (c == RSY_HEAD_VENTRICLES)
                    n_vent++;
                else if (is_brain(c))
                    n_brain++;
            }
    subject->intracranial_ml = (double)n_icv * vox_mm3 / 1000.0;
    subject->brain_ml = (double)n_brain * vox_mm3 / 1000.0;
    subject->ventricles_ml = (double)n_vent * vox_mm3 / 1000.0;
}

/* Lobe of a cerebral point (reference frame). The central sulcus is taken at y = 0 near the
 * vertex, sloping forward lower down; the parieto-occipital boundary at y = -50; the temporal
 * lobe lies below the Sylvian fissure lateral to the insula (GK). */
static const char *lobe_of(const double p[3])
{
    double x = fabs(p[0]), y = p[1], z = p[2];
    if (z < rsy__head_sylvian_z(y) + 4.0 && x > 28.0 && y > -50.0 && y < 35.0)
        return "temporal lobe";
    if (y < -50.0)
        return "occipital lobe";
    if (y > -0.15 * z)
        return "frontal lobe";
    return "parietal lobe";
}

void rsy__head_describe(const rsy_subject *subject, const double xyz_mm[3], char *buf, size_t n)
{
    if (buf == NULL || n == 0)
        return;
    buf[0] = '\0';
    if (subject == NULL || xyz_mm == NULL) {
        snprintf(buf, n, "unknown location");
        return;
    }
    double p[3];
    rsy__head_world_to_ref(subject, xyz_mm, p);
    double dx_mm = xyz_mm[0] - subject->brain_center_mm[0];
    /* Within 3 mm of the midline a lesion is called midline (GK). */
    const char *side = fabs(dx_mm) < 3.0 ? "midline" : (dx_mm > 0.0 ? "right" : "left");
    double x = p[0], y = p[1], z = p[2], ax = fabs(x);

    double yb, rb;
    if (rsy__head_brainstem_at(z, &yb, &rb) && z < -4.0) {
        double e2 = x * x + (y - yb) * (y - yb);
        if (e2 < (rb + 3.0) * (rb + 3.0)) {
            const char *part = z > -12.0 ? "midbrain" : (z > -40.0 ? "pons" : "medulla");
            snprintf(buf, n, "%s", part);
            return;
        }
    }
    double zt = rsy__head_tentorium_z(x, y);
    double pq[3] = {x / RSY__HEAD_PF_A_MM, (y - RSY__HEAD_PF_CY_MM) / RSY__HEAD_PF_B_MM,
                    (z - RSY__HEAD_PF_CZ_MM) / RSY__HEAD_PF_C_MM};
    if (z < zt && pq[0] * pq[0] + pq[1] * pq[1] + pq[2] * pq[2] < 1.2) {
        if (ax < 8.0)
            snprintf(buf, n, "cerebellar vermis");
        else
            snprintf(buf, n, "%s cerebellar hemisphere", side);
        return;
    }
    double dy_cc = y - RSY__HEAD_CC_MID_MM;
    double z_cc = RSY__HEAD_CC_TOP_MM - RSY__HEAD_CC_CURV_PER_MM * dy_cc * dy_cc;
    if (ax < 10.0 && y > RSY__HEAD_CC_Y_MIN_MM && y < RSY__HEAD_CC_Y_MAX_MM && z < z_cc + 1.0 &&
        z > z_cc - 9.0) {
        snprintf(buf, n, "corpus callosum");
        return;
    }
    /* Deep grey region (caudate, lentiform nucleus, thalamus), GK. */
    double th[3] = {(ax - 9.0) / 9.0, (y + 14.0) / 16.0, (z - 5.0) / 11.0};
    if (th[0] * th[0] + th[1] * th[1] + th[2] * th[2] < 1.0) {
        snprintf(buf, n, "%s thalamus", side);
        return;
    }
    if (ax < 32.0 && ax > 8.0 && y > -8.0 && y < 30.0 && z > -12.0 && z < 22.0) {
        snprintf(buf, n, "%s basal ganglia", side);
        return;
    }
    double e[3] = {x / RSY__HEAD_ENV_A_MM, y / RSY__HEAD_ENV_B_MM,
                   z / (z >= 0.0 ? RSY__HEAD_ENV_C_MM : RSY__HEAD_ENV_C_INF_MM)};
    const char *lobe = lobe_of(p);
    if (e[0] * e[0] + e[1] * e[1] + e[2] * e[2] > 1.0)
        snprintf(buf, n, "%s extra-axial space over the %s", side, lobe);
    else
        snprintf(buf, n, "%s %s", side, lobe);
}
