/* test_model_layout.c: the flat layout's views and tensor table agree, cover the buffer exactly once,
 * and initialisation follows PyTorch's nn.Linear bounds. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "vae.h"

static void check_config(const vae_config *c, size_t expect_params) {
  char err[VAE_ERR_LEN];
  CHECK(vae_config_validate(c, err) == 0, "valid config refused: %s", err);
  size_t n = vae_num_params(c);
  CHECK(n == expect_params, "params %zu, expected %zu", n, expect_params);
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(c, t);
  /* Tensors tile the buffer with no gap or overlap. */
  size_t off = 0;
  for (int i = 0; i < nt; i++) {
    CHECK(t[i].offset == off, "%s at %zu, expected %zu", t[i].name, t[i].offset, off);
    off += vae_tensor_len(&t[i]);
  }
  CHECK(off == n, "tensors cover %zu of %zu", off, n);
  /* The layer list points at the tensors of the same names; the fused heads are adjacent. */
  float *buf = calloc(n, sizeof *buf);
  vae_views v;
  vae_views_init(c, buf, &v);
  const vae_net *net = &v.net;
  CHECK(v.buf == buf && net->n_params == n, "views over %zu of %zu", net->n_params, n);
  CHECK(net->n == 2 * c->n_hidden + 2 && net->n_enc == c->n_hidden + 1, "%d layers, %d in the encoder",
        net->n, net->n_enc);
  const vae_layer *enc_head = &net->layer[net->n_enc - 1], *dec_head = &net->layer[net->n - 1];
  for (int i = 0; i < nt; i++) {
    size_t o = t[i].offset;
    if (strcmp(t[i].name, "encoder/mu/weight") == 0) CHECK(o == enc_head->w, "mu weight");
    if (strcmp(t[i].name, "encoder/logvar/weight") == 0)
      CHECK(o == enc_head->w + (size_t)c->latent * vae_layer_in_size(enc_head), "logvar weight follows mu's");
    if (strcmp(t[i].name, "encoder/logvar/bias") == 0)
      CHECK(o == enc_head->b + (size_t)c->latent, "logvar bias follows mu bias");
    if (strcmp(t[i].name, "decoder/out/bias") == 0) CHECK(o == dec_head->b, "out bias");
    if (strcmp(t[i].name, "decoder/logvar/weight") == 0)
      CHECK(o == dec_head->w + vae_input_dim(c) * vae_layer_in_size(dec_head), "decoder logvar weight");
  }
  CHECK(vae_layer_out_size(enc_head) == 2 * (size_t)c->latent && enc_head->heads == 2 && !enc_head->relu,
        "enc head rows %zu", vae_layer_out_size(enc_head));
  CHECK(vae_layer_out_size(dec_head) == vae_input_dim(c) * (size_t)vae_decoder_heads(c) && !dec_head->relu,
        "dec head rows %zu", vae_layer_out_size(dec_head));
  CHECK(vae_decoder_heads(c) == (c->decoder == VAE_DEC_GAUSSIAN_LEARNED ? 2 : 1), "decoder heads");
  for (int i = 1; i < net->n; i++)
    CHECK(vae_layer_in_size(&net->layer[i]) ==
              (i == net->n_enc ? (size_t)c->latent : vae_layer_out_size(&net->layer[i - 1])),
          "layer %d takes %zu values", i, vae_layer_in_size(&net->layer[i]));
  /* Init: every value inside +-1/sqrt(fan_in), spread over most of the range, deterministic. */
  vae_init_params(c, buf, 1234);
  for (int i = 0; i < c->n_hidden; i++) {
    const vae_layer *l = &net->layer[i];
    size_t in = vae_layer_in_size(l), out = vae_layer_out_size(l);
    float bound = 1.0f / sqrtf((float)in), mx = 0;
    for (size_t k = 0; k < in * out; k++) mx = fabsf(buf[l->w + k]) > mx ? fabsf(buf[l->w + k]) : mx;
    CHECK(mx <= bound && mx > 0.95f * bound, "enc[%d] max |w| %g, bound %g", i, mx, bound);
    float bmx = 0;
    for (size_t k = 0; k < out; k++) bmx = fabsf(buf[l->b + k]) > bmx ? fabsf(buf[l->b + k]) : bmx;
    CHECK(bmx <= bound && bmx > 0.5f * bound, "enc[%d] max |b| %g, bound %g", i, bmx, bound);
  }
  float *again = calloc(n, sizeof *again);
  vae_init_params(c, again, 1234);
  CHECK(memcmp(buf, again, n * sizeof *buf) == 0, "init not deterministic");
  vae_init_params(c, again, 1235);
  CHECK(memcmp(buf, again, n * sizeof *buf) != 0, "init ignores the seed");
  free(buf);
  free(again);
}

int main(void) {
  /* PyTorch examples/vae: 784-400-20-400-784, 2*(784*400+400) + 400*40+40 + 20*400+400 ... */
  vae_config c = vae_config_default(28, 28, 1);
  size_t torch_vae = (784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400) + (400 * 784 + 784);
  check_config(&c, torch_vae);
  char desc[128];
  vae_describe(&c, desc, sizeof desc);
  CHECK(strcmp(desc, "784-400-20-400-784") == 0, "describe gave %s", desc);
  c.decoder = VAE_DEC_GAUSSIAN_LEARNED;
  check_config(&c, torch_vae + 400 * 784 + 784);
  vae_config deep = {.in_h = 8,
                     .in_w = 6,
                     .in_c = 3,
                     .n_hidden = 2,
                     .hidden = {64, 32},
                     .latent = 5,
                     .decoder = VAE_DEC_GAUSSIAN,
                     .sigma = 0.5f,
                     .logvar_min = -6};
  check_config(&deep, (144 * 64 + 64) + (64 * 32 + 32) + 2 * (32 * 5 + 5) + (5 * 32 + 32) + (32 * 64 + 64) +
                          (64 * 144 + 144));
  vae_describe(&deep, desc, sizeof desc);
  CHECK(strcmp(desc, "144-64-32-5-32-64-144") == 0, "describe gave %s", desc);
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(&deep, t);
  CHECK(nt == 14 && strcmp(t[0].name, "encoder/hidden0/weight") == 0 &&
            strcmp(t[8].name, "decoder/hidden0/weight") == 0 && t[8].dims[0] == 32 && t[8].dims[1] == 5 &&
            strcmp(t[13].name, "decoder/out/bias") == 0,
        "deep tensor table: %d tensors, %s, %s", nt, t[0].name, t[8].name);
  /* Invalid configurations are refused with a message. */
  char err[VAE_ERR_LEN];
  vae_config bad = c;
  bad.latent = 0;
  CHECK(vae_config_validate(&bad, err) < 0 && strstr(err, "--latent"), "latent 0: %s", err);
  bad = c;
  bad.sigma = -1;
  CHECK(vae_config_validate(&bad, err) < 0 && strstr(err, "--sigma"), "sigma -1: %s", err);
  bad = c;
  bad.n_hidden = VAE_MAX_HIDDEN + 1;
  CHECK(vae_config_validate(&bad, err) < 0, "too many hidden layers accepted");
  vae_decoder d;
  CHECK(vae_decoder_parse("gaussian-learned", &d) == 0 && d == VAE_DEC_GAUSSIAN_LEARNED, "parse");
  CHECK(vae_decoder_parse("poisson", &d) < 0, "unknown decoder parsed");
  return check_done("test_model_layout");
}
