/* check.h: the assertions every C test uses. A failed check prints where and why and makes the test
 * exit non-zero through check_done(); a test that checks nothing fails too. */
#ifndef VAE_TEST_CHECK_H
#define VAE_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_count_ = 0, check_failed_ = 0;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    check_count_++;                                                   \
    if (!(cond)) {                                                    \
      check_failed_++;                                                \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fputc('\n', stderr);                                            \
    }                                                                 \
  } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, rtol, atol)                                                         \
  do {                                                                                        \
    double a_ = (double)(a), b_ = (double)(b);                                                \
    CHECK(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_), "%s = %.9g, %s = %.9g", #a, a_, #b, b_); \
  } while (0)

/* Prints the tally and returns the exit status for main. */
static inline int check_done(const char *name) {
  if (check_count_ == 0) {
    fprintf(stderr, "%s: no checks ran\n", name);
    return 1;
  }
  printf("%s: %d checks, %d failed\n", name, check_count_, check_failed_);
  return check_failed_ ? 1 : 0;
}

#endif
