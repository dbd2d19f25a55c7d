// Light or dark: follows the system (prefers-color-scheme) until the person picks one, then remembers it.
(function () {
  const root = document.documentElement;
  const stored = localStorage.getItem("xray-theme");
  const system = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  root.dataset.theme = stored || system;
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-switch");
    if (!button) return;
    const show = () => button.setAttribute("aria-pressed", root.dataset.theme === "dark" ? "true" : "false");
    show();
    button.addEventListener("click", () => {
      root.dataset.theme = root.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem("xray-theme", root.dataset.theme);
      show();
    });
  });
})();
