/*
 * rsy_config.h: recipes, lesion priors and tissue tables, loaded from JSON and validated.
 *
 * This module is the only place that reads recipe JSON. Every key is checked: unknown keys
 * are errors (typos are caught), every error names the file, the key path and what was
 * expected, e.g.
 *     recipe.json: lesions[0].diameter_mm.median: expected a number > 0, got "abc"
 * The message goes to the log handler at RSY_LOG_ERROR (exactly one line per error) and the
 * function returns RSY_ECONFIG. The structs below are the validated result: plain data with
 * every default filled in, so later stages never look at JSON. docs/recipe.md documents
 * every key with its unit and default.
 */
#ifndef RSY_CONFIG_H
#define RSY_CONFIG_H

#include "rsy_core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RSY_NAME_MAX 64     /* identifiers: tissue, compartment, prior, sequence names */
#define RSY_TEXT_MAX 256    /* display names, descriptions */
#define RSY_PATH_MAX 4096
#define RSY_MAX_LESION_TYPES 16
#define RSY_MAX_COMPARTMENTS 8
#define RSY_MAX_SEQUENCES 8
#define RSY_MAX_TISSUES 48
#define RSY_MAX_SOURCES 32
#define RSY_MAX_CATEGORIES 16
#define RSY_MAX_HOST_TISSUES 8

/* A scalar drawn per case or per lesion. */
typedef enum {
    RSY_DIST_FIXED = 0,       /* value */
    RSY_DIST_UNIFORM = 1,     /* [min, max) */
    RSY_DIST_LOGNORMAL = 2,   /* median, gsd (geometric SD >= 1), truncated to [min, max] */
    RSY_DIST_NORMAL = 3,      /* mean, sd, truncated to [min, max] */
    RSY_DIST_CATEGORICAL = 4, /* integer values[] with weights[] (counts) */
    RSY_DIST_POISSON = 5      /* mean, then shifted by min and truncated to [min, max] */
} rsy_dist_kind;

typedef struct rsy_dist {
    rsy_dist_kind kind;
    double value;            /* FIXED */
    double median, gsd;      /* LOGNORMAL */
    double mean, sd;         /* NORMAL, POISSON (mean) */
    double min, max;         /* bounds for UNIFORM/LOGNORMAL/NORMAL/POISSON */
    int n_categories;        /* CATEGORICAL */
    double values[RSY_MAX_CATEGORIES];
    double weights[RSY_MAX_CATEGORIES];
} rsy_dist;

/** Draw one value of @p d (truncated kinds re-draw up to 1000 times, then clamp). */
RSY_API double rsy_dist_sample(const rsy_dist *d, rsy_rng *rng);
/** Probability mass or CDF helpers for tests: cumulative distribution at @p x. */
RSY_API double rsy_dist_cdf(const rsy_dist *d, double x);

/* ---------------------------------------------------------------------------------------- */
/* Tissue properties                                                                          */
/* ---------------------------------------------------------------------------------------- */
/** MRI properties of one tissue at one field strength. */
typedef struct rsy_mri_props {
    double t1_ms, t2_ms, pd; /* pd relative to pure water */
    double gd_mM;            /* gadolinium concentration after contrast, mM (0 = none) */
} rsy_mri_props;

/** CT contrast phases (domain.md section 1.1): the HU of enhancing tissues depends on the
 *  time since an iodinated contrast injection. @since 0.3 */
typedef enum {
    RSY_CT_PHASE_NON_CONTRAST = 0,
    RSY_CT_PHASE_ARTERIAL = 1,
    RSY_CT_PHASE_PORTAL_VENOUS = 2
} rsy_ct_phase;
#define RSY_CT_N_PHASES 3

/** CT properties of one tissue in one phase. @since 0.3 */
typedef struct rsy_ct_props {
    double hu;    /* mean attenuation, Hounsfield units */
    double sd_hu; /* SD of the attenuation within the class, drawn by the texture stage
                     (0 = uniform), HU */
} rsy_ct_props;

