/* cli.c: parse and validate command-line flags (strtol/strtod with end checks), print usage with the
 * defaults. Never opens files or touches MPI: validation of data and checkpoints lives elsewhere. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "watchdog.h"

static int quiet = 0;

void vae_cli_quiet(int q) { quiet = q; }

static int parse_long(const char *flag, const char *s, long *out, char *err) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE)
    return vae_err(err, "%s expects a whole number, got '%s'", flag, s);
  *out = v;
  return 0;
}

static int parse_double(const char *flag, const char *s, double *out, char *err) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
    return vae_err(err, "%s expects a finite number, got '%s'", flag, s);
  *out = v;
  return 0;
}

/* A comma-separated list of whole numbers (at most max; "" is the empty list) into out[0..*n). Only
 * the syntax is checked here; the values' ranges are the model's (vae_config_validate_flags). */
static int parse_int_list(const char *flag, const char *s, int *out, int max, int *n, char *err) {
  int k = 0;
  const char *p = s;
  while (*s) { /* ends at the last number's end (or returns an error) */
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || (*end != ',' && *end != '\0') || errno == ERANGE || v < INT_MIN || v > INT_MAX)
      return vae_err(err, "%s expects comma-separated whole numbers (e.g. 400 or 512,256), got '%s'", flag,
                     s);
    if (k == max) return vae_err(err, "%s takes at most %d values, got '%s'", flag, max, s);
    out[k++] = (int)v;
    if (*end == '\0') break;
    p = end + 1;
  }
  *n = k;
  return 0;
}

int vae_cli_parse_hidden(const char *s, vae_config *c, char *err) {
  /* "" = no hidden layer: a linear encoder and decoder */
  return parse_int_list("--hidden", s, c->hidden, VAE_MAX_HIDDEN, &c->n_hidden, err);
}

int vae_cli_parse_conv(const char *s, vae_config *c, char *err) {
  /* "" = no conv layer: the MLP */
  return parse_int_list("--conv", s, c->conv, VAE_MAX_CONV, &c->n_conv, err);
}

/* "400,200" from n values */
static void format_int_list(char *buf, size_t n, const int *v, int count) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < count && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, i ? ",%d" : "%d", v[i]);
}

static int set_flag(const vae_flag *f, const char *val, char *err) {
  char names[256];
  long l = 0;
  double d = 0;
  switch (f->type) {
    case VAE_FLAG_STRING:
      if (strlen(val) >= VAE_PATH_LEN)
        return vae_err(err, "%s value is longer than %d bytes", f->name, VAE_PATH_LEN - 1);
      snprintf((char *)f->ptr, VAE_PATH_LEN, "%s", val);
      return 0;
    case VAE_FLAG_INT:
      if (parse_long(f->name, val, &l, err)) return -1;
      if (l < INT_MIN || l > INT_MAX) return vae_err(err, "%s value %s is out of range", f->name, val);
      *(int *)f->ptr = (int)l;
      return 0;
    case VAE_FLAG_LONG:
      if (parse_long(f->name, val, &l, err)) return -1;
      *(long *)f->ptr = l;
      return 0;
    case VAE_FLAG_U64: {
      char *end = NULL;
      errno = 0;
      if (val[0] == '-')
        return vae_err(err, "%s expects a non-negative whole number, got '%s'", f->name, val);
      unsigned long long u = strtoull(val, &end, 10);
      if (end == val || *end != '\0' || errno == ERANGE)
        return vae_err(err, "%s expects a non-negative whole number, got '%s'", f->name, val);
      *(uint64_t *)f->ptr = (uint64_t)u;
      return 0;
    }
    case VAE_FLAG_DOUBLE:
      if (parse_double(f->name, val, &d, err)) return -1;
      *(double *)f->ptr = d;
      return 0;
    case VAE_FLAG_FLOAT:
      if (parse_double(f->name, val, &d, err)) return -1;
      *(float *)f->ptr = (float)d;
      return 0;
    case VAE_FLAG_HIDDEN: return vae_cli_parse_hidden(val, (vae_config *)f->ptr, err);
    case VAE_FLAG_CONV: return vae_cli_parse_conv(val, (vae_config *)f->ptr, err);
    case VAE_FLAG_DECODER:
      if (vae_decoder_parse(val, (vae_decoder *)f->ptr) < 0) {
        vae_decoder_names(names, sizeof names, ", ", " or ");
        return vae_err(err, "%s must be %s, got '%s'", f->name, names, val);
      }
      return 0;
    case VAE_FLAG_LR_SCALE:
      if (vae_lr_scale_parse(val, (vae_lr_scale *)f->ptr) < 0) {
        vae_lr_scale_names(names, sizeof names, ", ", " or ");
        return vae_err(err, "%s must be %s, got '%s'", f->name, names, val);
      }
      return 0;
    case VAE_FLAG_BOOL: *(int *)f->ptr = 1; return 0;
  }
  return vae_err(err, "internal: unknown flag type for %s", f->name);
}

