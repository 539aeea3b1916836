/*
 * preview.c: slice previews of a case as one PNG (issue 6, "Previews"; docs/previews.md
 * states every rule implemented here: targets, layout, windows, orientation, overlay).
 *
 * A preview is rendered into an RGB buffer, encoded by libpng into memory and written with
 * rsy_file_write_atomic(), so a failure at any step leaves no file. libpng reports errors by
 * longjmp: its error handler logs the message and jumps back to the one function that calls
 * setjmp, which touches no local after the jump (no -Wclobbered hazard) and does all its work
 * in a helper. libpng never writes a tIME chunk unless asked, and no text chunk is written,
 * so equal inputs give equal bytes for a given libpng and zlib.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "export_internal.h"
#include "preview_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Parameters and windows                                                                     */
/* ---------------------------------------------------------------------------------------- */
rsy_preview_params rsy_preview_params_default(void)
{
    rsy_preview_params p;
    memset(&p, 0, sizeof p);
    p.window = RSY_PREVIEW_WINDOW_AUTO;
    p.window_width = 0.0;
    p.window_level = 0.0;
    p.percentile_lo = 1.0;
    p.percentile_hi = 99.0;
    p.pixel_mm = 0.0;
    p.max_lesions = 8;
    p.contour_alpha = 1.0;
    p.fill_alpha = 0.0;
    p.gap_px = 2;
    p.compression_level = 6;
    return p;
}

/* CT window presets, width and level in HU. Textbook values (GK): lung W1500 L-600 (display
 * range -1350..150), soft tissue (mediastinum, abdomen) W400 L40, brain W80 L40, bone W2000
 * L300. Published tables vary by tens of HU around these (soft tissue W350-400 L40-50, bone
 * W1800-2000 L300-500); docs/previews.md. */
rsy_status rsy_export_preview_ct_window(rsy_preview_window w, double *width, double *level)
{
    if (!width || !level)
        return RSY_EINVAL;
    switch (w) {
    case RSY_PREVIEW_WINDOW_CT_LUNG:
        *width = 1500.0;
        *level = -600.0;
        return RSY_OK;
    case RSY_PREVIEW_WINDOW_CT_SOFT_TISSUE:
        *width = 400.0;
        *level = 40.0;
        return RSY_OK;
    case RSY_PREVIEW_WINDOW_CT_BRAIN:
        *width = 80.0;
        *level = 40.0;
        return RSY_OK;
    case RSY_PREVIEW_WINDOW_CT_BONE:
        *width = 2000.0;
        *level = 300.0;
        return RSY_OK;
    case RSY_PREVIEW_WINDOW_AUTO:
    case RSY_PREVIEW_WINDOW_PERCENTILE:
    case RSY_PREVIEW_WINDOW_MANUAL:
        break;
    }
    return RSY_EINVAL;
}

static int is_ct_preset(rsy_preview_window w)
{
    double a, b;
    return rsy_export_preview_ct_window(w, &a, &b) == RSY_OK;
}

uint8_t rsy__preview_grey(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    if (!(hi > lo))
        hi = lo + 1.0;
    double g = floor(255.0 * (v - lo) / (hi - lo) + 0.5);
    if (g <= 0.0)
        return 0;
    if (g >= 255.0)
        return 255;
    return (uint8_t)g;
}

/* The k-th smallest of a[0..n) (0-based), reordering a. Quickselect with a median-of-three
 * pivot and a three-way partition (Dijkstra's Dutch national flag), so runs of equal values,
 * common in synthetic images, cost one pass. Hoare, "Algorithm 65: FIND", CACM 4(7), 1961. */
static float select_kth(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi - 1];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (a[i] < pivot) {
                float t = a[lt];
                a[lt++] = a[i];
                a[i++] = t;
            } else if (a[i] > pivot) {
                float t = a[--gt];
                a[gt] = a[i];
                a[i] = t;
            } else {
                i++;
            }
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return pivot;
    }
    return a[k];
}

/* Percentile q in [0, 100] of a[0..n), n >= 1, by linear interpolation between order
 * statistics at rank q/100·(n − 1) (Hyndman and Fan 1996, definition 7; numpy's default). */
static double percentile(float *a, size_t n, double q)
{
    double r = q / 100.0 * (double)(n - 1);
    size_t k = (size_t)floor(r);
    if (k >= n - 1)
        return (double)select_kth(a, n, n - 1);
    double f = r - (double)k;
    double vk = (double)select_kth(a, n, k);
    if (f == 0.0)
        return vk;
    double vk1 = (double)select_kth(a, n, k + 1);
    return vk + f * (vk1 - vk);
}

#define OTSU_BINS 256

