"""Entity state <-> bytes (orjson, compact arrays) for the ``entity_state`` table. Pure.

The layout is positional to keep rows small; ``VERSION`` leads every body so
a future layout can be read beside this one.
"""

from __future__ import annotations

import orjson

from cohortflow.core.entities import Actor, Counted, Inbox, Logins, Mentor, Notification, Review, Student, Submission
from cohortflow.core.fold import ACTOR, INBOX, LOGINS, MENTOR, STUDENT, Entity

VERSION = 1


def encode(entity: Entity) -> bytes:
    if isinstance(entity, Student):
        body = [
            VERSION,
            [[e, ts, a] for e, (ts, a) in entity.status.items()],
            list(entity.floor) if entity.floor else None,
            list(entity.mentor) if entity.mentor else None,
            {sid: [list(s.pillar) if s.pillar else None, [[a, ts] for a, ts in s.submitted.items()], s.top]
             for sid, s in entity.submissions.items()},
            {rid: [r.ts, r.event_id, r.submission_id, r.attempt, r.mentor_id, r.approved]
             for rid, r in entity.reviews.items()},
            [list(f) for f in entity.floors_named],
            list(entity.mentors_named),
            entity.max_ts,
        ]
    elif isinstance(entity, Mentor):
        body = [VERSION, [[e, ts, a] for e, (ts, a) in entity.status.items()],
                list(entity.floor) if entity.floor else None, [list(f) for f in entity.floors_named], entity.max_ts]
    elif isinstance(entity, Logins):
        body = [VERSION, entity.counted.seen, entity.counted.newest, sorted(entity.days), entity.last_login,
                entity.max_ts]
    elif isinstance(entity, Inbox):
        body = [VERSION, {nid: [n.created, n.read] for nid, n in entity.notifications.items()}, entity.read_all,
                entity.unread]
    elif isinstance(entity, Actor):
        body = [VERSION, entity.counted.seen, entity.counted.newest]
    else:
        raise TypeError(f"not an entity: {entity!r}")
    return orjson.dumps(body)


def decode(kind: str, entity_id: str, data: bytes) -> Entity:
    body = orjson.loads(data)
    if body[0] != VERSION:
        raise ValueError(f"entity state layout {body[0]} is newer than this cohortflow ({VERSION})")
    if kind == STUDENT:
        _, status, floor, mentor, subs, reviews, floors_named, mentors_named, max_ts = body
        return Student(
            entity_id,
            status={e: (ts, a) for e, ts, a in status},
            floor=tuple(floor) if floor else None,
            mentor=tuple(mentor) if mentor else None,
            submissions={sid: Submission(tuple(p) if p else None, {a: ts for a, ts in sub}, top)
                         for sid, (p, sub, top) in subs.items()},
            reviews={rid: Review(*r) for rid, r in reviews.items()},
            floors_named={tuple(f) for f in floors_named},
            mentors_named=set(mentors_named),
            max_ts=max_ts,
        )
    if kind == MENTOR:
        _, status, floor, floors_named, max_ts = body
        return Mentor(entity_id, {e: (ts, a) for e, ts, a in status}, tuple(floor) if floor else None,
                      {tuple(f) for f in floors_named}, max_ts)
    if kind == LOGINS:
        _, seen, newest, days, last_login, max_ts = body
        return Logins(entity_id, Counted(seen, newest), set(days), last_login, max_ts)
    if kind == INBOX:
        _, notes, read_all, unread = body
        return Inbox(entity_id, {nid: Notification(created, read) for nid, (created, read) in notes.items()},
                     read_all, unread)
    if kind == ACTOR:
        _, seen, newest = body
        return Actor(entity_id, Counted(seen, newest))
    raise ValueError(f"unknown entity kind {kind!r}")
