// cohortflow.core._kernel: the fold of cohortflow/core/fold.py compiled, with the entity states held natively.
//
// cohortflow/core/fold.py (with cohortflow/core/entities.py, cohortflow/core/ledger.py, cohortflow/core/contributions.py
// and cohortflow/core/state_codec.py) is the reference: this module must give the same
// effects and states for any sequence of calls, and tests/core/test_kernel.py
// holds it to that. A whole chunk of events crosses into native code in one
// apply() call: the events are read through their attributes (so pydantic
// models and msgspec Structs both work), grouped by entity and folded.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "codec.h"
#include "effect.h"
#include "entities.h"
#include "fold.h"
#include "ledger.h"
#include "strings.h"

using namespace cf;

namespace {

const char MODULE_DOC[] =
    "The compiled fold kernel: cohortflow.core.fold's Fold over a State, with the entity states held natively.\n\n"
    "cohortflow/core/fold.py is the reference; Kernel gives the same effects and the same states (in the v1 bytes of\n"
    "cohortflow/core/state_codec.py) for any sequence of calls. A chunk of events is folded in one apply() call.";

const char KERNEL_DOC[] =
    "Kernel(pillars, horizon_us): cached entity states and a pending effect.\n\n"
    "apply(events, keys=None, effect=True) folds a chunk like Fold.apply (effect=False moves only the states);\n"
    "take_effect() returns the pending effect as the fields of cohortflow.core.fold.Effect and starts a new one;\n"
    "encode(key) / load(key, body) convert an entity to / from its v1 state bytes; evict(keys) forgets\n"
    "entities; clear() forgets every entity and the pending effect.";

// --- interned names --------------------------------------------------------------------------

PyObject* s_type;
PyObject* s_event_id;
PyObject* s_occurred_at;
PyObject* s_data;
PyObject* s_campus;
PyObject* s_floor;
PyObject* s_mentor_id;
PyObject* s_submission_id;
PyObject* s_pillar;
PyObject* s_attempt;
PyObject* s_review_id;
PyObject* s_decision;
PyObject* s_notification_id;
PyObject* s_utcoffset;
PyObject* s_key_fields[T_COUNT];
PyObject* s_row_kind[4];  // "F", "M", "D", "G"
PyObject* s_kinds[5];     // "s", "m", "l", "n", "a"
PyObject* s_fields[F_COUNT];

bool intern_names() {
    struct {
        PyObject** slot;
        const char* name;
    } names[] = {
        {&s_type, "type"},
        {&s_event_id, "event_id"},
        {&s_occurred_at, "occurred_at"},
        {&s_data, "data"},
        {&s_campus, "campus"},
        {&s_floor, "floor"},
        {&s_mentor_id, "mentor_id"},
        {&s_submission_id, "submission_id"},
        {&s_pillar, "pillar"},
        {&s_attempt, "attempt"},
        {&s_review_id, "review_id"},
        {&s_decision, "decision"},
        {&s_notification_id, "notification_id"},
        {&s_utcoffset, "utcoffset"},
        {&s_row_kind[0], "F"},
        {&s_row_kind[1], "M"},
        {&s_row_kind[2], "D"},
        {&s_row_kind[3], "G"},
        {&s_kinds[0], "s"},
        {&s_kinds[1], "m"},
        {&s_kinds[2], "l"},
        {&s_kinds[3], "n"},
        {&s_kinds[4], "a"},
    };
    for (auto& n : names)
        if (!(*n.slot = PyUnicode_InternFromString(n.name))) return false;
    for (int t = 0; t < T_COUNT; t++)
        if (!(s_key_fields[t] = PyUnicode_InternFromString(EVENT_TYPES[t].key_field))) return false;
    for (int f = 0; f < F_PILLAR; f++)
        if (!(s_fields[f] = PyUnicode_InternFromString(FIELD_NAMES[f]))) return false;
    return true;
}

PyObject* kind_str(char kind) {
    const char kinds[] = "smlna";
    for (int k = 0; k < 5; k++)
        if (kinds[k] == kind) return s_kinds[k];
    return nullptr;
}

// --- small helpers ---------------------------------------------------------------------------

class Ref {
  public:
    Ref() = default;
    explicit Ref(PyObject* o) : p_(o) {}
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
    ~Ref() { Py_XDECREF(p_); }
    PyObject* get() const { return p_; }
    PyObject* release() {
        PyObject* p = p_;
        p_ = nullptr;
        return p;
    }
    void reset(PyObject* o) {
        Py_XDECREF(p_);
        p_ = o;
    }
    explicit operator bool() const { return p_ != nullptr; }

