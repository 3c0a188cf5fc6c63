#!/usr/bin/env python3
"""What the storage layout costs the server alone: each step as a loop inside a stored
procedure, so no client, driver or network is timed, only the server's statements and commits.

Four layouts, each in its own database:
  ours   tasks and task_history exactly as sql/schema.sql makes them;
  lean   ours without the three indexes that serve only the HTTP API's claim orders;
  ready  ours with the claimable tasks in a narrow table of their own (the Solid Queue layout):
         tasks keeps no pending-side column or index, task_ready holds one row per pending task
         with the indexes the claim orders need, kept by triggers on tasks so that plain SQL
         keeps working (a row inserted as pending is claimable at once);
  floor  the queue bench's floor table (one secondary index, no history).

Every layout runs the same steps as the library's procedures: an enqueue gated on its type with
its `created` history row; a claim of one task in priority order and its complete, each with its
history row, as two transactions (and with history off); a claim of 100 and their complete.
Each figure is the median (min-max) of three runs of 2,000 tasks, the layouts in turns.

    python3 benches/layout/run.py        (TASKMANAGER_TEST_HOST, _PORT, _USER, _PASS as the
                                          queue bench; the user needs every privilege on tm_%)
"""

import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS = int(os.environ.get("TM_BENCH_TASKS", "2000"))
LAYOUTS = ["floor", "ours", "lean", "ready"]
FLOW = ("AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) "
        "OR max_running IS NOT NULL OR rate_limit IS NOT NULL)")


def client_args(db):
    """The mariadb client's command line for `db` (None: no default database)."""
    env = os.environ.get
    args = ["mariadb", "--default-character-set=utf8mb4", "-N", "--protocol=tcp",
            "-h", env("TASKMANAGER_TEST_HOST", "127.0.0.1"),
            "-P", env("TASKMANAGER_TEST_PORT", "3306"),
            "-u", env("TASKMANAGER_TEST_USER", "taskmanager_test")]
    if env("TASKMANAGER_TEST_PASS", ""):
        args.append("-p" + env("TASKMANAGER_TEST_PASS"))
    return args + ([db] if db else [])


def mariadb(db, sql):
    done = subprocess.run(client_args(db), input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"mariadb failed in {db}: {done.stderr.strip()}")
    return done.stdout.strip()


def table(schema, name):
    return re.search(r"CREATE TABLE IF NOT EXISTS %s \(.*?\n\) ENGINE[^;]*;" % name, schema, re.S).group(0)


def drop_index(tasks, name):
    tasks, n = re.subn(r"  KEY %s \(.*?\),\n" % name, "", tasks)
    assert n == 1, name
    return tasks


HTTP_ORDER_INDEXES = ["idx_tasks_ready_by_id", "idx_tasks_ready_by_priority", "idx_tasks_ready_by_attempts"]

READY_TABLE = """
CREATE TABLE task_ready (
  task_id BIGINT NOT NULL,
  type_id BIGINT NOT NULL,
  priority INT NOT NULL,
  attempts INT NOT NULL,
  run_at DATETIME(6) NOT NULL,
  PRIMARY KEY (task_id),
  KEY idx_ready (priority DESC, task_id),
  KEY idx_ready_type (type_id, priority DESC, task_id),
  KEY idx_ready_by_priority (priority, task_id),
  KEY idx_ready_by_attempts (attempts, task_id),
  CONSTRAINT fk_ready_task FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
DELIMITER //
CREATE TRIGGER tasks_ready_insert AFTER INSERT ON tasks FOR EACH ROW
BEGIN
  IF NEW.status = 'pending' THEN
    INSERT INTO task_ready VALUES (NEW.id, NEW.type_id, NEW.priority, NEW.attempts, NEW.run_at);
  END IF;
END//
CREATE TRIGGER tasks_ready_update AFTER UPDATE ON tasks FOR EACH ROW
BEGIN
  IF NEW.status = 'pending' AND OLD.status <> 'pending' THEN
    INSERT INTO task_ready VALUES (NEW.id, NEW.type_id, NEW.priority, NEW.attempts, NEW.run_at);
  ELSEIF NEW.status = 'pending' THEN
    UPDATE task_ready SET type_id = NEW.type_id, priority = NEW.priority, attempts = NEW.attempts,
      run_at = NEW.run_at WHERE task_id = NEW.id;
  ELSEIF OLD.status = 'pending' THEN
    DELETE FROM task_ready WHERE task_id = OLD.id;
  END IF;
END//
DELIMITER ;
"""

