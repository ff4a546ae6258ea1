/* test_conv.c: the Conv2d and ConvTranspose2d kernels (src/nn/conv.c: im2col/col2im + GEMM, in chunks of
 * images) and their direct references (conv_ref.c) against a double-precision PyTorch-layout
 * convolution (dconv.h): forward outputs (with and without ReLU), and every input, weight and bias
 * gradient against central differences, over odd and even, square and non-square sizes, stride 1 and
 * 2, padding 0 and 1, kernels 1, 3, 4, 5, 1 to 3 channels, batches 1 to 3, one and two fused heads, the
 * whole batch in one chunk and one image per chunk. A perturbed gradient must be caught. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dconv.h"
#include "error.h"
#include "layers.h"
#include "rng.h"

typedef struct {
  int H, W, C; /* a conv's input image; a transposed conv's output image (per head) */
  int O;       /* a conv's output channels; a transposed conv's input channels */
  int k, s, p, B;
} geom;

/* One layer under test and its variables packed as [x | PyTorch weight per head | bias per head]. */
typedef struct {
  geom g;
  int transposed, heads;
  vae_conv_shape sh;
  int gh, gw, oph, opw;
  size_t nx, nw, nb, ny; /* x, one head's weight, one head's bias, output (all heads) floats */
  double *dy;            /* (B, output) channels last: L = sum dy * out */
} layer;

static void setup(layer *l, const geom *g, int transposed, int heads) {
  memset(l, 0, sizeof *l);
  l->g = *g, l->transposed = transposed, l->heads = heads;
  l->gh = (g->H + 2 * g->p - g->k) / g->s + 1, l->gw = (g->W + 2 * g->p - g->k) / g->s + 1;
  l->oph = g->H - ((l->gh - 1) * g->s - 2 * g->p + g->k),
  l->opw = g->W - ((l->gw - 1) * g->s - 2 * g->p + g->k);
  vae_conv_shape sh = {g->H, g->W, g->C, l->gh, l->gw, g->k, g->s, g->p, g->O, heads};
  l->sh = sh;
  size_t img = (size_t)g->H * g->W * g->C, grid = (size_t)l->gh * l->gw * g->O;
  l->nx = (size_t)g->B * (transposed ? grid : img);
  l->ny = (size_t)g->B * (transposed ? (size_t)heads * img : grid);
  l->nw = (size_t)g->O * g->C * g->k * g->k;
  l->nb = transposed ? (size_t)g->C : (size_t)g->O;
}

/* y (B, output rows, channels last) = the layer applied to v, in double from dconv.h. */
static void forward_double(const layer *l, const double *v, double *y) {
  const geom *g = &l->g;
  const double *x = v, *w = v + l->nx, *b = w + (size_t)l->heads * l->nw;
  double *xn = malloc(l->nx * sizeof *xn), *yn = malloc(l->ny * sizeof *yn), *yh = malloc(l->ny * sizeof *yh);
  const int ih = l->transposed ? l->gh : g->H, iw = l->transposed ? l->gw : g->W,
            ic = l->transposed ? g->O : g->C;
  nhwc_to_nchw(xn, x, g->B, ih, iw, ic);
  if (!l->transposed) {
    dconv2d(yn, xn, w, b, g->B, g->C, g->H, g->W, g->O, g->k, g->s, g->p);
    nchw_to_nhwc(y, yn, g->B, l->gh, l->gw, g->O);
  } else {
    size_t img = (size_t)g->H * g->W * g->C;
    for (int h = 0; h < l->heads; h++) {
      dconvt2d(yn, xn, w + h * l->nw, b + h * l->nb, g->B, g->O, l->gh, l->gw, g->C, g->k, g->s, g->p, l->oph,
               l->opw);
      nchw_to_nhwc(yh, yn, g->B, g->H, g->W, g->C);
      for (int n = 0; n < g->B; n++)
        memcpy(y + ((size_t)n * l->heads + h) * img, yh + n * img, img * sizeof *y);
    }
  }
  free(xn), free(yn), free(yh);
}

