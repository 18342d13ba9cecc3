"""The official ElevenLabs Python SDK against narrate's emulator, and the emulator's JSON against
the OpenAPI schemas of the real API.

Usage: python3 python_sdk.py BASE_URL API_KEY OPENAPI_JSON
Run by the Rust test `emulator::official_python_sdk_and_openapi_schemas`.
"""

import json
import sys

import httpx
import jsonschema
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

BASE, KEY, SPEC = sys.argv[1:4]
VOICE = "21m00Tcm4TlvDq8ikWAM"
spec = json.load(open(SPEC))
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1


def validate(instance, name):
    global checks
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)
    checks += 1


def api_error(call):
    try:
        call()
    except ApiError as e:
        return e
    raise AssertionError("expected an ApiError")


client = ElevenLabs(api_key=KEY, base_url=BASE)

# Voices, every page.
voices, token = [], None
while True:
    page = client.voices.search(page_size=7, next_page_token=token)
    voices += page.voices
    if not page.has_more:
        break
    token = page.next_page_token
check(len(voices) == page.total_count == 25, f"paged through {len(voices)} voices: 20 premade, 5 of the account")
check(len({v.voice_id for v in voices}) == 25, "no voice twice")
check(client.voices.get(VOICE).name == "Rachel", "voices.get")

# Models.
models = {m.model_id: m for m in client.models.list()}
check(models["eleven_multilingual_v2"].maximum_text_length_per_request == 10000, "v2 limit")
check(models["eleven_v3"].maximum_text_length_per_request == 5000, "v3 limit")

# Subscription.
sub = client.user.subscription.get()
check(sub.character_limit > 0 and sub.tier == "pro", "subscription")

# Convert and stream.
mp3 = b"".join(client.text_to_speech.convert(voice_id=VOICE, text="Hello from the SDK.", output_format="mp3_44100_128"))
check(mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0, "convert returns MP3 frames")
pcm = b"".join(client.text_to_speech.stream(voice_id=VOICE, text="Streaming works too.", output_format="pcm_16000"))
check(len(pcm) == 2 * round(20 / 15 * 16000), f"stream returned {len(pcm)} bytes of PCM")

# request-id through the raw response, then stitched into the next request.
with client.text_to_speech.with_raw_response.convert(voice_id=VOICE, text="Raw response.") as raw:
    request_id = raw.headers.get("request-id")
    b"".join(raw.data)
    check(raw.headers.get("character-cost") == "13", "character-cost header")
check(request_id is not None and len(request_id) == 20 and request_id.isalnum(), f"request-id {request_id!r}")
stitched = b"".join(client.text_to_speech.convert(voice_id=VOICE, text="And then.", previous_request_ids=[request_id]))
check(len(stitched) > 0, "previous_request_ids accepted")

# Timestamps.
timed = client.text_to_speech.convert_with_timestamps(voice_id=VOICE, text="Timed text.")
check(len(timed.alignment.characters) == len("Timed text."), "alignment per character")
check(timed.alignment.character_end_times_seconds[-1] > 0.5, "alignment times")
chunks = list(client.text_to_speech.stream_with_timestamps(voice_id=VOICE, text="word " * 30, output_format="mp3_22050_32"))
check(len(chunks) >= 3, f"{len(chunks)} streamed chunks with timestamps")
check(sum(len(c.alignment.characters) for c in chunks) == 150, "streamed alignment covers the text")

# The speech history: every generation above is in it, newest first; page through it, read one
# item and its audio, delete one.
items, start = [], None
while True:
    page = client.history.list(page_size=3, start_after_history_item_id=start, voice_id=VOICE)
    items += page.history
    if not page.has_more:
        break
    start = page.last_history_item_id
texts = [i.text for i in items]
check("Hello from the SDK." in texts and "Streaming works too." in texts, f"history texts {texts}")
check(len(items) == len({i.history_item_id for i in items}), "no history item twice")
check(all(a.date_unix >= b.date_unix for a, b in zip(items, items[1:])), "newest first")
first = next(i for i in items if i.text == "Hello from the SDK.")
check(client.history.get(first.history_item_id).request_id == first.request_id, "history.get")
audio = b"".join(client.history.get_audio(first.history_item_id))
check(audio == mp3, "the history's audio is the audio that was served")
validate(httpx.get(f"{BASE}/v1/history", headers={"xi-api-key": KEY}, params={"page_size": 2}).json(), "GetSpeechHistoryResponseModel")
client.history.delete(first.history_item_id)
e = api_error(lambda: client.history.get(first.history_item_id))
check(e.status_code == 404, f"a deleted item is gone: {e.status_code}")

