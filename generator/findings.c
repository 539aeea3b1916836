/*
 * findings.c: the findings text of a case, in a radiologist's register, written from the
 * lesion records measured on the voxels (rsy_export_measure_lesions), never from the
 * sampled sizes alone. For example:
 *
 *   Solitary intra-axial mass in the right frontal lobe measuring 46 x 38 mm (axial long x
 *   short axis), with a necrotic core, an irregular enhancing rim about 7 mm thick on
 *   post-contrast T1 and surrounding T2/FLAIR hyperintense oedema (volume 112.3 mL).
 *   No other lesion.
 *
 * Signal words compare each compartment's noise-free signal with that of the tissue hosting
 * the lesion, on the sequences the recipe actually acquires (grouped by weighting: T1, T2,
 * PD, FLAIR), so a phrase about enhancement appears only when a post-contrast sequence
 * exists. Sizes are measured on the mass (the compartments inside the lesion surface,
 * RECIST-style axial long and short axes); margin compartments such as oedema are reported
 * by volume.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generator_internal.h"
#include "rsy_phantoms.h"
#include "rsy_priors.h"

#define RSY__PI 3.14159265358979323846

/* Relative signal change that the text calls hyper-/hypointense or enhancing: a wording
 * threshold of this generator (10 %), not a clinical criterion. */
#define RSY__FINDINGS_CONTRAST_RATIO 1.10

/* Axial long axis from which a lesion is called a "mass": the conventional 3 cm boundary
 * between nodule/lesion and mass (GK). */
#define RSY__FINDINGS_MASS_MM 30.0

/* ---------------------------------------------------------------------------------------- */
/* A growable string; the first allocation failure is remembered and later appends are      */
/* ignored, so callers check once at the end.                                                 */
/* ---------------------------------------------------------------------------------------- */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) RSY_FORMAT(2, 3);

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
        b->oom = 1;
        return;
    }
    if (b->len + (size_t)need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)need + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

/* ---------------------------------------------------------------------------------------- */
/* Sequence groups                                                                            */
/* ---------------------------------------------------------------------------------------- */
typedef struct seq_groups {
    int n_plain; /* distinct weightings without contrast */
    const char *plain_name[RSY_MAX_SEQUENCES];
    const rsy_sequence *plain_seq[RSY_MAX_SEQUENCES];
    int n_post; /* post-contrast sequences */
    const char *post_name[RSY_MAX_SEQUENCES];
    const rsy_sequence *post_seq[RSY_MAX_SEQUENCES];
} seq_groups;

/* Reading order of weightings in the text ("T1", "T2/FLAIR"); other names come last. */
static int weighting_rank(const char *w)
{
    static const char *const order[] = {"T1", "T2", "PD", "FLAIR"};
    for (int i = 0; i < 4; i++)
        if (strcmp(w, order[i]) == 0)
            return i;
    return 4;
}

static void groups_build(const rsy_recipe *r, seq_groups *g)
{
    memset(g, 0, sizeof *g);
    /* Sequences are visited rank by rank in reading order (stable within a rank), so the
     * groups need no sorting afterwards. */
    for (int rank = 0; rank <= 4; rank++) {
        for (int s = 0; s < r->mri.n_sequences; s++) {
            const rsy_sequence *q = &r->mri.sequences[s];
            const char *w = rsy__gen_sequence_weighting(q);
            if (weighting_rank(w) != rank)
                continue;
            if (q->contrast) {
                g->post_name[g->n_post] = w;
                g->post_seq[g->n_post++] = q;
                continue;
            }
            int seen = 0;
            for (int i = 0; i < g->n_plain; i++)
                seen |= strcmp(g->plain_name[i], w) == 0;
            if (!seen) {
                g->plain_name[g->n_plain] = w;
                g->plain_seq[g->n_plain++] = q;
            }
        }
    }
}

/* Signal appearance of one compartment against its host tissue. */
typedef struct appearance {
    int n_hyper, n_hypo;
    const char *hyper[RSY_MAX_SEQUENCES], *hypo[RSY_MAX_SEQUENCES];
    int contrast_acquired;   /* a post-contrast sequence exists */
    const char *enhances_on; /* weighting of the first post-contrast sequence showing it */
} appearance;

