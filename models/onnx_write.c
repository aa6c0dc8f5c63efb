/* ONNX, written by graft's own protobuf encoder. A ModelProto needs only two
 * of protobuf's wire types, varints and length-delimited fields, so a page
 * of code does what a dependency on protobuf and onnx.proto's generated code
 * would: no library to find, build and keep in step for one writer. Field
 * numbers are onnx.proto's (onnx 1.12, IR version 8).
 *
 * The graph is the one torch.onnx.export gives for the torchvision model in
 * eval mode: Conv (with bias), Relu and MaxPool for the features; the
 * adaptive average pooling as nothing when the trunk already gives its
 * output size, else as the AveragePool it equals when there is one;
 * Flatten; Gemm (transB = 1) and Relu for the classifier; no Dropout. The
 * weights are initializers named as the state_dict names them; the small
 * parts are built in memory, the weights streamed to the file after them,
 * their sizes known beforehand. */
#include <stdlib.h>
#include <string.h>

#include "models/export.h"
#include "models/export_util.h"

#define ONNX_IR_VERSION 8 /* onnx 1.12, the IR version of opset 17 */
#define ONNX_OPSET 17
#define PROTOBUF_LIMIT 0x7fffffffu /* protobuf refuses messages of 2 GiB or more */

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

/* onnx.proto's field numbers, by message. */
enum {
  MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3,
  MODEL_DOC_STRING = 6, MODEL_GRAPH = 7, MODEL_OPSET_IMPORT = 8, MODEL_METADATA_PROPS = 14,
  OPSET_VERSION = 2,
  ENTRY_KEY = 1, ENTRY_VALUE = 2,
  GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12,
  NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5,
  ATTR_NAME = 1, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20,
  TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9,
  VALUE_NAME = 1, VALUE_TYPE = 2,
  TYPE_TENSOR = 1, TENSOR_TYPE_ELEM = 1, TENSOR_TYPE_SHAPE = 2,
  SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2,
};
enum { ATTRIBUTE_INT = 2, ATTRIBUTE_INTS = 7 };   /* AttributeProto.AttributeType */
enum { ELEM_FLOAT = 1 };                          /* TensorProto.DataType */

/* ---- the wire format ---- */

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  for (; v >= 0x80; v >>= 7) n++;
  return n;
}

static size_t encode_varint(uint8_t t[10], uint64_t v) {
  size_t n = 0;
  for (; v >= 0x80; v >>= 7) t[n++] = (uint8_t)(v | 0x80);
  t[n++] = (uint8_t)v;
  return n;
}

static void pb_varint(graft__buf *b, uint64_t v) {
  uint8_t t[10];
  graft__buf_put(b, t, encode_varint(t, v));
}