static int otsu_bin(double v, double mn, double mx)
{
    int b = (int)floor((v - mn) / (mx - mn) * OTSU_BINS);
    return b < 0 ? 0 : (b >= OTSU_BINS ? OTSU_BINS - 1 : b);
}

/* Otsu's method: the bin split that maximises the between-class variance w0·w1·(m0 − m1)²
 * (N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. Syst. Man
 * Cybern. 9(1):62-66, 1979), on 256 equal bins between the smallest and largest finite value.
 * The threshold is the upper edge of the last background bin; ties keep the lowest split. */
void rsy__preview_otsu(const rsy_volume *v, double *threshold, int *ok)
{
    *ok = 0;
    *threshold = 0.0;
    size_t n = rsy_geometry_nvox(&v->geom);
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double x = rsy__volume_get(v, i);
        if (!isfinite(x))
            continue;
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    if (!(mx > mn))
        return;
    double hist[OTSU_BINS] = {0};
    for (size_t i = 0; i < n; i++) {
        double x = rsy__volume_get(v, i);
        if (isfinite(x))
            hist[otsu_bin(x, mn, mx)] += 1.0;
    }
    double total = 0.0, sum_all = 0.0;
    for (int b = 0; b < OTSU_BINS; b++) {
        total += hist[b];
        sum_all += (double)b * hist[b];
    }
    double w0 = 0.0, sum0 = 0.0, best = -1.0;
    int best_t = 0;
    for (int t = 0; t < OTSU_BINS - 1; t++) {
        w0 += hist[t];
        sum0 += (double)t * hist[t];
        double w1 = total - w0;
        if (w0 <= 0.0 || w1 <= 0.0)
            continue;
        double d = sum0 / w0 - (sum_all - sum0) / w1;
        double between = w0 * w1 * d * d;
        if (between > best) {
            best = between;
            best_t = t;
        }
    }
    if (best < 0.0)
        return;
    *threshold = mn + (double)(best_t + 1) * (mx - mn) / OTSU_BINS;
    *ok = 1;
}

/* Percentile window of channel @p v: the foreground voxels' finite values (mask non-zero, or
 * above the channel's Otsu threshold); all finite values when the foreground is empty. */
