/*
 * shape.c: the lesion surface.
 *
 * A lesion is a lobulated ellipsoid (DESIGN.md section 5; domain.md 4.2 "Spherical-harmonic
 * lobulation", [S101]). In the lesion frame, with u = diag(1/a, 1/b, 1/c) R^T (x - centre)
 * the unit-sphere coordinates of a world point x, the surface is
 *     |u| = s(u/|u|),   s(n) = max(0.5, 1 + sum_{l=2..lmax} sum_m a_lm Y_lm(n) + f(n)),
 * so in world terms R(theta, phi) = s(theta, phi) times the ellipsoid radius in that direction;
 * f is the fine roughness field (below). The clamp at 0.5 keeps the surface star-shaped around
 * the centre and never thinner than half the ellipsoid.
 *
 * Ellipsoid (volume-preserving elongation e = a/c >= 1 and flatness f = b/c in [1, e]). The
 * drawn diameter D gives R0 = D/2 and
 *     c = R0 (e f)^(-1/3),  b = f c,  a = e c,
 * so a b c = R0^3: the volume 4/3 pi a b c equals that of the sphere of diameter D. Flatness 1
 * is the prolate spheroid a = R0 e^(2/3), b = c = R0 e^(-1/3). The lobulation changes the
 * volume by a factor of about 1 + 3 A^2 for an RMS amplitude A (4 % at A = 0.12); the recorded
 * diameter is the one before shape factors.
 *
 * Orientation: a uniformly distributed rotation from a uniform random unit quaternion
 * (K. Shoemake, "Uniform random rotations", Graphics Gems III, 1992, pp. 124-132). The
 * placement rules radial/tangential later turn it (placement.c, rsy__priors_orient).
 *
 * Lobulation: a_lm ~ N(0, sigma_l^2), sigma_l = k l^-beta with beta = 2.5 (domain.md 4.2,
 * beta ~ 2-3, [S101]; GK), and k chosen so the expected mean square of sum a_lm Y_lm over the
 * sphere, sum_l (2l+1) sigma_l^2 / (4 pi), is the prior's lobulation_amplitude squared
 * (orthonormal Y_lm: the sphere average of Y_lm^2 is 1/(4 pi)).
 *
 * Fine roughness: a Gaussian random field f on the sphere with RMS A (roughness_amplitude) and
 * a Gaussian correlation of length ell (roughness_scale_mm) on the sphere of radius R0: the
 * covariance A^2 exp(-|R0 n - R0 n'|^2 / (2 ell^2)) = A^2 exp(-kappa (1 - n.n')),
 * kappa = R0^2/ell^2, has the Legendre expansion exp(kappa t) = sum (2l+1) i_l(kappa) P_l(t)
 * (modified spherical Bessel functions; Abramowitz & Stegun 10.2.36), so by the addition
 * theorem the field is sum c_lm Y_lm with c_lm ~ N(0, C_l), C_l proportional to
 * e^-kappa i_l(kappa). Degrees 0 and 1 (a change of size and a shift) are left out and the
 * C_l renormalised so the expected mean square over the sphere stays A^2; degrees stop at
 * L = min(64, 3 sqrt(kappa) + 2), which keeps all but ~1e-3 of the variance up to R0/ell = 21
 * (larger lesions lose the finest scales, the RMS is kept). The c_lm are drawn from a stream
 * seeded by the lesion's seed (rsy_seed_derive(seed, 1, RSY_STAGE_LESIONS)), so the field is a
 * deterministic function of the lesion record. On an elongated lesion the correlation length
 * scales with the local radius (the field lives on the unit-frame sphere).
 *
 * Evaluation (rsy__shape): without roughness, s(n) is evaluated exactly from the 21
 * closed-form harmonics. With roughness, the field is synthesised on a latitude-longitude grid
 * (3L+2 rows, 6L columns; per row one Legendre array and a sum over m) and s(n) is tabulated
 * on a cube map of N x N nodes per face, N = 1.6 L + 3 (~5 nodes per wavelength of degree L),
 * read by bilinear interpolation. The two interpolations smooth the finest scales (about 5 %
 * of the variance at R0/ell = 5), so the tabulated field is scaled to the realisation's own
 * mean square over the sphere (sum c_lm^2 / 4 pi, measured on 2048 directions). The table *is*
 * the surface: rasterisation, placement and rsy_lesion_radial() all read it, so they agree
 * exactly, and its largest node bounds s everywhere (bilinear interpolation never exceeds its
 * nodes).
 *
 * Lobes (shape.lobes = n > 1): the lesion is the union of n sub-surfaces, each the lesion's
 * surface (same harmonics and roughness) scaled by 0.6 exp(N(0, 0.15^2)) clamped to
 * [0.45, 0.75], turned by its own uniform rotation and centred at 0.4 diag(a, b, c) q_k in the
 * lesion frame, q_k evenly spread unit vectors (n = 2, 3: on a circle in the plane of the two
 * longest axes; n >= 4: a Fibonacci lattice). The lobe centres sit 0.4 R0 from the centre and
 * the lobes reach about 0.6 R0 beyond it, so the union spans about the drawn diameter, and
 * neighbouring lobes overlap (a clover leaf, popcorn). Engine's choice (GK). The radial
 * coordinate of the union is the minimum over the lobes of theirs, and so is the ray
 * distance: compartments are nested level sets of every lobe.
 *
 * Coefficient storage: rsy_lesion.sh[l^2 + l + m]; entries 0..3 (degrees 0 and 1) are always
 * 0 and n_sh is (lmax + 1)^2, or 0 without lobulation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_bessel.h>
#include <gsl/gsl_sf_legendre.h>

#include "priors_internal.h"

/* Normalisation constants of the real orthonormal spherical harmonics in Cartesian form,
 * e.g. 0.5 sqrt(15/pi) for Y_2,-2 = c xy (standard table, e.g. R. Green, "Spherical Harmonic
 * Lighting: The Gritty Details", GDC 2003, Appendix; checked against GSL's
 * gsl_sf_legendre_sphPlm in tests/test_priors.c). */
