/* checkpoint/load_model.c: reading a checkpoint to run its model (eval, sample, reconstruct): the
 * model and its parameters, not Adam's moments, checked against the images it will be run on.
 * Must never: call MPI (rank 0 alone reads), or return a model whose input shape differs from the
 * data it is given. */
#include <stdlib.h>

#include "checkpoint.h"
#include "error.h"

int vae_checkpoint_read_model(const char *path, const vae_data_info *data, vae_config *cfg, float **params,
                              vae_ckpt_state *st, char *err) {
  vae_config c;
  float *p = NULL, *m = NULL, *v = NULL;
  if (vae_checkpoint_read(path, &c, &p, &m, &v, st, err) < 0) return -1;
  free(m);
  free(v);
  if (data && ((size_t)c.in_h != data->h || (size_t)c.in_w != data->w || (size_t)c.in_c != data->c)) {
    free(p);
    return vae_err(
        err,
        "checkpoint %s takes %dx%dx%d images (H x W x C) but %s:%s holds %zux%zux%zu images; use data of the shape it was trained on",
        path, c.in_h, c.in_w, c.in_c, data->file, data->dataset, data->h, data->w, data->c);
  }
  *cfg = c;
  *params = p;
  return 0;
}
