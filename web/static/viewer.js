// The viewer: one X-ray on a canvas, every finding's class activation map drawn over it from data.
// Maps arrive at the model's feature resolution (/api/v1/jobs/<id>/maps) and are drawn exactly as the
// server draws overlays (shared/imaging/maps.py): bilinear resize with pixel centres aligned (OpenCV's
// INTER_LINEAR), the same JET colour table, blend (1 - opacity) * grey + opacity * colour.
(function () {
  const root = document.getElementById("viewer");
  if (!root) return;
  const stage = document.getElementById("stage");
  const canvas = document.getElementById("view");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const controls = {
    finding: document.getElementById("finding"),
    show: document.getElementById("show-heatmap"),
    opacity: document.getElementById("opacity"),
    window: document.getElementById("window"),
    level: document.getElementById("level"),
  };
  const stateLine = document.getElementById("viewer-state");
  const MAX_SIDE = 1024;
  const viewer = { grey: null, width: 0, height: 0, maps: null, colormap: null, upsampled: {}, scale: 1, x: 0, y: 0 };
  window.xrayViewer = viewer; // for tests and the curious: the current state

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

  function upsample(label) {
    if (viewer.upsampled[label]) return viewer.upsampled[label];
    const source = viewer.maps.maps[label];
    const w = viewer.maps.width, h = viewer.maps.height;
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
    viewer.upsampled[label] = out;
    return out;
  }

  function draw() {
    if (!viewer.grey) return;
    const image = ctx.createImageData(viewer.width, viewer.height);
    const out = image.data;
    const width = Number(controls.window.value), centre = Number(controls.level.value);
    const low = centre - width / 2, gain = 255 / width;
    const label = controls.finding ? controls.finding.value : "";
    const heat = viewer.maps && label && controls.show.checked ? upsample(label) : null;
    const alpha = Number(controls.opacity.value);
    const lut = viewer.colormap;
    for (let i = 0, p = 0; i < viewer.grey.length; i++, p += 4) {
      let g = viewer.grey[i];
      if (width !== 255 || centre !== 128) g = Math.min(255, Math.max(0, (g - low) * gain));
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
    ctx.putImageData(image, 0, 0);
    const name = controls.finding && controls.finding.selectedOptions[0] ? controls.finding.selectedOptions[0].textContent : "";
    canvas.setAttribute("aria-label", heat ? "X-ray with the heatmap of " + name : "X-ray without heatmap");
    document.querySelectorAll("table.findings tr[data-label]").forEach((row) => {
      row.classList.toggle("selected", row.dataset.label === label);
    });
    stateLine.textContent = (heat ? "Showing " + name : "Heatmap hidden") + " · zoom " + viewer.scale.toFixed(1) + "×";
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
  }

  // Zoom and pan: a CSS transform of the canvas inside the stage.
  function fit() {
    const box = stage.getBoundingClientRect();
    viewer.scale = Math.min(box.width / viewer.width, box.height / viewer.height);
    viewer.x = (box.width - viewer.width * viewer.scale) / 2;
    viewer.y = (box.height - viewer.height * viewer.scale) / 2;
    place();
  }
  function place() {
    canvas.style.transform = "translate(" + viewer.x + "px," + viewer.y + "px) scale(" + viewer.scale + ")";
    if (stateLine.textContent) stateLine.textContent = stateLine.textContent.replace(/zoom [0-9.]+×/, "zoom " + viewer.scale.toFixed(1) + "×");
  }
  function zoomAt(factor, cx, cy) {
    const next = Math.min(40, Math.max(0.05, viewer.scale * factor));
    viewer.x = cx - (cx - viewer.x) * (next / viewer.scale);
    viewer.y = cy - (cy - viewer.y) * (next / viewer.scale);
    viewer.scale = next;
    place();
  }
  function centre() {
    const box = stage.getBoundingClientRect();
    return [box.width / 2, box.height / 2];
  }
  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = stage.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  const pointers = new Map();
  let pinch = null;
  stage.addEventListener("pointerdown", (event) => {
    stage.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", (event) => {
    if (!pointers.has(event.pointerId)) return;
    const [px, py] = pointers.get(event.pointerId);
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
      const box = stage.getBoundingClientRect();
      if (pinch) zoomAt(distance / pinch, (a[0] + b[0]) / 2 - box.left, (a[1] + b[1]) / 2 - box.top);
      pinch = distance;
    } else {
      viewer.x += event.clientX - px;
      viewer.y += event.clientY - py;
      place();
    }
  });
  const release = (event) => {
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = null;
    if (!pointers.size) stage.classList.remove("dragging");
  };
  stage.addEventListener("pointerup", release);
  stage.addEventListener("pointercancel", release);

  function pick(label) {
    if (!controls.finding || !label) return;
    controls.finding.value = label;
    controls.show.checked = true;
    draw();
  }
  function step(delta) {
    const options = [...controls.finding.options].filter((o) => o.value);  // the findings, not "none"
    const index = options.findIndex((o) => o.value === controls.finding.value);
    pick(options[(index + delta + options.length) % options.length].value);
  }
  document.querySelectorAll("table.findings button.pick").forEach((button) => {
    button.addEventListener("click", () => pick(button.dataset.label));
  });
  [controls.finding, controls.show, controls.opacity, controls.window, controls.level].forEach((input) => {
    if (input) input.addEventListener("input", draw);
  });
  document.getElementById("zoom-in").addEventListener("click", () => zoomAt(1.25, ...centre()));
  document.getElementById("zoom-out").addEventListener("click", () => zoomAt(1 / 1.25, ...centre()));
  document.getElementById("reset-view").addEventListener("click", () => {
    controls.window.value = 255;
    controls.level.value = 128;
    fit();
    draw();
  });
  document.getElementById("fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else stage.requestFullscreen().then(() => setTimeout(fit, 50)).catch(() => {});
  });
  document.addEventListener("fullscreenchange", () => setTimeout(fit, 50));
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, select, textarea") || event.altKey || event.ctrlKey || event.metaKey) return;
    const go = (id) => { const link = document.getElementById(id); if (link) window.location.assign(link.href); };
    const keys = {
      ArrowUp: () => step(-1), ArrowDown: () => step(1), k: () => step(-1), j: () => step(1),
      ArrowLeft: () => go("prev-image"), ArrowRight: () => go("next-image"),
      h: () => { controls.show.checked = !controls.show.checked; draw(); },
      "+": () => zoomAt(1.25, ...centre()), "=": () => zoomAt(1.25, ...centre()), "-": () => zoomAt(1 / 1.25, ...centre()),
      "0": () => fit(), f: () => document.getElementById("fullscreen").click(),
    };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
  });
  window.addEventListener("resize", () => { if (viewer.grey) fit(); });

  function legend(colormap) {
    const bar = document.getElementById("legend-bar");
    const lctx = bar.getContext("2d");
    const strip = lctx.createImageData(256, 1);
    colormap.forEach((c, i) => { strip.data.set([c[0], c[1], c[2], 255], i * 4); });
    for (let y = 0; y < bar.height; y++) lctx.putImageData(strip, 0, y);
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
        const maps = {};
        for (const [label, encoded] of Object.entries(body.maps)) {
          maps[label] = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
        }
        viewer.maps = { width: body.width, height: body.height, maps };
        viewer.colormap = body.colormap;
        controls.opacity.value = body.default_opacity;
        legend(body.colormap);
      }
      fit();
      draw();
      root.dataset.ready = "true";
    } catch (error) {
      stateLine.textContent = error.message;
      root.dataset.ready = "error";
    }
  }
  start();
})();
