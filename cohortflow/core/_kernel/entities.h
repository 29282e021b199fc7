// The entity states of cohortflow/core/entities.py, natively, with their idempotent merges.
//
// Each apply_* mirrors its Python namesake and returns whether the event
// changed anything. Fields marked "ledger" are the derived parts of
// cohortflow/core/ledger.py's StudentLedger, kept beside the state they summarise; they
// are never encoded and are rebuilt after a load.
#pragma once

#include "effect.h"
#include "strings.h"

namespace cf {

enum Kind : u8 { STUDENT = 's', MENTOR = 'm', LOGINS = 'l', INBOX = 'n', ACTOR = 'a' };

inline bool known_kind(sv kind) {
    return kind.size() == 1 && (kind[0] == STUDENT || kind[0] == MENTOR || kind[0] == LOGINS ||
                                kind[0] == INBOX || kind[0] == ACTOR);
}

// (ts, event_id) order, the order of every register.
inline int compare_order(i64 ts1, sv eid1, i64 ts2, sv eid2) {
    if (ts1 != ts2) return ts1 < ts2 ? -1 : 1;
    return compare_sv(eid1, eid2);
}

struct StatusEvent {
    i64 ts = 0;
    bool active = false;
};
using Status = OrderedMap<StatusEvent>;

// A register (ts, event_id, campus, floor); has == false is None.
struct FloorReg {
    bool has = false;
    i64 ts = 0;
    Str eid;
    Atom campus, floor;
};

struct FloorName {
    Atom campus, floor;
};

inline bool grow_floor(Vec<FloorName>& names, const Atom& campus, const Atom& floor) {
    for (const FloorName& f : names)
        if (f.campus == campus && f.floor == floor) return false;
    names.emplace_back(FloorName{campus, floor});
    return true;
}

inline bool grow_atom(Vec<Atom>& names, const Atom& name) {
    for (const Atom& a : names)
        if (a == name) return false;
    names.emplace_back(name);
    return true;
}

inline bool apply_status(Status& status, i64 ts, sv eid, bool active) {
    if (status.find(eid) >= 0) return false;
    status.append(eid, StatusEvent{ts, active});
    return true;
}

// Student.apply_floor / Mentor.apply_floor: the name grows, the register keeps the greatest (ts, event_id).
inline bool apply_floor(FloorReg& reg, Vec<FloorName>& named, i64 ts, sv eid, const Atom& campus,
                        const Atom& floor, bool* moved) {
    bool grew = grow_floor(named, campus, floor);
    if (reg.has && compare_order(reg.ts, reg.eid.view(), ts, eid) >= 0) return grew;
    reg.has = true;
    reg.ts = ts;
    reg.eid.assign(eid);
    reg.campus = campus;
    reg.floor = floor;
    if (moved) *moved = true;
    return true;
}

struct Attempt {
    u64 attempt;
    i64 ts;  // earliest submitted ts of the attempt
};

struct Submission {
    bool has_pillar = false;  // the register (ts, event_id, pillar) of the latest submitted event
    i64 pillar_ts = 0;
    Str pillar_eid;
    Atom pillar;
    Vec<Attempt> submitted;  // attempt -> earliest ts, in insertion order
    u64 top = 0;
    // ledger
    Vec<i32> part_days;  // the day of every submitted time its "submissions" part counted
    i32 lstatus = -1;    // the (status, pillar) the ledger counted; -1: none yet
    Atom lpillar;
    u8 touched = 0, affected = 0;  // scratch flags of one update

