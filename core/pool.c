/*
 * pool.c: a parallel for over task indices on POSIX threads.
 *
 * Each rsy_pool_run() starts n_threads - 1 helper threads and the calling thread works as
 * worker 0; they are joined before it returns, so a run holds no thread beyond its call and
 * the pool object is just its configuration. Tasks are claimed under a mutex in increasing
 * index order. After a failure no further task is claimed; because claiming is in index order,
 * every task below the first failing index has been started and is finished before the run
 * returns, so the failure reported (the lowest failing index) depends only on which tasks fail,
 * never on thread timing.
 */
#include <pthread.h>
#include <string.h>

#include "core_internal.h"

/* Largest accepted thread count (rsy_core.h). */
#define POOL_MAX_THREADS 1024

struct rsy_pool {
    int n_threads;
};

typedef struct {
    pthread_mutex_t mutex;
    size_t next; /* next index to claim */
    size_t n_tasks;
    int stop;          /* a task failed: claim no more */
    size_t fail_index; /* lowest failing index so far, n_tasks if none */
    rsy_status fail_rc;
    rsy_task_fn fn;
    void *ctx;
} pool_run;

typedef struct {
    pool_run *run;
    int worker;
} pool_worker;

static void work(pool_run *run, int worker)
{
    for (;;) {
        pthread_mutex_lock(&run->mutex);
        if (run->stop || run->next >= run->n_tasks) {
            pthread_mutex_unlock(&run->mutex);
            return;
        }
        size_t i = run->next++;
        pthread_mutex_unlock(&run->mutex);

        rsy_status rc = run->fn(run->ctx, i, worker);
        if (rc != RSY_OK) {
            pthread_mutex_lock(&run->mutex);
            run->stop = 1;
            if (i < run->fail_index) {
                run->fail_index = i;
                run->fail_rc = rc;
            }
            pthread_mutex_unlock(&run->mutex);
        }
    }
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    work(w->run, w->worker);
    return NULL;
}

rsy_status rsy_pool_create(rsy_pool **out, int n_threads)
{
    if (!out)
        return RSY_EINVAL;
    *out = NULL;
    if (n_threads < 1 || n_threads > POOL_MAX_THREADS) {
        rsy_log_error("thread count %d outside [1, %d]", n_threads, POOL_MAX_THREADS);
        return RSY_EINVAL;
    }
    rsy_pool *p = calloc(1, sizeof *p);
    if (!p) {
        rsy_log_error("cannot allocate a thread pool");
        return RSY_ENOMEM;
    }
    p->n_threads = n_threads;
    *out = p;
    return RSY_OK;
}

void rsy_pool_destroy(rsy_pool *p)
{
    free(p);
}

int rsy_pool_threads(const rsy_pool *p)
{
    return p->n_threads;
}

rsy_status rsy_pool_run(rsy_pool *p, size_t n_tasks, rsy_task_fn fn, void *ctx)
{
    if (!p || !fn)
        return RSY_EINVAL;
    if (n_tasks == 0)
        return RSY_OK;

    pool_run run;
    memset(&run, 0, sizeof run);
    run.n_tasks = n_tasks;
    run.fail_index = n_tasks;
    run.fail_rc = RSY_OK;
    run.fn = fn;
    run.ctx = ctx;
    if (pthread_mutex_init(&run.mutex, NULL) != 0) {
        rsy_log_error("cannot initialise a mutex");
        return RSY_ENOMEM;
    }

    /* No more helpers than tasks beyond the first. */
    size_t n_helpers = (size_t)p->n_threads - 1;
    if (n_helpers > n_tasks - 1)
        n_helpers = n_tasks - 1;
    pthread_t *threads = NULL;
    pool_worker *workers = NULL;
    size_t started = 0;
    if (n_helpers > 0) {
        threads = calloc(n_helpers, sizeof *threads);
        workers = calloc(n_helpers, sizeof *workers);
        if (!threads || !workers) {
            /* Fewer threads change only the speed, never the results: run inline. */
            rsy_log_warning("cannot allocate %zu worker slots; running in one thread", n_helpers);
            n_helpers = 0;
        }
    }
    for (size_t t = 0; t < n_helpers; t++) {
        workers[t].run = &run;
        workers[t].worker = (int)t + 1;
        int err = pthread_create(&threads[t], NULL, worker_main, &workers[t]);
        if (err != 0) {
            rsy_log_warning("started %zu of %zu worker threads: %s", started, n_helpers,
                            strerror(err));
            break;
        }
        started++;
    }
    work(&run, 0);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);

    free(workers);
    free(threads);
    pthread_mutex_destroy(&run.mutex);
    return run.fail_rc;
}
