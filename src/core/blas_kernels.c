/* blas_kernels.c: picks OpenBLAS's kernel family when OpenBLAS itself fell back to a generic one, by
 * setting OPENBLAS_CORETYPE and re-executing the program; and describes what runs. OpenBLAS reads the
 * variable only when it is loaded (driver/others/dynamic.c, gotoblas_dynamic_init), so nothing short
 * of a new program image can change its choice. Never calls MPI (it runs before MPI_Init), never
 * executes the program twice (the marker), never chooses a core the CPU or the OS cannot run. */
#include "blas_kernels.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#define MARKER "VAE_BLAS_REEXECUTED"
#define HOOK "VAE_TEST_OPENBLAS_CORENAME"

/* ---- what the CPU runs ---- */

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xcr0(void) {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

unsigned vae_cpu_features(void) {
  unsigned a, b, c, d, f = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  /* AVX needs the OS to save the YMM state (OSXSAVE, then XCR0 bits 1-2); AVX-512 also the opmask
   * and ZMM state (XCR0 bits 5-7). Without them the instructions fault even where cpuid lists them. */
  if (!(c & bit_OSXSAVE)) return 0;
  unsigned long long x = xcr0();
  int ymm = (x & 0x6) == 0x6, zmm = ymm && (x & 0xe0) == 0xe0;
  if (ymm && (c & bit_AVX)) f |= VAE_CPU_AVX;
  if (ymm && (c & bit_FMA)) f |= VAE_CPU_FMA;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    if (ymm && (b & bit_AVX2)) f |= VAE_CPU_AVX2;
    if (zmm) {
      if (b & bit_AVX512F) f |= VAE_CPU_AVX512F;
      if (b & bit_AVX512CD) f |= VAE_CPU_AVX512CD;
      if (b & bit_AVX512BW) f |= VAE_CPU_AVX512BW;
      if (b & bit_AVX512DQ) f |= VAE_CPU_AVX512DQ;
      if (b & bit_AVX512VL) f |= VAE_CPU_AVX512VL;
    }
  }
  return f;
}
#else
unsigned vae_cpu_features(void) { return 0; }
#endif

const char *vae_blas_best_core(unsigned f) {
  const unsigned avx2 = VAE_CPU_AVX | VAE_CPU_AVX2 | VAE_CPU_FMA;
  if ((f & (avx2 | VAE_CPU_AVX512_SKX)) == (avx2 | VAE_CPU_AVX512_SKX)) return "SkylakeX";
  if ((f & avx2) == avx2) return "Haswell";
  if (f & VAE_CPU_AVX) return "Sandybridge";
  return NULL;
}

int vae_blas_core_is_generic(const char *core) {
  /* OpenBLAS 0.3.21's x86 cores (corename[] in dynamic.c) whose kernels use SSE only. */
  static const char *const sse[] = {"Unknown", "Katmai", "Coppermine", "Northwood",    "Prescott",
                                    "Banias",  "Atom",   "Core2",      "Penryn",       "Dunnington",
                                    "Nehalem", "Athlon", "Opteron",    "Opteron_SSE3", "Barcelona",
                                    "Nano",    "Bobcat"};
  if (!core) return 0;
  for (size_t i = 0; i < sizeof sse / sizeof sse[0]; i++)
    if (strcasecmp(core, sse[i]) == 0) return 1;
  return 0;
}

vae_blas_decision vae_blas_decide(const vae_blas_inputs *in) {
  vae_blas_decision d = {VAE_BLAS_LEAVE, VAE_BLAS_BY_OPENBLAS, NULL, NULL};
  const char *best = vae_blas_best_core(in->features);
  if (best && vae_blas_core_is_generic(in->core)) d.better = best;
  if (in->reexec_marker) { /* the re-executed process: whatever it finds, it never executes again */
    if (in->openblas_env) d.by = VAE_BLAS_BY_VAE;
    return d;
  }
  const char *v = in->vae_env;
  int keep = v && strcasecmp(v, "keep") == 0;
  if (v && *v && !keep && strcasecmp(v, "auto") != 0) {
    d.action = VAE_BLAS_INVALID;
    return d;
  }
  if (in->openblas_env) { /* set, even empty: OpenBLAS reads it as the user's request */
    d.by = VAE_BLAS_BY_USER;
    return d;
  }
  if (keep) {
    d.by = VAE_BLAS_BY_KEEP;
    return d;
  }
  if (!in->dynamic_arch) {
    d.by = VAE_BLAS_BY_STATIC;
    return d;
  }
  if (d.better) {
    d.action = VAE_BLAS_REEXEC;
    d.by = VAE_BLAS_BY_VAE;
    d.core = d.better;
  }
  return d;
}

/* ---- the start-up hook ---- */

static struct {
  int done;
  vae_blas_decision d;
  char exec_error[160]; /* why the re-execution did not happen, when it should have */
  char text[512], json[1024];
} state;

static vae_blas_inputs gather(void) {
  vae_blas_inputs in;
  const char *hook = getenv(HOOK);
  in.features = vae_cpu_features();
  in.core = hook && *hook ? hook : openblas_get_corename();
  in.dynamic_arch = strstr(openblas_get_config(), "DYNAMIC_ARCH") != NULL;
  in.openblas_env = getenv("OPENBLAS_CORETYPE");
  in.vae_env = getenv("VAE_BLAS_CORETYPE");
  in.reexec_marker = getenv(MARKER);
  return in;
}

/* The rank the launcher gave this process, before MPI is up (0 when not launched as a job). */
static int launcher_rank(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *s = getenv(vars[i]);
    if (s && *s) return atoi(s);
  }
  return 0;
}

