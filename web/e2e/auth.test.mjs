// Accounts in the browser (issue 4): signing up, cookies page script cannot
// read, sharing a document as viewer with a second person who finds it in
// "Shared with me", read-only, and who is told when access is taken away.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ALICE, BOB, editorText, focusEnd, launchBrowser, personContext, QuireServer, waitForSaveState, waitUntil, withDiagnostics } from './harness.mjs';

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

test('signed out, every page asks to sign in; wrong passwords are refused', { timeout: 60_000 }, async (t) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const person = { page, logs: [], user: { name: 'Visitor' }, context };
  people.push(/** @type {any} */ (person));
  await withDiagnostics(t, () => people, () => server, async () => {
    await page.goto(`${server.url}/d/some-document`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Email').fill('nobody@e2e.test');
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('auth-error').getByText('wrong email or password').waitFor();
  });
  await context.close();
});

test('sign-up refuses a weak password and shows the server\'s advice', { timeout: 60_000 }, async (t) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const person = { page, logs: [], user: { name: 'Weak' }, context };
  people.push(/** @type {any} */ (person));
  await withDiagnostics(t, () => people, () => server, async () => {
    await page.goto(`${server.url}/signup`);
    await page.getByLabel('Name').fill('Weak Password');
    await page.getByLabel('Email').fill('weak@e2e.test');
    await page.getByLabel('Password').fill('password');
    await page.getByRole('button', { name: 'Create account' }).click();
    // zxcvbn's warning and suggestion, as the server wrote them.
    await page.getByTestId('auth-error').getByText('This is a top-10 common password').waitFor();
    assert.match(await page.getByTestId('auth-error').innerText(), /Add another word or two/);
    await page.getByLabel('Password').fill('plum kettle sonata 42');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Documents' }).waitFor({ timeout: 20_000 });
  });
  await context.close();
});

