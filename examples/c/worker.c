/* A producer and a worker in one small program.
 *
 *   cc worker.c $(pkg-config --cflags --libs taskmanager) -o worker
 *   TASKMANAGER_DATABASE_URL=mysql://user:pass@127.0.0.1:3306/queue ./worker
 *
 * It registers a type, enqueues a few tasks, then works until the queue is empty. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "taskmanager.h"

/* Prints the error, frees it, and says whether there was one. */
static int failed(tm_error *err, const char *what) {
  if (err == NULL) return 0;
  fprintf(stderr, "%s failed (%d): %s\n", what, (int)tm_error_code(err), tm_error_message(err));
  tm_error_free(err);
  return 1;
}

/* Copies the string value of "key" out of a JSON object (enough for this example). */
static int pick(const char *json, const char *key, char *out, size_t n) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = strstr(json, pattern);
  if (!at) return -1;
  at += strlen(pattern);
  if (*at == '"') at++;
  size_t len = strcspn(at, "\",}");
  if (len >= n) return -1;
  memcpy(out, at, len);
  out[len] = '\0';
  return 0;
}

int main(void) {
  tm_client *client = NULL;
  if (failed(tm_client_open(NULL, &client), "open")) return 1; /* settings from TASKMANAGER_* */
  if (failed(tm_migrate(client), "migrate")) return 1;
  if (failed(tm_type_register(client,
                              "{\"name\":\"demo.greet\",\"version\":1,\"param_schema\":"
                              "{\"type\":\"object\",\"required\":[\"name\"]}}",
                              NULL),
             "register"))
    return 1;

  const char *names[] = {"Ada", "Grace", "Linus"};
  for (int i = 0; i < 3; i++) {
    char params[128];
    char *out = NULL;
    /* The run id keeps each run's tasks distinct: identical params would be deduplicated. */
    snprintf(params, sizeof params, "{\"name\":\"%s\",\"run\":%ld}", names[i], (long)time(NULL) * 100000 + getpid());
    if (failed(tm_task_enqueue(client, "demo.greet", params, NULL, &out), "enqueue")) return 1;
    printf("producer: %s\n", out);
    tm_string_free(out);
  }

  int done = 0;
  for (;;) {
    char *batch = NULL;
    if (failed(tm_task_claim(client, "c-example-worker", "{\"types\":[\"demo.greet\"]}", &batch), "claim")) return 1;
    if (strcmp(batch, "[]") == 0) { /* nothing left to do */
      tm_string_free(batch);
      break;
    }
    char id[32], token[80], name[64];
    pick(batch, "id", id, sizeof id);
    pick(batch, "lease_token", token, sizeof token);
    pick(batch, "name", name, sizeof name);
    tm_string_free(batch);

    char result[128];
    snprintf(result, sizeof result, "{\"greeting\":\"Hello, %s!\"}", name);
    if (failed(tm_task_complete(client, atoll(id), token, result, NULL), "complete")) return 1;
    printf("worker: task %s -> %s\n", id, result);
    done++;
  }
  printf("worker: %d task(s) done\n", done);
  tm_client_free(client);
  return 0;
}
