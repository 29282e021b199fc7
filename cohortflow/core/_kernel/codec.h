// Entity state <-> the v1 bytes of cohortflow/core/state_codec.py (orjson of positional arrays).
//
// encode writes what orjson.dumps writes (compact, UTF-8 kept, orjson's escapes).
// load reads any JSON and holds the body to the exact v1 shapes, refusing
// anything else with a message naming the part: a body the Python decoder
// would half-accept (a float time, a review of an unknown submission) is
// refused here rather than folded into a state nobody wrote.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "entities.h"
#include "ledger.h"

namespace cf {

constexpr i64 LAYOUT_VERSION = 1;
constexpr i64 INSTANT_LIMIT = 1LL << 62;  // instants are years 1-9999; this bound keeps differences in int64

struct BadBody {
    std::string msg;
};

// --- writing ---------------------------------------------------------------------------------

class JsonOut {
  public:
    std::string b;
    void raw(char c) { b.push_back(c); }
    void raw(const char* s) { b.append(s); }
    void i(i64 v) { b.append(std::to_string(v)); }
    void u(u64 v) { b.append(std::to_string(v)); }
    void boolean(bool v) { b.append(v ? "true" : "false"); }
    void str(sv s) {
        static const char hex[] = "0123456789abcdef";
        b.push_back('"');
        for (unsigned char c : s) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\b': b.append("\\b"); break;
                case '\t': b.append("\\t"); break;
                case '\n': b.append("\\n"); break;
                case '\f': b.append("\\f"); break;
                case '\r': b.append("\\r"); break;
                default:
                    if (c < 0x20) {
                        b.append("\\u00");
                        b.push_back(hex[c >> 4]);
                        b.push_back(hex[c & 15]);
                    } else {
                        b.push_back(static_cast<char>(c));
                    }
            }
        }
        b.push_back('"');
    }
    void opt_str(const Atom& a) {
        if (a.none()) raw("null");
        else str(a.view());
    }
};

inline void write_status(JsonOut& o, const Status& status) {
    o.raw('[');
    bool first = true;
    for (const auto& e : status) {
        if (!first) o.raw(',');
        first = false;
        o.raw('[');
        o.str(e.key.view());
        o.raw(',');
        o.i(e.val.ts);
        o.raw(',');
        o.boolean(e.val.active);
        o.raw(']');
    }
    o.raw(']');
}

inline void write_floor(JsonOut& o, const FloorReg& f) {
    if (!f.has) return o.raw("null");
    o.raw('[');
    o.i(f.ts);
    o.raw(',');
    o.str(f.eid.view());
    o.raw(',');
    o.str(f.campus.view());
    o.raw(',');
    o.str(f.floor.view());
    o.raw(']');
}

inline void write_floors_named(JsonOut& o, const Vec<FloorName>& names) {
    o.raw('[');
    for (u32 k = 0; k < names.size(); k++) {
        if (k) o.raw(',');
        o.raw('[');
        o.str(names[k].campus.view());
        o.raw(',');
        o.str(names[k].floor.view());
        o.raw(']');
    }
    o.raw(']');
}

inline void write_seen(JsonOut& o, const OrderedMap<i64>& seen) {
    o.raw('{');
    bool first = true;
    for (const auto& e : seen) {
        if (!first) o.raw(',');
        first = false;
        o.str(e.key.view());
        o.raw(':');
        o.i(e.val);
    }
    o.raw('}');
}

