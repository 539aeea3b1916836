/*
 * shape.c: the lesion surface.
 *
 * A lesion is a lobulated ellipsoid (DESIGN.md section 5; domain.md 4.2 "Spherical-harmonic
 * lobulation", [S101]). In the lesion frame, with u = diag(1/a, 1/b, 1/c) R^T (x - centre)
 * the unit-sphere coordinates of a world point x, the surface is
 *     |u| = s(u/|u|),   s(n) = max(0.5, 1 + sum_{l=2..lmax} sum_m a_lm Y_lm(n)),
 * so in world terms R(theta, phi) = s(theta, phi) times the ellipsoid radius in that direction.
 * The clamp at 0.5 keeps the surface star-shaped around the centre and never thinner than half
 * the ellipsoid.
 *
 * Ellipsoid (volume-preserving elongation). The drawn diameter D gives R0 = D/2 and the drawn
 * elongation e >= 1 gives a prolate spheroid
 *     a = R0 e^(2/3),  b = c = R0 e^(-1/3),
 * so the longest/shortest axis ratio a/c is e and the volume 4/3 pi a b c equals that of the
 * sphere of diameter D. The lobulation changes the volume by a factor of about 1 + 3 A^2 for
 * an RMS amplitude A (4 % at A = 0.12); the recorded diameter is the one before shape factors.
 *
 * Orientation: a uniformly distributed rotation from a uniform random unit quaternion
 * (K. Shoemake, "Uniform random rotations", Graphics Gems III, 1992, pp. 124-132).
 *
 * Lobulation: a_lm ~ N(0, sigma_l^2), sigma_l = k l^-beta with beta = 2.5 (domain.md 4.2,
 * beta ~ 2-3, [S101]; GK), and k chosen so the expected mean square of sum a_lm Y_lm over the
 * sphere, sum_l (2l+1) sigma_l^2 / (4 pi), is the prior's lobulation_amplitude squared
 * (orthonormal Y_lm: the sphere average of Y_lm^2 is 1/(4 pi)).
 *
 * Coefficient storage: rsy_lesion.sh[l^2 + l + m]; entries 0..3 (degrees 0 and 1) are always
 * 0 and n_sh is (lmax + 1)^2, or 0 without lobulation.
 */
#include <math.h>
#include <string.h>

#include "priors_internal.h"

/* Normalisation constants of the real orthonormal spherical harmonics in Cartesian form,
 * e.g. 0.5 sqrt(15/pi) for Y_2,-2 = c xy (standard table, e.g. R. Green, "Spherical Harmonic
 * Lighting: The Gritty Details", GDC 2003, Appendix; checked against GSL's
 * gsl_sf_legendre_sphPlm in tests/test_priors.c). */
#define SH_C00 0.28209479177387814   /* 1/2 sqrt(1/pi) */
#define SH_C1 0.4886025119029199     /* sqrt(3/(4 pi)) */
#define SH_C2A 1.0925484305920792    /* 1/2 sqrt(15/pi) */
#define SH_C20 0.31539156525252005   /* 1/4 sqrt(5/pi) */
#define SH_C22 0.5462742152960396    /* 1/4 sqrt(15/pi) */
#define SH_C33 0.5900435899266435    /* 1/4 sqrt(35/(2 pi)) */
#define SH_C32A 2.890611442640554    /* 1/2 sqrt(105/pi) */
#define SH_C31 0.4570457994644658    /* 1/4 sqrt(21/(2 pi)) */
#define SH_C30 0.3731763325901154    /* 1/4 sqrt(7/pi) */
#define SH_C32B 1.445305721320277    /* 1/4 sqrt(105/pi) */
#define SH_C44A 2.5033429417967046   /* 3/4 sqrt(35/pi) */
#define SH_C43 1.7701307697799304    /* 3/4 sqrt(35/(2 pi)) */
#define SH_C42A 0.9461746957575601   /* 3/4 sqrt(5/pi) */
#define SH_C41 0.6690465435572892    /* 3/4 sqrt(5/(2 pi)) */
#define SH_C40 0.10578554691520431   /* 3/16 sqrt(1/pi) */
#define SH_C42B 0.47308734787878004  /* 3/8 sqrt(5/pi) */
#define SH_C44B 0.6258357354491761   /* 3/16 sqrt(35/pi) */

#define FOUR_PI (4.0 * M_PI)

