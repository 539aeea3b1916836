/*
 * test_thorax.c: the procedural thorax phantom (cmocka group "thorax"), called through its
 * family table.
 *
 * Reference figures (shared/reference/domain.md 5.4, GK): total lung capacity about 6 L in
 * men and 4.5 L in women; the phantom images at full inspiration, 0.9 TLC, with a 12% SD
 * truncated at 2 SD; cardiac volume including the chambers about 500-900 mL; the right lung
 * holds about 53-56% of the total.
 */
#include "test_util.h"

#include <math.h>

#include "phantoms_internal.h"
#include "rsy_phantoms.h"
#include "thorax_internal.h"

#define N_SUBJECTS 20
#define DATASET_SEED 20270104u

static rsy_phantom_spec default_spec(int n, double spacing_mm)
{
    rsy_phantom_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.family, sizeof s.family, "thorax");
    for (int a = 0; a < 3; a++) {
        s.dims[a] = n;
        s.spacing_mm[a] = spacing_mm;
    }
    s.sex = RSY_SEX_RANDOM;
    s.female_fraction = 0.5;
    s.age_min_years = 20.0;
    s.age_max_years = 80.0;
    s.deformation_mm = 3.0;
    s.deformation_scale_mm = 60.0;
    return s;
}

static rsy_status make_subject(const rsy_phantom_spec *spec, uint64_t seed, uint64_t case_index,
                               rsy_volume **vol, rsy_subject *subj)
{
    rsy_rng *rs = NULL, *rp = NULL;
    rsy_status rc = rsy_rng_create_stream(&rs, seed, case_index, RSY_STAGE_SUBJECT);
    if (rc == RSY_OK)
        rc = rsy_rng_create_stream(&rp, seed, case_index, RSY_STAGE_PHANTOM);
    if (rc == RSY_OK)
        rc = rsy__phantom_family_thorax.generate(spec, rs, rp, vol, subj);
    rsy_rng_destroy(rs);
    rsy_rng_destroy(rp);
    return rc;
}

static double organ(const rsy_subject *s, const char *name)
{
    for (int i = 0; i < s->n_organs; i++)
        if (strcmp(s->organs[i].name, name) == 0)
            return s->organs[i].ml;
    fail_msg("organ %s not measured", name);
    return 0.0;
}

static int setup(void **state)
{
    (void)state;
    tu_log_capture();
    return 0;
}

static void test_class_table(void **state)
{
    (void)state;
    static const char *names[] = {
        "background",   "skin",          "fat",          "muscle",      "lung",
        "airway",       "airway_wall",   "pulmonary_vessel", "myocardium", "blood",
        "cortical_bone", "cancellous_bone", "spinal_canal", "cartilage", "oesophagus",
        "liver",        "spleen",        "stomach"};
    const rsy__phantom_family *f = &rsy__phantom_family_thorax;
    assert_string_equal(f->name, "thorax");
    assert_int_equal(f->n_classes, RSY__THORAX_N_CLASSES);
    assert_int_equal((int)(sizeof names / sizeof names[0]), f->n_classes);
    for (int i = 0; i < f->n_classes; i++)
        assert_string_equal(f->class_names[i], names[i]);
}

/*
 * Twenty default subjects (random sex, ages 20-80), 64^3 at 6 mm (384 mm: the whole chest):
 * - lungs (parenchyma + intrapulmonary vessels) within the drawn range 0.9 TLC x (1 +- 0.24)
 *   widened by 10% for voxelisation at 6 mm and the deformation: M 3690-7370 mL, F 2770-5520;
 * - heart (myocardium + chambers) in 450-950 mL: the GK 500-900 mL widened by 10% for the
 *   same reasons;
 * - right lung 50-60% of both in every subject (GK 53-56%, plus the deformation's local
 *   volume change), and the mean over subjects within 52-57%;
 * - every class present in every subject; both sexes drawn.
 */
