/* data/read.c: the collective read of each rank's rows with parallel HDF5 (MPI-IO, collective
 * transfers, in bounded pieces). Every rank returns the same status. Must never let one rank leave a
 * collective read while the others are still in it, follow a link out of the file, or make an MPI
 * call itself (the communicator goes to H5Pset_fapl_mpio; agreement is core/dist.c's). */
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "dist.h"
#include "error.h"
#include "internal.h"

/* One collective H5Dread moves at most this many file bytes per rank: bounds HDF5's buffers (a
 * collective read of filtered chunks holds them all, compressed and decoded, for the call: with one
 * call for the whole shard the peak RSS was the shard plus ~35 MiB for Fashion-MNIST, with 8 MiB
 * pieces it is the shard plus ~5 MiB, at the same speed) and stays far from MPI's 2 GiB count
 * limits. Ranks agree on the number of calls. */
#define READ_PIECE_BYTES ((size_t)8 << 20)

/* ---------------------------------------------------------------- collective read */

static int read_rows(const vae_data_info *info, MPI_Comm comm, size_t piece_bytes, size_t n_rows,
                     vae_shard *shard, char *err);

int vae_data_read_shard(const vae_data_info *info, MPI_Comm comm, vae_shard *shard, char *err) {
  return read_rows(info, comm, READ_PIECE_BYTES, info->n, shard, err);
}

int vae_data_read_shard_pieces(const vae_data_info *info, MPI_Comm comm, size_t piece_bytes, vae_shard *shard,
                               char *err) {
  return read_rows(info, comm, piece_bytes, info->n, shard, err);
}

int vae_data_read_first(const vae_data_info *info, MPI_Comm comm, size_t n_rows, vae_shard *shard,
                        char *err) {
  return read_rows(info, comm, READ_PIECE_BYTES, n_rows < info->n ? n_rows : info->n, shard, err);
}

/* One rank's side of a collective read: its rows and the HDF5 handles (closed in reverse order). */
typedef struct {
  const vae_data_info *info;
  MPI_Comm comm;
  int rank;
  size_t off, cnt; /* this rank's rows [off, off + cnt) */
  hid_t fapl, file, dapl, dset, fspace;
} shard_read;

/* Open: metadata is read by one rank and broadcast (collective metadata ops), so every rank sees the
 * same outcome. A failure on some ranks only (MPI-IO itself failing unevenly) cannot be undone safely
 * and would hang in H5Fclose; it is not seen on a file every rank just probed. 1 on failure. */
static int open_file(shard_read *r, char *err) {
  r->fapl = H5Pcreate(H5P_FILE_ACCESS);
  h5Check(r->fapl);
  h5Check(H5Pset_fapl_mpio(r->fapl, r->comm, MPI_INFO_NULL));
  h5Check(H5Pset_all_coll_metadata_ops(r->fapl, 1));
  h5Check(H5Pset_coll_metadata_write(r->fapl, 1));
  r->file = H5Fopen(r->info->file, H5F_ACC_RDONLY, r->fapl);
  if (r->file >= 0) return 0;
  vae_err(
      err,
      "cannot open %s with parallel HDF5 (MPI-IO) on rank %d; is it on a file system every rank can read?",
      r->info->file, r->rank);
  return 1;
}

/* The dataset, which may have changed between probe and read: its shape and type must still match.
 * 1 on failure. */
static int open_unchanged(shard_read *r, char *err) {
  const vae_data_info *info = r->info;
  r->dapl = H5Pcreate(H5P_DATASET_ACCESS);
  h5Check(r->dapl);
  h5Check(H5Pset_elink_cb(r->dapl, vae_data_deny_external_link, NULL));
  r->dset = H5Dopen2(r->file, info->path, r->dapl);
  if (r->dset < 0) {
    vae_err(err, "cannot open %s:%s for the parallel read (changed since it was checked?)", info->file,
            info->dataset);
    return 1;
  }
  hsize_t dims[H5S_MAX_RANK];
  r->fspace = H5Dget_space(r->dset);
  hid_t type = H5Dget_type(r->dset);
  int nd = r->fspace >= 0 ? H5Sget_simple_extent_ndims(r->fspace) : -1;
  int same = nd == info->ndims && H5Sget_simple_extent_dims(r->fspace, dims, NULL) == nd && type >= 0 &&
             H5Tget_class(type) == (info->kind == VAE_DATA_UINT8 ? H5T_INTEGER : H5T_FLOAT);
  for (int i = 0; same && i < nd; i++) same = dims[i] == info->dims[i];
  if (type >= 0) H5Tclose(type);
  if (same) return 0;
  vae_err(err, "%s:%s changed since it was checked (shape or type differ); run again", info->file,
          info->dataset);
  return 1;
}

