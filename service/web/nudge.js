/*
 * nudge.js: shows nudge's decisions in a web page. One ES module, no
 * dependencies; it calls nudge's gRPC port over grpc-web.
 *
 *   import * as nudge from "/nudge.js";
 *   nudge.configure({ server: "https://nudge.example.com", timeoutMs: 5000 }); // optional: by default,
 *   //   the nudge that served this file. Your page's origin must be in nudge's web.allowed_origins.
 *
 *   const banner = nudge.placement(document.getElementById("home_banner"), {
 *     placement: "home_banner",    // a placement of the catalog
 *     customerToken,               // JWT from your backend (sub = customer id); or a function returning one
 *     context: { page: "home" },   // optional; string | number | boolean values
 *     limit: 0,                    // optional; 0 = the placement's slots
 *     server,                      // optional; overrides configure()
 *     onClick(action, event) {},   // optional; CTA clicked; event.preventDefault() stays on the page
 *     onDismiss(action) {},        // optional; × clicked
 *     onRender(decision) {},       // optional; after each successful Decide
 *     onOutcome(outcome, action, error) {}, // optional; an impression/click/dismiss report settled
 *   });
 *   await banner.ready;            // the first render is done (rendered, empty or failed)
 *   await banner.refresh();        // decides again; resolves to the decision, or null on failure
 *   banner.refresh({ context: { page: "pricing" } }); // ... with changed options
 *   banner.decision;               // the last decision, or null
 *   banner.destroy();              // empties the element, stops reporting impressions
 *
 * A placement never throws and its promises never reject: on an error the
 * element is emptied, marked data-nudge-state="failed", and the cause goes to
 * console.warn. A fallback decision, or one serving nothing, shows nothing
 * (data-nudge-state="empty"); else each served action becomes a card
 * (data-nudge-state="rendered"):
 *
 *   <div class="nudge-card" data-nudge-action="…" data-nudge-decision="…" data-nudge-category="…">
 *     <button class="nudge-dismiss">×</button><strong class="nudge-title">…</strong>
 *     <p class="nudge-body">…</p><a class="nudge-cta" href="…">…</a></div>   (from the payload)
 *
 * Impressions are reported once half of a card is visible, dismissals as they
 * happen. A CTA click is reported (a keepalive request), then onClick runs,
 * synchronously with the native click event; unless it called
 * event.preventDefault(), the link is followed once the report is out (at most
 * ~300 ms later). Style .nudge-card & co. in your page: the defaults
 * (<style id="nudge-style">) are plain and lose to any rule of yours.
 *
 * The calls themselves, for your own rendering (each rejects with a
 * NudgeError: { code: gRPC status number, message }):
 *
 *   await nudge.decide({ customerToken, placement, context, limit, requestId });
 *       // → { decisionId, customerId, served: [{ actionId, channel, category, rank, score, propensity,
 *       //      payload }], variant, modelVersion, catalogVersion, fallback, fallbackReason, serverTimeUs }
 *   await nudge.track("pricing_page_view", { customerToken, properties, eventId }); // → { duplicate }
 *   await nudge.reportOutcome({ customerToken, decisionId, actionId, outcome: "click" }); // → { applied }
 *       // outcome: "impression" | "click" | "conversion" | "dismiss"; optional reward (number)
 * Each also takes `server` to override configure(). eventId defaults to a random UUID.
 */

// The nudge that serves this file writes its grpc-web URL here.
const DEFAULT_SERVER = "__NUDGE_GRPC_WEB_URL__";
const settings = { server: DEFAULT_SERVER.startsWith("__") ? "" : DEFAULT_SERVER, timeoutMs: 5000 };
const trim = (url) => String(url).replace(/\/+$/, "");

/** Defaults for every call: `server` (grpc-web base URL), `timeoutMs` (5000; 0 = none). */
export function configure({ server, timeoutMs } = {}) {
  if (server !== undefined) settings.server = trim(server);
  if (timeoutMs !== undefined) settings.timeoutMs = Number(timeoutMs);
}

