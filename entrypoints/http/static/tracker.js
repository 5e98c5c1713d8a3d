/* sessionmeter tracker: one metered session per page view, kept alive while the page is
 * visible, ended by a beacon when the page goes. See the README's "Tracker" section. */
(function () {
  "use strict";

  var REQUIRED = ["endpoint", "key", "kind", "resourceId"];
  // The server's default idle timeout, for a server whose start answer does not say.
  var DEFAULT_IDLE_TIMEOUT_SECONDS = 300;
  var START_ATTEMPTS = 8;
  var MAX_BACKOFF_MS = 30000;

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // Pages served over plain http (not localhost) have no randomUUID: a version 4 UUID by hand.
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); });
    return [0, 4, 6, 8, 10].map(function (at, i, all) {
      return hex.slice(at, all[i + 1] || 16).join("");
    }).join("-");
  }

  function wait(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function Tracker(options) {
    this.options = options;
    this.base = options.endpoint.replace(/\/+$/, "") + "/v1/sessions";
    // Anonymous visitors are told apart by a key that lives as long as the page: no cookie and
    // no storage, so a visitor is not followed from one page view to the next.
    this.clientKey = options.subjectId ? null : uuid();
    this.session = null;
    this.timer = null;
  }

  Tracker.prototype.post = function (url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": this.options.key },
      body: JSON.stringify(body),
      credentials: "omit",
    });
  };

  // A start is idempotent by its id, so it is retried with the same id on network errors, 429
  // and 5xx, backing off; any other refusal is the page's to fix, and is logged once.
  Tracker.prototype.begin = async function () {
    var o = this.options;
    var body = { id: uuid(), kind: o.kind, resource_id: o.resourceId, attributes: o.attributes || {} };
    if (o.subjectId) body.subject_id = o.subjectId;
    else body.client_key = this.clientKey;
    var session = { id: body.id, idleSeconds: DEFAULT_IDLE_TIMEOUT_SECONDS, started: false };
    this.session = session;
    for (var attempt = 0; attempt < START_ATTEMPTS; attempt++) {
      if (attempt > 0) await wait(Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempt - 1)));
      // The page went (its exit is sent) or began anew meanwhile: a retry now would open a
      // session nobody keeps alive or ends.
      if (this.session !== session) return;
      var answer;
      try {
        answer = await this.post(this.base, body);
      } catch (networkError) {
        continue;
      }
      if (answer.status === 429 || answer.status >= 500) continue;
      if (!answer.ok) {
        console.error("sessionmeter: the session was not started:", answer.status, await answer.text());
        if (this.session === session) this.session = null; // nothing to end when the page goes
        return;
      }
      var started = await answer.json();
      if (!this.session || this.session.id !== started.id) return; // the page went meanwhile
      this.session.idleSeconds = started.idle_timeout_seconds || DEFAULT_IDLE_TIMEOUT_SECONDS;
      this.session.started = true;
      this.keepAlive();
      return;
    }
    console.error("sessionmeter: the session was not started: the endpoint did not answer");
  };

  Tracker.prototype.keepAlive = function () {
    clearInterval(this.timer);
    this.timer = null;
    if (!this.session || !this.session.started || document.visibilityState !== "visible") return;
    var self = this;
    this.timer = setInterval(function () { self.heartbeat(); }, (this.session.idleSeconds * 1000) / 3);
  };

  Tracker.prototype.heartbeat = async function () {
    var session = this.session;
    var answer;
    try {
      answer = await this.post(this.base + "/" + encodeURIComponent(session.id) + "/heartbeat", {});
    } catch (networkError) {
      return; // the next beat tries again
    }
    // Ended meanwhile (the tab slept past the idle timeout and the reaper closed it): the visit
    // goes on as a new session.
    if ((answer.status === 409 || answer.status === 404) && this.session === session) {
      clearInterval(this.timer);
      this.begin();
    }
  };

  Tracker.prototype.end = function () {
    clearInterval(this.timer);
    this.timer = null;
    if (!this.session) return;
    var url = this.base + "/" + encodeURIComponent(this.session.id) + "/exit?key=" +
      encodeURIComponent(this.options.key);
    this.session = null;
    // A beacon outlives the page, sets no header (hence the key in the URL) and sends a string
    // as text/plain, which the exit reads as JSON.
    navigator.sendBeacon(url, JSON.stringify({ status: "completed" }));
  };

  function start(options) {
    var missing = REQUIRED.filter(function (name) { return !options || !options[name]; });
    if (missing.length) {
      console.error("sessionmeter.start: missing option " + missing.join(", ") +
        " (needs endpoint, key, kind and resourceId)");
      return;
    }
    var tracker = new Tracker(options);
    document.addEventListener("visibilitychange", function () {
      var started = tracker.session && tracker.session.started;
      if (started && document.visibilityState === "visible") tracker.heartbeat();
      tracker.keepAlive();
    });
    addEventListener("pagehide", function () { tracker.end(); });
    // Restored from the back/forward cache: the page was left (and its session ended); this is
    // a new visit.
    addEventListener("pageshow", function (event) {
      if (event.persisted) tracker.begin();
    });
    tracker.begin();
  }

  window.sessionmeter = { start: start };
})();
