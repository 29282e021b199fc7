-- Every difference `cohortflow validate` finds between the live views and a recomputation from the log.
CREATE TABLE view_validation_log (
    id             bigserial   PRIMARY KEY,
    run_id         uuid        NOT NULL,
    view           text        NOT NULL,
    key            jsonb       NOT NULL,
    field          text        NOT NULL,
    live_value     jsonb,
    expected_value jsonb,
    repaired       boolean     NOT NULL DEFAULT false,
    checked_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX view_validation_log_run ON view_validation_log (run_id);
COMMENT ON TABLE view_validation_log IS 'Differences found by cohortflow validate: live value vs recomputed from the log.';