FLOOR_TABLE = """
CREATE TABLE floor_tasks (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  status ENUM('pending','claimed','completed','failed') NOT NULL DEFAULT 'pending',
  payload MEDIUMTEXT NOT NULL, result MEDIUMTEXT NULL, attempts INT NOT NULL DEFAULT 0,
  lease_token VARCHAR(64) NULL, lease_expires_at DATETIME(6) NULL, completed_at DATETIME(6) NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY idx_floor_claim (status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
"""


def schema_of(layout):
    if layout == "floor":
        return FLOOR_TABLE
    schema = open(os.path.join(ROOT, "sql", "schema.sql")).read()
    tasks = table(schema, "tasks")
    if layout in ("lean", "ready"):
        for name in HTTP_ORDER_INDEXES:
            tasks = drop_index(tasks, name)
    if layout == "ready":
        for name in ["idx_tasks_ready", "idx_tasks_type_ready"]:
            tasks = drop_index(tasks, name)
        for column in ["pending_priority", "pending_attempts", "is_pending"]:
            tasks = re.sub(r"  %s [^\n]*\n" % column, "", tasks)
        # The foreign key needs an index of its own once the per-type claim index is gone.
        tasks = tasks.replace("  KEY idx_tasks_leased", "  KEY idx_tasks_type (type_id),\n  KEY idx_tasks_leased")
    parts = [table(schema, "task_types"), table(schema, "task_type_flow"), tasks, table(schema, "task_history")]
    if layout == "ready":
        parts.append(READY_TABLE)
    parts.append("INSERT INTO task_types (name, version, param_schema_json) VALUES ('bench', '1', '{}');")
    return "\n".join(parts)


def procedures_of(layout):
    if layout == "floor":
        return FLOOR_PROCEDURES
    if layout == "ready":
        source = "task_id AS id FROM task_ready FORCE INDEX (idx_ready) WHERE run_at <= NOW(6) %s ORDER BY priority DESC, task_id" % FLOW
    else:
        source = ("id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL "
                  "AND run_at <= NOW(6) %s ORDER BY pending_priority DESC, id" % FLOW)
    return OUR_PROCEDURES.replace("{PICK_ONE}", "SELECT (SELECT %s LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v;" % source) \
        .replace("{PICK_MANY}", "SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT %s LIMIT 100 FOR UPDATE SKIP LOCKED) AS picked) INTO vj;" % source)


LISTED = "JSON_TABLE(vj, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id"

