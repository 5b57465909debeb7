// Scenarios 1, 2 and 5 of issue 3: two people typing at once, formatting
// that survives a reload, and the save state around an edit.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  ALICE,
  BOB,
  editorText,
  editorTexts,
  focusEnd,
  launchBrowser,
  openDocument,
  personContext,
  QuireServer,
  waitForConvergence,
  waitForSaveState,
  withDiagnostics,
} from './harness.mjs';

/** @type {QuireServer} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Array<Awaited<ReturnType<typeof personContext>>>} */
let people = [];

before(async () => {
  server = await QuireServer.launch();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** @param {{ name: string, color: string }} user */
async function person(user) {
  const p = await personContext(browser, user);
  people.push(p);
  return p;
}

async function closeAll() {
  for (const p of people) await p.context.close();
  people = [];
}

describe('collaboration', { timeout: 90_000 }, () => {
  test('two people type in one document at once and see each other', async (t) => {
    await withDiagnostics(t, () => people, () => server, async () => {
      const id = await server.createDocument('Team notes');
      const alice = await person(ALICE);
      const bob = await person(BOB);
      // A document under way: one line for each of them.
      await openDocument(alice.page, server.url, id);
      await waitForSaveState(alice.page, 'saved');
      await focusEnd(alice.page);
      await alice.page.keyboard.type('Alice:');
      await alice.page.keyboard.press('Enter');
      await alice.page.keyboard.type('Bob:');
      await waitForSaveState(alice.page, 'saved');
      await openDocument(bob.page, server.url, id);
      await waitForSaveState(bob.page, 'saved');

      await alice.page.locator('.ProseMirror p', { hasText: 'Alice:' }).click();
      await alice.page.keyboard.press('End');
      await bob.page.locator('.ProseMirror p', { hasText: 'Bob:' }).click();
      await bob.page.keyboard.press('End');
      const aliceWords = ' apple avocado apricot almond';
      const bobWords = ' banana blueberry blackberry basil';
      await Promise.all([
        alice.page.keyboard.type(aliceWords, { delay: 25 }),
        bob.page.keyboard.type(bobWords, { delay: 25 }),
      ]);

      const expected = `Alice:${aliceWords}\nBob:${bobWords}`;
      const [text] = await waitForConvergence(alice.page, bob.page, (s) => s === expected);
      assert.equal(text, expected);

      // Each sees the other's caret, labelled with the other's name...
      await alice.page.locator('.collaboration-carets__label', { hasText: BOB.name }).waitFor({ timeout: 10_000 });
      await bob.page.locator('.collaboration-carets__label', { hasText: ALICE.name }).waitFor({ timeout: 10_000 });
      // ...and the other's avatar in the header.
      await alice.page.getByRole('img', { name: BOB.name, exact: true }).waitFor({ timeout: 10_000 });
      await bob.page.getByRole('img', { name: ALICE.name, exact: true }).waitFor({ timeout: 10_000 });

      // Presence is the account's, bound by the server when the socket
      // opens: a new name reopens Bob's socket, and Alice sees it at once
      // (not after y-protocols' 15-30 s renewals).
      const renamed = 'Bob B. Brook';
      await bob.page.getByTestId('user-chip').click();
      await bob.page.getByTestId('user-name-input').fill(renamed);
      await bob.page.getByTestId('save-profile').click();
      await alice.page.getByRole('img', { name: renamed, exact: true }).waitFor({ timeout: 5_000 });
      await bob.page.locator('.ProseMirror p', { hasText: 'Bob:' }).click();
      await alice.page.locator('.collaboration-carets__label', { hasText: renamed }).waitFor({ timeout: 5_000 });
      assert.equal(await alice.page.getByRole('img', { name: BOB.name, exact: true }).count(), 0, 'the old name is gone');
      // Bob's new socket shows Alice again at once too.
      await bob.page.getByRole('img', { name: ALICE.name, exact: true }).waitFor({ timeout: 5_000 });

      await Promise.all([waitForSaveState(alice.page, 'saved'), waitForSaveState(bob.page, 'saved')]);
      await closeAll();
    });
  });

  test('formatting survives a reload and reaches a fresh browser', async (t) => {
    await withDiagnostics(t, () => people, () => server, async () => {
      const id = await server.createDocument('Formatting');
      const alice = await person(ALICE);
      const page = alice.page;
      await openDocument(page, server.url, id);
      await waitForSaveState(page, 'saved');
      await focusEnd(page);

      await page.getByTestId('tb-h1').click();
      await page.keyboard.type('Release plan');
      await page.keyboard.press('Enter');
      await page.keyboard.type('This is ');
      await page.keyboard.press('Control+b');
      await page.keyboard.type('important');
      await page.keyboard.press('Control+b');
      await page.keyboard.type(' text.');
      await page.keyboard.press('Enter');
      await page.getByTestId('tb-bulletList').click();
      await page.keyboard.type('first item');
      await page.keyboard.press('Enter');
      await page.keyboard.type('second item');
      await page.keyboard.press('Enter');
      await page.keyboard.press('Enter'); // leave the list
      await page.keyboard.type('Quire site');
      await page.keyboard.press('Shift+Home');
      await page.keyboard.press('Control+k');
      await page.getByTestId('link-input').fill('example.com/quire');
      await page.keyboard.press('Enter');
      await waitForSaveState(page, 'saved');

      /** @param {import('playwright-core').Page} p */
      const checkFormatting = async (p) => {
        const editor = p.locator('.ProseMirror');
        await editor.locator('h1', { hasText: 'Release plan' }).waitFor({ timeout: 15_000 });
        assert.equal(await editor.locator('strong').innerText(), 'important');
        assert.deepEqual(await editor.locator('ul > li').allInnerTexts(), ['first item', 'second item']);
        const link = editor.locator('a', { hasText: 'Quire site' });
        assert.equal(await link.getAttribute('href'), 'https://example.com/quire');
      };

      await checkFormatting(page);
      await page.reload();
      await page.locator('.ProseMirror').waitFor();
      await checkFormatting(page);

      // A browser with no local copy gets it all from the server.
      const bob = await person(BOB);
      await openDocument(bob.page, server.url, id);
      await checkFormatting(bob.page);
      assert.equal(await editorText(bob.page), await editorText(page));
      await closeAll();
    });
  });

  // Bob's edits and caret keep arriving while Alice selects: each one lands
  // in the moment between her click or key and ProseMirror reading it
  // (web/src/editor/pageSelection.ts).
  test("a selection is not undone by the other person's typing", async (t) => {
    await withDiagnostics(t, () => people, () => server, async () => {
      const id = await server.createDocument('Selections');
      const alice = await person(ALICE);
      const bob = await person(BOB);
      await openDocument(alice.page, server.url, id);
      await waitForSaveState(alice.page, 'saved');
      await focusEnd(alice.page);
      const lines = ['first line to embolden', 'second line to embolden', 'third line to embolden'];
      for (const line of lines) {
        await alice.page.keyboard.type(line);
        await alice.page.keyboard.press('Enter');
      }
      await alice.page.keyboard.type('Bob types below:');
      await openDocument(bob.page, server.url, id);
      await waitForSaveState(bob.page, 'saved');
      await focusEnd(bob.page);

      // Bob keeps typing while Alice selects each line and makes it bold.
      const bobTyping = bob.page.keyboard.type(' lorem ipsum dolor sit amet'.repeat(4), { delay: 15 });
      for (const line of lines) {
        await alice.page.locator('.ProseMirror p', { hasText: line }).click();
        await alice.page.keyboard.press('End');
        await alice.page.keyboard.press('Shift+Home');
        await alice.page.keyboard.press('Control+b');
      }
      await bobTyping;
      await waitForConvergence(alice.page, bob.page, (s) => s.includes('amet lorem ipsum dolor sit amet'));
      assert.deepEqual(await editorTexts(alice.page, 'strong'), lines);
      assert.deepEqual(await editorTexts(bob.page, 'strong'), lines);
      await closeAll();
    });
  });

  test('the save state shows "Saving…" and then "All changes saved"', async (t) => {
    await withDiagnostics(t, () => people, () => server, async () => {
      const id = await server.createDocument('Save state');
      const alice = await person(ALICE);
      const page = alice.page;
      await openDocument(page, server.url, id);
      await waitForSaveState(page, 'saved');
      const indicator = page.getByTestId('save-state');
      assert.equal((await indicator.innerText()).trim(), 'All changes saved');

      // Record every state the indicator passes through.
      await page.evaluate(() => {
        const el = /** @type {HTMLElement} */ (document.querySelector('[data-testid="save-state"]'));
        const seen = /** @type {string[]} */ ([]);
        /** @type {any} */ (window).__saveStates = seen;
        new MutationObserver(() => seen.push(`${el.dataset.state}|${el.textContent}`)).observe(el, {
          attributes: true,
          childList: true,
          subtree: true,
          characterData: true,
        });
      });
      await focusEnd(page);
      await page.keyboard.type('Hello');

      await page.waitForFunction(
        () => {
          const seen = /** @type {string[]} */ (/** @type {any} */ (window).__saveStates);
          const i = seen.findIndex((s) => s === 'saving|Saving…');
          return i >= 0 && seen.slice(i + 1).includes('saved|All changes saved');
        },
        undefined,
        { timeout: 15_000 },
      );
      await waitForSaveState(page, 'saved');
      assert.equal((await indicator.innerText()).trim(), 'All changes saved');
      await closeAll();
    });
  });
});