  private:
    PyObject* p_ = nullptr;
};

// New references that must outlive the string views taken from them (in a buffer the kernel reuses).
struct Keep {
    std::vector<PyObject*>& refs;
    explicit Keep(std::vector<PyObject*>& buffer) : refs(buffer) {}
    ~Keep() {
        for (PyObject* o : refs) Py_DECREF(o);
        refs.clear();
    }
    PyObject* operator()(PyObject* o) {
        if (o) refs.push_back(o);
        return o;
    }
};

PyObject* str_of(sv s) { return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict"); }

PyObject* atom_str(AtomRec* a) {
    if (!a) Py_RETURN_NONE;
    if (!a->py && !(a->py = str_of(a->view()))) return nullptr;
    Py_INCREF(a->py);
    return a->py;
}

PyObject* long_of(__int128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong(static_cast<long long>(v));
    Ref hi(PyLong_FromLongLong(static_cast<long long>(v >> 64)));
    Ref lo(PyLong_FromUnsignedLongLong(static_cast<unsigned long long>(static_cast<u64>(v))));
    Ref bits(PyLong_FromLong(64));
    if (!hi || !lo || !bits) return nullptr;
    Ref shifted(PyNumber_Lshift(hi.get(), bits.get()));
    if (!shifted) return nullptr;
    return PyNumber_Add(shifted.get(), lo.get());
}

bool utf8(PyObject* o, sv& out) {
    Py_ssize_t n;
    const char* p = PyUnicode_AsUTF8AndSize(o, &n);
    if (!p) return false;
    out = sv(p, static_cast<size_t>(n));
    return true;
}

// A (kind, id) key: a tuple of two str. Sets TypeError (or ValueError for an unknown kind when strict).
bool parse_key(PyObject* key, char& kind, sv& id, bool strict) {
    if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(key, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(key, 1))) {
        PyErr_Format(PyExc_TypeError, "an entity key is a (kind, id) tuple of two str, not %R", key);
        return false;
    }
    sv k;
    if (!utf8(PyTuple_GET_ITEM(key, 0), k) || !utf8(PyTuple_GET_ITEM(key, 1), id)) return false;
    if (!known_kind(k)) {
        if (strict)
            PyErr_Format(PyExc_ValueError,
                         "unknown entity kind %R in %R: the kinds are 's' student, 'm' mentor, 'l' logins, "
                         "'n' inbox, 'a' actor", PyTuple_GET_ITEM(key, 0), key);
        else
            PyErr_SetString(PyExc_KeyError, "unknown entity kind");
        return false;
    }
    kind = k[0];
    return true;
}

i64 days_from_civil(i64 y, unsigned m, unsigned d) {
    y -= m <= 2;
    const i64 era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<i64>(doe) - 719468;
}

// cohortflow.core.clock.micros: (moment - EPOCH) // 1 us, for any aware datetime.
bool micros_of(PyObject* o, i64& out, Py_ssize_t i) {
    if (!PyDateTime_Check(o)) {
        PyErr_Format(PyExc_TypeError, "event %zd: occurred_at must be a datetime, not %.80s", i, Py_TYPE(o)->tp_name);
        return false;
    }
    PyObject* tz = PyDateTime_DATE_GET_TZINFO(o);
    i64 offset = 0;
    if (tz != PyDateTime_TimeZone_UTC) {
        Ref delta(tz == Py_None ? nullptr : PyObject_CallMethodNoArgs(o, s_utcoffset));
        if (tz != Py_None && !delta) return false;
        if (!delta || delta.get() == Py_None || !PyDelta_Check(delta.get())) {
            PyErr_Format(PyExc_TypeError, "event %zd: occurred_at must be timezone-aware", i);
            return false;
        }
        offset = (static_cast<i64>(PyDateTime_DELTA_GET_DAYS(delta.get())) * 86400 +
                  PyDateTime_DELTA_GET_SECONDS(delta.get())) * 1000000 +
                 PyDateTime_DELTA_GET_MICROSECONDS(delta.get());
    }
    i64 days = days_from_civil(PyDateTime_GET_YEAR(o), PyDateTime_GET_MONTH(o), PyDateTime_GET_DAY(o));
    i64 secs = days * 86400 + PyDateTime_DATE_GET_HOUR(o) * 3600 + PyDateTime_DATE_GET_MINUTE(o) * 60 +
               PyDateTime_DATE_GET_SECOND(o);
    out = secs * 1000000 + PyDateTime_DATE_GET_MICROSECOND(o) - offset;
    return true;
}

// --- the entity table --------------------------------------------------------------------------

u32 key_hash(char kind, sv id) { return static_cast<u32>(mix64(hash_sv(id) + static_cast<u8>(kind))); }

void free_entity(EntityHead* h) {
    switch (h->kind) {
        case STUDENT: delete static_cast<Student*>(h); break;
        case MENTOR: delete static_cast<Mentor*>(h); break;
        case LOGINS: delete static_cast<Logins*>(h); break;
        case INBOX: delete static_cast<Inbox*>(h); break;
        case ACTOR: delete static_cast<Actor*>(h); break;
    }
}

EntityHead* new_entity(char kind, sv id) {
    EntityHead* h = nullptr;
    switch (kind) {
        case STUDENT: h = new Student(); break;
        case MENTOR: h = new Mentor(); break;
        case LOGINS: h = new Logins(); break;
        case INBOX: h = new Inbox(); break;
        default: h = new Actor(); break;
    }
    h->kind = static_cast<u8>(kind);
    h->id.assign(id);
    return h;
}

// Open addressing with linear probing and backward-shift deletion: one pointer per slot.
class Table {
  public:
    ~Table() {
        clear();
        std::free(slots_);
    }
    size_t size() const { return n_; }