/* The rows into buf (cnt rows of d values, in memory's type), in pieces of at most piece_bytes file
 * bytes per rank; every rank makes the same number of collective H5Dread calls, selecting nothing once
 * its rows are done. 1 on failure (every call is made all the same).
 * Filtered (chunked, compressed) datasets read collectively too: parallel HDF5 >= 1.10.2 supports
 * collective reads of filtered data (each chunk is read and decoded by the ranks that select it), and
 * tests/test_data_read covers gzip+shuffle at 1..4 ranks, so no independent fallback. Measured with
 * H5Pget_mpio_actual_io_mode on HDF5 1.10.8: uint8 and float32 read collectively (contiguous and
 * chunked); float64 -> float32 makes HDF5 itself switch to independent I/O (cause: datatype
 * conversion), which is correct, just without MPI-IO aggregation. */
static int read_pieces(shard_read *r, size_t piece_bytes, void *buf, char *err) {
  const vae_data_info *info = r->info;
  const size_t d = info->d, cnt = r->cnt;
  const size_t file_elem = info->kind == VAE_DATA_FLOAT64 ? 8 : info->kind == VAE_DATA_FLOAT32 ? 4 : 1;
  size_t piece_rows = piece_bytes / (d * file_elem);
  if (piece_rows == 0) piece_rows = 1;
  long calls = vae_dist_max_long(r->comm, (long)((cnt + piece_rows - 1) / piece_rows));
  float dummy[1];
  hid_t memtype = info->kind == VAE_DATA_UINT8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  h5Check(dxpl);
  h5Check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
  int failed = 0;
  size_t bad_row = 0;
  for (long call = 0; call < calls; call++) {
    size_t r0 = (size_t)call * piece_rows;
    size_t rows = r0 < cnt ? (cnt - r0 < piece_rows ? cnt - r0 : piece_rows) : 0;
    hsize_t start[4] = {0, 0, 0, 0}, count[4];
    start[0] = (hsize_t)(r->off + r0);
    count[0] = (hsize_t)rows;
    for (int i = 1; i < info->ndims; i++) count[i] = info->dims[i];
    /* The memory space has the selection's own shape: with a flat (rows * d) one HDF5 maps every
     * element between the two shapes one by one (seconds for Fashion-MNIST instead of milliseconds). */
    hsize_t one = 1;
    hid_t mspace = rows ? H5Screate_simple(info->ndims, count, NULL) : H5Screate_simple(1, &one, NULL);
    h5Check(mspace);
    if (rows) {
      h5Check(H5Sselect_hyperslab(r->fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    } else {
      h5Check(H5Sselect_none(r->fspace));
      h5Check(H5Sselect_none(mspace));
    }
    void *dst = rows ? (char *)buf + r0 * d * info->elem_bytes : (void *)dummy;
    if (H5Dread(r->dset, memtype, mspace, r->fspace, dxpl, dst) < 0 && !failed) {
      failed = 1;
      bad_row = r->off + r0;
    }
    H5Sclose(mspace);
  }
  H5Pclose(dxpl);
  if (failed)
    vae_err(
        err,
        "reading rows %zu..%zu of %s:%s failed on rank %d (damaged data, a compressed chunk that does not decode, or an I/O error); check the file with h5dump, or re-create it",
        bad_row, r->off + cnt - 1, info->file, info->dataset, r->rank);
  return failed;
}

static void close_read(shard_read *r) {
  if (r->fspace >= 0) H5Sclose(r->fspace);
  if (r->dset >= 0) H5Dclose(r->dset);
  if (r->dapl >= 0) H5Pclose(r->dapl);
  if (r->file >= 0) H5Fclose(r->file);
  if (r->fapl >= 0) H5Pclose(r->fapl);
}

/* Rows [0, n_rows) of the dataset, split over comm's ranks by vae_shard_range. Each stage's outcome
 * is agreed on before the next, so every rank stops at the same place. */
static int read_rows(const vae_data_info *info, MPI_Comm comm, size_t piece_bytes, size_t n_rows,
                     vae_shard *shard, char *err) {
  vae_data_lib_init();
  memset(shard, 0, sizeof *shard);
  err[0] = '\0';
  int size;
  shard_read r = {
      info,           comm, 0, 0, 0, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID,
      H5I_INVALID_HID};
  vae_dist_comm_info(comm, &r.rank, &size);
  vae_shard_range(n_rows, r.rank, size, &r.off, &r.cnt);
  int rc = -1;
  void *buf = NULL;
  int opened = !vae_dist_agree_failure(comm, open_file(&r, err), err) &&
               !vae_dist_agree_failure(comm, open_unchanged(&r, err), err);
  if (opened && r.cnt > 0) buf = mallocCheck(r.cnt * info->d * info->elem_bytes);
  if (opened && !vae_dist_agree_failure(comm, read_pieces(&r, piece_bytes, buf, err), err)) {
    shard->info = *info;
    shard->offset = r.off;
    shard->count = r.cnt;
    shard->d = info->d;
    if (info->kind == VAE_DATA_UINT8)
      shard->u8 = buf;
    else
      shard->f32 = buf;
    buf = NULL;
    rc = 0;
  }
  free(buf);
  close_read(&r);
  return rc;
}
