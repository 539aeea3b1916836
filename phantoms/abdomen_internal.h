/*
 * abdomen_internal.h: class ids of the "abdomen" phantom family (phantoms/abdomen.c), shared
 * with tests/test_abdomen.c. Never installed. Names (rsy__phantom_family_abdomen.class_names)
 * are generic so that a CT tissue table in configs/tissues/ can map them.
 */
#ifndef RSY_ABDOMEN_INTERNAL_H
#define RSY_ABDOMEN_INTERNAL_H

typedef enum {
    RSY__ABD_BACKGROUND = 0,
    RSY__ABD_SKIN = 1,
    RSY__ABD_FAT = 2,            /* subcutaneous, visceral, retroperitoneal, renal sinus fat */
    RSY__ABD_MUSCLE = 3,         /* abdominal wall, psoas, quadratus lumborum, paraspinal; discs */
    RSY__ABD_LIVER = 4,
    RSY__ABD_HEPATIC_VESSEL = 5, /* intrahepatic portal and hepatic venous branches */
    RSY__ABD_SPLEEN = 6,
    RSY__ABD_KIDNEY_CORTEX = 7,
    RSY__ABD_KIDNEY_MEDULLA = 8, /* renal pyramids */
    RSY__ABD_PANCREAS = 9,
    RSY__ABD_BLOOD = 10,         /* lumen of aorta, IVC, renal, portal, splenic, mesenteric vessels */
    RSY__ABD_BOWEL_WALL = 11,    /* stomach, duodenum, small bowel, colon */
    RSY__ABD_BOWEL_CONTENT = 12, /* fluid content */
    RSY__ABD_BOWEL_GAS = 13,
    RSY__ABD_CORTICAL_BONE = 14,
    RSY__ABD_CANCELLOUS_BONE = 15,
    RSY__ABD_SPINAL_CANAL = 16, /* thecal sac: CSF and cord */
    RSY__ABD_N_CLASSES = 17
} rsy__abdomen_class;

#endif /* RSY_ABDOMEN_INTERNAL_H */
