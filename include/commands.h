/* commands.h: the subcommands main.c dispatches. Each takes the arguments after its name
 * (argv[0] is the subcommand name) and returns the process exit status. */
#ifndef VAE_COMMANDS_H
#define VAE_COMMANDS_H

int vae_cmd_train(int argc, char **argv);
int vae_cmd_eval(int argc, char **argv);
int vae_cmd_sample(int argc, char **argv);
int vae_cmd_reconstruct(int argc, char **argv);
int vae_cmd_import_idx(int argc, char **argv);
int vae_cmd_import_images(int argc, char **argv);

#endif
