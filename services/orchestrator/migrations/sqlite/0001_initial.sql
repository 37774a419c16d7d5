-- Jobs and their event log. Times are epoch seconds (REAL); outputs and payloads are JSON text.
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  request_id TEXT UNIQUE,
  request_hash TEXT NOT NULL,
  state TEXT NOT NULL,
  stage TEXT NOT NULL DEFAULT '',
  progress_done INTEGER NOT NULL DEFAULT 0,
  progress_total INTEGER NOT NULL DEFAULT 0,
  eta_seconds REAL NOT NULL DEFAULT 0,
  spec BLOB NOT NULL,
  owner TEXT NOT NULL DEFAULT '',
  error_code INTEGER NOT NULL DEFAULT 0,
  error_message TEXT NOT NULL DEFAULT '',
  error_where TEXT NOT NULL DEFAULT '',
  outputs TEXT NOT NULL DEFAULT '{}',
  output_key TEXT NOT NULL DEFAULT '',
  report_key TEXT NOT NULL DEFAULT '',
  preview_key TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_sequence INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_expires REAL NOT NULL DEFAULT 0,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
CREATE INDEX jobs_state_created ON jobs (state, created_at);
CREATE INDEX jobs_created ON jobs (created_at, id);
CREATE TABLE job_events (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  sequence INTEGER NOT NULL,
  time REAL NOT NULL,
  payload TEXT NOT NULL,
  PRIMARY KEY (job_id, sequence)
);