/** A failed call. `code` is the gRPC status: 3 invalid argument, 4 deadline, 7 permission denied, 14 unavailable, 16 unauthenticated... */
export class NudgeError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "NudgeError";
    this.code = code;
  }
}

// ── protobuf, as much as the three calls need ──
const toUtf8 = (s) => new TextEncoder().encode(s);
const str = (b) => new TextDecoder().decode(b);

class Writer {
  constructor() { this.b = []; }
  varint(n) { for (; n >= 128; n = Math.floor(n / 128)) this.b.push((n % 128) | 128); this.b.push(n); return this; }
  tag(field, wire) { return this.varint(field * 8 + wire); }
  bytes(field, bytes) { this.tag(field, 2).varint(bytes.length); for (const x of bytes) this.b.push(x); return this; }
  string(field, s) { return s ? this.bytes(field, toUtf8(s)) : this; } // proto3 leaves "" and 0 out
  uint(field, n) { return n ? this.tag(field, 0).varint(n) : this; }
  double(field, x) {
    const d = new DataView(new ArrayBuffer(8));
    d.setFloat64(0, x, true);
    this.tag(field, 1).b.push(...new Uint8Array(d.buffer));
    return this;
  }
  finish() { return Uint8Array.from(this.b); }
}

// map<string, Value>: Value is a oneof, so even "", 0 and false are sent.
function values(w, field, obj) {
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === undefined || v === null) continue;
    const value = new Writer();
    if (typeof v === "string") value.bytes(1, toUtf8(v));
    else if (typeof v === "number" && Number.isFinite(v)) value.double(2, v);
    else if (typeof v === "boolean") value.tag(3, 0).varint(+v);
    else throw new NudgeError(3, `"${k}": values must be strings, finite numbers or booleans`);
    w.bytes(field, new Writer().string(1, k).bytes(2, value.finish()).finish());
  }
}

// Calls fn(field, wireType, value) for each field, skipping any it cannot use:
// value is a Number (varint), a double (fixed64) or a Uint8Array (length-delimited).
function fields(bytes, fn) {
  let pos = 0;
  const need = (n) => { if (pos + n > bytes.length) throw new NudgeError(13, "truncated protobuf message"); };
  const varint = () => {
    for (let x = 0, mul = 1, i = 0; i < 10; i++, mul *= 128) {
      need(1);
      x += (bytes[pos] & 127) * mul;
      if (bytes[pos++] < 128) return x;
    }
    throw new NudgeError(13, "malformed varint");
  };
  while (pos < bytes.length) {
    const tag = varint(), wire = tag % 8;
    let v;
    if (wire === 0) v = varint();
    else if (wire === 1) { need(8); v = new DataView(bytes.buffer, bytes.byteOffset + pos).getFloat64(0, true); pos += 8; }
    else if (wire === 2) { const n = varint(); need(n); v = bytes.subarray(pos, (pos += n)); }
    else if (wire === 5) { need(4); pos += 4; }
    else throw new NudgeError(13, `unsupported wire type ${wire}`);
    fn(Math.floor(tag / 8), wire, v);
  }
}

// spec: { field: [name, kind] }, kind: "s" string, "v" varint, "b" bool, "d" double,
// "m" map<string, string>, or the spec of a repeated message.
function decode(bytes, spec) {
  const out = {};
  for (const [name, k] of Object.values(spec)) out[name] = k === "s" ? "" : k === "b" ? false : k === "m" ? {} : typeof k === "object" ? [] : 0;
  fields(bytes, (f, wire, v) => {
    const [name, k] = spec[f] || [];
    if (!name || wire !== (k === "d" ? 1 : k === "v" || k === "b" ? 0 : 2)) return;
    if (k === "s") out[name] = str(v);
    else if (k === "b") out[name] = v !== 0;
    else if (k === "m") { const e = decode(v, { 1: ["k", "s"], 2: ["v", "s"] }); out[name][e.k] = e.v; }
    else if (typeof k === "object") out[name].push(decode(v, k));
    else out[name] = v;
  });
  return out;
}

const SERVED = { 1: ["actionId", "s"], 2: ["channel", "s"], 3: ["category", "s"], 4: ["rank", "v"],
  5: ["score", "d"], 6: ["propensity", "d"], 11: ["payload", "m"] };
