/* bench_vae.c: by-hand timing, not a test: forward+backward of one batch on the default model
 * (784-400-20-400-784, Bernoulli unless argv[2] names a decoder) next to the time of the same GEMMs
 * alone. Run single-threaded: OPENBLAS_NUM_THREADS=1 build/tests/bench_vae [B] [decoder] */
#include <cblas.h>
#include <stdlib.h>
#include <time.h>

#include "error.h"
#include "rng.h"
#include "vae.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The products of one step: per layer forward X W^T, backward dY W (not for the first layer), dY^T X. */
static void gemms(const vae_config *c, const vae_views *p, float *a, float *bbuf, float *cbuf, int B) {
  for (int k = 0; k < p->net.n; k++) {
    const vae_layer *l = &p->net.layer[k];
    const float *w = p->buf + l->w;
    int IN = (int)vae_layer_in_size(l), OUT = (int)vae_layer_out_size(l);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, a, IN, w, IN, 0.0f, cbuf, OUT);
    if (k > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, bbuf, OUT, w, IN, 0.0f, cbuf,
                  IN);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, 1.0f, bbuf, OUT, a, IN, 1.0f, cbuf, IN);
  }
}

int main(int argc, char **argv) {
  int B = argc > 1 ? atoi(argv[1]) : 128;
  vae_config c = {.in_h = 28,
                  .in_w = 28,
                  .in_c = 1,
                  .n_hidden = 1,
                  .hidden = {400},
                  .latent = 20,
                  .decoder = VAE_DEC_BERNOULLI,
                  .sigma = 1.0f,
                  .logvar_min = VAE_DEFAULT_LOGVAR_MIN};
  if (argc > 2 && vae_decoder_parse(argv[2], &c.decoder) < 0) VAE_FAIL("unknown decoder %s", argv[2]);
  size_t P = vae_num_params(&c), D = vae_input_dim(&c);
  float *params = mallocCheck(P * sizeof *params), *grads = callocCheck(P, sizeof *grads);
  vae_init_params(&c, params, 1);
  vae_views pv, gv;
  vae_views_init(&c, params, &pv);
  vae_views_init(&c, grads, &gv);
  vae_workspace *ws = vae_workspace_create(&c, B);
  vae_rng_uniform(ws->x, (size_t)B * D, 1, VAE_RNG_EVAL, 0, 0, 0);
  vae_rng_normal(ws->eps, (size_t)B * c.latent, 1, VAE_RNG_EPS, 0, 0, 0);
  size_t big = (size_t)B * 2 * D + 2 * D * 400;
  float *a = callocCheck(big, sizeof *a), *bb = callocCheck(big, sizeof *bb),
        *cc = callocCheck(big, sizeof *cc);
  const int reps = 50;
  double best_step = 1e9, best_gemm = 1e9, best_fwd = 1e9;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    vae_forward(&c, &pv, ws, ws->x, ws->eps, B);
    double t1 = now();
    vae_backward(&c, &pv, &gv, ws, ws->x, ws->eps, B, 1.0f, 1.0f / (float)B);
    double t2 = now();
    gemms(&c, &pv, a, bb, cc, B);
    double t3 = now();
    best_fwd = t1 - t0 < best_fwd ? t1 - t0 : best_fwd;
    best_step = t2 - t0 < best_step ? t2 - t0 : best_step;
    best_gemm = t3 - t2 < best_gemm ? t3 - t2 : best_gemm;
  }
  printf("%s B=%d: forward %.3f ms, forward+backward %.3f ms, same GEMMs alone %.3f ms (GEMM share %.0f%%)\n",
         vae_decoder_name(c.decoder), B, 1e3 * best_fwd, 1e3 * best_step, 1e3 * best_gemm,
         100 * best_gemm / best_step);
  vae_workspace_free(ws);
  free(params), free(grads), free(a), free(bb), free(cc);
  return 0;
}
