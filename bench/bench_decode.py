"""Median microseconds per `cohortflow.contract.decode` call over a realistic mix of records.

    PYTHONPATH=. python bench/bench_decode.py [--records 20000] [--rounds 15]

The mix leans on what a platform publishes most (logins, notifications,
submissions, reviews), with a little roster and audit traffic and 1% bad
records. Each round decodes every record once; the figure is the median over
rounds of (round time / records).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from cohortflow.contract import DEFAULT_CONTRACT, EVENT_CLASSES, Rejection, decode, encode, record_key, topic_name

# Relative frequency of each type in the mix.
WEIGHTS = {
    "login.succeeded": 20,
    "login.failed": 3,
    "notification.created": 15,
    "notification.read": 10,
    "notification.read_all": 2,
    "submission.submitted": 15,
    "review.completed": 12,
    "audit.recorded": 10,
    "student.enrolled": 2,
    "student.transferred": 1,
    "student.withdrawn": 1,
    "student.assigned": 3,
    "mentor.joined": 1,
    "mentor.transferred": 1,
    "mentor.left": 1,
}


def build_records(count: int, rng: random.Random) -> list[tuple[str, bytes, bytes]]:
    students = [f"stu-{i:05d}" for i in range(2000)]
    mentors = [f"men-{i:03d}" for i in range(80)]
    start = datetime(2026, 9, 1, tzinfo=UTC)
    types = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=count)
    records = []
    for event_type in types:
        student, mentor = rng.choice(students), rng.choice(mentors)
        data = _data(event_type, student, mentor, rng)
        cls = EVENT_CLASSES[event_type]
        event = cls.model_validate(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "occurred_at": start + timedelta(microseconds=rng.getrandbits(40)),
                "source": "cohort-app",
                "data": data,
            }
        )
        value = encode(event)
        if rng.random() < 0.01:  # bad records take the slow path; keep them in the mix
            value = value.replace(b'"schema_version":1', b'"schema_version":"1"')
        records.append((topic_name(DEFAULT_CONTRACT.topic_prefix, cls.TOPIC), record_key(event), value))
    return records


def _data(event_type: str, student: str, mentor: str, rng: random.Random) -> dict[str, object]:
    campus, floor = rng.choice(["north", "south", "east"]), f"F{rng.randint(1, 6)}"
    submission = f"sub-{rng.getrandbits(32):08x}"
    match event_type:
        case "student.enrolled" | "student.transferred":
            return {"student_id": student, "campus": campus, "floor": floor}
        case "student.withdrawn":
            return {"student_id": student}
        case "student.assigned":
            return {"student_id": student, "mentor_id": mentor}
        case "mentor.joined" | "mentor.transferred":
            return {"mentor_id": mentor, "campus": campus, "floor": floor}
        case "mentor.left":
            return {"mentor_id": mentor}
        case "submission.submitted":
            pillar = rng.choice(DEFAULT_CONTRACT.pillars)
            return {"submission_id": submission, "student_id": student, "pillar": pillar, "attempt": rng.randint(1, 3)}
        case "review.completed":
            return {
                "review_id": f"rev-{rng.getrandbits(32):08x}",
                "submission_id": submission,
                "student_id": student,
                "mentor_id": mentor,
                "attempt": rng.randint(1, 3),
                "decision": rng.choice(["approved", "rejected"]),
            }
        case "login.succeeded":
            return {"user_id": student, "role": "student"}
        case "login.failed":
            return {"user_id": student, "reason": "bad_password"}
        case "audit.recorded":
            return {
                "actor_id": mentor,
                "action": "submission.review",
                "entity_type": "submission",
                "entity_id": submission,
                "metadata": {"ip": "10.0.0.7", "decision": "approved"} if rng.random() < 0.5 else None,
            }
        case "notification.created":
            return {"notification_id": f"ntf-{rng.getrandbits(32):08x}", "user_id": student, "kind": "review"}
        case "notification.read":
            return {"notification_id": f"ntf-{rng.getrandbits(32):08x}", "user_id": student}
        case "notification.read_all":
            return {"user_id": student}
    raise AssertionError(event_type)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    records = build_records(args.records, random.Random(7))
    rejected = sum(isinstance(decode(*r), Rejection) for r in records)
    per_record = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for topic, key, value in records:
            decode(topic, key, value)
        per_record.append((time.perf_counter() - started) / len(records) * 1e6)
    median = statistics.median(per_record)
    print(
        f"decode: median {median:.2f} us/record ({1e6 / median:,.0f} records/s) over {args.rounds} rounds "
        f"of {len(records)} records ({rejected} rejected), min {min(per_record):.2f}, max {max(per_record):.2f}"
    )


if __name__ == "__main__":
    main()
