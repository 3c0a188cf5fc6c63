/* Recurring tasks through the C ABI: put (and the errors that name their field), list, a tick
 * that enqueues a due occurrence, get, delete. Reads its database from TASKMANAGER_*. */
#include "check.h"

int main(void) {
  tm_client *client = NULL;
  char *out = NULL;
  OK(tm_client_open(NULL, &client));
  if (client == NULL) return 1;
  OK(tm_migrate(client));
  OK(tm_type_register(client, "{\"name\":\"c.report\",\"param_schema\":{\"type\":\"object\"}}", NULL));

  OK(tm_schedule_put(client,
                     "{\"name\":\"c.nightly\",\"type\":\"c.report\",\"cron\":\"0 3 * * *\","
                     "\"timezone\":\"Europe/Prague\",\"params\":{\"kind\":\"daily\"}}",
                     &out));
  CHECK(contains(out, "\"name\":\"c.nightly\""));
  CHECK(contains(out, "\"misfire\":\"skip\""));
  CHECK(contains(out, "\"next_run_at\":\"20"));
  CHECK(contains(out, "\"changed\":true"));
  tm_string_free(out);

  /* Each bad field is TM_INVALID_ARGUMENT naming the field, in the message and the details. */
  const char *bad[][2] = {
      {"{\"name\":\"x\",\"type\":\"c.report\",\"cron\":\"61 * * * *\"}", "cron"},
      {"{\"name\":\"x\",\"type\":\"c.report\",\"cron\":\"0 3 * * *\",\"timezone\":\"Mars/Base\"}", "timezone"},
      {"{\"name\":\"x\",\"type\":\"c.report\",\"cron\":\"0 3 * * *\",\"misfire\":\"often\"}", "misfire"},
      {"{\"type\":\"c.report\",\"cron\":\"0 3 * * *\"}", "name"},
      {"{\"name\":\"x\",\"cron\":\"0 3 * * *\"}", "type"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tm_error *e = tm_schedule_put(client, bad[i][0], &out);
    CHECK(e != NULL);
    if (e) {
      CHECK(tm_error_code(e) == TM_INVALID_ARGUMENT);
      CHECK(contains(tm_error_message(e), bad[i][1]));
      CHECK(contains(tm_error_details(e), bad[i][1]));
      tm_error_free(e);
    }
  }
  FAILS_WITH(TM_NOT_FOUND, tm_schedule_put(client, "{\"name\":\"x\",\"type\":\"c.none\",\"cron\":\"0 3 * * *\"}", NULL));
  FAILS_WITH(TM_NULL_PARAMETER, tm_schedule_put(client, NULL, NULL));
  FAILS_WITH(TM_NULL_PARAMETER, tm_schedule_delete(client, NULL, NULL));

  /* Every second: the tick enqueues once the database's clock reaches the next occurrence. */
  OK(tm_schedule_put(client, "{\"name\":\"c.beat\",\"type\":\"c.report\",\"cron\":\"* * * * * *\"}", NULL));
  long long task_id = -1;
  char key[128] = "schedule:c.beat@";
  for (int i = 0; i < 100000 && task_id < 0; i++) {
    OK(tm_schedules_tick(client, &out));
    CHECK(contains(out, "\"enqueued\":["));
    if (contains(out, "\"schedule\":\"c.beat\"")) {
      task_id = json_int(out, "task_id");
      CHECK(json_str(out, "scheduled_for", key + strlen(key), sizeof key - strlen(key)) == 0);
    }
    tm_string_free(out);
  }
  CHECK(task_id > 0);
  /* The task's key names its schedule and the instant it was made for. */
  OK(tm_task_get(client, task_id, &out));
  char dedupe_key[128];
  CHECK(json_str(out, "dedupe_key", dedupe_key, sizeof dedupe_key) == 0);
  CHECK(strcmp(dedupe_key, key) == 0);
  tm_string_free(out);

  OK(tm_schedule_list(client, &out));
  CHECK(out[0] == '[');
  CHECK(contains(out, "\"name\":\"c.beat\""));
  CHECK(contains(out, "\"name\":\"c.nightly\""));
  tm_string_free(out);
  OK(tm_schedule_get(client, "c.nightly", &out));
  CHECK(contains(out, "\"timezone\":\"Europe/Prague\""));
  tm_string_free(out);
  OK(tm_schedule_delete(client, "c.beat", &out));
  CHECK(contains(out, "\"name\":\"c.beat\""));
  tm_string_free(out);
  FAILS_WITH(TM_NOT_FOUND, tm_schedule_delete(client, "c.beat", NULL));
  FAILS_WITH(TM_NOT_FOUND, tm_schedule_get(client, "c.beat", NULL));

  tm_client_free(client);
  if (failures) {
    fprintf(stderr, "test_schedules: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_schedules: all passed\n");
  return 0;
}
