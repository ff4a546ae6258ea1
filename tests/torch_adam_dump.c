/* torch_adam_dump.c (under mpirun): drives the trainer's own step (vae_train_step, train/step.c) through
 * N steps of a few configurations and writes, on rank 0, everything torch.optim.Adam needs to take the
 * same steps and what ours did: tests/test_torch_adam.py replays it in PyTorch (Adam, LambdaLR's
 * warm-up, clip_grad_norm_, GradScaler's skip) and compares tensor by tensor.
 *
 * The gradients are the trainer's: after each step t.grads holds the sum over every rank's images of
 * the per-image gradient (the allreduce's result, before the 1 / images and the clip). Non-finite steps
 * come from the trainer's own fault injection (t.fault, as VAE_FAULT_NONFINITE).
 *
 * Usage: mpirun -np P torch_adam_dump OUT.bin. File (little-endian), after magic b"VAEADAM2" and int32
 * ncases, per case:
 *   int32[8]   nsteps, ntensors, lr_warmup_steps, lr_scale (0 none, 1 linear, 2 sqrt), ranks, 0, 0, 0
 *   float64[6] lr, beta1, beta2, eps, clip_grad_norm (0 = off), 0
 *   int64[ntensors] tensor lengths, in layout order;  float32[P] params before the first step
 *   per step: float64[4] images, grad_norm, lr (as used), 0;  int32[2] skipped, adam_step after it
 *             float32[P] gradient sum, params after, m after, v after */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "error.h"
#include "trainer.h"

typedef struct {
  int steps, decoder, warmup, lr_scale, fault_step, fault_count;
  double lr, beta1, beta2, eps, clip;
} dump_case;

/* Data, one case an entry (its designated initializers share their shape: `duplicates` lists them). */
static const dump_case CASES[] = {
    /* torch's defaults */
    {.steps = 30, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .fault_step = -1},
    /* warm-up over 10 steps; a clip active on some steps only; two skipped steps in a row */
    {.steps = 40,
     .lr = 3e-3,
     .beta1 = 0.9,
     .beta2 = 0.999,
     .eps = 1e-8,
     .warmup = 10,
     .clip = 6.0,
     .fault_step = 4,
     .fault_count = 2},
    /* other betas, an eps of the order of sqrt(v_hat), --lr-scale sqrt, a clip active on every step,
     * the very first step skipped (Adam's t must stay 0), the gaussian decoder */
    {.steps = 25,
     .lr = 1e-2,
     .beta1 = 0.8,
     .beta2 = 0.99,
     .eps = 1e-3,
     .clip = 0.5,
     .lr_scale = 2,
     .fault_step = 0,
     .fault_count = 1,
     .decoder = VAE_DEC_GAUSSIAN},
    /* --lr-scale linear with a warm-up longer than the run; learned variance */
    {.steps = 12,
     .lr = 5e-4,
     .beta1 = 0.9,
     .beta2 = 0.999,
     .eps = 1e-8,
     .warmup = 50,
     .lr_scale = 1,
     .fault_step = -1,
     .decoder = VAE_DEC_GAUSSIAN_LEARNED},
};
enum { ROWS = 24, B = 6 }; /* per rank: 4 steps an epoch */

static void put(FILE *f, const void *p, size_t size, size_t n) {
  if (fwrite(p, size, n, f) != n) VAE_FAIL("writing the dump failed");
}

/* This rank's shard: ROWS images of 4x5, values in [0, 1] that depend on the global row. */
static void make_shard(vae_trainer *t) {
  vae_shard *s = &t->train;
  const size_t D = 20;
  s->offset = (size_t)t->d.rank * ROWS;
  s->count = ROWS;
  s->d = D;
  s->f32 = mallocCheck(ROWS * D * sizeof(float));
  for (size_t r = 0; r < ROWS; r++)
    for (size_t j = 0; j < D; j++) {
      size_t g = s->offset + r;
      s->f32[r * D + j] =
          (float)(0.5 + 0.45 * sin(0.7 * (double)g + 1.3 * (double)j + 0.1 * (double)(g * j % 7)));
    }
}

