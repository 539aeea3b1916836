/*
 * test_validate.c: `validate` (rsy_export_validate) on datasets built here, broken one way at
 * a time (cmocka group "validate").
 *
 * The base dataset (3 cases of 32^3 voxels, two channels) is written by the library's NIfTI
 * writer, HDF5 writer and preview writer; the MSD and nnDetection layouts are added by hand
 * from reference/formats.md, so the layout checks are tested against the rules and not
 * against the code that writes them. Each breakage must be reported with its message, and
 * validate must neither crash nor change anything: every test hashes the tree (names, types,
 * sizes, modes, times, contents, link targets) before and after.
 */
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "test_util.h"

#include "rsy_export.h"

/* ---------------------------------------------------------------------------------------- */
/* Log capture: errors ("E ") and warnings ("W "), so notes can be looked for too.            */
/* ---------------------------------------------------------------------------------------- */
static char log_buf[1 << 18];
static size_t log_len;

static void capture(rsy_log_level level, const char *func, const char *msg, void *user)
{
    (void)func;
    (void)user;
    if (level != RSY_LOG_ERROR && level != RSY_LOG_WARNING)
        return;
    int n = snprintf(log_buf + log_len, sizeof log_buf - log_len, "%c %s\n",
                     level == RSY_LOG_ERROR ? 'E' : 'W', msg);
    if (n > 0 && log_len + (size_t)n < sizeof log_buf)
        log_len += (size_t)n;
    if (getenv("RSY_TEST_VERBOSE"))
        fprintf(stderr, "[%c] %s\n", level == RSY_LOG_ERROR ? 'E' : 'W', msg);
}

static void log_reset(void)
{
    log_len = 0;
    log_buf[0] = '\0';
    rsy_log_set_handler(capture, NULL);
    rsy_log_set_level(RSY_LOG_WARNING);
}

/* 1 if a line of kind @p kind ('E' or 'W') contains @p a and @p b (b may be NULL). */
static int logged(char kind, const char *a, const char *b)
{
    const char *line = log_buf;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s", (int)n, line);
        if (buf[0] == kind && strstr(buf, a) && (!b || strstr(buf, b)))
            return 1;
        line += n + (end ? 1 : 0);
    }
    fprintf(stderr, "expected a %s line with \"%s\"%s%s%s; got:\n%s",
            kind == 'E' ? "problem" : "note", a, b ? " and \"" : "", b ? b : "", b ? "\"" : "",
            log_buf);
    return 0;
}

