"""The stateless HTTP functions: `api` (the public API) and `sweeper` (Cloud Scheduler)."""