static void test_population(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec(64, 6.0);
    int n_female = 0;
    double right_sum = 0.0;
    for (uint64_t c = 0; c < N_SUBJECTS; c++) {
        rsy_volume *v = NULL;
        rsy_subject s;
        assert_int_equal(make_subject(&spec, DATASET_SEED, c, &v, &s), RSY_OK);
        assert_true(s.sex == RSY_SEX_FEMALE || s.sex == RSY_SEX_MALE);
        assert_true(s.age_years >= 20.0 && s.age_years <= 80.0);
        assert_true(s.size_scale > 0.7 && s.size_scale < 1.4);
        assert_true(s.deformation_mm > 2.9 && s.deformation_mm < 3.1);
        assert_true(s.brain_ml == 0.0 && s.intracranial_ml == 0.0 && s.ventricles_ml == 0.0);
        n_female += s.sex == RSY_SEX_FEMALE;
        double lungs = organ(&s, "lungs_ml"), heart = organ(&s, "heart_ml");
        if (s.sex == RSY_SEX_MALE)
            assert_true(lungs > 3690.0 && lungs < 7370.0);
        else
            assert_true(lungs > 2770.0 && lungs < 5520.0);
        assert_true(heart > 450.0 && heart < 950.0);
        double right = organ(&s, "lung_right_ml") / lungs;
        assert_true(right > 0.50 && right < 0.60);
        right_sum += right;

        size_t counts[RSY__THORAX_N_CLASSES] = {0};
        const uint16_t *l = v->data;
        size_t nv = rsy_geometry_nvox(&v->geom);
        for (size_t q = 0; q < nv; q++) {
            assert_true(l[q] < RSY__THORAX_N_CLASSES);
            counts[l[q]]++;
        }
        for (int cl = 0; cl < RSY__THORAX_N_CLASSES; cl++)
            assert_true(counts[cl] > 0);
        rsy_volume_destroy(v);
    }
    assert_true(n_female > 0 && n_female < N_SUBJECTS);
    double right_mean = right_sum / N_SUBJECTS;
    assert_true(right_mean > 0.52 && right_mean < 0.57);
}

static void test_determinism(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec(40, 8.0);
    rsy_volume *a = NULL, *b = NULL, *c = NULL;
    rsy_subject sa, sb, sc;
    assert_int_equal(make_subject(&spec, DATASET_SEED, 3, &a, &sa), RSY_OK);
    assert_int_equal(make_subject(&spec, DATASET_SEED, 3, &b, &sb), RSY_OK);
    assert_int_equal(make_subject(&spec, DATASET_SEED, 4, &c, &sc), RSY_OK);
    assert_memory_equal(a->data, b->data, rsy_volume_nbytes(a));
    assert_true(sa.size_scale == sb.size_scale && sa.n_organs == sb.n_organs);
    assert_true(memcmp(a->data, c->data, rsy_volume_nbytes(a)) != 0);
    rsy_volume_destroy(a);
    rsy_volume_destroy(b);
    rsy_volume_destroy(c);
}

/* Size of the 26-connected component of class @p cls containing voxel @p seed, and the total
 * number of voxels of that class. */
static size_t component_size(const rsy_volume *v, uint16_t cls, size_t seed, size_t *total)
{
    const uint16_t *l = v->data;
    int64_t nx = v->geom.dims[0], ny = v->geom.dims[1], nz = v->geom.dims[2];
    size_t nv = rsy_geometry_nvox(&v->geom);
    unsigned char *seen = calloc(nv, 1);
    size_t *stack = malloc(nv * sizeof *stack);
    assert_non_null(seen);
    assert_non_null(stack);
    *total = 0;
    for (size_t q = 0; q < nv; q++)
        *total += l[q] == cls;
    size_t n = 0, top = 0;
    if (l[seed] == cls) {
        stack[top++] = seed;
        seen[seed] = 1;
    }
    while (top > 0) {
        size_t q = stack[--top];
        n++;
        int64_t i = (int64_t)(q % (size_t)nx), j = (int64_t)(q / (size_t)nx % (size_t)ny),
                k = (int64_t)(q / (size_t)(nx * ny));
        for (int64_t dk = -1; dk <= 1; dk++)
            for (int64_t dj = -1; dj <= 1; dj++)
                for (int64_t di = -1; di <= 1; di++) {
                    int64_t a = i + di, b = j + dj, c = k + dk;
                    if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz)
                        continue;
                    size_t r = (size_t)((c * ny + b) * nx + a);
                    if (!seen[r] && l[r] == cls) {
                        seen[r] = 1;
                        stack[top++] = r;
                    }
                }
    }
    free(seen);
    free(stack);
    return n;
}

