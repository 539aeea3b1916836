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

static const char priors_usage[] =
    "Usage: raresynth priors list [--dir DIR]\n"
    "       raresynth priors show [--dir DIR] NAME\n"
    "\n"
    "The lesion catalogue: one disease file per prior (configs/priors/NAME.json).\n"
    "  list   one line per disease file: name, organ, modalities, lesion types, display name\n"
    "  show   everything a prior draws: lesion types, count and size distributions, shape,\n"
    "         placement rule, compartments with their MRI and CT properties, mass effect and\n"
    "         sources. NAME is a disease (\"tuberous-sclerosis\"), one of its lesion types\n"
    "         (\"tuberous-sclerosis/cortical_tuber\") or a path to a file ending in .json.\n"
    "\n"
    "Options:\n"
    "  -d, --dir DIR   look in DIR (a priors folder, or a folder holding priors/) instead of the\n"
    "                  shipped and installed catalogues\n"
    "  -h, --help      this text\n"
    "\n"
    "Exit codes: 0 ok, 2 usage, 3 unknown prior or a malformed prior file, 4 DIR unreadable.\n";

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

static int default_jobs(void)
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
            fail("--shard: expected K/N with 0 <= K < N <= 10000000, or auto, got '%s'",
                 shard_arg);
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
                resume ? "resuming" : "generating", recipe->cases, recipe->name, recipe->seed,
                jobs, shard_s, out);
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

static int cmd_merge(int argc, char **argv)
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

/* ---- priors list / show -------------------------------------------------------------- */
#define PRIOR_DIRS_MAX 8

/* The priors folders to read, in lookup order: DIR (or DIR/priors) when given, else the
 * priors/ of each data folder the recipe loader searches (data_search_dirs()) and of the
 * installed data folder compiled into the library. Returns their count. */
static int prior_dirs(const char *dir, char out[][PATH_MAX])
{
    int n = 0;
    char p[PATH_MAX];
    if (dir) {
        int w = snprintf(p, sizeof p, "%.*s/priors", PATH_MAX - 16, dir);
        snprintf(out[n++], PATH_MAX, "%.*s", PATH_MAX - 1,
                 w > 0 && access(p, R_OK | X_OK) == 0 ? p : dir);
        return n;
    }
    const char *const *dirs = data_search_dirs();
    for (int i = 0; dirs[i] && n < PRIOR_DIRS_MAX - 1; i++)
        snprintf(out[n++], PATH_MAX, "%.*s/priors", PATH_MAX - 16, dirs[i]);
#ifdef RSY_DATADIR
    snprintf(out[n++], PATH_MAX, "%s/priors", RSY_DATADIR);
#endif
    /* The same folder reached twice (a build tree's configs and an install pointing at it). */
    int m = 0;
    for (int i = 0; i < n; i++) {
        char ri[PATH_MAX];
        if (!realpath(out[i], ri))
            continue;
        int dup = 0;
        for (int j = 0; j < m && !dup; j++) {
            char rj[PATH_MAX];
            dup = realpath(out[j], rj) && strcmp(ri, rj) == 0;
        }
        if (!dup && m != i)
            memmove(out[m], out[i], PATH_MAX);
        m += !dup;
    }
    return m;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Stems of the *.json files of @p dir, sorted; appended to @p names (strdup'ed) unless
 * already there (an earlier folder wins). */
static int list_stems(const char *dir, char **names, int n, int cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return n;
    int first = n;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        char stem[NAME_MAX + 1];
        snprintf(stem, sizeof stem, "%.*s", (int)(len - 5), e->d_name);
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], stem) == 0;
        if (!seen && (names[n] = strdup(stem)) != NULL)
            n++;
    }
    closedir(d);
    qsort(names + first, (size_t)(n - first), sizeof *names, cmp_str);
    return n;
}

static const char *rule_name(rsy_placement_rule r)
{
    switch (r) {
    case RSY_PLACE_HOST_TISSUE:
        return "host_tissue";
    case RSY_PLACE_PERIVENTRICULAR:
        return "periventricular";
    case RSY_PLACE_JUXTACORTICAL:
        return "juxtacortical";
    case RSY_PLACE_GREY_WHITE_JUNCTION:
        return "grey_white_junction";
    case RSY_PLACE_EXTRA_AXIAL:
        return "extra_axial";
    case RSY_PLACE_SUBPLEURAL:
        return "subpleural";
    case RSY_PLACE_SUBCAPSULAR:
        return "subcapsular";
    case RSY_PLACE_SUBEPENDYMAL:
        return "subependymal";
    }
    return "?";
}

