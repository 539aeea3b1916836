/*
 * fit_texture_cmd.c: `raresynth fit-texture`, a texture model fitted on a real scan
 * (rsy_texture_fit does the work; docs/texture-model.md).
 */
#include <stdio.h>

#include "cli_internal.h"

static const char fit_texture_usage[] =
    "Usage: raresynth fit-texture --image I.nii.gz (--labels L.nii.gz | --auto-classes K)\n"
    "                             --out MODEL.h5 [OPTIONS]\n"
    "\n"
    "Fit a texture model (per class a Gaussian mixture over normalised p^3 patches) on a real\n"
    "scan and write it to HDF5 (docs/texture-model.md). The model holds no voxel of the scan.\n"
    "\n"
    "Options:\n"
    "  -i, --image FILE        intensity image (NIfTI-1)\n"
    "  -l, --labels FILE       label map: each non-zero label is a class\n"
    "  -k, --auto-classes K    K classes from an intensity mixture inside the non-zero voxels\n"
    "  -o, --out FILE          output model (.h5), written atomically\n"
    "      --patch P           patch edge, odd in 1..9 (default 5)\n"
    "      --components C      mixture components per class, 1..16 (default 3)\n"
    "  -s, --seed S            subsampling and initialisation seed (default 1)\n"
    "  -j, --jobs J            threads (default 1); the model does not depend on it\n"
    "  -q, --quiet             errors only\n"
    "  -v, --verbose           per-class summary\n";

int cmd_fit_texture(int argc, char **argv)
{
    const char *image_path = NULL, *labels_path = NULL, *out = NULL;
    uint64_t auto_k = 0, v64 = 0;
    int quiet = 0;
    rsy_texture_fit_params p = rsy_texture_fit_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (is_opt(a, "--help", "-h")) {
            fputs(fit_texture_usage, stdout);
            return EXIT_OK;
        } else if (is_valued_opt(a, "--image", "-i")) {
            if (!(image_path = opt_value(argc, argv, &i, "--image", "-i")))
                goto missing;
        } else if (is_valued_opt(a, "--labels", "-l")) {
            if (!(labels_path = opt_value(argc, argv, &i, "--labels", "-l")))
                goto missing;
        } else if (is_valued_opt(a, "--out", "-o")) {
            if (!(out = opt_value(argc, argv, &i, "--out", "-o")))
                goto missing;
        } else if (is_valued_opt(a, "--auto-classes", "-k")) {
            if (!(v = opt_value(argc, argv, &i, "--auto-classes", "-k")))
                goto missing;
            if (parse_u64(v, &auto_k) || auto_k < 1 || auto_k > RSY_TEXTURE_MAX_COMPONENTS) {
                fail("--auto-classes: expected an integer in 1..%d, got '%s'",
                     RSY_TEXTURE_MAX_COMPONENTS, v);
                return EXIT_USAGE;
            }
        } else if (is_opt(a, "--patch", NULL)) {
            if (!(v = opt_value(argc, argv, &i, "--patch", NULL)))
                goto missing;
            if (parse_u64(v, &v64) || v64 < 1 || v64 > RSY_TEXTURE_MAX_PATCH || v64 % 2 == 0) {
                fail("--patch: expected an odd integer in 1..%d, got '%s'", RSY_TEXTURE_MAX_PATCH,
                     v);
                return EXIT_USAGE;
            }
            p.patch_size = (int)v64;
        } else if (is_opt(a, "--components", NULL)) {
            if (!(v = opt_value(argc, argv, &i, "--components", NULL)))
                goto missing;
            if (parse_u64(v, &v64) || v64 < 1 || v64 > RSY_TEXTURE_MAX_COMPONENTS) {
                fail("--components: expected an integer in 1..%d, got '%s'",
                     RSY_TEXTURE_MAX_COMPONENTS, v);
                return EXIT_USAGE;
            }
            p.n_components = (int)v64;
        } else if (is_valued_opt(a, "--seed", "-s")) {
            if (!(v = opt_value(argc, argv, &i, "--seed", "-s")))
                goto missing;
            if (parse_u64(v, &p.seed)) {
                fail("--seed: expected an unsigned 64-bit integer, got '%s'", v);
                return EXIT_USAGE;
            }
        } else if (is_valued_opt(a, "--jobs", "-j")) {
            if (!(v = opt_value(argc, argv, &i, "--jobs", "-j")))
                goto missing;
            if (parse_u64(v, &v64) || v64 < 1 || v64 > 1024) {
                fail("--jobs: expected an integer in 1..1024, got '%s'", v);
                return EXIT_USAGE;
            }
            p.n_threads = (int)v64;
        } else if (is_opt(a, "--quiet", "-q")) {
            quiet = 1;
            rsy_log_set_level(RSY_LOG_ERROR);
        } else if (is_opt(a, "--verbose", "-v")) {
            rsy_log_set_level(g_level = RSY_LOG_INFO);
        } else {
            fail("fit-texture: unknown option or argument '%s' (see raresynth fit-texture --help)",
                 a);
            return EXIT_USAGE;
        }
        continue;
    missing:
        fail("%s: a value is required (see raresynth fit-texture --help)", a);
        return EXIT_USAGE;
    }
    if (!image_path || !out || (labels_path != NULL) == (auto_k > 0)) {
        fail("fit-texture: --image, --out and one of --labels or --auto-classes are required "
             "(see raresynth fit-texture --help)");
        return EXIT_USAGE;
    }
    rsy_volume *image = NULL, *labels = NULL;
    rsy_texture_fitted *model = NULL;
    rsy_status rc = rsy_volume_read_nifti(&image, NULL, image_path);
    if (rc == RSY_OK && labels_path)
        rc = rsy_volume_read_nifti(&labels, NULL, labels_path);
    double t0 = rsy_time_now();
    if (rc == RSY_OK)
        rc = rsy_texture_fit(&model, image, labels, (int)auto_k, &p);
    if (rc == RSY_OK)
        rc = rsy_texture_fitted_set_source(model, image_path, labels_path);
    if (rc == RSY_OK)
        rc = rsy_texture_fitted_write(model, out);
    if (rc == RSY_OK && !quiet)
        fprintf(stderr, "raresynth: wrote a texture model of %d classes to %s in %.1f s\n",
                rsy_texture_fitted_n_classes(model), out, rsy_time_now() - t0);
    rsy_texture_fitted_destroy(model);
    rsy_volume_destroy(labels);
    rsy_volume_destroy(image);
    if (rc != RSY_OK && !g_errors_logged)
        fail("fit-texture: %s", rsy_strerror(rc));
    return exit_code_for(rc);
}
