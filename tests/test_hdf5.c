/*
 * test_hdf5.c: the HDF5 dataset writer (cmocka group "hdf5").
 *
 * Cases are small synthetic volumes of unequal sides (12 x 10 x 7 voxels, so a swapped axis
 * cannot pass) with a rotated affine, two channels, a three-value label map (one value
 * perilesional) and two lesions measured by rsy_export_measure_lesions, as the NIfTI writer
 * measures them. The file is read back through the HDF5 C API (values, attributes, lesion
 * table, chunking, filters), written twice to compare bytes, and made to fail (missing
 * directory, a file in place of the directory, a file-size limit standing in for a full disk)
 * to check that no file is left. Finally tests/check_hdf5.py reads it with h5py, as a user
 * would, against NIfTI files of the same case.
 */
#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <hdf5.h>

#include "test_util.h"

#include "rsy_export.h"

#define NI 12
#define NJ 10
#define NK 7
#define N_CH 2
#define N_LAB 3
#define N_LES 3 /* instance 3 has no voxel: it must be left out of the table */

static const char *const channel_names[N_CH] = {"T1w", "FLAIR"};
static const char *const label_names[N_LAB] = {"background", "tumour", "oedema"};
static const unsigned char perilesional[N_LAB] = {0, 0, 1};

/* One case's volumes, descriptions and records, owned by the fixture. */
typedef struct fixture {
    rsy_volume *ch[N_CH], *labels, *instances;
    const rsy_volume *chp[N_CH];
    rsy_lesion_info info[N_LES];
    rsy_lesion_record rec[N_LES];
    rsy_case_data data;
    char *dir;
} fixture;

static size_t at(int64_t i, int64_t j, int64_t k, const int64_t *d)
{
    return ((size_t)k * (size_t)d[1] + (size_t)j) * (size_t)d[0] + (size_t)i;
}

/* Voxel value of channel c: distinct for every (c, i, j, k) and exact in float32. */
static float value(int c, int64_t i, int64_t j, int64_t k)
{
    return (float)(c * 100000 + k * 1000 + j * 20 + i) * 0.5f;
}

/* A geometry of @p dims with a rigid rotation of 90 degrees about z (voxel i runs along +y,
 * j along -x) and unequal spacing, so transposed axes or a transposed affine show. */
static void rotated_geometry(rsy_geometry *g, const int64_t dims[3])
{
    const double sp[3] = {0.8, 1.25, 2.5};
    assert_int_equal(rsy_geometry_init(g, dims, sp), RSY_OK);
    memset(g->affine, 0, sizeof g->affine);
    g->affine[1][0] = sp[0];
    g->affine[0][1] = -sp[1];
    g->affine[2][2] = sp[2];
    g->affine[0][3] = 12.5;
    g->affine[1][3] = -30.25;
    g->affine[2][3] = 7.0;
    g->affine[3][3] = 1.0;
}

static void fixture_fill(fixture *f, const int64_t dims[3], size_t case_index)
{
    rsy_geometry g;
    rotated_geometry(&g, dims);
    for (int c = 0; c < N_CH; c++) {
        assert_int_equal(rsy_volume_create(&f->ch[c], &g, RSY_DTYPE_FLOAT32), RSY_OK);
        float *p = f->ch[c]->data;
        for (int64_t k = 0; k < dims[2]; k++)
            for (int64_t j = 0; j < dims[1]; j++)
                for (int64_t i = 0; i < dims[0]; i++)
                    p[at(i, j, k, dims)] = value(c, i, j, k);
        f->chp[c] = f->ch[c];
    }
    assert_int_equal(rsy_volume_create(&f->labels, &g, RSY_DTYPE_UINT8), RSY_OK);
    assert_int_equal(rsy_volume_create(&f->instances, &g, RSY_DTYPE_UINT16), RSY_OK);
    uint8_t *lab = f->labels->data;
    uint16_t *inst = f->instances->data;
    /* Lesion 1: a tumour box with an oedema rim along i; lesion 2: a small tumour box. */
    for (int64_t k = 1; k <= 3; k++)
        for (int64_t j = 2; j <= 5; j++)
            for (int64_t i = 1; i <= 6; i++) {
                inst[at(i, j, k, dims)] = 1;
                lab[at(i, j, k, dims)] = (i == 1 || i == 6) ? 2 : 1;
            }
    for (int64_t k = 4; k <= 5; k++)
        for (int64_t j = 7; j <= 8; j++)
            for (int64_t i = 8; i <= 10; i++) {
                inst[at(i, j, k, dims)] = 2;
                lab[at(i, j, k, dims)] = 1;
            }
    static const char *const types[N_LES] = {"glioblastoma", "metastasis", "metastasis"};
    for (int l = 0; l < N_LES; l++) {
        f->info[l] = (rsy_lesion_info){
            l + 1, types[l], "Lesion", "white_matter", "right frontal lobe", NULL, 0};
    }
    assert_int_equal(
        rsy_export_measure_lesions(f->instances, f->labels, N_LES, perilesional, f->rec), RSY_OK);
    assert_int_equal(f->rec[2].voxel_count, 0);
    f->data = (rsy_case_data){case_index, f->chp, N_CH, f->labels, f->instances, f->info, N_LES,
                              NULL,       0,      NULL, 0,         "two lesions"};
}

