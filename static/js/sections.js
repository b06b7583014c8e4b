// The patient page's sections: "Show all" replaces the whole section, the button that had the focus
// included, so the focus is put on the new section's heading (else it falls back to the page's start and a
// keyboard or screen-reader user loses their place). Loaded as a file, not inline, for the
// Content-Security-Policy.
(function () {
  "use strict";
  var expanding = null;  // the id of the section a "Show all" is fetching

  document.addEventListener("htmx:beforeRequest", function (event) {
    var button = event.detail && event.detail.elt;
    if (button && button.classList && button.classList.contains("show-all")) {
      var section = button.closest("section[id]");
      expanding = section ? section.id : null;
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!expanding) { return; }
    var section = document.getElementById(expanding);
    expanding = null;
    var heading = section && section.querySelector("h2");
    if (heading) { heading.focus(); }
  });
})();
