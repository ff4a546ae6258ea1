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

/* Floats of one head's weight and bias: linear (out, in); conv (out_c, k, k, in_c); transposed
 * (k, k, out_c, in_c). A conv's bias is per output channel. */
static size_t head_weight_len(const vae_layer *l) {
  if (l->kind == VAE_LAYER_LINEAR) return head_out_size(l) * vae_layer_in_size(l);
  return (size_t)l->k * (size_t)l->k * (size_t)l->in_c * (size_t)l->out_c;
}
static size_t head_bias_len(const vae_layer *l) {
  return l->kind == VAE_LAYER_LINEAR ? head_out_size(l) : (size_t)l->out_c;
}

/* Appends a layer taking `in`, and places its weights then its biases at the end of the buffer. A conv
 * layer's geometry (conv_geometry) must be set before: the weight length depends on it. */
static vae_layer *add_layer(vae_net *net, vae_layer_kind kind, int relu, const int in[3], int out_h,
                            int out_w, int out_c, const vae_config *c, const char *name0, const char *name1) {
  if (net->n == VAE_MAX_LAYERS) VAE_FAIL("network of more than %d layers", VAE_MAX_LAYERS);
  vae_layer *l = &net->layer[net->n++];
  memset(l, 0, sizeof *l);
  l->kind = kind;
  l->relu = relu;
  l->heads = name1 ? 2 : 1;
  l->in_h = in[0], l->in_w = in[1], l->in_c = in[2];
  l->out_h = out_h, l->out_w = out_w, l->out_c = out_c;
  if (kind != VAE_LAYER_LINEAR) {
    l->k = c->kernel, l->stride = c->stride, l->pad = c->padding;
    /* a transposed conv restores exactly the size its mirror conv took in (square kernels: one
     * output_padding per axis; PyTorch's output_padding=(ph, pw)) */
    if (kind == VAE_LAYER_CONVT2D) l->out_pad = vae_convt_out_pad(c, out_h, in[0]);
  }
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

/* The conv trunk's spatial sizes: sz[i] = (h, w) of the input of conv layer i, sz[n_conv] its output. */
static void trunk_sizes(const vae_config *c, int sz[][2]) {
  sz[0][0] = c->in_h, sz[0][1] = c->in_w;
  for (int i = 0; i < c->n_conv; i++)
    sz[i + 1][0] = vae_conv_out_size(c, sz[i][0]), sz[i + 1][1] = vae_conv_out_size(c, sz[i][1]);
}

void vae_net_build(const vae_config *c, vae_net *net) {
  memset(net, 0, sizeof *net);
  const int nh = c->n_hidden, nc = c->n_conv, L = c->latent;
  const char *out_logvar = vae_decoder_heads(c) == 2 ? "decoder/logvar" : NULL;
  char name[32];
  int sz[VAE_MAX_CONV + 1][2], s[3] = {c->in_h, c->in_w, c->in_c};
  trunk_sizes(c, sz);
  /* encoder: Conv2d + ReLU per channel count, then the hidden layers and the mu|logvar head over the
   * flattened trunk (PyTorch flattens it as (C, h, w): the first linear layer's chw_in) */
  for (int i = 0; i < nc; i++) {
    snprintf(name, sizeof name, "encoder/conv%d", i);
    out_shape(add_layer(net, VAE_LAYER_CONV2D, 1, s, sz[i + 1][0], sz[i + 1][1], c->conv[i], c, name, NULL),
              s);
  }
  for (int i = 0; i < nh; i++) {
    snprintf(name, sizeof name, "encoder/hidden%d", i);
    vae_layer *l = add_layer(net, VAE_LAYER_LINEAR, 1, s, 1, 1, c->hidden[i], c, name, NULL);
    l->chw_in = i == 0 && nc > 0;
    out_shape(l, s);
  }
  add_layer(net, VAE_LAYER_LINEAR, 0, s, 1, 1, L, c, "encoder/mu", "encoder/logvar")->chw_in =
      nh == 0 && nc > 0;
  net->n_enc = net->n;
  /* decoder: the hidden layers reversed; the MLP ends in its linear output head */
  s[0] = 1, s[1] = 1, s[2] = L;
  for (int i = 0; i < nh; i++) {
    snprintf(name, sizeof name, "decoder/hidden%d", i);
    out_shape(add_layer(net, VAE_LAYER_LINEAR, 1, s, 1, 1, c->hidden[nh - 1 - i], c, name, NULL), s);
  }
  if (nc == 0) {
    add_layer(net, VAE_LAYER_LINEAR, 0, s, c->in_h, c->in_w, c->in_c, c, "decoder/out", out_logvar);
    return;
  }
  /* project to the last conv's (C, h, w) + ReLU, ConvTranspose2d + ReLU back up (convt0 next to the
   * latent), and the ConvTranspose2d output head onto the image */
  vae_layer *proj = add_layer(net, VAE_LAYER_LINEAR, 1, s, sz[nc][0], sz[nc][1], c->conv[nc - 1], c,
                              "decoder/project", NULL);
  proj->chw_out = 1;
  out_shape(proj, s);
  for (int i = nc - 1; i >= 1; i--) {
    snprintf(name, sizeof name, "decoder/convt%d", nc - 1 - i);
    out_shape(add_layer(net, VAE_LAYER_CONVT2D, 1, s, sz[i][0], sz[i][1], c->conv[i - 1], c, name, NULL), s);
  }
  add_layer(net, VAE_LAYER_CONVT2D, 0, s, c->in_h, c->in_w, c->in_c, c, "decoder/out", out_logvar);
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

/* ---- convolution geometry ---- */

/* The im2col workspace bound: a conv layer takes as many images at once as fit in this many floats
 * (at least one), so the workspace stays bounded whatever the batch: 1 MiB, about a core's L2, unless
 * one image needs more. On the Fashion-MNIST conv model a step at 128 images took 66-70 ms with 0.5 to
 * 4 MiB budgets against 75 ms at 128 KiB and 80-97 ms at 16 MiB (whole-batch GEMMs spill the caches;
 * tests/bench_vae, docs/BENCHMARKS.md). */
#define VAE_CONV_COLS_BUDGET ((size_t)1 << 18)

/* A conv layer's patch grid (layers.h): a Conv2d reads its input through its output's grid, a
 * ConvTranspose2d writes its output through its input's grid. */
vae_conv_shape vae_layer_conv_shape(const vae_layer *l) {
  vae_conv_shape s = {.k = l->k, .s = l->stride, .p = l->pad, .heads = 1};
  if (l->kind == VAE_LAYER_CONV2D) {
    s.h = l->in_h, s.w = l->in_w, s.c = l->in_c, s.gh = l->out_h, s.gw = l->out_w, s.n = l->out_c;
  } else {
    s.h = l->out_h, s.w = l->out_w, s.c = l->out_c, s.gh = l->in_h, s.gw = l->in_w, s.n = l->in_c;
    s.heads = l->heads;
  }
  return s;
}

size_t vae_layer_cols_len(const vae_layer *l, int B) {
  if (l->kind == VAE_LAYER_LINEAR) return 0;
  vae_conv_shape s = vae_layer_conv_shape(l);
  size_t per = vae_conv_cols_per_image(&s), nb = VAE_CONV_COLS_BUDGET / per;
  nb = nb < 1 ? 1 : nb > (size_t)B ? (size_t)B : nb;
  return nb * per;
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
  for (int i = 0; i < VAE_TENSOR_MAX_DIMS; i++) t->view[i] = t->dims[i] = i < ndim ? dims[i] : 1;
  for (int i = 0; i < 4; i++) t->perm[i] = i;
}

/* The inside order as a 4-d view of the PyTorch tensor and a permutation of its axes. */
static void set_perm(vae_tensor *t, int v0, int v1, int v2, int v3, int p0, int p1, int p2, int p3) {
  t->view[0] = v0, t->view[1] = v1, t->view[2] = v2, t->view[3] = v3;
  t->perm[0] = p0, t->perm[1] = p1, t->perm[2] = p2, t->perm[3] = p3;
}

/* One head's weight: its PyTorch shape, and how the channels-last inside order permutes it. */
static void weight_tensor(const vae_layer *l, int h, vae_tensor *t) {
  size_t off = l->w + (size_t)h * head_weight_len(l);
  switch (l->kind) {
    case VAE_LAYER_LINEAR: {
      const int d[2] = {(int)head_out_size(l), (int)vae_layer_in_size(l)};
      set_tensor(t, l->name[h], "weight", off, 2, d);
      /* PyTorch's columns (C, H, W) of the flattened trunk; inside (H, W, C) */
      if (l->chw_in) set_perm(t, d[0], l->in_c, l->in_h, l->in_w, 0, 2, 3, 1);
      /* PyTorch's rows (C, H, W) of the unflattened output; inside (H, W, C) */
      if (l->chw_out) set_perm(t, l->out_c, l->out_h, l->out_w, d[1], 1, 2, 0, 3);
      break;
    }
    case VAE_LAYER_CONV2D: { /* nn.Conv2d (out, in, k, k); inside (out, k, k, in) */
      const int d[4] = {l->out_c, l->in_c, l->k, l->k};
      set_tensor(t, l->name[h], "weight", off, 4, d);
      set_perm(t, d[0], d[1], d[2], d[3], 0, 2, 3, 1);
      break;
    }
    case VAE_LAYER_CONVT2D: { /* nn.ConvTranspose2d (in, out, k, k); inside (k, k, out, in) */
      const int d[4] = {l->in_c, l->out_c, l->k, l->k};
      set_tensor(t, l->name[h], "weight", off, 4, d);
      set_perm(t, d[0], d[1], d[2], d[3], 2, 3, 1, 0);
      break;
    }
  }
}

/* A layer's tensors in buffer order: each head's weight, then each head's bias. Returns the count. */
static int layer_tensors(const vae_layer *l, vae_tensor *t) {
  int n = 0;
  const int bdims[1] = {(int)head_bias_len(l)};
  for (int h = 0; h < l->heads; h++) weight_tensor(l, h, &t[n++]);
  for (int h = 0; h < l->heads; h++) {
    set_tensor(&t[n], l->name[h], "bias", l->b + (size_t)h * head_bias_len(l), 1, bdims);
    if (l->chw_out) set_perm(&t[n], l->out_c, l->out_h, l->out_w, 1, 1, 2, 0, 3);
    n++;
  }
  return n;
}

int vae_tensors(const vae_config *c, vae_tensor *t) {
  vae_net net;
  vae_net_build(c, &net);
  int n = 0;
  for (int i = 0; i < net.n; i++) n += layer_tensors(&net.layer[i], t + n);
  return n;
}

int vae_tensor_permuted(const vae_tensor *t) {
  for (int i = 0; i < 4; i++)
    if (t->perm[i] != i) return 1;
  return 0;
}

/* Walks the inside order (the flat buffer's) and the PyTorch index of each element: the view's
 * row-major strides taken in the permuted order. to_torch 1: torch <- buf, else buf <- torch. */
static void convert(const vae_tensor *t, float *buf, float *torch, int to_torch) {
  size_t vstride[4], st[4];
  int d[4];
  vstride[3] = 1;
  for (int i = 2; i >= 0; i--) vstride[i] = vstride[i + 1] * (size_t)t->view[i + 1];
  for (int j = 0; j < 4; j++) d[j] = t->view[t->perm[j]], st[j] = vstride[t->perm[j]];
  float *in = buf + t->offset;
  size_t k = 0;
  for (int a = 0; a < d[0]; a++)
    for (int b = 0; b < d[1]; b++)
      for (int c = 0; c < d[2]; c++)
        for (int e = 0; e < d[3]; e++, k++) {
          size_t ti = (size_t)a * st[0] + (size_t)b * st[1] + (size_t)c * st[2] + (size_t)e * st[3];
          if (to_torch)
            torch[ti] = in[k];
          else
            in[k] = torch[ti];
        }
}

void vae_tensor_to_torch(const vae_tensor *t, const float *buf, float *torch) {
  convert(t, (float *)buf, torch, 1); /* reads buf only */
}

void vae_tensor_from_torch(const vae_tensor *t, const float *torch, float *buf) {
  convert(t, buf, (float *)torch, 0); /* reads torch only */
}

/* ---- initialisation ---- */

/* PyTorch's fan_in of the layer's weight (and of its bias): size(1) of the weight times the kernel
 * area. nn.Linear: in; nn.Conv2d: in_c k k; nn.ConvTranspose2d (in, out, k, k): out_c k k. */
static int fan_in(const vae_layer *l) {
  switch (l->kind) {
    case VAE_LAYER_LINEAR: return (int)vae_layer_in_size(l);
    case VAE_LAYER_CONV2D: return l->in_c * l->k * l->k;
    case VAE_LAYER_CONVT2D: return l->out_c * l->k * l->k;
  }
  return 1;
}

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