static void pb_key(graft__buf *b, int field, int wire) {
  pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

static void pb_int(graft__buf *b, int field, int64_t v) {
  pb_key(b, field, WIRE_VARINT);
  pb_varint(b, (uint64_t)v); /* negatives as ten bytes, two's complement */
}

static void pb_bytes(graft__buf *b, int field, const void *p, size_t n) {
  pb_key(b, field, WIRE_LEN);
  pb_varint(b, n);
  graft__buf_put(b, p, n);
}

static void pb_str(graft__buf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

/* sub as a nested message of b; sub is freed. */
static void pb_msg(graft__buf *b, int field, graft__buf *sub) {
  if (sub->oom) b->oom = true;
  pb_bytes(b, field, sub->data, sub->len);
  graft__buf_free(sub);
}

/* ---- nodes ---- */

static void attr_int(graft__buf *node, const char *name, int64_t v) {
  graft__buf a = {0};
  pb_str(&a, ATTR_NAME, name);
  pb_int(&a, ATTR_I, v);
  pb_int(&a, ATTR_TYPE, ATTRIBUTE_INT);
  pb_msg(node, NODE_ATTRIBUTE, &a);
}

static void attr_ints(graft__buf *node, const char *name, int n, int64_t v) {
  graft__buf a = {0};
  pb_str(&a, ATTR_NAME, name);
  for (int i = 0; i < n; i++) pb_int(&a, ATTR_INTS, v); /* proto2: repeated, not packed */
  pb_int(&a, ATTR_TYPE, ATTRIBUTE_INTS);
  pb_msg(node, NODE_ATTRIBUTE, &a);
}

/* A square window's attributes, as torch.onnx.export writes a pool's. */
static void attr_window(graft__buf *node, int kernel, int stride, int pad) {
  attr_ints(node, "kernel_shape", 2, kernel);
  attr_ints(node, "pads", 4, pad);
  attr_ints(node, "strides", 2, stride);
}

typedef struct graph {
  graft__buf nodes;
  char prev[48]; /* the last node's output */
} graph;

/* A node op_type reading the previous output (and a layer's weight and
 * bias), writing `out`, named as its output; attrs are its encoded
 * attributes (freed). */
static void add_node(graph *g, const char *op, const char *out, const graft_param *w,
                     const graft_param *bias, graft__buf *attrs) {
  graft__buf n = {0};
  pb_str(&n, NODE_INPUT, g->prev);
  if (w) pb_str(&n, NODE_INPUT, w->name);
  if (bias) pb_str(&n, NODE_INPUT, bias->name);
  pb_str(&n, NODE_OUTPUT, out);
  pb_str(&n, NODE_NAME, out);
  pb_str(&n, NODE_OP_TYPE, op);
  if (attrs) {
    if (attrs->oom) n.oom = true;
    graft__buf_put(&n, attrs->data, attrs->len);
    graft__buf_free(attrs);
  }
  pb_msg(&g->nodes, GRAPH_NODE, &n);
  snprintf(g->prev, sizeof g->prev, "%s", out);
}

/* Module `module`, index i of its Sequential: the name of its output. */
static const char *out_name(char *buf, size_t cap, const char *module, int index) {
  snprintf(buf, cap, "%s.%d", module, index);
  return buf;
}

/* AdaptiveAvgPool2d from `in` to `out` as AveragePool(kernel, stride): exact
 * when every bin [floor(i*in/out), ceil((i+1)*in/out)) is the window at
 * i*stride of one size, and AveragePool gives `out` windows. */
static bool avgpool_exact(int in, int out, int *kernel, int *stride) {
  *kernel = (in + out - 1) / out;
  *stride = out > 1 ? in / out : 1;
  if (*stride < 1 || *kernel > in) return false;
  for (int i = 0; i < out; i++) {
    int start = i * in / out, end = ((i + 1) * in + out - 1) / out;
    if (start != i * *stride || end - start != *kernel) return false;
  }
  return (in - *kernel) / *stride + 1 == out;
}

/* The trunk's output side for a square input of `side`; -1 when a window
 * does not fit. */
static int trunk_side(const graft_arch *a, int side) {
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    int k, st, p;
    if (l->kind == GRAFT_LAYER_CONV2D)
      k = l->u.conv.kernel, st = l->u.conv.stride, p = l->u.conv.pad;
    else if (l->kind == GRAFT_LAYER_MAXPOOL2D)
      k = l->u.pool.kernel, st = l->u.pool.stride, p = 0;
    else
      continue;
    if (side + 2 * p < k) return -1;
    side = graft_out_dim(side, k, st, p);
  }
  return side;
}

/* Whether a crop gives an adaptive pooling ONNX can express exactly. */
static bool crop_ok(const graft_arch *a, const graft_layer *pool, int crop) {
  int in = trunk_side(a, crop), k, s;
  return in >= 1 && (in == pool->u.avgpool.out_h || avgpool_exact(in, pool->u.avgpool.out_h, &k, &s));
}

/* "nearest crops that convert: 286 and 415", for the message of a crop that does not. */
static void nearest_crops(const graft_model *m, const graft_layer *pool, char *buf, size_t cap) {
  int lo = m->pre.crop - 1, hi = m->pre.crop + 1;
  while (lo >= 1 && !crop_ok(&m->arch, pool, lo)) lo--;
  while (hi <= 4096 && !crop_ok(&m->arch, pool, hi)) hi++;
  if (lo >= 1 && hi <= 4096)
    snprintf(buf, cap, "nearest crops that convert: %d and %d", lo, hi);
  else if (lo >= 1 || hi <= 4096)
    snprintf(buf, cap, "nearest crop that converts: %d", lo >= 1 ? lo : hi);
  else
    snprintf(buf, cap, "no crop converts");
}

static graft_status add_avgpool(graph *g, const graft_model *m, const graft_layer *l) {
  int in = trunk_side(&m->arch, m->pre.crop), out = l->u.avgpool.out_h, k, s;
  if (l->u.avgpool.out_w != out)
    return graft__fail(GRAFT_EUNSUPPORTED, "a non-square adaptive average pooling");
  if (in == out) return GRAFT_OK; /* an identity: torch's export emits nothing either */
  if (!avgpool_exact(in, out, &k, &s)) {
    char nearest[64];
    nearest_crops(m, l, nearest, sizeof nearest);
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "crop %d: the adaptive average pooling from %dx%d to %dx%d is no "
                       "AveragePool, and ONNX has no adaptive one (%s)",
                       m->pre.crop, in, in, out, out, nearest);
  }
  graft__buf attrs = {0};
  attr_int(&attrs, "ceil_mode", 0);
  attr_int(&attrs, "count_include_pad", 0);
  attr_window(&attrs, k, s, 0);
  add_node(g, "AveragePool", "avgpool", NULL, NULL, &attrs);
  return GRAFT_OK;
}

