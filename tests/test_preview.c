/*
 * test_preview.c: the preview writer (cmocka group "preview"; docs/previews.md).
 *
 * Volumes are synthetic and at most 16^3. Every PNG is read back with libpng's own reader and
 * its pixels compared with what the documented layout, window and orientation rules predict,
 * computed here independently of export/preview.c: for an axis-aligned RAS+ volume, display
 * column/row p of a tile shows voxel index n-1-p along the axis (columns run from the
 * subject's right to left, or anterior to posterior in the sagittal view; rows from anterior
 * to posterior, or superior to inferior). Grey levels are exact integers, so the comparisons
 * are exact (no tolerance) except where a double result is compared (1e-9: rounding only).
 */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

#include <png.h>

#include "test_util.h"

#include "preview_internal.h"

#define N 16

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                   */
/* ---------------------------------------------------------------------------------------- */
typedef struct fixture {
    char *dir; /* scratch directory, removed by the teardown */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->dir = tu_tmpdir("preview");
    if (!f->dir) {
        free(f);
        return -1;
    }
    tu_log_capture();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static rsy_volume *vol(const int64_t dims[3], const double sp[3], rsy_dtype t)
{
    rsy_geometry g;
    rsy_volume *v = NULL;
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    assert_int_equal(rsy_volume_create(&v, &g, t), RSY_OK);
    return v;
}

static rsy_volume *cube16(rsy_dtype t)
{
    const int64_t d[3] = {N, N, N};
    const double sp[3] = {1.0, 1.0, 1.0};
    return vol(d, sp, t);
}

static size_t at(const rsy_volume *v, int64_t i, int64_t j, int64_t k)
{
    return ((size_t)k * (size_t)v->geom.dims[1] + (size_t)j) * (size_t)v->geom.dims[0] + (size_t)i;
}

static void setf(rsy_volume *v, int64_t i, int64_t j, int64_t k, double x)
{
    size_t idx = at(v, i, j, k);
    switch (v->dtype) {
    case RSY_DTYPE_FLOAT32:
        ((float *)v->data)[idx] = (float)x;
        break;
    case RSY_DTYPE_INT16:
        ((int16_t *)v->data)[idx] = (int16_t)x;
        break;
    case RSY_DTYPE_UINT16:
        ((uint16_t *)v->data)[idx] = (uint16_t)x;
        break;
    case RSY_DTYPE_UINT8:
        ((uint8_t *)v->data)[idx] = (uint8_t)x;
        break;
    }
}

static double getv(const rsy_volume *v, int64_t i, int64_t j, int64_t k)
{
    size_t idx = at(v, i, j, k);
    switch (v->dtype) {
    case RSY_DTYPE_FLOAT32:
        return ((const float *)v->data)[idx];
    case RSY_DTYPE_INT16:
        return ((const int16_t *)v->data)[idx];
    case RSY_DTYPE_UINT16:
        return ((const uint16_t *)v->data)[idx];
    case RSY_DTYPE_UINT8:
        return ((const uint8_t *)v->data)[idx];
    }
    return 0.0;
}

static void fill(rsy_volume *v, double x)
{
    for (int64_t k = 0; k < v->geom.dims[2]; k++)
        for (int64_t j = 0; j < v->geom.dims[1]; j++)
            for (int64_t i = 0; i < v->geom.dims[0]; i++)
                setf(v, i, j, k, x);
}

static void box(rsy_volume *v, const int64_t lo[3], const int64_t hi[3], double x)
{
    for (int64_t k = lo[2]; k <= hi[2]; k++)
        for (int64_t j = lo[1]; j <= hi[1]; j++)
            for (int64_t i = lo[0]; i <= hi[0]; i++)
                setf(v, i, j, k, x);
}

/* A case: one float32 MRI channel (background 10, bright box 100 at [2..5]^3), the box as
 * label 1 and instance 1, and an all-ones foreground, so the percentile window is [10, 100]
 * (64 of 4096 voxels are bright: the 99th percentile falls on them, the 1st on background). */
typedef struct kase {
    rsy_volume *img, *lab, *inst, *fg;
    const rsy_volume *ch[2];
    rsy_preview_input in;
} kase;

static void kase_make(kase *c)
{
    memset(c, 0, sizeof *c);
    c->img = cube16(RSY_DTYPE_FLOAT32);
    c->lab = cube16(RSY_DTYPE_UINT8);
    c->inst = cube16(RSY_DTYPE_UINT16);
    c->fg = cube16(RSY_DTYPE_UINT8);
    fill(c->img, 10.0);
    fill(c->fg, 1.0);
    const int64_t lo[3] = {2, 2, 2}, hi[3] = {5, 5, 5};
    box(c->img, lo, hi, 100.0);
    box(c->lab, lo, hi, 1.0);
    box(c->inst, lo, hi, 1.0);
    c->ch[0] = c->img;
    c->in.modality = RSY_PREVIEW_MRI;
    c->in.channels = c->ch;
    c->in.n_channels = 1;
    c->in.labels = c->lab;
    c->in.instances = c->inst;
    c->in.foreground = c->fg;
}

static void kase_free(kase *c)
{
    rsy_volume_destroy(c->img);
    rsy_volume_destroy(c->lab);
    rsy_volume_destroy(c->inst);
    rsy_volume_destroy(c->fg);
}

/* ---------------------------------------------------------------------------------------- */
/* PNG reading (libpng's simplified API) and file helpers                                    */
/* ---------------------------------------------------------------------------------------- */
typedef struct image {
    uint8_t *px;
    uint32_t w, h;
} image;

static image read_png(const char *path)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&pi, path));
    pi.format = PNG_FORMAT_RGB;
    image im = {malloc(PNG_IMAGE_SIZE(pi)), pi.width, pi.height};
    assert_non_null(im.px);
    assert_true(png_image_finish_read(&pi, NULL, im.px, 0, NULL));
    return im;
}