    const Attempt* attempt(u64 a) const {
        for (const Attempt& s : submitted)
            if (s.attempt == a) return &s;
        return nullptr;
    }
};

struct Review {
    i64 ts = 0;
    Str eid;
    u32 sub = 0;  // index of its submission in the student's submissions
    u64 attempt = 0;
    Atom mentor;
    bool approved = false;
    // ledger: the part it last contributed (cohortflow.core.ledger._review_part) and the submission it counted for
    i32 lsub = -1;
    bool lhas = false, lapproved = false, ltimed = false;
    i32 lday = 0;
    Atom lmentor;
    i64 ltook = 0;
    u8 touched = 0;  // scratch flag of one update
};

struct DayStep {
    i32 day;
    i32 step;
};

struct PillarCount {
    Atom pillar;
    i32 count;
};

struct MentorTs {
    Atom mentor;
    i64 ts;
};

// The placement part of the ledger (cohortflow.core.ledger._placement), as last emitted.
struct Placement {
    bool floor = false, mentor = false, assigned = false;
    Atom campus, floor_name, mentor_id;
    i32 pending = 0, approved = 0, rejected = 0;
    Vec<Atom> pillars;  // approved pillars with a positive count
};

struct Ledger {
    i32 counts[3] = {0, 0, 0};  // pending, approved, rejected submissions
    Vec<PillarCount> approved_pillars;
    Vec<DayStep> status_part;
    bool status_global = false;  // the part's ("G",) students_total
    bool active = false;
    Placement place;
    Vec<MentorTs> activity;  // mentor -> latest ts of this student's reviews naming it
};

struct Student : EntityHead {
    Status status;
    FloorReg floor;
    bool has_mentor = false;  // the register (ts, event_id, mentor_id | None)
    i64 mentor_ts = 0;
    Str mentor_eid;
    Atom mentor;
    OrderedMap<Submission> subs;
    OrderedMap<Review> reviews;
    Vec<FloorName> floors_named;
    Vec<Atom> mentors_named;
    i64 max_ts = 0;
    Ledger ledger;
};

struct Mentor : EntityHead {
    Status status;
    FloorReg floor;
    Vec<FloorName> floors_named;
    i64 max_ts = 0;
};

struct Counted {
    OrderedMap<i64> seen;  // event_id -> ts
    i64 newest = 0;
    bool has_oldest = false;  // derived: None after a load, as in Python
    i64 oldest = 0;

    // cohortflow.core.entities.Counted.first_time, to the letter (pruning rule included).
    bool first_time(sv eid, i64 ts, i64 horizon_us) {
        if (seen.find(eid) >= 0) return false;
        seen.append(eid, ts);
        if (!has_oldest) {
            has_oldest = true;
            oldest = ts;
            for (const auto& e : seen)
                if (e.val < oldest) oldest = e.val;
        } else if (ts < oldest) {
            oldest = ts;
        }
        if (ts > newest) {
            newest = ts;
            __int128 cutoff = static_cast<__int128>(ts) - horizon_us;
            if (oldest < cutoff && seen.size() > 64) {
                seen.filter([cutoff](i64 t) { return t >= cutoff; });
                oldest = ts;
                for (const auto& e : seen)
                    if (e.val < oldest) oldest = e.val;
            }
        }
        return true;
    }
};

struct Logins : EntityHead {
    Counted counted;
    Vec<i64> days;  // sorted
    bool has_last = false;
    i64 last_login = 0;
    i64 max_ts = 0;

    bool add_day(i64 day) {
        u32 lo = 0, hi = days.size();
        while (lo < hi) {
            u32 mid = (lo + hi) / 2;
            if (days[mid] < day) lo = mid + 1;
            else hi = mid;
        }
        if (lo < days.size() && days[lo] == day) return false;
        days.insert_at(lo, day);
        return true;
    }
};

struct Notification {
    OrderedMap<i64> created;  // created event_id -> ts
    bool read = false;
    bool flagged = false;  // derived: in Inbox.unread_since
    i64 min_created = 0;   // min of created, valid when created is not empty

    bool unread(bool has_read_all, i64 read_all) const {
        if (created.empty() || read) return false;
        return !has_read_all || read_all < min_created;
    }
};

struct Inbox : EntityHead {
    OrderedMap<Notification> notes;
    bool has_read_all = false;
    i64 read_all = 0;
    i64 unread = 0;  // as stored: equal to flagged.size() once the inbox has been re-judged
    // derived, cohortflow.core.entities.Inbox.unread_since: the notifications judged unread; built on first use
    bool judged = false;
    Vec<u32> flagged;

    void judge_all() {
        if (judged) return;
        judged = true;
        flagged.clear();
        for (u32 i = 0; i < notes.size(); i++) {
            Notification& n = notes.at(i).val;
            n.flagged = n.unread(has_read_all, read_all);
            if (n.flagged) flagged.emplace_back(i);
        }
    }
    void refresh(u32 i) {
        judge_all();
        Notification& n = notes.at(i).val;
        bool now = n.unread(has_read_all, read_all);
        if (now && !n.flagged) {
            flagged.emplace_back(i);
        } else if (!now && n.flagged) {
            for (u32 k = 0; k < flagged.size(); k++)
                if (flagged[k] == i) {
                    flagged.swap_remove(k);
                    break;
                }
        }
        n.flagged = now;
        unread = flagged.size();
    }
    void mark_all_read(i64 ts) {
        judge_all();
        has_read_all = true;
        read_all = ts;
        for (u32 k = 0; k < flagged.size();) {
            Notification& n = notes.at(flagged[k]).val;
            if (n.min_created <= ts) {
                n.flagged = false;
                flagged.swap_remove(k);
            } else {
                k++;
            }
        }
        unread = flagged.size();
    }
};

struct Actor : EntityHead {
    Counted counted;
};

}  // namespace cf