#define SH_C00 0.28209479177387814  /* 1/2 sqrt(1/pi) */
#define SH_C1 0.4886025119029199    /* sqrt(3/(4 pi)) */
#define SH_C2A 1.0925484305920792   /* 1/2 sqrt(15/pi) */
#define SH_C20 0.31539156525252005  /* 1/4 sqrt(5/pi) */
#define SH_C22 0.5462742152960396   /* 1/4 sqrt(15/pi) */
#define SH_C33 0.5900435899266435   /* 1/4 sqrt(35/(2 pi)) */
#define SH_C32A 2.890611442640554   /* 1/2 sqrt(105/pi) */
#define SH_C31 0.4570457994644658   /* 1/4 sqrt(21/(2 pi)) */
#define SH_C30 0.3731763325901154   /* 1/4 sqrt(7/pi) */
#define SH_C32B 1.445305721320277   /* 1/4 sqrt(105/pi) */
#define SH_C44A 2.5033429417967046  /* 3/4 sqrt(35/pi) */
#define SH_C43 1.7701307697799304   /* 3/4 sqrt(35/(2 pi)) */
#define SH_C42A 0.9461746957575601  /* 3/4 sqrt(5/pi) */
#define SH_C41 0.6690465435572892   /* 3/4 sqrt(5/(2 pi)) */
#define SH_C40 0.10578554691520431  /* 3/16 sqrt(1/pi) */
#define SH_C42B 0.47308734787878004 /* 3/8 sqrt(5/pi) */
#define SH_C44B 0.6258357354491761  /* 3/16 sqrt(35/pi) */

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

