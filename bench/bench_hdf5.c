/*
 * bench_hdf5.c: HDF5 export throughput next to raw zlib deflate of the same bytes (issue 6,
 * "Speed": export within 1.3x of raw deflate).
 *
 * One 128³ case like the demo's: a float32 MRI channel (nested ellipsoids of WM/GM/CSF-like
 * intensities with Gaussian noise of 3% of the brightest tissue, so deflate meets noisy
 * floats as in real output), a uint8 label map and a uint16 instance map with one lesion.
 * For each deflate level (4, the writer's default, and 1, the NIfTI writer's), prints
 *   bench hdf5 case_128 level=L raw_MB=<voxel bytes> hdf5_s=<s> hdf5_MBps=<raw MB/s>
 *   file_MB=<MB> deflate_s=<s> deflate_MBps=<MB/s> deflate_MB=<MB> shuffle_deflate_s=<s>
 *   shuffle_deflate_MBps=<MB/s> ratio=<hdf5_s / deflate_s>
 * MB = 10^6 bytes of raw voxels (image + label + instances, 14.7 MB). hdf5_s is the whole
 * writer, create + add_case + close (including its fsync and rename), into $TMPDIR; deflate_s
 * is zlib compress2() of the same three buffers at the same level in this process;
 * shuffle_deflate_s adds HDF5's byte shuffle done by hand, which is what the writer's filter
 * pipeline computes. Times are wall-clock medians of 5 runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "rsy_export.h"

#define N 128
#define RUNS 5

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The synthetic case. Intensities are arbitrary units in the ratio of a T1w scan
 * (WM > GM > CSF); only their statistics matter to deflate. */
static int make_case(rsy_volume **img, rsy_volume **lab, rsy_volume **inst)
{
    rsy_geometry g;
    const int64_t dims[3] = {N, N, N};
    const double sp[3] = {1.75, 1.75, 1.75};
    rsy_rng *rng = NULL;
    if (rsy_geometry_init(&g, dims, sp) != RSY_OK ||
        rsy_volume_create(img, &g, RSY_DTYPE_FLOAT32) != RSY_OK ||
        rsy_volume_create(lab, &g, RSY_DTYPE_UINT8) != RSY_OK ||
        rsy_volume_create(inst, &g, RSY_DTYPE_UINT16) != RSY_OK ||
        rsy_rng_create(&rng, 20261122) != RSY_OK)
        return -1;
    float *v = (*img)->data;
    uint8_t *l = (*lab)->data;
    uint16_t *in = (*inst)->data;
    size_t idx = 0;
    for (int k = 0; k < N; k++) {
        for (int j = 0; j < N; j++) {
            for (int i = 0; i < N; i++, idx++) {
                double x = (i - 63.5) / 60.0, y = (j - 63.5) / 52.0, z = (k - 63.5) / 56.0;
                double r2 = x * x + y * y + z * z;
                double t = r2 < 0.35 ? 100.0 : r2 < 0.6 ? 80.0 : r2 < 0.8 ? 30.0 : 0.0;
                double lx = (i - 80) / 9.0, ly = (j - 70) / 11.0, lz = (k - 60) / 8.0;
                if (lx * lx + ly * ly + lz * lz < 1.0) {
                    t = 55.0;
                    l[idx] = 1;
                    in[idx] = 1;
                }
                v[idx] = (float)(t + (t > 0.0 ? rsy_rng_gaussian(rng, 3.0) : 0.0));
            }
        }
    }
    rsy_rng_destroy(rng);
    return 0;
}

/* HDF5's shuffle filter: byte b of every element, for b = 0..size-1, one plane after another. */
static void shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t size)
{
    for (size_t b = 0; b < size; b++)
        for (size_t e = 0; e < n; e++)
            dst[b * n + e] = src[e * size + b];
}

