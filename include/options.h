/* options.h: the training configuration `vae_mpi train` runs with (parsed and validated by cli.c,
 * stored in and restored from checkpoints by the checkpoint module), and the names of its enum
 * values (core/options.c), spelled once for both. */
#ifndef VAE_OPTIONS_H
#define VAE_OPTIONS_H

#include <stdint.h>

#include "vae.h"

#define VAE_PATH_LEN 4096

typedef enum { VAE_LR_SCALE_NONE = 0, VAE_LR_SCALE_LINEAR = 1, VAE_LR_SCALE_SQRT = 2 } vae_lr_scale;

/* "none", "linear", "sqrt": what --lr-scale takes and /config/lr_scale stores; NULL out of range. */
const char *vae_lr_scale_name(vae_lr_scale s);
int vae_lr_scale_parse(const char *s, vae_lr_scale *out); /* 0, or -1 for an unknown name */
/* Every name, for messages and help: sep between them, last before the last one, e.g.
 * (", ", " or ") gives "none, linear or sqrt" and ("|", "|") gives "none|linear|sqrt". */
void vae_lr_scale_names(char *buf, size_t n, const char *sep, const char *last);
/* The same for the decoders, as vae_decoder_name spells them. */
void vae_decoder_names(char *buf, size_t n, const char *sep, const char *last);

typedef struct {
  /* data and output */
  char data[VAE_PATH_LEN];         /* --data FILE.h5 */
  char dataset[VAE_PATH_LEN];      /* --dataset PATH (default train/images) */
  char test_dataset[VAE_PATH_LEN]; /* --test-dataset PATH ("" = none; default test/images if present) */
  int test_dataset_given;          /* 1 when the user named --test-dataset */
  char out[VAE_PATH_LEN];          /* --out DIR */
  char resume[VAE_PATH_LEN];       /* --resume auto|PATH ("" = fresh start) */
  /* model */
  vae_config model; /* in_h/in_w/in_c are filled from the data */
  /* optimisation */
  long epochs;
  long max_steps; /* stop (with a checkpoint) after this global step; 0 = off */
  int batch_size; /* per rank */
  double lr, beta1, beta2, adam_eps;
  long lr_warmup_steps;
  vae_lr_scale lr_scale;
  long kl_warmup_steps;
  double beta;           /* KL weight after warm-up */
  double clip_grad_norm; /* 0 = off */
  uint64_t seed;
  /* running */
  int threads;           /* BLAS threads per rank; 0 = automatic */
  long log_every;        /* per-step metrics every N steps; 0 = off */
  long checkpoint_every; /* steps; 0 = only at epoch ends and the end */
  int keep;              /* keep the last K checkpoint-<step>.h5; 0 = only checkpoint.h5 */
  int no_images;         /* --no-images */
  int max_skips;         /* stop after this many consecutive non-finite steps */
  double comm_timeout;   /* seconds a gradient sum may take before the rank gives up; 0 = off */
} vae_train_opts;

#endif
