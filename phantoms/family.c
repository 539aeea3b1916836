/*
 * family.c: the phantom families and the public API that dispatches to them. A new family is
 * one .c file defining an rsy__phantom_family plus one line in the table below.
 */
#include <stdio.h>
#include <string.h>

#include "phantoms_internal.h"

static const rsy__phantom_family *const families[] = {
    &rsy__phantom_family_head, &rsy__phantom_family_thorax, &rsy__phantom_family_abdomen};

const rsy__phantom_family *rsy__phantom_family_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i]->name, name) == 0)
            return families[i];
    return NULL;
}

/* The limits every family shares; the ranges are those config/ enforces on recipes. */
rsy_status rsy__phantom_check_spec(const rsy_phantom_spec *spec, const char *family)
{
    if (strncmp(spec->family, family, sizeof spec->family) != 0) {
        rsy_log_error("phantom.family: unknown family \"%.*s\" (expected \"%s\")",
                      (int)sizeof spec->family, spec->family, family);
        return RSY_EINVAL;
    }
    for (int a = 0; a < 3; a++) {
        if (spec->dims[a] < 16 || spec->dims[a] > 2048) {
            rsy_log_error("phantom.dims[%d]: expected an integer in 16..2048, got %lld", a,
                          (long long)spec->dims[a]);
            return RSY_EINVAL;
        }
        if (!(spec->spacing_mm[a] > 0.1 && spec->spacing_mm[a] <= 10.0)) {
            rsy_log_error("phantom.spacing_mm[%d]: expected a number in (0.1, 10], got %g", a,
                          spec->spacing_mm[a]);
            return RSY_EINVAL;
        }
    }
    if (spec->sex != RSY_SEX_RANDOM && spec->sex != RSY_SEX_FEMALE && spec->sex != RSY_SEX_MALE) {
        rsy_log_error("phantom.sex: invalid value %d", (int)spec->sex);
        return RSY_EINVAL;
    }
    if (!(spec->female_fraction >= 0.0 && spec->female_fraction <= 1.0)) {
        rsy_log_error("phantom.female_fraction: expected a number in [0, 1], got %g",
                      spec->female_fraction);
        return RSY_EINVAL;
    }
    if (!(spec->age_min_years >= 18.0 && spec->age_min_years <= spec->age_max_years &&
          spec->age_max_years <= 100.0)) {
        rsy_log_error("phantom.age_years: expected 18 <= min <= max <= 100, got [%g, %g]",
                      spec->age_min_years, spec->age_max_years);
        return RSY_EINVAL;
    }
    if (!(spec->deformation_mm >= 0.0 && spec->deformation_mm <= 20.0)) {
        rsy_log_error("phantom.deformation_mm: expected a number in [0, 20], got %g",
                      spec->deformation_mm);
        return RSY_EINVAL;
    }
    if (!(spec->deformation_scale_mm > 5.0 && spec->deformation_scale_mm <= 500.0)) {
        rsy_log_error("phantom.deformation_scale_mm: expected a number in (5, 500], got %g",
                      spec->deformation_scale_mm);
        return RSY_EINVAL;
    }
    return RSY_OK;
}

void rsy__subject_add_organ(rsy_subject *s, const char *name, double ml)
{
    if (s->n_organs >= RSY_SUBJECT_MAX_ORGANS)
        return;
    rsy_organ_volume *o = &s->organs[s->n_organs++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->ml = ml;
}

int rsy_phantom_n_classes(const char *family)
{
    const rsy__phantom_family *f = rsy__phantom_family_find(family);
    return f ? f->n_classes : 0;
}

const char *rsy_phantom_class_name(const char *family, int id)
{
    const rsy__phantom_family *f = rsy__phantom_family_find(family);
    if (!f || id < 0 || id >= f->n_classes)
        return NULL;
    return f->class_names[id];
}

int rsy_phantom_class_id(const char *family, const char *name)
{
    const rsy__phantom_family *f = rsy__phantom_family_find(family);
    if (!f || name == NULL)
        return -1;
    for (int i = 0; i < f->n_classes; i++)
        if (strcmp(f->class_names[i], name) == 0)
            return i;
    return -1;
}

rsy_status rsy_phantom_generate(const rsy_phantom_spec *spec, rsy_rng *subject_rng,
                                rsy_rng *shape_rng, rsy_volume **classes_out,
                                rsy_subject *subject_out)
{
    if (classes_out != NULL)
        *classes_out = NULL;
    if (spec == NULL || subject_rng == NULL || shape_rng == NULL || classes_out == NULL ||
        subject_out == NULL) {
        rsy_log_error("phantom: NULL argument");
        return RSY_EINVAL;
    }
    const rsy__phantom_family *f = rsy__phantom_family_find(spec->family);
    if (!f) {
        rsy_log_error("phantom.family: unknown family \"%.*s\"", (int)sizeof spec->family,
                      spec->family);
        return RSY_EINVAL;
    }
    return f->generate(spec, subject_rng, shape_rng, classes_out, subject_out);
}

void rsy_phantom_measure(const char *family, const rsy_volume *classes, rsy_subject *subject)
{
    const rsy__phantom_family *f = rsy__phantom_family_find(family);
    if (!f) {
        rsy_log_error("phantom measure: unknown family \"%s\"", family ? family : "(null)");
        return;
    }
    f->measure(classes, subject);
}

void rsy_phantom_describe_location(const char *family, const rsy_subject *subject,
                                   const double xyz_mm[3], char *buf, size_t n)
{
    const rsy__phantom_family *f = rsy__phantom_family_find(family);
    if (!f) {
        if (buf && n > 0)
            snprintf(buf, n, "unknown location");
        return;
    }
    f->describe(subject, xyz_mm, buf, n);
}
