/* test_grad.c: every gradient of every decoder against central finite differences of an independent
 * double-precision forward written here (not the float code), on a small 2-hidden-layer model with
 * injected noise. Also: per-image recon/KL and the decoder mean against that reference, kl_weight and
 * scale applied, backward accumulating (two calls = twice the gradient), and a deliberately perturbed
 * gradient being caught by the same comparison. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "rng.h"
#include "vae.h"

#define NB 4

/* ---- the double-precision reference forward ---- */

typedef struct {
  size_t w, b; /* offsets into the flat parameter vector */
  int in, out;
} ref_layer;

typedef struct {
  int nh;
  ref_layer enc[VAE_MAX_HIDDEN], enc_head, dec[VAE_MAX_HIDDEN], dec_head;
} ref_model;

static ref_layer ref_of(const vae_layer *l) {
  ref_layer r = {l->w, l->b, (int)vae_layer_in_size(l), (int)vae_layer_out_size(l)};
  return r;
}

static void ref_linear(double *out, const double *in, const double *P, ref_layer l, int relu) {
  for (int o = 0; o < l.out; o++) {
    double s = P[l.b + o];
    for (int i = 0; i < l.in; i++) s += in[i] * P[l.w + (size_t)o * l.in + i];
    out[o] = relu && s < 0 ? 0 : s;
  }
}

static double softplus(double a) { return fmax(a, 0) + log1p(exp(-fabs(a))); }

/* Returns scale * sum_b (recon_b + kw kl_b); fills recon, kl, and the decoder mean (B, D). */
static double ref_loss(const vae_config *c, const ref_model *m, const double *P, const float *x,
                       const float *eps, int B, double kw, double scale, double *recon, double *kl,
                       double *mean) {
  int D = (int)vae_input_dim(c), L = c->latent;
  double a[2][256], total = 0;
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * D;
    for (int j = 0; j < D; j++) a[0][j] = xb[j];
    int cur = 0;
    for (int i = 0; i < m->nh; i++, cur ^= 1) ref_linear(a[cur ^ 1], a[cur], P, m->enc[i], 1);
    double mulv[64], z[32];
    ref_linear(mulv, a[cur], P, m->enc_head, 0);
    double klb = 0;
    for (int j = 0; j < L; j++) {
      double mu = mulv[j], lv = mulv[L + j];
      z[j] = mu + exp(0.5 * lv) * eps[(size_t)b * L + j];
      klb += -0.5 * (1 + lv - mu * mu - exp(lv));
    }
    for (int j = 0; j < L; j++) a[0][j] = z[j];
    cur = 0;
    for (int i = 0; i < m->nh; i++, cur ^= 1) ref_linear(a[cur ^ 1], a[cur], P, m->dec[i], 1);
    double out[512];
    ref_linear(out, a[cur], P, m->dec_head, 0);
    double rec = 0;
    for (int j = 0; j < D; j++) {
      double xv = xb[j], o = out[j];
      switch (c->decoder) {
        case VAE_DEC_BERNOULLI:
          rec += softplus(o) - xv * o;
          mean[(size_t)b * D + j] = 1 / (1 + exp(-o));
          break;
        case VAE_DEC_GAUSSIAN: {
          double s2 = (double)c->sigma * c->sigma;
          rec += (xv - o) * (xv - o) / (2 * s2) + 0.5 * log(2 * 3.14159265358979323846 * s2);
          mean[(size_t)b * D + j] = o;
          break;
        }
        case VAE_DEC_GAUSSIAN_LEARNED: {
          double lmin = c->logvar_min, lv = lmin + softplus(out[D + j] - lmin);
          rec += (xv - o) * (xv - o) / (2 * exp(lv)) + 0.5 * (log(2 * 3.14159265358979323846) + lv);
          mean[(size_t)b * D + j] = o;
          break;
        }
      }
    }
    recon[b] = rec;
    kl[b] = klb;
    total += rec + kw * klb;
  }
  return scale * total;
}

/* Number of entries of g that disagree with fd beyond float tolerance. */
static int count_mismatch(const float *g, const double *fd, size_t n, size_t *first) {
  int bad = 0;
  for (size_t i = 0; i < n; i++)
    if (!(fabs(g[i] - fd[i]) <= 1e-3 * fabs(fd[i]) + 1e-4)) {
      if (!bad) *first = i;
      bad++;
    }
  return bad;
}