static void format_default(const vae_flag *f, char *buf, size_t n) {
  switch (f->type) {
    case VAE_FLAG_STRING: snprintf(buf, n, "%s", (const char *)f->ptr); break;
    case VAE_FLAG_INT: snprintf(buf, n, "%d", *(const int *)f->ptr); break;
    case VAE_FLAG_LONG: snprintf(buf, n, "%ld", *(const long *)f->ptr); break;
    case VAE_FLAG_U64: snprintf(buf, n, "%" PRIu64, *(const uint64_t *)f->ptr); break;
    case VAE_FLAG_DOUBLE: snprintf(buf, n, "%g", *(const double *)f->ptr); break;
    case VAE_FLAG_FLOAT: snprintf(buf, n, "%g", (double)*(const float *)f->ptr); break;
    case VAE_FLAG_BOOL: buf[0] = '\0'; break;
    case VAE_FLAG_HIDDEN:
      format_int_list(buf, n, ((const vae_config *)f->ptr)->hidden, ((const vae_config *)f->ptr)->n_hidden);
      break;
    case VAE_FLAG_CONV:
      format_int_list(buf, n, ((const vae_config *)f->ptr)->conv, ((const vae_config *)f->ptr)->n_conv);
      break;
    case VAE_FLAG_DECODER: snprintf(buf, n, "%s", vae_decoder_name(*(const vae_decoder *)f->ptr)); break;
    case VAE_FLAG_LR_SCALE: snprintf(buf, n, "%s", vae_lr_scale_name(*(const vae_lr_scale *)f->ptr)); break;
  }
}

void vae_cli_usage(FILE *f, const char *usage_line, const vae_flag *flags, int n) {
  fprintf(f, "usage: %s\n\noptions:\n", usage_line);
  for (int i = 0; i < n; i++) {
    char left[96], def[256];
    snprintf(left, sizeof left, "%s%s%s", flags[i].name, flags[i].metavar ? " " : "",
             flags[i].metavar ? flags[i].metavar : "");
    format_default(&flags[i], def, sizeof def);
    if (flags[i].type == VAE_FLAG_BOOL || def[0] == '\0')
      fprintf(f, "  %-28s %s\n", left, flags[i].help);
    else
      fprintf(f, "  %-28s %s (default: %s)\n", left, flags[i].help, def);
  }
  fprintf(f, "  %-28s %s\n", "--help", "show this help and exit");
}

int vae_cli_parse(const char *usage_line, const vae_flag *flags, int n, int argc, char **argv, char *err) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      if (!quiet) vae_cli_usage(stdout, usage_line, flags, n);
      return 1;
    }
    /* --flag=value is accepted as well as --flag value. */
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const vae_flag *f = NULL;
    for (int k = 0; k < n; k++)
      if (strlen(flags[k].name) == name_len && strncmp(flags[k].name, arg, name_len) == 0) f = &flags[k];
    if (!f) {
      if (strncmp(arg, "--", 2) == 0)
        return vae_err(err, "unknown option '%.*s'; see '%s --help'", (int)name_len, arg, usage_line);
      return vae_err(err, "unexpected argument '%s'; options start with --, see --help", arg);
    }
    const char *val = NULL;
    if (f->type == VAE_FLAG_BOOL) {
      if (eq) return vae_err(err, "%s takes no value", f->name);
    } else if (eq) {
      val = eq + 1;
    } else {
      if (i + 1 >= argc) return vae_err(err, "%s needs a value (%s)", f->name, f->metavar);
      val = argv[++i];
    }
    if (set_flag(f, val, err) < 0) return -1;
    if (f->given) *f->given = 1;
  }
  return 0;
}

/* ---- vae_mpi train ---- */

void vae_train_opts_default(vae_train_opts *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->dataset, sizeof o->dataset, "train/images");
  snprintf(o->test_dataset, sizeof o->test_dataset, "test/images");
  snprintf(o->out, sizeof o->out, "runs/vae");
  o->model = vae_config_default(0, 0, 0); /* the input's shape comes from the data */
  o->epochs = 10;
  o->batch_size = 128;
  o->lr = 1e-3;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->adam_eps = 1e-8;
  o->lr_scale = VAE_LR_SCALE_NONE;
  o->beta = 1.0;
  o->seed = 1;
  o->log_every = 0;
  o->checkpoint_every = 0;
  o->keep = 0;
  o->max_skips = 10;
  o->comm_timeout = VAE_DEFAULT_COMM_TIMEOUT;
}

