"""cohortflow: exactly-once analytics views folded from Kafka into PostgreSQL and Redis (docs/architecture.md)."""