# Errors, with the documented status and body.
e = api_error(lambda: b"".join(ElevenLabs(api_key="wrong", base_url=BASE).text_to_speech.convert(voice_id=VOICE, text="x")))
check(e.status_code == 401 and e.body["detail"]["status"] == "invalid_api_key", f"wrong key: {e.status_code} {e.body}")
e = api_error(lambda: b"".join(client.text_to_speech.convert(voice_id="NoSuchVoice", text="x")))
check(e.status_code == 404 and e.body["detail"]["status"] == "voice_not_found", f"unknown voice: {e.body}")
e = api_error(lambda: b"".join(client.text_to_speech.convert(voice_id=VOICE, text="a" * 5001, model_id="eleven_v3")))
check(e.status_code == 400 and e.body["detail"]["status"] == "max_character_limit_exceeded", f"too long: {e.body}")
e = api_error(lambda: b"".join(client.text_to_speech.convert(voice_id=VOICE, text="x", voice_settings={"stability": 1.5})))
check(e.status_code == 422 and e.body["detail"][0]["loc"] == ["body", "voice_settings", "stability"], f"out of range: {e.body}")

# The emulator's JSON against the real API's schemas.
headers = {"xi-api-key": KEY}
validate(httpx.get(f"{BASE}/v2/voices", headers=headers).json(), "GetVoicesV2ResponseModel")
validate(httpx.get(f"{BASE}/v1/voices/{VOICE}", headers=headers).json(), "VoiceResponseModel")
for model in httpx.get(f"{BASE}/v1/models", headers=headers).json():
    validate(model, "ModelResponseModel")
validate(httpx.get(f"{BASE}/v1/user/subscription", headers=headers).json(), "ExtendedSubscriptionResponseModel")
for body in [{"voice_settings": {"stability": 3}}, {"text": 5}, {"text": "x", "apply_text_normalization": "maybe"}]:
    r = httpx.post(f"{BASE}/v1/text-to-speech/{VOICE}", headers=headers, json=body)
    check(r.status_code == 422, f"422 for {body}")
    validate(r.json(), "HTTPValidationError")
r = httpx.post(f"{BASE}/v1/text-to-speech/{VOICE}/with-timestamps", headers=headers, json={"text": "Schema check."})
validate(r.json(), "AudioWithTimestampsResponseModel")
r = httpx.post(f"{BASE}/v1/text-to-speech/{VOICE}/stream/with-timestamps", headers=headers, json={"text": "Schema check. " * 10})
for line in r.text.splitlines():
    if line.strip():
        validate(json.loads(line), "StreamingAudioChunkWithTimestampsResponseModel")

# Pronunciation dictionaries: from rules and from a PLS file, rules replaced (a new version),
# read back, listed, downloaded, and used by a request.
from elevenlabs.pronunciation_dictionaries import (
    BodyAddAPronunciationDictionaryV1PronunciationDictionariesAddFromRulesPostRulesItem_Alias as AddAlias,
    BodySetRulesOnThePronunciationDictionaryV1PronunciationDictionariesPronunciationDictionaryIdSetRulesPostRulesItem_Alias as SetAlias,
)
from elevenlabs import PronunciationDictionaryVersionLocator

d = client.pronunciation_dictionaries.create_from_rules(
    name="SDK rules", rules=[AddAlias(string_to_replace="Dinah", alias="DYE-nah")]
)
check(d.id and d.version_rules_num == 1, f"create_from_rules: {d}")
pls = b'<?xml version="1.0"?><lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa" xml:lang="en"><lexeme><grapheme>Cheshire</grapheme><alias>CHESH-er</alias></lexeme></lexicon>'
f = client.pronunciation_dictionaries.create_from_file(name="SDK file", file=("names.pls", pls, "application/pls+xml"))
check(f.version_rules_num == 1, f"create_from_file: {f}")
r = client.pronunciation_dictionaries.rules.set(
    d.id,
    rules=[SetAlias(string_to_replace="Dinah", alias="DYE-nah"), SetAlias(string_to_replace="Alice", alias="AL-iss")],
)
check(r.version_rules_num == 2 and r.version_id != d.version_id, f"set rules: {r}")
got = client.pronunciation_dictionaries.get(d.id)
check(got.latest_version_id == r.version_id and len(got.rules) == 2, f"get: {got}")
listing = client.pronunciation_dictionaries.list(page_size=1)
check(len(listing.pronunciation_dictionaries) == 1 and listing.has_more and listing.next_cursor, f"list: {listing}")
data = b"".join(client.pronunciation_dictionaries.download(f.id, f.version_id))
check(b"<grapheme>Cheshire</grapheme>" in data and b"<alias>CHESH-er</alias>" in data, f"download: {data!r}")
audio = b"".join(client.text_to_speech.convert(
    voice_id=VOICE, text="Dinah.",
    pronunciation_dictionary_locators=[PronunciationDictionaryVersionLocator(pronunciation_dictionary_id=d.id, version_id=r.version_id)],
))
check(len(audio) > 0, "a request with the dictionary")

print(f"python SDK and schemas: {checks} checks passed")
