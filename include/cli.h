/* cli.h: table-driven command-line parsing shared by every subcommand, and the `train` options.
 * Numbers are parsed with strtol/strtod and end-pointer checks; every failure is a user error. */
#ifndef VAE_CLI_H
#define VAE_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "options.h"

typedef enum {
  VAE_FLAG_STRING,  /* char[VAE_PATH_LEN] */
  VAE_FLAG_INT,     /* int */
  VAE_FLAG_LONG,    /* long */
  VAE_FLAG_U64,     /* uint64_t */
  VAE_FLAG_DOUBLE,  /* double */
  VAE_FLAG_FLOAT,   /* float */
  VAE_FLAG_BOOL,    /* int set to 1, takes no value */
  VAE_FLAG_HIDDEN,  /* vae_config: comma list of widths into n_hidden/hidden */
  VAE_FLAG_CONV,    /* vae_config: comma list of channel counts into n_conv/conv */
  VAE_FLAG_DECODER, /* vae_decoder */
  VAE_FLAG_LR_SCALE /* vae_lr_scale */
} vae_flag_type;

typedef struct {
  const char *name; /* "--lr" */
  vae_flag_type type;
  void *ptr;
  const char *metavar; /* "RATE"; NULL for bool */
  const char *help;    /* one line; the default is printed from the value before parsing */
  int *given;          /* optional: set to 1 when the flag appears */
} vae_flag;

/* Parses argv[1..argc) against flags[0..n). Returns 0 on success, 1 when --help was asked (usage
 * already printed on stdout), -1 on a user error (message in err). */
int vae_cli_parse(const char *usage_line, const vae_flag *flags, int n, int argc, char **argv, char *err);
/* Ranks other than 0 parse quietly: --help is printed once. */
void vae_cli_quiet(int quiet);
void vae_cli_usage(FILE *f, const char *usage_line, const vae_flag *flags, int n);

/* Positive and range checks used by every subcommand's validation. */
int vae_cli_parse_hidden(const char *s, vae_config *c, char *err);
int vae_cli_parse_conv(const char *s, vae_config *c, char *err);

/* `vae_mpi train`: defaults, parse, validate. Returns as vae_cli_parse. */
void vae_train_opts_default(vae_train_opts *o);
int vae_train_opts_parse(vae_train_opts *o, int argc, char **argv, char *err);
int vae_train_opts_validate(const vae_train_opts *o, char *err);

#endif
