/*
 * raresynth: the command-line tool. Argument parsing, progress display and exit codes only;
 * every piece of work is a library call (STYLE.md section 7). Exit codes: docs/EXIT_CODES.md.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_export.h"
#include "rsy_generator.h"

/* Exit codes (docs/EXIT_CODES.md). */
enum {
    EXIT_OK = 0,
    EXIT_GENERIC = 1,
    EXIT_USAGE = 2,
    EXIT_CONFIG = 3,
    EXIT_IO = 4,
    EXIT_PARTIAL = 5,
    EXIT_INVALID = 6,
    EXIT_INTERRUPTED = 130
};

static volatile sig_atomic_t g_cancel;
static atomic_int g_errors_logged; /* the log handler runs on worker threads */
static rsy_log_level g_level = RSY_LOG_WARNING;

static void on_signal(int sig)
{
    g_cancel = 1;
    /* A second Ctrl-C ends the process at once. */
    signal(sig, SIG_DFL);
}

static void log_to_stderr(rsy_log_level level, const char *func, const char *msg, void *user)
{
    (void)user;
    const char *tag = "";
    switch (level) {
    case RSY_LOG_ERROR:
        g_errors_logged++;
        break;
    case RSY_LOG_WARNING:
        tag = "warning: ";
        break;
    case RSY_LOG_INFO:
        tag = "";
        break;
    case RSY_LOG_DEBUG:
        fprintf(stderr, "raresynth: debug: %s: %s\n", func, msg);
        return;
    case RSY_LOG_OFF:
        return;
    }
    fprintf(stderr, "raresynth: %s%s\n", tag, msg);
}

static void fail(const char *fmt, ...) RSY_FORMAT(1, 2);
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("raresynth: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int exit_code_for(rsy_status s)
{
    switch (s) {
    case RSY_OK:
        return EXIT_OK;
    case RSY_ECONFIG:
    case RSY_ELIMIT:
    case RSY_EPLACEMENT:
        return EXIT_CONFIG;
    case RSY_EIO:
    case RSY_EFORMAT:
        return EXIT_IO;
    case RSY_ECANCELED:
        return EXIT_INTERRUPTED;
    case RSY_EINVALID_DATASET:
        return EXIT_INVALID;
    case RSY_EINVAL:
        return EXIT_USAGE;
    case RSY_ENOMEM:
    case RSY_ENUMERIC:
    case RSY_EDEP:
    case RSY_STATUS_COUNT:
        return EXIT_GENERIC;
    }
    return EXIT_GENERIC;
}

static const char main_usage[] =
    "Usage: raresynth [--version] [--help] COMMAND [OPTIONS]\n"
    "\n"
    "Generate synthetic 3D medical imaging datasets of rare pathologies, with exact labels,\n"
    "ready for nnU-Net v2. No patient data is used or stored.\n"
    "\n"
    "Commands:\n"
    "  generate   make a dataset from a recipe (raresynth generate --help)\n"
    "  validate   re-read a dataset and report everything wrong with it\n"
    "  fit-texture  fit a texture model on a real scan (raresynth fit-texture --help)\n"
    "\n"
    "Exit codes: 0 ok, 1 error, 2 usage, 3 invalid recipe, 4 I/O error, 5 partial output,\n"
    "6 invalid dataset, 130 interrupted (docs/EXIT_CODES.md).\n";

static const char generate_usage[] =
    "Usage: raresynth generate --recipe RECIPE.json --out DIR [OPTIONS]\n"
    "\n"
    "Generate the dataset described by RECIPE into DIR (an nnU-Net v2 dataset plus manifests).\n"
    "The same recipe, seed and version always give byte-identical files, whatever -j.\n"
    "\n"
    "Options:\n"
    "  -r, --recipe FILE      recipe JSON (see docs/recipe.md)\n"
    "  -o, --out DIR          output directory; must be new or empty\n"
    "  -n, --cases N          number of cases (overrides the recipe)\n"
    "  -s, --seed S           dataset seed, an unsigned 64-bit integer (overrides the recipe)\n"
    "  -j, --jobs J           cases generated in parallel (default: number of CPUs)\n"
    "  -f, --force            replace an earlier raresynth dataset in DIR\n"
    "      --max-memory SIZE  refuse recipes needing more than SIZE (e.g. 8G, 512M;\n"
    "                         default 80% of physical memory)\n"
    "  -q, --quiet            errors only, no progress\n"
    "  -v, --verbose          more detail\n"
    "  -h, --help             this text\n";

static const char validate_usage[] =
    "Usage: raresynth validate [-q|-v] DIR\n"
    "\n"
    "Re-read the dataset in DIR and check it against the nnU-Net v2 and NIfTI rules, the\n"
    "checksums and the manifests (lesion records are recomputed from the voxels). Every\n"
    "problem is printed as 'PATH: what is wrong'. Exit 0 when clean, 6 when not.\n";

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

/* ---- small parsers --------------------------------------------------------------------- */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0))
        return -1;
    double mult = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k': case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'm': case 'M':
        mult = 1024.0 * 1024.0;
        end++;
        break;
    case 'g': case 'G':
        mult = 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    case 't': case 'T':
        mult = 1024.0 * 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    default:
        return -1;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end)
        return -1;
    double bytes = v * mult;
    if (bytes >= 18446744073709551615.0)
        return -1;
    *out = (uint64_t)bytes;
    return 0;
}

