/* net.c: the network as a list of layers over one flat parameter buffer: building the list from a
 * config (shapes, activations, offsets), the named tensor table derived from it, and PyTorch's default
 * initialisation. Every consumer (the loops of vae.c, the checkpoint's walk, init) reads this one list,
 * so they can never disagree. Never computes activations (vae.c) and never checks a config (model.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "rng.h"
#include "vae.h"

size_t vae_layer_in_size(const vae_layer *l) { return (size_t)l->in_h * (size_t)l->in_w * (size_t)l->in_c; }

static size_t head_out_size(const vae_layer *l) {
  return (size_t)l->out_h * (size_t)l->out_w * (size_t)l->out_c;
}

size_t vae_layer_out_size(const vae_layer *l) { return (size_t)l->heads * head_out_size(l); }

/* Floats of one head's weight and bias. */
static size_t head_weight_len(const vae_layer *l) { return head_out_size(l) * vae_layer_in_size(l); }
static size_t head_bias_len(const vae_layer *l) { return head_out_size(l); }

/* Appends a layer taking the previous layer's output (or `in` for the first), and places its weights
 * then its biases at the end of the buffer. */
static vae_layer *add_layer(vae_net *net, vae_layer_kind kind, int relu, const int in[3], int out_h,
                            int out_w, int out_c, const char *name0, const char *name1) {
  if (net->n == VAE_MAX_LAYERS) VAE_FAIL("network of more than %d layers", VAE_MAX_LAYERS);
  vae_layer *l = &net->layer[net->n++];
  memset(l, 0, sizeof *l);
  l->kind = kind;
  l->relu = relu;
  l->heads = name1 ? 2 : 1;
  l->in_h = in[0], l->in_w = in[1], l->in_c = in[2];
  l->out_h = out_h, l->out_w = out_w, l->out_c = out_c;
  snprintf(l->name[0], sizeof l->name[0], "%s", name0);
  if (name1) snprintf(l->name[1], sizeof l->name[1], "%s", name1);
  l->w = net->n_params;
  l->b = l->w + (size_t)l->heads * head_weight_len(l);
  net->n_params = l->b + (size_t)l->heads * head_bias_len(l);
  return l;
}

/* The shape the next layer takes in. */
static void out_shape(const vae_layer *l, int s[3]) {
  s[0] = l->out_h, s[1] = l->out_w, s[2] = l->out_c * l->heads;
}

void vae_net_build(const vae_config *c, vae_net *net) {
  memset(net, 0, sizeof *net);
  const int nh = c->n_hidden, L = c->latent;
  char name[32];
  int s[3] = {c->in_h, c->in_w, c->in_c};
  for (int i = 0; i < nh; i++) {
    snprintf(name, sizeof name, "encoder/hidden%d", i);
    out_shape(add_layer(net, VAE_LAYER_LINEAR, 1, s, 1, 1, c->hidden[i], name, NULL), s);
  }
  add_layer(net, VAE_LAYER_LINEAR, 0, s, 1, 1, L, "encoder/mu", "encoder/logvar");
  net->n_enc = net->n;
  s[0] = 1, s[1] = 1, s[2] = L;
  for (int i = 0; i < nh; i++) {
    snprintf(name, sizeof name, "decoder/hidden%d", i);
    out_shape(add_layer(net, VAE_LAYER_LINEAR, 1, s, 1, 1, c->hidden[nh - 1 - i], name, NULL), s);
  }
  add_layer(net, VAE_LAYER_LINEAR, 0, s, c->in_h, c->in_w, c->in_c, "decoder/out",
            vae_decoder_heads(c) == 2 ? "decoder/logvar" : NULL);
}

size_t vae_num_params(const vae_config *c) {
  vae_net net;
  vae_net_build(c, &net);
  return net.n_params;
}

void vae_views_init(const vae_config *c, float *buf, vae_views *v) {
  v->buf = buf;
  vae_net_build(c, &v->net);
}

/* ---- the tensor table ---- */

size_t vae_tensor_len(const vae_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->dims[i];
  return n;
}

static void set_tensor(vae_tensor *t, const char *layer_name, const char *what, size_t offset, int ndim,
                       const int *dims) {
  if (snprintf(t->name, sizeof t->name, "%s/%s", layer_name, what) >= (int)sizeof t->name)
    VAE_FAIL("tensor name %s/%s too long", layer_name, what);
  t->offset = offset;
  t->ndim = ndim;
  for (int i = 0; i < VAE_TENSOR_MAX_DIMS; i++) t->dims[i] = i < ndim ? dims[i] : 1;
}

/* A layer's tensors in buffer order: each head's weight, then each head's bias. Returns the count. */
static int layer_tensors(const vae_layer *l, vae_tensor *t) {
  int n = 0;
  const int wdims[2] = {(int)head_out_size(l), (int)vae_layer_in_size(l)}, bdims[1] = {(int)head_bias_len(l)};
  for (int h = 0; h < l->heads; h++)
    set_tensor(&t[n++], l->name[h], "weight", l->w + (size_t)h * head_weight_len(l), 2, wdims);
  for (int h = 0; h < l->heads; h++)
    set_tensor(&t[n++], l->name[h], "bias", l->b + (size_t)h * head_bias_len(l), 1, bdims);
  return n;
}

int vae_tensors(const vae_config *c, vae_tensor *t) {
  vae_net net;
  vae_net_build(c, &net);
  int n = 0;
  for (int i = 0; i < net.n; i++) n += layer_tensors(&net.layer[i], t + n);
  return n;
}

/* ---- initialisation ---- */

/* PyTorch's fan_in of the layer's weight (and of its bias): the inputs one output value sums. */
static int fan_in(const vae_layer *l) { return (int)vae_layer_in_size(l); }

void vae_init_params(const vae_config *c, float *params, uint64_t seed) {
  vae_net net;
  vae_net_build(c, &net);
  uint64_t index = 0; /* the tensor's index in the table: its own stream of the init generator */
  for (int i = 0; i < net.n; i++) {
    vae_tensor t[4];
    int nt = layer_tensors(&net.layer[i], t);
    float bound = 1.0f / sqrtf((float)fan_in(&net.layer[i]));
    for (int k = 0; k < nt; k++, index++) {
      size_t len = vae_tensor_len(&t[k]);
      float *p = params + t[k].offset;
      vae_rng_uniform(p, len, seed, VAE_RNG_INIT, 0, index, 0);
      for (size_t j = 0; j < len; j++) p[j] = (2.0f * p[j] - 1.0f) * bound;
    }
  }
}
