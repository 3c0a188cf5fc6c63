/* The whole lifecycle through the C ABI, plus one client shared by several threads.
 * Reads its database from TASKMANAGER_* environment variables (tm_client_open(NULL)): a server
 * database, or a SQLite file (TASKMANAGER_DB_PATH). */
#include <pthread.h>
#include "check.h"

static tm_client *client;

static void *worker_thread(void *arg) {
  long n = (long)arg;
  for (int i = 0; i < 25; i++) {
    char params[64];
    snprintf(params, sizeof params, "{\"thread\":%ld,\"i\":%d}", n, i);
    OK(tm_task_enqueue(client, "c.thread", params, NULL, NULL));
    char *claimed = NULL;
    OK(tm_task_claim(client, "thread-worker", "{\"types\":[\"c.thread\"]}", &claimed));
    long long id = json_int(claimed, "id");
    char token[80];
    if (id > 0 && json_str(claimed, "lease_token", token, sizeof token) == 0) {
      OK(tm_task_complete(client, id, token, "{\"ok\":true}", NULL));
    }
    tm_string_free(claimed);
  }
  return NULL;
}

int main(void) {
  char *out = NULL;
  CHECK(strcmp(tm_version(), TASKMANAGER_VERSION) == 0);

  OK(tm_client_open(NULL, &client));
  if (client == NULL) return 1;
  OK(tm_migrate(client));
  OK(tm_migrate(client)); /* idempotent */

  OK(tm_type_register(client,
                      "{\"name\":\"c.email\",\"version\":\"1.0.0\",\"param_schema\":{\"type\":\"object\","
                      "\"required\":[\"to\"],\"properties\":{\"to\":{\"type\":\"string\"}}}}",
                      &out));
  CHECK(contains(out, "\"name\":\"c.email\""));
  CHECK(contains(out, "\"is_active\":true"));
  tm_string_free(out);

  /* Enqueue, then the same params in another key order: the same task. */
  OK(tm_task_enqueue(client, "c.email", "{\"to\":\"a@example.com\",\"cc\":\"b\"}", "{\"priority\":3}", &out));
  long long id = json_int(out, "id");
  CHECK(id > 0);
  CHECK(contains(out, "\"deduplicated\":false"));
  tm_string_free(out);
  OK(tm_task_enqueue(client, "c.email", "{\"cc\":\"b\",\"to\":\"a@example.com\"}", NULL, &out));
  CHECK(json_int(out, "id") == id);
  CHECK(contains(out, "\"deduplicated\":true"));
  tm_string_free(out);

  /* Claim, heartbeat with progress, complete, and repeat the complete safely. */
  OK(tm_task_claim(client, "c-worker", "{\"limit\":5,\"lease_seconds\":60}", &out));
  CHECK(out[0] == '[');
  CHECK(json_int(out, "id") == id);
  CHECK(json_int(out, "attempts") == 1);
  CHECK(contains(out, "\"params\":{\"cc\":\"b\",\"to\":\"a@example.com\"}") || contains(out, "\"params\":{\"to\""));
  char token[80];
  CHECK(json_str(out, "lease_token", token, sizeof token) == 0);
  tm_string_free(out);
  OK(tm_task_heartbeat(client, id, token, "{\"progress\":50}", &out));
  CHECK(json_int(out, "progress") == 50);
  tm_string_free(out);
  OK(tm_task_complete(client, id, token, "{\"sent\":true,\"text\":\"Příliš žluťoučký kůň 🐎\"}", &out));
  CHECK(contains(out, "\"repeated\":false"));
  tm_string_free(out);
  OK(tm_task_complete(client, id, token, "{\"sent\":true}", &out));
  CHECK(contains(out, "\"repeated\":true"));
  tm_string_free(out);
  OK(tm_task_get(client, id, &out));
  CHECK(contains(out, "\"status\":\"completed\""));
  CHECK(contains(out, "žluťoučký kůň 🐎"));
  CHECK(json_int(out, "progress") == 100);
  tm_string_free(out);
  OK(tm_task_history(client, id, &out));
  CHECK(contains(out, "\"status_change\":\"created\""));
  CHECK(contains(out, "\"status_change\":\"progress\""));
  CHECK(contains(out, "\"status_change\":\"completed\""));
  tm_string_free(out);

  /* Fail with retry, then fail for good. */
  OK(tm_task_enqueue(client, "c.email", "{\"to\":\"retry@example.com\"}", "{\"max_attempts\":2}", &out));
  long long id2 = json_int(out, "id");
  tm_string_free(out);
  OK(tm_task_claim(client, "c-worker", NULL, &out));
  CHECK(json_int(out, "id") == id2);
  CHECK(json_str(out, "lease_token", token, sizeof token) == 0);
  tm_string_free(out);
  OK(tm_task_fail(client, id2, token, "smtp timeout", "{\"retry\":true,\"retry_in_seconds\":0}", &out));
  CHECK(contains(out, "\"status\":\"pending\""));
  CHECK(json_int(out, "attempts") == 1);
  tm_string_free(out);
  OK(tm_task_claim(client, "c-worker", NULL, &out));
  CHECK(json_int(out, "attempts") == 2);
  CHECK(json_str(out, "lease_token", token, sizeof token) == 0);
  tm_string_free(out);
  OK(tm_task_fail(client, id2, token, "still failing", NULL, &out));
  CHECK(contains(out, "\"status\":\"failed\""));
  tm_string_free(out);

  /* Release, cancel, retry, recover, list, stats, types. */
  OK(tm_task_enqueue(client, "c.email", "{\"to\":\"release@example.com\"}", NULL, &out));
  long long id3 = json_int(out, "id");
  tm_string_free(out);
  OK(tm_task_claim(client, "c-worker", NULL, &out));
  CHECK(json_str(out, "lease_token", token, sizeof token) == 0);
  tm_string_free(out);
  OK(tm_task_release(client, id3, token, NULL));
  OK(tm_task_cancel(client, id3, "no longer needed", &out));
  CHECK(contains(out, "\"status\":\"cancelled\""));
  tm_string_free(out);
  OK(tm_task_retry(client, id3, &out));
  CHECK(contains(out, "\"status\":\"pending\""));
  tm_string_free(out);
  /* Cancel by filter: a dry run, then for real, then the retry of what it cancelled (the
     server's: by_filter is left out on SQLite; the task is pending either way). */
  if (section("by_filter")) {
    OK(tm_tasks_cancel_where(client, "{\"type\":\"c.email\",\"status\":\"pending\"}", "{\"dry_run\":true}", &out));
    CHECK(contains(out, "\"dry_run\":true"));
    CHECK(json_int(out, "matched") == 1);
    tm_string_free(out);
    OK(tm_tasks_cancel_where(client, "{\"type\":\"c.email\",\"status\":\"pending\"}", "{\"reason\":\"bulk\"}", &out));
    CHECK(json_int(out, "matched") == 1 && !contains(out, "\"changed\":[]"));
    tm_string_free(out);
    OK(tm_tasks_retry_where(client, "{\"type\":\"c.email\",\"status\":\"cancelled\"}", NULL, &out));
    CHECK(json_int(out, "matched") == 1 && !contains(out, "\"changed\":[]"));
    tm_string_free(out);
  }
  OK(tm_task_claim(client, "c-worker", "{\"type_pattern\":\"C._MAIL\",\"limit\":5}", &out));
  CHECK(json_int(out, "id") == id3);
  CHECK(json_str(out, "lease_token", token, sizeof token) == 0);
  tm_string_free(out);
  OK(tm_task_release(client, id3, token, NULL));
  OK(tm_tasks_recover_expired(client, &out));
  CHECK(json_int(out, "recovered") == 0);
  tm_string_free(out);
  OK(tm_task_list(client, "{\"type\":\"c.email\",\"limit\":10}", &out));
  CHECK(json_int(out, "id") == id3); /* newest first */
  tm_string_free(out);
  OK(tm_stats(client, &out));
  CHECK(contains(out, "\"c.email\":{"));
  CHECK(json_int(out, "failed") == 1);
  tm_string_free(out);
  OK(tm_type_get(client, "c.email", &out));
  CHECK(contains(out, "\"version\":\"1.0.0\""));
  tm_string_free(out);
  OK(tm_type_list(client, &out));
  CHECK(out[0] == '[');
  tm_string_free(out);

  /* Batches. */
  OK(tm_task_enqueue_batch(client,
                           "[{\"type\":\"c.email\",\"params\":{\"to\":\"x1\"}},"
                           "{\"type\":\"c.email\",\"params\":{\"to\":\"x2\"},\"options\":{\"priority\":9}}]",
                           &out));
  CHECK(contains(out, "\"deduplicated\":false"));
  tm_string_free(out);
  OK(tm_task_claim(client, "batcher", "{\"limit\":2}", &out));
  long long first = json_int(out, "id");
  CHECK(json_str(out, "lease_token", token, sizeof token) == 0);
  tm_string_free(out);
  char items[256];
  snprintf(items, sizeof items, "[{\"id\":%lld,\"lease_token\":\"%s\",\"result\":1},{\"id\":%lld,\"lease_token\":\"stale\"}]",
           first, token, first + 100000);
  OK(tm_task_complete_batch(client, items, &out));
  CHECK(contains(out, "\"ok\":true"));
  CHECK(contains(out, "\"code\":\"TM_NOT_FOUND\""));
  tm_string_free(out);

  /* A caller without a lease token finishes as the worker id that claimed the task, in an
     order of its choosing. */
  OK(tm_type_register(client, "{\"name\":\"c.legacy\",\"param_schema\":{\"type\":\"object\"}}", NULL));
  OK(tm_task_enqueue(client, "c.legacy", "{\"n\":1}", "{\"priority\":1}", NULL));
  OK(tm_task_enqueue(client, "c.legacy", "{\"n\":2}", "{\"priority\":9}", NULL));
  OK(tm_task_claim(client, "c-legacy", "{\"types\":[\"c.legacy\"],\"sort_by\":\"priority\",\"sort_order\":\"asc\"}", &out));
  CHECK(contains(out, "\"params\":{\"n\":1}"));
  long long legacy = json_int(out, "id");
  tm_string_free(out);
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "c-legacy", "{\"sort_by\":\"name\"}", &out));
  FAILS_WITH(TM_LEASE_LOST, tm_task_complete_as_worker(client, legacy, "someone-else", NULL, &out));
  OK(tm_task_heartbeat_as_worker(client, legacy, "c-legacy", "{\"progress\":30}", &out));
  CHECK(json_int(out, "progress") == 30);
  tm_string_free(out);
  OK(tm_task_fail_as_worker(client, legacy, "c-legacy", "once", "{\"retry_in_seconds\":0}", &out));
  CHECK(contains(out, "\"status\":\"pending\""));
  tm_string_free(out);
  OK(tm_task_claim(client, "c-legacy", "{\"types\":[\"c.legacy\"],\"sort_by\":\"id\"}", &out));
  CHECK(json_int(out, "id") == legacy);
  tm_string_free(out);
  OK(tm_task_complete_as_worker(client, legacy, "c-legacy", "{\"ok\":true}", &out));
  CHECK(contains(out, "\"repeated\":false"));
  tm_string_free(out);
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete_as_worker(client, legacy, NULL, NULL, &out));

  /* Retention and metrics. */
  OK(tm_tasks_prune(client, "{\"older_than_seconds\":0,\"dry_run\":true}", &out));
  CHECK(contains(out, "\"dry_run\":true"));
  CHECK(json_int(out, "tasks") >= 1);
  tm_string_free(out);
  FAILS_WITH(TM_NULL_PARAMETER, tm_tasks_prune(client, NULL, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_tasks_prune(client, "{\"older_than_seconds\":0,\"statuses\":[\"claimed\"]}", &out));
  OK(tm_tasks_prune(client, "{\"older_than_seconds\":0,\"statuses\":[\"completed\"]}", &out));
  CHECK(contains(out, "\"done\":true"));
  tm_string_free(out);
  FAILS_WITH(TM_NOT_FOUND, tm_task_get(client, legacy, &out));
  OK(tm_stats_prometheus(client, &out));
  CHECK(contains(out, "# TYPE taskmanager_tasks gauge"));
  CHECK(contains(out, "taskmanager_tasks{type=\"c.legacy\",status=\"completed\"} 0"));
  tm_string_free(out);

  /* One handle, several threads. */
  OK(tm_type_register(client, "{\"name\":\"c.thread\",\"param_schema\":{\"type\":\"object\"}}", NULL));
  pthread_t threads[4];
  for (long t = 0; t < 4; t++) pthread_create(&threads[t], NULL, worker_thread, (void *)t);
  for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
  OK(tm_stats(client, &out));
  CHECK(contains(out, "\"c.thread\":{\"cancelled\":0,\"claimed\":0,\"completed\":100,\"failed\":0,\"pending\":0}"));
  tm_string_free(out);

  tm_client_free(client);
  exclusions_seen();
  if (failures) {
    fprintf(stderr, "test_lifecycle: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_lifecycle: ok\n");
  return 0;
}