static const char *orientation_name(rsy_orientation o)
{
    switch (o) {
    case RSY_ORIENT_RANDOM:
        return "random";
    case RSY_ORIENT_RADIAL:
        return "radial";
    case RSY_ORIENT_TANGENTIAL:
        return "tangential";
    }
    return "?";
}

static const char *where_name(rsy_inclusion_where w)
{
    switch (w) {
    case RSY_WHERE_ANYWHERE:
        return "anywhere";
    case RSY_WHERE_PERIPHERY:
        return "periphery";
    case RSY_WHERE_CENTRE:
        return "centre";
    }
    return "?";
}

static void print_modalities(FILE *f, unsigned m)
{
    fprintf(f, "%s%s%s", m & RSY_PRIOR_MRI ? "mri" : "",
            (m & RSY_PRIOR_MRI) && (m & RSY_PRIOR_CT) ? "," : "", m & RSY_PRIOR_CT ? "ct" : "");
}

/* A distribution in words, values in @p unit ("" for none): "fixed 1", "uniform 1 to 1.5 mm",
 * "lognormal, median 42.4 mm, GSD 1.31, within 15 to 80 mm", "categorical 1 (0.9), 2 (0.07)". */
static void print_dist(FILE *f, const rsy_dist *d, const char *unit)
{
    const char *sp = unit[0] ? " " : "";
    switch (d->kind) {
    case RSY_DIST_FIXED:
        fprintf(f, "%g%s%s", d->value, sp, unit);
        return;
    case RSY_DIST_UNIFORM:
        fprintf(f, "uniform %g to %g%s%s", d->min, d->max, sp, unit);
        return;
    case RSY_DIST_LOGNORMAL:
        fprintf(f, "lognormal, median %g%s%s, GSD %g, within %g to %g%s%s", d->median, sp, unit,
                d->gsd, d->min, d->max, sp, unit);
        return;
    case RSY_DIST_NORMAL:
        fprintf(f, "normal, mean %g%s%s, SD %g, within %g to %g%s%s", d->mean, sp, unit, d->sd,
                d->min, d->max, sp, unit);
        return;
    case RSY_DIST_CATEGORICAL: {
        double total = 0.0;
        for (int i = 0; i < d->n_categories; i++)
            total += d->weights[i];
        fprintf(f, "categorical");
        for (int i = 0; i < d->n_categories; i++)
            fprintf(f, "%s %g (%.3g)", i ? "," : "", d->values[i],
                    total > 0.0 ? d->weights[i] / total : 0.0);
        if (unit[0])
            fprintf(f, " %s", unit);
        return;
    }
    case RSY_DIST_POISSON:
        fprintf(f, "%g + Poisson(mean %g), within %g to %g", d->min, d->mean, d->min, d->max);
        return;
    }
    fprintf(f, "?");
}

static void print_names(FILE *f, const char names[][RSY_NAME_MAX], int n)
{
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", names[i]);
}

static void print_mri(FILE *f, const char *tag, const rsy_mri_props *p)
{
    fprintf(f, "%s T1 %g ms, T2 %g ms, PD %g, Gd %g mM", tag, p->t1_ms, p->t2_ms, p->pd, p->gd_mM);
}

