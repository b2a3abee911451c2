"""Engines that run a harvest beyond one process: each behind an optional import."""