static int count_lines(char kind)
{
    int n = 0;
    for (const char *p = log_buf; *p; p++)
        if ((p == log_buf || p[-1] == '\n') && *p == kind)
            n++;
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                       */
/* ---------------------------------------------------------------------------------------- */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 1 >= cap) {
            cap = cap ? 2 * cap : 65536;
            char *g = realloc(buf, cap);
            assert_non_null(g);
            buf = g;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

/* "<dir>/<rel>" in a rotating static buffer (four live at once). */
static const char *at_path(const char *dir, const char *rel)
{
    static char bufs[4][2048];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
    return b;
}

static cJSON *read_json(const char *path)
{
    size_t len;
    char *text = slurp(path, &len);
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    assert_non_null(doc);
    free(text);
    return doc;
}

static void write_json(const char *path, const cJSON *doc)
{
    char *text = cJSON_Print(doc);
    assert_non_null(text);
    write_text(path, text);
    cJSON_free(text);
}

static void mkdir_ok(const char *path)
{
    assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}

static void link_ok(const char *src, const char *dst)
{
    assert_int_equal(link(src, dst), 0);
}

/* Replace @p path by a copy of its bytes (breaking a hard link), optionally changing one. */
static void unlink_copy(const char *path, long flip_at)
{
    size_t len;
    char *b = slurp(path, &len);
    assert_non_null(b);
    if (flip_at >= 0) {
        assert_true((size_t)flip_at < len);
        b[flip_at] ^= 0x5a;
    }
    assert_int_equal(unlink(path), 0);
    write_bytes(path, b, len);
    free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* Tree hash: validate must change nothing                                                    */
/* ---------------------------------------------------------------------------------------- */
static char **tree_lines;
static size_t tree_n, tree_cap, tree_root_len;

static int tree_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    char line[4096], extra[2048] = "";
    if (flag == FTW_F && S_ISREG(sb->st_mode)) {
        char hex[65];
        if (rsy_sha256_file(path, hex) == RSY_OK)
            snprintf(extra, sizeof extra, "%s", hex);
    } else if (flag == FTW_SL || flag == FTW_SLN) {
        ssize_t n = readlink(path, extra, sizeof extra - 1);
        extra[n > 0 ? n : 0] = '\0';
    }
    snprintf(line, sizeof line, "%s|%o|%lld|%lld.%09ld|%lld.%09ld|%s", path + tree_root_len,
             (unsigned)sb->st_mode, (long long)sb->st_size, (long long)sb->st_mtim.tv_sec,
             sb->st_mtim.tv_nsec, (long long)sb->st_ctim.tv_sec, sb->st_ctim.tv_nsec, extra);
    if (tree_n == tree_cap) {
        tree_cap = tree_cap ? 2 * tree_cap : 256;
        char **g = realloc(tree_lines, tree_cap * sizeof *g);
        assert_non_null(g);
        tree_lines = g;
    }
    tree_lines[tree_n] = strdup(line);
    assert_non_null(tree_lines[tree_n]);
    tree_n++;
    return 0;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void tree_hash(const char *dir, char hex[65])
{
    tree_n = 0;
    tree_root_len = strlen(dir);
    assert_int_equal(nftw(dir, tree_cb, 16, FTW_PHYS), 0);
    qsort(tree_lines, tree_n, sizeof *tree_lines, cmp_line);
    size_t total = 1;
    for (size_t i = 0; i < tree_n; i++)
        total += strlen(tree_lines[i]) + 1;
    char *all = malloc(total), *p = all;
    assert_non_null(all);
    for (size_t i = 0; i < tree_n; i++) {
        size_t n = strlen(tree_lines[i]);
        memcpy(p, tree_lines[i], n);
        p[n] = '\n';
        p += n + 1;
        free(tree_lines[i]);
    }
    *p = '\0';
    rsy_sha256_hex(all, (size_t)(p - all), hex);
    free(all);
}

/* Validate @p dir: the tree must be unchanged and the status @p want. */
static rsy_validate_report run_validate(const char *dir, rsy_status want)
{
    char before[65], after[65];
    tree_hash(dir, before);
    log_reset();
    rsy_validate_report rep;
    rsy_status rc = rsy_export_validate(dir, &rep);
    tree_hash(dir, after);
    if (rc != want)
        fprintf(stderr, "validate %s: status %d, expected %d; log:\n%s", dir, (int)rc, (int)want,
                log_buf);
    assert_int_equal(rc, want);
    assert_string_equal(before, after);
    return rep;
}

/* ---------------------------------------------------------------------------------------- */
/* The dataset                                                                                */
/* ---------------------------------------------------------------------------------------- */
#define N 32
#define N_CASES 3
#define NN_DIR "Dataset007_ExportTest"
#define ND_DIR "Task007_ExportTest"
#define H5_FILE "Dataset007_ExportTest.h5"
#define PRIOR_PATH "configs/priors/glioblastoma.json"
#define TISSUE_PATH "configs/tissues/mri-brain.json"
static const char *const label_names[] = {"background", "necrotic_core", "oedema",
                                          "enhancing_tumour"};
static const unsigned char perilesional[] = {0, 0, 1, 0}; /* oedema */
static const char *const channel_names[] = {"T1w", "FLAIR"};

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
    snprintf(r->description, sizeof r->description, "validate unit test");
    r->cases = N_CASES;
    r->seed = UINT64_C(18446744073709551557);
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
    r->n_lesion_types = 1;
    snprintf(r->lesions[0].prior.name, sizeof r->lesions[0].prior.name, "glioblastoma");
    snprintf(r->lesions[0].prior.path, sizeof r->lesions[0].prior.path, PRIOR_PATH);
    snprintf(r->tissues.name, sizeof r->tissues.name, "mri-brain");
    snprintf(r->tissues.path, sizeof r->tissues.path, TISSUE_PATH);
    return r;
}

static size_t at(int64_t i, int64_t j, int64_t k)
{
    return ((size_t)k * N + (size_t)j) * N + (size_t)i;
}

static rsy_volume *new_volume(rsy_dtype t)
{
    const double sp[3] = {1.0, 1.0, 1.5};
    rsy_geometry g;
    const int64_t dims[3] = {N, N, N};
    rsy_volume *v = NULL;
    assert_int_equal(rsy_geometry_init(&g, dims, sp), RSY_OK);
    assert_int_equal(rsy_volume_create(&v, &g, t), RSY_OK);
    return v;
}

typedef struct tcase {
    rsy_volume *ch[2], *lab, *inst;
    const rsy_volume *chp[2];
    rsy_lesion_info lesions[2];
    rsy_kv params[2], subject[2], acq[1];
    rsy_case_data data;
} tcase;

/* Cases 0 and 1: a ball (necrotic core 1 inside oedema 2, instance 1) and a box (enhancing 3,
 * instance 2); case 2: no lesion. */
static void make_case(tcase *t, size_t index)
{
    memset(t, 0, sizeof *t);
    for (int c = 0; c < 2; c++) {
        t->ch[c] = new_volume(RSY_DTYPE_FLOAT32);
        float *x = t->ch[c]->data;
        for (size_t i = 0; i < (size_t)N * N * N; i++)
            x[i] = (float)(100.0 * (double)(c + 1) + (double)((i * 7919u + index * 31u) % 97u));
        t->chp[c] = t->ch[c];
    }
    t->lab = new_volume(RSY_DTYPE_UINT8);
    t->inst = new_volume(RSY_DTYPE_UINT16);
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
        for (int k = 4; k <= 6 + (int)index; k++)
            for (int j = 20; j <= 22; j++)
                for (int i = 22; i <= 26; i++) {
                    ((uint16_t *)t->inst->data)[at(i, j, k)] = 2;
                    ((uint8_t *)t->lab->data)[at(i, j, k)] = 3;
                }
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

static void case_id(size_t i, char *buf)
{
    rsy_export_case_id(i, buf, 32);
}

/* The lesion classes of a case from its manifest: main label (the non-perilesional label with
 * most voxels, ties to the lower value) minus 1, in record order. Returns the count. */
static int manifest_classes(const cJSON *man, int cls[8], int ids[8])
{
    const cJSON *les = cJSON_GetObjectItemCaseSensitive(man, "lesions"), *o;
    int n = 0;
    cJSON_ArrayForEach(o, les)
    {
        const cJSON *comp = cJSON_GetObjectItemCaseSensitive(o, "compartments");
        int best = 0;
        double best_n = -1.0;
        for (int l = 1; l < 4; l++) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(comp, label_names[l]);
            double vc = c ? cJSON_GetObjectItemCaseSensitive(c, "voxel_count")->valuedouble : 0.0;
            if (!perilesional[l] && vc > 0.0 && vc > best_n) {
                best = l;
                best_n = vc;
            }
        }
        ids[n] = cJSON_GetObjectItemCaseSensitive(o, "instance_id")->valueint;
        cls[n++] = best - 1;
    }
    return n;
}

/* The MSD layout by hand (reference/formats.md): hard links, dataset.json with boxes. */
static void add_msd(const char *dir)
{
    mkdir_ok(at_path(dir, "msd"));
    mkdir_ok(at_path(dir, "msd/imagesTr"));
    mkdir_ok(at_path(dir, "msd/labelsTr"));
    cJSON *dj = cJSON_CreateObject(), *training = cJSON_CreateArray();
    cJSON_AddStringToObject(dj, "name", "ExportTest");
    cJSON_AddStringToObject(dj, "description", "validate unit test");
    cJSON_AddStringToObject(dj, "reference", "raresynth");
    cJSON_AddStringToObject(dj, "licence", "CC-BY-4.0");
    cJSON_AddStringToObject(dj, "release", "0.4");
    cJSON_AddStringToObject(dj, "tensorImageSize", "3D");
    cJSON_AddStringToObject(dj, "box_mode", "cccwhd");
    cJSON_AddStringToObject(dj, "coordinate_system", "RAS");
    cJSON *mod = cJSON_AddObjectToObject(dj, "modality");
    cJSON_AddStringToObject(mod, "0", "T1w");
    cJSON_AddStringToObject(mod, "1", "FLAIR");
    cJSON *labs = cJSON_AddObjectToObject(dj, "labels");
    for (int l = 0; l < 4; l++) {
        char k[16];
        snprintf(k, sizeof k, "%d", l);
        cJSON_AddStringToObject(labs, k, label_names[l]);
    }
    cJSON *bls = cJSON_AddObjectToObject(dj, "box_labels");
    for (int l = 1; l < 4; l++) {
        char k[16];
        snprintf(k, sizeof k, "%d", l - 1);
        cJSON_AddStringToObject(bls, k, label_names[l]);
    }
    cJSON_AddNumberToObject(dj, "numTraining", N_CASES);
    for (size_t i = 0; i < N_CASES; i++) {
        char id[32], rel[256], src[256];
        case_id(i, id);
        cJSON *item = cJSON_CreateObject(), *imgs = cJSON_AddArrayToObject(item, "image");
        for (int c = 0; c < 2; c++) {
            snprintf(rel, sizeof rel, "msd/imagesTr/%s_%04d.nii.gz", id, c);
            snprintf(src, sizeof src, NN_DIR "/imagesTr/%s_%04d.nii.gz", id, c);
            link_ok(at_path(dir, src), at_path(dir, rel));
            cJSON_AddItemToArray(imgs, cJSON_CreateString(rel + 4));
        }
        snprintf(rel, sizeof rel, "msd/labelsTr/%s.nii.gz", id);
        snprintf(src, sizeof src, NN_DIR "/labelsTr/%s.nii.gz", id);
        link_ok(at_path(dir, src), at_path(dir, rel));
        cJSON_AddStringToObject(item, "label", rel + 4);
        snprintf(rel, sizeof rel, "manifests/%s.json", id);
        cJSON *man = read_json(at_path(dir, rel));
        cJSON *boxes = cJSON_AddArrayToObject(item, "box");
        cJSON *bl = cJSON_AddArrayToObject(item, "box_label");
        int cls[8], ids[8], n = manifest_classes(man, cls, ids);
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(man, "lesions"))
        {
            cJSON_AddItemToArray(
                boxes, cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, "box_cccwhd_mm"), 1));
        }
        for (int k = 0; k < n; k++)
            cJSON_AddItemToArray(bl, cJSON_CreateNumber(cls[k]));
        cJSON_AddItemToArray(training, item);
        cJSON_Delete(man);
    }
    cJSON_AddItemToObject(dj, "training", training);
    write_json(at_path(dir, "msd/dataset.json"), dj);
    cJSON_Delete(dj);
}

