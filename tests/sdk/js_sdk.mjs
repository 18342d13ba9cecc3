// The official ElevenLabs JavaScript SDK (@elevenlabs/elevenlabs-js) against narrate's emulator.
//
// Usage: node js_sdk.mjs BASE_URL API_KEY
// Run by the Rust test `emulator::official_javascript_sdk`; install with `npm ci` in this folder.

import { ElevenLabsClient, ElevenLabsError } from "@elevenlabs/elevenlabs-js";

const [base, key] = process.argv.slice(2);
const VOICE = "21m00Tcm4TlvDq8ikWAM";
let checks = 0;

function check(condition, what) {
  if (!condition) {
    throw new Error(`check failed: ${what}`);
  }
  checks += 1;
}

async function bytesOf(stream) {
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks.map((c) => Buffer.from(c)));
}

const client = new ElevenLabsClient({ apiKey: key, baseUrl: base, maxRetries: 0 });

// Voices: every page, and the documented filters.
let seen = 0;
let token;
do {
  const page = await client.voices.search({ pageSize: 7, nextPageToken: token });
  seen += page.voices.length;
  token = page.hasMore ? page.nextPageToken : undefined;
  if (!token) {
    check(seen === page.totalCount, `paged through ${seen} of ${page.totalCount} voices`);
  }
} while (token);
const cloned = await client.voices.search({ category: "cloned", voiceType: "personal" });
check(
  cloned.voices.map((v) => v.name).join(",") === "My Narrator,Lucia",
  `cloned voices: ${cloned.voices.map((v) => v.name)}`,
);
const rachel = await client.voices.get(VOICE);
check(rachel.name === "Rachel", `voice ${rachel.name}`);

// Models, with their limits and languages.
const models = await client.models.list();
const v2 = models.find((m) => m.modelId === "eleven_multilingual_v2");
check(v2 && v2.languages.length === 29, "Multilingual v2 lists 29 languages");

// Text to speech, with the response headers.
const { data, rawResponse } = await client.textToSpeech
  .convert(VOICE, { text: "Hello from the JavaScript SDK.", modelId: "eleven_flash_v2_5" }, {})
  .withRawResponse();
const audio = await bytesOf(data);
check(audio.length > 1000 && audio[0] === 0xff, `MP3 of ${audio.length} bytes`);
const requestId = rawResponse.headers.get("request-id");
check(requestId && requestId.length === 20, `request-id ${requestId}`);
check(rawResponse.headers.get("character-cost") === "15", "character-cost 15 (Flash: half)");

// Stitching with the request id just returned.
const next = await bytesOf(
  await client.textToSpeech.convert(VOICE, {
    text: "And the next sentence.",
    previousRequestIds: [requestId],
    outputFormat: "pcm_16000",
  }),
);
check(next.length > 0 && next.length % 2 === 0, `PCM of ${next.length} bytes`);

// Errors: the SDK's own error, with the status and the API's body.
async function refused(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return null;
}
const wrongKey = new ElevenLabsClient({ apiKey: "wrong-key", baseUrl: base, maxRetries: 0 });
let e = await refused(wrongKey.voices.search({}));
check(e instanceof ElevenLabsError && e.statusCode === 401, `wrong key: ${e}`);
check(e.body.detail.status === "invalid_api_key", `wrong key body ${JSON.stringify(e.body)}`);
e = await refused(client.textToSpeech.convert("no-such-voice", { text: "Hi." }));
check(e instanceof ElevenLabsError && e.statusCode === 404, `unknown voice: ${e}`);
e = await refused(
  client.textToSpeech.convert(VOICE, { text: "Hi.", voiceSettings: { stability: 2 } }),
);
check(e instanceof ElevenLabsError && e.statusCode === 422, `bad setting: ${e}`);
check(e.body.detail[0].type === "less_than_equal", `422 body ${JSON.stringify(e.body)}`);

console.log(`${checks} checks passed`);
