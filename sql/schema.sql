-- TaskManager schema, current version (3), for reading and for a manual install:
--   mysql --default-character-set=utf8mb4 your_db < sql/schema.sql
-- The usual way is `tm_migrate` / Client::migrate, which reaches the same shape through the
-- versioned migrations (an existing database of the original PHP system is upgraded in place).
-- A test loads this file and compares it, column by column and index by index, with a migrated
-- database, so it cannot drift.

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
  PRIMARY KEY (id),
  UNIQUE KEY uk_name (name),
  KEY idx_is_active (is_active)
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
  PRIMARY KEY (id),
  UNIQUE KEY uq_tasks_dedupe_lock (dedupe_lock),
  KEY idx_tasks_dedupe_key (dedupe_key),
  -- Matches the claim query: WHERE status = 'pending' ... ORDER BY priority DESC, id.
  KEY idx_tasks_claim (status, priority DESC, id),
  KEY idx_tasks_type_claim (type_id, status, priority DESC, id),
  KEY idx_tasks_lease (status, lease_expires_at),
  KEY idx_tasks_created_at (created_at),
  -- The claim orders of the HTTP API (sort_by id, created_at, priority, attempts; ASC or DESC).
  KEY idx_tasks_claim_by_id (status, id),
  KEY idx_tasks_claim_by_created (status, created_at, id),
  KEY idx_tasks_claim_by_priority (status, priority, id),
  KEY idx_tasks_claim_by_attempts (status, attempts, id),
  -- Finished tasks by age: retention (prune) and the last hour's throughput (stats).
  KEY idx_tasks_finished (status, completed_at),
  -- As in the original: deleting a type deletes its tasks (and their history).
  CONSTRAINT fk_tasks_type FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE CASCADE
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

INSERT IGNORE INTO tm_schema_migrations (version, name) VALUES
  (1, 'original_schema'),
  (2, 'leases_priorities_dedupe_scope'),
  (3, 'text_versions_claim_orders');