static void fixture_free(fixture *f)
{
    for (int c = 0; c < N_CH; c++)
        rsy_volume_destroy(f->ch[c]);
    rsy_volume_destroy(f->labels);
    rsy_volume_destroy(f->instances);
    memset(f, 0, sizeof *f);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    const int64_t dims[3] = {NI, NJ, NK};
    fixture_fill(f, dims, 0);
    f->dir = tu_tmpdir("hdf5");
    assert_non_null(f->dir);
    tu_log_capture();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    fixture_free(f);
    free(f);
    return 0;
}

static rsy_export_hdf5_params params(const char *path)
{
    rsy_export_hdf5_params p = rsy_export_hdf5_params_default();
    p.path = path;
    p.dataset_name = "BrainTest";
    p.recipe_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    p.dataset_seed = 18446744073709551557ULL; /* above 2^53: must survive as a string */
    p.modality = "mri";
    p.channel_names = channel_names;
    p.n_channels = N_CH;
    p.label_names = label_names;
    p.n_labels = N_LAB;
    p.label_perilesional = perilesional;
    return p;
}

/* Number of entries of @p dir besides "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Write cases 0 and 2 of the fixture (the second with the same volumes) to @p path. */
static rsy_status write_file(fixture *f, const char *path, int level, char sha[65])
{
    rsy_export_hdf5_params p = params(path);
    p.deflate_level = level;
    rsy_export_hdf5 *w = NULL;
    rsy_status rc = rsy_export_hdf5_create(&w, &p);
    if (rc != RSY_OK)
        return rc;
    for (size_t idx = 0; idx <= 2; idx += 2) {
        f->data.case_index = idx;
        rc = rsy_export_hdf5_add_case(w, &f->data, f->rec);
        if (rc != RSY_OK) {
            rsy_export_hdf5_abort(w);
            return rc;
        }
    }
    f->data.case_index = 0;
    return rsy_export_hdf5_close(w, sha);
}

/* ---- reading helpers (HDF5 C API) -------------------------------------------------------- */
static hid_t vlen_utf8(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    assert_true(t >= 0);
    assert_true(H5Tset_size(t, H5T_VARIABLE) >= 0);
    assert_true(H5Tset_cset(t, H5T_CSET_UTF8) >= 0);
    return t;
}

/* Check that attribute @p name of @p loc is a variable-length UTF-8 string (h5py reads str)
 * equal to @p want (want NULL: only the type is checked). */
static void expect_str(hid_t loc, const char *name, const char *want)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t ft = H5Aget_type(a);
    assert_int_equal(H5Tis_variable_str(ft), 1);
    assert_int_equal(H5Tget_cset(ft), H5T_CSET_UTF8);
    hid_t mt = vlen_utf8();
    char *s = NULL;
    assert_true(H5Aread(a, mt, &s) >= 0);
    if (want)
        assert_string_equal(s, want);
    H5free_memory(s);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
}

