/* data/internal.h: INTERNAL to the HDF5 data reader (data/probe.c, data/read.c, data/shard.c): what
 * more than one of them needs. Everything else uses the public include/data.h. */
#ifndef VAE_DATA_INTERNAL_H
#define VAE_DATA_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Input files never load plugins (a filter plugin is code from outside this program), and HDF5's
 * error stack is ours to translate. Idempotent; the probe may run before MPI and dist_init. */
void vae_data_lib_init(void);

/* Link-access callback (H5Pset_elink_cb): any external link met while opening is refused. */
herr_t vae_data_deny_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                   const char *child_object, unsigned *acc_flags, hid_t fapl_id,
                                   void *op_data);

/* a * b into *out; 0 when it would overflow size_t. */
static inline int vae_data_mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

#endif
