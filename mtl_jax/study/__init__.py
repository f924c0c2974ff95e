"""The course study (../shared/seed; docs/study.md) as sweeps, their reports and its claims."""
