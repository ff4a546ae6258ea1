/* h5_group_writer.h: adds groups of datasets to an HDF5 file so that nothing at the output path
 * changes until every byte is written, and an existing group is never half-replaced. Serves every
 * importer (import-idx, import-images).
 *
 * How: the output is written under durable_file.h's temporary name in the same folder (a new file,
 * or a byte copy of the existing one); inside it every dataset is created anonymous
 * (H5Dcreate_anon), filled, given its attributes, and only linked under /GROUP/NAME at commit, after
 * which vae_durable_publish fsyncs the temporary file, renames it over the output and fsyncs the
 * folder. Any failure, or vae_h5w_abort, removes the
 * temporary and leaves the output as it was. Single process, HDF5's sec2 driver: never calls MPI.
 *
 * Datasets are written by appending rows in order (vae_h5w_append); a chunked dataset is chunked
 * along N, gzip-compressed (level VAE_H5W_GZIP) with the shuffle filter; the appends are buffered
 * into whole chunks, compressed on the writer's threads (h5_chunks.h) and written with
 * H5Dwrite_chunk, so HDF5 itself never compresses. Every function returns 0 or -1 with a one-line
 * message in err (VAE_ERR_LEN bytes); after a failure, call vae_h5w_abort. */
#ifndef VAE_H5_GROUP_WRITER_H
#define VAE_H5_GROUP_WRITER_H

#include <stdint.h>

#define VAE_H5W_GZIP 4
#define VAE_H5W_MAX_DATASETS 8
#define VAE_H5W_MAX_RANK 4

typedef struct vae_h5_writer vae_h5_writer;

typedef enum { VAE_H5W_U8, VAE_H5W_U32 } vae_h5w_type;

/* Opens OUT for adding the groups groups[0..ngroups) (plain names, no '/'). Refuses, before writing
 * anything, a group name that exists and is not a group, or a group that already holds a dataset of
 * one of the names in datasets[0..ndatasets) unless overwrite. creator is written as the root
 * attribute created_by on a new file (and on an existing one that has none). NULL on failure. */
vae_h5_writer *vae_h5w_open(const char *out, const char *const *groups, int ngroups,
                            const char *const *datasets, int ndatasets, int overwrite, const char *creator,
                            char *err);

/* Threads that compress the chunks (default 1); call before vae_h5w_dataset. At most 256. */
void vae_h5w_threads(vae_h5_writer *w, int threads);

/* Creates the anonymous dataset that commit links as /group/name: shape dims[0..nd) (dims[0] = N),
 * chunked chunk_rows images at a time (kept under 1 GiB a chunk) when chunk_rows > 0, else
 * contiguous. Its index (for append, attributes) is returned in *id. */
int vae_h5w_dataset(vae_h5_writer *w, const char *group, const char *name, vae_h5w_type type, int nd,
                    const uint64_t *dims, long chunk_rows, int *id, char *err);

/* Appends n rows (each dims[1] * .. * dims[nd-1] elements of the dataset's type) after the rows
 * already appended. More than dims[0] rows in all is an error. */
int vae_h5w_append(vae_h5_writer *w, int id, const void *rows, uint64_t n, char *err);

/* Attributes of dataset id: one string, a list of strings, a list of 64-bit integers, a double. */
int vae_h5w_attr_string(vae_h5_writer *w, int id, const char *name, const char *value, char *err);
int vae_h5w_attr_strings(vae_h5_writer *w, int id, const char *name, const char *const *values, int n,
                         char *err);
int vae_h5w_attr_longs(vae_h5_writer *w, int id, const char *name, const long *values, int n, char *err);
int vae_h5w_attr_double(vae_h5_writer *w, int id, const char *name, double value, char *err);

/* Flushes the appends, shrinks a dataset that received fewer than dims[0] rows to the rows it got,
 * links every dataset in (replacing old ones when overwrite), closes the file and publishes it
 * durably at OUT. Frees w whatever the outcome. */
int vae_h5w_commit(vae_h5_writer *w, char *err);

/* Drops everything written: the temporary file is removed, OUT is untouched. Frees w; NULL is fine. */
void vae_h5w_abort(vae_h5_writer *w);

#endif
