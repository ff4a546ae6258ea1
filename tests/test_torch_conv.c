/* test_torch_conv.c: the convolutional VAE against PyTorch (float64 reference from
 * tests/torch_conv_ref.py, whose header documents the file format), tensor by tensor: the parameters
 * arrive in PyTorch's layouts by name and go into the flat buffer through the tensor table
 * (vae_tensor_from_torch, the checkpoint reader's conversion); [mu | logvar], the decoder output and
 * per-image recon and KL are compared, then every gradient, converted back to PyTorch's layout
 * (||ours - torch|| <= 1e-4 ||torch|| per tensor). Usage: test_torch_conv REF.bin */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "refio.h"
#include "vae.h"

/* Reads nt tensor records; each must be a tensor of the table with its PyTorch shape, once. torch
 * receives them at their table offsets (PyTorch order). */
static void read_tensors(FILE *f, const vae_tensor *t, int nt, int count, float *torch, const char *what) {
  CHECK(count == nt, "%s: %d tensors in the file, the layout has %d", what, count, nt);
  int *seen = callocCheck((size_t)nt, sizeof *seen);
  for (int r = 0; r < count; r++) {
    int32_t len, ndim, dims[8];
    char name[128];
    read_exact(&len, 4, 1, f, what);
    if (len < 1 || len >= (int)sizeof name) VAE_FAIL("%s: tensor name of %d bytes", what, len);
    read_exact(name, 1, (size_t)len, f, what);
    name[len] = 0;
    read_exact(&ndim, 4, 1, f, what);
    if (ndim < 1 || ndim > 8) VAE_FAIL("%s: %s has %d dims", what, name, ndim);
    read_exact(dims, 4, (size_t)ndim, f, what);
    int k = 0;
    while (k < nt && strcmp(t[k].name, name) != 0) k++;
    if (k == nt) VAE_FAIL("%s: PyTorch's %s is not a tensor of our layout", what, name);
    int same = ndim == t[k].ndim;
    for (int i = 0; same && i < ndim; i++) same = dims[i] == t[k].dims[i];
    CHECK(same && !seen[k], "%s: %s has another shape than PyTorch's, or comes twice", what, name);
    seen[k] = 1;
    read_exact(torch + t[k].offset, 4, vae_tensor_len(&t[k]), f, what);
  }
  free(seen);
}

static void run_case(FILE *f, int k) {
  int32_t ints[32];
  float fl[2];
  read_exact(ints, 4, 32, f, "a case header");
  read_exact(fl, 4, 2, f, "a case header");
  vae_config c = {.decoder = (vae_decoder)ints[0],
                  .in_h = ints[1],
                  .in_w = ints[2],
                  .in_c = ints[3],
                  .n_conv = ints[4],
                  .kernel = ints[13],
                  .stride = ints[14],
                  .padding = ints[15],
                  .n_hidden = ints[16],
                  .latent = ints[25],
                  .sigma = fl[0],
                  .logvar_min = fl[1]};
  for (int i = 0; i < 8; i++) c.conv[i] = ints[5 + i], c.hidden[i] = ints[17 + i];
  const int B = ints[26], count = ints[27];
  char err[VAE_ERR_LEN], desc[256];
  if (vae_config_validate(&c, err) < 0) VAE_FAIL("case %d: %s", k, err);
  vae_describe(&c, desc, sizeof desc);
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(&c, t);
  size_t P = vae_num_params(&c), D = vae_input_dim(&c), L = (size_t)c.latent;
  size_t kD = (size_t)vae_decoder_heads(&c) * D;
  float *torch = callocCheck(P, sizeof *torch), *params = callocCheck(P, sizeof *params);
  read_tensors(f, t, nt, count, torch, "params");
  for (int i = 0; i < nt; i++) vae_tensor_from_torch(&t[i], torch + t[i].offset, params);
  float *x = read_floats((size_t)B * D, f, "x"), *eps = read_floats((size_t)B * L, f, "eps");
  float *mulv = read_floats((size_t)B * 2 * L, f, "mulv"), *out = read_floats((size_t)B * kD, f, "out");
  float *recon = read_floats((size_t)B, f, "recon"), *kl = read_floats((size_t)B, f, "kl");
  float *gref = callocCheck(P, sizeof *gref);
  read_tensors(f, t, nt, count, gref, "grads");

  float *grads = callocCheck(P, sizeof *grads), *gt = callocCheck(P, sizeof *gt);
  vae_views pv, gv;
  vae_views_init(&c, params, &pv);
  vae_views_init(&c, grads, &gv);
  vae_workspace *ws = vae_workspace_create(&c, B);
  vae_forward(&c, &pv, ws, x, eps, B);
  vae_backward(&c, &pv, &gv, ws, x, eps, B, 1.0f, 1.0f);
  double e_mulv = refio_rel_norm(ws->mulv, mulv, (size_t)B * 2 * L),
         e_out = refio_rel_norm(ws->out, out, (size_t)B * kD);
  CHECK(e_mulv < 1e-5, "case %d %s: [mu | logvar] relative error %g", k, desc, e_mulv);
  CHECK(e_out < 1e-5, "case %d %s: decoder output relative error %g", k, desc, e_out);
  double worst_r, worst_k, worst_g = 0;
  refio_check_losses(ws->recon, ws->kl, recon, kl, B, &worst_r, &worst_k);
  for (int i = 0; i < nt; i++) {
    vae_tensor_to_torch(&t[i], grads, gt + t[i].offset);
    double e = refio_rel_norm(gt + t[i].offset, gref + t[i].offset, vae_tensor_len(&t[i]));
    CHECK(e <= 1e-4, "case %d %s: %s gradient relative error %g", k, desc, t[i].name, e);
    worst_g = fmax(worst_g, e);
  }
  printf(
      "case %d %s %s B=%d: relative mulv %.2g, out %.2g, recon %.2g, kl %.2g, worst gradient tensor %.2g (%d)\n",
      k, desc, vae_decoder_name(c.decoder), B, e_mulv, e_out, worst_r, worst_k, worst_g, nt);
  vae_workspace_free(ws);
  free(torch), free(params), free(x), free(eps), free(mulv), free(out), free(recon), free(kl), free(gref);
  free(grads), free(gt);
}

int main(int argc, char **argv) {
  return refio_main(argc, argv, "test_torch_conv", "tests/torch_conv_ref.py", "VAECNV01", 5, run_case);
}