/** One entry of a tissue table (configs/tissues/ *.json). A table entry gives MRI properties
 *  ("1.5T" and "3T"), CT properties ("ct", every phase) or both; an MRI recipe needs the former
 *  for every tissue of its table, a CT recipe the latter. */
typedef struct rsy_tissue {
    char name[RSY_NAME_MAX];
    rsy_mri_props mri_1p5t, mri_3t;
    double texture_sd_fraction; /* relative SD of the tissue property within the class
                                   (0 = uniform); used by the texture stage */
    int has_mri;                /* 1 when "1.5T" and "3T" are given @since 0.3 */
    int has_ct;                 /* 1 when "ct" is given @since 0.3 */
    rsy_ct_props ct[RSY_CT_N_PHASES]; /* by rsy_ct_phase @since 0.3 */
} rsy_tissue;

typedef struct rsy_tissue_table {
    char name[RSY_NAME_MAX];
    char path[RSY_PATH_MAX]; /* file it was loaded from */
    int n_tissues;
    rsy_tissue tissues[RSY_MAX_TISSUES];
    int n_sources;
    char sources[RSY_MAX_SOURCES][RSY_TEXT_MAX];
} rsy_tissue_table;

/** Find a tissue by name; NULL if absent. */
RSY_API const rsy_tissue *rsy_tissue_table_find(const rsy_tissue_table *t, const char *name);
/** Properties at @p field_t (1.5 or 3.0; other values interpolate linearly in field strength
 *  between the two tables and clamp outside). */
RSY_API rsy_mri_props rsy_tissue_mri_at(const rsy_tissue *t, double field_t);

/* ---------------------------------------------------------------------------------------- */
/* Lesion priors (configs/priors/ *.json)                                                     */
/* ---------------------------------------------------------------------------------------- */
typedef enum {
    RSY_EXTENT_RADIUS_FRACTION = 0, /* inside the lesion surface: r/R(θ,φ) < fraction */
    RSY_EXTENT_MARGIN_MM = 1,       /* a shell outside the lesion surface, thickness in mm */
    RSY_EXTENT_WALL_MM = 2,         /* a shell just inside the lesion surface, thickness in mm:
                                       cyst wall, capsule, haemosiderin rim @since 0.4 */
    RSY_EXTENT_INCLUSIONS = 3,      /* small blobs inside the parent compartment: fat,
                                       calcification, enhancing nodules @since 0.4 */
    RSY_EXTENT_NETWORK = 4          /* a polygonal network of lines (Voronoi cell edges) inside
                                       the parent compartment: septal thickening @since 0.4 */
} rsy_extent_kind;

/** Where inclusions sit inside their parent compartment. @since 0.4 */
typedef enum {
    RSY_WHERE_ANYWHERE = 0,  /* uniformly inside the parent */
    RSY_WHERE_PERIPHERY = 1, /* centres in the outer third of the parent's radius */
    RSY_WHERE_CENTRE = 2     /* centres in the inner half of the parent's radius */
} rsy_inclusion_where;

/** How a compartment's MRI or CT properties are given. */
typedef enum {
    RSY_PROPS_ABSOLUTE = 0, /* mri_1p5t / mri_3t (MRI), ct[] (CT) as given */
    RSY_PROPS_RELATIVE = 1  /* MRI: factors times the host tissue's properties; CT: the host
                               tissue's HU plus hu_offset, per phase */
} rsy_props_mode;

