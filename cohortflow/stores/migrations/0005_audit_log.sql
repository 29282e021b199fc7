-- The audit trail: every accepted audit.recorded, once, partitioned by month of occurred_at.
-- The key (occurred_at, event_id) deduplicates by event_id: the contract never reuses an event_id
-- for other content, so a re-sent record has the same occurred_at and lands on the same key.
CREATE TABLE audit_log (
    occurred_at  timestamptz NOT NULL,
    event_id     text        NOT NULL,
    actor_id     text        NOT NULL,
    action       text        NOT NULL,
    entity_type  text        NOT NULL,
    entity_id    text        NOT NULL,
    metadata     json,        -- as the producer sent it (json keeps the text; jsonb would reorder keys)
    source       text,
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (occurred_at, event_id)
) PARTITION BY RANGE (occurred_at);

-- Newest first for each question compliance asks: by actor, by entity, by action.
CREATE INDEX audit_log_by_actor ON audit_log (actor_id, occurred_at DESC, event_id DESC);
CREATE INDEX audit_log_by_entity ON audit_log (entity_type, entity_id, occurred_at DESC, event_id DESC);
CREATE INDEX audit_log_by_action ON audit_log (action, occurred_at DESC, event_id DESC);

COMMENT ON TABLE audit_log IS 'Every accepted audit.recorded event once; monthly partitions audit_log_yYYYYmMM; see cohortflow audit.';

-- The partition of each month named in `months` (first days, UTC), created when missing: the worker
-- calls it inside its batch transaction, so a late or early event always finds its partition. A
-- month archived by `cohortflow audit archive` gets a fresh partition here; `audit restore` merges.
CREATE FUNCTION audit_ensure_months(months date[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m date;
    part text;
    created integer := 0;
BEGIN
    FOREACH m IN ARRAY months LOOP
        m := date_trunc('month', m)::date;
        part := 'audit_log_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM');
        IF NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                       WHERE i.inhparent = format('%I.audit_log', current_schema())::regclass
                         AND c.relname = part) THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.audit_log FOR VALUES FROM (%L) TO (%L)',
                               current_schema(), part, current_schema(),
                               m::text || ' 00:00:00+00', (m + interval '1 month')::date::text || ' 00:00:00+00');
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL;  -- another worker created it first
            END;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
