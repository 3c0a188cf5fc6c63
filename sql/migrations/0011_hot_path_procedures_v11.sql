-- Migration 11: the hot path's stored procedures, generation 11 (src/queue/procedures.rs
-- builds them from the lifecycle rules; tests/procedures.rs checks this file against it).
-- Loadable with the mariadb client.
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
