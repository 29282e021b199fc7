"""cohortflow: cohortflow."""
