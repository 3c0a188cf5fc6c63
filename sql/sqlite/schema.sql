-- The embedded engine's schema (SQLite): the tables of the server schema, version 9, with the
-- same names and columns, in SQLite's types. Times are INTEGER microseconds since the Unix
-- epoch, UTC. The library runs this file in one transaction (`tm_migrate`); every statement
-- may run again.

CREATE TABLE IF NOT EXISTS tm_schema_migrations (
  version INTEGER NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS task_types (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  -- Case-insensitive, as the server's utf8mb4_unicode_ci names are (for ASCII).
  name TEXT NOT NULL COLLATE NOCASE,
  version TEXT NOT NULL DEFAULT '1',
  param_schema_json TEXT NOT NULL,
  is_active INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  CONSTRAINT uk_name UNIQUE (name)
);

-- An id is never given twice, even after the newest tasks were pruned, so a stale reference
-- can never reach another task: an enqueue takes one past the highest id present and past the
-- highest one a prune deleted (tm_task_ids). Not AUTOINCREMENT, which would rewrite its
-- sequence row, one more page of the log, at every enqueue.
CREATE TABLE IF NOT EXISTS tasks (
  id INTEGER PRIMARY KEY,
  type_id INTEGER NOT NULL REFERENCES task_types (id) ON DELETE CASCADE,
  -- The checks and the partial indexes below name at most two values per IN list: SQLite
  -- tests a longer list of constants by building a temporary table at every statement that
  -- writes the column, which costs a one-row write more than the write itself.
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status = 'pending' OR status = 'claimed' OR status = 'completed' OR status = 'failed'
           OR status = 'cancelled'),
  params_json TEXT NOT NULL,
  dedupe_key TEXT NOT NULL,
  result_json TEXT NULL,
  error_message TEXT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  priority INTEGER NOT NULL DEFAULT 0,
  progress INTEGER NOT NULL DEFAULT 0,
  claimed_by TEXT NULL,
  claimed_at INTEGER NULL,
  completed_at INTEGER NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL DEFAULT 3,
  run_at INTEGER NOT NULL,
  lease_token TEXT NULL,
  lease_expires_at INTEGER NULL,
  dedupe_scope TEXT NOT NULL DEFAULT 'always' CHECK (dedupe_scope IN ('always', 'active')),
  -- The dedupe key while it blocks new tasks; its UNIQUE index decides races (NULLs do not
  -- clash).
  dedupe_lock TEXT NULL,
  enqueue_token TEXT NULL,
  CONSTRAINT uq_tasks_dedupe_lock UNIQUE (dedupe_lock)
);

-- Partial indexes: each holds only the rows of the status it serves, so a status change
-- touches only the indexes of the statuses it leaves and enters.
-- The default claim order (priority, then oldest) per type; a claim of several types or of
-- any type takes the best of each type's first tasks (src/embedded/claim.rs).
CREATE INDEX IF NOT EXISTS idx_tasks_type_ready ON tasks (type_id, priority DESC, id)
  WHERE status = 'pending';
-- Lease recovery: claimed tasks by the end of their lease.
CREATE INDEX IF NOT EXISTS idx_tasks_leased ON tasks (lease_expires_at) WHERE status = 'claimed';
-- Retention (prune) by age: finished tasks (completed, failed, cancelled; the queries that use
-- it repeat this condition word for word, which is how SQLite sees that they may).
CREATE INDEX IF NOT EXISTS idx_tasks_finished ON tasks (completed_at)
  WHERE status NOT IN ('pending', 'claimed');

-- One row: the highest task id when a prune last deleted tasks (written by prune only).
CREATE TABLE IF NOT EXISTS tm_task_ids (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  highest INTEGER NOT NULL
);

-- No AUTOINCREMENT here: nothing refers to a history row by id, and it would cost every
-- history row a write of the sequence table.
CREATE TABLE IF NOT EXISTS task_history (
  id INTEGER PRIMARY KEY,
  task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  -- created, claimed, progress, completed, failed, retrying, lease_expired, released,
  -- cancelled, retried
  status_change TEXT NOT NULL,
  worker_id TEXT NULL,
  message TEXT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_task_id ON task_history (task_id);
-- No index on the history's time: its ids grow with time, so the stats find the last hour's
-- rows as one range of the key (src/embedded/stats.rs) and no claim pays for a second entry.
