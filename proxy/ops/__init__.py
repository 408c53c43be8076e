"""Running it: health, readiness and Prometheus endpoints, metrics, graceful shutdown."""
