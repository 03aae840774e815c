"""HTTP service (standard library only)."""
