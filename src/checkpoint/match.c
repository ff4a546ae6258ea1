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

int vae_checkpoint_match(const vae_config *ck, const vae_config *want, char *err) {
  char diffs[VAE_ERR_LEN] = "", fixes[VAE_ERR_LEN] = "", a[256], b[256], line[600];
  if (ck->in_h != want->in_h || ck->in_w != want->in_w || ck->in_c != want->in_c) {
    snprintf(line, sizeof line,
             "checkpoint was trained on %dx%dx%d images, this run's data has "
             "%dx%dx%d",
             ck->in_h, ck->in_w, ck->in_c, want->in_h, want->in_w, want->in_c);
    append(diffs, sizeof diffs, "; ", line);
    append(fixes, sizeof fixes, ", ", "the --data it was trained on");
  }
  int same_hidden = ck->n_hidden == want->n_hidden;
  for (int i = 0; same_hidden && i < ck->n_hidden; i++) same_hidden = ck->hidden[i] == want->hidden[i];
  if (!same_hidden) {
    hidden_str(ck, a, sizeof a);
    hidden_str(want, b, sizeof b);
    snprintf(line, sizeof line, "checkpoint has hidden %s, this run asks for %s", a, b);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--hidden %s", a);
    append(fixes, sizeof fixes, ", ", line);
  }
  if (ck->latent != want->latent) {
    snprintf(line, sizeof line, "checkpoint has latent %d, this run asks for %d", ck->latent, want->latent);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--latent %d", ck->latent);
    append(fixes, sizeof fixes, ", ", line);
  }
  if (ck->decoder != want->decoder) {
    snprintf(line, sizeof line, "checkpoint has decoder %s, this run asks for %s",
             vae_decoder_name(ck->decoder), vae_decoder_name(want->decoder));
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--decoder %s", vae_decoder_name(ck->decoder));
    append(fixes, sizeof fixes, ", ", line);
  } else if (ck->decoder == VAE_DEC_GAUSSIAN && ck->sigma != want->sigma) {
    /* sigma only enters the loss of the fixed-sigma gaussian decoder */
    snprintf(line, sizeof line, "checkpoint has sigma %g, this run asks for %g", (double)ck->sigma,
             (double)want->sigma);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--sigma %g", (double)ck->sigma);
    append(fixes, sizeof fixes, ", ", line);
  } else if (ck->decoder == VAE_DEC_GAUSSIAN_LEARNED && ck->logvar_min != want->logvar_min) {
    snprintf(line, sizeof line, "checkpoint has logvar_min %g, this run asks for %g", (double)ck->logvar_min,
             (double)want->logvar_min);
    append(diffs, sizeof diffs, "; ", line);
    snprintf(line, sizeof line, "--logvar-min %g", (double)ck->logvar_min);
    append(fixes, sizeof fixes, ", ", line);
  }
  if (!diffs[0]) return 0;
  return vae_err(err, "%s: pass %s or start a fresh --out", diffs, fixes);
}