static rsy_status percentile_window(const rsy_volume *v, const rsy_volume *mask, double q_lo,
                                    double q_hi, double *lo, double *hi)
{
    size_t n = rsy_geometry_nvox(&v->geom);
    double thr = 0.0;
    int use_thr = 0;
    if (!mask)
        rsy__preview_otsu(v, &thr, &use_thr);
    float *buf = malloc((n ? n : 1) * sizeof *buf);
    if (!buf) {
        rsy_log_error("cannot allocate %zu values for the percentile window", n);
        return RSY_ENOMEM;
    }
    size_t m = 0;
    for (int pass = 0; pass < 2 && m == 0; pass++) {
        for (size_t i = 0; i < n; i++) {
            double x = rsy__volume_get(v, i);
            if (!isfinite(x))
                continue;
            if (pass == 0) {
                if (mask && rsy__volume_get(mask, i) == 0.0)
                    continue;
                if (use_thr && !(x > thr))
                    continue;
            }
            buf[m++] = (float)x;
        }
        if (pass == 0 && m == 0)
            rsy_log_debug("empty foreground: the percentile window uses every voxel");
    }
    if (m == 0) {
        *lo = 0.0;
        *hi = 1.0;
    } else {
        *lo = percentile(buf, m, q_lo);
        *hi = percentile(buf, m, q_hi);
    }
    free(buf);
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Checks                                                                                     */
/* ---------------------------------------------------------------------------------------- */
static int is_label_dtype(rsy_dtype t)
{
    return t == RSY_DTYPE_UINT8 || t == RSY_DTYPE_UINT16;
}

static rsy_status check_volume(const rsy_volume *v, const rsy_geometry *g, const char *what)
{
    if (!v || !v->data || rsy_dtype_size(v->dtype) == 0) {
        rsy_log_error("preview: %s is missing or has no voxel buffer", what);
        return RSY_EINVAL;
    }
    if (g && !rsy_geometry_equal(&v->geom, g)) {
        rsy_log_error("preview: %s: geometry differs from channel 0 (dims %lld x %lld x %lld vs "
                      "%lld x %lld x %lld, or spacing/affine)",
                      what, (long long)v->geom.dims[0], (long long)v->geom.dims[1],
                      (long long)v->geom.dims[2], (long long)g->dims[0], (long long)g->dims[1],
                      (long long)g->dims[2]);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

static rsy_status check_input(const rsy_preview_input *in)
{
    if (!in) {
        rsy_log_error("preview: no input");
        return RSY_EINVAL;
    }
    if (in->modality != RSY_PREVIEW_MRI && in->modality != RSY_PREVIEW_CT) {
        rsy_log_error("preview: unknown modality %d", (int)in->modality);
        return RSY_EINVAL;
    }
    if (!in->channels || in->n_channels < 1 || in->n_channels > 256) {
        rsy_log_error("preview: expected 1..256 image channels, got %d", in->n_channels);
        return RSY_EINVAL;
    }
    rsy_status rc = check_volume(in->channels[0], NULL, "channel 0");
    if (rc != RSY_OK)
        return rc;
    const rsy_geometry *g = &in->channels[0]->geom;
    for (int a = 0; a < 3; a++)
        if (g->dims[a] < 1 || !(g->spacing_mm[a] > 0.0) || !isfinite(g->spacing_mm[a])) {
            rsy_log_error("preview: channel 0 has a bad geometry (dims < 1 or spacing <= 0)");
            return RSY_EINVAL;
        }
    for (int c = 1; c < in->n_channels; c++) {
        char what[32];
        snprintf(what, sizeof what, "channel %d", c);
        if ((rc = check_volume(in->channels[c], g, what)) != RSY_OK)
            return rc;
    }
    if ((rc = check_volume(in->labels, g, "label map")) != RSY_OK)
        return rc;
    if (!is_label_dtype(in->labels->dtype)) {
        rsy_log_error("preview: label map: expected uint8 or uint16, got %s",
                      rsy_dtype_name(in->labels->dtype));
        return RSY_EINVAL;
    }
    if (in->instances) {
        if ((rc = check_volume(in->instances, g, "instance map")) != RSY_OK)
            return rc;
        if (!is_label_dtype(in->instances->dtype)) {
            rsy_log_error("preview: instance map: expected uint8 or uint16, got %s",
                          rsy_dtype_name(in->instances->dtype));
            return RSY_EINVAL;
        }
    }
    if (in->foreground) {
        if ((rc = check_volume(in->foreground, g, "foreground mask")) != RSY_OK)
            return rc;
        if (in->foreground->dtype == RSY_DTYPE_FLOAT32) {
            rsy_log_error("preview: foreground mask: expected an integer dtype, got float32");
            return RSY_EINVAL;
        }
    }
    return RSY_OK;
}

static int in_unit(double a)
{
    return a >= 0.0 && a <= 1.0;
}

static rsy_status check_params(const rsy_preview_params *p, rsy_preview_modality m)
{
    switch (p->window) {
    case RSY_PREVIEW_WINDOW_AUTO:
    case RSY_PREVIEW_WINDOW_PERCENTILE:
        break;
    case RSY_PREVIEW_WINDOW_CT_LUNG:
    case RSY_PREVIEW_WINDOW_CT_SOFT_TISSUE:
    case RSY_PREVIEW_WINDOW_CT_BRAIN:
    case RSY_PREVIEW_WINDOW_CT_BONE:
        if (m != RSY_PREVIEW_CT) {
            rsy_log_error("preview: a CT window preset (in HU) was asked for an MRI image");
            return RSY_EINVAL;
        }
        break;
    case RSY_PREVIEW_WINDOW_MANUAL:
        if (!(p->window_width > 0.0) || !isfinite(p->window_width) || !isfinite(p->window_level)) {
            rsy_log_error("preview: manual window: expected a finite width > 0 and a finite "
                          "level, got W %g L %g",
                          p->window_width, p->window_level);
            return RSY_EINVAL;
        }
        break;
    default:
        rsy_log_error("preview: unknown window %d", (int)p->window);
        return RSY_EINVAL;
    }
    if (!(p->percentile_lo >= 0.0 && p->percentile_lo < p->percentile_hi &&
          p->percentile_hi <= 100.0)) {
        rsy_log_error("preview: percentiles: expected 0 <= lo < hi <= 100, got %g and %g",
                      p->percentile_lo, p->percentile_hi);
        return RSY_EINVAL;
    }
    if (!(p->pixel_mm >= 0.0) || !isfinite(p->pixel_mm) || p->max_lesions < 1 ||
        !in_unit(p->contour_alpha) || !in_unit(p->fill_alpha) || p->gap_px < 0 || p->gap_px > 64 ||
        p->compression_level < 0 || p->compression_level > 9) {
        rsy_log_error("preview: bad parameters (pixel_mm %g, max_lesions %d, alphas %g/%g, gap "
                      "%d, compression %d)",
                      p->pixel_mm, p->max_lesions, p->contour_alpha, p->fill_alpha, p->gap_px,
                      p->compression_level);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

rsy_status rsy_export_preview_window_range(const rsy_preview_input *in, int channel,
                                           const rsy_preview_params *p, double *lo, double *hi)
{
    rsy_preview_params defaults = rsy_preview_params_default();
    if (!p)
        p = &defaults;
    if (!lo || !hi)
        return RSY_EINVAL;
    rsy_status rc = check_input(in);
    if (rc != RSY_OK)
        return rc;
    if ((rc = check_params(p, in->modality)) != RSY_OK)
        return rc;
    if (channel < 0 || channel >= in->n_channels) {
        rsy_log_error("preview: channel %d out of range 0..%d", channel, in->n_channels - 1);
        return RSY_EINVAL;
    }
    rsy_preview_window w = p->window;
    if (w == RSY_PREVIEW_WINDOW_AUTO)
        w = in->modality == RSY_PREVIEW_CT ? RSY_PREVIEW_WINDOW_CT_SOFT_TISSUE
                                           : RSY_PREVIEW_WINDOW_PERCENTILE;
    double width = p->window_width, level = p->window_level;
    if (w == RSY_PREVIEW_WINDOW_PERCENTILE)
        return percentile_window(in->channels[channel], in->foreground, p->percentile_lo,
                                 p->percentile_hi, lo, hi);
    if (is_ct_preset(w) && (rc = rsy_export_preview_ct_window(w, &width, &level)) != RSY_OK)
        return rc;
    *lo = level - width / 2.0;
    *hi = level + width / 2.0;
    return RSY_OK;
}

/* Overlay colours: 12 saturated colours chosen to stand out on grey and from each other
 * (label 1 red, 2 green, 3 yellow: the usual necrosis / oedema / enhancing reading of the
 * BraTS labels), then fully saturated hues spaced by the golden ratio. */
void rsy_export_preview_label_colour(int label, unsigned char rgb[3])
{
    static const unsigned char table[12][3] = {{255, 0, 0},     {0, 255, 0},    {255, 255, 0},
                                               {0, 128, 255},   {255, 0, 255},  {0, 255, 255},
                                               {255, 128, 0},   {128, 64, 255}, {0, 255, 128},
                                               {255, 128, 192}, {160, 255, 64}, {128, 192, 255}};
    if (label >= 1 && label <= 12) {
        memcpy(rgb, table[label - 1], 3);
        return;
    }
    double h = fmod(0.1 + (double)(label < 0 ? -label : label) * 0.6180339887498949, 1.0) * 6.0;
    int sector = (int)h;
    double f = h - (double)sector;
    unsigned char up = (unsigned char)floor(255.0 * f + 0.5);
    unsigned char down = (unsigned char)(255 - up);
    /* HSV with S = V = 1: one channel 255, one 0, one ramp, so never grey. */
    switch (sector % 6) {
    case 0:
        rgb[0] = 255;
        rgb[1] = up;
        rgb[2] = 0;
        break;
    case 1:
        rgb[0] = down;
        rgb[1] = 255;
        rgb[2] = 0;
        break;
    case 2:
        rgb[0] = 0;
        rgb[1] = 255;
        rgb[2] = up;
        break;
    case 3:
        rgb[0] = 0;
        rgb[1] = down;
        rgb[2] = 255;
        break;
    case 4:
        rgb[0] = up;
        rgb[1] = 0;
        rgb[2] = 255;
        break;
    default:
        rgb[0] = 255;
        rgb[1] = 0;
        rgb[2] = down;
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Orientation and layout                                                                     */
/* ---------------------------------------------------------------------------------------- */
/* For each world axis (0 = x toward the subject's Right, 1 = y Anterior, 2 = z Superior, RAS+)
 * the voxel axis closest to it and whether the voxel index grows toward R/A/S. The pairing is
 * greedy on the largest |affine| entry (as nibabel's aff2axcodes), so it is a permutation. */
typedef struct orient {
    int axis[3];
    int toward[3]; /* 1: index grows toward R / A / S */
} orient;

static void orient_from_geometry(const rsy_geometry *g, orient *o)
{
    int used_w[3] = {0, 0, 0}, used_a[3] = {0, 0, 0};
    for (int step = 0; step < 3; step++) {
        double best = -1.0;
        int bw = 0, ba = 0;
        for (int w = 0; w < 3; w++)
            for (int a = 0; a < 3; a++)
                if (!used_w[w] && !used_a[a] && fabs(g->affine[w][a]) > best) {
                    best = fabs(g->affine[w][a]);
                    bw = w;
                    ba = a;
                }
        used_w[bw] = used_a[ba] = 1;
        o->axis[bw] = ba;
        o->toward[bw] = g->affine[bw][ba] > 0.0;
    }
}

/* World axes of each view: the slice normal, the image's column direction and row direction.
 * In every view both image directions run toward decreasing world coordinates: columns from
 * the subject's right to left (axial, coronal) or anterior to posterior (sagittal), rows from
 * anterior to posterior (axial) or superior to inferior (coronal, sagittal). */
static const int view_normal[3] = {2, 1, 0};
static const int view_u[3] = {0, 0, 1};
static const int view_v[3] = {1, 2, 2};

static double pixel_size(const rsy_geometry *g, const rsy_preview_params *p)
{
    if (p->pixel_mm > 0.0)
        return p->pixel_mm;
    double s = g->spacing_mm[0];
    for (int a = 1; a < 3; a++)
        s = g->spacing_mm[a] < s ? g->spacing_mm[a] : s;
    return s;
}

/* Pixels of a tile side showing n voxels of size s at pixel size pix: round(n·s/pix), >= 1. */
static uint64_t tile_side(int64_t n, double s, double pix)
{
    double w = floor((double)n * s / pix + 0.5);
    if (w < 1.0)
        return 1;
    if (w > (double)RSY__PREVIEW_MAX_SIDE)
        return (uint64_t)RSY__PREVIEW_MAX_SIDE + 1;
    return (uint64_t)w;
}

/* The targets: instance ids with at least one voxel in increasing order (at most max), each
 * at its centroid rounded to the nearest voxel; none gives the centre, floor(n/2) per axis. */
static rsy_status find_targets(const rsy_preview_input *in, int max, rsy__preview_layout *l)
{
    const rsy_geometry *g = &in->channels[0]->geom;
    size_t n = rsy_geometry_nvox(g);
    int max_id = 0;
    if (in->instances)
        max_id = (int)rsy__volume_max(in->instances);
    int64_t *count = NULL;
    double(*sum)[3] = NULL;
    rsy_status rc = RSY_ENOMEM;
    int n_found = 0;
    if (max_id > 0) {
        count = calloc((size_t)max_id + 1, sizeof *count);
        sum = calloc((size_t)max_id + 1, sizeof *sum);
        if (!count || !sum)
            goto fail;
        const int64_t nx = g->dims[0], ny = g->dims[1];
        for (size_t idx = 0; idx < n; idx++) {
            int id = (int)rsy__volume_get(in->instances, idx);
            if (id == 0)
                continue;
            count[id]++;
            sum[id][0] += (double)((int64_t)idx % nx);
            sum[id][1] += (double)(((int64_t)idx / nx) % ny);
            sum[id][2] += (double)((int64_t)idx / (nx * ny));
        }
        for (int id = 1; id <= max_id; id++)
            n_found += count[id] > 0;
    }
    int n_targets = n_found == 0 ? 1 : (n_found < max ? n_found : max);
    if (n_found > max)
        rsy_log_info("preview: %d lesions, the first %d shown", n_found, max);
    l->target_id = calloc((size_t)n_targets, sizeof *l->target_id);
    l->target_vox = calloc((size_t)n_targets, sizeof *l->target_vox);
    if (!l->target_id || !l->target_vox)
        goto fail;
    l->n_targets = n_targets;
    if (n_found == 0) {
        for (int a = 0; a < 3; a++)
            l->target_vox[0][a] = g->dims[a] / 2;
    } else {
        int t = 0;
        for (int id = 1; id <= max_id && t < n_targets; id++) {
            if (count[id] == 0)
                continue;
            l->target_id[t] = id;
            for (int a = 0; a < 3; a++) {
                int64_t v = (int64_t)floor(sum[id][a] / (double)count[id] + 0.5);
                l->target_vox[t][a] = v < 0 ? 0 : (v >= g->dims[a] ? g->dims[a] - 1 : v);
            }
            t++;
        }
    }
    rc = RSY_OK;
fail:
    if (rc == RSY_ENOMEM)
        rsy_log_error("preview: out of memory for %d instance ids", max_id);
    free(count);
    free(sum);
    return rc;
}

void rsy__preview_layout_clear(rsy__preview_layout *l)
{
    if (!l)
        return;
    RSY_FREE(l->target_id);
    RSY_FREE(l->target_vox);
    l->n_targets = 0;
}

uint32_t rsy__preview_row_y(const rsy__preview_layout *l, int row)
{
    return (uint32_t)row * (l->row_h + l->gap);
}

rsy_status rsy__preview_layout_make(const rsy_preview_input *in, const rsy_preview_params *p,
                                    rsy__preview_layout *out)
{
    rsy_preview_params defaults = rsy_preview_params_default();
    if (!p)
        p = &defaults;
    if (!out)
        return RSY_EINVAL;
    memset(out, 0, sizeof *out);
    rsy_status rc = check_input(in);
    if (rc != RSY_OK)
        return rc;
    if ((rc = check_params(p, in->modality)) != RSY_OK)
        return rc;

    const rsy_geometry *g = &in->channels[0]->geom;
    orient o;
    orient_from_geometry(g, &o);
    double pix = pixel_size(g, p);
    uint64_t tw[3], th[3], row_h = 0;
    for (int v = 0; v < 3; v++) {
        int au = o.axis[view_u[v]], av = o.axis[view_v[v]];
        tw[v] = tile_side(g->dims[au], g->spacing_mm[au], pix);
        th[v] = tile_side(g->dims[av], g->spacing_mm[av], pix);
        row_h = th[v] > row_h ? th[v] : row_h;
    }
    const uint64_t gap = (uint64_t)p->gap_px;
    uint64_t width = 2 * (tw[0] + tw[1] + tw[2]) + 5 * gap;
    /* One row is checked before the instance map is scanned, the whole image after. */
    if (width > RSY__PREVIEW_MAX_SIDE || row_h > RSY__PREVIEW_MAX_SIDE ||
        width * row_h > RSY__PREVIEW_MAX_PIXELS) {
        rsy_log_error("preview: an image row would be %llu x %llu pixels, over the limit "
                      "(%u a side, %llu pixels); raise pixel_mm",
                      (unsigned long long)width, (unsigned long long)row_h, RSY__PREVIEW_MAX_SIDE,
                      (unsigned long long)RSY__PREVIEW_MAX_PIXELS);
        return RSY_ELIMIT;
    }
    if ((rc = find_targets(in, p->max_lesions, out)) != RSY_OK)
        return rc;
    uint64_t rows = (uint64_t)in->n_channels * (uint64_t)out->n_targets;
    uint64_t height = rows * row_h + (rows - 1) * gap;
    if (height > RSY__PREVIEW_MAX_SIDE || width * height > RSY__PREVIEW_MAX_PIXELS) {
        rsy_log_error("preview: the image would be %llu x %llu pixels, over the limit (%u a "
                      "side, %llu pixels); show fewer lesions or raise pixel_mm",
                      (unsigned long long)width, (unsigned long long)height, RSY__PREVIEW_MAX_SIDE,
                      (unsigned long long)RSY__PREVIEW_MAX_PIXELS);
        rsy__preview_layout_clear(out);
        return RSY_ELIMIT;
    }
    out->n_channels = in->n_channels;
    for (int v = 0; v < 3; v++) {
        out->tile_w[v] = (uint32_t)tw[v];
        out->tile_h[v] = (uint32_t)th[v];
    }
    out->row_h = (uint32_t)row_h;
    out->gap = (uint32_t)gap;
    uint32_t x = 0;
    for (int c = 0; c < 6; c++) {
        out->col_x[c] = x;
        x += out->tile_w[c % 3] + out->gap;
    }
    out->width = (uint32_t)width;
    out->height = (uint32_t)height;
    return RSY_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Rendering                                                                                  */
/* ---------------------------------------------------------------------------------------- */
/* Nearest-neighbour resampling to square pixels: pixel q of a side of w pixels shows display
 * position floor((q + 0.5)·n/w) of the n voxels, so every voxel covers a block of whole pixels
 * and label contours fall exactly on voxel edges. Display position p is voxel index n−1−p
 * when the index grows toward the world direction the display runs against, else p. */
static void side_map(int64_t *map, uint32_t w, int64_t n, int toward)
{
    for (uint32_t q = 0; q < w; q++) {
        int64_t pos = (int64_t)floor(((double)q + 0.5) * (double)n / (double)w);
        pos = pos < 0 ? 0 : (pos >= n ? n - 1 : pos);
        map[q] = toward ? n - 1 - pos : pos;
    }
}

static uint8_t blend(uint8_t grey, unsigned char colour, unsigned a8)
{
    return (uint8_t)(((unsigned)grey * (255u - a8) + (unsigned)colour * a8 + 127u) / 255u);
}

static unsigned alpha8(double a)
{
    return (unsigned)floor(a * 255.0 + 0.5);
}

typedef struct render_ctx {
    const rsy_preview_input *in;
    const rsy__preview_layout *l;
    const orient *o;
    const double *win; /* lo, hi per channel */
    int64_t *map_u[3], *map_v[3];
    int32_t *lab; /* one tile's labels */
    unsigned contour_a8, fill_a8;
    uint8_t *rgb;
} render_ctx;

static void put(const render_ctx *r, uint32_t x, uint32_t y, uint8_t red, uint8_t green,
                uint8_t blue)
{
    uint8_t *px = r->rgb + ((size_t)y * r->l->width + x) * 3;
    px[0] = red;
    px[1] = green;
    px[2] = blue;
}

/* The plain and overlaid tiles of view @p v for target @p t and channel @p c at row top y0. */
static void render_view(const render_ctx *r, int t, int c, int v, uint32_t y0)
{
    const rsy_geometry *g = &r->in->channels[0]->geom;
    const size_t stride[3] = {1, (size_t)g->dims[0], (size_t)g->dims[0] * (size_t)g->dims[1]};
    const int au = r->o->axis[view_u[v]], av = r->o->axis[view_v[v]];
    const int an = r->o->axis[view_normal[v]];
    const size_t base = (size_t)r->l->target_vox[t][an] * stride[an];
    const uint32_t tw = r->l->tile_w[v], th = r->l->tile_h[v];
    const uint32_t x_plain = r->l->col_x[v], x_over = r->l->col_x[3 + v];
    const double lo = r->win[2 * c], hi = r->win[2 * c + 1];
    const rsy_volume *img = r->in->channels[c];

    for (uint32_t y = 0; y < th; y++)
        for (uint32_t x = 0; x < tw; x++) {
            size_t idx =
                base + (size_t)r->map_u[v][x] * stride[au] + (size_t)r->map_v[v][y] * stride[av];
            uint8_t grey = rsy__preview_grey(rsy__volume_get(img, idx), lo, hi);
            put(r, x_plain + x, y0 + y, grey, grey, grey);
            put(r, x_over + x, y0 + y, grey, grey, grey);
            r->lab[(size_t)y * tw + x] = (int32_t)rsy__volume_get(r->in->labels, idx);
        }

    /* A labelled pixel is on the contour when a 4-neighbour inside the tile has another label.
     * The tile's border is the edge of the field of view, not of the structure, so it is not
     * outlined (a body label cut by the volume's edge shows no line along the cut). */
    for (uint32_t y = 0; y < th; y++)
        for (uint32_t x = 0; x < tw; x++) {
            const int32_t *lp = r->lab + (size_t)y * tw + x;
            int32_t lab = *lp;
            if (lab <= 0)
                continue;
            int contour = (x > 0 && lp[-1] != lab) || (x + 1 < tw && lp[1] != lab) ||
                          (y > 0 && lp[-(ptrdiff_t)tw] != lab) || (y + 1 < th && lp[tw] != lab);
            unsigned a8 = contour ? r->contour_a8 : r->fill_a8;
            if (a8 == 0)
                continue;
            unsigned char col[3];
            rsy_export_preview_label_colour(lab, col);
            uint8_t *px = r->rgb + ((size_t)(y0 + y) * r->l->width + x_over + x) * 3;
            for (int k = 0; k < 3; k++)
                px[k] = blend(px[k], col[k], a8);
        }
}

rsy_status rsy__preview_render(const rsy_preview_input *in, const rsy_preview_params *p,
                               uint8_t **rgb, uint32_t *width, uint32_t *height)
{
    rsy_preview_params defaults = rsy_preview_params_default();
    if (!p)
        p = &defaults;
    if (!rgb || !width || !height)
        return RSY_EINVAL;
    *rgb = NULL;
    rsy__preview_layout l;
    rsy_status rc = rsy__preview_layout_make(in, p, &l);
    if (rc != RSY_OK)
        return rc;

    render_ctx r;
    memset(&r, 0, sizeof r);
    orient o;
    orient_from_geometry(&in->channels[0]->geom, &o);
    double *win = calloc((size_t)in->n_channels * 2, sizeof *win);
    size_t max_tile = 0;
    for (int v = 0; v < 3; v++) {
        size_t tp = (size_t)l.tile_w[v] * l.tile_h[v];
        max_tile = tp > max_tile ? tp : max_tile;
        r.map_u[v] = malloc(l.tile_w[v] * sizeof(int64_t));
        r.map_v[v] = malloc(l.tile_h[v] * sizeof(int64_t));
    }
    r.lab = malloc(max_tile * sizeof *r.lab);
    r.rgb = malloc((size_t)l.width * l.height * 3);
    rc = RSY_ENOMEM;
    if (!win || !r.lab || !r.rgb)
        goto fail;
    for (int v = 0; v < 3; v++)
        if (!r.map_u[v] || !r.map_v[v])
            goto fail;
    for (int c = 0; c < in->n_channels; c++) {
        rc = rsy_export_preview_window_range(in, c, p, &win[2 * c], &win[2 * c + 1]);
        if (rc != RSY_OK)
            goto fail;
    }
    const rsy_geometry *g = &in->channels[0]->geom;
    for (int v = 0; v < 3; v++) {
        int wu = view_u[v], wv = view_v[v];
        side_map(r.map_u[v], l.tile_w[v], g->dims[o.axis[wu]], o.toward[wu]);
        side_map(r.map_v[v], l.tile_h[v], g->dims[o.axis[wv]], o.toward[wv]);
    }
    for (size_t i = 0; i < (size_t)l.width * l.height; i++) {
        r.rgb[3 * i] = RSY__PREVIEW_GAP_R;
        r.rgb[3 * i + 1] = RSY__PREVIEW_GAP_G;
        r.rgb[3 * i + 2] = RSY__PREVIEW_GAP_B;
    }
    r.in = in;
    r.l = &l;
    r.o = &o;
    r.win = win;
    r.contour_a8 = alpha8(p->contour_alpha);
    r.fill_a8 = alpha8(p->fill_alpha);
    for (int t = 0; t < l.n_targets; t++)
        for (int c = 0; c < in->n_channels; c++) {
            uint32_t y0 = rsy__preview_row_y(&l, t * in->n_channels + c);
            for (int v = 0; v < 3; v++)
                render_view(&r, t, c, v, y0);
        }
    *rgb = r.rgb;
    r.rgb = NULL;
    *width = l.width;
    *height = l.height;
    rc = RSY_OK;

fail:
    if (rc == RSY_ENOMEM)
        rsy_log_error("preview: out of memory for a %u x %u image", l.width, l.height);
    free(r.rgb);
    free(r.lab);
    for (int v = 0; v < 3; v++) {
        free(r.map_u[v]);
        free(r.map_v[v]);
    }
    free(win);
    rsy__preview_layout_clear(&l);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* PNG encoding (libpng, into memory)                                                         */
/* ---------------------------------------------------------------------------------------- */
typedef struct png_mem {
    unsigned char *buf;
    size_t len, cap;
} png_mem;

static void png_mem_write(png_structp png, png_bytep data, size_t n)
{
    png_mem *m = png_get_io_ptr(png);
    if (n > SIZE_MAX - m->len)
        png_error(png, "output too large");
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + n)
            cap = cap > SIZE_MAX / 2 ? m->len + n : cap * 2;
        unsigned char *b = realloc(m->buf, cap);
        if (!b)
            png_error(png, "out of memory");
        m->buf = b;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
}

static void png_mem_flush(png_structp png)
{
    (void)png;
}

/* libpng's own handlers print to stderr; the library logs instead (STYLE.md section 4). */
static void png_on_error(png_structp png, png_const_charp msg)
{
    rsy_log_error("libpng: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    rsy_log_debug("libpng: %s", msg);
}

/* Everything libpng may longjmp out of; called only under png_encode's setjmp. */
static void png_encode_body(png_structp png, png_infop info, const uint8_t *rgb, uint32_t w,
                            uint32_t h, int level)
{
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* Fixed level and filter choice: libpng's adaptive filter selection is a deterministic
     * function of the rows, so the bytes depend only on the pixels (and the libpng/zlib
     * versions). */
    png_set_compression_level(png, level);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
    png_write_info(png, info);
    for (uint32_t y = 0; y < h; y++)
        png_write_row(png, rgb + (size_t)y * w * 3);
    png_write_end(png, NULL);
}

static rsy_status png_encode(const uint8_t *rgb, uint32_t w, uint32_t h, int level, png_mem *out)
{
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
    if (!png) {
        rsy_log_error("libpng: cannot create a write structure");
        return RSY_ENOMEM;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        rsy_log_error("libpng: cannot create an info structure");
        return RSY_ENOMEM;
    }
    png_set_write_fn(png, out, png_mem_write, png_mem_flush);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return RSY_EDEP;
    }
    png_encode_body(png, info, rgb, w, h, level);
    png_destroy_write_struct(&png, &info);
    return RSY_OK;
}

rsy_status rsy_export_preview_write(const rsy_preview_input *in, const rsy_preview_params *p,
                                    const char *path)
{
    if (!path || !path[0]) {
        rsy_log_error("preview: no output path");
        return RSY_EINVAL;
    }
    rsy_preview_params defaults = rsy_preview_params_default();
    if (!p)
        p = &defaults;
    uint8_t *rgb = NULL;
    uint32_t w = 0, h = 0;
    rsy_status rc = rsy__preview_render(in, p, &rgb, &w, &h);
    if (rc != RSY_OK)
        return rc;
    png_mem mem = {NULL, 0, 0};
    rc = png_encode(rgb, w, h, p->compression_level, &mem);
    free(rgb);
    if (rc == RSY_OK)
        rc = rsy_file_write_atomic(path, mem.buf, mem.len);
    free(mem.buf);
    return rc;
}
