#!/usr/bin/env python3
"""What each part of an enqueue costs the server, and what a cheaper form of the same
guarantees would cost: each form sent as N statements by one `mariadb` client connection (text
protocol, one commit each, as the library sends them), timed by the server's CPU (from /proc,
when the server runs on this machine) and by the wall clock per statement.

Forms:
  floor             the queue bench's floor: one INSERT into its one-index table
  procedure,v10     CALL tm10_enqueue: a locking read of the type row (the type gate), the
                    task row, its `created` history row, in one transaction (generation 10)
  procedure,nogate  the same procedure without its type gate
  procedure         CALL tm11_enqueue, what the library sends: the same with the gate a foreign
                    key, checked by InnoDB inside the INSERT (the row names its type and
                    version; see src/migrate/type_gate.rs)
  row               the task row alone: one INSERT into `tasks` (no gate, no history)
  row,subquerygate  the row with the gate as a subquery in its VALUES (a NULL type_id refuses)
  row,fkgate        the row with the foreign-key gate
  row,fkgate,trigger
                    the same with its history row written by an AFTER INSERT trigger: one
                    statement, no procedure (not the library's: a trigger needs the TRIGGER
                    privilege, and SUPER on a server with a binary log)
  claim             the claim's UPDATE of one pending task whose gate is NULL ...
  claim,fkgate      ... and of one whose gate it clears

Each figure is the median of three rounds, the forms in turns.

    python3 benches/layout/enqueue_forms.py    (TM_BENCH_TASKS statements per form and round,
                                                default 5000; the server as for run.py)
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import FLOOR_TABLE, ROOT, client_args, mariadb, settle  # noqa: E402

TASKS = int(os.environ.get("TM_BENCH_TASKS", "5000"))
DB = "tm_enqueue_forms_%d" % os.getpid()
COLUMNS = ("type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, "
           "max_attempts, run_at, enqueue_token")
GATE = "gate_type_id, gate_version"
CLAIM = ("UPDATE tasks SET status = 'claimed', attempts = attempts + 1, claimed_at = NOW(6)%s "
         "WHERE id = %d AND status = 'pending'")

# A copy of `tasks` (its keys too) whose `created` history rows a trigger writes.
TRIGGERED = """
CREATE TABLE gated_tasks LIKE tasks;
ALTER TABLE gated_tasks
  ADD CONSTRAINT fk_gated_type FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE CASCADE,
  ADD CONSTRAINT fk_gated_gate FOREIGN KEY (gate_type_id, gate_version)
    REFERENCES task_types (id, active_version) ON DELETE SET NULL ON UPDATE SET NULL;
CREATE TABLE gated_history LIKE task_history;
ALTER TABLE gated_history
  ADD CONSTRAINT fk_gated_history FOREIGN KEY (task_id) REFERENCES gated_tasks (id) ON DELETE CASCADE;
DELIMITER //
CREATE TRIGGER gated_tasks_created AFTER INSERT ON gated_tasks FOR EACH ROW
BEGIN
  IF @tm_history THEN
    INSERT INTO gated_history (task_id, status_change, created_at) VALUES (NEW.id, 'created', NOW(6));
  END IF;
END//
DELIMITER ;
"""


def procedure_without_gate():
    """tm10_enqueue from its migration file, renamed, with its gate's condition made TRUE."""
    text = open(os.path.join(ROOT, "sql", "migrations", "0010_hot_path_procedures_v10.sql")).read()
    start = text.index("CREATE PROCEDURE tm10_enqueue(")
    body = text[start:text.index("END//", start) + len("END//")]
    gate = body[body.index("IF EXISTS (SELECT 1 FROM task_types"):]
    gate = gate[:gate.index(" THEN") + len(" THEN")]
    body = body.replace("tm10_enqueue", "bench_enqueue_nogate").replace(gate, "IF TRUE THEN")
    return "DELIMITER //\n%s\nDELIMITER ;\n" % body