static const uint8_t *pix(const image *im, uint32_t x, uint32_t y)
{
    assert_true(x < im->w && y < im->h);
    return im->px + ((size_t)y * im->w + x) * 3;
}

static int is_grey(const uint8_t *p, int g)
{
    return p[0] == g && p[1] == g && p[2] == g;
}

static int is_colour(const uint8_t *p, const unsigned char c[3])
{
    return p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
}

static int is_gap(const uint8_t *p)
{
    return p[0] == RSY__PREVIEW_GAP_R && p[1] == RSY__PREVIEW_GAP_G && p[2] == RSY__PREVIEW_GAP_B;
}

static char *path_in(const fixture *f, const char *name)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s/%s", f->dir, name);
    return buf;
}

static int n_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n > 0);
    rewind(fp);
    unsigned char *b = malloc((size_t)n);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

/* The expected voxel under pixel (x, y) of view v's tile for an isotropic axis-aligned RAS+
 * volume of n^3 voxels through voxel c (docs/previews.md, "Orientation"). */
static void voxel_under(int v, int x, int y, const int64_t c[3], int64_t n, int64_t ijk[3])
{
    ijk[0] = c[0];
    ijk[1] = c[1];
    ijk[2] = c[2];
    if (v == RSY__PREVIEW_AXIAL) {
        ijk[0] = n - 1 - x; /* subject's right on the image left */
        ijk[1] = n - 1 - y; /* anterior at the top */
    } else if (v == RSY__PREVIEW_CORONAL) {
        ijk[0] = n - 1 - x;
        ijk[2] = n - 1 - y; /* superior at the top */
    } else {
        ijk[1] = n - 1 - x; /* anterior on the image left */
        ijk[2] = n - 1 - y;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Windows                                                                                    */
/* ---------------------------------------------------------------------------------------- */
static void test_window_mapping(void **state)
{
    (void)state;
    assert_int_equal(rsy__preview_grey(0.0, 0.0, 100.0), 0);
    assert_int_equal(rsy__preview_grey(100.0, 0.0, 100.0), 255);
    assert_int_equal(rsy__preview_grey(50.0, 0.0, 100.0), 128); /* 127.5 rounds up */
    assert_int_equal(rsy__preview_grey(20.0, 0.0, 100.0), 51);
    assert_int_equal(rsy__preview_grey(-5.0, 0.0, 100.0), 0);
    assert_int_equal(rsy__preview_grey(1e9, 0.0, 100.0), 255);
    assert_int_equal(rsy__preview_grey(NAN, 0.0, 100.0), 0);
    assert_int_equal(rsy__preview_grey(5.5, 5.0, 5.0), 128); /* degenerate: [5, 6] */

    double w, l;
    assert_int_equal(rsy_export_preview_ct_window(RSY_PREVIEW_WINDOW_CT_LUNG, &w, &l), RSY_OK);
    assert_true(w == 1500.0 && l == -600.0);
    assert_int_equal(rsy_export_preview_ct_window(RSY_PREVIEW_WINDOW_CT_SOFT_TISSUE, &w, &l),
                     RSY_OK);
    assert_true(w == 400.0 && l == 40.0);
    assert_int_equal(rsy_export_preview_ct_window(RSY_PREVIEW_WINDOW_CT_BRAIN, &w, &l), RSY_OK);
    assert_true(w == 80.0 && l == 40.0);
    assert_int_equal(rsy_export_preview_ct_window(RSY_PREVIEW_WINDOW_CT_BONE, &w, &l), RSY_OK);
    assert_true(w == 2000.0 && l == 300.0);
    assert_int_equal(rsy_export_preview_ct_window(RSY_PREVIEW_WINDOW_MANUAL, &w, &l), RSY_EINVAL);

    /* Ranges: a preset gives level -/+ width/2 (lung: -1350..150); AUTO is soft tissue on CT. */
    kase c;
    kase_make(&c);
    c.in.modality = RSY_PREVIEW_CT;
    rsy_preview_params p = rsy_preview_params_default();
    double lo, hi;
    p.window = RSY_PREVIEW_WINDOW_CT_LUNG;
    assert_int_equal(rsy_export_preview_window_range(&c.in, 0, &p, &lo, &hi), RSY_OK);
    assert_true(lo == -1350.0 && hi == 150.0);
    p.window = RSY_PREVIEW_WINDOW_AUTO;
    assert_int_equal(rsy_export_preview_window_range(&c.in, 0, &p, &lo, &hi), RSY_OK);
    assert_true(lo == -160.0 && hi == 240.0);
    p.window = RSY_PREVIEW_WINDOW_MANUAL;
    p.window_width = 20.0;
    p.window_level = 5.0;
    assert_int_equal(rsy_export_preview_window_range(&c.in, 0, &p, &lo, &hi), RSY_OK);
    assert_true(lo == -5.0 && hi == 15.0);
    /* MRI AUTO: percentiles of the foreground, here [10, 100] (see kase). */
    c.in.modality = RSY_PREVIEW_MRI;
    p = rsy_preview_params_default();
    assert_int_equal(rsy_export_preview_window_range(&c.in, 0, &p, &lo, &hi), RSY_OK);
    assert_true(lo == 10.0 && hi == 100.0);
    /* A CT preset on an MRI image is refused. */
    p.window = RSY_PREVIEW_WINDOW_CT_BONE;
    assert_int_equal(rsy_export_preview_window_range(&c.in, 0, &p, &lo, &hi), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "CT window preset"));
    kase_free(&c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentiles: linear interpolation at rank q/100·(n−1) over the foreground voxels. */
static void test_percentile_window(void **state)
{
    (void)state;
    const int64_t d[3] = {100, 1, 1};
    const double sp[3] = {1.0, 1.0, 1.0};
    rsy_volume *img = vol(d, sp, RSY_DTYPE_FLOAT32), *lab = vol(d, sp, RSY_DTYPE_UINT8);
    rsy_volume *fg = vol(d, sp, RSY_DTYPE_UINT8);
    for (int i = 0; i < 100; i++) {
        setf(img, i, 0, 0, (double)(99 - i)); /* order must not matter */
        setf(fg, i, 0, 0, 1.0);
    }
    const rsy_volume *ch[1] = {img};
    rsy_preview_input in = {RSY_PREVIEW_MRI, ch, 1, lab, NULL, fg};
    double lo, hi;
    assert_int_equal(rsy_export_preview_window_range(&in, 0, NULL, &lo, &hi), RSY_OK);
    assert_float_equal(lo, 0.99, 1e-9);  /* rank 0.99 between 0 and 1 */
    assert_float_equal(hi, 98.01, 1e-9); /* rank 98.01 between 98 and 99 */

    /* Only the mask's voxels count: values 50..99 (voxels i < 50). */
    for (int i = 50; i < 100; i++)
        setf(fg, i, 0, 0, 0.0);
    assert_int_equal(rsy_export_preview_window_range(&in, 0, NULL, &lo, &hi), RSY_OK);
    assert_float_equal(lo, 50.49, 1e-9);
    assert_float_equal(hi, 98.51, 1e-9);

    /* No mask: Otsu separates a dark background 0..4 (50 voxels) from tissue 100..149. */
    for (int i = 0; i < 100; i++)
        setf(img, i, 0, 0, i < 50 ? (double)(i % 5) : 100.0 + (double)(i - 50));
    in.foreground = NULL;
    double thr;
    int ok;
    rsy__preview_otsu(img, &thr, &ok);
    assert_true(ok && thr > 4.0 && thr < 100.0);
    assert_int_equal(rsy_export_preview_window_range(&in, 0, NULL, &lo, &hi), RSY_OK);
    assert_float_equal(lo, 100.49, 1e-9);
    assert_float_equal(hi, 148.51, 1e-9);

    /* Against a full sort of pseudo-random values with many ties (LCG, fixed seed). */
    uint32_t s = 12345u;
    double sorted[100];
    for (int i = 0; i < 100; i++) {
        s = s * 1664525u + 1013904223u;
        sorted[i] = (double)((s >> 24) % 17);
        setf(img, i, 0, 0, sorted[i]);
        setf(fg, i, 0, 0, 1.0);
    }
    in.foreground = fg;
    qsort(sorted, 100, sizeof *sorted, cmp_double);
    rsy_preview_params p = rsy_preview_params_default();
    p.percentile_lo = 12.5;
    p.percentile_hi = 87.3;
    assert_int_equal(rsy_export_preview_window_range(&in, 0, &p, &lo, &hi), RSY_OK);
    double r = 0.125 * 99, r2 = 0.873 * 99;
    size_t k = (size_t)r, k2 = (size_t)r2;
    assert_float_equal(lo, sorted[k] + (r - (double)k) * (sorted[k + 1] - sorted[k]), 1e-9);
    assert_float_equal(hi, sorted[k2] + (r2 - (double)k2) * (sorted[k2 + 1] - sorted[k2]), 1e-9);

    rsy_volume_destroy(img);
    rsy_volume_destroy(lab);
    rsy_volume_destroy(fg);
}

/* ---------------------------------------------------------------------------------------- */
/* Pixels                                                                                     */
/* ---------------------------------------------------------------------------------------- */
/* Size, layout and every pixel of the plain tiles: the bright box shows white exactly where
 * its voxels are on the slices through its centroid (3.5 rounds to voxel 4). */
static void test_bright_cube(void **state)
{
    fixture *f = *state;
    kase c;
    kase_make(&c);
    const char *path = path_in(f, "cube.png");
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, path), RSY_OK);
    image im = read_png(path);
    assert_int_equal(im.w, 2 * (3 * N) + 5 * 2); /* six 16-pixel tiles, five 2-pixel gaps */
    assert_int_equal(im.h, N);                   /* one lesion, one channel */
    const int64_t centre[3] = {4, 4, 4};
    for (int v = 0; v < 3; v++) {
        uint32_t x0 = (uint32_t)v * (N + 2);
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++) {
                int64_t ijk[3];
                voxel_under(v, x, y, centre, N, ijk);
                int want = getv(c.img, ijk[0], ijk[1], ijk[2]) == 100.0 ? 255 : 0;
                assert_true(is_grey(pix(&im, x0 + (uint32_t)x, (uint32_t)y), want));
            }
        /* The separator after the tile has the gap colour. */
        assert_true(is_gap(pix(&im, x0 + N, 0)) && is_gap(pix(&im, x0 + N + 1, N - 1)));
    }
    /* Spot check by hand: axial voxel (i, j) = (3, 3) is pixel (15 - 3, 15 - 3). */
    assert_true(is_grey(pix(&im, 12, 12), 255));
    assert_true(is_grey(pix(&im, 3, 3), 0));
    free(im.px);
    kase_free(&c);
}

