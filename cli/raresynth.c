/*
 * raresynth: the command-line tool. Argument parsing, progress display and exit codes only;
 * every piece of work is a library call (STYLE.md section 7). Exit codes: docs/EXIT_CODES.md.
 *
 * This file: main(), logging, the option and number parsers the commands share, and the
 * generate and validate commands. merge_cmd.c, fit_texture_cmd.c and priors_cmd.c hold the
 * other commands (cli_internal.h).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_internal.h"

static volatile sig_atomic_t g_cancel;
atomic_int g_errors_logged; /* the log handler runs on worker threads */
rsy_log_level g_level = RSY_LOG_WARNING;

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

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("raresynth: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int exit_code_for(rsy_status s)
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
    "  merge      join shard directories into one dataset (raresynth merge --help)\n"
    "  fit-texture  fit a texture model on a real scan (raresynth fit-texture --help)\n"
    "  priors     the lesion catalogue: priors list, priors show NAME (raresynth priors --help)\n"
    "\n"
    "Exit codes: 0 ok, 1 error, 2 usage, 3 invalid recipe, 4 I/O error, 5 partial output,\n"
    "6 invalid dataset, 130 interrupted (docs/EXIT_CODES.md).\n";

static const char generate_usage[] =
    "Usage: raresynth generate --recipe RECIPE.json --out DIR [OPTIONS]\n"
    "\n"
    "Generate the dataset described by RECIPE into DIR (an nnU-Net v2 dataset plus manifests).\n"
    "The same recipe, seed and version always give byte-identical files, whatever -j, and\n"
    "whether the run was resumed or made in shards and merged.\n"
    "\n"
    "Options:\n"
    "  -r, --recipe FILE      recipe JSON (see docs/recipe.md)\n"
    "  -o, --out DIR          output directory; must be new or empty (or, with --resume, hold\n"
    "                         the interrupted run)\n"
    "  -n, --cases N          number of cases (overrides the recipe)\n"
    "  -s, --seed S           dataset seed, an unsigned 64-bit integer (overrides the recipe)\n"
    "  -j, --jobs J           cases generated in parallel (default: number of CPUs)\n"
    "      --layout LIST      comma list of nnunet, msd (MONAI), nndet, or all (default nnunet)\n"
    "      --format LIST      comma list of nifti, hdf5 (default nifti; NIfTI is always written)\n"
    "      --preview          a PNG preview per case in DIR/previews\n"
    "      --resume           finish the interrupted run in DIR (same recipe, seed and options):\n"
    "                         complete cases are kept, the others generated\n"
    "      --shard K/N        make only the cases i with i % N == K (0 <= K < N); join the N\n"
    "                         shard directories with raresynth merge\n"
    "      --shard auto       K and N from SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) and\n"
    "                         SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX and\n"
    "                         RARESYNTH_SHARD_COUNT\n"
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

/* ---- small parsers --------------------------------------------------------------------- */
int parse_u64(const char *s, uint64_t *out)
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
    case 'k':
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024.0 * 1024.0;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    case 't':
    case 'T':
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

int default_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 64 ? 64 : (int)n);
}

/* A comma list of names into bits: "nnunet,msd"; @p all_bits for "all" (0: not accepted).
 * Returns 0, or -1 with the offending item in @p bad. */
