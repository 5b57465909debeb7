// Scenario 6 of issue 3: the documents page — create, rename, filter, delete
// (with confirmation), and who is in a document right now.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ALICE, BOB, launchBrowser, openDocument, personContext, QuireServer, waitUntil, withDiagnostics } from './harness.mjs';

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

test('create, rename, filter and delete documents', { timeout: 90_000 }, async (t) => {
  await withDiagnostics(t, () => people, () => server, async () => {
    const alice = await personContext(browser, ALICE);
    people.push(alice);
    const page = alice.page;
    await page.goto(server.url + '/');
    await page.getByRole('heading', { name: 'Documents' }).waitFor();

    /** Create a document from the list and give it a title in the editor. */
    const create = async (/** @type {string} */ title) => {
      await page.getByTestId('new-document').click();
      await page.waitForURL(/\/d\/[^/]+$/);
      const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '');
      const titleInput = page.getByTestId('doc-title');
      await titleInput.fill(title);
      await titleInput.press('Enter');
      await waitUntil(() => server.api('GET', `/api/documents/${id}`, undefined, alice), (r) => r.body?.document?.title === title, {
        message: `title "${title}" to be saved`,
      });
      await page.getByRole('link', { name: 'Quire — all documents' }).click();
      await page.getByRole('heading', { name: 'Documents' }).waitFor();
      return id;
    };

    const planId = await create('Quarterly plan');
    const listId = await create('Shopping list');
    const rows = page.getByTestId('doc-row');
    await rows.filter({ hasText: 'Quarterly plan' }).waitFor();
    await rows.filter({ hasText: 'Shopping list' }).waitFor();
    // Newest edit first.
    assert.match(await rows.first().innerText(), /Shopping list/);

    // Rename in place.
    await page.getByRole('button', { name: 'Rename Shopping list' }).click();
    await page.getByTestId('rename-input').fill('Groceries');
    await page.getByTestId('rename-input').press('Enter');
    await rows.filter({ hasText: 'Groceries' }).waitFor();
    await rows.filter({ hasText: 'Shopping list' }).waitFor({ state: 'detached' });
    assert.equal((await server.api('GET', `/api/documents/${listId}`, undefined, alice)).body.document.title, 'Groceries');

    // Filter by title.
    await page.getByTestId('filter').fill('quart');
    await rows.filter({ hasText: 'Groceries' }).waitFor({ state: 'detached' });
    await rows.filter({ hasText: 'Quarterly plan' }).waitFor();
    await page.getByTestId('filter').fill('no such title');
    await page.getByText('No document title matches').waitFor();
    await page.getByTestId('filter').fill('');
    await rows.filter({ hasText: 'Groceries' }).waitFor();

    // Who is in it now: Bob opens the plan; the list shows him.
    const bob = await personContext(browser, BOB);
    people.push(bob);
    // Documents are private: Alice shares the plan with him first.
    assert.equal((await server.api('POST', `/api/documents/${planId}/shares`, { email: bob.email, role: 'editor' }, alice)).status, 200);
    await openDocument(bob.page, server.url, planId);
    await waitUntil(
      async () => {
        await page.reload();
        await rows.first().waitFor();
        return rows.filter({ hasText: 'Quarterly plan' }).getByRole('img', { name: BOB.name }).count();
      },
      (n) => n === 1,
      { message: "Bob's avatar in the list" },
    );
    await bob.context.close();

    // Carol has Groceries open while it is deleted.
    const carol = await personContext(browser, { name: 'Carol Crane', color: '#2e7d32' });
    people.push(carol);
    assert.equal((await server.api('POST', `/api/documents/${listId}/shares`, { email: carol.email, role: 'editor' }, alice)).status, 200);
    await openDocument(carol.page, server.url, listId);

    // Delete, with a confirmation that can be cancelled.
    await page.getByRole('button', { name: 'Delete Groceries' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete this document?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await rows.filter({ hasText: 'Groceries' }).waitFor();

    await page.getByRole('button', { name: 'Delete Groceries' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await rows.filter({ hasText: 'Groceries' }).waitFor({ state: 'detached' });
    assert.equal((await server.api('GET', `/api/documents/${listId}`, undefined, alice)).status, 404);
    // Carol is told, and her editor stops accepting edits.
    await carol.page.getByTestId('session-error').getByText('This document was deleted').waitFor({ timeout: 10_000 });
    assert.equal(await carol.page.locator('.ProseMirror').getAttribute('contenteditable'), 'false');
    assert.equal(await carol.page.getByTestId('save-state').getAttribute('data-state'), 'error');
    await page.reload();
    await rows.filter({ hasText: 'Quarterly plan' }).waitFor();
    assert.equal(await rows.filter({ hasText: 'Groceries' }).count(), 0);

    // Opening a deleted document says so instead of showing an empty editor.
    await page.goto(`${server.url}/d/${listId}`);
    await page.getByRole('heading', { name: 'This document does not exist' }).waitFor();
  });
});