static void expect_strs(hid_t loc, const char *name, const char *const *want, int n)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t sp = H5Aget_space(a);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), n);
    hid_t mt = vlen_utf8();
    char *s[8] = {NULL};
    assert_true(n <= 8);
    if (n > 0) {
        assert_true(H5Aread(a, mt, s) >= 0);
        for (int i = 0; i < n; i++) {
            assert_string_equal(s[i], want[i]);
            H5free_memory(s[i]);
        }
    }
    H5Tclose(mt);
    H5Sclose(sp);
    H5Aclose(a);
}

static int64_t read_i64(hid_t loc, const char *name)
{
    int64_t v = -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    return v;
}

static void read_f64s(hid_t loc, const char *name, double *v, hssize_t n)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t sp = H5Aget_space(a);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), n);
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0);
    H5Sclose(sp);
    H5Aclose(a);
}

/* Read dataset @p name of @p g, checking its shape is @p dims (C order, @p rank axes). */
static void *read_dataset(hid_t g, const char *name, hid_t mtype, size_t elem, int rank,
                          const hsize_t *dims)
{
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t sp = H5Dget_space(ds);
    hsize_t got[4];
    assert_int_equal(H5Sget_simple_extent_dims(sp, got, NULL), rank);
    size_t n = 1;
    for (int a = 0; a < rank; a++) {
        assert_int_equal(got[a], dims[a]);
        n *= (size_t)dims[a];
    }
    void *buf = malloc(n * elem);
    assert_non_null(buf);
    assert_true(H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

/* The columns of the lesion table this test reads back, by name from the file's type. */
typedef struct row {
    int32_t instance_id;
    char *type;
    int32_t label;
    int64_t voxel_count, mass_voxel_count;
    double volume_mm3, centroid_mm[3], long_axis_mm, short_axis_mm;
    int64_t bbox_min_vox[3], slice_range[2];
    int64_t label_voxels[N_LAB];
} row;

static hid_t row_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(row));
    hid_t s = vlen_utf8();
    hsize_t three = 3, two = 2, nlab = N_LAB;
    hid_t f3 = H5Tarray_create2(H5T_NATIVE_DOUBLE, 1, &three);
    hid_t i3 = H5Tarray_create2(H5T_NATIVE_INT64, 1, &three);
    hid_t i2 = H5Tarray_create2(H5T_NATIVE_INT64, 1, &two);
    hid_t il = H5Tarray_create2(H5T_NATIVE_INT64, 1, &nlab);
    assert_true(H5Tinsert(t, "instance_id", HOFFSET(row, instance_id), H5T_NATIVE_INT32) >= 0);
    assert_true(H5Tinsert(t, "type", HOFFSET(row, type), s) >= 0);
    assert_true(H5Tinsert(t, "label", HOFFSET(row, label), H5T_NATIVE_INT32) >= 0);
    assert_true(H5Tinsert(t, "voxel_count", HOFFSET(row, voxel_count), H5T_NATIVE_INT64) >= 0);
    assert_true(
        H5Tinsert(t, "mass_voxel_count", HOFFSET(row, mass_voxel_count), H5T_NATIVE_INT64) >= 0);
    assert_true(H5Tinsert(t, "volume_mm3", HOFFSET(row, volume_mm3), H5T_NATIVE_DOUBLE) >= 0);
    assert_true(H5Tinsert(t, "centroid_mm", HOFFSET(row, centroid_mm), f3) >= 0);
    assert_true(H5Tinsert(t, "long_axis_mm", HOFFSET(row, long_axis_mm), H5T_NATIVE_DOUBLE) >= 0);
    assert_true(H5Tinsert(t, "short_axis_mm", HOFFSET(row, short_axis_mm), H5T_NATIVE_DOUBLE) >= 0);
    assert_true(H5Tinsert(t, "bbox_min_vox", HOFFSET(row, bbox_min_vox), i3) >= 0);
    assert_true(H5Tinsert(t, "slice_range", HOFFSET(row, slice_range), i2) >= 0);
    assert_true(H5Tinsert(t, "label_voxels", HOFFSET(row, label_voxels), il) >= 0);
    H5Tclose(s);
    H5Tclose(f3);
    H5Tclose(i3);
    H5Tclose(i2);
    H5Tclose(il);
    return t;
}

