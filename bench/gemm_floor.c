/* gemm_floor.c: the GEMM floor of one vae_mpi training step. Times exactly the matrix products of
 * forward and backward of a model (default the MLP 784-400-20-400-784, batch 128) with one OpenBLAS
 * thread, and prints the samples/s those products alone allow: the physical limit the trainer is
 * measured against (scripts/bench.sh runs one copy per core side by side). The products come from the
 * model's layer list (vae_net_build), each over the whole batch: a linear layer's X W^T, dW, dX; a
 * convolution's over its im2col rows (im2col, col2im and the chunking left out).
 *   gemm_floor [--batch B] [--dims 784,400,20] [--seconds S]
 *   gemm_floor --conv 32,64 --hidden 256 --latent 20 [--image 28x28x1] [--kernel 4 --stride 2 --padding 1]
 *              [--whole-batch] [--step]
 * --step also times the model's real forward + backward (vae_forward, vae_backward: im2col, col2im and
 * the elementwise passes included) on the same thread for as long: kernels_step_ms beside step_ms.
 * Prints one JSON line: {"batch":..,"model":..,"gflop_per_step":..,"step_ms":..,"samples_per_s":..,"blas":..}.
 * Its OpenBLAS kernels are chosen exactly as vae_mpi's (vae_blas_select, blas_kernels.h). */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_kernels.h"
#include "cli.h"
#include "error.h"
#include "layers.h"
#include "rng.h"
#include "vae.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  int m, n, k;
  int trans_a, trans_b;
  int accumulate; /* C += the product (a weight gradient); else C is overwritten */
} gemm;

/* Row-major C (m, n) = op(A) (m, k) x op(B) (k, n), as the kernels call them, per layer: forward;
 * then backwards from the last layer dW and dX (none for the first layer's input). A linear layer is
 * (rows B, out, in); a conv (rows B*gh*gw, n, k*k*c); a transposed conv (rows B*gh*gw, heads*k*k*c, n)
 * with the roles of its GEMMs swapped (its forward is the conv's dX). A conv layer's rows come in the
 * chunks of images the kernels use (vae_layer_cols_len), unless whole: one GEMM over the batch. g holds
 * room for 3 GEMMs per layer and chunk. The outputs are written as the kernels write them: dW added to
 * (beta 1), the forward and dX overwritten through the kernels' own vae_gemm_overwrite (memset + beta 1:
 * OpenBLAS 0.3.21's beta 0 zeroes C one scalar store at a time, which the kernels no longer pay). */
static int step_gemms(const vae_net *net, int B, int whole, gemm *g) {
  int n = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < net->n; j++) {
      int i = pass ? net->n - 1 - j : j;
      const vae_layer *l = &net->layer[i];
      int kk = l->k * l->k, px = 1, out, in, nb = B;
      if (l->kind == VAE_LAYER_LINEAR) {
        out = (int)vae_layer_out_size(l), in = (int)vae_layer_in_size(l);
      } else {
        vae_conv_shape s = vae_layer_conv_shape(l);
        px = s.gh * s.gw;
        out = l->kind == VAE_LAYER_CONV2D ? l->out_c : l->heads * kk * l->out_c;
        in = l->kind == VAE_LAYER_CONV2D ? kk * l->in_c : l->in_c;
        if (!whole) nb = (int)(vae_layer_cols_len(l, B) / vae_conv_cols_per_image(&s));
      }
      for (int b0 = 0; b0 < B; b0 += nb) {
        int rows = (B - b0 < nb ? B - b0 : nb) * px;
        if (!pass) g[n++] = (gemm){rows, out, in, 0, 1, 0};
        if (pass) g[n++] = (gemm){out, in, rows, 1, 0, 1};
        if (pass && i > 0) g[n++] = (gemm){rows, in, out, 0, 0, 0};
      }
    }
  return n;
}

/* Mean milliseconds of forward + backward of B random images over `seconds`; the workspace's im2col MiB. */
static double time_step(const vae_config *c, int B, double seconds, double *cols_mib) {
  size_t P = vae_num_params(c), D = vae_input_dim(c);
  float *params = mallocCheck(P * sizeof *params), *grads = callocCheck(P, sizeof *grads);
  vae_init_params(c, params, 1);
  vae_views pv, gv;
  vae_views_init(c, params, &pv);
  vae_views_init(c, grads, &gv);
  vae_workspace *ws = vae_workspace_create(c, B);
  vae_rng_uniform(ws->x, (size_t)B * D, 1, VAE_RNG_EVAL, 0, 0, 0);
  vae_rng_normal(ws->eps, (size_t)B * c->latent, 1, VAE_RNG_EPS, 0, 0, 0);
  long steps = 0;
  double t0 = now(), t;
  do {
    vae_forward(c, &pv, ws, ws->x, ws->eps, B);
    vae_backward(c, &pv, &gv, ws, ws->x, ws->eps, B, 1.0f, 1.0f / (float)B);
    steps++;
    t = now() - t0;
  } while (t < seconds);
  *cols_mib = (double)ws->cols_len * sizeof(float) / (1 << 20);
  vae_workspace_free(ws);
  free(params), free(grads);
  return 1e3 * t / (double)steps;
}

static int int_arg(const char *flag, const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < 0 || v > 1 << 30) VAE_FAIL("%s expects a whole number, got '%s'", flag, s);
  return (int)v;
}