typedef struct rsy_compartment {
    char name[RSY_NAME_MAX];         /* semantic label name, e.g. "enhancing_tumour" */
    char display_name[RSY_TEXT_MAX];
    rsy_extent_kind extent_kind;
    rsy_dist extent;                 /* RADIUS_FRACTION: fraction (0,1]; MARGIN_MM, WALL_MM:
                                        thickness mm; INCLUSIONS: volume fraction of the parent
                                        (0,1); NETWORK: line thickness mm. Drawn per lesion. */
    double absent_probability;       /* chance the compartment is absent from a lesion, [0, 1)
                                        (the JSON key "probability" is the chance it is present,
                                        1 minus this); 0 = always present, so a zero-initialised
                                        prior built in C keeps every compartment. An absent
                                        compartment has extent 0 (its voxels go to the
                                        compartment around it), and so have its inclusions and
                                        networks @since 0.4 */
    char parent[RSY_NAME_MAX];       /* INCLUSIONS, NETWORK: the compartment they lie in
                                        (listed earlier); "" otherwise @since 0.4 */
    rsy_dist inclusion_diameter_mm;  /* INCLUSIONS: diameter of each blob @since 0.4 */
    rsy_inclusion_where where;       /* INCLUSIONS @since 0.4 */
    rsy_dist cell_mm;                /* NETWORK: mean cell diameter (secondary lobule) @since 0.4 */
    int n_confined;                  /* 0 = any tissue the lesion is allowed in */
    char confined_to[RSY_MAX_HOST_TISSUES][RSY_NAME_MAX];
    /* MRI */
    int has_mri;                     /* 1 when "mri" is given @since 0.4 */
    rsy_props_mode props_mode;
    rsy_mri_props mri_1p5t, mri_3t;  /* ABSOLUTE */
    char relative_to[RSY_NAME_MAX];  /* RELATIVE: host tissue name */
    double t1_factor, t2_factor, pd_factor; /* RELATIVE */
    double gd_mM;                    /* RELATIVE: absolute Gd concentration after contrast */
    /* CT @since 0.4 */
    int has_ct;                      /* 1 when "ct" is given */
    rsy_props_mode ct_mode;
    rsy_ct_props ct[RSY_CT_N_PHASES];   /* ABSOLUTE: hu and sd_hu per phase; RELATIVE: hu is
                                           the offset added to the host's HU of that phase,
                                           sd_hu absolute */
    char ct_relative_to[RSY_NAME_MAX];  /* RELATIVE: host tissue name */
    double texture_sd_fraction;
} rsy_compartment;

/** Placement rules (docs/priors.md). Every rule puts the lesion centre in one of the hosts;
 *  the distance rules further ask that the centre lie at a distance in
 *  [min_distance_mm, max_distance_mm] from the nearest voxel of the reference tissues. */
typedef enum {
    RSY_PLACE_HOST_TISSUE = 0,         /* centre in one of the host tissues */
    RSY_PLACE_PERIVENTRICULAR = 1,     /* near the ventricles (reference) @since 0.4 */
    RSY_PLACE_JUXTACORTICAL = 2,       /* white matter touching cortex (reference) @since 0.4 */
    RSY_PLACE_GREY_WHITE_JUNCTION = 3, /* hosts GM/WM within the distance of the other @since 0.4 */
    RSY_PLACE_EXTRA_AXIAL = 4,         /* outside the brain against the dura/inner skull table
                                          (reference): broad dural base, the flattest axis
                                          normal to the reference surface @since 0.4 */
    RSY_PLACE_SUBPLEURAL = 5,          /* lung within the distance of the pleura (reference:
                                          the non-lung tissues around the lung) @since 0.4 */
    RSY_PLACE_SUBCAPSULAR = 6,         /* organ within the distance of its capsule (reference:
                                          the tissues around the organ) @since 0.4 */
    RSY_PLACE_SUBEPENDYMAL = 7         /* against the ventricular wall (reference ventricles),
                                          protruding into the ventricle @since 0.4 */
} rsy_placement_rule;

