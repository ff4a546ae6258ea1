/* marker_plugin.c: a stand-in HDF5 filter plugin for test_robust.py. Loading it is the event under
 * test: its constructor creates the file named by VAE_PLUGIN_MARKER, so a test can prove that
 * vae_mpi never loads code from HDF5_PLUGIN_PATH (and, as a control, that h5py does). It provides
 * the two entry points HDF5's plugin scanner looks up, and no filter (info NULL: not usable). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void vae_marker_loaded(void) {
  const char *p = getenv("VAE_PLUGIN_MARKER");
  if (!p || !*p) return;
  int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    (void)write(fd, "loaded\n", 7);
    close(fd);
  }
}

int H5PLget_plugin_type(void);
const void *H5PLget_plugin_info(void);
int H5PLget_plugin_type(void) { return 0; /* H5PL_TYPE_FILTER */ }
const void *H5PLget_plugin_info(void) { return NULL; }