/* With an opaque fill, the overlay colour is exactly at the label voxels' pixels, and the
 * overlaid tiles equal the plain ones elsewhere; the default contour stays inside the label
 * and leaves its interior grey. */
static void test_overlay(void **state)
{
    fixture *f = *state;
    kase c;
    kase_make(&c);
    const int64_t lo2[3] = {2, 2, 5}, hi2[3] = {5, 5, 5};
    box(c.lab, lo2, hi2, 2.0); /* the top slab of the box: label 2 */
    rsy_preview_params p = rsy_preview_params_default();
    p.fill_alpha = 1.0;
    const char *path = path_in(f, "fill.png");
    assert_int_equal(rsy_export_preview_write(&c.in, &p, path), RSY_OK);
    image im = read_png(path);
    const int64_t centre[3] = {4, 4, 4};
    int coloured[3] = {0, 0, 0};
    for (int v = 0; v < 3; v++) {
        uint32_t x_plain = (uint32_t)v * (N + 2), x_over = (uint32_t)(3 + v) * (N + 2);
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++) {
                int64_t ijk[3];
                voxel_under(v, x, y, centre, N, ijk);
                int lab = (int)getv(c.lab, ijk[0], ijk[1], ijk[2]);
                const uint8_t *o = pix(&im, x_over + (uint32_t)x, (uint32_t)y);
                if (lab) {
                    unsigned char col[3];
                    rsy_export_preview_label_colour(lab, col);
                    assert_true(is_colour(o, col));
                    coloured[v]++;
                } else {
                    const uint8_t *pl = pix(&im, x_plain + (uint32_t)x, (uint32_t)y);
                    assert_memory_equal(o, pl, 3);
                    assert_true(o[0] == o[1] && o[1] == o[2]);
                }
            }
    }
    /* Axial slice k = 4: a 4x4 square of label 1; coronal/sagittal: 4x4 with a label-2 row. */
    assert_int_equal(coloured[0], 16);
    assert_int_equal(coloured[1], 16);
    assert_int_equal(coloured[2], 16);
    free(im.px);

    /* Default: opaque 1-pixel contour, no fill. A 6x6x6 box: its axial square has a 4x4
     * interior that stays grey (255, bright box) and a ring of 20 coloured pixels. */
    const int64_t lo[3] = {2, 2, 2}, hi[3] = {7, 7, 7};
    box(c.lab, lo, hi, 1.0);
    box(c.inst, lo, hi, 1.0);
    box(c.img, lo, hi, 100.0);
    path = path_in(f, "contour.png");
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, path), RSY_OK);
    im = read_png(path);
    unsigned char red[3];
    rsy_export_preview_label_colour(1, red);
    const int64_t centre2[3] = {5, 5, 5}; /* centroid 4.5 rounds to 5 */
    int ring = 0;
    uint32_t x_over = 3 * (N + 2);
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int64_t ijk[3];
            voxel_under(RSY__PREVIEW_AXIAL, x, y, centre2, N, ijk);
            const uint8_t *o = pix(&im, x_over + (uint32_t)x, (uint32_t)y);
            int in_label = getv(c.lab, ijk[0], ijk[1], ijk[2]) != 0.0;
            int edge = ijk[0] == 2 || ijk[0] == 7 || ijk[1] == 2 || ijk[1] == 7;
            if (in_label && edge) {
                assert_true(is_colour(o, red));
                ring++;
            } else if (in_label) {
                assert_true(is_grey(o, 255));
            } else {
                assert_true(o[0] == o[1] && o[1] == o[2]);
            }
        }
    assert_int_equal(ring, 20);
    free(im.px);

    /* A label cut by the edge of the field of view is not outlined along the cut: a label
     * over the whole volume gives no contour at all. */
    fill(c.lab, 1.0);
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, path), RSY_OK);
    im = read_png(path);
    for (uint32_t y = 0; y < im.h; y++)
        for (uint32_t x = 0; x < im.w; x++) {
            const uint8_t *o = pix(&im, x, y);
            assert_true((o[0] == o[1] && o[1] == o[2]) || is_gap(o));
        }
    free(im.px);
    kase_free(&c);
}

