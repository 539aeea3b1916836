/*
 * test_export.c: lesion measurement, output-directory rules, the dataset writer and
 * `validate` (cmocka group "export").
 *
 * Volumes are synthetic and at most 32^3. Measurements are compared with closed-form answers;
 * datasets are written, validated, compared byte for byte across write orders, then corrupted
 * one way at a time and each corruption must be reported with the right message. The
 * layouts (MSD, nnDetection), previews and the HDF5 file are checked against
 * reference/formats.md; resume (adopt_case after a simulated crash) and the merge of shards
 * must give the uninterrupted run's bytes.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "test_util.h"

#include "export_internal.h"
#include "rsy_export.h"

/* ---------------------------------------------------------------------------------------- */
/* Log capture: every error line, so a test can look for one message among several.          */
/* ---------------------------------------------------------------------------------------- */
static char errors_buf[1 << 16];
static size_t errors_len;
static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;

static void capture(rsy_log_level level, const char *func, const char *msg, void *user)
{
    (void)func;
    (void)user;
    if (level != RSY_LOG_ERROR)
        return;
    pthread_mutex_lock(&errors_lock);
    int n = snprintf(errors_buf + errors_len, sizeof errors_buf - errors_len, "%s\n", msg);
    if (n > 0 && errors_len + (size_t)n < sizeof errors_buf)
        errors_len += (size_t)n;
    pthread_mutex_unlock(&errors_lock);
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "[error %s] %s\n", func, msg);
}

static void errors_reset(void)
{
    errors_len = 0;
    errors_buf[0] = '\0';
    rsy_log_set_handler(capture, NULL);
    rsy_log_set_level(RSY_LOG_WARNING);
}

/* 1 if some error line contains both @p a and @p b (b may be NULL). */
static int logged(const char *a, const char *b)
{
    const char *line = errors_buf;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char buf[2048];
        snprintf(buf, sizeof buf, "%.*s", (int)n, line);
        if (strstr(buf, a) && (!b || strstr(buf, b)))
            return 1;
        line += n + (end ? 1 : 0);
    }
    fprintf(stderr, "expected an error with \"%s\"%s%s%s; got:\n%s", a, b ? " and \"" : "",
            b ? b : "", b ? "\"" : "", errors_buf);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Synthetic volumes                                                                          */
/* ---------------------------------------------------------------------------------------- */
#define N 32

static rsy_volume *new_volume(const double spacing[3], rsy_dtype t)
{
    rsy_geometry g;
    const int64_t dims[3] = {N, N, N};
    rsy_volume *v = NULL;
    assert_int_equal(rsy_geometry_init(&g, dims, spacing), RSY_OK);
    assert_int_equal(rsy_volume_create(&v, &g, t), RSY_OK);
    return v;
}

static size_t at(int64_t i, int64_t j, int64_t k)
{
    return ((size_t)k * N + (size_t)j) * N + (size_t)i;
}

static void set_box(rsy_volume *inst, rsy_volume *lab, const int64_t lo[3], const int64_t hi[3],
                    uint16_t id, uint8_t label)
{
    for (int64_t k = lo[2]; k <= hi[2]; k++)
        for (int64_t j = lo[1]; j <= hi[1]; j++)
            for (int64_t i = lo[0]; i <= hi[0]; i++) {
                ((uint16_t *)inst->data)[at(i, j, k)] = id;
                if (lab)
                    ((uint8_t *)lab->data)[at(i, j, k)] = label;
            }
}

/* The short axis by its definition (docs/manifest.md section 4), from the long axis' ends
 * (ia, ja) -> (ib, jb) and the key slice's voxel centres (pts, n of them): bins along the long
 * axis of width min(sx, sy), the longest perpendicular chord of a bin. */
static double short_axis_by_definition(const int64_t (*pts)[2], int n, const int64_t a[2],
                                       const int64_t b[2], double sx, double sy)
{
    double lx = (double)(b[0] - a[0]) * sx, ly = (double)(b[1] - a[1]) * sy;
    double len = sqrt(lx * lx + ly * ly), ux = lx / len, uy = ly / len, width = fmin(sx, sy);
    double best = 0.0;
    for (int p = 0; p < n; p++) {
        double dxp = (double)(pts[p][0] - a[0]) * sx, dyp = (double)(pts[p][1] - a[1]) * sy;
        double bin = floor((dxp * ux + dyp * uy) / width + 0.5);
        for (int q = 0; q < n; q++) {
            double dxq = (double)(pts[q][0] - a[0]) * sx, dyq = (double)(pts[q][1] - a[1]) * sy;
            if (floor((dxq * ux + dyq * uy) / width + 0.5) != bin)
                continue;
            /* Same bin: the chord between the two across the long axis. */
            double chord = (dxq * -uy + dyq * ux) - (dxp * -uy + dyp * ux);
            if (chord > best)
                best = chord;
        }
    }
    return best;
}

/* A box lesion: the long axis is the diagonal between corner voxel centres of one slice (the
 * first of the two diagonals in scan order: (4,10) to (9,13)); the short axis is the longest
 * chord across it, computed here by the definition. */
static void test_measure_box(void **state)
{
    (void)state;
    const double sp[3] = {1.0, 1.25, 2.0};
    rsy_volume *inst = new_volume(sp, RSY_DTYPE_UINT16), *lab = new_volume(sp, RSY_DTYPE_UINT8);
    const int64_t lo[3] = {4, 10, 5}, hi[3] = {9, 13, 7};
    set_box(inst, lab, lo, hi, 1, 2);
    const int64_t lo1[3] = {4, 10, 5}, hi1[3] = {9, 13, 5}; /* bottom slice: label 1 */
    set_box(inst, lab, lo1, hi1, 1, 1);

    rsy_lesion_record r;
    assert_int_equal(rsy_export_measure_lesions(inst, lab, 1, NULL, &r), RSY_OK);
    assert_int_equal(r.instance_id, 1);
    assert_int_equal(r.voxel_count, 6 * 4 * 3);
    assert_int_equal(r.mass_voxel_count, 6 * 4 * 3); /* no flag: all of it is mass */
    assert_float_equal(r.mass_volume_mm3, r.volume_mm3, 0.0);
    assert_float_equal(r.volume_mm3, 72 * 1.0 * 1.25 * 2.0, 1e-9);
    assert_float_equal(r.centroid_vox[0], 6.5, 1e-12);
    assert_float_equal(r.centroid_vox[1], 11.5, 1e-12);
    assert_float_equal(r.centroid_vox[2], 6.0, 1e-12);
    double mm[3];
    rsy_geometry_voxel_to_world(&inst->geom, r.centroid_vox, mm);
    for (int a = 0; a < 3; a++) {
        assert_int_equal(r.bbox_min[a], lo[a]);
        assert_int_equal(r.bbox_max[a], hi[a]);
        assert_float_equal(r.centroid_mm[a], mm[a], 1e-9);
        /* For a box the bbox centre is the centroid; sizes include voxel edges. */
        assert_float_equal(r.box_cccwhd_mm[a], mm[a], 1e-9);
        assert_float_equal(r.box_cccwhd_mm[3 + a], (double)(hi[a] - lo[a] + 1) * sp[a], 1e-9);
    }
    const double a = 5 * sp[0], b = 3 * sp[1];
    assert_float_equal(r.long_axis_mm, sqrt(a * a + b * b), 1e-9);
    int64_t pts[24][2];
    int np = 0;
    for (int64_t j = lo[1]; j <= hi[1]; j++)
        for (int64_t i = lo[0]; i <= hi[0]; i++) {
            pts[np][0] = i;
            pts[np++][1] = j;
        }
    const int64_t ea[2] = {4, 10}, eb[2] = {9, 13};
    const double want =
        short_axis_by_definition((const int64_t(*)[2])pts, np, ea, eb, sp[0], sp[1]);
    assert_float_equal(r.short_axis_mm, want, 1e-9);
    /* Shorter than the caliper width across the diagonal, 2ab/sqrt(a^2+b^2) (the old
     * definition), and longer than the box's short side minus one voxel. */
    assert_true(r.short_axis_mm < 2 * a * b / sqrt(a * a + b * b) - 0.1);
    assert_true(r.short_axis_mm > b - sp[1]);
    assert_int_equal(r.key_slice, 5); /* every slice ties: the lowest wins */
    assert_int_equal(r.slice_min, 5);
    assert_int_equal(r.slice_max, 7);
    assert_float_equal(r.equivalent_diameter_mm, cbrt(6 * r.volume_mm3 / M_PI), 1e-9);
    assert_int_equal(r.label_voxels[0], 0);
    assert_int_equal(r.label_voxels[1], 24);
    assert_int_equal(r.label_voxels[2], 48);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(lab);
}

/* A disc of radius r voxels in one slice: long and short axis are both 2r within one voxel. */
static void test_measure_disc(void **state)
{
    (void)state;
    const double sp[3] = {0.8, 0.8, 3.0};
    rsy_volume *inst = new_volume(sp, RSY_DTYPE_UINT16), *lab = new_volume(sp, RSY_DTYPE_UINT8);
    const int r_vox = 9, c = 15;
    for (int j = 0; j < N; j++)
        for (int i = 0; i < N; i++)
            if ((i - c) * (i - c) + (j - c) * (j - c) <= r_vox * r_vox)
                ((uint16_t *)inst->data)[at(i, j, 20)] = 1;
    rsy_lesion_record r;
    assert_int_equal(rsy_export_measure_lesions(inst, lab, 1, NULL, &r), RSY_OK);
    const double d_mm = 2 * r_vox * sp[0];
    assert_true(fabs(r.long_axis_mm - d_mm) <= sp[0]);
    assert_true(fabs(r.short_axis_mm - d_mm) <= sp[0]);
    assert_true(r.short_axis_mm <= r.long_axis_mm + 1e-12);
    assert_int_equal(r.key_slice, 20);
    assert_int_equal(r.slice_min, 20);
    assert_int_equal(r.slice_max, 20);
    assert_float_equal(r.centroid_vox[0], c, 1e-12); /* symmetric disc */
    assert_float_equal(r.centroid_vox[1], c, 1e-12);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(lab);
}

/* Mass and oedema: a 4 x 2 core (label 1) in a 12 x 8 oedema box (label 2, flagged
 * perilesional) over slices 10..12, the core only on slice 11. The axes and key slice are the
 * core's; counts, volume, box and slice range are the whole lesion's. A lesion made of oedema
 * alone is measured whole. */
