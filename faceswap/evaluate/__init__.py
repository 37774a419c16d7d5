"""The quality report of a swap (identity, realism, expression, stability): scoring (core, faces,
metrics), the inputs it reads, the HTML / JSON report (report, sheet, svg) and the store-based job
entry (job). Pure code: the evaluation's counts go through ``events`` to whichever service adds a
sink (the orchestrator's quality-report stage turns them into Prometheus metrics)."""
