-- When an ended job's temporary objects are due for removal (epoch seconds); 0 = nothing pending.
-- Set when a job ends, cleared once its clean-up succeeded: a clean-up that failed (storage
-- read-only, say) or that a retention setting postponed is retried by the orchestrator's sweep.
ALTER TABLE jobs ADD COLUMN cleanup_after REAL NOT NULL DEFAULT 0;
CREATE INDEX jobs_cleanup_after ON jobs (cleanup_after)
