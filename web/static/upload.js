// Drag-and-drop and multi-file upload with a progress bar. Without JavaScript the form still posts.
(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("files");
  const zone = document.getElementById("drop-zone");
  const selection = document.getElementById("selection");
  const progress = document.getElementById("upload-progress");
  const errorBox = document.getElementById("upload-error");
  const button = document.getElementById("submit");

  function describe() {
    const n = input.files.length;
    selection.textContent = n === 0 ? "No files chosen." : n === 1 ? input.files[0].name : n + " files chosen.";
  }
  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    button.disabled = false;
    progress.hidden = true;
  }

  input.addEventListener("change", describe);
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    input.files = event.dataTransfer.files;
    describe();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    if (input.files.length === 0) return showError("Choose or drop at least one image first.");
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total;
    });
    request.addEventListener("load", () => {
      if (request.status < 400) {
        window.location.assign(request.responseURL);
      } else {
        // Error pages are HTML; show their message, not the whole page.
        const doc = new DOMParser().parseFromString(request.responseText, "text/html");
        const message = doc.querySelector(".error");
        showError("Upload refused (" + request.status + "): " + (message ? message.textContent : request.statusText));
      }
    });
    request.addEventListener("error", () => showError("The upload failed: the server could not be reached."));
    progress.hidden = false;
    progress.value = 0;
    button.disabled = true;
    request.send(new FormData(form));
  });
})();
