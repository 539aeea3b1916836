/*
 * rsy_preview.h: slice previews of a case as one PNG (issue 6, "Previews"; docs/previews.md).
 *
 * For each lesion of a case (or the volume centre when it has none), the axial, coronal and
 * sagittal slices through the lesion's centroid, for every image channel, each without and
 * with a label overlay, laid out as a grid. Windowing per modality (CT presets in HU, MRI
 * percentiles), square pixels whatever the voxel spacing, radiological orientation, and
 * deterministic bytes written atomically.
 *
 * This header is part of the export module; its declarations are meant to move into
 * rsy_export.h (it includes only rsy_core.h, so nothing else changes for callers).
 */
#ifndef RSY_PREVIEW_H
#define RSY_PREVIEW_H

#include "rsy_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What the image channels hold: CT in HU (int16 or float32), MRI in arbitrary units. */
typedef enum { RSY_PREVIEW_MRI = 0, RSY_PREVIEW_CT = 1 } rsy_preview_modality;

/**
 * Grey-level window. The CT presets are width/level pairs in HU (docs/previews.md, (GK)):
 * lung W1500 L-600, soft tissue W400 L40, brain W80 L40, bone W2000 L300.
 */
typedef enum {
    RSY_PREVIEW_WINDOW_AUTO = 0,    /* CT: soft tissue; MRI: percentiles */
    RSY_PREVIEW_WINDOW_CT_LUNG = 1, /* CT only */
    RSY_PREVIEW_WINDOW_CT_SOFT_TISSUE = 2,
    RSY_PREVIEW_WINDOW_CT_BRAIN = 3,
    RSY_PREVIEW_WINDOW_CT_BONE = 4,
    RSY_PREVIEW_WINDOW_PERCENTILE = 5, /* per channel: percentiles of the foreground voxels */
    RSY_PREVIEW_WINDOW_MANUAL = 6      /* window_width / window_level, image units */
} rsy_preview_window;

/** The volumes of one case, all borrowed and never stored. Every volume has the geometry of
 *  channels[0] (rsy_geometry_equal). */
typedef struct rsy_preview_input {
    rsy_preview_modality modality;
    const rsy_volume *const *channels; /* n_channels >= 1 images: float32, int16 or uint16/8 */
    int n_channels;
    const rsy_volume *labels;     /* uint8 or uint16 label map (0 = no label); required */
    const rsy_volume *instances;  /* uint8 or uint16 instance map (0 = none, 1..N lesions), or
                                     NULL: no lesion, the volume centre is shown */
    const rsy_volume *foreground; /* any integer dtype, non-zero = inside the subject: the
                                     voxels the percentile window is computed on; NULL = each
                                     channel's Otsu threshold (docs/previews.md) */
} rsy_preview_input;

/** How a preview is drawn. Start from rsy_preview_params_default(). */
typedef struct rsy_preview_params {
    rsy_preview_window window;
    double window_width, window_level;   /* RSY_PREVIEW_WINDOW_MANUAL only; width > 0 */
    double percentile_lo, percentile_hi; /* RSY_PREVIEW_WINDOW_PERCENTILE (and MRI AUTO);
                                            0 <= lo < hi <= 100 */
    double pixel_mm;       /* output pixel size; 0 = the finest voxel spacing of the volume */
    int max_lesions;       /* lesions shown (lowest instance ids first), >= 1 */
    double contour_alpha;  /* opacity of the 1-pixel label contour, [0, 1] */
    double fill_alpha;     /* opacity of the label fill inside the contour, [0, 1] */
    int gap_px;            /* grey separator between tiles, >= 0 */
    int compression_level; /* zlib level 0..9; fixed, so the bytes are reproducible */
} rsy_preview_params;

/** Defaults: window AUTO, percentiles 1 and 99, pixel_mm 0 (finest spacing), 8 lesions,
 *  opaque contour (alpha 1) and no fill, 2-pixel gaps, compression level 6. @since 0.4 */
RSY_API rsy_preview_params rsy_preview_params_default(void);

/**
 * Width and level (HU) of the CT preset @p w.
 * @return RSY_OK, RSY_EINVAL (@p w is not a CT preset or an argument is NULL). @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_preview_ct_window(rsy_preview_window w, double *width,
                                                              double *level);

/**
 * The grey-level range [@p lo, @p hi] used for channel @p channel of @p in: lo maps to black,
 * hi to white, linearly between (docs/previews.md). A CT preset or MANUAL gives
 * level ∓ width/2; the percentile window gives the percentiles (linear interpolation between
 * order statistics) of the channel's finite values on the foreground voxels.
 * @return RSY_OK, RSY_EINVAL (bad input or parameters, a CT preset for MRI; logged),
 *         RSY_ENOMEM. @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_preview_window_range(const rsy_preview_input *in,
                                                                 int channel,
                                                                 const rsy_preview_params *p,
                                                                 double *lo, double *hi);

/**
 * The overlay colour of label value @p label (>= 1): a fixed table of 12 saturated colours,
 * then hues spaced by the golden ratio. Never grey (r, g, b never all equal). @since 0.4
 */
RSY_API void rsy_export_preview_label_colour(int label, unsigned char rgb[3]);

/**
 * Render the preview of @p in and write it to @p path as an 8-bit RGB PNG: written in memory,
 * then atomically (rsy_file_write_atomic: temporary name, fsync, rename). The PNG has no
 * timestamp or text chunk, so equal inputs give byte-identical files. @p p may be NULL
 * (defaults). On failure no file is left at @p path or beside it.
 * @return RSY_OK, RSY_EINVAL (NULL argument, geometry or dtype mismatch, bad parameters;
 *         logged), RSY_ELIMIT (the image would exceed 32768 pixels on a side or 2^28 pixels),
 *         RSY_ENOMEM, RSY_EDEP (libpng failed; logged), RSY_EIO (logged with the path).
 * @since 0.4
 */
RSY_API RSY_NODISCARD rsy_status rsy_export_preview_write(const rsy_preview_input *in,
                                                          const rsy_preview_params *p,
                                                          const char *path);

#ifdef __cplusplus
}
#endif
#endif /* RSY_PREVIEW_H */
