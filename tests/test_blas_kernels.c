/* test_blas_kernels.c: the kernel choice (blas_kernels.h) as a pure function over tables of CPU
 * features, OpenBLAS core names and environments; the cpuid reading against the kernel's own view
 * (/proc/cpuinfo flags); the report's form for this process. */
#include "blas_kernels.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define SKX (VAE_CPU_AVX | VAE_CPU_FMA | VAE_CPU_AVX2 | VAE_CPU_AVX512_SKX)
#define HSW (VAE_CPU_AVX | VAE_CPU_FMA | VAE_CPU_AVX2)
#define SNB (VAE_CPU_AVX)

typedef struct {
  const char *what;
  vae_blas_inputs in;
  vae_blas_action action;
  vae_blas_by by;
  const char *core;   /* REEXEC's core, or NULL */
  const char *better; /* the decision's better core, or NULL */
} decide_case;

static int same(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }
static const char *str(const char *s) { return s ? s : "(null)"; }

static void decisions(void) {
  /* features, core, dynamic, $OPENBLAS_CORETYPE, $VAE_BLAS_CORETYPE, marker */
  const decide_case cases[] = {
      {"AVX-512 CPU on Prescott (0.3.21 on an unknown Intel model)",
       {SKX, "Prescott", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "SkylakeX",
       "SkylakeX"},
      {"AVX2 CPU on Prescott",
       {HSW, "Prescott", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "Haswell",
       "Haswell"},
      {"AVX CPU on Core2",
       {SNB, "Core2", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "Sandybridge",
       "Sandybridge"},
      {"AVX-512 CPU on Katmai, lower case",
       {SKX, "katmai", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "SkylakeX",
       "SkylakeX"},
      {"AVX-512 CPU on Nehalem",
       {SKX, "Nehalem", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "SkylakeX",
       "SkylakeX"},
      {"AVX-512 CPU on Unknown",
       {SKX, "Unknown", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "SkylakeX",
       "SkylakeX"},
      {"Knights Landing (AVX-512 F+CD, no BW/DQ/VL) on Prescott",
       {HSW | VAE_CPU_AVX512F | VAE_CPU_AVX512CD, "Prescott", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "Haswell",
       "Haswell"},
      {"AVX-512 without VL on Prescott",
       {SKX & ~VAE_CPU_AVX512VL, "Prescott", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "Haswell",
       "Haswell"},
      {"AVX2 without FMA (a VM hiding it)",
       {VAE_CPU_AVX | VAE_CPU_AVX2, "Prescott", 1, NULL, NULL, NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "Sandybridge",
       "Sandybridge"},
      {"no AVX (or an OS without the YMM state): Prescott is right",
       {0, "Prescott", 1, NULL, NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       NULL},
      {"AVX-512 CPU that OpenBLAS knows",
       {SKX, "SkylakeX", 1, NULL, NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       NULL},
      {"Cooperlake (0.3.21's own choice for AVX-512 BF16)",
       {SKX, "Cooperlake", 1, NULL, NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       NULL},
      {"Haswell on an AVX-512 CPU is OpenBLAS's considered choice, not a fallback",
       {SKX, "Haswell", 1, NULL, NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       NULL},
      {"Zen on Zen", {HSW, "Zen", 1, NULL, NULL, NULL}, VAE_BLAS_LEAVE, VAE_BLAS_BY_OPENBLAS, NULL, NULL},
      {"Excavator",
       {HSW, "Excavator", 1, NULL, NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       NULL},
      {"no core name", {SKX, NULL, 1, NULL, NULL, NULL}, VAE_BLAS_LEAVE, VAE_BLAS_BY_OPENBLAS, NULL, NULL},
      {"the user's OPENBLAS_CORETYPE",
       {SKX, "Prescott", 1, "Prescott", NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_USER,
       NULL,
       "SkylakeX"},
      {"the user's OPENBLAS_CORETYPE, empty",
       {SKX, "Prescott", 1, "", NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_USER,
       NULL,
       "SkylakeX"},
      {"keep", {SKX, "Prescott", 1, NULL, "keep", NULL}, VAE_BLAS_LEAVE, VAE_BLAS_BY_KEEP, NULL, "SkylakeX"},
      {"KEEP", {SKX, "Prescott", 1, NULL, "KEEP", NULL}, VAE_BLAS_LEAVE, VAE_BLAS_BY_KEEP, NULL, "SkylakeX"},
      {"keep and the user's variable: the user's",
       {SKX, "Prescott", 1, "Haswell", "keep", NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_USER,
       NULL,
       "SkylakeX"},
      {"auto",
       {SKX, "Prescott", 1, NULL, "auto", NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "SkylakeX",
       "SkylakeX"},
      {"empty VAE_BLAS_CORETYPE is auto",
       {SKX, "Prescott", 1, NULL, "", NULL},
       VAE_BLAS_REEXEC,
       VAE_BLAS_BY_VAE,
       "SkylakeX",
       "SkylakeX"},
      {"a meaningless VAE_BLAS_CORETYPE",
       {SKX, "Prescott", 1, NULL, "SkylakeX", NULL},
       VAE_BLAS_INVALID,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       "SkylakeX"},
      {"a meaningless VAE_BLAS_CORETYPE beside the user's variable",
       {SKX, "Zen", 1, "Zen", "yes", NULL},
       VAE_BLAS_INVALID,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       NULL},
      {"re-executed: never again, even if OpenBLAS still reports Prescott",
       {SKX, "Prescott", 1, "SkylakeX", NULL, "Prescott"},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_VAE,
       NULL,
       "SkylakeX"},
      {"re-executed, with any VAE_BLAS_CORETYPE",
       {SKX, "Prescott", 1, "SkylakeX", "nonsense", "Prescott"},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_VAE,
       NULL,
       "SkylakeX"},
      {"a marker without OPENBLAS_CORETYPE (removed since): still no second execution",
       {SKX, "Prescott", 1, NULL, NULL, "Prescott"},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_OPENBLAS,
       NULL,
       "SkylakeX"},
      {"an OpenBLAS without DYNAMIC_ARCH ignores OPENBLAS_CORETYPE",
       {SKX, "Prescott", 0, NULL, NULL, NULL},
       VAE_BLAS_LEAVE,
       VAE_BLAS_BY_STATIC,
       NULL,
       "SkylakeX"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const decide_case *c = &cases[i];
    vae_blas_decision d = vae_blas_decide(&c->in);
    CHECK(d.action == c->action && d.by == c->by && same(d.core, c->core) && same(d.better, c->better),
          "%s: action %d by %d core %s better %s; expected %d %d %s %s", c->what, d.action, d.by, str(d.core),
          str(d.better), c->action, c->by, str(c->core), str(c->better));
  }
}

static void cores(void) {
  /* OpenBLAS 0.3.21's x86 corename[] (driver/others/dynamic.c): which of them are SSE-only. */
  const char *sse[] = {"Katmai",       "Coppermine", "Northwood",  "Prescott", "Banias", "Atom",
                       "Core2",        "Penryn",     "Dunnington", "Nehalem",  "Athlon", "Opteron",
                       "Opteron_SSE3", "Barcelona",  "Nano",       "Bobcat",   "Unknown"};
  const char *avx[] = {"Sandybridge", "Bulldozer", "Piledriver", "Haswell",    "Steamroller",
                       "Excavator",   "Zen",       "SkylakeX",   "Cooperlake", "SapphireRapids"};
  for (size_t i = 0; i < sizeof sse / sizeof sse[0]; i++)
    CHECK(vae_blas_core_is_generic(sse[i]), "%s is a pre-AVX core", sse[i]);
  for (size_t i = 0; i < sizeof avx / sizeof avx[0]; i++)
    CHECK(!vae_blas_core_is_generic(avx[i]), "%s is not a pre-AVX core", avx[i]);
  CHECK(!vae_blas_core_is_generic("Prescott2"), "no prefix matches");
  CHECK(same(vae_blas_best_core(SKX), "SkylakeX") && same(vae_blas_best_core(HSW), "Haswell") &&
            same(vae_blas_best_core(SNB), "Sandybridge") && vae_blas_best_core(0) == NULL,
        "best cores %s %s %s", str(vae_blas_best_core(SKX)), str(vae_blas_best_core(HSW)),
        str(vae_blas_best_core(SNB)));
  /* AVX-512 flags without the AVX state cannot happen in vae_cpu_features, but the table is safe. */
  CHECK(vae_blas_best_core(VAE_CPU_AVX512_SKX) == NULL, "AVX-512 bits alone: %s",
        str(vae_blas_best_core(VAE_CPU_AVX512_SKX)));
}

/* The kernel's flags line: it lists avx / avx512* only when it saves that state (XSAVE enabled). */
static int cpuinfo_has(const char *line, const char *flag) {
  size_t n = strlen(flag);
  for (const char *p = strstr(line, flag); p; p = strstr(p + 1, flag))
    if (p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0')) return 1;
  return 0;
}

static void features(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  CHECK(f != NULL, "/proc/cpuinfo");
  if (!f) return;
  char line[8192];
  int found = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "flags", 5) == 0) {
      found = 1;
      break;
    }
  fclose(f);
  CHECK(found, "no flags line in /proc/cpuinfo");
  if (!found) return;
  const struct {
    unsigned bit;
    const char *flag;
  } map[] = {{VAE_CPU_AVX, "avx"},           {VAE_CPU_FMA, "fma"},           {VAE_CPU_AVX2, "avx2"},
             {VAE_CPU_AVX512F, "avx512f"},   {VAE_CPU_AVX512CD, "avx512cd"}, {VAE_CPU_AVX512BW, "avx512bw"},
             {VAE_CPU_AVX512DQ, "avx512dq"}, {VAE_CPU_AVX512VL, "avx512vl"}};
  unsigned mine = vae_cpu_features();
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    CHECK(!!(mine & map[i].bit) == cpuinfo_has(line, map[i].flag), "%s: cpuid %d, /proc/cpuinfo %d",
          map[i].flag, !!(mine & map[i].bit), cpuinfo_has(line, map[i].flag));
  printf("this CPU: features 0x%x, best core %s, OpenBLAS reports %s\n", mine, str(vae_blas_best_core(mine)),
         openblas_get_corename());
}

static void report(void) {
  /* This process never called vae_blas_select: the report describes, and changes nothing. */
  const char *text = vae_blas_describe(), *json = vae_blas_json(), *core = openblas_get_corename();
  char want[128], want_json[128];
  snprintf(want, sizeof want, ", %s kernels (", core);
  snprintf(want_json, sizeof want_json, "\"blas_core\":\"%s\"", core);
  CHECK(strncmp(text, "OpenBLAS 0.", 11) == 0 && strstr(text, want) && text[strlen(text) - 1] == ')', "%s",
        text);
  CHECK(strncmp(json, "\"blas\":\"OpenBLAS 0.", 19) == 0 && strstr(json, want_json) &&
            strstr(json, "\"blas_core_by\":\""),
        "%s", json);
  printf("%s\n", text);
}

int main(void) {
  decisions();
  cores();
  features();
  report();
  return check_done("test_blas_kernels");
}
