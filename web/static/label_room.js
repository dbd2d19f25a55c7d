// The label room: one image at a time, one key per finding (present / absent, Shift: unsure), Enter saves
// and moves on; the next image is preloaded so it shows at once. A blind read never draws the model's
// probabilities. Answers go to PUT /api/v1/jobs/<id>/labels with the page's CSRF token.
(function () {
  "use strict";
  const root = document.getElementById("label-room");
  if (!root) return;
  const data = JSON.parse(document.getElementById("label-data").textContent);
  const images = data.images, findings = data.findings;
  const byKey = new Map(findings.map((f) => [f.key, f.label]));
  const img = document.getElementById("label-image");
  const status = document.getElementById("label-status");
  const blindBox = document.getElementById("blind-read");
  const preloaded = new Map();
  let index = data.start, answers = {}, saving = false;

  function blind() { return blindBox.checked; }

  function preload(i) {
    if (i < 0 || i >= images.length || preloaded.has(i)) return;
    const next = new Image();
    next.src = images[i].image;
    preloaded.set(i, next);
  }

  function draw() {
    for (const f of findings) {
      const answer = answers[f.label] || "absent";
      const item = root.querySelector(`li[data-label="${f.label}"]`);
      item.dataset.answer = answer;
      item.querySelector("[data-answer-of]").textContent = answer;
      item.querySelector("button").setAttribute("aria-pressed", answer === "present" ? "true" : "false");
      const probability = images[index].probabilities[f.label];
      item.querySelector(".probability").textContent = blind() || probability === undefined ? "" : probability.toFixed(2);
    }
    const says = images[index].positive.filter((l) => l !== "No Finding");
    document.getElementById("model-says").textContent = blind() ? "" :
      "The model says: " + (says.length ? says.join(", ") : "no finding above its threshold");
    root.classList.toggle("blind", blind());
  }

  async function show(i) {
    index = Math.max(0, Math.min(images.length - 1, i));
    const image = images[index], shown = index;
    delete root.dataset.ready;
    img.src = image.image;
    document.getElementById("label-position").textContent =
      `Image ${index + 1} of ${images.length}: ${image.name}${image.done ? " (labelled)" : ""}`;
    answers = {};
    draw();
    preload(index + 1);
    const response = await fetch(image.labels, { headers: { Accept: "application/json" } });
    if (shown !== index) return;  // moved on meanwhile
    if (response.ok) {
      // Keys pressed while the earlier answers were on their way win over them.
      answers = Object.assign((await response.json()).mine || {}, answers);
      draw();
    }
    root.dataset.ready = String(index + 1);  // which image is ready for keys (tests wait for it)
  }

  function set(label, answer) {
    answers[label] = (answers[label] || "absent") === answer ? "absent" : answer;
    draw();
  }

  async function save() {
    if (saving) return;
    saving = true;
    const body = { answers: {}, blind: blind() };
    for (const f of findings) body.answers[f.label] = answers[f.label] || "absent";
    body.answers["No Finding"] = Object.values(body.answers).some((a) => a === "present") ? "absent" : "present";
    try {
      const response = await fetch(images[index].labels, {
        method: "PUT", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": root.dataset.csrf },
      });
      if (!response.ok) {
        status.textContent = "Not saved: " + ((await response.json()).error || {}).message;
        return;
      }
      images[index].done = true;
      const labelled = images.filter((im) => im.done).length;
      status.textContent = `Saved image ${index + 1}; ${labelled} of ${images.length} labelled.`;
    } finally {
      saving = false;
    }
    if (index + 1 < images.length) show(index + 1);
  }

  document.getElementById("label-form").addEventListener("submit", (event) => { event.preventDefault(); save(); });
  document.getElementById("label-previous").addEventListener("click", () => show(index - 1));
  blindBox.addEventListener("change", draw);
  root.querySelectorAll("button.finding").forEach((button) =>
    button.addEventListener("click", (event) => set(button.dataset.label, event.shiftKey ? "unsure" : "present")));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof HTMLInputElement && event.key !== "Enter") return;
    const key = event.code.startsWith("Digit") ? event.code.slice(5) : event.code.startsWith("Key") ? event.code.slice(3).toLowerCase() : null;
    if (key && byKey.has(key)) {
      event.preventDefault();
      set(byKey.get(key), event.shiftKey ? "unsure" : "present");
    } else if (event.key === "Enter") {
      event.preventDefault();
      save();
    } else if (event.key === "Backspace") {
      event.preventDefault();
      show(index - 1);
    } else if (key === "b") {
      blindBox.checked = !blindBox.checked;
      draw();
    }
  });
  show(index);
})();