/* Shoemake 1992: a uniform rotation from three uniforms. */
static void uniform_rotation(double u1, double u2, double u3, double r[3][3])
{
    double qx = sqrt(1.0 - u1) * sin(2.0 * M_PI * u2);
    double qy = sqrt(1.0 - u1) * cos(2.0 * M_PI * u2);
    double qz = sqrt(u1) * sin(2.0 * M_PI * u3);
    double qw = sqrt(u1) * cos(2.0 * M_PI * u3);
    const double qn = sqrt(qx * qx + qy * qy + qz * qz + qw * qw);
    quaternion_to_matrix(qw / qn, qx / qn, qy / qn, qz / qn, r);
}

void rsy__priors_set_axes(rsy_lesion *l, double diameter_mm, double elongation, double flatness)
{
    const double r0 = 0.5 * diameter_mm;
    const double e = elongation >= 1.0 ? elongation : 1.0;
    const double f = flatness >= 1.0 ? (flatness <= e ? flatness : e) : 1.0;
    const double c = r0 * cbrt(1.0 / (e * f));
    l->diameter_mm = diameter_mm;
    l->semi_axes_mm[0] = e * c;
    l->semi_axes_mm[1] = f * c;
    l->semi_axes_mm[2] = c;
    if (f == 1.0) { /* the prolate closed form, bit-identical to the 0.1 engine */
        l->semi_axes_mm[0] = r0 * pow(e, 2.0 / 3.0);
        l->semi_axes_mm[1] = l->semi_axes_mm[2] = r0 * pow(e, -1.0 / 3.0);
    }
}

/* Evenly spread unit vectors: a circle in the (axis 0, axis 1) plane for n <= 3, else a
 * Fibonacci lattice (golden-angle spiral; Gonzalez, Math. Geosci. 42, 2010, pp. 49-64). */
static void spread_directions(int n, double q[][3])
{
    const double golden_angle = M_PI * (3.0 - sqrt(5.0));
    for (int k = 0; k < n; k++) {
        if (n <= 3) {
            const double a = 2.0 * M_PI * k / n;
            q[k][0] = cos(a);
            q[k][1] = sin(a);
            q[k][2] = 0.0;
        } else {
            const double z = 1.0 - (2.0 * k + 1.0) / n, rxy = sqrt(1.0 - z * z);
            q[k][0] = rxy * cos(golden_angle * k);
            q[k][1] = rxy * sin(golden_angle * k);
            q[k][2] = z;
        }
    }
}

void rsy__priors_shape_draw(const rsy_prior *p, double diameter_mm, double elongation,
                            double flatness, rsy_rng *rng, rsy_lesion *l)
{
    rsy__priors_set_axes(l, diameter_mm, elongation, flatness);
    const double u1 = rsy_rng_uniform(rng);
    const double u2 = rsy_rng_uniform(rng);
    const double u3 = rsy_rng_uniform(rng);
    uniform_rotation(u1, u2, u3, l->rotation);

    memset(l->sh, 0, sizeof l->sh);
    l->n_sh = 0;
    int lmax = p->lobulation_lmax > RSY__SH_LMAX ? RSY__SH_LMAX : p->lobulation_lmax;
    if (lmax >= 2 && p->lobulation_amplitude > 0.0) {
        l->n_sh = (lmax + 1) * (lmax + 1);
        for (int deg = 2; deg <= lmax; deg++) {
            const double sigma = rsy__priors_sh_sigma(lmax, p->lobulation_amplitude, deg);
            for (int m = -deg; m <= deg; m++)
                l->sh[deg * deg + deg + m] = rsy_rng_gaussian(rng, sigma);
        }
    }

    /* One seed per lesion, drawn whatever the prior, so the stream layout is fixed. */
    l->seed = rsy_rng_u64(rng);
    l->roughness_amplitude = p->roughness_amplitude > 0.0 ? p->roughness_amplitude : 0.0;
    l->roughness_scale_mm = p->roughness_scale_mm > 0.0 ? p->roughness_scale_mm : 2.0;

    const double lobes = floor(rsy_dist_sample(&p->lobes, rng) + 0.5);
    l->n_lobes = lobes >= 2.0 ? (lobes > RSY_MAX_LOBES ? RSY_MAX_LOBES : (int)lobes) : 1;
    if (l->n_lobes > 1) {
        double q[RSY_MAX_LOBES][3];
        spread_directions(l->n_lobes, q);
        for (int k = 0; k < l->n_lobes; k++) {
            const double v1 = rsy_rng_uniform(rng);
            const double v2 = rsy_rng_uniform(rng);
            const double v3 = rsy_rng_uniform(rng);
            uniform_rotation(v1, v2, v3, l->lobe_rotation[k]);
            const double g = rsy_rng_gaussian(rng, 0.15);
            l->lobe_scale[k] = fmin(0.75, fmax(0.45, 0.6 * exp(g)));
            for (int a = 0; a < 3; a++)
                l->lobe_offset_mm[k][a] = 0.4 * l->semi_axes_mm[a] * q[k][a];
        }
    }
}

