/* Every error a caller can trigger through the C ABI: the documented code, a message, no
 * crash, no leak (run under valgrind), and outputs left untouched on failure.
 * Needs TASKMANAGER_* for a migrated-on-the-fly database and TM_TEST_EMPTY_DB naming an
 * empty database on the same server; or, on SQLite, TASKMANAGER_DB_PATH and TM_TEST_EMPTY_DB
 * naming files. The sections about the server alone (server_login, by_filter, privileges)
 * are left out on SQLite by tests/c/run. */
#include "check.h"

#define SENTINEL ((char *)0x1)

static char *config_for(const char *db_name, const char *extra) {
  static char buf[1024];
  if (getenv("TASKMANAGER_DB_PATH")) { /* the embedded engine: db_name is a file */
    snprintf(buf, sizeof buf, "{\"db_path\":\"%s\"%s}", db_name, extra);
    return buf;
  }
  const char *host = getenv("TASKMANAGER_DB_HOST");
  const char *port = getenv("TASKMANAGER_DB_PORT");
  const char *user = getenv("TASKMANAGER_DB_USER");
  const char *pass = getenv("TASKMANAGER_DB_PASS");
  snprintf(buf, sizeof buf, "{\"db_host\":\"%s\",\"db_port\":%s,\"db_user\":\"%s\",\"db_pass\":\"%s\",\"db_name\":\"%s\"%s}",
           host ? host : "127.0.0.1", port ? port : "3306", user ? user : "root", pass ? pass : "", db_name, extra);
  return buf;
}

