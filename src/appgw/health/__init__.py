"""Health probes, the health board shared by all workers, and the backend health view."""