void rsy__priors_orient(rsy_lesion *l, const double dir[3], int axis, double roll_u)
{
    /* Orthonormal frame (dir, e1, e2) with e1, e2 turned by the roll angle about dir. */
    double t[3] = {0.0, 0.0, 0.0};
    const double ax = fabs(dir[0]), ay = fabs(dir[1]), az = fabs(dir[2]);
    t[ax <= ay && ax <= az ? 0 : (ay <= az ? 1 : 2)] = 1.0;
    double e1[3] = {dir[1] * t[2] - dir[2] * t[1], dir[2] * t[0] - dir[0] * t[2],
                    dir[0] * t[1] - dir[1] * t[0]};
    const double n1 = sqrt(e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2]);
    for (int k = 0; k < 3; k++)
        e1[k] /= n1;
    const double e2[3] = {dir[1] * e1[2] - dir[2] * e1[1], dir[2] * e1[0] - dir[0] * e1[2],
                          dir[0] * e1[1] - dir[1] * e1[0]};
    const double ca = cos(2.0 * M_PI * roll_u), sa = sin(2.0 * M_PI * roll_u);
    double cols[3][3]; /* cols[axis] = dir, the next two the rolled e1, e2: right-handed */
    for (int k = 0; k < 3; k++) {
        cols[axis][k] = dir[k];
        cols[(axis + 1) % 3][k] = ca * e1[k] + sa * e2[k];
        cols[(axis + 2) % 3][k] = -sa * e1[k] + ca * e2[k];
    }
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            l->rotation[r][c] = cols[c][r];
}

/* ---------------------------------------------------------------------------------------- */
/* Fine roughness: synthesis on a latitude-longitude grid, tabulation on a cube map           */
/* ---------------------------------------------------------------------------------------- */

#define ROUGH_LMAX 64
#define ROUGH_CHECK_DIRS 2048

static int rough_degree(const rsy_lesion *l, double *kappa)
{
    const double r0 = cbrt(l->semi_axes_mm[0] * l->semi_axes_mm[1] * l->semi_axes_mm[2]);
    const double ell = l->roughness_scale_mm > 0.0 ? l->roughness_scale_mm : 2.0;
    *kappa = (r0 / ell) * (r0 / ell);
    const double lmax = ceil(3.0 * sqrt(*kappa)) + 2.0;
    return lmax > ROUGH_LMAX ? ROUGH_LMAX : (lmax < 4.0 ? 4 : (int)lmax);
}

