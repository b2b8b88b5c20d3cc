// The live map: polls data/aircraft.json (the dump1090-fa schema) once a
// second and draws every aircraft with a position as a marker rotated to
// its track, labelled with callsign and altitude, with a short trail; a
// sortable table beside it; click either for details. data/receiver.json
// places the receiver and its range rings. `?tiles=none` (or no network)
// leaves a plain background instead of OpenStreetMap tiles.
"use strict";

(function () {
  const POLL_MS = 1000;
  const TRAIL_POINTS = 40;
  // Aircraft whose last position is older than this lose their marker.
  const POSITION_STALE_S = 60;
  const NM = 1852;
  const RINGS_NM = [50, 100, 150, 200];
  const OSM = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

  const params = new URLSearchParams(location.search);
  const map = L.map("map", { zoomControl: true, worldCopyJump: true }).setView([50, 10], 5);
  if (params.get("tiles") !== "none") {
    L.tileLayer(params.get("tiles") || OSM, {
      maxZoom: 18,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    }).addTo(map);
  }

  const PLANE =
    '<svg viewBox="-12 -12 24 24"><path d="M0,-11 L2,-4 L10,1 L10,3 L2,1 L1.5,7 L4,9 L4,10.5 L0,9.5 L-4,10.5 L-4,9 L-1.5,7 L-2,1 L-10,3 L-10,1 L-2,-4 Z" fill="#1c7ed6" stroke="#0b3d6b" stroke-width="0.8"/></svg>';

  // hex -> { marker, trail, points: [[lat, lon]], last }
  const shown = new Map();
  let aircraft = [];
  let selected = null;
  let sortKey = "alt_baro";
  let sortAsc = false;
  let polls = 0;
  let centred = false;

  function label(a) {
    const name = (a.flight || "").trim() || a.hex.toUpperCase();
    const alt = a.alt_baro === "ground" ? "gnd" : a.alt_baro != null ? a.alt_baro + " ft" : "";
    return alt ? name + " " + alt : name;
  }

  function place(a) {
    let s = shown.get(a.hex);
    const at = [a.lat, a.lon];
    if (!s) {
      const marker = L.marker(at, {
        icon: L.divIcon({ className: "ac-marker", html: PLANE, iconSize: [24, 24] }),
        keyboard: false,
      }).addTo(map);
      marker.bindTooltip("", { permanent: true, direction: "right", offset: [12, 0], className: "ac-label" });
      marker.on("click", () => select(a.hex));
      const trail = L.polyline([], { color: "#1c7ed6", weight: 2, opacity: 0.6 }).addTo(map);
      s = { marker, trail, points: [] };
      shown.set(a.hex, s);
    }
    const last = s.points[s.points.length - 1];
    if (!last || last[0] !== a.lat || last[1] !== a.lon) {
      s.points.push(at);
      if (s.points.length > TRAIL_POINTS) s.points.shift();
      s.trail.setLatLngs(s.points);
    }
    s.marker.setLatLng(at);
    s.marker.setTooltipContent(label(a));
    const el = s.marker.getElement();
    if (el) {
      el.dataset.hex = a.hex;
      el.dataset.lat = a.lat.toFixed(5);
      el.dataset.lon = a.lon.toFixed(5);
      el.classList.toggle("selected", a.hex === selected);
      const svg = el.querySelector("svg");
      if (svg) svg.style.transform = "rotate(" + (a.track || 0) + "deg)";
    }
  }

  function forget(hex) {
    const s = shown.get(hex);
    if (!s) return;
    map.removeLayer(s.marker);
    map.removeLayer(s.trail);
    shown.delete(hex);
  }

  function fmt(v, digits) {
    if (v == null) return "";
    if (typeof v === "number" && digits != null) return v.toFixed(digits);
    return String(v);
  }

  function compare(a, b) {
    const key = (v) => (Array.isArray(v) ? (v.length ? v.join(",") : null) : v);
    const va = key(a[sortKey]), vb = key(b[sortKey]);
    const na = va == null, nb = vb == null;
    if (na || nb) return na === nb ? 0 : na ? 1 : -1;
    const x = va === "ground" ? -1 : va, y = vb === "ground" ? -1 : vb;
    const r = x < y ? -1 : x > y ? 1 : 0;
    return sortAsc ? r : -r;
  }

  function drawTable() {
    const body = document.querySelector("#table tbody");
    // The fleet map (tail) says which receivers heard each aircraft.
    const fleet = aircraft.some((a) => a.receivers && a.receivers.length);
    document.getElementById("th-receivers").hidden = !fleet;
    const rows = aircraft.slice().sort(compare).map((a) => {
      const tr = document.createElement("tr");
      tr.dataset.hex = a.hex;
      if (a.hex === selected) tr.className = "selected";
      const cells = [
        [a.hex, ""], [(a.flight || "").trim(), ""], [fmt(a.alt_baro), "num"], [fmt(a.gs, 0), "num"],
        [fmt(a.track, 0), "num"], [a.squawk || "", ""], [fmt(a.rssi, 1), "num"], [fmt(a.seen, 0), "num"],
      ];
      if (fleet) cells.push([(a.receivers || []).join(", "), ""]);
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => select(a.hex, true));
      return tr;
    });
    body.replaceChildren(...rows);
    for (const th of document.querySelectorAll("#table th")) {
      th.classList.toggle("sorted", th.dataset.key === sortKey);
      th.classList.toggle("asc", th.dataset.key === sortKey && sortAsc);
    }
  }

  function drawDetails() {
    const box = document.getElementById("details");
    const a = aircraft.find((x) => x.hex === selected);
    if (!a) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    document.getElementById("d-title").textContent = label(a);
    const dl = document.getElementById("d-fields");
    const items = [];
    for (const [k, v] of Object.entries(a)) {
      if (v == null || (Array.isArray(v) && v.length === 0)) continue;
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = Array.isArray(v) ? v.join(", ") : typeof v === "number" ? String(+v.toFixed(6)) : String(v);
      items.push(dt, dd);
    }
    dl.replaceChildren(...items);
  }

  function select(hex, pan) {
    selected = selected === hex && !pan ? null : hex;
    const s = shown.get(hex);
    if (pan && s) map.panTo(s.marker.getLatLng());
    redraw();
  }

  function redraw() {
    for (const a of aircraft) {
      const s = shown.get(a.hex);
      const el = s && s.marker.getElement();
      if (el) el.classList.toggle("selected", a.hex === selected);
    }
    drawTable();
    drawDetails();
  }

  async function poll() {
    try {
      const r = await fetch("data/aircraft.json", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const data = await r.json();
      aircraft = data.aircraft || [];
      const live = new Set();
      for (const a of aircraft) {
        if (a.lat == null || a.lon == null || (a.seen_pos != null && a.seen_pos > POSITION_STALE_S)) continue;
        live.add(a.hex);
        place(a);
      }
      for (const hex of [...shown.keys()]) if (!live.has(hex)) forget(hex);
      if (!centred && live.size > 0) {
        map.fitBounds(L.latLngBounds([...shown.values()].map((s) => s.marker.getLatLng())).pad(0.3));
        centred = true;
      }
      polls += 1;
      document.getElementById("summary").textContent =
        aircraft.length + " aircraft, " + live.size + " with positions; " + (data.messages || 0) + " messages";
      redraw();
    } catch (e) {
      document.getElementById("summary").textContent = "data/aircraft.json: " + e.message;
    }
  }

  async function receiver() {
    try {
      const r = await fetch("data/receiver.json", { cache: "no-store" });
      const rx = await r.json();
      if (rx.lat == null || rx.lon == null) return;
      const at = [rx.lat, rx.lon];
      L.marker(at, { icon: L.divIcon({ className: "rx-marker", iconSize: [14, 14] }), title: "receiver" }).addTo(map);
      for (const nm of RINGS_NM) {
        L.circle(at, { radius: nm * NM, color: "#868e96", weight: 1, fill: false, dashArray: "4 4" })
          .bindTooltip(nm + " nm")
          .addTo(map);
      }
      if (!centred) map.setView(at, 7);
    } catch (e) {
      // No receiver position: no rings.
    }
  }

  for (const th of document.querySelectorAll("#table th")) {
    th.addEventListener("click", () => {
      if (sortKey === th.dataset.key) sortAsc = !sortAsc;
      else {
        sortKey = th.dataset.key;
        sortAsc = sortKey === "hex" || sortKey === "flight";
      }
      drawTable();
    });
  }

  // For tests and the curious: what the page shows.
  window.adsbMap = {
    polls: () => polls,
    markers: () =>
      [...shown.entries()].map(([hex, s]) => ({ hex, lat: s.marker.getLatLng().lat, lon: s.marker.getLatLng().lng })),
  };

  receiver();
  poll();
  setInterval(poll, POLL_MS);
})();
