/*
 * priors_cmd.c: `raresynth priors list` and `raresynth priors show NAME`, the lesion catalogue
 * (configs/priors/NAME.json, loaded with rsy_disease_load) printed for people.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_internal.h"

static const char priors_usage[] =
    "Usage: raresynth priors list [--dir DIR]\n"
    "       raresynth priors show [--dir DIR] NAME\n"
    "\n"
    "The lesion catalogue: one disease file per prior (configs/priors/NAME.json).\n"
    "  list   one line per disease file: name, organ, modalities, lesion types, display name\n"
    "  show   everything a prior draws: lesion types, count and size distributions, shape,\n"
    "         placement rule, compartments with their MRI and CT properties, mass effect and\n"
    "         sources. NAME is a disease (\"tuberous-sclerosis\"), one of its lesion types\n"
    "         (\"tuberous-sclerosis/cortical_tuber\") or a path to a file ending in .json.\n"
    "\n"
    "Options:\n"
    "  -d, --dir DIR   look in DIR (a priors folder, or a folder holding priors/) instead of the\n"
    "                  shipped and installed catalogues\n"
    "  -h, --help      this text\n"
    "\n"
    "Exit codes: 0 ok, 2 usage, 3 unknown prior or a malformed prior file, 4 DIR unreadable.\n";

/* ---- priors list / show -------------------------------------------------------------- */
#define PRIOR_DIRS_MAX 8

/* The priors folders to read, in lookup order: DIR (or DIR/priors) when given, else the
 * priors/ of each data folder the recipe loader searches (data_search_dirs()) and of the
 * installed data folder compiled into the library. Returns their count. */
static int prior_dirs(const char *dir, char out[][PATH_MAX])
{
    int n = 0;
    char p[PATH_MAX];
    if (dir) {
        int w = snprintf(p, sizeof p, "%.*s/priors", PATH_MAX - 16, dir);
        snprintf(out[n++], PATH_MAX, "%.*s", PATH_MAX - 1,
                 w > 0 && access(p, R_OK | X_OK) == 0 ? p : dir);
        return n;
    }
    const char *const *dirs = data_search_dirs();
    for (int i = 0; dirs[i] && n < PRIOR_DIRS_MAX - 1; i++)
        snprintf(out[n++], PATH_MAX, "%.*s/priors", PATH_MAX - 16, dirs[i]);
#ifdef RSY_DATADIR
    snprintf(out[n++], PATH_MAX, "%s/priors", RSY_DATADIR);
#endif
    /* The same folder reached twice (a build tree's configs and an install pointing at it). */
    int m = 0;
    for (int i = 0; i < n; i++) {
        char ri[PATH_MAX];
        if (!realpath(out[i], ri))
            continue;
        int dup = 0;
        for (int j = 0; j < m && !dup; j++) {
            char rj[PATH_MAX];
            dup = realpath(out[j], rj) && strcmp(ri, rj) == 0;
        }
        if (!dup && m != i)
            memmove(out[m], out[i], PATH_MAX);
        m += !dup;
    }
    return m;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Stems of the *.json files of @p dir, sorted; appended to @p names (strdup'ed) unless
 * already there (an earlier folder wins). */
static int list_stems(const char *dir, char **names, int n, int cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return n;
    int first = n;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        char stem[NAME_MAX + 1];
        snprintf(stem, sizeof stem, "%.*s", (int)(len - 5), e->d_name);
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], stem) == 0;
        if (!seen && (names[n] = strdup(stem)) != NULL)
            n++;
    }
    closedir(d);
    qsort(names + first, (size_t)(n - first), sizeof *names, cmp_str);
    return n;
}

static const char *orientation_name(rsy_orientation o)
{
    switch (o) {
    case RSY_ORIENT_RANDOM:
        return "random";
    case RSY_ORIENT_RADIAL:
        return "radial";
    case RSY_ORIENT_TANGENTIAL:
        return "tangential";
    }
    return "?";
}

static const char *where_name(rsy_inclusion_where w)
{
    switch (w) {
    case RSY_WHERE_ANYWHERE:
        return "anywhere";
    case RSY_WHERE_PERIPHERY:
        return "periphery";
    case RSY_WHERE_CENTRE:
        return "centre";
    }
    return "?";
}