int main(void)
{
    rsy_volume *img = NULL, *lab = NULL, *inst = NULL;
    if (rsy_init() != RSY_OK || make_case(&img, &lab, &inst) != 0) {
        fprintf(stderr, "bench_hdf5: cannot build the case\n");
        return 1;
    }
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[1024];
    snprintf(path, sizeof path, "%s/bench_hdf5_%ld.h5", tmpdir, (long)getpid());

    const void *bufs[3] = {img->data, lab->data, inst->data};
    const size_t sizes[3] = {rsy_volume_nbytes(img), rsy_volume_nbytes(lab),
                             rsy_volume_nbytes(inst)};
    const size_t elem[3] = {4, 1, 2};
    const size_t raw = sizes[0] + sizes[1] + sizes[2];
    uLongf cap = compressBound((uLong)sizes[0]);
    uint8_t *out = malloc(cap), *shuf = malloc(sizes[0]);
    if (!out || !shuf)
        return 1;

    const char *channel[1] = {"T1w"};
    const char *labels[2] = {"background", "tumour"};
    rsy_lesion_record rec[1];
    if (rsy_export_measure_lesions(inst, lab, 1, NULL, rec) != RSY_OK)
        return 1;
    rsy_lesion_info info[1] = {{1, "glioblastoma", "Glioblastoma", "white_matter", "", NULL, 0}};
    const rsy_volume *chs[1] = {img};
    rsy_case_data c = {0, chs, 1, lab, inst, info, 1, NULL, 0, NULL, 0, ""};

    static const int levels[2] = {RSY_EXPORT_HDF5_LEVEL_DEFAULT, 1};
    for (int li = 0; li < 2; li++) {
        const int level = levels[li];
        double t_h5[RUNS], t_z[RUNS], t_sz[RUNS];
        size_t zbytes = 0;
        long file_bytes = 0;
        for (int r = 0; r < RUNS; r++) {
            rsy_export_hdf5_params p = rsy_export_hdf5_params_default();
            p.path = path;
            p.dataset_name = "Bench";
            p.recipe_sha256 = "";
            p.modality = "mri";
            p.channel_names = channel;
            p.n_channels = 1;
            p.label_names = labels;
            p.n_labels = 2;
            p.deflate_level = level;
            rsy_export_hdf5 *w = NULL;
            double t0 = rsy_time_now();
            if (rsy_export_hdf5_create(&w, &p) != RSY_OK ||
                rsy_export_hdf5_add_case(w, &c, rec) != RSY_OK) {
                rsy_export_hdf5_abort(w);
                fprintf(stderr, "bench_hdf5: writing %s failed\n", path);
                return 1;
            }
            if (rsy_export_hdf5_close(w, NULL) != RSY_OK) {
                fprintf(stderr, "bench_hdf5: closing %s failed\n", path);
                return 1;
            }
            t_h5[r] = rsy_time_now() - t0;
            FILE *fp = fopen(path, "rb");
            if (fp && fseek(fp, 0, SEEK_END) == 0)
                file_bytes = ftell(fp);
            if (fp)
                fclose(fp);
            remove(path);

            zbytes = 0;
            t0 = rsy_time_now();
            for (int b = 0; b < 3; b++) {
                uLongf n = cap;
                if (compress2(out, &n, bufs[b], (uLong)sizes[b], level) != Z_OK)
                    return 1;
                zbytes += n;
            }
            t_z[r] = rsy_time_now() - t0;
            t0 = rsy_time_now();
            for (int b = 0; b < 3; b++) {
                uLongf n = cap;
                shuffle(bufs[b], shuf, sizes[b] / elem[b], elem[b]);
                if (compress2(out, &n, shuf, (uLong)sizes[b], level) != Z_OK)
                    return 1;
            }
            t_sz[r] = rsy_time_now() - t0;
        }
        const double mb = (double)raw / 1e6, h5 = median(t_h5, RUNS), z = median(t_z, RUNS),
                     sz = median(t_sz, RUNS);
        printf("bench hdf5 case_128 level=%d raw_MB=%.2f hdf5_s=%.3f hdf5_MBps=%.1f "
               "file_MB=%.2f deflate_s=%.3f deflate_MBps=%.1f deflate_MB=%.2f "
               "shuffle_deflate_s=%.3f shuffle_deflate_MBps=%.1f ratio=%.2f\n",
               level, mb, h5, mb / h5, (double)file_bytes / 1e6, z, mb / z,
               (double)zbytes / 1e6, sz, mb / sz, h5 / z);
    }
    free(out);
    free(shuf);
    rsy_volume_destroy(img);
    rsy_volume_destroy(lab);
    rsy_volume_destroy(inst);
    return 0;
}