    EntityHead* find(char kind, sv id, u32 h) const {
        if (!n_) return nullptr;
        size_t mask = cap_ - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
            EntityHead* e = slots_[i];
            if (!e) return nullptr;
            if (e->hash == h && e->kind == static_cast<u8>(kind) && e->id.view() == id) return e;
        }
    }
    // Insert or replace; returns the replaced entity (to free) or null.
    EntityHead* put(EntityHead* e) {
        if ((n_ + 1) * 10 > cap_ * 7) grow();
        size_t mask = cap_ - 1;
        for (size_t i = e->hash & mask;; i = (i + 1) & mask) {
            EntityHead* o = slots_[i];
            if (!o) {
                slots_[i] = e;
                n_++;
                return nullptr;
            }
            if (o->hash == e->hash && o->kind == e->kind && o->id.view() == e->id.view()) {
                slots_[i] = e;
                return o;
            }
        }
    }
    EntityHead* remove(char kind, sv id) {
        if (!n_) return nullptr;
        u32 h = key_hash(kind, id);
        size_t mask = cap_ - 1;
        size_t i = h & mask;
        for (;; i = (i + 1) & mask) {
            EntityHead* e = slots_[i];
            if (!e) return nullptr;
            if (e->hash == h && e->kind == static_cast<u8>(kind) && e->id.view() == id) break;
        }
        EntityHead* gone = slots_[i];
        for (size_t j = i;;) {
            j = (j + 1) & mask;
            EntityHead* e = slots_[j];
            if (!e) break;
            size_t home = e->hash & mask;
            if (((j - home) & mask) >= ((j - i) & mask)) {
                slots_[i] = e;
                i = j;
            }
        }
        slots_[i] = nullptr;
        n_--;
        return gone;
    }
    void clear() {
        for (size_t i = 0; i < cap_; i++)
            if (slots_[i]) {
                free_entity(slots_[i]);
                slots_[i] = nullptr;
            }
        n_ = 0;
    }
    template <class F>
    void each(F f) {
        for (size_t i = 0; i < cap_; i++)
            if (slots_[i]) f(slots_[i]);
    }

  private:
    void grow() {
        size_t cap = cap_ ? cap_ * 2 : 1024;
        EntityHead** slots = static_cast<EntityHead**>(std::calloc(cap, sizeof(EntityHead*)));
        if (!slots) out_of_memory();
        for (size_t k = 0; k < cap_; k++) {
            EntityHead* e = slots_[k];
            if (!e) continue;
            size_t i = e->hash & (cap - 1);
            while (slots[i]) i = (i + 1) & (cap - 1);
            slots[i] = e;
        }
        std::free(slots_);
        slots_ = slots;
        cap_ = cap;
    }
    EntityHead** slots_ = nullptr;
    size_t cap_ = 0, n_ = 0;
};

// --- the Kernel object ---------------------------------------------------------------------------

struct Kernel {
    Table table;
    Effect fx;
    i64 horizon_us = 0;
    std::vector<Atom> pillars;
    u32 stamp = 0;
    u64 clock = 0;  // EntityHead::used of the latest touch
    std::vector<Ev> evs;  // scratch of one apply
    std::vector<Ev*> order;
    std::vector<EntityHead*> groups;
    std::vector<u32> offsets, fill;
    std::vector<PyObject*> keep;
};

struct KernelObject {
    PyObject_HEAD Kernel* k;
};

Kernel* kernel_of(PyObject* self) { return reinterpret_cast<KernelObject*>(self)->k; }

int Kernel_init(PyObject* self, PyObject* args, PyObject* kwds) {
    static const char* kwlist[] = {"pillars", "horizon_us", nullptr};
    PyObject* pillars;
    long long horizon;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OL:Kernel", const_cast<char**>(kwlist), &pillars, &horizon))
        return -1;
    Ref seq(PySequence_Fast(pillars, "Kernel: pillars must be a sequence of str"));
    if (!seq) return -1;
    try {
        Kernel* k = new Kernel();
        k->horizon_us = horizon;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); i++) {
            PyObject* p = PySequence_Fast_GET_ITEM(seq.get(), i);
            sv name;
            if (!PyUnicode_Check(p)) {
                delete k;
                PyErr_Format(PyExc_TypeError, "Kernel: pillars must be str, not %.80s", Py_TYPE(p)->tp_name);
                return -1;
            }
            if (!utf8(p, name)) {
                delete k;
                return -1;
            }
            k->pillars.push_back(Atom::of(name));
        }
        delete kernel_of(self);
        reinterpret_cast<KernelObject*>(self)->k = k;
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

void Kernel_dealloc(PyObject* self) {
    delete kernel_of(self);
    Py_TYPE(self)->tp_free(self);
}

Kernel* ready(PyObject* self) {
    Kernel* k = kernel_of(self);
    if (!k) PyErr_SetString(PyExc_RuntimeError, "Kernel.__init__ was not called");
    return k;
}

