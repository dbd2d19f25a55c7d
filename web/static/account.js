// The account page: copy a new token with one click; revoking a token asks first (without JavaScript
// the Revoke button revokes, as before).
(function () {
  const copy = document.getElementById("copy-token");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", async () => {
      const state = document.getElementById("copy-state");
      try {
        await navigator.clipboard.writeText(document.getElementById(copy.dataset.copy).textContent.trim());
        state.textContent = "Copied.";
      } catch (error) {
        state.textContent = "Could not copy: select the token and copy it.";
      }
    });
  }
  document.querySelectorAll("form.revoke").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
