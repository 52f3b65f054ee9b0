"""Sampling procedures the service runs around exported networks (numpy only)."""
