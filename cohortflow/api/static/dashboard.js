// cohortflow dashboard: reads the /v1 routes of the API that serves it, with the token kept in sessionStorage.
// Plain JavaScript, no build step, nothing loaded from elsewhere; the charts are SVG drawn here.
//
// Every view is polled each second with If-None-Match (a 304 changes nothing on the page); the followed
// user's badge is read from the SSE stream with fetch() (EventSource cannot send the Authorization header).
// A 401 anywhere signs out with a message; a 403 explains the section the token's scopes do not cover.
(() => {
  "use strict";

  const TOKEN_KEY = "cohortflow.dashboard.token";
  const FOLLOW_KEY = "cohortflow.dashboard.follow";
  const POLL_MS = 1000;
  const PAGE = 500;
  const DAYS = 30;
  const INVALID = "This token is not valid (unknown or revoked). Enter another token.";
  const NUM = new Intl.NumberFormat("en-US");
  const DEC = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  class AuthError extends Error {}
  class NetworkError extends Error {}
  class HttpError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  let session = null; // {token, ctrl, etags, bodies, timer, busy, forbidden, anchor, follow, stream}

  // --- DOM helpers ------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.setAttribute("class", value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const int = (v) => (v === null || v === undefined ? "–" : NUM.format(v));
  const dec = (v) => (v === null || v === undefined ? "–" : DEC.format(v));
  const pct = (v) => (v === null || v === undefined ? "–" : `${DEC.format(v)}%`);
  const count = (n, what) => `${int(n)} ${what}${n === 1 ? "" : "s"}`;
  const raw = (v) => (v === null || v === undefined ? "" : String(v));

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Number(seconds);
    if (s < 60) return `${DEC.format(Math.round(s * 10) / 10)} s`;
    if (s < 3600) return `${DEC.format(Math.round(s / 6) / 10)} min`;
    if (s < 86400) return `${DEC.format(Math.round(s / 360) / 10)} h`;
    return `${DEC.format(Math.round(s / 8640) / 10)} d`;
  }

  function ago(iso) {
    if (!iso) return "never";
    const when = Date.parse(iso);
    if (!Number.isFinite(when) || when <= 0) return "never";
    return `${duration(Math.max(0, (Date.now() - when) / 1000))} ago`;
  }

  // A <td> showing `text`, holding the API's value in data-value (the tests read both).
  function cell(field, value, text, cls) {
    return el("td", { "data-field": field, "data-value": raw(value), class: cls, text: text });
  }

  function isoDate(d) {
    return d.toISOString().slice(0, 10);
  }

  function addDays(day, n) {
    const d = new Date(`${day}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + n);
    return isoDate(d);
  }

  function sentence(message) {
    const m = String(message || "").trim();
    return m ? m[0].toUpperCase() + m.slice(1) + (/[.!?]$/.test(m) ? "" : ".") : "";
  }

  // --- the API ----------------------------------------------------------------------------------
  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (_) {
      // not the API's JSON error body
    }
    return { code: "error", message: `HTTP ${response.status}` };
  }

  function authHeaders(s) {
    return { Authorization: `Bearer ${s.token}` };
  }

  // GET a view: {body, changed}; the body held from before when the API answers 304.
  async function get(s, path) {
    const headers = authHeaders(s);
    const held = s.etags.get(path);
    if (held && s.bodies.has(path)) headers["If-None-Match"] = held;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store", signal: s.ctrl.signal });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new NetworkError(error.message);
    }
    if (response.status === 304) return { body: s.bodies.get(path), changed: false };
    if (response.ok) {
      const body = await response.json();
      const tag = response.headers.get("ETag");
      if (tag) {
        s.etags.set(path, tag);
        s.bodies.set(path, body);
      }
      return { body, changed: true };
    }
    const error = await errorOf(response);
    if (response.status === 401) throw new AuthError(error.message);
    throw new HttpError(response.status, error.message, Number(response.headers.get("Retry-After")) || 0);
  }

  // Every item of a cursor-paginated list.
  async function walk(s, path) {
    const items = [];
    let cursor = null;
    let changed = false;
    const join = path.includes("?") ? "&" : "?";
    do {
      const page = await get(s, `${path}${join}limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      changed = changed || page.changed;
      items.push(...page.body.items);
      cursor = page.body.next_cursor;
    } while (cursor);
    return { items, changed };
  }

  // --- sections ---------------------------------------------------------------------------------
  function setState(id, state, note) {
    const section = $(id);
    section.dataset.state = state;
    const p = section.querySelector(":scope > .note");
    p.hidden = !note;
    p.textContent = note || "";
  }

  const EMPTY = { overview: "No event applied yet: the views are empty." };

  // Run one section's load: its state follows how the API answered.
  async function section(s, id, load) {
    if (s.forbidden.has(id)) return;
    try {
      await load();
      if (session === s) setState(id, "ok");
    } catch (error) {
      if (session !== s || error.name === "AbortError") return;
      if (error instanceof AuthError) throw error;
      if (error instanceof HttpError && error.status === 403) {
        s.forbidden.add(id); // a token's scopes do not change: ask no more
        setState(id, "forbidden", `${sentence(error.message)} This section is hidden for this token.`);
      } else if (error instanceof HttpError && error.status === 404) {
        setState(id, "empty", EMPTY[id] || sentence(error.message));
      } else if (error instanceof HttpError && error.status === 429) {
        s.retryAfter = Math.max(s.retryAfter, error.retryAfter || 1);
        setState(id, "error", `${sentence(error.message)} Waiting before the next refresh.`);
      } else if (error instanceof HttpError) {
        setState(id, "error", `The API answered ${error.status}: ${sentence(error.message)} Retrying.`);
        s.failed = true;
      } else if (error instanceof NetworkError) {
        setState(id, "error", "The API does not answer (network error). Retrying.");
        s.failed = true;
      } else {
        console.error(error);
        setState(id, "error", `This section could not be shown: ${error.message}`);
        s.failed = true;
      }
    }
  }

  // --- platform now (/v1/global) ----------------------------------------------------------------
  const GLOBAL_CARDS = [
    ["students_total", "students"], ["mentors_total", "mentors"], ["campuses", "campuses"], ["floors", "floors"],
    ["unread_notifications", "unread notifications"],
  ];

  function renderOverview(g) {
    const cards = $("overview-cards");
    cards.replaceChildren(...GLOBAL_CARDS.map(([field, label]) => el("div", { class: "card" },
      el("span", { class: "value", "data-field": field, "data-value": raw(g[field]), text: int(g[field]) }),
      el("span", { class: "label", text: label }))));
    const updated = $("overview").querySelector(".updated") ||
      $("overview").appendChild(el("div", { class: "small updated" }));
    updated.textContent = `Events applied up to ${g.as_of ? `${g.as_of.slice(0, 19).replace("T", " ")} UTC` : "–"}`;
  }

  async function loadOverview(s) {
    const { body, changed } = await get(s, "/v1/global");
    s.anchor = body.as_of ? body.as_of.slice(0, 10) : null;
    if (changed) renderOverview(body);
  }

  // --- daily charts (/v1/global/daily) ----------------------------------------------------------
  const CHARTS = [["submissions", "Submissions"], ["reviews", "Reviews"], ["logins", "Logins"]];

  function chart(field, title, days, byDate) {
    const values = days.map((d) => (byDate.has(d) ? byDate.get(d)[field] : 0));
    const top = Math.max(1, ...values);
    const w = 330, h = 130, left = 34, right = 6, topPad = 8, bottom = 18;
    const plotW = w - left - right, plotH = h - topPad - bottom;
    const step = plotW / days.length;
    const svg = el("svg:svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": `${title}, one bar per day` });
    for (const frac of [0, 0.5, 1]) {
      const y = topPad + plotH * (1 - frac);
      svg.append(el("svg:line", { class: frac ? "grid" : "axis", x1: left, x2: w - right, y1: y, y2: y }));
      if (frac !== 0.5 || top >= 4) { // no half-way label a bar cannot reach in whole numbers
        svg.append(el("svg:text", { x: left - 4, y: y + 3, "text-anchor": "end", text: int(Math.round(top * frac)) }));
      }
    }
    days.forEach((d, i) => {
      const v = values[i];
      const bh = plotH * (v / top);
      svg.append(el("svg:rect", {
        class: "bar", x: (left + i * step + step * 0.12).toFixed(2), width: (step * 0.76).toFixed(2),
        y: (topPad + plotH - bh).toFixed(2), height: Math.max(bh, v > 0 ? 1 : 0).toFixed(2),
        "data-date": d, "data-value": v,
      }, el("svg:title", { text: `${d}: ${int(v)} ${title.toLowerCase()}` })));
    });
    svg.append(el("svg:text", { x: left, y: h - 4, text: days[0].slice(5) }),
      el("svg:text", { x: w - right, y: h - 4, "text-anchor": "end", text: days[days.length - 1].slice(5) }));
    const last = values[values.length - 1];
    const total = values.reduce((a, b) => a + b, 0);
    if (total === 0) {
      svg.append(el("svg:text", { class: "nothing", x: left + plotW / 2, y: topPad + plotH / 2, "text-anchor": "middle",
        text: `no ${title.toLowerCase()} in these ${DAYS} days` }));
    }
    return el("div", { class: "chart", "data-chart": field },
      el("h3", {}, title, el("span", { class: "small" },
        el("span", { "data-total": "last", "data-value": last, text: int(last) }), ` on ${days[days.length - 1].slice(5)} · `,
        el("span", { "data-total": "window", "data-value": total, text: int(total) }), ` in ${DAYS} days`)),
      svg);
  }

  function renderDaily(items, from, to) {
    const byDate = new Map(items.map((d) => [d.date, d]));
    const days = [];
    for (let d = from; d <= to; d = addDays(d, 1)) days.push(d);
    $("charts").replaceChildren(...CHARTS.map(([field, title]) => chart(field, title, days, byDate)));
    $("daily-range").textContent = `${from} to ${to} (UTC, event time)`;
  }

  async function loadDaily(s) {
    // The 30 days up to the newest event applied (event time), or up to today when none is known.
    const to = s.anchor || isoDate(new Date());
    const from = addDays(to, -(DAYS - 1));
    const path = `/v1/global/daily?from=${from}&to=${to}`;
    const { body, changed } = await get(s, path);
    if (changed || s.dailyPath !== path) renderDaily(body.items, from, to);
    s.dailyPath = path;
  }

  // --- floors (/v1/floors) ----------------------------------------------------------------------
  function renderFloors(items) {
    const pillars = [...new Set(items.flatMap((f) => Object.keys(f.pillar_progress || {})))].sort();
    const table = $("floors-table");
    table.tHead.replaceChildren(el("tr", {},
      el("th", { text: "Campus" }), el("th", { text: "Floor" }), el("th", { class: "num", text: "Students" }),
      el("th", { class: "num", text: "Assigned" }), el("th", { class: "num", text: "Unassigned" }),
      el("th", { class: "num", text: "Mentors" }), el("th", { class: "num", text: "Pending" }),
      el("th", { class: "num", text: "Approved" }), el("th", { class: "num", text: "Rejected" }),
      ...pillars.map((p) => el("th", { text: p.toUpperCase(), title: `pillar ${p}: share of the floor's students who completed it` })),
      el("th", { class: "num", text: "Avg completion" })));
    table.tBodies[0].replaceChildren(...items.map((f) => el("tr", { "data-floor": `${f.campus}/${f.floor}` },
      cell("campus", f.campus, f.campus), cell("floor", f.floor, f.floor),
      cell("students_total", f.students_total, int(f.students_total), "num"),
      cell("students_assigned", f.students_assigned, int(f.students_assigned), "num"),
      cell("students_unassigned", f.students_unassigned, int(f.students_unassigned), "num"),
      cell("mentors_total", f.mentors_total, int(f.mentors_total), "num"),
      cell("submissions_pending", f.submissions_pending, int(f.submissions_pending), "num"),
      cell("submissions_approved", f.submissions_approved, int(f.submissions_approved), "num"),
      cell("submissions_rejected", f.submissions_rejected, int(f.submissions_rejected), "num"),
      ...pillars.map((p) => pillarCell(p, f)),
      cell("avg_completion", f.avg_completion, pct(f.avg_completion), "num"))));
    const students = items.reduce((a, f) => a + f.students_total, 0);
    $("floors-summary").textContent = `${count(items.length, "floor")} · ${count(students, "student")}`;
    $("floors-summary").dataset.value = items.length;
  }

  function pillarCell(pillar, f) {
    const progress = (f.pillar_progress || {})[pillar];
    const completed = (f.pillar_completed || {})[pillar];
    const fill = el("div", { class: "bar-fill" });
    fill.style.width = `${Math.max(0, Math.min(100, Number(progress) || 0))}%`;
    return el("td", {
      "data-field": `pillar_progress.${pillar}`, "data-value": raw(progress), "data-completed": raw(completed),
      title: `${pillar}: ${int(completed)} of ${int(f.students_total)} students completed (${pct(progress)})`,
    }, el("div", { class: "pillar" }, el("div", { class: "bar-track" }, fill),
      el("span", { class: "pct", text: pct(progress) })));
  }

  async function loadFloors(s) {
    const { items, changed } = await walk(s, "/v1/floors");
    if (changed || !s.floorsShown) renderFloors(items);
    s.floorsShown = true;
  }

  // --- mentors (/v1/mentors) --------------------------------------------------------------------
  const WORKLOADS = ["overloaded", "balanced", "low"];

  function renderMentors(s, items) {
    const sorted = [...items].sort((a, b) => b.pending_reviews - a.pending_reviews ||
      (a.mentor_id < b.mentor_id ? -1 : a.mentor_id > b.mentor_id ? 1 : 0));
    $("workloads").replaceChildren(...WORKLOADS.map((w) => {
      const n = items.filter((m) => m.workload === w).length;
      return el("span", { class: "pill", "data-workload": w, "data-workload-count": w, "data-value": n, text: `${w} ${int(n)}` });
    }));
    $("mentors-table").tBodies[0].replaceChildren(...sorted.map((m) => el("tr", {
      "data-mentor": m.mentor_id, class: s.follow === m.mentor_id ? "followed" : null,
    },
    cell("mentor_id", m.mentor_id, m.mentor_id),
    cell("floor", m.campus === null ? "" : `${m.campus}/${m.floor}`, m.campus === null ? "–" : `${m.campus}/${m.floor}`,
      m.active === false ? "muted" : null),
    cell("assigned_students", m.assigned_students, int(m.assigned_students), "num"),
    cell("pending_reviews", m.pending_reviews, int(m.pending_reviews), "num"),
    cell("reviews_completed", m.reviews_completed, int(m.reviews_completed), "num"),
    cell("approval_rate", m.approval_rate, m.approval_rate === null ? "–" : pct(m.approval_rate * 100), "num"),
    cell("avg_review_seconds", m.avg_review_seconds, duration(m.avg_review_seconds), "num"),
    el("td", { "data-field": "workload", "data-value": m.workload },
      el("span", { class: "pill", "data-workload": m.workload, text: m.workload })),
    cell("last_active_at", m.last_active_at, m.active === false ? "left" : ago(m.last_active_at), "muted"),
    el("td", {}, el("button", {
      type: "button", class: "quiet follow", "data-follow": m.mentor_id, "aria-pressed": String(s.follow === m.mentor_id),
      title: `follow ${m.mentor_id}'s badge live`, text: s.follow === m.mentor_id ? "following" : "follow",
    })))));
    const active = items.filter((m) => m.active !== false).length;
    $("mentors-summary").textContent = `${count(items.length, "mentor")} · ${int(active)} active`;
    $("mentors-summary").dataset.value = items.length;
    return sorted;
  }

  async function loadMentors(s) {
    const { items, changed } = await walk(s, "/v1/mentors");
    s.mentors = items;
    if (changed || !s.mentorsShown) {
      const sorted = renderMentors(s, items);
      if (!s.follow && sorted.length) follow(s, sorted[0].mentor_id, false); // busiest mentor first
    }
    s.mentorsShown = true;
  }

  // --- freshness (/v1/freshness) ----------------------------------------------------------------
  function renderFreshness(f) {
    const topics = new Map();
    for (const p of f.partitions) {
      const t = topics.get(p.topic) || { partitions: 0, committed: 0, end: 0, lag: 0, last: null };
      t.partitions += 1;
      t.committed += p.committed_offset;
      t.end = t.end === null || p.end_offset === null ? null : t.end + p.end_offset;
      t.lag = t.lag === null || p.lag === null ? null : t.lag + p.lag;
      if (Date.parse(p.committed_at) > 0 && (!t.last || p.committed_at > t.last)) t.last = p.committed_at;
      topics.set(p.topic, t);
    }
    $("topics-table").tBodies[0].replaceChildren(...[...topics.entries()].sort().map(([topic, t]) =>
      el("tr", { "data-topic": topic },
        cell("topic", topic, topic), cell("partitions", t.partitions, int(t.partitions), "num"),
        cell("committed_offset", t.committed, int(t.committed), "num"),
        cell("end_offset", t.end, t.end === null ? "unknown" : int(t.end), "num"),
        cell("lag", t.lag, t.lag === null ? "unknown" : int(t.lag), t.lag ? "num lag-behind" : "num"),
        cell("committed_at", t.last, ago(t.last), "muted"))));
    $("views-table").tBodies[0].replaceChildren(...Object.entries(f.views).sort().map(([view, v]) =>
      el("tr", { "data-view": view },
        cell("view", view, view),
        cell("as_of", v.as_of, v.as_of ? v.as_of.replace("T", " ").replace("Z", "").slice(0, 19) : "–", "muted"),
        cell("age_seconds", v.age_seconds, v.age_seconds === null ? "never" : `${duration(v.age_seconds)} ago`, "num"))));
    const lag = $("total-lag");
    lag.dataset.value = raw(f.total_lag);
    lag.textContent = f.total_lag === null ? "lag unknown (Kafka did not answer)"
      : f.total_lag === 0 ? "caught up: lag 0" : `${int(f.total_lag)} records behind`;
  }

  async function loadFreshness(s) {
    const { body, changed } = await get(s, "/v1/freshness");
    if (changed) renderFreshness(body);
  }

  // --- the live badge (/v1/notifications/{id}/stream) -------------------------------------------
  function badgeState(state, text) {
    const tag = $("badge-state");
    tag.dataset.state = state;
    tag.textContent = text;
  }

  function renderBadge(b) {
    for (const [id, value] of [["badge-unread", b.unread], ["badge-pending", b.pending_reviews]]) {
      const node = $(id);
      const before = node.dataset.value;
      node.dataset.value = raw(value);
      node.textContent = value === undefined || value === null ? "–" : int(value);
      if (before !== "" && before !== raw(value)) {
        node.classList.add("bumped");
        setTimeout(() => node.classList.remove("bumped"), 900);
      }
    }
    $("badge-updated").textContent = `last change ${new Date().toLocaleTimeString("en-GB")}`;
    $("badge").dataset.state = "ok";
  }

  // Follow `userId`'s badge: its stream replaces the one followed before.
  function follow(s, userId, remember) {
    if (s.stream) s.stream.abort();
    s.follow = userId;
    if (remember) sessionStorage.setItem(FOLLOW_KEY, userId);
    $("follow-input").value = userId;
    $("badge-user").textContent = userId;
    $("badge-user").dataset.value = userId;
    for (const id of ["badge-unread", "badge-pending"]) {
      $(id).dataset.value = "";
      $(id).textContent = "–";
    }
    $("badge-updated").textContent = "";
    setState("badge", "idle");
    for (const row of document.querySelectorAll("#mentors-table tr[data-mentor]")) {
      const mine = row.dataset.mentor === userId;
      row.classList.toggle("followed", mine);
      const button = row.querySelector("button[data-follow]");
      button.setAttribute("aria-pressed", String(mine));
      button.textContent = mine ? "following" : "follow";
    }
    const ctrl = new AbortController();
    s.stream = ctrl;
    stream(s, userId, ctrl);
  }

  async function stream(s, userId, ctrl) {
    let delay = 1000;
    badgeState("connecting", "connecting");
    while (!ctrl.signal.aborted && session === s) {
      try {
        const response = await fetch(`/v1/notifications/${encodeURIComponent(userId)}/stream`, {
          headers: { ...authHeaders(s), Accept: "text/event-stream" }, cache: "no-store", signal: ctrl.signal,
        });
        if (response.status === 401) {
          const error = await errorOf(response);
          if (session === s) invalid(error.message);
          return;
        }
        if (response.status === 403) {
          const error = await errorOf(response);
          if (ctrl.signal.aborted) return;
          badgeState("forbidden", "not covered");
          setState("badge", "forbidden", `${sentence(error.message)} It needs views:read or user:${userId}.`);
          return;
        }
        if (!response.ok || !response.body) {
          const error = await errorOf(response);
          throw new HttpError(response.status, error.message, Number(response.headers.get("Retry-After")) || 0);
        }
        badgeState("live", "live");
        setState("badge", $("badge-unread").dataset.value === "" ? "idle" : "ok");
        delay = 1000;
        await readEvents(response.body, (kind, data) => {
          if (kind === "badge" && !ctrl.signal.aborted) renderBadge(JSON.parse(data));
        });
        throw new Error("the stream ended");
      } catch (error) {
        if (ctrl.signal.aborted || session !== s) return;
        const wait = error instanceof HttpError && error.retryAfter ? error.retryAfter * 1000 : delay;
        badgeState("reconnecting", "reconnecting");
        await new Promise((resolve) => setTimeout(resolve, wait));
        delay = Math.min(delay * 2, 15000);
      }
    }
  }

  // Server-Sent Events from a fetch() body: `event:` and `data:` fields, a blank line ends an event.
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let kind = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (let line of lines) {
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) onEvent(kind, data.join("\n"));
          kind = "message";
          data = [];
        } else if (!line.startsWith(":")) { // a comment (`: heartbeat`) only keeps the connection alive
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") kind = val;
          else if (field === "data") data.push(val);
        }
      }
    }
  }

  // --- the refresh loop -------------------------------------------------------------------------
  async function tick(s) {
    if (session !== s || s.busy) return; // the refresh under way schedules the next one
    if (document.hidden) {
      s.timer = setTimeout(() => tick(s), POLL_MS);
      return;
    }
    s.failed = false;
    s.retryAfter = 0;
    s.busy = true;
    try {
      await Promise.all([
        section(s, "overview", () => loadOverview(s)).then(() => section(s, "daily", () => loadDaily(s))),
        section(s, "floors", () => loadFloors(s)),
        section(s, "mentors", () => loadMentors(s)),
        section(s, "freshness", () => loadFreshness(s)),
      ]);
    } catch (error) {
      if (error instanceof AuthError) {
        if (session === s) invalid(error.message);
        return;
      }
      console.error(error);
      s.failed = true;
    } finally {
      s.busy = false;
    }
    if (session !== s) return;
    const status = $("status");
    if (s.retryAfter) {
      status.dataset.state = "stale";
      status.textContent = `Rate limited: next refresh in ${s.retryAfter} s`;
    } else if (s.failed) {
      status.dataset.state = "down";
      status.textContent = `Some views could not be read; retrying (${new Date().toLocaleTimeString("en-GB")})`;
    } else {
      status.dataset.state = "live";
      status.textContent = `Live · refreshed every ${POLL_MS / 1000} s · ${new Date().toLocaleTimeString("en-GB")}`;
      status.dataset.refreshed = String(Date.now());
    }
    s.timer = setTimeout(() => tick(s), s.retryAfter ? s.retryAfter * 1000 : POLL_MS);
  }

  function stop() {
    if (!session) return;
    session.ctrl.abort();
    if (session.stream) session.stream.abort();
    clearTimeout(session.timer);
    session = null;
  }

  function start(token) {
    stop();
    const s = {
      token, ctrl: new AbortController(), etags: new Map(), bodies: new Map(), timer: null, forbidden: new Set(),
      anchor: null, follow: null, stream: null, failed: false, retryAfter: 0,
    };
    session = s;
    for (const id of ["overview", "daily", "floors", "mentors", "freshness"]) setState(id, "loading", "Loading…");
    setState("badge", "idle");
    badgeState("idle", "");
    for (const id of ["overview-cards", "charts", "workloads", "floors-summary", "mentors-summary", "total-lag",
      "daily-range", "badge-user", "badge-updated"]) $(id).replaceChildren();
    for (const id of ["badge-unread", "badge-pending"]) {
      $(id).dataset.value = "";
      $(id).textContent = "–";
    }
    $("badge-user").textContent = "Pick a mentor below, or type a user id.";
    $("follow-input").value = "";
    for (const id of ["floors-table", "mentors-table", "topics-table", "views-table"]) $(id).tBodies[0].replaceChildren();
    $("signin").hidden = true;
    $("auth-message").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    $("token-hint").textContent = `token ${token.slice(0, 7)}…`;
    $("status").dataset.state = "idle";
    $("status").textContent = "Connecting…";
    const followed = sessionStorage.getItem(FOLLOW_KEY);
    if (followed) follow(s, followed, false);
    tick(s);
  }

  function showSignIn(message, kind, detail) {
    stop();
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("token-hint").textContent = "";
    $("status").dataset.state = "idle";
    $("status").textContent = "";
    const box = $("auth-message");
    box.hidden = !message;
    box.dataset.kind = kind || "error";
    box.replaceChildren(message || "");
    if (detail) box.append(el("span", { class: "detail", text: `The API said: ${detail}` }));
    $("signin").hidden = false;
    $("token-input").value = "";
    $("token-input").focus();
  }

  // A 401 from any call: the token is gone from this tab and the form asks for another.
  function invalid(detail) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(FOLLOW_KEY);
    showSignIn(INVALID, "error", detail);
  }

  function init() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      sessionStorage.removeItem(FOLLOW_KEY);
      start(token);
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(FOLLOW_KEY);
      showSignIn("Signed out: the token was removed from this tab.", "info");
    });
    $("follow-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const userId = $("follow-input").value.trim();
      if (userId && session) follow(session, userId, true);
    });
    $("mentors-table").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-follow]");
      if (button && session) follow(session, button.dataset.follow, true);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && session) {
        clearTimeout(session.timer);
        tick(session);
      }
    });
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token);
    else showSignIn("", "info");
  }

  init();
})();
