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

/* ||a - b|| <= tol ||b|| over n values */
static int close_norm(const float *a, const float *b, size_t n, double tol, double *rel) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    r += (double)b[i] * b[i];
  }
  *rel = sqrt(d) / (sqrt(r) + 1e-300);
  return sqrt(d) <= tol * sqrt(r) && r > 0;
}

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

  double worst_r = 0, worst_k = 0, worst_g = 0;
  for (int b = 0; b < B; b++) {
    CHECK_CLOSE(ws->recon[b], recon[b], 1e-4, 0);
    CHECK_CLOSE(ws->kl[b], kl[b], 1e-4, 0);
    worst_r = fmax(worst_r, fabs(ws->recon[b] - recon[b]) / fabs(recon[b]));
    worst_k = fmax(worst_k, fabs(ws->kl[b] - kl[b]) / fabs(kl[b]));
  }
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(&c, t);
  for (int i = 0; i < nt; i++) {
    size_t len = vae_tensor_len(&t[i]);
    double rel;
    int ok = close_norm(grads + t[i].offset, gref + t[i].offset, len, 1e-4, &rel);
    CHECK(ok, "case %d %s %s: gradient relative error %g", k, desc, t[i].name, rel);
    worst_g = fmax(worst_g, rel);
  }
  printf("case %d %s %s B=%d: worst relative recon %.2g, kl %.2g, gradient tensor %.2g\n", k, desc,
         vae_decoder_name(c.decoder), B, worst_r, worst_k, worst_g);
  vae_workspace_free(ws);
  free(params), free(x), free(eps), free(recon), free(kl), free(gref), free(grads);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_torch_ref REF.bin (written by tests/torch_ref.py)\n");
    return 2;
  }
  FILE *f = fopenCheck(argv[1], "rb");
  char magic[8];
  int32_t ncases;
  read_exact(magic, 1, 8, f, "the magic");
  CHECK(memcmp(magic, "VAEREF01", 8) == 0, "bad magic");
  read_exact(&ncases, sizeof ncases, 1, f, "the case count");
  CHECK(ncases == 6, "expected 6 cases (3 decoders x 2 models), file has %d", ncases);
  for (int k = 0; k < ncases; k++) run_case(f, k);
  char extra;
  CHECK(fread(&extra, 1, 1, f) == 0, "trailing bytes after the last case");
  fclose(f);
  return check_done("test_torch_ref");
}