/* The nnDetection layout by hand: images linked, instance maps (the test's instances are
 * already 1..N without gaps: linked), {case}.json with the classes. */
static void add_nndet(const char *dir)
{
    mkdir_ok(at_path(dir, ND_DIR));
    mkdir_ok(at_path(dir, ND_DIR "/raw_splitted"));
    mkdir_ok(at_path(dir, ND_DIR "/raw_splitted/imagesTr"));
    mkdir_ok(at_path(dir, ND_DIR "/raw_splitted/labelsTr"));
    cJSON *dj = cJSON_CreateObject();
    cJSON_AddStringToObject(dj, "task", ND_DIR);
    cJSON_AddNumberToObject(dj, "dim", 3);
    cJSON *labs = cJSON_AddObjectToObject(dj, "labels");
    for (int l = 1; l < 4; l++) {
        char k[16];
        snprintf(k, sizeof k, "%d", l - 1);
        cJSON_AddStringToObject(labs, k, label_names[l]);
    }
    cJSON *mod = cJSON_AddObjectToObject(dj, "modalities");
    cJSON_AddStringToObject(mod, "0", "T1w");
    cJSON_AddStringToObject(mod, "1", "FLAIR");
    write_json(at_path(dir, ND_DIR "/dataset.json"), dj);
    cJSON_Delete(dj);
    for (size_t i = 0; i < N_CASES; i++) {
        char id[32], rel[256], src[256];
        case_id(i, id);
        for (int c = 0; c < 2; c++) {
            snprintf(rel, sizeof rel, ND_DIR "/raw_splitted/imagesTr/%s_%04d.nii.gz", id, c);
            snprintf(src, sizeof src, NN_DIR "/imagesTr/%s_%04d.nii.gz", id, c);
            link_ok(at_path(dir, src), at_path(dir, rel));
        }
        snprintf(rel, sizeof rel, ND_DIR "/raw_splitted/labelsTr/%s.nii.gz", id);
        snprintf(src, sizeof src, "instances/%s.nii.gz", id);
        link_ok(at_path(dir, src), at_path(dir, rel));
        snprintf(rel, sizeof rel, "manifests/%s.json", id);
        cJSON *man = read_json(at_path(dir, rel));
        int cls[8], ids[8], n = manifest_classes(man, cls, ids);
        cJSON_Delete(man);
        cJSON *cj = cJSON_CreateObject(), *inst = cJSON_AddObjectToObject(cj, "instances");
        for (int k = 0; k < n; k++) {
            char key[16];
            snprintf(key, sizeof key, "%d", k + 1);
            cJSON_AddNumberToObject(inst, key, cls[k]);
        }
        snprintf(rel, sizeof rel, ND_DIR "/raw_splitted/labelsTr/%s.json", id);
        write_json(at_path(dir, rel), cj);
        cJSON_Delete(cj);
    }
}

/* The HDF5 file of the cases (optionally with one image voxel changed); its SHA-256. */
static void write_hdf5(const char *path, tcase *cases, int alter, char sha[65])
{
    rsy_export_hdf5_params p = rsy_export_hdf5_params_default();
    p.path = path;
    p.dataset_name = "ExportTest";
    p.recipe_sha256 = "0000000000000000000000000000000000000000000000000000000000000007";
    p.dataset_seed = UINT64_C(18446744073709551557);
    p.modality = "mri";
    p.channel_names = channel_names;
    p.n_channels = 2;
    p.label_names = label_names;
    p.n_labels = 4;
    p.label_perilesional = perilesional;
    rsy_export_hdf5 *w = NULL;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_OK);
    for (size_t i = 0; i < N_CASES; i++) {
        rsy_lesion_record rec[2];
        tcase *t = &cases[i];
        if (t->data.n_lesions)
            assert_int_equal(
                rsy_export_measure_lesions(t->inst, t->lab, t->data.n_lesions, perilesional, rec),
                RSY_OK);
        float *x = t->ch[1]->data, saved = x[at(3, 4, 5)];
        if (alter && i == 1)
            x[at(3, 4, 5)] += 1.0f;
        assert_int_equal(rsy_export_hdf5_add_case(w, &t->data, t->data.n_lesions ? rec : NULL),
                         RSY_OK);
        x[at(3, 4, 5)] = saved;
    }
    assert_int_equal(rsy_export_hdf5_close(w, sha), RSY_OK);
}

enum { WITH_LAYOUTS = 1, WITH_HDF5 = 2, WITH_PREVIEWS = 4, WITH_ALL = 7 };

/* Write the dataset into @p dir (fresh) with what @p with asks, and list it in raresynth.json
 * as the writer does ("outputs": {"layouts", "formats", "previews"}, "hdf5": {"path",
 * "sha256"}; docs/manifest.md section 5). */
static void build(const char *dir, const rsy_recipe *r, int with)
{
    tcase cases[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        make_case(&cases[i], i);
    tu_rmtree(dir);
    assert_int_equal(rsy_export_prepare_dir(dir, 1), RSY_OK);
    rsy_export_params p;
    memset(&p, 0, sizeof p);
    p.recipe = r;
    p.out_dir = dir;
    p.label_names = label_names;
    p.n_labels = 4;
    p.texture_note = "uniform tissue properties (test)";
    p.label_perilesional = perilesional;
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &p), RSY_OK);
    for (size_t i = 0; i < N_CASES; i++)
        assert_int_equal(rsy_export_write_case(e, &cases[i].data), RSY_OK);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);

    cJSON *ds = read_json(at_path(dir, "raresynth.json"));
    cJSON *outputs = cJSON_CreateObject(), *lay = cJSON_AddObjectToObject(outputs, "layouts");
    cJSON *fmt = cJSON_AddArrayToObject(outputs, "formats");
    cJSON_AddStringToObject(lay, "nnunet", NN_DIR);
    cJSON_AddItemToArray(fmt, cJSON_CreateString("nifti"));
    cJSON_AddBoolToObject(outputs, "previews", (with & WITH_PREVIEWS) != 0);
    cJSON_ReplaceItemInObjectCaseSensitive(ds, "outputs", outputs);
    if (with & WITH_LAYOUTS) {
        add_msd(dir);
        add_nndet(dir);
        cJSON_AddStringToObject(lay, "msd", "msd");
        cJSON_AddStringToObject(lay, "nndet", ND_DIR);
    }
    if (with & WITH_HDF5) {
        char sha[65];
        write_hdf5(at_path(dir, H5_FILE), cases, 0, sha);
        cJSON *h = cJSON_AddObjectToObject(ds, "hdf5");
        cJSON_AddStringToObject(h, "path", H5_FILE);
        cJSON_AddStringToObject(h, "sha256", sha);
        cJSON_AddItemToArray(fmt, cJSON_CreateString("hdf5"));
    }
    if (with & WITH_PREVIEWS) {
        mkdir_ok(at_path(dir, "previews"));
        for (size_t i = 0; i < N_CASES; i++) {
            char rel[64], id[32];
            case_id(i, id);
            snprintf(rel, sizeof rel, "previews/%s.png", id);
            rsy_preview_input in = {RSY_PREVIEW_MRI, cases[i].chp,  2,
                                    cases[i].lab,    cases[i].inst, NULL};
            assert_int_equal(rsy_export_preview_write(&in, NULL, at_path(dir, rel)), RSY_OK);
        }
    }
    write_json(at_path(dir, "raresynth.json"), ds);
    cJSON_Delete(ds);
    for (size_t i = 0; i < N_CASES; i++)
        free_case(&cases[i]);
}

