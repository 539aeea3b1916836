/*
 * cli_internal.h: what the files of the raresynth program share (cli/ only; the program is
 * thin over the library, STYLE.md section 7).
 *
 * raresynth.c        main(), logging, option and number parsers, generate, validate
 * merge_cmd.c        merge
 * fit_texture_cmd.c  fit-texture
 * priors_cmd.c       priors list / show
 */
#ifndef RSY_CLI_INTERNAL_H
#define RSY_CLI_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "rsy_config.h"
#include "rsy_core.h"
#include "rsy_export.h"
#include "rsy_generator.h"

/* Exit codes (docs/EXIT_CODES.md). */
enum {
    EXIT_OK = 0,
    EXIT_GENERIC = 1,
    EXIT_USAGE = 2,
    EXIT_CONFIG = 3,
    EXIT_IO = 4,
    EXIT_PARTIAL = 5,
    EXIT_INVALID = 6,
    EXIT_INTERRUPTED = 130
};

/* Errors the library logged (its handler counts them): a command adds its own line only when
 * the library said nothing. */
extern atomic_int g_errors_logged;
/* The log level the program runs at (-q, -v). */
extern rsy_log_level g_level;

/* "raresynth: <message>" on stderr. */
void fail(const char *fmt, ...) RSY_FORMAT(1, 2);
/* The exit code of a library status (docs/EXIT_CODES.md). */
int exit_code_for(rsy_status s);
/* A decimal unsigned integer, nothing else: 0, or -1. */
int parse_u64(const char *s, uint64_t *out);
/* Default -j: the online CPUs, 1..64. */
int default_jobs(void);
/* Option value: "--opt=value", "--opt value", "-o value" or "-ovalue"; NULL if missing. */
const char *opt_value(int argc, char **argv, int *i, const char *longname, const char *shortname);
/* 1 if @p a is the option (or "--opt=value"). */
int is_opt(const char *a, const char *longname, const char *shortname);
/* Like is_opt, and also "-ovalue" for options that take a value. */
int is_valued_opt(const char *a, const char *longname, const char *shortname);
/* The data folders searched for priors and tissue tables (NULL-terminated, static). */
const char *const *data_search_dirs(void);

/* The commands: argv[0] is the command name; the result is the exit code. */
int cmd_merge(int argc, char **argv);
int cmd_fit_texture(int argc, char **argv);
int cmd_priors(int argc, char **argv);

#endif /* RSY_CLI_INTERNAL_H */
