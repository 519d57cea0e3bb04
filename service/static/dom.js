// Helpers both pages use to build their HTML. Text always goes in as textContent,
// never as markup: series names, file names and messages come from the server, and
// an uploaded CSV decides some of them.
"use strict";

(function () {
  function make(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  window.Dom = { make, byId: (id) => document.getElementById(id) };
})();