/* ---- tests ----------------------------------------------------------------------------- */
static void test_round_trip(void **state)
{
    fixture *f = *state;
    char path[1024], sha[65], sha_file[65];
    snprintf(path, sizeof path, "%s/data.h5", f->dir);
    /* An older file at the target stays untouched until close() replaces it. */
    assert_int_equal(rsy_file_write_atomic(path, "old", 3), RSY_OK);
    assert_int_equal(write_file(f, path, RSY_EXPORT_HDF5_LEVEL_DEFAULT, sha), RSY_OK);
    assert_int_equal(count_entries(f->dir), 1); /* no temporary left beside it */
    assert_int_equal(rsy_sha256_file(path, sha_file), RSY_OK);
    assert_string_equal(sha, sha_file);

    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    expect_str(file, "format", "raresynth-hdf5");
    assert_int_equal(read_i64(file, "format_version"), 1);
    expect_str(file, "generator", "raresynth");
    expect_str(file, "generator_version", RSY_VERSION_STRING);
    expect_str(file, "dataset_name", "BrainTest");
    expect_str(file, "recipe_sha256",
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    expect_str(file, "dataset_seed", "18446744073709551557");
    expect_str(file, "modality", "mri");
    expect_strs(file, "channel_names", channel_names, N_CH);
    expect_strs(file, "label_names", label_names, N_LAB);
    expect_str(file, "labels", "{\"background\":0,\"tumour\":1,\"oedema\":2}");
    static const char *const peri[1] = {"oedema"};
    expect_strs(file, "labels_perilesional", peri, 1);
    expect_str(file, "coordinate_system", NULL);
    expect_str(file, "index_order", NULL);
    expect_str(file, "data_sources",
               "No patient data: every case is generated from procedural anatomy and published "
               "population statistics; no image of any person was used.");
    assert_int_equal(read_i64(file, "n_cases"), 2);
    static const char *const ids[2] = {"case_0000", "case_0002"};
    expect_strs(file, "case_ids", ids, 2);

    for (int c = 0; c < 2; c++) {
        char gname[64];
        snprintf(gname, sizeof gname, "/cases/%s", ids[c]);
        hid_t g = H5Gopen2(file, gname, H5P_DEFAULT);
        assert_true(g >= 0);
        expect_str(g, "case_id", ids[c]);
        assert_int_equal(read_i64(g, "case_index"), 2 * c);
        assert_int_equal(read_i64(g, "n_lesions"), 2);
        expect_str(g, "findings", "two lesions");
        double sp[3], aff[16];
        read_f64s(g, "spacing_mm", sp, 3);
        read_f64s(g, "affine", aff, 16);
        const rsy_geometry *geo = &f->labels->geom;
        for (int a = 0; a < 3; a++)
            assert_true(sp[a] == geo->spacing_mm[a]); /* stored as double: exact */
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++)
                assert_true(aff[4 * r + q] == geo->affine[r][q]); /* row-major, exact */

        /* image[c][k][j][i] is channel c's voxel (i, j, k): the buffers are the C-order
         * arrays, so the comparison is a plain memcmp per channel. */
        const hsize_t d4[4] = {N_CH, NK, NJ, NI}, d3[3] = {NK, NJ, NI};
        float *img = read_dataset(g, "image", H5T_NATIVE_FLOAT, 4, 4, d4);
        const size_t nvox = (size_t)NI * NJ * NK;
        for (int ch = 0; ch < N_CH; ch++)
            assert_memory_equal(img + (size_t)ch * nvox, f->ch[ch]->data, nvox * 4);
        /* and one voxel by its indices, against the formula */
        assert_true(img[((size_t)(1 * NK + 5) * NJ + 3) * NI + 9] == value(1, 9, 3, 5));
        free(img);
        uint8_t *lab = read_dataset(g, "label", H5T_NATIVE_UINT8, 1, 3, d3);
        assert_memory_equal(lab, f->labels->data, nvox);
        free(lab);
        uint16_t *inst = read_dataset(g, "instances", H5T_NATIVE_UINT16, 2, 3, d3);
        assert_memory_equal(inst, f->instances->data, nvox * 2);
        free(inst);

        hid_t ds = H5Dopen2(g, "lesions", H5P_DEFAULT);
        assert_true(ds >= 0);
        hid_t sp1 = H5Dget_space(ds);
        assert_int_equal(H5Sget_simple_extent_npoints(sp1), 2); /* lesion 3 left out */
        hid_t rt = row_type();
        row rows[2];
        assert_true(H5Dread(ds, rt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0);
        for (int l = 0; l < 2; l++) {
            const rsy_lesion_record *r = &f->rec[l];
            assert_int_equal(rows[l].instance_id, l + 1);
            assert_string_equal(rows[l].type, l == 0 ? "glioblastoma" : "metastasis");
            assert_int_equal(rows[l].label, 1); /* tumour: the non-perilesional majority */
            assert_int_equal(rows[l].voxel_count, r->voxel_count);
            assert_int_equal(rows[l].mass_voxel_count, r->mass_voxel_count);
            /* Copied, not recomputed: bit-identical doubles. */
            assert_true(rows[l].volume_mm3 == r->volume_mm3);
            assert_true(rows[l].long_axis_mm == r->long_axis_mm);
            assert_true(rows[l].short_axis_mm == r->short_axis_mm);
            for (int a = 0; a < 3; a++) {
                assert_true(rows[l].centroid_mm[a] == r->centroid_mm[a]);
                assert_int_equal(rows[l].bbox_min_vox[a], r->bbox_min[a]);
            }
            assert_int_equal(rows[l].slice_range[0], r->slice_min);
            assert_int_equal(rows[l].slice_range[1], r->slice_max);
            for (int v = 0; v < N_LAB; v++)
                assert_int_equal(rows[l].label_voxels[v], r->label_voxels[v]);
        }
        /* Lesion 1: 6 x 4 x 3 voxels, of which the i = 1 and i = 6 faces are oedema. */
        assert_int_equal(rows[0].voxel_count, 72);
        assert_int_equal(rows[0].label_voxels[2], 24);
        assert_true(H5Dvlen_reclaim(rt, sp1, H5P_DEFAULT, rows) >= 0);
        expect_str(ds, "coordinate_system", NULL);
        H5Tclose(rt);
        H5Sclose(sp1);
        H5Dclose(ds);
        H5Gclose(g);
    }
    assert_true(H5Fclose(file) >= 0);
}

/* Chunks of at most 64^3 voxels (1 MiB of float32), filters shuffle then deflate at the
 * requested level, no timestamps; a volume with one side over 64 makes an edge chunk. */
static void test_chunks_and_filters(void **state)
{
    fixture *f = *state;
    fixture wide;
    memset(&wide, 0, sizeof wide);
    const int64_t dims[3] = {70, 66, 6};
    fixture_fill(&wide, dims, 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/wide.h5", f->dir);
    rsy_export_hdf5_params p = params(path);
    p.deflate_level = 6;
    rsy_export_hdf5 *w = NULL;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_OK);
    assert_int_equal(rsy_export_hdf5_add_case(w, &wide.data, wide.rec), RSY_OK);
    assert_int_equal(rsy_export_hdf5_close(w, NULL), RSY_OK);

    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    static const struct {
        const char *name;
        int rank;
        size_t elem;
        hsize_t chunk[4];
    } want[3] = {{"/cases/case_0000/image", 4, 4, {1, 6, 64, 64}},
                 {"/cases/case_0000/label", 3, 1, {6, 64, 64}},
                 {"/cases/case_0000/instances", 3, 2, {6, 64, 64}}};
    for (int d = 0; d < 3; d++) {
        hid_t ds = H5Dopen2(file, want[d].name, H5P_DEFAULT);
        assert_true(ds >= 0);
        hid_t dcpl = H5Dget_create_plist(ds);
        assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
        hsize_t chunk[4];
        assert_int_equal(H5Pget_chunk(dcpl, 4, chunk), want[d].rank);
        size_t bytes = want[d].elem;
        for (int a = 0; a < want[d].rank; a++) {
            assert_int_equal(chunk[a], want[d].chunk[a]);
            bytes *= (size_t)chunk[a];
        }
        assert_true(bytes <= (size_t)1 << 20);
        assert_int_equal(H5Pget_nfilters(dcpl), 2);
        unsigned flags, cd[4];
        size_t ncd = 4;
        assert_int_equal(H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL),
                         H5Z_FILTER_SHUFFLE);
        ncd = 4;
        assert_int_equal(H5Pget_filter2(dcpl, 1, &flags, &ncd, cd, 0, NULL, NULL),
                         H5Z_FILTER_DEFLATE);
        assert_int_equal(ncd, 1);
        assert_int_equal(cd[0], 6);
        hbool_t track = 1;
        assert_true(H5Pget_obj_track_times(dcpl, &track) >= 0);
        assert_false(track);
        H5Pclose(dcpl);
        H5Dclose(ds);
    }
    /* The edge chunks read back exactly (voxels 64..69 along i, 64..65 along j). */
    hid_t g = H5Gopen2(file, "/cases/case_0000", H5P_DEFAULT);
    const hsize_t d4[4] = {N_CH, 6, 66, 70};
    float *img = read_dataset(g, "image", H5T_NATIVE_FLOAT, 4, 4, d4);
    assert_memory_equal(img, wide.ch[0]->data, (size_t)70 * 66 * 6 * 4);
    assert_memory_equal(img + (size_t)70 * 66 * 6, wide.ch[1]->data, (size_t)70 * 66 * 6 * 4);
    free(img);
    H5Gclose(g);
    assert_true(H5Fclose(file) >= 0);

    /* Level 0: chunked, no filters. */
    p.deflate_level = 0;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_OK);
    assert_int_equal(rsy_export_hdf5_add_case(w, &wide.data, wide.rec), RSY_OK);
    assert_int_equal(rsy_export_hdf5_close(w, NULL), RSY_OK);
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "/cases/case_0000/image", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(ds);
    assert_int_equal(H5Pget_nfilters(dcpl), 0);
    H5Pclose(dcpl);
    H5Dclose(ds);
    H5Fclose(file);
    fixture_free(&wide);
}

