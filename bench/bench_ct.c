/*
 * bench_ct.c: filtered back-projection of one 512×512 slice with 1100 views and 725 detector
 * bins on one core (issue 4; the Kak–Slaney sampling of a 512² slice, domain.md section 1.4).
 * Prints one machine-readable line:
 *   bench ct fbp_512 views=1100 bins=725 cpu_seconds=<median> min_cpu_seconds=<min>
 *   filter_s=<s> backproject_s=<s>
 * Times are CPU time of the process (CLOCK_PROCESS_CPUTIME_ID; the FBP runs on one thread):
 * the median of five runs, their minimum, and the medians of the filter and the back-
 * projection, timed separately through ct_internal.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ct_internal.h"
#include "rsy_core.h"
#include "rsy_generator.h"

#define N 512
#define VIEWS 1100
#define BINS 725
#define RUNS 5

/* CPU seconds used by the process so far. */
static double cpu_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of @p n values (sorted in place). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(void)
{
    rsy_ct_params p = rsy_ct_params_default();
    p.n_views = VIEWS;
    p.n_det = BINS;
    rsy_ct_fbp *r = NULL;
    if (rsy_ct_fbp_create(&r, N, N, 0.7, &p) != RSY_OK) {
        fprintf(stderr, "bench_ct: cannot create the reconstructor\n");
        return 1;
    }
    const size_t nsino = (size_t)VIEWS * BINS;
    float *sino = malloc(sizeof(float) * nsino);
    float *q = malloc(sizeof(float) * rsy__ct_qstride(r) * VIEWS);
    float *img = malloc(sizeof(float) * N * N);
    if (!sino || !q || !img) {
        fprintf(stderr, "bench_ct: out of memory\n");
        return 1;
    }
    /* A water disc of radius 150 mm: analytic line integrals 2μ√(R² − t²). */
    for (int v = 0; v < VIEWS; v++) {
        for (int b = 0; b < BINS; b++) {
            const double t = (b - 0.5 * (BINS - 1)) * 0.7, rr = 150.0;
            sino[(size_t)v * BINS + b] =
                fabs(t) < rr ? (float)(2.0 * p.mu_water_per_mm * sqrt(rr * rr - t * t)) : 0.0f;
        }
    }
    double tf[RUNS], tb[RUNS], tt[RUNS];
    for (int run = 0; run < RUNS; run++) {
        const double t0 = cpu_now();
        if (rsy__ct_filter(r, sino, q) != RSY_OK) {
            fprintf(stderr, "bench_ct: filter failed\n");
            return 1;
        }
        const double t1 = cpu_now();
        rsy__ct_backproject(r, q, img);
        const double t2 = cpu_now();
        tf[run] = t1 - t0;
        tb[run] = t2 - t1;
        tt[run] = t2 - t0;
    }
    const double total = median(tt, RUNS); /* sorts tt: tt[0] is the minimum */
    printf("bench ct fbp_512 views=%d bins=%d cpu_seconds=%.4f min_cpu_seconds=%.4f "
           "filter_s=%.4f backproject_s=%.4f\n",
           VIEWS, BINS, total, tt[0], median(tf, RUNS), median(tb, RUNS));
    /* The centre must read μ_water: a guard against timing a broken reconstruction. */
    const double centre = img[(N / 2) * N + N / 2] / p.mu_water_per_mm;
    free(img);
    free(q);
    free(sino);
    rsy_ct_fbp_destroy(r);
    if (fabs(centre - 1.0) > 0.01) {
        fprintf(stderr, "bench_ct: centre reads %.4f of water\n", centre);
        return 1;
    }
    return 0;
}
