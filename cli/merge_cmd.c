/*
 * merge_cmd.c: `raresynth merge SHARD_DIR... --out DIR`, the shards of one run joined into the
 * dataset a single run makes (rsy_generator_merge does the work).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_internal.h"

static const char merge_usage[] =
    "Usage: raresynth merge SHARD_DIR... --out DIR [OPTIONS]\n"
    "\n"
    "Join the shard directories of one run (generate --shard K/N, K = 0..N-1, each once, in\n"
    "any order) into DIR, which must be new or empty: the dataset a single run makes, byte for\n"
    "byte. Every shard is checked before DIR is touched (same recipe, configuration files,\n"
    "seed, version and options; every case exactly once; every file present and matching its\n"
    "checksum); case files are hard-linked into DIR (copied across file systems). The shards\n"
    "are never written to. On failure DIR is left absent (or empty).\n"
    "\n"
    "Options:\n"
    "  -o, --out DIR      output directory; must be new or empty\n"
    "  -r, --recipe FILE  the recipe the shards were made from, needed when the path the shards\n"
    "                     recorded no longer holds it (its sha256 must match the shards')\n"
    "  -j, --jobs J       cases checked and linked in parallel (default: number of CPUs)\n"
    "  -q, --quiet        errors only\n"
    "  -v, --verbose      more detail\n"
    "\n"
    "Exit codes: 0 ok, 2 usage, 3 shards that do not belong together or another recipe,\n"
    "4 I/O error (a shard unreadable, DIR not empty), 6 a shard incomplete or damaged.\n";

int cmd_merge(int argc, char **argv)
{
    const char *out = NULL, *recipe_path = NULL;
    const char **dirs = calloc((size_t)argc, sizeof *dirs);
    int n_dirs = 0, jobs = default_jobs(), quiet = 0, code = EXIT_USAGE;
    rsy_recipe *recipe = NULL;
    if (!dirs) {
        fail("out of memory");
        return EXIT_GENERIC;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (is_opt(a, "--help", "-h")) {
            fputs(merge_usage, stdout);
            code = EXIT_OK;
            goto done;
        } else if (is_valued_opt(a, "--out", "-o")) {
            if (!(out = opt_value(argc, argv, &i, "--out", "-o")))
                goto missing;
        } else if (is_valued_opt(a, "--recipe", "-r")) {
            if (!(recipe_path = opt_value(argc, argv, &i, "--recipe", "-r")))
                goto missing;
        } else if (is_valued_opt(a, "--jobs", "-j")) {
            uint64_t j;
            if (!(v = opt_value(argc, argv, &i, "--jobs", "-j")))
                goto missing;
            if (parse_u64(v, &j) || j < 1 || j > 1024) {
                fail("--jobs: expected an integer in 1..1024, got '%s'", v);
                goto done;
            }
            jobs = (int)j;
        } else if (is_opt(a, "--quiet", "-q")) {
            quiet = 1;
            rsy_log_set_level(RSY_LOG_ERROR);
        } else if (is_opt(a, "--verbose", "-v")) {
            rsy_log_set_level(g_level = RSY_LOG_INFO);
        } else if (a[0] == '-' && a[1]) {
            fail("merge: unknown option '%s' (see raresynth merge --help)", a);
            goto done;
        } else {
            dirs[n_dirs++] = a;
        }
        continue;
    missing:
        fail("%s: a value is required (see raresynth merge --help)", a);
        goto done;
    }
    if (!out || n_dirs < 1) {
        fail("merge: shard directories and --out DIR are required (see raresynth merge --help)");
        goto done;
    }

    /* The run the shards describe: the first one says which recipe, seed, count and options;
     * the library checks that every shard agrees. */
    rsy_shard_info info;
    rsy_status rc = rsy_export_shard_info(dirs[0], &info);
    if (rc != RSY_OK) {
        if (!g_errors_logged)
            fail("%s: %s", dirs[0], rsy_strerror(rc));
        code = exit_code_for(rc);
        goto done;
    }
    int recorded = !recipe_path;
    if (recorded) {
        if (!info.recipe_path[0]) {
            fail("%s: records no recipe path; give the recipe the shards were made from with "
                 "--recipe R.json",
                 dirs[0]);
            goto done;
        }
        if (access(info.recipe_path, R_OK) != 0) {
            fail("%s: the shards' recipe %s cannot be read (%s); give it with --recipe R.json",
                 dirs[0], info.recipe_path, strerror(errno));
            goto done;
        }
        recipe_path = info.recipe_path;
    }
    rc = rsy_recipe_load(&recipe, recipe_path, data_search_dirs());
    if (rc != RSY_OK) {
        if (!g_errors_logged)
            fail("%s: cannot load recipe: %s", recipe_path, rsy_strerror(rc));
        code = exit_code_for(rc);
        goto done;
    }
    if (strcmp(recipe->sha256, info.recipe_sha256) != 0) {
        if (recorded)
            fail("%s: changed since the shards were made (sha256 %s, the shards': %s); give the "
                 "original with --recipe R.json",
                 recipe_path, recipe->sha256, info.recipe_sha256);
        else
            fail("%s: not the recipe the shards were made from (sha256 %s, the shards': %s)",
                 recipe_path, recipe->sha256, info.recipe_sha256);
        code = EXIT_CONFIG;
        goto done;
    }
    recipe->cases = info.cases;
    recipe->seed = info.seed;

    rsy_run_options opt = rsy_run_options_default();
    opt.n_threads = jobs;
    opt.layouts = info.layouts;
    opt.formats = info.formats;
    opt.preview = info.preview;
    double t0 = rsy_time_now();
    rc = rsy_generator_merge(recipe, dirs, (size_t)n_dirs, out, &opt);
    if (rc == RSY_OK) {
        if (!quiet)
            fprintf(stderr, "raresynth: merged %d shard%s (%" PRId64 " cases) into %s in %.1f s\n",
                    n_dirs, n_dirs == 1 ? "" : "s", info.cases, out, rsy_time_now() - t0);
        code = EXIT_OK;
        goto done;
    }
    if (!g_errors_logged)
        fail("merge failed: %s", rsy_strerror(rc));
    code = exit_code_for(rc);

done:
    rsy_recipe_destroy(recipe);
    free(dirs);
    return code;
}