static void appearance_of(const rsy_recipe *r, const seq_groups *g, const rsy_mri_props *p,
                          const rsy_mri_props *host, appearance *a)
{
    memset(a, 0, sizeof *a);
    double r1 = r->mri.gd_r1_per_mM_s;
    for (int i = 0; i < g->n_plain; i++) {
        double sp = rsy_mri_signal(g->plain_seq[i], p, r1);
        double sh = rsy_mri_signal(g->plain_seq[i], host, r1);
        if (sp > RSY__FINDINGS_CONTRAST_RATIO * sh)
            a->hyper[a->n_hyper++] = g->plain_name[i];
        else if (sp * RSY__FINDINGS_CONTRAST_RATIO < sh)
            a->hypo[a->n_hypo++] = g->plain_name[i];
    }
    a->contrast_acquired = g->n_post > 0;
    for (int i = 0; i < g->n_post && !a->enhances_on; i++) {
        rsy_sequence pre = *g->post_seq[i];
        pre.contrast = 0;
        double post_s = rsy_mri_signal(g->post_seq[i], p, r1);
        double pre_s = rsy_mri_signal(&pre, p, r1);
        if (post_s > RSY__FINDINGS_CONTRAST_RATIO * pre_s)
            a->enhances_on = g->post_name[i];
    }
}

/* "T2/FLAIR" */
static void sb_join_slash(sbuf *b, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        sb_printf(b, "%s%s", i ? "/" : "", names[i]);
}

/* A tissue or compartment identifier in words: "white_matter" -> "white matter". */
static void sb_words(sbuf *b, const char *ident)
{
    for (const char *c = ident; *c; c++)
        sb_printf(b, "%c", *c == '_' ? ' ' : *c);
}

static void sb_display(sbuf *b, const rsy_compartment *cp)
{
    if (cp->display_name[0])
        sb_printf(b, "%s", cp->display_name);
    else
        sb_words(b, cp->name);
}

/* ", T2/FLAIR hyperintense and T1 hypointense" or ", isointense to white matter", then the
 * enhancement clause when a post-contrast sequence exists. */
static void sb_signal_clause(sbuf *b, const appearance *a, const char *host_name)
{
    if (a->n_hyper) {
        sb_printf(b, ", ");
        sb_join_slash(b, a->hyper, a->n_hyper);
        sb_printf(b, " hyperintense");
    }
    if (a->n_hypo) {
        sb_printf(b, a->n_hyper ? " and " : ", ");
        sb_join_slash(b, a->hypo, a->n_hypo);
        sb_printf(b, " hypointense");
    }
    if (!a->n_hyper && !a->n_hypo && host_name) {
        sb_printf(b, ", isointense to ");
        sb_words(b, host_name);
    }
    if (a->enhances_on)
        sb_printf(b, ", enhancing on post-contrast %s", a->enhances_on);
    else if (a->contrast_acquired)
        sb_printf(b, ", without enhancement");
}

static const char *count_word(int n)
{
    static const char *const words[] = {"No",    "One",   "Two",  "Three", "Four",   "Five",  "Six",
                                        "Seven", "Eight", "Nine", "Ten",   "Eleven", "Twelve"};
    return n >= 0 && n <= 12 ? words[n] : NULL;
}

static int is_intra_axial(const char *host)
{
    static const char *const parenchyma[] = {"grey_matter", "white_matter", "deep_grey",
                                             "cerebellum", "brainstem"};
    for (size_t i = 0; host && i < sizeof parenchyma / sizeof parenchyma[0]; i++)
        if (strcmp(host, parenchyma[i]) == 0)
            return 1;
    return 0;
}

/* The compartments of one lesion that have voxels, split into those inside the lesion
 * surface (radius fraction) and the margins outside it. */
typedef struct lesion_parts {
    int n_inner, n_margin;
    int inner[RSY_MAX_COMPARTMENTS]; /* inside the surface, innermost first */
    int margin[RSY_MAX_COMPARTMENTS];
} lesion_parts;