inline void encode_student(JsonOut& o, const Student& s) {
    o.raw("[1,");
    write_status(o, s.status);
    o.raw(',');
    write_floor(o, s.floor);
    o.raw(',');
    if (!s.has_mentor) {
        o.raw("null");
    } else {
        o.raw('[');
        o.i(s.mentor_ts);
        o.raw(',');
        o.str(s.mentor_eid.view());
        o.raw(',');
        o.opt_str(s.mentor);
        o.raw(']');
    }
    o.raw(",{");
    bool first = true;
    for (const auto& e : s.subs) {
        const Submission& sub = e.val;
        if (!first) o.raw(',');
        first = false;
        o.str(e.key.view());
        o.raw(":[");
        if (!sub.has_pillar) {
            o.raw("null");
        } else {
            o.raw('[');
            o.i(sub.pillar_ts);
            o.raw(',');
            o.str(sub.pillar_eid.view());
            o.raw(',');
            o.str(sub.pillar.view());
            o.raw(']');
        }
        o.raw(",[");
        for (u32 k = 0; k < sub.submitted.size(); k++) {
            if (k) o.raw(',');
            o.raw('[');
            o.u(sub.submitted[k].attempt);
            o.raw(',');
            o.i(sub.submitted[k].ts);
            o.raw(']');
        }
        o.raw("],");
        o.u(sub.top);
        o.raw(']');
    }
    o.raw("},{");
    first = true;
    for (const auto& e : s.reviews) {
        const Review& r = e.val;
        if (!first) o.raw(',');
        first = false;
        o.str(e.key.view());
        o.raw(":[");
        o.i(r.ts);
        o.raw(',');
        o.str(r.eid.view());
        o.raw(',');
        o.str(s.subs.at(r.sub).key.view());
        o.raw(',');
        o.u(r.attempt);
        o.raw(',');
        o.str(r.mentor.view());
        o.raw(',');
        o.boolean(r.approved);
        o.raw(']');
    }
    o.raw("},");
    write_floors_named(o, s.floors_named);
    o.raw(",[");
    for (u32 k = 0; k < s.mentors_named.size(); k++) {
        if (k) o.raw(',');
        o.str(s.mentors_named[k].view());
    }
    o.raw("],");
    o.i(s.max_ts);
    o.raw(']');
}

inline void encode_entity(JsonOut& o, const EntityHead* h) {
    switch (h->kind) {
        case STUDENT:
            return encode_student(o, *static_cast<const Student*>(h));
        case MENTOR: {
            const Mentor& m = *static_cast<const Mentor*>(h);
            o.raw("[1,");
            write_status(o, m.status);
            o.raw(',');
            write_floor(o, m.floor);
            o.raw(',');
            write_floors_named(o, m.floors_named);
            o.raw(',');
            o.i(m.max_ts);
            o.raw(']');
            return;
        }
        case LOGINS: {
            const Logins& p = *static_cast<const Logins*>(h);
            o.raw("[1,");
            write_seen(o, p.counted.seen);
            o.raw(',');
            o.i(p.counted.newest);
            o.raw(",[");
            for (u32 k = 0; k < p.days.size(); k++) {
                if (k) o.raw(',');
                o.i(p.days[k]);
            }
            o.raw("],");
            if (p.has_last) o.i(p.last_login);
            else o.raw("null");
            o.raw(',');
            o.i(p.max_ts);
            o.raw(']');
            return;
        }
        case INBOX: {
            const Inbox& in = *static_cast<const Inbox*>(h);
            o.raw("[1,{");
            bool first = true;
            for (const auto& e : in.notes) {
                if (!first) o.raw(',');
                first = false;
                o.str(e.key.view());
                o.raw(":[");
                write_seen(o, e.val.created);
                o.raw(',');
                o.boolean(e.val.read);
                o.raw(']');
            }
            o.raw("},");
            if (in.has_read_all) o.i(in.read_all);
            else o.raw("null");
            o.raw(',');
            o.i(in.unread);
            o.raw(']');
            return;
        }
        case ACTOR: {
            const Actor& a = *static_cast<const Actor*>(h);
            o.raw("[1,");
            write_seen(o, a.counted.seen);
            o.raw(',');
            o.i(a.counted.newest);
            o.raw(']');
            return;
        }
    }
}

// --- reading ---------------------------------------------------------------------------------

enum JType : u8 { J_NULL, J_FALSE, J_TRUE, J_INT, J_UINT, J_FLOAT, J_STR, J_ARR, J_OBJ };

