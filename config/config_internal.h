/*
 * config_internal.h: helpers shared by the .c files of config/ (JSON reading with error
 * messages that name the file, the key path and the expectation). Never installed; cJSON
 * appears here and in config/ *.c only.
 *
 * Every helper that finds a problem logs exactly one line through rsy_log_error, in the form
 *     FILE: KEY.PATH: expected ..., got VALUE
 * and returns RSY_ECONFIG. Callers propagate the status without logging again, so a failed
 * load always leaves exactly one error line behind.
 */
#ifndef RSY_CONFIG_INTERNAL_H
#define RSY_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "rsy_config.h"
#include "rsy_core.h"

/* RSY_DATADIR is set by the Makefile to "$(datadir)/raresynth"; this fallback matches its
 * default so that the sources also compile when built by hand. */
#ifndef RSY_DATADIR
#define RSY_DATADIR "/usr/local/share/raresynth"
#endif

#define RSY__KEYPATH_MAX 256            /* "lesions[0].diameter_mm.median" and the like */
#define RSY__JSON_MAX_BYTES (16u << 20) /* recipes, priors and tables are small text files */

/** A parsed JSON file: its text (NUL-terminated), length and cJSON tree. */
typedef struct rsy__json_file {
    const char *path; /* as given by the caller, used in every message; borrowed */
    char *text;       /* owned */
    size_t len;
    cJSON *root; /* owned */
} rsy__json_file;

/**
 * Read @p path and parse it as one JSON object. Syntax errors are reported as
 * "PATH:LINE:COL: malformed JSON (...)"; duplicate keys in any object are errors.
 * On success @p f owns the text and the tree; release with rsy__json_file_clear().
 * @return RSY_OK, RSY_EIO (unreadable), RSY_ECONFIG, RSY_ENOMEM.
 */
rsy_status rsy__json_file_load(rsy__json_file *f, const char *path);
void rsy__json_file_clear(rsy__json_file *f);

/** Log "FILE: KP: <message>[, got <value>]" as one line and return RSY_ECONFIG. @p got may be
 *  NULL (no value shown). An empty @p kp names the top-level object. */
rsy_status rsy__cfg_fail(const char *file, const char *kp, const cJSON *got, const char *fmt, ...)
    RSY_FORMAT(4, 5);

/** Key path of child @p key of @p parent ("a.b"), or of element @p index ("a[3]"). */
void rsy__kp_key(char out[RSY__KEYPATH_MAX], const char *parent, const char *key);
void rsy__kp_index(char out[RSY__KEYPATH_MAX], const char *parent, int index);

/**
 * Check that @p obj (at key path @p kp) is an object whose keys all appear in the
 * NULL-terminated list @p allowed. The key "note" (a free-text provenance string) is
 * accepted in every object. @return RSY_OK or RSY_ECONFIG.
 */
rsy_status rsy__cfg_check_object(const char *file, const char *kp, const cJSON *obj,
                                 const char *const *allowed);

/** A numeric range; a bound of ±INFINITY is absent. */
typedef struct rsy__range {
    double lo, hi;
    int lo_open, hi_open; /* 1: the bound itself is excluded */
} rsy__range;

/** Readable form of @p r, e.g. "a number > 0", "a number in [0, 1]". */
void rsy__range_text(const rsy__range *r, int integer, char *buf, size_t n);
/** 1 if @p x lies in @p r. */
int rsy__range_contains(const rsy__range *r, double x);

/*
 * Typed getters. Each reads key @p key of object @p obj (whose key path is @p kp). A missing
 * key is an error if @p required ("required key missing"), else *out keeps the default the
 * caller put there. Returns RSY_OK or RSY_ECONFIG.
 */
rsy_status rsy__cfg_number(const char *file, const cJSON *obj, const char *kp, const char *key,
                           int required, rsy__range r, double *out);
/** The same checks on an item already in hand (array elements); @p kp names the item. */
rsy_status rsy__cfg_number_item(const char *file, const cJSON *item, const char *kp, rsy__range r,
                                double *out);
rsy_status rsy__cfg_int_item(const char *file, const cJSON *item, const char *kp, int64_t lo,
                             int64_t hi, int64_t *out);
rsy_status rsy__cfg_int(const char *file, const cJSON *obj, const char *kp, const char *key,
                        int required, int64_t lo, int64_t hi, int64_t *out);
rsy_status rsy__cfg_bool(const char *file, const cJSON *obj, const char *kp, const char *key,
                         int required, int *out);