static void test_measure_mass(void **state)
{
    (void)state;
    const double sp[3] = {1.0, 1.0, 2.0};
    rsy_volume *inst = new_volume(sp, RSY_DTYPE_UINT16), *lab = new_volume(sp, RSY_DTYPE_UINT8);
    const int64_t lo[3] = {5, 5, 10}, hi[3] = {16, 12, 12};
    set_box(inst, lab, lo, hi, 1, 2);
    const int64_t clo[3] = {9, 8, 11}, chi[3] = {12, 9, 11};
    set_box(inst, lab, clo, chi, 1, 1);
    const int64_t olo[3] = {20, 20, 3}, ohi[3] = {25, 23, 3};
    set_box(inst, lab, olo, ohi, 2, 2);
    unsigned char peri[RSY_MAX_LABELS] = {0};
    peri[2] = 1;

    rsy_lesion_record r[2];
    assert_int_equal(rsy_export_measure_lesions(inst, lab, 2, peri, r), RSY_OK);
    assert_int_equal(r[0].voxel_count, 12 * 8 * 3);
    assert_float_equal(r[0].volume_mm3, 12 * 8 * 3 * 2.0, 1e-9);
    assert_int_equal(r[0].mass_voxel_count, 8);
    assert_float_equal(r[0].mass_volume_mm3, 8 * 2.0, 1e-9);
    assert_int_equal(r[0].label_voxels[1], 8);
    assert_int_equal(r[0].label_voxels[2], 12 * 8 * 3 - 8);
    assert_int_equal(r[0].slice_min, 10);
    assert_int_equal(r[0].slice_max, 12);
    assert_int_equal(r[0].bbox_max[0], 16);
    assert_int_equal(r[0].key_slice, 11);
    /* Core 4 x 2: diagonal (9,8)-(12,9); both bins' chords are 1 voxel across. */
    const int64_t pts[8][2] = {{9, 8}, {10, 8}, {11, 8}, {12, 8},
                               {9, 9}, {10, 9}, {11, 9}, {12, 9}};
    const int64_t ea[2] = {9, 8}, eb[2] = {12, 9};
    assert_float_equal(r[0].long_axis_mm, sqrt(9.0 + 1.0), 1e-12);
    assert_float_equal(r[0].short_axis_mm, short_axis_by_definition(pts, 8, ea, eb, sp[0], sp[1]),
                       1e-12);
    /* Oedema only: no mass voxel, measured whole (6 x 4 in plane). */
    assert_int_equal(r[1].mass_voxel_count, 0);
    assert_float_equal(r[1].mass_volume_mm3, 0.0, 0.0);
    assert_float_equal(r[1].long_axis_mm, sqrt(25.0 + 9.0), 1e-12);
    assert_int_equal(r[1].key_slice, 3);

    /* Without flags the oedema counts: the whole 12 x 8 box is measured. */
    assert_int_equal(rsy_export_measure_lesions(inst, lab, 2, NULL, r), RSY_OK);
    assert_int_equal(r[0].mass_voxel_count, r[0].voxel_count);
    assert_float_equal(r[0].long_axis_mm, sqrt(121.0 + 49.0), 1e-12);
    assert_int_equal(r[0].key_slice, 10);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(lab);
}

/* Several lesions: a single voxel (axes 0), a 3-voxel line (long 2 voxels, short 0), an
 * instance with no voxel, and voxels of an id above n_instances (ignored). */
static void test_measure_several(void **state)
{
    (void)state;
    const double sp[3] = {1.5, 1.0, 1.0};
    rsy_volume *inst = new_volume(sp, RSY_DTYPE_UINT16), *lab = new_volume(sp, RSY_DTYPE_UINT8);
    ((uint16_t *)inst->data)[at(3, 3, 3)] = 1;
    const int64_t lo[3] = {10, 12, 14}, hi[3] = {12, 12, 14};
    set_box(inst, lab, lo, hi, 2, 3);
    ((uint16_t *)inst->data)[at(30, 30, 30)] = 4;
    rsy_lesion_record r[3];
    assert_int_equal(rsy_export_measure_lesions(inst, lab, 3, NULL, r), RSY_OK);
    assert_int_equal(r[0].voxel_count, 1);
    assert_float_equal(r[0].long_axis_mm, 0.0, 0.0);
    assert_float_equal(r[0].short_axis_mm, 0.0, 0.0);
    assert_int_equal(r[0].key_slice, 3);
    assert_float_equal(r[0].equivalent_diameter_mm, cbrt(6 * 1.5 / M_PI), 1e-12);
    assert_int_equal(r[0].label_voxels[0], 1);
    assert_int_equal(r[1].voxel_count, 3);
    assert_float_equal(r[1].long_axis_mm, 2 * sp[0], 1e-12);
    assert_float_equal(r[1].short_axis_mm, 0.0, 1e-12);
    assert_int_equal(r[1].label_voxels[3], 3);
    assert_int_equal(r[2].instance_id, 3);
    assert_int_equal(r[2].voxel_count, 0);
    assert_float_equal(r[2].volume_mm3, 0.0, 0.0);

    /* Error paths: wrong dtype, geometry mismatch. */
    errors_reset();
    assert_int_equal(rsy_export_measure_lesions(lab, lab, 1, NULL, r), RSY_EINVAL);
    const double sp2[3] = {1.0, 1.0, 1.0};
    rsy_volume *lab2 = new_volume(sp2, RSY_DTYPE_UINT8);
    assert_int_equal(rsy_export_measure_lesions(inst, lab2, 1, NULL, r), RSY_EINVAL);
    assert_true(logged("geometry", NULL));
    rsy_volume_destroy(lab2);
    rsy_volume_destroy(inst);
    rsy_volume_destroy(lab);
}

/* ---------------------------------------------------------------------------------------- */
/* Files and trees                                                                            */
/* ---------------------------------------------------------------------------------------- */
static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_prepare_dir(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-prep");
    assert_non_null(tmp);
    char out[1024], p[1200], outside[1200];
    errors_reset();

    /* Missing (nested) directory: created, marker written. */
    snprintf(out, sizeof out, "%s/a/b", tmp);
    assert_int_equal(rsy_export_prepare_dir(out, 0), RSY_OK);
    snprintf(p, sizeof p, "%s/.raresynth", out);
    assert_true(exists(p));
    /* Only the marker: counts as non-empty, but force may replace it. */
    assert_int_equal(rsy_export_prepare_dir(out, 0), RSY_EIO);
    assert_true(logged("output directory is not empty (use --force)", NULL));

    /* With a marker and force: contents removed; a symlink is removed, not followed. */
    snprintf(outside, sizeof outside, "%s/keep.txt", tmp);
    write_text(outside, "must survive");
    snprintf(p, sizeof p, "%s/sub", out);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/sub/file.txt", out);
    write_text(p, "old");
    snprintf(p, sizeof p, "%s/link", out);
    assert_int_equal(symlink(outside, p), 0);
    assert_int_equal(rsy_export_prepare_dir(out, 1), RSY_OK);
    assert_false(exists(p));
    snprintf(p, sizeof p, "%s/sub", out);
    assert_false(exists(p));
    assert_true(exists(outside));
    snprintf(p, sizeof p, "%s/.raresynth", out);
    assert_true(exists(p));

    /* A non-empty directory without the marker is never emptied, even with force. */
    errors_reset();
    snprintf(out, sizeof out, "%s/theirs", tmp);
    assert_int_equal(mkdir(out, 0755), 0);
    snprintf(p, sizeof p, "%s/precious.txt", out);
    write_text(p, "data");
    assert_int_equal(rsy_export_prepare_dir(out, 1), RSY_EIO);
    assert_true(logged("theirs", "marker"));
    assert_true(exists(p));
    assert_int_equal(rsy_export_prepare_dir(out, 0), RSY_EIO);

    /* A regular file is not a directory. */
    assert_int_equal(rsy_export_prepare_dir(p, 1), RSY_EIO);
    /* An empty existing directory is fine. */
    snprintf(out, sizeof out, "%s/empty", tmp);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(rsy_export_prepare_dir(out, 0), RSY_OK);

    tu_rmtree(tmp);
    free(tmp);
}

/* ---------------------------------------------------------------------------------------- */
/* A small dataset: 3 cases, 2 channels, 32^3                                                 */
/* ---------------------------------------------------------------------------------------- */
#define N_CASES 3
#define PRIOR_PATH "configs/priors/glioblastoma.json"
#define TISSUE_PATH "configs/tissues/mri-brain.json"
static const char *const label_names[] = {"background", "necrotic_core", "oedema",
                                          "enhancing_tumour"};
static const unsigned char perilesional[] = {0, 0, 1, 0}; /* oedema */

static rsy_recipe *make_recipe(void)
{
    rsy_recipe *r = calloc(1, sizeof *r);
    assert_non_null(r);
    snprintf(r->path, sizeof r->path, "/somewhere/recipes/export-test.json");
    snprintf(r->sha256, sizeof r->sha256, "%064d", 7);
    static char json[] = "{\"raresynth_recipe\": 1, \"name\": \"ExportTest\", \"dataset_id\": 7,"
                         " \"seed\": \"18446744073709551557\"}";
    r->json = json;
    snprintf(r->name, sizeof r->name, "ExportTest");
    r->dataset_id = 7;
    snprintf(r->description, sizeof r->description, "export unit test");
    r->cases = N_CASES;
    r->seed = UINT64_C(18446744073709551557); /* > 2^53: must survive as a string */
    snprintf(r->modality, sizeof r->modality, "mri");
    r->mri.field_t = 3.0;
    r->mri.gd_r1_per_mM_s = 4.0;
    r->mri.bias_amplitude = 0.1;
    r->mri.bias_scale_mm = 120;
    r->mri.n_sequences = 2;
    rsy_sequence *s = &r->mri.sequences[0];
    snprintf(s->name, sizeof s->name, "T1w");
    s->kind = RSY_SEQ_SPIN_ECHO;
    s->tr_ms = 600;
    s->te_ms = 15;
    s->noise_percent = 3;
    snprintf(s->noise_reference, sizeof s->noise_reference, "white_matter");
    s = &r->mri.sequences[1];
    snprintf(s->name, sizeof s->name, "FLAIR");
    s->kind = RSY_SEQ_INVERSION_RECOVERY;
    s->tr_ms = 9000;
    s->te_ms = 120;
    s->ti_ms = 2500;
    s->noise_percent = 3;
    snprintf(s->noise_reference, sizeof s->noise_reference, "csf");
    /* Provenance: the shipped prior and tissue table are hashed into raresynth.json. */
    r->n_lesion_types = 1;
    snprintf(r->lesions[0].prior.name, sizeof r->lesions[0].prior.name, "glioblastoma");
    snprintf(r->lesions[0].prior.path, sizeof r->lesions[0].prior.path, PRIOR_PATH);
    snprintf(r->tissues.name, sizeof r->tissues.name, "mri-brain");
    snprintf(r->tissues.path, sizeof r->tissues.path, TISSUE_PATH);
    return r;
}