bool field_str(PyObject* data, PyObject* name, Keep& keep, sv& out, Py_ssize_t i) {
    PyObject* v = keep(PyObject_GetAttr(data, name));
    if (!v) return false;
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "event %zd: data.%U must be a str, not %.80s", i, name, Py_TYPE(v)->tp_name);
        return false;
    }
    return utf8(v, out);
}

bool field_atom(PyObject* data, PyObject* name, Keep& keep, Atom& out, Py_ssize_t i) {
    sv s;
    if (!field_str(data, name, keep, s, i)) return false;
    out = Atom::of(s);
    return true;
}

// One event into e; false with a Python error set.
bool parse_event(PyObject* obj, PyObject* key, Keep& keep, Ev& e, Py_ssize_t i) {
    e.obj = obj;
    PyObject* type = keep(PyObject_GetAttr(obj, s_type));
    if (!type) return false;
    sv tname;
    if (!PyUnicode_Check(type) || !utf8(type, tname)) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "event %zd: type must be a str", i);
        return false;
    }
    int t = event_type_of(tname);
    if (t < 0) {
        PyErr_Format(PyExc_TypeError, "event %zd: %R is not an event type the fold knows", i, type);
        return false;
    }
    e.type = static_cast<u8>(t);
    PyObject* eid = keep(PyObject_GetAttr(obj, s_event_id));
    if (!eid) return false;
    if (!PyUnicode_Check(eid)) {
        PyErr_Format(PyExc_TypeError, "event %zd: event_id must be a str, not %.80s", i, Py_TYPE(eid)->tp_name);
        return false;
    }
    if (!utf8(eid, e.eid)) return false;
    PyObject* at = keep(PyObject_GetAttr(obj, s_occurred_at));
    if (!at || !micros_of(at, e.ts, i)) return false;
    PyObject* data = keep(PyObject_GetAttr(obj, s_data));
    if (!data) return false;
    char kind = EVENT_TYPES[t].kind;
    if (key) {
        char given;
        if (!parse_key(key, given, e.key, false)) {
            if (PyErr_ExceptionMatches(PyExc_KeyError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "keys[%zd] = %R names no entity kind", i, key);
            }
            return false;
        }
        if (given != kind) {
            PyErr_Format(PyExc_TypeError, "keys[%zd] = %R: a %s event belongs to an entity of kind '%c'", i, key,
                         EVENT_TYPES[t].name, kind);
            return false;
        }
    } else if (!field_str(data, s_key_fields[t], keep, e.key, i)) {
        return false;
    }
    switch (t) {
        case T_ENROLLED:
        case T_TRANSFERRED:
        case T_MENTOR_JOINED:
        case T_MENTOR_TRANSFERRED:
            return field_atom(data, s_campus, keep, e.a1, i) && field_atom(data, s_floor, keep, e.a2, i);
        case T_ASSIGNED: {
            PyObject* m = keep(PyObject_GetAttr(data, s_mentor_id));
            if (!m) return false;
            if (m == Py_None) return true;
            sv s;
            if (!PyUnicode_Check(m)) {
                PyErr_Format(PyExc_TypeError, "event %zd: data.mentor_id must be a str or None", i);
                return false;
            }
            if (!utf8(m, s)) return false;
            e.a1 = Atom::of(s);
            return true;
        }
        case T_SUBMITTED:
        case T_REVIEW: {
            if (!field_str(data, s_submission_id, keep, e.id1, i)) return false;
            PyObject* a = keep(PyObject_GetAttr(data, s_attempt));
            if (!a) return false;
            if (!PyLong_Check(a)) {
                PyErr_Format(PyExc_TypeError, "event %zd: data.attempt must be an int", i);
                return false;
            }
            unsigned long long v = PyLong_AsUnsignedLongLong(a);
            if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "event %zd: data.attempt %R is outside [0, 2**64)", i, a);
                return false;
            }
            e.attempt = v;
            if (t == T_SUBMITTED) return field_atom(data, s_pillar, keep, e.a1, i);
            sv decision;
            if (!field_str(data, s_review_id, keep, e.id2, i) || !field_atom(data, s_mentor_id, keep, e.a1, i) ||
                !field_str(data, s_decision, keep, decision, i))
                return false;
            e.approved = decision == "approved";
            return true;
        }
        case T_NOTE_CREATED:
        case T_NOTE_READ:
            return field_str(data, s_notification_id, keep, e.id1, i);
        default:
            return true;
    }
}

