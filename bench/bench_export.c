/*
 * bench_export.c: NIfTI export throughput next to raw zlib deflate of the same bytes at the
 * same level, measured in the same run (issue 6, "Speed": export within 1.3x of raw deflate).
 *
 * Two real cases, made by the generator in memory (rsy_case_generate), so deflate meets the
 * bytes that `generate` writes:
 *   mri_128  case 0 of the demo recipe (configs/recipes/brain-glioblastoma-mri.json): four
 *            float32 channels of 128³, the uint8 label map, the uint16 instance map (39.8 MB);
 *   ct_512   case 0 of configs/recipes/abdomen-hcc-portal-venous-ct.json with the phantom set
 *            to 512×512×80 at 0.75×0.75×3 mm and the fast noise model (the recipe struct is
 *            changed after loading; the manifest still embeds the file's text): one int16
 *            channel, uint8 labels, uint16 instances (104.9 MB).
 * For each case and each way of writing, one line
 *   bench export <case> what=<w> level=1 raw_MB=<MB> out_MB=<MB> seconds=<median> min=<s>
 *       max=<s> MBps=<raw MB / median s> cpu_s=<median thread CPU s>
 *       [ratio=<median / median of deflate> cpu_ratio=<the same of CPU times>]
 * with <w>:
 *   deflate  zlib compress2() of each volume's bytes (the 352-byte NIfTI header left out) at
 *            level 1, in memory: the floor;
 *   nifti    rsy_volume_write_nifti() of each volume to DIR/<name>.nii.gz (the core writer:
 *            gzip stream, fsync, rename);
 *   case     rsy_export_write_case(): what `generate` does per case (staging folder, the
 *            writer, a second fsync, SHA-256 of every file, lesion measurement, the manifest,
 *            the renames and folder fsyncs);
 *   io       rsy_file_write_atomic() of the deflate output (write, fsync, rename of as many
 *            bytes as the .nii.gz files): the share of the disk;
 *   sha256   rsy_sha256_file() of the written .nii.gz files (page cache): the checksum share.
 * MB = 10^6 bytes of raw voxels. The level is the NIfTI writer's (core/nifti_io.c opens the
 * stream "wb1", nibabel's default); out_MB of nifti and deflate differ by the gzip header and
 * trailer only, and a warning is printed if they differ by more than 0.5%, which would mean
 * the writer's level changed. Runs are interleaved (deflate, nifti, case, io, sha256, repeated
 * $BENCH_RUNS times, default 5), so a load on the machine hits every way alike; on a shared
 * machine cpu_ratio is the steadier figure (CPU time leaves out preemption, and the disk's
 * waits, which the io line shows). MBps is raw MB per second on every line. Files go to a
 * folder under $BENCH_DIR, else $TMPDIR, else /tmp, removed at the end. One core.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_export.h"
#include "rsy_generator.h"

#define MAX_RUNS 25
#define LEVEL 1 /* core/nifti_io.c: gzopen(tmp, "wb1") */
#define MAX_VOLS (RSY_MAX_SEQUENCES + 2)

enum { W_DEFLATE, W_NIFTI, W_CASE, W_IO, W_SHA, N_WAYS };
static const char *const way_name[N_WAYS] = {"deflate", "nifti", "case", "io", "sha256"};

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