static void run_case(const dump_case *k, const vae_dist *d, FILE *f) {
  vae_trainer *t = callocCheck(1, sizeof *t);
  t->d = *d;
  vae_train_opts_default(&t->o);
  vae_config *c = &t->o.model;
  *c = (vae_config){.in_h = 4,
                    .in_w = 5,
                    .in_c = 1,
                    .n_hidden = 1,
                    .hidden = {16},
                    .latent = 3,
                    .decoder = (vae_decoder)k->decoder,
                    .sigma = 0.5f,
                    .logvar_min = -3.0f};
  char err[VAE_ERR_LEN];
  if (vae_config_validate(c, err) < 0) VAE_FAIL("%s", err);
  t->o.batch_size = B;
  t->o.lr = k->lr, t->o.beta1 = k->beta1, t->o.beta2 = k->beta2, t->o.adam_eps = k->eps;
  t->o.clip_grad_norm = k->clip, t->o.lr_warmup_steps = k->warmup;
  t->o.lr_scale = (vae_lr_scale)k->lr_scale;
  t->o.seed = 11;
  if (k->fault_step >= 0)
    t->fault = (vae_nonfinite_fault){.rank = t->d.size - 1, .step = k->fault_step, .count = k->fault_count};
  vae_trainer_alloc(t);
  make_shard(t);
  vae_init_params(c, t->params, 3);
  const size_t P = t->n_params;
  vae_tensor tens[VAE_MAX_TENSORS];
  int nt = vae_tensors(c, tens);
  if (t->d.rank == 0) {
    int32_t ints[8] = {k->steps, nt, k->warmup, k->lr_scale, t->d.size, 0, 0, 0};
    double dbl[6] = {k->lr, k->beta1, k->beta2, k->eps, k->clip, 0};
    put(f, ints, sizeof ints[0], 8);
    put(f, dbl, sizeof dbl[0], 6);
    for (int i = 0; i < nt; i++) {
      int64_t len = (int64_t)vae_tensor_len(&tens[i]);
      put(f, &len, sizeof len, 1);
    }
    put(f, t->params, sizeof(float), P);
  }
  uint32_t rows[B];
  int skips = 0;
  for (int s = 0; s < k->steps; s++) {
    for (int b = 0; b < B; b++) rows[b] = (uint32_t)((s * B + b * 5) % ROWS);
    vae_step_result r = vae_train_step(t, &t->train, (const uint32_t *const[]){rows}, (int[]){B});
    skips += r.skipped;
    if (t->d.rank != 0) continue;
    double dbl[4] = {r.count, r.grad_norm, r.lr, 0};
    int32_t ints[2] = {r.skipped, (int32_t)t->st.adam_step};
    put(f, dbl, sizeof dbl[0], 4);
    put(f, ints, sizeof ints[0], 2);
    put(f, t->grads, sizeof(float), P);
    put(f, t->params, sizeof(float), P);
    put(f, t->m, sizeof(float), P);
    put(f, t->v, sizeof(float), P);
  }
  CHECK(skips == (k->fault_step >= 0 ? k->fault_count : 0), "%d skipped steps", skips);
  CHECK(t->st.step == k->steps && t->st.adam_step == k->steps - skips, "step %ld, adam_step %ld", t->st.step,
        t->st.adam_step);
  vae_trainer_free(t);
  free(t);
}

int main(int argc, char **argv) {
  vae_dist d;
  vae_dist_init(&argc, &argv, &d);
  if (argc != 2) VAE_FAIL("usage: torch_adam_dump OUT.bin");
  FILE *f = NULL;
  const int32_t ncases = (int32_t)(sizeof CASES / sizeof CASES[0]);
  if (d.rank == 0) {
    f = fopenCheck(argv[1], "wb");
    put(f, "VAEADAM2", 1, 8);
    put(f, &ncases, sizeof ncases, 1);
  }
  for (int i = 0; i < ncases; i++) run_case(&CASES[i], &d, f);
  if (f && fclose(f) != 0) VAE_FAIL("closing %s failed", argv[1]);
  int rc = check_done("torch_adam_dump"), all = 0;
  MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  vae_dist_finalize();
  return all;
}
