// The official Pinecone TypeScript client against quiverd, given only a
// controller URL and an API key, as a user would point it.
//   node pinecone_client.cjs CONTROLLER_URL API_KEY [EMBED_MODEL [RERANK_MODEL]]
// Prints "ok <check>" per passing check; exits 1 at the first failure.
const assert = require('node:assert/strict');
const { Pinecone, Errors: errors } = require('@pinecone-database/pinecone');

const [controllerHostUrl, apiKey, embedModel, rerankModel] = process.argv.slice(2);
const pc = new Pinecone({ apiKey, controllerHostUrl, maxRetries: 0 });

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`FAILED ${name}: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  }
}

(async () => {
  const name = 'films';
  await check('createIndex', async () => {
    const m = await pc.createIndex({ name, dimension: 3, metric: 'cosine',
                                     spec: { serverless: { cloud: 'aws', region: 'us-east-1' } },
                                     tags: { team: 'a' }, waitUntilReady: true });
  });
  await check('createIndex twice is a conflict', async () => {
    await assert.rejects(pc.createIndex({ name, dimension: 3, metric: 'cosine',
                                          spec: { serverless: { cloud: 'aws', region: 'x' } } }));
  });
  await check('describeIndex', async () => {
    const m = await pc.describeIndex(name);
    assert.equal(m.name, name);
    assert.equal(m.dimension, 3);
    assert.equal(m.metric, 'cosine');
    assert.equal(m.status.ready, true);
    assert.equal(m.deletionProtection, 'disabled');
    assert.deepEqual(m.tags, { team: 'a' });
    assert.ok(m.host.endsWith(`/indexes/${name}`), m.host);
  });
  await check('describeIndex missing is PineconeNotFoundError', async () => {
    await assert.rejects(pc.describeIndex('nope'), errors.PineconeNotFoundError);
  });
  await check('listIndexes', async () => {
    const l = await pc.listIndexes();
    assert.ok(l.indexes.some((i) => i.name === name));
  });
  const index = pc.index(name);
  await check('upsert', async () => {
    await index.upsert({ records: [
      { id: 'a', values: [1, 0, 0], metadata: { genre: 'drama', year: 2001 } },
      { id: 'b', values: [0, 1, 0], metadata: { genre: 'comedy', year: 1999 } },
      { id: 'c', values: [0.9, 0.1, 0], metadata: { genre: 'drama', year: 1990 },
        sparseValues: { indices: [1, 7], values: [0.5, 0.25] } },
    ] });
    await index.namespace('other').upsert({ records: [{ id: 'x', values: [0, 0, 1] }] });
  });
  await check('describeIndexStats', async () => {
    const s = await index.describeIndexStats();
    assert.equal(s.dimension, 3);
    assert.equal(s.totalRecordCount, 4);
    assert.equal(s.namespaces['__default__'].recordCount, 3);
    assert.equal(s.namespaces['other'].recordCount, 1);
  });
  await check('query by vector with filter and metadata', async () => {
    const r = await index.query({ vector: [1, 0, 0], topK: 2, includeMetadata: true,
                                  filter: { genre: { $eq: 'drama' } } });
    assert.deepEqual(r.matches.map((m) => m.id), ['a', 'c']);
    assert.equal(r.matches[0].metadata.year, 2001);
    assert.ok(r.matches[0].score > r.matches[1].score);
  });
  await check('query by id with values', async () => {
    const r = await index.query({ id: 'a', topK: 1, includeValues: true });
    assert.equal(r.matches[0].id, 'a');
    assert.deepEqual(r.matches[0].values, [1, 0, 0]);
  });
  await check('query in a namespace', async () => {
    const r = await index.namespace('other').query({ vector: [0, 0, 1], topK: 5 });
    assert.deepEqual(r.matches.map((m) => m.id), ['x']);
  });
  await check('fetch', async () => {
    const r = await index.fetch({ ids: ['a', 'c', 'missing'] });
    assert.deepEqual(Object.keys(r.records).sort(), ['a', 'c']);
    assert.deepEqual(r.records.c.sparseValues, { indices: [1, 7], values: [0.5, 0.25] });
    assert.equal(r.records.a.metadata.genre, 'drama');
  });
  await check('update', async () => {
    await index.update({ id: 'b', metadata: { year: 2005 }, values: [0, 0.5, 0.5] });
    const r = await index.fetch({ ids: ['b'] });
    assert.equal(r.records.b.metadata.year, 2005);
    assert.equal(r.records.b.metadata.genre, 'comedy');
    assert.deepEqual(r.records.b.values, [0, 0.5, 0.5]);
  });
  await check('listPaginated', async () => {
    const first = await index.listPaginated({ prefix: '', limit: 2 });
    assert.deepEqual(first.vectors.map((v) => v.id), ['a', 'b']);
    assert.ok(first.pagination && first.pagination.next);
    const rest = await index.listPaginated({ limit: 2, paginationToken: first.pagination.next });
    assert.deepEqual(rest.vectors.map((v) => v.id), ['c']);
  });
  await check('deleteOne, deleteMany by filter, deleteAll', async () => {
    await index.deleteOne({ id: 'a' });
    await index.deleteMany({ filter: { genre: { $eq: 'comedy' } } });
    let s = await index.describeIndexStats();
    assert.equal(s.namespaces['__default__'].recordCount, 1);
    await index.namespace('other').deleteAll();
    s = await index.describeIndexStats();
    assert.equal(s.totalRecordCount, 1);
  });
  await check('bad upsert is a client error', async () => {
    await assert.rejects(index.upsert({ records: [{ id: 'z', values: [1, 2] }] }));
  });
  await check('configureIndex and deletion protection', async () => {
    const m = await pc.configureIndex({ name, deletionProtection: 'enabled', tags: { env: 'test' } });
    assert.equal(m.deletionProtection, 'enabled');
    assert.deepEqual(m.tags, { team: 'a', env: 'test' });
    await assert.rejects(pc.deleteIndex(name));
    await pc.configureIndex({ name, deletionProtection: 'disabled' });
  });
  await check('deleteIndex', async () => {
    await pc.deleteIndex(name);
    await assert.rejects(pc.describeIndex(name), errors.PineconeNotFoundError);
  });
  if (embedModel) {
    await check('inference.embed', async () => {
      const r = await pc.inference.embed({ model: embedModel, inputs: ['hello world', 'cats'],
                                           parameters: { inputType: 'passage' } });
      assert.equal(r.data.length, 2);
      assert.equal(r.vectorType, 'dense');
      const v = r.data[0].values;
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);
      assert.ok(r.usage.totalTokens > 0);
    });
  }
  if (rerankModel) {
    await check('inference.rerank', async () => {
      const r = await pc.inference.rerank({
        model: rerankModel, query: 'how do vaccines work', topN: 2, returnDocuments: true,
        documents: [{ title: 'a', body: 'Vaccines train the immune system.' },
                    { title: 'b', body: 'The stock market fell.' },
                    { title: 'c', body: 'Rain is expected.' }],
        rankFields: ['body'] });
      assert.equal(r.data.length, 2);
      assert.ok(r.data[0].score >= r.data[1].score);
      assert.ok(r.data[0].document.title.length === 1);
      assert.equal(r.usage.rerankUnits, 1);
    });
  }
})();
