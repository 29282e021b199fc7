"""The `cohortflow` subcommands, one module per group; cohortflow.cli composes them."""
