// Drives python/examples/fastapi_pipeline.py's page in Chromium (playwright-core from the
// repository's node_modules): starts a generation with an injected failure, presses the widget's
// Retry, and waits for the job to complete. Prints one JSON line with what it saw.
import { chromium } from 'playwright-core';

const url = process.argv[2];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
const seen = { statuses: [], errors: [] };
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => seen.errors.push(e.message));
  await page.goto(url);
  await page.check('input[name=fail]');
  await page.click('button[type=submit]');
  const status = () => page.evaluate(() => document.querySelector('progress-tracker')?.snapshot?.status ?? 'none');
  const until = async (want, ms) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = await status();
      if (seen.statuses.at(-1) !== s) seen.statuses.push(s);
      if (s === want) return;
      if (Date.now() > deadline) throw new Error(`no ${want} within ${ms} ms (saw ${seen.statuses.join(' → ')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await until('failed', 30_000);
  await page.locator('progress-tracker').getByRole('button', { name: /retry/i }).click();
  await until('completed', 30_000);
  seen.jobId = await page.evaluate(() => document.querySelector('progress-tracker').job);
  seen.ok = true;
} catch (err) {
  seen.ok = false;
  seen.failure = String(err);
} finally {
  await browser.close();
  console.log(JSON.stringify(seen));
}
