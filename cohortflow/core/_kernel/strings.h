// Compact strings, interned labels, small vectors and insertion-ordered maps for the fold kernel.
//
// The worker caches a few hundred thousand entities, so every container here is
// a pointer plus two 32-bit counts, and strings are one pointer to a
// length-prefixed block. Elements are relocated bitwise when a vector grows:
// every type stored in them is a bundle of pointers and numbers with no pointer
// into itself.
#pragma once

#include <Python.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace cf {

using i64 = int64_t;
using u64 = uint64_t;
using u32 = uint32_t;
using i32 = int32_t;
using u8 = uint8_t;
using sv = std::string_view;

inline u64 mix64(u64 h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

inline u64 hash_bytes(const char* p, size_t n) {
    u64 h = 0x9e3779b97f4a7c15ULL ^ (n * 0x100000001b3ULL);
    while (n >= 8) {
        u64 w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    u64 w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x9fb21c651e98df25ULL;
    return mix64(h);
}

inline u64 hash_sv(sv s) { return hash_bytes(s.data(), s.size()); }

// Code point order of two UTF-8 strings is their unsigned byte order.
inline int compare_sv(sv a, sv b) {
    size_t n = a.size() < b.size() ? a.size() : b.size();
    int c = n ? std::memcmp(a.data(), b.data(), n) : 0;
    if (c) return c;
    return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
}

[[noreturn]] inline void out_of_memory() { throw std::bad_alloc(); }

inline void* checked_malloc(size_t n) {
    void* p = std::malloc(n ? n : 1);
    if (!p) out_of_memory();
    return p;
}

// An owned UTF-8 string: one pointer to {u32 length, bytes}; null is the empty string.
class Str {
  public:
    Str() = default;
    explicit Str(sv s) { assign(s); }
    Str(const Str&) = delete;
    Str& operator=(const Str&) = delete;
    Str(Str&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
    Str& operator=(Str&& o) noexcept {
        if (this != &o) {
            std::free(p_);
            p_ = o.p_;
            o.p_ = nullptr;
        }
        return *this;
    }
    ~Str() { std::free(p_); }

    void assign(sv s) {
        std::free(p_);
        p_ = nullptr;
        if (s.empty()) return;
        if (s.size() > 0xFFFFFFFFu) out_of_memory();
        p_ = static_cast<char*>(checked_malloc(4 + s.size()));
        u32 n = static_cast<u32>(s.size());
        std::memcpy(p_, &n, 4);
        std::memcpy(p_ + 4, s.data(), s.size());
    }
    sv view() const {
        if (!p_) return sv();
        u32 n;
        std::memcpy(&n, p_, 4);
        return sv(p_ + 4, n);
    }
    bool operator==(sv s) const { return view() == s; }

  private:
    char* p_ = nullptr;
};

// An interned label (campus, floor, pillar, mentor id): equal strings share one
// record, so comparing labels is comparing pointers. Null means None.
struct AtomRec {
    u32 refs;
    u32 len;
    u64 hash;
    PyObject* py;  // the str, made on first need for an effect
    char data[1];
    sv view() const { return sv(data, len); }
};

class AtomPool {
  public:
    AtomRec* intern(sv s);
    void release(AtomRec* a);
    size_t size() const { return n_; }

  private:
    void grow();
    AtomRec** slots_ = nullptr;
    size_t cap_ = 0, n_ = 0;
};

inline AtomPool& atoms();

class Atom {
  public:
    Atom() = default;
    explicit Atom(AtomRec* r) : r_(r) {
        if (r_) r_->refs++;
    }
    static Atom of(sv s) {
        Atom a;
        a.r_ = atoms().intern(s);  // intern() returns a counted reference
        return a;
    }
    Atom(const Atom& o) : r_(o.r_) {
        if (r_) r_->refs++;
    }
    Atom& operator=(const Atom& o) {
        if (o.r_) o.r_->refs++;
        drop();
        r_ = o.r_;
        return *this;
    }
    Atom(Atom&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    Atom& operator=(Atom&& o) noexcept {
        if (this != &o) {
            drop();
            r_ = o.r_;
            o.r_ = nullptr;
        }
        return *this;
    }
    ~Atom() { drop(); }

    AtomRec* rec() const { return r_; }
    bool none() const { return r_ == nullptr; }
    sv view() const { return r_ ? r_->view() : sv(); }
    bool operator==(const Atom& o) const { return r_ == o.r_; }
    bool operator!=(const Atom& o) const { return r_ != o.r_; }

  private:
    void drop() {
        if (r_ && --r_->refs == 0) atoms().release(r_);
        r_ = nullptr;
    }
    AtomRec* r_ = nullptr;
};

inline AtomPool& atoms() {
    static AtomPool pool;
    return pool;
}

inline AtomRec* AtomPool::intern(sv s) {
    u64 h = hash_sv(s);
    if (n_ * 2 >= cap_) grow();
    size_t mask = cap_ - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        AtomRec* r = slots_[i];
        if (!r) {
            r = static_cast<AtomRec*>(checked_malloc(sizeof(AtomRec) + s.size()));
            r->refs = 1;
            r->len = static_cast<u32>(s.size());
            r->hash = h;
            r->py = nullptr;
            std::memcpy(r->data, s.data(), s.size());
            slots_[i] = r;
            n_++;
            return r;
        }
        if (r->hash == h && r->view() == s) {
            r->refs++;
            return r;
        }
    }
}

inline void AtomPool::release(AtomRec* a) {
    size_t mask = cap_ - 1;
    size_t i = a->hash & mask;
    while (slots_[i] != a) i = (i + 1) & mask;
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        AtomRec* r = slots_[j];
        if (!r) break;
        size_t home = r->hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            slots_[i] = r;
            i = j;
        }
    }
    slots_[i] = nullptr;
    n_--;
    Py_XDECREF(a->py);
    std::free(a);
}

inline void AtomPool::grow() {
    size_t cap = cap_ ? cap_ * 2 : 256;
    AtomRec** slots = static_cast<AtomRec**>(std::calloc(cap, sizeof(AtomRec*)));
    if (!slots) out_of_memory();
    for (size_t k = 0; k < cap_; k++) {
        AtomRec* r = slots_[k];
        if (!r) continue;
        size_t i = r->hash & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = r;
    }
    std::free(slots_);
    slots_ = slots;
    cap_ = cap;
}

// A growable array of {pointer, u32 size, u32 capacity}; elements move bitwise.
template <class T>
class Vec {
  public:
    Vec() = default;
    Vec(const Vec&) = delete;
    Vec& operator=(const Vec&) = delete;
    Vec(Vec&& o) noexcept : d_(o.d_), n_(o.n_), cap_(o.cap_) {
        o.d_ = nullptr;
        o.n_ = o.cap_ = 0;
    }
    Vec& operator=(Vec&& o) noexcept {
        if (this != &o) {
            clear();
            std::free(d_);
            d_ = o.d_;
            n_ = o.n_;
            cap_ = o.cap_;
            o.d_ = nullptr;
            o.n_ = o.cap_ = 0;
        }
        return *this;
    }
    ~Vec() {
        clear();
        std::free(d_);
    }

    u32 size() const { return n_; }
    bool empty() const { return n_ == 0; }
    T* begin() { return d_; }
    T* end() { return d_ + n_; }
    const T* begin() const { return d_; }
    const T* end() const { return d_ + n_; }
    T& operator[](u32 i) { return d_[i]; }
    const T& operator[](u32 i) const { return d_[i]; }
    T& back() { return d_[n_ - 1]; }

    template <class... A>
    T& emplace_back(A&&... a) {
        if (n_ == cap_) reserve(cap_ ? cap_ + (cap_ >> 1) + 1 : 1);
        T* p = new (d_ + n_) T(std::forward<A>(a)...);
        n_++;
        return *p;
    }
    void reserve(u32 cap) {
        if (cap <= cap_) return;
        void* d = std::realloc(static_cast<void*>(d_), sizeof(T) * static_cast<size_t>(cap));
        if (!d) out_of_memory();
        d_ = static_cast<T*>(d);
        cap_ = cap;
    }
    void insert_at(u32 i, T v) {  // for the sorted day sets
        emplace_back(std::move(v));
        for (u32 k = n_ - 1; k > i; k--) std::swap(d_[k], d_[k - 1]);
    }
    void swap_remove(u32 i) {
        if (i != n_ - 1) std::swap(d_[i], d_[n_ - 1]);
        d_[n_ - 1].~T();
        n_--;
    }
    void clear() {
        for (u32 i = 0; i < n_; i++) d_[i].~T();
        n_ = 0;
    }
    void shrink() {  // after a bulk build, give back the spare capacity
        if (cap_ == n_) return;
        if (n_ == 0) {
            std::free(d_);
            d_ = nullptr;
            cap_ = 0;
            return;
        }
        void* d = std::realloc(static_cast<void*>(d_), sizeof(T) * n_);
        if (d) {
            d_ = static_cast<T*>(d);
            cap_ = n_;
        }
    }

  private:
    T* d_ = nullptr;
    u32 n_ = 0, cap_ = 0;
};

// A dict of string keys in insertion order, like Python's: entries in a Vec,
// plus a hash index once it outgrows a linear scan. Entries are never removed
// one by one (the Python state only ever adds keys), only rebuilt whole.
template <class V>
class OrderedMap {
  public:
    struct Entry {
        Str key;
        V val;
    };
    static constexpr u32 kLinear = 8;

    OrderedMap() = default;
    OrderedMap(OrderedMap&& o) noexcept : e_(std::move(o.e_)), idx_(o.idx_) { o.idx_ = nullptr; }
    OrderedMap& operator=(OrderedMap&& o) noexcept {
        if (this != &o) {
            e_ = std::move(o.e_);
            std::free(idx_);
            idx_ = o.idx_;
            o.idx_ = nullptr;
        }
        return *this;
    }
    ~OrderedMap() { std::free(idx_); }

    u32 size() const { return e_.size(); }
    bool empty() const { return e_.empty(); }
    Entry* begin() { return e_.begin(); }
    Entry* end() { return e_.end(); }
    const Entry* begin() const { return e_.begin(); }
    const Entry* end() const { return e_.end(); }
    Entry& at(u32 i) { return e_[i]; }
    const Entry& at(u32 i) const { return e_[i]; }

    // Index of key, or -1.
    i64 find(sv key) const {
        if (!idx_) {
            for (u32 i = 0; i < e_.size(); i++)
                if (e_[i].key.view() == key) return i;
            return -1;
        }
        u32 mask = idx_[0] - 1;
        for (u32 s = static_cast<u32>(hash_sv(key)) & mask;; s = (s + 1) & mask) {
            u32 slot = idx_[1 + s];
            if (!slot) return -1;
            if (e_[slot - 1].key.view() == key) return slot - 1;
        }
    }
    V* get(sv key) {
        i64 i = find(key);
        return i < 0 ? nullptr : &e_[static_cast<u32>(i)].val;
    }
    // Appends a new key (the caller checked it is absent); returns its index.
    u32 append(sv key, V val) {
        e_.emplace_back(Entry{Str(key), std::move(val)});
        u32 i = e_.size() - 1;
        if (idx_) {
            if (e_.size() * 2 > idx_[0]) rebuild_index();
            else put(i);
        } else if (e_.size() > kLinear) {
            rebuild_index();
        }
        return i;
    }
    // The entry of key, appended with a default value when absent.
    u32 get_or_append(sv key) {
        i64 i = find(key);
        return i >= 0 ? static_cast<u32>(i) : append(key, V());
    }
    // Keep only the entries keep(value) accepts, in order.
    template <class F>
    void filter(F keep) {
        Vec<Entry> kept;
        kept.reserve(e_.size());
        for (Entry& e : e_)
            if (keep(e.val)) kept.emplace_back(std::move(e));
        e_ = std::move(kept);
        std::free(idx_);
        idx_ = nullptr;
        if (e_.size() > kLinear) rebuild_index();
    }
    void shrink() { e_.shrink(); }

  private:
    void put(u32 i) {
        u32 mask = idx_[0] - 1;
        u32 s = static_cast<u32>(hash_sv(e_[i].key.view())) & mask;
        while (idx_[1 + s]) s = (s + 1) & mask;
        idx_[1 + s] = i + 1;
    }
    void rebuild_index() {
        u32 cap = 16;
        while (cap < e_.size() * 2 + 2) cap *= 2;
        std::free(idx_);
        idx_ = static_cast<u32*>(std::calloc(cap + 1, sizeof(u32)));
        if (!idx_) out_of_memory();
        idx_[0] = cap;
        for (u32 i = 0; i < e_.size(); i++) put(i);
    }

    Vec<Entry> e_;
    u32* idx_ = nullptr;  // idx_[0] = slot count (a power of two), then slots of entry index + 1
};

inline i64 floor_div(i64 a, i64 b) {
    i64 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

constexpr i64 US_PER_DAY = 86400000000LL;
constexpr i64 NO_TS = -(1LL << 62);  // the Python fold's "-1 << 62" for "nothing yet"

inline i64 day_of(i64 ts) { return floor_div(ts, US_PER_DAY); }

}  // namespace cf