static graft_status trunk_nodes(graph *g, const graft_model *m) {
  const graft_arch *a = &m->arch;
  char out[48];
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    graft__buf attrs = {0};
    if (l->kind == GRAFT_LAYER_CONV2D) {
      const graft_conv2d_params *c = &l->u.conv;
      attr_ints(&attrs, "dilations", 2, 1);
      attr_int(&attrs, "group", 1);
      attr_window(&attrs, c->kernel, c->stride, c->pad);
      add_node(g, "Conv", out_name(out, sizeof out, l->module, l->index),
               graft_arch_weight(a, l), graft_arch_bias(a, l), &attrs);
      if (c->relu) add_node(g, "Relu", out_name(out, sizeof out, l->module, l->index + 1),
                            NULL, NULL, NULL);
    } else if (l->kind == GRAFT_LAYER_MAXPOOL2D) {
      attr_int(&attrs, "ceil_mode", 0);
      attr_window(&attrs, l->u.pool.kernel, l->u.pool.stride, 0);
      add_node(g, "MaxPool", out_name(out, sizeof out, l->module, l->index), NULL, NULL,
               &attrs);
    } else if (l->kind == GRAFT_LAYER_ADAPTIVE_AVGPOOL2D) {
      GRAFT_TRY(add_avgpool(g, m, l));
    } else {
      return graft__fail(GRAFT_EUNSUPPORTED, "layer %d of the trunk has no ONNX form here", i);
    }
  }
  return GRAFT_OK;
}

static void classifier_nodes(graph *g, const graft_arch *a) {
  char out[48];
  graft__buf attrs = {0};
  attr_int(&attrs, "axis", 1);
  add_node(g, "Flatten", "flatten", NULL, NULL, &attrs);
  for (int i = 0; i < a->n_classifier; i++) {
    const graft_layer *l = &a->classifier[i];
    if (l->kind != GRAFT_LAYER_LINEAR) continue; /* Dropout: nothing at inference */
    attrs = (graft__buf){0};
    attr_int(&attrs, "transB", 1);
    add_node(g, "Gemm", i == a->head ? "logits" : out_name(out, sizeof out, l->module, l->index),
             graft_arch_weight(a, l), graft_arch_bias(a, l), &attrs);
    if (l->u.linear.relu)
      add_node(g, "Relu", out_name(out, sizeof out, l->module, l->index + 1), NULL, NULL, NULL);
  }
}

/* ---- the graph's inputs, outputs and initializers ---- */

/* A float tensor named `name` of these dims; a dim < 0 is "batch". */
static void value_info(graft__buf *b, int field, const char *name, const int64_t *dims, int rank) {
  graft__buf shape = {0}, tensor = {0}, type = {0}, v = {0};
  for (int i = 0; i < rank; i++) {
    graft__buf d = {0};
    if (dims[i] < 0)
      pb_str(&d, DIM_PARAM, "batch");
    else
      pb_int(&d, DIM_VALUE, dims[i]);
    pb_msg(&shape, SHAPE_DIM, &d);
  }
  pb_int(&tensor, TENSOR_TYPE_ELEM, ELEM_FLOAT);
  pb_msg(&tensor, TENSOR_TYPE_SHAPE, &shape);
  pb_msg(&type, TYPE_TENSOR, &tensor);
  pb_str(&v, VALUE_NAME, name);
  pb_msg(&v, VALUE_TYPE, &type);
  pb_msg(b, field, &v);
}

/* An initializer's TensorProto up to its raw_data's payload. */
static void tensor_head(graft__buf *b, const graft_param *p) {
  for (int i = 0; i < p->rank; i++) pb_int(b, TENSOR_DIMS, p->dims[i]);
  pb_int(b, TENSOR_DATA_TYPE, ELEM_FLOAT);
  pb_str(b, TENSOR_NAME, p->name);
  pb_key(b, TENSOR_RAW_DATA, WIRE_LEN);
  pb_varint(b, 4 * (uint64_t)p->count);
}

/* The bytes of one initializer field in the graph, payload included. */
static uint64_t initializer_size(const graft_param *p, size_t head_len) {
  uint64_t t = head_len + 4 * (uint64_t)p->count;
  return varint_len((uint64_t)GRAPH_INITIALIZER << 3 | WIRE_LEN) + varint_len(t) + t;
}

/* ---- the model ---- */

/* The parts around the weights: the model's fields up to the graph's
 * length (head), the graph's own up to its initializers (graph_head), the
 * graph's after them (graph_tail) and the model's after the graph (tail). */
typedef struct parts {
  graft__buf head, graph_head, graph_tail, tail;
  graft__buf tensor_heads[GRAFT_MAX_PARAMS];
} parts;