/* Fill and free a few blocks of memory, so anything HDF5 might copy from uninitialised or
 * recycled memory would differ between two writes. */
static void dirty_heap(unsigned char byte)
{
    for (size_t s = 1024; s <= ((size_t)1 << 21); s *= 4) {
        unsigned char *p = malloc(s);
        assert_non_null(p);
        memset(p, byte, s);
        free(p);
    }
}

static void test_byte_identical(void **state)
{
    fixture *f = *state;
    char a[1024], b[1024], sha_a[65], sha_b[65];
    /* Different names and directories: the path must not end up in the file. */
    snprintf(a, sizeof a, "%s/first.h5", f->dir);
    snprintf(b, sizeof b, "%s/sub", f->dir);
    assert_int_equal(rsy_mkdir_p(b), RSY_OK);
    snprintf(b, sizeof b, "%s/sub/another-name.h5", f->dir);
    dirty_heap(0x5a);
    assert_int_equal(write_file(f, a, 4, sha_a), RSY_OK);
    dirty_heap(0xa5);
    assert_int_equal(write_file(f, b, 4, sha_b), RSY_OK);
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(rsy_file_read_all(a, (size_t)1 << 26, &da, &la), RSY_OK);
    assert_int_equal(rsy_file_read_all(b, (size_t)1 << 26, &db, &lb), RSY_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    assert_string_equal(sha_a, sha_b);
    free(da);
    free(db);

    /* A file written in a fresh child process (its own HDF5 state) has the same bytes. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c[1024], sha_c[65];
        snprintf(c, sizeof c, "%s/child.h5", f->dir);
        dirty_heap(0x33);
        _exit(write_file(f, c, 4, sha_c) == RSY_OK && strcmp(sha_c, sha_a) == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_bad_input(void **state)
{
    fixture *f = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.h5", f->dir);
    rsy_export_hdf5 *w = (rsy_export_hdf5 *)(uintptr_t)1; /* create() must reset it to NULL */
    rsy_export_hdf5_params p = params(path);

    p.deflate_level = 10;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_EINVAL);
    assert_null(w);
    assert_non_null(strstr(tu_last_error(), "deflate level"));
    p = params(path);
    static const char *const no_bg[N_LAB] = {"tumour", "background", "oedema"};
    p.label_names = no_bg;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_EINVAL);
    static const char *const dup[N_LAB] = {"background", "tumour", "tumour"};
    p.label_names = dup;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "\"tumour\""));
    p = params(path);
    p.n_channels = 0;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_EINVAL);
    assert_int_equal(rsy_export_hdf5_create(&w, NULL), RSY_EINVAL);
    assert_int_equal(count_entries(f->dir), 0);

    /* Refused cases write nothing and leave the writer usable. */
    p = params(path);
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_OK);
    f->data.case_index = 3;
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, f->rec), RSY_OK);
    f->data.case_index = 3;
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, f->rec), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "increasing order"));
    f->data.case_index = 4;
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, NULL), RSY_EINVAL); /* no records */
    rsy_lesion_record bad[N_LES];
    memcpy(bad, f->rec, sizeof bad);
    bad[1].instance_id = 7;
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, bad), RSY_EINVAL);
    ((uint8_t *)f->labels->data)[5] = N_LAB; /* outside the dictionary */
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, f->rec), RSY_EINVAL);
    assert_non_null(strstr(tu_last_error(), "label 3"));
    ((uint8_t *)f->labels->data)[5] = 0;
    f->data.n_channels = 1;
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, f->rec), RSY_EINVAL);
    f->data.n_channels = N_CH;
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, f->rec), RSY_OK);
    assert_int_equal(count_entries(f->dir), 1); /* the temporary only */
    assert_false(access(path, F_OK) == 0);
    assert_int_equal(rsy_export_hdf5_close(w, NULL), RSY_OK);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    assert_int_equal(read_i64(file, "n_cases"), 2);
    H5Fclose(file);
    f->data.case_index = 0;
    assert_int_equal(rsy_export_hdf5_close(NULL, NULL), RSY_EINVAL);
    rsy_export_hdf5_abort(NULL);
}

