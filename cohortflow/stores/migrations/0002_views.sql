-- The views of the contract (section 4) and the worker's durable state.
--
-- Base tables (*_counts) hold raw, additive counts and sums; the worker adds
-- deltas to them in the same transaction as its state and offsets. The SQL
-- views with the contract's names derive every percentage, mean and workload
-- from those counts when read, so they can never drift from them.

-- What the views were built with. The worker refuses to run with other pillars.
CREATE TABLE view_config (
    singleton                 boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pillars                   text[]  NOT NULL,
    workload_low_below        integer NOT NULL,
    workload_overloaded_above integer NOT NULL
);

-- Per-entity state of the fold (students, mentors, logins, inboxes, actors), one row each.
CREATE TABLE entity_state (
    kind  "char"  NOT NULL,  -- s student, m mentor, l logins, n inbox, a actor
    id    text    NOT NULL,
    shard integer NOT NULL,  -- Kafka partition of the id under the default partitioner
    body  bytea   NOT NULL,  -- orjson, see cohortflow/core/state_codec.py
    PRIMARY KEY (kind, id)
);

-- One version per shard, bumped by every transaction that writes the shard's entities:
-- a worker whose cached state is older loses the compare-and-set and reloads.
CREATE TABLE shard_fences (
    shard   integer PRIMARY KEY,
    version bigint  NOT NULL
);

CREATE TABLE floor_counts (
    campus               text        NOT NULL,
    floor                text        NOT NULL,
    students_total       integer     NOT NULL DEFAULT 0,
    students_assigned    integer     NOT NULL DEFAULT 0,
    mentors_total        integer     NOT NULL DEFAULT 0,
    submissions_pending  integer     NOT NULL DEFAULT 0,
    submissions_approved integer     NOT NULL DEFAULT 0,
    submissions_rejected integer     NOT NULL DEFAULT 0,
    as_of                timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campus, floor)
);

CREATE TABLE floor_pillar_counts (
    campus    text    NOT NULL,
    floor     text    NOT NULL,
    pillar    text    NOT NULL,
    completed integer NOT NULL DEFAULT 0,
    PRIMARY KEY (campus, floor, pillar)
);

