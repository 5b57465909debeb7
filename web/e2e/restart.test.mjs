// Scenario 4 of issue 3: the server is killed (SIGKILL) and restarted while
// someone types. No typed character may be lost, and the save state must
// come back to "All changes saved". Then the server is killed again: what it
// acknowledged must be on disk.

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

test('a server crash while typing loses nothing', { timeout: 120_000 }, async (t) => {
  await withDiagnostics(t, () => people, () => server, async () => {
    const id = await server.createDocument('Crash test');
    const alice = await personContext(browser, ALICE);
    people.push(alice);
    const page = alice.page;
    await openDocument(page, server.url, id);
    await waitForSaveState(page, 'saved');
    await focusEnd(page);

    const typed = 'The quick brown fox jumps over the lazy dog while the server restarts underneath it.';
    const typing = page.keyboard.type(typed, { delay: 45 });

    // Kill it mid-sentence, once some characters are already on their way.
    await waitUntil(() => editorText(page), (s) => s.length >= 12, { message: 'typing to start' });
    await server.kill();
    await waitForSaveState(page, 'offline', 10_000);
    await server.start();
    await typing;

    await waitForSaveState(page, 'saved', 40_000);
    assert.equal((await editorText(page)).trim(), typed);

    // What was acknowledged is durable: crash again, and a browser with no
    // local copy still gets every character from the restarted server.
    await server.kill();
    await server.start();
    const bob = await personContext(browser, BOB);
    people.push(bob);
    await openDocument(bob.page, server.url, id);
    await waitUntil(() => editorText(bob.page), (s) => s.trim() === typed, { message: 'the server copy to match', timeout: 20_000 });
    await waitForSaveState(page, 'saved', 40_000);
  });
});