/* Abort removes the temporary file; the target is never created. */
static void test_abort(void **state)
{
    fixture *f = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/aborted.h5", f->dir);
    rsy_export_hdf5_params p = params(path);
    rsy_export_hdf5 *w = NULL;
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_OK);
    assert_int_equal(rsy_export_hdf5_add_case(w, &f->data, f->rec), RSY_OK);
    assert_int_equal(count_entries(f->dir), 1);
    rsy_export_hdf5_abort(w);
    assert_int_equal(count_entries(f->dir), 0);
}

static void test_unwritable_directory(void **state)
{
    fixture *f = *state;
    char path[1200];
    rsy_export_hdf5 *w = NULL;

    snprintf(path, sizeof path, "%s/missing/data.h5", f->dir);
    rsy_export_hdf5_params p = params(path);
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_EIO);
    assert_null(w);
    assert_non_null(strstr(tu_last_error(), path));
    assert_non_null(strstr(tu_last_error(), "No such file or directory"));

    /* A regular file where the directory should be. */
    char notdir[1024];
    snprintf(notdir, sizeof notdir, "%s/plain", f->dir);
    assert_int_equal(rsy_file_write_atomic(notdir, "x", 1), RSY_OK);
    snprintf(path, sizeof path, "%s/plain/data.h5", f->dir);
    p = params(path);
    assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_EIO);
    assert_non_null(strstr(tu_last_error(), "Not a directory"));
    assert_int_equal(count_entries(f->dir), 1);

    /* Permission bits do not stop root, so this part runs only for other users. */
    if (geteuid() != 0) {
        char ro[1024];
        snprintf(ro, sizeof ro, "%s/readonly", f->dir);
        assert_int_equal(mkdir(ro, 0555), 0);
        snprintf(path, sizeof path, "%s/data.h5", ro);
        p = params(path);
        assert_int_equal(rsy_export_hdf5_create(&w, &p), RSY_EIO);
        assert_non_null(strstr(tu_last_error(), "Permission denied"));
        assert_int_equal(count_entries(ro), 0);
        chmod(ro, 0755);
    }
}

