// The official `openai` npm client against quiverd's /v1 routes, used as a
// user would: only baseURL and an API key change.
//   node openai_client.cjs BASE_URL EMBED_MODEL LLM_MODEL
//   node openai_client.cjs chat BASE_URL CHAT_MODEL     (a model with a chat template)
// Prints "ok <check>" per passing check; exits 1 at the first failure.
const assert = require('node:assert/strict');
const OpenAI = require('openai');

const chatMode = process.argv[2] === 'chat';
const [baseURL, embedModel, llmModel] = process.argv.slice(chatMode ? 3 : 2);
const client = new OpenAI({ apiKey: 'test-key', baseURL, maxRetries: 0 });

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`FAILED ${name}: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  }
}

async function chatChecks(model) {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'the and then' }];
  let whole;
  await check('chat.completions', async () => {
    const r = await client.chat.completions.create({ model, messages, max_tokens: 8,
                                                     temperature: 0 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    whole = r.choices[0].message.content;
    assert.equal(typeof whole, 'string');
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });
  await check('chat.completions stream', async () => {
    const stream = await client.chat.completions.create({
      model, messages, max_tokens: 8, temperature: 0, stream: true,
      stream_options: { include_usage: true } });
    let text = '', role = null, usage = null, chunks = 0;
    for await (const chunk of stream) {
      ++chunks;
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta.role) role = c.delta.role;
        if (c.delta.content) text += c.delta.content;
      }
    }
    assert.equal(role, 'assistant');
    assert.equal(text, whole);
    assert.ok(usage && usage.completion_tokens > 0);
  });
  await check('chat.completions max_completion_tokens and content parts', async () => {
    const r = await client.chat.completions.create({
      model, max_completion_tokens: 3, temperature: 0,
      messages: [{ role: 'developer', content: 'Be brief.' },
                 { role: 'user', content: [{ type: 'text', text: 'the and ' },
                                           { type: 'text', text: 'then' }] }] });
    assert.ok(r.usage.completion_tokens <= 3);
  });
}

(async () => {
  if (chatMode) {
    await chatChecks(llmModel);
    return;
  }
  await check('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes(embedModel), ids.join(','));
    assert.ok(ids.includes(llmModel), ids.join(','));
  });
  await check('models.retrieve', async () => {
    const m = await client.models.retrieve(llmModel);
    assert.equal(m.id, llmModel);
  });
  await check('models.retrieve missing is NotFoundError', async () => {
    await assert.rejects(client.models.retrieve('quiver/none'), OpenAI.NotFoundError);
  });
  let floats;
  await check('embeddings float', async () => {
    const r = await client.embeddings.create({ model: embedModel, input: ['hello world', 'cats'],
                                               encoding_format: 'float' });
    assert.equal(r.data.length, 2);
    floats = r.data[0].embedding;
    assert.ok(Array.isArray(floats) && floats.length > 0);
    const norm = Math.sqrt(floats.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);
    assert.ok(r.usage.prompt_tokens > 0);
  });
  await check('embeddings default (base64, decoded by the client)', async () => {
    const r = await client.embeddings.create({ model: embedModel, input: 'hello world' });
    const v = r.data[0].embedding;
    assert.equal(v.length, floats.length);
    for (let i = 0; i < v.length; ++i) assert.ok(Math.abs(v[i] - floats[i]) < 1e-6);
  });
  await check('embeddings unknown model is NotFoundError', async () => {
    await assert.rejects(client.embeddings.create({ model: 'nope', input: 'x' }),
                         OpenAI.NotFoundError);
  });
  let greedy;
  await check('completions', async () => {
    const r = await client.completions.create({ model: llmModel, prompt: 'Once upon a time',
                                                max_tokens: 20, temperature: 0 });
    greedy = r.choices[0].text;
    assert.ok(greedy.length > 0);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 20);
  });
  await check('completions stream with usage', async () => {
    const stream = await client.completions.create({
      model: llmModel, prompt: 'Once upon a time', max_tokens: 20, temperature: 0,
      stream: true, stream_options: { include_usage: true } });
    let text = '', usage = null, finish = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(text, greedy);
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, 20);
  });
  await check('completions seeded sampling repeats', async () => {
    const a = await client.completions.create({ model: llmModel, prompt: 'The dog',
                                                max_tokens: 16, temperature: 1, seed: 7 });
    const b = await client.completions.create({ model: llmModel, prompt: 'The dog',
                                                max_tokens: 16, temperature: 1, seed: 7 });
    assert.equal(a.choices[0].text, b.choices[0].text);
  });
  await check('completions stop', async () => {
    const r = await client.completions.create({ model: llmModel, prompt: 'Once upon a time',
                                                max_tokens: 40, temperature: 0, stop: ['Lily'] });
    assert.ok(!r.choices[0].text.includes('Lily'));
    assert.equal(r.choices[0].finish_reason, 'stop');
  });
  await check('chat without a chat template is BadRequestError', async () => {
    await assert.rejects(
        client.chat.completions.create({ model: llmModel,
                                         messages: [{ role: 'user', content: 'hi' }] }),
        OpenAI.BadRequestError);
  });
  await check('bad request is BadRequestError', async () => {
    await assert.rejects(client.completions.create({ model: llmModel, prompt: 'x',
                                                     temperature: 7 }),
                         OpenAI.BadRequestError);
  });
  await check('aborting a stream', async () => {
    const controller = new AbortController();
    const stream = await client.completions.create(
        { model: llmModel, prompt: 'Once upon a time', max_tokens: 400, temperature: 1,
          stream: true }, { signal: controller.signal });
    let n = 0;
    try {
      for await (const chunk of stream) {
        if (++n === 3) controller.abort();
      }
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
    }
    assert.ok(n >= 3);
  });
})();