const DECISION = { 1: ["decisionId", "s"], 2: ["served", SERVED], 5: ["modelVersion", "s"], 6: ["variant", "s"],
  7: ["fallback", "b"], 8: ["fallbackReason", "v"], 9: ["serverTimeUs", "v"], 10: ["catalogVersion", "s"] };
const FALLBACK_REASONS = ["none", "model_missing", "deadline", "overloaded", "model_error"];
const OUTCOMES = { impression: 1, click: 2, conversion: 3, dismiss: 4 };

// ── grpc-web ──
const HTTP_TO_GRPC = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };
const unescape = (s) => { try { return decodeURIComponent(s || ""); } catch { return s; } };

// The response body: data frames (0x00) and a trailer frame (0x80) of "name:value\r\n" lines.
function parseBody(body) {
  let message = null, trailers = null;
  for (let pos = 0; pos < body.length;) {
    const len = pos + 5 <= body.length ? new DataView(body.buffer, body.byteOffset + pos + 1).getUint32(0) : Infinity;
    if (pos + 5 + len > body.length) throw new NudgeError(13, "truncated grpc-web frame");
    const flags = body[pos], payload = body.subarray(pos + 5, (pos += 5 + len));
    if (flags & 128) {
      trailers = {};
      for (const line of str(payload).split("\r\n")) {
        const i = line.indexOf(":");
        if (i > 0) trailers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
    } else if (flags & 1) throw new NudgeError(12, "compressed grpc-web frames are not supported");
    else message = message || payload;
  }
  return { message, trailers };
}

// The customer id: the token's `sub` (read, not verified: nudge verifies it).
function customerOf(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const sub = JSON.parse(str(Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0)))).sub;
    if (sub && typeof sub === "string") return sub;
  } catch { /* below */ }
  throw new NudgeError(16, "customerToken is not a JWT with a `sub`");
}

async function tokenOf(opts) {
  const t = typeof opts.customerToken === "function" ? await opts.customerToken() : opts.customerToken;
  if (!t) throw new NudgeError(16, "customerToken is missing");
  return String(t);
}

async function call(method, token, message, opts, keepalive = false) {
  const server = opts.server ? trim(opts.server) : settings.server, ms = settings.timeoutMs;
  if (!server) throw new NudgeError(3, "no nudge server: call nudge.configure({ server })");
  const body = new Uint8Array(5 + message.length);
  new DataView(body.buffer).setUint32(1, message.length);
  body.set(message, 5);
  const headers = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "x-user-agent": "nudge-js/1",
    "x-customer-token": token };
  if (ms > 0) headers["grpc-timeout"] = `${Math.min(Math.ceil(ms), 99999999)}m`; // at most 8 digits
  const abort = new AbortController(), timer = ms > 0 && setTimeout(() => abort.abort(), ms);
  try {
    let res;
    try {
      res = await fetch(`${server}/nudge.v1.${method}`, { method: "POST", headers, body, keepalive,
        signal: abort.signal, mode: "cors", credentials: "omit" });
    } catch (e) {
      throw abort.signal.aborted ? new NudgeError(4, `no answer from nudge within ${ms} ms`)
        : new NudgeError(14, `cannot reach nudge at ${server}: ${e.message}`);
    }
    // An error may come "trailers-only": its status in the headers, no body.
    let status = res.headers.get("grpc-status"), text = res.headers.get("grpc-message");
    if (status === null || status === "0") {
      if (res.status !== 200) throw new NudgeError(HTTP_TO_GRPC[res.status] || 2, `HTTP ${res.status} from nudge`);
      const { message: reply, trailers } = parseBody(new Uint8Array(await res.arrayBuffer()));
      if (trailers && trailers["grpc-status"] !== undefined) [status, text] = [trailers["grpc-status"], trailers["grpc-message"]];
      if (status === "0") return reply || new Uint8Array(0);
      if (status === null) throw new NudgeError(13, "grpc-web answer without a grpc-status");
    }
    throw new NudgeError(Number(status) || 2, unescape(text) || `gRPC status ${status}`);
  } catch (e) {
    throw e instanceof NudgeError ? e : new NudgeError(13, `bad answer from nudge: ${e.message}`);
  } finally {
    clearTimeout(timer);
  }
}

