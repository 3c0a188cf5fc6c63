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

/* Sections a runner leaves out by name: TM_TEST_EXCLUDE="name,name" (tests/c/run sets and
 * prints it: on SQLite, the sections about the server alone). section(name) says whether the
 * section runs, and says so when it does not; exclusions_seen() fails the program when the
 * runner named a section it does not have, so a misspelt name cannot leave a test running
 * unnoticed or out unnoticed. */
static const char *sections_seen[32];
static int sections_count = 0;

static inline int listed(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *at = list; at && *at;) {
    const char *end = strchr(at, ',');
    size_t len = end ? (size_t)(end - at) : strlen(at);
    if (len == n && strncmp(at, name, n) == 0) return 1;
    at = end ? end + 1 : NULL;
  }
  return 0;
}

static inline int section(const char *name) {
  if (sections_count < 32) sections_seen[sections_count++] = name;
  const char *excluded = getenv("TM_TEST_EXCLUDE");
  if (excluded && listed(excluded, name)) {
    printf("  section %s: left out by the runner\n", name);
    return 0;
  }
  return 1;
}

static inline void exclusions_seen(void) {
  const char *excluded = getenv("TM_TEST_EXCLUDE");
  for (const char *at = excluded; at && *at;) {
    const char *end = strchr(at, ',');
    size_t len = end ? (size_t)(end - at) : strlen(at);
    int found = 0;
    for (int i = 0; i < sections_count; i++) {
      if (strlen(sections_seen[i]) == len && strncmp(sections_seen[i], at, len) == 0) found = 1;
    }
    if (!found) {
      fprintf(stderr, "TM_TEST_EXCLUDE names %.*s, which is no section of this program\n", (int)len, at);
      failures++;
    }
    at = end ? end + 1 : NULL;
  }
}

#endif