void rsy__priors_sh_basis(const double n[3], double y[RSY_SH_MAX_COEFFS])
{
    const double x = n[0], yy = n[1], z = n[2];
    const double x2 = x * x, y2 = yy * yy, z2 = z * z;

    y[0] = SH_C00;
    y[1] = SH_C1 * yy;
    y[2] = SH_C1 * z;
    y[3] = SH_C1 * x;

    y[4] = SH_C2A * x * yy;
    y[5] = SH_C2A * yy * z;
    y[6] = SH_C20 * (3.0 * z2 - 1.0);
    y[7] = SH_C2A * x * z;
    y[8] = SH_C22 * (x2 - y2);

    y[9] = SH_C33 * yy * (3.0 * x2 - y2);
    y[10] = SH_C32A * x * yy * z;
    y[11] = SH_C31 * yy * (5.0 * z2 - 1.0);
    y[12] = SH_C30 * z * (5.0 * z2 - 3.0);
    y[13] = SH_C31 * x * (5.0 * z2 - 1.0);
    y[14] = SH_C32B * (x2 - y2) * z;
    y[15] = SH_C33 * x * (x2 - 3.0 * y2);

    y[16] = SH_C44A * x * yy * (x2 - y2);
    y[17] = SH_C43 * yy * (3.0 * x2 - y2) * z;
    y[18] = SH_C42A * x * yy * (7.0 * z2 - 1.0);
    y[19] = SH_C41 * yy * z * (7.0 * z2 - 3.0);
    y[20] = SH_C40 * (35.0 * z2 * z2 - 30.0 * z2 + 3.0);
    y[21] = SH_C41 * x * z * (7.0 * z2 - 3.0);
    y[22] = SH_C42B * (x2 - y2) * (7.0 * z2 - 1.0);
    y[23] = SH_C43 * x * (x2 - 3.0 * y2) * z;
    y[24] = SH_C44B * (x2 * (x2 - 3.0 * y2) - y2 * (3.0 * x2 - y2));
}

double rsy__priors_sh_sigma(int lmax, double amplitude, int l)
{
    if (lmax > RSY__SH_LMAX)
        lmax = RSY__SH_LMAX;
    if (lmax < 2 || l < 2 || l > lmax || !(amplitude > 0.0))
        return 0.0;
    double sum = 0.0; /* sum_l (2l+1) l^(-2 beta) */
    for (int k = 2; k <= lmax; k++)
        sum += (2.0 * k + 1.0) * pow((double)k, -2.0 * RSY__SH_BETA);
    const double scale = amplitude * sqrt(FOUR_PI / sum);
    return scale * pow((double)l, -RSY__SH_BETA);
}

double rsy__priors_sh_scale(const rsy_lesion *l, const double n[3])
{
    if (l->n_sh <= 4)
        return 1.0;
    double y[RSY_SH_MAX_COEFFS];
    rsy__priors_sh_basis(n, y);
    double s = 1.0;
    for (int i = 4; i < l->n_sh; i++)
        s += l->sh[i] * y[i];
    return s < RSY__SH_SCALE_MIN ? RSY__SH_SCALE_MIN : s;
}

double rsy__priors_sh_scale_bound(const rsy_lesion *l)
{
    double bound = 1.0;
    for (int deg = 2; (deg + 1) * (deg + 1) <= l->n_sh; deg++) {
        double norm2 = 0.0;
        for (int m = -deg; m <= deg; m++) {
            const double a = l->sh[deg * deg + deg + m];
            norm2 += a * a;
        }
        bound += sqrt(norm2) * sqrt((2.0 * deg + 1.0) / FOUR_PI);
    }
    return bound;
}

double rsy__priors_surface_bound_mm(const rsy_lesion *l)
{
    const double *s = l->semi_axes_mm;
    const double amax = fmax(s[0], fmax(s[1], s[2]));
    return amax * rsy__priors_sh_scale_bound(l);
}

double rsy__priors_margin_max_mm(const rsy_prior *p, const rsy_lesion *l)
{
    double m = 0.0;
    for (int c = 0; c < p->n_compartments; c++)
        if (p->compartments[c].extent_kind == RSY_EXTENT_MARGIN_MM && l->extent[c] > m)
            m = l->extent[c];
    return m;
}

/* Rotation matrix of the unit quaternion (w, x, y, z); columns are the images of the axes. */
static void quaternion_to_matrix(double w, double x, double y, double z, double r[3][3])
{
    r[0][0] = 1.0 - 2.0 * (y * y + z * z);
    r[0][1] = 2.0 * (x * y - w * z);
    r[0][2] = 2.0 * (x * z + w * y);
    r[1][0] = 2.0 * (x * y + w * z);
    r[1][1] = 1.0 - 2.0 * (x * x + z * z);
    r[1][2] = 2.0 * (y * z - w * x);
    r[2][0] = 2.0 * (x * z - w * y);
    r[2][1] = 2.0 * (y * z + w * x);
    r[2][2] = 1.0 - 2.0 * (x * x + y * y);
}