// ── the calls ──

/** Decide: what to show this customer in this placement now. */
export async function decide(opts = {}) {
  const token = await tokenOf(opts), customerId = customerOf(token);
  if (!opts.placement) throw new NudgeError(3, "placement is missing");
  const w = new Writer().string(1, customerId).string(2, String(opts.placement));
  values(w, 3, opts.context);
  w.uint(5, Number(opts.limit) || 0).string(8, opts.requestId ? String(opts.requestId) : "");
  const d = decode(await call("Decisions/Decide", token, w.finish(), opts), DECISION);
  d.fallbackReason = FALLBACK_REASONS[d.fallbackReason] || String(d.fallbackReason);
  return Object.assign(d, { customerId, placement: String(opts.placement) });
}

/** Track one event; `duplicate` is true if its eventId was already applied. */
export async function track(name, opts = {}) {
  const token = await tokenOf(opts);
  if (!name) throw new NudgeError(3, "the event name is missing");
  const w = new Writer().string(1, customerOf(token)).string(2, String(opts.eventId || uuid())).string(3, String(name));
  values(w, 5, opts.properties);
  return decode(await call("Events/Track", token, w.finish(), opts), { 1: ["duplicate", "b"] });
}

/** Report what happened to a served action; `applied` is false if it was already reported. */
export async function reportOutcome(opts = {}) {
  const token = await tokenOf(opts), outcome = OUTCOMES[opts.outcome];
  if (!outcome) throw new NudgeError(3, `unknown outcome "${opts.outcome}"`);
  if (!opts.decisionId || !opts.actionId) throw new NudgeError(3, "decisionId and actionId are required");
  const w = new Writer().string(1, customerOf(token)).string(2, String(opts.decisionId))
    .string(3, String(opts.actionId)).uint(4, outcome);
  if (typeof opts.reward === "number") w.double(5, opts.reward);
  // keepalive: the report survives the page navigating away (a CTA click).
  const reply = await call("Decisions/ReportOutcome", token, w.finish(), opts, opts.keepalive !== false);
  return decode(reply, { 1: ["applied", "b"], 2: ["slotReleased", "b"] });
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
  const h = Array.from(crypto.getRandomValues(new Uint8Array(16)), (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ── placements ──
const CSS = `:where(.nudge-card){position:relative;margin:0 0 12px;padding:14px 40px 14px 16px;border:1px solid #d8dee8;
border-radius:10px;background:#fff;color:#1f2937;font:14px/1.45 system-ui,sans-serif}
:where(.nudge-title){display:block;margin-bottom:4px}:where(.nudge-body){margin:0 0 10px;color:#4b5563}
:where(.nudge-cta){display:inline-block;padding:6px 12px;border-radius:6px;background:#2563eb;color:#fff;text-decoration:none}
:where(.nudge-dismiss){position:absolute;top:6px;right:8px;border:0;background:none;color:#9ca3af;font-size:18px;cursor:pointer}`;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const warn = (what, e) => console.warn(`nudge: ${what}:`, e && e.message ? e.message : e);

/** Shows a placement's decision in `element` and reports what happens to it. Never throws. */
export function placement(element, options = {}) {
  let opts = { ...options }, seq = 0, observer = null, destroyed = false;
  const handle = { decision: null, element, ready: null, refresh, destroy };
  const callback = (name, ...args) => {
    try { if (typeof opts[name] === "function") opts[name](...args); } catch (e) { warn(`${name} threw`, e); }
  };
  const setState = (s) => element.setAttribute("data-nudge-state", s);

  // Reports with the current token if it is still the decision's customer's (it may
  // have been renewed since), else with the token the decision was made with.
  function report(outcome, action, { decision, token }, card) {
    const p = tokenOf(opts).then((t) => (customerOf(t) === decision.customerId ? t : token), () => token)
      .then((customerToken) => reportOutcome({ customerToken, server: opts.server, decisionId: decision.decisionId,
        actionId: action.actionId, outcome }));
    p.then(() => {
      if (card) card.setAttribute(`data-nudge-${outcome}`, "reported");
      callback("onOutcome", outcome, action, null);
    }, (e) => { warn(`${outcome} report failed`, e); callback("onOutcome", outcome, action, e); });
    return p;
  }

  function card(action, shown) {
    const p = action.payload, c = el("div", "nudge-card");
    c.setAttribute("data-nudge-action", action.actionId);
    c.setAttribute("data-nudge-decision", shown.decision.decisionId);
    c.setAttribute("data-nudge-category", action.category);
    const x = el("button", "nudge-dismiss", "×");
    x.type = "button";
    x.setAttribute("aria-label", "Dismiss");
    x.onclick = () => {
      report("dismiss", action, shown);
      if (observer) observer.unobserve(c);
      c.remove();
      if (!element.querySelector(".nudge-card")) { element.replaceChildren(); setState("empty"); }
      callback("onDismiss", action);
    };
    c.append(x);
    if (p.title) c.append(el("strong", "nudge-title", p.title));
    if (p.body) c.append(el("p", "nudge-body", p.body));
    if (p.cta) {
      const a = el("a", "nudge-cta", p.cta);
      let href = null; // only http(s) and relative links: never javascript: & co.
      try { if (p.url && /^https?:$/.test(new URL(p.url, location.href).protocol)) a.href = href = p.url; } catch { /* no link */ }
      a.onclick = (event) => {
        const sent = report("click", action, shown, c);
        callback("onClick", action, event); // synchronously: still within the user's gesture
        const newTab = event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey;
        if (event.defaultPrevented || newTab || !href) return;
        event.preventDefault(); // follow the link once the report is out, at most ~300 ms later
        const go = () => location.assign(href);
        Promise.race([sent, new Promise((r) => setTimeout(r, 300))]).then(go, go);
      };
      c.append(a);
    }
    return c;
  }

  function watch(c, action, shown) { // one impression, once half of the card is visible
    const seen = () => report("impression", action, shown, c);
    if (typeof IntersectionObserver === "undefined") return seen();
    observer = observer || new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.isIntersecting && e.intersectionRatio >= 0.5) { observer.unobserve(e.target); e.target.nudgeSeen(); }
      }
    }, { threshold: 0.5 });
    c.nudgeSeen = seen;
    observer.observe(c);
  }

  async function refresh(changes) {
    if (changes) opts = { ...opts, ...changes };
    const mine = ++seq;
    try {
      if (!element || !element.setAttribute) throw new NudgeError(3, "placement() needs an element");
      if (destroyed) return handle.decision;
      if (!document.getElementById("nudge-style")) {
        const style = el("style", "", CSS);
        style.id = "nudge-style";
        document.head.prepend(style); // first, so that the page's own rules win
      }
      setState("loading");
      const token = await tokenOf(opts), decision = await decide({ ...opts, customerToken: token });
      if (mine !== seq || destroyed) return decision; // a newer refresh renders
      handle.decision = decision;
      if (observer) observer.disconnect();
      const shown = { decision, token }, actions = decision.fallback ? [] : decision.served;
      const cards = actions.map((a) => card(a, shown));
      element.replaceChildren(...cards);
      setState(cards.length ? "rendered" : "empty");
      cards.forEach((c, i) => watch(c, actions[i], shown));
      callback("onRender", decision);
      return decision;
    } catch (e) {
      if (mine === seq && element && element.setAttribute) {
        if (observer) observer.disconnect();
        element.replaceChildren();
        setState("failed");
      }
      warn(`placement ${opts.placement} failed`, e);
      return null;
    }
  }

  function destroy() {
    destroyed = true;
    seq++;
    if (observer) observer.disconnect();
    if (element && element.replaceChildren) element.replaceChildren();
  }

  handle.ready = refresh();
  return handle;
}

/** Internal, for tests only: the wire coding. Not a stable API. */
export const _wire = { Writer, values, fields, decode, DECISION, parseBody, customerOf };