typedef struct tcase {
    rsy_volume *ch[2], *lab, *inst;
    const rsy_volume *chp[2];
    rsy_lesion_info lesions[3];
    rsy_kv params[2], subject[2], acq[1];
    rsy_case_data data;
} tcase;

/* The fixture's voxel spacing: exact in float unless a test changes it. */
static double case_spacing[3] = {1.0, 1.0, 1.5};

/* Case 0 and 1: a ball (core 1 inside oedema 2) and a box (enhancing 3); case 2: no lesion. */
static void make_case(tcase *t, size_t index)
{
    const double *sp = case_spacing;
    memset(t, 0, sizeof *t);
    for (int c = 0; c < 2; c++) {
        t->ch[c] = new_volume(sp, RSY_DTYPE_FLOAT32);
        float *x = t->ch[c]->data;
        for (size_t i = 0; i < (size_t)N * N * N; i++)
            x[i] = (float)(100.0 * (double)(c + 1) + (double)((i * 7919u + index * 31u) % 97u));
        t->chp[c] = t->ch[c];
    }
    t->lab = new_volume(sp, RSY_DTYPE_UINT8);
    t->inst = new_volume(sp, RSY_DTYPE_UINT16);
    int n_les = index < 2 ? 2 : 0;
    if (n_les) {
        const int cx = 10 + (int)index * 3, cy = 12, cz = 14;
        for (int k = 0; k < N; k++)
            for (int j = 0; j < N; j++)
                for (int i = 0; i < N; i++) {
                    int d2 = (i - cx) * (i - cx) + (j - cy) * (j - cy) + (k - cz) * (k - cz);
                    if (d2 <= 25) {
                        ((uint16_t *)t->inst->data)[at(i, j, k)] = 1;
                        ((uint8_t *)t->lab->data)[at(i, j, k)] = d2 <= 4 ? 1 : 2;
                    }
                }
        const int64_t lo[3] = {22, 20, 4}, hi[3] = {26, 22, 6 + (int64_t)index};
        set_box(t->inst, t->lab, lo, hi, 2, 3);
    }
    t->params[0] = (rsy_kv){"diameter_mm", RSY_KV_NUMBER, 10.0, NULL};
    t->params[1] = (rsy_kv){"shape", RSY_KV_STRING, 0.0, "ball"};
    t->lesions[0] = (rsy_lesion_info){
        1, "glioblastoma", "Glioblastoma", "white_matter", "right frontal lobe", t->params, 2};
    t->lesions[1] = (rsy_lesion_info){
        2, "glioblastoma", "Glioblastoma", "grey_matter", "left parietal lobe", t->params, 1};
    t->subject[0] = (rsy_kv){"sex", RSY_KV_STRING, 0.0, index % 2 ? "male" : "female"};
    t->subject[1] = (rsy_kv){"age_years", RSY_KV_NUMBER, 40.0 + (double)index, NULL};
    t->acq[0] = (rsy_kv){"noise_sigma_T1w", RSY_KV_NUMBER, 0.03, NULL};
    t->data = (rsy_case_data){index, t->chp,     2, t->lab, t->inst, t->lesions,
                              n_les, t->subject, 2, t->acq, 1,       "A test finding."};
}

static void free_case(tcase *t)
{
    for (int c = 0; c < 2; c++)
        rsy_volume_destroy(t->ch[c]);
    rsy_volume_destroy(t->lab);
    rsy_volume_destroy(t->inst);
}

typedef struct writer_ctx {
    rsy_export *e;
    tcase *cases;
} writer_ctx;

/* Pool task: task i writes case N_CASES-1-i, so two workers write in reverse order. */
static rsy_status write_reverse(void *ctx, size_t index, int worker)
{
    (void)worker;
    writer_ctx *w = ctx;
    return rsy_export_write_case(w->e, &w->cases[N_CASES - 1 - index].data);
}

/* Write the test dataset into @p out (prepared first); @p threads 1 = in order. */
static void write_dataset(const char *out, const rsy_recipe *r, int threads)
{
    tcase cases[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        make_case(&cases[i], i);
    assert_int_equal(rsy_export_prepare_dir(out, 1), RSY_OK);
    rsy_export_params p = {.recipe = r,
                           .out_dir = out,
                           .label_names = label_names,
                           .n_labels = 4,
                           .texture_note = "uniform tissue properties (test)",
                           .label_perilesional = perilesional};
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &p), RSY_OK);
    if (threads == 1) {
        for (size_t i = 0; i < N_CASES; i++)
            assert_int_equal(rsy_export_write_case(e, &cases[i].data), RSY_OK);
    } else {
        rsy_pool *pool = NULL;
        assert_int_equal(rsy_pool_create(&pool, threads), RSY_OK);
        writer_ctx w = {e, cases};
        assert_int_equal(rsy_pool_run(pool, N_CASES, write_reverse, &w), RSY_OK);
        rsy_pool_destroy(pool);
    }
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    for (size_t i = 0; i < N_CASES; i++)
        free_case(&cases[i]);
}

/* Byte comparison of two trees, through nftw over the first. */
static const char *cmp_root_a, *cmp_root_b;
static int cmp_files, cmp_diffs;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            char *g = realloc(buf, cap);
            assert_non_null(g);
            buf = g;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

static int cmp_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    char other[2048];
    snprintf(other, sizeof other, "%s%s", cmp_root_b, path + strlen(cmp_root_a));
    size_t la = 0, lb = 0;
    char *a = slurp(path, &la), *b = slurp(other, &lb);
    cmp_files++;
    if (!a || !b || la != lb || memcmp(a, b, la) != 0) {
        fprintf(stderr, "differs: %s\n", path + strlen(cmp_root_a));
        cmp_diffs++;
    }
    free(a);
    free(b);
    return 0;
}

static int part_files;
static int part_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (strstr(path, ".part"))
        part_files++;
    return 0;
}

static int count_part_files(const char *dir)
{
    part_files = 0;
    nftw(dir, part_cb, 16, FTW_PHYS);
    return part_files;
}

static void test_dataset_roundtrip(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-ds");
    assert_non_null(tmp);
    char a[1024], b[1024], p[1200];
    rsy_recipe *r = make_recipe();
    errors_reset();
    snprintf(a, sizeof a, "%s/in_order", tmp);
    snprintf(b, sizeof b, "%s/reverse", tmp);
    write_dataset(a, r, 1);
    write_dataset(b, r, 2);

    rsy_validate_report rep;
    assert_int_equal(rsy_export_validate(a, &rep), RSY_OK);
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.complete, 1);
    assert_int_equal(rep.cases_checked, N_CASES);
    /* Per case: 2 images + label + instances + manifest; plus raresynth.json, dataset.json. */
    assert_int_equal(rep.files_checked, N_CASES * 5 + 2);
    assert_int_equal(errors_len, 0);

    cmp_root_a = a;
    cmp_root_b = b;
    cmp_files = cmp_diffs = 0;
    assert_int_equal(nftw(a, cmp_cb, 16, FTW_PHYS), 0);
    assert_int_equal(cmp_diffs, 0);
    assert_int_equal(cmp_files, N_CASES * 5 + 4); /* + marker, dataset_description.json */

    /* Layout and key facts. */
    snprintf(p, sizeof p, "%s/Dataset007_ExportTest/imagesTr/case_0002_0001.nii.gz", a);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s/raresynth.json", a);
    size_t len = 0;
    char *text = slurp(p, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"seed\":\t\"18446744073709551557\""));
    assert_null(strstr(text, tmp)); /* no absolute path */
    cJSON *doc = cJSON_Parse(text);
    assert_non_null(doc);
    cJSON *rec = cJSON_GetObjectItemCaseSensitive(doc, "recipe");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(rec, "path")->valuestring,
                        "export-test.json");
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(rec, "content")));
    /* Provenance: the values used and the configuration files, hashed. */
    cJSON *eff = cJSON_GetObjectItemCaseSensitive(doc, "effective");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(eff, "cases")->valueint, N_CASES);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(eff, "seed")->valuestring,
                        "18446744073709551557");
    char sha[65];
    cJSON *pr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "priors"), 0);
    assert_int_equal(rsy_sha256_file(PRIOR_PATH, sha), RSY_OK);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(pr, "name")->valuestring, "glioblastoma");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(pr, "file")->valuestring,
                        "glioblastoma.json");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(pr, "sha256")->valuestring, sha);
    cJSON *tt = cJSON_GetObjectItemCaseSensitive(doc, "tissue_table");
    assert_int_equal(rsy_sha256_file(TISSUE_PATH, sha), RSY_OK);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tt, "file")->valuestring,
                        "mri-brain.json");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tt, "sha256")->valuestring, sha);
    cJSON *pl = cJSON_GetObjectItemCaseSensitive(doc, "labels_perilesional");
    assert_int_equal(cJSON_GetArraySize(pl), 1);
    assert_string_equal(cJSON_GetArrayItem(pl, 0)->valuestring, "oedema");
    cJSON_Delete(doc);
    free(text);
    /* Case 0, lesion 1: a ball of radius 5 voxels whose core (radius 2) is the mass. */
    snprintf(p, sizeof p, "%s/manifests/case_0000.json", a);
    text = slurp(p, &len);
    assert_non_null(text);
    doc = cJSON_Parse(text);
    assert_non_null(doc);
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(doc, "labels_perilesional"),
                              pl = cJSON_Parse("[\"oedema\"]"), 1));
    cJSON_Delete(pl);
    int64_t ball = 0, core = 0;
    for (int k = -5; k <= 5; k++)
        for (int j = -5; j <= 5; j++)
            for (int i = -5; i <= 5; i++) {
                ball += i * i + j * j + k * k <= 25;
                core += i * i + j * j + k * k <= 4;
            }
    cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "lesions"), 0);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(l0, "voxel_count")->valuedouble, ball);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(l0, "mass_voxel_count")->valuedouble, core);
    assert_float_equal(cJSON_GetObjectItemCaseSensitive(l0, "mass_volume_mm3")->valuedouble,
                       (double)core * 1.5, 1e-9);
    /* The core's diameter between voxel centres is 4 voxels, not the ball's 10. */
    assert_float_equal(cJSON_GetObjectItemCaseSensitive(l0, "long_axis_mm")->valuedouble, 4.0,
                       1e-9);
    cJSON_Delete(doc);
    free(text);
    snprintf(p, sizeof p, "%s/Dataset007_ExportTest/dataset.json", a);
    text = slurp(p, &len);
    assert_non_null(text);
    doc = cJSON_Parse(text);
    assert_non_null(doc);
    assert_null(cJSON_GetObjectItemCaseSensitive(doc, "dataset"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(doc, "numTraining")->valueint, N_CASES);
    cJSON *ln = cJSON_GetObjectItemCaseSensitive(doc, "labels");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(ln, "enhancing_tumour")->valueint, 3);
    cJSON *cn = cJSON_GetObjectItemCaseSensitive(doc, "channel_names");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cn, "1")->valuestring, "FLAIR");
    cJSON_Delete(doc);
    free(text);
    /* Case 2 has no lesion: an empty list. */
    snprintf(p, sizeof p, "%s/manifests/case_0002.json", a);
    text = slurp(p, &len);
    assert_non_null(text);
    doc = cJSON_Parse(text);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "lesions")), 0);
    cJSON_Delete(doc);
    free(text);

    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* ---------------------------------------------------------------------------------------- */
