"""Local Kafka, PostgreSQL and Redis for development, tests and the demo (dev/services)."""
