/*
 * run.c: the whole-dataset run, and merge. A run checks the memory estimate and the recipe
 * before touching the output directory, prepares it (or, resuming, checks it is the same run
 * and adopts its complete cases), then generates and writes the missing cases on a thread
 * pool and writes the dataset files last.
 *
 * The output does not depend on the thread count, on sharding or on interruptions: each case
 * draws only from its own streams (generator_internal.h), so a case's bytes depend on its
 * index alone; the exporter's result does not depend on the order in which cases arrive, nor
 * on whether a case was written, adopted from an earlier run or linked from a shard; and
 * nothing is reduced across cases here. Progress reports are serialised by a mutex; they
 * carry a count, never a result.
 *
 * Shard K of N holds the cases i with i % N == K (round-robin: shards differ in size by at
 * most one case); its finish writes a shard manifest, which merge checks and joins.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "generator_internal.h"

typedef struct run_ctx {
    const rsy_recipe *recipe;
    const char *out_dir;
    const rsy__gen_texture *texture; /* built once, read by every case */
    int texture_threads;             /* denoiser workers inside each case */
    const rsy_ct_fbp *ct_fbp;        /* CT: the reconstructor, built once, read by every case */
    rsy_export *exporter;
    const rsy_run_options *opt;
    const size_t *todo;   /* case indices this pass works on, increasing */
    unsigned char *kept;  /* resume: kept[i] = 1 when case i was adopted (recipe->cases) */
    size_t total;         /* cases of this run (of the shard when sharded) */
    pthread_mutex_t lock; /* serialises progress reports */
    size_t done;
} run_ctx;

rsy_run_options rsy_run_options_default(void)
{
    rsy_run_options o;
    memset(&o, 0, sizeof o);
    o.n_threads = 1;
    return o;
}

static void report_progress(run_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    size_t done = ++ctx->done;
    if (ctx->opt->progress)
        ctx->opt->progress(done, ctx->total, ctx->opt->progress_user);
    pthread_mutex_unlock(&ctx->lock);
}

static rsy_status run_case(void *vctx, size_t task, int worker)
{
    (void)worker;
    run_ctx *ctx = vctx;
    size_t index = ctx->todo[task];
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
    report_progress(ctx);
    return RSY_OK;
}

/* Resume: keep case todo[task] when its manifest is there and the exporter accepts its files
 * (every checksum); otherwise the case is generated again. Only running out of memory or a
 * cancellation stops the run here. */
static rsy_status adopt_task(void *vctx, size_t task, int worker)
{
    (void)worker;
    run_ctx *ctx = vctx;
    size_t index = ctx->todo[task];
    if (ctx->opt->cancel && *ctx->opt->cancel)
        return RSY_ECANCELED;
    char id[32], path[RSY_PATH_MAX];
    rsy_export_case_id(index, id, sizeof id);
    int n = snprintf(path, sizeof path, "%s/manifests/%s.json", ctx->out_dir, id);
    if (n < 0 || (size_t)n >= sizeof path || access(path, F_OK) != 0)
        return RSY_OK;
    rsy_status rc = rsy_export_adopt_case(ctx->exporter, index);
    if (rc == RSY_OK) {
        ctx->kept[index] = 1;
        report_progress(ctx);
        return RSY_OK;
    }
    if (rc == RSY_ENOMEM)
        return rc;
    rsy_log_warning("%s: %s is incomplete or damaged; generating it again", ctx->out_dir, id);
    return RSY_OK;
}

/* The cases of the run: all of them, or those of one shard. */
static rsy_status shard_cases(const rsy_recipe *r, const rsy_run_options *opt, size_t **out,
                              size_t *n_out)
{
    int64_t k = 0, n = 1;
    if (opt->shard_count >= 2) {
        k = opt->shard_index;
        n = opt->shard_count;
    }
    size_t count = r->cases > k ? (size_t)((r->cases - 1 - k) / n + 1) : 0;
    size_t *list = malloc((count ? count : 1) * sizeof *list);
    if (!list)
        return RSY_ENOMEM;
    for (size_t i = 0; i < count; i++)
        list[i] = (size_t)k + i * (size_t)n;
    *out = list;
    *n_out = count;
    return RSY_OK;
}

