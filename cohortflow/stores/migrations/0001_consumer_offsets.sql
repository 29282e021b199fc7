-- Where the views stand in the log: the next offset to consume per (topic, partition).
-- Written in the same transaction as the view rows, so a restart resumes exactly
-- where the views are (Kafka's own committed offsets are only informative).
CREATE TABLE consumer_offsets (
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
COMMENT ON TABLE consumer_offsets IS 'Next Kafka offset to consume per topic-partition, committed atomically with the views.';