/* A full disk, made robustly for any user: a forked child lowers its file-size limit
 * (RLIMIT_FSIZE) below the size of the file and ignores SIGXFSZ, so the write fails with EFBIG
 * exactly as it fails with ENOSPC on a full disk. The child reports the status and its last
 * logged error through a pipe; the directory must be empty afterwards. */
static void test_full_disk_leaves_no_file(void **state)
{
    fixture *f = *state;
    fixture big;
    memset(&big, 0, sizeof big);
    const int64_t dims[3] = {32, 32, 32};
    fixture_fill(&big, dims, 0);
    /* Noise that deflate cannot shrink much: 2 x 128 KiB of float32. */
    uint64_t x = 88172645463325252ULL;
    for (int c = 0; c < N_CH; c++) {
        float *v = big.ch[c]->data;
        for (size_t i = 0; i < (size_t)32 * 32 * 32; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v[i] = (float)(x >> 40);
        }
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/full.h5", f->dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {64 * 1024, 64 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(100);
        rsy_export_hdf5_params p = params(path);
        rsy_export_hdf5 *w = NULL;
        rsy_status rc = rsy_export_hdf5_create(&w, &p);
        rsy_status rc_add = RSY_OK;
        char msg[4096] = "";
        if (rc == RSY_OK) {
            rc_add = rsy_export_hdf5_add_case(w, &big.data, big.rec);
            /* The failed write's own message, not close()'s "an earlier write failed". */
            snprintf(msg, sizeof msg, "%s", tu_last_error());
            /* A failed add poisons the writer; close returns that failure. */
            rc = rsy_export_hdf5_close(w, NULL);
            if (rc_add != RSY_OK && rc != rc_add)
                _exit(101);
        }
        if (rc_add == RSY_OK)
            snprintf(msg, sizeof msg, "%s", tu_last_error());
        ssize_t n = write(fds[1], msg, strlen(msg));
        (void)n;
        close(fds[1]);
        _exit((int)rc);
    }
    close(fds[1]);
    char msg[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += (size_t)n;
    msg[len] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != RSY_EIO)
        fprintf(stderr, "child status %d, message: %s\n", WEXITSTATUS(status), msg);
    /* The size limit is an I/O failure (EFBIG), reported as such with the file's path. */
    assert_int_equal(WEXITSTATUS(status), RSY_EIO);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "File too large"));
    assert_int_equal(count_entries(f->dir), 0);
    fixture_free(&big);
}

