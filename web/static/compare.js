// Side by side: the viewer's X-ray twice, each pane with a model version's map of a finding (two findings
// of the served version, or one finding under two versions: /api/v1/jobs/<id>/maps?version=<v>). Both panes
// share one zoom and pan, so they always show the same part of the image. Drawing is the viewer's own
// (viewer.js: window, inversion and opacity as set there); this file only adds the panes.
(function () {
  const root = document.getElementById("viewer");
  const section = document.getElementById("compare");
  const toggle = document.getElementById("side-by-side");
  if (!root || !section || !toggle) return;
  const $ = (id) => document.getElementById(id);
  const panes = [...section.querySelectorAll(".compare-pane")].map((element) => ({
    element, version: element.querySelector(".pane-version"), finding: element.querySelector(".pane-finding"),
    stage: element.querySelector(".compare-stage"), canvas: element.querySelector("canvas"),
    caption: element.querySelector(".pane-caption"),
  }));
  const view = { scale: 1, x: 0, y: 0, fitted: false };  // one transform for both panes
  const loaded = {};  // maps URL -> promise of the decoded maps
  const state = { view, drawn: 0, panes: panes.map(() => ({})) };
  window.xrayCompare = state;  // for tests: what each pane shows and the shared transform
  let viewer = null;
  toggle.disabled = true;  // until the viewer has the image

  function maps(url) {
    if (!loaded[url]) {
      loaded[url] = fetch(url, { headers: { Accept: "application/json" } }).then((response) => {
        if (!response.ok) throw new Error("the heatmaps could not be loaded (HTTP " + response.status + ")");
        return response.json();
      }).then((body) => viewer.decodeMaps(body));
      loaded[url].catch(() => { delete loaded[url]; });  // a later draw tries again
    }
    return loaded[url];
  }

  async function drawPane(pane, index) {
    const option = pane.version.selectedOptions[0], label = pane.finding.value;
    const name = pane.finding.selectedOptions[0] ? pane.finding.selectedOptions[0].textContent : label;
    try {
      const bundle = await maps(option.dataset.mapsUrl);
      if (pane.canvas.width !== viewer.width || pane.canvas.height !== viewer.height) {
        pane.canvas.width = viewer.width;
        pane.canvas.height = viewer.height;
      }
      viewer.paint(pane.canvas.getContext("2d"), bundle.maps[label] ? viewer.upsampleOf(bundle, label) : null);
      const probability = JSON.parse(option.dataset.probabilities || "{}")[label];
      const text = name + " · model " + option.value.slice(0, 24) +
        (typeof probability === "number" ? " · " + (100 * probability).toFixed(1) + "%" : "");
      pane.caption.textContent = text;
      pane.canvas.setAttribute("aria-label", "X-ray with the heatmap of " + text);
      state.panes[index] = { version: option.value, label };
    } catch (error) {
      pane.caption.textContent = error.message;
      state.panes[index] = { error: error.message };
    }
  }
  async function drawAll() {
    if (section.hidden || !viewer) return;
    await Promise.all(panes.map(drawPane));
    if (!view.fitted) fit();
    state.drawn += 1;
    section.dataset.drawn = String(state.drawn);
  }

  // ---- the shared zoom and pan (the panes have the same size: one transform fits both) ----
  function box() { return panes[0].stage.getBoundingClientRect(); }
  function place() {
    const transform = new DOMMatrix().translate(view.x, view.y).scale(view.scale).toString();
    panes.forEach((pane) => { pane.canvas.style.transform = transform; });
    section.dataset.zoom = view.scale.toFixed(4);
  }
  function fit() {
    const b = box();
    if (!b.width || !viewer.width) return;
    view.scale = Math.min(b.width / viewer.width, b.height / viewer.height);
    view.x = (b.width - viewer.width * view.scale) / 2;
    view.y = (b.height - viewer.height * view.scale) / 2;
    view.fitted = true;
    place();
  }
  function zoomAt(factor, cx, cy) {
    const next = Math.min(40, Math.max(0.05, view.scale * factor));
    view.x = cx - (cx - view.x) * (next / view.scale);
    view.y = cy - (cy - view.y) * (next / view.scale);
    view.scale = next;
    place();
  }
  function zoomCentre(factor) { const b = box(); zoomAt(factor, b.width / 2, b.height / 2); }
  function pan(dx, dy) { view.x += dx; view.y += dy; place(); }

  panes.forEach((pane) => {
    const stage = pane.stage;
    stage.addEventListener("wheel", (event) => {
      event.preventDefault();
      const b = stage.getBoundingClientRect();
      zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - b.left, event.clientY - b.top);
    }, { passive: false });
    let last = null;
    stage.addEventListener("pointerdown", (event) => {
      stage.setPointerCapture(event.pointerId);
      last = [event.clientX, event.clientY];
      stage.classList.add("dragging");
    });
    stage.addEventListener("pointermove", (event) => {
      if (!last) return;
      pan(event.clientX - last[0], event.clientY - last[1]);
      last = [event.clientX, event.clientY];
    });
    const release = () => { last = null; stage.classList.remove("dragging"); };
    stage.addEventListener("pointerup", release);
    stage.addEventListener("pointercancel", release);
    stage.addEventListener("keydown", (event) => {
      const nudge = Math.round(stage.getBoundingClientRect().width / 10);
      const keys = {
        "+": () => zoomCentre(1.25), "=": () => zoomCentre(1.25), "-": () => zoomCentre(1 / 1.25), "0": fit,
        ArrowLeft: () => pan(nudge, 0), ArrowRight: () => pan(-nudge, 0), ArrowUp: () => pan(0, nudge), ArrowDown: () => pan(0, -nudge),
      };
      const action = keys[event.key];
      if (action && !event.altKey && !event.ctrlKey && !event.metaKey) { event.preventDefault(); action(); }
    });
    pane.version.addEventListener("change", drawAll);
    pane.finding.addEventListener("change", drawAll);
  });

  // ---- the two ways to compare ----
  function current() { const f = $("finding"); return f && f.value ? f.value : panes[0].finding.options[0].value; }
  function twoFindings() {
    const options = [...panes[0].finding.options].map((o) => o.value);
    const first = current(), second = options.find((label) => label !== first) || first;
    panes.forEach((pane) => { pane.version.selectedIndex = 0; });
    panes[0].finding.value = first;
    panes[1].finding.value = second;
    section.dataset.mode = "findings";
    drawAll();
  }
  function twoVersions() {
    const label = current();
    panes[0].version.selectedIndex = 0;
    panes[1].version.selectedIndex = Math.min(1, panes[1].version.options.length - 1);
    panes.forEach((pane) => { pane.finding.value = label; });
    section.dataset.mode = "versions";
    drawAll();
  }
  function open(show) {
    section.hidden = !show;
    toggle.setAttribute("aria-expanded", String(show));
    toggle.textContent = show ? "Hide side by side" : "Side by side";
    if (!show) return;
    view.fitted = false;
    if (panes[1].version.options.length > 1) twoVersions(); else twoFindings();
    section.scrollIntoView({ block: "start" });
    panes[0].stage.focus({ preventScroll: true });
  }
  $("compare-findings").addEventListener("click", twoFindings);
  $("compare-versions").addEventListener("click", twoVersions);
  $("compare-zoom-in").addEventListener("click", () => zoomCentre(1.25));
  $("compare-zoom-out").addEventListener("click", () => zoomCentre(1 / 1.25));
  $("compare-fit").addEventListener("click", fit);
  $("compare-close").addEventListener("click", () => { open(false); toggle.focus(); });
  toggle.addEventListener("click", () => open(section.hidden));
  window.addEventListener("resize", () => { if (!section.hidden && viewer) fit(); });

  function ready() {
    viewer = window.xrayViewer;
    root.addEventListener("viewer-drawn", drawAll);  // the viewer's window, inversion or opacity changed
    section.dataset.ready = "true";
    toggle.disabled = false;
  }
  if (root.dataset.ready === "true") ready(); else root.addEventListener("viewer-ready", ready, { once: true });
})();
