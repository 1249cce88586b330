"""The dispatcher: fires jobs on time, exactly once, and records their runs."""