CREATE TABLE mentor_counts (
    mentor_id         text        PRIMARY KEY,
    named             boolean     NOT NULL DEFAULT false,  -- false: only logins know it; not a view row
    campus            text,
    floor             text,
    active            boolean,
    assigned_students integer     NOT NULL DEFAULT 0,
    pending_reviews   integer     NOT NULL DEFAULT 0,
    reviews_completed integer     NOT NULL DEFAULT 0,
    approvals         integer     NOT NULL DEFAULT 0,
    rejections        integer     NOT NULL DEFAULT 0,
    review_us_sum     bigint      NOT NULL DEFAULT 0,
    review_count      integer     NOT NULL DEFAULT 0,
    last_active_at    timestamptz,
    as_of             timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mentor_counts_floor ON mentor_counts (campus, floor) WHERE named;

-- last_active_at is a maximum that can move back (a review corrected to another mentor):
-- each contributor (a student's reviews, a user's logins) keeps its own latest instant here.
CREATE TABLE mentor_activity (
    mentor_id   text        NOT NULL,
    contributor text        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (mentor_id, contributor)
);

CREATE TABLE daily_counts (
    day                   date        PRIMARY KEY,
    submissions           integer     NOT NULL DEFAULT 0,
    reviews               integer     NOT NULL DEFAULT 0,
    approvals             integer     NOT NULL DEFAULT 0,
    rejections            integer     NOT NULL DEFAULT 0,
    review_us_sum         bigint      NOT NULL DEFAULT 0,
    review_count          integer     NOT NULL DEFAULT 0,
    logins                integer     NOT NULL DEFAULT 0,
    failed_logins         integer     NOT NULL DEFAULT 0,
    active_users          integer     NOT NULL DEFAULT 0,
    audit_events          integer     NOT NULL DEFAULT 0,
    notifications_created integer     NOT NULL DEFAULT 0,
    students_step         integer     NOT NULL DEFAULT 0,  -- net activations on the date
    mentors_step          integer     NOT NULL DEFAULT 0,
    steps_changed_at      timestamptz,
    as_of                 timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE global_counts (
    singleton            boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    students_total       integer     NOT NULL DEFAULT 0,
    mentors_total        integer     NOT NULL DEFAULT 0,
    unread_notifications integer     NOT NULL DEFAULT 0,
    as_of                timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
INSERT INTO global_counts DEFAULT VALUES;

-- The durable side of the Redis badges: Redis is rebuilt from here, never the other way.
CREATE TABLE badges (
    user_id         text    PRIMARY KEY,
    unread          integer NOT NULL DEFAULT 0,
    pending_reviews integer,  -- null: not a mentor
    rev             bigint  NOT NULL DEFAULT 1
);

-- ---------------------------------------------------------------- public views

CREATE VIEW floor_summary AS
SELECT f.campus,
       f.floor,
       f.students_total,
       f.students_assigned,
       f.students_total - f.students_assigned AS students_unassigned,
       f.mentors_total,
       f.submissions_pending,
       f.submissions_approved,
       f.submissions_rejected,
       p.completed AS pillar_completed,
       p.progress  AS pillar_progress,
       CASE WHEN f.students_total = 0 THEN 0.00
            ELSE round(100.0 * p.total / (cardinality(c.pillars) * f.students_total), 2)
       END AS avg_completion,
       f.as_of,
       f.updated_at
FROM floor_counts f
CROSS JOIN view_config c
CROSS JOIN LATERAL (
    SELECT jsonb_object_agg(cp.pillar, coalesce(fp.completed, 0)) AS completed,
           jsonb_object_agg(cp.pillar, CASE WHEN f.students_total = 0 THEN 0.00
                                            ELSE round(100.0 * coalesce(fp.completed, 0) / f.students_total, 2)
                                       END) AS progress,
           coalesce(sum(fp.completed), 0) AS total
    FROM unnest(c.pillars) AS cp(pillar)
    LEFT JOIN floor_pillar_counts fp
           ON fp.campus = f.campus AND fp.floor = f.floor AND fp.pillar = cp.pillar
) p;

CREATE VIEW mentor_summary AS
SELECT m.mentor_id,
       m.campus,
       m.floor,
       m.active,
       m.assigned_students,
       m.pending_reviews,
       m.reviews_completed,
       m.approvals,
       m.rejections,
       CASE WHEN m.reviews_completed = 0 THEN NULL
            ELSE round(m.approvals::numeric / m.reviews_completed, 4) END AS approval_rate,
       CASE WHEN m.review_count = 0 THEN NULL
            ELSE round(m.review_us_sum::numeric / m.review_count / 1000000, 3) END AS avg_review_seconds,
       CASE WHEN m.pending_reviews < c.workload_low_below THEN 'low'
            WHEN m.pending_reviews > c.workload_overloaded_above THEN 'overloaded'
            ELSE 'balanced' END AS workload,
       m.last_active_at,
       m.as_of,
       m.updated_at
FROM mentor_counts m
CROSS JOIN view_config c
WHERE m.named;

CREATE VIEW global_daily AS
SELECT d.day AS date,
       d.submissions,
       d.reviews,
       d.approvals,
       d.rejections,
       CASE WHEN d.review_count = 0 THEN NULL
            ELSE round(d.review_us_sum::numeric / d.review_count / 1000000, 3) END AS avg_review_seconds,
       d.logins,
       d.failed_logins,
       d.active_users,
       d.audit_events,
       d.notifications_created,
       (sum(d.students_step) OVER running)::integer AS students_total,
       (sum(d.mentors_step) OVER running)::integer AS mentors_total,
       d.as_of,
       greatest(d.updated_at, max(d.steps_changed_at) OVER running) AS updated_at
FROM daily_counts d
WINDOW running AS (ORDER BY d.day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- campuses and floors are counted when read: exact whatever number of workers add floors at once.
CREATE VIEW global_current AS
SELECT g.students_total,
       g.mentors_total,
       f.campuses::integer AS campuses,
       f.floors::integer AS floors,
       g.unread_notifications,
       g.as_of,
       greatest(g.updated_at, f.newest) AS updated_at
FROM global_counts g
CROSS JOIN (SELECT count(DISTINCT campus) AS campuses, count(*) AS floors, max(created_at) AS newest
            FROM floor_counts) f;

COMMENT ON VIEW floor_summary IS 'One row per (campus, floor) named by a roster event; see docs/semantics.md.';
COMMENT ON VIEW mentor_summary IS 'One row per mentor named by a mentor.*, student.assigned or review.completed event.';
COMMENT ON VIEW global_daily IS 'One row per UTC date of any accepted event; students_total/mentors_total at the end of the date.';
COMMENT ON VIEW global_current IS 'One row: the whole platform now.';