static void check_decoder(int nh, vae_decoder dec, float logvar_min, float kw, float scale, uint64_t seed) {
  vae_config c = {.in_h = 2,
                  .in_w = 3,
                  .in_c = 2,
                  .n_hidden = nh,
                  .hidden = {7, 5},
                  .latent = 3,
                  .decoder = dec,
                  .sigma = 0.7f,
                  .logvar_min = logvar_min};
  char err[VAE_ERR_LEN];
  CHECK(vae_config_validate(&c, err) == 0, "config: %s", err);
  size_t P = vae_num_params(&c), D = vae_input_dim(&c);
  int L = c.latent;
  float *params = malloc(P * sizeof *params), *grads = calloc(P, sizeof *grads);
  vae_init_params(&c, params, seed);
  /* larger-than-init weights so activations, logvars and the floor are exercised */
  for (size_t i = 0; i < P; i++) params[i] *= 2.0f;
  vae_views pv, gv;
  vae_views_init(&c, params, &pv);
  vae_views_init(&c, grads, &gv);
  ref_model m = {.nh = c.n_hidden};
  /* the layer list: encoder hidden layers, the mu|logvar head, decoder hidden layers, the output head */
  for (int i = 0; i < c.n_hidden; i++)
    m.enc[i] = ref_of(&pv.net.layer[i]), m.dec[i] = ref_of(&pv.net.layer[c.n_hidden + 1 + i]);
  m.enc_head = ref_of(&pv.net.layer[c.n_hidden]);
  m.dec_head = ref_of(&pv.net.layer[2 * c.n_hidden + 1]);

  float x[NB * 12], eps[NB * 3];
  vae_rng_uniform(x, NB * D, seed, VAE_RNG_EVAL, 0, 1, 0);
  vae_rng_normal(eps, NB * (size_t)L, seed, VAE_RNG_EPS, 0, 1, 0);

  vae_workspace *ws = vae_workspace_create(&c, NB + 2);
  vae_forward(&c, &pv, ws, x, eps, NB);
  vae_backward(&c, &pv, &gv, ws, x, eps, NB, kw, scale);

  /* forward values against the reference */
  double *Pd = malloc(P * sizeof *Pd), recon[NB], kl[NB], mean_ref[NB * 12];
  for (size_t i = 0; i < P; i++) Pd[i] = params[i];
  ref_loss(&c, &m, Pd, x, eps, NB, kw, scale, recon, kl, mean_ref);
  float mean[NB * 12];
  vae_output_mean(&c, ws, NB, mean);
  for (int b = 0; b < NB; b++) {
    CHECK_CLOSE(ws->recon[b], recon[b], 1e-5, 1e-5);
    CHECK_CLOSE(ws->kl[b], kl[b], 1e-5, 1e-6);
  }
  for (size_t j = 0; j < NB * D; j++) CHECK_CLOSE(mean[j], mean_ref[j], 1e-5, 1e-6);
  if (dec == VAE_DEC_GAUSSIAN_LEARNED) {
    /* the test must straddle the floor: some raw log-variances below it, some above */
    int below = 0, above = 0;
    for (int b = 0; b < NB; b++)
      for (size_t j = 0; j < D; j++) {
        float r = ws->out[(size_t)b * 2 * D + D + j];
        below += r<logvar_min, above += r> logvar_min;
      }
    CHECK(below > 2 && above > 2, "raw logvars: %d below, %d above the floor", below, above);
  }

  /* central differences in double */
  double *fd = malloc(P * sizeof *fd);
  for (size_t i = 0; i < P; i++) {
    double p0 = Pd[i], h = 1e-6 * fmax(1.0, fabs(p0));
    Pd[i] = p0 + h;
    double lp = ref_loss(&c, &m, Pd, x, eps, NB, kw, scale, recon, kl, mean_ref);
    Pd[i] = p0 - h;
    double lm = ref_loss(&c, &m, Pd, x, eps, NB, kw, scale, recon, kl, mean_ref);
    Pd[i] = p0;
    fd[i] = (lp - lm) / (2 * h);
  }
  size_t first = 0;
  int bad = count_mismatch(grads, fd, P, &first);
  CHECK(bad == 0, "%s kw %g scale %g: %d of %zu gradients off, first [%zu] %.8g vs fd %.8g",
        vae_decoder_name(dec), kw, scale, bad, P, first, grads[first], fd[first]);
  /* every tensor's gradient is non-trivial (a test where some gradient is all zero proves little) */
  vae_tensor t[VAE_MAX_TENSORS];
  int nt = vae_tensors(&c, t);
  for (int k = 0; k < nt; k++) {
    size_t len = vae_tensor_len(&t[k]);
    double norm = 0;
    for (size_t i = 0; i < len; i++) norm += fd[t[k].offset + i] * fd[t[k].offset + i];
    CHECK(sqrt(norm) > 1e-3, "%s: %s gradient norm %g", vae_decoder_name(dec), t[k].name, sqrt(norm));
  }
  /* the comparison catches a wrong gradient: perturb one entry per tensor by 1% */
  float *wrong = malloc(P * sizeof *wrong);
  memcpy(wrong, grads, P * sizeof *wrong);
  for (int k = 0; k < nt; k++) {
    size_t len = vae_tensor_len(&t[k]), best = t[k].offset;
    for (size_t i = 0; i < len; i++)
      if (fabs(fd[t[k].offset + i]) > fabs(fd[best])) best = t[k].offset + i;
    wrong[best] *= 1.01f;
  }
  CHECK(count_mismatch(wrong, fd, P, &first) == nt, "perturbed gradients: %d caught of %d",
        count_mismatch(wrong, fd, P, &first), nt);
  /* backward accumulates: a second call doubles the gradient */
  memcpy(wrong, grads, P * sizeof *wrong);
  vae_backward(&c, &pv, &gv, ws, x, eps, NB, kw, scale);
  double worst = 0;
  for (size_t i = 0; i < P; i++)
    worst = fmax(worst, fabs(grads[i] - 2.0 * wrong[i]) / (fabs(wrong[i]) + 1e-6));
  CHECK(worst < 1e-5, "two backward calls vs twice the gradient: relative %g", worst);

  vae_workspace_free(ws);
  free(params), free(grads), free(Pd), free(fd), free(wrong);
}

