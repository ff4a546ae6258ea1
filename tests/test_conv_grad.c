/* test_conv_grad.c: every gradient of the convolutional VAE (every conv, transposed-conv, linear weight
 * and bias, through the flatten, the project, the fused heads and the output_padding) against central
 * differences of an independent double-precision forward written here in PyTorch's layouts (NCHW
 * images, Conv2d (out, in, k, k), ConvTranspose2d (in, out, k, k), flatten in (C, h, w) order) from
 * the module of docs/CHECKPOINT.md; the parameters reach it through the tensor table
 * (vae_tensor_to_torch), so the layout conversion of the checkpoints is tested too. Per-image recon,
 * KL and the decoder mean are compared as well, for all three decoders, 1 and 3 channels, square and
 * non-square images, kernels 3, 4, 5, stride 1 and 2, padding 0 and 1, with and without hidden
 * layers, batch 1 and several; a perturbed gradient must be caught. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dconv.h"
#include "error.h"
#include "rng.h"
#include "vae.h"

typedef struct {
  const vae_config *c;
  vae_tensor t[VAE_MAX_TENSORS];
  int nt;
} model;

static const double *T(const model *m, const double *P, const char *name) {
  for (int i = 0; i < m->nt; i++)
    if (strcmp(m->t[i].name, name) == 0) return P + m->t[i].offset;
  VAE_FAIL("no tensor %s", name);
}

/* y (B, O) = x (B, I) W^T + b, W (O, I) */
static void dlinear(double *y, const double *x, const double *W, const double *b, int B, int I, int O,
                    int relu) {
  for (int n = 0; n < B; n++)
    for (int o = 0; o < O; o++) {
      double s = b[o];
      for (int i = 0; i < I; i++) s += x[(size_t)n * I + i] * W[(size_t)o * I + i];
      y[(size_t)n * O + o] = relu && s < 0 ? 0 : s;
    }
}

static void drelu(double *a, size_t n) {
  for (size_t i = 0; i < n; i++) a[i] = a[i] < 0 ? 0 : a[i];
}

static double softplus(double a) { return fmax(a, 0) + log1p(exp(-fabs(a))); }

