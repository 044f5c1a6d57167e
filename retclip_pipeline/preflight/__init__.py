"""Before and after a run, without running it: the preflight checks (--check), memory and
time estimates, conversion costs, the data inspection, and the smoke run's checklist."""
