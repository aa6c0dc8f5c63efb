/* Keras's HDF5 weights files read as a graft model (models/keras.c).
 * Internal to models/: graft_model_load recognises such a file by its
 * content and hands it here. */
#ifndef GRAFT_KERAS_H
#define GRAFT_KERAS_H

#include <stdbool.h>
#include <stddef.h>

#include "io/h5.h"
#include "models/model.h"

/* The feature scale k (models/keras.c): graft's model computes every
 * activation of the Keras trunk divided by k, so that a new classifier on
 * its features trains with torchvision's recipe. */
#define GRAFT_KERAS_SCALE 57.6

/* Keras's "caffe" preprocessing: BGR means in 0..255 (B, G, R). */
#define GRAFT_KERAS_MEAN_B 103.939
#define GRAFT_KERAS_MEAN_G 116.779
#define GRAFT_KERAS_MEAN_R 123.68

/* A file in Keras's layout: a root attribute layer_names, or a group
 * model_weights with one (a whole model saved by Keras 2), and no graft
 * format attribute. */
bool graft__keras_detect(graft_h5 *f);

/* Read a Keras VGG16 (its 13 convolutions, and fc1, fc2, predictions when
 * the file has its top) into a new model, its parameters from mem
 * (io/isolate.h), converted to graft's conventions.
 * Every dataset is checked before any is read; the detail names the first
 * Keras layer that does not fit. */
graft_status graft__keras_load(graft_h5 *f, graft_arena *mem, graft_model **out);

/* The 1000 ImageNet class names (models/imagenet_classes.txt, compiled in). */
extern const char *const graft__imagenet_classes[1000];

/* A string from a file made safe for a one-line message (models/weights.c). */
const char *graft__printable(const char *s, char *buf, size_t cap);

#endif