/* scale * sum_b (recon_b + kw kl_b), per-image recon and kl, and the decoder mean (B, D) channels last. */
static double ref_loss(const model *m, const double *P, const float *x, const float *eps, int B, double kw,
                       double scale, double *recon, double *kl, double *mean) {
  const vae_config *c = m->c;
  const int K = c->kernel, S = c->stride, Pd = c->padding, L = c->latent, nc = c->n_conv;
  const size_t D = vae_input_dim(c);
  int hs[VAE_MAX_CONV + 1], ws[VAE_MAX_CONV + 1], ch[VAE_MAX_CONV + 1];
  hs[0] = c->in_h, ws[0] = c->in_w, ch[0] = c->in_c;
  for (int i = 0; i < nc; i++)
    hs[i + 1] = (hs[i] + 2 * Pd - K) / S + 1, ws[i + 1] = (ws[i] + 2 * Pd - K) / S + 1,
           ch[i + 1] = c->conv[i];
  size_t big = (size_t)B * 64 * 1024;
  double *a = calloc(big, sizeof *a), *bb = calloc(big, sizeof *bb), *xd = malloc(B * D * sizeof *xd);
  char name[64];
  for (size_t i = 0; i < B * D; i++) xd[i] = x[i];
  nhwc_to_nchw(a, xd, B, c->in_h, c->in_w, c->in_c);
  for (int i = 0; i < nc; i++) {
    snprintf(name, sizeof name, "encoder/conv%d/weight", i);
    const double *W = T(m, P, name);
    snprintf(name, sizeof name, "encoder/conv%d/bias", i);
    dconv2d(bb, a, W, T(m, P, name), B, ch[i], hs[i], ws[i], ch[i + 1], K, S, Pd);
    drelu(bb, (size_t)B * ch[i + 1] * hs[i + 1] * ws[i + 1]);
    double *t = a;
    a = bb, bb = t;
  }
  /* (B, C, h, w) is already flattened in PyTorch's (C, h, w) order */
  int width = ch[nc] * hs[nc] * ws[nc];
  for (int i = 0; i < c->n_hidden; i++) {
    snprintf(name, sizeof name, "encoder/hidden%d/weight", i);
    const double *W = T(m, P, name);
    snprintf(name, sizeof name, "encoder/hidden%d/bias", i);
    dlinear(bb, a, W, T(m, P, name), B, width, c->hidden[i], 1);
    width = c->hidden[i];
    double *t = a;
    a = bb, bb = t;
  }
  double *mu = malloc((size_t)B * L * sizeof *mu), *lv = malloc((size_t)B * L * sizeof *lv);
  dlinear(mu, a, T(m, P, "encoder/mu/weight"), T(m, P, "encoder/mu/bias"), B, width, L, 0);
  dlinear(lv, a, T(m, P, "encoder/logvar/weight"), T(m, P, "encoder/logvar/bias"), B, width, L, 0);
  for (int n = 0; n < B; n++) {
    double s = 0;
    for (int j = 0; j < L; j++) {
      double u = mu[n * L + j], v = lv[n * L + j];
      a[n * L + j] = u + exp(0.5 * v) * eps[n * L + j];
      s += -0.5 * (1 + v - u * u - exp(v));
    }
    kl[n] = s;
  }
  width = L;
  for (int i = 0; i < c->n_hidden; i++) {
    int wo = c->hidden[c->n_hidden - 1 - i];
    snprintf(name, sizeof name, "decoder/hidden%d/weight", i);
    const double *W = T(m, P, name);
    snprintf(name, sizeof name, "decoder/hidden%d/bias", i);
    dlinear(bb, a, W, T(m, P, name), B, width, wo, 1);
    width = wo;
    double *t = a;
    a = bb, bb = t;
  }
  int proj = ch[nc] * hs[nc] * ws[nc];
  dlinear(bb, a, T(m, P, "decoder/project/weight"), T(m, P, "decoder/project/bias"), B, width, proj, 1);
  double *t = a;
  a = bb, bb = t; /* unflattened: (B, C, h, w) */
  for (int i = nc; i >= 2; i--) {
    snprintf(name, sizeof name, "decoder/convt%d/weight", nc - i);
    const double *W = T(m, P, name);
    snprintf(name, sizeof name, "decoder/convt%d/bias", nc - i);
    int oph = hs[i - 1] - ((hs[i] - 1) * S - 2 * Pd + K), opw = ws[i - 1] - ((ws[i] - 1) * S - 2 * Pd + K);
    dconvt2d(bb, a, W, T(m, P, name), B, ch[i], hs[i], ws[i], ch[i - 1], K, S, Pd, oph, opw);
    drelu(bb, (size_t)B * ch[i - 1] * hs[i - 1] * ws[i - 1]);
    t = a, a = bb, bb = t;
  }
  int oph = hs[0] - ((hs[1] - 1) * S - 2 * Pd + K), opw = ws[0] - ((ws[1] - 1) * S - 2 * Pd + K);
  double *out = malloc(B * D * sizeof *out), *r = malloc(B * D * sizeof *r),
         *tmp = malloc(B * D * sizeof *tmp);
  dconvt2d(tmp, a, T(m, P, "decoder/out/weight"), T(m, P, "decoder/out/bias"), B, ch[1], hs[1], ws[1], ch[0],
           K, S, Pd, oph, opw);
  nchw_to_nhwc(out, tmp, B, c->in_h, c->in_w, c->in_c);
  if (c->decoder == VAE_DEC_GAUSSIAN_LEARNED) {
    dconvt2d(tmp, a, T(m, P, "decoder/logvar/weight"), T(m, P, "decoder/logvar/bias"), B, ch[1], hs[1], ws[1],
             ch[0], K, S, Pd, oph, opw);
    nchw_to_nhwc(r, tmp, B, c->in_h, c->in_w, c->in_c);
  }
  double total = 0;
  for (int n = 0; n < B; n++) {
    double rec = 0;
    for (size_t j = 0; j < D; j++) {
      double xv = xd[n * D + j], o = out[n * D + j];
      if (c->decoder == VAE_DEC_BERNOULLI) {
        rec += softplus(o) - xv * o;
        mean[n * D + j] = 1 / (1 + exp(-o));
      } else if (c->decoder == VAE_DEC_GAUSSIAN) {
        double s2 = (double)c->sigma * c->sigma;
        rec += (xv - o) * (xv - o) / (2 * s2) + 0.5 * log(2 * 3.14159265358979323846 * s2);
        mean[n * D + j] = o;
      } else {
        double l = c->logvar_min + softplus(r[n * D + j] - c->logvar_min);
        rec += (xv - o) * (xv - o) / (2 * exp(l)) + 0.5 * (log(2 * 3.14159265358979323846) + l);
        mean[n * D + j] = o;
      }
    }
    recon[n] = rec;
    total += rec + kw * kl[n];
  }
  free(a), free(bb), free(xd), free(mu), free(lv), free(out), free(r), free(tmp);
  return scale * total;
}