static void parts_free(parts *p) {
  graft__buf_free(&p->head);
  graft__buf_free(&p->graph_head);
  graft__buf_free(&p->graph_tail);
  graft__buf_free(&p->tail);
  for (int i = 0; i < GRAFT_MAX_PARAMS; i++) graft__buf_free(&p->tensor_heads[i]);
}

static graft_status model_tail(graft__buf *b, const graft_model *m) {
  graft__buf opset = {0};
  pb_int(&opset, OPSET_VERSION, ONNX_OPSET); /* the default domain: domain left empty */
  pb_msg(b, MODEL_OPSET_IMPORT, &opset);
  graft__meta meta;
  GRAFT_TRY(graft__meta_init(&meta, m));
  for (int i = 0; i < meta.n; i++) {
    graft__buf e = {0};
    pb_str(&e, ENTRY_KEY, meta.key[i]);
    pb_str(&e, ENTRY_VALUE, meta.value[i]);
    pb_msg(b, MODEL_METADATA_PROPS, &e);
  }
  graft__meta_free(&meta);
  return GRAFT_OK;
}

static graft_status build(parts *p, const graft_model *m, uint64_t *total) {
  const graft_arch *a = &m->arch;
  graph g = {.prev = "input"};
  graft_status s = trunk_nodes(&g, m);
  if (s != GRAFT_OK) {
    graft__buf_free(&g.nodes);
    return s;
  }
  classifier_nodes(&g, a);
  p->graph_head = g.nodes;
  pb_str(&p->graph_head, GRAPH_NAME, a->name);
  uint64_t graph_len = p->graph_head.len;
  for (int i = 0; i < a->n_params; i++) {
    tensor_head(&p->tensor_heads[i], &a->params[i]);
    graph_len += initializer_size(&a->params[i], p->tensor_heads[i].len);
  }
  int64_t in_dims[4] = {-1, 3, m->pre.crop, m->pre.crop}, out_dims[2] = {-1, a->num_classes};
  value_info(&p->graph_tail, GRAPH_INPUT, "input", in_dims, 4);
  value_info(&p->graph_tail, GRAPH_OUTPUT, "logits", out_dims, 2);
  graph_len += p->graph_tail.len;

  pb_int(&p->head, MODEL_IR_VERSION, ONNX_IR_VERSION);
  pb_str(&p->head, MODEL_PRODUCER_NAME, "graft");
  pb_str(&p->head, MODEL_PRODUCER_VERSION, GRAFT_VERSION);
  char doc[64];
  snprintf(doc, sizeof doc, "torchvision %s, %d classes", a->name, a->num_classes);
  pb_str(&p->head, MODEL_DOC_STRING, doc);
  pb_key(&p->head, MODEL_GRAPH, WIRE_LEN);
  pb_varint(&p->head, graph_len);
  GRAFT_TRY(model_tail(&p->tail, m));

  bool oom = p->head.oom || p->graph_head.oom || p->graph_tail.oom || p->tail.oom;
  for (int i = 0; i < a->n_params; i++) oom |= p->tensor_heads[i].oom;
  if (oom) return graft__fail(GRAFT_ENOMEM, "out of memory");
  *total = p->head.len + graph_len + p->tail.len;
  return GRAFT_OK;
}

graft_status graft_model_save_onnx(const char *path, const graft_model *m) {
  GRAFT_TRY(graft__export_check(m));
  parts p = {0};
  uint64_t total = 0;
  graft_status s = build(&p, m, &total);
  if (s == GRAFT_OK && total > PROTOBUF_LIMIT)
    s = graft__fail(GRAFT_EUNSUPPORTED,
                    "the model would be %.2f GiB, over protobuf's 2 GiB limit for one ONNX file",
                    (double)total / (1u << 30));
  graft__out out;
  if (s == GRAFT_OK) s = graft__out_open(&out, path);
  if (s != GRAFT_OK) {
    parts_free(&p);
    return s;
  }
  graft__out_write(&out, p.head.data, p.head.len);
  graft__out_write(&out, p.graph_head.data, p.graph_head.len);
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *prm = &m->arch.params[i];
    uint8_t key[20];
    size_t n = encode_varint(key, (uint64_t)GRAPH_INITIALIZER << 3 | WIRE_LEN);
    n += encode_varint(key + n, p.tensor_heads[i].len + 4 * (uint64_t)prm->count);
    graft__out_write(&out, key, n);
    graft__out_write(&out, p.tensor_heads[i].data, p.tensor_heads[i].len);
    graft__out_floats_le(&out, graft_model_param(m, prm), prm->count);
  }
  graft__out_write(&out, p.graph_tail.data, p.graph_tail.len);
  graft__out_write(&out, p.tail.data, p.tail.len);
  parts_free(&p);
  return graft__out_commit(&out);
}
