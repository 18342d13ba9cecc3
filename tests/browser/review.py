"""The review page in a real browser: Chromium (the system's, from the Debian package) driven by
Playwright. Opens the page from file:// and checks what a producer relies on.

Usage: python3 review.py PAGE MARKS_OUT SCREENSHOT BIG_PAGE TIMED_PAGE
Prints one JSON object: what it measured, for the Rust test `review::...` to judge.
"""

import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

PAGE, MARKS_OUT, SCREENSHOT, BIG_PAGE, TIMED_PAGE = sys.argv[1:6]
CHROMIUM = os.environ.get("NARRATE_CHROMIUM", "/usr/bin/chromium")
result = {"console_errors": [], "dialogs": 0}


def wait_for(page, script, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if page.evaluate(script):
            return True
        time.sleep(0.01)
    return False


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
    )
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and result["console_errors"].append(m.text))
    page.on("pageerror", lambda e: result["console_errors"].append(str(e)))

    def on_dialog(d):
        result["dialogs"] += 1
        d.dismiss()

    page.on("dialog", on_dialog)
    page.goto("file://" + os.path.abspath(PAGE))
    page.wait_for_selector("li.row")
    result["rows"] = page.eval_on_selector_all("li.row", "rs => rs.map(r => r.querySelector('.text').textContent)")
    result["ids"] = page.eval_on_selector_all("li.row", "rs => rs.map(r => r.querySelector('.id').textContent)")
    result["chapters_shown"] = page.eval_on_selector_all("li.row", "rs => rs.map(r => r.querySelector('.chapter').textContent)")
    result["injected_elements"] = page.evaluate("document.querySelectorAll('main script, main b, li.row script').length")
    wait_for(page, "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)")
    page.screenshot(path=SCREENSHOT, full_page=False)

    # Play the second segment alone: it starts at its start and stops at its end.
    segs = page.evaluate("JSON.parse(document.getElementById('review-data').textContent).segments")
    i = 1
    page.locator("li.row").nth(i).get_by_role("button", name="play segment " + segs[i]["id"], exact=True).click()
    started = page.evaluate("document.querySelector('audio').currentTime")
    result["play_start_error"] = abs(started - segs[i]["start"])
    wait_for(page, "!document.querySelector('audio').paused")
    wait_for(page, "document.querySelector('audio').paused", timeout=30)
    stopped = page.evaluate("document.querySelector('audio').currentTime")
    result["play_stop_error"] = abs(stopped - segs[i]["end"])
    result["highlighted"] = page.evaluate("document.querySelector('li.row.now .id').textContent")

    # Keyboard: j plays the next segment, space pauses it.
    page.keyboard.press("j")
    wait_for(page, "document.querySelector('li.row.now .id').textContent !== %s" % json.dumps(segs[i]["id"]))
    result["after_j"] = page.evaluate("document.querySelector('li.row.now .id').textContent")
    page.keyboard.press(" ")
    wait_for(page, "document.querySelector('audio').paused")
    result["paused_by_space"] = page.evaluate("document.querySelector('audio').paused")

    # Mark two segments, one with a note; the command and the saved file follow.
    for k, note in [(0, "too fast"), (2, None)]:
        row = page.locator("li.row").nth(k)
        row.get_by_role("button", name="Mark for another take").click()
        if note:
            row.get_by_label("note for segment " + segs[k]["id"]).fill(note)
    result["command"] = page.input_value("#command")
    with page.expect_download() as download:
        page.click("#save")
    download.value.save_as(MARKS_OUT)

    # Search and the flagged filter.
    page.fill("#search", segs[3]["text"][:12])
    result["search_rows"] = page.locator("li.row").count()
    page.fill("#search", "")
    page.select_option("#filter", "marked")
    result["marked_rows"] = page.locator("li.row").count()

    # Accessibility basics: every button is a button with a name; inputs have labels.
    result["unnamed_buttons"] = page.evaluate(
        "[...document.querySelectorAll('button')].filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length"
    )

    # A thousand segments: the page is ready in under a second.
    big = context.new_page()
    big.on("pageerror", lambda e: result["console_errors"].append(str(e)))
    big.goto("file://" + os.path.abspath(BIG_PAGE))
    big.wait_for_selector("li.row")
    result["big_ready_ms"] = big.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    result["big_count"] = big.input_value("#search") == "" and big.evaluate("document.getElementById('count').textContent")
    big.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    wait_for(big, "document.querySelectorAll('li.row').length > 150")
    result["big_rows_after_scroll"] = big.locator("li.row").count()
    # Read along: a page rendered with character timings highlights the sentence being read.
    timed = context.new_page()
    timed.on("pageerror", lambda e: result["console_errors"].append(str(e)))
    timed.goto("file://" + os.path.abspath(TIMED_PAGE))
    timed.wait_for_selector("li.row .sentence")
    wait_for(timed, "document.querySelector('audio').readyState >= 1")
    said = timed.evaluate("JSON.parse(document.getElementById('review-data').textContent).segments[0].sentences")
    timed.locator("li.row").nth(0).get_by_role("button", name="play segment", exact=False).first.click()
    timed.evaluate("document.querySelector('audio').pause()")
    seen = {}
    for name, at in [("at_second_start", said[1][0] + 0.02), ("after_second_end", said[1][1] + 0.005)]:
        timed.evaluate("t => { document.querySelector('audio').currentTime = t; }", at)
        wait_for(timed, "document.querySelector('audio').seeking === false && !!document.querySelector('.sentence.said')")
        time.sleep(0.1)
        seen[name] = timed.evaluate("[...document.querySelectorAll('.sentence.said')].map(e => e.textContent)")
    result["read_along"] = {"sentences": [s[2] for s in said], "seen": seen}
    browser.close()

print(json.dumps(result))