static void print_modalities(FILE *f, unsigned m)
{
    fprintf(f, "%s%s%s", m & RSY_PRIOR_MRI ? "mri" : "",
            (m & RSY_PRIOR_MRI) && (m & RSY_PRIOR_CT) ? "," : "", m & RSY_PRIOR_CT ? "ct" : "");
}

/* A distribution in words, values in @p unit ("" for none): "fixed 1", "uniform 1 to 1.5 mm",
 * "lognormal, median 42.4 mm, GSD 1.31, within 15 to 80 mm", "categorical 1 (0.9), 2 (0.07)". */
static void print_dist(FILE *f, const rsy_dist *d, const char *unit)
{
    const char *sp = unit[0] ? " " : "";
    switch (d->kind) {
    case RSY_DIST_FIXED:
        fprintf(f, "%g%s%s", d->value, sp, unit);
        return;
    case RSY_DIST_UNIFORM:
        fprintf(f, "uniform %g to %g%s%s", d->min, d->max, sp, unit);
        return;
    case RSY_DIST_LOGNORMAL:
        fprintf(f, "lognormal, median %g%s%s, GSD %g, within %g to %g%s%s", d->median, sp, unit,
                d->gsd, d->min, d->max, sp, unit);
        return;
    case RSY_DIST_NORMAL:
        fprintf(f, "normal, mean %g%s%s, SD %g, within %g to %g%s%s", d->mean, sp, unit, d->sd,
                d->min, d->max, sp, unit);
        return;
    case RSY_DIST_CATEGORICAL: {
        double total = 0.0;
        for (int i = 0; i < d->n_categories; i++)
            total += d->weights[i];
        fprintf(f, "categorical");
        for (int i = 0; i < d->n_categories; i++)
            fprintf(f, "%s %g (%.3g)", i ? "," : "", d->values[i],
                    total > 0.0 ? d->weights[i] / total : 0.0);
        if (unit[0])
            fprintf(f, " %s", unit);
        return;
    }
    case RSY_DIST_POISSON:
        fprintf(f, "%g + Poisson(mean %g), within %g to %g", d->min, d->mean, d->min, d->max);
        return;
    }
    fprintf(f, "?");
}

static void print_names(FILE *f, const char names[][RSY_NAME_MAX], int n)
{
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", names[i]);
}

static void print_mri(FILE *f, const char *tag, const rsy_mri_props *p)
{
    fprintf(f, "%s T1 %g ms, T2 %g ms, PD %g, Gd %g mM", tag, p->t1_ms, p->t2_ms, p->pd, p->gd_mM);
}

