// Knowledge Base page: say which files were chosen (or dropped) and refuse, before any upload,
// a file over the size limit or too many files, naming them. The server checks again.
(function () {
  "use strict";
  function check(input) {
    var form = input.form;
    var chosen = form.querySelector("[data-files-chosen]");
    var problem = form.querySelector("[data-files-check]");
    var limit = parseInt(input.getAttribute("data-max-bytes"), 10);
    var most = parseInt(input.getAttribute("data-max-files"), 10);
    var files = Array.prototype.slice.call(input.files || []);
    var names = files.map(function (file) { return file.name; });
    var tooLarge = files.filter(function (file) { return file.size > limit; }).map(function (file) {
      return file.name + " (" + file.size.toLocaleString("en") + " bytes)";
    });
    var message = "";
    if (tooLarge.length) {
      message = "files: over the upload limit of " + limit.toLocaleString("en") + " bytes: " + tooLarge.join(", ") + ". Nothing was uploaded.";
    } else if (files.length > most) {
      message = "files: at most " + most + " files at once, got " + files.length + ".";
    }
    if (chosen) chosen.textContent = files.length && !message ? files.length + " file(s) chosen: " + names.join(", ") : "";
    if (problem) {
      problem.textContent = message;
      problem.hidden = !message;
    }
    if (message) {
      input.value = "";
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
  }
  // After a form of the page was posted through HTMX, put the keyboard where the answer is:
  // the first field in error, else the notice saying what happened (polls and searches don't move it).
  document.addEventListener("htmx:afterSettle", function (event) {
    var config = event.detail && event.detail.requestConfig;
    if (!config || config.verb !== "post") return;
    var root = document.getElementById("kb-detail");
    if (!root) return;
    var target = root.querySelector("[aria-invalid=true]") || root.querySelector(".alert.error, .alert.success");
    if (target) target.focus();
  });
  // A body over the server's request limit (a very long paste) is answered 413 before any
  // page is rendered: say so above the page and keep the form as typed.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr || xhr.status !== 413) return;
    event.detail.shouldSwap = false;
    var flash = document.getElementById("flash");
    if (!flash) return;
    var alert = document.createElement("div");
    alert.className = "alert error";
    alert.setAttribute("role", "alert");
    alert.textContent = "Not sent: " + (xhr.responseText || "the request is too large") + ". Upload long text as a file instead.";
    flash.replaceChildren(alert);
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var config = event.detail && event.detail.requestConfig;
    var flash = document.getElementById("flash");
    if (config && config.verb === "post" && flash && document.getElementById("kb-detail")) flash.replaceChildren();
  });
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input && input.matches && input.matches("input[type=file][data-max-bytes]")) check(input);
  });
})();
