-- Every statement of every step of a task's life, as the library sends it to MySQL or
-- MariaDB. Generated from src/queue/lifecycle.rs, src/queue/procedures.rs and
-- src/schedule/steps.rs by
-- src/queue/catalog.rs; tests/sql_steps.rs fails when the code and this file differ
-- (TASKMANAGER_BLESS=1 cargo test --test sql_steps writes it anew).
-- Values are named placeholders (:id, :lease_token, ...); the library writes them as
-- literals of src/sql.rs (integers, and text as _utf8mb4 X'<hex>', constant text as
-- well, shown quoted here), and a step's
-- statements travel together as one multi-statement text in one round trip.
-- The reads (get, list, history, stats) and selections are prepared statements: `?`
-- marks a value bound by the driver.
-- A step marked `procedure` is a CALL of the stored procedure of that name (its body:
-- sql/migrations/0011_hot_path_procedures_v11.sql); the script after it is the fallback.

-- name: enqueue one (procedure)
CALL tm11_enqueue(:type_id, :version, :params_json, :dedupe_key, :dedupe_scope, :priority, :max_attempts, :run_at, :delay_micros, :enqueue_token, TRUE);

-- name: enqueue one
START TRANSACTION;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, :priority AS priority, :max_attempts AS max_attempts, COALESCE(CAST(:run_at AS DATETIME(6)), NOW(6) + INTERVAL :delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT LAST_INSERT_ID(), 'created', NULL, NULL, NOW(6) FROM DUAL WHERE ROW_COUNT() = 1;
COMMIT;

-- name: enqueue one, history off
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, :priority AS priority, :max_attempts AS max_attempts, COALESCE(CAST(:run_at AS DATETIME(6)), NOW(6) + INTERVAL :delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);

-- name: enqueue one with a unique window (unique_for_seconds)
START TRANSACTION;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, :priority AS priority, :max_attempts AS max_attempts, COALESCE(CAST(:run_at AS DATETIME(6)), NOW(6) + INTERVAL :delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT LAST_INSERT_ID(), 'created', NULL, NULL, NOW(6) FROM DUAL WHERE ROW_COUNT() = 1;
UPDATE tasks FORCE INDEX (uq_tasks_dedupe_lock) SET dedupe_lock = NULL WHERE dedupe_lock = :dedupe_key AND created_at <= NOW(6) - INTERVAL :unique_for_seconds SECOND;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, :priority AS priority, :max_attempts AS max_attempts, COALESCE(CAST(:run_at AS DATETIME(6)), NOW(6) + INTERVAL :delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 AND ROW_COUNT() = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT LAST_INSERT_ID(), 'created', NULL, NULL, NOW(6) FROM DUAL WHERE ROW_COUNT() = 1;
COMMIT;

-- name: enqueue one with a unique window (unique_for_seconds), history off
START TRANSACTION;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, :priority AS priority, :max_attempts AS max_attempts, COALESCE(CAST(:run_at AS DATETIME(6)), NOW(6) + INTERVAL :delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
UPDATE tasks FORCE INDEX (uq_tasks_dedupe_lock) SET dedupe_lock = NULL WHERE dedupe_lock = :dedupe_key AND created_at <= NOW(6) - INTERVAL :unique_for_seconds SECOND;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, :priority AS priority, :max_attempts AS max_attempts, COALESCE(CAST(:run_at AS DATETIME(6)), NOW(6) + INTERVAL :delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 AND ROW_COUNT() = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
COMMIT;

-- name: enqueue in the caller's transaction (enqueue_statement: the caller runs these on its own connection)
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, :priority AS priority, :max_attempts AS max_attempts, COALESCE(CAST(:run_at AS DATETIME(6)), NOW(6) + INTERVAL :delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM DUAL ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'created', NULL, NULL, NOW(6) FROM tasks t FORCE INDEX (uq_tasks_dedupe_lock) WHERE t.dedupe_lock = :dedupe_key AND t.enqueue_token = :enqueue_token AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'created');
SELECT t.id, t.status, COALESCE(t.enqueue_token = :enqueue_token, 0) AS created FROM tasks t FORCE INDEX (uq_tasks_dedupe_lock) WHERE t.dedupe_lock = :dedupe_key LOCK IN SHARE MODE;

-- name: enqueue one, after it created nothing: the types' states and the key's holder
SELECT id, version, is_active FROM task_types WHERE id IN (:type_id) AND NOT EXISTS (SELECT 1 FROM tasks t FORCE INDEX (uq_tasks_dedupe_lock) WHERE t.dedupe_lock IN (:dedupe_key) AND t.enqueue_token = :enqueue_token);
SELECT id, dedupe_lock, status, COALESCE(enqueue_token = :enqueue_token, 0) AS created_by_this_call FROM tasks FORCE INDEX (uq_tasks_dedupe_lock) WHERE dedupe_lock IN (:dedupe_key);

-- name: enqueue batch (two tasks of two types; :rows_json is the batch as one JSON document)
START TRANSACTION;
SET @tm_rows = :rows_json;
SELECT (SELECT COALESCE(MAX(id), 0) FROM tasks) INTO @tm_before;
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT v.type_id AS type_id, 'pending' AS status, v.params_json AS params_json, v.dedupe_key AS dedupe_key, v.dedupe_key AS dedupe_lock, v.dedupe_scope AS dedupe_scope, v.priority AS priority, v.max_attempts AS max_attempts, COALESCE(CAST(v.run_at AS DATETIME(6)), NOW(6) + INTERVAL v.delay_micros MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM JSON_TABLE(@tm_rows, '$[*]' COLUMNS (type_id BIGINT PATH '$.t', params_json LONGTEXT CHARACTER SET utf8mb4 PATH '$.p', dedupe_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PATH '$.k', dedupe_scope VARCHAR(10) PATH '$.s', priority INT PATH '$.o', max_attempts INT PATH '$.m', run_at VARCHAR(32) PATH '$.r', delay_micros BIGINT PATH '$.d')) AS v WHERE (SELECT COUNT(*) FROM task_types WHERE (id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1) OR (id = :type_id_2 AND version COLLATE utf8mb4_bin = :version AND is_active = 1)) = 2 ON DUPLICATE KEY UPDATE tasks.id = tasks.id;
SELECT (SELECT JSON_ARRAYAGG(id) FROM tasks FORCE INDEX (PRIMARY) WHERE id > @tm_before AND enqueue_token = :enqueue_token) INTO @tm_created;
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'created', NULL, NULL, NOW(6) FROM JSON_TABLE(@tm_created, '$[*]' COLUMNS (id BIGINT PATH '$')) AS t;
SELECT t.id, t.dedupe_lock, t.status, COALESCE(t.enqueue_token = :enqueue_token, 0) AS created_by_this_call FROM (SELECT DISTINCT dedupe_key FROM JSON_TABLE(@tm_rows, '$[*]' COLUMNS (dedupe_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PATH '$.k')) AS listed) AS v STRAIGHT_JOIN tasks t FORCE INDEX (uq_tasks_dedupe_lock) ON t.dedupe_lock = v.dedupe_key;
SET @tm_rows = NULL, @tm_created = NULL;
COMMIT;

-- name: enqueue batch, after it created nothing: the types' states
SELECT id, version, is_active FROM task_types WHERE id IN (:type_id,:type_id_2) AND NOT EXISTS (SELECT 1 FROM tasks t FORCE INDEX (uq_tasks_dedupe_lock) WHERE t.dedupe_lock IN (:dedupe_key,:dedupe_key) AND t.enqueue_token = :enqueue_token);

-- name: claim one, any type (procedure)
CALL tm11_claim_next(NULL, :worker_id, :token_prefix, :lease_seconds, TRUE);

-- name: claim one, one type (procedure)
CALL tm11_claim_next(:type_id, :worker_id, :token_prefix, :lease_seconds, TRUE);

-- name: claim one
START TRANSACTION;
SELECT (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) INTO @tm_picked;
UPDATE tasks t FORCE INDEX (PRIMARY) SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE t.id = @tm_picked AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = @tm_picked AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = @tm_picked AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
COMMIT;

-- name: claim many of listed types, with the lazy recovery of expired leases
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_leased) WHERE claimed_until <= NOW(6) AND (lease_expires_at <= NOW(6) OR (lease_expires_at IS NULL AND COALESCE(claimed_at, updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND)) ORDER BY claimed_until LIMIT 100 FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_expired;
UPDATE JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.completed_at = IF(t.attempts >= t.max_attempts, NOW(6), NULL), t.dedupe_lock = IF(t.attempts >= t.max_attempts, IF(t.dedupe_scope = 'active', NULL, t.dedupe_lock), t.dedupe_lock), t.error_message = CONCAT('lease expired during attempt ', t.attempts, ' of ', t.max_attempts), t.run_at = NOW(6), t.lease_expires_at = NULL, t.status = IF(t.attempts >= t.max_attempts, 'failed', 'pending') WHERE TRUE AND t.status IN ('claimed') AND (t.lease_expires_at <= NOW(6) OR (t.lease_expires_at IS NULL AND COALESCE(t.claimed_at, t.updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND));
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'lease_expired', t.claimed_by, 'lease expired: counted as a failed attempt', NOW(6) FROM JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND TRUE;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id IN (:type_id,:type_id_2) AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
SELECT type_id, max_running IS NOT NULL AS running, rate_limit IS NOT NULL AS rate FROM task_type_flow WHERE max_running IS NOT NULL OR rate_limit IS NOT NULL ORDER BY type_id;
COMMIT;

-- name: claim many of listed types, with the lazy recovery of expired leases, history off
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_leased) WHERE claimed_until <= NOW(6) AND (lease_expires_at <= NOW(6) OR (lease_expires_at IS NULL AND COALESCE(claimed_at, updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND)) ORDER BY claimed_until LIMIT 100 FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_expired;
UPDATE JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.completed_at = IF(t.attempts >= t.max_attempts, NOW(6), NULL), t.dedupe_lock = IF(t.attempts >= t.max_attempts, IF(t.dedupe_scope = 'active', NULL, t.dedupe_lock), t.dedupe_lock), t.error_message = CONCAT('lease expired during attempt ', t.attempts, ' of ', t.max_attempts), t.run_at = NOW(6), t.lease_expires_at = NULL, t.status = IF(t.attempts >= t.max_attempts, 'failed', 'pending') WHERE TRUE AND t.status IN ('claimed') AND (t.lease_expires_at <= NOW(6) OR (t.lease_expires_at IS NULL AND COALESCE(t.claimed_at, t.updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND));
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id IN (:type_id,:type_id_2) AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
SELECT type_id, max_running IS NOT NULL AS running, rate_limit IS NOT NULL AS rate FROM task_type_flow WHERE max_running IS NOT NULL OR rate_limit IS NOT NULL ORDER BY type_id;
COMMIT;

-- name: claim many, ordered by created_at ASC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_id) WHERE is_pending = 1 AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY id ASC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.id ASC;
COMMIT;

-- name: claim many, ordered by created_at DESC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_id) WHERE is_pending = 1 AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY id DESC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.id DESC;
COMMIT;

-- name: claim many, ordered by priority ASC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_priority) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority ASC, id ASC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority ASC, t.id ASC;
COMMIT;

-- name: claim many, ordered by priority DESC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_priority) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id DESC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id DESC;
COMMIT;

-- name: claim many, ordered by id ASC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_id) WHERE is_pending = 1 AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY id ASC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.id ASC;
COMMIT;

-- name: claim many, ordered by id DESC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_id) WHERE is_pending = 1 AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY id DESC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.id DESC;
COMMIT;

-- name: claim many, ordered by attempts ASC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_attempts) WHERE pending_attempts IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_attempts ASC, id ASC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.attempts ASC, t.id ASC;
COMMIT;

-- name: claim many, ordered by attempts DESC
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready_by_attempts) WHERE pending_attempts IS NOT NULL AND run_at <= NOW(6)  AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_attempts DESC, id DESC LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.attempts DESC, t.id DESC;
COMMIT;

