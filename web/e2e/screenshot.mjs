// Renders docs/screenshot-two-editors.png: two browsers editing one document,
// each showing the other's caret. Run with `npm --prefix web run screenshot`
// after building the server (same QUIRE_BIN as the end-to-end tests).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ALICE, BOB, focusEnd, launchBrowser, openDocument, personContext, QuireServer, waitForSaveState, webDir } from './harness.mjs';

const out = join(webDir, '..', 'docs', 'screenshot-two-editors.png');
const server = await QuireServer.launch();
const browser = await launchBrowser();
try {
  const id = await server.createDocument('Launch checklist');
  const viewport = { width: 900, height: 640 };
  const alice = await personContext(browser, ALICE, viewport);
  const bob = await personContext(browser, BOB, viewport);
  await openDocument(alice.page, server.url, id);
  await waitForSaveState(alice.page, 'saved');

  const a = alice.page;
  await focusEnd(a);
  await a.keyboard.press('Control+Alt+1');
  await a.keyboard.type('Launch checklist');
  await a.keyboard.press('Enter');
  await a.keyboard.type('Everything we need before ');
  await a.keyboard.press('Control+b');
  await a.keyboard.type('Friday');
  await a.keyboard.press('Control+b');
  await a.keyboard.type(', edited live by the whole team.');
  await a.keyboard.press('Enter');
  await a.keyboard.press('Control+Shift+9');
  await a.keyboard.type('Freeze the release branch');
  await a.keyboard.press('Enter');
  await a.keyboard.type('Write the announcement');
  await a.keyboard.press('Enter');
  await a.keyboard.type('Update the docs');
  await a.keyboard.press('Enter');
  await a.keyboard.press('Enter');
  await a.keyboard.type('Notes');
  await a.keyboard.press('Control+Alt+2');
  await a.keyboard.press('End');
  await a.keyboard.press('Enter');
  await a.keyboard.type('Ship it when the checks are green.');
  await a.locator('ul[data-type="taskList"] li input[type="checkbox"]').first().check();
  await waitForSaveState(a, 'saved');

  await openDocument(bob.page, server.url, id);
  await waitForSaveState(bob.page, 'saved');
  const b = bob.page;
  await b.locator('.ProseMirror p', { hasText: 'Everything we need' }).click();
  await b.keyboard.press('End');
  await b.keyboard.type(' Bob is adding this sentence.');
  // Alice selects a word so her selection highlight shows on Bob's screen.
  await a.locator('.ProseMirror li p', { hasText: 'Write the announcement' }).click();
  await a.keyboard.press('End');
  await a.keyboard.press('Control+Shift+ArrowLeft');
  await a.locator('.collaboration-carets__label', { hasText: BOB.name }).waitFor();
  await b.locator('.collaboration-carets__label', { hasText: ALICE.name }).waitFor();
  await Promise.all([waitForSaveState(a, 'saved'), waitForSaveState(b, 'saved')]);
  // Let the caret and selection decorations paint.
  await Promise.all([a.evaluate(() => new Promise(requestAnimationFrame)), b.evaluate(() => new Promise(requestAnimationFrame))]);

  const [shotA, shotB] = await Promise.all([a.screenshot(), b.screenshot()]);
  // Compose the two windows side by side in a third page.
  const frame = await browser.newPage({ viewport: { width: 1860, height: 740 } });
  const img = (/** @type {Buffer} */ buf, /** @type {string} */ label) =>
    `<figure><figcaption>${label}</figcaption><img src="data:image/png;base64,${buf.toString('base64')}"></figure>`;
  await frame.setContent(`<!doctype html><style>
    body{margin:0;background:#dfe3ea;display:flex;gap:20px;padding:30px 20px;font:600 14px system-ui,sans-serif;color:#3a4252}
    figure{margin:0;display:grid;gap:8px} img{width:900px;height:640px;border-radius:10px;box-shadow:0 10px 30px rgba(16,24,40,.25)}
    figcaption{padding-left:4px}</style>
    ${img(shotA, `Browser 1 — ${ALICE.name}`)}${img(shotB, `Browser 2 — ${BOB.name}`)}`);
  mkdirSync(join(webDir, '..', 'docs'), { recursive: true });
  writeFileSync(out, await frame.screenshot());
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.stop();
}
