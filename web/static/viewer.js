// The viewer: one X-ray on a canvas, every finding's class activation map drawn over it from data.
// Maps arrive at the model's feature resolution (/api/v1/jobs/<id>/maps) and are drawn exactly as the
// server draws overlays (shared/imaging/maps.py): bilinear resize with pixel centres aligned (OpenCV's
// INTER_LINEAR), the same JET colour table, blend (1 - opacity) * grey + opacity * colour.
// Window/level, the pixel readout and the length tool work on the image's own values at full bit depth
// (/api/v1/jobs/<id>/values: a DICOM's stored values through its Modality LUT), not on the 8-bit display
// pixels; at the file's own window the display pixels are drawn as they are, so the picture matches the
// server's overlays. The view (finding, opacity, zoom, centre, window, rotation) lives in the address.
(function () {
  const root = document.getElementById("viewer");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const stage = $("stage");
  const canvas = $("view");
  const marks = $("marks");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const controls = {
    finding: $("finding"), show: $("show-heatmap"), opacity: $("opacity"), window: $("window"), level: $("level"),
    preset: $("preset"), invert: $("invert"),
  };
  const stateLine = $("viewer-state");
  const MAX_SIDE = 1024;
  const viewer = {
    grey: null, width: 0, height: 0, maps: null, colormap: null, scale: 1, x: 0, y: 0,
    values: null, wl: null, invert: false, rotation: 0, flipX: false, flipY: false, tool: "pan",
    measurement: null, readout: null,
  };
  window.xrayViewer = viewer; // for tests and the curious: the current state; compare.js draws with its tools

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the image could not be loaded"));
      image.src = url;
    });
  }

  // The original as 8-bit grey at most MAX_SIDE on its long side (the server's weights: BGR→GRAY).
  function greyOf(image) {
    const scale = Math.min(1, MAX_SIDE / Math.max(image.naturalWidth, image.naturalHeight));
    const width = Math.max(1, Math.round(image.naturalWidth * scale));
    const height = Math.max(1, Math.round(image.naturalHeight * scale));
    const scratch = document.createElement("canvas");
    scratch.width = width;
    scratch.height = height;
    const sctx = scratch.getContext("2d", { willReadFrequently: true });
    sctx.drawImage(image, 0, 0, width, height);
    const rgba = sctx.getImageData(0, 0, width, height).data;
    const grey = new Uint8ClampedArray(width * height);
    for (let i = 0, p = 0; i < grey.length; i++, p += 4) {
      grey[i] = Math.round(0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2]);
    }
    return { grey, width, height };
  }

  // OpenCV INTER_LINEAR: source coordinate (d + 0.5) * (src / dst) - 0.5, clamped at the borders.
  function axis(dst, src) {
    const index0 = new Int32Array(dst), index1 = new Int32Array(dst), weight = new Float32Array(dst);
    const ratio = src / dst;
    for (let d = 0; d < dst; d++) {
      let f = (d + 0.5) * ratio - 0.5;
      let i = Math.floor(f);
      let w = f - i;
      if (i < 0) { i = 0; w = 0; }
      if (i >= src - 1) { i = src - 1; w = 0; }
      index0[d] = i;
      index1[d] = Math.min(i + 1, src - 1);
      weight[d] = w;
    }
    return { index0, index1, weight };
  }

  // A finding's map of one set of maps (the served version's, or another's for the side by side) at the
  // image's working size; kept on the set.
  function upsampleOf(bundle, label) {
    bundle.upsampled = bundle.upsampled || {};
    if (bundle.upsampled[label]) return bundle.upsampled[label];
    const source = bundle.maps[label];
    const w = bundle.width, h = bundle.height;
    const xs = axis(viewer.width, w), ys = axis(viewer.height, h);
    const out = new Uint8ClampedArray(viewer.width * viewer.height);
    for (let y = 0; y < viewer.height; y++) {
      const r0 = ys.index0[y] * w, r1 = ys.index1[y] * w, wy = ys.weight[y];
      for (let x = 0; x < viewer.width; x++) {
        const c0 = xs.index0[x], c1 = xs.index1[x], wx = xs.weight[x];
        const top = source[r0 + c0] * (1 - wx) + source[r0 + c1] * wx;
        const bottom = source[r1 + c0] * (1 - wx) + source[r1 + c1] * wx;
        out[y * viewer.width + x] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
    bundle.upsampled[label] = out;
    return out;
  }
  function upsample(label) { return upsampleOf(viewer.maps, label); }
  // The answer of /api/v1/jobs/<id>/maps as arrays.
  function decodeMaps(body) {
    const maps = {};
    for (const [label, encoded] of Object.entries(body.maps)) {
      maps[label] = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    }
    return { width: body.width, height: body.height, maps, version: body.model_version };
  }

  // ---- window/level on the image's own values ----
  const PRESET_KEYS = ["default", "lung", "soft_tissue", "bone", "full_range"];
  function atDefault() {
    const d = viewer.values ? viewer.values.windows.default : { centre: 127.5, width: 255 };
    return (Math.abs(viewer.wl.centre - d.centre) < 1e-6 && Math.abs(viewer.wl.width - d.width) < 1e-6);
  }
  function greyLevels() {
    // At the file's own window: the display pixels as the server made them (the overlays match them).
    if (atDefault()) return viewer.grey;
    const v = viewer.values ? viewer.values.data : viewer.grey, out = new Uint8ClampedArray(v.length);
    const low = viewer.wl.centre - viewer.wl.width / 2, gain = 255 / viewer.wl.width;
    const flip = viewer.values ? viewer.values.monochrome1 : false;
    for (let i = 0; i < v.length; i++) {
      const g = Math.min(255, Math.max(0, (v[i] - low) * gain));
      out[i] = flip ? 255 - g : g;
    }
    return out;
  }
  function setWindow(centre, width, fromPreset) {
    const range = viewer.values ? viewer.values.maximum - viewer.values.minimum : 255;
    viewer.wl = { centre, width: Math.max(1e-3, Math.min(width, Math.max(range, 1) * 4)) };
    controls.window.value = viewer.wl.width;
    controls.level.value = viewer.wl.centre;
    if (!fromPreset) controls.preset.value = presetOf() || "custom";
    showWindow();
    schedule();
  }
  function presetOf() {
    if (!viewer.values) return atDefault() ? "default" : "";
    return PRESET_KEYS.find((k) => {
      const p = viewer.values.windows[k];
      return p && Math.abs(p.centre - viewer.wl.centre) < 1e-6 && Math.abs(p.width - viewer.wl.width) < 1e-6;
    }) || "";
  }
  function applyPreset(key) {
    const p = viewer.values ? viewer.values.windows[key] : (key === "default" ? { centre: 127.5, width: 255 } : null);
    if (!p) return;
    controls.preset.value = key;
    setWindow(p.centre, p.width, true);
  }
  function fmt(n) { return Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(1); }
  function showWindow() {
    const what = viewer.values ? viewer.values.bits + "-bit values" : "8-bit display levels";
    const out = $("wl-values");
    out.textContent = "Width " + fmt(viewer.wl.width) + " · centre " + fmt(viewer.wl.centre) +
      (viewer.invert ? " · inverted" : "") + " (" + what + ")";
    out.title = viewer.values ? viewer.values.source : "";
  }

  // ---- drawing ----
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }
  // The X-ray at the current window (and inversion) with a map blended over it, onto a canvas context.
  function paint(target, heat) {
    const image = target.createImageData(viewer.width, viewer.height);
    const out = image.data;
    const grey = greyLevels();
    const alpha = Number(controls.opacity.value);
    const lut = viewer.colormap;
    const invert = viewer.invert;
    for (let i = 0, p = 0; i < grey.length; i++, p += 4) {
      const g = invert ? 255 - grey[i] : grey[i];
      if (heat) {
        const c = lut[heat[i]];
        out[p] = Math.round((1 - alpha) * g + alpha * c[0]);
        out[p + 1] = Math.round((1 - alpha) * g + alpha * c[1]);
        out[p + 2] = Math.round((1 - alpha) * g + alpha * c[2]);
      } else {
        out[p] = out[p + 1] = out[p + 2] = g;
      }
      out[p + 3] = 255;
    }
    target.putImageData(image, 0, 0);
  }
  function draw() {
    if (!viewer.grey) return;
    const label = controls.finding ? controls.finding.value : "";
    const heat = viewer.maps && label && controls.show.checked ? upsample(label) : null;
    paint(ctx, heat);
    const name = controls.finding && controls.finding.selectedOptions[0] ? controls.finding.selectedOptions[0].textContent : "";
    canvas.setAttribute("aria-label", heat ? "X-ray with the heatmap of " + name : "X-ray without heatmap");
    $("print-caption").textContent = heat ? "Heatmap of " + name : "The X-ray without a heatmap";  // what paper shows
    document.querySelectorAll("table.findings tr[data-label]").forEach((row) => {
      row.classList.toggle("selected", row.dataset.label === label);
    });
    stateLine.textContent = (heat ? "Showing " + name : "Heatmap hidden") + " · zoom " + viewer.scale.toFixed(1) + "×";
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
    root.dispatchEvent(new Event("viewer-drawn"));  // the side by side (compare.js) follows window and opacity
    remember();
  }

  // ---- zoom, pan, rotation, flips: one matrix from image pixels to stage pixels ----
  function matrix() {
    const w = viewer.width, h = viewer.height;
    return new DOMMatrix().translate(viewer.x, viewer.y).scale(viewer.scale)
      .translate(w / 2, h / 2).rotate(viewer.rotation).scale(viewer.flipX ? -1 : 1, viewer.flipY ? -1 : 1)
      .translate(-w / 2, -h / 2);
  }
  function fitScale() {
    const box = stage.getBoundingClientRect();
    const turned = viewer.rotation % 180 !== 0;
    const w = turned ? viewer.height : viewer.width, h = turned ? viewer.width : viewer.height;
    return Math.min(box.width / w, box.height / h);
  }
  function centreOn(ix, iy) { // put image point (ix, iy) at the stage's centre, at the current scale
    const box = stage.getBoundingClientRect();
    const at = matrix().transformPoint(new DOMPoint(ix, iy));
    viewer.x += box.width / 2 - at.x;
    viewer.y += box.height / 2 - at.y;
  }
  function fit() {
    viewer.scale = fitScale();
    viewer.x = viewer.y = 0;
    centreOn(viewer.width / 2, viewer.height / 2);
    place();
  }
  function place() {
    canvas.style.transform = matrix().toString();
    if (stateLine.textContent) stateLine.textContent = stateLine.textContent.replace(/zoom [0-9.]+×/, "zoom " + viewer.scale.toFixed(1) + "×");
    drawMarks();
    remember();
  }
  function zoomAt(factor, cx, cy) {
    const next = Math.min(40, Math.max(0.05, viewer.scale * factor));
    viewer.x = cx - (cx - viewer.x) * (next / viewer.scale);
    viewer.y = cy - (cy - viewer.y) * (next / viewer.scale);
    viewer.scale = next;
    place();
  }
  function stageCentre() {
    const box = stage.getBoundingClientRect();
    return [box.width / 2, box.height / 2];
  }
  function toImage(clientX, clientY) {
    const box = stage.getBoundingClientRect();
    const p = matrix().inverse().transformPoint(new DOMPoint(clientX - box.left, clientY - box.top));
    return [p.x, p.y];
  }
  function turn(degrees) {
    const [cx, cy] = stageCentre();
    const [ix, iy] = toImage(stage.getBoundingClientRect().left + cx, stage.getBoundingClientRect().top + cy);
    viewer.rotation = (viewer.rotation + degrees + 360) % 360;
    centreOn(ix, iy);
    place();
  }
  function flip() {
    const [cx, cy] = stageCentre();
    const [ix, iy] = toImage(stage.getBoundingClientRect().left + cx, stage.getBoundingClientRect().top + cy);
    viewer.flipX = !viewer.flipX;
    centreOn(ix, iy);
    place();
  }
  function pan(dx, dy) { viewer.x += dx; viewer.y += dy; place(); }

  // ---- the pixel readout and the length tool ----
  function spacing() { // mm per working-size pixel along [row (y), column (x)], or null
    const v = viewer.values;
    if (!v || !v.pixel_spacing_mm) return null;
    return [v.pixel_spacing_mm[0] * v.original_height / v.height, v.pixel_spacing_mm[1] * v.original_width / v.width];
  }
  function readout(clientX, clientY) {
    const [fx, fy] = toImage(clientX, clientY);
    const ix = Math.floor(fx), iy = Math.floor(fy);
    const out = $("readout");
    if (ix < 0 || iy < 0 || ix >= viewer.width || iy >= viewer.height) {
      viewer.readout = null;
      out.textContent = "Pointer outside the image";
      return;
    }
    const v = viewer.values;
    const value = v ? v.data[iy * viewer.width + ix] : viewer.grey[iy * viewer.width + ix];
    const s = spacing();
    const scaleX = v ? v.original_width / v.width : 1, scaleY = v ? v.original_height / v.height : 1;
    const px = [Math.floor(fx * scaleX), Math.floor(fy * scaleY)];
    viewer.readout = { x: px[0], y: px[1], value, mm: s ? [fx * s[1], fy * s[0]] : null };
    out.textContent = "x " + px[0] + ", y " + px[1] + " px · value " + (Number.isInteger(value) ? value : value.toFixed(2)) +
      (s ? " · " + (fx * s[1]).toFixed(1) + " mm, " + (fy * s[0]).toFixed(1) + " mm" : " · no pixel spacing: pixels only");
  }
  function measure(m) {
    const dx = m.x2 - m.x1, dy = m.y2 - m.y1, s = spacing();
    if (s) { m.length = Math.hypot(dx * s[1], dy * s[0]); m.unit = "mm"; }
    else {
      const v = viewer.values;
      m.length = v ? Math.hypot(dx * v.original_width / v.width, dy * v.original_height / v.height) : Math.hypot(dx, dy);
      m.unit = "px";
    }
    viewer.measurement = m;
    $("measurement").textContent = "Length: " + m.length.toFixed(m.unit === "mm" ? 2 : 1) + " " + m.unit +
      (m.unit === "px" ? " (pixels: this image has no pixel spacing)" : " (" + viewer.values.pixel_spacing_source + ")");
    drawMarks();
  }
  function drawMarks() {
    const box = stage.getBoundingClientRect(), ratio = window.devicePixelRatio || 1;
    if (marks.width !== Math.round(box.width * ratio) || marks.height !== Math.round(box.height * ratio)) {
      marks.width = Math.round(box.width * ratio);
      marks.height = Math.round(box.height * ratio);
      marks.style.width = box.width + "px";
      marks.style.height = box.height + "px";
    }
    const mctx = marks.getContext("2d");
    mctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    mctx.clearRect(0, 0, box.width, box.height);
    const m = viewer.measurement;
    if (!m) return;
    const t = matrix(), a = t.transformPoint(new DOMPoint(m.x1, m.y1)), b = t.transformPoint(new DOMPoint(m.x2, m.y2));
    mctx.lineWidth = 2;
    mctx.strokeStyle = "#ffd400";
    mctx.beginPath(); mctx.moveTo(a.x, a.y); mctx.lineTo(b.x, b.y); mctx.stroke();
    [a, b].forEach((p) => { mctx.beginPath(); mctx.arc(p.x, p.y, 4, 0, 2 * Math.PI); mctx.stroke(); });
    const text = m.length.toFixed(m.unit === "mm" ? 1 : 0) + " " + m.unit;
    mctx.font = "bold 14px system-ui, sans-serif";
    mctx.lineWidth = 3;
    mctx.strokeStyle = "#000";
    mctx.strokeText(text, b.x + 8, b.y - 8);
    mctx.fillStyle = "#ffd400";
    mctx.fillText(text, b.x + 8, b.y - 8);
  }

  // ---- pointer: pan (or the chosen tool) with the left button, window/level with the right or middle ----
  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = stage.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  stage.addEventListener("contextmenu", (event) => event.preventDefault()); // the right button is window/level
  const pointers = new Map();
  let pinch = null, drag = null;
  stage.addEventListener("pointerdown", (event) => {
    stage.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    const mode = event.button === 1 || event.button === 2 ? "wl" : viewer.tool;
    drag = { mode, x: event.clientX, y: event.clientY, wl: { ...viewer.wl } };
    if (mode === "length" && pointers.size === 1) {
      const [x, y] = toImage(event.clientX, event.clientY);
      drag.start = [x, y];
    }
    if (mode !== "wl") stage.classList.add("dragging");
    if (event.button === 1) event.preventDefault();
  });
  stage.addEventListener("pointermove", (event) => {
    readout(event.clientX, event.clientY);
    if (!pointers.has(event.pointerId)) return;
    const [px, py] = pointers.get(event.pointerId);
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
      const box = stage.getBoundingClientRect();
      if (pinch) zoomAt(distance / pinch, (a[0] + b[0]) / 2 - box.left, (a[1] + b[1]) / 2 - box.top);
      pinch = distance;
    } else if (drag && drag.mode === "wl") {
      // Right: wider window (less contrast), by a factor, so that narrow windows stay finely adjustable;
      // down: a higher centre (darker), 300 px moving it by the window's width.
      const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      setWindow(drag.wl.centre + dy * drag.wl.width / 300, drag.wl.width * Math.exp(dx / 150));
    } else if (drag && drag.mode === "length" && drag.start) {
      const [x, y] = toImage(event.clientX, event.clientY);
      measure({ x1: drag.start[0], y1: drag.start[1], x2: x, y2: y });
    } else {
      pan(event.clientX - px, event.clientY - py);
    }
  });
  const release = (event) => {
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = null;
    if (!pointers.size) { stage.classList.remove("dragging"); drag = null; }
  };
  stage.addEventListener("pointerup", release);
  stage.addEventListener("pointercancel", release);
  stage.addEventListener("pointerleave", () => { $("readout").textContent = "Point at the image for its value"; });

  function setTool(tool) {
    viewer.tool = tool;
    const radio = document.querySelector("input[name='tool'][value='" + tool + "']");
    if (radio) radio.checked = true;
    stage.dataset.tool = tool;
  }
  document.querySelectorAll("input[name='tool']").forEach((radio) => {
    radio.addEventListener("change", () => setTool(radio.value));
  });

  // ---- findings ----
  function pick(label) {
    if (!controls.finding || !label) return;
    controls.finding.value = label;
    controls.show.checked = true;
    draw();
  }
  function step(delta) {
    const options = [...controls.finding.options].filter((o) => o.value);  // the findings, not "none"
    if (!options.length) return;
    const index = options.findIndex((o) => o.value === controls.finding.value);
    pick(options[(index + delta + options.length) % options.length].value);
  }
  document.querySelectorAll("table.findings .pick").forEach((link) => {  // links without JavaScript (?finding=)
    link.addEventListener("click", (event) => { event.preventDefault(); pick(link.dataset.label); });
  });
  [controls.show, controls.opacity].forEach((input) => {
    if (input) input.addEventListener("input", draw);
  });
  if (controls.finding) controls.finding.addEventListener("input", () => {
    if (controls.finding.value) pick(controls.finding.value);
    else { controls.show.checked = false; draw(); }
  });
  controls.window.addEventListener("input", () => setWindow(viewer.wl.centre, Number(controls.window.value)));
  controls.level.addEventListener("input", () => setWindow(Number(controls.level.value), viewer.wl.width));
  controls.preset.addEventListener("change", () => applyPreset(controls.preset.value));
  function setInvert(on) { viewer.invert = on; controls.invert.checked = on; showWindow(); schedule(); }
  controls.invert.addEventListener("change", () => setInvert(controls.invert.checked));

  function resetView() {
    viewer.rotation = 0;
    viewer.flipX = viewer.flipY = false;
    viewer.measurement = null;
    $("measurement").textContent = "";
    setInvert(false);
    applyPreset("default");
    fit();
  }
  $("zoom-in").addEventListener("click", () => zoomAt(1.25, ...stageCentre()));
  $("zoom-out").addEventListener("click", () => zoomAt(1 / 1.25, ...stageCentre()));
  $("rotate").addEventListener("click", () => turn(90));
  $("flip").addEventListener("click", flip);
  $("reset-view").addEventListener("click", resetView);
  $("fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else stage.requestFullscreen().then(() => setTimeout(fit, 50)).catch(() => {});
  });
  const help = $("shortcuts");
  $("show-shortcuts").addEventListener("click", () => help.showModal());
  $("close-shortcuts").addEventListener("click", () => help.close());
  document.addEventListener("fullscreenchange", () => setTimeout(fit, 50));
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, select, textarea") || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest("#compare")) return;  // the side by side has its own keys (compare.js)
    if (help.open) return;
    const go = (id) => { const link = $(id); if (link) window.location.assign(link.href); };
    const nudge = Math.round(stage.getBoundingClientRect().width / 10);
    const shifted = {
      ArrowLeft: () => pan(nudge, 0), ArrowRight: () => pan(-nudge, 0), ArrowUp: () => pan(0, nudge), ArrowDown: () => pan(0, -nudge),
      R: () => turn(-90),
    };
    const keys = {
      ArrowUp: () => step(-1), ArrowDown: () => step(1), k: () => step(-1), j: () => step(1),
      ArrowLeft: () => go("prev-image"), ArrowRight: () => go("next-image"),
      h: () => { controls.show.checked = !controls.show.checked; draw(); },
      "+": () => zoomAt(1.25, ...stageCentre()), "=": () => zoomAt(1.25, ...stageCentre()), "-": () => zoomAt(1 / 1.25, ...stageCentre()),
      "0": () => fit(), f: () => $("fullscreen").click(), r: () => turn(90), x: flip,
      i: () => setInvert(!viewer.invert), p: () => setTool("pan"), w: () => setTool("wl"), m: () => setTool("length"),
      Escape: () => { viewer.measurement = null; $("measurement").textContent = ""; drawMarks(); },
      "?": () => help.showModal(),
      "1": () => applyPreset("default"), "2": () => applyPreset("lung"), "3": () => applyPreset("soft_tissue"),
      "4": () => applyPreset("bone"), "5": () => applyPreset("full_range"),
    };
    const action = (event.shiftKey && shifted[event.key]) || keys[event.key];
    if (action) { event.preventDefault(); action(); }
  });
  window.addEventListener("resize", () => { if (viewer.grey) fit(); });

  // ---- the view in the address: ?finding=&opacity=&zoom=&cx=&cy=&wc=&ww=&inv=&rot=&flip= ----
  let ready = false, timer = null;
  function remember() {
    if (!ready) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      const url = new URL(window.location.href), q = url.searchParams;
      const [cx, cy] = stageCentre();
      const box = stage.getBoundingClientRect();
      const [ix, iy] = toImage(box.left + cx, box.top + cy);
      const set = (key, value, fallback) => { if (value === fallback) q.delete(key); else q.set(key, value); };
      set("finding", controls.finding && controls.show.checked ? controls.finding.value : "", "");
      set("opacity", Number(controls.opacity.value).toFixed(2), Number(root.dataset.defaultOpacity || 0.4).toFixed(2));
      const zoom = viewer.scale / fitScale();
      const fitted = Math.abs(zoom - 1) < 0.01 && Math.abs(ix - viewer.width / 2) < 1 && Math.abs(iy - viewer.height / 2) < 1;
      set("zoom", fitted ? "" : zoom.toFixed(3), "");
      set("cx", fitted ? "" : ix.toFixed(1), "");
      set("cy", fitted ? "" : iy.toFixed(1), "");
      const custom = !atDefault();
      set("wc", custom ? String(+viewer.wl.centre.toFixed(3)) : "", "");
      set("ww", custom ? String(+viewer.wl.width.toFixed(3)) : "", "");
      set("inv", viewer.invert ? "1" : "", "");
      set("rot", viewer.rotation ? String(viewer.rotation) : "", "");
      set("flip", viewer.flipX ? "1" : "", "");
      if (url.href !== window.location.href) history.replaceState(null, "", url.href);
      root.dataset.remembered = String(Number(root.dataset.remembered || 0) + 1);
    }, 150);
  }
  function number(q, key, low, high) { // a finite number within [low, high] from the address, else null
    if (!q.has(key)) return null;
    const n = Number(q.get(key));
    return Number.isFinite(n) && n >= low && n <= high ? n : null;
  }
  function restore() {
    const q = new URL(window.location.href).searchParams;
    const label = q.get("finding");
    if (label !== null && controls.finding && [...controls.finding.options].some((o) => o.value === label && label)) {
      controls.finding.value = label;
      controls.show.checked = true;
    }
    const opacity = number(q, "opacity", 0, 1);
    if (opacity !== null) controls.opacity.value = opacity;
    const rot = number(q, "rot", 0, 270);
    if (rot !== null && rot % 90 === 0) viewer.rotation = rot;
    viewer.flipX = q.get("flip") === "1";
    if (q.get("inv") === "1") setInvert(true);
    const wc = number(q, "wc", -1e9, 1e9), ww = number(q, "ww", 1e-3, 1e9);
    if (wc !== null && ww !== null) setWindow(wc, ww);
    fit();
    const zoom = number(q, "zoom", 0.01, 200), cx = number(q, "cx", -1e5, 1e5), cy = number(q, "cy", -1e5, 1e5);
    if (zoom !== null) { viewer.scale = fitScale() * zoom; }
    if (cx !== null && cy !== null) centreOn(cx, cy);
    else if (zoom !== null) centreOn(viewer.width / 2, viewer.height / 2);
    place();
  }

  function legend(colormap) {
    const bar = $("legend-bar");
    const lctx = bar.getContext("2d");
    const strip = lctx.createImageData(256, 1);
    colormap.forEach((c, i) => { strip.data.set([c[0], c[1], c[2], 255], i * 4); });
    for (let y = 0; y < bar.height; y++) lctx.putImageData(strip, 0, y);
  }

  async function loadValues() {
    const url = root.dataset.valuesUrl;
    if (!url) return;
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("the image's values could not be loaded (HTTP " + response.status + ")");
    const body = await response.json();
    if (body.width !== viewer.width || body.height !== viewer.height) return; // not pixel for pixel: stay on 8 bits
    const bytes = Uint8Array.from(atob(body.values), (c) => c.charCodeAt(0));
    body.data = new Float32Array(bytes.buffer);
    delete body.values;
    viewer.values = body;
    const low = body.minimum, range = Math.max(1, body.maximum - body.minimum), step = range > 1000 ? 1 : range / 1000;
    Object.assign(controls.level, { min: low - range / 2, max: body.maximum + range / 2, step });
    Object.assign(controls.window, { min: step, max: range * 2, step });
  }

  async function start() {
    try {
      const image = await loadImage(root.dataset.imageUrl);
      Object.assign(viewer, greyOf(image));
      canvas.width = viewer.width;
      canvas.height = viewer.height;
      if (root.dataset.mapsUrl) {
        const response = await fetch(root.dataset.mapsUrl, { headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error("the heatmaps could not be loaded (HTTP " + response.status + ")");
        const body = await response.json();
        viewer.maps = decodeMaps(body);
        viewer.colormap = body.colormap;
        controls.opacity.value = body.default_opacity;
        root.dataset.defaultOpacity = body.default_opacity;
        legend(body.colormap);
      }
      await loadValues();
      applyPreset("default");
      restore();
      draw();
      ready = true;
      root.dataset.ready = "true";
      root.dispatchEvent(new Event("viewer-ready"));
    } catch (error) {
      stateLine.textContent = error.message;
      root.dataset.ready = "error";
    }
  }
  Object.assign(viewer, { paint, upsampleOf, decodeMaps });
  start();
})();