/* Rewrite a JSON file of the dataset through @p edit. */
typedef void (*json_edit)(cJSON *doc);
static void edit(const char *dir, const char *rel, json_edit fn)
{
    cJSON *doc = read_json(at_path(dir, rel));
    fn(doc);
    write_json(at_path(dir, rel), doc);
    cJSON_Delete(doc);
}

static cJSON *get(const cJSON *o, const char *key)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(it);
    return it;
}

static cJSON *item(const cJSON *a, int i)
{
    cJSON *it = cJSON_GetArrayItem(a, i);
    assert_non_null(it);
    return it;
}

typedef struct fixture {
    char *tmp;
    char dir[1024];
    rsy_recipe *r;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->tmp = tu_tmpdir("validate");
    assert_non_null(f->tmp);
    snprintf(f->dir, sizeof f->dir, "%s/d", f->tmp);
    f->r = make_recipe();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->tmp);
    free(f->tmp);
    free(f->r);
    free(f);
    free(tree_lines);
    tree_lines = NULL;
    tree_cap = tree_n = 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The whole dataset is valid                                                                 */
/* ---------------------------------------------------------------------------------------- */
static void test_full_dataset_valid(void **state)
{
    fixture *f = *state;
    build(f->dir, f->r, WITH_ALL);
    rsy_validate_report rep = run_validate(f->dir, RSY_OK);
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.complete, 1);
    assert_int_equal(rep.cases_checked, N_CASES);
    /* raresynth.json, dataset.json x3, per case: manifest, 2 images, label, instances,
       nnDetection json and map, preview; the HDF5 file. */
    assert_int_equal(rep.files_checked, 4 + N_CASES * 8 + 1);
    assert_int_equal(count_lines('E'), 0);
    assert_int_equal(count_lines('W'), 0);
    /* Copies instead of hard links are fine. */
    unlink_copy(at_path(f->dir, "msd/imagesTr/case_0001_0000.nii.gz"), -1);
    run_validate(f->dir, RSY_OK);
}

/* ---------------------------------------------------------------------------------------- */
/* MSD / MONAI                                                                                */
/* ---------------------------------------------------------------------------------------- */
static cJSON *msd_item(cJSON *doc, int i)
{
    return item(get(doc, "training"), i);
}
static void msd_empty_test(cJSON *d)
{
    cJSON_AddArrayToObject(d, "test");
}
static void msd_no_licence(cJSON *d)
{
    cJSON_DeleteItemFromObjectCaseSensitive(d, "licence");
}
static void msd_4d(cJSON *d)
{
    cJSON_SetValuestring(get(d, "tensorImageSize"), "4D");
}
static void msd_absolute(cJSON *d)
{
    cJSON_SetValuestring(get(msd_item(d, 0), "label"), "/etc/passwd");
}
static void msd_dotdot(cJSON *d)
{
    cJSON_SetValuestring(item(get(msd_item(d, 0), "image"), 1),
                         "../" NN_DIR "/imagesTr/case_0000_0001.nii.gz");
}
static void msd_missing(cJSON *d)
{
    cJSON_SetValuestring(item(get(msd_item(d, 1), "image"), 0), "imagesTr/nope.nii.gz");
}
static void msd_labels_nnunet_style(cJSON *d)
{
    cJSON *l = cJSON_CreateObject();
    for (int i = 0; i < 4; i++)
        cJSON_AddNumberToObject(l, label_names[i], i);
    cJSON_ReplaceItemInObjectCaseSensitive(d, "labels", l);
}
static void msd_box_moved(cJSON *d)
{
    cJSON *cx = item(item(get(msd_item(d, 0), "box"), 0), 0);
    cJSON_SetNumberValue(cx, cx->valuedouble + 3.0);
}
static void msd_box_label(cJSON *d)
{
    cJSON_SetNumberValue(item(get(msd_item(d, 1), "box_label"), 0), 2);
}
static void msd_num_training(cJSON *d)
{
    cJSON_SetNumberValue(get(d, "numTraining"), 5);
}
static void msd_twice(cJSON *d)
{
    cJSON_ReplaceItemInArray(get(d, "training"), 2, cJSON_Duplicate(msd_item(d, 1), 1));
}
static void msd_no_box_mode(cJSON *d)
{
    cJSON_DeleteItemFromObjectCaseSensitive(d, "box_mode");
}
static void msd_modality(cJSON *d)
{
    cJSON_SetValuestring(get(get(d, "modality"), "0"), "FLAIR");
}
static void msd_box_count(cJSON *d)
{
    cJSON_DeleteItemFromArray(get(msd_item(d, 0), "box"), 1);
    cJSON_DeleteItemFromArray(get(msd_item(d, 0), "box_label"), 1);
}

static void test_msd(void **state)
{
    fixture *f = *state;
    static const struct {
        json_edit fn;
        const char *a, *b;
    } cases[] = {
        {msd_empty_test, "msd/dataset.json: \"test\" is empty", "leave the key out"},
        {msd_no_licence, "msd/dataset.json: \"licence\" missing", NULL},
        {msd_4d, "msd/dataset.json: tensorImageSize must be \"3D\"", NULL},
        {msd_absolute, "training[0].label \"/etc/passwd\" is not a relative path", NULL},
        {msd_dotdot, "training[0].image[1] (case_0000) is not a relative path", NULL},
        {msd_missing, "msd/imagesTr/nope.nii.gz: missing (training[1].image[0]", NULL},
        {msd_labels_nnunet_style, "msd/dataset.json: labels must be {\"0\": \"background\"", NULL},
        {msd_box_moved, "training[0].box[0] (case_0000)", "matches no lesion"},
        {msd_box_label, "training[1].box_label[0] (case_0001) must be 0", NULL},
        {msd_num_training, "numTraining must be the length of \"training\"", NULL},
        {msd_twice, "training[2]: case case_0001 listed twice", NULL},
        {msd_no_box_mode, "box_mode must be \"cccwhd\"", NULL},
        {msd_modality, "modality.0 is \"FLAIR\", channel 0 is \"T1w\"", NULL},
        {msd_box_count, "training[0] (case_0000): 1 boxes, the instance map has 2 lesions", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        build(f->dir, f->r, WITH_LAYOUTS);
        edit(f->dir, "msd/dataset.json", cases[i].fn);
        run_validate(f->dir, RSY_EINVALID_DATASET);
        assert_true(logged('E', cases[i].a, cases[i].b));
    }
    /* A hard link replaced by different bytes. */
    build(f->dir, f->r, WITH_LAYOUTS);
    unlink_copy(at_path(f->dir, "msd/labelsTr/case_0002.nii.gz"), 100);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged(
        'E', "msd/labelsTr/case_0002.nii.gz: differs from " NN_DIR "/labelsTr/case_0002.nii.gz",
        "hard link or a copy"));
    /* A stray file in msd/imagesTr. */
    build(f->dir, f->r, WITH_LAYOUTS);
    write_text(at_path(f->dir, "msd/imagesTr/extra.nii.gz"), "x");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "msd/imagesTr: stray file extra.nii.gz", NULL));
    /* raresynth.json names the layout but the folder is gone. */
    build(f->dir, f->r, WITH_LAYOUTS);
    tu_rmtree(at_path(f->dir, "msd"));
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E',
                       "raresynth.json: outputs.layouts lists msd (msd), but its folder is "
                       "missing",
                       NULL));
}

