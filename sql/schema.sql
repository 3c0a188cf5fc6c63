-- TaskManager schema, current version (11), for reading and for a manual install:
--   mysql --default-character-set=utf8mb4 your_db < sql/schema.sql
-- The usual way is `tm_migrate` / Client::migrate, which reaches the same shape through the
-- versioned migrations (an existing database of the original PHP system is upgraded in place).
-- A test loads this file with the command above and compares it, column by column, index by
-- index and procedure by procedure, with a migrated database, so it cannot drift.

CREATE TABLE IF NOT EXISTS tm_schema_migrations (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS task_types (
  id BIGINT NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) NOT NULL,
  -- Free text such as 1.0.0, as in the original.
  version VARCHAR(50) NOT NULL DEFAULT '1',
  param_schema_json MEDIUMTEXT NOT NULL,
  is_active TINYINT(1) NOT NULL DEFAULT 1,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  -- The version while the type is active, NULL while it is not: with the id, the key a task's
  -- type gate refers to (see tasks.gate_version).
  active_version VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin AS (IF(is_active = 1, version, NULL)) STORED,
  PRIMARY KEY (id),
  UNIQUE KEY uk_name (name),
  KEY idx_is_active (is_active),
  UNIQUE KEY uq_task_types_gate (id, active_version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS tasks (
  id BIGINT NOT NULL AUTO_INCREMENT,
  type_id BIGINT NOT NULL,
  status ENUM('pending','claimed','completed','failed','cancelled') NOT NULL DEFAULT 'pending',
  params_json MEDIUMTEXT NOT NULL,
  -- SHA-256 of type name + canonical params, or the caller's own key.
  dedupe_key VARCHAR(191) NOT NULL,
  result_json MEDIUMTEXT NULL,
  error_message TEXT NULL,
  -- Claims so far; a claim counts even when its lease later expires.
  attempts INT NOT NULL DEFAULT 0,
  priority INT NOT NULL DEFAULT 0,
  progress INT NOT NULL DEFAULT 0,
  claimed_by VARCHAR(255) NULL,
  claimed_at DATETIME(6) NULL,
  completed_at DATETIME(6) NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  max_attempts INT NOT NULL DEFAULT 3,
  -- Not runnable before this time (delay, run_at, retry backoff).
  run_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  -- The token of the current (or last) lease; only it can finish the task.
  lease_token VARCHAR(64) NULL,
  lease_expires_at DATETIME(6) NULL,
  dedupe_scope ENUM('always','active') NOT NULL DEFAULT 'always',
  -- The dedupe key while it blocks new tasks (forever for 'always', while pending/claimed for
  -- 'active'); its UNIQUE index is what makes dedupe atomic.
  dedupe_lock VARCHAR(191) NULL,
  enqueue_token CHAR(32) NULL,
  -- Computed by the server, so rows written with plain SQL are indexed right at once. Each is
  -- NULL outside the status it serves.
  pending_priority INT AS (IF(status = 'pending', priority, NULL)) STORED,
  pending_attempts INT AS (IF(status = 'pending', attempts, NULL)) STORED,
  is_pending TINYINT AS (IF(status = 'pending', 1, NULL)) STORED,
  -- A task claimed by hand (no lease of ours) sorts first; recovery checks its claimed_at.
  claimed_until DATETIME(6) AS (IF(status = 'claimed', COALESCE(lease_expires_at, TIMESTAMP'1970-01-01 00:00:01'), NULL)) STORED,
  finished_status ENUM('completed','failed','cancelled') AS (IF(status IN ('completed','failed','cancelled'), status, NULL)) STORED,
  -- The type gate: the type and the version the enqueue validated the params against, until
  -- the first claim clears them. Its foreign key refers to the type's (id, active_version), so
  -- InnoDB refuses the task of a deactivated or replaced type; a change of the type sets the
  -- gates still naming it to NULL. Rows written with plain SQL leave it NULL (not checked).
  gate_type_id BIGINT NULL,
  gate_version VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_tasks_dedupe_lock (dedupe_lock),
  -- The lean layout: each index below is over a column that holds a value only in the status
  -- it serves, so a status change touches only the indexes of the statuses it leaves and enters.
  -- Claims in the library's order (highest priority first, then oldest), any type or a list...
  KEY idx_tasks_ready (pending_priority DESC, id),
  -- ... or one type (this index also serves the foreign key).
  KEY idx_tasks_type_ready (type_id, pending_priority DESC, id),
  -- The claim orders of the HTTP API (sort_by id and created_at, which follows id; priority;
  -- attempts; each direction is one scan).
  KEY idx_tasks_ready_by_id (is_pending, id),
  KEY idx_tasks_ready_by_priority (pending_priority, id),
  KEY idx_tasks_ready_by_attempts (pending_attempts, id),
  -- Leases by expiry: recovery, and the held-tasks stats.
  KEY idx_tasks_leased (claimed_until),
  -- Finished tasks by age: retention (prune) and throughput (stats), counts from the index.
  KEY idx_tasks_done (finished_status, completed_at, type_id),
  -- The type gate's foreign key.
  KEY idx_tasks_gate (gate_type_id, gate_version),
  -- As in the original: deleting a type deletes its tasks (and their history).
  CONSTRAINT fk_tasks_type FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE CASCADE,
  -- Checked as idx_tasks_gate is written, after idx_tasks_type_ready (fk_tasks_type): an
  -- enqueue locks the type row before its gate key, in the order a change of the type does.
  CONSTRAINT fk_tasks_type_gate FOREIGN KEY (gate_type_id, gate_version) REFERENCES task_types (id, active_version) ON DELETE SET NULL ON UPDATE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS task_history (
  id BIGINT NOT NULL AUTO_INCREMENT,
  task_id BIGINT NOT NULL,
  -- created, claimed, progress, completed, failed, retrying, lease_expired, released,
  -- cancelled, retried
  status_change VARCHAR(32) NOT NULL,
  worker_id VARCHAR(255) NULL,
  message TEXT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY idx_task_id (task_id),
  KEY idx_created_at (created_at),
  CONSTRAINT fk_history_task FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The hot path as stored procedures of the previous generation, 6
-- (sql/migrations/0006_hot_path_procedures_v6.sql): kept for the release before flow control,
-- which calls them during a rolling deploy; this release calls generation 9 (below).
DROP PROCEDURE IF EXISTS tm6_enqueue;
DROP PROCEDURE IF EXISTS tm6_claim_next;
DROP PROCEDURE IF EXISTS tm6_complete;
DROP PROCEDURE IF EXISTS tm6_complete_and_claim;
DELIMITER //
CREATE PROCEDURE tm6_enqueue(IN p_type_id BIGINT, IN p_version VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_params LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_scope VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_priority INT, IN p_max_attempts INT, IN p_run_at VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_delay_micros BIGINT, IN p_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_id BIGINT DEFAULT 0;
DECLARE v_created INT DEFAULT 0;
START TRANSACTION;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT p_type_id AS type_id, 'pending' AS status, p_params AS params_json, p_key AS dedupe_key, p_key AS dedupe_lock, p_scope AS dedupe_scope, p_priority AS priority, p_max_attempts AS max_attempts, COALESCE(CAST(p_run_at AS DATETIME(6)), NOW(6) + INTERVAL p_delay_micros MICROSECOND) AS run_at, p_token AS enqueue_token FROM task_types WHERE id = p_type_id AND version COLLATE utf8mb4_bin = p_version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
SET v_created = ROW_COUNT();
SET v_id = LAST_INSERT_ID();
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT v_id, 'created', NULL, NULL, NOW(6) FROM DUAL WHERE v_created = 1; END IF;
COMMIT;
SELECT v_id AS id, v_created AS created;
END//
CREATE PROCEDURE tm6_claim_next(IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0 WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', p_worker, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed'; END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
COMMIT;
END//
CREATE PROCEDURE tm6_complete(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = p_id AND t.lease_token = p_lease_token AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at); END IF;
COMMIT;
SELECT v_changed AS changed;
END//
CREATE PROCEDURE tm6_complete_and_claim(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = p_id AND t.lease_token = p_lease_token AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at); END IF;
SELECT v_changed AS changed;
IF EXISTS (SELECT 1 FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id AND lease_token = p_lease_token AND status = 'completed') THEN
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0 WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', p_worker, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed'; END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
END IF;
COMMIT;
END//
DELIMITER ;

-- Recurring tasks (sql/migrations/0008_schedules.sql): a schedule enqueues a task at every
-- occurrence of its cron expression; a run records the occurrence a task was made for.
CREATE TABLE IF NOT EXISTS task_schedules (
  id BIGINT NOT NULL AUTO_INCREMENT,
  name VARCHAR(150) NOT NULL,
  type_id BIGINT NOT NULL,
  cron VARCHAR(255) NOT NULL,
  timezone VARCHAR(64) NOT NULL DEFAULT 'UTC',
  params_json MEDIUMTEXT NOT NULL,
  enabled TINYINT(1) NOT NULL DEFAULT 1,
  misfire ENUM('skip','once','backfill') NOT NULL DEFAULT 'skip',
  misfire_grace_seconds INT NOT NULL DEFAULT 300,
  next_run_at DATETIME(6) NULL,
  last_run_at DATETIME(6) NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uq_schedules_name (name),
  KEY idx_schedules_due (enabled, next_run_at),
  KEY idx_schedules_type (type_id),
  CONSTRAINT fk_schedules_type FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- No foreign key to tasks: a pruned task leaves its run, which still says the occurrence
-- happened; runs older than 90 days are deleted by the ticks.
CREATE TABLE IF NOT EXISTS task_schedule_runs (
  schedule_id BIGINT NOT NULL,
  scheduled_for DATETIME(6) NOT NULL,
  task_id BIGINT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (schedule_id, scheduled_for),
  KEY idx_schedule_runs_task (task_id),
  CONSTRAINT fk_schedule_runs_schedule FOREIGN KEY (schedule_id) REFERENCES task_schedules (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
-- Flow control (sql/migrations/0009_flow_control.sql): a type's pause and limits, and the
-- permits its claims take.
CREATE TABLE IF NOT EXISTS task_type_flow (
  type_id BIGINT NOT NULL,
  -- Paused while NOW(6) < paused_until; a pause with no end holds 9999-12-31.
  paused_until DATETIME(6) NULL,
  -- At most this many tasks of the type claimed at any moment.
  max_running INT NULL,
  -- At most rate_limit + rate_burst starts in any window of rate_per_seconds seconds.
  rate_limit INT NULL,
  rate_per_seconds INT NULL,
  rate_burst INT NOT NULL DEFAULT 0,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (type_id),
  CONSTRAINT fk_flow_type FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A limited type's permits: a claim takes one per task it starts, so claimers of one type run
-- side by side (each locks free permits FOR UPDATE SKIP LOCKED) and never take more than there
-- are. 'running' permits (n < max_running) are held by a task while it is claimed under the
-- lease token they record: a finished or recovered task frees its permit without writing it, so
-- nothing can free one twice. 'rate' permits (n < rate_limit + rate_burst) are free again
-- rate_per_seconds after they were taken: a sliding window.
CREATE TABLE IF NOT EXISTS task_type_permits (
  type_id BIGINT NOT NULL,
  kind ENUM('running','rate') NOT NULL,
  n INT NOT NULL,
  task_id BIGINT NULL,
  lease_token VARCHAR(64) NULL,
  taken_at DATETIME(6) NULL,
  PRIMARY KEY (type_id, kind, n),
  -- Free rate permits first: never taken, or taken longest ago.
  KEY idx_permits_taken (type_id, kind, taken_at),
  CONSTRAINT fk_permits_flow FOREIGN KEY (type_id) REFERENCES task_type_flow (type_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The hot path as stored procedures of generation 9 (sql/migrations/0009_hot_path_procedures_v9.sql):
-- kept for libraries that run on schema 9; this release calls generation 10 (below).
DROP PROCEDURE IF EXISTS tm9_enqueue;
DROP PROCEDURE IF EXISTS tm9_claim_next;
DROP PROCEDURE IF EXISTS tm9_complete;
DROP PROCEDURE IF EXISTS tm9_complete_and_claim;
DELIMITER //
CREATE PROCEDURE tm9_enqueue(IN p_type_id BIGINT, IN p_version VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_params LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_scope VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_priority INT, IN p_max_attempts INT, IN p_run_at VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_delay_micros BIGINT, IN p_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_id BIGINT DEFAULT 0;
DECLARE v_created INT DEFAULT 0;
START TRANSACTION;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT p_type_id AS type_id, 'pending' AS status, p_params AS params_json, p_key AS dedupe_key, p_key AS dedupe_lock, p_scope AS dedupe_scope, p_priority AS priority, p_max_attempts AS max_attempts, COALESCE(CAST(p_run_at AS DATETIME(6)), NOW(6) + INTERVAL p_delay_micros MICROSECOND) AS run_at, p_token AS enqueue_token FROM task_types WHERE id = p_type_id AND version COLLATE utf8mb4_bin = p_version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
SET v_created = ROW_COUNT();
SET v_id = LAST_INSERT_ID();
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT v_id, 'created', NULL, NULL, NOW(6) FROM DUAL WHERE v_created = 1; END IF;
COMMIT;
SELECT v_id AS id, v_created AS created;
END//
CREATE PROCEDURE tm9_claim_next(IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0 WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', p_worker, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed'; END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
COMMIT;
END//
CREATE PROCEDURE tm9_complete(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = p_id AND t.lease_token = p_lease_token AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at); END IF;
COMMIT;
SELECT v_changed AS changed;
END//
CREATE PROCEDURE tm9_complete_and_claim(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = p_id AND t.lease_token = p_lease_token AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at); END IF;
SELECT v_changed AS changed;
IF EXISTS (SELECT 1 FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id AND lease_token = p_lease_token AND status = 'completed') THEN
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0 WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', p_worker, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed'; END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
END IF;
COMMIT;
END//
DELIMITER ;

-- The hot path as stored procedures of generation 10 (sql/migrations/0010_hot_path_procedures_v10.sql):
-- kept for libraries that run on schema 10; this release calls generation 11 (below).
DROP PROCEDURE IF EXISTS tm10_enqueue;
DROP PROCEDURE IF EXISTS tm10_claim_next;
DROP PROCEDURE IF EXISTS tm10_complete;
DROP PROCEDURE IF EXISTS tm10_complete_and_claim;
DELIMITER //
CREATE PROCEDURE tm10_enqueue(IN p_type_id BIGINT, IN p_version VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_params LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_scope VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_priority INT, IN p_max_attempts INT, IN p_run_at VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_delay_micros BIGINT, IN p_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_id BIGINT DEFAULT 0;
DECLARE v_created INT DEFAULT 0;
START TRANSACTION;
IF EXISTS (SELECT 1 FROM task_types WHERE id = p_type_id AND version COLLATE utf8mb4_bin = p_version AND is_active = 1 LOCK IN SHARE MODE) THEN
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) VALUES (p_type_id, 'pending', p_params, p_key, p_key, p_scope, p_priority, p_max_attempts, COALESCE(CAST(p_run_at AS DATETIME(6)), NOW(6) + INTERVAL p_delay_micros MICROSECOND), p_token) ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
SET v_created = ROW_COUNT(), v_id = LAST_INSERT_ID();
END IF;
IF p_history AND v_created = 1 THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (v_id, 'created', NULL, NULL, NOW(6)); END IF;
COMMIT;
SELECT v_id AS id, v_created AS created;
END//
CREATE PROCEDURE tm10_claim_next(IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0 WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history AND ROW_COUNT() = 1 THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (v_picked, 'claimed', p_worker, NULL, NOW(6)); END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
COMMIT;
END//
CREATE PROCEDURE tm10_complete(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
DECLARE v_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci DEFAULT NULL;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history AND v_changed = 1 THEN SELECT claimed_by INTO v_worker FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id; INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (p_id, 'completed', v_worker, NULL, NOW(6)); END IF;
COMMIT;
SELECT v_changed AS changed;
END//
CREATE PROCEDURE tm10_complete_and_claim(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
DECLARE v_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci DEFAULT NULL;
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history AND v_changed = 1 THEN SELECT claimed_by INTO v_worker FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id; INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (p_id, 'completed', v_worker, NULL, NOW(6)); END IF;
SELECT v_changed AS changed;
IF v_changed = 1 OR EXISTS (SELECT 1 FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id AND lease_token = p_lease_token AND status = 'completed') THEN
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0 WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history AND ROW_COUNT() = 1 THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (v_picked, 'claimed', p_worker, NULL, NOW(6)); END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
END IF;
COMMIT;
END//
DELIMITER ;

-- The hot path as stored procedures, generation 11 (sql/migrations/0011_hot_path_procedures_v11.sql);
-- the scripts the library sends otherwise run the same statements, except that a body writes a
-- history row when its own UPDATE changed the task (ROW_COUNT()), where a script reads the row,
-- and that the enqueue's body has the type gate's foreign key refuse a closed type, where a
-- script reads the type row.
DROP PROCEDURE IF EXISTS tm11_enqueue;
DROP PROCEDURE IF EXISTS tm11_claim_next;
DROP PROCEDURE IF EXISTS tm11_complete;
DROP PROCEDURE IF EXISTS tm11_complete_and_claim;
DELIMITER //
CREATE PROCEDURE tm11_enqueue(IN p_type_id BIGINT, IN p_version VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_params LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_scope VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_priority INT, IN p_max_attempts INT, IN p_run_at VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_delay_micros BIGINT, IN p_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_id BIGINT DEFAULT 0;
DECLARE v_created INT DEFAULT 0;
DECLARE v_refused INT DEFAULT 0;
DECLARE CONTINUE HANDLER FOR 1452 SET v_refused = 1;
START TRANSACTION;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token, gate_type_id, gate_version) VALUES (p_type_id, 'pending', p_params, p_key, p_key, p_scope, p_priority, p_max_attempts, COALESCE(CAST(p_run_at AS DATETIME(6)), NOW(6) + INTERVAL p_delay_micros MICROSECOND), p_token, p_type_id, p_version) ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
IF v_refused = 0 THEN SET v_created = ROW_COUNT(), v_id = LAST_INSERT_ID(); END IF;
IF p_history AND v_created = 1 THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (v_id, 'created', NULL, NULL, NOW(6)); END IF;
COMMIT;
SELECT v_id AS id, v_created AS created;
END//
CREATE PROCEDURE tm11_claim_next(IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history AND ROW_COUNT() = 1 THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (v_picked, 'claimed', p_worker, NULL, NOW(6)); END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
COMMIT;
END//
CREATE PROCEDURE tm11_complete(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
DECLARE v_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci DEFAULT NULL;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history AND v_changed = 1 THEN SELECT claimed_by INTO v_worker FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id; INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (p_id, 'completed', v_worker, NULL, NOW(6)); END IF;
COMMIT;
SELECT v_changed AS changed;
END//
CREATE PROCEDURE tm11_complete_and_claim(IN p_id BIGINT, IN p_lease_token VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_type_id BIGINT, IN p_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_token_prefix VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, IN p_lease_seconds INT, IN p_history BOOLEAN) SQL SECURITY INVOKER
BEGIN
DECLARE v_changed INT DEFAULT 0;
DECLARE v_worker VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci DEFAULT NULL;
DECLARE v_picked BIGINT DEFAULT NULL;
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = p_result, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = p_id AND lease_token = p_lease_token AND status = 'claimed';
SET v_changed = ROW_COUNT();
IF p_history AND v_changed = 1 THEN SELECT claimed_by INTO v_worker FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id; INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (p_id, 'completed', v_worker, NULL, NOW(6)); END IF;
SELECT v_changed AS changed;
IF v_changed = 1 OR EXISTS (SELECT 1 FROM tasks FORCE INDEX (PRIMARY) WHERE id = p_id AND lease_token = p_lease_token AND status = 'completed') THEN
IF p_type_id IS NULL THEN SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; ELSE SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = p_type_id AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO v_picked; END IF;
IF v_picked IS NOT NULL THEN
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = p_worker, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL p_lease_seconds SECOND, t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE t.id = v_picked AND t.status IN ('pending');
IF p_history AND ROW_COUNT() = 1 THEN INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) VALUES (v_picked, 'claimed', p_worker, NULL, NOW(6)); END IF;
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = v_picked AND t.lease_token = (CONCAT(p_token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
END IF;
END IF;
COMMIT;
END//
DELIMITER ;

INSERT IGNORE INTO tm_schema_migrations (version, name) VALUES
  (1, 'original_schema'),
  (2, 'leases_priorities_dedupe_scope'),
  (3, 'text_versions_claim_orders'),
  (4, 'hot_path_procedures'),
  (5, 'hot_path_procedures_v5'),
  (6, 'lean_layout'),
  (7, 'lean_layout_contract'),
  (8, 'schedules'),
  (9, 'flow_control'),
  (10, 'hot_path_procedures_v10'),
  (11, 'type_gate');