static void print_compartment(FILE *f, int index, const rsy_compartment *c, unsigned modalities)
{
    fprintf(f, "    %d. %s", index + 1, c->name);
    if (c->display_name[0])
        fprintf(f, " (%s)", c->display_name);
    fprintf(f, ": ");
    switch (c->extent_kind) {
    case RSY_EXTENT_RADIUS_FRACTION:
        fprintf(f, "inside the surface, radius fraction ");
        print_dist(f, &c->extent, "");
        break;
    case RSY_EXTENT_MARGIN_MM:
        fprintf(f, "margin outside the surface, ");
        print_dist(f, &c->extent, "mm");
        break;
    case RSY_EXTENT_WALL_MM:
        fprintf(f, "wall just inside the surface, ");
        print_dist(f, &c->extent, "mm");
        break;
    case RSY_EXTENT_INCLUSIONS:
        fprintf(f, "inclusions in %s (%s), volume fraction ", c->parent, where_name(c->where));
        print_dist(f, &c->extent, "");
        fprintf(f, ", each ");
        print_dist(f, &c->inclusion_diameter_mm, "mm");
        break;
    case RSY_EXTENT_NETWORK:
        fprintf(f, "network of lines in %s, line ", c->parent);
        print_dist(f, &c->extent, "mm");
        fprintf(f, ", cells ");
        print_dist(f, &c->cell_mm, "mm");
        break;
    }
    if (c->absent_probability > 0.0)
        fprintf(f, "; present in a lesion with probability %g", 1.0 - c->absent_probability);
    fprintf(f, "\n");
    if (c->n_confined > 0) {
        fprintf(f, "       confined to ");
        print_names(f, c->confined_to, c->n_confined);
        fprintf(f, "\n");
    }
    if ((modalities & RSY_PRIOR_MRI) || c->has_mri) {
        if (!c->has_mri) {
            fprintf(f, "       MRI: none\n");
        } else if (c->props_mode == RSY_PROPS_ABSOLUTE) {
            fprintf(f, "       MRI:");
            print_mri(f, " 1.5T", &c->mri_1p5t);
            fprintf(f, ";");
            print_mri(f, " 3T", &c->mri_3t);
            fprintf(f, "\n");
        } else {
            fprintf(f, "       MRI: relative to %s: T1 x %g, T2 x %g, PD x %g, Gd %g mM\n",
                    c->relative_to, c->t1_factor, c->t2_factor, c->pd_factor, c->gd_mM);
        }
    }
    if ((modalities & RSY_PRIOR_CT) || c->has_ct) {
        static const char *const phases[RSY_CT_N_PHASES] = {"non-contrast", "arterial",
                                                            "portal venous"};
        if (!c->has_ct) {
            fprintf(f, "       CT: none\n");
        } else {
            int rel = c->ct_mode == RSY_PROPS_RELATIVE;
            fprintf(f, "       CT%s%s:", rel ? ": relative to " : "", rel ? c->ct_relative_to : "");
            for (int ph = 0; ph < RSY_CT_N_PHASES; ph++)
                fprintf(f, "%s %s %s%g HU (SD %g)", ph ? ";" : "", phases[ph],
                        rel && c->ct[ph].hu >= 0.0 ? "+" : "", c->ct[ph].hu, c->ct[ph].sd_hu);
            fprintf(f, "\n");
        }
    }
    if (c->texture_sd_fraction > 0.0)
        fprintf(f, "       texture SD fraction %g\n", c->texture_sd_fraction);
}