/* L = sum dy * layer(v): its gradient is the layer's backward of dy. */
static double loss(const layer *l, const double *v, double *y) {
  forward_double(l, v, y);
  double total = 0;
  for (size_t i = 0; i < l->ny; i++) total += l->dy[i] * y[i];
  return total;
}

/* Index of PyTorch weight element (a, bb, kh, kw) in our channels-last layout (layers.h): conv
 * (O, C, k, k) -> (O, k, k, C); transposed (O_in, C_out, k, k) -> (k, k, C_out, O_in). */
static size_t inside_index(const layer *l, size_t torch_i) {
  const geom *g = &l->g;
  /* both PyTorch layouts are (O, C, k, k): O the grid side's channels, C the image side's */
  size_t kw = torch_i % g->k, kh = torch_i / g->k % g->k, bb = torch_i / g->k / g->k % g->C,
         a = torch_i / g->k / g->k / g->C;
  if (!l->transposed) return ((a * g->k + kh) * g->k + kw) * g->C + bb;
  return ((kh * g->k + kw) * g->C + bb) * g->O + a;
}

static double rel_err(const double *a, const double *b, size_t n) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; i++) d += (a[i] - b[i]) * (a[i] - b[i]), r += b[i] * b[i];
  return sqrt(d) / (sqrt(r) + 1e-300);
}

