-- Migration 1: the schema of the original PHP TaskManager, as that system left it
-- (INT ids, JSON in TEXT, TIMESTAMP columns, a permanent UNIQUE(dedupe_key)).
-- A fresh database starts here too, so every install walks the same upgrade path.
-- Statements end with a semicolon at the end of a line and are all idempotent.

CREATE TABLE IF NOT EXISTS task_types (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  version INT NOT NULL DEFAULT 1,
  param_schema_json TEXT NOT NULL,
  is_active TINYINT(1) NOT NULL DEFAULT 1,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY uk_name (name),
  KEY idx_is_active (is_active)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS tasks (
  id INT AUTO_INCREMENT PRIMARY KEY,
  type_id INT NOT NULL,
  status ENUM('pending','claimed','completed','failed') DEFAULT 'pending',
  params_json TEXT NOT NULL,
  dedupe_key VARCHAR(64) NOT NULL,
  result_json TEXT NULL,
  error_message TEXT NULL,
  attempts INT DEFAULT 0,
  priority INT DEFAULT 0,
  progress INT DEFAULT 0,
  claimed_by VARCHAR(255) NULL,
  claimed_at TIMESTAMP NULL,
  completed_at TIMESTAMP NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY uk_dedupe_key (dedupe_key),
  KEY idx_type_status (type_id, status),
  KEY idx_status (status),
  KEY idx_created_at (created_at),
  CONSTRAINT fk_tasks_type_id FOREIGN KEY (type_id) REFERENCES task_types (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS task_history (
  id INT AUTO_INCREMENT PRIMARY KEY,
  task_id INT NOT NULL,
  status_change VARCHAR(50) NOT NULL,
  worker_id VARCHAR(255) NULL,
  message TEXT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  KEY idx_task_id (task_id),
  KEY idx_created_at (created_at),
  CONSTRAINT fk_history_task_id FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