/** Orientation of the lesion's long axis. @since 0.4 */
typedef enum {
    RSY_ORIENT_RANDOM = 0,     /* uniform on the sphere */
    RSY_ORIENT_RADIAL = 1,     /* long axis along the gradient of the distance to the reference
                                  tissues (Dawson's fingers: perpendicular to the ventricles) */
    RSY_ORIENT_TANGENTIAL = 2  /* shortest axis along that gradient (flat against the reference:
                                  a dural base, a subpleural plaque) */
} rsy_orientation;

/** The shape of a lesion surface. @since 0.4 */
typedef enum {
    RSY_SHAPE_SOLID = 0, /* star-shaped lobulated ellipsoid r(θ,φ) = R(1 + Σ a_lm Y_lm) */
    RSY_SHAPE_CYST = 1   /* as SOLID, thin-walled: a WALL_MM compartment lines the surface and
                            the interior is the fluid compartment */
} rsy_shape_kind;

/** Mass effect of a lesion type on its surroundings. @since 0.4 */
typedef struct rsy_mass_effect {
    int enabled;
    rsy_dist strength;  /* outward displacement of the lesion surface's surroundings as a
                           fraction of the lesion radius, (0, 1) */
    double range_mm;    /* decay length of the displacement beyond the surface, > 0 */
    int n_fixed;        /* tissues never moved (bone): they keep their voxels and the
                           displacement fades to 0 at them */
    char fixed[RSY_MAX_HOST_TISSUES][RSY_NAME_MAX];
} rsy_mass_effect;

/** One lesion type: what a recipe's lesions[] entry samples. A disease file
 *  (configs/priors/ *.json) holds one type at its top level or several in "lesion_types". */
typedef struct rsy_prior {
    char name[RSY_NAME_MAX];           /* unique name of the type in a recipe: the file stem,
                                          or "stem/type" for a type of "lesion_types" */
    char disease[RSY_NAME_MAX];        /* file stem, e.g. "tuberous-sclerosis" @since 0.4 */
    char type_name[RSY_NAME_MAX];      /* "" at top level, else the type's "name" @since 0.4 */
    char display_name[RSY_TEXT_MAX];
    char organ[RSY_NAME_MAX];          /* "brain", "lung", "liver", "kidney" */
    char path[RSY_PATH_MAX];           /* file it was loaded from */
    unsigned modalities;               /* bit 0 MRI, bit 1 CT (RSY_PRIOR_MRI/CT) @since 0.4 */
    double probability;                /* chance a case has this type at all (default 1;
                                          a recipe's "probability" overrides) @since 0.4 */
    rsy_dist count;                    /* lesions per case when present */
    rsy_dist diameter_mm;              /* diameter of the lesion surface (compartments with
                                          radius_fraction <= 1), mm */
    /* shape */
    rsy_shape_kind shape_kind;         /* @since 0.4 */
    rsy_dist elongation;               /* ratio of longest to shortest axis, >= 1 */
    rsy_dist flatness;                 /* ratio of middle to shortest axis, >= 1 (default
                                          fixed 1: prolate) @since 0.4 */
    int lobulation_lmax;               /* spherical-harmonic degrees 2..lmax (0 = none) */
    double lobulation_amplitude;       /* RMS relative radius perturbation */
    double roughness_amplitude;        /* fine roughness: RMS relative radius perturbation of
                                          a smooth random field on the sphere @since 0.4 */
    double roughness_scale_mm;         /* its correlation length on the surface @since 0.4 */
    rsy_dist lobes;                    /* sub-lesions whose union is the lesion (popcorn,
                                          clover-leaf cysts); default fixed 1 @since 0.4 */
    rsy_orientation orientation;       /* @since 0.4 */
    /* placement */
    rsy_placement_rule rule;
    int n_hosts;
    char hosts[RSY_MAX_HOST_TISSUES][RSY_NAME_MAX]; /* tissues the centre may lie in */
    int n_allowed;
    char allowed[RSY_MAX_HOST_TISSUES][RSY_NAME_MAX]; /* tissues the lesion may replace */
    int n_reference;                   /* distance rules: reference tissues @since 0.4 */
    char reference[RSY_MAX_HOST_TISSUES][RSY_NAME_MAX];
    double min_distance_mm, max_distance_mm; /* distance rules @since 0.4 */
    double zone_weights[3];            /* relative chance of the upper, middle and lower third
                                          of the hosts' superior-inferior extent (default equal)
                                          @since 0.4 */
    double min_separation_mm;          /* between lesion surfaces of this prior */
    int max_attempts;
    rsy_mass_effect mass_effect;       /* @since 0.4 */
    /* compartments, listed in label order; the lesion surface is radius_fraction = 1 */
    int n_compartments;
    rsy_compartment compartments[RSY_MAX_COMPARTMENTS];
    int n_sources;
    char sources[RSY_MAX_SOURCES][RSY_TEXT_MAX];
} rsy_prior;