PyObject* Kernel_apply(PyObject* self, PyObject* args, PyObject* kwds) {
    static const char* kwlist[] = {"events", "keys", "effect", nullptr};
    PyObject* events;
    PyObject* keys = Py_None;
    int effect = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|Op:apply", const_cast<char**>(kwlist), &events, &keys, &effect))
        return nullptr;
    Kernel* k = ready(self);
    if (!k) return nullptr;
    Ref evseq(PySequence_Fast(events, "apply: events must be a sequence"));
    if (!evseq) return nullptr;
    Ref keyseq;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(evseq.get());
    if (keys != Py_None) {
        keyseq.reset(PySequence_Fast(keys, "apply: keys must be a sequence of (kind, id) or None"));
        if (!keyseq) return nullptr;
        if (PySequence_Fast_GET_SIZE(keyseq.get()) != n) {
            PyErr_Format(PyExc_ValueError, "apply: %zd events but %zd keys", n, PySequence_Fast_GET_SIZE(keyseq.get()));
            return nullptr;
        }
    }
    try {
        Keep keep(k->keep);
        std::vector<Ev>& evs = k->evs;
        evs.clear();
        evs.resize(static_cast<size_t>(n));
        // Every event is read before any state moves: a bad event leaves the kernel as it was.
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject* obj = keep(Py_NewRef(PySequence_Fast_GET_ITEM(evseq.get(), i)));
            PyObject* key = keyseq ? PySequence_Fast_GET_ITEM(keyseq.get(), i) : nullptr;
            if (!parse_event(obj, key, keep, evs[static_cast<size_t>(i)], i)) {
                evs.clear();
                return nullptr;
            }
        }
        if (++k->stamp == 0) {  // wrapped: no entity may keep a stale stamp
            k->table.each([](EntityHead* h) { h->stamp = 0; });
            k->stamp = 1;
        }
        auto& groups = k->groups;
        auto& offsets = k->offsets;
        groups.clear();
        offsets.clear();
        for (Ev& e : evs) {
            char kind = EVENT_TYPES[e.type].kind;
            u32 h = key_hash(kind, e.key);
            EntityHead* ent = k->table.find(kind, e.key, h);
            if (!ent) {
                ent = new_entity(kind, e.key);
                ent->hash = h;
                k->table.put(ent);
            }
            if (ent->stamp != k->stamp) {
                ent->stamp = k->stamp;
                ent->used = ++k->clock;  // the first event of its group: the Python engine's touch order
                ent->group = static_cast<u32>(groups.size());
                groups.push_back(ent);
                offsets.push_back(0);
            }
            offsets[ent->group]++;
            e.entity = ent;
        }
        u32 at = 0;  // counts -> start offsets
        for (u32& o : offsets) {
            u32 c = o;
            o = at;
            at += c;
        }
        auto& order = k->order;
        order.assign(evs.size(), nullptr);
        auto& fill = k->fill;
        fill.assign(offsets.begin(), offsets.end());
        for (Ev& e : evs) order[fill[e.entity->group]++] = &e;

        Effect& fx = k->fx;
        fx.on = effect != 0;
        // Every event names its date's row and moves its as_of, and global_current's.
        i64 newest = NO_TS;
        bool any = false;
        for (const Ev& e : evs) {
            Row day = day_row(day_of(e.ts));
            fx.name(day);
            fx.bump(day, e.ts);
            if (!any || e.ts > newest) newest = e.ts;
            any = true;
        }
        if (any) fx.bump(global_row(), newest);
        FoldContext ctx{fx, k->horizon_us, Touched(), MentorPart(), MentorPart()};
        for (size_t g = 0; g < groups.size(); g++) {
            size_t from = offsets[g], to = g + 1 < groups.size() ? offsets[g + 1] : order.size();
            fold_entity(groups[g], order.data() + from, to - from, ctx);
        }
        fx.on = true;
        evs.clear();
    } catch (const std::bad_alloc&) {
        k->fx.on = true;
        k->evs.clear();
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

// --- take_effect -----------------------------------------------------------------------------------

class RowObjects {
  public:
    ~RowObjects() {
        made_.each([](const Row&, PyObject* const& t) { Py_XDECREF(t); });
    }
    // A borrowed tuple for the row, made once per take_effect.
    PyObject* get(const Row& r) {
        bool fresh;
        PyObject*& slot = made_.at(r, fresh);
        if (slot) return slot;
        Ref t;
        switch (r.kind) {
            case 'F': {
                Ref a(atom_str(r.a)), b(atom_str(r.b));
                if (!a || !b) return nullptr;
                t.reset(PyTuple_Pack(3, s_row_kind[0], a.get(), b.get()));
                break;
            }
            case 'M': {
                Ref a(atom_str(r.a));
                if (!a) return nullptr;
                t.reset(PyTuple_Pack(2, s_row_kind[1], a.get()));
                break;
            }
            case 'D': {
                Ref d(PyLong_FromLongLong(r.day));
                if (!d) return nullptr;
                t.reset(PyTuple_Pack(2, s_row_kind[2], d.get()));
                break;
            }
            default:
                t.reset(PyTuple_Pack(1, s_row_kind[3]));
        }
        if (!t) return nullptr;
        slot = t.release();
        return slot;
    }

  private:
    FlatMap<Row, PyObject*> made_;
};

PyObject* pillar_field(AtomRec* pillar, std::unordered_map<AtomRec*, PyObject*>& cache) {
    auto it = cache.find(pillar);
    if (it != cache.end()) return it->second;
    std::string name = std::string("pillar:") + std::string(pillar->view());
    PyObject* s = str_of(name);
    if (!s) return nullptr;
    cache.emplace(pillar, s);
    return s;
}

bool set_item(PyObject* dict, PyObject* key, PyObject* value_new) {
    if (!value_new) return false;
    int r = PyDict_SetItem(dict, key, value_new);
    Py_DECREF(value_new);
    return r == 0;
}

PyObject* effect_tuple(Effect& fx) {
    RowObjects rows;
    std::unordered_map<AtomRec*, PyObject*> pillar_names;
    struct Names {
        std::unordered_map<AtomRec*, PyObject*>& m;
        ~Names() {
            for (auto& kv : m) Py_DECREF(kv.second);
        }
    } names_guard{pillar_names};

    Ref deltas(PyDict_New()), named(PySet_New(nullptr)), as_of(PyDict_New()), mentor_self(PyDict_New()),
        activity(PyDict_New()), unread(PyDict_New()), changed(PySet_New(nullptr));
    if (!deltas || !named || !as_of || !mentor_self || !activity || !unread || !changed) return nullptr;
    bool ok = true;
    fx.deltas_.each([&](const DeltaKey& key, const __int128& v) {
        if (!ok || v == 0) return;  // changes that cancelled out
        PyObject* row = rows.get(key.row);
        PyObject* name = key.field == F_PILLAR ? pillar_field(key.pillar, pillar_names) : s_fields[key.field];
        if (!row || !name) {
            ok = false;
            return;
        }
        PyObject* fields = PyDict_GetItemWithError(deltas.get(), row);
        if (!fields) {
            if (PyErr_Occurred() || !set_item(deltas.get(), row, PyDict_New())) {
                ok = false;
                return;
            }
            fields = PyDict_GetItemWithError(deltas.get(), row);
        }
        ok = fields && set_item(fields, name, long_of(v));
    });
    if (!ok) return nullptr;
    fx.named_.each([&](const Row& r, const u8&) {
        PyObject* row = ok ? rows.get(r) : nullptr;
        ok = row && PySet_Add(named.get(), row) == 0;
    });
    fx.as_of_.each([&](const Row& r, const i64& ts) {
        PyObject* row = ok ? rows.get(r) : nullptr;
        ok = row && set_item(as_of.get(), row, PyLong_FromLongLong(ts));
    });
    if (!ok) return nullptr;
    for (auto& kv : fx.mentor_self_) {
        Ref id(str_of(kv.first));
        Ref campus(atom_str(kv.second.campus.rec())), floor(atom_str(kv.second.floor.rec()));
        if (!id || !campus || !floor) return nullptr;
        if (!set_item(mentor_self.get(), id.get(),
                      PyTuple_Pack(3, campus.get(), floor.get(), kv.second.active ? Py_True : Py_False)))
            return nullptr;
    }
    for (auto& kv : fx.activity_) {
        Ref mentor(atom_str(kv.first.mentor)), who(str_of(kv.first.contributor));
        if (!mentor || !who) return nullptr;
        Ref key(PyTuple_Pack(2, mentor.get(), who.get()));
        PyObject* ts = kv.second.first ? PyLong_FromLongLong(kv.second.second) : Py_NewRef(Py_None);
        if (!key || !set_item(activity.get(), key.get(), ts)) return nullptr;
    }
    for (auto& kv : fx.unread_) {
        Ref id(str_of(kv.first));
        if (!id || !set_item(unread.get(), id.get(), PyLong_FromLongLong(kv.second))) return nullptr;
    }
    auto add_changed = [&](char kind, sv id_bytes) {
        Ref id(str_of(id_bytes));
        if (!id) return false;
        Ref t(PyTuple_Pack(2, kind_str(kind), id.get()));
        return t && PySet_Add(changed.get(), t.get()) == 0;
    };
    for (EntityHead* h : fx.changed_)
        if (h && !add_changed(static_cast<char>(h->kind), h->id.view())) return nullptr;
    for (const std::string& key : fx.changed_gone_)
        if (!add_changed(key[0], sv(key).substr(1))) return nullptr;
    PyObject* audit = PyList_New(static_cast<Py_ssize_t>(fx.audit_.size()));
    if (!audit) return nullptr;
    for (size_t i = 0; i < fx.audit_.size(); i++) PyList_SET_ITEM(audit, static_cast<Py_ssize_t>(i), fx.audit_[i]);
    fx.audit_.clear();  // the list owns those references now
    return PyTuple_Pack(8, deltas.get(), named.get(), as_of.get(), mentor_self.get(), activity.get(), unread.get(),
                        changed.get(), Ref(audit).get());
}

PyObject* Kernel_take_effect(PyObject* self, PyObject*) {
    Kernel* k = ready(self);
    if (!k) return nullptr;
    try {
        // No cycles among these objects: collecting while thousands of them are young is quadratic.
        int collecting = PyGC_Disable();
        PyObject* out = effect_tuple(k->fx);
        if (collecting) PyGC_Enable();
        if (!out) return nullptr;
        k->fx.reset();
        return out;
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
}

// --- state bytes, eviction -----------------------------------------------------------------------

PyObject* Kernel_encode(PyObject* self, PyObject* key) {
    Kernel* k = ready(self);
    if (!k) return nullptr;
    char kind;
    sv id;
    if (!parse_key(key, kind, id, true)) return nullptr;
    EntityHead* e = k->table.find(kind, id, key_hash(kind, id));
    if (!e) {
        PyErr_SetObject(PyExc_KeyError, key);
        return nullptr;
    }
    try {
        JsonOut out;
        encode_entity(out, e);
        return PyBytes_FromStringAndSize(out.b.data(), static_cast<Py_ssize_t>(out.b.size()));
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
}

PyObject* Kernel_load(PyObject* self, PyObject* args) {
    PyObject* key;
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "Oy*:load", &key, &body)) return nullptr;
    struct Release {
        Py_buffer* b;
        ~Release() { PyBuffer_Release(b); }
    } release{&body};
    Kernel* k = ready(self);
    if (!k) return nullptr;
    char kind;
    sv id;
    if (!parse_key(key, kind, id, true)) return nullptr;
    try {
        EntityHead* e = load_entity(kind, id, static_cast<const char*>(body.buf), static_cast<size_t>(body.len));
        e->hash = key_hash(kind, id);
        e->stamp = 0;
        e->used = ++k->clock;
        if (EntityHead* old = k->table.put(e)) {
            k->fx.forget(old);
            free_entity(old);
        }
    } catch (const BadBody& bad) {
        PyErr_Format(PyExc_ValueError, "cannot load the state of %R: %s", key, bad.msg.c_str());
        return nullptr;
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

// Calls f on the cached entity of each (kind, id) key ``keys`` yields; keys of unknown kinds and keys not
// cached are skipped. False with a Python error set.
template <class F>
bool each_cached(Kernel* k, PyObject* keys, F f) {
    Ref it(PyObject_GetIter(keys));
    if (!it) return false;
    while (PyObject* raw = PyIter_Next(it.get())) {
        Ref key(raw);
        char kind;
        sv id;
        if (!parse_key(key.get(), kind, id, false)) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError)) return false;
            PyErr_Clear();  // an unknown kind: never cached
            continue;
        }
        if (EntityHead* e = k->table.find(kind, id, key_hash(kind, id))) f(e);
    }
    return !PyErr_Occurred();
}