test('sign up, create a document, share it as viewer: the viewer finds it in "Shared with me" and cannot type', { timeout: 120_000 }, async (t) => {
  await withDiagnostics(t, () => people, () => server, async () => {
    const alice = await personContext(browser, ALICE);
    people.push(alice);
    const bob = await personContext(browser, BOB);
    people.push(bob);

    // No token is readable by page script, nor kept in storage.
    for (const p of [alice, bob]) {
      const exposed = await p.page.evaluate(() => ({ cookie: document.cookie, storage: JSON.stringify({ ...localStorage }) }));
      assert.equal(exposed.cookie, '', `document.cookie is empty for ${p.user.name}`);
      const cookies = await p.context.cookies(server.url);
      assert.ok(cookies.length >= 1 && cookies.every((c) => c.httpOnly && c.sameSite === 'Lax'), JSON.stringify(cookies));
      for (const c of cookies) assert.ok(!exposed.storage.includes(c.value), 'no cookie value in localStorage');
    }

    // Alice creates a document and writes in it.
    await alice.page.getByTestId('new-document').click();
    await alice.page.waitForURL(/\/d\/[^/]+$/);
    const id = decodeURIComponent(new URL(alice.page.url()).pathname.split('/').pop() ?? '');
    await alice.page.getByTestId('doc-title').fill('Launch plan');
    await alice.page.getByTestId('doc-title').press('Enter');
    await waitForSaveState(alice.page, 'saved');
    await focusEnd(alice.page);
    await alice.page.keyboard.type('Written by Alice.');
    await waitForSaveState(alice.page, 'saved');

    // Private by default: Bob cannot open it by its address.
    await bob.page.goto(`${server.url}/d/${id}`);
    await bob.page.getByRole('heading', { name: 'This document does not exist' }).waitFor();

    // Alice shares it with Bob as viewer from the share dialog.
    await alice.page.getByTestId('share-button').click();
    const dialog = alice.page.getByTestId('share-dialog');
    await dialog.getByTestId('share-email').fill(bob.email);
    await dialog.getByTestId('share-role').selectOption('viewer');
    await dialog.getByTestId('share-submit').click();
    await dialog.getByTestId('share-row').filter({ hasText: BOB.name }).waitFor();
    await dialog.getByRole('button', { name: 'Done' }).click();

    // Bob finds it under "Shared with me", as a viewer.
    await bob.page.goto(server.url + '/');
    const row = bob.page.getByTestId('shared-row').filter({ hasText: 'Launch plan' });
    await row.waitFor();
    assert.equal(await row.getByTestId('shared-role').innerText(), 'Can view');
    await row.getByRole('link').click();
    await bob.page.locator('.ProseMirror').waitFor({ state: 'visible' });
    await waitUntil(() => editorText(bob.page), (text) => text.includes('Written by Alice.'), { message: "Alice's text at Bob's" });
    await bob.page.getByTestId('read-only-banner').waitFor();
    assert.equal(await bob.page.locator('.ProseMirror').getAttribute('contenteditable'), 'false');
    assert.equal(await bob.page.getByTestId('share-button').count(), 0, 'viewers do not share');

    // He cannot type: keystrokes change nothing, here or at Alice's.
    await bob.page.locator('.ProseMirror').click();
    await bob.page.keyboard.type('Bob was here');
    assert.ok(!(await editorText(bob.page)).includes('Bob was here'));
    // Alice keeps writing; Bob sees it live, under Alice's account name.
    await focusEnd(alice.page);
    await alice.page.keyboard.type(' More from Alice.');
    await waitUntil(() => editorText(bob.page), (text) => text.includes('More from Alice.'), { message: 'live update at Bob' });
    await bob.page.getByRole('img', { name: ALICE.name, exact: true }).waitFor();
    assert.ok(!(await editorText(alice.page)).includes('Bob was here'));

    // Made an editor, his open editor becomes editable (the server makes
    // the socket reconnect with the new role) ...
    await alice.page.getByTestId('share-button').click();
    await dialog.getByRole('combobox', { name: `Role of ${BOB.name}` }).selectOption('editor');
    await dialog.getByRole('button', { name: 'Done' }).click();
    await bob.page.getByTestId('read-only-banner').waitFor({ state: 'detached', timeout: 10_000 });
    await waitUntil(() => bob.page.locator('.ProseMirror').getAttribute('contenteditable'), (v) => v === 'true', {
      message: "Bob's editor to become editable",
    });
    await focusEnd(bob.page);
    await bob.page.keyboard.type(' Bob edits now.');
    await waitUntil(() => editorText(alice.page), (text) => text.includes('Bob edits now.'), { message: "Bob's edit at Alice's" });

    // Alice removes him: his editor says so within seconds.
    await alice.page.getByTestId('share-button').click();
    await dialog.getByRole('button', { name: `Remove ${BOB.name}` }).click();
    await dialog.getByTestId('share-row').filter({ hasText: BOB.name }).waitFor({ state: 'detached' });
    await bob.page.getByTestId('session-error').getByText('You no longer have access to this document').waitFor({ timeout: 5_000 });
  });
});

test('signing out ends the session: the app asks to sign in again', { timeout: 60_000 }, async (t) => {
  await withDiagnostics(t, () => people, () => server, async () => {
    const carol = await personContext(browser, { name: 'Carol Crane', color: '#2e7d32' });
    people.push(carol);
    // The name others see is the account's, and can be changed.
    await carol.page.getByTestId('user-chip').click();
    await carol.page.getByTestId('user-name-input').fill('Carol C.');
    await carol.page.getByTestId('save-profile').click();
    await carol.page.getByTestId('user-chip').getByText('Carol C.').waitFor();
    assert.equal((await server.api('GET', '/api/me', undefined, carol)).body.user.name, 'Carol C.');
    await carol.page.getByTestId('user-chip').click();
    await carol.page.getByTestId('sign-out').click();
    await carol.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    assert.equal((await carol.context.cookies(server.url)).filter((c) => c.value).length, 0, 'cookies cleared');
    await carol.page.reload();
    await carol.page.getByRole('heading', { name: 'Sign in' }).waitFor();
  });
});
