// Trusting lanrelay's own CA, in a real browser: headless Chromium WITHOUT
// --ignore-certificate-errors, with only lanrelay's CA added to its NSS database, loads
// the HTTPS page with no certificate error and starts the camera; the same browser
// without the CA is refused; the plain-HTTP helper redirects to HTTPS and serves the CA
// and the install page; the QR codes on the pages decode back to their URLs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import { startServer, waitFor, repoRoot } from './lib.mjs';
import { nssHome, launchStrictBrowser, strictPage } from './nss.mjs';

const artifacts = join(repoRoot, 'tests', 'e2e', 'artifacts');
mkdirSync(artifacts, { recursive: true });

let server;
let trusting;
let browser;
let caPem;

before(async () => {
  server = await startServer();
  caPem = readFileSync(join(server.certsDir, 'ca.crt'), 'utf8');
  trusting = nssHome(join(server.certsDir, 'ca.crt'));
  console.log(`NSS database of the test browser:\n${trusting.listing.trim()}`);
  browser = await launchStrictBrowser(trusting.home);
});

after(async () => {
  await browser?.close();
  trusting?.cleanup();
  await server?.stop();
});

/** Decodes the QR code in a PNG screenshot. */
function decodeQr(png) {
  const img = PNG.sync.read(png);
  const code = jsQR(new Uint8ClampedArray(img.data), img.width, img.height);
  return code ? code.data : null;
}

/** Screenshots an <img> once it has loaded, and decodes it. */
async function decodeImage(page, selector) {
  await waitFor(() => page.$eval(selector, (el) => /** @type {HTMLImageElement} */ (el).complete && /** @type {HTMLImageElement} */ (el).naturalWidth > 0), 5000, `${selector} loaded`);
  return decodeQr(await page.locator(selector).screenshot());
}

test('with only the CA trusted, the HTTPS page loads cleanly and the camera starts', async () => {
  const page = await strictPage(browser);
  try {
    const response = await page.goto(server.url);
    assert.ok(response, 'navigated');
    assert.equal(response.status(), 200);
    const tls = await response.securityDetails();
    const ca = new X509Certificate(caPem);
    const caName = /CN=([^\n]+)/.exec(ca.subject)[1];
    console.log(`loaded ${page.url()} with no certificate error: ${tls.protocol}, certificate "${tls.subjectName}" issued by "${tls.issuer}", valid until ${new Date(tls.validTo * 1000).toISOString()}`);
    assert.equal(tls.issuer, caName, 'the server certificate is issued by lanrelay\'s CA');
    assert.equal(await page.evaluate(() => window.isSecureContext), true, 'a secure context');
    assert.equal(await page.isHidden('#insecure'), true, 'no insecure-context warning');

    await page.goto(`${server.url}?room=trusted&name=Tess&autojoin=1`);
    const cam = await waitFor(() => page.evaluate(() => {
      const v = /** @type {HTMLVideoElement} */ (document.getElementById('self-video'));
      const s = /** @type {MediaStream | null} */ (v.srcObject);
      const track = s?.getVideoTracks()[0];
      return track && track.readyState === 'live' && v.videoWidth > 0 ? { width: v.videoWidth, height: v.videoHeight, label: track.label } : null;
    }), 15000, 'camera preview playing');
    console.log(`camera started: ${cam.width}x${cam.height} (${cam.label})`);
    await waitFor(async () => (await page.textContent('#status-text'))?.startsWith('Connected'), 15000, 'connected to the server');
  } catch (e) {
    console.log(page.logs.join('\n'), server.logs().slice(-3000));
    throw e;
  } finally {
    await page.context().close();
  }
});

test('the same browser without the CA is refused (the trust comes from the NSS database)', async () => {
  const untrusting = nssHome(null);
  const plain = await launchStrictBrowser(untrusting.home);
  try {
    const page = await strictPage(plain);
    await assert.rejects(page.goto(server.url), /ERR_CERT_AUTHORITY_INVALID/);
    console.log('without the CA: net::ERR_CERT_AUTHORITY_INVALID, as expected');
  } finally {
    await plain.close();
    untrusting.cleanup();
  }
});