PyObject* Kernel_evict(PyObject* self, PyObject* keys) {
    Kernel* k = ready(self);
    if (!k) return nullptr;
    bool done = each_cached(k, keys, [k](EntityHead* e) {
        k->table.remove(static_cast<char>(e->kind), e->id.view());
        k->fx.forget(e);
        free_entity(e);
    });
    if (!done) return nullptr;
    Py_RETURN_NONE;
}

PyObject* Kernel_clear(PyObject* self, PyObject*) {
    Kernel* k = ready(self);
    if (!k) return nullptr;
    k->fx.reset();  // first: it points at entities
    k->table.clear();
    Py_RETURN_NONE;
}

PyObject* key_of(const EntityHead* e) {
    Ref id(str_of(e->id.view()));
    if (!id) return nullptr;
    return PyTuple_Pack(2, kind_str(static_cast<char>(e->kind)), id.get());
}

bool by_use(const EntityHead* a, const EntityHead* b) { return a->used < b->used; }

// The keys of these entities, in their order, as a list; null with a Python error set.
PyObject* key_list(const std::vector<EntityHead*>& heads) {
    Ref out(PyList_New(static_cast<Py_ssize_t>(heads.size())));
    if (!out) return nullptr;
    for (size_t i = 0; i < heads.size(); i++) {
        PyObject* t = key_of(heads[i]);
        if (!t) return nullptr;
        PyList_SET_ITEM(out.get(), static_cast<Py_ssize_t>(i), t);
    }
    return out.release();
}