// Nodes in document order; a container's children follow it, `end` is the index after its subtree.
struct JNode {
    u8 t;
    u32 end;
    u32 n;  // children (an object's are key, value, key, value...)
    i64 i;  // J_INT
    u64 u;  // J_UINT: above INT64_MAX
    const char* s;
    size_t len;
    sv str() const { return sv(s, len); }
};

class JsonReader {
  public:
    JsonReader(const char* p, size_t n) : p_(p), end_(p + n), begin_(p) {}

    std::vector<JNode> parse() {
        ws();
        value(0);
        ws();
        if (p_ != end_) fail("unexpected data after the JSON value");
        return std::move(nodes_);
    }

  private:
    [[noreturn]] void fail(const char* what) {
        throw BadBody{std::string("not valid JSON at byte ") + std::to_string(p_ - begin_) + ": " + what};
    }
    void ws() {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) p_++;
    }
    bool lit(const char* word) {
        size_t n = std::strlen(word);
        if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
        p_ += n;
        return true;
    }
    u32 push(u8 t) {
        JNode node{};
        node.t = t;
        node.end = static_cast<u32>(nodes_.size() + 1);  // a container moves it past its children
        nodes_.push_back(node);
        return static_cast<u32>(nodes_.size() - 1);
    }
    void value(int depth) {
        if (depth > 32) fail("nested too deeply");
        if (p_ >= end_) fail("a value is missing");
        char c = *p_;
        if (c == '[' || c == '{') {
            bool obj = c == '{';
            u32 me = push(obj ? J_OBJ : J_ARR);
            p_++;
            ws();
            u32 n = 0;
            if (p_ < end_ && *p_ == (obj ? '}' : ']')) {
                p_++;
            } else {
                for (;;) {
                    if (obj) {
                        ws();
                        if (p_ >= end_ || *p_ != '"') fail("an object key must be a string");
                        string();
                        ws();
                        if (p_ >= end_ || *p_ != ':') fail("':' expected");
                        p_++;
                        ws();
                    }
                    value(depth + 1);
                    n++;
                    ws();
                    if (p_ < end_ && *p_ == ',') {
                        p_++;
                        ws();
                        continue;
                    }
                    if (p_ < end_ && *p_ == (obj ? '}' : ']')) {
                        p_++;
                        break;
                    }
                    fail(obj ? "',' or '}' expected" : "',' or ']' expected");
                }
            }
            nodes_[me].n = n;
            nodes_[me].end = static_cast<u32>(nodes_.size());
            return;
        }
        u32 me;
        if (c == '"') {
            me = string();
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            me = number();
        } else if (lit("null")) {
            me = push(J_NULL);
        } else if (lit("true")) {
            me = push(J_TRUE);
        } else if (lit("false")) {
            me = push(J_FALSE);
        } else {
            fail("unexpected character");
        }
        (void)me;
    }
    u32 number() {
        const char* start = p_;
        bool neg = *p_ == '-';
        if (neg) p_++;
        if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("a digit expected");
        if (*p_ == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9') fail("leading zeros");
        u64 mag = 0;
        bool big = false;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
            u64 d = static_cast<u64>(*p_ - '0');
            if (mag > (UINT64_MAX - d) / 10) big = true;
            else mag = mag * 10 + d;
            p_++;
        }
        bool frac = false;
        if (p_ < end_ && *p_ == '.') {
            frac = true;
            p_++;
            if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("a digit expected after '.'");
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9') p_++;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            frac = true;
            p_++;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) p_++;
            if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("a digit expected in the exponent");
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9') p_++;
        }
        u32 me;
        if (frac || big || (neg && mag > (1ULL << 63))) {
            me = push(J_FLOAT);  // orjson reads these as floats; no v1 field holds one
        } else if (neg) {
            me = push(J_INT);
            nodes_[me].i = mag == (1ULL << 63) ? INT64_MIN : -static_cast<i64>(mag);
        } else if (mag > static_cast<u64>(INT64_MAX)) {
            me = push(J_UINT);
            nodes_[me].u = mag;
        } else {
            me = push(J_INT);
            nodes_[me].i = static_cast<i64>(mag);
        }
        nodes_[me].s = start;
        nodes_[me].len = static_cast<size_t>(p_ - start);
        return me;
    }
    static void put_utf8(std::string& out, u32 cp) {
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }
    u32 hex4() {
        if (end_ - p_ < 4) fail("a \\u escape needs 4 hex digits");
        u32 v = 0;
        for (int k = 0; k < 4; k++) {
            char c = *p_++;
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<u32>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<u32>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<u32>(c - 'A' + 10);
            else fail("a \\u escape needs 4 hex digits");
        }
        return v;
    }
    // One UTF-8 sequence starting at p_ (a byte >= 0x80): well-formed, no surrogates, no overlongs.
    void utf8_sequence() {
        const unsigned char* q = reinterpret_cast<const unsigned char*>(p_);
        size_t left = static_cast<size_t>(end_ - p_);
        unsigned char c = q[0];
        size_t n;
        u32 cp;
        if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
        else fail("invalid UTF-8");
        if (left < n) fail("invalid UTF-8");
        for (size_t k = 1; k < n; k++) {
            if ((q[k] & 0xC0) != 0x80) fail("invalid UTF-8");
            cp = (cp << 6) | (q[k] & 0x3F);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            fail("invalid UTF-8");
        p_ += n;
    }
    u32 string() {
        p_++;  // the opening quote
        const char* start = p_;
        std::string* decoded = nullptr;
        for (;;) {
            if (p_ >= end_) fail("unterminated string");
            unsigned char c = static_cast<unsigned char>(*p_);
            if (c == '"') break;
            if (c < 0x20) fail("a control character in a string");
            if (c == '\\') {
                if (!decoded) {
                    arena_.emplace_back(start, static_cast<size_t>(p_ - start));
                    decoded = &arena_.back();
                }
                p_++;
                if (p_ >= end_) fail("unterminated escape");
                char e = *p_++;
                switch (e) {
                    case '"': decoded->push_back('"'); break;
                    case '\\': decoded->push_back('\\'); break;
                    case '/': decoded->push_back('/'); break;
                    case 'b': decoded->push_back('\b'); break;
                    case 'f': decoded->push_back('\f'); break;
                    case 'n': decoded->push_back('\n'); break;
                    case 'r': decoded->push_back('\r'); break;
                    case 't': decoded->push_back('\t'); break;
                    case 'u': {
                        u32 cp = hex4();
                        if (cp >= 0xDC00 && cp <= 0xDFFF) fail("a lone low surrogate");
                        if (cp >= 0xD800 && cp <= 0xDBFF) {
                            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail("a lone high surrogate");
                            p_ += 2;
                            u32 lo = hex4();
                            if (lo < 0xDC00 || lo > 0xDFFF) fail("a lone high surrogate");
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        }
                        put_utf8(*decoded, cp);
                        break;
                    }
                    default:
                        fail("an unknown escape");
                }
                continue;
            }
            const char* at = p_;
            if (c < 0x80) p_++;
            else utf8_sequence();
            if (decoded) decoded->append(at, static_cast<size_t>(p_ - at));
        }
        u32 me = push(J_STR);
        if (decoded) {
            nodes_[me].s = decoded->data();
            nodes_[me].len = decoded->size();
        } else {
            nodes_[me].s = start;
            nodes_[me].len = static_cast<size_t>(p_ - start);
        }
        p_++;  // the closing quote
        return me;
    }

    const char* p_;
    const char* end_;
    const char* begin_;
    std::vector<JNode> nodes_;
    std::deque<std::string> arena_;  // decoded escaped strings; a deque never moves them

  public:
    // The decoded strings must outlive the nodes: the caller keeps the reader.
};