static uint64_t default_max_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 0;
    return (uint64_t)((double)pages * (double)page * 0.8);
}

static int default_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 64 ? 64 : (int)n);
}

/* Option value: "--opt=value", "--opt value", "-o value" or "-ovalue". */
static const char *opt_value(int argc, char **argv, int *i, const char *longname,
                             const char *shortname)
{
    const char *a = argv[*i];
    size_t ln = strlen(longname);
    if (strncmp(a, longname, ln) == 0 && a[ln] == '=')
        return a + ln + 1;
    if (shortname && strncmp(a, shortname, 2) == 0 && a[2])
        return a + 2;
    if (strcmp(a, longname) == 0 || (shortname && strcmp(a, shortname) == 0)) {
        if (*i + 1 >= argc)
            return NULL;
        return argv[++*i];
    }
    return NULL;
}

static int is_opt(const char *a, const char *longname, const char *shortname)
{
    size_t ln = strlen(longname);
    return strcmp(a, longname) == 0 || (strncmp(a, longname, ln) == 0 && a[ln] == '=') ||
           (shortname && strcmp(a, shortname) == 0);
}

/* Like is_opt, and also "-ovalue" for options that take a value. */
static int is_valued_opt(const char *a, const char *longname, const char *shortname)
{
    return is_opt(a, longname, shortname) || (shortname && strncmp(a, shortname, 2) == 0);
}

/* ---- progress display ------------------------------------------------------------------ */
typedef struct progress_state {
    double t0;
    double last_print;
    int tty;
    int quiet;
} progress_state;

static void format_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(size_t done, size_t total, void *user)
{
    progress_state *ps = user;
    if (ps->quiet)
        return;
    double now = rsy_time_now();
    double elapsed = now - ps->t0;
    double rate = elapsed > 0 ? (double)done / elapsed * 60.0 : 0.0; /* cases per minute */
    double eta = done > 0 ? elapsed / (double)done * (double)(total - done) : -1.0;
    char eta_s[32];
    format_duration(eta, eta_s, sizeof eta_s);
    if (ps->tty) {
        const int width = 30;
        int fill = total ? (int)((double)width * (double)done / (double)total) : width;
        char bar[64];
        for (int k = 0; k < width; k++)
            bar[k] = k < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %zu/%zu cases  %.1f cases/min  ETA %s ", bar, done, total, rate,
                eta_s);
        if (done == total)
            fputc('\n', stderr);
        fflush(stderr);
    } else if (done == total || now - ps->last_print >= 10.0 || done == 1) {
        /* Plain lines when not on a terminal (logs, CI): at most one every 10 s. */
        fprintf(stderr, "raresynth: %zu/%zu cases done, %.1f cases/min, ETA %s\n", done, total,
                rate, eta_s);
        ps->last_print = now;
    }
}

/* ---- commands -------------------------------------------------------------------------- */
static int dataset_complete(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/raresynth.json", dir);
    return access(p, F_OK) == 0;
}

/* Whether DIR holds at least one finished case (its manifest is written last, atomically). */
static int dataset_has_cases(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/manifests", dir);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    int found = 0;
    const struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        found = n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
    }
    closedir(d);
    return found;
}

static int dataset_marked(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/.raresynth", dir);
    return access(p, F_OK) == 0;
}

/* Where priors and tissue tables are looked for after the recipe's own ../priors and
 * ../tissues: relative to this program, the configs/ folder of the source tree it was built in
 * (build/raresynth or build/<variant>/raresynth: a recipe kept anywhere can name a shipped
 * prior without installing) and the data folder of an installation (PREFIX/bin/raresynth with
 * PREFIX/share/raresynth, wherever PREFIX was moved); the library then adds the data folder
 * compiled in. */
