// The pending effect, held natively until take_effect() turns it into the fields of cohortflow.core.fold.Effect.
#pragma once

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "strings.h"

namespace cf {

// What every cached entity starts with; the kinds and their states are in entities.h.
struct EntityHead {
    u8 kind;
    bool fresh = true;  // a mentor still contributing cohortflow.core.contributions.EMPTY
    u32 hash = 0;
    u32 stamp = 0, group = 0;  // the apply() that grouped it last, and its group there
    u32 pending = 0;           // 1 + its place in the pending effect's changed list; 0: not there
    bool held = false;         // scratch of one trim(): in its keep set
    u64 used = 0;              // the Kernel's clock when last folded into or loaded: least recently used first
    Str id;
};

// The view rows of cohortflow.core.contributions: ("F", campus, floor), ("M", mentor_id), ("D", day), ("G",).
struct Row {
    u8 kind = 0;
    i64 day = 0;
    AtomRec* a = nullptr;
    AtomRec* b = nullptr;
    bool operator==(const Row& o) const { return kind == o.kind && day == o.day && a == o.a && b == o.b; }
    u64 hash() const {
        return mix64(kind * 0x9e3779b97f4a7c15ULL ^ static_cast<u64>(day) ^ (reinterpret_cast<uintptr_t>(a) << 1) ^
                     (reinterpret_cast<uintptr_t>(b) * 31));
    }
};

inline Row floor_row(const Atom& campus, const Atom& floor) { return Row{'F', 0, campus.rec(), floor.rec()}; }
inline Row mentor_row(const Atom& mentor) { return Row{'M', 0, mentor.rec(), nullptr}; }
inline Row day_row(i64 day) { return Row{'D', day, nullptr, nullptr}; }
inline Row global_row() { return Row{'G', 0, nullptr, nullptr}; }

// The count fields of the rows (cohortflow.core.contributions *_FIELDS); PILLAR is "pillar:<name>".
enum Field : u8 {
    F_STUDENTS_TOTAL,
    F_STUDENTS_ASSIGNED,
    F_MENTORS_TOTAL,
    F_SUBMISSIONS_PENDING,
    F_SUBMISSIONS_APPROVED,
    F_SUBMISSIONS_REJECTED,
    F_ASSIGNED_STUDENTS,
    F_PENDING_REVIEWS,
    F_REVIEWS_COMPLETED,
    F_APPROVALS,
    F_REJECTIONS,
    F_REVIEW_US_SUM,
    F_REVIEW_COUNT,
    F_SUBMISSIONS,
    F_REVIEWS,
    F_LOGINS,
    F_FAILED_LOGINS,
    F_ACTIVE_USERS,
    F_AUDIT_EVENTS,
    F_NOTIFICATIONS_CREATED,
    F_STUDENTS_STEP,
    F_MENTORS_STEP,
    F_UNREAD_NOTIFICATIONS,
    F_PILLAR,
    F_COUNT
};

inline const char* const FIELD_NAMES[F_COUNT] = {
    "students_total", "students_assigned", "mentors_total", "submissions_pending", "submissions_approved",
    "submissions_rejected", "assigned_students", "pending_reviews", "reviews_completed", "approvals",
    "rejections", "review_us_sum", "review_count", "submissions", "reviews", "logins", "failed_logins",
    "active_users", "audit_events", "notifications_created", "students_step", "mentors_step",
    "unread_notifications", "pillar:"};

struct DeltaKey {
    Row row;
    u8 field = 0;
    AtomRec* pillar = nullptr;
    bool operator==(const DeltaKey& o) const { return row == o.row && field == o.field && pillar == o.pillar; }
    u64 hash() const { return mix64(row.hash() ^ (static_cast<u64>(field) << 56) ^ reinterpret_cast<uintptr_t>(pillar)); }
};

// Open addressing for trivially copyable keys with a hash() method; no removal, only clear().
template <class K, class V>
class FlatMap {
  public:
    struct Slot {
        K key;
        V val;
    };
    // The value of key, default-initialised when new; `fresh` tells which.
    V& at(const K& key, bool& fresh) {
        if ((used_.size() + 1) * 2 > slots_.size()) grow();
        size_t mask = slots_.size() - 1;
        for (size_t i = key.hash() & mask;; i = (i + 1) & mask) {
            if (!full_[i]) {
                full_[i] = 1;
                slots_[i].key = key;
                slots_[i].val = V();
                used_.push_back(static_cast<u32>(i));
                fresh = true;
                return slots_[i].val;
            }
            if (slots_[i].key == key) {
                fresh = false;
                return slots_[i].val;
            }
        }
    }
    size_t size() const { return used_.size(); }
    template <class F>
    void each(F f) const {
        for (u32 i : used_) f(slots_[i].key, slots_[i].val);
    }
    void clear() {
        for (u32 i : used_) full_[i] = 0;
        used_.clear();
        if (slots_.size() > (1u << 20)) {  // a huge batch should not pin its table forever
            slots_.clear();
            full_.clear();
            slots_.shrink_to_fit();
            full_.shrink_to_fit();
        }
    }

