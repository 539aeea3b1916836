/*
 * status.c: status messages, version and the one-time taming of the dependencies.
 */
#include <pthread.h>

#include <gsl/gsl_errno.h>
#include <cblas.h>
#include <hdf5.h>
#include <nifti1_io.h>

#include "core_internal.h"

/* Messages in enum order, generated from the single list in rsy_core.h (lz4 LZ4F_LIST_ERRORS). */
static const char *const status_messages[RSY_STATUS_COUNT] = {
#define RSY_X_MSG(code, msg) msg,
    RSY_STATUS_LIST(RSY_X_MSG)
#undef RSY_X_MSG
};

const char *rsy_strerror(rsy_status s)
{
    /* Compare as unsigned so negative values cast into the enum are rejected as well. */
    if ((unsigned)s >= (unsigned)RSY_STATUS_COUNT)
        return "unknown status";
    return status_messages[s];
}

const char *rsy_version(void)
{
    return RSY_VERSION_STRING;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* GSL's default error handler calls abort(); HDF5 prints its error stack to stderr and
 * nifti_clib prints at debug level >= 1. The library reports through rsy_status and the log
 * handler instead, so all three are silenced once per process. */
static void init_dependencies(void)
{
    gsl_set_error_handler_off();
    nifti_set_debug_level(0);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* OpenBLAS on one thread: its threaded kernels may split a sum differently with the number
     * of threads, and results must not depend on the machine. raresynth parallelises over its
     * own pool instead. This is process-wide (documented at rsy_init). */
    openblas_set_num_threads(1);
}

rsy_status rsy_init(void)
{
    pthread_once(&init_once, init_dependencies);
    return RSY_OK;
}
