/* Lead Cockpit tracking snippet: <script src="https://cockpit.example.com/static/js/track.js" data-key="lc_…" defer></script>
 * Records page views (with referrer and UTM fields), downloads and marked link clicks, site searches, and identifies
 * the visitor when a form with an email is sent. Nothing is recorded before consent: the cookie named in
 * data-consent-cookie (default cockpit_consent) is "yes", or data-consent="granted"; a "cockpit:consent" event on
 * window records the page once consent is given. No inline code, no eval: it runs under a strict CSP. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch) { return; }
  var key = script.getAttribute("data-key");
  var endpoint = script.getAttribute("data-endpoint") || new URL("/api/v1/events", script.src).href;
  var consentCookie = script.getAttribute("data-consent-cookie") || "cockpit_consent";
  var viewed = false;

  function consented() {
    if (script.getAttribute("data-consent") === "granted") { return true; }
    return document.cookie.split("; ").indexOf(consentCookie + "=yes") !== -1;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 15) | 64; bytes[8] = (bytes[8] & 63) | 128;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function visitorId() {
    var id = null;
    try { id = localStorage.getItem("cockpit_vid"); } catch (e) { /* storage blocked: one id per page */ }
    if (!id) {
      id = uuid();
      try { localStorage.setItem("cockpit_vid", id); } catch (e) { /* see above */ }
    }
    return id;
  }

  function send(type, extra) {
    if (!key || !consented()) { return; }
    var body = {
      event_id: uuid(),
      type: type,
      occurred_at: new Date().toISOString(),
      url: location.href.slice(0, 2048),
      referrer: (document.referrer || "").slice(0, 2048),
      title: (document.title || "").slice(0, 300),
      visitor_id: visitorId()
    };
    var params = new URLSearchParams(location.search);
    ["utm_source", "utm_medium", "utm_campaign"].forEach(function (name) {
      if (params.get(name)) { body[name] = params.get(name).slice(0, 100); }
    });
    Object.keys(extra || {}).forEach(function (name) { body[name] = extra[name]; });
    fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Api-Key": key },
      body: JSON.stringify(body),
      keepalive: true,
      credentials: "omit"
    }).catch(function () { /* tracking never breaks the page */ });
  }

  function pageView() {
    if (viewed || !consented()) { return; }
    viewed = true;
    send("page_view");
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link) { return; }
    if (link.hasAttribute("data-cockpit-download") || /\.(pdf|zip|docx?|xlsx?|pptx?)$/i.test(link.pathname)) {
      send("content_download", { url: link.href.slice(0, 2048) });
    } else if (link.hasAttribute("data-cockpit-track")) {
      send("link_click", { url: link.href.slice(0, 2048) });
    }
  }, true);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var search = form.querySelector("input[type=search]");
    var email = form.querySelector("input[type=email]");
    if (search && search.value) { send("site_search", { search_terms: search.value.slice(0, 200) }); }
    if (email && email.value && email.value.indexOf("@") > 0) {
      send("form_submit", { email: email.value.trim().slice(0, 254) });
    }
  }, true);

  window.addEventListener("cockpit:consent", pageView);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", pageView); } else { pageView(); }
}());