static void check_model(const vae_config *c, int B, float kw, float scale, uint64_t seed) {
  char err[VAE_ERR_LEN], desc[256];
  CHECK(vae_config_validate(c, err) == 0, "config: %s", err);
  vae_describe(c, desc, sizeof desc);
  model m = {.c = c};
  m.nt = vae_tensors(c, m.t);
  size_t P = vae_num_params(c), D = vae_input_dim(c);
  int L = c->latent;
  float *params = malloc(P * sizeof *params), *grads = calloc(P, sizeof *grads), *tf = malloc(P * sizeof *tf);
  vae_init_params(c, params, seed);
  for (size_t i = 0; i < P; i++) params[i] *= 2.0f; /* larger than init: ReLUs and the floor both ways */
  vae_views pv, gv;
  vae_views_init(c, params, &pv);
  vae_views_init(c, grads, &gv);
  float *x = malloc(B * D * sizeof *x), *eps = malloc((size_t)B * L * sizeof *eps);
  vae_rng_uniform(x, B * D, seed, VAE_RNG_EVAL, 0, 1, 0);
  vae_rng_normal(eps, (size_t)B * L, seed, VAE_RNG_EPS, 0, 1, 0);
  vae_workspace *ws = vae_workspace_create(c, B + 1);
  vae_forward(c, &pv, ws, x, eps, B);
  vae_backward(c, &pv, &gv, ws, x, eps, B, kw, scale);

  /* the parameters in PyTorch's layouts, at the same offsets */
  double *Pd = malloc(P * sizeof *Pd), *recon = malloc(B * sizeof *recon), *kl = malloc(B * sizeof *kl);
  double *mean_ref = malloc(B * D * sizeof *mean_ref);
  for (int i = 0; i < m.nt; i++) vae_tensor_to_torch(&m.t[i], params, tf + m.t[i].offset);
  for (size_t i = 0; i < P; i++) Pd[i] = tf[i];
  ref_loss(&m, Pd, x, eps, B, kw, scale, recon, kl, mean_ref);
  float *mean = malloc(B * D * sizeof *mean);
  vae_output_mean(c, ws, B, mean);
  for (int b = 0; b < B; b++) {
    CHECK_CLOSE(ws->recon[b], recon[b], 1e-5, 1e-4);
    CHECK_CLOSE(ws->kl[b], kl[b], 1e-5, 1e-5);
  }
  for (size_t j = 0; j < B * D; j++) CHECK_CLOSE(mean[j], mean_ref[j], 1e-4, 1e-5);

  double *fd = malloc(P * sizeof *fd);
  for (size_t i = 0; i < P; i++) {
    double p0 = Pd[i], h = 1e-6 * fmax(1.0, fabs(p0));
    Pd[i] = p0 + h;
    double lp = ref_loss(&m, Pd, x, eps, B, kw, scale, recon, kl, mean_ref);
    Pd[i] = p0 - h;
    double lm = ref_loss(&m, Pd, x, eps, B, kw, scale, recon, kl, mean_ref);
    Pd[i] = p0;
    fd[i] = (lp - lm) / (2 * h);
  }
  /* our gradient in PyTorch's layout, tensor by tensor */
  for (int i = 0; i < m.nt; i++) vae_tensor_to_torch(&m.t[i], grads, tf + m.t[i].offset);
  int caught = 0;
  for (int k = 0; k < m.nt; k++) {
    const vae_tensor *t = &m.t[k];
    size_t len = vae_tensor_len(t), bad = 0, first = 0, best = 0;
    double norm = 0;
    for (size_t i = 0; i < len; i++) {
      double g = tf[t->offset + i], f = fd[t->offset + i];
      if (!(fabs(g - f) <= 1e-3 * fabs(f) + 1e-4) && !bad++) first = i;
      norm += f * f;
      if (fabs(f) > fabs(fd[t->offset + best])) best = i;
    }
    CHECK(bad == 0, "%s %s: %s: %zu of %zu gradients off, first [%zu] %.8g vs fd %.8g", desc,
          vae_decoder_name(c->decoder), t->name, bad, len, first, tf[t->offset + first],
          fd[t->offset + first]);
    CHECK(sqrt(norm) > 1e-3, "%s: %s gradient norm %g (a test of a zero gradient proves little)", desc,
          t->name, sqrt(norm));
    /* 1% off on the largest entry is caught by the same comparison */
    double g = 1.01 * tf[t->offset + best], f = fd[t->offset + best];
    caught += !(fabs(g - f) <= 1e-3 * fabs(f) + 1e-4);
  }
  CHECK(caught == m.nt, "%s: perturbed gradients caught in %d of %d tensors", desc, caught, m.nt);
  printf("%s %s B=%d: %zu parameters, %d tensors checked\n", desc, vae_decoder_name(c->decoder), B, P, m.nt);
  vae_workspace_free(ws);
  free(params), free(grads), free(tf), free(x), free(eps), free(Pd), free(recon), free(kl), free(mean_ref);
  free(mean), free(fd);
}

