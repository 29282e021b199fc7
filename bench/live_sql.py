"""The baseline users have: normalised tables and the dashboard computed live with SQL (or by cron).

``load`` fills ``students``, ``mentors``, ``submissions`` and ``reviews`` in a schema of its own
(generate_series, seeded, same shape as the cohort log: 5 campuses, 6 floors each, one mentor per
12 students, 5 pillars, ~30% rejections followed by a resubmission), indexed as a careful engineer
would for these two queries. ``FLOOR_DASHBOARD`` and ``MENTOR_LIST`` compute the figures of
floor_summary and mentor_summary (contract section 4) from them; ``recompute`` is the cron job:
every summary rebuilt into tables in one transaction.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

SCHEMA_DDL = """
CREATE TABLE mentors (mentor_id text PRIMARY KEY, campus text NOT NULL, floor text NOT NULL, active boolean NOT NULL);
CREATE TABLE students (student_id text PRIMARY KEY, campus text NOT NULL, floor text NOT NULL,
                       active boolean NOT NULL, mentor_id text REFERENCES mentors);
CREATE TABLE submissions (submission_id text PRIMARY KEY, student_id text NOT NULL REFERENCES students,
                          pillar text NOT NULL, attempt integer NOT NULL, status text NOT NULL,
                          submitted_at timestamptz NOT NULL);
CREATE TABLE reviews (review_id text PRIMARY KEY, submission_id text NOT NULL REFERENCES submissions,
                      mentor_id text NOT NULL, attempt integer NOT NULL, decision text NOT NULL,
                      reviewed_at timestamptz NOT NULL, review_seconds double precision);
"""

LOAD = """
INSERT INTO mentors SELECT 'men-' || i, c.campus, 'F' || (1 + i %% 6), random() < 0.95
  FROM generate_series(0, %(mentors)s - 1) i,
       LATERAL (SELECT (ARRAY['north','south','east','west','central'])[1 + i %% 5] AS campus) c;
INSERT INTO students SELECT 'stu-' || i, m.campus, m.floor, random() < 0.93,
       CASE WHEN random() < 0.9 THEN m.mentor_id END
  FROM generate_series(0, %(students)s - 1) i JOIN mentors m ON m.mentor_id = 'men-' || (i %% %(mentors)s);
INSERT INTO submissions SELECT 'sub-' || i, 'stu-' || (i %% %(students)s),
       (ARRAY['clt','sri','cfc','iipc','scd'])[1 + (i / %(students)s) %% 5], 1 + (random() < 0.3)::int,
       CASE WHEN r < 0.15 THEN 'pending' WHEN r < 0.45 THEN 'rejected' ELSE 'approved' END,
       timestamptz '2026-11-02' + i * interval '1 second'
  FROM generate_series(0, %(submissions)s - 1) i, LATERAL (SELECT random() + i * 0 AS r) x;
INSERT INTO reviews SELECT 'rev-' || s.submission_id, s.submission_id,
       coalesce(st.mentor_id, 'men-' || abs(hashtext(s.submission_id)) %% %(mentors)s), s.attempt,
       CASE WHEN s.status = 'rejected' THEN 'rejected' ELSE 'approved' END,
       s.submitted_at + interval '3 hours', 10800
  FROM submissions s JOIN students st USING (student_id) WHERE s.status <> 'pending';
"""

INDEXES = """
CREATE INDEX students_floor ON students (campus, floor) INCLUDE (mentor_id) WHERE active;
CREATE INDEX students_mentor ON students (mentor_id) WHERE active;
CREATE INDEX mentors_floor ON mentors (campus, floor) WHERE active;
CREATE INDEX submissions_student ON submissions (student_id) INCLUDE (status, pillar);
CREATE INDEX reviews_mentor ON reviews (mentor_id) INCLUDE (decision, review_seconds, reviewed_at);
ANALYZE;
"""

FLOOR_DASHBOARD = """
WITH s AS (SELECT campus, floor, count(*) AS students_total, count(mentor_id) AS students_assigned
             FROM students WHERE active GROUP BY campus, floor),
     m AS (SELECT campus, floor, count(*) AS mentors_total FROM mentors WHERE active GROUP BY campus, floor),
     sub AS (SELECT st.campus, st.floor, count(*) FILTER (WHERE x.status = 'pending') AS pending,
                    count(*) FILTER (WHERE x.status = 'approved') AS approved,
                    count(*) FILTER (WHERE x.status = 'rejected') AS rejected
               FROM students st JOIN submissions x USING (student_id) WHERE st.active GROUP BY 1, 2),
     done AS (SELECT campus, floor, pillar, count(*) AS completed FROM (
                SELECT DISTINCT st.campus, st.floor, st.student_id, x.pillar
                  FROM students st JOIN submissions x USING (student_id)
                 WHERE st.active AND x.status = 'approved') d GROUP BY 1, 2, 3),
     p AS (SELECT campus, floor, jsonb_object_agg(pillar, completed) AS pillar_completed, sum(completed) AS total
             FROM done GROUP BY 1, 2)
