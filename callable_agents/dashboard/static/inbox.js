// The inbox, live: server-sent events from /dashboard/conversations/events replace or add
// server-rendered rows and messages by id (a row or message sent again replaces itself, so
// nothing shows twice). On a dropped stream it reconnects from the last event's id.
(function () {
  "use strict";
  var list = document.getElementById("inbox-list");
  var messages = document.getElementById("messages");
  var host = list || messages;
  if (!host || !window.EventSource) return;
  var base = host.getAttribute("data-events");
  var state = document.getElementById("live-state");
  var lastId = null;
  var source = null;
  var retryTimer = null;

  function fragment(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    return holder.content.firstElementChild;
  }
  function activate(node) {
    if (window.htmx && node) window.htmx.process(node);
  }
  function placeRow(data) {
    var node = fragment(data.html);
    var existing = document.getElementById("conv-" + data.id);
    var liveInsert = list.getAttribute("data-live-insert") === "true";
    var reason = node.querySelector(".inbox-reason");
    if (state && reason && node.classList.contains("inbox-human") && !(existing && existing.classList.contains("inbox-human"))) {
      var who = node.querySelector(".inbox-who");
      state.textContent = (who ? who.textContent.trim() + " — " : "") + reason.textContent.trim();
    }
    if (existing) existing.remove();
    else if (!liveInsert) return;
    var sort = parseFloat(node.getAttribute("data-sort")) || 0;
    var before = null;
    for (var child = list.firstElementChild; child; child = child.nextElementSibling) {
      if ((parseFloat(child.getAttribute("data-sort")) || 0) <= sort) { before = child; break; }
    }
    list.insertBefore(node, before);
    var empty = document.getElementById("inbox-empty");
    if (empty) empty.hidden = true;
  }
  function placeMessage(data) {
    var node = fragment(data.html);
    var existing = document.getElementById("msg-" + data.id);
    if (existing) { existing.replaceWith(node); activate(node); return; }
    var before = null;
    for (var child = messages.firstElementChild; child; child = child.nextElementSibling) {
      if (parseInt(child.getAttribute("data-id"), 10) > data.id) { before = child; break; }
    }
    messages.insertBefore(node, before);
    activate(node);
    var typing = document.getElementById("typing");
    if (typing && data.html.indexOf("author-agent") !== -1) { typing.hidden = true; typing.textContent = ""; }
  }
  function placeHeader(data) {
    var existing = document.getElementById("conversation-header");
    if (existing) existing.replaceWith(fragment(data.html));
    if (messages && messages.getAttribute("data-status") !== data.status) {
      messages.setAttribute("data-status", data.status);
    }
  }
  function on(name, handler) {
    source.addEventListener(name, function (event) {
      if (event.lastEventId) lastId = event.lastEventId;
      handler(JSON.parse(event.data));
    });
  }
  function connect() {
    var url = base;
    if (lastId) url = url.replace(/([?&])since=[^&]*/, "$1since=" + encodeURIComponent(lastId));
    source = new EventSource(url);
    host.setAttribute("data-live", "connecting");
    source.onopen = function () {
      host.setAttribute("data-live", "open");
      if (state && list) state.textContent = "Live: new conversations and messages appear here as they come.";
      else if (state) state.textContent = "";
    };
    source.onerror = function () {
      host.setAttribute("data-live", "reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        if (state) state.textContent = "Connection lost; reconnecting…";
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, 1000);
      }
    };
    if (list) {
      on("row", placeRow);
      on("remove", function (data) {
        var gone = document.getElementById("conv-" + data.id);
        if (gone) gone.remove();
      });
    }
    if (messages) {
      on("message", placeMessage);
      on("header", placeHeader);
      source.addEventListener("token", function (event) {
        var typing = document.getElementById("typing");
        if (!typing) return;
        typing.hidden = false;
        typing.textContent = (typing.textContent || "Agent is writing: ") + JSON.parse(event.data).text;
      });
    }
  }
  // Tests and the page itself can drop the stream; it comes back from the last event.
  window.callableInbox = {
    drop: function (pauseMs) {
      if (source) source.close();
      host.setAttribute("data-live", "dropped");
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, pauseMs || 0);
    },
    lastEventId: function () { return lastId; }
  };
  connect();
})();
