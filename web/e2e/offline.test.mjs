// Scenario 3 of issue 3: one person goes offline, both edit, the offline one
// reloads the tab while still offline (the edits are still there), then
// reconnects; both end with the same text holding every edit.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  ALICE,
  BOB,
  editorText,
  focusEnd,
  launchBrowser,
  openDocument,
  personContext,
  QuireServer,
  waitForConvergence,
  waitForSaveState,
  waitUntil,
  withDiagnostics,
} from './harness.mjs';

/** @type {QuireServer} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Array<Awaited<ReturnType<typeof personContext>>>} */
const people = [];

before(async () => {
  server = await QuireServer.launch();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('offline edits survive a reload and merge on reconnect', { timeout: 120_000 }, async (t) => {
  await withDiagnostics(t, () => people, () => server, async () => {
    const id = await server.createDocument('Offline');
    const alice = await personContext(browser, ALICE);
    const bob = await personContext(browser, BOB);
    people.push(alice, bob);
    await Promise.all([openDocument(alice.page, server.url, id), openDocument(bob.page, server.url, id)]);
    await Promise.all([waitForSaveState(alice.page, 'saved'), waitForSaveState(bob.page, 'saved')]);

    await focusEnd(alice.page);
    await alice.page.keyboard.type('Shared start.');
    await waitForConvergence(alice.page, bob.page, (s) => s.includes('Shared start.'));
    await waitForSaveState(alice.page, 'saved');

    // The app shell must be cached before the network goes away.
    await alice.page.evaluate(() => navigator.serviceWorker.ready.then(() => true));

    await alice.context.setOffline(true);
    await waitForSaveState(alice.page, 'offline');
    assert.equal((await alice.page.getByTestId('save-state').innerText()).trim(), 'Offline — changes kept on this device');

    await focusEnd(alice.page);
    await alice.page.keyboard.press('Enter');
    await alice.page.keyboard.type('Alice wrote this offline.');
    await focusEnd(bob.page);
    await bob.page.keyboard.press('Enter');
    await bob.page.keyboard.type('Bob wrote this online.');
    await waitForSaveState(bob.page, 'saved');
    assert.ok(!(await editorText(bob.page)).includes('Alice wrote this offline.'));

    // Reload while still offline: the shell comes from the service worker,
    // the document from IndexedDB.
    await alice.page.reload();
    await alice.page.locator('.ProseMirror').waitFor({ timeout: 20_000 });
    await waitUntil(() => editorText(alice.page), (s) => s.includes('Alice wrote this offline.'), {
      message: "Alice's offline edit after the reload",
    });
    await waitForSaveState(alice.page, 'offline');
    assert.ok(!(await editorText(alice.page)).includes('Bob wrote this online.'));

    await alice.context.setOffline(false);
    const [text] = await waitForConvergence(
      alice.page,
      bob.page,
      (s) => s.includes('Alice wrote this offline.') && s.includes('Bob wrote this online.') && s.includes('Shared start.'),
      30_000,
    );
    assert.equal(text.split('Shared start.').length, 2, 'no duplicated content');
    await Promise.all([waitForSaveState(alice.page, 'saved', 30_000), waitForSaveState(bob.page, 'saved')]);
  });
});