int main(int argc, char **argv) {
  vae_blas_select(argv); /* may re-execute this program with the right OPENBLAS_CORETYPE */
  int B = 128, whole = 0, step = 0;
  double seconds = 3.0;
  vae_config cfg = vae_config_default(28, 28, 1);
  char err[VAE_ERR_LEN];
  for (int i = 1; i < argc; i += 2) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    int D, rc = 0;
    if (!strcmp(f, "--whole-batch"))
      whole = 1, i--;
    else if (!strcmp(f, "--step"))
      step = 1, i--;
    else if (!strcmp(f, "--decoder"))
      rc = vae_decoder_parse(v, &cfg.decoder) < 0 ? vae_err(err, "unknown decoder %s", v) : 0;
    else if (!strcmp(f, "--batch"))
      B = int_arg(f, v);
    else if (!strcmp(f, "--dims") && sscanf(v, "%d,%d,%d", &D, &cfg.hidden[0], &cfg.latent) == 3)
      cfg.in_h = 1, cfg.in_w = D, cfg.in_c = 1, cfg.n_hidden = 1;
    else if (!strcmp(f, "--seconds"))
      seconds = atof(v);
    else if (!strcmp(f, "--conv"))
      rc = vae_cli_parse_conv(v, &cfg, err);
    else if (!strcmp(f, "--hidden"))
      rc = vae_cli_parse_hidden(v, &cfg, err);
    else if (!strcmp(f, "--latent"))
      cfg.latent = int_arg(f, v);
    else if (!strcmp(f, "--image") && sscanf(v, "%dx%dx%d", &cfg.in_h, &cfg.in_w, &cfg.in_c) == 3)
      ;
    else if (!strcmp(f, "--kernel"))
      cfg.kernel = int_arg(f, v);
    else if (!strcmp(f, "--stride"))
      cfg.stride = int_arg(f, v);
    else if (!strcmp(f, "--padding"))
      cfg.padding = int_arg(f, v);
    else
      VAE_FAIL("gemm_floor: unknown option %s %s", f, v);
    if (rc < 0) VAE_FAIL("gemm_floor: %s", err);
  }
  if (vae_config_validate(&cfg, err) < 0) VAE_FAIL("gemm_floor: %s", err);
  openblas_set_num_threads(1);
  vae_net net;
  vae_net_build(&cfg, &net);
  gemm *g = mallocCheck((size_t)3 * VAE_MAX_LAYERS * (size_t)B * sizeof *g);
  const int ng = step_gemms(&net, B, whole, g);
  char model[256];
  vae_describe(&cfg, model, sizeof model);

  size_t big = 0;
  for (int i = 0; i < ng; i++) {
    size_t mk = (size_t)g[i].m * g[i].k, kn = (size_t)g[i].k * g[i].n, mn = (size_t)g[i].m * g[i].n;
    big = mk > big ? mk : big, big = kn > big ? kn : big, big = mn > big ? mn : big;
  }
  float *a = malloc(big * sizeof(float)), *b = malloc(big * sizeof(float)), *c = malloc(big * sizeof(float));
  for (size_t i = 0; i < big; i++) {
    a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    c[i] = 0;
  }
  double flop = 0;
  for (int i = 0; i < ng; i++) flop += 2.0 * g[i].m * g[i].n * g[i].k;
  long steps = 0;
  double t0 = now(), t;
  do {
    for (int i = 0; i < ng; i++) {
      int lda = g[i].trans_a ? g[i].m : g[i].k, ldb = g[i].trans_b ? g[i].k : g[i].n;
      if (g[i].accumulate) /* a weight gradient: the kernels add it to the step's zeroed gradient */
        cblas_sgemm(CblasRowMajor, g[i].trans_a ? CblasTrans : CblasNoTrans,
                    g[i].trans_b ? CblasTrans : CblasNoTrans, g[i].m, g[i].n, g[i].k, 1.0f, a, lda, b, ldb,
                    1.0f, c, g[i].n);
      else /* as the kernels overwrite their outputs: memset + beta 1 (layers.h) */
        vae_gemm_overwrite(g[i].trans_a, g[i].trans_b, g[i].m, g[i].n, g[i].k, 1.0f, a, lda, b, ldb, c);
    }
    steps++;
    t = now() - t0;
  } while (t < seconds);
  char extra[160] = "";
  if (step) {
    double mib, ms = time_step(&cfg, B, seconds, &mib);
    snprintf(extra, sizeof extra,
             "\"kernels_step_ms\":%.4f,\"kernels_samples_per_s\":%.1f,\"workspace_cols_mib\":%.2f,", ms,
             1e3 * B / ms, mib);
  }
  printf(
      "{\"batch\":%d,\"model\":\"%s\",\"gemms\":%d,\"chunked\":%s,\"gflop_per_step\":%.4f,\"step_ms\":%.4f,\"samples_per_s\":%.1f,\"gflops\":%.2f,%s%s}\n",
      B, model, ng, whole ? "false" : "true", flop * 1e-9, 1e3 * t / steps, (double)steps * B / t,
      flop * steps / t * 1e-9, extra, vae_blas_json());
  free(a);
  free(b);
  free(c);
  free(g);
  return 0;
}
