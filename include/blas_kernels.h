/* blas_kernels.h: the right OpenBLAS kernels on any x86-64 CPU, and the line that says which ones run.
 *
 * OpenBLAS (a DYNAMIC_ARCH build, as Debian's) picks its kernel family ("core") once, when it is
 * loaded: from OPENBLAS_CORETYPE if set, else from its table of CPU models. A CPU newer than the table
 * can get a generic pre-AVX core (0.3.21 runs Prescott, SSE3, on Intel family-6 models it does not
 * list) and a third of the speed. vae_blas_select(), called first thing in main(), notices that
 * (cpuid says the CPU and the OS run AVX-512 / AVX2+FMA / AVX, OpenBLAS reports a pre-AVX core),
 * sets OPENBLAS_CORETYPE to the best family this OpenBLAS has and re-executes the program, before
 * MPI_Init and before any BLAS call. OPENBLAS_CORETYPE set by the user, or VAE_BLAS_CORETYPE=keep,
 * leaves OpenBLAS's choice alone. The decision itself is a pure function (vae_blas_decide), tested
 * on tables of CPU features and core names. */
#ifndef VAE_BLAS_KERNELS_H
#define VAE_BLAS_KERNELS_H

/* CPU features that the instructions AND the operating system's saved register state allow
 * (cpuid, and xgetbv for the YMM / ZMM state): a flag is set only when the code can run. */
enum {
  VAE_CPU_AVX = 1u << 0,
  VAE_CPU_FMA = 1u << 1,
  VAE_CPU_AVX2 = 1u << 2,
  VAE_CPU_AVX512F = 1u << 3,
  VAE_CPU_AVX512CD = 1u << 4,
  VAE_CPU_AVX512BW = 1u << 5,
  VAE_CPU_AVX512DQ = 1u << 6,
  VAE_CPU_AVX512VL = 1u << 7,
};
#define VAE_CPU_AVX512_SKX \
  (VAE_CPU_AVX512F | VAE_CPU_AVX512CD | VAE_CPU_AVX512BW | VAE_CPU_AVX512DQ | VAE_CPU_AVX512VL)

/* This CPU's VAE_CPU_* flags (0 on other architectures). */
unsigned vae_cpu_features(void);

/* The best OpenBLAS core for these features that OPENBLAS_CORETYPE can name in OpenBLAS 0.3.x:
 * "SkylakeX" (AVX-512 F+CD+BW+DQ+VL with AVX2+FMA), "Haswell" (AVX2+FMA), "Sandybridge" (AVX), or
 * NULL (nothing better than the SSE kernels). 0.3.21 also has Cooperlake, but its OPENBLAS_CORETYPE
 * cannot name it (fixed in 0.3.22), and Cooperlake's sgemm is SkylakeX's. */
const char *vae_blas_best_core(unsigned features);

/* 1 for a core name whose kernels predate AVX (Katmai ... Nehalem, Barcelona, Unknown): what OpenBLAS
 * runs on an AVX CPU only when it does not know the CPU (its own fallbacks for an OS without AVX state
 * are matched by the features' xgetbv test). */
int vae_blas_core_is_generic(const char *core);

typedef enum {
  VAE_BLAS_LEAVE,   /* run with what OpenBLAS loaded */
  VAE_BLAS_REEXEC,  /* set OPENBLAS_CORETYPE=core and execute the program again */
  VAE_BLAS_INVALID, /* VAE_BLAS_CORETYPE has a value that means nothing: a user error */
} vae_blas_action;

typedef enum {
  VAE_BLAS_BY_OPENBLAS, /* OpenBLAS's own choice, vae_mpi had no reason to change it */
  VAE_BLAS_BY_USER,     /* OPENBLAS_CORETYPE set by the user */
  VAE_BLAS_BY_KEEP,     /* VAE_BLAS_CORETYPE=keep */
  VAE_BLAS_BY_VAE,      /* vae_mpi set OPENBLAS_CORETYPE (this process is the re-executed one) */
  VAE_BLAS_BY_STATIC,   /* an OpenBLAS built without DYNAMIC_ARCH: OPENBLAS_CORETYPE is ignored */
} vae_blas_by;

/* What vae_blas_decide looks at. Strings may be NULL (unset). */
typedef struct {
  unsigned features;         /* vae_cpu_features() */
  const char *core;          /* openblas_get_corename() */
  int dynamic_arch;          /* openblas_get_config() names DYNAMIC_ARCH */
  const char *openblas_env;  /* $OPENBLAS_CORETYPE */
  const char *vae_env;       /* $VAE_BLAS_CORETYPE: unset, "" or "auto" (the default), or "keep" */
  const char *reexec_marker; /* $VAE_BLAS_REEXECUTED: set by the re-execution, the core replaced */
} vae_blas_inputs;

typedef struct {
  vae_blas_action action;
  vae_blas_by by;
  const char *core;   /* REEXEC: the core to ask for */
  const char *better; /* KEEP and the others: a better core this CPU could run, or NULL */
} vae_blas_decision;

/* The decision, from nothing but its inputs: the re-executed process (marker set) never executes
 * again; then VAE_BLAS_CORETYPE, then the user's OPENBLAS_CORETYPE, then a static build, then a
 * generic core on a CPU with a better one: REEXEC. */
vae_blas_decision vae_blas_decide(const vae_blas_inputs *in);

/* Called first in main() of every program that computes (train, eval, sample, reconstruct, the
 * benchmarks), before MPI_Init and any BLAS call, with main's argv. May not return: execv of
 * /proc/self/exe with the same argv and environment plus OPENBLAS_CORETYPE and the marker. A bad
 * VAE_BLAS_CORETYPE ends the program with one "vae_mpi: error:" line (from the first rank only) and
 * status 1. If the execv fails the program goes on with OpenBLAS's kernels and says why.
 * Test hook: VAE_TEST_OPENBLAS_CORENAME=NAME makes the decision see NAME as OpenBLAS's core (an
 * OpenBLAS that does not know this CPU); what runs is always reported as OpenBLAS reports it. */
void vae_blas_select(char **argv);

/* "OpenBLAS 0.3.21, SkylakeX kernels (chosen: this OpenBLAS does not know the CPU and would use
 * Prescott)": library, version, the core in use and who chose it. */
const char *vae_blas_describe(void);
/* The same as JSON members for a metrics record (no braces):
 * "blas":"<describe>","blas_core":"SkylakeX","blas_core_by":"vae_mpi"|"openblas"|"user" */
const char *vae_blas_json(void);

#endif
