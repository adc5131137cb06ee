/* The demo page's consent banner: sets the consent cookie and tells the snippet. */
(function () {
  "use strict";
  var button = document.getElementById("consent-yes");
  if (!button) { return; }
  button.addEventListener("click", function () {
    document.cookie = "cockpit_consent=yes; path=/; SameSite=Lax; max-age=31536000";
    window.dispatchEvent(new Event("cockpit:consent"));
    button.closest("#consent").hidden = true;
  });
  document.addEventListener("submit", function (event) {
    if (event.target.hasAttribute("data-demo-form")) { event.preventDefault(); event.target.classList.add("sent"); }
  });
}());
