"""cohortflow: streams."""