PyObject* Kernel_trim(PyObject* self, PyObject* args) {
    Py_ssize_t most;
    PyObject* keep;
    if (!PyArg_ParseTuple(args, "nO:trim", &most, &keep)) return nullptr;
    Kernel* k = ready(self);
    if (!k) return nullptr;
    if (most < 0) {
        PyErr_SetString(PyExc_ValueError, "trim: max_entities must be >= 0");
        return nullptr;
    }
    size_t excess = k->table.size() > static_cast<size_t>(most) ? k->table.size() - static_cast<size_t>(most) : 0;
    if (!excess) return PyList_New(0);
    try {
        std::vector<EntityHead*> held;
        bool read = each_cached(k, keep, [&held](EntityHead* e) {
            if (!e->held) held.push_back(e);
            e->held = true;
        });
        std::vector<EntityHead*> victims;
        if (read) {
            victims.reserve(k->table.size() - held.size());
            k->table.each([&](EntityHead* e) {
                if (!e->held) victims.push_back(e);
            });
        }
        for (EntityHead* e : held) e->held = false;
        if (!read) return nullptr;
        if (victims.size() > excess) {
            std::nth_element(victims.begin(), victims.begin() + static_cast<std::ptrdiff_t>(excess), victims.end(),
                             by_use);
            victims.resize(excess);
        }
        std::sort(victims.begin(), victims.end(), by_use);
        Ref out(key_list(victims));  // before any entity is freed: the keys are read from them
        if (!out) return nullptr;
        for (EntityHead* e : victims) {
            k->table.remove(static_cast<char>(e->kind), e->id.view());
            k->fx.forget(e);
            free_entity(e);
        }
        return out.release();
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
}

PyObject* Kernel_keys(PyObject* self, PyObject*) {
    Kernel* k = ready(self);
    if (!k) return nullptr;
    try {
        std::vector<EntityHead*> heads;
        heads.reserve(k->table.size());
        k->table.each([&](EntityHead* e) { heads.push_back(e); });
        std::sort(heads.begin(), heads.end(), by_use);
        return key_list(heads);
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
}

int Kernel_contains(PyObject* self, PyObject* key) {
    Kernel* k = ready(self);
    if (!k) return -1;
    if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(key, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(key, 1)))
        return 0;
    sv kind, id;
    if (!utf8(PyTuple_GET_ITEM(key, 0), kind) || !utf8(PyTuple_GET_ITEM(key, 1), id)) return -1;
    if (!known_kind(kind)) return 0;
    return k->table.find(kind[0], id, key_hash(kind[0], id)) != nullptr;
}

Py_ssize_t Kernel_len(PyObject* self) {
    Kernel* k = ready(self);
    if (!k) return -1;
    return static_cast<Py_ssize_t>(k->table.size());
}

PyMethodDef kernel_methods[] = {
    {"apply", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Kernel_apply)),
     METH_VARARGS | METH_KEYWORDS,
     "apply(events, keys=None, effect=True)\n--\n\nFold a chunk of events into the cached entities, like "
     "cohortflow.core.fold.Fold.apply; add its change to the pending effect unless effect is False."},
    {"take_effect", Kernel_take_effect, METH_NOARGS,
     "take_effect()\n--\n\nThe pending effect as (deltas, named, as_of, mentor_self, activity, unread, changed, "
     "audit), the fields of cohortflow.core.fold.Effect; a new one starts."},
    {"encode", Kernel_encode, METH_O,
     "encode(key)\n--\n\nThe entity's state in the v1 layout of cohortflow.core.state_codec; KeyError if not cached."},
    {"load", Kernel_load, METH_VARARGS,
     "load(key, body)\n--\n\nCache (or replace) the entity from its v1 state bytes; ValueError if malformed."},
    {"evict", Kernel_evict, METH_O, "evict(keys)\n--\n\nForget these entities (absent ones are fine)."},
    {"clear", Kernel_clear, METH_NOARGS, "clear()\n--\n\nForget every entity and the pending effect."},
    {"trim", Kernel_trim, METH_VARARGS,
     "trim(max_entities, keep)\n--\n\nEvict the least recently used entities not in keep until at most "
     "max_entities remain (or only\nkeep's do); return their keys, least recently used first."},
    {"keys", Kernel_keys, METH_NOARGS, "keys()\n--\n\nEvery cached entity's key, least recently used first."},
    {nullptr, nullptr, 0, nullptr},
};