static size_t voxel_of(const rsy_volume *v, const double w[3])
{
    double ijk[3];
    rsy_geometry_world_to_voxel(&v->geom, w, ijk);
    int64_t i = (int64_t)lround(ijk[0]), j = (int64_t)lround(ijk[1]), k = (int64_t)lround(ijk[2]);
    assert_true(i >= 0 && j >= 0 && k >= 0 && i < v->geom.dims[0] && j < v->geom.dims[1] &&
                k < v->geom.dims[2]);
    return (size_t)((k * v->geom.dims[1] + j) * v->geom.dims[0] + i);
}

/*
 * Airways and vessels at 3 mm (64^3, 192 mm around the carina), three subjects:
 * - the airway voxels 10 mm above the carina (trachea) belong to a 26-connected component
 *   holding at least 90% of all airway lumen voxels (the rest are small bronchi cut below
 *   the voxel size);
 * - vessel taper: the fraction of the lung occupied by pulmonary vessels, in shells around
 *   each hilum 0-30, 30-60 and 60-90 mm, decreases outwards, and the inner shell holds at
 *   least twice the outer's fraction;
 * - bone surrounds the spinal canal: at least 90% of the in-plane 4-neighbours of canal
 *   voxels that are not canal are bone or disc (the rest: partial volume at the
 *   interlaminar gaps of the simplified arch).
 */
static void test_trees_and_spine(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec(64, 3.0);
    for (uint64_t c = 0; c < 3; c++) {
        rsy_volume *v = NULL;
        rsy_subject s;
        assert_int_equal(make_subject(&spec, DATASET_SEED + 1, c, &v, &s), RSY_OK);
        const uint16_t *l = v->data;
        double pref[3] = {0.0, 3.0, 10.0}, w[3];
        rsy__thorax_ref_to_world(&s, pref, w);
        size_t total = 0;
        size_t comp = component_size(v, RSY__THORAX_AIRWAY, voxel_of(v, w), &total);
        assert_true(total > 0);
        assert_true((double)comp >= 0.9 * (double)total);

        double hil[2][3] = {{RSY__THORAX_HILUM_R_X_MM, RSY__THORAX_HILUM_R_Y_MM,
                             RSY__THORAX_HILUM_R_Z_MM},
                            {RSY__THORAX_HILUM_L_X_MM, RSY__THORAX_HILUM_L_Y_MM,
                             RSY__THORAX_HILUM_L_Z_MM}};
        double hw[2][3];
        for (int h = 0; h < 2; h++)
            rsy__thorax_ref_to_world(&s, hil[h], hw[h]);
        double n_vessel[3] = {0}, n_lung[3] = {0};
        size_t n_canal_nb = 0, n_bone_nb = 0;
        int64_t nx = v->geom.dims[0], ny = v->geom.dims[1];
        size_t idx = 0;
        for (int64_t k = 0; k < v->geom.dims[2]; k++)
            for (int64_t j = 0; j < ny; j++)
                for (int64_t i = 0; i < nx; i++, idx++) {
                    uint16_t cl = l[idx];
                    if (cl == RSY__THORAX_SPINAL_CANAL && i > 0 && j > 0 && i + 1 < nx &&
                        j + 1 < ny) {
                        size_t nb[4] = {idx - 1, idx + 1, idx - (size_t)nx, idx + (size_t)nx};
                        for (int e = 0; e < 4; e++) {
                            uint16_t o = l[nb[e]];
                            if (o == RSY__THORAX_SPINAL_CANAL)
                                continue;
                            n_canal_nb++;
                            n_bone_nb += o == RSY__THORAX_CORTICAL_BONE ||
                                         o == RSY__THORAX_CANCELLOUS_BONE ||
                                         o == RSY__THORAX_CARTILAGE;
                        }
                    }
                    if (cl != RSY__THORAX_LUNG && cl != RSY__THORAX_PULMONARY_VESSEL)
                        continue;
                    double ijk[3] = {(double)i, (double)j, (double)k}, p[3];
                    rsy_geometry_voxel_to_world(&v->geom, ijk, p);
                    const double *h = hw[p[0] > 0.0 ? 0 : 1];
                    double d = sqrt((p[0] - h[0]) * (p[0] - h[0]) + (p[1] - h[1]) * (p[1] - h[1]) +
                                    (p[2] - h[2]) * (p[2] - h[2]));
                    int bin = (int)(d / 30.0);
                    if (bin > 2)
                        continue;
                    n_lung[bin] += 1.0;
                    n_vessel[bin] += cl == RSY__THORAX_PULMONARY_VESSEL;
                }
        double f[3];
        for (int b = 0; b < 3; b++) {
            assert_true(n_lung[b] > 0.0);
            f[b] = n_vessel[b] / n_lung[b];
        }
        assert_true(f[0] > f[1] && f[1] > f[2]);
        assert_true(f[0] > 2.0 * f[2]);
        assert_true(n_canal_nb > 0);
        assert_true((double)n_bone_nb >= 0.9 * (double)n_canal_nb);
        rsy_volume_destroy(v);
    }
}

