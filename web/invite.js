// @ts-check
/**
 * The start page's invite block: a QR code of the room link, so a second person
 * joins by pointing their phone's camera at this screen, and the way to the install
 * page. Kept apart from app.js: it only reads the room link that app.js shows.
 */

/** @param {string} id */
const $ = (id) => document.getElementById(id);

/** @param {string} host URL.hostname */
function isLocalHost(host) {
  return host === 'localhost' || host === '[::1]' || host === '::1' || host.startsWith('127.');
}

/** An address other devices can reach, when this page was opened on localhost. */
let lanBase = /** @type {string | null} */ (null);

/** The room link as shown on the page, on an address a phone can reach. */
function inviteUrl() {
  const link = /** @type {HTMLAnchorElement | null} */ ($('room-link'));
  if (!link || !link.getAttribute('href') || link.getAttribute('href') === '#') return null;
  const u = new URL(link.href);
  if (lanBase && isLocalHost(u.hostname)) u.host = new URL(lanBase).host;
  return u.toString();
}

function render() {
  const text = inviteUrl();
  const img = /** @type {HTMLImageElement | null} */ ($('invite-qr'));
  const section = $('invite');
  if (!text || !img || !section) return;
  if (img.dataset.text === text) return;
  img.src = `/qr.svg?text=${encodeURIComponent(text)}`;
  img.dataset.text = text;
  img.title = text;
  section.hidden = false;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let timer;
$('room')?.addEventListener('input', () => {
  clearTimeout(timer);
  timer = setTimeout(render, 200);
});

if (isLocalHost(location.hostname)) {
  fetch('/api/trust')
    .then((r) => r.json())
    .then((info) => {
      /** @type {string[]} */
      const urls = info.httpsUrls || [];
      lanBase = urls.find((u) => !isLocalHost(new URL(u).hostname)) || null;
      render();
    })
    .catch(() => {});
}
render();