PySequenceMethods kernel_sequence = {
    Kernel_len, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, Kernel_contains, nullptr, nullptr,
};

PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(nullptr, 0)
};

// Kafka's default partitioner hash (Java's Utils.murmur2, as aiokafka.partitioner.murmur2): an unsigned 32-bit int.
PyObject* module_murmur2(PyObject*, PyObject* arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return nullptr;
    const unsigned char* d = static_cast<const unsigned char*>(b.buf);
    size_t n = static_cast<size_t>(b.len);
    const u32 m = 0x5bd1e995u;
    u32 h = 0x9747b28cu ^ static_cast<u32>(n);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        u32 k = static_cast<u32>(d[i]) | static_cast<u32>(d[i + 1]) << 8 | static_cast<u32>(d[i + 2]) << 16 |
                static_cast<u32>(d[i + 3]) << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (n & 3) {
        case 3: h ^= static_cast<u32>(d[i + 2]) << 16; [[fallthrough]];
        case 2: h ^= static_cast<u32>(d[i + 1]) << 8; [[fallthrough]];
        case 1: h ^= d[i]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLong(h);
}

PyMethodDef module_methods[] = {
    {"murmur2", module_murmur2, METH_O,
     "murmur2(data)\n--\n\nKafka's default partitioner hash of bytes, as aiokafka.partitioner.murmur2."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "cohortflow.core._kernel", MODULE_DOC, -1, module_methods, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__kernel(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return nullptr;
    if (!intern_names()) return nullptr;
    KernelType.tp_name = "cohortflow.core._kernel.Kernel";
    KernelType.tp_basicsize = sizeof(KernelObject);
    KernelType.tp_flags = Py_TPFLAGS_DEFAULT;
    KernelType.tp_doc = KERNEL_DOC;
    KernelType.tp_new = PyType_GenericNew;
    KernelType.tp_init = Kernel_init;
    KernelType.tp_dealloc = Kernel_dealloc;
    KernelType.tp_methods = kernel_methods;
    KernelType.tp_as_sequence = &kernel_sequence;
    if (PyType_Ready(&KernelType) < 0) return nullptr;
    PyObject* m = PyModule_Create(&kernel_module);
    if (!m) return nullptr;
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(m, "Kernel", reinterpret_cast<PyObject*>(&KernelType)) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
