-- Migration 1: the schema of the original PHP TaskManager, exactly as that system created it
-- (INT ids, free-text versions, JSON in TEXT, TIMESTAMP columns, a permanent UNIQUE(dedupe_key),
-- cascading foreign keys, and its index names).
-- A fresh database starts here too, so every install walks the same upgrade path as a database
-- the original system made. Statements end with a semicolon at the end of a line and are all
-- idempotent.

CREATE TABLE IF NOT EXISTS task_types (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  version VARCHAR(50) NOT NULL,
  param_schema_json TEXT NOT NULL,
  is_active BOOLEAN DEFAULT TRUE,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  INDEX idx_name (name),
  INDEX idx_active (is_active)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS tasks (
  id INT AUTO_INCREMENT PRIMARY KEY,
  type_id INT NOT NULL,
  status ENUM('pending','claimed','completed','failed') DEFAULT 'pending',
  params_json TEXT NOT NULL,
  dedupe_key VARCHAR(64) NOT NULL,
  result_json TEXT,
  error_message TEXT,
  priority INT DEFAULT 0,
  progress INT DEFAULT 0,
  attempts INT DEFAULT 0,
  claimed_by VARCHAR(255),
  claimed_at TIMESTAMP NULL,
  completed_at TIMESTAMP NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  FOREIGN KEY (type_id) REFERENCES task_types(id) ON DELETE CASCADE,
  UNIQUE KEY unique_dedupe (dedupe_key),
  INDEX idx_type_status (type_id, status),
  INDEX idx_status (status),
  INDEX idx_dedupe (dedupe_key),
  INDEX idx_created (created_at),
  INDEX idx_priority (priority),
  INDEX idx_progress (progress),
  INDEX idx_claimed_at (claimed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS task_history (
  id INT AUTO_INCREMENT PRIMARY KEY,
  task_id INT NOT NULL,
  status_change VARCHAR(50) NOT NULL,
  worker_id VARCHAR(255),
  message TEXT,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  FOREIGN KEY (task_id) REFERENCES tasks(id) ON DELETE CASCADE,
  INDEX idx_task_id (task_id),
  INDEX idx_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