// Typed access to the parsed body with messages that say which part is wrong.
class Body {
  public:
    explicit Body(std::vector<JNode> nodes) : n_(std::move(nodes)) {}
    const JNode& at(u32 i) const { return n_[i]; }

    [[noreturn]] static void fail(const char* what, const char* expected) {
        throw BadBody{std::string(what) + " must be " + expected};
    }
    // The children of an array of exactly `count` elements (any count when -1).
    std::vector<u32> array(u32 i, const char* what, int count, const char* shape) const {
        const JNode& node = n_[i];
        if (node.t != J_ARR || (count >= 0 && node.n != static_cast<u32>(count))) fail(what, shape);
        std::vector<u32> out;
        out.reserve(node.n);
        for (u32 c = i + 1, k = 0; k < node.n; k++, c = n_[c].end) out.push_back(c);
        return out;
    }
    // An object's (key, value) node pairs.
    std::vector<std::pair<u32, u32>> object(u32 i, const char* what, const char* shape) const {
        const JNode& node = n_[i];
        if (node.t != J_OBJ) fail(what, shape);
        std::vector<std::pair<u32, u32>> out;
        out.reserve(node.n);
        for (u32 c = i + 1, k = 0; k < node.n; k++) {
            u32 v = n_[c].end;
            out.emplace_back(c, v);
            c = n_[v].end;
        }
        return out;
    }
    bool null(u32 i) const { return n_[i].t == J_NULL; }
    sv str(u32 i, const char* what) const {
        if (n_[i].t != J_STR) fail(what, "a string");
        return n_[i].str();
    }
    bool boolean(u32 i, const char* what) const {
        if (n_[i].t != J_TRUE && n_[i].t != J_FALSE) fail(what, "true or false");
        return n_[i].t == J_TRUE;
    }
    i64 integer(u32 i, const char* what) const {
        if (n_[i].t != J_INT) fail(what, "an integer in the int64 range");
        return n_[i].i;
    }
    i64 instant(u32 i, const char* what) const {
        if (n_[i].t != J_INT || n_[i].i <= -INSTANT_LIMIT || n_[i].i >= INSTANT_LIMIT)
            fail(what, "an integer instant in microseconds, |t| < 2**62");
        return n_[i].i;
    }
    u64 attempt(u32 i, const char* what) const {
        if (n_[i].t == J_UINT) return n_[i].u;
        if (n_[i].t != J_INT || n_[i].i < 0) fail(what, "an integer attempt in [0, 2**64)");
        return static_cast<u64>(n_[i].i);
    }