static void run(const geom *g, int transposed, int heads, uint64_t seed) {
  layer l;
  setup(&l, g, transposed, heads);
  char what[160];
  snprintf(what, sizeof what, "%s%s %dx%dx%d O%d k%d s%d p%d B%d", transposed ? "convt" : "conv",
           heads == 2 ? " 2 heads" : "", g->H, g->W, g->C, g->O, g->k, g->s, g->p, g->B);
  const size_t nv = l.nx + (size_t)heads * (l.nw + l.nb);
  float *v = malloc(nv * sizeof *v), *dyf = malloc(l.ny * sizeof *dyf);
  vae_rng_uniform(v, nv, seed, VAE_RNG_EVAL, 0, 1, 0);
  vae_rng_uniform(dyf, l.ny, seed, VAE_RNG_EVAL, 0, 2, 0);
  for (size_t i = 0; i < nv; i++) v[i] = 2 * v[i] - 1;
  l.dy = malloc(l.ny * sizeof *l.dy);
  for (size_t i = 0; i < l.ny; i++) l.dy[i] = dyf[i] = 2 * dyf[i] - 1;
  /* our layouts: x as is, the weights permuted, the biases as is */
  const float *x = v, *wt = v + l.nx, *b = wt + (size_t)heads * l.nw;
  float *w = malloc((size_t)heads * l.nw * sizeof *w);
  for (int h = 0; h < heads; h++)
    for (size_t i = 0; i < l.nw; i++) w[h * l.nw + inside_index(&l, i)] = wt[h * l.nw + i];

  /* forward: GEMM kernel in one chunk and in one-image chunks, the direct reference, all vs double */
  double *vd = malloc(nv * sizeof *vd), *yd = malloc(l.ny * sizeof *yd), *tmp = malloc(l.ny * sizeof *tmp);
  for (size_t i = 0; i < nv; i++) vd[i] = v[i];
  forward_double(&l, vd, yd);
  size_t per = vae_conv_cols_per_image(&l.sh), lens[2] = {per, per * (size_t)g->B};
  float *cols = malloc(lens[1] * sizeof *cols), *y = malloc(l.ny * sizeof *y);
  for (int relu = 0; relu <= 1; relu++)
    for (int pass = 0; pass < 3; pass++) {
      if (pass == 2)
        (transposed ? vae_convt2d_forward_ref : vae_conv2d_forward_ref)(y, x, w, b, relu, &l.sh, g->B);
      else
        (transposed ? vae_convt2d_forward : vae_conv2d_forward)(y, x, w, b, relu, &l.sh, g->B, cols,
                                                                lens[pass]);
      for (size_t i = 0; i < l.ny; i++) tmp[i] = relu && yd[i] < 0 ? 0 : yd[i];
      double *yy = malloc(l.ny * sizeof *yy);
      for (size_t i = 0; i < l.ny; i++) yy[i] = y[i];
      double e = rel_err(yy, tmp, l.ny);
      CHECK(e < 1e-6, "%s forward (relu %d, %s): relative error %g", what, relu,
            pass == 2 ? "direct"
            : pass    ? "one chunk"
                      : "chunks of 1",
            e);
      free(yy);
    }

  /* backward: central differences of L (linear in each variable, so h = 1e-3 is exact up to rounding) */
  double *fd = malloc(nv * sizeof *fd);
  for (size_t i = 0; i < nv; i++) {
    double v0 = vd[i], h = 1e-3;
    vd[i] = v0 + h;
    double lp = loss(&l, vd, tmp);
    vd[i] = v0 - h;
    double lm = loss(&l, vd, tmp);
    vd[i] = v0;
    fd[i] = (lp - lm) / (2 * h);
  }
  const float alpha = 0.75f, w0 = 0.5f, b0 = -0.25f; /* dw, db accumulate onto w0, b0 */
  float *dx = malloc(l.nx * sizeof *dx), *tmp_dx = malloc(l.nx * sizeof *tmp_dx);
  float *dw = malloc((size_t)heads * l.nw * sizeof *dw);
  float *db = malloc((size_t)heads * l.nb * sizeof *db);
  double *got = malloc(nv * sizeof *got);
  for (int pass = 0; pass < 3; pass++) {
    for (size_t i = 0; i < (size_t)heads * l.nw; i++) dw[i] = w0;
    for (size_t i = 0; i < (size_t)heads * l.nb; i++) db[i] = b0;
    if (pass == 2)
      (transposed ? vae_convt2d_backward_ref : vae_conv2d_backward_ref)(dx, dw, db, dyf, x, w, alpha, &l.sh,
                                                                        g->B);
    else
      (transposed ? vae_convt2d_backward : vae_conv2d_backward)(dx, dw, db, dyf, x, w, alpha, NULL, &l.sh,
                                                                g->B, cols, lens[pass]);
    for (size_t i = 0; i < l.nx; i++) got[i] = dx[i] / alpha;
    for (int h = 0; h < heads; h++)
      for (size_t i = 0; i < l.nw; i++)
        got[l.nx + h * l.nw + i] = (dw[h * l.nw + inside_index(&l, i)] - w0) / alpha;
    for (size_t i = 0; i < (size_t)heads * l.nb; i++) got[l.nx + heads * l.nw + i] = (db[i] - b0) / alpha;
    const char *names[3] = {"input", "weight", "bias"};
    const size_t lo[3] = {0, l.nx, l.nx + heads * l.nw}, n[3] = {l.nx, heads * l.nw, heads * l.nb};
    for (int t = 0; t < 3; t++) {
      double e = rel_err(got + lo[t], fd + lo[t], n[t]);
      CHECK(e < 1e-5, "%s %s gradient (%s): relative error %g", what, names[t],
            pass == 2 ? "direct"
            : pass    ? "one chunk"
                      : "chunks of 1",
            e);
    }
    /* the comparison catches one wrong weight gradient entry */
    if (pass == 0) {
      got[l.nx + 1] += 1e-3 * (fabs(fd[l.nx + 1]) + 1);
      CHECK(rel_err(got + l.nx, fd + l.nx, heads * l.nw) > 1e-5 || heads * l.nw > 1000000,
            "%s: perturbed dw passed", what);
    }
  }
  /* the ReLU below fused (relu_mask; here x, about half of it <= 0): the same dx as without it (chunks
   * of 1 image), zeroed exactly where the mask is <= 0 */
  (transposed ? vae_convt2d_backward : vae_conv2d_backward)(dx, dw, db, dyf, x, w, alpha, x, &l.sh, g->B,
                                                            cols, lens[0]);
  size_t masked = 0, off = 0;
  (transposed ? vae_convt2d_backward : vae_conv2d_backward)(tmp_dx, dw, db, dyf, x, w, alpha, NULL, &l.sh,
                                                            g->B, cols, lens[0]);
  for (size_t i = 0; i < l.nx; i++) {
    masked += x[i] <= 0;
    off += dx[i] != (x[i] <= 0 ? 0.0f : tmp_dx[i]);
  }
  CHECK(off == 0 && masked > 0 && masked < l.nx,
        "%s: relu_mask: %zu of %zu input gradients wrong (%zu masked)", what, off, l.nx, masked);
  /* NULL dinp: only the weights (the first layer of the encoder) */
  for (size_t i = 0; i < (size_t)heads * l.nw; i++) dw[i] = 0;
  for (size_t i = 0; i < (size_t)heads * l.nb; i++) db[i] = 0;
  (transposed ? vae_convt2d_backward : vae_conv2d_backward)(NULL, dw, db, dyf, x, w, 1.0f, NULL, &l.sh, g->B,
                                                            cols, lens[0]);
  double worst = 0;
  for (int h = 0; h < heads; h++)
    for (size_t i = 0; i < l.nw; i++)
      worst = fmax(worst, fabs(dw[h * l.nw + inside_index(&l, i)] - fd[l.nx + h * l.nw + i]) /
                              (fabs(fd[l.nx + h * l.nw + i]) + 1e-3));
  CHECK(worst < 1e-4, "%s: weight gradient without dinp off by %g", what, worst);
  free(v), free(dyf), free(l.dy), free(w), free(vd), free(yd), free(tmp), free(cols), free(y), free(fd);
  free(dx), free(tmp_dx), free(dw), free(db), free(got);
}