static int is_lung(uint16_t c)
{
    return c == RSY__THORAX_LUNG || c == RSY__THORAX_PULMONARY_VESSEL;
}

/*
 * 1 if voxel (i, j, k) of @p v lies within @p r_mm, in its section plane (axes @p u and @p w
 * of the volume), of a voxel that is neither lung parenchyma, vessel nor airway: the pleura
 * or the mediastinum. Sections are thin, so the distance is measured in plane.
 */
static int near_pleura(const rsy_volume *v, const int64_t ijk[3], int u, int w, double r_mm)
{
    const uint16_t *l = v->data;
    const int64_t *n = v->geom.dims;
    double su = v->geom.spacing_mm[u], sw = v->geom.spacing_mm[w];
    int64_t ru = (int64_t)(r_mm / su), rw = (int64_t)(r_mm / sw);
    for (int64_t a = -ru; a <= ru; a++)
        for (int64_t b = -rw; b <= rw; b++) {
            if ((double)(a * a) * su * su + (double)(b * b) * sw * sw > r_mm * r_mm)
                continue;
            int64_t q[3] = {ijk[0], ijk[1], ijk[2]};
            q[u] += a;
            q[w] += b;
            if (q[u] < 0 || q[w] < 0 || q[u] >= n[u] || q[w] >= n[w])
                continue;
            uint16_t c = l[(q[2] * n[1] + q[1]) * n[0] + q[0]];
            if (!is_lung(c) && c != RSY__THORAX_AIRWAY && c != RSY__THORAX_AIRWAY_WALL)
                return 1;
        }
    return 0;
}

/*
 * The vessel tree at a CT grid, on 64^3 voxels covering the chest: 16 coronal sections 10 mm
 * apart (world y -75..75 mm), each 256 x 64 voxels of 1.5 mm (x, 384 mm) by 5 mm (z, 320 mm).
 * Vessels thinner than the smallest spacing, 1.5 mm, are sub-voxel and skipped; point
 * sampling makes the vessel voxel fraction an unbiased estimate of the volume fraction of the
 * drawn vessels whatever the other spacings. Three subjects:
 * - pulmonary vessels make up 4-10% of the lung (parenchyma + vessels): on CT the vessel
 *   volume fraction of the parenchyma is about 5-10% (GK), and the 1.0-1.5 mm vessels the
 *   grid skips are most of the lower 1%;
 * - the vessels reach the periphery: in every lobe region (side x lobe by the fissures), at
 *   least 2% of the lung voxels within 20 mm of the pleura (in the section plane, so at most
 *   20 mm in 3D) are vessel (on CT vessels are visible to within 1-2 cm of the pleura, GK);
 * - determinism: the same case gives the same class map twice.
 */
