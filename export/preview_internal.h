/*
 * preview_internal.h: the parts of preview.c that tests reach (never installed).
 *
 * The layout of a preview (docs/previews.md, "Layout"): one row of six tiles per (target,
 * channel), targets being the lesions shown (or the volume centre), rows in target-major order
 * (target 0 channel 0, target 0 channel 1, ...). In a row, tile columns 0..2 are the axial,
 * coronal and sagittal slices without overlay, columns 3..5 the same with the overlay. Tiles
 * are top-aligned; gap_px grey pixels separate columns and rows.
 */
#ifndef RSY_PREVIEW_INTERNAL_H
#define RSY_PREVIEW_INTERNAL_H

#include <stdint.h>

#include "core_internal.h"
#include "rsy_export.h"

/* Views, in tile-column order. */
#define RSY__PREVIEW_AXIAL 0
#define RSY__PREVIEW_CORONAL 1
#define RSY__PREVIEW_SAGITTAL 2

/* Colour of the separators and of row space below a shorter tile: a dark slate blue, not a
 * grey, because every grey is some window's rendering of some tissue (air is grey 60 in the
 * lung window) and the tiles must stand apart. */
#define RSY__PREVIEW_GAP_R 40
#define RSY__PREVIEW_GAP_G 56
#define RSY__PREVIEW_GAP_B 96

/* Largest image side and pixel count (RSY_ELIMIT beyond). */
#define RSY__PREVIEW_MAX_SIDE 32768u
#define RSY__PREVIEW_MAX_PIXELS ((uint64_t)1 << 28)

typedef struct rsy__preview_layout {
    int n_targets;            /* lesion blocks shown, >= 1 */
    int *target_id;           /* n_targets instance ids; 0 = the volume centre (no lesion) */
    int64_t (*target_vox)[3]; /* n_targets voxel indices (i, j, k) the slices go through */
    int n_channels;
    uint32_t tile_w[3], tile_h[3]; /* per view, pixels */
    uint32_t row_h;                /* max of tile_h */
    uint32_t col_x[6];             /* left edge of each tile column */
    uint32_t gap;
    uint32_t width, height;
} rsy__preview_layout;

/** Check @p in and @p p (NULL = defaults) and compute the layout. On success the caller
 *  releases @p out with rsy__preview_layout_clear(). @return RSY_OK, RSY_EINVAL, RSY_ELIMIT,
 *  RSY_ENOMEM. */
rsy_status rsy__preview_layout_make(const rsy_preview_input *in, const rsy_preview_params *p,
                                    rsy__preview_layout *out);
void rsy__preview_layout_clear(rsy__preview_layout *l);
/** y of the top of row @p row (row = target * n_channels + channel). */
uint32_t rsy__preview_row_y(const rsy__preview_layout *l, int row);

/** Render into a heap RGB buffer (width·height·3 bytes, rows top to bottom), owned by the
 *  caller (free()). @return as rsy_export_preview_write() without RSY_EIO/RSY_EDEP. */
rsy_status rsy__preview_render(const rsy_preview_input *in, const rsy_preview_params *p,
                               uint8_t **rgb, uint32_t *width, uint32_t *height);

/** Grey level of @p v in the window [lo, hi]: round(255·(v − lo)/(hi − lo)) clamped to
 *  [0, 255]; NaN gives 0; hi <= lo is read as [lo, lo + 1]. */
uint8_t rsy__preview_grey(double v, double lo, double hi);

/** Otsu's threshold of the finite values of @p v on 256 bins: voxels with a value above
 *  @p *threshold are the foreground. @p *ok is 0 when no split exists (constant or empty). */
void rsy__preview_otsu(const rsy_volume *v, double *threshold, int *ok);

#endif /* RSY_PREVIEW_INTERNAL_H */