/* ---------------------------------------------------------------------------------------- */
/* nnDetection                                                                                */
/* ---------------------------------------------------------------------------------------- */
static void nd_task(cJSON *d)
{
    cJSON_SetValuestring(get(d, "task"), "Task999_Other");
}
static void nd_dim(cJSON *d)
{
    cJSON_SetNumberValue(get(d, "dim"), 2);
}
static void nd_background(cJSON *d)
{
    cJSON_SetValuestring(get(get(d, "labels"), "0"), "background");
}
static void nd_gap(cJSON *d)
{
    cJSON *l = get(d, "labels");
    cJSON_AddItemToObject(l, "5", cJSON_DetachItemFromObjectCaseSensitive(l, "2"));
}
static void nd_modalities(cJSON *d)
{
    cJSON_DeleteItemFromObjectCaseSensitive(get(d, "modalities"), "1");
}
static void nd_keys(cJSON *d)
{
    cJSON *i = get(d, "instances");
    cJSON_AddItemToObject(i, "3", cJSON_DetachItemFromObjectCaseSensitive(i, "2"));
}
static void nd_range(cJSON *d)
{
    cJSON_SetNumberValue(get(get(d, "instances"), "2"), 7);
}
static void nd_class(cJSON *d)
{
    cJSON_SetNumberValue(get(get(d, "instances"), "1"), 1);
}
static void nd_extra(cJSON *d)
{
    cJSON_AddNumberToObject(get(d, "instances"), "3", 0);
}

static void test_nndet(void **state)
{
    fixture *f = *state;
    const char *dj = ND_DIR "/dataset.json", *cj = ND_DIR "/raw_splitted/labelsTr/case_0001.json";
    static const struct {
        int per_case;
        json_edit fn;
        const char *a, *b;
    } cases[] = {
        {0, nd_task, ND_DIR "/dataset.json: task must be the folder name", NULL},
        {0, nd_dim, ND_DIR "/dataset.json: dim must be 3", NULL},
        {0, nd_background, "labels.0 is \"background\"", "no background entry"},
        {0, nd_gap, "labels must be {\"0\": class name", "consecutive"},
        {0, nd_modalities, "modalities has 1 channels, the dataset 2", NULL},
        {1, nd_keys, "case_0001.json: instances: keys must be exactly \"1\"..\"2\"", NULL},
        {1, nd_range, "case_0001.json: instances.2 must be an integer class key (0..2)", NULL},
        {1, nd_class, "case_0001.json: instances.1 is class 1, but the lesion", "is class 0"},
        {1, nd_extra, "instance 3 of the .json has no voxel", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        build(f->dir, f->r, WITH_LAYOUTS);
        edit(f->dir, cases[i].per_case ? cj : dj, cases[i].fn);
        run_validate(f->dir, RSY_EINVALID_DATASET);
        assert_true(logged('E', cases[i].a, cases[i].b));
    }
    /* A float where an integer class belongs (Python reads 0.0 as float). */
    build(f->dir, f->r, WITH_LAYOUTS);
    write_text(at_path(f->dir, cj), "{\"instances\": {\"1\": 0.0, \"2\": 2}}");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001.json: holds a number with a fraction", NULL));
    write_text(at_path(f->dir, cj), "{\"instances\": {\"01\": 0, \"2\": 2}}");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "instances: keys must be exactly \"1\"..\"2\" (\"01\" is not", NULL));
    /* The instance map: an instance missing, another geometry, not the renumbered lesions. */
    build(f->dir, f->r, WITH_LAYOUTS);
    {
        tcase t;
        make_case(&t, 1);
        uint16_t *x = t.inst->data;
        for (size_t i = 0; i < (size_t)N * N * N; i++)
            x[i] = x[i] == 2 ? 0 : x[i];
        const char *p = at_path(f->dir, ND_DIR "/raw_splitted/labelsTr/case_0001.nii.gz");
        assert_int_equal(unlink(p), 0);
        assert_int_equal(rsy_volume_write_nifti(t.inst, p, RSY_NIFTI_LABEL), RSY_OK);
        run_validate(f->dir, RSY_EINVALID_DATASET);
        assert_true(logged('E', "case_0001.nii.gz: instance 2 of the .json has no voxel", NULL));
        assert_true(logged(
            'E', "case_0001.nii.gz: does not hold the lesions of instances/case_0001", NULL));
        free_case(&t);
        make_case(&t, 1);
        t.inst->geom.affine[0][3] += 2.0;
        assert_int_equal(unlink(p), 0);
        assert_int_equal(rsy_volume_write_nifti(t.inst, p, RSY_NIFTI_LABEL), RSY_OK);
        run_validate(f->dir, RSY_EINVALID_DATASET);
        assert_true(
            logged('E', "case_0001.nii.gz: size, origin, direction or spacing differs", NULL));
        free_case(&t);
    }
    /* A channel that is not the nnU-Net one. */
    build(f->dir, f->r, WITH_LAYOUTS);
    unlink_copy(at_path(f->dir, ND_DIR "/raw_splitted/imagesTr/case_0000_0001.nii.gz"), 300);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0000_0001.nii.gz: differs from " NN_DIR, NULL));
    /* Missing per-case files. */
    build(f->dir, f->r, WITH_LAYOUTS);
    assert_int_equal(unlink(at_path(f->dir, cj)), 0);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "raw_splitted/labelsTr/case_0001.json: missing", NULL));
    /* A '.' in the absolute path is a note, not a problem. */
    char dotted[1100];
    snprintf(dotted, sizeof dotted, "%s/with.dot", f->tmp);
    build(dotted, f->r, WITH_LAYOUTS);
    rsy_validate_report rep = run_validate(dotted, RSY_OK);
    assert_int_equal(rep.problems, 0);
    assert_true(logged('W', "holds a '.', which nnDetection cannot handle", NULL));
    tu_rmtree(dotted);
}

/* ---------------------------------------------------------------------------------------- */
/* HDF5                                                                                       */
/* ---------------------------------------------------------------------------------------- */
static void h5_dotdot(cJSON *d)
{
    cJSON_SetValuestring(get(get(d, "hdf5"), "path"), "../x.h5");
}

