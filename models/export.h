/* A model in the formats other tools read: safetensors (PyTorch users'
 * loaders, the Hugging Face hub) and ONNX (ONNX Runtime, OpenVINO,
 * TensorRT). Both write atomically (a temporary renamed into place) and
 * refuse a model without a classifier of its own (a Keras trunk awaiting
 * fine-tuning). Details name no path: the caller says which file. */
#ifndef GRAFT_EXPORT_H
#define GRAFT_EXPORT_H

#include "engine/base/status.h"
#include "models/model.h"

/* safetensors: one F32 tensor per parameter, named and shaped as
 * torchvision's state_dict, in name order with contiguous offsets; the
 * header's __metadata__ holds strings: format "pt", arch, num_classes,
 * class_names (a JSON array; absent when the model has none), mean and std
 * (JSON arrays), resize, crop. */
graft_status graft_model_save_safetensors(const char *path, const graft_model *m);

/* ONNX (IR version 8, opset 17): the graph torch.onnx.export gives for the
 * torchvision model in eval mode, input "input" [batch, 3, crop, crop]
 * (normalised, NCHW), output "logits" [batch, num_classes], the weights as
 * initializers named as the state_dict names them, and the same metadata as
 * safetensors' in metadata_props. GRAFT_EUNSUPPORTED when the adaptive
 * average pooling at the model's crop is no exact AveragePool, or the model
 * passes protobuf's 2 GiB limit. */
graft_status graft_model_save_onnx(const char *path, const graft_model *m);

#endif
