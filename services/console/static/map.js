// The county's grids coloured by five-colour risk, open cases as markers by status; a marker
// opens its case. No tiles unless the county configured its own tile server.
(function () {
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var COLOURS = { red: "#d32f2f", orange: "#ef6c00", yellow: "#f9c80e", blue: "#1e63c4", green: "#2e7d32" };
  var STATUS = { dispatched: "#1e63c4", in_progress: "#ef8f00", resolved: "#2e7d32", verified: "#66bb6a",
                 reopened: "#8a2a00", registered: "#607d8b" };
  var map = L.map(el, { zoomSnap: 0.25, attributionControl: false });
  var tiles = el.getAttribute("data-tiles");
  if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
  var centres = {};
  function get(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); });
  }
  get(el.getAttribute("data-grids")).then(function (fc) {
    var layer = L.geoJSON(fc, {
      style: function (f) {
        var c = COLOURS[f.properties.colour] || COLOURS.green;
        return { color: "#37474f", weight: 1, fillColor: c, fillOpacity: 0.45 };
      },
      onEachFeature: function (f, l) {
        l.bindTooltip(f.properties.name + " (" + f.properties.code + ")");
        centres[f.id] = l.getBounds().getCenter();
      }
    }).addTo(map);
    map.fitBounds(layer.getBounds(), { padding: [12, 12] });
    return get(el.getAttribute("data-cases"));
  }).then(function (data) {
    var n = 0;
    data.cases.forEach(function (c, i) {
      var at = (c.lat != null && c.lon != null) ? L.latLng(c.lat, c.lon) : centres[c.grid];
      if (!at) return;
      if (c.lat == null) {  // no point of its own: near its grid's centre, spread a little
        var a = (i * 2.399963) % (2 * Math.PI), r = 0.0004 + 0.00025 * ((i * 7) % 5);
        at = L.latLng(at.lat + r * Math.sin(a), at.lng + r * Math.cos(a));
      }
      var m = L.circleMarker(at, { radius: 7, weight: 2, color: c.overdue ? "#d32f2f" : "#fff",
        fillColor: STATUS[c.status] || "#607d8b", fillOpacity: 0.95 });
      m.bindTooltip((c.summary || c.id) + " · " + c.status);
      var open = function () { window.location.href = "/console/cases/" + c.id; };
      m.on("click", open);
      m.addTo(map);
      var el = m.getElement();  // a marker is reachable by keyboard: Tab to it, Enter opens the case
      if (el) {
        el.setAttribute("tabindex", "0");
        el.setAttribute("role", "link");
        el.setAttribute("aria-label", (c.summary || c.id) + " · " + c.status);
        el.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      }
      n += 1;
    });
    var count = document.getElementById("map-count");
    if (count) count.textContent = n + (el.getAttribute("data-lang") === "zh" ? " 件在办" : " open cases");
  }).catch(function () {});
})();