static void test_hdf5(void **state)
{
    fixture *f = *state;
    /* Changed after it was written: not opened. */
    build(f->dir, f->r, WITH_HDF5);
    unlink_copy(at_path(f->dir, H5_FILE), 5000);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', H5_FILE ": SHA-256 differs from raresynth.json", "not opened"));
    /* Listed but missing; a stray one. */
    build(f->dir, f->r, WITH_HDF5);
    assert_int_equal(rename(at_path(f->dir, H5_FILE), at_path(f->dir, "other.h5")), 0);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', H5_FILE ": missing (listed in raresynth.json)", NULL));
    assert_true(logged('E', "other.h5: HDF5 file not listed in raresynth.json", NULL));
    /* A path out of the dataset. */
    build(f->dir, f->r, WITH_HDF5);
    edit(f->dir, "raresynth.json", h5_dotdot);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "raresynth.json: hdf5.path must be", NULL));
    /* Voxels that differ from the NIfTI files, with a matching checksum. */
    build(f->dir, f->r, WITH_HDF5);
    {
        tcase cases[N_CASES];
        char sha[65];
        for (size_t i = 0; i < N_CASES; i++)
            make_case(&cases[i], i);
        write_hdf5(at_path(f->dir, H5_FILE), cases, 1, sha);
        for (size_t i = 0; i < N_CASES; i++)
            free_case(&cases[i]);
        cJSON *ds = read_json(at_path(f->dir, "raresynth.json"));
        cJSON_SetValuestring(get(get(ds, "hdf5"), "sha256"), sha);
        write_json(at_path(f->dir, "raresynth.json"), ds);
        cJSON_Delete(ds);
    }
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E',
                       "/cases/case_0001/image[1] differs from " NN_DIR
                       "/imagesTr/case_0001_0001.nii.gz at voxel (i, j, k) = (3, 4, 5)",
                       NULL));
    assert_int_equal(count_lines('E'), 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Previews                                                                                   */
/* ---------------------------------------------------------------------------------------- */
static void test_previews(void **state)
{
    fixture *f = *state;
    const char *png = "previews/case_0001.png";
    build(f->dir, f->r, WITH_PREVIEWS);
    {
        size_t len;
        char *b = slurp(at_path(f->dir, png), &len);
        assert_non_null(b);
        write_bytes(at_path(f->dir, png), b, len - 20); /* truncated */
        free(b);
    }
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001.png: does not end with an IEND chunk", NULL));
    build(f->dir, f->r, WITH_PREVIEWS);
    write_text(at_path(f->dir, png), "GIF89a this is not a PNG at all, but long enough to read");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001.png: not a PNG file", NULL));
    build(f->dir, f->r, WITH_PREVIEWS);
    unlink_copy(at_path(f->dir, png), 18); /* inside IHDR's width: CRC no longer matches */
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001.png: PNG without a valid IHDR", NULL));
    build(f->dir, f->r, WITH_PREVIEWS);
    assert_int_equal(unlink(at_path(f->dir, png)), 0);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001.png: missing (preview of case_0001)", NULL));
}

/* ---------------------------------------------------------------------------------------- */
/* Shards and interrupted runs                                                                */
/* ---------------------------------------------------------------------------------------- */
/* Keep only case 1 of 3 and turn raresynth.json into the manifest of shard 1 of 2. */
static void make_shard(const char *dir, const char *keep)
{
    static const char *const gone[] = {"case_0000", "case_0002"};
    for (int g = 0; g < 2; g++) {
        char rel[256];
        const char *id = !strcmp(gone[g], keep) ? "case_0001" : gone[g];
        for (int c = 0; c < 2; c++) {
            snprintf(rel, sizeof rel, NN_DIR "/imagesTr/%s_%04d.nii.gz", id, c);
            assert_int_equal(unlink(at_path(dir, rel)), 0);
        }
        snprintf(rel, sizeof rel, NN_DIR "/labelsTr/%s.nii.gz", id);
        assert_int_equal(unlink(at_path(dir, rel)), 0);
        snprintf(rel, sizeof rel, "instances/%s.nii.gz", id);
        assert_int_equal(unlink(at_path(dir, rel)), 0);
        snprintf(rel, sizeof rel, "manifests/%s.json", id);
        assert_int_equal(unlink(at_path(dir, rel)), 0);
    }
    assert_int_equal(unlink(at_path(dir, NN_DIR "/dataset.json")), 0);
    cJSON *ds = read_json(at_path(dir, "raresynth.json"));
    cJSON *cases = get(ds, "cases");
    for (int i = 2; i >= 0; i--) {
        const char *id = get(item(cases, i), "case_id")->valuestring;
        if (strcmp(id, keep) != 0)
            cJSON_DeleteItemFromArray(cases, i);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(ds, "summary");
    cJSON *sh = cJSON_AddObjectToObject(ds, "shard");
    cJSON_AddNumberToObject(sh, "index", 1);
    cJSON_AddNumberToObject(sh, "count", 2);
    cJSON_AddNumberToObject(sh, "n_cases", 1);
    write_json(at_path(dir, "raresynth.json"), ds);
    cJSON_Delete(ds);
}

static void test_shard(void **state)
{
    fixture *f = *state;
    build(f->dir, f->r, 0);
    make_shard(f->dir, "case_0001");
    rsy_validate_report rep = run_validate(f->dir, RSY_OK);
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.complete, 0);
    assert_int_equal(rep.cases_checked, 1);
    assert_true(logged('W', "incomplete: shard 1 of 2, holds cases case_0001 (1)", "consistent"));
    /* A case of another shard. */
    build(f->dir, f->r, 0);
    make_shard(f->dir, "case_0002");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case case_0002 does not belong to shard 1 of 2", NULL));
}

static void test_interrupted(void **state)
{
    fixture *f = *state;
    build(f->dir, f->r, WITH_LAYOUTS | WITH_PREVIEWS);
    /* Killed in finish (raresynth.json not written) while case 3 was being staged and a
       manifest was being written. */
    assert_int_equal(unlink(at_path(f->dir, "raresynth.json")), 0);
    mkdir_ok(at_path(f->dir, ".staging"));
    mkdir_ok(at_path(f->dir, ".staging/case_0003"));
    write_text(at_path(f->dir, ".staging/case_0003/case_0003_0000.nii.gz"), "partial");
    write_text(at_path(f->dir, "manifests/case_0004.json.part-123-4"), "{\"raresynth");
    link_ok(at_path(f->dir, NN_DIR "/labelsTr/case_0002.nii.gz"),
            at_path(f->dir, NN_DIR "/labelsTr/case_0005.nii.gz"));
    rsy_validate_report rep = run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_int_equal(rep.complete, 0);
    assert_int_equal(rep.problems, 1);
    assert_int_equal(rep.cases_checked, N_CASES);
    assert_true(logged('E', "incomplete dataset: raresynth.json missing",
                       "the 3 case(s) present are complete and consistent"));
    assert_true(logged('E', "3 partial file(s) listed above", "generate --resume"));
    assert_true(logged('W', ".staging/case_0003: partial case", NULL));
    assert_true(logged('W', "manifests: partial file case_0004.json.part-123-4", NULL));
    assert_true(logged('W', "labelsTr: partial file case_0005.nii.gz", "has no manifest"));
    /* A present case that is broken: no longer consistent. */
    unlink_copy(at_path(f->dir, NN_DIR "/imagesTr/case_0001_0000.nii.gz"), 500);
    rep = run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(rep.problems >= 2);
    assert_true(logged('E', "incomplete dataset", "problem(s) above"));
    assert_true(logged('E', "case_0001_0000.nii.gz: SHA-256 differs", NULL));
}

/* ---------------------------------------------------------------------------------------- */
/* Hostile input: NIfTI files                                                                 */
/* ---------------------------------------------------------------------------------------- */
/* A NIfTI-1 header declaring @p d x @p d x @p d float32 voxels followed by @p pad zero bytes,
 * gzip-compressed or plain. */
static void write_fake_nifti(const char *path, int16_t d, size_t pad, int gz)
{
    unsigned char h[352];
    memset(h, 0, sizeof h);
    int32_t size = 348;
    int16_t dim[8] = {3, d, d, d, 1, 1, 1, 1}, dtype = 16, bitpix = 32;
    float vox = 352.0f, pix[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    memcpy(h, &size, 4);
    memcpy(h + 40, dim, sizeof dim);
    memcpy(h + 70, &dtype, 2);
    memcpy(h + 72, &bitpix, 2);
    memcpy(h + 76, pix, sizeof pix);
    memcpy(h + 108, &vox, 4);
    memcpy(h + 344, "n+1", 4);
    unsigned char *zeros = calloc(pad ? pad : 1, 1);
    assert_non_null(zeros);
    unlink(path);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, h, sizeof h), (int)sizeof h);
        if (pad)
            assert_int_equal(gzwrite(f, zeros, (unsigned)pad), (int)pad);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
        assert_int_equal(fwrite(zeros, 1, pad, f), pad);
        assert_int_equal(fclose(f), 0);
    }
    free(zeros);
}

