"""cohortflow: views."""