/* im2col and col2im are adjoint: <im2col(x), c> = <x, col2im(c)> for every x, c. */
static void test_adjoint(void) {
  vae_conv_shape s = {7, 6, 3, 3, 3, 4, 2, 1, 1, 1};
  size_t ni = 7 * 6 * 3, nc = vae_conv_cols_per_image(&s);
  float *x = malloc(ni * sizeof *x), *c = malloc(nc * sizeof *c), *cx = malloc(nc * sizeof *cx);
  float *xc = calloc(ni, sizeof *xc);
  vae_rng_uniform(x, ni, 5, VAE_RNG_EVAL, 0, 7, 0);
  vae_rng_uniform(c, nc, 5, VAE_RNG_EVAL, 0, 8, 0);
  vae_im2col(cx, 4 * 4 * 3, x, ni, 1, &s);
  vae_col2im(xc, ni, c, 4 * 4 * 3, 1, &s);
  double a = 0, b = 0;
  for (size_t i = 0; i < nc; i++) a += (double)cx[i] * c[i];
  for (size_t i = 0; i < ni; i++) b += (double)x[i] * xc[i];
  CHECK_CLOSE(a, b, 1e-6, 1e-6);
  free(x), free(c), free(cx), free(xc);
}

int main(void) {
  const geom g[] = {
      {7, 5, 1, 2, 3, 1, 0, 1}, /* odd, non-square, stride 1, no padding, batch 1 */
      {7, 5, 3, 2, 3, 2, 1, 3}, /* colour, stride 2, padding 1 */
      {8, 6, 1, 3, 4, 2, 1, 2}, /* even: the k4 s2 p1 of the Fashion-MNIST model */
      {8, 6, 3, 2, 4, 1, 0, 1}, {9, 7, 3, 2, 5, 2, 1, 2}, {6, 6, 1, 2, 5, 1, 1, 3}, {8, 8, 2, 3, 4, 2, 0, 2},
      {5, 7, 3, 1, 3, 2, 0, 1}, {5, 4, 3, 4, 1, 1, 0, 2}, /* 1x1 pointwise: no im2col */
      {9, 9, 2, 2, 3, 2, 1, 2}, /* odd with stride 2: output_padding 0 where even sizes need 1 */
  };
  for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
    run(&g[i], 0, 1, 100 + i);
    run(&g[i], 1, 1 + (int)(i % 2), 200 + i);
  }
  test_adjoint();
  return check_done("test_conv");
}