  private:
    std::vector<JNode> n_;
};

inline void read_status(const Body& b, u32 i, Status& status) {
    for (u32 c : b.array(i, "the status", -1, "a list of [event_id, ts, active]")) {
        auto f = b.array(c, "a status entry", 3, "[event_id, ts, active]");
        sv eid = b.str(f[0], "a status event_id");
        StatusEvent v{b.instant(f[1], "a status ts"), b.boolean(f[2], "a status's active")};
        if (StatusEvent* known = status.get(eid)) *known = v;  // a repeated key: the last wins, as in a dict
        else status.append(eid, v);
    }
}

inline void read_floor(const Body& b, u32 i, FloorReg& reg) {
    if (b.null(i)) return;
    auto f = b.array(i, "the floor register", 4, "null or [ts, event_id, campus, floor]");
    reg.has = true;
    reg.ts = b.instant(f[0], "the floor register's ts");
    reg.eid.assign(b.str(f[1], "the floor register's event_id"));
    reg.campus = Atom::of(b.str(f[2], "the floor register's campus"));
    reg.floor = Atom::of(b.str(f[3], "the floor register's floor"));
}

inline void read_floors_named(const Body& b, u32 i, Vec<FloorName>& names) {
    for (u32 c : b.array(i, "floors_named", -1, "a list of [campus, floor]")) {
        auto f = b.array(c, "a named floor", 2, "[campus, floor]");
        grow_floor(names, Atom::of(b.str(f[0], "a named floor's campus")), Atom::of(b.str(f[1], "a named floor's floor")));
    }
}