#define RSY_PRIOR_MRI 1u
#define RSY_PRIOR_CT 2u

/** A disease file: its lesion types. @since 0.4 */
typedef struct rsy_disease {
    char name[RSY_NAME_MAX];           /* file stem */
    char display_name[RSY_TEXT_MAX];
    char organ[RSY_NAME_MAX];
    char description[RSY_TEXT_MAX];
    char path[RSY_PATH_MAX];
    unsigned modalities;
    int n_types;
    rsy_prior types[RSY_MAX_LESION_TYPES];
} rsy_disease;

/* ---------------------------------------------------------------------------------------- */
/* Recipe                                                                                     */
/* ---------------------------------------------------------------------------------------- */
typedef enum { RSY_SEX_RANDOM = 0, RSY_SEX_FEMALE = 1, RSY_SEX_MALE = 2 } rsy_sex;

typedef struct rsy_phantom_spec {
    char family[RSY_NAME_MAX]; /* "head", "thorax", "abdomen" */
    int64_t dims[3];
    double spacing_mm[3];
    rsy_sex sex;               /* RANDOM: female with probability female_fraction */
    double female_fraction;
    double age_min_years, age_max_years;
    double deformation_mm;       /* RMS displacement of the random diffeomorphism */
    double deformation_scale_mm; /* its correlation length */
} rsy_phantom_spec;

/** One lesion type in a recipe: a loaded prior plus the recipe's overrides (already merged). */
typedef struct rsy_lesion_spec {
    rsy_prior prior;
    double probability; /* chance a case has lesions of this type at all */
} rsy_lesion_spec;

typedef enum {
    RSY_SEQ_SPIN_ECHO = 0,
    RSY_SEQ_INVERSION_RECOVERY = 1,
    RSY_SEQ_SPOILED_GRE = 2
} rsy_sequence_kind;

typedef struct rsy_sequence {
    char name[RSY_NAME_MAX]; /* channel name, e.g. "T1w", "FLAIR" */
    rsy_sequence_kind kind;
    double tr_ms, te_ms, ti_ms, flip_deg;
    int contrast;                       /* 1 = post-gadolinium */
    double noise_percent;               /* Rician σ as % of the reference tissue's signal */
    char noise_reference[RSY_NAME_MAX]; /* tissue name (BrainWeb convention) */
} rsy_sequence;

typedef struct rsy_mri_spec {
    double field_t;                   /* 1.5 or 3.0 */
    double gd_r1_per_mM_s;            /* relaxivity r1 of the contrast agent, 1/(mM·s) */
    double bias_amplitude;            /* multiplicative field spans 1 ± amplitude over the FOV */
    double bias_scale_mm;             /* smoothness of the bias field */
    int n_sequences;
    rsy_sequence sequences[RSY_MAX_SEQUENCES];
} rsy_mri_spec;

/** Reconstruction kernel of a CT scanner profile (same values as rsy_ct_kernel of
 *  rsy_generator.h). @since 0.3 */
typedef enum {
    RSY_CT_WINDOW_RAMLAK = 0,
    RSY_CT_WINDOW_SHEPP_LOGAN = 1,
    RSY_CT_WINDOW_HANN = 2
} rsy_ct_window;

