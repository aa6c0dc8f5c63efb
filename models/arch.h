/* Models as data: torchvision's AlexNet and VGG16 as short layer tables.
 * The same table drives parameter names, shapes, loading, export and the
 * backend plans. */
#ifndef GRAFT_ARCH_H
#define GRAFT_ARCH_H

#include "engine/base/status.h"
#include "engine/layers.h"

/* "alexnet" or "vgg16"; num_classes >= 1. GRAFT_EINVAL names the arch otherwise. */
graft_status graft_arch_init(graft_arch *a, const char *name, int num_classes);

/* Supported names, for messages: "alexnet, vgg16". */
const char *graft_arch_names(void);

#endif