void rsy__priors_shape_draw(const rsy_prior *p, double diameter_mm, double elongation,
                            rsy_rng *rng, rsy_lesion *l)
{
    const double r0 = 0.5 * diameter_mm;
    const double e = elongation >= 1.0 ? elongation : 1.0;
    l->diameter_mm = diameter_mm;
    l->semi_axes_mm[0] = r0 * pow(e, 2.0 / 3.0);
    l->semi_axes_mm[1] = r0 * pow(e, -1.0 / 3.0);
    l->semi_axes_mm[2] = l->semi_axes_mm[1];

    /* Shoemake 1992: a uniform point on S^3 from three uniforms. */
    const double u1 = rsy_rng_uniform(rng);
    const double u2 = rsy_rng_uniform(rng);
    const double u3 = rsy_rng_uniform(rng);
    double qx = sqrt(1.0 - u1) * sin(2.0 * M_PI * u2);
    double qy = sqrt(1.0 - u1) * cos(2.0 * M_PI * u2);
    double qz = sqrt(u1) * sin(2.0 * M_PI * u3);
    double qw = sqrt(u1) * cos(2.0 * M_PI * u3);
    const double qn = sqrt(qx * qx + qy * qy + qz * qz + qw * qw);
    quaternion_to_matrix(qw / qn, qx / qn, qy / qn, qz / qn, l->rotation);

    memset(l->sh, 0, sizeof l->sh);
    l->n_sh = 0;
    int lmax = p->lobulation_lmax > RSY__SH_LMAX ? RSY__SH_LMAX : p->lobulation_lmax;
    if (lmax < 2 || !(p->lobulation_amplitude > 0.0))
        return;
    l->n_sh = (lmax + 1) * (lmax + 1);
    for (int deg = 2; deg <= lmax; deg++) {
        const double sigma = rsy__priors_sh_sigma(lmax, p->lobulation_amplitude, deg);
        for (int m = -deg; m <= deg; m++)
            l->sh[deg * deg + deg + m] = rsy_rng_gaussian(rng, sigma);
    }
}

void rsy__priors_unit_frame(const rsy_lesion *l, double m[3][3])
{
    /* Row k of R^T is column k of R (axis k in world coordinates). */
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++)
            m[k][j] = l->rotation[j][k] / l->semi_axes_mm[k];
}

/*
 * Along the ray from the centre through a point at world distance d from it, the unit-frame
 * radius rho grows linearly with d, and the surface is met at rho = s. So the surface point on
 * that ray lies at world distance L = s d / rho and the point is d - L = d (1 - s / rho) outside
 * the surface. This ray distance equals the Euclidean distance to the surface where the
 * surface is normal to the ray (a sphere, or the tips of the axes of an ellipsoid) and
 * over-estimates it elsewhere, so margin shells are somewhat thinner, measured along the
 * surface normal, on the flanks of elongated or lobulated lesions. That is the documented
 * approximation of rsy_lesion_radial().
 */
double rsy__priors_radial_unit(const rsy_lesion *l, const double u[3], double d_mm,
                               double *dist_out_mm)
{
    const double rho = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    if (!(rho > 0.0)) {
        /* The centre: any direction serves; take the lesion's third axis. */
        const double n[3] = {0.0, 0.0, 1.0};
        if (dist_out_mm)
            *dist_out_mm = -rsy__priors_sh_scale(l, n) * l->semi_axes_mm[2];
        return 0.0;
    }
    const double n[3] = {u[0] / rho, u[1] / rho, u[2] / rho};
    const double s = rsy__priors_sh_scale(l, n);
    if (dist_out_mm)
        *dist_out_mm = d_mm * (1.0 - s / rho);
    return rho / s;
}

double rsy_lesion_radial(const rsy_lesion *l, const double xyz_mm[3], double *dist_out_mm)
{
    double m[3][3], d[3], u[3];
    rsy__priors_unit_frame(l, m);
    for (int k = 0; k < 3; k++)
        d[k] = xyz_mm[k] - l->center_mm[k];
    for (int k = 0; k < 3; k++)
        u[k] = m[k][0] * d[0] + m[k][1] * d[1] + m[k][2] * d[2];
    const double d_mm = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    return rsy__priors_radial_unit(l, u, d_mm, dist_out_mm);
}