static void test_hostile_nifti(void **state)
{
    fixture *f = *state;
    const char *img = NN_DIR "/imagesTr/case_0001_0001.nii.gz";
    /* Truncated: short data. */
    build(f->dir, f->r, 0);
    {
        size_t len;
        char *b = slurp(at_path(f->dir, img), &len);
        assert_non_null(b);
        assert_int_equal(unlink(at_path(f->dir, img)), 0);
        write_bytes(at_path(f->dir, img), b, len / 2);
        free(b);
    }
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001_0001.nii.gz: cannot be read as NIfTI-1", "channel 1"));
    assert_true(logged('E', "case_0001_0001.nii.gz: SHA-256 differs", NULL));
    /* Corrupt deflate stream (gzip error). */
    build(f->dir, f->r, 0);
    unlink_copy(at_path(f->dir, img), 700);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001_0001.nii.gz: cannot be read as NIfTI-1", NULL));
    /* Absurd dims: 30000^3 float32 in a file of a few kB: refused before any allocation. */
    build(f->dir, f->r, 0);
    write_fake_nifti(at_path(f->dir, img), 30000, 4096, 1);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001_0001.nii.gz: header declares 30000 x 30000 x 30000",
                       "beyond the 4 GiB"));
    write_fake_nifti(at_path(f->dir, img), 600, 4096, 1);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "header declares 600 x 600 x 600 voxels of 4 bytes", "more than this"));
    write_fake_nifti(at_path(f->dir, img), 100, 4096, 0); /* plain: 4 MB declared, 4 kB there */
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "header declares 100 x 100 x 100", "more than this 4448-byte file"));
    /* Not a regular file: a FIFO (would block a reader), a folder. */
    build(f->dir, f->r, 0);
    assert_int_equal(unlink(at_path(f->dir, img)), 0);
    assert_int_equal(mkfifo(at_path(f->dir, img), 0644), 0);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001_0001.nii.gz: is not a regular file", NULL));
    assert_int_equal(unlink(at_path(f->dir, img)), 0);
    mkdir_ok(at_path(f->dir, img));
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001_0001.nii.gz: is not a regular file", NULL));
    /* Symbolic links out of the dataset: a file, then a whole folder. */
    build(f->dir, f->r, 0);
    char outside[1100];
    snprintf(outside, sizeof outside, "%s/outside.nii.gz", f->tmp);
    assert_int_equal(rename(at_path(f->dir, img), outside), 0);
    assert_int_equal(symlink(outside, at_path(f->dir, img)), 0);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001_0001.nii.gz: resolves to", "outside the dataset"));
    build(f->dir, f->r, 0);
    snprintf(outside, sizeof outside, "%s/outside_instances", f->tmp);
    tu_rmtree(outside);
    assert_int_equal(rename(at_path(f->dir, "instances"), outside), 0);
    assert_int_equal(symlink(outside, at_path(f->dir, "instances")), 0);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "instances/case_0000.nii.gz: resolves to", "outside the dataset"));
    tu_rmtree(outside);
    /* A dangling link; a link inside the dataset is followed. */
    build(f->dir, f->r, 0);
    assert_int_equal(unlink(at_path(f->dir, img)), 0);
    assert_int_equal(symlink("nowhere.nii.gz", at_path(f->dir, img)), 0);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "case_0001_0001.nii.gz: symbolic link to a missing target", NULL));
    build(f->dir, f->r, 0);
    assert_int_equal(rename(at_path(f->dir, NN_DIR "/imagesTr/case_0001_0000.nii.gz"),
                            at_path(f->dir, "moved.nii.gz")),
                     0);
    assert_int_equal(
        symlink("../../moved.nii.gz", at_path(f->dir, NN_DIR "/imagesTr/case_0001_0000.nii.gz")),
        0);
    run_validate(f->dir, RSY_OK);
}

/* ---------------------------------------------------------------------------------------- */
/* Hostile input: JSON and manifests                                                          */
/* ---------------------------------------------------------------------------------------- */
static void ds_unsafe_id(cJSON *d)
{
    cJSON_SetValuestring(get(item(get(d, "cases"), 1), "case_id"), "../../etc");
}
static void ds_absolute_file(cJSON *d)
{
    cJSON *files = get(item(get(d, "cases"), 0), "files");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "path", "/etc/passwd");
    cJSON_AddStringToObject(e, "sha256", "00");
    cJSON_AddItemToArray(files, e);
}
static void man_dotdot_file(cJSON *d)
{
    cJSON *e = cJSON_AddObjectToObject(get(d, "files"), "extra");
    cJSON_AddStringToObject(e, "path", "manifests/../../x");
    cJSON_AddStringToObject(e, "sha256", "00");
}
static void man_missing_file(cJSON *d)
{
    cJSON *e = cJSON_AddObjectToObject(get(d, "files"), "extra");
    cJSON_AddStringToObject(e, "path", "instances/case_0009.nii.gz");
    cJSON_AddStringToObject(e, "sha256", "00");
}
static void man_many_files(cJSON *d)
{
    /* Many entries: the per-case registry of files grows (realloc) while in use, and past 1024
     * entries the list is not examined further. */
    cJSON *files = get(d, "files");
    for (int i = 0; i < 1100; i++) {
        char key[32], path[64];
        snprintf(key, sizeof key, "extra%d", i);
        snprintf(path, sizeof path, "instances/extra_%03d.nii.gz", i);
        cJSON *e = cJSON_AddObjectToObject(files, key);
        cJSON_AddStringToObject(e, "path", i % 2 ? path : "instances/case_0000.nii.gz");
        cJSON_AddStringToObject(e, "sha256", "00");
    }
}
static void ds_huge_n_cases(cJSON *d)
{
    cJSON_SetNumberValue(get(d, "n_cases"), 1e300);
}

