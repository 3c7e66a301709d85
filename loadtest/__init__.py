"""Crowd simulator and benchmarks (`python -m loadtest`). Not built yet: see the project issues."""