/* Radiological orientation: markers on the subject's right, anterior and superior sides
 * appear on the image left, at the top, at the top; also when the voxel axes run the other
 * way (an LPS-ordered affine), since the rule follows the world directions. */
static void check_markers(const fixture *f, int lps)
{
    kase c;
    kase_make(&c);
    fill(c.img, 0.0);
    fill(c.lab, 0.0);
    c.in.instances = NULL; /* no lesion: the slices go through voxel (8, 8, 8) */
    rsy_volume *vols[4] = {c.img, c.lab, c.inst, c.fg};
    if (lps)
        for (int v = 0; v < 4; v++) {
            vols[v]->geom.affine[0][0] = -1.0; /* i grows toward the subject's left */
            vols[v]->geom.affine[1][1] = -1.0; /* j grows toward posterior */
        }
    /* Right: x > 0, i.e. i = 13 (RAS) or i = 2 (LPS); anterior likewise; superior k = 13. */
    int64_t right = lps ? 2 : 13, ant = lps ? 2 : 13;
    setf(c.img, right, 8, 8, 100.0);
    setf(c.img, 8, ant, 8, 60.0);
    setf(c.img, 8, 8, 13, 30.0);
    rsy_preview_params p = rsy_preview_params_default();
    p.window = RSY_PREVIEW_WINDOW_MANUAL;
    p.window_width = 100.0;
    p.window_level = 50.0;
    const char *path = path_in(f, lps ? "lps.png" : "ras.png");
    assert_int_equal(rsy_export_preview_write(&c.in, &p, path), RSY_OK);
    image im = read_png(path);
    const uint32_t ax = 0, cor = N + 2, sag = 2 * (N + 2);
    /* Where voxel 8 (the slice through the centre) lands along i and j: display position p
     * is index 15 - p when the index grows toward R (or A), else p. k is always S-ward. */
    const uint32_t mid_i = lps ? 8 : 7, mid_j = lps ? 8 : 7, mid_k = 7;
    /* Axial: right marker 2 pixels from the left edge; anterior marker 2 from the top. */
    assert_true(is_grey(pix(&im, ax + 2, mid_j), 255));
    assert_true(is_grey(pix(&im, ax + 13, mid_j), 0));
    assert_true(is_grey(pix(&im, ax + mid_i, 2), 153));
    assert_true(is_grey(pix(&im, ax + mid_i, 13), 0));
    /* Coronal: right marker on the left; superior marker at the top. */
    assert_true(is_grey(pix(&im, cor + 2, mid_k), 255));
    assert_true(is_grey(pix(&im, cor + mid_i, 2), 77)); /* 30 in [0, 100]: 76.5 rounds to 77 */
    assert_true(is_grey(pix(&im, cor + mid_i, 13), 0));
    /* Sagittal: anterior marker on the left; superior at the top. */
    assert_true(is_grey(pix(&im, sag + 2, mid_k), 153));
    assert_true(is_grey(pix(&im, sag + 13, mid_k), 0));
    assert_true(is_grey(pix(&im, sag + mid_j, 2), 77));
    free(im.px);
    kase_free(&c);
}