void vae_blas_select(char **argv) {
  vae_blas_inputs in = gather();
  state.d = vae_blas_decide(&in);
  state.done = 1;
  if (state.d.action == VAE_BLAS_INVALID) {
    /* Every rank sees the same environment and stops here; one line, from the first (as
     * vae_dist_check: only it exits non-zero, so mpirun never cuts its line off). */
    int first = launcher_rank() == 0;
    if (first)
      fprintf(
          stderr,
          "vae_mpi: error: VAE_BLAS_CORETYPE=%.60s is not understood: use keep (leave OpenBLAS's kernels as they are) or auto (the default: vae_mpi picks them when OpenBLAS does not know the CPU); to force a kernel family set OPENBLAS_CORETYPE instead\n",
          in.vae_env);
    exit(first ? 1 : 0);
  }
  if (state.d.action != VAE_BLAS_REEXEC) return;
  /* The core OpenBLAS fell back to travels in the marker, for the re-executed process's report. */
  if (setenv(MARKER, in.core, 1) == 0 && setenv("OPENBLAS_CORETYPE", state.d.core, 1) == 0) {
    fflush(NULL);
    execv("/proc/self/exe", argv);
  }
  int e = errno;
  unsetenv(MARKER);
  unsetenv("OPENBLAS_CORETYPE");
  snprintf(state.exec_error, sizeof state.exec_error, "re-executing /proc/self/exe to select %s failed: %s",
           state.d.core, strerror(e));
  state.d.action = VAE_BLAS_LEAVE;
  state.d.by = VAE_BLAS_BY_OPENBLAS;
}

/* ---- the report ---- */

/* "OpenBLAS 0.3.21" from openblas_get_config() ("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."). */
static void library(char *buf, size_t n) {
  const char *c = openblas_get_config();
  const char *sp = strchr(c, ' ');
  size_t len = sp ? strcspn(sp + 1, " ") + (size_t)(sp - c) + 1 : strlen(c);
  snprintf(buf, n, "%.*s", (int)(len < 64 ? len : 64), c);
}

static void why(char *buf, size_t n, const char *core) {
  const vae_blas_decision *d = &state.d;
  const char *env = getenv("OPENBLAS_CORETYPE"), *from = getenv(MARKER);
  int same = env && strcasecmp(env, core) == 0;
  switch (d->by) {
    case VAE_BLAS_BY_VAE:
      if (same)
        snprintf(buf, n, "chosen: this OpenBLAS does not know the CPU and would use %.40s",
                 from ? from : "?");
      else
        snprintf(buf, n, "vae_mpi asked for %.40s, which this OpenBLAS does not have; it would use %.40s",
                 env ? env : "?", from ? from : "?");
      break;
    case VAE_BLAS_BY_USER:
      snprintf(buf, n, "OPENBLAS_CORETYPE=%.40s%s", env ? env : "",
               same ? "" : ", which this OpenBLAS does not know");
      break;
    case VAE_BLAS_BY_KEEP:
      if (d->better)
        snprintf(buf, n, "VAE_BLAS_CORETYPE=keep; this CPU could run %s", d->better);
      else
        snprintf(buf, n, "VAE_BLAS_CORETYPE=keep: OpenBLAS's own choice");
      break;
    case VAE_BLAS_BY_STATIC:
      snprintf(buf, n, "an OpenBLAS built for one CPU family: OPENBLAS_CORETYPE has no effect");
      break;
    default:
      if (state.exec_error[0])
        snprintf(buf, n, "this OpenBLAS does not know the CPU; %s", state.exec_error);
      else if (d->better)
        snprintf(buf, n, "OpenBLAS's own choice; this CPU could run %s", d->better);
      else
        snprintf(buf, n, "OpenBLAS's own choice");
  }
}

/* JSON string body: quotes, backslashes and control characters escaped (the user's variable may
 * hold anything). */
static void json_escape(char *out, size_t n, const char *s) {
  size_t o = 0;
  for (; *s && o + 7 < n; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      o += (size_t)snprintf(out + o, n - o, "\\%c", ch);
    else if (ch < 0x20)
      o += (size_t)snprintf(out + o, n - o, "\\u%04x", ch);
    else
      out[o++] = (char)ch;
  }
  out[o] = '\0';
}

static void report(void) {
  if (!state.done) { /* a program that never called vae_blas_select: describe, change nothing */
    vae_blas_inputs in = gather();
    state.d = vae_blas_decide(&in);
    if (state.d.action != VAE_BLAS_LEAVE) state.d.action = VAE_BLAS_LEAVE, state.d.by = VAE_BLAS_BY_OPENBLAS;
    state.done = 1;
  }
  char lib[80], reason[320], esc[700];
  const char *core = openblas_get_corename();
  library(lib, sizeof lib);
  why(reason, sizeof reason, core);
  snprintf(state.text, sizeof state.text, "%s, %s kernels (%s)", lib, core, reason);
  json_escape(esc, sizeof esc, state.text);
  const char *by = state.d.by == VAE_BLAS_BY_VAE    ? "vae_mpi"
                   : state.d.by == VAE_BLAS_BY_USER ? "user"
                                                    : "openblas";
  snprintf(state.json, sizeof state.json, "\"blas\":\"%s\",\"blas_core\":\"%s\",\"blas_core_by\":\"%s\"", esc,
           core, by);
}

const char *vae_blas_describe(void) {
  if (!state.text[0]) report();
  return state.text;
}

const char *vae_blas_json(void) {
  if (!state.json[0]) report();
  return state.json;
}