/** A string of at most @p max_len bytes, copied into @p out (capacity max_len + 1). */
rsy_status rsy__cfg_string(const char *file, const cJSON *obj, const char *kp, const char *key,
                           int required, size_t max_len, char *out);
/** One of the NULL-terminated @p choices; *out is its index. */
rsy_status rsy__cfg_enum(const char *file, const cJSON *obj, const char *kp, const char *key,
                         int required, const char *const *choices, int *out);

/** Identifier classes: tissue, compartment and prior names are [a-z0-9_-]{1,63}. */
int rsy__is_ident(const char *s);
/** An identifier string value (see rsy__is_ident) at @p key. */
rsy_status rsy__cfg_ident(const char *file, const cJSON *obj, const char *kp, const char *key,
                          int required, char out[RSY_NAME_MAX]);
/** An array of 1..@p max identifiers with no repeats. */
rsy_status rsy__cfg_ident_list(const char *file, const cJSON *obj, const char *kp, const char *key,
                               int required, int max, char out[][RSY_NAME_MAX], int *n_out);
/** An array of 1..RSY_MAX_SOURCES non-empty strings of < RSY_TEXT_MAX bytes. */
rsy_status rsy__cfg_sources(const char *file, const cJSON *obj, const char *kp, const char *key,
                            char out[][RSY_TEXT_MAX], int *n_out);
/** The format-version key (e.g. "raresynth_prior"), required and equal to 1. */
rsy_status rsy__cfg_version(const char *file, const cJSON *root, const char *key);

/** What a distribution describes: its valid values and whether they are integers. */
typedef struct rsy__dist_rules {
    rsy__range domain;
    int integer; /* values must be integers (counts): only fixed, categorical and poisson */
} rsy__dist_rules;

/* Rules of the quantities drawn by priors (dist.c): lesion counts (integers in [1, 1000]),
 * diameters in (0, 1000] mm, elongation and flatness in [1, 10], radius fractions in (0, 1],
 * margins in (0, 200] mm, lobes (integers in [1, 16]), open fractions in (0, 1) (inclusion
 * volume fractions, mass-effect strength), walls in (0, 100] mm, inclusion diameters in
 * (0, 200] mm, network lines in (0, 50] mm and network cells in (0, 500] mm. */
extern const rsy__dist_rules rsy__rules_count;
extern const rsy__dist_rules rsy__rules_diameter_mm;
extern const rsy__dist_rules rsy__rules_elongation;
extern const rsy__dist_rules rsy__rules_fraction;
extern const rsy__dist_rules rsy__rules_margin_mm;
extern const rsy__dist_rules rsy__rules_lobes;
extern const rsy__dist_rules rsy__rules_open_fraction;
extern const rsy__dist_rules rsy__rules_wall_mm;
extern const rsy__dist_rules rsy__rules_inclusion_mm;
extern const rsy__dist_rules rsy__rules_line_mm;
extern const rsy__dist_rules rsy__rules_cell_mm;

/** Smallest and largest value @p d can produce (categorical: over values of positive weight;
 *  the truncation bounds for the continuous kinds). */
void rsy__dist_bounds(const rsy_dist *d, double *lo, double *hi);

/**
 * Parse a distribution (a bare number or a <dist> object, docs/recipe.md) at key path @p kp.
 * If @p base is not NULL, @p item overrides it: keys it omits keep the base's values (when
 * it names another distribution kind, the base is ignored). The result is validated against
 * @p rules. @return RSY_OK or RSY_ECONFIG.
 */
rsy_status rsy__cfg_dist(const char *file, const cJSON *item, const char *kp,
                         const rsy__dist_rules *rules, const rsy_dist *base, rsy_dist *out);

/** Tissue table lookup by name: n-th entry or -1. */
int rsy__tissue_index(const rsy_tissue_table *t, const char *name);

/** MRI properties at one field strength: {"t1_ms", "t2_ms", "pd", "gd_mM"} (gd_mM optional,
 *  default 0), the object being key @p key of @p obj. Shared by tissue tables and priors. */
rsy_status rsy__cfg_mri_props(const char *file, const cJSON *obj, const char *kp, const char *key,
                              rsy_mri_props *out);

/** CT properties of a tissue table entry: key "ct" of @p obj, an object of the three phases
 *  ("non_contrast", "arterial", "portal_venous"), each {"hu", "sd"} (ct.c). */
rsy_status rsy__cfg_ct_props(const char *file, const cJSON *obj, const char *kp,
                             rsy_ct_props out[RSY_CT_N_PHASES]);

