-- Migration 9: flow control. A type's pause and limits live in a row of their own, beside the
-- type: a claim of a limited type locks that row (FOR UPDATE SKIP LOCKED) to count its running
-- tasks, and a lock on task_types itself would collide with every enqueue of the type, which
-- takes a shared lock on it through the tasks' foreign key. A type without a row is neither
-- paused nor limited and costs a claim nothing but an empty subquery.
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

-- The starts of a rate-limited type's tasks within its window (older ones are deleted by the
-- claims that add new ones): the sliding window's log.
CREATE TABLE IF NOT EXISTS task_type_starts (
  type_id BIGINT NOT NULL,
  started_at DATETIME(6) NOT NULL,
  task_id BIGINT NOT NULL,
  PRIMARY KEY (type_id, started_at, task_id),
  CONSTRAINT fk_starts_flow FOREIGN KEY (type_id) REFERENCES task_type_flow (type_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
