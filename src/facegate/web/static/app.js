// Larger text for people who need it (CAC-FR-05c accessibility); remembered on this device.
(function () {
  "use strict";
  var btn = document.getElementById("text-size");
  if (!btn) return;
  function apply(on) {
    document.documentElement.classList.toggle("large", on);
    btn.setAttribute("aria-pressed", on ? "true" : "false");
  }
  apply(localStorage.getItem("fg-large") === "1");
  btn.addEventListener("click", function () {
    var on = !document.documentElement.classList.contains("large");
    localStorage.setItem("fg-large", on ? "1" : "0");
    apply(on);
  });
})();
