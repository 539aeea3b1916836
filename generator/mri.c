/*
 * mri.c: MRI signal equations, gadolinium T1 shortening, the per-class property table of a
 * case's working class map, and the output label dictionary.
 *
 * Signal equations are the magnitude forms of reference/domain.md section 2.2: spin echo
 * (GK), spoiled gradient echo (GK) and inversion recovery / FLAIR [S42]. Times are in ms and
 * PD is relative to pure water, so a PD 1 tissue with full relaxation gives 1.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generator_internal.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"

/* Degrees to radians. */
#define RSY__DEG_TO_RAD (3.14159265358979323846 / 180.0)

double rsy_mri_signal_spin_echo(double pd, double t1_ms, double t2_ms, double tr_ms, double te_ms)
{
    /* domain.md 2.2 (GK): the full form keeps the TE/2 refocusing term, so it stays exact
     * when TE is not negligible against TR. */
    double mz = 1.0 - 2.0 * exp(-(tr_ms - 0.5 * te_ms) / t1_ms) + exp(-tr_ms / t1_ms);
    return pd * mz * exp(-te_ms / t2_ms);
}

double rsy_mri_signal_inversion_recovery(double pd, double t1_ms, double t2_ms, double tr_ms,
                                         double te_ms, double ti_ms)
{
    /* domain.md 2.2 [S42]: magnitude reconstruction, hence the absolute value. */
    double mz = 1.0 - 2.0 * exp(-ti_ms / t1_ms) + exp(-tr_ms / t1_ms);
    return pd * fabs(mz) * exp(-te_ms / t2_ms);
}

double rsy_mri_signal_spoiled_gre(double pd, double t1_ms, double t2_ms, double tr_ms, double te_ms,
                                  double flip_deg)
{
    /* domain.md 2.2 (GK). The tissue tables carry no T2*, so T2 stands in for it: the
     * contrast is then that of a spin-echo-like decay, which is the usual simplification of
     * BrainWeb-style simulators when T2* is unknown. */
    double a = flip_deg * RSY__DEG_TO_RAD;
    double e1 = exp(-tr_ms / t1_ms);
    return pd * sin(a) * (1.0 - e1) / (1.0 - cos(a) * e1) * exp(-te_ms / t2_ms);
}

double rsy_mri_t1_with_gd(double t1_ms, double r1_per_mM_s, double gd_mM)
{
    /* domain.md 2.1 (GK): relaxation rates add, 1/T1 = 1/T1_0 + r1·[Gd]. r1·[Gd] is in 1/s,
     * so it is divided by 1000 to give 1/ms. */
    if (!(gd_mM > 0.0) || !(r1_per_mM_s > 0.0))
        return t1_ms;
    return 1.0 / (1.0 / t1_ms + r1_per_mM_s * gd_mM * 1e-3);
}

double rsy_mri_signal(const rsy_sequence *seq, const rsy_mri_props *p, double r1_per_mM_s)
{
    double t1 = seq->contrast ? rsy_mri_t1_with_gd(p->t1_ms, r1_per_mM_s, p->gd_mM) : p->t1_ms;
    switch (seq->kind) {
    case RSY_SEQ_SPIN_ECHO:
        return rsy_mri_signal_spin_echo(p->pd, t1, p->t2_ms, seq->tr_ms, seq->te_ms);
    case RSY_SEQ_INVERSION_RECOVERY:
        return rsy_mri_signal_inversion_recovery(p->pd, t1, p->t2_ms, seq->tr_ms, seq->te_ms,
                                                 seq->ti_ms);
    case RSY_SEQ_SPOILED_GRE:
        return rsy_mri_signal_spoiled_gre(p->pd, t1, p->t2_ms, seq->tr_ms, seq->te_ms,
                                          seq->flip_deg);
    }
    return 0.0;
}

const char *rsy__gen_sequence_weighting(const rsy_sequence *seq)
{
    /* Short/long TR and TE as in domain.md 2.2: SE T1w TR 400-800 / TE 8-20 [S43, S44, S45],
     * long TR > 1500 ms, short TE < 30 ms, long TE > 90 ms [S45] (TSE T2w TE 80-120 [S43],
     * hence the lower bound of 60 ms used here for "T2-weighted"). FLAIR is inversion
     * recovery with a T2-weighted readout [S42]; an IR or spoiled GRE with a short TE is
     * T1-weighted (MPRAGE, FLASH; GK). */
    switch (seq->kind) {
    case RSY_SEQ_SPIN_ECHO:
        if (seq->tr_ms <= 1000.0 && seq->te_ms < 30.0)
            return "T1";
        if (seq->tr_ms > 1500.0 && seq->te_ms >= 60.0)
            return "T2";
        if (seq->tr_ms > 1500.0 && seq->te_ms < 30.0)
            return "PD";
        break;
    case RSY_SEQ_INVERSION_RECOVERY:
        return seq->te_ms >= 60.0 ? "FLAIR" : "T1";
    case RSY_SEQ_SPOILED_GRE:
        if (seq->te_ms < 30.0)
            return "T1";
        break;
    }
    return seq->name;
}

