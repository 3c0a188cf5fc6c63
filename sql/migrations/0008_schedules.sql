-- Migration 8: recurring tasks. A schedule enqueues a task of its type at every occurrence of
-- its cron expression, read in its time zone; `next_run_at` (UTC, like every time here) is the
-- first occurrence not yet enqueued. A run records the occurrence a task was made for: its
-- primary key allows one row per schedule and instant.
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