/** A CT scanner profile (configs/scanners/ *.json, docs/recipe.md). @since 0.3 */
typedef struct rsy_ct_scanner {
    char name[RSY_NAME_MAX]; /* file stem, e.g. "ct-standard" */
    char path[RSY_PATH_MAX]; /* file it was loaded from */
    rsy_ct_window kernel;
    double i0_photons;          /* unattenuated photons per bin and view at dose 1, for a
                                   1 mm slice (times the thickness in mm) */
    double electronic_noise_sd; /* counts */
    double mu_water_per_mm;     /* linear attenuation of water */
    double slice_thickness_mm;  /* width of the rectangular slice profile, >= the z spacing
                                   (0 in a profile: the recipe's z spacing) */
    double psf_fwhm_mm;         /* in-plane Gaussian PSF (0 = none) */
    int n_views, n_det;         /* 0: from the slice size */
    int n_sources;
    char sources[RSY_MAX_SOURCES][RSY_TEXT_MAX];
} rsy_ct_scanner;

/** CT noise models: the projection-domain dose model or the calibrated image-domain one. */
typedef enum { RSY_CT_NOISE_PROJECTION = 0, RSY_CT_NOISE_FAST = 1 } rsy_ct_noise_model;

/** The acquisition of a CT recipe: one output channel per dose fraction, all of one subject.
 *  @since 0.3 */
typedef struct rsy_ct_spec {
    rsy_ct_scanner scanner;
    rsy_ct_phase phase;
    rsy_ct_noise_model noise_model;
    int n_doses;
    double doses[RSY_MAX_SEQUENCES]; /* dose fractions in (0, 1], distinct */
} rsy_ct_spec;

typedef enum { RSY_LABELS_LESIONS = 0, RSY_LABELS_TISSUES_AND_LESIONS = 1 } rsy_label_set;

/** How tissue texture is made (docs/recipe.md, "texture"). */
typedef enum {
    RSY_TEXTURE_UNIFORM = 0, /* every voxel of a class has the class's properties */
    RSY_TEXTURE_PRESET = 1,  /* a field u drawn by the diffusion sampler from an analytic
                                preset (configs/textures/ *.json) modulates the properties */
    RSY_TEXTURE_FITTED = 2   /* as PRESET, the prior of each mapped class being a class of a
                                texture model fitted on a real scan (NAME.h5, `raresynth
                                fit-texture`); unmapped classes fall back to the preset */
} rsy_texture_model;

/* ---------------------------------------------------------------------------------------- */
/* Texture presets (configs/textures/ *.json) and the recipe's texture settings               */
/* ---------------------------------------------------------------------------------------- */
#define RSY_MAX_TEXTURE_CLASSES 64    /* classes (tissues, compartments) named by a preset */
#define RSY_MAX_TEXTURE_COMPONENTS 16 /* components per class (RSY_TEXTURE_MAX_COMPONENTS) */

/** One stationary Gaussian component of a preset class: the same fields as
 *  rsy_texture_preset_component of rsy_generator.h (squared-exponential correlation). */
typedef struct rsy_texture_component_spec {
    double weight;            /* mixture weight, > 0 (normalised per class) */
    double variance;          /* marginal variance of u, > 0 */
    double corr_length_mm[3]; /* correlation length along i, j, k, > 0 */
    double mean;              /* mean of u */
} rsy_texture_component_spec;

/** The mixture of one class, matched to the working class map by name (a phantom tissue or a
 *  lesion compartment). */
typedef struct rsy_texture_class_spec {
    char name[RSY_NAME_MAX];
    int n_components;
    rsy_texture_component_spec components[RSY_MAX_TEXTURE_COMPONENTS];
} rsy_texture_class_spec;

