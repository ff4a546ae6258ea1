/* test_torch_ref.c: our forward/backward against PyTorch (float64 reference from tests/torch_ref.py,
 * whose header documents the file format), tensor by tensor: ||ours - torch|| <= 1e-4 ||torch|| for
 * every gradient tensor, per-image recon and KL within 1e-4 relative.
 * Usage: test_torch_ref REF.bin */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "refio.h"
#include "vae.h"

static void run_case(FILE *f, int k) {
  int32_t ints[16];
  float fl[2];
  int64_t P;
  read_exact(ints, sizeof ints[0], 16, f, "a case header");
  read_exact(fl, sizeof fl[0], 2, f, "a case header");
  read_exact(&P, sizeof P, 1, f, "a case header");
  vae_config c = {.decoder = (vae_decoder)ints[0],
                  .in_h = ints[1],
                  .in_w = ints[2],
                  .in_c = ints[3],
                  .n_hidden = ints[4],
                  .latent = ints[13],
                  .sigma = fl[0],
                  .logvar_min = fl[1]};
  for (int i = 0; i < 8; i++) c.hidden[i] = ints[5 + i];
  int B = ints[14];
  char err[VAE_ERR_LEN], desc[128];
  if (vae_config_validate(&c, err) < 0) VAE_FAIL("case %d: %s", k, err);
  if ((size_t)P != vae_num_params(&c))
    VAE_FAIL("case %d: %lld params, layout has %zu", k, (long long)P, vae_num_params(&c));
  vae_describe(&c, desc, sizeof desc);
  size_t D = vae_input_dim(&c), L = (size_t)c.latent;
  float *params = read_floats((size_t)P, f, "params"), *x = read_floats((size_t)B * D, f, "x");
  float *eps = read_floats((size_t)B * L, f, "eps"), *recon = read_floats((size_t)B, f, "recon");
  float *kl = read_floats((size_t)B, f, "kl"), *gref = read_floats((size_t)P, f, "grad");

  float *grads = callocCheck((size_t)P, sizeof *grads);
  vae_views pv, gv;
  vae_views_init(&c, params, &pv);
  vae_views_init(&c, grads, &gv);
  vae_workspace *ws = vae_workspace_create(&c, B);
  vae_forward(&c, &pv, ws, x, eps, B);
  vae_backward(&c, &pv, &gv, ws, x, eps, B, 1.0f, 1.0f);

  double worst_r, worst_k, worst_g = 0;
  refio_check_losses(ws->recon, ws->kl, recon, kl, B, &worst_r, &worst_k);
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(&c, t);
  for (int i = 0; i < nt; i++) {
    size_t len = vae_tensor_len(&t[i]);
    double rel = refio_rel_norm(grads + t[i].offset, gref + t[i].offset, len);
    CHECK(rel <= 1e-4, "case %d %s %s: gradient relative error %g", k, desc, t[i].name, rel);
    worst_g = fmax(worst_g, rel);
  }
  printf("case %d %s %s B=%d: worst relative recon %.2g, kl %.2g, gradient tensor %.2g\n", k, desc,
         vae_decoder_name(c.decoder), B, worst_r, worst_k, worst_g);
  vae_workspace_free(ws);
  free(params), free(x), free(eps), free(recon), free(kl), free(gref), free(grads);
}

int main(int argc, char **argv) {
  return refio_main(argc, argv, "test_torch_ref", "tests/torch_ref.py", "VAEREF01", 6, run_case);
}