int main(void) {
  tm_client *client = NULL;
  char *out = SENTINEL;
  const char *db = getenv("TASKMANAGER_DB_PATH") ? getenv("TASKMANAGER_DB_PATH") : getenv("TASKMANAGER_DB_NAME");
  const char *empty_db = getenv("TM_TEST_EMPTY_DB");
  if (!db || !empty_db) {
    fprintf(stderr, "set TASKMANAGER_DB_NAME (or TASKMANAGER_DB_PATH) and TM_TEST_EMPTY_DB\n");
    return 2;
  }

  /* Freeing NULL is always fine; NULL errors read as TM_OK. */
  tm_error_free(NULL);
  tm_string_free(NULL);
  tm_client_free(NULL);
  CHECK(tm_error_code(NULL) == TM_OK);
  CHECK(strcmp(tm_error_message(NULL), "") == 0);
  CHECK(tm_error_details(NULL) == NULL);

  /* TM_CONFIG: bad settings, and credentials the server refuses (password never echoed). */
  FAILS_WITH(TM_CONFIG, tm_client_open("{\"db_user\":\"root\"}", &client));
  FAILS_WITH(TM_CONFIG, tm_client_open("{\"db_nme\":\"x\"}", &client));
  FAILS_WITH(TM_CONFIG, tm_client_open("[1,2]", &client));
  FAILS_WITH(TM_CONFIG, tm_client_open("{\"database_url\":\"postgres://u:p@h/d\"}", &client));
  /* The server's refusals: credentials (the password never echoed), and nothing listening. */
  if (section("server_login")) {
    tm_error *e = tm_client_open(config_for(db, ",\"db_user\":\"nobody-here\",\"db_pass\":\"S3cr3t-pw\""), &client);
    CHECK(tm_error_code(e) == TM_CONFIG);
    CHECK(!contains(tm_error_message(e), "S3cr3t-pw"));
    CHECK(!contains(tm_error_details(e), "S3cr3t-pw"));
    tm_error_free(e);
    CHECK(client == NULL);

    FAILS_WITH(TM_CONNECTION, tm_client_open(config_for(db, ",\"db_port\":1,\"connect_timeout\":2"), &client));
    CHECK(client == NULL);
  }

  /* TM_NULL_PARAMETER on every required pointer. */
  FAILS_WITH(TM_NULL_PARAMETER, tm_client_open(NULL, NULL));
  FAILS_WITH(TM_NULL_PARAMETER, tm_migrate(NULL));
  /* ... and a NULL client on every call that takes one. */
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_register(NULL, "{}", &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_get(NULL, "t", &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_list(NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_set_active(NULL, "t", true, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue(NULL, "t", "{}", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue_batch(NULL, "[]", &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue_statement(NULL, "t", "{}", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_claim(NULL, "w", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_heartbeat(NULL, 1, "t", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete(NULL, 1, "t", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete_batch(NULL, "[]", &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete_and_claim(NULL, 1, "t", NULL, "w", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_fail(NULL, 1, "t", "m", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_release(NULL, 1, "t", &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_cancel(NULL, 1, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_retry(NULL, 1, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_tasks_cancel_where(NULL, "{\"ids\":[1]}", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_tasks_retry_where(NULL, "{\"ids\":[1]}", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_tasks_recover_expired(NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_get(NULL, 1, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_list(NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_history(NULL, 1, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_stats(NULL, &out));
  CHECK(out == SENTINEL);

  OK(tm_client_open(config_for(db, ",\"max_payload_bytes\":2048"), &client));
  if (!client) return 1;
  OK(tm_migrate(client));
  OK(tm_type_register(client,
                      "{\"name\":\"e.job\",\"param_schema\":{\"type\":\"object\",\"required\":[\"n\"],"
                      "\"properties\":{\"n\":{\"type\":\"integer\",\"maximum\":10}}}}",
                      NULL));

  FAILS_WITH(TM_NULL_PARAMETER, tm_type_register(client, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_get(client, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_type_set_active(client, NULL, true, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue(client, NULL, "{}", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue(client, "e.job", NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue_batch(client, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue_statement(client, NULL, "{}", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_enqueue_statement(client, "e.job", NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_claim(client, NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_heartbeat(client, 1, NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete(client, 1, NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete_batch(client, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete_and_claim(client, 1, NULL, NULL, "w", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_complete_and_claim(client, 1, "t", NULL, NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_fail(client, 1, NULL, "x", NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_fail(client, 1, "t", NULL, NULL, &out));
  FAILS_WITH(TM_NULL_PARAMETER, tm_task_release(client, 1, NULL, &out));
  CHECK(out == SENTINEL);

  /* TM_INVALID_ARGUMENT: bad UTF-8, bad JSON, wrong shapes, out-of-range numbers. */
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_enqueue(client, "e.\xff\xfe", "{}", NULL, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_enqueue(client, "e.job", "{\"n\":", NULL, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_enqueue(client, "e.job", "{\"n\":1}", "{\"priority\":\"high\"}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_enqueue(client, "e.job", "{\"n\":1}", "{\"prio\":1}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_enqueue(client, "e.job", "{\"n\":1}", "not json", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_enqueue_batch(client, "{\"type\":\"e.job\"}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_type_register(client, "{\"name\":\"x\"}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "", NULL, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "w\xc3", NULL, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "w", "{\"limit\":0}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "w", "{\"limit\":99999999}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "w", "{\"limit\":-1}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "w", "{\"lease_seconds\":0}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_get(client, 0, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_get(client, -42, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_get(client, INT64_MIN, &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_complete(client, 1, "tok", "{", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_list(client, "{\"status\":\"running\"}", &out));
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_heartbeat(client, 1, "tok", "{\"progress\":500}", &out));
  CHECK(out == SENTINEL);

  /* TM_PAYLOAD_TOO_LARGE: over max_payload_bytes, or nested too deep. */
  {
    char big[4096];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"n\":1,\"s\":\"", 12);
    memcpy(big + sizeof big - 3, "\"}", 3);
    FAILS_WITH(TM_PAYLOAD_TOO_LARGE, tm_task_enqueue(client, "e.job", big, NULL, &out));
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    FAILS_WITH(TM_PAYLOAD_TOO_LARGE, tm_task_enqueue(client, "e.job", deep, NULL, &out));
  }

  /* TM_NOT_FOUND, TM_INVALID_SCHEMA, TM_VALIDATION_FAILED (with the violation list). */
  FAILS_WITH(TM_NOT_FOUND, tm_task_get(client, 987654321, &out));
  FAILS_WITH(TM_NOT_FOUND, tm_task_enqueue(client, "no.such.type", "{}", NULL, &out));
  FAILS_WITH(TM_NOT_FOUND, tm_type_get(client, "no.such.type", &out));
  FAILS_WITH(TM_INVALID_SCHEMA, tm_type_register(client, "{\"name\":\"bad\",\"param_schema\":{\"type\":5}}", &out));
  {
    tm_error *e = tm_task_enqueue(client, "e.job", "{\"n\":\"eleven\",\"m\":1}", NULL, &out);
    CHECK(tm_error_code(e) == TM_VALIDATION_FAILED);
    CHECK(contains(tm_error_details(e), "\"violations\""));
    CHECK(contains(tm_error_details(e), "\"path\":\"/n\""));
    tm_error_free(e);
    e = tm_task_enqueue(client, "e.job", "{}", NULL, &out);
    CHECK(contains(tm_error_details(e), "\"path\":\"/\""));
    tm_error_free(e);
  }

  /* TM_LEASE_LOST with a stale token; TM_CONFLICT for a finished task. */
  OK(tm_task_enqueue(client, "e.job", "{\"n\":1}", NULL, NULL));
  char *claimed = NULL;
  OK(tm_task_claim(client, "w", NULL, &claimed));
  long long id = json_int(claimed, "id");
  char token[80];
  CHECK(json_str(claimed, "lease_token", token, sizeof token) == 0);
  tm_string_free(claimed);
  FAILS_WITH(TM_LEASE_LOST, tm_task_complete(client, id, "stale-token", "1", &out));
  FAILS_WITH(TM_LEASE_LOST, tm_task_fail(client, id, "stale-token", "x", NULL, &out));
  FAILS_WITH(TM_LEASE_LOST, tm_task_heartbeat(client, id, "stale-token", NULL, &out));
  FAILS_WITH(TM_LEASE_LOST, tm_task_complete_and_claim(client, id, "stale-token", "1", "w", NULL, &out));
  /* The live token completes it; the queue is empty, so nothing is claimed next. */
  char *step = NULL;
  OK(tm_task_complete_and_claim(client, id, token, NULL, "w", NULL, &step));
  CHECK(contains(step, "\"repeated\":false"));
  CHECK(contains(step, "\"claimed\":[]"));
  tm_string_free(step);
  FAILS_WITH(TM_CONFLICT, tm_task_cancel(client, id, NULL, &out));
  FAILS_WITH(TM_CONFLICT, tm_task_retry(client, id, &out));
  /* By filter, the same refusal is a skipped task in the report, not an error (the server's). */
  if (section("by_filter")) {
    char *report = NULL;
    char filter[64];
    snprintf(filter, sizeof filter, "{\"ids\":[%lld]}", id);
    OK(tm_tasks_retry_where(client, filter, NULL, &report));
    CHECK(contains(report, "\"changed\":[]"));
    CHECK(contains(report, "\"code\":\"TM_CONFLICT\""));
    tm_string_free(report);
    FAILS_WITH(TM_NULL_PARAMETER, tm_tasks_cancel_where(client, NULL, NULL, &out));
    FAILS_WITH(TM_INVALID_ARGUMENT, tm_tasks_cancel_where(client, "{}", NULL, &out));
    FAILS_WITH(TM_INVALID_ARGUMENT, tm_tasks_cancel_where(client, "{\"status\":\"pending\"}", "{\"limt\":1}", &out));
  }
  FAILS_WITH(TM_INVALID_ARGUMENT, tm_task_claim(client, "w", "{\"type_pattern\":\"e\\\\\"}", &out));
  FAILS_WITH(TM_CONFLICT,
             tm_type_register(client, "{\"name\":\"e.job\",\"version\":1,\"param_schema\":{\"type\":\"array\"}}", &out));

  /* TM_TYPE_INACTIVE. */
  OK(tm_type_set_active(client, "e.job", false, NULL));
  FAILS_WITH(TM_TYPE_INACTIVE, tm_task_enqueue(client, "e.job", "{\"n\":2}", NULL, &out));
  OK(tm_type_set_active(client, "e.job", true, NULL));
  CHECK(out == SENTINEL);
  tm_client_free(client);

  /* TM_SCHEMA_OUTDATED: a database that was never migrated. */
  client = NULL;
  OK(tm_client_open(config_for(empty_db, ""), &client));
  if (client) {
    FAILS_WITH(TM_SCHEMA_OUTDATED, tm_task_claim(client, "w", NULL, &out));
    FAILS_WITH(TM_SCHEMA_OUTDATED, tm_task_get(client, 1, &out));
    tm_client_free(client);
  }
  CHECK(out == SENTINEL);

  /* TM_DATABASE: an account with data privileges only may not run the migration's DDL; the
   * server's error number comes along in the details. */
  if (section("privileges")) {
    const char *rt_db = getenv("TM_TEST_RT_DB");
    const char *rt_user = getenv("TM_TEST_RT_USER");
    if (rt_db && rt_user) {
      char extra[256];
      snprintf(extra, sizeof extra, ",\"db_user\":\"%s\",\"db_pass\":\"\"", rt_user);
      client = NULL;
      OK(tm_client_open(config_for(rt_db, extra), &client));
      if (client) {
        tm_error *e = tm_migrate(client);
        CHECK(tm_error_code(e) == TM_DATABASE);
        CHECK(contains(tm_error_details(e), "\"server_code\":1142"));
        CHECK(contains(tm_error_message(e), "privilege"));
        tm_error_free(e);
        tm_client_free(client);
      }
    } else {
      fprintf(stderr, "test_errors: TM_TEST_RT_DB / TM_TEST_RT_USER not set\n");
      failures++;
    }
  }

  exclusions_seen();
  if (failures) {
    fprintf(stderr, "test_errors: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_errors: ok\n");
  return 0;
}