inline void read_seen(const Body& b, u32 i, OrderedMap<i64>& seen, const char* what) {
    for (auto [k, v] : b.object(i, what, "an object of event_id: ts")) {
        sv eid = b.at(k).str();
        i64 ts = b.instant(v, "a counted or created ts");
        if (i64* known = seen.get(eid)) *known = ts;
        else seen.append(eid, ts);
    }
    seen.shrink();
}

inline void read_student(const Body& b, const std::vector<u32>& f, Student& s) {
    read_status(b, f[1], s.status);
    read_floor(b, f[2], s.floor);
    if (!b.null(f[3])) {
        auto m = b.array(f[3], "the mentor register", 3, "null or [ts, event_id, mentor_id | null]");
        s.has_mentor = true;
        s.mentor_ts = b.instant(m[0], "the mentor register's ts");
        s.mentor_eid.assign(b.str(m[1], "the mentor register's event_id"));
        if (!b.null(m[2])) s.mentor = Atom::of(b.str(m[2], "the mentor register's mentor_id"));
    }
    for (auto [k, v] : b.object(f[4], "the submissions", "an object of submission_id: [pillar, submitted, top]")) {
        auto p = b.array(v, "a submission", 3, "[pillar | null, [[attempt, ts], ...], top]");
        Submission sub;
        if (!b.null(p[0])) {
            auto reg = b.array(p[0], "a submission's pillar register", 3, "null or [ts, event_id, pillar]");
            sub.has_pillar = true;
            sub.pillar_ts = b.instant(reg[0], "a pillar register's ts");
            sub.pillar_eid.assign(b.str(reg[1], "a pillar register's event_id"));
            sub.pillar = Atom::of(b.str(reg[2], "a pillar register's pillar"));
        }
        for (u32 c : b.array(p[1], "a submission's submitted times", -1, "a list of [attempt, ts]")) {
            auto at = b.array(c, "a submitted time", 2, "[attempt, ts]");
            Attempt a{b.attempt(at[0], "a submitted attempt"), b.instant(at[1], "a submitted ts")};
            if (Attempt* known = const_cast<Attempt*>(sub.attempt(a.attempt))) known->ts = a.ts;
            else sub.submitted.emplace_back(a);
        }
        sub.top = b.attempt(p[2], "a submission's top attempt");
        u32 si = s.subs.get_or_append(b.at(k).str());
        s.subs.at(si).val = std::move(sub);
    }
    for (auto [k, v] : b.object(f[5], "the reviews", "an object of review_id: [ts, event_id, ...]")) {
        auto r = b.array(v, "a review", 6, "[ts, event_id, submission_id, attempt, mentor_id, approved]");
        Review rev;
        rev.ts = b.instant(r[0], "a review's ts");
        rev.eid.assign(b.str(r[1], "a review's event_id"));
        sv sid = b.str(r[2], "a review's submission_id");
        i64 si = s.subs.find(sid);
        if (si < 0) throw BadBody{"review " + std::string(b.at(k).str()) + " names submission " + std::string(sid) +
                                  ", which the state does not hold"};
        rev.sub = static_cast<u32>(si);
        rev.attempt = b.attempt(r[3], "a review's attempt");
        rev.mentor = Atom::of(b.str(r[4], "a review's mentor_id"));
        rev.approved = b.boolean(r[5], "a review's approved");
        u32 ri = s.reviews.get_or_append(b.at(k).str());
        s.reviews.at(ri).val = std::move(rev);
    }
    read_floors_named(b, f[6], s.floors_named);
    for (u32 c : b.array(f[7], "mentors_named", -1, "a list of mentor ids"))
        grow_atom(s.mentors_named, Atom::of(b.str(c, "a named mentor")));
    s.max_ts = b.instant(f[8], "max_ts");
    s.subs.shrink();
    s.reviews.shrink();
    ledger_build(s);
}