int main(void) {
  vae_config base = {.latent = 2, .sigma = 0.7f, .logvar_min = -0.3f};
  /* square, even, k4 s2 p1 (the Fashion-MNIST shape, small), two conv layers, a hidden layer */
  vae_config a = base;
  a.in_h = 8, a.in_w = 8, a.in_c = 1, a.n_conv = 2, a.conv[0] = 2, a.conv[1] = 3, a.kernel = 4, a.stride = 2;
  a.padding = 1, a.n_hidden = 1, a.hidden[0] = 5, a.decoder = VAE_DEC_BERNOULLI;
  check_model(&a, 3, 1.0f, 1.0f, 21);
  /* colour, odd and non-square, k3 s2 p1, no hidden layer (the heads read the flattened trunk, the
   * project reads z), gaussian */
  vae_config b = base;
  b.in_h = 7, b.in_w = 5, b.in_c = 3, b.n_conv = 2, b.conv[0] = 3, b.conv[1] = 2, b.kernel = 3, b.stride = 2;
  b.padding = 1, b.n_hidden = 0, b.decoder = VAE_DEC_GAUSSIAN;
  check_model(&b, 2, 0.5f, 0.25f, 22);
  /* stride 1, padding 0, kernel 5, gaussian-learned (two fused transposed-conv heads), batch 1 */
  vae_config c = base;
  c.in_h = 6, c.in_w = 7, c.in_c = 2, c.n_conv = 1, c.conv[0] = 2, c.kernel = 5, c.stride = 1, c.padding = 0;
  c.n_hidden = 2, c.hidden[0] = 4, c.hidden[1] = 3, c.decoder = VAE_DEC_GAUSSIAN_LEARNED;
  check_model(&c, 1, 1.0f, 1.0f, 23);
  /* odd sizes at stride 2 where output_padding differs per axis (9 -> 5 -> 3, 8 -> 4 -> 2), colour */
  vae_config d = base;
  d.in_h = 9, d.in_w = 8, d.in_c = 3, d.n_conv = 2, d.conv[0] = 2, d.conv[1] = 2, d.kernel = 3, d.stride = 2;
  d.padding = 1, d.n_hidden = 1, d.hidden[0] = 3, d.decoder = VAE_DEC_GAUSSIAN_LEARNED;
  check_model(&d, 2, 1.0f, 1.0f, 24);
  return check_done("test_conv_grad");
}