test('the HTTP helper redirects to HTTPS and serves the CA and the install page', async () => {
  assert.ok(server.httpUrl, 'the helper is on');
  const page = await strictPage(browser, { viewport: { width: 390, height: 844 }, userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1' });
  try {
    // A page address typed without https:// ends on the HTTPS page.
    const response = await page.goto(`${server.httpUrl}/?room=hall`);
    assert.equal(page.url(), `${server.url}?room=hall`);
    assert.equal(response.request().redirectedFrom()?.url(), `${server.httpUrl}/?room=hall`);
    assert.equal(response.status(), 200);

    // The CA, over plain HTTP, is the file the server made.
    const crt = await page.request.get(`${server.httpUrl}/ca.crt`, { maxRedirects: 0 });
    assert.equal(crt.status(), 200);
    assert.equal(crt.headers()['content-type'], 'application/x-x509-ca-cert');
    assert.equal(await crt.text(), caPem);
    const profile = await page.request.get(`${server.httpUrl}/ca.mobileconfig`, { maxRedirects: 0 });
    assert.equal(profile.headers()['content-type'], 'application/x-apple-aspen-config');

    // The install page over plain HTTP: fingerprint, iPhone steps first, QR code.
    await page.goto(`${server.httpUrl}/trust`);
    await waitFor(() => page.evaluate(() => document.body.dataset.ready === '1'), 5000, 'install page filled in');
    const fingerprint = new X509Certificate(caPem).fingerprint256;
    assert.equal(await page.textContent('#sha256'), fingerprint, 'the page shows the CA fingerprint');
    const first = await page.$eval('#platforms details', (d) => ({ platform: d.getAttribute('data-platform'), open: /** @type {HTMLDetailsElement} */ (d).open }));
    assert.deepEqual(first, { platform: 'ios', open: true }, 'an iPhone sees its steps first');
    assert.match(await page.getAttribute('#dl-mobileconfig', 'class'), /primary/);
    const helperUrl = `${server.httpUrl}/trust`;
    assert.equal(await decodeImage(page, '#helper-qr'), helperUrl, 'the QR code opens this page on another device');
    assert.equal(await page.getAttribute('#open-link', 'href'), server.url);
    await page.screenshot({ path: join(artifacts, 'trust-phone.png'), fullPage: true });
    console.log(`helper: ${server.httpUrl}/ redirects to ${server.url}; ${helperUrl} shows fingerprint ${fingerprint.slice(0, 23)}… and its QR code decodes to ${helperUrl}`);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.context().close();
  }
});

test('the install page puts Android steps first on an Android phone', async () => {
  const page = await strictPage(browser, { viewport: { width: 412, height: 915 }, userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36' });
  try {
    await page.goto(`${server.url}trust`);
    const order = await page.$$eval('#platforms details', (ds) => ds.map((d) => d.getAttribute('data-platform')));
    assert.deepEqual(order.slice(0, 2), ['android', 'xiaomi'], 'Android, then Xiaomi/Redmi (Chrome does not name the maker)');
    assert.deepEqual([...order].sort(), ['android', 'ios', 'linux', 'macos', 'windows', 'xiaomi']);
    assert.match(await page.getAttribute('#dl-crt', 'class'), /primary/);
  } finally {
    await page.context().close();
  }
});

test('the install page puts the Xiaomi/Redmi steps first on a Xiaomi phone', async () => {
  const page = await strictPage(browser, { viewport: { width: 393, height: 873 }, userAgent: 'Mozilla/5.0 (Linux; U; Android 14; zh-cn; 23127PN0CC Build/UKQ1.230804.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/118.0.0.0 Mobile Safari/537.36 XiaoMi/MiuiBrowser/18.6.70502' });
  try {
    await page.goto(`${server.url}trust`);
    const order = await page.$$eval('#platforms details', (ds) => ds.map((d) => d.getAttribute('data-platform')));
    assert.deepEqual(order.slice(0, 2), ['xiaomi', 'android']);
    assert.notEqual(await page.getAttribute('details[data-platform="xiaomi"]', 'open'), null, 'its steps are open');
    assert.match(await page.textContent('details[data-platform="xiaomi"] li:nth-child(2)'), /Password & security → Privacy →\s+Encryption & credentials → Install a certificate → CA certificate/);
    assert.match(await page.textContent('details[data-platform="xiaomi"] summary'), /your device/);
    await page.screenshot({ path: join(artifacts, 'trust-xiaomi.png'), fullPage: true });
  } finally {
    await page.context().close();
  }
});

test('the QR code on the start page decodes back to the room URL', async () => {
  const page = await strictPage(browser);
  try {
    await page.goto(`${server.url}?room=qr-check`);
    await waitFor(() => page.isVisible('#invite'), 5000, 'invite block shown');
    const link = await page.textContent('#room-link');
    assert.equal(link, `${server.url}?room=qr-check`);
    assert.equal(await decodeImage(page, '#invite-qr'), link);
    await page.fill('#room', 'second-room');
    await waitFor(async () => (await page.getAttribute('#invite-qr', 'data-text'))?.includes('second-room'), 5000, 'QR code follows the room');
    const decoded = await decodeImage(page, '#invite-qr');
    assert.equal(decoded, `${server.url}?room=second-room`);
    assert.equal(await page.getAttribute('#invite a', 'href'), '/trust');
    await page.screenshot({ path: join(artifacts, 'start-laptop.png') });
    console.log(`start page QR code decodes to ${decoded}`);
  } finally {
    await page.context().close();
  }
});
