/* Flow control through the C ABI: pausing and resuming a type (also until a given time), its
 * limits (max_running, a rate) and the errors that name their field, a claim with a report
 * that says when a held-back type may start again, and a claim that waits. Reads its
 * database from TASKMANAGER_*. */
#include "check.h"
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How many times needle occurs in haystack. */
static int occurrences(const char *haystack, const char *needle) {
  int n = 0;
  for (const char *at = haystack; at && (at = strstr(at, needle)) != NULL; at += strlen(needle)) n++;
  return n;
}

/* Claims with options_json; returns the answer (free with tm_string_free), NULL on error. */
static char *claim(tm_client *client, const char *options_json) {
  char *out = NULL;
  OK(tm_task_claim(client, "c.worker", options_json, &out));
  return out;
}

int main(void) {
  tm_client *client = NULL;
  char *out = NULL;
  OK(tm_client_open(NULL, &client));
  if (client == NULL) return 1;
  OK(tm_migrate(client));
  OK(tm_type_register(client, "{\"name\":\"c.flow\",\"param_schema\":{\"type\":\"object\"}}", NULL));
  OK(tm_type_register(client, "{\"name\":\"c.other\",\"param_schema\":{\"type\":\"object\"}}", NULL));
  OK(tm_task_enqueue(client, "c.flow", "{\"n\":1}", NULL, NULL));
  OK(tm_task_enqueue(client, "c.flow", "{\"n\":2}", NULL, NULL));
  OK(tm_task_enqueue(client, "c.other", "{\"n\":1}", NULL, NULL));
  const char *flow_only = "{\"types\":[\"c.flow\"],\"limit\":10}";

  /* Paused: the type keeps accepting tasks, claims leave them alone until it is resumed. */
  OK(tm_type_pause(client, "c.flow", NULL, &out));
  CHECK(contains(out, "\"name\":\"c.flow\""));
  CHECK(contains(out, "\"paused\":true"));
  CHECK(contains(out, "\"paused_until\":null"));
  tm_string_free(out);
  OK(tm_task_enqueue(client, "c.flow", "{\"n\":3}", NULL, NULL));
  out = claim(client, flow_only);
  CHECK(out && strcmp(out, "[]") == 0);
  tm_string_free(out);
  OK(tm_stats(client, &out));
  CHECK(contains(out, "\"flow\":{\"c.flow\":{\"paused\":true"));
  tm_string_free(out);
  OK(tm_type_resume(client, "c.flow", &out));
  CHECK(contains(out, "\"paused\":false"));
  tm_string_free(out);

  /* A pause with an end: the type's tasks wait, others are claimed, and the report names the
   * end as the moment the type may start again. */
  char until[32], options[96], needle[64];
  time_t in_an_hour = time(NULL) + 3600;
  struct tm utc;
  gmtime_r(&in_an_hour, &utc);
  strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &utc);
  snprintf(options, sizeof options, "{\"until\":\"%s\"}", until);
  OK(tm_type_pause(client, "c.flow", options, &out));
  snprintf(needle, sizeof needle, "\"paused_until\":\"%.19s", until);
  CHECK(contains(out, needle));
  tm_string_free(out);
  out = claim(client, "{\"limit\":10,\"report\":true}");
  CHECK(out && strncmp(out, "{\"tasks\":[", 10) == 0);
  CHECK(occurrences(out, "\"lease_token\"") == 1);
  CHECK(contains(out, "\"type\":\"c.other\""));
  snprintf(needle, sizeof needle, "\"next_allowed_at\":\"%.19s", until);
  CHECK(contains(out, needle));
  tm_string_free(out);
  OK(tm_type_resume(client, "c.flow", NULL));

  /* max_running 1: one task of the type at a time; completing it frees the slot. */
  OK(tm_type_set_limits(client, "c.flow", "{\"max_running\":1}", &out));
  CHECK(contains(out, "\"max_running\":1"));
  CHECK(contains(out, "\"rate\":null"));
  CHECK(contains(out, "\"paused\":false"));
  tm_string_free(out);
  out = claim(client, flow_only);
  CHECK(occurrences(out, "\"lease_token\"") == 1);
  long long id = json_int(out, "id");
  char token[80] = "";
  CHECK(json_str(out, "lease_token", token, sizeof token) == 0);
  tm_string_free(out);
  out = claim(client, flow_only);
  CHECK(out && strcmp(out, "[]") == 0);
  tm_string_free(out);
  /* A type held back by max_running has no time to report: a slot comes back when a task ends. */
  out = claim(client, "{\"types\":[\"c.flow\"],\"report\":true}");
  CHECK(contains(out, "\"tasks\":[]"));
  CHECK(contains(out, "\"next_allowed_at\":null"));
  tm_string_free(out);
  OK(tm_task_complete(client, id, token, NULL, NULL));
  out = claim(client, flow_only);
  CHECK(occurrences(out, "\"lease_token\"") == 1);
  tm_string_free(out);

  /* A rate of 1 a minute instead: one start, then the report says when the next of its
   * runnable tasks may start. */
  OK(tm_task_enqueue(client, "c.flow", "{\"n\":4}", NULL, NULL));
  OK(tm_type_set_limits(client, "c.flow", "{\"max_running\":null,\"rate\":{\"limit\":1,\"per_seconds\":60}}", &out));
  CHECK(contains(out, "\"max_running\":null"));
  CHECK(contains(out, "\"rate\":{\"limit\":1,\"per_seconds\":60,\"burst\":0}"));
  tm_string_free(out);
  out = claim(client, "{\"types\":[\"c.flow\"],\"limit\":10,\"report\":true}");
  CHECK(occurrences(out, "\"lease_token\"") == 1);
  tm_string_free(out);
  out = claim(client, "{\"types\":[\"c.flow\"],\"limit\":10,\"report\":true}");
  CHECK(contains(out, "\"tasks\":[]"));
  CHECK(contains(out, "\"next_allowed_at\":\"20"));
  tm_string_free(out);

  /* A waiting claim: the type's task may not start yet, so it answers [] at its deadline ... */
  double started = now_seconds();
  out = claim(client, "{\"types\":[\"c.flow\"],\"wait_seconds\":0.2}");
  double waited = now_seconds() - started;
  CHECK(out && strcmp(out, "[]") == 0);
  CHECK(waited >= 0.19 && waited < 5.0);
  tm_string_free(out);
  /* ... and a task enqueued in this process wakes it at once. */
  OK(tm_task_enqueue(client, "c.other", "{\"n\":2}", NULL, NULL));
  out = claim(client, "{\"types\":[\"c.other\"],\"wait_seconds\":0.2}");
  CHECK(occurrences(out, "\"lease_token\"") == 1);
  tm_string_free(out);

  /* Each bad limit is TM_INVALID_ARGUMENT whose message and details name the field, and changes
   * nothing. */
  const char *bad[][2] = {
      {"{\"max_running\":0}", "max_running"},
      {"{\"max_running\":-1}", "max_running"},
      {"{\"max_running\":100001}", "max_running"},
      {"{\"max_running\":1.5}", "max_running"},
      {"{\"max_running\":\"2\"}", "max_running"},
      {"{\"rate\":{\"limit\":0,\"per_seconds\":1}}", "rate.limit"},
      {"{\"rate\":{\"limit\":1000001,\"per_seconds\":1}}", "rate.limit"},
      {"{\"rate\":{\"limit\":5}}", "rate.per_seconds"},
      {"{\"rate\":{\"limit\":5,\"per_seconds\":0}}", "rate.per_seconds"},
      {"{\"rate\":{\"limit\":5,\"per_seconds\":31536001}}", "rate.per_seconds"},
      {"{\"rate\":{\"limit\":5,\"per_seconds\":60,\"burst\":-1}}", "rate.burst"},
      {"{\"rate\":{\"limit\":5,\"per_seconds\":60,\"extra\":1}}", "extra"},
      {"{\"rate\":5}", "rate"},
      {"{\"max_runing\":2}", "max_runing"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    out = NULL;
    tm_error *e = tm_type_set_limits(client, "c.flow", bad[i][0], &out);
    CHECK(e != NULL);
    CHECK(out == NULL);
    if (e) {
      const char *details = tm_error_details(e);
      if (tm_error_code(e) != TM_INVALID_ARGUMENT || !contains(tm_error_message(e), bad[i][1]) ||
          details == NULL || !contains(details, "\"field\"")) {
        fprintf(stderr, "%s: code %d: %s (expected the field %s)\n", bad[i][0],
                (int)tm_error_code(e), tm_error_message(e), bad[i][1]);
        failures++;
      }
      tm_error_free(e);
    }
  }
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_type_set_limits(client, "c.flow", "[]", NULL));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_type_set_limits(client, "c.flow", "{", NULL));
  OK(tm_type_get(client, "c.flow", &out));
  CHECK(contains(out, "\"max_running\":null"));
  CHECK(contains(out, "\"rate\":{\"limit\":1,\"per_seconds\":60,\"burst\":0}"));
  tm_string_free(out);

  const char *bad_pauses[] = {"{\"until\":\"2000-01-01T00:00:00Z\"}", "{\"until\":\"2099-01-01T00:00:00Z\"}",
                              "{\"until\":\"tomorrow\"}"};
  for (size_t i = 0; i < sizeof bad_pauses / sizeof bad_pauses[0]; i++) {
    tm_error *e = tm_type_pause(client, "c.flow", bad_pauses[i], NULL);
    CHECK(e != NULL);
    if (e) {
      CHECK(tm_error_code(e) == TM_INVALID_ARGUMENT);
      CHECK(contains(tm_error_message(e), "until"));
      tm_error_free(e);
    }
  }
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_type_pause(client, "c.flow", "{\"until\":1,\"why\":2}", NULL));
  tm_error *e = tm_task_claim(client, "c.worker", "{\"wait_seconds\":61}", NULL);
  CHECK(e != NULL);
  if (e) {
    CHECK(tm_error_code(e) == TM_INVALID_ARGUMENT);
    CHECK(contains(tm_error_message(e), "wait_seconds"));
    tm_error_free(e);
  }
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "c.worker", "{\"wait_seconds\":-1}", NULL));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "c.worker", "{\"report\":\"yes\"}", NULL));

  /* Unknown types and missing arguments. */
  FAILS_WITH(TM_NOT_FOUND, tm_type_pause(client, "c.none", NULL, NULL));
  FAILS_WITH(TM_NOT_FOUND, tm_type_resume(client, "c.none", NULL));
  FAILS_WITH(TM_NOT_FOUND, tm_type_set_limits(client, "c.none", "{\"max_running\":1}", NULL));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_pause(client, NULL, NULL, NULL));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_resume(client, NULL, NULL));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_set_limits(client, "c.flow", NULL, NULL));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_set_limits(NULL, "c.flow", "{}", NULL));

  tm_client_free(client);
  if (failures) {
    fprintf(stderr, "test_flow: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_flow: all passed\n");
  return 0;
}