/* What the exporter needs beside the recipe: labels and the texture note (the texture model
 * is built once here; it is shared read-only by the cases). */
typedef struct run_setup {
    rsy__gen_texture *tex;
    const char *names[RSY_MAX_LABELS];
    unsigned char perilesional[RSY_MAX_LABELS];
    rsy_export_params ep;
} run_setup;

static rsy_status setup_run(const rsy_recipe *r, const char *out_dir, const rsy_run_options *opt,
                            run_setup *s)
{
    memset(s, 0, sizeof *s);
    /* Everything a case needs from the recipe beyond what the loader checked (every phantom
     * class in the tissue table, the output label count) is checked here, so such a recipe is
     * refused before the directory is touched. */
    rsy__gen_class *tab = NULL;
    int n_classes = 0;
    rsy_status rc = rsy__gen_class_table(r, &tab, &n_classes);
    if (rc != RSY_OK)
        return rc == RSY_EINVAL ? RSY_ECONFIG : rc;
    /* The texture model is built once per run (the preset's eigendecompositions cost about
     * as much as a 64³ field) and shared read-only; it draws no random numbers, so the cases
     * are what rsy_case_generate() makes on its own. */
    rc = rsy__gen_texture_create(r, tab, n_classes, &s->tex);
    free(tab);
    if (rc != RSY_OK)
        return rc == RSY_EINVAL ? RSY_ECONFIG : rc;
    int n_labels = rsy_generator_label_names(r, s->names, RSY_MAX_LABELS);
    rsy_generator_label_perilesional(r, s->perilesional, RSY_MAX_LABELS);
    rsy_export_params ep = {r,
                            out_dir,
                            s->names,
                            n_labels,
                            s->tex->note,
                            s->perilesional,
                            opt->layouts,
                            opt->formats,
                            opt->preview ? 1 : 0,
                            opt->shard_count >= 1 ? opt->shard_index : 0,
                            opt->shard_count >= 1 ? opt->shard_count : 0};
    s->ep = ep;
    return RSY_OK;
}