static void parts_of(const rsy_prior *p, const rsy__gen_class *classes, int class_base,
                     const rsy__gen_finding_lesion *fl, const rsy_lesion_record *whole,
                     lesion_parts *parts)
{
    memset(parts, 0, sizeof *parts);
    for (int k = 0; k < p->n_compartments; k++) {
        int label = classes[class_base + k].label;
        if (label <= 0 || label >= RSY_MAX_LABELS || whole->label_voxels[label] <= 0)
            continue;
        if (p->compartments[k].extent_kind == RSY_EXTENT_MARGIN_MM) {
            parts->margin[parts->n_margin++] = k;
        } else {
            /* Insertion by sampled radius fraction (stable, so ties keep prior order). */
            int pos = parts->n_inner++;
            while (pos > 0 && fl->extent[parts->inner[pos - 1]] > fl->extent[k]) {
                parts->inner[pos] = parts->inner[pos - 1];
                pos--;
            }
            parts->inner[pos] = k;
        }
    }
}

/* Equivalent-sphere diameter (mm) of @p voxels voxels of @p vox_mm3 each. */
static double eq_diameter_mm(int64_t voxels, double vox_mm3)
{
    return cbrt(6.0 * (double)voxels * vox_mm3 / RSY__PI);
}

/* The sentence of one lesion: location, size, then signal or compartments. @p number is 0
 * for a solitary lesion, else its number in the enumeration. */
static void sb_lesion(sbuf *b, const rsy_recipe *r, const rsy__gen_class *classes, int n_tissue,
                      const seq_groups *g, double vox_mm3, const rsy__gen_finding_lesion *fl,
                      const rsy_lesion_record *whole, const rsy_lesion_record *mass, int number)
{
    const rsy_prior *p = &r->lesions[fl->type_index].prior;
    int class_base = n_tissue + rsy_lesion_compartment_offset(r, fl->type_index);
    const char *host = rsy_phantom_class_name(r->phantom.family, fl->host_class);
    const rsy_mri_props *host_props = &classes[fl->host_class].props;
    const rsy_lesion_record *size = mass->voxel_count > 0 ? mass : whole;
    lesion_parts parts;
    parts_of(p, classes, class_base, fl, whole, &parts);

    if (number == 0) {
        const char *noun = size->long_axis_mm >= RSY__FINDINGS_MASS_MM ? "mass" : "lesion";
        sb_printf(b, "Solitary %s%s in the %s measuring",
                  is_intra_axial(host) ? "intra-axial " : "", noun, fl->region);
    } else {
        sb_printf(b, "Lesion %d in the %s measures", number, fl->region);
    }
    sb_printf(b, " %.0f x %.0f mm (axial long x short axis)", size->long_axis_mm,
              size->short_axis_mm);

    appearance a;
    if (parts.n_inner <= 1) {
        /* One compartment forms the lesion: describe its signal directly. */
        int k = parts.n_inner ? parts.inner[0] : (parts.n_margin ? parts.margin[0] : -1);
        if (k >= 0) {
            appearance_of(r, g, &classes[class_base + k].props, host_props, &a);
            sb_signal_clause(b, &a, host);
        }
    }
    int n_items = (parts.n_inner > 1 ? parts.n_inner : 0) + (parts.n_inner ? parts.n_margin : 0);
    int item = 0;
    if (n_items)
        sb_printf(b, ", with ");
    for (int i = 0; parts.n_inner > 1 && i < parts.n_inner; i++, item++) {
        int k = parts.inner[i];
        const rsy_compartment *cp = &p->compartments[k];
        appearance_of(r, g, &classes[class_base + k].props, host_props, &a);
        if (item)
            sb_printf(b, item == n_items - 1 ? " and " : ", ");
        if (i < parts.n_inner - 1) {
            sb_printf(b, "a ");
            sb_display(b, cp);
            if (a.enhances_on)
                sb_printf(b, " enhancing on post-contrast %s", a.enhances_on);
            continue;
        }
        /* The outermost compartment inside the surface is a rim around the inner ones; its
         * thickness comes from the measured volumes as the difference of equivalent-sphere
         * radii. */
        int64_t inner_vox = 0;
        for (int j = 0; j < parts.n_inner - 1; j++)
            inner_vox += whole->label_voxels[classes[class_base + parts.inner[j]].label];
        double thick =
            0.5 * (eq_diameter_mm(mass->voxel_count, vox_mm3) - eq_diameter_mm(inner_vox, vox_mm3));
        double thick_mm = thick < 1.0 ? 1.0 : floor(thick + 0.5);
        const char *irregular =
            p->lobulation_lmax > 0 && p->lobulation_amplitude > 0.0 ? "irregular " : "";
        if (a.enhances_on) {
            sb_printf(b, "an %senhancing rim about %.0f mm thick on post-contrast %s", irregular,
                      thick_mm, a.enhances_on);
        } else {
            /* Described by its signal, not by its name: a prior's name such as "enhancing
             * tumour" must not claim an enhancement that no sequence shows. */
            sb_printf(b, "a%s %s", irregular[0] ? "n" : "", irregular);
            if (a.n_hyper) {
                sb_join_slash(b, a.hyper, a.n_hyper);
                sb_printf(b, " hyperintense ");
            }
            if (a.n_hypo) {
                if (a.n_hyper)
                    sb_printf(b, "and ");
                sb_join_slash(b, a.hypo, a.n_hypo);
                sb_printf(b, " hypointense ");
            }
            sb_printf(b, "rim about %.0f mm thick", thick_mm);
            if (a.contrast_acquired)
                sb_printf(b, " without enhancement");
        }
    }
    for (int i = 0; parts.n_inner && i < parts.n_margin; i++, item++) {
        int k = parts.margin[i];
        appearance_of(r, g, &classes[class_base + k].props, host_props, &a);
        if (item)
            sb_printf(b, item == n_items - 1 ? " and " : ", ");
        sb_printf(b, "surrounding ");
        if (a.n_hyper) {
            sb_join_slash(b, a.hyper, a.n_hyper);
            sb_printf(b, " hyperintense ");
        } else if (a.n_hypo) {
            sb_join_slash(b, a.hypo, a.n_hypo);
            sb_printf(b, " hypointense ");
        }
        sb_display(b, &p->compartments[k]);
        sb_printf(b, " (volume %.1f mL)",
                  (double)whole->label_voxels[classes[class_base + k].label] * vox_mm3 / 1000.0);
    }
    sb_printf(b, ".");
}