/* Corruptions: each one alone on a fresh dataset, each reported                              */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    C_DELETE_CHANNEL,
    C_FLIP_BYTE,
    C_EDIT_VOXEL_COUNT,
    C_STRAY_FILE,
    C_UNDECLARED_LABEL,
    C_NO_DATASET_MANIFEST,
    C_UNSAFE_CASE_ID,
    C_N_LESIONS,
    C_SUMMARY_MAX,
    C_CHANNELS
} corruption;

static void edit_json(const char *path, corruption c)
{
    size_t len;
    char *text = slurp(path, &len);
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    assert_non_null(doc);
    free(text);
    if (c == C_EDIT_VOXEL_COUNT) {
        cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "lesions"), 0);
        cJSON *vc = cJSON_GetObjectItemCaseSensitive(l0, "voxel_count");
        cJSON_SetNumberValue(vc, vc->valuedouble + 1);
    } else if (c == C_UNSAFE_CASE_ID) {
        cJSON *c1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "cases"), 1);
        cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(c1, "case_id"), "../../etc");
    } else if (c == C_N_LESIONS) {
        cJSON *c1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "cases"), 1);
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(c1, "n_lesions"), 3);
    } else if (c == C_SUMMARY_MAX) {
        cJSON *lv = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(doc, "summary"), "lesion_volume_mm3");
        cJSON *mx = cJSON_GetObjectItemCaseSensitive(lv, "max");
        cJSON_SetNumberValue(mx, mx->valuedouble * (1.0 + 1e-6));
    } else {
        cJSON *ch = cJSON_GetObjectItemCaseSensitive(doc, "channels");
        cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(ch, "1"), "T2w");
    }
    text = cJSON_Print(doc);
    write_text(path, text);
    cJSON_free(text);
    cJSON_Delete(doc);
}

static void corrupt(const char *dir, corruption c)
{
    char p[1200];
    const char *nn = "Dataset007_ExportTest";
    switch (c) {
    case C_DELETE_CHANNEL:
        snprintf(p, sizeof p, "%s/%s/imagesTr/case_0001_0001.nii.gz", dir, nn);
        assert_int_equal(remove(p), 0);
        break;
    case C_FLIP_BYTE: {
        snprintf(p, sizeof p, "%s/%s/imagesTr/case_0000_0000.nii.gz", dir, nn);
        FILE *f = fopen(p, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, 2000, SEEK_SET), 0);
        int ch = fgetc(f);
        assert_int_equal(fseek(f, 2000, SEEK_SET), 0);
        fputc(ch ^ 0x5a, f);
        assert_int_equal(fclose(f), 0);
        break;
    }
    case C_EDIT_VOXEL_COUNT:
        snprintf(p, sizeof p, "%s/manifests/case_0001.json", dir);
        edit_json(p, c);
        break;
    case C_STRAY_FILE:
        snprintf(p, sizeof p, "%s/%s/imagesTr/stray.nii.gz", dir, nn);
        write_text(p, "not an image");
        break;
    case C_UNDECLARED_LABEL: {
        const double sp[3] = {1.0, 1.0, 1.5};
        rsy_volume *lab = new_volume(sp, RSY_DTYPE_UINT8);
        ((uint8_t *)lab->data)[at(1, 2, 3)] = 9;
        snprintf(p, sizeof p, "%s/%s/labelsTr/case_0002.nii.gz", dir, nn);
        assert_int_equal(rsy_volume_write_nifti(lab, p, RSY_NIFTI_LABEL), RSY_OK);
        rsy_volume_destroy(lab);
        break;
    }
    case C_NO_DATASET_MANIFEST:
        snprintf(p, sizeof p, "%s/raresynth.json", dir);
        assert_int_equal(remove(p), 0);
        break;
    case C_UNSAFE_CASE_ID:
    case C_N_LESIONS:
    case C_SUMMARY_MAX:
    case C_CHANNELS:
        snprintf(p, sizeof p, "%s/raresynth.json", dir);
        edit_json(p, c);
        break;
    }
}

static void check_corruption(const char *tmp, const rsy_recipe *r, corruption c, const char *a,
                             const char *b)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/c%d", tmp, (int)c);
    write_dataset(dir, r, 1);
    corrupt(dir, c);
    errors_reset();
    rsy_validate_report rep;
    assert_int_equal(rsy_export_validate(dir, &rep), RSY_EINVALID_DATASET);
    assert_true(rep.problems > 0);
    assert_true(logged(a, b));
    /* Every case is still checked, whatever is wrong elsewhere. */
    assert_int_equal(rep.cases_checked, c == C_UNSAFE_CASE_ID ? N_CASES - 1 : N_CASES);
    assert_int_equal(rep.complete, c != C_NO_DATASET_MANIFEST);
    tu_rmtree(dir);
}

static void test_validate_corruptions(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-bad");
    assert_non_null(tmp);
    rsy_recipe *r = make_recipe();
    check_corruption(tmp, r, C_DELETE_CHANNEL, "imagesTr/case_0001_0001.nii.gz: missing",
                     "channel 1 (FLAIR)");
    check_corruption(tmp, r, C_FLIP_BYTE, "case_0000_0000.nii.gz: SHA-256 differs",
                     "raresynth.json");
    check_corruption(tmp, r, C_EDIT_VOXEL_COUNT, "manifests/case_0001.json: lesions[0]",
                     "voxel_count is");
    check_corruption(tmp, r, C_STRAY_FILE, "imagesTr: stray file stray.nii.gz", NULL);
    check_corruption(tmp, r, C_UNDECLARED_LABEL, "labelsTr/case_0002.nii.gz: label value 9",
                     "not declared");
    check_corruption(tmp, r, C_NO_DATASET_MANIFEST, "incomplete dataset", "raresynth.json missing");
    check_corruption(tmp, r, C_UNSAFE_CASE_ID, "raresynth.json: cases[1].case_id", "unsafe");
    /* raresynth.json against the cases: each tampering is one line naming file and key. */
    check_corruption(tmp, r, C_N_LESIONS, "raresynth.json: cases[1].n_lesions is 3",
                     "manifests/case_0001.json has 2 lesion records");
    check_corruption(tmp, r, C_SUMMARY_MAX, "raresynth.json: summary.lesion_volume_mm3.max is",
                     "recomputed from the cases");
    check_corruption(tmp, r, C_CHANNELS, "raresynth.json: channels differ",
                     "channel_names in Dataset007_ExportTest/dataset.json");
    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* ---------------------------------------------------------------------------------------- */
/* Error paths of the writer                                                                  */
/* ---------------------------------------------------------------------------------------- */
static void test_writer_errors(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-err");
    assert_non_null(tmp);
    char out[1024], p[1200];
    rsy_recipe *r = make_recipe();
    tcase t;
    make_case(&t, 0);
    errors_reset();
    snprintf(out, sizeof out, "%s/ds", tmp);
    assert_int_equal(rsy_export_prepare_dir(out, 0), RSY_OK);

    /* Bad label dictionaries. */
    const char *bad_names[] = {"lesion", "background"};
    rsy_export_params bp = {.recipe = r,
                            .out_dir = out,
                            .label_names = bad_names,
                            .n_labels = 2,
                            .texture_note = NULL,
                            .label_perilesional = NULL};
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &bp), RSY_EINVAL);
    assert_null(e);
    const char *dup_names[] = {"background", "x", "x"};
    bp.label_names = dup_names;
    bp.n_labels = 3;
    assert_int_equal(rsy_export_begin(&e, &bp), RSY_EINVAL);

    /* Background cannot be perilesional. */
    const unsigned char bg_peri[] = {1, 0, 0, 0};
    rsy_export_params pp = {.recipe = r,
                            .out_dir = out,
                            .label_names = label_names,
                            .n_labels = 4,
                            .texture_note = NULL,
                            .label_perilesional = bg_peri};
    assert_int_equal(rsy_export_begin(&e, &pp), RSY_EINVAL);
    assert_true(logged("background", "perilesional"));
    /* A tissue table without a file path cannot be recorded; an unreadable prior not hashed. */
    rsy_recipe *r2 = make_recipe();
    r2->tissues.path[0] = '\0';
    pp = (rsy_export_params){.recipe = r2,
                             .out_dir = out,
                             .label_names = label_names,
                             .n_labels = 4,
                             .texture_note = NULL,
                             .label_perilesional = NULL};
    assert_int_equal(rsy_export_begin(&e, &pp), RSY_EINVAL);
    assert_true(logged("tissue table", "no file path"));
    snprintf(r2->tissues.path, sizeof r2->tissues.path, TISSUE_PATH);
    snprintf(r2->lesions[0].prior.path, sizeof r2->lesions[0].prior.path, "%s/none.json", tmp);
    assert_int_equal(rsy_export_begin(&e, &pp), RSY_EIO);
    assert_null(e);
    free(r2);

    rsy_export_params p2 = {.recipe = r,
                            .out_dir = out,
                            .label_names = label_names,
                            .n_labels = 4,
                            .texture_note = NULL,
                            .label_perilesional = NULL};
    assert_int_equal(rsy_export_begin(&e, &p2), RSY_OK);
    /* A case index beyond the dataset, a label value outside the dictionary. */
    t.data.case_index = N_CASES;
    assert_int_equal(rsy_export_write_case(e, &t.data), RSY_EINVAL);
    t.data.case_index = 0;
    ((uint8_t *)t.lab->data)[0] = 4;
    assert_int_equal(rsy_export_write_case(e, &t.data), RSY_EINVAL);
    assert_true(logged("label value 4", "not in the dictionary"));
    ((uint8_t *)t.lab->data)[0] = 0;
    /* finish() before every case is written. */
    assert_int_equal(rsy_export_finish(e), RSY_EINVAL);
    assert_true(logged("3 of 3 cases not written", NULL));

    /* Unwritable location: imagesTr replaced by a regular file. */
    snprintf(p, sizeof p, "%s/Dataset007_ExportTest/imagesTr", out);
    assert_int_equal(rmdir(p), 0);
    write_text(p, "in the way");
    assert_int_equal(rsy_export_write_case(e, &t.data), RSY_EIO);
    assert_int_equal(count_part_files(out), 0);
    assert_int_equal(remove(p), 0);
    assert_int_equal(mkdir(p, 0755), 0);

    /* The dataset manifest's name taken by a directory: the rename fails, no .part stays. */
    for (size_t i = 0; i < N_CASES; i++) {
        tcase c;
        make_case(&c, i);
        assert_int_equal(rsy_export_write_case(e, &c.data), RSY_OK);
        free_case(&c);
    }
    snprintf(p, sizeof p, "%s/raresynth.json", out);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(rsy_export_finish(e), RSY_EIO);
    assert_int_equal(count_part_files(out), 0);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    rsy_export_destroy(NULL);

    rsy_validate_report rep;
    errors_reset();
    assert_int_equal(rsy_export_validate(out, &rep), RSY_OK);
    snprintf(p, sizeof p, "%s/nothing-here", tmp);
    assert_int_equal(rsy_export_validate(p, &rep), RSY_EIO);

    free_case(&t);
    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* A case whose last NIfTI file cannot be put in place leaves no file at all; the cases
 * written before it are untouched, and the case can be written again later. */
