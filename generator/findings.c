/*
 * findings.c: the findings text of a case, in a radiologist's register, written from the
 * lesion records measured on the voxels (rsy_export_measure_lesions), never from the
 * sampled sizes alone. For example:
 *
 *   Solitary intra-axial mass in the right frontal lobe measuring 46 x 38 mm (axial long x
 *   short axis), with a necrotic core, an irregular enhancing rim about 7 mm thick on
 *   post-contrast T1 and surrounding T2/FLAIR hyperintense peritumoral oedema (volume
 *   112.3 mL). Local mass effect, with displacement of the adjacent structures by up to 4 mm.
 *   No other lesion.
 *
 *   Multiple (n = 37) thin-walled cysts, bilateral and lower-zone predominant, measuring 2 to
 *   12 mm (the largest 12 x 10 mm, in the right lower lobe).
 *
 * Lesions are grouped by lesion type (recipe order): one lesion is described in full; two to
 * RSY__FINDINGS_LIST_MAX are described once (from the largest) and listed with their location
 * and size; more are counted ("Multiple (n = 37)"), with their distribution (side; lung zone)
 * and size range.
 *
 * Location: the phantom's anatomical words for the lesion centre (lobe, hepatic segment,
 * kidney pole), with the placement rule's relation for the brain (periventricular,
 * juxtacortical, grey-white matter junction, subependymal, extra-axial) and, in the lung, the
 * zone (the third of the host tissue's superior-inferior extent).
 *
 * Appearance: MRI signal words compare each compartment's noise-free signal with that of the
 * tissue hosting the lesion, on the sequences the recipe actually acquires (grouped by
 * weighting: T1, T2, PD, FLAIR), so a phrase about enhancement appears only when a
 * post-contrast sequence exists. CT words name the material of a compartment from its
 * non-contrast HU (air, ground glass, fat, fluid, calcification), or compare its HU in the
 * recipe's phase with the host's; enhancement is the rise over the non-contrast HU, named only
 * in a contrast phase. Compartments: nested radius-fraction compartments (a core inside a
 * rim), walls (a cyst's wall makes it "thin-walled"; a capsule or haemosiderin rim is named),
 * inclusions ("containing macroscopic fat"), networks ("with septal thickening") and the
 * margins outside the surface (oedema, reported by volume). Sizes are measured on the mass
 * (every compartment inside the lesion surface; RECIST-style axial long and short axes).
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

/* Lesions of one type listed one by one; more are counted ("Multiple (n = 37)"). */
#define RSY__FINDINGS_LIST_MAX 5

/* A cyst wall up to this thickness is "thin": LAM cyst walls are faintly perceptible up to
 * 2 mm (domain.md Card 1, [S55]). */
#define RSY__FINDINGS_THIN_WALL_MM 2.0

/* Displacement below which mass effect is not mentioned: under half a millimetre no reader
 * sees it (GK). */
#define RSY__FINDINGS_MASS_EFFECT_MM 0.5

/* CT wording thresholds (HU, non-contrast unless stated):
 * - enhancement: a rise of >= 20 HU over the non-contrast value, the conventional threshold
 *   of definite enhancement (GK);
 * - hyper-/hypoattenuating: a difference of >= 10 HU to the host in the recipe's phase, a
 *   wording threshold of this generator; relative words are left out beyond 300 HU, where
 *   the material words say more (a nodule in the lung);
 * - air: <= -900 HU, between lung (-860) and cyst lumen (-1000 to -950) (domain.md Card 1);
 * - ground glass (in the lung): <= -400 HU, the solid-part threshold of [S21] (domain.md
 *   Card 11; GGO -700 to -400 HU, Card 3);
 * - fat: -150 to -20 HU, macroscopic fat below -20 HU (domain.md Card 9, [S18, S88, S89]);
 * - fluid: -10 to 20 HU and not enhancing, simple cyst <= 20 HU (domain.md Card 10, [S19]);
 * - calcific: >= 130 HU, the calcium threshold of coronary calcium scoring (GK). */
#define RSY__CT_ENHANCE_HU 20.0
#define RSY__CT_RELATIVE_HU 10.0
#define RSY__CT_RELATIVE_MAX_HU 300.0
#define RSY__CT_AIR_HU (-900.0)
#define RSY__CT_GROUND_GLASS_HU (-400.0)
#define RSY__CT_FAT_MIN_HU (-150.0)
#define RSY__CT_FAT_MAX_HU (-20.0)
#define RSY__CT_FLUID_MIN_HU (-10.0)
#define RSY__CT_FLUID_MAX_HU 20.0
#define RSY__CT_CALCIFIC_HU 130.0

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
/* Sequence groups (MRI)                                                                      */
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

/* A compartment's display name mid-sentence: its first letter lower-cased unless the name
 * starts with an acronym ("GGO"), or its identifier in words when it has none. */
static void sb_display(sbuf *b, const rsy_compartment *cp)
{
    const char *d = cp->display_name;
    if (!d[0]) {
        sb_words(b, cp->name);
        return;
    }
    int acronym = d[1] >= 'A' && d[1] <= 'Z';
    if (d[0] >= 'A' && d[0] <= 'Z' && !acronym)
        sb_printf(b, "%c%s", d[0] - 'A' + 'a', d + 1);
    else
        sb_printf(b, "%s", d);
}