static void test_vessel_density(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec(64, 1.5);
    spec.dims[0] = 256;
    spec.dims[1] = 16;
    spec.dims[2] = 64;
    spec.spacing_mm[1] = 10.0;
    spec.spacing_mm[2] = 5.0;
    for (uint64_t c = 0; c < 3; c++) {
        rsy_volume *v = NULL, *v2 = NULL;
        rsy_subject s, s2;
        assert_int_equal(make_subject(&spec, DATASET_SEED + 2, c, &v, &s), RSY_OK);
        if (c == 0) {
            assert_int_equal(make_subject(&spec, DATASET_SEED + 2, c, &v2, &s2), RSY_OK);
            assert_memory_equal(v->data, v2->data, rsy_volume_nbytes(v));
            rsy_volume_destroy(v2);
        }
        const uint16_t *l = v->data;
        double n_lung = 0.0, n_vessel = 0.0, r_peri[6] = {0}, r_peri_vessel[6] = {0};
        size_t idx = 0;
        for (int64_t k = 0; k < v->geom.dims[2]; k++)
            for (int64_t j = 0; j < v->geom.dims[1]; j++)
                for (int64_t i = 0; i < v->geom.dims[0]; i++, idx++) {
                    if (!is_lung(l[idx]))
                        continue;
                    int ves = l[idx] == RSY__THORAX_PULMONARY_VESSEL;
                    n_lung += 1.0;
                    n_vessel += ves;
                    const int64_t q[3] = {i, j, k};
                    if (!near_pleura(v, q, 0, 2, 20.0))
                        continue;
                    double ijk[3] = {(double)i, (double)j, (double)k}, w[3], p[3];
                    rsy_geometry_voxel_to_world(&v->geom, ijk, w);
                    rsy__thorax_world_to_ref(&s, w, p);
                    int region = (w[0] > 0.0 ? 0 : 3) + rsy__thorax_lobe(p);
                    r_peri[region] += 1.0;
                    r_peri_vessel[region] += ves;
                }
        assert_true(n_lung > 0.0);
        double f = n_vessel / n_lung;
        assert_true(f > 0.04 && f < 0.10);
        double n_peri = 0.0, n_peri_vessel = 0.0;
        for (int r = 0; r < 6; r++) {
            assert_true(r_peri[r] > 0.0);
            assert_true(r_peri_vessel[r] > 0.0);
            n_peri += r_peri[r];
            n_peri_vessel += r_peri_vessel[r];
        }
        assert_true(n_peri_vessel >= 0.02 * n_peri);
        rsy_volume_destroy(v);
    }
}

/* Region names at reference-frame points of a generated subject. */
static void test_describe(void **state)
{
    (void)state;
    rsy_phantom_spec spec = default_spec(32, 10.0);
    rsy_volume *v = NULL;
    rsy_subject s;
    assert_int_equal(make_subject(&spec, DATASET_SEED, 0, &v, &s), RSY_OK);
    static const struct {
        double p[3];
        const char *name;
    } cases[] = {{{60.0, 10.0, 15.0}, "right upper lobe"},
                 {{80.0, 40.0, -70.0}, "right middle lobe"},
                 {{-70.0, -60.0, -80.0}, "left lower lobe"},
                 {{-70.0, 0.0, 40.0}, "left upper lobe"},
                 {{131.0, -15.0, 0.0}, "subpleural right upper lobe"},
                 {{0.0, 20.0, 10.0}, "middle mediastinum"},
                 {{0.0, 110.0, -40.0}, "anterior chest wall"},
                 {{-12.0, 30.0, -82.0}, "heart"},
                 {{0.0, -70.0, -12.5}, "spinal canal at T5"}}; /* canal axis at y = -70 */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double w[3];
        char buf[96];
        rsy__thorax_ref_to_world(&s, cases[i].p, w);
        rsy__phantom_family_thorax.describe(&s, w, buf, sizeof buf);
        assert_string_equal(buf, cases[i].name);
    }
    char small[4];
    rsy__phantom_family_thorax.describe(&s, (double[3]){0.0, 0.0, 0.0}, small, sizeof small);
    assert_int_equal(strlen(small), 3);
    rsy_volume_destroy(v);
}

/* Invalid specs: RSY_EINVAL, no output, exactly one logged error each. */
static void test_invalid(void **state)
{
    (void)state;
    rsy_phantom_spec good = default_spec(32, 8.0);
    rsy_phantom_spec bad[7];
    for (int i = 0; i < 7; i++)
        bad[i] = good;
    snprintf(bad[0].family, sizeof bad[0].family, "head");
    bad[1].dims[1] = 4;
    bad[2].spacing_mm[2] = 0.0;
    bad[3].sex = (rsy_sex)7;
    bad[4].female_fraction = 1.5;
    bad[5].age_min_years = 90.0;
    bad[6].deformation_scale_mm = 1.0;
    rsy_volume dummy;
    for (int i = 0; i < 7; i++) {
        rsy_volume *v = &dummy; /* must be reset to NULL */
        rsy_subject s;
        int before = tu_errors();
        assert_int_equal(make_subject(&bad[i], DATASET_SEED, 0, &v, &s), RSY_EINVAL);
        assert_null(v);
        assert_int_equal(tu_errors(), before + 1);
        assert_true(strlen(tu_last_error()) > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_table),    cmocka_unit_test(test_population),
        cmocka_unit_test(test_determinism),    cmocka_unit_test(test_trees_and_spine),
        cmocka_unit_test(test_vessel_density), cmocka_unit_test(test_describe),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests_name("thorax", tests, setup, NULL);
}