rsy_status rsy__gen_findings(const rsy_recipe *r, const rsy__gen_class *classes,
                             const rsy_geometry *geom, const rsy__gen_finding_lesion *lesions,
                             const rsy_lesion_record *whole, const rsy_lesion_record *mass,
                             int n_lesions, char **out)
{
    *out = NULL;
    sbuf b = {NULL, 0, 0, 0};
    double vox_mm3 = geom->spacing_mm[0] * geom->spacing_mm[1] * geom->spacing_mm[2];
    int n_tissue = rsy_phantom_n_classes(r->phantom.family);
    seq_groups g;
    groups_build(r, &g);

    /* Lesions whose rasterisation is empty are not in the image and are not reported. */
    int shown = 0, all_intra = 1;
    for (int i = 0; i < n_lesions; i++)
        if (whole[i].voxel_count > 0) {
            shown++;
            const char *host = rsy_phantom_class_name(r->phantom.family, lesions[i].host_class);
            all_intra &= is_intra_axial(host);
        }

    if (shown == 0) {
        sb_printf(&b, "No focal lesion.");
    } else if (shown == 1) {
        for (int i = 0; i < n_lesions; i++)
            if (whole[i].voxel_count > 0)
                sb_lesion(&b, r, classes, n_tissue, &g, vox_mm3, &lesions[i], &whole[i], &mass[i],
                          0);
        sb_printf(&b, " No other lesion.");
    } else {
        const char *w = count_word(shown);
        if (w)
            sb_printf(&b, "%s %slesions.", w, all_intra ? "intra-axial " : "");
        else
            sb_printf(&b, "%d %slesions.", shown, all_intra ? "intra-axial " : "");
        int num = 0;
        for (int i = 0; i < n_lesions; i++) {
            if (whole[i].voxel_count <= 0)
                continue;
            sb_printf(&b, " ");
            sb_lesion(&b, r, classes, n_tissue, &g, vox_mm3, &lesions[i], &whole[i], &mass[i],
                      ++num);
        }
    }
    if (b.oom) {
        free(b.s);
        return RSY_ENOMEM;
    }
    *out = b.s;
    return RSY_OK;
}