/* Properties of an absolute compartment at @p field_t, interpolated as tissue tables are. */
static rsy_mri_props compartment_absolute(const rsy_compartment *c, double field_t)
{
    rsy_tissue t;
    memset(&t, 0, sizeof t);
    t.mri_1p5t = c->mri_1p5t;
    t.mri_3t = c->mri_3t;
    return rsy_tissue_mri_at(&t, field_t);
}

/* Index of @p name among names[0..n), or -1. */
static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

int rsy__gen_label_names_all(const rsy_recipe *r, const char **names, int max)
{
    /* Built in a local list first (deduplication needs every name), then copied out. The
     * local list is large enough for every tissue and compartment a recipe can hold. */
    enum { CAP = RSY_MAX_TISSUES + RSY_MAX_LESION_TYPES * RSY_MAX_COMPARTMENTS + 1 };
    const char *all[CAP];
    int n = 0;
    all[n++] = "background";
    if (r->label_set == RSY_LABELS_TISSUES_AND_LESIONS) {
        int nt = rsy_phantom_n_classes(r->phantom.family);
        for (int c = 1; c < nt && n < CAP; c++) {
            const char *nm = rsy_phantom_class_name(r->phantom.family, c);
            if (nm && name_index(all, n, nm) < 0)
                all[n++] = nm;
        }
    }
    for (int t = 0; t < r->n_lesion_types; t++) {
        const rsy_prior *p = &r->lesions[t].prior;
        for (int c = 0; c < p->n_compartments && n < CAP; c++)
            if (name_index(all, n, p->compartments[c].name) < 0)
                all[n++] = p->compartments[c].name;
    }
    for (int i = 0; i < n && i < max; i++)
        names[i] = all[i];
    return n;
}

int rsy_generator_label_names(const rsy_recipe *r, const char **names, int max)
{
    if (!r)
        return 0;
    int n = rsy__gen_label_names_all(r, names, max < RSY_MAX_LABELS ? max : RSY_MAX_LABELS);
    return n < RSY_MAX_LABELS ? n : RSY_MAX_LABELS;
}

int rsy_generator_label_perilesional(const rsy_recipe *r, unsigned char *flags, int max)
{
    if (!r)
        return 0;
    const char *names[RSY_MAX_LABELS];
    int n = rsy_generator_label_names(r, names, RSY_MAX_LABELS);
    for (int i = 0; i < n && i < max; i++) {
        /* Perilesional when every prior that defines a compartment of this name places it
         * outside the lesion surface; a tissue label never is. */
        int margin = 0, inside = 0;
        for (int t = 0; t < r->n_lesion_types; t++) {
            const rsy_prior *p = &r->lesions[t].prior;
            for (int c = 0; c < p->n_compartments; c++) {
                if (strcmp(p->compartments[c].name, names[i]) != 0)
                    continue;
                if (p->compartments[c].extent_kind == RSY_EXTENT_MARGIN_MM)
                    margin = 1;
                else
                    inside = 1;
            }
        }
        flags[i] = (unsigned char)(margin && !inside);
    }
    return n;
}

const char *rsy__gen_extent_key(rsy_extent_kind kind)
{
    switch (kind) {
    case RSY_EXTENT_RADIUS_FRACTION:
        return "radius_fraction";
    case RSY_EXTENT_MARGIN_MM:
        return "margin_mm";
    case RSY_EXTENT_WALL_MM:
        return "wall_mm";
    case RSY_EXTENT_INCLUSIONS:
        return "volume_fraction";
    case RSY_EXTENT_NETWORK:
        return "line_mm";
    }
    return "extent";
}

rsy_status rsy__gen_compartment_ct(const rsy_recipe *r, const rsy_prior *p,
                                   const rsy_compartment *cp, rsy_ct_phase phase, rsy_ct_props *out)
{
    memset(out, 0, sizeof *out);
    if ((int)phase < 0 || (int)phase >= RSY_CT_N_PHASES)
        return RSY_EINVAL;
    if (!cp->has_ct) {
        rsy_log_error("%s: compartment \"%s\" of prior \"%s\" gives no CT properties (\"ct\")",
                      p->path, cp->name, p->name);
        return RSY_EINVAL;
    }
    if (cp->ct_mode == RSY_PROPS_ABSOLUTE) {
        *out = cp->ct[phase];
        return RSY_OK;
    }
    const rsy_tissue *ref = rsy_tissue_table_find(&r->tissues, cp->ct_relative_to);
    if (!ref || !ref->has_ct) {
        rsy_log_error("%s: compartment \"%s\" is relative to \"%s\", which tissue table \"%s\" "
                      "does not define%s",
                      p->path, cp->name, cp->ct_relative_to, r->tissues.name, ref ? " for CT" : "");
        return RSY_EINVAL;
    }
    /* The host's HU in this phase plus the offset of this phase; the SD is the compartment's
     * own (rsy_compartment.ct). */
    out->hu = ref->ct[phase].hu + cp->ct[phase].hu;
    out->sd_hu = cp->ct[phase].sd_hu;
    return RSY_OK;
}

