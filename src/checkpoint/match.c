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

static void hidden_str(const vae_config *c, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < c->n_hidden && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%d", i ? "," : "", c->hidden[i]);
  if (c->n_hidden == 0) snprintf(buf, n, "(none)");
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
  snprintf(line, sizeof line, "%s %s", flag, have);
  append(m->fixes, sizeof m->fixes, ", ", line);
}

int vae_checkpoint_match(const vae_config *ck, const vae_config *want, char *err) {
  mismatch m = {"", ""};
  char a[256], b[256];
  if (ck->in_h != want->in_h || ck->in_w != want->in_w || ck->in_c != want->in_c) {
    char line[600];
    snprintf(line, sizeof line, "checkpoint was trained on %dx%dx%d images, this run's data has %dx%dx%d",
             ck->in_h, ck->in_w, ck->in_c, want->in_h, want->in_w, want->in_c);
    append(m.diffs, sizeof m.diffs, "; ", line);
    append(m.fixes, sizeof m.fixes, ", ", "the --data it was trained on");
  }
  int same_hidden = ck->n_hidden == want->n_hidden;
  for (int i = 0; same_hidden && i < ck->n_hidden; i++) same_hidden = ck->hidden[i] == want->hidden[i];
  if (!same_hidden) {
    hidden_str(ck, a, sizeof a);
    hidden_str(want, b, sizeof b);
    differs(&m, "hidden", "--hidden", a, b);
  }
  if (ck->latent != want->latent) {
    snprintf(a, sizeof a, "%d", ck->latent);
    snprintf(b, sizeof b, "%d", want->latent);
    differs(&m, "latent", "--latent", a, b);
  }
  if (ck->decoder != want->decoder) {
    differs(&m, "decoder", "--decoder", vae_decoder_name(ck->decoder), vae_decoder_name(want->decoder));
  } else if (ck->decoder == VAE_DEC_GAUSSIAN && ck->sigma != want->sigma) {
    /* sigma only enters the loss of the fixed-sigma gaussian decoder */
    snprintf(a, sizeof a, "%g", (double)ck->sigma);
    snprintf(b, sizeof b, "%g", (double)want->sigma);
    differs(&m, "sigma", "--sigma", a, b);
  } else if (ck->decoder == VAE_DEC_GAUSSIAN_LEARNED && ck->logvar_min != want->logvar_min) {
    snprintf(a, sizeof a, "%g", (double)ck->logvar_min);
    snprintf(b, sizeof b, "%g", (double)want->logvar_min);
    differs(&m, "logvar_min", "--logvar-min", a, b);
  }
  if (!m.diffs[0]) return 0;
  return vae_err(err, "%s: pass %s or start a fresh --out", m.diffs, m.fixes);
}