/**
 * Parse the "acquisition" object of a CT recipe (ct.c): phase, doses, noise model, the scanner
 * profile and the tissue table it names (every entry must have CT properties). MRI keys are
 * refused. @p table_path receives the table's file. @return RSY_OK or RSY_ECONFIG.
 */
rsy_status rsy__recipe_parse_ct(const char *file, const cJSON *acq, rsy_recipe *r,
                                const char *recipe_dir, const char *const *search_dirs,
                                char table_path[RSY_PATH_MAX]);

/** File stem of @p path ("dir/glioblastoma.json" -> "glioblastoma"), truncated to fit. */
void rsy__path_stem(const char *path, char *out, size_t n);

/** Load a tissue table or a disease file (all its lesion types, validated) without logging
 *  anything beyond the one error line (the public loaders wrap these). */
rsy_status rsy__tissue_table_load(rsy_tissue_table *out, const char *path);
rsy_status rsy__disease_load(rsy_disease *out, const char *path);

/** Load a texture preset without logging anything beyond the one error line (texture.c). */
rsy_status rsy__texture_preset_load(rsy_texture_preset *out, const char *path);

/**
 * Resolve @p ref, the value at key path @p kp (JSON item @p item) of the recipe @p file, to an
 * existing file (recipe.c): a name ending in @p ext (".json", ".h5") is a path relative to
 * @p recipe_dir; any other value must be a name [a-z0-9_-]+ and is looked up as NAME@p ext in
 * <recipe dir>/../SUBDIR, then for each search dir D: D/SUBDIR and D, then
 * RSY_DATADIR/SUBDIR. @p noun names the kind of file in messages ("prior").
 * @return RSY_OK or RSY_ECONFIG.
 */
rsy_status rsy__resolve_ref_ext(const char *file, const char *kp, const cJSON *item,
                                const char *ref, const char *recipe_dir,
                                const char *const *search_dirs, const char *subdir, const char *ext,
                                const char *noun, char out[RSY_PATH_MAX]);
/** rsy__resolve_ref_ext() with @p ext ".json" (priors, tissue tables, texture presets). */
rsy_status rsy__resolve_ref(const char *file, const char *kp, const cJSON *item, const char *ref,
                            const char *recipe_dir, const char *const *search_dirs,
                            const char *subdir, const char *noun, char out[RSY_PATH_MAX]);

/**
 * Parse the recipe's optional "texture" object (texture.c) into r->texture and
 * r->texture_spec (defaults filled in), loading the preset it names and, for a fitted model,
 * recording the model file found and the class mapping (not reading the model).
 * @return RSY_OK or RSY_ECONFIG.
 */
rsy_status rsy__recipe_parse_texture(const char *file, const cJSON *root, rsy_recipe *r,
                                     const char *recipe_dir, const char *const *search_dirs);

/**
 * Parse the "compartments" array of the lesion type object @p obj, whose key path is @p kp
 * ("" at the top level of a disease file, "lesion_types[1]" inside one), into @p p
 * (prior_compartment.c). Needs p->modalities, p->allowed and p->diameter_mm already filled.
 * @return RSY_OK or RSY_ECONFIG.
 */
rsy_status rsy__prior_parse_compartments(const char *file, const cJSON *obj, const char *kp,
                                         rsy_prior *p);

/**
 * The first compartment of @p p that cannot fit any lesion the prior's diameter_mm can draw
 * (a wall at least as thick as the largest radius, inclusions at least as large as the
 * largest lesion), or -1. *@p need_mm receives the smallest lesion diameter it would fit in.
 * Used after parsing a prior and again after a recipe overrides diameter_mm.
 */
int rsy__prior_size_conflict(const rsy_prior *p, double *need_mm);

/**
 * Check every tissue name a lesion type uses against @p table (loaded from @p table_path):
 * hosts, allowed tissues, reference, fixed tissues, confined_to, and the relative_to of the
 * properties of @p modality (RSY_PRIOR_MRI: "mri.relative_to", RSY_PRIOR_CT:
 * "ct.relative_to"). Errors name the prior's file and the key path under @p kp (the type's
 * key path in its file, "" or "lesion_types[1]"), e.g. "placement.hosts[0]".
 */
rsy_status rsy__prior_check_tissues(const rsy_prior *p, const char *kp, unsigned modality,
                                    const rsy_tissue_table *table, const char *table_path);

#endif /* RSY_CONFIG_INTERNAL_H */
