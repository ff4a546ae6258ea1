/* checkpoint/match.c: vae_checkpoint_match, whether a checkpoint's model can continue under a
 * run's config, and if not every difference with the flags that would make them agree.
 * Must never: touch a file, call MPI or HDF5, or accept a difference that changes the model's
 * tensors or its loss. */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"

static void append(char *buf, size_t n, const char *sep, const char *s) {
  size_t used = strlen(buf);
  if (used < n) snprintf(buf + used, n - used, "%s%s", used ? sep : "", s);
}

/* "400,200", or "(none)" */
static void list_str(const int *v, int count, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < count && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%d", i ? "," : "", v[i]);
  if (count == 0) snprintf(buf, n, "(none)");
}

static int same_list(const int *a, int na, const int *b, int nb) {
  if (na != nb) return 0;
  for (int i = 0; i < na; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* The differences found so far, and the flags that would remove them. */
typedef struct {
  char diffs[VAE_ERR_LEN], fixes[VAE_ERR_LEN];
} mismatch;

/* One setting that differs: the checkpoint's value `have`, the run's `want`, and the flag that sets it. */
static void differs(mismatch *m, const char *what, const char *flag, const char *have, const char *want) {
  char line[600];
  snprintf(line, sizeof line, "checkpoint has %s %s, this run asks for %s", what, have, want);
  append(m->diffs, sizeof m->diffs, "; ", line);
  /* an empty list is given as '' (--hidden '' and --conv '': none) */
  snprintf(line, sizeof line, "%s %s", flag, strcmp(have, "(none)") ? have : "''");
  append(m->fixes, sizeof m->fixes, ", ", line);
}

/* differs() for a list setting (--conv, --hidden), if the two lists differ */
static void differs_list(mismatch *m, const char *what, const char *flag, const int *have, int n_have,
                         const int *want, int n_want) {
  if (same_list(have, n_have, want, n_want)) return;
  char a[256], b[256];
  list_str(have, n_have, a, sizeof a);
  list_str(want, n_want, b, sizeof b);
  differs(m, what, flag, a, b);
}

/* differs() for an integer setting, if the two values differ */
static void differs_int(mismatch *m, const char *what, const char *flag, int have, int want) {
  if (have == want) return;
  char a[32], b[32];
  snprintf(a, sizeof a, "%d", have);
  snprintf(b, sizeof b, "%d", want);
  differs(m, what, flag, a, b);
}

/* differs() for a float setting, if the two values differ */
static void differs_float(mismatch *m, const char *what, const char *flag, float have, float want) {
  if (have == want) return;
  char a[32], b[32];
  snprintf(a, sizeof a, "%g", (double)have);
  snprintf(b, sizeof b, "%g", (double)want);
  differs(m, what, flag, a, b);
}

int vae_checkpoint_match(const vae_config *ck, const vae_config *want, char *err) {
  mismatch m = {"", ""};
  if (ck->in_h != want->in_h || ck->in_w != want->in_w || ck->in_c != want->in_c) {
    char line[600];
    snprintf(line, sizeof line, "checkpoint was trained on %dx%dx%d images, this run's data has %dx%dx%d",
             ck->in_h, ck->in_w, ck->in_c, want->in_h, want->in_w, want->in_c);
    append(m.diffs, sizeof m.diffs, "; ", line);
    append(m.fixes, sizeof m.fixes, ", ", "the --data it was trained on");
  }
  /* the conv trunk: its channel counts, and kernel, stride and padding when both are conv models */
  differs_list(&m, "conv", "--conv", ck->conv, ck->n_conv, want->conv, want->n_conv);
  if (ck->n_conv > 0 && want->n_conv > 0) {
    differs_int(&m, "kernel", "--kernel", ck->kernel, want->kernel);
    differs_int(&m, "stride", "--stride", ck->stride, want->stride);
    differs_int(&m, "padding", "--padding", ck->padding, want->padding);
  }
  differs_list(&m, "hidden", "--hidden", ck->hidden, ck->n_hidden, want->hidden, want->n_hidden);
  differs_int(&m, "latent", "--latent", ck->latent, want->latent);
  if (ck->decoder != want->decoder) {
    differs(&m, "decoder", "--decoder", vae_decoder_name(ck->decoder), vae_decoder_name(want->decoder));
  } else if (ck->decoder == VAE_DEC_GAUSSIAN) {
    /* sigma only enters the loss of the fixed-sigma gaussian decoder */
    differs_float(&m, "sigma", "--sigma", ck->sigma, want->sigma);
  } else if (ck->decoder == VAE_DEC_GAUSSIAN_LEARNED) {
    differs_float(&m, "logvar_min", "--logvar-min", ck->logvar_min, want->logvar_min);
  }
  if (!m.diffs[0]) return 0;
  return vae_err(err, "%s: pass %s or start a fresh --out", m.diffs, m.fixes);
}
