"""Where the views live: PostgreSQL (views, offsets, entity states, audit trail, migrations) and Redis (badges)."""