static const char *const *data_search_dirs(void)
{
    static char found[3][PATH_MAX];
    static const char *dirs[4] = {NULL, NULL, NULL, NULL};
    static const char *const candidates[3] = {"../configs", "../../configs", "../share/raresynth"};
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return dirs;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return dirs;
    *slash = '\0';
    int n_dirs = 0;
    for (int c = 0; c < 3; c++) {
        int len = snprintf(found[n_dirs], sizeof found[n_dirs], "%.*s/%s", PATH_MAX - 64, exe,
                           candidates[c]);
        char probe[PATH_MAX + 16];
        snprintf(probe, sizeof probe, "%s/priors", found[n_dirs]);
        if (len > 0 && len < PATH_MAX && access(probe, R_OK | X_OK) == 0) {
            dirs[n_dirs] = found[n_dirs];
            n_dirs++;
        }
    }
    return dirs;
}

static int cmd_generate(int argc, char **argv)
{
    const char *recipe_path = NULL, *out = NULL;
    uint64_t cases = 0, seed = 0, max_mem = default_max_memory();
    int have_cases = 0, have_seed = 0, jobs = default_jobs(), force = 0, quiet = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (is_opt(a, "--help", "-h")) {
            fputs(generate_usage, stdout);
            return EXIT_OK;
        } else if (is_valued_opt(a, "--recipe", "-r")) {
            if (!(recipe_path = opt_value(argc, argv, &i, "--recipe", "-r")))
                goto missing;
        } else if (is_valued_opt(a, "--out", "-o")) {
            if (!(out = opt_value(argc, argv, &i, "--out", "-o")))
                goto missing;
        } else if (is_valued_opt(a, "--cases", "-n")) {
            if (!(v = opt_value(argc, argv, &i, "--cases", "-n")))
                goto missing;
            if (parse_u64(v, &cases) || cases < 1 || cases > 10000000) {
                fail("--cases: expected an integer in 1..10000000, got '%s'", v);
                return EXIT_USAGE;
            }
            have_cases = 1;
        } else if (is_valued_opt(a, "--seed", "-s")) {
            if (!(v = opt_value(argc, argv, &i, "--seed", "-s")))
                goto missing;
            if (parse_u64(v, &seed)) {
                fail("--seed: expected an unsigned 64-bit integer, got '%s'", v);
                return EXIT_USAGE;
            }
            have_seed = 1;
        } else if (is_valued_opt(a, "--jobs", "-j")) {
            uint64_t j;
            if (!(v = opt_value(argc, argv, &i, "--jobs", "-j")))
                goto missing;
            if (parse_u64(v, &j) || j < 1 || j > 1024) {
                fail("--jobs: expected an integer in 1..1024, got '%s'", v);
                return EXIT_USAGE;
            }
            jobs = (int)j;
        } else if (is_opt(a, "--max-memory", NULL)) {
            if (!(v = opt_value(argc, argv, &i, "--max-memory", NULL)))
                goto missing;
            if (parse_size(v, &max_mem)) {
                fail("--max-memory: expected a size such as 512M or 8G, got '%s'", v);
                return EXIT_USAGE;
            }
        } else if (is_opt(a, "--force", "-f")) {
            force = 1;
        } else if (is_opt(a, "--quiet", "-q")) {
            quiet = 1;
            rsy_log_set_level(RSY_LOG_ERROR);
        } else if (is_opt(a, "--verbose", "-v")) {
            rsy_log_set_level(g_level = RSY_LOG_INFO);
        } else if (a[0] != '-') {
            fail("generate: unexpected argument '%s' (options take the form --recipe FILE; see "
                 "raresynth generate --help)",
                 a);
            return EXIT_USAGE;
        } else {
            fail("generate: unknown option '%s' (see raresynth generate --help)", a);
            return EXIT_USAGE;
        }
        continue;
    missing:
        fail("%s: a value is required (see raresynth generate --help)", a);
        return EXIT_USAGE;
    }
    if (!recipe_path || !out) {
        fail("generate: --recipe and --out are required (see raresynth generate --help)");
        return EXIT_USAGE;
    }

    rsy_recipe *recipe = NULL;
    rsy_status rc = rsy_recipe_load(&recipe, recipe_path, data_search_dirs());
    if (rc != RSY_OK) {
        if (!g_errors_logged)
            fail("%s: cannot load recipe: %s", recipe_path, rsy_strerror(rc));
        return exit_code_for(rc);
    }
    if (have_cases)
        recipe->cases = (int64_t)cases;
    if (have_seed)
        recipe->seed = seed;

    /* Whether DIR already held a raresynth run before this one (see the exit code below). */
    int had_earlier_run = dataset_marked(out);

    progress_state ps = {rsy_time_now(), 0.0, isatty(STDERR_FILENO), quiet};
    rsy_run_options opt = rsy_run_options_default();
    opt.n_threads = jobs;
    opt.force = force;
    opt.max_memory_bytes = max_mem;
    opt.cancel = &g_cancel;
    opt.progress = on_progress;
    opt.progress_user = &ps;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (g_level >= RSY_LOG_INFO)
        fprintf(stderr, "raresynth: generating %" PRId64 " cases of %s (seed %" PRIu64
                        ", -j %d) into %s\n",
                recipe->cases, recipe->name, recipe->seed, jobs, out);
    double t0 = rsy_time_now();
    rc = rsy_generator_run(recipe, out, &opt);
    double elapsed = rsy_time_now() - t0;
    int64_t n_cases = recipe->cases;
    rsy_recipe_destroy(recipe);

    if (rc == RSY_OK) {
        if (!quiet)
            fprintf(stderr, "raresynth: wrote %" PRId64 " cases to %s in %.1f s\n", n_cases,
                    out, elapsed);
        return EXIT_OK;
    }
    if (rc == RSY_ECANCELED) {
        fail("interrupted: %s holds an incomplete dataset (rerun with --force to replace it)",
             out);
        return EXIT_INTERRUPTED;
    }
    if (!g_errors_logged)
        fail("generate failed: %s", rsy_strerror(rc));
    /* Partial output: this run finished some cases but not the dataset (a directory we
     * refused to touch, holding an earlier run, is not this run's output). */
    if ((force || !had_earlier_run) && !dataset_complete(out) && dataset_has_cases(out)) {
        fail("%s holds an incomplete dataset (raresynth.json not written); rerun with --force",
             out);
        return EXIT_PARTIAL;
    }
    return exit_code_for(rc);
}