/* Field values on nt rows (theta_i = pi i/(nt-1)) x np columns (phi_j = 2 pi j/np). */
static rsy_status rough_latlong(const rsy_lesion *l, int lmax, double kappa, int nt, int np,
                                double *grid, double *ms_out)
{
    rsy_status rc = RSY_ENOMEM;
    const size_t ncoef = (size_t)(lmax + 1) * (size_t)(lmax + 1);
    const size_t nleg = gsl_sf_legendre_array_n((size_t)lmax);
    double *c = calloc(ncoef, sizeof *c);
    double *leg = malloc(nleg * sizeof *leg);
    double *am = malloc(2 * (size_t)(lmax + 1) * sizeof *am); /* A_m then B_m */
    double *trig = malloc(2 * (size_t)np * (size_t)(lmax + 1) * sizeof *trig);
    rsy_rng *g = NULL;
    if (!c || !leg || !am || !trig)
        goto done;
    rc = rsy_rng_create(&g, rsy_seed_derive(l->seed, 1, RSY_STAGE_LESIONS));
    if (rc != RSY_OK)
        goto done;
    /* C_l = 4 pi A^2 w_l / sum_l' (2l'+1) w_l', w_l = e^-kappa i_l(kappa), l = 2..lmax. */
    double wsum = 0.0;
    for (int deg = 2; deg <= lmax; deg++) {
        gsl_sf_result res;
        const double w = gsl_sf_bessel_il_scaled_e(deg, kappa, &res) == GSL_SUCCESS ? res.val : 0.0;
        c[deg * deg] = w; /* scratch: the weight, overwritten below */
        wsum += (2.0 * deg + 1.0) * w;
    }
    const double amp = l->roughness_amplitude;
    for (int deg = 2; deg <= lmax; deg++) {
        const double w = c[deg * deg];
        const double sd = wsum > 0.0 ? amp * sqrt(FOUR_PI * w / wsum) : 0.0;
        for (int m = -deg; m <= deg; m++)
            c[deg * deg + deg + m] = rsy_rng_gaussian(g, sd);
    }
    double ms = 0.0; /* mean square over the sphere of the realisation: sum c^2 / (4 pi) */
    for (int q = 4; q < (lmax + 1) * (lmax + 1); q++)
        ms += c[q] * c[q] / FOUR_PI;
    *ms_out = ms;
    for (int j = 0; j < np; j++) {
        const double phi = 2.0 * M_PI * j / np;
        for (int m = 0; m <= lmax; m++) {
            trig[(size_t)j * 2 * (lmax + 1) + (size_t)m] = cos(m * phi);
            trig[(size_t)j * 2 * (lmax + 1) + (size_t)(lmax + 1 + m)] = sin(m * phi);
        }
    }
    for (int i = 0; i < nt; i++) {
        const double x = cos(M_PI * i / (nt - 1));
        if (gsl_sf_legendre_array_e(GSL_SF_LEGENDRE_SPHARM, (size_t)lmax, x, 1.0, leg) !=
            GSL_SUCCESS) {
            rc = RSY_ENUMERIC;
            goto done;
        }
        /* Real orthonormal harmonics: Y_l0 = P~_l0, Y_lm = sqrt2 P~_lm cos(m phi),
         * Y_l,-m = sqrt2 P~_lm sin(m phi), P~ the SPHARM-normalised associated Legendre. */
        for (int m = 0; m <= lmax; m++) {
            double a = 0.0, b = 0.0;
            for (int deg = m < 2 ? 2 : m; deg <= lmax; deg++) {
                const double pl = leg[gsl_sf_legendre_array_index((size_t)deg, (size_t)m)];
                a += c[deg * deg + deg + m] * pl;
                if (m > 0)
                    b += c[deg * deg + deg - m] * pl;
            }
            am[m] = m == 0 ? a : M_SQRT2 * a;
            am[lmax + 1 + m] = M_SQRT2 * b;
        }
        for (int j = 0; j < np; j++) {
            const double *tr = trig + (size_t)j * 2 * (lmax + 1);
            double f = am[0];
            for (int m = 1; m <= lmax; m++)
                f += am[m] * tr[m] + am[lmax + 1 + m] * tr[lmax + 1 + m];
            grid[(size_t)i * (size_t)np + (size_t)j] = f;
        }
    }
    rc = RSY_OK;
done:
    rsy_rng_destroy(g);
    free(trig);
    free(am);
    free(leg);
    free(c);
    return rc;
}