static void test_orientation(void **state)
{
    check_markers(*state, 0);
    check_markers(*state, 1);
}

/* Anisotropic voxels are resampled to square pixels of the finest spacing (or pixel_mm). */
static void test_anisotropic(void **state)
{
    fixture *f = *state;
    const int64_t d[3] = {12, 10, 4};
    const double sp[3] = {1.0, 1.0, 3.0};
    rsy_volume *img = vol(d, sp, RSY_DTYPE_FLOAT32), *lab = vol(d, sp, RSY_DTYPE_UINT8);
    setf(img, 6, 5, 3, 100.0); /* the most superior slice, on the centre column (6, 5) */
    const rsy_volume *ch[1] = {img};
    rsy_preview_input in = {RSY_PREVIEW_MRI, ch, 1, lab, NULL, NULL};
    rsy_preview_params p = rsy_preview_params_default();
    p.window = RSY_PREVIEW_WINDOW_MANUAL;
    p.window_width = 100.0;
    p.window_level = 50.0;

    rsy__preview_layout l;
    assert_int_equal(rsy__preview_layout_make(&in, &p, &l), RSY_OK);
    assert_int_equal(l.tile_w[0], 12); /* axial: 12 x 10 mm */
    assert_int_equal(l.tile_h[0], 10);
    assert_int_equal(l.tile_w[1], 12); /* coronal: 12 x 12 mm (4 slices of 3 mm) */
    assert_int_equal(l.tile_h[1], 12);
    assert_int_equal(l.tile_w[2], 10); /* sagittal: 10 x 12 mm */
    assert_int_equal(l.tile_h[2], 12);
    rsy__preview_layout_clear(&l);

    const char *path = path_in(f, "aniso.png");
    assert_int_equal(rsy_export_preview_write(&in, &p, path), RSY_OK);
    image im = read_png(path);
    assert_int_equal(im.w, 2 * (12 + 12 + 10) + 5 * 2);
    assert_int_equal(im.h, 12);
    /* Coronal: the marker (i = 6 -> column 11 - 6 = 5) covers rows 0..2, one 3-mm slice. */
    const uint32_t cor = 12 + 2, sag = 2 * (12 + 2);
    for (uint32_t y = 0; y < 12; y++) {
        assert_true(is_grey(pix(&im, cor + 5, y), y < 3 ? 255 : 0));
        assert_true(is_grey(pix(&im, sag + 4, y), y < 3 ? 255 : 0)); /* j = 5 -> 9 - 5 */
    }
    /* The axial tile of a 10-row volume is 10 rows high, the rest of the row is gap. */
    assert_true(is_gap(pix(&im, 0, 10)) && is_gap(pix(&im, 11, 11)));
    assert_false(is_gap(pix(&im, 0, 9)));
    free(im.px);

    /* pixel_mm = 2 halves every side (rounded: 10 x 1 / 2 = 5, 4 x 3 / 2 = 6). */
    p.pixel_mm = 2.0;
    assert_int_equal(rsy__preview_layout_make(&in, &p, &l), RSY_OK);
    assert_true(l.tile_w[0] == 6 && l.tile_h[0] == 5 && l.tile_h[1] == 6 && l.tile_w[2] == 5);
    rsy__preview_layout_clear(&l);
    rsy_volume_destroy(img);
    rsy_volume_destroy(lab);
}

