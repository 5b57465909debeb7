// Per-account quotas in the browser: the documents page says how much is
// used near a limit and shows the server's reason when a create is refused;
// the editor, when the owner's storage is full, stops with a calm message
// and keeps the last edits on the device, while the server keeps what it had.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ALICE, BOB, editorText, focusEnd, launchBrowser, personContext, QuireServer, waitForSaveState, withDiagnostics } from './harness.mjs';

/** @type {QuireServer} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Array<Awaited<ReturnType<typeof personContext>>>} */
const people = [];

before(async () => {
  server = await QuireServer.launch(['--max-documents-per-account', '2', '--max-account-bytes', '20000']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the documents page shows usage near the quota and why a create was refused', { timeout: 90_000 }, async (t) => {
  await withDiagnostics(t, () => people, () => server, async () => {
    const alice = await personContext(browser, ALICE);
    people.push(alice);
    const page = alice.page;
    for (const title of ['First', 'Second']) {
      assert.equal((await server.api('POST', '/api/documents', { title }, alice)).status, 201);
    }
    await page.goto(server.url + '/');
    await page.getByTestId('doc-row').filter({ hasText: 'Second' }).waitFor();
    assert.equal(await page.getByTestId('quota-usage').innerText(), 'You are using 2 of 2 documents.');

    await page.getByTestId('new-document').click();
    const refusal = page.getByTestId('create-error');
    await refusal.waitFor();
    assert.equal(await refusal.innerText(), 'You have 2 documents, the most this server allows. Delete some to create more.');
    assert.equal(new URL(page.url()).pathname, '/', 'the page stayed on the list');
    assert.equal(await page.getByTestId('doc-row').count(), 2, 'nothing was created');

    // Deleting one makes room: the refusal and the warning go away.
    await page.getByRole('button', { name: 'Delete First' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByTestId('doc-row').filter({ hasText: 'First' }).waitFor({ state: 'detached' });
    await refusal.waitFor({ state: 'detached' });
    await page.getByTestId('quota-usage').waitFor({ state: 'detached' });
  });
});

test("the editor stops calmly when its owner's storage is full", { timeout: 90_000 }, async (t) => {
  await withDiagnostics(t, () => people, () => server, async () => {
    const bob = await personContext(browser, BOB);
    people.push(bob);
    const page = bob.page;
    const { status, body } = await server.api('POST', '/api/documents', { title: 'Essay' }, bob);
    assert.equal(status, 201);
    const id = body.document.id;
    await page.goto(`${server.url}/d/${encodeURIComponent(id)}`);
    await page.locator('.ProseMirror').waitFor({ state: 'visible', timeout: 20_000 });
    await focusEnd(page);
    await page.keyboard.type('Kept.');
    await waitForSaveState(page, 'saved');

    // A paste larger than the 20,000 bytes Bob's account may store.
    await page.keyboard.insertText(' ' + 'x'.repeat(25_000));
    const banner = page.getByTestId('session-error');
    await banner.waitFor({ timeout: 20_000 });
    assert.equal(await banner.getAttribute('data-code'), 'quota');
    assert.match(await banner.innerText(), /This document can't grow: its owner's storage is full\. Your last edits are kept on this device\./);
    assert.equal(await page.locator('.ProseMirror').getAttribute('contenteditable'), 'false', 'the editor stopped taking edits');
    assert.match(await editorText(page), /xxxxx/, 'the refused edit is still on this device');

    // The server kept what it had: a fresh device (no local copy) sees only that.
    const elsewhere = await personContext(browser, BOB);
    people.push(elsewhere);
    await elsewhere.page.goto(`${server.url}/d/${encodeURIComponent(id)}`);
    await elsewhere.page.locator('.ProseMirror').waitFor({ state: 'visible', timeout: 20_000 });
    await waitForSaveState(elsewhere.page, 'saved');
    assert.equal(await editorText(elsewhere.page), 'Kept.');
  });
});