/* "T2/FLAIR hyperintense and T1 hypointense" (nothing when neither). */
static void sb_mri_signal_words(sbuf *b, const appearance *a)
{
    if (a->n_hyper) {
        sb_join_slash(b, a->hyper, a->n_hyper);
        sb_printf(b, " hyperintense");
    }
    if (a->n_hypo) {
        sb_printf(b, a->n_hyper ? " and " : "");
        sb_join_slash(b, a->hypo, a->n_hypo);
        sb_printf(b, " hypointense");
    }
}

/* ", T2/FLAIR hyperintense and T1 hypointense" or ", isointense to white matter", then the
 * enhancement clause when a post-contrast sequence exists. */
static void sb_signal_clause(sbuf *b, const appearance *a, const char *host_name)
{
    if (a->n_hyper || a->n_hypo) {
        sb_printf(b, ", ");
        sb_mri_signal_words(b, a);
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

static const char *count_word(int n, int capital)
{
    static const char *const words[2][13] = {{"no", "one", "two", "three", "four", "five", "six",
                                              "seven", "eight", "nine", "ten", "eleven", "twelve"},
                                             {"No", "One", "Two", "Three", "Four", "Five", "Six",
                                              "Seven", "Eight", "Nine", "Ten", "Eleven", "Twelve"}};
    return n >= 0 && n <= 12 ? words[capital ? 1 : 0][n] : NULL;
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

/* ---------------------------------------------------------------------------------------- */
/* CT attenuation                                                                             */
/* ---------------------------------------------------------------------------------------- */
static const char *phase_words(rsy_ct_phase ph)
{
    switch (ph) {
    case RSY_CT_PHASE_ARTERIAL:
        return "the arterial phase";
    case RSY_CT_PHASE_PORTAL_VENOUS:
        return "the portal venous phase";
    case RSY_CT_PHASE_NON_CONTRAST:
        break;
    }
    return "non-contrast CT";
}

/* What a CT reader says of one compartment. */
typedef struct ct_look {
    double hu, hu0, host_hu; /* in the recipe's phase; non-contrast; the host's */
    int contrast_phase;      /* the recipe's phase is not non-contrast */
    int enhancing;           /* contrast phase and hu - hu0 >= RSY__CT_ENHANCE_HU */
    int relative;            /* +1 hyper-, -1 hypo-, 0 isoattenuating to the host; 2 when the
                                difference is too large for relative words */
    const char *material;    /* "air", "ground-glass", "fat", "fluid", "calcific" or NULL */
} ct_look;

/* ---------------------------------------------------------------------------------------- */
/* The case and one lesion, as the text needs them                                           */
/* ---------------------------------------------------------------------------------------- */
typedef struct fctx {
    const rsy_recipe *r;
    const rsy__gen_class *classes;
    int n_tissue;
    int is_ct;
    int is_head, is_thorax;
    seq_groups g;
    double vox_mm3;
    double pixel_mm; /* smallest in-plane spacing */
    int *phase_said; /* CT: the contrast phase was named in the current passage */
} fctx;

typedef struct lview {
    const rsy_prior *p;
    const rsy__gen_finding_lesion *fl;
    const rsy_lesion_record *whole, *mass;
    const rsy_lesion_record *size; /* mass when it has voxels, else whole */
    int class_base;
    const char *host; /* host tissue name at the centre */
    int ref_class;    /* class the appearance is compared with: the host, or grey matter for a
                         lesion in the brain's CSF spaces (extra-axial, intraventricular) */
    const char *ref;  /* its name */
    /* compartments that have voxels, by kind */
    int n_inner, inner[RSY_MAX_COMPARTMENTS]; /* radius fractions, innermost first */
    int n_wall, wall[RSY_MAX_COMPARTMENTS];
    int n_incl, incl[RSY_MAX_COMPARTMENTS];
    int n_net, net[RSY_MAX_COMPARTMENTS];
    int n_margin, margin[RSY_MAX_COMPARTMENTS];
    int is_cyst;    /* the prior's shape is a cyst */
    double wall_mm; /* sampled thickness of the cyst wall (largest WALL_MM extent) */
} lview;

static int in_lung(const lview *v)
{
    return v->host && strcmp(v->host, "lung") == 0;
}

static int64_t comp_voxels(const fctx *x, const lview *v, int k)
{
    int label = x->classes[v->class_base + k].label;
    if (label <= 0 || label >= RSY_MAX_LABELS)
        return 0;
    return v->whole->label_voxels[label];
}

static void view_build(const fctx *x, const rsy__gen_finding_lesion *fl,
                       const rsy_lesion_record *whole, const rsy_lesion_record *mass, lview *v)
{
    memset(v, 0, sizeof *v);
    const rsy_recipe *r = x->r;
    v->p = &r->lesions[fl->type_index].prior;
    v->fl = fl;
    v->whole = whole;
    v->mass = mass;
    v->size = mass->voxel_count > 0 ? mass : whole;
    v->class_base = x->n_tissue + rsy_lesion_compartment_offset(r, fl->type_index);
    v->host = rsy_phantom_class_name(r->phantom.family, fl->host_class);
    v->is_cyst = v->p->shape_kind == RSY_SHAPE_CYST;
    /* Lesions bathed in CSF are described against the adjacent cortex, as radiologists
     * describe meningiomas (iso- or hypointense to grey matter, domain.md Card 5) (GK). */
    v->ref_class = fl->host_class;
    if (x->is_head && v->host &&
        (strcmp(v->host, "csf") == 0 || strcmp(v->host, "ventricles") == 0)) {
        int gm = rsy_phantom_class_id(r->phantom.family, "grey_matter");
        if (gm >= 0)
            v->ref_class = gm;
    }
    v->ref = rsy_phantom_class_name(r->phantom.family, v->ref_class);
    for (int k = 0; k < v->p->n_compartments; k++) {
        const rsy_compartment *cp = &v->p->compartments[k];
        if (cp->extent_kind == RSY_EXTENT_WALL_MM && fl->extent[k] > v->wall_mm)
            v->wall_mm = fl->extent[k];
        if (comp_voxels(x, v, k) <= 0)
            continue;
        switch (cp->extent_kind) {
        case RSY_EXTENT_RADIUS_FRACTION: {
            /* Insertion by sampled radius fraction (stable, so ties keep prior order). */
            int pos = v->n_inner++;
            while (pos > 0 && fl->extent[v->inner[pos - 1]] > fl->extent[k]) {
                v->inner[pos] = v->inner[pos - 1];
                pos--;
            }
            v->inner[pos] = k;
            break;
        }
        case RSY_EXTENT_MARGIN_MM:
            v->margin[v->n_margin++] = k;
            break;
        case RSY_EXTENT_WALL_MM:
            v->wall[v->n_wall++] = k;
            break;
        case RSY_EXTENT_INCLUSIONS:
            v->incl[v->n_incl++] = k;
            break;
        case RSY_EXTENT_NETWORK:
            v->net[v->n_net++] = k;
            break;
        }
    }
}

static ct_look ct_look_of(const fctx *x, const lview *v, int k)
{
    ct_look c;
    memset(&c, 0, sizeof c);
    const rsy_recipe *r = x->r;
    const rsy_compartment *cp = &v->p->compartments[k];
    c.hu = x->classes[v->class_base + k].hu;
    c.host_hu = x->classes[v->ref_class].hu;
    rsy_ct_props nc;
    /* The class table was built from the same compartment, so only the phase differs. */
    c.hu0 = rsy__gen_compartment_ct(r, v->p, cp, RSY_CT_PHASE_NON_CONTRAST, &nc) == RSY_OK ? nc.hu
                                                                                           : c.hu;
    c.contrast_phase = r->ct.phase != RSY_CT_PHASE_NON_CONTRAST;
    c.enhancing = c.contrast_phase && c.hu - c.hu0 >= RSY__CT_ENHANCE_HU;
    double d = c.hu - c.host_hu;
    int in_lung = v->host && strcmp(v->host, "lung") == 0;
    /* In the lung the material words (air, ground glass, solid) say it all. */
    c.relative = fabs(d) > RSY__CT_RELATIVE_MAX_HU || in_lung
                     ? 2
                     : (d >= RSY__CT_RELATIVE_HU ? 1 : (d <= -RSY__CT_RELATIVE_HU ? -1 : 0));
    if (c.hu0 <= RSY__CT_AIR_HU)
        c.material = "air";
    else if (in_lung && c.hu0 <= RSY__CT_GROUND_GLASS_HU)
        c.material = "ground-glass";
    else if (c.hu0 >= RSY__CT_FAT_MIN_HU && c.hu0 <= RSY__CT_FAT_MAX_HU)
        c.material = "fat";
    else if (c.hu0 >= RSY__CT_FLUID_MIN_HU && c.hu0 <= RSY__CT_FLUID_MAX_HU && !c.enhancing)
        c.material = "fluid";
    else if (c.hu0 >= RSY__CT_CALCIFIC_HU)
        c.material = "calcific";
    return c;
}

static const char *relative_word(int rel)
{
    return rel > 0 ? "hyperattenuating" : (rel < 0 ? "hypoattenuating" : "isoattenuating");
}

/* ", hypoattenuating to liver in the portal venous phase", ", of fluid attenuation",
 * ", hyperenhancing relative to liver in the arterial phase", ", calcified". */
static void sb_ct_clause(sbuf *b, const fctx *x, const lview *v, const ct_look *c)
{
    if (c->material && strcmp(c->material, "calcific") == 0) {
        sb_printf(b, ", calcified");
        return;
    }
    if (in_lung(v)) {
        /* Solid, ground glass or air: the noun and its adjective say it (sb_adjective). */
        if (c->enhancing) {
            sb_printf(b, ", enhancing in %s", phase_words(x->r->ct.phase));
            *x->phase_said = 1;
        }
        return;
    }
    if (c->material) {
        /* Air in a cyst is what makes it a cyst: nothing to add. */
        if (!(v->is_cyst && strcmp(c->material, "air") == 0))
            sb_printf(b, ", of %s attenuation", c->material);
        return;
    }
    if (c->relative == 2 || !v->ref) {
        if (c->enhancing) {
            sb_printf(b, ", enhancing in %s", phase_words(x->r->ct.phase));
            *x->phase_said = 1;
        }
        return;
    }
    if (c->enhancing && c->relative > 0) {
        sb_printf(b, ", hyperenhancing relative to ");
        sb_words(b, v->ref);
        sb_printf(b, " in %s", phase_words(x->r->ct.phase));
        *x->phase_said = 1;
        return;
    }
    sb_printf(b, ", %s%s to ", c->enhancing ? "enhancing, " : "", relative_word(c->relative));
    sb_words(b, v->ref);
    if (c->contrast_phase) {
        sb_printf(b, " in %s%s", phase_words(x->r->ct.phase),
                  c->enhancing ? "" : ", without enhancement");
        *x->phase_said = 1;
    }
}

/* The appearance of compartment k as a whole-lesion clause (", ..."). */
static void sb_look_clause(sbuf *b, const fctx *x, const lview *v, int k)
{
    if (x->is_ct) {
        ct_look c = ct_look_of(x, v, k);
        sb_ct_clause(b, x, v, &c);
        return;
    }
    appearance a;
    appearance_of(x->r, &x->g, &x->classes[v->class_base + k].props,
                  &x->classes[v->ref_class].props, &a);
    sb_signal_clause(b, &a, v->ref);
}

/* Adjective words before a compartment noun ("enhancing ", "T2 hypointense ", ""), and
 * whether it enhances. */
static int sb_look_adjective(sbuf *b, const fctx *x, const lview *v, int k)
{
    if (x->is_ct) {
        ct_look c = ct_look_of(x, v, k);
        if (c.enhancing) {
            sb_printf(b, "enhancing ");
            return 1;
        }
        if (c.material && strcmp(c.material, "calcific") == 0)
            sb_printf(b, "calcified ");
        else if (c.relative == 1 || c.relative == -1)
            sb_printf(b, "%s ", relative_word(c.relative));
        return 0;
    }
    appearance a;
    appearance_of(x->r, &x->g, &x->classes[v->class_base + k].props,
                  &x->classes[v->ref_class].props, &a);
    if (a.enhances_on) {
        sb_printf(b, "enhancing ");
        return 1;
    }
    if (a.n_hyper || a.n_hypo) {
        sb_mri_signal_words(b, &a);
        sb_printf(b, " ");
    }
    return 0;
}

/* " on post-contrast T1" / " in the arterial phase" after an enhancing compartment (the CT
 * phase once per passage). */
static void sb_enhance_where(sbuf *b, const fctx *x, const lview *v, int k)
{
    if (x->is_ct) {
        if (!*x->phase_said)
            sb_printf(b, " in %s", phase_words(x->r->ct.phase));
        *x->phase_said = 1;
        return;
    }
    appearance a;
    appearance_of(x->r, &x->g, &x->classes[v->class_base + k].props,
                  &x->classes[v->ref_class].props, &a);
    if (a.enhances_on)
        sb_printf(b, " on post-contrast %s", a.enhances_on);
}

/* The CT material of the lesion body (its outermost inner compartment), or NULL. */
static const char *body_material(const fctx *x, const lview *v)
{
    if (!x->is_ct || v->n_inner == 0)
        return NULL;
    ct_look c = ct_look_of(x, v, v->inner[v->n_inner - 1]);
    return c.material;
}

/* ---------------------------------------------------------------------------------------- */
/* Nouns and locations                                                                        */
/* ---------------------------------------------------------------------------------------- */
/* 1 right, 2 left, 0 neither: the first of the words "right"/"left" in the region. */
static int region_side(const char *region)
{
    for (const char *s = region; s && *s; s++) {
        if (s != region && s[-1] != ' ')
            continue;
        if (strncmp(s, "right", 5) == 0 && (s[5] == ' ' || s[5] == '\0'))
            return 1;
        if (strncmp(s, "left", 4) == 0 && (s[4] == ' ' || s[4] == '\0'))
            return 2;
    }
    return 0;
}

/* Adjective(s) before the noun: "intra-axial ", "periventricular ", "thin-walled ",
 * "part-solid "... (may be empty). */
static void sb_adjective(sbuf *b, const fctx *x, const lview *v)
{
    const rsy_prior *p = v->p;
    if (v->is_cyst) {
        sb_printf(b, "%s-walled ", v->wall_mm <= RSY__FINDINGS_THIN_WALL_MM ? "thin" : "thick");
        return;
    }
    if (x->is_head) {
        switch (p->rule) {
        case RSY_PLACE_PERIVENTRICULAR:
            sb_printf(b, "periventricular ");
            return;
        case RSY_PLACE_JUXTACORTICAL:
            sb_printf(b, "juxtacortical ");
            return;
        case RSY_PLACE_SUBEPENDYMAL:
            sb_printf(b, "subependymal ");
            return;
        case RSY_PLACE_EXTRA_AXIAL:
            sb_printf(b, "extra-axial ");
            return;
        case RSY_PLACE_HOST_TISSUE:
        case RSY_PLACE_GREY_WHITE_JUNCTION:
        case RSY_PLACE_SUBPLEURAL:
        case RSY_PLACE_SUBCAPSULAR:
            break;
        }
        if (is_intra_axial(v->host))
            sb_printf(b, "intra-axial ");
        return;
    }
    if (x->is_ct && in_lung(v) && v->n_inner > 0) {
        /* Fleischner: solid, ground-glass, part-solid (a solid part inside ground glass). */
        const char *outer = body_material(x, v);
        int solid_inside = 0;
        for (int i = 0; i + 1 < v->n_inner; i++) {
            ct_look c = ct_look_of(x, v, v->inner[i]);
            solid_inside |= c.material == NULL || strcmp(c.material, "calcific") == 0;
        }
        if (outer && strcmp(outer, "ground-glass") == 0)
            sb_printf(b, solid_inside ? "part-solid " : "ground-glass ");
        else if (!outer)
            sb_printf(b, "solid ");
    }
}

/* "mass", "nodule", "cyst" or "lesion" for a lesion of axial long axis @p long_mm. */
static const char *noun_of(const fctx *x, const lview *v, double long_mm)
{
    if (v->is_cyst)
        return "cyst";
    if (long_mm >= RSY__FINDINGS_MASS_MM)
        return "mass";
    if (in_lung(v) || (x->is_head && v->p->rule == RSY_PLACE_SUBEPENDYMAL))
        return "nodule";
    return "lesion";
}

static void sb_noun(sbuf *b, const char *noun, int plural)
{
    if (!plural)
        sb_printf(b, "%s", noun);
    else
        sb_printf(b, "%s%s", noun, strcmp(noun, "mass") == 0 ? "es" : "s");
}

/* sb_location flags: the lung zone; the plain region without the grey-white junction (said
 * once in a group's header). */
#define LOC_ZONE 1
#define LOC_PLAIN 2

/* "in the right frontal lobe", "over the right frontal lobe", "along the right lateral
 * ventricle", "at the grey-white matter junction of the left parietal lobe", "in the right
 * lower lobe (lower zone)". */
static void sb_location(sbuf *b, const fctx *x, const lview *v, int flags)
{
    const char *region = v->fl->region ? v->fl->region : "unknown location";
    if (x->is_head) {
        int side = region_side(region);
        const char *sd = side == 1 ? "right " : (side == 2 ? "left " : "");
        switch (v->p->rule) {
        case RSY_PLACE_EXTRA_AXIAL: {
            /* The phantom calls a point outside the brain "right extra-axial space over the
             * frontal lobe": the noun already says extra-axial. */
            const char *over = strstr(region, "extra-axial space over the ");
            if (over)
                sb_printf(b, "over the %s%s", sd, over + strlen("extra-axial space over the "));
            else
                sb_printf(b, "over the %s", region);
            return;
        }
        case RSY_PLACE_SUBEPENDYMAL:
            sb_printf(b, "along the %slateral ventricle", sd);
            return;
        case RSY_PLACE_GREY_WHITE_JUNCTION:
            if (flags & LOC_PLAIN)
                break;
            sb_printf(b, "at the grey-white matter junction of the %s", region);
            return;
        case RSY_PLACE_HOST_TISSUE:
        case RSY_PLACE_PERIVENTRICULAR:
        case RSY_PLACE_JUXTACORTICAL:
        case RSY_PLACE_SUBPLEURAL:
        case RSY_PLACE_SUBCAPSULAR:
            break;
        }
        sb_printf(b, "in the %s", region);
        return;
    }
    sb_printf(b, "in the %s", region);
    if ((flags & LOC_ZONE) && x->is_thorax && in_lung(v) && v->fl->zone >= 0 && v->fl->zone <= 2) {
        static const char *const zones[3] = {"upper", "middle", "lower"};
        sb_printf(b, " (%s zone)", zones[v->fl->zone]);
    }
}

/* "46 x 38 mm", or "under 3 mm" for a lesion one voxel wide in plane (its axes between voxel
 * centres are 0). */
static void sb_size(sbuf *b, const fctx *x, const rsy_lesion_record *s)
{
    if (s->long_axis_mm < 0.5)
        sb_printf(b, "under %.0f mm", fmax(1.0, ceil(x->pixel_mm)));
    else
        sb_printf(b, "%.0f x %.0f mm", s->long_axis_mm, s->short_axis_mm);
}

/* Equivalent-sphere diameter (mm) of @p voxels voxels of @p vox_mm3 each. */
static double eq_diameter_mm(int64_t voxels, double vox_mm3)
{
    return cbrt(6.0 * (double)voxels * vox_mm3 / RSY__PI);
}

/* Round a thickness to whole mm, at least 1. */
static double thickness_mm(double t)
{
    return t < 1.0 ? 1.0 : floor(t + 0.5);
}

/* ---------------------------------------------------------------------------------------- */
/* The description of one lesion (also the shared description of a group, from its largest) */
/* ---------------------------------------------------------------------------------------- */
/* A list of phrases joined "A, B and C", each written by the caller between item() calls. */
typedef struct plist {
    sbuf *b;
    int n, total;
} plist;

static void item(plist *l)
{
    if (l->n)
        sb_printf(l->b, l->n == l->total - 1 ? " and " : ", ");
    l->n++;
}

/* Whether the adjective @p adj ("T2 hypointense ", "enhancing ") repeats a word of the
 * display name @p name ("enhancing capsule"): then the name says it alone. */
static int adjective_in_name(const char *adj, const char *name)
{
    if (!adj || !adj[0] || !name)
        return 0;
    size_t n = strlen(adj);
    while (n > 0 && adj[n - 1] == ' ')
        n--;
    size_t start = n;
    while (start > 0 && adj[start - 1] != ' ' && adj[start - 1] != '/')
        start--;
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)(n - start), adj + start);
    return word[0] && strstr(name, word) != NULL;
}

/* The clauses after the size: appearance of a one-compartment lesion, inclusions, then
 * ", with" the nested compartments, walls, networks and margins. @p margin_ml[k] is the
 * volume (mL) to report for margin compartment k, a "total" over a group when @p total. */
static void sb_clauses(sbuf *b, const fctx *x, const lview *v, const double *margin_ml, int total)
{
    const rsy_prior *p = v->p;
    /* One compartment forms the lesion body (or a cyst's fluid): describe it directly. */
    if (v->n_inner == 1)
        sb_look_clause(b, x, v, v->inner[0]);
    else if (v->n_inner == 0 && v->n_wall > 0 && !v->is_cyst)
        sb_look_clause(b, x, v, v->wall[0]);

    /* Inclusions: "containing" what they are (fat, calcification, blood), except enhancing
     * ones, which join the "with" list ("with peripheral nodular enhancement"). */
    int incl_enh[RSY_MAX_COMPARTMENTS], n_contain = 0, n_incl_with = 0;
    for (int i = 0; i < v->n_incl; i++) {
        sbuf tmp = {NULL, 0, 0, 0};
        incl_enh[i] = sb_look_adjective(&tmp, x, v, v->incl[i]);
        free(tmp.s);
        n_incl_with += incl_enh[i];
        n_contain += !incl_enh[i];
    }
    if (n_contain > 0) {
        sb_printf(b, ", containing ");
        plist l = {b, 0, n_contain};
        for (int i = 0; i < v->n_incl; i++) {
            if (incl_enh[i])
                continue;
            item(&l);
            sb_display(b, &p->compartments[v->incl[i]]);
        }
    }

    /* A part-solid nodule (ground glass around solid parts): the solid parts by their size,
     * as the Fleischner guidelines measure them [S93]; the ground glass is in the adjective. */
    const char *outer = body_material(x, v);
    int ground_glass = v->n_inner > 1 && outer && strcmp(outer, "ground-glass") == 0;

    /* The "with" list. Nested compartments need two or more; a cyst's wall is in its
     * adjective. */
    int n_nested = v->n_inner > 1 ? v->n_inner - ground_glass : 0;
    int n_walls = v->is_cyst ? 0 : v->n_wall;
    int n_items = n_nested + n_walls + n_incl_with + v->n_net + v->n_margin;
    if (!n_items)
        return;
    sb_printf(b, ", with ");
    plist l = {b, 0, n_items};
    for (int i = 0; i < n_nested; i++) {
        int k = v->inner[i];
        const rsy_compartment *cp = &p->compartments[k];
        item(&l);
        if (ground_glass) {
            sb_printf(b, "a ");
            sb_display(b, cp);
            sb_printf(b, " of about %.0f mm", eq_diameter_mm(comp_voxels(x, v, k), x->vox_mm3));
            continue;
        }
        if (i < n_nested - 1) {
            sb_printf(b, "a ");
            sb_display(b, cp);
            sbuf tmp = {NULL, 0, 0, 0};
            if (sb_look_adjective(&tmp, x, v, k)) {
                sb_printf(b, " enhancing");
                sb_enhance_where(b, x, v, k);
            }
            free(tmp.s);
            continue;
        }
        /* The outermost compartment inside the surface is a rim around the inner ones; its
         * thickness comes from the measured volumes as the difference of equivalent-sphere
         * radii. */
        int64_t inner_vox = 0;
        for (int j = 0; j < n_nested - 1; j++)
            inner_vox += comp_voxels(x, v, v->inner[j]);
        double t = thickness_mm(0.5 * (eq_diameter_mm(v->mass->voxel_count, x->vox_mm3) -
                                       eq_diameter_mm(inner_vox, x->vox_mm3)));
        const char *irregular =
            p->lobulation_lmax > 0 && p->lobulation_amplitude > 0.0 ? "irregular " : "";
        /* Described by its appearance, not by its name: a prior's name such as "enhancing
         * tumour" must not claim an enhancement that no image shows. */
        sbuf adj = {NULL, 0, 0, 0};
        int enh = sb_look_adjective(&adj, x, v, k);
        const char *a = adj.s ? adj.s : "";
        const char *first = irregular[0] ? irregular : a;
        int vowel = first[0] && strchr("aeiouAEIOU", first[0]) != NULL;
        sb_printf(b, "a%s %s%srim about %.0f mm thick", vowel ? "n" : "", irregular, a, t);
        if (enh)
            sb_enhance_where(b, x, v, k);
        else if (!x->is_ct && x->g.n_post > 0)
            sb_printf(b, " without enhancement");
        free(adj.s);
    }
    for (int i = 0; i < n_walls; i++) {
        int k = v->wall[i];
        item(&l);
        sbuf adj = {NULL, 0, 0, 0};
        int enh = sb_look_adjective(&adj, x, v, k);
        const char *a = adj.s ? adj.s : "";
        sbuf name = {NULL, 0, 0, 0};
        sb_display(&name, &p->compartments[k]);
        if (adjective_in_name(a, name.s))
            a = "";
        const char *first = a[0] ? a : (name.s ? name.s : "");
        int vowel = first[0] && strchr("aeiouAEIOU", first[0]) != NULL;
        sb_printf(b, "a%s %s%s about %.0f mm thick", vowel ? "n" : "", a, name.s ? name.s : "",
                  thickness_mm(v->fl->extent[k]));
        if (enh)
            sb_enhance_where(b, x, v, k);
        free(name.s);
        free(adj.s);
    }
    for (int i = 0; i < v->n_incl; i++) {
        if (!incl_enh[i])
            continue;
        item(&l);
        sb_display(b, &p->compartments[v->incl[i]]);
    }
    for (int i = 0; i < v->n_net; i++) {
        item(&l);
        sb_display(b, &p->compartments[v->net[i]]);
    }
    for (int i = 0; i < v->n_margin; i++) {
        int k = v->margin[i];
        item(&l);
        sb_printf(b, "surrounding ");
        if (x->is_ct) {
            ct_look c = ct_look_of(x, v, k);
            if (c.relative == 1 || c.relative == -1)
                sb_printf(b, "%s ", relative_word(c.relative));
        } else {
            appearance a;
            appearance_of(x->r, &x->g, &x->classes[v->class_base + k].props,
                          &x->classes[v->ref_class].props, &a);
            if (a.n_hyper) {
                sb_join_slash(b, a.hyper, a.n_hyper);
                sb_printf(b, " hyperintense ");
            } else if (a.n_hypo) {
                sb_join_slash(b, a.hypo, a.n_hypo);
                sb_printf(b, " hypointense ");
            }
        }
        sb_display(b, &p->compartments[k]);
        sb_printf(b, " (%svolume %.1f mL)", total ? "total " : "", margin_ml[k]);
    }
}

/* " Local mass effect, with displacement of the adjacent structures by up to 4 mm." */
static void sb_mass_effect(sbuf *b, double displacement_mm)
{
    if (displacement_mm >= RSY__FINDINGS_MASS_EFFECT_MM)
        sb_printf(b,
                  " Local mass effect, with displacement of the adjacent structures by up to "
                  "%.0f mm.",
                  displacement_mm);
}

/* Volumes (mL) of the margin compartments of @p v alone. */
static void margin_volumes(const fctx *x, const lview *v, double *ml)
{
    for (int k = 0; k < RSY_MAX_COMPARTMENTS; k++)
        ml[k] = 0.0;
    for (int i = 0; i < v->n_margin; i++)
        ml[v->margin[i]] = (double)comp_voxels(x, v, v->margin[i]) * x->vox_mm3 / 1000.0;
}

/* One lesion of its type: "Solitary intra-axial mass in ... measuring ...", or, when the case
 * has other lesions, "An intra-axial mass in ...". */
static void sb_single(sbuf *b, const fctx *x, const lview *v, int solitary)
{
    const char *noun = noun_of(x, v, v->size->long_axis_mm);
    sbuf adj = {NULL, 0, 0, 0};
    sb_adjective(&adj, x, v);
    const char *a = adj.s ? adj.s : "";
    if (solitary) {
        sb_printf(b, "Solitary %s%s ", a, noun);
    } else {
        const char *first = a[0] ? a : noun;
        int vowel = strchr("aeiouAEIOU", first[0]) != NULL;
        sb_printf(b, "A%s %s%s ", vowel ? "n" : "", a, noun);
    }
    free(adj.s);
    sb_location(b, x, v, LOC_ZONE);
    sb_printf(b, " measuring ");
    sb_size(b, x, v->size);
    if (v->size->long_axis_mm >= 0.5)
        sb_printf(b, " (axial long x short axis)");
    double ml[RSY_MAX_COMPARTMENTS];
    margin_volumes(x, v, ml);
    sb_clauses(b, x, v, ml, 0);
    sb_printf(b, ".");
    sb_mass_effect(b, v->fl->displacement_mm);
}

/* Several lesions of one type, @p idx[0..n) (n >= 2), described once from the largest. */
static void sb_group(sbuf *b, const fctx *x, const lview *views, const int *idx, int n)
{
    int big = idx[0];
    double disp = 0.0, lo = INFINITY, hi = 0.0;
    int sides[3] = {0, 0, 0}, zones[3] = {0, 0, 0}, n_zoned = 0;
    double ml[RSY_MAX_COMPARTMENTS] = {0.0};
    for (int i = 0; i < n; i++) {
        const lview *v = &views[idx[i]];
        double L = v->size->long_axis_mm;
        if (L > views[big].size->long_axis_mm)
            big = idx[i];
        lo = fmin(lo, L);
        hi = fmax(hi, L);
        disp = fmax(disp, v->fl->displacement_mm);
        sides[region_side(v->fl->region)]++;
        if (v->fl->zone >= 0 && v->fl->zone <= 2) {
            zones[v->fl->zone]++;
            n_zoned++;
        }
        double one[RSY_MAX_COMPARTMENTS];
        margin_volumes(x, v, one);
        for (int k = 0; k < RSY_MAX_COMPARTMENTS; k++)
            ml[k] += one[k];
    }
    const lview *vb = &views[big];
    const char *noun = noun_of(x, vb, 0.0);
    if (strcmp(noun, "nodule") == 0 && hi >= RSY__FINDINGS_MASS_MM)
        noun = "lesion";
    else if (strcmp(noun, "lesion") == 0 && lo >= RSY__FINDINGS_MASS_MM)
        noun = "mass";

    /* Header: count, adjectives, noun. */
    const char *w = count_word(n, 1);
    if (n <= RSY__FINDINGS_LIST_MAX && w)
        sb_printf(b, "%s ", w);
    else
        sb_printf(b, "Multiple (n = %d) ", n);
    sb_adjective(b, x, vb);
    sb_noun(b, noun, 1);
    if (x->is_head && vb->p->rule == RSY_PLACE_GREY_WHITE_JUNCTION)
        sb_printf(b, " at the grey-white matter junction");

    /* Distribution: sides, and the lung's zones. */
    /* The organ by the host tissue (a file may hold types of several organs). */
    const char *organ = vb->p->organ;
    if (vb->host && strncmp(vb->host, "kidney", 6) == 0)
        organ = "kidney";
    else if (vb->host && strcmp(vb->host, "liver") == 0)
        organ = "liver";
    int both = sides[1] > 0 && sides[2] > 0;
    int one_side =
        !both && (sides[1] > 0 || sides[2] > 0) && sides[0] == 0 ? (sides[1] > 0 ? 1 : 2) : 0;
    const char *side_word = one_side == 1 ? "right" : "left";
    int wrote = 0;
    if (both || one_side) {
        if (strcmp(organ, "liver") == 0)
            sb_printf(b, both ? " in both hepatic lobes" : " in the %s hepatic lobe", side_word);
        else if (strcmp(organ, "kidney") == 0)
            sb_printf(b, both ? " in both kidneys" : " in the %s kidney", side_word);
        else
            sb_printf(b, both ? ", bilateral" : ", %s-sided", side_word);
        wrote = 1;
    }
    if (x->is_thorax && in_lung(vb) && n_zoned >= 3) {
        static const char *const zn[3] = {"upper", "middle", "lower"};
        int top = 0, second = -1;
        for (int z = 1; z < 3; z++)
            if (zones[z] > zones[top])
                top = z;
        for (int z = 0; z < 3; z++)
            if (z != top && (second < 0 || zones[z] > zones[second]))
                second = z;
        sb_printf(b, wrote ? " and " : ", ");
        if (2 * zones[top] >= n_zoned && 2 * zones[top] >= 3 * zones[second])
            sb_printf(b, "%s-zone predominant", zn[top]);
        else
            sb_printf(b, "diffuse");
        /* Sparing: at most a tenth in the lowest or highest third (PLCH spares the
         * costophrenic angles, domain.md Card 2). */
        if (10 * zones[2] <= n_zoned && top != 2)
            sb_printf(b, ", sparing the lung bases");
        else if (10 * zones[0] <= n_zoned && top != 0)
            sb_printf(b, ", sparing the apices");
    }

    if (n <= RSY__FINDINGS_LIST_MAX && w) {
        /* Shared appearance, then each lesion's location and size. */
        sb_clauses(b, x, vb, ml, 1);
        sb_printf(b, ": ");
        plist l = {b, 0, n};
        for (int i = 0; i < n; i++) {
            const lview *v = &views[idx[i]];
            item(&l);
            sb_location(b, x, v, LOC_PLAIN);
            sb_printf(b, " (");
            sb_size(b, x, v->size);
            sb_printf(b, ")");
        }
        sb_printf(b, ".");
    } else {
        if (floor(lo + 0.5) == floor(hi + 0.5))
            sb_printf(b, ", each about %.0f mm", hi);
        else if (floor(lo + 0.5) < 1.0)
            sb_printf(b, ", measuring up to %.0f mm", hi);
        else
            sb_printf(b, ", measuring %.0f to %.0f mm", lo, hi);
        sb_printf(b, " (the largest ");
        sb_size(b, x, vb->size);
        sb_printf(b, ", ");
        sb_location(b, x, vb, LOC_PLAIN);
        sb_printf(b, ")");
        sb_clauses(b, x, vb, ml, 1);
        sb_printf(b, ".");
    }
    sb_mass_effect(b, disp);
}

rsy_status rsy__gen_findings(const rsy_recipe *r, const rsy__gen_class *classes,
                             const rsy_geometry *geom, const rsy__gen_finding_lesion *lesions,
                             const rsy_lesion_record *whole, const rsy_lesion_record *mass,
                             int n_lesions, char **out)
{
    *out = NULL;
    sbuf b = {NULL, 0, 0, 0};
    fctx x;
    memset(&x, 0, sizeof x);
    x.r = r;
    x.classes = classes;
    x.n_tissue = rsy_phantom_n_classes(r->phantom.family);
    x.is_ct = strcmp(r->modality, "ct") == 0;
    x.is_head = strcmp(r->phantom.family, "head") == 0;
    x.is_thorax = strcmp(r->phantom.family, "thorax") == 0;
    x.vox_mm3 = geom->spacing_mm[0] * geom->spacing_mm[1] * geom->spacing_mm[2];
    x.pixel_mm = fmin(geom->spacing_mm[0], geom->spacing_mm[1]);
    int phase_said = 0;
    x.phase_said = &phase_said;
    if (!x.is_ct)
        groups_build(r, &x.g);

    lview *views = n_lesions > 0 ? calloc((size_t)n_lesions, sizeof *views) : NULL;
    int *idx = n_lesions > 0 ? malloc((size_t)n_lesions * sizeof *idx) : NULL;
    if (n_lesions > 0 && (!views || !idx)) {
        free(views);
        free(idx);
        return RSY_ENOMEM;
    }
    /* Lesions whose rasterisation is empty are not in the image and are not reported. */
    int shown = 0;
    for (int i = 0; i < n_lesions; i++) {
        view_build(&x, &lesions[i], &whole[i], &mass[i], &views[i]);
        shown += whole[i].voxel_count > 0;
    }
    if (shown == 0)
        sb_printf(&b, "No focal lesion.");
    for (int t = 0; t < r->n_lesion_types && shown > 0; t++) {
        int n = 0;
        for (int i = 0; i < n_lesions; i++)
            if (lesions[i].type_index == t && whole[i].voxel_count > 0)
                idx[n++] = i;
        if (n == 0)
            continue;
        if (b.len)
            sb_printf(&b, " ");
        phase_said = 0;
        if (n == 1)
            sb_single(&b, &x, &views[idx[0]], shown == 1);
        else
            sb_group(&b, &x, views, idx, n);
    }
    if (shown == 1)
        sb_printf(&b, " No other lesion.");
    free(idx);
    free(views);
    if (b.oom) {
        free(b.s);
        return RSY_ENOMEM;
    }
    *out = b.s;
    return RSY_OK;
}