/* Bilinear value of the latitude-longitude grid at unit vector n. */
static double latlong_at(const double *grid, int nt, int np, const double n[3])
{
    const double z = n[2] > 1.0 ? 1.0 : (n[2] < -1.0 ? -1.0 : n[2]);
    double ft = acos(z) / M_PI * (nt - 1);
    double phi = atan2(n[1], n[0]);
    if (phi < 0.0)
        phi += 2.0 * M_PI;
    double fp = phi / (2.0 * M_PI) * np;
    int it = (int)ft;
    if (it > nt - 2)
        it = nt - 2;
    int ip = (int)fp;
    const double a = ft - it, b = fp - ip;
    ip %= np;
    const int ip1 = (ip + 1) % np;
    const double *r0 = grid + (size_t)it * (size_t)np, *r1 = r0 + np;
    return (1.0 - a) * ((1.0 - b) * r0[ip] + b * r0[ip1]) + a * ((1.0 - b) * r1[ip] + b * r1[ip1]);
}

/* Unit direction of cube-map node (i, j) of face f (faces +x, -x, +y, -y, +z, -z). */
void rsy__cube_node(int f, int i, int j, int n, double d[3])
{
    const double u = -1.0 + 2.0 * i / (n - 1), v = -1.0 + 2.0 * j / (n - 1);
    const double sg = (f & 1) ? -1.0 : 1.0;
    switch (f >> 1) {
    case 0:
        d[0] = sg, d[1] = u, d[2] = v;
        break;
    case 1:
        d[0] = u, d[1] = sg, d[2] = v;
        break;
    default:
        d[0] = u, d[1] = v, d[2] = sg;
        break;
    }
    const double norm = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    for (int k = 0; k < 3; k++)
        d[k] /= norm;
}

double rsy__cube_lookup(const float *t, int n, const double d[3])
{
    const double ax = fabs(d[0]), ay = fabs(d[1]), az = fabs(d[2]);
    int f;
    double u, v, m;
    if (ax >= ay && ax >= az) {
        f = d[0] >= 0.0 ? 0 : 1, m = ax, u = d[1], v = d[2];
    } else if (ay >= az) {
        f = d[1] >= 0.0 ? 2 : 3, m = ay, u = d[0], v = d[2];
    } else {
        f = d[2] >= 0.0 ? 4 : 5, m = az, u = d[0], v = d[1];
    }
    if (!(m > 0.0))
        return t[0];
    const double h = 0.5 * (n - 1), hm = h / m;
    double fu = u * hm + h, fv = v * hm + h;
    int iu = (int)fu, iv = (int)fv;
    iu = iu < 0 ? 0 : (iu > n - 2 ? n - 2 : iu);
    iv = iv < 0 ? 0 : (iv > n - 2 ? n - 2 : iv);
    const double a = fu - iu, b = fv - iv;
    const float *p = t + ((size_t)f * (size_t)n + (size_t)iv) * (size_t)n + (size_t)iu;
    return (1.0 - b) * ((1.0 - a) * p[0] + a * p[1]) + b * ((1.0 - a) * p[n] + a * p[n + 1]);
}