int vae_train_opts_parse(vae_train_opts *o, int argc, char **argv, char *err) {
  char lr_scales[128], decoders[128];
  vae_lr_scale_names(lr_scales, sizeof lr_scales, "|", "|");
  vae_decoder_names(decoders, sizeof decoders, ", ", " or ");
  const vae_flag flags[] = {
      {"--data", VAE_FLAG_STRING, o->data, "FILE.h5",
       "HDF5 training data (default: datasets/fashion-mnist.h5)", NULL},
      {"--dataset", VAE_FLAG_STRING, o->dataset, "PATH", "dataset inside --data with the training images",
       NULL},
      {"--test-dataset", VAE_FLAG_STRING, o->test_dataset, "PATH",
       "test images for the per-epoch test ELBO; '' for none (used when present)", &o->test_dataset_given},
      {"--out", VAE_FLAG_STRING, o->out, "DIR", "output folder: metrics.jsonl, checkpoints, images", NULL},
      {"--resume", VAE_FLAG_STRING, o->resume, "auto|PATH",
       "continue from the newest valid checkpoint in --out, or from PATH", NULL},
      {"--epochs", VAE_FLAG_LONG, &o->epochs, "N",
       "epochs to train in total (a resumed run counts those done)", NULL},
      {"--max-steps", VAE_FLAG_LONG, &o->max_steps, "N",
       "stop after global step N with a checkpoint (0 = run all epochs)", NULL},
      {"--batch-size", VAE_FLAG_INT, &o->batch_size, "B",
       "images per worker per step (global batch = B x ranks x --threads)", NULL},
      {"--lr", VAE_FLAG_DOUBLE, &o->lr, "RATE", "Adam learning rate (before --lr-scale)", NULL},
      {"--beta1", VAE_FLAG_DOUBLE, &o->beta1, "B1", "Adam beta1", NULL},
      {"--beta2", VAE_FLAG_DOUBLE, &o->beta2, "B2", "Adam beta2", NULL},
      {"--adam-eps", VAE_FLAG_DOUBLE, &o->adam_eps, "EPS", "Adam epsilon", NULL},
      {"--lr-warmup-steps", VAE_FLAG_LONG, &o->lr_warmup_steps, "N",
       "linear learning-rate warm-up over N steps", NULL},
      {"--lr-scale", VAE_FLAG_LR_SCALE, &o->lr_scale, lr_scales,
       "scale --lr with the number of workers, ranks x --threads (Horovod)", NULL},
      {"--kl-warmup-steps", VAE_FLAG_LONG, &o->kl_warmup_steps, "N",
       "anneal the KL weight from 0 to --beta over N steps", NULL},
      {"--beta", VAE_FLAG_DOUBLE, &o->beta, "W",
       "weight of the KL term (beta-VAE; the reported ELBO always uses 1)", NULL},
      {"--clip-grad-norm", VAE_FLAG_DOUBLE, &o->clip_grad_norm, "MAX",
       "clip the global gradient norm (0 = off)", NULL},
      {"--seed", VAE_FLAG_U64, &o->seed, "S", "seed of initialisation, shuffles and noise", NULL},
      {"--hidden", VAE_FLAG_HIDDEN, &o->model, "W[,W...]",
       "hidden layer widths of the encoder (decoder reversed; with --conv: between the conv layers and "
       "the heads); '' for none",
       NULL},
      {"--latent", VAE_FLAG_INT, &o->model.latent, "L", "latent dimensions", NULL},
      {"--conv", VAE_FLAG_CONV, &o->model, "C[,C...]",
       "a convolutional VAE: one Conv2d + ReLU per channel count (absent: the MLP)", NULL},
      {"--kernel", VAE_FLAG_INT, &o->model.kernel, "K", "kernel size of every (transposed) conv layer", NULL},
      {"--stride", VAE_FLAG_INT, &o->model.stride, "S", "stride of every (transposed) conv layer", NULL},
      {"--padding", VAE_FLAG_INT, &o->model.padding, "P", "zero padding of every (transposed) conv layer",
       NULL},
      {"--decoder", VAE_FLAG_DECODER, &o->model.decoder, "NAME", decoders, NULL},
      {"--sigma", VAE_FLAG_FLOAT, &o->model.sigma, "S", "fixed standard deviation of the gaussian decoder",
       NULL},
      {"--logvar-min", VAE_FLAG_FLOAT, &o->model.logvar_min, "LV",
       "soft floor of gaussian-learned's log-variance", NULL},
      {"--threads", VAE_FLAG_INT, &o->threads, "T",
       "worker threads per rank, each on its own --batch-size images as a rank of its own would be (0 = one worker, OpenBLAS on the rank's cores)",
       NULL},
      {"--log-every", VAE_FLAG_LONG, &o->log_every, "N",
       "write a per-step record to metrics.jsonl every N steps (0 = off)", NULL},
      {"--checkpoint-every", VAE_FLAG_LONG, &o->checkpoint_every, "N",
       "also checkpoint every N steps (0 = epoch ends only)", NULL},
      {"--keep", VAE_FLAG_INT, &o->keep, "K", "keep the last K checkpoints as checkpoint-<step>.h5", NULL},
      {"--max-skips", VAE_FLAG_INT, &o->max_skips, "K",
       "stop after K consecutive steps with non-finite loss or gradient", NULL},
      {"--comm-timeout", VAE_FLAG_DOUBLE, &o->comm_timeout, "SECONDS",
       "end the job when a step's gradient sum has not completed after SECONDS (a lost node; 0 = off)", NULL},
      {"--no-images", VAE_FLAG_BOOL, &o->no_images, NULL,
       "do not write sample and reconstruction PNGs each epoch", NULL},
  };
  return vae_cli_parse("vae_mpi train [--data FILE.h5] [--out DIR] [options]", flags,
                       (int)(sizeof flags / sizeof flags[0]), argc, argv, err);
}