static int cmd_validate(int argc, char **argv)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_opt(a, "--help", "-h")) {
            fputs(validate_usage, stdout);
            return EXIT_OK;
        } else if (is_opt(a, "--quiet", "-q")) {
            rsy_log_set_level(RSY_LOG_ERROR);
        } else if (is_opt(a, "--verbose", "-v")) {
            rsy_log_set_level(RSY_LOG_INFO);
        } else if (a[0] == '-' && a[1]) {
            fail("validate: unknown option '%s' (see raresynth validate --help)", a);
            return EXIT_USAGE;
        } else if (!dir) {
            dir = a;
        } else {
            fail("validate: one directory expected, got '%s' and '%s'", dir, a);
            return EXIT_USAGE;
        }
    }
    if (!dir) {
        fail("validate: a dataset directory is required (see raresynth validate --help)");
        return EXIT_USAGE;
    }
    rsy_validate_report rep;
    memset(&rep, 0, sizeof rep);
    rsy_status rc = rsy_export_validate(dir, &rep);
    if (rc == RSY_OK || rc == RSY_EINVALID_DATASET) {
        printf("%s: %" PRId64 " cases, %" PRId64 " files checked, %" PRId64 " problem%s%s\n",
               dir, rep.cases_checked, rep.files_checked, rep.problems,
               rep.problems == 1 ? "" : "s", rep.complete ? "" : " (incomplete dataset)");
        return rc == RSY_OK ? EXIT_OK : EXIT_INVALID;
    }
    if (!g_errors_logged)
        fail("validate %s: %s", dir, rsy_strerror(rc));
    return exit_code_for(rc);
}

static int cmd_fit_texture(int argc, char **argv)
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

int main(int argc, char **argv)
{
    rsy_log_set_handler(log_to_stderr, NULL);
    rsy_log_set_level(g_level);
    if (rsy_init() != RSY_OK) {
        fail("cannot initialise the library");
        return EXIT_GENERIC;
    }
    if (argc < 2) {
        fputs(main_usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        printf("raresynth %s\n", rsy_version());
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(main_usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "generate"))
        return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "validate"))
        return cmd_validate(argc - 1, argv + 1);
    if (!strcmp(cmd, "fit-texture"))
        return cmd_fit_texture(argc - 1, argv + 1);
    fail("unknown command '%s' (see raresynth --help)", cmd);
    return EXIT_USAGE;
}