/* One block of rows per lesion (ids in increasing order, gaps in the ids skipped), one row
 * per channel; max_lesions caps the blocks; no lesion gives the centre. */
static void test_lesion_rows(void **state)
{
    fixture *f = *state;
    kase c;
    kase_make(&c);
    rsy_volume *img2 = cube16(RSY_DTYPE_FLOAT32);
    fill(img2, 10.0);
    c.ch[1] = img2;
    c.in.n_channels = 2;
    const int64_t lo[3] = {10, 10, 11}, hi[3] = {12, 12, 13};
    box(c.inst, lo, hi, 3.0); /* id 3; id 2 is absent */
    box(c.lab, lo, hi, 2.0);
    const char *path = path_in(f, "rows.png");
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, path), RSY_OK);
    image im = read_png(path);
    assert_int_equal(im.h, 4 * N + 3 * 2); /* 2 lesions x 2 channels */

    rsy__preview_layout l;
    assert_int_equal(rsy__preview_layout_make(&c.in, NULL, &l), RSY_OK);
    assert_int_equal(l.n_targets, 2);
    assert_int_equal(l.target_id[0], 1);
    assert_int_equal(l.target_id[1], 3);
    assert_true(l.target_vox[1][0] == 11 && l.target_vox[1][1] == 11 && l.target_vox[1][2] == 12);
    rsy__preview_layout_clear(&l);

    /* Row 2 (lesion 3, channel 0) starts at y = 2 * (16 + 2); its axial overlay shows the
     * contour of label 2 at voxel (10, 10) = pixel (5, 5) of the tile, its centre voxel
     * (11, 11) = pixel (4, 4) stays grey; row 0 shows label 1 at the corner (2, 2). */
    unsigned char col1[3], col2[3];
    rsy_export_preview_label_colour(1, col1);
    rsy_export_preview_label_colour(2, col2);
    const uint32_t x_over = 3 * (N + 2);
    assert_true(is_colour(pix(&im, x_over + 5, 2 * (N + 2) + 5), col2));
    const uint8_t *centre = pix(&im, x_over + 4, 2 * (N + 2) + 4);
    assert_true(centre[0] == centre[1] && centre[1] == centre[2]);
    assert_true(is_colour(pix(&im, x_over + 15 - 2, 15 - 2), col1)); /* box corner (2, 2) */
    /* Channel 1 (row 1) is flat: the overlay is drawn on every channel's row. */
    assert_true(is_colour(pix(&im, x_over + 15 - 2, (N + 2) + 15 - 2), col1));
    free(im.px);

    rsy_preview_params p = rsy_preview_params_default();
    p.max_lesions = 1;
    assert_int_equal(rsy_export_preview_write(&c.in, &p, path), RSY_OK);
    im = read_png(path);
    assert_int_equal(im.h, 2 * N + 2);
    free(im.px);

    /* No lesion voxel: one block through the centre (8, 8, 8). */
    fill(c.inst, 0.0);
    assert_int_equal(rsy__preview_layout_make(&c.in, NULL, &l), RSY_OK);
    assert_int_equal(l.n_targets, 1);
    assert_int_equal(l.target_id[0], 0);
    assert_true(l.target_vox[0][0] == 8 && l.target_vox[0][1] == 8 && l.target_vox[0][2] == 8);
    rsy__preview_layout_clear(&l);
    c.in.instances = NULL;
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, path), RSY_OK);
    im = read_png(path);
    assert_int_equal(im.h, 2 * N + 2);
    free(im.px);
    rsy_volume_destroy(img2);
    kase_free(&c);
}

