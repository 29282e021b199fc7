// The fold of cohortflow/core/fold.py (Fold._apply_entity and the per-kind appliers) over parsed events.
#pragma once

#include "effect.h"
#include "entities.h"
#include "ledger.h"

namespace cf {

enum EvType : u8 {
    T_ENROLLED,
    T_TRANSFERRED,
    T_WITHDRAWN,
    T_ASSIGNED,
    T_SUBMITTED,
    T_REVIEW,
    T_MENTOR_JOINED,
    T_MENTOR_TRANSFERRED,
    T_MENTOR_LEFT,
    T_LOGIN_SUCCEEDED,
    T_LOGIN_FAILED,
    T_NOTE_CREATED,
    T_NOTE_READ,
    T_NOTE_READ_ALL,
    T_AUDIT,
    T_COUNT
};

struct EventType {
    const char* name;
    char kind;
    const char* key_field;
};

// cohortflow.core.fold._KIND_OF_TYPE and each model's KEY_FIELD.
inline const EventType EVENT_TYPES[T_COUNT] = {
    {"student.enrolled", STUDENT, "student_id"},
    {"student.transferred", STUDENT, "student_id"},
    {"student.withdrawn", STUDENT, "student_id"},
    {"student.assigned", STUDENT, "student_id"},
    {"submission.submitted", STUDENT, "student_id"},
    {"review.completed", STUDENT, "student_id"},
    {"mentor.joined", MENTOR, "mentor_id"},
    {"mentor.transferred", MENTOR, "mentor_id"},
    {"mentor.left", MENTOR, "mentor_id"},
    {"login.succeeded", LOGINS, "user_id"},
    {"login.failed", LOGINS, "user_id"},
    {"notification.created", INBOX, "user_id"},
    {"notification.read", INBOX, "user_id"},
    {"notification.read_all", INBOX, "user_id"},
    {"audit.recorded", ACTOR, "actor_id"},
};

inline int event_type_of(sv name) {
    for (int t = 0; t < T_COUNT; t++)
        if (name == EVENT_TYPES[t].name) return t;
    return -1;
}

// One event as the fold needs it; the string views point into Python objects kept alive by the caller.
struct Ev {
    PyObject* obj = nullptr;
    u8 type = 0;
    bool approved = false;
    i64 ts = 0;
    u64 attempt = 0;
    sv eid, key;
    sv id1;     // submission_id or notification_id
    sv id2;     // review_id
    Atom a1;    // campus, pillar or mentor_id (none: mentor_id None)
    Atom a2;    // floor
    EntityHead* entity = nullptr;
};

struct FoldContext {
    Effect& fx;
    i64 horizon_us;
    Touched touched;
    MentorPart before, after;
};

// --- students ------------------------------------------------------------------------------

inline bool student_status(Student& s, const Ev& e, bool active, Touched& t) {
    if (!apply_status(s.status, e.ts, e.eid, active)) return false;
    t.status = true;
    return true;
}

inline bool student_floor(Student& s, const Ev& e, Touched& t) {
    return apply_floor(s.floor, s.floors_named, e.ts, e.eid, e.a1, e.a2, &t.placement);
}

inline bool student_mentor(Student& s, const Ev& e, Touched& t) {
    bool named = !e.a1.none() && grow_atom(s.mentors_named, e.a1);
    if (s.has_mentor && compare_order(s.mentor_ts, s.mentor_eid.view(), e.ts, e.eid) >= 0) return named;
    s.has_mentor = true;
    s.mentor_ts = e.ts;
    s.mentor_eid.assign(e.eid);
    s.mentor = e.a1;
    t.placement = true;
    return true;
}

inline bool student_submitted(Student& s, const Ev& e, Touched& t) {
    u32 si = s.subs.get_or_append(e.id1);
    Submission& sub = s.subs.at(si).val;
    bool changed = false;
    if (!sub.has_pillar || compare_order(sub.pillar_ts, sub.pillar_eid.view(), e.ts, e.eid) < 0) {
        sub.has_pillar = true;
        sub.pillar_ts = e.ts;
        sub.pillar_eid.assign(e.eid);
        sub.pillar = e.a1;
        changed = true;
    }
    Attempt* first = const_cast<Attempt*>(sub.attempt(e.attempt));
    if (!first) {
        sub.submitted.emplace_back(Attempt{e.attempt, e.ts});
        changed = true;
    } else if (e.ts < first->ts) {
        first->ts = e.ts;
        changed = true;
    }
    if (e.attempt > sub.top) {
        sub.top = e.attempt;
        changed = true;
    }
    if (changed) touch_sub(s, t, si);
    return changed;
}

inline bool student_review(Student& s, const Ev& e, Touched& t) {
    bool changed = grow_atom(s.mentors_named, e.a1);
    u32 si = s.subs.get_or_append(e.id1);
    Submission& sub = s.subs.at(si).val;
    if (e.attempt > sub.top) {
        sub.top = e.attempt;
        touch_sub(s, t, si);
        changed = true;
    }
    i64 ri = s.reviews.find(e.id2);
    Review* r = nullptr;
    if (ri < 0) {
        ri = s.reviews.append(e.id2, Review());
        r = &s.reviews.at(static_cast<u32>(ri)).val;
    } else {
        Review& known = s.reviews.at(static_cast<u32>(ri)).val;
        if (compare_order(known.ts, known.eid.view(), e.ts, e.eid) >= 0) return changed;
        r = &known;
    }
    r->ts = e.ts;
    r->eid.assign(e.eid);
    r->sub = si;
    r->attempt = e.attempt;
    r->mentor = e.a1;
    r->approved = e.approved;
    touch_review(s, t, static_cast<u32>(ri));
    return true;
}

inline void bump_attached(Effect& fx, const Vec<FloorName>& floors, i64 ts) {
    for (const FloorName& f : floors) fx.bump(floor_row(f.campus, f.floor), ts);
}

inline void fold_student(Student& s, Ev* const* evs, size_t n, FoldContext& c) {
    Effect& fx = c.fx;
    Touched& t = c.touched;
    t.clear();
    bool changed = false;
    for (size_t k = 0; k < n; k++) {
        const Ev& e = *evs[k];
        bool moved = e.ts > s.max_ts;
        if (moved) s.max_ts = e.ts;
        switch (e.type) {
            case T_SUBMITTED:
                moved |= student_submitted(s, e, t);
                break;
            case T_REVIEW:
                fx.name(mentor_row(e.a1));
                moved |= student_review(s, e, t);
                break;
            case T_ENROLLED: {
                fx.name(floor_row(e.a1, e.a2));
                bool a = student_status(s, e, true, t);
                bool b = student_floor(s, e, t);
                moved |= a | b;
                break;
            }
            case T_TRANSFERRED:
                fx.name(floor_row(e.a1, e.a2));
                moved |= student_floor(s, e, t);
                break;
            case T_WITHDRAWN:
                moved |= student_status(s, e, false, t);
                break;
            case T_ASSIGNED:
                if (!e.a1.none()) fx.name(mentor_row(e.a1));
                moved |= student_mentor(s, e, t);
                break;
        }
        changed |= moved;
    }
    if (t.any()) ledger_update(s, t, fx);
    if (!changed) return;
    fx.changed(&s);
    bump_attached(fx, s.floors_named, s.max_ts);
    for (const Atom& m : s.mentors_named) fx.bump(mentor_row(m), s.max_ts);
}

// --- mentors -------------------------------------------------------------------------------

inline void fold_mentor(Mentor& m, Ev* const* evs, size_t n, FoldContext& c) {
    Effect& fx = c.fx;
    Atom self = Atom::of(m.id.view());
    if (m.fresh) c.before.empty = true;
    else mentor_part(m, c.before);
    bool changed = false;
    for (size_t k = 0; k < n; k++) {
        const Ev& e = *evs[k];
        bool moved = e.ts > m.max_ts;
        if (moved) m.max_ts = e.ts;
        fx.name(mentor_row(self));
        switch (e.type) {
            case T_MENTOR_JOINED: {
                fx.name(floor_row(e.a1, e.a2));
                bool a = apply_status(m.status, e.ts, e.eid, true);
                bool b = apply_floor(m.floor, m.floors_named, e.ts, e.eid, e.a1, e.a2, nullptr);
                moved |= a | b;
                break;
            }
            case T_MENTOR_TRANSFERRED:
                fx.name(floor_row(e.a1, e.a2));
                moved |= apply_floor(m.floor, m.floors_named, e.ts, e.eid, e.a1, e.a2, nullptr);
                break;
            case T_MENTOR_LEFT:
                moved |= apply_status(m.status, e.ts, e.eid, false);
                break;
        }
        changed |= moved;
    }
    if (!changed) return;
    mentor_part(m, c.after);
    emit_mentor_part(fx, c.before, -1);
    emit_mentor_part(fx, c.after, +1);
    const MentorPart &b = c.before, &a = c.after;
    if (b.empty || b.campus != a.campus || b.floor != a.floor || b.active != a.active)
        fx.mentor_self(m.id.view(), MentorSelf{a.campus, a.floor, a.active});
    m.fresh = false;
    fx.changed(&m);
    bump_attached(fx, m.floors_named, m.max_ts);
    fx.bump(mentor_row(self), m.max_ts);
}

// --- logins, inboxes, actors ---------------------------------------------------------------

inline void fold_logins(Logins& p, Ev* const* evs, size_t n, FoldContext& c) {
    Effect& fx = c.fx;
    bool changed = false;
    for (size_t k = 0; k < n; k++) {
        const Ev& e = *evs[k];
        if (!p.counted.first_time(e.eid, e.ts, c.horizon_us)) continue;
        changed = true;
        Row day = day_row(day_of(e.ts));
        if (e.type == T_LOGIN_SUCCEEDED) {
            fx.add(day, F_LOGINS, 1);
            if (p.add_day(day.day)) fx.add(day, F_ACTIVE_USERS, 1);  // days only grow
            if (!p.has_last || e.ts > p.last_login) {
                p.has_last = true;
                p.last_login = e.ts;
                p.max_ts = e.ts;  // only successful logins are applied to the mentor row
                fx.activity(Atom::of(p.id.view()), 'l', p.id.view(), true, e.ts);
            }
        } else {
            fx.add(day, F_FAILED_LOGINS, 1);
        }
    }
    if (!changed) return;
    fx.changed(&p);
    if (p.has_last) fx.bump(mentor_row(Atom::of(p.id.view())), p.max_ts);
}

inline bool inbox_event(Inbox& in, const Ev& e, Effect& fx) {
    i64 before = in.unread;
    if (e.type == T_NOTE_READ_ALL) {
        if (in.has_read_all && in.read_all >= e.ts) return false;
        in.mark_all_read(e.ts);
    } else {
        u32 i = in.notes.get_or_append(e.id1);
        Notification& note = in.notes.at(i).val;
        if (e.type == T_NOTE_CREATED) {
            if (note.created.find(e.eid) >= 0) return false;
            if (note.created.empty() || e.ts < note.min_created) note.min_created = e.ts;
            note.created.append(e.eid, e.ts);
            fx.add(day_row(day_of(e.ts)), F_NOTIFICATIONS_CREATED, 1);
        } else {
            if (note.read) return false;
            note.read = true;
        }
        in.refresh(i);
    }
    if (in.unread != before) {
        fx.add(global_row(), F_UNREAD_NOTIFICATIONS, in.unread - before);
        fx.unread(in.id.view(), in.unread);
    }
    return true;
}

inline void fold_inbox(Inbox& in, Ev* const* evs, size_t n, FoldContext& c) {
    bool changed = false;
    for (size_t k = 0; k < n; k++) changed |= inbox_event(in, *evs[k], c.fx);
    if (changed) c.fx.changed(&in);
}

inline void fold_actor(Actor& a, Ev* const* evs, size_t n, FoldContext& c) {
    bool changed = false;
    for (size_t k = 0; k < n; k++) {
        const Ev& e = *evs[k];
        if (!a.counted.first_time(e.eid, e.ts, c.horizon_us)) continue;
        changed = true;
        c.fx.add(day_row(day_of(e.ts)), F_AUDIT_EVENTS, 1);
        c.fx.audit(e.obj);
    }
    if (changed) c.fx.changed(&a);
}

inline void fold_entity(EntityHead* h, Ev* const* evs, size_t n, FoldContext& c) {
    switch (h->kind) {
        case STUDENT: fold_student(*static_cast<Student*>(h), evs, n, c); break;
        case MENTOR: fold_mentor(*static_cast<Mentor*>(h), evs, n, c); break;
        case LOGINS: fold_logins(*static_cast<Logins*>(h), evs, n, c); break;
        case INBOX: fold_inbox(*static_cast<Inbox*>(h), evs, n, c); break;
        case ACTOR: fold_actor(*static_cast<Actor*>(h), evs, n, c); break;
    }
}

}  // namespace cf