static int parse_name_list(const char *s, const char *const *names, const unsigned *bits, int n,
                           unsigned all_bits, unsigned *out, char *bad, size_t bad_n)
{
    *out = 0;
    snprintf(bad, bad_n, "%s", s);
    if (!*s)
        return -1;
    const char *p = s;
    for (;;) {
        size_t len = strcspn(p, ",");
        int found = 0;
        if (all_bits && len == 3 && strncmp(p, "all", 3) == 0) {
            *out |= all_bits;
            found = 1;
        }
        for (int i = 0; i < n && !found; i++) {
            if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0) {
                *out |= bits[i];
                found = 1;
            }
        }
        if (!found) {
            snprintf(bad, bad_n, "%.*s", (int)len, p);
            return -1;
        }
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

/* "K/N" with 0 <= K < N <= 10^7. */
static int parse_shard(const char *s, int64_t *k, int64_t *n)
{
    char buf[64];
    uint64_t a, b;
    const char *slash = strchr(s, '/');
    if (!slash || (size_t)(slash - s) >= sizeof buf)
        return -1;
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    if (parse_u64(buf, &a) || parse_u64(slash + 1, &b) || b < 1 || b > 10000000 || a >= b)
        return -1;
    *k = (int64_t)a;
    *n = (int64_t)b;
    return 0;
}

/* An environment variable holding a non-negative integer; 1 if unset or empty, -1 (message
 * printed) if malformed. */
static int env_u64(const char *name, uint64_t *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 1;
    if (parse_u64(v, out) || *out > 100000000) {
        fail("--shard auto: %s='%s' is not a non-negative integer", name, v);
        return -1;
    }
    return 0;
}

/* --shard auto: the shard from a Slurm job array or a Kubernetes Indexed Job. Returns 0, or -1
 * with a message naming the variable. */
static int shard_from_env(int64_t *k, int64_t *n)
{
    uint64_t id = 0, count = 0, min = 0, step = 1, index = 0;
    int has_id = env_u64("SLURM_ARRAY_TASK_ID", &id);
    int has_jci = env_u64("JOB_COMPLETION_INDEX", &index);
    if (has_id < 0 || has_jci < 0)
        return -1;
    if (has_id == 0 && has_jci == 0) {
        fail("--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; give "
             "--shard K/N");
        return -1;
    }
    if (has_id == 0) {
        int rc = env_u64("SLURM_ARRAY_TASK_COUNT", &count);
        if (rc > 0)
            fail("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
        if (rc != 0 || env_u64("SLURM_ARRAY_TASK_MIN", &min) < 0 ||
            env_u64("SLURM_ARRAY_TASK_STEP", &step) < 0)
            return -1;
        if (count < 1 || step < 1) {
            fail("--shard auto: SLURM_ARRAY_TASK_%s=%" PRIu64 " must be at least 1",
                 count < 1 ? "COUNT" : "STEP", count < 1 ? count : step);
            return -1;
        }
        if (id < min || (id - min) % step != 0 || (id - min) / step >= count) {
            fail("--shard auto: SLURM_ARRAY_TASK_ID=%" PRIu64 " is not one of the %" PRIu64
                 " tasks from SLURM_ARRAY_TASK_MIN=%" PRIu64 " in steps of %" PRIu64
                 " (SLURM_ARRAY_TASK_COUNT); give --shard K/N",
                 id, count, min, step);
            return -1;
        }
        *k = (int64_t)((id - min) / step);
        *n = (int64_t)count;
        return 0;
    }
    if (has_jci == 0) {
        int rc = env_u64("RARESYNTH_SHARD_COUNT", &count);
        if (rc > 0)
            fail("--shard auto: JOB_COMPLETION_INDEX is set but RARESYNTH_SHARD_COUNT (the "
                 "Indexed Job's completions) is not");
        if (rc != 0)
            return -1;
        if (count < 1 || index >= count) {
            fail("--shard auto: JOB_COMPLETION_INDEX=%" PRIu64 " must be below "
                 "RARESYNTH_SHARD_COUNT=%" PRIu64,
                 index, count);
            return -1;
        }
        *k = (int64_t)index;
        *n = (int64_t)count;
        return 0;
    }
    fail("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor "
         "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give --shard K/N");
    return -1;
}

static const char *const layout_names[] = {"nnunet", "msd", "nndet"};
static const unsigned layout_bits[] = {RSY_LAYOUT_NNUNET, RSY_LAYOUT_MSD, RSY_LAYOUT_NNDET};
static const char *const format_names[] = {"nifti", "hdf5"};
static const unsigned format_bits[] = {RSY_FORMAT_NIFTI, RSY_FORMAT_HDF5};

/* Option value: "--opt=value", "--opt value", "-o value" or "-ovalue". */
const char *opt_value(int argc, char **argv, int *i, const char *longname, const char *shortname)
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

int is_opt(const char *a, const char *longname, const char *shortname)
{
    size_t ln = strlen(longname);
    return strcmp(a, longname) == 0 || (strncmp(a, longname, ln) == 0 && a[ln] == '=') ||
           (shortname && strcmp(a, shortname) == 0);
}

/* Like is_opt, and also "-ovalue" for options that take a value. */
int is_valued_opt(const char *a, const char *longname, const char *shortname)
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
const char *const *data_search_dirs(void)
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
    int resume = 0, preview = 0;
    unsigned layouts = RSY_LAYOUT_NNUNET, formats = RSY_FORMAT_NIFTI;
    int64_t shard_k = 0, shard_n = 1;
    const char *shard_arg = NULL;
    char bad[64];

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
        } else if (is_opt(a, "--layout", NULL)) {
            if (!(v = opt_value(argc, argv, &i, "--layout", NULL)))
                goto missing;
            if (parse_name_list(v, layout_names, layout_bits, 3,
                                RSY_LAYOUT_NNUNET | RSY_LAYOUT_MSD | RSY_LAYOUT_NNDET, &layouts,
                                bad, sizeof bad)) {
                fail("--layout: unknown layout '%s' in '%s' (expected a comma list of nnunet, "
                     "msd, nndet, or all)",
                     bad, v);
                return EXIT_USAGE;
            }
        } else if (is_opt(a, "--format", NULL)) {
            if (!(v = opt_value(argc, argv, &i, "--format", NULL)))
                goto missing;
            if (parse_name_list(v, format_names, format_bits, 2, 0, &formats, bad, sizeof bad)) {
                fail("--format: unknown format '%s' in '%s' (expected a comma list of nifti, "
                     "hdf5)",
                     bad, v);
                return EXIT_USAGE;
            }
        } else if (is_opt(a, "--shard", NULL)) {
            if (!(v = opt_value(argc, argv, &i, "--shard", NULL)))
                goto missing;
            shard_arg = v;
        } else if (is_opt(a, "--preview", NULL)) {
            preview = 1;
        } else if (is_opt(a, "--resume", NULL)) {
            resume = 1;
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
    if (resume && force) {
        fail("generate: --resume keeps the cases in DIR and --force deletes them: give one");
        return EXIT_USAGE;
    }
    if (shard_arg) {
        if (strcmp(shard_arg, "auto") == 0) {
            if (shard_from_env(&shard_k, &shard_n))
                return EXIT_USAGE;
        } else if (parse_shard(shard_arg, &shard_k, &shard_n)) {
            fail("--shard: expected K/N with 0 <= K < N <= 10000000, or auto, got '%s'", shard_arg);
            return EXIT_USAGE;
        }
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
    opt.layouts = layouts;
    opt.formats = formats;
    opt.preview = preview;
    opt.resume = resume;
    opt.shard_index = shard_arg ? shard_k : 0;
    opt.shard_count = shard_arg ? shard_n : 0;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (g_level >= RSY_LOG_INFO) {
        char shard_s[64] = "";
        if (shard_n >= 2)
            snprintf(shard_s, sizeof shard_s, ", shard %" PRId64 "/%" PRId64, shard_k, shard_n);
        fprintf(stderr,
                "raresynth: %s %" PRId64 " cases of %s (seed %" PRIu64 ", -j %d%s) into %s\n",
                resume ? "resuming" : "generating", recipe->cases, recipe->name, recipe->seed, jobs,
                shard_s, out);
    }
    double t0 = rsy_time_now();
    rc = rsy_generator_run(recipe, out, &opt);
    double elapsed = rsy_time_now() - t0;
    int64_t n_cases = recipe->cases;
    if (shard_n >= 2)
        n_cases = n_cases > shard_k ? (n_cases - 1 - shard_k) / shard_n + 1 : 0;
    rsy_recipe_destroy(recipe);

    if (rc == RSY_OK) {
        if (!quiet) {
            if (shard_n >= 2)
                fprintf(stderr,
                        "raresynth: wrote shard %" PRId64 "/%" PRId64 " (%" PRId64
                        " cases) to %s in %.1f s\n",
                        shard_k, shard_n, n_cases, out, elapsed);
            else
                fprintf(stderr, "raresynth: wrote %" PRId64 " cases to %s in %.1f s\n", n_cases,
                        out, elapsed);
        }
        return EXIT_OK;
    }
    if (rc == RSY_ECANCELED) {
        fail("interrupted: %s holds an incomplete dataset (finish it with the same command and "
             "--resume, or replace it with --force)",
             out);
        return EXIT_INTERRUPTED;
    }
    if (!g_errors_logged)
        fail("generate failed: %s", rsy_strerror(rc));
    /* Partial output: this run finished some cases but not the dataset (a directory we
     * refused to touch, holding an earlier run, is not this run's output). */
    if ((force || resume || !had_earlier_run) && rc != RSY_ECONFIG && !dataset_complete(out) &&
        dataset_has_cases(out)) {
        fail("%s holds an incomplete dataset (raresynth.json not written); finish it with the "
             "same command and --resume, or replace it with --force",
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
        printf("%s: %" PRId64 " cases, %" PRId64 " files checked, %" PRId64 " problem%s%s\n", dir,
               rep.cases_checked, rep.files_checked, rep.problems, rep.problems == 1 ? "" : "s",
               rep.complete ? "" : " (incomplete dataset)");
        return rc == RSY_OK ? EXIT_OK : EXIT_INVALID;
    }
    if (!g_errors_logged)
        fail("validate %s: %s", dir, rsy_strerror(rc));
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
    if (!strcmp(cmd, "merge"))
        return cmd_merge(argc - 1, argv + 1);
    if (!strcmp(cmd, "fit-texture"))
        return cmd_fit_texture(argc - 1, argv + 1);
    if (!strcmp(cmd, "priors"))
        return cmd_priors(argc - 1, argv + 1);
    fail("unknown command '%s' (see raresynth --help)", cmd);
    return EXIT_USAGE;
}