/* CT int16 HU: soft tissue by default (-160..240), the lung preset on request. */
static void test_ct_window(void **state)
{
    fixture *f = *state;
    kase c;
    kase_make(&c);
    rsy_volume *hu = cube16(RSY_DTYPE_INT16);
    fill(hu, -1000.0);
    const int64_t lo[3] = {2, 2, 2}, hi[3] = {5, 5, 5};
    box(hu, lo, hi, 40.0);
    setf(hu, 8, 8, 4, 1000.0);
    c.ch[0] = hu;
    c.in.modality = RSY_PREVIEW_CT;
    const char *path = path_in(f, "ct.png");
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, path), RSY_OK);
    image im = read_png(path);
    assert_true(is_grey(pix(&im, 12, 12), 128)); /* 40 HU: (200/400)·255 = 127.5 -> 128 */
    assert_true(is_grey(pix(&im, 0, 0), 0));     /* air */
    assert_true(is_grey(pix(&im, 7, 7), 255));   /* bone at (8, 8): pixel (15 - 8, 15 - 8) */
    free(im.px);
    rsy_preview_params p = rsy_preview_params_default();
    p.window = RSY_PREVIEW_WINDOW_CT_LUNG;
    assert_int_equal(rsy_export_preview_write(&c.in, &p, path), RSY_OK);
    im = read_png(path);
    assert_true(is_grey(pix(&im, 12, 12), 236)); /* (1390/1500)·255 = 236.3 */
    assert_true(is_grey(pix(&im, 0, 0), 60));    /* (350/1500)·255 = 59.5 -> 60 */
    free(im.px);
    rsy_volume_destroy(hu);
    kase_free(&c);
}

/* Equal inputs give equal bytes; the file is 8-bit RGB with only IHDR, IDAT and IEND chunks
 * (no tIME, no text). */
static void test_deterministic(void **state)
{
    fixture *f = *state;
    kase c;
    kase_make(&c);
    char a[2048], b[2048];
    snprintf(a, sizeof a, "%s", path_in(f, "a.png"));
    snprintf(b, sizeof b, "%s", path_in(f, "b.png"));
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, a), RSY_OK);
    rsy_preview_params p = rsy_preview_params_default();
    p.fill_alpha = 0.5; /* something else in between */
    assert_int_equal(rsy_export_preview_write(&c.in, &p, b), RSY_OK);
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, b), RSY_OK);
    size_t na, nb;
    unsigned char *da = slurp(a, &na), *db = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);

    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    assert_memory_equal(da, sig, 8);
    assert_int_equal(da[24], 8); /* bit depth */
    assert_int_equal(da[25], 2); /* colour type RGB */
    size_t pos = 8;
    while (pos + 8 <= na) {
        uint32_t len = (uint32_t)da[pos] << 24 | (uint32_t)da[pos + 1] << 16 |
                       (uint32_t)da[pos + 2] << 8 | da[pos + 3];
        char type[5] = {(char)da[pos + 4], (char)da[pos + 5], (char)da[pos + 6], (char)da[pos + 7],
                        0};
        assert_true(strcmp(type, "IHDR") == 0 || strcmp(type, "IDAT") == 0 ||
                    strcmp(type, "IEND") == 0);
        pos += 12 + (size_t)len;
    }
    assert_int_equal(pos, na);
    assert_int_equal(n_entries(f->dir), 2); /* no temporary file left */
    free(da);
    free(db);
    kase_free(&c);
}

