// Poll the batch's JSON and fill in each image as it finishes; stop when all are done.
(function () {
  const root = document.getElementById("batch");
  const rows = document.getElementById("job-rows");
  const bar = document.getElementById("batch-progress");
  const summary = document.getElementById("batch-summary");
  let delay = 1000;

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    row.appendChild(td);
    return td;
  }
  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }
  function render(job) {
    const tr = document.createElement("tr");
    tr.id = "job-" + job.id;
    tr.className = "job status-" + job.status;
    tr.dataset.status = job.status;
    const top = job.shown_findings[0];
    if (top && top.overlay_url) {
      const img = document.createElement("img");
      img.className = "thumb";
      img.src = top.overlay_url;
      img.alt = "heatmap for " + top.display_name;
      cell(tr, link(job.page_url, "")).firstChild.appendChild(img);
    } else {
      cell(tr, "");
    }
    cell(tr, link(job.page_url, job.filename));
    cell(tr, job.status);
    if (job.status === "failed") {
      cell(tr, job.error || "failed").className = "error";
    } else {
      cell(tr, job.shown_findings.map((f) => f.display_name + " " + (100 * f.probability).toFixed(1) + "%").join(", "));
    }
    const model = cell(tr, job.model ? job.model.name + " " + job.model.version.slice(0, 15) : "");
    model.className = "model" + (job.model && !job.model.trained ? " untrained" : "");
    if (job.model && !job.model.trained) model.title = job.model.warning;
    return tr;
  }
  function update(batch) {
    bar.max = batch.total;
    bar.value = batch.done;
    const c = batch.counts;
    summary.textContent = batch.done + " of " + batch.total + " done (" + c.succeeded + " succeeded, " +
      c.failed + " failed, " + c.running + " running, " + c.queued + " queued)" + (batch.finished ? "." : "…");
    for (const job of batch.jobs) {
      const existing = document.getElementById("job-" + job.id);
      if (!existing) rows.appendChild(render(job));
      else if (existing.dataset.status !== job.status) existing.replaceWith(render(job));
    }
    root.dataset.finished = batch.finished ? "true" : "false";
  }
  async function poll() {
    try {
      const response = await fetch(root.dataset.url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const batch = await response.json();
      update(batch);
      if (batch.finished) return;
      delay = 1000;
    } catch (err) {
      summary.textContent = "Could not refresh (" + err.message + "); retrying…";
      delay = Math.min(delay * 2, 10000);
    }
    setTimeout(poll, delay);
  }
  poll();
})();