static void print_type(FILE *f, const rsy_prior *p, unsigned modalities)
{
    fprintf(f, "\nlesion type %s", p->name);
    if (p->display_name[0])
        fprintf(f, " (%s)", p->display_name);
    fprintf(f, "\n  probability per case: %g\n  count: ", p->probability);
    print_dist(f, &p->count, "");
    fprintf(f, "\n  diameter: ");
    print_dist(f, &p->diameter_mm, "mm");
    fprintf(f, "\n  shape: %s; elongation ", p->shape_kind == RSY_SHAPE_CYST ? "cyst" : "solid");
    print_dist(f, &p->elongation, "");
    fprintf(f, "; flatness ");
    print_dist(f, &p->flatness, "");
    fprintf(f, "; lobes ");
    print_dist(f, &p->lobes, "");
    if (p->lobulation_lmax >= 2 && p->lobulation_amplitude > 0.0)
        fprintf(f, "\n         lobulation: degrees 2 to %d, amplitude %g", p->lobulation_lmax,
                p->lobulation_amplitude);
    else
        fprintf(f, "\n         no lobulation");
    if (p->roughness_amplitude > 0.0)
        fprintf(f, "; roughness %g over %g mm", p->roughness_amplitude, p->roughness_scale_mm);
    fprintf(f, "; orientation %s\n", orientation_name(p->orientation));
    fprintf(f, "  placement: %s; centre in ", rsy_placement_rule_name(p->rule));
    print_names(f, p->hosts, p->n_hosts);
    fprintf(f, "; may replace ");
    print_names(f, p->allowed, p->n_allowed);
    if (p->n_reference > 0) {
        fprintf(f, "\n             %g to %g mm from ", p->min_distance_mm, p->max_distance_mm);
        print_names(f, p->reference, p->n_reference);
    }
    fprintf(f,
            "\n             zones upper:middle:lower %g:%g:%g; separation >= %g mm; up to %d "
            "attempts\n",
            p->zone_weights[0], p->zone_weights[1], p->zone_weights[2], p->min_separation_mm,
            p->max_attempts);
    fprintf(f, "  mass effect: ");
    if (!p->mass_effect.enabled) {
        fprintf(f, "none\n");
    } else {
        fprintf(f, "strength ");
        print_dist(f, &p->mass_effect.strength, "");
        fprintf(f, " of the radius, range %g mm", p->mass_effect.range_mm);
        if (p->mass_effect.n_fixed > 0) {
            fprintf(f, ", fixed ");
            print_names(f, p->mass_effect.fixed, p->mass_effect.n_fixed);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "  compartments (label order):\n");
    for (int k = 0; k < p->n_compartments; k++)
        print_compartment(f, k, &p->compartments[k], modalities);
}

/* Find NAME.json in @p dirs; returns 0 and the path, or -1. */
static int find_prior(char dirs[][PATH_MAX], int n_dirs, const char *name, char *path)
{
    for (int i = 0; i < n_dirs; i++) {
        int w =
            snprintf(path, PATH_MAX, "%.*s/%s.json", PATH_MAX - RSY_NAME_MAX - 8, dirs[i], name);
        /* A truncated path would name another file. */
        if (w > 0 && w < PATH_MAX && access(path, R_OK) == 0)
            return 0;
    }
    return -1;
}

int cmd_priors(int argc, char **argv)
{
    const char *dir = NULL, *sub = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_opt(a, "--help", "-h")) {
            fputs(priors_usage, stdout);
            return EXIT_OK;
        } else if (is_valued_opt(a, "--dir", "-d")) {
            if (!(dir = opt_value(argc, argv, &i, "--dir", "-d"))) {
                fail("%s: a value is required (see raresynth priors --help)", a);
                return EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1]) {
            fail("priors: unknown option '%s' (see raresynth priors --help)", a);
            return EXIT_USAGE;
        } else if (!sub) {
            sub = a;
        } else if (!name) {
            name = a;
        } else {
            fail("priors: unexpected argument '%s' (see raresynth priors --help)", a);
            return EXIT_USAGE;
        }
    }
    int list = sub && strcmp(sub, "list") == 0, show = sub && strcmp(sub, "show") == 0;
    if (!list && !show) {
        fail(sub ? "priors: unknown subcommand '%s' (expected list or show; see raresynth priors "
                   "--help)"
                 : "priors: a subcommand is required: list or show (see raresynth priors --help)%s",
             sub ? sub : "");
        return EXIT_USAGE;
    }
    if (list && name) {
        fail("priors list: unexpected argument '%s'", name);
        return EXIT_USAGE;
    }
    if (show && !name) {
        fail("priors show: a prior name is required (see raresynth priors list)");
        return EXIT_USAGE;
    }
    char dirs[PRIOR_DIRS_MAX][PATH_MAX];
    int n_dirs = prior_dirs(dir, dirs);
    if (dir) {
        DIR *probe = opendir(dirs[0]);
        if (!probe) {
            fail("priors: %s: %s", dirs[0], strerror(errno));
            return EXIT_IO;
        }
        closedir(probe);
    }

    if (list) {
        enum { CAP = 1024 };
        char *names[CAP];
        int n = 0;
        for (int i = 0; i < n_dirs; i++)
            n = list_stems(dirs[i], names, n, CAP);
        if (n == 0) {
            fail("priors list: no prior file (*.json) in %s%s", n_dirs ? dirs[0] : "any folder",
                 n_dirs > 1 ? " or the other data folders" : "");
            return dir ? EXIT_CONFIG : EXIT_OK;
        }
        /* Load every file first, so the columns fit the longest entry. */
        typedef struct row {
            char name[RSY_NAME_MAX], organ[RSY_NAME_MAX], mods[16], types[512];
            char display[RSY_TEXT_MAX];
        } row;
        row *rows = calloc((size_t)n, sizeof *rows);
        if (!rows) {
            fail("priors list: out of memory");
            return EXIT_GENERIC;
        }
        int bad = 0, n_rows = 0;
        int w[4] = {4, 5, 10, 12}; /* NAME, ORGAN, MODALITIES, LESION TYPES */
        for (int i = 0; i < n; i++) {
            char path[PATH_MAX];
            rsy_disease *d = NULL;
            if (find_prior(dirs, n_dirs, names[i], path) != 0 ||
                rsy_disease_load(&d, path) != RSY_OK) {
                bad++;
                free(names[i]);
                continue;
            }
            row *rw = &rows[n_rows++];
            size_t k = 0;
            for (int t = 0; t < d->n_types && k < sizeof rw->types; t++) {
                const rsy_prior *p = &d->types[t];
                int c = snprintf(rw->types + k, sizeof rw->types - k, "%s%s", t ? "," : "",
                                 p->type_name[0] ? p->type_name : p->name);
                if (c > 0)
                    k += (size_t)c;
            }
            snprintf(rw->name, sizeof rw->name, "%s", d->name);
            snprintf(rw->organ, sizeof rw->organ, "%s", d->organ);
            snprintf(rw->display, sizeof rw->display, "%s", d->display_name);
            snprintf(rw->mods, sizeof rw->mods, "%s%s%s",
                     d->modalities & RSY_PRIOR_MRI ? "mri" : "",
                     (d->modalities & RSY_PRIOR_MRI) && (d->modalities & RSY_PRIOR_CT) ? "," : "",
                     d->modalities & RSY_PRIOR_CT ? "ct" : "");
            const char *cols[4] = {rw->name, rw->organ, rw->mods, rw->types};
            for (int c = 0; c < 4; c++)
                if ((int)strlen(cols[c]) > w[c])
                    w[c] = (int)strlen(cols[c]);
            free(d);
            free(names[i]);
        }
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], "NAME", w[1], "ORGAN", w[2], "MODALITIES",
               w[3], "LESION TYPES", "DISPLAY NAME");
        for (int i = 0; i < n_rows; i++)
            printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], rows[i].name, w[1], rows[i].organ, w[2],
                   rows[i].mods, w[3], rows[i].types, rows[i].display);
        free(rows);
        return bad ? EXIT_CONFIG : EXIT_OK;
    }

    /* show: a path, a disease, or "disease/type". */
    char path[PATH_MAX], stem[PATH_MAX];
    const char *type = NULL;
    size_t nl = strlen(name);
    if (nl > 5 && strcmp(name + nl - 5, ".json") == 0) {
        snprintf(path, sizeof path, "%s", name);
        if (access(path, R_OK) != 0) {
            fail("priors show: %s: %s", name, strerror(errno));
            return EXIT_CONFIG;
        }
    } else {
        snprintf(stem, sizeof stem, "%s", name);
        char *slash = strchr(stem, '/');
        if (slash) {
            *slash = '\0';
            type = slash + 1;
        }
        int ok = stem[0] != '\0';
        for (const char *c = stem; *c && ok; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
        if (!ok || find_prior(dirs, n_dirs, stem, path) != 0) {
            char where[1024] = "";
            size_t k = 0;
            for (int i = 0; i < n_dirs && k < sizeof where; i++) {
                int w = snprintf(where + k, sizeof where - k, "%s%s", i ? ", " : "", dirs[i]);
                if (w > 0)
                    k += (size_t)w;
            }
            fail("priors show: no prior named \"%s\" (looked in %s; see raresynth priors list)",
                 stem, n_dirs ? where : "no data folder");
            return EXIT_CONFIG;
        }
    }
    rsy_disease *d = NULL;
    rsy_status rc = rsy_disease_load(&d, path);
    if (rc != RSY_OK) {
        if (!g_errors_logged)
            fail("priors show: %s: %s", path, rsy_strerror(rc));
        return exit_code_for(rc);
    }
    int shown = 0;
    for (int t = 0; t < d->n_types && type; t++)
        shown |= strcmp(d->types[t].type_name, type) == 0;
    if (type && !shown) {
        fail("priors show: \"%s\" has no lesion type \"%s\"", d->name, type);
        free(d);
        return EXIT_CONFIG;
    }
    char shown_path[PATH_MAX];
    printf("%s: %s\n", d->name, d->display_name);
    printf("  file: %s\n  organ: %s; modalities: ", realpath(path, shown_path) ? shown_path : path,
           d->organ);
    print_modalities(stdout, d->modalities);
    printf("\n");
    if (d->description[0])
        printf("  %s\n", d->description);
    for (int t = 0; t < d->n_types; t++)
        if (!type || strcmp(d->types[t].type_name, type) == 0)
            print_type(stdout, &d->types[t], d->modalities);
    const rsy_prior *p0 = &d->types[0];
    if (p0->n_sources > 0) {
        printf("\nsources:\n");
        for (int i = 0; i < p0->n_sources; i++)
            printf("  %s\n", p0->sources[i]);
    }
    free(d);
    return EXIT_OK;
}
