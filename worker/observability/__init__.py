"""Traces, metrics, logs and health: how an operator sees the boot gate."""
