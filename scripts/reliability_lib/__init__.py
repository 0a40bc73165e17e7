"""The parts of scripts/reliability.py: shared helpers (common), fault scenarios (faults) and
load scenarios (load)."""
