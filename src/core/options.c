/* options.c: the names of the training configuration's enum values, spelled here once for the CLI
 * (--lr-scale, --decoder: parsing, help, messages) and the checkpoint (/config/lr_scale,
 * /model/decoder), and the lists of them that messages show. The decoders' names themselves are the
 * model's (vae_decoder_name, nn/model.c); this lists them.
 * Must never: spell a name that another file spells too. */
#include <stdio.h>
#include <string.h>

#include "options.h"

static const char *const lr_scale_names[] = {
    [VAE_LR_SCALE_NONE] = "none", [VAE_LR_SCALE_LINEAR] = "linear", [VAE_LR_SCALE_SQRT] = "sqrt"};
#define N_LR_SCALES ((int)(sizeof lr_scale_names / sizeof lr_scale_names[0]))

const char *vae_lr_scale_name(vae_lr_scale s) {
  return (int)s >= 0 && (int)s < N_LR_SCALES ? lr_scale_names[s] : NULL;
}

int vae_lr_scale_parse(const char *s, vae_lr_scale *out) {
  for (int i = 0; i < N_LR_SCALES; i++)
    if (strcmp(s, lr_scale_names[i]) == 0) {
      *out = (vae_lr_scale)i;
      return 0;
    }
  return -1;
}

/* name(0), name(1), ... until NULL, joined by sep, the last two by last: "a, b or c". */
static void join(const char *(*name)(int), char *buf, size_t n, const char *sep, const char *last) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; name(i) && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%s", i == 0 ? "" : name(i + 1) ? sep : last, name(i));
}

static const char *lr_scale_at(int i) { return vae_lr_scale_name((vae_lr_scale)i); }

/* The decoders as vae_decoder_name spells them, while the name reads back as the same value. */
static const char *decoder_at(int i) {
  const char *s = vae_decoder_name((vae_decoder)i);
  vae_decoder d;
  return vae_decoder_parse(s, &d) == 0 && (int)d == i ? s : NULL;
}

void vae_lr_scale_names(char *buf, size_t n, const char *sep, const char *last) {
  join(lr_scale_at, buf, n, sep, last);
}

void vae_decoder_names(char *buf, size_t n, const char *sep, const char *last) {
  join(decoder_at, buf, n, sep, last);
}