/* Bad inputs return an error, log one line and leave no file. */
static void test_errors(void **state)
{
    fixture *f = *state;
    kase c;
    kase_make(&c);
    const char *path = path_in(f, "bad.png");
    char keep[2048];
    snprintf(keep, sizeof keep, "%s", path);

    assert_int_equal(rsy_export_preview_write(NULL, NULL, keep), RSY_EINVAL);
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, NULL), RSY_EINVAL);
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, ""), RSY_EINVAL);

    rsy_preview_input in = c.in;
    in.n_channels = 0;
    assert_int_equal(rsy_export_preview_write(&in, NULL, keep), RSY_EINVAL);
    in = c.in;
    in.labels = NULL;
    assert_int_equal(rsy_export_preview_write(&in, NULL, keep), RSY_EINVAL);
    in = c.in;
    in.labels = c.img; /* float32 labels */
    assert_int_equal(rsy_export_preview_write(&in, NULL, keep), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "uint8 or uint16"));

    /* Mismatched geometry: labels of other dims, a channel of other spacing. */
    const int64_t d[3] = {N, N, N - 1};
    const double sp[3] = {1.0, 1.0, 1.0}, sp2[3] = {1.0, 1.0, 2.0};
    rsy_volume *small = vol(d, sp, RSY_DTYPE_UINT8);
    const int64_t d16[3] = {N, N, N};
    rsy_volume *thick = vol(d16, sp2, RSY_DTYPE_FLOAT32);
    in = c.in;
    in.labels = small;
    assert_int_equal(rsy_export_preview_write(&in, NULL, keep), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "geometry differs"));
    const rsy_volume *ch2[2] = {c.img, thick};
    in = c.in;
    in.channels = ch2;
    in.n_channels = 2;
    assert_int_equal(rsy_export_preview_write(&in, NULL, keep), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "channel 1"));
    in = c.in;
    in.instances = small;
    assert_int_equal(rsy_export_preview_write(&in, NULL, keep), RSY_EINVAL);

    /* Bad parameters. */
    rsy_preview_params p = rsy_preview_params_default();
    p.window = RSY_PREVIEW_WINDOW_CT_LUNG; /* on MRI */
    assert_int_equal(rsy_export_preview_write(&c.in, &p, keep), RSY_EINVAL);
    p = rsy_preview_params_default();
    p.percentile_lo = 99.0;
    p.percentile_hi = 1.0;
    assert_int_equal(rsy_export_preview_write(&c.in, &p, keep), RSY_EINVAL);
    p = rsy_preview_params_default();
    p.contour_alpha = 1.5;
    assert_int_equal(rsy_export_preview_write(&c.in, &p, keep), RSY_EINVAL);
    p = rsy_preview_params_default();
    p.max_lesions = 0;
    assert_int_equal(rsy_export_preview_write(&c.in, &p, keep), RSY_EINVAL);
    p = rsy_preview_params_default();
    p.compression_level = 10;
    assert_int_equal(rsy_export_preview_write(&c.in, &p, keep), RSY_EINVAL);
    p = rsy_preview_params_default();
    p.window = RSY_PREVIEW_WINDOW_MANUAL; /* width 0 */
    assert_int_equal(rsy_export_preview_write(&c.in, &p, keep), RSY_EINVAL);
    p = rsy_preview_params_default();
    p.pixel_mm = 0.001; /* 16 mm at 1 µm: 16000-pixel tiles */
    assert_int_equal(rsy_export_preview_write(&c.in, &p, keep), RSY_ELIMIT);
    assert_int_equal(n_entries(f->dir), 0);

    /* Unwritable: a missing directory, and a path that is a directory. */
    const char *missing = path_in(f, "no/such/dir.png");
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, missing), RSY_EIO);
    assert_non_null(strstr(tu_last_error(), "no/such/dir.png"));
    char sub[2048];
    snprintf(sub, sizeof sub, "%s", path_in(f, "sub"));
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, sub), RSY_EIO);
    assert_int_equal(n_entries(f->dir), 1); /* sub itself, nothing beside it */
    assert_int_equal(n_entries(sub), 0);

    /* A failed call leaves an earlier file as it was. */
    assert_int_equal(rsy_export_preview_write(&c.in, NULL, keep), RSY_OK);
    size_t n0, n1;
    unsigned char *before = slurp(keep, &n0);
    in = c.in;
    in.labels = small;
    assert_int_equal(rsy_export_preview_write(&in, NULL, keep), RSY_EINVAL);
    unsigned char *after = slurp(keep, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    assert_int_equal(n_entries(f->dir), 2);
    free(before);
    free(after);
    rsy_volume_destroy(small);
    rsy_volume_destroy(thick);
    kase_free(&c);
}

/* Label colours: the fixed table, then generated hues; never grey. */
static void test_label_colours(void **state)
{
    (void)state;
    unsigned char a[3], b[3];
    rsy_export_preview_label_colour(1, a);
    assert_true(a[0] == 255 && a[1] == 0 && a[2] == 0);
    for (int l = 1; l < 300; l++) {
        rsy_export_preview_label_colour(l, a);
        assert_false(a[0] == a[1] && a[1] == a[2]);
        rsy_export_preview_label_colour(l + 1, b);
        assert_false(memcmp(a, b, 3) == 0); /* neighbouring labels differ */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_percentile_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bright_cube, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orientation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anisotropic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lesion_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ct_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_colours, setup, teardown),
    };
    if (rsy_init() != RSY_OK)
        return 1;
    return cmocka_run_group_tests_name("preview", tests, NULL, NULL);
}
