/*
 * rsy_generator.h: imaging models and the per-case pipeline.
 *
 * One case is one pass down the pipeline (DESIGN.md section 2): phantom -> lesions ->
 * tissue property maps -> imaging model (MRI: spin echo, inversion recovery, spoiled GRE;
 * bias field; Rician noise) -> export. Cases are independent and run on a thread pool; each
 * draws its random numbers from its own streams (dataset seed, case index, stage), so the
 * output does not depend on the thread count.
 */
#ifndef RSY_GENERATOR_H
#define RSY_GENERATOR_H

#include <signal.h>

#include "rsy_config.h"
#include "rsy_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* MRI signal equations (reference/domain.md section 2.2); times in ms, magnitude signal      */
/* ---------------------------------------------------------------------------------------- */
/** Spin echo: PD·(1 − 2e^{−(TR−TE/2)/T1} + e^{−TR/T1})·e^{−TE/T2}. */
RSY_API double rsy_mri_signal_spin_echo(double pd, double t1_ms, double t2_ms, double tr_ms,
                                        double te_ms);
/** Inversion recovery (FLAIR): PD·|1 − 2e^{−TI/T1} + e^{−TR/T1}|·e^{−TE/T2}. */
RSY_API double rsy_mri_signal_inversion_recovery(double pd, double t1_ms, double t2_ms,
                                                 double tr_ms, double te_ms, double ti_ms);
/** Spoiled gradient echo: PD·sinα·(1−E1)/(1−cosα·E1)·e^{−TE/T2}, E1 = e^{−TR/T1}. */
RSY_API double rsy_mri_signal_spoiled_gre(double pd, double t1_ms, double t2_ms, double tr_ms,
                                          double te_ms, double flip_deg);
/** T1 shortened by gadolinium: 1/T1 = 1/T1₀ + r1·[Gd] (T1 in ms, r1 in 1/(mM·s)). */
RSY_API double rsy_mri_t1_with_gd(double t1_ms, double r1_per_mM_s, double gd_mM);
/** Signal of @p seq for tissue properties @p p (contrast applied if seq->contrast). */
RSY_API double rsy_mri_signal(const rsy_sequence *seq, const rsy_mri_props *p, double r1_per_mM_s);

/* ---------------------------------------------------------------------------------------- */
/* The per-case pipeline                                                                      */
/* ---------------------------------------------------------------------------------------- */
typedef struct rsy_case rsy_case;

/**
 * Generate case @p case_index of @p r entirely in memory (no file is touched).
 * On success @p *out is owned by the caller; release with rsy_case_destroy().
 * @return RSY_OK, RSY_EPLACEMENT, RSY_ENOMEM, RSY_ENUMERIC, RSY_EINVAL.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_case_generate(const rsy_recipe *r, size_t case_index,
                                                   rsy_case **out);
RSY_API void rsy_case_destroy(rsy_case *c);
/** Borrowed views of a generated case (valid until rsy_case_destroy). */
RSY_API int rsy_case_n_channels(const rsy_case *c);
RSY_API const rsy_volume *rsy_case_channel(const rsy_case *c, int i);
RSY_API const rsy_volume *rsy_case_labels(const rsy_case *c);    /* uint8 output labels */
RSY_API const rsy_volume *rsy_case_classes(const rsy_case *c);   /* uint16 working classes */
RSY_API const rsy_volume *rsy_case_instances(const rsy_case *c); /* uint16 */
RSY_API int rsy_case_n_lesions(const rsy_case *c);
RSY_API const char *rsy_case_findings(const rsy_case *c);

/** Output label dictionary of @p r: names in value order, [0] = "background". Returns the
 *  count (<= RSY_MAX_LABELS) and fills at most @p max entries of @p names (static or
 *  recipe-owned strings). */
RSY_API int rsy_generator_label_names(const rsy_recipe *r, const char **names, int max);

/** Timings of the stages of one case, seconds (for benchmarks). */
typedef struct rsy_case_timing {
    double phantom_s, lesions_s, texture_s, imaging_s, export_s;
} rsy_case_timing;
RSY_API rsy_case_timing rsy_case_get_timing(const rsy_case *c);

/* ---------------------------------------------------------------------------------------- */
/* Whole-dataset run                                                                          */
/* ---------------------------------------------------------------------------------------- */
/** Progress callback: called after each completed case, from the worker that finished it
 *  (serialised by the library). */
typedef void (*rsy_progress_fn)(size_t done, size_t total, void *user);

typedef struct rsy_run_options {
    int n_threads;                       /* cases in flight, >= 1 */
    int force;                           /* replace an earlier raresynth dataset in out_dir */
    uint64_t max_memory_bytes;           /* refuse if the estimate exceeds it; 0 = no limit */
    const volatile sig_atomic_t *cancel; /* when it becomes non-zero, stop after cases in
                                            flight and return RSY_ECANCELED; may be NULL */
    rsy_progress_fn progress;
    void *progress_user;
} rsy_run_options;

/** Defaults: 1 thread, no force, no memory limit, no cancel flag, no progress. */
RSY_API rsy_run_options rsy_run_options_default(void);

/**
 * Generate the whole dataset of @p r into @p out_dir: check the memory estimate, prepare the
 * directory, generate and write every case on a pool of n_threads, then write the dataset
 * files. Byte-identical output for the same recipe, seed and version whatever n_threads.
 * On failure or cancellation, temporary files are removed and raresynth.json is not written:
 * `validate` then reports the dataset as incomplete.
 * @return RSY_OK, RSY_ELIMIT (memory estimate over the limit; logged with both figures),
 *         RSY_EIO, RSY_ECANCELED, RSY_EPLACEMENT, RSY_ENOMEM, RSY_ENUMERIC.
 * @since 0.1
 */
RSY_API RSY_NODISCARD rsy_status rsy_generator_run(const rsy_recipe *r, const char *out_dir,
                                                   const rsy_run_options *opt);

#ifdef __cplusplus
}
#endif
#endif /* RSY_GENERATOR_H */