static void test_failed_case_leaves_nothing(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-atomic");
    assert_non_null(tmp);
    char out[1024], p[1200], block[1200];
    rsy_recipe *r = make_recipe();
    tcase cases[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        make_case(&cases[i], i);
    errors_reset();
    snprintf(out, sizeof out, "%s/ds", tmp);
    assert_int_equal(rsy_export_prepare_dir(out, 0), RSY_OK);
    rsy_export_params ep = {.recipe = r,
                            .out_dir = out,
                            .label_names = label_names,
                            .n_labels = 4,
                            .texture_note = NULL,
                            .label_perilesional = perilesional};
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &ep), RSY_OK);
    assert_int_equal(rsy_export_write_case(e, &cases[0].data), RSY_OK);
    assert_int_equal(rsy_export_write_case(e, &cases[1].data), RSY_OK);

    /* A directory where case 2's label map goes: its rename fails after the images moved. */
    snprintf(block, sizeof block, "%s/Dataset007_ExportTest/labelsTr/case_0002.nii.gz", out);
    assert_int_equal(mkdir(block, 0755), 0);
    assert_int_equal(rsy_export_write_case(e, &cases[2].data), RSY_EIO);
    assert_true(logged("case_0002.nii.gz", NULL));
    static const char *const gone[] = {"Dataset007_ExportTest/imagesTr/case_0002_0000.nii.gz",
                                       "Dataset007_ExportTest/imagesTr/case_0002_0001.nii.gz",
                                       "instances/case_0002.nii.gz", "manifests/case_0002.json",
                                       ".staging/case_0002"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out, gone[i]);
        if (exists(p))
            fprintf(stderr, "left behind: %s\n", gone[i]);
        assert_false(exists(p));
    }
    assert_int_equal(count_part_files(out), 0);
    /* Earlier cases intact, and the failed case counts as not written. */
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/manifests/case_%04d.json", out, c);
        assert_true(exists(p));
        snprintf(p, sizeof p, "%s/Dataset007_ExportTest/labelsTr/case_%04d.nii.gz", out, c);
        assert_true(exists(p));
    }
    assert_int_equal(rsy_export_finish(e), RSY_EINVAL);
    assert_true(logged("1 of 3 cases not written", "first: case 2"));

    /* Unblocked: the case is written and the whole dataset validates. */
    assert_int_equal(rmdir(block), 0);
    assert_int_equal(rsy_export_write_case(e, &cases[2].data), RSY_OK);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    snprintf(p, sizeof p, "%s/.staging", out);
    assert_false(exists(p));
    rsy_validate_report rep;
    errors_reset();
    assert_int_equal(rsy_export_validate(out, &rep), RSY_OK);

    for (size_t i = 0; i < N_CASES; i++)
        free_case(&cases[i]);
    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* ---------------------------------------------------------------------------------------- */
/* Layouts, previews, HDF5, adopt_case and shards                                             */
/* ---------------------------------------------------------------------------------------- */
#define ALL_LAYOUTS (RSY_LAYOUT_NNUNET | RSY_LAYOUT_MSD | RSY_LAYOUT_NNDET)
#define NN_DIR "Dataset007_ExportTest"
#define ND_DIR "Task007_ExportTest"

/* make_case with case 1's lesions shifted: instance 1 has no voxel (a lesion placed, then
 * confined away), the ball is instance 2 and the box instance 3, so nnDetection's instance
 * map of case 1 is renumbered. */
static void make_case_ext(tcase *t, size_t index)
{
    make_case(t, index);
    if (index != 1)
        return;
    uint16_t *v = t->inst->data;
    for (size_t i = 0; i < (size_t)N * N * N; i++)
        if (v[i])
            v[i]++;
    t->lesions[2] = t->lesions[1];
    t->lesions[1] = t->lesions[0];
    t->lesions[0] = (rsy_lesion_info){
        1, "glioblastoma", "Glioblastoma", "white_matter", "left occipital lobe", t->params, 1};
    t->lesions[1].instance_id = 2;
    t->lesions[2].instance_id = 3;
    t->data.n_lesions = 3;
}

typedef struct run_opts {
    unsigned layouts, formats;
    int preview;
    int64_t shard_index, shard_count;
} run_opts;

static const run_opts all_opts = {ALL_LAYOUTS, RSY_FORMAT_NIFTI | RSY_FORMAT_HDF5, 1, 0, 0};

static rsy_export_params ext_params(const rsy_recipe *r, const char *out, const run_opts *o)
{
    rsy_export_params p = {.recipe = r,
                           .out_dir = out,
                           .label_names = label_names,
                           .n_labels = 4,
                           .texture_note = "uniform tissue properties (test)",
                           .label_perilesional = perilesional,
                           .layouts = o->layouts,
                           .formats = o->formats,
                           .preview = o->preview,
                           .shard_index = o->shard_index,
                           .shard_count = o->shard_count};
    return p;
}

static int in_shard(const run_opts *o, size_t i)
{
    return o->shard_count < 2 || (int64_t)i % o->shard_count == o->shard_index;
}

/* Prepare @p out, write every case the options hold (make_case_ext) and finish. */
static void write_ext(const char *out, const rsy_recipe *r, const run_opts *o)
{
    assert_int_equal(rsy_export_prepare_dir(out, 1), RSY_OK);
    rsy_export_params p = ext_params(r, out, o);
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &p), RSY_OK);
    for (size_t i = 0; i < N_CASES; i++) {
        if (!in_shard(o, i))
            continue;
        tcase c;
        make_case_ext(&c, i);
        assert_int_equal(rsy_export_write_case(e, &c.data), RSY_OK);
        free_case(&c);
    }
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
}

static void path_of(char *buf, size_t n, const char *dir, const char *rel)
{
    int w = snprintf(buf, n, "%s/%s", dir, rel);
    assert_true(w > 0 && (size_t)w < n);
}

static cJSON *load_json(const char *dir, const char *rel)
{
    char p[2048];
    path_of(p, sizeof p, dir, rel);
    size_t len = 0;
    char *text = slurp(p, &len);
    if (!text)
        fprintf(stderr, "missing: %s\n", p);
    assert_non_null(text);
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    assert_non_null(doc);
    return doc;
}

static cJSON *jget(const cJSON *o, const char *key)
{
    cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x)
        fprintf(stderr, "key missing: %s\n", key);
    assert_non_null(x);
    return x;
}

/* @p doc's item @p key equals the JSON text @p want. */
static void assert_json(const cJSON *doc, const char *key, const char *want)
{
    cJSON *w = cJSON_Parse(want);
    assert_non_null(w);
    cJSON *have = jget(doc, key);
    if (!cJSON_Compare(have, w, 1)) {
        char *t = cJSON_PrintUnformatted(have);
        fprintf(stderr, "%s: got %s, want %s\n", key, t, want);
        cJSON_free(t);
    }
    assert_true(cJSON_Compare(have, w, 1));
    cJSON_Delete(w);
}

