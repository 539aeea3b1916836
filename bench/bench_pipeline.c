/*
 * bench_pipeline: time of each stage of one case of the demo recipe at its own size (128^3),
 * one core. One machine-readable line per stage:
 *   bench pipeline <stage> dims=128x128x128 threads=1 seconds=<s>
 * Run by `make bench`, never by `make test`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_generator.h"

int main(int argc, char **argv)
{
    const char *recipe_path = argc > 1 ? argv[1] : "configs/recipes/brain-glioblastoma-mri.json";
    const int n_cases = 3;
    if (rsy_init() != RSY_OK)
        return 1;
    rsy_recipe *r = NULL;
    if (rsy_recipe_load(&r, recipe_path, NULL) != RSY_OK) {
        fprintf(stderr, "bench_pipeline: cannot load %s\n", recipe_path);
        return 1;
    }
    char dims[64];
    snprintf(dims, sizeof dims, "%" PRId64 "x%" PRId64 "x%" PRId64, r->phantom.dims[0],
             r->phantom.dims[1], r->phantom.dims[2]);
    rsy_case_timing sum = {0, 0, 0, 0, 0};
    double write_s = 0.0;
    char path[256];
    snprintf(path, sizeof path, "/tmp/rsy-bench-%ld.nii.gz", (long)getpid());
    for (int i = 0; i < n_cases; i++) {
        rsy_case *c = NULL;
        if (rsy_case_generate(r, (size_t)i, &c) != RSY_OK) {
            fprintf(stderr, "bench_pipeline: case %d failed\n", i);
            rsy_recipe_destroy(r);
            return 1;
        }
        rsy_case_timing t = rsy_case_get_timing(c);
        sum.phantom_s += t.phantom_s;
        sum.lesions_s += t.lesions_s;
        sum.texture_s += t.texture_s;
        sum.imaging_s += t.imaging_s;
        double t0 = rsy_time_now();
        for (int ch = 0; ch < rsy_case_n_channels(c); ch++)
            if (rsy_volume_write_nifti(rsy_case_channel(c, ch), path, RSY_NIFTI_IMAGE) != RSY_OK)
                fprintf(stderr, "bench_pipeline: write failed\n");
        if (rsy_volume_write_nifti(rsy_case_labels(c), path, RSY_NIFTI_LABEL) != RSY_OK)
            fprintf(stderr, "bench_pipeline: write failed\n");
        write_s += rsy_time_now() - t0;
        rsy_case_destroy(c);
    }
    remove(path);
    const char *names[] = {"phantom", "lesions", "texture", "imaging", "nifti_write"};
    double vals[] = {sum.phantom_s, sum.lesions_s, sum.texture_s, sum.imaging_s, write_s};
    double total = 0;
    for (int k = 0; k < 5; k++) {
        printf("bench pipeline %s dims=%s threads=1 seconds=%.3f\n", names[k], dims,
               vals[k] / n_cases);
        total += vals[k];
    }
    printf("bench pipeline total dims=%s threads=1 seconds=%.3f\n", dims, total / n_cases);
    rsy_recipe_destroy(r);
    return 0;
}
