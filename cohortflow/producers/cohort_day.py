"""A realistic cohort, day after day, as pre-encoded Kafka records: the simulator's model (pure, no I/O).

:class:`CohortDay` places students and mentors on the floors of a number of
campuses, then replays their days as a discrete-event simulation in event
time: a roster import before the first morning (mentors join, students enrol
and get a mentor), then each day morning login peaks (and a few failed
logins), submissions per pillar, mentor reviews after realistic delays within
working hours, rejections followed by resubmissions, notifications and their
reads, audit records of mentors and admins, and roster churn (new enrolments,
withdrawals, transfers, reassignments, mentors leaving and joining).

Everything is drawn from one ``random.Random(seed)``: the same arguments give
the same records, byte for byte, and a longer run only adds records after
them. The records are built as dicts and encoded with orjson directly (no
pydantic on this hot path); tests check every one with :func:`cohortflow.contract.decode`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson

from cohortflow.contract import DEFAULT_PILLARS, KEY_FIELD_OF_TYPE, TOPIC_OF_TYPE

Record = tuple[str, bytes, bytes]
"""(contract topic without prefix, key, value)."""

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

DEFAULT_START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday: the first day of a cohort
CITIES = ("lagos", "nairobi", "accra", "kigali", "dakar", "cairo", "tunis", "casablanca", "abuja", "kampala",
          "lusaka", "harare", "maputo", "luanda", "douala", "abidjan", "bamako", "addis", "mombasa", "durban",
          "cape-town", "windhoek", "gaborone", "dar", "kano")
SOURCES = {"roster": "roster-service", "submissions": "cohort-app", "reviews": "mentor-portal", "logins": "auth",
           "audit": "admin-console", "notifications": "notifier"}
FAILED_REASONS = ("bad_password", "bad_password", "bad_password", "mfa_failed", "account_locked", "expired_token")
ADMIN_ACTIONS = (("student.view", "student"), ("student.update", "student"), ("report.export", "report"),
                 ("mentor.view", "mentor"), ("submission.download", "submission"), ("settings.update", "settings"))
STUDENTS_PER_FLOOR = 300
STUDENTS_PER_MENTOR = 25
SUBMISSIONS_PER_LOGIN = (0, 0, 1, 1, 1, 1, 2, 2, 3)

_ROUTES = {t: (TOPIC_OF_TYPE[t].value, KEY_FIELD_OF_TYPE[t], SOURCES[TOPIC_OF_TYPE[t].value]) for t in TOPIC_OF_TYPE}

# Heap item kinds.
(_LOGIN, _SUBMIT, _REVIEW, _READ, _MENTOR_LOGIN, _ADMIN_AUDIT, _ENROL, _WITHDRAW, _TRANSFER, _REASSIGN,
 _MENTOR_MOVE, _MENTOR_LEAVE, _REMINDER) = range(13)


class CohortDay:
    """The cohort of ``students`` over ``campuses`` campuses; iterate :meth:`records` for its events."""

    def __init__(self, *, seed: int = 1, campuses: int = 50, students: int = 50_000,
                 pillars: tuple[str, ...] = DEFAULT_PILLARS, start: datetime = DEFAULT_START) -> None:
        if campuses < 1 or students < campuses:
            raise ValueError("need at least one campus and one student per campus")
        self.seed = seed
        self.rng = random.Random(seed)
        self.pillars = tuple(pillars)
        self.start_us = int(start.astimezone(UTC).timestamp()) * SECOND
        self.n_students = students
        self._seq = 0  # event ids
        self._ids = 0  # submissions, reviews, notifications
        self._heap: list[tuple] = []
        self._pushed = 0  # tie-breaker: equal times pop in push order
        self._day = -1
        self._day_text = ""
        self._place(campuses, students)

    # --- the cohort -----------------------------------------------------------------------
    def _place(self, campuses: int, students: int) -> None:
        rng = self.rng
        names = [CITIES[i % len(CITIES)] + ("" if i < len(CITIES) else f"-{i // len(CITIES) + 1}")
                 for i in range(campuses)]
        weights = [rng.uniform(0.5, 1.5) / math.sqrt(i + 1) for i in range(campuses)]
        total = sum(weights)
        sizes = [max(1, int(students * w / total)) for w in weights]
        sizes[0] += students - sum(sizes)
        self.floors: list[tuple[str, str]] = []
        self.floor_mentors: dict[tuple[str, str], list[str]] = {}
        self.student_floor: dict[str, tuple[str, str]] = {}
        self.student_mentor: dict[str, str | None] = {}
        self.active: list[str] = []  # active student ids (order matters for determinism)
        self._active_index: dict[str, int] = {}
        self.mentor_floor: dict[str, tuple[str, str]] = {}
        self.unread: dict[str, list[str]] = {}
        self.done: dict[str, int] = {}  # bitmask of approved pillars
        self.busy: dict[str, int] = {}  # bitmask of pillars with a submission under review
        n_student = n_mentor = 0
        for name, size in zip(names, sizes):
            n_floors = max(1, round(size / STUDENTS_PER_FLOOR))
            for f in range(n_floors):
                floor = (name, f"floor-{f + 1}")
                self.floors.append(floor)
                on_floor = size // n_floors + (1 if f < size % n_floors else 0)
                mentors = []
                for _ in range(max(1, round(on_floor / STUDENTS_PER_MENTOR))):
                    n_mentor += 1
                    mentors.append(f"men-{n_mentor:05d}")
                    self.mentor_floor[mentors[-1]] = floor
                self.floor_mentors[floor] = mentors
                for i in range(on_floor):
                    n_student += 1
                    sid = f"stu-{n_student:06d}"
                    self.student_floor[sid] = floor
                    self.student_mentor[sid] = mentors[i % len(mentors)]
        self._next_student = n_student
        self._next_mentor = n_mentor
        self.admins = [f"adm-{i + 1:03d}" for i in range(max(1, students // 2000))]

    # --- encoding -------------------------------------------------------------------------
    def _emit(self, t: int, event_type: str, data: dict) -> Record:
        topic, key_field, source = _ROUTES[event_type]
        day, into_day = divmod(t, DAY)
        if day != self._day:
            self._day = day
            self._day_text = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
        seconds, micros = divmod(into_day, SECOND)
        minutes, sec = divmod(seconds, 60)
        hours, mins = divmod(minutes, 60)
        self._seq += 1
        doc = {"event_id": f"sim{self.seed}-{self._seq}", "type": event_type, "schema_version": 1,
               "occurred_at": f"{self._day_text}{hours:02d}:{mins:02d}:{sec:02d}.{micros:06d}Z", "source": source,
               "data": data}
        return topic, data[key_field].encode(), orjson.dumps(doc)

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self.seed}-{self._ids}"

    def _push(self, t: int, kind: int, *args: object) -> None:
        self._pushed += 1
        heapq.heappush(self._heap, (t, self._pushed, kind, args))

    # --- the days -------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        """Every record in event-time order, forever (take as many as needed)."""
        yield from self._import()
        day = 0
        while True:
            day_start = self.start_us + day * DAY
            self._schedule_day(day, day_start)
            heap = self._heap
            while heap and heap[0][0] < day_start + DAY:
                t, _, kind, args = heapq.heappop(heap)
                yield from self._handle(t, kind, args)
            day += 1

    def _import(self) -> Iterator[Record]:
        """The roster before the first morning: mentors join, then students enrol and get their mentor."""
        t = self.start_us + 5 * HOUR
        step = max(1, HOUR // (len(self.mentor_floor) + 2 * len(self.student_floor)))
        for mid, (campus, floor) in self.mentor_floor.items():
            yield self._emit(t, "mentor.joined", {"mentor_id": mid, "campus": campus, "floor": floor})
            self.unread[mid] = []
            t += step
        for sid, (campus, floor) in self.student_floor.items():
            yield self._emit(t, "student.enrolled", {"student_id": sid, "campus": campus, "floor": floor})
            yield self._emit(t + step, "student.assigned", {"student_id": sid, "mentor_id": self.student_mentor[sid]})
            self._activate(sid)
            t += 2 * step

    def _activate(self, sid: str) -> None:
        self._active_index[sid] = len(self.active)
        self.active.append(sid)
        self.unread.setdefault(sid, [])
        self.done.setdefault(sid, 0)
        self.busy.setdefault(sid, 0)

    def _deactivate(self, sid: str) -> None:
        i = self._active_index.pop(sid)
        last = self.active.pop()
        if last != sid:
            self.active[i] = last
            self._active_index[last] = i

    def _schedule_day(self, day: int, day_start: int) -> None:
        rng = self.rng
        weekend = (day % 7) >= 5
        show_up = 0.3 if weekend else 0.85
        self._push(day_start + 7 * HOUR, _REMINDER)
        for sid in self.active:
            if rng.random() < show_up:
                self._push(day_start + _login_time(rng), _LOGIN, sid, True)
        for mid in self.mentor_floor:
            if rng.random() < (0.4 if weekend else 0.95):
                t = day_start + int(rng.gauss(8.75 * HOUR, 30 * MINUTE))
                self._push(max(day_start + 6 * HOUR, t), _MENTOR_LOGIN, mid)
        n = self.n_students
        churn = ((_ADMIN_AUDIT, 0.15), (_ENROL, 0.002), (_WITHDRAW, 0.0008), (_TRANSFER, 0.002),
                 (_REASSIGN, 0.01), (_MENTOR_MOVE, 0.0004), (_MENTOR_LEAVE, 0.0001))
        for kind, share in churn:
            count = int(n * share * (0.3 if weekend else 1.0))
            count += rng.random() < (n * share) % 1  # fractional part, so small cohorts still churn
            for _ in range(count):
                self._push(day_start + int(rng.uniform(7.5 * HOUR, 19 * HOUR)), kind)

    def _handle(self, t: int, kind: int, args: tuple) -> Iterator[Record]:  # a dispatch table
        rng = self.rng
        if kind == _LOGIN:
            sid, first = args
            if sid not in self._active_index:
                return
            if rng.random() < 0.04:
                yield self._emit(t, "login.failed", {"user_id": sid, "reason": rng.choice(FAILED_REASONS)})
                t += int(rng.uniform(5, 60) * SECOND)
            yield self._emit(t, "login.succeeded", {"user_id": sid, "role": "student"})
            self._push(t + int(rng.uniform(10, 300) * SECOND), _READ, sid)
            for _ in range(rng.choice(SUBMISSIONS_PER_LOGIN)):
                pillar = self._free_pillar(sid)
                if pillar is not None:
                    self.busy[sid] |= 1 << pillar
                    self._push(t + int(rng.expovariate(1 / (75 * MINUTE))), _SUBMIT, sid, self._new_id("sub"),
                               pillar, 1)
            if first and rng.random() < 0.45:  # back in the afternoon
                self._push(t + int(rng.uniform(3, 6) * HOUR), _LOGIN, sid, False)
        elif kind == _SUBMIT:
            sid, sub_id, pillar, attempt = args
            if sid not in self._active_index:
                return
            yield self._emit(t, "submission.submitted", {"submission_id": sub_id, "student_id": sid,
                                                         "pillar": self.pillars[pillar], "attempt": attempt})
            mid = self.student_mentor.get(sid)
            if mid is None:
                return  # stays pending until the student gets a mentor: the dashboards show it
            nid = self._new_id("ntf")
            yield self._emit(t + SECOND, "notification.created",
                             {"notification_id": nid, "user_id": mid, "kind": "submission_received"})
            self.unread[mid].append(nid)
            self._push(_working_hours(t + int(rng.lognormvariate(math.log(45 * MINUTE), 0.9)), rng), _REVIEW,
                       sid, sub_id, pillar, attempt, nid)
        elif kind == _REVIEW:
            yield from self._review(t, *args)
        elif kind == _READ:
            (uid,) = args
            pending = self.unread.get(uid)
            if not pending:
                return
            if len(pending) >= 3 and rng.random() < 0.35:
                yield self._emit(t, "notification.read_all", {"user_id": uid})
                pending.clear()
                return
            for nid in list(pending):
                if rng.random() < 0.7:
                    t += int(rng.uniform(2, 40) * SECOND)
                    yield self._emit(t, "notification.read", {"notification_id": nid, "user_id": uid})
                    pending.remove(nid)
        elif kind == _MENTOR_LOGIN:
            (mid,) = args
            if mid not in self.mentor_floor:
                return
            yield self._emit(t, "login.succeeded", {"user_id": mid, "role": "mentor"})
            if self.unread[mid] and rng.random() < 0.3:
                yield self._emit(t + 30 * SECOND, "notification.read_all", {"user_id": mid})
                self.unread[mid].clear()
        elif kind == _ADMIN_AUDIT:
            actor = rng.choice(self.admins)
            action, entity_type = rng.choice(ADMIN_ACTIONS)
            entity = rng.choice(self.active) if entity_type == "student" and self.active else self._new_id(
                entity_type[:3])
            yield self._emit(t, "audit.recorded", {
                "actor_id": actor, "action": action, "entity_type": entity_type, "entity_id": entity,
                "metadata": {"ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"},
            })
        elif kind == _REMINDER:
            for sid in self.active:
                if rng.random() < 0.3:
                    nid = self._new_id("ntf")
                    yield self._emit(t, "notification.created",
                                     {"notification_id": nid, "user_id": sid, "kind": "deadline_reminder"})
                    self.unread[sid].append(nid)
                    t += rng.randrange(1000, 20_000)
        else:
            yield from self._churn(t, kind)

    def _free_pillar(self, sid: str) -> int | None:
        taken = self.done[sid] | self.busy[sid]
        free = [i for i in range(len(self.pillars)) if not taken >> i & 1]
        return self.rng.choice(free) if free else None

    def _review(self, t: int, sid: str, sub_id: str, pillar: int, attempt: int, nid: str) -> Iterator[Record]:
        rng = self.rng
        mid = self.student_mentor.get(sid)
        if mid is None or sid not in self._active_index:
            self.busy[sid] &= ~(1 << pillar)
            return
        decision = "rejected" if rng.random() < (0.35, 0.2, 0.1)[min(attempt, 3) - 1] else "approved"
        if rng.random() < 0.5:
            yield self._emit(t - 20 * SECOND, "audit.recorded", {"actor_id": mid, "action": "submission.view",
                                                                 "entity_type": "submission", "entity_id": sub_id})
        yield self._emit(t, "review.completed", {"review_id": self._new_id("rev"), "submission_id": sub_id,
                                                 "student_id": sid, "mentor_id": mid, "attempt": attempt,
                                                 "decision": decision})
        if nid in self.unread[mid] and rng.random() < 0.6:
            yield self._emit(t + SECOND, "notification.read", {"notification_id": nid, "user_id": mid})
            self.unread[mid].remove(nid)
        student_nid = self._new_id("ntf")
        yield self._emit(t + 2 * SECOND, "notification.created",
                         {"notification_id": student_nid, "user_id": sid, "kind": f"review_{decision}"})
        self.unread[sid].append(student_nid)
        if decision == "approved":
            self.done[sid] |= 1 << pillar
            self.busy[sid] &= ~(1 << pillar)
        elif rng.random() < 0.85:  # most resubmit, some give up on it for now
            self._push(t + int(rng.lognormvariate(math.log(2 * HOUR), 0.7)), _SUBMIT, sid, sub_id, pillar,
                       attempt + 1)
        else:
            self.busy[sid] &= ~(1 << pillar)

    def _churn(self, t: int, kind: int) -> Iterator[Record]:
        rng = self.rng
        if kind == _ENROL:
            self._next_student += 1
            sid = f"stu-{self._next_student:06d}"
            campus, floor = rng.choice(self.floors)
            mid = rng.choice(self.floor_mentors[(campus, floor)]) if self.floor_mentors[(campus, floor)] else None
            self.student_floor[sid], self.student_mentor[sid] = (campus, floor), mid
            yield self._emit(t, "student.enrolled", {"student_id": sid, "campus": campus, "floor": floor})
            yield self._emit(t + int(rng.uniform(1, 30) * MINUTE), "student.assigned",
                             {"student_id": sid, "mentor_id": mid})
            self._activate(sid)
        elif not self.active:
            return
        elif kind == _WITHDRAW:
            sid = rng.choice(self.active)
            yield self._emit(t, "student.withdrawn", {"student_id": sid})
            self._deactivate(sid)
        elif kind == _TRANSFER:
            sid = rng.choice(self.active)
            campus, _ = self.student_floor[sid]
            options = [f for f in self.floors if f[0] == campus and f != self.student_floor[sid]] or self.floors
            target = rng.choice(options)
            mentors = self.floor_mentors[target]
            mid = rng.choice(mentors) if mentors else None
            self.student_floor[sid], self.student_mentor[sid] = target, mid
            yield self._emit(t, "student.transferred", {"student_id": sid, "campus": target[0], "floor": target[1]})
            yield self._emit(t + MINUTE, "student.assigned", {"student_id": sid, "mentor_id": mid})
        elif kind == _REASSIGN:
            sid = rng.choice(self.active)
            mentors = self.floor_mentors[self.student_floor[sid]]
            mid = None if rng.random() < 0.03 or not mentors else rng.choice(mentors)
            self.student_mentor[sid] = mid
            yield self._emit(t, "student.assigned", {"student_id": sid, "mentor_id": mid})
        elif kind == _MENTOR_MOVE:
            mid = rng.choice(list(self.mentor_floor))
            target = rng.choice(self.floors)
            self.floor_mentors[self.mentor_floor[mid]].remove(mid)
            self.floor_mentors[target].append(mid)
            self.mentor_floor[mid] = target
            yield self._emit(t, "mentor.transferred", {"mentor_id": mid, "campus": target[0], "floor": target[1]})
            yield from self._reassign_students_of(t, mid)
        elif kind == _MENTOR_LEAVE:
            mid = rng.choice(list(self.mentor_floor))
            place = self.mentor_floor.pop(mid)  # (campus, floor)
            self.floor_mentors[place].remove(mid)
            yield self._emit(t, "mentor.left", {"mentor_id": mid})
            self._next_mentor += 1
            new = f"men-{self._next_mentor:05d}"  # the replacement joins the same floor
            self.mentor_floor[new] = place
            self.floor_mentors[place].append(new)
            self.unread[new] = []
            yield self._emit(t + HOUR, "mentor.joined", {"mentor_id": new, "campus": place[0], "floor": place[1]})
            yield from self._reassign_students_of(t + HOUR + MINUTE, mid)

    def _reassign_students_of(self, t: int, mid: str) -> Iterator[Record]:
        for sid in [s for s in self.active if self.student_mentor[s] == mid]:
            mentors = self.floor_mentors[self.student_floor[sid]]
            new = self.rng.choice(mentors) if mentors else None
            self.student_mentor[sid] = new
            t += SECOND
            yield self._emit(t, "student.assigned", {"student_id": sid, "mentor_id": new})


def _login_time(rng: random.Random) -> int:
    """Seconds into the day of a student's first login: a morning peak, and a smaller one after lunch."""
    if rng.random() < 0.7:
        t = rng.gauss(9 * HOUR, 40 * MINUTE)
    else:
        t = rng.gauss(13.5 * HOUR, 60 * MINUTE)
    return int(min(max(t, 6.5 * HOUR), 21.5 * HOUR))


def _working_hours(t: int, rng: random.Random) -> int:
    """A review due outside 08:00-20:00 UTC waits for the next morning."""
    into_day = t % DAY
    if 8 * HOUR <= into_day < 20 * HOUR:
        return t
    next_morning = t - into_day + (DAY if into_day >= 20 * HOUR else 0) + 8 * HOUR
    return next_morning + int(rng.uniform(0, 2 * HOUR))