/* h5py, as a user reads the file, against NIfTI files of the same case (tests/check_hdf5.py).
 * Skipped, with the reason, when the script or Python with h5py/nibabel is not at hand (the
 * test runs from the repository root under `make test`). */
static void test_h5py_matches_nifti(void **state)
{
    fixture *f = *state;
    const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    if (access("tests/check_hdf5.py", R_OK) != 0 || access(py, X_OK) != 0) {
        fprintf(stderr, "skipped: tests/check_hdf5.py or %s not found (run from the repo root)\n",
                py);
        skip();
    }
    char cmd[8192], h5[1024], img[N_CH][1024], lab[1024], inst[1024];
    snprintf(h5, sizeof h5, "%s/data.h5", f->dir);
    assert_int_equal(write_file(f, h5, RSY_EXPORT_HDF5_LEVEL_DEFAULT, NULL), RSY_OK);
    for (int c = 0; c < N_CH; c++) {
        snprintf(img[c], sizeof img[c], "%s/img_%04d.nii.gz", f->dir, c);
        assert_int_equal(rsy_volume_write_nifti(f->ch[c], img[c], RSY_NIFTI_IMAGE), RSY_OK);
    }
    snprintf(lab, sizeof lab, "%s/label.nii.gz", f->dir);
    snprintf(inst, sizeof inst, "%s/inst.nii.gz", f->dir);
    assert_int_equal(rsy_volume_write_nifti(f->labels, lab, RSY_NIFTI_LABEL), RSY_OK);
    assert_int_equal(rsy_volume_write_nifti(f->instances, inst, RSY_NIFTI_LABEL), RSY_OK);
    snprintf(cmd, sizeof cmd,
             "'%s' -c 'import h5py, nibabel' 2>/dev/null || exit 77; "
             "'%s' tests/check_hdf5.py '%s' case_0000 --images '%s' '%s' --label '%s' "
             "--instances '%s'",
             py, py, h5, img[0], img[1], lab, inst);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77) {
        fprintf(stderr, "skipped: %s lacks h5py or nibabel\n", py);
        skip();
    }
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    assert_int_equal(rsy_init(), RSY_OK);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the test's own expected failures stay quiet */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_leaves_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_h5py_matches_nifti, setup, teardown),
    };
    return cmocka_run_group_tests_name("hdf5", tests, NULL, NULL);
}