  private:
    void grow() {
        size_t cap = slots_.empty() ? 64 : slots_.size() * 2;
        std::vector<Slot> old;
        old.swap(slots_);
        std::vector<u8> oldfull;
        oldfull.swap(full_);
        std::vector<u32> oldused;
        oldused.swap(used_);
        slots_.resize(cap);
        full_.assign(cap, 0);
        used_.reserve(oldused.size() * 2);
        for (u32 i : oldused) {
            bool fresh;
            at(old[i].key, fresh) = old[i].val;
        }
    }
    std::vector<Slot> slots_;
    std::vector<u8> full_;
    std::vector<u32> used_;  // insertion order, for output and a cheap clear
};

struct MentorSelf {
    Atom campus, floor;  // none: None
    bool active = false;
};

struct ActivityKey {
    AtomRec* mentor;
    std::string contributor;  // "s:<student>" or "l:<user>"
    bool operator==(const ActivityKey& o) const { return mentor == o.mentor && contributor == o.contributor; }
};
struct ActivityHash {
    size_t operator()(const ActivityKey& k) const {
        return hash_bytes(k.contributor.data(), k.contributor.size()) ^ reinterpret_cast<uintptr_t>(k.mentor);
    }
};

inline void retain(AtomRec* a) {
    if (a) a->refs++;
}
inline void release(AtomRec* a) {
    if (a && --a->refs == 0) atoms().release(a);
}

// Every write checks `on`: replaying a stored tail (effect=False) moves only the state.
class Effect {
  public:
    bool on = true;

    ~Effect() { reset(); }

    void add(const Row& row, Field field, i64 value, AtomRec* pillar = nullptr) {
        if (!on || value == 0) return;
        bool fresh;
        __int128& v = deltas_.at(DeltaKey{row, field, pillar}, fresh);
        if (fresh) {
            hold(row);
            retain(pillar);
        }
        v += value;
    }
    void name(const Row& row) {
        if (!on) return;
        bool fresh;
        named_.at(row, fresh);
        if (fresh) hold(row);
    }
    void bump(const Row& row, i64 ts) {
        if (!on) return;
        bool fresh;
        i64& v = as_of_.at(row, fresh);
        if (fresh) {
            hold(row);
            v = ts;
        } else if (ts > v) {
            v = ts;
        }
    }
    void mentor_self(sv mentor_id, const MentorSelf& value) {
        if (on) mentor_self_[std::string(mentor_id)] = value;
    }
    void activity(const Atom& mentor, char kind, sv contributor, bool has, i64 ts) {
        if (!on) return;
        std::string who;
        who.reserve(contributor.size() + 2);
        who.push_back(kind);
        who.push_back(':');
        who.append(contributor);
        auto it = activity_.find(ActivityKey{mentor.rec(), who});
        if (it == activity_.end()) {
            retain(mentor.rec());
            activity_.emplace(ActivityKey{mentor.rec(), std::move(who)}, std::make_pair(has, ts));
        } else {
            it->second = std::make_pair(has, ts);
        }
    }
    void unread(sv user_id, i64 count) {
        if (on) unread_[std::string(user_id)] = count;
    }
    void changed(EntityHead* h) {
        if (!on || h->pending) return;
        changed_.push_back(h);
        h->pending = static_cast<u32>(changed_.size());
    }
    // The entity is about to be freed: keep its key, not the pointer.
    void forget(EntityHead* h) {
        if (!h->pending) return;
        changed_[h->pending - 1] = nullptr;
        h->pending = 0;
        std::string key(1, static_cast<char>(h->kind));
        key.append(h->id.view());
        changed_gone_.push_back(std::move(key));
    }
    void audit(PyObject* event) {
        if (!on) return;
        Py_INCREF(event);
        audit_.push_back(event);
    }

    void reset() {
        deltas_.each([](const DeltaKey& k, const __int128&) {
            unhold(k.row);
            release(k.pillar);
        });
        named_.each([](const Row& r, const u8&) { unhold(r); });
        as_of_.each([](const Row& r, const i64&) { unhold(r); });
        for (auto& kv : activity_) release(kv.first.mentor);
        deltas_.clear();
        named_.clear();
        as_of_.clear();
        activity_.clear();
        mentor_self_.clear();
        unread_.clear();
        for (EntityHead* h : changed_)
            if (h) h->pending = 0;
        changed_.clear();
        changed_gone_.clear();
        for (PyObject* e : audit_) Py_DECREF(e);
        audit_.clear();
    }

    FlatMap<DeltaKey, __int128> deltas_;
    FlatMap<Row, u8> named_;
    FlatMap<Row, i64> as_of_;
    std::unordered_map<std::string, MentorSelf> mentor_self_;
    std::unordered_map<ActivityKey, std::pair<bool, i64>, ActivityHash> activity_;
    std::unordered_map<std::string, i64> unread_;
    std::vector<EntityHead*> changed_;         // in first-change order; null: evicted since
    std::vector<std::string> changed_gone_;    // kind byte + id of the evicted ones
    std::vector<PyObject*> audit_;             // owned references, first sighting order

  private:
    static void hold(const Row& r) {
        retain(r.a);
        retain(r.b);
    }
    static void unhold(const Row& r) {
        release(r.a);
        release(r.b);
    }
};

}  // namespace cf