static rsy_status build_table(rsy__shape *sh, const rsy_lesion *l)
{
    double kappa, ms_exact;
    const int lmax = rough_degree(l, &kappa);
    const int nt = 3 * lmax + 2, np = 6 * lmax;
    const int n = (int)ceil(1.6 * lmax) + 3;
    const size_t nn = 6 * (size_t)n * (size_t)n;
    double *grid = malloc((size_t)nt * (size_t)np * sizeof *grid);
    float *table = malloc(nn * sizeof *table);
    if (!grid || !table) {
        free(grid);
        free(table);
        return RSY_ENOMEM;
    }
    const rsy_status rc = rough_latlong(l, lmax, kappa, nt, np, grid, &ms_exact);
    if (rc != RSY_OK) {
        free(grid);
        free(table);
        return rc;
    }
    for (int f = 0; f < 6; f++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                double d[3];
                rsy__cube_node(f, i, j, n, d);
                table[((size_t)f * (size_t)n + (size_t)j) * (size_t)n + (size_t)i] =
                    (float)latlong_at(grid, nt, np, d);
            }
    free(grid);
    /* Interpolation (grid to cube map, cube map to a direction) smooths the finest scales:
     * restore the realisation's mean square over the sphere (2048 Fibonacci directions). */
    double ms_table = 0.0;
    for (int q = 0; q < ROUGH_CHECK_DIRS; q++) {
        const double z = 1.0 - (2.0 * q + 1.0) / ROUGH_CHECK_DIRS, rxy = sqrt(1.0 - z * z);
        const double phi = M_PI * (3.0 - sqrt(5.0)) * q;
        const double d[3] = {rxy * cos(phi), rxy * sin(phi), z};
        const double v = rsy__cube_lookup(table, n, d);
        ms_table += v * v / ROUGH_CHECK_DIRS;
    }
    const double k = ms_table > 0.0 ? sqrt(ms_exact / ms_table) : 1.0;
    double smax = 0.0;
    for (int f = 0; f < 6; f++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                double d[3];
                rsy__cube_node(f, i, j, n, d);
                float *t = &table[((size_t)f * (size_t)n + (size_t)j) * (size_t)n + (size_t)i];
                double s = rsy__priors_sh_scale(l, d) + k * (double)*t;
                s = s < RSY__SH_SCALE_MIN ? RSY__SH_SCALE_MIN : s;
                *t = (float)s;
                smax = fmax(smax, (double)*t);
            }
    sh->table = table;
    sh->tn = n;
    sh->smax = smax;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The evaluator                                                                              */
/* ---------------------------------------------------------------------------------------- */

rsy_status rsy__shape_init(rsy__shape *sh, const rsy_lesion *l)
{
    memset(sh, 0, sizeof *sh);
    sh->l = l;
    sh->smax = rsy__priors_sh_scale_bound(l);
    if (l->roughness_amplitude > 0.0) {
        const rsy_status rc = build_table(sh, l);
        if (rc != RSY_OK)
            return rc;
    }
    rsy__shape_update(sh);
    return RSY_OK;
}

void rsy__shape_clear(rsy__shape *sh)
{
    if (!sh)
        return;
    RSY_FREE(sh->table);
}

/* World-offset -> unit-sphere matrix of a surface with world axes @p rot (columns) and
 * semi-axes @p semi. */
static void frame_of(const double rot[3][3], const double semi[3], double m[3][3])
{
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 3; j++)
            m[k][j] = rot[j][k] / semi[k];
}

void rsy__shape_update(rsy__shape *sh)
{
    const rsy_lesion *l = sh->l;
    const double *ax = l->semi_axes_mm;
    const double amax = fmax(ax[0], fmax(ax[1], ax[2]));
    frame_of(l->rotation, ax, sh->main_frame);
    sh->main_bound_mm = amax * sh->smax;
    sh->n_lobes = l->n_lobes > 1 ? (l->n_lobes > RSY_MAX_LOBES ? RSY_MAX_LOBES : l->n_lobes) : 1;
    if (sh->n_lobes == 1) {
        memcpy(sh->frame[0], sh->main_frame, sizeof sh->main_frame);
        memcpy(sh->center[0], l->center_mm, sizeof sh->center[0]);
        sh->bound_mm = sh->main_bound_mm;
        return;
    }
    sh->bound_mm = 0.0;
    for (int k = 0; k < sh->n_lobes; k++) {
        double rot[3][3], semi[3], off = 0.0;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) {
                rot[r][c] = 0.0;
                for (int q = 0; q < 3; q++)
                    rot[r][c] += l->rotation[r][q] * l->lobe_rotation[k][q][c];
            }
        for (int a = 0; a < 3; a++) {
            semi[a] = ax[a] * l->lobe_scale[k];
            off += l->lobe_offset_mm[k][a] * l->lobe_offset_mm[k][a];
        }
        frame_of(rot, semi, sh->frame[k]);
        for (int r = 0; r < 3; r++)
            sh->center[k][r] = l->center_mm[r] + l->rotation[r][0] * l->lobe_offset_mm[k][0] +
                               l->rotation[r][1] * l->lobe_offset_mm[k][1] +
                               l->rotation[r][2] * l->lobe_offset_mm[k][2];
        sh->bound_mm = fmax(sh->bound_mm, sqrt(off) + l->lobe_scale[k] * amax * sh->smax);
    }
}