int vae_train_opts_validate(const vae_train_opts *o, char *err) {
  if (o->epochs < 1) return vae_err(err, "--epochs must be at least 1, got %ld", o->epochs);
  if (o->max_steps < 0) return vae_err(err, "--max-steps must be 0 (off) or positive, got %ld", o->max_steps);
  if (o->batch_size < 1 || o->batch_size > (1 << 20))
    return vae_err(err, "--batch-size must be from 1 to 1048576, got %d", o->batch_size);
  if (!(o->lr > 0)) return vae_err(err, "--lr must be positive, got %g", o->lr);
  if (!(o->beta1 >= 0 && o->beta1 < 1)) return vae_err(err, "--beta1 must be in [0, 1), got %g", o->beta1);
  if (!(o->beta2 >= 0 && o->beta2 < 1)) return vae_err(err, "--beta2 must be in [0, 1), got %g", o->beta2);
  if (!(o->adam_eps > 0)) return vae_err(err, "--adam-eps must be positive, got %g", o->adam_eps);
  if (o->lr_warmup_steps < 0)
    return vae_err(err, "--lr-warmup-steps must be 0 or more, got %ld", o->lr_warmup_steps);
  if (o->kl_warmup_steps < 0)
    return vae_err(err, "--kl-warmup-steps must be 0 or more, got %ld", o->kl_warmup_steps);
  if (!(o->beta >= 0)) return vae_err(err, "--beta must be 0 or more, got %g", o->beta);
  if (!(o->clip_grad_norm >= 0))
    return vae_err(err, "--clip-grad-norm must be 0 (off) or positive, got %g", o->clip_grad_norm);
  if (o->threads < 0 || o->threads > 1024)
    return vae_err(err, "--threads must be from 0 (one worker, automatic BLAS threads) to 1024, got %d",
                   o->threads);
  if (o->log_every < 0) return vae_err(err, "--log-every must be 0 (off) or positive, got %ld", o->log_every);
  if (o->checkpoint_every < 0)
    return vae_err(err, "--checkpoint-every must be 0 (off) or positive, got %ld", o->checkpoint_every);
  if (o->keep < 0 || o->keep > 100000)
    return vae_err(err, "--keep must be from 0 to 100000, got %d", o->keep);
  if (!(o->comm_timeout >= 0 && o->comm_timeout <= 1e6))
    return vae_err(err, "--comm-timeout must be from 0 (off) to 1000000 seconds, got %g", o->comm_timeout);
  if (o->max_skips < 1) return vae_err(err, "--max-skips must be at least 1, got %d", o->max_skips);
  if (o->out[0] == '\0') return vae_err(err, "--out must name a folder");
  if (o->dataset[0] == '\0') return vae_err(err, "--dataset must name a dataset inside --data");
  return vae_config_validate_flags(&o->model, err); /* the model's ranges: model.c */
}