-- name: claim many of listed types, one of them limited (max_running and a rate: its gated pick), with the report of when a held-back type may start
SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_leased) WHERE claimed_until <= NOW(6) AND (lease_expires_at <= NOW(6) OR (lease_expires_at IS NULL AND COALESCE(claimed_at, updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND)) ORDER BY claimed_until LIMIT 100 FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_expired;
UPDATE JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.completed_at = IF(t.attempts >= t.max_attempts, NOW(6), NULL), t.dedupe_lock = IF(t.attempts >= t.max_attempts, IF(t.dedupe_scope = 'active', NULL, t.dedupe_lock), t.dedupe_lock), t.error_message = CONCAT('lease expired during attempt ', t.attempts, ' of ', t.max_attempts), t.run_at = NOW(6), t.lease_expires_at = NULL, t.status = IF(t.attempts >= t.max_attempts, 'failed', 'pending') WHERE TRUE AND t.status IN ('claimed') AND (t.lease_expires_at <= NOW(6) OR (t.lease_expires_at IS NULL AND COALESCE(t.claimed_at, t.updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND));
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'lease_expired', t.claimed_by, 'lease expired: counted as a failed attempt', NOW(6) FROM JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND TRUE;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id IN (:type_id,:type_id_2) AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_picked;
SELECT (SELECT JSON_ARRAYAGG(n) FROM (SELECT p.n FROM task_type_permits p WHERE p.type_id = :type_id_2 AND p.kind = 'running' AND NOT EXISTS (SELECT 1 FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = p.task_id AND t.status = 'claimed' AND t.lease_token <=> p.lease_token) AND EXISTS (SELECT 1 FROM task_type_flow WHERE type_id = :type_id_2 AND (max_running IS NOT NULL OR rate_limit IS NOT NULL) AND (paused_until IS NULL OR paused_until <= NOW(6))) ORDER BY p.n LIMIT :limit FOR UPDATE SKIP LOCKED) AS locked) INTO @tm_running0;
SELECT (SELECT JSON_ARRAYAGG(p.n) FROM JSON_TABLE(COALESCE(@tm_running0, '[]'), '$[*]' COLUMNS (k FOR ORDINALITY, n BIGINT PATH '$')) AS locked JOIN task_type_permits p ON p.type_id = :type_id_2 AND p.kind = 'running' AND p.n = locked.n WHERE NOT EXISTS (SELECT 1 FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = p.task_id AND t.status = 'claimed' AND t.lease_token <=> p.lease_token)) INTO @tm_running0;
SELECT (SELECT JSON_ARRAYAGG(n) FROM (SELECT p.n FROM task_type_permits p WHERE p.type_id = :type_id_2 AND p.kind = 'rate' AND (p.taken_at IS NULL OR p.taken_at <= NOW(6) - INTERVAL (SELECT rate_per_seconds FROM task_type_flow WHERE type_id = :type_id_2 AND (max_running IS NOT NULL OR rate_limit IS NOT NULL) AND (paused_until IS NULL OR paused_until <= NOW(6))) SECOND) AND EXISTS (SELECT 1 FROM task_type_flow WHERE type_id = :type_id_2 AND (max_running IS NOT NULL OR rate_limit IS NOT NULL) AND (paused_until IS NULL OR paused_until <= NOW(6))) ORDER BY p.taken_at LIMIT :limit FOR UPDATE SKIP LOCKED) AS locked) INTO @tm_rate0;
SELECT (SELECT LEAST(IF(max_running IS NULL, :limit, COALESCE(JSON_LENGTH(@tm_running0), 0)), IF(rate_limit IS NULL, :limit, COALESCE(JSON_LENGTH(@tm_rate0), 0))) FROM task_type_flow WHERE type_id = :type_id_2 AND (max_running IS NOT NULL OR rate_limit IS NOT NULL) AND (paused_until IS NULL OR paused_until <= NOW(6))) INTO @tm_free0;
SELECT IF(@tm_free0 > 0, (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id = :type_id_2 ORDER BY pending_priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked), NULL) INTO @tm_gated0;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT t.id FROM (SELECT n AS id FROM JSON_TABLE(COALESCE(@tm_picked, '[]'), '$[*]' COLUMNS (k FOR ORDINALITY, n BIGINT PATH '$')) AS plain WHERE TRUE UNION SELECT n FROM JSON_TABLE(COALESCE(@tm_gated0, '[]'), '$[*]' COLUMNS (k FOR ORDINALITY, n BIGINT PATH '$')) AS gated WHERE k <= @tm_free0) AS candidate STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = candidate.id ORDER BY t.priority DESC, t.id LIMIT :limit) AS merged) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
UPDATE (SELECT ROW_NUMBER() OVER (ORDER BY t.id) AS k, t.id, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' AND t.type_id = :type_id_2) AS started JOIN JSON_TABLE(COALESCE(@tm_running0, '[]'), '$[*]' COLUMNS (k FOR ORDINALITY, n BIGINT PATH '$')) AS permit ON permit.k = started.k JOIN task_type_permits p ON p.type_id = :type_id_2 AND p.kind = 'running' AND p.n = permit.n SET p.task_id = started.id, p.lease_token = started.lease_token, p.taken_at = NOW(6);
UPDATE (SELECT ROW_NUMBER() OVER (ORDER BY t.id) AS k, t.id, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' AND t.type_id = :type_id_2) AS started JOIN JSON_TABLE(COALESCE(@tm_rate0, '[]'), '$[*]' COLUMNS (k FOR ORDINALITY, n BIGINT PATH '$')) AS permit ON permit.k = started.k JOIN task_type_permits p ON p.type_id = :type_id_2 AND p.kind = 'rate' AND p.n = permit.n SET p.taken_at = NOW(6);
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
SELECT DATE_FORMAT(MIN(at), '%Y-%m-%dT%H:%i:%s.%fZ') AS next_allowed_at FROM (SELECT MIN(p.taken_at) + INTERVAL MAX(f.rate_per_seconds) SECOND AS at FROM task_type_flow f JOIN task_type_permits p ON p.type_id = f.type_id AND p.kind = 'rate' WHERE f.rate_limit IS NOT NULL AND f.type_id IN (:type_id,:type_id_2) AND EXISTS (SELECT 1 FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE type_id = f.type_id AND pending_priority IS NOT NULL AND run_at <= NOW(6)) GROUP BY f.type_id HAVING SUM(p.taken_at IS NULL OR p.taken_at <= NOW(6) - INTERVAL f.rate_per_seconds SECOND) = 0 UNION ALL SELECT f.paused_until FROM task_type_flow f WHERE f.paused_until > NOW(6) AND f.paused_until < TIMESTAMP'9999-12-31 00:00:00' AND f.type_id IN (:type_id,:type_id_2) AND EXISTS (SELECT 1 FROM tasks FORCE INDEX (idx_tasks_type_ready) WHERE type_id = f.type_id AND pending_priority IS NOT NULL AND run_at <= NOW(6))) AS held_back;
SELECT type_id, max_running IS NOT NULL AS running, rate_limit IS NOT NULL AS rate FROM task_type_flow WHERE max_running IS NOT NULL OR rate_limit IS NOT NULL ORDER BY type_id;
COMMIT;

-- name: claim, repeated after a lost connection: the tasks its first run leased
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM tasks t WHERE t.status = 'claimed' AND t.lease_token LIKE (CONCAT(:token_prefix, '.', '%') COLLATE utf8mb4_unicode_ci) ORDER BY t.priority DESC, t.id;

-- name: recover expired leases (cron, operator)
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_leased) WHERE claimed_until <= NOW(6) AND (lease_expires_at <= NOW(6) OR (lease_expires_at IS NULL AND COALESCE(claimed_at, updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND)) ORDER BY claimed_until LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_expired;
UPDATE JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.completed_at = IF(t.attempts >= t.max_attempts, NOW(6), NULL), t.dedupe_lock = IF(t.attempts >= t.max_attempts, IF(t.dedupe_scope = 'active', NULL, t.dedupe_lock), t.dedupe_lock), t.error_message = CONCAT('lease expired during attempt ', t.attempts, ' of ', t.max_attempts), t.run_at = NOW(6), t.lease_expires_at = NULL, t.status = IF(t.attempts >= t.max_attempts, 'failed', 'pending') WHERE TRUE AND t.status IN ('claimed') AND (t.lease_expires_at <= NOW(6) OR (t.lease_expires_at IS NULL AND COALESCE(t.claimed_at, t.updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND));
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'lease_expired', t.claimed_by, 'lease expired: counted as a failed attempt', NOW(6) FROM JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND TRUE;
SELECT COUNT(*) AS recovered, COALESCE(SUM(t.status = 'failed'), 0) AS failed FROM JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND TRUE;
COMMIT;

-- name: complete by lease token (procedure)
CALL tm11_complete(:id, :lease_token, :result_json, TRUE);

-- name: complete by lease token
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = :result_json, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id AND t.lease_token = :lease_token AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at);
COMMIT;

-- name: complete by lease token, history off
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = :result_json, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';

-- name: complete by worker id (the original's workers)
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = :result_json, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = :id AND claimed_by = :worker_id AND status = 'claimed';
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id AND t.claimed_by = :worker_id AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at);
COMMIT;

-- name: a guarded step that matched nothing: the task's status and holder
SELECT status, lease_token AS holder FROM tasks FORCE INDEX (PRIMARY) WHERE id = :id;

-- name: complete and claim the next (procedure)
CALL tm11_complete_and_claim(:id, :lease_token, :result_json, NULL, :worker_id, :token_prefix, :lease_seconds, TRUE);

-- name: complete and claim the next ones, with the lazy recovery
START TRANSACTION;
SELECT (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_leased) WHERE claimed_until <= NOW(6) AND (lease_expires_at <= NOW(6) OR (lease_expires_at IS NULL AND COALESCE(claimed_at, updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND)) ORDER BY claimed_until LIMIT 100 FOR UPDATE SKIP LOCKED) AS picked) INTO @tm_expired;
UPDATE JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.completed_at = IF(t.attempts >= t.max_attempts, NOW(6), NULL), t.dedupe_lock = IF(t.attempts >= t.max_attempts, IF(t.dedupe_scope = 'active', NULL, t.dedupe_lock), t.dedupe_lock), t.error_message = CONCAT('lease expired during attempt ', t.attempts, ' of ', t.max_attempts), t.run_at = NOW(6), t.lease_expires_at = NULL, t.status = IF(t.attempts >= t.max_attempts, 'failed', 'pending') WHERE TRUE AND t.status IN ('claimed') AND (t.lease_expires_at <= NOW(6) OR (t.lease_expires_at IS NULL AND COALESCE(t.claimed_at, t.updated_at) <= NOW(6) - INTERVAL :claim_timeout SECOND));
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'lease_expired', t.claimed_by, 'lease expired: counted as a failed attempt', NOW(6) FROM JSON_TABLE(@tm_expired, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND TRUE;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = :result_json, completed_at = NOW(6), lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id AND t.lease_token = :lease_token AND t.status = 'completed' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'completed' AND h.created_at >= t.claimed_at);
SELECT IF(EXISTS (SELECT 1 FROM tasks FORCE INDEX (PRIMARY) WHERE id = :id AND lease_token = :lease_token AND status = 'completed'), (SELECT JSON_ARRAYAGG(id) FROM (SELECT id FROM tasks FORCE INDEX (idx_tasks_ready) WHERE pending_priority IS NOT NULL AND run_at <= NOW(6) AND type_id IN (:type_id,:type_id_2) AND type_id NOT IN (SELECT type_id FROM task_type_flow WHERE paused_until > NOW(6) OR max_running IS NOT NULL OR rate_limit IS NOT NULL) ORDER BY pending_priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked), NULL) INTO @tm_picked;
UPDATE JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id SET t.status = 'claimed', t.attempts = t.attempts + 1, t.claimed_by = :worker_id, t.claimed_at = NOW(6), t.lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci), t.progress = 0, t.gate_type_id = NULL, t.gate_version = NULL WHERE TRUE AND t.status IN ('pending');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'claimed', :worker_id, NULL, NOW(6) FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed';
SELECT t.id, t.type_id, t.params_json, t.priority, t.attempts, t.max_attempts, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, t.lease_token FROM JSON_TABLE(@tm_picked, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed STRAIGHT_JOIN tasks t FORCE INDEX (PRIMARY) ON t.id = listed.id WHERE TRUE AND t.lease_token = (CONCAT(:token_prefix, '.', t.id) COLLATE utf8mb4_unicode_ci) AND t.status = 'claimed' ORDER BY t.priority DESC, t.id;
SELECT type_id, max_running IS NOT NULL AS running, rate_limit IS NOT NULL AS rate FROM task_type_flow WHERE max_running IS NOT NULL OR rate_limit IS NOT NULL ORDER BY type_id;
COMMIT;

-- name: complete a batch
START TRANSACTION;
SET @tm_now = NOW(6);
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'completed', result_json = CASE id WHEN :id THEN :result_json WHEN :id_2 THEN :result_json_2 END, completed_at = @tm_now, lease_expires_at = NULL, progress = 100, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock) WHERE id IN (:id,:id_2) AND status IN ('claimed') AND lease_token = CASE id WHEN :id THEN :lease_token WHEN :id_2 THEN :lease_token_2 END;
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'completed', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id IN (:id,:id_2) AND t.status = 'completed' AND t.completed_at = @tm_now;
SELECT t.id, t.status, t.lease_token, COALESCE(t.status = 'completed' AND t.completed_at = @tm_now, 0) AS finished_now FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id IN (:id,:id_2);
COMMIT;

-- name: fail, retried with the exponential backoff while attempts remain (:jitter is random, from 0.5 to 1)
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET run_at = IF((true AND attempts < max_attempts), NOW(6) + INTERVAL CAST(LEAST(:retry_backoff_max, :retry_backoff_base * POW(2, LEAST(GREATEST(attempts - 1, 0), 40))) * :jitter * 1000000 AS SIGNED) MICROSECOND, run_at), completed_at = IF((true AND attempts < max_attempts), NULL, NOW(6)), dedupe_lock = IF((true AND attempts < max_attempts), dedupe_lock, IF(dedupe_scope = 'active', NULL, dedupe_lock)), status = IF((true AND attempts < max_attempts), 'pending', 'failed'), error_message = :error_message, lease_expires_at = NULL WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, IF(t.status = 'pending', 'retrying', 'failed'), t.claimed_by, :error_message, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id AND t.lease_token = :lease_token AND t.status IN ('pending', 'failed') AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = IF(t.status = 'pending', 'retrying', 'failed') AND h.created_at >= t.claimed_at);
SELECT status, lease_token AS holder, attempts, max_attempts, DATE_FORMAT(run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS run_at FROM tasks FORCE INDEX (PRIMARY) WHERE id = :id;
COMMIT;

-- name: fail, retried after a fixed delay (retry_in_seconds)
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET run_at = IF((true AND attempts < max_attempts), NOW(6) + INTERVAL :delay_micros MICROSECOND, run_at), completed_at = IF((true AND attempts < max_attempts), NULL, NOW(6)), dedupe_lock = IF((true AND attempts < max_attempts), dedupe_lock, IF(dedupe_scope = 'active', NULL, dedupe_lock)), status = IF((true AND attempts < max_attempts), 'pending', 'failed'), error_message = :error_message, lease_expires_at = NULL WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, IF(t.status = 'pending', 'retrying', 'failed'), t.claimed_by, :error_message, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id AND t.lease_token = :lease_token AND t.status IN ('pending', 'failed') AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = IF(t.status = 'pending', 'retrying', 'failed') AND h.created_at >= t.claimed_at);
SELECT status, lease_token AS holder, attempts, max_attempts, DATE_FORMAT(run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS run_at FROM tasks FORCE INDEX (PRIMARY) WHERE id = :id;
COMMIT;

-- name: heartbeat with progress
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, progress = :progress WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'progress', t.claimed_by, :progress_note, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id AND ROW_COUNT() > 0;
SELECT status, lease_token AS holder, DATE_FORMAT(lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, progress FROM tasks FORCE INDEX (PRIMARY) WHERE id = :id;
COMMIT;

-- name: heartbeat without progress
UPDATE tasks FORCE INDEX (PRIMARY) SET lease_expires_at = NOW(6) + INTERVAL :lease_seconds SECOND, progress = progress WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';
SELECT status, lease_token AS holder, DATE_FORMAT(lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, progress FROM tasks FORCE INDEX (PRIMARY) WHERE id = :id;

-- name: release
START TRANSACTION;
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'pending', attempts = GREATEST(attempts - 1, 0), run_at = NOW(6), lease_expires_at = NULL WHERE id = :id AND lease_token = :lease_token AND status = 'claimed';
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'released', t.claimed_by, NULL, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id AND t.lease_token = :lease_token AND t.status = 'pending' AND NOT EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.status_change = 'released' AND h.created_at >= t.claimed_at);
COMMIT;

-- name: cancel by an operator (after a locking read of the task's status)
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'cancelled', completed_at = NOW(6), lease_expires_at = NULL, lease_token = NULL, dedupe_lock = IF(dedupe_scope = 'active', NULL, dedupe_lock), error_message = COALESCE(:reason, error_message) WHERE id = :id AND status IN ('pending','claimed');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'cancelled', 'operator', :reason, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id;

-- name: retry by an operator (after a locking read of the task's status)
UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'pending', attempts = 0, run_at = NOW(6), completed_at = NULL, lease_token = NULL, dedupe_lock = dedupe_key, error_message = COALESCE(:reason, error_message) WHERE id = :id AND status IN ('failed','cancelled');
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT t.id, 'retried', 'operator', :reason, NOW(6) FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id = :id;

-- name: prune: a page of finished tasks
SELECT id FROM tasks FORCE INDEX (idx_tasks_done) WHERE finished_status = 'completed' AND (completed_at < NOW(6) - INTERVAL :older_than_seconds SECOND OR (completed_at IS NULL AND updated_at < NOW(6) - INTERVAL :older_than_seconds SECOND)) ORDER BY completed_at LIMIT :limit;

-- name: prune, dry run: how many
SELECT COUNT(*) FROM tasks WHERE finished_status IN ('completed','failed','cancelled') AND (completed_at < NOW(6) - INTERVAL :older_than_seconds SECOND OR (completed_at IS NULL AND updated_at < NOW(6) - INTERVAL :older_than_seconds SECOND));

-- name: cancel or retry by an operator: the locking read first (`?`: the id)
SELECT status FROM tasks WHERE id = ? FOR UPDATE;

-- name: get a task
SELECT t.id, y.name AS type_name, t.type_id, t.status, t.params_json, t.result_json, t.error_message, t.attempts, t.max_attempts, t.priority, t.progress, t.dedupe_key, t.dedupe_scope, t.claimed_by, DATE_FORMAT(t.claimed_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS claimed_at, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, DATE_FORMAT(t.run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS run_at, DATE_FORMAT(t.completed_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS completed_at, DATE_FORMAT(t.created_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS created_at, DATE_FORMAT(t.updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS updated_at FROM tasks t JOIN task_types y ON y.id = t.type_id WHERE t.id = ?;

-- name: list tasks, every filter given
SELECT t.id, y.name AS type_name, t.type_id, t.status, t.params_json, t.result_json, t.error_message, t.attempts, t.max_attempts, t.priority, t.progress, t.dedupe_key, t.dedupe_scope, t.claimed_by, DATE_FORMAT(t.claimed_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS claimed_at, DATE_FORMAT(t.lease_expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS lease_expires_at, DATE_FORMAT(t.run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS run_at, DATE_FORMAT(t.completed_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS completed_at, DATE_FORMAT(t.created_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS created_at, DATE_FORMAT(t.updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS updated_at FROM tasks t JOIN task_types y ON y.id = t.type_id WHERE 1 = 1 AND y.name = ? AND t.status = ? AND t.id IN (?) AND t.id < ? AND t.created_at <= NOW(6) - INTERVAL ? SECOND AND t.created_at >= NOW(6) - INTERVAL ? SECOND AND t.claimed_by = ? AND (t.params_json LIKE CONCAT('%', ?, '%') ESCAPE '!' OR t.error_message LIKE CONCAT('%', ?, '%') ESCAPE '!') AND (t.params_json LIKE CONCAT('%', ?, '%') ESCAPE '!') AND (t.error_message LIKE CONCAT('%', ?, '%') ESCAPE '!') ORDER BY t.id DESC LIMIT ? OFFSET ?;

-- name: bulk cancel or retry: a page of the selected tasks, every filter given
SELECT t.id, t.status FROM tasks t JOIN task_types y ON y.id = t.type_id WHERE 1 = 1 AND y.name = ? AND t.status = ? AND t.id IN (?) AND t.id < ? AND t.created_at <= NOW(6) - INTERVAL ? SECOND AND t.created_at >= NOW(6) - INTERVAL ? SECOND AND t.claimed_by = ? AND (t.params_json LIKE CONCAT('%', ?, '%') ESCAPE '!' OR t.error_message LIKE CONCAT('%', ?, '%') ESCAPE '!') AND (t.params_json LIKE CONCAT('%', ?, '%') ESCAPE '!') AND (t.error_message LIKE CONCAT('%', ?, '%') ESCAPE '!') AND t.id < ? ORDER BY t.id DESC LIMIT ?;

-- name: a task's history
SELECT id, task_id, status_change, worker_id, message, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS created_at FROM task_history WHERE task_id = ? ORDER BY id;

-- name: stats: tasks per type and status
SELECT y.name, c.status, COALESCE(c.n, 0) AS n FROM task_types y LEFT JOIN (SELECT type_id, 'pending' AS status, COUNT(*) AS n FROM tasks WHERE pending_priority IS NOT NULL GROUP BY type_id UNION ALL SELECT type_id, 'claimed', COUNT(*) FROM tasks WHERE claimed_until IS NOT NULL GROUP BY type_id UNION ALL SELECT type_id, finished_status, COUNT(*) FROM tasks WHERE finished_status IS NOT NULL GROUP BY finished_status, type_id) AS c ON c.type_id = y.id;

-- name: stats: the oldest runnable pending task per type
SELECT y.name, TIMESTAMPDIFF(MICROSECOND, MIN(t.created_at), NOW(6)) / 1e6 AS age FROM tasks t JOIN task_types y ON y.id = t.type_id WHERE t.is_pending = 1 AND t.run_at <= NOW(6) GROUP BY y.name;

-- name: stats: expired leases per type
SELECT y.name, COUNT(*) AS n FROM tasks t JOIN task_types y ON y.id = t.type_id WHERE t.claimed_until <= NOW(6) AND t.lease_expires_at <= NOW(6) GROUP BY y.name;

-- name: stats: finished tasks per minute over the last day
SELECT y.name, t.finished_status AS status, TIMESTAMPDIFF(SECOND, t.completed_at, NOW(6)) DIV 60 AS minute, COUNT(*) AS n FROM tasks t JOIN task_types y ON y.id = t.type_id WHERE t.finished_status IN ('completed', 'failed') AND t.completed_at > NOW(6) - INTERVAL 24 HOUR GROUP BY y.name, t.finished_status, minute;

-- name: stats: claims per worker in the last hour
SELECT worker_id, DATE_FORMAT(MAX(created_at), '%Y-%m-%dT%H:%i:%s.%fZ') AS last, COUNT(*) AS n FROM task_history WHERE created_at > NOW(6) - INTERVAL 1 HOUR AND status_change = 'claimed' GROUP BY worker_id;

-- name: stats: tasks each worker holds
SELECT claimed_by, COUNT(*) AS n, DATE_FORMAT(MAX(claimed_at), '%Y-%m-%dT%H:%i:%s.%fZ') AS last FROM tasks WHERE claimed_until IS NOT NULL GROUP BY claimed_by;

-- name: stats: the database's clock
SELECT DATE_FORMAT(NOW(6), '%Y-%m-%dT%H:%i:%s.%fZ') AS now;

-- name: prune: delete a page and its history
START TRANSACTION;
DELETE h FROM tasks t FORCE INDEX (PRIMARY) STRAIGHT_JOIN task_history h FORCE INDEX (idx_task_id) ON h.task_id = t.id WHERE t.id IN (:id,:id_2) AND t.status = 'completed' AND (t.completed_at < NOW(6) - INTERVAL :older_than_seconds SECOND OR (t.completed_at IS NULL AND t.updated_at < NOW(6) - INTERVAL :older_than_seconds SECOND));
DELETE t FROM tasks t FORCE INDEX (PRIMARY) WHERE t.id IN (:id,:id_2) AND t.status = 'completed' AND (t.completed_at < NOW(6) - INTERVAL :older_than_seconds SECOND OR (t.completed_at IS NULL AND t.updated_at < NOW(6) - INTERVAL :older_than_seconds SECOND));
COMMIT;

-- name: schedules: put's locking read of the schedule and the clock
SELECT DATE_FORMAT(NOW(6), '%Y-%m-%dT%H:%i:%s.%fZ') AS now, s.cron, s.timezone, s.enabled, DATE_FORMAT(s.next_run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS next_run_at FROM (SELECT 1) AS clock LEFT JOIN task_schedules s ON s.name = ? FOR UPDATE;

-- name: schedules: put a new one
INSERT INTO task_schedules (name, type_id, cron, timezone, params_json, enabled, misfire, misfire_grace_seconds, next_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: schedules: put one again
UPDATE task_schedules SET type_id = ?, cron = ?, timezone = ?, params_json = ?, enabled = ?, misfire = ?, misfire_grace_seconds = ?, next_run_at = ? WHERE name = ?;

-- name: schedules: delete one, with its runs
DELETE FROM task_schedules WHERE name = ?;

-- name: schedules: list
SELECT s.id, s.name, y.name AS type_name, s.type_id, s.cron, s.timezone, s.params_json, s.enabled, s.misfire, s.misfire_grace_seconds, DATE_FORMAT(s.next_run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS next_run_at, DATE_FORMAT(s.last_run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS last_run_at, DATE_FORMAT(s.created_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS created_at, DATE_FORMAT(s.updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS updated_at FROM task_schedules s JOIN task_types y ON y.id = s.type_id ORDER BY s.name;

-- name: schedules: one by name
SELECT s.id, s.name, y.name AS type_name, s.type_id, s.cron, s.timezone, s.params_json, s.enabled, s.misfire, s.misfire_grace_seconds, DATE_FORMAT(s.next_run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS next_run_at, DATE_FORMAT(s.last_run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS last_run_at, DATE_FORMAT(s.created_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS created_at, DATE_FORMAT(s.updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS updated_at FROM task_schedules s JOIN task_types y ON y.id = s.type_id WHERE s.name = ?;

-- name: schedules tick: the clock and the earliest next run
SELECT DATE_FORMAT(NOW(6), '%Y-%m-%dT%H:%i:%s.%fZ') AS now, DATE_FORMAT(MIN(next_run_at), '%Y-%m-%dT%H:%i:%s.%fZ') AS next FROM task_schedules FORCE INDEX (idx_schedules_due) WHERE enabled = 1 AND next_run_at IS NOT NULL;

-- name: schedules tick: lock the due schedules
START TRANSACTION;
SELECT id, name, type_id, cron, timezone, params_json, misfire, misfire_grace_seconds, DATE_FORMAT(next_run_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS next_run_at, DATE_FORMAT(NOW(6), '%Y-%m-%dT%H:%i:%s.%fZ') AS now FROM task_schedules FORCE INDEX (idx_schedules_due) WHERE enabled = 1 AND next_run_at <= NOW(6) ORDER BY next_run_at LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: schedules tick: enqueue one occurrence
DO LAST_INSERT_ID(0);
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, 0 AS priority, :max_attempts AS max_attempts, COALESCE(CAST(NULL AS DATETIME(6)), NOW(6) + INTERVAL 0 MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
SET @tm_created = ROW_COUNT();
SET @tm_task = LAST_INSERT_ID();
INSERT INTO task_history (task_id, status_change, worker_id, message, created_at) SELECT @tm_task, 'created', NULL, NULL, NOW(6) FROM DUAL WHERE @tm_created = 1;
INSERT INTO task_schedule_runs (schedule_id, scheduled_for, task_id) SELECT :id, :scheduled_for, @tm_task FROM DUAL WHERE @tm_task > 0 ON DUPLICATE KEY UPDATE task_id = task_id;
SELECT @tm_task AS task_id, @tm_created AS created;

-- name: schedules tick: enqueue one occurrence, history off
DO LAST_INSERT_ID(0);
INSERT INTO tasks (type_id, status, params_json, dedupe_key, dedupe_lock, dedupe_scope, priority, max_attempts, run_at, enqueue_token) SELECT :type_id AS type_id, 'pending' AS status, :params_json AS params_json, :dedupe_key AS dedupe_key, :dedupe_key AS dedupe_lock, :dedupe_scope AS dedupe_scope, 0 AS priority, :max_attempts AS max_attempts, COALESCE(CAST(NULL AS DATETIME(6)), NOW(6) + INTERVAL 0 MICROSECOND) AS run_at, :enqueue_token AS enqueue_token FROM task_types WHERE id = :type_id AND version COLLATE utf8mb4_bin = :version AND is_active = 1 ON DUPLICATE KEY UPDATE tasks.id = LAST_INSERT_ID(tasks.id);
SET @tm_created = ROW_COUNT();
SET @tm_task = LAST_INSERT_ID();
INSERT INTO task_schedule_runs (schedule_id, scheduled_for, task_id) SELECT :id, :scheduled_for, @tm_task FROM DUAL WHERE @tm_task > 0 ON DUPLICATE KEY UPDATE task_id = task_id;
SELECT @tm_task AS task_id, @tm_created AS created;

-- name: schedules tick: move a schedule on, drop its old runs; then COMMIT
UPDATE task_schedules FORCE INDEX (PRIMARY) SET next_run_at = :next_run_at, last_run_at = :last_run_at WHERE id = :id;
DELETE FROM task_schedule_runs WHERE schedule_id = :id AND scheduled_for < NOW(6) - INTERVAL 90 DAY;