# The statements of the library's procedures and scripts (tm9_enqueue, tm9_claim_next,
# tm9_complete, the batch claim and complete_batch), values in place of the parameters.
OUR_PROCEDURES = """
DELIMITER //
CREATE PROCEDURE enqueue_loop(IN n INT, IN base BIGINT)
BEGIN
  DECLARE i INT DEFAULT 0; DECLARE v_created INT; DECLARE v_id BIGINT;
  WHILE i < n DO
    START TRANSACTION;
    INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at)
      SELECT 1, 'pending', CONCAT('{"n":', base + i, '}'), SHA2(base + i, 256), SHA2(base + i, 256), 'always', 0, 3, NOW(6)
      FROM task_types WHERE id = 1 AND version COLLATE utf8mb4_bin = '1' AND is_active = 1
      ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
    SET v_created = ROW_COUNT(); SET v_id = LAST_INSERT_ID();
    INSERT INTO task_history (task_id, status_change, worker_id, message, created_at)
      SELECT v_id, 'created', NULL, NULL, NOW(6) FROM DUAL WHERE v_created = 1;
    COMMIT;
    SET i = i + 1;
  END WHILE;
END//
CREATE PROCEDURE drain_loop(IN history BOOLEAN)
BEGIN
  DECLARE v BIGINT; DECLARE params TEXT; DECLARE token VARCHAR(64);
  work: LOOP
    START TRANSACTION;
    SET v = NULL;
    {PICK_ONE}
    IF v IS NULL THEN COMMIT; LEAVE work; END IF;
    UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = 'w',
      t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL 300 SECOND, t.lease_token = CONCAT('p.', t.id),
      t.progress = 0 WHERE t.id = v AND t.status IN ('pending');
    IF history THEN
      INSERT INTO task_history (task_id, status_change, worker_id, message, created_at)
        SELECT t.id, 'claimed', 'w', NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY)
        WHERE t.id = v AND t.lease_token = CONCAT('p.', t.id) AND t.status = 'claimed';
    END IF;
    SELECT t.params_json, t.lease_token INTO params, token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v;
    COMMIT;
    START TRANSACTION;
    UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = 'null', completed_at = NOW(6),
      lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock)
      WHERE id = v AND lease_token = token AND status = 'claimed';
    IF history THEN
      INSERT INTO task_history (task_id, status_change, worker_id, message, created_at)
        SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY)
        WHERE t.id = v AND t.lease_token = token AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h
          WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at);
    END IF;
    COMMIT;
  END LOOP;
END//
CREATE PROCEDURE drain_batches_loop()
BEGIN
  DECLARE vj LONGTEXT;
  work: LOOP
    START TRANSACTION;
    SET vj = NULL;
    {PICK_MANY}
    IF vj IS NULL THEN COMMIT; LEAVE work; END IF;
    UPDATE %(LISTED)s SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = 'w',
      t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL 300 SECOND, t.lease_token = CONCAT('p.', t.id),
      t.progress = 0 WHERE t.status IN ('pending');
    INSERT INTO task_history (task_id, status_change, worker_id, message, created_at)
      SELECT t.id, 'claimed', 'w', NULL, NOW(6) FROM %(LISTED)s WHERE t.lease_token = CONCAT('p.', t.id) AND t.status = 'claimed';
    COMMIT;
    START TRANSACTION;
    UPDATE %(LISTED)s SET t.status = 'completed', t.result_json = 'null', t.completed_at = NOW(6),
      t.lease_expires_at = NULL, t.progress = 100 WHERE t.status = 'claimed' AND t.lease_token = CONCAT('p.', t.id);
    INSERT INTO task_history (task_id, status_change, worker_id, message, created_at)
      SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM %(LISTED)s WHERE t.status = 'completed';
    COMMIT;
  END LOOP;
END//
DELIMITER ;
""" % {"LISTED": LISTED}

# The floor's statements (benches/queue/floor.rs).
FLOOR_PROCEDURES = """
DELIMITER //
CREATE PROCEDURE enqueue_loop(IN n INT, IN base BIGINT)
BEGIN
  DECLARE i INT DEFAULT 0;
  WHILE i < n DO
    INSERT INTO floor_tasks (payload) VALUES (CONCAT('{"n":', base + i, '}'));
    SET i = i + 1;
  END WHILE;
END//
CREATE PROCEDURE drain_loop(IN history BOOLEAN)
BEGIN
  DECLARE v BIGINT; DECLARE params TEXT;
  work: LOOP
    START TRANSACTION;
    SET v = NULL;
    SELECT id, payload INTO v, params FROM floor_tasks WHERE status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF v IS NULL THEN COMMIT; LEAVE work; END IF;
    UPDATE floor_tasks SET status = 'claimed', attempts = attempts + 1, lease_token = CONCAT('floor.', v),
      lease_expires_at = NOW(6) + INTERVAL 300 SECOND WHERE id = v;
    COMMIT;
    UPDATE floor_tasks SET status = 'completed', result = 'null', completed_at = NOW(6), lease_expires_at = NULL
      WHERE id = v AND lease_token = CONCAT('floor.', v) AND status = 'claimed';
  END LOOP;
END//
CREATE PROCEDURE drain_batches_loop()
BEGIN
  DECLARE vj LONGTEXT;
  work: LOOP
    START TRANSACTION;
    SELECT JSON_ARRAYAGG(id) INTO vj FROM (SELECT id FROM floor_tasks WHERE status = 'pending' ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED) AS picked;
    IF vj IS NULL THEN COMMIT; LEAVE work; END IF;
    UPDATE JSON_TABLE(vj, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN floor_tasks t ON t.id = listed.id
      SET t.status = 'claimed', t.attempts = t.attempts + 1, t.lease_token = CONCAT('floor.', t.id),
      t.lease_expires_at = NOW(6) + INTERVAL 300 SECOND;
    COMMIT;
    UPDATE JSON_TABLE(vj, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN floor_tasks t ON t.id = listed.id
      SET t.status = 'completed', t.result = 'null', t.completed_at = NOW(6), t.lease_expires_at = NULL WHERE t.status = 'claimed';
  END LOOP;
END//
DELIMITER ;
"""