int main(void) {
  check_decoder(2, VAE_DEC_BERNOULLI, VAE_DEFAULT_LOGVAR_MIN, 1.0f, 1.0f, 11);
  check_decoder(2, VAE_DEC_GAUSSIAN, VAE_DEFAULT_LOGVAR_MIN, 1.0f, 1.0f, 12);
  check_decoder(2, VAE_DEC_GAUSSIAN_LEARNED, -0.3f, 1.0f, 1.0f, 13);
  /* kl_weight and scale enter (each run is compared with a reference using the same values) */
  check_decoder(2, VAE_DEC_BERNOULLI, VAE_DEFAULT_LOGVAR_MIN, 0.3f, 0.25f, 14);
  check_decoder(2, VAE_DEC_GAUSSIAN_LEARNED, -0.3f, 2.5f, 1.0f / 3.0f, 15);
  check_decoder(2, VAE_DEC_GAUSSIAN, VAE_DEFAULT_LOGVAR_MIN, 0.0f, 2.0f, 16);
  /* no hidden layer, and one (the default model's shape) */
  check_decoder(0, VAE_DEC_BERNOULLI, VAE_DEFAULT_LOGVAR_MIN, 1.0f, 1.0f, 17);
  check_decoder(1, VAE_DEC_GAUSSIAN_LEARNED, -0.3f, 1.0f, 1.0f, 18);
  /* the floor range the learned-variance loss relies on */
  vae_config c = {.in_h = 2,
                  .in_w = 3,
                  .in_c = 2,
                  .n_hidden = 0,
                  .latent = 3,
                  .decoder = VAE_DEC_GAUSSIAN_LEARNED,
                  .sigma = 1,
                  .logvar_min = -81};
  char err[VAE_ERR_LEN];
  CHECK(vae_config_validate(&c, err) < 0 && strstr(err, "--logvar-min"), "logvar_min -81 accepted");
  c.logvar_min = -80;
  CHECK(vae_config_validate(&c, err) == 0, "logvar_min -80 refused: %s", err);
  return check_done("test_grad");
}
