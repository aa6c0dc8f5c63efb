/* Models as data: torchvision's AlexNet and VGG16 as short layer tables.
 * The same table drives parameter names, shapes, loading, export and the
 * backend plans. */
#ifndef GRAFT_ARCH_H
#define GRAFT_ARCH_H

#include "engine/base/status.h"
#include "engine/layers.h"

/* The architectures graft knows, by name, NULL-terminated: the one list that
 * the weights files, the finetune config and the messages use. */
extern const char *const graft_arch_list[];

/* The index of name in graft_arch_list, or -1. */
int graft_arch_find(const char *name);

/* The table of a known architecture; num_classes >= 1. GRAFT_EINVAL names
 * the arch otherwise. */
graft_status graft_arch_init(graft_arch *a, const char *name, int num_classes);

/* The known names, for messages: "alexnet, vgg16". */
const char *graft_arch_names(void);

#endif
