"""cohortflow: producers."""
