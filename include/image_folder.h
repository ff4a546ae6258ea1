/* image_folder.h: the files of an image folder laid out as torchvision's ImageFolder reads it,
 * ROOT/<class>/<file>: class folders sorted by name become labels 0..K-1, and each class's files
 * (its subfolders too, followed as os.walk(followlinks=True) does) are sorted by folder, then name,
 * byte order. A ROOT holding files and no class folders is one unlabelled class named after ROOT.
 * Lists names only: nothing here opens a file. */
#ifndef VAE_IMAGE_FOLDER_H
#define VAE_IMAGE_FOLDER_H

#include <stddef.h>

typedef struct {
  size_t n;       /* files */
  char **path;    /* n paths, ROOT/<class>/<...>/<file> */
  int *label;     /* n labels, 0..nclasses-1, non-decreasing */
  int nclasses;   /* >= 1 */
  char **classes; /* class folder names, sorted */
  int labelled;   /* 0: ROOT held the files itself */
  size_t nstray;  /* files beside the class folders (a README in ROOT): bad input */
  char **stray;
} vae_image_list;

/* Lists root. Errors: root missing or not a folder, no files at all, a class folder without any file,
 * folders nested deeper than 32 levels (a symbolic-link loop). 0, or -1 with err. */
int vae_image_list_scan(const char *root, vae_image_list *l, char *err);
void vae_image_list_free(vae_image_list *l);

#endif
