/* image_import.h: the two parallel passes of `vae_mpi import-images` over a listed folder
 * (image_folder.h), on T threads (pthreads): probe every file's header, then decode chosen files to
 * one size and channel count. Files are read whole into memory; the main thread owns every result.
 * A bad file (unreadable, not a PNG or JPEG, damaged, CMYK, too big) is recorded with a one-line
 * reason, never fatal. */
#ifndef VAE_IMAGE_IMPORT_H
#define VAE_IMAGE_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "image_folder.h"

/* The bad files met so far, in file order once a pass returns. */
typedef struct {
  size_t n, cap;
  size_t *file;  /* index into the list */
  char **reason; /* "not an image, a text file: ..." */
} vae_bad_files;

void vae_bad_files_add(vae_bad_files *b, size_t file, const char *reason);
void vae_bad_files_sort(vae_bad_files *b); /* into file order */
void vae_bad_files_free(vae_bad_files *b);

/* What every decoded image becomes: H x W x C (C 1 or 3), alpha over the grey level background;
 * resize = 1: centre-cropped to H:W and resized (image.h), 0: every image must be H x W already. */
typedef struct {
  int h, w, c, resize;
  uint8_t background;
} vae_image_spec;

/* Pass 1: the header of every file of l into info[0..l->n). bad[i] is set to 1 for each bad file,
 * recorded in b. With stop_early, files after the first bad one may be left unprobed (bad[i] = 2):
 * the first bad file in list order is always found. */
void vae_images_probe(const vae_image_list *l, int threads, int stop_early, vae_image_info *info,
                      unsigned char *bad, vae_bad_files *b);

/* Pass 2: files idx[0..n) decoded into out (n images of spec, in that order); a file that fails
 * gets ok[k] = 0 and a record in b (its slot of out is left as it was). */
void vae_images_decode(const vae_image_list *l, const size_t *idx, size_t n, const vae_image_spec *spec,
                       int threads, uint8_t *out, unsigned char *ok, vae_bad_files *b);

/* Threads to use: T > 0 as given, else the cores this process may run on. */
int vae_images_threads(int t);

#endif
