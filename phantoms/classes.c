/*
 * classes.c: the class tables of the phantom families (names match configs/tissues/).
 */
#include <string.h>

#include "rsy_phantoms.h"

/* Indexed by rsy_head_class. */
static const char *const head_class_names[RSY_HEAD_N_CLASSES] = {
    "background",   "scalp",      "skull",     "csf",        "grey_matter",
    "white_matter", "ventricles", "deep_grey", "cerebellum", "brainstem"};

static int is_head(const char *family)
{
    return family != NULL && strcmp(family, "head") == 0;
}

int rsy_phantom_n_classes(const char *family)
{
    return is_head(family) ? RSY_HEAD_N_CLASSES : 0;
}

const char *rsy_phantom_class_name(const char *family, int id)
{
    if (!is_head(family) || id < 0 || id >= RSY_HEAD_N_CLASSES)
        return NULL;
    return head_class_names[id];
}

int rsy_phantom_class_id(const char *family, const char *name)
{
    if (!is_head(family) || name == NULL)
        return -1;
    for (int i = 0; i < RSY_HEAD_N_CLASSES; i++)
        if (strcmp(head_class_names[i], name) == 0)
            return i;
    return -1;
}