static int same_inode(const char *dir, const char *a, const char *b)
{
    char pa[2048], pb[2048];
    struct stat sa, sb;
    path_of(pa, sizeof pa, dir, a);
    path_of(pb, sizeof pb, dir, b);
    assert_int_equal(stat(pa, &sa), 0);
    assert_int_equal(stat(pb, &sb), 0);
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int exists_in(const char *dir, const char *rel)
{
    char p[2048];
    path_of(p, sizeof p, dir, rel);
    return exists(p);
}

static void remove_in(const char *dir, const char *rel)
{
    char p[2048];
    path_of(p, sizeof p, dir, rel);
    assert_int_equal(remove(p), 0);
}

/* Both trees hold the same regular files with the same bytes. */
static void assert_trees_equal(const char *a, const char *b)
{
    cmp_root_a = a;
    cmp_root_b = b;
    cmp_files = cmp_diffs = 0;
    assert_int_equal(nftw(a, cmp_cb, 16, FTW_PHYS), 0);
    int n_a = cmp_files;
    cmp_root_a = b;
    cmp_root_b = a;
    cmp_files = 0;
    assert_int_equal(nftw(b, cmp_cb, 16, FTW_PHYS), 0);
    assert_int_equal(cmp_files, n_a);
    assert_int_equal(cmp_diffs, 0);
}

static int error_lines(void)
{
    int n = 0;
    for (const char *c = errors_buf; *c; c++)
        n += *c == '\n';
    return n;
}

/* Every layout's files and dataset.json keys (reference/formats.md), links, previews, HDF5. */
static void test_layouts(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-layouts");
    assert_non_null(tmp);
    char out[1024], again[1024], p[2048], q[1024];
    rsy_recipe *r = make_recipe();
    errors_reset();
    snprintf(out, sizeof out, "%s/ds", tmp);
    write_ext(out, r, &all_opts);

    /* MSD / MONAI. */
    cJSON *msd = load_json(out, "msd/dataset.json");
    static const char *const msd_keys[] = {"name",        "description",     "reference", "licence",
                                           "release",     "tensorImageSize", "modality",  "labels",
                                           "numTraining", "training"};
    for (size_t i = 0; i < sizeof msd_keys / sizeof msd_keys[0]; i++)
        jget(msd, msd_keys[i]);
    assert_null(cJSON_GetObjectItemCaseSensitive(msd, "test")); /* an empty list crashes MONAI */
    assert_json(msd, "tensorImageSize", "\"3D\"");
    assert_json(msd, "modality", "{\"0\": \"T1w\", \"1\": \"FLAIR\"}");
    assert_json(msd, "labels",
                "{\"0\": \"background\", \"1\": \"necrotic_core\", \"2\": "
                "\"oedema\", \"3\": \"enhancing_tumour\"}");
    assert_json(msd, "numTraining", "3");
    assert_json(msd, "box_mode", "\"cccwhd\"");
    assert_json(msd, "coordinate_system", "\"RAS\"");
    assert_json(msd, "box_labels",
                "{\"0\": \"necrotic_core\", \"1\": \"oedema\", \"2\": \"enhancing_tumour\"}");
    cJSON *training = jget(msd, "training");
    assert_int_equal(cJSON_GetArraySize(training), N_CASES);
    for (int i = 0; i < N_CASES; i++) {
        cJSON *it = cJSON_GetArrayItem(training, i);
        cJSON *img = jget(it, "image");
        assert_int_equal(cJSON_GetArraySize(img), 2);
        for (int ch = 0; ch < 2; ch++) {
            snprintf(q, sizeof q, "imagesTr/case_%04d_%04d.nii.gz", i, ch);
            assert_string_equal(cJSON_GetArrayItem(img, ch)->valuestring, q);
            snprintf(p, sizeof p, "msd/%s", q);
            assert_true(exists_in(out, p));
            snprintf(q, sizeof q, NN_DIR "/imagesTr/case_%04d_%04d.nii.gz", i, ch);
            assert_true(same_inode(out, p, q));
        }
        snprintf(q, sizeof q, "labelsTr/case_%04d.nii.gz", i);
        assert_string_equal(jget(it, "label")->valuestring, q);
        snprintf(p, sizeof p, "msd/%s", q);
        snprintf(q, sizeof q, NN_DIR "/labelsTr/case_%04d.nii.gz", i);
        assert_true(same_inode(out, p, q));
        /* Boxes: the manifest's records, exactly; classes 0-based over the lesion labels
         * (the ball's mass is the necrotic core, 1 -> 0; the box is enhancing, 3 -> 2). */
        snprintf(p, sizeof p, "manifests/case_%04d.json", i);
        cJSON *man = load_json(out, p);
        cJSON *les = jget(man, "lesions");
        cJSON *box = jget(it, "box");
        assert_int_equal(cJSON_GetArraySize(box), cJSON_GetArraySize(les));
        for (int l = 0; l < cJSON_GetArraySize(les); l++)
            assert_true(cJSON_Compare(cJSON_GetArrayItem(box, l),
                                      jget(cJSON_GetArrayItem(les, l), "box_cccwhd_mm"), 1));
        assert_json(it, "box_label", i < 2 ? "[0, 2]" : "[]");
        cJSON_Delete(man);
    }
    cJSON_Delete(msd);

    /* nnDetection. */
    cJSON *nd = load_json(out, ND_DIR "/dataset.json");
    assert_json(nd, "task", "\"" ND_DIR "\"");
    assert_json(nd, "dim", "3");
    assert_json(nd, "labels",
                "{\"0\": \"necrotic_core\", \"1\": \"oedema\", \"2\": \"enhancing_tumour\"}");
    assert_json(nd, "modalities", "{\"0\": \"T1w\", \"1\": \"FLAIR\"}");
    cJSON_Delete(nd);
    for (int i = 0; i < N_CASES; i++) {
        snprintf(p, sizeof p, ND_DIR "/raw_splitted/labelsTr/case_%04d.json", i);
        cJSON *inst = load_json(out, p);
        assert_json(inst, "instances", i < 2 ? "{\"1\": 0, \"2\": 2}" : "{}");
        cJSON_Delete(inst);
        snprintf(p, sizeof p, ND_DIR "/raw_splitted/imagesTr/case_%04d_0001.nii.gz", i);
        snprintf(q, sizeof q, NN_DIR "/imagesTr/case_%04d_0001.nii.gz", i);
        assert_true(same_inode(out, p, q));
        snprintf(p, sizeof p, ND_DIR "/raw_splitted/labelsTr/case_%04d.nii.gz", i);
        snprintf(q, sizeof q, "instances/case_%04d.nii.gz", i);
        /* Case 1 drops its empty instance 1: its own file; the others are links. */
        assert_int_equal(same_inode(out, p, q), i != 1);
    }
    /* Case 1's map renumbered: 2 -> 1, 3 -> 2, a label map NIfTI. */
    rsy_volume *orig = NULL, *ren = NULL;
    rsy_nifti_info info;
    path_of(p, sizeof p, out, "instances/case_0001.nii.gz");
    assert_int_equal(rsy_volume_read_nifti(&orig, NULL, p), RSY_OK);
    path_of(p, sizeof p, out, ND_DIR "/raw_splitted/labelsTr/case_0001.nii.gz");
    assert_int_equal(rsy_volume_read_nifti(&ren, &info, p), RSY_OK);
    assert_int_equal(info.intent_code, 1002);
    assert_int_equal(ren->dtype, RSY_DTYPE_UINT16);
    size_t moved[3] = {0};
    for (size_t v = 0; v < (size_t)N * N * N; v++) {
        uint16_t a = ((uint16_t *)orig->data)[v], b = ((uint16_t *)ren->data)[v];
        assert_true(a != 1);
        assert_int_equal(b, a ? a - 1 : 0);
        moved[b]++;
    }
    assert_true(moved[1] > 0 && moved[2] > 0);
    rsy_volume_destroy(orig);
    rsy_volume_destroy(ren);

    /* Previews: one PNG per case. */
    for (int i = 0; i < N_CASES; i++) {
        snprintf(p, sizeof p, "%s/previews/case_%04d.png", out, i);
        size_t len = 0;
        char *png = slurp(p, &len);
        assert_non_null(png);
        assert_true(len > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
        free(png);
    }

    /* raresynth.json: the outputs, and the HDF5 file with its checksum. */
    cJSON *doc = load_json(out, "raresynth.json");
    assert_json(doc, "outputs",
                "{\"layouts\": {\"nnunet\": \"" NN_DIR "\", \"msd\": \"msd\", \"nndet\": \"" ND_DIR
                "\"}, \"formats\": [\"nifti\", \"hdf5\"], \"previews\": true}");
    cJSON *h5 = jget(doc, "hdf5");
    assert_string_equal(jget(h5, "path")->valuestring, NN_DIR ".h5");
    char sha[65];
    path_of(p, sizeof p, out, NN_DIR ".h5");
    assert_int_equal(rsy_sha256_file(p, sha), RSY_OK);
    assert_string_equal(jget(h5, "sha256")->valuestring, sha);
    assert_null(cJSON_GetObjectItemCaseSensitive(doc, "shard"));
    cJSON_Delete(doc);
    assert_false(exists_in(out, ".staging"));
    assert_int_equal(count_part_files(out), 0);

    /* A rerun gives the same bytes, HDF5 and previews included. */
    snprintf(again, sizeof again, "%s/again", tmp);
    write_ext(again, r, &all_opts);
    assert_trees_equal(out, again);

    free(r);
    if (!getenv("RSY_TEST_KEEP")) /* inspect the dataset by hand */
        tu_rmtree(tmp);
    free(tmp);
}

/* The HDF5 file finish builds from the files equals one written directly from the cases. */
static void test_hdf5_at_finish(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-h5");
    assert_non_null(tmp);
    char out[1024], scratch[1024], direct[1024], p[2048];
    rsy_recipe *r = make_recipe();
    errors_reset();
    snprintf(out, sizeof out, "%s/ds", tmp);
    const run_opts o = {RSY_LAYOUT_NNUNET, RSY_FORMAT_HDF5, 0, 0, 0};
    write_ext(out, r, &o);
    /* An exporter only to parse the manifests back as the writer does. */
    snprintf(scratch, sizeof scratch, "%s/scratch", tmp);
    assert_int_equal(rsy_export_prepare_dir(scratch, 0), RSY_OK);
    rsy_export_params ep = ext_params(r, scratch, &o);
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &ep), RSY_OK);

    snprintf(direct, sizeof direct, "%s/direct.h5", tmp);
    const char *chan[2] = {"T1w", "FLAIR"};
    rsy_export_hdf5_params hp = rsy_export_hdf5_params_default();
    hp.path = direct;
    hp.dataset_name = r->name;
    hp.recipe_sha256 = r->sha256;
    hp.dataset_seed = r->seed;
    hp.modality = r->modality;
    hp.channel_names = chan;
    hp.n_channels = 2;
    hp.label_names = label_names;
    hp.n_labels = 4;
    hp.label_perilesional = perilesional;
    rsy_export_hdf5 *w = NULL;
    assert_int_equal(rsy_export_hdf5_create(&w, &hp), RSY_OK);
    for (size_t i = 0; i < N_CASES; i++) {
        tcase c;
        make_case_ext(&c, i);
        snprintf(p, sizeof p, "%s/manifests/case_%04zu.json", out, i);
        size_t len = 0;
        char *text = slurp(p, &len);
        assert_non_null(text);
        rsy__case_parsed parsed;
        assert_int_equal(rsy__export_parse_case(e, i, text, len, p, &parsed), RSY_OK);
        rsy_lesion_record rec[3];
        memset(rec, 0, sizeof rec);
        for (int l = 0; l < 3; l++)
            rec[l].instance_id = l + 1;
        for (int l = 0; l < parsed.n_records; l++)
            rec[parsed.records[l].instance_id - 1] = parsed.records[l];
        assert_int_equal(rsy_export_hdf5_add_case(w, &c.data, rec), RSY_OK);
        rsy__case_parsed_clear(&parsed);
        free(text);
        free_case(&c);
    }
    char sha[65];
    assert_int_equal(rsy_export_hdf5_close(w, sha), RSY_OK);
    rsy_export_destroy(e);

    size_t la = 0, lb = 0;
    path_of(p, sizeof p, out, NN_DIR ".h5");
    char *a = slurp(p, &la), *b = slurp(direct, &lb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(la, lb);
    assert_int_equal(memcmp(a, b, la), 0);
    free(a);
    free(b);
    cJSON *doc = load_json(out, "raresynth.json");
    assert_string_equal(jget(jget(doc, "hdf5"), "sha256")->valuestring, sha);
    cJSON_Delete(doc);

    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* A case whose manifest cannot be put in place leaves no file in any layout, and no preview. */
static void test_layout_case_atomic(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-latomic");
    assert_non_null(tmp);
    char out[1024], block[2048];
    rsy_recipe *r = make_recipe();
    errors_reset();
    snprintf(out, sizeof out, "%s/ds", tmp);
    assert_int_equal(rsy_export_prepare_dir(out, 0), RSY_OK);
    rsy_export_params ep = ext_params(r, out, &all_opts);
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &ep), RSY_OK);
    tcase cases[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        make_case_ext(&cases[i], i);
    assert_int_equal(rsy_export_write_case(e, &cases[0].data), RSY_OK);

    path_of(block, sizeof block, out, "manifests/case_0001.json");
    assert_int_equal(mkdir(block, 0755), 0);
    assert_int_equal(rsy_export_write_case(e, &cases[1].data), RSY_EIO);
    static const char *const gone[] = {NN_DIR "/imagesTr/case_0001_0000.nii.gz",
                                       NN_DIR "/labelsTr/case_0001.nii.gz",
                                       "instances/case_0001.nii.gz",
                                       "msd/imagesTr/case_0001_0001.nii.gz",
                                       "msd/labelsTr/case_0001.nii.gz",
                                       ND_DIR "/raw_splitted/imagesTr/case_0001_0000.nii.gz",
                                       ND_DIR "/raw_splitted/labelsTr/case_0001.nii.gz",
                                       ND_DIR "/raw_splitted/labelsTr/case_0001.json",
                                       "previews/case_0001.png",
                                       ".staging/case_0001"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        if (exists_in(out, gone[i]))
            fprintf(stderr, "left behind: %s\n", gone[i]);
        assert_false(exists_in(out, gone[i]));
    }
    assert_int_equal(count_part_files(out), 0);
    assert_true(exists_in(out, "previews/case_0000.png"));
    assert_true(exists_in(out, ND_DIR "/raw_splitted/labelsTr/case_0000.json"));

    assert_int_equal(rmdir(block), 0);
    for (size_t i = 1; i < N_CASES; i++)
        assert_int_equal(rsy_export_write_case(e, &cases[i].data), RSY_OK);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    for (size_t i = 0; i < N_CASES; i++)
        free_case(&cases[i]);
    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* Resume: a directory as a crash leaves it (dataset files missing, derived files missing or
 * wrong, a stale staging folder, one corrupted byte) is adopted case by case; the corrupted
 * case is refused with one line and written again; finish gives the uninterrupted bytes. */
static void test_adopt_case(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-adopt");
    assert_non_null(tmp);
    char a[1024], b[1024], p[2048];
    rsy_recipe *r = make_recipe();
    errors_reset();
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    write_ext(a, r, &all_opts);
    write_ext(b, r, &all_opts);
    static const char *const dataset_files[] = {"raresynth.json",       "dataset_description.json",
                                                NN_DIR "/dataset.json", "msd/dataset.json",
                                                ND_DIR "/dataset.json", NN_DIR ".h5"};
    for (size_t i = 0; i < sizeof dataset_files / sizeof dataset_files[0]; i++)
        remove_in(b, dataset_files[i]);
    /* Case 0: a link and the preview gone, the nnDetection JSON wrong, staging left over. */
    remove_in(b, "msd/imagesTr/case_0000_0001.nii.gz");
    remove_in(b, "previews/case_0000.png");
    path_of(p, sizeof p, b, ND_DIR "/raw_splitted/labelsTr/case_0000.json");
    write_text(p, "{\"instances\": {}}\n");
    path_of(p, sizeof p, b, ".staging");
    assert_int_equal(mkdir(p, 0755), 0);
    path_of(p, sizeof p, b, ".staging/case_0000");
    assert_int_equal(mkdir(p, 0755), 0);
    path_of(p, sizeof p, b, ".staging/case_0000/03-case_0000.nii.gz");
    write_text(p, "half a file");
    /* Case 1: its renumbered nnDetection map gone. Case 2: one byte of its label map flipped. */
    remove_in(b, ND_DIR "/raw_splitted/labelsTr/case_0001.nii.gz");
    path_of(p, sizeof p, b, NN_DIR "/labelsTr/case_0002.nii.gz");
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 100, SEEK_SET), 0);
    int ch = fgetc(f);
    assert_int_equal(fseek(f, 100, SEEK_SET), 0);
    fputc(ch ^ 0x10, f);
    assert_int_equal(fclose(f), 0);

    /* Temporaries of atomic writes a kill left behind; a file that only looks like one. */
    static const char *const temps[] = {"raresynth.json.part-123-4", NN_DIR ".h5.part-77-0",
                                        "msd/imagesTr/case_0000_0001.nii.gz.part-9-12",
                                        "previews/case_0000.png.part-1-2",
                                        ND_DIR "/dataset.json.part-5-6"};
    for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) {
        path_of(p, sizeof p, b, temps[i]);
        write_text(p, "partial");
    }
    path_of(p, sizeof p, b, "manifests/notes.part-x");
    write_text(p, "not ours to remove");

    rsy_export_params ep = ext_params(r, b, &all_opts);
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &ep), RSY_OK);
    assert_int_equal(rsy_export_remove_temporaries(e), RSY_OK);
    for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++)
        assert_false(exists_in(b, temps[i]));
    assert_false(exists_in(b, ".staging/case_0000"));
    remove_in(b, "manifests/notes.part-x");
    /* The staging folder of case 0 again, for adopt_case to remove. */
    path_of(p, sizeof p, b, ".staging/case_0000");
    assert_int_equal(mkdir(p, 0755), 0);
    path_of(p, sizeof p, b, ".staging/case_0000/03-case_0000.nii.gz");
    write_text(p, "half a file");
    errors_reset();
    assert_int_equal(rsy_export_adopt_case(e, 2), RSY_EIO);
    assert_int_equal(error_lines(), 1);
    assert_true(logged("labelsTr/case_0002.nii.gz", "SHA-256"));
    errors_reset();
    assert_int_equal(rsy_export_adopt_case(e, 0), RSY_OK);
    assert_false(exists_in(b, ".staging/case_0000"));
    assert_int_equal(rsy_export_adopt_case(e, 1), RSY_OK);
    assert_int_equal(error_lines(), 0);
    assert_int_equal(rsy_export_adopt_case(e, N_CASES), RSY_EINVAL);
    assert_int_equal(rsy_export_finish(e), RSY_EINVAL); /* case 2 still missing */
    tcase c;
    make_case_ext(&c, 2);
    assert_int_equal(rsy_export_write_case(e, &c.data), RSY_OK);
    free_case(&c);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    assert_true(same_inode(b, "msd/imagesTr/case_0000_0001.nii.gz",
                           NN_DIR "/imagesTr/case_0000_0001.nii.gz"));
    assert_false(exists_in(b, ".staging"));
    assert_trees_equal(a, b);

    /* A deleted file, a missing manifest, a manifest of another dataset: each refused with
     * one line naming it; nothing is changed. */
    remove_in(b, "raresynth.json");
    remove_in(b, "instances/case_0000.nii.gz");
    remove_in(b, "manifests/case_0002.json");
    path_of(p, sizeof p, b, "manifests/case_0001.json");
    size_t len = 0;
    char *text = slurp(p, &len);
    assert_non_null(text);
    char *seed = strstr(text, "18446744073709551557");
    assert_non_null(seed);
    seed[0] = '2';
    FILE *g = fopen(p, "wb");
    assert_non_null(g);
    assert_int_equal(fwrite(text, 1, len, g), len);
    assert_int_equal(fclose(g), 0);
    free(text);
    assert_int_equal(rsy_export_begin(&e, &ep), RSY_OK);
    errors_reset();
    assert_int_equal(rsy_export_adopt_case(e, 0), RSY_EIO);
    assert_int_equal(error_lines(), 1);
    assert_true(logged("instances/case_0000.nii.gz", "missing"));
    errors_reset();
    assert_int_equal(rsy_export_adopt_case(e, 1), RSY_EIO);
    assert_int_equal(error_lines(), 1);
    assert_true(logged("manifests/case_0001.json", "seeds.dataset_seed"));
    errors_reset();
    assert_int_equal(rsy_export_adopt_case(e, 2), RSY_EIO);
    assert_int_equal(error_lines(), 1);
    assert_true(logged("manifests/case_0002.json", "missing"));
    rsy_export_destroy(e);
    assert_false(exists_in(b, "raresynth.json"));

    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* Shards: each directory holds its cases and a shard manifest; linking the shards' case files
 * into one directory, adopting every case and finishing gives the single run's bytes. */
