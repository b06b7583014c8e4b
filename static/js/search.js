// Patient search from the keyboard, and a short spoken summary of each new list of results.
// Every listener sits on the document, so results swapped in by htmx need no set-up of their own;
// loaded as a file, not inline, for the Content-Security-Policy.
(function () {
  "use strict";
  var SEARCH_BOX = "search-q";
  var RESULTS = "results";
  var STATUS = "search-status";
  var refocusIndex = null;

  function searchBox() { return document.getElementById(SEARCH_BOX); }

  // The patient link in the first cell of each row, in the order shown.
  function resultLinks() {
    var results = document.getElementById(RESULTS);
    return results ? Array.prototype.slice.call(results.querySelectorAll("tbody tr > td:first-child a[href]")) : [];
  }

  function focusLink(links, index) {
    if (links.length) { links[Math.max(0, Math.min(index, links.length - 1))].focus(); }
  }

  function onKeydown(event) {
    if (event.defaultPrevented || event.isComposing || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    var target = event.target;
    var links;
    if (target.id === SEARCH_BOX) {
      // Only an explicit ArrowDown leaves the box: focus never moves while the user types.
      if (event.key !== "ArrowDown") { return; }
      links = resultLinks();
      if (!links.length) { return; }
      event.preventDefault();
      links[0].focus();
      return;
    }
    links = resultLinks();
    var index = links.indexOf(target);
    if (index < 0) { return; }
    switch (event.key) {
      case "ArrowDown": focusLink(links, index + 1); break;
      case "ArrowUp":
        if (index === 0) { searchBox().focus(); } else { links[index - 1].focus(); }
        break;
      case "Home": links[0].focus(); break;
      case "End": links[links.length - 1].focus(); break;
      case "Escape": searchBox().focus(); break;
      default: return;  // Enter and Tab keep what links natively do.
    }
    event.preventDefault();
  }

  // The summary (the table's caption, or the no-match message) is copied into a live region that stays
  // on the page: a region swapped in with the results is not reliably announced, and announcing the
  // whole table made a screen reader re-read every row on each key typed.
  function announce() {
    var status = document.getElementById(STATUS);
    var results = document.getElementById(RESULTS);
    if (!status || !results) { return; }
    var summary = results.querySelector("[data-search-summary]");
    var text = summary ? summary.textContent.replace(/\s+/g, " ").trim() : "";
    // Emptied first, so the same summary after another search ("1 patient found") is spoken again.
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 100);
  }

  function isResults(event) {
    return event.detail && event.detail.target && event.detail.target.id === RESULTS;
  }

  // A swap while a result has focus (ArrowDown pressed before the typing's request came back) would drop
  // the focus on the page's body; it is put back on the row at the same place, or on the search box.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!isResults(event)) { return; }
    var index = resultLinks().indexOf(document.activeElement);
    refocusIndex = index < 0 ? null : index;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!isResults(event)) { return; }
    announce();
    if (refocusIndex === null) { return; }
    var links = resultLinks();
    if (links.length) { focusLink(links, refocusIndex); } else { searchBox().focus(); }
    refocusIndex = null;
  });
  document.addEventListener("keydown", onKeydown);
})();