/* CPU time of this thread: what a busy machine does not inflate (the disk's waits are not
 * in it). */
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long file_size(const char *path)
{
    FILE *fp = fopen(path, "rb");
    long n = -1;
    if (fp && fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (fp)
        fclose(fp);
    return n;
}

/* Remove the benchmark's files: DIR/vol*.nii.gz, DIR/io*.bin and the export folder. */
static void clean(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_export: cannot remove %s\n", dir);
}

static int bench_case(const char *label, rsy_recipe *r, const char *dir, int runs)
{
    rsy_case *c = NULL;
    double tg = rsy_time_now();
    if (rsy_case_generate(r, 0, &c) != RSY_OK) {
        fprintf(stderr, "bench_export: %s: generating case 0 of %s failed\n", label, r->path);
        return 1;
    }
    tg = rsy_time_now() - tg;

    /* The volumes in the order the exporter writes them: channels, labels, instances. */
    const rsy_volume *vols[MAX_VOLS];
    rsy_nifti_kind kinds[MAX_VOLS];
    int nv = 0;
    const int nch = rsy_case_n_channels(c);
    for (int ch = 0; ch < nch; ch++) {
        kinds[nv] = RSY_NIFTI_IMAGE;
        vols[nv++] = rsy_case_channel(c, ch);
    }
    kinds[nv] = RSY_NIFTI_LABEL;
    vols[nv++] = rsy_case_labels(c);
    kinds[nv] = RSY_NIFTI_LABEL;
    vols[nv++] = rsy_case_instances(c);

    size_t raw = 0;
    for (int v = 0; v < nv; v++)
        raw += rsy_volume_nbytes(vols[v]);
    uint8_t *zbuf[MAX_VOLS] = {NULL};
    uLongf zlen[MAX_VOLS] = {0};
    for (int v = 0; v < nv; v++)
        if (!(zbuf[v] = malloc(compressBound((uLong)rsy_volume_nbytes(vols[v])))))
            return 1;

    /* What the exporter needs beside the volumes. */
    const int n_les = rsy_case_n_lesions(c);
    rsy_lesion_info *info = calloc((size_t)(n_les > 0 ? n_les : 1), sizeof *info);
    if (!info)
        return 1;
    const char *type = r->n_lesion_types > 0 ? r->lesions[0].prior.name : "lesion";
    for (int l = 0; l < n_les; l++)
        info[l] = (rsy_lesion_info){l + 1, type, type, "", "", NULL, 0};
    const rsy_volume *chans[RSY_MAX_SEQUENCES];
    for (int ch = 0; ch < nch; ch++)
        chans[ch] = rsy_case_channel(c, ch);
    rsy_case_data data = {
        0, chans, nch, rsy_case_labels(c),  rsy_case_instances(c), info, n_les, NULL,
        0, NULL,  0,   rsy_case_findings(c)};
    const char *names[RSY_MAX_LABELS];
    unsigned char peri[RSY_MAX_LABELS];
    const int n_labels = rsy_generator_label_names(r, names, RSY_MAX_LABELS);
    rsy_generator_label_perilesional(r, peri, RSY_MAX_LABELS);
    char exp_dir[1024];
    snprintf(exp_dir, sizeof exp_dir, "%s/export", dir);
    rsy_export_params ep;
    memset(&ep, 0, sizeof ep); /* nnU-Net layout, NIfTI only, no preview, no shard */
    ep.recipe = r;
    ep.out_dir = exp_dir;
    ep.label_names = names;
    ep.n_labels = n_labels;
    ep.texture_note = "bench";
    ep.label_perilesional = peri;

    char path[1100];
    double t[N_WAYS][MAX_RUNS], cpu[N_WAYS][MAX_RUNS];
    long nifti_bytes = 0, deflate_bytes = 0;
    for (int run = 0; run < runs; run++) {
        /* deflate */
        double t0 = rsy_time_now(), c0 = thread_cpu();
        deflate_bytes = 0;
        for (int v = 0; v < nv; v++) {
            zlen[v] = compressBound((uLong)rsy_volume_nbytes(vols[v]));
            if (compress2(zbuf[v], &zlen[v], vols[v]->data, (uLong)rsy_volume_nbytes(vols[v]),
                          LEVEL) != Z_OK)
                return 1;
            deflate_bytes += (long)zlen[v];
        }
        t[W_DEFLATE][run] = rsy_time_now() - t0;
        cpu[W_DEFLATE][run] = thread_cpu() - c0;

        /* nifti: the core writer */
        t0 = rsy_time_now();
        c0 = thread_cpu();
        for (int v = 0; v < nv; v++) {
            snprintf(path, sizeof path, "%s/vol%d.nii.gz", dir, v);
            if (rsy_volume_write_nifti(vols[v], path, kinds[v]) != RSY_OK) {
                fprintf(stderr, "bench_export: writing %s failed\n", path);
                return 1;
            }
        }
        t[W_NIFTI][run] = rsy_time_now() - t0;
        cpu[W_NIFTI][run] = thread_cpu() - c0;
        nifti_bytes = 0;
        for (int v = 0; v < nv; v++) {
            snprintf(path, sizeof path, "%s/vol%d.nii.gz", dir, v);
            nifti_bytes += file_size(path);
        }

        /* case: the exporter's per-case write into a fresh dataset folder (not timed: the
         * folder's preparation and begin, which hashes the recipe's files once per run) */
        rsy_export *e = NULL;
        if (rsy_export_prepare_dir(exp_dir, 1) != RSY_OK || rsy_export_begin(&e, &ep) != RSY_OK) {
            fprintf(stderr, "bench_export: cannot start an export in %s\n", exp_dir);
            return 1;
        }
        t0 = rsy_time_now();
        c0 = thread_cpu();
        rsy_status rc = rsy_export_write_case(e, &data);
        t[W_CASE][run] = rsy_time_now() - t0;
        cpu[W_CASE][run] = thread_cpu() - c0;
        rsy_export_destroy(e);
        if (rc != RSY_OK) {
            fprintf(stderr, "bench_export: rsy_export_write_case failed: %s\n", rsy_strerror(rc));
            return 1;
        }

        /* io: the compressed bytes written, fsynced and renamed */
        t0 = rsy_time_now();
        c0 = thread_cpu();
        for (int v = 0; v < nv; v++) {
            snprintf(path, sizeof path, "%s/io%d.bin", dir, v);
            if (rsy_file_write_atomic(path, zbuf[v], zlen[v]) != RSY_OK)
                return 1;
        }
        t[W_IO][run] = rsy_time_now() - t0;
        cpu[W_IO][run] = thread_cpu() - c0;

        /* sha256 of the .nii.gz files */
        char hex[65];
        t0 = rsy_time_now();
        c0 = thread_cpu();
        for (int v = 0; v < nv; v++) {
            snprintf(path, sizeof path, "%s/vol%d.nii.gz", dir, v);
            if (rsy_sha256_file(path, hex) != RSY_OK)
                return 1;
        }
        t[W_SHA][run] = rsy_time_now() - t0;
        cpu[W_SHA][run] = thread_cpu() - c0;
    }

    char dims[64];
    const rsy_volume *v0 = vols[0];
    snprintf(dims, sizeof dims, "%" PRId64 "x%" PRId64 "x%" PRId64, v0->geom.dims[0],
             v0->geom.dims[1], v0->geom.dims[2]);
    printf("bench export %s dims=%s channels=%d lesions=%d generate_s=%.2f\n", label, dims, nch,
           n_les, tg);
    const double mb = (double)raw / 1e6;
    double med[N_WAYS], cmed[N_WAYS];
    for (int w = 0; w < N_WAYS; w++) {
        double lo = t[w][0], hi = t[w][0];
        for (int run = 1; run < runs; run++) {
            lo = t[w][run] < lo ? t[w][run] : lo;
            hi = t[w][run] > hi ? t[w][run] : hi;
        }
        med[w] = median(t[w], runs);
        cmed[w] = median(cpu[w], runs);
        const long out = w == W_DEFLATE || w == W_IO ? deflate_bytes : nifti_bytes;
        printf("bench export %s what=%s level=%d raw_MB=%.1f out_MB=%.2f seconds=%.3f min=%.3f "
               "max=%.3f MBps=%.1f cpu_s=%.3f",
               label, way_name[w], LEVEL, mb, (double)out / 1e6, med[w], lo, hi, mb / med[w],
               cmed[w]);
        if (w == W_NIFTI || w == W_CASE)
            printf(" ratio=%.2f cpu_ratio=%.2f", med[w] / med[W_DEFLATE],
                   cmed[w] / cmed[W_DEFLATE]);
        printf("\n");
    }
    if (labs(nifti_bytes - deflate_bytes) > deflate_bytes / 200)
        fprintf(stderr,
                "bench_export: %s: the .nii.gz files (%ld bytes) and deflate at level %d (%ld) "
                "differ by more than 0.5%%: has the writer's level changed?\n",
                label, nifti_bytes, LEVEL, deflate_bytes);
    for (int v = 0; v < nv; v++)
        free(zbuf[v]);
    free(info);
    rsy_case_destroy(c);
    return 0;
}

int main(void)
{
    if (rsy_init() != RSY_OK)
        return 1;
    int runs = getenv("BENCH_RUNS") ? atoi(getenv("BENCH_RUNS")) : 5;
    if (runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "bench_export: BENCH_RUNS must be 1..%d\n", MAX_RUNS);
        return 2;
    }
    const char *base = getenv("BENCH_DIR");
    if (!base || !base[0])
        base = getenv("TMPDIR");
    if (!base || !base[0])
        base = "/tmp";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/rsy-bench-export-%ld", base, (long)getpid());
    if (rsy_mkdir_p(dir) != RSY_OK) {
        fprintf(stderr, "bench_export: cannot create %s\n", dir);
        return 1;
    }

    int fail = 0;
    rsy_recipe *r = NULL;
    const char *mri = "configs/recipes/brain-glioblastoma-mri.json";
    if (rsy_recipe_load(&r, mri, NULL) != RSY_OK) {
        fprintf(stderr, "bench_export: cannot load %s (run from the source tree)\n", mri);
        fail = 1;
    } else {
        fail |= bench_case("mri_128", r, dir, runs);
    }
    rsy_recipe_destroy(r);
    r = NULL;

    const char *ct = "configs/recipes/abdomen-hcc-portal-venous-ct.json";
    if (!fail && rsy_recipe_load(&r, ct, NULL) != RSY_OK) {
        fprintf(stderr, "bench_export: cannot load %s (run from the source tree)\n", ct);
        fail = 1;
    } else if (!fail) {
        r->phantom.dims[0] = r->phantom.dims[1] = 512;
        r->phantom.dims[2] = 80;
        r->phantom.spacing_mm[0] = r->phantom.spacing_mm[1] = 0.75;
        r->phantom.spacing_mm[2] = 3.0;
        r->ct.noise_model = RSY_CT_NOISE_FAST;
        fail |= bench_case("ct_512", r, dir, runs);
    }
    rsy_recipe_destroy(r);
    clean(dir);
    return fail;
}
