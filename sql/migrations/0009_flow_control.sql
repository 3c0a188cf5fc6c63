-- Migration 9: flow control. A type's pause and limits live in a row of their own, beside the
-- type (task_types is locked in share mode by every enqueue, through the tasks' foreign key).
-- A type without a row is neither paused nor limited and costs a claim an empty subquery.
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