def statement(form, n):
    """The statement that enqueues (or claims) task `n` in `form`."""
    params, key = '{"n":%d}' % n, "k%d" % n
    values = "'pending', '%s', '%s', '%s', 'always', 0, 3, NOW(6), NULL" % (params, key, key)
    upsert = "ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)"
    call = "(1, '1', '%s', '%s', 'always', 0, 3, NULL, 0, NULL, TRUE)" % (params, key)
    return {
        "floor": "INSERT INTO floor_tasks (payload) VALUES ('%s')" % params,
        "procedure,v10": "CALL tm10_enqueue" + call,
        "procedure,nogate": "CALL bench_enqueue_nogate" + call,
        "procedure": "CALL tm11_enqueue" + call,
        "row": "INSERT INTO tasks (%s) VALUES (1, %s) %s" % (COLUMNS, values, upsert),
        "row,subquerygate": "INSERT INTO tasks (%s) VALUES ((SELECT id FROM task_types WHERE id = 1 "
                            "AND version COLLATE utf8mb4_bin = '1' AND is_active = 1), %s) %s"
                            % (COLUMNS, values, upsert),
        "row,fkgate": "INSERT INTO tasks (%s, %s) VALUES (1, %s, %s) %s" % (COLUMNS, GATE, values, "1, '1'", upsert),
        "row,fkgate,trigger": "INSERT INTO gated_tasks (%s, %s) VALUES (1, %s, 1, '1') %s"
                              % (COLUMNS, GATE, values, upsert),
        "claim": CLAIM % ("", n),
        "claim,fkgate": CLAIM % (", gate_type_id = NULL, gate_version = NULL", n),
    }[form]


def server_pid():
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/comm" % entry) as comm:
                if comm.read().strip() in ("mariadbd", "mysqld"):
                    return entry
        except OSError:
            continue
    return None


def cpu_seconds(pid):
    if pid is None:
        return None
    with open("/proc/%s/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(numbers, form, pid):
    """Sends one statement per number in `form`; (server CPU us, wall us) per statement."""
    with tempfile.TemporaryFile("w+") as script:
        script.write("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET @tm_history = 1;\n")
        script.writelines(statement(form, n) + ";\n" for n in numbers)
        script.seek(0)
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        done = subprocess.run(client_args(DB), stdin=script, capture_output=True, text=True)
        wall, cpu_after = time.monotonic() - wall_before, cpu_seconds(pid)
    if done.returncode != 0:
        sys.exit("%s failed: %s" % (form, done.stderr.strip()))
    cpu = None if pid is None else (cpu_after - cpu_before) * 1e6 / len(numbers)
    return cpu, wall * 1e6 / len(numbers)


def main():
    pid = server_pid()
    mariadb(None, "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (DB, DB))
    try:
        with open(os.path.join(ROOT, "sql", "schema.sql")) as schema:
            subprocess.run(client_args(DB), stdin=schema, check=True, capture_output=True)
        mariadb(DB, "INSERT INTO task_types (name, version, param_schema_json) VALUES ('bench', '1', '{}');"
                + FLOOR_TABLE + TRIGGERED + procedure_without_gate())
        enqueues = ["floor", "procedure,v10", "procedure,nogate", "procedure", "row",
                    "row,subquerygate", "row,fkgate", "row,fkgate,trigger"]
        results = {form: [] for form in enqueues + ["claim", "claim,fkgate"]}
        next_n = 1
        for round_ in range(1, 4):
            for form in enqueues:
                numbers = range(next_n, next_n + TASKS)
                next_n += TASKS
                settle()
                results[form].append(timed(numbers, form, pid))
                print("round %d: %-20s done" % (round_, form), file=sys.stderr)
            # Claims of the tasks enqueued this round: the `row` rows (no gate), the fkgate ones.
            for form, source in (("claim", "row"), ("claim,fkgate", "row,fkgate")):
                table = "tasks"
                first = enqueues.index(source)
                start = next_n - TASKS * (len(enqueues) - first)
                ids = sorted(int(i) for i in mariadb(DB, "SELECT id FROM %s WHERE dedupe_lock IN ('k%d', 'k%d')"
                                                          % (table, start, start + TASKS - 1)).split())
                settle()
                results[form].append(timed(range(ids[0], ids[-1] + 1), form, pid))
        floor_wall = statistics.median(wall for _, wall in results["floor"])
        print("server %s, %d statements per form and round, median of 3 rounds"
              % (mariadb(None, "SELECT VERSION()"), TASKS))
        print("%-20s %16s %14s %18s" % ("form", "server CPU, us", "wall, us", "floor's wall / its"))
        for form, runs in results.items():
            cpus = [cpu for cpu, _ in runs if cpu is not None]
            cpu = "%.0f" % statistics.median(cpus) if cpus else "n/a"
            wall = statistics.median(wall for _, wall in runs)
            ratio = "%.2fx" % (floor_wall / wall) if not form.startswith("claim") else ""
            print("%-20s %16s %14.0f %18s" % (form, cpu, wall, ratio))
    finally:
        mariadb(None, "DROP DATABASE IF EXISTS %s" % DB)


if __name__ == "__main__":
    main()
