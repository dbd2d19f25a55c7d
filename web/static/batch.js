// The batch page's rows are rendered by the server; this keeps them current. It asks only for what
// changed since its last answer (?since=cursor, and If-None-Match: unchanged is a bodiless 304), stops
// when every image is done, pauses while the tab is hidden, shows images/s and the time left, and puts
// the progress in the tab's title. The server narrows, sorts and pages the rows.
(function () {
  const root = document.getElementById("batch");
  if (!root) return;
  const bar = document.getElementById("batch-progress");
  const summary = document.getElementById("batch-summary");
  const baseTitle = root.dataset.title + " · Chest X-ray analysis";
  let cursor = root.dataset.cursor;
  let etag = null;
  let delay = 1000;
  let timer = null;
  root.dataset.polls = "0";

  function cell(row, content, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content || "";
    row.appendChild(td);
    return td;
  }
  function link(href, content) {
    const a = document.createElement("a");
    a.href = href;
    if (content instanceof Node) a.appendChild(content); else a.textContent = content;
    return a;
  }
  function render(job) {  // the same cells as templates/_job_row.html
    const tr = document.createElement("tr");
    tr.id = "job-" + job.id;
    tr.className = "job status-" + job.status;
    tr.dataset.status = job.status;
    tr.dataset.updated = job.updated_at;
    tr.dataset.position = job.position;
    tr.dataset.top = job.shown_findings.length ? job.shown_findings[0].probability : 0;
    tr.dataset.findings = job.shown_findings.map((f) => f.label).join(" ");
    const thumb = cell(tr, "", "thumb-cell");
    if (job.thumbnail) {
      const img = document.createElement("img");
      img.className = "thumb";
      img.loading = "lazy";
      img.src = job.thumbnail.url;
      img.alt = "heatmap of " + job.thumbnail.display_name + " on " + job.filename;
      thumb.appendChild(link(job.page_url, img));
      const caption = document.createElement("span");
      caption.className = "caption";
      caption.textContent = job.thumbnail.display_name + (job.thumbnail.above_threshold ? "" : " (below threshold)");
      thumb.appendChild(caption);
    }
    cell(tr, link(job.page_url, job.filename), "name").dataset.label = "Image";
    const state = cell(tr, job.status, "status");
    state.dataset.label = "Status";
    if (job.status === "failed" && job.image_url) state.appendChild(retryForm(job));
    const result = cell(tr, job.status === "failed" ? job.error : job.summary, job.status === "failed" ? "result error" : "result");
    result.dataset.label = "Findings";
    if (job.dicom && job.dicom.frontal === false) {
      const flag = document.createElement("span");
      flag.className = "view-flag";
      flag.title = job.warnings[0];
      flag.textContent = " not a frontal view (" + job.dicom.view_position + ")";
      result.appendChild(flag);
    }
    const timing = cell(tr, "", "timing");
    timing.dataset.label = "Timing";
    const parts = [];
    if (job.received_at) parts.push(["t", "received " + job.received_at.slice(11, 19)]);
    if (job.queue_seconds !== null && job.queue_seconds !== undefined) parts.push(["t", "waited " + job.queue_seconds.toFixed(1) + " s"]);
    if (job.run_seconds !== null && job.run_seconds !== undefined) parts.push(["t", "ran " + job.run_seconds.toFixed(1) + " s"]);
    if (job.attempts) parts.push(["t", "attempt " + job.attempts]);
    if (job.worker) parts.push(["t worker", job.worker]);
    parts.forEach(([className, text], i) => {
      if (i) timing.appendChild(document.createTextNode(" "));
      const span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      timing.appendChild(span);
    });
    const model = cell(tr, job.model ? job.model.name + " " + job.model.version.slice(0, 15) : "",
                       "model" + (job.model && !job.model.trained ? " untrained" : ""));
    model.dataset.label = "Model";
    if (job.model && !job.model.trained) model.title = job.model.warning;
    return tr;
  }
  function retryForm(job) {  // the same form as templates/_job_row.html
    const form = document.createElement("form");
    form.className = "inline retry";
    form.method = "post";
    form.action = root.dataset.retryUrl;
    for (const [name, value] of [["csrf_token", root.dataset.csrf], ["job", job.id]]) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "secondary small-button";
    button.textContent = "Retry";
    button.setAttribute("aria-label", "Retry " + job.filename);
    form.appendChild(button);
    return form;
  }
  function duration(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }
  function update(batch) {
    bar.max = batch.total;
    bar.value = batch.done;
    const c = batch.counts;
    let text = batch.done + " of " + batch.total + " done (" + c.succeeded + " succeeded, " + c.failed + " failed, " +
      c.running + " running, " + c.queued + " queued)";
    if (batch.images_per_second) text += " · " + batch.images_per_second.toFixed(1) + " images/s";
    if (!batch.finished && batch.eta_seconds) text += " · about " + duration(batch.eta_seconds) + " left";
    summary.textContent = text + (batch.finished ? "." : "…");
    document.title = (batch.finished ? "Done: " : Math.floor((100 * batch.done) / batch.total) + "% · ") + baseTitle;
    for (const job of batch.jobs) {
      const existing = document.getElementById("job-" + job.id);  // only this page's rows are shown
      // A poll looks back a few seconds (the server's cursor overlap), so most rows it answers are
      // unchanged: those stay as they are, and a changed row keeps its thumbnail when that did not change.
      // (Every repeated row used to be drawn anew, its thumbnail fetched again each second: a burst of
      // requests that ran into the API's rate limit and left blank thumbnails.)
      if (!existing || existing.dataset.updated === job.updated_at) continue;
      const row = render(job);
      const before = existing.querySelector("img.thumb"), after = row.querySelector("img.thumb");
      if (before && after && before.getAttribute("src") === after.getAttribute("src") && before.naturalWidth) {
        after.replaceWith(before);
      }
      existing.replaceWith(row);
    }
    cursor = batch.cursor;
    root.dataset.finished = batch.finished ? "true" : "false";
    document.getElementById("cancel-form").hidden = batch.finished;
    document.getElementById("retry-form").hidden = !c.failed;
  }
  function schedule() {
    clearTimeout(timer);
    if (root.dataset.finished === "true" || document.hidden) return;  // resumes on visibilitychange
    timer = setTimeout(poll, delay);
  }
  async function poll() {
    if (document.hidden) return;  // a timer that fired as the tab was hidden: resume on visibilitychange
    root.dataset.polls = String(Number(root.dataset.polls) + 1);
    try {
      const headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      const response = await fetch(root.dataset.url + "?since=" + encodeURIComponent(cursor), { headers });
      if (response.status !== 304) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        etag = response.headers.get("ETag");
        update(await response.json());
      }
      delay = 1000;
    } catch (err) {
      summary.textContent = "Could not refresh (" + err.message + "); retrying…";
      delay = Math.min(delay * 2, 15000);
    }
    schedule();
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(timer); else schedule();
  });

  // The rows are narrowed, sorted and paged by the server (a GET form: the choices live in the address);
  // a changed list applies at once, and empty fields stay out of the address.
  const filters = document.getElementById("row-filters");
  filters.querySelectorAll("select").forEach((input) => input.addEventListener("change", () => filters.requestSubmit()));
  window.addEventListener("pageshow", () => filters.querySelectorAll("[disabled]").forEach((input) => { input.disabled = false; }));
  filters.addEventListener("submit", () => {
    filters.querySelectorAll("input, select").forEach((input) => {
      if (input.value === "" || (input.name === "min" && Number(input.value) === 0) || (input.name === "sort" && input.value === "position")) input.disabled = true;
    });
  });
  if (root.dataset.finished === "true") {
    document.title = "Done: " + baseTitle;
  } else {
    schedule();
  }
})();