/** An analytic texture preset: per class name, a Gaussian mixture over p×p×p patches of u. */
typedef struct rsy_texture_preset {
    char name[RSY_NAME_MAX]; /* file stem, e.g. "brain-mri" */
    char path[RSY_PATH_MAX]; /* file it was loaded from */
    int patch_size;          /* p, odd, 1..9 */
    int n_classes;
    rsy_texture_class_spec classes[RSY_MAX_TEXTURE_CLASSES];
    int n_sources;
    char sources[RSY_MAX_SOURCES][RSY_TEXT_MAX];
} rsy_texture_preset;

/** Find a class of @p p by name; NULL if absent. @since 0.2 */
RSY_API const rsy_texture_class_spec *rsy_texture_preset_find(const rsy_texture_preset *p,
                                                              const char *name);

/** Sampler of the texture field (values as rsy_texture_sampler of rsy_generator.h). */
typedef enum {
    RSY_TEXTURE_METHOD_EULER = 0,
    RSY_TEXTURE_METHOD_HEUN = 1,
    RSY_TEXTURE_METHOD_STOCHASTIC = 2
} rsy_texture_method;

/** One entry of a fitted model's class mapping: a working class (phantom tissue or lesion
 *  compartment name) and the model class whose mixture it takes ("class_2"). */
typedef struct rsy_texture_class_map {
    char working[RSY_NAME_MAX];
    char model[RSY_NAME_MAX];
} rsy_texture_class_map;

/** The recipe's "texture" object beyond the model (used when the model is PRESET or FITTED).
 *  The loader only checks that the fitted model file exists: the generator reads it and checks
 *  the mapping's model class names before any output is written. */
typedef struct rsy_texture_spec {
    rsy_texture_method sampler; /* default HEUN */
    int steps;                  /* noise levels, default 18 */
    double sigma_min;           /* default 0.002 */
    double sigma_max;           /* default 80 */
    int n_offsets;              /* tilings averaged per denoiser evaluation, default 1 */
    rsy_texture_preset preset;  /* PRESET: the loaded preset file; FITTED: the fallback preset
                                   of the unmapped classes, all zero (name "") when none */
    char fitted_name[RSY_NAME_MAX]; /* FITTED: the model's name ("brain-colin27") or the
                                       file's stem when given as a path */
    char fitted_path[RSY_PATH_MAX]; /* FITTED: the model file found (NAME.h5) */
    int n_class_map;                /* FITTED: entries of class_map, >= 1 */
    rsy_texture_class_map class_map[RSY_MAX_TEXTURE_CLASSES]; /* FITTED: working -> model */
} rsy_texture_spec;

typedef struct rsy_recipe {
    char path[RSY_PATH_MAX];          /* file it was loaded from */
    char sha256[65];                  /* of the file's bytes (recipe hash in manifests) */
    char *json;                       /* the file's text, embedded in the dataset manifest */
    char name[RSY_NAME_MAX];          /* dataset name, [A-Za-z0-9]+ */
    int dataset_id;                   /* nnU-Net NNN, 1..999 */
    char description[RSY_TEXT_MAX];
    int64_t cases;
    uint64_t seed;
    rsy_phantom_spec phantom;
    int n_lesion_types;
    rsy_lesion_spec lesions[RSY_MAX_LESION_TYPES];
    char modality[RSY_NAME_MAX];      /* "mri" or "ct" */
    rsy_mri_spec mri;
    rsy_tissue_table tissues;         /* loaded from the tissue table the recipe names */
    rsy_texture_model texture;
    rsy_label_set label_set;
    rsy_texture_spec texture_spec;    /* sampler settings and, for PRESET, the preset */
    rsy_ct_spec ct;                   /* modality "ct" (mri.n_sequences is then 0) @since 0.3 */
} rsy_recipe;

