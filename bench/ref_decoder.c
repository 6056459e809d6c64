/* A plain C decoder for llama2.c checkpoints (float32), the side-by-side
 * peer of generate_bench: the shape of llama2.c's run.c (one token at a
 * time, an OpenMP loop over the rows of every matrix-vector product, nothing
 * else fused or blocked), built like it (-Ofast -fopenmp -march=native).
 *
 *   ref_decoder MODEL.bin [STEPS=128] [PROMPT_TOKEN...]
 *
 * Feeds BOS (1) and the prompt tokens, then decodes greedily; prints the
 * token ids and the decode rate (tokens/s after the prompt). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared;
} Config;

typedef struct {
  const float *embed, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *cls;
} Weights;

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void RmsNorm(float* out, const float* x, const float* w, int n) {
  float ss = 0;
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  ss = 1.0f / sqrtf(ss / n + 1e-5f);
  for (int i = 0; i < n; ++i) out[i] = w[i] * (ss * x[i]);
}

/* out[d] = W (d x n) x[n] */
static void MatVec(float* out, const float* x, const float* w, int n, int d) {
  int i;
#pragma omp parallel for private(i)
  for (i = 0; i < d; ++i) {
    const float* row = w + (size_t)i * n;
    float s = 0;
    for (int j = 0; j < n; ++j) s += row[j] * x[j];
    out[i] = s;
  }
}

static void Softmax(float* x, int n) {
  float max = x[0], sum = 0;
  for (int i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  for (int i = 0; i < n; ++i) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  for (int i = 0; i < n; ++i) x[i] /= sum;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ref_decoder MODEL.bin [STEPS] [PROMPT_TOKEN...]\n");
    return 2;
  }
  const int steps = argc > 2 ? atoi(argv[2]) : 128;
  FILE* f = fopen(argv[1], "rb");
  if (f == NULL) {
    perror(argv[1]);
    return 1;
  }
  int header[7];
  if (fread(header, sizeof(int), 7, f) != 7) return 1;
  Config c = {header[0], header[1], header[2], header[3], header[4],
              abs(header[5]), header[6], header[5] > 0};
  fseek(f, 0, SEEK_END);
  const long bytes = ftell(f) - 7 * sizeof(int);
  fseek(f, 7 * sizeof(int), SEEK_SET);
  float* data = malloc(bytes);
  if (data == NULL || fread(data, 1, bytes, f) != (size_t)bytes) return 1;
  fclose(f);
  const int head = c.dim / c.heads, kv_dim = c.kv_heads * head, kv_mul = c.heads / c.kv_heads;
  const size_t L = c.layers, D = c.dim, H = c.hidden, KV = kv_dim;
  Weights w;
  const float* p = data;
  w.embed = p, p += (size_t)c.vocab * D;
  w.rms_att = p, p += L * D;
  w.wq = p, p += L * D * D;
  w.wk = p, p += L * D * KV;
  w.wv = p, p += L * D * KV;
  w.wo = p, p += L * D * D;
  w.rms_ffn = p, p += L * D;
  w.w1 = p, p += L * H * D;
  w.w2 = p, p += L * D * H;
  w.w3 = p, p += L * H * D;
  w.rms_final = p, p += D;
  p += (size_t)c.seq_len * head; /* The old RoPE tables, unused. */
  w.cls = c.shared ? w.embed : p;

  float *x = malloc(D * 4), *xb = malloc(D * 4), *xb2 = malloc(D * 4), *hb = malloc(H * 4),
        *hb2 = malloc(H * 4), *q = malloc(D * 4), *att = malloc((size_t)c.heads * c.seq_len * 4),
        *logits = malloc((size_t)c.vocab * 4);
  float* key_cache = calloc(L * c.seq_len * KV, 4);
  float* value_cache = calloc(L * c.seq_len * KV, 4);
  /* Position 0 holds BOS, 1..prompt_len the prompt; the logits of position
   * prompt_len give the first new token. Timed from there. */
  const int prompt_len = argc > 3 ? argc - 3 : 0;
  int token = 1, decoded = 0;
  double start = Now();
  for (int pos = 0; pos < c.seq_len && decoded < steps; ++pos) {
    if (pos == prompt_len) start = Now();
    memcpy(x, w.embed + (size_t)token * D, D * 4);
    for (size_t l = 0; l < L; ++l) {
      RmsNorm(xb, x, w.rms_att + l * D, c.dim);
      float* k = key_cache + (l * c.seq_len + pos) * KV;
      float* v = value_cache + (l * c.seq_len + pos) * KV;
      MatVec(q, xb, w.wq + l * D * D, c.dim, c.dim);
      MatVec(k, xb, w.wk + l * D * KV, c.dim, kv_dim);
      MatVec(v, xb, w.wv + l * D * KV, c.dim, kv_dim);
      for (int i = 0; i < c.dim; i += 2) { /* RoPE on q and k. */
        const float freq = 1.0f / powf(10000.0f, (float)(i % head) / head);
        const float cr = cosf(pos * freq), ci = sinf(pos * freq);
        for (int r = 0; r < (i < kv_dim ? 2 : 1); ++r) {
          float* vec = r == 0 ? q : k;
          const float a = vec[i], b = vec[i + 1];
          vec[i] = a * cr - b * ci;
          vec[i + 1] = a * ci + b * cr;
        }
      }
      int h;
#pragma omp parallel for private(h)
      for (h = 0; h < c.heads; ++h) {
        const float* qh = q + h * head;
        float* ah = att + (size_t)h * c.seq_len;
        const size_t kvh = (size_t)(h / kv_mul) * head;
        for (int t = 0; t <= pos; ++t) {
          const float* kt = key_cache + (l * c.seq_len + t) * KV + kvh;
          float s = 0;
          for (int i = 0; i < head; ++i) s += qh[i] * kt[i];
          ah[t] = s / sqrtf((float)head);
        }
        Softmax(ah, pos + 1);
        float* out = xb + h * head;
        memset(out, 0, head * 4);
        for (int t = 0; t <= pos; ++t) {
          const float* vt = value_cache + (l * c.seq_len + t) * KV + kvh;
          for (int i = 0; i < head; ++i) out[i] += ah[t] * vt[i];
        }
      }
      MatVec(xb2, xb, w.wo + l * D * D, c.dim, c.dim);
      for (int i = 0; i < c.dim; ++i) x[i] += xb2[i];
      RmsNorm(xb, x, w.rms_ffn + l * D, c.dim);
      MatVec(hb, xb, w.w1 + l * H * D, c.dim, c.hidden);
      MatVec(hb2, xb, w.w3 + l * H * D, c.dim, c.hidden);
      for (int i = 0; i < c.hidden; ++i) hb[i] = hb[i] / (1.0f + expf(-hb[i])) * hb2[i];
      MatVec(xb, hb, w.w2 + l * D * H, c.hidden, c.dim);
      for (int i = 0; i < c.dim; ++i) x[i] += xb[i];
    }
    if (pos < prompt_len) {
      token = atoi(argv[3 + pos]); /* The next prompt token: no logits needed. */
      continue;
    }
    RmsNorm(x, x, w.rms_final, c.dim);
    MatVec(logits, x, w.cls, c.dim, c.vocab);
    int best = 0;
    for (int i = 1; i < c.vocab; ++i) best = logits[i] > logits[best] ? i : best;
    token = best;
    printf("%d ", token);
    ++decoded;
  }
  const double seconds = Now() - start;
  printf("\nref_decoder: %d tokens decoded in %.3f s = %.1f tokens/s\n", decoded, seconds,
         decoded / seconds);
  return 0;
}
