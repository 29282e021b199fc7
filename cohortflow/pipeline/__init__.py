"""From Kafka to the stores: the batch processor (exactly-once commit), the Faust worker, replay, rebuild, validate."""
