// Heatmap thumbnails (batch page, history) are drawn by the web on request. One that fails to load (a 429
// while a burst of finished jobs asks for theirs at once, a web process restarting after `make run`) would
// stay blank for good: an <img> never asks twice. Each is tried again, after 1, 2, 4, 8 and 16 s.
(function () {
  const TRIES = 5;
  document.addEventListener("error", (event) => {  // image errors do not bubble: caught on the way down
    const img = event.target;
    if (!(img instanceof HTMLImageElement) || !img.classList.contains("thumb")) return;
    const tries = Number(img.dataset.tries || 0);
    if (tries >= TRIES) return;
    img.dataset.tries = String(tries + 1);
    setTimeout(() => {
      const src = img.getAttribute("src");
      img.removeAttribute("src");
      img.setAttribute("src", src);
    }, 1000 * 2 ** tries);
  }, true);
})();
