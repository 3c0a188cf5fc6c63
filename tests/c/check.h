/* Tiny helpers shared by the C tests: assertions that report the failing line, and just
 * enough JSON picking to read ids and tokens out of the library's output. */
#ifndef TM_TEST_CHECK_H
#define TM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "taskmanager.h"

static int failures = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                            \
    }                                                                        \
  } while (0)

/* Fails the test (and frees the error) unless err is NULL. */
#define OK(call)                                                               \
  do {                                                                         \
    tm_error *e_ = (call);                                                     \
    if (e_ != NULL) {                                                          \
      fprintf(stderr, "%s:%d: %s failed: code %d: %s\n", __FILE__, __LINE__,   \
              #call, (int)tm_error_code(e_), tm_error_message(e_));            \
      tm_error_free(e_);                                                       \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* Checks that call fails with the expected code; frees the error. */
#define FAILS_WITH(expected, call)                                             \
  do {                                                                         \
    tm_error *e_ = (call);                                                     \
    if (e_ == NULL) {                                                          \
      fprintf(stderr, "%s:%d: %s succeeded, expected %s\n", __FILE__, __LINE__, \
              #call, #expected);                                               \
      failures++;                                                              \
    } else {                                                                   \
      if (tm_error_code(e_) != (expected)) {                                   \
        fprintf(stderr, "%s:%d: %s gave code %d (%s), expected %s\n", __FILE__, \
                __LINE__, #call, (int)tm_error_code(e_), tm_error_message(e_), \
                #expected);                                                    \
        failures++;                                                            \
      }                                                                        \
      CHECK(strlen(tm_error_message(e_)) > 0);                                 \
      tm_error_free(e_);                                                       \
    }                                                                          \
  } while (0)

/* The integer after "key": in json, or -1. */
static long long json_int(const char *json, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = json ? strstr(json, pattern) : NULL;
  return at ? strtoll(at + strlen(pattern), NULL, 10) : -1;
}

/* Copies the string after "key": in json into out (size n); returns 0 when found. */
static int json_str(const char *json, const char *key, char *out, size_t n) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  const char *at = json ? strstr(json, pattern) : NULL;
  if (!at) return -1;
  at += strlen(pattern);
  const char *end = strchr(at, '"');
  if (!end || (size_t)(end - at) >= n) return -1;
  memcpy(out, at, (size_t)(end - at));
  out[end - at] = '\0';
  return 0;
}

static int contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

#endif
