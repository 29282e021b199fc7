// A student's contribution kept part by part (cohortflow/core/ledger.py), and a mentor's (cohortflow.core.contributions).
//
// The update recomputes exactly the parts the Python StudentLedger recomputes,
// under the same conditions, and emits new - old of each (as -old then +new:
// the effect is a sum, zeros are dropped when it is read). A build is the same
// update with everything touched and the output muted.
#pragma once

#include <algorithm>
#include <vector>

#include "effect.h"
#include "entities.h"

namespace cf {

enum SubStatus : i32 { PENDING = 0, APPROVED = 1, REJECTED = 2 };

struct Touched {
    std::vector<u32> reviews;  // review indices whose latest version changed (Review.touched set)
    std::vector<u32> subs;     // submission indices whose pillar, submitted times or top changed
    bool status = false, placement = false;
    bool any() const { return !reviews.empty() || !subs.empty() || status || placement; }
    void clear() {
        reviews.clear();
        subs.clear();
        status = placement = false;
    }
};

inline Effect& muted() {
    static Effect e;
    e.on = false;
    return e;
}

inline void touch_review(Student& s, Touched& t, u32 ri) {
    Review& r = s.reviews.at(ri).val;
    if (!r.touched) {
        r.touched = 1;
        t.reviews.push_back(ri);
    }
}

inline void touch_sub(Student& s, Touched& t, u32 si) {
    Submission& sub = s.subs.at(si).val;
    if (!sub.touched) {
        sub.touched = 1;
        t.subs.push_back(si);
    }
}

inline void emit_review_part(Effect& fx, const Atom& mentor, i64 day, bool approved, bool timed, i64 took,
                             i64 sign) {
    Row m = mentor_row(mentor), d = day_row(day);
    Field verdict = approved ? F_APPROVALS : F_REJECTIONS;
    fx.add(m, F_REVIEWS_COMPLETED, sign);
    fx.add(m, verdict, sign);
    fx.add(d, F_REVIEWS, sign);
    fx.add(d, verdict, sign);
    if (timed) {
        fx.add(m, F_REVIEW_COUNT, sign);
        fx.add(d, F_REVIEW_COUNT, sign);
        fx.add(m, F_REVIEW_US_SUM, sign * took);
        fx.add(d, F_REVIEW_US_SUM, sign * took);
    }
}

inline void emit_placement(Effect& fx, const Placement& p, i64 sign) {
    if (p.floor) {
        Row f = floor_row(p.campus, p.floor_name);
        fx.add(f, F_STUDENTS_TOTAL, sign);
        fx.add(f, F_STUDENTS_ASSIGNED, p.assigned ? sign : 0);
        fx.add(f, F_SUBMISSIONS_PENDING, sign * p.pending);
        fx.add(f, F_SUBMISSIONS_APPROVED, sign * p.approved);
        fx.add(f, F_SUBMISSIONS_REJECTED, sign * p.rejected);
        for (const Atom& pillar : p.pillars) fx.add(f, F_PILLAR, sign, pillar.rec());
    }
    if (p.mentor) {
        Row m = mentor_row(p.mentor_id);
        fx.add(m, F_ASSIGNED_STUDENTS, sign);
        fx.add(m, F_PENDING_REVIEWS, sign * p.pending);
    }
}

struct StatusStep {
    i64 ts;
    sv eid;
    bool active;
};

// cohortflow.core.entities.status_steps summed per day (zero days dropped) and latest_status, in one pass.
inline bool status_part(const Status& status, Vec<DayStep>& part) {
    static std::vector<StatusStep> order;
    order.clear();
    for (const auto& e : status) order.push_back(StatusStep{e.val.ts, e.key.view(), e.val.active});
    std::sort(order.begin(), order.end(), [](const StatusStep& a, const StatusStep& b) {
        return compare_order(a.ts, a.eid, b.ts, b.eid) < 0;
    });
    part.clear();
    bool active = false;
    for (const StatusStep& e : order) {
        if (e.active == active) continue;
        active = e.active;
        i32 day = static_cast<i32>(day_of(e.ts));
        i32 step = active ? 1 : -1;
        bool found = false;
        for (DayStep& d : part)
            if (d.day == day) {
                d.step += step;
                found = true;
                break;
            }
        if (!found) part.emplace_back(DayStep{day, step});
    }
    for (u32 k = 0; k < part.size();) {
        if (part[k].step == 0) part.swap_remove(k);
        else k++;
    }
    return active;
}

inline void count_state(Ledger& L, i32 status, const Atom& pillar, i32 sign) {
    L.counts[status] += sign;
    if (status != APPROVED || pillar.none()) return;
    for (u32 k = 0; k < L.approved_pillars.size(); k++) {
        PillarCount& pc = L.approved_pillars[k];
        if (pc.pillar == pillar) {
            pc.count += sign;
            if (pc.count == 0) L.approved_pillars.swap_remove(k);  // only positive counts matter
            return;
        }
    }
    L.approved_pillars.emplace_back(PillarCount{pillar, sign});
}

inline void placement_of(const Student& s, Placement& p) {
    const Ledger& L = s.ledger;
    p.floor = p.mentor = p.assigned = false;
    p.campus = Atom();
    p.floor_name = Atom();
    p.mentor_id = Atom();
    p.pillars.clear();
    p.pending = p.approved = p.rejected = 0;
    if (!L.active) return;
    Atom mentor = s.has_mentor ? s.mentor : Atom();
    p.pending = L.counts[PENDING];
    p.approved = L.counts[APPROVED];
    p.rejected = L.counts[REJECTED];
    if (s.floor.has) {
        p.floor = true;
        p.campus = s.floor.campus;
        p.floor_name = s.floor.floor;
        p.assigned = !mentor.none();
        for (const PillarCount& pc : L.approved_pillars)
            if (pc.count > 0) p.pillars.emplace_back(pc.pillar);
    }
    if (!mentor.none()) {
        p.mentor = true;
        p.mentor_id = mentor;
    }
}

// cohortflow.core.ledger.StudentLedger.update. Clears the touched flags it was given.
inline void ledger_update(Student& s, Touched& t, Effect& fx) {
    Ledger& L = s.ledger;
    static std::vector<u32> affected, rset;
    static std::vector<i64> best;
    affected.clear();
    auto affect = [&](u32 si) {
        Submission& sub = s.subs.at(si).val;
        if (!sub.affected) {
            sub.affected = 1;
            affected.push_back(si);
        }
    };
    for (u32 si : t.subs) affect(si);
    rset.assign(t.reviews.begin(), t.reviews.end());
    for (u32 ri : t.reviews) {
        Review& r = s.reviews.at(ri).val;
        if (r.lsub != static_cast<i32>(r.sub)) {
            if (r.lsub >= 0) affect(static_cast<u32>(r.lsub));
            r.lsub = static_cast<i32>(r.sub);
        }
        affect(r.sub);
    }
    if (!t.subs.empty()) {  // their review times depend on the submitted times
        for (u32 ri = 0; ri < s.reviews.size(); ri++) {
            Review& r = s.reviews.at(ri).val;
            if (!r.touched && r.lsub >= 0 && s.subs.at(static_cast<u32>(r.lsub)).val.touched) {
                r.touched = 1;
                rset.push_back(ri);
            }
        }
    }

    for (u32 ri : rset) {
        Review& r = s.reviews.at(ri).val;
        const Attempt* submitted = s.subs.at(r.sub).val.attempt(r.attempt);
        if (r.lhas) emit_review_part(fx, r.lmentor, r.lday, r.lapproved, r.ltimed, r.ltook, -1);
        r.lhas = true;
        r.lmentor = r.mentor;
        r.lday = static_cast<i32>(day_of(r.ts));
        r.lapproved = r.approved;
        r.ltimed = submitted != nullptr;
        r.ltook = submitted ? std::max<i64>(0, r.ts - submitted->ts) : 0;
        emit_review_part(fx, r.lmentor, r.lday, r.lapproved, r.ltimed, r.ltook, +1);
    }
    for (u32 si : t.subs) {
        Submission& sub = s.subs.at(si).val;
        for (i32 day : sub.part_days) fx.add(day_row(day), F_SUBMISSIONS, -1);
        sub.part_days.clear();
        for (const Attempt& a : sub.submitted) {
            i32 day = static_cast<i32>(day_of(a.ts));
            sub.part_days.emplace_back(day);
            fx.add(day_row(day), F_SUBMISSIONS, +1);
        }
    }

    bool aggregates_moved = false;
    if (!affected.empty()) {
        best.resize(s.subs.size());
        for (u32 si : affected) best[si] = -1;
        for (u32 ri = 0; ri < s.reviews.size(); ri++) {
            const Review& r = s.reviews.at(ri).val;
            if (r.lsub < 0) continue;
            const Submission& sub = s.subs.at(static_cast<u32>(r.lsub)).val;
            if (!sub.affected || r.attempt != sub.top) continue;
            i64& b = best[static_cast<u32>(r.lsub)];
            if (b < 0) {
                b = ri;
            } else {
                const Review& o = s.reviews.at(static_cast<u32>(b)).val;
                if (compare_order(o.ts, o.eid.view(), r.ts, r.eid.view()) < 0) b = ri;
            }
        }
        for (u32 si : affected) {
            Submission& sub = s.subs.at(si).val;
            sub.affected = 0;
            i64 b = best[si];
            i32 status = b < 0 ? PENDING : (s.reviews.at(static_cast<u32>(b)).val.approved ? APPROVED : REJECTED);
            Atom pillar = sub.has_pillar ? sub.pillar : Atom();
            if (status == sub.lstatus && pillar == sub.lpillar) continue;
            if (sub.lstatus >= 0) count_state(L, sub.lstatus, sub.lpillar, -1);
            count_state(L, status, pillar, +1);
            sub.lstatus = status;
            sub.lpillar = pillar;
            aggregates_moved = true;
        }
    }

    if (t.status) {
        for (const DayStep& d : L.status_part) fx.add(day_row(d.day), F_STUDENTS_STEP, -d.step);
        if (L.status_global) fx.add(global_row(), F_STUDENTS_TOTAL, -1);
        L.active = status_part(s.status, L.status_part);
        L.status_global = L.active;
        for (const DayStep& d : L.status_part) fx.add(day_row(d.day), F_STUDENTS_STEP, d.step);
        if (L.status_global) fx.add(global_row(), F_STUDENTS_TOTAL, +1);
    }
    if (t.status || t.placement || aggregates_moved) {
        emit_placement(fx, L.place, -1);
        placement_of(s, L.place);
        emit_placement(fx, L.place, +1);
    }
    if (!rset.empty()) {
        static std::vector<MentorTs> latest;
        latest.clear();
        for (const auto& e : s.reviews) {
            const Review& r = e.val;
            bool found = false;
            for (MentorTs& m : latest)
                if (m.mentor == r.mentor) {
                    if (r.ts > m.ts) m.ts = r.ts;
                    found = true;
                    break;
                }
            if (!found && r.ts > NO_TS) latest.push_back(MentorTs{r.mentor, r.ts});
        }
        for (const MentorTs& m : latest) {
            const MentorTs* old = nullptr;
            for (const MentorTs& o : L.activity)
                if (o.mentor == m.mentor) old = &o;
            if (!old || old->ts != m.ts) fx.activity(m.mentor, 's', s.id.view(), true, m.ts);
        }
        for (const MentorTs& o : L.activity) {
            bool kept = false;
            for (const MentorTs& m : latest)
                if (m.mentor == o.mentor) kept = true;
            if (!kept) fx.activity(o.mentor, 's', s.id.view(), false, 0);
        }
        L.activity.clear();
        for (const MentorTs& m : latest) L.activity.emplace_back(MentorTs{m.mentor, m.ts});
    }
    for (u32 ri : rset) s.reviews.at(ri).val.touched = 0;
    for (u32 si : t.subs) s.subs.at(si).val.touched = 0;
}

// StudentLedger.build: every part touched, nothing emitted.
inline void ledger_build(Student& s) {
    static Touched t;
    t.clear();
    s.ledger = Ledger();
    for (u32 ri = 0; ri < s.reviews.size(); ri++) touch_review(s, t, ri);
    for (u32 si = 0; si < s.subs.size(); si++) touch_sub(s, t, si);
    t.status = t.placement = true;
    ledger_update(s, t, muted());
}

// cohortflow.core.contributions.mentor_contribution, with EMPTY for a mentor never folded (fresh).
struct MentorPart {
    bool empty = true;  // EMPTY: no counts, mentor_self None
    bool active = false;
    bool has_floor = false;
    Atom campus, floor;
    Vec<DayStep> steps;
};

inline void mentor_part(const Mentor& m, MentorPart& p) {
    p.empty = false;
    p.active = status_part(m.status, p.steps);
    p.has_floor = m.floor.has;
    p.campus = m.floor.has ? m.floor.campus : Atom();
    p.floor = m.floor.has ? m.floor.floor : Atom();
}

inline void emit_mentor_part(Effect& fx, const MentorPart& p, i64 sign) {
    if (p.empty) return;
    if (p.active) {
        fx.add(global_row(), F_MENTORS_TOTAL, sign);
        if (p.has_floor) fx.add(floor_row(p.campus, p.floor), F_MENTORS_TOTAL, sign);
    }
    for (const DayStep& d : p.steps) fx.add(day_row(d.day), F_MENTORS_STEP, sign * d.step);
}

}  // namespace cf