static void print_compartment(FILE *f, int index, const rsy_compartment *c, unsigned modalities)
{
    fprintf(f, "    %d. %s", index + 1, c->name);
    if (c->display_name[0])
        fprintf(f, " (%s)", c->display_name);
    fprintf(f, ": ");
    switch (c->extent_kind) {
    case RSY_EXTENT_RADIUS_FRACTION:
        fprintf(f, "inside the surface, radius fraction ");
        print_dist(f, &c->extent, "");
        break;
    case RSY_EXTENT_MARGIN_MM:
        fprintf(f, "margin outside the surface, ");
        print_dist(f, &c->extent, "mm");
        break;
    case RSY_EXTENT_WALL_MM:
        fprintf(f, "wall just inside the surface, ");
        print_dist(f, &c->extent, "mm");
        break;
    case RSY_EXTENT_INCLUSIONS:
        fprintf(f, "inclusions in %s (%s), volume fraction ", c->parent, where_name(c->where));
        print_dist(f, &c->extent, "");
        fprintf(f, ", each ");
        print_dist(f, &c->inclusion_diameter_mm, "mm");
        break;
    case RSY_EXTENT_NETWORK:
        fprintf(f, "network of lines in %s, line ", c->parent);
        print_dist(f, &c->extent, "mm");
        fprintf(f, ", cells ");
        print_dist(f, &c->cell_mm, "mm");
        break;
    }
    fprintf(f, "\n");
    if (c->n_confined > 0) {
        fprintf(f, "       confined to ");
        print_names(f, c->confined_to, c->n_confined);
        fprintf(f, "\n");
    }
    if ((modalities & RSY_PRIOR_MRI) || c->has_mri) {
        if (!c->has_mri) {
            fprintf(f, "       MRI: none\n");
        } else if (c->props_mode == RSY_PROPS_ABSOLUTE) {
            fprintf(f, "       MRI:");
            print_mri(f, " 1.5T", &c->mri_1p5t);
            fprintf(f, ";");
            print_mri(f, " 3T", &c->mri_3t);
            fprintf(f, "\n");
        } else {
            fprintf(f, "       MRI: relative to %s: T1 x %g, T2 x %g, PD x %g, Gd %g mM\n",
                    c->relative_to, c->t1_factor, c->t2_factor, c->pd_factor, c->gd_mM);
        }
    }
    if ((modalities & RSY_PRIOR_CT) || c->has_ct) {
        static const char *const phases[RSY_CT_N_PHASES] = {"non-contrast", "arterial",
                                                            "portal venous"};
        if (!c->has_ct) {
            fprintf(f, "       CT: none\n");
        } else {
            int rel = c->ct_mode == RSY_PROPS_RELATIVE;
            fprintf(f, "       CT%s%s:", rel ? ": relative to " : "", rel ? c->ct_relative_to : "");
            for (int ph = 0; ph < RSY_CT_N_PHASES; ph++)
                fprintf(f, "%s %s %s%g HU (SD %g)", ph ? ";" : "", phases[ph],
                        rel && c->ct[ph].hu >= 0.0 ? "+" : "", c->ct[ph].hu, c->ct[ph].sd_hu);
            fprintf(f, "\n");
        }
    }
    if (c->texture_sd_fraction > 0.0)
        fprintf(f, "       texture SD fraction %g\n", c->texture_sd_fraction);
}