static void test_shards(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-shards");
    assert_non_null(tmp);
    char full[1024], shard[3][1024], merged[1024], rel[512], src[2048], dst[2048];
    rsy_recipe *r = make_recipe();
    errors_reset();
    snprintf(full, sizeof full, "%s/full", tmp);
    write_ext(full, r, &all_opts);

    /* Bad shard or output parameters. */
    snprintf(dst, sizeof dst, "%s/bad", tmp);
    assert_int_equal(rsy_export_prepare_dir(dst, 0), RSY_OK);
    rsy_export *e = NULL;
    run_opts bad = all_opts;
    bad.shard_index = 2;
    bad.shard_count = 2;
    rsy_export_params bp = ext_params(r, dst, &bad);
    assert_int_equal(rsy_export_begin(&e, &bp), RSY_EINVAL);
    bad = all_opts;
    bad.layouts = 8;
    bp = ext_params(r, dst, &bad);
    assert_int_equal(rsy_export_begin(&e, &bp), RSY_EINVAL);
    assert_true(logged("layouts", "unknown"));
    errors_reset();

    for (int64_t n = 2; n <= 3; n++) {
        for (int64_t k = 0; k < n; k++) {
            run_opts o = all_opts;
            o.shard_index = k;
            o.shard_count = n;
            snprintf(shard[k], sizeof shard[k], "%s/s%lld_%lld", tmp, (long long)n, (long long)k);
            write_ext(shard[k], r, &o);
        }
        if (n == 2) {
            /* The shard manifest of shard 0 of 2: cases 0 and 2, the recipe and hashes. */
            cJSON *doc = load_json(shard[0], "raresynth.json");
            assert_json(doc, "shard", "{\"index\": 0, \"count\": 2, \"n_cases\": 2}");
            assert_json(doc, "n_cases", "3");
            cJSON *cases = jget(doc, "cases");
            assert_int_equal(cJSON_GetArraySize(cases), 2);
            assert_string_equal(jget(cJSON_GetArrayItem(cases, 1), "case_id")->valuestring,
                                "case_0002");
            jget(jget(doc, "recipe"), "content");
            jget(doc, "priors");
            jget(doc, "tissue_table");
            jget(doc, "outputs");
            assert_null(cJSON_GetObjectItemCaseSensitive(doc, "hdf5"));
            cJSON_Delete(doc);
            static const char *const absent[] = {
                NN_DIR "/dataset.json", "msd/dataset.json",         ND_DIR "/dataset.json",
                NN_DIR ".h5",           "dataset_description.json", "manifests/case_0001.json"};
            for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
                assert_false(exists_in(shard[0], absent[i]));
            /* A case of another shard is refused. */
            run_opts o = all_opts;
            o.shard_count = 2;
            rsy_export_params sp = ext_params(r, shard[0], &o);
            assert_int_equal(rsy_export_begin(&e, &sp), RSY_OK);
            tcase c;
            make_case_ext(&c, 1);
            assert_int_equal(rsy_export_write_case(e, &c.data), RSY_EINVAL);
            assert_int_equal(rsy_export_adopt_case(e, 1), RSY_EINVAL);
            assert_true(logged("case 1 is not in shard 0/2", NULL));
            errors_reset();
            free_case(&c);
            rsy_export_destroy(e);
        } else {
            /* A preview missing from a shard is remade by adopt_case. */
            remove_in(shard[1], "previews/case_0001.png");
        }

        /* The merge as `raresynth merge` does it. */
        snprintf(merged, sizeof merged, "%s/merged%lld", tmp, (long long)n);
        assert_int_equal(rsy_export_prepare_dir(merged, 0), RSY_OK);
        rsy_export_params mp = ext_params(r, merged, &all_opts);
        assert_int_equal(rsy_export_begin(&e, &mp), RSY_OK);
        int count = rsy_export_case_file_count(e);
        assert_int_equal(count, 2 * 3 + 2 + 3 + 1 + 1); /* 3 per channel, 2 + 3 more, png, json */
        for (size_t i = 0; i < N_CASES; i++) {
            if (n == 3) { /* the library's import: links, then adopt */
                assert_int_equal(rsy_export_import_case(e, shard[i % (size_t)n], i), RSY_OK);
                continue;
            }
            for (int k = 0; k < count; k++) { /* by hand from the file list */
                assert_int_equal(rsy_export_case_file(e, i, k, rel, sizeof rel), RSY_OK);
                path_of(src, sizeof src, shard[i % (size_t)n], rel);
                path_of(dst, sizeof dst, merged, rel);
                if (k == count - 1)
                    assert_non_null(strstr(rel, "manifests/"));
                if (exists(src))
                    assert_int_equal(link(src, dst), 0);
            }
            assert_int_equal(rsy_export_adopt_case(e, i), RSY_OK);
        }
        assert_int_equal(rsy_export_case_file(e, 0, count, rel, sizeof rel), RSY_EINVAL);
        assert_int_equal(rsy_export_finish(e), RSY_OK);
        rsy_export_destroy(e);
        assert_trees_equal(full, merged);
    }
    assert_int_equal(errors_len, 0);

    /* Importing from a shard that lacks a case's image: refused, naming the shard's file. */
    snprintf(merged, sizeof merged, "%s/merged_bad", tmp);
    assert_int_equal(rsy_export_prepare_dir(merged, 0), RSY_OK);
    rsy_export_params mp = ext_params(r, merged, &all_opts);
    assert_int_equal(rsy_export_begin(&e, &mp), RSY_OK);
    remove_in(shard[0], NN_DIR "/imagesTr/case_0000_0001.nii.gz");
    assert_int_equal(rsy_export_import_case(e, shard[0], 0), RSY_EIO);
    assert_int_equal(error_lines(), 1);
    assert_true(logged("s3_0/" NN_DIR "/imagesTr/case_0000_0001.nii.gz", "missing"));
    assert_false(exists_in(merged, "manifests/case_0000.json"));
    rsy_export_destroy(e);

    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

/* With spacings that are not floats (0.7 mm...), the stored geometry differs from the
 * generator's and cJSON rounds some printed numbers: a resumed and a merged dataset must still
 * equal the uninterrupted run byte for byte. */
static void test_inexact_numbers(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir("export-inexact");
    assert_non_null(tmp);
    char a[1024], b[1024], s0[1024], s1[1024], m[1024], p[2048];
    rsy_recipe *r = make_recipe();
    errors_reset();
    const double saved[3] = {case_spacing[0], case_spacing[1], case_spacing[2]};
    case_spacing[0] = 1.1;
    case_spacing[1] = 0.7;
    case_spacing[2] = 1.3;
    /* The fixture does exercise lossy printing: some record value does not survive cJSON. */
    tcase c;
    make_case_ext(&c, 0);
    rsy_lesion_record rec[2];
    assert_int_equal(rsy_export_measure_lesions(c.inst, c.lab, 2, perilesional, rec), RSY_OK);
    int lossy = 0;
    for (int l = 0; l < 2; l++) {
        const double v[] = {rec[l].volume_mm3,     rec[l].mass_volume_mm3,
                            rec[l].centroid_mm[0], rec[l].centroid_mm[1],
                            rec[l].centroid_mm[2], rec[l].equivalent_diameter_mm,
                            rec[l].long_axis_mm,   rec[l].short_axis_mm};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            cJSON *num = cJSON_CreateNumber(v[i]);
            char *text = cJSON_PrintUnformatted(num);
            lossy += strtod(text, NULL) != v[i];
            cJSON_free(text);
            cJSON_Delete(num);
        }
    }
    free_case(&c);
    assert_true(lossy > 0);

    snprintf(a, sizeof a, "%s/a", tmp);
    write_ext(a, r, &all_opts);
    /* Resume: every dataset file and every derived file gone; all cases adopted. */
    snprintf(b, sizeof b, "%s/b", tmp);
    write_ext(b, r, &all_opts);
    static const char *const gone[] = {"raresynth.json",
                                       "dataset_description.json",
                                       NN_DIR "/dataset.json",
                                       "msd/dataset.json",
                                       ND_DIR "/dataset.json",
                                       NN_DIR ".h5",
                                       ND_DIR "/raw_splitted/labelsTr/case_0001.nii.gz",
                                       ND_DIR "/raw_splitted/labelsTr/case_0000.json",
                                       "msd/labelsTr/case_0002.nii.gz"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        remove_in(b, gone[i]);
    for (int i = 0; i < N_CASES; i++) {
        snprintf(p, sizeof p, "previews/case_%04d.png", i);
        remove_in(b, p);
    }
    rsy_export_params ep = ext_params(r, b, &all_opts);
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &ep), RSY_OK);
    for (size_t i = 0; i < N_CASES; i++)
        assert_int_equal(rsy_export_adopt_case(e, i), RSY_OK);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    assert_trees_equal(a, b);
    /* Merge of two shards. */
    snprintf(s0, sizeof s0, "%s/s0", tmp);
    snprintf(s1, sizeof s1, "%s/s1", tmp);
    run_opts o = all_opts;
    o.shard_count = 2;
    write_ext(s0, r, &o);
    o.shard_index = 1;
    write_ext(s1, r, &o);
    snprintf(m, sizeof m, "%s/m", tmp);
    assert_int_equal(rsy_export_prepare_dir(m, 0), RSY_OK);
    ep = ext_params(r, m, &all_opts);
    assert_int_equal(rsy_export_begin(&e, &ep), RSY_OK);
    for (size_t i = 0; i < N_CASES; i++)
        assert_int_equal(rsy_export_import_case(e, i % 2 ? s1 : s0, i), RSY_OK);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    assert_trees_equal(a, m);
    assert_int_equal(errors_len, 0);

    memcpy(case_spacing, saved, sizeof saved);
    free(r);
    tu_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measure_box),
        cmocka_unit_test(test_measure_disc),
        cmocka_unit_test(test_measure_mass),
        cmocka_unit_test(test_measure_several),
        cmocka_unit_test(test_prepare_dir),
        cmocka_unit_test(test_dataset_roundtrip),
        cmocka_unit_test(test_validate_corruptions),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_failed_case_leaves_nothing),
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_hdf5_at_finish),
        cmocka_unit_test(test_layout_case_atomic),
        cmocka_unit_test(test_adopt_case),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_inexact_numbers),
    };
    rsy_init();
    return cmocka_run_group_tests_name("export", tests, NULL, NULL);
}
