/*! Callable Agents chat widget. Plain JavaScript, no dependencies. Apache-2.0.
 *
 * Embed:   <script src="https://HOST/widget.js" data-channel="CHANNEL_ID" async></script>
 * Options: data-api="https://HOST"  the chat API (default: the origin this script came from)
 *          data-kind="page" data-mount="#el"  full-size chat inside #el (the public chat page)
 *
 * Everything renders inside a shadow root, so the site's CSS and ours never meet.
 * Text from the model, the knowledge base and people is never parsed as HTML: the DOM is
 * built with createElement/textContent from a small Markdown subset (paragraphs, lists,
 * **bold**, *italic*, `code`, links), and links are kept only for http(s) and mailto URLs.
 */
(function () {
  "use strict";

  var TEXT = {
    open: "Open chat",
    close: "Close chat",
    send: "Send",
    placeholder: "Type your message…",
    inputLabel: "Your message",
    log: "Conversation",
    you: "You",
    assistant: "Assistant",
    person: "Team member",
    team: "team",
    handedOff: "A person will reply here shortly.",
    back: "The assistant is back and will answer your next message.",
    typing: "The assistant is typing…",
    sources: "Sources",
    notSent: "Not sent. ",
    retry: "Retry",
    tooLong: "Your message is too long (at most {n} characters).",
    slowDown: "You're sending messages quickly. Please wait {n} seconds and try again.",
    failed: "Something went wrong sending your message. Please try again.",
    unavailable: "The chat is unavailable right now.",
    newMessage: "new message",
    attachment: "Attachment",
    image: "Image"
  };
  var STORAGE_PREFIX = "callable-chat:";
  var SAFE_PROTOCOLS = { "http:": true, "https:": true, "mailto:": true };
  var COLOR = /^#[0-9a-fA-F]{6}$/;

  // ------------------------------------------------------------------ safe rendering

  /** The URL to put in href, or null: absolute http(s)/mailto only (never javascript:, data:). */
  function safeHref(raw) {
    if (typeof raw !== "string") return null;
    var value = raw.trim();
    if (!/^(https?:\/\/|mailto:)/i.test(value)) return null;
    var url;
    try { url = new URL(value); } catch (e) { return null; }
    return SAFE_PROTOCOLS[url.protocol] ? url.href : null;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function link(href, label) {
    var a = el("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    if (label != null) a.textContent = label;
    return a;
  }

  var INLINE_RULES = [
    { kind: "code", re: /`([^`\n]+)`/y },
    { kind: "strong", re: /\*\*(?=\S)([^\n]*?\S)\*\*/y },
    { kind: "strong", re: /__(?=[^\s_])([^\n]*?[^\s_])__(?![A-Za-z0-9_])/y, notAfter: /[A-Za-z0-9_]/ },
    { kind: "em", re: /\*(?=[^\s*])([^\n*]*?[^\s*]|[^\s*])\*(?!\*)/y, notAfter: /\*/ },
    { kind: "em", re: /_(?=[^\s_])([^\n_]*?[^\s_]|[^\s_])_(?![A-Za-z0-9_])/y, notAfter: /[A-Za-z0-9_]/ },
    { kind: "link", re: /\[((?:[^\[\]\n\\]|\\.)+)\]\(\s*<?([^\s<>()]*(?:\([^\s<>()]*\)[^\s<>()]*)*)>?(?:\s+"[^"\n]*")?\s*\)/y },
    { kind: "auto", re: /<((?:https?:\/\/|mailto:)[^\s<>]+)>/y },
    { kind: "url", re: /https?:\/\/[^\s<>]+/y, notAfter: /[A-Za-z0-9]/ }
  ];
  var INLINE_STARTS = "`*_[<h\\";
  var ESCAPABLE = /[\\`*_\[\]()<>#+\-.!~|{}]/;

  /** Append the inline Markdown of `text` to `parent`, as text nodes and safe elements. */
  function renderInline(text, parent, insideLink) {
    var plain = "";
    var pos = 0;
    function flush() {
      if (plain) { parent.appendChild(document.createTextNode(plain)); plain = ""; }
    }
    while (pos < text.length) {
      var ch = text.charAt(pos);
      if (INLINE_STARTS.indexOf(ch) < 0) { plain += ch; pos++; continue; }
      if (ch === "\\" && ESCAPABLE.test(text.charAt(pos + 1))) { plain += text.charAt(pos + 1); pos += 2; continue; }
      var done = false;
      var before = pos > 0 ? text.charAt(pos - 1) : "";
      for (var i = 0; i < INLINE_RULES.length && !done; i++) {
        var rule = INLINE_RULES[i];
        if (insideLink && (rule.kind === "link" || rule.kind === "auto" || rule.kind === "url")) continue;
        if (rule.notAfter && rule.notAfter.test(before)) continue; // e.g. no _emphasis_ inside snake_case
        rule.re.lastIndex = pos;
        var m = rule.re.exec(text);
        if (!m) continue;
        done = true;
        var end = rule.re.lastIndex;
        var node = null;
        if (rule.kind === "code") {
          node = el("code", null, m[1]);
        } else if (rule.kind === "strong" || rule.kind === "em") {
          node = el(rule.kind);
          renderInline(m[1], node, insideLink);
        } else if (rule.kind === "link") {
          var href = safeHref(m[2]);
          if (href) {
            node = link(href);
            renderInline(m[1], node, true);
          } else {
            plain += m[0]; // an unsafe or relative target: show it as the text it is
          }
        } else {
          var raw = rule.kind === "auto" ? m[1] : m[0].replace(/[.,;:!?'")\]*_~]+$/, "");
          if (rule.kind === "url") end = pos + raw.length;
          var target = safeHref(raw);
          if (target) node = link(target, raw);
          else plain += rule.kind === "auto" ? m[0] : raw;
        }
        if (node) { flush(); parent.appendChild(node); }
        pos = end;
      }
      if (!done) { plain += ch; pos++; }
    }
    flush();
  }

  var LIST_ITEM = /^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;
  var FENCE = /^\s{0,3}(```|~~~)/;

  /** Render a Markdown subset as DOM: paragraphs, lists, code blocks, quotes, headings as bold. */
  function renderMarkdown(text, parent) {
    var lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
    var i = 0;
    while (i < lines.length) {
      var line = lines[i];
      if (!line.trim()) { i++; continue; }
      var fence = FENCE.exec(line);
      if (fence) {
        var code = [];
        i++;
        while (i < lines.length && lines[i].trim().indexOf(fence[1]) !== 0) { code.push(lines[i]); i++; }
        i++;
        var pre = el("pre");
        pre.appendChild(el("code", null, code.join("\n")));
        parent.appendChild(pre);
        continue;
      }
      var item = LIST_ITEM.exec(line);
      if (item) {
        var ordered = /\d/.test(item[1]);
        var list = el(ordered ? "ol" : "ul");
        var current = null;
        while (i < lines.length && lines[i].trim()) {
          var next = LIST_ITEM.exec(lines[i]);
          if (next && /\d/.test(next[1]) === ordered) {
            current = el("li");
            renderInline(next[2], current, false);
            list.appendChild(current);
          } else if (next || !current || FENCE.test(lines[i])) {
            break;
          } else {
            current.appendChild(el("br"));
            renderInline(lines[i].trim(), current, false);
          }
          i++;
        }
        parent.appendChild(list);
        continue;
      }
      var heading = /^\s{0,3}#{1,6}\s+(.*)$/.exec(line);
      if (heading) {
        var strong = el("strong");
        renderInline(heading[1], strong, false);
        var p = el("p");
        p.appendChild(strong);
        parent.appendChild(p);
        i++;
        continue;
      }
      var quoted = /^\s{0,3}>/.test(line);
      var block = el(quoted ? "blockquote" : "p");
      var first = true;
      while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !LIST_ITEM.test(lines[i]) &&
             /^\s{0,3}>/.test(lines[i]) === quoted) {
        if (!first) block.appendChild(el("br"));
        renderInline(quoted ? lines[i].replace(/^\s{0,3}>\s?/, "") : lines[i], block, false);
        first = false;
        i++;
      }
      parent.appendChild(block);
    }
  }

  // ------------------------------------------------------------------ small helpers

  var memoryStore = {};
  function storageGet(storage, key) {
    try { return window[storage].getItem(key); } catch (e) { return memoryStore[storage + key] || null; }
  }
  function storageSet(storage, key, value) {
    try {
      if (value == null) window[storage].removeItem(key); else window[storage].setItem(key, value);
    } catch (e) {
      if (value == null) delete memoryStore[storage + key]; else memoryStore[storage + key] = value;
    }
  }

  function textOn(hex) {
    var n = parseInt(hex.slice(1), 16);
    var channel = function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    var luminance = 0.2126 * channel((n >> 16) & 255) + 0.7152 * channel((n >> 8) & 255) + 0.0722 * channel(n & 255);
    return luminance > 0.35 ? "#111111" : "#ffffff";
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function delay(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  var STYLE = [
    ":host{all:initial}",
    ".root{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328;--accent:#2563eb;--on-accent:#fff}",
    ".root *{box-sizing:border-box}",
    ".launcher{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;border:0;background:var(--accent);color:var(--on-accent);box-shadow:0 4px 14px rgba(0,0,0,.25);cursor:pointer;display:flex;align-items:center;justify-content:center;padding:0}",
    ".launcher svg{width:26px;height:26px;fill:currentColor}",
    ".launcher .dot{position:absolute;top:6px;right:6px;width:12px;height:12px;border-radius:50%;background:#d92d20;border:2px solid #fff}",
    ".left .launcher{right:auto;left:20px}",
    ".panel{position:fixed;bottom:88px;right:20px;z-index:2147483000;width:370px;max-width:calc(100vw - 24px);height:560px;max-height:calc(100vh - 108px);display:flex;flex-direction:column;background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}",
    ".left .panel{right:auto;left:20px}",
    "[hidden]{display:none!important}",
    "@media (max-width:480px){.root:not(.inline) .panel{top:0;left:0;right:0;bottom:0;width:auto;height:auto;max-width:none;max-height:none;border-radius:0}}",
    ".inline{height:100%}",
    ".inline .panel{position:relative;bottom:auto;right:auto;left:auto;z-index:auto;width:100%;height:100%;max-width:none;max-height:none;border-radius:0;box-shadow:none}",
    ".head{background:var(--accent);color:var(--on-accent);padding:10px 8px 10px 14px;display:flex;align-items:center;gap:8px;min-height:52px}",
    ".head h2{font-size:16px;line-height:1.3;margin:0;flex:1;font-weight:600;overflow-wrap:anywhere}",
    ".close{background:transparent;border:0;color:inherit;font-size:24px;line-height:1;width:40px;height:40px;border-radius:8px;cursor:pointer}",
    ".notice{margin:0;padding:8px 14px;font-size:14px;background:#fff4d6;color:#4d3800;border-bottom:1px solid #ecd9a0}",
    ".log{padding:12px;flex:1;overflow-y:auto;background:#f5f6f8}",
    ".messages{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:10px}",
    ".msg{max-width:85%;display:flex;flex-direction:column;align-items:flex-start}",
    ".bubble{padding:8px 12px;border-radius:14px;background:#fff;border:1px solid #dfe3e8;overflow-wrap:anywhere;white-space:normal;max-width:100%}",
    ".msg.customer{align-self:flex-end;align-items:flex-end}",
    ".msg.customer .bubble{background:var(--accent);color:var(--on-accent);border-color:transparent}",
    ".msg.human .bubble{background:#fff8eb;border-color:#d9a441}",
    ".msg.system{align-self:center;max-width:95%;align-items:center}",
    ".msg.system .bubble{background:transparent;border:0;color:#4b5563;font-size:13px;text-align:center;padding:2px 8px}",
    ".msg.failed .bubble{opacity:.7}",
    ".streaming .bubble{white-space:pre-wrap}",
    ".label{font-size:12px;color:#4b5563;margin:0 6px 2px}",
    ".bubble p,.bubble blockquote{margin:0 0 6px}.bubble>:last-child{margin-bottom:0}",
    ".bubble blockquote{border-left:3px solid #c9ced6;padding-left:8px;color:#374151}",
    ".bubble ul,.bubble ol{margin:4px 0 6px;padding-left:20px}",
    ".bubble code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;background:rgba(0,0,0,.06);padding:0 3px;border-radius:4px}",
    ".bubble pre{white-space:pre-wrap;background:rgba(0,0,0,.06);padding:6px 8px;border-radius:6px;margin:4px 0}",
    ".bubble pre code{background:none;padding:0}",
    ".bubble a{color:inherit;text-decoration:underline}",
    ".bubble img{max-width:100%;border-radius:8px;display:block}",
    ".sources{font-size:12px;margin:4px 6px 0;padding:0;list-style:none;color:#4b5563}",
    ".sources a{color:#0b57d0}",
    ".choices{display:flex;flex-wrap:wrap;gap:6px;margin:6px 6px 0;padding:0;list-style:none}",
    ".choices button{font:inherit;font-size:14px;padding:6px 12px;border-radius:16px;border:1px solid #0b57d0;background:#fff;color:#0b57d0;cursor:pointer;min-height:32px}",
    ".choices button:hover,.choices button:focus-visible{background:#0b57d0;color:#fff;outline:2px solid #0b57d0;outline-offset:2px}",
    ".state{font-size:12px;color:#b42318;margin:2px 6px 0}",
    ".state button{font:inherit;color:#0b57d0;background:none;border:0;padding:0;text-decoration:underline;cursor:pointer}",
    ".typing .bubble{color:#4b5563}",
    ".composer{display:flex;gap:8px;padding:10px;border-top:1px solid #dfe3e8;background:#fff;margin:0}",
    ".composer textarea{flex:1;resize:none;font:inherit;padding:9px 10px;border:1px solid #b8bfc9;border-radius:8px;min-height:42px;max-height:120px;color:#1f2328;background:#fff}",
    ".send{border:0;border-radius:8px;background:var(--accent);color:var(--on-accent);padding:0 16px;font:inherit;font-weight:600;cursor:pointer;min-height:42px;min-width:44px}",
    ".error{margin:0;padding:6px 12px;font-size:13px;color:#b42318;background:#fff;border-top:1px solid #f3c5c0}",
    "button:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid #111;outline-offset:2px;box-shadow:0 0 0 5px #fff}",
    ".sr-only{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}"
  ].join("\n");

  var ICON = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z";

  // ------------------------------------------------------------------ the chat

  function Chat(script) {
    var kind = script.getAttribute("data-kind") === "page" ? "page" : "widget";
    var channel = script.getAttribute("data-channel") || "";
    var api = script.getAttribute("data-api") || new URL(script.src, location.href).origin;
    this.channel = channel;
    this.base = api.replace(/\/+$/, "") + "/channels/" + kind + "/" + encodeURIComponent(channel);
    this.storageKey = STORAGE_PREFIX + kind + ":" + channel;
    var mountSelector = script.getAttribute("data-mount");
    this.mount = mountSelector ? document.querySelector(mountSelector) : null;
    this.inline = !!this.mount;
    this.token = storageGet("localStorage", this.storageKey);
    this.lastId = 0;
    this.rendered = {};
    this.pending = [];
    this.streaming = null;
    this.status = "bot";
    this.maxChars = 2000;
    this.opened = false;
    this.eventsRunning = false;
    this.typingTimer = null;
  }

  Chat.prototype.start = function () {
    this.build();
    var self = this;
    this.startSession().then(function (ok) {
      if (!ok) return;
      self.root.hidden = false;
      if (self.inline || storageGet("sessionStorage", self.storageKey + ":open")) self.open(!self.inline);
    });
  };

  Chat.prototype.build = function () {
    var host = el("div");
    host.setAttribute("data-callable-chat", this.channel);
    if (this.inline) {
      this.mount.textContent = "";
      host.style.height = "100%";
      this.mount.appendChild(host);
    } else {
      document.body.appendChild(host);
    }
    var shadow = host.attachShadow({ mode: "open" });
    shadow.appendChild(el("style", null, STYLE));
    var root = this.root = el("div", "root" + (this.inline ? " inline" : ""));
    root.hidden = true;

    var panel = this.panel = el("section", "panel");
    panel.id = "panel";
    panel.setAttribute("role", this.inline ? "region" : "dialog");
    if (!this.inline) panel.setAttribute("aria-modal", "false");
    panel.setAttribute("aria-labelledby", "chat-title");
    var head = el("div", this.inline ? "head sr-only" : "head"); // the page shows the name already
    this.title = el("h2", null, "");
    this.title.id = "chat-title";
    head.appendChild(this.title);
    if (!this.inline) {
      var closeButton = el("button", "close", "\u00d7");
      closeButton.type = "button";
      closeButton.setAttribute("aria-label", TEXT.close);
      closeButton.addEventListener("click", this.close.bind(this));
      head.appendChild(closeButton);
    }
    panel.appendChild(head);
    this.notice = el("p", "notice");
    this.notice.setAttribute("role", "status");
    this.notice.hidden = true;
    panel.appendChild(this.notice);
    // role=log sits on a wrapping div: on the <ol> itself it would take the list's role away
    // and leave its <li> as invalid list items.
    this.logRegion = el("div", "log");
    this.logRegion.setAttribute("role", "log");
    this.logRegion.setAttribute("aria-live", "polite");
    this.logRegion.setAttribute("aria-label", TEXT.log);
    this.logRegion.tabIndex = 0;
    this.log = el("ol", "messages");
    this.logRegion.appendChild(this.log);
    panel.appendChild(this.logRegion);
    this.error = el("p", "error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    panel.appendChild(this.error);

    var form = el("form", "composer");
    var label = el("label", "sr-only", TEXT.inputLabel);
    label.htmlFor = "chat-input";
    this.input = el("textarea");
    this.input.id = "chat-input";
    this.input.rows = 1;
    this.input.placeholder = TEXT.placeholder;
    this.input.setAttribute("enterkeyhint", "send");
    var sendButton = el("button", "send", TEXT.send);
    sendButton.type = "submit";
    form.appendChild(label);
    form.appendChild(this.input);
    form.appendChild(sendButton);
    panel.appendChild(form);

    var self = this;
    form.addEventListener("submit", function (event) { event.preventDefault(); self.submit(); });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); self.submit(); }
    });
    this.input.addEventListener("input", function () {
      self.input.style.height = "auto";
      self.input.style.height = Math.min(self.input.scrollHeight + 2, 120) + "px";
    });
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !self.inline) { event.preventDefault(); self.close(); }
    });

    if (!this.inline) {
      var launcher = this.launcher = el("button", "launcher");
      launcher.type = "button";
      launcher.setAttribute("aria-expanded", "false");
      launcher.setAttribute("aria-controls", "panel");
      launcher.setAttribute("aria-label", TEXT.open);
      var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 24 24");
      svg.setAttribute("aria-hidden", "true");
      svg.setAttribute("focusable", "false");
      var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", ICON);
      svg.appendChild(path);
      launcher.appendChild(svg);
      launcher.addEventListener("click", function () { if (self.opened) self.close(); else self.open(true); });
      root.appendChild(launcher);
      panel.hidden = true;
    }
    root.appendChild(panel);
    shadow.appendChild(root);
  };

  Chat.prototype.request = function (method, path, body) {
    var headers = { "Accept": "application/json" };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(this.base + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit"
    });
  };

  Chat.prototype.startSession = function () {
    var self = this;
    return this.request("POST", "/sessions", { token: this.token || null }).then(function (res) {
      if (!res.ok) throw new Error("session refused: " + res.status);
      return res.json();
    }).then(function (session) {
      self.token = session.token;
      storageSet("localStorage", self.storageKey, session.token);
      self.maxChars = session.max_message_chars || self.maxChars;
      self.input.maxLength = self.maxChars;
      self.applyLook(session);
      return true;
    }).catch(function (error) {
      if (window.console) console.warn("Callable chat: not available here (" + error.message + ")");
      return false;
    });
  };

  Chat.prototype.applyLook = function (session) {
    var look = session.appearance || {};
    var color = COLOR.test(look.color || "") ? look.color : "#2563eb";
    this.root.style.setProperty("--accent", color);
    this.root.style.setProperty("--on-accent", textOn(color));
    if (look.position === "bottom-left") this.root.classList.add("left");
    var title = String(session.title || look.title || "Chat");
    this.title.textContent = title;
    if (this.launcher) this.launcher.setAttribute("aria-label", TEXT.open + ": " + title);
    this.greeting = String(session.greeting || look.greeting || "");
  };

  Chat.prototype.open = function (focus) {
    if (this.opened) return;
    this.opened = true;
    this.panel.hidden = false;
    if (this.launcher) {
      this.launcher.setAttribute("aria-expanded", "true");
      this.setUnread(false);
      storageSet("sessionStorage", this.storageKey + ":open", "1");
    }
    if (!this.loaded) {
      this.loaded = true;
      this.loadHistory();
    }
    if (focus !== false) this.input.focus();
  };

  Chat.prototype.close = function () {
    if (this.inline || !this.opened) return;
    this.opened = false;
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    storageSet("sessionStorage", this.storageKey + ":open", null);
    this.launcher.focus();
  };

  Chat.prototype.setUnread = function (unread) {
    if (!this.launcher) return;
    var dot = this.launcher.querySelector(".dot");
    if (unread && !dot) this.launcher.appendChild(el("span", "dot"));
    if (!unread && dot) dot.remove();
    this.launcher.setAttribute("aria-label", TEXT.open + ": " + this.title.textContent + (unread ? " (" + TEXT.newMessage + ")" : ""));
  };

  Chat.prototype.loadHistory = function () {
    var self = this;
    if (this.greeting) this.log.appendChild(this.bubble("agent", this.greeting, null));
    this.request("GET", "/messages").then(function (res) {
      if (res.status === 401 || res.status === 403) return self.renew().then(function () { return { messages: [], status: "bot" }; });
      if (!res.ok) throw new Error("history: " + res.status);
      return res.json();
    }).then(function (data) {
      (data.messages || []).forEach(function (message) { self.addMessage(message); });
      self.setStatus(data.status || "bot", true);
      self.scrollDown();
    }).catch(function () { self.showError(TEXT.unavailable); }).then(function () { self.listen(); });
  };

  Chat.prototype.renew = function () {
    this.token = null;
    storageSet("localStorage", this.storageKey, null);
    return this.startSession();
  };

  // ---------------------------------------------------------------- messages

  Chat.prototype.bubble = function (author, text, message) {
    var item = el("li", "msg " + author);
    var name = message && message.author_name ? String(message.author_name) : "";
    var who = author === "customer" ? TEXT.you : author === "human" ? (name ? name + " (" + TEXT.team + ")" : TEXT.person) : TEXT.assistant;
    if (author === "human") item.appendChild(el("span", "label", who));
    var bubble = el("div", "bubble");
    if (author !== "human" && author !== "system") bubble.appendChild(el("span", "sr-only", who + ": "));
    var choices = message && message.choices && message.choices.options && message.choices.options.length ? message.choices : null;
    // Offered choices: the question as text, the choices as buttons (not the numbered text).
    renderMarkdown(choices && choices.text ? choices.text : text, bubble);
    item.appendChild(bubble);
    if (message) {
      this.addMedia(bubble, message.media || []);
      this.addSources(item, bubble, message.citations || []);
      if (choices) this.addChoices(item, choices);
    }
    return item;
  };

  Chat.prototype.addChoices = function (item, choices) {
    var self = this;
    var list = el("ul", "choices");
    list.setAttribute("aria-label", choices.text || "Choices");
    choices.options.forEach(function (option) {
      var li = el("li");
      var button = el("button", null, String(option.title));
      button.type = "button";
      button.addEventListener("click", function () {
        self.input.value = String(option.title);
        self.submit();
      });
      li.appendChild(button);
      list.appendChild(li);
    });
    item.appendChild(list);
  };

  Chat.prototype.addMedia = function (bubble, media) {
    media.forEach(function (item) {
      var href = safeHref(item && item.url);
      if (!href || /^mailto:/i.test(href)) return;
      var a = link(href, null);
      if (/^image\//.test(item.content_type || "")) {
        var img = el("img");
        img.src = href;
        img.alt = TEXT.image;
        img.loading = "lazy";
        img.referrerPolicy = "no-referrer";
        a.appendChild(img);
      } else {
        a.textContent = TEXT.attachment + (item.content_type ? " (" + item.content_type + ")" : "");
      }
      var p = el("p");
      p.appendChild(a);
      bubble.appendChild(p);
    });
  };

  Chat.prototype.addSources = function (item, bubble, citations) {
    var shown = {};
    Array.prototype.forEach.call(bubble.querySelectorAll("a[href]"), function (a) { shown[a.href] = true; });
    var list = el("ul", "sources");
    list.setAttribute("aria-label", TEXT.sources);
    citations.forEach(function (citation) {
      var href = safeHref(citation && citation.url);
      if (!href || shown[href]) return;
      shown[href] = true;
      var label = citation.title || href.replace(/^https?:\/\//i, "").replace(/\/$/, "");
      if (citation.page) label += " (p. " + citation.page + ")";
      var li = el("li");
      li.appendChild(link(href, label));
      list.appendChild(li);
    });
    if (list.childNodes.length) item.appendChild(list);
  };

  Chat.prototype.addMessage = function (message) {
    if (typeof message.id !== "number" || this.rendered[message.id]) return;
    if (message.id > this.lastId) this.lastId = message.id;
    if (message.author === "customer") {
      for (var i = 0; i < this.pending.length; i++) {
        if (this.pending[i].text === message.text && !this.pending[i].id) {
          var mine = this.pending.splice(i, 1)[0];
          mine.id = message.id;
          this.rendered[message.id] = mine.item;
          return;
        }
      }
    }
    var item = this.bubble(message.author, message.text, message);
    this.rendered[message.id] = item;
    this.hideTyping();
    if (message.author === "agent" && this.streaming) {
      this.log.replaceChild(item, this.streaming.item);
      this.streaming = null;
      this.logRegion.removeAttribute("aria-busy");
    } else {
      this.log.appendChild(item);
    }
    if (!this.opened && message.author !== "customer") this.setUnread(true);
    this.scrollDown();
  };

  Chat.prototype.addToken = function (text) {
    this.hideTyping();
    if (!this.streaming) {
      var item = el("li", "msg agent streaming");
      item.setAttribute("aria-hidden", "true"); // announced once, when the whole reply arrives
      var bubble = el("div", "bubble");
      item.appendChild(bubble);
      this.log.appendChild(item);
      this.logRegion.setAttribute("aria-busy", "true");
      this.streaming = { item: item, bubble: bubble };
    }
    this.streaming.bubble.appendChild(document.createTextNode(text));
    this.scrollDown();
  };

  Chat.prototype.showTyping = function () {
    if (this.streaming) return;
    var self = this;
    if (!this.typing) {
      this.typing = el("li", "msg agent typing");
      var bubble = el("div", "bubble", "\u2022\u2022\u2022");
      bubble.setAttribute("aria-label", TEXT.typing);
      this.typing.appendChild(bubble);
      this.log.appendChild(this.typing);
      this.scrollDown();
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(function () { self.hideTyping(); }, 60000);
  };

  Chat.prototype.hideTyping = function () {
    clearTimeout(this.typingTimer);
    if (this.typing) { this.typing.remove(); this.typing = null; }
  };

  Chat.prototype.setStatus = function (status, initial) {
    var previous = this.status;
    this.status = status;
    if (status === "human") {
      this.notice.textContent = TEXT.handedOff;
      this.notice.hidden = false;
    } else {
      this.notice.hidden = true;
      if (status === "bot" && previous === "human" && !initial) {
        this.log.appendChild(this.bubble("system", TEXT.back, null));
        this.scrollDown();
      }
    }
  };

  Chat.prototype.scrollDown = function () {
    this.logRegion.scrollTop = this.logRegion.scrollHeight;
  };

  Chat.prototype.showError = function (text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  };

  // ---------------------------------------------------------------- sending

  Chat.prototype.submit = function () {
    var text = this.input.value.trim();
    if (!text) return;
    if (text.length > this.maxChars) { this.showError(TEXT.tooLong.replace("{n}", this.maxChars)); return; }
    this.input.value = "";
    this.input.style.height = "";
    this.showError("");
    var entry = { text: text, id: null, clientId: randomId(), item: this.bubble("customer", text, null) };
    this.pending.push(entry);
    this.log.appendChild(entry.item);
    this.scrollDown();
    this.deliver(entry, true);
  };

  Chat.prototype.deliver = function (entry, mayRenew) {
    var self = this;
    var state = entry.item.querySelector(".state");
    if (state) state.remove();
    entry.item.classList.remove("failed");
    this.request("POST", "/messages", { text: entry.text, client_message_id: entry.clientId }).then(function (res) {
      if ((res.status === 401 || res.status === 403) && mayRenew) {
        return self.renew().then(function (ok) { if (ok) self.deliver(entry, false); else self.markFailed(entry, TEXT.failed); });
      }
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (res.status === 202) {
          var id = body.message_id;
          var index = self.pending.indexOf(entry);
          if (index >= 0) self.pending.splice(index, 1);
          if (self.rendered[id] && self.rendered[id] !== entry.item) entry.item.remove();
          else { entry.id = id; self.rendered[id] = entry.item; if (id > self.lastId) self.lastId = id; }
          self.listen();
        } else if (res.status === 429) {
          self.markFailed(entry, TEXT.slowDown.replace("{n}", res.headers.get("Retry-After") || "a few"));
        } else if (res.status === 413) {
          self.markFailed(entry, TEXT.tooLong.replace("{n}", self.maxChars));
        } else {
          self.markFailed(entry, (body.error && body.error.message) || TEXT.failed);
        }
      });
    }).catch(function () { self.markFailed(entry, TEXT.failed); });
  };

  Chat.prototype.markFailed = function (entry, reason) {
    var self = this;
    entry.item.classList.add("failed");
    var state = el("p", "state", TEXT.notSent);
    var retry = el("button", null, TEXT.retry);
    retry.type = "button";
    retry.addEventListener("click", function () { self.deliver(entry, true); });
    state.appendChild(retry);
    entry.item.appendChild(state);
    this.showError(reason);
  };

  // ---------------------------------------------------------------- live events

  Chat.prototype.listen = function () {
    if (this.eventsRunning || !this.token) return;
    this.eventsRunning = true;
    var self = this;
    var failures = 0;
    var loop = function () {
      self.readEvents().then(function (outcome) {
        failures = outcome === "ended" ? 0 : failures + 1;
        if (outcome === "unsupported") return self.poll();
        return delay(failures ? Math.min(15000, 1000 * Math.pow(2, failures - 1)) : 250).then(loop);
      });
    };
    loop();
  };

  /** One server-sent events response, read with fetch so the token stays out of the URL. */
  Chat.prototype.readEvents = function () {
    var self = this;
    if (!window.ReadableStream || !window.TextDecoder) return Promise.resolve("unsupported");
    return fetch(this.base + "/events?after=" + this.lastId, {
      headers: { "Authorization": "Bearer " + this.token, "Accept": "text/event-stream" },
      cache: "no-store",
      credentials: "omit"
    }).then(function (res) {
      if (res.status === 401 || res.status === 403) return self.renew().then(function () { return "failed"; });
      if (!res.ok) return "failed";
      if (!res.body || !res.body.getReader) return "unsupported";
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var pump = function () {
        return reader.read().then(function (chunk) {
          if (chunk.done) return "ended";
          buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
          var end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            self.handleEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
          return pump();
        });
      };
      return pump();
    }).catch(function () { return "failed"; });
  };

  Chat.prototype.handleEvent = function (block) {
    var name = "message";
    var data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).replace(/^ /, "");
    });
    if (!data) return;
    var payload;
    try { payload = JSON.parse(data); } catch (e) { return; }
    if (name === "token") this.addToken(String(payload.text || ""));
    else if (name === "message") this.addMessage(payload);
    else if (name === "status") this.setStatus(payload.status, false);
    else if (name === "typing") this.showTyping();
  };

  /** Without streaming responses: ask for new messages every few seconds (whole replies). */
  Chat.prototype.poll = function () {
    var self = this;
    return this.request("GET", "/messages?after=" + this.lastId).then(function (res) {
      return res.ok ? res.json() : null;
    }).then(function (data) {
      if (data) {
        (data.messages || []).forEach(function (message) { self.addMessage(message); });
        if (data.status && data.status !== self.status) self.setStatus(data.status, false);
      }
    }).catch(function () {}).then(function () { return delay(3000); }).then(function () { return self.poll(); });
  };

  // ------------------------------------------------------------------ boot

  function boot(script) {
    if (!script || script.__callableChat) return;
    script.__callableChat = true;
    if (!script.getAttribute("data-channel")) {
      if (window.console) console.warn("Callable chat: the script tag needs data-channel=\"CHANNEL_ID\"");
      return;
    }
    var chat = new Chat(script);
    if (document.body) chat.start();
    else document.addEventListener("DOMContentLoaded", function () { chat.start(); });
  }

  if (document.currentScript) {
    boot(document.currentScript);
  } else {
    Array.prototype.forEach.call(document.querySelectorAll("script[data-channel][src*='widget.js']"), boot);
  }

  window.CallableChat = window.CallableChat || { renderMarkdown: renderMarkdown, safeHref: safeHref };
})();