static void test_hostile_json(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *rel;
        json_edit fn;
        const char *a, *b;
    } edits[] = {
        {"raresynth.json", ds_unsafe_id, "raresynth.json: cases[1].case_id missing or unsafe",
         NULL},
        {"raresynth.json", ds_absolute_file, "raresynth.json: lists the path \"/etc/passwd\"",
         "not a relative path"},
        {"manifests/case_0002.json", man_dotdot_file,
         "manifests/case_0002.json: lists the path \"manifests/../../x\"", NULL},
        {"manifests/case_0002.json", man_missing_file,
         "instances/case_0009.nii.gz: missing (listed in manifests/case_0002.json)", NULL},
        {"raresynth.json", ds_huge_n_cases, "n_cases does not equal the 3 cases listed", NULL},
        {"manifests/case_0001.json", man_many_files,
         "instances/extra_099.nii.gz: missing (listed in manifests/case_0001.json)", NULL},
        {"manifests/case_0001.json", man_many_files,
         "manifests/case_0001.json: lists more than 1024 files; the rest are not checked", NULL},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        build(f->dir, f->r, 0);
        edit(f->dir, edits[i].rel, edits[i].fn);
        run_validate(f->dir, RSY_EINVALID_DATASET);
        assert_true(logged('E', edits[i].a, edits[i].b));
    }
    /* Malformed JSON. */
    build(f->dir, f->r, 0);
    {
        size_t len;
        char *b = slurp(at_path(f->dir, "raresynth.json"), &len);
        assert_non_null(b);
        write_bytes(at_path(f->dir, "raresynth.json"), b, len / 2);
        free(b);
    }
    rsy_validate_report rep = run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_int_equal(rep.cases_checked, N_CASES); /* the cases are still checked */
    assert_true(logged('E', "raresynth.json: malformed JSON near byte", "line"));
    /* Deeply nested (beyond cJSON's own limit too): refused before parsing. */
    build(f->dir, f->r, 0);
    {
        size_t n = 200000;
        char *deep = malloc(2 * n + 6);
        assert_non_null(deep);
        deep[0] = '{';
        memcpy(deep + 1, "\"a\":", 4);
        memset(deep + 5, '[', n);
        memset(deep + 5 + n, ']', n);
        deep[5 + 2 * n] = '}';
        write_bytes(at_path(f->dir, "manifests/case_0001.json"), deep, 6 + 2 * n);
        free(deep);
    }
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "manifests/case_0001.json: JSON nested deeper than", NULL));
    /* Duplicate keys; a NUL byte; not an object. */
    build(f->dir, f->r, 0);
    write_text(at_path(f->dir, NN_DIR "/dataset.json"),
               "{\"labels\": {\"background\": 0}, \"labels\": {\"background\": 0}}");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "dataset.json: key \"labels\" appears twice", NULL));
    write_bytes(at_path(f->dir, NN_DIR "/dataset.json"), "{\"a\": 1}\0{\"b\": 2}", 17);
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "dataset.json: holds a NUL byte at offset 8", NULL));
    write_text(at_path(f->dir, NN_DIR "/dataset.json"), "[1, 2, 3]");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "dataset.json: top level is not a JSON object", NULL));
    /* A manifest named with "..": never opened as a case. */
    build(f->dir, f->r, 0);
    write_text(at_path(f->dir, "manifests/...json"), "{}");
    run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_true(logged('E', "manifests: manifest ...json has an unsafe case id", NULL));
}

/* ---------------------------------------------------------------------------------------- */
/* The command's edges                                                                        */
/* ---------------------------------------------------------------------------------------- */
static void test_not_a_dataset(void **state)
{
    fixture *f = *state;
    rsy_validate_report rep;
    log_reset();
    assert_int_equal(rsy_export_validate(at_path(f->tmp, "nonexistent"), &rep), RSY_EIO);
    write_text(at_path(f->tmp, "file"), "x");
    assert_int_equal(rsy_export_validate(at_path(f->tmp, "file"), &rep), RSY_EIO);
    assert_int_equal(rsy_export_validate(NULL, &rep), RSY_EINVAL);
    /* An empty folder: not a dataset, reported, nothing created. */
    mkdir_ok(at_path(f->tmp, "empty"));
    rep = run_validate(at_path(f->tmp, "empty"), RSY_EINVALID_DATASET);
    assert_true(logged('E', ".raresynth: marker missing", NULL));
}

/* The library's own writer with every layout, format and preview asked for (@p shard_count
 * 0: the whole dataset; 2: shard 1 of 2). */
static void write_with_writer(const char *dir, const rsy_recipe *r, int64_t shard_count)
{
    tcase cases[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        make_case(&cases[i], i);
    tu_rmtree(dir);
    assert_int_equal(rsy_export_prepare_dir(dir, 1), RSY_OK);
    rsy_export_params p;
    memset(&p, 0, sizeof p);
    p.recipe = r;
    p.out_dir = dir;
    p.label_names = label_names;
    p.n_labels = 4;
    p.texture_note = "uniform tissue properties (test)";
    p.label_perilesional = perilesional;
    p.layouts = RSY_LAYOUT_NNUNET | RSY_LAYOUT_MSD | RSY_LAYOUT_NNDET;
    p.formats = RSY_FORMAT_NIFTI | RSY_FORMAT_HDF5;
    p.preview = 1;
    p.shard_count = shard_count;
    p.shard_index = shard_count ? 1 : 0;
    rsy_export *e = NULL;
    assert_int_equal(rsy_export_begin(&e, &p), RSY_OK);
    for (size_t i = 0; i < N_CASES; i++)
        if (!shard_count || (int64_t)i % shard_count == 1)
            assert_int_equal(rsy_export_write_case(e, &cases[i].data), RSY_OK);
    assert_int_equal(rsy_export_finish(e), RSY_OK);
    rsy_export_destroy(e);
    for (size_t i = 0; i < N_CASES; i++)
        free_case(&cases[i]);
}

/* What the writer makes is valid: the whole dataset, a shard, and the cases an interrupted
 * run leaves (no raresynth.json). */
static void test_writer_output_valid(void **state)
{
    fixture *f = *state;
    write_with_writer(f->dir, f->r, 0);
    rsy_validate_report rep = run_validate(f->dir, RSY_OK);
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.complete, 1);
    assert_int_equal(count_lines('E'), 0);
    assert_int_equal(unlink(at_path(f->dir, "raresynth.json")), 0);
    rep = run_validate(f->dir, RSY_EINVALID_DATASET);
    assert_int_equal(rep.problems, 1);
    assert_true(logged('E', "incomplete dataset", "complete and consistent"));

    write_with_writer(f->dir, f->r, 2);
    rep = run_validate(f->dir, RSY_OK);
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.complete, 0);
    assert_int_equal(rep.cases_checked, 1);
    assert_true(logged('W', "incomplete: shard 1 of 2, holds cases case_0001 (1)", "consistent"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_dataset_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nndet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hdf5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_previews, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_nifti, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_dataset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_output_valid, setup, teardown),
    };
    return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}
