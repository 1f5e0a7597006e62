// In a cluster the server may answer a join with `redirect {url}`: the page opens
// itself (same path, query and fragment) on that node. Only an https origin is
// followed. Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redirectTarget } from '../../web/signaling.js';

const here = { pathname: '/', search: '?room=class%204B&role=viewer', hash: '' };

test('the same page on the other node', () => {
  assert.equal(
    redirectTarget('https://10.0.0.3:8443', here),
    'https://10.0.0.3:8443/?room=class%204B&role=viewer',
  );
  assert.equal(
    redirectTarget('https://b.lan:8443/', { pathname: '/index.html', search: '?room=x', hash: '#v' }),
    'https://b.lan:8443/index.html?room=x#v',
  );
});

test('anything but a bare https origin is refused', () => {
  for (const bad of ['http://10.0.0.3:8443', 'javascript:alert(1)', 'https://a/evil', 'https://a/?x=1', 'not a url', '']) {
    assert.equal(redirectTarget(bad, here), null, bad);
  }
});