double rsy__shape_scale(const rsy__shape *sh, const double n[3])
{
    return sh->table ? rsy__cube_lookup(sh->table, sh->tn, n) : rsy__priors_sh_scale(sh->l, n);
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
double rsy__shape_radial_unit(const rsy__shape *sh, const double u[3], double d_mm,
                              double *dist_out_mm)
{
    const double rho = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    if (!(rho > 0.0)) {
        /* The centre: any direction serves; take the lesion's third axis. */
        const double n[3] = {0.0, 0.0, 1.0};
        if (dist_out_mm)
            *dist_out_mm = -rsy__shape_scale(sh, n) * sh->l->semi_axes_mm[2];
        return 0.0;
    }
    const double n[3] = {u[0] / rho, u[1] / rho, u[2] / rho};
    const double s = rsy__shape_scale(sh, n);
    if (dist_out_mm)
        *dist_out_mm = d_mm * (1.0 - s / rho);
    return rho / s;
}

static double radial_about(const rsy__shape *sh, const double m[3][3], const double c[3],
                           const double x[3], double *dist_out_mm)
{
    const double d[3] = {x[0] - c[0], x[1] - c[1], x[2] - c[2]};
    double u[3];
    for (int k = 0; k < 3; k++)
        u[k] = m[k][0] * d[0] + m[k][1] * d[1] + m[k][2] * d[2];
    return rsy__shape_radial_unit(sh, u, sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]),
                                  dist_out_mm);
}

double rsy__shape_radial(const rsy__shape *sh, const double x[3], double *dist_out_mm)
{
    double best = HUGE_VAL, best_dist = HUGE_VAL;
    for (int k = 0; k < sh->n_lobes; k++) {
        double dist;
        const double rn =
            radial_about(sh, (const double(*)[3])sh->frame[k], sh->center[k], x, &dist);
        best = fmin(best, rn);
        best_dist = fmin(best_dist, dist);
    }
    if (dist_out_mm)
        *dist_out_mm = best_dist;
    return best;
}

double rsy__shape_radius_along(const rsy__shape *sh, const double dir[3])
{
    double u[3];
    for (int k = 0; k < 3; k++)
        u[k] = sh->main_frame[k][0] * dir[0] + sh->main_frame[k][1] * dir[1] +
               sh->main_frame[k][2] * dir[2];
    const double rho = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    const double n[3] = {u[0] / rho, u[1] / rho, u[2] / rho};
    return rsy__shape_scale(sh, n) / rho;
}

double rsy_lesion_radial(const rsy_lesion *l, const double xyz_mm[3], double *dist_out_mm)
{
    rsy__shape sh;
    if (rsy__shape_init(&sh, l) != RSY_OK) {
        if (dist_out_mm)
            *dist_out_mm = NAN;
        return NAN;
    }
    const double rn = rsy__shape_radial(&sh, xyz_mm, dist_out_mm);
    rsy__shape_clear(&sh);
    return rn;
}
