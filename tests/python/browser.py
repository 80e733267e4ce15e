#!/usr/bin/env python3
"""A headless Chromium driven by Selenium, for the dashboard's browser tests.

It reads one JSON command per line on stdin and answers one JSON line on stdout:
{"ok": true, "value": ...} or {"ok": false, "error": "..."}. Commands:

  {"op": "open", "url": U}                      load a page
  {"op": "size", "width": W, "height": H}       resize the window
  {"op": "js", "js": S}                         run a script (its `return` value back)
  {"op": "wait", "js": S, "expect": V, "timeout": T}
                                                run S until it returns V (T seconds)
  {"op": "type", "css": C, "text": X}           clear the element and type X
  {"op": "select", "css": C, "value": V}        choose an option by value
  {"op": "click", "css": C}                     click the first element C selects
  {"op": "screenshot", "path": P}               save a PNG of the window
  {"op": "quit"}                                close the browser and exit

The test that runs it does so inside a network namespace holding only loopback, so the
browser reaches nothing but the dashboard under test.
"""

import atexit
import json
import os
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select


def profile_dir():
    given = os.environ.get("SRPC_CHROMIUM_PROFILE")
    if given:
        return given
    made = tempfile.mkdtemp(prefix="srpc-chromium-")
    atexit.register(shutil.rmtree, made, True)
    return made


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in [
        "--headless=new",
        "--no-sandbox",  # Runs as root in CI.
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--proxy-server=direct://",
        "--proxy-bypass-list=*",
        "--window-size=1280,800",
        # The caller's directory (it removes it); else one of our own, removed at exit.
        "--user-data-dir=" + profile_dir(),
    ]:
        options.add_argument(flag)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def run(driver, command):
    op = command["op"]
    if op == "open":
        driver.get(command["url"])
        return None
    if op == "size":
        driver.set_window_size(command["width"], command["height"])
        return driver.execute_script("return [window.innerWidth, window.innerHeight];")
    if op == "js":
        return driver.execute_script(command["js"])
    if op == "wait":
        deadline = time.monotonic() + command.get("timeout", 10)
        last = None
        while True:
            try:
                last = driver.execute_script(command["js"])
            except Exception as error:  # The page may be between two renders.
                last = "error: %s" % error
            if last == command["expect"]:
                return last
            if time.monotonic() > deadline:
                raise AssertionError("waited for %r, last %r" % (command["expect"], last))
            time.sleep(0.05)
    if op == "type":
        element = driver.find_element(By.CSS_SELECTOR, command["css"])
        element.clear()
        element.send_keys(command["text"])
        # Clearing fires no input event: say it, as a user's typing would.
        driver.execute_script(
            "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", element
        )
        return None
    if op == "select":
        Select(driver.find_element(By.CSS_SELECTOR, command["css"])).select_by_value(command["value"])
        return None
    if op == "click":
        driver.find_element(By.CSS_SELECTOR, command["css"]).click()
        return None
    if op == "screenshot":
        driver.save_screenshot(command["path"])
        return command["path"]
    raise ValueError("unknown op %r" % op)


def main():
    driver = browser()
    try:
        print(json.dumps({"ok": True, "value": "ready"}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("op") == "quit":
                print(json.dumps({"ok": True, "value": None}), flush=True)
                break
            try:
                answer = {"ok": True, "value": run(driver, command)}
            except Exception as error:
                answer = {"ok": False, "error": "%s: %s" % (type(error).__name__, error)}
            print(json.dumps(answer), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
