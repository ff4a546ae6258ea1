/* main.c: dispatches vae_mpi's subcommands; before a subcommand that computes, lets
 * vae_blas_select pick OpenBLAS's kernels (it may re-execute the program, so it comes first). */
#include <stdio.h>
#include <string.h>

#include "blas_kernels.h"
#include "commands.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
  int blas; /* computes with BLAS: the kernels are chosen before it starts (blas_kernels.h) */
} command;

static const command commands[] = {
    {"import-idx", vae_cmd_import_idx, "IDX files (MNIST, Fashion-MNIST) into an HDF5 group", 0},
    {"import-images", vae_cmd_import_images,
     "a folder of PNG/JPEG images (ImageFolder layout) into an HDF5 group", 0},
    {"train", vae_cmd_train, "train a VAE, data-parallel over the MPI ranks (run under mpirun)", 1},
    {"eval", vae_cmd_eval, "ELBO and importance-weighted bound of a checkpoint on a dataset (under mpirun)",
     1},
    {"sample", vae_cmd_sample, "a PNG grid of samples from a checkpoint's decoder", 1},
    {"reconstruct", vae_cmd_reconstruct, "a PNG of images above their reconstructions", 1},
    {NULL, NULL, NULL, 0},
};

static void usage(FILE *f) {
  fprintf(f, "usage: vae_mpi COMMAND [options]   (vae_mpi COMMAND --help for its options)\n\ncommands:\n");
  for (size_t i = 0; commands[i].name; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    fprintf(stderr, "vae_mpi: error: no command given; pick one of the commands above\n");
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; commands[i].name; i++)
    if (strcmp(argv[1], commands[i].name) == 0) {
      if (commands[i].blas) vae_blas_select(argv);
      return commands[i].run(argc - 1, argv + 1);
    }
  usage(stderr);
  fprintf(stderr, "vae_mpi: error: unknown command '%s'; pick one of the commands above\n", argv[1]);
  return 2;
}