static void print_type(FILE *f, const rsy_prior *p, unsigned modalities)
{
    fprintf(f, "\nlesion type %s", p->name);
    if (p->display_name[0])
        fprintf(f, " (%s)", p->display_name);
    fprintf(f, "\n  probability per case: %g\n  count: ", p->probability);
    print_dist(f, &p->count, "");
    fprintf(f, "\n  diameter: ");
    print_dist(f, &p->diameter_mm, "mm");
    fprintf(f, "\n  shape: %s; elongation ", p->shape_kind == RSY_SHAPE_CYST ? "cyst" : "solid");
    print_dist(f, &p->elongation, "");
    fprintf(f, "; flatness ");
    print_dist(f, &p->flatness, "");
    fprintf(f, "; lobes ");
    print_dist(f, &p->lobes, "");
    if (p->lobulation_lmax >= 2 && p->lobulation_amplitude > 0.0)
        fprintf(f, "\n         lobulation: degrees 2 to %d, amplitude %g", p->lobulation_lmax,
                p->lobulation_amplitude);
    else
        fprintf(f, "\n         no lobulation");
    if (p->roughness_amplitude > 0.0)
        fprintf(f, "; roughness %g over %g mm", p->roughness_amplitude, p->roughness_scale_mm);
    fprintf(f, "; orientation %s\n", orientation_name(p->orientation));
    fprintf(f, "  placement: %s; centre in ", rule_name(p->rule));
    print_names(f, p->hosts, p->n_hosts);
    fprintf(f, "; may replace ");
    print_names(f, p->allowed, p->n_allowed);
    if (p->n_reference > 0) {
        fprintf(f, "\n             %g to %g mm from ", p->min_distance_mm, p->max_distance_mm);
        print_names(f, p->reference, p->n_reference);
    }
    fprintf(f,
            "\n             zones upper:middle:lower %g:%g:%g; separation >= %g mm; up to %d "
            "attempts\n",
            p->zone_weights[0], p->zone_weights[1], p->zone_weights[2], p->min_separation_mm,
            p->max_attempts);
    fprintf(f, "  mass effect: ");
    if (!p->mass_effect.enabled) {
        fprintf(f, "none\n");
    } else {
        fprintf(f, "strength ");
        print_dist(f, &p->mass_effect.strength, "");
        fprintf(f, " of the radius, range %g mm", p->mass_effect.range_mm);
        if (p->mass_effect.n_fixed > 0) {
            fprintf(f, ", fixed ");
            print_names(f, p->mass_effect.fixed, p->mass_effect.n_fixed);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "  compartments (label order):\n");
    for (int k = 0; k < p->n_compartments; k++)
        print_compartment(f, k, &p->compartments[k], modalities);
}

/* Find NAME.json in @p dirs; returns 0 and the path, or -1. */
static int find_prior(char dirs[][PATH_MAX], int n_dirs, const char *name, char *path)
{
    for (int i = 0; i < n_dirs; i++) {
        snprintf(path, PATH_MAX, "%.*s/%s.json", PATH_MAX - RSY_NAME_MAX - 8, dirs[i], name);
        if (access(path, R_OK) == 0)
            return 0;
    }
    return -1;
}

static int cmd_priors(int argc, char **argv)
{
    const char *dir = NULL, *sub = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_opt(a, "--help", "-h")) {
            fputs(priors_usage, stdout);
            return EXIT_OK;
        } else if (is_valued_opt(a, "--dir", "-d")) {
            if (!(dir = opt_value(argc, argv, &i, "--dir", "-d"))) {
                fail("%s: a value is required (see raresynth priors --help)", a);
                return EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1]) {
            fail("priors: unknown option '%s' (see raresynth priors --help)", a);
            return EXIT_USAGE;
        } else if (!sub) {
            sub = a;
        } else if (!name) {
            name = a;
        } else {
            fail("priors: unexpected argument '%s' (see raresynth priors --help)", a);
            return EXIT_USAGE;
        }
    }
    int list = sub && strcmp(sub, "list") == 0, show = sub && strcmp(sub, "show") == 0;
    if (!list && !show) {
        fail(sub ? "priors: unknown subcommand '%s' (expected list or show; see raresynth priors "
                   "--help)"
                 : "priors: a subcommand is required: list or show (see raresynth priors --help)%s",
             sub ? sub : "");
        return EXIT_USAGE;
    }
    if (list && name) {
        fail("priors list: unexpected argument '%s'", name);
        return EXIT_USAGE;
    }
    if (show && !name) {
        fail("priors show: a prior name is required (see raresynth priors list)");
        return EXIT_USAGE;
    }
    char dirs[PRIOR_DIRS_MAX][PATH_MAX];
    int n_dirs = prior_dirs(dir, dirs);
    if (dir) {
        DIR *probe = opendir(dirs[0]);
        if (!probe) {
            fail("priors: %s: %s", dirs[0], strerror(errno));
            return EXIT_IO;
        }
        closedir(probe);
    }

    if (list) {
        enum { CAP = 1024 };
        char *names[CAP];
        int n = 0;
        for (int i = 0; i < n_dirs; i++)
            n = list_stems(dirs[i], names, n, CAP);
        if (n == 0) {
            fail("priors list: no prior file (*.json) in %s%s", n_dirs ? dirs[0] : "any folder",
                 n_dirs > 1 ? " or the other data folders" : "");
            return dir ? EXIT_CONFIG : EXIT_OK;
        }
        /* Load every file first, so the columns fit the longest entry. */
        typedef struct row {
            char name[RSY_NAME_MAX], organ[RSY_NAME_MAX], mods[16], types[512];
            char display[RSY_TEXT_MAX];
        } row;
        row *rows = calloc((size_t)n, sizeof *rows);
        if (!rows) {
            fail("priors list: out of memory");
            return EXIT_GENERIC;
        }
        int bad = 0, n_rows = 0;
        int w[4] = {4, 5, 10, 12}; /* NAME, ORGAN, MODALITIES, LESION TYPES */
        for (int i = 0; i < n; i++) {
            char path[PATH_MAX];
            rsy_disease *d = NULL;
            if (find_prior(dirs, n_dirs, names[i], path) != 0 ||
                rsy_disease_load(&d, path) != RSY_OK) {
                bad++;
                free(names[i]);
                continue;
            }
            row *rw = &rows[n_rows++];
            size_t k = 0;
            for (int t = 0; t < d->n_types && k < sizeof rw->types; t++) {
                const rsy_prior *p = &d->types[t];
                int c = snprintf(rw->types + k, sizeof rw->types - k, "%s%s", t ? "," : "",
                                 p->type_name[0] ? p->type_name : p->name);
                if (c > 0)
                    k += (size_t)c;
            }
            snprintf(rw->name, sizeof rw->name, "%s", d->name);
            snprintf(rw->organ, sizeof rw->organ, "%s", d->organ);
            snprintf(rw->display, sizeof rw->display, "%s", d->display_name);
            snprintf(rw->mods, sizeof rw->mods, "%s%s%s",
                     d->modalities & RSY_PRIOR_MRI ? "mri" : "",
                     (d->modalities & RSY_PRIOR_MRI) && (d->modalities & RSY_PRIOR_CT) ? "," : "",
                     d->modalities & RSY_PRIOR_CT ? "ct" : "");
            const char *cols[4] = {rw->name, rw->organ, rw->mods, rw->types};
            for (int c = 0; c < 4; c++)
                if ((int)strlen(cols[c]) > w[c])
                    w[c] = (int)strlen(cols[c]);
            free(d);
            free(names[i]);
        }
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], "NAME", w[1], "ORGAN", w[2], "MODALITIES",
               w[3], "LESION TYPES", "DISPLAY NAME");
        for (int i = 0; i < n_rows; i++)
            printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], rows[i].name, w[1], rows[i].organ, w[2],
                   rows[i].mods, w[3], rows[i].types, rows[i].display);
        free(rows);
        return bad ? EXIT_CONFIG : EXIT_OK;
    }

    /* show: a path, a disease, or "disease/type". */
    char path[PATH_MAX], stem[PATH_MAX];
    const char *type = NULL;
    size_t nl = strlen(name);
    if (nl > 5 && strcmp(name + nl - 5, ".json") == 0) {
        snprintf(path, sizeof path, "%s", name);
        if (access(path, R_OK) != 0) {
            fail("priors show: %s: %s", name, strerror(errno));
            return EXIT_CONFIG;
        }
    } else {
        snprintf(stem, sizeof stem, "%s", name);
        char *slash = strchr(stem, '/');
        if (slash) {
            *slash = '\0';
            type = slash + 1;
        }
        int ok = stem[0] != '\0';
        for (const char *c = stem; *c && ok; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
        if (!ok || find_prior(dirs, n_dirs, stem, path) != 0) {
            char where[1024] = "";
            size_t k = 0;
            for (int i = 0; i < n_dirs && k < sizeof where; i++) {
                int w = snprintf(where + k, sizeof where - k, "%s%s", i ? ", " : "", dirs[i]);
                if (w > 0)
                    k += (size_t)w;
            }
            fail("priors show: no prior named \"%s\" (looked in %s; see raresynth priors list)",
                 stem, n_dirs ? where : "no data folder");
            return EXIT_CONFIG;
        }
    }
    rsy_disease *d = NULL;
    rsy_status rc = rsy_disease_load(&d, path);
    if (rc != RSY_OK) {
        if (!g_errors_logged)
            fail("priors show: %s: %s", path, rsy_strerror(rc));
        return exit_code_for(rc);
    }
    int shown = 0;
    for (int t = 0; t < d->n_types && type; t++)
        shown |= strcmp(d->types[t].type_name, type) == 0;
    if (type && !shown) {
        fail("priors show: \"%s\" has no lesion type \"%s\"", d->name, type);
        free(d);
        return EXIT_CONFIG;
    }
    char shown_path[PATH_MAX];
    printf("%s: %s\n", d->name, d->display_name);
    printf("  file: %s\n  organ: %s; modalities: ", realpath(path, shown_path) ? shown_path : path,
           d->organ);
    print_modalities(stdout, d->modalities);
    printf("\n");
    if (d->description[0])
        printf("  %s\n", d->description);
    for (int t = 0; t < d->n_types; t++)
        if (!type || strcmp(d->types[t].type_name, type) == 0)
            print_type(stdout, &d->types[t], d->modalities);
    const rsy_prior *p0 = &d->types[0];
    if (p0->n_sources > 0) {
        printf("\nsources:\n");
        for (int i = 0; i < p0->n_sources; i++)
            printf("  %s\n", p0->sources[i]);
    }
    free(d);
    return EXIT_OK;
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