static rsy_status check_options(const rsy_recipe *r, const char *out_dir,
                                const rsy_run_options *opt)
{
    if (!r || !out_dir || !out_dir[0] || r->cases < 1)
        return RSY_EINVAL;
    if (opt->n_threads < 1) {
        rsy_log_error("thread count must be >= 1, got %d", opt->n_threads);
        return RSY_EINVAL;
    }
    if (opt->shard_count < 0 || (opt->shard_count >= 2 && (opt->shard_index < 0 ||
                                                           opt->shard_index >= opt->shard_count)) ||
        (opt->shard_count < 2 && opt->shard_index != 0)) {
        rsy_log_error("shard %lld of %lld: need 0 <= index < count", (long long)opt->shard_index,
                      (long long)opt->shard_count);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

rsy_status rsy_generator_run(const rsy_recipe *r, const char *out_dir, const rsy_run_options *opt)
{
    rsy_run_options defaults = rsy_run_options_default();
    if (!opt)
        opt = &defaults;
    rsy_status rc = check_options(r, out_dir, opt);
    if (rc != RSY_OK)
        return rc;
    if ((rc = rsy_init()) != RSY_OK)
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

    run_setup setup;
    if ((rc = setup_run(r, out_dir, opt, &setup)) != RSY_OK)
        return rc;

    rsy_export *ex = NULL;
    rsy_pool *pool = NULL;
    rsy_ct_fbp *fbp = NULL;
    size_t *cases = NULL, n_cases = 0, *todo = NULL, n_todo = 0;
    unsigned char *kept = NULL;
    run_ctx ctx = {r,    out_dir, setup.tex, 1, NULL, NULL, opt, NULL, NULL,
                   0,    PTHREAD_MUTEX_INITIALIZER,                   0};

    /* CT: one reconstructor (angles, filter, FFTW plans) serves every case read-only. */
    if (strcmp(r->modality, "ct") == 0) {
        rc = rsy__gen_ct_fbp_create(r, &fbp);
        if (rc != RSY_OK)
            goto done;
        ctx.ct_fbp = fbp;
    }
    if ((rc = shard_cases(r, opt, &cases, &n_cases)) != RSY_OK)
        goto done;
    ctx.total = n_cases;

    int resumed = 0;
    if (opt->resume)
        rc = rsy_export_resume_prepare(&setup.ep, &resumed);
    else if ((rc = rsy_export_prepare_dir(out_dir, opt->force)) == RSY_OK)
        rc = rsy_export_run_state_write(&setup.ep);
    if (rc != RSY_OK)
        goto done;
    if ((rc = rsy_export_begin(&ex, &setup.ep)) != RSY_OK)
        goto done;
    ctx.exporter = ex;
    if ((rc = rsy_pool_create(&pool, opt->n_threads)) != RSY_OK)
        goto done;

    todo = cases;
    n_todo = n_cases;
    if (resumed) {
        /* Adopt every complete case, remove the files of the others, generate those. */
        kept = calloc((size_t)r->cases, 1);
        todo = malloc((n_cases ? n_cases : 1) * sizeof *todo);
        if (!kept || !todo) {
            rc = RSY_ENOMEM;
            goto done;
        }
        ctx.kept = kept;
        ctx.todo = cases;
        if ((rc = rsy_pool_run(pool, n_cases, adopt_task, &ctx)) != RSY_OK)
            goto done;
        n_todo = 0;
        for (size_t i = 0; i < n_cases; i++)
            if (!kept[cases[i]])
                todo[n_todo++] = cases[i];
        if ((rc = rsy_export_resume_sweep(out_dir, kept, (size_t)r->cases)) != RSY_OK)
            goto done;
        rsy_log_info("%s: resuming: %zu complete case%s kept, %zu to generate", out_dir,
                     n_cases - n_todo, n_cases - n_todo == 1 ? "" : "s", n_todo);
    }

    /* Cases in flight share the threads: with at least as many cases as threads each case
     * uses one denoiser thread; with fewer cases, the spare threads go inside the cases. */
    size_t in_flight = n_todo < (size_t)opt->n_threads ? n_todo : (size_t)opt->n_threads;
    int texture_threads = opt->n_threads / (int)(in_flight > 0 ? in_flight : 1);
    ctx.texture_threads = texture_threads > 0 ? texture_threads : 1;
    ctx.todo = todo;
    rc = rsy_pool_run(pool, n_todo, run_case, &ctx);
    if (rc == RSY_ECANCELED)
        rsy_log_warning("%s: interrupted after %zu of %zu cases; the dataset is incomplete",
                        out_dir, ctx.done, n_cases);
    if (rc != RSY_OK)
        goto done;
    /* Only a complete run writes raresynth.json: its absence marks an incomplete dataset. */
    rc = rsy_export_finish(ex);

done:
    rsy_pool_destroy(pool);
    rsy_export_destroy(ex);
    rsy_ct_fbp_destroy(fbp);
    rsy__gen_texture_destroy(setup.tex);
    pthread_mutex_destroy(&ctx.lock);
    if (todo != cases)
        free(todo);
    free(cases);
    free(kept);
    return rc;
}

rsy_status rsy_generator_merge(const rsy_recipe *r, const char *const *shard_dirs,
                               size_t n_shards, const char *out_dir, const rsy_run_options *opt)
{
    rsy_run_options defaults = rsy_run_options_default();
    if (!opt)
        opt = &defaults;
    rsy_status rc = check_options(r, out_dir, opt);
    if (rc != RSY_OK)
        return rc;
    if (!shard_dirs || n_shards < 1 || opt->shard_count != 0) {
        rsy_log_error("merge: need at least one shard directory and an unsharded output");
        return RSY_EINVAL;
    }
    if ((rc = rsy_init()) != RSY_OK)
        return rc;
    run_setup setup;
    if ((rc = setup_run(r, out_dir, opt, &setup)) != RSY_OK)
        return rc;
    rc = rsy_export_merge(&setup.ep, shard_dirs, n_shards, opt->n_threads);
    rsy__gen_texture_destroy(setup.tex);
    return rc;
}