rsy_status rsy__gen_class_table(const rsy_recipe *r, rsy__gen_class **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    const char *family = r->phantom.family;
    int n_tissue = rsy_phantom_n_classes(family);
    if (n_tissue <= 0) {
        rsy_log_error("unknown phantom family \"%s\"", family);
        return RSY_EINVAL;
    }
    const char *labels[RSY_MAX_LABELS];
    int n_labels = rsy__gen_label_names_all(r, labels, RSY_MAX_LABELS);
    if (n_labels > RSY_MAX_LABELS) {
        rsy_log_error("%s: the recipe defines %d output labels, more than the %d supported",
                      r->path, n_labels, RSY_MAX_LABELS);
        return RSY_EINVAL;
    }
    int n = n_tissue + rsy_lesion_compartment_total(r);
    if (n > 65535) {
        rsy_log_error("%s: %d classes do not fit a uint16 class map", r->path, n);
        return RSY_EINVAL;
    }
    int is_ct = strcmp(r->modality, "ct") == 0;
    rsy__gen_class *tab = calloc((size_t)n, sizeof *tab);
    if (!tab)
        return RSY_ENOMEM;

    for (int c = 0; c < n_tissue; c++) {
        const char *nm = rsy_phantom_class_name(family, c);
        const rsy_tissue *t = nm ? rsy_tissue_table_find(&r->tissues, nm) : NULL;
        if (!t) {
            rsy_log_error("tissue table \"%s\" has no entry for phantom class \"%s\"",
                          r->tissues.name, nm ? nm : "?");
            free(tab);
            return RSY_EINVAL;
        }
        if (is_ct) {
            if (!t->has_ct) {
                rsy_log_error("tissue table \"%s\" has no CT properties for phantom class \"%s\"",
                              r->tissues.name, nm);
                free(tab);
                return RSY_EINVAL;
            }
            tab[c].hu = t->ct[r->ct.phase].hu;
            tab[c].hu_sd = t->ct[r->ct.phase].sd_hu;
        } else {
            if (!t->has_mri) {
                rsy_log_error("tissue table \"%s\" has no MRI properties for phantom class \"%s\"",
                              r->tissues.name, nm);
                free(tab);
                return RSY_EINVAL;
            }
            tab[c].props = rsy_tissue_mri_at(t, r->mri.field_t);
            tab[c].texture_sd_fraction = t->texture_sd_fraction;
        }
        tab[c].is_lesion = 0;
        tab[c].type_index = -1;
        tab[c].compartment = -1;
        if (c == 0 || r->label_set == RSY_LABELS_LESIONS) {
            tab[c].label = 0;
        } else {
            int li = name_index(labels, n_labels, nm);
            tab[c].label = li < 0 ? 0 : li;
        }
    }
    for (int t = 0; t < r->n_lesion_types; t++) {
        const rsy_prior *p = &r->lesions[t].prior;
        int base = n_tissue + rsy_lesion_compartment_offset(r, t);
        for (int k = 0; k < p->n_compartments; k++) {
            const rsy_compartment *cp = &p->compartments[k];
            rsy__gen_class *e = &tab[base + k];
            if (is_ct) {
                rsy_ct_props ct;
                rsy_status rc = rsy__gen_compartment_ct(r, p, cp, r->ct.phase, &ct);
                if (rc != RSY_OK) {
                    free(tab);
                    return rc;
                }
                e->hu = ct.hu;
                e->hu_sd = ct.sd_hu;
            } else if (!cp->has_mri) {
                rsy_log_error("%s: compartment \"%s\" of prior \"%s\" gives no MRI properties "
                              "(\"mri\")",
                              p->path, cp->name, p->name);
                free(tab);
                return RSY_EINVAL;
            } else if (cp->props_mode == RSY_PROPS_ABSOLUTE) {
                e->props = compartment_absolute(cp, r->mri.field_t);
            } else {
                const rsy_tissue *ref = rsy_tissue_table_find(&r->tissues, cp->relative_to);
                if (!ref || !ref->has_mri) {
                    rsy_log_error("%s: compartment \"%s\" is relative to \"%s\", which tissue "
                                  "table \"%s\" does not define%s",
                                  p->path, cp->name, cp->relative_to, r->tissues.name,
                                  ref ? " for MRI" : "");
                    free(tab);
                    return RSY_EINVAL;
                }
                rsy_mri_props b = rsy_tissue_mri_at(ref, r->mri.field_t);
                e->props.t1_ms = b.t1_ms * cp->t1_factor;
                e->props.t2_ms = b.t2_ms * cp->t2_factor;
                e->props.pd = b.pd * cp->pd_factor;
                e->props.gd_mM = cp->gd_mM;
            }
            /* texture_sd_fraction scales T1, T2 and PD: MRI only, as for tissues (CT texture
             * is the HU SD of the compartment). */
            e->texture_sd_fraction = is_ct ? 0.0 : cp->texture_sd_fraction;
            e->is_lesion = 1;
            e->type_index = t;
            e->compartment = k;
            e->label = name_index(labels, n_labels, cp->name);
        }
    }
    *out = tab;
    *n_out = n;
    return RSY_OK;
}
