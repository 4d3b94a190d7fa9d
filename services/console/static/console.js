// The inbox refreshes its trays in place every few seconds (live counts without a reload);
// a failed fetch keeps what is shown and tries again.
(function () {
  var box = document.getElementById("trays");
  if (!box) return;
  var url = box.getAttribute("data-refresh"), every = +box.getAttribute("data-every") || 5000;
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { if (r.redirected || !r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { box.innerHTML = html; })
      .catch(function () {})
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