SELECT s.campus, s.floor, s.students_total, s.students_assigned, s.students_total - s.students_assigned,
       coalesce(m.mentors_total, 0), sub.pending, sub.approved, sub.rejected, p.pillar_completed,
       round(100.0 * p.total / (5 * s.students_total), 2) AS avg_completion
  FROM s LEFT JOIN m USING (campus, floor) LEFT JOIN sub USING (campus, floor) LEFT JOIN p USING (campus, floor)
 ORDER BY s.campus, s.floor LIMIT 100
"""

MENTOR_LIST = """
WITH page AS (SELECT * FROM mentors ORDER BY mentor_id LIMIT 100)
SELECT page.mentor_id, page.campus, page.floor, page.active, a.assigned, a.pending, r.completed, r.approvals,
       r.rejections, r.approvals::float / nullif(r.completed, 0), r.avg_seconds,
       CASE WHEN a.pending < 5 THEN 'low' WHEN a.pending > 20 THEN 'overloaded' ELSE 'balanced' END, r.last_active_at
  FROM page
  LEFT JOIN LATERAL (SELECT count(DISTINCT st.student_id) AS assigned,
                            count(*) FILTER (WHERE x.status = 'pending') AS pending
                       FROM students st LEFT JOIN submissions x USING (student_id)
                      WHERE st.mentor_id = page.mentor_id AND st.active) a ON true
  LEFT JOIN LATERAL (SELECT count(*) AS completed, count(*) FILTER (WHERE decision = 'approved') AS approvals,
                            count(*) FILTER (WHERE decision = 'rejected') AS rejections,
                            avg(review_seconds) AS avg_seconds, max(reviewed_at) AS last_active_at
                       FROM reviews WHERE reviews.mentor_id = page.mentor_id) r ON true
 ORDER BY page.mentor_id
"""

RECOMPUTE = [
    "DROP TABLE IF EXISTS cron_floor_summary, cron_mentor_summary, cron_global_daily",
    f"CREATE TABLE cron_floor_summary AS {FLOOR_DASHBOARD.replace('LIMIT 100', '')}",
    "CREATE TABLE cron_mentor_summary AS " + MENTOR_LIST.replace(
        "WITH page AS (SELECT * FROM mentors ORDER BY mentor_id LIMIT 100)", "WITH page AS (SELECT * FROM mentors)"),
    """CREATE TABLE cron_global_daily AS
       SELECT d, (SELECT count(*) FROM submissions WHERE submitted_at::date = d) AS submissions,
              (SELECT count(*) FROM reviews WHERE reviewed_at::date = d) AS reviews
         FROM (SELECT DISTINCT submitted_at::date AS d FROM submissions) days""",
]


def load(dsn: str, schema: str, students: int, submissions: int) -> dict:
    """Create and fill the normalised tables; seconds per step."""
    times = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("SELECT setseed(0.21)")
        conn.execute(SCHEMA_DDL)
        began = time.perf_counter()
        for statement in LOAD.split(";"):
            if statement.strip():
                conn.execute(statement, {"students": students, "mentors": max(1, students // 12),
                                         "submissions": submissions})
        times["load_seconds"] = time.perf_counter() - began
        began = time.perf_counter()
        conn.execute(INDEXES)
        conn.execute("VACUUM ANALYZE")
        times["index_seconds"] = time.perf_counter() - began
        times["rows"] = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
                         for t in ("students", "mentors", "submissions", "reviews")}
    return times


def timings(dsn: str, schema: str, query: str, repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` runs of ``query`` (after one warm-up), rows fetched."""
    out = []
    with psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}") as conn:
        conn.execute(query).fetchall()
        for _ in range(repeat):
            began = time.perf_counter()
            conn.execute(query).fetchall()
            out.append((time.perf_counter() - began) * 1000)
    return out


def recompute(dsn: str, schema: str) -> float:
    """Seconds of the cron job: every summary recomputed from the normalised tables, one transaction."""
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        began = time.perf_counter()
        with conn.transaction():
            for statement in RECOMPUTE:
                conn.execute(statement)
        return time.perf_counter() - began