/** Output channels of @p r: its sequences (MRI) or its doses (CT). @since 0.3 */
RSY_API int rsy_recipe_n_channels(const rsy_recipe *r);
/** Name of channel @p i (nnU-Net channel_names): the sequence's name for MRI, "CT" for every
 *  CT channel (nnU-Net then applies its CT normalisation to each). NULL when out of range.
 *  @since 0.3 */
RSY_API const char *rsy_recipe_channel_name(const rsy_recipe *r, int i);
/** "non_contrast", "arterial" or "portal_venous". @since 0.3 */
RSY_API const char *rsy_ct_phase_name(rsy_ct_phase phase);
/** The JSON name of a placement rule ("host_tissue", "periventricular", ...; "unknown" out of
 *  range). @since 0.4 */
RSY_API const char *rsy_placement_rule_name(rsy_placement_rule rule);
/** "ram-lak", "shepp-logan" or "hann". @since 0.3 */
RSY_API const char *rsy_ct_window_name(rsy_ct_window kernel);

/**
 * Load and validate a recipe, the priors it names and its tissue table.
 * Priors named "NAME" are looked up as "<recipe dir>/../priors/NAME.json", then in each
 * directory of @p search_dirs (NULL-terminated, may be NULL); a name ending in ".json" is a
 * path relative to the recipe's directory. Tissue tables likewise under "../tissues/", texture
 * presets under "../textures/", fitted texture models as NAME.h5 under "../textures/" (a name
 * ending in ".h5" is a path relative to the recipe's directory).
 * On success @p *out is owned by the caller; release with rsy_recipe_destroy().
 * @return RSY_OK, RSY_ECONFIG (malformed JSON, unknown key, wrong type, out of range,
 *         missing prior or tissue file: one line logged naming file, key and expectation),
 *         RSY_EIO (recipe unreadable), RSY_ENOMEM.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_recipe_load(rsy_recipe **out, const char *path,
                                                 const char *const *search_dirs);
/** Free a recipe and its embedded text; NULL is a no-op. @since 0.1 */
RSY_API void rsy_recipe_destroy(rsy_recipe *r);

/** Load one prior file on its own (for tests): a file with its lesion type at the top level
 *  (a file with "lesion_types" gives RSY_ECONFIG naming the key: use rsy_disease_load()).
 *  Ownership: caller frees with free(). @return as rsy_recipe_load(). @since 0.1 */
RSY_API RSY_NODISCARD rsy_status rsy_prior_load(rsy_prior **out, const char *path);
/** Load a disease file (one lesion type at its top level, or several in "lesion_types") for
 *  `priors list/show` and tests. Ownership: caller frees with free().
 *  @return as rsy_recipe_load(). @since 0.4 */
RSY_API RSY_NODISCARD rsy_status rsy_disease_load(rsy_disease **out, const char *path);
/** Load one tissue table on its own. Ownership: caller frees with free(). */
RSY_API RSY_NODISCARD rsy_status rsy_tissue_table_load(rsy_tissue_table **out,
                                                       const char *path);
/** Load one CT scanner profile (configs/scanners/ *.json) on its own. Ownership: caller frees
 *  with free(). @return as rsy_recipe_load(). @since 0.3 */
RSY_API RSY_NODISCARD rsy_status rsy_ct_scanner_load(rsy_ct_scanner **out, const char *path);
/** Load one texture preset (configs/textures/ *.json) on its own, validated as a recipe's
 *  preset is. On success @p *out is owned by the caller; release with free().
 *  @return as rsy_recipe_load(). @since 0.2 */
RSY_API RSY_NODISCARD rsy_status rsy_texture_preset_load(rsy_texture_preset **out,
                                                         const char *path);

/**
 * Peak memory in bytes that generating with @p n_workers cases in flight needs (volumes of
 * all stages per case, plus the export buffers), for refusing a recipe before any work.
 * @since 0.1
 */
RSY_API uint64_t rsy_recipe_memory_estimate(const rsy_recipe *r, int n_workers);

#ifdef __cplusplus
}
#endif
#endif /* RSY_CONFIG_H */
