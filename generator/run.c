/*
 * run.c: the whole-dataset run. Checks the memory estimate before touching the output
 * directory, prepares it, then generates and writes the cases on a thread pool and writes
 * the dataset files last.
 *
 * The output does not depend on the thread count: each case draws only from its own streams
 * (generator_internal.h), the exporter's result does not depend on the order in which cases
 * arrive, and nothing is reduced across cases here. Progress reports are serialised by a
 * mutex; they carry a count, never a result.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "generator_internal.h"

typedef struct run_ctx {
    const rsy_recipe *recipe;
    const rsy__gen_texture *texture; /* built once, read by every case */
    int texture_threads;             /* denoiser workers inside each case */
    const rsy_ct_fbp *ct_fbp;        /* CT: the reconstructor, built once, read by every case */
    rsy_export *exporter;
    const rsy_run_options *opt;
    pthread_mutex_t lock; /* serialises progress reports */
    size_t done;
} run_ctx;

rsy_run_options rsy_run_options_default(void)
{
    rsy_run_options o = {1, 0, 0, NULL, NULL, NULL};
    return o;
}

static rsy_status run_case(void *vctx, size_t index, int worker)
{
    (void)worker;
    run_ctx *ctx = vctx;
    if (ctx->opt->cancel && *ctx->opt->cancel)
        return RSY_ECANCELED;

    rsy_case *c = NULL;
    rsy_status rc =
        rsy__case_generate(ctx->recipe, index, ctx->texture, ctx->ct_fbp, ctx->texture_threads, &c);
    if (rc != RSY_OK) {
        rsy_log_error("case %zu: generation failed: %s", index, rsy_strerror(rc));
        return rc;
    }
    rsy_case_data data;
    rsy__case_data(c, &data);
    double t0 = rsy_time_now();
    rc = rsy_export_write_case(ctx->exporter, &data);
    rsy__case_set_export_time(c, rsy_time_now() - t0);
    rsy_case_timing t = rsy_case_get_timing(c);
    rsy_case_destroy(c);
    if (rc != RSY_OK) {
        rsy_log_error("case %zu: writing failed: %s", index, rsy_strerror(rc));
        return rc;
    }
    rsy_log_debug("case %zu: phantom %.3f s, lesions %.3f s, texture %.3f s, imaging %.3f s, "
                  "export %.3f s",
                  index, t.phantom_s, t.lesions_s, t.texture_s, t.imaging_s, t.export_s);

    pthread_mutex_lock(&ctx->lock);
    size_t done = ++ctx->done;
    if (ctx->opt->progress)
        ctx->opt->progress(done, (size_t)ctx->recipe->cases, ctx->opt->progress_user);
    pthread_mutex_unlock(&ctx->lock);
    return RSY_OK;
}

rsy_status rsy_generator_run(const rsy_recipe *r, const char *out_dir, const rsy_run_options *opt)
{
    if (!r || !out_dir || !out_dir[0] || r->cases < 1)
        return RSY_EINVAL;
    rsy_run_options defaults = rsy_run_options_default();
    if (!opt)
        opt = &defaults;
    if (opt->n_threads < 1) {
        rsy_log_error("thread count must be >= 1, got %d", opt->n_threads);
        return RSY_EINVAL;
    }
    rsy_status rc = rsy_init();
    if (rc != RSY_OK)
        return rc;

    /* Refuse before the directory is touched (DESIGN.md section 10: memory is bounded and
     * stated). */
    uint64_t need = rsy_recipe_memory_estimate(r, opt->n_threads);
    if (opt->max_memory_bytes > 0 && need > opt->max_memory_bytes) {
        const double gib = 1024.0 * 1024.0 * 1024.0;
        rsy_log_error("recipe needs about %.3g GiB with -j %d, over the limit of %.3g GiB "
                      "(--max-memory)",
                      (double)need / gib, opt->n_threads, (double)opt->max_memory_bytes / gib);
        return RSY_ELIMIT;
    }

    /* Everything a case needs from the recipe beyond what the loader checked (every phantom
     * class in the tissue table, the output label count) is checked here, so such a recipe is
     * refused before the directory is touched. */
    rsy__gen_class *tab = NULL;
    int n_classes = 0;
    rc = rsy__gen_class_table(r, &tab, &n_classes);
    if (rc != RSY_OK)
        return rc == RSY_EINVAL ? RSY_ECONFIG : rc;
    /* The texture model is built once per run (the preset's eigendecompositions cost about
     * as much as a 64³ field) and shared read-only; it draws no random numbers, so the cases
     * are what rsy_case_generate() makes on its own. */
    rsy__gen_texture *tex = NULL;
    rc = rsy__gen_texture_create(r, tab, n_classes, &tex);
    free(tab);
    if (rc != RSY_OK)
        return rc == RSY_EINVAL ? RSY_ECONFIG : rc;

    const char *names[RSY_MAX_LABELS];
    unsigned char perilesional[RSY_MAX_LABELS];
    int n_labels = rsy_generator_label_names(r, names, RSY_MAX_LABELS);
    rsy_generator_label_perilesional(r, perilesional, RSY_MAX_LABELS);
    rsy_export_params ep = {r, out_dir, names, n_labels, tex->note, perilesional};
    rsy_export *ex = NULL;
    rsy_pool *pool = NULL;
    /* Cases in flight share the threads: with at least as many cases as threads each case
     * uses one denoiser thread; with fewer cases, the spare threads go inside the cases. */
    int64_t in_flight = r->cases < opt->n_threads ? r->cases : opt->n_threads;
    int texture_threads = opt->n_threads / (int)(in_flight > 0 ? in_flight : 1);
    rsy_ct_fbp *fbp = NULL;
    run_ctx ctx = {r,   tex, texture_threads > 0 ? texture_threads : 1, NULL, NULL,
                   opt, PTHREAD_MUTEX_INITIALIZER,                      0};

    /* CT: one reconstructor (angles, filter, FFTW plans) serves every case read-only. */
    if (strcmp(r->modality, "ct") == 0) {
        rc = rsy__gen_ct_fbp_create(r, &fbp);
        if (rc != RSY_OK)
            goto done;
        ctx.ct_fbp = fbp;
    }

    rc = rsy_export_prepare_dir(out_dir, opt->force);
    if (rc != RSY_OK)
        goto done;
    rc = rsy_export_begin(&ex, &ep);
    if (rc != RSY_OK)
        goto done;
    ctx.exporter = ex;
    rc = rsy_pool_create(&pool, opt->n_threads);
    if (rc != RSY_OK)
        goto done;
    rc = rsy_pool_run(pool, (size_t)r->cases, run_case, &ctx);
    if (rc == RSY_ECANCELED)
        rsy_log_warning("%s: interrupted after %zu of %lld cases; the dataset is incomplete",
                        out_dir, ctx.done, (long long)r->cases);
    if (rc != RSY_OK)
        goto done;
    /* Only a complete run writes raresynth.json: its absence marks an incomplete dataset. */
    rc = rsy_export_finish(ex);

done:
    rsy_pool_destroy(pool);
    rsy_export_destroy(ex);
    rsy_ct_fbp_destroy(fbp);
    rsy__gen_texture_destroy(tex);
    pthread_mutex_destroy(&ctx.lock);
    return rc;
}