// The entity of `kind` and `id` in a v1 body; throws BadBody.
inline EntityHead* load_entity(char kind, sv id, const char* data, size_t size) {
    JsonReader reader(data, size);
    Body b(reader.parse());
    if (b.at(0).t != J_ARR || b.at(0).n == 0) throw BadBody{"an entity state must be a JSON array [version, ...]"};
    u32 first = 1;
    if (b.at(first).t != J_INT || b.at(first).i != LAYOUT_VERSION) {
        std::string v(b.at(first).t == J_INT || b.at(first).t == J_UINT || b.at(first).t == J_FLOAT
                          ? std::string(b.at(first).str())
                          : std::string("(not an integer)"));
        throw BadBody{"entity state layout " + v + " is not 1, the only layout this cohortflow reads"};
    }
    switch (kind) {
        case STUDENT: {
            auto f = b.array(0, "a student state", 9, "[1, status, floor, mentor, submissions, reviews, floors_named, "
                                                       "mentors_named, max_ts]");
            Student* s = new Student();
            s->kind = STUDENT;
            s->id.assign(id);
            try {
                read_student(b, f, *s);
            } catch (...) {
                delete s;
                throw;
            }
            return s;
        }
        case MENTOR: {
            auto f = b.array(0, "a mentor state", 5, "[1, status, floor, floors_named, max_ts]");
            Mentor* m = new Mentor();
            m->kind = MENTOR;
            m->fresh = false;
            m->id.assign(id);
            try {
                read_status(b, f[1], m->status);
                read_floor(b, f[2], m->floor);
                read_floors_named(b, f[3], m->floors_named);
                m->max_ts = b.instant(f[4], "max_ts");
            } catch (...) {
                delete m;
                throw;
            }
            return m;
        }
        case LOGINS: {
            auto f = b.array(0, "a logins state", 6, "[1, seen, newest, days, last_login, max_ts]");
            Logins* p = new Logins();
            p->kind = LOGINS;
            p->id.assign(id);
            try {
                read_seen(b, f[1], p->counted.seen, "the counted event ids");
                p->counted.newest = b.instant(f[2], "newest");
                for (u32 c : b.array(f[3], "the login days", -1, "a list of day numbers"))
                    p->add_day(b.integer(c, "a login day"));
                if (!b.null(f[4])) {
                    p->has_last = true;
                    p->last_login = b.instant(f[4], "last_login");
                }
                p->max_ts = b.instant(f[5], "max_ts");
            } catch (...) {
                delete p;
                throw;
            }
            return p;
        }
        case INBOX: {
            auto f = b.array(0, "an inbox state", 4, "[1, notifications, read_all, unread]");
            Inbox* in = new Inbox();
            in->kind = INBOX;
            in->id.assign(id);
            try {
                for (auto [k, v] : b.object(f[1], "the notifications", "an object of notification_id: [created, read]")) {
                    auto p = b.array(v, "a notification", 2, "[created, read]");
                    Notification note;
                    read_seen(b, p[0], note.created, "a notification's creates");
                    note.read = b.boolean(p[1], "a notification's read");
                    bool firstc = true;
                    for (const auto& e : note.created)
                        if (firstc || e.val < note.min_created) note.min_created = e.val, firstc = false;
                    u32 ni = in->notes.get_or_append(b.at(k).str());
                    in->notes.at(ni).val = std::move(note);
                }
                if (!b.null(f[2])) {
                    in->has_read_all = true;
                    in->read_all = b.instant(f[2], "read_all");
                }
                in->unread = b.integer(f[3], "unread");
                in->notes.shrink();
            } catch (...) {
                delete in;
                throw;
            }
            return in;
        }
        case ACTOR: {
            auto f = b.array(0, "an actor state", 3, "[1, seen, newest]");
            Actor* a = new Actor();
            a->kind = ACTOR;
            a->id.assign(id);
            try {
                read_seen(b, f[1], a->counted.seen, "the counted event ids");
                a->counted.newest = b.instant(f[2], "newest");
            } catch (...) {
                delete a;
                throw;
            }
            return a;
        }
    }
    throw BadBody{"unknown entity kind"};
}

}  // namespace cf