def database(layout):
    return "tm_layout_%s_%d" % (layout, os.getpid())


def settle():
    """Waits for purge, as the queue bench does: a run must not pay for its predecessor's rows."""
    deadline = time.time() + 60
    while time.time() < deadline:
        length = mariadb(None, "SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").split()
        if not length or int(length[-1]) < 200:
            return
        time.sleep(0.05)


def reset(layout):
    if layout == "floor":
        mariadb(database(layout), "TRUNCATE TABLE floor_tasks")
    else:
        mariadb(database(layout), "DELETE FROM task_history; DELETE FROM tasks;")
    settle()


def count(layout, where="TRUE"):
    table = "floor_tasks" if layout == "floor" else "tasks"
    return int(mariadb(database(layout), "SELECT COUNT(*) FROM %s WHERE %s" % (table, where)))


def run(layout, step, workers):
    """One run of `step` by `workers` connections at once; tasks/s."""
    db = database(layout)
    reset(layout)
    if step != "enqueue":
        mariadb(db, "CALL enqueue_loop(%d, %d)" % (TASKS, time.time_ns() // 1000))
        if count(layout) != TASKS:
            sys.exit("%s: the queue was not filled" % layout)
        settle()
    calls = {
        "enqueue": lambda w: "CALL enqueue_loop(%d, %d)" % (TASKS // workers, (w + 1) * 10**15 + time.time_ns() // 1000),
        "drain": lambda w: "CALL drain_loop(TRUE)",
        "drain, history off": lambda w: "CALL drain_loop(FALSE)",
        "drain 100 at a time": lambda w: "CALL drain_batches_loop()",
    }
    # Each worker's client connects and answers a first query before the clock starts.
    running = [subprocess.Popen(client_args(db) + ["--unbuffered"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    for process in running:
        process.stdin.write("SELECT 1;\n")
        process.stdin.flush()
    for process in running:
        if process.stdout.readline().strip() != "1":
            sys.exit("a worker of %s did not connect" % layout)
    started = time.time()
    for w, process in enumerate(running):
        process.stdin.write(calls[step](w))
        process.stdin.close()
    for process in running:
        if process.wait() != 0:
            sys.exit("a %s run of %s failed" % (step, layout))
    elapsed = time.time() - started
    # A run that did not do its work would measure nothing: every task made, every task done.
    if count(layout) != TASKS or (step != "enqueue" and count(layout, "status <> 'completed'") != 0):
        sys.exit("%s: %s did not make or finish every task" % (layout, step))
    return TASKS / elapsed


def main():
    print("Storage layouts, the server alone (steps looped inside stored procedures); "
          "tasks/s, median (min-max) of 3 runs of %d tasks; ratio to the floor" % TASKS)
    print("%-34s" % "figure" + "".join("%26s" % l for l in LAYOUTS))
    try:
        for layout in LAYOUTS:
            db = database(layout)
            mariadb(None, "CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % db)
            mariadb(db, schema_of(layout))
            mariadb(db, procedures_of(layout))
        # No loop of single-task drains at 4 workers: with no round trip between them, the
        # complete's history INSERT ... SELECT (its check for an earlier row is a locking read
        # of task_history) deadlocks with a neighbour's over the table's AUTO-INC lock within a
        # second (error 1467), which the library's drains, a round trip apart, do not meet.
        for step, workers in [("enqueue", 1), ("enqueue", 4), ("drain", 1),
                              ("drain, history off", 1), ("drain, history off", 4),
                              ("drain 100 at a time", 4)]:
            runs = {layout: [] for layout in LAYOUTS}
            for _ in range(3):
                for layout in LAYOUTS:
                    runs[layout].append(run(layout, step, workers))
            floor = statistics.median(runs["floor"])
            cells = []
            for layout in LAYOUTS:
                median = statistics.median(runs[layout])
                ratio = "" if layout == "floor" else " %.2fx" % (median / floor)
                cells.append("%26s" % ("%.0f (%.0f-%.0f)%s" % (median, min(runs[layout]), max(runs[layout]), ratio)))
            print("%-34s" % ("%s, %d w" % (step, workers)) + "".join(cells), flush=True)
    finally:
        for layout in LAYOUTS:
            mariadb(None, "DROP DATABASE IF EXISTS %s" % database(layout))


if __name__ == "__main__":
    main()
