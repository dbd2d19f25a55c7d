// Reload until the job reaches a final state.
(function () {
  const status = document.getElementById("job-status");
  if (status && status.dataset.final !== "true") setTimeout(() => location.reload(), 2000);
})();
